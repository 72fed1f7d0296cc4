"""RFS throughput: the vectorised ``metrics.rfs.rater_feedback_score`` against the straightforward
per-frame loop of ``tests/metrics/test_rfs.py`` (the baseline), on the same random frames in the same run.

Frames: 3 rater slots of up to 21 points with ragged counts and lengths, predictions near the first rater
(about half inside a trust region). The loop runs once over all frames; the vectorised version is timed as
the best of ``--repeats`` runs, in one batch and in chunks of ``--chunk`` frames. Both results are checked
to agree before the table is printed.

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

from metrics.rfs import rater_feedback_score

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

    n = args.frames
    inside = f"{loop_inside.mean():.0%} fully inside a trust region"
    table = Table(title=f"RFS throughput, {n:,} frames ({inside})")
    for col in ("implementation", "seconds", "frames/s", "ratio vs loop"):
        table.add_column(col, justify="right")
    table.add_row("per-frame loop (baseline)", f"{t_loop:.3f}", f"{n / t_loop:,.0f}", "1.0x")
    table.add_row("vectorised, one batch", f"{t_vec:.3f}", f"{n / t_vec:,.0f}", f"{t_loop / t_vec:,.1f}x")
    table.add_row(f"vectorised, chunks of {args.chunk}", f"{t_chunk:.3f}", f"{n / t_chunk:,.0f}",
                  f"{t_loop / t_chunk:,.1f}x")
    Console().print(table)
    print(f"max |vectorised - loop| = {np.max(np.abs(res.score - loop_score)):.3g}; "
          f"mean RFS {res.score.mean():.4f}")


if __name__ == "__main__":
    main()
