"""Run a policy over a benchmark split and score it; the CLI is a thin shell over these functions.

Every expected token ends up in the rows: scored, or failed with its error. Nothing is dropped silently.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from adapters.navsim.reader import NavsimReader, SensorSelection
from harness.agents.base import Policy, PrivilegedPolicy
from harness.atomic import atomic_write_bytes
from harness.errors import DataError, LeadBenchError
from harness.navsim_eval import (
    CacheSpec,
    MetricCache,
    agent_row,
    average_row,
    build_metric_cache,
    score_plans,
)
from harness.results import ProgressLog, atomic_write_frame, write_results
from harness.scoring_pool import ScoringPool, can_fork
from harness.trajectory import NAVSIM_SAMPLING, Trajectory, TrajectorySampling
from harness.types import Sample, SampleRef
from metrics.displacement import displacement_errors
from metrics.pdms import PDMS_COLUMNS

log = logging.getLogger(__name__)

#: NAVSIM v1.1's result columns first (``run_pdm_score.py``), then lead-bench's extras.
NAVSIM_ROW_COLUMNS = ("token", "valid", *PDMS_COLUMNS, "log_name", "ade_m", "fde_m", "error")
#: Version tag recorded with every number (specs/navsim.md §14.13).
SCORER_VERSION = "navsim-v1.1 PDMS"


@dataclass(frozen=True)
class RunSummary:
    """What a run did: counts and aggregate metrics (means over scored tokens)."""

    expected: int
    scored: int
    failed: int
    metrics: dict[str, float]
    out_dir: Path


ProgressCallback = Callable[[int], None]


@dataclass(frozen=True)
class RunCallbacks:
    """Progress hooks for the CLI's bars: phase start (name, total) and advance (n)."""

    on_phase: Callable[[str, int], None] | None = None
    on_advance: Callable[[int], None] | None = None

    def phase(self, name: str, total: int) -> None:
        if self.on_phase:
            self.on_phase(name, total)

    def advance(self, n: int) -> None:
        if self.on_advance:
            self.on_advance(n)


def run_navsim(
    reader: NavsimReader,
    agent: Policy | PrivilegedPolicy,
    out_dir: Path,
    *,
    maps_root: Path,
    cache_dir: Path,
    sampling: TrajectorySampling = NAVSIM_SAMPLING,
    batch_size: int = 64,
    resume: bool = False,
    workers: int = 1,
    ray_address: str | None = None,
    engine: str = "auto",
    config: dict[str, Any] | None = None,
    callbacks: RunCallbacks = RunCallbacks(),
) -> RunSummary:
    """Plan every scene of ``reader``'s split with ``agent`` and score it with PDMS v1.1 (plus ADE/FDE).

    Args:
        reader: the split to run on (its scene filter defines the expected tokens).
        agent: the policy.
        out_dir: results directory (created).
        maps_root: nuPlan maps root.
        cache_dir: metric-cache directory (scoring scenes with PDM-Closed; reused across runs).
        sampling: the trajectory sampling asked of the agent (NAVSIM: 8 poses at 0.5 s).
        batch_size: scenes per agent call and per scoring batch.
        resume: keep rows already in ``out_dir/progress.jsonl`` and run only the rest.
        workers, ray_address, engine: metric-cache building over local processes or Ray
            (see ``build_metric_cache``); with ``workers > 1`` scoring also runs in that many local worker
            processes (``harness.scoring_pool.ScoringPool``: they load the scenes and score them; same results).
        config: the resolved configuration recorded with the results.
        callbacks: progress hooks.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    refs = reader.index()
    progress = ProgressLog(out_dir / "progress.jsonl")
    if not resume and progress.path.exists():
        progress.path.unlink()
    done = progress.load() if resume else {}
    todo = [r for r in refs if r.token not in done]
    log.info("split %s: %d tokens expected, %d already done, %d to run", reader.split, len(refs), len(done),
             len(todo))

    spec = CacheSpec(reader.data_root, reader.split, reader.scene_filter, maps_root, cache_dir)
    by_log: dict[str, list[str]] = {}
    for r in todo:
        by_log.setdefault(r.log_id, []).append(r.token)
    callbacks.phase("metric cache", len(todo))
    # The reader has parsed the split's logs for its index: the cache build and the scoring reuse them.
    cache_errors = build_metric_cache(spec, by_log, workers=workers, ray_address=ray_address, engine=engine,
                                      on_log_done=callbacks.advance, reader=reader)
    cache = spec.open(reader)
    if hasattr(agent, "use_scoring_scenes"):  # planners on scoring scenes (pdm_closed) read the metric cache
        agent.use_scoring_scenes(cache.get)

    needs = agent.sensor_needs()
    selection = SensorSelection(cameras=needs.cameras, lidar=needs.lidar)
    callbacks.phase(f"{agent.name} on {reader.split}", len(todo))
    pool = ScoringPool(cache, workers) if workers > 1 and todo and can_fork() else None
    try:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            progress.append(_run_batch(reader, cache, agent, batch, selection, sampling, cache_errors, pool))
            callbacks.advance(len(batch))
    finally:
        if pool is not None:
            pool.close()

    finished = progress.load()
    rows = [_complete(finished[r.token]) for r in refs]
    _write_plans(out_dir / "plans.npz", refs, finished, sampling)
    scored = [r for r in rows if r["valid"]]
    avg = average_row(rows)
    metrics = {c: avg[c] for c in PDMS_COLUMNS}
    for c in ("ade_m", "fde_m"):
        vals = np.array([r[c] for r in scored], dtype=np.float64)
        metrics[c] = float(np.nanmean(vals)) if vals.size else float("nan")
    summary = RunSummary(len(refs), len(scored), len(rows) - len(scored), metrics, out_dir)
    write_results(
        out_dir, rows,
        {"benchmark": "navsim", "scorer": SCORER_VERSION, "split": reader.split, "agent": agent.name,
         "privileged": agent.privileged, "pdms": metrics["score"] * 100 if np.isfinite(metrics["score"]) else None,
         "counts": {"expected": summary.expected, "scored": summary.scored, "failed": summary.failed},
         "metrics": metrics},
        config or {}, columns=NAVSIM_ROW_COLUMNS,
    )
    # The official layout too: NAVSIM's columns and its trailing `average` row.
    official = pd.DataFrame([{k: r[k] for k in ("token", "valid", *PDMS_COLUMNS)} for r in rows] + [avg])
    atomic_write_frame(official, out_dir / "navsim_pdm_score.csv")
    log.info("scored %d of %d tokens; %d failed%s", summary.scored, summary.expected, summary.failed,
             " (see failures.csv)" if summary.failed else "")
    return summary


def _write_plans(path: Path, refs: Sequence[SampleRef], finished: Mapping[str, Mapping[str, Any]],
                 sampling: TrajectorySampling) -> None:
    """The agent's trajectories of scored tokens (``lead-bench submit`` reads them): tokens, poses, interval."""
    import io

    have = [r.token for r in refs if finished[r.token].get("plan") is not None]
    poses = np.array([finished[t]["plan"] for t in have], dtype=np.float64).reshape(len(have), sampling.num_poses, 3)
    buf = io.BytesIO()
    np.savez(buf, tokens=np.array(have, dtype=str), poses=poses, interval_s=np.array(sampling.interval_s))
    atomic_write_bytes(path, buf.getvalue())


