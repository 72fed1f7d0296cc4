"""TFv6 training losses (spec §2.1), vectorised and masked per sample, with no host synchronisation.

Every loss is computed in fp32 with autocast off. Each head's loss is a per-sample value ``l_b``; the batch
loss is ``sum_b valid_b * l_b / max(1, sum_b valid_b)`` (``torch.where``, so an invalid sample contributes
exactly zero value and zero gradient even if its label is garbage). A batch in which no sample has the label
gives 0 for that key, still part of the graph, so no branch on tensor values is ever needed.

Loss keys: ``waypoints``, ``headings``, ``route``, ``target_speed``, ``bev_semantic/<source>``,
``box_heatmap/<source>``, ``box_size/<source>``, ``box_offset/<source>``, ``box_yaw_class/<source>``,
``box_yaw_res/<source>``, ``box_velocity/<source>``, ``image_semantic``, ``depth``, ``radar`` (Hungarian-matched
detections, :mod:`harness.model.radar`), and ``loss`` (the weighted sum). A key exists when the model has the head and the targets carry the label.

Where this follows LEAD exactly (same inputs, same value): waypoint/heading/route L1, two-hot target-speed CE,
BEV-semantic CE averaged over all pixels of a sample (ignored pixels count as zero, as in LEAD), CenterNet
focal / L1 / CE / smooth-L1 terms normalised by the sample's box count. Deliberate differences (spec §7):
headings are their own key (LEAD adds them into the waypoint loss); the focal loss uses log-sigmoid of the
logits instead of ``log(sigmoid + 1e-12)`` (equal up to that epsilon, stable in the tails); depth is L1 in
metres over labelled pixels (LEAD casts metres to integers); the total normalises the weights over the keys
actually computed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from harness.model.io import BoxPrediction, BoxTarget, LossWeights, ModelTargets, TFv6Config, TFv6Prediction
from harness.model.radar import radar_loss

_CLASS_CACHE: dict[tuple[str, tuple[float, ...]], torch.Tensor] = {}


def _classes(values: tuple[float, ...], device: torch.device) -> torch.Tensor:
    """The target-speed classes as a device tensor, made once per device (no host-to-device copy per step,
    which also keeps the losses capturable in a CUDA graph after one eager step)."""
    key = (str(device), tuple(values))
    if key not in _CLASS_CACHE:
        _CLASS_CACHE[key] = torch.tensor(values, dtype=torch.float32, device=device)
    return _CLASS_CACHE[key]


def masked_mean(per_sample: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of ``per_sample (B,)`` over ``valid (B,)`` samples; 0 when none is valid (no host sync)."""
    v = valid.to(torch.bool)
    num = torch.where(v, per_sample, torch.zeros_like(per_sample)).sum()
    return num / v.sum().clamp(min=1).to(per_sample.dtype)


