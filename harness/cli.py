"""The ``lead-bench`` command line. Thin shells over library functions; the only place that reads the
environment (``OPENSCENE_DATA_ROOT``, ``NUPLAN_MAPS_ROOT``, ``LEAD_BENCH_CACHE``).

Exit codes: 0 success; 1 the run finished but some tokens failed; 2 bad input or usage (the message names
the file, token and what was expected); 3 an unexpected internal error (please report it).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

import harness
from harness.cli_common import (  # noqa: F401  (re-exported for older imports)
    EXIT_BAD_INPUT,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_PARTIAL,
    cache_root,
    console,
    handle_errors,
    out_console,
    progress_bar,
)
from harness.errors import ConfigError

_handle_errors = handle_errors
_bar_progress = progress_bar


@contextmanager
def _bar(description: str) -> Iterator[Progress]:
    with progress_bar() as progress:
        yield progress


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(harness.__version__, prog_name="lead-bench")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def main(verbose: int) -> None:
    """lead-bench: score one driving policy on NAVSIM, Waymo E2E and CARLA.

    With no data root, commands run on the embedded world: a small deterministic world written in each
    dataset's true on-disk format, built once into the cache directory ($LEAD_BENCH_CACHE, default
    ~/.cache/lead-bench).
    """
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(message)s", handlers=[RichHandler(console=console, show_path=False)])
    if verbose == 0:
        logging.getLogger("harness").setLevel(logging.INFO)
        logging.getLogger("adapters").setLevel(logging.INFO)


# --- list --------------------------------------------------------------------------------------------------


@main.command("list")
def list_cmd() -> None:
    """Show the adapters, agents and metrics lead-bench knows."""
    from harness.agents import AGENTS

    table = Table(title="lead-bench components")
    table.add_column("kind")
    table.add_column("name")
    table.add_column("what it is")
    adapters = (("navsim", "OpenScene/NAVSIM logs + sensor blobs + nuPlan GeoPackage maps"),
                ("waymo", "Waymo Open Dataset E2E: E2EDFrame TFRecord shards, cluster JSON, test manifest"),
                ("carla", "LEAD route folders (CARLA): images, LiDAR .laz, boxes, BEV, metas; leaderboard results"))
    for name, what in adapters:
        table.add_row("adapter", name, what)
    for name, (_, what) in sorted(AGENTS.items()):
        table.add_row("agent", name, what)
    metrics = (("pdms", "NAVSIM v1.1 PDM score (NC, DAC, DDC, TTC, C, EP)"),
               ("epdms", "NAVSIM v2.2 extended PDM score (adds TLC, LK, HC, EC; human filter; two-stage)"),
               ("rfs", "Waymo E2E rater feedback score (trust regions at 3 s / 5 s), per-cluster mean"),
               ("ade/fde", "average / final displacement error against the logged future (m, lower is better)"),
               ("carla-ds", "CARLA leaderboard driving score = route completion x infraction penalty"))
    for name, what in metrics:
        table.add_row("metric", name, what)
    out_console.print(table)


# --- world ------------------------------------------------------------------------------------------------


@main.group()
def world() -> None:
    """Build the embedded world in the datasets' on-disk formats."""


def _spec(seed: int, logs: int, duration: float, camera_scale: float) -> Any:
    from adapters.navsim.writer import NavsimWriteOptions
    from harness.embedded import EmbeddedWorldSpec
    from harness.world.build import WorldConfig

    if logs < 2:
        raise ConfigError(f"--logs must be at least 2 (one train and one test log), got {logs}")
    if duration < 8.0:
        raise ConfigError(f"--duration must be at least 8 s (one NAVSIM scene is 7 s), got {duration}")
    if not 0.05 <= camera_scale <= 1.0:
        raise ConfigError(f"--camera-scale must be in [0.05, 1], got {camera_scale}")
    return EmbeddedWorldSpec(WorldConfig(seed=seed, num_logs=logs, duration_s=duration),
                             NavsimWriteOptions(camera_scale=camera_scale))


