"""navhard two-stage data from the embedded world: layout, file formats, reading back, and scoring it."""

from __future__ import annotations

import pickletools
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml

from adapters.navsim.navhard import (
    SPLIT_NAME,
    read_split,
    read_synthetic_scene,
    scoring_frames,
    synthetic_sample,
)
from adapters.navsim.navhard_writer import NavhardOptions, original_token
from adapters.navsim.writer import NavsimWriteOptions
from harness.embedded import EmbeddedWorldSpec
from harness.geometry import global_to_local
from harness.trajectory import NAVSIM_SAMPLING, Trajectory
from harness.world.build import WorldConfig, build_world

#: One test log of 11 s (22 keyframes): keyframes 4 and 5 can start a group (16 keyframes after it).
SPEC = EmbeddedWorldSpec(WorldConfig(seed=3, num_logs=2, duration_s=11.0),
                         NavsimWriteOptions(camera_scale=0.05, write_sensors=False))
OPTIONS = NavhardOptions(groups_per_log=1, pairs_per_group=2, camera_scale=0.05, seed=1)


@pytest.fixture(scope="module")
def navhard_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from harness.navhard_eval import build_navhard_world

    root = tmp_path_factory.mktemp("navhard")
    build_navhard_world(root, SPEC, OPTIONS)
    return root


@pytest.fixture(scope="module")
def split(navhard_root: Path):
    return read_split(navhard_root / SPLIT_NAME / f"{SPLIT_NAME}.yaml")


def test_layout_and_split_file(navhard_root: Path, split) -> None:
    d = navhard_root / SPLIT_NAME
    for name in ("synthetic_scene_pickles", "sensor_blobs", "openscene_meta_datas", "synthetic_scenes_attributes.csv"):
        assert (d / name).exists(), name
    assert len(split.groups) == 1 and len(split.groups[0].pairs) == 2
    g = split.groups[0]
    assert len(g.orig_token) == 16 and len(g.prev_token) == 16
    assert all(len(t) == 17 for t in split.stage_two_tokens)
    doc = yaml.safe_load((d / f"{SPLIT_NAME}.yaml").read_text())
    assert doc["reactive_all_mapping"] == [[g.orig_token, g.prev_token, [list(p) for p in g.pairs]]]
    sf = doc["scene_filter"]
    assert (sf["num_history_frames"], sf["num_future_frames"], sf["frame_interval"]) == (4, 8, 1)
    assert sorted(sf["reactive_synthetic_initial_tokens"]) == sorted(split.stage_two_tokens)
    assert sf["tokens"] == [g.orig_token, g.prev_token]
    rows = (d / "synthetic_scenes_attributes.csv").read_text().splitlines()
    assert len(rows) == 1 + 4 and rows[0].startswith("token,")


def test_synthetic_scene_pickle_format(navhard_root: Path, split) -> None:
    now2, prev2 = split.groups[0].pairs[0]
    path = navhard_root / SPLIT_NAME / "synthetic_scene_pickles" / f"{now2}.pkl"
    globals_named = {arg for op, arg, _ in pickletools.genops(path.read_bytes()) if op.name == "GLOBAL"}
    assert "nuplan.planning.simulation.observation.observation_type DetectionsTracks" in globals_named
    assert "nuplan.common.maps.maps_datatypes TrafficLightStatuses" in globals_named
    assert not any(g.startswith(("adapters", "harness")) for g in globals_named)
    now = read_synthetic_scene(path)
    prev = read_synthetic_scene(path.with_name(f"{prev2}.pkl"))
    assert now.token == now2 and len(now.frames) == 4 and len(now.extended_objects) == 8
    # prev_2 is the same perturbed drive 0.5 s earlier: its last three frames are now_2's first three
    assert [f.token for f in prev.frames[1:]] == [f.token for f in now.frames[:3]]
    assert now.frames[-1].timestamp_us - prev.frames[-1].timestamp_us == 500_000
    # now_2 continues the original scene: its corresponding original frame is 8 keyframes (4 s) later
    world = build_world(SPEC.config)
    log = next(lg for lg in world.logs if lg.name == now.log_name)
    j = next(k for k in range(40) if original_token(log, k) == split.groups[0].orig_token)
    assert now.corresponding_original_scene == original_token(log, j + 8)
    assert now.corresponding_original_initial_token == split.groups[0].orig_token
    assert prev.corresponding_original_initial_token == split.groups[0].prev_token
    # the ego is the logged pose at j + 8 shifted sideways (and turned) as the attributes say
    logged = log.frames[(j + 8) * 5].ego_pose
    rel = global_to_local(now.frames[-1].ego_pose, logged)
    assert abs(rel[0]) < 1e-6 and round(float(rel[1]), 6) in OPTIONS.lateral_offsets_m
    # extended objects are the world's objects 0.5 s .. 4 s later, in the map frame (nuPlan boxes carry no z)
    wf = log.frames[(j + 9) * 5]
    t0 = now.extended_objects[0].track_tokens[0]
    i = wf.objects.track_tokens.index(t0)
    np.testing.assert_allclose(now.extended_objects[0].center_xyz[0, :2], wf.objects.center_xyz[i, :2])
    assert now.extended_timestamps_us[0] == wf.timestamp_us


