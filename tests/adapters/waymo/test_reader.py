"""WaymoReader on the embedded world and on hand-built shards: index, samples, cameras, labels, bad input."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from adapters.waymo.layout import read_clusters, read_test_manifest, required_frame_names
from adapters.waymo.reader import ALL_CAMERAS, FRONT_CAMERAS, INTENT_TO_COMMAND, WaymoReader, past_headings
from adapters.waymo.tfrecord import CorruptRecordError
from harness.errors import ConfigError, DataError
from harness.trajectory import WAYMO_SAMPLING
from harness.types import DrivingCommand, Source
from tests.adapters.waymo.frames import CAMS, frame_bytes, write_shard


@pytest.fixture(scope="module")
def waymo_root(small_world_root: Path) -> Path:
    return small_world_root / "waymo"


def test_world_splits_index_and_side_files(waymo_root: Path) -> None:
    readers = {s: WaymoReader(waymo_root, s) for s in ("train", "val", "test")}
    refs = {s: r.index() for s, r in readers.items()}
    assert all(refs.values())
    for split, rs in refs.items():
        assert all(r.source is Source.WAYMO and r.split == split for r in rs)
        assert all(len(r.log_id) == 32 and r.token.startswith(r.log_id + "-") for r in rs)
    labels = {s: list(r.iter_labels()) for s, r in readers.items()}
    # train: futures, no raters; test: neither; val: futures, one labelled frame per sequence
    assert all(lab.future_xy is not None and len(lab.rater_scores) == 0 for lab in labels["train"])
    assert all(lab.future_xy is None and len(lab.rater_scores) == 0 for lab in labels["test"])
    assert all(lab.future_xy is not None and len(lab.rater_scores) == 3 for lab in labels["val"])
    val_seqs = {lab.sequence_id for lab in labels["val"]}
    labelled = [lab for lab in labels["val"] if lab.has_rater_labels]
    assert sorted(lab.sequence_id for lab in labelled) == sorted(val_seqs)
    assert all(set(lab.rater_scores) == {-1.0} for lab in labels["val"] if not lab.has_rater_labels)
    assert set(read_clusters(waymo_root / "val_sequence_name_to_scenario_cluster.json")) == val_seqs
    manifest = read_test_manifest(waymo_root / "test_sequence_frames_for_submission.json")
    assert set(required_frame_names(manifest)) <= {r.token for r in refs["test"]}
    assert set(manifest) == {r.log_id for r in refs["test"]}
    # index entries agree with the labels they summarise
    for split, r in readers.items():
        for lab in labels[split]:
            e = r.entry(lab.frame_name)
            assert (e.has_future, e.num_raters, e.has_rater_labels, e.intent) == (
                lab.future_xy is not None, len(lab.rater_scores), lab.has_rater_labels, lab.intent)
            again = r.labels(lab.frame_name)
            assert again.frame_name == lab.frame_name
            np.testing.assert_array_equal(again.past_xy, lab.past_xy)
            np.testing.assert_array_equal(again.rater_trajectories, lab.rater_trajectories)


def test_world_sample(waymo_root: Path) -> None:
    r = WaymoReader(waymo_root, "val")
    name = next(lab.frame_name for lab in r.iter_labels() if lab.has_rater_labels)
    lab = r.labels(name)
    s = r.load(name)
    assert s.meta.token == name and s.meta.log_id == lab.sequence_id and s.meta.split == "val"
    assert tuple(s.observation.cameras) == ALL_CAMERAS
    for cam in s.observation.cameras.values():
        img = cam.load_image()
        assert img.shape == (cam.height, cam.width, 3) and img.std() > 1
    ego = s.observation.ego
    assert ego.speed_mps == pytest.approx(lab.initial_speed_mps)
    np.testing.assert_array_equal(ego.history_poses[:, :2], lab.past_xy)
    assert ego.history_poses[-1, 2] == 0.0 and ego.history_times_s[0] == -3.75 and ego.history_times_s[-1] == 0
    assert s.observation.navigation.command is INTENT_TO_COMMAND[lab.intent]
    assert s.observation.navigation.source_command == lab.intent
    assert s.targets.future.sampling == WAYMO_SAMPLING
    np.testing.assert_array_equal(s.targets.future.xy, lab.future_xy)
    assert len(s.targets.rater_trajectories) == 3
    np.testing.assert_array_equal(s.targets.rater_scores, lab.rater_scores)
    # the world's "logged" rater is its logged future at t = 0.25 … 5.25 s: the first 20 points agree
    np.testing.assert_allclose(s.targets.rater_trajectories[0].xy[:20], lab.future_xy, atol=1e-5)
    assert s.observation.ego.history_poses[-1, :2] == pytest.approx((0, 0), abs=1e-5)


def _waymo_project(cal, p_vehicle: np.ndarray) -> np.ndarray:
    """Waymo's own camera model (specs/waymo_e2e.md §1.7), global shutter, no distortion terms used."""
    e = np.asarray(cal.extrinsic.transform).reshape(4, 4)
    p = np.linalg.inv(e) @ np.append(p_vehicle, 1.0)
    f_u, f_v, c_u, c_v = cal.intrinsic[:4]
    return np.array([f_u * -p[1] / p[0] + c_u, f_v * -p[2] / p[0] + c_v])


