"""Pickle-layout stand-ins for the nuPlan objects a NAVSIM v2 synthetic scene pickle holds.

``Scene.save_to_disk`` (navsim ``main``) pickles ``extended_detections_tracks`` (a list of nuPlan
``DetectionsTracks``) and ``extended_traffic_light_data`` (a list of ``TrafficLightStatuses``) as they are, so
a synthetic scene file names nuPlan classes. lead-bench installs neither project; these classes pickle the
very state the nuPlan classes pickle (checked against nuplan-devkit by unpickling there), written under the
nuPlan paths (:data:`GLOBAL_NAMES`), and read back from those paths (:data:`SUBSTITUTES`):

- ``StateSE2`` / ``StateVector2D`` / ``TimePoint``: ``__slots__`` classes, state ``(None, {slot: value})``;
- ``OrientedBox``: ``{_center, _length, _width, _height}``; ``SceneObjectMetadata``: its dataclass fields;
- ``Agent``: ``{_initial_time_stamp, _predictions, _past_trajectory, _metadata, instance_token,
  _tracked_object_type, _box, _velocity, _angular_velocity}``; ``StaticObject``: ``{_metadata, instance_token,
  _tracked_object_type, _box, predictions, past_trajectory, velocity}``;
- ``TrackedObjects``: ``{tracked_objects}`` sorted by type value; ``DetectionsTracks``: ``{tracked_objects}``;
- ``TrackedObjectType`` / ``TrafficLightStatusType``: enums, pickled as ``Enum(value)``;
- ``TrafficLightStatuses``: ``{traffic_lights}``; ``TrafficLightStatusData``: ``{status, lane_connector_id,
  timestamp}``.

Everything is in the map frame (nuPlan's global frame), metres, radians, microseconds.
"""

from __future__ import annotations

import copyreg
from typing import Any

import numpy as np

_SA = "nuplan.common.actor_state"


class _Slotted:
    """Base of the stand-ins for nuPlan's ``__slots__`` classes: state ``(None, {slot: value})``."""

    _slots: tuple[str, ...] = ()

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        return copyreg.__newobj__, (type(self),), (None, {k: getattr(self, k) for k in self._slots})


class _Plain:
    """Base of the stand-ins for nuPlan's ``__dict__`` classes: state = ``__dict__``."""

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        return copyreg.__newobj__, (type(self),), dict(self.__dict__)


class StateSE2(_Slotted):
    _slots = ("heading", "x", "y")

    def __init__(self, x: float, y: float, heading: float) -> None:
        self.x, self.y, self.heading = float(x), float(y), float(heading)


class StateVector2D(_Slotted):
    _slots = ("_x", "_y", "_array")

    def __init__(self, x: float, y: float) -> None:
        self._x, self._y = float(x), float(y)
        self._array = np.array([self._x, self._y], dtype=np.float64)


class TimePoint(_Slotted):
    _slots = ("time_us",)

    def __init__(self, time_us: int) -> None:
        self.time_us = int(time_us)


class OrientedBox(_Plain):
    def __init__(self, center: StateSE2, length: float, width: float, height: float) -> None:
        self._center, self._length, self._width, self._height = center, float(length), float(width), float(height)


class SceneObjectMetadata(_Plain):
    def __init__(self, timestamp_us: int, token: str, track_id: Any, track_token: str,
                 category_name: str | None) -> None:
        self.timestamp_us, self.token, self.track_id = int(timestamp_us), token, track_id
        self.track_token, self.category_name = track_token, category_name


class TrackedObjectType:
    """nuPlan's ``TrackedObjectType`` by value (0 vehicle .. 7 ego); pickled as ``TrackedObjectType(value)``."""

    NAMES = ("vehicle", "pedestrian", "bicycle", "traffic_cone", "barrier", "czone_sign", "generic_object", "ego")

    def __init__(self, value: int) -> None:
        if not 0 <= int(value) < len(self.NAMES):
            raise ValueError(f"TrackedObjectType: unknown value {value!r}")
        self.value = int(value)

    @property
    def fullname(self) -> str:
        return self.NAMES[self.value]

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        return type(self), (self.value,)


