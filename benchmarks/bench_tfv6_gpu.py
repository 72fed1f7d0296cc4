"""TFv6 training-step throughput on a GPU, plus equality of the timm-named backbones with timm itself.

Measures full training steps (bf16 autocast forward, losses, backward, AdamW(amsgrad, fused) step) of the
``navsim-r34`` preset (NAVSIM camera-only ResNet-34: 4 cameras stitched to 3x270x1920, BEV 256x256, BEV
semantic + CenterNet heads, planner on) on random inputs already on the GPU, at batch 32 and 64, and prints
ms/step, samples/s, peak memory, fraction of bf16 peak and GPU utilisation, with ratios against LEAD's own
TFv6 (measured on an H100 in the same configuration, issue 7) and against this model's eager default. Every
variant runs through :class:`harness.model.step.TrainStep`, the step a training loop uses: ``default`` (eager,
channels-last, matrix resampling, padded stem), ``contiguous``, ``native_resample`` (``F.interpolate`` /
``adaptive_avg_pool2d``), ``nopad_stem``, ``cudagraph`` (forward, losses, backward and clipping in one CUDA
graph; the fused AdamW step after it), ``compile``
(``torch.compile`` of forward + losses) and ``compile_graph`` (both; minutes of compilation per batch size).
``--profile`` prints the default variant's kernel time by category.

Where timm is installed it also checks (a) that timm's ``features_only`` state-dict keys and shapes equal
the committed fixture ``tests/harness/model/timm_backbone_keys.json`` and our backbones', and (b) that our
ResNet-34 / RegNetY-032 give the same features as timm's for the same weights (fp32, TF32 off).

Usage: PYTHONPATH=. python benchmarks/bench_tfv6_gpu.py [--batches 32 64] [--steps 20] [--warmup 6]
       [--variants default,cudagraph,compile_graph@64] [--skip-timm] [--profile] [--out DIR]
(``name@64`` runs a variant at that batch only.) Timings vary by a few per cent between machines and runs;
at batch 32 the eager variants are CPU-bound, so their numbers also depend on the host's CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
import traceback
from pathlib import Path

import torch

from harness.model import (
    BEVSemanticTarget,
    BoxTarget,
    LossWeights,
    ModelInputs,
    ModelTargets,
    TFv6,
    TFv6Config,
    tfv6_losses,
)
from harness.model.backbones import ResNet, build_backbone, load_timm_weights
from harness.model.layers import Resample
from harness.model.step import TrainStep

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "harness" / "model" / "timm_backbone_keys.json"
LEAD = {32: (145.0, 220.0, 11.8), 64: (227.0, 282.0, 22.5)}  # ms/step, samples/s, peak GiB (issue 7)
H100_BF16_PEAK = 989e12


# --- timm checks -----------------------------------------------------------------------------------------


def timm_checks(device: torch.device) -> list[str]:
    try:
        import timm
    except ImportError:
        return ["timm not installed: backbone equality not checked"]
    lines = [f"timm {timm.__version__}"]
    fixture = json.loads(FIXTURE.read_text())
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    for name in ("resnet34", "regnety_032"):
        ref = timm.create_model(name, pretrained=False, features_only=True).to(device).eval()
        keys = {k: list(v.shape) for k, v in ref.state_dict().items()}
        ours = build_backbone(name).to(device).eval()
        own = {k: list(v.shape) for k, v in ours.state_dict().items()}
        lines.append(f"{name}: timm keys == fixture: {keys == fixture[name]}; == ours: {keys == own}"
                     f" ({len(keys)} keys)")
        with tempfile.TemporaryDirectory() as tmp:
            full = timm.create_model(name, pretrained=False)  # classifier format, as ImageNet weights ship
            for p in full.parameters():  # non-trivial BN statistics and weights
                p.data.normal_(0, 0.05)
            for m in full.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.2, 0.2)
                    m.running_var.uniform_(0.5, 1.5)
                    m.weight.data.uniform_(0.5, 1.5)
            path = Path(tmp) / f"{name}.pth"
            torch.save(full.state_dict(), path)
            skipped = load_timm_weights(ours, path)
            ref.load_state_dict({k: v for k, v in full.state_dict().items() if k in ref.state_dict()})
        x = torch.randn(2, 3, 270, 480, device=device)
        with torch.no_grad():
            feats_ref = ref(x)
            y = ours.forward_stem(x)
            feats = [y]
            for i in range(4):
                y = ours.forward_stage(i, y)
                feats.append(y)
        errs = [float((a - b).norm() / b.norm()) for a, b in zip(feats, feats_ref)]
        shapes = [tuple(f.shape[1:]) for f in feats] == [tuple(f.shape[1:]) for f in feats_ref]
        lines.append(f"{name}: skipped classifier keys {skipped}; shapes equal {shapes}; relative error per "
                     f"level {', '.join(f'{e:.1e}' for e in errs)} -> {'EQUAL' if max(errs) < 1e-5 else 'DIFFER'}")
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    return lines


# --- synthetic batch -------------------------------------------------------------------------------------


def make_batch(cfg: TFv6Config, b: int, device: torch.device, seed: int = 0) -> tuple[ModelInputs, ModelTargets]:
    g = torch.Generator(device="cpu").manual_seed(seed)
    inputs = ModelInputs(
        images=torch.randint(0, 256, (b, 3, cfg.image_height, cfg.image_width), dtype=torch.uint8, generator=g),
        speed_mps=torch.rand(b, generator=g) * 15, acceleration_mps2=torch.randn(b, generator=g),
        command=torch.eye(4)[torch.randint(0, 4, (b,), generator=g)])
    h, w = cfg.grid_shape
    n = cfg.num_waypoints
    boxes = {}
    for src, k in cfg.box_classes:
        centers = (torch.rand(b, h, w, generator=g) > 0.995).float()
        heat = torch.rand(b, k, h, w, generator=g) * 0.5
        heat = torch.where(centers[:, None] > 0, torch.ones_like(heat), heat)
        boxes[src] = BoxTarget(heatmap=heat, size_m=torch.rand(b, 2, h, w, generator=g) * 3,
                               offset=torch.rand(b, 2, h, w, generator=g),
                               yaw_class=torch.randint(0, cfg.num_yaw_bins, (b, h, w), generator=g),
                               yaw_res=torch.randn(b, 1, h, w, generator=g) * 0.2, center_mask=centers,
                               num_boxes=centers.sum((1, 2)), valid=torch.ones(b, dtype=torch.bool))
    bev = {src: BEVSemanticTarget(torch.randint(0, k, (b, cfg.bev_height_px, cfg.bev_width_px), generator=g),
                                  torch.ones(b, dtype=torch.bool)) for src, k in cfg.bev_semantic_classes}
    targets = ModelTargets(
        waypoints_m=torch.randn(b, n, 2, generator=g).cumsum(1), waypoints_valid=torch.ones(b, n, dtype=torch.bool),
        headings_rad=torch.randn(b, n, generator=g) * 0.1, headings_valid=torch.ones(b, n, dtype=torch.bool),
        bev_semantic=bev, boxes=boxes)
    return inputs.to(device), targets.to(device)


# --- GPU utilisation -------------------------------------------------------------------------------------


class UtilSampler:
    """Polls NVML's GPU utilisation every 20 ms in a thread (None when NVML is unavailable)."""

    def __init__(self) -> None:
        self.samples: list[int] = []
        self._stop = threading.Event()
        try:
            import pynvml
            pynvml.nvmlInit()
            self._nvml = pynvml
            self._h = pynvml.nvmlDeviceGetHandleByIndex(torch.cuda.current_device())
        except Exception:  # noqa: BLE001 - optional
            self._nvml = None

    def __enter__(self) -> UtilSampler:
        if self._nvml is not None:
            self._t = threading.Thread(target=self._run, daemon=True)
            self._t.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(self._nvml.nvmlDeviceGetUtilizationRates(self._h).gpu)
            time.sleep(0.02)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._nvml is not None:
            self._t.join()

    def mean(self) -> float | None:
        s = self.samples[len(self.samples) // 5:]  # skip the first fifth (window lag)
        return sum(s) / len(s) if s else None


# --- training-step timing --------------------------------------------------------------------------------


def count_flops(cfg: TFv6Config, device: torch.device) -> float:
    """Training FLOPs per sample (forward + backward), from torch's FLOP counter at batch 2."""
    from torch.utils.flop_counter import FlopCounterMode

    model = TFv6(cfg).to(device)
    inputs, targets = make_batch(cfg, 2, device)
    with FlopCounterMode(display=False) as fc:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            pred = model(inputs)
        tfv6_losses(pred, targets, cfg)["loss"].backward()
    return fc.get_total_flops() / 2


def run_variant(cfg: TFv6Config, b: int, variant: str, steps: int, warmup: int, device: torch.device,
                profile: bool = False) -> dict:
    """Variants (all through :class:`harness.model.step.TrainStep`): default (eager, channels-last, matrix
    resampling, padded stem), contiguous, native_resample, nopad_stem, cudagraph (forward/backward captured
    in a CUDA graph, optimiser after it), compile (torch.compile of forward + losses), compile_graph (both)."""
    torch.manual_seed(0)
    Resample.native = variant == "native_resample"
    ResNet.pad_stem_channels = 0 if variant == "nopad_stem" else 4
    model = TFv6(cfg).to(device)
    graphed = variant in ("cudagraph", "compile_graph")
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.01, amsgrad=True, fused=True,
                            capturable=graphed)
    fn = TrainStep(model, opt, cfg, LossWeights(), compile=variant.startswith("compile"), cuda_graph=graphed,
                   warmup=3)
    if variant == "contiguous":
        model.backbone.channels_last = False
        model.to(memory_format=torch.contiguous_format)
    batches = [make_batch(cfg, b, device, seed) for seed in range(2)]
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    losses = {}
    for i in range(warmup):
        losses = fn(*batches[i % 2])
    torch.cuda.synchronize()
    t_warm = time.perf_counter() - t0
    torch.cuda.reset_peak_memory_stats()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    with UtilSampler() as util:
        start.record()
        for i in range(steps):
            losses = fn(*batches[i % 2])
        end.record()
        torch.cuda.synchronize()
    ms = start.elapsed_time(end) / steps
    # a captured graph allocates from its own pool, which max_memory_allocated does not see after the reset
    peak = torch.cuda.max_memory_reserved() if graphed else torch.cuda.max_memory_allocated()
    reserved = torch.cuda.max_memory_reserved()
    if profile:  # after the timing: the profiler's overhead must not leak into it
        print_profile(fn, batches)
    Resample.native = False
    ResNet.pad_stem_channels = 4
    return {"variant": variant, "batch": b, "ms_per_step": ms, "samples_per_s": b * 1000.0 / ms,
            "peak_gib": peak / 2**30, "peak_kind": "reserved" if graphed else "allocated",
            "peak_reserved_gib": reserved / 2**30, "gpu_util": util.mean(),
            "warmup_s": t_warm, "loss": float(losses["loss"])}


