"""NAVSIM PDMS evaluation: metric cache (scoring scenes + PDM-Closed) and scoring of plans, batched.

``run_pdm_score.py`` in one place: for each token, the agent's plan and PDM-Closed's reference are turned
into 41 reference states, simulated together (LQR + kinematic bicycle) and scored by the PDM scorer; the
agent's row is reported. Simulation and scoring are batched across scenes (``score_plans``; ``workers > 1``
splits the scenes over forked processes that inherit them). The metric cache is built once per token and
reused; ``build_metric_cache`` plans PDM-Closed for up to ``MetricCache.PLAN_CHUNK`` scenes at once (chunks
span logs) and spreads parts of the tokens of about equal cost over local processes (forked once the maps are
read and before any log is parsed; each parses only its own logs) or logs over Ray tasks. Every batched or parallel path gives each token exactly
the result it gets alone.
"""

from __future__ import annotations

import logging
import mmap
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from adapters.navsim.log_format import first_map_location
from adapters.navsim.reader import NavsimReader, split_reader
from adapters.navsim.scene_filter import SceneFilter
from adapters.navsim.scoring_scenes import ScoringSceneCache
from harness.agents.pdm_closed import plan_pdm_closed, plan_pdm_closed_batch
from harness.errors import DataError, LeadBenchError
from harness.safe_pickle import load_restricted
from harness.scoring_pool import can_fork, fork_map, keep_freed_memory, split_bounds
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

    def open(self, reader: NavsimReader | None = None) -> MetricCache:
        """The cache, reading the split's logs through ``reader`` when given (an open reader of this split
        and scene filter: the logs it has parsed are not parsed again), else through a new reader.

        Raises:
            ValueError: a reader of another split, data root or scene filter.
        """
        reader = split_reader("CacheSpec.open", self.data_root, self.split, self.scene_filter, reader)
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
        # Object timelines are batched per log: announce exactly these tokens, so that a sparse selection does
        # not pay for scenes of its logs that it never builds.
        self.scenes.expect(tokens)
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


class _LogsReader(NavsimReader):
    """A split's reader that sees only some of its logs: its scene windows come from those logs alone, so a
    worker that builds the scenes of a few logs parses those logs and no others.

    Windows are cut log by log (``filter_scenes``), so each token of these logs has the window the whole
    split gives it: a token listed in several logs keeps the last one, which is among these logs whenever the
    caller took the token's log from the whole split's index; a ``max_scenes`` cap only lets more tokens in.
    """

    def __init__(self, base: NavsimReader, log_names: Sequence[str]) -> None:
        super().__init__(base.data_root, base.split, scene_filter=base.scene_filter, maps_root=base.maps_root)
        self.sensor_root = base.sensor_root
        self._log_names = sorted(set(log_names))

    def log_paths(self) -> list[Path]:
        return [self.logs_dir / f"{name}.pkl" for name in self._log_names]


def _open_logs(spec: Any, log_names: Sequence[str]) -> Any:
    """``spec.open()`` with a reader that parses only ``log_names`` (the logs of the tokens to be built)."""
    cache = spec.open()
    cache.scenes.reader = _LogsReader(cache.scenes.reader, log_names)
    return cache


def _build(cache: Any, tokens: Sequence[str], on_done: Callable[[int], None] | None) -> dict[str, str | None]:
    """``cache.build(tokens)`` with freed memory kept for reuse (``keep_freed_memory``); progress per chunk
    where the cache reports it.

    The garbage collector is left as it is: ``fork_map``'s children run without it (they exit after one
    part), but pausing it in this process (~4 % of a build's CPU) left its generations such that later work
    here ran slower (loading 132 scenes after a build: ~180 -> ~250 ms), and a collection afterwards costs
    as much as the pause saves.
    """
    with keep_freed_memory():
        if isinstance(cache, MetricCache):
            return cache.build(tokens, on_done)
        out = cache.build(tokens)  # another cache of the protocol (EPDMS): build(tokens)
    if on_done:
        on_done(len(tokens))
    return out


