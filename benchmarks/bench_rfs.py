"""RFS throughput: the vectorised ``metrics.rfs.rater_feedback_score`` against the straightforward
per-frame loop of ``tests/metrics/test_rfs.py`` (the baseline), on the same random frames in the same run.

Frames: 3 rater slots of up to 21 points with ragged counts and lengths, predictions near the first rater
(about half inside a trust region). The loop runs once over all frames; the vectorised version is timed as
the best of ``--repeats`` runs, in one batch and in chunks of ``--chunk`` frames. Both results are checked
to agree before the table is printed.

The aggregation is measured too: ``aggregate_by_cluster`` (mean per scenario cluster, then the mean of the 11
cluster means; bincount) against a dict-of-lists loop on the same scores, and the whole scoring path of
``lead-bench score waymo`` (``harness.waymo_eval.score_predictions``: FrameLabels -> padded batch -> RFS, top
rater, ADE@3s/@5s, rows, aggregation) on ``--eval-frames`` of the same frames.

Usage: python benchmarks/bench_rfs.py [--frames 50000] [--repeats 3] [--chunk 4096] [--seed 0]
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from adapters.waymo.labels import FrameLabels
from harness.waymo_eval import score_predictions
from metrics.rfs import aggregate_by_cluster, rater_feedback_score

CLUSTER_NAMES = ("Construction", "Intersection", "Pedestrians", "Cyclists", "Multi-Lane Maneuvers",
                 "Single-Lane Maneuvers", "Cut_ins", "Foreign Object Debris", "Special Vehicles", "Spotlight",
                 "Others")

_TESTS = Path(__file__).resolve().parent.parent / "tests" / "metrics" / "test_rfs.py"


def _load_reference():
    """The loop baseline lives with the tests that check it; loaded by path (tests/ is no package)."""
    spec = importlib.util.spec_from_file_location("lead_bench_test_rfs", _TESTS)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load the reference loop from {_TESTS}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _best_of(repeats: int, fn) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=50_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--chunk", type=int, default=4096)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-frames", type=int, default=5000,
                    help="frames for the end-to-end scoring path (FrameLabels in, rows and aggregates out)")
    args = ap.parse_args()
    ref = _load_reference()
    pred, xy, scores, speed, mask, npts = ref.random_scenes(np.random.default_rng(args.seed), args.frames)

    def vectorised(lo: int = 0, hi: int = args.frames):
        return rater_feedback_score(pred[lo:hi], xy[lo:hi], scores[lo:hi], speed[lo:hi],
                                    rater_mask=mask[lo:hi], rater_num_points=npts[lo:hi])

    def chunked():
        starts = range(0, args.frames, args.chunk)
        return np.concatenate([vectorised(lo, lo + args.chunk).score for lo in starts])

    t0 = time.perf_counter()
    loop_score, loop_inside = ref.loop_rfs(pred, xy, scores, speed, mask, npts)
    t_loop = time.perf_counter() - t0
    t_vec, res = _best_of(args.repeats, vectorised)
    t_chunk, chunk_score = _best_of(args.repeats, chunked)

    np.testing.assert_array_equal(res.fully_inside_trust_region, loop_inside)
    np.testing.assert_allclose(res.score, loop_score, rtol=1e-13, atol=1e-13)
    np.testing.assert_array_equal(chunk_score, res.score)

    rng = np.random.default_rng(args.seed + 1)
    clusters = [CLUSTER_NAMES[i] for i in rng.integers(0, len(CLUSTER_NAMES), args.frames)]
    t_agg_loop, loop_agg = _best_of(args.repeats, lambda: _loop_aggregate(res.score, clusters))
    t_agg, agg = _best_of(args.repeats, lambda: aggregate_by_cluster(res.score, clusters))
    assert abs(agg.mean_of_clusters - loop_agg) < 1e-12, (agg.mean_of_clusters, loop_agg)

    m = min(args.eval_frames, args.frames)
    labels, preds, seq_clusters = _eval_inputs(pred[:m], xy[:m], scores[:m], speed[:m], mask[:m], npts[:m],
                                               clusters[:m])
    t_eval, ev = _best_of(args.repeats, lambda: score_predictions(preds, labels, seq_clusters))
    np.testing.assert_allclose([r["rfs"] for r in ev.rows], res.score[:m], rtol=1e-13, atol=1e-13)

    n = args.frames
    inside = f"{loop_inside.mean():.0%} fully inside a trust region"
    table = Table(title=f"RFS throughput, {n:,} frames ({inside})")
    for col in ("implementation", "seconds", "frames/s", "ratio vs baseline"):
        table.add_column(col, justify="right")
    table.add_row("per-frame loop (baseline)", f"{t_loop:.3f}", f"{n / t_loop:,.0f}", "1.0x")
    table.add_row("vectorised, one batch", f"{t_vec:.3f}", f"{n / t_vec:,.0f}", f"{t_loop / t_vec:,.1f}x")
    table.add_row(f"vectorised, chunks of {args.chunk}", f"{t_chunk:.3f}", f"{n / t_chunk:,.0f}",
                  f"{t_loop / t_chunk:,.1f}x")
    table.add_section()
    table.add_row("cluster aggregation, dict loop (baseline)", f"{t_agg_loop:.4f}", f"{n / t_agg_loop:,.0f}",
                  "1.0x")
    table.add_row("cluster aggregation, aggregate_by_cluster", f"{t_agg:.4f}", f"{n / t_agg:,.0f}",
                  f"{t_agg_loop / t_agg:,.1f}x")
    table.add_section()
    table.add_row(f"score_predictions end to end, {m:,} frames", f"{t_eval:.3f}", f"{m / t_eval:,.0f}",
                  f"{(m / t_eval) / (n / t_loop):,.1f}x vs loop RFS alone")
    Console(width=120).print(table)
    print(f"max |vectorised - loop| = {np.max(np.abs(res.score - loop_score)):.3g}; "
          f"mean RFS {res.score.mean():.4f}; mean of {len(agg.per_cluster)} cluster means "
          f"{agg.mean_of_clusters:.4f}")


def _loop_aggregate(scores: np.ndarray, clusters: list[str]) -> float:
    """The straightforward aggregation: lists per cluster, their means, the mean of those."""
    per: dict[str, list[float]] = {}
    for s, c in zip(scores.tolist(), clusters):
        per.setdefault(c, []).append(s)
    means = [sum(v) / len(v) for v in per.values()]
    return sum(means) / len(means)


def _eval_inputs(pred, xy, scores, speed, mask, npts, clusters):
    """The benchmark frames as ``FrameLabels`` (one sequence each) and predictions keyed by frame name."""
    labels, preds, seq_clusters = [], {}, {}
    for i in range(len(pred)):
        keep = np.flatnonzero(mask[i])
        n = npts[i, keep]
        raters = xy[i, keep][:, : int(n.max())].copy()
        for k, nk in enumerate(n):  # hold the last point, as FrameLabels stores ragged raters
            raters[k, nk:] = raters[k, nk - 1]
        vel = np.zeros((16, 2))
        vel[-1, 0] = speed[i]
        seq = f"{i:032x}"
        labels.append(FrameLabels(frame_name=f"{seq}-000", sequence_id=seq, frame_index=0,
                                  initial_speed_mps=float(speed[i]), past_xy=np.zeros((16, 2)),
                                  past_velocity_xy=vel, past_accel_xy=np.zeros((16, 2)), intent=1, future_xy=None,
                                  rater_trajectories=raters, rater_scores=scores[i, keep], rater_lengths=n,
                                  has_rater_labels=True))
        preds[f"{seq}-000"] = pred[i]
        seq_clusters[seq] = clusters[i]
    return labels, preds, seq_clusters


if __name__ == "__main__":
    main()
