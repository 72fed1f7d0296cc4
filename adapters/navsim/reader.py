"""Read NAVSIM / OpenScene data (logs + sensor blobs) into canonical samples.

Layout (specs/navsim.md §8.1–8.2)::

    <data_root>/navsim_logs/<split>/<log_name>.pkl
    <data_root>/sensor_blobs/<split>/<log_name>/CAM_F0/<hash>.jpg, .../MergedPointCloud/<hash>.pcd

``index()`` is cheap after the first call (logs are parsed once and kept); ``load(ref)`` reads only the
sensors asked for. The canonical frame is NAVSIM's local frame, so poses are copied, not converted.

Given a nuPlan maps root, ``load(ref, bev=BEVGrid(...))`` also attaches NAVSIM TransFuser's 7-class BEV
semantic label (:mod:`adapters.navsim.bev_semantic`) as ``targets.bev``; each location's map is read once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from adapters.navsim.bev_semantic import BEVGrid, navsim_bev_semantic
from adapters.navsim.log_format import NavsimFrame, parse_frame, relative_poses
from adapters.navsim.map_reader import read_nuplan_map
from adapters.navsim.map_writer import canonical_location
from adapters.navsim.pcd import read_pcd
from adapters.navsim.scene_filter import NAVTEST_FILTER, SceneFilter, SceneWindow, filter_scenes
from harness.errors import DataError
from harness.geometry import normalize_angle, se3_transform_points
from harness.map_query import MapQuery
from harness.safe_pickle import load_restricted
from harness.trajectory import Trajectory, TrajectorySampling
from harness.types import (
    Boxes3D,
    Camera,
    EgoState,
    Lidar,
    Navigation,
    Observation,
    Sample,
    SampleMeta,
    SampleRef,
    Source,
    Targets,
)

#: Keyframe spacing of OpenScene logs; NAVSIM's future trajectories use it as nominal sampling.
KEYFRAME_INTERVAL_S = 0.5
LIDAR_CHANNELS = ("x", "y", "z", "intensity", "ring", "lidar_id")


@dataclass(frozen=True)
class SensorSelection:
    """Which sensors of the current frame to load (an agent's declared needs)."""

    cameras: tuple[str, ...] = ()
    lidar: bool = False


NO_SENSORS = SensorSelection()


def _decode_jpeg(path: Path, token: str) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError) as exc:
        raise DataError(f"cannot decode camera image ({exc})", path=path, token=token) from exc


