"""Scoring scenes (lead-bench's metric cache): world truth, official-semantics references, hand-made maps.

The loop references here follow NAVSIM's own structure (per-track ``interp1d`` interpolators queried step
by step; a breadth-first search with a ``None``-marker queue and no visited set) and are what the
vectorised builders are checked against; ``benchmarks/bench_scoring_scenes.py`` times against them too.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections import deque

import numpy as np
import pytest
import shapely
from scipy.interpolate import interp1d

from adapters.navsim.log_format import NavsimFrame
from adapters.navsim.map_reader import read_nuplan_map
from adapters.navsim.reader import NavsimReader
from adapters.navsim.scoring_objects import object_timeline, object_timelines
from adapters.navsim.scoring_route import _bfs_roadblocks, ego_center, ego_footprint
from adapters.navsim.scoring_scenes import (
    ScoringSceneCache,
    build_scoring_scene,
    discrete_centerline,
    red_light_mask,
    route_roadblock_correction,
)
from harness.errors import DataError
from harness.map_query import MapLayer, MapQuery
from harness.scoring_scene import AGENT_TYPES, ObjectType, ScoringScene
from tests.fixtures_maps import build_fixture_map

# --- loop references (NAVSIM's structure) -----------------------------------------------------------------


def _wrap(a: float) -> float:
    return float(np.arctan2(np.sin(a), np.cos(a)))


def loop_object_timeline(frames: list[NavsimFrame], current: int, horizon_s: float = 5.0) -> dict[str, object]:
    """Per box, per track, per step: the straightforward form of ``_interpolate_gt_observation``."""
    kf_times = np.arange(0, horizon_s * 1 / 0.5 + 1, 1, dtype=float) * 0.5
    steps = np.arange(0, int(horizon_s / 0.1) + 1, 1, dtype=float) * 0.1
    states: dict[str, list[np.ndarray]] = {}
    first: dict[str, tuple[int, np.ndarray, np.ndarray, np.ndarray]] = {}
    for time_s, frame in zip(kf_times, frames[current:]):
        ex, ey, eh = (float(v) for v in frame.ego_pose)
        a = frame.annotations
        seen: set[str] = set()
        for box, name, vel, tok in zip(a.boxes, a.names, a.velocity_3d, a.track_tokens):
            if tok in seen:
                continue
            seen.add(tok)
            s, c = np.sin(eh), np.cos(eh)
            x = box[0] * c - box[1] * s + ex
            y = box[0] * s + box[1] * c + ey
            h = _wrap(_wrap(box[6] + eh))
            kind = ObjectType.from_name(name)
            v = np.zeros(2)
            if kind in AGENT_TYPES:
                v = np.array([vel[0] * c - vel[1] * s, vel[0] * s + vel[1] * c])
            st = np.array([time_s, x, y, h, v[0], v[1]])
            if tok not in states:
                states[tok] = [st]
                first[tok] = (int(kind), np.array([x, y, h]), v, box[3:6].copy())
            else:
                states[tok].append(st)
    tokens = sorted(states, key=lambda tk: first[tk][0])  # TrackedObjects: stable sort by type
    m, t = len(tokens), len(steps)
    present = np.zeros((t, m), dtype=bool)
    poses = np.zeros((t, m, 3))
    velocity = np.zeros((t, m, 2))
    for j, tok in enumerate(tokens):
        arr = np.array(states[tok])
        kind, pose0, vel0, _ = first[tok]
        agent = ObjectType(kind) in AGENT_TYPES
        if arr[0, 0] == arr[-1, 0]:
            present[:, j] = True
            poses[:, j] = pose0
            velocity[:, j] = vel0 if agent else 0.0
            continue
        values = arr[:, 1:].copy()
        values[:, 2] = np.unwrap(values[:, 2], axis=0)
        f = interp1d(arr[:, 0], values, axis=0)
        for k, time_s in enumerate(steps):
            if arr[0, 0] <= time_s <= arr[-1, 0]:
                out = f(time_s)
                present[k, j] = True
                poses[k, j] = (out[0], out[1], _wrap(out[2]))
                velocity[k, j] = out[3:] if agent else 0.0
    return {
        "tokens": tokens,
        "types": np.array([first[tk][0] for tk in tokens]),
        "size_lwh": np.array([first[tk][3] for tk in tokens]).reshape(-1, 3),
        "first_velocity_xy": np.array([first[tk][2] for tk in tokens]).reshape(-1, 2),
        "present": present,
        "poses": poses,
        "velocity_xy": velocity,
    }


def official_bfs(start, targets, max_depth, neighbours, forward):
    """BreadthFirstSearchRoadBlock.search as written: None-marker queue, no visited set, last parent wins."""
    queue = deque([start, None])
    parent = {(start, 1): None}
    depth, end, end_depth, found = 1, start, 1, False
    while queue:
        cur = queue.popleft()
        if depth > max_depth:
            break
        if cur is None:
            depth += 1
            queue.append(None)
            if queue[0] is None:
                break
            continue
        if cur in targets and depth <= max_depth:
            end, end_depth, found = cur, depth, True
            break
        for nxt in neighbours(cur):
            queue.append(nxt)
            parent[(nxt, depth + 1)] = cur
            end, end_depth = nxt, depth + 1
    path = [end]
    while parent[(path[-1], end_depth)] is not None:
        path.append(parent[(path[-1], end_depth)])
        end_depth -= 1
    if forward:
        path.reverse()
    return path, found


# --- embedded-world helpers -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world_scenes(small_world_root):
    """Every scene of both splits: (frames, current, scene), with the map and its query."""
    out = []
    road_map = None
    for split in ("test", "train"):
        reader = NavsimReader(small_world_root, split)
        for ref in reader.index():
            frames, cur = reader.scene_frames(ref.token)
            if road_map is None:
                road_map = read_nuplan_map(small_world_root / "maps", frames[cur].map_location)
                query = MapQuery(road_map)
            out.append((list(frames), cur, build_scoring_scene(frames, cur, road_map, query)))
    return out, road_map, query


def _world_step(small_world, frame: NavsimFrame):
    log = next(lg for lg in small_world.logs if lg.name == frame.log_name)
    step = next(i for i, f in enumerate(log.frames) if f.timestamp_us == frame.timestamp_us)
    return log, step


# --- object timeline ---------------------------------------------------------------------------------------


def test_world_scenes_are_busy(world_scenes):
    scenes, _, _ = world_scenes
    assert scenes and all(s.object_present[0].sum() >= 40 for _, _, s in scenes)
    assert all(s.num_steps == 51 and s.pdm_closed_states.shape == (0, 11) for _, _, s in scenes)


def test_timeline_equals_the_loop_reference_bit_for_bit(world_scenes):
    scenes, _, _ = world_scenes
    for frames, cur, scene in scenes:
        ref = loop_object_timeline(frames, cur)
        assert list(scene.object_tokens) == ref["tokens"]
        np.testing.assert_array_equal(scene.object_types, ref["types"])
        np.testing.assert_array_equal(scene.object_size_lwh, ref["size_lwh"])
        np.testing.assert_array_equal(scene.object_first_velocity_xy, ref["first_velocity_xy"])
        np.testing.assert_array_equal(scene.object_present, ref["present"])
        np.testing.assert_array_equal(scene.object_poses, ref["poses"])
        np.testing.assert_array_equal(scene.object_velocity_xy, ref["velocity_xy"])


def test_timeline_matches_world_truth(world_scenes, small_world):
    """Exact at keyframes; in between, the chord of the truth, within the chord's error bound h^2/8 max|x''|."""
    scenes, _, _ = world_scenes
    checked_between = 0
    for frames, cur, scene in scenes[::3]:
        log, step0 = _world_step(small_world, frames[cur])
        truth = [log.frames[step0 + k].objects for k in range(scene.num_steps)]
        col = {t: i for i, t in enumerate(truth[0].track_tokens)}
        for m, tok in enumerate(scene.object_tokens):
            i = col[str(tok)]
            xy = np.array([o.center_xyz[i, :2] for o in truth])
            yaw = np.array([o.yaw_rad[i] for o in truth])
            vel = np.array([o.velocity_xy_mps[i] for o in truth])
            kf = [5 * j for j in range(11) if str(tok) in frames[cur + j].annotations.track_tokens]
            for k in kf:
                np.testing.assert_allclose(scene.object_poses[k, m, :2], xy[k], atol=1e-9)
                assert abs(_wrap(scene.object_poses[k, m, 2] - yaw[k])) < 1e-9
                if ObjectType(scene.object_types[m]) in AGENT_TYPES:
                    np.testing.assert_allclose(scene.object_velocity_xy[k, m], vel[k], atol=1e-9)
            for a, b in zip(kf[:-1], kf[1:]):
                if b - a != 5:
                    continue
                accel = np.abs(np.diff(xy[a : b + 1], n=2, axis=0)).max() / 0.01 if b - a > 1 else 0.0
                bound = 2.0 * 0.5**2 / 8 * accel + 1e-6
                for k in range(a + 1, b):
                    w = (k - a) / 5
                    chord = (1 - w) * xy[a] + w * xy[b]
                    np.testing.assert_allclose(scene.object_poses[k, m, :2], chord, atol=1e-9)
                    assert np.abs(scene.object_poses[k, m, :2] - xy[k]).max() <= bound
                    checked_between += 1
    assert checked_between > 1000


