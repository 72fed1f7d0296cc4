"""Write the embedded world in LEAD's CARLA route-folder format (the reader's mirror image).

Each world log becomes one route ``<root>/data/<scenario>/<town>_Rep0_<log>/`` with the files LEAD's expert
writes (see :mod:`adapters.carla.format`), for any rig of :mod:`adapters.carla.rigs`, plus ``rig.json``.
``<root>/splits/<split>.txt`` lists the routes of each world split (lead-bench's addition; LEAD has none).

Timing: the world runs at 10 Hz and CARLA at 20 Hz, so ego and objects are linearly interpolated to 20 Hz
ticks (yaws unwrapped); sensor frames are every 5th tick (4 Hz) as in LEAD. The labels are what the world
knows exactly: boxes (centre, size, yaw, velocity, 2 s futures), the hdmap from the map raster, per-pixel
image semantics and depth from the same rays as the RGB images, LiDAR point counts per box.

Frames: the world's ego frame has its origin on the ground under the rear axle; the CARLA vehicle origin is
put 1.389 m ahead of it (``CARLA_REAR_AXLE``), so the reader's fixed offset recovers the rear axle, and the
canonical rear-axle origin is 0.36 m above the ground. CARLA's world frame is the map frame with y mirrored.

Simplifications (documented, deliberate): one LiDAR scanner (32 beams, CARLA mount (0, 0, 2.5) m) and
``lidar_sweeps`` accumulated world frames instead of 5 ticks of two 64-beam sensors; ground returns dropped by
height (the world's ground is the plane z = 0); radar is idealised (one return per box centre inside a
sensor's 90 deg field of view within 100 m); no traffic-light or stop-sign boxes; ``visible_pixels`` = -1
(unknown, which LEAD's filters treat as visible); many scenario-specific meta keys are absent.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from adapters.carla import format as fmt
from adapters.carla.frames import CARLA_REAR_AXLE_M, canonical_points_to_carla
from adapters.carla.rigs import RIG_FILE, Rig, get_rig, rig_file_bytes
from adapters.carla.timeline import TICK_S, Timeline
from harness.atomic import atomic_write_bytes, atomic_write_text
from harness.geometry import normalize_angle, se3_from_rt
from harness.world.model import ObjectStates, WorldLog
from harness.world.render_camera import CameraLabelRenderer
from harness.world.rig import CameraSpec, LidarScanner, LidarSpec
from harness.world.sensors import Material, SceneRenderer, boxes_in_ego

F64 = npt.NDArray[np.float64]
#: CARLA vehicle origin ahead of the world's rear axle (m).
CENTRE_AHEAD_M = -float(CARLA_REAR_AXLE_M[0])
AXLE_HEIGHT_M = float(CARLA_REAR_AXLE_M[2])
SCENARIO = "noScenarios"
#: World category -> (LEAD box class, CARLA type_id); the reader maps these back (adapters.carla.labels).
CATEGORY_TO_LEAD = {
    "vehicle": ("car", "vehicle.lincoln.mkz_2020"), "bicycle": ("car", "vehicle.bh.crossbike"),
    "pedestrian": ("walker", "walker.pedestrian.0001"), "traffic_cone": ("static", "static.prop.constructioncone"),
    "barrier": ("static", "static.prop.streetbarrier"), "czone_sign": ("static", "static.prop.trafficwarning"),
    "generic_object": ("static", "static.prop.box01"),
}
#: TransFuser image classes per world category (``TransfuserSemanticSegmentationClass``).
CATEGORY_SEMANTICS = {"vehicle": 1, "pedestrian": 4, "bicycle": 9, "traffic_cone": 6, "barrier": 6,
                      "czone_sign": 6, "generic_object": 6}
#: Ground material -> image class (grass/walkway unlabeled, road/car park road, paint road line).
MATERIAL_SEMANTICS = np.zeros(len(Material), dtype=np.uint8)
MATERIAL_SEMANTICS[[Material.ROAD, Material.CARPARK]] = 2
MATERIAL_SEMANTICS[[Material.MARKING_WHITE, Material.MARKING_YELLOW]] = 5
#: Ground material -> ChauffeurNet hdmap class, and the priority that decides a pixel with mixed sub-samples.
MATERIAL_HDMAP = np.zeros(len(Material), dtype=np.uint8)
MATERIAL_HDMAP[[Material.ROAD, Material.CARPARK]] = 1
MATERIAL_HDMAP[Material.WALKWAY] = 2
MATERIAL_HDMAP[[Material.MARKING_WHITE, Material.MARKING_YELLOW]] = 3
_HDMAP_RANK = np.array([0, 2, 1, 3, 3, 0, 0, 0, 0])
#: LEAD's radar mounts (``config_base.radar_calibration``): CARLA (x, y, z) and yaw (deg, clockwise).
RADAR_MOUNTS = (((2.6, 0.0, 0.6), -45.0), ((2.6, 0.0, 0.6), 45.0), ((-2.6, 0.0, 0.6), 135.0), ((-2.6, 0.0, 0.6), 225.0))
RADAR_RANGE_M = 100.0


@dataclass(frozen=True)
class CarlaWriteOptions:
    """How a route is written.

    Args:
        rig: a name of :data:`adapters.carla.rigs.RIG_NAMES`.
        camera_scale: resize factor of the rig's images (1.0 = LEAD's sizes).
        jpeg_quality: RGB JPEG quality (LEAD: 30 for its leaderboard data).
        perturbed: also write the ``*_perturbated`` copies.
        max_frames: write at most this many 4 Hz frames per route (None: all).
        frame_stride: write every ``frame_stride``-th 4 Hz frame (1: all, as LEAD). Files keep LEAD's frame
            numbers (``0000``, ``0010``, ...), so tokens and times stay those of the full route; each frame's
            meta carries its own 20 Hz past and future, so a strided route reads like a full one.
        lidar_sweeps: world frames (10 Hz) accumulated into each ``.laz``; ``time`` = age in 20 Hz ticks.
        annotation_radius_m: boxes farther than this from the ego are not written (LEAD's ``bb_save_radius``).
    """

    rig: str = "carla_lb_3cam"
    camera_scale: float = 1.0
    jpeg_quality: int = 30
    perturbed: bool = True
    max_frames: int | None = None
    lidar_sweeps: int = 1
    annotation_radius_m: float = 64.0
    frame_stride: int = 1

    def __post_init__(self) -> None:
        if not 0.0 < self.camera_scale <= 1.0:
            raise ValueError(f"CarlaWriteOptions.camera_scale must be in (0, 1], got {self.camera_scale}")
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError(f"CarlaWriteOptions.max_frames must be >= 1 or None, got {self.max_frames}")
        if self.frame_stride < 1 or self.lidar_sweeps < 1:
            raise ValueError(f"CarlaWriteOptions.frame_stride and lidar_sweeps must be >= 1, got {self}")


def route_name(log: WorldLog) -> str:
    return f"{log.map.location}_Rep0_{log.name}"


def carla_lidar_spec() -> LidarSpec:
    """One 32-beam scanner at LEAD's mount (CARLA (0, 0, 2.5) m); the lidar frame is the canonical frame."""
    scanner = LidarScanner(0, "top", (CENTRE_AHEAD_M, 0.0, 2.5 - AXLE_HEIGHT_M), tuple(float(v) for v in np.linspace(-30, 10, 32)),
                           1024, max_range_m=85.0)
    return LidarSpec(ego_from_lidar=se3_from_rt(np.eye(3), (0.0, 0.0, AXLE_HEIGHT_M)), scanners=(scanner,),
                     range_noise_m=0.02, dropout=0.0)


# --- CARLA frames -------------------------------------------------------------------------------------------


def _centre_pose(rear_pose: F64) -> F64:
    """World-frame rear-axle poses (N, 3) -> CARLA vehicle-origin poses in the world frame."""
    p = np.atleast_2d(rear_pose)
    c, s = np.cos(p[:, 2]), np.sin(p[:, 2])
    return np.column_stack([p[:, 0] + CENTRE_AHEAD_M * c, p[:, 1] + CENTRE_AHEAD_M * s, p[:, 2]])


def _carla_world(pose_world: F64) -> F64:
    """World (x, y, yaw) -> CARLA world (x, -y, -yaw)."""
    p = np.atleast_2d(pose_world)
    return np.column_stack([p[:, 0], -p[:, 1], -p[:, 2]])


def _carla_matrix(x: float, y: float, z: float, yaw: float) -> F64:
    """CARLA's ``Transform.get_matrix()`` for a yaw-only transform (CARLA world coordinates)."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0, x], [s, c, 0.0, y], [0.0, 0.0, 1.0, z], [0.0, 0.0, 0.0, 1.0]])


def _to_carla_ego(xy_world: F64, centre_world: F64) -> F64:
    """World-frame (N, 2) points -> the CARLA ego frame of a vehicle whose CARLA origin is ``centre_world``."""
    d = np.atleast_2d(xy_world) - centre_world[:2]
    c, s = np.cos(centre_world[2]), np.sin(centre_world[2])
    return np.column_stack([c * d[:, 0] + s * d[:, 1], -(-s * d[:, 0] + c * d[:, 1])])


def _perturbation(log: WorldLog, frame: int) -> tuple[float, float]:
    """Deterministic per-frame rig perturbation like LEAD's: |t| in [0.1, 1.0] m, |r| in [5, 12.5] deg."""
    rng = np.random.default_rng(zlib.crc32(f"{log.name}/{log.seed}/{frame}".encode()))
    t = rng.uniform(0.1, 1.0) * rng.choice((-1.0, 1.0))
    r = rng.uniform(5.0, 12.5) * rng.choice((-1.0, 1.0))
    return float(t), float(r)


def _perturbed_centre(centre: F64, t_m: float, r_deg: float) -> F64:
    """The perturbed rig's CARLA origin in the world frame: ``t`` metres to the right, yawed ``r`` clockwise."""
    c, s = np.cos(centre[2]), np.sin(centre[2])
    return np.array([centre[0] + t_m * s, centre[1] - t_m * c, centre[2] - np.deg2rad(r_deg)])


def _rear_from_centre(centre: F64) -> F64:
    c, s = np.cos(centre[2]), np.sin(centre[2])
    return np.array([centre[0] - CENTRE_AHEAD_M * c, centre[1] - CENTRE_AHEAD_M * s, centre[2]])


@dataclass
class _FrameSensors:
    rgb: np.ndarray
    semantics: np.ndarray
    depth: np.ndarray
    hdmap: np.ndarray
    radar: tuple[np.ndarray, ...]


class _RouteRenderer:
    def __init__(self, log: WorldLog, rig: Rig) -> None:
        specs = [CameraSpec(c.name, c.width, c.height, c.intrinsics, np.zeros(5), c.ego_from_camera)
                 for c in rig.cameras]
        self.rig = rig
        self.scene = SceneRenderer(log.map, specs, carla_lidar_spec(), seed=log.seed)
        self.labels = {n: CameraLabelRenderer(cam, MATERIAL_SEMANTICS) for n, cam in self.scene.cameras.items()}
        # hdmap sample points: 4 x 4 per 0.5 m pixel, CARLA ego frame -> world ego frame (rear-axle origin).
        n, res = fmt.HDMAP_SIZE_PX, 1.0 / fmt.HDMAP_PX_PER_M
        sub = (np.arange(4) + 0.5) / 4.0
        g = -fmt.HDMAP_SIZE_PX * res / 2 + (np.arange(n)[:, None] + sub[None, :]).ravel() * res
        y_c, x_c = np.meshgrid(g, g, indexing="ij")  # rows = CARLA y, columns = CARLA x
        self._hd_pts = np.column_stack([x_c.ravel() + CENTRE_AHEAD_M, -y_c.ravel()]).astype(np.float32)

    def sensors(self, centre: F64, objects: ObjectStates, box_classes: np.ndarray) -> _FrameSensors:
        rear = _rear_from_centre(centre)
        boxes = boxes_in_ego(rear, objects)
        images = self.scene.render_cameras(rear, objects)
        sem, dep = [], []
        for name in (c.name for c in self.rig.cameras):
            s, d = self.labels[name].render(rear, boxes, box_classes)
            sem.append(s)
            dep.append(d)
        mats = self.scene.texture.materials_at(rear, self._hd_pts)
        n = fmt.HDMAP_SIZE_PX
        cls = MATERIAL_HDMAP[mats].reshape(n, 4, n, 4)
        rank = _HDMAP_RANK[cls]
        best = rank.reshape(n, 4, n, 4).transpose(0, 2, 1, 3).reshape(n, n, 16).argmax(axis=2)
        hdmap = cls.transpose(0, 2, 1, 3).reshape(n, n, 16)[np.arange(n)[:, None], np.arange(n)[None, :], best]
        return _FrameSensors(np.concatenate([images[c.name] for c in self.rig.cameras], axis=1),
                             np.concatenate(sem, axis=1), np.concatenate(dep, axis=1), hdmap.astype(np.uint8),
                             _radar(centre, objects))

    def lidar(self, rear: F64, objects: ObjectStates) -> F64:
        """One sweep in the canonical frame of ``rear`` (axle-height origin)."""
        return self.scene.cast_lidar(rear, objects)[:, :3].astype(np.float64)


def _radar(centre: F64, objects: ObjectStates) -> tuple[np.ndarray, ...]:
    """Idealised returns per LEAD radar: box centres in its 90 deg FOV within range (CARLA ego frame)."""
    if len(objects) == 0:
        return tuple(np.zeros((0, 4)) for _ in RADAR_MOUNTS)
    xy = _to_carla_ego(objects.center_xyz[:, :2], centre)
    c, s = np.cos(centre[2]), np.sin(centre[2])
    v = objects.velocity_xy_mps
    v_c = np.column_stack([c * v[:, 0] + s * v[:, 1], s * v[:, 0] - c * v[:, 1]])
    out = []
    for (mx, my, mz), yaw_deg in RADAR_MOUNTS:
        rel = xy - np.array([mx, my])
        rng = np.linalg.norm(rel, axis=1)
        bearing = normalize_angle(np.arctan2(rel[:, 1], rel[:, 0]) - np.deg2rad(yaw_deg))
        keep = (rng < RADAR_RANGE_M) & (np.abs(bearing) <= np.pi / 4) & (rng > 0.5)
        radial = np.einsum("ij,ij->i", v_c[keep], rel[keep] / rng[keep, None])
        out.append(np.column_stack([xy[keep], np.full(keep.sum(), mz), radial]))
    return tuple(out)


def _points_in_boxes(points: F64, centers: F64, size: F64, yaw: F64) -> np.ndarray:
    """Number of points (N, 3) inside each yaw-only box (M,); all in one frame."""
    if len(points) == 0 or len(centers) == 0:
        return np.zeros(len(centers), dtype=np.int64)
    d = points[None, :, :] - centers[:, None, :]
    c, s = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
    lx, ly = c * d[..., 0] + s * d[..., 1], -s * d[..., 0] + c * d[..., 1]
    h = size[:, None, :] / 2
    inside = (np.abs(lx) <= h[..., 0]) & (np.abs(ly) <= h[..., 1]) & (np.abs(d[..., 2]) <= h[..., 2])
    return inside.sum(axis=1)


def _track_id(token: str) -> int:
    return int(token[:8], 16) & 0x7FFFFFFF


def write_carla_route(log: WorldLog, root: str | Path, options: CarlaWriteOptions = CarlaWriteOptions(),
                      *, scenario: str = SCENARIO) -> Path:
    """Write one world log as a LEAD route folder; returns the route directory."""
    rig = get_rig(options.rig)
    if options.camera_scale != 1.0:
        rig = rig.scaled(options.camera_scale)
    route = Path(root) / "data" / scenario / route_name(log)
    tl = Timeline(log)
    n_ticks = int(round(tl.duration_s / TICK_S)) + 1
    tick_t = np.arange(n_ticks) * TICK_S
    rear, vel, acc = tl.ego(tick_t)
    centre = _centre_pose(rear)
    carla_pose = _carla_world(centre)
    frames = range(0, (n_ticks - 1) // fmt.DATA_SAVE_FREQ + 1, options.frame_stride)
    if options.max_frames is not None:
        frames = frames[:options.max_frames]
    renderer = _RouteRenderer(log, rig)
    tps, tp_cmds = _target_points(log, carla_pose)
    atomic_write_bytes(route / RIG_FILE, rig_file_bytes(rig))
    for f in frames:
        k = f * fmt.DATA_SAVE_FREQ
        t = float(tick_t[k])
        idx, objects = tl.objects(t)
        near = np.linalg.norm(objects.center_xyz[:, :2] - rear[k, :2], axis=1) <= options.annotation_radius_m
        idx = idx[near]
        objects = ObjectStates(tuple(np.array(objects.track_tokens)[near]), tuple(np.array(objects.categories)[near]),
                               objects.center_xyz[near], objects.size_lwh[near], objects.yaw_rad[near],
                               objects.velocity_xy_mps[near])
        box_sem = np.array([CATEGORY_SEMANTICS.get(c, 6) for c in objects.categories], dtype=np.uint8)
        pert = _perturbation(log, f) if options.perturbed else (0.0, 0.0)
        sweeps = []
        for age in range(max(1, options.lidar_sweeps)):
            kk = k - 2 * age
            if kk < 0:
                break
            pts = renderer.lidar(rear[kk], tl.objects(float(tick_t[kk]))[1])
            # Into the current frame's canonical frame, then CARLA's; keep non-ground points inside LEAD's BEV.
            g = _local_to_world(pts[:, :2], rear[kk])
            cur = _world_to_local(g, rear[k])
            pc = canonical_points_to_carla(np.column_stack([cur, pts[:, 2]]))
            keep = ((pc[:, 2] > 0.15) & (pc[:, 0] >= -32) & (pc[:, 0] <= 64) & (np.abs(pc[:, 1]) <= 40)
                    & (pc[:, 2] <= 10))
            sweeps.append((pc[keep], np.full(int(keep.sum()), 2 * age, dtype=np.uint8)))
        lidar_xyz = np.concatenate([s[0] for s in sweeps]) if sweeps else np.zeros((0, 3))
        lidar_time = np.concatenate([s[1] for s in sweeps]) if sweeps else np.zeros(0, np.uint8)
        boxes = _boxes(log, tl, idx, objects, centre[k], carla_pose[k], rear[k], vel[k], t, lidar_xyz)
        meta = _meta(log, f, k, tick_t, carla_pose, vel, acc, rig, options, pert, tps, tp_cmds, tl)
        atomic_write_bytes(fmt.frame_path(route, "metas", f), fmt.lzma_pickle_bytes(meta))
        atomic_write_bytes(fmt.frame_path(route, "bboxes", f), fmt.lzma_pickle_bytes(boxes))
        atomic_write_bytes(fmt.frame_path(route, "lidar", f), fmt.laz_bytes(lidar_xyz, lidar_time))
        copies = [(False, centre[k])] + ([(True, _perturbed_centre(centre[k], *pert))] if options.perturbed else [])
        for perturbed, c in copies:
            s = renderer.sensors(c, objects, box_sem)
            for folder, data in (("rgb", fmt.jpeg_bytes(s.rgb, options.jpeg_quality)),
                                 ("semantics", fmt.png_bytes(s.semantics)),
                                 ("depth", fmt.png_bytes(fmt.encode_depth(fmt.downsample_depth(s.depth)))),
                                 ("hdmap", fmt.png_bytes(s.hdmap)), ("radar", fmt.radar_bytes(s.radar))):
                atomic_write_bytes(fmt.frame_path(route, folder, f, perturbed=perturbed), data)
    return route


def _local_to_world(xy: F64, pose: F64) -> F64:
    c, s = np.cos(pose[2]), np.sin(pose[2])
    return np.column_stack([pose[0] + c * xy[:, 0] - s * xy[:, 1], pose[1] + s * xy[:, 0] + c * xy[:, 1]])


def _world_to_local(xy: F64, pose: F64) -> F64:
    d = xy - pose[:2]
    c, s = np.cos(pose[2]), np.sin(pose[2])
    return np.column_stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]])


