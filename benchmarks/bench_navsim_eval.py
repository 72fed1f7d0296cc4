"""NAVSIM PDMS evaluation speed: metric-cache building and scoring, scenes/s, serial vs 2 workers, new vs old.

On the default embedded world's test split, scenes whose current frame has at least ``--min-objects``
annotated objects (default 40):

- metric cache (scoring scenes + PDM-Closed) built serially and with 2 local processes, each build in a fresh
  Python process as a ``lead-bench run navsim`` does it (cold heap, maps and logs read by the build), serial
  and 2 processes alternating ``--cache-repeat`` times, the fastest of each kept; a second table gives CPU
  time and minor page faults per scene of the building process (parent) and of its forked children apart,
  and the parent's CPU before its own part starts (maps, BLAS limit, fork: the serial part of the critical
  path; the parts after it are cut by estimated cost, ``harness.navsim_eval.split_parts``);
- scoring (LQR simulation + PDM scorer of [PDM-Closed, agent], constant-velocity plans) batched across
  scenes, serially and with 2 processes (``score_plans(workers=2)``: this process and one forked for the
  call), best of ``--repeat``: once on the selected scenes, and once on them repeated ``--score-copies`` times
  (a navtest-sized call, 12,146 scenes, pays a forked call's fixed cost, ~50 ms of fork, page-table copy and
  exit on a few hundred MB process, once; on 132 scenes that cost is as large as the work itself).

The baseline is the implementation at ``--baseline-rev`` (default: the commit before this benchmark's
speed-ups), checked out into a temporary ``git worktree`` and measured by this same script in a subprocess
in the same run; it also checks that both implementations give identical per-token results. Wall-clock
rates depend on what else the machine runs (the 2-core development box is shared: expect ±30 % and more);
the table also gives scenes per CPU-second (process + children), which contention distorts less.

Usage: python benchmarks/bench_navsim_eval.py [--world DIR] [--baseline-rev REV | --no-baseline]
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

#: The last commit before the metric-cache and scoring speed-ups.
DEFAULT_BASELINE = "232a5db"


def _cpu_s() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _usage() -> dict[str, float]:
    """CPU seconds and minor page faults of this process and of its waited-for children, so far."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"parent_cpu": own.ru_utime + own.ru_stime, "children_cpu": kids.ru_utime + kids.ru_stime,
            "parent_faults": own.ru_minflt, "children_faults": kids.ru_minflt}


def select_tokens(root: Path, min_objects: int) -> dict[str, list[str]]:
    """Tokens of the test split whose current frame has at least ``min_objects`` annotated objects, by log."""
    from adapters.navsim.reader import NavsimReader

    reader = NavsimReader(root, "test")
    by_log: dict[str, list[str]] = {}
    for ref in reader.index():
        frames, cur = reader.scene_frames(ref.token)
        ann = frames[cur].annotations
        if ann is not None and len(ann.track_tokens) >= min_objects:
            by_log.setdefault(ref.log_id, []).append(ref.token)
    return by_log


