"""NAVSIM v2 two-stage (navhard) evaluation: metric cache for both stages, scoring, EC, aggregation.

``run_pdm_score.py`` / ``run_pdm_score_from_submission.py`` of navsim ``main`` in one place:

1. metric cache: stage-one scenes from the original logs (4 s scoring scenes, PDM-Closed ranked by v2, as
   :class:`harness.epdms_eval.EPDMSMetricCache`) and stage-two scenes from the synthetic scene pickles (their
   history frames plus the 8 extended keyframes, same builder, same PDM-Closed): ``harness.navhard_cache``,
   built in chunks over ``workers`` forked processes;
2. per token, ``[PDM-Closed, plan]`` simulated and scored with EPDMS against the traffic policy simulated for
   the plan (``--traffic reactive``, the official two-stage default: IDM vehicles that react to the
   simulated ego; ``non-reactive``: log replay); on original scenes the human is simulated and scored
   against its own reactive traffic for the human filter;
   chunks of tokens are taken by whichever of ``workers`` processes is free (``harness.navhard_workers``);
3. EC within each pair (orig, prev) and (now_2, prev_2), the same value for both frames; final row scores;
4. :func:`metrics.two_stage.aggregate_two_stage` (Gaussian weights on the planned endpoint, group products).

Failure policy: a token that cannot be loaded, planned or scored scores 0 in every column and is listed with
its error; a valid token whose EC partner failed gets EC = 0 (the official aggregation would abort).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from adapters.navsim.navhard import SPLIT_NAME, NavhardSplit, read_split
from adapters.navsim.reader import NavsimReader
from adapters.navsim.scene_filter import SceneFilter
from harness.epdms_eval import simulate_plans
from harness.errors import LeadBenchError
from harness.geometry import local_to_global
from harness.navhard_cache import NavhardMetricCache, cache_scenes
from harness.navhard_workers import fork_chunks
from harness.scoring_scene import ObjectTimeline, ScoringScene
from harness.trajectory import Trajectory
from metrics.epdms import EPDMS_COLUMNS, EPDMSConfig, EPDMSRow, ec_overlap_steps, final_score, score_rows
from metrics.epdms_scoring.comfort import two_frame_extended_comfort
from metrics.traffic_agents import LaneRails, TrafficPolicy, log_replay_objects, reactive_idm_objects_many
from metrics.two_stage import TokenTable, TwoStageGroup, TwoStageSummary, aggregate_two_stage

log = logging.getLogger(__name__)

F64 = npt.NDArray[np.float64]

#: navhard's scene filter: 4 history frames, 8 future frames, every frame, route required.
NAVHARD_FILTER = SceneFilter(num_history_frames=4, num_future_frames=8, frame_interval=1, has_route=True)
SUMMARY_TOKENS = ("extended_pdm_score_stage_one", "extended_pdm_score_stage_two", "extended_pdm_score_combined")
#: Columns aggregated per token: the sub-metrics (EC included) and the final score.
AGGREGATED_COLUMNS = EPDMS_COLUMNS


__all__ = ["NavhardData", "NavhardMetricCache", "cache_scenes", "score_two_stage", "plan_tokens",
           "write_two_stage", "build_navhard_world"]


@dataclass(frozen=True)
class NavhardData:
    """A data root with ``navsim_logs/test``, ``sensor_blobs/test`` and ``navhard_two_stage/``."""

    data_root: Path
    maps_root: Path

    @property
    def split_dir(self) -> Path:
        return self.data_root / SPLIT_NAME

    def split(self) -> NavhardSplit:
        return read_split(self.split_dir / f"{SPLIT_NAME}.yaml")

    def synthetic_path(self, token: str) -> Path:
        return self.split_dir / "synthetic_scene_pickles" / f"{token}.pkl"

    @property
    def synthetic_sensor_root(self) -> Path:
        return self.split_dir / "sensor_blobs"

    def reader(self, split: NavhardSplit) -> NavsimReader:
        return NavsimReader(self.data_root, "test", scene_filter=replace(NAVHARD_FILTER,
                                                                        tokens=split.stage_one_tokens))


# --- scoring -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TwoStageResult:
    """Per-token rows (``rows``: token, stage, valid, EPDMS columns, weight, error) and the aggregation."""

    rows: tuple[dict[str, Any], ...]
    summary: TwoStageSummary
    errors: Mapping[str, str]


def _groups(split: NavhardSplit) -> list[TwoStageGroup]:
    return [TwoStageGroup(g.orig_token, g.prev_token, g.pairs) for g in split.groups]


def score_two_stage(
    split: NavhardSplit,
    scenes: Mapping[str, ScoringScene],
    plans: Mapping[str, Trajectory],
    rails_of: Callable[[str], LaneRails],
    *,
    traffic: TrafficPolicy = TrafficPolicy.REACTIVE,
    config: EPDMSConfig | None = None,
    errors: Mapping[str, str] | None = None,
    chunk: int | None = None,
    workers: int = 1,
) -> TwoStageResult:
    """Score every stage-one and stage-two token and aggregate (see the module docstring).

    Args:
        split: the groups.
        scenes: token -> scoring scene (tokens absent here fail).
        plans: token -> the agent's trajectory in the token's ego frame (absent: fail).
        rails_of: map location -> the lane rails the reactive policy drives on.
        traffic: the traffic policy for both stages (official: reactive).
        config: EPDMS configuration (the human filter applies to stage one only).
        errors: already known failures (token -> reason), e.g. from the metric cache or the agent.
        chunk: tokens simulated and scored together; None: ``auto_chunk`` (reactive batches of 64 cost ~10 %
            less CPU per token than 32, but a few large chunks leave a process idle at the end).
        workers: processes (this one and forked children, which inherit the scenes and plans, each taking
            the next chunk when free: ``harness.navhard_workers.fork_chunks``); rows equal one process's.
    """
    config = config if config is not None else EPDMSConfig()
    err: dict[str, str] = dict(errors or {})
    tokens = list(dict.fromkeys(split.stage_one_tokens + split.stage_two_tokens))
    for t in tokens:
        if t not in err and t not in scenes:
            err[t] = "no scoring scene"
        elif t not in err and t not in plans:
            err[t] = "no plan"
    todo = [t for t in tokens if t not in err]
    rows: dict[str, EPDMSRow] = {}
    states: dict[str, F64] = {}
    chunk = chunk if chunk is not None else auto_chunk(len(todo), workers)
    parts = [todo[lo : lo + chunk] for lo in range(0, len(todo), chunk)]
    global _FORKED
    rails = {loc: rails_of(loc) for loc in {scenes[t].map_location for t in todo}}
    _FORKED = (scenes, plans, rails, traffic, config, parts)
    try:
        # chunks taken in turn by whichever process is free (this one and workers - 1 forked children)
        outcomes = fork_chunks(_score_part, len(parts), workers)
    finally:
        _FORKED = None
    for got, agent, part_err in outcomes:
        err.update(part_err)
        for r, a in zip(got, agent, strict=True):
            rows[r.token] = r
            states[r.token] = a
    rows = _with_pair_comfort(split, rows, states, {t: scenes[t].timestamp_us for t in rows})
    final = dict(zip(rows, final_score(list(rows.values()), config), strict=True))
    table = _table(tokens, rows, final, scenes, plans)
    summary = aggregate_two_stage(table, _groups(split))
    out_rows = []
    stage_one = set(split.stage_one_tokens)
    for t in tokens:
        row: dict[str, Any] = {"token": t, "stage": 1 if t in stage_one else 2, "valid": t in rows}
        if t in rows:
            r = rows[t]
            row.update({c: float(getattr(r, c)) for c in EPDMS_COLUMNS[:-1]})
            row["score"] = float(final[t])
            row["human_filtered"] = ",".join(r.filtered)
        else:
            row.update({c: float("nan") for c in EPDMS_COLUMNS})
        row["weight"] = summary.weights.get(t, float("nan"))
        row["error"] = err.get(t)
        out_rows.append(row)
    return TwoStageResult(tuple(out_rows), summary, err)


_FORKED: tuple[Any, ...] | None = None
#: Largest and smallest automatic scoring chunk, and the chunks per worker below which it shrinks.
MAX_CHUNK, MIN_CHUNK, CHUNKS_PER_WORKER = 64, 16, 4


def auto_chunk(n_tokens: int, workers: int) -> int:
    """Tokens per scoring chunk: ``MAX_CHUNK``, or fewer so that each of several workers gets about
    ``CHUNKS_PER_WORKER`` chunks to balance (never below ``MIN_CHUNK``: smaller reactive batches cost more)."""
    if workers <= 1:
        return MAX_CHUNK
    return int(min(MAX_CHUNK, max(MIN_CHUNK, -(-n_tokens // (CHUNKS_PER_WORKER * workers)))))


def _score_part(index: int) -> tuple[list[EPDMSRow], F64, dict[str, str]]:
    """Score chunk ``index`` of the evaluation in ``_FORKED``; a failing chunk is retried token by token."""
    assert _FORKED is not None
    scenes, plans, rails, traffic, config, parts = _FORKED
    part = parts[index]
    errors: dict[str, str] = {}
    try:
        got, agent = _score_chunk([scenes[t] for t in part], [plans[t] for t in part], rails.__getitem__, traffic,
                                  config)
        return got, agent, errors
    except (LeadBenchError, ValueError) as exc:
        log.debug("chunk failed (%s); scoring token by token", exc)
    got, states = [], []
    for t in part:
        try:
            r1, a1 = _score_chunk([scenes[t]], [plans[t]], rails.__getitem__, traffic, config)
            got.append(r1[0])
            states.append(a1[0])
        except (LeadBenchError, ValueError) as exc1:
            errors[t] = f"{type(exc1).__name__}: {exc1}"
    return got, np.array(states).reshape(-1, 41, 11), errors


def _score_chunk(scenes: Sequence[ScoringScene], plans: Sequence[Trajectory], rails_of: Callable[[str], LaneRails],
                 traffic: TrafficPolicy, config: EPDMSConfig) -> tuple[list[EPDMSRow], F64]:
    closed, agent, human = simulate_plans(scenes, plans, with_human=config.human_penalty_filter)
    if traffic is TrafficPolicy.REACTIVE:
        # every reactive simulation of the chunk (the plan's rollout of each scene, then the human's) at once
        with_h = [i for i, h in enumerate(human) if h is not None]
        sims = [*zip(scenes, agent, strict=True), *((scenes[i], human[i]) for i in with_h)]
        tls = reactive_idm_objects_many([s for s, _ in sims], [rails_of(s.map_location) for s, _ in sims],
                                        [a for _, a in sims])
        objs = tls[: len(scenes)]
        hobjs: list[ObjectTimeline | None] = [None] * len(scenes)
        for i, tl in zip(with_h, tls[len(scenes) :], strict=True):
            hobjs[i] = tl
    else:
        objs = [log_replay_objects(s) for s in scenes]
        hobjs = [None] * len(scenes)
    rows = score_rows(list(scenes), closed, agent, human_states=human, objects=objs, human_objects=hobjs,
                      config=config)
    return rows, agent


def _with_pair_comfort(split: NavhardSplit, rows: dict[str, EPDMSRow], states: Mapping[str, F64],
                       start_us: Mapping[str, int]) -> dict[str, EPDMSRow]:
    """EC of (orig, prev) and of each (now_2, prev_2), set on both frames; 0 when the partner failed."""
    pairs = [(g.orig_token, g.prev_token) for g in split.groups] + [p for g in split.groups for p in g.pairs]
    ec: dict[str, float] = {}
    by_overlap: dict[int, list[tuple[str, str]]] = {}
    for cur, prev in pairs:
        if cur in rows and prev in rows:
            ov = ec_overlap_steps(start_us[cur], start_us[prev])
            if ov is not None:
                by_overlap.setdefault(ov, []).append((cur, prev))
                continue
        for t in (cur, prev):  # failed partner or a start-time gap outside (0, 0.55) s
            ec.setdefault(t, 0.0)
    for ov, items in by_overlap.items():
        res = two_frame_extended_comfort(np.stack([states[c] for c, _ in items]),
                                         np.stack([states[p] for _, p in items]), ov)
        for (c, p), v in zip(items, np.atleast_1d(res.comfortable), strict=True):
            ec[c] = ec[p] = float(v)
    return {t: replace(r, two_frame_extended_comfort=ec.get(t, 0.0)) for t, r in rows.items()}


def _table(tokens: Sequence[str], rows: Mapping[str, EPDMSRow], final: Mapping[str, float],
           scenes: Mapping[str, ScoringScene], plans: Mapping[str, Trajectory]) -> TokenTable:
    n = len(tokens)
    values = np.zeros((n, len(AGGREGATED_COLUMNS)))
    valid = np.zeros(n, dtype=bool)
    end = np.full((n, 2), np.nan)
    start = np.full((n, 2), np.nan)
    for i, t in enumerate(tokens):
        if t in scenes:
            start[i] = scenes[t].ego_pose[:2]
        if t in rows:
            valid[i] = True
            r = rows[t]
            values[i] = [float(getattr(r, c)) for c in AGGREGATED_COLUMNS[:-1]] + [float(final[t])]
            # the planned (not simulated) endpoint: the plan's last pose in the map frame
            end[i] = local_to_global(plans[t].poses[-1], scenes[t].ego_pose)[:2]
    return TokenTable(tuple(tokens), AGGREGATED_COLUMNS, values, valid, end, start)


def official_frame(result: TwoStageResult) -> pd.DataFrame:
    """``run_pdm_score.py``'s CSV: ``token, valid, <col>_stage_one.., <col>_stage_two.., score`` per token, then
    the stage-one, stage-two and combined rows (the combined row's score is the group mean; its sub-metric
    columns repeat the stage means, as the official script writes them)."""
    subs = [c for c in AGGREGATED_COLUMNS if c != "score"]
    cols = ["token", "valid"] + [f"{c}_stage_one" for c in subs] + [f"{c}_stage_two" for c in subs] + ["score"]
    out = []
    for r in result.rows:
        d: dict[str, Any] = {"token": r["token"], "valid": r["valid"], "score": r["score"]}
        suffix = "_stage_one" if r["stage"] == 1 else "_stage_two"
        d.update({f"{c}{suffix}": r[c] for c in subs})
        out.append(d)
    s = result.summary
    idx = {c: i for i, c in enumerate(s.columns)}
    one = {f"{c}_stage_one": s.stage_one[idx[c]] for c in subs}
    two = {f"{c}_stage_two": s.stage_two[idx[c]] for c in subs}
    out.append({"token": SUMMARY_TOKENS[0], "valid": not s.failed_tokens, "score": s.stage_one[idx["score"]], **one})
    out.append({"token": SUMMARY_TOKENS[1], "valid": not s.failed_tokens, "score": s.stage_two[idx["score"]], **two})
    out.append({"token": SUMMARY_TOKENS[2], "valid": not s.failed_tokens, "score": s.combined[idx["score"]],
                **one, **two})
    return pd.DataFrame(out, columns=cols)


def summary_metrics(result: TwoStageResult) -> dict[str, Any]:
    """Stage-one, stage-two and combined values of every column, for ``summary.json``."""
    s = result.summary
    return {name: {c: float(v) for c, v in zip(s.columns, getattr(s, name), strict=True)}
            for name in ("stage_one", "stage_two", "combined")} | {
        "failed_tokens": list(s.failed_tokens), "group_scores": [float(v) for v in s.group_values[:, -1]]}


def write_two_stage(out_dir: Path, result: TwoStageResult, meta: Mapping[str, Any], config: Mapping[str, Any]
                    ) -> None:
    """Results directory: rows, failures, official-layout CSV, summary (with counts) and config."""
    from harness.results import atomic_write_frame, write_results

    n = len(result.rows)
    failed = sum(1 for r in result.rows if not r["valid"])
    summary = dict(meta) | {"metrics": summary_metrics(result),
                            "epdms": float(result.summary.value("combined", "score")) * 100,
                            "counts": {"expected": n, "scored": n - failed, "failed": failed}}
    write_results(out_dir, list(result.rows), summary, config)
    atomic_write_frame(official_frame(result), out_dir / "navsim_two_stage_score.csv")
    (out_dir / "failed_tokens.json").write_text(json.dumps(dict(result.errors), indent=1) + "\n", encoding="utf-8")


# --- the embedded world's navhard split ------------------------------------------------------------------------


def build_navhard_world(root: Path, spec: Any, options: Any) -> NavhardSplit:
    """Build the embedded world (``harness.embedded``) under ``root`` and its two-stage data beside it.

    Args:
        root: destination (the world's logs, sensors, maps, then ``navhard_two_stage/``).
        spec: ``EmbeddedWorldSpec``; options: ``NavhardOptions``.
    """
    from adapters.navsim.navhard_writer import write_navhard
    from harness.embedded import build_embedded_world, is_built
    from harness.world.build import build_world

    if not is_built(root, spec):
        build_embedded_world(root, spec)
    split_file = root / SPLIT_NAME / f"{SPLIT_NAME}.yaml"
    if split_file.is_file():
        return read_split(split_file)
    return write_navhard(build_world(spec.config), root, options)


def plan_tokens(cache: NavhardMetricCache, agent: Any, tokens: Sequence[str], sampling: Any, *,
                batch_size: int = 64) -> tuple[dict[str, Trajectory], dict[str, str]]:
    """The agent's plans for stage-one (from the logs) and stage-two (synthetic) tokens; failures by token.

    Plans are rounded to float32, the precision of a submission pickle, so that scoring the run's submission
    (``submit navsim --version 2`` then ``score navsim``) gives the run's numbers exactly.
    """
    from adapters.navsim.navhard import synthetic_sample
    from adapters.navsim.reader import SensorSelection
    from harness.runner import plan_samples

    needs = agent.sensor_needs()
    plans: dict[str, Trajectory] = {}
    errors: dict[str, str] = {}
    for lo in range(0, len(tokens), batch_size):
        samples, names = [], []
        for t in tokens[lo : lo + batch_size]:
            try:
                if len(t) == 17:
                    samples.append(synthetic_sample(cache.agent_scene(t), cache.data.synthetic_sensor_root,
                                                    needs.cameras, needs.lidar))
                else:
                    samples.append(cache.reader.load(t, SensorSelection(cameras=needs.cameras, lidar=needs.lidar)))
                names.append(t)
            except (LeadBenchError, ValueError) as exc:
                errors[t] = f"{type(exc).__name__}: {exc}"
        if not samples:
            continue
        try:
            got = plan_samples(agent, samples, sampling)
        except (LeadBenchError, ValueError) as exc:
            errors.update({t: f"agent: {exc}" for t in names})
            continue
        for t, p in zip(names, got, strict=True):
            if p.sampling != sampling:
                errors[t] = f"agent returned sampling {p.sampling}, asked for {sampling}"
                continue
            try:  # scored as submitted: a submission stores float32 poses (NAVSIM's Trajectory)
                with np.errstate(over="ignore"):
                    plans[t] = Trajectory(np.asarray(p.poses, dtype=np.float32), p.sampling)
            except ValueError as exc:
                errors[t] = f"agent: plan not finite as float32: {exc}"
    return plans, errors
