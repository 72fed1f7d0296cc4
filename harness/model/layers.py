"""Building blocks of TFv6: separable resampling by matrix products, the fusion transformer, sine embeddings.

Bilinear resizing (``align_corners=False``) and adaptive average pooling are both separable: the output is
``R @ X @ C^T`` for a row matrix ``R (H', H)`` and a column matrix ``C (W', W)``. Doing them as two small matrix
products (with the axis order that costs fewer operations) is exact and, unlike ``F.interpolate``'s CUDA
backward, needs no atomics; on channels-last tensors both products read and write contiguous memory.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def bilinear_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """``(n_out, n_in)`` weights of 1-D linear interpolation with ``align_corners=False`` (PyTorch's rule:
    source = (i + 0.5) * n_in / n_out - 0.5, clamped at 0)."""
    scale = n_in / n_out
    src = ((torch.arange(n_out, dtype=torch.float64) + 0.5) * scale - 0.5).clamp(min=0.0)
    i0 = src.floor().long().clamp(max=n_in - 1)
    i1 = (i0 + 1).clamp(max=n_in - 1)
    lam = src - i0.to(torch.float64)
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    rows = torch.arange(n_out)
    m.index_put_((rows, i0), 1.0 - lam, accumulate=True)
    m.index_put_((rows, i1), lam, accumulate=True)
    return m.float()


def avg_pool_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """``(n_out, n_in)`` weights of 1-D adaptive average pooling (bin i = [floor(i n/m), ceil((i+1) n/m)))."""
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    for i in range(n_out):
        a, b = (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)
        m[i, a:b] = 1.0 / (b - a)
    return m.float()


class Resample(nn.Module):
    """Fixed separable resampling ``(B, C, H, W) -> (B, C, H', W')`` (bilinear or adaptive average).

    ``Resample.native = True`` switches every instance to ``F.interpolate`` / ``F.adaptive_avg_pool2d`` (the
    same function; kept as the benchmark's baseline)."""

    native = False

    def __init__(self, size_in: tuple[int, int], size_out: tuple[int, int], mode: str) -> None:
        super().__init__()
        self.mode = mode
        make = {"bilinear": bilinear_matrix, "avg": avg_pool_matrix}[mode]
        (h, w), (h2, w2) = size_in, size_out
        self.size_in, self.size_out = (h, w), (h2, w2)
        self.register_buffer("rows", make(h, h2), persistent=False)
        self.register_buffer("cols", make(w, w2), persistent=False)
        # operations of the two orders: rows first vs columns first
        self.rows_first = h2 * h * w + h2 * w2 * w <= h * w2 * w + h2 * h * w2
        self.identity = (h, w) == (h2, w2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        if (h, w) != self.size_in:
            raise ValueError(f"Resample: expected input {self.size_in}, got {(h, w)}")
        if self.identity:
            return x
        h2, w2 = self.size_out
        if Resample.native:
            if self.mode == "avg":
                return F.adaptive_avg_pool2d(x, (h2, w2))
            return F.interpolate(x, size=(h2, w2), mode="bilinear", align_corners=False)
        r = self.rows.to(x.dtype)
        cm = self.cols.to(x.dtype)
        if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
            t = x.permute(0, 2, 3, 1)  # (B, H, W, C), contiguous
            if self.rows_first:
                t = torch.matmul(r, t.reshape(b, h, w * c)).reshape(b * h2, w, c)
                t = torch.matmul(cm, t)
            else:
                t = torch.matmul(cm, t.reshape(b * h, w, c)).reshape(b, h, w2 * c)
                t = torch.matmul(r, t)
            return t.reshape(b, h2, w2, c).permute(0, 3, 1, 2)
        x = x.contiguous()
        if self.rows_first:
            return torch.matmul(torch.matmul(r, x), cm.t())
        return torch.matmul(r, torch.matmul(x, cm.t()))


class FusionBlock(nn.Module):
    """Pre-LayerNorm transformer block: SDPA self-attention and a ReLU MLP."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int, dropout: float) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ln2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, mlp_ratio * dim)
        self.fc2 = nn.Linear(mlp_ratio * dim, dim)
        self.heads = heads
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).reshape(b, t, c)
        x = x + F.dropout(self.proj(y), self.dropout, self.training)
        y = self.fc2(F.relu(self.fc1(self.ln2(x)), inplace=True))
        return x + F.dropout(y, self.dropout, self.training)


class FusionTransformer(nn.Module):
    """TransFuser's per-stage GPT over image tokens followed by BEV tokens: learned positional embedding
    (zero-initialised), embedding dropout, pre-LN blocks, final LayerNorm. Linears start N(0, 0.02)."""

    def __init__(self, dim: int, num_tokens: int, layers: int, heads: int, mlp_ratio: int, dropout: float):
        super().__init__()
        self.pos_emb = nn.Parameter(torch.zeros(1, num_tokens, dim))
        self.blocks = nn.ModuleList(FusionBlock(dim, heads, mlp_ratio, dropout) for _ in range(layers))
        self.ln_f = nn.LayerNorm(dim)
        self.dropout = dropout
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = F.dropout(tokens + self.pos_emb, self.dropout, self.training)
        for blk in self.blocks:
            x = blk(x)
        return self.ln_f(x)


def sine_embedding_2d(h: int, w: int, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """``(h * w, dim)`` normalised 2-D sine embedding (DETR style): dim/2 features per axis, y first, then x;
    positions (1..n)/n * 2 pi; interleaved sin/cos per frequency."""
    half = dim // 2
    y = torch.arange(1, h + 1, dtype=torch.float64) / (h + 1e-6) * 2 * math.pi
    x = torch.arange(1, w + 1, dtype=torch.float64) / (w + 1e-6) * 2 * math.pi
    k = torch.arange(half, dtype=torch.float64)
    freq = temperature ** (2 * torch.div(k, 2, rounding_mode="floor") / half)

    def emb(p: torch.Tensor) -> torch.Tensor:
        a = p[:, None] / freq  # (n, half)
        return torch.stack((a[:, 0::2].sin(), a[:, 1::2].cos()), dim=2).flatten(1)

    ey, ex = emb(y), emb(x)  # (h, half), (w, half)
    out = torch.cat((ey[:, None, :].expand(h, w, half), ex[None, :, :].expand(h, w, half)), dim=2)
    return out.reshape(h * w, 2 * half).float()


def conv3x3_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True))
