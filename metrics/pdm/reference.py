"""Reference states for the PDM simulation: submitted local poses -> 41 global states at 10 Hz.

Re-implements, vectorised over proposals, NAVSIM ``pdm_score.transform_trajectory`` and
``get_trajectory_as_array`` with nuPlan's ``InterpolatedTrajectory`` (spec specs/navsim.md §3.1):

1. Knot times: ``t0 + (k + 1)·interval`` in float seconds (``t0 = t0_us · 1e-6``), truncated to integer
   microseconds with ``int(t_s · 1e6)``. At real timestamps (~1.6e9 s) float seconds carry ~0.2 µs of
   rounding, so a knot can land 1 µs off the ideal grid; this is reproduced, not corrected.
2. Knot poses: each local pose is composed with the initial rear-axle pose (matrix product, heading
   ``atan2`` of the rotation block) and passes through nuPlan's rear-axle/centre round trip.
3. The real initial state (logged velocity and acceleration) is prepended; the submitted poses get zero
   velocity, acceleration and steering.
4. Interpolation, linear in integer-microsecond time, of x, y, vx, vy, ax, ay and steering; headings are
   unwrapped along the knots, interpolated linearly and wrapped to [-π, π) (nuPlan ``principal_value``).
5. Sample times ``t0 + [0, 0.1, …, 4.0]`` s, truncated to microseconds the same way and clipped into the
   knots' span (a plan shorter than 4 s holds its last pose). Each sample is again an ``EgoState``: x, y
   get the rear-axle round trip; steering rate, angular velocity and angular acceleration are 0.

Every floating-point operation follows the official order (scipy ``interp1d._call_linear``:
``slope = (y_hi - y_lo) / (t_hi - t_lo)``, ``y = slope·(t - t_lo) + y_lo``), so on float64 input the
result equals the official one up to BLAS's fused multiply-adds in the pose composition (≤ 1 ulp of a
heading).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from metrics.pdm.state import (
    PACIFICA,
    SE2,
    STATE_SIZE,
    EgoInitialState,
    StateIndex,
    VehicleParameters,
    nuplan_rear_axle_roundtrip,
)

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

#: State columns that nuPlan interpolates linearly (``EgoState.to_split_state`` linear states, less time).
_LINEAR = np.array([StateIndex.X, StateIndex.Y, StateIndex.VELOCITY_X, StateIndex.VELOCITY_Y,
                    StateIndex.ACCELERATION_X, StateIndex.ACCELERATION_Y, StateIndex.STEERING_ANGLE])


def principal_value(angle_rad: npt.ArrayLike) -> F64:
    """nuPlan ``principal_value``: wrap to [-π, π) as ``(a + π) mod 2π - π`` (no fold at the boundary)."""
    return (np.asarray(angle_rad, dtype=np.float64) + np.pi) % (2 * np.pi) - np.pi


def seconds_to_us(time_s: npt.ArrayLike) -> I64:
    """nuPlan's ``int(t_s * 1e6)``: truncation toward zero of the float product, as int64 microseconds."""
    return np.trunc(np.asarray(time_s, dtype=np.float64) * 1e6).astype(np.int64)


def knot_times_us(
    timestamp_us: npt.ArrayLike, num_poses: int, interval_s: float, time_horizon_s: float | None = None
) -> I64:
    """Times of the submitted poses, ``(..., K)`` int64 microseconds (nuPlan ``_get_fixed_timesteps``).

    Args:
        timestamp_us: time of the initial state, ``()`` or ``(P,)`` microseconds.
        num_poses: number of submitted poses N.
        interval_s: their interval, seconds.
        time_horizon_s: the sampling's horizon; nuPlan's ``TrajectorySampling`` default is
            ``num_poses · interval_s``.

    Returns:
        ``K = min(N, len(arange(0, horizon, interval)))`` times: the official code zips the poses with
        that range, so a horizon shorter than the poses drops the last poses.
    """
    horizon = num_poses * interval_s if time_horizon_s is None else float(time_horizon_s)
    offsets_s = np.arange(0.0, horizon, interval_s) + interval_s
    offsets_s = offsets_s[:num_poses]
    t0_s = np.asarray(timestamp_us, dtype=np.int64).astype(np.float64) * 1e-6  # nuPlan TimePoint.time_s
    return seconds_to_us(offsets_s + t0_s[..., None])


def sample_times_us(start_time_us: npt.ArrayLike, num_steps: int = 40, step_s: float = 0.1) -> I64:
    """The simulation grid ``(..., num_steps + 1)`` in microseconds, before clipping to a trajectory's span.

    ``arange(0, num_steps·step_s + step_s, step_s) + t0_s``, truncated with ``int(t·1e6)``
    (NAVSIM ``get_trajectory_as_array`` with ``proposal_sampling``).
    """
    horizon = num_steps * step_s
    offsets_s = np.arange(0.0, horizon + step_s, step_s)[: num_steps + 1]
    if offsets_s.shape[0] != num_steps + 1:
        raise ValueError(f"sampling grid of {num_steps} steps of {step_s} s has {offsets_s.shape[0]} times")
    t0_s = np.asarray(start_time_us, dtype=np.int64).astype(np.float64) * 1e-6
    return seconds_to_us(offsets_s + t0_s[..., None])


