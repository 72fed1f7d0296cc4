"""PDM-Closed's v2 reference planned in a batch (v1's batched generation, equal proposals scored once) equals
each scene planned alone by the per-scene reference path (``harness.epdms_eval.plan_pdm_closed_v2``)."""

from __future__ import annotations

import numpy as np
import pytest


def _scenes(small_world_root, tmp_path):
    from adapters.navsim.reader import NavsimReader
    from adapters.navsim.scoring_scenes import ScoringSceneCache
    from harness.epdms_eval import V2_HORIZON_S

    reader = NavsimReader(small_world_root, "test")
    cache = ScoringSceneCache(tmp_path / "scenes", reader, small_world_root / "maps", horizon_s=V2_HORIZON_S)
    refs = reader.index()
    return [cache.get(r.token) for r in refs[:: max(1, len(refs) // 12)]]


def test_batch_equals_each_scene_planned_alone(small_world_root, tmp_path):
    from harness.agents.pdm_closed_v2 import plan_pdm_closed_v2_batch
    from harness.epdms_eval import plan_pdm_closed_v2

    scenes = _scenes(small_world_root, tmp_path)
    batch = plan_pdm_closed_v2_batch(scenes)
    assert len(batch) == len(scenes) > 5
    for scene, (states, times) in zip(scenes, batch, strict=True):
        ref_states, ref_times = plan_pdm_closed_v2(scene)
        assert states.shape == (51, 11)
        np.testing.assert_array_equal(states, ref_states)
        np.testing.assert_array_equal(times, ref_times)
    assert plan_pdm_closed_v2_batch([]) == []


def test_the_ranking_is_v2s_no_ec_score(small_world_root, tmp_path, monkeypatch):
    """The chosen proposal is the first maximum of the scores of the distinct proposals spread back to every
    row: scoring every row (no deduplication) chooses the same, and scores that prefer another proposal change
    the choice (the ranking is really read)."""
    import harness.agents.pdm_closed_v2 as v2
    from harness.agents import pdm_closed
    from harness.epdms_eval import plan_pdm_closed_v2

    scenes = _scenes(small_world_root, tmp_path)[:4]
    ref = v2.plan_pdm_closed_v2_batch(scenes)
    real = v2.selection_scores_v2

    def last_preferred(scenes, states, *args, **kwargs):
        return [np.arange(len(st), dtype=np.float64) for st in states]

    monkeypatch.setattr(v2, "selection_scores_v2", last_preferred)
    changed = v2.plan_pdm_closed_v2_batch(scenes)
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(ref, changed, strict=True))
    monkeypatch.setattr(v2, "selection_scores_v2", real)
    monkeypatch.setattr(pdm_closed, "_distinct_rows", lambda rows: (np.arange(len(rows)), np.arange(len(rows))))
    for (a, _), scene in zip(v2.plan_pdm_closed_v2_batch(scenes), scenes, strict=True):
        np.testing.assert_array_equal(a, plan_pdm_closed_v2(scene)[0])


def _inputs(small_world_root, tmp_path):
    from harness.agents.pdm_closed import PDMClosedConfig, generate_batch
    from harness.agents.pdm_closed_observation import forecast_timelines
    from metrics.epdms import RedLights

    scenes = _scenes(small_world_root, tmp_path)
    _, _, _, _, simulated = generate_batch(scenes, PDMClosedConfig())
    objects = forecast_timelines([o for o in _observations(scenes)], 41)
    lights = [RedLights(np.asarray(o.light_polygons, dtype=object), np.ones((41, len(o.light_polygons)), dtype=bool))
              for o in _observations(scenes)]
    return scenes, simulated, objects, lights


def _observations(scenes):
    from harness.agents.pdm_closed import PDMClosedConfig, _prepare_all

    return [p.obs for p in _prepare_all(scenes, None, PDMClosedConfig(), ())]


@pytest.mark.parametrize("head", [1, 3, 5])
def test_two_pass_scores_equal_one_pass_where_scored_and_choose_the_same(small_world_root, tmp_path, head):
    """Rows scored in the first or second pass have one-pass ``pdm_score`` bit for bit; rows left out (-inf)
    only where a head row is at the top score; the first maximum is the same. With one head row (the slowest
    centerline proposal, often at the top with EP normalised by itself) the progress condition is what sends
    scenes to the second pass: dropping it changes the choice."""
    from harness.agents.pdm_closed_v2 import _NO_FILTER, _top_score, selection_scores_v2
    from metrics.epdms import score_batch

    scenes, simulated, objects, lights = _inputs(small_world_root, tmp_path)
    full = [sc.pdm_score for sc in score_batch(scenes, simulated, objects=objects, red_lights=lights,
                                               histories=[None] * len(scenes), config=_NO_FILTER)]
    two = selection_scores_v2(scenes, simulated, objects, lights, [head] * len(scenes))
    left_out = 0
    for f, t in zip(full, two, strict=True):
        assert int(np.argmax(f)) == int(np.argmax(t))
        scored = np.isfinite(t)
        np.testing.assert_array_equal(t[scored], f[scored])
        if not scored.all():
            left_out += 1
            assert np.all(scored[:head]) and np.any(t[:head] == _top_score(_NO_FILTER))
    assert left_out > 0 or head < 5  # the centerline's 5 proposals decide most scenes


def test_a_later_row_with_more_progress_sends_the_scene_to_the_second_pass(small_world_root, tmp_path,
                                                                            monkeypatch):
    import harness.agents.pdm_closed_v2 as v2
    from metrics.epdms import score_batch

    scenes, simulated, objects, lights = _inputs(small_world_root, tmp_path)
    full = [sc.pdm_score for sc in score_batch(scenes, simulated, objects=objects, red_lights=lights,
                                               histories=[None] * len(scenes), config=v2._NO_FILTER)]
    real = v2.epdms._progress
    monkeypatch.setattr(v2.epdms, "_progress", lambda lines, centers, row_scene: real(lines, centers, row_scene) * 0)
    mutated = v2.selection_scores_v2(scenes, simulated, objects, lights, [1] * len(scenes))
    assert any(int(np.argmax(f)) != int(np.argmax(m)) for f, m in zip(full, mutated, strict=True))
