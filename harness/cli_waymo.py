"""``lead-bench run waymo``, ``score waymo`` and ``submit waymo``: thin shells over :mod:`harness.waymo_runner`.

Data root: ``--data-root``, else ``$WAYMO_E2E_DATA_ROOT``, else the embedded world's ``waymo/`` folder (built
on first use). Side files are looked up in the data root unless given: the val cluster mapping
(``val_sequence_name_to_scenario_cluster.json``) and the test manifest (``test_sequence_frames_for_submission.json``).
"""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from harness.cli_common import EXIT_PARTIAL, cache_root, console, handle_errors, out_console, progress_bar
from harness.errors import ConfigError

DATA_ROOT_ENV = "WAYMO_E2E_DATA_ROOT"
#: Agents that fit Waymo frames (the registry's others need NAVSIM inputs or checkpoints).
WAYMO_AGENTS = ("cv", "human", "tfv6")
#: Shard index cache under the lead-bench cache root (adapters/waymo/index_cache.py).
INDEX_CACHE_DIR = "waymo-index"


def _data_root(data_root: Path | None) -> Path:
    if data_root is None and os.environ.get(DATA_ROOT_ENV):
        data_root = Path(os.environ[DATA_ROOT_ENV])
    if data_root is None:
        from harness.cli import embedded_world_root  # lazy: harness.cli imports this module

        data_root = embedded_world_root() / "waymo"
    if not data_root.is_dir():
        raise ConfigError(f"Waymo data root {data_root} is not a directory (expected the bucket's shards and "
                          "side files, or train/ val/ test/ folders of *.tfrecord* files)")
    return data_root


def _clusters(data_root: Path, path: Path | None, split: str) -> tuple[dict[str, str] | None, Path | None]:
    from adapters.waymo.layout import default_clusters_path, read_clusters

    if path is None:
        path = default_clusters_path(data_root)
        if not path.is_file():
            if split == "val":
                console.print(f"[yellow]warning:[/] no cluster mapping ({path.name}) in {data_root}: only the "
                              "frame mean is reported, not the leaderboard's mean of cluster means (--clusters)")
            return None, None
    return read_clusters(path), path


def _reader(data_root: Path, split: str, files: str | None, skip_corrupt: bool) -> Any:
    from adapters.waymo.reader import WaymoReader

    reader = WaymoReader(data_root, split, files=files, skip_corrupt=skip_corrupt,
                         index_cache=cache_root() / INDEX_CACHE_DIR)
    with progress_bar() as progress:
        progress.add_task(f"indexing {len(reader.shards)} {split} shard(s)", total=None)
        reader.entries()
    console.print(f"{split}: {len(reader.entries())} frames in {len(reader.shards)} shard(s) "
                  f"({reader.cached_shards} indexed from the cache)")
    if reader.num_skipped:
        console.print(f"[yellow]warning:[/] {reader.num_skipped} corrupt record(s) skipped (--skip-corrupt); "
                      f"first: {escape(str(reader.skipped[0].shard))} at byte offset {reader.skipped[0].offset}: "
                      f"{escape(reader.skipped[0].reason)}", soft_wrap=True)
    return reader


