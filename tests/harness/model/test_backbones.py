"""Backbones: timm parameter names and shapes (fixture derived from timm's source), RegNet stage derivation,
feature sizes, weight loading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from harness.errors import DataError
from harness.model.backbones import ResNet, build_backbone, feature_sizes, load_timm_weights, regnet_stages

FIXTURE = json.loads(Path(__file__).with_name("timm_backbone_keys.json").read_text())


@pytest.mark.parametrize("name", ["resnet34", "regnety_032"])
def test_state_dict_keys_and_shapes_equal_timm(name):
    own = {k: list(v.shape) for k, v in build_backbone(name).state_dict().items()}
    assert own == FIXTURE[name]


def test_regnety_032_stages():
    # timm's regnety_032: widths 72 / 216 / 576 / 1512, depths 2 / 5 / 13 / 1, group width 24
    assert regnet_stages(80, 42.63, 2.66, 21, 24) == [(72, 2, 24), (216, 5, 24), (576, 13, 24), (1512, 1, 24)]
    assert build_backbone("regnety_032").channels == (72, 216, 576, 1512)
    assert build_backbone("resnet34").channels == (64, 128, 256, 512)


@pytest.mark.parametrize("name", ["resnet_tiny", "regnety_032"])
def test_feature_sizes_match_forward(name):
    m = build_backbone(name).eval()
    x = torch.randn(1, 3, 37, 70)
    with torch.no_grad():
        y = m.forward_stem(x)
        shapes = [tuple(y.shape[2:])]
        for i in range(4):
            y = m.forward_stage(i, y)
            shapes.append(tuple(y.shape[2:]))
    assert shapes == list(zip(feature_sizes(37), feature_sizes(70)))
    assert feature_sizes(270) == [135, 68, 34, 17, 9] and feature_sizes(1920)[-1] == 60


def test_padded_stem_is_the_same_function():
    m = build_backbone("resnet_tiny").eval()
    x = torch.randn(2, 3, 20, 30).to(memory_format=torch.channels_last)
    with torch.no_grad():
        a = m.forward_stem(x)
        old = ResNet.pad_stem_channels
        try:
            ResNet.pad_stem_channels = 0
            b = m.forward_stem(x)
        finally:
            ResNet.pad_stem_channels = old
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_load_timm_weights_round_trip_skips_classifier(tmp_path):
    src = build_backbone("resnet34")
    state = dict(src.state_dict())
    state["fc.weight"] = torch.zeros(1000, 512)
    state["fc.bias"] = torch.zeros(1000)
    torch.save(state, tmp_path / "r34.pth")
    dst = build_backbone("resnet34")
    assert load_timm_weights(dst, tmp_path / "r34.pth") == ["fc.bias", "fc.weight"]
    for k, v in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v)


def test_load_timm_weights_errors(tmp_path):
    m = build_backbone("resnet_tiny")
    with pytest.raises(DataError, match="no such"):
        load_timm_weights(m, tmp_path / "missing.pth")
    state = dict(m.state_dict())
    state.pop("conv1.weight")
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(DataError, match="missing.*conv1.weight"):
        load_timm_weights(m, tmp_path / "partial.pth")
    state = dict(m.state_dict())
    state["conv1.weight"] = torch.zeros(16, 2, 7, 7)
    torch.save(state, tmp_path / "shape.pth")
    with pytest.raises(DataError, match="shape mismatches"):
        load_timm_weights(m, tmp_path / "shape.pth")
    torch.save({"a": {"b": 1}}, tmp_path / "odd.pth")
    with pytest.raises(DataError):
        load_timm_weights(m, tmp_path / "odd.pth")
