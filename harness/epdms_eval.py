"""NAVSIM v2 EPDMS evaluation (one stage): the v2 metric cache and the scoring of plans, batched.

What NAVSIM ``main``'s ``run_pdm_score_one_stage.py`` does, in one place:

1. metric cache (specs/navsim.md §9): scoring scenes with a **4 s** object/light horizon (41 steps; a track
   seen in one keyframe of the 4 s window is frozen over it, so the v1.1 5 s scenes cannot be reused) and
   PDM-Closed's reference planned as v2 plans it: its 15 proposals ranked by the v2 scorer's no-EC score
   (TLC against its own red lights, DDC multiplier, LK, EP v2; HC = 1 without history);
2. per token, ``[PDM-Closed, plan]`` simulated (LQR + bicycle) and scored by ``metrics.epdms`` against the
   non-reactive log replay; the logged human trajectory simulated and scored alone for the human filter;
3. after all tokens, EC from each token and its predecessor (same log, start 0.5 s earlier) and the final
   scores; rows without a predecessor drop EC from the weighted mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from adapters.navsim.reader import NavsimReader, split_reader
from adapters.navsim.scene_filter import SceneFilter
from adapters.navsim.scoring_scenes import ScoringSceneCache
from harness.agents import pdm_closed_v2
from harness.agents.pdm_closed import PDMClosedConfig, initial_state
from harness.agents.pdm_closed_observation import build_observation, forecast_timeline
from harness.agents.pdm_closed_path import DiscretePath, parallel_path
from harness.agents.pdm_closed_proposals import ProposalGenerator
from harness.errors import DataError, LeadBenchError
from harness.scoring_scene import ScoringScene
from harness.trajectory import Trajectory
from metrics.epdms import (
    EPDMS_COLUMNS,
    EPDMSConfig,
    EPDMSRow,
    RedLights,
    final_score,
    one_stage_predecessors,
    score_batch,
    score_rows,
    with_two_frame_comfort,
)
from metrics.pdm_simulation import (
    PACIFICA,
    EgoInitialState,
    nuplan_rear_axle_roundtrip,
    reference_states_from_local_poses,
    sample_reference,
    simulate,
)

F64 = npt.NDArray[np.float64]

#: The v2 metric cache's object/light horizon (41 steps, t = 0..4 s).
V2_HORIZON_S = 4.0
#: Version tag recorded with every number (specs/navsim.md §14.13).
SCORER_VERSION = "navsim-v2.2 EPDMS (post-#151 human filter)"

#: The human trajectory the human filter simulates: 8 logged poses at 0.5 s (4 s).
HUMAN_POSES, HUMAN_INTERVAL_S = 8, 0.5

_CLOSED = PDMClosedConfig()
_EPDMS = EPDMSConfig()


# --- PDM-Closed as NAVSIM v2 ranks its proposals -----------------------------------------------------------


def plan_pdm_closed_v2(scene: ScoringScene, *, config: PDMClosedConfig = _CLOSED) -> tuple[F64, F64]:
    """PDM-Closed's reference as NAVSIM ``main``'s metric cache stores it.

    The planner is v1.1's (observation, paths, IDM proposals, simulation, 5 s extension: ``harness.agents``);
    only the ranking differs: ``PDMScorer._aggregate_pdm_scores`` of v2.2, the no-EC score, against the
    planner's own forecast (objects overlapping the ego at t = 0 ignored, its red lights at every step).

    Returns:
        ``(51, 11)`` rear-axle states (t = 0..5 s) and ``(51,)`` times in seconds, as ``plan_pdm_closed``.
    """
    return plan_pdm_closed_v2_batch([scene], config=config)[0]


def plan_pdm_closed_v2_batch(scenes: Sequence[ScoringScene], *, config: PDMClosedConfig = _CLOSED
                             ) -> list[tuple[F64, F64]]:
    """:func:`plan_pdm_closed_v2` of many scenes: proposals simulated and scored in one batch (each scene's
    result equals the scene planned alone)."""
    cfg = config
    prepared = []
    for scene in scenes:
        if scene.centerline.shape[0] < 2:
            raise DataError("PDM-Closed needs a centerline of at least two points", token=scene.token)
        obs = build_observation(scene, map_radius_m=cfg.map_radius_m, sample_interval_s=cfg.step_s,
                                resolution_steps=cfg.forecast_resolution_steps,
                                horizon_steps=cfg.observation_steps)
        paths = [DiscretePath(scene.centerline)]
        paths += [DiscretePath(parallel_path(scene.centerline, off)) for off in cfg.lateral_offsets_m]
        initial = initial_state(scene)
        limit = scene.start_lane_speed_limit_mps
        limit = None if limit is None or not np.isfinite(limit) else float(limit)
        generator = ProposalGenerator(
            paths, obs, initial.rear_axle_pose_global()[:2], float(scene.ego_velocity_xy[0]),
            cfg.idm.target_velocities(limit), cfg.idm, proposal_steps=cfg.proposal_steps,
            trajectory_steps=cfg.trajectory_steps, dt_s=cfg.step_s,
            leading_agent_update_rate=cfg.leading_agent_update_rate, vehicle=PACIFICA,
        )
        proposals = generator.generate().states[:, : cfg.proposal_steps + 1].copy()
        prepared.append((obs, initial, generator, proposals))
    if not prepared:
        return []
    counts = [p[3].shape[0] for p in prepared]
    initial = EgoInitialState.stack([p[1] for p in prepared])[np.repeat(np.arange(len(prepared)), counts)]
    simulated_all = simulate(np.concatenate([p[3] for p in prepared]), initial, step_s=cfg.step_s)
    bounds = np.concatenate([[0], np.cumsum(counts)])
    n_steps = cfg.proposal_steps + 1
    objects = [forecast_timeline(p[0], n_steps) for p in prepared]
    lights = [RedLights(np.asarray(p[0].light_polygons, dtype=object),
                        np.ones((n_steps, len(p[0].light_polygons)), dtype=bool)) for p in prepared]
    scores = score_batch(list(scenes), [simulated_all[bounds[i]:bounds[i + 1]] for i in range(len(prepared))],
                         objects=objects, red_lights=lights, histories=[None] * len(prepared),
                         config=EPDMSConfig(human_penalty_filter=False))
    times_s = np.arange(cfg.trajectory_steps + 1) * int(cfg.step_s * 1e6) / 1e6
    out = []
    for p, sc in zip(prepared, scores, strict=True):
        states = p[2].extend(int(np.argmax(sc.pdm_score))).copy()
        states[:, :3] = nuplan_rear_axle_roundtrip(states[:, :3], PACIFICA.rear_axle_to_center)
        out.append((states, times_s.copy()))
    return out


@dataclass(frozen=True)
class EPDMSCacheSpec:
    """Where the v2 metric cache lives and what it is built from (picklable)."""

    data_root: Path
    split: str
    scene_filter: SceneFilter
    maps_root: Path
    cache_dir: Path

    def open(self, reader: NavsimReader | None = None) -> EPDMSMetricCache:
        """The cache, reading the split's logs through ``reader`` when given (an open reader of this split and
        scene filter, as ``harness.navsim_eval.CacheSpec.open``), else through a new reader.

        Raises:
            ValueError: a reader of another split, data root or scene filter.
        """
        reader = split_reader("EPDMSCacheSpec.open", self.data_root, self.split, self.scene_filter, reader)
        return EPDMSMetricCache(ScoringSceneCache(self.cache_dir, reader, self.maps_root, horizon_s=V2_HORIZON_S))


class EPDMSMetricCache:
    """4 s scoring scenes with PDM-Closed's v2 reference filled in, built on first use and stored."""

    PLAN_CHUNK = 32

    def __init__(self, scenes: ScoringSceneCache) -> None:
        if abs(scenes.horizon_s - V2_HORIZON_S) > 1e-9:
            raise ValueError(f"the EPDMS cache needs {V2_HORIZON_S} s scenes, got {scenes.horizon_s} s")
        self.scenes = scenes

    def get(self, token: str) -> ScoringScene:
        scene = self.scenes.get(token)
        if scene.pdm_closed_states.shape[0] == 0:
            states, times = plan_pdm_closed_v2(scene)
            scene = replace(scene, pdm_closed_states=states, pdm_closed_times_s=times)
            scene.save(self.scenes.path_of(scene.log_name, token))
        return scene

    def build(self, tokens: Sequence[str]) -> dict[str, str | None]:
        """Make sure every token's complete scene is stored (``harness.navsim_eval.build_metric_cache``'s
        protocol); token -> None (ok) or its error. PDM-Closed plans ``PLAN_CHUNK`` scenes at a time."""
        out: dict[str, str | None] = {}
        todo: list[ScoringScene] = []
        for t in tokens:
            try:
                scene = self.scenes.get(t)
            except (LeadBenchError, ValueError) as exc:
                out[t] = f"{type(exc).__name__}: {exc}"
                continue
            out[t] = None
            if scene.pdm_closed_states.shape[0] == 0:
                todo.append(scene)
        for lo in range(0, len(todo), self.PLAN_CHUNK):
            chunk = todo[lo : lo + self.PLAN_CHUNK]
            try:
                # v1's batched proposal generation (equal to plan_pdm_closed_v2_batch, ~2x cheaper)
                planned = pdm_closed_v2.plan_pdm_closed_v2_batch(chunk)
            except (LeadBenchError, ValueError):
                planned = None  # plan one by one to name the failing scene
            for i, scene in enumerate(chunk):
                try:
                    states, times = planned[i] if planned is not None else plan_pdm_closed_v2(scene)
                except (LeadBenchError, ValueError) as exc:
                    out[scene.token] = f"{type(exc).__name__}: {exc}"
                    continue
                done = replace(scene, pdm_closed_states=states, pdm_closed_times_s=times)
                done.save(self.scenes.path_of(scene.log_name, scene.token))
        return out


