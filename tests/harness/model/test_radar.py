"""The radar detector on tiny shapes: outputs, BEV sampling orientation, Hungarian loss by hand, masking, size."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from harness.model import RadarTarget, TFv6, TFv6Config, tfv6_losses
from harness.model.radar import RadarDetector, radar_loss, radar_loss_per_sample, sample_bev

from ._batch import tiny_batch

TINY_RADAR = dict(radar=True, num_radar_queries=4, radar_points_per_sensor=5, radar_token_dim=32,
                  radar_tokenizer_dim=32, radar_decoder_dim=32, radar_layers=1, radar_heads=4, radar_ffn_dim=32)


def _cfg(**kw):
    return TFv6Config.preset("tiny", **(TINY_RADAR | kw))


def _radar_points(cfg, b=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = cfg.num_radar_sensors * cfg.radar_points_per_sensor
    pts = torch.zeros(b, n, 5)
    pts[..., :2] = (torch.rand(b, n, 2, generator=g) - 0.5) * 30
    pts[..., 3] = torch.randn(b, n, generator=g) * 5
    pts[..., 4] = torch.arange(n) // cfg.radar_points_per_sensor
    return pts


def test_forward_shapes_ranges_and_planner_tokens():
    cfg = _cfg()
    assert cfg.num_status_tokens == TFv6Config.preset("tiny").num_status_tokens + 4
    torch.manual_seed(0)
    model = TFv6(cfg).eval()
    inputs, _ = tiny_batch(cfg)
    inputs = replace(inputs, radar_points=_radar_points(cfg))
    with torch.no_grad():
        pred = model(inputs)
        det = pred.radar_detections
        assert det.shape == (2, 4, 4)
        x0, x1, y0, y1 = cfg.bev_extent_m
        assert ((det[..., 0] >= x0) & (det[..., 0] <= x1) & (det[..., 1] >= y0) & (det[..., 1] <= y1)).all()
        assert ((det[..., 2] >= 0) & (det[..., 2] <= cfg.max_speed_mps)).all()
        # The planner reads the radar tokens: other radar returns, other waypoints.
        moved = model(replace(inputs, radar_points=_radar_points(cfg, seed=1)))
        assert not torch.allclose(moved.waypoints_m, pred.waypoints_m)
        # No radar given: all padding, still runs.
        assert model(replace(inputs, radar_points=None)).radar_detections.shape == (2, 4, 4)
    off = TFv6(TFv6Config.preset("tiny")).eval()
    assert off.radar_detector is None and off(inputs).radar_detections is None


def test_bev_sampling_orientation():
    """Row 0 = x max, column 0 = y max; the extent's corners hit the corner cells exactly."""
    cfg = _cfg()
    feats = torch.zeros(1, 2, 4, 5)
    feats[0, 0, 0, 0] = 1.0  # front-left corner
    feats[0, 1, 3, 4] = 1.0  # rear-right corner
    x0, x1, y0, y1 = cfg.bev_extent_m
    out = sample_bev(feats, torch.tensor([[[x1, y1], [x0, y0], [0.0, 0.0]]]), cfg)
    assert out[0, 0].tolist() == [1.0, 0.0] and out[0, 1].tolist() == [0.0, 1.0]
    assert out[0, 2].tolist() == [0.0, 0.0]


def test_loss_by_hand_matches_the_cheaper_assignment():
    cfg = _cfg(num_radar_queries=2)  # tiny: extent 32 m x 32 m, max speed 15 m/s
    pred = torch.tensor([[[10.0, 0.0, 5.0, 0.0], [0.0, 5.0, 3.0, 0.0]]])
    gt = torch.tensor([[[0.0, 5.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]]])
    # Prediction 1 matches the one valid label (scaled L1 3/15); prediction 0 the padding.
    want = 5.0 * (3.0 / 15.0) + math.log(2.0)  # BCE(0, 1) = BCE(0, 0) = ln 2, averaged over both queries
    assert radar_loss_per_sample(pred, gt, cfg).item() == pytest.approx(want, rel=1e-6)
    # Label order does not matter (the matching undoes a permutation).
    assert radar_loss_per_sample(pred, gt.flip(1), cfg).item() == pytest.approx(want, rel=1e-6)


def test_loss_is_masked_per_sample_and_differentiable():
    cfg = _cfg()
    g = torch.Generator().manual_seed(2)
    pred = torch.randn(3, 4, 4, generator=g, requires_grad=True)
    gt = torch.zeros(3, 4, 4)
    gt[:, :2] = torch.tensor([5.0, -3.0, 4.0, 1.0])
    garbage = gt.clone()
    garbage[1] = 1e6  # a sample without radar labels may hold anything
    valid = torch.tensor([True, False, True])
    a = radar_loss(pred, RadarTarget(gt, valid), cfg)
    b = radar_loss(pred, RadarTarget(garbage, valid), cfg)
    assert torch.isfinite(a) and a.item() == pytest.approx(b.item())
    per = radar_loss_per_sample(pred, gt, cfg)
    assert a.item() == pytest.approx(((per[0] + per[2]) / 2).item())
    none = radar_loss(pred, RadarTarget(gt, torch.zeros(3, dtype=torch.bool)), cfg)
    none.backward()
    assert none.item() == 0.0 and pred.grad is not None and pred.grad.abs().sum() == 0


def test_total_loss_has_the_radar_key_and_trains_the_detector():
    cfg = _cfg()
    torch.manual_seed(0)
    model = TFv6(cfg)
    inputs, targets = tiny_batch(cfg)
    inputs = replace(inputs, radar_points=_radar_points(cfg))
    det = torch.zeros(2, 4, 4)
    det[:, 0] = torch.tensor([6.0, 2.0, 3.0, 1.0])
    targets = replace(targets, radar=RadarTarget(det, torch.tensor([True, False])))
    losses = tfv6_losses(model(inputs), targets, cfg)
    assert "radar" in losses and torch.isfinite(losses["radar"])
    losses["loss"].backward()
    assert model.radar_detector.query.grad.abs().sum() > 0
    assert model.planner.radar_tokens.proj.weight.grad.abs().sum() > 0


def test_leaderboard_size_matches_leads_radar_detector():
    """carla-r34 (LEAD's leaderboard mode) has the radar on; the detector alone is 5.18 M parameters (spec §1.6),
    worked out from LEAD's layers: 1x1 conv 512->256, tokenizer 261->1024->256, 4 decoder layers of d 256 / FFN
    1024, state MLP 256->1024->3, logit, 20 queries and the 12 x 10 + 1 positional embeddings."""
    cfg = TFv6Config.preset("carla-r34")
    assert cfg.radar and not TFv6Config.preset("navsim-r34").radar and not TFv6Config.preset("waymo-r34").radar
    det = RadarDetector(cfg, 512, (12, 10))
    assert sum(p.numel() for p in det.parameters()) == 5_179_396
