"""One TFv6 training step (forward, losses, backward, optimiser), optionally compiled and CUDA-graphed.

:class:`TrainStep` is what a training loop calls per batch. On a GPU it runs the forward pass under bf16
autocast (parameters, norms and losses stay fp32) on a channels-last model. Two switches remove the
overheads measured in ``benchmarks/bench_tfv6_gpu.py``:

- ``compile``: ``torch.compile`` of forward + losses (fuses batch-norm, ReLU and residual adds; minutes of
  compilation per batch shape, once);
- ``cuda_graph``: the whole step, optimiser included, is captured once into a CUDA graph and replayed; each
  batch is copied into the graph's static input tensors. This removes the CPU launch cost that leaves the GPU
  idle at batch <= 32. The optimiser must be built with ``capturable=True``; a batch whose shapes differ from
  the captured one (the last, partial batch of an epoch) runs eagerly and uncompiled. The first batch is
  trained on ``warmup`` + 1 times (warm-up steps before the capture, as in PyTorch's whole-network recipe).

Nothing here synchronises with the host: the returned losses are device tensors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import fields, is_dataclass

import torch

from harness.model.io import LossWeights, ModelInputs, ModelTargets, TFv6Config
from harness.model.losses import tfv6_losses
from harness.model.tfv6 import TFv6


def _tensors(obj: object, prefix: str = "") -> dict[str, torch.Tensor]:
    """Flatten the tensors of a (nested) input/target dataclass by path."""
    out: dict[str, torch.Tensor] = {}
    if isinstance(obj, torch.Tensor):
        out[prefix] = obj
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            out.update(_tensors(v, f"{prefix}[{k}]"))
    elif is_dataclass(obj):
        for f in fields(obj):
            out.update(_tensors(getattr(obj, f.name), f"{prefix}.{f.name}"))
    return out


class TrainStep:
    """``step(inputs, targets) -> dict[str, Tensor]`` (detached losses, ``"loss"`` the weighted total).

    Args:
        model: the TFv6 model (moved to channels-last here when on a GPU).
        optimizer: any torch optimiser over ``model``'s parameters (``capturable=True`` for ``cuda_graph``).
        cfg / weights: passed to :func:`tfv6_losses`.
        bf16: autocast to bfloat16 on CUDA.
        compile: ``torch.compile`` forward + losses.
        cuda_graph: capture the whole step (CUDA only) after ``warmup`` eager steps.
        clip_grad_norm: clip the global gradient norm to this value before the optimiser step (inside the
            graph: the norm stays on the device); None = no clipping (LEAD's default).
        scheduler_step: optional callable run after each optimiser step *outside* the graph (an LR schedule
            must write the LR into a tensor the optimiser reads, e.g. ``lr`` as a tensor, to act on replays).
    """

    def __init__(self, model: TFv6, optimizer: torch.optim.Optimizer, cfg: TFv6Config,
                 weights: LossWeights | None = None, *, bf16: bool = True, compile: bool = False,
                 cuda_graph: bool = False, warmup: int = 3, clip_grad_norm: float | None = None,
                 scheduler_step: Callable[[], None] | None = None):
        self.device = next(model.parameters()).device
        self.cuda = self.device.type == "cuda"
        if cuda_graph and not self.cuda:
            raise ValueError("TrainStep: cuda_graph needs the model on a CUDA device")
        if self.cuda:
            model = model.to(memory_format=torch.channels_last)
        self.model, self.opt, self.cfg = model, optimizer, cfg
        self.weights = weights or LossWeights()
        self.bf16 = bf16 and self.cuda
        self.cuda_graph = cuda_graph
        self.warmup = max(1, warmup)
        self.scheduler_step = scheduler_step
        self.clip_grad_norm = clip_grad_norm
        self._params = [p for p in model.parameters() if p.requires_grad]
        self._fwd = torch.compile(self._forward_loss, dynamic=False) if compile else self._forward_loss
        self._graph: torch.cuda.CUDAGraph | None = None
        self._static: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], tuple[str, ...], torch.Tensor] | None
        self._static = None
        self._eager_steps = 0

    def _forward_loss(self, inputs: ModelInputs, targets: ModelTargets) -> dict[str, torch.Tensor]:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            pred = self.model(inputs)
        return tfv6_losses(pred, targets, self.cfg, self.weights)

    def _eager(self, inputs: ModelInputs, targets: ModelTargets, *, compiled: bool = True
               ) -> dict[str, torch.Tensor]:
        self.opt.zero_grad(set_to_none=True)
        losses = (self._fwd if compiled else self._forward_loss)(inputs, targets)
        losses["loss"].backward()
        self._clip()
        self.opt.step()
        return {k: v.detach() for k, v in losses.items()}

    def _clip(self) -> None:
        if self.clip_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self._params, self.clip_grad_norm, foreach=True)

    def _capture(self, inputs: ModelInputs, targets: ModelTargets) -> None:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up on a side stream (cuDNN autotuning, compilation)
            for _ in range(self.warmup):
                self._eager(inputs, targets)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        self.opt.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            losses = self._fwd(inputs, targets)
            losses["loss"].backward()
            self._clip()
            self.opt.step()
            keys = tuple(losses)
            packed = torch.stack([losses[k].detach().float() for k in keys])
        self._graph = graph
        self._static = (_tensors(inputs), _tensors(targets), keys, packed)

    def __call__(self, inputs: ModelInputs, targets: ModelTargets) -> dict[str, torch.Tensor]:
        model_was_training = self.model.training
        self.model.train()
        try:
            if not self.cuda_graph:
                out = self._eager(inputs, targets)
            else:
                if self._graph is None:
                    self._capture(inputs, targets)
                assert self._static is not None
                s_in, s_tg, keys, packed = self._static
                new_in, new_tg = _tensors(inputs), _tensors(targets)
                same = (new_in.keys() == s_in.keys() and new_tg.keys() == s_tg.keys()
                        and all(v.shape == s_in[k].shape and v.dtype == s_in[k].dtype for k, v in new_in.items())
                        and all(v.shape == s_tg[k].shape and v.dtype == s_tg[k].dtype for k, v in new_tg.items()))
                if not same:  # e.g. the last, smaller batch: eager and uncompiled (no recompilation)
                    out = self._eager(inputs, targets, compiled=False)
                else:
                    for k, v in new_in.items():
                        if v.data_ptr() != s_in[k].data_ptr():
                            s_in[k].copy_(v, non_blocking=True)
                    for k, v in new_tg.items():
                        if v.data_ptr() != s_tg[k].data_ptr():
                            s_tg[k].copy_(v, non_blocking=True)
                    self._graph.replay()
                    vals = packed.clone()
                    out = {k: vals[i] for i, k in enumerate(keys)}
            if self.scheduler_step is not None:
                self.scheduler_step()
            return out
        finally:
            self.model.train(model_was_training)