def _cache_log(args: tuple[Any, Sequence[str], Sequence[str]]) -> dict[str, str | None]:
    """Build the metric cache of some tokens of some logs (a Ray task or a spawned worker's part): parses
    only those logs; token -> None or the error."""
    spec, log_names, tokens = args
    return _build(_open_logs(spec, log_names), tokens, None)


def build_metric_cache(
    spec: CacheSpec,
    tokens_by_log: dict[str, list[str]],
    *,
    workers: int = 1,
    ray_address: str | None = None,
    engine: str = "auto",
    on_log_done: Callable[[int], None] | None = None,
    reader: NavsimReader | None = None,
) -> dict[str, str | None]:
    """Build the cache for the given tokens; returns token -> None (ok) or its error.

    ``tokens_by_log``: the tokens by the log the whole split's index puts them in. With ``workers > 1`` the
    tokens are cut into ``workers`` parts of about equal estimated cost in log order (``split_parts``: objects
    per scene where ``reader`` has parsed the logs, log sizes) built by local processes, or
    spread log by log over Ray tasks with ``engine="ray"`` or a ``ray_address`` (a local Ray cluster is
    started if none is given). Every process parses only the logs of its own tokens. Local processes are
    forked once the maps are read and before any log is parsed (``fork_map``: this process builds the first
    part, one forked child each of the others), so they share only the maps, which they read, and build
    everything else in memory of their own; without fork (not Linux) they are spawned and each reads its
    maps. Results are identical to the serial path: each token's scene depends
    only on its own log and the map. ``engine``: "ray", "processes", or "auto" (Ray when a ``ray_address``
    is given, else local processes, which start faster on one machine). ``on_log_done(n)``: ``n`` more
    tokens finished (per planned chunk; a forked part's progress is read from shared memory whenever this
    process finishes a chunk of its own). ``reader``: an open reader of the split (``spec.open(reader)``)
    whose parsed logs this process and its forked parts reuse instead of parsing them again (a run that
    has indexed the split); Ray tasks and spawned workers read their own.
    """
    if engine not in ("auto", "ray", "processes"):
        raise ValueError(f"engine must be auto, ray or processes, got {engine!r}")
    jobs = [(log_name, toks) for log_name, toks in sorted(tokens_by_log.items())]
    results: dict[str, str | None] = {}
    if workers <= 1 and ray_address is None:
        # One reader and one map load per location for all logs; PDM-Closed's chunks span logs.
        cache = spec.open() if reader is None else spec.open(reader)
        if isinstance(cache, MetricCache):
            return _build(cache, [t for _, toks in jobs for t in toks], on_log_done)
        for _, toks in jobs:  # another cache of the same protocol (EPDMS): one log at a time
            results.update(_build(cache, toks, on_log_done))
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
            pending = {remote.remote((spec, [log_name], toks)): len(toks) for log_name, toks in jobs}
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
    parts = split_parts(jobs, workers, Path(spec.data_root) / "navsim_logs" / spec.split, reader)
    log.info("caching %d logs (%d parts) with %d local processes", len(jobs), len(parts), workers)
    if can_fork():
        return _build_forked(spec, parts, on_log_done, reader)
    with ProcessPoolExecutor(max_workers=workers, initializer=_single_threaded) as pool:
        for (_, toks), res in zip(parts, pool.map(_cache_log, [(spec, *part) for part in parts]), strict=True):
            results.update(res)
            if on_log_done:
                on_log_done(len(toks))
    return results


