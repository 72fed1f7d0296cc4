"""Canonical, typed sample shared by every adapter, agent and metric.

Frame: x forward, y left, z up, metres, radians, origin at the rear-axle centre at the current time
("ego frame"), headings counter-clockwise. Times are seconds relative to the current frame (negative =
past); absolute timestamps are integer microseconds. A sample is split into ``observation`` (what a
policy may use at test time) and ``targets`` (training and scoring only), so a policy handed only an
``Observation`` cannot reach the future by accident.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from harness.trajectory import Trajectory

F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]


class Source(enum.Enum):
    CARLA = "carla"
    NAVSIM = "navsim"
    WAYMO = "waymo"


class DrivingCommand(enum.IntEnum):
    """4-way high-level command in NAVSIM's one-hot order (left, straight, right, unknown)."""

    LEFT = 0
    STRAIGHT = 1
    RIGHT = 2
    UNKNOWN = 3

    @classmethod
    def from_one_hot(cls, one_hot: npt.ArrayLike, *, where: str = "driving_command") -> DrivingCommand:
        v = np.asarray(one_hot).reshape(-1)
        if v.shape != (4,) or not np.all(np.isin(v, (0, 1))) or int(v.sum()) != 1:
            raise ValueError(f"{where}: expected a one-hot vector of 4 (left, straight, right, unknown), got {v}")
        return cls(int(np.argmax(v)))

    def one_hot(self) -> npt.NDArray[np.int64]:
        v = np.zeros(4, dtype=np.int64)
        v[int(self)] = 1
        return v


# --- validation helpers ----------------------------------------------------------------------------------


def _array(
    owner: str,
    name: str,
    value: Any,
    shape: tuple[int | None, ...],
    dtype: Any,
    *,
    finite: bool = True,
) -> np.ndarray:
    """Coerce ``value`` to a read-only array of ``dtype`` and check its shape (None = any) and finiteness."""
    target = np.dtype(dtype)
    try:
        src = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{owner}.{name}: cannot convert to {target}: {exc}") from exc
    # Casting is unchecked in numpy: strings would be parsed, complex truncated, and integer ids wrap
    # (300 -> 44 in uint8), so only numbers are accepted and integer targets must hold the values exactly.
    if src.dtype.kind not in "biuf":
        raise ValueError(f"{owner}.{name}: expected numbers convertible to {target}, got dtype {src.dtype}")
    if target.kind in "iu" and src.size:
        info = np.iinfo(target)
        if src.dtype.kind == "f" and not np.all(np.isfinite(src) & (src == np.round(src))):
            raise ValueError(f"{owner}.{name}: expected integer values for {target}, got non-integral floats")
        if src.min() < info.min or src.max() > info.max:
            raise ValueError(
                f"{owner}.{name}: values [{src.min()}, {src.max()}] do not fit {target} [{info.min}, {info.max}]"
            )
    arr = src.astype(target, copy=False)
    if arr.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, arr.shape)):
        want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{owner}.{name}: expected shape {want}, got {arr.shape}")
    if finite and arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise ValueError(f"{owner}.{name}: values must be finite (found NaN or inf)")
    if arr is value or not arr.flags.owndata:  # never freeze or alias the caller's buffer
        arr = arr.copy()
    arr.setflags(write=False)
    return arr


def _set(obj: object, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)


# --- meta ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SampleMeta:
    """Identity of one frame of one source."""

    source: Source
    split: str
    log_id: str
    token: str
    timestamp_us: int
    map_location: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.source, Source):
            raise ValueError(f"SampleMeta.source must be a Source, got {self.source!r}")
        if not isinstance(self.token, str) or not self.token:
            raise ValueError(f"SampleMeta.token must be a non-empty string, got {self.token!r}")
        try:
            ts = int(self.timestamp_us)
            exact = ts == self.timestamp_us
        except (TypeError, ValueError, OverflowError):
            exact = False
        if not exact:
            raise ValueError(f"SampleMeta.timestamp_us must be an integer (microseconds), got {self.timestamp_us!r}")
        _set(self, "timestamp_us", ts)


