"""Samples per second per core loading LEAD/CARLA frames with CarlaReader, against baselines in the same run.

Data: one embedded-world route written by ``adapters.carla.writer`` with LEAD's leaderboard rig at full size
(3 x 384 x 384 JPEG q30, LiDAR .laz, boxes, metas, hdmap, semantics, depth, radar, perturbed copies).

Rows (one process, one core; every loaded image is decoded):
- raw files (baseline): what any LEAD loader must do at least: decode the stitched JPEG, read the .laz, unpickle
  metas and boxes, decode the hdmap/semantics/depth PNGs; no conversion, no labels built;
- images only: ``CarlaReader.load`` with cameras only, the 3 images decoded;
- images + LiDAR;
- all labels: images, LiDAR, 3-D boxes, the 13-class BEV raster, per-camera semantics and depth, future
  trajectory resampled, target points;
- all labels, perturbed copy.

Usage: python benchmarks/bench_carla_loading.py [--frames 8] [--repeats 3] [--camera-scale 1.0]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable

from rich.console import Console
from rich.table import Table

from adapters.carla import format as fmt
from adapters.carla.reader import ALL_SENSORS, CAMERAS_ONLY, CarlaReader, CarlaSensors
from adapters.carla.writer import CarlaWriteOptions, write_carla_route
from harness.world.build import WorldConfig, build_world


def _rate(repeats: int, n: int, fn: Callable[[], None]) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return n / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--camera-scale", type=float, default=1.0)
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    world = build_world(WorldConfig(seed=0, num_logs=1, duration_s=max(3.0, args.frames * 0.25 + 2.5)))
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        route = write_carla_route(world.logs[0], tmp, CarlaWriteOptions(camera_scale=args.camera_scale,
                                                                         max_frames=args.frames))
        t_write = time.perf_counter() - t0
        reader = CarlaReader(tmp)
        refs = reader.index()
        n = len(refs)

        def raw() -> None:
            for f in range(n):
                fmt.read_jpeg(fmt.frame_path(route, "rgb", f), where="")
                fmt.read_laz(fmt.frame_path(route, "lidar", f), where="")
                fmt.read_lzma_pickle(fmt.frame_path(route, "metas", f), where="")
                fmt.read_lzma_pickle(fmt.frame_path(route, "bboxes", f), where="")
                for folder in ("hdmap", "semantics", "depth"):
                    fmt.read_png(fmt.frame_path(route, folder, f), where="")

        def load(sensors: CarlaSensors, perturbed: bool = False) -> Callable[[], None]:
            r = CarlaReader(tmp, perturbed=perturbed)
            rs = r.index()

            def run() -> None:
                for ref in rs:
                    s = r.load(ref, sensors)
                    for cam in s.observation.cameras.values():
                        cam.load_image()
            return run

        rows = [
            ("raw files (baseline)", _rate(args.repeats, n, raw)),
            ("images only", _rate(args.repeats, n, load(CAMERAS_ONLY))),
            ("images + LiDAR", _rate(args.repeats, n, load(CarlaSensors(cameras=True, lidar=True, labels=False)))),
            ("all labels", _rate(args.repeats, n, load(ALL_SENSORS))),
            ("all labels, perturbed copy", _rate(args.repeats, n, load(ALL_SENSORS, perturbed=True))),
        ]
        sample = reader.load(refs[0])
        n_pts = len(sample.observation.lidar.points)
        n_boxes = len(sample.targets.boxes)
        size = sum(p.stat().st_size for p in route.rglob("*") if p.is_file()) / n / 1e6

    table = Table(title=f"CARLA frame loading, 1 core ({n} frames, rig carla_lb_3cam at scale {args.camera_scale}: "
                        f"{sample.observation.cameras['rgb_front'].width} px cameras, {n_pts} LiDAR points, "
                        f"{n_boxes} boxes, {size:.2f} MB/frame on disk)")
    table.add_column("what is loaded")
    table.add_column("samples/s/core", justify="right")
    table.add_column("ms/sample", justify="right")
    table.add_column("vs raw files", justify="right")
    table.add_column("vs images only", justify="right")
    base, img = rows[0][1], rows[1][1]
    for name, rate in rows:
        table.add_row(name, f"{rate:.1f}", f"{1000 / rate:.1f}", f"{rate / base:.2f}x", f"{rate / img:.2f}x")
    Console().print(table)
    Console().print(f"writing the route took {t_write / n:.2f} s/frame (rendering all labels and both copies); "
                    "numbers vary about +-30 % with machine load.")


if __name__ == "__main__":
    main()
