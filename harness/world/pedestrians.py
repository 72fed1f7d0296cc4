"""Pedestrians: crossers that wait on the kerb and cross in the pedestrian phase, and sidewalk strollers.

A *crosser* stands at the end of a crosswalk (on the corner walkway), steps out once the pedestrian phase
has begun and no vehicle is on or about to reach the crosswalk (decided inside the traffic simulation,
see :class:`Crossers`), walks across in its own lane of the crosswalk, then steps aside on the far corner
and stands. A *stroller* walks (or stands) along a sidewalk, away from the corners. Each crosswalk's
crossers use distinct lanes, strollers keep clear of corners, car parks and kerbside objects and are
rejected if they would pass within 1 m of another walker, so walkers never overlap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely

from harness.geometry import polyline_arc_length
from harness.world.lanegraph import LaneGraph
from harness.world.polylines import offset_line, vertex_headings
from harness.world.signals import IntersectionSignals

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

WALK_SPEED_MPS = (1.25, 1.55)  # crossers finish within the walk phase (signals.WALK_S)
STROLL_SPEED_MPS = (1.0, 1.5)
STANDING_SHARE = 0.3  # strollers that stand about instead
KERB_GAP_M = 0.7  # crossers wait this far past the end of the crosswalk, clear of turning cars
ASIDE_M = 1.5  # and step this far further out after crossing, clear of those waiting there
#: Offsets across a crosswalk's 4 m band (along the road) of the lanes its crossers walk in, one each.
CROSSING_LANES_M = (0.0, -0.8, 0.8, -1.6, 1.6)
DEPARTURE_DELAY_S = (1.5, 2.5)  # after the walk phase starts
CORNER_CLEARANCE_M = 15.0  # strollers keep this far from lane ends (the corners belong to crossers)
MIN_SEPARATION_M = 1.0


@dataclass(frozen=True)
class Crossers:
    """What the traffic simulation needs to know about crossers ``(C,)``: crosswalk index, walking-axis
    coordinates of the start and end kerbs, walking speed, and the window ``[earliest_s, latest_s]`` in
    which a crosser may step out (it waits while a vehicle is on or close to its crosswalk)."""

    crosswalk: I64
    u_from: F64
    u_to: F64
    speed_mps: F64
    earliest_s: F64
    latest_s: F64

    def __len__(self) -> int:
        return int(self.crosswalk.shape[0])


@dataclass(frozen=True)
class PedestrianPlan:
    """All walkers of a log before simulation: crossers first (``kerb_xy``, ``far_xy``, ``aside_xy (C, 2)``),
    then strollers (piecewise-linear ``stroll_times`` / ``stroll_xy``); ``size_lwh (P, 3)`` for all."""

    crossers: Crossers
    kerb_xy: F64
    far_xy: F64
    aside_xy: F64
    stroll_times: tuple[F64, ...]
    stroll_xy: tuple[F64, ...]
    size_lwh: F64


@dataclass(frozen=True)
class Pedestrians:
    """Walkers over a log: positions ``xy (T, P, 2)``, headings ``(T, P)``, velocities ``(T, P, 2)`` (map
    frame) and box sizes ``size_lwh (P, 3)``."""

    xy: F64
    heading: F64
    velocity: F64
    size_lwh: F64

    def __len__(self) -> int:
        return int(self.size_lwh.shape[0])


def plan_pedestrians(
    graph: LaneGraph,
    signals: Sequence[IntersectionSignals],
    times_s: F64,
    rng: np.random.Generator,
    *,
    crossers: tuple[int, int] = (0, 2),
    forced_crossers: Mapping[int, int] | None = None,
    strollers: int = 10,
    near_xy: npt.ArrayLike | None = None,
    near_radius_m: float = 120.0,
    avoid_xy: npt.ArrayLike | None = None,
) -> PedestrianPlan:
    """Plan the walkers of a log.

    Args:
        graph: the lane graph (its crosswalk frames and lanes).
        signals: the intersections' cycles (pedestrian phases).
        times_s: ``(T,)`` log times of the steps.
        rng: randomness.
        crossers: per crosswalk, a random number of crossers in ``[lo, hi]`` (at most 5 in all).
        forced_crossers: crosswalk id -> crossers that take the first walk phase ending after t = 1 s.
        strollers: walkers along sidewalks (they never cross).
        near_xy: if given, strollers start within ``near_radius_m`` of this point (map frame), where the ego
            will be, so that busy logs are busy around the ego.
        avoid_xy: ``(K, 2)`` static objects on sidewalks that strollers must not walk through.
    """
    forced = dict(forced_crossers or {})
    by_id = {s.intersection_id: s for s in signals}
    t = np.asarray(times_s, dtype=np.float64)
    t0, t1 = float(t[0]), float(t[-1])
    rows: list[tuple] = []
    for k, frame in enumerate(graph.crosswalks):
        sig = by_id.get(frame.intersection_id) if frame.intersection_id is not None else None
        if sig is None:
            continue
        windows = [w for w in sig.walk_windows(t0 - 20.0, t1) if w[1] > t0 + 1.0]
        n_forced = forced.get(frame.id, 0)
        n = min(n_forced + int(rng.integers(crossers[0], crossers[1] + 1)), len(CROSSING_LANES_M))
        for j in range(n if windows else 0):
            window = windows[0] if j < n_forced else windows[int(rng.integers(len(windows)))]
            rows.append(_crosser(graph, k, window, CROSSING_LANES_M[j], rng))
    n_c = len(rows)
    cross = Crossers(
        np.array([r[0] for r in rows], dtype=np.int64).reshape(n_c),
        *(np.array([r[i] for r in rows], dtype=np.float64).reshape(n_c) for i in range(1, 6)),
    )
    kerb, far, aside = (np.array([r[i] for r in rows], dtype=np.float64).reshape(n_c, 2) for i in (6, 7, 8))

    # Strollers: scripted, so overlaps can be checked exactly against each other.
    obstacles = np.asarray(avoid_xy if avoid_xy is not None else np.zeros((0, 2)), dtype=np.float64).reshape(
        -1, 2
    )
    carparks = [a.polygon for a in graph.road_map.carparks.values()]
    tracks = np.zeros((len(t), 0, 2))
    s_times, s_xy = [], []
    for _ in range(strollers):
        for _attempt in range(6):
            times, pts = _stroller(graph, t0, t1, rng, near_xy, near_radius_m)
            xy = np.stack([np.interp(t, times, pts[:, 0]), np.interp(t, times, pts[:, 1])], axis=1)
            if any(shapely.contains_xy(cp, xy[:, 0], xy[:, 1]).any() for cp in carparks):
                continue  # would walk through parked cars
            if len(obstacles) and _min_distance(xy[:, None, :], obstacles[None]) < 1.2:
                continue
            if tracks.shape[1] and _min_distance(tracks, xy[:, None, :]) < MIN_SEPARATION_M:
                continue
            tracks = np.concatenate([tracks, xy[:, None, :]], axis=1)
            s_times.append(times)
            s_xy.append(pts)
            break
    n = n_c + len(s_times)
    size = np.stack([rng.uniform(0.5, 0.75, n), rng.uniform(0.5, 0.75, n), rng.uniform(1.55, 1.9, n)], axis=1)
    return PedestrianPlan(cross, kerb, far, aside, tuple(s_times), tuple(s_xy), size.reshape(n, 3))


def _min_distance(a: F64, b: F64) -> float:
    """Smallest distance between broadcast point arrays ``(..., 2)`` (squares summed by hand: fast)."""
    d2 = (a[..., 0] - b[..., 0]) ** 2 + (a[..., 1] - b[..., 1]) ** 2
    return float(np.sqrt(d2.min())) if d2.size else np.inf


def _crosser(
    graph: LaneGraph, k: int, window: tuple[float, float], lane_m: float, rng: np.random.Generator
) -> tuple:
    f = graph.crosswalks[k]
    junction = graph.road_map.intersections[f.intersection_id]  # type: ignore[index]
    center = np.asarray(junction.polygon.centroid.coords[0])
    out = np.array([-f.axis[1], f.axis[0]])
    if (f.center - center) @ out < 0:
        out = -out  # away from the junction, along the arm
    side = 1.0 if rng.random() < 0.5 else -1.0
    reach = f.half_length_m + KERB_GAP_M
    kerb = f.center + side * reach * f.axis + lane_m * out
    far = f.center - side * reach * f.axis + lane_m * out
    aside = far - side * ASIDE_M * f.axis
    speed = float(rng.uniform(*WALK_SPEED_MPS))
    earliest = window[0] + float(rng.uniform(*DEPARTURE_DELAY_S))
    latest = window[1] - 2 * reach / speed - 0.5  # must still be across before the walk phase ends
    return (k, side * reach, -side * reach, speed, earliest, latest, kerb, far, aside)


def _stroller(
    graph: LaneGraph,
    t0: float,
    t1: float,
    rng: np.random.Generator,
    near_xy: npt.ArrayLike | None,
    near_radius_m: float,
) -> tuple[F64, F64]:
    m = graph.road_map
    kerb = [
        n
        for n in range(graph.num_nodes)
        if not graph.is_connector[n]
        and m.right_neighbor(graph.ids[n]) is None
        and graph.length[n] > 2 * CORNER_CLEARANCE_M + 5.0
    ]
    w = graph.length[kerb] / graph.length[kerb].sum()
    n = kerb[int(rng.choice(len(kerb), p=w))]
    lane = m.lanes[graph.ids[n]]
    width = lane.polygon.area / float(graph.length[n])
    line = offset_line(
        lane.baseline_xy, vertex_headings(lane.baseline_xy), -(width / 2 + rng.uniform(0.7, 2.3))
    )
    s = polyline_arc_length(line)
    lo, hi = CORNER_CLEARANCE_M, s[-1] - CORNER_CLEARANCE_M
    ok = (s > lo) & (s < hi)
    if near_xy is not None:
        near = ok & (np.linalg.norm(line - np.asarray(near_xy), axis=1) < near_radius_m)
        ok = near if near.any() else ok
    a = float(s[rng.choice(np.nonzero(ok)[0])])
    speed = 0.0 if rng.random() < STANDING_SHARE else float(rng.uniform(*STROLL_SPEED_MPS))
    forward = rng.random() < 0.5
    b = min(a + speed * (t1 - t0), hi) if forward else max(a - speed * (t1 - t0), lo)
    q = np.linspace(a, b, max(2, int(abs(b - a) / 2.0) + 1))
    pts = np.stack([np.interp(q, s, line[:, 0]), np.interp(q, s, line[:, 1])], axis=1)
    times = t0 + np.abs(q - a) / max(speed, 1e-3) + np.arange(len(q)) * 1e-9  # strictly increasing
    if speed == 0.0:
        # A standing walker faces along the sidewalk: keep a direction in its (zero-length) script.
        pts[-1] += 1e-6 * (line[min(len(line) - 1, 1)] - line[0])
    return times, pts


def evaluate_pedestrians(plan: PedestrianPlan, times_s: F64, departures_s: F64) -> Pedestrians:
    """Positions, headings and velocities of every walker at ``times_s (T,)``, given when each crosser
    actually stepped out (``departures_s (C,)``, inf for never)."""
    t = np.asarray(times_s, dtype=np.float64)[:, None]
    c = plan.crossers
    dep = np.asarray(departures_s, dtype=np.float64)[None, :]
    cross_t = np.abs(c.u_to - c.u_from) / c.speed_mps
    aside_t = ASIDE_M / c.speed_mps
    arr = dep + cross_t[None, :]
    f1 = np.clip((t - dep) / cross_t[None, :], 0.0, 1.0)[..., None]
    f2 = np.clip((t - arr) / aside_t[None, :], 0.0, 1.0)[..., None]
    xy_c = (
        plan.kerb_xy[None]
        + f1 * (plan.far_xy - plan.kerb_xy)[None]
        + f2 * (plan.aside_xy - plan.far_xy)[None]
    )
    walking = ((t >= dep) & (t < arr))[..., None]
    stepping = ((t >= arr) & (t < arr + aside_t[None, :]))[..., None]
    v_c = np.where(walking, ((plan.far_xy - plan.kerb_xy) / cross_t[:, None])[None], 0.0)
    v_c = v_c + np.where(stepping, ((plan.aside_xy - plan.far_xy) / aside_t[:, None])[None], 0.0)
    d = plan.far_xy - plan.kerb_xy
    h_c = np.broadcast_to(np.arctan2(d[:, 1], d[:, 0])[None, :], f1.shape[:2])

    xy_s, v_s, h_s = [], [], []
    tt = t[:, 0]
    for times, pts in zip(plan.stroll_times, plan.stroll_xy):
        xy_s.append(np.stack([np.interp(tt, times, pts[:, 0]), np.interp(tt, times, pts[:, 1])], axis=1))
        leg = np.clip(np.searchsorted(times, tt, side="right") - 1, 0, len(times) - 2)
        dp = pts[leg + 1] - pts[leg]
        dt = np.maximum(times[leg + 1] - times[leg], 1e-9)
        inside = ((tt >= times[0]) & (tt < times[-1]))[:, None]
        v_s.append(np.where(inside & (np.linalg.norm(dp, axis=1) > 1e-3)[:, None], dp / dt[:, None], 0.0))
        h_s.append(np.arctan2(dp[:, 1], dp[:, 0]))
    steps = len(tt)
    stack = lambda parts, shape: np.stack(parts, axis=1) if parts else np.zeros(shape)  # noqa: E731
    xy = np.concatenate([xy_c, stack(xy_s, (steps, 0, 2))], axis=1)
    vel = np.concatenate([v_c, stack(v_s, (steps, 0, 2))], axis=1)
    heading = np.concatenate([h_c, stack(h_s, (steps, 0))], axis=1)
    return Pedestrians(xy, heading, vel, plan.size_lwh)
