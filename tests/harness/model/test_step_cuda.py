"""TrainStep's CUDA-graph path against its eager path (CUDA only; skipped on the CPU development machines,
run on the GPU machine): replays train like eager steps, the warm-up leaves no trace, several batch
signatures each get a graph, an eager step between replays does not detach the graph's gradients."""

from __future__ import annotations

import copy

import pytest
import torch

from harness.model import TFv6, TFv6Config
from harness.model.step import TrainStep

from ._batch import tiny_batch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(autouse=True)
def _exact_math():
    old = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic, torch.backends.cuda.matmul.allow_tf32,
           torch.backends.cudnn.allow_tf32)
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic, torch.backends.cuda.matmul.allow_tf32,
     torch.backends.cudnn.allow_tf32) = old


def _pair(max_graphs: int = 4, clip: float | None = 1.0):
    cfg = TFv6Config.preset("tiny", fusion_dropout=0.0, planner_dropout=0.0)
    torch.manual_seed(0)
    a = TFv6(cfg).cuda()
    b = copy.deepcopy(a)
    sched = []

    def make(model: torch.nn.Module, graph: bool) -> TrainStep:
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01, amsgrad=True, fused=True)
        lr = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=6)
        sched.append(lr)
        return TrainStep(model, opt, cfg, bf16=False, cuda_graph=graph, warmup=2, clip_grad_norm=clip,
                         scheduler_step=lr.step, max_graphs=max_graphs)

    return cfg, make(a, True), make(b, False), a, b, sched


def _batches(cfg: TFv6Config, sizes: list[int]):
    return [tuple(x.to("cuda") for x in tiny_batch(cfg, b=n, seed=i)) for i, n in enumerate(sizes)]


def _close_models(a: torch.nn.Module, b: torch.nn.Module, tol: float = 2e-4) -> None:
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(x.float(), y.float(), rtol=tol, atol=tol, msg=name)


def test_graph_replays_train_like_eager_steps():
    cfg, graphed, eager, a, b, sched = _pair()
    batches = _batches(cfg, [2, 2, 3, 2, 3])  # two signatures (batch 2 and 3)
    for inp, tg in batches:
        la, lb = graphed(inp, tg), eager(inp, tg)
        assert set(la) == set(lb)
        torch.testing.assert_close(la["loss"], lb["loss"], rtol=2e-4, atol=2e-4)
    assert graphed.num_graphs == 2 and graphed.replays == 5 and graphed.eager_steps == 0
    _close_models(a, b)  # parameters, and batch-norm statistics (warm-up passes left no trace)
    assert sched[0].get_last_lr() == sched[1].get_last_lr()


def test_eager_step_between_replays_keeps_the_graph_gradients():
    cfg, graphed, eager, a, b, _ = _pair(max_graphs=1)
    for inp, tg in _batches(cfg, [2, 3, 2, 2]):  # batch 3 runs eagerly: its own gradient tensors
        graphed(inp, tg)
        eager(inp, tg)
    assert graphed.num_graphs == 1 and graphed.eager_steps == 1 and graphed.replays == 3
    _close_models(a, b)


def test_first_replay_equals_one_eager_step_with_compile():
    cfg, _, _, a, b, _ = _pair()
    opt_a = torch.optim.AdamW(a.parameters(), lr=1e-3, fused=True)
    opt_b = torch.optim.AdamW(b.parameters(), lr=1e-3, fused=True)
    graphed = TrainStep(a, opt_a, cfg, compile=True, cuda_graph=True, warmup=2)
    eager = TrainStep(b, opt_b, cfg)
    inp, tg = _batches(cfg, [2])[0]
    la, lb = graphed(inp, tg), eager(inp, tg)
    torch.testing.assert_close(la["loss"], lb["loss"], rtol=2e-2, atol=2e-2)  # bf16, fused kernels
    _close_models(a, b, tol=2e-2)
