"""PDM-Closed's reference as NAVSIM ``main`` (v2.2) plans it, for many scenes at once.

The planner is v1.1's (``harness.agents.pdm_closed``: observations, paths, IDM proposals, simulation, 5 s
extension), generated with v1's batched machinery (``generate_batch``: observations of all scenes together,
shared lateral paths, one joint IDM unroll, equal proposals of a scene simulated once); only the ranking
differs: the v2.2 scorer's no-EC score (``metrics.epdms.score_batch`` without a human filter or history),
against the planner's own constant-velocity forecast (objects overlapping the ego at t = 0 ignored) and with
its red lights red at every step.

Equal proposals of a scene are scored once: every EPDMS sub-score of a row depends on that row alone except
EP, whose normaliser is the scene's best masked progress, the same over the distinct rows; the scores are then
spread back to all rows, so ``argmax`` (the first row with the highest score) is the same.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from harness.agents.pdm_closed import PDMClosedConfig, generate_batch
from harness.agents.pdm_closed_observation import forecast_timelines
from harness.scoring_scene import ScoringScene
from metrics.epdms import EPDMSConfig, RedLights, score_batch
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
    scores = score_batch(list(scenes), simulated_distinct, objects=objects, red_lights=lights,
                         histories=[None] * len(prepared), config=_NO_FILTER)
    bests = [int(np.argmax(sc.pdm_score[inv])) for sc, (_, inv) in zip(scores, distinct, strict=True)]
    times_s = np.arange(cfg.trajectory_steps + 1) * int(cfg.step_s * 1e6) / 1e6
    out = []
    for ext in joint.extend(bests):
        states = ext.copy()
        # The cache stores nuPlan EgoStates built from these rear-axle poses: report them as EgoState does.
        states[:, :3] = nuplan_rear_axle_roundtrip(states[:, :3], PACIFICA.rear_axle_to_center)
        out.append((states, times_s.copy()))
    return out
