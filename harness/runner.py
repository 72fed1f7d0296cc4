"""Run a policy over a benchmark split and score it; the CLI is a thin shell over these functions.

Every expected token ends up in the rows: scored, or failed with its error. Nothing is dropped silently.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from adapters.navsim.reader import NavsimReader, SensorSelection
from adapters.navsim.scene_filter import SceneFilter
from harness.agents.base import Policy, PrivilegedPolicy
from harness.errors import DataError, LeadBenchError
from harness.results import ProgressLog, write_results
from harness.trajectory import NAVSIM_SAMPLING, Trajectory, TrajectorySampling
from harness.types import Sample, SampleRef
from metrics.displacement import displacement_errors

log = logging.getLogger(__name__)

NAVSIM_ROW_COLUMNS = ("token", "log_name", "valid", "ade_m", "fde_m", "error")


@dataclass(frozen=True)
class RunSummary:
    """What a run did: counts and aggregate metrics (means over scored tokens)."""

    expected: int
    scored: int
    failed: int
    metrics: dict[str, float]
    out_dir: Path


ProgressCallback = Callable[[int], None]


def run_navsim_open_loop(
    reader: NavsimReader,
    agent: Policy | PrivilegedPolicy,
    out_dir: Path,
    *,
    sampling: TrajectorySampling = NAVSIM_SAMPLING,
    batch_size: int = 32,
    resume: bool = False,
    config: dict[str, Any] | None = None,
    on_progress: ProgressCallback | None = None,
    on_start: Callable[[int], None] | None = None,
) -> RunSummary:
    """Plan every scene of ``reader``'s split with ``agent`` and score ADE/FDE against the human future.

    Args:
        reader: the split to run on.
        agent: the policy.
        out_dir: results directory (created).
        sampling: the trajectory sampling asked of the agent (NAVSIM: 8 poses at 0.5 s).
        batch_size: observations per ``agent.plan`` call.
        resume: keep rows already in ``out_dir/progress.jsonl`` and run only the rest.
        config: the resolved configuration recorded with the results.
        on_progress: called with the number of tokens finished after each batch.
        on_start: called once with the number of tokens still to run.
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
    if on_start is not None:
        on_start(len(todo))
    needs = agent.sensor_needs()
    selection = SensorSelection(cameras=needs.cameras, lidar=needs.lidar)
    for start in range(0, len(todo), batch_size):
        batch = todo[start : start + batch_size]
        progress.append(_run_batch(reader, agent, batch, selection, sampling))
        if on_progress is not None:
            on_progress(len(batch))
    finished = progress.load()
    rows = [finished[r.token] for r in refs]
    scored = [r for r in rows if r["valid"]]
    metrics = {
        "ade_m": float(np.mean([r["ade_m"] for r in scored])) if scored else float("nan"),
        "fde_m": float(np.mean([r["fde_m"] for r in scored])) if scored else float("nan"),
    }
    summary = RunSummary(len(refs), len(scored), len(rows) - len(scored), metrics, out_dir)
    write_results(
        out_dir,
        rows,
        {
            "benchmark": "navsim",
            "metric": "open-loop displacement",
            "split": reader.split,
            "agent": agent.name,
            "privileged": agent.privileged,
            "counts": {"expected": summary.expected, "scored": summary.scored, "failed": summary.failed},
            "metrics": metrics,
        },
        config or {},
        columns=NAVSIM_ROW_COLUMNS,
    )
    log.info("scored %d of %d tokens; %d failed%s", summary.scored, summary.expected, summary.failed,
             " (see failures.csv)" if summary.failed else "")
    return summary


def _run_batch(
    reader: NavsimReader,
    agent: Policy | PrivilegedPolicy,
    refs: Sequence[SampleRef],
    selection: SensorSelection,
    sampling: TrajectorySampling,
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    samples: list[Sample] = []
    for ref in refs:
        try:
            samples.append(reader.load(ref, selection))
        except DataError as exc:
            rows.append(_failed(ref, exc))
    if not samples:
        return rows
    try:
        plans = plan_samples(agent, samples, sampling)
    except (LeadBenchError, ValueError) as exc:
        return rows + [_failed(s.meta, exc) for s in samples]
    for sample, plan in zip(samples, plans, strict=True):
        future = sample.targets.future
        try:
            if future is None:
                raise DataError("scene has no future frames to compare with", token=sample.meta.token)
            if plan.sampling != sampling:
                raise ValueError(f"agent returned sampling {plan.sampling}, asked for {sampling}")
            gt = future.resample(sampling)
            err = displacement_errors(plan.xy[None], gt.xy[None])
        except (LeadBenchError, ValueError) as exc:
            rows.append(_failed(sample.meta, exc))
            continue
        rows.append({"token": sample.meta.token, "log_name": sample.meta.log_id, "valid": True,
                     "ade_m": float(err.ade_m[0]), "fde_m": float(err.fde_m[0]), "error": None})
    return rows


def plan_samples(
    agent: Policy | PrivilegedPolicy, samples: Sequence[Sample], sampling: TrajectorySampling
) -> list[Trajectory]:
    """Plans for ``samples``: privileged agents see the whole sample, the others only its observation."""
    if isinstance(agent, PrivilegedPolicy) and agent.privileged:
        plans = agent.plan_from_samples(samples, sampling)
    else:
        plans = agent.plan([s.observation for s in samples], sampling)  # type: ignore[union-attr]
    if len(plans) != len(samples):
        raise ValueError(f"agent {agent.name} returned {len(plans)} plans for {len(samples)} samples")
    return plans


def _failed(ref: Any, exc: Exception) -> dict[str, Any]:
    return {"token": ref.token, "log_name": getattr(ref, "log_id", None), "valid": False,
            "ade_m": float("nan"), "fde_m": float("nan"), "error": f"{type(exc).__name__}: {exc}"}


def default_scene_filter() -> SceneFilter:
    """navtest's scene filter (4 history frames, 10 future frames, every frame, route required)."""
    from adapters.navsim.scene_filter import NAVTEST_FILTER

    return NAVTEST_FILTER


def train_mlp_on_split(reader: NavsimReader, checkpoint: Path, *, epochs: int = 300, seed: int = 0) -> Path:
    """Train the ego-status MLP on every scene of ``reader``'s split and save it to ``checkpoint``."""
    from harness.agents.ego_mlp import save_checkpoint, train_ego_mlp

    samples = [reader.load(r) for r in reader.index()]
    model, report = train_ego_mlp(samples, sampling=NAVSIM_SAMPLING, epochs=epochs, seed=seed)
    save_checkpoint(model, checkpoint, NAVSIM_SAMPLING)
    log.info("trained the ego-status MLP on %d samples of split %s (final L1 %.3f m); saved %s",
             report.samples, reader.split, report.final_l1, checkpoint)
    return checkpoint
