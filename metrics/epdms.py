"""EPDMS v2.2: NAVSIM v2's extended PDM score (specs/navsim.md §6), scorer version "v2.2 post-#151".

Equal to the official ``PDMScorer`` of ``autonomousvision/navsim`` branch ``main`` (v2.2 with the human-filter
fix ``359c7f7``), re-implemented vectorised on the v1.1 building blocks (``metrics.pdm_scoring``):

    score = NC · DAC · DDC · TLC · (5·EP + 5·TTC + 2·LK + 2·HC + 2·EC) / 16

- NC, DAC: as v1.1 (``pdm_scoring.collisions`` / ``ego_areas``) against the traffic policy's 41-step timeline;
- DDC ({0, ½, 1}) is a multiplier, with steps whose box centre is inside an intersection excluded;
- TLC ({0, 1}): the footprint touches a red on-route lane connector (``epdms_scoring.map_metrics``);
- TTC: v1.1's projections, only for ego steps t = 0..31 (the observation spans 4 s);
- EP: raw progress over ``max_k(raw_k · NC·DAC·DDC·TLC_k)`` when that exceeds 5 m, clipped to [0, 1], else 1;
- LK: 20 consecutive non-intersection steps with the centre > 0.5 m from the centerline give 0;
- HC: the v2 comfort checks over the human history states prepended to the simulated ones (1 without
  history);
- EC: two-frame comfort of consecutive frames (``epdms_scoring.comfort``), set after all tokens are scored;
  a row without predecessor drops EC from numerator and denominator (weights sum to 14), as the official
  one-stage script does.

Human filter (``pdm_score.pdm_score_from_interpolated_trajectory``, original scenes only): the logged human
trajectory is simulated and scored alone (no history); every sub-score on which the human scores exactly 0
is set to 1 for the agent, and the multiplier product and the weighted vector are recomputed (the #151 fix).

Inputs are global-frame rear-axle states ``(P, 41, 11)`` in NAVSIM's ``StateIndex`` layout at t = 0..4 s;
index 0 is PDM-Closed and the others agents, all scored alike with EP normalised over them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt
import shapely

from harness.map_query import MapLayer
from harness.scoring_scene import AGENT_TYPES, SCORING_STEP_S, ObjectTimeline, ScoringScene
from metrics.epdms_scoring.comfort import (
    HISTORY_COMFORT_CHECKS,
    history_comfort_checks,
    two_frame_extended_comfort,
)
from metrics.epdms_scoring.history import history_states
from metrics.epdms_scoring.map_metrics import (
    RedLights,
    centerline_deviation,
    driving_direction_v2,
    lane_keeping,
    points_in_polygons,
    traffic_light_compliance,
)
from metrics.pdm.state import PACIFICA, STATE_SIZE
from metrics.pdm_scoring.collisions import (
    ContactFinder,
    ObjectBatch,
    no_at_fault_collisions,
    time_to_collision,
)
from metrics.pdm_scoring.ego_areas import EgoAreas, MapPolygons, compute_ego_areas
from metrics.pdm_scoring.geometry import CENTER, X, Y, box_corners, ego_coords, polygons

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

__all__ = [
    "EPDMS_COLUMNS",
    "FILTERED_COLUMNS",
    "NUM_STATES",
    "EPDMSConfig",
    "EPDMSRow",
    "EPDMSScores",
    "RedLights",
    "apply_human_filter",
    "final_score",
    "non_reactive_objects",
    "red_lights_of",
    "scene_history_states",
    "score_batch",
    "score_proposals",
    "two_frame_extended_comfort",
]

#: Per-token columns of NAVSIM v2's one-stage CSV, in its order.
EPDMS_COLUMNS = (
    "no_at_fault_collisions",
    "drivable_area_compliance",
    "driving_direction_compliance",
    "traffic_light_compliance",
    "ego_progress",
    "time_to_collision_within_bound",
    "lane_keeping",
    "history_comfort",
    "two_frame_extended_comfort",
    "score",
)
#: The sub-scores the human filter may overwrite (``PDMResults`` minus the aggregate columns).
FILTERED_COLUMNS = EPDMS_COLUMNS[:8]
#: Scored states per proposal (t = 0..4 s at 10 Hz).
NUM_STATES = 41
#: Index of each weighted metric (official ``WeightedMetricIndex``).
PROGRESS, TTC, LANE_KEEPING, HISTORY_COMFORT, TWO_FRAME_EXTENDED_COMFORT = range(5)


@dataclass(frozen=True)
class EPDMSConfig:
    """The v2.2 scorer's weights and thresholds (``pdm_scorer.yaml`` / ``PDMScorerConfig``); official defaults.

    Attributes:
        progress_weight, ttc_weight, lane_keeping_weight, history_comfort_weight,
            two_frame_extended_comfort_weight: weighted-mean weights (5, 5, 2, 2, 2).
        driving_direction_horizon_s, driving_direction_compliance_threshold_m,
            driving_direction_violation_threshold_m: DDC (1.0 s, 2 m, 6 m).
        stopped_speed_threshold_mps: TTC skips contacts while the ego is slower (5e-3 m/s).
        future_collision_horizon_window_s: TTC projections ``arange(0, int(window · 10), 3)`` steps.
        progress_distance_threshold_m: EP's guard (5 m).
        lane_keeping_deviation_limit_m, lane_keeping_horizon_window_s: LK (0.5 m for 2.0 s).
        human_penalty_filter: the YAML's ``True`` (the dataclass default of the official code is off).
        collision_stopped_speed_mps, ahead_angle_deg, behind_angle_deg: constants nuPlan hard-codes.
        step_s: state spacing.
    """

    progress_weight: float = 5.0
    ttc_weight: float = 5.0
    lane_keeping_weight: float = 2.0
    history_comfort_weight: float = 2.0
    two_frame_extended_comfort_weight: float = 2.0
    driving_direction_horizon_s: float = 1.0
    driving_direction_compliance_threshold_m: float = 2.0
    driving_direction_violation_threshold_m: float = 6.0
    stopped_speed_threshold_mps: float = 5e-3
    future_collision_horizon_window_s: float = 1.0
    progress_distance_threshold_m: float = 5.0
    lane_keeping_deviation_limit_m: float = 0.5
    lane_keeping_horizon_window_s: float = 2.0
    human_penalty_filter: bool = True
    collision_stopped_speed_mps: float = 5e-2
    ahead_angle_deg: float = 30.0
    behind_angle_deg: float = 150.0
    step_s: float = SCORING_STEP_S

    def __post_init__(self) -> None:
        w = self.weights
        if np.any(w < 0) or not np.all(np.isfinite(w)) or w[:4].sum() <= 0:
            raise ValueError(f"EPDMSConfig: weights must be finite, >= 0 and not all 0, got {w.tolist()}")
        if not self.step_s > 0:
            raise ValueError(f"EPDMSConfig.step_s must be > 0, got {self.step_s}")

    @property
    def weights(self) -> F64:
        """``(5,)`` in ``WeightedMetricIndex`` order: progress, TTC, lane keeping, history comfort, EC."""
        return np.array([self.progress_weight, self.ttc_weight, self.lane_keeping_weight,
                         self.history_comfort_weight, self.two_frame_extended_comfort_weight], dtype=np.float64)

    @property
    def ttc_offsets_steps(self) -> tuple[int, ...]:
        return tuple(int(k) for k in np.arange(0, int(self.future_collision_horizon_window_s * 10), 3))

    @property
    def ttc_last_step(self) -> int:
        """Last ego step TTC checks: ``num_poses - max(offsets)`` = 31."""
        return NUM_STATES - 1 - max(self.ttc_offsets_steps)


@dataclass(frozen=True)
class EPDMSScores:
    """EPDMS sub-scores and diagnostics of the P proposals of one scene (all ``(P,)`` unless noted).

    Attributes:
        no_at_fault_collisions, drivable_area_compliance, driving_direction_compliance,
            traffic_light_compliance: the multipliers.
        ego_progress, time_to_collision_within_bound, lane_keeping, history_comfort: the weighted metrics
            (EP normalised over the P proposals).
        progress_raw: centre progress along the centerline, metres, >= 0.
        multiplicative_metrics_prod: NC·DAC·DDC·TLC.
        weighted_metrics: ``(P, 5)`` in ``WeightedMetricIndex`` order; the EC entry is 0 until set.
        pdm_score: the score without EC (weights 5, 5, 2, 2 over 14): PDM-Closed ranks its proposals by it.
        collision_step, ttc_step, red_light_step, lane_keeping_step, off_road_step: first infraction step
            (0.1 s each), -1 if none.
        oncoming_progress_m: DDC's largest 1-s window of progress against traffic.
        comfort_checks: ``(P, 6)`` HC's checks (all True without history), columns ``HISTORY_COMFORT_CHECKS``.
    """

    no_at_fault_collisions: F64
    drivable_area_compliance: F64
    driving_direction_compliance: F64
    traffic_light_compliance: F64
    ego_progress: F64
    time_to_collision_within_bound: F64
    lane_keeping: F64
    history_comfort: F64
    progress_raw: F64
    multiplicative_metrics_prod: F64
    weighted_metrics: F64
    pdm_score: F64
    collision_step: I64
    ttc_step: I64
    red_light_step: I64
    lane_keeping_step: I64
    off_road_step: I64
    oncoming_progress_m: F64
    comfort_checks: npt.NDArray[np.bool_]

    def __len__(self) -> int:
        return len(self.pdm_score)

    def row(self, proposal: int, token: str = "") -> EPDMSRow:
        """One proposal's result row (EC not yet set)."""
        return EPDMSRow(
            token=token,
            **{c: float(getattr(self, c)[proposal]) for c in FILTERED_COLUMNS},
            multiplicative_metrics_prod=float(self.multiplicative_metrics_prod[proposal]),
            weighted_metrics=tuple(float(v) for v in self.weighted_metrics[proposal]),
        )


