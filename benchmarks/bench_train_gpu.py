"""The real ``lead-bench train`` loop on a GPU against the synthetic TrainStep number, the data pipeline, GPU
utilisation and the fraction of bf16 peak, in one run.

1. builds an embedded world on this machine (``lead-bench world build``, NAVSIM layout, cameras at 1/4 of
   nuPlan's 1920x1080, so the 4-camera strip is 3x270x1920 without resampling);
2. data pipeline: the trainer's own DataLoader (:func:`harness.training.trainer.make_loader`: mixed-source
   sampler, augmentation, collate in the workers, pinned memory) at batch 32: samples/s in the main process
   with the image cache warm (an epoch later) and off, and with N worker processes and every image decoded
   (cache off: the worst case; each worker keeps its own cache, which training warms over the epochs);
3. training FLOPs per sample of one step on a real batch (``torch.utils.flop_counter.FlopCounterMode``);
4. per batch size: ``lead-bench train --preset navsim-r34`` as a subprocess (defaults: compiled step replayed
   from a CUDA graph, fused AdamW, bf16 autocast, channels-last; data from the world through W workers), its
   steady-state samples/s from ``metrics.csv`` (rows after the first two log intervals, which hold compilation
   and capture), its peak GPU memory, the GPU utilisation sampled by NVML every 50 ms over the same window;
   then the synthetic number in the same run: :class:`~harness.model.step.TrainStep` (compile + CUDA graph) on
   random inputs already on the GPU (``benchmarks/bench_tfv6_gpu.py``'s ``compile_graph`` variant).

Ratios: real loop / synthetic step, and each against LEAD's eager TFv6 on an H100 (issue 7: 220 samples/s at
batch 32, 282 at 64). 'of bf16 peak' = FLOPs per sample x samples/s / 989 TFLOP/s (H100 SXM dense bf16).
Usage: PYTHONPATH=. python benchmarks/bench_train_gpu.py [--world DIR] [--logs 24] [--batches 32 64]
[--steps 200] [--workers 14] [--loader-workers 4 8 14] [--skip-synthetic] [--out DIR]. Numbers vary by a few
per cent between runs; the loader's also with the host's CPU.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from harness.training.config import load_config  # noqa: E402
from harness.training.data import MixedBatchSampler, MixPlan, default_steps_per_epoch  # noqa: E402
from harness.training.sources import SourceRoots, open_sources  # noqa: E402
from harness.training.trainer import make_loader  # noqa: E402

LEAD = {32: 220.0, 64: 282.0}  # LEAD's eager TFv6 on an H100, samples/s (issue 7)
LEAD_GIB = {32: 11.8, 64: 22.5}
PEAK = 989e12


class Util:
    """NVML GPU utilisation samples ``(unix time, percent)`` every 50 ms, device-wide (sees subprocesses)."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        import pynvml

        pynvml.nvmlInit()
        self._nvml, self._h = pynvml, pynvml.nvmlDeviceGetHandleByIndex(0)
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), self._nvml.nvmlDeviceGetUtilizationRates(self._h).gpu))
            time.sleep(0.05)

    def __enter__(self) -> Util:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()

    def mean(self, t0: float, t1: float) -> float | None:
        s = [u for t, u in self.samples if t0 <= t <= t1]
        return sum(s) / len(s) if s else None


def cli(*args: str) -> list[str]:
    exe = shutil.which("lead-bench")
    return [exe, *args] if exe else [sys.executable, "-c", "from harness.cli import main; main()", *args]


def build_world(world: Path, logs: int, duration: float) -> float:
    if (world / "navsim_logs" / "train").is_dir():
        return 0.0
    t = time.perf_counter()
    subprocess.run(cli("world", "build", "--out", str(world), "--logs", str(logs), "--duration", str(duration),
                       "--camera-scale", "0.25", "--workers", str(os.cpu_count() or 8)), check=True)
    return time.perf_counter() - t


def loader_rate(world: Path, workers: int, cache: bool, batch: int, batches: int) -> dict:
    """Samples/s of the trainer's DataLoader over ``batches`` batches (``batches <= 0``: one epoch). With the
    cache on, one epoch (every sample once) runs first to fill it (meant for ``workers=0``: each worker process
    keeps its own cache)."""
    cfg = load_config("navsim-r34", overrides=[f"batch_size={batch}", f"data.num_workers={workers}",
                                               f"data.cache_images={str(cache).lower()}", "val.navsim=false",
                                               "val.waymo=false"])
    sources = open_sources(cfg, SourceRoots(navsim=world))
    lengths = tuple(len(s) for s in sources)
    spe = default_steps_per_epoch(lengths, batch)
    plan = MixPlan(tuple(cfg.data.sources), lengths, batch, spe)
    batches = batches if batches > 0 else spe
    warm = spe if cache else 1
    sampler = MixedBatchSampler(plan, seed=0, max_steps=warm + batches + 1, augment=True)
    it = iter(make_loader(cfg, sources, sampler, pin_memory=True))
    for _ in range(warm):  # workers started (and the cache filled)
        next(it)
    t = time.perf_counter()
    for _ in range(batches):
        next(it)
    rate = batch * batches / (time.perf_counter() - t)
    del it
    return {"workers": workers, "cache": cache, "samples_per_s": rate, "world_samples": lengths[0]}


