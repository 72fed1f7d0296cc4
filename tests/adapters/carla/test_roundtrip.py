"""World -> LEAD route folders -> CarlaReader, for each rig: geometry, labels, perturbed copies, the frame flip."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from adapters.carla import format as fmt
from adapters.carla.frames import CARLA_REAR_AXLE_M
from adapters.carla.reader import CAMERAS_ONLY, CarlaReader
from adapters.carla.rigs import RIG_FILE, RIG_NAMES, get_rig
from adapters.carla.writer import CarlaWriteOptions, write_carla_route, write_carla_world
from harness.errors import DataError
from harness.geometry import normalize_angle
from harness.trajectory import TrajectorySampling
from harness.types import DrivingCommand
from harness.world.build import WorldConfig, build_world
from harness.world.model import ObjectStates
from harness.world.sensors import boxes_in_ego

AXLE_Z = float(CARLA_REAR_AXLE_M[2])
FRAME = 2  # t = 0.5 s: world frame 5 exactly, so no interpolation enters the expectations
SAMPLING = TrajectorySampling(4, 0.5)


@pytest.fixture(scope="module")
def world():
    return build_world(WorldConfig(seed=0, num_logs=2, duration_s=3.0))


@pytest.fixture(scope="module")
def roots(world, tmp_path_factory):
    out = {}
    for rig in RIG_NAMES:
        root = tmp_path_factory.mktemp(rig)
        write_carla_world(world, root, CarlaWriteOptions(rig=rig, camera_scale=0.2, max_frames=3))
        out[rig] = root
    return out


def _track_id(token: str) -> str:
    return str(int(token[:8], 16) & 0x7FFFFFFF)


def _expected_boxes(world, split, radius=64.0):
    log = next(wl for wl in world.logs if wl.name in world.splits[split])
    frame = log.frames[5]
    rear = frame.ego_pose
    near = np.linalg.norm(frame.objects.center_xyz[:, :2] - rear[:2], axis=1) <= radius
    eb = boxes_in_ego(rear, frame.objects)
    c, s = np.cos(rear[2]), np.sin(rear[2])
    v = frame.objects.velocity_xy_mps
    vel = np.column_stack([c * v[:, 0] + s * v[:, 1], -s * v[:, 0] + c * v[:, 1]])
    ids = [_track_id(t) for t in frame.objects.track_tokens]
    return log, {i: (eb.center[k] - (0, 0, AXLE_Z), eb.size[k], eb.yaw[k], vel[k], frame.objects.categories[k])
                 for k, i in enumerate(ids) if near[k]}


@pytest.mark.parametrize("rig", RIG_NAMES)
def test_round_trip_geometry_and_labels(world, roots, rig):
    reader = CarlaReader(roots[rig], "train", sampling=SAMPLING)
    refs = reader.index()
    assert len(refs) == 3 and all(r.log_id.endswith(world.splits["train"][0]) for r in refs)
    ref = refs[FRAME]
    assert ref.timestamp_us == 500_000
    sample = reader.load(ref)
    log, expected = _expected_boxes(world, "train")

    # Boxes: canonical frame, every world object within the annotation radius, original class kept.
    boxes = sample.targets.boxes
    assert set(boxes.track_ids) == set(expected)
    for k, tid in enumerate(boxes.track_ids):
        centre, size, yaw, vel, cat = expected[tid]
        np.testing.assert_allclose(boxes.center_xyz[k], centre, atol=1e-6)
        np.testing.assert_allclose(boxes.size_lwh[k], size, atol=1e-6)
        assert abs(normalize_angle(boxes.yaw_rad[k] - yaw)) < 1e-6
        np.testing.assert_allclose(boxes.velocity_xy_mps[k], vel, atol=1e-6)
        assert boxes.class_names[k] == cat
    # Future: rear-axle poses of the world log relative to the current one, at the requested sampling.
    cur = log.frames[5].ego_pose
    for k, t in enumerate(SAMPLING.times_s):
        p = log.frames[5 + round(t / 0.1)].ego_pose
        d = p[:2] - cur[:2]
        c, s = np.cos(cur[2]), np.sin(cur[2])
        want = (c * d[0] + s * d[1], -s * d[0] + c * d[1], normalize_angle(p[2] - cur[2]))
        np.testing.assert_allclose(sample.targets.future.poses[k, :2], want[:2], atol=1e-4)
        assert abs(normalize_angle(sample.targets.future.poses[k, 2] - want[2])) < 1e-5
    # Ego: history every 0.5 s (here t = -0.5 and 0), rear-axle poses; speed and acceleration of the world.
    ego = sample.observation.ego
    np.testing.assert_allclose(ego.history_times_s, [-0.5, 0.0])
    p0 = log.frames[0].ego_pose
    d = p0[:2] - cur[:2]
    c, s = np.cos(cur[2]), np.sin(cur[2])
    np.testing.assert_allclose(ego.history_poses[0, :2], (c * d[0] + s * d[1], -s * d[0] + c * d[1]), atol=1e-4)
    assert ego.speed_mps == pytest.approx(np.hypot(*log.frames[5].ego_velocity_mps), abs=1e-6)
    np.testing.assert_allclose(ego.acceleration_mps2, log.frames[5].ego_acceleration_mps2, atol=1e-6)
    # Cameras carry the rig's calibration and slice the stitched image; labels are per camera.
    want_rig = get_rig(rig).scaled(0.2)
    assert list(sample.observation.cameras) == [c.name for c in want_rig.cameras]
    for cam, spec in zip(sample.observation.cameras.values(), want_rig.cameras):
        np.testing.assert_allclose(cam.ego_from_camera, spec.ego_from_camera)
        assert cam.load_image().shape == (spec.height, spec.width, 3)
        assert sample.targets.semantics[cam.name].shape == (spec.height, spec.width)
        assert sample.targets.depth_m[cam.name].shape == (spec.height, spec.width)
    # Navigation: the world's command survives the 6-way detour; the 6-way value is kept.
    nav = sample.observation.navigation
    assert nav.command == DrivingCommand.STRAIGHT and nav.source_command == fmt.CarlaCommand.LANEFOLLOW
    assert nav.target_points_xy.shape == (3, 2) and nav.route_xy is not None
    # BEV: the road under the ego, LiDAR in the canonical frame with the ground removed.
    bev = sample.targets.bev
    row = int((bev.extent_m[1] - 0.0) / bev.resolution_m)
    col = int((bev.extent_m[3] - 0.0) / bev.resolution_m)
    assert bev.vocabulary[bev.classes[row, col]] in ("road", "lane_markers", "vehicle")
    assert sample.observation.lidar.points[:, 2].min() > 0.1 - AXLE_Z


@pytest.mark.parametrize("rig", RIG_NAMES)
def test_projected_box_centres_hit_their_class_in_the_semantics(roots, rig):
    """Calibration written == calibration read: a visible vehicle's centre projects onto vehicle pixels."""
    sample = CarlaReader(roots[rig], "train").load(CarlaReader(roots[rig], "train").index()[FRAME])
    boxes = sample.targets.boxes
    hits = tested = 0
    for name, cam in sample.observation.cameras.items():
        sem = sample.targets.semantics[name]
        p = (boxes.center_xyz - cam.ego_from_camera[:3, 3]) @ cam.ego_from_camera[:3, :3]
        for k in np.flatnonzero((p[:, 2] > 2) & (p[:, 2] < 40) & np.isin(boxes.class_names, ["vehicle"])):
            u, v = (cam.intrinsics @ (p[k] / p[k, 2]))[:2]
            if 1 <= u < cam.width - 1 and 1 <= v < cam.height - 1:
                tested += 1
                hits += int(sem[int(round(v)), int(round(u))] == fmt.SEMANTIC_CLASSES.index("vehicle"))
    assert tested >= 1
    assert hits >= 0.7 * tested  # occlusion by nearer boxes may hide a few centres


