"""Training DataLoader throughput with NAVSIM BEV labels: a baseline git revision against the working tree, same run.

Each tree runs in its own process (the baseline is ``git archive``'d into a temporary directory, so the repo and
its worktrees are untouched) and drives the trainer's own DataLoader (:func:`harness.training.trainer.make_loader`:
mixed-source sampler, collate, pinned memory where CUDA is available) over the NAVSIM source of the
``navsim-r34`` preset (BEV head on, 256 x 256 labels; stitched 4-camera strip) at ``--batch``. Rows (samples/s):

- ``0 workers, cache warm``: main process, epochs 2.. (the sample cache filled by epoch 1);
- ``N workers, cache off, epoch 1``: every sample read, decoded and labelled (the cold case), timed from the
  loader's start, so worker start-up counts and the workers' prefetch cannot run ahead of the clock;
- ``N workers, cache off, epochs 2..``: the same on later passes (the working tree keeps rendered labels;
  images are decoded again, as the cache-off mode promises).

The last columns are the collated BEV label's size per sample. Usage: python benchmarks/bench_loader.py
[--baseline-rev REV | --baseline-tree DIR] [--world DIR] [--batch 32] [--epochs 3] [--workers 0 2].
Numbers vary by +-30 % on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: The last revision before BEV labels went int8 and the label cache (HEAD when this benchmark was written).
BASELINE_REV = "a094277"


def _child(world: Path, batch: int, workers: list[int], epochs: int) -> list[dict]:
    import torch

    import harness
    from harness.training.config import load_config
    from harness.training.data import MixedBatchSampler, MixPlan, default_steps_per_epoch
    from harness.training.sources import SourceRoots, open_sources
    from harness.training.trainer import make_loader

    rows = []
    for w in workers:
        for cache in (True, False) if w == 0 else (False,):
            cfg = load_config("navsim-r34", overrides=[f"batch_size={batch}", f"data.num_workers={w}",
                                                       f"data.cache_images={str(cache).lower()}"])
            sources = open_sources(cfg, SourceRoots(navsim=world))
            lengths = tuple(len(s) for s in sources)
            spe = default_steps_per_epoch(lengths, batch)
            plan = MixPlan(tuple(cfg.data.sources), lengths, batch, spe)
            sampler = MixedBatchSampler(plan, seed=0, max_steps=(epochs + 1) * spe, augment=True)
            t = time.perf_counter()
            it = iter(make_loader(cfg, sources, sampler, pin_memory=torch.cuda.is_available()))  # as the trainer
            batches = [next(it) for _ in range(spe)]  # epoch 1, timed from the loader's start (workers included)
            cold = batch * spe / (time.perf_counter() - t)
            bev = batches[0][1].bev_semantic["navsim"].classes
            del batches
            t = time.perf_counter()
            for _ in range((epochs - 1) * spe):
                next(it)
            later = batch * (epochs - 1) * spe / (time.perf_counter() - t)
            base = {"bev_bytes": bev[0].numel() * bev.element_size(), "dtype": str(bev.dtype),
                    # the DataLoader holds up to 4 batches per worker in flight: a shorter window times the queue
                    "prefetch_bound": w > 0 and (epochs - 1) * spe <= 4 * w}
            if cache:
                rows.append({"row": f"{w} workers, cache warm (epochs 2-{epochs})", "samples_per_s": later, **base})
            else:
                rows.append({"row": f"{w} workers, cache off, epoch 1", "samples_per_s": cold, **base})
                rows.append({"row": f"{w} workers, cache off, epochs 2-{epochs}", "samples_per_s": later, **base})
                rows[-2]["prefetch_bound"] = False  # timed from the loader's start
            del it
    rows.append({"harness": str(Path(harness.__file__).parent)})
    return rows


def _run_tree(tree: Path, args: argparse.Namespace) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--world", str(args.world), "--batch",
           str(args.batch), "--epochs", str(args.epochs), "--workers", *map(str, args.workers)]
    out = subprocess.run(cmd, cwd=tree, env=env, check=True, capture_output=True, text=True).stdout
    rows = json.loads(out.strip().splitlines()[-1])
    where = rows.pop()["harness"]
    if Path(where).resolve() != (tree / "harness").resolve():
        raise SystemExit(f"the child imported harness from {where}, not {tree}")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline-rev", default=BASELINE_REV)
    ap.add_argument("--baseline-tree", type=Path, default=None,
                    help="an extracted baseline tree to use instead of --baseline-rev")
    ap.add_argument("--world", type=Path, default=None, help="NAVSIM-layout world with maps/ (default: embedded)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--workers", type=int, nargs="*", default=[0, 2])
    ap.add_argument("--epochs", type=int, default=3, help="passes over the world per row (>= 2)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_child(args.world, args.batch, args.workers, args.epochs)))
        return
    if args.world is None:
        from harness.cli import embedded_world_root

        args.world = embedded_world_root()
    if args.baseline_tree is not None:  # e.g. on a machine without the repository's history
        before = _run_tree(args.baseline_tree.resolve(), args)
        args.baseline_rev = f"tree {args.baseline_tree}"
    else:
        with tempfile.TemporaryDirectory(prefix="bench_loader_") as tmp:
            base = Path(tmp)
            archive = subprocess.run(["git", "-C", str(REPO), "archive", args.baseline_rev], check=True,
                                     capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
            before = _run_tree(base, args)
    after = _run_tree(REPO, args)
    print(f"TFv6 navsim-r34 loader, NAVSIM source with BEV labels, batch {args.batch}, {os.cpu_count()} CPUs; "
          f"baseline {args.baseline_rev} vs working tree (samples/s)")
    print(f"{'loader':<38}{'before':>9}{'after':>9}{'ratio':>8}{'BEV B/sample before':>21}{'after':>9}")
    for b, a in zip(before, after):
        print(f"{a['row']:<38}{b['samples_per_s']:>9.1f}{a['samples_per_s']:>9.1f}"
              f"{a['samples_per_s'] / b['samples_per_s']:>8.2f}{b['bev_bytes']:>14,} {b['dtype'][6:]:<6}"
              f"{a['bev_bytes']:>9,} {a['dtype'][6:]}"
              f"{'  (window <= 4 batches/worker: prefetch-bound, not meaningful)' if a['prefetch_bound'] else ''}")


if __name__ == "__main__":
    main()