@dataclass(frozen=True)
class EPDMSRow:
    """One token's EPDMS result, as the official per-token row before and after EC and the human filter.

    Attributes:
        token: the scene token.
        no_at_fault_collisions ... history_comfort: the sub-scores (after the human filter, if applied).
        multiplicative_metrics_prod: NC·DAC·DDC·TLC (recomputed by the filter when it changed a column).
        weighted_metrics: ``(EP, TTC, LK, HC, EC-slot)``; the final score takes EC from
            ``two_frame_extended_comfort``.
        two_frame_extended_comfort: EC in {0, 1}, NaN without a predecessor frame (dropped from the mean).
        filtered: the columns the human filter set to 1.
        human_filter_applied: the human filter ran on this row (original scene, filter on).
    """

    token: str
    no_at_fault_collisions: float
    drivable_area_compliance: float
    driving_direction_compliance: float
    traffic_light_compliance: float
    ego_progress: float
    time_to_collision_within_bound: float
    lane_keeping: float
    history_comfort: float
    multiplicative_metrics_prod: float
    weighted_metrics: tuple[float, ...]
    two_frame_extended_comfort: float = math.nan
    filtered: tuple[str, ...] = ()
    human_filter_applied: bool = False

    def __post_init__(self) -> None:
        if len(self.weighted_metrics) != 5:
            raise ValueError(f"EPDMSRow[{self.token}].weighted_metrics: expected 5 entries, "
                             f"got {len(self.weighted_metrics)}")

    def score(self, config: EPDMSConfig = EPDMSConfig()) -> float:
        """The final EPDMS of this row (``compute_final_scores``)."""
        return float(final_score([self], config)[0])

    def as_dict(self, config: EPDMSConfig = EPDMSConfig()) -> dict[str, float | str]:
        """``token`` plus ``EPDMS_COLUMNS`` (NAVSIM v2's per-token CSV columns)."""
        out: dict[str, float | str] = {"token": self.token}
        out.update({c: float(getattr(self, c)) for c in EPDMS_COLUMNS[:-1]})
        out["score"] = self.score(config)
        return out