def _boxes(log: WorldLog, tl: Timeline, idx: np.ndarray, objects: ObjectStates, centre: F64, carla_pose: F64,
           rear: F64, ego_vel: F64, t: float, lidar_carla: F64) -> list[dict[str, Any]]:
    """LEAD's box dicts for one frame (CARLA ego frame of the vehicle origin ``centre``)."""
    ego_speed = float(ego_vel[0])
    out: list[dict[str, Any]] = [{
        "class": "ego_car", "transfuser_semantics_id": 0, "extent": [2.4508416652679443, 1.0641621351242065,
                                                                     0.7553732395172119],
        "position": [0.0, 0.0, 0.0], "yaw": 0.0, "num_points": -1, "distance": 0.0, "speed": ego_speed,
        "brake": 0.0, "id": 0,
        "matrix": _carla_matrix(carla_pose[0], carla_pose[1], 0.0, carla_pose[2]).tolist(), "visible_pixels": -1}]
    if len(objects) == 0:
        return out
    xy = _to_carla_ego(objects.center_xyz[:, :2], centre)
    yaw = normalize_angle(-(objects.yaw_rad - centre[2]))
    half = objects.size_lwh / 2
    c, s = np.cos(centre[2]), np.sin(centre[2])
    v = objects.velocity_xy_mps
    v_ego = np.column_stack([c * v[:, 0] + s * v[:, 1], s * v[:, 0] - c * v[:, 1]])
    fwd = v[:, 0] * np.cos(objects.yaw_rad) + v[:, 1] * np.sin(objects.yaw_rad)
    z_centre = objects.center_xyz[:, 2]
    centres_c = np.column_stack([xy, z_centre])
    counts = _points_in_boxes(lidar_carla, centres_c, objects.size_lwh, yaw)
    world_xy = objects.center_xyz[:, :2]
    for i, (tok, cat) in enumerate(zip(objects.track_tokens, objects.categories)):
        cls, type_id = CATEGORY_TO_LEAD.get(cat, ("static", "static.prop.box01"))
        # LEAD's position is the actor origin: on the ground for vehicles and props, the body centre for walkers.
        z = float(z_centre[i]) if cls == "walker" else float(z_centre[i] - half[i, 2])
        cw = _carla_world(np.array([[world_xy[i, 0], world_xy[i, 1], objects.yaw_rad[i]]]))[0]
        box: dict[str, Any] = {
            "class": cls, "type_id": type_id, "base_type": "car" if cls == "car" else cls,
            "transfuser_semantics_id": int(CATEGORY_SEMANTICS.get(cat, 6)),
            "extent": [float(half[i, 0]), float(half[i, 1]), float(half[i, 2])],
            "position": [float(xy[i, 0]), float(xy[i, 1]), z], "yaw": float(yaw[i]),
            "num_points": int(counts[i]), "num_radar_points": -1, "visible_pixels": -1,
            "distance": float(np.hypot(*xy[i])), "speed": float(fwd[i]), "id": _track_id(tok), "track_token": tok,
            "role_name": "background", "matrix": _carla_matrix(cw[0], cw[1], z, cw[2]).tolist(),
        }
        if cls in ("car", "walker"):
            box["ego_velocity"] = [float(v_ego[i, 0]), float(v_ego[i, 1])]
            box["brake"] = 0.0
            fxy, fyaw = tl.track_future(int(idx[i]), t, fmt.BOX_FUTURE_TICKS)
            box["future_positions"] = _to_carla_ego(fxy, centre).astype(np.float16)
            box["future_yaws"] = normalize_angle(-(fyaw - centre[2])).astype(np.float16)
        if cls == "car":
            box.update(steer=0.0, throttle=0.0, lane_type_str="Driving")
        out.append(box)
    return out


