"""OpenScene / NAVSIM log pickles: the frame-dict layout, validation, and a typed view of one frame.

A log pickle ``navsim_logs/<split>/<log_name>.pkl`` is a list of frame dicts, one per 2 Hz keyframe in time
order, as written by OpenScene's ``create_openscene_metadata.py`` (see specs/navsim.md §8.1). Poses are
nuPlan's: ``ego2global_*`` is the rear-axle pose in the map frame; boxes are in the current ego frame.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from harness.errors import DataError
from harness.geometry import (
    global_to_local,
    normalize_angle,
    quaternion_to_matrix,
    quaternion_yaw,
    se3_from_rt,
)
from harness.types import DrivingCommand

F64 = npt.NDArray[np.float64]

NUPLAN_CAMERA_NAMES: tuple[str, ...] = (
    "CAM_F0", "CAM_L0", "CAM_L1", "CAM_L2", "CAM_R0", "CAM_R1", "CAM_R2", "CAM_B0",
)

#: Keys every frame dict carries (OpenScene writes all of them; NAVSIM reads most).
FRAME_KEYS: tuple[str, ...] = (
    "token", "frame_idx", "timestamp", "log_name", "log_token", "scene_name", "scene_token", "map_location",
    "roadblock_ids", "vehicle_name", "can_bus", "lidar_path", "lidar2ego_translation", "lidar2ego_rotation",
    "ego2global_translation", "ego2global_rotation", "ego_dynamic_state", "traffic_lights", "driving_command",
    "cams", "sample_prev", "sample_next", "ego2global", "lidar2ego", "lidar2global",
)
#: Keys NAVSIM itself reads; a reader of real data needs exactly these (``anns`` only where labelled).
READ_KEYS: tuple[str, ...] = (
    "token", "timestamp", "log_name", "scene_token", "map_location", "roadblock_ids", "lidar_path",
    "lidar2ego_translation", "lidar2ego_rotation", "ego2global_translation", "ego2global_rotation",
    "ego_dynamic_state", "traffic_lights", "driving_command", "cams",
)
CAMERA_KEYS: tuple[str, ...] = (
    "data_path", "sensor2lidar_rotation", "sensor2lidar_translation", "cam_intrinsic", "distortion",
)
ANNOTATION_KEYS: tuple[str, ...] = ("gt_boxes", "gt_names", "gt_velocity_3d", "instance_tokens", "track_tokens")

#: NAVSIM remaps this legacy location name.
LOCATION_ALIASES: Mapping[str, str] = {"las_vegas": "us-nv-las-vegas-strip"}


@dataclass(frozen=True)
class CameraRecord:
    """One camera entry of a frame: relative image path and calibration (OpenCV camera axes)."""

    name: str
    data_path: str
    lidar_from_camera: F64  # (4, 4)
    intrinsics: F64  # (3, 3)
    distortion: F64  # (5,)


@dataclass(frozen=True)
class Annotations:
    """Boxes of one frame in its ego frame: ``boxes (N, 7)`` = x, y, z, length, width, height, yaw."""

    boxes: F64
    names: tuple[str, ...]
    velocity_3d: F64  # (N, 3)
    instance_tokens: tuple[str, ...]
    track_tokens: tuple[str, ...]


@dataclass(frozen=True)
class NavsimFrame:
    """A typed, validated view of one frame dict."""

    token: str
    timestamp_us: int
    log_name: str
    scene_token: str
    map_location: str
    roadblock_ids: tuple[str, ...]
    ego_pose: F64  # (3,) global rear-axle (x, y, heading)
    ego_translation: F64  # (3,)
    ego_dynamic_state: F64  # (4,) vx, vy, ax, ay in the ego frame
    driving_command: DrivingCommand
    traffic_lights: tuple[tuple[int, bool], ...]
    lidar_path: str | None
    ego_from_lidar: F64  # (4, 4)
    cameras: Mapping[str, CameraRecord]
    annotations: Annotations | None


def _fail(msg: str, path: Path, index: int, token: str | None) -> DataError:
    return DataError(f"frame {index}: {msg}", path=path, token=token)


def _vec(frame: Mapping[str, Any], key: str, shape: tuple[int, ...], path: Path, i: int, tok: str | None) -> F64:
    try:
        arr = np.asarray(frame[key], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise _fail(f"'{key}' is not numeric ({exc})", path, i, tok) from exc
    if arr.shape != shape:
        raise _fail(f"'{key}' must have shape {shape}, got {arr.shape}", path, i, tok)
    if not np.isfinite(arr).all():
        raise _fail(f"'{key}' has NaN or inf values", path, i, tok)
    return arr


def _camera_records(cams: Mapping[str, Any], path: Path, index: int, tok: str) -> dict[str, CameraRecord]:
    cameras: dict[str, CameraRecord] = {}
    for name, cam in cams.items():
        miss = [k for k in CAMERA_KEYS if k not in cam]
        if miss:
            raise _fail(f"camera {name} lacks {miss}", path, index, tok)
        rot = _vec(cam, "sensor2lidar_rotation", (3, 3), path, index, tok)
        trans = _vec(cam, "sensor2lidar_translation", (3,), path, index, tok)
        cameras[str(name)] = CameraRecord(
            name=str(name),
            data_path=str(cam["data_path"]),
            lidar_from_camera=se3_from_rt(rot, trans),
            intrinsics=_vec(cam, "cam_intrinsic", (3, 3), path, index, tok),
            distortion=np.asarray(cam["distortion"], dtype=np.float64).reshape(-1),
        )
    return cameras


class _LazyCameras(Mapping[str, CameraRecord]):
    """A frame's camera records, parsed and validated on first access (the metric cache never reads them;
    a malformed entry raises the same ``DataError`` then, naming file, frame and token)."""

    __slots__ = ("_raw", "_where", "_parsed")

    def __init__(self, raw: Mapping[str, Any], path: Path, index: int, token: str) -> None:
        self._raw = raw
        self._where = (path, index, token)
        self._parsed: dict[str, CameraRecord] | None = None

    def _records(self) -> dict[str, CameraRecord]:
        if self._parsed is None:
            self._parsed = _camera_records(self._raw, *self._where)
        return self._parsed

    def __getitem__(self, name: str) -> CameraRecord:
        return self._records()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._records())

    def __len__(self) -> int:
        return len(self._raw)

    def __repr__(self) -> str:
        return f"cameras({sorted(str(k) for k in self._raw)})"


#: ``ego_from_lidar`` by its (quaternion, translation) bytes: a log's lidar calibration is one for all frames.
_LIDAR_TRANSFORMS: dict[bytes, F64] = {}


def _ego_from_lidar(q_wxyz: F64, translation: F64) -> F64:
    """``se3_from_rt(quaternion_to_matrix(q), t)``, computed once per distinct calibration (read-only)."""
    key = q_wxyz.tobytes() + translation.tobytes()
    m = _LIDAR_TRANSFORMS.get(key)
    if m is None:
        m = se3_from_rt(quaternion_to_matrix(q_wxyz), translation)
        m.flags.writeable = False
        if len(_LIDAR_TRANSFORMS) >= 256:
            _LIDAR_TRANSFORMS.clear()
        _LIDAR_TRANSFORMS[key] = m
    return m


def _driving_command(value: Any) -> DrivingCommand:
    """``DrivingCommand.from_one_hot`` (same result, same error), with the common exact one-hot checked by
    list comparison first."""
    v = np.asarray(value)
    if v.shape == (4,) and v.dtype.kind in "biuf":
        entries = v.tolist()
        if sorted(entries) == [0, 0, 0, 1]:
            return DrivingCommand(entries.index(1))
    return DrivingCommand.from_one_hot(value, where="driving_command")


def parse_frame(frame: Any, *, path: Path, index: int, require_annotations: bool = False) -> NavsimFrame:
    """Validate one frame dict and return its typed view.

    Args:
        frame: the dict from the log pickle.
        path: the pickle (for error messages).
        index: the frame's position in the log (for error messages).
        require_annotations: raise if ``anns`` is missing (private-test logs have none).

    Raises:
        DataError: naming the file, frame index, token and the key that is missing or malformed.
    """
    if not isinstance(frame, Mapping):
        raise _fail(f"expected a dict, got {type(frame).__name__}", path, index, None)
    tok = frame.get("token") if isinstance(frame.get("token"), str) else None
    missing = [k for k in READ_KEYS if k not in frame]
    if missing:
        raise _fail(f"missing key(s) {missing}; an OpenScene frame dict has {list(READ_KEYS)}", path, index, tok)
    if tok is None:
        raise _fail(f"'token' must be a string, got {frame['token']!r}", path, index, None)
    location = LOCATION_ALIASES.get(str(frame["map_location"]), str(frame["map_location"]))
    t = _vec(frame, "ego2global_translation", (3,), path, index, tok)
    q = _vec(frame, "ego2global_rotation", (4,), path, index, tok)
    dyn = _vec(frame, "ego_dynamic_state", (4,), path, index, tok)
    l2e_t = _vec(frame, "lidar2ego_translation", (3,), path, index, tok)
    l2e_q = _vec(frame, "lidar2ego_rotation", (4,), path, index, tok)
    try:
        command = _driving_command(frame["driving_command"])
    except ValueError as exc:
        raise _fail(str(exc), path, index, tok) from exc
    try:
        lights = tuple((int(c), bool(r)) for c, r in frame["traffic_lights"])
    except (TypeError, ValueError) as exc:
        raise _fail(f"'traffic_lights' must be (lane_connector_id, is_red) pairs ({exc})", path, index, tok) from exc
    cams = frame["cams"]
    if not isinstance(cams, Mapping):
        raise _fail("'cams' must be a dict of camera name -> calibration", path, index, tok)
    cameras = _LazyCameras(cams, path, index, tok)
    anns = None
    if "anns" in frame and frame["anns"] is not None:
        anns = _parse_annotations(frame["anns"], path, index, tok)
    elif require_annotations:
        raise _fail("missing key 'anns' (ground-truth boxes); private-test logs have none", path, index, tok)
    lidar_path = frame["lidar_path"]
    return NavsimFrame(
        token=tok,
        timestamp_us=int(frame["timestamp"]),
        log_name=str(frame["log_name"]),
        scene_token=str(frame["scene_token"]),
        map_location=location,
        roadblock_ids=tuple(str(r) for r in frame["roadblock_ids"]),
        ego_pose=np.array([t[0], t[1], float(quaternion_yaw(q))]),
        ego_translation=t,
        ego_dynamic_state=dyn,
        driving_command=command,
        traffic_lights=lights,
        lidar_path=None if lidar_path is None else str(lidar_path),
        ego_from_lidar=_ego_from_lidar(l2e_q, l2e_t),
        cameras=cameras,
        annotations=anns,
    )


def _parse_annotations(anns: Any, path: Path, index: int, tok: str) -> Annotations:
    if not isinstance(anns, Mapping):
        raise _fail("'anns' must be a dict", path, index, tok)
    miss = [k for k in ANNOTATION_KEYS if k not in anns]
    if miss:
        raise _fail(f"'anns' lacks {miss}", path, index, tok)
    boxes = np.asarray(anns["gt_boxes"], dtype=np.float64).reshape(-1, 7) if len(anns["gt_boxes"]) else np.zeros((0, 7))
    n = boxes.shape[0]
    vel = np.asarray(anns["gt_velocity_3d"], dtype=np.float64).reshape(-1, 3) if n else np.zeros((0, 3))
    names = _strings(anns["gt_names"])
    inst = _strings(anns["instance_tokens"])
    track = _strings(anns["track_tokens"])
    if not (len(names) == len(inst) == len(track) == n == vel.shape[0]):
        raise _fail(
            f"'anns' fields disagree in length: gt_boxes {n}, gt_names {len(names)}, gt_velocity_3d "
            f"{vel.shape[0]}, instance_tokens {len(inst)}, track_tokens {len(track)}", path, index, tok,
        )
    if not np.all(np.isfinite(boxes)):
        raise _fail("'anns.gt_boxes' has NaN or inf values", path, index, tok)
    return Annotations(boxes=boxes, names=names, velocity_3d=vel, instance_tokens=inst, track_tokens=track)


def _strings(values: Any) -> tuple[str, ...]:
    """``tuple(str(x) for x in values)``; a numpy string array converts in one ``tolist``."""
    if isinstance(values, np.ndarray) and values.dtype.kind == "U":
        return tuple(values.reshape(-1).tolist()) if values.ndim == 1 else tuple(str(x) for x in values)
    return tuple(x if type(x) is str else str(x) for x in values)


def relative_poses(frames: Sequence[NavsimFrame], current: int) -> F64:
    """Poses ``(len(frames), 3)`` of every frame in the ego frame of ``frames[current]``."""
    poses = np.stack([f.ego_pose for f in frames])
    rel = global_to_local(poses, poses[current])
    rel[:, 2] = normalize_angle(rel[:, 2])
    return rel


#: Opcodes ``first_map_location`` reads at most before giving up (a real log's first frame takes ~1,000).
MAP_LOCATION_SCAN_OPS = 20_000
_STRING_OPS = frozenset({"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"})
_MEMO_OPS = frozenset({"MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT", "FRAME"})


def first_map_location(path: Path) -> str | None:
    """The ``map_location`` of a log pickle's first frame, read from the pickle's opcodes without unpickling
    it (``pickletools.genops`` only decodes the stream: nothing is built or run), so a caller can read the
    log's map before (or while) the log itself is parsed. ``None`` when the file cannot be scanned or the
    value is not a plain string right after the key within the first ``MAP_LOCATION_SCAN_OPS`` opcodes;
    a hint only: the parsed frames stay authoritative."""
    import pickletools

    try:
        with open(path, "rb") as fh:
            after_key = False
            for n, (op, arg, _) in enumerate(pickletools.genops(fh)):
                if n >= MAP_LOCATION_SCAN_OPS:
                    return None
                if op.name in _MEMO_OPS:
                    continue
                if op.name in _STRING_OPS:
                    if after_key:
                        return str(arg)
                    after_key = arg == "map_location"
                elif after_key:
                    return None  # the value is not a plain string (a memo reference, ...)
    except (OSError, ValueError, EOFError):
        return None
    return None
