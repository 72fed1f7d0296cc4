"""The embedded world's road map: nuPlan map-model invariants that downstream scoring relies on."""

from __future__ import annotations

from collections import deque

import numpy as np
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.maps import RoadMap, StopLineType
from harness.world.lanegraph import LaneGraph
from harness.world.roads import (
    LANE_WIDTH_M,
    LOCATION,
    MAP_VERSION,
    build_road_map,
    crosswalk_id,
    inbound_roadblock_id,
    intersection_id,
    lane_id,
    roadblock_id,
)


def _ends_match(m: RoadMap, tol: float = 0.1) -> None:
    for lc in m.lane_connectors.values():
        up, down = m.lanes[lc.exit_lane_id], m.lanes[lc.entry_lane_id]
        assert np.linalg.norm(lc.baseline_xy[0] - up.baseline_xy[-1]) < tol, lc.id
        assert np.linalg.norm(lc.baseline_xy[-1] - down.baseline_xy[0]) < tol, lc.id


def test_identity_and_frame(world_map):
    assert (
        (world_map.location, world_map.version)
        == (LOCATION, MAP_VERSION)
        == ("us-nv-las-vegas-strip", "9.15.1915")
    )
    xy = np.concatenate([lane.baseline_xy for lane in world_map.lanes.values()])
    assert xy.dtype == np.float64
    # A UTM-like frame near Las Vegas: real-magnitude coordinates.
    assert np.all(np.abs(xy[:, 0] - 664000) < 1000) and np.all(np.abs(xy[:, 1] - 3997000) < 1000)


def test_same_seed_same_map_other_seed_moves_it():
    a, b, c = build_road_map(3), build_road_map(3), build_road_map(4)
    assert sorted(a.lanes) == sorted(b.lanes) == sorted(c.lanes)
    for lid in a.lanes:
        np.testing.assert_array_equal(a.lanes[lid].baseline_xy, b.lanes[lid].baseline_xy)
        assert a.lanes[lid].polygon.equals_exact(b.lanes[lid].polygon, 0.0)
    assert not np.allclose(a.lanes[lid].baseline_xy, c.lanes[lid].baseline_xy)


@settings(max_examples=8, deadline=None)
@given(st.integers(min_value=0, max_value=2**31 - 1))
def test_invariants_hold_for_any_seed(seed):
    m = build_road_map(seed)
    _ends_match(m)
    inter = shapely.union_all([a.polygon for a in m.intersections.values()]).buffer(1e-6)
    for rbc in m.roadblock_connectors.values():
        assert inter.covers(rbc.polygon)


def test_ids_positive_unique_and_in_disjoint_ranges(world_map):
    m = world_map
    lanes, conns = set(m.lanes), set(m.lane_connectors)
    blocks, block_conns = set(m.roadblocks), set(m.roadblock_connectors)
    assert not lanes & conns and not blocks & block_conns
    assert max(lanes) < min(conns) and max(blocks) < min(block_conns)
    for table in (
        m.lanes,
        m.lane_connectors,
        m.roadblocks,
        m.roadblock_connectors,
        m.boundaries,
        m.intersections,
        m.stop_lines,
        m.crosswalks,
        m.walkways,
        m.carparks,
    ):
        assert all(isinstance(k, int) and k > 0 and table[k].id == k for k in table)
    # The structured ids the situations use name real objects.
    assert lane_id("middle", True, 1) in m.lanes and roadblock_id("outer", False) in m.roadblocks
    assert intersection_id("B") in m.intersections and crosswalk_id("A", "S") in m.crosswalks
    assert inbound_roadblock_id("A", "W") == roadblock_id("outer", True)


def test_connectors_join_lanes_end_to_start(world_map):
    _ends_match(world_map)
    for lc in world_map.lane_connectors.values():
        rbc = world_map.roadblock_connectors[lc.roadblock_connector_id]
        assert world_map.lanes[lc.exit_lane_id].roadblock_id == rbc.from_roadblock_id
        assert world_map.lanes[lc.entry_lane_id].roadblock_id == rbc.to_roadblock_id
        assert lc.id in rbc.lane_connector_ids


def test_roadblock_connectors_lie_inside_intersections(world_map):
    # nuPlan scoring treats roadblock connectors as non-drivable, so intersections must cover them all.
    for rbc in world_map.roadblock_connectors.values():
        assert rbc.intersection_id in world_map.intersections
        assert world_map.intersections[rbc.intersection_id].polygon.buffer(1e-6).covers(rbc.polygon), rbc.id


def test_roadblock_polygon_is_union_of_its_lanes(world_map):
    for rb in world_map.roadblocks.values():
        union = shapely.union_all([world_map.lanes[i].polygon for i in rb.lane_ids])
        assert rb.polygon.is_valid
        assert rb.polygon.symmetric_difference(union).area < 1e-3 * rb.polygon.area
        assert [world_map.lanes[i].lane_index for i in rb.lane_ids] == list(range(len(rb.lane_ids)))


