"""A few steps of a very small TFv6 on the small world: the loss falls, resume is exact, the agent and the CLI
run the result (with PDMS and RFS validation)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from adapters.navsim.reader import NavsimReader, SensorSelection
from harness.agents.tfv6 import TFv6Agent, load_checkpoint
from harness.errors import DataError
from harness.training.config import load_config
from harness.training.sources import SourceRoots, open_sources
from harness.training.trainer import latest_checkpoint, train
from harness.trajectory import NAVSIM_SAMPLING, WAYMO_SAMPLING, headings_from_positions

SMALL = ["model.image_width=192", "model.bev_extent_m=[-8,8,-8,8]", "model.token_dim=32", "model.planner_layers=1",
         "model.planner_ffn_dim=64", "model.planner_heads=2", "model.bev_feature_channels=16",
         "data.rig_navsim=navsim_3cam", "batch_size=4", "log_every=1", "val.navsim=false", "val.waymo=false"]


def _cfg(*extra: str):
    return load_config("tiny", overrides=[*SMALL, *extra])


def _train(cfg, out, root, **kw):
    losses = {}
    result = train(cfg, out, open_sources(cfg, SourceRoots(navsim=root)), device="cpu",
                   on_step=lambda s, ls: losses.__setitem__(s, ls["loss"]), **kw)
    return result, losses


def test_loss_falls(small_world_root, tmp_path):
    torch.set_num_threads(1)
    cfg = _cfg("max_steps=12", "optim.lr=3e-3", "optim.schedule=constant")
    result, losses = _train(cfg, tmp_path / "run", small_world_root)
    first, last = np.mean([losses[s] for s in (1, 2, 3)]), np.mean([losses[s] for s in (10, 11, 12)])
    assert last < 0.8 * first
    assert result.steps == 12 and (tmp_path / "run" / "metrics.csv").is_file()
    assert (tmp_path / "run" / "config.yaml").is_file()
    ck = load_checkpoint(result.model_path)
    assert ck["kind"] == "lead-bench/tfv6" and ck["step"] == 12


def test_resume_reproduces_the_next_steps_exactly(small_world_root, tmp_path):
    torch.set_num_threads(1)
    cfg = _cfg("max_steps=3", "checkpoint_every=2", "augment.view_prob=0.5", "augment.colour_prob=0.5",
               "optim.schedule=restarts", "steps_per_epoch=2")
    _, full = _train(cfg, tmp_path / "a", small_world_root)
    ckpt = tmp_path / "a" / "checkpoints" / "step_0000002.pt"
    assert ckpt.is_file() and latest_checkpoint(tmp_path / "a").name == "step_0000003.pt"
    _, resumed = _train(cfg, tmp_path / "b", small_world_root, resume=ckpt)
    assert list(resumed) == [3]
    assert resumed[3] == pytest.approx(full[3], rel=1e-6, abs=1e-7)
    a = load_checkpoint(tmp_path / "a" / "model.pt")["model"]
    b = load_checkpoint(tmp_path / "b" / "model.pt")["model"]
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    # a different data set cannot resume the checkpoint
    with pytest.raises(DataError, match="cannot resume"):
        _train(_cfg("max_steps=3", "steps_per_epoch=5"), tmp_path / "c", small_world_root, resume=ckpt)


def test_agent_runs_checkpoints_and_ensembles(small_world_root, tmp_path):
    torch.set_num_threads(1)
    r1, _ = _train(_cfg("max_steps=1"), tmp_path / "one", small_world_root)
    r2, _ = _train(_cfg("max_steps=1", "seed=7"), tmp_path / "two", small_world_root)
    reader = NavsimReader(small_world_root, "test")
    agent = TFv6Agent(r1.model_path, source="navsim", device="cpu")
    assert agent.sensor_needs().cameras == ("CAM_L0", "CAM_F0", "CAM_R0")
    obs = [reader.load(r, SensorSelection(cameras=agent.sensor_needs().cameras)).observation
           for r in reader.index()[:3]]
    plans = agent.plan(obs, NAVSIM_SAMPLING)
    assert len(plans) == 3 and all(p.sampling == NAVSIM_SAMPLING for p in plans)
    assert agent.plan(obs, WAYMO_SAMPLING)[0].poses.shape == (20, 3)
    along = TFv6Agent(r1.model_path, source="navsim", device="cpu", headings="positions").predict(obs)
    np.testing.assert_allclose(along[..., :2], agent.predict(obs)[..., :2], atol=1e-6)
    np.testing.assert_allclose(along[0, :, 2], headings_from_positions(along[0, :, :2]), atol=1e-9)
    both = TFv6Agent([r1.model_path, r2.model_path], source="navsim", device="cpu")
    other = TFv6Agent(r2.model_path, source="navsim", device="cpu")
    np.testing.assert_allclose(both.predict(obs)[..., :2], (agent.predict(obs)[..., :2] + other.predict(obs)[..., :2])
                               / 2, atol=1e-5)


def test_cli_train_with_validation_then_run(small_world_root, tmp_path):
    from harness.cli import main

    torch.set_num_threads(1)
    out = tmp_path / "cli"
    sets = [a for s in SMALL if not s.startswith("val.") for a in ("--set", s)]
    res = CliRunner().invoke(main, ["train", "--max-steps", "2", "--out", str(out), "--navsim-root",
                                    str(small_world_root), "--waymo-root", str(small_world_root / "waymo"),
                                    "--maps-root", str(small_world_root / "maps"), "--device", "cpu", *sets])
    assert res.exit_code == 0, res.output
    text = (out / "metrics.csv").read_text()
    assert "val/pdms" in text and "val/rfs" in text
    res = CliRunner().invoke(main, ["run", "navsim", "--data-root", str(small_world_root), "--agent", "tfv6",
                                    "--ckpt", str(out / "model.pt"), "--out", str(tmp_path / "eval")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "eval" / "summary.json").is_file()
    res = CliRunner().invoke(main, ["run", "navsim", "--data-root", str(small_world_root), "--agent", "tfv6"])
    assert res.exit_code == 2 and "needs --ckpt" in res.output
    res = CliRunner().invoke(main, ["train", "--set", "optim.lrr=1", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "optim.lrr" in res.output
