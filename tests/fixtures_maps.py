"""Hand-built nuPlan-style road maps for the map I/O and map-query tests (and the map-query benchmark).

One tile is a signalised 4-way intersection centred on the tile origin: four arms (east, north, west,
south), each a two-way road with two lanes per direction (right-hand traffic), straight / left / right
lane connectors through the intersection, a traffic-light stop line per approach, one yield-controlled
right turn, a crosswalk and a walkway on the east arm and a car park south-east of the intersection.
``build_fixture_map(grid=(nx, ny))`` lays ``nx * ny`` such tiles side by side (disconnected), which gives
the benchmark a map with realistic object counts.

Geometry in the local frame of the east arm (other arms are this rotated by k * 90 degrees):
the intersection is the square |x|, |y| <= 12 m; the inbound (west-bound) roadblock is x in [12, 72],
y in [0, 7] with lane_index 0 (leftmost in driving direction) at y in [0, 3.5]; the outbound
(east-bound) roadblock is y in [-7, 0] with lane_index 0 at y in [-3.5, 0].
"""

from __future__ import annotations

import itertools

import numpy as np
import shapely

from harness.maps import (
    Area,
    Boundary,
    Lane,
    LaneConnector,
    Roadblock,
    RoadblockConnector,
    RoadMap,
    StopLine,
    StopLineType,
)

LANE_WIDTH_M = 3.5
ARM_START_M = 12.0  # half-size of the intersection square
ARM_END_M = 72.0
TILE_SPACING_M = 200.0
LANE_SPEED_MPS = 13.41  # 30 mph
STRAIGHT_SPEED_MPS = 11.18
RIGHT_TURN_SPEED_MPS = 6.0


class _Builder:
    """Accumulates map objects with one id counter per nuPlan id namespace."""

    def __init__(self) -> None:
        self.lanes: dict[int, Lane] = {}
        self.lane_connectors: dict[int, LaneConnector] = {}
        self.roadblocks: dict[int, Roadblock] = {}
        self.roadblock_connectors: dict[int, RoadblockConnector] = {}
        self.boundaries: dict[int, Boundary] = {}
        self.intersections: dict[int, Area] = {}
        self.stop_lines: dict[int, StopLine] = {}
        self.crosswalks: dict[int, Area] = {}
        self.walkways: dict[int, Area] = {}
        self.carparks: dict[int, Area] = {}
        # Distinct starting points make a mixed-up namespace visible in a failing test.
        self._lane_ids = itertools.count(1001)  # lanes and lane connectors share one namespace
        self._block_ids = itertools.count(101)  # roadblocks and roadblock connectors share one
        self._boundary_ids = itertools.count(5001)
        self._area_ids = itertools.count(1)  # intersections, stop lines, crosswalks, ... (separate layers)

    def boundary(self, line_xy: np.ndarray) -> int:
        bid = next(self._boundary_ids)
        self.boundaries[bid] = Boundary(bid, line_xy)
        return bid


def _rot(k: int) -> np.ndarray:
    c, s = np.cos(k * np.pi / 2), np.sin(k * np.pi / 2)
    # Rounded so that rotated axis-aligned rectangles stay exactly axis-aligned.
    return np.round(np.array([[c, -s], [s, c]]), 12)


def _place(xy: np.ndarray, k: int, origin: np.ndarray) -> np.ndarray:
    return np.asarray(xy, dtype=np.float64) @ _rot(k).T + origin


def _place_poly(poly: shapely.Polygon, k: int, origin: np.ndarray) -> shapely.Polygon:
    return shapely.Polygon(_place(np.asarray(poly.exterior.coords), k, origin))


def _arc(center: tuple[float, float], radius: float, start: float, end: float, n: int = 13) -> np.ndarray:
    t = np.linspace(start, end, n)
    return np.stack([center[0] + radius * np.cos(t), center[1] + radius * np.sin(t)], axis=-1)


def _arc_lane(center: tuple[float, float], radius: float, start: float, end: float) -> tuple[np.ndarray, ...]:
    """Baseline, left and right edges of a lane on a circular arc (edges are concentric arcs, exact)."""
    d = 0.5 * LANE_WIDTH_M
    inner, outer = _arc(center, radius - d, start, end), _arc(center, radius + d, start, end)
    # Counter-clockwise arcs have the centre on their left.
    return (_arc(center, radius, start, end), *((inner, outer) if end > start else (outer, inner)))


