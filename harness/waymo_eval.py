"""Waymo E2E evaluation: score predicted trajectories against labelled frames the leaderboard's way.

Per frame (``metrics.rfs``, never re-implemented here): the Rater Feedback Score against the frame's raters
at its initial speed, whether one rater's trust region holds the prediction at both horizons, and ADE@3s /
ADE@5s against the top-rated rater. Aggregated (specs/waymo_e2e.md §2.3-2.4): the frame mean, the mean per
scenario cluster and the unweighted mean of the cluster means (``E2EDMetrics.average_score``, the leaderboard
number); ADE as plain frame means.

Counting (nothing is dropped silently): every frame handed in is *expected*. Frames whose raters are all -1
placeholders (or absent) are *skipped* and counted; a labelled frame is *scored*, or *failed* when it has no
prediction or the prediction is not 20 finite (x, y) points, with the reason in its row. ``expected =
scored + failed + skipped``. Predictions for frames that were not handed in are counted as *unmatched*.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from adapters.waymo.labels import FrameLabels
from harness.errors import DataError
from metrics.rfs import ade_at, aggregate_by_cluster, rater_feedback_score, top_rated_trajectory

#: Per-frame result columns: ``token`` (= frame name, what ``lead-bench compare`` keys on), the issue's
#: columns, then ``valid`` and ``error`` as in every lead-bench results table.
WAYMO_ROW_COLUMNS = ("token", "frame_name", "sequence_id", "cluster", "rfs", "fully_inside_trust_region",
                     "ade_3s", "ade_5s", "valid", "error")
#: Points of a prediction: 4 Hz for 5 s (t = 0.25 ... 5.0 s).
NUM_POINTS = 20
FREQUENCY_HZ = 4
#: Version tag recorded with every number.
SCORER_VERSION = "waymo-e2e RFS (rater_feedback_utils @ 99a4cb3), mean of cluster means"


@dataclass(frozen=True)
class WaymoScores:
    """Scores of one set of predictions.

    Attributes:
        rows: one row per labelled frame (columns ``WAYMO_ROW_COLUMNS``), in input order; failed frames
            carry NaN scores and their ``error``.
        expected: frames handed in.
        scored: labelled frames that were scored.
        failed: labelled frames without a usable prediction.
        skipped: frames without rater labels (all -1 placeholders, or none).
        unmatched: predictions for frames that were not handed in (sorted; not scored).
        frame_mean_rfs: mean RFS over scored frames (what LEAD reports; not the leaderboard number).
        per_cluster_rfs: cluster -> mean RFS of its scored frames (empty without a cluster mapping).
        per_cluster_count: cluster -> scored frames.
        mean_of_clusters_rfs: unweighted mean of the cluster means, the leaderboard's ``average_score``;
            None without a cluster mapping.
        ade_3s_m, ade_5s_m: frame means of ADE against the top-rated rater, metres.
        fully_inside_rate: fraction of scored frames inside one rater's trust region at both horizons.
    """

    rows: list[dict[str, Any]]
    expected: int
    scored: int
    failed: int
    skipped: int
    unmatched: tuple[str, ...] = ()
    frame_mean_rfs: float = math.nan
    per_cluster_rfs: dict[str, float] = field(default_factory=dict)
    per_cluster_count: dict[str, int] = field(default_factory=dict)
    mean_of_clusters_rfs: float | None = None
    ade_3s_m: float = math.nan
    ade_5s_m: float = math.nan
    fully_inside_rate: float = math.nan

    def metrics(self) -> dict[str, Any]:
        """The aggregate numbers as a JSON-ready dict (NaN -> None)."""
        def clean(v: float | None) -> float | None:
            return None if v is None or not math.isfinite(v) else float(v)

        return {"rfs": clean(self.mean_of_clusters_rfs), "rfs_frame_mean": clean(self.frame_mean_rfs),
                "ade_3s_m": clean(self.ade_3s_m), "ade_5s_m": clean(self.ade_5s_m),
                "fully_inside_trust_region_rate": clean(self.fully_inside_rate),
                "per_cluster_rfs": {k: clean(v) for k, v in self.per_cluster_rfs.items()},
                "per_cluster_count": dict(self.per_cluster_count)}

    def counts(self) -> dict[str, int]:
        return {"expected": self.expected, "scored": self.scored, "failed": self.failed, "skipped": self.skipped,
                "unmatched_predictions": len(self.unmatched)}


def _prediction_problem(points: Any) -> str | None:
    if points is None:
        return "no prediction for this frame"
    try:
        xy = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        return f"prediction is not numeric ({exc})"
    if xy.shape != (NUM_POINTS, 2):
        return f"prediction has shape {xy.shape}, need ({NUM_POINTS}, 2)"
    if not np.isfinite(xy).all():
        return "prediction has NaN or inf"
    return None


def _row(lab: FrameLabels, cluster: str | None, error: str | None = None) -> dict[str, Any]:
    return {"token": lab.frame_name, "frame_name": lab.frame_name, "sequence_id": lab.sequence_id,
            "cluster": cluster, "rfs": math.nan, "fully_inside_trust_region": None, "ade_3s": math.nan,
            "ade_5s": math.nan, "valid": False, "error": error}


def _rater_batch(frames: Sequence[FrameLabels]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ragged raters as padded arrays: xy ``(F, K, T, 2)``, scores, mask ``(F, K)``, valid points ``(F, K)``."""
    k = max(f.rater_trajectories.shape[0] for f in frames)
    t = max(f.rater_trajectories.shape[1] for f in frames)
    xy = np.zeros((len(frames), k, t, 2))
    scores = np.zeros((len(frames), k))
    mask = np.zeros((len(frames), k), dtype=bool)
    npts = np.ones((len(frames), k), dtype=np.int64)
    for i, f in enumerate(frames):
        fk, ft = f.rater_trajectories.shape[:2]
        xy[i, :fk, :ft] = f.rater_trajectories
        scores[i, :fk] = f.rater_scores
        mask[i, :fk] = True
        npts[i, :fk] = f.rater_lengths
    return xy, scores, mask, npts