def final_score(rows: Sequence[EPDMSRow], config: EPDMSConfig = EPDMSConfig()) -> F64:
    """Per-row EPDMS with EC injected (``run_pdm_score_one_stage.compute_final_scores``).

    A NaN EC zeroes both its value and its weight, so such a row is averaged over the other four weights.
    """
    if not rows:
        return np.zeros(0)
    ec = np.array([r.two_frame_extended_comfort for r in rows], dtype=np.float64)
    wm = np.array([r.weighted_metrics for r in rows], dtype=np.float64)
    wa = np.tile(config.weights, (len(rows), 1))
    missing = np.isnan(ec)
    wm[missing, TWO_FRAME_EXTENDED_COMFORT] = 0.0
    wa[missing, TWO_FRAME_EXTENDED_COMFORT] = 0.0
    wm[~missing, TWO_FRAME_EXTENDED_COMFORT] = ec[~missing]
    total = wa.sum(axis=1)
    total[total == 0.0] = np.nan
    prod = np.array([r.multiplicative_metrics_prod for r in rows], dtype=np.float64)
    return prod * ((wm * wa).sum(axis=1) / total)


def apply_human_filter(agent: EPDMSRow, human: EPDMSRow) -> EPDMSRow:
    """The fixed human filter: sub-scores on which the human scores exactly 0 become 1 for the agent.

    When any column changed, the multiplier product NC·DAC·DDC·TLC and the weighted entries EP, TTC, LK and
    HC are recomputed from the filtered columns (NAVSIM commit ``359c7f7``, issue #151). EC is untouched.
    Partial values (0.5) never trigger. Apply it to original scenes only.
    """
    changed = tuple(c for c in FILTERED_COLUMNS if getattr(human, c) == 0)
    if not changed:
        return replace(agent, human_filter_applied=True)
    values = {c: 1.0 for c in changed}
    row = replace(agent, **values, filtered=changed, human_filter_applied=True)
    prod = (row.no_at_fault_collisions * row.drivable_area_compliance * row.driving_direction_compliance
            * row.traffic_light_compliance)
    wm = list(row.weighted_metrics)
    wm[PROGRESS] = row.ego_progress
    wm[TTC] = row.time_to_collision_within_bound
    wm[LANE_KEEPING] = row.lane_keeping
    wm[HISTORY_COMFORT] = row.history_comfort
    return replace(row, multiplicative_metrics_prod=prod, weighted_metrics=tuple(wm))


