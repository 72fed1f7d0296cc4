"""Route target points: LEAD's duplicate merge on a hand-made route at real-world (UTM-size) coordinates.

The embedded world sits at nuPlan's Las Vegas UTM coordinates (|y| ~ 4e6 m). LEAD merges consecutive target
points with ``np.allclose`` (relative tolerance 1e-5), which there is a 40 m tolerance: distinct points 25 m
apart merged into one and the reader raised IndexError (training skipped 19 of 360 CARLA frames).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from adapters.carla import format as fmt
from adapters.carla.reader import CAMERAS_ONLY, CarlaReader, merge_duplicate_target_points
from adapters.carla.writer import CarlaWriteOptions, write_carla_route
from harness.types import DrivingCommand
from harness.world.build import WorldConfig, build_world
from harness.world.model import ObjectStates

SPEED_MPS = 10.0
DURATION_S = 8.4
TP_SPACING_M = 25.0  # the writer's spacing of route target points


@pytest.fixture(scope="module")
def straight_route(tmp_path_factory):
    """An empty road, the ego driving due north at 10 m/s for 8.3 s from a UTM-size start (83 m, 5 target points)."""
    log = build_world(WorldConfig(seed=0, num_logs=1, duration_s=DURATION_S)).logs[0]
    x0, y0, _ = log.frames[0].ego_pose
    empty = ObjectStates((), (), np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0), np.zeros((0, 2)))
    frames = []
    for i, fr in enumerate(log.frames):
        t = i * log.frame_interval_s
        frames.append(replace(fr, ego_pose=np.array([x0, y0 + SPEED_MPS * t, np.pi / 2]),
                              ego_velocity_mps=np.array([SPEED_MPS, 0.0]), ego_acceleration_mps2=np.zeros(2),
                              objects=empty, driving_command=DrivingCommand.STRAIGHT))
    root = tmp_path_factory.mktemp("tp_route")
    write_carla_route(replace(log, frames=tuple(frames)), root,
                      CarlaWriteOptions(camera_scale=0.1, perturbed=False, frame_stride=4))
    return root


def _metas(reader):
    for ref in reader.index():
        route, frame, _, _ = reader._locate(ref)
        yield ref, frame, reader.read_meta(route, frame)


def _lead_rule(points):
    """LEAD's merge as its loader writes it (np.allclose with the default tolerances), for the cause below."""
    kept = []
    for p in points:
        if len(points) == 2 or not kept or not np.allclose(p[:2], kept[-1][:2]):
            kept.append(p)
    return kept


def test_leads_relative_tolerance_merges_distinct_points_here(straight_route):
    """The cause, pinned: at these coordinates np.allclose calls points 25 m apart equal, and near the route's
    end the last three (50, 75 and 83 m along) become one point, which LEAD asserts against (our IndexError)."""
    key = f"next_target_points_{fmt.TP_POP_DISTANCE_M}"
    metas = {frame: meta for _, frame, meta in _metas(CarlaReader(straight_route))}
    pts = np.asarray(metas[0][key])[:, :2]
    np.testing.assert_allclose(np.diff(pts[:, 1]), [-25.0, -25.0, -25.0, -8.0], atol=1e-6)  # CARLA y = -north
    assert len(_lead_rule(pts)) == 2  # 5 distinct points -> 2
    assert [f for f, m in sorted(metas.items()) if len(_lead_rule(np.asarray(m[key]))) < 2] == [20, 24, 28]
    kept, cmds = merge_duplicate_target_points(metas[0][key], metas[0][f"next_commands_{fmt.TP_POP_DISTANCE_M}"])
    assert len(kept) == 5 and cmds == [int(fmt.CarlaCommand.LANEFOLLOW)] * 5


def test_every_frame_reads_with_previous_current_next(straight_route):
    reader = CarlaReader(straight_route)
    refs = reader.index()
    assert len(refs) == 9  # 4 Hz frames 0, 4, ..., 32
    marks = np.array([0.0, 25.0, 50.0, 75.0, 83.0])  # arc length of the target points along the drive
    for ref, frame, _ in _metas(reader):
        nav = reader.load(ref, CAMERAS_ONLY).observation.navigation
        s_ego = SPEED_MPS * frame * fmt.FRAME_INTERVAL_S
        # The writer's planner pops a point once the ego is within 3.25 m of the next one, never below two.
        first = min(int(np.searchsorted(marks, s_ego + fmt.TP_POP_DISTANCE_M, side="right")) - 1, len(marks) - 2)
        want = marks[[first, first + 1, min(first + 2, len(marks) - 1)]] - s_ego
        tp = nav.target_points_xy
        # Straight ahead, ego frame: x forward from the rear axle (LEAD's vehicle origin is 1.389 m ahead of it).
        np.testing.assert_allclose(tp[:, 1], 0.0, atol=1e-6)
        np.testing.assert_allclose(tp[:, 0], want + 1.389, atol=1e-3)
        assert nav.command == DrivingCommand.STRAIGHT


def test_route_end_keeps_last_passed_and_destination(straight_route):
    """LEAD's planner ends a route as [last passed, destination]; its loader keeps both, next = destination."""
    reader = CarlaReader(straight_route)
    ref, frame, meta = list(_metas(reader))[-1]
    assert frame == 32 and len(meta[f"next_target_points_{fmt.TP_POP_DISTANCE_M}"]) == 2
    tp = reader.load(ref, CAMERAS_ONLY).observation.navigation.target_points_xy
    np.testing.assert_allclose(tp[:, 0], np.array([75.0, 83.0, 83.0]) - 80.0 + 1.389, atol=1e-3)


def test_merge_rule_hand_cases():
    a, b, c = [0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [10.004, 0.0, 0.0]  # c duplicates b within 1 cm
    assert merge_duplicate_target_points([a, b, c], [1, 2, 3]) == ([a, b], [1, 2])
    assert merge_duplicate_target_points([b, c], [2, 3]) == ([b, c], [2, 3])  # two left: both kept (LEAD)
    assert merge_duplicate_target_points([b, c, b], [4, 4, 4]) == ([b], [4])  # one point: the destination
    far = [[1e6 + 25.0 * i, -4e6, 0.0] for i in range(3)]  # translation does not change the result
    assert len(merge_duplicate_target_points(far, [0, 0, 0])[0]) == 3


def test_training_source_skips_no_frame(straight_route):
    from harness.training.config import load_config
    from harness.training.sources import SourceRoots, open_source

    cfg = load_config("tiny-carla", overrides=["data.carla_split=all", "data.rig_carla=carla_lb_3cam"])
    data = open_source("carla", cfg, SourceRoots(carla=straight_route))
    assert data.skipped == [] and len(data.refs) == 9
