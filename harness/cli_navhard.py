"""NAVSIM v2 two-stage CLI: ``run navsim --split navhard_two_stage --metric epdms``, ``score navsim
--metric epdms`` of v2 submissions, and ``world navhard`` (two-stage data for the embedded world)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from harness.cli_common import EXIT_PARTIAL, console, handle_errors, progress_bar
from harness.errors import ConfigError

TWO_STAGE_SPLIT = "navhard_two_stage"
TRAFFIC_CHOICES = ("reactive", "non-reactive")


def ensure_navhard(data_root: Path) -> None:
    """Make sure ``data_root/navhard_two_stage`` exists; for the embedded world it is generated on first use."""
    from adapters.navsim.navhard import SPLIT_NAME
    from adapters.navsim.navhard_writer import NavhardOptions, write_navhard
    from harness.embedded import MARKER, EmbeddedWorldSpec
    from harness.world.build import build_world

    if (data_root / SPLIT_NAME / f"{SPLIT_NAME}.yaml").is_file():
        return
    if not (data_root / MARKER).is_file():
        raise ConfigError(f"{data_root} has no {SPLIT_NAME}/ (synthetic_scene_pickles, sensor_blobs and the split "
                          f"file {SPLIT_NAME}.yaml); download navhard or run `lead-bench world navhard`")
    console.print(f"writing the embedded world's two-stage data into {data_root / SPLIT_NAME} (once)")
    write_navhard(build_world(EmbeddedWorldSpec().config), data_root, NavhardOptions())


def run_two_stage(data_root: Path, maps_root: Path, agent: Any, out: Path, cache_dir: Path, *, traffic: str,
                  human_filter: bool, batch_size: int = 64, config: dict[str, Any] | None = None,
                  plans: dict[str, Any] | None = None, title: str | None = None, workers: int = 1) -> None:
    """Build the metric cache of both stages, plan (or take ``plans`` from a submission), score both stages,
    aggregate, print, write ``out``. The cache build and the scoring use ``workers`` processes (forked; the
    cache bytes and the rows equal one process's)."""
    from harness.navhard_eval import (
        NavhardData,
        NavhardMetricCache,
        cache_scenes,
        plan_tokens,
        score_two_stage,
        write_two_stage,
    )
    from harness.navhard_plans import PLANS_FILE, write_stage_plans
    from harness.trajectory import NAVSIM_SAMPLING
    from metrics.epdms import EPDMSConfig
    from metrics.traffic_agents import TrafficPolicy

    ensure_navhard(data_root)
    data = NavhardData(data_root, maps_root)
    split = data.split()
    tokens = list(dict.fromkeys(split.stage_one_tokens + split.stage_two_tokens))
    cache = NavhardMetricCache(data, split, Path(cache_dir) / "navhard-v2.2")
    with progress_bar() as progress:
        task = progress.add_task("metric cache (both stages)", total=len(tokens))
        scenes, errors = cache_scenes(cache, tokens, workers=max(1, workers),
                                      on_done=lambda n: progress.advance(task, n))
        if plans is None:
            progress.reset(task, description=f"{agent.name} on {TWO_STAGE_SPLIT}")
            plans, plan_errors = plan_tokens(cache, agent, tokens, NAVSIM_SAMPLING, batch_size=batch_size)
            errors.update({t: e for t, e in plan_errors.items() if t not in errors})
            progress.update(task, completed=len(tokens))
        progress.reset(task, description=f"scoring ({traffic} traffic)")
        result = score_two_stage(split, scenes, plans, cache.rails, traffic=TrafficPolicy(traffic),
                                 config=EPDMSConfig(human_penalty_filter=human_filter), errors=errors,
                                 workers=max(1, workers))
        progress.update(task, completed=len(tokens))
    meta = {"benchmark": "navsim", "split": TWO_STAGE_SPLIT, "metric": "epdms-two-stage", "traffic": traffic,
            "human_filter": human_filter, "scorer": "navsim-v2.2 EPDMS two-stage (post-#151 human filter)",
            "agent": getattr(agent, "name", None), "privileged": bool(getattr(agent, "privileged", False))}
    cfg = dict(config or {}, traffic=traffic, human_filter=human_filter)
    write_two_stage(out, result, meta, cfg)
    # what `submit navsim --version 2` reads: the plans of both stages and the split's tokens of each
    write_stage_plans(out / PLANS_FILE, plans, split.stage_one_tokens, split.stage_two_tokens)
    _print(result, title or f"NAVSIM {TWO_STAGE_SPLIT} — {getattr(agent, 'name', 'submission')} — EPDMS two-stage "
                            f"({traffic} traffic, human filter {'on' if human_filter else 'off'})")
    console.print(f"results in [bold]{out}[/]")
    if result.summary.failed_tokens:
        sys.exit(EXIT_PARTIAL)


def score_v2_submission(sub: Any, data_root: Path, maps_root: Path, out: Path, cache_dir: Path, *, traffic: str,
                        human_filter: bool, config: dict[str, Any], workers: int = 1) -> None:
    """Score a v2 submission (``first_stage_predictions`` / ``second_stage_predictions``) on navhard.

    Raises:
        ConfigError: the submission's stage token sets differ from the split's (both differences listed).
    """
    from harness.navhard_eval import NavhardData

    ensure_navhard(data_root)
    split = NavhardData(data_root, maps_root).split()
    first, second = sub.first_stage, sub.second_stage
    for name, got, want in (("first_stage_predictions", set(first), set(split.stage_one_tokens)),
                            ("second_stage_predictions", set(second), set(split.stage_two_tokens))):
        if got != want:
            raise ConfigError(f"{name}: tokens differ from the split's: {len(want - got)} missing "
                              f"{sorted(want - got)[:10]}, {len(got - want)} extra {sorted(got - want)[:10]}")
    run_two_stage(data_root, maps_root, None, out, cache_dir, traffic=traffic, human_filter=human_filter,
                  config=config, plans={**first, **second}, workers=workers,
                  title=f"NAVSIM {TWO_STAGE_SPLIT} submission ({sub.metadata.team_name}) — EPDMS two-stage")


def _print(result: Any, title: str) -> None:
    s = result.summary
    cols = (("NC", "no_at_fault_collisions"), ("DAC", "drivable_area_compliance"),
            ("DDC", "driving_direction_compliance"), ("TLC", "traffic_light_compliance"), ("EP", "ego_progress"),
            ("TTC", "time_to_collision_within_bound"), ("LK", "lane_keeping"), ("HC", "history_comfort"),
            ("EC", "two_frame_extended_comfort"), ("EPDMS", "score"))
    n = len(result.rows)
    failed = len(s.failed_tokens)
    table = Table(title=title, caption=f"{n} tokens: {n - failed} scored, {failed} failed (scored 0); x100; "
                                       "combined = mean over groups of the stage products")
    table.add_column("row", no_wrap=True, min_width=9)
    for name, _ in cols:
        table.add_column(name, justify="right", no_wrap=True)
    for label, row in (("stage one", "stage_one"), ("stage two", "stage_two")):
        table.add_row(label, *[f"{100 * s.value(row, c):.1f}" for _, c in cols])
    # the leaderboard number: mean over groups of the stage products (sub-metrics are reported per stage)
    table.add_row("combined", *(["-"] * (len(cols) - 1)), f"{100 * s.value('combined', 'score'):.1f}")
    console.print(table)


@click.command("navhard")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Data root to write (embedded world + navhard_two_stage/).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--logs", type=int, default=8, show_default=True, help="World logs (half of them test logs).")
@click.option("--duration", type=float, default=30.0, show_default=True, help="Seconds per log.")
@click.option("--groups-per-log", type=int, default=3, show_default=True)
@click.option("--pairs-per-group", type=int, default=5, show_default=True)
@click.option("--no-sensors", is_flag=True, help="Skip camera and LiDAR rendering (scoring needs none).")
@handle_errors
def world_navhard(out_dir: Path, seed: int, logs: int, duration: float, groups_per_log: int, pairs_per_group: int,
                  no_sensors: bool) -> None:
    """Build an embedded world with NAVSIM v2 two-stage data (navhard layout) under OUT."""
    from adapters.navsim.navhard_writer import NavhardOptions
    from adapters.navsim.writer import NavsimWriteOptions
    from harness.embedded import EmbeddedWorldSpec
    from harness.navhard_eval import build_navhard_world
    from harness.world.build import WorldConfig

    spec = EmbeddedWorldSpec(WorldConfig(seed=seed, num_logs=logs, duration_s=duration),
                             NavsimWriteOptions(write_sensors=not no_sensors))
    split = build_navhard_world(out_dir, spec, NavhardOptions(groups_per_log=groups_per_log,
                                                              pairs_per_group=pairs_per_group,
                                                              write_sensors=not no_sensors, seed=seed))
    console.print(f"{len(split.groups)} groups: {len(split.stage_one_tokens)} stage-one and "
                  f"{len(split.stage_two_tokens)} stage-two tokens in {out_dir}")


def register(groups: dict[str, click.Group]) -> None:
    groups["world"].add_command(world_navhard)
