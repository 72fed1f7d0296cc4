"""Decoding CenterNet predictions into boxes in the ego frame (LEAD's peak picking, spec §1.4), vectorised.

Peaks are cells whose sigmoid score equals the 3x3 max-pool of the heatmap; the ``k`` best over all classes
are kept. Grid convention (:mod:`harness.model.io`): row 0 is the far front, column 0 the far left; a peak at
cell (r, c) with offset (dr, dc) sits at x = x_max - (r + dr) * cell, y = y_max - (c + dc) * cell. The heading
is bin centre + residual (bin k centred on k * 2 pi / bins, counter-clockwise), wrapped to (-pi, pi].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from harness.model.io import BoxPrediction, TFv6Config

#: Columns of :func:`decode_boxes`' output.
BOX_COLUMNS = ("x_m", "y_m", "half_length_m", "half_width_m", "yaw_rad", "speed_mps", "class", "score")


def decode_boxes(pred: BoxPrediction, cfg: TFv6Config, k: int = 100, threshold: float = 0.3
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` boxes per sample: ``(B, k, 8)`` rows of :data:`BOX_COLUMNS` and a ``(B, k)`` bool mask of
    scores above ``threshold`` (LEAD: k = 100, 0.3)."""
    heat = torch.sigmoid(pred.heatmap_logits.float())
    b, c, h, w = heat.shape
    peaks = heat == F.max_pool2d(heat, 3, stride=1, padding=1)
    scores, idx = torch.topk((heat * peaks).reshape(b, -1), min(k, c * h * w), dim=1)
    cls = torch.div(idx, h * w, rounding_mode="floor")
    cell = idx % (h * w)

    def gather(t: torch.Tensor) -> torch.Tensor:  # (B, ch, h, w) -> (B, k, ch)
        return torch.gather(t.float().reshape(b, t.shape[1], h * w), 2,
                            cell[:, None, :].expand(-1, t.shape[1], -1)).transpose(1, 2)

    off, size = gather(pred.offset), gather(pred.size_m)
    bins = gather(pred.yaw_logits).argmax(-1)
    per = 2 * math.pi / pred.yaw_logits.shape[1]
    yaw = bins.float() * per + gather(pred.yaw_res)[..., 0]
    yaw = torch.remainder(yaw + math.pi, 2 * math.pi) - math.pi
    speed = gather(pred.velocity_mps)[..., 0] if pred.velocity_mps is not None else torch.zeros_like(yaw)
    cell_m = cfg.bev_down_sample / cfg.bev_pixels_per_m
    _, x_max, _, y_max = cfg.bev_extent_m
    rows = torch.div(cell, w, rounding_mode="floor").float() + off[..., 0]
    cols = (cell % w).float() + off[..., 1]
    out = torch.stack((x_max - rows * cell_m, y_max - cols * cell_m, size[..., 0], size[..., 1], yaw, speed,
                       cls.float(), scores), dim=-1)
    return out, scores > threshold
