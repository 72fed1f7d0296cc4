"""Does NAVSIM BEV-semantic supervision change the tiny TFv6's world PDMS / RFS? Constant velocity, then the
tiny preset trained with and without the NAVSIM BEV loss (weight 0 = the head untrained, as before the label
existed), per seed, all on one embedded world, in one run.

Each arm is ``lead-bench train --preset tiny`` with the settings of the earlier 1200-step reference (lr 3e-3,
viewpoint augmentation 0.3, colour 0.2, batch 8, waypoint loss weight 3), validated at the end with PDMS on
the world's NAVSIM test split and RFS on its Waymo val split; the table gives each against constant velocity.
Usage: python benchmarks/bench_bev_supervision.py [--world DIR] [--steps 1200] [--seeds 0 1] [--out DIR]
[--device cpu]. World RFS is scored on a handful of rated frames and PDMS on 188 tokens: differences of one or
two PDMS points between seeds are noise.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

SETTINGS = ["--set", "optim.lr=0.003", "--set", "augment.view_prob=0.3", "--set", "augment.colour_prob=0.2",
            "--set", "batch_size=8"]
ARMS = {"BEV supervised": "[[waypoints,3.0]]", "no BEV loss": "[[waypoints,3.0],[bev_semantic/navsim,0.0]]"}


def _lb(*args: str, log: Path) -> None:
    with log.open("w") as fh:
        subprocess.run([sys.executable, "-m", "harness.cli", *args], check=True, stdout=fh, stderr=subprocess.STDOUT)


def _val(run: Path) -> dict[str, float]:
    rows = [r for r in csv.DictReader((run / "metrics.csv").open()) if r.get("val/pdms")]
    last = rows[-1]
    return {"pdms": float(last["val/pdms"]), "rfs": float(last["val/rfs"]), "ade": float(last["val/navsim_ade_m"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--world", type=Path, default=None, help="a built world (default: build one under --out)")
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-bev-"))
    out.mkdir(parents=True, exist_ok=True)
    world = args.world or out / "world"
    if args.world is None:
        _lb("world", "build", "--out", str(world), log=out / "world.log")
    _lb("run", "navsim", "--data-root", str(world), "--maps-root", str(world / "maps"), "--agent", "cv",
        "--out", str(out / "cv"), log=out / "cv.log")
    _lb("run", "waymo", "--data-root", str(world / "waymo"), "--agent", "cv", "--out", str(out / "wcv"),
        log=out / "wcv.log")
    cv_pdms = json.loads((out / "cv" / "summary.json").read_text())["pdms"]
    cv_rfs = json.loads((out / "wcv" / "summary.json").read_text())["rfs"]
    roots = ["--navsim-root", str(world), "--waymo-root", str(world / "waymo"), "--maps-root", str(world / "maps")]
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    results: list[tuple[str, int, dict[str, float]]] = []
    for seed in args.seeds:
        procs = []
        for i, (name, weights) in enumerate(ARMS.items()):
            run = out / f"arm{i}-seed{seed}"
            cmd = [sys.executable, "-m", "harness.cli", "train", "--preset", "tiny", "--max-steps", str(args.steps),
                   "--device", args.device, *roots, *SETTINGS, "--set", f"seed={seed}", "--set",
                   f"loss_weights={weights}", "--out", str(run)]
            log = (out / f"arm{i}-seed{seed}.log").open("w")
            procs.append((name, run, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)))
        for name, run, p in procs:
            if p.wait() != 0:
                raise SystemExit(f"{name} (seed {seed}) failed; see {run}.log")
            results.append((name, seed, _val(run)))
    table = Table(title=f"tiny TFv6, {args.steps} steps on {world} (PDMS x100 on the NAVSIM test split, RFS on "
                        "the Waymo val split)")
    for col in ("policy", "seed", "PDMS", "x cv", "ADE m", "RFS", "x cv"):
        table.add_column(col, justify="left" if col == "policy" else "right")
    table.add_row("constant velocity", "-", f"{cv_pdms:.2f}", "1.00", "", f"{cv_rfs:.2f}", "1.00")
    for name, seed, v in results:
        table.add_row(name, str(seed), f"{v['pdms']:.2f}", f"{v['pdms'] / cv_pdms:.2f}", f"{v['ade']:.3f}",
                      f"{v['rfs']:.2f}", f"{v['rfs'] / cv_rfs:.2f}")
    for name in ARMS:
        vs = [v for n, _, v in results if n == name]
        table.add_row(f"{name}, mean", f"{len(vs)}", f"{sum(v['pdms'] for v in vs) / len(vs):.2f}", "",
                      f"{sum(v['ade'] for v in vs) / len(vs):.3f}", f"{sum(v['rfs'] for v in vs) / len(vs):.2f}", "")
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
