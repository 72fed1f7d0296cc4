"""Canonical samples -> model inputs/targets on the small embedded world (NAVSIM and Waymo rigs)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from adapters.navsim.bev_semantic import NAVSIM_BEV_CLASSES
from adapters.navsim.reader import NavsimReader, SensorSelection
from harness.errors import ConfigError, DataError
from harness.model.io import TFv6Config, TFv6Prediction
from harness.model.losses import tfv6_losses
from harness.training.config import load_config
from harness.training.inputs import (
    AugmentSpec,
    InputSpec,
    collate,
    encode_observation,
    encode_sample,
    encode_targets,
)
from harness.training.sources import SourceRoots, navsim_label_grid, open_source
from harness.training.views import ViewAugment
from harness.trajectory import Trajectory, TrajectorySampling
from harness.types import BEVRaster

CFG = TFv6Config.preset("tiny", image_width=192, num_waypoints=10)
SPEC = InputSpec(CFG, {"navsim": "navsim_3cam", "waymo": "waymo_front_3cam", "carla": "navsim_3cam"})


@pytest.fixture(scope="module")
def sample(small_world_root):
    reader = NavsimReader(small_world_root, "train")
    refs = reader.index()
    return reader.load(refs[len(refs) // 2], SensorSelection(cameras=("CAM_L0", "CAM_F0", "CAM_R0")))


def test_observation_encoding(sample):
    enc = encode_observation(sample.observation, "navsim", SPEC)
    assert enc.image.shape == (3, 64, 192) and enc.image.dtype == np.uint8
    assert enc.image[:, :40].std() > 0  # the cameras are drawn, not black
    assert enc.speed_mps == pytest.approx(sample.observation.ego.velocity_mps[0])
    assert enc.command.sum() == 1
    # past poses at -2.0, -1.5, -1.0, -0.5 s: NAVSIM keeps 1.5 s of history, so the oldest is missing
    assert enc.past_valid.tolist() == [False, True, True, True]
    hist = sample.observation.ego.history_poses
    np.testing.assert_allclose(enc.past_poses[1:], hist[:-1], atol=1e-5)
    assert np.all(enc.past_poses[0] == 0)


def test_missing_rig_camera_is_an_error(sample):
    with pytest.raises(DataError, match="needs camera CAM_B0"):
        encode_observation(sample.observation, "navsim", replace(SPEC, rigs={"navsim": "navsim_4cam"}))


def test_waypoints_resampled_with_a_validity_mask(sample):
    t = encode_targets(sample, "navsim", replace(SPEC, model=replace(CFG, num_waypoints=12)))
    fut = sample.targets.future
    assert fut.sampling.time_horizon_s == pytest.approx(5.0)  # the world's scenes log 10 frames at 0.5 s
    assert t.waypoints_valid.tolist() == [True] * 10 + [False] * 2  # 12 waypoints asked, 5 s logged
    np.testing.assert_allclose(t.waypoints[:10], fut.xy, atol=1e-5)
    np.testing.assert_allclose(t.headings[:10], fut.poses[:, 2], atol=1e-5)
    assert np.all(t.waypoints[10:] == 0)
    assert "navsim" in t.boxes and "navsim" not in t.bev  # NAVSIM samples carry boxes, no BEV raster


def test_augmentation_moves_targets_like_the_ego(sample):
    aug = ViewAugment(0.8, np.deg2rad(4.0))
    plain, moved = encode_targets(sample, "navsim", SPEC), encode_targets(sample, "navsim", SPEC, aug)
    np.testing.assert_allclose(moved.waypoints, aug.points_xy(plain.waypoints), atol=1e-5)
    np.testing.assert_allclose(moved.headings, plain.headings - np.deg2rad(4.0), atol=1e-5)
    obs = encode_observation(sample.observation, "navsim", SPEC, aug)
    v = sample.observation.ego.velocity_mps
    assert obs.speed_mps == pytest.approx(aug.vectors_xy(v)[0])


def test_encode_sample_is_deterministic_for_a_seed(sample):
    aug = AugmentSpec(view_prob=1.0, colour_prob=1.0)
    a = encode_sample(sample, SPEC, aug, np.random.default_rng(5))
    b = encode_sample(sample, SPEC, aug, np.random.default_rng(5))
    c = encode_sample(sample, SPEC, aug, np.random.default_rng(6))
    np.testing.assert_array_equal(a.obs.image, b.obs.image)
    np.testing.assert_array_equal(a.targets.waypoints, b.targets.waypoints)
    assert not np.array_equal(a.targets.waypoints, c.targets.waypoints)


def test_collate_masks_labels_a_source_lacks(sample):
    cfg = replace(CFG, bev_semantic_classes=(("navsim", 7), ("carla", 3)), box_classes=(("navsim", 1),))
    spec = replace(SPEC, model=cfg)
    grid = np.zeros((64, 64), np.uint8)
    grid[:32] = 2
    carla_like = replace(sample, meta=replace(sample.meta, source=type(sample.meta.source)("carla")),
                         targets=replace(sample.targets, bev=BEVRaster(grid, ("a", "b", "c"), 0.5,
                                                                       (-16.0, 16.0, -16.0, 16.0)), boxes=None))
    short = replace(sample, targets=replace(sample.targets, future=Trajectory(
        sample.targets.future.poses[:2], TrajectorySampling(2, 0.5))))
    items = [encode_sample(s, spec) for s in (sample, carla_like, short)]
    inputs, targets = collate(items, cfg)
    assert inputs.images.shape == (3, 3, 64, 192)
    assert targets.bev_semantic["carla"].valid.tolist() == [False, True, False]
    assert "navsim" not in targets.bev_semantic  # no NAVSIM sample has a raster: no target at all
    assert targets.boxes["navsim"].valid.tolist() == [True, False, True]
    assert targets.waypoints_valid.sum(1).tolist() == [10, 10, 2]
    bev = targets.bev_semantic["carla"].classes[1]
    assert (bev[:32] == 2).all() and (bev[32:] == 0).all()
    assert (targets.bev_semantic["carla"].classes[0] == -1).all()


def test_carla_source_carries_perception_labels(small_world, tmp_path):
    from adapters.carla.writer import CarlaWriteOptions, write_carla_world
    from harness.training.config import load_config
    from harness.training.data import MixedBatchSampler, MixedData, MixPlan, make_collate
    from harness.training.sources import SourceRoots, open_source

    name = small_world.splits["train"][0]
    root = write_carla_world(small_world, tmp_path, CarlaWriteOptions(rig="navsim_4cam", camera_scale=0.1,
                                                                      perturbed=False, max_frames=3), logs=[name])
    cfg = load_config("tiny-carla", overrides=["model.image_width=192", "data.sources=carla",
                                               "augment.view_prob=1.0", "model.target_speed_classes_mps=[0,4,8,10]"])
    src = open_source("carla", cfg, SourceRoots(carla=root))
    assert len(src) + len(src.skipped) == 3
    keys = MixedBatchSampler(MixPlan(("carla",), (len(src),), 2, 1), max_steps=1).batch(0)
    inputs, targets, sources = make_collate(cfg.input_spec())([MixedData([src])[k] for k in keys])
    assert sources == ["carla", "carla"] and inputs.images.shape == (2, 3, 64, 192)
    assert targets.bev_semantic["carla"].valid.all() and "navsim" not in targets.bev_semantic
    assert targets.boxes["carla"].valid.all()
    sem = targets.image_semantic.classes
    assert targets.image_semantic.valid.all() and sem.max() > 0 and (sem >= -1).all() and sem.max() < 10
    assert torch.isfinite(targets.depth.depth_m).any()
    assert targets.waypoints_valid.any()
    assert targets.target_speed_valid.all() and (targets.target_speed_mps >= 0).all()  # LEAD's metas carry it


def test_target_speed_labels_where_the_source_has_them(sample):
    cfg = replace(CFG, target_speed_classes_mps=(0.0, 4.0, 8.0))
    spec = replace(SPEC, model=cfg)
    labelled = replace(sample, targets=replace(sample.targets, target_speed_mps=6.0, brake=False))
    braking = replace(sample, targets=replace(sample.targets, target_speed_mps=5.0, brake=True))
    _, t = collate([encode_sample(s, spec) for s in (sample, labelled, braking)], cfg)
    assert t.target_speed_valid.tolist() == [False, True, True]  # NAVSIM has no target speed: masked
    assert t.target_speed_mps.tolist() == [0.0, 6.0, 5.0] and t.brake.tolist() == [False, False, True]
    # two-hot of 6 m/s over (0, 4, 8) is (0, .5, .5); braking forces class 0; the unlabelled row is ignored
    probs = torch.tensor([[0.9, 0.05, 0.05], [0.2, 0.4, 0.4], [0.5, 0.25, 0.25]])
    out = tfv6_losses(TFv6Prediction(waypoints_m=t.waypoints_m, target_speed_logits=probs.log()), t, cfg)
    assert out["target_speed"].item() == pytest.approx((-np.log(0.4) - np.log(0.5)) / 2, rel=1e-6)
    # a model without the head gets no target-speed label at all
    _, t0 = collate([encode_sample(labelled, SPEC)], CFG)
    assert t0.target_speed_mps is None


def test_navsim_source_supervises_bev_semantics(small_world_root):
    cfg = load_config("tiny", overrides=["model.image_width=192", "augment.view_prob=1.0",
                                         "data.rig_navsim=navsim_3cam"])
    src = open_source("navsim", cfg, SourceRoots(navsim=small_world_root))
    raster = src._get(3)[0].targets.bev
    grid = navsim_label_grid(cfg)
    assert raster.vocabulary == NAVSIM_BEV_CLASSES and raster.extent_m == grid.extent_m
    margin = round((grid.extent_m[1] - cfg.model.bev_extent_m[1]) * cfg.model.bev_pixels_per_m)
    assert margin >= 2  # 1 m shift + 5 deg at the corner of a 32 m square, in 0.5 m cells
    plain = src[(3, -1)].targets.bev["navsim"]  # no augmentation: the model's grid cut out of the raster
    np.testing.assert_array_equal(plain, raster.classes[margin:-margin, margin:-margin])
    moved = [src[(3, seed)] for seed in (1, 2)]
    assert all((m.targets.bev["navsim"] >= 0).all() for m in moved)  # the margin covers the augmented corners
    inputs, targets = collate(moved, cfg.model)
    assert targets.bev_semantic["navsim"].valid.all()
    from harness.model.tfv6 import TFv6

    torch.manual_seed(0)
    model = TFv6(cfg.model)
    losses = tfv6_losses(model(inputs), targets, cfg.model)
    assert losses["bev_semantic/navsim"].item() > 0
    losses["bev_semantic/navsim"].backward()
    assert model.bev_semantic_heads["navsim"].out.weight.grad.abs().sum() > 0


def test_navsim_bev_head_without_maps_is_a_config_error(small_world_root, tmp_path):
    for name in ("navsim_logs", "sensor_blobs"):
        (tmp_path / name).symlink_to(small_world_root / name)
    cfg = load_config("tiny", overrides=["model.image_width=192", "data.rig_navsim=navsim_3cam"])
    with pytest.raises(ConfigError, match="maps"):
        open_source("navsim", cfg, SourceRoots(navsim=tmp_path))
    no_head = load_config("tiny", overrides=["model.image_width=192", "data.rig_navsim=navsim_3cam",
                                             "model.bev_semantic_classes=[]"])
    assert open_source("navsim", no_head, SourceRoots(navsim=tmp_path))._get(0)[0].targets.bev is None
    with_maps = open_source("navsim", cfg, SourceRoots(navsim=tmp_path, navsim_maps=small_world_root / "maps"))
    assert with_maps._get(0)[0].targets.bev is not None


def test_navsim_label_cache_with_sample_cache_off(small_world_root):
    """Cache off: the BEV label is rendered once per token and kept; later loads give the same raster, and the
    collated class ids are int8 (-1 ignore) whatever the cache."""
    from harness.training.sources import NavsimLabelCache

    over = ["model.image_width=192", "data.rig_navsim=navsim_3cam", "augment.view_prob=1.0"]
    on = open_source("navsim", load_config("tiny", overrides=over), SourceRoots(navsim=small_world_root))
    cfg = load_config("tiny", overrides=[*over, "data.cache_images=false"])
    off = open_source("navsim", cfg, SourceRoots(navsim=small_world_root))
    assert isinstance(off.load, NavsimLabelCache) and not off.load.labels
    first, again = off.load(off.refs[5]), off.load(off.refs[5])
    assert list(off.load.labels) == [off.refs[5].token]
    np.testing.assert_array_equal(again.targets.bev.classes, first.targets.bev.classes)
    np.testing.assert_array_equal(again.targets.bev.classes, on._get(5)[0].targets.bev.classes)
    assert again.targets.bev.extent_m == first.targets.bev.extent_m
    for seed in (-1, 4):
        np.testing.assert_array_equal(off[(5, seed)].targets.bev["navsim"], on[(5, seed)].targets.bev["navsim"])
    _, targets = collate([off[(5, 4)], off[(6, -1)]], cfg.model)
    assert targets.bev_semantic["navsim"].classes.dtype == torch.int8


def test_bev_semantic_loss_is_the_same_for_int8_and_long_class_ids():
    from harness.model.losses import _semantic_per_sample

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 7, 16, 16, generator=g)
    ids = torch.randint(-1, 7, (3, 16, 16), generator=g)
    np.testing.assert_array_equal(_semantic_per_sample(logits, ids.to(torch.int8)).numpy(),
                                  _semantic_per_sample(logits, ids).numpy())