def _target_points(log: WorldLog, carla_pose: F64, spacing_m: float = 25.0) -> tuple[F64, list[int]]:
    """Sparse route points along the ego's recorded drive (CARLA world), every ``spacing_m``, with commands.

    The command of a point is the world's 4-way command where the ego passes it (LEFT -> LEFT, RIGHT -> RIGHT,
    STRAIGHT -> LANEFOLLOW, UNKNOWN -> VOID), the segment's road option in LEAD's planner.
    """
    xy = carla_pose[:, :2]
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(xy, axis=0), axis=1))])
    marks = np.unique(np.concatenate([np.arange(0.0, s[-1], spacing_m), [s[-1]]]))
    pts = np.column_stack([np.interp(marks, s, xy[:, 0]), np.interp(marks, s, xy[:, 1])])
    frame_of = np.clip((np.searchsorted(s, marks) / 2).astype(int), 0, len(log.frames) - 1)  # ticks -> 10 Hz frames
    to_carla = {0: fmt.CarlaCommand.LEFT, 1: fmt.CarlaCommand.LANEFOLLOW, 2: fmt.CarlaCommand.RIGHT,
                3: fmt.CarlaCommand.VOID}
    cmds = [int(to_carla[int(log.frames[i].driving_command)]) for i in frame_of]
    return pts, cmds


