"""Scoring-scene (metric cache without PDM-Closed) cost per scene by stage, baseline tree vs this tree.

On the NAVSIM scenes of an embedded world (``--world DIR``, or a sensorless one built here with ``--logs`` logs
of ``--duration`` s) whose current frame has at least ``--min-objects`` annotated objects (default 40, the
issue's measure), both implementations run the non-planner part of metric-cache building, stage by stage:

- parse: read and parse the split's log pickles (``NavsimReader.windows()``);
- build: ``ScoringSceneCache.stored`` + ``build`` of every selected token (object timelines, lights, drivable
  map, route correction, starting lane, centerline, ...); the nuPlan map is read before timing, as a run reads
  it once per location;
- write: ``ScoringSceneCache.put`` (scene files, shared drivable patches, the per-log index), into a fresh
  directory each round;

and, apart (a fixed cost per process, not per scene), the map read: ``read_nuplan_map`` + ``MapQuery`` of each
location the tokens need.

The baseline is the tree at ``--baseline-rev`` (default 93d9b74, before the log-batched timelines), checked out
into a temporary ``git worktree``; each implementation is measured in its own subprocess, alternately, for
``--rounds`` rounds, and the best round per stage is kept. Times are CPU seconds of the process
(``time.process_time``: user + system; the development box is shared, expect ±30 % between runs, wall time
more). Before the table, every scene file and drivable patch written by the two trees is compared byte for
byte.

Usage: python benchmarks/bench_scoring_scenes.py [--world DIR] [--min-objects 40] [--rounds 3]
       [--baseline-rev REV] [--horizon 5.0] [--logs 4 --duration 30]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DEFAULT_BASELINE = "93d9b74"
STAGES = ("parse", "build", "write")


def measure(root: Path, tokens_by_split: dict[str, list[str]], out: Path, horizon_s: float, rounds: int
            ) -> dict[str, Any]:
    """CPU seconds per stage of whatever lead-bench is importable (best of ``rounds``); writes the scene files
    of the last round under ``out/<split>/``."""
    from adapters.navsim.reader import NavsimReader
    from adapters.navsim.scoring_scenes import ScoringSceneCache
    from harness import scoring_scene

    maps: dict[str, Any] = {}
    locations = set()
    for split, tokens in tokens_by_split.items():  # maps read once, outside the stages' timing
        cache = ScoringSceneCache(out / "warm", NavsimReader(root, split), root / "maps", horizon_s=horizon_s)
        for t in tokens:
            frames, cur = cache.reader.scene_frames(t)
            locations.add(frames[cur].map_location)
            cache.map_for(frames[cur].map_location)
        maps.update(cache._maps)
    shutil.rmtree(out / "warm", ignore_errors=True)
    # The map read of a run (read_nuplan_map + MapQuery of each location, as a build pays it once per process),
    # timed apart: a fixed cost, not a per-scene one.
    map_read = float("inf")
    for _ in range(rounds):
        c0 = time.process_time()
        fresh = ScoringSceneCache(out / "warm", NavsimReader(root, next(iter(tokens_by_split))), root / "maps",
                                  horizon_s=horizon_s)
        for loc in sorted(locations):
            fresh.map_for(loc)
        map_read = min(map_read, time.process_time() - c0)
    best = {s: float("inf") for s in STAGES}
    for _ in range(rounds):
        shutil.rmtree(out, ignore_errors=True)
        scoring_scene._PATCHES._on_disk.clear()  # the directory is new: patches are written again
        getattr(scoring_scene, "_MADE_DIRS", set()).clear()
        spent = dict.fromkeys(STAGES, 0.0)
        for split, tokens in tokens_by_split.items():
            c0 = time.process_time()
            reader = NavsimReader(root, split)
            reader.windows()
            c1 = time.process_time()
            cache = ScoringSceneCache(out / split, reader, root / "maps", horizon_s=horizon_s)
            cache._maps.update(maps)
            c2 = time.process_time()
            if hasattr(cache, "expect"):
                cache.expect(tokens)
            scenes = [cache.build(t) for t in tokens if cache.stored(t) is None]
            c3 = time.process_time()
            cache.put(scenes)
            c4 = time.process_time()
            spent["parse"] += c1 - c0
            spent["build"] += c3 - c2
            spent["write"] += c4 - c3
        best = {s: min(best[s], spent[s]) for s in STAGES}
    return {"scenes": sum(len(v) for v in tokens_by_split.values()), "cpu_s": best, "map_read_s": map_read,
            "locations": len(locations)}


def select_tokens(root: Path, min_objects: int) -> dict[str, list[str]]:
    from adapters.navsim.reader import NavsimReader

    out: dict[str, list[str]] = {}
    for split in sorted(p.name for p in (root / "navsim_logs").iterdir() if p.is_dir()):
        reader = NavsimReader(root, split)
        for ref in reader.index():
            frames, cur = reader.scene_frames(ref.token)
            ann = frames[cur].annotations
            if ann is not None and len(ann.track_tokens) >= min_objects:
                out.setdefault(split, []).append(ref.token)
    return out


def compare_trees(a: Path, b: Path) -> tuple[int, int, list[str]]:
    """(files, of which drivable patches, files that differ or exist on one side only)."""
    fa = {p.relative_to(a) for p in a.rglob("*.npz")}
    fb = {p.relative_to(b) for p in b.rglob("*.npz")}
    bad = sorted(str(p) for p in fa ^ fb)
    bad += sorted(str(p) for p in fa & fb if (a / p).read_bytes() != (b / p).read_bytes())
    return len(fa | fb), sum(1 for p in fa | fb if p.parent.name == "drivable"), bad


def _run_tree(tree: Path, job: Path, label: str) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    subprocess.run([sys.executable, str(Path(__file__).resolve()), "--measure-json", str(job), "--label", label],
                   check=True, cwd=tree, env=env)
    return json.loads((job.parent / f"result-{label}.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world", type=Path, default=None, help="a built embedded world (default: build one here)")
    ap.add_argument("--logs", type=int, default=4, help="logs of the world built here")
    ap.add_argument("--duration", type=float, default=30.0, help="seconds per log of the world built here")
    ap.add_argument("--min-objects", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3, help="alternating subprocess runs per implementation")
    ap.add_argument("--repeat", type=int, default=2, help="passes per subprocess run (the best one is kept)")
    ap.add_argument("--horizon", type=float, default=5.0, help="object horizon (5.0: PDMS v1.1, 4.0: v2)")
    ap.add_argument("--baseline-rev", default=DEFAULT_BASELINE)
    ap.add_argument("--measure-json", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--label", default="new", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure_json is not None:
        spec = json.loads(args.measure_json.read_text())
        result = measure(Path(spec["root"]), spec["tokens"], Path(spec["out"]) / args.label, spec["horizon"],
                         spec["repeat"])
        (args.measure_json.parent / f"result-{args.label}.json").write_text(json.dumps(result))
        return

    repo = Path(__file__).resolve().parents[1]
    tmp = Path(tempfile.mkdtemp(prefix="bench-scoring-scenes-"))
    try:
        root = args.world
        if root is None:
            from adapters.navsim.writer import NavsimWriteOptions
            from harness.embedded import EmbeddedWorldSpec, build_embedded_world
            from harness.world.build import WorldConfig

            spec = EmbeddedWorldSpec(WorldConfig(seed=0, num_logs=args.logs, duration_s=args.duration),
                                     NavsimWriteOptions(write_sensors=False))
            root = build_embedded_world(tmp / "world", spec)
        tokens = select_tokens(root, args.min_objects)
        if not tokens:
            raise SystemExit(f"no scene with >= {args.min_objects} objects in {root}")
        tree = tmp / "baseline-tree"
        subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", str(tree), args.baseline_rev],
                       check=True, capture_output=True)
        job = tmp / "job.json"
        job.write_text(json.dumps({"root": str(root), "tokens": tokens, "out": str(tmp / "out"),
                                   "horizon": args.horizon, "repeat": args.repeat}))
        results: dict[str, list[dict[str, Any]]] = {"old": [], "new": []}
        try:
            for _ in range(args.rounds):
                results["old"].append(_run_tree(tree, job, "old"))
                results["new"].append(_run_tree(repo, job, "new"))
        finally:
            subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(tree)], check=False,
                           capture_output=True)
        n_files, n_patches, bad = compare_trees(tmp / "out" / "old", tmp / "out" / "new")
        _report(results, n_files, n_patches, bad, args)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _report(results: dict[str, list[dict[str, Any]]], n_files: int, n_patches: int, bad: list[str],
            args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    n = results["new"][0]["scenes"]
    best = {k: {s: min(r["cpu_s"][s] for r in rs) for s in STAGES} for k, rs in results.items()}
    table = Table(title=f"Scoring scenes without PDM-Closed: {n} world scenes with >= {args.min_objects} objects, "
                        f"horizon {args.horizon:g} s; CPU ms per scene, best of {args.rounds} x {args.repeat} "
                        f"(load average {os.getloadavg()[0]:.1f}); baseline = {args.baseline_rev}")
    for col in ("stage", "baseline ms/scene", "new ms/scene", "baseline/new"):
        table.add_column(col, justify="right")
    for stage in (*STAGES, "total"):
        old = sum(best["old"].values()) if stage == "total" else best["old"][stage]
        new = sum(best["new"].values()) if stage == "total" else best["new"][stage]
        table.add_row(stage, f"{old / n * 1e3:.3f}", f"{new / n * 1e3:.3f}", f"{old / new:.2f}x")
    console = Console(width=160)
    console.print(table)
    if all("map_read_s" in r for rs in results.values() for r in rs):
        maps = {k: min(r["map_read_s"] for r in rs) for k, rs in results.items()}
        console.print(f"map read per process ({results['new'][0]['locations']} location(s), read_nuplan_map + "
                      f"MapQuery, CPU): baseline {maps['old'] * 1e3:.1f} ms, new {maps['new'] * 1e3:.1f} ms "
                      f"({maps['old'] / maps['new']:.1f}x)")
    total_new = sum(best["new"].values()) / n
    console.print(f"non-planner part: {1 / total_new:,.0f} scenes per CPU-second (new), "
                  f"{n / sum(best['old'].values()):,.0f} (baseline)")
    verdict = "identical" if not bad else f"{len(bad)} DIFFER: {bad[:5]}"
    console.print(f"scene files and drivable patches of both trees ({n_files} files, {n_patches} patches), byte for "
                  f"byte: {verdict}")
    if bad:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
