"""Label vocabularies of LEAD's CARLA data mapped onto lead-bench's canonical ones.

Boxes
-----
Canonical box classes are nuPlan's categories (what the NAVSIM adapter and the embedded world use) plus the two
CARLA-only kinds: :data:`CANONICAL_BOX_CLASSES`. LEAD's box dicts (``expert.get_bounding_boxes``) map as

==========================================  =================  ==========================================
LEAD ``class`` (``type_id`` / ``mesh_path``)  canonical          LEAD's own training label
==========================================  =================  ==========================================
``car``                                     ``vehicle``        VEHICLE (SPECIAL for scenario emergency cars)
``car`` with a bicycle/motorbike mesh       ``bicycle``        BIKER
``walker``                                  ``pedestrian``     WALKER
``static_prop_car``                         ``vehicle``        PARKING
``static``, ParkedVehicles / Car mesh        ``vehicle``        PARKING
``static``, ``static.prop.constructioncone`` ``traffic_cone``   OBSTACLE
``static``, ``static.prop.trafficwarning``   ``czone_sign``     OBSTACLE
``static``, ``static.prop.streetbarrier``    ``barrier``        (not labelled)
other ``static``                            ``generic_object`` (not labelled)
``traffic_light``                           ``traffic_light``  TRAFFIC_LIGHT
``stop_sign``                               ``stop_sign``      STOP_SIGN
``ego_car``                                 dropped            dropped
==========================================  =================  ==========================================

The source class kept in :attr:`harness.types.Boxes3D.source_classes` is ``class`` or ``class:type_id``.
LEAD's training-time filters (occlusion thresholds, red lights only, BEV area) are the model's choice and are
not applied to the boxes; the BEV raster below follows LEAD's drawing rules.

Commands
--------
CARLA's 6-way ``RoadOption`` -> canonical 4-way :class:`harness.types.DrivingCommand`: LEFT -> LEFT, RIGHT ->
RIGHT, STRAIGHT and LANEFOLLOW -> STRAIGHT, CHANGELANELEFT -> LEFT, CHANGELANERIGHT -> RIGHT (NAVSIM's command is
geometric, left/right beyond 2 m of lateral offset 20 m ahead, which a lane change produces), VOID/UNKNOWN and
anything else -> UNKNOWN. (LEAD's ``command_to_one_hot`` folds VOID/UNKNOWN into LANEFOLLOW instead.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

from adapters.carla.format import (
    BEV_CLASSES,
    BIKER_TYPES,
    EMERGENCY_TYPES,
    HDMAP_PX_PER_M,
    HDMAP_SIZE_PX,
    HDMAP_TO_BEV,
    OBSTACLE_TYPES,
    CarlaCommand,
)
from harness.types import DrivingCommand

F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]

CANONICAL_BOX_CLASSES = ("vehicle", "pedestrian", "bicycle", "traffic_cone", "barrier", "czone_sign",
                         "generic_object", "traffic_light", "stop_sign")

_STATIC_TYPES = {"static.prop.constructioncone": "traffic_cone", "static.prop.trafficwarning": "czone_sign",
                 "static.prop.streetbarrier": "barrier"}

COMMAND_TO_CANONICAL: dict[int, DrivingCommand] = {
    CarlaCommand.LEFT: DrivingCommand.LEFT,
    CarlaCommand.RIGHT: DrivingCommand.RIGHT,
    CarlaCommand.STRAIGHT: DrivingCommand.STRAIGHT,
    CarlaCommand.LANEFOLLOW: DrivingCommand.STRAIGHT,
    CarlaCommand.CHANGELANELEFT: DrivingCommand.LEFT,
    CarlaCommand.CHANGELANERIGHT: DrivingCommand.RIGHT,
}


def canonical_command(carla_command: int) -> DrivingCommand:
    """CARLA's 6-way command (``RoadOption`` value) -> the canonical 4-way command (see the module docstring)."""
    return COMMAND_TO_CANONICAL.get(int(carla_command), DrivingCommand.UNKNOWN)


def _is_parked_mesh(box: Mapping[str, Any]) -> bool:
    mesh = box.get("mesh_path")
    return isinstance(mesh, str) and ("ParkedVehicles" in mesh or "Car" in mesh)


def canonical_box_class(box: Mapping[str, Any]) -> str | None:
    """The canonical class of one LEAD box dict, or None for the ego's own box."""
    cls = box.get("class")
    type_id = str(box.get("type_id") or "")
    if cls == "ego_car":
        return None
    if cls == "car":
        return "bicycle" if type_id in BIKER_TYPES else "vehicle"
    if cls == "walker":
        return "pedestrian"
    if cls == "static_prop_car":
        return "vehicle"
    if cls == "static":
        if type_id in _STATIC_TYPES:
            return _STATIC_TYPES[type_id]
        return "vehicle" if _is_parked_mesh(box) else "generic_object"
    if cls in ("traffic_light", "stop_sign"):
        return str(cls)
    raise ValueError(f"unknown LEAD box class {cls!r} (known: ego_car, car, walker, static, static_prop_car, "
                     "traffic_light, stop_sign)")


def source_box_class(box: Mapping[str, Any]) -> str:
    type_id = box.get("type_id")
    return f"{box.get('class')}:{type_id}" if type_id else str(box.get("class"))


# --- BEV semantics ---------------------------------------------------------------------------------------

