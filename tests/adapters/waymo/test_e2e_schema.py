"""lead-bench's WOD-E2E protobuf schema: agrees with its .proto text, and has the wire format of the spec.

The wire checks write the expected bytes out by hand from specs/waymo_e2e.md §1.3 and §3 (tag = field
number << 3 | wire type), so they pin field numbers and wire types without the official wheel.
"""

from __future__ import annotations

import os
import pickle
import re
import struct
import subprocess
import sys
from pathlib import Path

from adapters.waymo import schema
from adapters.waymo.schema import (
    CameraCalibration,
    CameraImage,
    CameraName,
    E2EDChallengeSubmission,
    E2EDFrame,
    EgoIntent,
    EgoTrajectoryStates,
    Frame,
    TrajectoryPrediction,
)

PROTO_DIR = Path(schema.__file__).parent / "proto"
ROOT = Path(schema.__file__).resolve().parents[2]

# --- a tiny .proto parser (enough for the subset of the language the three files use) ---------------------

_SCALARS = {"double": 1, "float": 2, "int64": 3, "int32": 5, "bool": 8, "string": 9, "bytes": 12}
_LABELS = {"optional": 1, "repeated": 3}
_TOKEN = re.compile(r'"[^"]*"|[A-Za-z_][\w.]*|\d+|[{}\[\]=;]')


def parse_proto(text: str) -> dict:
    """Parse ``text`` into {syntax, package, imports, messages: {full: fields}, enums: {full: values}}.

    Fields are ``{number: (name, label, type, type_ref, scope, packed)}`` with ``type_ref`` unresolved.
    """
    text = re.sub(r"//[^\n]*", "", text)
    tokens = _TOKEN.findall(text)
    out: dict = {"imports": [], "messages": {}, "enums": {}}
    scope: list[tuple[str, str]] = []  # (kind, full name)
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok == "syntax":
            out["syntax"] = tokens[i + 2].strip('"')
            i += 4
        elif tok == "package":
            out["package"] = tokens[i + 1]
            i += 3
        elif tok == "import":
            out["imports"].append(tokens[i + 1].strip('"'))
            i += 3
        elif tok in ("message", "enum"):
            parent = scope[-1][1] if scope else out["package"]
            full = f"{parent}.{tokens[i + 1]}"
            (out["messages"] if tok == "message" else out["enums"])[full] = {}
            scope.append((tok, full))
            assert tokens[i + 2] == "{", tokens[i:i + 3]
            i += 3
        elif tok == "}":
            scope.pop()
            i += 1
        elif scope and scope[-1][0] == "enum":
            name, eq, number, semi = tokens[i:i + 4]
            assert (eq, semi) == ("=", ";"), tokens[i:i + 4]
            out["enums"][scope[-1][1]][name] = int(number)
            i += 4
        elif tok in _LABELS:
            label, type_ref, name, eq, number = tokens[i:i + 5]
            assert eq == "=", tokens[i:i + 5]
            i += 5
            packed = False
            if tokens[i] == "[":
                close = tokens.index("]", i)
                assert tokens[i + 1:close] == ["packed", "=", "true"], tokens[i:close + 1]
                packed, i = True, close + 1
            assert tokens[i] == ";", tokens[i]
            i += 1
            out["messages"][scope[-1][1]][int(number)] = (name, _LABELS[label], type_ref, scope[-1][1], packed)
        else:
            raise AssertionError(f"unexpected token {tok!r} near {tokens[i:i + 6]}")
    return out


def _resolve(ref: str, scope: str, declared: set[str]) -> str:
    """Protobuf name lookup: innermost scope first."""
    parts = scope.split(".")
    for n in range(len(parts), -1, -1):
        candidate = ".".join([*parts[:n], ref])
        if candidate in declared:
            return candidate
    raise AssertionError(f"{ref} is not declared (seen from {scope})")


def _normalise_parsed(files: dict[str, dict]) -> dict:
    declared = {name for f in files.values() for name in (*f["messages"], *f["enums"])}
    enums = {name for f in files.values() for name in f["enums"]}
    out = {}
    for fname, f in files.items():
        fields = {}
        for msg, fs in f["messages"].items():
            for number, (name, label, ref, scope, packed) in fs.items():
                if ref in _SCALARS:
                    type_, type_name = _SCALARS[ref], ""
                else:
                    full = _resolve(ref, scope, declared)
                    type_, type_name = (14 if full in enums else 11), "." + full
                fields[(msg, number)] = (name, label, type_, type_name, packed)
        out[fname] = (f.get("syntax"), f["package"], list(f["imports"]), sorted(f["messages"]), fields,
                      f["enums"])
    return out


