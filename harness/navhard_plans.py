"""A two-stage run's plans (``plans.npz``), which ``lead-bench submit navsim --version 2`` turns into a pickle.

The file is the one-stage runs' ``plans.npz`` (``tokens`` (N,), ``poses`` (N, 8, 3) float64 in each token's
rear-axle frame at t = 0, ``interval_s``), so :func:`harness.runner.read_plans` reads it, plus what a v2
submission needs to know and check:

- ``stage`` (N,) uint8: 1 for a stage-one (original or ``prev``) token, 2 for a stage-two (synthetic) one;
- ``stage_one_tokens`` / ``stage_two_tokens``: every token of each stage of the split the run was scored on,
  so the submission is validated against the split (every token once) without the data root.

Written atomically (temporary file, then rename), read without pickles.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.atomic import atomic_write_bytes
from harness.errors import DataError
from harness.trajectory import Trajectory, TrajectorySampling

PLANS_FILE = "plans.npz"
_STAGE_KEYS = ("stage", "stage_one_tokens", "stage_two_tokens")


@dataclass(frozen=True)
class StagePlans:
    """A two-stage run's plans by stage, with the split's tokens of each stage (for validation)."""

    first: dict[str, Trajectory]
    second: dict[str, Trajectory]
    stage_one_tokens: tuple[str, ...]
    stage_two_tokens: tuple[str, ...]


def write_stage_plans(path: Path, plans: Mapping[str, Trajectory], stage_one_tokens: tuple[str, ...],
                      stage_two_tokens: tuple[str, ...]) -> int:
    """Write the plans of the split's tokens (stage one first, split order) to ``path``; return how many.

    Tokens without a plan (failed) are left out; the split's token lists say which they were.

    Raises:
        ValueError: a token belongs to both stages, or plans differ in sampling.
    """
    both = set(stage_one_tokens) & set(stage_two_tokens)
    if both:
        raise ValueError(f"{len(both)} token(s) in both stages: {sorted(both)[:5]}")
    have = [(t, 1) for t in stage_one_tokens if t in plans] + [(t, 2) for t in stage_two_tokens if t in plans]
    samplings = {plans[t].sampling for t, _ in have}
    if len(samplings) > 1:
        raise ValueError(f"plans with {len(samplings)} different samplings: {sorted(map(str, samplings))}")
    sampling = samplings.pop() if samplings else TrajectorySampling(8, 0.5)
    poses = np.array([plans[t].poses for t, _ in have], dtype=np.float64).reshape(len(have), sampling.num_poses, 3)
    buf = io.BytesIO()
    np.savez(buf, tokens=np.array([t for t, _ in have], dtype=str), poses=poses,
             interval_s=np.array(sampling.interval_s), stage=np.array([s for _, s in have], dtype=np.uint8),
             stage_one_tokens=np.array(stage_one_tokens, dtype=str),
             stage_two_tokens=np.array(stage_two_tokens, dtype=str))
    atomic_write_bytes(path, buf.getvalue())
    return len(have)


def read_stage_plans(run_dir: Path) -> StagePlans | None:
    """The stage-split plans of a two-stage run's ``plans.npz``; None for a one-stage run's file.

    Raises:
        DataError: the file is missing, unreadable, or its arrays disagree (naming what).
    """
    path = Path(run_dir) / PLANS_FILE
    try:
        with np.load(path, allow_pickle=False) as z:
            if not all(k in z.files for k in _STAGE_KEYS):
                return None
            tokens, poses, interval = z["tokens"], z["poses"], float(z["interval_s"])
            stage, one, two = z["stage"], z["stage_one_tokens"], z["stage_two_tokens"]
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"cannot read the run's plans ({exc}); was it written by lead-bench run?", path=path) from exc
    if not (poses.ndim == 3 and poses.shape[0] == tokens.shape[0] == stage.shape[0] and poses.shape[2] == 3):
        raise DataError(f"plans arrays disagree: tokens {tokens.shape}, stage {stage.shape}, poses {poses.shape}",
                        path=path)
    if not set(np.unique(stage)) <= {1, 2}:
        raise DataError(f"stage must be 1 or 2, got {sorted(set(np.unique(stage).tolist()))}", path=path)
    if len(set(tokens.tolist())) != len(tokens):
        raise DataError("a token appears more than once in tokens", path=path)
    by_stage: tuple[dict[str, Trajectory], dict[str, Trajectory]] = ({}, {})
    try:
        sampling = TrajectorySampling(int(poses.shape[1]), interval)
        for t, p, s in zip(tokens, poses, stage, strict=True):
            by_stage[int(s) - 1][str(t)] = Trajectory(p, sampling)
    except ValueError as exc:
        raise DataError(f"bad plan: {exc}", path=path) from exc
    return StagePlans(by_stage[0], by_stage[1], tuple(map(str, one)), tuple(map(str, two)))