@dataclass(frozen=True)
class SampleRef:
    """Cheap index record of a sample: enough to find and load it, nothing heavy."""

    source: Source
    split: str
    log_id: str
    token: str
    timestamp_us: int


# --- observation -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Camera:
    """One camera with its calibration and a lazily loaded image.

    Camera axes are OpenCV's: x right, y down, z forward (optical axis). ``ego_from_camera`` maps points in
    those axes into the ego frame. ``distortion`` keeps the source's coefficients (nuPlan: k1, k2, p1, p2,
    k3); the rendered embedded world has none.
    """

    name: str
    intrinsics: F64
    ego_from_camera: F64
    width: int
    height: int
    distortion: F64 = field(default_factory=lambda: np.zeros(5))
    image_path: str | None = None
    loader: Callable[[], U8] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        o = f"Camera[{self.name}]"
        _set(self, "intrinsics", _array(o, "intrinsics", self.intrinsics, (3, 3), np.float64))
        _set(self, "ego_from_camera", _array(o, "ego_from_camera", self.ego_from_camera, (4, 4), np.float64))
        _set(self, "distortion", _array(o, "distortion", self.distortion, (None,), np.float64))
        if not all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in (self.width, self.height)):
            raise ValueError(f"{o}: width and height must be ints, got {self.width!r}x{self.height!r}")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"{o}: width and height must be positive, got {self.width}x{self.height}")

    def load_image(self) -> U8:
        """The image as uint8 ``(height, width, 3)`` RGB."""
        if self.loader is None:
            raise ValueError(f"Camera[{self.name}] has no image loader (path {self.image_path})")
        img = self.loader()
        if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.shape != (self.height, self.width, 3):
            got = f"{img.dtype} {img.shape}" if isinstance(img, np.ndarray) else type(img).__name__
            raise ValueError(
                f"Camera[{self.name}] image {self.image_path}: expected uint8 ({self.height}, {self.width}, 3), "
                f"got {got}"
            )
        return img


@dataclass(frozen=True)
class Lidar:
    """A point cloud in the ego frame: ``points (N, C)`` with columns ``channels`` (x, y, z, intensity first)."""

    points: F32
    channels: tuple[str, ...] = ("x", "y", "z", "intensity")
    path: str | None = None

    def __post_init__(self) -> None:
        pts = _array("Lidar", "points", self.points, (None, len(self.channels)), np.float32)
        if len(self.channels) < 4 or self.channels[:4] != ("x", "y", "z", "intensity"):
            raise ValueError(f"Lidar.channels must start with x, y, z, intensity, got {self.channels}")
        _set(self, "points", pts)

    @property
    def xyz(self) -> F32:
        return self.points[:, :3]


@dataclass(frozen=True)
class Radar:
    """Radar returns in the ego frame: ``points (N, 5)`` = x, y, z (m), radial velocity (m/s, as the sensor
    reports it), sensor index (0 .. ``num_sensors`` - 1, in the source's sensor order)."""

    points: F32
    num_sensors: int

    def __post_init__(self) -> None:
        pts = _array("Radar", "points", self.points, (None, 5), np.float32)
        if self.num_sensors < 1:
            raise ValueError(f"Radar.num_sensors must be >= 1, got {self.num_sensors}")
        ids = pts[:, 4]
        if len(ids) and (np.any(ids != np.round(ids)) or ids.min() < 0 or ids.max() >= self.num_sensors):
            raise ValueError(f"Radar.points: sensor indices must be integers in 0..{self.num_sensors - 1}")
        _set(self, "points", pts)


