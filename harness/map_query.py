"""Fast, vectorised spatial queries on a ``RoadMap`` with the semantics nuPlan and NAVSIM score with.

- Point-in-polygon is shapely ``contains`` (strict interior: a point on a polygon's boundary is outside),
  as in NAVSIM's ``PDMOccupancyMap.points_in_polygons`` (``shapely.vectorized.contains``) and nuPlan's
  ``get_all_map_objects``. It is evaluated per polygon: a point on the shared edge of two adjacent
  roadblocks is inside neither, exactly as the official DAC check sees it.
- Proximity is nuPlan's ``get_proximal_map_objects``: an object is near if its geometry intersects the
  axis-aligned square ``[x - r, x + r] x [y - r, y + r]`` (not a disc). Lane connectors are matched by
  their baseline (the devkit's ``lane_connectors`` layer is a LineString layer); every other layer by its
  polygon.

Point queries bin the points into a uniform grid built once per layer (cells list the polygons that cross
them), expand them into candidate (point, polygon) pairs with numpy and test the pairs with one
``shapely.contains_xy`` call against prepared polygons; there is no per-point Python loop.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely

from harness.maps import RoadMap

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


class MapLayer(enum.IntEnum):
    """Map layers, with nuPlan's ``SemanticMapLayer`` values so that types convert one to one."""

    LANE = 0
    INTERSECTION = 1
    STOP_LINE = 2
    CROSSWALK = 4
    LANE_CONNECTOR = 11
    WALKWAYS = 14
    CARPARK_AREA = 15
    ROADBLOCK = 17
    ROADBLOCK_CONNECTOR = 18

    @classmethod
    def parse(cls, layer: str | MapLayer) -> MapLayer:
        """Accept a member, its name in any case (``"roadblock"``), or the plural ``"walkways"``/``"carparks"``."""
        if isinstance(layer, MapLayer):
            return layer
        key = str(layer).strip().upper()
        key = {"CARPARK": "CARPARK_AREA", "CARPARKS": "CARPARK_AREA", "WALKWAY": "WALKWAYS"}.get(key, key)
        key = key[:-1] if key not in cls.__members__ and key.endswith("S") else key
        if key not in cls.__members__:
            raise ValueError(f"unknown map layer {layer!r}; expected one of {[m.name.lower() for m in cls]}")
        return cls[key]


@dataclass(frozen=True)
class DrivablePolygons:
    """The typed polygons of NAVSIM's ``PDMDrivableMap`` around a point, in its order.

    Attributes:
        ids: ``(P,)`` object ids (roadblock, lane, lane connector, intersection or car park id).
        types: ``(P,)`` ``MapLayer`` values: ROADBLOCK, LANE (interior lanes of roadblocks),
            LANE_CONNECTOR (interior lanes of roadblock connectors), INTERSECTION, CARPARK_AREA.
        polygons: ``(P,)`` shapely polygons, map frame.
    """

    ids: I64
    types: I64
    polygons: npt.NDArray[np.object_]

    def __post_init__(self) -> None:
        n = len(self.ids)
        if self.types.shape != (n,) or self.polygons.shape != (n,):
            raise ValueError(
                f"DrivablePolygons: ids {self.ids.shape}, types {self.types.shape} and polygons "
                f"{self.polygons.shape} must all be ({n},)"
            )

    def __len__(self) -> int:
        return len(self.ids)

    def indices_of(self, *layers: MapLayer) -> I64:
        """Indices of the polygons whose type is one of ``layers``."""
        return np.flatnonzero(np.isin(self.types, [int(x) for x in layers])).astype(np.int64)


