"""Tests for metrics.pdm_simulation: NAVSIM's submitted-trajectory -> reference -> LQR + bicycle pipeline.

Hand values follow specs/navsim.md §2–§3 and the official code where the two differ (see the module
docstrings of metrics/pdm/*): reference = linear interpolation in integer-microsecond time of the initial
state and the submitted poses (headings unwrapped, wrapped back to [-π, π)); bicycle step with lags
dt/(dt + 0.2) ≈ 1/3 and dt/(dt + 0.05) ≈ 2/3, Euler at the old state; LQR as in §3.3 with NAVSIM's
regulariser for the velocity fit.

``loop_simulate`` below is a straightforward one-proposal implementation written from the spec with explicit
3x3 matrices and ``np.linalg.lstsq``: an independent oracle for the vectorised code and the baseline of
benchmarks/bench_pdm_simulation.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.geometry import global_to_local, local_to_global
from metrics.pdm_simulation import (
    PACIFICA,
    EgoInitialState,
    LQRParameters,
    StateIndex,
    fit_profiles,
    knot_times_us,
    nuplan_rear_axle_roundtrip,
    propagate,
    reference_states_from_local_poses,
    sample_reference,
    sample_times_us,
    simulate,
    simulation_step_s,
)

S = StateIndex
T8 = np.arange(1, 9) * 0.5  # NAVSIM submission times, s
L = PACIFICA.wheel_base
DT_MODEL = 100_000 * 1e-6  # the bicycle's step: a nuPlan TimePoint difference, 0.09999999999999999 s


def start(pose=(0.0, 0.0, 0.0), v=(0.0, 0.0), a=(0.0, 0.0), t_us=0) -> EgoInitialState:
    return EgoInitialState(np.array(pose, dtype=float), np.array(v, dtype=float), np.array(a, dtype=float), t_us)


def straight(speed_mps: float, times_s=T8) -> np.ndarray:
    return np.stack([speed_mps * times_s, 0 * times_s, 0 * times_s], axis=-1)


def arc(radius_m: float, speed_mps: float, times_s=T8) -> np.ndarray:
    th = speed_mps * times_s / radius_m
    return np.stack([radius_m * np.sin(th), radius_m * (1 - np.cos(th)), th], axis=-1)


def wrap(a):
    return np.arctan2(np.sin(a), np.cos(a))


# ----------------------------------------------------------------------- independent loop implementation

def navsim_regulariser(num: int) -> np.ndarray:
    """NAVSIM's velocity-fit regulariser rows over (v0, a_0 … a_{num-2}): -a_i (i < num-3), a_{num-2} - a_{num-3}."""
    j = np.zeros((num - 2, num))
    for i in range(num - 2):
        j[i, i + 1] = -1.0
    j[num - 3, num - 1] = 1.0
    return j