def count_flops(world: Path) -> tuple[float, str]:
    """Training FLOPs per sample (forward + losses + backward) on a real batch of 4 from the world."""
    from torch.utils.flop_counter import FlopCounterMode

    from harness.model.losses import tfv6_losses
    from harness.model.tfv6 import TFv6
    from harness.training.inputs import collate

    cfg = load_config("navsim-r34", overrides=["val.navsim=false", "val.waymo=false"])
    src = open_sources(cfg, SourceRoots(navsim=world))[0]
    inputs, targets = collate([src[(i, i)] for i in range(4)], cfg.model)
    labels = f"BEV semantics: {sorted(targets.bev_semantic)}, boxes: {sorted(targets.boxes)}"
    dev = torch.device("cuda")
    model = TFv6(cfg.model).to(dev).to(memory_format=torch.channels_last)
    inputs, targets = inputs.to(dev), targets.to(dev)
    with FlopCounterMode(display=False) as fc:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            pred = model(inputs)
        tfv6_losses(pred, targets, cfg.model)["loss"].backward()
    return fc.get_total_flops() / 4, labels


def real_train(world: Path, out: Path, batch: int, steps: int, workers: int, log_every: int,
               extra: list[str] | None = None) -> dict:
    name = f"train_b{batch}" + "".join("_" + "".join(c if c.isalnum() else "-" for c in kv) for kv in extra or [])
    run_dir = Path(tempfile.gettempdir()) / "bench_train_gpu" / name  # checkpoints stay out of OUT
    shutil.rmtree(run_dir, ignore_errors=True)
    cmd = cli("train", "--preset", "navsim-r34", "--navsim-root", str(world), "--no-val", "--device", "cuda",
              "--max-steps", str(steps), "--out", str(run_dir), "--set", f"batch_size={batch}",
              "--set", f"data.num_workers={workers}", "--set", f"log_every={log_every}",
              *[a for kv in extra or [] for a in ("--set", kv)])
    t, t_unix = time.perf_counter(), time.time()
    with Util() as util:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    (out / f"{name}.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-5000:], flush=True)
        raise RuntimeError(f"lead-bench train failed with exit code {proc.returncode}")
    shutil.copy(run_dir / "metrics.csv", out / f"{name}_metrics.csv")
    with (run_dir / "metrics.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r.get("samples_per_s")]
    first = rows[1]  # the first interval holds compilation and capture; steady state from the second row on
    lastr = rows[-1]
    n = batch * (int(lastr["step"]) - int(first["step"]))
    dt = float(lastr["unix_time"]) - float(first["unix_time"])
    steady = rows[2:]
    return {"kind": "lead-bench train" + (" " + ",".join(extra) if extra else ""), "batch": batch, "samples_per_s": n / dt,
            "ms_per_step": 1000 * dt / (int(lastr["step"]) - int(first["step"])),
            "peak_reserved_gib": float(lastr["gpu_peak_reserved_gib"]),
            "peak_allocated_gib": float(lastr["gpu_peak_allocated_gib"]),
            "gpu_util": util.mean(float(first["unix_time"]), float(lastr["unix_time"])),
            "data_fraction": sum(float(r["data_fraction"]) for r in steady) / max(1, len(steady)),
            "start_to_first_log_s": float(rows[0]["unix_time"]) - t_unix,  # start-up, compile, capture, steps
            "wall_s": wall, "steady_steps": int(lastr["step"]) - int(first["step"]),
            "log_tail": [line for line in proc.stdout.splitlines() if "training" in line or "CUDA" in line][-3:]}


def synthetic(batch: int, steps: int) -> dict:
    import bench_tfv6_gpu as b

    from harness.model.io import TFv6Config

    r = b.run_variant(TFv6Config.preset("navsim-r34"), batch, "compile_graph", steps, 6, torch.device("cuda"))
    torch.cuda.empty_cache()
    return {"kind": "TrainStep synthetic", "batch": batch, "samples_per_s": r["samples_per_s"],
            "ms_per_step": r["ms_per_step"], "peak_reserved_gib": r["peak_reserved_gib"],
            "peak_allocated_gib": float("nan"), "gpu_util": r["gpu_util"], "data_fraction": 0.0,
            "warmup_s": r["warmup_s"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", type=Path, default=Path(tempfile.gettempdir()) / "bench_world",
                    help="where the embedded world is built (reused when present)")
    ap.add_argument("--logs", type=int, default=24)
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--batches", type=int, nargs="*", default=[32, 64])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--log-every", type=int, default=20)
    ap.add_argument("--workers", type=int, default=14)
    ap.add_argument("--loader-workers", type=int, nargs="*", default=[2, 4, 8, 14])
    ap.add_argument("--skip-synthetic", action="store_true")
    ap.add_argument("--skip-flops", action="store_true")
    ap.add_argument("--skip-loader", action="store_true")
    ap.add_argument("--train-set", nargs="*", default=[], help="extra --set key=value for lead-bench train")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or Path(tempfile.gettempdir()) / "bench_train_gpu"),
                    help="result folder (default $OUT, as on the device machine)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.backends.cudnn.benchmark = True
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, {os.cpu_count()} CPUs", flush=True)
    t_world = build_world(args.world, args.logs, args.duration)
    print(f"world {args.world} built in {t_world:.0f} s", flush=True)
    loader = []
    for w, cache in [] if args.skip_loader else [(0, True), (0, False), *[(w, False) for w in args.loader_workers]]:
        try:
            r = loader_rate(args.world, w, cache, 32, 0 if w == 0 else 24)
            loader.append(r)
            print(json.dumps(r), flush=True)
        except Exception:  # noqa: BLE001 - report and go on
            traceback.print_exc()
    flops, labels = (float("nan"), "-") if args.skip_flops else count_flops(args.world)
    print(f"training FLOPs per sample on a real batch: {flops / 1e9:.0f} GFLOP ({labels})", flush=True)
    rows = []
    for b in args.batches:
        for kind in ("real", "synthetic"):
            if kind == "synthetic" and args.skip_synthetic:
                continue
            try:
                r = (real_train(args.world, args.out, b, args.steps, args.workers, args.log_every, args.train_set)
                     if kind == "real"
                     else synthetic(b, 30))
                rows.append(r)
                print(json.dumps(r), flush=True)
            except Exception:  # noqa: BLE001 - one failure must not hide the rest
                traceback.print_exc()
    (args.out / "bench_train_gpu.json").write_text(json.dumps({"flops_per_sample": flops, "labels": labels,
                                                               "loader": loader, "rows": rows}, indent=1))
    print("\ndata pipeline (trainer's DataLoader, batch 32, augmentation on, pinned memory)")
    print(f"{'workers':>8}{'image cache':>13}{'samples/s':>11}{'train samples':>15}")
    for r in loader:
        print(f"{r['workers']:>8}{'warm' if r['cache'] else 'off':>13}{r['samples_per_s']:>11.0f}"
              f"{r['world_samples']:>15}")
    synth = {r["batch"]: r for r in rows if r["kind"].startswith("TrainStep")}
    hdr = (f"{'run':<30}{'batch':>6}{'ms/step':>9}{'samples/s':>11}{'vs synth':>9}{'vs LEAD':>9}{'peak res GiB':>13}"
           f"{'LEAD GiB':>9}{'GPU util':>9}{'data frac':>10}{'of bf16 pk':>11}")
    print("\n" + hdr + "\n" + "-" * len(hdr))
    for r in rows:
        b = r["batch"]
        vs = f"{r['samples_per_s'] / synth[b]['samples_per_s']:.2f}x" if b in synth else "-"
        util = f"{r['gpu_util']:.0f}%" if r.get("gpu_util") is not None else "-"
        print(f"{r['kind']:<30}{b:>6}{r['ms_per_step']:>9.1f}{r['samples_per_s']:>11.0f}{vs:>9}"
              f"{r['samples_per_s'] / LEAD.get(b, float('nan')):>8.2f}x{r['peak_reserved_gib']:>13.1f}"
              f"{LEAD_GIB.get(b, float('nan')):>9.1f}{util:>9}{r['data_fraction']:>10.2f}"
              f"{flops * r['samples_per_s'] / PEAK:>10.1%}")
    print(f"(FLOPs {flops / 1e9:.0f} GFLOP/sample from FlopCounterMode on a real batch; {labels}; peak = "
          "max_memory_reserved of the training process; GPU util = NVML over the steady window)")


if __name__ == "__main__":
    main()
