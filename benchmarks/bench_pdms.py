"""PDMS v1.1 scoring throughput: the vectorised ``metrics.pdms`` against the straightforward shapely-per-step
scorer (``metrics.pdm_scoring.loop_scorer``, the baseline), on the same scenes in the same run.

Scenes (``--source``):

- ``world`` (default): every scene of a small embedded world without sensors, built by the NAVSIM adapter
  from its logs and nuPlan GeoPackage map (``build_scoring_scene``): the PDM drivable map within 100 m (a real
  map patch: roadblocks, lanes, connectors, intersections, car parks), 51-step object timelines of busy logs
  (60-110 objects), on-route lanes and centerline. Two proposals per scene, as NAVSIM scores them: the logged
  human future (standing in for PDM-Closed) and the constant-velocity agent, 41 states each.
- ``random``: the random intersection scenes of ``tests/metrics/scene_builders.py`` (``--objects`` objects,
  polygons densified to ``--densify`` m between vertices, about nuPlan's density), two proposals.

Simulation is not timed. Every timed run scores fresh copies of the scenes' polygons, so the cost of
preparing them (shapely's point-in-polygon index) is counted as it is when each token is scored once.
Timed: the loop baseline on the first ``--baseline-scenes`` scenes; ``score_proposals`` one scene at a time;
``score_batch`` (chunks of ``--chunk`` scenes); and ``score_batch`` in ``--workers`` processes, each scoring
its share ``--rounds`` times (the 2-core target: >= 1,000 scenes/s). The baseline and the batched scores
must agree exactly before the table is printed. "scenes per CPU s" divides by process CPU time (summed over
the workers), which other load on the machine does not inflate.

Usage: python benchmarks/bench_pdms.py [--source world] [--logs 4] [--duration 30] [--objects 40]
       [--densify 1.0] [--scenes 400] [--baseline-scenes 48] [--chunk 64] [--workers 2] [--rounds 3]
       [--repeats 3] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import shapely
from rich.console import Console
from rich.table import Table

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))  # the scene builders live with the tests

from adapters.navsim.map_reader import read_nuplan_map  # noqa: E402
from adapters.navsim.reader import NavsimReader  # noqa: E402
from adapters.navsim.scoring_scenes import build_scoring_scene  # noqa: E402
from adapters.navsim.writer import NavsimWriteOptions  # noqa: E402
from harness.embedded import EmbeddedWorldSpec, build_embedded_world  # noqa: E402
from harness.map_query import MapQuery  # noqa: E402
from harness.scoring_scene import ScoringScene  # noqa: E402
from harness.world.build import WorldConfig  # noqa: E402
from metrics.pdm_scoring.loop_scorer import loop_score  # noqa: E402
from metrics.pdms import PDMS_COLUMNS, score_batch, score_proposals  # noqa: E402
from tests.metrics.scene_builders import log_proposals, random_scene  # noqa: E402

Scenes = list[tuple[ScoringScene, np.ndarray]]


def world_scenes(root: Path) -> Scenes:
    """Every scene of both splits of an embedded world on disk, with its two proposals."""
    out: Scenes = []
    road_map = query = None
    for split in ("test", "train"):
        reader = NavsimReader(root, split)
        for ref in reader.index():
            frames, cur = reader.scene_frames(ref.token)
            if road_map is None:
                road_map = read_nuplan_map(root / "maps", frames[cur].map_location)
                query = MapQuery(road_map)
            scene = build_scoring_scene(frames, cur, road_map, query)
            if scene.human_future_local is not None and len(scene.human_future_local) >= 8:
                out.append((scene, log_proposals(scene)))
    return out


def random_scenes(n: int, objects: int, densify_m: float, seed: int) -> Scenes:
    out: Scenes = []
    for i in range(n):
        scene, states = random_scene(np.random.default_rng([seed, i]), n_objects=objects, n_agents=1)
        if densify_m > 0:
            polys = np.asarray(shapely.segmentize(scene.drivable_polygons, densify_m), dtype=object)
            scene = replace(scene, drivable_polygons=polys)
        out.append((scene, states))
    return out


def _fresh(scenes: Scenes) -> Scenes:
    """The same scenes with new, unprepared polygon objects."""
    return [
        (
            replace(
                s,
                drivable_polygons=np.asarray(
                    shapely.from_wkb(shapely.to_wkb(s.drivable_polygons)), dtype=object
                ),
            ),
            x,
        )
        for s, x in scenes
    ]


def _tile(scenes: Scenes, n: int) -> Scenes:
    return [scenes[i % len(scenes)] for i in range(max(n, len(scenes)))]


def _best_of(repeats: int, make: Callable[[], Scenes], fn: Callable[[Scenes], object]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of the fastest of ``repeats`` runs of ``fn`` on fresh scenes."""
    best = (float("inf"), float("inf"))
    for _ in range(repeats):
        scenes = make()
        t0, c0 = time.perf_counter(), time.process_time()
        fn(scenes)
        best = min(best, (time.perf_counter() - t0, time.process_time() - c0))
    return best


def _batch(scenes: Scenes, chunk: int = 64):
    return score_batch([s for s, _ in scenes], [x for _, x in scenes], chunk_scenes=chunk)


# Worker state for the multi-process run (each process builds its scenes once).
_STATE: dict[str, object] = {}


def _init_worker(kind: str, arg: object, n: int, chunk: int) -> None:
    if kind == "world":
        scenes = _tile(world_scenes(Path(str(arg))), n)
    else:
        objects, densify_m, seed = arg  # type: ignore[misc]
        scenes = random_scenes(n, objects, densify_m, seed)
    _STATE.update(scenes=scenes, chunk=chunk)