# --- what a scene provides -------------------------------------------------------------------------------------


def red_lights_of(scene: ScoringScene, num_steps: int = NUM_STATES) -> RedLights:
    """The metric cache's red lights: connectors of the log's (uncorrected) route, red at each step.

    NAVSIM ``main`` builds them in ``MetricCacheProcessor`` from the route roadblocks' interior lanes and the
    keyframes' light status held for 0.5 s; lead-bench's scoring scene stores both.
    """
    if scene.num_steps < num_steps:
        raise ValueError(f"scene {scene.token}: {scene.num_steps} steps of red lights, EPDMS needs {num_steps}")
    route = scene.log_route_lane_ids if scene.log_route_lane_ids is not None else scene.route_lane_ids
    on_route = np.isin(scene.light_connector_ids, np.asarray(route))
    return RedLights(np.asarray(scene.light_polygons, dtype=object)[on_route],
                     scene.red_light_mask[:num_steps][:, on_route])


def non_reactive_objects(scene: ScoringScene, num_steps: int = NUM_STATES) -> ObjectTimeline:
    """NAVSIM's ``LogReplayTrafficAgents``: the logged objects of steps 0..40, minus every track whose box
    intersects the ego's footprint at t = 0 (removed from all steps).

    The ego footprint is nuPlan's ``car_footprint.oriented_box`` of the initial state: centred 1.461 m ahead
    of the logged rear axle, Pacifica length and width.
    """
    obj = scene.objects
    if obj.num_steps < num_steps:
        raise ValueError(f"scene {scene.token}: {obj.num_steps} object steps, EPDMS needs {num_steps}")
    keep = np.ones(len(obj.tokens), dtype=bool)
    at0 = np.flatnonzero(obj.present[0])
    if len(at0):
        x, y, h = (float(v) for v in scene.ego_pose)
        d = PACIFICA.rear_axle_to_center
        center = np.array([[x + d * np.cos(h), y + d * np.sin(h), h]])
        ego_poly = polygons(box_corners(center, np.array([PACIFICA.length / 2.0]),
                                        np.array([PACIFICA.width / 2.0])))[0]
        size = obj.size_lwh[at0].astype(np.float64)
        boxes = polygons(box_corners(obj.poses[0, at0].astype(np.float64), size[:, 0] / 2.0, size[:, 1] / 2.0))
        keep[at0[shapely.intersects(boxes, ego_poly)]] = False
    n = num_steps
    return ObjectTimeline(obj.tokens[keep], obj.types[keep], obj.size_lwh[keep], obj.first_velocity_xy[keep],
                          obj.present[:n][:, keep], obj.poses[:n][:, keep], obj.velocity_xy[:n][:, keep])


def scene_history_states(scene: ScoringScene) -> F64 | None:
    """HC's history states of a scene (``epdms_scoring.history``); None when the scene has no history."""
    if scene.human_history_global is None or scene.human_history_times_s is None:
        return None
    if scene.human_history_dynamics is None:
        raise ValueError(f"scene {scene.token}: no history dynamics (scoring scene older than v4: rebuild it)")
    times_us = scene.timestamp_us + np.round(np.asarray(scene.human_history_times_s) * 1e6).astype(np.int64)
    return history_states(scene.human_history_global, scene.human_history_dynamics, times_us)


# --- scoring ---------------------------------------------------------------------------------------------------


def score_proposals(
    scene: ScoringScene,
    states: npt.ArrayLike,
    *,
    objects: ObjectTimeline | None = None,
    red_lights: RedLights | None = None,
    history: F64 | None = None,
    config: EPDMSConfig = EPDMSConfig(),
) -> EPDMSScores:
    """Scores the simulated proposals of one scene, as NAVSIM ``main``'s ``PDMScorer.score_proposals``.

    Args:
        scene: the token's scoring scene (map, route, centerline), global frame.
        states: ``(P, 41, 11)`` simulated rear-axle states, global frame.
        objects: the traffic policy's timeline (>= 41 steps); ``non_reactive_objects(scene)`` when None.
        red_lights: red-light polygons per step; ``red_lights_of(scene)`` when None.
        history: ``(H, 11)`` human history states prepended for HC (``scene_history_states``); None: HC = 1.
        config: weights and thresholds.
    """
    return score_batch([scene], [states], objects=[objects], red_lights=[red_lights], histories=[history],
                       config=config)[0]


@dataclass(frozen=True)
class _Inputs:
    scenes: list[ScoringScene]
    states: list[F64]
    objects: list[ObjectTimeline]
    lights: list[RedLights]
    histories: list[F64 | None] = field(default_factory=list)


