"""The lane graph as flat arrays for simulation, and paths (routes through it) with arc-length geometry.

A *node* is a lane or a lane connector (nuPlan keeps both in one id namespace); nodes are numbered 0..M-1,
lanes first. A :class:`Path` is a sequence of nodes a vehicle follows, concatenated into one polyline with
its own arc-length coordinate ``s`` (metres from the start of the first node). Everything is in the map
frame.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely

from harness.geometry import polyline_arc_length
from harness.maps import RoadMap
from harness.world.polylines import curvature, vertex_headings

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

#: Turn choice weights of background traffic at an intersection.
TURN_WEIGHTS = {"S": 0.5, "L": 0.25, "R": 0.25}


@dataclass(frozen=True)
class CrosswalkFrame:
    """A crosswalk's walking axis: ``center (2,)``, unit ``axis (2,)`` across the road, ``half_length_m``."""

    id: int
    center: F64
    axis: F64
    half_length_m: float
    intersection_id: int | None


@dataclass(frozen=True)
class Crossing:
    """Where a node's baseline crosses crosswalk ``crosswalk`` (index): node coordinates and the walking-axis
    coordinate ``u_m`` of the crossing point."""

    crosswalk: int
    s_in_m: float
    s_out_m: float
    u_m: float


@dataclass(frozen=True)
class LaneGraph:
    """Flat, index-based view of a :class:`RoadMap`'s lane graph (built once per map)."""

    road_map: RoadMap
    ids: tuple[int, ...]
    index: Mapping[int, int]
    points: tuple[F64, ...]
    arc: tuple[F64, ...]
    headings: tuple[F64, ...]
    curvatures: tuple[F64, ...]
    length: F64
    speed_limit: F64
    is_connector: npt.NDArray[np.bool_]
    successors: tuple[tuple[int, ...], ...]
    roadblock: I64
    turn: tuple[str, ...]  # "L", "S", "R" for connectors, "" for lanes
    approach: I64  # index into ``approaches`` for signalised connectors, else -1
    approaches: tuple[tuple[int, int], ...]  # (intersection id, from-roadblock id)
    conflicts: npt.NDArray[np.bool_]  # (M, M): connectors of different approaches whose areas overlap
    crossings: tuple[tuple[Crossing, ...], ...]
    crosswalks: tuple[CrosswalkFrame, ...]

    @property
    def num_nodes(self) -> int:
        return len(self.ids)


def build_lane_graph(road_map: RoadMap) -> LaneGraph:
    """Index a map's lanes and lane connectors for simulation."""
    m = road_map
    ids = tuple(sorted(m.lanes)) + tuple(sorted(m.lane_connectors))
    index = {nid: k for k, nid in enumerate(ids)}
    objs = [m.lanes[i] if i in m.lanes else m.lane_connectors[i] for i in ids]
    points = tuple(o.baseline_xy for o in objs)
    arc = tuple(polyline_arc_length(p) for p in points)
    heads = tuple(vertex_headings(p) for p in points)
    curv = tuple(curvature(p) for p in points)
    length = np.array([a[-1] for a in arc])
    limit = np.array([o.speed_limit_mps if o.speed_limit_mps else 13.4 for o in objs])
    is_conn = np.array([i in m.lane_connectors for i in ids])
    succ = tuple(tuple(index[s] for s in m.successors(i)) for i in ids)
    roadblock = np.array(
        [
            o.roadblock_id if i in m.lanes else o.roadblock_connector_id  # type: ignore[union-attr]
            for i, o in zip(ids, objs)
        ],
        dtype=np.int64,
    )
    turn, approach, keys = [], [], {}
    for i, h in zip(ids, heads):
        if i not in m.lane_connectors:
            turn.append("")
            approach.append(-1)
            continue
        dh = float(np.angle(np.exp(1j * (h[-1] - h[0]))))
        turn.append("L" if dh > 0.5 else "R" if dh < -0.5 else "S")
        lc = m.lane_connectors[i]
        if lc.has_traffic_light:
            rbc = m.roadblock_connectors[lc.roadblock_connector_id]
            key = (int(rbc.intersection_id or 0), rbc.from_roadblock_id)
            approach.append(keys.setdefault(key, len(keys)))
        else:
            approach.append(-1)
    approach_arr = np.array(approach, dtype=np.int64)
    conflicts = _conflicts(m, ids, is_conn)
    frames = tuple(_crosswalk_frame(m, cid) for cid in sorted(m.crosswalks))
    crossings = _crossings(points, frames, m)
    return LaneGraph(
        m,
        ids,
        index,
        points,
        arc,
        heads,
        curv,
        length,
        limit,
        is_conn,
        succ,
        roadblock,
        tuple(turn),
        approach_arr,
        tuple(keys),
        conflicts,
        crossings,
        frames,
    )


