"""lead-bench's schema against the official ``waymo_open_dataset`` protos: each reads the other's bytes.

Needs the official wheel installed without its dependencies (protos only, no TensorFlow)::

    pip install --no-deps waymo-open-dataset-tf-2-12-0==1.6.7

Skipped when it is absent; CI installs it so these run.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.waymo import schema
from adapters.waymo.tfrecord import read_records, write_records

official_data = pytest.importorskip("waymo_open_dataset.protos.end_to_end_driving_data_pb2")
official_submission = pytest.importorskip("waymo_open_dataset.protos.end_to_end_driving_submission_pb2")
official_dataset = pytest.importorskip("waymo_open_dataset.dataset_pb2")

#: Messages lead-bench declares in full; the others (Frame, Context, CameraImage) are subsets.
COMPLETE = {"E2EDFrame", "EgoTrajectoryStates", "EgoIntent", "TrajectoryPrediction",
            "FrameTrajectoryPredictions", "E2EDChallengeSubmission", "CameraName", "Transform", "Velocity",
            "CameraCalibration"}
MESSAGES = sorted(COMPLETE | {"Frame", "Context", "CameraImage"})
FLOAT32 = st.floats(width=32, allow_nan=False)


def _official(name: str):
    for module in (official_data, official_submission, official_dataset):
        if hasattr(module, name):  # not message_types_by_name: protobuf 4.25's upb answers across files
            return getattr(module, name)
    raise KeyError(name)


def _as_proto(desc) -> descriptor_pb2.DescriptorProto:
    # Read from the file's serialized descriptor: protobuf 7 dropped FieldDescriptor.label, and the pure
    # Python backend cannot CopyToProto a single message built by a pool; the file bytes work everywhere.
    fdp = descriptor_pb2.FileDescriptorProto.FromString(desc.file.serialized_pb)
    (out,) = [m for m in fdp.message_type if m.name == desc.name]  # all compared messages are top-level
    for f in out.field:
        f.ClearField("json_name")  # generated code strips json_name from its embedded descriptors
    return out


@pytest.mark.parametrize("name", MESSAGES)
def test_every_field_and_enum_value_matches_the_official_descriptor(name: str) -> None:
    ours, theirs = getattr(schema, name).DESCRIPTOR, _official(name).DESCRIPTOR
    assert ours.full_name == theirs.full_name
    mine, official = _as_proto(ours), _as_proto(theirs)
    official_fields = {f.number: f for f in official.field}
    for f in mine.field:  # name, number, label, type, type name and [packed], all at once
        assert f == official_fields[f.number], f.name
    official_enums = {e.name: e for e in official.enum_type}
    for e in mine.enum_type:
        assert e == official_enums[e.name]
    if name in COMPLETE:
        assert mine == official


@pytest.mark.parametrize(("ours", "module"), [(1, "data"), (2, "submission")])
def test_e2e_files_equal_the_official_ones(ours: int, module: str) -> None:
    mine = schema.file_descriptor_protos()[ours]
    theirs = descriptor_pb2.FileDescriptorProto.FromString(
        (official_data if module == "data" else official_submission).DESCRIPTOR.serialized_pb)
    for m in mine.message_type:
        for f in m.field:
            f.ClearField("json_name")
    mine.name = theirs.name  # file names differ (ours are relative to adapters/waymo/proto)
    mine.ClearField("dependency")
    mine.dependency.extend(theirs.dependency)
    assert mine == theirs


# --- frames -----------------------------------------------------------------------------------------------


def _fill_frame(f, cls_camera_name, rng: random.Random) -> None:
    """Populate an E2EDFrame (ours or theirs) the way the release does: 8 cameras, states, raters."""
    f.frame.context.name = "8e737334b520fdd0c04e36f463b2d211-085"
    f.frame.timestamp_micros = 0
    f.frame.pose.transform.extend([float(i == j) for i in range(4) for j in range(4)])
    for cam in range(1, 9):
        c = f.frame.context.camera_calibrations.add(name=cam, width=972, height=1079 if cam <= 5 else 587,
                                                    rolling_shutter_direction=2)
        c.intrinsic.extend([1112.178, 1112.041, 488.128, 719.156, -0.073584, -0.036582, 0.0, 0.0, 0.0])
        c.extrinsic.transform.extend([rng.uniform(-2, 2) for _ in range(16)])
        img = f.frame.images.add(name=cam, image=rng.randbytes(200), pose_timestamp=0.0, shutter=0.0102,
                                 camera_trigger_time=0.0, camera_readout_done_time=0.0)
        img.pose.transform.extend([float(i == j) for i in range(4) for j in range(4)])
        img.velocity.v_x = 3.5
        img.velocity.w_z = 0.01
    assert cls_camera_name.REAR_RIGHT == 8
    for field, n in (("past_states", 16), ("future_states", 20)):
        s = getattr(f, field)
        for name in ("pos_x", "pos_y", "pos_z") + (("vel_x", "vel_y", "accel_x", "accel_y") if n == 16 else ()):
            getattr(s, name).extend([rng.uniform(-30, 30) for _ in range(n)])
    f.intent = 2
    for score in (10.0, 6.0, 3.5):
        p = f.preference_trajectories.add(preference_score=score)
        p.pos_x.extend([rng.uniform(0, 50) for _ in range(21)])
        p.pos_y.extend([rng.uniform(-5, 5) for _ in range(21)])


def _assert_same_frame(a, b) -> None:
    assert a.frame.context.name == b.frame.context.name
    assert a.intent == b.intent
    cals = {c.name: c for c in b.frame.context.camera_calibrations}
    for c in a.frame.context.camera_calibrations:
        d = cals[c.name]
        assert list(c.intrinsic) == list(d.intrinsic) and list(c.extrinsic.transform) == list(d.extrinsic.transform)
        assert (c.width, c.height, c.rolling_shutter_direction) == (d.width, d.height, d.rolling_shutter_direction)
    assert [(i.name, i.image, i.shutter, i.velocity.v_x) for i in a.frame.images] == [
        (i.name, i.image, i.shutter, i.velocity.v_x) for i in b.frame.images]
    for field in ("past_states", "future_states"):
        for name in ("pos_x", "pos_y", "pos_z", "vel_x", "vel_y", "accel_x", "accel_y"):
            assert list(getattr(getattr(a, field), name)) == list(getattr(getattr(b, field), name))
    assert [(p.preference_score, list(p.pos_x), list(p.pos_y)) for p in a.preference_trajectories] == [
        (p.preference_score, list(p.pos_x), list(p.pos_y)) for p in b.preference_trajectories]


def test_our_frame_parses_with_the_official_class() -> None:
    ours = schema.E2EDFrame()
    _fill_frame(ours, schema.CameraName, random.Random(0))
    data = ours.SerializeToString()
    theirs = official_data.E2EDFrame.FromString(data)
    _assert_same_frame(ours, theirs)
    assert theirs.SerializeToString() == data  # same content, same bytes
    theirs.DiscardUnknownFields()
    assert theirs.SerializeToString() == data  # and the official schema knew every field we wrote


def test_official_frame_parses_with_our_class_and_keeps_what_we_do_not_declare() -> None:
    theirs = official_data.E2EDFrame()
    _fill_frame(theirs, official_dataset.CameraName, random.Random(1))
    # Fields outside lead-bench's subset: they must be skipped on parse and survive a re-serialisation.
    theirs.frame.context.stats.location = "location_sf"
    theirs.frame.context.laser_calibrations.add(name=1, beam_inclination_min=-0.3)
    theirs.frame.lasers.add(name=1).ri_return1.range_image_compressed = b"\x00" * 10
    theirs.frame.laser_labels.add(id="box0").box.center_x = 4.0
    theirs.frame.images[0].camera_segmentation_label.panoptic_label_divisor = 1000
    data = theirs.SerializeToString()
    ours = schema.E2EDFrame.FromString(data)
    _assert_same_frame(ours, theirs)
    back = official_data.E2EDFrame.FromString(ours.SerializeToString())
    assert back == theirs
    assert back.frame.context.stats.location == "location_sf"


def test_tfrecord_of_official_frames_reads_back_with_our_schema(tmp_path: Path) -> None:
    frames = []
    for seed in range(5):
        f = official_data.E2EDFrame()
        _fill_frame(f, official_dataset.CameraName, random.Random(seed))
        frames.append(f)
    path = tmp_path / "val.tfrecord-00000-of-00001"
    write_records(path, [f.SerializeToString() for f in frames])
    for theirs, data in zip(frames, read_records(path), strict=True):
        _assert_same_frame(schema.E2EDFrame.FromString(data), theirs)


@settings(max_examples=50, deadline=None)
@given(st.lists(FLOAT32, max_size=25), st.lists(FLOAT32, max_size=25), st.one_of(st.none(), FLOAT32))
def test_trajectory_states_bytes_agree(xs: list[float], ys: list[float], score: float | None) -> None:
    ours = schema.EgoTrajectoryStates(pos_x=xs, vel_y=ys)
    theirs = official_data.EgoTrajectoryStates(pos_x=xs, vel_y=ys)
    if score is not None:
        ours.preference_score = theirs.preference_score = score
    assert ours.SerializeToString() == theirs.SerializeToString()
    assert schema.EgoTrajectoryStates.FromString(theirs.SerializeToString()) == ours


# --- submissions ------------------------------------------------------------------------------------------


def _fill_submission(s, rng: random.Random) -> None:
    s.submission_type = 1
    s.account_name = "someone@example.com"
    s.unique_method_name = "lead-bench-tfv6"
    s.authors.extend(["A. Author", "B. Author"])
    s.affiliation = "lead-bench"
    s.description = "TransFuser v6"
    s.method_link = "https://example.com"
    s.uses_public_model_pretraining = False
    s.num_model_parameters = "56M"
    s.public_model_names.extend(["resnet34"])
    for k in range(20):
        p = s.predictions.add(frame_name=f"{rng.getrandbits(128):032x}-{k:03d}")
        p.trajectory.pos_x.extend([rng.uniform(0, 60) for _ in range(20)])
        p.trajectory.pos_y.extend([rng.uniform(-5, 5) for _ in range(20)])


def _assert_same_submission(a, b) -> None:
    for name in ("submission_type", "account_name", "unique_method_name", "affiliation", "description",
                 "method_link", "uses_public_model_pretraining", "num_model_parameters"):
        assert getattr(a, name) == getattr(b, name), name
        assert a.HasField(name) == b.HasField(name), name
    assert list(a.authors) == list(b.authors) and list(a.public_model_names) == list(b.public_model_names)
    assert [(p.frame_name, list(p.trajectory.pos_x), list(p.trajectory.pos_y)) for p in a.predictions] == [
        (p.frame_name, list(p.trajectory.pos_x), list(p.trajectory.pos_y)) for p in b.predictions]


def test_our_submission_parses_with_the_official_class() -> None:
    ours = schema.E2EDChallengeSubmission()
    _fill_submission(ours, random.Random(2))
    data = ours.SerializeToString()
    theirs = official_submission.E2EDChallengeSubmission.FromString(data)
    _assert_same_submission(ours, theirs)
    assert theirs.submission_type == official_submission.E2EDChallengeSubmission.E2ED_SUBMISSION
    assert theirs.SerializeToString() == data


def test_official_submission_parses_with_our_class() -> None:
    theirs = official_submission.E2EDChallengeSubmission()
    _fill_submission(theirs, random.Random(3))
    data = theirs.SerializeToString()
    ours = schema.E2EDChallengeSubmission.FromString(data)
    _assert_same_submission(ours, theirs)
    assert ours.SerializeToString() == data