def _meta(log: WorldLog, f: int, k: int, tick_t: F64, carla_pose: F64, vel: F64, acc: F64, rig: Rig,
          options: CarlaWriteOptions, pert: tuple[float, float], tps: F64, tp_cmds: list[int],
          tl: Timeline) -> dict[str, Any]:
    """LEAD's meta dict for frame ``f`` (tick ``k``), with the 20 Hz futures ``destroy`` adds."""
    x, y, yaw = carla_pose[k]
    n = len(tick_t)
    fut = np.arange(k, min(n, k + fmt.EGO_FUTURE_TICKS + 1))
    past = np.arange(max(0, k - fmt.EGO_FUTURE_TICKS), k + 1)
    ego_matrix = _carla_matrix(x, y, 0.0, yaw)
    inv = np.linalg.inv(ego_matrix)

    def to_ego(idx: np.ndarray) -> F64:
        pts = np.column_stack([carla_pose[idx, :2], np.zeros(len(idx)), np.ones(len(idx))])
        return (pts @ inv.T)[:, :3]

    rel_yaw = normalize_angle(carla_pose[:, 2] - yaw)
    speed = np.hypot(vel[:, 0], vel[:, 1])
    # Target points: the one just passed (s <= current) is route[0]; LEAD's planner keeps it at the front.
    s_tp = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(tps, axis=0), axis=1))])
    s_ego = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(carla_pose[:, :2], axis=0), axis=1))])[k]
    first = max(0, int(np.searchsorted(s_tp, s_ego + fmt.TP_POP_DISTANCE_M, side="right")) - 1)
    # LEAD's RoutePlanner never pops below two points: a route ends as [last passed, destination].
    first = min(first, max(len(tps) - 2, 0))
    nxt = list(range(first, len(tps)))
    if len(nxt) < 2:  # a one-point route (the ego never moved)
        nxt = [0, 0]
    next_tps = [[float(tps[i, 0]), float(tps[i, 1]), 0.0] for i in nxt]
    next_cmds = [tp_cmds[i] for i in nxt]
    prev_tps = [[float(tps[i, 0]), float(tps[i, 1]), 0.0] for i in range(first)]
    prev_cmds = [tp_cmds[i] for i in range(first)]
    # Dense route: the recorded path ahead, from 2.5 m, every 1 m, up to 50 points (CARLA ego frame).
    s_all = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(carla_pose[:, :2], axis=0), axis=1))])
    marks = s_ego + 2.5 + np.arange(50.0)
    marks = marks[marks <= s_all[-1]]
    route_w = np.column_stack([np.interp(marks, s_all, carla_pose[:, 0]), np.interp(marks, s_all, carla_pose[:, 1])])
    route = (np.column_stack([route_w, np.zeros(len(marks)), np.ones(len(marks))]) @ inv.T)[:, :2]
    tp_key = f"{fmt.TP_POP_DISTANCE_M}"
    frame10 = min(int(round(tick_t[k] / log.frame_interval_s)), len(log.frames) - 1)
    return {
        "target_dataset": int(rig.target_dataset), "town": log.map.location, "scenario": SCENARIO,
        "speed": float(speed[k]), "accel_x": float(acc[k, 0]), "accel_y": float(-acc[k, 1]), "accel_z": 0.0,
        "angular_velocity_x": 0.0, "angular_velocity_y": 0.0,
        "angular_velocity_z": float(-(carla_pose[min(k + 1, n - 1), 2] - carla_pose[max(k - 1, 0), 2])
                                    / (TICK_S * max(1, min(k + 1, n - 1) - max(k - 1, 0)))),
        "pos_global": [float(x), float(y), 0.0], "noisy_pos_global": [float(x), float(y)],
        "theta": float(yaw), "privileged_yaw": float(yaw), "ego_matrix": ego_matrix.astype(np.float32),
        "past_positions": to_ego(past)[::-1, :2].astype(np.float32),
        "privileged_past_positions": to_ego(past)[::-1, :2].astype(np.float32),
        "past_yaws": rel_yaw[past][::-1].astype(np.float32), "past_speeds": speed[past][::-1].astype(np.float32),
        "future_positions": to_ego(fut).astype(np.float32), "future_yaws": rel_yaw[fut].astype(np.float32),
        "future_speeds": speed[fut].astype(np.float32),
        "privileged_acceleration": float(acc[k, 0]), "privileged_rotation_speed": 0.0,
        "target_speed": float(speed[min(k + 20, n - 1)]), "target_speed_limit": 13.89, "speed_limit": 13.89,
        "steer": 0.0, "throttle": 0.0, "brake": bool(acc[k, 0] < -1.0),
        "route": route.astype(np.float32), "changed_route": False,
        "previous_target_points": prev_tps, "next_target_points": next_tps,
        "previous_commands": prev_cmds, "next_commands": next_cmds,
        f"previous_target_points_{tp_key}": prev_tps, f"next_target_points_{tp_key}": next_tps,
        f"previous_commands_{tp_key}": prev_cmds, f"next_commands_{tp_key}": next_cmds,
        "perturbation_translation": pert[0], "perturbation_rotation": pert[1],
        "weather_setting": "ClearNoon", "visual_visibility": 0, "jpeg_storage_quality": int(options.jpeg_quality),
        "over_head_traffic_light": False, "europe_traffic_light": False,
        "vehicle_hazard": False, "light_hazard": False, "walker_hazard": False, "stop_sign_hazard": False,
        "current_active_scenario_type": None, "previous_active_scenario_type": None,
        "scenario_obstacles_ids": [], "scenario_actors_ids": [], "cut_in_actors_ids": [],
        "world_timestamp_us": int(log.frames[frame10].timestamp_us),
    } | _NEUTRAL_META