def l1_masked(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over the entries where ``mask`` (broadcast over trailing dims) is True."""
    m = mask.to(torch.bool)
    while m.ndim < pred.ndim:
        m = m[..., None]
    m = m.expand_as(pred)
    err = torch.where(m, (pred.float() - target.float()).abs(), torch.zeros((), device=pred.device))
    return err.sum() / m.sum().clamp(min=1).to(err.dtype)


def two_hot(values: torch.Tensor, classes: torch.Tensor, brake: torch.Tensor) -> torch.Tensor:
    """``(B, S)`` two-hot labels: linear interpolation between the neighbouring classes; values at or above the
    last class go to it, ``brake`` forces class 0 (LEAD's ``encode_two_hot``, without boolean indexing)."""
    s = classes.numel()
    v = values.float()
    upper = torch.searchsorted(classes, v.contiguous()).clamp(1, s - 1)
    lower = upper - 1
    lo, hi = classes[lower], classes[upper]
    w_hi = ((v - lo) / (hi - lo)).clamp(0.0, 1.0)
    out = torch.zeros(v.shape[0], s, device=v.device, dtype=torch.float32)
    out.scatter_add_(1, lower[:, None], (1.0 - w_hi)[:, None])
    out.scatter_add_(1, upper[:, None], w_hi[:, None])
    brake_row = torch.zeros_like(out)
    brake_row[:, 0] = 1.0
    return torch.where(brake.to(torch.bool)[:, None], brake_row, out)


def gaussian_focal_per_sample(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CenterNet's Gaussian focal loss (alpha 2, gamma 4) summed per sample: ``(B, C, h, w) -> (B,)``."""
    x = logits.float()
    t = target.float()
    p = torch.sigmoid(x)
    pos = t.eq(1.0)
    pos_loss = -F.logsigmoid(x) * (1.0 - p).pow(2)
    neg_loss = -F.logsigmoid(-x) * p.pow(2) * (1.0 - t).pow(4)
    return torch.where(pos, pos_loss, neg_loss).sum(dim=(1, 2, 3))


def box_losses(pred: BoxPrediction, tgt: BoxTarget) -> dict[str, torch.Tensor]:
    """CenterNet losses of one source head (each a masked mean over samples)."""
    n = tgt.num_boxes.float().clamp(min=1.0)
    w = tgt.center_mask.float()  # (B, h, w)
    w1 = w[:, None]
    heat = gaussian_focal_per_sample(pred.heatmap_logits, tgt.heatmap) / n
    size = (F.l1_loss(pred.size_m.float(), tgt.size_m.float(), reduction="none") * w1).sum((1, 2, 3)) / (2 * n)
    off = (F.l1_loss(pred.offset.float(), tgt.offset.float(), reduction="none") * w1).sum((1, 2, 3)) / (2 * n)
    yaw_t = torch.where(w > 0, tgt.yaw_class.long(), torch.zeros_like(tgt.yaw_class, dtype=torch.long))
    yaw_c = (F.cross_entropy(pred.yaw_logits.float(), yaw_t, reduction="none") * w).sum((1, 2)) / n
    yaw_r = (F.smooth_l1_loss(pred.yaw_res.float(), tgt.yaw_res.float(), reduction="none") * w1).sum((1, 2, 3)) / n
    out = {"box_heatmap": heat, "box_size": size, "box_offset": off, "box_yaw_class": yaw_c, "box_yaw_res": yaw_r}
    if pred.velocity_mps is not None and tgt.velocity_mps is not None:
        vel = (F.l1_loss(pred.velocity_mps.float(), tgt.velocity_mps.float(), reduction="none") * w1)
        out["box_velocity"] = vel.sum((1, 2, 3)) / n
    return {k: masked_mean(v, tgt.valid) for k, v in out.items()}


def _semantic_per_sample(logits: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Per-pixel CE with ignore index -1, averaged over all pixels of each sample: ``(B,)``."""
    ce = F.cross_entropy(logits.float(), classes.long(), ignore_index=-1, reduction="none")
    return ce.flatten(1).mean(1)


def tfv6_losses(pred: TFv6Prediction, targets: ModelTargets, cfg: TFv6Config,
                weights: LossWeights | None = None) -> dict[str, torch.Tensor]:
    """All losses of one batch and their weighted sum under ``"loss"`` (see the module docstring)."""
    device = targets.waypoints_m.device
    with torch.autocast(device.type, enabled=False):
        return _losses(pred, targets, cfg, weights or LossWeights())


def _losses(pred: TFv6Prediction, targets: ModelTargets, cfg: TFv6Config,
            weights: LossWeights) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    if pred.waypoints_m is not None:
        n = pred.waypoints_m.shape[1]
        if targets.waypoints_m.shape[1] != n:
            raise ValueError(f"tfv6_losses: {targets.waypoints_m.shape[1]} target waypoints, model predicts {n}")
        out["waypoints"] = l1_masked(pred.waypoints_m, targets.waypoints_m, targets.waypoints_valid)
        if pred.headings_rad is not None and targets.headings_rad is not None:
            out["headings"] = l1_masked(pred.headings_rad, targets.headings_rad, targets.headings_valid)
        if pred.route_m is not None and targets.route_m is not None:
            r = pred.route_m.shape[1]
            rt = targets.route_m[:, :r]
            ade = (pred.route_m - rt).abs().flatten(1).mean(1)
            fde = (pred.route_m[:, -1] - rt[:, -1]).abs().mean(1)
            out["route"] = masked_mean(ade + fde, targets.route_valid)
        if pred.target_speed_logits is not None and targets.target_speed_mps is not None:
            classes = _classes(cfg.target_speed_classes_mps, pred.target_speed_logits.device)
            label = two_hot(targets.target_speed_mps, classes, targets.brake)
            ce = -(label * F.log_softmax(pred.target_speed_logits.float(), dim=-1)).sum(-1)
            out["target_speed"] = masked_mean(ce, targets.target_speed_valid)
    for src, logits in pred.bev_semantic_logits.items():
        t = targets.bev_semantic.get(src)
        if t is not None:
            out[f"bev_semantic/{src}"] = masked_mean(_semantic_per_sample(logits, t.classes), t.valid)
    for src, bp in pred.boxes.items():
        t = targets.boxes.get(src)
        if t is not None:
            out.update({f"{k}/{src}": v for k, v in box_losses(bp, t).items()})
    if pred.image_semantic_logits is not None and targets.image_semantic is not None:
        t = targets.image_semantic
        out["image_semantic"] = masked_mean(_semantic_per_sample(pred.image_semantic_logits, t.classes), t.valid)
    if pred.depth_m is not None and targets.depth is not None:
        d = targets.depth.depth_m.float()
        has = torch.isfinite(d) & (d > 0)
        err = torch.where(has, (pred.depth_m.float() - torch.where(has, d, 0.0)).abs(), 0.0)
        per = err.flatten(1).sum(1) / has.flatten(1).sum(1).clamp(min=1)
        out["depth"] = masked_mean(per, targets.depth.valid)
    if pred.radar_detections is not None and targets.radar is not None:
        out["radar"] = radar_loss(pred.radar_detections, targets.radar, cfg)
    if not out:
        raise ValueError("tfv6_losses: no loss could be computed (no head has a matching target)")
    w = {k: weights.get(k) for k in out}
    total_w = sum(w.values()) if weights.normalise else 1.0
    if total_w <= 0:
        raise ValueError(f"tfv6_losses: loss weights sum to {total_w}")
    out["loss"] = sum(v * (w[k] / total_w) for k, v in out.items())
    return out