@pytest.mark.parametrize("scale", [1, 2, 4, 8])
def test_camera_axes_and_dct_scaling(tmp_path: Path, scale: int) -> None:
    write_shard(tmp_path / "val_x.tfrecord-0", [frame_bytes("s-001")])
    r = WaymoReader(tmp_path, "val")
    raw = r.read_frame("s-001")
    cals = {c.name: c for c in raw.frame.context.camera_calibrations}
    s = r.load("s-001", image_scale=scale, cameras=FRONT_CAMERAS + ("REAR",))
    assert tuple(s.observation.cameras) == FRONT_CAMERAS + ("REAR",)
    point = np.array([20.0, 1.5, 0.8])  # ahead, a little left, above the ground
    for name, cid in (("FRONT", 1), ("FRONT_LEFT", 2), ("FRONT_RIGHT", 3)):
        cam = s.observation.cameras[name]
        spec = next(c for c in CAMS if c.name == name)
        assert (cam.width, cam.height) == (math.ceil(spec.width / scale), math.ceil(spec.height / scale))
        assert cam.load_image().shape == (cam.height, cam.width, 3)
        p_cam = np.linalg.inv(cam.ego_from_camera) @ np.append(point, 1.0)  # OpenCV axes
        uv = (cam.intrinsics @ (p_cam[:3] / p_cam[2]))[:2]
        full = _waymo_project(cals[cid], point)
        np.testing.assert_allclose((uv + 0.5) * scale - 0.5, full, atol=1e-9)
    front = s.observation.cameras["FRONT"]
    np.testing.assert_allclose(front.ego_from_camera[:3, 2], (1, 0, 0), atol=0.01)  # optical axis forward
    np.testing.assert_allclose(front.ego_from_camera[:3, 1], (0, 0, -1), atol=0.01)  # image down = ego down
    rear = s.observation.cameras["REAR"]
    np.testing.assert_allclose(rear.ego_from_camera[:3, 2], (-1, 0, 0), atol=0.01)


def test_draft_decode_matches_a_full_decode_downsampled(tmp_path: Path) -> None:
    write_shard(tmp_path / "val_x.tfrecord-0", [frame_bytes("s-001")])
    r = WaymoReader(tmp_path, "val")
    full = r.load("s-001", cameras=["FRONT"]).observation.cameras["FRONT"].load_image().astype(float)
    half = r.load("s-001", image_scale=2, cameras=["FRONT"]).observation.cameras["FRONT"].load_image()
    h, w = full.shape[0] // 2, full.shape[1] // 2
    pooled = full[: 2 * h, : 2 * w].reshape(h, 2, w, 2, 3).mean(axis=(1, 3))
    assert np.abs(pooled - half[:h, :w]).mean() < 8


def test_intent_mapping_and_past_headings() -> None:
    assert INTENT_TO_COMMAND == {0: DrivingCommand.UNKNOWN, 1: DrivingCommand.STRAIGHT, 2: DrivingCommand.LEFT,
                                 3: DrivingCommand.RIGHT}
    v = np.zeros((16, 2))
    v[:8] = (0.0, 2.0)  # moving left
    v[8:12] = (0.1, 0.0)  # too slow: takes the next fast state's heading
    v[12:] = (3.0, 3.0)
    h = past_headings(v)
    np.testing.assert_allclose(h[:8], np.pi / 2)
    np.testing.assert_allclose(h[8:15], np.pi / 4)
    assert h[15] == 0.0
    np.testing.assert_array_equal(past_headings(np.zeros((16, 2))), np.zeros(16))


def test_options_are_checked(tmp_path: Path) -> None:
    write_shard(tmp_path / "val_x.tfrecord-0", [frame_bytes("s-001")])
    r = WaymoReader(tmp_path, "val")
    with pytest.raises(ConfigError, match="image_scale"):
        r.load("s-001", image_scale=3)
    with pytest.raises(ConfigError, match="unknown Waymo camera"):
        r.load("s-001", cameras=["CAM_F0"])
    with pytest.raises(DataError, match="not in the val split"):
        r.load("s-002")


