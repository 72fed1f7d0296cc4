"""The ego vehicle: its route, its driver, and what a log records about it.

The ego is nuPlan's Chrysler Pacifica. Its pose is the rear-axle pose (as in nuPlan and NAVSIM); it is
simulated as mover 0 of the traffic simulation with the same IDM logic as everyone else, so it queues,
obeys its own lights and yields to pedestrians; its route may include a lane change (to pass an obstacle),
which is blended into its path with a smooth lateral profile.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from harness.geometry import polyline_arc_length
from harness.types import DrivingCommand
from harness.world.lanegraph import LaneGraph, Path, build_path, random_route
from harness.world.polylines import SAMPLE_STEP_M, curvature, vertex_headings
from harness.world.traffic import Mover

F64 = npt.NDArray[np.float64]

# nuPlan get_pacifica_parameters().
PACIFICA_LENGTH_M = 5.176
PACIFICA_WIDTH_M = 2.297
PACIFICA_HEIGHT_M = 1.777
REAR_AXLE_TO_CENTER_M = 1.461
WHEEL_BASE_M = 3.089
FRONT_FROM_REAR_AXLE_M = 4.049
REAR_FROM_REAR_AXLE_M = 1.127

COMMAND_LOOKAHEAD_M = 20.0
COMMAND_THRESHOLD_M = 2.0


@dataclass(frozen=True)
class LaneChange:
    """Move into ``target_lane_id`` (same roadblock) between source-lane coordinates start_m and end_m."""

    target_lane_id: int
    start_m: float
    end_m: float


@dataclass(frozen=True)
class EgoPlan:
    """Where the ego starts (``lane_id``, rear axle at ``rear_axle_m`` along it, ``speed_mps``), the turns it
    takes at the next intersections ("L", "S", "R"), and an optional lane change on the start lane."""

    lane_id: int
    rear_axle_m: float
    speed_mps: float
    turns: tuple[str, ...] = ()
    lane_change: LaneChange | None = None


@dataclass(frozen=True)
class EgoTrack:
    """Per step: rear-axle ``pose (T, 3)`` (map frame), ``velocity (T, 2)`` and ``acceleration (T, 2)`` in the
    ego frame, ``command (T,)`` (DrivingCommand values) and the route ahead (roadblock ids) per step."""

    pose: F64
    velocity: F64
    acceleration: F64
    command: npt.NDArray[np.int64]
    route: tuple[tuple[int, ...], ...]


def ego_path(graph: LaneGraph, plan: EgoPlan, min_length_m: float, rng: np.random.Generator) -> Path:
    """The ego's path: its start lane, the planned turns, then random turns until ``min_length_m`` (and at
    least through the next intersection and the lane after it, so that the route always looks ahead)."""
    start = graph.index[plan.lane_id]
    if plan.lane_change is None:
        return build_path(
            graph, random_route(graph, [start], min_length_m, rng, turns=plan.turns, min_nodes=3)
        )
    target = graph.index[plan.lane_change.target_lane_id]
    route = random_route(graph, [target], min_length_m, rng, turns=plan.turns, min_nodes=3)
    return _lane_change_path(graph, start, route, plan.lane_change)


def _smootherstep(x: F64) -> F64:
    x = np.clip(x, 0.0, 1.0)
    return x * x * x * (x * (6.0 * x - 15.0) + 10.0)


def _lane_change_path(graph: LaneGraph, a: int, route: list[int], lc: LaneChange) -> Path:
    b = route[0]
    pa, sa, pb, sb = graph.points[a], graph.arc[a], graph.points[b], graph.arc[b]
    ratio = float(graph.length[b] / graph.length[a])
    s0, s1 = lc.start_m, lc.end_m
    q = np.append(np.arange(s0, s1, SAMPLE_STEP_M), s1)
    alpha = _smootherstep((q - s0) / (s1 - s0))[:, None]
    on_a = np.stack([np.interp(q, sa, pa[:, 0]), np.interp(q, sa, pa[:, 1])], axis=1)
    on_b = np.stack([np.interp(q * ratio, sb, pb[:, 0]), np.interp(q * ratio, sb, pb[:, 1])], axis=1)
    pieces = [pa[sa < s0 - 1e-6], (1 - alpha) * on_a + alpha * on_b, pb[sb > s1 * ratio + 1e-6]]
    limits = [
        np.full(len(pieces[0]) + len(pieces[1]), graph.speed_limit[a]),
        np.full(len(pieces[2]), graph.speed_limit[b]),
    ]
    for n in route[1:]:
        pieces.append(graph.points[n][1:])
        limits.append(np.full(len(graph.points[n]) - 1, graph.speed_limit[n]))
    points = np.concatenate(pieces)
    s = polyline_arc_length(points)
    blend_end = len(pieces[0]) + len(pieces[1]) - 1
    mid = len(pieces[0]) + len(pieces[1]) // 2
    off_b = float(s[blend_end] - s1 * ratio)
    lens = graph.length[np.asarray(route)]
    rest = off_b + np.concatenate([[0.0], np.cumsum(lens)])[:-1]
    seq = np.concatenate([[0.0, s[mid]], rest[1:]])
    offset = np.concatenate([[0.0], rest])
    look_lo = np.concatenate([[0.0, s0 - 10.0], rest[1:]])
    look_hi = np.concatenate([[s[mid]], rest + lens])
    return Path(
        np.asarray([a, *route], dtype=np.int64),
        seq,
        offset,
        look_lo,
        look_hi,
        points,
        s,
        np.unwrap(vertex_headings(points)),
        curvature(points),
        np.concatenate(limits),
    )


def ego_mover(path: Path, plan: EgoPlan) -> Mover:
    """The ego's driver: IDM a bit gentler than traffic, below the speed limit, smooth (jerk-limited)."""
    return Mover(
        path,
        plan.rear_axle_m,
        plan.speed_mps,
        FRONT_FROM_REAR_AXLE_M,
        REAR_FROM_REAR_AXLE_M,
        desired_factor=0.92,
        accel_mps2=1.4,
        decel_mps2=2.5,
        min_gap_m=2.5,
        headway_s=1.5,
        lateral_accel_mps2=2.0,
        max_decel_mps2=4.0,
        jerk_up_mps3=3.0,
        jerk_down_mps3=8.0,
    )


