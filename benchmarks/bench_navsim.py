"""Foundation benchmarks: building the default embedded world, and loading NAVSIM samples.

Prints a table. Baselines are measured in the same run:
- world build: the whole default world (8 logs x 30 s, 60 keyframes each, 8 cameras at 1/4 scale + LiDAR),
  with 1 worker and with one worker per core; the 1-worker time is the baseline;
- sample loading: 3 front cameras (decoded) + LiDAR per sample, against the same load with NAVSIM's
  own approach of decoding all 8 cameras (what `SensorConfig.build_all_sensors` does) as the baseline.

Usage: python benchmarks/bench_navsim.py [--out DIR] [--samples N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from adapters.navsim.log_format import NUPLAN_CAMERA_NAMES
from adapters.navsim.reader import NavsimReader, SensorSelection
from harness.embedded import EmbeddedWorldSpec, build_embedded_world


def _load_rate(root: Path, selection: SensorSelection, n: int) -> float:
    reader = NavsimReader(root, "test")
    refs = reader.index()
    reader.load(refs[0])  # logs parsed once, outside the timing (index is cached in real runs too)
    t0 = time.perf_counter()
    for i in range(n):
        s = reader.load(refs[i % len(refs)], selection)
        for cam in s.observation.cameras.values():
            cam.load_image()
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=None, help="where to build (default: a temporary directory)")
    ap.add_argument("--samples", type=int, default=300)
    args = ap.parse_args()
    cores = len(os.sched_getaffinity(0))
    spec = EmbeddedWorldSpec()
    table = Table(title=f"lead-bench foundation benchmarks ({cores} cores)")
    for col in ("what", "value", "target", "ratio vs baseline"):
        table.add_column(col, justify="right")
    with tempfile.TemporaryDirectory() as tmp:
        base = args.out or Path(tmp)
        t0 = time.perf_counter()
        build_embedded_world(base / "w1", spec, workers=1)
        t_serial = time.perf_counter() - t0
        t0 = time.perf_counter()
        root = build_embedded_world(base / "wn", spec, workers=cores)
        t_par = time.perf_counter() - t0
        table.add_row("world build, 1 worker (baseline)", f"{t_serial:.1f} s", "", "1.00")
        table.add_row(f"world build, {cores} workers", f"{t_par:.1f} s", "< 60 s", f"{t_serial / t_par:.2f}x faster")
        three = SensorSelection(cameras=("CAM_L0", "CAM_F0", "CAM_R0"), lidar=True)
        all8 = SensorSelection(cameras=NUPLAN_CAMERA_NAMES, lidar=True)
        r8 = _load_rate(root, all8, args.samples // 3)
        r3 = _load_rate(root, three, args.samples)
        table.add_row("load 8 cameras + LiDAR (baseline)", f"{r8:.0f} samples/s", "", "1.00")
        table.add_row("load 3 front cameras + LiDAR, 1 core", f"{r3:.0f} samples/s", ">= 30 /s/core", f"{r3 / r8:.2f}x")
        nofs = SensorSelection()
        r0 = _load_rate(root, nofs, args.samples)
        table.add_row("load ego status + boxes only", f"{r0:.0f} samples/s", "", f"{r0 / r8:.2f}x")
    Console().print(table)


if __name__ == "__main__":
    main()
