"""Write the embedded world in OpenScene / NAVSIM's on-disk format (the reader's mirror image).

Each 2 Hz keyframe of a world log becomes one frame dict with every key OpenScene's
``create_openscene_metadata.py`` writes (specs/navsim.md §8.1), its 8 camera JPEGs and a binary PCD of the
merged LiDAR cloud. Files are written to temporary names and renamed into place, so an interrupted build
never leaves a half-written pickle that looks complete.

Frames follow real OpenScene data: the ego pose (and so the ego frame's origin) is the rear-axle centre at
axle height; ``lidar2ego`` is the identity, so the merged cloud and ``sensor2lidar`` are in that ego frame
(nuplan-devkit #410, navsim #71). The world's ground plane is z = 0 and its renderer's "lidar frame" is
exactly this axle-height frame, so the writer stores the renderer's points as they come.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from adapters.navsim.pcd import write_pcd
from harness.atomic import atomic_write_bytes
from harness.geometry import (
    matrix_to_quaternion,
    quaternion_to_matrix,
    se3_from_rt,
    se3_inverse,
    yaw_to_quaternion,
)
from harness.safe_pickle import dumps_compatible
from harness.world.model import WorldFrame, WorldLog
from harness.world.rig import NUPLAN_LIDAR, CameraSpec, LidarSpec, nuplan_cameras
from harness.world.sensors import SceneRenderer

#: 10 Hz world steps per 2 Hz OpenScene keyframe.
KEYFRAME_STRIDE = 5
#: Objects farther than this from the ego are not annotated (nuPlan labels what its lidar sees).
ANNOTATION_RADIUS_M = 100.0
VEHICLE_NAME = "veh-35"


def hex_token(*parts: object) -> str:
    """A deterministic 16-hex-character token (nuPlan's token length) from ``parts``."""
    return hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=8).hexdigest()


@dataclass(frozen=True)
class NavsimWriteOptions:
    """How sensors are written: camera scale (1.0 = nuPlan's 1920x1080) and JPEG quality."""

    camera_scale: float = 0.25
    jpeg_quality: int = 85
    write_sensors: bool = True


def keyframe_indices(log: WorldLog) -> range:
    return range(0, len(log.frames), KEYFRAME_STRIDE)


def write_navsim_log(
    log: WorldLog,
    data_root: str | Path,
    split: str,
    *,
    options: NavsimWriteOptions = NavsimWriteOptions(),
    cameras: Sequence[CameraSpec] | None = None,
    lidar: LidarSpec = NUPLAN_LIDAR,
    renderer: SceneRenderer | None = None,
) -> Path:
    """Write one world log as ``navsim_logs/<split>/<log>.pkl`` plus its sensor blobs; returns the pickle."""
    root = Path(data_root)
    # The renderer's lidar frame sits at axle height above the ego's ground point: that is nuPlan's ego frame.
    axle_height_m = float(np.asarray(lidar.ego_from_lidar)[2, 3])
    cams = tuple(cameras) if cameras is not None else nuplan_cameras(options.camera_scale)
    if renderer is None and options.write_sensors:
        renderer = SceneRenderer(log.map, cams, lidar, seed=log.seed)
    blob_root = root / "sensor_blobs" / split
    keys = list(keyframe_indices(log))
    tokens = [hex_token(log.name, "lidar_pc", k) for k in keys]
    log_token = hex_token(log.name, "log")
    ego_from_lidar = np.eye(4)
    l2e_q = matrix_to_quaternion(ego_from_lidar[:3, :3])
    infos = []
    for j, k in enumerate(keys):
        frame = log.frames[k]
        info = _frame_dict(log, frame, k, tokens, j, log_token, cams, ego_from_lidar, l2e_q, axle_height_m)
        if options.write_sensors and renderer is not None:
            images = renderer.render_cameras(frame.ego_pose, frame.objects)
            for cam in cams:
                buf = io.BytesIO()
                Image.fromarray(images[cam.name]).save(buf, format="JPEG", quality=options.jpeg_quality)
                atomic_write_bytes(blob_root / info["cams"][cam.name]["data_path"], buf.getvalue())
            points = renderer.cast_lidar(frame.ego_pose, frame.objects)
            write_pcd(blob_root / info["lidar_path"], points)
        infos.append(info)
    out = root / "navsim_logs" / split / f"{log.name}.pkl"
    atomic_write_bytes(out, dumps_compatible(infos))
    return out