# --- bad input (issue 5, item 8) ----------------------------------------------------------------------------


def test_truncated_shard_names_file_and_offset_or_is_skipped(tmp_path: Path) -> None:
    shard = write_shard(tmp_path / "val_x.tfrecord-0", [frame_bytes("s-001"), frame_bytes("s-002")])
    r0 = WaymoReader(tmp_path, "val")
    second = r0.entry("s-002").location.offset
    data = shard.read_bytes()
    shard.write_bytes(data[:-10])
    with pytest.raises(CorruptRecordError) as exc:
        WaymoReader(tmp_path, "val").index()
    assert exc.value.offset == second and str(shard) in str(exc.value) and f"byte offset {second}" in str(exc.value)
    r = WaymoReader(tmp_path, "val", skip_corrupt=True)
    assert [x.token for x in r.index()] == ["s-001"]
    assert r.num_skipped == 1 and r.skipped[0].offset == second and r.skipped[0].shard == shard


def test_data_crc_mismatch(tmp_path: Path) -> None:
    shard = write_shard(tmp_path / "val_x.tfrecord-0", [frame_bytes("s-001"), frame_bytes("s-002")])
    loc = WaymoReader(tmp_path, "val").entry("s-002").location
    data = bytearray(shard.read_bytes())
    data[loc.offset + 12 + loc.length - 100] ^= 0xFF  # inside the image bytes, past the peeked parts
    shard.write_bytes(bytes(data))
    r = WaymoReader(tmp_path, "val")
    assert len(r.index()) == 2  # the index reads only headers, names and tails
    with pytest.raises(CorruptRecordError, match=f"data CRC mismatch in the TFRecord at byte offset {loc.offset}"):
        r.load("s-002")
    r = WaymoReader(tmp_path, "val", skip_corrupt=True, verify_data=True)
    assert [x.token for x in r.index()] == ["s-001"] and r.skipped[0].offset == loc.offset
    with pytest.raises(CorruptRecordError):
        WaymoReader(tmp_path, "val", verify_data=True).index()


def test_a_record_that_is_not_an_e2edframe(tmp_path: Path) -> None:
    write_shard(tmp_path / "val_x.tfrecord-0", [frame_bytes("s-001"), b"\xff\xff\xff garbage"])
    with pytest.raises(DataError, match="is not an E2EDFrame"):
        WaymoReader(tmp_path, "val").index()
    r = WaymoReader(tmp_path, "val", skip_corrupt=True)
    assert len(r.index()) == 1 and r.num_skipped == 1


def test_duplicate_frame_names_name_both_places(tmp_path: Path) -> None:
    a = write_shard(tmp_path / "val_a.tfrecord-0", [frame_bytes("s-001")])
    b = write_shard(tmp_path / "val_b.tfrecord-0", [frame_bytes("s-002"), frame_bytes("s-001")])
    with pytest.raises(DataError, match="appears twice") as exc:
        WaymoReader(tmp_path, "val").index()
    msg = str(exc.value)
    assert f"{a} at byte offset 0" in msg and str(b) in msg and "s-001" in msg


def test_missing_cameras_and_non_jpeg_images(tmp_path: Path) -> None:
    write_shard(tmp_path / "val_x.tfrecord-0", [frame_bytes("s-001", cameras=["FRONT", "REAR"]),
                                                 frame_bytes("s-002", image_format="PNG")])
    r = WaymoReader(tmp_path, "val")
    with pytest.raises(DataError, match="camera FRONT_LEFT has no image") as exc:
        r.load("s-001")
    assert "s-001" in str(exc.value) and "val_x.tfrecord-0 at byte offset 0" in str(exc.value)
    assert set(r.load("s-001", cameras=["FRONT", "REAR"]).observation.cameras) == {"FRONT", "REAR"}
    with pytest.raises(DataError, match="image is PNG, expected JPEG"):
        r.load("s-002", cameras=["FRONT"])
    msg = r.read_frame("s-002")
    del msg.frame.context.camera_calibrations[:]
    assert r.labels("s-002").frame_name == "s-002"  # labels never look at cameras


def test_short_future_is_an_error_on_load_and_labels(tmp_path: Path) -> None:
    fut = np.zeros((19, 2))
    write_shard(tmp_path / "val_x.tfrecord-0", [frame_bytes("s-001", future_xy=fut)])
    r = WaymoReader(tmp_path, "val")
    assert r.entry("s-001").has_future  # the index only summarises
    for call in (r.labels, r.load):
        with pytest.raises(DataError, match="19 positions, expected 20"):
            call("s-001")
