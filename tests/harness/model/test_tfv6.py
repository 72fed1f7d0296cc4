"""TFv6 on CPU with the tiny preset: output shapes, latent vs LiDAR input, status and past-pose tokens,
batch independence, parameter counts against LEAD's (spec §1.6)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from harness.model import ModelInputs, TFv6, TFv6Config

from ._batch import tiny_batch

TINY = TFv6Config.preset("tiny")


def _model(cfg: TFv6Config = TINY, seed: int = 0) -> TFv6:
    torch.manual_seed(seed)
    return TFv6(cfg).eval()


def test_output_shapes_tiny():
    cfg = replace(TINY, num_route_points=5, target_speed_classes_mps=(0.0, 4.0, 8.0), num_target_points=2,
                  bev_semantic_classes=(("carla", 5), ("navsim", 7)), box_classes=(("carla", 3), ("navsim", 1)),
                  box_velocity=True, image_semantic_classes=4, predict_depth=True)
    inputs, _ = tiny_batch(cfg, b=3)
    with torch.no_grad():
        p = _model(cfg)(inputs)
    h, w = cfg.grid_shape
    assert p.waypoints_m.shape == (3, 8, 2) and p.headings_rad.shape == (3, 8)
    assert p.route_m.shape == (3, 5, 2)
    assert p.target_speed_logits.shape == (3, 3) and p.target_speed_mps.shape == (3,)
    assert 0.0 <= float(p.target_speed_mps.min()) and float(p.target_speed_mps.max()) <= 8.0
    assert p.bev_semantic_logits["carla"].shape == (3, 5, cfg.bev_height_px, cfg.bev_width_px)
    assert p.bev_semantic_logits["navsim"].shape == (3, 7, cfg.bev_height_px, cfg.bev_width_px)
    assert p.boxes["carla"].heatmap_logits.shape == (3, 3, h, w)
    assert p.boxes["navsim"].yaw_logits.shape == (3, cfg.num_yaw_bins, h, w)
    assert p.boxes["navsim"].velocity_mps.shape == (3, 1, h, w)
    assert p.image_semantic_logits.shape == (3, 4, cfg.image_height, cfg.image_width)
    assert p.depth_m.shape == (3, cfg.image_height, cfg.image_width)
    assert torch.isfinite(p.waypoints_m).all()


def test_latent_mode_runs_without_lidar_and_lidar_mode_needs_it():
    inputs, _ = tiny_batch(TINY)
    assert inputs.lidar_bev is None
    with torch.no_grad():
        assert _model()(inputs).waypoints_m.shape == (2, 8, 2)
    cfg = replace(TINY, latent=False, lidar_channels=1)
    m = _model(cfg)
    with pytest.raises(ValueError, match="lidar_bev is required"):
        m(inputs)
    with_lidar, _ = tiny_batch(cfg)
    with torch.no_grad():
        out = m(with_lidar).waypoints_m
        other = m(replace(with_lidar, lidar_bev=torch.zeros_like(with_lidar.lidar_bev))).waypoints_m
    assert not torch.allclose(out, other)  # the LiDAR histogram is used


def test_wrong_image_size_is_an_error():
    inputs, _ = tiny_batch(TINY)
    bad = replace(inputs, images=inputs.images[..., :-32])
    with pytest.raises(ValueError, match="config expects"):
        _model()(bad)


def test_past_trajectory_tokens_change_the_plan():
    m = _model()
    inputs, _ = tiny_batch(TINY)
    with torch.no_grad():
        a = m(inputs).waypoints_m
        b = m(replace(inputs, past_poses=inputs.past_poses + torch.tensor([1.0, 0.5, 0.2]))).waypoints_m
        valid = torch.ones(2, TINY.num_past_poses, dtype=torch.bool)
        valid[:, 0] = False
        c = m(replace(inputs, past_valid=valid)).waypoints_m
        d = m(replace(inputs, past_valid=torch.ones_like(valid))).waypoints_m
    assert not torch.allclose(a, b)
    assert not torch.allclose(a, c)
    torch.testing.assert_close(a, d)
    with pytest.raises(ValueError, match="past poses"):
        m(replace(inputs, past_poses=None))


@pytest.mark.parametrize("field", ["speed_mps", "acceleration_mps2", "command"])
def test_status_inputs_change_the_plan(field):
    m = _model()
    inputs, _ = tiny_batch(TINY)
    with torch.no_grad():
        a = m(inputs).waypoints_m
        v = getattr(inputs, field)
        b = m(replace(inputs, **{field: v.roll(1, dims=-1) + 1.0})).waypoints_m
    assert not torch.allclose(a, b)


def test_samples_are_independent_in_eval():
    # the latent BEV branch runs its batch-independent stem once and broadcasts: results must equal per-sample runs
    m = _model()
    inputs, _ = tiny_batch(TINY, b=3)
    with torch.no_grad():
        full = m(inputs)
        one = m(ModelInputs(images=inputs.images[1:2], speed_mps=inputs.speed_mps[1:2],
                            acceleration_mps2=inputs.acceleration_mps2[1:2], command=inputs.command[1:2],
                            past_poses=inputs.past_poses[1:2]))
    torch.testing.assert_close(full.waypoints_m[1:2], one.waypoints_m, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(full.bev_semantic_logits["navsim"][1:2], one.bev_semantic_logits["navsim"],
                               rtol=1e-4, atol=1e-4)


def test_planner_off_gives_no_waypoints():
    with torch.no_grad():
        p = _model(replace(TINY, use_planner=False))(tiny_batch(TINY)[0])
    assert p.waypoints_m is None and p.bev_semantic_logits


def test_parameter_counts_match_lead():
    """LEAD's counts (spec §1.6, measured on the official model): NAVSIM LTF ResNet-34 62.15 M with the planner,
    52.54 M without. LEAD also builds a CenterNet velocity branch for NAVSIM (unused under LTF, 36,993
    parameters); navsim-r34 leaves it out."""
    cfg = TFv6Config.preset("navsim-r34")
    m = TFv6(cfg)
    counts = m.parameter_counts()
    assert counts["backbone.image_encoder"] == 21_284_672
    with_velocity = TFv6(replace(cfg, box_velocity=True)).parameter_counts()["total"]
    assert with_velocity - counts["total"] == 36_993
    assert abs(with_velocity / 1e6 - 62.15) < 0.005
    pre = TFv6(replace(cfg, box_velocity=True, use_planner=False)).parameter_counts()["total"]
    assert abs(pre / 1e6 - 52.54) < 0.005