def _line_lane(start: tuple[float, float], end: tuple[float, float]) -> tuple[np.ndarray, ...]:
    xy = _line(start, end)
    return xy, _offset(xy, 0.5 * LANE_WIDTH_M), _offset(xy, -0.5 * LANE_WIDTH_M)


def _offset(xy: np.ndarray, d: float) -> np.ndarray:
    """Shift a polyline by ``d`` metres to its left (right for d < 0) along per-vertex normals."""
    tangent = np.gradient(xy, axis=0)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    return xy + d * np.stack([-tangent[:, 1], tangent[:, 0]], axis=-1)


def _line(start: tuple[float, float], end: tuple[float, float], n: int = 13) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - t) * np.asarray(start) + t * np.asarray(end)


def _add_tile(b: _Builder, origin: np.ndarray, with_extras: bool) -> None:
    w, a0, a1 = LANE_WIDTH_M, ARM_START_M, ARM_END_M
    inter_id = next(b._area_ids)
    b.intersections[inter_id] = Area(inter_id, shapely.box(*(origin - a0), *(origin + a0)))

    inbound: dict[int, int] = {}  # arm -> roadblock id
    outbound: dict[int, int] = {}
    in_lanes: dict[int, list[int]] = {}  # arm -> lane ids by lane_index
    out_lanes: dict[int, list[int]] = {}
    stop_line_of_arm: dict[int, int] = {}
    for k in range(4):
        # Lane boundaries at y = -7, -3.5, 0, 3.5, 7, all drawn from the intersection outwards.
        bnd = {
            y: b.boundary(_place(_line((a0, y), (a1, y), 2), k, origin)) for y in (-2 * w, -w, 0.0, w, 2 * w)
        }
        for direction, sign in (("in", 1.0), ("out", -1.0)):
            rb_id = next(b._block_ids)
            lane_ids = []
            for idx in range(2):
                y_near, y_far = sign * idx * w, sign * (idx + 1) * w
                yc = 0.5 * (y_near + y_far)
                lane_id = next(b._lane_ids)
                start, end = ((a1, yc), (a0, yc)) if direction == "in" else ((a0, yc), (a1, yc))
                speed = LANE_SPEED_MPS
                if direction == "out" and k == 3 and idx == 1:
                    speed = None  # a lane without a speed limit (nuPlan stores NULL)
                b.lanes[lane_id] = Lane(
                    id=lane_id,
                    roadblock_id=rb_id,
                    lane_index=idx,
                    baseline_xy=_place(_line(start, end), k, origin),
                    polygon=_place_poly(
                        shapely.box(a0, min(y_near, y_far), a1, max(y_near, y_far)), k, origin
                    ),
                    # Left in driving direction is the centre line side for both directions here.
                    left_boundary_id=bnd[y_near],
                    right_boundary_id=bnd[y_far],
                    speed_limit_mps=speed,
                )
                lane_ids.append(lane_id)
            y_lo, y_hi = (0.0, 2 * w) if direction == "in" else (-2 * w, 0.0)
            b.roadblocks[rb_id] = Roadblock(
                rb_id, _place_poly(shapely.box(a0, y_lo, a1, y_hi), k, origin), tuple(lane_ids)
            )
            (inbound if direction == "in" else outbound)[k] = rb_id
            (in_lanes if direction == "in" else out_lanes)[k] = lane_ids
        sl_id = next(b._area_ids)
        b.stop_lines[sl_id] = StopLine(
            sl_id,
            _place_poly(shapely.box(a0 - 0.5, 0.0, a0 + 0.5, 2 * w), k, origin),
            StopLineType.TRAFFIC_LIGHT,
        )
        stop_line_of_arm[k] = sl_id

    for k in range(4):
        yc0, yc1 = 0.5 * w, 1.5 * w
        turns = {
            # name: (target arm, [(from lane_index, to lane_index, (baseline, left, right edges))], speed)
            "straight": (
                (k + 2) % 4,
                [(0, 0, _line_lane((a0, yc0), (-a0, yc0))), (1, 1, _line_lane((a0, yc1), (-a0, yc1)))],
                STRAIGHT_SPEED_MPS,
            ),
            "left": ((k + 3) % 4, [(0, 0, _arc_lane((a0, -a0), a0 + yc0, np.pi / 2, np.pi))], None),
            "right": (
                (k + 1) % 4,
                [(1, 1, _arc_lane((a0, a0), a0 - yc1, 1.5 * np.pi, np.pi))],
                RIGHT_TURN_SPEED_MPS,
            ),
        }
        for name, (target, lanes, speed) in turns.items():
            rbc_id = next(b._block_ids)
            lc_ids, polys = [], []
            for from_idx, to_idx, (local_xy, local_left, local_right) in lanes:
                xy, left, right = (_place(v, k, origin) for v in (local_xy, local_left, local_right))
                poly = shapely.Polygon(np.concatenate([left, right[::-1]]))
                signalised = not (name == "right" and k == 2)
                stop_ids: tuple[int, ...]
                if signalised:
                    stop_ids = (stop_line_of_arm[k],)
                else:
                    # One yield-controlled right turn: its stop line is not a traffic light.
                    sl_id = next(b._area_ids)
                    b.stop_lines[sl_id] = StopLine(
                        sl_id, _place_poly(shapely.box(a0 - 1.0, w, a0, 2 * w), k, origin), StopLineType.YIELD
                    )
                    stop_ids = (sl_id,)
                lc_id = next(b._lane_ids)
                b.lane_connectors[lc_id] = LaneConnector(
                    id=lc_id,
                    roadblock_connector_id=rbc_id,
                    exit_lane_id=in_lanes[k][from_idx],
                    entry_lane_id=out_lanes[target][to_idx],
                    baseline_xy=xy,
                    polygon=poly,
                    left_boundary_id=b.boundary(left),
                    right_boundary_id=b.boundary(right),
                    speed_limit_mps=speed,
                    stop_line_ids=stop_ids,
                    has_traffic_light=signalised,
                )
                lc_ids.append(lc_id)
                polys.append(poly)
            union = shapely.union_all(polys)
            if not isinstance(union, shapely.Polygon):
                union = union.convex_hull
            b.roadblock_connectors[rbc_id] = RoadblockConnector(
                id=rbc_id,
                polygon=union,
                from_roadblock_id=inbound[k],
                to_roadblock_id=outbound[target],
                lane_connector_ids=tuple(lc_ids),
                intersection_id=inter_id,
            )

    if with_extras:
        cw_id, ww_id, cp_id = next(b._area_ids), next(b._area_ids), next(b._area_ids)
        b.crosswalks[cw_id] = Area(cw_id, _place_poly(shapely.box(a0 + 3, -2 * w, a0 + 7, 2 * w), 0, origin))
        b.walkways[ww_id] = Area(ww_id, _place_poly(shapely.box(a0, 2 * w, a1, 2 * w + 3), 0, origin))
        b.carparks[cp_id] = Area(cp_id, _place_poly(shapely.box(25.0, -40.0, 55.0, -12.0), 0, origin))


def build_fixture_map(
    grid: tuple[int, int] = (1, 1),
    location: str = "us-nv-las-vegas-strip",
    version: str = "9.15.1915",
) -> RoadMap:
    """Build ``grid[0] * grid[1]`` disconnected intersection tiles, 200 m apart.

    Args:
        grid: tiles along x and y.
        location: nuPlan map location stored in the map.
        version: map version stored in the map.

    Returns:
        The road map, in a local projected frame (metres) labelled EPSG:32611.
    """
    b = _Builder()
    for i, j in itertools.product(range(grid[0]), range(grid[1])):
        _add_tile(b, np.array([i * TILE_SPACING_M, j * TILE_SPACING_M]), with_extras=True)
    return RoadMap(
        location=location,
        version=version,
        lanes=b.lanes,
        lane_connectors=b.lane_connectors,
        roadblocks=b.roadblocks,
        roadblock_connectors=b.roadblock_connectors,
        boundaries=b.boundaries,
        intersections=b.intersections,
        stop_lines=b.stop_lines,
        crosswalks=b.crosswalks,
        walkways=b.walkways,
        carparks=b.carparks,
    )