def _build(out: Path, spec: Any, workers: int) -> Path:
    from harness.embedded import build_embedded_world

    with _bar("writing world logs") as progress:
        task = progress.add_task("writing world logs", total=None)
        return build_embedded_world(
            out, spec, workers=workers,
            on_start=lambda n: progress.update(task, total=n),
            on_log_done=lambda _name: progress.advance(task),
        )


@world.command("build")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output directory (NAVSIM layout: navsim_logs/, sensor_blobs/, maps/).")
@click.option("--seed", type=int, default=0, show_default=True, help="World seed; the same seed gives the same files.")
@click.option("--logs", type=int, default=8, show_default=True, help="Number of logs (split between train and test).")
@click.option("--duration", type=float, default=30.0, show_default=True, help="Seconds per log.")
@click.option("--camera-scale", type=float, default=0.25, show_default=True,
              help="Camera resolution relative to nuPlan's 1920x1080.")
@click.option("--workers", type=int, default=None, help="Rendering processes (default: CPU cores).")
@_handle_errors
def world_build(out: Path, seed: int, logs: int, duration: float, camera_scale: float, workers: int | None) -> None:
    """Generate the embedded world and write it in NAVSIM/OpenScene format with nuPlan maps, plus its WOD-E2E
    shards (OUT/waymo) and a small LEAD/CARLA route copy of its train logs (OUT/carla)."""
    from harness.embedded import default_workers

    root = _build(out, _spec(seed, logs, duration, camera_scale), workers or default_workers())
    console.print(f"world written to [bold]{root}[/]  (use --data-root {root} --maps-root {root / 'maps'})")


def embedded_world_root(workers: int | None = None) -> Path:
    """The cached default embedded world, built on first use."""
    from harness.embedded import EmbeddedWorldSpec, default_workers, is_built

    spec = EmbeddedWorldSpec()
    root = cache_root() / f"world-seed{spec.config.seed}"
    if not is_built(root, spec):
        console.print(f"building the embedded world into {root} (once; later runs reuse it)")
        _build(root, spec, workers or default_workers())
    return root


# --- run ----------------------------------------------------------------------------------------------


@main.group()
def run() -> None:
    """Run an agent on a benchmark split and score it."""


@run.command("navsim")
@click.option("--data-root", type=click.Path(path_type=Path), default=None,
              help="Directory with navsim_logs/ and sensor_blobs/ (default: $OPENSCENE_DATA_ROOT, else the embedded world).")
@click.option("--maps-root", type=click.Path(path_type=Path), default=None,
              help="nuPlan maps root with nuplan-maps-v1.0.json (default: $NUPLAN_MAPS_ROOT, else DATA_ROOT/maps).")
@click.option("--split", default="test", show_default=True,
              help="Log folder under navsim_logs/ to run on (NAVSIM's navtest scene filter: 4 history and 10 "
                   "future frames, every frame, route required).")
@click.option("--agent", "agent_name", default="cv", show_default=True,
              help="cv | mlp | human, or the path of an ego-status MLP checkpoint (.pt). `mlp` alone trains "
                   "one on the data root's train split first (seconds) and caches it.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Results directory (default: runs/navsim-AGENT-SPLIT-TIME).")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Metric cache (scoring scenes + PDM-Closed), reused across runs "
                   "(default: the lead-bench cache directory).")
@click.option("--batch-size", type=int, default=64, show_default=True, help="Scenes per agent call and scoring batch.")
@click.option("--workers", type=int, default=1, show_default=True,
              help="Build the metric cache with N workers (local processes, or Ray with --engine ray) and "
                   "score PDMS with N local processes; navhard_two_stage: score over N forked processes.")
@click.option("--engine", type=click.Choice(["processes", "ray"]), default="processes", show_default=True,
              help="Scale-out engine for the metric cache; ray starts a local cluster unless --ray-address.")
