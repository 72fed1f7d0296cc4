"""PDMS v1.1: NAVSIM v1's PDM score of simulated ego proposals (specs/navsim.md §4.3, §5).

Equal to the official ``PDMScorer`` of ``autonomousvision/navsim`` branch ``v1.1``
(``navsim/planning/simulation/planner/pdm_planner/scoring/pdm_scorer.py``), re-implemented vectorised:

    score = NC · DAC · (5·TTC + 5·EP + 2·C + 0·DDC) / 12

- NC (no at-fault collision, {0, ½, 1}), TTC ({0, 1}): ``pdm_scoring.collisions``;
- DAC ({0, 1}), DDC ({0, ½, 1}, weight 0), and the ego areas they rest on: ``pdm_scoring.ego_areas``;
- C ({0, 1}): ``pdm_scoring.comfort``;
- EP ([0, 1]): progress of the box centre along the PDM-Closed centerline from t = 0 to t = 4 s, masked by
  NC·DAC and normalised by the best masked progress of all proposals of the call when that exceeds 5 m.

Inputs are global-frame (map frame) rear-axle states, ``(P, 41, 11)`` in NAVSIM's ``StateIndex`` layout
(x, y, heading, velocity_x, velocity_y, acceleration_x, acceleration_y, steering_angle, steering_rate,
angular_velocity, angular_acceleration; velocities and accelerations in the body frame), sampled at
t = 0, 0.1, ..., 4.0 s. As in ``navsim/evaluate/pdm_score.py``, index 0 is the PDM-Closed reference and the
others are agents; every proposal is scored the same way, and EP is normalised over all of them.

Objects: a scene's ground-truth timeline (log replay) unless another ``ObjectTimeline`` is given; v1.1 needs
at least 50 steps (TTC projects state 40 by 0.9 s).

Official behaviours reproduced on purpose (each has a test): a corner on the edge two roadblocks share is
off-road (strict interior per polygon); touching boxes collide; TTC judges "ahead" (< 30°) from the
unprojected rear axle at t to the object at t + k; an object exactly on the ego's heading line can be neither
ahead nor behind, because nuPlan's arccos gets NaN when rounding pushes the cosine past 1 (which headings do
this depends on the BLAS dot product, so it is reproduced with nuPlan's own numpy calls); a NaN angle counts
as "not behind", so with the rear axle in an intersection it is a TTC violation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely

from harness.map_query import MapLayer
from harness.scoring_scene import AGENT_TYPES, SCORING_STEP_S, ObjectTimeline, ScoringScene
from metrics.pdm.state import STATE_SIZE
from metrics.pdm_scoring.collisions import (
    CollisionResult,
    ContactFinder,
    ObjectBatch,
    no_at_fault_collisions,
    time_to_collision,
)
from metrics.pdm_scoring.comfort import COMFORT_CHECKS, comfort_checks
from metrics.pdm_scoring.ego_areas import EgoArea, EgoAreas, MapPolygons, compute_ego_areas
from metrics.pdm_scoring.geometry import CENTER, X, Y, ego_coords
from metrics.pdm_scoring.polyline import locate_on_polylines

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

__all__ = [
    "COMFORT_CHECKS",
    "NUM_STATES",
    "PDMS_COLUMNS",
    "EgoArea",
    "PDMSConfig",
    "ProposalScores",
    "score_batch",
    "score_proposals",
]

#: Columns of NAVSIM v1.1's per-token result rows (``PDMResults``), in its order.
PDMS_COLUMNS = (
    "no_at_fault_collisions",
    "drivable_area_compliance",
    "ego_progress",
    "time_to_collision_within_bound",
    "comfort",
    "driving_direction_compliance",
    "score",
)
#: Scored states per proposal: t = 0.0 .. 4.0 s at 10 Hz (``proposal_sampling`` 40 poses + the initial one).
NUM_STATES = 41


@dataclass(frozen=True)
class PDMSConfig:
    """Weights and thresholds of the v1.1 scorer; defaults are the official ones.

    The first nine are ``PDMScorerConfig`` (v1.1); the rest are constants the official code hard-codes.

    Attributes:
        progress_weight, ttc_weight, comfortable_weight, driving_direction_weight: weighted-mean weights.
        driving_direction_horizon_s: DDC's sliding window (1.0 s = 10 steps, 11 states).
        driving_direction_compliance_threshold_m: oncoming progress below this gives DDC 1.
        driving_direction_violation_threshold_m: below this 0.5, else 0.
        stopped_speed_threshold_mps: TTC ignores contacts while the ego is slower (5e-3 m/s).
        progress_distance_threshold_m: EP's normaliser must exceed this, else EP is 1 (0 on failure).
        collision_stopped_speed_mps: ``get_collision_type``'s stopped ego / stopped track threshold.
        ahead_angle_deg, behind_angle_deg: nuPlan's ``is_agent_ahead`` / ``is_agent_behind`` cones.
        ttc_offsets_steps: TTC's projections, in steps (``np.arange(0, 10, 3)``).
        step_s: state spacing (``proposal_sampling.interval_length``).
    """

    progress_weight: float = 5.0
    ttc_weight: float = 5.0
    comfortable_weight: float = 2.0
    driving_direction_weight: float = 0.0
    driving_direction_horizon_s: float = 1.0
    driving_direction_compliance_threshold_m: float = 2.0
    driving_direction_violation_threshold_m: float = 6.0
    stopped_speed_threshold_mps: float = 5e-3
    progress_distance_threshold_m: float = 5.0
    collision_stopped_speed_mps: float = 5e-2
    ahead_angle_deg: float = 30.0
    behind_angle_deg: float = 150.0
    ttc_offsets_steps: tuple[int, ...] = (0, 3, 6, 9)
    step_s: float = SCORING_STEP_S

    def __post_init__(self) -> None:
        weights = self.weights
        if np.any(weights < 0) or not np.all(np.isfinite(weights)) or weights.sum() <= 0:
            raise ValueError(
                f"PDMSConfig: weights must be finite, >= 0 and not all 0, got {weights.tolist()}"
            )
        if 0 not in self.ttc_offsets_steps or min(self.ttc_offsets_steps) < 0:
            raise ValueError(
                f"PDMSConfig.ttc_offsets_steps must be >= 0 and contain 0, got {self.ttc_offsets_steps}"
            )
        if not self.step_s > 0:
            raise ValueError(f"PDMSConfig.step_s must be > 0, got {self.step_s}")

    @property
    def weights(self) -> F64:
        """Weights in the official ``WeightedMetricIndex`` order: progress, TTC, comfort, driving direction."""
        return np.array(
            [self.progress_weight, self.ttc_weight, self.comfortable_weight, self.driving_direction_weight],
            dtype=np.float64,
        )

    @property
    def object_steps_needed(self) -> int:
        """Object-timeline steps the TTC projections reach (50 for v1.1)."""
        return NUM_STATES + max(self.ttc_offsets_steps)


@dataclass(frozen=True)
class ProposalScores:
    """PDMS sub-scores and diagnostics of the P proposals of one scene (index 0: PDM-Closed in NAVSIM).

    Attributes:
        no_at_fault_collisions: ``(P,)`` NC in {0, 0.5, 1}.
        drivable_area_compliance: ``(P,)`` DAC in {0, 1}.
        driving_direction_compliance: ``(P,)`` DDC in {0, 0.5, 1} (weight 0 in v1.1).
        time_to_collision_within_bound: ``(P,)`` TTC in {0, 1}.
        comfort: ``(P,)`` C in {0, 1}.
        ego_progress: ``(P,)`` EP in [0, 1], normalised over the P proposals.
        progress_raw: ``(P,)`` progress along the centerline, metres, clipped at 0 (before masking).
        score: ``(P,)`` the PDM score in [0, 1].
        collision_step: ``(P,)`` first step (0..40, 0.1 s each) with an at-fault collision; -1 if none.
        collision_token: ``(P,)`` the object of that collision ('' if none; the lowest NC, then the first
            object of the timeline, when several collide at that step).
        ttc_step, ttc_token: the same for the first TTC violation (the ego step t of the projection).
        off_road_step: ``(P,)`` first step with a corner outside the drivable area; -1 if none.
        oncoming_progress_m: ``(P,)`` DDC's largest 1-s window of progress against traffic, metres.
        ego_areas: ``(P, 41)`` ``EgoArea`` bit flags per state.
        comfort_checks: ``(P, 6)`` the comfort checks, columns ``COMFORT_CHECKS``.
    """

    no_at_fault_collisions: F64
    drivable_area_compliance: F64
    driving_direction_compliance: F64
    time_to_collision_within_bound: F64
    comfort: F64
    ego_progress: F64
    progress_raw: F64
    score: F64
    collision_step: I64
    collision_token: npt.NDArray[np.str_]
    ttc_step: I64
    ttc_token: npt.NDArray[np.str_]
    off_road_step: I64
    oncoming_progress_m: F64
    ego_areas: npt.NDArray[np.uint8]
    comfort_checks: npt.NDArray[np.bool_]

    def __post_init__(self) -> None:
        n = len(self.score)
        for name in (
            "no_at_fault_collisions",
            "drivable_area_compliance",
            "driving_direction_compliance",
            "time_to_collision_within_bound",
            "comfort",
            "ego_progress",
            "progress_raw",
            "collision_step",
            "collision_token",
            "ttc_step",
            "ttc_token",
            "off_road_step",
            "oncoming_progress_m",
        ):
            value = getattr(self, name)
            if getattr(value, "shape", None) != (n,) and np.shape(value) != (n,):
                raise ValueError(f"ProposalScores.{name}: expected ({n},), got {np.shape(value)}")
        if self.ego_areas.shape != (n, NUM_STATES) or self.comfort_checks.shape != (n, len(COMFORT_CHECKS)):
            raise ValueError(
                f"ProposalScores: ego_areas {self.ego_areas.shape} / comfort_checks "
                f"{self.comfort_checks.shape} do not fit {n} proposals"
            )

    def __len__(self) -> int:
        return len(self.score)

    def row(self, proposal: int) -> dict[str, float]:
        """One proposal's NAVSIM result row: ``PDMS_COLUMNS`` -> value."""
        return {name: float(getattr(self, name)[proposal]) for name in PDMS_COLUMNS}


