"""The embedded world's road network, as a nuPlan-style :class:`~harness.maps.RoadMap`.

Layout (local frame, metres; the whole map is then rotated and shifted into a UTM-like frame near Las
Vegas, x ~ 664 km, y ~ 3997 km, so downstream code sees real-magnitude coordinates and roads that are not
axis-aligned)::

                 outer (2+2 lanes, four 90-degree curves, R = 40 m) around the north
        +----------------------------------------------------------------------+
        |          north (1+1 lanes, two curves, R = 30 m)                      |
        |      +---------------------------------------+                        |
        |      |                                       |                        |
        +------A============ middle (2+2) =============B------------------------+
               |      [car park]                       |
               |                                       |
               +------- south (1+1), [car park] -------+

``A`` (0, 0) and ``B`` (200, 0) are signalised 4-way intersections (arms start 16 m from the centre), each
with a traffic-light stop line per approach lane, a crosswalk across every arm (inside the junction, just
past the stop lines) and kerb corners that join the sidewalks (walkways) along every road.
Every road is two-way: a forward roadblock (driving along the road's reference line, lanes on its right;
right-hand traffic) beside a backward one, sharing the centre boundary. Roads run from one intersection
arm to another, so the only roadblock connectors are inside intersection polygons (nuPlan scoring treats
roadblock connectors as non-drivable; only roadblocks, intersections and car parks are drivable).

Ids are structured so that other modules can name map objects without searching (see :func:`lane_id`):
roadblocks 10000+, roadblock connectors 20000+, lanes 30000+, lane connectors 40000+, boundaries 50000+,
intersections 60000+, stop lines 61000+, crosswalks 62000+, walkways 63000+, car parks 64000+.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
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
from harness.world.polylines import (
    Segment,
    bezier_connector,
    largest_polygon,
    offset_line,
    oriented_rectangle,
    reference_line,
    resample,
    strip_polygon,
    swept_polygon,
    vertex_headings,
)

F64 = npt.NDArray[np.float64]

LOCATION = "us-nv-las-vegas-strip"
MAP_VERSION = "9.15.1915"
UTM_ORIGIN_XY = (664000.0, 3997000.0)

LANE_WIDTH_M = 3.6
ARM_START_M = 16.0  # intersection square half-size: lanes end / start this far from the centre
SIDEWALK_WIDTH_M = 3.0
CROSSWALK_BAND_M = (11.5, 15.5)  # crosswalks span this distance range from the centre, inside the square
CROSSWALK_OVERHANG_M = 1.0  # how far a crosswalk reaches past the kerb onto the corner walkway
STOP_LINE_DEPTH_M = 1.0
TURN_SPEED_LIMIT_MPS = 8.94  # 20 mph on turning connectors

INTERSECTIONS: dict[str, tuple[float, float]] = {"A": (0.0, 0.0), "B": (200.0, 0.0)}
ARMS: dict[str, float] = {"E": 0.0, "N": np.pi / 2, "W": np.pi, "S": -np.pi / 2}
_Q = np.pi / 2


@dataclass(frozen=True)
class RoadSpec:
    """One two-way road from arm ``start`` of an intersection to arm ``end`` of another (local frame)."""

    name: str
    start: tuple[str, str]  # (intersection, arm): the reference line leaves this arm
    end: tuple[str, str]  # and enters the intersection through this arm
    lanes: int  # per direction
    speed_limit_mps: float
    segments: tuple[Segment, ...]


ROADS: tuple[RoadSpec, ...] = (
    RoadSpec("middle", ("A", "E"), ("B", "W"), 2, 13.41, (("line", 168.0),)),
    RoadSpec(
        "north",
        ("A", "N"),
        ("B", "N"),
        1,
        11.18,
        (("line", 74.0), ("arc", 30.0, -_Q), ("line", 140.0), ("arc", 30.0, -_Q), ("line", 74.0)),
    ),
    RoadSpec(
        "south",
        ("A", "S"),
        ("B", "S"),
        1,
        11.18,
        (("line", 74.0), ("arc", 30.0, _Q), ("line", 140.0), ("arc", 30.0, _Q), ("line", 74.0)),
    ),
    RoadSpec(
        "outer",
        ("B", "E"),
        ("A", "W"),
        2,
        15.65,
        (
            ("line", 34.0),
            ("arc", 40.0, _Q),
            ("line", 120.0),
            ("arc", 40.0, _Q),
            ("line", 300.0),
            ("arc", 40.0, _Q),
            ("line", 120.0),
            ("arc", 40.0, _Q),
            ("line", 34.0),
        ),
    ),
)
_ROAD_INDEX = {r.name: k for k, r in enumerate(ROADS)}

#: Car parks (local frame), each touching a road's kerb: south of the middle road near A, and south of the
#: south road's straight.
CARPARK_BOXES_LOCAL = ((40.0, -38.0, 100.0, -7.2), (70.0, -147.6, 130.0, -123.6))


def roadblock_id(road: str, forward: bool) -> int:
    """Id of a road's forward (along its reference line) or backward roadblock."""
    return 10000 + 10 * _ROAD_INDEX[road] + (0 if forward else 1)