def sample_reference(
    knot_states: npt.ArrayLike,
    knot_times_us: npt.ArrayLike,
    start_time_us: npt.ArrayLike,
    *,
    num_steps: int = 40,
    step_s: float = 0.1,
    vehicle: VehicleParameters = PACIFICA,
) -> F64:
    """Sample an interpolated ego trajectory on the simulation grid (nuPlan ``InterpolatedTrajectory``).

    Use this for any trajectory of ego states, e.g. PDM-Closed's planned states.

    Args:
        knot_states: ``(M, 11)`` or ``(P, M, 11)`` states in the global frame; the poses must be what nuPlan's
            ``EgoState.rear_axle`` reports (for states built from raw rear-axle arrays with
            ``EgoState.build_from_rear_axle``, pass the poses through ``nuplan_rear_axle_roundtrip`` first).
            Only x, y, heading, velocity, acceleration and steering angle are used.
        knot_times_us: ``(M,)`` or ``(P, M)`` strictly increasing integer microseconds, M >= 2.
        start_time_us: ``()`` or ``(P,)`` time of the first simulation state, microseconds.
        num_steps: simulation steps (states = num_steps + 1).
        step_s: simulation step, seconds.
        vehicle: for the rear-axle round trip of the sampled states.

    Returns:
        ``(num_steps + 1, 11)`` or ``(P, num_steps + 1, 11)`` reference states; times outside the knots' span
        are clipped to it.

    Raises:
        ValueError: on bad shapes, non-finite states or knot times that do not strictly increase.
    """
    knots = np.asarray(knot_states, dtype=np.float64)
    times = np.asarray(knot_times_us)
    unbatched = knots.ndim == 2
    if unbatched:
        knots, times = knots[None], times[None]
    if knots.ndim != 3 or knots.shape[-1] != STATE_SIZE or knots.shape[1] < 2:
        raise ValueError(f"knot_states: expected shape (M, 11) or (P, M, 11) with M >= 2, got {knots.shape}")
    if times.shape != knots.shape[:2] or times.dtype.kind not in "iu":
        raise ValueError(f"knot_times_us: expected integer array of shape {knots.shape[:2]}, got "
                         f"{times.dtype} {times.shape}")
    if not np.all(np.isfinite(knots[..., _LINEAR])) or not np.all(np.isfinite(knots[..., StateIndex.HEADING])):
        raise ValueError("knot_states: values must be finite (found NaN or inf)")
    times = times.astype(np.int64)
    if np.any(np.diff(times, axis=-1) <= 0):
        raise ValueError("knot_times_us must strictly increase along each trajectory")
    start = np.broadcast_to(np.asarray(start_time_us, dtype=np.int64), knots.shape[:1])

    grid_us = np.clip(sample_times_us(start, num_steps, step_s), times[:, :1], times[:, -1:])

    # scipy interp1d (kind="linear"): interval index = searchsorted(left), clipped to [1, M - 1].
    num, num_knots = times.shape
    t_knots = times.astype(np.float64)
    t = grid_us.astype(np.float64)
    hi = np.sum(times[:, None, :] < grid_us[:, :, None], axis=-1)
    hi = np.clip(hi, 1, num_knots - 1) + np.arange(num)[:, None] * num_knots  # flat row index
    lo = hi - 1
    t_lo = t_knots.reshape(-1)[lo]
    t_hi = t_knots.reshape(-1)[hi]

    values = np.empty((num, num_knots, _LINEAR.size + 1))
    values[..., :-1] = knots[..., _LINEAR]
    values[..., -1] = np.unwrap(knots[..., StateIndex.HEADING], axis=-1)
    values = values.reshape(num * num_knots, _LINEAR.size + 1)
    y_lo = values[lo]
    slope = (values[hi] - y_lo) / (t_hi - t_lo)[..., None]
    y = slope * (t - t_lo)[..., None] + y_lo

    out = np.zeros(knots.shape[:1] + (t.shape[1], STATE_SIZE), dtype=np.float64)
    out[..., StateIndex.X:StateIndex.Y + 1] = y[..., 0:2]  # slices: much faster than _LINEAR fancy indexing
    out[..., StateIndex.VELOCITY_X:StateIndex.STEERING_ANGLE + 1] = y[..., 2:7]
    out[..., StateIndex.HEADING] = principal_value(y[..., -1])
    # Each sample is rebuilt as an EgoState from its rear axle: the pose takes nuPlan's centre round trip.
    out[..., SE2] = nuplan_rear_axle_roundtrip(out[..., SE2], vehicle.rear_axle_to_center)
    return out[0] if unbatched else out