def score_batch(
    scenes: Sequence[ScoringScene],
    states: Sequence[npt.ArrayLike],
    *,
    objects: Sequence[ObjectTimeline | None] | None = None,
    red_lights: Sequence[RedLights | None] | None = None,
    histories: Sequence[F64 | None] | None = None,
    config: EPDMSConfig = EPDMSConfig(),
    chunk_scenes: int = 64,
) -> list[EPDMSScores]:
    """``score_proposals`` for many scenes, the geometry batched across scenes.

    Args:
        scenes: the scenes; states: per scene ``(P_i, 41, 11)``.
        objects, red_lights, histories: per scene, or None for the defaults of ``score_proposals``
            (histories None: no history, HC = 1).
        config: weights and thresholds; chunk_scenes: scenes scored together.
    """
    n = len(scenes)
    objs = [None] * n if objects is None else list(objects)
    lts = [None] * n if red_lights is None else list(red_lights)
    hist = [None] * n if histories is None else list(histories)
    if not (len(states) == len(objs) == len(lts) == len(hist) == n):
        raise ValueError(f"score_batch: {n} scenes but {len(states)} states, {len(objs)} timelines, "
                         f"{len(lts)} light sets, {len(hist)} histories")
    out: list[EPDMSScores] = []
    for lo in range(0, n, max(1, chunk_scenes)):
        sl = slice(lo, lo + max(1, chunk_scenes))
        chunk = scenes[sl]
        inp = _Inputs(
            scenes=list(chunk),
            states=[_checked_states(s, st) for s, st in zip(chunk, states[sl])],
            objects=[_checked_objects(s, o) for s, o in zip(chunk, objs[sl])],
            lights=[red_lights_of(s) if lt is None else lt for s, lt in zip(chunk, lts[sl])],
            histories=list(hist[sl]),
        )
        out.extend(_score_chunk(inp, config))
    return out


_LANE_TYPES = (int(MapLayer.LANE), int(MapLayer.LANE_CONNECTOR))
_DRIVABLE_TYPES = (int(MapLayer.ROADBLOCK), int(MapLayer.INTERSECTION), int(MapLayer.CARPARK_AREA))
_AGENT_VALUES = np.array(sorted(int(t) for t in AGENT_TYPES))