def _frame_dict(
    log: WorldLog,
    frame: WorldFrame,
    step: int,
    tokens: Sequence[str],
    j: int,
    log_token: str,
    cams: Sequence[CameraSpec],
    ego_from_lidar: np.ndarray,
    l2e_q: np.ndarray,
    axle_height_m: float,
) -> dict[str, object]:
    x, y, yaw = (float(v) for v in frame.ego_pose)
    q = yaw_to_quaternion(yaw)
    vx, vy = (float(v) for v in frame.ego_velocity_mps)
    ax, ay = (float(v) for v in frame.ego_acceleration_mps2)
    yaw_rate = _yaw_rate(log, step)
    can_bus = np.array([x, y, axle_height_m, *q, ax, ay, 0.0, vx, vy, 0.0, 0.0, 0.0, yaw_rate, 0.0, 0.0])
    global_from_ego = se3_from_rt(quaternion_to_matrix(q), can_bus[:3])
    token = tokens[j]
    scene_idx = j // 40  # nuPlan scenes are ~20 s chunks of a log
    cam_dict = {}
    for cam in cams:
        lfc = np.asarray(cam.lidar_from_camera, dtype=np.float64)
        cam_dict[cam.name] = {
            "data_path": f"{log.name}/{cam.name}/{hex_token(log.name, cam.name, step)}.jpg",
            "sensor2lidar_rotation": lfc[:3, :3].copy(),
            "sensor2lidar_translation": lfc[:3, 3].copy(),
            "cam_intrinsic": np.asarray(cam.intrinsics, dtype=np.float64).copy(),
            "distortion": np.asarray(cam.distortion, dtype=np.float64).copy(),
        }
    info: dict[str, object] = {
        "token": token,
        "frame_idx": j % 40,
        "timestamp": int(frame.timestamp_us),
        "log_name": log.name,
        "log_token": log_token,
        "scene_name": f"log-0001-scene-{scene_idx:04d}",
        "scene_token": hex_token(log.name, "scene", scene_idx),
        "map_location": log.map.location,
        "roadblock_ids": [str(r) for r in frame.route_roadblock_ids],
        "vehicle_name": VEHICLE_NAME,
        "can_bus": can_bus,
        "lidar_path": f"{log.name}/MergedPointCloud/{token}.pcd",
        "lidar2ego_translation": ego_from_lidar[:3, 3].copy(),
        "lidar2ego_rotation": [float(v) for v in l2e_q],
        "ego2global_translation": can_bus[:3],
        "ego2global_rotation": can_bus[3:7],
        "ego_dynamic_state": [vx, vy, ax, ay],
        "traffic_lights": [(int(c), bool(r)) for c, r in frame.traffic_lights],
        "driving_command": frame.driving_command.one_hot().astype(int),
        "cams": cam_dict,
        "sample_prev": tokens[j - 1] if j > 0 else None,
        "sample_next": tokens[j + 1] if j + 1 < len(tokens) else None,
        "ego2global": global_from_ego,
        "lidar2ego": ego_from_lidar.copy(),
        "lidar2global": global_from_ego @ ego_from_lidar,
        "anns": _annotations(frame, global_from_ego, ego_from_lidar, log.name, step),
    }
    return info


def _yaw_rate(log: WorldLog, step: int) -> float:
    lo, hi = max(step - 1, 0), min(step + 1, len(log.frames) - 1)
    if hi == lo:
        return 0.0
    d = float(log.frames[hi].ego_pose[2] - log.frames[lo].ego_pose[2])
    d = (d + np.pi) % (2 * np.pi) - np.pi
    return d / ((hi - lo) * log.frame_interval_s)


def _annotations(
    frame: WorldFrame, global_from_ego: np.ndarray, ego_from_lidar: np.ndarray, log_name: str, step: int
) -> dict[str, object]:
    obj = frame.objects
    ego_xy = global_from_ego[:2, 3]
    keep = np.nonzero(np.linalg.norm(obj.center_xyz[:, :2] - ego_xy, axis=1) <= ANNOTATION_RADIUS_M)[0]
    ego_from_global = se3_inverse(global_from_ego)
    # Box centres and yaws into the ego frame; yaw is left unnormalised, as OpenScene writes it.
    locs = obj.center_xyz[keep] @ ego_from_global[:3, :3].T + ego_from_global[:3, 3]
    ego_yaw = float(np.arctan2(global_from_ego[1, 0], global_from_ego[0, 0]))
    rots = obj.yaw_rad[keep] - ego_yaw
    boxes = np.concatenate([locs, obj.size_lwh[keep], rots[:, None]], axis=1)
    # OpenScene rotates global velocities by the inverse ego->global and lidar->ego rotations.
    v3 = np.concatenate([obj.velocity_xy_mps[keep], np.zeros((len(keep), 1))], axis=1)
    v3 = v3 @ np.linalg.inv(global_from_ego[:3, :3]).T @ np.linalg.inv(ego_from_lidar[:3, :3]).T
    tracks = [obj.track_tokens[i] for i in keep]
    return {
        "gt_boxes": boxes.reshape(-1, 7),
        "gt_names": np.array([obj.categories[i] for i in keep], dtype=str),
        "gt_velocity_3d": v3.reshape(-1, 3),
        "instance_tokens": [hex_token(log_name, t, step) for t in tracks],
        "track_tokens": tracks,
    }