def _edit_track(frames: list[NavsimFrame], token: str, keep: set[int], cur: int) -> list[NavsimFrame]:
    """Remove ``token``'s box from every horizon keyframe ``j`` not in ``keep``."""
    out = list(frames)
    for j in range(11):
        if j in keep:
            continue
        f = out[cur + j]
        a = f.annotations
        sel = [i for i, t in enumerate(a.track_tokens) if t != token]
        ann = dataclasses.replace(
            a, boxes=a.boxes[sel], velocity_3d=a.velocity_3d[sel], names=tuple(a.names[i] for i in sel),
            instance_tokens=tuple(a.instance_tokens[i] for i in sel), track_tokens=tuple(a.track_tokens[i] for i in sel))
        out[cur + j] = dataclasses.replace(f, annotations=ann)
    return out


def _moving_vehicle(scene: ScoringScene) -> int:
    speed = np.linalg.norm(scene.object_first_velocity_xy, axis=1)
    moving = np.flatnonzero((scene.object_types == ObjectType.VEHICLE) & (speed > 2.0)
                            & scene.object_present.all(axis=0))
    return int(moving[0])


def test_single_keyframe_track_is_frozen_at_every_step(world_scenes):
    scenes, _, _ = world_scenes
    frames, cur, scene = scenes[0]
    m = _moving_vehicle(scene)
    tok = str(scene.object_tokens[m])
    edited = _edit_track(frames, tok, {2}, cur)
    tl = object_timeline(edited, cur)
    j = list(tl.tokens).index(tok)
    assert tl.present[:, j].all()
    np.testing.assert_array_equal(tl.poses[:, j], np.broadcast_to(scene.object_poses[10, m], (51, 3)))
    np.testing.assert_array_equal(tl.velocity_xy[:, j], np.broadcast_to(scene.object_velocity_xy[10, m], (51, 2)))
    np.testing.assert_array_equal(tl.first_velocity_xy[j], scene.object_velocity_xy[10, m])


