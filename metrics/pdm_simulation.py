"""NAVSIM's trajectory-to-simulated-states pipeline (PDMS v1.1 and EPDMS v2.2 alike), batched over proposals.

Spec: specs/navsim.md §2–§3 and §14.1–2. Official code (identical in NAVSIM ``v1.1`` and ``main`` up to
formatting): ``navsim/evaluate/pdm_score.py`` (``transform_trajectory``, ``get_trajectory_as_array``) and
``pdm_planner/simulation/`` (``PDMSimulator``, ``BatchLQRTracker``, ``BatchKinematicBicycleModel``), on top of
nuPlan's ``InterpolatedTrajectory``, ``EgoState`` and ``TimePoint``.

Pipeline per scene::

    initial = EgoInitialState.from_ego_dynamic_state(pose_global, ego_dynamic_state, timestamp_us)
    reference = reference_states_from_local_poses(poses_local, 0.5, initial)   # (41, 11), global frame
    simulated = simulate(np.stack([pdm_closed_reference, reference]), initial) # (2, 41, 11)

Everything is vectorised over proposals ``P`` (and over scenes: ``EgoInitialState`` may be batched ``(P,)``);
only the 40 simulation steps are a Python loop.

Agreement with the official code (NAVSIM v1.1 and main on nuPlan-devkit, same numpy), measured on 3,300
random float64 scenes at map-scale coordinates: reference states equal except headings (≤ 2 ulp, from
BLAS's fused multiply-adds in nuPlan's pose composition); simulated x, y bit-identical in 3,292 scenes and
one ulp apart at some step in 8 (≤ 9.3e-10 m at |y| > 4.2e6 m, where that is a double's spacing); every
other column within 8.2e-11, and within 2.2e-12 where no such flip happens. ``metrics.pdm.tracker`` says
where the arithmetic differs and why.

Frames and units: global (map) frame, metres, radians counter-clockwise, rear-axle reference point;
velocities and accelerations in the ego (body) frame; times in integer microseconds.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from metrics.pdm.bicycle import NAVSIM_BICYCLE, BicycleParameters, propagate, simulation_step_s
from metrics.pdm.reference import (
    knot_times_us,
    local_to_global_poses,
    principal_value,
    reference_states_from_local_poses,
    sample_reference,
    sample_times_us,
)
from metrics.pdm.state import (
    PACIFICA,
    SE2,
    STATE_SIZE,
    EgoInitialState,
    StateIndex,
    VehicleParameters,
    nuplan_rear_axle_roundtrip,
)
from metrics.pdm.tracker import NAVSIM_LQR, LQRParameters, Profiles, fit_profiles, lqr_commands

__all__ = [
    "NAVSIM_BICYCLE",
    "NAVSIM_LQR",
    "PACIFICA",
    "SE2",
    "STATE_SIZE",
    "BicycleParameters",
    "EgoInitialState",
    "LQRParameters",
    "Profiles",
    "StateIndex",
    "VehicleParameters",
    "fit_profiles",
    "knot_times_us",
    "local_to_global_poses",
    "lqr_commands",
    "nuplan_rear_axle_roundtrip",
    "principal_value",
    "propagate",
    "reference_states_from_local_poses",
    "sample_reference",
    "sample_times_us",
    "simulate",
    "simulation_step_s",
]

F64 = npt.NDArray[np.float64]


def simulate(
    reference_states: npt.ArrayLike,
    initial: EgoInitialState,
    *,
    step_s: float = 0.1,
    lqr: LQRParameters = NAVSIM_LQR,
    bicycle: BicycleParameters = NAVSIM_BICYCLE,
) -> F64:
    """Track reference states with the batched LQR on the kinematic bicycle (``PDMSimulator.simulate_proposals``).

    State 0 of the result is the initial state (``EgoInitialState.state_array``); state k + 1 is state k
    propagated by the bicycle model for one step under the LQR's command for reference index k. The
    reference's velocity and acceleration fields are ignored: the tracker re-estimates speed and curvature
    from the reference poses.

    Args:
        reference_states: ``(P, T + 1, 11)`` reference states in the global frame, T >= 2 (NAVSIM: 41 states
            from ``reference_states_from_local_poses`` or ``sample_reference``; the official simulator
            truncates longer arrays to ``num_poses + 1`` states, here all given states are simulated).
        initial: the real ego state at t = 0, unbatched (shared by all proposals) or batched ``(P,)``.
        step_s: the proposal interval, seconds; the tracker uses it as is, the motion model as a nuPlan
            ``TimePoint`` difference (see ``simulation_step_s``).
        lqr: tracker parameters (NAVSIM defaults).
        bicycle: motion model parameters (NAVSIM defaults).

    Returns:
        ``(P, T + 1, 11)`` simulated states in the global frame.

    Raises:
        ValueError: on bad shapes or non-finite reference states.
    """
    reference = np.asarray(reference_states, dtype=np.float64)
    if reference.ndim != 3 or reference.shape[-1] != STATE_SIZE or reference.shape[1] < 3:
        raise ValueError(f"reference_states: expected shape (P, T + 1, 11) with T >= 2, got {reference.shape}")
    if not np.all(np.isfinite(reference[..., SE2])):
        raise ValueError("reference_states: poses must be finite (found NaN or inf)")
    num, num_states = reference.shape[:2]
    init = initial.broadcast_to(num)
    wheel_base = init.vehicle.wheel_base
    dt_model = simulation_step_s(step_s)

    profiles = fit_profiles(reference[..., SE2], step_s, lqr)
    # State-major (T + 1, 11, P) buffers: state[:, X] of a (P, 11) view is then one contiguous row, which
    # keeps every per-step operation cache-friendly for large batches.
    reference_sm = np.ascontiguousarray(np.moveaxis(reference, 0, -1))
    simulated = np.empty_like(reference_sm)
    simulated[0] = init.state_array().T
    for step in range(num_states - 1):
        state = simulated[step].T
        acceleration, steering_rate = lqr_commands(
            state, reference_sm[step].T, step, profiles, step_s, wheel_base, lqr
        )
        simulated[step + 1] = propagate(state, acceleration, steering_rate, dt_model, wheel_base, bicycle).T
    return np.ascontiguousarray(np.moveaxis(simulated, -1, 0))
