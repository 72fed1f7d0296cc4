"""Dense training labels on the model's BEV raster and perception grid, from canonical boxes, rasters and
points (all in the ego frame after augmentation).

Raster convention (:mod:`harness.model.io`): row 0 is the far front (x max), column 0 the far left (y max);
a cell ``(r, c)`` of size ``cell_m`` spans ``x in (x_max - (r + 1) cell, x_max - r cell]`` and likewise in y.
Continuous grid coordinates are ``rho = (x_max - x) / cell`` (rows) and ``gamma = (y_max - y) / cell``
(columns): a box's centre cell is ``(floor(rho), floor(gamma))`` and its offset the fractional parts.

CenterNet targets follow LEAD (``carla_dataset_utils.get_centernet_labels``, checked against its code): a
Gaussian peak per box (sigma = diameter / 6) with CornerNet's radius of the box's half extents in cells for
``min_overlap = 0.1``, truncated to an integer and at least 2 cells, half length and half width in metres, the heading as one of
12 bins (bin k centred on ``k * 30 deg``) plus its residual, the box speed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from harness.types import BEVRaster, Boxes3D

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

#: Canonical box class -> class index of a source's CenterNet head (LEAD's label spaces, spec §1.4).
#: CARLA (``TransfuserBoundingBoxClass``): VEHICLE 0, WALKER 1, TRAFFIC_LIGHT 2, STOP_SIGN 3, SPECIAL 4,
#: OBSTACLE 5, PARKING 6, BIKER 7 (SPECIAL and PARKING come from the CARLA source class, see
#: :func:`head_classes`). NAVSIM: vehicles only.
BOX_HEAD_CLASSES: Mapping[str, Mapping[str, int]] = {
    "carla": {"vehicle": 0, "pedestrian": 1, "traffic_light": 2, "stop_sign": 3, "traffic_cone": 5,
              "czone_sign": 5, "bicycle": 7},
    "navsim": {"vehicle": 0},
    "waymo": {"vehicle": 0},
}
#: The lidar histogram's height window and saturation (LEAD ``rasterize_lidar``).
LIDAR_Z_RANGE_M = (-4.0, 10.0)
LIDAR_MAX_PER_PIXEL = 5.0


@dataclass(frozen=True)
class Grid:
    """A raster over ``extent_m = (x_min, x_max, y_min, y_max)`` with square cells of ``cell_m``."""

    extent_m: tuple[float, float, float, float]
    cell_m: float

    @property
    def shape(self) -> tuple[int, int]:
        x0, x1, y0, y1 = self.extent_m
        return round((x1 - x0) / self.cell_m), round((y1 - y0) / self.cell_m)

    def cell_centres(self) -> tuple[F64, F64]:
        """x and y (m) of every cell centre, each ``(rows, cols)``."""
        h, w = self.shape
        x = self.extent_m[1] - (np.arange(h) + 0.5) * self.cell_m
        y = self.extent_m[3] - (np.arange(w) + 0.5) * self.cell_m
        return np.broadcast_to(x[:, None], (h, w)), np.broadcast_to(y[None, :], (h, w))

    def continuous(self, xy: F64) -> tuple[F64, F64]:
        """(rho, gamma) continuous grid coordinates of points (N, 2)."""
        return (self.extent_m[1] - xy[:, 0]) / self.cell_m, (self.extent_m[3] - xy[:, 1]) / self.cell_m


def gaussian_radius(length_cells: F64, width_cells: F64, min_overlap: float = 0.1) -> F64:
    """CornerNet's radius so that a box shifted by it still overlaps the original by ``min_overlap`` (the
    smallest of its three cases), vectorised."""
    h, w = np.asarray(length_cells, np.float64), np.asarray(width_cells, np.float64)
    b1 = h + w
    c1 = w * h * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + np.sqrt(b1**2 - 4 * c1)) / 2
    b2 = 2 * (h + w)
    c2 = (1 - min_overlap) * w * h
    r2 = (b2 + np.sqrt(b2**2 - 16 * c2)) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (h + w)
    c3 = (min_overlap - 1) * w * h
    r3 = (b3 + np.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return np.minimum(np.minimum(r1, r2), r3)


def angle_to_class(yaw_rad: F64, num_bins: int) -> tuple[npt.NDArray[np.int64], F64]:
    """Heading bin (bin k centred on ``k * 2 pi / num_bins``) and the residual to its centre."""
    per = 2 * np.pi / num_bins
    shifted = np.mod(np.mod(np.asarray(yaw_rad, np.float64), 2 * np.pi) + per / 2, 2 * np.pi)
    cls = np.minimum(np.floor(shifted / per).astype(np.int64), num_bins - 1)
    return cls, shifted - (cls * per + per / 2)


@dataclass(frozen=True)
class BoxLabels:
    """CenterNet targets of one sample (see :class:`harness.model.io.BoxTarget`, without the batch axis)."""

    heatmap: F32  # (C, h, w)
    size_m: F32  # (2, h, w)
    offset: F32  # (2, h, w)
    yaw_class: npt.NDArray[np.int64]  # (h, w)
    yaw_res: F32  # (1, h, w)
    center_mask: F32  # (h, w)
    velocity_mps: F32  # (1, h, w)
    num_boxes: float


def box_labels(centre_xy: F64, size_lw: F64, yaw_rad: F64, speed_mps: F64, classes: npt.NDArray[np.int64],
               grid: Grid, num_classes: int, num_yaw_bins: int, min_radius: int = 2) -> BoxLabels:
    """CenterNet targets of boxes already in the (augmented) ego frame; boxes off the grid are left out."""
    h, w = grid.shape
    heat = np.zeros((num_classes, h, w), np.float32)
    size = np.zeros((2, h, w), np.float32)
    off = np.zeros((2, h, w), np.float32)
    yaw_c = np.zeros((h, w), np.int64)
    yaw_r = np.zeros((1, h, w), np.float32)
    mask = np.zeros((h, w), np.float32)
    vel = np.zeros((1, h, w), np.float32)
    rho, gam = grid.continuous(np.asarray(centre_xy, np.float64).reshape(-1, 2))
    r, c = np.floor(rho).astype(np.int64), np.floor(gam).astype(np.int64)
    inside = (r >= 0) & (r < h) & (c >= 0) & (c < w) & (classes >= 0) & (classes < num_classes)
    idx = np.nonzero(inside)[0]
    if idx.size:
        half = np.asarray(size_lw, np.float64)[idx] / (2.0 * grid.cell_m)  # LEAD passes half extents in cells
        rad = np.maximum(min_radius, gaussian_radius(half[:, 0], half[:, 1]).astype(np.int64))
        bins, res = angle_to_class(np.asarray(yaw_rad)[idx], num_yaw_bins)
        for j, k in enumerate(idx):  # one small Gaussian stamp per box (tens of boxes per sample)
            rk, ck, radk = int(r[k]), int(c[k]), int(rad[j])
            sigma = (2 * radk + 1) / 6.0
            ys, xs = np.arange(-radk, radk + 1), np.arange(-radk, radk + 1)
            g = np.exp(-(ys[:, None] ** 2 + xs[None, :] ** 2) / (2 * sigma * sigma))
            g[g < np.finfo(np.float32).eps * g.max()] = 0.0  # as LEAD's gaussian2d
            r0, r1 = max(0, rk - radk), min(h, rk + radk + 1)
            c0, c1 = max(0, ck - radk), min(w, ck + radk + 1)
            patch = g[r0 - rk + radk: r1 - rk + radk, c0 - ck + radk: c1 - ck + radk]
            hm = heat[classes[k]]
            hm[r0:r1, c0:c1] = np.maximum(hm[r0:r1, c0:c1], patch)
            size[:, rk, ck] = np.asarray(size_lw[k], np.float64) / 2.0
            off[:, rk, ck] = (rho[k] - rk, gam[k] - ck)
            yaw_c[rk, ck] = bins[j]
            yaw_r[0, rk, ck] = res[j]
            vel[0, rk, ck] = speed_mps[k]
            mask[rk, ck] = 1.0
    return BoxLabels(heat, size, off, yaw_c, yaw_r, mask, vel, float(mask.sum()))


#: LEAD's CARLA box classes SPECIAL and PARKING, and its sim-to-real remap of the box classes
#: (``constants.SIM2REAL_BOUNDING_BOX_CLASS_CONVERTER``: SPECIAL -> VEHICLE, PARKING -> VEHICLE, the rest kept;
#: the head keeps its 8 channels) as a lookup table over the 8 ids.
CARLA_BOX_SPECIAL, CARLA_BOX_PARKING = 4, 6
CARLA_SIM2REAL_BOX = np.array([0, 1, 2, 3, 0, 5, 0, 7], dtype=np.int64)
#: LEAD's sim-to-real remap of the 13-class CARLA BEV semantics (``TransfuserBEVSemanticClass``), folded into
#: one lookup table over the painted raster. ``carla_dataset.CARLAData`` applies two converters outside
#: leaderboard mode: ``SIM2REAL_BEV_OCCUPANCY_CLASS_CONVERTER`` on the box occupancy before it is painted over
#: the hdmap (PARKING and SPECIAL -> VEHICLE, RED_NOT_NORMAL -> RED_NORMAL, OBSTACLE -> not painted), then
#: ``SIM2REAL_BEV_SEMANTIC_SEGMENTATION_CONVERTER`` on the painted raster (STOP_SIGNS -> UNLABELED, PARKING ->
#: VEHICLE, RED_NOT_NORMAL -> RED_NORMAL). The hdmap holds only ids 0-3, so the occupancy relabels give the
#: same raster when applied after painting; OBSTACLE is kept here (not painting it would show the hdmap under
#: it, which the painted raster no longer holds; see :func:`carla_sim_to_real_bev`).
CARLA_SIM2REAL_BEV = np.array([0, 1, 2, 0, 4, 5, 6, 4, 4, 9, 10, 11, 11], dtype=np.uint8)


def head_classes(boxes: Boxes3D, head: str, carla_leaderboard_mode: bool = True) -> npt.NDArray[np.int64]:
    """Class index of each box in ``head``'s label space, -1 for classes that head does not label.

    CARLA boxes, whose canonical class folds LEAD's SPECIAL and PARKING into ``vehicle``, get them back from
    their source class (:mod:`adapters.carla.labels`): an emergency-vehicle ``type_id`` is SPECIAL, a
    ``static_prop_car`` or parked ``static`` car is PARKING. Outside LEAD's leaderboard mode
    (``carla_leaderboard_mode=False``: mixed or non-CARLA-rig training) they are remapped by
    :data:`CARLA_SIM2REAL_BOX`, as ``carla_dataset_utils.get_centernet_labels`` does.
    """
    table = BOX_HEAD_CLASSES.get(head, {})
    ids = np.array([table.get(n, -1) for n in boxes.class_names], dtype=np.int64)
    if head != "carla" or not ids.size:
        return ids
    from adapters.carla.format import EMERGENCY_TYPES

    for k, (name, src) in enumerate(zip(boxes.class_names, boxes.source_classes, strict=True)):
        if name != "vehicle":
            continue
        cls, _, type_id = src.partition(":")
        if type_id in EMERGENCY_TYPES:
            ids[k] = CARLA_BOX_SPECIAL
        elif cls in ("static_prop_car", "static"):
            ids[k] = CARLA_BOX_PARKING
    if not carla_leaderboard_mode:
        ids = np.where(ids >= 0, CARLA_SIM2REAL_BOX[np.clip(ids, 0, len(CARLA_SIM2REAL_BOX) - 1)], ids)
    return ids


def carla_sim_to_real_bev(classes: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """LEAD's sim-to-real relabel of a 13-class CARLA BEV raster (:data:`CARLA_SIM2REAL_BEV`), same shape.

    Deviation: LEAD leaves obstacles out of the occupancy before painting, so their cells show the hdmap; the
    painted raster here keeps them as OBSTACLE."""
    c = np.asarray(classes)
    if c.size and int(c.max()) >= len(CARLA_SIM2REAL_BEV):
        raise ValueError(f"carla_sim_to_real_bev: class id {int(c.max())} beyond the 13 CARLA BEV classes")
    return CARLA_SIM2REAL_BEV[c]


#: dtype of BEV class-id labels from :func:`resample_raster` to the collated batch: one byte per cell (ids up to
#: 127 and -1 = ignore); the loss widens them to long on the device (``harness.model.losses``).
BEV_LABEL_DTYPE = np.int8


def resample_raster(raster: BEVRaster, grid: Grid, original_from_augmented: F64 | None) -> npt.NDArray[np.int8]:
    """A BEV class raster on ``grid`` (nearest cell; -1 where the source raster has no cell), int8.

    Without augmentation on a grid aligned with the raster (same cell size, extents a whole number of cells
    apart) this is a crop, taken by slicing; otherwise every cell centre is mapped into the raster and looked
    up (separable: the affine map is evaluated as outer sums of per-row and per-column terms, the same
    floating-point operations per cell as on full coordinate arrays).
    """
    classes = raster.classes
    if classes.size and int(classes.max()) > np.iinfo(BEV_LABEL_DTYPE).max:
        raise ValueError(f"resample_raster: class id {int(classes.max())} does not fit {BEV_LABEL_DTYPE.__name__}")
    h, w = grid.shape
    x0, x1, y0, y1 = raster.extent_m
    res = raster.resolution_m
    hs, ws = classes.shape
    if original_from_augmented is None:
        crop = _aligned_crop(raster, grid)
        if crop is not None:
            r0, c0 = crop
            out = np.full((h, w), -1, BEV_LABEL_DTYPE)
            ra, rb, ca, cb = max(r0, 0), min(r0 + h, hs), max(c0, 0), min(c0 + w, ws)
            if ra < rb and ca < cb:
                out[ra - r0:rb - r0, ca - c0:cb - c0] = classes[ra:rb, ca:cb]
            return out
    gx1, gy1 = grid.extent_m[1], grid.extent_m[3]
    xc = gx1 - (np.arange(h) + 0.5) * grid.cell_m  # (h,) cell-centre x of each row
    yc = gy1 - (np.arange(w) + 0.5) * grid.cell_m  # (w,) cell-centre y of each column
    if original_from_augmented is not None:
        m = original_from_augmented
        x = (m[0, 0] * xc)[:, None] + (m[0, 1] * yc)[None, :] + m[0, 3]
        y = (m[1, 0] * xc)[:, None] + (m[1, 1] * yc)[None, :] + m[1, 3]
        rows = np.floor((x1 - x) / res).astype(np.int64)
        cols = np.floor((y1 - y) / res).astype(np.int64)
    else:
        rows = np.broadcast_to(np.floor((x1 - xc) / res).astype(np.int64)[:, None], (h, w))
        cols = np.broadcast_to(np.floor((y1 - yc) / res).astype(np.int64)[None, :], (h, w))
    ok = (rows >= 0) & (rows < hs) & (cols >= 0) & (cols < ws)
    flat = np.where(ok, rows * ws + cols, 0)
    out = classes.reshape(-1).take(flat).astype(BEV_LABEL_DTYPE)
    out[~ok] = -1
    return out


def _aligned_crop(raster: BEVRaster, grid: Grid) -> tuple[int, int] | None:
    """``(row, col)`` of ``grid``'s first cell in ``raster`` when both have the same cell size and their
    cell centres coincide (each cell then maps to exactly one raster cell), else None."""
    if raster.resolution_m != grid.cell_m:
        return None
    r = (raster.extent_m[1] - grid.extent_m[1]) / grid.cell_m
    c = (raster.extent_m[3] - grid.extent_m[3]) / grid.cell_m
    if r != round(r) or c != round(c):
        return None
    return round(r), round(c)


def lidar_histogram(points_xyz: F64, grid: Grid, channels: int = 1) -> F32:
    """LEAD's LiDAR BEV input: point counts per cell for z in [-4, 10] m, clipped at 5, divided by 5;
    ``(channels, rows, cols)`` with the same histogram in every channel."""
    h, w = grid.shape
    p = np.asarray(points_xyz, np.float64)
    keep = (p[:, 2] >= LIDAR_Z_RANGE_M[0]) & (p[:, 2] <= LIDAR_Z_RANGE_M[1])
    rho, gam = grid.continuous(p[keep, :2])
    r, c = np.floor(rho).astype(np.int64), np.floor(gam).astype(np.int64)
    ok = (r >= 0) & (r < h) & (c >= 0) & (c < w)
    counts = np.bincount(r[ok] * w + c[ok], minlength=h * w).reshape(h, w).astype(np.float32)
    hist = np.minimum(counts, LIDAR_MAX_PER_PIXEL) / LIDAR_MAX_PER_PIXEL
    return np.broadcast_to(hist, (channels, h, w)).copy()
