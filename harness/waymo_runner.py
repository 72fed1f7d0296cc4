"""Run a policy over a WOD-E2E split, score it, and keep its predictions for ``lead-bench submit waymo``.

Which frames (specs/waymo_e2e.md §1.5): on ``val`` (and ``train``) the agent plans the frames that carry
rater labels (the index knows which) and they are scored; the other frames are skipped and counted. On
``test`` the agent plans exactly the frames of the submission manifest
(``test_sequence_frames_for_submission.json``) and nothing is scored (the labels are hidden); a manifest
frame missing from the shards is a failure. Every expected frame ends up in the rows, scored or failed.

A results directory holds what :mod:`harness.results` writes (rows.parquet / rows.csv, summary.json,
config.json, failures.csv) and ``predictions.npz``: ``frame_names (N,)``, ``xy (N, 20, 2)`` float64
(ego frame, metres, t = 0.25 ... 5 s), ``required_frames (M,)`` (the frames a submission built from the run
must cover) and ``split``.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from adapters.waymo.labels import FrameLabels
from adapters.waymo.reader import IndexEntry, WaymoReader, sample_from_labels
from harness.agents.base import Policy, PrivilegedPolicy
from harness.atomic import atomic_write_bytes
from harness.errors import DataError, LeadBenchError
from harness.results import write_results
from harness.runner import RunCallbacks, plan_samples
from harness.trajectory import WAYMO_SAMPLING
from harness.waymo_eval import NUM_POINTS, SCORER_VERSION, WAYMO_ROW_COLUMNS, WaymoScores, score_predictions

log = logging.getLogger(__name__)

PREDICTIONS_FILE = "predictions.npz"
_NO_CALLBACKS = RunCallbacks()


@dataclass(frozen=True)
class WaymoRunSummary:
    """What a run or a scoring did.

    Attributes:
        split: the split.
        expected: frames expected (val: every indexed frame, plus unreadable ones; test: the manifest).
        scored: frames scored (val) or predicted (test).
        failed: expected frames that could not be planned, read or scored.
        skipped: frames without rater labels (val), or 0.
        scores: the scores (None on test).
        out_dir: the results directory.
    """

    split: str
    expected: int
    scored: int
    failed: int
    skipped: int
    scores: WaymoScores | None
    out_dir: Path


def _failed_row(name: str, sequence_id: str, error: str, cluster: str | None = None) -> dict[str, Any]:
    return {"token": name, "frame_name": name, "sequence_id": sequence_id, "cluster": cluster, "rfs": math.nan,
            "fully_inside_trust_region": None, "ade_3s": math.nan, "ade_5s": math.nan, "valid": False,
            "error": error}


def _error(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


def read_labels(reader: WaymoReader, names: Collection[str]) -> tuple[list[FrameLabels], dict[str, str]]:
    """Labels of ``names`` (in index order), data CRCs checked; frames whose labels cannot be read (a corrupt
    record among them) map to their error."""
    entries = reader.entries()
    wanted = set(names)
    out: list[FrameLabels] = []
    errors: dict[str, str] = {}
    for name in entries:
        if name in wanted:
            try:
                out.append(reader.labels(name, verify_crc=True))
            except (LeadBenchError, ValueError) as exc:
                errors[name] = _error(exc)
    return out, errors


def plan_frames(
    reader: WaymoReader,
    agent: Policy | PrivilegedPolicy,
    labels: Sequence[FrameLabels],
    *,
    batch_size: int = 256,
    callbacks: RunCallbacks = _NO_CALLBACKS,
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The agent's ``(20, 2)`` plans of ``labels``' frames; frames it could not plan map to their error.

    Agents that need no camera get samples built from the labels alone (no image bytes are read); others
    get ``reader.load`` with just the cameras they declare.
    """
    needs = agent.sensor_needs()
    preds: dict[str, np.ndarray] = {}
    errors: dict[str, str] = {}
    for start in range(0, len(labels), batch_size):
        batch = labels[start:start + batch_size]
        samples, names = [], []
        for lab in batch:
            try:
                samples.append(reader.load(lab.frame_name, cameras=needs.cameras) if needs.cameras
                               else sample_from_labels(lab, {}, split=reader.split))
                names.append(lab.frame_name)
            except (LeadBenchError, ValueError) as exc:
                errors[lab.frame_name] = _error(exc)
        try:
            plans = plan_samples(agent, samples, WAYMO_SAMPLING) if samples else []
        except (LeadBenchError, ValueError) as exc:
            if len(samples) == 1:
                errors[names[0]] = _error(exc)
                plans = []
                names = []
            else:  # find the frame(s) at fault: plan one by one
                plans, kept = [], []
                for name, sample in zip(names, samples, strict=True):
                    try:
                        plans.extend(plan_samples(agent, [sample], WAYMO_SAMPLING))
                        kept.append(name)
                    except (LeadBenchError, ValueError) as one:
                        errors[name] = _error(one)
                names = kept
        for name, plan in zip(names, plans, strict=True):
            if plan.sampling != WAYMO_SAMPLING:
                errors[name] = f"agent returned sampling {plan.sampling}, asked for {WAYMO_SAMPLING}"
            else:
                preds[name] = np.asarray(plan.xy, dtype=np.float64)
        callbacks.advance(len(batch))
    return preds, errors