def _walk(prefix: str, msgs, messages: list[str], fields: dict, enums: dict) -> None:
    for m in msgs:
        full = f"{prefix}.{m.name}"
        messages.append(full)
        for f in m.field:
            fields[(full, f.number)] = (f.name, f.label, f.type, f.type_name, f.options.packed)
        for e in m.enum_type:
            enums[f"{full}.{e.name}"] = {v.name: v.number for v in e.value}
        _walk(full, m.nested_type, messages, fields, enums)


def _normalise_descriptors() -> dict:
    out = {}
    for fdp in schema.file_descriptor_protos():
        messages: list[str] = []
        fields: dict = {}
        enums: dict = {}
        _walk(fdp.package, fdp.message_type, messages, fields, enums)
        # protoc leaves ``syntax`` unset for proto2 files, and so does the schema.
        out[fdp.name] = (fdp.syntax or "proto2", fdp.package, list(fdp.dependency), sorted(messages), fields,
                         enums)
    return out


def test_proto_text_matches_the_built_descriptors_exactly() -> None:
    parsed = {p.name: parse_proto(p.read_text(encoding="utf-8")) for p in sorted(PROTO_DIR.glob("*.proto"))}
    assert _normalise_parsed(parsed) == _normalise_descriptors()


def test_proto_files_are_proto2_in_the_official_package() -> None:
    for path in PROTO_DIR.glob("*.proto"):
        parsed = parse_proto(path.read_text(encoding="utf-8"))
        assert parsed["syntax"] == "proto2" and parsed["package"] == "waymo.open_dataset", path.name


def test_classes_have_the_official_full_names() -> None:
    for name in ("E2EDFrame", "EgoTrajectoryStates", "EgoIntent", "Frame", "Context", "CameraCalibration",
                 "CameraImage", "CameraName", "Transform", "E2EDChallengeSubmission",
                 "FrameTrajectoryPredictions", "TrajectoryPrediction"):
        assert getattr(schema, name).DESCRIPTOR.full_name == f"waymo.open_dataset.{name}"
    assert schema.message_class("waymo.open_dataset.E2EDFrame") is E2EDFrame


# --- wire format, written out by hand ---------------------------------------------------------------------


def _tag(number: int, wire_type: int) -> bytes:
    return bytes([number << 3 | wire_type])  # all tags here are < 128


def _len(number: int, payload: bytes) -> bytes:
    return _tag(number, 2) + bytes([len(payload)]) + payload  # all payloads here are < 128 bytes


def test_ego_trajectory_states_wire_format() -> None:
    s = EgoTrajectoryStates(pos_x=[1.0, 2.0], vel_y=[0.5], preference_score=7.0)
    expected = (_len(1, struct.pack("<2f", 1.0, 2.0))  # packed floats: wire type 2
                + _len(5, struct.pack("<f", 0.5))
                + _tag(8, 5) + struct.pack("<f", 7.0))  # optional float: fixed32
    assert s.SerializeToString() == expected


def test_e2ed_frame_field_numbers() -> None:
    f = E2EDFrame(intent=EgoIntent.GO_RIGHT)
    f.frame.timestamp_micros = 5
    f.future_states.pos_x.append(1.0)
    f.past_states.pos_y.append(2.0)
    f.preference_trajectories.add(preference_score=-1.0)
    expected = (_len(1, _tag(2, 0) + b"\x05")
                + _len(5, _len(1, struct.pack("<f", 1.0)))
                + _len(6, _len(2, struct.pack("<f", 2.0)))
                + _tag(7, 0) + b"\x03"
                + _len(8, _tag(8, 5) + struct.pack("<f", -1.0)))
    assert f.SerializeToString() == expected
    assert EgoIntent.Intent.items() == [("UNKNOWN", 0), ("GO_STRAIGHT", 1), ("GO_LEFT", 2), ("GO_RIGHT", 3)]


def test_calibration_doubles_are_not_packed() -> None:
    c = CameraCalibration(name=CameraName.FRONT_LEFT, intrinsic=[1.0, 2.0], width=972, height=1079,
                          rolling_shutter_direction=CameraCalibration.GLOBAL_SHUTTER)
    c.extrinsic.transform.extend([1.0])
    expected = (_tag(1, 0) + b"\x02"
                + _tag(2, 1) + struct.pack("<d", 1.0) + _tag(2, 1) + struct.pack("<d", 2.0)  # one fixed64 each
                + _len(3, _tag(1, 1) + struct.pack("<d", 1.0))
                + _tag(4, 0) + b"\xcc\x07" + _tag(5, 0) + b"\xb7\x08"  # 972, 1079 as varints
                + _tag(6, 0) + b"\x05")
    assert c.SerializeToString() == expected