#: ``TransfuserBEVOccupancyClass`` ids (1..9) are painted as BEV ids + 3 (LEAD's offset 13 - 10).
_OCC_OFFSET = len(BEV_CLASSES) - 10
_VEHICLE, _WALKER, _OBSTACLE, _PARKING, _SPECIAL, _BIKER, _GREEN, _RED, _RED_NOT_NORMAL = range(1, 10)
#: LEAD's occlusion thresholds (``TrainingConfig``): (min LiDAR points, min visible pixels).
_OCCLUSION = {"walker": (5, 15), "car": (1, 1), "static": (3, 5), "static_prop_car": (3, 5)}
#: Walkers and bikers are drawn 2.5x larger with half extents of at least 0.4 m (``TrainingConfig``).
_PED_SCALE, _PED_MIN_EXTENT = 2.5, 0.4
#: BEV raster of the reader: the hdmap square upsampled x2 (LEAD's 4 px/m), CARLA frame, LEAD layout.
BEV_PX_PER_M = 2 * HDMAP_PX_PER_M
BEV_HALF_M = HDMAP_SIZE_PX / HDMAP_PX_PER_M / 2.0


def _occupancy_label(box: Mapping[str, Any], meta: Mapping[str, Any]) -> int:
    cls = box.get("class")
    type_id = str(box.get("type_id") or "")
    if cls == "car":
        if type_id in EMERGENCY_TYPES:
            return _SPECIAL
        return _BIKER if type_id in BIKER_TYPES else _VEHICLE
    if cls == "walker":
        return _WALKER
    if cls == "static_prop_car":
        return _PARKING
    if cls == "static":
        if type_id in OBSTACLE_TYPES:
            return _OBSTACLE
        if type_id in EMERGENCY_TYPES:
            return _SPECIAL
        mesh = box.get("mesh_path")
        return _PARKING if isinstance(mesh, str) and "ParkedVehicles" in mesh else 0
    if cls == "traffic_light" and box.get("affects_ego"):
        if box.get("state") in ("Red", "Yellow"):
            unusual = bool(meta.get("over_head_traffic_light")) or bool(meta.get("europe_traffic_light"))
            return _RED_NOT_NORMAL if unusual else _RED
        return _GREEN
    return 0


def _occluded(box: Mapping[str, Any]) -> bool:
    lim = _OCCLUSION.get(str(box.get("class")))
    if lim is None:
        return False
    pts, pix = int(box.get("num_points", -1)), int(box.get("visible_pixels", -1))
    return 0 <= pts < lim[0] and 0 <= pix < lim[1]


def bev_semantics(hdmap: U8, boxes: Sequence[Mapping[str, Any]], meta: Mapping[str, Any],
                  box_xy: F64, box_yaw: F64, box_extent: F64) -> U8:
    """LEAD's 13-class BEV target in LEAD's layout (row = CARLA y, column = x), 4 px/m over the hdmap square.

    The hdmap (ChauffeurNet classes, 2 px/m) is converted to BEV classes and upsampled x2 (``carla_dataset``),
    then the boxes are painted on top as in ``carla_dataset_utils.build_bev_occupancy`` (leaderboard labels,
    occlusion filter, pedestrian scaling). Not reproduced: the scenario-specific relabels (accident and
    construction hulls, opened doors, scenario parking) and the red-light convex hulls.

    Args:
        hdmap: ``(256, 256)`` stored hdmap.
        boxes: the frame's box dicts.
        meta: the frame's meta (traffic-light flags).
        box_xy, box_yaw, box_extent: ``(N, 2)``, ``(N,)``, ``(N, 2)`` box positions, yaws and half extents in
            the (possibly perturbed) CARLA ego frame, one row per entry of ``boxes``.
    """
    base = HDMAP_TO_BEV[np.clip(hdmap, 0, len(HDMAP_TO_BEV) - 1)].repeat(2, axis=0).repeat(2, axis=1)
    img = Image.fromarray(np.ascontiguousarray(base), mode="L")
    draw = ImageDraw.Draw(img)
    size = base.shape[0]
    for k, box in enumerate(boxes):
        label = _occupancy_label(box, meta)
        if label == 0 or _occluded(box):
            continue
        ex, ey = (float(v) for v in box_extent[k])
        if box.get("class") == "walker" or str(box.get("type_id") or "") in BIKER_TYPES:
            ex, ey = max(ex, _PED_MIN_EXTENT) * _PED_SCALE, max(ey, _PED_MIN_EXTENT) * _PED_SCALE
        c, s = np.cos(box_yaw[k]), np.sin(box_yaw[k])
        local = np.array([[ex, ey], [-ex, ey], [-ex, -ey], [ex, -ey]])
        xy = box_xy[k] + local @ np.array([[c, s], [-s, c]])
        # LEAD truncates the corners to integers (cv2.boxPoints(...).astype(int32)) before filling.
        cols = np.trunc((xy[:, 0] + BEV_HALF_M) * BEV_PX_PER_M)
        rows = np.trunc((xy[:, 1] + BEV_HALF_M) * BEV_PX_PER_M)
        if np.all((cols < 0) | (cols >= size)) or np.all((rows < 0) | (rows >= size)):
            continue
        draw.polygon(np.column_stack([cols, rows]).ravel().tolist(), fill=label + _OCC_OFFSET)
    return np.asarray(img, dtype=np.uint8)
