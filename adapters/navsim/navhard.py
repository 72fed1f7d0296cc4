"""NAVSIM v2 two-stage data (navhard layout): synthetic scene pickles, the split file, and reading them back.

Layout (specs/navsim.md §7.1, §8.2; navsim ``main`` ``docs/install.md``)::

    <root>/navsim_logs/test/<log>.pkl               original OpenScene logs (stage one)
    <root>/sensor_blobs/test/...                    their sensors
    <root>/navhard_two_stage/synthetic_scene_pickles/<token>.pkl   one synthetic scene per file
    <root>/navhard_two_stage/sensor_blobs/<log>/CAM_*/<token>.jpg, MergedPointCloud/<token>.pcd
    <root>/navhard_two_stage/openscene_meta_datas/<log>.pkl        synthetic frames as OpenScene frame dicts
    <root>/navhard_two_stage/synthetic_scenes_attributes.csv       one row per synthetic scene
    <root>/navhard_two_stage/navhard_two_stage.yaml                the split (train_test_split config)

A synthetic scene pickle is what navsim's ``Scene.save_to_disk`` writes and ``Scene.load_from_disk`` reads:
``{"scene_metadata": SceneMetadata fields, "frames": [ {token, timestamp, roadblock_ids, traffic_lights,
annotations: {boxes, names, velocity_3d, instance_tokens, track_tokens}, ego_status: {ego_pose (global),
ego_velocity, ego_acceleration, driving_command, in_global_frame}, lidar_path, camera_dict: {cam_f0: {data_path,
sensor2lidar_rotation, sensor2lidar_translation, cam_intrinsic, distortion} or {}, ...}} ], "extended_traffic_
light_data": [nuPlan TrafficLightStatuses] * 8, "extended_detections_tracks": [nuPlan DetectionsTracks] * 8}``.
The frames are the history (4 frames, the last is the scene's current frame); the 8 extended entries are the
keyframes +0.5 .. +4.0 s, in the map frame (:mod:`adapters.navsim.nuplan_objects`). Synthetic tokens have 17
hex characters. ``corresponding_original_scene`` is the original frame token with the same timestamp (the
last frame of the stage-one scene it continues); ``corresponding_original_initial_token`` that scene's token.

The split file holds NAVSIM's ``reactive_all_mapping`` (``[orig, prev, [[now_2, prev_2], ...]]``) and a
``scene_filter`` (history 4, future 8, interval 1, the stage-one tokens, ``reactive_synthetic_initial_tokens``).
``openscene_meta_datas`` and the attribute CSV have no reader in the official code; lead-bench writes the
synthetic frames there as OpenScene frame dicts grouped by ``scene_token`` with ``frame_idx`` (the layout
``dataloader_private.group_frames_by_sequence`` reads: 5 frames per follow-up pair, ``[0:4]`` = prev_2,
``[1:5]`` = now_2) and the perturbation of each scene in the CSV (lead-bench's own columns).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml

from adapters.navsim import nuplan_objects as nu
from adapters.navsim.log_format import NUPLAN_CAMERA_NAMES, Annotations, CameraRecord, NavsimFrame
from harness.atomic import atomic_write_bytes, atomic_write_text
from harness.errors import DataError
from harness.geometry import global_to_local, normalize_angle, se3_from_rt
from harness.safe_pickle import NUMPY_GLOBALS, dumps_with_global_names, load_restricted
from harness.types import DrivingCommand

F64 = npt.NDArray[np.float64]

SPLIT_NAME = "navhard_two_stage"
SYNTHETIC_TOKEN_LENGTH = 17
NUM_HISTORY_FRAMES = 4
NUM_FUTURE_FRAMES = 8
KEYFRAME_S = 0.5
_CAMS = tuple(c.lower() for c in NUPLAN_CAMERA_NAMES)


@dataclass(frozen=True)
class NavhardGroup:
    """One ``reactive_all_mapping`` entry."""

    orig_token: str
    prev_token: str
    pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class NavhardSplit:
    """The two-stage split: groups, and the stage-one logs (the scene filter's ``log_names``)."""

    groups: tuple[NavhardGroup, ...]
    log_names: tuple[str, ...]

    @property
    def stage_one_tokens(self) -> tuple[str, ...]:
        return tuple(t for g in self.groups for t in (g.orig_token, g.prev_token))

    @property
    def stage_two_tokens(self) -> tuple[str, ...]:
        return tuple(t for g in self.groups for p in g.pairs for t in p)


@dataclass(frozen=True)
class SyntheticFrame:
    """One history frame of a synthetic scene (ego pose global: x, y, heading of the rear axle)."""

    token: str
    timestamp_us: int
    roadblock_ids: tuple[str, ...]
    traffic_lights: tuple[tuple[int, bool], ...]
    annotations: Annotations  # boxes in this frame's ego frame, as the logs
    ego_pose: F64  # (3,)
    ego_velocity: F64  # (2,) ego frame
    ego_acceleration: F64  # (2,) ego frame
    driving_command: DrivingCommand
    lidar_path: str | None
    cameras: Mapping[str, CameraRecord]  # keyed by NAVSIM's upper-case names


@dataclass(frozen=True)
class ExtendedObjects:
    """Objects of one future keyframe in the map frame (box centres, sizes l/w/h, yaws, global velocities)."""

    track_tokens: tuple[str, ...]
    categories: tuple[str, ...]
    center_xyz: F64  # (N, 3)
    size_lwh: F64  # (N, 3)
    yaw: F64  # (N,)
    velocity_xy: F64  # (N, 2), zero for static objects


@dataclass(frozen=True)
class SyntheticScene:
    """A navsim ``Scene`` as a synthetic scene pickle holds it."""

    token: str
    log_name: str
    map_name: str
    corresponding_original_scene: str
    corresponding_original_initial_token: str
    frames: tuple[SyntheticFrame, ...]
    extended_objects: tuple[ExtendedObjects, ...]
    extended_lights: tuple[tuple[tuple[int, bool], ...], ...]
    extended_timestamps_us: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.token) != SYNTHETIC_TOKEN_LENGTH:
            raise ValueError(f"SyntheticScene.token: expected {SYNTHETIC_TOKEN_LENGTH} characters, got {self.token!r}")
        if len(self.frames) != NUM_HISTORY_FRAMES or self.frames[-1].token != self.token:
            raise ValueError(f"SyntheticScene[{self.token}]: expected {NUM_HISTORY_FRAMES} history frames ending "
                             "with the scene's own token")
        if not len(self.extended_objects) == len(self.extended_lights) == len(self.extended_timestamps_us):
            raise ValueError(f"SyntheticScene[{self.token}]: extended objects, lights and times disagree in length")


