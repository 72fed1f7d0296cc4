"""Ego states and rater labels of one embedded-world frame, in Waymo's conventions (specs/waymo_e2e.md §1.4-1.5).

Ego states: the world records the ego at 10 Hz; Waymo's states are 4 Hz (past t = -3.75 … 0 s, future
t = 0.25 … 5 s), so poses, velocities and accelerations are interpolated linearly in time (headings
unwrapped) and expressed in the ego frame at the frame's current time.

Rater labels: WOD-E2E raters score three candidate 5 s trajectories from 0 to 10. The world has no raters, so
it proposes three candidates and scores them by stated rules against what the world knows (the map and every
object's logged future), the way a rater judges safety, legality and progress:

1. ``logged``: the ego's own logged future (what the human-like driver did);
2. ``constant_velocity``: straight ahead at the current velocity (ignores turns, queues and lights);
3. ``drift_left``: the logged path with a lateral offset growing linearly to 2.5 m at 5.25 s.

Score rules (:func:`rate_trajectory`): start at 10; minus 5 if the ego footprint overlaps any object box at
the same time (objects move as logged); minus 3 if a footprint corner leaves the drivable surface (lanes,
lane connectors, roadblocks and their connectors, intersections, car parks); minus 0.5 per metre of
distance from the logged position at 5 s beyond the first metre (at most 4: raters prefer what a careful
human did); minus 1 for a longitudinal acceleration beyond 4 m/s² in magnitude; clipped to [0, 10] and rounded
to an integer. Rater trajectories have 21 points (t = 0.25 … 5.25 s), like most real ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely

from harness.geometry import box_corners_2d, global_to_local, local_to_global, normalize_angle
from harness.maps import RoadMap
from harness.trajectory import headings_from_positions
from harness.world.ego import FRONT_FROM_REAR_AXLE_M, PACIFICA_WIDTH_M, REAR_FROM_REAR_AXLE_M
from harness.world.model import WorldLog

F64 = npt.NDArray[np.float64]

NUM_PAST, NUM_FUTURE, NUM_RATER_POINTS = 16, 20, 21
STATE_DT_S = 0.25
PAST_TIMES_S = (np.arange(NUM_PAST) - (NUM_PAST - 1)) * STATE_DT_S
FUTURE_TIMES_S = (np.arange(NUM_FUTURE) + 1) * STATE_DT_S
RATER_TIMES_S = (np.arange(NUM_RATER_POINTS) + 1) * STATE_DT_S
CANDIDATES = ("logged", "constant_velocity", "drift_left")
DRIFT_M = 2.5

COLLISION_PENALTY = 5.0
OFFROAD_PENALTY = 3.0
DEVIATION_PER_M = 0.5
DEVIATION_FREE_M = 1.0
DEVIATION_MAX = 4.0
HARSH_ACCEL_MPS2 = 4.0
HARSH_PENALTY = 1.0


@dataclass(frozen=True)
class EgoStates:
    """One frame's Waymo ego states, current ego frame: past ``(16, 2)`` x/y, vel, accel; future ``(20, 2)``."""

    past_xy: F64
    past_velocity_xy: F64
    past_accel_xy: F64
    future_xy: F64


@dataclass(frozen=True)
class RatedTrajectories:
    """Three candidate trajectories ``(3, 21, 2)`` (current ego frame) and their scores ``(3,)``."""

    names: tuple[str, ...]
    trajectories_xy: F64
    scores: F64


def _interp(log: WorldLog, step: int, times_s: F64) -> tuple[F64, F64, F64]:
    """Global poses ``(T, 3)``, ego-frame velocities and accelerations ``(T, 2)`` at ``step + t / 0.1``."""
    q = step + np.asarray(times_s) / log.frame_interval_s
    lo = np.clip(np.floor(q + 1e-9).astype(int), 0, len(log.frames) - 1)
    hi = np.clip(lo + 1, 0, len(log.frames) - 1)
    w = np.clip(q - lo, 0.0, 1.0)[:, None]
    idx = np.unique(np.concatenate([lo, hi]))
    poses = {int(i): np.asarray(log.frames[i].ego_pose, dtype=np.float64) for i in idx}
    p0, p1 = np.stack([poses[int(i)] for i in lo]), np.stack([poses[int(i)] for i in hi])
    p1 = p1.copy()
    p1[:, 2] = p0[:, 2] + normalize_angle(p1[:, 2] - p0[:, 2])
    pose = p0 + w * (p1 - p0)
    vel = np.stack([(1 - wi) * log.frames[a].ego_velocity_mps + wi * log.frames[b].ego_velocity_mps
                    for a, b, wi in zip(lo, hi, w[:, 0])])
    acc = np.stack([(1 - wi) * log.frames[a].ego_acceleration_mps2 + wi * log.frames[b].ego_acceleration_mps2
                    for a, b, wi in zip(lo, hi, w[:, 0])])
    return pose, vel, acc


def _rotate(v: F64, angle: F64) -> F64:
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([c * v[:, 0] - s * v[:, 1], s * v[:, 0] + c * v[:, 1]], axis=-1)


