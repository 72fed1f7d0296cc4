"""FrameLabels from E2EDFrames: shapes, v0, placeholders, ragged raters, and every malformed case."""

from __future__ import annotations

import numpy as np
import pytest

from adapters.waymo import schema
from adapters.waymo.labels import frame_labels, frame_name, split_frame_name
from harness.errors import DataError
from tests.adapters.waymo.frames import future, past


def _msg(name: str = "8e737334b520fdd0c04e36f463b2d211-085", **kw) -> schema.E2EDFrame:
    from adapters.waymo.world_writer import make_frame

    args = dict(intent=2, future_xy=future()) | past(3.0) | kw
    return make_frame(name, **args)


def test_names_split_on_the_last_dash() -> None:
    assert split_frame_name("8e737334b520fdd0c04e36f463b2d211-085") == ("8e737334b520fdd0c04e36f463b2d211", 85)
    assert split_frame_name("a-b-7") == ("a-b", 7)
    assert frame_name("abc", 8) == "abc-008" and frame_name("abc", 149) == "abc-149"
    for bad in ("abc", "-5", "abc-", "abc-x1", "abc-٣"):
        with pytest.raises(ValueError):
            split_frame_name(bad)


def test_labelled_frame() -> None:
    t = (np.arange(21) + 1) * 0.25
    raters = [(np.column_stack([3 * t, 0 * t]), 10.0), (np.column_stack([2 * t[:12], 0 * t[:12]]), 6.0),
              (np.column_stack([3 * t, 0.1 * t]), 3.0)]
    v = past(3.0)
    v["past_velocity_xy"] = v["past_velocity_xy"].copy()
    v["past_velocity_xy"][-1] = (3.0, 4.0)
    lab = frame_labels(_msg(raters=raters, **v), source="mem")
    assert lab.sequence_id == "8e737334b520fdd0c04e36f463b2d211" and lab.frame_index == 85
    assert lab.initial_speed_mps == pytest.approx(5.0)
    assert lab.intent == 2 and lab.has_rater_labels
    assert lab.past_xy.shape == (16, 2) and lab.future_xy.shape == (20, 2)
    assert lab.rater_trajectories.shape == (3, 21, 2)
    np.testing.assert_array_equal(lab.rater_lengths, [21, 12, 21])
    np.testing.assert_array_equal(lab.rater_scores, [10, 6, 3])
    # the short rater is held at its last point, as the metric pads
    np.testing.assert_allclose(lab.rater_trajectories[1, 11:], np.tile(raters[1][0][-1], (10, 1)), atol=1e-6)
    assert [r.shape for r in lab.valid_raters] == [(21, 2), (12, 2), (21, 2)]
    assert not lab.past_xy.flags.writeable


def test_placeholders_test_and_train_frames() -> None:
    ph = frame_labels(_msg(raters=[(np.zeros((0, 2)), -1.0)] * 3), source="mem")
    assert not ph.has_rater_labels and ph.rater_scores.tolist() == [-1, -1, -1] and ph.valid_raters == ()
    assert ph.rater_trajectories.shape == (3, 0, 2)
    test = frame_labels(_msg(future_xy=None), source="mem")
    assert test.future_xy is None and test.rater_trajectories.shape == (0, 0, 2) and not test.has_rater_labels


@pytest.mark.parametrize("change, match", [
    (dict(future_xy=future(n=19)), "19 positions, expected 20"),
    (dict(future_xy=np.full((20, 2), np.nan)), "future_states has NaN"),
    (dict(past_xy=np.zeros((15, 2))), "15 pos x/y values, expected 16"),
    (dict(past_velocity_xy=np.full((16, 2), np.inf)), "past_states vel has NaN or inf"),
    (dict(raters=[(np.zeros((21, 2)), -1.0), (np.zeros((21, 2)), 7.0)]), "mix -1 placeholders"),
    (dict(raters=[(np.zeros((21, 2)), 11.0)]), "neither -1 nor in"),
    (dict(raters=[(np.zeros((0, 2)), 8.0)]), "no points"),
])
def test_malformed_frames_name_source_and_frame(change, match) -> None:
    with pytest.raises(DataError, match=match) as exc:
        frame_labels(_msg(**change), source="shard-7 at byte offset 12")
    assert "shard-7 at byte offset 12" in str(exc.value)
    assert "8e737334b520fdd0c04e36f463b2d211-085" in str(exc.value)


def test_unpaired_and_unscored_raters_and_bad_names() -> None:
    m = _msg()
    p = m.preference_trajectories.add()
    p.pos_x.extend([1.0, 2.0])
    p.pos_y.extend([0.0])
    p.preference_score = 5
    with pytest.raises(DataError, match="pos_x has 2 values but pos_y has 1"):
        frame_labels(m, source="s")
    m = _msg()
    m.preference_trajectories.add().pos_x.append(1.0)
    with pytest.raises(DataError, match="no preference_score"):
        frame_labels(m, source="s")
    with pytest.raises(DataError, match="not '<sequence_id>-<frame_index>'"):
        frame_labels(_msg(name="nodash"), source="s")