def test_sensors_and_sample(navhard_root: Path, split) -> None:
    now2 = split.groups[0].pairs[0][0]
    scene = read_synthetic_scene(navhard_root / SPLIT_NAME / "synthetic_scene_pickles" / f"{now2}.pkl")
    sample = synthetic_sample(scene, navhard_root / SPLIT_NAME / "sensor_blobs", cameras=("CAM_F0",), lidar=True)
    assert sample.meta.token == now2 and sample.targets.future is None
    img = sample.observation.cameras["CAM_F0"].load_image()
    assert img.ndim == 3 and img.shape[2] == 3
    assert sample.observation.lidar is not None and len(sample.observation.lidar.points) > 0
    np.testing.assert_allclose(sample.observation.ego.history_poses[-1], 0.0, atol=1e-6)  # UTM-sized floats
    frames, cur = scoring_frames(scene)
    assert cur == 3 and len(frames) == 12


def _plans(cache, tokens):
    out = {}
    for t in tokens:
        s = cache.get(t)
        v = float(s.ego_velocity_xy[0])
        out[t] = Trajectory(np.stack([0.5 * v * np.arange(1, 9), np.zeros(8), np.zeros(8)], 1), NAVSIM_SAMPLING)
    return out


def test_two_stage_scoring_and_failure_policy(navhard_root: Path, split, tmp_path: Path) -> None:
    from harness.navhard_eval import (
        NavhardData,
        NavhardMetricCache,
        cache_scenes,
        official_frame,
        score_two_stage,
    )
    from metrics.traffic_agents import TrafficPolicy

    cache = NavhardMetricCache(NavhardData(navhard_root, navhard_root / "maps"), split, tmp_path / "cache")
    tokens = list(split.stage_one_tokens + split.stage_two_tokens)
    scenes, errors = cache_scenes(cache, tokens)
    assert not errors
    assert all(scenes[t].scene_type == (1 if len(t) == 17 else 0) for t in tokens)
    assert all(scenes[t].pdm_closed_states.shape[0] > 0 for t in tokens)
    plans = _plans(cache, tokens)
    res = score_two_stage(split, scenes, plans, cache.rails, traffic=TrafficPolicy.REACTIVE)
    assert not res.summary.failed_tokens
    rows = {r["token"]: r for r in res.rows}
    g = split.groups[0]
    assert rows[g.orig_token]["two_frame_extended_comfort"] == rows[g.prev_token]["two_frame_extended_comfort"]
    w = [rows[p[0]]["weight"] for p in g.pairs]
    assert sum(w) == pytest.approx(1.0)
    combined = res.summary.value("combined", "score")
    s1 = {t: rows[t]["score"] for t in (g.orig_token, g.prev_token)}
    s2 = sum(rows[p[0]]["weight"] * rows[p[0]]["score"] for p in g.pairs)
    s2p = sum(rows[p[1]]["weight"] * rows[p[1]]["score"] for p in g.pairs)
    assert combined == pytest.approx((s1[g.orig_token] * s2 + s1[g.prev_token] * s2p) / 2)
    csv = official_frame(res)
    assert list(csv["token"].iloc[-3:]) == ["extended_pdm_score_stage_one", "extended_pdm_score_stage_two",
                                            "extended_pdm_score_combined"]
    assert "score" in csv.columns and "lane_keeping_stage_two" in csv.columns
    # failure policy: a stage-two token without a plan scores 0, is listed, and its partner's EC is 0
    now2, prev2 = g.pairs[0]
    broken = dict(plans)
    del broken[now2]
    res2 = score_two_stage(split, scenes, broken, cache.rails, traffic=TrafficPolicy.NON_REACTIVE)
    rows2 = {r["token"]: r for r in res2.rows}
    assert res2.summary.failed_tokens == (now2,) and not rows2[now2]["valid"] and rows2[now2]["error"] == "no plan"
    assert rows2[prev2]["two_frame_extended_comfort"] == 0.0
    # the aggregate treats the failed token as 0
    assert np.isfinite(res2.summary.value("combined", "score"))