def local_to_global_poses(poses_local: npt.ArrayLike, origin_global: npt.ArrayLike) -> F64:
    """Compose local poses ``(B, N, 3)`` with origins ``(B, 3)`` as nuPlan's ``relative_to_absolute_poses``.

    nuPlan multiplies 3x3 homogeneous matrices and reads the heading back with ``atan2(R10, R00)``; the
    same sums are evaluated here in the same order (BLAS may fuse them, a difference of ≤ 1 ulp).
    """
    rel = np.asarray(poses_local, dtype=np.float64)
    org = np.asarray(origin_global, dtype=np.float64)[:, None, :]
    c0, s0 = np.cos(org[..., 2]), np.sin(org[..., 2])
    c1, s1 = np.cos(rel[..., 2]), np.sin(rel[..., 2])
    x = (c0 * rel[..., 0] + (-s0) * rel[..., 1]) + org[..., 0]
    y = (s0 * rel[..., 0] + c0 * rel[..., 1]) + org[..., 1]
    heading = np.arctan2(s0 * c1 + c0 * s1, c0 * c1 + (-s0) * s1)
    return np.stack([x, y, heading], axis=-1)


def reference_states_from_local_poses(
    poses_local: npt.ArrayLike,
    interval_s: float,
    initial: EgoInitialState,
    num_steps: int = 40,
    step_s: float = 0.1,
    *,
    time_horizon_s: float | None = None,
) -> F64:
    """NAVSIM's reference states for submitted poses (``transform_trajectory`` + ``get_trajectory_as_array``).

    Args:
        poses_local: ``(N, 3)`` or ``(P, N, 3)`` submitted (x, y, heading) in the rear-axle frame at t = 0
            (x forward, y left; metres, radians), pose k at ``(k + 1) · interval_s``. NAVSIM's ``Trajectory``
            holds float32 poses; pass them as they are (they are widened exactly).
        interval_s: interval of the submitted poses, seconds (NAVSIM: 0.5).
        initial: the real ego state at t = 0, unbatched or batched ``(P,)``.
        num_steps: simulation steps (NAVSIM: 40).
        step_s: simulation step, seconds (NAVSIM: 0.1).
        time_horizon_s: the submission's ``TrajectorySampling.time_horizon`` if it was not
            ``N · interval_s`` (see ``knot_times_us``).

    Returns:
        ``(num_steps + 1, 11)``, or ``(P, num_steps + 1, 11)`` when ``poses_local`` or ``initial`` is batched:
        global reference states; state 0 is the initial state (velocity and acceleration as logged).

    Raises:
        ValueError: on bad shapes or non-finite poses.
    """
    poses = np.asarray(poses_local, dtype=np.float64)
    if poses.ndim not in (2, 3) or poses.shape[-1] != 3 or poses.shape[-2] < 1:
        raise ValueError(f"poses_local: expected shape (N, 3) or (P, N, 3) with N >= 1, got {poses.shape}")
    if not np.all(np.isfinite(poses)):
        raise ValueError("poses_local: values must be finite (found NaN or inf)")
    if not (np.isfinite(interval_s) and interval_s > 0):
        raise ValueError(f"interval_s must be finite and > 0, got {interval_s!r}")
    unbatched = poses.ndim == 2 and initial.batch_shape == ()
    if poses.ndim == 3:
        num = poses.shape[0]
        if initial.batch_shape not in ((), (num,)):
            raise ValueError(f"poses_local has {num} proposals but initial has batch shape {initial.batch_shape}")
    else:
        num = initial.batch_shape[0] if initial.batch_shape else 1
        poses = np.broadcast_to(poses, (num,) + poses.shape)
    init = initial.broadcast_to(num)

    t_knots = knot_times_us(init.timestamp_us, poses.shape[1], interval_s, time_horizon_s)
    poses = poses[:, : t_knots.shape[1]]
    origin = init.rear_axle_pose_global()
    agent = nuplan_rear_axle_roundtrip(local_to_global_poses(poses, origin), init.vehicle.rear_axle_to_center)

    knots = np.zeros((num, 1 + agent.shape[1], STATE_SIZE), dtype=np.float64)
    knots[:, 0] = init.state_array()  # the initial EgoState itself: already round-tripped, not again
    knots[:, 1:, SE2] = agent  # velocity, acceleration and steering of the submitted poses: 0
    times = np.concatenate([init.timestamp_us[:, None], t_knots], axis=1)
    out = sample_reference(knots, times, init.timestamp_us, num_steps=num_steps, step_s=step_s,
                           vehicle=init.vehicle)
    return out[0] if unbatched else out
