"""Source mixing: per-batch counts, the sim-to-real curriculum, and the step-determined batch sampler."""

from __future__ import annotations

from collections import Counter

import pytest

from harness.training.data import MixedBatchSampler, MixPlan, largest_remainder, mix_counts, sim_fraction


def test_largest_remainder_sums_exactly():
    assert largest_remainder([1, 1, 1], 16) == [6, 5, 5]
    assert largest_remainder([3, 1], 8) == [6, 2]
    assert largest_remainder([0, 1], 5) == [0, 5]
    assert sum(largest_remainder([0.3, 0.3, 0.4], 7)) == 7


def test_sim_to_real_schedule_matches_lead():
    # LEAD's Sim2RealSampleScheduler: sim/real per 64 = 40/24, 32/32 from epoch 1, 24/40 from 3, 16/48 from 7,
    # 8/56 from 15, 0/64 from 31
    want = {0: 40, 1: 32, 2: 32, 3: 24, 6: 24, 7: 16, 15: 8, 30: 8, 31: 0, 100: 0}
    for epoch, sim in want.items():
        assert sim_fraction(epoch) * 64 == sim
        assert mix_counts(("carla", "navsim"), 64, epoch, sim_to_real=True) == [sim, 64 - sim]
    # two real sources share the real part
    assert mix_counts(("navsim", "carla", "waymo"), 64, 0, sim_to_real=True) == [12, 40, 12]


def test_fixed_ratios():
    assert mix_counts(("carla", "navsim"), 16, 5) == [8, 8]
    assert mix_counts(("carla", "navsim"), 16, 5, ratios=(1, 3)) == [4, 12]


def _plan(**kw):
    base = dict(sources=("carla", "navsim"), lengths=(10, 7), batch=4, steps_per_epoch=3)
    base.update(kw)
    return MixPlan(**base)


def test_batches_are_a_pure_function_of_the_step():
    a = MixedBatchSampler(_plan(), seed=1, max_steps=20)
    batches = list(a)
    assert len(batches) == 20
    b = MixedBatchSampler(_plan(), seed=1, start_step=13, max_steps=20)
    assert list(b) == batches[13:]
    # every source walks a permutation: the first 10 carla draws are all 10 samples exactly once
    carla = [i for batch in batches for s, i, _ in batch if s == 0]
    assert sorted(carla[:10]) == list(range(10))
    assert Counter(carla[:40]) == Counter({i: 4 for i in range(10)})
    seeds = [seed for batch in batches for *_, seed in batch]
    assert len(set(seeds)) == len(seeds) and min(seeds) >= 0


def test_positions_follow_the_curriculum():
    plan = _plan(sim_to_real=True, batch=64, lengths=(1000, 1000), steps_per_epoch=2)
    s = MixedBatchSampler(plan, max_steps=8)
    # epochs: steps 0-1 epoch 0 (40 sim), 2-3 epoch 1 (32), 4-5 epoch 2 (32), 6-7 epoch 3 (24)
    assert s.positions(0) == [0, 0]
    assert s.positions(2) == [80, 48]
    assert s.positions(7) == [80 + 64 + 64 + 24, 48 + 64 + 64 + 40]
    assert [sum(1 for k in s.batch(6) if k[0] == 0)] == [24]


def test_ranks_take_disjoint_shards():
    plan = _plan(lengths=(8, 8), batch=2, steps_per_epoch=4)
    r0 = [k for b in MixedBatchSampler(plan, rank=0, world_size=2, max_steps=4) for k in b]
    r1 = [k for b in MixedBatchSampler(plan, rank=1, world_size=2, max_steps=4) for k in b]
    for src in (0, 1):
        i0 = {i for s, i, _ in r0 if s == src}
        i1 = {i for s, i, _ in r1 if s == src}
        assert not i0 & i1 and len(i0 | i1) == 8


def test_resume_check_names_the_difference():
    s = MixedBatchSampler(_plan(), seed=0)
    state = s.state_dict()
    s.check_state(state)
    with pytest.raises(Exception, match="lengths"):
        MixedBatchSampler(_plan(lengths=(11, 7)), seed=0).check_state(state)
