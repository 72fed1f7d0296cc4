"""The trainer's use of TrainStep on CPU: the compile / CUDA-graph switches, losses reaching the host only at
log steps, and optimiser states loading across implementations (fused GPU AdamW <-> CPU AdamW)."""

from __future__ import annotations

import csv

import pytest
import torch

from harness.errors import ConfigError
from harness.training.config import load_config, resolve_switch
from harness.training.sources import SourceRoots, open_sources
from harness.training.trainer import _load_optimizer, train

SMALL = ["model.image_width=192", "model.bev_extent_m=[-8,8,-8,8]", "model.token_dim=32", "model.planner_layers=1",
         "model.planner_ffn_dim=64", "model.planner_heads=2", "model.bev_feature_channels=16",
         "data.rig_navsim=navsim_3cam", "batch_size=2", "val.navsim=false", "val.waymo=false"]


def test_switches_parse_and_resolve():
    cfg = load_config("tiny")
    assert (cfg.compile, cfg.cuda_graph) == ("auto", "auto")
    assert load_config("tiny", overrides=["compile=false", "cuda_graph=ON"]).cuda_graph == "on"
    assert load_config("tiny", overrides=["compile=false"]).compile == "off"
    with pytest.raises(ConfigError, match="cuda_graph must be auto"):
        load_config("tiny", overrides=["cuda_graph=sometimes"])
    assert resolve_switch("auto", cuda=True) and not resolve_switch("auto", cuda=False)
    assert not resolve_switch("auto", cuda=True, world_size=2, needs_single=True)
    assert resolve_switch("auto", cuda=True, world_size=2)  # compile stays on under DDP
    assert resolve_switch("on", cuda=False) and not resolve_switch("off", cuda=True)


def test_cuda_graph_on_needs_cuda(small_world_root, tmp_path):
    cfg = load_config("tiny", overrides=[*SMALL, "cuda_graph=on", "max_steps=1"])
    with pytest.raises(ConfigError, match="needs a CUDA device"):
        train(cfg, tmp_path, open_sources(cfg, SourceRoots(navsim=small_world_root)), device="cpu")


def test_losses_reach_the_host_only_at_log_steps(small_world_root, tmp_path):
    torch.set_num_threads(1)
    cfg = load_config("tiny", overrides=[*SMALL, "max_steps=5", "log_every=2"])
    seen = {}
    result = train(cfg, tmp_path, open_sources(cfg, SourceRoots(navsim=small_world_root)), device="cpu",
                   on_step=lambda s, ls: seen.__setitem__(s, ls))
    assert sorted(seen) == [1, 2, 3, 4, 5]
    assert [s for s, ls in seen.items() if ls] == [2, 4, 5] and result.final_losses == seen[5]
    with (tmp_path / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [2, 4, 5]
    # the row holds the mean over its interval; the step's own losses are those of its last step
    assert all(float(r["samples_per_s"]) > 0 and float(r["unix_time"]) > 0 for r in rows)
    assert float(rows[-1]["train/loss"]) == pytest.approx(seen[5]["loss"], rel=1e-6)


def test_optimizer_state_loads_across_implementations():
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(4, 3))
    fused = torch.optim.AdamW([w], lr=torch.tensor(1e-3), amsgrad=True, fused=True)
    w.grad = torch.randn(4, 3)
    fused.step()
    state = fused.state_dict()
    v = torch.nn.Parameter(w.detach().clone())
    plain = torch.optim.AdamW([v], lr=1e-3, amsgrad=True)
    _load_optimizer(plain, state)
    g = plain.param_groups[0]
    assert not g.get("fused") and isinstance(g["lr"], float) and g["lr"] == pytest.approx(1e-3)
    st = plain.state[v]
    assert st["step"].device.type == "cpu" and float(st["step"]) == 1.0
    torch.testing.assert_close(st["max_exp_avg_sq"], fused.state[w]["max_exp_avg_sq"])
    v.grad = torch.randn(4, 3)
    plain.step()  # runs with the loaded moments
    assert float(plain.state[v]["step"]) == 2.0