def test_camera_names_and_frame_layout() -> None:
    assert CameraName.Name.items() == [("UNKNOWN", 0), ("FRONT", 1), ("FRONT_LEFT", 2), ("FRONT_RIGHT", 3),
                                       ("SIDE_LEFT", 4), ("SIDE_RIGHT", 5), ("REAR_LEFT", 6), ("REAR", 7),
                                       ("REAR_RIGHT", 8)]
    f = Frame()
    f.context.name = "ab-001"
    f.images.add(name=CameraName.REAR_RIGHT, image=b"\xff\xd8", shutter=0.01)
    image = _tag(1, 0) + b"\x08" + _len(2, b"\xff\xd8") + _tag(6, 1) + struct.pack("<d", 0.01)
    assert f.SerializeToString() == _len(1, _len(1, b"ab-001")) + _len(4, image)


def test_submission_field_numbers() -> None:
    s = E2EDChallengeSubmission(submission_type=E2EDChallengeSubmission.E2ED_SUBMISSION, account_name="a",
                                unique_method_name="m", authors=["x", "y"], affiliation="f", description="d",
                                method_link="l", uses_public_model_pretraining=True,
                                num_model_parameters="200K", public_model_names=["p"])
    p = s.predictions.add(frame_name="n")
    p.trajectory.pos_x.append(1.0)
    p.trajectory.pos_y.append(-1.0)
    trajectory = _len(1, struct.pack("<f", 1.0)) + _len(2, struct.pack("<f", -1.0))
    expected = (_len(1, _len(1, b"n") + _len(2, trajectory))
                + _tag(2, 0) + b"\x01" + _len(3, b"a") + _len(4, b"m") + _len(5, b"x") + _len(5, b"y")
                + _len(6, b"f") + _len(7, b"d") + _len(8, b"l")
                + _tag(11, 0) + b"\x01" + _len(12, b"200K") + _len(13, b"p"))  # in field-number order
    assert s.SerializeToString() == expected


# --- parsing semantics ------------------------------------------------------------------------------------


def test_unpacked_floats_are_accepted() -> None:
    unpacked = _tag(1, 5) + struct.pack("<f", 1.5) + _tag(1, 5) + struct.pack("<f", 2.5)
    assert list(EgoTrajectoryStates.FromString(unpacked).pos_x) == [1.5, 2.5]
    assert list(TrajectoryPrediction.FromString(unpacked).pos_x) == [1.5, 2.5]


def test_packed_doubles_are_accepted_for_unpacked_fields() -> None:
    packed = _len(2, struct.pack("<2d", 3.0, 4.0))
    assert list(CameraCalibration.FromString(packed).intrinsic) == [3.0, 4.0]


def test_unknown_fields_are_skipped_and_kept() -> None:
    lasers = _len(5, _tag(1, 0) + b"\x01")  # Frame.lasers, not in the schema
    ext = b"\xc2\x3e" + bytes([3]) + b"abc"  # field 1000 (Frame's extension range), length-delimited
    frame_bytes = _len(1, _len(1, b"seq-007")) + lasers + ext
    unknown_e2ed = _len(3, b"??") + _tag(15, 0) + b"\x07"  # undeclared numbers of E2EDFrame
    data = _len(1, frame_bytes) + unknown_e2ed + _tag(7, 0) + b"\x01"
    f = E2EDFrame.FromString(data)
    assert f.frame.context.name == "seq-007" and f.intent == EgoIntent.GO_STRAIGHT
    again = E2EDFrame.FromString(f.SerializeToString())
    assert again == f and len(f.SerializeToString()) == len(data)


def test_unknown_enum_value_reads_as_default_proto2_closed_enum() -> None:
    data = _tag(1, 0) + b"\x09" + _len(2, b"x")  # CameraImage.name = 9, not a CameraName
    image = CameraImage.FromString(data)
    assert not image.HasField("name") and image.name == CameraName.UNKNOWN
    assert image.SerializeToString().count(_tag(1, 0) + b"\x09") == 1  # kept as an unknown field


def test_presence_of_optional_scalars() -> None:
    s = EgoTrajectoryStates()
    assert not s.HasField("preference_score")
    s.preference_score = 0.0
    assert s.HasField("preference_score") and s.SerializeToString() == _tag(8, 5) + bytes(4)


def test_messages_pickle() -> None:
    f = E2EDFrame(intent=EgoIntent.GO_LEFT)
    f.frame.context.name = "x-001"
    assert pickle.loads(pickle.dumps(f)) == f


def test_schema_builds_with_the_pure_python_protobuf_backend() -> None:
    code = ("from adapters.waymo.schema import E2EDFrame; from google.protobuf.internal import api_implementation;"
            "f = E2EDFrame(intent=3); f.frame.context.name = 'a-001'; f.past_states.pos_x.extend([1.0, 2.0]);"
            "print(api_implementation.Type(), f.SerializeToString().hex())")
    env = {**os.environ, "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": "python"}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.split()
    f = E2EDFrame(intent=3)
    f.frame.context.name = "a-001"
    f.past_states.pos_x.extend([1.0, 2.0])
    assert out == ["python", f.SerializeToString().hex()]
