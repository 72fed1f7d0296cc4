"""Named camera rigs that LEAD renders CARLA with, and the rig file that records a route's rig.

A :class:`Rig` is the cameras in LEAD's stitch order (slot 1 is the left-most strip of ``rgb/*.jpg``), each with
its stored image size, pinhole intrinsics and ``ego_from_camera`` in the **canonical** ego frame (x forward,
y left, z up, origin at the rear-axle centre; camera axes OpenCV's: x right, y down, z forward).

Rigs
----
``carla_lb_3cam``   LEAD's CARLA leaderboard rig (``config_base.camera_calibration``, target
                    ``CARLA_LEADERBOARD2_3CAMERAS``): 3 x 384 x 384, FOV 60 deg, CARLA mounts (x, y, z, yaw) =
                    (0.1, -0.35, 2.25, -54.5), (0.35, 0, 2.25, 0), (0.1, 0.35, 2.25, +54.5) (CARLA frame, y right,
                    yaw clockwise), i.e. left, front, right.
``navsim_4cam``     NAVSIM's nuPlan CAM_L0 | CAM_F0 | CAM_R0 | CAM_B0 (target ``NAVSIM_4CAMERAS``), taken from
                    :func:`harness.world.rig.nuplan_cameras` (the real nuPlan calibration, rear-axle frame),
                    raised by 0.45 - 0.36 m so the cameras keep their height above the road on CARLA's lower
                    rear axle. Like LEAD (``constants.NUPLAN_CAMERA_CALIBRATION``: 480 x 1120 // 4 rendered, 270
                    kept) each camera is stored 1120/1080 taller than nuPlan's image with the same K, so the top
                    1080/4 rows are nuPlan's view and LEAD's loader's 10-px bottom crop applies unchanged.
``waymo_front_3cam`` Waymo E2E's FRONT_LEFT | FRONT | FRONT_RIGHT (target ``WAYMO_E2E_2025_3CAMERAS``), taken
                    from :func:`harness.world.rig_waymo.waymo_cameras` (specs/waymo_e2e.md §1.7, LEAD's
                    ``WAYMO_E2E_INTRINSIC`` and mounts, origin on the ground there). Stored 972 x 1440 as LEAD
                    renders them (``height`` 1440, ``cropped_height`` 1080): c_v = 719 is the centre of 1440
                    rows, the only principal point a CARLA camera has, and LEAD's loader keeps the top 1080.
                    LEAD's slot dict lists FRONT_RIGHT first, but its converter
                    (``waymo_e2e_camera_setting_to_carla``) is unpublished; this rig stitches left to right
                    like the other two, and the rig file records the order actually written.

Rig file
--------
LEAD records the rig only as ``metas[...]["target_dataset"]`` (an int of ``TargetDataset``). The writer keeps
that key and adds ``<route>/rig.json`` with the full calibration (names, sizes, K, extrinsics). The reader
uses ``rig.json`` when present and otherwise the named rig of the route's ``target_dataset`` (real LEAD data);
it never looks at the path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from adapters.carla.format import TargetDataset
from adapters.carla.frames import CARLA_REAR_AXLE_M
from harness.errors import DataError
from harness.geometry import se3_from_rt

F64 = npt.NDArray[np.float64]
RIG_FILE = "rig.json"
RIG_FILE_VERSION = 1


@dataclass(frozen=True)
class RigCamera:
    """One camera of a rig: stored size, intrinsics at that size, canonical ``ego_from_camera`` (OpenCV axes)."""

    name: str
    width: int
    height: int
    intrinsics: F64
    ego_from_camera: F64

    def __post_init__(self) -> None:
        k = np.array(self.intrinsics, dtype=np.float64)
        m = np.array(self.ego_from_camera, dtype=np.float64)
        if k.shape != (3, 3) or m.shape != (4, 4) or not (np.isfinite(k).all() and np.isfinite(m).all()):
            raise ValueError(f"RigCamera[{self.name}]: intrinsics (3, 3) and ego_from_camera (4, 4) must be finite")
        r = m[:3, :3]
        if not np.allclose(r @ r.T, np.eye(3), atol=1e-6) or np.linalg.det(r) < 0:
            raise ValueError(f"RigCamera[{self.name}].ego_from_camera: rotation must be orthonormal with det +1")
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise ValueError(f"RigCamera[{self.name}]: width and height must be positive")
        k.setflags(write=False)
        m.setflags(write=False)
        object.__setattr__(self, "intrinsics", k)
        object.__setattr__(self, "ego_from_camera", m)
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))

    def scaled(self, factor: float) -> RigCamera:
        """Images resized by ``factor``; K's rows scale by the actual size ratios."""
        w, h = max(1, round(self.width * factor)), max(1, round(self.height * factor))
        k = self.intrinsics.copy()
        k[0] *= w / self.width
        k[1] *= h / self.height
        return replace(self, width=w, height=h, intrinsics=k)


