"""Traffic, signals and pedestrians of the embedded world: IDM behaviour and the rules of the road."""

from __future__ import annotations

import re

import numpy as np
import pytest
import shapely

from harness.geometry import box_corners_2d
from harness.world.ego import PACIFICA_LENGTH_M, PACIFICA_WIDTH_M, REAR_AXLE_TO_CENTER_M
from harness.world.lanegraph import build_path, random_route
from harness.world.model import AGENT_CATEGORIES, STATIC_CATEGORIES
from harness.world.roads import inbound_roadblock_id, intersection_id, lane_id
from harness.world.signals import GREEN, RED, YELLOW, make_signals, node_light_states
from harness.world.traffic import DT_S, Mover, simulate

NUPLAN_CATEGORIES = set(AGENT_CATEGORIES) | set(STATIC_CATEGORIES)


def _ego_box(pose: np.ndarray) -> np.ndarray:
    center = pose[:2] + REAR_AXLE_TO_CENTER_M * np.array([np.cos(pose[2]), np.sin(pose[2])])
    return box_corners_2d(center, PACIFICA_LENGTH_M, PACIFICA_WIDTH_M, pose[2])


def _overlaps(log) -> list[tuple[int, str, str]]:
    """(step, category, category) of every pair of boxes (objects and the ego) that overlap, except static
    object with static object. A bounding-circle test over all steps at once finds the candidates."""
    frames = log.frames
    cats = np.array(list(frames[0].objects.categories) + ["ego"])
    size = frames[0].objects.size_lwh
    center = np.stack([f.objects.center_xyz[:, :2] for f in frames])
    yaw = np.stack([f.objects.yaw_rad for f in frames])
    corners = box_corners_2d(center, size[None, :, 0], size[None, :, 1], yaw)
    ego = np.stack([_ego_box(f.ego_pose) for f in frames])[:, None]
    corners = np.concatenate([corners, ego], axis=1)  # (T, N + 1, 4, 2)
    mid = corners.mean(axis=2)
    radius = np.linalg.norm(corners[0] - mid[0][:, None], axis=2).max(axis=1)
    static = np.isin(cats, list(STATIC_CATEGORIES))
    keep = ~(static[:, None] & static[None, :]) & np.triu(np.ones((len(cats), len(cats)), dtype=bool), k=1)
    out = []
    reach2 = (radius[:, None] + radius[None]) ** 2
    for lo in range(0, len(frames), 25):
        x, y = mid[lo : lo + 25, :, 0], mid[lo : lo + 25, :, 1]
        d2 = (x[:, :, None] - x[:, None, :]) ** 2 + (y[:, :, None] - y[:, None, :]) ** 2
        t, i, j = np.nonzero((d2 < reach2) & keep)
        hit = shapely.intersects(shapely.polygons(corners[lo + t, i]), shapely.polygons(corners[lo + t, j]))
        out += [(int(lo + a), str(cats[b]), str(cats[c])) for a, b, c in zip(t[hit], i[hit], j[hit])]
    return out


def test_no_two_road_users_ever_overlap(default_world):
    for log in default_world.world.logs:
        hits = _overlaps(log)
        assert not hits, f"{log.name}: {hits[:5]}"


def test_vehicles_never_cross_a_stop_line_on_red(default_sims, world_graph):
    g = world_graph
    checked = 0
    for sim in default_sims:
        for i, mover in enumerate(sim.movers):
            front = sim.result.s[:, i] + mover.front_m
            for k, node in enumerate(mover.path.nodes):
                if g.approach[node] < 0:
                    continue
                line = mover.path.seq_start[k]
                crossed = np.nonzero((front[:-1] < line) & (front[1:] >= line))[0]
                for t in crossed:
                    assert sim.lights[t, node] != RED and sim.lights[t + 1, node] != RED, (
                        sim.situation.name,
                        i,
                        t,
                    )
                checked += 1
    assert checked > 200


def test_queues_form_at_red_lights(default_sims, world_graph):
    """Vehicles do stop at red: some are standing still right before a red stop line."""
    g = world_graph
    waiting = 0
    for sim in default_sims:
        t = len(sim.times_s) // 2
        for i, mover in enumerate(sim.movers[1:], start=1):
            front = sim.result.s[t, i] + mover.front_m
            for k, node in enumerate(mover.path.nodes):
                d = mover.path.seq_start[k] - front
                if g.approach[node] >= 0 and 0.0 < d < 2.0 and sim.lights[t, node] == RED:
                    assert sim.result.v[t, i] < 2.0  # at most creeping up to the line
                    waiting += sim.result.v[t, i] < 0.05
    assert waiting >= 3