def test_reader_rejects_foreign_classes(tmp_path: Path, navhard_root: Path, split) -> None:
    import pickle

    from harness.errors import DataError

    bad = tmp_path / "bad.pkl"
    bad.write_bytes(pickle.dumps({"scene_metadata": replace}))
    with pytest.raises(DataError):
        read_synthetic_scene(bad)
    with pytest.raises(DataError, match="two-stage split"):
        (tmp_path / "s.yaml").write_text("reactive_all_mapping: []\n")
        read_split(tmp_path / "s.yaml")


def test_forked_workers_score_the_same(navhard_root: Path, split, tmp_path: Path) -> None:
    from harness.navhard_eval import NavhardData, NavhardMetricCache, cache_scenes, score_two_stage
    from metrics.traffic_agents import TrafficPolicy

    cache = NavhardMetricCache(NavhardData(navhard_root, navhard_root / "maps"), split, tmp_path / "cache")
    tokens = list(split.stage_one_tokens + split.stage_two_tokens)
    scenes, _ = cache_scenes(cache, tokens)
    plans = _plans(cache, tokens)
    one = score_two_stage(split, scenes, plans, cache.rails, traffic=TrafficPolicy.NON_REACTIVE)
    two = score_two_stage(split, scenes, plans, cache.rails, traffic=TrafficPolicy.NON_REACTIVE, workers=2, chunk=2)
    assert [r["score"] for r in one.rows] == [r["score"] for r in two.rows]
    assert one.summary.value("combined", "score") == two.summary.value("combined", "score")


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
            and not p.name.endswith(".lock")}


