"""The training loop on a CUDA device with its defaults (compiled step replayed from a CUDA graph, fused
AdamW, bf16): the loss falls, the log rows carry throughput and GPU memory, and resuming from a checkpoint
continues the uninterrupted run's steps (skipped on the CPU development machines, run on the GPU machine)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from harness.agents.tfv6 import load_checkpoint
from harness.training.config import load_config
from harness.training.sources import SourceRoots, open_sources
from harness.training.trainer import train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

SMALL = ["model.image_width=192", "model.bev_extent_m=[-8,8,-8,8]", "model.token_dim=32", "model.planner_layers=1",
         "model.planner_ffn_dim=64", "model.planner_heads=2", "model.bev_feature_channels=16",
         "data.rig_navsim=navsim_3cam", "batch_size=4", "val.navsim=false", "val.waymo=false",
         "model.fusion_dropout=0", "model.planner_dropout=0"]


def _train(cfg, out, root, **kw):
    logged = {}
    result = train(cfg, out, open_sources(cfg, SourceRoots(navsim=root)), device="cuda",
                   on_step=lambda s, ls: logged.__setitem__(s, ls), **kw)
    return result, logged


def test_cuda_defaults_train_log_and_resume(small_world_root, tmp_path):
    torch.backends.cudnn.deterministic = True
    cfg = load_config("tiny", overrides=[*SMALL, "max_steps=12", "log_every=4", "checkpoint_every=8",
                                         "optim.lr=3e-3", "optim.schedule=restarts", "steps_per_epoch=4",
                                         "optim.grad_clip_norm=5"])
    assert cfg.compile == "auto" and cfg.cuda_graph == "auto"
    result, logged = _train(cfg, tmp_path / "a", small_world_root)
    assert [s for s, ls in logged.items() if ls] == [4, 8, 12]  # losses reach the host only at log steps
    with (tmp_path / "a" / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [4, 8, 12]
    assert all(float(r["samples_per_s"]) > 0 and float(r["gpu_peak_reserved_gib"]) > 0 for r in rows)
    assert float(rows[-1]["train/loss"]) < float(rows[0]["train/loss"])
    # resume from step 8: the next steps follow the uninterrupted run (same device; up to kernel rounding)
    _, resumed = _train(cfg, tmp_path / "b", small_world_root, resume=tmp_path / "a" / "checkpoints" /
                        "step_0000008.pt")
    assert resumed[12]["loss"] == pytest.approx(logged[12]["loss"], rel=1e-3, abs=1e-4)
    a = load_checkpoint(tmp_path / "a" / "model.pt")["model"]
    b = load_checkpoint(tmp_path / "b" / "model.pt")["model"]
    worst = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    print(f"\nresume on CUDA: step-12 loss {logged[12]['loss']:.6f} uninterrupted, {resumed[12]['loss']:.6f} resumed; "
          f"largest parameter difference {worst:.2e}")
    assert worst < 1e-2, worst
    assert np.isfinite(result.final_losses["loss"])
