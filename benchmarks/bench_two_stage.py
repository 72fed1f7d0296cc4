"""Two-stage (navhard) EPDMS evaluation speed on world-generated navhard-shaped data, tokens/s.

The world is generated with the shape of navhard (225 groups, 450 stage-one and 5,462 stage-two tokens:
12 or 13 follow-up pairs per group) scaled by ``--fraction``, **without sensors** (scoring reads none). The
metric cache of both stages is built first into empty directories (timed: scoring scenes + PDM-Closed v2, in one
process and over ``--workers`` forked processes, whose files must be byte-equal); then constant-velocity
plans are scored end to end (LQR + bicycle for [PDM-Closed, plan] and the human, traffic policy, EPDMS, human
filter on stage one, pair EC, Gaussian-weighted aggregation), once with non-reactive traffic (the baseline)
and once with the official reactive IDM traffic (also over N forked processes). The table reports wall and CPU
seconds and scales CPU time to the full navhard size (5,912 tokens), and to 2 cores by halving it (an
estimate: the forked row shows how well the split holds on the machine at hand).

Same-run baselines for the reactive simulation, each one scene at a time through the policy layer of
``--start-rev`` (``metrics/traffic_agents.py`` read with ``git show``) with the ``IDMScene`` of an older
``metrics/traffic_idm.py``:

- ``--start-rev`` (default 93d9b74, the last one-scene-at-a-time version, checked against the official code)
  scores **all** groups; its per-token rows must equal the current cross-scene batched code's (printed) and its
  CPU time is the "old" of the speed-up;
- ``--baseline-rev`` (default: the per-agent implementation before the level-batched one) scores the first
  ``--baseline-groups`` groups. Semantic fixes to the IDM step made after that revision (a7dcff5: ties between
  equally near leaders broken as nuPlan's STRtree) are in the current code only, so rows can differ where such
  ties occur.

The navhard-size numbers are CPU time scaled by token count, not a navhard-size run.

``--end-to-end`` measures instead what a user waits for: ``lead-bench run navsim --split navhard_two_stage
--metric epdms --agent cv --workers N`` (``harness.cli_navhard.run_two_stage``, reactive traffic, human filter on)
on the generated data, twice: first with an empty metric cache (built in the run), then again with the cache
stored (a second agent's run). Wall and CPU seconds (this process and its forked children) per phase: metric
cache, planning (reading every scene's inputs, the agent), scoring, writing the results. The navhard-size
line is those wall times scaled linearly by token count: an extrapolation, labelled as such.

Usage: python benchmarks/bench_two_stage.py [--fraction 0.05] [--world DIR] [--baseline-groups 1]
       python benchmarks/bench_two_stage.py --end-to-end [--fraction 0.05] [--world DIR] [--workers 2]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import resource
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

import harness.navhard_eval
import metrics.traffic_agents
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
#: metrics/traffic_idm.py with one agent after the other (before the level-batched leader search)
BASELINE_REV = "3c67b2b"
#: the last one-scene-at-a-time reactive simulation (before cross-scene batching), checked against official code
START_REV = "93d9b74"


def _git_module(rev: str, path: str, name: str) -> types.ModuleType:
    """Module ``path`` as of git revision ``rev``, executed as ``name`` (registered while in use)."""
    root = Path(__file__).resolve().parents[1]
    src = subprocess.run(["git", "-C", str(root), "show", f"{rev}:{path}"], check=True, capture_output=True,
                         text=True).stdout
    mod = types.ModuleType(name)
    sys.modules[mod.__name__] = mod  # dataclasses look their module up
    exec(compile(src, f"{rev}:{path}", "exec"), mod.__dict__)  # noqa: S102 - our own history
    return mod


@contextlib.contextmanager
def _baseline_idm(rev: str, policy_rev: str = START_REV) -> Iterator[None]:
    """Score with the ``IDMScene`` of ``metrics/traffic_idm.py`` at ``rev``, one scene at a time through
    ``metrics/traffic_agents.py`` at ``policy_rev``, inside the block."""
    names = ("baseline_traffic_idm", "baseline_traffic_agents")
    current = harness.navhard_eval.reactive_idm_objects_many
    try:
        idm = _git_module(rev, "metrics/traffic_idm.py", names[0])
        agents = _git_module(policy_rev, "metrics/traffic_agents.py", names[1])
        agents.IDMScene = idm.IDMScene  # type: ignore[attr-defined]

        def one_by_one(scenes, rails, states, params=metrics.traffic_agents.DEFAULT_IDM):  # noqa: ANN001, ANN202
            return [agents.reactive_idm_objects(s, r, e, params) for s, r, e in zip(scenes, rails, states, strict=True)]

        harness.navhard_eval.reactive_idm_objects_many = one_by_one  # type: ignore[assignment]
        yield
    finally:
        harness.navhard_eval.reactive_idm_objects_many = current  # type: ignore[assignment]
        for n in names:
            sys.modules.pop(n, None)


def _same_rows(a, b) -> bool:
    return all(x.keys() == y.keys() and all(x[k] == y[k] or (x[k] != x[k] and y[k] != y[k]) for k in x)
               for x, y in zip(a, b, strict=True))


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.endswith(".lock")}


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
    ap.add_argument("--baseline-rev", default=BASELINE_REV, help="git revision of the baseline traffic_idm.py")
    ap.add_argument("--baseline-groups", type=int, default=1, help="groups the baseline scores (0: none)")
    ap.add_argument("--start-rev", default=START_REV,
                    help="git revision of the one-scene-at-a-time traffic_idm.py / traffic_agents.py scoring all groups")
    ap.add_argument("--chunk", type=int, default=None,
                    help="tokens simulated and scored together (default: navhard_eval.auto_chunk)")
    ap.add_argument("--end-to-end", action="store_true",
                    help="time the CLI's whole two-stage run (cache build + plan + reactive scoring + writing)")
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
    if args.end_to_end:
        _end_to_end(root, split, args.workers, t_data)
        return

    # first builds (empty caches): one process, then the chunks over forked processes (same bytes)
    caches = Path(tempfile.mkdtemp(prefix="bench-navhard-cache-"))
    cache = NavhardMetricCache(NavhardData(root, root / "maps"), split, caches / "serial")
    t0, c0 = time.perf_counter(), time.process_time()
    scenes, errors = cache_scenes(cache, tokens)
    t_cache, c_cache = time.perf_counter() - t0, time.process_time() - c0
    forked = NavhardMetricCache(NavhardData(root, root / "maps"), split, caches / "forked")
    t0, c0 = time.perf_counter(), _cpu_s()
    cache_scenes(forked, tokens, workers=args.workers)
    t_cache_par, c_cache_par = time.perf_counter() - t0, _cpu_s() - c0
    same_cache = _tree_bytes(caches / "serial") == _tree_bytes(caches / "forked")
    plans = {t: _cv_plan(s) for t, s in scenes.items()}
    for t in {s.map_location for s in scenes.values()}:
        cache.rails(t)

    timings = {}
    cpu = {}
    results = {}
    for policy in (TrafficPolicy.NON_REACTIVE, TrafficPolicy.REACTIVE):
        t0, c0 = time.perf_counter(), time.process_time()
        results[policy] = score_two_stage(split, scenes, plans, cache.rails, traffic=policy, errors=errors,
                                          chunk=args.chunk)
        timings[policy], cpu[policy] = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    k0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    par = score_two_stage(split, scenes, plans, cache.rails, traffic=TrafficPolicy.REACTIVE, errors=errors,
                          workers=args.workers, chunk=args.chunk)
    k1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t_par = time.perf_counter() - t0
    c_par = time.process_time() - c0 + (k1.ru_utime + k1.ru_stime) - (k0.ru_utime + k0.ru_stime)
    same = _same_rows(results[TrafficPolicy.REACTIVE].rows, par.rows)
    with _baseline_idm(args.start_rev, args.start_rev):
        t0, c0 = time.perf_counter(), time.process_time()
        start = score_two_stage(split, scenes, plans, cache.rails, traffic=TrafficPolicy.REACTIVE, errors=errors,
                                chunk=args.chunk)
        t_start, c_start = time.perf_counter() - t0, time.process_time() - c0
    same_start = _same_rows(start.rows, results[TrafficPolicy.REACTIVE].rows)
    base_rows = []
    if args.baseline_groups > 0:
        sub = dataclasses.replace(split, groups=split.groups[: args.baseline_groups])
        n_sub = len(sub.stage_one_tokens) + len(sub.stage_two_tokens)
        timed = {}
        for name in ("baseline", "current"):
            with _baseline_idm(args.baseline_rev) if name == "baseline" else contextlib.nullcontext():
                t0, c0 = time.perf_counter(), time.process_time()
                timed[name] = score_two_stage(sub, scenes, plans, cache.rails, traffic=TrafficPolicy.REACTIVE,
                                              errors=errors, chunk=args.chunk)
                base_rows.append((f"score, reactive, {name} ({args.baseline_rev if name == 'baseline' else 'HEAD'})"
                                  f", first {len(sub.groups)} groups", time.perf_counter() - t0,
                                  time.process_time() - c0, n_sub))
        same_base = _same_rows(timed["baseline"].rows, timed["current"].rows)

    full = NAVHARD_STAGE_ONE + NAVHARD_STAGE_TWO
    n = n1 + n2
    table = Table(title=f"two-stage navhard evaluation, {len(split.groups)} groups = {n1} stage-one + {n2} "
                        f"stage-two tokens (fraction {n / full:.3f} of navhard), no sensors")
    for c in ("phase", "tokens", "wall s", "CPU s", "tokens per CPU s", "CPU/token vs non-reactive",
              "navhard: CPU min", "navhard on 2 cores (min, est.)"):
        table.add_column(c, justify="right")
    base = cpu[TrafficPolicy.NON_REACTIVE] / n
    rows = [("metric cache (both stages), first build", t_cache, c_cache, n),
            (f"metric cache, first build, {args.workers} forked processes", t_cache_par, c_cache_par, n),
            ("score, non-reactive traffic", timings[TrafficPolicy.NON_REACTIVE], cpu[TrafficPolicy.NON_REACTIVE], n),
            (f"score, reactive, one scene at a time ({args.start_rev}, same-run baseline)", t_start, c_start, n),
            ("score, reactive traffic (official), cross-scene batched (HEAD)", timings[TrafficPolicy.REACTIVE],
             cpu[TrafficPolicy.REACTIVE], n),
            (f"score, reactive, {args.workers} forked processes", t_par, c_par, n), *base_rows]
    for name, wall, sec, k in rows:
        est = sec / k * full / 60
        table.add_row(name, str(k), f"{wall:.1f}", f"{sec:.1f}", f"{k / sec:.1f}", f"{sec / k / base:.1f}",
                      f"{est:.1f}", f"{est / 2:.1f}")
    console = Console(width=200)
    console.print(table)
    for policy, res in results.items():
        console.print(f"{policy.value}: EPDMS combined {100 * res.summary.value('combined', 'score'):.1f}, "
                      f"stage one {100 * res.summary.value('stage_one', 'score'):.1f}, stage two "
                      f"{100 * res.summary.value('stage_two', 'score'):.1f}; failed {len(res.summary.failed_tokens)}")
    console.print(f"{args.workers}-process rows equal the 1-process rows: {same}; {args.workers}-process metric cache "
                  f"files equal the 1-process ones byte for byte: {same_cache}")
    console.print(f"{args.start_rev} (one scene at a time) rows equal the current rows on all {len(split.groups)} "
                  f"groups: {same_start}; reactive CPU speed-up {c_start / cpu[TrafficPolicy.REACTIVE]:.2f}x "
                  f"({n / c_start:.2f} -> {n / cpu[TrafficPolicy.REACTIVE]:.2f} tokens per CPU s; navhard on 2 cores, "
                  f"est.: {c_start / n * full / 120:.1f} -> {cpu[TrafficPolicy.REACTIVE] / n * full / 120:.1f} min, "
                  "target < 5)")
    if base_rows:
        c_base, c_cur = base_rows[0][2], base_rows[1][2]
        console.print(f"baseline ({args.baseline_rev}) rows equal the current rows on the first "
                      f"{args.baseline_groups} groups: {same_base}; reactive CPU speed-up {c_base / c_cur:.2f}x")
    console.print(f"data generation (world + navhard, no sensors): {t_data:.1f} s. CPU seconds are reported because "
                  "wall time on the shared 2-core box depends on the other jobs; '2 cores' = CPU time halved "
                  "(perfect split over forked processes, an estimate)")


_PHASES = (("harness.navhard_eval", "cache_scenes", "metric cache (both stages)"),
           ("harness.navhard_eval", "plan_tokens", "plan (scene inputs + agent)"),
           ("harness.navhard_eval", "score_two_stage", "score (reactive) + aggregate"),
           ("harness.navhard_eval", "write_two_stage", "write results"),
           ("harness.navhard_plans", "write_stage_plans", "write results"))


def _cpu_s() -> float:
    """CPU seconds of this process and of its reaped children (the forked workers)."""
    k = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + k.ru_utime + k.ru_stime


@contextlib.contextmanager
def _timed_phases(spent: dict[str, list[float]]) -> Iterator[None]:
    """Wrap the functions ``run_two_stage`` calls so that each adds its [wall, CPU] seconds to ``spent``."""
    import importlib

    saved = []
    for mod_name, fn_name, label in _PHASES:
        mod = importlib.import_module(mod_name)
        fn = getattr(mod, fn_name)
        saved.append((mod, fn_name, fn))

        def timed(*a, _fn=fn, _label=label, **kw):  # noqa: ANN002, ANN003, ANN202
            t0, c0 = time.perf_counter(), _cpu_s()
            try:
                return _fn(*a, **kw)
            finally:
                got = spent.setdefault(_label, [0.0, 0.0])
                got[0] += time.perf_counter() - t0
                got[1] += _cpu_s() - c0

        setattr(mod, fn_name, timed)
    try:
        yield
    finally:
        for mod, fn_name, fn in saved:
            setattr(mod, fn_name, fn)


def _end_to_end(root: Path, split, workers: int, t_data: float) -> None:  # noqa: ANN001
    """``run_two_stage`` as the CLI runs it, with an empty and then a stored metric cache; wall/CPU per phase."""
    import os

    from harness.agents.constant_velocity import ConstantVelocityAgent
    from harness.cli_navhard import run_two_stage

    n = len(split.stage_one_tokens) + len(split.stage_two_tokens)
    full = NAVHARD_STAGE_ONE + NAVHARD_STAGE_TWO
    work = Path(tempfile.mkdtemp(prefix="bench-navhard-e2e-"))
    console = Console(width=200)
    runs = []
    for label in ("first run: metric cache built", "second run: metric cache stored"):
        spent: dict[str, list[float]] = {}
        t0, c0 = time.perf_counter(), _cpu_s()
        with _timed_phases(spent):
            try:
                run_two_stage(root, root / "maps", ConstantVelocityAgent(), work / f"run{len(runs)}", work / "cache",
                              traffic="reactive", human_filter=True, workers=workers)
            except SystemExit as exc:  # EXIT_PARTIAL: some token failed (listed in the results)
                console.print(f"[yellow]run exited with {exc.code}: failed tokens in {work}[/]")
        runs.append((label, time.perf_counter() - t0, _cpu_s() - c0, spent))
    table = Table(title=f"end to end: `lead-bench run navsim --split navhard_two_stage --metric epdms --agent cv "
                        f"--workers {workers}` (reactive, human filter on) on {len(split.groups)} groups = {n} tokens "
                        f"(fraction {n / full:.3f} of navhard), {os.cpu_count()} CPUs")
    for c in ("run", "phase", "wall s", "CPU s (incl. workers)", "tokens per wall s",
              f"navhard ({full} tokens), wall min: EXTRAPOLATED x{full / n:.1f}",
              "same, from CPU s / 2 (2 idle cores, est.)"):
        table.add_column(c, justify="right")
    for label, wall, cpu, spent in runs:
        for phase, (w, c) in spent.items():
            table.add_row(label, phase, f"{w:.2f}", f"{c:.2f}", f"{n / w:.0f}" if w > 0 else "-",
                          f"{w * full / n / 60:.2f}", f"{c / 2 * full / n / 60:.2f}")
        other = wall - sum(w for w, _ in spent.values())
        table.add_row(label, "other (split, setup, tables)", f"{other:.2f}", "", "", f"{other * full / n / 60:.2f}",
                      "")
        table.add_row(label, "[bold]total[/]", f"[bold]{wall:.1f}[/]", f"{cpu:.1f}", f"{n / wall:.1f}",
                      f"[bold]{wall * full / n / 60:.1f}[/]", f"{cpu / 2 * full / n / 60:.1f}")
    console.print(table)
    console.print(f"The navhard columns are measured times scaled linearly by token count ({n} -> {full}), not a "
                  "navhard-size run: wall time as measured (on a shared machine it depends on the other jobs), and "
                  "CPU time halved (two idle cores, perfectly split: an estimate). Target (issue 4): < 5 min on 2 "
                  f"cores. Data generation (not timed above): {t_data:.1f} s. Results and cache in {work}")


if __name__ == "__main__":
    main()