def ego_states(log: WorldLog, step: int) -> EgoStates:
    """Past and future ego states of frame ``step`` (needs 3.75 s before and 5 s after it in the log)."""
    origin = np.asarray(log.frames[step].ego_pose, dtype=np.float64)
    pose, vel, acc = _interp(log, step, PAST_TIMES_S)
    local = global_to_local(pose, origin)
    rel_yaw = local[:, 2]
    fut, _, _ = _interp(log, step, FUTURE_TIMES_S)
    return EgoStates(local[:, :2], _rotate(vel, rel_yaw), _rotate(acc, rel_yaw), global_to_local(fut, origin)[:, :2])


def valid_steps(log: WorldLog) -> range:
    """Frames with 3.75 s of past and 5.25 s of future (the raters' 21st point) inside the log."""
    per_s = round(1.0 / log.frame_interval_s)
    first = int(np.ceil(-PAST_TIMES_S[0] * per_s - 1e-9))
    last = len(log.frames) - 1 - int(np.ceil(RATER_TIMES_S[-1] * per_s - 1e-9))
    return range(first, max(first, last + 1))


class DrivableSurface:
    """Every drivable polygon of a map, for corner-in-road tests."""

    def __init__(self, road_map: RoadMap) -> None:
        polys = [o.polygon for group in (road_map.lanes, road_map.lane_connectors, road_map.roadblocks,
                                         road_map.roadblock_connectors, road_map.intersections, road_map.carparks)
                 for o in group.values() if getattr(o, "polygon", None) is not None]
        self.surface = shapely.union_all(polys).buffer(0.05)  # closes slivers between adjacent polygons
        shapely.prepare(self.surface)

    def contains(self, xy: F64) -> npt.NDArray[np.bool_]:
        return shapely.contains_xy(self.surface, xy[..., 0], xy[..., 1])


def _footprints(poses: F64) -> F64:
    """Ego footprint corners ``(T, 4, 2)`` for rear-axle poses ``(T, 3)``."""
    length = FRONT_FROM_REAR_AXLE_M + REAR_FROM_REAR_AXLE_M
    shift = (FRONT_FROM_REAR_AXLE_M - REAR_FROM_REAR_AXLE_M) / 2.0
    centre = poses[:, :2] + shift * np.stack([np.cos(poses[:, 2]), np.sin(poses[:, 2])], axis=-1)
    return box_corners_2d(centre, length, PACIFICA_WIDTH_M, poses[:, 2])


def rate_trajectory(log: WorldLog, step: int, xy: F64, logged_xy: F64, surface: DrivableSurface) -> float:
    """The rater score of a candidate ``(21, 2)`` (current ego frame) by the module's rules."""
    origin = np.asarray(log.frames[step].ego_pose, dtype=np.float64)
    local = np.column_stack([xy, headings_from_positions(xy)])
    poses = local_to_global(local, origin)
    ego = _footprints(poses)
    score = 10.0
    # Collisions with every object at the same time (objects as logged; nearest 10 Hz frame).
    per_s = round(1.0 / log.frame_interval_s)
    hit = False
    for j, t in enumerate(RATER_TIMES_S):
        objs = log.frames[min(step + round(t * per_s), len(log.frames) - 1)].objects
        if not len(objs):
            continue
        near = np.linalg.norm(objs.center_xyz[:, :2] - poses[j, :2], axis=1) < 12.0
        if not near.any():
            continue
        boxes = box_corners_2d(objs.center_xyz[near, :2], objs.size_lwh[near, 0], objs.size_lwh[near, 1],
                               objs.yaw_rad[near])
        if shapely.intersects(shapely.Polygon(ego[j]), shapely.polygons(boxes)).any():
            hit = True
            break
    if hit:
        score -= COLLISION_PENALTY
    if not surface.contains(ego.reshape(-1, 2)).all():
        score -= OFFROAD_PENALTY
    deviation = float(np.linalg.norm(xy[NUM_FUTURE - 1] - logged_xy[NUM_FUTURE - 1]))
    score -= min(DEVIATION_MAX, DEVIATION_PER_M * max(0.0, deviation - DEVIATION_FREE_M))
    path = np.concatenate([np.zeros((1, 2)), xy])
    speed = np.linalg.norm(np.diff(path, axis=0), axis=1) / STATE_DT_S
    if len(speed) > 1 and np.abs(np.diff(speed) / STATE_DT_S).max() > HARSH_ACCEL_MPS2:
        score -= HARSH_PENALTY
    return float(np.clip(np.round(score), 0.0, 10.0))


def _drift(xy: F64) -> F64:
    """``xy`` shifted to its left by an offset growing linearly from 0 to :data:`DRIFT_M`."""
    h = headings_from_positions(xy)
    normal = np.stack([-np.sin(h), np.cos(h)], axis=-1)
    return xy + (DRIFT_M * RATER_TIMES_S / RATER_TIMES_S[-1])[:, None] * normal


def rated_trajectories(log: WorldLog, step: int, surface: DrivableSurface) -> RatedTrajectories:
    """The three candidates of frame ``step`` and their scores (see the module docstring)."""
    origin = np.asarray(log.frames[step].ego_pose, dtype=np.float64)
    fut, _, _ = _interp(log, step, RATER_TIMES_S)
    logged = global_to_local(fut, origin)[:, :2]
    v = np.asarray(log.frames[step].ego_velocity_mps, dtype=np.float64)
    const_vel = RATER_TIMES_S[:, None] * v[None, :]
    cands = np.stack([logged, const_vel, _drift(logged)])
    scores = np.array([rate_trajectory(log, step, c, logged, surface) for c in cands])
    return RatedTrajectories(CANDIDATES, cands, scores)