@click.option("--ray-address", default=None, help="Join an existing Ray cluster for metric caching (implies ray).")
@click.option("--resume", is_flag=True, help="Keep tokens already finished in OUT and run only the rest.")
@click.option("--metric", type=click.Choice(["pdms", "epdms"]), default="pdms", show_default=True,
              help="pdms: NAVSIM v1.1 PDMS; epdms: NAVSIM v2.2 one-stage EPDMS (non-reactive traffic).")
@click.option("--human-filter", type=click.Choice(["on", "off"]), default="on", show_default=True,
              help="EPDMS only: NAVSIM v2's human filter (off reports the agent's own sub-scores).")
@click.option("--traffic", type=click.Choice(["reactive", "non-reactive"]), default=None,
              help="EPDMS traffic agents (default: reactive for --split navhard_two_stage, else non-reactive).")
@click.option("--ckpt", "ckpts", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="--agent tfv6: a checkpoint of `lead-bench train` (repeat for an ensemble).")
@_handle_errors
def run_navsim(data_root: Path | None, maps_root: Path | None, split: str, agent_name: str, out: Path | None,
               cache_dir: Path | None, batch_size: int, workers: int, engine: str, ray_address: str | None,
               resume: bool, metric: str = "pdms", human_filter: str = "on", traffic: str | None = None,
               ckpts: tuple[Path, ...] = ()) -> None:
    """Run AGENT on a NAVSIM split and score it with NAVSIM v1.1's PDM score (PDMS).

    Prints NC, DAC, DDC, TTC, C, EP and PDMS (x100, mean over valid tokens) and writes per-token rows with
    NAVSIM's column names (plus ADE/FDE in metres), the official-layout CSV with its `average` row, and
    counts of expected / scored / failed tokens. Exit code 1 if any token failed (listed in failures.csv).
    """
    from adapters.navsim.reader import NavsimReader
    from harness.runner import RunCallbacks, run_navsim

    data_root, maps_root = _data_roots(data_root, maps_root)
    if split == "navhard_two_stage":  # NAVSIM v2 two-stage (harness/cli_navhard.py)
        from harness.cli_navhard import run_two_stage

        if metric != "epdms":
            raise ConfigError("--split navhard_two_stage is scored with --metric epdms")
        out = out or Path("runs") / f"navsim-{Path(agent_name).stem}-{split}-{datetime.now():%Y%m%d-%H%M%S}"
        return run_two_stage(data_root, maps_root, _resolve_agent(agent_name, data_root), out,
                             cache_dir or _metric_cache_dir(data_root, split), traffic=traffic or "reactive",
                             human_filter=human_filter == "on", batch_size=batch_size, workers=workers,
                             config={"data_root": str(data_root), "maps_root": str(maps_root), "agent": agent_name})
    if traffic == "reactive":  # refused rather than silently scored with log replay
        raise ConfigError("--traffic reactive is implemented for --split navhard_two_stage only; one-stage runs "
                          "replay the logged traffic (--traffic non-reactive)")
    reader = NavsimReader(data_root, split)
    agent = _resolve_agent(agent_name, data_root, ckpts)
    _check_maps(reader, maps_root)
    out = out or Path("runs") / f"navsim-{Path(agent_name).stem}-{split}-{datetime.now():%Y%m%d-%H%M%S}"
    cache_dir = cache_dir or _metric_cache_dir(data_root, split)
    config = {"benchmark": "navsim", "data_root": str(data_root), "maps_root": str(maps_root), "split": split,
              "agent": agent_name, "batch_size": batch_size, "cache_dir": str(cache_dir), "workers": workers,
              "scene_filter": reader.scene_filter.__dict__}
    if metric == "epdms":
        from harness.cli_epdms import run_epdms

        return run_epdms(reader, agent, out, maps_root=maps_root, cache_dir=cache_dir, batch_size=batch_size,
                         resume=resume, workers=workers, engine="ray" if ray_address else engine,
                         ray_address=ray_address, human_filter=human_filter == "on", config=config)
    with _bar("navsim") as progress:
        task = progress.add_task("starting", total=None)

        def phase(name: str, total: int) -> None:
            progress.reset(task, total=total, description=name)

        summary = run_navsim(
            reader, agent, out, maps_root=maps_root, cache_dir=cache_dir, batch_size=batch_size, resume=resume,
            workers=workers, ray_address=ray_address, engine="ray" if ray_address else engine, config=config,
            callbacks=RunCallbacks(on_phase=phase, on_advance=lambda n: progress.advance(task, n)),
        )
    title = f"NAVSIM {split} — agent {agent.name}{' (privileged)' if agent.privileged else ''} — PDMS v1.1"
    _print_pdms(summary, title)
    console.print(f"results in [bold]{out}[/]")
    if summary.failed:
        sys.exit(EXIT_PARTIAL)