def test_idm_gaps_are_kept(default_sims):
    """On every lane and connector, a follower's front stays at least 1 m behind its leader's rear, and moving
    followers keep a time gap."""
    for sim in default_sims:
        s, v = sim.result.s, sim.result.v
        steps, n = s.shape
        node = np.zeros((steps, 2 * n), dtype=np.int64)
        coord = np.zeros((steps, 2 * n))
        for i, m in enumerate(sim.movers):
            for col, point in ((i, s[:, i] + m.front_m), (n + i, s[:, i] - m.rear_m)):
                e = m.path.element_at(point)
                node[:, col] = m.path.nodes[e]
                coord[:, col] = point - m.path.coord_offset[e]
        who = np.broadcast_to(np.arange(2 * n), (steps, 2 * n))
        step = np.broadcast_to(np.arange(steps)[:, None], (steps, 2 * n))
        order = np.lexsort((coord.ravel(), node.ravel(), step.ravel()))
        k_node, k_coord, k_who, k_step = (
            node.ravel()[order],
            coord.ravel()[order],
            who.ravel()[order],
            step.ravel()[order],
        )
        # A front immediately followed (same step, same node) by another mover's rear: that is a gap.
        pair = (k_step[:-1] == k_step[1:]) & (k_node[:-1] == k_node[1:]) & (k_who[:-1] < n) & (k_who[1:] >= n)
        pair &= k_who[:-1] != k_who[1:] - n
        gap = (k_coord[1:] - k_coord[:-1])[pair]
        assert gap.size and gap.min() >= 1.0, sim.situation.name
        follower_v = v[k_step[:-1][pair], k_who[:-1][pair]]
        fast = follower_v > 5.0
        assert np.all(gap[fast] / follower_v[fast] >= 0.5), sim.situation.name


def test_accelerations_are_bounded(default_sims):
    for sim in default_sims:
        a = sim.result.a[:, 1:]
        assert a.max() <= 1.8 + 1e-9 and a.min() >= -6.0 - 1e-9
        assert sim.result.v.min() >= 0.0


def test_conflicting_approaches_are_never_green_together(default_sims, world_map):
    for sim in default_sims:
        for sig in sim.signals:
            t = np.arange(0.0, 2 * sig.cycle_s, 0.1)
            states = sig.states(t)
            assert (states != RED).sum(axis=1).max() <= 1
            assert set(np.unique(states[:, 0])) == {GREEN, YELLOW, RED}
            for start, end in sig.walk_windows(0.0, 100.0):  # the pedestrian phase is all red
                inside = (t > start) & (t < end)
                assert np.all(states[inside] == RED)


def test_frames_report_every_signalised_connector(default_world, world_map):
    signalised = sorted(i for i, lc in world_map.lane_connectors.items() if lc.has_traffic_light)
    for log in default_world.world.logs:
        red_share = []
        for frame in log.frames[::10]:
            ids = [c for c, _ in frame.traffic_lights]
            assert ids == signalised
            by_id = dict(frame.traffic_lights)
            red_share.append(np.mean(list(by_id.values())))
            for rbc in world_map.roadblock_connectors.values():  # one light per approach
                states = {by_id[c] for c in rbc.lane_connector_ids}
                assert len(states) == 1
        assert 0.5 < np.mean(red_share) < 1.0


def test_yellow_is_reported_as_not_red(world_graph, world_map):
    iid = intersection_id("A")
    order = [inbound_roadblock_id("A", arm) for arm in ("W", "N", "E", "S")]
    sig = make_signals(world_map, iid, order, 0.0)
    t = np.array([sig.green_end[0] + 1.0])  # the first approach is yellow
    states = node_light_states(world_graph, [sig], t)[0]
    nodes = [
        world_graph.index[c]
        for c in world_map.lane_connectors
        if world_map.roadblock_connectors[
            world_map.lane_connectors[c].roadblock_connector_id
        ].from_roadblock_id
        == order[0]
    ]
    assert np.all(states[nodes] == YELLOW)


def test_objects_have_nuplan_categories_sizes_and_tokens(default_world):
    for log in default_world.world.logs:
        first = log.frames[0].objects
        assert set(first.categories) <= NUPLAN_CATEGORIES
        assert {"vehicle", "pedestrian", "traffic_cone", "generic_object"} <= set().union(
            *(set(lg.frames[0].objects.categories) for lg in default_world.world.logs)
        )
        assert all(re.fullmatch(r"[0-9a-f]{16}", tok) for tok in first.track_tokens)
        assert len(set(first.track_tokens)) == len(first)
        for frame in log.frames[::50]:
            o = frame.objects
            assert o.track_tokens == first.track_tokens and o.categories == first.categories
            np.testing.assert_allclose(o.center_xyz[:, 2], o.size_lwh[:, 2] / 2)
        size = {c: first.size_lwh[np.array(first.categories) == c] for c in set(first.categories)}
        cars = size["vehicle"]
        assert np.all((cars[:, 0] > 4.0) & (cars[:, 0] < 10.0) & (cars[:, 1] > 1.7) & (cars[:, 1] < 2.6))
        peds = size["pedestrian"]
        assert np.all((peds[:, :2] < 0.8) & (peds[:, :2] > 0.4)) and np.all(
            (peds[:, 2] > 1.5) & (peds[:, 2] < 2.0)
        )
        if "traffic_cone" in size:
            np.testing.assert_allclose(size["traffic_cone"], [[0.4, 0.4, 0.7]] * len(size["traffic_cone"]))


