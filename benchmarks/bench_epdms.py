"""One-stage EPDMS v2.2 vs PDMS v1.1 scoring speed on the same world scenes and plans, scenes/s.

Both metric caches (v1.1: 5 s scenes; v2: 4 s scenes, PDM-Closed ranked by the v2 score) are built first
(timed too); then, for constant-velocity plans, scoring is timed end to end: LQR + bicycle simulation of
[PDM-Closed, plan] (EPDMS: + the human trajectory), the scorer, and for EPDMS the human filter, the two-frame
comfort of consecutive tokens and the final scores. PDMS scoring is the baseline.

Usage: python benchmarks/bench_epdms.py [--world DIR] [--logs 4] [--duration 30] [--repeat 3]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from adapters.navsim.reader import NavsimReader
from adapters.navsim.writer import NavsimWriteOptions
from harness.embedded import EmbeddedWorldSpec, build_embedded_world, is_built
from harness.epdms_eval import EPDMSCacheSpec, finish_one_stage
from harness.epdms_eval import score_plans as score_epdms
from harness.navsim_eval import CacheSpec, build_metric_cache
from harness.navsim_eval import score_plans as score_pdms
from harness.trajectory import NAVSIM_SAMPLING, Trajectory
from harness.world.build import WorldConfig
from metrics.epdms import EPDMSConfig, final_score


def _cv_plan(scene) -> Trajectory:
    v = float(np.hypot(*scene.ego_velocity_xy))
    t = (np.arange(NAVSIM_SAMPLING.num_poses) + 1) * NAVSIM_SAMPLING.interval_s
    return Trajectory(np.stack([t * v, 0 * t, 0 * t], -1), NAVSIM_SAMPLING)


def _best_of(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world", type=Path, default=None, help="a built embedded world (default: build one)")
    ap.add_argument("--logs", type=int, default=4, help="logs of the world built when --world is not given")
    ap.add_argument("--duration", type=float, default=30.0, help="seconds per log of that world")
    ap.add_argument("--repeat", type=int, default=3, help="best of this many scoring runs")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-epdms-"))
    try:
        root = args.world
        if root is None:
            root = tmp / "world"
            spec = EmbeddedWorldSpec(WorldConfig(seed=0, num_logs=args.logs, duration_s=args.duration),
                                     NavsimWriteOptions(camera_scale=0.1))
            if not is_built(root, spec):
                build_embedded_world(root, spec, workers=2)
        reader = NavsimReader(root, "test")
        refs = reader.index()
        by_log: dict[str, list[str]] = {}
        for r in refs:
            by_log.setdefault(r.log_id, []).append(r.token)
        n = len(refs)

        cache_s = {}
        v1_spec = CacheSpec(root, "test", reader.scene_filter, root / "maps", tmp / "cache-v11")
        v2_spec = EPDMSCacheSpec(root, "test", reader.scene_filter, root / "maps", tmp / "cache-v22")
        for name, spec in (("PDMS v1.1", v1_spec), ("EPDMS v2.2", v2_spec)):
            t0 = time.perf_counter()
            errors = build_metric_cache(spec, by_log)  # type: ignore[arg-type]
            cache_s[name] = time.perf_counter() - t0
            assert not any(errors.values()), errors
        v1_cache, v2_cache = v1_spec.open(), v2_spec.open()
        v1_scenes = [v1_cache.get(r.token) for r in refs]
        v2_scenes = [v2_cache.get(r.token) for r in refs]
        plans = [_cv_plan(s) for s in v1_scenes]
        meta = [(s.log_name, s.timestamp_us, int(s.scene_type) == 0) for s in v2_scenes]

        def epdms(filter_on: bool) -> None:
            cfg = EPDMSConfig(human_penalty_filter=filter_on)
            rows, states = score_epdms(v2_scenes, plans, config=cfg)
            final_score(finish_one_stage(rows, list(states), meta), cfg)

        score_s = {
            "PDMS v1.1 (baseline)": _best_of(lambda: score_pdms(v1_scenes, plans), args.repeat),
            "EPDMS v2.2, human filter on": _best_of(lambda: epdms(True), args.repeat),
            "EPDMS v2.2, human filter off": _best_of(lambda: epdms(False), args.repeat),
        }
        table = Table(title=f"NAVSIM scoring, {n} world scenes, constant-velocity plans (2 cores, best of "
                            f"{args.repeat}; numbers vary ±30 % with machine load)")
        for col in ("stage", "scorer", "seconds", "scenes/s", "vs PDMS"):
            table.add_column(col, justify="right")
        base = cache_s["PDMS v1.1"]
        for name, s in cache_s.items():
            table.add_row("metric cache", name, f"{s:.2f}", f"{n / s:.1f}", f"{base / s:.2f}x")
        base = score_s["PDMS v1.1 (baseline)"]
        for name, s in score_s.items():
            table.add_row("scoring", name, f"{s:.3f}", f"{n / s:.0f}", f"{base / s:.2f}x")
        Console().print(table)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
