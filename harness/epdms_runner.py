"""Run a policy over a NAVSIM split and score it with one-stage EPDMS v2.2 (``run_pdm_score_one_stage.py``).

Every expected token ends up in the rows: scored, or failed with its error. EC needs each token's
predecessor, so it is computed once all tokens are planned: the agent's states are re-simulated from the
stored plans (deterministic), consecutive tokens of a log are paired and the final scores computed.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from adapters.navsim.reader import NavsimReader, SensorSelection
from harness.agents.base import Policy, PrivilegedPolicy
from harness.atomic import atomic_write_bytes
from harness.epdms_eval import (
    SCORER_VERSION,
    EPDMSCacheSpec,
    EPDMSMetricCache,
    finish_one_stage,
    row_dict,
    row_from_dict,
    score_plans,
    simulate_plans,
)
from harness.navsim_eval import build_metric_cache
from harness.results import ProgressLog, atomic_write_frame, write_results
from harness.runner import RunCallbacks, RunSummary, run_scored_batch
from harness.trajectory import NAVSIM_SAMPLING, Trajectory, TrajectorySampling
from harness.types import Sample, SampleRef
from metrics.epdms import EPDMS_COLUMNS, EPDMSConfig, final_score

log = logging.getLogger(__name__)

#: NAVSIM v2's one-stage columns first, then lead-bench's extras.
EPDMS_ROW_COLUMNS = ("token", "valid", *EPDMS_COLUMNS, "human_filtered", "log_name", "ade_m", "fde_m", "error")
#: The official CSV's average row token (``run_pdm_score_one_stage.py``).
AVERAGE_TOKEN = "average_all_frames"

_NO_CALLBACKS = RunCallbacks()


def run_navsim_epdms(
    reader: NavsimReader,
    agent: Policy | PrivilegedPolicy,
    out_dir: Path,
    *,
    maps_root: Path,
    cache_dir: Path,
    human_filter: bool = True,
    sampling: TrajectorySampling = NAVSIM_SAMPLING,
    batch_size: int = 64,
    resume: bool = False,
    workers: int = 1,
    ray_address: str | None = None,
    engine: str = "auto",
    config: dict[str, Any] | None = None,
    callbacks: RunCallbacks = _NO_CALLBACKS,
) -> RunSummary:
    """Plan every scene of ``reader``'s split with ``agent`` and score it with one-stage EPDMS (+ ADE/FDE).

    Args as ``harness.runner.run_navsim``, plus ``human_filter`` (the official YAML's default: on; off
    reports the agent's own sub-scores). ``cache_dir`` holds the v2 metric cache (4 s scenes), which must
    not be shared with a v1.1 cache.
    """
    cfg = EPDMSConfig(human_penalty_filter=human_filter)
    out_dir.mkdir(parents=True, exist_ok=True)
    refs = reader.index()
    progress = ProgressLog(out_dir / "progress.jsonl")
    if not resume and progress.path.exists():
        progress.path.unlink()
    done = progress.load() if resume else {}
    todo = [r for r in refs if r.token not in done]
    log.info("split %s: %d tokens expected, %d already done, %d to run", reader.split, len(refs), len(done),
             len(todo))

    spec = EPDMSCacheSpec(reader.data_root, reader.split, reader.scene_filter, maps_root, cache_dir)
    by_log: dict[str, list[str]] = {}
    for r in todo:
        by_log.setdefault(r.log_id, []).append(r.token)
    callbacks.phase("metric cache (v2)", len(todo))
    # The reader has parsed every log (the index): the cache build (serial and forked parts) and the scoring
    # read them from it instead of parsing them again; Ray tasks read their own.
    cache_errors = build_metric_cache(spec, by_log, workers=workers, ray_address=ray_address,  # type: ignore[arg-type]
                                      engine=engine, on_log_done=callbacks.advance, reader=reader)
    cache = spec.open(reader)

    needs = agent.sensor_needs()
    selection = SensorSelection(cameras=needs.cameras, lidar=needs.lidar)
    callbacks.phase(f"{agent.name} on {reader.split}", len(todo))
    for start in range(0, len(todo), batch_size):
        batch = todo[start : start + batch_size]
        progress.append(_run_batch(reader, cache, agent, batch, selection, sampling, cache_errors, cfg))
        callbacks.advance(len(batch))

    finished = progress.load()
    callbacks.phase("two-frame comfort", 1)
    rows = _finish(refs, finished, cache, cfg)
    callbacks.advance(1)
    _write_plans(out_dir / "plans.npz", refs, finished, sampling)
    scored = [r for r in rows if r["valid"]]
    avg = average_row(rows)
    metrics = {c: avg[c] for c in EPDMS_COLUMNS}
    for c in ("ade_m", "fde_m"):
        vals = np.array([r[c] for r in scored], dtype=np.float64)
        metrics[c] = float(np.nanmean(vals)) if vals.size else float("nan")
    summary = RunSummary(len(refs), len(scored), len(rows) - len(scored), metrics, out_dir)
    write_results(
        out_dir, rows,
        {"benchmark": "navsim", "scorer": SCORER_VERSION, "metric": "epdms", "human_filter": human_filter,
         "traffic": "non-reactive", "split": reader.split, "agent": agent.name, "privileged": agent.privileged,
         "epdms": metrics["score"] * 100 if np.isfinite(metrics["score"]) else None,
         "counts": {"expected": summary.expected, "scored": summary.scored, "failed": summary.failed},
         "metrics": metrics},
        config or {}, columns=EPDMS_ROW_COLUMNS,
    )
    official = pd.DataFrame([{k: r[k] for k in ("token", "valid", *EPDMS_COLUMNS)} for r in rows] + [avg])
    atomic_write_frame(official, out_dir / "navsim_epdms_score.csv")
    log.info("scored %d of %d tokens; %d failed%s", summary.scored, summary.expected, summary.failed,
             " (see failures.csv)" if summary.failed else "")
    return summary


def average_row(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The official ``average_all_frames`` row: column means, NaN skipped (failed rows are NaN)."""
    out: dict[str, Any] = {"token": AVERAGE_TOKEN, "valid": all(r["valid"] for r in rows) if rows else False}
    for c in EPDMS_COLUMNS:
        vals = np.array([r[c] for r in rows], dtype=np.float64)
        out[c] = float(np.nanmean(vals)) if vals.size and np.isfinite(vals).any() else float("nan")
    return out


def _finish(refs: Sequence[SampleRef], finished: Mapping[str, Mapping[str, Any]], cache: EPDMSMetricCache,
            cfg: EPDMSConfig) -> list[dict[str, Any]]:
    """EC and final scores for every scored row; failed rows kept as they are."""
    ok = [r.token for r in refs if finished[r.token].get("valid")]
    rows = [row_from_dict(dict(finished[t])) for t in ok]
    scenes = [cache.get(t) for t in ok]
    plans = [Trajectory(np.asarray(finished[t]["plan"], dtype=np.float64),
                        TrajectorySampling(len(finished[t]["plan"]), float(finished[t]["plan_interval_s"])))
             for t in ok]
    _, states, _ = simulate_plans(scenes, plans, with_human=False)
    rows = finish_one_stage(rows, list(states), [(s.log_name, s.timestamp_us, int(s.scene_type) == 0)
                                                 for s in scenes])
    scores = final_score(rows, cfg)
    by_token = {r.token: (r, sc) for r, sc in zip(rows, scores, strict=True)}
    out = []
    for ref in refs:
        src = finished[ref.token]
        full = {c: src.get(c, float("nan")) for c in EPDMS_ROW_COLUMNS}
        full["error"] = src.get("error")
        if ref.token in by_token:
            row, sc = by_token[ref.token]
            full.update({k: v for k, v in row_dict(row, cfg).items() if k in EPDMS_ROW_COLUMNS})
            full["score"] = float(sc)
        out.append(full)
    return out


def _run_batch(
    reader: NavsimReader,
    cache: EPDMSMetricCache,
    agent: Policy | PrivilegedPolicy,
    refs: Sequence[SampleRef],
    selection: SensorSelection,
    sampling: TrajectorySampling,
    cache_errors: Mapping[str, str | None],
    cfg: EPDMSConfig,
) -> list[dict[str, Any]]:
    def make_row(sample: Sample, sc: Any) -> dict[str, Any]:
        row = row_dict(sc, cfg)
        row["plan_interval_s"] = sampling.interval_s
        return row

    return run_scored_batch(
        reader, cache, agent, refs, selection, sampling, cache_errors,
        score=lambda scenes, plans: score_plans(scenes, plans, config=cfg)[0],
        make_row=make_row, failed=_failed,
    )


def _failed(ref: Any, exc: Exception | str) -> dict[str, Any]:
    row: dict[str, Any] = {"token": ref.token, "valid": False, "log_name": getattr(ref, "log_id", None)}
    row.update({c: float("nan") for c in (*EPDMS_COLUMNS, "ade_m", "fde_m")})
    row["error"] = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
    return row


def _write_plans(path: Path, refs: Sequence[SampleRef], finished: Mapping[str, Mapping[str, Any]],
                 sampling: TrajectorySampling) -> None:
    """The agent's trajectories of scored tokens (``lead-bench submit`` reads them), as ``runner.run_navsim``."""
    have = [r.token for r in refs if finished[r.token].get("plan") is not None]
    poses = np.array([finished[t]["plan"] for t in have], dtype=np.float64).reshape(len(have), sampling.num_poses, 3)
    buf = io.BytesIO()
    np.savez(buf, tokens=np.array(have, dtype=str), poses=poses, interval_s=np.array(sampling.interval_s))
    atomic_write_bytes(path, buf.getvalue())