def measure(root: Path, by_log: dict[str, list[str]], repeat: int, work: Path, copies: int = 1,
            cache_repeat: int = 1) -> dict[str, Any]:
    """Time cache building and scoring with whatever lead-bench is importable; per-token results too."""
    import numpy as np

    from adapters.navsim.reader import NavsimReader
    from harness.agents import build_agent
    from harness.navsim_eval import CacheSpec, score_plans
    from harness.runner import plan_samples
    from harness.trajectory import NAVSIM_SAMPLING

    reader = NavsimReader(root, "test")
    tokens = [t for _, toks in sorted(by_log.items()) for t in toks]
    out: dict[str, Any] = {"scenes": len(tokens), "timings": {}, "usage": {}}
    for _ in range(cache_repeat):  # serial and 2 processes alternate; the fastest run of each is kept
        for workers in (1, 2):
            target = work / f"cache-{workers}"
            shutil.rmtree(target, ignore_errors=True)  # every run builds every scene
            run = _cache_in_fresh_process(root, by_log, workers, target)
            key = f"cache/{workers}"
            if key not in out["timings"] or run["wall"] < out["timings"][key][0]:
                used = run["usage"]
                out["timings"][key] = (run["wall"], used["parent_cpu"] + used["children_cpu"])
                out["usage"][key] = used
    cache = CacheSpec(root, "test", reader.scene_filter, root / "maps", work / "cache-1").open()
    scenes = [cache.get(t) for t in tokens]
    out["pdm_closed"] = {s.token: hashlib.blake2b(np.ascontiguousarray(s.pdm_closed_states).tobytes()).hexdigest()
                         for s in scenes}
    other = CacheSpec(root, "test", reader.scene_filter, root / "maps", work / "cache-2").open()
    out["parallel_cache_identical"] = all(
        np.array_equal(other.get(s.token).pdm_closed_states, s.pdm_closed_states) for s in scenes)
    plans = plan_samples(build_agent("cv"), [reader.load(t) for t in tokens], NAVSIM_SAMPLING)
    can_fork = "workers" in inspect.signature(score_plans).parameters
    out["copies"] = copies
    for name, k in (("score", 1), ("scoreK", copies)):
        for workers in (1, 2) if can_fork else (1,):
            kw = {"workers": workers} if can_fork else {}
            best_wall, best_cpu = float("inf"), float("inf")
            for _ in range(repeat):
                c0, t0 = _cpu_s(), time.perf_counter()
                scores = score_plans(scenes * k, plans * k, **kw)
                best_wall, best_cpu = min(best_wall, time.perf_counter() - t0), min(best_cpu, _cpu_s() - c0)
            # Per scene: the timing's scene count is k times the selection's.
            out["timings"][f"{name}/{workers}"] = (best_wall / k, best_cpu / k)
            rows = {f"{i}:{s.token}": sc.row(1) for i, (s, sc) in enumerate(zip(scenes * k, scores, strict=True))}
            out[f"rows/{workers}" if k == 1 else f"rowsK/{workers}"] = rows
    return out


def _cache_in_fresh_process(root: Path, by_log: dict[str, list[str]], workers: int, target: Path) -> dict[str, Any]:
    """One metric-cache build in a new Python process (as ``lead-bench run navsim`` does one per process: its
    heap, maps and logs start cold), with whatever lead-bench this process imports (same cwd and environment).
    Wall-clock time, CPU and faults are those of the ``build_metric_cache`` call, the interpreter's start and
    imports left out."""
    target.parent.mkdir(parents=True, exist_ok=True)
    args = target.with_name(target.name + "-args.json")
    args.write_text(json.dumps({"root": str(root), "by_log": by_log, "workers": workers, "target": str(target)}))
    subprocess.run([sys.executable, __file__, "--cache-json", str(args)], check=True)
    return json.loads(args.with_suffix(".result").read_text())


def _cache_run(args: Path) -> None:
    from adapters.navsim.reader import NavsimReader
    from harness.navsim_eval import CacheSpec, build_metric_cache

    spec = json.loads(args.read_text())
    root = Path(spec["root"])
    scene_filter = NavsimReader(root, "test").scene_filter  # the reader's default (navtest's), as measure's
    cache = CacheSpec(root, "test", scene_filter, root / "maps", Path(spec["target"]))
    forked_at = _watch_fork()
    u0, t0 = _usage(), time.perf_counter()
    errors = build_metric_cache(cache, spec["by_log"], workers=spec["workers"], engine="processes")
    wall, u1 = time.perf_counter() - t0, _usage()
    if any(errors.values()):
        raise SystemExit(f"metric cache errors: {errors}")
    used = {k: u1[k] - u0[k] for k in u0}
    # The parent's CPU until its own part starts (maps, BLAS limit, fork): work the children do not share.
    used["parent_prefork_cpu"] = forked_at[0] - u0["parent_cpu"] if forked_at else float("nan")
    args.with_suffix(".result").write_text(json.dumps({"wall": wall, "usage": used}))


