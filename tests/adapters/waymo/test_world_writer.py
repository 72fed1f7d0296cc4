"""The Waymo world writer: states against the world log, rater rules, determinism, and the build's digest."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import adapters.waymo
from adapters.waymo import world_raters as wr
from adapters.waymo.tfrecord import read_records
from adapters.waymo.world_writer import (
    SHARD_STEMS,
    WaymoWriteOptions,
    _steps,
    cluster_of,
    sequence_id,
    write_waymo_world,
)
from harness.embedded import WAYMO_WRITER_FILES
from harness.geometry import global_to_local
from harness.world.rig_waymo import WAYMO_CAMERA_NAMES, vehicle_from_waymo_camera, waymo_cameras


def test_states_are_the_world_log_at_4_hz(small_world) -> None:
    log = small_world.logs[0]
    step = wr.valid_steps(log)[-1]
    s = wr.ego_states(log, step)
    origin = log.frames[step].ego_pose
    # t = -3.5 s, 0 and +5 s fall on 10 Hz frames: exact; t = -3.75 s lies half-way between two frames
    np.testing.assert_allclose(s.past_xy[1], global_to_local(log.frames[step - 35].ego_pose, origin)[:2], atol=1e-9)
    np.testing.assert_allclose(s.past_xy[-1], 0, atol=1e-12)
    np.testing.assert_allclose(s.future_xy[-1], global_to_local(log.frames[step + 50].ego_pose, origin)[:2],
                               atol=1e-9)
    mid = (global_to_local(log.frames[step - 38].ego_pose, origin) + global_to_local(log.frames[step - 37].ego_pose,
                                                                                     origin))[:2] / 2
    np.testing.assert_allclose(s.past_xy[0], mid, atol=0.05)  # linear in the global frame, not in the local one
    np.testing.assert_allclose(s.past_velocity_xy[-1], log.frames[step].ego_velocity_mps, atol=1e-12)
    rel = global_to_local(log.frames[step - 35].ego_pose, origin)[2]
    v = log.frames[step - 35].ego_velocity_mps
    np.testing.assert_allclose(s.past_velocity_xy[1], [np.cos(rel) * v[0] - np.sin(rel) * v[1],
                                                       np.sin(rel) * v[0] + np.cos(rel) * v[1]], atol=1e-12)


def test_frames_written_per_sequence(small_world) -> None:
    log = small_world.logs[0]  # 10 s: frames 38..46 have 3.75 s of past and 5.25 s of future
    assert (wr.valid_steps(log).start, wr.valid_steps(log)[-1]) == (38, 46)
    assert _steps(log, WaymoWriteOptions()) == [41, 46]
    assert _steps(log, WaymoWriteOptions(frame_stride=1, frames_per_sequence=3)) == [44, 45, 46]


def test_rater_rules(small_world) -> None:
    log = small_world.logs[0]
    step = wr.valid_steps(log)[-1]
    surface = wr.DrivableSurface(log.map)
    rated = wr.rated_trajectories(log, step, surface)
    assert rated.names == ("logged", "constant_velocity", "drift_left")
    assert rated.trajectories_xy.shape == (3, 21, 2)
    assert set(rated.scores) <= set(range(11))
    logged = rated.trajectories_xy[0]
    assert wr.rate_trajectory(log, step, logged, logged, surface) == 10.0  # the careful driver's own drive
    # driving into an object at 5.25 s collides: at most 10 - 5
    obj = log.frames[step + 52].objects
    target = global_to_local(np.column_stack([obj.center_xyz[:, :2], obj.yaw_rad]), log.frames[step].ego_pose)
    ahead = target[(target[:, 0] > 5) & (np.abs(target[:, 1]) < 30)]
    goal = ahead[np.argmin(np.hypot(ahead[:, 0], ahead[:, 1]))][:2]
    into = wr.RATER_TIMES_S[:, None] / wr.RATER_TIMES_S[-1] * (goal - [1.46, 0.0])[None, :]
    assert wr.rate_trajectory(log, step, into, into, surface) <= 5.0
    # far off the road, 30 m to the side: off-road, far from the logged position, and a harsh jump from the origin
    off = logged + [0.0, 30.0]
    assert wr.rate_trajectory(log, step, off, logged, surface) == 10 - 3 - 4 - 1
    # lagging smoothly 3 m behind the logged position at 5 s costs 0.5 per metre beyond the first: 10 - 1
    direction = logged[-1] / np.linalg.norm(logged[-1])
    lag = logged - (3.0 * wr.RATER_TIMES_S / 5.0)[:, None] * direction
    assert wr.rate_trajectory(log, step, lag, logged, surface) == 9.0
    jumpy = logged.copy()
    jumpy[19:] -= 3.0 * direction  # -12 m/s within 0.25 s at index 19: harsh, and 3 m off at 5 s
    assert wr.rate_trajectory(log, step, jumpy, logged, surface) == 8.0


def test_writer_is_deterministic_and_matches_the_build(small_world, small_world_root: Path, tmp_path: Path) -> None:
    built = small_world_root / "waymo"
    again = write_waymo_world(small_world, tmp_path, camera_scale=0.1)
    for stem in SHARD_STEMS.values():
        a = sorted(built.glob(f"{stem}.tfrecord-*"))
        b = sorted(again.glob(f"{stem}.tfrecord-*"))
        assert [p.name for p in a] == [p.name for p in b] and a
        assert all(x.read_bytes() == y.read_bytes() for x, y in zip(a, b))
    for side in ("val_sequence_name_to_scenario_cluster.json", "test_sequence_frames_for_submission.json",
                 "test_sequence_frames_for_submission_as_list.txt"):
        assert (built / side).read_text() == (again / side).read_text()
    n = sum(1 for p in again.glob("val_*.tfrecord-*") for _ in read_records(p))
    assert n == 2 * len(small_world.splits["test"])


def test_ids_and_clusters() -> None:
    a, b = sequence_id("log", "val"), sequence_id("log", "test")
    assert len(a) == 32 and int(a, 16) >= 0 and a != b
    assert [cluster_of(i) for i in range(3)] == ["Pedestrian", "Interections", "Construction"]


def test_rig() -> None:
    cams = {c.name: c for c in waymo_cameras(1.0)}
    assert tuple(cams) == WAYMO_CAMERA_NAMES
    assert (cams["FRONT"].width, cams["FRONT"].height) == (972, 1079)
    assert (cams["REAR"].width, cams["REAR"].height) == (972, 551)
    assert cams["FRONT"].intrinsics[0, 0] == pytest.approx(1112.178)
    yaw = np.degrees(np.arctan2(vehicle_from_waymo_camera("FRONT_LEFT")[1, 0], vehicle_from_waymo_camera("FRONT_LEFT")[0, 0]))
    assert yaw == pytest.approx(45.1)
    # OpenCV optical axis of FRONT points along the vehicle's +x
    np.testing.assert_allclose(cams["FRONT"].lidar_from_camera[:3, 2], (1, 0, 0), atol=0.01)


def _local_imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("adapters.waymo."):
            out.add(node.module.rsplit(".", 1)[1] + ".py")
    return out


def test_the_world_digest_covers_every_waymo_module_the_writer_uses() -> None:
    pkg = Path(adapters.waymo.__path__[0])
    todo, seen = ["world_writer.py"], set()
    while todo:
        f = todo.pop()
        if f not in seen:
            seen.add(f)
            todo.extend(_local_imports(pkg / f))
    assert seen <= set(WAYMO_WRITER_FILES), seen - set(WAYMO_WRITER_FILES)
