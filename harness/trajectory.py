"""Trajectories with their sampling, and the one place where they are resampled.

A ``Trajectory`` holds future poses ``(x, y, heading)`` in the canonical ego frame (x forward, y left,
rear-axle origin at t = 0). Pose ``k`` lies at ``t = (k + 1) * interval_s``: the t = 0 pose (the origin) is
implicit, as in nuPlan's ``TrajectorySampling`` where ``num_poses`` excludes the initial state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from harness.geometry import normalize_angle

_TIME_TOL = 1e-6


@dataclass(frozen=True)
class TrajectorySampling:
    """How a trajectory is sampled: ``num_poses`` poses every ``interval_s`` seconds (t = 0 excluded)."""

    num_poses: int
    interval_s: float

    def __post_init__(self) -> None:
        if (not isinstance(self.num_poses, int | np.integer) or isinstance(self.num_poses, bool)
                or self.num_poses < 1):
            raise ValueError(f"TrajectorySampling.num_poses must be a positive int, got {self.num_poses!r}")
        if not (isinstance(self.interval_s, int | float | np.integer | np.floating)
                and math.isfinite(self.interval_s) and self.interval_s > 0):
            raise ValueError(f"TrajectorySampling.interval_s must be finite and > 0, got {self.interval_s!r}")

    @property
    def time_horizon_s(self) -> float:
        return self.num_poses * self.interval_s

    @property
    def times_s(self) -> npt.NDArray[np.float64]:
        """Times ``(num_poses,)`` of the poses in seconds after the current frame."""
        return (np.arange(self.num_poses, dtype=np.float64) + 1.0) * self.interval_s

    @classmethod
    def from_horizon(cls, time_horizon_s: float, interval_s: float) -> TrajectorySampling:
        if not (math.isfinite(time_horizon_s) and math.isfinite(interval_s) and interval_s > 0):
            raise ValueError(f"horizon {time_horizon_s} s and interval {interval_s} s must be finite, interval > 0")
        n = time_horizon_s / interval_s
        if abs(n - round(n)) > 1e-6:
            raise ValueError(f"horizon {time_horizon_s} s is not a multiple of the interval {interval_s} s")
        return cls(int(round(n)), float(interval_s))


#: NAVSIM submissions: 8 poses at 0.5 s (4 s).
NAVSIM_SAMPLING = TrajectorySampling(8, 0.5)
#: Waymo E2E predictions: 20 positions at 0.25 s (5 s).
WAYMO_SAMPLING = TrajectorySampling(20, 0.25)


@dataclass(frozen=True)
class Trajectory:
    """Future ego poses ``(num_poses, 3)`` = (x m, y m, heading rad) in the canonical ego frame."""

    poses: npt.NDArray[np.float64]
    sampling: TrajectorySampling = field(default=NAVSIM_SAMPLING)

    def __post_init__(self) -> None:
        if not isinstance(self.sampling, TrajectorySampling):
            raise ValueError(f"Trajectory.sampling must be a TrajectorySampling, got {self.sampling!r}")
        # A copy: freezing the caller's array (or a view of it) would change or alias their data.
        try:
            poses = np.array(self.poses, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"Trajectory.poses: cannot convert to float64: {exc}") from exc
        if poses.ndim != 2 or poses.shape[1] != 3:
            raise ValueError(f"Trajectory.poses must have shape (N, 3), got {poses.shape}")
        if poses.shape[0] != self.sampling.num_poses:
            raise ValueError(
                f"Trajectory.poses has {poses.shape[0]} poses but its sampling says {self.sampling.num_poses}"
            )
        if not np.all(np.isfinite(poses)):
            bad = np.argwhere(~np.isfinite(poses))[0]
            raise ValueError(f"Trajectory.poses must be finite; pose {bad[0]} column {bad[1]} is {poses[tuple(bad)]}")
        poses.setflags(write=False)
        object.__setattr__(self, "poses", poses)

    @property
    def times_s(self) -> npt.NDArray[np.float64]:
        return self.sampling.times_s

    @property
    def xy(self) -> npt.NDArray[np.float64]:
        return self.poses[:, :2]

    def resample(self, target: TrajectorySampling, *, hold_last: bool = False) -> Trajectory:
        """This trajectory at another sampling, by :func:`resample_poses` (origin at t = 0 included)."""
        return Trajectory(resample_poses(self.poses, self.times_s, target.times_s, hold_last=hold_last), target)


def resample_poses(
    poses: npt.ArrayLike,
    times_s: npt.ArrayLike,
    query_times_s: npt.ArrayLike,
    *,
    include_origin: bool = True,
    hold_last: bool = False,
) -> npt.NDArray[np.float64]:
    """Linearly interpolate poses ``(N, 3)`` given at increasing ``times_s`` to ``query_times_s``.

    x and y are interpolated linearly in time; headings are unwrapped along the sequence, interpolated, then
    wrapped back (nuPlan's ``InterpolatedTrajectory`` does the same). With ``include_origin`` the pose
    (0, 0, 0) at t = 0 anchors the start, which is the canonical frame's definition.

    Raises:
        ValueError: if a query time lies outside the known times and ``hold_last`` is false.
    """
    p = np.asarray(poses, dtype=np.float64)
    t = np.asarray(times_s, dtype=np.float64)
    q = np.asarray(query_times_s, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3 or p.shape[0] != t.shape[0]:
        raise ValueError(f"resample_poses needs poses (N, 3) and times (N,), got {p.shape} and {t.shape}")
    if include_origin:
        p = np.concatenate([np.zeros((1, 3)), p], axis=0)
        t = np.concatenate([[0.0], t])
    if np.any(np.diff(t) <= 0):
        raise ValueError("resample_poses needs strictly increasing times")
    lo, hi = t[0] - _TIME_TOL, t[-1] + _TIME_TOL
    if not hold_last and (np.any(q < lo) or np.any(q > hi)):
        raise ValueError(
            f"query times [{q.min():.3f}, {q.max():.3f}] s exceed the trajectory's [{t[0]:.3f}, {t[-1]:.3f}] s"
        )
    qc = np.clip(q, t[0], t[-1])
    heading = np.unwrap(p[:, 2])
    out = np.stack(
        [np.interp(qc, t, p[:, 0]), np.interp(qc, t, p[:, 1]), normalize_angle(np.interp(qc, t, heading))],
        axis=-1,
    )
    return out


def headings_from_positions(xy: npt.ArrayLike, initial_heading_rad: float = 0.0) -> npt.NDArray[np.float64]:
    """Headings ``(N,)`` for positions ``(N, 2)`` that come without them (Waymo), from the origin onward.

    Each heading is the direction from the previous position (the origin for the first); where a step is
    shorter than 1 cm the previous heading is kept, so a stopped vehicle does not spin.
    """
    p = np.concatenate([np.zeros((1, 2)), np.asarray(xy, dtype=np.float64)], axis=0)
    d = np.diff(p, axis=0)
    h = np.arctan2(d[:, 1], d[:, 0])
    moving = np.linalg.norm(d, axis=1) >= 0.01
    idx = np.where(moving, np.arange(len(h)), -1)
    idx = np.maximum.accumulate(idx)
    return np.where(idx >= 0, h[np.maximum(idx, 0)], initial_heading_rad)
