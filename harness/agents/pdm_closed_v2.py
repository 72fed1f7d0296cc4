"""PDM-Closed's reference as NAVSIM ``main`` (v2.2) plans it, for many scenes at once.

The planner is v1.1's (``harness.agents.pdm_closed``: observations, paths, IDM proposals, simulation, 5 s
extension), generated with v1's batched machinery (``generate_batch``: observations of all scenes together,
shared lateral paths, one joint IDM unroll, equal proposals of a scene simulated once); only the ranking
differs: the v2.2 scorer's no-EC score (``metrics.epdms.score_batch`` without a human filter or history),
against the planner's own constant-velocity forecast (objects overlapping the ego at t = 0 ignored) and with
its red lights red at every step.

Equal proposals of a scene are scored once: every EPDMS sub-score of a row depends on that row alone except
EP, whose normaliser is the scene's best masked progress, the same over the distinct rows; the scores are then
spread back to all rows, so ``argmax`` (the first row with the highest score) is the same. The centerline's
proposals are scored first (:func:`selection_scores_v2`, v1's two-pass rule re-derived for the v2 score): a
scene they decide leaves its other proposals unscored.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from harness.agents.pdm_closed import PDMClosedConfig, generate_batch
from harness.agents.pdm_closed_observation import forecast_timelines
from harness.scoring_scene import ObjectTimeline, ScoringScene
from metrics import epdms
from metrics.epdms import EPDMSConfig, EPDMSScores, RedLights, score_batch
from metrics.epdms_rows import PROGRESS, TWO_FRAME_EXTENDED_COMFORT
from metrics.pdm_scoring.geometry import CENTER, ego_coords
from metrics.pdm_simulation import PACIFICA, nuplan_rear_axle_roundtrip

F64 = npt.NDArray[np.float64]
_CLOSED = PDMClosedConfig()

__all__ = ["plan_pdm_closed_v2_batch"]

_NO_FILTER = EPDMSConfig(human_penalty_filter=False)


def plan_pdm_closed_v2_batch(scenes: Sequence[ScoringScene], *, config: PDMClosedConfig = _CLOSED
                             ) -> list[tuple[F64, F64]]:
    """Per scene PDM-Closed's v2 reference: ``(51, 11)`` rear-axle states (t = 0..5 s) and ``(51,)`` times in
    seconds, each equal to the scene planned alone (``harness.epdms_eval.plan_pdm_closed_v2``).

    Raises:
        DataError: a scene's centerline has fewer than two points.
    """
    cfg = config
    gen = generate_batch(scenes, cfg)
    if gen is None:
        return []
    prepared, joint, _, distinct, simulated_distinct = gen
    n_steps = cfg.proposal_steps + 1
    objects = forecast_timelines([p.obs for p in prepared], n_steps)
    lights = [RedLights(np.asarray(p.obs.light_polygons, dtype=object),
                        np.ones((n_steps, len(p.obs.light_polygons)), dtype=bool)) for p in prepared]
    # The centerline's proposals first (their distinct rows lead): most scenes are decided by them.
    n_first = len(cfg.idm.speed_limit_fractions)
    heads = [int(np.searchsorted(first, n_first)) for first, _ in distinct]
    scores = selection_scores_v2(list(scenes), simulated_distinct, objects, lights, heads)
    bests = [int(np.argmax(sc[inv])) for sc, (_, inv) in zip(scores, distinct, strict=True)]
    times_s = np.arange(cfg.trajectory_steps + 1) * int(cfg.step_s * 1e6) / 1e6
    out = []
    for ext in joint.extend(bests):
        states = ext.copy()
        # The cache stores nuPlan EgoStates built from these rear-axle poses: report them as EgoState does.
        states[:, :3] = nuplan_rear_axle_roundtrip(states[:, :3], PACIFICA.rear_axle_to_center)
        out.append((states, times_s.copy()))
    return out


def selection_scores_v2(scenes: Sequence[ScoringScene], states: Sequence[F64], objects: Sequence[ObjectTimeline],
                        lights: Sequence[RedLights], head_rows: Sequence[int] | None = None) -> list[F64]:
    """Per scene the no-EC EPDMS score of each row of ``states`` (``score_batch(...)[i].pdm_score``), the first
    ``head_rows[i]`` rows first: a scene where one of them reaches the top score and no later row has more raw
    progress than the head rows' best masked progress keeps their scores and gets -inf for its later rows (the
    same first maximum); the other scenes' later rows are scored in a second pass and every score of those
    scenes normalised over all their rows, as in one pass.

    Why that is exact: every sub-score of a row depends on that row alone, except EP, normalised by the
    scene's best masked progress (raw progress times the multiplicative metrics, each in [0, 1], so masked <=
    raw). A later row whose raw progress does not exceed the head's best masked progress cannot raise that
    normaliser, so the head rows' scores are final; a head row at the top score (every sub-score 1) is then
    the first maximum, as no score exceeds the top (sums and products of values <= 1 round monotonically).
    """
    n = len(scenes)
    hist = [None] * n
    if head_rows is None:
        return [sc.pdm_score for sc in score_batch(scenes, states, objects=objects, red_lights=lights,
                                                   histories=hist, config=_NO_FILTER)]
    heads = [min(int(h), len(st)) for h, st in zip(head_rows, states, strict=True)]
    first = score_batch(scenes, [st[:h] for st, h in zip(states, heads, strict=True)], objects=objects,
                        red_lights=lights, histories=hist, config=_NO_FILTER)
    top = _top_score(_NO_FILTER)
    later = [st[h:] for st, h in zip(states, heads, strict=True)]
    n_later = np.array([len(st) for st in later])
    decided = np.array([h > 0 and bool(np.any(sc.pdm_score == top)) for sc, h in zip(first, heads, strict=True)])
    if n_later.sum():
        rows = np.flatnonzero(decided & (n_later > 0))
        if len(rows):
            centers = ego_coords(np.concatenate([later[i] for i in rows]))[:, :, CENTER]
            row_scene = np.repeat(np.arange(len(rows)), n_later[rows])
            raw = epdms._progress(epdms._centerlines([scenes[i] for i in rows]), centers, row_scene)
            best = np.array([np.max(first[i].progress_raw * first[i].multiplicative_metrics_prod) for i in rows])
            beaten = np.zeros(len(rows), dtype=bool)
            beaten[row_scene[raw > best[row_scene]]] = True
            decided[rows[beaten]] = False
    out: list[F64 | None] = [None] * n
    for i in np.flatnonzero(decided):
        out[i] = np.concatenate([first[i].pdm_score, np.full(n_later[i], -np.inf)])
    todo = np.flatnonzero(~decided & (n_later > 0))
    for i in np.flatnonzero(~decided & (n_later == 0)):
        out[i] = first[i].pdm_score
    if len(todo):
        # Only the later rows are scored; each scene's EP is then normalised over all its rows and the score
        # recombined with _score_chunk's expressions (the other sub-scores are the rows' own).
        more = score_batch([scenes[i] for i in todo], [later[i] for i in todo], objects=[objects[i] for i in todo],
                           red_lights=[lights[i] for i in todo], histories=[None] * len(todo), config=_NO_FILTER)
        both = [(first[i], sc) for i, sc in zip(todo, more, strict=True)]
        for i, score in zip(todo, _combined_scores(both, _NO_FILTER), strict=True):
            out[i] = score
    return out  # type: ignore[return-value]


def _combined_scores(parts: list[tuple[EPDMSScores, EPDMSScores]], cfg: EPDMSConfig) -> list[F64]:
    """Per scene the no-EC score of its rows scored in two parts: EP normalised over both
    (``metrics.epdms._normalised_progress``), the weighted sum as ``metrics.epdms._score_chunk`` forms it."""
    n_rows = np.array([len(a.pdm_score) + len(b.pdm_score) for a, b in parts])
    row_scene = np.repeat(np.arange(len(parts)), n_rows)
    raw = np.concatenate([x.progress_raw for ab in parts for x in ab])
    prod = np.concatenate([x.multiplicative_metrics_prod for ab in parts for x in ab])
    weighted = np.ascontiguousarray(np.concatenate([x.weighted_metrics for ab in parts for x in ab]).T)
    weighted[PROGRESS] = epdms._normalised_progress(raw, prod, row_scene, len(parts), cfg)
    w = cfg.weights
    mask = np.ones(5, dtype=bool)
    mask[TWO_FRAME_EXTENDED_COMFORT] = False
    score = prod * ((weighted[mask] * w[mask, None]).sum(axis=0) / w[mask].sum())
    bounds = np.concatenate([[0], np.cumsum(n_rows)])
    return [score[bounds[i]:bounds[i + 1]] for i in range(len(parts))]


def _top_score(cfg: EPDMSConfig) -> float:
    """The no-EC score of a row whose sub-scores are all 1 (``metrics.epdms._score_chunk``'s expression)."""
    w = cfg.weights
    mask = np.ones(len(w), dtype=bool)
    mask[TWO_FRAME_EXTENDED_COMFORT] = False
    ones = np.ones((len(w), 1))
    return float((np.ones(1) * ((ones[mask] * w[mask, None]).sum(axis=0) / w[mask].sum()))[0])
