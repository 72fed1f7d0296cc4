"""PDM-Closed's choice among its proposals: the v1.1 score of each proposal, and only what decides it.

``metrics.pdms.score_batch`` computes every sub-score and diagnostic of a proposal (DDC, the ego-area bits of
every state, the infraction tokens, ...). PDM-Closed keeps only the argmax of ``score``, and with the v1.1
weights (DDC weight 0) the score rests on less:

- DAC needs, per state, whether each corner lies in some drivable polygon (every state);
- NC and TTC read ``multiple_lanes`` and ``rear_axle_in_intersection`` only at the (row, step) of a contact:
  the lane and intersection point-in-polygon tests run at those states only;
- DDC's centre-on-route test is skipped: its weight is 0, so ``... + ddc * 0`` adds +0.0 to a non-negative
  sum and leaves it unchanged, bit for bit.

Everything else is the scorer's own code on the same arrays, so :func:`selection_scores` equals
``score_batch(...)[i].score`` bit for bit (tested on world scenes). A configuration with a non-zero DDC
weight falls back to ``score_batch``.

With ``head_rows`` (PDM-Closed passes its centerline's proposals) the choice is made in two passes. A row's
score parts (NC·DAC, TTC, comfort, progress) do not depend on the other rows; only EP's normaliser, the
scene's best masked progress, does. The head rows are scored first. A scene is decided when a head row has
the highest score any row can have and no later row has more raw progress than the head's best masked
progress: no later row can then raise the normaliser or take the first place, and its later rows are left
unscored (-inf). The other scenes' later rows are scored in a second pass and every score of those scenes is
normalised over all their rows, as in one pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import numpy.typing as npt
import shapely

from harness.map_query import MapLayer
from harness.scoring_scene import ObjectTimeline, ScoringScene
from metrics import pdms
from metrics.pdm_scoring.collisions import (
    ContactFinder,
    ObjectBatch,
    no_at_fault_collisions,
    time_to_collision,
)
from metrics.pdm_scoring.comfort import comfort_checks
from metrics.pdm_scoring.ego_areas import MapPolygons, compute_ego_areas
from metrics.pdm_scoring.geometry import CENTER, X, Y, ego_coords
from metrics.pdms import PDMSConfig

F64 = npt.NDArray[np.float64]

__all__ = ["selection_scores"]


def selection_scores(
    scenes: Sequence[ScoringScene],
    states: Sequence[npt.ArrayLike],
    objects: Sequence[ObjectTimeline],
    config: PDMSConfig | None = None,
    chunk_scenes: int = 64,
    head_rows: Sequence[int] | None = None,
) -> list[F64]:
    """Per scene, ``(P_i,)`` the v1.1 score of each of its proposals: ``score_batch(...)[i].score``.

    Args:
        scenes: the scenes; states: per scene ``(P_i, 41, 11)`` simulated states; objects: per scene the
            object timeline scored against; config: weights and thresholds (None: v1.1's); chunk_scenes: as
            ``score_batch``.
        head_rows: per scene a number of leading rows scored first (None: every row, every score returned).
            Where one of them reaches the highest score a row can have and no later row has more raw progress
            than the head's best masked progress (so that no later row can change EP's normaliser), the later
            rows are not scored and get -inf: the first row with the highest score, ``argmax``, is the same.

    Raises:
        ValueError: as ``score_batch``.
    """
    config = PDMSConfig() if config is None else config
    if config.weights[3] != 0.0:
        return [s.score for s in pdms.score_batch(scenes, states, objects=objects, config=config,
                                                  chunk_scenes=chunk_scenes)]
    if not (len(scenes) == len(states) == len(objects)) or (head_rows is not None and len(head_rows) != len(scenes)):
        raise ValueError(f"selection_scores: {len(scenes)} scenes, {len(states)} state arrays, "
                         f"{len(objects)} object timelines, {'no' if head_rows is None else len(head_rows)} heads")
    out: list[F64] = []
    for lo in range(0, len(scenes), chunk_scenes):
        hi = lo + chunk_scenes
        out.extend(_chunk_scores(scenes[lo:hi], states[lo:hi], objects[lo:hi], config,
                                 None if head_rows is None else head_rows[lo:hi]))
    return out


def _chunk_scores(scenes: Sequence[ScoringScene], states_in: Sequence[npt.ArrayLike],
                  objects_in: Sequence[ObjectTimeline], cfg: PDMSConfig,
                  head_rows: Sequence[int] | None) -> list[F64]:
    """``pdms._score_chunk``'s ``score``, without the work the score does not depend on (module docstring);
    with ``head_rows``, in two passes (``selection_scores``)."""
    n_steps = cfg.object_steps_needed
    states_list = [pdms._checked_states(s, st) for s, st in zip(scenes, states_in)]
    timelines = [pdms._checked_objects(s, o, n_steps) for s, o in zip(scenes, objects_in)]
    n_props = np.array([len(s) for s in states_list])
    row_scene = np.repeat(np.arange(len(scenes)), n_props)
    states = np.concatenate(states_list)
    prep = _SceneData.of(scenes, timelines, cfg)
    row_start = np.concatenate([[0], np.cumsum(n_props)])
    local = np.arange(len(states)) - row_start[row_scene]  # row index within its scene
    if head_rows is None or np.any(cfg.weights < 0.0):  # (the top score below needs non-negative weights)
        first = np.arange(len(states))
        later = np.empty(0, dtype=np.int64)
    else:
        head = np.minimum(np.asarray(head_rows, dtype=np.int64), n_props)[row_scene]
        first, later = np.flatnonzero(local < head), np.flatnonzero(local >= head)
    parts = _components(prep, states[first], row_scene[first], cfg)
    if len(later):
        # Scenes decided by their head rows: a head row at the top score, and no later row with more raw
        # progress than the head's best masked progress (masked <= raw, so EP's normaliser is final).
        best = np.full(len(scenes), -np.inf)
        np.maximum.at(best, row_scene[first], parts.masked)
        top = _top_score(cfg)
        at_top = np.zeros(len(scenes), dtype=bool)
        at_top[row_scene[first][_scores(parts, row_scene[first], len(scenes), cfg) == top]] = True
        later_coords = ego_coords(states[later])
        later_raw = pdms._progress(scenes, later_coords[:, :, CENTER],
                                   np.bincount(row_scene[later], minlength=len(scenes)), prep.lines)
        beaten = np.zeros(len(scenes), dtype=bool)
        beaten[row_scene[later][later_raw > best[row_scene[later]]]] = True
        todo = np.flatnonzero(~(at_top & ~beaten)[row_scene[later]])
        if len(todo):
            more = _components(prep, states[later[todo]], row_scene[later[todo]], cfg,
                               coords=later_coords[todo], raw=later_raw[todo])
            parts = _Components.concat(parts, more)
            first = np.concatenate([first, later[todo]])
    score = np.full(len(states), -np.inf)
    score[first] = _scores(parts, row_scene[first], len(scenes), cfg)
    return [score[row_start[i]:row_start[i + 1]] for i in range(len(scenes))]


@dataclass(frozen=True)
class _SceneData:
    """The per-scene inputs of a chunk's scoring (objects and map polygons), shared by its passes."""

    scenes: Sequence[ScoringScene]
    objs: ObjectBatch
    polys: MapPolygons
    lines: tuple[npt.NDArray[np.int64], list[F64]]

    @classmethod
    def of(cls, scenes: Sequence[ScoringScene], timelines: Sequence[ObjectTimeline], cfg: PDMSConfig) -> _SceneData:
        n_steps = cfg.object_steps_needed
        n_obj = np.array([len(o.tokens) for o in timelines])
        types = np.concatenate([o.types for o in timelines]).astype(np.int64)
        first_speed = np.hypot(*np.concatenate([o.first_velocity_xy for o in timelines]).reshape(-1, 2).T)
        is_agent = np.isin(types, pdms._AGENT_VALUES)
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
        n_poly = np.array([len(s.drivable_polygons) for s in scenes])
        geoms = np.concatenate([np.asarray(s.drivable_polygons, dtype=object) for s in scenes])
        ptypes = np.concatenate([s.drivable_types for s in scenes]).astype(np.int64)
        bounds = shapely.bounds(geoms).reshape(-1, 4)
        no_route = np.zeros(len(ptypes), dtype=bool)  # the centre-on-route test is not run
        polys = MapPolygons(
            geoms=geoms,
            scene=np.repeat(np.arange(len(scenes)), n_poly),
            bounds=bounds,
            is_lane=np.isin(ptypes, pdms._LANE_TYPES),
            is_drivable=np.isin(ptypes, pdms._DRIVABLE_TYPES),
            is_route_lane=no_route,
            is_intersection=ptypes == int(MapLayer.INTERSECTION),
            representative=pdms._same_map_polygons(scenes, n_poly, ptypes, geoms, bounds),
        )
        return cls(scenes, objs, polys, pdms._centerlines(scenes))