#: The remaining keys LEAD's ``CARLAData.__getitem__`` reads unconditionally, with the values of a drive without
#: scenario, hazard or special condition (so LEAD's own loader can read these routes).
_NEUTRAL_META: dict[str, Any] = {
    "lane_type_str": "Driving", "is_intersection": False, "is_junction": False, "ego_lane_id": -1,
    "reduce_speed_discontinuous_road": False, "reduce_speed_high_route_curvature": False,
    "does_emergency_brake_for_pedestrians": False, "construction_obstacle_two_ways_stuck": False,
    "accident_two_ways_stuck": False, "parked_obstacle_two_ways_stuck": False,
    "vehicle_opens_door_two_ways_stuck": False, "vehicle_opened_door": False, "vehicle_door_side": None,
    "rear_danger_8": False, "rear_danger_16": False, "brake_cutin": False,
    "emergency_brake_for_special_vehicle": False, "num_parking_vehicles_in_proximity": 0,
    "slower_bad_visibility": False, "slower_clutterness": False, "slower_occluded_junction": False,
    "stop_sign_close": False, "walker_close": False, "num_dangerous_adversarial": 0, "num_safe_adversarial": 0,
    "num_ignored_adversarial": 0, "rear_adversarial_id": -1, "scenario_obstacles_convex_hull": [],
}


