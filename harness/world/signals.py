"""Traffic-light cycles of the signalised intersections.

Each intersection runs *split phasing*: one approach at a time gets green (all its movements: left,
straight, right), then yellow, then an all-red clearance, in a fixed order; after the last approach comes
an exclusive pedestrian phase (all vehicle lights red, pedestrians cross every crosswalk). So conflicting
approaches are never green together and turning vehicles never meet oncoming traffic or walkers, which a
lane-following IDM world cannot negotiate. NAVSIM only knows red and not-red; yellow is reported as not red
(nuPlan does the same).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from harness.maps import RoadMap
from harness.world.lanegraph import LaneGraph

F64 = npt.NDArray[np.float64]
I8 = npt.NDArray[np.int8]

GREEN, YELLOW, RED = 0, 1, 2
YELLOW_S = 3.0
ALL_RED_S = 1.5
WALK_S = 18.0  # long enough to cross 2 x 2 lanes (18 m kerb to kerb) at 1.25 m/s after a 2.5 s start delay
GREEN_S_PER_LANE = {1: 7.0, 2: 10.0}


@dataclass(frozen=True)
class IntersectionSignals:
    """One intersection's cycle.

    ``approaches`` are from-roadblock ids in phase order; ``green_start / green_end / yellow_end (A,)`` are
    cycle times (s) of each approach's phase; the pedestrian phase is ``[walk_start_s, cycle_s)``. Cycle time
    at log time ``t`` is ``(t + offset_s) mod cycle_s``.
    """

    intersection_id: int
    approaches: tuple[int, ...]
    green_start: F64
    green_end: F64
    yellow_end: F64
    walk_start_s: float
    cycle_s: float
    offset_s: float

    def cycle_time(self, t_s: npt.ArrayLike) -> F64:
        return (np.asarray(t_s, dtype=np.float64) + self.offset_s) % self.cycle_s

    def states(self, t_s: npt.ArrayLike) -> I8:
        """Light states ``(T, A)`` (GREEN, YELLOW, RED) of every approach at log times ``t_s (T,)``."""
        c = self.cycle_time(t_s)[:, None]
        green = (c >= self.green_start) & (c < self.green_end)
        yellow = (c >= self.green_end) & (c < self.yellow_end)
        return np.where(green, GREEN, np.where(yellow, YELLOW, RED)).astype(np.int8)

    def walk_windows(self, t0_s: float, t1_s: float) -> list[tuple[float, float]]:
        """Pedestrian phases ``(start, end)`` in log time that overlap ``[t0_s, t1_s]``."""
        first = np.floor((t0_s + self.offset_s - self.cycle_s) / self.cycle_s) * self.cycle_s - self.offset_s
        out = []
        base = float(first)
        while base <= t1_s:
            start, end = base + self.walk_start_s, base + self.cycle_s
            if end >= t0_s and start <= t1_s:
                out.append((start, end))
            base += self.cycle_s
        return out

    def offset_for_green(self, approach_roadblock_id: int, green_at_s: float) -> float:
        """The ``offset_s`` that makes ``approach_roadblock_id`` turn green at log time ``green_at_s``."""
        k = self.approaches.index(approach_roadblock_id)
        return float((self.green_start[k] - green_at_s) % self.cycle_s)


def make_signals(
    road_map: RoadMap, intersection_id: int, approach_order: Sequence[int], offset_s: float
) -> IntersectionSignals:
    """Build an intersection's cycle; green time grows with the approach's lane count."""
    starts, ends, yellows = [], [], []
    t = 0.0
    for rb in approach_order:
        n = len(road_map.roadblocks[rb].lane_ids)
        green = GREEN_S_PER_LANE.get(n, 10.0)
        starts.append(t)
        ends.append(t + green)
        yellows.append(t + green + YELLOW_S)
        t += green + YELLOW_S + ALL_RED_S
    cycle = t + WALK_S
    return IntersectionSignals(
        intersection_id,
        tuple(approach_order),
        np.array(starts),
        np.array(ends),
        np.array(yellows),
        t,
        cycle,
        float(offset_s) % cycle,
    )


def node_light_states(graph: LaneGraph, signals: Sequence[IntersectionSignals], times_s: npt.ArrayLike) -> I8:
    """Light state ``(T, M)`` of every lane-graph node (GREEN for unsignalised nodes) at ``times_s (T,)``."""
    t = np.asarray(times_s, dtype=np.float64)
    out = np.zeros((len(t), graph.num_nodes), dtype=np.int8)
    by_id = {s.intersection_id: s for s in signals}
    for a, (iid, rb) in enumerate(graph.approaches):
        sig = by_id.get(iid)
        if sig is None:
            continue
        nodes = np.nonzero(graph.approach == a)[0]
        out[:, nodes] = sig.states(t)[:, sig.approaches.index(rb)][:, None]
    return out
