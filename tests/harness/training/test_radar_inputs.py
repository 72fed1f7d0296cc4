"""Radar inputs and radar-detection labels: hand cases, augmentation, and a CARLA route through to the loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.model import TFv6Config
from harness.training.radar import encode_radar_points, radar_detection_labels, radar_returns_per_box
from harness.training.views import ViewAugment
from harness.types import Boxes3D, Radar

SMALL = dict(radar=True, num_radar_queries=2, radar_points_per_sensor=2, radar_token_dim=32, radar_tokenizer_dim=32,
             radar_decoder_dim=32, radar_layers=1, radar_heads=4, radar_ffn_dim=32)


def _cfg():
    return TFv6Config.preset("tiny", **SMALL)  # BEV extent +-16 m


def test_points_filtered_truncated_and_padded_per_sensor():
    pts = np.array([[1, 2, 0.5, 3, 0], [30, 0, 0.5, 1, 0], [4, 5, 0.5, -2, 0], [6, 7, 0.5, 0, 0],
                    [-5, -5, 0.5, 9, 3]], np.float32)
    out = encode_radar_points(Radar(pts, 4), _cfg())
    assert out.shape == (8, 5)
    # sensor 0: the two first returns inside the BEV (the one at x = 30 m is outside, the fourth is cut)
    np.testing.assert_array_equal(out[0:2], [[1, 2, 0.5, 3, 0], [4, 5, 0.5, -2, 0]])
    np.testing.assert_array_equal(out[2:4], [[0, 0, 0, 0, 1]] * 2)  # padding keeps its sensor index
    np.testing.assert_array_equal(out[6], [-5, -5, 0.5, 9, 3])
    np.testing.assert_array_equal(out[7], [0, 0, 0, 0, 3])
    np.testing.assert_array_equal(encode_radar_points(None, _cfg())[:, 4], [0, 0, 1, 1, 2, 2, 3, 3])


def _boxes():
    # A: moving vehicle with a return; B: parked vehicle, 2 returns; C: walker, 1 return;
    # D: fast vehicle, no return; E: vehicle with a return outside the BEV.
    centre = np.array([[5.0, 2.0, 0.8], [10.0, -4.0, 0.8], [3.0, 6.0, 0.9], [8.0, 8.0, 0.8], [40.0, 0.0, 0.8]])
    size = np.array([[4.5, 2.0, 1.6], [4.5, 2.0, 1.6], [0.6, 0.6, 1.8], [4.5, 2.0, 1.6], [4.5, 2.0, 1.6]])
    vel = np.array([[5.0, 0.0], [0.0, 0.0], [0.0, 0.0], [9.0, 0.0], [3.0, 0.0]])
    classes = ("vehicle", "vehicle", "pedestrian", "vehicle", "vehicle")
    return Boxes3D(centre, size, np.zeros(5), vel, classes, classes, tuple("abcde"))


def _returns():
    xy = [[5.5, 2.2], [10.0, -4.2], [9.0, -3.5], [3.1, 6.0], [40.0, 0.5], [-12.0, 12.0]]
    return Radar(np.array([[x, y, 0.6, 0.0, 0] for x, y in xy], np.float32), 4)


def test_returns_counted_in_grown_footprints():
    b = _boxes()
    counts = radar_returns_per_box(b.center_xyz[:, :2], b.size_lwh[:, :2], b.yaw_rad,
                                   _returns().points[:, :2].astype(np.float64))
    assert counts.tolist() == [1, 2, 1, 0, 1]
    # A return 0.4 m outside a box still counts (margin 0.5 m); 0.6 m outside does not.
    one = np.array([[0.0, 0.0]])
    assert radar_returns_per_box(one, np.array([[4.0, 2.0]]), np.zeros(1), np.array([[2.4, 0.0]])).tolist() == [1]
    assert radar_returns_per_box(one, np.array([[4.0, 2.0]]), np.zeros(1), np.array([[2.6, 0.0]])).tolist() == [0]


def test_labels_sorted_by_speed_then_class_then_returns():
    cfg = TFv6Config.preset("tiny", **(SMALL | {"num_radar_queries": 4}))
    lab = radar_detection_labels(_boxes(), _returns(), cfg)
    # A (5 m/s) first; then the two static ones: vehicle B before walker C; D (no return), E (outside) dropped.
    np.testing.assert_allclose(lab, [[5, 2, 5, 1], [10, -4, 0, 1], [3, 6, 0, 1], [0, 0, 0, 0]])
    assert radar_detection_labels(_boxes(), _returns(), _cfg()).shape == (2, 4)  # first Q only
    assert not radar_detection_labels(Boxes3D.empty(), _returns(), cfg).any()


def test_augmentation_moves_labels_and_points_alike():
    cfg = TFv6Config.preset("tiny", **(SMALL | {"num_radar_queries": 4}))
    aug = ViewAugment(0.8, np.deg2rad(4.0))
    plain = radar_detection_labels(_boxes(), _returns(), cfg)
    moved = radar_detection_labels(_boxes(), _returns(), cfg, aug)
    np.testing.assert_allclose(moved[:3, :2], aug.points_xy(plain[:3, :2]), atol=1e-5)
    np.testing.assert_array_equal(moved[:, 2:], plain[:, 2:])
    pts = encode_radar_points(_returns(), cfg, aug)
    np.testing.assert_allclose(pts[0, :2], aug.points_xy(np.array([[5.5, 2.2]]))[0], atol=1e-5)


def test_carla_route_radar_reaches_the_loss(small_world, tmp_path):
    from adapters.carla.writer import CarlaWriteOptions, write_carla_world
    from harness.model import TFv6, tfv6_losses
    from harness.training.config import load_config
    from harness.training.data import MixedBatchSampler, MixedData, MixPlan, make_collate
    from harness.training.sources import SourceRoots, open_source

    name = small_world.splits["train"][0]
    root = write_carla_world(small_world, tmp_path, CarlaWriteOptions(rig="navsim_4cam", camera_scale=0.1,
                                                                      perturbed=False, max_frames=2), logs=[name])
    sets = ["model.image_width=192", "data.sources=carla"] + [f"model.{k}={str(v).lower()}" for k, v in SMALL.items()]
    cfg = load_config("tiny-carla", overrides=sets)
    assert cfg.model.radar
    src = open_source("carla", cfg, SourceRoots(carla=root))
    keys = MixedBatchSampler(MixPlan(("carla",), (len(src),), 2, 1), max_steps=1).batch(0)
    inputs, targets, _ = make_collate(cfg.input_spec())([MixedData([src])[k] for k in keys])
    assert inputs.radar_points.shape == (2, 8, 5) and targets.radar is not None
    assert targets.radar.valid.all() and inputs.radar_points[..., :2].abs().sum() > 0
    torch.manual_seed(0)
    model = TFv6(cfg.model)
    losses = tfv6_losses(model(inputs), targets, cfg.model)
    assert "radar" in losses and torch.isfinite(losses["radar"])


def test_radar_sensor_index_is_checked():
    with pytest.raises(ValueError, match="sensor indices"):
        Radar(np.array([[0, 0, 0, 0, 4]], np.float32), 4)
