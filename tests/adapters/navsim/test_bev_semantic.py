"""NAVSIM's 7-class BEV semantic label: hand-worked cells, class order, the ego frame, and the reader."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from adapters.navsim.bev_semantic import (
    NAVSIM_BEV_CLASSES,
    BEVGrid,
    box_polygons,
    navsim_bev_semantic,
    rasterise,
    to_ego,
)
from adapters.navsim.reader import NavsimReader
from harness.errors import DataError
from harness.map_query import MapQuery
from harness.maps import RoadMap
from harness.types import Boxes3D

GRID4 = BEVGrid((-2.0, 2.0, -2.0, 2.0), 1.0)  # cell centres: rows x = 1.5, 0.5, -0.5, -1.5; cols y likewise


def _cells(mask: np.ndarray) -> set[tuple[int, int]]:
    return {(int(r), int(c)) for r, c in zip(*np.nonzero(mask))}


def test_known_polygon_lands_on_known_cells():
    # x in [0, 2] (ahead), y in [-1, 0.9]: centres x = 1.5, 0.5 (rows 0, 1) and y = 0.5, -0.5 (cols 1, 2)
    poly = shapely.box(0.0, -1.0, 2.0, 0.9)
    assert _cells(rasterise([poly], GRID4)) == {(0, 1), (0, 2), (1, 1), (1, 2)}
    # y left: a polygon on the ego's left (y > 0) lands on the left columns, one behind on the bottom rows
    assert _cells(rasterise([shapely.box(-1.0, 1.0, 0.0, 2.0)], GRID4)) == {(2, 0)}
    assert not rasterise([shapely.box(-0.2, 1.0, 0.2, 2.0)], GRID4).any()  # covers no cell centre
    assert _cells(rasterise([shapely.box(-2.0, 1.0, -1.0, 2.0)], GRID4)) == {(3, 0)}
    # a centre exactly on an edge counts (shared edges of adjacent lanes leave no gap)
    left, right = shapely.box(-2.0, 0.0, 2.0, 0.5), shapely.box(-2.0, -0.5, 2.0, 0.0)
    assert _cells(rasterise([left, right], GRID4)) == {(r, c) for r in range(4) for c in (1, 2)}
    assert not rasterise([shapely.box(5.0, 5.0, 6.0, 6.0)], GRID4).any()  # off the grid
    assert not rasterise([], GRID4).any()


def test_box_polygon_corners_and_vehicle_cells():
    (p,) = box_polygons(np.array([[5.0, 3.0]]), np.array([[4.0, 2.0]]), np.array([np.pi / 2]))
    np.testing.assert_allclose(np.array(p.bounds), [4.0, 1.0, 6.0, 5.0], atol=1e-12)  # length along y now
    boxes = Boxes3D(np.array([[5.0, 3.0, 0.8], [-4.0, -4.0, 0.5], [5.0, 3.0, 0.9], [0.0, -6.0, 0.5],
                              [-6.1, 6.1, 0.4]]),
                    np.array([[4.0, 2.0, 1.6], [1.0, 1.0, 1.0], [1.0, 1.0, 1.8], [1.8, 0.6, 1.0], [0.5, 0.5, 1.0]]),
                    np.zeros(5), np.zeros((5, 2)),
                    ("vehicle", "static_object", "pedestrian", "bicycle", "static_object"),
                    ("vehicle", "traffic_cone", "pedestrian", "bicycle", "barrier"), ("a", "b", "c", "d", "e"))
    grid = BEVGrid((-8.0, 8.0, -8.0, 8.0), 0.5)  # 32 x 32; centre x = 8 - (r + .5) / 2, y = 8 - (c + .5) / 2
    empty = MapQuery(RoadMap("test", "0", {}, {}, {}, {}))
    raster = navsim_bev_semantic(empty, np.zeros(3), boxes, grid)
    assert raster.vocabulary == NAVSIM_BEV_CLASSES and raster.classes.shape == (32, 32)
    cls = raster.classes
    # vehicle: x in [3, 7] -> rows 2..9; y in [2, 4] -> columns 8..11 (on the left half: y left)
    veh = {(r, c) for r in range(2, 10) for c in range(8, 12)}
    # the pedestrian at the same centre, 1 x 1 m: x in [4.5, 5.5] -> rows 5, 6; y in [2.5, 3.5] -> cols 9, 10
    ped = {(r, c) for r in (5, 6) for c in (9, 10)}
    assert _cells(cls == 6) == ped  # drawn after the vehicle: it wins
    assert _cells(cls == 5) == veh - ped
    # cone at (-4, -4), 1 x 1: x in [-4.5, -3.5] -> rows 23, 24; y in [-4.5, -3.5] -> cols 23, 24; the barrier
    # at (-6.1, 6.1), 0.5 x 0.5: x in [-6.35, -5.85] -> row 28 (x = -6.25); y in [5.85, 6.35] -> column 3
    assert _cells(cls == 4) == {(r, c) for r in (23, 24) for c in (23, 24)} | {(28, 3)}
    assert not np.isin(cls, (1, 2, 3)).any()  # no map, and the bicycle is in no class


def test_map_geometry_moves_into_the_ego_frame():
    # ego at (10, 5) heading north (+y): a map point 2 m north is 2 m ahead, 1 m west is 1 m to the left
    pts = to_ego([shapely.Point(10.0, 7.0), shapely.Point(9.0, 5.0)], np.array([10.0, 5.0, np.pi / 2]))
    np.testing.assert_allclose(shapely.get_coordinates(pts), [[2.0, 0.0], [0.0, 1.0]], atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(x=st.floats(-50, 50), y=st.floats(-50, 50), yaw=st.floats(-np.pi, np.pi))
def test_map_raster_is_invariant_to_a_rigid_transform(x, y, yaw):
    """A polygon and the ego moved together by any rigid transform give the same cells."""
    poly = shapely.Polygon([(2.0, -1.0), (6.0, -1.5), (7.0, 3.0), (3.0, 2.5)])  # around the ego, map = ego frame
    c, s = np.cos(yaw), np.sin(yaw)
    moved = shapely.transform(poly, lambda p: p @ np.array([[c, s], [-s, c]]) + np.array([x, y]))
    grid = BEVGrid((-8.0, 8.0, -8.0, 8.0), 0.5)
    a = rasterise(to_ego([poly], np.zeros(3)), grid)
    b = rasterise(to_ego([moved], np.array([x, y, yaw])), grid)
    # equal up to cells whose centre lies within float rounding of an edge
    assert (a != b).sum() <= 2 and a.sum() > 20


@pytest.fixture(scope="module")
def reader(small_world_root):
    return NavsimReader(small_world_root, "train", maps_root=small_world_root / "maps")


def test_reader_attaches_the_label(reader):
    grid = BEVGrid((-16.0, 16.0, -16.0, 16.0), 0.5)
    ref = reader.index()[5]
    s = reader.load(ref, bev=grid)
    bev = s.targets.bev
    assert bev is not None and bev.vocabulary == NAVSIM_BEV_CLASSES and bev.classes.shape == (64, 64)
    assert bev.extent_m == grid.extent_m and bev.resolution_m == 0.5
    counts = np.bincount(bev.classes.ravel(), minlength=7)
    assert counts[1] > 200 and counts[3] > 20  # road and centerlines around a car driving on a road
    # the ego (rear axle at the origin, cells rows 31/32, columns 31/32) drives on a lane
    assert set(bev.classes[31:33, 31:33].ravel().tolist()) <= {1, 3}
    # every vehicle box whose centre is on the grid marks its centre cell (no pedestrian shares a cell here)
    b = s.targets.boxes
    veh = np.array([n == "vehicle" for n in b.source_classes])
    ctr = b.center_xyz[veh, :2]
    ctr = ctr[np.all(np.abs(ctr) < 15.0, axis=1)]
    rows = np.floor((16.0 - ctr[:, 0]) / 0.5).astype(int)
    cols = np.floor((16.0 - ctr[:, 1]) / 0.5).astype(int)
    assert len(ctr) and (bev.classes[rows, cols] == 5).all()
    assert reader.load(ref).targets.bev is None  # no grid asked: no label
    again = reader.load(ref, bev=grid).targets.bev
    np.testing.assert_array_equal(again.classes, bev.classes)


def test_label_without_maps_is_an_error(small_world_root):
    r = NavsimReader(small_world_root, "train")
    with pytest.raises(DataError, match="maps_root"):
        r.load(r.index()[0], bev=BEVGrid((-8.0, 8.0, -8.0, 8.0), 0.5))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(3, 12), hole=st.booleans())
def test_scanline_fill_equals_point_in_polygon_at_cell_centres(seed, n, hole):
    """Against shapely's point-in-polygon at every cell centre (centres within 1e-6 m of an edge excused)."""
    rng = np.random.default_rng(seed)
    ang = np.sort(rng.uniform(0, 2 * np.pi, n))
    rad = rng.uniform(2.0, 7.0, n)
    c = rng.uniform(-4, 4, 2)
    shell = np.column_stack([c[0] + rad * np.cos(ang), c[1] + rad * np.sin(ang)])
    inner = c + 0.8 * np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]])
    holes = [inner] if hole and shapely.Polygon(shell).contains(shapely.Polygon(inner).buffer(0.1)) else []
    assume(shapely.Polygon(shell, holes).is_valid)  # angles spanning under a half turn can self-intersect
    polys = [shapely.Polygon(shell, holes), shapely.box(*rng.uniform(-8, 0, 2).tolist(), *rng.uniform(0, 8, 2).tolist())]
    grid = BEVGrid((-8.0, 8.0, -6.0, 10.0), 0.5)
    h, w = grid.shape
    xs = 8.0 - (np.arange(h)[:, None] + 0.5) * 0.5 + 0 * np.arange(w)[None]
    ys = 10.0 - (np.arange(w)[None] + 0.5) * 0.5 + 0 * np.arange(h)[:, None]
    u = shapely.union_all(polys)
    ref = shapely.contains_xy(u, xs, ys)
    near = shapely.distance(u.boundary, shapely.points(xs, ys)) < 1e-6
    got = rasterise(polys, grid)
    assert np.array_equal(got[~near], ref[~near])
