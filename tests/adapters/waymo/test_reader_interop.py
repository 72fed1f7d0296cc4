"""The official classes parse the world's frames, and lead-bench's reader parses frames the official classes built.

Needs the official wheel without its dependencies (``pip install --no-deps waymo-open-dataset-tf-2-12-0==1.6.7``);
skipped when it is absent.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adapters.waymo.reader import WaymoReader
from adapters.waymo.tfrecord import read_records, write_records
from harness.errors import DataError

official = pytest.importorskip("waymo_open_dataset.protos.end_to_end_driving_data_pb2")
official_dataset = pytest.importorskip("waymo_open_dataset.dataset_pb2")


def test_official_classes_parse_the_world(small_world_root: Path) -> None:
    root = small_world_root / "waymo"
    for split in ("train", "val", "test"):
        reader = WaymoReader(root, split)
        for shard in reader.shards:
            for data in read_records(shard):
                msg = official.E2EDFrame.FromString(data)
                assert msg.SerializeToString() == data  # nothing unknown to the official schema
                lab = reader.labels(msg.frame.context.name)
                np.testing.assert_array_equal(np.column_stack([msg.past_states.pos_x, msg.past_states.pos_y]),
                                              lab.past_xy)
                assert len(msg.future_states.pos_x) == (0 if split == "test" else 20)
                assert [p.preference_score for p in msg.preference_trajectories] == lab.rater_scores.tolist()
                assert msg.intent == lab.intent
                names = sorted(official_dataset.CameraName.Name.Name(i.name) for i in msg.frame.images)
                assert names == sorted(["FRONT", "FRONT_LEFT", "FRONT_RIGHT", "SIDE_LEFT", "SIDE_RIGHT",
                                        "REAR_LEFT", "REAR", "REAR_RIGHT"])
                for cal in msg.frame.context.camera_calibrations:
                    assert len(cal.intrinsic) == 9 and len(cal.extrinsic.transform) == 16
                    img = next(i for i in msg.frame.images if i.name == cal.name)
                    assert Image.open(io.BytesIO(img.image)).size == (cal.width, cal.height)


def _official_frame(name: str, *, labelled: bool) -> bytes:
    m = official.E2EDFrame()
    m.frame.context.name = name
    m.frame.context.stats.time_of_day = "Day"  # a field lead-bench's schema leaves out
    m.frame.timestamp_micros = 0
    for cid, (w, h) in ((1, (40, 44)), (8, (40, 24))):
        cal = m.frame.context.camera_calibrations.add()
        cal.name, cal.width, cal.height = cid, w, h
        cal.intrinsic.extend([45.0, 45.5, 20.0, 29.0, -0.07, -0.03, 0.0, 0.0, 0.0])
        yaw = 0.0 if cid == 1 else -np.pi * 0.75  # REAR_RIGHT looks back to the right
        ext = np.eye(4)
        ext[:2, :2] = [[np.cos(yaw), -np.sin(yaw)], [np.sin(yaw), np.cos(yaw)]]
        ext[:3, 3] = (1.5, 0.0, 1.8)
        cal.extrinsic.transform.extend(ext.ravel())
        buf = io.BytesIO()
        Image.fromarray(np.full((h, w, 3), 30 * cid, np.uint8)).save(buf, format="JPEG")
        img = m.frame.images.add()
        img.name, img.image = cid, buf.getvalue()
        img.pose.transform.extend(np.eye(4).ravel())
        img.shutter = 0.01
    t = (np.arange(16) - 15) * 0.25
    m.past_states.pos_x.extend(4 * t)
    m.past_states.pos_y.extend(np.zeros(16))
    m.past_states.vel_x.extend(np.full(16, 4.0))
    m.past_states.vel_y.extend(np.full(16, 0.5))
    m.past_states.accel_x.extend(np.zeros(16))
    m.past_states.accel_y.extend(np.zeros(16))
    m.future_states.pos_x.extend(np.arange(1, 21))
    m.future_states.pos_y.extend(np.zeros(20))
    m.future_states.pos_z.extend(np.zeros(20))
    m.intent = official.EgoIntent.GO_RIGHT
    for s in ((9.0, 7.0, 2.0) if labelled else (-1.0, -1.0, -1.0)):
        p = m.preference_trajectories.add()
        p.pos_x.extend(np.arange(1, 22) * 0.9)
        p.pos_y.extend(np.zeros(21))
        p.preference_score = s
    return m.SerializeToString()


def test_reader_parses_official_frames(tmp_path: Path) -> None:
    write_records(tmp_path / "val_202504211843.tfrecord-00000-of-00001",
                  [_official_frame("f" * 32 + "-147", labelled=True), _official_frame("f" * 32 + "-146", labelled=False)])
    r = WaymoReader(tmp_path, "val")
    assert [x.token for x in r.index()] == ["f" * 32 + "-147", "f" * 32 + "-146"]
    lab = r.labels("f" * 32 + "-147")
    assert lab.has_rater_labels and lab.rater_scores.tolist() == [9, 7, 2] and lab.intent == 3
    assert lab.initial_speed_mps == pytest.approx(np.hypot(4.0, 0.5))
    assert not r.labels("f" * 32 + "-146").has_rater_labels
    s = r.load("f" * 32 + "-147", cameras=["FRONT", "REAR_RIGHT"])
    front = s.observation.cameras["FRONT"]
    assert (front.width, front.height) == (40, 44) and front.load_image().shape == (44, 40, 3)
    np.testing.assert_allclose(front.distortion, [-0.07, -0.03, 0, 0, 0])
    np.testing.assert_allclose(front.intrinsics, [[45, 0, 20], [0, 45.5, 29], [0, 0, 1]])
    rear = s.observation.cameras["REAR_RIGHT"]
    np.testing.assert_allclose(rear.ego_from_camera[:3, 2], (-np.sqrt(0.5), -np.sqrt(0.5), 0), atol=1e-9)
    with pytest.raises(DataError, match="camera FRONT_LEFT has no image"):
        r.load("f" * 32 + "-147")
