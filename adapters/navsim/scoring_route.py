"""PDM-Closed's route handling for the metric cache: the per-map route graph and route correction.

Re-implements the semantics of NAVSIM v1.1 (unchanged on ``main``) ``pdm/utils/route_utils.py``,
``pdm/utils/graph_search/bfs_roadblock.py`` and ``pdm/abstract_pdm_planner.py`` (``_load_route_dicts``)
on lead-bench's ``RoadMap`` / ``MapQuery`` (specs/navsim.md §4.2). Everything is in the map frame (metres,
radians). Where the official code's result depends on an order, the order is nuPlan's: the map's row order,
i.e. ascending FID (the official maps and ``map_writer`` store rows in FID order), for a roadblock's lanes,
its incoming/outgoing connectors and proximity queries.

The official breadth-first search keeps no visited set and remembers, per (node, depth), the *last* parent
that reached a node. :func:`_bfs_roadblocks` reproduces exactly that result level by level on de-duplicated
frontiers (so depth 30 stays cheap on any map): the first target in BFS order is the first target of the
level in first-occurrence order, and a node's parent is the last parent in last-occurrence order.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely

from harness.map_query import MapLayer, MapQuery
from harness.maps import RoadMap

F64 = npt.NDArray[np.float64]

#: nuPlan ``get_pacifica_parameters`` (front 4.049 m, rear 1.127 m, width 2 x 1.1485 m); the centre offset is
#: computed as the devkit does (half length - rear length) so the float is the same.
PACIFICA_LENGTH_M = 4.049 + 1.127
PACIFICA_WIDTH_M = 1.1485 * 2.0
REAR_AXLE_TO_CENTER_M = PACIFICA_LENGTH_M / 2.0 - 1.127

#: route_utils.py defaults.
HEADING_ERROR_THRESH_RAD = np.pi / 4
DISPLACEMENT_ERROR_THRESH_M = 3.0
SEARCH_DEPTH_BACKWARD = 15
SEARCH_DEPTH_FORWARD = 30
#: Square half-side of the roadblock query around the rear axle (get_proximal_map_objects radius).
ROADBLOCK_QUERY_RADIUS_M = 1.0


def normalize_angle_atan2(angle: npt.ArrayLike) -> F64:
    """NAVSIM's ``normalize_angle``: ``arctan2(sin, cos)`` (bit-for-bit what the official code computes)."""
    a = np.asarray(angle, dtype=np.float64)
    return np.arctan2(np.sin(a), np.cos(a))


def ego_center(ego_pose: npt.ArrayLike) -> F64:
    """Centre ``(2,)`` of the Pacifica footprint for a rear-axle pose ``(3,)`` (nuPlan ``translate_longitudinally``)."""
    x, y, h = (float(v) for v in np.asarray(ego_pose, dtype=np.float64)[:3])
    return np.array([x + REAR_AXLE_TO_CENTER_M * np.cos(h), y + REAR_AXLE_TO_CENTER_M * np.sin(h)])


def ego_footprint(ego_pose: npt.ArrayLike) -> shapely.Polygon:
    """The ego's oriented box (FL, RL, RR, FR), map frame, for a rear-axle pose ``(3,)``."""
    c = ego_center(ego_pose)
    h = float(np.asarray(ego_pose, dtype=np.float64)[2])
    hl, hw = PACIFICA_LENGTH_M / 2.0, PACIFICA_WIDTH_M / 2.0
    cos, sin = np.cos(h), np.sin(h)
    local = np.array([[hl, hw], [-hl, hw], [-hl, -hw], [hl, -hw]])
    xy = c + local @ np.array([[cos, sin], [-sin, cos]])
    return shapely.Polygon(xy)


@dataclass(frozen=True)
class _Path:
    """A lane's (or connector's) baseline as nuPlan's ``discrete_path`` sees it."""

    xy: F64  # (N, 2) the baseline's vertices
    heading: F64  # (N,) direction of the following segment, the last one repeated
    length_m: float  # shapely LineString length (Dijkstra's edge cost)


