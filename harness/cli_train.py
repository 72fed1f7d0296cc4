"""``lead-bench train``: train TFv6 on CARLA / NAVSIM / Waymo data (embedded world by default).

Data roots: ``--navsim-root`` (else $OPENSCENE_DATA_ROOT, else the embedded world), ``--waymo-root`` (else
$WAYMO_E2E_DATA_ROOT, else the embedded world's ``waymo/``), ``--carla-root`` (else $LEAD_CARLA_ROOT, else the
embedded world's ``carla/`` when it was written with the configured rig, or a rig-specific copy of those routes,
written once and cached: :func:`harness.embedded.carla_root_for_rig`; the log says which). Multi-GPU:
``torchrun --nproc_per_node N $(which lead-bench) train ...`` (DDP; RANK/WORLD_SIZE/LOCAL_RANK are read here).
"""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from harness.cli_common import cache_root, console, handle_errors, out_console, progress_bar
from harness.errors import ConfigError


def register(groups: dict[str, click.Group]) -> None:
    groups["main"].add_command(train_cmd)


def embedded_carla_root(world: Path, writer_rig: str) -> Path:
    """The embedded world's CARLA data for ``writer_rig``: ``<world>/carla`` if its rig matches, else a cached copy."""
    from harness.embedded import carla_root_for_rig

    with progress_bar() as progress:
        task = progress.add_task(f"CARLA routes ({writer_rig})", total=None, visible=False)

        def start(n: int) -> None:
            console.print(f"the embedded world's CARLA routes are another rig: writing a {writer_rig} copy (once)")
            progress.update(task, total=n, visible=True)

        found = carla_root_for_rig(world, writer_rig, cache_root(), on_start=start,
                                   on_log_done=lambda _n: progress.advance(task))
    return found.root  # carla_root_for_rig logs which data it is (the world's own or a rig-specific copy)


def _roots(cfg: Any, navsim_root: Path | None, waymo_root: Path | None, carla_root: Path | None) -> Any:
    from harness.cli import embedded_world_root
    from harness.training.sources import CARLA_WRITER_RIG, SourceRoots

    d = cfg.data
    env = os.environ.get
    nav = navsim_root or (Path(d.navsim_root) if d.navsim_root else None) or (
        Path(env("OPENSCENE_DATA_ROOT")) if env("OPENSCENE_DATA_ROOT") else None)
    way = waymo_root or (Path(d.waymo_root) if d.waymo_root else None) or (
        Path(env("WAYMO_E2E_DATA_ROOT")) if env("WAYMO_E2E_DATA_ROOT") else None)
    car = carla_root or (Path(d.carla_root) if d.carla_root else None) or (
        Path(env("LEAD_CARLA_ROOT")) if env("LEAD_CARLA_ROOT") else None)
    need_world = (nav is None and (("navsim" in d.sources) or cfg.val.navsim)) or (
        way is None and (("waymo" in d.sources) or cfg.val.waymo)) or (car is None and "carla" in d.sources)
    world = embedded_world_root() if need_world else None
    nav = nav or world
    way = way or (world / "waymo" if world is not None and (world / "waymo").is_dir() else None)
    if car is None and world is not None and "carla" in d.sources:
        car = embedded_carla_root(world, CARLA_WRITER_RIG[d.rig_carla])
    return SourceRoots(nav, way, car)


@click.command("train")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="YAML file of config keys (sections: model, data, optim, augment, val).")
@click.option("--preset", default="tiny", show_default=True,
              help="tiny | tiny-carla | navsim-r34 | carla-r34 | waymo-r34.")
@click.option("--sources", default=None, help="Comma-separated training sources: carla,navsim,waymo.")
@click.option("--max-steps", type=click.IntRange(min=1), default=None, help="Optimiser steps.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Run directory (default: runs/train-PRESET-TIME).")
@click.option("--set", "sets", multiple=True, help="Override a config key: --set optim.lr=1e-3 (repeatable).")
@click.option("--resume", "resume", default=None,
              help="Continue from a training checkpoint: a path, or 'auto' for the newest in OUT/checkpoints.")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda | cuda:N.")
@click.option("--navsim-root", type=click.Path(path_type=Path), default=None)
@click.option("--maps-root", type=click.Path(path_type=Path), default=None,
              help="nuPlan maps root, for NAVSIM BEV labels and PDMS validation (default: $NUPLAN_MAPS_ROOT, "
                   "else NAVSIM_ROOT/maps).")