def _data_roots(data_root: Path | None, maps_root: Path | None) -> tuple[Path, Path]:
    """Resolve the data and maps roots from options, environment, or the embedded world."""
    env_data = os.environ.get("OPENSCENE_DATA_ROOT")
    data_root = data_root or (Path(env_data) if env_data else None) or embedded_world_root()
    if not data_root.is_dir():
        raise ConfigError(f"data root {data_root} does not exist (expected a directory with navsim_logs/)")
    env_maps = os.environ.get("NUPLAN_MAPS_ROOT")
    maps_root = maps_root or (Path(env_maps) if env_maps else None) or data_root / "maps"
    return data_root, maps_root


def _metric_cache_dir(data_root: Path, split: str) -> Path:
    from harness.cli_common import metric_cache_dir  # keyed on the inputs' identity, not the path alone

    return metric_cache_dir(data_root, split)


def _resolve_agent(name: str, data_root: Path, ckpts: tuple[Path, ...] = ()) -> Any:
    """An agent by registry name or checkpoint path; `mlp` trains (once, cached) on DATA_ROOT's train split;
    `tfv6` runs the --ckpt checkpoint(s)."""
    import hashlib

    from adapters.navsim.reader import NavsimReader
    from harness.agents import build_agent
    from harness.runner import train_mlp_on_split

    if name == "tfv6":
        if not ckpts:
            raise ConfigError("--agent tfv6 needs --ckpt PATH (repeat it for an ensemble)")
        return build_agent("tfv6", checkpoint=list(ckpts), source="navsim")
    if ckpts:
        raise ConfigError(f"--ckpt is for --agent tfv6, not {name}")

    if name.endswith(".pt") or Path(name).is_file():
        return build_agent("mlp", checkpoint=Path(name))
    if name == "mlp":
        key = hashlib.blake2b(str(data_root.resolve()).encode(), digest_size=6).hexdigest()
        ckpt = cache_root() / "checkpoints" / f"ego-mlp-{key}.pt"
        if not ckpt.is_file():
            console.print(f"training the ego-status MLP on {data_root}/navsim_logs/train (once; cached in {ckpt})")
            train_mlp_on_split(NavsimReader(data_root, "train"), ckpt)
        return build_agent("mlp", checkpoint=ckpt)
    return build_agent(name)


def _check_maps(reader: Any, maps_root: Path) -> None:
    """Open the map of every location the split uses, so a bad maps root fails before any work."""
    from adapters.navsim.map_reader import read_nuplan_map

    locations = {reader.log_frames(p.stem)[0].map_location for p in reader.log_paths()}
    for loc in sorted(locations):
        read_nuplan_map(maps_root, loc)


# --- score / submit ----------------------------------------------------------------------------------


@main.group()
def score() -> None:
    """Score a leaderboard submission file as the leaderboard's server would."""


@score.command("navsim")
@click.option("--submission", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="A NAVSIM v1 submission pickle (read with a restricted unpickler).")
@click.option("--data-root", type=click.Path(path_type=Path), default=None,
              help="Directory with navsim_logs/ (sensor blobs are not needed). Default: $OPENSCENE_DATA_ROOT, "
                   "else the embedded world.")
