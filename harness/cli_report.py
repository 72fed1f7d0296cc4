"""``lead-bench explain navsim|waymo`` and ``lead-bench report``: pictures and pages people read.

Thin shells over ``harness.explain`` / ``harness.explain_plot`` (one scene) and ``harness.report`` (one run).
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape

from harness.cli_common import console, handle_errors


def register(groups: dict[str, click.Group]) -> None:
    groups["main"].add_command(explain)
    groups["main"].add_command(report_cmd)


@click.group()
def explain() -> None:
    """Draw why one scene of a run scored what it did."""


_RUN = click.option("--run", "run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
                    help="Results directory of a lead-bench run.")


@explain.command("navsim")
@_RUN
@click.option("--token", required=True, help="The scene's token (a row of the run).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="PNG to write (default: RUN/explain/TOKEN.png).")
@click.option("--cameras", is_flag=True, help="Show the front cameras (CAM_L0, CAM_F0, CAM_R0) above the picture.")
@handle_errors
def explain_navsim(run_dir: Path, token: str, out: Path | None, cameras: bool) -> None:
    """Bird's-eye picture of one scored NAVSIM scene: map, objects over the horizon, the submitted and simulated
    trajectory with the footprints that broke a rule highlighted, PDM-Closed and the human trajectory, every
    sub-score with its reason, and the comfort signals against their bounds."""
    from harness.explain import explain_navsim_run
    from harness.explain_plot import draw_navsim, write_png

    e = explain_navsim_run(run_dir, token, cameras=cameras)
    path = write_png(draw_navsim(e), out or run_dir / "explain" / f"{token}.png")
    scores = "  ".join(f"{s.short} {s.value:.3f}" for s in e.scores)
    console.print(f"{escape(token)}: {scores}")
    for reason in e.reasons:
        console.print(f"  • {escape(reason)}")
    console.print(f"wrote [bold]{escape(str(path))}[/]")


@explain.command("waymo")
@_RUN
@click.option("--frame", required=True, help="The frame name (a row of the run).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="PNG to write (default: RUN/explain/FRAME.png).")
@handle_errors
def explain_waymo(run_dir: Path, frame: str, out: Path | None) -> None:
    """Picture of one scored Waymo frame: rater trajectories with their trust regions at 3 s and 5 s, the
    prediction, and the score each horizon got."""
    from harness.explain import explain_waymo_run
    from harness.explain_plot import draw_waymo, write_png

    e = explain_waymo_run(run_dir, frame)
    path = write_png(draw_waymo(e), out or run_dir / "explain" / f"{frame}.png")
    console.print(f"{escape(frame)}: RFS {e.score:.3f} (3 s: {e.horizon_scores[0]:.3f}, 5 s: "
                  f"{e.horizon_scores[1]:.3f}; {'inside' if e.fully_inside else 'outside'} the trust regions)")
    console.print(f"wrote [bold]{escape(str(path))}[/]")


@click.command("report")
@_RUN
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="HTML file to write (default: RUN/report.html).")
@click.option("--worst", type=click.IntRange(min=0), default=5, show_default=True,
              help="Explain pictures of this many lowest-scoring scenes.")
@click.option("--bootstrap", "n_boot", type=click.IntRange(min=100), default=2000, show_default=True,
              help="Bootstrap resamples for the 95% intervals.")
@handle_errors
def report_cmd(run_dir: Path, out: Path | None, worst: int, n_boot: int) -> None:
    """One self-contained HTML page of a run (NAVSIM, Waymo or CARLA): headline metrics with 95% bootstrap
    intervals, per-sub-metric bars, score distributions, which rule zeroed how many scenes, the worst scenes
    with their explain pictures, and the run's provenance. No server and no external assets."""
    from harness.report import write_report

    path, rep = write_report(run_dir, out or run_dir / "report.html", worst=worst, n_boot=n_boot)
    console.print(f"wrote [bold]{escape(str(path))}[/] ({rep.benchmark}: {rep.counts_text}; "
                  f"{len(rep.worst)} worst scene(s), {sum(w.picture is not None for w in rep.worst)} with pictures)")
