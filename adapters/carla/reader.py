"""Read LEAD route folders into canonical samples with perception labels.

Layout (:mod:`adapters.carla.format`)::

    <data_root>/data/<Scenario>/<route>/{rgb,semantics,depth,hdmap,lidar,radar,bboxes,metas}/0000.*
    <data_root>/data/<Scenario>/<route>/{rgb,semantics,depth,hdmap,radar}_perturbated/0000.*
    <data_root>/data/<Scenario>/<route>/rig.json          (lead-bench's rig record; optional)
    <data_root>/splits/<split>.txt                        (lead-bench's split lists; optional)

``data_root`` may also be the ``data`` folder itself. Split ``"all"`` is every route; any other split needs
``splits/<split>.txt`` (one route path per line, relative to ``data_root``).

Tokens are ``<Scenario>/<route>/<frame:04d>``; with ``perturbed=True`` the reader serves LEAD's perturbed-rig
copies instead (token suffix ``#perturbed``): images, semantics, depth, hdmap and radar from the
``*_perturbated`` folders and every label moved into the perturbed rig's frame as LEAD's loader does.

Everything is converted once to the canonical frame by :mod:`adapters.carla.frames`. Timestamps: LEAD stores
none, so ``timestamp_us`` is the frame's time since the route start (frame * 250 ms). ``targets.future`` is
None when the meta's 20 Hz future does not cover the requested sampling (the route's last frames).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from adapters.carla import format as fmt
from adapters.carla.frames import (
    CARLA_REAR_AXLE_M,
    carla_centre_poses_to_canonical,
    carla_points_to_canonical,
    carla_vectors_to_canonical,
    carla_yaws_to_canonical,
    lead_raster_to_canonical,
    perturb_points,
    perturb_vectors,
    perturb_yaws,
)
from adapters.carla.labels import (
    BEV_HALF_M,
    BEV_PX_PER_M,
    bev_semantics,
    canonical_box_class,
    canonical_command,
    source_box_class,
)
from adapters.carla.rigs import Rig, read_rig_file, rig_for_target
from harness.errors import ConfigError, DataError
from harness.trajectory import Trajectory, TrajectorySampling, resample_poses
from harness.types import (
    BEVRaster,
    Boxes3D,
    Camera,
    EgoState,
    Lidar,
    Navigation,
    Observation,
    Radar,
    Sample,
    SampleMeta,
    SampleRef,
    Source,
    Targets,
)

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
PERTURBED_SUFFIX = "#perturbed"
#: LEAD's leaderboard planning target: 8 waypoints at 4 Hz.
LEAD_LB_SAMPLING = TrajectorySampling(8, 0.25)
LIDAR_CHANNELS = ("x", "y", "z", "intensity", "time")
#: Classes whose LEAD ``position`` is the actor origin on the ground (box centre = position + half height).
_GROUND_ORIGIN = frozenset({"car", "static", "static_prop_car"})
#: Ego history kept in the observation: every 10th 20 Hz tick (0.5 s) back to 1.5 s.
HISTORY_STRIDE_TICKS, HISTORY_POSES = 10, 4


#: Consecutive target points closer than this (metres, per axis) are one point (see
#: :func:`merge_duplicate_target_points`).
TP_DUPLICATE_TOLERANCE_M = 0.01


def merge_duplicate_target_points(points: Sequence[Sequence[float]],
                                  commands: Sequence[int]) -> tuple[list[Sequence[float]], list[int]]:
    """Merge consecutive duplicate route target points as LEAD's loader does; returns the kept points and commands.

    LEAD (``carla_dataset.py``, also ``sensor_agent.py``) keeps a point unless its x, y are ``np.allclose`` to the
    last kept one, and keeps both when exactly two are left (its route planner never pops below two, so the
    route's end is the pair [last passed, destination]). ``np.allclose`` is relative (rtol 1e-5): on CARLA's towns
    (coordinates within a few km) that is at most a few centimetres, i.e. only true duplicates merge. On
    real-world-size coordinates (the embedded world's copy sits at nuPlan UTM, |y| ~ 4e6 m) the same rule is
    a 40 m tolerance that merged distinct points 25 m apart into one, and LEAD's reader would then fail (its
    ``assert len == 2``; our IndexError). The tolerance here is absolute, :data:`TP_DUPLICATE_TOLERANCE_M`, so
    the merge does not depend on where the map's origin is. When three or more points are all one point (LEAD
    asserts), that single point is returned.
    """
    kept: list[Sequence[float]] = []
    kept_cmds: list[int] = []
    for p, c in zip(points, commands):
        if (len(points) == 2 or not kept
                or np.max(np.abs(np.asarray(p[:2], float) - np.asarray(kept[-1][:2], float)))
                > TP_DUPLICATE_TOLERANCE_M):
            kept.append(p)
            kept_cmds.append(int(c))
    return kept, kept_cmds


@dataclass(frozen=True)
class CarlaSensors:
    """What :meth:`CarlaReader.load` reads: camera images are always lazy; the rest is read when asked for."""

    cameras: bool = True
    lidar: bool = True
    labels: bool = True  # boxes, BEV semantics, per-camera semantics and depth
    radar: bool = False  # the four radars as ``observation.radar`` (sensor index = LEAD's radar1..4 minus 1)


ALL_SENSORS = CarlaSensors()
CAMERAS_ONLY = CarlaSensors(cameras=True, lidar=False, labels=False)


@dataclass(frozen=True)
class RadarPoints:
    """LEAD's four radars in the canonical frame: ``points (N, 5)`` = x, y, z, radial velocity (m/s), sensor id."""

    points: F32


