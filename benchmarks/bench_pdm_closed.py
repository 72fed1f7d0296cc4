"""PDM-Closed throughput on embedded-world scenes: the vectorised planner against the straightforward loop.

Builds a small embedded world without sensors (``--logs`` logs of ``--duration`` s; its busy logs hold
60-110 objects per scene) and its scoring scenes, then times on every scene, in one process:

- the planner's own work (observation, paths, the 15 IDM proposals and the extension of one to 5 s): the
  vectorised ``ProposalGenerator`` against ``loop_plan`` of ``tests/harness/test_pdm_closed.py`` (the baseline:
  one proposal and one object at a time, NAVSIM's structure);
- the whole cache-time run (``run_pdm_closed``: planner + LQR/bicycle simulation + v1.1 scoring of the 15
  proposals + extension) against the loop baseline (which also simulates one proposal at a time), with the
  time split between the planner, ``metrics.pdm_simulation.simulate`` and ``metrics.pdms.score_batch``;
- the batched cache-time run (``plan_pdm_closed_batch``: all scenes' proposals unrolled, simulated and scored
  together, as the metric cache runs it), checked equal to ``run_pdm_closed`` scene by scene.

Times are CPU seconds of this process (``time.process_time``, best of ``--repeats`` for the vectorised
version), so that other jobs on a shared machine distort them less. Both implementations are checked to
pick the same proposal and produce the same reference before the table is printed.

A second table times the metric cache's use (``plan_pdm_closed_batch`` in equal chunks of at most
``MetricCache.PLAN_CHUNK`` scenes, as ``MetricCache.build`` plans) of a baseline revision (``--baseline-rev``,
extracted with ``git archive``) against the working tree, each in its own subprocess on the same stored
scenes (written with ``ScoringScene.save``), with the CPU time split by stage where both have the stage; it
checks that both give bit-identical trajectories.

Usage: python benchmarks/bench_pdm_closed.py [--logs 2] [--duration 20] [--repeats 3] [--seed 0]
       [--world DIR] [--baseline-rev REV | --no-baseline]

Measured (shared 2-core box, load 3-5: CPU times carry +-30 %), ``--world`` = the default embedded world of
``bench_navsim_eval`` (376 scenes, 14-108 objects at t = 0), baseline 93d9b74, CPU ms per scene:

    stage                 baseline   new   baseline/new
    observation             0.39    0.35   1.11x
    proposal generators     0.67    0.50   1.34x
    leader candidates       1.59    1.23   1.30x
    IDM unroll: leaders     1.11    0.74   1.50x
    IDM unroll (all)        1.45    0.97   1.49x
    LQR + bicycle           0.31    0.32   0.99x
    scoring                 3.60    2.33   1.55x
    extension to 5 s        0.07    0.07   1.03x
    total                   8.60    6.32   1.36x     (trajectories bit-identical on all 376 scenes)

The same measurement (``--measure-planning``) on its 132 scenes with >= 40 objects (``bench_navsim_eval``'s
selection, chunks of 44), load 2.7, best of two runs each: baseline 7.40 ms, new 4.75 ms per scene (1.56x):
observation 0.36 -> 0.29, generators 0.57 -> 0.39, leader candidates 0.96 -> 0.60, unroll 1.51 -> 0.86
(leaders 1.21 -> 0.69), LQR + bicycle 0.30 -> 0.30, scoring 3.10 -> 1.74, extension 0.10 -> 0.08.

Later (``--baseline-rev 6979403``: chunk-wide observations, forecasts and corridors, candidates straight into
the joint unroll, the two-pass selection scoring), load 4.5-5, CPU ms per scene, best of 4 alternating runs:
132 scenes with >= 40 objects 4.97 -> 3.57 (1.39x; observation 0.30 -> 0.20, generators with corridors
0.40 -> 0.24, leader candidates 0.60 -> 0.49, unroll 0.87 -> 0.75, LQR + bicycle 0.30 -> 0.29, scoring
1.92 -> 1.10); all 376 scenes (chunks of 63, best of 2) 5.82 -> 4.14 (1.41x). Trajectories bit-identical.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

import harness.agents.pdm_closed as pdm_closed
from adapters.navsim.map_reader import read_nuplan_map
from adapters.navsim.reader import NavsimReader
from adapters.navsim.scoring_scenes import build_scoring_scene
from adapters.navsim.writer import NavsimWriteOptions
from harness.agents.pdm_closed_observation import build_observation
from harness.agents.pdm_closed_path import DiscretePath, parallel_path
from harness.agents.pdm_closed_proposals import IDMParameters, ProposalGenerator
from harness.embedded import EmbeddedWorldSpec, build_embedded_world
from harness.map_query import MapQuery
from harness.scoring_scene import ScoringScene
from harness.world.build import WorldConfig
from metrics.pdm_simulation import PACIFICA, nuplan_rear_axle_roundtrip

_ROOT = Path(__file__).resolve().parent.parent
_TESTS = _ROOT / "tests" / "harness" / "test_pdm_closed.py"


def _load_reference():
    """The loop baseline lives with the tests that check it; loaded by path (tests/ is no package)."""
    if str(_ROOT) not in sys.path:
        sys.path.insert(0, str(_ROOT))  # the test module imports tests.metrics.scene_builders
    spec = importlib.util.spec_from_file_location("lead_bench_test_pdm_closed", _TESTS)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load the reference loop from {_TESTS}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cpu(fn: Callable[[], object], repeats: int = 1) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def _planner_only(scene: ScoringScene, best: int) -> np.ndarray:
    """The vectorised planner's share of ``run_pdm_closed`` (no simulation, no scoring)."""
    obs = build_observation(scene)
    paths = [DiscretePath(scene.centerline)] + [DiscretePath(parallel_path(scene.centerline, o)) for o in (-1.0, 1.0)]
    rear = nuplan_rear_axle_roundtrip(scene.ego_pose, PACIFICA.rear_axle_to_center)
    gen = ProposalGenerator(paths, obs, rear[:2], float(scene.ego_velocity_xy[0]),
                            IDMParameters().target_velocities(scene.start_lane_speed_limit_mps))
    gen.generate()
    return gen.extend(best)