# --- simulation and scoring ------------------------------------------------------------------------------


def _initial(scene: ScoringScene) -> EgoInitialState:
    return EgoInitialState(scene.ego_pose, scene.ego_velocity_xy, scene.ego_acceleration_xy,
                           np.int64(scene.timestamp_us))


def _closed_reference(scene: ScoringScene) -> F64:
    if scene.pdm_closed_states.shape[0] < 2:
        raise DataError("scoring scene has no PDM-Closed trajectory (metric cache incomplete)", token=scene.token)
    knots_us = scene.timestamp_us + np.round(scene.pdm_closed_times_s * 1e6).astype(np.int64)
    return sample_reference(scene.pdm_closed_states, knots_us, np.int64(scene.timestamp_us))


def simulate_plans(scenes: Sequence[ScoringScene], plans: Sequence[Trajectory], *, with_human: bool = True
                   ) -> tuple[F64, F64, list[F64 | None]]:
    """Simulated PDM-Closed ``(N, 41, 11)``, agent ``(N, 41, 11)`` and human states (None for synthetic
    scenes or ``with_human=False``), all in one LQR + bicycle batch."""
    n = len(scenes)
    if len(plans) != n:
        raise ValueError(f"simulate_plans: {n} scenes but {len(plans)} plans")
    refs: list[F64] = []
    owners: list[int] = []
    human_at: list[int | None] = []
    for i, (scene, plan) in enumerate(zip(scenes, plans, strict=True)):
        init = _initial(scene)
        refs += [_closed_reference(scene), reference_states_from_local_poses(plan.poses, plan.sampling.interval_s,
                                                                             init)]
        owners += [i, i]
        if with_human and scene.human_future_local is not None and int(scene.scene_type) == 0:
            human_at.append(len(refs))
            # The metric cache's human trajectory: the logged poses of the 4 s horizon (8 at 0.5 s).
            human = scene.human_future_local[: HUMAN_POSES]
            refs.append(reference_states_from_local_poses(human, HUMAN_INTERVAL_S, init))
            owners.append(i)
        else:
            human_at.append(None)
    if not refs:
        return np.zeros((0, 41, 11)), np.zeros((0, 41, 11)), []
    init = EgoInitialState.stack([_initial(scenes[i]) for i in owners])
    sim = simulate(np.stack(refs), init)
    idx = np.array([k for k in range(len(owners)) if k == 0 or owners[k] != owners[k - 1]])
    closed, agent = sim[idx], sim[idx + 1]
    human = [None if k is None else sim[k] for k in human_at]
    return closed, agent, human