def test_lane_geometry(world_map):
    for lane in world_map.lanes.values():
        step = np.linalg.norm(np.diff(lane.baseline_xy, axis=0), axis=1)
        assert step.max() <= 1.0 and step.min() > 0.2
        length = step.sum()
        assert 3.5 <= lane.polygon.area / length <= 3.7
        assert lane.speed_limit_mps is not None and 8.0 < lane.speed_limit_mps < 20.0
        # The baseline runs down the middle of the lane polygon.
        assert lane.polygon.buffer(1e-6).contains(shapely.LineString(lane.baseline_xy))
    for lc in world_map.lane_connectors.values():
        length = np.linalg.norm(np.diff(lc.baseline_xy, axis=0), axis=1).sum()
        # The swept lane-width polygon along the baseline.
        assert abs(lc.polygon.area - LANE_WIDTH_M * length) < 0.05 * LANE_WIDTH_M * length
        assert lc.speed_limit_mps is not None


def test_lane_index_zero_is_leftmost(world_map):
    for rb in world_map.roadblocks.values():
        if len(rb.lane_ids) < 2:
            continue
        a, b = (world_map.lanes[i].baseline_xy for i in rb.lane_ids[:2])
        d = a[1] - a[0]
        rel = b[0] - a[0]
        assert d[0] * rel[1] - d[1] * rel[0] < 0  # lane 1 lies to the right of lane 0


def test_boundaries_are_shared_and_lie_on_lane_edges(world_map):
    m = world_map
    for rb in m.roadblocks.values():
        lanes = [m.lanes[i] for i in rb.lane_ids]
        for left, right in zip(lanes, lanes[1:]):
            assert left.right_boundary_id == right.left_boundary_id
    # The centre line is one boundary shared by the two directions of every two-way road.
    lefts = [m.lanes[rb.lane_ids[0]].left_boundary_id for rb in m.roadblocks.values()]
    assert all(lefts.count(b) == 2 for b in lefts)
    for lane in m.lanes.values():
        for bid in (lane.left_boundary_id, lane.right_boundary_id):
            line = shapely.LineString(m.boundaries[bid].line_xy)
            assert shapely.LineString(lane.baseline_xy).hausdorff_distance(line) < LANE_WIDTH_M / 2 + 0.05
    for lc in m.lane_connectors.values():
        assert lc.left_boundary_id in m.boundaries and lc.right_boundary_id in m.boundaries


def test_two_signalised_four_way_intersections(world_map, world_graph: LaneGraph):
    m = world_map
    assert len(m.intersections) >= 2
    for iid in m.intersections:
        conns = [
            lc
            for lc in m.lane_connectors.values()
            if m.roadblock_connectors[lc.roadblock_connector_id].intersection_id == iid
        ]
        approaches = {m.roadblock_connectors[lc.roadblock_connector_id].from_roadblock_id for lc in conns}
        assert len(approaches) == 4
        assert {world_graph.turn[world_graph.index[lc.id]] for lc in conns} == {"L", "S", "R"}
        for lc in conns:
            assert lc.has_traffic_light and lc.stop_line_ids
            for sid in lc.stop_line_ids:
                stop = m.stop_lines[sid]
                assert stop.type == StopLineType.TRAFFIC_LIGHT
                # The stop line sits at the end of the approach lane, where the connector starts.
                assert stop.polygon.distance(shapely.Point(lc.baseline_xy[0])) < 0.01


def test_crosswalks_walkways_and_car_parks(world_map):
    m = world_map
    assert len(m.crosswalks) == 8 and len(m.walkways) >= 8 and len(m.carparks) >= 1
    roads = shapely.union_all([rb.polygon for rb in m.roadblocks.values()])
    inter = shapely.union_all([a.polygon for a in m.intersections.values()])
    for cw in m.crosswalks.values():
        assert cw.polygon.intersects(inter)
    for cp in m.carparks.values():
        assert cp.polygon.distance(roads) < 0.01  # next to a road
    for w in m.walkways.values():
        assert w.polygon.is_valid and w.polygon.area > 1.0
        assert w.polygon.intersection(roads).area < 1.0  # pavements are off the carriageway


def test_lane_graph_is_strongly_connected(world_map):
    m = world_map
    nodes = list(m.lanes) + list(m.lane_connectors)

    def reach(start, step):
        seen, todo = {start}, deque([start])
        while todo:
            for nxt in step(todo.popleft()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    assert reach(nodes[0], m.successors) == set(nodes)
    assert reach(nodes[0], m.predecessors) == set(nodes)
