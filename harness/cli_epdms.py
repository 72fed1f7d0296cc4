"""The EPDMS branches of ``lead-bench run navsim --metric epdms``, ``score navsim --metric epdms`` and
``submit navsim --version 2`` (``harness.cli`` parses the options and calls these)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from harness.cli_common import EXIT_PARTIAL, console, out_console, progress_bar
from harness.errors import ConfigError
from harness.trajectory import Trajectory

#: Sub-directory of a split's metric cache holding the v2 (4 s) scoring scenes.
V2_CACHE_SUBDIR = "epdms-v2.2"
#: NAVSIM marks a synthetic (stage-two) scene by its 17-character token.
SYNTHETIC_TOKEN_LENGTH = 17


def run_epdms(reader: Any, agent: Any, out: Path, *, maps_root: Path, cache_dir: Path, workers: int = 1,
              batch_size: int = 64, resume: bool = False, engine: str = "processes",
              ray_address: str | None = None, human_filter: bool = True, config: dict[str, Any] | None = None,
              title: str | None = None) -> None:
    """Run (or replay a submission) with one-stage EPDMS, print the table, exit 1 if tokens failed."""
    from harness.epdms_runner import run_navsim_epdms
    from harness.runner import RunCallbacks

    config = dict(config or {}, metric="epdms", human_filter=human_filter, traffic="non-reactive")
    with progress_bar() as progress:
        task = progress.add_task("starting", total=None)
        summary = run_navsim_epdms(
            reader, agent, out, maps_root=maps_root, cache_dir=Path(cache_dir) / V2_CACHE_SUBDIR,
            human_filter=human_filter, batch_size=batch_size, resume=resume, workers=workers,
            ray_address=ray_address, engine=engine, config=config,
            callbacks=RunCallbacks(on_phase=lambda n, t: progress.reset(task, total=t, description=n),
                                   on_advance=lambda n: progress.advance(task, n)),
        )
    head = title or f"NAVSIM {reader.split} — agent {agent.name}{' (privileged)' if agent.privileged else ''}"
    print_epdms(summary, f"{head} — EPDMS v2.2 one-stage, human filter {'on' if human_filter else 'off'}")
    console.print(f"results in [bold]{out}[/]")
    if summary.failed:
        sys.exit(EXIT_PARTIAL)


def print_epdms(summary: Any, title: str) -> None:
    m = summary.metrics
    table = Table(title=title, caption=f"{summary.expected} tokens: {summary.scored} scored, {summary.failed} "
                                       "failed; EPDMS x100 (EC averaged over tokens with a predecessor)")
    cols = (("NC", "no_at_fault_collisions"), ("DAC", "drivable_area_compliance"),
            ("DDC", "driving_direction_compliance"), ("TLC", "traffic_light_compliance"), ("EP", "ego_progress"),
            ("TTC", "time_to_collision_within_bound"), ("LK", "lane_keeping"), ("HC", "history_comfort"),
            ("EC", "two_frame_extended_comfort"))
    for name, _ in cols:
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("EPDMS", justify="right", no_wrap=True)
    table.add_column("ADE", justify="right", no_wrap=True)
    table.add_row(*[f"{m[k]:.3f}" for _, k in cols], f"{100 * m['score']:.2f}", f"{m['ade_m']:.3f}")
    out_console.print(table)


def write_v2(out: Path, plans: Mapping[str, Trajectory], meta: Any, *, run_dir: Path | None = None) -> None:
    """The v2 pickle from a run's plans.

    A two-stage run's ``plans.npz`` names each token's stage and the split's tokens of both stages: the
    stages are taken from it and each is checked against the split (every token once). Plans without that
    (one-stage runs, older files) are split by token length: original tokens to stage one, synthetic
    (17-character) ones to stage two.
    """
    from harness.navhard_plans import read_stage_plans
    from submissions.navsim import write_submission_v2

    staged = read_stage_plans(run_dir) if run_dir is not None else None
    if staged is not None:
        first, second = staged.first, staged.second
        write_submission_v2(out, first, second, meta, expected_first=staged.stage_one_tokens,
                            expected_second=staged.stage_two_tokens)
    else:
        first = {t: p for t, p in plans.items() if len(t) != SYNTHETIC_TOKEN_LENGTH}
        second = {t: p for t, p in plans.items() if len(t) == SYNTHETIC_TOKEN_LENGTH}
        if not second:
            raise ConfigError("a v2 submission needs stage-two (synthetic, 17-character) tokens; the run has "
                              "none (run a two-stage split such as navhard_two_stage, or submit --version 1)")
        write_submission_v2(out, first, second, meta)
    click.echo(f"wrote {out}: {len(first)} stage-one and {len(second)} stage-two tokens, team {meta.team_name!r}")
