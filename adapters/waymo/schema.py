"""lead-bench's own protobuf schema for WOD-E2E, wire-compatible with the official one.

The official ``waymo_open_dataset`` wheel pins TensorFlow, numpy 1.23 and protobuf < 5 (specs/waymo_e2e.md
§6), so lead-bench carries its own schema: the same package (``waymo.open_dataset``), message names, field
numbers, labels, wire types and proto2 syntax as the official ``dataset.proto``,
``end_to_end_driving_data.proto`` and ``end_to_end_driving_submission.proto`` (HEAD 99a4cb3, wheel
1.6.7), keeping only the fields lead-bench reads or writes. Fields it leaves out (LiDAR, labels, maps)
are skipped on parse and kept as unknown fields, so a real frame parses, and re-serialises, unchanged.

The descriptors are built here, in Python, at import time and registered in a private descriptor pool:
no protoc, no generated ``_pb2`` code with a protobuf version stamp (so protobuf 4.25 to 7.x all work),
and no clash with the official wheel's classes when both are imported (the interop tests do). The
``.proto`` files in ``proto/`` document the same schema; a test checks that they agree with what is built
here, field by field.

proto2 matters: singular fields have presence (``HasField``), repeated scalars are packed only where the
official file says ``[packed = true]`` (``intrinsic`` and ``transform`` are not), and enums are closed, so
an unknown enum value on a singular field lands in the unknown fields and reads as the default (0).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

from google.protobuf import descriptor_pb2, descriptor_pool, message, message_factory

PACKAGE = "waymo.open_dataset"
#: Descriptor file names, relative to ``adapters/waymo/proto/`` (the ``-I`` root for protoc).
DATASET_FILE = "dataset.proto"
E2E_DATA_FILE = "end_to_end_driving_data.proto"
E2E_SUBMISSION_FILE = "end_to_end_driving_submission.proto"

_F: TypeAlias = descriptor_pb2.FieldDescriptorProto
OPTIONAL = _F.LABEL_OPTIONAL
REPEATED = _F.LABEL_REPEATED
_SCALARS = {
    "double": _F.TYPE_DOUBLE, "float": _F.TYPE_FLOAT, "int64": _F.TYPE_INT64, "int32": _F.TYPE_INT32,
    "bool": _F.TYPE_BOOL, "string": _F.TYPE_STRING, "bytes": _F.TYPE_BYTES,
}


def _json_name(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _field(number: int, name: str, label: int, type_: str, *, enum: bool = False,
           packed: bool = False) -> _F:
    """One field; ``type_`` is a scalar name or a message/enum name relative to the package."""
    # json_name as protoc fills it in, so the descriptors equal protoc's output for proto/*.proto.
    f = _F(name=name, number=number, label=label, json_name=_json_name(name))
    if type_ in _SCALARS:
        f.type = _SCALARS[type_]
    else:
        f.type = _F.TYPE_ENUM if enum else _F.TYPE_MESSAGE
        f.type_name = f".{PACKAGE}.{type_}"
    if packed:
        f.options.packed = True
    return f


def _enum(name: str, values: Sequence[str]) -> descriptor_pb2.EnumDescriptorProto:
    """An enum whose values are numbered 0, 1, 2, … in the order given."""
    e = descriptor_pb2.EnumDescriptorProto(name=name)
    for number, value in enumerate(values):
        e.value.add(name=value, number=number)
    return e


def _message(name: str, fields: Sequence[_F] = (),
             enums: Sequence[descriptor_pb2.EnumDescriptorProto] = ()) -> descriptor_pb2.DescriptorProto:
    m = descriptor_pb2.DescriptorProto(name=name)
    m.field.extend(fields)
    m.enum_type.extend(enums)
    return m


def _file(name: str, deps: Sequence[str],
          messages: Sequence[descriptor_pb2.DescriptorProto]) -> descriptor_pb2.FileDescriptorProto:
    # ``syntax`` stays unset, which means proto2: protoc writes proto2 files that way too.
    f = descriptor_pb2.FileDescriptorProto(name=name, package=PACKAGE)
    f.dependency.extend(deps)
    f.message_type.extend(messages)
    return f


def _dataset_file() -> descriptor_pb2.FileDescriptorProto:
    """The subset of the official ``dataset.proto`` an E2EDFrame populates."""
    return _file(DATASET_FILE, [], [
        # Values 6-8 arrived in March 2024; an older schema would read REAR_* cameras as UNKNOWN.
        _message("CameraName", enums=[_enum("Name", ["UNKNOWN", "FRONT", "FRONT_LEFT", "FRONT_RIGHT",
                                                     "SIDE_LEFT", "SIDE_RIGHT", "REAR_LEFT", "REAR",
                                                     "REAR_RIGHT"])]),
        # Row-major 4x4; proto2 without [packed], so each double is its own fixed64 field on the wire.
        _message("Transform", [_field(1, "transform", REPEATED, "double")]),
        _message("Velocity", [
            _field(1, "v_x", OPTIONAL, "float"), _field(2, "v_y", OPTIONAL, "float"),
            _field(3, "v_z", OPTIONAL, "float"), _field(4, "w_x", OPTIONAL, "double"),
            _field(5, "w_y", OPTIONAL, "double"), _field(6, "w_z", OPTIONAL, "double"),
        ]),
        _message("CameraCalibration", [
            _field(1, "name", OPTIONAL, "CameraName.Name", enum=True),
            _field(2, "intrinsic", REPEATED, "double"),  # f_u, f_v, c_u, c_v, k1, k2, p1, p2, k3; unpacked
            _field(3, "extrinsic", OPTIONAL, "Transform"),  # vehicle_from_camera
            _field(4, "width", OPTIONAL, "int32"),
            _field(5, "height", OPTIONAL, "int32"),
            _field(6, "rolling_shutter_direction", OPTIONAL,
                   "CameraCalibration.RollingShutterReadOutDirection", enum=True),
        ], enums=[_enum("RollingShutterReadOutDirection", ["UNKNOWN", "TOP_TO_BOTTOM", "LEFT_TO_RIGHT",
                                                           "BOTTOM_TO_TOP", "RIGHT_TO_LEFT",
                                                           "GLOBAL_SHUTTER"])]),
        # Fields 3 (laser_calibrations) and 4 (stats) are not used by E2E and left out.
        _message("Context", [
            _field(1, "name", OPTIONAL, "string"),
            _field(2, "camera_calibrations", REPEATED, "CameraCalibration"),
        ]),
        # Field 10 (camera_segmentation_label) is left out.
        _message("CameraImage", [
            _field(1, "name", OPTIONAL, "CameraName.Name", enum=True),
            _field(2, "image", OPTIONAL, "bytes"),  # JPEG
            _field(3, "pose", OPTIONAL, "Transform"),
            _field(4, "velocity", OPTIONAL, "Velocity"),
            _field(5, "pose_timestamp", OPTIONAL, "double"),
            _field(6, "shutter", OPTIONAL, "double"),
            _field(7, "camera_trigger_time", OPTIONAL, "double"),
            _field(8, "camera_readout_done_time", OPTIONAL, "double"),
        ]),
        # Fields 5-11 (lidar, labels, map) are left out.
        _message("Frame", [
            _field(1, "context", OPTIONAL, "Context"),
            _field(2, "timestamp_micros", OPTIONAL, "int64"),
            _field(3, "pose", OPTIONAL, "Transform"),
            _field(4, "images", REPEATED, "CameraImage"),
        ]),
    ])


def _e2e_data_file() -> descriptor_pb2.FileDescriptorProto:
    """All of the official ``end_to_end_driving_data.proto``."""
    states = [_field(n, name, REPEATED, "float", packed=True)
              for n, name in enumerate(("pos_x", "pos_y", "pos_z", "vel_x", "vel_y", "accel_x", "accel_y"), 1)]
    return _file(E2E_DATA_FILE, [DATASET_FILE], [
        _message("E2EDFrame", [
            _field(1, "frame", OPTIONAL, "Frame"),
            _field(5, "future_states", OPTIONAL, "EgoTrajectoryStates"),  # 20 at 4 Hz, t = 0.25..5 s
            _field(6, "past_states", OPTIONAL, "EgoTrajectoryStates"),  # 16 at 4 Hz, t = -3.75..0 s
            _field(7, "intent", OPTIONAL, "EgoIntent.Intent", enum=True),
            _field(8, "preference_trajectories", REPEATED, "EgoTrajectoryStates"),  # rater trajectories
        ]),
        _message("EgoTrajectoryStates", [*states, _field(8, "preference_score", OPTIONAL, "float")]),
        _message("EgoIntent", enums=[_enum("Intent", ["UNKNOWN", "GO_STRAIGHT", "GO_LEFT", "GO_RIGHT"])]),
    ])


def _e2e_submission_file() -> descriptor_pb2.FileDescriptorProto:
    """All of the official ``end_to_end_driving_submission.proto``."""
    # The official file imports the data file without using it; mirrored so the dependency graph matches.
    return _file(E2E_SUBMISSION_FILE, [E2E_DATA_FILE], [
        _message("TrajectoryPrediction", [
            _field(1, "pos_x", REPEATED, "float", packed=True),
            _field(2, "pos_y", REPEATED, "float", packed=True),
        ]),
        _message("FrameTrajectoryPredictions", [
            _field(1, "frame_name", OPTIONAL, "string"),
            _field(2, "trajectory", OPTIONAL, "TrajectoryPrediction"),
        ]),
        _message("E2EDChallengeSubmission", [
            _field(1, "predictions", REPEATED, "FrameTrajectoryPredictions"),
            _field(2, "submission_type", OPTIONAL, "E2EDChallengeSubmission.SubmissionType", enum=True),
            _field(3, "account_name", OPTIONAL, "string"),
            _field(4, "unique_method_name", OPTIONAL, "string"),
            _field(5, "authors", REPEATED, "string"),
            _field(6, "affiliation", OPTIONAL, "string"),
            _field(7, "description", OPTIONAL, "string"),
            _field(8, "method_link", OPTIONAL, "string"),
            _field(11, "uses_public_model_pretraining", OPTIONAL, "bool"),  # required by the server
            _field(13, "public_model_names", REPEATED, "string"),  # declared before 12, as upstream
            _field(12, "num_model_parameters", OPTIONAL, "string"),  # required by the server, e.g. "200K"
        ], enums=[_enum("SubmissionType", ["UNKNOWN", "E2ED_SUBMISSION"])]),
    ])


def file_descriptor_protos() -> tuple[descriptor_pb2.FileDescriptorProto, ...]:
    """Fresh copies of the three file descriptors, dependencies first."""
    return _dataset_file(), _e2e_data_file(), _e2e_submission_file()


def _build_pool() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    for fdp in file_descriptor_protos():
        # AddSerializedFile exists, with the same meaning, in every protobuf from 4.25 to 7.x and in all
        # three backends (upb, cpp, python).
        pool.AddSerializedFile(fdp.SerializeToString())
    return pool


#: The private pool holding lead-bench's ``waymo.open_dataset`` types.
POOL = _build_pool()


def message_class(name: str) -> type[message.Message]:
    """The message class for ``name`` (``"E2EDFrame"`` or ``"waymo.open_dataset.E2EDFrame"``)."""
    full = name if name.startswith(PACKAGE + ".") else f"{PACKAGE}.{name}"
    return message_factory.GetMessageClass(POOL.FindMessageTypeByName(full))


def _export(name: str) -> type[message.Message]:
    cls = message_class(name)
    # Pickle finds a class by module and name; classes from a factory have no module of their own.
    cls.__module__ = __name__
    return cls


# dataset.proto
CameraName = _export("CameraName")
Transform = _export("Transform")
Velocity = _export("Velocity")
CameraCalibration = _export("CameraCalibration")
Context = _export("Context")
CameraImage = _export("CameraImage")
Frame = _export("Frame")
# end_to_end_driving_data.proto
E2EDFrame = _export("E2EDFrame")
EgoTrajectoryStates = _export("EgoTrajectoryStates")
EgoIntent = _export("EgoIntent")
# end_to_end_driving_submission.proto
TrajectoryPrediction = _export("TrajectoryPrediction")
FrameTrajectoryPredictions = _export("FrameTrajectoryPredictions")
E2EDChallengeSubmission = _export("E2EDChallengeSubmission")

__all__ = [
    "PACKAGE", "POOL", "file_descriptor_protos", "message_class",
    "CameraName", "Transform", "Velocity", "CameraCalibration", "Context", "CameraImage", "Frame",
    "E2EDFrame", "EgoTrajectoryStates", "EgoIntent",
    "TrajectoryPrediction", "FrameTrajectoryPredictions", "E2EDChallengeSubmission",
]
