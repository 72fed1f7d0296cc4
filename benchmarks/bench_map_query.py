"""MapQuery throughput against straightforward shapely baselines, measured in the same run.

Map: ``--grid`` x ``--grid`` tiles of the test fixture intersection (``tests/fixtures_maps.py``; 8 roadblocks,
12 roadblock connectors, 32 lanes and connectors, an intersection and a car park per tile), and the
embedded world's map when ``harness.world.roads`` is present. Points are uniform over the map's bounds.

Baselines on the same points:
- naive loop: for each point, ``any(polygon.contains(Point))`` over all drivable polygons (timed on a subset
  of ``--subset`` points and extrapolated to N);
- per-polygon vectorised: NAVSIM's ``PDMOccupancyMap.points_in_polygons`` strategy, one
  ``shapely.contains_xy`` over all points per polygon.
Results are checked to agree before the table is printed. Target: drivable-area membership of 1e5 points
in < 0.5 s.

Usage: python benchmarks/bench_map_query.py [--points 100000] [--grid 10] [--subset 1000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import shapely
from rich.console import Console
from rich.table import Table

from harness.map_query import MapQuery
from harness.maps import RoadMap

_FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures_maps.py"


def _fixture_builder() -> Callable[..., RoadMap]:
    """The fixture map lives with the tests (tests/ is no package); load it by path."""
    spec = importlib.util.spec_from_file_location("lead_bench_fixtures_maps", _FIXTURES)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {_FIXTURES}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_fixture_map


def _best_of(repeats: int, fn: Callable[[], object]) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def _drivable_polygons(road_map: RoadMap) -> list[shapely.Polygon]:
    return [
        o.polygon
        for o in (
            *road_map.roadblocks.values(),
            *road_map.intersections.values(),
            *road_map.carparks.values(),
        )
    ]


def bench(name: str, road_map: RoadMap, n_points: int, subset: int, repeats: int, table: Table) -> None:
    rng = np.random.default_rng(0)
    lo, hi = np.asarray(shapely.total_bounds(_drivable_polygons(road_map))).reshape(2, 2)
    pts = rng.uniform(lo - 10.0, hi + 10.0, size=(n_points, 2))
    polys = _drivable_polygons(road_map)

    t_build, query = _best_of(1, lambda: MapQuery(road_map))
    t_mask, mask = _best_of(repeats, lambda: query.drivable_mask(pts))

    sub = pts[:subset]
    start = time.perf_counter()
    naive = np.array([any(p.contains(shapely.Point(x, y)) for p in polys) for x, y in sub])
    t_naive = (time.perf_counter() - start) * n_points / len(sub)

    def per_polygon() -> np.ndarray:
        out = np.zeros(len(pts), dtype=bool)
        for poly in polys:
            out |= shapely.contains_xy(poly, pts[:, 0], pts[:, 1])
        return out

    t_loop, looped = _best_of(1, per_polygon)
    if not (np.array_equal(naive, mask[:subset]) and np.array_equal(looped, mask)):
        raise SystemExit(f"{name}: MapQuery.drivable_mask disagrees with the shapely baselines")

    t_inter, _ = _best_of(repeats, lambda: query.in_intersection(pts))
    t_lanes, pairs = _best_of(repeats, lambda: query.lane_ids_containing(pts))
    centres = pts[:200]
    t_near, _ = _best_of(repeats, lambda: [query.objects_within(c, 50.0, "lane") for c in centres])
    t_dpoly, _ = _best_of(repeats, lambda: [query.drivable_polygons_within(c, 100.0) for c in centres])

    n_poly = f"{len(polys)} drivable / {len(road_map.lanes) + len(road_map.lane_connectors)} lane polygons"
    table.add_row(name, n_poly, "MapQuery build", "1 map", f"{t_build * 1e3:.1f} ms", "", "")
    table.add_row(
        "",
        "",
        "drivable_mask",
        f"{n_points:,}",
        f"{t_mask * 1e3:.1f} ms",
        f"naive loop {t_naive:.1f} s (x{t_naive / t_mask:,.0f})",
        f"per-polygon contains_xy {t_loop * 1e3:.0f} ms (x{t_loop / t_mask:.1f})",
    )
    table.add_row("", "", "in_intersection", f"{n_points:,}", f"{t_inter * 1e3:.1f} ms", "", "")
    table.add_row(
        "", "", "lane_ids_containing", f"{n_points:,}", f"{t_lanes * 1e3:.1f} ms", f"{len(pairs):,} pairs", ""
    )
    table.add_row(
        "", "", "objects_within(50 m, lane)", "200 centres", f"{t_near / 200 * 1e6:.0f} µs each", "", ""
    )
    table.add_row(
        "", "", "drivable_polygons_within(100 m)", "200 centres", f"{t_dpoly / 200 * 1e6:.0f} µs each", "", ""
    )
    verdict = "PASS" if n_points < 100_000 or t_mask * 100_000 / n_points < 0.5 else "FAIL"
    table.add_row("", "", f"target: 1e5 points < 0.5 s -> {verdict}", "", "", "", "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--grid", type=int, default=10)
    parser.add_argument("--subset", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    table = Table(
        title="MapQuery vs shapely baselines (best of repeats; naive loop extrapolated from a subset)"
    )
    for col in ("map", "size", "query", "N", "MapQuery", "baseline", "baseline 2"):
        table.add_column(col)
    maps: list[tuple[str, RoadMap]] = [
        (f"fixture {args.grid}x{args.grid}", _fixture_builder()((args.grid, args.grid)))
    ]
    if importlib.util.find_spec("harness.world.roads") is not None:
        from harness.world.roads import build_road_map

        maps.append(("embedded world (seed 0)", build_road_map(0)))
    for name, road_map in maps:
        bench(name, road_map, args.points, args.subset, args.repeats, table)
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