def test_track_span_gaps_and_float_edges(world_scenes):
    scenes, _, _ = world_scenes
    frames, cur, scene = scenes[0]
    m = _moving_vehicle(scene)
    tok = str(scene.object_tokens[m])
    # Seen at keyframes 1..3 only: present from t = 0.5 s to t = 1.5 s inclusive (NAVSIM compares the float
    # step times k * 0.1 with j * 0.5; on this grid they coincide at every keyframe).
    assert np.all(np.arange(0, 51, 1, dtype=float)[::5] * 0.1 == np.arange(0, 11.0) * 0.5)
    tl = object_timeline(_edit_track(frames, tok, {1, 2, 3}, cur), cur)
    j = list(tl.tokens).index(tok)
    np.testing.assert_array_equal(np.flatnonzero(tl.present[:, j]), np.arange(5, 16))
    assert np.all(tl.poses[~tl.present[:, j], j] == 0.0)
    # A gap at keyframe 2 is bridged linearly from keyframe 1 to keyframe 3.
    tl = object_timeline(_edit_track(frames, tok, set(range(11)) - {2}, cur), cur)
    j = list(tl.tokens).index(tok)
    assert tl.present[:, j].all()
    a, b = scene.object_poses[5, m, :2], scene.object_poses[15, m, :2]
    np.testing.assert_allclose(tl.poses[10, j, :2], 0.5 * (a + b), atol=1e-9)
    # Order is type, then first appearance: a vehicle first seen later sorts after the vehicles of the
    # current frame and before every other type.
    tl = object_timeline(_edit_track(frames, tok, {4, 5}, cur), cur)
    j = list(tl.tokens).index(tok)
    a = frames[cur].annotations
    vehicles_now = [list(tl.tokens).index(t) for t, n in zip(a.track_tokens, a.names) if n == "vehicle" and t != tok]
    assert j > max(vehicles_now) and j < np.flatnonzero(tl.types != ObjectType.VEHICLE).min()
    assert np.all(np.diff(tl.types) >= 0)