class TrafficLightStatusType:
    """nuPlan's ``TrafficLightStatusType`` (GREEN 0, YELLOW 1, RED 2, UNKNOWN 3)."""

    def __init__(self, value: int) -> None:
        if not 0 <= int(value) <= 3:
            raise ValueError(f"TrafficLightStatusType: unknown value {value!r}")
        self.value = int(value)

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        return type(self), (self.value,)


class Agent(_Plain):
    def __init__(self, object_type: TrackedObjectType, box: OrientedBox, velocity: StateVector2D,
                 metadata: SceneObjectMetadata) -> None:
        self._initial_time_stamp = TimePoint(metadata.timestamp_us)
        self._predictions: list[Any] = []
        self._past_trajectory = None
        self._metadata = metadata
        self.instance_token = None
        self._tracked_object_type = object_type
        self._box = box
        self._velocity = velocity
        self._angular_velocity = None


class StaticObject(_Plain):
    def __init__(self, object_type: TrackedObjectType, box: OrientedBox, metadata: SceneObjectMetadata) -> None:
        self._metadata = metadata
        self.instance_token = None
        self._tracked_object_type = object_type
        self._box = box
        self.predictions = None
        self.past_trajectory = None
        self.velocity = StateVector2D(0.0, 0.0)


class TrackedObjects(_Plain):
    def __init__(self, tracked_objects: list[Agent | StaticObject]) -> None:
        self.tracked_objects = sorted(tracked_objects, key=lambda o: o._tracked_object_type.value)


class DetectionsTracks(_Plain):
    def __init__(self, tracked_objects: TrackedObjects) -> None:
        self.tracked_objects = tracked_objects


class TrafficLightStatusData(_Plain):
    def __init__(self, status: TrafficLightStatusType, lane_connector_id: int, timestamp: int) -> None:
        self.status, self.lane_connector_id, self.timestamp = status, int(lane_connector_id), int(timestamp)


class TrafficLightStatuses(_Plain):
    def __init__(self, traffic_lights: list[TrafficLightStatusData]) -> None:
        self.traffic_lights = traffic_lights


#: stand-in -> the nuPlan path it is written as.
GLOBAL_NAMES: dict[Any, tuple[str, str]] = {
    StateSE2: (f"{_SA}.state_representation", "StateSE2"),
    StateVector2D: (f"{_SA}.state_representation", "StateVector2D"),
    TimePoint: (f"{_SA}.state_representation", "TimePoint"),
    OrientedBox: (f"{_SA}.oriented_box", "OrientedBox"),
    SceneObjectMetadata: (f"{_SA}.scene_object", "SceneObjectMetadata"),
    TrackedObjectType: (f"{_SA}.tracked_objects_types", "TrackedObjectType"),
    Agent: (f"{_SA}.agent", "Agent"),
    StaticObject: (f"{_SA}.static_object", "StaticObject"),
    TrackedObjects: (f"{_SA}.tracked_objects", "TrackedObjects"),
    DetectionsTracks: ("nuplan.planning.simulation.observation.observation_type", "DetectionsTracks"),
    TrafficLightStatusType: ("nuplan.common.maps.maps_datatypes", "TrafficLightStatusType"),
    TrafficLightStatusData: ("nuplan.common.maps.maps_datatypes", "TrafficLightStatusData"),
    TrafficLightStatuses: ("nuplan.common.maps.maps_datatypes", "TrafficLightStatuses"),
}
#: nuPlan path -> the stand-in a restricted unpickler builds instead (plus copyreg's reconstructor).
SUBSTITUTES: dict[tuple[str, str], Any] = {path: cls for cls, path in GLOBAL_NAMES.items()}
