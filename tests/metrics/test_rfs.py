"""Tests for metrics.rfs: hand-worked RFS/ADE cases, properties, and a per-frame loop reference.

Hand values use the definitions in specs/waymo_e2e.md §2.2 (official `rater_feedback_utils.py`):
speed scale s = clip(0.5 + 0.5 (v0 - 1.4) / 9.6, 0.5, 1); tau_lat = s (1.0, 1.8) m, tau_lng = 4 tau_lat;
d = max(|lng| / tau_lng, |lat| / tau_lat) at 3 s (index 11) and 5 s (index 19);
sigma = label * 0.1 ** max(d - 1, 0); raw = mean over horizons of the best sigma; floor 4 unless one rater
has d <= 1 at both horizons.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from metrics.rfs import (
    ade_at,
    aggregate_by_cluster,
    labelled_frames,
    rater_feedback_score,
    top_rated_trajectory,
    trust_region_thresholds,
)

T = np.arange(1, 21, dtype=np.float64)  # point k at 0.25 (k + 1) s


def straight(speed_mps: float, y_m: float = 0.0, n: int = 20) -> np.ndarray:
    """(n, 2) line along +x at constant speed, 4 Hz, from 0.25 s; shifted y_m to the left."""
    return np.stack([speed_mps * 0.25 * T[:n], np.full(n, y_m)], axis=-1)


def rfs1(pred, raters, scores, v0, **kw):
    """Scores one frame: pred (20, 2), raters list of (Ti, 2) of one length."""
    return rater_feedback_score(np.asarray(pred)[None], np.asarray(raters)[None], np.asarray(scores)[None],
                                np.array([v0]), **kw)


# -------------------------------------------------------------------------------- hand cases

def test_prediction_equal_to_a_rater_gets_its_label_even_below_the_floor():
    far = straight(11.0, y_m=40.0)
    for label in (3.0, 0.0, 7.5):
        r = rfs1(straight(11.0), [straight(11.0), far], [label, 9.0], 11.0)
        # d = 0 for rater 0 at both horizons: inside, no floor. Rater 1 is 40 m to the left: 3 s d = 40 ->
        # 9e-39; 5 s d = 22.2 -> 9 * 0.1^21.2 = 5.4e-21, which is the best 5 s score only when label = 0.
        assert r.score[0] == (label if label else pytest.approx(2.7e-21, rel=0.01))
        assert r.fully_inside_trust_region[0]


def test_far_from_every_rater_scores_the_floor():
    raters = [straight(11.0), straight(8.0, y_m=1.0), straight(5.0, y_m=-1.0)]
    r = rfs1(straight(11.0, y_m=60.0), raters, [10.0, 9.0, 8.0], 11.0)
    # d >= 59 / 1.8 everywhere: raw ~ 0, not inside -> max(4, raw) = 4 exactly.
    assert r.score[0] == 4.0
    assert not r.fully_inside_trust_region[0]
    assert r.raw_score[0] < 1e-20


def _mixed_horizons(label_a: float, label_b: float):
    a = straight(11.0)  # rater A on the x axis
    b = straight(11.0, y_m=5.0)  # rater B 5 m to the left; its axis at 3 s and 5 s is +x too
    pred = a.copy()
    pred[19] = b[19]  # on A at 3 s, on B at 5 s
    return rfs1(pred, [a, b], [label_a, label_b], 11.0)


def test_inside_rater_a_at_3s_and_rater_b_at_5s_is_the_mean_of_both_labels():
    r = _mixed_horizons(10.0, 8.0)
    # 3 s: A d=0 -> 10; B lateral 5 m / 1.0 -> d=5 -> 8 * 0.1^4 = 0.0008. Best 10 (A).
    # 5 s: A lateral 5 / 1.8 = 2.778 -> 10 * 0.1^1.778 = 0.1668; B d=0 -> 8. Best 8 (B).
    # raw = (10 + 8) / 2 = 9; no single rater holds both horizons -> not inside; max(4, 9) = 9.
    assert r.score[0] == pytest.approx(9.0, abs=1e-12)
    assert not r.fully_inside_trust_region[0]
    assert r.best_rater[0].tolist() == [0, 1]
    np.testing.assert_allclose(r.horizon_scores[0], [10.0, 8.0])


def test_mixed_horizons_with_low_labels_is_floored():
    r = _mixed_horizons(3.0, 2.0)
    # Same geometry: raw = (3 + 2) / 2 = 2.5, not inside -> floored to 4 (a single rater would not be).
    assert r.raw_score[0] == pytest.approx(2.5, abs=1e-12)
    assert r.score[0] == 4.0


def test_longitudinal_offset_of_1_2_tau_at_5s_only():
    rater = straight(11.0)
    pred = rater.copy()
    pred[19, 0] += 1.2 * 7.2  # tau_lng(5 s) = 1.0 * 4 * 1.8 = 7.2 m at v0 = 11
    r = rfs1(pred, [rater], [10.0], 11.0)
    # 3 s: d = 0 -> 10; 5 s: d = 1.2 -> 10 * 0.1^0.2 = 6.309573; raw = 8.154787; not inside (d > 1).
    assert r.score[0] == pytest.approx(8.154786722400967, rel=1e-12)
    assert not r.fully_inside_trust_region[0]
    assert r.normalized_distance[0, 0].tolist() == pytest.approx([0.0, 1.2])


def test_longitudinal_offset_of_2_tau_at_5s():
    rater = straight(11.0)
    pred = rater.copy()
    pred[19, 0] -= 2.0 * 7.2
    # 5 s: d = 2 -> 10 * 0.1 = 1; raw = (10 + 1) / 2 = 5.5 (spec worked example).
    assert rfs1(pred, [rater], [10.0], 11.0).score[0] == pytest.approx(5.5, rel=1e-12)


def test_thresholds_scale_with_initial_speed():
    lat, lng = trust_region_thresholds(np.array([0.0, 1.4, 6.2, 8.0, 11.0, 22.0]))
    # s = 0.5 (clipped), 0.5, 0.5 + 0.5 * 4.8 / 9.6 = 0.75, 0.5 + 0.5 * 6.6 / 9.6 = 0.84375, 1, 1 (clipped).
    s = np.array([0.5, 0.5, 0.75, 0.84375, 1.0, 1.0])
    np.testing.assert_allclose(lat, s[:, None] * [1.0, 1.8], rtol=1e-12)
    np.testing.assert_allclose(lng, s[:, None] * [4.0, 7.2], rtol=1e-12)


@pytest.mark.parametrize(("v0", "expected"), [
    # s = 0.5: tau_lat 0.5 / 0.9. d3 = 2.4 -> 10 * 0.1^1.4 = 0.398107;
    # d5 = 1.333 -> 10 * 0.1^(1/3) = 4.641589; raw 2.519848, not inside -> floor 4.
    (0.0, 4.0), (1.4, 4.0),
    # s = 0.75: tau_lat 0.75 / 1.35. d3 = 1.6 -> 10 * 0.1^0.6 = 2.511886; d5 = 0.889 -> 10; raw 6.255943.
    (6.2, 6.25594321575479),
    # s = 1: tau_lat 1.0 / 1.8. d3 = 1.2 -> 6.309573; d5 = 0.667 -> 10; raw 8.154787.
    (11.0, 8.154786722400967), (25.0, 8.154786722400967),
])
def test_speed_scaling_of_a_1_2_m_lateral_offset(v0, expected):
    rater = straight(max(v0, 1.0))
    r = rfs1(rater + [0.0, 1.2], [rater], [10.0], v0)
    assert r.score[0] == pytest.approx(expected, rel=1e-12)
    assert not r.fully_inside_trust_region[0]


def test_lateral_1_5_m_spec_examples():
    rater = straight(11.0)
    # v0 = 11: d3 = 1.5 -> 3.162278, d5 = 0.833 -> 10, raw 6.581139.
    assert rfs1(rater + [0, 1.5], [rater], [10.0], 11.0).score[0] == pytest.approx(
        (10 * 0.1**0.5 + 10) / 2, rel=1e-12)
    # v0 = 1.4: d3 = 3 -> 0.1, d5 = 1.667 -> 2.154435, raw 1.127217 -> floor 4.
    assert rfs1(rater + [0, 1.5], [rater], [10.0], 1.4).score[0] == 4.0


def test_short_rater_is_held_at_its_last_point():
    rater12 = straight(11.0, n=12)  # ends at (33, 0) at 3 s
    r = rfs1(straight(11.0), [rater12], [10.0], 11.0)
    # 3 s: on the rater -> 10. 5 s: rater held at (33, 0), axis carried from the last motion (+x);
    # prediction at (55, 0): 22 m longitudinal / 7.2 -> d = 3.0556 -> 10 * 0.1^2.0556 = 0.087992.
    # raw = (10 + 0.087992) / 2 = 5.043996 > 4.
    assert r.score[0] == pytest.approx(5.043996127178455, rel=1e-12)
    # Same as handing in the padded 20-point trajectory, or NaN padding with rater_num_points.
    held = np.concatenate([rater12, np.repeat(rater12[-1:], 8, axis=0)])
    assert rfs1(straight(11.0), [held], [10.0], 11.0).score[0] == r.score[0]
    nan_padded = np.concatenate([rater12, np.full((9, 2), np.nan)])
    r2 = rfs1(straight(11.0), [nan_padded], [10.0], 11.0, rater_num_points=np.array([[12]]))
    assert r2.score[0] == r.score[0]


def test_long_rater_is_truncated_to_20_points():
    rater21 = np.concatenate([straight(11.0), [[1000.0, 1000.0]]])
    assert rfs1(straight(11.0) + [0, 1.2], [rater21], [10.0], 11.0).score[0] == pytest.approx(
        8.154786722400967, rel=1e-12)


def test_only_the_first_three_present_raters_count():
    far = straight(11.0, y_m=50.0)
    # The 4th rater matches the prediction but the official code keeps the first 3 -> floor 4.
    r = rfs1(straight(11.0), [far, far, far, straight(11.0)], [9.0, 9.0, 9.0, 10.0], 11.0)
    assert r.score[0] == 4.0
    # Unsetting an earlier slot brings the 4th into the first three present ones -> 10.
    mask = np.array([[True, False, True, True]])
    assert rfs1(straight(11.0), [far, far, far, straight(11.0)], [9.0, 9.0, 9.0, 10.0], 11.0,
                rater_mask=mask).score[0] == 10.0


def test_fewer_raters_equal_the_last_one_repeated():
    a, b = straight(11.0, y_m=0.7), straight(9.0)
    pred = straight(10.0)
    two = rfs1(pred, [a, b], [6.0, 9.0], 10.0).score[0]
    three = rfs1(pred, [a, b, b], [6.0, 9.0, 9.0], 10.0).score[0]
    assert two == three


def test_rater_standing_still_uses_its_first_displacement_or_the_ego_x_axis():
    # Rater moves to (2, 0) at 0.25 s and stays: axis +x from the origin -> lateral 0.5 m at v0 = 11.
    still = np.tile([2.0, 0.0], (20, 1))
    assert rfs1(still + [0, 0.5], [still], [10.0], 11.0).fully_inside_trust_region[0]
    # Rater never moves: axis (1, 0); an offset of 3 m along +x is longitudinal (3 / 4 < 1) -> 10.
    origin = np.zeros((20, 2))
    assert rfs1(np.tile([3.0, 0.0], (20, 1)), [origin], [10.0], 11.0).score[0] == 10.0


def test_rotation_about_the_ego_is_not_an_invariance_for_a_stationary_rater():
    origin = np.zeros((20, 2))
    # Rotated by 90 deg: the offset (0, 3) is lateral w.r.t. the fixed (1, 0) axis: d3 = 3 -> 0.1,
    # d5 = 3 / 1.8 = 1.667 -> 10 * 0.1^(2/3) = 2.154435; raw 1.127217 -> floor 4.
    assert rfs1(np.tile([0.0, 3.0], (20, 1)), [origin], [10.0], 11.0).score[0] == 4.0


def test_translation_changes_the_first_displacement():
    still = np.tile([2.0, 0.0], (20, 1))
    pred = np.tile([5.0, 0.0], (20, 1))
    # Axis +x, offset 3 m longitudinal: d3 = 0.75, d5 = 0.417 -> inside -> 10.
    assert rfs1(pred, [still], [10.0], 11.0).score[0] == 10.0
    # Shifted by (-2, -3): the rater's first displacement is (0, -3), so the same offset is lateral:
    # d3 = 3 -> 0.1; d5 = 1.667 -> 2.154435; raw 1.127217 -> floor 4.
    assert rfs1(pred - [2.0, 3.0], [still - [2.0, 3.0]], [10.0], 11.0).score[0] == 4.0


def test_only_the_3s_and_5s_points_of_the_prediction_matter():
    rater = straight(11.0)
    pred = rater + [0.0, 30.0]
    pred[[11, 19]] = rater[[11, 19]]
    assert rfs1(pred, [rater], [7.0], 11.0).score[0] == 7.0


def test_moving_farther_can_raise_the_score_of_a_low_rated_match():
    # Official behaviour, not monotone: inside a rater labelled 3 -> 3; just outside it -> floored to 4.
    rater = straight(11.0)
    inside, outside = rater.copy(), rater.copy()
    inside[11, 1] += 0.99  # d3 = 0.99
    outside[11, 1] += 1.01  # d3 = 1.01 -> raw = (3 * 0.1^0.01 + 3) / 2 = 2.9655 -> floor 4
    assert rfs1(inside, [rater], [3.0], 11.0).score[0] == 3.0
    assert rfs1(outside, [rater], [3.0], 11.0).score[0] == 4.0


def test_frequency_and_length_are_parameters():
    # At 1 Hz over 5 s the horizons are indices 2 and 4. Rater straight at 11 m/s, offset 1.2 m left.
    rater = np.stack([11.0 * np.arange(1, 6), np.zeros(5)], axis=-1)
    r = rfs1(rater + [0, 1.2], [rater], [10.0], 11.0, frequency_hz=1)
    assert r.score[0] == pytest.approx(8.154786722400967, rel=1e-12)


# -------------------------------------------------------------------------------- validation

def test_invalid_inputs_raise_value_errors_that_name_the_argument():
    rater, pred = straight(11.0), straight(11.0)
    with pytest.raises(ValueError, match=r"pred_xy must have shape \(F, 20, 2\).*\(1, 21, 2\)"):
        rater_feedback_score(np.zeros((1, 21, 2)), rater[None, None], [[5.0]], [1.0])
    bad = pred.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="pred_xy has 1 non-finite"):
        rfs1(bad, [rater], [5.0], 1.0)
    with pytest.raises(ValueError, match="rater_scores.*-1.*labelled_frames"):
        rfs1(pred, [rater, rater], [-1.0, 5.0], 1.0)
    with pytest.raises(ValueError, match="rater_mask: 1 frames have no rater"):
        rfs1(pred, [rater], [5.0], 1.0, rater_mask=np.array([[False]]))
    with pytest.raises(ValueError, match="initial_speed_mps must be >= 0"):
        rfs1(pred, [rater], [5.0], -1.0)
    with pytest.raises(ValueError, match=r"initial_speed_mps must have shape \(F,\)"):
        rater_feedback_score(pred[None], rater[None, None], [[5.0]], [1.0, 2.0])
    with pytest.raises(ValueError, match="rater_scores must have shape"):
        rater_feedback_score(pred[None], rater[None, None], [5.0], [1.0])
    with pytest.raises(ValueError, match="rater_xy .*non-finite"):
        rfs1(pred, [np.full((20, 2), np.nan)], [5.0], 1.0)
    with pytest.raises(ValueError, match=r"rater_num_points\[0, 0\] = 0"):
        rfs1(pred, [rater], [5.0], 1.0, rater_num_points=np.array([[0]]))
    with pytest.raises(ValueError, match="rater_xy has 2 frames but pred_xy has 1"):
        rater_feedback_score(pred[None], np.stack([rater, rater])[:, None], [[5.0], [5.0]], [1.0])


def test_unused_slots_may_hold_placeholders():
    rater = straight(11.0)
    raters = np.stack([rater, np.full((20, 2), np.nan)])[None]
    r = rater_feedback_score(straight(11.0)[None], raters, [[6.0, -1.0]], [11.0],
                             rater_mask=np.array([[True, False]]))
    assert r.score[0] == 6.0
    assert r.normalized_distance[0, 1].tolist() == [np.inf, np.inf]


def test_labelled_frames():
    scores = np.array([[-1.0, -1.0, -1.0], [5.0, 6.0, 7.0], [5.0, -1.0, 7.0], [8.0, -1.0, -1.0]])
    mask = np.array([[True] * 3, [True] * 3, [True] * 3, [True, False, False]])
    assert labelled_frames(scores, mask).tolist() == [False, True, False, True]
    assert labelled_frames(scores).tolist() == [False, True, False, False]


# -------------------------------------------------------------------------------- ADE

def test_ade_at_3s_and_5s():
    gt = straight(10.0)[None]
    np.testing.assert_allclose(ade_at(gt + [3.0, 4.0], gt, 3.0), [5.0])  # 5 m at every point
    pred = gt.copy()
    pred[0, 12:, 1] += 1.0  # 1 m off for the 8 points after 3 s
    assert ade_at(pred, gt, 3.0)[0] == 0.0  # points 0..11 only
    assert ade_at(pred, gt, 5.0)[0] == pytest.approx(8 / 20)
    with pytest.raises(ValueError, match="whole number of points"):
        ade_at(pred, gt, 3.1)
    with pytest.raises(ValueError, match="whole number of points"):
        ade_at(pred, gt, 6.0)


def test_top_rated_trajectory_is_the_first_best_label_padded_to_20_points():
    a, b, c = straight(5.0), straight(8.0, n=12), straight(9.0)
    raters = np.stack([a, np.concatenate([b, np.full((8, 2), np.nan)]), c])[None]
    top = top_rated_trajectory(raters, [[6.0, 9.0, 9.0]], rater_num_points=np.array([[20, 12, 20]]))
    np.testing.assert_array_equal(top[0, :12], b)  # ties go to the first
    np.testing.assert_array_equal(top[0, 12:], np.repeat(b[-1:], 8, axis=0))
    # ADE@5s against it: the prediction equal to c is 1 m/s faster than b up to 3 s, then keeps going.
    expected = (np.sum(0.25 * T[:12]) + np.sum(c[12:, 0] - b[-1, 0])) / 20
    assert ade_at(c[None], top, 5.0)[0] == pytest.approx(expected)


# -------------------------------------------------------------------------------- clusters

def test_cluster_aggregation_weights_clusters_equally():
    agg = aggregate_by_cluster([9.0, 9.0, 6.0, 4.0], ["intersection"] * 3 + ["cut_in"])
    # intersection = (9 + 9 + 6) / 3 = 8; cut_in = 4; mean of clusters (8 + 4) / 2 = 6; frame mean 28 / 4 = 7.
    assert agg.per_cluster == {"cut_in": 4.0, "intersection": 8.0}
    assert agg.per_cluster_count == {"cut_in": 1, "intersection": 3}
    assert agg.mean_of_clusters == 6.0
    assert agg.frame_mean == 7.0
    agg = aggregate_by_cluster([10.0, 4.0, 4.0, 7.0, 7.0, 7.0, 7.0, 7.0], list("abbccccc"))
    # a = 10, b = 4, c = 7 -> mean of clusters 7; frame mean 53 / 8 = 6.625.
    assert agg.mean_of_clusters == pytest.approx(7.0)
    assert agg.frame_mean == pytest.approx(6.625)
    with pytest.raises(ValueError, match="clusters must be 2 strings"):
        aggregate_by_cluster([1.0, 2.0], ["a"])
    with pytest.raises(ValueError, match="scores must have shape"):
        aggregate_by_cluster([], [])


# -------------------------------------------------------------------------------- reference loop

def loop_rfs(pred_xy, rater_xy, rater_scores, initial_speed_mps, rater_mask=None, rater_num_points=None,
             decay_factor=0.1, min_score=4.0):
    """Per-frame loop following the official algorithm step by step (written independently)."""
    pred_xy = np.asarray(pred_xy, dtype=np.float64)
    f_count, r_count, t_count = np.shape(rater_xy)[:3]
    scores_out = np.empty(f_count)
    inside_out = np.empty(f_count, dtype=bool)
    for f in range(f_count):
        trajs, labels = [], []
        for r in range(r_count):
            if rater_mask is None or rater_mask[f][r]:
                n = t_count if rater_num_points is None else int(rater_num_points[f][r])
                trajs.append([(float(x), float(y)) for x, y in rater_xy[f][r][:n]])
                labels.append(float(rater_scores[f][r]))
        trajs, labels = trajs[:3], labels[:3]
        while len(trajs) < 3:
            trajs.append(trajs[-1])
            labels.append(labels[-1])
        v = float(initial_speed_mps[f])
        scale = min(max(0.5 + 0.5 * (v - 1.4) / (11 - 1.4), 0.5), 1.0)
        tau_lat = (scale * 1.0, scale * 1.8)
        tau_lng = (scale * 4.0, scale * (1.8 * 4.0))
        best = [-math.inf, -math.inf]
        inside = False
        for traj, label in zip(trajs, labels):
            traj = (traj + [traj[-1]] * 20)[:20]
            axes = []
            prev = (0.0, 0.0)
            for t in range(20):
                dx, dy = traj[t][0] - prev[0], traj[t][1] - prev[1]
                if math.sqrt(dx * dx + dy * dy) == 0.0:
                    dx, dy = (1.0, 0.0) if t == 0 else axes[t - 1]
                axes.append((dx, dy))
                prev = traj[t]
            ds = []
            for k, idx in enumerate((11, 19)):
                ax, ay = axes[idx]
                norm = math.sqrt(ax * ax + ay * ay)
                ox, oy = pred_xy[f, idx, 0] - traj[idx][0], pred_xy[f, idx, 1] - traj[idx][1]
                lng = abs((ax / norm) * ox + (ay / norm) * oy)
                lat = abs((-ay / norm) * ox + (ax / norm) * oy)
                d = max(lng / tau_lng[k], lat / tau_lat[k])
                ds.append(d)
                best[k] = max(best[k], label * decay_factor ** max(d - 1.0, 0.0))
            inside = inside or (ds[0] <= 1.0 and ds[1] <= 1.0)
        raw = (best[0] + best[1]) / 2
        scores_out[f] = raw if inside else max(min_score, raw)
        inside_out[f] = inside
    return scores_out, inside_out


def random_scenes(rng: np.random.Generator, frames: int, raters: int = 3, points: int = 21):
    """Random labelled frames: raters as cumulative random steps (some still), predictions near one."""
    step_scale = rng.choice([0.0, 0.5, 2.5], (frames, raters, 1, 1))
    steps = rng.normal(0.0, 1.0, (frames, raters, points, 2)) * step_scale
    steps[rng.random((frames, raters, points)) < 0.2] = 0.0
    rater_xy = np.cumsum(steps, axis=2)
    mask = rng.random((frames, raters)) < 0.85
    mask[:, 0] |= ~mask.any(axis=1)
    num_points = rng.integers(1, points + 1, (frames, raters))
    scores = rng.uniform(0.0, 10.0, (frames, raters)).round(1)
    speed = rng.uniform(0.0, 15.0, frames)
    near = np.minimum(np.arange(20), num_points[:, 0, None] - 1)
    base = np.take_along_axis(rater_xy[:, 0], near[..., None], axis=1)
    pred = base + rng.normal(0.0, 1.0, (frames, 20, 2)) * rng.choice([0.0, 0.3, 1.5, 6.0], (frames, 1, 1))
    return pred, rater_xy, scores, speed, mask, num_points


def test_vectorised_matches_the_loop_on_random_frames():
    rng = np.random.default_rng(7)
    for decay, floor in ((0.1, 4.0), (0.3, 0.0)):
        pred, xy, scores, speed, mask, npts = random_scenes(rng, 400, raters=4)
        res = rater_feedback_score(pred, xy, scores, speed, rater_mask=mask, rater_num_points=npts,
                                   decay_factor=decay, min_score_outside_trust_region=floor)
        ref_score, ref_inside = loop_rfs(pred, xy, scores, speed, mask, npts, decay, floor)
        np.testing.assert_array_equal(res.fully_inside_trust_region, ref_inside)
        # Not bit-exact: Python's ** (libm pow) and numpy's vectorised power may differ in the last bit.
        np.testing.assert_allclose(res.score, ref_score, rtol=1e-13, atol=1e-13)
        assert 0.1 < ref_inside.mean() < 0.9  # both branches exercised


# -------------------------------------------------------------------------------- properties

@st.composite
def scenes(draw, max_raters: int = 3):
    f = draw(st.integers(1, 4))
    r = draw(st.integers(1, max_raters))
    tr = draw(st.integers(1, 24))
    coord = st.floats(-4.0, 4.0, allow_nan=False, width=64)
    steps = draw(hnp.arrays(np.float64, (f, r, tr, 2), elements=coord))
    still = draw(hnp.arrays(np.bool_, (f, r, tr)))
    rater_xy = np.cumsum(np.where(still[..., None], 0.0, steps), axis=2)
    pred = draw(hnp.arrays(np.float64, (f, 20, 2), elements=st.floats(-30.0, 30.0, width=64)))
    scores = draw(hnp.arrays(np.float64, (f, r), elements=st.floats(0.0, 10.0)))
    speed = draw(hnp.arrays(np.float64, (f,), elements=st.floats(0.0, 30.0)))
    return pred, rater_xy, scores, speed


PROPS = settings(max_examples=60, deadline=None)


@PROPS
@given(scenes())
def test_score_range_and_determinism(scene):
    pred, xy, scores, speed = scene
    copies = [a.copy() for a in scene]
    r1 = rater_feedback_score(pred, xy, scores, speed)
    r2 = rater_feedback_score(pred, xy, scores, speed)
    assert np.all((r1.score >= 0.0) & (r1.score <= 10.0))
    assert np.all(r1.fully_inside_trust_region | (r1.score >= 4.0))
    np.testing.assert_array_equal(r1.score, r2.score)
    for a, b in zip(scene, copies):
        np.testing.assert_array_equal(a, b)  # inputs untouched


@PROPS
@given(scenes(), st.randoms(use_true_random=False))
def test_rater_permutation_invariance(scene, rnd):
    pred, xy, scores, speed = scene
    perm = list(range(xy.shape[1]))
    rnd.shuffle(perm)
    a = rater_feedback_score(pred, xy, scores, speed)
    b = rater_feedback_score(pred, xy[:, perm], scores[:, perm], speed)
    np.testing.assert_array_equal(a.score, b.score)
    np.testing.assert_array_equal(a.fully_inside_trust_region, b.fully_inside_trust_region)


@PROPS
@given(scenes())
def test_mirror_invariance(scene):
    pred, xy, scores, speed = scene
    flip = np.array([1.0, -1.0])
    a = rater_feedback_score(pred, xy, scores, speed)
    b = rater_feedback_score(pred * flip, xy * flip, scores, speed)
    np.testing.assert_array_equal(a.score, b.score)  # exact: only |projections| enter, (1, 0) is unchanged


@st.composite
def moving_scenes(draw):
    """Raters that move at every step (at least 0.1 m), so the (1, 0) fallback axis is never used."""
    f, r, tr = draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(st.integers(12, 24))
    length = draw(hnp.arrays(np.float64, (f, r, tr), elements=st.floats(0.1, 4.0)))
    heading = draw(hnp.arrays(np.float64, (f, r, tr), elements=st.floats(-math.pi, math.pi)))
    xy = np.cumsum(np.stack([length * np.cos(heading), length * np.sin(heading)], axis=-1), axis=2)
    pred = draw(hnp.arrays(np.float64, (f, 20, 2), elements=st.floats(-30.0, 30.0, width=64)))
    scores = draw(hnp.arrays(np.float64, (f, r), elements=st.floats(0.0, 10.0)))
    speed = draw(hnp.arrays(np.float64, (f,), elements=st.floats(0.0, 30.0)))
    return pred, xy, scores, speed


@PROPS
@given(moving_scenes(), st.floats(-math.pi, math.pi))
def test_rotation_about_the_ego_for_moving_raters(scene, angle):
    pred, xy, scores, speed = scene
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    a = rater_feedback_score(pred, xy, scores, speed)
    assume(np.all(np.abs(a.normalized_distance - 1.0) > 1e-6))  # no rounding across a region boundary
    b = rater_feedback_score(pred @ rot.T, xy @ rot.T, scores, speed)
    np.testing.assert_allclose(a.score, b.score, rtol=1e-9, atol=1e-9)


@PROPS
@given(scenes(max_raters=1), st.floats(1.0, 10.0),
       hnp.arrays(np.float64, (3,), elements=st.floats(4.0, 10.0)))
def test_moving_away_from_the_raters_never_raises_the_score(scene, factor, labels):
    # One rater trajectory in all three slots, labels >= the floor: scaling the prediction's offsets from it
    # scales every normalised distance, so neither horizon score can grow and leaving a region cannot jump
    # above the score inside it (the label-3 case above shows why labels < 4 are excluded).
    pred, xy, _, speed = scene
    xy3 = np.repeat(xy, 3, axis=1)
    scores = np.broadcast_to(labels, (xy.shape[0], 3))
    base = rater_feedback_score(pred, xy3, scores, speed)
    held = np.minimum(np.arange(20), xy.shape[2] - 1)
    rater20 = xy[:, 0, held]
    farther = rater20 + factor * (pred - rater20)
    moved = rater_feedback_score(farther, xy3, scores, speed)
    assert np.all(moved.score <= base.score + 1e-9)
    assert np.all(moved.raw_score <= base.raw_score + 1e-9)
