"""Typed training configuration: presets, YAML files, --set overrides, unknown keys."""

from __future__ import annotations

import pytest

from harness.errors import ConfigError
from harness.training.config import TRAIN_PRESETS, TrainConfig, dump_yaml, load_config, preset_config


def test_overrides_convert_to_the_field_types():
    cfg = load_config("tiny", overrides=["optim.lr=2e-3", "data.sources=navsim,waymo", "model.token_dim=32",
                                         "augment.view_prob=0.5", "model.bev_extent_m=[-8,8,-8,8]",
                                         "compile=true", "data.navsim_root=none"])
    assert cfg.optim.lr == 2e-3 and cfg.data.sources == ("navsim", "waymo") and cfg.model.token_dim == 32
    assert cfg.augment.view_prob == 0.5 and cfg.model.bev_extent_m == (-8.0, 8.0, -8.0, 8.0)
    assert cfg.compile == "on" and cfg.data.navsim_root is None  # booleans map to on | off


@pytest.mark.parametrize("item, match", [
    ("optim.lrr=1", "unknown config key 'optim.lrr'; known keys here: amsgrad"),
    ("nope=1", "unknown config key 'nope'"),
    ("batch_size=abc", "config key 'batch_size': cannot use 'abc'"),
    ("batch_size=1.5", "cannot use .1.5. as"),
    ("data.sources=kitti", "unknown source 'kitti'"),
    ("model.image_backbone=vgg", "unknown backbone"),
    ("batch_size", "expects key=value"),
    ("lr.x=1", "unknown config key 'lr.x'"),
    ("max_steps.x=1", "is a value, not a section"),
])
def test_bad_overrides_name_the_key(item, match):
    with pytest.raises(ConfigError, match=match):
        load_config("tiny", overrides=[item])


def test_yaml_file_then_set(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("batch_size: 4\noptim:\n  lr: 0.01\n  schedule: restarts\nmodel:\n  planner_layers: 1\n")
    cfg = load_config("tiny", f, ["optim.lr=0.02"])
    assert (cfg.batch_size, cfg.optim.lr, cfg.optim.schedule, cfg.model.planner_layers) == (4, 0.02, "restarts", 1)
    f.write_text("optim:\n  learning_rate: 1\n")
    with pytest.raises(ConfigError, match="unknown config key 'optim.learning_rate'"):
        load_config("tiny", f)


def test_round_trip_through_dict_and_yaml(tmp_path):
    cfg = load_config("tiny-carla", overrides=["data.ratios=1,3", "seed=3"])
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    f = tmp_path / "dump.yaml"
    f.write_text(dump_yaml(cfg))
    assert load_config("tiny", f) == cfg  # the file names its preset


def test_every_preset_builds_and_checks():
    for name in TRAIN_PRESETS:
        cfg = preset_config(name)
        assert cfg.preset == name
    with pytest.raises(ConfigError, match="unknown training preset"):
        preset_config("huge")
    with pytest.raises(ConfigError, match="one non-negative weight per source"):
        load_config("tiny", overrides=["data.ratios=1,2"])
    with pytest.raises(ConfigError, match="sim_to_real needs"):
        load_config("tiny", overrides=["data.sim_to_real=true"])