class NavsimReader:
    """Index and load one split of NAVSIM data.

    Args:
        data_root: directory holding ``navsim_logs/`` and ``sensor_blobs/``.
        split: the log folder name under ``navsim_logs/`` (e.g. ``test``, ``trainval``, ``mini``).
        scene_filter: how logs are cut into scenes (default: navtest's).
        sensor_split: folder under ``sensor_blobs/`` (defaults to ``split``).
        maps_root: nuPlan maps root (``nuplan-maps-v1.0.json``, ``<location>/<version>/map.gpkg``); needed
            only to attach BEV semantic labels.
    """

    def __init__(
        self,
        data_root: str | Path,
        split: str,
        *,
        scene_filter: SceneFilter = NAVTEST_FILTER,
        sensor_split: str | None = None,
        maps_root: str | Path | None = None,
    ) -> None:
        self.data_root = Path(data_root)
        self.split = split
        self.scene_filter = scene_filter
        self.logs_dir = self.data_root / "navsim_logs" / split
        self.sensor_root = self.data_root / "sensor_blobs" / (sensor_split or split)
        if not self.logs_dir.is_dir():
            have = sorted(p.name for p in (self.data_root / "navsim_logs").glob("*") if p.is_dir())
            raise DataError(
                f"no NAVSIM log folder for split '{split}' (expected navsim_logs/{split}/*.pkl; "
                f"splits present: {have or 'none'})",
                path=self.logs_dir,
            )
        self.maps_root = Path(maps_root) if maps_root is not None else None
        self._frames: dict[str, tuple[NavsimFrame, ...]] = {}
        self._windows: dict[str, SceneWindow] | None = None
        self._maps: dict[str, MapQuery] = {}

    # --- logs --------------------------------------------------------------------------------------------

    def log_paths(self) -> list[Path]:
        paths = sorted(self.logs_dir.glob("*.pkl"))
        if not paths:
            raise DataError(f"split '{self.split}' has no log pickles", path=self.logs_dir)
        return paths

    def log_frames(self, log_name: str) -> tuple[NavsimFrame, ...]:
        """Parsed frames of one log (read once, then cached)."""
        if log_name not in self._frames:
            path = self.logs_dir / f"{log_name}.pkl"
            raw = load_restricted(path)
            if not isinstance(raw, list) or not raw:
                raise DataError(f"a log pickle must hold a non-empty list of frame dicts, got {type(raw).__name__}",
                                path=path)
            frames = tuple(parse_frame(f, path=path, index=i) for i, f in enumerate(raw))
            self._check_order(frames, path)
            self._frames[log_name] = frames
        return self._frames[log_name]

    @staticmethod
    def _check_order(frames: Sequence[NavsimFrame], path: Path) -> None:
        ts = np.array([f.timestamp_us for f in frames])
        bad = np.nonzero(np.diff(ts) <= 0)[0]
        if bad.size:
            i = int(bad[0]) + 1
            raise DataError(f"frame {i}: timestamps must increase ({ts[i - 1]} then {ts[i]})",
                            path=path, token=frames[i].token)

    # --- index ----------------------------------------------------------------------------------------

    def windows(self) -> dict[str, SceneWindow]:
        """Scene windows by token, under this reader's scene filter."""
        if self._windows is None:
            logs: dict[str, list[dict[str, object]]] = {}
            for p in self.log_paths():
                frames = self.log_frames(p.stem)
                logs[p.stem] = [{"token": f.token, "roadblock_ids": f.roadblock_ids} for f in frames]
            self._windows = {w.token: w for w in filter_scenes(logs, self.scene_filter)}
        return self._windows

    def index(self) -> list[SampleRef]:
        out = []
        for w in self.windows().values():
            cur = self.log_frames(w.log_name)[w.current_index]
            out.append(SampleRef(Source.NAVSIM, self.split, w.log_name, w.token, cur.timestamp_us))
        return out

    def scene_frames(self, token: str) -> tuple[tuple[NavsimFrame, ...], int]:
        """All frames of a scene and the index of its current frame within them."""
        w = self.windows().get(token)
        if w is None:
            raise DataError(f"token is not a scene of split '{self.split}' under the scene filter",
                            path=self.logs_dir, token=token)
        frames = self.log_frames(w.log_name)[w.start : w.start + w.num_frames]
        return frames, w.num_history_frames - 1

    # --- load -------------------------------------------------------------------------------------------

    def load(self, ref: SampleRef | str, sensors: SensorSelection = NO_SENSORS, *, bev: BEVGrid | None = None
             ) -> Sample:
        """The canonical sample of a scene token, with the sensors in ``sensors`` attached, and with the
        BEV semantic label rendered on ``bev`` when given (needs ``maps_root``)."""
        token = ref if isinstance(ref, str) else ref.token
        frames, cur = self.scene_frames(token)
        now = frames[cur]
        rel = relative_poses(frames, cur)
        times = (np.array([f.timestamp_us for f in frames]) - now.timestamp_us) / 1e6

        ego = EgoState(
            velocity_mps=now.ego_dynamic_state[:2],
            acceleration_mps2=now.ego_dynamic_state[2:],
            history_poses=rel[: cur + 1],
            history_times_s=times[: cur + 1],
        )
        observation = Observation(
            cameras=self._cameras(now, sensors.cameras),
            ego=ego,
            navigation=Navigation(command=now.driving_command, source_command=int(now.driving_command)),
            lidar=self._lidar(now) if sensors.lidar else None,
        )
        future = None
        n_future = len(frames) - cur - 1
        if n_future > 0:
            future = Trajectory(rel[cur + 1 :], TrajectorySampling(n_future, KEYFRAME_INTERVAL_S))
        boxes = self._boxes(now)
        raster = None
        if bev is not None:
            raster = navsim_bev_semantic(self.map_query(now.map_location), now.ego_pose, boxes, bev)
        targets = Targets(future=future, boxes=boxes, bev=raster)
        meta = SampleMeta(Source.NAVSIM, self.split, now.log_name, now.token, now.timestamp_us, now.map_location)
        return Sample(meta=meta, observation=observation, targets=targets)

    def map_query(self, location: str) -> MapQuery:
        """The index of a location's nuPlan map (read on first use, then kept)."""
        if self.maps_root is None:
            raise DataError("BEV semantic labels need the nuPlan maps: give the reader a maps_root",
                            path=self.logs_dir)
        loc = canonical_location(location)
        if loc not in self._maps:
            self._maps[loc] = MapQuery(read_nuplan_map(self.maps_root, loc))
        return self._maps[loc]

    def _cameras(self, frame: NavsimFrame, names: Sequence[str]) -> Mapping[str, Camera]:
        out: dict[str, Camera] = {}
        for name in names:
            rec = frame.cameras.get(name)
            if rec is None:
                raise DataError(f"camera {name} is not in the frame (has {sorted(frame.cameras)})",
                                path=self.logs_dir / f"{frame.log_name}.pkl", token=frame.token)
            path = self.sensor_root / rec.data_path
            try:
                with Image.open(path) as im:  # header only: size without decoding
                    width, height = im.size
            except FileNotFoundError as exc:
                raise DataError(f"missing sensor file for {name}", path=path, token=frame.token) from exc
            except (OSError, UnidentifiedImageError) as exc:
                raise DataError(f"unreadable image for {name} ({exc})", path=path, token=frame.token) from exc
            out[name] = Camera(
                name=name,
                intrinsics=rec.intrinsics,
                ego_from_camera=frame.ego_from_lidar @ rec.lidar_from_camera,
                width=width,
                height=height,
                distortion=rec.distortion,
                image_path=str(path),
                loader=partial(_decode_jpeg, path, frame.token),
            )
        return out

    def _lidar(self, frame: NavsimFrame) -> Lidar:
        if frame.lidar_path is None:
            raise DataError("frame has no lidar_path", path=self.logs_dir / f"{frame.log_name}.pkl",
                            token=frame.token)
        path = self.sensor_root / frame.lidar_path
        if not path.is_file():
            raise DataError("missing sensor file MergedPointCloud", path=path, token=frame.token)
        try:
            pts = read_pcd(path)
        except DataError as exc:
            raise DataError(f"{exc}", token=frame.token) from exc
        if pts.shape[1] < 4:
            raise DataError(f"point cloud has {pts.shape[1]} fields, expected >= 4 (x, y, z, intensity)",
                            path=path, token=frame.token)
        pts = pts.astype(np.float32, copy=True)
        # The merged cloud is stored in the lidar frame; the canonical sample wants the ego frame.
        pts[:, :3] = se3_transform_points(frame.ego_from_lidar, pts[:, :3]).astype(np.float32)
        channels = LIDAR_CHANNELS[: pts.shape[1]] if pts.shape[1] <= 6 else LIDAR_CHANNELS + tuple(
            f"f{i}" for i in range(6, pts.shape[1]))
        return Lidar(points=pts, channels=channels, path=str(path))

    @staticmethod
    def _boxes(frame: NavsimFrame) -> Boxes3D | None:
        a = frame.annotations
        if a is None:
            return None
        return Boxes3D(
            center_xyz=a.boxes[:, :3],
            size_lwh=a.boxes[:, 3:6],
            yaw_rad=normalize_angle(a.boxes[:, 6]),
            velocity_xy_mps=a.velocity_3d[:, :2],
            class_names=a.names,
            source_classes=a.names,
            track_ids=a.track_tokens,
        )


def split_reader(owner: str, data_root: Path, split: str, scene_filter: SceneFilter,
                 reader: NavsimReader | None) -> NavsimReader:
    """``reader`` if it reads ``split`` of ``data_root`` with ``scene_filter`` (its parsed logs are then reused),
    a new reader when it is None; ``owner`` names the caller in the error.

    Raises:
        ValueError: a reader of another split, data root or scene filter.
    """
    if reader is None:
        return NavsimReader(data_root, split, scene_filter=scene_filter)
    if reader.logs_dir != Path(data_root) / "navsim_logs" / split or reader.scene_filter != scene_filter:
        raise ValueError(f"{owner}: the reader reads {reader.logs_dir} with another scene filter or split than "
                         f"the cache's ({data_root}, {split})")
    return reader