class _GeometrySet:
    """Ids and geometries of one layer (or union of layers), with an STRtree and a point-lookup grid.

    Point-in-polygon queries go through a uniform grid built on the first point query (layers that are only
    searched by proximity never pay for it): each cell lists the polygons that intersect it and whether the cell lies in a polygon's interior (``contains_properly``), in which case
    every point of the cell is strictly inside without a test. A query bins points into cells with numpy,
    expands them into (point, polygon) candidate pairs and runs one ``shapely.contains_xy`` over the pairs
    that still need it, against prepared polygons. No shapely Point objects are created.
    """

    def __init__(
        self, ids: Sequence[int], geoms: Sequence[object], target_cells_per_geometry: float = 4.0
    ) -> None:
        self.ids = np.asarray(ids, dtype=np.int64)
        self.geoms = np.asarray(list(geoms), dtype=object).reshape(-1)
        shapely.prepare(self.geoms)  # prepared polygons answer point-in-polygon in O(log vertices)
        self.tree = shapely.STRtree(self.geoms)
        self._cells_per_geometry = target_cells_per_geometry
        self._grid_built = False

    def _build_grid(self, cells_per_geometry: float) -> None:
        if len(self.geoms) == 0:
            self._origin, self._cell, self._shape = np.zeros(2), 1.0, (0, 0)
            self._start = np.zeros(1, np.int64)
            self._pair_geom, self._pair_full = np.empty(0, np.int64), np.empty(0, bool)
            return
        lo, hi = np.asarray(shapely.total_bounds(self.geoms), dtype=np.float64).reshape(2, 2)
        extent = np.maximum(hi - lo, 1e-6)
        # About `cells_per_geometry` cells per polygon (at least a 64 x 64 grid, so that a few large curved
        # roads still get cells inside them), never finer than 1 m nor coarser than 100 m.
        n_cells = max(cells_per_geometry * len(self.geoms), 4096.0)
        cell = float(np.clip(np.sqrt(extent.prod() / n_cells), 1.0, 100.0))
        nx, ny = (np.floor(extent / cell).astype(np.int64) + 1).tolist()
        self._origin, self._cell, self._shape = lo, cell, (nx, ny)
        gx, gy = np.meshgrid(np.arange(nx), np.arange(ny), indexing="xy")
        x0, y0 = lo[0] + gx.ravel() * cell, lo[1] + gy.ravel() * cell
        boxes = shapely.box(x0, y0, x0 + cell, y0 + cell)  # cell k = iy * nx + ix
        # Bounding-box candidates, then predicates with the prepared polygons first: the tree's own
        # predicate path prepares the query boxes instead, which is ~100x slower on long curved roads.
        cell_idx, geom_idx = self.tree.query(boxes)
        hit = shapely.intersects(self.geoms[geom_idx], boxes[cell_idx])
        cell_idx, geom_idx = cell_idx[hit], geom_idx[hit]
        full = shapely.contains_properly(self.geoms[geom_idx], boxes[cell_idx])
        order = np.lexsort((geom_idx, cell_idx))
        self._pair_geom = geom_idx[order].astype(np.int64)
        self._pair_full = full[order]
        self._start = np.concatenate([[0], np.cumsum(np.bincount(cell_idx, minlength=nx * ny))]).astype(
            np.int64
        )

    def containing_pairs(self, points_xy: F64) -> tuple[I64, I64]:
        """``(point_index, geometry_index)`` for every geometry strictly containing a point."""
        if not self._grid_built:
            self._build_grid(self._cells_per_geometry)
            self._grid_built = True
        nx, ny = self._shape
        if nx == 0 or len(points_xy) == 0:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        rel = (points_xy - self._origin) / self._cell
        ok = np.all((rel >= 0.0) & np.isfinite(rel), axis=1)
        ix = np.minimum(np.floor(rel[:, 0]), nx - 1)
        iy = np.minimum(np.floor(rel[:, 1]), ny - 1)
        ok &= (rel[:, 0] <= nx) & (rel[:, 1] <= ny)  # points beyond the bounds are outside every polygon
        pts = np.flatnonzero(ok)
        cells = (iy[pts] * nx + ix[pts]).astype(np.int64)
        counts = self._start[cells + 1] - self._start[cells]
        pt_idx = np.repeat(pts, counts)
        # Position of each candidate pair in the CSR arrays: the cell's start plus a running offset.
        first = np.repeat(self._start[cells] - (np.cumsum(counts) - counts), counts) + np.arange(counts.sum())
        geom_idx = self._pair_geom[first]
        inside = self._pair_full[first].copy()
        # A full cell's polygon strictly contains the cell's box; a point binned into it within rounding of
        # the box's edge is tested exactly rather than trusted (the box edge may lie an ulp from the polygon).
        cx = self._origin[0] + ix[pts] * self._cell
        cy = self._origin[1] + iy[pts] * self._cell
        px, py = points_xy[pts, 0], points_xy[pts, 1]
        margin = 1e-9 * (1.0 + np.abs(px) + np.abs(py))
        deep = ((px - cx > margin) & (cx + self._cell - px > margin) & (py - cy > margin)
                & (cy + self._cell - py > margin))
        inside &= np.repeat(deep, counts)
        test = np.flatnonzero(~inside)
        inside[test] = shapely.contains_xy(
            self.geoms[geom_idx[test]], points_xy[pt_idx[test], 0], points_xy[pt_idx[test], 1]
        )
        return pt_idx[inside].astype(np.int64), geom_idx[inside]

    def contains_any(self, points_xy: F64) -> npt.NDArray[np.bool_]:
        mask = np.zeros(len(points_xy), dtype=bool)
        mask[self.containing_pairs(points_xy)[0]] = True
        return mask

    def intersecting(self, geometry: object) -> I64:
        """Indices (ascending) of the geometries intersecting ``geometry``."""
        idx = np.sort(self.tree.query(geometry)).astype(np.int64)
        return idx[shapely.intersects(self.geoms[idx], geometry)]


