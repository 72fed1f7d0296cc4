"""MapQuery: hand-checked cases on the fixture intersection and a shapely reference on random points."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.map_query import DrivablePolygons, MapLayer, MapQuery
from harness.maps import RoadMap
from tests.fixtures_maps import build_fixture_map

MAP = build_fixture_map()
QUERY = MapQuery(MAP)


def roadblock_covering(x: float, y: float) -> int:
    (rb,) = [r.id for r in MAP.roadblocks.values() if r.polygon.contains(shapely.Point(x, y))]
    return rb


EAST_IN = roadblock_covering(40.0, 3.5)  # west-bound lanes of the east arm, y in [0, 7]
EAST_OUT = roadblock_covering(40.0, -3.5)


def reference_pairs(road_map: RoadMap, points: np.ndarray) -> set[tuple[int, int]]:
    """(point index, lane or connector id) by shapely's contains, one point and polygon at a time."""
    objs = [*road_map.lanes.values(), *road_map.lane_connectors.values()]
    return {(i, o.id) for i, p in enumerate(points) for o in objs if o.polygon.contains(shapely.Point(p))}


def reference_drivable(road_map: RoadMap, points: np.ndarray) -> np.ndarray:
    polys = [
        o.polygon
        for o in (
            *road_map.roadblocks.values(),
            *road_map.intersections.values(),
            *road_map.carparks.values(),
        )
    ]
    return np.array([any(poly.contains(shapely.Point(p)) for poly in polys) for p in points], dtype=bool)


@pytest.mark.parametrize(
    ("xy", "drivable", "why"),
    [
        ((40.0, 1.75), True, "centre of an east-arm lane"),
        ((40.0, 6.9), True, "just inside the road edge"),
        ((40.0, 7.1), False, "just off the road (on the walkway)"),
        ((40.0, 7.0), False, "exactly on the outer road edge: strict interior"),
        ((40.0, 0.0), False, "exactly on the shared edge of two roadblocks: inside neither polygon"),
        ((12.0, 3.0), False, "exactly on the roadblock / intersection edge: inside neither polygon"),
        ((11.99, 3.0), True, "inside the intersection"),
        ((0.0, 0.0), True, "intersection centre"),
        ((30.0, 30.0), False, "between two arms"),
        ((40.0, -25.0), True, "car park"),
        ((16.0, 3.0), True, "crosswalk over the road (the road polygon makes it drivable)"),
        ((72.5, 1.75), False, "past the end of the arm"),
    ],
)
def test_drivable_mask_hand_checked(xy: tuple[float, float], drivable: bool, why: str) -> None:
    assert QUERY.drivable_mask(np.array([xy]))[0] == drivable, why


def test_in_intersection_is_strict() -> None:
    np.testing.assert_array_equal(
        QUERY.in_intersection([[0.0, 0.0], [11.99, -11.99], [12.0, 0.0], [40.0, 1.75]]),
        [True, True, False, False],
    )


def test_lane_ids_containing_hand_checked() -> None:
    # By lane_index: 0 is the leftmost lane, next to the centre line.
    lane0, lane1 = MAP.roadblocks[EAST_IN].lane_ids
    straight0 = next(
        c.id
        for c in MAP.lane_connectors.values()
        if c.exit_lane_id == lane0
        and MAP.roadblock_connectors[c.roadblock_connector_id].to_roadblock_id == roadblock_covering(-40, 3.5)
    )
    pairs = QUERY.lane_ids_containing([[40.0, 1.75], [40.0, 5.25], [40.0, 3.5], [0.0, 1.75], [40.0, 30.0]])
    assert pairs.dtype == np.int64 and pairs.shape[1] == 2
    assert [tuple(p) for p in pairs] == [(0, lane0), (1, lane1), (3, straight0)]  # (40, 3.5): lane edge


def test_objects_within_uses_nuplans_square_patch() -> None:
    # The east-inbound roadblock's far corner (72, 7) is 7.07 m from (77, 12): outside a 6 m disc but inside
    # the 6 m square patch that nuPlan's get_proximal_map_objects intersects with.
    assert QUERY.objects_within([77.0, 12.0], 6.0, "roadblock") == (EAST_IN,)
    assert QUERY.objects_within([77.0, 12.0], 4.0, MapLayer.ROADBLOCK) == ()
    assert QUERY.objects_within([0.0, 0.0], 1.0, "intersection") == (1,)
    assert QUERY.objects_within([40.0, -25.0], 1.0, "carparks") == tuple(MAP.carparks)