@dataclass(frozen=True)
class Rig:
    """Cameras in stitch order (left-most strip first) and the LEAD target dataset they correspond to."""

    name: str
    target_dataset: TargetDataset
    cameras: tuple[RigCamera, ...]

    def __post_init__(self) -> None:
        if not self.cameras:
            raise ValueError(f"Rig[{self.name}]: needs at least one camera")
        if len({c.height for c in self.cameras}) != 1:
            raise ValueError(f"Rig[{self.name}]: stitched cameras must share one height")
        if len({c.name for c in self.cameras}) != len(self.cameras):
            raise ValueError(f"Rig[{self.name}]: duplicate camera names")
        object.__setattr__(self, "target_dataset", TargetDataset(int(self.target_dataset)))

    @property
    def width(self) -> int:
        return sum(c.width for c in self.cameras)

    @property
    def height(self) -> int:
        return self.cameras[0].height

    def column_ranges(self) -> tuple[tuple[int, int], ...]:
        """``(start, stop)`` columns of each camera in the stitched image."""
        stops = np.cumsum([c.width for c in self.cameras])
        return tuple((int(b - c.width), int(b)) for b, c in zip(stops, self.cameras))

    def scaled(self, factor: float) -> Rig:
        return replace(self, cameras=tuple(c.scaled(factor) for c in self.cameras))

    def to_json(self) -> dict[str, Any]:
        return {"version": RIG_FILE_VERSION, "name": self.name, "target_dataset": int(self.target_dataset),
                "frame": "canonical ego (x forward, y left, z up, rear-axle origin); camera axes OpenCV",
                "cameras": [{"name": c.name, "width": c.width, "height": c.height,
                             "intrinsics": c.intrinsics.tolist(), "ego_from_camera": c.ego_from_camera.tolist()}
                            for c in self.cameras]}

    @classmethod
    def from_json(cls, d: dict[str, Any], *, path: Path | None = None) -> Rig:
        try:
            if int(d["version"]) != RIG_FILE_VERSION:
                raise DataError(f"rig file version {d['version']} is not {RIG_FILE_VERSION}", path=path)
            cams = tuple(RigCamera(str(c["name"]), int(c["width"]), int(c["height"]), np.array(c["intrinsics"]),
                                   np.array(c["ego_from_camera"])) for c in d["cameras"])
            return cls(str(d["name"]), TargetDataset(int(d["target_dataset"])), cams)
        except DataError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"malformed rig file ({type(exc).__name__}: {exc})", path=path) from exc


def rig_file_bytes(rig: Rig) -> bytes:
    """The bytes of ``<route>/rig.json`` (the caller writes them atomically)."""
    return (json.dumps(rig.to_json(), indent=1) + "\n").encode()


def read_rig_file(route_dir: Path) -> Rig | None:
    """The route's ``rig.json``, or None if it has none (real LEAD data)."""
    path = route_dir / RIG_FILE
    if not path.is_file():
        return None
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"unreadable rig file ({exc})", path=path) from exc
    return Rig.from_json(d, path=path)


# --- construction helpers -------------------------------------------------------------------------------


def pinhole_from_fov(width: int, height: int, fov_deg: float) -> F64:
    """CARLA's camera intrinsics: f = W / (2 tan(fov / 2)), principal point at (W / 2, H / 2)."""
    f = width / (2.0 * np.tan(np.deg2rad(fov_deg) / 2.0))
    return np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]])


def carla_mount_to_ego_from_camera(pos_m: npt.ArrayLike, rot_deg: npt.ArrayLike) -> F64:
    """A CARLA sensor mount (x, y, z in the CARLA vehicle frame; roll, pitch, yaw in degrees, yaw clockwise,
    pitch up) -> canonical ``ego_from_camera`` in OpenCV axes.

    Roll is applied about the optical axis, positive turning the image clockwise as seen by the camera (the
    rigs here have roll 0; LEAD's NAVSIM mounts have |roll| < 2 deg and are not used by this module).
    """
    roll, pitch, yaw = np.deg2rad(np.asarray(rot_deg, dtype=np.float64))
    psi = -yaw  # canonical yaw (counter-clockwise)
    fwd = np.array([np.cos(pitch) * np.cos(psi), np.cos(pitch) * np.sin(psi), np.sin(pitch)])
    left0 = np.array([-np.sin(psi), np.cos(psi), 0.0])
    up0 = np.cross(fwd, left0)
    left = np.cos(roll) * left0 - np.sin(roll) * up0
    up = np.cross(fwd, left)
    rot = np.column_stack([-left, -up, fwd])  # OpenCV x right, y down, z forward
    p = np.asarray(pos_m, dtype=np.float64)
    t = np.array([p[0] - CARLA_REAR_AXLE_M[0], -p[1], p[2] - CARLA_REAR_AXLE_M[2]])
    return se3_from_rt(rot, t)