def _conflicts(m: RoadMap, ids: Sequence[int], is_conn: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    n = len(ids)
    out = np.zeros((n, n), dtype=bool)
    conn = [k for k in range(n) if is_conn[k]]
    polys = np.array([m.lane_connectors[ids[k]].polygon for k in conn], dtype=object)
    src = np.array(
        [
            m.roadblock_connectors[m.lane_connectors[ids[k]].roadblock_connector_id].from_roadblock_id
            for k in conn
        ]
    )
    area = shapely.area(shapely.intersection(polys[:, None], polys[None, :]))
    # Connectors of one approach never conflict (they leave side by side); others do if their areas overlap
    # by more than a sliver (adjacent polygons touch along shared edges).
    hit = (area > 0.5) & (src[:, None] != src[None, :])
    idx = np.array(conn)
    out[np.ix_(idx, idx)] = hit
    return out


def _crosswalk_frame(m: RoadMap, cid: int) -> CrosswalkFrame:
    poly = m.crosswalks[cid].polygon
    rect = np.asarray(shapely.oriented_envelope(poly).exterior.coords)[:4]
    e1, e2 = rect[1] - rect[0], rect[2] - rect[1]
    long_edge = e1 if np.linalg.norm(e1) >= np.linalg.norm(e2) else e2
    axis = long_edge / np.linalg.norm(long_edge)
    inter = [i for i, a in sorted(m.intersections.items()) if a.polygon.intersects(poly)]
    return CrosswalkFrame(
        cid, rect.mean(axis=0), axis, float(np.linalg.norm(long_edge)) / 2.0, inter[0] if inter else None
    )


def _crossings(
    points: Sequence[F64], frames: Sequence[CrosswalkFrame], m: RoadMap
) -> tuple[tuple[Crossing, ...], ...]:
    polys = [m.crosswalks[f.id].polygon for f in frames]
    out = []
    for pts in points:
        line = shapely.LineString(pts)
        found = []
        for k, (f, poly) in enumerate(zip(frames, polys)):
            if not line.intersects(poly):
                continue
            seg = line.intersection(poly)
            coords = np.asarray(shapely.get_coordinates(seg))
            proj = np.array([line.project(shapely.Point(c)) for c in coords])
            mid = (
                np.interp(0.5 * (proj.min() + proj.max()), polyline_arc_length(pts), pts[:, 0]),
                np.interp(0.5 * (proj.min() + proj.max()), polyline_arc_length(pts), pts[:, 1]),
            )
            u = float((np.asarray(mid) - f.center) @ f.axis)
            found.append(Crossing(k, float(proj.min()), float(proj.max()), u))
        out.append(tuple(found))
    return tuple(out)


# --- paths -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Path:
    """A route through the lane graph with its concatenated polyline.

    ``nodes (K,)`` node indices in driving order; element ``k`` is the vehicle's current node once its
    path coordinate passes ``seq_start[k]``. A point at node coordinate ``c`` lies at path coordinate
    ``c + coord_offset[k]``. Vehicles on element ``k`` count as being on this path only between path
    coordinates ``look_lo[k]`` and ``look_hi[k]`` (a lane change narrows them). ``points (P, 2)``, ``s (P,)``,
    ``heading (P,)`` (unwrapped), ``curvature (P,)`` and ``speed_limit (P,)`` sample the polyline.
    """

    nodes: I64
    seq_start: F64
    coord_offset: F64
    look_lo: F64
    look_hi: F64
    points: F64
    s: F64
    heading: F64
    curvature: F64
    speed_limit: F64

    @property
    def length_m(self) -> float:
        return float(self.s[-1])

    def roadblocks(self, graph: LaneGraph) -> tuple[int, ...]:
        """Roadblock / roadblock-connector ids along the path, consecutive duplicates removed."""
        out: list[int] = []
        for n in self.nodes:
            rb = int(graph.roadblock[n])
            if not out or out[-1] != rb:
                out.append(rb)
        return tuple(out)

    def element_at(self, s_m: npt.ArrayLike) -> I64:
        """Index of the path element (into ``nodes``) that is current at path coordinates ``s_m``."""
        return np.clip(
            np.searchsorted(self.seq_start, np.asarray(s_m), side="right") - 1, 0, len(self.nodes) - 1
        )

    def interpolate(self, s_m: npt.ArrayLike) -> tuple[F64, F64]:
        """Positions ``(..., 2)`` and headings ``(...)`` (wrapped to [-pi, pi)) at path coordinates."""
        q = np.clip(np.asarray(s_m, dtype=np.float64), 0.0, self.s[-1])
        x = np.interp(q, self.s, self.points[:, 0])
        y = np.interp(q, self.s, self.points[:, 1])
        h = np.interp(q, self.s, self.heading)
        return np.stack([x, y], axis=-1), (h + np.pi) % (2 * np.pi) - np.pi


def build_path(graph: LaneGraph, nodes: Sequence[int]) -> Path:
    """Concatenate nodes (each the successor of the previous one) into a :class:`Path`."""
    pts, hs, ks, lims, starts = [], [], [], [], []
    total = 0.0
    for k, n in enumerate(nodes):
        if k and n not in graph.successors[nodes[k - 1]]:
            raise ValueError(f"build_path: node {graph.ids[n]} does not follow {graph.ids[nodes[k - 1]]}")
        cut = 0 if k == 0 else 1  # a node starts where the previous one ends; drop the duplicate point
        pts.append(graph.points[n][cut:])
        hs.append(graph.headings[n][cut:])
        ks.append(graph.curvatures[n][cut:])
        lims.append(np.full(len(graph.points[n]) - cut, graph.speed_limit[n]))
        starts.append(total)
        total += float(graph.length[n])
    points = np.concatenate(pts)
    s = polyline_arc_length(points)
    heading = np.unwrap(np.concatenate(hs))
    seq = np.array(starts)
    ends = seq + graph.length[np.asarray(nodes)]
    return Path(
        np.asarray(nodes, dtype=np.int64),
        seq,
        seq.copy(),
        seq.copy(),
        ends,
        points,
        s,
        heading,
        np.concatenate(ks),
        np.concatenate(lims),
    )


def random_route(
    graph: LaneGraph,
    start: Sequence[int],
    min_length_m: float,
    rng: np.random.Generator,
    forbidden: Collection[int] = (),
    turns: Sequence[str] = (),
    min_nodes: int = 1,
) -> list[int]:
    """Extend a node sequence through the graph until it is at least ``min_length_m`` long and has at least
    ``min_nodes`` nodes.

    At each lane end a connector is drawn with :data:`TURN_WEIGHTS`, except that the first ``len(turns)``
    intersection choices follow ``turns`` ("L", "S", "R") when possible. Connectors into ``forbidden``
    node indices are avoided while another choice exists.
    """
    nodes = list(start)
    length = float(graph.length[nodes].sum())
    decided = 0
    while length < min_length_m or len(nodes) < min_nodes:
        succ = graph.successors[nodes[-1]]
        if not succ:
            break
        if graph.is_connector[nodes[-1]] or len(succ) == 1:
            nxt = succ[0]
        else:
            ok = [c for c in succ if graph.successors[c][0] not in forbidden] or list(succ)
            want = turns[decided] if decided < len(turns) else None
            decided += 1
            pick = [c for c in ok if graph.turn[c] == want]
            if pick:
                nxt = pick[0]
            else:
                w = np.array([TURN_WEIGHTS.get(graph.turn[c], 0.1) for c in ok])
                nxt = ok[int(rng.choice(len(ok), p=w / w.sum()))]
        nodes.append(nxt)
        length += float(graph.length[nxt])
    return nodes


def speed_profile(path: Path, lateral_accel_mps2: float, decel_mps2: float) -> F64:
    """Highest comfortable speed ``(P,)`` along a path: the speed limit, capped by lateral acceleration in
    curves, and lowered ahead of slower stretches so that reaching them needs at most ``decel_mps2``."""
    k = np.maximum(np.abs(path.curvature), 1e-6)
    v2 = np.minimum(path.speed_limit**2, lateral_accel_mps2 / k)
    # v(s)^2 = min over s' >= s of v_c(s')^2 + 2 b (s' - s): a reverse running minimum, no Python loop.
    g = v2 + 2.0 * decel_mps2 * path.s
    return np.sqrt(np.maximum(np.minimum.accumulate(g[::-1])[::-1] - 2.0 * decel_mps2 * path.s, 0.0))