# --- writing -------------------------------------------------------------------------------------------------


_AGENT_CATEGORIES = ("vehicle", "pedestrian", "bicycle", "ego")


def _detections(ext: ExtendedObjects, timestamp_us: int) -> nu.DetectionsTracks:
    objs: list[nu.Agent | nu.StaticObject] = []
    for i, tok in enumerate(ext.track_tokens):
        cat = ext.categories[i]
        kind = nu.TrackedObjectType(nu.TrackedObjectType.NAMES.index(cat))
        box = nu.OrientedBox(nu.StateSE2(ext.center_xyz[i, 0], ext.center_xyz[i, 1], ext.yaw[i]),
                             ext.size_lwh[i, 0], ext.size_lwh[i, 1], ext.size_lwh[i, 2])
        meta = nu.SceneObjectMetadata(timestamp_us, tok, None, tok, cat)
        if cat in _AGENT_CATEGORIES:
            objs.append(nu.Agent(kind, box, nu.StateVector2D(*ext.velocity_xy[i]), meta))
        else:
            objs.append(nu.StaticObject(kind, box, meta))
    return nu.DetectionsTracks(nu.TrackedObjects(objs))


def _lights(lights: Sequence[tuple[int, bool]], timestamp_us: int) -> nu.TrafficLightStatuses:
    return nu.TrafficLightStatuses([nu.TrafficLightStatusData(nu.TrafficLightStatusType(2 if red else 0), int(c),
                                                              timestamp_us) for c, red in lights])