class _Stitched:
    """One stitched image decoded on first use and shared by the cameras that slice it."""

    def __init__(self, path: Path, where: str, rig: Rig) -> None:
        self.path, self.where, self.rig = path, where, rig
        self._img: np.ndarray | None = None

    def get(self) -> np.ndarray:
        if self._img is None:
            img = fmt.read_jpeg(self.path, where=self.where)
            if img.shape[:2] != (self.rig.height, self.rig.width):
                raise DataError(f"{self.where}: stitched image is {img.shape[1]}x{img.shape[0]}, rig "
                                f"{self.rig.name} needs {self.rig.width}x{self.rig.height}", path=self.path)
            self._img = img
        return self._img

    def slice(self, i: int) -> np.ndarray:
        a, b = self.rig.column_ranges()[i]
        return np.ascontiguousarray(self.get()[:, a:b])


def _expert_speed(meta: Mapping[str, Any], where: str) -> tuple[float | None, bool | None]:
    """The expert's ``target_speed`` (m/s) and ``brake`` flag of a frame's metas (LEAD's planning-decoder
    labels); None where the metas lack them."""
    speed = meta.get("target_speed")
    brake = meta.get("brake")
    try:
        v = None if speed is None else float(speed)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}: metas target_speed {speed!r} is not a number") from exc
    if v is not None and not (np.isfinite(v) and v >= 0.0):
        raise DataError(f"{where}: metas target_speed {v} must be finite and >= 0")
    return v, None if brake is None else bool(brake)