@dataclass(frozen=True)
class EgoState:
    """Ego motion in the ego frame at t = 0 and its recent history.

    ``history_poses`` ``(H, 3)`` are (x, y, heading) of past frames relative to the current one, oldest first,
    the last being the current pose (0, 0, 0); ``history_times_s`` are their times (<= 0).
    """

    velocity_mps: F64
    acceleration_mps2: F64
    history_poses: F64
    history_times_s: F64

    def __post_init__(self) -> None:
        _set(self, "velocity_mps", _array("EgoState", "velocity_mps", self.velocity_mps, (2,), np.float64))
        _set(self, "acceleration_mps2",
             _array("EgoState", "acceleration_mps2", self.acceleration_mps2, (2,), np.float64))
        hp = _array("EgoState", "history_poses", self.history_poses, (None, 3), np.float64)
        ht = _array("EgoState", "history_times_s", self.history_times_s, (hp.shape[0],), np.float64)
        if ht.size and (np.any(np.diff(ht) <= 0) or ht[-1] > 1e-6):
            raise ValueError(f"EgoState.history_times_s must increase and end at <= 0, got {ht}")
        _set(self, "history_poses", hp)
        _set(self, "history_times_s", ht)

    @property
    def speed_mps(self) -> float:
        return float(np.hypot(*self.velocity_mps))


@dataclass(frozen=True)
class Navigation:
    """Route information a policy may use: the 4-way command and optional target points / route."""

    command: DrivingCommand
    source_command: int | None = None  # the source's own value (CARLA's 6-way, Waymo's intent), kept
    target_points_xy: F64 | None = None  # (K, 2) in the ego frame
    route_xy: F64 | None = None  # (M, 2) in the ego frame

    def __post_init__(self) -> None:
        if not isinstance(self.command, DrivingCommand):
            raise ValueError(f"Navigation.command must be a DrivingCommand, got {self.command!r}")
        if self.target_points_xy is not None:
            _set(self, "target_points_xy",
                 _array("Navigation", "target_points_xy", self.target_points_xy, (None, 2), np.float64))
        if self.route_xy is not None:
            _set(self, "route_xy", _array("Navigation", "route_xy", self.route_xy, (None, 2), np.float64))


@dataclass(frozen=True)
class Observation:
    """Everything a policy may use at test time."""

    cameras: Mapping[str, Camera]
    ego: EgoState
    navigation: Navigation
    lidar: Lidar | None = None
    radar: Radar | None = None

    def __post_init__(self) -> None:
        for name, cam in self.cameras.items():
            if not isinstance(cam, Camera) or cam.name != name:
                raise ValueError(f"Observation.cameras[{name!r}] must be a Camera named {name!r}")


# --- targets ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Boxes3D:
    """Oriented 3-D boxes in the ego frame.

    ``center_xyz (N, 3)`` box centres, ``size_lwh (N, 3)`` length/width/height, ``yaw_rad (N,)``,
    ``velocity_xy_mps (N, 2)`` in the ego frame, ``class_names (N,)`` canonical classes, ``source_classes
    (N,)`` the source's own names, ``track_ids (N,)``.
    """

    center_xyz: F64
    size_lwh: F64
    yaw_rad: F64
    velocity_xy_mps: F64
    class_names: tuple[str, ...]
    source_classes: tuple[str, ...]
    track_ids: tuple[str, ...]

    def __post_init__(self) -> None:
        c = _array("Boxes3D", "center_xyz", self.center_xyz, (None, 3), np.float64)
        n = c.shape[0]
        _set(self, "center_xyz", c)
        _set(self, "size_lwh", _array("Boxes3D", "size_lwh", self.size_lwh, (n, 3), np.float64))
        _set(self, "yaw_rad", _array("Boxes3D", "yaw_rad", self.yaw_rad, (n,), np.float64))
        _set(self, "velocity_xy_mps",
             _array("Boxes3D", "velocity_xy_mps", self.velocity_xy_mps, (n, 2), np.float64, finite=False))
        for name in ("class_names", "source_classes", "track_ids"):
            if isinstance(getattr(self, name), str):  # a bare string would be split into characters
                raise ValueError(f"Boxes3D.{name}: expected a sequence of {n} strings, got one string")
            v = tuple(str(x) for x in getattr(self, name))
            if len(v) != n:
                raise ValueError(f"Boxes3D.{name}: expected {n} entries, got {len(v)}")
            _set(self, name, v)
        if np.any(self.size_lwh <= 0):
            raise ValueError("Boxes3D.size_lwh must be positive")

    def __len__(self) -> int:
        return int(self.center_xyz.shape[0])

    @classmethod
    def empty(cls) -> Boxes3D:
        z = np.zeros((0, 3))
        return cls(z, z, np.zeros(0), np.zeros((0, 2)), (), (), ())