def _assert_timelines_equal(a, b) -> None:
    for field in ("tokens", "types", "size_lwh", "first_velocity_xy", "present", "poses", "velocity_xy"):
        x, y = getattr(a, field), getattr(b, field)
        assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes(), field


@pytest.mark.parametrize("horizon_s", [5.0, 4.0])
def test_log_batched_timelines_equal_each_scene_alone(small_world_root, horizon_s):
    """Scenes of a log computed together (overlapping windows, one track table) give each scene's own
    arrays byte for byte, with gaps, late and single-keyframe tracks, and a keyframe without boxes."""
    reader = NavsimReader(small_world_root, "test")
    log_name = reader.index()[0].log_id
    frames = list(reader.log_frames(log_name))
    windows = [w for w in reader.windows().values() if w.log_name == log_name]
    currents = [w.current_index for w in windows]
    # Edit the log: a track with a gap, one seen late, one seen once; one keyframe with no boxes at all.
    c0 = currents[0]
    tokens = frames[c0].annotations.track_tokens
    frames = _edit_track(frames, tokens[0], set(range(11)) - {2, 3}, c0)
    frames = _edit_track(frames, tokens[1], {4, 5, 6}, c0)
    frames = _edit_track(frames, tokens[2], {7}, c0)
    empty = frames[c0 + 1].annotations
    frames[c0 + 1] = dataclasses.replace(frames[c0 + 1], annotations=dataclasses.replace(
        empty, boxes=np.zeros((0, 7)), velocity_3d=np.zeros((0, 3)), names=(), instance_tokens=(), track_tokens=()))
    batched = object_timelines(frames, currents, horizon_s)
    assert len(batched) == len(currents)
    for cur, got in zip(currents, batched, strict=True):
        alone = object_timeline(frames, cur, horizon_s)
        _assert_timelines_equal(got.timeline, alone)
        now = set(frames[cur].annotations.track_tokens)
        np.testing.assert_array_equal(got.in_current_frame, [str(t) in now for t in alone.tokens])
    # Any subset and order of scenes: the same arrays.
    picked = currents[::-3]
    for cur, got in zip(picked, object_timelines(frames, picked, horizon_s), strict=True):
        _assert_timelines_equal(got.timeline, object_timeline(frames, cur, horizon_s))
    assert object_timelines(frames, [], horizon_s) == []


def test_batched_timeline_errors_name_the_scene(small_world_root):
    reader = NavsimReader(small_world_root, "test")
    w = reader.windows()[reader.index()[0].token]
    frames = list(reader.log_frames(w.log_name))
    with pytest.raises(DataError, match="future frames") as err:
        object_timelines(frames, [w.current_index, len(frames) - 3])
    assert frames[len(frames) - 3].token in str(err.value)
    bad = list(frames)
    bad[w.current_index + 2] = dataclasses.replace(bad[w.current_index + 2], annotations=None)
    with pytest.raises(DataError, match="no annotations"):
        object_timelines(bad, [w.current_index])


def test_cache_batches_equal_scenes_built_alone(small_world_root, tmp_path):
    """The cache's per-log batches (announced sparse tokens, or the next scenes of the log) build exactly
    the scenes ``build_scoring_scene`` builds alone."""
    reader = NavsimReader(small_world_root, "test")
    tokens = [r.token for r in reader.index()]
    road_map = read_nuplan_map(small_world_root / "maps", reader.log_frames(reader.index()[0].log_id)[0].map_location)
    query = MapQuery(road_map)
    sparse = tokens[::2] + tokens[1:4]
    shuffled = [tokens[i] for i in np.random.default_rng(0).permutation(len(tokens))]
    for order, expect in ((sparse, None), (sparse, sparse), (shuffled, None)):
        cache = ScoringSceneCache(tmp_path / "cache", reader, small_world_root / "maps")
        if expect is not None:
            cache.expect(expect)
        for t in order:
            frames, cur = reader.scene_frames(t)
            alone = build_scoring_scene(frames, cur, road_map, query, fingerprint=cache.fingerprint(
                frames[cur].log_name, frames[cur].map_location))
            _assert_scenes_equal(cache.build(t), alone)
        if order is shuffled:  # scenes asked for out of order: batches shrink instead of wasting work
            assert cache._batch_size <= 2