def test_perturbed_copy_labels_follow_the_perturbed_rig(world, roots):
    reader = CarlaReader(roots["carla_lb_3cam"], "train", sampling=SAMPLING, perturbed=True)
    ref = reader.index()[FRAME]
    assert ref.token.endswith("#perturbed")
    sample = reader.load(ref)
    route = reader.data_dir / ref.token.split("/")[0] / ref.token.split("/")[1]
    meta = reader.read_meta(route, FRAME)
    t_m, r_deg = meta["perturbation_translation"], meta["perturbation_rotation"]
    assert 0.1 <= abs(t_m) <= 1.0 and 5.0 <= abs(r_deg) <= 12.5
    # The perturbed rig: CARLA centre moved t to the right and yawed r clockwise, i.e. canonical (0, -t), -r.
    log, expected = _expected_boxes(world, "train")
    a = -CARLA_REAR_AXLE_M[0]
    psi = -np.deg2rad(r_deg)
    centre_p = np.array([a, -t_m])
    rear_p = centre_p - a * np.array([np.cos(psi), np.sin(psi)])
    c, s = np.cos(psi), np.sin(psi)
    for k, tid in enumerate(sample.targets.boxes.track_ids):
        centre = expected[tid][0]
        d = centre[:2] - rear_p
        np.testing.assert_allclose(sample.targets.boxes.center_xyz[k, :2], (c * d[0] + s * d[1], -s * d[0] + c * d[1]),
                                   atol=1e-6)
    assert sample.observation.ego.history_poses.shape == (1, 3)  # no history that would give the offset away
    # Its images are rendered from that pose: they differ from the normal copy.
    normal = CarlaReader(roots["carla_lb_3cam"], "train").load(ref.token.removesuffix("#perturbed"), CAMERAS_ONLY)
    assert not np.array_equal(normal.observation.cameras["rgb_front"].load_image(),
                              sample.observation.cameras["rgb_front"].load_image())


