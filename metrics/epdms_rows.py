"""EPDMS v2.2 result types: per-token columns, the scorer configuration, the sub-score rows, the final
score and the human filter (see ``metrics.epdms`` for the scorer itself)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from harness.scoring_scene import SCORING_STEP_S

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

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
