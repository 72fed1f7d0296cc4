"""Dense labels: CenterNet targets, heading bins, BEV raster resampling, LiDAR histogram (hand-worked cases)."""

from __future__ import annotations

import numpy as np
import pytest

from harness.training.labels import (
    Grid,
    angle_to_class,
    box_labels,
    gaussian_radius,
    head_classes,
    lidar_histogram,
    resample_raster,
)
from harness.types import BEVRaster, Boxes3D


def test_heading_bins_are_centred_on_multiples_of_30_degrees():
    cls, res = angle_to_class(np.deg2rad([0.0, 14.0, 16.0, -10.0, 180.0, 359.0]), 12)
    assert cls.tolist() == [0, 0, 1, 0, 6, 0]
    np.testing.assert_allclose(np.rad2deg(res), [0.0, 14.0, -14.0, -10.0, 0.0, -1.0], atol=1e-9)


def test_gaussian_radius_of_a_car():
    # half extents 4.5 x 2 cells: CornerNet's three cases, the smallest wins
    h, w, o = 4.5, 2.0, 0.1
    r1 = ((h + w) + np.sqrt((h + w) ** 2 - 4 * w * h * (1 - o) / (1 + o))) / 2
    r2 = (2 * (h + w) + np.sqrt(4 * (h + w) ** 2 - 16 * (1 - o) * w * h)) / 2
    r3 = (-2 * o * (h + w) + np.sqrt(4 * o * o * (h + w) ** 2 - 16 * o * (o - 1) * w * h)) / 2
    assert gaussian_radius(np.array([h]), np.array([w]))[0] == pytest.approx(min(r1, r2, r3))


def test_box_target_cell_offset_size_and_heading():
    grid = Grid((-16.0, 16.0, -16.0, 16.0), 1.0)  # 32 x 32 cells; row 0 = x 16, column 0 = y 16
    lab = box_labels(np.array([[5.3, -2.25]]), np.array([[4.0, 2.0]]), np.array([np.pi / 2]), np.array([3.0]),
                     np.array([0]), grid, num_classes=1, num_yaw_bins=12)
    r, c = 10, 18  # rho = 16 - 5.3 = 10.7, gamma = 16 + 2.25 = 18.25
    assert lab.center_mask.sum() == 1 and lab.center_mask[r, c] == 1
    assert lab.heatmap[0, r, c] == 1.0
    assert lab.heatmap[0].max() == 1.0 and 0 < lab.heatmap[0, r, c + 1] < 1
    # radius max(2, int(r(2, 1))) = 2: sigma 5/6, the peak spans 5 x 5 cells
    assert lab.heatmap[0, r, c + 1] == pytest.approx(np.exp(-1 / (2 * (5 / 6) ** 2)))
    assert lab.heatmap[0, r, c + 2] > 0 and lab.heatmap[0, r, c + 3] == 0
    np.testing.assert_allclose(lab.offset[:, r, c], [0.7, 0.25], atol=1e-6)
    np.testing.assert_allclose(lab.size_m[:, r, c], [2.0, 1.0])
    assert lab.yaw_class[r, c] == 3 and abs(lab.yaw_res[0, r, c]) < 1e-6
    assert lab.velocity_mps[0, r, c] == 3.0
    assert lab.num_boxes == 1.0


def test_boxes_off_the_grid_or_of_unlabelled_classes_are_left_out():
    grid = Grid((-8.0, 8.0, -8.0, 8.0), 1.0)
    lab = box_labels(np.array([[20.0, 0.0], [1.0, 1.0]]), np.array([[4.0, 2.0], [1.0, 1.0]]), np.zeros(2),
                     np.zeros(2), np.array([0, -1]), grid, num_classes=1, num_yaw_bins=12)
    assert lab.num_boxes == 0 and lab.heatmap.max() == 0


def test_head_classes_follow_the_source_label_spaces():
    b = Boxes3D(np.zeros((4, 3)), np.ones((4, 3)), np.zeros(4), np.zeros((4, 2)),
                ("vehicle", "pedestrian", "traffic_cone", "barrier"), ("a", "b", "c", "d"), ("1", "2", "3", "4"))
    assert head_classes(b, "navsim").tolist() == [0, -1, -1, -1]
    assert head_classes(b, "carla").tolist() == [0, 1, 5, -1]