def run_waymo(
    reader: WaymoReader,
    agent: Policy | PrivilegedPolicy,
    out_dir: Path,
    *,
    clusters: Mapping[str, str] | None = None,
    required_frames: Sequence[str] | None = None,
    batch_size: int = 256,
    config: Mapping[str, Any] | None = None,
    callbacks: RunCallbacks = _NO_CALLBACKS,
) -> WaymoRunSummary:
    """Plan a split's frames with ``agent``, score them (val/train) and write the results directory.

    Args:
        reader: the split.
        agent: the policy.
        out_dir: results directory (created).
        clusters: sequence id -> scenario cluster, for the leaderboard's mean of cluster means.
        required_frames: test: the manifest's frame names (planned and stored, not scored). None on
            val/train: the labelled frames are planned and scored.
        batch_size: frames per agent call.
        config: the resolved configuration recorded with the results.
        callbacks: progress hooks.
    """
    entries = reader.entries()
    if required_frames is not None:
        targets = list(dict.fromkeys(required_frames))
    else:
        targets = [n for n, e in entries.items() if e.has_rater_labels]
        check_clusters(entries, clusters)  # before planning: a wrong mapping would waste the whole run
    callbacks.phase("reading labels", len(targets))
    labels, label_errors = read_labels(reader, targets)
    callbacks.phase(f"{agent.name} on {reader.split}", len(labels))
    preds, plan_errors = plan_frames(reader, agent, labels, batch_size=batch_size, callbacks=callbacks)
    meta = {"agent": agent.name, "privileged": agent.privileged}
    if required_frames is not None:
        rows = []
        for name in targets:
            entry = entries.get(name)
            seq = entry.sequence_id if entry else name.rpartition("-")[0]
            if name in preds:
                rows.append({**_failed_row(name, seq, ""), "valid": True, "error": None})
            else:
                rows.append(_failed_row(name, seq, label_errors.get(name) or plan_errors.get(name)
                                        or f"frame is not in the {reader.split} shards"))
        summary = _finish(reader.split, rows, None, out_dir, meta=meta, config=config, expected=len(targets),
                          skipped=0, extra_counts={"corrupt_records_skipped": reader.num_skipped})
    else:
        rows, scores = _score_split(reader, preds, clusters, labels, {**label_errors, **plan_errors})
        summary = _finish(reader.split, rows, scores, out_dir, meta=meta, config=config,
                          expected=len(entries), skipped=scores.skipped,
                          extra_counts={"corrupt_records_skipped": reader.num_skipped})
    write_predictions(out_dir / PREDICTIONS_FILE, preds, targets, reader.split)
    return summary


def check_clusters(entries: Mapping[str, IndexEntry], clusters: Mapping[str, str] | None) -> None:
    """Raise ``DataError`` if a labelled frame's sequence has no cluster in ``clusters`` (from the index alone;
    the scorer checks the same on the labels, this only says it before any planning)."""
    if clusters is None:
        return
    lost = sorted({e.sequence_id for e in entries.values() if e.has_rater_labels and e.sequence_id not in clusters})
    if lost:
        raise DataError(f"{len(lost)} labelled sequence(s) have no scenario cluster in the cluster mapping "
                        f"(is it the right file?): {lost[:10]}")


def _unlabelled_stand_in(entry: IndexEntry) -> FrameLabels:
    """A stand-in for an unlabelled frame that was not read: it only has to count as skipped."""
    return FrameLabels(frame_name=entry.frame_name, sequence_id=entry.sequence_id, frame_index=entry.frame_index,
                       initial_speed_mps=0.0, past_xy=np.zeros((16, 2)), past_velocity_xy=np.zeros((16, 2)),
                       past_accel_xy=np.zeros((16, 2)), intent=entry.intent, future_xy=None,
                       rater_trajectories=np.zeros((0, 0, 2)), rater_scores=np.zeros(0),
                       rater_lengths=np.zeros(0, dtype=np.int64), has_rater_labels=False)


