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
"""

from __future__ import annotations

from collections.abc import Sequence

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
) -> list[F64]:
    """Per scene, ``(P_i,)`` the v1.1 score of each of its proposals: ``score_batch(...)[i].score``.

    Args:
        scenes: the scenes; states: per scene ``(P_i, 41, 11)`` simulated states; objects: per scene the
            object timeline scored against; config: weights and thresholds (None: v1.1's); chunk_scenes: as ``score_batch``.

    Raises:
        ValueError: as ``score_batch``.
    """
    config = PDMSConfig() if config is None else config
    if config.weights[3] != 0.0:
        return [s.score for s in pdms.score_batch(scenes, states, objects=objects, config=config,
                                                  chunk_scenes=chunk_scenes)]
    if not (len(scenes) == len(states) == len(objects)):
        raise ValueError(f"selection_scores: {len(scenes)} scenes, {len(states)} state arrays, "
                         f"{len(objects)} object timelines")
    out: list[F64] = []
    for lo in range(0, len(scenes), chunk_scenes):
        hi = lo + chunk_scenes
        out.extend(_chunk_scores(scenes[lo:hi], states[lo:hi], objects[lo:hi], config))
    return out


def _chunk_scores(scenes: Sequence[ScoringScene], states_in: Sequence[npt.ArrayLike],
                  objects_in: Sequence[ObjectTimeline], cfg: PDMSConfig) -> list[F64]:
    """``pdms._score_chunk``'s ``score``, without the work the score does not depend on (module docstring)."""
    n_steps = cfg.object_steps_needed
    states_list = [pdms._checked_states(s, st) for s, st in zip(scenes, states_in)]
    timelines = [pdms._checked_objects(s, o, n_steps) for s, o in zip(scenes, objects_in)]
    n_props = np.array([len(s) for s in states_list])
    row_scene = np.repeat(np.arange(len(scenes)), n_props)
    states = np.concatenate(states_list)

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

    coords = ego_coords(states)  # (R, 41, 5, 2)
    finder = ContactFinder(
        states, coords[:, :, :4], coords[:, :, CENTER], row_scene, objs, cfg.ttc_offsets_steps, cfg.step_s
    )
    # NC and TTC read the lane and intersection flags at their contacts only.
    lanes_at = np.zeros(states.shape[:2], dtype=bool)
    lanes_at[finder.hits.row, finder.hits.t] = True
    areas = compute_ego_areas(coords, states[..., [X, Y]], row_scene, polys, lanes_at=lanes_at, oncoming=False)
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
    progress_raw = pdms._progress(scenes, coords[:, :, CENTER], n_props)
    checks = comfort_checks(states, np.arange(pdms.NUM_STATES).astype(np.float64) * cfg.step_s)
    comfort = np.all(checks, axis=-1).astype(np.float64)
    ddc = np.ones(len(states))  # weight 0: any finite value gives the same score

    multi = nc.score * dac
    ep = pdms._normalised_progress(progress_raw * multi, multi, row_scene, len(scenes), cfg)
    w = cfg.weights
    weighted = (((ep * w[0] + ttc.score * w[1]) + comfort * w[2]) + ddc * w[3]) / w.sum()
    score = multi * weighted
    bounds_rows = np.concatenate([[0], np.cumsum(n_props)])
    return [score[bounds_rows[i]:bounds_rows[i + 1]] for i in range(len(scenes))]
