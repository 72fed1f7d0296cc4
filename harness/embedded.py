"""Build the embedded world on disk in each source's true format, and find or reuse a cached copy.

Layout under the output directory (NAVSIM's own, so ``--data-root DIR --maps-root DIR/maps`` work)::

    navsim_logs/{train,test}/<log>.pkl
    sensor_blobs/{train,test}/<log>/CAM_*/…jpg, MergedPointCloud/…pcd
    maps/nuplan-maps-v1.0.json, maps/<location>/<version>/map.gpkg
    waymo/                WOD-E2E shards and side files (adapters/waymo/world_writer.py; --data-root DIR/waymo)
    world.json            written last: the config and format version; its presence marks a complete build
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from adapters.navsim.map_writer import write_nuplan_maps
from adapters.navsim.writer import NavsimWriteOptions, write_navsim_log
from adapters.waymo.world_writer import WaymoWriteOptions, write_waymo_world
from harness.atomic import atomic_write_text
from harness.world.build import World, WorldConfig, build_world
from harness.world.model import WorldLog

log = logging.getLogger(__name__)

#: Bump when the on-disk output of the embedded world changes, so stale caches are rebuilt.
WORLD_FORMAT_VERSION = 1
MARKER = "world.json"
#: Sub-directory of the Waymo E2E data (the bucket's flat layout).
WAYMO_DIR = "waymo"
#: Waymo writer sources outside harness/world and adapters/navsim that shape the written files.
WAYMO_WRITER_FILES = ("world_writer.py", "world_raters.py", "schema.py", "tfrecord.py", "labels.py", "layout.py")


@dataclass(frozen=True)
class EmbeddedWorldSpec:
    """Everything that determines the files of a built world."""

    config: WorldConfig = WorldConfig()
    navsim: NavsimWriteOptions = NavsimWriteOptions()
    waymo: WaymoWriteOptions = WaymoWriteOptions()

    def to_json(self) -> dict[str, Any]:
        return {"format_version": WORLD_FORMAT_VERSION, "generator": generator_digest(),
                "config": asdict(self.config), "navsim": asdict(self.navsim),
                "waymo": asdict(self.waymo)}


def generator_digest() -> str:
    """Hash of the world generator's and writers' sources: a changed generator invalidates cached worlds."""
    import hashlib

    import adapters.navsim
    import harness.world

    h = hashlib.blake2b(digest_size=8)
    for pkg in (harness.world, adapters.navsim):
        for f in sorted(Path(pkg.__path__[0]).glob("*.py")):
            h.update(f.name.encode())
            h.update(f.read_bytes())
    import adapters.waymo

    for name in WAYMO_WRITER_FILES:
        h.update(name.encode())
        h.update((Path(adapters.waymo.__path__[0]) / name).read_bytes())
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


def default_workers() -> int:
    return max(1, min(len(os.sched_getaffinity(0)), 8))