def _checked_states(scene: ScoringScene, states: npt.ArrayLike) -> F64:
    arr = np.asarray(states, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[1:] != (NUM_STATES, STATE_SIZE) or arr.shape[0] < 1:
        raise ValueError(f"scene {scene.token}: states must be (P >= 1, {NUM_STATES}, {STATE_SIZE}), "
                         f"got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"scene {scene.token}: states must be finite")
    return arr


def _checked_objects(scene: ScoringScene, objects: ObjectTimeline | None) -> ObjectTimeline:
    obj = non_reactive_objects(scene) if objects is None else objects
    if obj.num_steps < NUM_STATES:
        raise ValueError(f"scene {scene.token}: the object timeline has {obj.num_steps} steps, EPDMS needs "
                         f"{NUM_STATES}")
    if len(set(obj.tokens.tolist())) != len(obj.tokens):
        raise ValueError(f"scene {scene.token}: object tokens must be unique")
    return obj


def _object_batch(timelines: list[ObjectTimeline], cfg: EPDMSConfig) -> ObjectBatch:
    n_obj = np.array([len(o.tokens) for o in timelines])
    types = np.concatenate([o.types for o in timelines]).astype(np.int64)
    first_speed = np.hypot(*np.concatenate([o.first_velocity_xy for o in timelines]).reshape(-1, 2).T)
    is_agent = np.isin(types, _AGENT_VALUES)
    size = np.concatenate([o.size_lwh for o in timelines]).reshape(-1, 3)
    return ObjectBatch(
        scene=np.repeat(np.arange(len(timelines)), n_obj),
        is_agent=is_agent,
        track_stopped=~is_agent | (first_speed <= cfg.collision_stopped_speed_mps),
        present=np.concatenate([o.present[:NUM_STATES] for o in timelines], axis=1),
        poses=np.concatenate([o.poses[:NUM_STATES] for o in timelines], axis=1).astype(np.float64),
        half_length=size[:, 0] / 2.0,
        half_width=size[:, 1] / 2.0,
    )


def _map_polygons(scenes: list[ScoringScene]) -> MapPolygons:
    n_poly = np.array([len(s.drivable_polygons) for s in scenes])
    geoms = np.concatenate([np.asarray(s.drivable_polygons, dtype=object) for s in scenes])
    ptypes = np.concatenate([s.drivable_types for s in scenes]).astype(np.int64)
    is_lane = np.isin(ptypes, _LANE_TYPES)
    on_route = np.concatenate([np.isin(s.drivable_ids, s.route_lane_ids) for s in scenes]).astype(bool)
    return MapPolygons(
        geoms=geoms,
        scene=np.repeat(np.arange(len(scenes)), n_poly),
        bounds=shapely.bounds(geoms).reshape(-1, 4),
        is_lane=is_lane,
        is_drivable=np.isin(ptypes, _DRIVABLE_TYPES),
        is_route_lane=is_lane & on_route,
        is_intersection=ptypes == int(MapLayer.INTERSECTION),
    )


def _score_chunk(inp: _Inputs, cfg: EPDMSConfig) -> list[EPDMSScores]:
    scenes = inp.scenes
    n_props = np.array([len(s) for s in inp.states])
    row_scene = np.repeat(np.arange(len(scenes)), n_props)
    states = np.concatenate(inp.states)
    objs = _object_batch(inp.objects, cfg)
    polys = _map_polygons(scenes)

    coords = ego_coords(states)  # (R, 41, 5, 2)
    centers = coords[:, :, CENTER]
    areas = compute_ego_areas(coords, states[..., [X, Y]], row_scene, polys)

    # NC over t = 0..40 (the k = 0 contacts).
    nc_finder = ContactFinder(states, coords[:, :, :4], centers, row_scene, objs, (0,), cfg.step_s)
    nc = no_at_fault_collisions(nc_finder, areas, stopped_speed_mps=cfg.collision_stopped_speed_mps,
                                behind_deg=cfg.behind_angle_deg)
    # TTC over ego steps t = 0..31 with projections t + k <= 40.
    last = cfg.ttc_last_step + 1
    ttc_finder = ContactFinder(states[:, :last], coords[:, :last, :4], centers[:, :last], row_scene, objs,
                               cfg.ttc_offsets_steps, cfg.step_s)
    ttc_areas = EgoAreas(areas.multiple_lanes[:, :last], areas.non_drivable[:, :last], areas.oncoming[:, :last],
                         areas.rear_axle_in_intersection[:, :last])
    ttc = time_to_collision(ttc_finder, ttc_areas, stopped_speed_mps=cfg.stopped_speed_threshold_mps,
                            ahead_deg=cfg.ahead_angle_deg, behind_deg=cfg.behind_angle_deg)

    dac = np.where(areas.non_drivable.any(axis=1), 0.0, 1.0)
    tlc, red_step = traffic_light_compliance(coords[:, :, :4], row_scene, inp.lights)
    center_in_inter = points_in_polygons(centers, row_scene, polys.geoms[polys.is_intersection],
                                         polys.scene[polys.is_intersection])
    ddc, oncoming_m = driving_direction_v2(
        centers, areas.oncoming, center_in_inter,
        horizon_steps=int(cfg.driving_direction_horizon_s / cfg.step_s),
        compliance_threshold_m=cfg.driving_direction_compliance_threshold_m,
        violation_threshold_m=cfg.driving_direction_violation_threshold_m)
    lines = _centerlines(scenes)
    deviation = centerline_deviation(centers, row_scene, lines, cfg.lane_keeping_deviation_limit_m)
    lk, lk_step = lane_keeping(deviation, center_in_inter, limit_m=cfg.lane_keeping_deviation_limit_m,
                               steps_required=int(np.ceil(cfg.lane_keeping_horizon_window_s / cfg.step_s)))
    progress_raw = _progress(lines, centers, row_scene)
    checks, hc = _history_comfort(states, row_scene, inp.histories, cfg)

    multi = np.stack([nc.score, dac, tlc, ddc])  # official MultiMetricIndex order
    prod = multi.prod(axis=0)
    ep = _normalised_progress(progress_raw, prod, row_scene, len(scenes), cfg)
    weighted = np.zeros((5, len(states)))
    weighted[PROGRESS], weighted[TTC], weighted[LANE_KEEPING], weighted[HISTORY_COMFORT] = ep, ttc.score, lk, hc
    w = cfg.weights
    mask = np.ones(5, dtype=bool)
    mask[TWO_FRAME_EXTENDED_COMFORT] = False
    pdm_score = prod * ((weighted[mask] * w[mask, None]).sum(axis=0) / w[mask].sum())
    off_road = np.where(areas.non_drivable.any(axis=1), np.argmax(areas.non_drivable, axis=1), -1)

    out = []
    bounds = np.concatenate([[0], np.cumsum(n_props)])
    for i in range(len(scenes)):
        sl = slice(bounds[i], bounds[i + 1])
        out.append(EPDMSScores(
            no_at_fault_collisions=nc.score[sl], drivable_area_compliance=dac[sl],
            driving_direction_compliance=ddc[sl], traffic_light_compliance=tlc[sl], ego_progress=ep[sl],
            time_to_collision_within_bound=ttc.score[sl], lane_keeping=lk[sl], history_comfort=hc[sl],
            progress_raw=progress_raw[sl], multiplicative_metrics_prod=prod[sl],
            weighted_metrics=weighted[:, sl].T.copy(), pdm_score=pdm_score[sl], collision_step=nc.step[sl],
            ttc_step=ttc.step[sl], red_light_step=red_step[sl], lane_keeping_step=lk_step[sl],
            off_road_step=off_road[sl], oncoming_progress_m=oncoming_m[sl], comfort_checks=checks[sl],
        ))
    return out


def _centerlines(scenes: list[ScoringScene]) -> npt.NDArray[np.object_]:
    lens = np.array([len(s.centerline) for s in scenes])
    if np.any(lens < 2):
        bad = [s.token for s, n in zip(scenes, lens) if n < 2]
        raise ValueError(f"scenes {bad}: the centerline needs at least 2 points")
    xy = np.concatenate([s.centerline[:, :2] for s in scenes]).astype(np.float64)
    return shapely.linestrings(xy, indices=np.repeat(np.arange(len(scenes)), lens))


def _progress(lines: npt.NDArray[np.object_], centers: F64, row_scene: I64) -> F64:
    """Arc length gained along the centerline by the box centre from t = 0 to t = 4 s, clipped at 0."""
    pts = shapely.points(np.stack([centers[:, 0], centers[:, -1]], axis=1))
    with np.errstate(invalid="ignore"):
        proj = shapely.line_locate_point(lines[row_scene][:, None], pts)
    return np.clip(proj[:, 1] - proj[:, 0], a_min=0, a_max=None)


def _normalised_progress(raw: F64, prod: F64, row_scene: I64, n_scenes: int, cfg: EPDMSConfig) -> F64:
    """v2 EP: unmasked raw progress over the best masked progress when that exceeds the guard, else 1."""
    best = np.full(n_scenes, -np.inf)
    np.maximum.at(best, row_scene, raw * prod)
    best_row = best[row_scene]
    with np.errstate(invalid="ignore", divide="ignore"):
        normalised = np.clip(raw / best_row, 0.0, 1.0)
    return np.where(best_row > cfg.progress_distance_threshold_m, normalised, 1.0)


def _history_comfort(states: F64, row_scene: I64, histories: list[F64 | None], cfg: EPDMSConfig
                     ) -> tuple[npt.NDArray[np.bool_], F64]:
    checks = np.ones((len(states), len(HISTORY_COMFORT_CHECKS)), dtype=bool)
    by_len: dict[int, list[int]] = {}
    for i, h in enumerate(histories):
        if h is not None:
            by_len.setdefault(len(h), []).append(i)
    for n_hist, scene_ids in by_len.items():
        rows = np.flatnonzero(np.isin(row_scene, scene_ids))
        padded = np.zeros((len(rows), n_hist + NUM_STATES, STATE_SIZE))
        for i in scene_ids:
            padded[row_scene[rows] == i, :n_hist] = np.asarray(histories[i], dtype=np.float64)
        padded[:, n_hist:] = states[rows]
        time_s = np.arange(n_hist + NUM_STATES).astype(np.float64) * cfg.step_s
        checks[rows] = history_comfort_checks(padded, time_s)
    return checks, checks.all(axis=1).astype(np.float64)


# --- per-token rows: agent vs PDM-Closed, the human filter, EC -------------------------------------------------


def score_rows(
    scenes: Sequence[ScoringScene],
    pdm_closed_states: npt.ArrayLike,
    agent_states: npt.ArrayLike,
    *,
    human_states: Sequence[F64 | None] | None = None,
    objects: Sequence[ObjectTimeline | None] | None = None,
    human_objects: Sequence[ObjectTimeline | None] | None = None,
    red_lights: Sequence[RedLights | None] | None = None,
    histories: Sequence[F64 | None] | None = None,
    config: EPDMSConfig = EPDMSConfig(),
) -> list[EPDMSRow]:
    """Per-token EPDMS rows (EC unset), as ``pdm_score_from_interpolated_trajectory`` of NAVSIM ``main``.

    For each scene, ``[PDM-Closed, agent]`` are scored together against the agent's traffic (``objects``)
    with the human history for HC; the agent's row is kept. With ``config.human_penalty_filter`` and an
    ORIGINAL scene whose ``human_states`` are given, the human is scored alone (against ``human_objects``,
    no history) and the filter applied.

    Args:
        scenes: N scoring scenes.
        pdm_closed_states, agent_states: ``(N, 41, 11)`` simulated states (``metrics.pdm_simulation``).
        human_states: per scene the simulated human trajectory ``(41, 11)`` or None (no filter).
        objects: per scene the traffic for the agent (None: ``non_reactive_objects``).
        human_objects: per scene the traffic for the human (None: the same as ``objects``).
        red_lights: per scene (None: ``red_lights_of``).
        histories: per scene HC's history states (None for a scene: HC = 1); None: ``scene_history_states``.
        config: scorer configuration.
    """
    n = len(scenes)
    closed = np.asarray(pdm_closed_states, dtype=np.float64).reshape(n, NUM_STATES, STATE_SIZE)
    agent = np.asarray(agent_states, dtype=np.float64).reshape(n, NUM_STATES, STATE_SIZE)
    objs = [None] * n if objects is None else list(objects)
    objs = [non_reactive_objects(s) if o is None else o for s, o in zip(scenes, objs)]
    lts = [None] * n if red_lights is None else list(red_lights)
    lts = [red_lights_of(s) if lt is None else lt for s, lt in zip(scenes, lts)]
    hist = [scene_history_states(s) for s in scenes] if histories is None else list(histories)
    scores = score_batch(list(scenes), list(np.stack([closed, agent], axis=1)), objects=objs, red_lights=lts,
                         histories=hist, config=config)
    rows = [sc.row(1, s.token) for s, sc in zip(scenes, scores)]
    if not config.human_penalty_filter or human_states is None:
        return rows
    hum = list(human_states)
    hobj = objs if human_objects is None else [o if h is None else h for o, h in zip(objs, human_objects)]
    todo = [i for i, s in enumerate(scenes) if hum[i] is not None and int(s.scene_type) == 0]
    if todo:
        human_scores = score_batch(
            [scenes[i] for i in todo], [np.asarray(hum[i], dtype=np.float64)[None] for i in todo],
            objects=[hobj[i] for i in todo], red_lights=[lts[i] for i in todo], histories=[None] * len(todo),
            config=config)
        for i, hs in zip(todo, human_scores):
            rows[i] = apply_human_filter(rows[i], hs.row(0, scenes[i].token))
    return rows


def one_stage_predecessors(
    tokens: Sequence[str],
    log_names: Sequence[str],
    timestamps_us: Sequence[int],
    original: Sequence[bool],
    *,
    max_gap_s: float = 0.55,
) -> dict[str, str]:
    """``infer_start_adjacent_mapping`` of NAVSIM's one-stage script: token -> its predecessor token.

    Per log, the ORIGINAL scored tokens are sorted by start time; each is linked to the one before it when
    their start times differ by at most ``max_gap_s`` (start times in seconds, ``timestamp_us · 1e-6``).
    Pass only tokens that were scored (the official script drops failed rows, which have no log name).
    """
    groups: dict[str, list[tuple[float, str]]] = {}
    for tok, log_name, ts, orig in zip(tokens, log_names, timestamps_us, original, strict=True):
        if orig:
            groups.setdefault(str(log_name), []).append((int(ts) * 1e-6, str(tok)))
    out: dict[str, str] = {}
    for items in groups.values():
        items.sort(key=lambda x: x[0])
        for (t0, prev), (t1, cur) in zip(items, items[1:]):
            if abs(t1 - t0) <= max_gap_s:
                out[cur] = prev
    return out


def ec_overlap_steps(current_start_us: int, previous_start_us: int, step_s: float = SCORING_STEP_S) -> int | None:
    """``round(Δt / 0.1)`` for ``0 < Δt < 0.55`` s (``SceneAggregator._compute_two_frame_comfort``), else None
    (the official code asserts there; lead-bench leaves such a pair's EC unset)."""
    dt = int(current_start_us) * 1e-6 - int(previous_start_us) * 1e-6
    if not 0 < dt < 0.55:
        return None
    return round(dt / step_s)


def with_two_frame_comfort(
    rows: Sequence[EPDMSRow],
    states: Sequence[F64],
    start_times_us: Sequence[int],
    predecessors: dict[str, str],
    *,
    both_frames: bool = False,
) -> list[EPDMSRow]:
    """Sets EC of every row with a predecessor.

    Args:
        rows: the scored rows; states: their agent's simulated ``(41, 11)`` states; start_times_us: their
            scene timestamps.
        predecessors: ``token -> previous token`` (``one_stage_predecessors``, or a two-stage group's pairs).
        both_frames: also give the previous frame the pair's EC (``SceneAggregator`` in two-stage mode);
            the one-stage script sets it on the later frame only.
    """
    index = {r.token: i for i, r in enumerate(rows)}
    cur_idx, prev_idx, overlaps = [], [], []
    for tok, prev in predecessors.items():
        if tok not in index or prev not in index:
            continue
        ov = ec_overlap_steps(start_times_us[index[tok]], start_times_us[index[prev]])
        if ov is not None:
            cur_idx.append(index[tok])
            prev_idx.append(index[prev])
            overlaps.append(ov)
    out = list(rows)
    for ov in sorted(set(overlaps)):
        sel = [k for k, o in enumerate(overlaps) if o == ov]
        cur = np.stack([np.asarray(states[cur_idx[k]], dtype=np.float64) for k in sel])
        prev = np.stack([np.asarray(states[prev_idx[k]], dtype=np.float64) for k in sel])
        ec = two_frame_extended_comfort(cur, prev, ov).comfortable
        for k, v in zip(sel, ec):
            out[cur_idx[k]] = replace(out[cur_idx[k]], two_frame_extended_comfort=float(v))
            if both_frames:
                out[prev_idx[k]] = replace(out[prev_idx[k]], two_frame_extended_comfort=float(v))
    return out
