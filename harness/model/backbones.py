"""CNN backbones in plain torch whose parameter names equal timm's, so timm-format weights load directly.

``resnet34`` / ``resnet18`` follow timm's ``ResNet`` (``conv1``, ``bn1``, ``layer{1..4}.{j}.conv1/bn1/conv2/bn2``,
``downsample.0/1``) and ``regnety_032`` timm's ``RegNet`` (``stem.conv/bn``, ``s{1..4}.b{j}.conv1/conv2/conv3``
as conv + bn pairs, ``se.fc1/fc2``, ``downsample.conv/bn``). The classifier (``fc`` / ``head.fc``) is not built:
TFv6 uses the 4 stages only, like timm's ``features_only`` models. ``resnet_tiny`` (1 block per stage, widths
16..128) is lead-bench's own CPU-sized variant, not a timm model.

Each backbone exposes ``forward_stem(x)`` (stride 2, not a fusion level) and ``forward_stage(i, x)`` for
i = 0..3 (strides 4, 8, 16, 32), so TFv6 can step two backbones in lock-step; ``channels`` lists the 4 stages'
widths and :func:`feature_sizes` their spatial sizes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from harness.errors import ConfigError, DataError


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, 0, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        skip = x if self.downsample is None else self.downsample(x)
        return F.relu(out + skip, inplace=True)


class ResNet(nn.Module):
    """timm-compatible ResNet with basic blocks (ResNet-18/34).

    ``pad_stem_channels`` (default 4): a 3-channel input and the stem weight are zero-padded to this many
    channels before the 7x7 convolution (the same function; channels-last convolution kernels are much
    faster for 4 input channels than for 3). 0 turns the padding off."""

    pad_stem_channels = 4

    def __init__(self, depths: tuple[int, ...], widths: tuple[int, ...], in_chans: int = 3, stem_width: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(in_chans, stem_width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_width)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = stem_width
        for i, (d, w) in enumerate(zip(depths, widths)):
            blocks = [_BasicBlock(cin if j == 0 else w, w, (1 if i == 0 else 2) if j == 0 else 1) for j in range(d)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            cin = w
        self.channels = tuple(widths)
        self.stem_channels = stem_width
        self._init()

    def _init(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():  # residual branches start as identity (timm's zero_init_last)
            if isinstance(m, _BasicBlock):
                nn.init.zeros_(m.bn2.weight)

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        if 0 < c < self.pad_stem_channels and x.is_contiguous(memory_format=torch.channels_last):
            pad = self.pad_stem_channels - c
            xp = F.pad(x.permute(0, 2, 3, 1), (0, pad)).permute(0, 3, 1, 2)  # stays channels-last
            w = F.pad(self.conv1.weight, (0, 0, 0, 0, 0, pad))
            y = F.conv2d(xp, w, None, 2, 3)
        else:
            y = self.conv1(x)
        return F.relu(self.bn1(y), inplace=True)

    def forward_stage(self, i: int, x: torch.Tensor) -> torch.Tensor:
        if i == 0:
            x = self.maxpool(x)
        return getattr(self, f"layer{i + 1}")(x)


class _ConvBN(nn.Module):
    """timm's ConvNormAct: ``conv`` (no bias) + ``bn``; the activation is applied by the caller."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, ((stride - 1) + (k - 1)) // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class _SE(nn.Module):
    def __init__(self, ch: int, rd: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(ch, rd, 1)
        self.fc2 = nn.Conv2d(rd, ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(s), inplace=True)))


class _RegBottleneck(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, group_size: int, se_ratio: float) -> None:
        super().__init__()
        self.conv1 = _ConvBN(cin, cout, 1)
        self.conv2 = _ConvBN(cout, cout, 3, stride, groups=cout // group_size)
        self.se = _SE(cout, int(round(cin * se_ratio))) if se_ratio else None
        self.conv3 = _ConvBN(cout, cout, 1)
        self.downsample = _ConvBN(cin, cout, 1, stride) if (cin != cout or stride != 1) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.conv1(x), inplace=True)
        out = F.relu(self.conv2(out), inplace=True)
        if self.se is not None:
            out = self.se(out)
        out = self.conv3(out)
        skip = x if self.downsample is None else self.downsample(x)
        return F.relu(out + skip, inplace=True)


