"""CPU training throughput of the tiny TFv6 preset: the input pipeline against the model, in the same run.

Rows (samples/s; one process, ``torch.set_num_threads(--threads)``):

- loader, first pass: NAVSIM samples read from disk (log pickle parsed once, 3 JPEGs decoded and reduced) and
  encoded (crop/resize into the 64 x 384 strip, CenterNet labels, past poses, waypoints);
- loader, cached: the same from the in-memory cache (what every later epoch costs), without and with
  augmentation (viewpoint re-projection of every slot + colour);
- collate: stacking encoded items into ModelInputs / ModelTargets;
- model step: forward + losses + backward + AdamW step at the batch size (the baseline of the ratios).

A loader row's ratio to the model step says how many loader processes keep one training process busy (below
1.0 the model waits on data). Usage: python benchmarks/bench_training_cpu.py [--data-root WORLD] [--batch 16]
[--samples 48]. Numbers vary by +-30 % on a shared machine.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from harness.model.losses import tfv6_losses
from harness.model.tfv6 import TFv6
from harness.training.config import load_config
from harness.training.inputs import collate
from harness.training.sources import SourceRoots, open_source


def _rate(n: int, fn) -> float:  # noqa: ANN001 - a thunk
    t = time.perf_counter()
    fn()
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-root", type=Path, default=None, help="NAVSIM-layout world (default: the embedded one)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--samples", type=int, default=48)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    root = args.data_root
    if root is None:
        from harness.cli import embedded_world_root

        root = embedded_world_root()
    cfg = load_config("tiny", overrides=[f"batch_size={args.batch}", "augment.view_prob=1.0",
                                         "augment.colour_prob=1.0"])
    src = open_source("navsim", cfg, SourceRoots(navsim=root))
    n = min(args.samples, len(src))
    idx = list(range(n))
    rows = []
    rows.append(("loader, first pass (read + decode + encode)", _rate(n, lambda: [src[(i, -1)] for i in idx])))
    rows.append(("loader, cached, no augmentation", _rate(n, lambda: [src[(i, -1)] for i in idx])))
    rows.append(("loader, cached, viewpoint + colour augmentation",
                 _rate(n, lambda: [src[(i, 1000 + i)] for i in idx])))
    items = [src[(i % n, -1)] for i in range(args.batch)]
    rows.append(("collate", _rate(args.batch * 10, lambda: [collate(items, cfg.model) for _ in range(10)])))

    model = TFv6(cfg.model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01, amsgrad=True)
    inputs, targets = collate(items, cfg.model)

    def step() -> None:
        losses = tfv6_losses(model(inputs), targets, cfg.model)
        opt.zero_grad()
        losses["loss"].backward()
        opt.step()

    step()  # warm-up
    model_rate = _rate(args.batch * args.steps, lambda: [step() for _ in range(args.steps)])

    table = Table(title=f"TFv6 tiny on CPU ({args.threads} threads, batch {args.batch}, image "
                        f"{cfg.model.image_height}x{cfg.model.image_width}, {n} samples)")
    table.add_column("stage")
    table.add_column("samples/s", justify="right")
    table.add_column("x model step", justify="right")
    for name, r in rows:
        table.add_row(name, f"{r:,.1f}", f"{r / model_rate:,.2f}")
    table.add_row("model step (forward + losses + backward + AdamW)", f"{model_rate:,.2f}", "1.00")
    Console().print(table)
    params = sum(p.numel() for p in model.parameters())
    Console().print(f"{params / 1e6:.2f} M parameters; steps/s {model_rate / args.batch:.3f}; "
                    f"loader processes needed to keep one training process busy: "
                    f"{np.ceil(model_rate / rows[2][1]):.0f} (augmented, cached)")


if __name__ == "__main__":
    main()