def test_object_on_the_left_stays_on_the_left(world, tmp_path):
    """An asymmetric scene: one car 6 m ahead and 7 m to the left of the ego, nothing else."""
    log = world.logs[0]
    frames = []
    for fr in log.frames:
        x, y, h = fr.ego_pose
        c, s = np.cos(h), np.sin(h)
        centre = (x + 6.0 * c - 7.0 * s, y + 6.0 * s + 7.0 * c, 0.8)
        obj = ObjectStates(("00000000000000aa",), ("vehicle",), np.array([centre]), np.array([[4.5, 1.9, 1.6]]),
                           np.array([h]), np.zeros((1, 2)))
        frames.append(replace(fr, objects=obj))
    lone = replace(log, frames=tuple(frames))
    write_carla_route(lone, tmp_path, CarlaWriteOptions(camera_scale=0.25, max_frames=1, perturbed=False))
    # On disk the car is on CARLA's negative-y side (left in a y-right frame).
    reader = CarlaReader(tmp_path)
    ref = reader.index()[0]
    route = reader.data_dir / ref.token.split("/")[0] / ref.token.split("/")[1]
    raw = fmt.read_lzma_pickle(fmt.frame_path(route, "bboxes", 0), where="test")
    assert [b["position"][1] < 0 for b in raw if b["class"] == "car"] == [True]
    sample = reader.load(ref)
    box = sample.targets.boxes
    np.testing.assert_allclose(box.center_xyz[0, :2], (6.0, 7.0), atol=1e-6)
    # LiDAR returns of the car are on the left; only the left camera sees it; the BEV paints it left.
    pts = sample.observation.lidar.xyz
    on_car = (np.abs(pts[:, 0] - 6.0) < 2.4) & (np.abs(pts[:, 1] - 7.0) < 1.1)
    assert on_car.sum() > 5 and np.all(pts[(pts[:, 2] > 0) & (np.abs(pts[:, 1]) > 3), 1] > 0)
    vehicle = fmt.SEMANTIC_CLASSES.index("vehicle")
    seen = {n: int((s == vehicle).sum()) for n, s in sample.targets.semantics.items()}
    assert seen["rgb_left"] > 20 and seen["rgb_front"] == 0 and seen["rgb_right"] == 0
    radar = reader.load_radar(ref).points
    front_left = radar[radar[:, 4] == 1]  # radar1: front bumper, looking 45 deg to the left
    assert len(front_left) == 1 and np.allclose(front_left[0, :2], (6.0, 7.0), atol=1e-2)
    assert not np.any(radar[radar[:, 4] == 2][:, 1] > 0)  # radar2 looks front-right
    bev = sample.targets.bev
    rows, cols = np.nonzero(bev.classes == bev.vocabulary.index("vehicle"))
    ys = bev.extent_m[3] - (cols + 0.5) * bev.resolution_m
    xs = bev.extent_m[1] - (rows + 0.5) * bev.resolution_m
    assert len(ys) > 0 and np.all(ys > 4.0) and abs(np.mean(ys) - 7.0) < 0.5 and abs(np.mean(xs) - 6.0) < 0.5


