"""The embedded world as a whole: logs, splits, the ego's driving, and the situations the logs exercise."""

from __future__ import annotations

import re

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.geometry import box_corners_2d, global_to_local
from harness.types import DrivingCommand
from harness.world.build import SITUATIONS, WorldConfig, build_world
from harness.world.ego import COMMAND_LOOKAHEAD_M, PACIFICA_LENGTH_M, PACIFICA_WIDTH_M, REAR_AXLE_TO_CENTER_M
from harness.world.signals import RED

LOG_NAME = re.compile(r"^20\d\d\.\d\d\.\d\d\.\d\d\.\d\d\.\d\d_veh-\d\d_\d{5}_\d{5}$")


def _arrays(log, name):
    return np.stack([getattr(f, name) for f in log.frames])


def _ego_corners(poses: np.ndarray) -> np.ndarray:
    center = poses[:, :2] + REAR_AXLE_TO_CENTER_M * np.stack(
        [np.cos(poses[:, 2]), np.sin(poses[:, 2])], axis=1
    )
    return box_corners_2d(center, PACIFICA_LENGTH_M, PACIFICA_WIDTH_M, poses[:, 2])


def _drivable(m):
    area = shapely.union_all(
        [
            *(r.polygon for r in m.roadblocks.values()),
            *(a.polygon for a in m.intersections.values()),
            *(a.polygon for a in m.carparks.values()),
        ]
    )
    shapely.prepare(area)
    return area


def _same(a, b) -> None:
    assert [lg.name for lg in a.logs] == [lg.name for lg in b.logs] and a.splits == b.splits
    for la, lb in zip(a.logs, b.logs):
        for fa, fb in zip(la.frames, lb.frames):
            assert fa.timestamp_us == fb.timestamp_us and fa.driving_command == fb.driving_command
            assert fa.traffic_lights == fb.traffic_lights and fa.route_roadblock_ids == fb.route_roadblock_ids
            for name in ("ego_pose", "ego_velocity_mps", "ego_acceleration_mps2"):
                np.testing.assert_array_equal(getattr(fa, name), getattr(fb, name))
            assert fa.objects.track_tokens == fb.objects.track_tokens
            for name in ("center_xyz", "size_lwh", "yaw_rad", "velocity_xy_mps"):
                np.testing.assert_array_equal(getattr(fa.objects, name), getattr(fb.objects, name))


# --- build, config, logs and splits --------------------------------------------------------------------


def test_default_build_is_fast(default_world):
    assert default_world.seconds < 5.0, f"build_world(WorldConfig()) took {default_world.seconds:.2f} CPU s"


def test_config_is_validated():
    for bad in (dict(num_logs=0), dict(duration_s=0.0), dict(test_fraction=1.5)):
        with pytest.raises(ValueError):
            WorldConfig(**bad)


@settings(max_examples=3, deadline=None)
@given(st.integers(min_value=0, max_value=2**31 - 1))
def test_same_config_same_world(seed):
    config = WorldConfig(seed=seed, num_logs=2, duration_s=3.0)
    _same(build_world(config), build_world(config))


def test_seed_changes_the_world():
    a, b = (
        build_world(WorldConfig(seed=1, num_logs=1, duration_s=2.0)),
        build_world(WorldConfig(seed=2, num_logs=1, duration_s=2.0)),
    )
    assert a.logs[0].name != b.logs[0].name
    assert not np.allclose(a.logs[0].frames[0].ego_pose, b.logs[0].frames[0].ego_pose)


def test_logs_frames_and_timestamps(default_world):
    world = default_world.world
    assert len(world.logs) == 8 and len({lg.name for lg in world.logs}) == 8
    starts = []
    for log in world.logs:
        assert LOG_NAME.match(log.name), log.name
        assert log.map is world.road_map and log.frame_interval_s == 0.1
        assert len(log.frames) == 300  # 30 s at 10 Hz: 60 keyframes at 2 Hz
        ts = np.array([f.timestamp_us for f in log.frames])
        assert np.all(np.diff(ts) == 100_000)
        assert 1_609_459_200_000_000 <= ts[0] < 1_640_995_200_000_000  # in 2021, like nuPlan
        starts.append(ts[0])
    assert len(set(starts)) == 8
    assert len({lg.seed for lg in world.logs}) == 8


@pytest.mark.parametrize(
    ("n", "fraction", "n_test"),
    [(8, 0.5, 4), (2, 0.5, 1), (2, 0.01, 1), (2, 0.99, 1), (3, 0.0, 0), (3, 1.0, 3), (1, 0.5, 1)],
)
def test_splits(n, fraction, n_test):
    world = build_world(WorldConfig(num_logs=n, duration_s=0.2, test_fraction=fraction))
    train, test = set(world.splits["train"]), set(world.splits["test"])
    assert not train & test and train | test == {lg.name for lg in world.logs}
    assert len(test) == n_test