def test_metric_cache_chunks_and_workers_write_the_same_bytes(navhard_root: Path, split, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.navhard_cache as nc
    from harness.navhard_eval import NavhardData, NavhardMetricCache, cache_scenes

    data = NavhardData(navhard_root, navhard_root / "maps")
    tokens = list(split.stage_one_tokens + split.stage_two_tokens)
    one = NavhardMetricCache(data, split, tmp_path / "one")
    alone = {t: one.get(t) for t in tokens}  # token by token
    monkeypatch.setattr(nc, "BUILD_CHUNK", 2)  # 3 chunks: 2 stage-one tokens, then stage-two pairs
    forked = NavhardMetricCache(data, split, tmp_path / "two")
    scenes, errors = cache_scenes(forked, tokens, workers=2)
    assert not errors and list(scenes) == tokens
    assert _files(tmp_path / "one") == _files(tmp_path / "two")
    for t in tokens:  # the children's scenes, read back, equal the ones built here
        assert np.array_equal(scenes[t].pdm_closed_states, alone[t].pdm_closed_states)
        assert scenes[t].fingerprint == alone[t].fingerprint
    # a second call reads everything back (nothing rebuilt), the same scenes
    again, _ = cache_scenes(NavhardMetricCache(data, split, tmp_path / "two"), tokens, workers=2)
    assert all(np.array_equal(again[t].object_poses, scenes[t].object_poses) for t in tokens)
    assert _files(tmp_path / "one") == _files(tmp_path / "two")
    # failures are named per token, the others still built
    bad = NavhardMetricCache(data, split, tmp_path / "bad")
    got, err = cache_scenes(bad, [*tokens, "f" * 17, "0" * 16], workers=2)
    assert set(err) == {"f" * 17, "0" * 16} and set(got) == set(tokens)
    assert "no synthetic scene pickle" in err["f" * 17]


def test_metric_cache_chunks_run_with_the_collector_paused_and_restore_it(navhard_root: Path, split, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import gc

    import harness.navhard_cache as nc
    from harness.navhard_eval import NavhardData, NavhardMetricCache, cache_scenes

    seen: list[bool] = []
    real = nc.NavhardMetricCache._build_chunk_now

    def spy(self, tokens):
        seen.append(gc.isenabled())
        if "f" * 17 in tokens:
            raise RuntimeError("boom")
        return real(self, tokens)

    monkeypatch.setattr(nc.NavhardMetricCache, "_build_chunk_now", spy)
    cache = NavhardMetricCache(NavhardData(navhard_root, navhard_root / "maps"), split, tmp_path / "cache")
    assert gc.isenabled()
    scenes, errors = cache_scenes(cache, list(split.stage_one_tokens[:2]))
    assert seen == [False] and len(scenes) == 2 and not errors and gc.isenabled()
    with pytest.raises(RuntimeError):
        cache._build_chunk(["f" * 17])
    assert gc.isenabled()  # back on after a failing chunk
    gc.disable()
    try:
        cache._build_chunk(list(split.stage_one_tokens[:1]))
        assert not gc.isenabled()  # left off when it was off
    finally:
        gc.enable()


def test_fork_chunks_each_chunk_once_in_order() -> None:
    import os

    from harness.navhard_workers import fork_chunks

    got = fork_chunks(lambda i: (i * i, os.getpid()), 9, 2)
    assert [v for v, _ in got] == [i * i for i in range(9)]
    assert fork_chunks(lambda i: i, 3, 1) == [0, 1, 2] and fork_chunks(lambda i: i, 0, 2) == []

    def boom(i: int) -> int:
        if i == 5:
            raise ValueError("chunk 5")
        return i

    with pytest.raises((ValueError, RuntimeError), match="chunk 5"):
        fork_chunks(boom, 8, 2)


def test_agent_inputs_record_gives_the_same_sample(navhard_root: Path, split, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from harness.navhard_eval import NavhardData, NavhardMetricCache

    data = NavhardData(navhard_root, navhard_root / "maps")
    cache = NavhardMetricCache(data, split, tmp_path / "cache")
    token = split.stage_two_tokens[0]
    sensors = navhard_root / SPLIT_NAME / "sensor_blobs"
    full = synthetic_sample(cache.synthetic(token), sensors, cameras=("CAM_F0",), lidar=True)
    cache.get(token)  # the build writes the record
    record = next((tmp_path / "cache" / "stage_two" / "agent_inputs").glob(f"{token}.*.pkl"))
    assert record.stat().st_size < (navhard_root / SPLIT_NAME / "synthetic_scene_pickles" / f"{token}.pkl"
                                    ).stat().st_size / 4
    with monkeypatch.context() as m:  # read from the record, not from the pickle
        m.setattr(cache, "synthetic", lambda t: pytest.fail("parsed the full pickle"))
        small = synthetic_sample(cache.agent_scene(token), sensors, cameras=("CAM_F0",), lidar=True)
    assert small.meta == full.meta
    for name in ("velocity_mps", "acceleration_mps2", "history_poses", "history_times_s"):
        assert np.array_equal(getattr(small.observation.ego, name), getattr(full.observation.ego, name)), name
    assert small.observation.navigation == full.observation.navigation
    cam, cam_full = small.observation.cameras["CAM_F0"], full.observation.cameras["CAM_F0"]
    assert cam.image_path == cam_full.image_path and np.array_equal(cam.ego_from_camera, cam_full.ego_from_camera)
    assert np.array_equal(small.observation.lidar.points, full.observation.lidar.points)
    # a changed pickle (new mtime) is read again, and a new record written beside the old one
    pkl = navhard_root / SPLIT_NAME / "synthetic_scene_pickles" / f"{token}.pkl"
    st = pkl.stat()
    try:
        os.utime(pkl, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
        calls = []
        real = cache.synthetic
        monkeypatch.setattr(cache, "synthetic", lambda t: calls.append(t) or real(t))
        cache.agent_scene(token)
        assert calls == [token]
        assert len(list(record.parent.glob(f"{token}.*.pkl"))) == 2
    finally:
        os.utime(pkl, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_auto_chunk_balances_workers_within_bounds() -> None:
    from harness.navhard_eval import MAX_CHUNK, MIN_CHUNK, auto_chunk

    assert auto_chunk(5912, 1) == auto_chunk(5912, 2) == MAX_CHUNK  # navhard: 93 chunks of 64
    assert auto_chunk(238, 2) == 30  # 8 chunks: about 4 per worker
    assert auto_chunk(20, 2) == MIN_CHUNK and auto_chunk(0, 2) == MIN_CHUNK