class RouteGraph:
    """Per-map lookups the route code needs, built once per ``RoadMap`` (see :func:`route_graph`).

    Args:
        road_map: the map; ids as in nuPlan (lanes and lane connectors share one namespace, roadblocks and
            roadblock connectors another).
    """

    def __init__(self, road_map: RoadMap) -> None:
        m = road_map
        # A proxy, so that the module-level cache in route_graph() does not keep the map alive.
        self.road_map: RoadMap = weakref.proxy(m)
        self._paths: dict[int, _Path] = {}
        interior: dict[int, list[int]] = {}
        for lane in m.lanes.values():
            interior.setdefault(lane.roadblock_id, []).append(lane.id)
        for lc in m.lane_connectors.values():
            interior.setdefault(lc.roadblock_connector_id, []).append(lc.id)
        self.interior = {k: tuple(sorted(v)) for k, v in interior.items()}
        out: dict[int, list[int]] = {}
        inc: dict[int, list[int]] = {}
        for c in m.roadblock_connectors.values():
            out.setdefault(c.from_roadblock_id, []).append(c.id)
            inc.setdefault(c.to_roadblock_id, []).append(c.id)
        self._rb_out = {k: tuple(sorted(v)) for k, v in out.items()}
        self._rb_in = {k: tuple(sorted(v)) for k, v in inc.items()}
        #: Discrete centerlines by (starting lane, route, route lanes), see ``centerline_from_lane``.
        self.centerlines: OrderedDict[tuple[int, tuple[int, ...], tuple[int, ...]], F64] = OrderedDict()

    #: Centerlines remembered per map (a log's scenes share a handful).
    CENTERLINES_KEPT = 256

    def remember_centerline(self, key: tuple[int, tuple[int, ...], tuple[int, ...]], line: F64) -> None:
        line.flags.writeable = False
        self.centerlines[key] = line
        while len(self.centerlines) > self.CENTERLINES_KEPT:
            self.centerlines.popitem(last=False)

    def is_block(self, block_id: int) -> bool:
        return block_id in self.road_map.roadblocks or block_id in self.road_map.roadblock_connectors

    def block_outgoing(self, block_id: int) -> tuple[int, ...]:
        """A roadblock's outgoing connectors, or a connector's target roadblock."""
        c = self.road_map.roadblock_connectors.get(block_id)
        return (c.to_roadblock_id,) if c is not None else self._rb_out.get(block_id, ())

    def block_incoming(self, block_id: int) -> tuple[int, ...]:
        """A roadblock's incoming connectors, or a connector's source roadblock."""
        c = self.road_map.roadblock_connectors.get(block_id)
        return (c.from_roadblock_id,) if c is not None else self._rb_in.get(block_id, ())

    def block_polygon(self, block_id: int) -> shapely.Polygon:
        m = self.road_map
        return m.roadblocks[block_id].polygon if block_id in m.roadblocks else m.roadblock_connectors[block_id].polygon

    def lane_block(self, lane_id: int) -> int:
        """The roadblock (or roadblock connector) of a lane (or lane connector): ``get_roadblock_id()``."""
        lane = self.road_map.lanes.get(lane_id)
        return lane.roadblock_id if lane is not None else self.road_map.lane_connectors[lane_id].roadblock_connector_id

    def lane_polygon(self, lane_id: int) -> shapely.Polygon:
        lane = self.road_map.lanes.get(lane_id)
        return lane.polygon if lane is not None else self.road_map.lane_connectors[lane_id].polygon

    def lane_outgoing(self, lane_id: int) -> tuple[int, ...]:
        return self.road_map.successors(lane_id)

    def path(self, lane_id: int) -> _Path:
        p = self._paths.get(lane_id)
        if p is None:
            lane = self.road_map.lanes.get(lane_id)
            xy = lane.baseline_xy if lane is not None else self.road_map.lane_connectors[lane_id].baseline_xy
            d = np.diff(xy, axis=0)
            h = np.arctan2(d[:, 1], d[:, 0])
            p = _Path(np.asarray(xy), np.append(h, h[-1]), float(shapely.length(shapely.LineString(xy))))
            self._paths[lane_id] = p
        return p


_GRAPHS: dict[int, tuple[weakref.ref, RouteGraph]] = {}


def route_graph(road_map: RoadMap) -> RouteGraph:
    """The :class:`RouteGraph` of ``road_map``, built on first use and kept while the map lives."""
    key = id(road_map)
    hit = _GRAPHS.get(key)
    if hit is not None and hit[0]() is road_map:
        return hit[1]
    graph = RouteGraph(road_map)
    _GRAPHS[key] = (weakref.ref(road_map, lambda _ref, k=key: _GRAPHS.pop(k, None)), graph)
    return graph


def nearest_on_path(path: _Path, point_xy: F64) -> tuple[int, float]:
    """Index of and distance to the baseline vertex nearest ``point_xy`` (first on ties, as ``np.argmin``)."""
    d = ((path.xy - point_xy[None, :]) ** 2.0).sum(axis=-1) ** 0.5
    i = int(np.argmin(d))
    return i, float(d[i])