def _score_batch(frames: Sequence[FrameLabels], preds: np.ndarray) -> dict[str, np.ndarray]:
    xy, scores, mask, npts = _rater_batch(frames)
    speed = np.array([f.initial_speed_mps for f in frames], dtype=np.float64)
    res = rater_feedback_score(preds, xy, scores, speed, rater_mask=mask, rater_num_points=npts,
                               frequency_hz=FREQUENCY_HZ)
    gt = top_rated_trajectory(xy, scores, rater_mask=mask, rater_num_points=npts, num_points=NUM_POINTS)
    return {"rfs": res.score, "inside": res.fully_inside_trust_region,
            "ade_3s": ade_at(preds, gt, 3.0, FREQUENCY_HZ), "ade_5s": ade_at(preds, gt, 5.0, FREQUENCY_HZ)}


def score_predictions(
    predictions: Mapping[str, Any],
    frames: Sequence[FrameLabels],
    clusters: Mapping[str, str] | None = None,
) -> WaymoScores:
    """Score ``predictions`` on the labelled ones of ``frames``, with the leaderboard's aggregation.

    Args:
        predictions: frame name -> ``(20, 2)`` ego-frame positions in metres, t = 0.25 ... 5.0 s.
        frames: the frames to evaluate (each frame name once), e.g. every frame of the val split.
        clusters: sequence id -> scenario cluster (``val_sequence_name_to_scenario_cluster.json``). Without
            it there is no leaderboard number (``mean_of_clusters_rfs`` is None), only the frame mean.

    Returns:
        Rows, counts and aggregates.

    Raises:
        DataError: a frame name handed in twice, or a labelled frame whose sequence has no cluster in
            ``clusters`` (the cluster mean would be wrong; the message lists the sequences).
    """
    names = [f.frame_name for f in frames]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise DataError(f"{len(dup)} frame name(s) appear more than once in the data: {dup[:10]}")
    labelled = [f for f in frames if f.has_rater_labels]
    if clusters is not None:
        lost = sorted({f.sequence_id for f in labelled if f.sequence_id not in clusters})
        if lost:
            raise DataError(f"{len(lost)} labelled sequence(s) have no scenario cluster in the cluster mapping "
                            f"(is it the right file?): {lost[:10]}")
    rows: list[dict[str, Any]] = []
    ok: list[int] = []
    for lab in labelled:
        cluster = clusters[lab.sequence_id] if clusters is not None else None
        problem = _prediction_problem(predictions.get(lab.frame_name))
        rows.append(_row(lab, cluster, problem))
        if problem is None:
            ok.append(len(rows) - 1)
    if ok:
        preds = np.stack([np.asarray(predictions[rows[i]["frame_name"]], dtype=np.float64) for i in ok])
        by_name = {f.frame_name: f for f in labelled}
        batch = [by_name[rows[i]["frame_name"]] for i in ok]
        try:
            results = [_score_batch(batch, preds)]
            groups = [ok]
        except ValueError:
            # A frame the metric rejects: score one by one, so only that frame fails.
            results, groups = [], []
            for j, i in enumerate(ok):
                try:
                    results.append(_score_batch([batch[j]], preds[j:j + 1]))
                    groups.append([i])
                except ValueError as exc:
                    rows[i]["error"] = f"ValueError: {exc}"
        for res, group in zip(results, groups, strict=True):
            for j, i in enumerate(group):
                rows[i].update(rfs=float(res["rfs"][j]), fully_inside_trust_region=bool(res["inside"][j]),
                               ade_3s=float(res["ade_3s"][j]), ade_5s=float(res["ade_5s"][j]), valid=True,
                               error=None)
    known = set(names)
    unmatched = tuple(sorted(n for n in predictions if n not in known))
    scored_rows = [r for r in rows if r["valid"]]
    out = WaymoScores(rows=rows, expected=len(frames), scored=len(scored_rows),
                      failed=len(rows) - len(scored_rows), skipped=len(frames) - len(labelled),
                      unmatched=unmatched)
    if not scored_rows:
        return out
    rfs = np.array([r["rfs"] for r in scored_rows])
    agg = aggregate_by_cluster(rfs, [r["cluster"] or "" for r in scored_rows]) if clusters is not None else None
    return WaymoScores(
        rows=rows, expected=out.expected, scored=out.scored, failed=out.failed, skipped=out.skipped,
        unmatched=unmatched, frame_mean_rfs=float(rfs.mean()),
        per_cluster_rfs=agg.per_cluster if agg else {}, per_cluster_count=agg.per_cluster_count if agg else {},
        mean_of_clusters_rfs=agg.mean_of_clusters if agg else None,
        ade_3s_m=float(np.mean([r["ade_3s"] for r in scored_rows])),
        ade_5s_m=float(np.mean([r["ade_5s"] for r in scored_rows])),
        fully_inside_rate=float(np.mean([r["fully_inside_trust_region"] for r in scored_rows])),
    )


__all__ = ["NUM_POINTS", "SCORER_VERSION", "WAYMO_ROW_COLUMNS", "WaymoScores", "score_predictions"]