def test_default_split_puts_even_logs_in_test(default_world):
    world = default_world.world
    assert world.splits["test"] == tuple(world.logs[i].name for i in (0, 2, 4, 6))
    assert world.splits["train"] == tuple(world.logs[i].name for i in (1, 3, 5, 7))


# --- the ego -------------------------------------------------------------------------------------------


def test_ego_speed_and_acceleration_are_realistic(default_world, default_sims, world_graph):
    moving_speeds = []
    for log, sim in zip(default_world.world.logs, default_sims):
        v, a = _arrays(log, "ego_velocity_mps"), _arrays(log, "ego_acceleration_mps2")
        assert np.all(v[:, 1] == 0.0) and v[:, 0].min() >= 0.0 and v[:, 0].max() < 15.0
        assert np.abs(a[:, 0]).max() <= 3.0 and np.abs(a[:, 1]).max() <= 3.0, sim.situation.name
        assert np.abs(np.diff(a[:, 0])).max() / 0.1 <= 8.0  # smooth: bounded jerk
        # Never above the speed limit where the ego is.
        path = sim.movers[0].path
        limit = world_graph.speed_limit[path.nodes[path.element_at(sim.result.s[:, 0])]]
        assert np.all(v[:, 0] <= limit + 0.3), sim.situation.name
        assert v[:, 0].max() > 8.0  # every log drives at road speed at some point
        moving_speeds.append(v[v[:, 0] > 1.0, 0])
    assert 7.0 < np.concatenate(moving_speeds).mean() < 12.0


def test_ego_motion_matches_its_reported_state(default_world):
    for log in default_world.world.logs:
        pose, v = _arrays(log, "ego_pose"), _arrays(log, "ego_velocity_mps")
        step = global_to_local(pose[1:], pose[:-1])  # each pose in the previous ego frame
        np.testing.assert_allclose(step[:, 0] / 0.1, 0.5 * (v[1:, 0] + v[:-1, 0]), atol=0.05)
        assert np.abs(step[:, 1]).max() < 0.02  # no side slip: the rear axle moves along its heading


def test_ego_stays_on_the_drivable_area(default_world):
    area = _drivable(default_world.world.road_map)
    for log in default_world.world.logs:
        corners = _ego_corners(_arrays(log, "ego_pose"))
        inside = shapely.contains_xy(area, corners[..., 0], corners[..., 1])
        assert inside.all(), (log.name, np.nonzero(~inside.all(axis=1))[0][:5])


def test_route_is_connected_and_starts_where_the_ego_is(default_world):
    m = default_world.world.road_map
    blocks = {
        **{k: v.polygon for k, v in m.roadblocks.items()},
        **{k: m.intersections[v.intersection_id].polygon for k, v in m.roadblock_connectors.items()},
    }
    successors = {k: set(m.roadblock_successors(k)) for k in blocks}
    for log in default_world.world.logs:
        previous = None
        for t, frame in enumerate(log.frames):
            route = frame.route_roadblock_ids
            assert route and len(set(route)) == len(route)
            assert all(b in successors[a] for a, b in zip(route, route[1:]))
            if t % 10 == 0:
                assert blocks[route[0]].buffer(0.5).contains(shapely.Point(frame.ego_pose[:2]))
            if previous is not None:
                assert route == previous[len(previous) - len(route) :]  # only ever drops what lies behind
            previous = route


def test_driving_command_follows_the_route(default_world, default_sims):
    commands = set()
    for log, sim in zip(default_world.world.logs, default_sims):
        path, s = sim.movers[0].path, sim.result.s[:, 0]
        ahead, _ = path.interpolate(s + COMMAND_LOOKAHEAD_M)
        pose = _arrays(log, "ego_pose")
        local = global_to_local(np.concatenate([ahead, np.zeros((len(s), 1))], axis=1), pose)
        want = np.where(
            local[:, 1] > 2.0,
            DrivingCommand.LEFT,
            np.where(local[:, 1] < -2.0, DrivingCommand.RIGHT, DrivingCommand.STRAIGHT),
        )
        got = np.array([f.driving_command for f in log.frames])
        np.testing.assert_array_equal(got, want)
        commands |= set(got.tolist())
    assert commands == {DrivingCommand.LEFT, DrivingCommand.STRAIGHT, DrivingCommand.RIGHT}


# --- situations ----------------------------------------------------------------------------------------


def _test_logs(world):
    return [i for i, lg in enumerate(world.logs) if lg.name in world.splits["test"]]


def test_a_test_log_waits_at_a_red_light(default_world, default_sims, world_graph):
    world = default_world.world
    longest = 0.0
    for i in _test_logs(world):
        sim = default_sims[i]
        path, mover = sim.movers[0].path, sim.movers[0]
        front = sim.result.s[:, 0] + mover.front_m
        at_red = np.zeros(len(front), dtype=bool)
        for k, node in enumerate(path.nodes):
            if world_graph.approach[node] >= 0:
                d = path.seq_start[k] - front
                at_red |= (d > 0) & (d < 3.0) & (sim.lights[:, node] == RED)
        waiting = at_red & (sim.result.v[:, 0] < 0.1)
        runs = np.diff(np.flatnonzero(np.diff(np.concatenate([[0], waiting.astype(int), [0]]))))[::2]
        longest = max(longest, runs.max(initial=0) * 0.1)
    assert longest >= 2.0