def lane_id(road: str, forward: bool, lane_index: int) -> int:
    """Id of lane ``lane_index`` (0 = leftmost in driving direction) of a road's roadblock."""
    return 30000 + 100 * _ROAD_INDEX[road] + (0 if forward else 10) + lane_index


def intersection_id(name: str) -> int:
    """Id of intersection ``"A"`` or ``"B"``."""
    return 60001 + sorted(INTERSECTIONS).index(name)


def inbound_roadblock_id(intersection: str, arm: str) -> int:
    """Id of the roadblock that enters ``intersection`` through ``arm`` (its traffic-light approach)."""
    for spec in ROADS:
        if spec.end == (intersection, arm):
            return roadblock_id(spec.name, True)
        if spec.start == (intersection, arm):
            return roadblock_id(spec.name, False)
    raise ValueError(f"no road at arm {arm} of intersection {intersection}")


def crosswalk_id(intersection: str, arm: str) -> int:
    """Id of the crosswalk across ``arm`` of ``intersection``."""
    return 62001 + 4 * sorted(INTERSECTIONS).index(intersection) + ("E", "N", "W", "S").index(arm)


def map_transform(seed: int) -> tuple[float, F64]:
    """The seed's rotation (rad) and translation ``(2,)`` from the local layout frame into the map frame."""
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x6D6170])
    theta = float(rng.uniform(-0.6, 0.6))
    origin = np.asarray(UTM_ORIGIN_XY) + rng.uniform(-250.0, 250.0, size=2).round(3)
    return theta, origin


@dataclass
class _LaneGeom:
    id: int
    roadblock_id: int
    points: F64  # local frame, resampled baseline
    start_heading: float
    end_heading: float


