"""Two-stage (navhard) EPDMS evaluation speed on world-generated navhard-shaped data, tokens/s.

The world is generated with the shape of navhard (225 groups, 450 stage-one and 5,462 stage-two tokens:
12 or 13 follow-up pairs per group) scaled by ``--fraction``, **without sensors** (scoring reads none). The
metric cache of both stages is built first (timed: scoring scenes + PDM-Closed v2); then constant-velocity
plans are scored end to end (LQR + bicycle for [PDM-Closed, plan] and the human, traffic policy, EPDMS, human
filter on stage one, pair EC, Gaussian-weighted aggregation), once with non-reactive traffic (the baseline)
and once with the official reactive IDM traffic (also over N forked processes). The table reports wall and CPU
seconds and scales CPU time to the full navhard size (5,912 tokens), and to 2 cores by halving it (an
estimate: the forked row shows how well the split holds on the machine at hand).

Usage: python benchmarks/bench_two_stage.py [--fraction 0.05] [--world DIR]
"""

from __future__ import annotations

import argparse
import math
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from adapters.navsim.navhard_writer import NavhardOptions
from adapters.navsim.writer import NavsimWriteOptions
from harness.embedded import EmbeddedWorldSpec
from harness.navhard_eval import (
    NavhardData,
    NavhardMetricCache,
    build_navhard_world,
    cache_scenes,
    score_two_stage,
)
from harness.trajectory import NAVSIM_SAMPLING, Trajectory
from harness.world.build import WorldConfig
from metrics.traffic_agents import TrafficPolicy

NAVHARD_GROUPS, NAVHARD_STAGE_ONE, NAVHARD_STAGE_TWO = 225, 450, 5462


def _cv_plan(scene) -> Trajectory:
    v = float(np.hypot(*scene.ego_velocity_xy))
    t = (np.arange(NAVSIM_SAMPLING.num_poses) + 1) * NAVSIM_SAMPLING.interval_s
    return Trajectory(np.stack([t * v, 0 * t, 0 * t], -1), NAVSIM_SAMPLING)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--fraction", type=float, default=0.05, help="share of navhard's 225 groups to generate")
    ap.add_argument("--world", type=Path, default=None, help="reuse/build the data here (default: a temp dir)")
    ap.add_argument("--groups-per-log", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2, help="processes for the last row (reactive, forked)")
    args = ap.parse_args()
    groups = max(1, math.ceil(NAVHARD_GROUPS * args.fraction))
    test_logs = math.ceil(groups / args.groups_per_log)
    # 2731 pairs over 225 groups: 31 groups with 13 pairs, the rest 12
    pairs = tuple(13 if i % 225 < 31 else 12 for i in range(0, 225, max(1, round(225 / groups))))[:groups]
    root = args.world or Path(tempfile.mkdtemp(prefix="bench-navhard-"))
    spec = EmbeddedWorldSpec(WorldConfig(seed=7, num_logs=2 * test_logs, duration_s=20.0),
                             NavsimWriteOptions(write_sensors=False))
    t0 = time.perf_counter()
    split = build_navhard_world(root, spec, NavhardOptions(groups_per_log=args.groups_per_log,
                                                           pairs_per_group=pairs, write_sensors=False))
    t_data = time.perf_counter() - t0
    tokens = list(dict.fromkeys(split.stage_one_tokens + split.stage_two_tokens))
    n1, n2 = len(split.stage_one_tokens), len(split.stage_two_tokens)

    cache = NavhardMetricCache(NavhardData(root, root / "maps"), split, root / "metric-cache")
    t0, c0 = time.perf_counter(), time.process_time()
    scenes, errors = cache_scenes(cache, tokens)
    t_cache, c_cache = time.perf_counter() - t0, time.process_time() - c0
    plans = {t: _cv_plan(s) for t, s in scenes.items()}
    for t in {s.map_location for s in scenes.values()}:
        cache.rails(t)

    timings = {}
    cpu = {}
    results = {}
    for policy in (TrafficPolicy.NON_REACTIVE, TrafficPolicy.REACTIVE):
        t0, c0 = time.perf_counter(), time.process_time()
        results[policy] = score_two_stage(split, scenes, plans, cache.rails, traffic=policy, errors=errors)
        timings[policy], cpu[policy] = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    k0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    par = score_two_stage(split, scenes, plans, cache.rails, traffic=TrafficPolicy.REACTIVE, errors=errors,
                          workers=args.workers, chunk=16)
    k1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t_par = time.perf_counter() - t0
    c_par = time.process_time() - c0 + (k1.ru_utime + k1.ru_stime) - (k0.ru_utime + k0.ru_stime)
    same = all(a["score"] == b["score"] or (a["score"] != a["score"] and b["score"] != b["score"])
               for a, b in zip(results[TrafficPolicy.REACTIVE].rows, par.rows, strict=True))

    full = NAVHARD_STAGE_ONE + NAVHARD_STAGE_TWO
    n = n1 + n2
    table = Table(title=f"two-stage navhard evaluation, {len(split.groups)} groups = {n1} stage-one + {n2} "
                        f"stage-two tokens (fraction {n / full:.3f} of navhard), no sensors")
    for c in ("phase", "wall s", "CPU s", "tokens per CPU s", "CPU ratio vs non-reactive",
              "navhard: CPU min", "navhard on 2 cores (min, est.)"):
        table.add_column(c, justify="right")
    base = cpu[TrafficPolicy.NON_REACTIVE]
    rows = [("metric cache (both stages)", t_cache, c_cache),
            ("score, non-reactive traffic", timings[TrafficPolicy.NON_REACTIVE], base),
            ("score, reactive traffic (official)", timings[TrafficPolicy.REACTIVE], cpu[TrafficPolicy.REACTIVE]),
            (f"score, reactive, {args.workers} forked processes", t_par, c_par)]
    for name, wall, sec in rows:
        est = sec / n * full / 60
        table.add_row(name, f"{wall:.1f}", f"{sec:.1f}", f"{n / sec:.1f}", f"{sec / base:.1f}", f"{est:.1f}",
                      f"{est / 2:.1f}")
    console = Console()
    console.print(table)
    for policy, res in results.items():
        console.print(f"{policy.value}: EPDMS combined {100 * res.summary.value('combined', 'score'):.1f}, "
                      f"stage one {100 * res.summary.value('stage_one', 'score'):.1f}, stage two "
                      f"{100 * res.summary.value('stage_two', 'score'):.1f}; failed {len(res.summary.failed_tokens)}")
    console.print(f"{args.workers}-process rows equal the 1-process rows: {same}")
    console.print(f"data generation (world + navhard, no sensors): {t_data:.1f} s. CPU seconds are reported because "
                  "wall time on the shared 2-core box depends on the other jobs; '2 cores' = CPU time halved "
                  "(perfect split over forked processes, an estimate)")


if __name__ == "__main__":
    main()