def test_objects_within_matches_lane_connectors_by_baseline() -> None:
    # (0, 3) lies in three connector polygons (the straight lane-0 one, y in [0, 3.5], and two left turns)
    # but 1.25 m from each baseline: nuPlan's LANE_CONNECTOR layer is the baseline LineString layer, so a
    # 0.2 m patch finds none of them.
    assert QUERY.lane_ids_containing([[0.0, 3.0]]).shape == (3, 2)
    assert QUERY.objects_within([0.0, 3.0], 0.2, "lane_connector") == ()
    assert QUERY.objects_within([0.0, 1.75], 0.2, "lane_connector") != ()
    lanes = QUERY.objects_within([40.0, 0.0], 0.1, "lane")  # both lanes on either side of the centre line
    assert lanes == tuple(sorted((MAP.roadblocks[EAST_IN].lane_ids[0], MAP.roadblocks[EAST_OUT].lane_ids[0])))


def test_drivable_polygons_within_follows_pdm_drivable_map() -> None:
    d = QUERY.drivable_polygons_within([40.0, 3.5], 1.0)
    assert isinstance(d, DrivablePolygons)
    assert d.types.tolist() == [MapLayer.ROADBLOCK, MapLayer.LANE, MapLayer.LANE]
    assert d.ids.tolist() == [EAST_IN, *sorted(MAP.roadblocks[EAST_IN].lane_ids)]
    assert d.polygons[0].equals(MAP.roadblocks[EAST_IN].polygon)

    d = QUERY.drivable_polygons_within([0.0, 0.0], 5.0)
    near_rbcs = [
        c for c in MAP.roadblock_connectors.values() if c.polygon.intersects(shapely.box(-5, -5, 5, 5))
    ]
    expected_lcs = [lc for c in sorted(near_rbcs, key=lambda c: c.id) for lc in sorted(c.lane_connector_ids)]
    assert d.ids.tolist() == [*expected_lcs, 1]
    assert d.types.tolist() == [MapLayer.LANE_CONNECTOR] * len(expected_lcs) + [MapLayer.INTERSECTION]
    assert len(d.indices_of(MapLayer.ROADBLOCK_CONNECTOR)) == 0  # connector polygons are never stored
    for i, lc in zip(d.indices_of(MapLayer.LANE_CONNECTOR), expected_lcs):
        assert d.polygons[i].equals(MAP.lane_connectors[lc].polygon)

    d = QUERY.drivable_polygons_within([0.0, 0.0], 100.0)
    counts = {layer: len(d.indices_of(layer)) for layer in MapLayer}
    assert (
        counts[MapLayer.ROADBLOCK] == 8
        and counts[MapLayer.LANE] == 16
        and counts[MapLayer.LANE_CONNECTOR] == 16
    )
    assert counts[MapLayer.INTERSECTION] == 1 and counts[MapLayer.CARPARK_AREA] == 1


