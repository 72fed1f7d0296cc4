"""NAVSIM v2 two-stage (navhard) aggregation: Gaussian stage-2 weights, group products, summary rows.

Semantics of ``run_pdm_score.py`` on ``autonomousvision/navsim`` ``main`` (``create_scene_aggregators``,
``SceneAggregator.calculate_pseudo_closed_loop_weights``, ``calculate_weighted_average_score``,
``calculate_individual_mapping_scores``; specs/navsim.md §7.3):

- a group is ``(orig, prev, [(now_2, prev_2), ...])``: the original scene, its twin 0.5 s earlier, and the
  synthetic follow-up pairs (``now_2`` starts about 4 s after ``orig``, ``prev_2`` 0.5 s before ``now_2``);
- weights of the ``now_2`` scenes: ``w_i = exp(-d_i² / (2·σ²))`` with σ² = 0.1 m² and ``d_i`` the distance
  from the **planned** endpoint of ``orig`` (the submitted trajectory's last pose, in the map frame; not the
  simulated one) to the initial rear-axle position of ``now_2,i``; normalised to sum 1 over the group;
  uniform ``1/n`` when the raw sum is NaN or ``np.isclose(sum, 0)`` (≤ 1e-8). The ``prev_2`` scenes are
  weighted the same way from the endpoint of ``prev``;
- for every column c (the score and each sub-metric): ``G1 = S1_c(orig) · Σ w_i S2_c(now_2,i)``,
  ``G2 = S1_c(prev) · Σ w'_i S2_c(prev_2,i)``, ``group_c = (G1 + G2) / 2``;
- summary: ``combined`` = mean over groups (the leaderboard EPDMS is its score), ``stage_one`` = mean over the
  2·G stage-1 rows, ``stage_two`` = mean over the 2·G weighted stage-2 averages. A group whose value is NaN is
  skipped by the means (pandas' ``mean``). The official CSV writes only the score of ``combined`` from the
  group products; its sub-metric columns repeat the stage-one / stage-two means (kept here as
  :attr:`TwoStageSummary.group_mean` for every column, and as the official row layout by the caller).

Failure policy (the official one is a fragile whole-run fallback, specs §7.3): a token that failed (or is
missing from the table) scores **0 in every column** and is listed in :attr:`TwoStageSummary.failed_tokens`;
its group stays in the means. A failed stage-1 token has no planned endpoint, so its stage-2 weights are
uniform. Everything here is a pure function of its inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

#: σ² of the Gaussian kernel, m² (``SceneAggregator.sigma_squared``).
SIGMA_SQUARED_M2 = 0.1

__all__ = [
    "SIGMA_SQUARED_M2",
    "TokenTable",
    "TwoStageGroup",
    "TwoStageSummary",
    "aggregate_two_stage",
    "gaussian_weights",
    "stage_two_weights",
]


@dataclass(frozen=True)
class TwoStageGroup:
    """One ``reactive_all_mapping`` entry: ``[orig, prev, [[now_2, prev_2], ...]]``."""

    orig_token: str
    prev_token: str
    pairs: tuple[tuple[str, str], ...]

    def __post_init__(self) -> None:
        for pair in self.pairs:
            if len(pair) != 2:
                raise ValueError(f"TwoStageGroup[{self.orig_token}]: each follow-up must be (now_2, prev_2), "
                                 f"got {pair!r}")

    @property
    def stage_one_tokens(self) -> tuple[str, str]:
        return self.orig_token, self.prev_token

    @property
    def stage_two_tokens(self) -> tuple[str, ...]:
        return tuple(t for pair in self.pairs for t in pair)


@dataclass(frozen=True)
class TokenTable:
    """Per-token results the aggregation reads (one row per scored token, stage 1 and stage 2 together).

    Attributes:
        tokens: ``(N,)`` unique scene tokens.
        columns: names of the ``values`` columns (the final per-row ``score`` among them).
        values: ``(N, C)`` final per-row values (EC already injected). Rows of failed tokens are ignored.
        valid: ``(N,)`` the token was scored.
        endpoint_xy: ``(N, 2)`` planned endpoint in the map frame, metres (NaN where unknown).
        start_xy: ``(N, 2)`` the scene's initial rear-axle position in the map frame, metres.
    """

    tokens: tuple[str, ...]
    columns: tuple[str, ...]
    values: F64
    valid: npt.NDArray[np.bool_]
    endpoint_xy: F64
    start_xy: F64

    def __post_init__(self) -> None:
        n, c = len(self.tokens), len(self.columns)
        for name, shape in (("values", (n, c)), ("valid", (n,)), ("endpoint_xy", (n, 2)), ("start_xy", (n, 2))):
            if np.shape(getattr(self, name)) != shape:
                raise ValueError(f"TokenTable.{name}: expected {shape}, got {np.shape(getattr(self, name))}")
        if len(set(self.tokens)) != n:
            raise ValueError("TokenTable.tokens: tokens must be unique")
        bad = self.valid & ~np.all(np.isfinite(self.values), axis=1)
        if bad.any():
            names = [self.tokens[i] for i in np.flatnonzero(bad)[:5]]
            raise ValueError(f"TokenTable: valid rows must have finite values; not finite for {names}")

    def index(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.tokens)}


@dataclass(frozen=True)
class TwoStageSummary:
    """Result of :func:`aggregate_two_stage`; every ``(C,)`` array follows ``columns``.

    Attributes:
        columns: the aggregated columns.
        group_values: ``(G, C)`` per-group ``(G1 + G2) / 2``.
        combined: ``(C,)`` NaN-skipping mean of ``group_values`` (``combined[score]`` is the leaderboard EPDMS).
        stage_one: ``(C,)`` mean over the 2·G stage-1 rows.
        stage_two: ``(C,)`` mean over the 2·G weighted stage-2 averages.
        weights: token -> its stage-2 weight (1.0 for stage-1 tokens), as the official ``weight`` column.
        failed_tokens: tokens that scored 0 because they failed or were missing, in first-seen order.
    """

    columns: tuple[str, ...]
    group_values: F64
    combined: F64
    stage_one: F64
    stage_two: F64
    weights: dict[str, float]
    failed_tokens: tuple[str, ...]

    def value(self, row: str, column: str) -> float:
        """``row`` in {"combined", "stage_one", "stage_two"}."""
        return float(getattr(self, row)[self.columns.index(column)])


def gaussian_weights(endpoint_xy: npt.ArrayLike, starts_xy: npt.ArrayLike,
                     sigma_squared: float = SIGMA_SQUARED_M2) -> F64:
    """Normalised Gaussian weights of follow-up scenes around a planned endpoint.

    Args:
        endpoint_xy: ``(2,)`` planned endpoint (map frame, m); NaN gives uniform weights.
        starts_xy: ``(n,)`` follow-up starts, ``(n, 2)`` map-frame rear-axle positions, m.
        sigma_squared: σ² of the kernel, m².

    Returns:
        ``(n,)`` weights summing to 1; uniform ``1/n`` when the raw sum is NaN or ``np.isclose`` to 0.
    """
    end = np.asarray(endpoint_xy, dtype=np.float64)
    starts = np.asarray(starts_xy, dtype=np.float64).reshape(-1, 2)
    n = len(starts)
    if n == 0:
        return np.zeros(0)
    sq = (end[0] - starts[:, 0]) ** 2 + (end[1] - starts[:, 1]) ** 2
    w = np.exp(-sq / (2 * sigma_squared))
    total = w.sum()
    if np.isnan(total) or np.isclose(total, 0.0):
        return np.full(n, 1.0 / n)
    return w / total


def stage_two_weights(group: TwoStageGroup, table: TokenTable,
                      sigma_squared: float = SIGMA_SQUARED_M2) -> tuple[F64, F64]:
    """``(w_now (n,), w_prev (n,))`` of a group's follow-up pairs.

    A follow-up token missing from the table has no known start; it gets a NaN distance, which makes the
    whole side's weights uniform (the official code would raise instead).
    """
    idx = table.index()

    def side(first: str, seconds: Sequence[str]) -> F64:
        i = idx.get(first)
        end = table.endpoint_xy[i] if i is not None and table.valid[i] else np.full(2, np.nan)
        starts = np.array([table.start_xy[idx[t]] if t in idx else (np.nan, np.nan) for t in seconds],
                          dtype=np.float64).reshape(-1, 2)
        return gaussian_weights(end, starts, sigma_squared)

    return (side(group.orig_token, [p[0] for p in group.pairs]),
            side(group.prev_token, [p[1] for p in group.pairs]))


def aggregate_two_stage(table: TokenTable, groups: Sequence[TwoStageGroup],
                        sigma_squared: float = SIGMA_SQUARED_M2) -> TwoStageSummary:
    """Aggregate per-token results over the two-stage groups (see the module docstring).

    Raises:
        ValueError: no groups.
    """
    if not groups:
        raise ValueError("aggregate_two_stage: no groups")
    idx = table.index()
    n_cols = len(table.columns)
    failed: dict[str, None] = {}

    def row(token: str) -> F64:
        i = idx.get(token)
        if i is None or not table.valid[i]:
            failed.setdefault(token)
            return np.zeros(n_cols)
        return table.values[i]

    weights: dict[str, float] = {}
    group_values = np.empty((len(groups), n_cols))
    stage_one = np.empty((2 * len(groups), n_cols))
    stage_two = np.empty((2 * len(groups), n_cols))
    for g, group in enumerate(groups):
        w_now, w_prev = stage_two_weights(group, table, sigma_squared)
        s1_orig, s1_prev = row(group.orig_token), row(group.prev_token)
        weights[group.orig_token] = 1.0
        weights[group.prev_token] = 1.0
        if group.pairs:
            now_rows = np.stack([row(p[0]) for p in group.pairs])
            prev_rows = np.stack([row(p[1]) for p in group.pairs])
            # calculate_weighted_average_score divides by the weight sum (1 up to rounding).
            s2_now = (now_rows * w_now[:, None]).sum(axis=0) / w_now.sum()
            s2_prev = (prev_rows * w_prev[:, None]).sum(axis=0) / w_prev.sum()
            for (t_now, t_prev), a, b in zip(group.pairs, w_now, w_prev, strict=True):
                weights[t_now] = float(a)
                weights[t_prev] = float(b)
        else:  # an empty weighted average is NaN officially; the group then drops out of the means
            s2_now = s2_prev = np.full(n_cols, np.nan)
        stage_one[2 * g], stage_one[2 * g + 1] = s1_orig, s1_prev
        stage_two[2 * g], stage_two[2 * g + 1] = s2_now, s2_prev
        group_values[g] = (s1_orig * s2_now + s1_prev * s2_prev) / 2
    return TwoStageSummary(
        columns=tuple(table.columns),
        group_values=group_values,
        combined=_nanmean(group_values),
        stage_one=_nanmean(stage_one),
        stage_two=_nanmean(stage_two),
        weights=weights,
        failed_tokens=tuple(failed),
    )


def _nanmean(a: F64) -> F64:
    with np.errstate(invalid="ignore"):
        counts = np.isfinite(a).sum(axis=0)
        sums = np.where(np.isfinite(a), a, 0.0).sum(axis=0)
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
