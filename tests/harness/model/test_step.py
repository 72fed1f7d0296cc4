"""TrainStep on CPU (eager): a few steps on one batch lower the loss; losses come back detached."""

from __future__ import annotations

import pytest
import torch

from harness.model import TFv6, TFv6Config
from harness.model.step import TrainStep

from ._batch import tiny_batch


def test_train_step_overfits_one_batch():
    cfg = TFv6Config.preset("tiny", fusion_dropout=0.0, planner_dropout=0.0)
    torch.manual_seed(0)
    model = TFv6(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01, amsgrad=True)
    step = TrainStep(model, opt, cfg)
    inputs, targets = tiny_batch(cfg, b=2)
    first = step(inputs, targets)
    assert not first["loss"].requires_grad
    for _ in range(5):
        last = step(inputs, targets)
    assert float(last["waypoints"]) < float(first["waypoints"])
    assert float(last["loss"]) < float(first["loss"])


def test_cuda_graph_needs_cuda():
    cfg = TFv6Config.preset("tiny")
    model = TFv6(cfg)
    with pytest.raises(ValueError, match="CUDA"):
        TrainStep(model, torch.optim.SGD(model.parameters(), lr=0.1), cfg, cuda_graph=True)


def test_gradient_clipping_bounds_the_update():
    cfg = TFv6Config.preset("tiny")
    torch.manual_seed(0)
    model = TFv6(cfg)
    before = [p.detach().clone() for p in model.parameters()]
    step = TrainStep(model, torch.optim.SGD(model.parameters(), lr=1.0), cfg, clip_grad_norm=1e-3)
    step(*tiny_batch(cfg, b=2))
    moved = torch.sqrt(sum(((p.detach() - b) ** 2).sum() for p, b in zip(model.parameters(), before)))
    assert float(moved) <= 1e-3 * 1.001  # SGD with lr 1 moves the parameters by exactly the clipped gradient


def test_join_outputs_gives_every_head_a_zero_gradient_and_changes_nothing_else():
    """DDP needs a gradient for every parameter each step: with ``join_outputs`` the heads whose labels a batch
    lacks (here BEV semantics and boxes) get zero gradients instead of none, and losses and updates are the same."""
    from dataclasses import replace

    cfg = TFv6Config.preset("tiny", fusion_dropout=0.0, planner_dropout=0.0)
    inputs, targets = tiny_batch(cfg, b=2)
    targets = replace(targets, bev_semantic={}, boxes={})
    runs = {}
    for join in (False, True):
        torch.manual_seed(0)
        model = TFv6(cfg)
        step = TrainStep(model, torch.optim.SGD(model.parameters(), lr=0.1), cfg, join_outputs=join)
        losses = step(inputs, targets)
        runs[join] = (losses, {n: p.grad for n, p in model.named_parameters()},
                      {n: p.detach().clone() for n, p in model.named_parameters()})
    (l0, g0, p0), (l1, g1, p1) = runs[False], runs[True]
    unused = [n for n, g in g0.items() if g is None]
    assert any("bev" in n for n in unused)  # without the join the label-less heads get no gradient
    assert all(g is not None for g in g1.values())
    assert all(float(g1[n].abs().max()) == 0.0 for n in unused)
    assert l0.keys() == l1.keys() and all(torch.equal(l0[k], l1[k]) for k in l0)
    assert all(torch.equal(p0[n], p1[n]) for n in p0)
