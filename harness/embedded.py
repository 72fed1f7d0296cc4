"""Build the embedded world on disk in each source's true format, and find or reuse a cached copy.

Layout under the output directory (NAVSIM's own, so ``--data-root DIR --maps-root DIR/maps`` work)::

    navsim_logs/{train,test}/<log>.pkl
    sensor_blobs/{train,test}/<log>/CAM_*/…jpg, MergedPointCloud/…pcd
    maps/nuplan-maps-v1.0.json, maps/<location>/<version>/map.gpkg
    waymo/                WOD-E2E shards and side files (adapters/waymo/world_writer.py; --data-root DIR/waymo)
    carla/                a small LEAD-format portion (adapters/carla/writer.py; CarlaReader(DIR/carla, "train")):
                          see EmbeddedCarlaOptions
    world.json            written last: the config and format version; its presence marks a complete build
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from adapters.carla.writer import CarlaWriteOptions, write_carla_world
from adapters.navsim.map_writer import write_nuplan_maps
from adapters.navsim.writer import NavsimWriteOptions, write_navsim_log
from adapters.waymo.world_writer import WaymoWriteOptions, write_waymo_world
from harness.atomic import atomic_write_text
from harness.world.build import World, WorldConfig, build_world
from harness.world.model import WorldLog

log = logging.getLogger(__name__)

#: Bump when the on-disk output of the embedded world changes, so stale caches are rebuilt.
WORLD_FORMAT_VERSION = 2
MARKER = "world.json"
#: Sub-directory of the Waymo E2E data (the bucket's flat layout).
WAYMO_DIR = "waymo"
#: Waymo writer sources outside harness/world and adapters/navsim that shape the written files.
WAYMO_WRITER_FILES = ("world_writer.py", "world_raters.py", "schema.py", "tfrecord.py", "labels.py", "layout.py")
#: Sub-directory of the LEAD/CARLA portion (``<root>/carla/data/...``, ``<root>/carla/splits/<split>.txt``).
CARLA_DIR = "carla"
#: CARLA writer sources outside harness/world that shape the written files.
CARLA_WRITER_FILES = ("writer.py", "timeline.py", "format.py", "frames.py", "rigs.py")
#: NAVSIM writer sources (logs, sensor blobs, maps) that shape the written files.
NAVSIM_WRITER_FILES = ("writer.py", "map_writer.py", "pcd.py")
#: Core modules the writers use to compute what they write.
CORE_WRITER_FILES = ("geometry.py", "maps.py", "trajectory.py", "safe_pickle.py")
#: Package -> its files in the generator digest (besides every module of harness/world).
WRITER_FILES = (("adapters.navsim", NAVSIM_WRITER_FILES), ("adapters.waymo", WAYMO_WRITER_FILES),
                ("adapters.carla", CARLA_WRITER_FILES), ("harness", CORE_WRITER_FILES))


@dataclass(frozen=True)
class EmbeddedCarlaOptions:
    """The embedded world's simulator data: a small LEAD route-folder copy of some of its logs.

    Small on purpose, so that it adds seconds, not minutes, to a build (a full-size copy of every frame and
    rig costs 1-5 min; ``lead-bench world carla`` writes that). The defaults give each train log as one route
    with the CARLA leaderboard 3-camera rig at half LEAD's size (3 x 192 x 192), every 16th 4 Hz frame (one per
    4 s, so a 30 s route's whole drive is covered) up to 8 frames, all labels (boxes, BEV, image semantics,
    depth, LiDAR, radar), no perturbed copies: 32 labelled frames in the default world, about 5-10 s of build.

    Args:
        write: the CARLA writer's options (rig, camera scale, frame stride and limit, perturbed copies).
        splits: world splits whose logs are written; the reader's split names are the same.
    """

    write: CarlaWriteOptions = CarlaWriteOptions(rig="carla_lb_3cam", camera_scale=0.5, perturbed=False,
                                                 frame_stride=16, max_frames=8)
    splits: tuple[str, ...] = ("train",)


@dataclass(frozen=True)
class EmbeddedWorldSpec:
    """Everything that determines the files of a built world."""

    config: WorldConfig = WorldConfig()
    navsim: NavsimWriteOptions = NavsimWriteOptions()
    waymo: WaymoWriteOptions = WaymoWriteOptions()
    carla: EmbeddedCarlaOptions | None = EmbeddedCarlaOptions()

    def to_json(self) -> dict[str, Any]:
        return {"format_version": WORLD_FORMAT_VERSION, "generator": generator_digest(),
                "config": asdict(self.config), "navsim": asdict(self.navsim),
                "waymo": asdict(self.waymo), "carla": None if self.carla is None else asdict(self.carla)}


def generator_digest() -> str:
    """Hash of the world generator's and writers' sources: a changed generator invalidates cached worlds.

    Covers every module of ``harness/world`` and, by name, the writer modules of each adapter and the core
    modules they use (:data:`WRITER_FILES`), not the readers or scorers beside them, whose edits do not change
    a written file and so need no rebuild.
    """
    import hashlib
    import importlib

    import harness.world

    h = hashlib.blake2b(digest_size=8)
    for f in sorted(Path(harness.world.__path__[0]).glob("*.py")):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    for pkg_name, names in WRITER_FILES:
        folder = Path(importlib.import_module(pkg_name).__path__[0])
        for name in names:
            h.update(f"{pkg_name}/{name}".encode())
            h.update((folder / name).read_bytes())
    return h.hexdigest()


def _write_one(args: tuple[WorldLog, str, str, NavsimWriteOptions]) -> str:
    world_log, root, split, options = args
    write_navsim_log(world_log, root, split, options=options)
    return world_log.name


def build_embedded_world(
    out_dir: str | Path,
    spec: EmbeddedWorldSpec = EmbeddedWorldSpec(),
    *,
    workers: int = 1,
    on_log_done: Callable[[str], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> Path:
    """Generate the world and write it under ``out_dir``; returns ``out_dir``.

    Args:
        out_dir: destination (created).
        spec: world configuration and writer options.
        workers: processes for sensor rendering (logs are independent).
        on_log_done: called with each log's name as it is written (progress bars).
        on_start: called with the number of logs before writing starts.
    """
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).unlink(missing_ok=True)
    world: World = build_world(spec.config)
    write_nuplan_maps(world.road_map, root / "maps")
    split_of = {name: split for split, names in world.splits.items() for name in names}
    jobs = [(wl, str(root), split_of[wl.name], spec.navsim) for wl in world.logs]
    if on_start is not None:
        on_start(len(jobs))
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for name in pool.map(_write_one, jobs):
                if on_log_done is not None:
                    on_log_done(name)
    else:
        for job in jobs:
            name = _write_one(job)
            if on_log_done is not None:
                on_log_done(name)
    meta = spec.to_json() | {"splits": {k: list(v) for k, v in world.splits.items()},
                             "map_location": world.road_map.location}
    write_waymo_world(world, root / WAYMO_DIR, camera_scale=spec.navsim.camera_scale, options=spec.waymo,
                      workers=workers)
    if spec.carla is not None:
        unknown = [s for s in spec.carla.splits if s not in world.splits]
        if unknown:
            raise ValueError(f"EmbeddedCarlaOptions.splits: {unknown} are not world splits {sorted(world.splits)}")
        names = [n for s in spec.carla.splits for n in world.splits[s]]
        if names:
            t0 = time.perf_counter()
            write_carla_world(world, root / CARLA_DIR, spec.carla.write, logs=names)
            log.info("CARLA portion: %d route(s) of splits %s in %.1f s", len(names), ", ".join(spec.carla.splits),
                     time.perf_counter() - t0)
    atomic_write_text(root / MARKER, json.dumps(meta, indent=2) + "\n")
    log.info("embedded world written to %s: %d logs (%s)", root, len(jobs),
             ", ".join(f"{k}: {len(v)}" for k, v in world.splits.items()))
    return root


def is_built(root: Path, spec: EmbeddedWorldSpec = EmbeddedWorldSpec()) -> bool:
    """Whether ``root`` holds a complete build of exactly ``spec``."""
    marker = Path(root) / MARKER
    if not marker.is_file():
        return False
    try:
        meta = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    want = spec.to_json()
    return all(meta.get(k) == v for k, v in want.items())


@dataclass(frozen=True)
class CarlaTrainingRoot:
    """Where training reads the embedded world's CARLA data for one writer rig.

    ``reused`` is True when it is the world's own ``<world>/carla`` (written with that rig), False for a
    rig-specific copy of the same logs with the same write options; ``note`` says which, for the log.
    """

    root: Path
    rig: str
    reused: bool
    note: str


def carla_portion(world_root: str | Path) -> EmbeddedCarlaOptions | None:
    """The CARLA options a built world recorded in its ``world.json`` (None: it has no CARLA portion)."""
    marker = Path(world_root) / MARKER
    try:
        meta = json.loads(marker.read_text(encoding="utf-8"))
        carla = meta.get("carla")
        if carla is None:
            return None
        return EmbeddedCarlaOptions(CarlaWriteOptions(**carla["write"]), tuple(carla["splits"]))
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        from harness.errors import DataError

        raise DataError(f"cannot read the CARLA options of the embedded world: {exc}", path=marker) from exc


def carla_root_for_rig(world_root: str | Path, writer_rig: str, copies_dir: str | Path, *,
                       on_start: Callable[[int], None] | None = None,
                       on_log_done: Callable[[str], None] | None = None) -> CarlaTrainingRoot:
    """The embedded world's CARLA data rendered with ``writer_rig``, for training.

    ``<world>/carla`` itself when the world wrote it with ``writer_rig``. Otherwise a copy of the same logs
    (the portion's splits) with the same write options but ``writer_rig``, written once into
    ``copies_dir/world-seed<seed>-carla-<rig>-<key>`` (``key`` hashes the world's generator digest, config and
    CARLA options, so a rebuilt or changed world gets a fresh copy) and marked complete last.

    Raises:
        DataError: the world has no CARLA portion or its ``world.json`` cannot be read.
    """
    import hashlib

    from harness.errors import DataError

    world_root = Path(world_root)
    portion = carla_portion(world_root)
    if portion is None:
        raise DataError("the embedded world was built without a CARLA portion", path=world_root / MARKER)
    own = portion.write.rig
    if own == writer_rig:
        return CarlaTrainingRoot(world_root / CARLA_DIR, own, True,
                                 f"CARLA: the embedded world's own copy {world_root / CARLA_DIR} (rig {own})")
    meta = json.loads((world_root / MARKER).read_text(encoding="utf-8"))
    ident = json.dumps({"generator": meta.get("generator"), "format_version": meta.get("format_version"),
                        "config": meta.get("config"), "carla": meta.get("carla"), "rig": writer_rig},
                       sort_keys=True)
    key = hashlib.blake2b(ident.encode(), digest_size=6).hexdigest()
    seed = (meta.get("config") or {}).get("seed", "x")
    out = Path(copies_dir) / f"world-seed{seed}-carla-{writer_rig}-{key}"
    done = out / "complete"
    note = (f"CARLA: the embedded world's copy is rig {own}, training needs {writer_rig}: "
            f"rig-specific copy of the same routes in {out}")
    if not (done.is_file() and done.read_text(encoding="utf-8") == ident):
        world = build_world(WorldConfig(**meta["config"]))
        names = [n for s in portion.splits for n in world.splits.get(s, ())]
        if on_start is not None:
            on_start(len(names))
        t0 = time.perf_counter()
        write_carla_world(world, out, replace(portion.write, rig=writer_rig), logs=names, on_log_done=on_log_done)
        atomic_write_text(done, ident)
        log.info("CARLA copy for rig %s: %d route(s) in %.1f s -> %s", writer_rig, len(names),
                 time.perf_counter() - t0, out)
        note += " (written now)"
    log.info(note)
    return CarlaTrainingRoot(out, writer_rig, False, note)


def default_workers() -> int:
    return max(1, min(len(os.sched_getaffinity(0)), 8))