def score_proposals(
    scene: ScoringScene,
    states: npt.ArrayLike,
    *,
    objects: ObjectTimeline | None = None,
    config: PDMSConfig = PDMSConfig(),
) -> ProposalScores:
    """Scores the simulated proposals of one scene, as NAVSIM v1.1's ``PDMScorer.score_proposals``.

    Args:
        scene: the token's scoring scene (map polygons, route, centerline, objects), global frame.
        states: ``(P, 41, 11)`` simulated rear-axle states, global frame; index 0 is the PDM-Closed
            reference in NAVSIM's use, but all proposals are scored alike.
        objects: the object timeline to collide with; ``scene.objects`` (log replay) when None.
        config: weights and thresholds.

    Returns:
        Per-proposal sub-scores, score and diagnostics.

    Raises:
        ValueError: wrong shapes, non-finite states, too short an object timeline, duplicate object tokens,
            or a centerline of fewer than 2 points.
    """
    return score_batch([scene], [states], objects=[objects], config=config)[0]


def score_batch(
    scenes: Sequence[ScoringScene],
    states: Sequence[npt.ArrayLike],
    *,
    objects: Sequence[ObjectTimeline | None] | None = None,
    config: PDMSConfig = PDMSConfig(),
    chunk_scenes: int = 64,
) -> list[ProposalScores]:
    """``score_proposals`` for many scenes, with the geometry batched across scenes.

    Args:
        scenes: the scenes.
        states: per scene, ``(P_i, 41, 11)`` simulated states (P_i may differ between scenes).
        objects: per scene an object timeline, or None for ``scene.objects``; None: all log replay.
        config: weights and thresholds.
        chunk_scenes: scenes scored together (bounds the memory of the batched arrays).

    Returns:
        One ``ProposalScores`` per scene, in order; each equals ``score_proposals`` on that scene alone.
    """
    if len(states) != len(scenes):
        raise ValueError(f"score_batch: {len(scenes)} scenes but {len(states)} state arrays")
    objs = [None] * len(scenes) if objects is None else list(objects)
    if len(objs) != len(scenes):
        raise ValueError(f"score_batch: {len(scenes)} scenes but {len(objs)} object timelines")
    if chunk_scenes < 1:
        raise ValueError(f"score_batch: chunk_scenes must be >= 1, got {chunk_scenes}")
    out: list[ProposalScores] = []
    for lo in range(0, len(scenes), chunk_scenes):
        hi = lo + chunk_scenes
        out.extend(_score_chunk(scenes[lo:hi], states[lo:hi], objs[lo:hi], config))
    return out


