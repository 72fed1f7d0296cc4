"""Waymo E2E evaluation: leaderboard aggregation over clusters of unequal size, counting of skipped and
failed frames, ADE against the top-rated rater. Expected values are worked out by hand in the comments."""

from __future__ import annotations

import numpy as np
import pytest

from adapters.waymo.labels import FrameLabels
from harness.errors import DataError
from harness.waymo_eval import WAYMO_ROW_COLUMNS, score_predictions
from metrics.rfs import rater_feedback_score

T = (np.arange(20) + 1) * 0.25  # 4 Hz, 0.25 ... 5 s


def _straight(v: float, n: int = 20, y: float = 0.0) -> np.ndarray:
    return np.stack([v * T[:n], np.full(n, y)], axis=-1)


def _frame(seq: str, idx: int, raters: list[np.ndarray], scores: list[float], v0: float = 11.0) -> FrameLabels:
    t = max((len(r) for r in raters), default=0)
    xy = np.zeros((len(raters), t, 2))
    for i, r in enumerate(raters):
        xy[i, :len(r)] = r
        xy[i, len(r):] = r[-1]
    vel = np.zeros((16, 2))
    vel[-1] = (v0, 0.0)
    return FrameLabels(frame_name=f"{seq}-{idx:03d}", sequence_id=seq, frame_index=idx, initial_speed_mps=v0,
                       past_xy=np.zeros((16, 2)), past_velocity_xy=vel, past_accel_xy=np.zeros((16, 2)), intent=1,
                       future_xy=_straight(v0), rater_trajectories=xy, rater_scores=np.array(scores, float),
                       rater_lengths=np.array([len(r) for r in raters], dtype=np.int64),
                       has_rater_labels=bool(raters) and all(s >= 0 for s in scores))


def _unlabelled(seq: str, idx: int) -> FrameLabels:
    return _frame(seq, idx, [_straight(5.0)] * 3, [-1.0] * 3)


CLUSTERS = {"s1": "Intersection", "s2": "Intersection", "s3": "Intersection", "s4": "Cut_ins"}


def _world() -> tuple[list[FrameLabels], dict[str, np.ndarray]]:
    """Three Intersection frames scoring 9, 9 and 6, one Cut_ins frame scoring the floor 4.

    Each labelled frame has one rater along +x at 11 m/s (thresholds 1.0 / 1.8 m lateral); the prediction is
    that rater shifted 1 m to the left: d_3s = 1.0 (on the boundary, inside), d_5s = 0.56, so RFS = the label
    and ADE@3s = ADE@5s = 1 m. The Cut_ins prediction is 10 m to the left: outside both regions, raw about 2e-4, floored to 4.0;
    ADE = 10 m.
    """
    frames = [_frame("s1", 10, [_straight(11.0)], [9.0]), _unlabelled("s1", 11),
              _frame("s2", 10, [_straight(11.0)], [9.0]), _frame("s3", 10, [_straight(11.0)], [6.0]),
              _frame("s4", 10, [_straight(11.0)], [7.0]), _unlabelled("s4", 11)]
    preds = {f.frame_name: _straight(11.0, y=1.0) for f in frames}
    preds["s4-010"] = _straight(11.0, y=10.0)
    return frames, preds


def test_mean_of_cluster_means_with_unequal_cluster_sizes() -> None:
    frames, preds = _world()
    res = score_predictions(preds, frames, CLUSTERS)
    assert [r["rfs"] for r in res.rows] == [9.0, 9.0, 6.0, 4.0]
    assert res.per_cluster_rfs == {"Cut_ins": 4.0, "Intersection": 8.0}  # (9 + 9 + 6) / 3
    assert res.per_cluster_count == {"Cut_ins": 1, "Intersection": 3}
    assert res.mean_of_clusters_rfs == 6.0  # (8 + 4) / 2: each cluster weighs the same
    assert res.frame_mean_rfs == 7.0  # (9 + 9 + 6 + 4) / 4
    assert res.ade_3s_m == pytest.approx((1 + 1 + 1 + 10) / 4, abs=1e-12)
    assert res.ade_5s_m == pytest.approx(13 / 4, abs=1e-12)
    assert res.fully_inside_rate == 0.75
    assert [r["fully_inside_trust_region"] for r in res.rows] == [True, True, True, False]
    assert [r["cluster"] for r in res.rows] == ["Intersection"] * 3 + ["Cut_ins"]
    assert all(set(r) == set(WAYMO_ROW_COLUMNS) for r in res.rows)
    assert res.metrics()["rfs"] == 6.0 and res.metrics()["rfs_frame_mean"] == 7.0