def _build_forked(spec: Any, parts: Sequence[tuple[Sequence[str], Sequence[str]]],
                  on_done: Callable[[int], None] | None, reader: NavsimReader | None = None
                  ) -> dict[str, str | None]:
    """Parts ``(log names, tokens)`` built by ``fork_map``: part 0 here, the others in children forked before
    any log is parsed (or, given an open ``reader``, sharing the logs it has parsed). The maps the logs need
    are read first and shared (copy-on-write: a child only reads them; real nuPlan maps are large). Each
    child counts its finished tokens in a shared array; this process reports them with its own as its chunks
    finish, and the rest once every part is done."""
    base = spec.open() if reader is None else spec.open(reader)
    _read_maps(base, sorted({name for log_names, _ in parts for name in log_names}))
    finished = np.frombuffer(mmap.mmap(-1, 8 * len(parts)), dtype=np.int64)  # shared with the children
    reported = 0

    def report(n: int) -> None:
        nonlocal reported
        finished[0] += n
        total = int(finished.sum())
        if on_done and total > reported:
            on_done(total - reported)
            reported = total

    def part(i: int) -> dict[str, str | None]:
        def count(n: int) -> None:
            finished[i] += n

        log_names, tokens = parts[i]
        if reader is None:  # parse only this part's logs (this process's copy of ``base``)
            base.scenes.reader = _LogsReader(base.scenes.reader, log_names)
        return _build(base, tokens, report if i == 0 else count)

    results: dict[str, str | None] = {}
    for res in fork_map(part, len(parts)):
        results.update(res)
    if on_done and len(results) > reported:
        on_done(len(results) - reported)
    return results


def _read_maps(cache: Any, log_names: Sequence[str]) -> None:
    """Read into ``cache`` the map of each log's location, found from the log's first raw frame: scanned from
    the pickle's opcodes (``first_map_location``, ~0.1 ms a log), unpickled only where the scan finds none
    (unpickling costs about a quarter of parsing the log, on the path before the fork). A log or map that cannot
    be read is skipped: the process that builds its tokens reports the error for each of them (and reads a map
    a wrong hint left out)."""
    scenes: ScoringSceneCache = cache.scenes
    locations: set[str] = set()
    for name in log_names:
        path = scenes.reader.logs_dir / f"{name}.pkl"
        location = first_map_location(path)
        if location is not None:
            locations.add(location)
            continue
        try:
            raw = load_restricted(path)
            locations.add(str(raw[0]["map_location"]))
        except (LeadBenchError, LookupError, TypeError):
            continue
    for location in sorted(locations):
        try:
            scenes.map_for(location)
        except LeadBenchError:
            continue


@dataclass(frozen=True)
class BuildCostModel:
    """CPU milliseconds of a metric-cache build part, to cut the tokens into parts that finish together.

    A token costs ``token_ms + object_ms × objects`` (its current frame's annotated objects: the scene's
    object timelines and PDM-Closed's forecasts and collision tests grow with them), and parsing a log
    ``log_ms_per_mb`` per MB of its pickle (a part parses each log it has tokens of; nothing when the logs
    were parsed before the fork). Fitted on the bench world's 132 scenes with >= 40 objects (fresh processes
    as ``benchmarks/bench_navsim_eval.py``'s, 2-core VM): ~0.9 CPU-s in all (~6.8 ms a scene), and with the
    logs parsed before the fork, halves of 66 tokens whose objects differ by 1112 (5359 vs 4247) differed by
    ~11 ms after the fork (5 runs alternating; ~0.01 ms an object: most of a scene's cost does not grow with
    its objects: the map query, route and centerline, PDM-Closed's 15 proposals, the stored file; a forked
    child also pays for the pages it writes); a log of ~1 MB ~10 ms to parse.
    ``default_objects``: the objects of a token whose log is not parsed before the fork (all tokens then
    cost the same).
    """

    token_ms: float = 6.5
    object_ms: float = 0.01
    log_ms_per_mb: float = 10.0
    default_objects: int = 60


