"""Open each training source's reader and wrap it as a :class:`~harness.training.data.SourceData`.

Data roots are passed in (the CLI resolves them from options, the environment or the embedded world); this
module reads no environment. Every source yields canonical samples with the rig's cameras attached. Perception
labels: CARLA's adapter provides boxes, its 13-class BEV raster, image semantics and depth; NAVSIM's provides
boxes and, when the model has a NAVSIM BEV head, NAVSIM TransFuser's 7-class BEV raster rendered from the nuPlan
maps (``SourceRoots.navsim_maps``, default ``<navsim root>/maps``) on the model's BEV grid plus a margin that
viewpoint augmentation may rotate or shift into view.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.errors import ConfigError, DataError
from harness.training.config import TrainConfig
from harness.training.data import SourceData
from harness.trajectory import TrajectorySampling
from harness.types import SampleRef

#: Training rig -> the CARLA writer's rig that renders those cameras.
CARLA_WRITER_RIG = {"navsim_4cam": "navsim_4cam", "navsim_3cam": "navsim_4cam", "waymo_front_3cam": "waymo_front_3cam",
                    "carla_lb_3cam": "carla_lb_3cam"}


@dataclass(frozen=True)
class SourceRoots:
    """Resolved data roots (directories) per source."""

    navsim: Path | None = None
    waymo: Path | None = None
    carla: Path | None = None
    navsim_maps: Path | None = None  # nuPlan maps root; None: <navsim>/maps when that exists


def navsim_label_grid(cfg: TrainConfig, augment: bool = True) -> Any:
    """The grid NAVSIM's BEV label is rendered on: the model's BEV extent and resolution, grown by a margin
    (a whole number of cells) that covers the largest viewpoint shift and rotation of the augmentation, so
    augmented labels have no unlabelled corners."""
    from adapters.navsim.bev_semantic import BEVGrid

    m = cfg.model
    res = 1.0 / m.bev_pixels_per_m
    margin = 0.0
    a = cfg.augment
    if augment and a.view_prob > 0:
        x0, x1, y0, y1 = m.bev_extent_m
        corner = math.hypot(max(abs(x0), abs(x1)), max(abs(y0), abs(y1)))
        margin = a.max_shift_m + 2.0 * corner * math.sin(math.radians(a.max_yaw_deg) / 2.0)
        margin = math.ceil(margin / res) * res
    x0, x1, y0, y1 = m.bev_extent_m
    return BEVGrid((x0 - margin, x1 + margin, y0 - margin, y1 + margin), res)


def open_source(source: str, cfg: TrainConfig, roots: SourceRoots, split: str | None = None,
                augment: bool = True) -> SourceData:
    """The training dataset of one source (``split`` defaults to the config's training split)."""
    spec = cfg.input_spec()
    rig = spec.rig(source)
    aug = cfg.augment if augment else None
    d = cfg.data
    if source == "navsim":
        from adapters.navsim.reader import NavsimReader, SensorSelection

        root = _need(roots.navsim, "navsim")
        grid = maps = None
        if "navsim" in dict(cfg.model.bev_semantic_classes):
            maps = roots.navsim_maps or root / "maps"
            if not Path(maps).is_dir():
                raise ConfigError(f"the model's NAVSIM BEV head needs the nuPlan maps, not found at {maps}: pass "
                                  "--maps-root (or set NUPLAN_MAPS_ROOT), or drop the head "
                                  "(model.bev_semantic_classes)")
            grid = navsim_label_grid(cfg, augment)
        reader = NavsimReader(root, split or d.navsim_split, maps_root=maps)
        sel = SensorSelection(cameras=rig.cameras, lidar=not cfg.model.latent)
        # with the sample cache on, SourceData keeps the label with its sample; off, only the labels are kept
        load = NavsimLabelCache(reader, sel, grid) if grid is not None and not d.cache_images else (
            lambda ref: reader.load(ref, sel, bev=grid))
        return SourceData(source, reader.index(), load, spec, aug, d.cache_images)
    if source == "waymo":
        from adapters.waymo.reader import WaymoReader

        root = _need(roots.waymo, "waymo")
        wreader = WaymoReader(root, split or d.waymo_split)
        entries = wreader.entries()
        refs = [r for r in wreader.index() if entries[r.token].has_future]
        if not cfg.model.latent:
            raise ConfigError("Waymo E2E has no LiDAR; train with model.latent=true")
        return SourceData(source, refs, lambda ref: wreader.load(ref, cameras=rig.cameras), spec, aug,
                          d.cache_images)
    if source == "carla":
        from adapters.carla.reader import CarlaReader, CarlaSensors

        root = _need(roots.carla, "carla")
        horizon = TrajectorySampling(cfg.model.num_waypoints, cfg.waypoint_interval_s)
        creader = CarlaReader(root, split or d.carla_split, sampling=horizon)
        sensors = CarlaSensors(cameras=True, lidar=not cfg.model.latent, labels=True, radar=cfg.model.radar)
        refs, skipped = _usable_carla_refs(creader)
        data = SourceData(source, refs, lambda ref: creader.load(ref, sensors), spec, aug, d.cache_images)
        data.skipped = skipped
        return data
    raise ConfigError(f"unknown source {source!r}")


class NavsimLabelCache:
    """``ref -> Sample`` of a NAVSIM reader whose BEV label on ``grid`` is rendered once per token and then
    kept, zlib-compressed (a few kB per label instead of its 64 kB+ raster and ~10 ms of rendering); sensors and
    everything else are read anew on each call, as with the sample cache off. Each DataLoader worker holds its
    own copy, filled as it meets tokens."""

    def __init__(self, reader: Any, sensors: Any, grid: Any) -> None:
        self.reader, self.sensors, self.grid = reader, sensors, grid
        self.labels: dict[str, bytes] = {}

    def __call__(self, ref: SampleRef) -> Any:
        import zlib

        import numpy as np

        packed = self.labels.get(ref.token)
        if packed is None:
            sample = self.reader.load(ref, self.sensors, bev=self.grid)
            bev = sample.targets.bev
            self.labels[ref.token] = zlib.compress(np.ascontiguousarray(bev.classes, np.uint8).tobytes(), 1)
            return sample
        from adapters.navsim.bev_semantic import NAVSIM_BEV_CLASSES
        from harness.types import BEVRaster

        sample = self.reader.load(ref, self.sensors)
        classes = np.frombuffer(bytearray(zlib.decompress(packed)), np.uint8).reshape(self.grid.shape)
        raster = BEVRaster(classes, NAVSIM_BEV_CLASSES, self.grid.resolution_m, self.grid.extent_m)
        return replace(sample, targets=replace(sample.targets, bev=raster))


def _usable_carla_refs(reader: Any) -> tuple[list[SampleRef], list[tuple[str, str]]]:
    """CARLA frames whose navigation metas the adapter can read, and the others (DataError) with their errors.

    Bad metas are listed and counted, not hidden. (Route ends used to fail here with IndexError: LEAD's relative
    duplicate tolerance merged distinct target points at UTM-size coordinates; the reader now merges with an
    absolute tolerance, see ``adapters.carla.reader.merge_duplicate_target_points``.)
    """
    from adapters.carla import format as fmt

    ok, bad = [], []
    for ref in reader.index():
        route, frame, _, token = reader._locate(ref)
        try:
            meta = reader.read_meta(route, frame)
            reader._navigation(meta, 0.0, 0.0, f"route {route.name} frame {fmt.frame_stem(frame)}")
        except DataError as exc:
            bad.append((token, f"{type(exc).__name__}: {exc}"))
            continue
        ok.append(ref)
    return ok, bad


def open_sources(cfg: TrainConfig, roots: SourceRoots) -> list[SourceData]:
    return [open_source(s, cfg, roots) for s in cfg.data.sources]


def _need(root: Path | None, source: str) -> Path:
    if root is None or not Path(root).is_dir():
        raise ConfigError(f"no data root for source {source} ({root}); pass --{source}-root or set data.{source}_root")
    return Path(root)


def roots_from_config(cfg: TrainConfig, defaults: Mapping[str, Path | None]) -> SourceRoots:
    """Roots from the config where set, else ``defaults`` (the CLI's embedded world)."""
    d = cfg.data

    def pick(name: str) -> Path | None:
        v = getattr(d, f"{name}_root")
        return Path(v) if v else defaults.get(name)

    return SourceRoots(pick("navsim"), pick("waymo"), pick("carla"), defaults.get("navsim_maps"))