def print_profile(fn, batches) -> None:  # noqa: ANN001
    """CUDA time of 5 steps by kernel, and by rough category."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CUDA]) as prof:
        for i in range(5):
            fn(*batches[i % 2])
        torch.cuda.synchronize()
    events = [e for e in prof.key_averages() if e.device_time_total > 0]
    total = sum(e.device_time_total for e in events)
    cats: dict[str, float] = {}
    rules = [("conv", ("conv", "cudnn", "xmma", "implicit", "dgrad", "wgrad", "sm90_xmma", "fprop")),
             ("batchnorm", ("batch_norm", "bn_", "batchnorm")), ("gemm/attention", ("gemm", "flash", "attention",
              "cutlass", "nvjet", "sm90")), ("adamw", ("adam",)), ("copy/cast", ("copy", "cast", "to_copy")),
             ("reduce", ("reduce",)), ("elementwise", ("elementwise", "vectorized"))]
    for e in events:
        name = e.key.lower()
        cat = next((c for c, keys in rules if any(k in name for k in keys)), "other")
        cats[cat] = cats.get(cat, 0.0) + e.device_time_total
    print(f"profile: {total / 5 / 1000:.1f} ms of kernels per step")
    for c, t in sorted(cats.items(), key=lambda kv: -kv[1]):
        print(f"  {c:<16}{t / total:>7.1%}")
    for e in sorted(events, key=lambda e: -e.device_time_total)[:25]:
        print(f"  {e.device_time_total / total:>6.1%} {e.count // 5:>5}x  {e.key[:110]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[32, 64])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=6)
    ap.add_argument("--variants", default="default,contiguous,native_resample,nopad_stem,cudagraph,compile,"
                                          "compile_graph")
    ap.add_argument("--skip-timm", action="store_true")
    ap.add_argument("--profile", action="store_true", help="kernel profile of the default variant at the last batch")
    ap.add_argument("--out", default=os.environ.get("OUT", ""))
    args = ap.parse_args()
    device = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, "
          f"{torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB", flush=True)
    if not args.skip_timm:
        try:
            for line in timm_checks(device):
                print("[timm] " + line, flush=True)
        except Exception:  # noqa: BLE001 - report and go on to the timing
            traceback.print_exc()
    cfg = TFv6Config.preset("navsim-r34")
    model = TFv6(cfg)
    print(f"navsim-r34 parameters: {model.parameter_counts()['total'] / 1e6:.2f} M (LEAD: 62.15 M with an unused "
          "CenterNet velocity branch)", flush=True)
    del model
    flops = count_flops(cfg, device)
    print(f"training FLOPs per sample (torch FLOP counter): {flops / 1e9:.0f} GFLOP", flush=True)
    rows = []
    for spec in args.variants.split(","):
        variant, _, only = spec.partition("@")  # "compile@64": that batch only
        for b in ([int(only)] if only else args.batches):
            try:
                prof = args.profile and variant == "default" and b == args.batches[-1]
                r = run_variant(cfg, b, variant, args.steps, args.warmup, device, profile=prof)
            except Exception:  # noqa: BLE001 - one failing variant must not hide the others
                traceback.print_exc()
                continue
            torch.cuda.empty_cache()  # the variant's model and optimiser are gone with run_variant's frame
            rows.append(r)
            print(json.dumps(r), flush=True)
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "bench_tfv6_gpu.json").write_text(json.dumps({"flops_per_sample": flops, "rows": rows}))
    base = {r["batch"]: r for r in rows if r["variant"] == "default"}
    hdr = (f"{'variant':<16}{'batch':>6}{'ms/step':>9}{'samples/s':>11}{'vs LEAD':>9}{'vs default':>11}"
           f"{'peak GiB':>10}{'LEAD GiB':>9}{'of bf16 pk':>11}{'GPU util':>9}{'warmup s':>9}")
    print("\n" + hdr + "\n" + "-" * len(hdr))
    for r in rows:
        b = r["batch"]
        lead = LEAD.get(b)
        vs_lead = f"{r['samples_per_s'] / lead[1]:.2f}x" if lead else "-"
        vs_def = f"{r['samples_per_s'] / base[b]['samples_per_s']:.2f}x" if b in base else "-"
        mfu = flops * r["samples_per_s"] / H100_BF16_PEAK
        util = f"{r['gpu_util']:.0f}%" if r["gpu_util"] is not None else "-"
        print(f"{r['variant']:<16}{b:>6}{r['ms_per_step']:>9.1f}{r['samples_per_s']:>11.0f}{vs_lead:>9}{vs_def:>11}"
              f"{r['peak_gib']:>10.1f}{(lead[2] if lead else float('nan')):>9.1f}{mfu:>10.1%}{util:>9}"
              f"{r['warmup_s']:>9.0f}")
    print(f"(LEAD: eager TFv6 on an H100, issue 7; 'of bf16 pk' = {flops / 1e9:.0f} GFLOP/sample x samples/s / "
          "989 TFLOP/s; peak = torch max_memory_allocated, for CUDA-graph variants max_memory_reserved)")


if __name__ == "__main__":
    main()