def test_lidar_histogram_counts_clips_and_ignores_heights():
    grid = Grid((-4.0, 4.0, -4.0, 4.0), 1.0)
    pts = np.array([[0.5, 0.5, 0.0]] * 7 + [[3.5, -3.5, 1.0], [0.5, 0.5, 20.0], [9.0, 0.0, 0.0]])
    h = lidar_histogram(pts, grid, channels=2)
    assert h.shape == (2, 8, 8)
    assert h[0, 3, 3] == 1.0  # 7 points clipped at 5, / 5
    assert h[0, 0, 7] == pytest.approx(0.2)
    assert h[0].sum() == pytest.approx(1.2)
    np.testing.assert_array_equal(h[0], h[1])


def test_resample_raster_identity_and_half_turn():
    classes = np.arange(16, dtype=np.uint8).reshape(4, 4)
    raster = BEVRaster(classes, tuple(str(i) for i in range(16)), 1.0, (-2.0, 2.0, -2.0, 2.0))
    grid = Grid((-2.0, 2.0, -2.0, 2.0), 1.0)
    np.testing.assert_array_equal(resample_raster(raster, grid, None), classes)
    half_turn = np.diag([-1.0, -1.0, 1.0, 1.0])
    np.testing.assert_array_equal(resample_raster(raster, grid, half_turn), classes[::-1, ::-1])
    # a larger target grid: cells beyond the source are ignored (-1)
    big = resample_raster(raster, Grid((-4.0, 4.0, -4.0, 4.0), 1.0), None)
    assert (big[:2] == -1).all() and (big[2:6, 2:6] == classes).all()


def _resample_reference(raster: BEVRaster, grid: Grid, m: np.ndarray | None) -> np.ndarray:
    """Every cell centre mapped on full coordinate arrays and looked up (the pre-int8 implementation)."""
    x, y = grid.cell_centres()
    if m is not None:
        x, y = m[0, 0] * x + m[0, 1] * y + m[0, 3], m[1, 0] * x + m[1, 1] * y + m[1, 3]
    x0, x1, y0, y1 = raster.extent_m
    rows = np.floor((x1 - x) / raster.resolution_m).astype(np.int64)
    cols = np.floor((y1 - y) / raster.resolution_m).astype(np.int64)
    hs, ws = raster.classes.shape
    ok = (rows >= 0) & (rows < hs) & (cols >= 0) & (cols < ws)
    out = np.full(x.shape, -1, np.int64)
    out[ok] = raster.classes[rows[ok], cols[ok]]
    return out


@pytest.mark.parametrize("grid", [Grid((-8.0, 8.0, -8.0, 8.0), 0.25), Grid((-9.0, 7.0, -6.5, 9.5), 0.25),
                                  Grid((-8.0, 8.0, -8.0, 8.0), 0.5), Grid((-8.1, 8.0, -8.0, 8.3), 0.3)])
def test_resample_raster_int8_equals_the_full_lookup(grid):
    rng = np.random.default_rng(3)
    classes = rng.integers(0, 13, (72, 80)).astype(np.uint8)
    raster = BEVRaster(classes, tuple(str(i) for i in range(13)), 0.25, (-9.0, 9.0, -10.0, 10.0))
    for k in range(6):
        m = None
        if k:
            yaw, dx, dy = rng.uniform(-0.1, 0.1), rng.uniform(-1, 1), rng.uniform(-1, 1)
            m = np.eye(4)
            m[:2, :2] = [[np.cos(yaw), -np.sin(yaw)], [np.sin(yaw), np.cos(yaw)]]
            m[:2, 3] = dx, dy
        got = resample_raster(raster, grid, m)
        assert got.dtype == np.int8
        np.testing.assert_array_equal(got.astype(np.int64), _resample_reference(raster, grid, m))


def test_resample_raster_refuses_ids_beyond_int8():
    raster = BEVRaster(np.full((2, 2), 200, np.uint8), tuple(str(i) for i in range(201)), 1.0, (-1.0, 1.0, -1.0, 1.0))
    with pytest.raises(ValueError, match="does not fit"):
        resample_raster(raster, Grid((-1.0, 1.0, -1.0, 1.0), 1.0), None)
