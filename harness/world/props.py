"""Objects that never move: parked cars in the car park, a work zone around a broken-down car, kerbside
clutter. Boxes in the map frame; z is left to the caller (box centre z = height / 2 on the ground plane)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely

from harness.geometry import polyline_arc_length
from harness.world.lanegraph import LaneGraph
from harness.world.polylines import offset_line, vertex_headings

F64 = npt.NDArray[np.float64]

CONE_SIZE_LWH = (0.4, 0.4, 0.7)
BARRIER_SIZE_LWH = (2.0, 0.4, 1.0)
SIGN_SIZE_LWH = (0.3, 0.8, 1.6)
BIN_SIZE_LWH = (0.6, 0.6, 1.1)
SLOT_WIDTH_M, SLOT_DEPTH_M = 2.7, 5.5


@dataclass(frozen=True)
class Prop:
    """A static box: nuPlan ``category``, centre ``xy (2,)``, ``yaw_rad`` and ``size_lwh`` in metres."""

    category: str
    xy: F64
    yaw_rad: float
    size_lwh: tuple[float, float, float]


def lane_pose(graph: LaneGraph, node: int, s_m: float, lateral_m: float = 0.0) -> tuple[F64, float]:
    """The point ``lateral_m`` left of a node's baseline at node coordinate ``s_m``, and the heading there."""
    pts, arc, h = graph.points[node], graph.arc[node], graph.headings[node]
    x, y, hh = np.interp(s_m, arc, pts[:, 0]), np.interp(s_m, arc, pts[:, 1]), float(np.interp(s_m, arc, h))
    return np.array([x, y]) + lateral_m * np.array([-np.sin(hh), np.cos(hh)]), hh


def parked_cars(graph: LaneGraph, rng: np.random.Generator, occupancy: float = 0.65) -> list[Prop]:
    """Cars nose-in in two rows along the long sides of every car park, ``occupancy`` of the slots taken."""
    out = []
    for cid in sorted(graph.road_map.carparks):
        rect = np.asarray(shapely.oriented_envelope(graph.road_map.carparks[cid].polygon).exterior.coords)[:4]
        e1, e2 = rect[1] - rect[0], rect[2] - rect[1]
        along, across = (e1, e2) if np.linalg.norm(e1) >= np.linalg.norm(e2) else (e2, e1)
        length, depth = float(np.linalg.norm(along)), float(np.linalg.norm(across))
        u, n = along / length, across / depth
        center = rect.mean(axis=0)
        slots = int((length - 2.0) // SLOT_WIDTH_M)
        for row in (-1.0, 1.0):
            for k in range(slots):
                if rng.random() > occupancy:
                    continue
                # Rows keep a 1.5 m margin from the car park's edges (a footway along the kerb).
                pos = (
                    center
                    + u * (-(slots - 1) / 2 + k) * SLOT_WIDTH_M
                    + n * row * (depth / 2 - SLOT_DEPTH_M / 2 - 1.5)
                )
                size = (
                    float(rng.uniform(4.3, 5.1)),
                    float(rng.uniform(1.8, 2.0)),
                    float(rng.uniform(1.4, 1.9)),
                )
                yaw = float(np.arctan2(n[1], n[0])) + (0.0 if rng.random() < 0.5 else np.pi)
                jitter = u * rng.uniform(-0.2, 0.2) + n * rng.uniform(-0.15, 0.15)
                out.append(Prop("vehicle", pos + jitter, float(yaw + rng.uniform(-0.04, 0.04)), size))
    return out


def work_zone(graph: LaneGraph, node: int, car_center_m: float, car_length_m: float) -> list[Prop]:
    """Cones tapering from the kerb to the lane's left edge behind a broken-down car on ``node``, a barrier
    behind the car and a construction-zone sign on the pavement. Everything stays inside the lane (the lane
    to its left stays free for passing)."""
    lane = graph.road_map.lanes[graph.ids[node]]
    half = lane.polygon.area / float(graph.length[node]) / 2.0
    rear = car_center_m - car_length_m / 2
    out = []
    for back, lateral in ((20.0, -1.2), (15.5, -0.4), (11.0, 0.4), (6.5, 1.1)):
        xy, h = lane_pose(graph, node, rear - back, lateral)
        out.append(Prop("traffic_cone", xy, h, CONE_SIZE_LWH))
    xy, h = lane_pose(graph, node, rear - 1.5, 0.0)
    out.append(Prop("barrier", xy, h + np.pi / 2, BARRIER_SIZE_LWH))
    xy, h = lane_pose(graph, node, rear - 25.0, -(half + 1.0))
    out.append(Prop("czone_sign", xy, h + np.pi, SIGN_SIZE_LWH))
    return out


def kerb_clutter(
    graph: LaneGraph,
    rng: np.random.Generator,
    count: int,
    near_xy: npt.ArrayLike | None = None,
    near_radius_m: float = 100.0,
) -> list[Prop]:
    """Bins and boxes (``generic_object``) on pavements beside kerbside lanes, near ``near_xy`` if given."""
    m = graph.road_map
    kerb = [
        n
        for n in range(graph.num_nodes)
        if not graph.is_connector[n] and m.right_neighbor(graph.ids[n]) is None
    ]
    w = graph.length[kerb] / graph.length[kerb].sum()
    out = []
    for _ in range(count):
        n = kerb[int(rng.choice(len(kerb), p=w))]
        lane = m.lanes[graph.ids[n]]
        half = lane.polygon.area / float(graph.length[n]) / 2.0
        line = offset_line(lane.baseline_xy, vertex_headings(lane.baseline_xy), -(half + 2.3))
        s = polyline_arc_length(line)
        ok = (s > 5.0) & (s < s[-1] - 5.0)
        for cp in m.carparks.values():  # where a car park replaces the pavement, there is no kerb
            ok &= ~shapely.contains_xy(cp.polygon.buffer(1.5), line[:, 0], line[:, 1])
        if (
            near_xy is not None
            and (near := ok & (np.linalg.norm(line - np.asarray(near_xy), axis=1) < near_radius_m)).any()
        ):
            ok = near
        q = float(s[rng.choice(np.nonzero(ok)[0])])
        xy = np.array([np.interp(q, s, line[:, 0]), np.interp(q, s, line[:, 1])])
        out.append(Prop("generic_object", xy, float(rng.uniform(-np.pi, np.pi)), BIN_SIZE_LWH))
    return out