@click.option("--waymo-root", type=click.Path(path_type=Path), default=None)
@click.option("--carla-root", type=click.Path(path_type=Path), default=None)
@click.option("--no-val", is_flag=True, help="Skip validation (PDMS / RFS on the held-out splits).")
@click.option("--print-config", is_flag=True, help="Print the resolved configuration as YAML and exit.")
@handle_errors
def train_cmd(config_file: Path | None, preset: str, sources: str | None, max_steps: int | None, out: Path | None,
              sets: tuple[str, ...], resume: str | None, device: str, navsim_root: Path | None,
              maps_root: Path | None, waymo_root: Path | None, carla_root: Path | None, no_val: bool,
              print_config: bool) -> None:
    """Train TFv6 (typed config: preset < --config FILE < --set key=value; unknown keys are an error).

    Logs metrics.csv (and TensorBoard when installed), keeps checkpoints with exact resume, and validates
    with PDMS on the NAVSIM test split and RFS on the Waymo val split of the same data roots."""
    from harness.training.config import dump_yaml, load_config
    from harness.training.sources import open_sources
    from harness.training.trainer import DistInfo, latest_checkpoint, train

    overrides = list(sets)
    if sources is not None:
        overrides.insert(0, f"data.sources={sources}")
    if max_steps is not None:
        overrides.insert(0, f"max_steps={max_steps}")
    if no_val:
        overrides += ["val.navsim=false", "val.waymo=false"]
    cfg = load_config(preset, config_file, overrides)
    if print_config:
        out_console.print(dump_yaml(cfg), end="", highlight=False)
        return
    out = out or Path("runs") / f"train-{cfg.preset}-{datetime.now():%Y%m%d-%H%M%S}"
    dist = DistInfo(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                    int(os.environ.get("LOCAL_RANK", 0)))
    roots = _roots(cfg, navsim_root, waymo_root, carla_root)
    if maps_root is not None or os.environ.get("NUPLAN_MAPS_ROOT"):  # NAVSIM BEV labels (else NAVSIM_ROOT/maps)
        roots = replace(roots, navsim_maps=maps_root or Path(os.environ["NUPLAN_MAPS_ROOT"]))
    resume_path = None
    if resume is not None:
        resume_path = latest_checkpoint(out) if resume == "auto" else Path(resume)
        if resume_path is None:
            raise ConfigError(f"--resume auto: no checkpoint under {out / 'checkpoints'}")
    validation = _validation(cfg, roots, maps_root)
    parts = open_sources(cfg, roots)
    with progress_bar() as progress:
        task = progress.add_task("training", total=cfg.max_steps)

        def on_step(step: int, losses: dict[str, float]) -> None:  # losses only at log steps (no GPU sync)
            if "loss" in losses:
                progress.update(task, completed=step, description=f"training loss {losses['loss']:.3f}")
            else:
                progress.update(task, completed=step)

        result = train(cfg, out, parts, validation=validation, resume=resume_path, dist=dist, device=device,
                       on_step=on_step if dist.rank == 0 else None,
                       on_log=lambda s: console.print(escape(s), highlight=False))
    if dist.rank != 0:
        return
    table = Table(title=f"TFv6 training — preset {cfg.preset}, sources {', '.join(cfg.data.sources)}")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_row("steps", str(result.steps))
    for k in ("loss", "waypoints", "headings"):
        if k in result.final_losses:
            table.add_row(f"final {k}", f"{result.final_losses[k]:.4f}")
    for k, v in result.val.items():
        table.add_row(k, f"{v:.3f}")
    out_console.print(table)
    console.print(f"model in [bold]{escape(str(result.model_path))}[/] (lead-bench run navsim --agent tfv6 --ckpt "
                  f"{escape(str(result.model_path))}); metrics in {escape(str(out / 'metrics.csv'))}")


def _validation(cfg: Any, roots: Any, maps_root: Path | None) -> Any:
    from harness.training.trainer import Validation

    nav = roots.navsim if cfg.val.navsim else None
    maps = cache = None
    if nav is not None:
        from harness.cli import _metric_cache_dir

        env_maps = os.environ.get("NUPLAN_MAPS_ROOT")
        maps = maps_root or (Path(env_maps) if env_maps else None) or nav / "maps"
        if not (nav / "navsim_logs" / cfg.val.navsim_split).is_dir():
            console.print(f"[yellow]no NAVSIM split {cfg.val.navsim_split} under {nav}: no PDMS validation[/]")
            nav = None
        cache = _metric_cache_dir(nav, cfg.val.navsim_split) if nav is not None else None
    way = roots.waymo if cfg.val.waymo else None
    clusters = None
    if way is not None:
        from adapters.waymo.layout import default_clusters_path, read_clusters

        path = default_clusters_path(way)
        clusters = read_clusters(path) if path.is_file() else None
    return Validation(nav, maps, cache, way, clusters)