# --- batching ----------------------------------------------------------------------------------------------

_LANE_TYPES = (int(MapLayer.LANE), int(MapLayer.LANE_CONNECTOR))
_DRIVABLE_TYPES = (int(MapLayer.ROADBLOCK), int(MapLayer.INTERSECTION), int(MapLayer.CARPARK_AREA))
_AGENT_VALUES = np.array(sorted(int(t) for t in AGENT_TYPES))


def _checked_states(scene: ScoringScene, states: npt.ArrayLike) -> F64:
    arr = np.asarray(states, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[1:] != (NUM_STATES, STATE_SIZE) or arr.shape[0] < 1:
        raise ValueError(
            f"scene {scene.token}: states must be (P >= 1, {NUM_STATES}, {STATE_SIZE}), got {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"scene {scene.token}: states must be finite")
    return arr


def _checked_objects(scene: ScoringScene, objects: ObjectTimeline | None, steps: int) -> ObjectTimeline:
    obj = scene.objects if objects is None else objects
    if obj.num_steps < steps:
        raise ValueError(
            f"scene {scene.token}: the object timeline has {obj.num_steps} steps, PDMS v1.1 needs "
            f"{steps} (TTC projects the last state ahead)"
        )
    if len(set(obj.tokens.tolist())) != len(obj.tokens):
        raise ValueError(f"scene {scene.token}: object tokens must be unique")
    return obj


def _score_chunk(
    scenes: Sequence[ScoringScene],
    states_in: Sequence[npt.ArrayLike],
    objects_in: Sequence[ObjectTimeline | None],
    cfg: PDMSConfig,
) -> list[ProposalScores]:
    n_steps = cfg.object_steps_needed
    states_list = [_checked_states(s, st) for s, st in zip(scenes, states_in)]
    timelines = [_checked_objects(s, o, n_steps) for s, o in zip(scenes, objects_in)]
    n_props = np.array([len(s) for s in states_list])
    row_scene = np.repeat(np.arange(len(scenes)), n_props)
    states = np.concatenate(states_list)

    n_obj = np.array([len(o.tokens) for o in timelines])
    types = np.concatenate([o.types for o in timelines]).astype(np.int64)
    first_speed = np.hypot(*np.concatenate([o.first_velocity_xy for o in timelines]).reshape(-1, 2).T)
    is_agent = np.isin(types, _AGENT_VALUES)
    size = np.concatenate([o.size_lwh for o in timelines]).reshape(-1, 3)
    objs = ObjectBatch(
        scene=np.repeat(np.arange(len(scenes)), n_obj),
        is_agent=is_agent,
        track_stopped=~is_agent | (first_speed <= cfg.collision_stopped_speed_mps),
        present=np.concatenate([o.present[:n_steps] for o in timelines], axis=1),
        poses=np.concatenate([o.poses[:n_steps] for o in timelines], axis=1).astype(np.float64, copy=False),
        half_length=size[:, 0] / 2.0,
        half_width=size[:, 1] / 2.0,
    )
    tokens = (
        np.concatenate([np.asarray(o.tokens, dtype=str) for o in timelines]) if len(types) else np.array([""])
    )

    n_poly = np.array([len(s.drivable_polygons) for s in scenes])
    geoms = np.concatenate([np.asarray(s.drivable_polygons, dtype=object) for s in scenes])
    ptypes = np.concatenate([s.drivable_types for s in scenes]).astype(np.int64)
    is_lane = np.isin(ptypes, _LANE_TYPES)
    on_route = _on_route(scenes, n_poly)
    bounds = shapely.bounds(geoms).reshape(-1, 4)
    polys = MapPolygons(
        geoms=geoms,
        scene=np.repeat(np.arange(len(scenes)), n_poly),
        bounds=bounds,
        is_lane=is_lane,
        is_drivable=np.isin(ptypes, _DRIVABLE_TYPES),
        is_route_lane=is_lane & on_route,
        is_intersection=ptypes == int(MapLayer.INTERSECTION),
        representative=_same_map_polygons(scenes, n_poly, ptypes, geoms, bounds),
    )

    coords = ego_coords(states)  # (R, 41, 5, 2)
    areas = compute_ego_areas(coords, states[..., [X, Y]], row_scene, polys)
    finder = ContactFinder(
        states, coords[:, :, :4], coords[:, :, CENTER], row_scene, objs, cfg.ttc_offsets_steps, cfg.step_s
    )
    nc = no_at_fault_collisions(
        finder, areas, stopped_speed_mps=cfg.collision_stopped_speed_mps, behind_deg=cfg.behind_angle_deg
    )
    ttc = time_to_collision(
        finder,
        areas,
        stopped_speed_mps=cfg.stopped_speed_threshold_mps,
        ahead_deg=cfg.ahead_angle_deg,
        behind_deg=cfg.behind_angle_deg,
    )
    dac = np.where(areas.non_drivable.any(axis=1), 0.0, 1.0)
    ddc, oncoming_m = _driving_direction(coords[:, :, CENTER], areas, cfg)
    progress_raw = _progress(scenes, coords[:, :, CENTER], n_props)
    checks = comfort_checks(states, np.arange(NUM_STATES).astype(np.float64) * cfg.step_s)
    comfort = np.all(checks, axis=-1).astype(np.float64)

    multi = nc.score * dac
    ep = _normalised_progress(progress_raw * multi, multi, row_scene, len(scenes), cfg)
    w = cfg.weights
    # The official weighted mean: sum over the metric axis in index order, then one division.
    weighted = (((ep * w[0] + ttc.score * w[1]) + comfort * w[2]) + ddc * w[3]) / w.sum()
    score = multi * weighted

    off_road = np.where(areas.non_drivable.any(axis=1), np.argmax(areas.non_drivable, axis=1), -1)
    bits = areas.bits
    out = []
    bounds = np.concatenate([[0], np.cumsum(n_props)])
    for i in range(len(scenes)):
        sl = slice(bounds[i], bounds[i + 1])
        out.append(
            ProposalScores(
                no_at_fault_collisions=nc.score[sl],
                drivable_area_compliance=dac[sl],
                driving_direction_compliance=ddc[sl],
                time_to_collision_within_bound=ttc.score[sl],
                comfort=comfort[sl],
                ego_progress=ep[sl],
                progress_raw=progress_raw[sl],
                score=score[sl],
                collision_step=nc.step[sl],
                collision_token=_token_of(nc, sl, tokens),
                ttc_step=ttc.step[sl],
                ttc_token=_token_of(ttc, sl, tokens),
                off_road_step=off_road[sl],
                oncoming_progress_m=oncoming_m[sl],
                ego_areas=bits[sl],
                comfort_checks=checks[sl],
            )
        )
    return out


def _on_route(scenes: Sequence[ScoringScene], n_poly: I64) -> B:
    """Per drivable polygon of the chunk: is its id one of its scene's route lane ids (``np.isin`` per scene,
    done for all scenes at once on (scene, id) pairs)."""
    ids = [np.asarray(s.drivable_ids, dtype=np.int64) for s in scenes]
    route = [np.asarray(s.route_lane_ids, dtype=np.int64) for s in scenes]
    n_route = np.array([len(r) for r in route])
    if not n_poly.sum() or not n_route.sum():
        return np.zeros(int(n_poly.sum()), dtype=bool)
    all_ids, all_route = np.concatenate(ids), np.concatenate(route)
    lo = min(all_ids.min(), all_route.min())
    span = int(max(all_ids.max(), all_route.max())) - int(lo) + 1
    if span * len(scenes) >= 2**62:  # ids too far apart to pack with the scene index: one scene at a time
        return np.concatenate([np.isin(i, r) for i, r in zip(ids, route, strict=True)]).astype(bool)
    key = np.repeat(np.arange(len(scenes)), n_poly) * span + (all_ids - lo)
    route_key = np.repeat(np.arange(len(scenes)), n_route) * span + (all_route - lo)
    return np.isin(key, route_key)


def _same_map_polygons(
    scenes: Sequence[ScoringScene], n_poly: I64, types: I64, geoms: npt.NDArray[np.object_], bounds: F64
) -> I64:
    """For each drivable polygon of the chunk, the first polygon with the same map identity.

    A nuPlan map object is one polygon: scenes near each other list it each (as its own shapely object when
    read from the cache), and the scorer need test it once. Identity = map location, layer, map object id,
    number of vertices and bounds (the last two guard against scenes built from different map versions).
    """
    if len(geoms) == 0:
        return np.empty(0, dtype=np.int64)
    locations = {s.map_location: i for i, s in enumerate(scenes)}
    location = np.repeat([locations[s.map_location] for s in scenes], n_poly)
    ids = np.concatenate([np.asarray(s.drivable_ids) for s in scenes]).astype(np.int64)
    key = np.column_stack([location, types, ids, shapely.get_num_coordinates(geoms), bounds.view(np.int64)])
    order = np.lexsort(key.T[::-1])  # rows sorted, equal rows in index order
    k = key[order]
    starts = np.ones(len(k), dtype=bool)
    starts[1:] = np.any(k[1:] != k[:-1], axis=1)
    first = order[starts][np.cumsum(starts) - 1]  # the first (lowest) index of each row's equal run
    out = np.empty(len(key), dtype=np.int64)
    out[order] = first
    return out


def _token_of(res: CollisionResult, sl: slice, tokens: npt.NDArray[np.str_]) -> npt.NDArray[np.str_]:
    idx = res.obj[sl]
    return np.where(idx >= 0, tokens[np.maximum(idx, 0)], "")


def _driving_direction(centers: F64, areas: EgoAreas, cfg: PDMSConfig) -> tuple[F64, F64]:
    """DDC and its largest window of oncoming progress (official ``_calculate_driving_direction_compliance``)."""
    n_rows, n_t = centers.shape[:2]
    progress = np.zeros((n_rows, n_t), dtype=np.float64)
    progress[:, 1:] = np.linalg.norm(centers[:, 1:] - centers[:, :-1], axis=-1)
    progress[~areas.oncoming] = 0.0
    horizon = int(cfg.driving_direction_horizon_s / cfg.step_s)
    # Window sums slice by slice, as officially, so that the sums round identically.
    windows = np.stack([progress[:, max(0, t - horizon) : t + 1].sum(axis=-1) for t in range(n_t)], axis=-1)
    worst = windows.max(axis=-1)
    ddc = np.where(
        worst < cfg.driving_direction_compliance_threshold_m,
        1.0,
        np.where(worst < cfg.driving_direction_violation_threshold_m, 0.5, 0.0),
    )
    return ddc, worst


def _progress(scenes: Sequence[ScoringScene], centers: F64, n_props: I64,
              lines: tuple[I64, list[F64]] | None = None) -> F64:
    """Arc length gained along each scene's centerline by the box centre from t = 0 to the last state, >= 0.

    ``lines``: ``_centerlines(scenes)`` if already computed (a scorer calling this for several row sets)."""
    # Scenes of one route share their centerline: each distinct line is prepared once.
    line_of, lines = _centerlines(scenes) if lines is None else lines
    row_line = np.repeat(line_of, n_props)
    # (line, x, y) of every row's first and last centre; proposals of a scene share the first (the initial
    # state), so each run of equal queries is located once (a query's result does not depend on the others).
    # Equal to shapely.line_locate_point, bit for bit.
    query = np.concatenate([np.column_stack([row_line, centers[:, i]]) for i in (0, -1)])  # (2R, 3)
    new = np.ones(len(query), dtype=bool)
    new[1:] = np.any(query[1:] != query[:-1], axis=1)
    uniq, inverse = query[new], np.cumsum(new) - 1
    located = locate_on_polylines(np.concatenate(lines).astype(np.float64),
                                  np.concatenate([[0], np.cumsum([len(v) for v in lines])]),
                                  uniq[:, 0].astype(np.int64), uniq[:, 1:])
    proj = located[inverse.reshape(-1)].reshape(2, -1)
    return np.clip(proj[1] - proj[0], a_min=0, a_max=None)


def _centerlines(scenes: Sequence[ScoringScene]) -> tuple[I64, list[F64]]:
    """Index of each scene's centerline among the distinct ones, and those (``_distinct_lines``).

    Raises:
        ValueError: a centerline of fewer than two points.
    """
    lens = np.array([len(s.centerline) for s in scenes])
    if np.any(lens < 2):
        bad = [s.token for s, n in zip(scenes, lens) if n < 2]
        raise ValueError(f"scenes {bad}: the centerline needs at least 2 points")
    return _distinct_lines([s.centerline[:, :2] for s in scenes])


def _distinct_lines(lines: Sequence[F64]) -> tuple[I64, list[F64]]:
    """Index of each line among the distinct ones (equal vertices), and the distinct lines."""
    distinct: list[F64] = []
    by_key: dict[tuple[int, float, float, float, float], list[int]] = {}
    index = np.empty(len(lines), dtype=np.int64)
    for i, v in enumerate(lines):
        key = (len(v), float(v[0, 0]), float(v[0, 1]), float(v[-1, 0]), float(v[-1, 1]))
        for j in by_key.get(key, []):
            if np.array_equal(distinct[j], v):
                index[i] = j
                break
        else:
            by_key.setdefault(key, []).append(len(distinct))
            index[i] = len(distinct)
            distinct.append(v)
    return index, distinct


def _normalised_progress(masked: F64, multi: F64, row_scene: I64, n_scenes: int, cfg: PDMSConfig) -> F64:
    """EP: masked progress over the scene's best masked progress if that exceeds the 5 m guard, else 1/0."""
    best = np.full(n_scenes, -np.inf)
    np.maximum.at(best, row_scene, masked)
    best_row = best[row_scene]
    guard = best_row > cfg.progress_distance_threshold_m
    with np.errstate(invalid="ignore", divide="ignore"):
        normalised = masked / best_row
    fallback = np.where(multi == 0.0, 0.0, 1.0)
    return np.where(guard, normalised, fallback)
