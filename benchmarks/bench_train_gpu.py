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

5. with ``--nprocs`` (instead of 2 to 4): the trainer under ``torch.distributed.run`` (torchrun), one
   process per GPU, for each process count and batch per process (the global batch grows with the processes):
   total and per-process samples/s, scaling efficiency against the one-process run of the same run, and a DDP
   check: after the last step every rank's parameters are compared with rank 0's (broadcast, max |difference|
   over all elements; the batch-norm buffers, which the trainer does not broadcast, are listed beside them).
   One process runs the default step (compiled, CUDA graph); several run DDP (compiled, no graph; NCCL on
   GPUs, gloo on CPU). NVLink multicast stays off in the children (``NCCL_NVLS_ENABLE=0`` and friends).

Ratios: real loop / synthetic step, and each against LEAD's eager TFv6 on an H100 (issue 7: 220 samples/s at
batch 32, 282 at 64). 'of bf16 peak' = FLOPs per sample x samples/s / 989 TFLOP/s (H100 SXM dense bf16).
Usage: PYTHONPATH=. python benchmarks/bench_train_gpu.py [--world DIR] [--logs 24] [--batches 32 64]
[--steps 200] [--workers 14] [--loader-workers 4 8 14] [--skip-synthetic] [--out DIR]; several GPUs:
``... --nprocs --batches 32 64`` (1 and all visible GPUs); a CPU check of the same path: ``... --nprocs 1 2
--device cpu --preset tiny --workers 0 --train-set model.image_width=192 ...``. Numbers vary by a few
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
    """NVML GPU utilisation samples ``(unix time, percent)`` every 50 ms, device-wide (sees subprocesses), as the
    mean over GPUs ``0..gpus-1`` (the busy ones when one run uses several)."""

    def __init__(self, gpus: int = 1) -> None:
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        import pynvml

        pynvml.nvmlInit()
        self._nvml = pynvml
        self._hs = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(gpus)]
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            u = [self._nvml.nvmlDeviceGetUtilizationRates(h).gpu for h in self._hs]
            self.samples.append((time.time(), sum(u) / len(u)))
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


class NoUtil:
    """Stands in for :class:`Util` where there is no GPU to sample (CPU runs)."""

    def __enter__(self) -> NoUtil:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def mean(self, t0: float, t1: float) -> None:
        return None


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
    r = steady_state(run_dir / "metrics.csv", batch, util, t_unix)
    return {"kind": "lead-bench train" + (" " + ",".join(extra) if extra else ""), "batch": batch, **r,
            "wall_s": wall,
            "log_tail": [line for line in proc.stdout.splitlines() if "training" in line or "CUDA" in line][-3:]}


def steady_state(metrics: Path, global_batch: int, util: Util | NoUtil, t_unix: float) -> dict:
    """Steady-state numbers of a run from its ``metrics.csv``: from the end of the first log interval (which
    holds start-up, compilation and capture) to the last row; ``global_batch`` samples per optimiser step."""
    with metrics.open() as f:
        rows = [r for r in csv.DictReader(f) if r.get("samples_per_s")]
    if len(rows) < 3:
        raise RuntimeError(f"{metrics}: {len(rows)} log rows, need 3 (raise --steps or lower --log-every)")
    first, lastr = rows[1], rows[-1]
    steps = int(lastr["step"]) - int(first["step"])
    dt = float(lastr["unix_time"]) - float(first["unix_time"])
    steady = rows[2:]
    gib = {k: float(lastr[k]) if lastr.get(k) else float("nan")
           for k in ("gpu_peak_reserved_gib", "gpu_peak_allocated_gib")}
    return {"samples_per_s": global_batch * steps / dt, "ms_per_step": 1000 * dt / steps,
            "peak_reserved_gib": gib["gpu_peak_reserved_gib"], "peak_allocated_gib": gib["gpu_peak_allocated_gib"],
            "gpu_util": util.mean(float(first["unix_time"]), float(lastr["unix_time"])),
            "data_fraction": sum(float(r["data_fraction"]) for r in steady) / max(1, len(steady)),
            "start_to_first_log_s": float(rows[0]["unix_time"]) - t_unix,  # start-up, compile, capture, steps
            "steady_steps": steps}


