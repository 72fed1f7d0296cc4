"""Initial placement of background traffic on the lanes (t = 0).

Each lane is filled from its downstream end backwards: if its light is not green at t = 0, a queue of
stopped vehicles first (bumper to bumper at the minimum gap), then moving vehicles with IDM-consistent
gaps (minimum gap + headway * speed + a random free gap) and speeds low enough to stop behind whatever is
ahead. Stretches already taken (the ego, a broken-down car) or to be kept clear are respected, so the
first simulation step starts from a plausible, collision-free state.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from harness.world.lanegraph import LaneGraph, build_path, random_route
from harness.world.signals import GREEN
from harness.world.traffic import STOP_MARGIN_M, Mover

F64 = npt.NDArray[np.float64]

#: (share, length range, width range, height range, accel, desired factor range) per vehicle type.
_TYPES = (
    (0.6, (4.3, 4.9), (1.8, 1.95), (1.40, 1.65), 1.5, (0.88, 1.02)),  # passenger car
    (0.3, (4.8, 5.3), (1.9, 2.05), (1.70, 1.95), 1.4, (0.88, 1.0)),  # SUV / van
    (0.1, (7.0, 9.5), (2.4, 2.55), (3.00, 3.60), 1.0, (0.80, 0.92)),  # truck
)
BICYCLE_SIZE_LWH = (1.8, 0.6, 1.7)
_PLACEMENT_DECEL = 2.0  # initial speeds allow stopping behind what is ahead with at most this


@dataclass(frozen=True)
class Reserved:
    """A stretch ``[lo_m, hi_m]`` (node coordinates) of lane-graph node ``node`` at t = 0: an occupant moving
    at ``speed_mps`` (traffic queues up behind it), or, with ``speed_mps=None``, a stretch kept empty."""

    node: int
    lo_m: float
    hi_m: float
    speed_mps: float | None = None


@dataclass(frozen=True)
class TrafficSpec:
    """How much traffic, and where not.

    ``mean_free_gap_m``: mean of the random gap added to each IDM gap (smaller = busier). ``queue_max``: up to
    this many vehicles queue at a red light at t = 0 (``forced_queues`` fixes it per lane node).
    ``forbidden``: nodes traffic never drives into (the blocked lane of an obstacle situation).
    """

    mean_free_gap_m: float = 30.0
    queue_max: int = 3
    forced_queues: Mapping[int, int] = field(default_factory=dict)
    forbidden: frozenset[int] = frozenset()
    reserved: tuple[Reserved, ...] = ()
    bicycles: int = 0


@dataclass(frozen=True)
class Vehicle:
    """A spawned traffic participant: its mover, nuPlan category and box size ``(l, w, h)`` in metres."""

    mover: Mover
    category: str
    size_lwh: tuple[float, float, float]


def place_traffic(
    graph: LaneGraph,
    spec: TrafficSpec,
    lights0: npt.NDArray[np.int8],
    rng: np.random.Generator,
    path_length_m: float,
) -> list[Vehicle]:
    """Place background vehicles on every lane; each gets a random route at least ``path_length_m`` ahead.

    Args:
        graph: the lane graph.
        spec: density and exclusions.
        lights0: ``(M,)`` node light states at t = 0.
        rng: randomness (placement, sizes, drivers, routes).
        path_length_m: how far past its start every route must reach.

    Returns:
        Vehicles in placement order (lanes by id, downstream first).
    """
    out: list[Vehicle] = []
    lanes = [k for k in range(graph.num_nodes) if not graph.is_connector[k]]
    for n in lanes:
        if n in spec.forbidden and not any(r.node == n for r in spec.reserved):
            continue
        out.extend(_fill_lane(graph, n, spec, lights0, rng, path_length_m))
    # Cyclists keep to the rightmost lane of multi-lane roads, where traffic can still pass them on the left
    # lane (background traffic does not change lanes, so a cyclist on a one-lane road would hold up a queue).
    m = graph.road_map
    bike_lanes = [
        n
        for n in lanes
        if m.right_neighbor(graph.ids[n]) is None
        and m.left_neighbor(graph.ids[n])
        and n not in spec.forbidden
        and not any(r.node == n for r in spec.reserved)
    ]
    for _ in range(spec.bicycles):
        if not bike_lanes:
            break
        n = bike_lanes[int(rng.integers(len(bike_lanes)))]
        out.extend(_bicycle(graph, n, spec, out, rng, path_length_m))
    return out


def _fill_lane(
    graph: LaneGraph,
    n: int,
    spec: TrafficSpec,
    lights0: npt.NDArray[np.int8],
    rng: np.random.Generator,
    path_length_m: float,
) -> list[Vehicle]:
    length = float(graph.length[n])
    limit = float(graph.speed_limit[n])
    stopping = any(lights0[c] != GREEN for c in graph.successors[n] if graph.approach[c] >= 0)
    occupants = sorted(
        (r for r in spec.reserved if r.node == n and r.speed_mps is not None), key=lambda r: -r.hi_m
    )
    clear = [r for r in spec.reserved if r.node == n and r.speed_mps is None]
    cursor = length - STOP_MARGIN_M
    v_ahead: float | None = 0.0 if stopping else None
    queue_left = int(spec.forced_queues.get(n, rng.integers(0, spec.queue_max + 1))) if stopping else 0
    if n in spec.forbidden:
        queue_left = 0
    placed: list[Vehicle] = []
    while cursor > 1.0:
        kind = _TYPES[int(rng.choice(len(_TYPES), p=[t[0] for t in _TYPES]))]
        size = (float(rng.uniform(*kind[1])), float(rng.uniform(*kind[2])), float(rng.uniform(*kind[3])))
        s_min = float(rng.uniform(1.5, 2.5))
        headway = float(rng.uniform(1.2, 1.8))
        if queue_left > 0 and v_ahead == 0.0:
            gap, v = s_min + float(rng.uniform(0.3, 1.2)), 0.0
            queue_left -= 1
        else:
            v_des = limit * float(rng.uniform(0.7, 0.95))
            gap = (
                s_min
                + v_des * headway * float(rng.uniform(0.8, 1.2))
                + float(rng.exponential(spec.mean_free_gap_m))
            )
            if v_ahead is None:
                gap = float(rng.uniform(0.0, spec.mean_free_gap_m + 10.0))
            v = (
                v_des
                if v_ahead is None
                else min(v_des, float(np.sqrt(v_ahead**2 + 2 * _PLACEMENT_DECEL * max(gap - s_min, 0.0))))
            )
        front = cursor - gap
        rear = front - size[0]
        if occupants and occupants[0].hi_m + 2.0 + (occupants[0].speed_mps or 0.0) * 1.2 > rear:
            occ = occupants.pop(0)
            cursor, v_ahead = occ.lo_m, occ.speed_mps
            queue_left = int(rng.integers(0, 3)) if occ.speed_mps == 0.0 and n not in spec.forbidden else 0
            continue
        zone = next((z for z in clear if z.lo_m < front and z.hi_m > rear), None)
        if zone is not None:
            cursor, v_ahead = zone.lo_m, None
            continue
        if rear < 0.5:
            break
        if n not in spec.forbidden:
            placed.append(
                _vehicle(
                    graph, n, (front + rear) / 2, v, size, s_min, headway, kind, spec, rng, path_length_m
                )
            )
        cursor, v_ahead = rear, v
    return placed


def _vehicle(
    graph: LaneGraph,
    n: int,
    center_m: float,
    speed: float,
    size: tuple[float, float, float],
    s_min: float,
    headway: float,
    kind: Sequence,
    spec: TrafficSpec,
    rng: np.random.Generator,
    path_length_m: float,
) -> Vehicle:
    route = random_route(graph, [n], center_m + path_length_m, rng, forbidden=spec.forbidden)
    mover = Mover(
        build_path(graph, route),
        center_m,
        speed,
        size[0] / 2,
        size[0] / 2,
        desired_factor=float(rng.uniform(*kind[5])),
        accel_mps2=float(kind[4] * rng.uniform(0.85, 1.15)),
        decel_mps2=float(rng.uniform(2.5, 3.0)),
        min_gap_m=s_min,
        headway_s=headway,
        lateral_accel_mps2=float(rng.uniform(2.0, 3.0)),
    )
    return Vehicle(mover, "vehicle", size)


def _bicycle(
    graph: LaneGraph,
    n: int,
    spec: TrafficSpec,
    others: Collection[Vehicle],
    rng: np.random.Generator,
    path_length_m: float,
) -> list[Vehicle]:
    """One cyclist in the rightmost lane ``n``, in the largest gap between vehicles already there."""
    taken = sorted(
        (v.mover.start_m - v.size_lwh[0] / 2 - 4.0, v.mover.start_m + v.size_lwh[0] / 2 + 25.0)
        for v in others
        if v.mover.path.nodes[0] == n
    )
    free_lo, best = 5.0, (0.0, 0.0)
    for lo, hi in [*taken, (graph.length[n] - 30.0, np.inf)]:
        if lo - free_lo > best[1] - best[0]:
            best = (free_lo, lo)
        free_lo = max(free_lo, hi)
    if best[1] - best[0] < 10.0:
        return []
    center = best[0] + 2.0
    half = BICYCLE_SIZE_LWH[0] / 2
    route = random_route(graph, [n], center + path_length_m, rng, forbidden=spec.forbidden)
    mover = Mover(
        build_path(graph, route),
        center,
        4.0,
        half,
        half,
        desired_factor=0.4,
        accel_mps2=0.8,
        decel_mps2=2.0,
        min_gap_m=2.0,
        headway_s=1.5,
        lateral_accel_mps2=1.5,
    )
    return [Vehicle(mover, "bicycle", BICYCLE_SIZE_LWH)]