def split_by_cost(token_ms: np.ndarray, log_ids: np.ndarray, log_ms: np.ndarray, workers: int
                  ) -> list[tuple[int, int]]:
    """Contiguous ``(lo, hi)`` ranges of the tokens (at most ``workers``, none empty, covering them in order)
    whose largest cost is as small as it can be.

    A range costs its tokens' ``token_ms`` and ``log_ms[l]`` for each log ``l`` it has tokens of
    (``log_ids``: each token's log, ``0..len(log_ms) - 1``, a log's tokens contiguous), so that a cut inside
    a log pays for parsing it twice. That cost only grows as a range grows, so the greedy cut (each range as
    long as a bound allows) fits in ``workers`` ranges exactly when some cut does; the bound is found by
    bisection (to 0.1 ms).
    """
    n = len(token_ms)
    if n == 0:
        return []
    starts = np.r_[True, log_ids[1:] != log_ids[:-1]]  # a log's first token
    # cum[i]: tokens [0, i) and the parse of every log that starts in [0, i): a range [s, e) costs
    # cum[e] - cum[s], plus its first log's parse when s is inside that log.
    cum = np.r_[0.0, np.cumsum(token_ms + np.where(starts, log_ms[log_ids], 0.0))]
    head = np.where(starts, 0.0, log_ms[log_ids])

    def greedy(bound: float) -> list[tuple[int, int]] | None:
        out, s = [], 0
        while s < n:
            if len(out) == workers:
                return None
            e = int(np.searchsorted(cum, cum[s] + bound - head[s], side="right")) - 1  # the longest within bound
            out.append((s, min(n, max(s + 1, e))))
            s = out[-1][1]
        return out

    lo, hi = 0.0, float(cum[n])
    best = greedy(hi)
    while hi - lo > 0.1:
        mid = (lo + hi) / 2
        cut = greedy(mid)
        if cut is None:
            lo = mid
        else:
            best, hi = cut, mid
    assert best is not None
    return best


def split_parts(jobs: Sequence[tuple[str, Sequence[str]]], workers: int, logs_dir: Path,
                reader: NavsimReader | None = None, model: BuildCostModel | None = None
                ) -> list[tuple[list[str], list[str]]]:
    """The tokens of ``jobs`` (``(log name, tokens)`` in order) cut into at most ``workers`` contiguous parts
    ``(log names, tokens)`` of about equal cost under ``model`` (``split_by_cost``): a part may end inside a
    log (both parts then parse it, which the cost counts). With a ``reader`` of the split (whose logs the
    parts share; a run has parsed them for its index, else they are parsed here), each token's objects are
    counted from its current frame and no parse is charged;
    otherwise every token has ``model.default_objects`` and a log costs its pickle's size."""
    model = model or BuildCostModel()
    tokens = [t for _, toks in jobs for t in toks]
    log_names = [name for name, toks in jobs if toks]
    log_ids = np.repeat(np.arange(len(log_names)), [len(toks) for _, toks in jobs if toks])
    if reader is not None:
        windows = reader.windows()
        objects = np.array([_objects_at(reader, windows.get(t)) for t in tokens], dtype=np.float64)
        log_ms = np.zeros(len(log_names))
    else:
        objects = np.full(len(tokens), float(model.default_objects))
        log_ms = np.array([model.log_ms_per_mb * _size_mb(logs_dir / f"{name}.pkl") for name in log_names])
    bounds = split_by_cost(model.token_ms + model.object_ms * objects, log_ids, log_ms, workers)
    return [(sorted({log_names[i] for i in log_ids[lo:hi].tolist()}), tokens[lo:hi]) for lo, hi in bounds]


def _objects_at(reader: NavsimReader, window: Any) -> int:
    """Annotated objects of a window's current frame (0 for a token the split does not have: it fails fast)."""
    if window is None:
        return 0
    annotations = reader.log_frames(window.log_name)[window.current_index].annotations
    return 0 if annotations is None else len(annotations.track_tokens)


def _size_mb(path: Path) -> float:
    try:
        return path.stat().st_size / 2**20
    except OSError:
        return 0.0


def _single_threaded() -> None:
    """Spawned-pool initializer: one BLAS/OpenMP thread per worker process (the workers already fill the
    cores)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


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