def read_plans(run_dir: Path) -> dict[str, Trajectory]:
    """The trajectories a run planned, by token (from ``plans.npz``)."""
    path = Path(run_dir) / "plans.npz"
    try:
        with np.load(path, allow_pickle=False) as z:
            tokens, poses, interval = z["tokens"], z["poses"], float(z["interval_s"])
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"cannot read the run's plans ({exc}); was it written by lead-bench run?", path=path) from exc
    sampling = TrajectorySampling(int(poses.shape[1]), interval)
    return {str(t): Trajectory(p, sampling) for t, p in zip(tokens, poses, strict=True)}


class SubmissionReplay:
    """Replays given trajectories by token (scoring a submission file as the leaderboard does)."""

    name = "submission"
    privileged = False

    def __init__(self, predictions: Mapping[str, Trajectory]) -> None:
        self.predictions = dict(predictions)

    def sensor_needs(self) -> Any:
        from harness.agents.base import SensorNeeds

        return SensorNeeds()

    def plan_from_samples(self, samples: Sequence[Sample], sampling: TrajectorySampling) -> list[Trajectory]:
        return [self.predictions[s.meta.token] for s in samples]


def _complete(row: Mapping[str, Any]) -> dict[str, Any]:
    out = {c: row.get(c, float("nan")) for c in NAVSIM_ROW_COLUMNS}
    out["error"] = row.get("error")
    return out


def _run_batch(
    reader: NavsimReader,
    cache: MetricCache,
    agent: Policy | PrivilegedPolicy,
    refs: Sequence[SampleRef],
    selection: SensorSelection,
    sampling: TrajectorySampling,
    cache_errors: Mapping[str, str | None],
    pool: ScoringPool | None = None,
) -> list[dict[str, Any]]:
    if pool is not None:  # the pool's workers load the scenes: only tokens and plans are sent
        return run_scored_batch(
            reader, _TokensOnly(), agent, refs, selection, sampling, cache_errors,
            score=pool.score, make_row=lambda sample, sc: agent_row(sample.meta.token, sc), failed=_failed,
        )
    return run_scored_batch(
        reader, cache, agent, refs, selection, sampling, cache_errors,
        score=lambda scenes, plans: score_plans(scenes, plans),
        make_row=lambda sample, sc: agent_row(sample.meta.token, sc),
        failed=_failed,
    )


class _TokensOnly:
    """Stands in for the metric cache where workers load the scenes: a token's "scene" is its token."""

    @staticmethod
    def get(token: str) -> str:
        return token