# --- route correction -----------------------------------------------------------------------------------


def current_roadblock_candidates(
    ego_pose: npt.ArrayLike,
    road_map: RoadMap,
    map_query: MapQuery,
    route_roadblock_ids: Sequence[int],
) -> tuple[int, list[int]]:
    """The roadblock the ego is in and the candidates (``get_current_roadblock_candidates``).

    Candidates are the roadblocks and roadblock connectors within 1 m (square) of the rear axle, else the
    nearest of each layer. A candidate qualifies, once per interior lane, when that lane's nearest baseline
    vertex is within 3 m and its heading within pi/4 of the ego's; on-route qualifiers are preferred, then
    other qualifiers, then any candidate, each by the smallest displacement.

    Args:
        ego_pose: ``(3,)`` rear-axle pose (x, y, heading), map frame.
        road_map, map_query: the map and its index.
        route_roadblock_ids: the (de-duplicated) route.

    Returns:
        ``(starting_block_id, candidate_ids)``; candidate ids may repeat (one entry per qualifying lane).
    """
    graph = route_graph(road_map)
    pose = np.asarray(ego_pose, dtype=np.float64)
    point = pose[:2]
    candidates = list(map_query.objects_within(point, ROADBLOCK_QUERY_RADIUS_M, MapLayer.ROADBLOCK))
    candidates += map_query.objects_within(point, ROADBLOCK_QUERY_RADIUS_M, MapLayer.ROADBLOCK_CONNECTOR)
    if not candidates:
        for blocks in (road_map.roadblocks, road_map.roadblock_connectors):
            if blocks:
                ids = sorted(blocks)
                dist = shapely.distance(shapely.points(point), np.array([blocks[i].polygon for i in ids]))
                # The devkit takes the first row of pandas' sort_values, an unstable quicksort: equidistant
                # objects resolve as numpy's quicksort orders them (numpy-version dependent, as in NAVSIM).
                candidates.append(ids[int(np.argsort(dist, kind="quicksort")[0])])
    if not candidates:
        raise ValueError("the map has no roadblocks")
    on_route = set(route_roadblock_ids)
    on_route_c: list[int] = []
    on_route_d: list[float] = []
    other_c: list[int] = []
    other_d: list[float] = []
    block_d: list[float] = []
    for block in candidates:
        best = np.inf
        for lane_id in graph.interior.get(block, ()):
            path = graph.path(lane_id)
            i, disp = nearest_on_path(path, point)
            heading_error = float(np.abs(normalize_angle_atan2(path.heading[i] - pose[2])))
            best = min(best, disp)
            if heading_error < HEADING_ERROR_THRESH_RAD and disp < DISPLACEMENT_ERROR_THRESH_M:
                if block in on_route:
                    on_route_c.append(block)
                    on_route_d.append(disp)
                else:
                    other_c.append(block)
                    other_d.append(disp)
        block_d.append(best)
    if on_route_c:
        return on_route_c[int(np.argmin(on_route_d))], on_route_c
    if other_c:
        return other_c[int(np.argmin(other_d))], other_c
    return candidates[int(np.argmin(block_d))], candidates


def _bfs_roadblocks(
    graph: RouteGraph, start: int, targets: Sequence[int], max_depth: int, *, forward: bool
) -> tuple[list[int], bool]:
    """``BreadthFirstSearchRoadBlock.search``: the path to the first target reached, in driving order.

    Depth 1 is the start itself; levels 1..``max_depth`` are tested. Returns ``([], False)`` when no target
    is reached (the official partial path is never used by its callers).
    """
    wanted = set(targets)
    neighbours = graph.block_outgoing if forward else graph.block_incoming
    first: list[int] = [start]  # this level's nodes in order of first occurrence in the official queue
    last: list[int] = [start]  # ... and in order of last occurrence
    parents: list[dict[int, int]] = [{}]  # parents[d - 1][node at depth d] = its (last-assigned) parent
    for depth in range(1, max_depth + 1):
        for node in first:
            if node in wanted:
                path = [node]
                for d in range(depth - 1, 0, -1):
                    path.append(parents[d][path[-1]])
                if forward:
                    path.reverse()
                return path, True
        seen: dict[int, None] = {}
        for node in first:
            for nxt in neighbours(node):
                seen.setdefault(nxt, None)
        if not seen:
            break
        parent: dict[int, int] = {}
        last_pos: dict[int, tuple[int, int]] = {}
        for rank, node in enumerate(last):
            for j, nxt in enumerate(neighbours(node)):
                parent[nxt] = node
                last_pos[nxt] = (rank, j)
        first = list(seen)
        last = sorted(last_pos, key=last_pos.__getitem__)
        parents.append(parent)
    return [], False