@dataclass(frozen=True)
class _Components:
    """What a row's score is made of, per scored row: NC·DAC, TTC, comfort, raw and masked progress."""

    multi: F64
    ttc: F64
    comfort: F64
    raw: F64
    masked: F64

    @staticmethod
    def concat(a: _Components, b: _Components) -> _Components:
        return _Components(*(np.concatenate([getattr(a, f.name), getattr(b, f.name)]) for f in fields(_Components)))


def _components(prep: _SceneData, states: F64, row_scene: npt.NDArray[np.int64], cfg: PDMSConfig, *,
                coords: F64 | None = None, raw: F64 | None = None) -> _Components:
    """The score's parts of ``states`` rows (each row on its own: the same values in any set of rows);
    ``coords`` (``ego_coords(states)``) and ``raw`` (their raw progress) where already computed."""
    coords = ego_coords(states) if coords is None else coords  # (R, 41, 5, 2)
    finder = ContactFinder(
        states, coords[:, :, :4], coords[:, :, CENTER], row_scene, prep.objs, cfg.ttc_offsets_steps, cfg.step_s
    )
    # NC and TTC read the lane and intersection flags at their contacts only.
    lanes_at = np.zeros(states.shape[:2], dtype=bool)
    lanes_at[finder.hits.row, finder.hits.t] = True
    areas = compute_ego_areas(coords, states[..., [X, Y]], row_scene, prep.polys, lanes_at=lanes_at,
                              oncoming=False)
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
    if raw is None:
        raw = pdms._progress(prep.scenes, coords[:, :, CENTER], np.bincount(row_scene, minlength=len(prep.scenes)),
                             prep.lines)
    checks = comfort_checks(states, np.arange(pdms.NUM_STATES).astype(np.float64) * cfg.step_s)
    multi = nc.score * dac
    return _Components(multi, ttc.score, np.all(checks, axis=-1).astype(np.float64), raw, raw * multi)


def _scores(parts: _Components, row_scene: npt.NDArray[np.int64], n_scenes: int, cfg: PDMSConfig) -> F64:
    """``score`` of the rows, EP normalised over the given rows of each scene (``pdms._score_chunk``'s
    expressions; DDC's weight is 0, so any finite DDC gives the same score)."""
    ep = pdms._normalised_progress(parts.masked, parts.multi, row_scene, n_scenes, cfg)
    ddc = np.ones(len(parts.multi))
    w = cfg.weights
    weighted = (((ep * w[0] + parts.ttc * w[1]) + parts.comfort * w[2]) + ddc * w[3]) / w.sum()
    return parts.multi * weighted


def _top_score(cfg: PDMSConfig) -> float:
    """The highest score a row can have (every sub-score 1; non-negative weights): no row's score exceeds it,
    since each sum and the division round monotonically."""
    one = np.ones(1)
    w = cfg.weights
    return float((1.0 * ((((one * w[0] + one * w[1]) + one * w[2]) + one * w[3]) / w.sum()))[0])