# --- lights, drivable map, centerline on the world ------------------------------------------------------------


def test_red_light_mask_equals_a_per_entry_loop(world_scenes):
    """Duplicates (red if any entry is red), ids the map does not know (dropped), lights that appear late."""
    scenes, road_map, _ = world_scenes
    frames, cur, _ = scenes[0]
    connectors = sorted(road_map.lane_connectors)[:4]
    lanes = sorted(road_map.lanes)[:1]
    a, b, c, d = connectors
    kf = [dataclasses.replace(f) for f in frames[cur : cur + 4]]
    lights = [((a, False), (a, True), (999_999_999, True), (lanes[0], True)), (), ((b, True), (c, False)),
              ((d, True), (a, False), (b, False))]
    kf = [dataclasses.replace(f, traffic_lights=tl) for f, tl in zip(kf, lights, strict=True)]
    ids, red, polys = red_light_mask(kf, road_map, 17)
    named = sorted({cid for tl in lights for cid, _ in tl if cid in road_map.lane_connectors or cid in road_map.lanes})
    assert ids.tolist() == named and ids.dtype == np.int64
    want = np.zeros((17, len(named)), dtype=bool)
    for k in range(17):
        for cid, is_red in lights[min(k // 5, 3)]:
            if is_red and cid in named:
                want[k, named.index(cid)] = True
    np.testing.assert_array_equal(red, want)
    for cid, poly in zip(named, polys, strict=True):
        obj = road_map.lane_connectors.get(cid) or road_map.lanes[cid]
        assert poly is obj.polygon
    empty_ids, empty_red, empty_polys = red_light_mask([dataclasses.replace(f, traffic_lights=()) for f in kf],
                                                       road_map, 17)
    assert empty_ids.shape == (0,) and empty_red.shape == (17, 0) and empty_polys.shape == (0,)


def test_red_light_mask_is_zero_order_hold_of_world_lights(world_scenes, small_world):
    scenes, _, _ = world_scenes
    for frames, cur, scene in scenes:
        log, step0 = _world_step(small_world, frames[cur])
        assert len(scene.light_connector_ids) > 0
        for k in range(scene.num_steps):
            lights = dict(log.frames[step0 + 5 * (k // 5)].traffic_lights)
            expected = [lights.get(int(c), False) for c in scene.light_connector_ids]
            np.testing.assert_array_equal(scene.red_light_mask[k], expected)
        assert scene.red_light_mask.any()


def test_drivable_map_holds_the_human_footprint_at_t0(world_scenes):
    scenes, road_map, _ = world_scenes
    for _, _, scene in scenes:
        corners = np.asarray(ego_footprint(scene.ego_pose).exterior.coords)[:4]
        sel = np.isin(scene.drivable_types, [MapLayer.ROADBLOCK, MapLayer.INTERSECTION, MapLayer.CARPARK_AREA])
        polys = scene.drivable_polygons[sel]
        inside = np.array([shapely.contains_xy(polys, x, y).any() for x, y in corners])
        assert inside.all(), scene.token
        # 100 m square around the centre: every roadblock of the map that reaches into it is listed.
        c = ego_center(scene.ego_pose)
        box = shapely.box(c[0] - 100, c[1] - 100, c[0] + 100, c[1] + 100)
        want = sorted(r.id for r in road_map.roadblocks.values() if r.polygon.intersects(box))
        assert sorted(scene.drivable_ids[scene.drivable_types == MapLayer.ROADBLOCK]) == want


def test_centerline_follows_the_human_drive(world_scenes):
    scenes, road_map, _ = world_scenes
    lanes = {**road_map.lanes, **road_map.lane_connectors}
    followed = 0
    for frames, cur, scene in scenes:
        line = shapely.LineString(scene.centerline[:, :2])
        future = np.stack([f.ego_pose[:2] for f in frames[cur:]])
        dist = shapely.distance(shapely.points(future), line)
        # The centerline stays in the starting lane; a human lane change (the obstacle log) leaves it by
        # about one lane width and never farther.
        assert dist.max() < 4.0, scene.token
        followed += dist.max() < 0.5
        assert set(scene.route_roadblock_ids.tolist()) >= {lanes[int(i)].roadblock_id if int(i) in road_map.lanes
                                                           else lanes[int(i)].roadblock_connector_id
                                                           for i in scene.route_lane_ids}
        assert np.all(np.isin(scene.route_lane_ids, list(lanes)))
        np.testing.assert_allclose(scene.human_future_local[-1, :2] @ [1, 0] > 0, True)
    assert followed >= len(scenes) // 2


def test_initial_state_and_human_trajectories(world_scenes, small_world):
    scenes, _, _ = world_scenes
    frames, cur, scene = scenes[0]
    now = frames[cur]
    np.testing.assert_array_equal(scene.ego_pose, now.ego_pose)
    np.testing.assert_array_equal(scene.ego_velocity_xy, now.ego_dynamic_state[:2].astype(np.float32))
    assert scene.human_future_local.shape == (len(frames) - cur - 1, 3)
    np.testing.assert_array_equal(scene.human_history_global, np.stack([f.ego_pose for f in frames[: cur + 1]]))
    np.testing.assert_allclose(scene.human_history_times_s, [-1.5, -1.0, -0.5, 0.0])
    assert scene.scene_type == 0


def test_v2_horizon_and_synthetic_tokens(world_scenes):
    scenes, road_map, query = world_scenes
    frames, cur, v1 = scenes[0]
    v2 = build_scoring_scene(frames, cur, road_map, query, horizon_s=4.0)
    assert v2.num_steps == 41
    # Tracks first seen in the last second are not in the v2 timeline; tracks seen at two or more of the
    # first 9 keyframes interpolate the same. (One seen at keyframe 8 only is frozen there at every step in
    # v2, as NAVSIM does, while v1.1 interpolates it over 4..5 s.)
    keep = np.isin(v1.object_tokens, v2.object_tokens)
    np.testing.assert_array_equal(v1.object_tokens[keep], v2.object_tokens)
    seen = np.array([sum(str(t) in frames[cur + j].annotations.track_tokens for j in range(9)) for t in v2.object_tokens])
    np.testing.assert_array_equal(v1.object_poses[:41, keep][:, seen >= 2], v2.object_poses[:, seen >= 2])
    late = np.flatnonzero(seen == 1)
    assert np.all(v2.object_present[:, late])
    np.testing.assert_array_equal(v1.red_light_mask[:41][:, np.isin(v1.light_connector_ids, v2.light_connector_ids)],
                                  v2.red_light_mask)
    synthetic = list(frames)
    synthetic[cur] = dataclasses.replace(frames[cur], token=frames[cur].token + "s")  # 17 characters
    scene = build_scoring_scene(synthetic, cur, road_map, query)
    assert scene.scene_type == 1 and scene.human_future_local is None


# --- route correction and centerline on hand-made maps --------------------------------------------------------

MAP = build_fixture_map()
QUERY = MapQuery(MAP)


def _block_at(x: float, y: float) -> int:
    (rb,) = [r.id for r in MAP.roadblocks.values() if r.polygon.contains(shapely.Point(x, y))]
    return rb


EAST_IN, WEST_OUT, SOUTH_OUT, NORTH_IN = _block_at(40, 3.5), _block_at(-40, 3.5), _block_at(-3.5, -40), \
    _block_at(-3.5, 40)


def _connector(src: int, dst: int) -> int:
    (c,) = [c.id for c in MAP.roadblock_connectors.values() if (c.from_roadblock_id, c.to_roadblock_id) == (src, dst)]
    return c


EGO_EAST_ARM = np.array([40.0, 1.75, np.pi])  # lane 0 of the east arm's inbound (west-bound) roadblock


def test_route_correction_prepends_the_ego_roadblock_behind_the_route():
    straight = _connector(EAST_IN, WEST_OUT)
    assert route_roadblock_correction(EGO_EAST_ARM, MAP, QUERY, [straight, WEST_OUT]) == [EAST_IN, straight, WEST_OUT]
    # Ids may come as the log's strings; repeats are dropped first.
    assert route_roadblock_correction(EGO_EAST_ARM, MAP, QUERY, [str(straight), str(WEST_OUT), str(straight)]) == \
        [EAST_IN, straight, WEST_OUT]


def test_route_correction_fills_a_gap_between_route_roadblocks():
    assert route_roadblock_correction(EGO_EAST_ARM, MAP, QUERY, [EAST_IN, WEST_OUT]) == \
        [EAST_IN, _connector(EAST_IN, WEST_OUT), WEST_OUT]
    # Already linked: unchanged.
    left = _connector(EAST_IN, SOUTH_OUT)
    assert route_roadblock_correction(EGO_EAST_ARM, MAP, QUERY, [EAST_IN, left, SOUTH_OUT]) == [EAST_IN, left, SOUTH_OUT]


def test_route_correction_splices_forward_when_nothing_leads_back():
    # Nothing feeds the north arm's inbound roadblock, so the backward search fails; the forward search
    # from the ego reaches the second route roadblock, and the route restarts from the ego.
    route = [NORTH_IN, WEST_OUT]
    assert route_roadblock_correction(EGO_EAST_ARM, MAP, QUERY, route) == [EAST_IN, _connector(EAST_IN, WEST_OUT),
                                                                          WEST_OUT]


def test_route_correction_cuts_a_loop_at_an_overlapping_connector():
    straight_ew = _connector(EAST_IN, WEST_OUT)
    straight_ns = _connector(NORTH_IN, SOUTH_OUT)  # crosses the east-west straight inside the intersection
    out = route_roadblock_correction(EGO_EAST_ARM, MAP, QUERY, [EAST_IN, straight_ew, WEST_OUT, straight_ns])
    assert out == [EAST_IN, straight_ew, WEST_OUT]


def test_route_correction_rejects_unknown_ids():
    with pytest.raises(ValueError, match="neither roadblocks"):
        route_roadblock_correction(EGO_EAST_ARM, MAP, QUERY, [999999])
    with pytest.raises(ValueError, match="empty"):
        route_roadblock_correction(EGO_EAST_ARM, MAP, QUERY, [])


class _FakeGraph:
    """Just the two roadblock-graph lookups the BFS uses."""

    def __init__(self, out: dict[int, tuple[int, ...]], inc: dict[int, tuple[int, ...]]) -> None:
        self.block_outgoing, self.block_incoming = out.__getitem__, inc.__getitem__


def test_bfs_equals_the_official_queue_search_on_random_graphs():
    rng = np.random.default_rng(7)
    for trial in range(300):
        n = int(rng.integers(2, 9))
        out = {i: tuple(int(v) for v in rng.choice(n, size=rng.integers(0, 4), replace=True)) for i in range(n)}
        inc = {i: tuple(j for j in range(n) for v in out[j] if v == i) for i in range(n)}

        forward = bool(trial % 2)
        targets = [int(v) for v in rng.choice(n, size=rng.integers(1, 3))]
        depth = int(rng.integers(1, 7))
        start = int(rng.integers(0, n))
        got, found = _bfs_roadblocks(_FakeGraph(out, inc), start, targets, depth, forward=forward)
        want, want_found = official_bfs(start, targets, depth, out.__getitem__ if forward else inc.__getitem__,
                                        forward)
        assert found == want_found
        if found:
            assert got == want, (trial, out, start, targets, depth, forward)


def test_centerline_follows_the_ego_lane_through_a_left_turn():
    left = _connector(EAST_IN, SOUTH_OUT)
    route = route_roadblock_correction(EGO_EAST_ARM, MAP, QUERY, [EAST_IN, left, SOUTH_OUT])
    cl = discrete_centerline(EGO_EAST_ARM, MAP, QUERY, route)
    lane0 = MAP.roadblocks[EAST_IN].lane_ids[0]
    (turn_lane,) = MAP.roadblock_connectors[left].lane_connector_ids
    south_lane = MAP.lane_connectors[turn_lane].entry_lane_id
    expected = np.concatenate([MAP.lanes[lane0].baseline_xy, MAP.lane_connectors[turn_lane].baseline_xy,
                               MAP.lanes[south_lane].baseline_xy])
    np.testing.assert_array_equal(cl[:, :2], expected)
    assert abs(_wrap(cl[0, 2] - np.pi)) < 1e-9 and abs(_wrap(cl[-1, 2] + np.pi / 2)) < 1e-9
    # From the right lane the same route gives that lane's straight-through options no entry: the only
    # route connector leaves lane 0, so Dijkstra stops at the deepest cheapest lane it could expand.
    right_lane = MAP.roadblocks[EAST_IN].lane_ids[1]
    cl_right = discrete_centerline(np.array([40.0, 5.25, np.pi]), MAP, QUERY, route)
    np.testing.assert_array_equal(cl_right[:, :2], MAP.lanes[right_lane].baseline_xy)


# --- storage and cache ---------------------------------------------------------------------------------------


def _assert_scenes_equal(a: ScoringScene, b: ScoringScene) -> None:
    for f in dataclasses.fields(ScoringScene):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if f.name in ("light_polygons", "drivable_polygons"):
            assert len(x) == len(y) and all(shapely.equals_exact(x, y, tolerance=0.0))
        elif isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, y)
        else:
            assert x == y, f.name


def test_save_load_round_trip(world_scenes, tmp_path):
    scenes, _, _ = world_scenes
    for _, _, scene in scenes[:3]:
        path = tmp_path / f"{scene.token}.npz"
        scene.save(path)
        _assert_scenes_equal(ScoringScene.load(path), scene)


@pytest.fixture()
def cache_root(small_world_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(small_world_root / "navsim_logs", root / "navsim_logs")
    shutil.copytree(small_world_root / "maps", root / "maps")
    return root


def test_cache_builds_reuses_and_rebuilds_on_fingerprint_change(cache_root, tmp_path):
    reader = NavsimReader(cache_root, "test")
    token = reader.index()[2].token
    log_name = reader.windows()[token].log_name
    cache = ScoringSceneCache(tmp_path / "cache", reader, cache_root / "maps")
    first = cache.get(token)
    assert cache.built == 1 and cache.path_of(log_name, token).is_file()
    assert cache.index() == {log_name: {token: first.fingerprint}}
    _assert_scenes_equal(cache.get(token), first)
    assert cache.built == 1  # read back, not rebuilt

    log_path = cache_root / "navsim_logs" / "test" / f"{log_name}.pkl"
    st = log_path.stat()
    os.utime(log_path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    again = cache.get(token)
    assert cache.built == 2 and again.fingerprint != first.fingerprint
    assert cache.index()[log_name][token] == again.fingerprint
    # A fresh cache over the same directory reads the stored scene.
    fresh = ScoringSceneCache(tmp_path / "cache", reader, cache_root / "maps")
    fresh.get(token)
    assert fresh.built == 0
    # Another horizon or a corrupt file is rebuilt.
    v2 = ScoringSceneCache(tmp_path / "cache", reader, cache_root / "maps", horizon_s=4.0)
    assert v2.get(token).num_steps == 41 and v2.built == 1
    cache.path_of(log_name, token).write_bytes(b"not an npz")
    assert cache.get(token).num_steps == 51 and cache.built == 3


def test_cache_rebuilds_when_the_map_version_changes(cache_root, tmp_path):
    reader = NavsimReader(cache_root, "test")
    token = reader.index()[0].token
    cache = ScoringSceneCache(tmp_path / "cache", reader, cache_root / "maps")
    fp = cache.get(token).fingerprint
    other = ScoringSceneCache(tmp_path / "cache", reader, cache_root / "maps", map_version="9.15.1915")
    assert other.fingerprint(reader.windows()[token].log_name, "us-nv-las-vegas-strip") == fp
    bumped = ScoringSceneCache(tmp_path / "cache", reader, cache_root / "maps", map_version="9.99.0")
    assert bumped.fingerprint(reader.windows()[token].log_name, "us-nv-las-vegas-strip") != fp


def test_build_errors_name_the_token(world_scenes):
    scenes, road_map, query = world_scenes
    frames, cur, _ = scenes[0]
    with pytest.raises(DataError, match="future frames"):
        build_scoring_scene(frames[: cur + 3], cur, road_map, query)
    bad = list(frames)
    bad[cur] = dataclasses.replace(frames[cur], roadblock_ids=("123456789",))
    with pytest.raises(DataError, match=frames[cur].token):
        build_scoring_scene(bad, cur, road_map, query)
    with pytest.raises(ValueError, match="multiple of 0.5"):
        build_scoring_scene(frames, cur, road_map, query, horizon_s=4.2)