def _data_options(fn: Any) -> Any:
    for opt in reversed([
        click.option("--data-root", type=click.Path(path_type=Path), default=None,
                     help=f"WOD-E2E data root (default: ${DATA_ROOT_ENV}, else the embedded world's waymo/)."),
        click.option("--files", default=None,
                     help="Glob of the shard files (absolute or relative to the data root); replaces discovery."),
        click.option("--skip-corrupt", is_flag=True,
                     help="Skip and count records with damaged framing (truncated, length CRC) instead of stopping "
                          "at the first one (exit code 1). A data CRC mismatch fails its frame either way."),
        click.option("--clusters", "clusters_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     default=None, help="Scenario-cluster JSON {sequence: cluster} (default: the data root's "
                                        "val_sequence_name_to_scenario_cluster.json)."),
    ]):
        fn = opt(fn)
    return fn


def register(groups: dict[str, click.Group]) -> None:
    groups["run"].add_command(run_waymo_cmd)
    groups["score"].add_command(score_waymo_cmd)
    groups["submit"].add_command(submit_waymo_cmd)


# --- run --------------------------------------------------------------------------------------------------


@click.command("waymo")
@_data_options
@click.option("--split", type=click.Choice(["val", "test", "train"]), default="val", show_default=True,
              help="val/train: plan and score the frames with rater labels; test: plan the manifest's frames "
                   "(no scores).")
@click.option("--agent", "agent_name", type=click.Choice(WAYMO_AGENTS), default="cv", show_default=True,
              help="cv: constant velocity (last past velocity vector); human: the logged future (privileged); "
                   "tfv6: a trained TransFuser v6 (--ckpt).")
@click.option("--manifest", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Test: the submission manifest JSON {sequence: frame index} (default: the data root's "
                   "test_sequence_frames_for_submission.json).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Results directory (default: runs/waymo-AGENT-SPLIT-TIME).")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True,
              help="Frames per agent call.")
@click.option("--ckpt", "ckpts", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="--agent tfv6: a checkpoint of `lead-bench train` (repeat for an ensemble).")
@handle_errors
def run_waymo_cmd(data_root: Path | None, files: str | None, skip_corrupt: bool, clusters_path: Path | None,
                  split: str, agent_name: str, manifest: Path | None, out: Path | None, batch_size: int,
                  ckpts: tuple[Path, ...] = ()) -> None:
    """Run AGENT on a WOD-E2E split. On val: Rater Feedback Score per frame, per scenario cluster and as the
    leaderboard's mean of cluster means, ADE@3s/@5s against the top-rated rater. On test: predictions for
    the manifest's frames, for `lead-bench submit waymo`. Exit code 1 if any frame failed or a corrupt record
    was skipped (--skip-corrupt: its frame is missing from the counts)."""
    from adapters.waymo.layout import default_test_manifest_path, read_test_manifest, required_frame_names
    from harness.agents import build_agent
    from harness.runner import RunCallbacks
    from harness.waymo_runner import run_waymo

    root = _data_root(data_root)
    clusters, clusters_file = _clusters(root, clusters_path, split)
    required = None
    manifest_file = None
    if split == "test":
        manifest_file = manifest or default_test_manifest_path(root)
        if not manifest_file.is_file():
            raise ConfigError(f"test runs plan the submission manifest's frames; {manifest_file} does not exist "
                              "(--manifest)")
        required = required_frame_names(read_test_manifest(manifest_file))
    reader = _reader(root, split, files, skip_corrupt)
    if (agent_name == "tfv6") != bool(ckpts):
        raise ConfigError("--agent tfv6 needs --ckpt PATH (repeatable); other agents take no --ckpt")
    agent = build_agent(agent_name, checkpoint=list(ckpts), source="waymo") if ckpts else build_agent(agent_name)
    out = out or Path("runs") / f"waymo-{agent_name}-{split}-{datetime.now():%Y%m%d-%H%M%S}"
    config = {"benchmark": "waymo", "data_root": str(root), "split": split, "agent": agent_name,
              "files": files, "skip_corrupt": skip_corrupt, "batch_size": batch_size,
              "clusters": str(clusters_file) if clusters_file else None,
              "manifest": str(manifest_file) if manifest_file else None}
    with progress_bar() as progress:
        task = progress.add_task("starting", total=None)
        summary = run_waymo(reader, agent, out, clusters=clusters, required_frames=required,
                            batch_size=batch_size, config=config,
                            callbacks=RunCallbacks(
                                on_phase=lambda name, n: progress.reset(task, total=n, description=name),
                                on_advance=lambda n: progress.advance(task, n)))
    if summary.scores is not None:
        title = f"WOD-E2E {split} — agent {agent.name}{' (privileged)' if agent.privileged else ''} — RFS"
        print_scores(summary, title, planned=True, corrupt=reader.num_skipped)
        if summary.scored + summary.failed == 0:
            console.print(f"[yellow]warning:[/] no frame of {split} has rater labels, so nothing was planned or "
                          "scored (WOD-E2E's train split has none; val has one labelled frame per sequence)")
    else:
        console.print(f"predicted {summary.scored} of {summary.expected} manifest frames; {summary.failed} failed"
                      + _corrupt_note(reader.num_skipped))
    console.print(f"results in [bold]{escape(str(out))}[/]")
    if summary.failed or reader.num_skipped:
        sys.exit(EXIT_PARTIAL)


def _corrupt_note(corrupt: int) -> str:
    return (f"; {corrupt} corrupt record(s) skipped (--skip-corrupt), their frames are in no count"
            if corrupt else "")


def print_scores(summary: Any, title: str, *, planned: bool = False, corrupt: int = 0) -> None:
    """The per-cluster table and the headline numbers, on standard output.

    ``planned``: the agent ran on the labelled frames only (``run waymo``), which the counts then say.
    ``corrupt``: records the index skipped (``--skip-corrupt``), which the counts then mention.
    """
    s = summary.scores
    verb = "planned and scored" if planned else "scored"
    counts = (f"{summary.expected} frames in {summary.split}: {summary.scored + summary.failed} with rater labels, "
              f"{summary.scored} {verb}, {summary.failed} failed; {summary.skipped} without rater labels "
              f"{'not planned ' if planned else ''}(skipped)")
    if s.unmatched:
        counts += f"; {len(s.unmatched)} predictions for frames not in the split"
    counts += _corrupt_note(corrupt)
    table = Table(title=title)
    for col, justify in (("cluster", "left"), ("frames", "right"), ("RFS", "right")):
        table.add_column(col, justify=justify)
    for name, value in s.per_cluster_rfs.items():
        table.add_row(escape(name), str(s.per_cluster_count[name]), f"{value:.4f}")
    if s.per_cluster_rfs:
        table.add_section()
        table.add_row(f"[bold]mean of {len(s.per_cluster_rfs)} cluster means (leaderboard)[/]",
                      str(sum(s.per_cluster_count.values())), f"[bold]{s.mean_of_clusters_rfs:.4f}[/]")
    table.add_row("frame mean", str(summary.scored), f"{s.frame_mean_rfs:.4f}" if summary.scored else "—")
    out_console.print(table)
    out_console.print(counts, soft_wrap=True, highlight=False)
    if summary.scored:
        out_console.print(f"ADE@3s {s.ade_3s_m:.3f} m   ADE@5s {s.ade_5s_m:.3f} m   "
                          f"fully inside a trust region {100 * s.fully_inside_rate:.1f} %")


# --- score ------------------------------------------------------------------------------------------------


@click.command("waymo")
@click.option("--submission", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="A challenge archive (.tar.gz of E2EDChallengeSubmission shards).")
@_data_options
@click.option("--split", type=click.Choice(["val", "train"]), default="val", show_default=True,
              help="A labelled split (test labels are hidden on the server).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Results directory (default: runs/waymo-submission-NAME-TIME).")
@handle_errors
def score_waymo_cmd(submission: Path, data_root: Path | None, files: str | None, skip_corrupt: bool,
                    clusters_path: Path | None, split: str, out: Path | None) -> None:
    """Score a challenge archive against a labelled split as the leaderboard does: RFS per frame, per
    cluster and as the mean of cluster means; ADE@3s/@5s. Frames whose raters are all -1 are skipped and
    counted. Exit code 1 if a labelled frame has no prediction or a corrupt record was skipped."""
    from harness.waymo_runner import score_run_predictions
    from submissions.waymo import read_submission_archive

    predictions, meta = read_submission_archive(submission)
    root = _data_root(data_root)
    clusters, clusters_file = _clusters(root, clusters_path, split)
    reader = _reader(root, split, files, skip_corrupt)
    out = out or Path("runs") / f"waymo-submission-{submission.name.split('.')[0]}-{datetime.now():%Y%m%d-%H%M%S}"
    config = {"benchmark": "waymo", "submission": str(submission), "data_root": str(root), "split": split,
              "files": files, "skip_corrupt": skip_corrupt, "clusters": str(clusters_file) if clusters_file else None}
    summary = score_run_predictions(reader, predictions, out, clusters=clusters, config=config,
                                    meta={"agent": f"submission {meta.unique_method_name}", "privileged": False,
                                          "submission": {"unique_method_name": meta.unique_method_name,
                                                         "account_name": meta.account_name,
                                                         "num_model_parameters": meta.num_model_parameters}})
    print_scores(summary, f"WOD-E2E {split} — submission {escape(submission.name)} "
                          f"({escape(meta.unique_method_name)}) — RFS", corrupt=reader.num_skipped)
    unmatched = summary.scores.unmatched
    if unmatched:
        console.print(f"[yellow]warning:[/] {len(unmatched)} of the archive's {len(predictions)} frames are not "
                      f"in the {split} shards (not scored), e.g. {escape(unmatched[0])}"
                      + (": is it an archive for another split?" if not summary.scored else ""))
    console.print(f"results in [bold]{escape(str(out))}[/]")
    if summary.failed or reader.num_skipped:
        sys.exit(EXIT_PARTIAL)


# --- submit -----------------------------------------------------------------------------------------------


def _names(text: str | None) -> tuple[str, ...]:
    return tuple(a.strip() for a in (text or "").split(",") if a.strip())


@click.command("waymo")
@click.option("--run", "run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="Results directory of `lead-bench run waymo` (its predictions.npz).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="The .tar.gz to write.")
@click.option("--account", required=True, help="The e-mail address registered at waymo.com/open.")
@click.option("--method-name", required=True, help="Unique method name (the leaderboard keeps its latest result).")
@click.option("--authors", required=True, help="Authors, comma-separated.")
@click.option("--affiliation", required=True)
@click.option("--description", default="", help="Short description of the method.")
@click.option("--method-link", default="", help="URL of the paper or code.")
@click.option("--num-params", required=True, help="Model size: an integer and K, M, B or T, e.g. 200K.")
@click.option("--uses-public-model-pretraining", "pretraining", type=click.BOOL, required=True,
              help="true if an open-source LLM/VLM was used for pre-training (required by the server).")
@click.option("--public-model-names", default="", help="The open-source models used, comma-separated.")
@click.option("--shards", type=click.IntRange(min=1), default=1, show_default=True, help="Shard files.")
@click.option("--layout", type=click.Choice(["flat", "directory", "tutorial"]), default="flat", show_default=True,
              help="flat: submission.binproto-00000-of-0000N at the top level (what the server finds; issue "
                   "#936); directory: the same files in submission/; tutorial: submission/part0 ... (the "
                   "notebook's layout, which the server has answered with 'No shards found').")
@handle_errors
def submit_waymo_cmd(run_dir: Path, out: Path, account: str, method_name: str, authors: str, affiliation: str,
                     description: str, method_link: str, num_params: str, pretraining: bool,
                     public_model_names: str, shards: int, layout: str) -> None:
    """Write the challenge archive from a run: one E2EDChallengeSubmission per shard with all metadata, every
    required frame once with 20 finite (x, y) points; validated, written atomically and read back."""
    import json

    from harness.waymo_runner import read_predictions
    from submissions.waymo import WaymoSubmissionMetadata, write_submission_archive

    predictions, required, split = read_predictions(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    if summary.get("benchmark") != "waymo":
        raise ConfigError(f"{run_dir} is a {summary.get('benchmark')} run, not a waymo run")
    if summary.get("privileged"):
        raise ConfigError(f"run {run_dir} used a privileged agent ({summary.get('agent')}); it reads ground truth "
                          "and cannot be submitted")
    failed = summary.get("counts", {}).get("failed", 0)
    if failed:
        raise ConfigError(f"run {run_dir} has {failed} failed frame(s) (see failures.csv); the server needs a "
                          "prediction for every required frame")
    if split != "test":
        console.print(f"[yellow]warning:[/] run {escape(str(run_dir))} is on {split}; the server scores test "
                      f"archives only (this one can be scored locally with `lead-bench score waymo`)")
    meta = WaymoSubmissionMetadata(account_name=account, unique_method_name=method_name, authors=_names(authors),
                                   affiliation=affiliation, uses_public_model_pretraining=pretraining,
                                   num_model_parameters=num_params, description=description,
                                   method_link=method_link, public_model_names=_names(public_model_names))
    write_submission_archive(predictions, meta, out, required_frames=required, shards=shards, layout=layout)
    console.print(f"wrote {escape(str(out))}: {len(predictions)} frames of {split} in {shards} shard(s), "
                  f"method {escape(method_name)!r}, {meta.normalized().num_model_parameters} parameters")