def _watch_fork() -> list[float]:
    """Where the metric-cache build forks its parts with ``harness.scoring_pool.fork_map`` (imported into
    ``harness.navsim_eval``), this process's CPU seconds when part 0 starts here, filled in once it has."""
    import harness.navsim_eval as navsim_eval

    at: list[float] = []
    fork_map = getattr(navsim_eval, "fork_map", None)
    if fork_map is None:
        return at

    def watched(fn: Any, n_parts: int) -> Any:
        def part(i: int) -> Any:
            if i == 0 and not at:
                at.append(_usage()["parent_cpu"])
            return fn(i)

        return fork_map(part, n_parts)

    navsim_eval.fork_map = watched  # type: ignore[attr-defined]
    return at


def _baseline(rev: str, root: Path, by_log: dict[str, list[str]], repeat: int, work: Path, copies: int,
              cache_repeat: int) -> dict[str, Any]:
    repo = Path(__file__).resolve().parents[1]
    tree = work / "baseline-tree"
    subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", str(tree), rev], check=True,
                   capture_output=True)
    try:
        args = work / "baseline-args.json"
        args.write_text(json.dumps({"root": str(root), "by_log": by_log, "repeat": repeat, "copies": copies,
                                    "cache_repeat": cache_repeat}))
        env = dict(os.environ, PYTHONPATH=str(tree))
        subprocess.run([sys.executable, __file__, "--measure-json", str(args)], check=True, cwd=tree, env=env)
        return json.loads((work / "baseline-result.json").read_text())
    finally:
        subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(tree)], check=False,
                       capture_output=True)


