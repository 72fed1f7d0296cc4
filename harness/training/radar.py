"""Radar inputs and radar-detection labels for TFv6's radar detector (CARLA only; :mod:`harness.model.radar`).

- :func:`encode_radar_points`: LEAD's ``preprocess_radar_input``: per sensor, the returns inside the BEV extent in
  their stored order, the first ``radar_points_per_sensor`` kept, zero-padded; each row carries its sensor index
  (padding rows too) -> ``(sensors * points, 5)`` = x, y, z, radial velocity, sensor index.
- :func:`radar_detection_labels`: LEAD's ``parse_radar_detection_labels``: the boxes inside the BEV extent with
  at least one radar return, sorted by speed (descending), then class priority (special vehicle, vehicle,
  walker, obstacle, parking, the rest), then return count (descending); the first ``num_radar_queries`` as
  (x, y, speed, 1), the rest zeros.

Where lead-bench differs: LEAD's collector counts the radar returns that hit each actor (``num_radar_points``);
the embedded world's LEAD files carry -1 there, so returns are counted here from the frame's radar reading,
inside each box's footprint grown by :data:`BOX_MARGIN_M` (returns lie on surfaces). The canonical box classes
merge LEAD's SPECIAL and PARKING into vehicle (the sim-to-real vocabulary), so those two priorities are not
told apart. Positions follow the sample's view augmentation like every other label.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from harness.model.io import TFv6Config
from harness.training.labels import head_classes
from harness.training.views import ViewAugment
from harness.types import Boxes3D, Radar

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

#: A radar return counts for a box within this distance (m) outside its footprint.
BOX_MARGIN_M = 0.5
#: LEAD's class priority over its CARLA box classes (``TransfuserBoundingBoxClass``: SPECIAL 4, VEHICLE 0,
#: WALKER 1, OBSTACLE 5, PARKING 6); any other class sorts after them.
CLASS_PRIORITY = (4, 0, 1, 5, 6)


def _inside_extent(xy: F64, cfg: TFv6Config) -> npt.NDArray[np.bool_]:
    x0, x1, y0, y1 = cfg.bev_extent_m
    return (xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1)


def encode_radar_points(radar: Radar | None, cfg: TFv6Config, aug: ViewAugment | None = None) -> F32:
    """The model's radar input of one sample, ``(num_radar_sensors * radar_points_per_sensor, 5)`` float32."""
    s, p = cfg.num_radar_sensors, cfg.radar_points_per_sensor
    out = np.zeros((s, p, 5), np.float32)
    out[:, :, 4] = np.arange(s, dtype=np.float32)[:, None]
    if radar is not None and len(radar.points):
        pts = radar.points.astype(np.float64)
        xy = aug.points_xy(pts[:, :2]) if aug is not None else pts[:, :2]
        keep = _inside_extent(xy, cfg)
        ids = pts[:, 4].astype(np.int64)
        for k in range(s):
            sel = np.flatnonzero(keep & (ids == k))[:p]
            out[k, :len(sel), :2] = xy[sel]
            out[k, :len(sel), 2:4] = pts[sel, 2:4]
    return out.reshape(s * p, 5)


def radar_returns_per_box(centre_xy: F64, size_lw: F64, yaw_rad: F64, radar_xy: F64,
                          margin_m: float = BOX_MARGIN_M) -> npt.NDArray[np.int64]:
    """Returns inside each box footprint grown by ``margin_m``: ``(M,)`` counts (all inputs in one frame)."""
    if len(centre_xy) == 0 or len(radar_xy) == 0:
        return np.zeros(len(centre_xy), np.int64)
    d = radar_xy[None, :, :] - centre_xy[:, None, :]  # (M, N, 2)
    c, s = np.cos(yaw_rad)[:, None], np.sin(yaw_rad)[:, None]
    lx, ly = c * d[..., 0] + s * d[..., 1], -s * d[..., 0] + c * d[..., 1]
    half = size_lw / 2 + margin_m
    return ((np.abs(lx) <= half[:, None, 0]) & (np.abs(ly) <= half[:, None, 1])).sum(axis=1)


def radar_detection_labels(boxes: Boxes3D, radar: Radar, cfg: TFv6Config, aug: ViewAugment | None = None) -> F32:
    """``(num_radar_queries, 4)`` = x, y (m), speed (m/s), valid (see the module docstring)."""
    q = cfg.num_radar_queries
    out = np.zeros((q, 4), np.float32)
    if len(boxes) == 0 or len(radar.points) == 0:
        return out
    xy, yaw = boxes.center_xyz[:, :2], boxes.yaw_rad
    counts = radar_returns_per_box(xy, boxes.size_lwh[:, :2], yaw, radar.points[:, :2].astype(np.float64))
    if aug is not None:  # counted in the sample's own frame, reported in the augmented one
        xy = aug.points_xy(xy)
    speed = np.hypot(*np.nan_to_num(boxes.velocity_xy_mps).T)
    keep = np.flatnonzero((counts > 0) & _inside_extent(xy, cfg))
    if len(keep) == 0:
        return out
    rank = np.full(max(CLASS_PRIORITY) + 2, len(CLASS_PRIORITY))  # last slot: classes outside the table
    rank[list(CLASS_PRIORITY)] = np.arange(len(CLASS_PRIORITY))
    cls = head_classes(boxes, "carla")[keep]
    priority = rank[np.where((cls >= 0) & (cls < len(rank) - 1), cls, len(rank) - 1)]
    order = keep[np.lexsort((-counts[keep], priority, -speed[keep]))][:q]
    n = len(order)
    out[:n, 0:2] = xy[order]
    out[:n, 2] = speed[order]
    out[:n, 3] = 1.0
    return out