def _frame_dict(f: SyntheticFrame) -> dict[str, Any]:
    a = f.annotations
    cams: dict[str, Any] = {}
    for name in _CAMS:
        rec = f.cameras.get(name.upper())
        cams[name] = {} if rec is None else {
            "data_path": rec.data_path,
            "sensor2lidar_rotation": rec.lidar_from_camera[:3, :3].copy(),
            "sensor2lidar_translation": rec.lidar_from_camera[:3, 3].copy(),
            "cam_intrinsic": rec.intrinsics.copy(),
            "distortion": rec.distortion.copy(),
        }
    return {
        "token": f.token,
        "timestamp": int(f.timestamp_us),
        "roadblock_ids": list(f.roadblock_ids),
        "traffic_lights": [(int(c), bool(r)) for c, r in f.traffic_lights],
        "annotations": {"boxes": a.boxes.copy(), "names": list(a.names), "velocity_3d": a.velocity_3d.copy(),
                        "instance_tokens": list(a.instance_tokens), "track_tokens": list(a.track_tokens)},
        "ego_status": {"ego_pose": np.asarray(f.ego_pose, dtype=np.float64),
                       "ego_velocity": np.asarray(f.ego_velocity, dtype=np.float32),
                       "ego_acceleration": np.asarray(f.ego_acceleration, dtype=np.float32),
                       "driving_command": f.driving_command.one_hot().astype(int), "in_global_frame": True},
        "lidar_path": f.lidar_path,
        "camera_dict": cams,
    }


def synthetic_scene_dict(scene: SyntheticScene) -> dict[str, Any]:
    """The pickled dict of ``Scene.save_to_disk`` for a synthetic scene."""
    return {
        "scene_metadata": {
            "log_name": scene.log_name, "scene_token": scene.token, "map_name": scene.map_name,
            "initial_token": scene.token, "num_history_frames": NUM_HISTORY_FRAMES,
            "num_future_frames": NUM_FUTURE_FRAMES,
            "corresponding_original_scene": scene.corresponding_original_scene,
            "corresponding_original_initial_token": scene.corresponding_original_initial_token,
        },
        "frames": [_frame_dict(f) for f in scene.frames],
        "extended_traffic_light_data": [_lights(lt, ts) for lt, ts in
                                        zip(scene.extended_lights, scene.extended_timestamps_us, strict=True)],
        "extended_detections_tracks": [_detections(ob, ts) for ob, ts in
                                       zip(scene.extended_objects, scene.extended_timestamps_us, strict=True)],
    }


def write_synthetic_scene(path: str | Path, scene: SyntheticScene) -> Path:
    """Write ``<token>.pkl`` (nuPlan objects under their real class paths); returns the path."""
    p = Path(path)
    atomic_write_bytes(p, dumps_with_global_names(synthetic_scene_dict(scene), nu.GLOBAL_NAMES))
    return p


def split_yaml(split: NavhardSplit, synthetic_tokens: Sequence[str]) -> str:
    """The ``train_test_split`` config: ``data_split``, ``reactive_all_mapping`` and the scene filter."""
    doc = {
        "data_split": "test",
        "reactive_all_mapping": [[g.orig_token, g.prev_token, [list(p) for p in g.pairs]] for g in split.groups],
        "scene_filter": {
            "num_history_frames": NUM_HISTORY_FRAMES, "num_future_frames": NUM_FUTURE_FRAMES, "frame_interval": 1,
            "has_route": True, "max_scenes": None, "include_synthetic_scenes": True,
            "log_names": list(split.log_names), "tokens": list(split.stage_one_tokens),
            "synthetic_scene_tokens": None,
            "reactive_synthetic_initial_tokens": list(synthetic_tokens),
            "non_reactive_synthetic_initial_tokens": None,
        },
    }
    return yaml.safe_dump(doc, sort_keys=False)


