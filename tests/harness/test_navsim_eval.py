"""NAVSIM PDMS evaluation on the embedded world: the main job's numbers, parallel caching, failures."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.navsim.reader import NavsimReader
from harness.agents import build_agent
from harness.navsim_eval import BuildCostModel, CacheSpec, build_metric_cache, split_by_cost, split_parts
from harness.runner import run_navsim
from metrics.pdms import PDMS_COLUMNS


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("metric-cache")


def _run(root, agent, out, cache_dir, **kw):
    reader = NavsimReader(root, "test")
    return run_navsim(reader, build_agent(agent), out, maps_root=root / "maps", cache_dir=cache_dir, **kw)


def test_human_scores_high_and_constant_velocity_clearly_lower(small_world_root, cache_dir, tmp_path):
    human = _run(small_world_root, "human", tmp_path / "human", cache_dir)
    cv = _run(small_world_root, "cv", tmp_path / "cv", cache_dir)
    assert human.failed == 0 and cv.failed == 0 and human.scored == cv.scored > 0
    assert human.metrics["score"] > 0.8
    assert cv.metrics["score"] < human.metrics["score"] - 0.05
    cv_rows = pd.read_parquet(tmp_path / "cv" / "rows.parquet")
    assert (cv_rows["time_to_collision_within_bound"] == 0).any()  # CV closes in on something somewhere
    rows = pd.read_parquet(tmp_path / "human" / "rows.parquet")
    assert list(rows.columns[:9]) == ["token", "valid", *PDMS_COLUMNS]
    for c in PDMS_COLUMNS:
        assert rows[c].between(0, 1).all()
    official = pd.read_csv(tmp_path / "human" / "navsim_pdm_score.csv")
    assert official["token"].iloc[-1] == "average" and len(official) == len(rows) + 1
    assert abs(official["score"].iloc[-1] - rows["score"].mean()) < 1e-12
    summary = json.loads((tmp_path / "human" / "summary.json").read_text())
    assert summary["scorer"].startswith("navsim-v1.1") and summary["privileged"] is True


def test_parallel_cache_equals_serial(small_world_root, tmp_path):
    reader = NavsimReader(small_world_root, "test")
    by_log: dict[str, list[str]] = {}
    for r in reader.index():
        by_log.setdefault(r.log_id, []).append(r.token)
    specs = [CacheSpec(small_world_root, "test", reader.scene_filter, small_world_root / "maps", tmp_path / d)
             for d in ("serial", "parallel")]
    assert not any(build_metric_cache(specs[0], by_log, workers=1).values())
    done: list[int] = []
    assert not any(build_metric_cache(specs[1], by_log, workers=2, engine="processes", on_log_done=done.append).values())
    assert sum(done) == sum(len(v) for v in by_log.values()) and all(n > 0 for n in done)  # each token once
    a, b = specs[0].open(), specs[1].open()
    for tok in [t for toks in by_log.values() for t in toks]:
        sa, sb = a.get(tok), b.get(tok)
        np.testing.assert_array_equal(sa.pdm_closed_states, sb.pdm_closed_states)
        np.testing.assert_array_equal(sa.object_poses, sb.object_poses)
    # Parts of one log built by different processes: every token still listed in the log's index.
    assert a.scenes.index() == b.scenes.index()
    assert sum(len(v) for v in b.scenes.index().values()) == sum(len(v) for v in by_log.values())


def test_a_parsed_reader_is_reused_by_the_cache_build_serial_and_forked(small_world_root, tmp_path, monkeypatch):
    import adapters.navsim.reader as reader_module

    reader = NavsimReader(small_world_root, "test")
    by_log: dict[str, list[str]] = {}
    for r in reader.index():  # parses every log of the split
        by_log.setdefault(r.log_id, [])
        if len(by_log[r.log_id]) < 3:
            by_log[r.log_id].append(r.token)
    fresh = CacheSpec(small_world_root, "test", reader.scene_filter, small_world_root / "maps", tmp_path / "fresh")
    assert not any(build_metric_cache(fresh, by_log).values())

    def refuse(path, *args, **kwargs):
        raise AssertionError(f"log parsed again: {path}")

    monkeypatch.setattr(reader_module, "load_restricted", refuse)  # forked children inherit it
    tokens = [t for toks in by_log.values() for t in toks]
    for workers in (1, 2):
        spec = CacheSpec(small_world_root, "test", reader.scene_filter, small_world_root / "maps",
                         tmp_path / f"w{workers}")
        errors = build_metric_cache(spec, by_log, workers=workers, engine="processes", reader=reader)
        assert errors == dict.fromkeys(tokens)
        got, want = spec.open(reader), fresh.open(reader)
        for tok in tokens:
            assert got.get(tok).fingerprint == want.get(tok).fingerprint
            np.testing.assert_array_equal(got.get(tok).pdm_closed_states, want.get(tok).pdm_closed_states)
            np.testing.assert_array_equal(got.get(tok).object_poses, want.get(tok).object_poses)
    with pytest.raises(ValueError, match="another scene filter or split"):
        CacheSpec(small_world_root, "train", reader.scene_filter, small_world_root / "maps", tmp_path).open(reader)


def test_run_navsim_parses_each_log_once(small_world_root, cache_dir, tmp_path, monkeypatch):
    import adapters.navsim.reader as reader_module

    loaded: list[str] = []
    load = reader_module.load_restricted
    monkeypatch.setattr(reader_module, "load_restricted", lambda path, *a, **k: (loaded.append(path.name),
                                                                                  load(path, *a, **k))[1])
    summary = _run(small_world_root, "cv", tmp_path / "cv", tmp_path / "fresh-cache")
    assert summary.failed == 0 and summary.scored > 0
    assert sorted(loaded) == sorted(p.name for p in (small_world_root / "navsim_logs" / "test").glob("*.pkl"))


def test_a_workers_reader_parses_only_its_logs_and_cuts_their_windows_as_the_split(small_world_root, monkeypatch):
    from harness.navsim_eval import _LogsReader

    full = NavsimReader(small_world_root, "test")
    logs = [path.stem for path in full.log_paths()]
    assert len(logs) >= 2 and len({w.log_name for w in full.windows().values()}) >= 2
    mine = [logs[1]]
    parsed: list[str] = []
    log_frames = NavsimReader.log_frames
    monkeypatch.setattr(NavsimReader, "log_frames", lambda self, name: (parsed.append(name), log_frames(self, name))[1])
    sub = _LogsReader(full, mine)
    assert sub.windows() == {t: w for t, w in full.windows().items() if w.log_name in mine}
    assert set(parsed) == set(mine) and sub.sensor_root == full.sensor_root
    assert {w.log_name for w in sub.windows().values()} < {w.log_name for w in full.windows().values()}
    token = next(iter(sub.windows()))
    assert [f.token for f in sub.scene_frames(token)[0]] == [f.token for f in full.scene_frames(token)[0]]


def _range_cost(costs, log_ids, log_ms, lo, hi):
    return sum(costs[lo:hi]) + sum(log_ms[i] for i in set(log_ids[lo:hi]))


def test_split_by_cost_hand_cases():
    ids = np.zeros(10, dtype=np.int64)
    assert split_by_cost(np.ones(10), ids, np.zeros(1), 2) == [(0, 5), (5, 10)]
    assert split_by_cost(np.array([5.0, 1, 1, 1, 1, 1]), ids[:6], np.zeros(1), 2) == [(0, 1), (1, 6)]
    # Two logs of 4 tokens, the first costing 10 to parse: cutting inside it parses it twice (cut 2: 12 / 16,
    # cut 3: 13 / 15), so the cut is at the logs' border (14 / 4).
    two = np.repeat([0, 1], 4)
    assert split_by_cost(np.ones(8), two, np.array([10.0, 0.0]), 2) == [(0, 4), (4, 8)]
    assert split_by_cost(np.ones(2), ids[:2], np.zeros(1), 4) == [(0, 1), (1, 2)]  # no empty part
    assert split_by_cost(np.ones(0), ids[:0], np.zeros(0), 2) == []


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.5, 20.0), min_size=1, max_size=14), st.lists(st.integers(1, 4), min_size=1, max_size=6),
       st.lists(st.floats(0.0, 30.0), min_size=6, max_size=6), st.integers(1, 3))
def test_split_by_cost_is_as_balanced_as_the_best_cut(costs, log_lengths, log_costs, workers):
    from itertools import combinations

    log_ids = np.repeat(np.arange(len(log_lengths)), log_lengths)[: len(costs)]
    costs = costs[: len(log_ids)]
    log_ms = np.array(log_costs[: len(log_lengths)])
    got = split_by_cost(np.array(costs), log_ids, log_ms, workers)
    n = len(costs)
    assert got[0][0] == 0 and got[-1][1] == n and all(a[1] == b[0] for a, b in zip(got, got[1:]))
    assert len(got) <= workers and all(hi > lo for lo, hi in got)
    worst = max(_range_cost(costs, log_ids, log_ms, lo, hi) for lo, hi in got)
    best = min(
        max(_range_cost(costs, log_ids, log_ms, lo, hi)
            for lo, hi in zip((0, *cuts), (*cuts, n)))
        for k in range(min(workers, n)) for cuts in combinations(range(1, n), k))
    assert worst <= best + 0.1


def test_split_parts_weighs_tokens_by_their_objects_with_a_parsed_reader(small_world_root):
    reader = NavsimReader(small_world_root, "test")
    jobs: dict[str, list[str]] = {}
    for r in reader.index():
        jobs.setdefault(r.log_id, []).append(r.token)
    ordered = sorted(jobs.items())
    tokens = [t for _, toks in ordered for t in toks]
    logs_dir = small_world_root / "navsim_logs" / "test"
    model = BuildCostModel(token_ms=0.0, object_ms=1.0)
    objects = {}
    for t in tokens:
        frames, cur = reader.scene_frames(t)
        objects[t] = len(frames[cur].annotations.track_tokens)
    for workers in (2, 3):
        parts = split_parts(ordered, workers, logs_dir, reader, model)
        assert [t for _, toks in parts for t in toks] == tokens  # in order, each once
        assert all(logs == sorted({reader.windows()[t].log_name for t in toks}) for logs, toks in parts)
        costs = [sum(objects[t] for t in toks) for _, toks in parts]
        assert max(costs) - min(costs) <= max(objects.values())  # within one token's objects
    # Without a reader every token costs the same: equal halves.
    plain = split_parts(ordered, 2, logs_dir, None, BuildCostModel(log_ms_per_mb=0.0))
    assert [len(toks) for _, toks in plain] == [len(tokens) // 2, len(tokens) - len(tokens) // 2]


def test_metric_cache_chunks_span_logs_and_report_progress(small_world_root, tmp_path, monkeypatch):
    """MetricCache.build plans chunks of equal size up to PLAN_CHUNK across logs, reports every token once
    through on_done, and stores what planning each scene alone stores."""
    from harness.navsim_eval import MetricCache

    reader = NavsimReader(small_world_root, "test")
    by_log: dict[str, list[str]] = {}
    for r in reader.index():
        by_log.setdefault(r.log_id, []).append(r.token)
    assert len(by_log) >= 2
    tokens = [t for toks in by_log.values() for t in toks[:2]]
    spec = CacheSpec(small_world_root, "test", reader.scene_filter, small_world_root / "maps", tmp_path / "a")
    cache = spec.open()
    sizes: list[int] = []
    planned = MetricCache._planned
    monkeypatch.setattr(MetricCache, "PLAN_CHUNK", 4)
    monkeypatch.setattr(MetricCache, "_planned", staticmethod(lambda chunk, errors: (sizes.append(len(chunk)),
                                                                                      planned(chunk, errors))[1]))
    done: list[int] = []
    assert not any(cache.build(tokens, done.append).values())
    n_chunks = -(-len(tokens) // 4)
    assert len(sizes) == n_chunks and max(sizes) - min(sizes) <= 1 and sum(sizes) == len(tokens)
    assert sum(done) == len(tokens)
    # Each log gave at most 2 tokens, so the first chunk (3 or 4 scenes) spans two logs.
    assert sizes[0] > 2 and len({reader.windows()[t].log_name for t in tokens[: sizes[0]]}) == 2
    again: list[int] = []
    assert not any(cache.build(tokens, again.append).values()) and sum(again) == len(tokens)  # all stored
    alone = CacheSpec(small_world_root, "test", reader.scene_filter, small_world_root / "maps", tmp_path / "b")
    single = alone.open()
    for t in tokens:
        np.testing.assert_array_equal(single.get(t).pdm_closed_states, cache.get(t).pdm_closed_states)


def test_a_broken_log_is_reported_not_dropped(small_world_root, cache_dir, tmp_path):
    import shutil

    root = tmp_path / "w"
    shutil.copytree(small_world_root / "navsim_logs", root / "navsim_logs")
    (root / "maps").symlink_to(small_world_root / "maps")
    (root / "sensor_blobs").symlink_to(small_world_root / "sensor_blobs")
    from harness.safe_pickle import dumps_compatible, load_restricted

    log = sorted((root / "navsim_logs" / "test").glob("*.pkl"))[0]
    frames = load_restricted(log)
    for f in frames[6:]:
        del f["anns"]  # future frames without annotations: no metric cache for scenes that need them
    log.write_bytes(dumps_compatible(frames))
    summary = _run(root, "cv", tmp_path / "out", tmp_path / "cache")
    rows = pd.read_parquet(tmp_path / "out" / "rows.parquet")
    assert summary.expected == len(rows) and summary.failed > 0 and summary.scored + summary.failed == len(rows)
    failed = rows[~rows["valid"]]
    assert failed["error"].str.contains("annotations").all()
    assert (tmp_path / "out" / "failures.csv").is_file()


def test_forked_parts_report_a_broken_logs_tokens_as_serial_does(small_world_root, tmp_path):
    import shutil

    from harness.safe_pickle import dumps_compatible, load_restricted

    root = tmp_path / "w"
    shutil.copytree(small_world_root / "navsim_logs", root / "navsim_logs")
    (root / "maps").symlink_to(small_world_root / "maps")
    reader = NavsimReader(root, "test")
    by_log: dict[str, list[str]] = {}
    for r in reader.index():
        by_log.setdefault(r.log_id, []).append(r.token)
    by_log = {k: v[:3] for k, v in by_log.items()}
    broken = sorted(by_log)[-1]  # in the last part: built by the forked child
    path = root / "navsim_logs" / "test" / f"{broken}.pkl"
    frames = load_restricted(path)
    for f in frames[6:]:
        del f["anns"]
    path.write_bytes(dumps_compatible(frames))
    specs = [CacheSpec(root, "test", reader.scene_filter, root / "maps", tmp_path / d) for d in ("serial", "two")]
    serial = build_metric_cache(specs[0], by_log)
    done: list[int] = []
    two = build_metric_cache(specs[1], by_log, workers=2, on_log_done=done.append)
    assert two == serial and sum(done) == len(two)
    assert all(serial[t] and "annotations" in serial[t] for t in by_log[broken])
    assert not any(serial[t] for log_name, toks in by_log.items() if log_name != broken for t in toks)


def test_scoring_batched_and_forked_equals_one_scene_at_a_time(small_world_root, tmp_path):
    from harness.navsim_eval import score_plans
    from harness.runner import plan_samples
    from harness.trajectory import NAVSIM_SAMPLING

    reader = NavsimReader(small_world_root, "test")
    refs = reader.index()[:12]
    spec = CacheSpec(small_world_root, "test", reader.scene_filter, small_world_root / "maps", tmp_path / "mc")
    by_log: dict[str, list[str]] = {}
    for r in refs:
        by_log.setdefault(r.log_id, []).append(r.token)
    assert not any(build_metric_cache(spec, by_log).values())
    cache = spec.open()
    scenes = [cache.get(r.token) for r in refs]
    plans = plan_samples(build_agent("cv"), [reader.load(r) for r in refs], NAVSIM_SAMPLING)
    alone = [score_plans([s], [p])[0] for s, p in zip(scenes, plans, strict=True)]
    for got in (score_plans(scenes, plans), score_plans(scenes, plans, workers=2)):
        assert len(got) == len(alone)
        for a, b in zip(alone, got, strict=True):
            assert a.row(0) == b.row(0) and a.row(1) == b.row(1)
            np.testing.assert_array_equal(a.ego_areas, b.ego_areas)
            np.testing.assert_array_equal(a.progress_raw, b.progress_raw)


def test_ray_engine_equals_serial(small_world_root, tmp_path):
    pytest.importorskip("ray")
    reader = NavsimReader(small_world_root, "test")
    by_log: dict[str, list[str]] = {}
    for r in reader.index():
        by_log.setdefault(r.log_id, []).append(r.token)
    by_log = {k: v[:2] for k, v in sorted(by_log.items())[:3]}  # more logs than workers: several waits
    specs = [CacheSpec(small_world_root, "test", reader.scene_filter, small_world_root / "maps", tmp_path / d)
             for d in ("serial", "ray")]
    assert not any(build_metric_cache(specs[0], by_log).values())
    # No progress callback: every finished log must still leave the wait set (it once looped forever here).
    result = build_metric_cache(specs[1], by_log, workers=2, engine="ray")
    assert sorted(result) == sorted(t for toks in by_log.values() for t in toks) and not any(result.values())
    a, b = specs[0].open(), specs[1].open()
    for tok in result:
        np.testing.assert_array_equal(a.get(tok).pdm_closed_states, b.get(tok).pdm_closed_states)