def regnet_stages(w0: int, wa: float, wm: float, depth: int, group_size: int, quant: int = 8
                  ) -> list[tuple[int, int, int]]:
    """(width, depth, group size) per stage from the RegNet design-space parameters (Radosavovic et al. 2020):
    block j's width w0 + wa * j is snapped to w0 * wm^k (rounded to ``quant``), equal widths form a stage, and
    each stage width is rounded to a multiple of its group size."""
    widths = []
    for j in range(depth):
        k = round(math.log((w0 + wa * j) / w0) / math.log(wm))
        widths.append(int(round(w0 * wm**k / quant) * quant))
    out: list[tuple[int, int, int]] = []
    for w in sorted(set(widths)):
        g = min(group_size, w)
        out.append((int(round(w / g) * g), widths.count(w), g))
    return out


class RegNet(nn.Module):
    """timm-compatible RegNetY (SE after the grouped conv, ReLU, 1x1 shortcut convs)."""

    def __init__(self, stages: list[tuple[int, int, int]], in_chans: int = 3, stem_width: int = 32,
                 se_ratio: float = 0.25) -> None:
        super().__init__()
        if len(stages) != 4:
            raise ConfigError(f"RegNet: expected 4 stages, got {len(stages)}")
        self.stem = _ConvBN(in_chans, stem_width, 3, 2)
        cin = stem_width
        for i, (w, d, g) in enumerate(stages):
            blocks = {f"b{j + 1}": _RegBottleneck(cin if j == 0 else w, w, 2 if j == 0 else 1, g, se_ratio)
                      for j in range(d)}
            self.add_module(f"s{i + 1}", _Stage(blocks))
            cin = w
        self.channels = tuple(w for w, _, _ in stages)
        self.stem_channels = stem_width
        self._init()

    def _init(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, _RegBottleneck):
                nn.init.zeros_(m.conv3.bn.weight)

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.stem(x), inplace=True)

    def forward_stage(self, i: int, x: torch.Tensor) -> torch.Tensor:
        return getattr(self, f"s{i + 1}")(x)


class _Stage(nn.Module):
    def __init__(self, blocks: Mapping[str, nn.Module]) -> None:
        super().__init__()
        for name, b in blocks.items():
            self.add_module(name, b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for b in self.children():
            x = b(x)
        return x


Backbone = ResNet | RegNet


def feature_sizes(n: int) -> list[int]:
    """Spatial size (one axis) after the stem and after each of the 4 stages for an input of ``n`` pixels.

    Every down-sampling step of both families (7x7/2 pad 3, 3x3/2 pad 1, max-pool 3/2 pad 1) maps n to
    ceil(n / 2)."""
    sizes = []
    for _ in range(5):
        n = (n + 1) // 2
        sizes.append(n)
    return sizes


def build_backbone(name: str, in_chans: int = 3) -> Backbone:
    """A backbone by timm name (see module docstring)."""
    if name == "resnet34":
        return ResNet((3, 4, 6, 3), (64, 128, 256, 512), in_chans)
    if name == "resnet18":
        return ResNet((2, 2, 2, 2), (64, 128, 256, 512), in_chans)
    if name == "resnet_tiny":
        return ResNet((1, 1, 1, 1), (16, 32, 64, 128), in_chans, stem_width=16)
    if name == "regnety_032":
        return RegNet(regnet_stages(80, 42.63, 2.66, 21, 24), in_chans)
    raise ConfigError(f"unknown backbone {name!r}; known: resnet34, resnet18, resnet_tiny, regnety_032")


_CLASSIFIER_PREFIXES = ("fc.", "head.", "final_conv.")


def load_timm_weights(backbone: nn.Module, path: str | Path, *, strict: bool = True) -> list[str]:
    """Load timm-format weights (a state dict saved with ``torch.save`` or a ``.safetensors`` file) into a
    backbone built by :func:`build_backbone`. Classifier keys (``fc.*``, ``head.*``) are skipped.

    Returns the skipped keys. Raises :class:`DataError` naming missing / unexpected keys or shape mismatches
    (with ``strict``); the file is read with ``weights_only=True``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such weights file")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise DataError(f"{path}: reading .safetensors needs the 'safetensors' package") from exc
        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise DataError(f"{path}: expected a state dict, got {type(state).__name__}")
    skipped = sorted(k for k in state if k.startswith(_CLASSIFIER_PREFIXES))
    state = {k: v for k, v in state.items() if k not in skipped}
    own = backbone.state_dict()
    bad_shape = [f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
                 for k, v in state.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if bad_shape or (strict and (missing or unexpected)):
        raise DataError(f"{path}: timm weights do not fit the backbone: missing {missing[:8]}"
                        f"{'...' if len(missing) > 8 else ''}, unexpected {unexpected[:8]}"
                        f"{'...' if len(unexpected) > 8 else ''}, shape mismatches {bad_shape[:8]}")
    backbone.load_state_dict(state, strict=strict)
    return skipped