def test_interior_lanes_are_looked_up_per_layer() -> None:
    """The devkit finds a roadblock's lanes in the lane table (``lane_group_fid``) and a roadblock connector's
    lane connectors in the lane-connector table (``lane_group_connector_fid``): a lane whose parent id equals
    a nearby roadblock connector's id is not that connector's interior (one shared dict listed it there, typed
    as a lane connector), and a lane connector whose parent id equals a nearby roadblock's is not a lane."""
    near = [c for c in MAP.roadblock_connectors.values() if c.polygon.intersects(shapely.box(-5, -5, 5, 5))]
    rbc = min(near, key=lambda c: c.id)
    lane = MAP.lanes[MAP.roadblocks[EAST_IN].lane_ids[0]]
    lc = MAP.lane_connectors[rbc.lane_connector_ids[0]]
    other = min(c.id for c in MAP.roadblock_connectors.values())
    moved_lc = next(c for c in MAP.lane_connectors.values() if c.roadblock_connector_id != rbc.id)
    road_map = dataclasses.replace(
        MAP,
        lanes={**MAP.lanes, lane.id: dataclasses.replace(lane, roadblock_id=rbc.id)},
        lane_connectors={**MAP.lane_connectors, moved_lc.id: dataclasses.replace(moved_lc,
                                                                                roadblock_connector_id=EAST_IN)},
    )
    assert other != EAST_IN and lc.id != moved_lc.id
    query = MapQuery(road_map)
    d = query.drivable_polygons_within([0.0, 0.0], 5.0)
    expected = [c for r in sorted(near, key=lambda c: c.id) for c in sorted(r.lane_connector_ids)
                if c != moved_lc.id]
    assert lane.id not in d.ids.tolist()
    assert d.ids[d.types == MapLayer.LANE_CONNECTOR].tolist() == expected
    d = query.drivable_polygons_within([40.0, 3.5], 1.0)
    assert d.ids.tolist() == [EAST_IN, *sorted(i for i in MAP.roadblocks[EAST_IN].lane_ids if i != lane.id)]
    assert d.types.tolist()[1:] == [MapLayer.LANE] * (len(d.ids) - 1)


def test_input_validation() -> None:
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        QUERY.drivable_mask(np.zeros(3))
    with pytest.raises(ValueError, match="unknown map layer"):
        QUERY.objects_within([0, 0], 1.0, "parking_garage")
    with pytest.raises(ValueError, match="radius_m"):
        QUERY.objects_within([0, 0], -1.0, "lane")
    assert QUERY.drivable_mask(np.zeros((0, 2))).shape == (0,)
    assert QUERY.lane_ids_containing(np.zeros((0, 2))).shape == (0, 2)


# Edges and vertices of the fixture sit on multiples of 0.25 m (lane width 3.5, arms at 12 and 72); snapping
# some coordinates to that grid puts many points exactly on boundaries, where strictness matters.
coordinate = st.one_of(
    st.floats(-80.0, 80.0, allow_nan=False),
    st.integers(-320, 320).map(lambda k: k * 0.25),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(coordinate, coordinate), min_size=1, max_size=60))
def test_queries_equal_shapely_reference(points: list[tuple[float, float]]) -> None:
    pts = np.asarray(points, dtype=np.float64)
    np.testing.assert_array_equal(QUERY.drivable_mask(pts), reference_drivable(MAP, pts))
    inter = MAP.intersections[1].polygon
    np.testing.assert_array_equal(QUERY.in_intersection(pts), [inter.contains(shapely.Point(p)) for p in pts])
    assert {(int(i), int(j)) for i, j in QUERY.lane_ids_containing(pts)} == reference_pairs(MAP, pts)


def test_random_points_on_tiled_map_equal_reference() -> None:
    tiled = build_fixture_map((3, 2))
    rng = np.random.default_rng(7)
    pts = rng.uniform([-80.0, -80.0], [480.0, 280.0], size=(1500, 2))
    pts[:300] = np.round(pts[:300] * 4.0) / 4.0
    query = MapQuery(tiled)
    np.testing.assert_array_equal(query.drivable_mask(pts), reference_drivable(tiled, pts))
    assert {(int(i), int(j)) for i, j in query.lane_ids_containing(pts)} == reference_pairs(tiled, pts)


def test_random_points_on_embedded_world_equal_reference() -> None:
    from harness.world.roads import build_road_map

    world = build_road_map(0)
    query = MapQuery(world)
    lo, hi = np.asarray(shapely.total_bounds([rb.polygon for rb in world.roadblocks.values()])).reshape(2, 2)
    pts = np.random.default_rng(3).uniform(lo - 10.0, hi + 10.0, size=(1500, 2))
    np.testing.assert_array_equal(query.drivable_mask(pts), reference_drivable(world, pts))
    assert {(int(i), int(j)) for i, j in query.lane_ids_containing(pts)} == reference_pairs(world, pts)
    inter = [a.polygon for a in world.intersections.values()]
    np.testing.assert_array_equal(
        query.in_intersection(pts), [any(p.contains(shapely.Point(x)) for p in inter) for x in pts]
    )
