"""Unit and property tests for harness.geometry: SE(2)/SE(3), quaternions, box corners, polygons."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from harness.geometry import (
    box_corners_2d,
    box_corners_3d,
    box_polygons,
    global_to_local,
    local_to_global,
    matrix_to_quaternion,
    normalize_angle,
    polyline_arc_length,
    polyline_headings,
    quaternion_to_matrix,
    quaternion_yaw,
    rotation_2d,
    se2_compose,
    se2_inverse,
    se2_to_matrix,
    se2_transform_points,
    se3_from_rt,
    se3_inverse,
    se3_transform_points,
    yaw_to_quaternion,
)

PI = math.pi
PROPS = settings(max_examples=60, deadline=None)

coord = st.floats(-500.0, 500.0, allow_nan=False, allow_infinity=False)
angle = st.floats(-4 * PI, 4 * PI, allow_nan=False, allow_infinity=False)
pose = st.tuples(coord, coord, angle).map(np.array)
points = hnp.arrays(np.float64, st.tuples(st.integers(1, 8), st.just(2)), elements=coord)
length = st.floats(0.1, 20.0)
unit_quaternion = (
    st.tuples(*[st.floats(-1.0, 1.0) for _ in range(4)])
    .map(np.array)
    .filter(lambda q: np.linalg.norm(q) > 0.1)
    .map(lambda q: q / np.linalg.norm(q))
)
axis = (
    st.tuples(*[st.floats(-1.0, 1.0) for _ in range(3)])
    .map(np.array)
    .filter(lambda a: np.linalg.norm(a) > 0.1)
    .map(lambda a: a / np.linalg.norm(a))
)


def angle_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest absolute difference between angles, robust to the ±π seam."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return np.abs(np.arctan2(np.sin(d), np.cos(d)))


def assert_poses_close(a: np.ndarray, b: np.ndarray, atol: float = 1e-9) -> None:
    a, b = np.asarray(a), np.asarray(b)
    np.testing.assert_allclose(a[..., :2], b[..., :2], atol=atol)
    assert np.all(angle_diff(a[..., 2], b[..., 2]) < atol)


def rotation_180(n: np.ndarray) -> np.ndarray:
    """Rotation by π about the unit axis n: 2 n nᵀ - I."""
    return 2.0 * np.outer(n, n) - np.eye(3)


# --- angles ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.0, 0.0),
        (PI / 2, PI / 2),
        (PI, -PI),
        (-PI, -PI),
        (3 * PI, -PI),
        (-3 * PI, -PI),
        (2 * PI, 0.0),
        (1.5 * PI, -0.5 * PI),
        (-1.5 * PI, 0.5 * PI),
        (7.0, 7.0 - 2 * PI),
    ],
)
def test_normalize_angle_hand_values(value: float, expected: float) -> None:
    assert normalize_angle(value) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    "value", [np.nextafter(-PI, -10.0), np.nextafter(PI, 10.0), -PI, PI, -1e-300, 1e-300]
)
def test_normalize_angle_edges_stay_in_half_open_range(value: float) -> None:
    # Just below -π used to round to exactly +π.
    r = float(normalize_angle(value))
    assert -PI <= r < PI
    assert angle_diff(r, value) < 1e-12


def test_normalize_angle_vectorised_keeps_shape_and_scalar_type() -> None:
    a = np.linspace(-20, 20, 24).reshape(2, 3, 4)
    r = normalize_angle(a)
    assert r.shape == a.shape
    assert np.all((r >= -PI) & (r < PI))
    assert isinstance(normalize_angle(1.0), np.floating)


@PROPS
@given(st.floats(-1e6, 1e6, allow_nan=False))
def test_normalize_angle_range_equivalence_idempotence(a: float) -> None:
    r = normalize_angle(a)
    assert -PI <= r < PI
    assert angle_diff(r, a) < 1e-6  # same direction (|a| up to 1e6 costs ~1e-10 of precision)
    rr = normalize_angle(r)
    assert -PI <= rr < PI
    assert angle_diff(rr, r) < 1e-12
    if abs(r) < PI - 1e-9:
        assert rr == pytest.approx(r, abs=1e-12)


def test_rotation_2d_hand_values() -> None:
    np.testing.assert_allclose(rotation_2d(PI / 2) @ [1.0, 0.0], [0.0, 1.0], atol=1e-15)
    np.testing.assert_allclose(rotation_2d(np.zeros(5)), np.broadcast_to(np.eye(2), (5, 2, 2)))


# --- SE(2) ----------------------------------------------------------------------------------------------


def test_se2_compose_hand_values() -> None:
    # b sits 2 m ahead of a, turned 90° left; c sits 1 m ahead of b, i.e. 1 m further along a's +y.
    a_from_b = [2.0, 0.0, PI / 2]
    b_from_c = [1.0, 0.0, PI / 2]
    np.testing.assert_allclose(se2_compose(a_from_b, b_from_c), [2.0, 1.0, -PI], atol=1e-12)


def test_se2_inverse_hand_values() -> None:
    # b is 1 m ahead of a, turned 90° left (facing a's +y): a's origin lies 1 m to b's left.
    np.testing.assert_allclose(se2_inverse([1.0, 0.0, PI / 2]), [0.0, 1.0, -PI / 2], atol=1e-12)
    np.testing.assert_allclose(se2_inverse([3.0, -2.0, 0.0]), [-3.0, 2.0, 0.0], atol=1e-12)


@PROPS
@given(pose)
def test_se2_compose_with_inverse_is_identity(p: np.ndarray) -> None:
    assert_poses_close(se2_compose(p, se2_inverse(p)), np.zeros(3))
    assert_poses_close(se2_compose(se2_inverse(p), p), np.zeros(3))
    assert_poses_close(se2_inverse(se2_inverse(p)), p)


@PROPS
@given(pose, pose, pose)
def test_se2_compose_is_associative(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> None:
    assert_poses_close(se2_compose(se2_compose(a, b), c), se2_compose(a, se2_compose(b, c)), atol=1e-8)


@PROPS
@given(pose, pose)
def test_se2_to_matrix_is_a_homomorphism(a: np.ndarray, b: np.ndarray) -> None:
    np.testing.assert_allclose(
        se2_to_matrix(se2_compose(a, b)), se2_to_matrix(a) @ se2_to_matrix(b), atol=1e-8
    )
    np.testing.assert_allclose(se2_to_matrix(se2_inverse(a)), np.linalg.inv(se2_to_matrix(a)), atol=1e-8)


@PROPS
@given(pose, points)
def test_se2_transform_points_matches_matrix(p: np.ndarray, pts: np.ndarray) -> None:
    homogeneous = np.concatenate([pts, np.ones((len(pts), 1))], axis=1)
    expected = (se2_to_matrix(p) @ homogeneous.T).T[:, :2]
    np.testing.assert_allclose(se2_transform_points(p, pts), expected, atol=1e-9)
    # Mapping back with the inverse recovers the points.
    np.testing.assert_allclose(
        se2_transform_points(se2_inverse(p), se2_transform_points(p, pts)), pts, atol=1e-8
    )


@PROPS
@given(pose, st.lists(pose, min_size=1, max_size=6).map(np.stack))
def test_local_global_round_trip(origin: np.ndarray, poses_local: np.ndarray) -> None:
    glob = local_to_global(poses_local, origin)
    assert glob.shape == poses_local.shape
    assert_poses_close(global_to_local(glob, origin), poses_local, atol=1e-8)
    # The local origin itself maps onto the origin pose.
    assert_poses_close(local_to_global(np.zeros(3), origin), origin)


def test_local_global_hand_values() -> None:
    origin = np.array([10.0, 5.0, PI / 2])  # ego at (10, 5) facing +y
    # 2 m ahead of the ego, facing the same way, is 2 m further along +y.
    np.testing.assert_allclose(local_to_global([2.0, 0.0, 0.0], origin), [10.0, 7.0, PI / 2], atol=1e-12)
    # A point 1 m to the ego's left lies at smaller x in the global frame.
    np.testing.assert_allclose(global_to_local([9.0, 5.0, PI], origin), [0.0, 1.0, PI / 2], atol=1e-12)


def test_se2_functions_broadcast() -> None:
    poses = np.zeros((4, 5, 3))
    poses[..., 0] = np.arange(5)
    assert se2_compose(poses, [1.0, 0.0, 0.0]).shape == (4, 5, 3)
    assert se2_inverse(poses).shape == (4, 5, 3)
    assert se2_to_matrix(poses).shape == (4, 5, 3, 3)
    assert se2_transform_points([0.0, 0.0, 0.0], np.zeros((4, 5, 2))).shape == (4, 5, 2)


# --- quaternions and SE(3) -----------------------------------------------------------------------------


def test_quaternion_to_matrix_hand_values() -> None:
    np.testing.assert_allclose(quaternion_to_matrix([1.0, 0, 0, 0]), np.eye(3))
    s = math.sqrt(0.5)
    np.testing.assert_allclose(
        quaternion_to_matrix([s, 0, 0, s]), [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-15
    )  # 90° about +z
    np.testing.assert_allclose(quaternion_to_matrix([0, 1.0, 0, 0]), np.diag([1.0, -1, -1]), atol=1e-15)
    # Not normalised on input: scaled quaternions give the same rotation.
    np.testing.assert_allclose(quaternion_to_matrix([2 * s, 0, 0, 2 * s]), quaternion_to_matrix([s, 0, 0, s]))


@PROPS
@given(unit_quaternion, st.floats(0.2, 5.0))
def test_quaternion_to_matrix_is_a_rotation(q: np.ndarray, scale: float) -> None:
    r = quaternion_to_matrix(q * scale)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(quaternion_to_matrix(-q), r, atol=1e-12)  # q and -q: the same rotation


@PROPS
@given(unit_quaternion)
def test_matrix_quaternion_matrix_round_trip(q: np.ndarray) -> None:
    r = quaternion_to_matrix(q)
    q2 = matrix_to_quaternion(r)
    assert np.linalg.norm(q2) == pytest.approx(1.0, abs=1e-12)
    assert q2[0] >= 0
    np.testing.assert_allclose(quaternion_to_matrix(q2), r, atol=1e-10)
    # Same quaternion up to sign.
    assert min(np.abs(q2 - q).max(), np.abs(q2 + q).max()) < 1e-9


@pytest.mark.parametrize(
    ("axis_xyz", "branch"),
    [
        ((1.0, 0.0, 0.0), 1),
        ((0.0, 1.0, 0.0), 2),
        ((0.0, 0.0, 1.0), 3),
        ((-1.0, 0.5, 0.2), 1),
        ((0.3, -1.0, 0.5), 2),
        ((-1.0, 2.0, -3.0), 3),
        ((1.0, 1.0, 0.0), None),  # ties between branches
        ((1.0, 1.0, 1.0), None),
    ],
)
def test_matrix_to_quaternion_180_degree_rotations(axis_xyz: tuple[float, ...], branch: int | None) -> None:
    # At 180° w = 0, so the trace branch is useless and the largest of x, y, z must be chosen.
    n = np.array(axis_xyz) / np.linalg.norm(axis_xyz)
    r = rotation_180(n)
    q = matrix_to_quaternion(r)
    assert abs(q[0]) < 1e-12
    if branch is not None:
        assert np.argmax(np.abs(q)) == branch
    assert min(np.abs(q[1:] - n).max(), np.abs(q[1:] + n).max()) < 1e-12
    np.testing.assert_allclose(quaternion_to_matrix(q), r, atol=1e-12)


@PROPS
@given(axis, st.floats(PI - 1e-3, PI))
def test_matrix_to_quaternion_near_180_random_axis(n: np.ndarray, theta: float) -> None:
    q = np.concatenate([[math.cos(theta / 2)], math.sin(theta / 2) * n])
    r = quaternion_to_matrix(q)
    np.testing.assert_allclose(quaternion_to_matrix(matrix_to_quaternion(r)), r, atol=1e-10)


def test_matrix_to_quaternion_batched() -> None:
    rs = np.stack(
        [np.eye(3), rotation_180(np.array([1.0, 0, 0])), quaternion_to_matrix(yaw_to_quaternion(0.3))]
    )
    qs = matrix_to_quaternion(rs)
    assert qs.shape == (3, 4)
    np.testing.assert_allclose(quaternion_to_matrix(qs), rs, atol=1e-12)
    np.testing.assert_allclose(qs[0], [1.0, 0, 0, 0])


def test_yaw_to_quaternion_hand_values() -> None:
    s = math.sqrt(0.5)
    np.testing.assert_allclose(yaw_to_quaternion(PI / 2), [s, 0, 0, s], atol=1e-15)
    np.testing.assert_allclose(yaw_to_quaternion(0.0), [1.0, 0, 0, 0])
    assert yaw_to_quaternion(np.zeros((2, 3))).shape == (2, 3, 4)


@PROPS
@given(angle)
def test_quaternion_yaw_of_yaw_to_quaternion(yaw: float) -> None:
    q = yaw_to_quaternion(yaw)
    assert angle_diff(quaternion_yaw(q), yaw) < 1e-12
    np.testing.assert_allclose(quaternion_to_matrix(q)[:2, :2], rotation_2d(yaw), atol=1e-12)


def test_quaternion_yaw_of_quarter_turn_matrix() -> None:
    # A rotation of 90° about +z turns x forward into y left: the heading is +π/2 (counter-clockwise).
    r = np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])
    assert quaternion_yaw(matrix_to_quaternion(r)) == pytest.approx(PI / 2)


def random_se3(q: np.ndarray, t: np.ndarray) -> np.ndarray:
    return se3_from_rt(quaternion_to_matrix(q), t)


translation = st.tuples(coord, coord, coord).map(np.array)


@PROPS
@given(unit_quaternion, translation)
def test_se3_inverse_is_exact(q: np.ndarray, t: np.ndarray) -> None:
    m = random_se3(q, t)
    inv = se3_inverse(m)
    # Exact by construction: the rotation block is the transpose bit for bit, the last row is (0, 0, 0, 1).
    assert np.array_equal(inv[:3, :3], m[:3, :3].T)
    assert np.array_equal(inv[3], [0.0, 0.0, 0.0, 1.0])
    np.testing.assert_allclose(inv @ m, np.eye(4), atol=1e-10)
    np.testing.assert_allclose(m @ inv, np.eye(4), atol=1e-10)
    np.testing.assert_allclose(inv, np.linalg.inv(m), atol=1e-9)


@PROPS
@given(unit_quaternion, translation, hnp.arrays(np.float64, (5, 3), elements=coord))
def test_se3_transform_points_matches_homogeneous(q: np.ndarray, t: np.ndarray, pts: np.ndarray) -> None:
    m = random_se3(q, t)
    homogeneous = np.concatenate([pts, np.ones((5, 1))], axis=1)
    np.testing.assert_allclose(se3_transform_points(m, pts), (m @ homogeneous.T).T[:, :3], atol=1e-9)
    np.testing.assert_allclose(
        se3_transform_points(se3_inverse(m), se3_transform_points(m, pts)), pts, atol=1e-8
    )


def test_se3_from_rt_layout_and_broadcast() -> None:
    m = se3_from_rt(np.eye(3), [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(m, [[1, 0, 0, 1], [0, 1, 0, 2], [0, 0, 1, 3], [0, 0, 0, 1]])
    batch = se3_from_rt(np.eye(3), np.zeros((5, 3)))
    assert batch.shape == (5, 4, 4)
    assert se3_inverse(batch).shape == (5, 4, 4)


# --- boxes and polygons --------------------------------------------------------------------------------


def test_box_corners_2d_heading_zero_order_fl_rl_rr_fr() -> None:
    corners = box_corners_2d([1.0, 2.0], 4.0, 2.0, 0.0)
    np.testing.assert_allclose(corners, [[3.0, 3.0], [-1.0, 3.0], [-1.0, 1.0], [3.0, 1.0]], atol=1e-12)


def test_box_corners_2d_heading_quarter_turn() -> None:
    # Facing +y: the front is at larger y and the left side at smaller x.
    corners = box_corners_2d([1.0, 2.0], 4.0, 2.0, PI / 2)
    np.testing.assert_allclose(corners, [[0.0, 4.0], [0.0, 0.0], [2.0, 0.0], [2.0, 4.0]], atol=1e-12)


def test_box_corners_2d_broadcasts_over_boxes() -> None:
    centers = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    corners = box_corners_2d(centers, np.array([4.0, 2.0, 1.0]), 2.0, np.array([0.0, PI / 2, PI]))
    assert corners.shape == (3, 4, 2)
    np.testing.assert_allclose(corners[0], box_corners_2d([0.0, 0.0], 4.0, 2.0, 0.0))
    np.testing.assert_allclose(corners[2], box_corners_2d([0.0, 10.0], 1.0, 2.0, PI))
    # Heading π: front-left is behind and to the right in the world frame.
    np.testing.assert_allclose(corners[2, 0], [-0.5, 9.0], atol=1e-12)


@PROPS
@given(pose, st.tuples(coord, coord), length, length, angle)
def test_box_corners_rotate_with_the_scene(
    world_from_scene: np.ndarray, center: tuple[float, float], length_m: float, width_m: float, heading: float
) -> None:
    before = box_corners_2d(center, length_m, width_m, heading)
    moved = se2_compose(world_from_scene, [center[0], center[1], heading])
    after = box_corners_2d(moved[:2], length_m, width_m, moved[2])
    # Same corners, in the same order, whether the box or its corners are transformed.
    np.testing.assert_allclose(after, se2_transform_points(world_from_scene, before), atol=1e-8)


@PROPS
@given(st.tuples(coord, coord), length, length, angle)
def test_box_polygon_area_and_orientation(
    center: tuple[float, float], length_m: float, width_m: float, heading: float
) -> None:
    poly = box_polygons(box_corners_2d(center, length_m, width_m, heading))
    assert shapely.is_valid(poly)
    assert shapely.area(poly) == pytest.approx(length_m * width_m, rel=1e-9, abs=1e-9)
    assert shapely.is_ccw(poly.exterior)  # FL, RL, RR, FR runs counter-clockwise
    np.testing.assert_allclose(shapely.get_coordinates(poly.centroid)[0], center, atol=1e-8)


def test_box_polygons_vectorised() -> None:
    corners = box_corners_2d(np.zeros((2, 3, 2)), np.full((2, 3), 4.0), 2.0, np.zeros((2, 3)))
    polys = box_polygons(corners)
    assert polys.shape == (2, 3)
    np.testing.assert_allclose(shapely.area(polys), 8.0)


def test_box_corners_3d_hand_values() -> None:
    corners = box_corners_3d([1.0, 2.0, 1.0], [4.0, 2.0, 1.5], 0.0)
    assert corners.shape == (8, 3)
    np.testing.assert_allclose(corners[:4, :2], box_corners_2d([1.0, 2.0], 4.0, 2.0, 0.0))
    np.testing.assert_allclose(corners[4:, :2], corners[:4, :2])
    np.testing.assert_allclose(corners[:4, 2], 0.25)
    np.testing.assert_allclose(corners[4:, 2], 1.75)


@PROPS
@given(pose, translation, st.tuples(length, length, length).map(np.array), angle)
def test_box_corners_3d_rotate_with_the_scene(
    world_from_scene: np.ndarray, center: np.ndarray, size: np.ndarray, heading: float
) -> None:
    m = se3_from_rt(
        quaternion_to_matrix(yaw_to_quaternion(world_from_scene[2])),
        [world_from_scene[0], world_from_scene[1], 0.7],
    )
    before = box_corners_3d(center, size, heading)
    moved_center = se3_transform_points(m, center[None])[0]
    after = box_corners_3d(moved_center, size, heading + world_from_scene[2])
    np.testing.assert_allclose(after, se3_transform_points(m, before), atol=1e-8)


def test_box_corners_3d_batched() -> None:
    corners = box_corners_3d(np.zeros((5, 3)), np.ones((5, 3)), np.zeros(5))
    assert corners.shape == (5, 8, 3)


# --- polylines -----------------------------------------------------------------------------------------


def test_polyline_arc_length_and_headings() -> None:
    pts = [[0.0, 0.0], [3.0, 4.0], [3.0, 10.0]]
    np.testing.assert_allclose(polyline_arc_length(pts), [0.0, 5.0, 11.0])
    np.testing.assert_allclose(polyline_headings(pts), [math.atan2(4, 3), PI / 2, PI / 2])