class CarlaReader:
    """LEAD route folders -> canonical samples.

    Args:
        data_root: the dataset root (holding ``data/``) or the ``data`` folder.
        split: ``"all"`` or a split listed in ``<data_root>/splits/<split>.txt``.
        sampling: the sampling of ``targets.future`` (default LEAD's 8 waypoints at 4 Hz).
        perturbed: serve the perturbed-rig copies instead of the normal ones.
    """

    def __init__(self, data_root: str | Path, split: str = "all", *, sampling: TrajectorySampling = LEAD_LB_SAMPLING,
                 perturbed: bool = False) -> None:
        self.root = Path(data_root)
        if not self.root.is_dir():
            raise ConfigError(f"CARLA data root {self.root} is not a directory")
        self.data_dir = self.root / "data" if (self.root / "data").is_dir() else self.root
        self.split = split
        self.sampling = sampling
        self.perturbed = perturbed
        self._rigs: dict[Path, Rig] = {}

    # --- index --------------------------------------------------------------------------------------

    def routes(self, split: str | None = None) -> list[Path]:
        """Route directories of ``split`` (default: the reader's)."""
        split = self.split if split is None else split
        if split == "all":
            return sorted(p for p in self.data_dir.glob("*/*") if (p / "metas").is_dir())
        listing = self.root / "splits" / f"{split}.txt"
        if not listing.is_file():
            known = sorted(p.stem for p in (self.root / "splits").glob("*.txt"))
            raise ConfigError(f"split {split!r} has no list {listing}; known splits: all, {', '.join(known) or '-'}")
        out = []
        for line in listing.read_text(encoding="utf-8").splitlines():
            if line.strip():
                route = self.root / line.strip()
                if not (route / "metas").is_dir():
                    raise DataError(f"split {split}: route {line.strip()} has no metas folder", path=route)
                out.append(route)
        return out

    def index(self, split: str | None = None) -> list[SampleRef]:
        """One ref per frame with a meta file (cheap: directory listings only)."""
        refs = []
        split = self.split if split is None else split
        for route in self.routes(split):
            for meta in sorted((route / "metas").glob("*.pkl")):
                if not meta.stem.isdigit():
                    continue
                frame = int(meta.stem)
                token = f"{route.parent.name}/{route.name}/{fmt.frame_stem(frame)}"
                if self.perturbed:
                    token += PERTURBED_SUFFIX
                refs.append(SampleRef(Source.CARLA, split, route.name, token,
                                      int(round(frame * fmt.FRAME_INTERVAL_S * 1e6))))
        return refs

    def _locate(self, ref: SampleRef | str) -> tuple[Path, int, bool, str]:
        token = ref.token if isinstance(ref, SampleRef) else str(ref)
        perturbed = token.endswith(PERTURBED_SUFFIX)
        parts = token.removesuffix(PERTURBED_SUFFIX).split("/")
        if len(parts) != 3 or not parts[2].isdigit():
            raise DataError(f"not a CARLA token (<Scenario>/<route>/<frame>): {token!r}", token=token)
        route = self.data_dir / parts[0] / parts[1]
        if not route.is_dir():
            raise DataError(f"route {parts[1]} not found under {self.data_dir}", path=route, token=token)
        return route, int(parts[2]), perturbed, token

    def rig(self, route: Path, meta: Mapping[str, Any], where: str) -> Rig:
        """The route's rig: ``rig.json`` if present, else LEAD's rig for the meta's ``target_dataset``."""
        if route not in self._rigs:
            rig = read_rig_file(route)
            if rig is None:
                rig = rig_for_target(meta["target_dataset"], where=where)
            elif int(rig.target_dataset) != int(meta["target_dataset"]):
                raise DataError(f"{where}: rig.json says target_dataset {int(rig.target_dataset)} but the meta says "
                                f"{meta['target_dataset']}", path=route / "rig.json")
            self._rigs[route] = rig
        return self._rigs[route]

    # --- load ---------------------------------------------------------------------------------------

    def read_meta(self, route: Path, frame: int) -> dict[str, Any]:
        where = f"route {route.name} frame {fmt.frame_stem(frame)}"
        meta = fmt.read_lzma_pickle(fmt.frame_path(route, "metas", frame), where=f"{where} metas")
        if not isinstance(meta, dict):
            raise DataError(f"{where}: metas pickle holds {type(meta).__name__}, expected a dict",
                            path=fmt.frame_path(route, "metas", frame))
        missing = [k for k in fmt.REQUIRED_META_KEYS if k not in meta]
        tp = f"next_target_points_{fmt.TP_POP_DISTANCE_M}"
        if tp not in meta and "next_target_points" not in meta:
            missing.append(tp)
        if missing:
            raise DataError(f"{where}: metas pickle lacks keys {missing}", path=fmt.frame_path(route, "metas", frame))
        return meta

    def load(self, ref: SampleRef | str, sensors: CarlaSensors = ALL_SENSORS,
             sampling: TrajectorySampling | None = None) -> Sample:
        """The canonical sample of one frame (see the module docstring)."""
        route, frame, perturbed, token = self._locate(ref)
        where = f"route {route.name} frame {fmt.frame_stem(frame)}"
        meta = self.read_meta(route, frame)
        rig = self.rig(route, meta, where)
        t_m, r_deg = ((float(meta["perturbation_translation"]), float(meta["perturbation_rotation"]))
                      if perturbed else (0.0, 0.0))
        cameras = self._cameras(route, frame, perturbed, rig, where) if sensors.cameras else {}
        lidar = self._lidar(route, frame, t_m, r_deg, where) if sensors.lidar else None
        radar = None
        if sensors.radar:
            pts = self.load_radar(ref).points
            radar = Radar(np.column_stack([pts[:, :4], pts[:, 4] - 1.0]), len(fmt.RADAR_KEYS))
        obs = Observation(cameras=cameras, ego=self._ego(meta, perturbed, where),
                          navigation=self._navigation(meta, t_m, r_deg, where), lidar=lidar, radar=radar)
        future = self._future(meta, t_m, r_deg, sampling or self.sampling, where)
        speed, brake = _expert_speed(meta, where)
        targets = Targets(future=future, target_speed_mps=speed, brake=brake)
        if sensors.labels:
            boxes, raw, box_xy, box_yaw, box_ext = self._boxes(route, frame, t_m, r_deg, where)
            targets = Targets(future=future, boxes=boxes, target_speed_mps=speed, brake=brake,
                              bev=self._bev(route, frame, perturbed, raw, meta, box_xy, box_yaw, box_ext, where),
                              semantics=self._semantics(route, frame, perturbed, rig, where),
                              depth_m=self._depth(route, frame, perturbed, rig, where))
        split = ref.split if isinstance(ref, SampleRef) else self.split
        meta_out = SampleMeta(Source.CARLA, split, route.name, token,
                              int(round(frame * fmt.FRAME_INTERVAL_S * 1e6)), str(meta.get("town")))
        return Sample(meta_out, obs, targets)

    def load_radar(self, ref: SampleRef | str) -> RadarPoints:
        """LEAD's radar returns of the frame (perturbed copy for perturbed tokens), canonical frame."""
        route, frame, perturbed, _ = self._locate(ref)
        where = f"route {route.name} frame {fmt.frame_stem(frame)}"
        meta = self.read_meta(route, frame) if perturbed else {}
        path = fmt.frame_path(route, "radar", frame, perturbed=perturbed)
        radars = fmt.read_radar(path, where=f"{where} radar")
        pts = np.concatenate([np.column_stack([r, np.full(len(r), i + 1, np.float32)]) for i, r in enumerate(radars)])
        del meta  # perturbed radars are stored in the perturbed sensor frame already
        xyz = carla_points_to_canonical(pts[:, :3])
        return RadarPoints(np.column_stack([xyz, pts[:, 3:5]]).astype(np.float32))

    # --- parts --------------------------------------------------------------------------------------

    def _cameras(self, route: Path, frame: int, perturbed: bool, rig: Rig, where: str) -> dict[str, Camera]:
        path = fmt.frame_path(route, "rgb", frame, perturbed=perturbed)
        w, h = fmt.image_size(path, where=f"{where} rgb")
        if (w, h) != (rig.width, rig.height):
            raise DataError(f"{where}: stitched image is {w}x{h}, rig {rig.name} needs {rig.width}x{rig.height}",
                            path=path)
        stitched = _Stitched(path, f"{where} rgb", rig)
        return {c.name: Camera(c.name, c.intrinsics, c.ego_from_camera, c.width, c.height,
                               image_path=str(path), loader=(lambda i=i: stitched.slice(i)))
                for i, c in enumerate(rig.cameras)}

    def _lidar(self, route: Path, frame: int, t_m: float, r_deg: float, where: str) -> Lidar:
        path = fmt.frame_path(route, "lidar", frame)
        xyz, time = fmt.read_laz(path, where=f"{where} lidar")
        # LEAD re-aligns the one stored cloud analytically for the perturbed rig (common_utils.align_lidar).
        xyz = carla_points_to_canonical(perturb_points(xyz, t_m, r_deg))
        pts = np.column_stack([xyz, np.zeros(len(xyz)), time.astype(np.float64)])  # LEAD stores no intensity
        return Lidar(pts.astype(np.float32), LIDAR_CHANNELS, str(path))

    @staticmethod
    def _ego(meta: Mapping[str, Any], perturbed: bool, where: str) -> EgoState:
        """Speed and IMU acceleration in the car's body frame and the history of its rear-axle poses.

        In a perturbed copy the ego state is only what the car's own sensors report (speed, acceleration) and
        the history is left out: poses in the perturbed rig's frame would give the recovery offset away, which
        LEAD's loader never feeds the model either (it passes the speed only).
        """
        try:
            v = np.array([float(meta["speed"]), 0.0])
            a = np.array([float(meta["accel_x"]), float(meta["accel_y"])])
            past_xy = np.asarray(meta.get("past_positions", np.zeros((1, 2))), dtype=np.float64).reshape(-1, 2)
            past_yaw = np.asarray(meta.get("past_yaws", np.zeros(1)), dtype=np.float64).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise DataError(f"{where}: malformed ego state in metas ({exc})") from exc
        n = 0 if perturbed else min(len(past_xy), len(past_yaw))
        # LEAD stores the history newest first at 20 Hz, in the current (unperturbed) CARLA frame.
        ticks = np.arange(0, n, HISTORY_STRIDE_TICKS)[:HISTORY_POSES][::-1]
        if len(ticks) == 0:
            hist, times = np.zeros((1, 3)), np.zeros(1)
        else:
            hist = carla_centre_poses_to_canonical(past_xy[ticks], past_yaw[ticks])
            hist[-1] = 0.0
            times = -ticks * (1.0 / fmt.CARLA_FPS)
        return EgoState(carla_vectors_to_canonical(v), carla_vectors_to_canonical(a), hist, times)

    @staticmethod
    def _navigation(meta: Mapping[str, Any], t_m: float, r_deg: float, where: str) -> Navigation:
        key = f"{fmt.TP_POP_DISTANCE_M}"
        tps = meta.get(f"next_target_points_{key}", meta.get("next_target_points"))
        cmds = meta.get(f"next_commands_{key}", meta.get("next_commands"))
        if tps is None or cmds is None or len(tps) < 2 or len(tps) != len(cmds):
            raise DataError(f"{where}: metas need >= 2 next target points with one command each, got "
                            f"{None if tps is None else len(tps)} points, {None if cmds is None else len(cmds)} commands")
        pts, cs = merge_duplicate_target_points(tps, cmds)
        # LEAD reads previous = [0], current = [1], next = [2] (current again when missing) and the command of
        # [0]; a single merged point (the route's destination) serves as all three.
        last = min(len(pts) - 1, 1)
        chosen = np.array([pts[0][:2], pts[last][:2], pts[2][:2] if len(pts) > 2 else pts[last][:2]],
                          dtype=np.float64)
        theta = float(meta["theta"])
        origin = np.asarray(meta["pos_global"], dtype=np.float64)[:2]
        c, s = np.cos(theta), np.sin(theta)
        d = chosen - origin
        local = np.column_stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]])  # common_utils.inverse_conversion_2d
        tp_can = carla_points_to_canonical(perturb_points(local, t_m, r_deg))
        route = np.asarray(meta["route"], dtype=np.float64).reshape(-1, 2)
        route_can = carla_points_to_canonical(perturb_points(route, t_m, r_deg)) if len(route) else None
        cmd = int(cs[0])
        return Navigation(canonical_command(cmd), cmd, tp_can, route_can)

    @staticmethod
    def _future(meta: Mapping[str, Any], t_m: float, r_deg: float, sampling: TrajectorySampling,
                where: str) -> Trajectory | None:
        pos = np.asarray(meta["future_positions"], dtype=np.float64)
        yaw = np.asarray(meta["future_yaws"], dtype=np.float64).reshape(-1)
        if pos.ndim != 2 or pos.shape[1] < 2 or len(pos) != len(yaw) or len(pos) == 0:
            raise DataError(f"{where}: future_positions {pos.shape} and future_yaws {yaw.shape} do not match")
        times = np.arange(len(pos)) / fmt.CARLA_FPS  # index 0 is the current tick
        if times[-1] + 1e-6 < sampling.time_horizon_s:
            return None
        poses = carla_centre_poses_to_canonical(perturb_points(pos[:, :2], t_m, r_deg), perturb_yaws(yaw, r_deg))
        return Trajectory(resample_poses(poses, times, sampling.times_s, include_origin=False), sampling)

    def _boxes(self, route: Path, frame: int, t_m: float, r_deg: float,
               where: str) -> tuple[Boxes3D, list[dict[str, Any]], F64, F64, F64]:
        path = fmt.frame_path(route, "bboxes", frame)
        raw = fmt.read_lzma_pickle(path, where=f"{where} bboxes")
        if not isinstance(raw, list) or not all(isinstance(b, dict) for b in raw):
            raise DataError(f"{where}: bboxes pickle must hold a list of dicts", path=path)
        keep, classes = [], []
        for b in raw:
            try:
                cls = canonical_box_class(b)
            except ValueError as exc:
                raise DataError(f"{where}: {exc}", path=path) from exc
            if cls is not None:
                keep.append(b)
                classes.append(cls)
        try:
            pos = np.array([b["position"][:3] for b in keep], dtype=np.float64).reshape(-1, 3)
            ext = np.array([b["extent"][:3] for b in keep], dtype=np.float64).reshape(-1, 3)
            yaw = np.array([b["yaw"] for b in keep], dtype=np.float64)
            vel = np.array([b["ego_velocity"][:2] if "ego_velocity" in b else
                            [float(b.get("speed", 0.0)) * np.cos(b["yaw"]), float(b.get("speed", 0.0)) * np.sin(b["yaw"])]
                            for b in keep], dtype=np.float64).reshape(-1, 2)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise DataError(f"{where}: malformed box entry ({type(exc).__name__}: {exc})", path=path) from exc
        centre = pos.copy()
        on_ground = np.array([b.get("class") in _GROUND_ORIGIN for b in keep], dtype=bool)
        centre[on_ground, 2] += ext[on_ground, 2]
        xy_p = perturb_points(centre[:, :2], t_m, r_deg)
        yaw_p = perturb_yaws(yaw, r_deg)
        centre_c = carla_points_to_canonical(np.column_stack([xy_p, centre[:, 2]]))
        boxes = Boxes3D(centre_c, np.maximum(2.0 * ext, 0.01), carla_yaws_to_canonical(yaw_p),
                        carla_vectors_to_canonical(perturb_vectors(vel, r_deg)), tuple(classes),
                        tuple(source_box_class(b) for b in keep), tuple(str(b.get("id")) for b in keep))
        # The BEV drawing uses LEAD's (perturbed) CARLA-frame positions of all boxes, LEAD's way.
        return boxes, keep, perturb_points(pos[:, :2], t_m, r_deg), yaw_p, ext[:, :2]

    def _bev(self, route: Path, frame: int, perturbed: bool, raw: Sequence[dict[str, Any]], meta: Mapping[str, Any],
             box_xy: F64, box_yaw: F64, box_ext: F64, where: str) -> BEVRaster:
        path = fmt.frame_path(route, "hdmap", frame, perturbed=perturbed)
        hdmap = fmt.read_png(path, where=f"{where} hdmap")
        if hdmap.shape != (fmt.HDMAP_SIZE_PX, fmt.HDMAP_SIZE_PX):
            raise DataError(f"{where}: hdmap must be {fmt.HDMAP_SIZE_PX}x{fmt.HDMAP_SIZE_PX}, got {hdmap.shape}",
                            path=path)
        lead = bev_semantics(hdmap, raw, meta, box_xy, box_yaw, box_ext)
        x0 = -BEV_HALF_M - float(CARLA_REAR_AXLE_M[0])
        return BEVRaster(lead_raster_to_canonical(lead), fmt.BEV_CLASSES, 1.0 / BEV_PX_PER_M,
                         (x0, x0 + 2 * BEV_HALF_M, -BEV_HALF_M, BEV_HALF_M))

    @staticmethod
    def _semantics(route: Path, frame: int, perturbed: bool, rig: Rig, where: str) -> dict[str, np.ndarray]:
        path = fmt.frame_path(route, "semantics", frame, perturbed=perturbed)
        sem = fmt.read_png(path, where=f"{where} semantics")
        if sem.shape != (rig.height, rig.width):
            raise DataError(f"{where}: semantics are {sem.shape}, rig {rig.name} needs {(rig.height, rig.width)}",
                            path=path)
        if sem.size and int(sem.max()) >= len(fmt.SEMANTIC_CLASSES):
            raise DataError(f"{where}: semantic id {int(sem.max())} beyond the {len(fmt.SEMANTIC_CLASSES)} classes",
                            path=path)
        return {c.name: np.ascontiguousarray(sem[:, a:b]) for c, (a, b) in zip(rig.cameras, rig.column_ranges())}

    @staticmethod
    def _depth(route: Path, frame: int, perturbed: bool, rig: Rig, where: str) -> dict[str, F32]:
        path = fmt.frame_path(route, "depth", frame, perturbed=perturbed)
        enc = fmt.read_png(path, where=f"{where} depth")
        f = fmt.DEPTH_DOWNSAMPLE
        if enc.shape != (rig.height // f, rig.width // f):
            raise DataError(f"{where}: depth is {enc.shape}, rig {rig.name} needs {(rig.height // f, rig.width // f)} "
                            f"(1/{f} resolution)", path=path)
        # Upsampled x4 as LEAD's loader does (bilinear); rows/columns lost to the integer division are filled from
        # the edge.
        full = fmt.upsample_depth(fmt.decode_depth(enc), f)
        full = np.pad(full, ((0, rig.height - full.shape[0]), (0, rig.width - full.shape[1])), mode="edge")
        return {c.name: np.ascontiguousarray(full[:, a:b]) for c, (a, b) in zip(rig.cameras, rig.column_ranges())}