def write_attributes_csv(path: str | Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """``synthetic_scenes_attributes.csv``: one row per synthetic scene (lead-bench's columns)."""
    if not rows:
        raise ValueError("write_attributes_csv: no rows")
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(Path(path), buf.getvalue())


# --- reading -------------------------------------------------------------------------------------------------


def _substitutes() -> dict[tuple[str, str], Any]:
    """``nu.SUBSTITUTES``, with the two enums built by a dict lookup (a C call; a pickle holds ~500 of them)
    returning one shared instance per value; an unknown value raises ``KeyError`` (a corrupt pickle)."""
    out = dict(nu.SUBSTITUTES)
    for cls, n in ((nu.TrackedObjectType, len(nu.TrackedObjectType.NAMES)), (nu.TrafficLightStatusType, 4)):
        out[nu.GLOBAL_NAMES[cls]] = {v: cls(v) for v in range(n)}.__getitem__
    return out


def read_synthetic_scene(path: str | Path) -> SyntheticScene:
    """Read a synthetic scene pickle (restricted unpickler: numpy, builtins and the nuPlan classes only).

    Raises:
        DataError: unreadable file, a foreign class, or a missing / malformed key (named).
    """
    p = Path(path)
    raw = load_restricted(p, allowed=NUMPY_GLOBALS, substitutes=_substitutes())
    try:
        meta = raw["scene_metadata"]
        frames = tuple(_read_frame(f) for f in raw["frames"])
        ext_det = raw["extended_detections_tracks"] or []
        ext_lt = raw["extended_traffic_light_data"] or []
        objects = tuple(_read_detections(d) for d in ext_det)
        lights = tuple(tuple((int(s.lane_connector_id), int(s.status.value) == 2) for s in lt.traffic_lights)
                       for lt in ext_lt)
        times = tuple(int(lt.traffic_lights[0].timestamp) if lt.traffic_lights else 0 for lt in ext_lt)
        if len(times) != len(objects):
            times = tuple(range(len(objects)))
        return SyntheticScene(
            token=str(meta["initial_token"]), log_name=str(meta["log_name"]), map_name=str(meta["map_name"]),
            corresponding_original_scene=str(meta["corresponding_original_scene"]),
            corresponding_original_initial_token=str(meta["corresponding_original_initial_token"]),
            frames=frames, extended_objects=objects, extended_lights=lights, extended_timestamps_us=times)
    except (KeyError, TypeError, AttributeError, IndexError, ValueError) as exc:
        raise DataError(f"malformed synthetic scene pickle ({type(exc).__name__}: {exc})", path=p) from exc


def _read_frame(f: Mapping[str, Any]) -> SyntheticFrame:
    a, e = f["annotations"], f["ego_status"]
    boxes = np.asarray(a["boxes"], dtype=np.float64).reshape(-1, 7)
    cams: dict[str, CameraRecord] = {}
    for name, c in f["camera_dict"].items():
        if not c:
            continue
        cams[name.upper()] = CameraRecord(
            name=name.upper(), data_path=str(c["data_path"]),
            lidar_from_camera=se3_from_rt(np.asarray(c["sensor2lidar_rotation"], dtype=np.float64),
                                          np.asarray(c["sensor2lidar_translation"], dtype=np.float64)),
            intrinsics=np.asarray(c["cam_intrinsic"], dtype=np.float64),
            distortion=np.asarray(c["distortion"], dtype=np.float64).reshape(-1))
    return SyntheticFrame(
        token=str(f["token"]), timestamp_us=int(f["timestamp"]),
        roadblock_ids=tuple(str(r) for r in f["roadblock_ids"]),
        traffic_lights=tuple((int(c), bool(r)) for c, r in f["traffic_lights"]),
        annotations=Annotations(boxes=boxes, names=tuple(str(n) for n in a["names"]),
                                velocity_3d=np.asarray(a["velocity_3d"], dtype=np.float64).reshape(-1, 3),
                                instance_tokens=tuple(str(t) for t in a["instance_tokens"]),
                                track_tokens=tuple(str(t) for t in a["track_tokens"])),
        ego_pose=np.asarray(e["ego_pose"], dtype=np.float64).reshape(3),
        ego_velocity=np.asarray(e["ego_velocity"], dtype=np.float64).reshape(2),
        ego_acceleration=np.asarray(e["ego_acceleration"], dtype=np.float64).reshape(2),
        driving_command=DrivingCommand.from_one_hot(e["driving_command"], where="ego_status.driving_command"),
        lidar_path=None if f["lidar_path"] is None else str(f["lidar_path"]), cameras=cams)


def _read_detections(d: Any) -> ExtendedObjects:
    objs = d.tracked_objects.tracked_objects
    rows = []
    for o in objs:
        b = o._box
        c = b._center
        v = o._velocity if isinstance(o, nu.Agent) else o.velocity
        rows.append((c.x, c.y, b._length, b._width, b._height, c.heading, v._x, v._y))
    a = np.array(rows, dtype=np.float64).reshape(-1, 8)
    center = np.zeros((len(objs), 3))
    center[:, :2] = a[:, :2]
    return ExtendedObjects(tuple(str(o._metadata.track_token) for o in objs),
                           tuple(nu.TrackedObjectType.NAMES[o._tracked_object_type.value] for o in objs),
                           center, a[:, 2:5].copy(), a[:, 5].copy(), a[:, 6:8].copy())


def read_split(path: str | Path) -> NavhardSplit:
    """Read the split file's ``reactive_all_mapping`` and log names.

    Raises:
        DataError: unreadable YAML, no mapping, or a malformed group.
    """
    p = Path(path)
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
        groups = tuple(NavhardGroup(str(o), str(pv), tuple((str(a), str(b)) for a, b in pairs))
                       for o, pv, pairs in doc["reactive_all_mapping"])
        logs = tuple(str(x) for x in (doc.get("scene_filter", {}) or {}).get("log_names") or ())
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        raise DataError(f"cannot read the two-stage split ({type(exc).__name__}: {exc})", path=p) from exc
    if not groups:
        raise DataError("the two-stage split has no reactive_all_mapping groups", path=p)
    return NavhardSplit(groups, logs)


# --- synthetic scene -> frames the scoring-scene builder reads ------------------------------------------------


def scoring_frames(scene: SyntheticScene) -> tuple[list[NavsimFrame], int]:
    """The scene as ``NavsimFrame``s: 4 history frames, then 8 future keyframes whose boxes come from the
    extended detections, expressed in the current frame's ego frame (each future frame carries the current
    ego pose, so ``object_timeline`` rotates them back exactly). Returns ``(frames, current index)``."""
    frames = [_navsim_frame(scene, f) for f in scene.frames]
    cur = scene.frames[-1]
    origin = np.asarray(cur.ego_pose, dtype=np.float64)
    for ext, lights, ts in zip(scene.extended_objects, scene.extended_lights, scene.extended_timestamps_us,
                               strict=True):
        local = global_to_local(np.concatenate([ext.center_xyz[:, :2], ext.yaw[:, None]], 1).reshape(-1, 3), origin)
        boxes = np.concatenate([local[:, :2], ext.center_xyz[:, 2:3], ext.size_lwh, local[:, 2:3]], 1)
        c, s = np.cos(-origin[2]), np.sin(-origin[2])
        v = ext.velocity_xy
        vel = np.stack([v[:, 0] * c - v[:, 1] * s, v[:, 0] * s + v[:, 1] * c, np.zeros(len(v))], 1)
        ann = Annotations(boxes=boxes.reshape(-1, 7), names=ext.categories, velocity_3d=vel.reshape(-1, 3),
                          instance_tokens=ext.track_tokens, track_tokens=ext.track_tokens)
        future = SyntheticFrame(token=f"{scene.token}-{ts}", timestamp_us=int(ts), roadblock_ids=cur.roadblock_ids,
                                traffic_lights=lights, annotations=ann, ego_pose=origin, ego_velocity=cur.ego_velocity,
                                ego_acceleration=cur.ego_acceleration, driving_command=cur.driving_command,
                                lidar_path=None, cameras={})
        frames.append(_navsim_frame(scene, future))
    return frames, NUM_HISTORY_FRAMES - 1


def _navsim_frame(scene: SyntheticScene, f: SyntheticFrame) -> NavsimFrame:
    pose = np.asarray(f.ego_pose, dtype=np.float64)
    return NavsimFrame(
        token=f.token, timestamp_us=int(f.timestamp_us), log_name=scene.log_name, scene_token=scene.token,
        map_location=scene.map_name, roadblock_ids=f.roadblock_ids, ego_pose=np.array([pose[0], pose[1],
                                                                                     float(normalize_angle(pose[2]))]),
        ego_translation=np.array([pose[0], pose[1], 0.0]),
        ego_dynamic_state=np.concatenate([f.ego_velocity, f.ego_acceleration]).astype(np.float64),
        driving_command=f.driving_command, traffic_lights=f.traffic_lights, lidar_path=f.lidar_path,
        ego_from_lidar=np.eye(4), cameras=dict(f.cameras), annotations=f.annotations)


# --- synthetic scene -> canonical sample (what a policy sees) -------------------------------------------------


def synthetic_sample(scene: SyntheticScene, sensor_root: str | Path, cameras: Sequence[str] = (),
                     lidar: bool = False) -> Any:
    """The canonical ``Sample`` of a synthetic scene (history poses in the current ego frame, velocity,
    acceleration, command, the current frame's sensors from ``<root>/navhard_two_stage/sensor_blobs``).

    Synthetic scenes have no human future: ``targets.future`` is None.

    Raises:
        DataError: a requested camera or the LiDAR is missing (names the token and file).
    """
    from functools import partial

    from PIL import Image, UnidentifiedImageError

    from adapters.navsim.log_format import relative_poses
    from adapters.navsim.pcd import read_pcd
    from adapters.navsim.reader import LIDAR_CHANNELS, _decode_jpeg
    from harness.types import (
        Camera,
        EgoState,
        Lidar,
        Navigation,
        Observation,
        Sample,
        SampleMeta,
        Source,
        Targets,
    )

    root = Path(sensor_root)
    frames, cur = scoring_frames(scene)
    frames = frames[: cur + 1]
    now = frames[cur]
    rel = relative_poses(frames, cur)
    times = (np.array([f.timestamp_us for f in frames]) - now.timestamp_us) / 1e6
    ego = EgoState(velocity_mps=now.ego_dynamic_state[:2], acceleration_mps2=now.ego_dynamic_state[2:],
                   history_poses=rel, history_times_s=times)
    cams: dict[str, Any] = {}
    for name in cameras:
        rec = now.cameras.get(name)
        if rec is None:
            raise DataError(f"camera {name} is not in the synthetic scene", token=scene.token)
        path = root / rec.data_path
        try:
            with Image.open(path) as im:
                width, height = im.size
        except (OSError, UnidentifiedImageError) as exc:
            raise DataError(f"missing or unreadable image for {name} ({exc})", path=path, token=scene.token) from exc
        cams[name] = Camera(name=name, intrinsics=rec.intrinsics, ego_from_camera=now.ego_from_lidar @ rec.lidar_from_camera,
                            width=width, height=height, distortion=rec.distortion, image_path=str(path),
                            loader=partial(_decode_jpeg, path, scene.token))
    points = None
    if lidar:
        if now.lidar_path is None or not (root / now.lidar_path).is_file():
            raise DataError("missing synthetic LiDAR", token=scene.token)
        pts = read_pcd(root / now.lidar_path).astype(np.float32)
        points = Lidar(points=pts, channels=LIDAR_CHANNELS[: pts.shape[1]], path=str(root / now.lidar_path))
    observation = Observation(cameras=cams, ego=ego, lidar=points,
                              navigation=Navigation(command=now.driving_command,
                                                    source_command=int(now.driving_command)))
    meta = SampleMeta(Source.NAVSIM, SPLIT_NAME, scene.log_name, scene.token, now.timestamp_us, scene.map_name)
    return Sample(meta=meta, observation=observation, targets=Targets(future=None, boxes=None))