@click.option("--maps-root", type=click.Path(path_type=Path), default=None, help="nuPlan maps root.")
@click.option("--split", default="test", show_default=True,
              help="Log folder under navsim_logs/ (navtest scene filter), or a file with one token per line.")
@click.option("--log-split", default="test", show_default=True,
              help="With a token file as --split: the log folder the tokens come from.")
@click.option("--metric", type=click.Choice(["pdms", "epdms"]), default="pdms", show_default=True,
              help="epdms: one-stage EPDMS v2.2 of a v1-style pickle (predictions).")
@click.option("--human-filter", type=click.Choice(["on", "off"]), default="on", show_default=True,
              help="EPDMS only: NAVSIM v2's human filter.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None, help="Results directory.")
@click.option("--workers", type=int, default=1, show_default=True, help="Metric-cache workers (Ray or processes) and "
              "PDMS scoring processes; v2 submissions: two-stage scoring processes.")
@_handle_errors
def score_navsim(submission: Path, data_root: Path | None, maps_root: Path | None, split: str, log_split: str,
                 metric: str, out: Path | None, workers: int, human_filter: str = "on") -> None:
    """Score SUBMISSION with PDMS v1.1 from logs and maps alone. The submission's tokens must equal the
    split's: missing or extra tokens are an error that lists them."""
    from dataclasses import replace as dc_replace

    from adapters.navsim.reader import NavsimReader
    from adapters.navsim.scene_filter import NAVTEST_FILTER
    from harness.runner import RunCallbacks, SubmissionReplay, run_navsim
    from submissions.navsim import read_submission

    sub = read_submission(submission)
    if sub.version == 2 and metric == "epdms":  # two-stage navhard scoring (harness/cli_navhard.py)
        from harness.cli_navhard import score_v2_submission

        data_root, maps_root = _data_roots(data_root, maps_root)
        out = out or Path("runs") / f"navsim-submission-{submission.stem}-{datetime.now():%Y%m%d-%H%M%S}"
        return score_v2_submission(sub, data_root, maps_root, out, _metric_cache_dir(data_root, "navhard_two_stage"),
                                   traffic="reactive", human_filter=human_filter == "on", workers=workers,
                                   config={"submission": str(submission), "team_name": sub.metadata.team_name})
    if sub.version != 1:
        raise ConfigError(f"{submission} is a v{sub.version} submission; PDMS scores v1 files (predictions)")
    if len(sub.predictions) != 1:
        raise ConfigError(f"{submission} has {len(sub.predictions)} seeds; the server scores exactly one")
    predictions = sub.predictions[0]
    data_root, maps_root = _data_roots(data_root, maps_root)
    token_file = Path(split)
    if token_file.is_file():
        tokens = tuple(t.strip() for t in token_file.read_text(encoding="utf-8").split() if t.strip())
        reader = NavsimReader(data_root, log_split, scene_filter=dc_replace(NAVTEST_FILTER, tokens=tokens))
        expected = set(tokens)
        missing_in_logs = expected - {r.token for r in reader.index()}
        if missing_in_logs:
            raise ConfigError(f"{len(missing_in_logs)} token(s) of {token_file} are not scenes of "
                              f"navsim_logs/{log_split}: {sorted(missing_in_logs)[:10]}")
    else:
        reader = NavsimReader(data_root, split)
        expected = {r.token for r in reader.index()}
    missing, extra = expected - set(predictions), set(predictions) - expected
    if missing or extra:
        raise ConfigError(f"the submission's tokens differ from the split's: {len(missing)} missing "
                          f"{sorted(missing)[:10]}, {len(extra)} extra {sorted(extra)[:10]}")
    out = out or Path("runs") / f"navsim-submission-{submission.stem}-{datetime.now():%Y%m%d-%H%M%S}"
    config = {"benchmark": "navsim", "submission": str(submission), "data_root": str(data_root),
              "maps_root": str(maps_root), "split": split, "metric": metric,
              "team_name": sub.metadata.team_name}
    if metric == "epdms":
        from harness.cli_epdms import run_epdms

        return run_epdms(reader, SubmissionReplay(predictions), out, maps_root=maps_root,
                         cache_dir=_metric_cache_dir(data_root, reader.split), workers=workers,
                         human_filter=human_filter == "on", config=config,
                         title=f"NAVSIM submission {submission.name} ({sub.metadata.team_name})")
    with _bar("scoring") as progress:
        task = progress.add_task("starting", total=None)
        summary = run_navsim(
            reader, SubmissionReplay(predictions), out, maps_root=maps_root,
            cache_dir=_metric_cache_dir(data_root, reader.split), workers=workers, config=config,
            callbacks=RunCallbacks(on_phase=lambda n, t: progress.reset(task, total=t, description=n),
                                   on_advance=lambda n: progress.advance(task, n)),
        )
    _print_pdms(summary, f"NAVSIM submission {submission.name} ({sub.metadata.team_name}) — PDMS v1.1")
    console.print(f"results in [bold]{out}[/]")
    if summary.failed:
        sys.exit(EXIT_PARTIAL)


@main.group()
def submit() -> None:
    """Write leaderboard submission files from a run."""


@submit.command("navsim")
@click.option("--run", "run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="Results directory of `lead-bench run navsim` (its plans.npz).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="submission.pkl to write.")
@click.option("--team", required=True, help="Team name (open-source entries: '<a href=URL>Method</a>').")
@click.option("--authors", required=True, help="Authors, comma-separated.")
@click.option("--email", required=True)
@click.option("--institution", required=True)
@click.option("--country", required=True, help="Written under NAVSIM's key 'country / region'.")
@click.option("--version", "version", type=click.Choice(["1", "2"]), default="1", show_default=True,
              help="1: predictions (navtest); 2: first_stage_predictions (16-character original tokens) and "
                   "second_stage_predictions (17-character synthetic tokens).")
@_handle_errors
def submit_navsim(run_dir: Path, out: Path, team: str, authors: str, email: str, institution: str,
                  country: str, version: str = "1") -> None:
    """Write the NAVSIM v1 leaderboard pickle from a run: every token of the run once, 8 finite poses at
    0.5 s, metadata set; validated, written atomically and read back. It refers to navsim's and nuPlan's
    own classes, so it loads where navsim is installed and lead-bench is not."""
    import json

    from harness.runner import read_plans
    from submissions.navsim import SubmissionMetadata, write_submission_v1

    plans = read_plans(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    if summary.get("privileged"):
        raise ConfigError(f"run {run_dir} used a privileged agent ({summary.get('agent')}); it reads ground "
                          "truth and cannot be submitted")
    counts = summary.get("counts", {})
    if counts.get("failed"):
        raise ConfigError(f"run {run_dir} has {counts['failed']} failed tokens; the leaderboard needs every "
                          "token (rerun with --resume after fixing them)")
    names = [a.strip() for a in authors.split(",") if a.strip()]
    meta = SubmissionMetadata(team, names if len(names) > 1 else (names[0] if names else ""), email, institution,
                              country)
    if version == "2":
        from harness.cli_epdms import write_v2

        return write_v2(out, plans, meta, run_dir=run_dir)
    from harness.navhard_plans import read_stage_plans

    if read_stage_plans(run_dir) is not None:
        raise ConfigError(f"run {run_dir} is a two-stage run: submit it with --version 2")
    write_submission_v1(out, [plans], meta)
    console.print(f"wrote {out}: {len(plans)} tokens, 1 seed, team {team!r}")


def _print_pdms(summary: Any, title: str) -> None:
    m = summary.metrics
    table = Table(title=title, caption=f"{summary.expected} tokens: {summary.scored} scored, "
                                       f"{summary.failed} failed; PDMS x100, ADE in metres")
    for col in ("NC", "DAC", "DDC", "TTC", "C", "EP", "PDMS", "ADE"):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_row(*[f"{m[k]:.3f}" for k in ("no_at_fault_collisions", "drivable_area_compliance",
                                            "driving_direction_compliance", "time_to_collision_within_bound",
                                            "comfort", "ego_progress")],
                  f"{100 * m['score']:.2f}", f"{m['ade_m']:.3f}")
    out_console.print(table)


# --- compare ------------------------------------------------------------------------------------------


@main.command("compare")
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["table", "markdown", "csv", "html"]), default="table",
              show_default=True, help="Output format.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to this file instead of standard output.")