# ---------------------------------------------------------------------------------------------------------------
# Several processes: the real trainer under torchrun (DDP), with a check that the ranks hold the same model.

NO_MULTICAST = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}
PARITY_FILE = "ddp_parity.json"


def rank_parity(model: torch.nn.Module) -> dict:
    """How far every rank's parameters and floating-point buffers are from rank 0's (collective: every rank
    calls it). ``max_abs_diff`` is the largest element-wise difference over all ranks, ``differing`` the number
    of elements that differ on some rank (summed over ranks), ``elements`` the count per rank. DDP keeps the
    parameters identical; the trainer does not broadcast buffers (``broadcast_buffers=False``), so batch-norm
    statistics, computed on each rank's own data, differ, which also shows that the check sees the ranks apart."""
    d = torch.distributed
    out = {}
    for kind, ts in (("parameters", list(model.parameters())),
                     ("buffers", [b for b in model.buffers() if b.is_floating_point()])):
        if not ts:
            continue
        mine = torch.cat([t.detach().reshape(-1).float() for t in ts])
        ref = mine.clone()
        d.broadcast(ref, 0)
        diff = (mine - ref).abs()
        biggest, count = diff.max().reshape(1), (diff > 0).sum().reshape(1).float()
        d.all_reduce(biggest, op=d.ReduceOp.MAX)
        d.all_reduce(count, op=d.ReduceOp.SUM)
        out[kind] = {"max_abs_diff": float(biggest), "differing": int(count), "elements": mine.numel(),
                     "sum_abs_rank0": float(ref.abs().sum())}
        del mine, ref, diff
    return out


def ddp_worker(train_args: list[str]) -> None:
    """One torchrun process: ``lead-bench train TRAIN_ARGS``, with :func:`rank_parity` measured wherever the
    trainer checkpoints (every rank takes part; rank 0 writes ``<out>/ddp_parity.json``, the last one wins).
    With ``BENCH_DDP_BACKEND`` set, the process group is made here with that backend, before the trainer would
    make its own (``gloo`` lets two processes share one GPU, which NCCL refuses: a correctness check of the
    DDP path on a one-GPU machine, not a speed)."""
    from harness.atomic import atomic_write_text
    from harness.cli import main as lead_bench
    from harness.training import trainer

    backend = os.environ.get("BENCH_DDP_BACKEND")
    if backend and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        torch.distributed.init_process_group(backend)
    checkpoint = trainer._checkpoint

    def probed(out_dir: Path, step: int, model: torch.nn.Module, *args: object, **kw: object) -> Path:
        d = torch.distributed
        if d.is_initialized() and d.get_world_size() > 1:
            p = {"step": step, "world_size": d.get_world_size(), "backend": d.get_backend(), **rank_parity(model)}
            if d.get_rank() == 0:
                atomic_write_text(Path(out_dir) / PARITY_FILE, json.dumps(p, indent=1))
        return checkpoint(out_dir, step, model, *args, **kw)

    trainer._checkpoint = probed
    lead_bench(args=["train", *train_args], prog_name="lead-bench")


