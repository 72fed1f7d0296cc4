"""Batched kinematic bicycle model of NAVSIM's PDM simulation (``BatchKinematicBicycleModel``).

Spec: specs/navsim.md §3.4. Reference point: the rear axle. One step of length ``dt``:

1. First-order lags on the commands: ``a' = a + dt/(dt + τ_a)·(a_cmd − a)``;
   ``δ' = δ + dt/(dt + τ_δ)·((δ + dt·δ̇_cmd) − δ)``, ``δ̇' = (δ' − δ)/dt``; lateral acceleration 0.
2. Derivatives at the **old** pose, speed and steering angle: ``ẋ = v cos θ``, ``ẏ = v sin θ``,
   ``θ̇ = v tan δ / L``.
3. Explicit Euler: x, y, θ (wrapped with nuPlan's ``principal_value``), ``v += a'·dt``, ``v_y = 0``,
   ``δ = clip(δ + δ̇'·dt, ±max)``; then ``ω = v tan δ / L`` from the new values, ``α = (ω − ω_old)/dt``,
   acceleration ``(a', 0)`` and steering rate ``δ̇'``.

In NAVSIM ``dt`` is a nuPlan ``TimePoint`` difference in seconds: 100000 µs · 1e-6 = 0.09999999999999999,
not 0.1 (the tracker uses 0.1). ``simulation_step_s`` reproduces that.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from metrics.pdm.reference import principal_value
from metrics.pdm.state import StateIndex

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class BicycleParameters:
    """``BatchKinematicBicycleModel`` defaults, used unchanged by NAVSIM.

    Attributes:
        max_steering_angle_rad: steering angle bound, radians (π/3).
        accel_time_constant_s: time constant of the acceleration lag, seconds.
        steering_angle_time_constant_s: time constant of the steering-angle lag, seconds.
    """

    max_steering_angle_rad: float = np.pi / 3
    accel_time_constant_s: float = 0.2
    steering_angle_time_constant_s: float = 0.05


#: The parameters NAVSIM runs with.
NAVSIM_BICYCLE = BicycleParameters()


def simulation_step_s(step_s: float) -> float:
    """The motion model's step: ``step_s`` as nuPlan ``TimeDuration.from_s`` microseconds, then ``·1e-6``."""
    return int(step_s * int(1e6)) * 1e-6


def propagate(
    states: F64,
    acceleration_cmd: F64,
    steering_rate_cmd: F64,
    dt: float,
    wheel_base: float,
    params: BicycleParameters = NAVSIM_BICYCLE,
) -> F64:
    """One model step for a batch of states (``BatchKinematicBicycleModel.propagate_state``).

    Args:
        states: ``(P, 11)`` states at the rear axle, global frame.
        acceleration_cmd: ``(P,)`` commanded longitudinal acceleration, m/s².
        steering_rate_cmd: ``(P,)`` commanded steering rate, rad/s.
        dt: step, seconds.
        wheel_base: metres.
        params: steering bound and lag time constants.

    Returns:
        ``(P, 11)`` states after ``dt``.
    """
    accel = states[:, StateIndex.ACCELERATION_X]
    steering = states[:, StateIndex.STEERING_ANGLE]
    velocity = states[:, StateIndex.VELOCITY_X]
    heading = states[:, StateIndex.HEADING]

    ideal_steering = dt * steering_rate_cmd + steering
    new_accel = dt / (dt + params.accel_time_constant_s) * (acceleration_cmd - accel) + accel
    lagged_steering = dt / (dt + params.steering_angle_time_constant_s) * (ideal_steering - steering) + steering
    new_steering_rate = (lagged_steering - steering) / dt

    out = np.empty_like(states)  # keeps the caller's memory layout (simulate passes state-major views)
    out[:, StateIndex.X] = states[:, StateIndex.X] + velocity * np.cos(heading) * dt
    out[:, StateIndex.Y] = states[:, StateIndex.Y] + velocity * np.sin(heading) * dt
    yaw_rate = velocity * np.tan(steering) / wheel_base
    out[:, StateIndex.HEADING] = principal_value(heading + yaw_rate * dt)
    out[:, StateIndex.VELOCITY_X] = velocity + new_accel * dt
    out[:, StateIndex.VELOCITY_Y] = 0.0
    out[:, StateIndex.STEERING_ANGLE] = np.clip(
        steering + new_steering_rate * dt, -params.max_steering_angle_rad, params.max_steering_angle_rad
    )
    out[:, StateIndex.ANGULAR_VELOCITY] = (
        out[:, StateIndex.VELOCITY_X] * np.tan(out[:, StateIndex.STEERING_ANGLE]) / wheel_base
    )
    out[:, StateIndex.ACCELERATION_X] = new_accel
    out[:, StateIndex.ACCELERATION_Y] = 0.0
    out[:, StateIndex.ANGULAR_ACCELERATION] = (
        out[:, StateIndex.ANGULAR_VELOCITY] - states[:, StateIndex.ANGULAR_VELOCITY]
    ) / dt
    out[:, StateIndex.STEERING_RATE] = new_steering_rate
    return out