def test_rig_comes_from_the_route_files_not_the_path(world, roots, tmp_path):
    src = roots["navsim_4cam"]
    dst = tmp_path / "carla_lb_3cam_looking_name"
    shutil.copytree(src, dst)
    sample = CarlaReader(dst, "train").load(CarlaReader(dst, "train").index()[0], CAMERAS_ONLY)
    assert list(sample.observation.cameras) == ["CAM_L0", "CAM_F0", "CAM_R0", "CAM_B0"]
    # Without rig.json (real LEAD data) the meta's target_dataset names LEAD's full-size rig; this route was
    # rendered at 0.2 scale, so the mismatch is reported, naming route and frame.
    route = next((dst / "data").glob("*/*"))
    (route / RIG_FILE).unlink()
    reader = CarlaReader(dst, "train")
    with pytest.raises(DataError, match=r"route .* frame 0000: stitched image is .* rig navsim_4cam needs 1920x280"):
        reader.load(reader.index()[0], CAMERAS_ONLY)


# --- bad input ------------------------------------------------------------------------------------------


@pytest.fixture()
def broken_root(roots, tmp_path):
    dst = tmp_path / "broken"
    shutil.copytree(roots["carla_lb_3cam"], dst)
    reader = CarlaReader(dst, "train")
    ref = reader.index()[1]
    route = reader.data_dir / ref.token.split("/")[0] / ref.token.split("/")[1]
    return reader, ref, route


def test_missing_per_frame_file_names_route_and_frame(broken_root):
    reader, ref, route = broken_root
    fmt.frame_path(route, "semantics", 1).unlink()
    with pytest.raises(DataError, match=rf"route {route.name} frame 0001 semantics: missing file"):
        reader.load(ref)
    fmt.frame_path(route, "rgb", 1).unlink()
    with pytest.raises(DataError, match=rf"route {route.name} frame 0001 rgb: missing file"):
        reader.load(ref, CAMERAS_ONLY)


def test_undecodable_laz(broken_root):
    reader, ref, route = broken_root
    path = fmt.frame_path(route, "lidar", 1)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=rf"route {route.name} frame 0001 lidar: LiDAR .laz does not decode"):
        reader.load(ref)
    path.write_bytes(b"not a las file at all")
    with pytest.raises(DataError, match="does not decode"):
        reader.load(ref)


def test_metas_missing_keys_and_unsafe_pickles(broken_root):
    reader, ref, route = broken_root
    path = fmt.frame_path(route, "metas", 1)
    meta = reader.read_meta(route, 1)
    del meta["future_positions"], meta["theta"]
    path.write_bytes(fmt.lzma_pickle_bytes(meta))
    with pytest.raises(DataError, match=rf"route {route.name} frame 0001: metas pickle lacks keys "
                                        r"\['theta', 'future_positions'\]"):
        reader.load(ref)
    import lzma
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path.write_bytes(lzma.compress(pickle.dumps(Evil())))
    with pytest.raises(DataError, match="refusing to unpickle builtins.print"):
        reader.load(ref)
    path.write_bytes(b"plain bytes")
    with pytest.raises(DataError, match="not an lzma-compressed pickle"):
        reader.load(ref)


def test_unknown_split_and_token(roots):
    from harness.errors import ConfigError

    with pytest.raises(ConfigError, match="known splits: all, test, train"):
        CarlaReader(roots["carla_lb_3cam"], "val").index()
    with pytest.raises(DataError, match="not a CARLA token"):
        CarlaReader(roots["carla_lb_3cam"]).load("no-slashes")
    assert Path(roots["carla_lb_3cam"], "splits", "test.txt").read_text().count("\n") == 1
