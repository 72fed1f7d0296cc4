"""`lead-bench run carla`: CARLA leaderboard 2.0 / Bench2Drive driving scores from result JSON files."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from harness.cli_common import EXIT_PARTIAL, console, handle_errors, out_console

_SHORT = {"collisions_pedestrian": "CP", "collisions_vehicle": "CV", "collisions_layout": "CL", "red_light": "RL",
          "stop_infraction": "SS", "outside_route_lanes": "OR", "route_dev": "RD", "route_timeout": "RT",
          "vehicle_blocked": "AB", "yield_emergency_vehicle_infractions": "YE", "scenario_timeouts": "ST",
          "min_speed_infractions": "MS"}


def register(groups: dict[str, click.Group]) -> None:
    groups["run"].add_command(run_carla)


@click.command("carla")
@click.option("--results", "results", type=click.Path(path_type=Path), multiple=True, required=True,
              help="A leaderboard result JSON (checkpoint_endpoint.json, Bench2Drive merged.json) or a directory "
                   "searched recursively; repeat for several.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Results directory (default: runs/carla-TIME).")
@click.option("--protocol", type=click.Choice(["auto", "leaderboard2", "bench2drive"]), default="auto",
              show_default=True,
              help="Scoring rules: leaderboard 2.0, or Bench2Drive's fork (min-speed events carry no penalty; "
                   "success rate). auto: Bench2Drive if the records carry its fields or the file is its merge.")
@click.option("--routes-total", type=int, default=None,
              help="Routes in the evaluation (the means' denominator; Bench2Drive: 220). Default: the sum of the "
                   "files' progress totals, else the number of records.")
@click.option("--routes/--no-routes", "show_routes", default=True, show_default=True,
              help="Print the per-route table.")
@handle_errors
def run_carla(results: tuple[Path, ...], out: Path | None, protocol: str, routes_total: int | None,
              show_routes: bool) -> None:
    """Score CARLA leaderboard 2.0 / Bench2Drive result files (no CARLA server needed).

    Recomputes each route's infraction penalty with the leaderboard's coefficients, checks it against the
    stored scores, and writes per-route rows and a summary whose driving score, route completion and infraction
    penalty are the leaderboard's global means. Exit code 1 if routes did not finish (listed), 2 for a file that
    is not valid JSON or lacks a key.
    """
    from harness.carla_eval import score_carla_results
    from metrics.carla import INFRACTION_TYPES, Protocol
    from metrics.carla.records import STATUS_COMPLETED

    out = out or Path("runs") / f"carla-{datetime.now():%Y%m%d-%H%M%S}"
    chosen = None if protocol == "auto" else Protocol(protocol)
    run = score_carla_results(results, out, protocol=chosen, routes_total=routes_total)
    ev, agg = run.evaluation, run.evaluation.aggregate
    if run.skipped:
        console.print(f"skipped {len(run.skipped)} JSON file(s) without '_checkpoint' (not leaderboard results)")
    if show_routes:
        table = Table(title=f"CARLA routes ({agg.protocol.value} rules)", pad_edge=False)
        id_width = max(len(r.record.route_id) for r in ev.routes)
        table.add_column("route", no_wrap=True, min_width=id_width)
        table.add_column("status", min_width=len(STATUS_COMPLETED))
        for col in ("RC %", "IP", "DS", "len m"):
            table.add_column(col, justify="right", no_wrap=True)
        table.add_column("infr.", overflow="fold")
        for r in ev.routes:
            infr = " ".join(f"{_SHORT[k]}{n}" for k in INFRACTION_TYPES if (n := r.infraction_counts[k]))
            style = None if r.outcome.finished else "red"
            table.add_row(escape(r.record.route_id), escape(r.record.status), f"{r.route_completion_pct:.2f}",
                          f"{r.infraction_penalty:.4f}", f"{r.driving_score:.2f}", f"{r.record.route_length_m:.0f}",
                          infr, style=style)
        out_console.print(table)
        used = [k for k in INFRACTION_TYPES if any(r.infraction_counts[k] for r in ev.routes)]
        if used:
            out_console.print("infractions: " + ", ".join(f"{_SHORT[k]} {k}" for k in used), soft_wrap=True,
                              highlight=False)
    summary = Table(title="CARLA aggregate (leaderboard global means over all routes of the evaluation)")
    cols = ["DS", "RC", "IP", "DS finished", "routes"] + (["SR %"] if agg.protocol is Protocol.BENCH2DRIVE else [])
    for col in cols:
        summary.add_column(col, justify="right")
    ds_f = "–" if agg.finished_means is None else f"{agg.finished_means[0]:.3f}"
    cells = [f"{agg.driving_score:.3f}", f"{agg.route_completion:.3f}", f"{agg.infraction_penalty:.4f}", ds_f,
             f"{agg.routes_finished}/{agg.routes_total}"]
    if agg.protocol is Protocol.BENCH2DRIVE:
        cells.append(f"{agg.success_rate:.2f}")
    summary.add_row(*cells)
    out_console.print(summary)
    out_console.print(f"{agg.routes_total} routes: {agg.routes_finished} finished, {len(agg.unfinished)} unfinished, "
                      f"{agg.routes_missing} without a record (count as 0); {agg.km_driven:.3f} km driven "
                      "(RC route completion %, IP infraction penalty, DS driving score)", soft_wrap=True,
                      highlight=False)
    per_km = Table(title="infractions (leaderboard global record)")
    for col in ("type", "count", "per km"):
        per_km.add_column(col, justify="left" if col == "type" else "right")
    for k in INFRACTION_TYPES:
        value = agg.infractions_per_km[k]
        per_km.add_row(k, str(agg.infraction_counts[k]),
                       f"{value:.3f} km total" if k == "outside_route_lanes" else f"{value:.3f}")
    out_console.print(per_km)
    for check in ev.checks:
        console.print(f"[yellow]check:[/] {escape(check)}", highlight=False, soft_wrap=True)
    console.print(f"results in [bold]{out}[/]")
    if agg.unfinished or agg.routes_missing:
        for u in agg.unfinished:
            console.print(f"[red]unfinished:[/] {escape(u.route_id)} ({escape(u.status)}) in {escape(u.source)}",
                          highlight=False, soft_wrap=True)
        if agg.routes_missing:
            console.print(f"[red]{agg.routes_missing} route(s) have no record[/] (the files' progress says "
                          f"{agg.routes_total} routes, {agg.routes_recorded} recorded)")
        sys.exit(EXIT_PARTIAL)