def test_placeholder_frames_are_skipped_and_counted() -> None:
    frames, preds = _world()
    res = score_predictions(preds, frames, CLUSTERS)
    assert (res.expected, res.scored, res.failed, res.skipped) == (6, 4, 0, 2)
    assert "s1-011" not in {r["frame_name"] for r in res.rows}
    # Without their predictions nothing changes: they were never scored.
    res2 = score_predictions({k: v for k, v in preds.items() if not k.endswith("-011")}, frames, CLUSTERS)
    assert res2.counts() == {**res.counts(), "unmatched_predictions": 0}


def test_missing_and_bad_predictions_fail_their_frame_only() -> None:
    frames, preds = _world()
    del preds["s1-010"]
    preds["s2-010"] = np.full((20, 2), np.nan)
    preds["s3-010"] = np.zeros((19, 2))
    preds["nowhere-001"] = np.zeros((20, 2))
    res = score_predictions(preds, frames, CLUSTERS)
    assert (res.expected, res.scored, res.failed, res.skipped) == (6, 1, 3, 2)
    errors = {r["frame_name"]: r["error"] for r in res.rows}
    assert errors["s1-010"] == "no prediction for this frame"
    assert "NaN" in errors["s2-010"] and "(19, 2)" in errors["s3-010"]
    assert errors["s4-010"] is None
    assert res.unmatched == ("nowhere-001",)
    failed = [r for r in res.rows if not r["valid"]]
    assert all(np.isnan(r["rfs"]) for r in failed)
    assert res.per_cluster_rfs == {"Cut_ins": 4.0} and res.mean_of_clusters_rfs == 4.0


def test_without_clusters_there_is_no_leaderboard_number() -> None:
    frames, preds = _world()
    res = score_predictions(preds, frames, None)
    assert res.mean_of_clusters_rfs is None and res.per_cluster_rfs == {}
    assert res.frame_mean_rfs == 7.0 and res.metrics()["rfs"] is None


def test_sequences_missing_from_the_cluster_file_are_an_error() -> None:
    frames, preds = _world()
    with pytest.raises(DataError, match=r"1 labelled sequence\(s\) have no scenario cluster.*s4"):
        score_predictions(preds, frames, {k: v for k, v in CLUSTERS.items() if k != "s4"})


def test_duplicate_frames_are_an_error() -> None:
    frames, preds = _world()
    with pytest.raises(DataError, match="more than once"):
        score_predictions(preds, frames + frames[:1], CLUSTERS)


def test_nothing_scored() -> None:
    frames, _ = _world()
    res = score_predictions({}, frames, CLUSTERS)
    assert (res.scored, res.failed, res.skipped) == (0, 4, 2)
    assert res.mean_of_clusters_rfs is None and np.isnan(res.frame_mean_rfs)


def test_ade_uses_the_top_rated_rater_and_ragged_batches_match_single_frames() -> None:
    # Frame a: raters scored 5, 9, 7; the prediction is the 9 one -> ADE 0, RFS 9.
    # Frame b: two raters of 12 and 21 points (ragged), the prediction is the first.
    top = _straight(8.0, y=0.5)
    a = _frame("a", 1, [_straight(8.0), top, _straight(6.0)], [5.0, 9.0, 7.0], v0=8.0)
    short = _straight(4.0, n=12)
    long = np.concatenate([_straight(4.0), [[21.0, 0.0]]])
    b = _frame("b", 1, [short, long], [6.0, 8.0], v0=4.0)
    preds = {"a-001": top, "b-001": np.concatenate([short, np.repeat(short[-1:], 8, axis=0)])}
    res = score_predictions(preds, [a, b], {"a": "x", "b": "y"})
    ra, rb = res.rows
    assert ra["rfs"] == 9.0 and ra["ade_3s"] == 0.0 and ra["ade_5s"] == 0.0
    # b: the top rater (8) is the 21-point one, truncated to 20; the prediction holds at 3 m after 3 s.
    gt = _straight(4.0)
    err = np.hypot(*(preds["b-001"] - gt).T)
    assert rb["ade_3s"] == pytest.approx(err[:12].mean(), abs=1e-12)
    assert rb["ade_5s"] == pytest.approx(err.mean(), abs=1e-12)
    for f, row in ((a, ra), (b, rb)):
        single = rater_feedback_score(preds[f.frame_name][None], f.rater_trajectories[None], f.rater_scores[None],
                                      [f.initial_speed_mps], rater_num_points=f.rater_lengths[None])
        assert row["rfs"] == single.score[0]