def score_plans(scenes: Sequence[ScoringScene], plans: Sequence[Trajectory], *,
                config: EPDMSConfig = _EPDMS) -> tuple[list[EPDMSRow], F64]:
    """EPDMS rows (EC unset) and the agent's simulated states ``(N, 41, 11)`` of plans on their scenes."""
    if not scenes:
        return [], np.zeros((0, 41, 11))
    closed, agent, human = simulate_plans(scenes, plans, with_human=config.human_penalty_filter)
    rows = score_rows(scenes, closed, agent, human_states=human, config=config)
    return rows, agent


def finish_one_stage(rows: Sequence[EPDMSRow], states: Sequence[F64], scenes_meta: Sequence[tuple[str, int, bool]]
                     ) -> list[EPDMSRow]:
    """EC for the one-stage evaluation: each ORIGINAL token linked to its predecessor (same log, start within
    0.55 s). ``scenes_meta``: per row (log name, timestamp µs, is original)."""
    preds = one_stage_predecessors([r.token for r in rows], [m[0] for m in scenes_meta],
                                   [m[1] for m in scenes_meta], [m[2] for m in scenes_meta])
    return with_two_frame_comfort(rows, states, [m[1] for m in scenes_meta], preds)


def row_dict(row: EPDMSRow, config: EPDMSConfig = _EPDMS) -> dict[str, Any]:
    """A row for the results tables: NAVSIM v2's columns plus what resuming needs."""
    out: dict[str, Any] = {"token": row.token, "valid": True}
    out.update({c: float(getattr(row, c)) for c in EPDMS_COLUMNS[:-1]})
    out["score"] = float(final_score([row], config)[0])
    out["multiplicative_metrics_prod"] = row.multiplicative_metrics_prod
    out["weighted_metrics"] = list(row.weighted_metrics)
    out["human_filtered"] = ",".join(row.filtered)
    return out


def row_from_dict(d: dict[str, Any]) -> EPDMSRow:
    """Inverse of ``row_dict`` (EC as stored)."""
    filtered = tuple(c for c in str(d.get("human_filtered") or "").split(",") if c)
    return EPDMSRow(token=str(d["token"]), **{c: float(d[c]) for c in EPDMS_COLUMNS[:8]},
                    multiplicative_metrics_prod=float(d["multiplicative_metrics_prod"]),
                    weighted_metrics=tuple(float(v) for v in d["weighted_metrics"]),
                    two_frame_extended_comfort=float(d.get("two_frame_extended_comfort", float("nan"))),
                    filtered=filtered, human_filter_applied=bool(filtered))