def run_scored_batch(
    reader: NavsimReader,
    cache: Any,
    agent: Policy | PrivilegedPolicy,
    refs: Sequence[SampleRef],
    selection: SensorSelection,
    sampling: TrajectorySampling,
    cache_errors: Mapping[str, str | None],
    *,
    score: Callable[[list[Any], list[Trajectory]], Sequence[Any]],
    make_row: Callable[[Sample, Any], dict[str, Any]],
    failed: Callable[[Any, Exception | str], dict[str, Any]],
) -> list[dict[str, Any]]:
    """Load, plan and score one batch of tokens; every token comes back as a row, failures with their error.

    Shared by the PDMS and EPDMS runners: ``score`` maps (scenes, plans) to per-token scores (an exception in
    place of a token's scores fails that token alone), ``make_row`` turns one into a result row, ``failed``
    builds the row of a token that could not be scored.
    """
    rows: list[dict[str, Any]] = []
    samples: list[Sample] = []
    scenes = []
    for ref in refs:
        if cache_errors.get(ref.token):
            rows.append(failed(ref, f"metric cache: {cache_errors[ref.token]}"))
            continue
        try:
            samples.append(reader.load(ref, selection))
            scenes.append(cache.get(ref.token))
        except (LeadBenchError, ValueError) as exc:
            if len(samples) > len(scenes):
                samples.pop()
            rows.append(failed(ref, exc))
    if not samples:
        return rows
    try:
        plans = plan_samples(agent, samples, sampling)
    except (LeadBenchError, ValueError) as exc:
        return rows + [failed(s.meta, exc) for s in samples]
    ok = [i for i, p in enumerate(plans) if p.sampling == sampling]
    for i in sorted(set(range(len(plans))) - set(ok)):
        rows.append(failed(samples[i].meta, ValueError(f"agent returned sampling {plans[i].sampling}, "
                                                       f"asked for {sampling}")))
    try:
        scores = score([scenes[i] for i in ok], [plans[i] for i in ok])
    except (LeadBenchError, ValueError) as exc:
        return rows + [failed(samples[i].meta, exc) for i in ok]
    for i, sc in zip(ok, scores, strict=True):
        sample = samples[i]
        if isinstance(sc, Exception):
            rows.append(failed(sample.meta, sc))
            continue
        row = make_row(sample, sc)
        row.update(log_name=sample.meta.log_id, error=None, **displacement_row(sample, plans[i], sampling))
        row["plan"] = plans[i].poses.tolist()
        rows.append(row)
    return rows


def displacement_row(sample: Sample, plan: Trajectory, sampling: TrajectorySampling) -> dict[str, float]:
    """ADE/FDE (m) of a plan against the sample's logged future, NaN when the future is too short."""
    future = sample.targets.future
    if future is None or future.sampling.time_horizon_s + 1e-9 < sampling.time_horizon_s:
        return {"ade_m": float("nan"), "fde_m": float("nan")}
    err = displacement_errors(plan.xy[None], future.resample(sampling).xy[None])
    return {"ade_m": float(err.ade_m[0]), "fde_m": float(err.fde_m[0])}


def plan_samples(
    agent: Policy | PrivilegedPolicy, samples: Sequence[Sample], sampling: TrajectorySampling
) -> list[Trajectory]:
    """Plans for ``samples``: privileged agents see the whole sample, the others only its observation."""
    if isinstance(agent, PrivilegedPolicy):
        plans = agent.plan_from_samples(samples, sampling)
    else:
        plans = agent.plan([s.observation for s in samples], sampling)  # type: ignore[union-attr]
    if len(plans) != len(samples):
        raise ValueError(f"agent {agent.name} returned {len(plans)} plans for {len(samples)} samples")
    return plans


def _failed(ref: Any, exc: Exception | str) -> dict[str, Any]:
    row: dict[str, Any] = {"token": ref.token, "valid": False, "log_name": getattr(ref, "log_id", None)}
    row.update({c: float("nan") for c in (*PDMS_COLUMNS, "ade_m", "fde_m")})
    row["error"] = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
    return row


def train_mlp_on_split(reader: NavsimReader, checkpoint: Path, *, epochs: int = 300, seed: int = 0) -> Path:
    """Train the ego-status MLP on every scene of ``reader``'s split and save it to ``checkpoint``."""
    from harness.agents.ego_mlp import save_checkpoint, train_ego_mlp

    samples = [reader.load(r) for r in reader.index()]
    model, report = train_ego_mlp(samples, sampling=NAVSIM_SAMPLING, epochs=epochs, seed=seed)
    save_checkpoint(model, checkpoint, NAVSIM_SAMPLING)
    log.info("trained the ego-status MLP on %d samples of split %s (final L1 %.3f m); saved %s",
             report.samples, reader.split, report.final_l1, checkpoint)
    return checkpoint


__all__ = ["NAVSIM_ROW_COLUMNS", "RunCallbacks", "RunSummary", "plan_samples", "run_navsim", "train_mlp_on_split",
           "DataError"]