def _remove_route_loops(graph: RouteGraph, route: list[int]) -> list[int]:
    """Cut the route at the first roadblock connector overlapping an earlier one by more than 1 m²."""
    seen: dict[int, shapely.Polygon] = {}
    for idx, block in enumerate(route):
        if block not in graph.road_map.roadblock_connectors:
            continue
        poly = graph.block_polygon(block)
        if seen:
            earlier = np.array(list(seen.values()), dtype=object)
            if np.any(shapely.area(shapely.intersection(earlier, poly)) > 1.0):
                return route[:idx]  # idx > 0: the first connector is never tested
        seen[block] = poly
    return route


def dedupe_route(route_roadblock_ids: Sequence[int | str], road_map: RoadMap) -> list[int]:
    """``_load_route_dicts``' id list: ids as ints, repeats removed (first kept), each checked on the map.

    Raises:
        ValueError: an id is neither a roadblock nor a roadblock connector of the map.
    """
    graph = route_graph(road_map)
    out = list(dict.fromkeys(int(r) for r in route_roadblock_ids))
    missing = [r for r in out if not graph.is_block(r)]
    if missing:
        raise ValueError(f"route roadblock(s) {missing[:5]} are neither roadblocks nor roadblock connectors of "
                         f"map {road_map.location} {road_map.version}")
    return out


def route_roadblock_correction(
    ego_pose: npt.ArrayLike,
    road_map: RoadMap,
    map_query: MapQuery,
    route_roadblock_ids: Sequence[int | str],
) -> list[int]:
    """PDM's route correction (``route_utils.route_roadblock_correction``), exact official semantics.

    1. If the ego's roadblock (:func:`current_roadblock_candidates`) is off the route: BFS backward from the
       first route roadblock (depth 15) to any candidate and prepend that path; failing that, BFS forward from
       the ego's roadblock (depth 30) to one of the first three route roadblocks, drop the route up to and
       including the one reached and prepend the path.
    2. Between consecutive route roadblocks that are not linked, insert the interior of a forward BFS path
       (depth 30) when it has at least one intermediate roadblock.
    3. Cut the route at the first roadblock connector that overlaps an earlier one by more than 1 m².

    Args:
        ego_pose: ``(3,)`` rear-axle pose (x, y, heading), map frame.
        road_map, map_query: the map and its index.
        route_roadblock_ids: the log's route (``roadblock_ids`` of the current frame; ints or digit strings);
            repeats are removed first, as ``_load_route_dicts`` does.

    Returns:
        The corrected route, before de-duplication (the official function's return value may repeat an id;
        PDM then keeps the first occurrence, see :func:`dedupe_route`).

    Raises:
        ValueError: empty route or an id that is not on the map.
    """
    route = dedupe_route(route_roadblock_ids, road_map)
    if not route:
        raise ValueError("route_roadblock_ids is empty; PDM's route correction needs a route")
    graph = route_graph(road_map)
    start_block, start_candidates = current_roadblock_candidates(ego_pose, road_map, map_query, route)

    if start_block not in route:
        path, found = _bfs_roadblocks(graph, route[0], start_candidates, SEARCH_DEPTH_BACKWARD, forward=False)
        if found:
            route[:0] = path[:-1]
        else:
            path, found = _bfs_roadblocks(graph, start_block, route[:3], SEARCH_DEPTH_FORWARD, forward=True)
            if found:
                end = route.index(path[-1])
                route = path + route[end + 1 :]

    inserts: dict[int, list[int]] = {}
    for i in range(len(route) - 1):
        if route[i] in graph.block_incoming(route[i + 1]):
            continue
        path, found = _bfs_roadblocks(graph, route[i], [route[i + 1]], SEARCH_DEPTH_FORWARD, forward=True)
        if found and len(path) >= 3:
            inserts[i] = path[1:-1]
    offset = 1
    for i, path in inserts.items():
        route[i + offset : i + offset] = path
        offset += len(path)

    return _remove_route_loops(graph, route)


def route_lane_ids(route_roadblock_ids: Sequence[int], road_map: RoadMap) -> list[int]:
    """Interior lanes / lane connectors of the (de-duplicated) route, in route then FID order."""
    graph = route_graph(road_map)
    return list(dict.fromkeys(lane for block in route_roadblock_ids for lane in graph.interior.get(block, ())))
