"""Training data: one dataset per source over canonical samples, and a batch sampler that mixes sources.

:class:`SourceData` wraps any reader with ``index()`` and ``load(ref)`` (NAVSIM, Waymo, CARLA) and encodes
samples with :mod:`harness.training.inputs`; it caches the lightweight samples and their camera images
reduced close to the slot resolution, so repeated epochs on small data decode no JPEG twice.

:class:`MixedBatchSampler` decides every batch as a pure function of the step: how many samples each source
contributes (:func:`mix_counts`: fixed per-batch ratios or LEAD's annealed sim-to-real curriculum, spec
§3.6), which ones (each source walks its own per-epoch permutation, drawn by ``DistributedSampler`` so each
process of a multi-GPU run takes a disjoint shard), and the augmentation seed of each item. Its only state is
therefore the step, which makes resuming exact and lets sources of any length mix (LEAD requires equal
lengths, spec §7.15).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import Dataset
from torch.utils.data.distributed import DistributedSampler

from harness.errors import DataError
from harness.training.inputs import AugmentSpec, InputSpec, TrainItem, collate, downscaled, encode_sample
from harness.training.views import camera_view
from harness.types import Sample, SampleRef

log = logging.getLogger(__name__)

#: LEAD's Sim2RealSampleScheduler (spec §3.6): (first epoch, simulated samples out of 64).
SIM_TO_REAL_SCHEDULE: tuple[tuple[int, int], ...] = ((0, 40), (1, 32), (3, 24), (7, 16), (15, 8), (31, 0))


class SampleReader(Protocol):
    def index(self) -> list[SampleRef]: ...


def sim_fraction(epoch: int) -> float:
    """Share of simulated samples per batch in ``epoch`` under the annealed curriculum."""
    share = SIM_TO_REAL_SCHEDULE[0][1]
    for start, n in SIM_TO_REAL_SCHEDULE:
        if epoch >= start:
            share = n
    return share / 64.0


def largest_remainder(weights: Sequence[float], total: int) -> list[int]:
    """Integer counts summing to ``total`` proportional to ``weights`` (ties to the earlier entry)."""
    w = np.asarray(weights, np.float64)
    if total <= 0 or w.sum() <= 0:
        return [0] * len(w)
    exact = w / w.sum() * total
    base = np.floor(exact).astype(int)
    rest = total - int(base.sum())
    order = sorted(range(len(w)), key=lambda i: (-(exact[i] - base[i]), i))
    for i in order[:rest]:
        base[i] += 1
    return [int(x) for x in base]


def mix_counts(sources: Sequence[str], batch: int, epoch: int, ratios: Sequence[float] = (),
               sim_to_real: bool = False, sim_sources: Sequence[str] = ("carla",)) -> list[int]:
    """Samples each source contributes to one batch."""
    if sim_to_real:
        sim = [s for s in sources if s in sim_sources]
        real = [s for s in sources if s not in sim_sources]
        n_sim = round(sim_fraction(epoch) * batch)
        sim_counts = dict(zip(sim, largest_remainder([1.0] * len(sim), n_sim)))
        real_counts = dict(zip(real, largest_remainder([1.0] * len(real), batch - n_sim)))
        return [sim_counts.get(s, real_counts.get(s, 0)) for s in sources]
    return largest_remainder(list(ratios) or [1.0] * len(sources), batch)


class SourceData(Dataset):
    """Encoded training items of one source; ``dataset[(index, seed)]`` (seed < 0: no augmentation).

    Args:
        source: the source name (``"navsim"``, ``"waymo"``, ``"carla"``).
        refs: the samples.
        load: ``ref -> Sample`` with the rig's cameras (and labels) attached.
        spec: what to encode.
        augment: training augmentation (drawn from the item's seed).
        cache: keep samples and reduced images in memory.
    """

    def __init__(self, source: str, refs: Sequence[SampleRef], load: Callable[[SampleRef], Sample], spec: InputSpec,
                 augment: AugmentSpec | None = None, cache: bool = True) -> None:
        if not refs:
            raise DataError(f"source {source} has no training samples")
        self.source = source
        self.refs = list(refs)
        self.load = load
        self.spec = spec
        self.augment = augment
        self.cache = cache
        self.skipped: list[tuple[str, str]] = []  # (token, reason) of samples left out when the source was opened
        self._samples: dict[int, tuple[Sample, dict[str, np.ndarray]]] = {}

    def __len__(self) -> int:
        return len(self.refs)

    def _get(self, i: int) -> tuple[Sample, dict[str, np.ndarray]]:
        hit = self._samples.get(i)
        if hit is not None:
            return hit
        sample = self.load(self.refs[i])
        rig = self.spec.rig(self.source)
        cfg = self.spec.model
        slots = rig.slots(cfg.image_width)
        cams = dict(sample.observation.cameras)
        images: dict[str, np.ndarray] = {}
        factors: dict[str, int] = {}
        for (_, w), name in zip(slots, rig.cameras):
            cam = cams.get(name)
            if cam is None:
                raise DataError(f"rig {rig.name} needs camera {name}; sample has {sorted(cams)}",
                                token=sample.meta.token)
            view = camera_view(cam, w, cfg.image_height, rig.horizon_fraction)
            factors[name] = max(1, int((view.crop_box[2] - view.crop_box[0]) / w / 1.5))
            cams[name], images[name] = downscaled(cam, cam.load_image(), factors[name])
        t = sample.targets
        # per-camera labels follow their camera's reduction (nearest), so the cache stays small
        sem = {k: _every(v, factors.get(k, 1)) for k, v in t.semantics.items()}
        depth = {k: _every(v, factors.get(k, 1)) for k, v in t.depth_m.items()}
        sample = replace(sample, observation=replace(sample.observation, cameras=cams),
                         targets=replace(t, semantics=sem, depth_m=depth))
        if self.cache:
            self._samples[i] = (sample, images)
        return sample, images

    def __getitem__(self, key: tuple[int, int]) -> TrainItem:
        i, seed = key
        sample, images = self._get(int(i))
        rng = np.random.default_rng(int(seed)) if seed >= 0 and self.augment is not None else None
        return encode_sample(sample, self.spec, self.augment if rng is not None else None, rng, images)


def _every(labels: np.ndarray, f: int) -> np.ndarray:
    """Every ``f``-th label row and column (nearest-neighbour reduction; the views rescale coordinates)."""
    return labels if f <= 1 else np.ascontiguousarray(labels[f // 2::f, f // 2::f])


class MixedData(Dataset):
    """Several :class:`SourceData` behind one index: ``dataset[(source_index, index, seed)]``."""

    def __init__(self, parts: Sequence[SourceData]) -> None:
        self.parts = list(parts)

    def __len__(self) -> int:
        return sum(len(p) for p in self.parts)

    def __getitem__(self, key: tuple[int, int, int]) -> TrainItem:
        s, i, seed = key
        return self.parts[s][(i, seed)]


@dataclass(frozen=True)
class MixPlan:
    """Batch composition: sources, lengths, per-process batch, epoch length (steps) and mixing rule."""

    sources: tuple[str, ...]
    lengths: tuple[int, ...]
    batch: int  # per process
    steps_per_epoch: int
    ratios: tuple[float, ...] = ()
    sim_to_real: bool = False

    def counts(self, step: int) -> list[int]:
        return mix_counts(self.sources, self.batch, step // self.steps_per_epoch, self.ratios, self.sim_to_real)


class MixedBatchSampler:
    """Yields per-process batches of ``(source_index, index, seed)`` keys from ``start_step`` on (see module)."""

    def __init__(self, plan: MixPlan, *, seed: int = 0, rank: int = 0, world_size: int = 1, start_step: int = 0,
                 max_steps: int | None = None, augment: bool = True) -> None:
        self.plan = plan
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.start_step = start_step
        self.max_steps = max_steps
        self.augment = augment
        self._perms: dict[tuple[int, int], list[int]] = {}

    def _perm(self, s: int, epoch: int) -> list[int]:
        key = (s, epoch)
        if key not in self._perms:
            ds = _Len(self.plan.lengths[s])
            sampler = DistributedSampler(ds, num_replicas=self.world_size, rank=self.rank, shuffle=True,
                                         seed=self.seed + 7919 * s, drop_last=False)
            sampler.set_epoch(epoch)
            if len(self._perms) > 8:
                self._perms.clear()
            self._perms[key] = list(sampler)
        return self._perms[key]

    def positions(self, step: int) -> list[int]:
        """How many samples each source has handed out before ``step`` (per process)."""
        spe = self.plan.steps_per_epoch
        out = [0] * len(self.plan.sources)
        full_epochs = step // spe
        for e in range(full_epochs):
            c = self.plan.counts(e * spe)
            out = [o + spe * k for o, k in zip(out, c)]
        c = self.plan.counts(step)
        return [o + (step - full_epochs * spe) * k for o, k in zip(out, c)]

    def batch(self, step: int) -> list[tuple[int, int, int]]:
        pos = self.positions(step)
        keys = []
        for s, (p, k) in enumerate(zip(pos, self.plan.counts(step))):
            for j in range(k):
                perm = self._perm(s, (p + j) // len(self._perm(s, 0)))
                idx = perm[(p + j) % len(perm)]
                seed = (self.seed * 1_000_003 + step * 4099 + s * 131 + j) * 16 + self.rank if self.augment else -1
                keys.append((s, idx, seed % (2**62) if seed >= 0 else -1))
        return keys

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        step = self.start_step
        while self.max_steps is None or step < self.max_steps:
            yield self.batch(step)
            step += 1

    def __len__(self) -> int:
        return max(0, (self.max_steps or 0) - self.start_step)

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "lengths": list(self.plan.lengths), "sources": list(self.plan.sources),
                "steps_per_epoch": self.plan.steps_per_epoch}

    def check_state(self, state: Mapping[str, Any]) -> None:
        """Resuming needs the same sources, lengths and epoch length (else the batches would differ)."""
        mine = self.state_dict()
        diff = [k for k in mine if state.get(k) != mine[k]]
        if diff:
            raise DataError(f"cannot resume: the checkpoint's sampler {[(k, state.get(k)) for k in diff]} differs "
                            f"from this run's {[(k, mine[k]) for k in diff]} (different data or config)")


class _Len:
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n


def default_steps_per_epoch(lengths: Sequence[int], global_batch: int) -> int:
    return max(1, math.ceil(max(lengths) / global_batch))


def make_collate(spec: InputSpec) -> Callable[[list[TrainItem]], tuple[Any, Any, list[str]]]:
    """The DataLoader's collate: ``(ModelInputs, ModelTargets, sources)``."""
    return _Collate(spec)


class _Collate:
    def __init__(self, spec: InputSpec) -> None:
        self.cfg = spec.model

    def __call__(self, items: list[TrainItem]) -> tuple[Any, Any, list[str]]:
        inputs, targets = collate(items, self.cfg)
        return inputs, targets, [it.source for it in items]


def seed_worker(worker_id: int) -> None:  # keeps torch's per-worker RNG independent of the parent's
    torch.manual_seed(torch.initial_seed() % (2**31) + worker_id)
