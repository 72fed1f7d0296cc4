"""The embedded world's sensors: nuPlan rig calibration, camera rendering and LiDAR ray casting."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from harness.geometry import se3_inverse, se3_transform_points
from harness.maps import Area, Boundary, Lane, Roadblock, RoadMap, StopLine, StopLineType
from harness.world.model import ObjectStates
from harness.world.rig import NUPLAN_CAMERA_NAMES, NUPLAN_DISTORTION, NUPLAN_LIDAR, nuplan_cameras
from harness.world.sensors import Material, SceneRenderer, rasterize_ground

EMPTY_MAP = RoadMap("empty", "1", {}, {}, {}, {})


def straight_road() -> RoadMap:
    """Two eastbound lanes (y in [-7, 0]) and two westbound lanes (y in [0, 7]) along x in [-100, 200], with
    sidewalks, a zebra crossing at x in [40, 44] and a stop line before it."""
    x0, x1 = -100.0, 200.0

    def line(y: float, forward: bool = True) -> np.ndarray:
        return np.array([[x0, y], [x1, y]] if forward else [[x1, y], [x0, y]])

    def band(ya: float, yb: float) -> shapely.Polygon:
        return shapely.box(x0, min(ya, yb), x1, max(ya, yb))

    bounds = {i: Boundary(i, line(y)) for i, y in ((10, 0.0), (11, -3.5), (12, -7.0), (13, 3.5), (14, 7.0))}
    lanes = {
        100: Lane(100, 1, 0, line(-1.75), band(0, -3.5), 10, 11),
        101: Lane(101, 1, 1, line(-5.25), band(-3.5, -7), 11, 12),
        200: Lane(200, 2, 0, line(1.75, False), band(0, 3.5), 10, 13),
        201: Lane(201, 2, 1, line(5.25, False), band(3.5, 7), 13, 14),
    }
    blocks = {1: Roadblock(1, band(0, -7), (100, 101)), 2: Roadblock(2, band(0, 7), (200, 201))}
    return RoadMap(
        "straight", "1", lanes, {}, blocks, {}, boundaries=bounds,
        crosswalks={1: Area(1, shapely.box(40, -7, 44, 7))},
        walkways={1: Area(1, band(7, 10)), 2: Area(2, band(-7, -10))},
        stop_lines={1: StopLine(1, shapely.box(38.5, -7, 39.0, 0), StopLineType.TRAFFIC_LIGHT)},
    )


def boxes(centers, sizes, categories, yaws=None) -> ObjectStates:
    c = np.asarray(centers, dtype=np.float64).reshape(-1, 3)
    n = len(c)
    return ObjectStates(tuple(f"{i:016x}" for i in range(n)), tuple(categories), c,
                        np.asarray(sizes, dtype=np.float64).reshape(n, 3),
                        np.zeros(n) if yaws is None else np.asarray(yaws, dtype=np.float64), np.zeros((n, 2)))


NO_OBJECTS = boxes(np.zeros((0, 3)), np.zeros((0, 3)), ())


@pytest.fixture(scope="module")
def empty_renderer() -> SceneRenderer:
    return SceneRenderer(EMPTY_MAP, nuplan_cameras(0.25), NUPLAN_LIDAR, seed=3)


# --- rig ---------------------------------------------------------------------------------------------------


def test_rig_matches_nuplan() -> None:
    full = nuplan_cameras(1.0)
    assert tuple(c.name for c in full) == NUPLAN_CAMERA_NAMES
    for cam in full:
        assert (cam.width, cam.height) == (1920, 1080)
        np.testing.assert_allclose(cam.intrinsics, [[1545, 0, 960], [0, 1545, 560], [0, 0, 1]])
        np.testing.assert_array_equal(cam.distortion, np.zeros(5))  # rendered images are ideal pinhole images
        r = cam.lidar_from_camera[:3, :3]
        np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
        height = (NUPLAN_LIDAR.ego_from_lidar @ cam.lidar_from_camera)[2, 3]
        assert 1.75 < height < 2.0  # roof-rack cameras of a 1.78 m tall minivan
    np.testing.assert_array_equal(nuplan_cameras(1.0, real_distortion=True)[0].distortion, NUPLAN_DISTORTION)
    # Optical axes (camera +z) in the lidar frame point where the names say.
    yaw = {c.name: np.degrees(np.arctan2(c.lidar_from_camera[1, 2], c.lidar_from_camera[0, 2])) for c in full}
    for name, expected in (("CAM_F0", 0), ("CAM_L0", 55), ("CAM_R0", -55), ("CAM_L1", 111), ("CAM_R1", -112),
                           ("CAM_L2", 140), ("CAM_R2", -141), ("CAM_B0", 180)):
        assert abs((yaw[name] - expected + 180) % 360 - 180) < 3, (name, yaw[name])


def test_scaled_camera() -> None:
    quarter = nuplan_cameras(0.25)[0]
    assert (quarter.width, quarter.height) == (480, 270)
    np.testing.assert_allclose(quarter.intrinsics, [[386.25, 0, 240], [0, 386.25, 140], [0, 0, 1]])
    half = nuplan_cameras(1.0)[0].scaled(0.5)
    assert (half.width, half.height) == (960, 540)
    np.testing.assert_array_equal(half.lidar_from_camera, quarter.lidar_from_camera)


# --- cameras -----------------------------------------------------------------------------------------------


def test_images_have_the_spec_shape(empty_renderer: SceneRenderer) -> None:
    imgs = empty_renderer.render_cameras(np.array([5.0, -3.0, 0.4]), NO_OBJECTS)
    assert sorted(imgs) == sorted(NUPLAN_CAMERA_NAMES)
    for img in imgs.values():
        assert img.shape == (270, 480, 3) and img.dtype == np.uint8


def test_projection_matches_k_and_extrinsics(empty_renderer: SceneRenderer) -> None:
    cam = nuplan_cameras(0.25)[0]
    ego_from_camera = NUPLAN_LIDAR.ego_from_lidar @ cam.lidar_from_camera
    p_ego = np.array([[12.0, 1.0, 1.2]])
    p_cam = se3_transform_points(se3_inverse(ego_from_camera), p_ego)[0]
    k = cam.intrinsics
    expected = np.array([k[0, 0] * p_cam[0] / p_cam[2] + k[0, 2], k[1, 1] * p_cam[1] / p_cam[2] + k[1, 2]])
    uv, depth = empty_renderer.cameras["CAM_F0"].project(p_ego)
    np.testing.assert_allclose(uv[0], expected, atol=1e-9)
    assert depth[0] == pytest.approx(p_cam[2])
    # A small cone centred on that point (ego at the origin, so ego frame = global frame) covers that pixel.
    cone = boxes([p_ego[0]], [[0.6, 0.6, 0.6]], ["traffic_cone"])
    img = empty_renderer.render_cameras(np.zeros(3), cone)["CAM_F0"]
    col, row = np.round(expected).astype(int)
    r, g, b = (int(v) for v in img[row, col])
    assert r > 100 and r > 1.8 * g and b < 40, img[row, col]  # cone orange (lit or edge), not sky or grass


def test_box_ahead_shows_in_front_camera_only(empty_renderer: SceneRenderer) -> None:
    pose = np.array([100.0, 50.0, 0.7])
    ahead = np.array([100.0 + 15 * np.cos(0.7), 50.0 + 15 * np.sin(0.7), 0.8])
    plain = empty_renderer.render_cameras(pose, NO_OBJECTS)
    with_car = empty_renderer.render_cameras(pose, boxes([ahead], [[4.5, 1.9, 1.6]], ["vehicle"], [0.7]))
    assert np.count_nonzero(np.any(plain["CAM_F0"] != with_car["CAM_F0"], axis=-1)) > 500
    np.testing.assert_array_equal(plain["CAM_B0"], with_car["CAM_B0"])


def test_near_box_hides_far_box(empty_renderer: SceneRenderer) -> None:
    cam = empty_renderer.cameras["CAM_F0"]
    near = [8.0, 0.0, 1.0]
    far = [20.0, 0.0, 1.5]
    scene = boxes([far, near], [[2.0, 6.0, 3.0], [1.0, 1.0, 2.0]], ["traffic_cone", "pedestrian"])
    for objects in (scene, boxes([near, far], [[1.0, 1.0, 2.0], [2.0, 6.0, 3.0]], ["pedestrian", "traffic_cone"])):
        img = empty_renderer.render_cameras(np.zeros(3), objects)["CAM_F0"]
        uv, _ = cam.project(np.array([near, [19.0, 2.5, 1.5]]))
        (u0, v0), (u1, v1) = np.round(uv).astype(int)
        r, g, b = (int(x) for x in img[v0, u0])
        assert b > r, "the pedestrian in front must hide the cone behind it"
        r, g, b = (int(x) for x in img[v1, u1])
        assert r > 100 and r > 1.8 * g and b < 40, "the far cone stays visible beside the pedestrian"


def test_box_beside_the_ego_is_clipped_at_the_near_plane(empty_renderer: SceneRenderer) -> None:
    # A 12 m long truck alongside: it starts behind the side cameras and ends ahead of them.
    truck = boxes([[2.0, 3.2, 1.5]], [[12.0, 2.5, 3.0]], ["generic_object"])
    plain = empty_renderer.render_cameras(np.zeros(3), NO_OBJECTS)
    imgs = empty_renderer.render_cameras(np.zeros(3), truck)
    for name in ("CAM_L0", "CAM_L1", "CAM_L2"):
        changed = np.mean(np.any(imgs[name] != plain[name], axis=-1))
        assert changed > 0.2, (name, changed)
    np.testing.assert_array_equal(imgs["CAM_R1"], plain["CAM_R1"])


def test_ground_shows_the_map() -> None:
    road = straight_road()
    tex = rasterize_ground(road)
    pose = np.zeros(3)
    pts = np.array([[10.0, -1.75], [10.0, 0.0], [10.0, 8.5], [10.0, 30.0], [10.0, -7.0], [38.75, -3.0]])
    got = tex.materials_at(pose, pts)
    assert list(got) == [Material.ROAD, Material.MARKING_YELLOW, Material.WALKWAY, Material.GRASS,
                         Material.MARKING_WHITE, Material.MARKING_WHITE]
    # Dashed white between the two eastbound lanes; zebra bars alternate with road across the crossing.
    dashes = tex.materials_at(pose, np.column_stack([np.arange(0.0, 30.0, 0.25), np.full(120, -3.5)]))
    assert 0.2 < np.mean(dashes == Material.MARKING_WHITE) < 0.5
    bars = tex.materials_at(pose, np.column_stack([np.full(140, 42.0), np.linspace(-6.95, 6.95, 140)]))
    assert 0.3 < np.mean(bars == Material.MARKING_WHITE) < 0.7
    assert tex.materials_at(pose, np.array([[1e6, 1e6]]))[0] == Material.GRASS
    img = SceneRenderer(road, nuplan_cameras(0.1)[:1], NUPLAN_LIDAR).render_cameras(np.array([0, -1.75, 0]),
                                                                                     NO_OBJECTS)["CAM_F0"]
    assert img.shape == (108, 192, 3) and len(np.unique(img.reshape(-1, 3), axis=0)) > 20


def test_rendering_is_deterministic() -> None:
    road = straight_road()
    objects = boxes([[20, -1.75, 0.8], [30, 1.75, 0.8]], [[4.5, 1.9, 1.6]] * 2, ["vehicle", "vehicle"], [0.0, np.pi])
    pose = np.array([0.0, -1.75, 0.05])
    a = SceneRenderer(road, nuplan_cameras(0.1), NUPLAN_LIDAR, seed=7)
    b = SceneRenderer(road, nuplan_cameras(0.1), NUPLAN_LIDAR, seed=7)
    ia, ib = a.render_cameras(pose, objects), b.render_cameras(pose, objects)
    for name in NUPLAN_CAMERA_NAMES:
        np.testing.assert_array_equal(ia[name], ib[name])
    np.testing.assert_array_equal(a.cast_lidar(pose, objects), b.cast_lidar(pose, objects))
    other = SceneRenderer(road, nuplan_cameras(0.1)[:1], NUPLAN_LIDAR, seed=8).cast_lidar(pose, objects)
    assert not np.array_equal(other, a.cast_lidar(pose, objects))


# --- LiDAR -------------------------------------------------------------------------------------------------


def _to_ego(points_lidar: np.ndarray) -> np.ndarray:
    return se3_transform_points(NUPLAN_LIDAR.ego_from_lidar, points_lidar[:, :3])


def test_lidar_ground_is_at_zero_in_the_ego_frame(empty_renderer: SceneRenderer) -> None:
    pts = empty_renderer.cast_lidar(np.array([3.0, 4.0, 1.0]), NO_OBJECTS)
    assert pts.dtype == np.float32 and pts.ndim == 2 and pts.shape[1] == 6 and len(pts) > 10_000
    ego = _to_ego(pts)
    assert np.all(np.abs(ego[:, 2]) < 0.07)
    # In the lidar frame (nuPlan's rear-axle frame) the road lies below the origin, as in real clouds.
    assert np.median(pts[:, 2]) == pytest.approx(-NUPLAN_LIDAR.ego_from_lidar[2, 3], abs=0.01)
    assert set(np.unique(pts[:, 5])) == {0.0, 1.0, 2.0, 3.0, 4.0}
    assert np.all(pts[:, 4] == np.round(pts[:, 4])) and pts[:, 4].min() == 0 and pts[:, 4].max() < 32
    assert 0 <= pts[:, 3].min() and pts[:, 3].max() <= 255
    # Nothing comes back from inside the ego's own body (5.176 x 2.297 m, centred 1.461 m ahead of the axle).
    body = (np.abs(ego[:, 0] - 1.461) < 2.5) & (np.abs(ego[:, 1]) < 1.1) & (ego[:, 2] > 0.1)
    assert not np.any(body)
    origins = np.array([s.origin_m for s in NUPLAN_LIDAR.scanners])[pts[:, 5].astype(int)]
    ranges = np.linalg.norm(pts[:, :3] - origins, axis=1)
    assert ranges.max() < 80.1


def test_lidar_sees_a_box_at_its_face(empty_renderer: SceneRenderer) -> None:
    wall = boxes([[11.0, 0.0, 1.0]], [[2.0, 4.0, 2.0]], ["barrier"])  # rear face at x = 10 m
    ego = _to_ego(pts := empty_renderer.cast_lidar(np.zeros(3), wall))
    on_face = (np.abs(ego[:, 1]) < 1.8) & (ego[:, 2] > 0.2) & (ego[:, 2] < 1.8) & (ego[:, 0] > 3)
    assert np.count_nonzero(on_face) > 30
    np.testing.assert_allclose(ego[on_face, 0], 10.0, atol=0.07)
    assert np.all(pts[on_face, 3] > 40)  # a barrier reflects more than asphalt
    # A car right beside the ego (inside every scanner's azimuth window test) returns its near side.
    car = boxes([[1.5, 3.0, 0.8]], [[4.6, 1.9, 1.6]], ["vehicle"])
    side = _to_ego(empty_renderer.cast_lidar(np.zeros(3), car))
    on_side = (np.abs(side[:, 0] - 1.5) < 2.0) & (side[:, 1] > 1.5) & (side[:, 2] > 0.2) & (side[:, 2] < 1.5)
    assert np.count_nonzero(on_side) > 30
    np.testing.assert_allclose(side[on_side, 1], 3.0 - 0.95, atol=0.07)
    # The wall casts a shadow: no ground returns straight behind it.
    behind = (ego[:, 0] > 12.5) & (ego[:, 0] < 20) & (np.abs(ego[:, 1]) < 1.0)
    assert not np.any(behind)
