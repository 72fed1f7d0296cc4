"""World -> OpenScene files -> reader: the same values, in NAVSIM's exact layout; and clear errors."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from adapters.navsim.log_format import ANNOTATION_KEYS, CAMERA_KEYS, FRAME_KEYS, NUPLAN_CAMERA_NAMES
from adapters.navsim.reader import NavsimReader, SensorSelection
from adapters.navsim.writer import ANNOTATION_RADIUS_M, KEYFRAME_STRIDE
from harness.errors import DataError
from harness.geometry import global_to_local, normalize_angle
from harness.safe_pickle import dumps_compatible, load_restricted


def _raw_log(root: Path, split: str) -> tuple[Path, list[dict]]:
    path = sorted((root / "navsim_logs" / split).glob("*.pkl"))[0]
    return path, load_restricted(path)


def test_frame_dicts_have_openscene_keys_and_types(small_world_root):
    path, frames = _raw_log(small_world_root, "test")
    assert b"numpy._core" not in path.read_bytes()  # loadable by NAVSIM's numpy 1.x
    for f in frames:
        assert set(FRAME_KEYS) | {"anns"} == set(f)
        assert isinstance(f["token"], str) and len(f["token"]) == 16 and int(f["token"], 16) >= 0
        assert isinstance(f["timestamp"], int)
        assert all(isinstance(r, str) for r in f["roadblock_ids"]) and f["roadblock_ids"]
        assert all(isinstance(c, int) and isinstance(r, bool) for c, r in f["traffic_lights"])
        assert f["driving_command"].shape == (4,) and f["driving_command"].sum() == 1
        assert f["can_bus"].shape == (18,)
        np.testing.assert_array_equal(f["ego2global_translation"], f["can_bus"][:3])
        assert set(f["cams"]) == set(NUPLAN_CAMERA_NAMES)
        for name, cam in f["cams"].items():
            assert set(cam) == set(CAMERA_KEYS)
            assert cam["data_path"].startswith(f"{f['log_name']}/{name}/") and cam["data_path"].endswith(".jpg")
        assert f["lidar_path"].startswith(f"{f['log_name']}/MergedPointCloud/")
        assert set(f["anns"]) == set(ANNOTATION_KEYS)
        n = len(f["anns"]["track_tokens"])
        assert f["anns"]["gt_boxes"].shape == (n, 7) and f["anns"]["gt_velocity_3d"].shape == (n, 3)
    ts = np.array([f["timestamp"] for f in frames])
    np.testing.assert_array_equal(np.diff(ts), 500_000)
    assert frames[0]["sample_prev"] is None and frames[1]["sample_prev"] == frames[0]["token"]


def test_index_has_one_scene_per_navtest_window(small_world_root, small_world):
    reader = NavsimReader(small_world_root, "test")
    refs = reader.index()
    n_frames = len(range(0, len(small_world.logs[0].frames), KEYFRAME_STRIDE))
    assert len(refs) == len(small_world.splits["test"]) * (n_frames - 14 + 1)
    assert len({r.token for r in refs}) == len(refs)


def test_round_trip_world_to_sample(small_world_root, small_world):
    reader = NavsimReader(small_world_root, "test")
    ref = reader.index()[2]
    wlog = next(wl for wl in small_world.logs if wl.name == ref.log_id)
    frames, cur = reader.scene_frames(ref.token)
    step = [f.token for f in reader.log_frames(ref.log_id)].index(ref.token) * KEYFRAME_STRIDE
    world_now = wlog.frames[step]
    sample = reader.load(ref)
    assert sample.meta.timestamp_us == world_now.timestamp_us
    assert sample.meta.map_location == wlog.map.location
    np.testing.assert_allclose(sample.observation.ego.velocity_mps, world_now.ego_velocity_mps, atol=1e-9)
    np.testing.assert_allclose(sample.observation.ego.acceleration_mps2, world_now.ego_acceleration_mps2, atol=1e-9)
    assert sample.observation.navigation.command == world_now.driving_command
    # History and future poses are the world's own, in the current rear-axle frame.
    steps = step + KEYFRAME_STRIDE * np.arange(-cur, len(frames) - cur)
    world_poses = np.stack([wlog.frames[s].ego_pose for s in steps])
    rel = global_to_local(world_poses, world_now.ego_pose)
    np.testing.assert_allclose(sample.observation.ego.history_poses, rel[: cur + 1], atol=1e-6)
    np.testing.assert_allclose(sample.observation.ego.history_times_s, np.arange(-cur, 1) * 0.5)
    assert sample.targets.future is not None
    np.testing.assert_allclose(sample.targets.future.poses, rel[cur + 1 :], atol=1e-6)
    # Boxes: every world object within the annotation radius, in the ego frame.
    obj = world_now.objects
    near = np.linalg.norm(obj.center_xyz[:, :2] - world_now.ego_pose[:2], axis=1) <= ANNOTATION_RADIUS_M
    boxes = sample.targets.boxes
    assert boxes is not None and len(boxes) == int(near.sum())
    want_xy = global_to_local(np.c_[obj.center_xyz[near, :2], obj.yaw_rad[near]], world_now.ego_pose)
    np.testing.assert_allclose(boxes.center_xyz[:, :2], want_xy[:, :2], atol=1e-6)
    np.testing.assert_allclose(normalize_angle(boxes.yaw_rad - want_xy[:, 2]), 0.0, atol=1e-9)
    assert list(boxes.track_ids) == [t for t, k in zip(obj.track_tokens, near) if k]


def test_sensors_load_with_calibration(small_world_root):
    reader = NavsimReader(small_world_root, "test")
    ref = reader.index()[0]
    sample = reader.load(ref, SensorSelection(cameras=("CAM_L0", "CAM_F0", "CAM_R0"), lidar=True))
    cams = sample.observation.cameras
    assert list(cams) == ["CAM_L0", "CAM_F0", "CAM_R0"]
    for cam in cams.values():
        img = cam.load_image()
        assert img.shape == (cam.height, cam.width, 3) and img.dtype == np.uint8
        # Optical axis of a front camera points roughly along +x of the ego frame.
        assert cam.ego_from_camera[0, 2] > 0.3 if cam.name == "CAM_F0" else True
    lidar = sample.observation.lidar
    assert lidar is not None and lidar.points.shape[1] == 6 and lidar.points.dtype == np.float32
    ground = lidar.points[np.abs(lidar.points[:, 2] + 0.45) < 0.15]
    assert len(ground) > 0.2 * len(lidar.points)  # most returns are ground, 0.45 m below the axle


# --- bad input ----------------------------------------------------------------------------------------


@pytest.fixture()
def world_copy(small_world_root, tmp_path) -> Path:
    dst = tmp_path / "w"
    shutil.copytree(small_world_root / "navsim_logs", dst / "navsim_logs")
    (dst / "sensor_blobs").symlink_to(small_world_root / "sensor_blobs")
    return dst


def test_missing_split_lists_the_splits_present(small_world_root):
    with pytest.raises(DataError, match=r"split 'navtest'.*splits present: \['test', 'train'\]"):
        NavsimReader(small_world_root, "navtest")


def test_truncated_pickle_names_the_file(world_copy):
    path, _ = _raw_log(world_copy, "test")
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DataError, match="corrupt or truncated") as info:
        NavsimReader(world_copy, "test").index()
    assert path.name in str(info.value)


def test_frame_missing_a_key_names_key_frame_and_token(world_copy):
    path, frames = _raw_log(world_copy, "test")
    del frames[5]["ego_dynamic_state"]
    path.write_bytes(dumps_compatible(frames))
    with pytest.raises(DataError, match=r"frame 5: missing key\(s\) \['ego_dynamic_state'\]") as info:
        NavsimReader(world_copy, "test").index()
    assert frames[5]["token"] in str(info.value) and path.name in str(info.value)


def test_nan_pose_and_bad_command_are_rejected(world_copy):
    path, frames = _raw_log(world_copy, "test")
    frames[2]["ego2global_translation"] = np.array([np.nan, 0.0, 0.0])
    path.write_bytes(dumps_compatible(frames))
    with pytest.raises(DataError, match="frame 2: 'ego2global_translation' has NaN"):
        NavsimReader(world_copy, "test").index()
    frames[2]["ego2global_translation"] = np.zeros(3)
    frames[3]["driving_command"] = np.array([1, 1, 0, 0])
    path.write_bytes(dumps_compatible(frames))
    with pytest.raises(DataError, match="frame 3: driving_command: expected a one-hot"):
        NavsimReader(world_copy, "test").index()


def test_missing_sensor_file_names_path_and_token(world_copy, tmp_path):
    (world_copy / "sensor_blobs").unlink()
    reader = NavsimReader(world_copy, "test")
    ref = reader.index()[0]
    with pytest.raises(DataError, match="missing sensor file for CAM_F0") as info:
        reader.load(ref, SensorSelection(cameras=("CAM_F0",)))
    assert ref.token in str(info.value) and "CAM_F0" in str(info.value)
    with pytest.raises(DataError, match="missing sensor file MergedPointCloud"):
        reader.load(ref, SensorSelection(lidar=True))


def test_pickle_with_foreign_class_is_refused(world_copy):
    path, _ = _raw_log(world_copy, "test")
    path.write_bytes(pickle.dumps([{"token": os.system}]))
    with pytest.raises(DataError, match="refusing to unpickle"):
        NavsimReader(world_copy, "test").index()


def test_camera_entries_are_parsed_on_first_use_and_equal_the_eager_parse(small_world_root):
    """The scoring path never touches ``cams``: a frame's camera records are parsed when first read, to the
    same records an eager parse gives."""
    from adapters.navsim.log_format import _camera_records, parse_frame

    path, raw = _raw_log(small_world_root, "test")
    frame = parse_frame(raw[3], path=path, index=3)
    assert frame.cameras._parsed is None and len(frame.cameras) == len(NUPLAN_CAMERA_NAMES)
    eager = _camera_records(raw[3]["cams"], path, 3, raw[3]["token"])
    assert list(frame.cameras) == list(eager)
    for name, rec in eager.items():
        got = frame.cameras[name]
        assert got.name == rec.name and got.data_path == rec.data_path
        for field in ("lidar_from_camera", "intrinsics", "distortion"):
            np.testing.assert_array_equal(getattr(got, field), getattr(rec, field))


def test_malformed_camera_fails_when_the_camera_is_read(world_copy):
    path, frames = _raw_log(world_copy, "test")
    reader = NavsimReader(world_copy, "test")
    ref = reader.index()[0]
    cur = [f["token"] for f in frames].index(ref.token)
    frames[cur]["cams"]["CAM_F0"]["cam_intrinsic"] = np.full((3, 3), np.nan)
    del frames[cur]["cams"]["CAM_B0"]["distortion"]
    path.write_bytes(dumps_compatible(frames))
    reader = NavsimReader(world_copy, "test")
    reader.scene_frames(ref.token)  # no camera read: fine
    with pytest.raises(DataError, match=rf"frame {cur}: 'cam_intrinsic' has NaN") as info:
        reader.load(ref, SensorSelection(cameras=("CAM_F0",)))
    assert ref.token in str(info.value) and path.name in str(info.value)


@pytest.mark.parametrize("value", [
    [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1], np.array([0, 0, 1, 0]), np.array([0.0, 1.0, 0.0, 0.0]),
    np.array([False, True, False, False]), [1, 1, 0, 0], [0, 0, 0, 0], [0, 2, 0, -1], [0.5, 0.5, 0, 0],
    [0, 1, 0], np.array([[0, 1, 0, 0]]), [np.nan, 1, 0, 0],
])
def test_driving_command_fast_path_equals_from_one_hot(value):
    from adapters.navsim.log_format import _driving_command
    from harness.types import DrivingCommand

    try:
        want = DrivingCommand.from_one_hot(value, where="driving_command")
    except ValueError as exc:
        with pytest.raises(ValueError, match="driving_command: expected a one-hot"):
            _driving_command(value)
        assert "one-hot" in str(exc)
    else:
        assert _driving_command(value) == want


def test_first_map_location_is_read_from_the_opcodes(small_world_root, tmp_path):
    from adapters.navsim.log_format import first_map_location

    for path in sorted((small_world_root / "navsim_logs").glob("*/*.pkl")):
        assert first_map_location(path) == load_restricted(path)[0]["map_location"]
    # Read without unpickling: a class the restricted unpickler refuses is never built.
    odd = tmp_path / "odd.pkl"
    odd.write_bytes(pickle.dumps([{"anns": os.system, "map_location": "sg-one-north"}], protocol=4))
    assert first_map_location(odd) == "sg-one-north"
    # No plain string value right after the key, no key, not a pickle, missing: no answer.
    shared = "us-ma-boston"
    odd.write_bytes(pickle.dumps([{"x": shared, "map_location": shared}], protocol=4))  # a memo reference
    assert first_map_location(odd) is None
    odd.write_bytes(pickle.dumps([{"map_location": 3}], protocol=4))
    assert first_map_location(odd) is None
    odd.write_bytes(pickle.dumps([{"token": "a"}], protocol=4))
    assert first_map_location(odd) is None
    odd.write_bytes(b"not a pickle at all")
    assert first_map_location(odd) is None
    assert first_map_location(tmp_path / "missing.pkl") is None