class _Split:
    """CPU time spent inside the simulator and the scorer during ``run_pdm_closed``."""

    def __init__(self) -> None:
        self.seconds = {"simulate": 0.0, "score_batch": 0.0}

    def __enter__(self) -> _Split:
        self._orig = {name: getattr(pdm_closed, name) for name in self.seconds}
        for name, fn in self._orig.items():
            setattr(pdm_closed, name, self._timed(name, fn))
        return self

    def _timed(self, name: str, fn: Callable) -> Callable:
        def wrapper(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            t0 = time.process_time()
            out = fn(*args, **kwargs)
            self.seconds[name] += time.process_time() - t0
            return out
        return wrapper

    def __exit__(self, *exc: object) -> None:
        for name, fn in self._orig.items():
            setattr(pdm_closed, name, fn)


def _scenes(root: Path) -> list[ScoringScene]:
    out = []
    road_map = query = None
    # A world of one log has no train split (the embedded world puts its first logs in test): read the splits
    # that are there.
    splits = [s for s in ("test", "train") if any((root / "navsim_logs" / s).glob("*.pkl"))]
    for split in splits:
        reader = NavsimReader(root, split)
        for ref in reader.index():
            frames, cur = reader.scene_frames(ref.token)
            if road_map is None:
                road_map = read_nuplan_map(root / "maps", frames[cur].map_location)
                query = MapQuery(road_map)
            out.append(build_scoring_scene(frames, cur, road_map, query))
    return out


#: The commit before the metric-cache PDM-Closed speed-ups (selection-only scoring, numpy box distances, ...).
DEFAULT_BASELINE = "93d9b74"

#: Stages timed inside ``plan_pdm_closed_batch`` where the measured revision has them: (label, module, name).
_STAGES = (
    ("observation", "harness.agents.pdm_closed", "build_observation"),
    ("observation", "harness.agents.pdm_closed", "build_observations"),
    ("proposal generators", "harness.agents.pdm_closed_proposals", "ProposalGenerator.__init__"),
    ("proposal generators", "harness.agents.pdm_closed", "build_corridors"),
    ("leader candidates", "harness.agents.pdm_closed", "precompute_candidates"),
    ("leader candidates", "harness.agents.pdm_closed", "candidate_entries"),
    ("IDM unroll: leaders", "harness.agents.pdm_closed_joint", "JointUnroll._update_leaders"),
    ("IDM unroll (all)", "harness.agents.pdm_closed_joint", "JointUnroll.generate"),
    ("LQR + bicycle", "harness.agents.pdm_closed", "simulate"),
    ("scoring", "harness.agents.pdm_closed", "score_batch"),
    ("scoring", "harness.agents.pdm_closed", "selection_scores"),
    ("extension to 5 s", "harness.agents.pdm_closed_joint", "JointUnroll.extend"),
)


def _measure_planning(scene_dir: Path, repeats: int) -> dict:
    """CPU seconds of ``plan_pdm_closed_batch`` over the stored scenes in metric-cache chunks (best of
    ``repeats``), per stage of that best run, and a digest of every trajectory; with whatever lead-bench is
    importable (the baseline subprocess runs its own revision)."""
    import importlib

    from harness.agents.pdm_closed import plan_pdm_closed_batch
    from harness.navsim_eval import MetricCache
    from harness.scoring_scene import ScoringScene

    scenes = [ScoringScene.load(p) for p in sorted(scene_dir.glob("*.npz"))]
    n = len(scenes)
    size = -(-n // max(1, -(-n // MetricCache.PLAN_CHUNK)))
    chunks = [scenes[i:i + size] for i in range(0, n, size)]
    seconds: dict[str, float] = {}
    for label, module, name in _STAGES:
        owner = importlib.import_module(module)
        *path, attr = name.split(".")
        for part in path:
            owner = getattr(owner, part, None)
        if owner is None or not hasattr(owner, attr):
            continue
        fn = getattr(owner, attr)

        def timed(*a, _fn=fn, _label=label, **k):  # noqa: ANN002, ANN003, ANN202
            t0 = time.process_time()
            out = _fn(*a, **k)
            seconds[_label] = seconds.get(_label, 0.0) + time.process_time() - t0
            return out
        setattr(owner, attr, timed)
    plans = [p for c in chunks for p in plan_pdm_closed_batch(c)]  # warm-up
    best, best_split = float("inf"), {}
    for _ in range(repeats):
        seconds.clear()
        t0 = time.process_time()
        for c in chunks:
            plan_pdm_closed_batch(c)
        total = time.process_time() - t0
        if total < best:
            best, best_split = total, dict(seconds)
    digest = [hashlib.blake2b(np.ascontiguousarray(s).tobytes() + np.ascontiguousarray(t).tobytes()).hexdigest()
              for s, t in plans]
    return {"scenes": n, "chunk": size, "total": best, "stages": best_split, "digest": digest}


def _planning_in_subprocess(tree: Path, scene_dir: Path, repeats: int, out: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree))
    subprocess.run([sys.executable, str(Path(__file__).resolve()), "--measure-planning", str(scene_dir),
                    "--repeats", str(repeats), "--out", str(out)], check=True, cwd=tree, env=env)
    return json.loads(out.read_text())


def _planning_table(scenes: list[ScoringScene], rev: str | None, repeats: int, tmp: Path) -> None:
    scene_dir = tmp / "scenes"
    scene_dir.mkdir()
    for i, scene in enumerate(scenes):
        scene.save(scene_dir / f"{i:05d}.npz")
    new = _planning_in_subprocess(_ROOT, scene_dir, repeats, tmp / "new.json")
    old = None
    if rev is not None:
        tree = tmp / "baseline-tree"
        tree.mkdir()
        archive = subprocess.run(["git", "-C", str(_ROOT), "archive", rev], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        old = _planning_in_subprocess(tree, scene_dir, repeats, tmp / "old.json")
    n = new["scenes"]
    table = Table(title=f"PDM-Closed as the metric cache plans it: {n} scenes in chunks of {new['chunk']}, CPU ms per "
                        f"scene (best of {repeats}), baseline {rev or 'none'} in the same run")
    for col in ("stage", "baseline ms/scene", "new ms/scene", "baseline/new"):
        table.add_column(col, justify="right")
    labels = list(dict.fromkeys(label for label, _, _ in _STAGES))
    for label, a, b in [(lb, (old or {}).get("stages", {}).get(lb), new["stages"].get(lb)) for lb in labels] + [
            ("total", (old or {}).get("total"), new["total"])]:
        table.add_row(label, "n/a" if a is None else f"{1000 * a / n:.2f}",
                      "n/a" if b is None else f"{1000 * b / n:.2f}", "n/a" if not a or not b else f"{a / b:.2f}x")
    Console().print(table)
    if old is not None:
        print(f"trajectories bit-identical to {rev}: {old['digest'] == new['digest']} ({n} scenes); stages are "
              f"nested (leaders within the unroll); the rest of the total is paths, forecasts and bookkeeping")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--logs", type=int, default=2)
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--world", type=Path, default=None, help="an embedded world already built (else one is built)")
    ap.add_argument("--baseline-rev", default=DEFAULT_BASELINE, help="git revision of the planning baseline")
    ap.add_argument("--no-baseline", action="store_true", help="no baseline revision in the planning table")
    ap.add_argument("--measure-planning", type=Path, default=None, help=argparse.SUPPRESS)  # subprocess
    ap.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure_planning is not None:
        args.out.write_text(json.dumps(_measure_planning(args.measure_planning, args.repeats)))
        return
    ref = _load_reference()

    with tempfile.TemporaryDirectory(prefix="lead-bench-pdm-closed-") as tmp:
        if args.world is None:
            spec = EmbeddedWorldSpec(WorldConfig(seed=args.seed, num_logs=args.logs, duration_s=args.duration),
                                     NavsimWriteOptions(write_sensors=False))
            scenes = _scenes(build_embedded_world(Path(tmp) / "world", spec))
        else:
            scenes = _scenes(args.world)
        _planning_table(scenes, None if args.no_baseline else args.baseline_rev, args.repeats, Path(tmp))
    n = len(scenes)
    objects = [int(s.object_present[0].sum()) for s in scenes]

    results = [pdm_closed.run_pdm_closed(s) for s in scenes]  # warm up, and the bests for the planner rows
    t_loop_full = _cpu(lambda: [ref.loop_plan(s) for s in scenes])
    loop_out = [ref.loop_plan(s) for s in scenes]
    for r, (states, best, _) in zip(results, loop_out):  # agreement first
        assert r.best == best, (r.best, best)
        np.testing.assert_allclose(r.states, states, rtol=0, atol=1e-9)
    with _Split() as split:
        t_split = _cpu(lambda: [pdm_closed.run_pdm_closed(s) for s in scenes])
    t_full = min(t_split, _cpu(lambda: [pdm_closed.run_pdm_closed(s) for s in scenes], max(args.repeats - 1, 1)))
    batched = pdm_closed.plan_pdm_closed_batch(scenes)
    for r, (states, _) in zip(results, batched, strict=True):
        np.testing.assert_array_equal(r.states, states)
    t_batch = _cpu(lambda: pdm_closed.plan_pdm_closed_batch(scenes), args.repeats)
    t_loop_plan = _cpu(lambda: [ref.loop_plan(s, best=r.best) for s, r in zip(scenes, results)])
    t_plan = _cpu(lambda: [_planner_only(s, r.best) for s, r in zip(scenes, results)], args.repeats)

    table = Table(title=f"PDM-Closed: {n} embedded-world scenes, objects at t = 0 "
                        f"{min(objects)}-{max(objects)} (median {int(np.median(objects))}), 15 proposals, 1 core")
    for col in ("what", "implementation", "CPU s", "scenes/s", "ms/scene", "ratio vs loop"):
        table.add_column(col, justify="right")

    def row(what: str, impl: str, seconds: float, base: float) -> None:
        table.add_row(what, impl, f"{seconds:.3f}", f"{n / seconds:,.1f}", f"{1000 * seconds / n:.2f}",
                      f"{base / seconds:,.1f}x")

    row("planner (IDM proposals + extension)", "per-proposal loop (baseline)", t_loop_plan, t_loop_plan)
    row("planner (IDM proposals + extension)", "vectorised", t_plan, t_loop_plan)
    row("cache-time run (+ simulate + score)", "per-proposal loop (baseline)", t_loop_full, t_loop_full)
    row("cache-time run (+ simulate + score)", "vectorised", t_full, t_loop_full)
    row("cache-time run (+ simulate + score)", "vectorised, batched across scenes", t_batch, t_loop_full)
    Console().print(table)
    sim, score = split.seconds["simulate"], split.seconds["score_batch"]
    print(f"vectorised run per scene: simulate {1000 * sim / n:.2f} ms, scoring {1000 * score / n:.2f} ms, "
          f"the rest (planner, forecast) {1000 * (t_split - sim - score) / n:.2f} ms (one pass)")
    print("Both implementations pick the same proposal in every scene; references agree to 1e-9 m; the batched "
          "run equals the per-scene run bit for bit.")


if __name__ == "__main__":
    main()