@click.option("--bootstrap", "n_boot", type=int, default=2000, show_default=True,
              help="Bootstrap resamples over tokens for the 95% intervals and the paired test.")
@click.option("--plots", "plots_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write PNGs here: means with CIs (and published values), paired deltas with CIs and p-values, "
                   "per-token scatter against the first run.")
@click.option("--published/--no-published", default=False, show_default=True,
              help="Add the specs' published baselines for the runs' benchmarks as reference rows (marked "
                   "[published], with split and scorer version; no CI or paired test).")
@_handle_errors
def compare_cmd(runs: tuple[Path, ...], fmt: str, out: Path | None, n_boot: int, plots_dir: Path | None,
                published: bool) -> None:
    """Compare results directories: metric means with 95% bootstrap intervals over tokens, and paired
    differences to the first run (on the tokens both scored) with a paired-bootstrap p-value. Scores are
    shown x100."""
    from harness.compare import compare_runs, load_run, wide_table
    from harness.published import published_for

    loaded = [load_run(r) for r in runs]
    refs = published_for({str(r.summary.get("benchmark")) for r in loaded}) if published else ()
    long = compare_runs(loaded, n_boot=n_boot, published=refs)
    wide = wide_table(long)
    if plots_dir is not None:
        from harness.compare_plots import write_plots

        written = write_plots(loaded, long, plots_dir)
        console.print(f"wrote {len(written)} plot(s) to [bold]{plots_dir}[/]")
    if fmt == "table":
        table = Table(title="lead-bench compare (mean [95% CI], Δ vs first run [95% CI] p=paired bootstrap)")
        table.add_column("run")
        for col in wide.columns:
            table.add_column(col, justify="right")
        for name, row in wide.iterrows():
            table.add_row(escape(str(name)), *[escape(str(v)) if isinstance(v, str) else "" for v in row])
        if out is None:
            out_console.print(table)
        else:
            Console(file=out.open("w"), width=200).print(table)
        return
    text = {"markdown": lambda: wide.to_markdown() if _has_tabulate() else _markdown(wide),
            "csv": lambda: long.to_csv(index=False),
            "html": lambda: wide.to_html(border=0)}[fmt]()
    if out is None:
        click.echo(text)
    else:
        out.write_text(text, encoding="utf-8")


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


def _markdown(df: Any) -> str:
    cols = ["run", *map(str, df.columns)]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for name, row in df.iterrows():
        lines.append("| " + " | ".join([str(name), *["" if not isinstance(v, str) else v for v in row]]) + " |")
    return "\n".join(lines)


# --- commands defined in their own modules ---------------------------------------------------------------
# Each module exposes ``register(groups)`` and adds its commands to the named groups ("main", "run",
# "score", "submit", ...). Keeping benchmarks in separate modules keeps this file a thin shell.
_COMMAND_MODULES: tuple[str, ...] = ("harness.cli_carla", "harness.cli_waymo", "harness.cli_carla_world",
                                     "harness.cli_navhard", "harness.cli_report",
                                     "harness.cli_train")


def _register_command_modules() -> None:
    import importlib

    groups = {"main": main, "run": run, "score": score, "submit": submit, "world": world}
    for module_name in _COMMAND_MODULES:
        importlib.import_module(module_name).register(groups)


_register_command_modules()


if __name__ == "__main__":  # pragma: no cover
    main()