def test_pedestrians_cross_in_front_of_the_ego(default_world):
    seen = 0
    for log in default_world.world.logs:
        peds = np.array(log.frames[0].objects.categories) == "pedestrian"
        for frame in log.frames:
            o = frame.objects
            xy = np.concatenate([o.center_xyz[peds, :2], np.zeros((peds.sum(), 1))], axis=1)
            local = global_to_local(xy, frame.ego_pose)
            vel = o.velocity_xy_mps[peds]
            c, s = np.cos(frame.ego_pose[2]), np.sin(frame.ego_pose[2])
            lateral_speed = -s * vel[:, 0] + c * vel[:, 1]
            ahead = (local[:, 0] > 4.0) & (local[:, 0] < 15.0) & (np.abs(local[:, 1]) < 3.0)
            seen += int(np.any(ahead & (np.abs(lateral_speed) > 0.8)))
    assert seen >= 10  # frames with someone walking across right in front of the ego


def test_the_situations_happen(default_world):
    world = default_world.world
    by_name = {SITUATIONS[i].name: lg for i, lg in enumerate(world.logs)}
    # Standing start: stopped at first, then away.
    v = _arrays(by_name["standing_start"], "ego_velocity_mps")[:, 0]
    assert v[0] == 0.0 and v[:15].max() < 0.1 and v.max() > 8.0
    # Stopped lead vehicle: the ego stands still close behind a standing vehicle.
    log = by_name["stopped_queue"]
    hits = 0
    for frame in log.frames:
        if frame.ego_velocity_mps[0] < 0.1:
            o = frame.objects
            xy = np.concatenate([o.center_xyz[:, :2], np.zeros((len(o), 1))], axis=1)
            local = global_to_local(xy, frame.ego_pose)
            lead = (local[:, 0] > 4.0) & (local[:, 0] < 12.0) & (np.abs(local[:, 1]) < 1.0)
            hits += int(np.any(lead & (np.linalg.norm(o.velocity_xy_mps, axis=1) < 0.1)))
    assert hits >= 20
    # Obstacle: cones and a standing car in the start lane ahead; the ego moves one lane over and passes them.
    log = by_name["obstacle_pass"]
    first = log.frames[0]
    cats = np.array(first.objects.categories)
    cones = first.objects.center_xyz[cats == "traffic_cone", :2]
    local = global_to_local(np.concatenate([cones, np.zeros((len(cones), 1))], axis=1), first.ego_pose)
    assert len(cones) >= 3 and np.all(np.abs(local[:, 1]) < 2.0) and np.all(local[:, 0] > 30.0)
    car = first.objects.center_xyz[
        (cats == "vehicle") & (np.linalg.norm(first.objects.velocity_xy_mps, axis=1) == 0)
    ]
    car_local = global_to_local(np.concatenate([car[:, :2], np.zeros((len(car), 1))], axis=1), first.ego_pose)
    ahead = car_local[(np.abs(car_local[:, 1]) < 1.0) & (car_local[:, 0] > 0)]
    assert len(ahead) == 1  # the broken-down car, in the ego's start lane
    track = global_to_local(_arrays(log, "ego_pose"), first.ego_pose)
    k = np.argmax(track[:, 0] > ahead[0, 0] + 10.0)
    assert k > 0 and 2.5 < track[k, 1] < 4.5  # one lane to the left when it passes the car
    # Curves and oncoming traffic on a two-lane road.
    log = by_name["oncoming_curve"]
    ay = _arrays(log, "ego_acceleration_mps2")[:, 1]
    assert (np.abs(ay) > 1.0).sum() >= 30
    oncoming = 0
    for frame in log.frames[::10]:
        o = frame.objects
        xy = np.concatenate([o.center_xyz[:, :2], np.zeros((len(o), 1))], axis=1)
        local = global_to_local(xy, frame.ego_pose)
        facing = np.cos(o.yaw_rad - frame.ego_pose[2]) < -0.9
        oncoming += int(
            np.any(
                facing
                & (local[:, 0] > 0)
                & (local[:, 0] < 60)
                & (np.abs(local[:, 1]) < 5.0)
                & (np.linalg.norm(o.velocity_xy_mps, axis=1) > 2.0)
            )
        )
    assert oncoming >= 3


@pytest.mark.parametrize("name", ["red_light_peds", "stopped_queue"])
def test_busy_logs_have_many_objects_around_the_ego(default_world, name):
    world = default_world.world
    log = world.logs[[s.name for s in SITUATIONS].index(name)]
    near = [
        int((np.linalg.norm(f.objects.center_xyz[:, :2] - f.ego_pose[:2], axis=1) < 100.0).sum())
        for f in log.frames
    ]
    assert min(near) >= 40