def test_moving_objects_face_where_they_go(default_world):
    for log in default_world.world.logs[:3]:
        for a, b in zip(log.frames[100:110], log.frames[101:111]):
            moved = b.objects.center_xyz[:, :2] - a.objects.center_xyz[:, :2]
            speed = np.linalg.norm(moved, axis=1) / DT_S
            go = speed > 1.0
            heading = np.stack([np.cos(a.objects.yaw_rad), np.sin(a.objects.yaw_rad)], axis=1)
            cos = np.sum(moved[go] * heading[go], axis=1) / np.linalg.norm(moved[go], axis=1)
            assert np.all(cos > 0.95)
            np.testing.assert_allclose(
                np.linalg.norm(a.objects.velocity_xy_mps[go], axis=1), speed[go], rtol=0.2
            )
        static = [k for k, c in enumerate(log.frames[0].objects.categories) if c in STATIC_CATEGORIES]
        np.testing.assert_array_equal(
            log.frames[0].objects.center_xyz[static], log.frames[-1].objects.center_xyz[static]
        )


def test_pedestrians_stay_on_walkways_and_cross_only_on_red(default_world, default_sims, world_map):
    m = world_map
    walk = shapely.union_all([a.polygon for a in (*m.walkways.values(), *m.carparks.values())]).buffer(0.05)
    crossings = shapely.union_all([a.polygon for a in m.crosswalks.values()]).buffer(0.05)
    shapely.prepare(walk)
    shapely.prepare(crossings)
    crossed = 0
    for log, sim in zip(default_world.world.logs, default_sims):
        peds = np.array(log.frames[0].objects.categories) == "pedestrian"
        for t, frame in enumerate(log.frames[::5]):
            xy = frame.objects.center_xyz[peds, :2]
            on_walk = shapely.contains_xy(walk, xy[:, 0], xy[:, 1])
            on_cross = shapely.contains_xy(crossings, xy[:, 0], xy[:, 1])
            assert np.all(on_walk | on_cross), log.name
            if np.any(on_cross & ~on_walk):
                crossed += 1
                # Walkers are out on the road only while every vehicle light of that junction is red.
                red = [np.all(sig.states(np.array([sim.times_s[5 * t]])) == RED) for sig in sim.signals]
                assert any(red)
    assert crossed > 10


def test_idm_follower_stops_behind_a_standing_car(world_graph):
    g = world_graph
    lane = g.index[lane_id("outer", True, 0)]
    path = build_path(g, random_route(g, [lane], 700.0, np.random.default_rng(0)))
    standing = Mover(path, 150.0, 0.0, 2.3, 2.3, frozen=True)
    follower = Mover(path, 10.0, 13.0, 2.3, 2.3)
    steps = 300
    res = simulate(g, [standing, follower], np.zeros((steps, g.num_nodes), dtype=np.int8))
    gap = (res.s[:, 0] - 2.3) - (res.s[:, 1] + 2.3)
    assert gap.min() > 1.5 and gap[-1] < 4.0
    assert res.v[-1, 1] < 0.05 and res.v[:, 0].max() == 0.0
    assert res.a[:, 1].min() > -4.0  # IDM brakes early, not hard


@pytest.mark.parametrize("green_at_s", [12.0, 18.0])
def test_mover_waits_at_red_and_goes_on_green(world_graph, world_map, green_at_s):
    g = world_graph
    lane = g.index[lane_id("middle", True, 0)]
    path = build_path(g, random_route(g, [lane], 400.0, np.random.default_rng(1), turns=("S",)))
    order = [inbound_roadblock_id("B", arm) for arm in ("W", "N", "E", "S")]
    sig = make_signals(world_map, intersection_id("B"), order, 0.0)
    sig = make_signals(world_map, intersection_id("B"), order, sig.offset_for_green(order[0], green_at_s))
    t = np.arange(250) * DT_S
    lights = node_light_states(g, [sig], t)
    line = path.seq_start[1]
    mover = Mover(path, line - 60.0, 10.0, 2.3, 2.3)
    res = simulate(g, [mover], lights)
    front = res.s[:, 0] + 2.3
    before_green = t < green_at_s
    assert np.all(front[before_green] < line)
    stopped = before_green & (res.v[:, 0] < 0.05)
    assert stopped.any() and np.all(line - front[stopped] < 2.0)
    assert front[-1] > line + 30.0
