"""NAVSIM PDMS evaluation: metric cache (scoring scenes + PDM-Closed) and scoring of plans, batched.

``run_pdm_score.py`` in one place: for each token, the agent's plan and PDM-Closed's reference are turned
into 41 reference states, simulated together (LQR + kinematic bicycle) and scored by the PDM scorer; the
agent's row is reported. Simulation and scoring are batched across scenes (``score_plans``; ``workers > 1``
splits the scenes over forked processes that inherit them). The metric cache is built once per token and
reused; ``build_metric_cache`` plans PDM-Closed for up to ``MetricCache.PLAN_CHUNK`` scenes of a log at once
and spreads logs over local processes (forked from a parent that has read the logs and maps) or Ray. Every
batched or parallel path gives each token exactly the result it gets alone.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from adapters.navsim.reader import NavsimReader
from adapters.navsim.scene_filter import SceneFilter
from adapters.navsim.scoring_scenes import ScoringSceneCache
from harness.agents.pdm_closed import plan_pdm_closed, plan_pdm_closed_batch
from harness.errors import DataError, LeadBenchError
from harness.scoring_pool import can_fork, fork_map, split_bounds
from harness.scoring_scene import ScoringScene
from harness.trajectory import Trajectory
from metrics.pdm_simulation import (
    EgoInitialState,
    reference_states_from_local_poses,
    sample_reference,
    simulate,
)
from metrics.pdms import PDMS_COLUMNS, PDMSConfig, ProposalScores, score_batch

log = logging.getLogger(__name__)

#: The metric cache's object horizon for PDMS v1.1 (TTC looks 0.9 s past 4 s).
V11_HORIZON_S = 5.0


@dataclass(frozen=True)
class CacheSpec:
    """Where the metric cache lives and what it is built from (picklable, for workers)."""

    data_root: Path
    split: str
    scene_filter: SceneFilter
    maps_root: Path
    cache_dir: Path
    horizon_s: float = V11_HORIZON_S

    def open(self) -> MetricCache:
        reader = NavsimReader(self.data_root, self.split, scene_filter=self.scene_filter)
        return MetricCache(ScoringSceneCache(self.cache_dir, reader, self.maps_root, horizon_s=self.horizon_s))


class MetricCache:
    """Scoring scenes with PDM-Closed's reference filled in, built on first use and stored."""

    #: Scenes planned together by :meth:`build` (bounds the memory of one batched simulation).
    PLAN_CHUNK = 64

    def __init__(self, scenes: ScoringSceneCache) -> None:
        self.scenes = scenes

    def get(self, token: str) -> ScoringScene:
        scene = self.scenes.get(token)
        if scene.pdm_closed_states.shape[0] == 0:
            states, times = plan_pdm_closed(scene)
            scene = replace(scene, pdm_closed_states=states, pdm_closed_times_s=times)
            scene.save(self.scenes.path_of(scene.log_name, token))
        return scene

    def build(self, tokens: Sequence[str], on_done: Callable[[int], None] | None = None) -> dict[str, str | None]:
        """Make sure every token's complete scene is stored; token -> None (ok) or its error.

        Batched: missing scenes are built, PDM-Closed plans them in chunks of at most ``PLAN_CHUNK`` (as few
        chunks as that allows, of equal size: a small chunk costs more per scene) as they come, and each scene
        is written once; the tokens may belong to any logs (chunks span logs). The stored scenes equal those
        of :meth:`get`, token by token. ``on_done(n)``: called as each chunk's ``n`` tokens are finished
        (stored, found stored, or failed).
        """
        out: dict[str, str | None] = {}
        todo: list[ScoringScene] = []
        chunk_size = -(-len(tokens) // max(1, -(-len(tokens) // self.PLAN_CHUNK)))
        finished = 0
        for t in tokens:
            try:
                scene = self.scenes.stored(t)
                if scene is None:
                    scene = self.scenes.build(t)
            except (LeadBenchError, ValueError) as exc:
                out[t] = _error_text(exc)
                finished += 1
                continue
            out[t] = None
            if scene.pdm_closed_states.shape[0] == 0:
                todo.append(scene)
            else:
                finished += 1
            if len(todo) >= chunk_size:
                self.scenes.put(self._planned(todo, out))
                finished, todo = finished + len(todo), []
                if on_done:
                    on_done(finished)
                finished = 0
        if todo:
            self.scenes.put(self._planned(todo, out))
            finished += len(todo)
        if on_done and finished:
            on_done(finished)
        return out

    @staticmethod
    def _planned(chunk: Sequence[ScoringScene], errors: dict[str, str | None]) -> list[ScoringScene]:
        """The scenes with PDM-Closed's trajectory; a scene it fails on is kept without one, its error noted."""
        try:
            plans: list[tuple[np.ndarray, np.ndarray] | None] = list(plan_pdm_closed_batch(chunk))
        except (LeadBenchError, ValueError):
            plans = []  # isolate the failing scene(s): plan one at a time
            for scene in chunk:
                try:
                    plans.append(plan_pdm_closed(scene))
                except (LeadBenchError, ValueError) as exc:
                    errors[scene.token] = _error_text(exc)
                    plans.append(None)
        return [s if p is None else replace(s, pdm_closed_states=p[0], pdm_closed_times_s=p[1])
                for s, p in zip(chunk, plans, strict=True)]


def _error_text(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


#: The metric cache a pool worker opened: it reads the split's logs and each map once, however many logs it is
#: given. Pool workers live for one ``build_metric_cache`` call, so nothing outlives the inputs it was read from.
_WORKER_CACHE: dict[CacheSpec, MetricCache] = {}


def _cache_log(args: tuple[CacheSpec, Sequence[str]]) -> dict[str, str | None]:
    """Build the metric cache of some tokens (one log); token -> None or the error."""
    spec, tokens = args
    return spec.open().build(tokens)


def _cache_log_in_pool(args: tuple[CacheSpec, Sequence[str]]) -> dict[str, str | None]:
    """``_cache_log`` for a process-pool worker, reusing the worker's open cache."""
    spec, tokens = args
    if spec not in _WORKER_CACHE:
        _WORKER_CACHE.clear()
        _WORKER_CACHE[spec] = spec.open()
    return _WORKER_CACHE[spec].build(tokens)


def build_metric_cache(
    spec: CacheSpec,
    tokens_by_log: dict[str, list[str]],
    *,
    workers: int = 1,
    ray_address: str | None = None,
    engine: str = "auto",
    on_log_done: Callable[[int], None] | None = None,
) -> dict[str, str | None]:
    """Build the cache for the given tokens; returns token -> None (ok) or its error.

    With ``workers > 1`` the logs are spread over local processes, or over Ray tasks with ``engine="ray"`` or a
    ``ray_address`` (a local Ray cluster is started if none is given). Results are identical to the serial
    path: each token's scene depends only on its own log and the map. ``engine``: "ray", "processes", or
    "auto" (Ray when a ``ray_address`` is given, else local processes, which start faster on one machine).
    """
    if engine not in ("auto", "ray", "processes"):
        raise ValueError(f"engine must be auto, ray or processes, got {engine!r}")
    jobs = [(spec, toks) for _, toks in sorted(tokens_by_log.items())]
    results: dict[str, str | None] = {}
    if workers <= 1 and ray_address is None:
        cache = spec.open()  # one reader and one map load per location for all logs
        if isinstance(cache, MetricCache):  # PDM-Closed's chunks span logs
            return cache.build([t for job in jobs for t in job[1]], on_log_done)
        for job in jobs:  # another cache of the same protocol (EPDMS): build(tokens), one log at a time
            results.update(cache.build(job[1]))
            if on_log_done:
                on_log_done(len(job[1]))
        return results
    use_ray = engine == "ray" or (engine == "auto" and ray_address is not None)
    ray = _try_ray() if use_ray else None
    if engine == "ray" and ray is None:
        raise LeadBenchError("the ray engine needs Ray: pip install -c constraints.txt -e '.[ray]'")
    if ray is not None:
        started = False
        if not ray.is_initialized():
            ray.init(address=ray_address, num_cpus=None if ray_address else workers, include_dashboard=False,
                     log_to_driver=True, ignore_reinit_error=True)
            started = True
        try:
            remote = ray.remote(_cache_log)
            pending = {remote.remote(job): len(job[1]) for job in jobs}
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    results.update(ray.get(ref))
                    n_tokens = pending.pop(ref)  # always: a ref left pending is returned by every later wait
                    if on_log_done:
                        on_log_done(n_tokens)
        finally:
            if started:
                ray.shutdown()
        return results
    if ray_address is not None:
        raise LeadBenchError("--ray-address needs Ray: pip install -c constraints.txt -e '.[ray]'")
    parts = [(spec, toks) for toks in split_jobs([job[1] for job in jobs], workers)]
    log.info("caching %d logs (%d parts) with %d local processes", len(jobs), len(parts), workers)
    context = None
    if "fork" in multiprocessing.get_all_start_methods():
        # Workers forked from here inherit the parsed logs and the maps: read once, not once per worker.
        context = multiprocessing.get_context("fork")
        _WORKER_CACHE.clear()
        _WORKER_CACHE[spec] = _preloaded(spec, [job[1] for job in jobs])
        import threadpoolctl  # noqa: F401 - imported once here, not in each worker's initializer (~20 ms each)
        # The parsed logs and maps stay out of the workers' garbage collection: a collection would touch
        # every inherited object and copy its memory page (copy-on-write) into each worker.
        gc.freeze()
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_single_threaded) as pool:
            for job, res in zip(parts, pool.map(_cache_log_in_pool, parts), strict=True):
                results.update(res)
                if on_log_done:
                    on_log_done(len(job[1]))
    finally:
        _WORKER_CACHE.clear()
        gc.unfreeze()
    return results


#: A local worker's part of the tokens holds at most 1 / (PARTS_PER_WORKER × workers) of them, so that the
#: workers finish together; the pool hands the largest remaining part to whichever worker is free. A part is
#: planned in chunks of up to ``MetricCache.PLAN_CHUNK`` scenes, which may span logs; smaller parts cost more
#: per scene (measured: one part per worker's share beat two).
PARTS_PER_WORKER = 1


def split_jobs(token_lists: Sequence[Sequence[str]], workers: int,
               parts_per_worker: int = PARTS_PER_WORKER) -> list[list[str]]:
    """The logs' token lists, concatenated in order, cut into ``parts_per_worker × workers`` parts of equal
    size (the last may be smaller), largest first; a part may span logs (a log's tokens stay in order and
    contiguous; every token is in exactly one part). Scenes are planned in chunks that span logs, so parts of
    whole logs gained nothing, and parts of very unequal logs kept one worker busy after the other."""
    tokens = [t for toks in token_lists for t in toks]
    size = max(1, -(-len(tokens) // max(1, parts_per_worker * workers)))
    parts = [tokens[lo : lo + size] for lo in range(0, len(tokens), size)]
    return sorted(parts, key=len, reverse=True)  # stable: equal sizes keep the tokens' order


def _single_threaded() -> None:
    """Pool initializer: one BLAS/OpenMP thread per worker process (the workers already fill the cores)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def _preloaded(spec: CacheSpec, token_lists: Sequence[Sequence[str]]) -> MetricCache:
    """The spec's cache with the split's logs parsed and the maps of the given tokens' locations read."""
    cache = spec.open()
    for tokens in token_lists:
        if tokens:
            try:
                frames, current = cache.scenes.reader.scene_frames(tokens[0])
                cache.scenes.map_for(frames[current].map_location)
            except LeadBenchError:
                continue  # the worker reports it for each token
    return cache


def _try_ray() -> Any:
    try:
        import ray
    except ImportError:
        return None
    return ray


# --- scoring --------------------------------------------------------------------------------------------


def initial_state(scene: ScoringScene) -> EgoInitialState:
    """The scene's t = 0 ego state (velocity/acceleration already float32-rounded, as NAVSIM's EgoStatus)."""
    return EgoInitialState(scene.ego_pose, scene.ego_velocity_xy, scene.ego_acceleration_xy,
                           np.int64(scene.timestamp_us))


def pdm_closed_reference(scene: ScoringScene) -> np.ndarray:
    """PDM-Closed's cached trajectory sampled on the 41-state grid, ``(41, 11)``."""
    if scene.pdm_closed_states.shape[0] < 2:
        raise DataError("scoring scene has no PDM-Closed trajectory (metric cache incomplete)", token=scene.token)
    knots_us = scene.timestamp_us + np.round(scene.pdm_closed_times_s * 1e6).astype(np.int64)
    return sample_reference(scene.pdm_closed_states, knots_us, np.int64(scene.timestamp_us))


#: ``score_plans`` splits a call over processes only if each gets at least this many scenes: a forked part
#: costs ~50 ms (fork, page-table copy, exit), about what 40 scenes take to score.
FORK_MIN_SCENES = 64


def score_plans(
    scenes: Sequence[ScoringScene],
    plans: Sequence[Trajectory],
    *,
    config: PDMSConfig | None = None,
    workers: int = 1,
) -> list[ProposalScores]:
    """Simulate and score ``[PDM-Closed, plan]`` for each scene; proposal 1 of each result is the agent.

    With ``workers > 1`` (and the fork start method, i.e. Linux) and at least ``FORK_MIN_SCENES`` scenes per
    worker, the scenes are split into ``workers`` contiguous parts: this process scores the first while
    processes forked for the call score the others
    (``harness.scoring_pool.fork_map``: they inherit the scenes; only results cross process boundaries). Every
    scene's result is the same as scored serially (scenes are scored independently).

    Raises:
        ValueError: a plan with non-finite poses (Trajectory already forbids it) or wrong shapes.
        DataError: a scene without PDM-Closed's trajectory.
    """
    if len(scenes) != len(plans):
        raise ValueError(f"score_plans: {len(scenes)} scenes but {len(plans)} plans")
    if not scenes:
        return []
    for s in scenes:
        if s.pdm_closed_states.shape[0] < 2:
            raise DataError("scoring scene has no PDM-Closed trajectory (metric cache incomplete)", token=s.token)
    if workers > 1 and len(scenes) >= FORK_MIN_SCENES * workers and can_fork():
        parts = split_bounds(len(scenes), workers)
        # Each part comes back as a few concatenated arrays (pickling hundreds of small result objects costs a
        # forked part about as much as scoring them).
        packed = fork_map(lambda i: pack_scores(_score_serial(scenes[parts[i][0]:parts[i][1]],
                                                               plans[parts[i][0]:parts[i][1]], config)), workers)
        return [r for part in packed for r in unpack_scores(part)]
    return _score_serial(scenes, plans, config)


def pack_scores(scores: Sequence[ProposalScores]) -> dict[str, np.ndarray]:
    """Many scenes' ``ProposalScores`` as one array per field (concatenated proposals) plus ``__counts``."""
    out = {f.name: np.concatenate([getattr(s, f.name) for s in scores]) for f in fields(ProposalScores)}
    out["__counts"] = np.array([len(s) for s in scores], dtype=np.int64)
    return out


def unpack_scores(packed: dict[str, np.ndarray]) -> list[ProposalScores]:
    """The inverse of ``pack_scores`` (each scene's arrays are views of the packed ones)."""
    bounds = np.concatenate([[0], np.cumsum(packed["__counts"])]).tolist()
    names = [f.name for f in fields(ProposalScores)]
    return [ProposalScores(**{n: packed[n][lo:hi] for n in names}) for lo, hi in zip(bounds[:-1], bounds[1:])]


def _score_serial(scenes: Sequence[ScoringScene], plans: Sequence[Trajectory], config: PDMSConfig | None
                  ) -> list[ProposalScores]:
    n = len(scenes)
    # One batched initial state (the fields of ``initial_state(scene)``, validated once).
    init = EgoInitialState(np.stack([s.ego_pose for s in scenes]), np.stack([s.ego_velocity_xy for s in scenes]),
                           np.stack([s.ego_acceleration_xy for s in scenes]),
                           np.array([s.timestamp_us for s in scenes], dtype=np.int64))
    refs = np.empty((n, 2, 41, 11))
    # Reference states in batches of scenes whose trajectories have the same shape (row-wise arithmetic, so
    # each row equals the scene computed alone).
    for idx in _groups([s.pdm_closed_states.shape[0] for s in scenes]):
        closed = [scenes[i] for i in idx]
        start_us = np.array([s.timestamp_us for s in closed], dtype=np.int64)
        knots_us = start_us[:, None] + np.round(np.stack([s.pdm_closed_times_s for s in closed]) * 1e6).astype(
            np.int64)
        refs[idx, 0] = sample_reference(np.stack([s.pdm_closed_states for s in closed]), knots_us, start_us)
    for idx in _groups([(p.poses.shape, p.sampling.interval_s) for p in plans]):
        poses = np.stack([plans[i].poses for i in idx])
        refs[idx, 1] = reference_states_from_local_poses(poses, plans[idx[0]].sampling.interval_s, init[idx])
    # One batched simulation for all scenes and both proposals.
    simulated = simulate(refs.reshape(-1, 41, 11), init[np.repeat(np.arange(n), 2)]).reshape(n, 2, 41, 11)
    return score_batch(list(scenes), list(simulated), config=config or PDMSConfig())


def _groups(keys: Sequence[Any]) -> list[np.ndarray]:
    """Indices of equal keys, grouped (first-appearance order)."""
    out: dict[Any, list[int]] = {}
    for i, k in enumerate(keys):
        out.setdefault(k, []).append(i)
    return [np.array(v, dtype=np.int64) for v in out.values()]


def agent_row(token: str, scores: ProposalScores) -> dict[str, Any]:
    """NAVSIM's per-token result row for the agent (proposal 1)."""
    row: dict[str, Any] = {"token": token, "valid": True}
    row.update(scores.row(1))
    return row


def failed_row(token: str, error: str) -> dict[str, Any]:
    row: dict[str, Any] = {"token": token, "valid": False}
    row.update({c: float("nan") for c in PDMS_COLUMNS})
    row["error"] = error
    return row


def average_row(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """NAVSIM's ``average`` row: column means over valid tokens, NaN skipped."""
    valid = [r for r in rows if r["valid"]]
    out: dict[str, Any] = {"token": "average", "valid": all(r["valid"] for r in rows) if rows else False}
    for c in PDMS_COLUMNS:
        vals = np.array([r[c] for r in valid], dtype=np.float64)
        out[c] = float(np.nanmean(vals)) if vals.size and np.isfinite(vals).any() else float("nan")
    return out
