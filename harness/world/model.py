"""The embedded world's own record of what happened: typed, in the global (map) frame, at 10 Hz.

Writers for each source (NAVSIM pickles, Waymo TFRecords, LEAD route folders) turn a ``WorldLog`` into
that source's on-disk format; nothing here knows any file format.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from harness.maps import RoadMap
from harness.types import DrivingCommand

F64 = npt.NDArray[np.float64]

#: nuPlan/OpenScene category names used by the world. Agents move; the rest are static objects.
AGENT_CATEGORIES = ("vehicle", "pedestrian", "bicycle")
STATIC_CATEGORIES = ("traffic_cone", "barrier", "czone_sign", "generic_object")


@dataclass(frozen=True)
class ObjectStates:
    """Every object at one time step, global frame.

    ``center_xyz (N, 3)`` box centres (z = box centre height above the ground plane z = 0), ``size_lwh
    (N, 3)``, ``yaw_rad (N,)``, ``velocity_xy_mps (N, 2)`` global-frame velocity, ``categories (N,)`` nuPlan
    category names, ``track_tokens (N,)`` stable across time (16 hex characters).
    """

    track_tokens: tuple[str, ...]
    categories: tuple[str, ...]
    center_xyz: F64
    size_lwh: F64
    yaw_rad: F64
    velocity_xy_mps: F64

    def __post_init__(self) -> None:
        n = len(self.track_tokens)
        for name, shape in (("center_xyz", (n, 3)), ("size_lwh", (n, 3)), ("yaw_rad", (n,)),
                            ("velocity_xy_mps", (n, 2))):
            arr = np.asarray(getattr(self, name), dtype=np.float64)
            if arr.shape != shape or not np.all(np.isfinite(arr)):
                raise ValueError(f"ObjectStates.{name}: expected finite {shape}, got {arr.shape}")
            object.__setattr__(self, name, arr)
        if len(self.categories) != n:
            raise ValueError(f"ObjectStates.categories: expected {n} entries, got {len(self.categories)}")

    def __len__(self) -> int:
        return len(self.track_tokens)


@dataclass(frozen=True)
class WorldFrame:
    """One 10 Hz step of a log.

    ``ego_pose (3,)`` = global (x, y, heading) of the ego rear axle; ``ego_velocity_mps`` and
    ``ego_acceleration_mps2`` ``(2,)`` are in the ego frame. ``traffic_lights`` = (lane connector id, is red)
    for every signalised connector. ``route_roadblock_ids`` is the ego's route from here on.
    """

    timestamp_us: int
    ego_pose: F64
    ego_velocity_mps: F64
    ego_acceleration_mps2: F64
    objects: ObjectStates
    traffic_lights: tuple[tuple[int, bool], ...]
    route_roadblock_ids: tuple[int, ...]
    driving_command: DrivingCommand


@dataclass(frozen=True)
class WorldLog:
    """A contiguous drive: 10 Hz frames over one map."""

    name: str
    map: RoadMap
    frames: tuple[WorldFrame, ...]
    seed: int

    @property
    def frame_interval_s(self) -> float:
        return 0.1
