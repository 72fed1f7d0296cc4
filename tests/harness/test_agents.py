"""Baseline agents: constant velocity, human replay, ego-status MLP (training, checkpoints)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from adapters.navsim.reader import NavsimReader
from harness.agents import build_agent
from harness.agents.base import PrivilegedPolicy
from harness.agents.constant_velocity import ConstantVelocityAgent
from harness.agents.ego_mlp import EgoMLPAgent, save_checkpoint, train_ego_mlp
from harness.errors import ConfigError, DataError
from harness.runner import plan_samples
from harness.trajectory import NAVSIM_SAMPLING, TrajectorySampling
from harness.types import DrivingCommand, EgoState, Navigation, Observation


def _obs(vx: float, vy: float = 0.0) -> Observation:
    ego = EgoState(np.array([vx, vy]), np.zeros(2), np.zeros((1, 3)), np.zeros(1))
    return Observation(cameras={}, ego=ego, navigation=Navigation(DrivingCommand.STRAIGHT))


def test_constant_velocity_hand_values():
    (plan,) = ConstantVelocityAgent().plan([_obs(10.0)], NAVSIM_SAMPLING)
    np.testing.assert_allclose(plan.poses[:, 0], 10.0 * 0.5 * np.arange(1, 9))
    np.testing.assert_allclose(plan.poses[:, 1:], 0.0)
    (diag,) = ConstantVelocityAgent().plan([_obs(3.0, 4.0)], TrajectorySampling(2, 1.0))
    np.testing.assert_allclose(diag.poses, [[3, 4, np.arctan2(4, 3)], [6, 8, np.arctan2(4, 3)]])
    (still,) = ConstantVelocityAgent().plan([_obs(0.0)], NAVSIM_SAMPLING)
    np.testing.assert_allclose(still.poses, 0.0)


def test_human_is_privileged_and_replays_the_future(small_world_root):
    reader = NavsimReader(small_world_root, "test")
    samples = [reader.load(r) for r in reader.index()[:3]]
    human = build_agent("human")
    assert isinstance(human, PrivilegedPolicy) and human.privileged
    for s, plan in zip(samples, plan_samples(human, samples, NAVSIM_SAMPLING)):
        np.testing.assert_allclose(plan.poses, s.targets.future.resample(NAVSIM_SAMPLING).poses)


def test_mlp_trains_beats_cv_and_round_trips(small_world_root, tmp_path):
    train = NavsimReader(small_world_root, "train")
    samples = [train.load(r) for r in train.index()]
    model, report = train_ego_mlp(samples, epochs=200, hidden_dim=64)
    ckpt = tmp_path / "mlp.pt"
    save_checkpoint(model, ckpt, NAVSIM_SAMPLING)
    agent = EgoMLPAgent(ckpt)
    obs = [s.observation for s in samples]
    gt = np.stack([s.targets.future.resample(NAVSIM_SAMPLING).xy for s in samples])
    mlp_err = np.linalg.norm(np.stack([p.xy for p in agent.plan(obs, NAVSIM_SAMPLING)]) - gt, axis=-1).mean()
    cv_err = np.linalg.norm(np.stack([p.xy for p in ConstantVelocityAgent().plan(obs, NAVSIM_SAMPLING)]) - gt,
                            axis=-1).mean()
    assert report.final_l1 < 1.0 and mlp_err < cv_err
    # Same weights give the same plans after a reload.
    again = EgoMLPAgent(ckpt).plan(obs[:2], NAVSIM_SAMPLING)
    np.testing.assert_allclose(again[0].poses, agent.plan(obs[:1], NAVSIM_SAMPLING)[0].poses, atol=1e-6)


class _Evil:
    def __reduce__(self):
        return (print, ("side effect",))


def test_checkpoints_load_with_weights_only(tmp_path):
    bad = tmp_path / "evil.pt"
    torch.save({"kind": "x", "payload": _Evil()}, bad)
    with pytest.raises(DataError, match="cannot load checkpoint"):
        EgoMLPAgent(bad)
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(DataError, match="not an ego-status MLP checkpoint"):
        EgoMLPAgent(other)
    with pytest.raises(DataError, match="not found"):
        EgoMLPAgent(tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(DataError):
        EgoMLPAgent(garbage)


def test_unknown_agent_lists_known_ones():
    with pytest.raises(ConfigError, match="known agents: cv, human, mlp"):
        build_agent("transfuser")
