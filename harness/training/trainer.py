"""The TFv6 training loop: mixed sources, AdamW with cosine restarts, bf16 autocast on GPU, ``torch.compile``
and CUDA-graph replay of the step, gradient clipping, exact resume, DDP under torchrun, CSV/TensorBoard logs,
and validation with the benchmarks' own metrics (PDMS, RFS) on held-out splits.

Every step runs through :class:`harness.model.step.TrainStep`. On one CUDA device it is, by default
(``compile=auto``, ``cuda_graph=auto``), compiled and replayed from a CUDA graph per batch signature, with a
fused AdamW outside the graph; under DDP on GPUs it is compiled but not graphed; on CPU it runs eagerly
(``compile=on`` compiles it there too). The loop does not synchronise with the GPU between log points:
batches arrive in pinned memory and are copied on a side stream while the previous step runs
(:func:`on_device`), losses are summed on the device, and the host reads them (one synchronisation) every
``log_every`` steps, at checkpoints and at the end. Compilation and capture take a few minutes before the
first step (about 2.5 min for ``navsim-r34`` on an H100).

Checkpoints (``<out>/checkpoints/step_NNNNNNN.pt``, written atomically, the newest ``keep_checkpoints`` kept)
hold only tensors and plain values and load with ``torch.load(weights_only=True)``: the model, optimiser and
scheduler states, the step, the sampler's identity (sources, lengths, epoch length, seed; batches are a pure
function of the step) and the torch RNG states. Resuming from one reproduces the uninterrupted run's next
steps exactly on the same device. ``<out>/model.pt`` is the final model with its configuration (what
``lead-bench run ... --agent tfv6 --ckpt`` reads).
"""

from __future__ import annotations

import csv
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from harness.agents.tfv6 import load_checkpoint
from harness.atomic import atomic_write_text, temp_path
from harness.errors import ConfigError
from harness.model.io import LossWeights, TFv6Config
from harness.model.step import TrainStep, flatten_tensors
from harness.model.tfv6 import TFv6
from harness.training.config import TrainConfig, dump_yaml, resolve_switch
from harness.training.data import (
    MixedBatchSampler,
    MixedData,
    MixPlan,
    SourceData,
    default_steps_per_epoch,
    make_collate,
    seed_worker,
)
from harness.trajectory import resample_poses

log = logging.getLogger(__name__)
CKPT_KIND = "lead-bench/tfv6-train"


