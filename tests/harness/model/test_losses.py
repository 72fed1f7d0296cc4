"""TFv6 losses: hand-checked values, LEAD's formulas on the same inputs, per-sample masking (zero value and
zero gradient for samples without a label), weight normalisation over computed losses."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from harness.model import (
    BEVSemanticTarget,
    BoxPrediction,
    LossWeights,
    ModelTargets,
    TFv6,
    TFv6Config,
    TFv6Prediction,
    tfv6_losses,
)
from harness.model.losses import gaussian_focal_per_sample, masked_mean, two_hot

from ._batch import tiny_batch

TINY = TFv6Config.preset("tiny")


def test_two_hot_hand_values():
    classes = torch.tensor([0.0, 4.0, 8.0, 10.0])
    got = two_hot(torch.tensor([0.0, 2.0, 9.5, 12.0, 5.0]), classes, torch.tensor([False, False, False, False, True]))
    want = torch.tensor([[1, 0, 0, 0], [0.5, 0.5, 0, 0], [0, 0, 0.25, 0.75], [0, 0, 0, 1], [1, 0, 0, 0]])
    torch.testing.assert_close(got, want.float())


def test_focal_loss_equals_lead_formula():
    torch.manual_seed(0)
    logits = torch.randn(2, 1, 6, 6) * 2
    target = torch.rand(2, 1, 6, 6) * 0.9
    target[0, 0, 2, 3] = 1.0
    p = logits.sigmoid()
    eps = 1e-12  # LEAD: -(log(p + eps) (1-p)^2 [t == 1] + log(1 - p + eps) p^2 (1-t)^4)
    lead = (-(p + eps).log() * (1 - p) ** 2 * target.eq(1) - (1 - p + eps).log() * p**2 * (1 - target) ** 4)
    torch.testing.assert_close(gaussian_focal_per_sample(logits, target), lead.sum((1, 2, 3)), rtol=1e-5, atol=1e-6)


def test_masked_mean_is_zero_without_valid_samples():
    x = torch.tensor([1.0, float("nan"), 3.0], requires_grad=True)
    m = masked_mean(x, torch.tensor([True, False, True]))
    assert float(m.detach()) == 2.0
    m.backward()
    assert x.grad.tolist() == [0.5, 0.0, 0.5]
    assert float(masked_mean(torch.tensor([5.0]), torch.tensor([False]))) == 0.0


def _leaf_prediction(cfg: TFv6Config, b: int, seed: int = 1) -> TFv6Prediction:
    g = torch.Generator().manual_seed(seed)
    h, w = cfg.grid_shape

    def r(*shape):
        return torch.randn(*shape, generator=g).requires_grad_()

    boxes = {s: BoxPrediction(heatmap_logits=r(b, k, h, w), size_m=r(b, 2, h, w), offset=r(b, 2, h, w),
                              yaw_logits=r(b, cfg.num_yaw_bins, h, w), yaw_res=r(b, 1, h, w))
             for s, k in cfg.box_classes}
    bev = {s: r(b, k, cfg.bev_height_px, cfg.bev_width_px) for s, k in cfg.bev_semantic_classes}
    return TFv6Prediction(waypoints_m=r(b, cfg.num_waypoints, 2), headings_rad=r(b, cfg.num_waypoints),
                          bev_semantic_logits=bev, boxes=boxes)


def test_losses_equal_lead_when_every_sample_is_labelled():
    pred = _leaf_prediction(TINY, 3)
    _, tg = tiny_batch(TINY, b=3)
    losses = tfv6_losses(pred, tg, TINY)
    torch.testing.assert_close(losses["waypoints"], F.l1_loss(pred.waypoints_m, tg.waypoints_m))
    torch.testing.assert_close(losses["headings"], F.l1_loss(pred.headings_rad, tg.headings_rad))
    ce = F.cross_entropy(pred.bev_semantic_logits["navsim"], tg.bev_semantic["navsim"].classes)
    torch.testing.assert_close(losses["bev_semantic/navsim"], ce)
    bp, bt = pred.boxes["navsim"], tg.boxes["navsim"]
    n = bt.num_boxes.clamp(min=1)
    wh = (F.l1_loss(bp.size_m, bt.size_m, reduction="none") * bt.center_mask[:, None]).sum((1, 2, 3)) / (2 * n)
    torch.testing.assert_close(losses["box_size/navsim"], wh.mean())
    yaw = (F.cross_entropy(bp.yaw_logits, bt.yaw_class, reduction="none") * bt.center_mask).sum((1, 2)) / n
    torch.testing.assert_close(losses["box_yaw_class/navsim"], yaw.mean())
    # weights normalised over the 8 computed losses
    keys = [k for k in losses if k != "loss"]
    assert len(keys) == 8
    torch.testing.assert_close(losses["loss"], sum(losses[k] for k in keys) / 8)


def test_ignored_bev_pixels_count_as_zero_like_lead():
    logits = torch.randn(1, 3, 2, 2)
    classes = torch.tensor([[[0, -1], [2, 1]]])
    t = BEVSemanticTarget(classes, torch.tensor([True]))
    pred = TFv6Prediction(waypoints_m=None, bev_semantic_logits={"navsim": logits})
    tg = ModelTargets(waypoints_m=torch.zeros(1, 1, 2), waypoints_valid=torch.ones(1, 1, dtype=torch.bool),
                      bev_semantic={"navsim": t})
    got = tfv6_losses(pred, tg, TINY)["bev_semantic/navsim"]
    per_pixel = F.cross_entropy(logits, classes, ignore_index=-1, reduction="none")
    torch.testing.assert_close(got, per_pixel.sum() / 4)


@pytest.mark.parametrize("head", ["bev", "boxes", "waypoints"])
def test_sample_without_label_gets_zero_gradient(head):
    pred = _leaf_prediction(TINY, 3)
    _, tg = tiny_batch(TINY, b=3)
    valid = torch.tensor([True, False, True])
    if head == "bev":
        t = tg.bev_semantic["navsim"]
        tg = replace(tg, bev_semantic={"navsim": replace(t, valid=valid)})
        key, leaf = "bev_semantic/navsim", pred.bev_semantic_logits["navsim"]
    elif head == "boxes":
        t = tg.boxes["navsim"]
        tg = replace(tg, boxes={"navsim": replace(t, valid=valid)})
        key, leaf = "box_heatmap/navsim", pred.boxes["navsim"].heatmap_logits
    else:
        tg = replace(tg, waypoints_valid=valid[:, None].expand(3, TINY.num_waypoints).clone(),
                     waypoints_m=torch.where(valid[:, None, None], tg.waypoints_m, float("nan")))
        key, leaf = "waypoints", pred.waypoints_m
    losses = tfv6_losses(pred, tg, TINY)
    assert torch.isfinite(losses["loss"])
    losses["loss"].backward()
    assert float(leaf.grad[1].abs().sum()) == 0.0
    assert float(leaf.grad[0].abs().sum()) > 0.0
    assert torch.isfinite(losses[key])


def test_no_valid_sample_gives_zero_loss_but_keeps_the_graph():
    pred = _leaf_prediction(TINY, 2)
    _, tg = tiny_batch(TINY, b=2)
    none = torch.zeros(2, dtype=torch.bool)
    tg = replace(tg, bev_semantic={"navsim": replace(tg.bev_semantic["navsim"], valid=none)})
    losses = tfv6_losses(pred, tg, TINY)
    assert float(losses["bev_semantic/navsim"].detach()) == 0.0
    losses["loss"].backward()
    assert float(pred.bev_semantic_logits["navsim"].grad.abs().sum()) == 0.0


def test_loss_weights_normalise_over_computed_keys_and_can_be_raw():
    pred = _leaf_prediction(TINY, 2)
    _, tg = tiny_batch(TINY, b=2)
    tg = replace(tg, boxes={}, headings_rad=None, headings_valid=None)  # only waypoints and BEV computed
    losses = tfv6_losses(pred, tg, TINY, LossWeights({"waypoints": 3.0}))
    assert set(losses) == {"waypoints", "bev_semantic/navsim", "loss"}
    torch.testing.assert_close(losses["loss"], (3 * losses["waypoints"] + losses["bev_semantic/navsim"]) / 4)
    raw = tfv6_losses(pred, tg, TINY, LossWeights({"bev_semantic": 0.5}, normalise=False))
    torch.testing.assert_close(raw["loss"], raw["waypoints"] + 0.5 * raw["bev_semantic/navsim"])


def test_model_losses_backward_end_to_end():
    torch.manual_seed(0)
    m = TFv6(TINY)
    inputs, tg = tiny_batch(TINY, b=2)
    losses = tfv6_losses(m(inputs), tg, TINY)
    losses["loss"].backward()
    # every parameter is in the graph (DDP needs that), with finite gradients
    assert [n for n, p in m.named_parameters() if p.grad is None] == []
    assert all(torch.isfinite(p.grad).all() for p in m.parameters())
