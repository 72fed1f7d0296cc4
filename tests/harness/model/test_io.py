"""The typed interface: validation names the field, presets, config round trip, device moves."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from harness.model import BEVSemanticTarget, ModelInputs, ModelTargets, TFv6Config
from harness.model.io import PRESETS

from ._batch import tiny_batch


def test_presets_and_geometry():
    nav = TFv6Config.preset("navsim-r34")
    assert (nav.image_height, nav.image_width) == (270, 1920)
    assert (nav.bev_height_px, nav.bev_width_px) == (256, 256) and nav.grid_shape == (64, 64)
    assert nav.image_anchors == (8, 60) and nav.bev_anchors == (8, 8)  # 480 + 64 fusion tokens (spec §1.3)
    assert nav.num_status_tokens == 3 and nav.latent
    carla = TFv6Config.preset("carla-r34")
    assert (carla.bev_height_px, carla.bev_width_px) == (384, 320)  # rows = x (96 m), columns = y (80 m)
    assert carla.num_status_tokens == 25 and not carla.latent  # speed, command, 3 TPs, 20 radar (spec §1.4)
    assert TFv6Config.preset("tiny", num_waypoints=6).num_waypoints == 6
    with pytest.raises(ValueError, match="unknown TFv6 preset"):
        TFv6Config.preset("nope")


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_config_dict_round_trip(name):
    cfg = PRESETS[name]
    assert TFv6Config.from_dict(cfg.to_dict()) == cfg
    d = {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.to_dict().items()}  # as read from YAML/JSON
    assert TFv6Config.from_dict(d) == cfg


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="unknown keys"):
        TFv6Config.from_dict({"num_waypoint": 8})
    with pytest.raises(ValueError, match="unknown backbone"):
        TFv6Config(image_backbone="vit")
    with pytest.raises(ValueError, match="multiple of 32"):
        TFv6Config(bev_extent_m=(-30.0, 30.0, -32.0, 32.0))
    with pytest.raises(ValueError, match="unique"):
        TFv6Config(bev_semantic_classes=(("navsim", 7), ("navsim", 3)))


def test_inputs_validation_names_the_field():
    inputs, targets = tiny_batch(TFv6Config.preset("tiny"))
    with pytest.raises(ValueError, match="ModelInputs.speed_mps"):
        replace(inputs, speed_mps=torch.zeros(3))
    with pytest.raises(ValueError, match="ModelInputs.command"):
        replace(inputs, command=torch.zeros(2, 6))
    with pytest.raises(ValueError, match="past_valid given without past_poses"):
        replace(inputs, past_poses=None, past_valid=torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="ModelTargets.waypoints_valid"):
        replace(targets, waypoints_valid=torch.ones(2, 8))  # must be bool
    with pytest.raises(ValueError, match="come together"):
        replace(targets, headings_valid=None)
    with pytest.raises(ValueError, match="BEVSemanticTarget.valid"):
        BEVSemanticTarget(torch.zeros(2, 4, 4, dtype=torch.long), torch.ones(3, dtype=torch.bool))


def test_to_moves_nested_tensors_and_keeps_types():
    inputs, targets = tiny_batch(TFv6Config.preset("tiny"))
    moved = targets.to("cpu")
    assert isinstance(moved, ModelTargets) and isinstance(moved.bev_semantic["navsim"], BEVSemanticTarget)
    assert isinstance(inputs.to("cpu"), ModelInputs) and inputs.batch_size == 2
