"""Constant-velocity baseline: keep the current velocity vector, straight ahead, for the whole horizon."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from harness.agents.base import SensorNeeds
from harness.trajectory import Trajectory, TrajectorySampling
from harness.types import Observation


class ConstantVelocityAgent:
    """NAVSIM's constant-velocity baseline: poses ``t * (vx, vy)`` with the heading of the velocity.

    NAVSIM's own agent drives along x at the current speed (heading 0); with ``vy`` the lateral component is
    kept too, which is equal for the (near-zero ``vy``) logs of real data.
    """

    name = "cv"
    privileged = False

    def sensor_needs(self) -> SensorNeeds:
        return SensorNeeds()

    def plan(self, observations: Sequence[Observation], sampling: TrajectorySampling) -> list[Trajectory]:
        if not observations:
            return []
        vel = np.stack([o.ego.velocity_mps for o in observations])  # (B, 2) ego frame
        t = sampling.times_s  # (T,)
        xy = vel[:, None, :] * t[None, :, None]
        heading = np.where(np.hypot(vel[:, 0], vel[:, 1]) > 1e-3, np.arctan2(vel[:, 1], vel[:, 0]), 0.0)
        poses = np.concatenate([xy, np.broadcast_to(heading[:, None, None], xy.shape[:2] + (1,))], axis=-1)
        return [Trajectory(p, sampling) for p in poses]