@dataclass(frozen=True)
class DistInfo:
    """Process layout under torchrun (rank 0 of 1 when run directly)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0


@dataclass(frozen=True)
class Validation:
    """Where validation runs: NAVSIM split scored with PDMS, Waymo split scored with RFS (each optional)."""

    navsim_root: Path | None = None
    maps_root: Path | None = None
    metric_cache_dir: Path | None = None
    waymo_root: Path | None = None
    waymo_clusters: Mapping[str, str] | None = None


@dataclass(frozen=True)
class TrainResult:
    steps: int
    final_losses: dict[str, float]
    model_path: Path
    val: dict[str, float] = field(default_factory=dict)


def build_model(cfg: TFv6Config) -> TFv6:
    return TFv6(cfg)


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int) -> Any:
    o = cfg.optim
    if o.schedule == "restarts":
        return torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=steps_per_epoch, T_mult=o.t_mult,
                                                                    eta_min=o.min_lr)
    if o.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.max_steps, eta_min=o.min_lr)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)


def _autocast_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    if cfg.precision == "fp32" or (cfg.precision == "auto" and device.type != "cuda"):
        return None
    return torch.bfloat16


class _Logger:
    """CSV always (``metrics.csv``, one row per logged step; new keys append columns), TensorBoard if present."""

    def __init__(self, out_dir: Path, enabled: bool) -> None:
        self.path = out_dir / "metrics.csv"
        self.enabled = enabled
        self.tb = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(out_dir / "tensorboard"))
            except ImportError:  # tensorboard is optional
                self.tb = None

    def write(self, step: int, values: Mapping[str, float]) -> None:
        if not self.enabled:
            return
        rows: list[dict[str, Any]] = []
        if self.path.exists():
            with self.path.open(newline="", encoding="utf-8") as f:
                rows = list(csv.DictReader(f))
        rows.append({"step": step, **values})
        cols: list[str] = []
        for r in rows:
            cols += [k for k in r if k not in cols]
        tmp = temp_path(self.path)
        with tmp.open("w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=cols)
            w.writeheader()
            w.writerows(rows)
        os.replace(tmp, self.path)
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(k, v, step)
            self.tb.flush()


def latest_checkpoint(out_dir: Path) -> Path | None:
    ckpts = sorted((out_dir / "checkpoints").glob("step_*.pt"))
    return ckpts[-1] if ckpts else None


def _save(path: Path, obj: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    torch.save(obj, tmp)
    os.replace(tmp, path)


def train(cfg: TrainConfig, out_dir: Path, sources: list[SourceData], *, validation: Validation | None = None,
          resume: Path | None = None, dist: DistInfo = DistInfo(), device: str = "auto",
          on_step: Callable[[int, dict[str, float]], None] | None = None,
          on_log: Callable[[str], None] | None = None) -> TrainResult:
    """Train TFv6 on ``sources`` into ``out_dir`` (see the module docstring).

    Args:
        cfg: the resolved configuration.
        out_dir: run directory (config.yaml, metrics.csv, checkpoints/, model.pt, val/).
        sources: one dataset per ``cfg.data.sources`` entry, same order.
        validation: held-out splits for PDMS / RFS (None: losses only).
        resume: a checkpoint to continue from.
        dist: torchrun layout (DDP when ``world_size > 1``).
        device: ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N``.
        on_step: called after every step with the step number and, at log steps (every ``log_every``, and the
            last), its scalar losses; between log steps with ``{}`` (reading them would synchronise the GPU).
        on_log: called with human-readable log lines.
    """
    say = on_log or log.info
    out_dir.mkdir(parents=True, exist_ok=True)
    if [s.source for s in sources] != list(cfg.data.sources):
        raise ConfigError(f"sources {[s.source for s in sources]} do not match data.sources {cfg.data.sources}")
    if cfg.batch_size % dist.world_size:
        raise ConfigError(f"batch_size {cfg.batch_size} does not split evenly over {dist.world_size} processes")
    dev = _device(device, dist)
    if dist.world_size > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if dev.type == "cuda" else "gloo", rank=dist.rank,
                                             world_size=dist.world_size)
    main_proc = dist.rank == 0
    torch.manual_seed(cfg.seed + 1000 * dist.rank)  # LEAD offsets per-worker seeds by rank * 1000
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True

    cuda = dev.type == "cuda"
    use_graph = resolve_switch(cfg.cuda_graph, cuda, dist.world_size, needs_single=True)
    use_compile = resolve_switch(cfg.compile, cuda, dist.world_size)
    if use_graph and not cuda:
        raise ConfigError(f"cuda_graph=on needs a CUDA device, training runs on {dev}")
    if use_graph and dist.world_size > 1:
        raise ConfigError("cuda_graph=on is not supported with several processes (DDP); use cuda_graph=auto")
    if use_graph and cfg.model.radar:  # the radar loss's Hungarian matching runs on the host (harness.model.radar)
        if cfg.cuda_graph == "on":
            raise ConfigError("cuda_graph=on cannot capture the radar loss (host-side matching); use model.radar=false")
        use_graph = False

    model = build_model(cfg.model).to(dev)
    if cuda and cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    # fused AdamW on the GPU: a few kernel launches per step, no host synchronisation
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay,
                            amsgrad=cfg.optim.amsgrad, fused=True if cuda else None)
    lengths = tuple(len(s) for s in sources)
    spe = cfg.steps_per_epoch or default_steps_per_epoch(lengths, cfg.batch_size)
    sched = make_scheduler(opt, cfg, spe)
    plan = MixPlan(tuple(cfg.data.sources), lengths, cfg.batch_size // dist.world_size, spe, cfg.data.ratios,
                   cfg.data.sim_to_real)

    start = 0
    ck: dict[str, Any] | None = None
    if resume is None and cfg.init_waypoint_bias and getattr(model, "planner", None) is not None:
        mean = mean_waypoint_step(sources, cfg)
        if mean is not None:
            with torch.no_grad():
                model.planner.wp_head.bias.copy_(torch.as_tensor(mean, dtype=model.planner.wp_head.bias.dtype))
            say(f"waypoint head bias set to the mean step ({mean[0]:.2f}, {mean[1]:.2f}) m")
    if resume is not None:
        ck = load_checkpoint(resume)
        if ck.get("kind") != CKPT_KIND:
            raise ConfigError(f"{resume} is a model-only checkpoint; resume needs a training checkpoint")
        model.load_state_dict(ck["model"])
        _load_optimizer(opt, ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        start = int(ck["step"])
        MixedBatchSampler(plan, seed=cfg.seed).check_state(ck["sampler"])
    if main_proc:
        atomic_write_text(out_dir / "config.yaml", dump_yaml(cfg))

    fwd: torch.nn.Module = model
    if dist.world_size > 1:
        fwd = torch.nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None,
                                                        broadcast_buffers=False)
    weights = LossWeights(dict(cfg.loss_weights))
    # the compiled step is the one used (LEAD discards its compiled model, spec §7.19)
    step_fn = TrainStep(fwd, opt, cfg.model, weights, bf16=_autocast_dtype(cfg, dev) is not None,
                        compile=use_compile, cuda_graph=use_graph, channels_last=False,
                        clip_grad_norm=cfg.optim.grad_clip_norm or None, join_outputs=dist.world_size > 1,
                        scheduler_step=sched.step)

    sampler = MixedBatchSampler(plan, seed=cfg.seed, rank=dist.rank, world_size=dist.world_size, start_step=start,
                                max_steps=cfg.max_steps, augment=True)
    batches = iter(make_loader(cfg, sources, sampler, pin_memory=cuda))  # creating the iterator draws from torch's RNG, so restore the RNG after it
    if ck is not None:
        rng = ck["rng"]
        torch.set_rng_state(rng["torch"][dist.rank] if isinstance(rng["torch"], list) else rng["torch"])
        if dev.type == "cuda" and rng.get("cuda") is not None:
            torch.cuda.set_rng_state(rng["cuda"][dist.rank] if isinstance(rng["cuda"], list) else rng["cuda"], dev)
        say(f"resumed from {resume} at step {start}")
    for src in sources:
        if src.skipped:
            say(f"{src.source}: {len(src.skipped)} of {len(src) + len(src.skipped)} samples left out as unreadable "
                f"(first: {src.skipped[0][0]}: {src.skipped[0][1]})")
    logger = _Logger(out_dir, main_proc)
    amp = _autocast_dtype(cfg, dev)
    say(f"training {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters on {dev} "
        f"({'bf16 autocast' if amp else 'fp32'}{', compiled' if use_compile else ''}"
        f"{', CUDA graphs' if use_graph else ''}, {dist.world_size} process(es)); "
        f"sources {dict(zip(plan.sources, lengths))}, {spe} steps per epoch, steps {start}..{cfg.max_steps}")

    model.train()
    step = start
    last: dict[str, float] = {}
    val: dict[str, float] = {}
    acc: dict[str, torch.Tensor] = {}  # loss sums on the device since the last log row
    n_acc: dict[str, int] = {}
    t_data = 0.0
    t_log = t0 = time.perf_counter()
    steps_since_log = 0
    for inputs, targets in on_device(batches, dev):
        t1 = time.perf_counter()
        t_data += t1 - t0
        losses = step_fn(inputs, targets)  # optimiser and scheduler stepped; device tensors, no host sync
        step += 1
        steps_since_log += 1
        for k, v in losses.items():
            acc[k] = acc[k] + v if k in acc else v.clone()
            n_acc[k] = n_acc.get(k, 0) + 1
        log_now = step % cfg.log_every == 0 or step == cfg.max_steps
        scalars: dict[str, float] = {}
        if log_now:
            keys = list(losses)
            vals = torch.stack([losses[k].float() for k in keys] + [acc[k].float() for k in acc]).tolist()
            scalars = dict(zip(keys, vals[:len(keys)]))
            sums = dict(zip(acc, vals[len(keys):]))
            last = scalars
            now = time.perf_counter()  # after the synchronisation above: the GPU work is done
            row = {f"train/{k}": v / n_acc[k] for k, v in sums.items()}
            row.update({"lr": float(sched.get_last_lr()[0]), "epoch": step / spe,
                        "samples_per_s": cfg.batch_size * steps_since_log / max(1e-9, now - t_log),
                        "data_fraction": t_data / max(1e-9, now - t_log), "unix_time": time.time()})
            if cuda:
                row["gpu_peak_allocated_gib"] = torch.cuda.max_memory_allocated(dev) / 2**30
                row["gpu_peak_reserved_gib"] = torch.cuda.max_memory_reserved(dev) / 2**30
            logger.write(step, row)
            acc, n_acc, t_data, steps_since_log = {}, {}, 0.0, 0
            t_log = time.perf_counter()
        if on_step is not None:
            on_step(step, scalars)
        if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < cfg.max_steps:
            _checkpoint(out_dir, step, model, opt, sched, sampler, cfg, dev, dist)
        if validation is not None and cfg.val.every_steps and step % cfg.val.every_steps == 0 \
                and step < cfg.max_steps and main_proc:
            val = validate(model, cfg, validation, out_dir / "val" / f"step_{step:07d}", dev, say)
            logger.write(step, val)
            model.train()
        t0 = time.perf_counter()
    if step_fn.cuda_graph:
        say(f"{step_fn.replays} steps replayed from {step_fn.num_graphs} CUDA graph(s), "
            f"{step_fn.eager_steps} eager")
    model_path = out_dir / "model.pt"
    _checkpoint(out_dir, step, model, opt, sched, sampler, cfg, dev, dist)  # every rank: RNG states are gathered
    if main_proc:
        _save(model_path, {"kind": "lead-bench/tfv6", "step": step, "model": model.state_dict(),
                           "train_config": cfg.to_dict()})
        if validation is not None:
            val = validate(model, cfg, validation, out_dir / "val" / f"step_{step:07d}", dev, say)
            logger.write(step, val)
    if dist.world_size > 1:
        torch.distributed.barrier()
    return TrainResult(step, last, model_path, val)


def on_device(batches: Iterator[tuple[Any, Any, Any]], dev: torch.device) -> Iterator[tuple[Any, Any]]:
    """``(inputs, targets)`` on ``dev``. On a GPU, batch k + 1 is copied on a side stream while step k runs
    (one batch of look-ahead; the compute stream waits for the copy's event, never the host), which hides the
    ~2 MB per sample of host-to-device traffic behind the step."""
    if dev.type != "cuda":
        for inputs, targets, _ in batches:
            yield inputs.to(dev), targets.to(dev)
        return
    copy = torch.cuda.Stream(dev)
    main = torch.cuda.current_stream(dev)

    def stage(batch: tuple[Any, Any, Any]) -> tuple[Any, Any, torch.cuda.Event]:
        copy.wait_stream(main)  # no copy into memory the compute stream may still use
        with torch.cuda.stream(copy):
            inputs, targets = batch[0].to(dev, non_blocking=True), batch[1].to(dev, non_blocking=True)
            done = torch.cuda.Event()
            done.record(copy)
        return inputs, targets, done

    ahead = None
    for batch in batches:
        staged = stage(batch)
        if ahead is not None:
            yield _use_on(ahead, main)
        ahead = staged
    if ahead is not None:
        yield _use_on(ahead, main)


def _use_on(staged: tuple[Any, Any, torch.cuda.Event], stream: torch.cuda.Stream) -> tuple[Any, Any]:
    inputs, targets, done = staged
    stream.wait_event(done)
    for t in [*flatten_tensors(inputs).values(), *flatten_tensors(targets).values()]:
        t.record_stream(stream)  # the allocator keeps the memory until the compute stream is done with it
    return inputs, targets


def make_loader(cfg: TrainConfig, sources: list[SourceData], sampler: MixedBatchSampler, *,
                pin_memory: bool) -> DataLoader:
    """The training DataLoader: ``cfg.data.num_workers`` processes encode and collate whole batches, which
    arrive in page-locked memory when ``pin_memory`` (GPU training) so the copy to the device is asynchronous."""
    n = cfg.data.num_workers
    return DataLoader(MixedData(sources), batch_sampler=sampler, collate_fn=make_collate(cfg.input_spec()),
                      num_workers=n, worker_init_fn=seed_worker, pin_memory=pin_memory, persistent_workers=n > 0,
                      prefetch_factor=4 if n > 0 else None)


def mean_waypoint_step(sources: list[SourceData], cfg: TrainConfig, max_samples: int = 64) -> np.ndarray | None:
    """Mean logged displacement (x, y) in metres between consecutive waypoint times, over up to ``max_samples``
    samples spread evenly over the sources (images are not decoded). The planner predicts cumulative deltas, so
    this is the bias that starts it at the data's average motion instead of standing still."""
    times = cfg.waypoint_interval_s * np.arange(0, cfg.model.num_waypoints + 1)
    steps = []
    for src in sources:
        n = len(src)
        for i in np.linspace(0, n - 1, min(n, max(1, max_samples // len(sources)))).astype(int):
            fut = src.load(src.refs[int(i)]).targets.future
            if fut is None:
                continue
            poses = resample_poses(fut.poses, fut.times_s, times[1:], hold_last=True)
            xy = np.concatenate([[[0.0, 0.0]], poses[:, :2]])
            ok = times[1:] <= fut.times_s[-1] + 1e-6
            steps.append(np.diff(xy, axis=0)[ok])
    if not steps:
        return None
    return np.concatenate(steps).mean(axis=0)


def _load_optimizer(opt: torch.optim.Optimizer, state: Mapping[str, Any]) -> None:
    """Load an optimiser state, keeping this run's implementation flags (a checkpoint written by a GPU run
    with fused AdamW resumes on CPU, and the other way round); the moments move to the parameters' device."""
    impl = [{k: g[k] for k in ("fused", "foreach", "capturable", "differentiable") if k in g}
            for g in opt.param_groups]
    opt.load_state_dict(state)
    for g, flags in zip(opt.param_groups, impl):
        g.update(flags)
        if isinstance(g["lr"], torch.Tensor):
            g["lr"] = float(g["lr"])
    on_device = {id(p) for g in opt.param_groups if g.get("fused") or g.get("capturable") for p in g["params"]}
    for p, st in opt.state.items():
        if isinstance(st.get("step"), torch.Tensor):  # fused/capturable: on the parameter's device, else CPU
            st["step"] = st["step"].to(p.device if id(p) in on_device else "cpu", torch.float32)


def _device(device: str, dist: DistInfo) -> torch.device:
    if device == "auto":
        return torch.device(f"cuda:{dist.local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    d = torch.device(device)
    if d.type == "cuda" and d.index is None:
        d = torch.device(f"cuda:{dist.local_rank}")
    return d


def _checkpoint(out_dir: Path, step: int, model: torch.nn.Module, opt: torch.optim.Optimizer, sched: Any,
                sampler: MixedBatchSampler, cfg: TrainConfig, dev: torch.device, dist: DistInfo) -> Path:
    """Every rank calls this (the RNG states are gathered); rank 0 writes."""
    rng: dict[str, Any] = {"torch": torch.get_rng_state()}
    if dev.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(dev)
    if dist.world_size > 1:  # every rank's generator state, so each rank resumes its own stream
        states: list[Any] = [None] * dist.world_size
        torch.distributed.all_gather_object(states, rng["torch"])
        rng["torch"] = states
    sched_state = sched.state_dict()  # LambdaLR keeps [None] for its lambda: plain values only
    path = out_dir / "checkpoints" / f"step_{step:07d}.pt"
    if dist.rank != 0:
        return path
    _save(path, {"kind": CKPT_KIND, "step": step, "model": model.state_dict(), "optimizer": opt.state_dict(),
                 "scheduler": sched_state, "sampler": sampler.state_dict(), "rng": rng,
                 "train_config": cfg.to_dict()})
    for old in sorted((out_dir / "checkpoints").glob("step_*.pt"))[:-cfg.keep_checkpoints]:
        old.unlink()
    return path


def validate(model: torch.nn.Module, cfg: TrainConfig, v: Validation, out_dir: Path, dev: torch.device,
             say: Callable[[str], None]) -> dict[str, float]:
    """PDMS on the NAVSIM validation split and RFS on the Waymo one (where configured and present)."""
    from harness.agents.tfv6 import TFv6Agent

    model.eval()
    spec = cfg.input_spec()
    out: dict[str, float] = {}
    if cfg.val.navsim and v.navsim_root is not None and v.maps_root is not None and v.metric_cache_dir is not None:
        from adapters.navsim.reader import NavsimReader
        from harness.runner import run_navsim

        agent = TFv6Agent.from_models([model], spec, "navsim", dev, cfg.val.batch_size, cfg.headings_from)
        summary = run_navsim(NavsimReader(v.navsim_root, cfg.val.navsim_split), agent, out_dir / "navsim",
                             maps_root=v.maps_root, cache_dir=v.metric_cache_dir, batch_size=cfg.val.batch_size,
                             config={"benchmark": "navsim", "agent": "tfv6", "split": cfg.val.navsim_split})
        s = summary.metrics["score"]
        out["val/pdms"] = 100 * s if math.isfinite(s) else float("nan")
        out["val/navsim_ade_m"] = summary.metrics["ade_m"]
        out["val/navsim_failed"] = float(summary.failed)
        say(f"validation PDMS {out['val/pdms']:.2f} on {summary.scored}/{summary.expected} {cfg.val.navsim_split} "
            f"tokens ({summary.failed} failed)")
    if cfg.val.waymo and v.waymo_root is not None:
        from adapters.waymo.reader import WaymoReader
        from harness.waymo_runner import run_waymo

        agent = TFv6Agent.from_models([model], spec, "waymo", dev, cfg.val.batch_size, cfg.headings_from)
        ws = run_waymo(WaymoReader(v.waymo_root, cfg.val.waymo_split), agent, out_dir / "waymo",
                       clusters=v.waymo_clusters, batch_size=cfg.val.batch_size,
                       config={"benchmark": "waymo", "agent": "tfv6", "split": cfg.val.waymo_split})
        if ws.scores is not None:
            rfs = ws.scores.mean_of_clusters_rfs
            out["val/rfs"] = float(rfs if rfs is not None else ws.scores.frame_mean_rfs)
            out["val/rfs_frame_mean"] = float(ws.scores.frame_mean_rfs)
            say(f"validation RFS {out['val/rfs']:.3f} on {ws.scored}/{ws.expected} {cfg.val.waymo_split} frames "
                f"({ws.failed} failed)")
    return out