def write_carla_world(world: Any, root: str | Path, options: CarlaWriteOptions = CarlaWriteOptions(), *,
                      on_log_done: Callable[[str], None] | None = None,
                      logs: Sequence[str] | None = None) -> Path:
    """Write every log of a :class:`harness.world.build.World` (or those named in ``logs``) under ``root``.

    Writes ``<root>/data/<scenario>/<route>/...`` and ``<root>/splits/<split>.txt`` (route paths relative to
    ``root``, one per line) for every split with at least one written route; returns ``root``.
    """
    out = Path(root)
    wanted = set(logs) if logs is not None else None
    if wanted is not None and (unknown := wanted - {wl.name for wl in world.logs}):
        raise ValueError(f"write_carla_world: logs not in the world: {sorted(unknown)}")
    split_of = {n: s for s, names in world.splits.items() for n in names}
    lines: dict[str, list[str]] = {}
    for wl in world.logs:
        if wanted is not None and wl.name not in wanted:
            continue
        route = write_carla_route(wl, out, options)
        lines.setdefault(split_of[wl.name], []).append(route.relative_to(out).as_posix())
        if on_log_done is not None:
            on_log_done(wl.name)
    for split, routes in lines.items():
        atomic_write_text(out / "splits" / f"{split}.txt", "".join(f"{r}\n" for r in sorted(routes)))
    return out
