"""One TFv6 training step (forward, losses, backward, clipping, optimiser), optionally compiled and CUDA-graphed.

:class:`TrainStep` is what the training loop (``harness/training/trainer.py``) and the GPU benchmark call per
batch. On a GPU it runs the forward pass under bf16 autocast (parameters, norms and losses stay fp32) on a
channels-last model. Two switches remove the overheads measured in ``benchmarks/bench_tfv6_gpu.py``:

- ``compile``: ``torch.compile`` of forward + losses (fuses batch-norm, ReLU and residual adds; minutes of
  compilation per batch signature, once; later processes hit inductor's on-disk cache);
- ``cuda_graph``: forward, losses, backward and gradient clipping of a batch signature (the shapes and dtypes
  of every input and target tensor) are captured once into a CUDA graph and replayed; each batch is copied
  into that graph's static input tensors. This removes the CPU launch cost that leaves the GPU idle at
  batch <= 32. The optimiser step stays outside the graph (a fused AdamW is a handful of launches), so any
  optimiser and any host-side learning-rate schedule work unchanged, with float learning rates.

Capturing needs warm-up passes (cuDNN autotuning, compilation). They run forward + backward only on the
first batch of a signature, and the model's buffers (batch-norm statistics) and the CPU and CUDA RNG states
are restored afterwards, so every batch is trained on exactly once, as in eager mode, and a resumed run
replays the same random stream. Up to ``max_graphs`` signatures are captured (e.g. batches with and without
a source's labels); they share one memory pool, which is safe because each replay is self-contained and
replays never overlap. Batches of another signature beyond that run eagerly and uncompiled.

Nothing here synchronises with the host: the returned losses are device tensors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, is_dataclass
from typing import Any

import torch

from harness.model.io import LossWeights, ModelInputs, ModelTargets, TFv6Config
from harness.model.losses import tfv6_losses


def flatten_tensors(obj: object, prefix: str = "") -> dict[str, torch.Tensor]:
    """The tensors of a (nested) input/target dataclass by path."""
    out: dict[str, torch.Tensor] = {}
    if isinstance(obj, torch.Tensor):
        out[prefix] = obj
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            out.update(flatten_tensors(v, f"{prefix}[{k}]"))
    elif is_dataclass(obj):
        for f in fields(obj):
            out.update(flatten_tensors(getattr(obj, f.name), f"{prefix}.{f.name}"))
    return out


def output_tensors(obj: Any) -> list[torch.Tensor]:
    """Every tensor of a prediction that carries a gradient (for DDP's all-outputs-used rule)."""
    if isinstance(obj, torch.Tensor):
        return [obj] if obj.requires_grad else []
    if isinstance(obj, Mapping):
        return [t for v in obj.values() for t in output_tensors(v)]
    if is_dataclass(obj):
        return [t for f in fields(obj) for t in output_tensors(getattr(obj, f.name))]
    return []


Signature = tuple[tuple[str, tuple[int, ...], torch.dtype], ...]


def _signature(tensors: Mapping[str, torch.Tensor]) -> Signature:
    return tuple((k, tuple(v.shape), v.dtype) for k, v in tensors.items())


@dataclass
class _Captured:
    """One captured step: its graph, static inputs (by path), loss keys, packed losses and gradients."""

    graph: torch.cuda.CUDAGraph
    static: dict[str, torch.Tensor]
    keys: tuple[str, ...]
    packed: torch.Tensor
    grads: list[torch.Tensor | None]


class TrainStep:
    """``step(inputs, targets) -> dict[str, Tensor]`` (detached device losses, ``"loss"`` the weighted total).

    Args:
        model: the TFv6 model, or a DDP wrapper of it (moved to channels-last here on a GPU if asked).
        optimizer: any torch optimiser over ``model``'s parameters.
        cfg / weights: passed to :func:`tfv6_losses`.
        bf16: autocast to bfloat16; None = on CUDA only.
        compile: ``torch.compile`` forward + losses.
        cuda_graph: capture forward/backward per batch signature (CUDA only) after ``warmup`` passes.
        clip_grad_norm: clip the global gradient norm to this value before the optimiser step (on the device,
            inside the graph); None = no clipping (LEAD's default).
        scheduler_step: optional callable run after each optimiser step (e.g. an LR scheduler's ``step``).
        channels_last: convert the model to channels-last on a GPU.
        join_outputs: add every prediction output with weight 0 to the backward total, so that each parameter
            gets a gradient (DDP's reducer needs that when a batch lacks a head's label).
        max_graphs: most batch signatures captured; others run eagerly.
    """

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, cfg: TFv6Config,
                 weights: LossWeights | None = None, *, bf16: bool | None = None, compile: bool = False,
                 cuda_graph: bool = False, warmup: int = 3, clip_grad_norm: float | None = None,
                 scheduler_step: Callable[[], None] | None = None, channels_last: bool = True,
                 join_outputs: bool = False, max_graphs: int = 4):
        self.device = next(model.parameters()).device
        self.cuda = self.device.type == "cuda"
        if cuda_graph and not self.cuda:
            raise ValueError("TrainStep: cuda_graph needs the model on a CUDA device")
        if self.cuda and channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model, self.opt, self.cfg = model, optimizer, cfg
        self.weights = weights or LossWeights()
        self.bf16 = self.cuda if bf16 is None else bf16
        self.cuda_graph = cuda_graph
        self.warmup = max(1, warmup)
        self.scheduler_step = scheduler_step
        self.clip_grad_norm = clip_grad_norm
        self.join_outputs = join_outputs
        self.max_graphs = max_graphs
        self._params = [p for p in model.parameters() if p.requires_grad]
        self._fwd = torch.compile(self._forward_loss, dynamic=False) if compile else self._forward_loss
        self._graphs: dict[tuple[Signature, Signature], _Captured] = {}
        self._grads_of: _Captured | None = None  # whose static gradients the parameters hold now
        self._pool: Any = None
        self.eager_steps = 0  # steps that ran eagerly (after the graphs ran out, or with cuda_graph off)
        self.replays = 0

    @property
    def num_graphs(self) -> int:
        """Batch signatures captured so far."""
        return len(self._graphs)

    def _forward_loss(self, inputs: ModelInputs, targets: ModelTargets) -> dict[str, torch.Tensor]:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            pred = self.model(inputs)
        losses = tfv6_losses(pred, targets, self.cfg, self.weights)
        if self.join_outputs:
            # one element of each output, weight 0: every head joins the backward graph (what DDP needs) without
            # the full-tensor means, whose fused reduction Triton failed to compile under DDP on an H100
            losses["_backward"] = losses["loss"] + 0.0 * sum(t[(0,) * t.dim()].float() for t in output_tensors(pred))
        return losses

    def _backward(self, losses: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        losses.pop("_backward", losses["loss"]).backward()
        if self.clip_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self._params, self.clip_grad_norm, foreach=True)
        return losses

    def _eager(self, inputs: ModelInputs, targets: ModelTargets, *, compiled: bool = True
               ) -> dict[str, torch.Tensor]:
        self.opt.zero_grad(set_to_none=True)
        self._grads_of = None
        losses = self._backward((self._fwd if compiled else self._forward_loss)(inputs, targets))
        self.opt.step()
        self.eager_steps += 1
        return {k: v.detach() for k, v in losses.items()}

    def _capture(self, inputs: ModelInputs, targets: ModelTargets, static: dict[str, torch.Tensor]) -> _Captured:
        buffers = [b.detach().clone() for b in self.model.buffers()]
        rng_cpu, rng_cuda = torch.get_rng_state(), torch.cuda.get_rng_state(self.device)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up on a side stream: forward + backward, no optimiser step
            for _ in range(self.warmup):
                self.opt.zero_grad(set_to_none=True)
                self._backward(self._fwd(inputs, targets))
        torch.cuda.current_stream().wait_stream(side)
        self.opt.zero_grad(set_to_none=True)
        with torch.no_grad():  # undo the warm-up's batch-norm statistics
            for b, saved in zip(self.model.buffers(), buffers):
                b.copy_(saved)
        del buffers
        graph = torch.cuda.CUDAGraph()
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        with torch.cuda.graph(graph, pool=self._pool):
            losses = self._backward(self._fwd(inputs, targets))
            keys = tuple(losses)
            packed = torch.stack([losses[k].detach().float() for k in keys])
        torch.set_rng_state(rng_cpu)  # the warm-up's draws are undone: replays continue the run's stream
        torch.cuda.set_rng_state(rng_cuda, self.device)
        return _Captured(graph, static, keys, packed, [p.grad for p in self._params])

    def __call__(self, inputs: ModelInputs, targets: ModelTargets) -> dict[str, torch.Tensor]:
        model_was_training = self.model.training
        self.model.train()
        try:
            out = self._step(inputs, targets)
            if self.scheduler_step is not None:
                self.scheduler_step()
            return out
        finally:
            self.model.train(model_was_training)

    def _step(self, inputs: ModelInputs, targets: ModelTargets) -> dict[str, torch.Tensor]:
        if not self.cuda_graph:
            return self._eager(inputs, targets)
        new_in, new_tg = flatten_tensors(inputs, "in"), flatten_tensors(targets, "tg")
        sig = (_signature(new_in), _signature(new_tg))
        cap = self._graphs.get(sig)
        if cap is None:
            if len(self._graphs) >= self.max_graphs:  # e.g. a rare label mix: eager and uncompiled
                return self._eager(inputs, targets, compiled=False)
            cap = self._graphs[sig] = self._capture(inputs, targets, {**new_in, **new_tg})
        for k, v in {**new_in, **new_tg}.items():
            s = cap.static[k]
            if v.data_ptr() != s.data_ptr():
                s.copy_(v, non_blocking=True)
        cap.graph.replay()
        if self._grads_of is not cap:  # the parameters must see this graph's gradient tensors
            for p, g in zip(self._params, cap.grads):
                p.grad = g
            self._grads_of = cap
        self.opt.step()
        self.replays += 1
        vals = cap.packed.clone()
        return {k: vals[i] for i, k in enumerate(cap.keys)}