def ddp_train(world: Path, out: Path, preset: str, nproc: int, batch: int, steps: int, workers: int,
              log_every: int, device: str, backend: str | None, extra: list[str], gpus_sampled: int) -> dict:
    """``lead-bench train`` under ``torch.distributed.run`` with ``nproc`` processes at ``batch`` samples per
    process (global batch ``nproc * batch``); steady-state samples/s as :func:`real_train`, plus the ranks'
    parity after the last step."""
    name = f"ddp_n{nproc}_b{batch}" + "".join("_" + "".join(c if c.isalnum() else "-" for c in kv) for kv in extra)
    run_dir = Path(tempfile.gettempdir()) / "bench_train_gpu" / name
    shutil.rmtree(run_dir, ignore_errors=True)
    train_args = ["--preset", preset, "--navsim-root", str(world), "--no-val", "--device", device,
                  "--max-steps", str(steps), "--out", str(run_dir), "--set", f"batch_size={batch * nproc}",
                  "--set", f"data.num_workers={workers}", "--set", f"log_every={log_every}",
                  *[a for kv in extra for a in ("--set", kv)]]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1",
           "--nproc-per-node", str(nproc), str(Path(__file__).resolve()), "--ddp-worker", *train_args]
    env = {**os.environ, **NO_MULTICAST,
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("BENCH_DDP_BACKEND", None)
    if backend:
        env["BENCH_DDP_BACKEND"] = backend
    t, t_unix = time.perf_counter(), time.time()
    with Util(gpus_sampled) if gpus_sampled else NoUtil() as util:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    (out / f"{name}.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-6000:], flush=True)
        raise RuntimeError(f"torchrun lead-bench train ({nproc} processes) failed with exit code {proc.returncode}")
    shutil.copy(run_dir / "metrics.csv", out / f"{name}_metrics.csv")
    parity = json.loads((run_dir / PARITY_FILE).read_text()) if nproc > 1 else None
    return {"kind": "torchrun lead-bench train" + (" " + ",".join(extra) if extra else ""), "nproc": nproc,
            "batch_per_proc": batch, "global_batch": batch * nproc, "device": device, "backend": backend, "extra": extra,
            **steady_state(run_dir / "metrics.csv", batch * nproc, util, t_unix), "wall_s": wall, "parity": parity,
            "log_tail": [line for line in proc.stdout.splitlines() if "training" in line][-2:]}


def parity_text(p: dict | None) -> tuple[str, str]:
    """Table cells for the parameters' and the batch-norm buffers' parity across ranks."""
    if p is None:
        return "1 rank", "-"
    par, buf = p["parameters"], p.get("buffers")
    ptxt = ("identical" if par["max_abs_diff"] == 0 else
            f"DIFFER: {par['differing']} elements, max {par['max_abs_diff']:.2e}") + \
        f" ({par['elements'] / 1e6:.1f} M, step {p['step']})"
    btxt = "-" if buf is None else (f"identical ({buf['elements']})" if buf["max_abs_diff"] == 0 else
                                    f"{buf['differing']}/{buf['elements']} differ, max {buf['max_abs_diff']:.2e}")
    return ptxt, btxt


def ddp_table(rows: list[dict], device_name: str) -> str:
    """Markdown table: batch per process, processes, total and per-process samples/s, scaling efficiency
    against the one-process run at the same batch per process in the same run, and the ranks' parity."""
    base = {(r["batch_per_proc"], r["kind"]): r["samples_per_s"] for r in rows if r["nproc"] == 1}
    common = set.intersection(*[set(r["extra"]) for r in rows]) if rows else set()
    lines = [f"device: {device_name}" + (f"; --set {' '.join(sorted(common))}" if common else ""), "",
             "| run | batch/proc | procs | global batch | samples/s | per proc | scaling eff. | ms/step "
             "| peak res GiB (rank 0) | GPU util | data frac | parameters across ranks | BN buffers across ranks |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        b, n = r["batch_per_proc"], r["nproc"]
        one = base.get((b, r["kind"]))
        eff = f"{r['samples_per_s'] / (n * one):.1%}" if one else "-"
        util = f"{r['gpu_util']:.0f}%" if r.get("gpu_util") is not None else "-"
        ptxt, btxt = parity_text(r["parity"])
        run = ("1 process" if n == 1 else f"DDP ({r['backend'] or 'trainer default'})") + \
            "".join(f", {kv}" for kv in r["extra"] if kv not in common)
        lines.append(f"| {run} | {b} | {n} | {r['global_batch']} | {r['samples_per_s']:.0f} | "
                     f"{r['samples_per_s'] / n:.0f} | {eff} | {r['ms_per_step']:.1f} | {r['peak_reserved_gib']:.1f} | "
                     f"{util} | {r['data_fraction']:.2f} | {ptxt} | {btxt} |")
    return "\n".join(lines) + "\n"


def synthetic(batch: int, steps: int) -> dict:
    import bench_tfv6_gpu as b

    from harness.model.io import TFv6Config

    r = b.run_variant(TFv6Config.preset("navsim-r34"), batch, "compile_graph", steps, 6, torch.device("cuda"))
    torch.cuda.empty_cache()
    return {"kind": "TrainStep synthetic", "batch": batch, "samples_per_s": r["samples_per_s"],
            "ms_per_step": r["ms_per_step"], "peak_reserved_gib": r["peak_reserved_gib"],
            "peak_allocated_gib": float("nan"), "gpu_util": r["gpu_util"], "data_fraction": 0.0,
            "warmup_s": r["warmup_s"]}


def multi_process(args: argparse.Namespace, gpu: str) -> None:
    """The torchrun runs: for each batch per process, each process count, the trainer's steady-state rate."""
    visible = torch.cuda.device_count()
    nprocs = args.nprocs or sorted({1, max(1, visible)})
    on_gpu = args.device.startswith("cuda")
    if on_gpu and args.device == "cuda" and max(nprocs) > visible:
        raise SystemExit(f"--nprocs {max(nprocs)} > {visible} visible GPUs (use --device cuda:0 --backend gloo to "
                         "put several ranks on one GPU)")
    rows = []
    for b in args.batches:
        for n in nprocs:
            sampled = 0 if not on_gpu else n if args.device == "cuda" else 1  # GPUs whose utilisation is read
            try:
                r = ddp_train(args.world, args.out, args.preset, n, b, args.steps, args.workers, args.log_every,
                              args.device, args.backend, args.train_set, sampled)
                rows.append(r)
                print(json.dumps(r), flush=True)
            except Exception:  # noqa: BLE001 - one failure must not hide the rest
                traceback.print_exc()
            (args.out / "bench_train_ddp.json").write_text(json.dumps({"device": gpu, "rows": rows}, indent=1))
    table = ddp_table(rows, f"{visible} x {gpu}, {os.cpu_count()} CPUs; trainer --device {args.device}, preset "
                            f"{args.preset}, {args.workers} loader workers per process, {args.steps} steps")
    (args.out / "bench_train_ddp.md").write_text(table)
    print("\n" + table)
    print("(samples/s: all processes together, from rank 0's metrics.csv after the first log interval; scaling eff. "
          "= samples/s / (procs x the 1-process samples/s at the same batch per process, same run); one process "
          "runs the default step (compiled + CUDA graph), several run DDP (compiled, no graph); parity: every "
          "rank's parameters against rank 0's after the last step)")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--ddp-worker":
        ddp_worker(sys.argv[2:])
        return
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
    ddp = ap.add_argument_group("several processes (torchrun, DDP): --batches are per process")
    ddp.add_argument("--nprocs", type=int, nargs="*", default=None,
                     help="run the trainer under torchrun with each of these process counts (e.g. 1 2); given "
                          "with no value: 1 and the number of visible GPUs. Replaces the one-process runs, the "
                          "synthetic step, the FLOP count and the loader section")
    ddp.add_argument("--device", default="cuda",
                     help="the trainer's --device: cuda (rank r on cuda:r), cuda:0 (every rank on GPU 0; needs "
                          "--backend gloo), cpu (gloo)")
    ddp.add_argument("--backend", default=None, choices=["gloo", "nccl"],
                     help="make the process group with this backend (default: the trainer's, NCCL on GPUs)")
    ddp.add_argument("--preset", default="navsim-r34", help="training preset of the torchrun runs")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.backends.cudnn.benchmark = True
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    print(f"torch {torch.__version__}, {torch.cuda.device_count()} x {gpu}, {os.cpu_count()} CPUs", flush=True)
    t_world = build_world(args.world, args.logs, args.duration)
    print(f"world {args.world} built in {t_world:.0f} s", flush=True)
    if args.nprocs is not None:
        multi_process(args, gpu)
        return
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
