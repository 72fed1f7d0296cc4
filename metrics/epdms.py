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

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import shapely

from harness.map_query import MapLayer
from harness.scoring_scene import AGENT_TYPES, ObjectTimeline, ScoringScene
from metrics.epdms_pairing import ec_overlap_steps, one_stage_predecessors, with_two_frame_comfort  # noqa: F401
from metrics.epdms_rows import (  # noqa: F401  (re-exported: the public EPDMS API lives here)
    EPDMS_COLUMNS,
    FILTERED_COLUMNS,
    HISTORY_COMFORT,
    LANE_KEEPING,
    NUM_STATES,
    PROGRESS,
    TTC,
    TWO_FRAME_EXTENDED_COMFORT,
    EPDMSConfig,
    EPDMSRow,
    EPDMSScores,
    apply_human_filter,
    final_score,
)
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
from metrics.pdm.state import STATE_SIZE
from metrics.pdm_scoring.collisions import (
    ContactFinder,
    ObjectBatch,
    no_at_fault_collisions,
    time_to_collision,
)
from metrics.pdm_scoring.ego_areas import EgoAreas, MapPolygons, compute_ego_areas
from metrics.pdm_scoring.geometry import CENTER, X, Y, ego_coords
from metrics.traffic_agents import log_replay_objects

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
#: NAVSIM main's ``PDMScorerConfig`` defaults.
DEFAULT_CONFIG = EPDMSConfig()

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
    "red_lights_of",
    "scene_history_states",
    "score_batch",
    "score_proposals",
    "two_frame_extended_comfort",
]

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
    config: EPDMSConfig = DEFAULT_CONFIG,
) -> EPDMSScores:
    """Scores the simulated proposals of one scene, as NAVSIM ``main``'s ``PDMScorer.score_proposals``.

    Args:
        scene: the token's scoring scene (map, route, centerline), global frame.
        states: ``(P, 41, 11)`` simulated rear-axle states, global frame.
        objects: the traffic policy's timeline (>= 41 steps); ``log_replay_objects(scene)`` when None.
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
    config: EPDMSConfig = DEFAULT_CONFIG,
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
    obj = log_replay_objects(scene) if objects is None else objects
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
    """Arc length gained along the centerline by the box centre from t = 0 to t = 4 s, clipped at 0.

    Each distinct (scene, point) is projected once (a scene's proposals share their t = 0 state; GEOS's
    projection walks the whole, often long, centerline): the same values as projecting every row."""
    ends = np.stack([centers[:, 0], centers[:, -1]], axis=1).reshape(-1, 2)
    scene = np.repeat(row_scene, 2)
    keys = np.column_stack([scene.astype(np.int64), np.ascontiguousarray(ends).view(np.int64)])
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    with np.errstate(invalid="ignore"):
        proj = shapely.line_locate_point(lines[scene[first]], shapely.points(ends[first]))
    proj = proj[inverse.reshape(-1)].reshape(-1, 2)
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
    config: EPDMSConfig = DEFAULT_CONFIG,
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
        objects: per scene the traffic for the agent (None: ``log_replay_objects``, non-reactive).
        human_objects: per scene the traffic for the human (None: the same as ``objects``).
        red_lights: per scene (None: ``red_lights_of``).
        histories: per scene HC's history states (None for a scene: HC = 1); None: ``scene_history_states``.
        config: scorer configuration.
    """
    n = len(scenes)
    closed = np.asarray(pdm_closed_states, dtype=np.float64).reshape(n, NUM_STATES, STATE_SIZE)
    agent = np.asarray(agent_states, dtype=np.float64).reshape(n, NUM_STATES, STATE_SIZE)
    objs = [None] * n if objects is None else list(objects)
    objs = [log_replay_objects(s) if o is None else o for s, o in zip(scenes, objs)]
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