def _score_range(task: tuple[int, int, int]) -> tuple[int, float, float]:
    """Scores scenes [lo, hi) ``rounds`` times on fresh polygons; returns (scenes, wall s, CPU s)."""
    lo, hi, rounds = task
    wall = cpu = 0.0
    for _ in range(rounds):
        scenes = _fresh(_STATE["scenes"][lo:hi])  # type: ignore[index]
        t0, c0 = time.perf_counter(), time.process_time()
        _batch(scenes, int(_STATE["chunk"]))  # type: ignore[arg-type]
        wall += time.perf_counter() - t0
        cpu += time.process_time() - c0
    return (hi - lo) * rounds, wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", choices=("world", "random"), default="world")
    ap.add_argument("--logs", type=int, default=4)
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--objects", type=int, default=40)
    ap.add_argument("--densify", type=float, default=1.0)
    ap.add_argument("--scenes", type=int, default=400)
    ap.add_argument("--baseline-scenes", type=int, default=48)
    ap.add_argument("--chunk", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="lead-bench-pdms-") as tmp:
        if args.source == "world":
            spec = EmbeddedWorldSpec(
                WorldConfig(seed=args.seed, num_logs=args.logs, duration_s=args.duration),
                NavsimWriteOptions(write_sensors=False),
            )
            root = build_embedded_world(Path(tmp), spec)
            distinct = world_scenes(root)
            scenes = _tile(distinct, args.scenes)
            init: tuple = ("world", str(root), args.scenes, args.chunk)
        else:
            scenes = distinct = random_scenes(args.scenes, args.objects, args.densify, args.seed)
            init = ("random", (args.objects, args.densify, args.seed), args.scenes, args.chunk)
        n, nb = len(scenes), min(args.baseline_scenes, len(scenes))

        # Agreement first: the loop baseline and the vectorised scorer, and batching against one at a time.
        batched = _batch(_fresh(scenes), args.chunk)
        for (scene, states), res in zip(scenes[:nb], batched[:nb]):
            ref = loop_score(scene, states)
            for name, value in ref.items():
                np.testing.assert_array_equal(getattr(res, name), value, err_msg=f"{scene.token} {name}")
        for (scene, states), res in zip(scenes, batched):
            single = score_proposals(scene, states)
            for name in PDMS_COLUMNS:
                np.testing.assert_array_equal(getattr(single, name), getattr(res, name))

        t_loop = _best_of(1, lambda: _fresh(scenes[:nb]), lambda sc: [loop_score(s, x) for s, x in sc])
        t_single = _best_of(
            args.repeats, lambda: _fresh(scenes), lambda sc: [score_proposals(s, x) for s, x in sc]
        )
        t_batch = _best_of(args.repeats, lambda: _fresh(scenes), lambda sc: _batch(sc, args.chunk))
        bounds = np.linspace(0, n, args.workers + 1).astype(int)
        with ProcessPoolExecutor(args.workers, initializer=_init_worker, initargs=init) as pool:
            list(pool.map(_score_range, [(lo, hi, 1) for lo, hi in zip(bounds[:-1], bounds[1:])]))  # warm up
            tasks = [(lo, hi, args.rounds) for lo, hi in zip(bounds[:-1], bounds[1:])]
            t_par = (float("inf"), float("inf"))
            for _ in range(args.repeats):
                # The workers run side by side; the slowest one's scoring time (wall clock, without the
                # polygon copies between rounds) is the parallel time; CPU time is summed over workers.
                done = list(pool.map(_score_range, tasks))
                assert sum(c for c, _, _ in done) == n * args.rounds
                t_par = min(
                    t_par,
                    (max(w for _, w, _ in done) / args.rounds, sum(c for _, _, c in done) / args.rounds),
                )

    objects = [int(s.object_present[:50].any(axis=0).sum()) for s, _ in distinct]
    verts = [int(shapely.get_num_coordinates(s.drivable_polygons).sum()) for s, _ in distinct]
    polys = [len(s.drivable_polygons) for s, _ in distinct]
    agent = np.array([r.row(1)["score"] for r in batched])
    title = (
        f"PDMS v1.1 scoring, {args.source} scenes: {n} scored ({len(distinct)} distinct), 2 proposals x 41 states, "
        f"objects {min(objects)}-{max(objects)} (median {int(np.median(objects))}), map polygons median "
        f"{int(np.median(polys))} with {int(np.median(verts))} vertices; agent PDMS mean {agent.mean():.3f}"
    )
    table = Table(title=title)
    for col in ("implementation", "scenes", "seconds", "scenes/s", "ratio vs baseline", "scenes per CPU s"):
        table.add_column(col, justify="right")
    rate_loop = nb / t_loop[0]
    for name, count, secs in (
        ("shapely per step, loops (baseline)", nb, t_loop),
        ("vectorised, one scene at a time", n, t_single),
        (f"vectorised, batched ({args.chunk} scenes)", n, t_batch),
        (f"vectorised, batched, {args.workers} processes", n, t_par),
    ):
        table.add_row(
            name,
            f"{count:,}",
            f"{secs[0]:.3f}",
            f"{count / secs[0]:,.0f}",
            f"{count / secs[0] / rate_loop:,.1f}x",
            f"{count / secs[1]:,.0f}",
        )
    Console().print(table)


if __name__ == "__main__":
    main()
