"""PDM-Closed's starting lane and discrete centerline for the metric cache.

Re-implements NAVSIM v1.1 (unchanged on ``main``) ``pdm/abstract_pdm_planner.py`` (``_get_starting_lane``,
``_get_intersecting_lanes``, ``_get_discrete_centerline``) and ``pdm/utils/graph_search/dijkstra.py`` on
lead-bench's ``RoadMap`` (specs/navsim.md §4.2). Map frame, metres, radians. Orders follow nuPlan's row
order (ascending FID), as in :mod:`adapters.navsim.scoring_route`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import shapely

from adapters.navsim.scoring_route import (
    RouteGraph,
    dedupe_route,
    ego_center,
    ego_footprint,
    nearest_on_path,
    normalize_angle_atan2,
    route_graph,
    route_lane_ids,
)
from harness.map_query import MapQuery
from harness.maps import RoadMap

F64 = npt.NDArray[np.float64]

#: abstract_pdm_planner.py: roadblocks ahead of the starting one that Dijkstra may end in.
CENTERLINE_ROADBLOCK_WINDOW = 30



#: STR-trees of the drivable polygon arrays last used (scenes of a log share one array: one tree for them).
_TREES: OrderedDict[int, tuple[npt.NDArray[np.object_], shapely.STRtree]] = OrderedDict()
_TREES_KEPT = 8
_TREES_LOCK = threading.Lock()


def _tree_of(polys: npt.NDArray[np.object_]) -> shapely.STRtree:
    """``STRtree(polys, node_capacity=10)``, reused while the same read-only array object comes back; the
    polygons of such an array are also prepared (``shapely.prepare``, in place: later predicates on them use
    GEOS's indexed point-in-area test, same answers, no walk over a polygon's ~1,000 vertices)."""
    if polys.flags.writeable:
        return shapely.STRtree(polys, node_capacity=10)
    with _TREES_LOCK:
        hit = _TREES.get(id(polys))
        if hit is not None and hit[0] is polys:
            _TREES.move_to_end(id(polys))
            return hit[1]
    shapely.prepare(polys)
    tree = shapely.STRtree(polys, node_capacity=10)
    with _TREES_LOCK:
        _TREES[id(polys)] = (polys, tree)
        while len(_TREES) > _TREES_KEPT:
            _TREES.popitem(last=False)
    return tree


def starting_lane(
    ego_pose: npt.ArrayLike,
    road_map: RoadMap,
    drivable_ids: npt.ArrayLike,
    drivable_polygons: npt.ArrayLike,
    route_lanes: Sequence[int],
) -> int:
    """PDM's starting lane (``_get_starting_lane``).

    First choice: among the drivable-map polygons whose closed area holds the rear axle (shapely
    ``intersects``, queried through an STRtree as PDM does) those whose id is a route lane, the one whose
    nearest baseline vertex has the smallest heading error. Otherwise the first route lane whose polygon
    strictly contains the ego's centre, else the route lane closest to the ego's footprint.

    Args:
        ego_pose: ``(3,)`` rear-axle pose, map frame.
        road_map: the map.
        drivable_ids, drivable_polygons: ``(P,)`` PDM's drivable map around the ego (any layer; ids of other
            layers only match a route lane by number, exactly as in PDM).
        route_lanes: route lane ids in route order.

    Raises:
        ValueError: the route has no lanes.
    """
    graph = route_graph(road_map)
    pose = np.asarray(ego_pose, dtype=np.float64)
    lanes = set(route_lanes)
    ids = np.asarray(drivable_ids, dtype=np.int64)
    polys = np.asarray(drivable_polygons, dtype=object)
    hits: list[int] = []
    if len(polys):
        tree = _tree_of(polys)
        point = shapely.Point(pose[0], pose[1])
        if polys.flags.writeable:
            found = tree.query(point, predicate="intersects")
        else:  # prepared polygons (see _tree_of) tested against the point: the same hits in the same order
            near = tree.query(point)
            found = near[shapely.intersects(polys[near], point)]
        hits = [int(ids[i]) for i in found]
    on_route = [h for h in hits if h in lanes]
    if on_route:
        errors = []
        for lane_id in on_route:
            path = graph.path(lane_id)
            i, _ = nearest_on_path(path, pose[:2])
            errors.append(float(np.abs(normalize_angle_atan2(path.heading[i] - pose[2]))))
        return on_route[int(np.argmin(np.abs(errors)))]
    if not route_lanes:
        raise ValueError("the route has no lanes; PDM cannot pick a starting lane")
    center = ego_center(pose)
    footprint = ego_footprint(pose)
    best, best_d = None, np.inf
    for lane_id in route_lanes:
        poly = graph.lane_polygon(lane_id)
        if shapely.contains_xy(poly, center[0], center[1]):
            return lane_id
        d = float(shapely.distance(poly, footprint))
        if d < best_d:
            best, best_d = lane_id, d
    if best is None:  # every distance was NaN (empty polygons)
        raise ValueError("no route lane has a usable polygon")
    return best


def _dijkstra(graph: RouteGraph, start: int, candidates: Sequence[int], target_block: int) -> tuple[list[int], bool]:
    """PDM's lane-level Dijkstra (``graph_search/dijkstra.py``) toward any lane of ``target_block``.

    Costs are baseline lengths (the start costs 1); only ``candidates`` may be entered. When the target is
    not reached, the path ends at the cheapest expanded lane among the deepest expanded ones.
    """
    allowed = set(candidates)
    queue, frontier, dist, depth = [start], [start], [1.0], [1]
    parent: dict[int, int | None] = {start: None}
    expanded: list[int] = []
    expanded_set: set[int] = set()
    expanded_dist: list[float] = []
    expanded_depth: list[int] = []
    end, found = start, False
    while queue:
        d, idx = min((val, i) for i, val in enumerate(dist))
        node, node_depth = queue[idx], depth[idx]
        del dist[idx], queue[idx], frontier[idx], depth[idx]
        if graph.lane_block(node) == target_block:
            end, found = node, True
            break
        expanded.append(node)
        expanded_set.add(node)
        expanded_dist.append(d)
        expanded_depth.append(node_depth)
        for nxt in graph.lane_outgoing(node):
            if nxt not in allowed:
                continue
            alt = d + graph.path(nxt).length_m
            if nxt not in expanded_set and nxt not in frontier:
                parent[nxt] = node
                queue.append(nxt)
                frontier.append(nxt)
                dist.append(alt)
                depth.append(node_depth + 1)
            elif nxt in frontier:
                j = frontier.index(nxt)
                if alt < dist[j]:
                    parent[nxt] = node
                    dist[j] = alt
                    depth[j] = node_depth + 1
    if not found:
        deepest = max(expanded_depth)
        at_depth = [i for i, v in enumerate(expanded_depth) if v == deepest]
        _, k = min((expanded_dist[i], n) for n, i in enumerate(at_depth))
        end = expanded[at_depth[k]]
    path = [end]
    while parent[path[-1]] is not None:
        path.append(parent[path[-1]])  # type: ignore[arg-type]
    path.reverse()
    return path, found


def centerline_from_lane(
    lane_id: int, road_map: RoadMap, route_roadblock_ids: Sequence[int], route_lanes: Sequence[int]
) -> F64:
    """``_get_discrete_centerline``: the lanes Dijkstra finds from ``lane_id`` toward the last roadblock of
    the 30-roadblock window that starts at the lane's roadblock, their baseline vertices concatenated.

    Returns:
        ``(K, 3)`` (x, y, heading) in the map frame; consecutive lanes repeat their shared vertex, as in PDM.
    """
    graph = route_graph(road_map)
    route = [int(r) for r in route_roadblock_ids]
    key = (int(lane_id), tuple(route), tuple(int(x) for x in route_lanes))
    hit = graph.centerlines.get(key)
    if hit is not None:  # scenes of a log mostly share their starting lane and route
        return hit.copy()
    block = graph.lane_block(lane_id)
    start = route.index(block) if block in route else 0  # PDM's np.argmax finds index 0 when nothing matches
    window = route[start : start + CENTERLINE_ROADBLOCK_WINDOW]
    plan, _ = _dijkstra(graph, lane_id, route_lanes, window[-1])
    paths = [graph.path(lane) for lane in plan]
    line = np.concatenate([np.column_stack([p.xy, p.heading]) for p in paths], axis=0)
    graph.remember_centerline(key, line.copy())
    return line


def discrete_centerline(
    ego_pose: npt.ArrayLike,
    road_map: RoadMap,
    map_query: MapQuery,
    route_roadblock_ids: Sequence[int | str],
    *,
    map_radius_m: float = 100.0,
) -> F64:
    """PDM-Closed's centerline for an ego pose and a route (already corrected, or raw: it is de-duplicated).

    Builds the drivable map around the ego's centre (``map_radius_m`` square, as ``PDMDrivableMap``), picks
    the starting lane (:func:`starting_lane`) and runs the centerline search (:func:`centerline_from_lane`).

    Args:
        ego_pose: ``(3,)`` rear-axle pose (x, y, heading), map frame.
        road_map, map_query: the map and its index.
        route_roadblock_ids: route roadblocks in driving order (typically :func:`route_roadblock_correction`'s).

    Returns:
        ``(K, 3)`` discrete centerline (x, y, heading), map frame.
    """
    route = dedupe_route(route_roadblock_ids, road_map)
    lanes = route_lane_ids(route, road_map)
    drivable = map_query.drivable_polygons_within(ego_center(ego_pose), map_radius_m)
    lane = starting_lane(ego_pose, road_map, drivable.ids, drivable.polygons, lanes)
    return centerline_from_lane(lane, road_map, route, lanes)
