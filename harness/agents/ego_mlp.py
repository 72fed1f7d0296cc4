"""Ego-status MLP baseline (NAVSIM's ``EgoStatusMLPAgent``): velocity, acceleration and command -> poses.

Input: the 8-vector (vx, vy, ax, ay, one-hot command) in the ego frame; output: ``num_poses`` (x, y, heading)
with heading squashed by ``pi * tanh``; L1 loss. Trains on a split's samples in seconds on a CPU.
Checkpoints hold only tensors and plain values, and load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from harness.agents.base import SensorNeeds
from harness.atomic import temp_path
from harness.errors import DataError
from harness.trajectory import NAVSIM_SAMPLING, Trajectory, TrajectorySampling
from harness.types import Observation, Sample

CHECKPOINT_KIND = "lead-bench/ego-status-mlp"


class EgoStatusMLP(nn.Module):
    def __init__(self, num_poses: int, hidden_dim: int = 512) -> None:
        super().__init__()
        self.num_poses = num_poses
        self.mlp = nn.Sequential(
            nn.Linear(8, hidden_dim), nn.ReLU(),
            nn.Linear(hidden_dim, hidden_dim), nn.ReLU(),
            nn.Linear(hidden_dim, hidden_dim), nn.ReLU(),
            nn.Linear(hidden_dim, num_poses * 3),
        )

    def forward(self, status: torch.Tensor) -> torch.Tensor:
        """``status (B, 8)`` -> poses ``(B, num_poses, 3)``."""
        poses = self.mlp(status).reshape(-1, self.num_poses, 3)
        return torch.cat([poses[..., :2], torch.tanh(poses[..., 2:]) * np.pi], dim=-1)


def status_features(observations: Sequence[Observation]) -> torch.Tensor:
    """``(B, 8)`` float32: vx, vy, ax, ay, one-hot command."""
    feats = np.stack([
        np.concatenate([o.ego.velocity_mps, o.ego.acceleration_mps2, o.navigation.command.one_hot()])
        for o in observations
    ])
    return torch.as_tensor(feats, dtype=torch.float32)


@dataclass(frozen=True)
class TrainReport:
    samples: int
    epochs: int
    final_l1: float


def train_ego_mlp(
    samples: Sequence[Sample],
    *,
    sampling: TrajectorySampling = NAVSIM_SAMPLING,
    epochs: int = 300,
    lr: float = 1e-3,
    hidden_dim: int = 256,
    seed: int = 0,
) -> tuple[EgoStatusMLP, TrainReport]:
    """Fit the MLP to the samples' logged futures (full-batch Adam; deterministic for a seed)."""
    usable = [s for s in samples if s.targets.future is not None]
    if not usable:
        raise DataError("no training samples with a logged future")
    torch.manual_seed(seed)
    x = status_features([s.observation for s in usable])
    y = torch.as_tensor(np.stack([s.targets.future.resample(sampling).poses for s in usable]),  # type: ignore[union-attr]
                        dtype=torch.float32)
    model = EgoStatusMLP(sampling.num_poses, hidden_dim)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss = torch.tensor(float("nan"))
    for _ in range(epochs):
        opt.zero_grad()
        loss = nn.functional.l1_loss(model(x), y)
        loss.backward()
        opt.step()
    model.eval()
    return model, TrainReport(len(usable), epochs, float(loss.detach()))


def save_checkpoint(model: EgoStatusMLP, path: Path, sampling: TrajectorySampling) -> None:
    """Write atomically: tensors and plain values only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    hidden = int(model.mlp[0].out_features)  # type: ignore[union-attr]
    torch.save({"kind": CHECKPOINT_KIND, "num_poses": sampling.num_poses, "interval_s": sampling.interval_s,
                "hidden_dim": hidden, "state_dict": model.state_dict()}, tmp)
    os.replace(tmp, path)


class EgoMLPAgent:
    """Runs a trained :class:`EgoStatusMLP` checkpoint."""

    name = "mlp"
    privileged = False

    def __init__(self, checkpoint: str | Path) -> None:
        path = Path(checkpoint)
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError as exc:
            raise DataError("checkpoint not found", path=path) from exc
        except Exception as exc:  # torch raises several types for foreign or corrupt files
            raise DataError(f"cannot load checkpoint ({type(exc).__name__}: {exc})", path=path) from exc
        if not isinstance(ckpt, dict) or ckpt.get("kind") != CHECKPOINT_KIND:
            raise DataError(f"not an ego-status MLP checkpoint (expected kind '{CHECKPOINT_KIND}')", path=path)
        self.sampling = TrajectorySampling(int(ckpt["num_poses"]), float(ckpt["interval_s"]))
        self.model = EgoStatusMLP(self.sampling.num_poses, int(ckpt["hidden_dim"]))
        self.model.load_state_dict(ckpt["state_dict"])
        self.model.eval()
        self.checkpoint = path

    def sensor_needs(self) -> SensorNeeds:
        return SensorNeeds()

    def plan(self, observations: Sequence[Observation], sampling: TrajectorySampling) -> list[Trajectory]:
        if not observations:
            return []
        with torch.no_grad():
            poses = self.model(status_features(observations)).double().numpy()
        trajs = [Trajectory(p, self.sampling) for p in poses]
        return trajs if sampling == self.sampling else [t.resample(sampling, hold_last=True) for t in trajs]
