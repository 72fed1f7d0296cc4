"""TFv6's radar detector (LEAD ``tfv6/radar_detector.py``, spec §1.4 "Radar detector"): CARLA only, off by default.

LEAD turns it on in CARLA leaderboard mode (``radar_detection = carla_leaderboard_mode``: CARLA-only training with
the leaderboard rig) and off for NAVSIM, Waymo and mixed training; lead-bench's ``carla-r34`` preset has it on,
every other preset off (``TFv6Config.radar``).

- Context (keys/values): the last BEV feature map through a 1x1 conv to ``radar_token_dim`` plus a learned
  positional embedding; one ego-speed token (speed / ``max_speed_mps``); one token per radar point: the BEV
  feature bilinearly sampled at the point, the radial velocity / ``max_speed_mps`` and the sensor's one-hot,
  through an MLP (``radar_token_dim + 1 + sensors -> radar_tokenizer_dim -> radar_token_dim``), plus a sine
  embedding of the point's position normalised to the BEV extent.
- ``num_radar_queries`` learned queries, a transformer decoder (``radar_layers`` layers, GELU, final LayerNorm).
- Per query: x, y (tanh scaled to the BEV extent), speed ((tanh + 1) / 2 * ``max_speed_mps``) and a validity
  logit -> ``(B, Q, 4)``; the query features ``(B, Q, radar_token_dim)`` become planner status tokens.

The loss matches predictions to labels per sample with the Hungarian algorithm (scipy, on the CPU, as LEAD):
cost = 5 * scaled L1 of (x, y, v) against valid labels + 1 * BCE of the logit; loss = 5 * mean scaled L1 over
matched valid labels + 1 * BCE averaged over all queries. Samples without radar labels (non-CARLA sources) are
masked out. The matching needs one device-to-host copy per step, so a radar model cannot be captured in a CUDA
graph.

Frames: canonical ego frame (x forward, y left); BEV features follow :mod:`harness.model.io` (row 0 = x max,
column 0 = y max). LEAD works in CARLA's y-right frame; positions differ by that mirror only.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.model.io import RadarTarget, TFv6Config

#: Columns of ``ModelInputs.radar_points`` and of the radar detections.
RADAR_X, RADAR_Y, RADAR_Z, RADAR_V, RADAR_SENSOR = range(5)
DET_X, DET_Y, DET_V, DET_VALID = range(4)


def normalise_bev_points(xy: torch.Tensor, cfg: TFv6Config) -> torch.Tensor:
    """``(..., 2)`` ego-frame (x, y) metres -> [0, 1] over the BEV extent (clamped)."""
    x0, x1, y0, y1 = cfg.bev_extent_m
    u = (xy[..., 0] - x0) / (x1 - x0)
    v = (xy[..., 1] - y0) / (y1 - y0)
    return torch.stack((u, v), dim=-1).clamp(0.0, 1.0)


def sine_embedding_points(unit_xy: torch.Tensor, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """``(..., 2)`` positions in [0, 1] -> ``(..., dim)`` sine embedding: dim/2 features per axis (y, then x),
    angle ``p * 2 pi / temperature ** (2 floor(k / 2) / (dim / 2))``, sin at even and cos at odd k."""
    half = dim // 2
    k = torch.arange(half, dtype=torch.float32, device=unit_xy.device)
    freq = temperature ** (2 * torch.div(k, 2, rounding_mode="floor") / half)

    def emb(p: torch.Tensor) -> torch.Tensor:
        a = (p.float() * 2 * math.pi)[..., None] / freq
        return torch.stack((a[..., 0::2].sin(), a[..., 1::2].cos()), dim=-1).flatten(-2)

    return torch.cat((emb(unit_xy[..., 1]), emb(unit_xy[..., 0])), dim=-1)


def sample_bev(features: torch.Tensor, xy: torch.Tensor, cfg: TFv6Config) -> torch.Tensor:
    """Bilinear samples of ``features (B, D, H, W)`` at ego-frame points ``xy (B, N, 2)`` -> ``(B, N, D)``.

    Row 0 of the map is x max and column 0 is y max; the extent's edges map to the outer cell centres
    (``align_corners=True``, as LEAD's ``bev_grid_sample``).
    """
    x0, x1, y0, y1 = cfg.bev_extent_m
    col = 2 * (y1 - xy[..., 1]) / (y1 - y0) - 1
    row = 2 * (x1 - xy[..., 0]) / (x1 - x0) - 1
    grid = torch.stack((col, row), dim=-1)[:, :, None, :].to(features.dtype)  # (B, N, 1, 2): (x=col, y=row)
    out = F.grid_sample(features, grid, mode="bilinear", align_corners=True)  # (B, D, N, 1)
    return out[..., 0].transpose(1, 2)


class RadarDetector(nn.Module):
    """See the module docstring. ``forward(bev_features, radar_points, speed_mps) -> (features, detections)``."""

    def __init__(self, cfg: TFv6Config, bev_channels: int, bev_hw: tuple[int, int]) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.radar_token_dim
        self.bev_proj = nn.Conv2d(bev_channels, d, 1)
        self.speed_proj = nn.Linear(1, d)
        self.point_tokenizer = nn.Sequential(nn.Linear(d + 1 + cfg.num_radar_sensors, cfg.radar_tokenizer_dim),
                                             nn.ReLU(inplace=True), nn.Linear(cfg.radar_tokenizer_dim, d))
        self.bev_pos = nn.Parameter(torch.zeros(1, bev_hw[0] * bev_hw[1], d))
        self.speed_pos = nn.Parameter(torch.zeros(1, 1, d))
        self.query = nn.Parameter(torch.empty(1, cfg.num_radar_queries, d))
        nn.init.xavier_uniform_(self.query)
        layer = nn.TransformerDecoderLayer(d, cfg.radar_heads, cfg.radar_ffn_dim, cfg.radar_dropout,
                                           activation=nn.GELU(), batch_first=True)
        self.decoder = nn.TransformerDecoder(layer, cfg.radar_layers, norm=nn.LayerNorm(d))
        self.state_head = nn.Sequential(nn.Linear(d, cfg.radar_decoder_dim), nn.ReLU(inplace=True),
                                        nn.Linear(cfg.radar_decoder_dim, 3))
        self.valid_head = nn.Linear(d, 1)

    def forward(self, bev_features: torch.Tensor, radar_points: torch.Tensor | None,
                speed_mps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``bev_features (B, C, h, w)``, ``radar_points (B, N, 5)`` (None: no radar, all padding),
        ``speed_mps (B,)`` -> query features ``(B, Q, D)`` and detections ``(B, Q, 4)`` = x, y (m), speed (m/s),
        validity logit."""
        cfg = self.cfg
        b = bev_features.shape[0]
        bev = self.bev_proj(bev_features)  # (B, D, h, w)
        if radar_points is None:
            radar_points = torch.zeros(b, cfg.num_radar_sensors * cfg.radar_points_per_sensor, 5,
                                       device=bev.device, dtype=torch.float32)
        pts = radar_points.float()
        xy = pts[..., RADAR_X:RADAR_Y + 1]
        sensor = F.one_hot(pts[..., RADAR_SENSOR].long().clamp(0, cfg.num_radar_sensors - 1),
                           cfg.num_radar_sensors).to(bev.dtype)
        feats = torch.cat((sample_bev(bev, xy, cfg), (pts[..., RADAR_V:RADAR_V + 1] / cfg.max_speed_mps).to(bev.dtype),
                           sensor), dim=-1)
        point_tok = self.point_tokenizer(feats)
        point_tok = point_tok + sine_embedding_points(normalise_bev_points(xy, cfg), cfg.radar_token_dim).to(
            point_tok.dtype)
        bev_tok = bev.flatten(2).transpose(1, 2) + self.bev_pos.to(bev.dtype)
        speed_tok = self.speed_proj((speed_mps.float() / cfg.max_speed_mps)[:, None, None].to(bev.dtype))
        speed_tok = speed_tok + self.speed_pos.to(speed_tok.dtype)
        memory = torch.cat((bev_tok, speed_tok.to(bev_tok.dtype), point_tok.to(bev_tok.dtype)), dim=1)
        q = self.decoder(self.query.expand(b, -1, -1).to(memory.dtype), memory)  # (B, Q, D)
        raw = self.state_head(q).float()
        x0, x1, y0, y1 = cfg.bev_extent_m
        x = torch.tanh(raw[..., 0]) * (x1 - x0) / 2 + (x1 + x0) / 2
        y = torch.tanh(raw[..., 1]) * (y1 - y0) / 2 + (y1 + y0) / 2
        v = (torch.tanh(raw[..., 2]) + 1) / 2 * cfg.max_speed_mps
        det = torch.stack((x, y, v, self.valid_head(q).float()[..., 0]), dim=-1)
        return q, det


class RadarPlannerTokens(nn.Module):
    """The planner's radar status tokens: ``Linear(radar_token_dim -> token_dim)`` of the query features plus a
    sine embedding of each query's predicted (x, y)."""

    def __init__(self, cfg: TFv6Config) -> None:
        super().__init__()
        self.cfg = cfg
        self.proj = nn.Linear(cfg.radar_token_dim, cfg.token_dim)

    def forward(self, features: torch.Tensor, detections: torch.Tensor) -> torch.Tensor:
        tok = self.proj(features)
        pos = sine_embedding_points(normalise_bev_points(detections[..., DET_X:DET_Y + 1], self.cfg),
                                    self.cfg.token_dim)
        return tok + pos.to(tok.dtype)


# --- loss ------------------------------------------------------------------------------------------------

#: LEAD's ``radar_regression_loss_weight`` and ``radar_classification_loss_weight``.
REGRESSION_WEIGHT, CLASSIFICATION_WEIGHT = 5.0, 1.0


def _scale(cfg: TFv6Config, device: torch.device) -> torch.Tensor:
    x0, x1, y0, y1 = cfg.bev_extent_m
    return torch.tensor([x1 - x0, y1 - y0, cfg.max_speed_mps], dtype=torch.float32, device=device)


def hungarian(cost: np.ndarray) -> np.ndarray:
    """``cost (B, Q, Q)`` -> ``(B, Q)`` label index matched to each prediction (minimum total cost per sample)."""
    from scipy.optimize import linear_sum_assignment

    out = np.empty(cost.shape[:2], dtype=np.int64)
    for b in range(cost.shape[0]):
        rows, cols = linear_sum_assignment(cost[b])
        out[b, rows] = cols
    return out


def radar_loss_per_sample(pred: torch.Tensor, detections: torch.Tensor, cfg: TFv6Config) -> torch.Tensor:
    """``pred (B, Q, 4)`` (x, y, v, logit) against ``detections (B, Q, 4)`` (x, y, v, valid) -> ``(B,)``."""
    if torch.cuda.is_available() and torch.cuda.is_current_stream_capturing():
        raise RuntimeError("the radar loss matches on the CPU (Hungarian); it cannot run inside a CUDA graph")
    scale = _scale(cfg, pred.device)
    p_state, p_logit = pred[..., :3].float(), pred[..., 3].float()
    g_state, g_valid = detections[..., :3].float(), detections[..., 3].float()
    with torch.no_grad():
        l1 = ((p_state[:, :, None] - g_state[:, None]) / scale).abs().sum(-1) * g_valid[:, None]  # (B, Qp, Qg)
        ce = F.binary_cross_entropy_with_logits(p_logit[:, :, None].expand_as(l1), g_valid[:, None].expand_as(l1),
                                                reduction="none")
        cost = REGRESSION_WEIGHT * l1 + CLASSIFICATION_WEIGHT * ce
        match = torch.from_numpy(hungarian(cost.cpu().numpy())).to(pred.device)  # (B, Q): label of prediction i
    g_state_m = torch.gather(g_state, 1, match[..., None].expand(-1, -1, 3))
    g_valid_m = torch.gather(g_valid, 1, match)
    state = (((p_state - g_state_m) / scale).abs().sum(-1) * g_valid_m).sum(-1) / g_valid_m.sum(-1).clamp(min=1)
    cls = F.binary_cross_entropy_with_logits(p_logit, g_valid_m, reduction="none").mean(-1)
    return REGRESSION_WEIGHT * state + CLASSIFICATION_WEIGHT * cls


def radar_loss(pred: torch.Tensor, target: RadarTarget, cfg: TFv6Config) -> torch.Tensor:
    """Batch radar loss: the per-sample loss averaged over samples with radar labels (0 when none has)."""
    per = radar_loss_per_sample(pred, target.detections, cfg)
    v = target.valid.to(torch.bool)
    return torch.where(v, per, torch.zeros_like(per)).sum() / v.sum().clamp(min=1).to(per.dtype)