def _report(new: dict[str, Any], old: dict[str, Any] | None, rev: str) -> None:
    from rich.console import Console
    from rich.table import Table

    n = new["scenes"]
    load = os.getloadavg()[0]
    table = Table(title=f"NAVSIM PDMS evaluation, {n} world scenes with >= the minimum objects, 2-core box "
                        f"(load average {load:.1f}); baseline = {rev}")
    for col in ("stage", "how", "old scenes/s", "new scenes/s", "new/old", "old scenes/CPU-s", "new scenes/CPU-s",
                "2 workers/serial (new)"):
        table.add_column(col, justify="right")
    k = new.get("copies", 1)
    labels = {"cache/1": ("metric cache", "serial"), "cache/2": ("metric cache", "2 processes"),
              "score/1": ("scoring", "serial, batched"), "score/2": ("scoring", "2 processes"),
              "scoreK/1": ("scoring", f"serial, scenes x{k} in one call"),
              "scoreK/2": ("scoring", f"2 processes, scenes x{k} in one call")}
    for key, (stage, how) in labels.items():
        if key not in new["timings"]:
            continue
        wall, cpu = new["timings"][key]
        serial = new["timings"][key.split("/")[0] + "/1"][0]
        old_t = (old or {}).get("timings", {}).get(key)
        old_wall = f"{n / old_t[0]:.0f}" if old_t else "n/a"
        ratio = f"{old_t[0] / wall:.2f}x" if old_t else "n/a"
        old_cpu = f"{n / old_t[1]:.0f}" if old_t else "n/a"
        table.add_row(stage, how, old_wall, f"{n / wall:.0f}", ratio, old_cpu, f"{n / cpu:.0f}",
                      f"{serial / wall:.2f}x")
    console = Console(width=160)
    console.print(table)
    cache = Table(title="metric cache: CPU and minor page faults per scene, this process (parent) and its "
                        "forked children apart (the run with the best wall-clock time of each setting)")
    for col in ("code", "how", "scenes/s", "2 processes/serial", "parent CPU ms/scene", "children CPU ms/scene",
                "total CPU ms/scene", "parent CPU before its part, ms", "parent faults/scene", "children faults/scene"):
        cache.add_column(col, justify="right")
    for name, res in (("old", old), ("new", new)):
        usage = (res or {}).get("usage", {})
        for key, how in (("cache/1", "serial"), ("cache/2", "2 processes")):
            if key not in usage:
                continue
            u, wall = usage[key], res["timings"][key][0]  # type: ignore[index]
            cache.add_row(name, how, f"{n / wall:.0f}", f"{res['timings']['cache/1'][0] / wall:.2f}x",  # type: ignore[index]
                          f"{1000 * u['parent_cpu'] / n:.1f}", f"{1000 * u['children_cpu'] / n:.1f}",
                          f"{1000 * (u['parent_cpu'] + u['children_cpu']) / n:.1f}",
                          f"{1000 * u.get('parent_prefork_cpu', float('nan')):.0f}",
                          f"{u['parent_faults'] / n:.0f}", f"{u['children_faults'] / n:.0f}")
    console.print(cache)
    forked_same = (new.get("rows/2", new["rows/1"]) == new["rows/1"]
                   and new.get("rowsK/2", new["rowsK/1"]) == new["rowsK/1"])
    console.print(f"parallel cache identical to serial: {new['parallel_cache_identical']}; scoring with 2 processes "
                  f"identical to serial: {forked_same}")
    if old is not None:
        same_closed = old["pdm_closed"] == new["pdm_closed"]
        same_rows = old["rows/1"] == new["rows/1"] and old.get("rowsK/1", new["rowsK/1"]) == new["rowsK/1"]
        console.print(f"identical to the baseline: PDM-Closed trajectories {same_closed}, per-token PDMS rows "
                      f"{same_rows}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world", type=Path, default=None, help="a built embedded world (default: build one)")
    ap.add_argument("--min-objects", type=int, default=40, help="only scenes with this many objects at t = 0")
    ap.add_argument("--repeat", type=int, default=5, help="scoring runs per setting (best is kept)")
    ap.add_argument("--score-copies", type=int, default=8,
                    help="the second scoring measurement scores the selected scenes repeated this many times")
    ap.add_argument("--cache-repeat", type=int, default=3,
                    help="metric-cache builds per setting, serial and 2 processes alternating (fastest kept)")
    ap.add_argument("--baseline-rev", default=DEFAULT_BASELINE, help="git revision of the old implementation")
    ap.add_argument("--no-baseline", action="store_true", help="measure the working tree only")
    ap.add_argument("--measure-json", type=Path, default=None, help=argparse.SUPPRESS)  # baseline subprocess
    ap.add_argument("--cache-json", type=Path, default=None, help=argparse.SUPPRESS)  # one cache build
    args = ap.parse_args()
    if args.cache_json is not None:
        _cache_run(args.cache_json)
        return
    if args.measure_json is not None:
        spec = json.loads(args.measure_json.read_text())
        work = args.measure_json.parent
        result = measure(Path(spec["root"]), spec["by_log"], spec["repeat"], work / "baseline-work",
                         spec.get("copies", 1), spec.get("cache_repeat", 1))
        (work / "baseline-result.json").write_text(json.dumps(result))
        return
    from harness.embedded import EmbeddedWorldSpec, build_embedded_world, is_built

    tmp = Path(tempfile.mkdtemp(prefix="bench-navsim-"))
    try:
        root = args.world or tmp / "world"
        if not is_built(root, EmbeddedWorldSpec()):
            build_embedded_world(root, EmbeddedWorldSpec(), workers=2)
        by_log = select_tokens(root, args.min_objects)
        old = None if args.no_baseline else _baseline(args.baseline_rev, root, by_log, args.repeat, tmp,
                                                      args.score_copies, args.cache_repeat)
        new = measure(root, by_log, args.repeat, tmp / "new", args.score_copies, args.cache_repeat)
        _report(new, old, "none" if args.no_baseline else args.baseline_rev)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
