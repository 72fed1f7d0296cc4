"""Our timm-named backbones equal timm's (keys, shapes and features for the same weights). Needs timm (the
GPU machine has it; the CPU development machines do not, so this module skips there)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from harness.model.backbones import build_backbone, load_timm_weights

timm = pytest.importorskip("timm")

FIXTURE = Path(__file__).with_name("timm_backbone_keys.json")


@pytest.mark.parametrize("name", ["resnet34", "regnety_032"])
def test_timm_keys_equal_fixture_and_ours(name):
    ref = timm.create_model(name, pretrained=False, features_only=True)
    keys = {k: list(v.shape) for k, v in ref.state_dict().items()}
    assert keys == json.loads(FIXTURE.read_text())[name]
    assert keys == {k: list(v.shape) for k, v in build_backbone(name).state_dict().items()}


@pytest.mark.parametrize("name", ["resnet34", "regnety_032"])
def test_features_equal_timm_for_same_weights(name, tmp_path):
    torch.manual_seed(0)
    full = timm.create_model(name, pretrained=False)  # classifier format, as ImageNet weights ship
    for m in full.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
    path = tmp_path / "w.pth"
    torch.save(full.state_dict(), path)
    ours = build_backbone(name).eval()
    skipped = load_timm_weights(ours, path)
    assert skipped and all(k.startswith(("fc.", "head.")) for k in skipped)
    ref = timm.create_model(name, pretrained=False, features_only=True).eval()
    ref.load_state_dict({k: v for k, v in full.state_dict().items() if k in ref.state_dict()})
    x = torch.randn(2, 3, 70, 150)
    with torch.no_grad():
        feats_ref = ref(x)
        y = ours.forward_stem(x)
        feats = [y]
        for i in range(4):
            y = ours.forward_stage(i, y)
            feats.append(y)
    assert len(feats) == len(feats_ref) == 5
    for a, b in zip(feats, feats_ref):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
