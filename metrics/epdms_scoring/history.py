"""The human history states that EPDMS's history comfort (HC) prepends to the simulated states (§6.8).

NAVSIM ``main`` caches ``past_human_trajectory = InterpolatedTrajectory(scenario.get_ego_past_trajectory(0,
1.5))``: the logged ego states of the history frames (−1.5, −1.0, −0.5, 0.0 s; rear-axle pose, logged
velocity and acceleration as float32, everything else 0), each built with ``EgoState.build_from_rear_axle``.
``PDMScorer._calculate_history_comfort`` samples it at ``arange(start_us, end_us, 100_000)`` (integer
microseconds), drops the last sample and converts each interpolated ``EgoState`` to a state array. This
gives 14 states (−1.5 … −0.2 s), or 15 if the history spans slightly more than 1.5 s.

Interpolation as nuPlan's ``InterpolatedTrajectory`` (scipy ``interp1d``, linear in time): x, y, vx, vy,
ax, ay and steering linearly; the heading unwrapped along the knots, interpolated, wrapped back with
``principal_value``; every knot and every sample passes nuPlan's rear-axle/centre round trip.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from metrics.pdm.reference import principal_value
from metrics.pdm.state import (
    PACIFICA,
    SE2,
    STATE_SIZE,
    StateIndex,
    VehicleParameters,
    nuplan_rear_axle_roundtrip,
)

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

#: HC's history sampling interval, microseconds (``int(0.1 * 1e6)``).
HISTORY_STEP_US = 100_000

_LINEAR = (StateIndex.X, StateIndex.Y, StateIndex.VELOCITY_X, StateIndex.VELOCITY_Y, StateIndex.ACCELERATION_X,
           StateIndex.ACCELERATION_Y, StateIndex.STEERING_ANGLE)


def interpolate_states(knots: F64, knot_times_us: I64, query_us: I64,
                       vehicle: VehicleParameters = PACIFICA) -> F64:
    """nuPlan ``InterpolatedTrajectory.get_state_at_times`` on state arrays.

    Args:
        knots: ``(M, 11)`` ego states (poses as ``EgoState.rear_axle`` reports them), M >= 2.
        knot_times_us: ``(M,)`` strictly increasing integer microseconds.
        query_us: ``(Q,)`` query times within ``[knot_times_us[0], knot_times_us[-1]]``.

    Returns:
        ``(Q, 11)`` states; angular velocity/acceleration and steering rate 0.
    """
    t_k = np.asarray(knot_times_us, dtype=np.int64)
    q = np.asarray(query_us, dtype=np.int64)
    if knots.ndim != 2 or knots.shape[0] < 2 or knots.shape != (len(t_k), STATE_SIZE):
        raise ValueError(f"interpolate_states: knots {knots.shape} and times {t_k.shape} do not fit (M >= 2)")
    if np.any(np.diff(t_k) <= 0):
        raise ValueError("interpolate_states: knot times must strictly increase")
    if len(q) and (q.min() < t_k[0] or q.max() > t_k[-1]):
        raise ValueError("interpolate_states: query times outside the knots' span")
    hi = np.clip(np.searchsorted(t_k, q, side="left"), 1, len(t_k) - 1)
    lo = hi - 1
    values = np.concatenate([knots[:, list(_LINEAR)], np.unwrap(knots[:, StateIndex.HEADING])[:, None]], axis=1)
    t_lo, t_hi = t_k[lo].astype(np.float64), t_k[hi].astype(np.float64)
    slope = (values[hi] - values[lo]) / (t_hi - t_lo)[:, None]
    y = slope * (q.astype(np.float64) - t_lo)[:, None] + values[lo]
    out = np.zeros((len(q), STATE_SIZE), dtype=np.float64)
    out[:, list(_LINEAR)] = y[:, :-1]
    out[:, StateIndex.HEADING] = principal_value(y[:, -1])
    out[:, SE2] = nuplan_rear_axle_roundtrip(out[:, SE2], vehicle.rear_axle_to_center)
    return out


def history_states(poses_global: F64, dynamics: F64, times_us: I64, vehicle: VehicleParameters = PACIFICA) -> F64:
    """HC's history states from the logged history frames.

    Args:
        poses_global: ``(H, 3)`` rear-axle poses (x, y, heading) of the history frames, oldest first, the
            last being the current frame; global frame.
        dynamics: ``(H, 4)`` their logged vx, vy, ax, ay (ego frame; float32-rounded, as NAVSIM's EgoStatus).
        times_us: ``(H,)`` their timestamps, integer microseconds.

    Returns:
        ``(S, 11)`` states at ``arange(t_first, t_last, 0.1 s)`` without the last sample (S = 14 for an exactly
        1.5 s history); empty ``(0, 11)`` when fewer than two frames or the grid has a single sample.
    """
    poses = np.asarray(poses_global, dtype=np.float64)
    dyn = np.asarray(dynamics, dtype=np.float64)
    t = np.asarray(times_us, dtype=np.int64)
    if poses.shape != (len(t), 3) or dyn.shape != (len(t), 4):
        raise ValueError(f"history_states: poses {poses.shape}, dynamics {dyn.shape}, times {t.shape} disagree")
    if len(t) < 2:
        return np.zeros((0, STATE_SIZE))
    knots = np.zeros((len(t), STATE_SIZE), dtype=np.float64)
    knots[:, SE2] = nuplan_rear_axle_roundtrip(poses, vehicle.rear_axle_to_center)
    knots[:, StateIndex.VELOCITY_X:StateIndex.VELOCITY_Y + 1] = dyn[:, :2]
    knots[:, StateIndex.ACCELERATION_X:StateIndex.ACCELERATION_Y + 1] = dyn[:, 2:]
    grid = np.arange(t[0], t[-1], HISTORY_STEP_US, dtype=np.int64)
    grid = np.clip(grid, t[0], t[-1])[:-1]
    return interpolate_states(knots, t, grid, vehicle)