def loop_profiles(poses: np.ndarray, dt: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Velocity and curvature profiles (T,) of one reference (T + 1, 3) by stacked least squares."""
    num = len(poses) - 1
    d = np.diff(poses, axis=0)
    c = np.zeros((num, num))
    c[:, 0] = dt
    for k in range(num):
        c[k, 1:k + 1] = dt**2
    th = poses[:-1, 2]
    design = np.vstack([c * np.cos(th)[:, None], c * np.sin(th)[:, None], math.sqrt(1e-4) * navsim_regulariser(num)])
    target = np.concatenate([d[:, 0], d[:, 1], np.zeros(num - 2)])
    x = np.linalg.lstsq(design, target, rcond=None)[0]
    velocity = x[0] + np.concatenate([[0.0], np.cumsum(x[1:] * dt)])
    reg = np.diag(np.sqrt([1e-10] + [1e-2] * (num - 1)))
    x = np.linalg.lstsq(np.vstack([c * velocity[:, None], reg]),
                        np.concatenate([wrap(d[:, 2]), np.zeros(num)]), rcond=None)[0]
    curvature = x[0] + np.concatenate([[0.0], np.cumsum(x[1:] * dt)])
    return velocity, curvature


def loop_simulate(reference: np.ndarray, state0: np.ndarray, dt: float = 0.1) -> np.ndarray:
    """One proposal: reference (T + 1, 11) global, initial state (11,) -> simulated (T + 1, 11)."""
    num = len(reference) - 1
    velocity, curvature = loop_profiles(reference[:, :3], dt)
    q, r = np.diag([1.0, 10.0, 0.0]), 1.0
    out = [np.asarray(state0, dtype=float)]
    for i in range(num):
        s, ref = out[-1], reference[i]
        dx, dy = s[S.X] - ref[S.X], s[S.Y] - ref[S.Y]
        x0 = np.array([-dx * math.sin(ref[S.HEADING]) + dy * math.cos(ref[S.HEADING]),
                       wrap(s[S.HEADING] - ref[S.HEADING]), s[S.STEERING_ANGLE]])
        v0 = s[S.VELOCITY_X]
        look = min(i + 10, num - 1)
        if velocity[look] <= 0.2 and v0 <= 0.2:
            accel, rate = -0.5 * (v0 - velocity[look]), 0.0
        else:
            accel = -(1.0 * 10.0) / (1.0 * 10.0 * 1.0 + 1.0) * (v0 - velocity[look])  # B = N·dt = 1 s
            a_mat, b_vec, g_vec, vj = np.eye(3), np.zeros(3), np.zeros(3), v0
            for j in range(10):
                step = np.array([[1.0, vj * dt, 0.0], [0.0, 1.0, vj * dt / L], [0.0, 0.0, 1.0]])
                a_mat = step @ a_mat
                b_vec = step @ b_vec + np.array([0.0, 0.0, dt])
                g_vec = step @ g_vec + np.array([0.0, -vj * curvature[min(i + j, look)] * dt, 0.0])
                vj += accel * dt
            err = a_mat @ x0 + g_vec
            err[1:] = wrap(err[1:])
            rate = -(b_vec @ q @ err) / (b_vec @ q @ b_vec + r)
        # Kinematic bicycle: lags, derivatives at the old state, Euler.
        h = DT_MODEL
        a_new = s[S.ACCELERATION_X] + h / (h + 0.2) * (accel - s[S.ACCELERATION_X])
        d_old = s[S.STEERING_ANGLE]
        d_rate = (d_old + h / (h + 0.05) * (h * rate) - d_old) / h
        n = np.zeros(11)
        n[S.X] = s[S.X] + s[S.VELOCITY_X] * math.cos(s[S.HEADING]) * h
        n[S.Y] = s[S.Y] + s[S.VELOCITY_X] * math.sin(s[S.HEADING]) * h
        n[S.HEADING] = wrap(s[S.HEADING] + s[S.VELOCITY_X] * math.tan(d_old) / L * h)
        n[S.VELOCITY_X] = s[S.VELOCITY_X] + a_new * h
        n[S.STEERING_ANGLE] = np.clip(d_old + d_rate * h, -math.pi / 3, math.pi / 3)
        n[S.ANGULAR_VELOCITY] = n[S.VELOCITY_X] * math.tan(n[S.STEERING_ANGLE]) / L
        n[S.ACCELERATION_X] = a_new
        n[S.ANGULAR_ACCELERATION] = (n[S.ANGULAR_VELOCITY] - s[S.ANGULAR_VELOCITY]) / h
        n[S.STEERING_RATE] = d_rate
        out.append(n)
    return np.array(out)


def random_scenes(rng: np.random.Generator, num: int) -> tuple[np.ndarray, EgoInitialState]:
    """``num`` plausible NAVSIM submissions (num, 8, 3) and batched initial states at map-scale coordinates."""
    v0 = rng.uniform(0.0, 15.0, num)
    accel = rng.normal(0.0, 1.0, (num, 1))
    kappa = rng.normal(0.0, 0.03, (num, 1))
    s = np.maximum(v0[:, None] * T8 + 0.5 * accel * T8**2, 0.0)
    th = kappa * s
    ds = np.diff(np.concatenate([np.zeros((num, 1)), s], axis=1), axis=1)
    poses = np.stack([np.cumsum(ds * np.cos(th), axis=1), np.cumsum(ds * np.sin(th), axis=1), th], axis=-1)
    poses += rng.normal(0.0, 0.03, poses.shape)
    pose0 = np.stack([rng.uniform(3e5, 7e5, num), rng.uniform(1e5, 4.8e6, num), rng.uniform(-np.pi, np.pi, num)], -1)
    init = EgoInitialState(pose0, np.stack([v0, rng.normal(0, 0.1, num)], -1), rng.normal(0, 0.5, (num, 2)),
                           rng.integers(1_600_000_000_000_000, 1_700_000_000_000_000, num))
    return poses, init


# ------------------------------------------------------------------------------------ state and vehicle

def test_pacifica_parameters_are_nuplans():
    assert PACIFICA.width == pytest.approx(2.297)
    assert PACIFICA.length == pytest.approx(5.176)
    assert PACIFICA.rear_axle_to_center == pytest.approx(1.461)
    assert (PACIFICA.wheel_base, PACIFICA.front_length, PACIFICA.rear_length) == (3.089, 4.049, 1.127)
    assert (PACIFICA.cog_position_from_rear_axle, PACIFICA.height) == (1.67, 1.777)


def test_state_index_order():
    assert [m.name for m in StateIndex] == [
        "X", "Y", "HEADING", "VELOCITY_X", "VELOCITY_Y", "ACCELERATION_X", "ACCELERATION_Y",
        "STEERING_ANGLE", "STEERING_RATE", "ANGULAR_VELOCITY", "ANGULAR_ACCELERATION"]


def test_initial_state_array_has_zero_steering_and_yaw_terms():
    init = start((664430.123, 3997200.456, 1.2), (5.0, 0.1), (0.3, -0.1), 1_624_000_000_123_456)
    s = init.state_array()
    assert s[S.X] == pytest.approx(664430.123, abs=1e-9) and s[S.Y] == pytest.approx(3997200.456, abs=1e-9)
    np.testing.assert_array_equal(s[2:], [1.2, 5.0, 0.1, 0.3, -0.1, 0.0, 0.0, 0.0, 0.0])
    # nuPlan's round trip through the box centre: (x + d cos θ) + (-d) cos θ, not exactly x.
    d, c = PACIFICA.rear_axle_to_center, math.cos(1.2)
    assert s[S.X] == (664430.123 + d * c) + (-d) * c


def test_from_ego_dynamic_state_rounds_to_float32_like_navsim():
    init = EgoInitialState.from_ego_dynamic_state([1.0, 2.0, 0.3], [0.1, 0.2, 0.3, 0.4], 7)
    assert init.velocity_xy[0] == float(np.float32(0.1)) != 0.1
    assert init.acceleration_xy[1] == float(np.float32(0.4))
    assert init.pose_global[0] == 1.0 and int(init.timestamp_us) == 7


@pytest.mark.parametrize("kwargs, match", [
    (dict(pose_global=[0.0, 0.0]), "pose_global"),
    (dict(velocity_xy=[np.nan, 0.0]), "finite"),
    (dict(timestamp_us=-1), ">= 0"),
    (dict(timestamp_us=1.5), "integer"),
])
def test_initial_state_validation(kwargs, match):
    fields = dict(pose_global=[0.0, 0.0, 0.0], velocity_xy=[0.0, 0.0], acceleration_xy=[0.0, 0.0], timestamp_us=0)
    fields.update(kwargs)
    with pytest.raises(ValueError, match=match):
        EgoInitialState(**fields)


# ----------------------------------------------------------------------------------------- reference

def test_reference_of_a_straight_plan_is_linear_in_time():
    ref = reference_states_from_local_poses(straight(10.0), 0.5, start(v=(5.0, 0.0), a=(1.0, 0.0)))
    assert ref.shape == (41, 11)
    np.testing.assert_allclose(ref[:, S.X], np.arange(41) * 1.0, atol=1e-12)  # 10 m/s along x
    np.testing.assert_array_equal(ref[:, [S.Y, S.HEADING]], 0.0)
    # Velocity/acceleration go linearly from the logged values to the poses' 0 over the first 0.5 s.
    np.testing.assert_allclose(ref[:6, S.VELOCITY_X], [5.0, 4.0, 3.0, 2.0, 1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(ref[:6, S.ACCELERATION_X], [1.0, 0.8, 0.6, 0.4, 0.2, 0.0], atol=1e-12)
    np.testing.assert_array_equal(ref[6:, S.VELOCITY_X], 0.0)
    np.testing.assert_array_equal(ref[:, S.STEERING_ANGLE:], 0.0)


def test_reference_heading_interpolates_across_pi():
    # Initial heading π - 0.1; the first pose turns by 0.2 rad -> π + 0.1, stored as -π + 0.1.
    poses = np.array([[5.0, 0.0, 0.2]] * 8)
    ref = reference_states_from_local_poses(poses, 0.5, start(pose=(0.0, 0.0, math.pi - 0.1)))
    expected = wrap(math.pi - 0.1 + 0.04 * np.arange(6))  # +0.04 rad per 0.1 s, the short way round
    np.testing.assert_allclose(wrap(ref[:6, S.HEADING] - expected), 0.0, atol=1e-12)
    assert np.all(np.abs(ref[:, S.HEADING]) > 3.0)  # never interpolated through 0
    assert np.all((ref[:, S.HEADING] >= -math.pi) & (ref[:, S.HEADING] < math.pi))


def test_a_plan_shorter_than_4_s_holds_its_last_pose():
    poses = straight(8.0, np.arange(1, 5) * 0.5)  # 2 s
    ref = reference_states_from_local_poses(poses, 0.5, start())
    np.testing.assert_allclose(ref[:21, S.X], 0.8 * np.arange(21), atol=1e-12)
    np.testing.assert_array_equal(ref[20:, S.X], ref[20, S.X])


def test_knot_times_truncate_float_seconds_like_nuplan():
    # t0 = 1600000000.000003 s has no exact double: the nearest one lies ~0.1 µs below, and int(t·1e6)
    # truncates, so every knot lands 1 µs before the ideal 0.5 s grid (official _get_fixed_timesteps).
    t0 = 1_600_000_000_000_003
    got = knot_times_us(t0, 8, 0.5)
    np.testing.assert_array_equal(got - t0, np.arange(1, 9) * 500_000 - 1)
    np.testing.assert_array_equal(got, [int((t0 * 1e-6 + (k + 1) * 0.5) * 1e6) for k in range(8)])
    # The 10 Hz grid is truncated the same way and then clipped into [t0, last knot]: state 0 stays at t0.
    ref = reference_states_from_local_poses(straight(10.0), 0.5, start(t_us=t0))
    assert ref[0, S.X] == 0.0


def test_sample_reference_equals_numpy_interp_per_column():
    rng = np.random.default_rng(3)
    knots = rng.normal(0.0, 5.0, (12, 11))
    knots[:, S.HEADING] = wrap(np.cumsum(rng.normal(0.0, 1.5, 12)))
    times = np.concatenate([[0], np.cumsum(rng.integers(40_000, 160_000, 11))])
    out = sample_reference(knots, times, 0)
    # From t0 = 0 the float grid k·0.1 s truncates to exact multiples of 100 ms (not so from t0 = 1 s,
    # where 1 + 3.1 s becomes 4099999 µs; see test_sample_times_truncate).
    grid = np.clip(np.arange(41) * 100_000, times[0], times[-1])
    for col in (S.VELOCITY_X, S.VELOCITY_Y, S.ACCELERATION_X, S.ACCELERATION_Y, S.STEERING_ANGLE):
        np.testing.assert_allclose(out[:, col], np.interp(grid, times, knots[:, col]), atol=1e-12)
    heading = np.interp(grid, times, np.unwrap(knots[:, S.HEADING]))
    np.testing.assert_allclose(wrap(out[:, S.HEADING] - heading), 0.0, atol=1e-12)
    xy = np.stack([np.interp(grid, times, knots[:, c]) for c in (S.X, S.Y)], -1)
    np.testing.assert_allclose(out[:, :2], xy, atol=1e-12)
    np.testing.assert_array_equal(out[:, S.STEERING_RATE:], 0.0)


def test_sample_times_truncate():
    grid = sample_times_us(1_000_000)
    assert grid[31] == 4_099_999 and grid[30] == 4_000_000  # int((1.0 + 3.1000000000000001) * 1e6)
    np.testing.assert_array_equal(sample_times_us(0), np.arange(41) * 100_000)


def test_reference_rejects_bad_input():
    with pytest.raises(ValueError, match="finite"):
        reference_states_from_local_poses(np.full((8, 3), np.nan), 0.5, start())
    with pytest.raises(ValueError, match="shape"):
        reference_states_from_local_poses(np.zeros((8, 2)), 0.5, start())
    with pytest.raises(ValueError, match="strictly increase"):
        sample_reference(np.zeros((3, 11)), np.array([0, 10, 10]), 0)


# -------------------------------------------------------------------------------------- bicycle model

def test_bicycle_step_by_hand():
    s = np.zeros((1, 11))
    s[0, [S.X, S.Y, S.HEADING]] = 1.0, 2.0, 0.5
    s[0, [S.VELOCITY_X, S.VELOCITY_Y, S.ACCELERATION_X, S.ACCELERATION_Y]] = 10.0, 0.3, 1.0, 0.7
    s[0, [S.STEERING_ANGLE, S.ANGULAR_VELOCITY]] = 0.1, 0.2
    dt = 0.1
    n = propagate(s, np.array([4.0]), np.array([0.3]), dt, L)[0]
    a_new = 1.0 + (1 / 3) * (4.0 - 1.0)  # = 2
    d_new = 0.1 + (2 / 3) * (0.3 * dt)  # = 0.12; rate (0.12 - 0.1) / 0.1 = 0.2
    want = {
        S.X: 1.0 + 10.0 * math.cos(0.5) * dt,  # derivatives at the old speed and heading
        S.Y: 2.0 + 10.0 * math.sin(0.5) * dt,
        S.HEADING: 0.5 + 10.0 * math.tan(0.1) / L * dt,  # old steering angle
        S.VELOCITY_X: 10.0 + a_new * dt, S.VELOCITY_Y: 0.0,
        S.ACCELERATION_X: a_new, S.ACCELERATION_Y: 0.0,
        S.STEERING_ANGLE: d_new, S.STEERING_RATE: 0.2,
        S.ANGULAR_VELOCITY: 10.2 * math.tan(d_new) / L,
        S.ANGULAR_ACCELERATION: (10.2 * math.tan(d_new) / L - 0.2) / dt,
    }
    for col, value in want.items():
        assert n[col] == pytest.approx(value, rel=1e-12, abs=1e-12), col.name


def test_bicycle_clips_steering_and_wraps_heading():
    s = np.zeros((1, 11))
    s[0, [S.HEADING, S.VELOCITY_X, S.STEERING_ANGLE]] = math.pi - 1e-3, 20.0, 1.0
    n = propagate(s, np.array([0.0]), np.array([50.0]), 0.1, L)[0]
    assert n[S.STEERING_ANGLE] == pytest.approx(math.pi / 3)
    assert -math.pi <= n[S.HEADING] < 0.0  # π - 1e-3 + 20·tan(1)/L·0.1 wrapped


def test_motion_model_step_is_a_timepoint_difference():
    assert simulation_step_s(0.1) == 100_000 * 1e-6 == DT_MODEL != 0.1


# ------------------------------------------------------------------------------------------ LQR tracker

def test_profile_fit_equals_stacked_least_squares():
    rng = np.random.default_rng(0)
    poses, init = random_scenes(rng, 6)
    refs = reference_states_from_local_poses(poses, 0.5, init)
    fit = fit_profiles(refs[..., :3], 0.1)
    for i in range(len(refs)):
        velocity, curvature = loop_profiles(refs[i, :, :3])
        np.testing.assert_allclose(fit.velocity[i], velocity, rtol=0, atol=1e-9)
        np.testing.assert_allclose(fit.curvature[i], curvature, rtol=0, atol=1e-9)
    np.testing.assert_allclose(fit.acceleration, np.diff(fit.velocity, axis=1) / 0.1, atol=1e-9)


def test_velocity_fit_uses_navsims_acceleration_penalty_not_jerk():
    # x = 5 t + t² (v0 = 5 m/s, a = 2 m/s²) at 10 Hz. With the spec's first-difference (jerk) penalty the
    # fit is exact: a_i = 2 and v = 5.1, 5.3, … (mid-step speeds). NAVSIM's regulariser penalises a_i
    # itself (see metrics.pdm.tracker), pulling the accelerations below 2 and v0 above 5.1 to compensate.
    t = np.arange(41) * 0.1
    poses = np.stack([5 * t + t**2, 0 * t, 0 * t], axis=-1)[None]
    fit = fit_profiles(poses, 0.1)
    velocity, _ = loop_profiles(poses[0])
    np.testing.assert_allclose(fit.velocity[0], velocity, atol=1e-12)
    assert fit.velocity[0, 0] > 5.2 and fit.acceleration[0, 0] < 1.5
    assert abs(fit.velocity[0, -1] - 12.9) < 0.05  # the mean speed is still matched


def test_profile_fit_at_standstill_is_zero():
    poses = np.zeros((2, 41, 3))
    poses[1, :, :2] = 5e5, 4e6  # exactly constant far from the origin: zero displacements
    fit = fit_profiles(poses, 0.1)
    for arr in (fit.velocity, fit.acceleration, fit.curvature, fit.curvature_rate):
        np.testing.assert_array_equal(arr, 0.0)


def test_constant_speed_straight_reference_is_followed_on_the_line():
    init = start(pose=(5e5, 4e6, 0.0), v=(5.0, 0.0))
    ref = reference_states_from_local_poses(straight(10.0), 0.5, init)
    sim = simulate(ref[None], init)[0]
    speed = sim[:, S.VELOCITY_X]
    assert np.all(np.diff(speed) > 0) and abs(speed[-1] - 10.0) < 0.05
    np.testing.assert_array_equal(sim[:, [S.Y, S.HEADING, S.STEERING_ANGLE]], [[4e6, 0.0, 0.0]] * 41)
    # Already at the reference speed: stays there (the LQR's command is -(10/11)·0).
    init = start(v=(10.0, 0.0))
    sim = simulate(reference_states_from_local_poses(straight(10.0), 0.5, init)[None], init)[0]
    np.testing.assert_allclose(sim[:, S.VELOCITY_X], 10.0, atol=1e-9)
    np.testing.assert_allclose(sim[:, S.X], np.arange(41) * 10.0 * DT_MODEL, atol=1e-9)


def test_standing_still_stays_put():
    init = start(pose=(3e5, 4.5e6, -2.0))
    sim = simulate(reference_states_from_local_poses(np.zeros((8, 3)), 0.5, init)[None], init)[0]
    np.testing.assert_array_equal(sim, np.broadcast_to(init.state_array(), (41, 11)))


def test_stopping_controller_first_step_by_hand():
    # v = 0.1 <= 0.2 and reference velocity 0: accel command -0.5·(0.1 - 0), steering rate 0.
    init = start(v=(0.1, 0.0))
    sim = simulate(reference_states_from_local_poses(np.zeros((8, 3)), 0.5, init)[None], init)[0]
    a_new = DT_MODEL / (DT_MODEL + 0.2) * (-0.05)
    assert sim[1, S.ACCELERATION_X] == pytest.approx(a_new, rel=1e-12)
    assert sim[1, S.VELOCITY_X] == pytest.approx(0.1 + a_new * DT_MODEL, rel=1e-12)
    assert sim[1, S.X] == pytest.approx(0.1 * DT_MODEL, rel=1e-12)
    assert np.all(sim[:, S.STEERING_RATE] == 0.0) and np.all(np.diff(sim[:, S.VELOCITY_X]) < 0)


def test_constant_curvature_arc_is_tracked():
    radius = 50.0
    init = start(v=(10.0, 0.0))
    sim = simulate(reference_states_from_local_poses(arc(radius, 10.0), 0.5, init)[None], init)[0]
    radial = np.hypot(sim[:, S.X], sim[:, S.Y] - radius) - radius
    # Starts with zero steering, so the car first drifts outside; the official tracker's transient peaks
    # at ~0.75 m and has settled to a few decimetres in the last second.
    assert np.abs(radial).max() < 1.0 and np.abs(radial[30:]).max() < 0.3
    # After the transient the steering angle oscillates about the arc's atan(L / R) = 0.0617 rad.
    assert abs(np.mean(sim[10:, S.STEERING_ANGLE]) - math.atan(L / radius)) < 0.01
    assert abs(sim[-1, S.VELOCITY_X] - 10.0) < 0.02


def test_vectorised_simulation_equals_the_loop_implementation():
    rng = np.random.default_rng(1)
    poses, init = random_scenes(rng, 8)
    refs = reference_states_from_local_poses(poses, 0.5, init)
    sim = simulate(refs, init)
    states0 = init.state_array()
    for i in range(len(refs)):
        loop = loop_simulate(refs[i], states0[i])
        np.testing.assert_allclose(sim[i, :, :2], loop[:, :2], rtol=0, atol=1e-8)
        np.testing.assert_allclose(sim[i, :, 2:], loop[:, 2:], rtol=0, atol=1e-8)


def test_batch_equals_single_runs_bit_for_bit():
    # 70 proposals: past the batch size where the tracker switches its summation schedule (64).
    rng = np.random.default_rng(2)
    poses, init = random_scenes(rng, 70)
    refs = reference_states_from_local_poses(poses, 0.5, init)
    sim = simulate(refs, init)
    for i in range(len(refs)):
        one = init[i]
        ref_one = reference_states_from_local_poses(poses[i], 0.5, one)
        np.testing.assert_array_equal(ref_one, refs[i])
        np.testing.assert_array_equal(simulate(ref_one[None], one)[0], sim[i])


def test_initial_state_stack_and_index_round_trip():
    a = start(pose=(1.0, 2.0, 0.1), v=(3.0, 0.0), t_us=5)
    b = start(pose=(4.0, 5.0, -0.2), a=(0.5, 0.1), t_us=9)
    both = EgoInitialState.stack([a, b])
    assert both.batch_shape == (2,) and both[1].batch_shape == ()
    np.testing.assert_array_equal(both[1].state_array(), b.state_array())
    np.testing.assert_array_equal(both[:1].state_array(), a.state_array()[None])
    np.testing.assert_array_equal(a.broadcast_to(3).timestamp_us, [5, 5, 5])


def test_one_initial_state_for_many_proposals():
    init = start(pose=(10.0, 20.0, 0.3), v=(6.0, 0.0))
    poses = np.stack([straight(6.0), arc(40.0, 6.0), arc(-40.0, 6.0)])
    sim = simulate(reference_states_from_local_poses(poses, 0.5, init), init)
    assert sim.shape == (3, 41, 11)
    np.testing.assert_array_equal(sim[:, 0], np.broadcast_to(init.state_array(), (3, 11)))
    assert sim[1, -1, S.HEADING] > sim[0, -1, S.HEADING] > sim[2, -1, S.HEADING]


def test_simulation_is_deterministic():
    poses, init = random_scenes(np.random.default_rng(4), 5)
    refs = reference_states_from_local_poses(poses, 0.5, init)
    np.testing.assert_array_equal(simulate(refs, init), simulate(refs.copy(), init))


def test_simulate_rejects_bad_input():
    with pytest.raises(ValueError, match="shape"):
        simulate(np.zeros((41, 11)), start())
    refs = np.zeros((2, 41, 11))
    refs[1, 3, S.X] = np.inf
    with pytest.raises(ValueError, match="finite"):
        simulate(refs, start())
    with pytest.raises(ValueError, match="batch shape"):
        simulate(np.zeros((2, 41, 11)), EgoInitialState.stack([start()] * 3))


def test_lqr_parameters_validation():
    with pytest.raises(ValueError, match="tracking_horizon"):
        LQRParameters(tracking_horizon=1)


# --------------------------------------------------------------------------------------- properties

plan = st.tuples(
    st.floats(0.0, 20.0),  # initial speed, m/s
    st.floats(-2.0, 2.0),  # acceleration, m/s²
    st.floats(-0.1, 0.1),  # curvature, 1/m
    st.floats(-np.pi, np.pi),  # heading offset of the plan, rad
    st.integers(0, 2**32 - 1),  # noise seed
)
frame = st.tuples(st.floats(-1e5, 1e5), st.floats(-1e5, 1e5), st.floats(-np.pi, np.pi))


@settings(max_examples=40, deadline=None)
@given(plan, frame, frame)
def test_simulation_is_invariant_under_a_rigid_transform(p, frame_a, frame_b):
    v0, accel, kappa, offset, seed = p
    s = np.maximum(v0 * T8 + 0.5 * accel * T8**2, 0.0)
    ds = np.diff(np.concatenate([[0.0], s]))
    th = offset * (T8 / 4.0) + kappa * s
    poses = np.stack([np.cumsum(ds * np.cos(th)), np.cumsum(ds * np.sin(th)), th], axis=-1)
    poses += np.random.default_rng(seed).normal(0.0, 0.05, poses.shape)
    local = []
    for origin in (frame_a, frame_b):
        init = start(pose=origin, v=(v0, 0.0), a=(accel, 0.0), t_us=1_700_000_000_000_000)
        sim = simulate(reference_states_from_local_poses(poses, 0.5, init)[None], init)[0]
        rel = sim.copy()
        rel[:, :3] = global_to_local(sim[:, :3], init.rear_axle_pose_global())
        local.append(rel)
    diff = local[0] - local[1]
    diff[:, S.HEADING] = wrap(diff[:, S.HEADING])
    assert np.abs(diff).max() < 1e-9


def test_round_trip_helper_is_tiny_and_idempotent_in_the_local_frame():
    pose = np.array([[123456.789, -98765.4321, 2.5]])
    rt = nuplan_rear_axle_roundtrip(pose, PACIFICA.rear_axle_to_center)
    assert np.abs(rt - pose).max() < 1e-10
    back = local_to_global(global_to_local(rt, pose[0]), pose[0])
    assert np.abs(back - rt).max() < 1e-9
