"""Two-stage (navhard) data from the embedded world, written in the navhard layout (:mod:`adapters.navsim.navhard`).

For each chosen original scene (keyframe ``j`` of a test log: the stage-one token; its twin ``prev`` is
keyframe ``j - 1``) the writer makes follow-up pairs that start around the human 4 s endpoint: a rigid
perturbation ``T`` (a lateral offset of the logged pose at keyframe ``j + 8``, a heading offset about it) is
applied to the logged ego poses of keyframes ``j + 4 .. j + 8`` and the logged speed is scaled. Frames
``j + 4 .. j + 7`` are the history of ``prev_2`` (current frame ``j + 7``, 0.5 s before ``now_2``) and
``j + 5 .. j + 8`` that of ``now_2``; both share ``T``. Their boxes are the world's objects re-expressed in the
perturbed ego frame, their future (``extended_*``, keyframes +0.5 .. +4 s) is the world's own future in the
map frame, and each frame's sensors are the world re-rendered with the ego at the perturbed pose.

The original logs themselves are the world's ``navsim_logs/test`` (written by :mod:`adapters.navsim.writer`).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from adapters.navsim.log_format import CameraRecord
from adapters.navsim.navhard import (
    SPLIT_NAME,
    ExtendedObjects,
    NavhardGroup,
    NavhardSplit,
    SyntheticFrame,
    SyntheticScene,
    split_yaml,
    write_attributes_csv,
    write_synthetic_scene,
)
from adapters.navsim.pcd import write_pcd
from adapters.navsim.writer import ANNOTATION_RADIUS_M, KEYFRAME_STRIDE, _annotations, hex_token
from harness.atomic import atomic_write_bytes
from harness.geometry import quaternion_to_matrix, se2_compose, se2_inverse, se3_from_rt, yaw_to_quaternion
from harness.safe_pickle import dumps_compatible
from harness.world.build import World
from harness.world.model import WorldFrame, WorldLog
from harness.world.rig import NUPLAN_LIDAR, nuplan_cameras
from harness.world.sensors import SceneRenderer

#: Keyframes an original scene needs: 3 history before ``prev`` and 16 after ``orig`` (the follow-ups'
#: 4 s future starts at keyframe ``j + 8``).
FIRST_ORIG_KEYFRAME = 4
FUTURE_KEYFRAMES_NEEDED = 16


@dataclass(frozen=True)
class NavhardOptions:
    """How many scenes, how perturbed, and whether sensors are rendered.

    Args:
        groups_per_log: original scenes per test log (spread evenly over the usable keyframes).
        pairs_per_group: follow-up pairs per group; a sequence gives the count of each group in turn.
        lateral_offsets_m / heading_offsets_rad / speed_factors: the perturbations drawn from.
        write_sensors: render cameras and LiDAR for every synthetic frame.
        camera_scale: image scale relative to nuPlan's 1920 x 1080.
        seed: seeds the perturbation draws.
    """

    groups_per_log: int = 3
    pairs_per_group: int | tuple[int, ...] = 5
    lateral_offsets_m: tuple[float, ...] = (-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5)
    heading_offsets_rad: tuple[float, ...] = (-0.1, -0.05, 0.0, 0.05, 0.1)
    speed_factors: tuple[float, ...] = (0.8, 0.9, 1.0, 1.1, 1.2)
    write_sensors: bool = True
    camera_scale: float = 0.1
    jpeg_quality: int = 85
    seed: int = 0


def synthetic_token(*parts: object) -> str:
    """A deterministic 17-hex-character token (NAVSIM marks synthetic scenes by this length)."""
    return hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=9).hexdigest()[:17]


def original_token(log: WorldLog, keyframe: int) -> str:
    """The stage-one token of a keyframe, as :mod:`adapters.navsim.writer` names it."""
    return hex_token(log.name, "lidar_pc", keyframe * KEYFRAME_STRIDE)


def usable_keyframes(log: WorldLog) -> range:
    n_kf = len(range(0, len(log.frames), KEYFRAME_STRIDE))
    return range(FIRST_ORIG_KEYFRAME, max(FIRST_ORIG_KEYFRAME, n_kf - FUTURE_KEYFRAMES_NEEDED))


def write_navhard(world: World, root: str | Path, options: NavhardOptions = NavhardOptions()) -> NavhardSplit:
    """Write ``<root>/navhard_two_stage/`` for the world's test logs; returns the split.

    The original logs must already be under ``<root>/navsim_logs/test`` (the embedded world's build).

    Raises:
        ValueError: no test log is long enough for one group (13 + 8 keyframes: 10.5 s).
    """
    out = Path(root) / SPLIT_NAME
    rng = np.random.default_rng(options.seed)
    counts = (options.pairs_per_group if isinstance(options.pairs_per_group, tuple)
              else (options.pairs_per_group,))
    logs = {lg.name: lg for lg in world.logs}
    groups: list[NavhardGroup] = []
    attributes: list[dict[str, object]] = []
    synthetic: list[str] = []
    used_logs: list[str] = []
    cams = nuplan_cameras(options.camera_scale)
    for name in sorted(world.splits.get("test", ())):
        log = logs[name]
        usable = usable_keyframes(log)
        if len(usable) == 0:
            continue
        picks = sorted({usable[int(i)] for i in np.linspace(0, len(usable) - 1, options.groups_per_log)})
        renderer = SceneRenderer(log.map, cams, NUPLAN_LIDAR, seed=log.seed) if options.write_sensors else None
        meta_frames: list[dict[str, object]] = []
        for j in picks:
            n_pairs = counts[len(groups) % len(counts)]
            pairs = []
            for k in range(n_pairs):
                lat = float(rng.choice(options.lateral_offsets_m))
                dh = float(rng.choice(options.heading_offsets_rad))
                speed = float(rng.choice(options.speed_factors))
                prev2, now2, frames = _pair(log, j, k, lat, dh, speed, out, renderer, cams, options)
                for scene in (prev2, now2):
                    write_synthetic_scene(out / "synthetic_scene_pickles" / f"{scene.token}.pkl", scene)
                    synthetic.append(scene.token)
                    attributes.append({"token": scene.token, "log_name": log.name,
                                       "corresponding_original_scene": scene.corresponding_original_scene,
                                       "corresponding_original_initial_token":
                                           scene.corresponding_original_initial_token,
                                       "lateral_offset_m": lat, "heading_offset_rad": dh, "speed_factor": speed,
                                       "stage": "now" if scene is now2 else "prev"})
                meta_frames += frames
                pairs.append((now2.token, prev2.token))
            groups.append(NavhardGroup(original_token(log, j), original_token(log, j - 1), tuple(pairs)))
        atomic_write_bytes(out / "openscene_meta_datas" / f"{log.name}.pkl", dumps_compatible(meta_frames))
        used_logs.append(log.name)
    if not groups:
        raise ValueError("no test log is long enough for a two-stage group (needs 21 keyframes, 10.5 s)")
    split = NavhardSplit(tuple(groups), tuple(used_logs))
    write_attributes_csv(out / "synthetic_scenes_attributes.csv", attributes)
    atomic_write_bytes(out / f"{SPLIT_NAME}.yaml", split_yaml(split, synthetic).encode())
    return split


def _pair(log: WorldLog, j: int, k: int, lateral: float, dheading: float, speed: float, out: Path,
          renderer: SceneRenderer | None, cams: Sequence, options: NavhardOptions
          ) -> tuple[SyntheticScene, SyntheticScene, list[dict[str, object]]]:
    """The (prev_2, now_2) scenes of one perturbation and their 5 frames as OpenScene frame dicts."""
    kfs = list(range(j + 4, j + 9))  # prev_2's history is kfs[0:4], now_2's kfs[1:5]
    now_pose = log.frames[(j + 8) * KEYFRAME_STRIDE].ego_pose
    # T maps a logged pose to its perturbed one: the pose at j + 8 moved `lateral` to its left and turned.
    target = se2_compose(now_pose, np.array([0.0, lateral, dheading]))
    shift = se2_compose(target, se2_inverse(now_pose))
    scene_id = synthetic_token(log.name, "pair", j, k)
    tokens = [synthetic_token(log.name, j, k, f) for f in range(len(kfs))]
    frames: list[SyntheticFrame] = []
    metas: list[dict[str, object]] = []
    for f, kf in enumerate(kfs):
        wf = log.frames[kf * KEYFRAME_STRIDE]
        pose = se2_compose(shift, wf.ego_pose)
        frames.append(_frame(log, wf, kf, pose, speed, tokens[f], out, renderer, cams, options))
        metas.append(_meta_frame(log, frames[-1], scene_id, f))
    scenes = []
    for offset, cur in ((0, j + 7), (1, j + 8)):
        hist = tuple(frames[offset : offset + 4])
        ext_steps = [(cur + i) * KEYFRAME_STRIDE for i in range(1, 9)]
        cur_pose = hist[-1].ego_pose
        ext = tuple(_extended(log.frames[s], cur_pose) for s in ext_steps)
        scenes.append(SyntheticScene(
            token=hist[-1].token, log_name=log.name, map_name=log.map.location,
            corresponding_original_scene=original_token(log, cur),
            corresponding_original_initial_token=original_token(log, cur - 8),
            frames=hist, extended_objects=ext,
            extended_lights=tuple(tuple((int(c), bool(r)) for c, r in log.frames[s].traffic_lights)
                                  for s in ext_steps),
            extended_timestamps_us=tuple(int(log.frames[s].timestamp_us) for s in ext_steps)))
    return scenes[0], scenes[1], metas


def _frame(log: WorldLog, wf: WorldFrame, kf: int, pose: np.ndarray, speed: float, token: str, out: Path,
           renderer: SceneRenderer | None, cams: Sequence, options: NavhardOptions) -> SyntheticFrame:
    from adapters.navsim.log_format import Annotations

    q = yaw_to_quaternion(float(pose[2]))
    global_from_ego = se3_from_rt(quaternion_to_matrix(q), np.array([pose[0], pose[1], 0.0]))
    anns = _annotations(wf, global_from_ego, np.eye(4), log.name, kf * KEYFRAME_STRIDE)
    annotations = Annotations(boxes=np.asarray(anns["gt_boxes"], dtype=np.float64).reshape(-1, 7),
                              names=tuple(str(n) for n in anns["gt_names"]),
                              velocity_3d=np.asarray(anns["gt_velocity_3d"], dtype=np.float64).reshape(-1, 3),
                              instance_tokens=tuple(anns["instance_tokens"]),
                              track_tokens=tuple(anns["track_tokens"]))
    cameras: dict[str, CameraRecord] = {}
    lidar_path = None
    if renderer is not None:
        images = renderer.render_cameras(pose, wf.objects)
        for cam in cams:
            rel = f"{log.name}/{cam.name}/{token}.jpg"
            buf = io.BytesIO()
            Image.fromarray(images[cam.name]).save(buf, format="JPEG", quality=options.jpeg_quality)
            atomic_write_bytes(out / "sensor_blobs" / rel, buf.getvalue())
            cameras[cam.name] = CameraRecord(cam.name, rel, np.asarray(cam.lidar_from_camera, dtype=np.float64),
                                             np.asarray(cam.intrinsics, dtype=np.float64),
                                             np.asarray(cam.distortion, dtype=np.float64))
        lidar_path = f"{log.name}/MergedPointCloud/{token}.pcd"
        write_pcd(out / "sensor_blobs" / lidar_path, renderer.cast_lidar(pose, wf.objects))
    return SyntheticFrame(
        token=token, timestamp_us=int(wf.timestamp_us), roadblock_ids=tuple(str(r) for r in wf.route_roadblock_ids),
        traffic_lights=tuple((int(c), bool(r)) for c, r in wf.traffic_lights), annotations=annotations,
        ego_pose=np.asarray(pose, dtype=np.float64), ego_velocity=np.asarray(wf.ego_velocity_mps) * speed,
        ego_acceleration=np.asarray(wf.ego_acceleration_mps2, dtype=np.float64), driving_command=wf.driving_command,
        lidar_path=lidar_path, cameras=cameras)


def _extended(wf: WorldFrame, ego_pose: np.ndarray) -> ExtendedObjects:
    obj = wf.objects
    keep = np.flatnonzero(np.linalg.norm(obj.center_xyz[:, :2] - ego_pose[:2], axis=1) <= ANNOTATION_RADIUS_M)
    agent = np.isin(np.array(obj.categories, dtype=object)[keep], ("vehicle", "pedestrian", "bicycle"))
    vel = np.where(agent[:, None], obj.velocity_xy_mps[keep], 0.0)
    return ExtendedObjects(tuple(obj.track_tokens[i] for i in keep), tuple(obj.categories[i] for i in keep),
                           obj.center_xyz[keep].copy(), obj.size_lwh[keep].copy(), obj.yaw_rad[keep].copy(), vel)


def _meta_frame(log: WorldLog, f: SyntheticFrame, scene_id: str, idx: int) -> dict[str, object]:
    """The frame as an OpenScene frame dict (the keys ``from_scene_dict_list_private`` reads, plus ``anns``)."""
    q = yaw_to_quaternion(float(f.ego_pose[2]))
    return {
        "token": f.token, "frame_idx": idx, "timestamp": int(f.timestamp_us), "log_name": log.name,
        "scene_token": scene_id, "map_location": log.map.location, "roadblock_ids": list(f.roadblock_ids),
        "ego2global_translation": np.array([f.ego_pose[0], f.ego_pose[1], 0.0]),
        "ego2global_rotation": np.asarray(q, dtype=np.float64),
        "ego_dynamic_state": [float(v) for v in (*f.ego_velocity, *f.ego_acceleration)],
        "traffic_lights": [(int(c), bool(r)) for c, r in f.traffic_lights],
        "driving_command": f.driving_command.one_hot().astype(int),
        "lidar_path": f.lidar_path,
        "cams": {name: {"data_path": rec.data_path, "sensor2lidar_rotation": rec.lidar_from_camera[:3, :3].copy(),
                        "sensor2lidar_translation": rec.lidar_from_camera[:3, 3].copy(),
                        "cam_intrinsic": rec.intrinsics.copy(), "distortion": rec.distortion.copy()}
                 for name, rec in f.cameras.items()},
        "anns": {"gt_boxes": f.annotations.boxes.copy(), "gt_names": np.array(f.annotations.names, dtype=str),
                 "gt_velocity_3d": f.annotations.velocity_3d.copy(),
                 "instance_tokens": list(f.annotations.instance_tokens),
                 "track_tokens": list(f.annotations.track_tokens)},
    }


__all__ = ["NavhardOptions", "original_token", "synthetic_token", "usable_keyframes", "write_navhard"]
