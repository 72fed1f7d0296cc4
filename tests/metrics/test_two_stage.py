"""Two-stage (navhard) aggregation: hand-worked weights, group products and summary rows."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metrics.two_stage import (
    SIGMA_SQUARED_M2,
    TokenTable,
    TwoStageGroup,
    aggregate_two_stage,
    gaussian_weights,
)

LN2 = float(np.log(2.0))


def test_gaussian_weights_by_hand():
    # d² = 0 -> raw 1; d² = 2·σ²·ln 2 = 0.2 ln 2 -> raw exp(-ln 2) = 1/2; normalised 2/3 and 1/3.
    d = np.sqrt(0.2 * LN2)
    w = gaussian_weights((0.0, 0.0), [(0.0, 0.0), (d, 0.0)])
    np.testing.assert_allclose(w, [2 / 3, 1 / 3], atol=1e-15)
    # squared distance, not distance: d = 0.5 m -> exp(-0.25 / 0.2) = 0.2865 against 1
    w = gaussian_weights((1.0, 2.0), [(1.0, 2.0), (1.3, 2.4)])
    np.testing.assert_allclose(w, [1 / (1 + np.exp(-1.25)), np.exp(-1.25) / (1 + np.exp(-1.25))], atol=1e-15)
    assert SIGMA_SQUARED_M2 == 0.1


def test_endpoint_far_from_every_follow_up_start_gives_uniform_weights():
    # 2.5 m and 3.0 m away: raw exp(-31.25) + exp(-45) ≈ 2.7e-14 is np.isclose to 0 -> uniform, even though
    # the raw weights differ by a factor of 1e6.
    w = gaussian_weights((0.0, 0.0), [(2.5, 0.0), (0.0, 3.0)])
    np.testing.assert_array_equal(w, [0.5, 0.5])
    # 1.5 m: exp(-11.25) = 1.3e-5 is not close to 0 -> Gaussian, all of it on the nearer start
    w = gaussian_weights((0.0, 0.0), [(1.5, 0.0), (3.0, 0.0)])
    assert w[0] == pytest.approx(1.0, abs=1e-9)
    # NaN endpoint (a failed stage-1 token) -> uniform
    np.testing.assert_array_equal(gaussian_weights((np.nan, np.nan), [(0, 0), (1, 1), (2, 2)]), [1 / 3] * 3)


def _table(rows: dict[str, tuple[bool, tuple[float, float], tuple[float, float], tuple[float, float]]]):
    """token -> (valid, (score, nc), endpoint, start)."""
    toks = tuple(rows)
    return TokenTable(
        tokens=toks,
        columns=("score", "no_at_fault_collisions"),
        values=np.array([rows[t][1] for t in toks], dtype=float),
        valid=np.array([rows[t][0] for t in toks]),
        endpoint_xy=np.array([rows[t][2] for t in toks], dtype=float),
        start_xy=np.array([rows[t][3] for t in toks], dtype=float),
    )


def test_group_arithmetic_by_hand():
    d = float(np.sqrt(0.2 * LN2))
    nan = (np.nan, np.nan)
    rows = {
        # group A: orig ends at (0, 0); its follow-ups start at (0, 0) and (d, 0) -> weights 2/3, 1/3
        "origA": (True, (0.9, 1.0), (0.0, 0.0), (-20.0, 0.0)),
        "prevA": (True, (0.8, 0.5), (50.0, 50.0), (-24.0, 0.0)),  # far from its follow-ups -> uniform
        "nowA1": (True, (0.6, 1.0), nan, (0.0, 0.0)),
        "nowA2": (True, (0.3, 0.0), nan, (d, 0.0)),
        "prvA1": (True, (1.0, 1.0), nan, (-4.0, 0.0)),
        "prvA2": (True, (0.5, 0.5), nan, (-4.0, 1.0)),
        # group B: orig failed (scores 0, no endpoint -> uniform), prev is fine
        "origB": (False, (np.nan, np.nan), nan, (100.0, 0.0)),
        "prevB": (True, (1.0, 1.0), (104.0, 0.0), (96.0, 0.0)),
        "nowB1": (True, (0.2, 1.0), nan, (104.0, 0.0)),
        "nowB2": (True, (0.6, 1.0), nan, (104.0, 3.0)),
        "prvB1": (True, (0.4, 0.5), nan, (104.0, 0.0)),  # at prev's endpoint: weight 1
        # prvB2 is missing from the table: it scores 0 and has no start (NaN) -> that side is uniform
    }
    groups = [TwoStageGroup("origA", "prevA", (("nowA1", "prvA1"), ("nowA2", "prvA2"))),
              TwoStageGroup("origB", "prevB", (("nowB1", "prvB1"), ("nowB2", "prvB2")))]
    out = aggregate_two_stage(_table(rows), groups)
    # group A, score: G1 = 0.9 (2/3·0.6 + 1/3·0.3) = 0.9·0.5 = 0.45; G2 = 0.8 (0.5·1.0 + 0.5·0.5) = 0.6
    #   -> 0.525. nc: G1 = 1.0 (2/3·1 + 1/3·0) = 2/3; G2 = 0.5 (0.5·1 + 0.5·0.5) = 0.375 -> (2/3 + 0.375)/2
    # group B, score: G1 = 0 (failed orig); G2 = 1.0 (0.5·0.4 + 0.5·0) = 0.2 -> 0.1.
    #   nc: G1 = 0; G2 = 1.0 (0.5·0.5 + 0.5·0) = 0.25 -> 0.125
    np.testing.assert_allclose(out.group_values, [[0.525, (2 / 3 + 0.375) / 2], [0.1, 0.125]], atol=1e-15)
    assert out.value("combined", "score") == pytest.approx((0.525 + 0.1) / 2, abs=1e-15)
    # stage one: mean of 0.9, 0.8, 0, 1.0 = 0.675
    assert out.value("stage_one", "score") == pytest.approx(0.675, abs=1e-15)
    # stage two: mean of 0.5, 0.75, (0.2 + 0.6)/2 = 0.4 (uniform: orig B has no endpoint), 0.2 = 0.4625
    assert out.value("stage_two", "score") == pytest.approx((0.5 + 0.75 + 0.4 + 0.2) / 4, abs=1e-15)
    assert out.failed_tokens == ("origB", "prvB2")
    assert out.weights["nowA1"] == pytest.approx(2 / 3) and out.weights["prvA2"] == 0.5
    assert out.weights["origA"] == 1.0 and out.weights["nowB2"] == 0.5
    # the combined score is a mean of products, not stage_one × stage_two
    assert out.value("combined", "score") != pytest.approx(0.675 * 0.4625)


def test_group_without_follow_ups_drops_out_of_the_means():
    rows = {"o": (True, (1.0, 1.0), (0, 0), (0, 0)), "p": (True, (1.0, 1.0), (0, 0), (0, 0)),
            "o2": (True, (0.5, 1.0), (0, 0), (0, 0)), "p2": (True, (0.5, 1.0), (0, 0), (0, 0)),
            "n": (True, (0.4, 1.0), (0, 0), (0, 0)), "q": (True, (0.2, 1.0), (0, 0), (0, 0))}
    out = aggregate_two_stage(_table(rows), [TwoStageGroup("o", "p", ()), TwoStageGroup("o2", "p2", (("n", "q"),))])
    assert np.isnan(out.group_values[0, 0])
    assert out.value("combined", "score") == pytest.approx((0.5 * 0.4 + 0.5 * 0.2) / 2)


def test_input_validation():
    with pytest.raises(ValueError, match="no groups"):
        aggregate_two_stage(_table({"a": (True, (1.0, 1.0), (0, 0), (0, 0))}), [])
    with pytest.raises(ValueError, match="finite"):
        _table({"a": (True, (np.nan, 1.0), (0, 0), (0, 0))})
    with pytest.raises(ValueError, match="now_2, prev_2"):
        TwoStageGroup("a", "b", (("x",),))  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(-50, 50), st.floats(-50, 50)), min_size=1, max_size=8),
       st.tuples(st.floats(-50, 50), st.floats(-50, 50)), st.floats(-1e4, 1e4), st.floats(-1e4, 1e4),
       st.floats(-np.pi, np.pi))
def test_weights_sum_to_one_and_are_rigid_motion_invariant(starts, end, tx, ty, theta):
    w = gaussian_weights(end, starts)
    assert w.sum() == pytest.approx(1.0) and np.all(w >= 0)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    moved = np.asarray(starts) @ rot.T + (tx, ty)
    w2 = gaussian_weights(rot @ np.asarray(end) + (tx, ty), moved)
    np.testing.assert_allclose(w, w2, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=6, max_size=6))
def test_scores_in_range(vals):
    rows = {t: (True, (v, v), (0.0, 0.0), (0.0, float(i))) for i, (t, v) in enumerate(zip("opabcd", vals, strict=True))}
    out = aggregate_two_stage(_table(rows), [TwoStageGroup("o", "p", (("a", "b"), ("c", "d")))])
    assert 0 <= out.value("combined", "score") <= 1
    again = aggregate_two_stage(_table(rows), [TwoStageGroup("o", "p", (("a", "b"), ("c", "d")))])
    np.testing.assert_array_equal(out.group_values, again.group_values)