def _lb_3cam() -> Rig:
    mounts = (("rgb_left", (0.1, -0.35, 2.25), -54.5), ("rgb_front", (0.35, 0.0, 2.25), 0.0),
              ("rgb_right", (0.1, 0.35, 2.25), 54.5))
    k = pinhole_from_fov(384, 384, 60.0)
    cams = tuple(RigCamera(n, 384, 384, k, carla_mount_to_ego_from_camera(p, (0.0, 0.0, y))) for n, p, y in mounts)
    return Rig("carla_lb_3cam", TargetDataset.CARLA_LEADERBOARD2_3CAMERAS, cams)


def _lift(ego_from_camera: F64, dz_m: float) -> F64:
    out = np.array(ego_from_camera, dtype=np.float64)
    out[2, 3] += dz_m
    return out


def _navsim_4cam() -> Rig:
    from harness.world.rig import NUPLAN_LIDAR_ORIGIN_HEIGHT_M, nuplan_cameras

    by_name = {c.name: c for c in nuplan_cameras(0.25)}
    stored_h = round(1120 * 0.25)  # LEAD renders 1120 // 4 rows and keeps the top 1080 // 4
    # nuPlan's rear axle is 0.45 m above the road, CARLA's 0.36 m: keep the cameras' height above the road.
    dz = NUPLAN_LIDAR_ORIGIN_HEIGHT_M - float(CARLA_REAR_AXLE_M[2])
    cams = tuple(RigCamera(n, by_name[n].width, stored_h, by_name[n].intrinsics,
                           _lift(by_name[n].lidar_from_camera, dz)) for n in ("CAM_L0", "CAM_F0", "CAM_R0", "CAM_B0"))
    return Rig("navsim_4cam", TargetDataset.NAVSIM_4CAMERAS, cams)


#: LEAD's Waymo-rig render height (``constants.WAYMO_E2E_2025_CAMERA_SETTING``: height 1440, cropped_height 1080).
WAYMO_RENDER_HEIGHT = 1440


def _waymo_front_3cam() -> Rig:
    from harness.world.rig_waymo import waymo_cameras

    by_name = {c.name: c for c in waymo_cameras(1.0)}
    # harness/world/rig_waymo.py puts Waymo's vehicle-frame origin on the ground; the canonical CARLA sample's
    # rear axle is 0.36 m above it.
    dz = -float(CARLA_REAR_AXLE_M[2])
    return Rig("waymo_front_3cam", TargetDataset.WAYMO_E2E_2025_3CAMERAS, tuple(
        RigCamera(n, by_name[n].width, WAYMO_RENDER_HEIGHT, by_name[n].intrinsics, _lift(by_name[n].lidar_from_camera, dz))
        for n in ("FRONT_LEFT", "FRONT", "FRONT_RIGHT")))


_BUILDERS = {"carla_lb_3cam": _lb_3cam, "navsim_4cam": _navsim_4cam, "waymo_front_3cam": _waymo_front_3cam}
RIG_NAMES = tuple(_BUILDERS)
_BY_TARGET = {TargetDataset.CARLA_LEADERBOARD2_3CAMERAS: "carla_lb_3cam",
              TargetDataset.NAVSIM_4CAMERAS: "navsim_4cam",
              TargetDataset.WAYMO_E2E_2025_3CAMERAS: "waymo_front_3cam"}


def get_rig(name: str) -> Rig:
    """A named rig at LEAD's full resolution; ``.scaled(f)`` for smaller renders."""
    try:
        return _BUILDERS[name]()
    except KeyError:
        raise ValueError(f"unknown rig {name!r}; known rigs: {', '.join(RIG_NAMES)}") from None


def rig_for_target(target: int, *, where: str) -> Rig:
    """The named rig LEAD uses for a metas ``target_dataset`` value (routes without ``rig.json``)."""
    try:
        return get_rig(_BY_TARGET[TargetDataset(int(target))])
    except (KeyError, ValueError):
        known = ", ".join(f"{int(t)} ({t.name})" for t in _BY_TARGET)
        raise DataError(f"{where}: no rig for target_dataset {target!r} (known: {known})") from None
