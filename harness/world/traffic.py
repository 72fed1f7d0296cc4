"""Lane-following traffic: every vehicle (and the ego) driven by IDM along its own path, vectorised.

Each mover follows a :class:`~harness.world.lanegraph.Path` at arc-length coordinate ``s`` (its reference
point: the box centre for traffic, the rear axle for the ego). One simulation step updates all movers at
once with numpy (no per-vehicle Python loop); only the loop over time steps is in Python.

Per step, a mover's IDM acceleration takes the most restrictive of
- its leader: the nearest mover ahead whose rear (or front) lies on a lane-graph node of this mover's path,
  mapped into this mover's path coordinate through a node table;
- a red light (or a yellow it can still stop for comfortably) at the start of a signalised connector on its
  path, or a connector whose area is occupied by a vehicle of a conflicting approach (intersection
  clearance): a stopped virtual leader at the stop line;
- a pedestrian on (or about to step onto) a crosswalk where its path crosses it: a stopped virtual leader
  before the crosswalk.
IDM parameters follow nuPlan's IDM agents (min gap ~2 m, headway 1.5 s, a_max ~1.5 m/s^2, b ~3 m/s^2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from harness.world.lanegraph import LaneGraph, Path, speed_profile
from harness.world.pedestrians import Crossers
from harness.world.signals import GREEN, RED, YELLOW

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

DT_S = 0.1
LOOKAHEAD_M = 150.0  # leaders, lights and crosswalks beyond this do not matter at urban speeds
TABLE_WINDOW_M = 300.0  # a mover's node table covers its path from its rear to this far ahead
REBUILD_EVERY = 100  # steps between node-table rebuilds (paths may revisit a node after a loop)
STOP_MARGIN_M = 0.5  # movers stop this far before a stop line
CROSSWALK_MARGIN_M = 1.0  # and this far before a crosswalk with a pedestrian in their way
PED_HALF_BAND_M = 2.5  # a pedestrian within this of the crossing point (walking axis) blocks the path
YELLOW_STOP_DECEL = 2.0  # a mover stops for yellow if it can do so with about this deceleration,
YELLOW_GO_MIN_SPEED = 5.0  # or if it is slower than this (it could not clear the junction in time),
YELLOW_ARRIVAL_SHARE = (
    0.6  # or if at its speed it would not reach the line within this share of the yellow left
)
STEP_OUT_S = 1.0  # vehicles yield to a crosser this long before it may step out
LOOK_AHEAD_S = 2.0  # and to the stretch of crosswalk it will cover within this time
CLEARANCE_STOP_DECEL = 4.5  # and for an occupied conflicting connector with at most this


@dataclass(frozen=True)
class Mover:
    """One simulated vehicle (or the ego) and its driver.

    ``start_m``/``start_speed_mps`` are the initial path coordinate of its reference point and speed; the
    front and rear bumpers are ``front_m`` ahead of and ``rear_m`` behind the reference point. IDM:
    ``accel_mps2`` (a), ``decel_mps2`` (b), ``min_gap_m`` (s0), ``headway_s`` (T); it aims for
    ``desired_factor`` times the path's comfortable speed profile (speed limit, curves); braking is capped at
    ``max_decel_mps2`` and the change of acceleration at the jerk limits. ``frozen`` movers never move (a
    broken-down car).
    """

    path: Path
    start_m: float
    start_speed_mps: float
    front_m: float
    rear_m: float
    desired_factor: float = 1.0
    accel_mps2: float = 1.5
    decel_mps2: float = 3.0
    min_gap_m: float = 2.0
    headway_s: float = 1.5
    lateral_accel_mps2: float = 2.5
    max_decel_mps2: float = 6.0
    jerk_up_mps3: float = 5.0
    jerk_down_mps3: float = 30.0
    frozen: bool = False


@dataclass(frozen=True)
class SimResult:
    """Per step and mover: path coordinate ``s (T, N)``, speed ``v (T, N)``, acceleration ``a (T, N)``; and
    when each crosser stepped onto its crosswalk, ``departures_s (C,)`` (inf: never)."""

    s: F64
    v: F64
    a: F64
    departures_s: F64


def _pad(rows: Sequence[Sequence[float]], fill: float) -> F64:
    width = max(1, max((len(r) for r in rows), default=1))
    out = np.full((len(rows), width), fill, dtype=np.float64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


class _Tables:
    """Per-mover path tables, padded to rectangular arrays."""

    def __init__(self, graph: LaneGraph, movers: Sequence[Mover]) -> None:
        paths = [m.path for m in movers]
        self.graph = graph
        self.paths = paths
        self.seq_start = _pad([p.seq_start for p in paths], np.inf)
        self.coord_offset = _pad([p.coord_offset for p in paths], 0.0)
        self.node = _pad([p.nodes for p in paths], 0).astype(np.int64)
        stops = [
            [(int(n), float(p.seq_start[k])) for k, n in enumerate(p.nodes) if graph.approach[n] >= 0]
            for p in paths
        ]
        self.stop_node = _pad([[n for n, _ in r] for r in stops], 0).astype(np.int64)
        self.stop_s = _pad([[s for _, s in r] for r in stops], np.inf)
        # Crosswalk crossings: crosswalk, path coordinates in/out, walking-axis coordinate, and where the
        # junction begins for that crossing (the connector's start; a vehicle past it is inside).
        cross = [
            [
                (
                    c.crosswalk,
                    c.s_in_m + p.coord_offset[k],
                    c.s_out_m + p.coord_offset[k],
                    c.u_m,
                    p.seq_start[k] if graph.is_connector[n] else c.s_in_m + p.coord_offset[k] - 10.0,
                )
                for k, n in enumerate(p.nodes)
                for c in graph.crossings[n]
            ]
            for p in paths
        ]
        self.cross_cw = _pad([[r[0] for r in row] for row in cross], -1).astype(np.int64)
        self.cross_s = _pad([[r[1] for r in row] for row in cross], np.inf)
        self.cross_out = _pad([[r[2] for r in row] for row in cross], np.inf)
        self.cross_u = _pad([[r[3] for r in row] for row in cross], 0.0)
        self.cross_entry = _pad([[r[4] for r in row] for row in cross], np.inf)
        # One flat array of every path's speed profile; mover i's coordinates are shifted by i * big so a
        # single searchsorted serves all movers.
        profiles = [
            speed_profile(p, m.lateral_accel_mps2, 1.0) * m.desired_factor for p, m in zip(paths, movers)
        ]
        self.big = 1e7
        self.flat_s = np.concatenate([p.s + i * self.big for i, p in enumerate(paths)])
        self.flat_v = np.concatenate(profiles)
        # Node table (M, 3, N): coordinate offset, look_lo and look_hi of node m on mover n's path, laid out
        # so that gathering the rows of the nodes the movers are on is one contiguous take per step.
        self.table = np.zeros((graph.num_nodes, 3, len(paths)))

    def rebuild(self, s: F64) -> None:
        """Node table: for each mover, where each node of its path (first occurrence ahead) lies."""
        self.table[:, 0] = 0.0
        self.table[:, 1] = np.inf
        self.table[:, 2] = -np.inf
        for i, p in enumerate(self.paths):
            ends = np.append(p.seq_start[1:], np.inf)
            seen: set[int] = set()
            for k, n in enumerate(p.nodes):
                if ends[k] < s[i] - 20.0 or p.seq_start[k] > s[i] + TABLE_WINDOW_M or n in seen:
                    continue
                seen.add(int(n))
                self.table[n, :, i] = p.coord_offset[k], p.look_lo[k], p.look_hi[k]

    def desired_speed(self, front: F64) -> F64:
        q = front + np.arange(len(front)) * self.big
        idx = np.clip(np.searchsorted(self.flat_s, q, side="right") - 1, 0, len(self.flat_s) - 1)
        return self.flat_v[idx]


def simulate(
    graph: LaneGraph, movers: Sequence[Mover], lights: npt.NDArray[np.int8], crossers: Crossers | None = None
) -> SimResult:
    """Simulate all movers for ``len(lights)`` steps of :data:`DT_S` (step 0 = the initial state).

    A crosser steps out at the first step inside its departure window at which no vehicle is inside the
    junction on a path across its crosswalk; vehicles then yield to it (a pedestrian never has to dodge).

    Args:
        graph: the lane graph the paths run on.
        movers: vehicles and the ego.
        lights: ``(T, M)`` light state of every node per step (signals.GREEN / YELLOW / RED).
        crossers: pedestrians waiting to cross, if any.

    Returns:
        The movers' coordinates, speeds and accelerations per step, and the crossers' departure times.
    """
    return _Simulation(graph, movers, lights, crossers).run()


class _Simulation:
    """State of one simulation; each ``_...`` method computes one kind of constraint for all movers."""

    def __init__(
        self,
        graph: LaneGraph,
        movers: Sequence[Mover],
        lights: npt.NDArray[np.int8],
        crossers: Crossers | None,
    ) -> None:
        self.graph, self.lights = graph, lights
        self.tab = _Tables(graph, movers)
        self.conflicts = graph.conflicts.astype(np.float64)
        arr = lambda name: np.array([getattr(m, name) for m in movers], dtype=np.float64)  # noqa: E731
        self.front_m, self.rear_m = arr("front_m"), arr("rear_m")
        self.length = self.front_m + self.rear_m
        self.a_max, self.b, self.s_min, self.headway = (
            arr("accel_mps2"),
            arr("decel_mps2"),
            arr("min_gap_m"),
            arr("headway_s"),
        )
        self.b_max, self.j_up, self.j_down = arr("max_decel_mps2"), arr("jerk_up_mps3"), arr("jerk_down_mps3")
        self.frozen = np.array([m.frozen for m in movers], dtype=bool)
        self.path_end = np.array([m.path.length_m for m in movers]) - self.front_m - 0.5
        self.s0 = arr("start_m")
        self.v0 = np.where(self.frozen, 0.0, arr("start_speed_mps"))
        self.rows = np.arange(len(movers))
        self.until_red = _time_until_red(lights)
        self.committed = np.zeros(self.tab.stop_node.shape, dtype=bool)  # went on yellow at that stop line
        self.crossers = crossers if crossers is not None and len(crossers) else None
        self.departures = np.full(len(crossers) if crossers is not None else 0, np.inf)
        if self.crossers is not None:
            c = self.crossers
            self.walk_sign = np.sign(c.u_to - c.u_from)
            self.walk_time = np.abs(c.u_to - c.u_from) / c.speed_mps
        self.busy_cw = np.zeros(len(graph.crosswalks) + 1, dtype=bool)

    def run(self) -> SimResult:
        steps, n = int(self.lights.shape[0]), len(self.rows)
        s, v, a_prev = self.s0.copy(), self.v0.copy(), np.zeros(n)
        out_s, out_v, out_a = np.zeros((steps, n)), np.zeros((steps, n)), np.zeros((steps, n))
        out_s[0], out_v[0] = s, v
        tab = self.tab
        for t in range(steps - 1):
            if t % REBUILD_EVERY == 0:
                tab.rebuild(s)
            front, rear = s + self.front_m, s - self.rear_m
            # Where each mover's front and rear are: path element, lane-graph node, node coordinate.
            ef = np.maximum((tab.seq_start <= front[:, None]).sum(1) - 1, 0)
            er = np.maximum((tab.seq_start <= rear[:, None]).sum(1) - 1, 0)
            nf, nr = tab.node[self.rows, ef], tab.node[self.rows, er]
            cf, cr = front - tab.coord_offset[self.rows, ef], rear - tab.coord_offset[self.rows, er]
            gap_v, dv_v = self._leaders(s, v, front, nf, nr, cf, cr)
            gap_s = self._stop_lines(t, v, front, nf, nr)
            gap_p = self._crossers(t * DT_S, front, rear)
            # IDM with the most restrictive of the three (virtual leaders stand still).
            v0 = np.maximum(tab.desired_speed(front), 0.5)
            inter = np.zeros(n)
            for gap, dv in ((gap_v, dv_v), (gap_s, v), (gap_p, v)):
                s_star = self.s_min + np.maximum(
                    0.0, v * self.headway + v * dv / (2.0 * np.sqrt(self.a_max * self.b))
                )
                inter = np.maximum(
                    inter, np.where(np.isfinite(gap), (s_star / np.maximum(gap, 0.05)) ** 2, 0.0)
                )
            acc = np.clip(self.a_max * (1.0 - (v / v0) ** 4 - inter), -self.b_max, self.a_max)
            acc = np.clip(acc, a_prev - self.j_down * DT_S, a_prev + self.j_up * DT_S)  # smooth: bounded jerk
            v_new = np.where(self.frozen, 0.0, np.maximum(v + acc * DT_S, 0.0))
            s = np.minimum(s + 0.5 * (v + v_new) * DT_S, np.maximum(self.path_end, s))
            a_prev = (v_new - v) / DT_S  # what was applied (0 once stopped, not the IDM's wish)
            v = v_new
            out_s[t + 1], out_v[t + 1], out_a[t] = s, v, a_prev
        if steps > 1:
            out_a[-1] = out_a[-2]
        return SimResult(out_s, out_v, out_a, self.departures)

    def _leaders(self, s: F64, v: F64, front: F64, nf: I64, nr: I64, cf: F64, cr: F64) -> tuple[F64, F64]:
        """Gap to and speed difference with each mover's leader (inf gap: none within its node table).

        ``x[j, i]`` is mover j's rear in mover i's path coordinate, from the node j's rear is on, or else
        from the node its front is on (j merging onto i's path); inf where j is not ahead of i on i's path.
        """
        tab = self.tab
        g = tab.table.take(nr, axis=0)
        x = g[:, 0] + cr[:, None]
        x[~((x >= g[:, 1]) & (x <= g[:, 2]) & (x > s[None, :]))] = np.inf
        g = tab.table.take(nf, axis=0)
        xf = g[:, 0] + cf[:, None]
        bad = ~((xf >= g[:, 1]) & (xf <= g[:, 2]))
        xf -= self.length[:, None]
        bad |= xf <= s[None, :]
        xf[bad] = np.inf
        np.minimum(x, xf, out=x)
        lead = x.argmin(axis=0)
        return x[lead, self.rows] - front, v - v[lead]

    def _stop_lines(self, t: int, v: F64, front: F64, nf: I64, nr: I64) -> F64:
        """Gap to a virtual standing leader at the first stop line ahead that the mover must respect.

        Red: stop. Yellow: stop if the line is comfortably far, or the mover is slow, or it would not reach
        the line well before red (unless it already decided to go and can no longer stop); once it goes it is
        committed for that line. A slow mover that overshot the line a little while stopping still waits.
        Any light: do not enter a connector whose area a vehicle of another approach still occupies
        (junction clearance), unless too close to stop.
        """
        tab = self.tab
        occupied = np.zeros(self.graph.num_nodes)
        occupied[nf[~self.frozen]] = 1.0
        occupied[nr[~self.frozen]] = 1.0
        blocked = (self.conflicts @ occupied) > 0
        state = self.lights[t][tab.stop_node]
        d_line = tab.stop_s - front[:, None]
        vc = v[:, None]
        v2 = vc * vc
        yellow = state == YELLOW
        late = d_line >= YELLOW_ARRIVAL_SHARE * vc * self.until_red[t][tab.stop_node]
        can_stop = d_line > v2 / (2 * self.b_max[:, None])
        need = yellow & (
            (d_line > v2 / (2 * YELLOW_STOP_DECEL) + 0.5 * vc)
            | (vc < YELLOW_GO_MIN_SPEED)
            | (late & ~self.committed & can_stop)
        )
        self.committed = np.where(state == GREEN, False, self.committed | (yellow & ~need & (d_line > 0.0)))
        need |= blocked[tab.stop_node] & (d_line > v2 / (2 * CLEARANCE_STOP_DECEL))
        need &= d_line > -0.05
        need |= (
            (state == RED)
            & ~(self.committed & ~can_stop)
            & ((d_line > -0.05) | ((d_line > -1.5) & (vc < 3.0)))
        )
        need &= d_line < LOOKAHEAD_M
        return np.where(need, d_line, np.inf).min(axis=1) - STOP_MARGIN_M + self.s_min

    def _crossers(self, now: float, front: F64, rear: F64) -> F64:
        """Let waiting crossers step out when no vehicle is inside the junction across their crosswalk, and
        return each mover's gap to a virtual standing leader before a crosswalk with a crosser in its way."""
        c, tab = self.crossers, self.tab
        if c is None:
            return np.full(len(front), np.inf)
        waiting = np.isinf(self.departures) & (now >= c.earliest_s) & (now <= c.latest_s)
        if waiting.any():
            inside = (front[:, None] > tab.cross_entry) & (rear[:, None] < tab.cross_out + 1.0)
            self.busy_cw[:] = False
            self.busy_cw[tab.cross_cw[inside]] = True
            self.departures[waiting & ~self.busy_cw[c.crosswalk]] = now
        walking = (now >= self.departures) & (now <= self.departures + self.walk_time)
        about = np.isinf(self.departures) & (now >= c.earliest_s - STEP_OUT_S) & (now <= c.latest_s)
        on = np.nonzero(walking | about)[0]
        if not len(on):
            return np.full(len(front), np.inf)
        elapsed = np.where(walking[on], now - self.departures[on], 0.0)
        u = c.u_from[on] + self.walk_sign[on] * c.speed_mps[on] * elapsed
        u2 = u + self.walk_sign[on] * c.speed_mps[on] * LOOK_AHEAD_S
        lo, hi = np.minimum(u, u2), np.maximum(u, u2)
        cu = tab.cross_u[:, :, None]
        hit = (
            (tab.cross_cw[:, :, None] == c.crosswalk[on][None, None, :])
            & (lo[None, None, :] <= cu + PED_HALF_BAND_M)
            & (hi[None, None, :] >= cu - PED_HALF_BAND_M)
        ).any(axis=2)
        d_cw = tab.cross_s - front[:, None]
        hit &= (d_cw > 0.0) & (d_cw < LOOKAHEAD_M)
        return np.where(hit, d_cw, np.inf).min(axis=1) - CROSSWALK_MARGIN_M + self.s_min


def _time_until_red(lights: npt.NDArray[np.int8]) -> F64:
    """``(T, M)``: seconds from each step until each node's light is next red (1e9 if never)."""
    out = np.empty(lights.shape)
    ahead = np.full(lights.shape[1], 1e9)
    for t in range(lights.shape[0] - 1, -1, -1):
        ahead = np.where(lights[t] == RED, 0.0, ahead + DT_S)
        out[t] = ahead
    return out


def path_poses(paths: Sequence[Path], s: F64) -> tuple[F64, F64]:
    """Positions ``(T, N, 2)`` and headings ``(T, N)`` of movers at path coordinates ``s (T, N)``."""
    big = 1e7
    flat_s = np.concatenate([p.s + i * big for i, p in enumerate(paths)])
    flat_x = np.concatenate([p.points[:, 0] for p in paths])
    flat_y = np.concatenate([p.points[:, 1] for p in paths])
    flat_h = np.concatenate([p.heading for p in paths])
    ends = np.array([p.length_m for p in paths])
    q = np.clip(s, 0.0, ends[None, :]) + np.arange(len(paths))[None, :] * big
    idx = np.clip(np.searchsorted(flat_s, q, side="right") - 1, 0, len(flat_s) - 2)
    # q stays inside its own path's range; at a path's very end idx + 1 is the next path's first point,
    # but the weight there is 0.
    seg = np.maximum(flat_s[idx + 1] - flat_s[idx], 1e-9)
    w = np.clip((q - flat_s[idx]) / seg, 0.0, 1.0)
    x = flat_x[idx] + w * (flat_x[idx + 1] - flat_x[idx])
    y = flat_y[idx] + w * (flat_y[idx + 1] - flat_y[idx])
    h = flat_h[idx] + w * (flat_h[idx + 1] - flat_h[idx])
    return np.stack([x, y], axis=-1), (h + np.pi) % (2 * np.pi) - np.pi
