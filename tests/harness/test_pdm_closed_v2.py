"""PDM-Closed's v2 reference planned in a batch (v1's batched generation, equal proposals scored once) equals
each scene planned alone by the per-scene reference path (``harness.epdms_eval.plan_pdm_closed_v2``)."""

from __future__ import annotations

import numpy as np


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
    """The chosen proposal is the first maximum of the EPDMS score of the distinct proposals spread back to
    every row: scoring every row (no deduplication) chooses the same, and a scorer that prefers another
    proposal changes the choice (the ranking is really read)."""
    import harness.agents.pdm_closed_v2 as v2
    from harness.agents import pdm_closed
    from harness.epdms_eval import plan_pdm_closed_v2

    scenes = _scenes(small_world_root, tmp_path)[:4]
    ref = v2.plan_pdm_closed_v2_batch(scenes)
    real = v2.score_batch

    def reversed_choice(*args, **kwargs):
        out = real(*args, **kwargs)
        for sc in out:  # prefer the last proposal
            sc.pdm_score[:] = np.arange(len(sc.pdm_score), dtype=np.float64)
        return out

    monkeypatch.setattr(v2, "score_batch", reversed_choice)
    changed = v2.plan_pdm_closed_v2_batch(scenes)
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(ref, changed, strict=True))
    monkeypatch.setattr(v2, "score_batch", real)
    monkeypatch.setattr(pdm_closed, "_distinct_rows", lambda rows: (np.arange(len(rows)), np.arange(len(rows))))
    for (a, _), scene in zip(v2.plan_pdm_closed_v2_batch(scenes), scenes, strict=True):
        np.testing.assert_array_equal(a, plan_pdm_closed_v2(scene)[0])
