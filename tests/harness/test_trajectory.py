"""Unit and property tests for harness.trajectory: sampling, validation, resampling, headings."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from harness.geometry import normalize_angle, se2_transform_points
from harness.trajectory import (
    NAVSIM_SAMPLING,
    WAYMO_SAMPLING,
    Trajectory,
    TrajectorySampling,
    headings_from_positions,
    resample_poses,
)

PI = math.pi
PROPS = settings(max_examples=40, deadline=None)
TEN_HZ_4S = TrajectorySampling(40, 0.1)


def angle_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return np.abs(np.arctan2(np.sin(d), np.cos(d)))


def assert_poses_close(a: np.ndarray, b: np.ndarray, atol: float = 1e-9) -> None:
    np.testing.assert_allclose(a[..., :2], b[..., :2], atol=atol)
    assert np.all(angle_diff(a[..., 2], b[..., 2]) < atol)


def poses_strategy(n: int) -> st.SearchStrategy[np.ndarray]:
    xy = hnp.arrays(np.float64, (n, 2), elements=st.floats(-100.0, 100.0))
    heading = hnp.arrays(np.float64, (n, 1), elements=st.floats(-PI, PI, exclude_max=True))
    return st.tuples(xy, heading).map(lambda t: np.concatenate(t, axis=1))


# --- TrajectorySampling ---------------------------------------------------------------------------------


@pytest.mark.parametrize("num_poses", [0, -1, 2.5, "8", True, None])
def test_sampling_rejects_bad_num_poses(num_poses: object) -> None:
    with pytest.raises(ValueError, match=r"TrajectorySampling\.num_poses"):
        TrajectorySampling(num_poses, 0.5)  # type: ignore[arg-type]


@pytest.mark.parametrize("interval_s", [0.0, -0.5, math.nan, math.inf, "0.5", None])
def test_sampling_rejects_bad_interval(interval_s: object) -> None:
    with pytest.raises(ValueError, match=r"TrajectorySampling\.interval_s"):
        TrajectorySampling(8, interval_s)  # type: ignore[arg-type]


def test_sampling_times_and_horizon() -> None:
    s = TrajectorySampling(4, 0.5)
    np.testing.assert_allclose(s.times_s, [0.5, 1.0, 1.5, 2.0])
    assert s.time_horizon_s == 2.0
    assert NAVSIM_SAMPLING.time_horizon_s == pytest.approx(4.0)
    assert WAYMO_SAMPLING.time_horizon_s == pytest.approx(5.0)
    np.testing.assert_allclose(WAYMO_SAMPLING.times_s[[0, -1]], [0.25, 5.0])
    assert TrajectorySampling(np.int64(3), 1).num_poses == 3  # numpy ints and int intervals are fine


def test_sampling_from_horizon() -> None:
    assert TrajectorySampling.from_horizon(4.0, 0.5) == NAVSIM_SAMPLING
    assert TrajectorySampling.from_horizon(5.0, 0.25) == WAYMO_SAMPLING
    ten_hz = TrajectorySampling.from_horizon(4.0, 0.1)  # 4 / 0.1 = 40.000000000000004
    assert ten_hz == TEN_HZ_4S
    assert type(ten_hz.num_poses) is int


@pytest.mark.parametrize(("horizon", "interval"), [(4.0, 0.3), (1.0, 0.4)])
def test_sampling_from_horizon_rejects_non_multiples(horizon: float, interval: float) -> None:
    with pytest.raises(ValueError, match="not a multiple"):
        TrajectorySampling.from_horizon(horizon, interval)


@pytest.mark.parametrize(("horizon", "interval"), [(4.0, 0.0), (4.0, -0.5), (math.nan, 0.5), (0.0, 0.5)])
def test_sampling_from_horizon_rejects_degenerate(horizon: float, interval: float) -> None:
    with pytest.raises(ValueError):
        TrajectorySampling.from_horizon(horizon, interval)


def test_sampling_is_frozen_and_hashable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        NAVSIM_SAMPLING.num_poses = 4  # type: ignore[misc]
    assert len({TrajectorySampling(8, 0.5), NAVSIM_SAMPLING}) == 1


# --- Trajectory -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("poses", "message"),
    [
        (np.zeros((8, 2)), r"Trajectory\.poses must have shape \(N, 3\), got \(8, 2\)"),
        (np.zeros(24), r"Trajectory\.poses must have shape \(N, 3\)"),
        (np.zeros((2, 8, 3)), r"Trajectory\.poses must have shape \(N, 3\)"),
        (np.zeros((7, 3)), r"Trajectory\.poses has 7 poses but its sampling says 8"),
        ([["a", "b", "c"]] * 8, r"Trajectory\.poses: cannot convert"),
    ],
)
def test_trajectory_rejects_bad_shapes(poses: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Trajectory(poses)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_trajectory_rejects_non_finite_naming_pose_and_column(bad: float) -> None:
    poses = np.zeros((8, 3))
    poses[3, 1] = bad
    with pytest.raises(ValueError, match=r"Trajectory\.poses must be finite; pose 3 column 1"):
        Trajectory(poses)


def test_trajectory_rejects_non_sampling() -> None:
    with pytest.raises(ValueError, match=r"Trajectory\.sampling"):
        Trajectory(np.zeros((8, 3)), 8)  # type: ignore[arg-type]


def test_trajectory_is_read_only_and_leaves_the_input_alone() -> None:
    base = np.zeros((8, 4))
    view = base[:, :3]
    traj = Trajectory(view)
    with pytest.raises(ValueError, match="read-only"):
        traj.poses[0, 0] = 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        traj.poses = np.ones((8, 3))  # type: ignore[misc]
    # The caller's array stays writable, and writing to it does not reach into the trajectory.
    assert view.flags.writeable
    base[0, 0] = 5.0
    assert traj.poses[0, 0] == 0.0


def test_trajectory_accessors() -> None:
    poses = np.arange(24, dtype=np.float64).reshape(8, 3) / 10
    traj = Trajectory(poses.tolist())
    assert traj.poses.dtype == np.float64
    assert traj.sampling == NAVSIM_SAMPLING
    np.testing.assert_array_equal(traj.xy, poses[:, :2])
    np.testing.assert_allclose(traj.times_s, np.arange(1, 9) * 0.5)


# --- resampling -----------------------------------------------------------------------------------------


@PROPS
@given(poses_strategy(8))
def test_resample_to_the_same_sampling_is_identity(poses: np.ndarray) -> None:
    traj = Trajectory(poses)
    assert_poses_close(traj.resample(NAVSIM_SAMPLING).poses, poses, atol=1e-12)


def test_resample_half_second_to_tenth_second_hand_values() -> None:
    poses = np.zeros((8, 3))
    poses[:, 0] = 5.0 * np.arange(1, 9)  # 10 m/s straight ahead
    poses[1] = [10.0, 1.0, 0.2]  # at 1.0 s: drifted 1 m left, turned 0.2 rad
    fine = Trajectory(poses).resample(TEN_HZ_4S)
    assert fine.sampling == TEN_HZ_4S
    np.testing.assert_allclose(fine.poses[0], [1.0, 0.0, 0.0], atol=1e-12)  # 0.1 s: from the origin
    np.testing.assert_allclose(fine.poses[4], [5.0, 0.0, 0.0], atol=1e-12)  # 0.5 s: a knot
    np.testing.assert_allclose(fine.poses[6], [7.0, 0.4, 0.08], atol=1e-12)  # 0.7 s: 40 % to the next
    np.testing.assert_allclose(fine.poses[9], [10.0, 1.0, 0.2], atol=1e-12)  # 1.0 s: the knot
    np.testing.assert_allclose(fine.poses[11], [12.0, 0.6, 0.12], atol=1e-12)  # 1.2 s: back towards 0
    np.testing.assert_allclose(fine.poses[-1], poses[-1], atol=1e-12)


def test_resample_heading_across_pi_goes_the_short_way() -> None:
    poses = np.zeros((8, 3))
    poses[:, 2] = [1.5, 3.0, -2.9, -2.0, -2.0, -2.0, -2.0, -2.0]  # a left turn through ±π
    fine = Trajectory(poses).resample(TEN_HZ_4S)
    # 1.2 s is 40 % of the way from 3.0 (1.0 s) to -2.9 = 3.383 unwrapped (1.5 s): 3.153, i.e. -3.130 once
    # wrapped; the long way round through 0 would give 0.64.
    assert fine.poses[11, 2] == pytest.approx(3.0 + 0.4 * (2 * PI - 5.9) - 2 * PI, abs=1e-9)
    between = fine.poses[10:14, 2]  # 1.1 s .. 1.4 s
    assert np.all(np.abs(between) > 2.9)  # near ±π throughout, never through 0
    assert np.all((fine.poses[:, 2] >= -PI) & (fine.poses[:, 2] < PI))


@PROPS
@given(poses_strategy(8))
def test_resample_up_then_down_recovers_the_original(poses: np.ndarray) -> None:
    traj = Trajectory(poses)
    back = traj.resample(TEN_HZ_4S).resample(NAVSIM_SAMPLING)
    assert_poses_close(back.poses, poses, atol=1e-9)


@PROPS
@given(poses_strategy(40))
def test_resample_down_then_up_agrees_at_shared_times(poses: np.ndarray) -> None:
    fine = Trajectory(poses, TEN_HZ_4S)
    coarse = fine.resample(NAVSIM_SAMPLING)
    shared = slice(4, None, 5)  # 0.5 s, 1.0 s, ... 4.0 s
    assert_poses_close(coarse.poses, poses[shared], atol=1e-9)
    assert_poses_close(coarse.resample(TEN_HZ_4S).poses[shared], poses[shared], atol=1e-9)


def test_resample_out_of_range_raises_unless_hold_last() -> None:
    poses = np.zeros((8, 3))
    poses[:, 0] = np.arange(1, 9)
    poses[:, 2] = 0.1
    traj = Trajectory(poses)
    with pytest.raises(ValueError, match=r"exceed the trajectory's \[0\.000, 4\.000\] s"):
        traj.resample(WAYMO_SAMPLING)  # 5 s of Waymo from 4 s of NAVSIM
    held = traj.resample(WAYMO_SAMPLING, hold_last=True)
    assert held.sampling == WAYMO_SAMPLING
    beyond = WAYMO_SAMPLING.times_s > 4.0
    np.testing.assert_allclose(held.poses[beyond], np.broadcast_to(poses[-1], (beyond.sum(), 3)))
    np.testing.assert_allclose(held.poses[WAYMO_SAMPLING.times_s == 2.0], [[4.0, 0.0, 0.1]])


def test_resample_poses_direct_use() -> None:
    poses = np.array([[1.0, 0.0, 0.0], [2.0, 0.0, 0.0]])
    times = np.array([1.0, 2.0])
    np.testing.assert_allclose(
        resample_poses(poses, times, [0.0, 0.5, 1.5]), [[0, 0, 0], [0.5, 0, 0], [1.5, 0, 0]]
    )
    with pytest.raises(ValueError, match="exceed"):
        resample_poses(poses, times, [-0.5])
    with pytest.raises(ValueError, match="exceed"):
        resample_poses(poses, times, [0.5], include_origin=False)  # the data start at 1 s
    np.testing.assert_allclose(
        resample_poses(poses, times, [0.5, 3.0], include_origin=False, hold_last=True),
        [[1.0, 0, 0], [2.0, 0, 0]],
    )
    # A hair beyond the end (float noise in times) is accepted.
    np.testing.assert_allclose(resample_poses(poses, times, [2.0 + 1e-9]), [[2.0, 0, 0]])


@pytest.mark.parametrize(
    ("poses", "times", "message"),
    [
        (np.zeros((2, 2)), [1.0, 2.0], "needs poses"),
        (np.zeros((2, 3)), [1.0, 2.0, 3.0], "needs poses"),
        (np.zeros((2, 3)), [2.0, 1.0], "strictly increasing"),
        (np.zeros((2, 3)), [1.0, 1.0], "strictly increasing"),
        (np.zeros((2, 3)), [0.0, 1.0], "strictly increasing"),  # collides with the implicit origin
    ],
)
def test_resample_poses_rejects_bad_inputs(poses: np.ndarray, times: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resample_poses(poses, times, [0.5])


# --- headings from positions ----------------------------------------------------------------------------


def test_headings_straight() -> None:
    xy = np.stack([np.arange(1.0, 6.0), np.zeros(5)], axis=1)
    np.testing.assert_allclose(headings_from_positions(xy), np.zeros(5))
    np.testing.assert_allclose(headings_from_positions(xy[:, ::-1]), np.full(5, PI / 2))  # along +y


def test_headings_turning() -> None:
    xy = [[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.0, 0.0]]
    np.testing.assert_allclose(headings_from_positions(xy), [0.0, PI / 2, PI, -PI / 2])


def test_headings_stopped_keep_previous_or_initial() -> None:
    # Stopped from the start: the initial heading is kept.
    np.testing.assert_allclose(headings_from_positions(np.zeros((3, 2)), initial_heading_rad=0.7), [0.7] * 3)
    # Moves, stops (a 5 mm jitter is not a direction), then moves left.
    xy = [[1.0, 0.0], [1.0, 0.0], [1.005, 0.0], [1.005, 2.0]]
    np.testing.assert_allclose(headings_from_positions(xy, initial_heading_rad=0.7), [0.0, 0.0, 0.0, PI / 2])
    assert headings_from_positions(np.zeros((0, 2))).shape == (0,)


@PROPS
@given(
    hnp.arrays(np.float64, (6, 2), elements=st.floats(-50.0, 50.0)),
    st.floats(-PI, PI),
    st.floats(-PI, PI),
)
def test_headings_rotate_with_the_positions(xy: np.ndarray, theta: float, initial: float) -> None:
    rotated = se2_transform_points([0.0, 0.0, theta], xy)
    h = headings_from_positions(xy, initial)
    h_rot = headings_from_positions(rotated, initial + theta)
    steps = np.linalg.norm(np.diff(np.concatenate([np.zeros((1, 2)), xy]), axis=0), axis=1)
    clear = np.abs(steps - 0.01) > 1e-6  # the 1 cm threshold may flip under rounding
    if np.all(clear):
        assert np.all(angle_diff(h_rot, normalize_angle(h + theta)) < 1e-9)