def _points(points_xy: npt.ArrayLike) -> F64:
    pts = np.asarray(points_xy, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"points_xy: expected shape (N, 2), got {pts.shape}")
    return pts


def _sorted_items(objects: dict) -> list:
    return [objects[k] for k in sorted(objects)]


class MapQuery:
    """Spatial index over one ``RoadMap``; build once, query many times (thread-safe reads; a layer's point
    grid is built by its first point query)."""

    #: Distinct ``drivable_polygons_within`` results kept (each holds only ids and references to map polygons).
    DRIVABLE_MEMO = 256

    def __init__(self, road_map: RoadMap) -> None:
        m = road_map
        self.road_map = m
        self._drivable_memo: dict[tuple[tuple[int, ...], ...], DrivablePolygons] = {}
        self._memo_lock = threading.Lock()
        lanes, lcs = _sorted_items(dict(m.lanes)), _sorted_items(dict(m.lane_connectors))
        rbs, rbcs = _sorted_items(dict(m.roadblocks)), _sorted_items(dict(m.roadblock_connectors))
        inters, carparks = _sorted_items(dict(m.intersections)), _sorted_items(dict(m.carparks))

        def areas(objs: list) -> _GeometrySet:
            return _GeometrySet([o.id for o in objs], [o.polygon for o in objs])

        # Layers as the devkit's get_proximal_map_objects sees them (ascending id = its row order).
        self._layers: dict[MapLayer, _GeometrySet] = {
            MapLayer.LANE: areas(lanes),
            MapLayer.LANE_CONNECTOR: _GeometrySet(
                [c.id for c in lcs], [shapely.LineString(c.baseline_xy) for c in lcs]
            ),
            MapLayer.ROADBLOCK: areas(rbs),
            MapLayer.ROADBLOCK_CONNECTOR: areas(rbcs),
            MapLayer.INTERSECTION: areas(inters),
            MapLayer.CARPARK_AREA: areas(carparks),
            MapLayer.CROSSWALK: areas(_sorted_items(dict(m.crosswalks))),
            MapLayer.WALKWAYS: areas(_sorted_items(dict(m.walkways))),
            MapLayer.STOP_LINE: areas(_sorted_items(dict(m.stop_lines))),
        }
        # DAC's drivable set: roadblocks, intersections and car parks (roadblock connectors are not in it).
        drivable = rbs + inters + carparks
        self._drivable = areas(drivable)
        self._drivable_types = np.array(
            [MapLayer.ROADBLOCK] * len(rbs)
            + [MapLayer.INTERSECTION] * len(inters)
            + [MapLayer.CARPARK_AREA] * len(carparks),
            dtype=np.int64,
        )
        self._lane_polygons = areas(lanes + lcs)  # lane connectors by their polygons here
        # Interior lanes in the devkit's order: rows of the lane layer with that parent, i.e. ascending id. Kept
        # per layer, as the devkit looks them up (a roadblock's in the lanes table by ``lane_group_fid``, a
        # roadblock connector's in the lane connectors table by ``lane_group_connector_fid``): one dict for both
        # would list a lane under a connector (as a lane connector) whose id equals its parent's.
        self._lanes_of_roadblock: dict[int, list] = {}
        for ln in lanes:
            self._lanes_of_roadblock.setdefault(ln.roadblock_id, []).append(ln)
        self._connectors_of_roadblock_connector: dict[int, list] = {}
        for c in lcs:
            self._connectors_of_roadblock_connector.setdefault(c.roadblock_connector_id, []).append(c)

    def drivable_mask(self, points_xy: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """Whether each point lies strictly inside some roadblock, intersection or car-park polygon.

        Args:
            points_xy: ``(N, 2)`` map-frame points, metres.

        Returns:
            ``(N,)`` bool. A point on a polygon's boundary counts as outside that polygon (NAVSIM's DAC).
        """
        return self._drivable.contains_any(_points(points_xy))

    def in_intersection(self, points_xy: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """``(N,)`` bool: strictly inside an intersection polygon (NAVSIM's "in intersection", ``within``)."""
        return self._layers[MapLayer.INTERSECTION].contains_any(_points(points_xy))

    def lane_ids_containing(self, points_xy: npt.ArrayLike) -> I64:
        """Lanes and lane connectors whose polygon strictly contains each point, as sparse pairs.

        Args:
            points_xy: ``(N, 2)`` map-frame points.

        Returns:
            ``(K, 2)`` int64 rows ``(point_index, lane_or_connector_id)``, sorted by point index then id.
            A point in no lane has no row; a point in two overlapping lanes has two.
        """
        pt_idx, geom_idx = self._lane_polygons.containing_pairs(_points(points_xy))
        pairs = np.stack([pt_idx, self._lane_polygons.ids[geom_idx]], axis=-1).reshape(-1, 2)
        return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]

    def objects_within(
        self, center_xy: npt.ArrayLike, radius_m: float, layer: str | MapLayer
    ) -> tuple[int, ...]:
        """Ids of one layer's objects near a point, as nuPlan's ``get_proximal_map_objects`` finds them.

        Args:
            center_xy: ``(2,)`` map-frame point.
            radius_m: half-side of the query square, metres (nuPlan's "radius").
            layer: ``roadblock``, ``roadblock_connector``, ``lane``, ``lane_connector``, ``intersection``,
                ``carpark_area``, ``crosswalk``, ``walkways`` or ``stop_line`` (or a ``MapLayer``).

        Returns:
            Ids in ascending order whose geometry intersects the square around ``center_xy``.
        """
        layer_set = self._layers[MapLayer.parse(layer)]
        return tuple(int(i) for i in layer_set.ids[layer_set.intersecting(self._patch(center_xy, radius_m))])

    def drivable_polygons_within(self, center_xy: npt.ArrayLike, radius_m: float) -> DrivablePolygons:
        """The polygons NAVSIM's ``PDMDrivableMap.from_simulation`` stores for a point (``map_radius``).

        Order as NAVSIM's: roadblocks; the interior lanes of those roadblocks; the interior lane connectors
        of the nearby roadblock connectors; intersections; car parks. Roadblock-connector polygons
        themselves are not included. Queries that find the same objects return the same result object,
        whose arrays are read-only.

        Args:
            center_xy: ``(2,)`` map-frame point (NAVSIM uses the ego's centre at t = 0).
            radius_m: half-side of the query square (NAVSIM's metric cache uses 100 m).
        """
        patch = self._patch(center_xy, radius_m)
        near = {
            layer: tuple(self._layers[layer].ids[self._layers[layer].intersecting(patch)].tolist())
            for layer in (
                MapLayer.ROADBLOCK,
                MapLayer.ROADBLOCK_CONNECTOR,
                MapLayer.INTERSECTION,
                MapLayer.CARPARK_AREA,
            )
        }
        # Nearby queries of one log mostly find the same objects: those share one (read-only) result.
        key = tuple(near.values())
        hit = self._drivable_memo.get(key)
        if hit is None:
            hit = self._drivable_polygons(near)
            with self._memo_lock:
                if len(self._drivable_memo) >= self.DRIVABLE_MEMO:
                    self._drivable_memo.pop(next(iter(self._drivable_memo)))
                self._drivable_memo[key] = hit
        return hit

    def _drivable_polygons(self, near: dict[MapLayer, tuple[int, ...]]) -> DrivablePolygons:
        ids: list[int] = []
        types: list[int] = []
        polys: list[object] = []

        def add(layer: MapLayer, objs: Sequence) -> None:
            ids.extend(o.id for o in objs)
            types.extend([int(layer)] * len(objs))
            polys.extend(o.polygon for o in objs)

        m = self.road_map
        add(MapLayer.ROADBLOCK, [m.roadblocks[i] for i in near[MapLayer.ROADBLOCK]])
        for rb in near[MapLayer.ROADBLOCK]:
            add(MapLayer.LANE, self._lanes_of_roadblock.get(rb, []))
        for rbc in near[MapLayer.ROADBLOCK_CONNECTOR]:
            add(MapLayer.LANE_CONNECTOR, self._connectors_of_roadblock_connector.get(rbc, []))
        add(MapLayer.INTERSECTION, [m.intersections[i] for i in near[MapLayer.INTERSECTION]])
        add(MapLayer.CARPARK_AREA, [m.carparks[i] for i in near[MapLayer.CARPARK_AREA]])
        out = DrivablePolygons(
            np.asarray(ids, dtype=np.int64),
            np.asarray(types, dtype=np.int64),
            np.asarray(polys, dtype=object).reshape(-1),
        )
        for a in (out.ids, out.types, out.polygons):
            a.flags.writeable = False
        return out

    @staticmethod
    def _patch(center_xy: npt.ArrayLike, radius_m: float) -> shapely.Polygon:
        c = np.asarray(center_xy, dtype=np.float64).reshape(-1)
        if c.shape != (2,) or not np.all(np.isfinite(c)) or not np.isfinite(radius_m) or radius_m < 0:
            raise ValueError(
                f"center_xy must be a finite (2,) point and radius_m >= 0, got {c.shape}, {radius_m}"
            )
        return shapely.box(c[0] - radius_m, c[1] - radius_m, c[0] + radius_m, c[1] + radius_m)