def _score_split(
    reader: WaymoReader,
    predictions: Mapping[str, np.ndarray],
    clusters: Mapping[str, str] | None,
    labels: Sequence[FrameLabels],
    errors: Mapping[str, str],
) -> tuple[list[dict[str, Any]], WaymoScores]:
    """Rows and scores over every indexed frame: the labelled ones (``labels``) scored, the rest skipped.

    ``errors`` (frame -> why) explains labelled frames that have no labels (unreadable) or no prediction.
    """
    entries = reader.entries()
    by_name = {lab.frame_name: lab for lab in labels}
    frames = [by_name[n] if n in by_name else _unlabelled_stand_in(e)
              for n, e in entries.items() if n in by_name or not e.has_rater_labels]
    scores = score_predictions(predictions, frames, clusters)
    for row in scores.rows:
        if not row["valid"] and row["frame_name"] in errors:
            row["error"] = errors[row["frame_name"]]
    unreadable = [n for n, e in entries.items() if e.has_rater_labels and n not in by_name]
    rows = scores.rows + [
        _failed_row(n, entries[n].sequence_id, errors.get(n, "labels could not be read"),
                    clusters.get(entries[n].sequence_id) if clusters else None) for n in unreadable]
    return rows, scores


def score_run_predictions(
    reader: WaymoReader,
    predictions: Mapping[str, np.ndarray],
    out_dir: Path,
    *,
    clusters: Mapping[str, str] | None,
    meta: Mapping[str, Any],
    config: Mapping[str, Any] | None = None,
) -> WaymoRunSummary:
    """Score given predictions (e.g. a submission archive's) on a labelled split; write the results."""
    entries = reader.entries()
    check_clusters(entries, clusters)
    labels, label_errors = read_labels(reader, [n for n, e in entries.items() if e.has_rater_labels])
    rows, scores = _score_split(reader, predictions, clusters, labels, label_errors)
    return _finish(reader.split, rows, scores, out_dir, meta=meta, config=config, expected=len(entries),
                   skipped=scores.skipped, extra_counts={"corrupt_records_skipped": reader.num_skipped,
                                                         "unmatched_predictions": len(scores.unmatched)})


def _finish(split: str, rows: list[dict[str, Any]], scores: WaymoScores | None, out_dir: Path, *,
            meta: Mapping[str, Any], config: Mapping[str, Any] | None, expected: int, skipped: int,
            extra_counts: Mapping[str, int]) -> WaymoRunSummary:
    valid = sum(1 for r in rows if r["valid"])
    failed = len(rows) - valid
    if expected != valid + failed + skipped:  # an invariant: a frame counted nowhere would be dropped silently
        raise AssertionError(f"counts do not add up: expected {expected} != scored {valid} + failed {failed} "
                             f"+ skipped {skipped}")
    counts = {"expected": expected, "scored" if scores is not None else "predicted": valid, "failed": failed,
              "skipped": skipped, **extra_counts}
    summary = {"benchmark": "waymo", "scorer": SCORER_VERSION if scores is not None else None, "split": split,
               **meta, "rfs": scores.metrics()["rfs"] if scores is not None else None, "counts": counts,
               "metrics": scores.metrics() if scores is not None else {}}
    if scores is not None and scores.unmatched:
        summary["unmatched_predictions_examples"] = list(scores.unmatched[:10])
    out_dir.mkdir(parents=True, exist_ok=True)
    write_results(out_dir, rows, summary, dict(config or {}), columns=WAYMO_ROW_COLUMNS)
    log.info("%s: %d of %d frames %s; %d failed%s%s", split, valid, expected,
             "scored" if scores is not None else "predicted", failed,
             f"; {skipped} skipped without rater labels" if scores is not None else "",
             " (see failures.csv)" if failed else "")
    return WaymoRunSummary(split, expected, valid, failed, skipped, scores, out_dir)


def write_predictions(path: Path, predictions: Mapping[str, np.ndarray], required: Sequence[str],
                      split: str) -> None:
    """``predictions.npz`` (see the module docstring), written atomically; frames sorted by name."""
    names = sorted(predictions)
    xy = np.stack([predictions[n] for n in names]) if names else np.zeros((0, NUM_POINTS, 2))
    buf = io.BytesIO()
    np.savez(buf, frame_names=np.array(names, dtype=str), xy=xy.astype(np.float64),
             required_frames=np.array(list(required), dtype=str), split=np.array(split))
    atomic_write_bytes(path, buf.getvalue())


def read_predictions(run_dir: Path) -> tuple[dict[str, np.ndarray], list[str], str]:
    """``(predictions by frame name, required frame names, split)`` of a run's ``predictions.npz``."""
    path = Path(run_dir) / PREDICTIONS_FILE
    try:
        with np.load(path, allow_pickle=False) as z:
            names, xy = z["frame_names"], z["xy"]
            required, split = [str(n) for n in z["required_frames"]], str(z["split"])
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"cannot read the run's predictions ({exc}); was it written by lead-bench run waymo?",
                        path=path) from exc
    if xy.shape != (len(names), NUM_POINTS, 2):
        raise DataError(f"xy has shape {xy.shape}, expected ({len(names)}, {NUM_POINTS}, 2)", path=path)
    return {str(n): p for n, p in zip(names, xy, strict=True)}, required, split


__all__ = ["PREDICTIONS_FILE", "WaymoRunSummary", "check_clusters", "plan_frames", "read_labels", "read_predictions", "run_waymo",
           "score_run_predictions", "write_predictions"]