@dataclass(frozen=True)
class BEVRaster:
    """A bird's-eye-view class raster in the ego frame.

    ``classes (H, W)`` uint8 class ids indexing ``vocabulary``; row 0 is the far front (x max), column 0 the
    far left (y max), so the image reads as a map with the ego driving up. ``extent_m`` = (x_min, x_max,
    y_min, y_max) and ``resolution_m`` metres per pixel.
    """

    classes: U8
    vocabulary: tuple[str, ...]
    resolution_m: float
    extent_m: tuple[float, float, float, float]

    def __post_init__(self) -> None:
        c = _array("BEVRaster", "classes", self.classes, (None, None), np.uint8)
        if c.size and int(c.max()) >= len(self.vocabulary):
            raise ValueError(f"BEVRaster.classes has id {int(c.max())} beyond a vocabulary of {len(self.vocabulary)}")
        try:
            x0, x1, y0, y1 = (float(v) for v in self.extent_m)
            res = float(self.resolution_m)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"BEVRaster.extent_m must be 4 numbers and resolution_m a number, got {self.extent_m!r}, "
                f"{self.resolution_m!r}"
            ) from exc
        if not (np.isfinite([x0, x1, y0, y1, res]).all() and res > 0):
            raise ValueError(f"BEVRaster: extent_m {self.extent_m} and resolution_m {self.resolution_m} must be "
                             "finite, resolution_m > 0")
        h, w = round((x1 - x0) / self.resolution_m), round((y1 - y0) / self.resolution_m)
        if (h, w) != c.shape:
            raise ValueError(f"BEVRaster.classes: shape {c.shape} does not match extent_m {self.extent_m} at "
                             f"{self.resolution_m} m, which gives {(h, w)}")
        _set(self, "classes", c)


@dataclass(frozen=True)
class Targets:
    """Training and scoring information; never handed to a policy at test time."""

    future: Trajectory | None = None
    boxes: Boxes3D | None = None
    bev: BEVRaster | None = None
    rater_trajectories: tuple[Trajectory, ...] = ()
    rater_scores: F64 | None = None
    semantics: Mapping[str, U8] = field(default_factory=dict)  # per camera (H, W) class ids
    depth_m: Mapping[str, F32] = field(default_factory=dict)  # per camera (H, W)
    target_speed_mps: float | None = None  # the expert's target speed (CARLA/LEAD); None where a source has none
    brake: bool | None = None  # the expert brakes at this frame (CARLA/LEAD); None where unknown

    def __post_init__(self) -> None:
        if self.target_speed_mps is not None:
            v = float(self.target_speed_mps)
            if not (np.isfinite(v) and v >= 0.0):
                raise ValueError(f"Targets.target_speed_mps must be finite and >= 0, got {self.target_speed_mps}")
            _set(self, "target_speed_mps", v)
        if self.brake is not None:
            _set(self, "brake", bool(self.brake))
        if not all(isinstance(t, Trajectory) for t in self.rater_trajectories):
            raise ValueError("Targets.rater_trajectories must all be Trajectory")
        _set(self, "rater_trajectories", tuple(self.rater_trajectories))
        if self.rater_scores is not None:
            _set(self, "rater_scores", _array("Targets", "rater_scores", self.rater_scores,
                                              (len(self.rater_trajectories),), np.float64))
        _set(self, "semantics", {k: _array("Targets", f"semantics[{k}]", v, (None, None), np.uint8)
                                 for k, v in self.semantics.items()})
        # Depth may be inf where no surface was hit (sky), so it is not required to be finite.
        _set(self, "depth_m", {k: _array("Targets", f"depth_m[{k}]", v, (None, None), np.float32, finite=False)
                               for k, v in self.depth_m.items()})


@dataclass(frozen=True)
class Sample:
    meta: SampleMeta
    observation: Observation
    targets: Targets
