"""NAVSIM PDMS evaluation speed: metric-cache building and scoring, scenes/s, serial vs parallel.

On the default embedded world's test split (4 logs, 188 scenes, 40-110 objects around the ego):
- metric cache (scoring scenes + PDM-Closed) built serially (baseline), with 2 local processes, and with
  Ray (2 workers) when installed;
- scoring (LQR simulation + PDM scorer of [PDM-Closed, agent]) batched across scenes vs one scene at a time
  (baseline), constant-velocity plans.

Usage: python benchmarks/bench_navsim_eval.py [--world DIR]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from adapters.navsim.reader import NavsimReader
from harness.agents import build_agent
from harness.embedded import EmbeddedWorldSpec, build_embedded_world, is_built
from harness.navsim_eval import CacheSpec, build_metric_cache, score_plans
from harness.runner import plan_samples
from harness.trajectory import NAVSIM_SAMPLING


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world", type=Path, default=None, help="a built embedded world (default: build one)")
    ap.add_argument("--ray", action="store_true", help="also time the Ray engine (a local cluster started after "
                    "the process pool stalled on the 2-core development machine)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-navsim-"))
    try:
        root = args.world or tmp / "world"
        if not is_built(root, EmbeddedWorldSpec()):
            build_embedded_world(root, EmbeddedWorldSpec(), workers=2)
        reader = NavsimReader(root, "test")
        refs = reader.index()
        by_log: dict[str, list[str]] = {}
        for r in refs:
            by_log.setdefault(r.log_id, []).append(r.token)
        n = len(refs)
        table = Table(title=f"NAVSIM PDMS evaluation, {n} world scenes (2 cores)")
        for col in ("stage", "how", "seconds", "scenes/s", "vs baseline"):
            table.add_column(col, justify="right")
        timings: dict[str, float] = {}
        engines = [("serial (baseline)", 1, "processes"), ("2 processes", 2, "processes")]
        if args.ray:
            engines.append(("Ray, 2 workers", 2, "ray"))
        for label, workers, engine in engines:
            spec = CacheSpec(root, "test", reader.scene_filter, root / "maps", tmp / f"cache-{engine}-{workers}")
            t0 = time.perf_counter()
            errors = build_metric_cache(spec, by_log, workers=workers, engine=engine)
            timings[label] = time.perf_counter() - t0
            assert not any(errors.values()), errors
        base = timings["serial (baseline)"]
        for label, sec in timings.items():
            table.add_row("metric cache", label, f"{sec:.2f}", f"{n / sec:.0f}", f"{base / sec:.2f}x")

        cache = CacheSpec(root, "test", reader.scene_filter, root / "maps", tmp / "cache-auto-1").open()
        scenes = [cache.get(r.token) for r in refs]
        samples = [reader.load(r) for r in refs]
        plans = plan_samples(build_agent("cv"), samples, NAVSIM_SAMPLING)
        t0 = time.perf_counter()
        for s, p in zip(scenes, plans, strict=True):
            score_plans([s], [p])
        one = time.perf_counter() - t0
        t0 = time.perf_counter()
        score_plans(scenes, plans)
        batched = time.perf_counter() - t0
        table.add_row("scoring", "one scene at a time (baseline)", f"{one:.2f}", f"{n / one:.0f}", "1.00x")
        table.add_row("scoring", "batched across scenes", f"{batched:.2f}", f"{n / batched:.0f}",
                      f"{one / batched:.2f}x")
        Console().print(table)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
