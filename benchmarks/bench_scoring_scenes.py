"""Scoring-scene (metric cache) build throughput on embedded-world scenes, against a loop baseline.

Builds a small embedded world without sensors (``--logs`` logs of ``--duration`` s; its busy logs hold
60-110 objects per scene), then times, on every scene of both splits:

- the vectorised ``build_scoring_scene`` (everything but PDM-Closed), in one process and in ``--workers``
  processes, each building its share ``--rounds`` times (the 2-core target: >= 200 scenes/s);
- the baseline: the same build with the object timeline done the straightforward way, per track and per
  10 Hz step with scipy ``interp1d`` (``loop_object_timeline`` of ``tests/adapters/navsim/test_scoring_scenes.py``);
- the object timeline alone, both ways.

Both timelines are checked to agree bit for bit before the table is printed.

Usage: python benchmarks/bench_scoring_scenes.py [--logs 2] [--duration 20] [--repeats 3] [--workers 2]
       [--rounds 5]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from adapters.navsim import scoring_scenes
from adapters.navsim.map_reader import read_nuplan_map
from adapters.navsim.reader import NavsimReader
from adapters.navsim.scoring_objects import object_timeline
from adapters.navsim.scoring_scenes import build_scoring_scene
from adapters.navsim.writer import NavsimWriteOptions
from harness.embedded import EmbeddedWorldSpec, build_embedded_world
from harness.map_query import MapQuery
from harness.scoring_scene import ObjectTimeline
from harness.world.build import WorldConfig

_ROOT = Path(__file__).resolve().parent.parent
_TESTS = _ROOT / "tests" / "adapters" / "navsim" / "test_scoring_scenes.py"


def _load_reference():
    """The loop baseline lives with the tests that check it; loaded by path (tests/ is no package)."""
    if str(_ROOT) not in sys.path:
        sys.path.insert(0, str(_ROOT))  # the test module imports tests.fixtures_maps
    spec = importlib.util.spec_from_file_location("lead_bench_test_scoring_scenes", _TESTS)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load the reference loop from {_TESTS}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _best_of(repeats: int, fn: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


# Worker state for the multi-process run (each process reads the logs and the map once).
_STATE: dict[str, object] = {}


def _init_worker(root: str) -> None:
    scenes = _load_scenes(Path(root))
    road_map = read_nuplan_map(Path(root) / "maps", scenes[0][0][0].map_location)
    _STATE.update(scenes=scenes, map=road_map, query=MapQuery(road_map))


def _build_range(task: tuple[int, int, int]) -> int:
    lo, hi, rounds = task
    scenes, road_map, query = _STATE["scenes"], _STATE["map"], _STATE["query"]
    for _ in range(rounds):
        for frames, cur in scenes[lo:hi]:  # type: ignore[index]
            build_scoring_scene(frames, cur, road_map, query)  # type: ignore[arg-type]
    return (hi - lo) * rounds


def _load_scenes(root: Path) -> list:
    out = []
    for split in ("test", "train"):
        reader = NavsimReader(root, split)
        out += [reader.scene_frames(ref.token) for ref in reader.index()]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--logs", type=int, default=2)
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5, help="passes over the scenes per worker in the parallel run")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    ref = _load_reference()

    with tempfile.TemporaryDirectory(prefix="lead-bench-scoring-") as tmp:
        spec = EmbeddedWorldSpec(WorldConfig(seed=args.seed, num_logs=args.logs, duration_s=args.duration),
                                 NavsimWriteOptions(write_sensors=False))
        root = build_embedded_world(Path(tmp), spec)
        scenes = _load_scenes(root)
        road_map = read_nuplan_map(root / "maps", scenes[0][0][0].map_location)
        query = MapQuery(road_map)
        n = len(scenes)
        objects = [int(object_timeline(f, c).present[0].sum()) for f, c in scenes]

        def vectorised() -> None:
            for frames, cur in scenes:
                build_scoring_scene(frames, cur, road_map, query)

        def loop_timeline(frames, cur, horizon_s=5.0):  # noqa: ANN001, ANN202
            r = ref.loop_object_timeline(list(frames), cur, horizon_s)
            return ObjectTimeline(np.array(r["tokens"], dtype=str), r["types"], r["size_lwh"],
                                  r["first_velocity_xy"], r["present"], r["poses"], r["velocity_xy"])

        def baseline() -> None:
            original = scoring_scenes.object_timeline
            scoring_scenes.object_timeline = loop_timeline  # the same build, only the timeline swapped
            try:
                vectorised()
            finally:
                scoring_scenes.object_timeline = original

        for frames, cur in scenes:  # agreement first
            a, b = object_timeline(frames, cur), loop_timeline(frames, cur)
            for field in ("tokens", "types", "size_lwh", "first_velocity_xy", "present", "poses", "velocity_xy"):
                np.testing.assert_array_equal(getattr(a, field), getattr(b, field))

        vectorised()  # warm caches (route graph, prepared polygons)
        t_vec = _best_of(args.repeats, vectorised)
        t_base = _best_of(1, baseline)
        t_tl_vec = _best_of(args.repeats, lambda: [object_timeline(f, c) for f, c in scenes])
        t_tl_loop = _best_of(1, lambda: [loop_timeline(f, c) for f, c in scenes])
        # Each worker builds its share of the scenes ``--rounds`` times, so start-up and IPC are amortised.
        bounds = np.linspace(0, n, args.workers + 1).astype(int)
        with ProcessPoolExecutor(args.workers, initializer=_init_worker, initargs=(str(root),)) as pool:
            list(pool.map(_build_range, [(lo, hi, 1) for lo, hi in zip(bounds[:-1], bounds[1:])]))  # warm up
            tasks = [(lo, hi, args.rounds) for lo, hi in zip(bounds[:-1], bounds[1:])]

            def parallel() -> None:
                assert sum(pool.map(_build_range, tasks)) == n * args.rounds

            t_par = _best_of(args.repeats, parallel) / args.rounds

    table = Table(title=f"Scoring scenes: {n} embedded-world scenes, objects per scene "
                        f"{min(objects)}-{max(objects)} (median {int(np.median(objects))}), 51 steps")
    for col in ("what", "implementation", "seconds", "scenes/s", "ratio vs loop"):
        table.add_column(col, justify="right")
    table.add_row("full build", "loop timeline (baseline), 1 process", f"{t_base:.3f}", f"{n / t_base:,.0f}", "1.0x")
    table.add_row("full build", "vectorised, 1 process", f"{t_vec:.3f}", f"{n / t_vec:,.0f}",
                  f"{t_base / t_vec:,.1f}x")
    table.add_row("full build", f"vectorised, {args.workers} processes", f"{t_par:.3f}", f"{n / t_par:,.0f}",
                  f"{t_base / t_par:,.1f}x")
    table.add_row("object timeline", "per-track/per-step loop", f"{t_tl_loop:.3f}", f"{n / t_tl_loop:,.0f}", "1.0x")
    table.add_row("object timeline", "vectorised", f"{t_tl_vec:.3f}", f"{n / t_tl_vec:,.0f}",
                  f"{t_tl_loop / t_tl_vec:,.1f}x")
    Console().print(table)
    print("PDM-Closed excluded; the timelines agree bit for bit.")


if __name__ == "__main__":
    main()