class _Builder:
    """Builds the map in the local frame and emits map objects already moved into the map frame."""

    def __init__(self, seed: int) -> None:
        theta, self.origin = map_transform(seed)
        self.rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
        self.lanes: dict[int, Lane] = {}
        self.connectors: dict[int, LaneConnector] = {}
        self.roadblocks: dict[int, Roadblock] = {}
        self.rb_connectors: dict[int, RoadblockConnector] = {}
        self.boundaries: dict[int, Boundary] = {}
        self.intersections: dict[int, Area] = {}
        self.stop_lines: dict[int, StopLine] = {}
        self.crosswalks: dict[int, Area] = {}
        self.walkways: dict[int, Area] = {}
        self.carparks: dict[int, Area] = {}
        self.geo: dict[int, _LaneGeom] = {}

    # --- frame ------------------------------------------------------------------------------------------

    def xy(self, points: npt.ArrayLike) -> F64:
        return np.asarray(points, dtype=np.float64) @ self.rot.T + self.origin

    def poly(self, geom: shapely.Polygon) -> shapely.Polygon:
        return shapely.transform(geom, lambda c: c @ self.rot.T + self.origin)

    # --- roads ------------------------------------------------------------------------------------------

    def road(self, spec: RoadSpec) -> None:
        ci, arm = spec.start
        start = np.asarray(INTERSECTIONS[ci]) + ARM_START_M * np.array([np.cos(ARMS[arm]), np.sin(ARMS[arm])])
        pts, hdg = reference_line(start, ARMS[arm], spec.segments)
        ce, arm_e = spec.end
        want = np.asarray(INTERSECTIONS[ce]) + ARM_START_M * np.array(
            [np.cos(ARMS[arm_e]), np.sin(ARMS[arm_e])]
        )
        if np.linalg.norm(pts[-1] - want) > 1e-6:
            raise RuntimeError(f"road {spec.name} ends at {pts[-1]}, expected arm {spec.end} at {want}")
        w = LANE_WIDTH_M
        divider_id = 50000 + 100 * _ROAD_INDEX[spec.name]
        for forward in (True, False):
            p, h = (pts, hdg) if forward else (pts[::-1], hdg[::-1] + np.pi)
            rb = roadblock_id(spec.name, forward)
            lines = [offset_line(p, h, -j * w) for j in range(spec.lanes + 1)]
            bids = [divider_id] + [divider_id + (1 if forward else 11) + j for j in range(spec.lanes)]
            for j, bid in enumerate(bids):
                if j == 0 and not forward:
                    continue  # the centre line is one shared boundary, stored in the forward direction
                self.boundaries[bid] = Boundary(bid, self.xy(resample(lines[j])))
            lane_ids = []
            for i in range(spec.lanes):
                lid = lane_id(spec.name, forward, i)
                base = resample(offset_line(p, h, -(i + 0.5) * w))
                self.geo[lid] = _LaneGeom(lid, rb, base, float(h[0]), float(h[-1]))
                self.lanes[lid] = Lane(
                    lid,
                    rb,
                    i,
                    self.xy(base),
                    self.poly(strip_polygon(lines[i], lines[i + 1])),
                    bids[i],
                    bids[i + 1],
                    spec.speed_limit_mps,
                )
                lane_ids.append(lid)
            self.roadblocks[rb] = Roadblock(
                rb, self.poly(strip_polygon(lines[0], lines[-1])), tuple(lane_ids)
            )
        self.sidewalks(spec, pts, hdg)

    def sidewalks(self, spec: RoadSpec, pts: F64, hdg: F64) -> None:
        hw = spec.lanes * LANE_WIDTH_M
        carpark = shapely.union_all([shapely.box(*b) for b in CARPARK_BOXES_LOCAL])
        for side in (1.0, -1.0):
            strip = strip_polygon(
                offset_line(pts, hdg, side * hw), offset_line(pts, hdg, side * (hw + SIDEWALK_WIDTH_M))
            )
            parts = strip.difference(carpark)
            for part in sorted(getattr(parts, "geoms", [parts]), key=lambda g: g.bounds):
                if isinstance(part, shapely.Polygon) and part.area > 1.0:
                    wid = 63000 + len(self.walkways) + 1
                    self.walkways[wid] = Area(wid, self.poly(part))

    # --- intersections ----------------------------------------------------------------------------------

    def arms(self, name: str) -> dict[str, tuple[RoadSpec, bool]]:
        """Arm -> (road, whether the road's forward roadblock *leaves* the intersection through it)."""
        out = {}
        for spec in ROADS:
            if spec.start[0] == name:
                out[spec.start[1]] = (spec, True)
            if spec.end[0] == name:
                out[spec.end[1]] = (spec, False)
        return out

    def intersection(self, name: str) -> None:
        center = np.asarray(INTERSECTIONS[name])
        arms = self.arms(name)
        iid = intersection_id(name)
        hw = {a: spec.lanes * LANE_WIDTH_M for a, (spec, _) in arms.items()}
        conn_polys = []
        for arm in ("E", "N", "W", "S"):  # approaches, in a fixed order for deterministic ids
            spec_in, out_fwd = arms[arm]
            inbound = [lane_id(spec_in.name, not out_fwd, i) for i in range(spec_in.lanes)]
            stop_ids = {}
            for lid in inbound:
                g = self.geo[lid]
                end = g.points[-1]
                sid = 61000 + len(self.stop_lines) + 1
                rect = oriented_rectangle(
                    end - 0.5 * STOP_LINE_DEPTH_M * _unit(g.end_heading),
                    g.end_heading,
                    STOP_LINE_DEPTH_M,
                    LANE_WIDTH_M,
                )
                self.stop_lines[sid] = StopLine(sid, self.poly(rect), StopLineType.TRAFFIC_LIGHT)
                stop_ids[lid] = sid
            travel = ARMS[arm] + np.pi
            for move, turn in (("L", _Q), ("S", 0.0), ("R", -_Q)):
                exit_arm = _arm_for_heading(travel + turn)
                spec_out, out_fwd_y = arms[exit_arm]
                outbound = [lane_id(spec_out.name, out_fwd_y, i) for i in range(spec_out.lanes)]
                if move == "L":
                    pairs = [(inbound[0], outbound[0])]
                elif move == "R":
                    pairs = [(inbound[-1], outbound[-1])]
                else:
                    pairs = [(inbound[i], outbound[min(i, len(outbound) - 1)]) for i in range(len(inbound))]
                rbc = 20000 + len(self.rb_connectors) + 1
                lc_ids, polys = [], []
                for a, b in pairs:
                    ga, gb = self.geo[a], self.geo[b]
                    base = bezier_connector(ga.points[-1], ga.end_heading, gb.points[0], gb.start_heading)
                    base[0], base[-1] = ga.points[-1], gb.points[0]
                    poly = swept_polygon(base, LANE_WIDTH_M / 2)
                    h = vertex_headings(base)
                    lcid = 40000 + len(self.connectors) + 1
                    lb, rb_ = 52000 + 2 * (lcid - 40000), 52001 + 2 * (lcid - 40000)
                    self.boundaries[lb] = Boundary(lb, self.xy(offset_line(base, h, LANE_WIDTH_M / 2)))
                    self.boundaries[rb_] = Boundary(rb_, self.xy(offset_line(base, h, -LANE_WIDTH_M / 2)))
                    limit = (
                        min(spec_in.speed_limit_mps, spec_out.speed_limit_mps)
                        if move == "S"
                        else TURN_SPEED_LIMIT_MPS
                    )
                    self.connectors[lcid] = LaneConnector(
                        lcid, rbc, a, b, self.xy(base), self.poly(poly), lb, rb_, limit, (stop_ids[a],), True
                    )
                    lc_ids.append(lcid)
                    polys.append(poly)
                conn_polys.extend(polys)
                self.rb_connectors[rbc] = RoadblockConnector(
                    rbc,
                    self.poly(largest_polygon(shapely.union_all(polys))),
                    self.geo[pairs[0][0]].roadblock_id,
                    self.geo[pairs[0][1]].roadblock_id,
                    tuple(lc_ids),
                    iid,
                )
        # The drivable junction: the crossing road strips inside the square plus every connector's swept area
        # (right turns cut the kerb corners), without holes.
        d = ARM_START_M
        strips = [oriented_rectangle(center + 0.5 * d * _unit(ARMS[a]), ARMS[a], d, 2 * hw[a]) for a in arms]
        shape = largest_polygon(shapely.union_all([*strips, *conn_polys]).buffer(0.0))
        shape = shapely.Polygon(shape.exterior)
        self.intersections[iid] = Area(iid, self.poly(shape))
        lo, hi = CROSSWALK_BAND_M
        for arm in ("E", "N", "W", "S"):
            u = _unit(ARMS[arm])
            rect = oriented_rectangle(
                center + 0.5 * (lo + hi) * u, ARMS[arm], hi - lo, 2 * (hw[arm] + CROSSWALK_OVERHANG_M)
            )
            cid = 62000 + len(self.crosswalks) + 1
            self.crosswalks[cid] = Area(cid, self.poly(rect))
        for arm in ("E", "N", "W", "S"):  # kerb corners between an arm and the next one counter-clockwise
            nxt = _arm_for_heading(ARMS[arm] + _Q)
            ux, uy = _unit(ARMS[arm]), _unit(ARMS[nxt])
            corners = [
                center + a * ux + b * uy for a, b in ((hw[nxt], hw[arm]), (d, hw[arm]), (d, d), (hw[nxt], d))
            ]
            corner = largest_polygon(shapely.Polygon(corners).difference(shape))
            if corner.area > 1.0:
                wid = 63000 + len(self.walkways) + 1
                self.walkways[wid] = Area(wid, self.poly(corner))

    def build(self) -> RoadMap:
        for spec in ROADS:
            self.road(spec)
        for name in sorted(INTERSECTIONS):
            self.intersection(name)
        for k, box in enumerate(CARPARK_BOXES_LOCAL):
            self.carparks[64001 + k] = Area(64001 + k, self.poly(shapely.box(*box)))
        return RoadMap(
            LOCATION,
            MAP_VERSION,
            self.lanes,
            self.connectors,
            self.roadblocks,
            self.rb_connectors,
            self.boundaries,
            self.intersections,
            self.stop_lines,
            self.crosswalks,
            self.walkways,
            self.carparks,
        )


def _unit(heading: float) -> F64:
    return np.array([np.cos(heading), np.sin(heading)])


def _arm_for_heading(heading: float) -> str:
    for arm, h in ARMS.items():
        if abs(np.angle(np.exp(1j * (heading - h)))) < 0.1:
            return arm
    raise ValueError(f"no arm with heading {heading}")


def build_road_map(seed: int = 0) -> RoadMap:
    """Build the embedded world's road map.

    The topology and local geometry are fixed; ``seed`` only picks the rotation (within +-0.6 rad) and the
    offset (within +-250 m of x = 664000, y = 3997000) that place the layout in the map frame. The same seed
    always gives an identical map.

    Args:
        seed: placement seed.

    Returns:
        A :class:`RoadMap` at location ``us-nv-las-vegas-strip``, version ``9.15.1915``, with float64
        geometry in metres (projected CRS EPSG:32611-like).
    """
    return _Builder(seed).build()