def ego_track(graph: LaneGraph, path: Path, s: F64, v: F64, a: F64) -> EgoTrack:
    """What the log records about the ego, from its simulated path coordinate, speed and acceleration
    ``(T,)``.

    The command is NAVSIM's: the path point :data:`COMMAND_LOOKAHEAD_M` ahead, expressed in the ego frame,
    is LEFT beyond +2 m lateral offset, RIGHT beyond -2 m, else STRAIGHT.
    """
    xy, heading = path.interpolate(s)
    kappa = np.interp(s, path.s, path.curvature)
    velocity = np.stack([v, np.zeros_like(v)], axis=1)
    acceleration = np.stack([a, v * v * kappa], axis=1)
    ahead, _ = path.interpolate(s + COMMAND_LOOKAHEAD_M)
    d = ahead - xy
    lateral = -np.sin(heading) * d[:, 0] + np.cos(heading) * d[:, 1]
    command = np.where(
        lateral > COMMAND_THRESHOLD_M,
        DrivingCommand.LEFT,
        np.where(lateral < -COMMAND_THRESHOLD_M, DrivingCommand.RIGHT, DrivingCommand.STRAIGHT),
    )
    elements = path.element_at(s)
    blocks = [int(graph.roadblock[nd]) for nd in path.nodes]
    cache: dict[int, tuple[int, ...]] = {}
    route = []
    for k in elements.tolist():
        if k not in cache:
            out: list[int] = []
            for rb in blocks[k:]:
                if not out or out[-1] != rb:
                    out.append(rb)
            cache[k] = tuple(out)
        route.append(cache[k])
    pose = np.concatenate([xy, heading[:, None]], axis=1)
    for arr in (pose, velocity, acceleration):
        arr.setflags(write=False)  # frames hold views of these
    return EgoTrack(pose, velocity, acceleration, command.astype(np.int64), tuple(route))
