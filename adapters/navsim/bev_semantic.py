"""NAVSIM's BEV semantic label (TransFuser's 7 classes) from the nuPlan map and the frame's boxes.

What is drawn follows NAVSIM's ``TransfuserConfig.bev_semantic_classes`` and
``TransfuserTargetBuilder._compute_bev_semantic_map`` (checked against autonomousvision/navsim, branch main), in
this order, each class overwriting the ones before it:

====  ================  ==============================================================================
 id   name              content
====  ================  ==============================================================================
 0    unlabeled         everything else
 1    road              polygons of the LANE and INTERSECTION layers
 2    walkways          polygons of the WALKWAYS layer
 3    centerline        baselines of the LANE and LANE_CONNECTOR layers, drawn 0.5 m wide (NAVSIM:
                        ``cv2.polylines`` 2 px thick at 0.25 m/px)
 4    static_objects    boxes named ``czone_sign``, ``barrier``, ``traffic_cone``, ``generic_object``
 5    vehicles          boxes named ``vehicle``
 6    pedestrians       boxes named ``pedestrian``
====  ================  ==============================================================================

(Bicycles are in no class, as in NAVSIM.) Map geometry is moved into the ego frame of the current rear-axle
pose; boxes are the frame's annotations, already in that frame.

The raster is lead-bench's :class:`~harness.types.BEVRaster` convention: row 0 = far front (x max), column 0 =
far left (y max). NAVSIM's own array is the same picture transposed (its row index grows with x from the ego,
column with y from the right edge; LEAD ``rot90``s it once more to its CARLA layout); each consumer here reads
the canonical raster, so no orientation is copied.

Deliberate differences from NAVSIM's drawing, all below one cell: a cell belongs to a geometry when its
**centre** lies inside it (exact and resolution-independent; NAVSIM truncates vertex coordinates to integer
pixels before ``cv2.fillPoly``, which shifts edges by up to one pixel); and every map object that reaches the
raster is drawn (NAVSIM queries an axis-aligned square of half-side 32 m in map coordinates, so with a rotated
ego the raster's corners can miss objects).

Rasterisation is one vectorised scanline fill per class over all its polygons (:func:`rasterise`), no
per-pixel or per-polygon Python.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely

from harness.map_query import MapLayer, MapQuery
from harness.types import BEVRaster, Boxes3D

F64 = npt.NDArray[np.float64]

#: ``NavSimBEVSemanticClass`` (LEAD) = the keys of NAVSIM's ``bev_semantic_classes`` plus 0.
NAVSIM_BEV_CLASSES: tuple[str, ...] = ("unlabeled", "road", "walkways", "centerline", "static_objects", "vehicles",
                                       "pedestrians")
#: Box names (NAVSIM ``gt_names``) of each box class.
STATIC_OBJECT_NAMES = ("czone_sign", "barrier", "traffic_cone", "generic_object")
VEHICLE_NAMES = ("vehicle",)
PEDESTRIAN_NAMES = ("pedestrian",)
#: Width of a drawn centerline: NAVSIM's 2 px at 0.25 m/px.
CENTERLINE_WIDTH_M = 0.5


@dataclass(frozen=True)
class BEVGrid:
    """Where to render: ``extent_m = (x_min, x_max, y_min, y_max)`` in the ego frame, square cells of
    ``resolution_m``."""

    extent_m: tuple[float, float, float, float]
    resolution_m: float

    def __post_init__(self) -> None:
        x0, x1, y0, y1 = (float(v) for v in self.extent_m)
        if not (x1 > x0 and y1 > y0 and self.resolution_m > 0):
            raise ValueError(f"BEVGrid: extent_m {self.extent_m} must be increasing and resolution_m "
                             f"{self.resolution_m} > 0")
        object.__setattr__(self, "extent_m", (x0, x1, y0, y1))

    @property
    def shape(self) -> tuple[int, int]:
        x0, x1, y0, y1 = self.extent_m
        return round((x1 - x0) / self.resolution_m), round((y1 - y0) / self.resolution_m)

    @property
    def radius_m(self) -> float:
        """Half-side of the smallest axis-aligned square about the ego that holds the raster under any
        heading (its farthest corner)."""
        x0, x1, y0, y1 = self.extent_m
        return float(np.hypot(max(abs(x0), abs(x1)), max(abs(y0), abs(y1))))


def rasterise(geoms_ego: npt.ArrayLike, grid: BEVGrid) -> npt.NDArray[np.bool_]:
    """Cells ``(rows, cols)`` whose centre lies inside any of ``geoms_ego`` (shapely polygons or multipolygons in
    the ego frame: x forward, y left, metres).

    An even-odd scanline fill, vectorised over every edge of every polygon: each edge is crossed by the rows
    whose centre-x it spans (half-open, so a vertex counts once), crossings are sorted per (polygon, row) and
    paired, and each pair fills the columns whose centre-y lies between them, both ends included. A centre
    exactly on an edge of constant y is therefore inside, one on an edge of constant x inside exactly one of two
    polygons that share it; adjacent polygons leave no gap. Holes are honoured.
    """
    h, w = grid.shape
    g = np.asarray(geoms_ego, dtype=object).reshape(-1)
    if g.size == 0:
        return np.zeros((h, w), dtype=bool)
    parts = shapely.get_parts(g)
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    xy, ring_of = shapely.get_coordinates(rings, return_index=True)
    if len(xy) < 2:
        return np.zeros((h, w), dtype=bool)
    x0, x1, y0, y1 = grid.extent_m
    rho = (x1 - xy[:, 0]) / grid.resolution_m - 0.5  # continuous row index (integers at cell centres)
    gam = (y1 - xy[:, 1]) / grid.resolution_m - 0.5  # continuous column index
    same = ring_of[:-1] == ring_of[1:]  # consecutive vertices of one (closed) ring form an edge
    ra, rb, ga, gb = rho[:-1][same], rho[1:][same], gam[:-1][same], gam[1:][same]
    part = ring_part[ring_of[:-1][same]]
    lo = np.clip(np.ceil(np.minimum(ra, rb)), 0, h).astype(np.int64)
    hi = np.clip(np.ceil(np.maximum(ra, rb)), 0, h).astype(np.int64)  # rows lo .. hi - 1 cross the edge
    n = hi - lo
    total = int(n.sum())
    if total == 0:
        return np.zeros((h, w), dtype=bool)
    e = np.repeat(np.arange(len(n)), n)
    row = lo[e] + (np.arange(total) - np.repeat(np.cumsum(n) - n, n))
    t = (row - ra[e]) / (rb[e] - ra[e])
    col = ga[e] + t * (gb[e] - ga[e])
    order = np.lexsort((col, row, part[e]))
    row, col = row[order], col[order]
    # every (part, row) group holds an even number of crossings, so consecutive sorted pairs are the spans
    r0, c_in, c_out = row[0::2], np.ceil(col[0::2]), np.floor(col[1::2])
    c_in = np.clip(c_in, 0, w).astype(np.int64)
    c_out = np.clip(c_out, -1, w - 1).astype(np.int64)
    keep = c_in <= c_out
    diff = np.zeros((h, w + 1), dtype=np.int32)
    np.add.at(diff, (r0[keep], c_in[keep]), 1)
    np.add.at(diff, (r0[keep], c_out[keep] + 1), -1)
    return np.cumsum(diff, axis=1)[:, :w] > 0


def box_polygons(centre_xy: F64, length_width_m: F64, yaw_rad: F64) -> npt.NDArray[np.object_]:
    """Oriented rectangles (shapely polygons) of boxes, ego frame."""
    c = np.asarray(centre_xy, np.float64).reshape(-1, 2)
    lw = np.asarray(length_width_m, np.float64).reshape(-1, 2) / 2.0
    yaw = np.asarray(yaw_rad, np.float64).reshape(-1)
    local = np.array([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]])[None] * lw[:, None, :]  # (N, 4, 2)
    cos, sin = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
    corners = np.stack([c[:, None, 0] + cos * local[..., 0] - sin * local[..., 1],
                        c[:, None, 1] + sin * local[..., 0] + cos * local[..., 1]], axis=-1)
    return np.asarray(shapely.polygons(corners), dtype=object).reshape(-1)


def to_ego(geoms_map: npt.ArrayLike, ego_pose_map: F64) -> npt.NDArray[np.object_]:
    """Map-frame geometries -> the ego frame of ``ego_pose_map = (x, y, heading)`` (one vectorised call)."""
    x, y, yaw = (float(v) for v in np.asarray(ego_pose_map, np.float64).reshape(3))
    cos, sin = np.cos(yaw), np.sin(yaw)
    rot = np.array([[cos, -sin], [sin, cos]])  # ego -> map rotation; points map -> ego: (p - t) @ rot

    def fn(xy: F64) -> F64:
        return (xy - np.array([x, y])) @ rot

    return np.asarray(shapely.transform(np.asarray(geoms_map, dtype=object), fn), dtype=object).reshape(-1)


def _boxes_named(boxes: Boxes3D | None, names: tuple[str, ...]) -> npt.NDArray[np.object_]:
    if boxes is None or len(boxes) == 0:
        return np.empty(0, dtype=object)
    keep = np.fromiter((n in names for n in boxes.source_classes), dtype=bool, count=len(boxes))
    return box_polygons(boxes.center_xyz[keep, :2], boxes.size_lwh[keep, :2], boxes.yaw_rad[keep])


def map_layers_near(query: MapQuery, ego_pose_map: F64, radius_m: float
                    ) -> tuple[npt.NDArray[np.object_], npt.NDArray[np.object_], npt.NDArray[np.object_]]:
    """Map-frame geometries of the road (lane + intersection polygons), walkways (polygons) and centerlines
    (lane and lane-connector baselines as LineStrings, each map's made once) within ``radius_m`` (nuPlan's
    square proximity) of the ego."""
    m = query.road_map
    xy = np.asarray(ego_pose_map, np.float64)[:2]

    def ids(layer: MapLayer) -> tuple[int, ...]:
        return query.objects_within(xy, radius_m, layer)

    lanes, connectors = ids(MapLayer.LANE), ids(MapLayer.LANE_CONNECTOR)
    road = [m.lanes[i].polygon for i in lanes] + [m.intersections[i].polygon for i in ids(MapLayer.INTERSECTION)]
    walk = [m.walkways[i].polygon for i in ids(MapLayer.WALKWAYS)]
    base = _baselines(query)
    lines = [base[MapLayer.LANE, i] for i in lanes] + [base[MapLayer.LANE_CONNECTOR, i] for i in connectors]
    return (np.asarray(road, dtype=object).reshape(-1), np.asarray(walk, dtype=object).reshape(-1),
            np.asarray(lines, dtype=object).reshape(-1))


#: MapQuery -> the baseline of every lane and lane connector as a shapely LineString (map frame), made on the
#: map's first label instead of once per label.
_BASELINES: weakref.WeakKeyDictionary[MapQuery, dict[tuple[MapLayer, int], shapely.LineString]] = (
    weakref.WeakKeyDictionary())
_BASELINES_LOCK = threading.Lock()


def _baselines(query: MapQuery) -> dict[tuple[MapLayer, int], shapely.LineString]:
    with _BASELINES_LOCK:
        hit = _BASELINES.get(query)
        if hit is None:
            m = query.road_map
            hit = {(MapLayer.LANE, i): shapely.LineString(o.baseline_xy) for i, o in m.lanes.items()}
            hit.update({(MapLayer.LANE_CONNECTOR, i): shapely.LineString(o.baseline_xy)
                        for i, o in m.lane_connectors.items()})
            _BASELINES[query] = hit
        return hit


def navsim_bev_semantic(query: MapQuery, ego_pose_map: F64, boxes: Boxes3D | None, grid: BEVGrid) -> BEVRaster:
    """The 7-class BEV label of one frame (see the module docstring).

    Args:
        query: the index of the nuPlan map of the frame's location.
        ego_pose_map: ``(3,)`` the current rear-axle pose (x m, y m, heading rad) in the map frame.
        boxes: the frame's annotations in the ego frame (NAVSIM names in ``source_classes``), or None.
        grid: extent and resolution of the raster.
    """
    road, walk, lines = map_layers_near(query, ego_pose_map, grid.radius_m)
    # Buffered in the ego frame (round caps and joins of 2 segments per quarter circle: within 2 cm of a true
    # round pen at 0.25 m). Buffering once per map in the map frame is the same region, but its rounding moves
    # cell centres lying exactly on a stroke's edge (the embedded world's 0.5 m grids have many).
    lines_ego = (shapely.buffer(to_ego(lines, ego_pose_map), CENTERLINE_WIDTH_M / 2.0, quad_segs=2)
                 if lines.size else lines)
    layers = (
        to_ego(road, ego_pose_map) if road.size else road,
        to_ego(walk, ego_pose_map) if walk.size else walk,
        lines_ego,
        _boxes_named(boxes, STATIC_OBJECT_NAMES),
        _boxes_named(boxes, VEHICLE_NAMES),
        _boxes_named(boxes, PEDESTRIAN_NAMES),
    )
    classes = np.zeros(grid.shape, dtype=np.uint8)
    for label, geoms in enumerate(layers, start=1):  # later classes overwrite earlier ones, as in NAVSIM
        classes[rasterise(geoms, grid)] = label
    return BEVRaster(classes, NAVSIM_BEV_CLASSES, grid.resolution_m, grid.extent_m)
