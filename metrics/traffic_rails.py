"""Lane rails for NAVSIM v2's reactive traffic: the map side of ``NavsimIDMTrafficAgents`` and nuPlan's paths.

- :class:`LaneRails`: the lanes and lane connectors an IDM agent can start on (polygons, baselines, speed
  limits) and the intersections; ``segments_containing`` is the devkit's strict ``contains``;
- :func:`starting_segments`: nuPlan ``get_starting_segment`` (a lane containing the box centre, else, inside
  an intersection, a lane connector; the candidate whose nearest baseline heading differs least, raw
  difference as nuPlan computes it) with the nearest arc length and the snapped pose;
- :class:`Paths`: nuPlan ``InterpolatedPath`` of ``create_path_from_se2(baseline.discrete_path)`` for many
  agents at once (``trim_path`` / ``trim_path_up_to_progress`` as polylines), the path arrays stored once per
  distinct baseline (agents on one lane share them).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely

from harness.maps import RoadMap

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class LaneRails:
    """Lanes and lane connectors IDM agents can drive on, plus intersections (one map, map frame).

    Attributes:
        ids: ``(R,)`` lane / lane-connector ids, lanes first, each kind in ascending id (the devkit's row order).
        is_connector: ``(R,)``.
        polygons: ``(R,)`` shapely polygons.
        baselines: ``R`` arrays ``(K, 2)``, the baseline polylines (travel direction), metres.
        speed_limit_mps: ``(R,)`` NaN where the map has none.
        intersections: ``(I,)`` intersection polygons.
    """

    ids: I64
    is_connector: B
    polygons: npt.NDArray[np.object_]
    baselines: tuple[F64, ...]
    speed_limit_mps: F64
    intersections: npt.NDArray[np.object_]

    @classmethod
    def from_road_map(cls, road_map: RoadMap) -> LaneRails:
        lanes = [road_map.lanes[k] for k in sorted(road_map.lanes)]
        lcs = [road_map.lane_connectors[k] for k in sorted(road_map.lane_connectors)]
        objs = lanes + lcs
        limits = [np.nan if o.speed_limit_mps is None else float(o.speed_limit_mps) for o in objs]
        return cls(
            ids=np.array([o.id for o in objs], dtype=np.int64),
            is_connector=np.array([False] * len(lanes) + [True] * len(lcs)),
            polygons=np.array([o.polygon for o in objs], dtype=object),
            baselines=tuple(np.asarray(o.baseline_xy, dtype=np.float64)[:, :2] for o in objs),
            speed_limit_mps=np.array(limits, dtype=np.float64),
            intersections=np.array([road_map.intersections[k].polygon for k in sorted(road_map.intersections)],
                                   dtype=object),
        )

    def __post_init__(self) -> None:
        # prepared polygons for the point-in-polygon tests (GEOS's ``within`` of a point decided by the prepared
        # polygon's ``contains``: the same answers, without walking every edge for every point)
        shapely.prepare(self.polygons)
        shapely.prepare(self.intersections)
        object.__setattr__(self, "_tree", shapely.STRtree(self.polygons))
        object.__setattr__(self, "_inter_tree", shapely.STRtree(self.intersections))
        object.__setattr__(self, "_lines", _line_array(list(self.baselines)))

    def segments_containing(self, xy: F64) -> tuple[I64, I64]:
        """Sparse pairs ``(point_index, rail_index)``: rails whose polygon strictly contains the point, sorted."""
        pts = shapely.points(xy)
        p, r = self._tree.query(pts)  # type: ignore[attr-defined]
        inside = shapely.contains(self.polygons[r], pts[p])
        p, r = p[inside], r[inside]
        order = np.lexsort((r, p))
        return p[order], r[order]

    def in_intersection(self, xy: F64) -> B:
        pts = shapely.points(xy)
        p, i = self._inter_tree.query(pts)  # type: ignore[attr-defined]
        out = np.zeros(len(xy), dtype=bool)
        out[p[shapely.contains(self.intersections[i], pts[p])]] = True
        return out


def _line_array(coords: list[F64]) -> npt.NDArray[np.object_]:
    out = np.empty(len(coords), dtype=object)
    out[:] = [shapely.LineString(c) for c in coords]
    return out


def _ragged_ranges(lo: I64, hi: I64) -> tuple[I64, I64]:
    """``(owner, value)`` of the concatenated ranges ``[lo_i, hi_i)``."""
    n = np.maximum(hi - lo, 0)
    owner = np.repeat(np.arange(len(lo)), n)
    start = np.concatenate([[0], np.cumsum(n)[:-1]]).astype(np.int64)
    return owner, np.arange(int(n.sum()), dtype=np.int64) - np.repeat(start - lo, n)


def principal(a: F64 | float) -> F64:
    """nuPlan ``principal_value``: ``(a + π) % 2π - π``."""
    return (np.asarray(a) + np.pi) % (2 * np.pi) - np.pi


def starting_segments(rails: LaneRails, poses: F64, est_m: float,
                      containing: tuple[I64, I64, B] | None = None) -> tuple[I64, F64, F64]:
    """nuPlan ``get_starting_segment`` for box-centre poses ``(N, 3)``, every (vehicle, candidate) pair at once.

    A candidate's nearest arc length and pose are nuPlan's ``get_nearest_arc_length_from_position`` and
    ``get_nearest_pose_from_position`` (the heading towards the point ``est_m`` further, or from the point
    ``est_m`` back where that is the same point); the first candidate (ascending rail) with the least heading
    difference wins. ``containing``: ``rails.segments_containing`` and ``rails.in_intersection`` of the poses,
    where already known.

    Returns ``(rail (N,) or -1, progress (N,), snapped pose (N, 3))``.
    """
    n = len(poses)
    rail = np.full(n, -1, dtype=np.int64)
    progress = np.full(n, np.nan)
    snapped = np.full((n, 3), np.nan)
    if n == 0:
        return rail, progress, snapped
    if containing is None:
        containing = (*rails.segments_containing(poses[:, :2]), rails.in_intersection(poses[:, :2]))
    p_idx, r_idx, in_inter = containing
    # lanes containing the point, else (inside an intersection) the lane connectors containing it
    conn = rails.is_connector[r_idx]
    has_lane = np.zeros(n, dtype=bool)
    has_lane[p_idx[~conn]] = True
    keep = np.where(has_lane[p_idx], ~conn, in_inter[p_idx] & conn)
    cp, cr = p_idx[keep], r_idx[keep]
    if not len(cp):
        return rail, progress, snapped
    lines = rails._lines[cr]  # type: ignore[attr-defined]
    arc = shapely.line_locate_point(lines, shapely.points(poses[cp, :2]))
    p1 = shapely.get_coordinates(shapely.line_interpolate_point(lines, arc))
    p2 = shapely.get_coordinates(shapely.line_interpolate_point(lines, arc + est_m))
    back = (p1 == p2).all(axis=1)
    if back.any():
        p2[back] = shapely.get_coordinates(shapely.line_interpolate_point(lines[back], arc[back] - est_m))
    heading = np.empty(len(cp))
    for k in range(len(cp)):  # scalar arctan2, as nuPlan's one point at a time
        a, b = (p2[k], p1[k]) if back[k] else (p1[k], p2[k])
        heading[k] = np.arctan2(b[1] - a[1], b[0] - a[0])
    diff = np.abs(heading - poses[cp, 2])
    diff[np.isnan(diff)] = np.inf
    # per point, the first candidate with the least difference (nuPlan's strict ``<`` over ascending rails)
    order = np.lexsort((np.arange(len(cp)), diff, cp))
    firsts = order[np.flatnonzero(np.r_[True, cp[order][1:] != cp[order][:-1]])]
    firsts = firsts[np.isfinite(diff[firsts])]
    i = cp[firsts]
    rail[i], progress[i] = cr[firsts], arc[firsts]
    snapped[i] = np.stack([p1[firsts, 0], p1[firsts, 1], heading[firsts]], -1)
    return rail, progress, snapped


def _path_piece(pts: F64) -> tuple[F64, ...]:
    """One baseline's path arrays: progress, x, y, unwrapped heading, and the suffix bounds (min / max of x and
    y from each vertex to the end), see :class:`Paths`."""
    d = np.diff(pts, axis=0)
    heading = np.arctan2(d[:, 1], d[:, 0])
    heading = np.append(heading, heading[-1])
    progress = np.concatenate([[0.0], np.cumsum(np.hypot(d[:, 0], d[:, 1]))])
    keep = ~np.isclose(np.diff(progress), 0.0)
    px, py = pts[:-1, 0][keep], pts[:-1, 1][keep]
    return (progress[:-1][keep], px, py, np.unwrap(heading[:-1][keep]),
            np.minimum.accumulate(px[::-1])[::-1], np.maximum.accumulate(px[::-1])[::-1],
            np.minimum.accumulate(py[::-1])[::-1], np.maximum.accumulate(py[::-1])[::-1])


class Paths:
    """nuPlan ``InterpolatedPath`` of ``create_path_from_se2(baseline.discrete_path)`` for N agents at once.

    ``create_path_from_se2`` zips the baseline states with the (K-1)-long "repeated" mask, so the last
    baseline point never enters the path and a point followed by a duplicate is dropped. Headings are the
    baseline's segment headings (the last repeats the one before), unwrapped for interpolation and wrapped
    after (nuPlan's ``AngularInterpolator``); positions interpolate as scipy's ``interp1d``.
    """

    _BIG = 1e6  # key offset per path for one searchsorted over all paths (paths are far shorter)

    def __init__(self, baselines: list[F64], local: I64 | None = None) -> None:
        # the path arrays are stored once per distinct baseline (agents on one lane share it, ``base``); the
        # per-agent arrays (first, last, start, end, chunk and super-chunk ranges) index them
        index: dict[int, int] = {}
        distinct: list[F64] = []
        base = np.empty(len(baselines), dtype=np.int64)
        for i, pts in enumerate(baselines):
            j = index.setdefault(id(pts), len(distinct))
            if j == len(distinct):
                distinct.append(pts)
            base[i] = j
        per = [_path_piece(pts) for pts in distinct]
        n = np.array([len(q[0]) for q in per], dtype=np.int64)
        if (n < 2).any():
            raise ValueError("an IDM path needs at least 2 distinct baseline points")
        first = np.concatenate([[0], np.cumsum(n)[:-1]]).astype(np.int64)
        last = first + n - 1
        self.base = base
        self.first, self.last = first[base], last[base]
        self.prog, self.x, self.y, self.h, self.sx_min, self.sx_max, self.sy_min, self.sy_max = (
            np.concatenate([q[k] for q in per]) if per else np.zeros(0) for k in range(8))
        # the search keys over all paths (a start for every search: :meth:`_search` then compares with each
        # agent's one-scene keys ``prog + local·BIG``, :meth:`_bisect` with the progresses themselves)
        self.keys = self.prog + np.repeat(np.arange(len(n)), n) * self._BIG
        self.local = np.arange(len(baselines), dtype=np.int64) if local is None else np.asarray(local, np.int64)
        self.start = self.prog[self.first]
        self.end = self.prog[self.last]
        self._lists: tuple[list[float], ...] | None = None
        # chunks of CHUNK segments (CHUNK + 1 vertices, consecutive chunks share one) with their bounding boxes
        n_chunks = -(-(last - first) // self.CHUNK)
        chunk_first = np.concatenate([[0], np.cumsum(n_chunks)[:-1]]).astype(np.int64)
        chunk_end = chunk_first + n_chunks
        c_owner = np.repeat(np.arange(len(n_chunks)), n_chunks)
        lo = first[c_owner] + self.CHUNK * (np.arange(int(n_chunks.sum())) - chunk_first[c_owner])
        hi = np.minimum(lo + self.CHUNK, np.repeat(last, n_chunks))
        span = np.arange(self.CHUNK + 1)
        idx = np.minimum(lo[:, None] + span[None, :], hi[:, None])
        self.chunk_box = np.stack([self.x[idx].min(1), self.y[idx].min(1), self.x[idx].max(1), self.y[idx].max(1)], -1)
        self.chunk_lo, self.chunk_hi = lo.astype(np.int64), hi.astype(np.int64)  # segments [lo, hi) of each chunk
        self.chunk_first, self.chunk_end = chunk_first[base], chunk_end[base]
        # super-chunks of SUPER chunks with the union of their boxes (a coarse level for :meth:`chunks_near`)
        n_sup = -(-n_chunks // self.SUPER)
        super_first = np.concatenate([[0], np.cumsum(n_sup)[:-1]]).astype(np.int64)
        owner_s = np.repeat(np.arange(len(n_chunks)), n_sup)
        s_lo = chunk_first[owner_s] + self.SUPER * (np.arange(int(n_sup.sum())) - super_first[owner_s])
        self.super_first, self.super_end = super_first[base], (super_first + n_sup)[base]
        self.super_c0 = s_lo
        self.super_c1 = np.minimum(s_lo + self.SUPER, chunk_end[owner_s])
        cb = self.chunk_box
        self.super_box = np.stack([np.minimum.reduceat(cb[:, 0], s_lo), np.minimum.reduceat(cb[:, 1], s_lo),
                                   np.maximum.reduceat(cb[:, 2], s_lo), np.maximum.reduceat(cb[:, 3], s_lo)], -1)

    #: segments per chunk of :meth:`to_go_chunks`
    CHUNK = 4
    #: chunks per super-chunk
    SUPER = 8

    def chunks_near(self, a: I64, p: F64, q: I64, box: F64, c0: I64 | None = None) -> tuple[I64, I64]:
        """``(query, chunk)``: the chunks of ``to_go_chunks(a, p)[q]`` whose boxes overlap ``box[query]`` (``(Q,
        4)`` xmin, ymin, xmax, ymax), in query order, found through the super-chunks (whose boxes hold them).
        ``c0``: ``to_go_chunks(a, p)[0]`` where already known."""
        if c0 is None:
            c0, _ = self.to_go_chunks(a, p)
        aq, c0q = a[q], c0[q]
        s0 = self.super_first[aq] + (c0q - self.chunk_first[aq]) // self.SUPER
        qi, sj = _ragged_ranges(s0, self.super_end[aq])
        sb = self.super_box[sj]
        ok = (sb[:, 0] <= box[qi, 2]) & (sb[:, 2] >= box[qi, 0]) & (sb[:, 1] <= box[qi, 3]) & (sb[:, 3] >= box[qi, 1])
        qi, sj = qi[ok], sj[ok]
        k, cj = _ragged_ranges(np.maximum(self.super_c0[sj], c0q[qi]), self.super_c1[sj])
        qi = qi[k]
        cb = self.chunk_box[cj]
        ok = (cb[:, 0] <= box[qi, 2]) & (cb[:, 2] >= box[qi, 0]) & (cb[:, 1] <= box[qi, 3]) & (cb[:, 3] >= box[qi, 1])
        return qi[ok], cj[ok]

    def to_go_chunks(self, a: I64, p: F64) -> tuple[I64, I64]:
        """Chunk ranges ``[c0, c1)`` whose boxes cover ``to_go(a, p)`` (p clamped) of agents ``a``."""
        j = self._search(a, p, right=True)  # first point with progress > p
        seg = np.maximum(np.minimum(j, self.last[a]) - 1, self.first[a])  # the segment [seg, seg + 1] holds p
        return self.chunk_first[a] + (seg - self.first[a]) // self.CHUNK, self.chunk_end[a]

    def clamp(self, a: I64, p: F64) -> F64:
        return np.minimum(np.maximum(p, self.start[a]), self.end[a])

    def pose1(self, a: int, p: float) -> tuple[float, float, float]:
        """``poses`` for one agent and one progress, in plain floats (the same arithmetic)."""
        if self._lists is None:
            self._lists = (self.prog.tolist(), self.x.tolist(), self.y.tolist(), self.h.tolist())
        prog, xs, ys, hs = self._lists
        f, la = int(self.first[a]), int(self.last[a])
        hi = min(max(bisect.bisect_left(prog, p, f, la + 1), f + 1), la)
        lo = hi - 1
        dx = prog[hi] - prog[lo]
        t = p - prog[lo]
        h = (hs[hi] - hs[lo]) / dx * t + hs[lo]
        return ((xs[hi] - xs[lo]) / dx * t + xs[lo], (ys[hi] - ys[lo]) / dx * t + ys[lo],
                (h + math.pi) % (2 * math.pi) - math.pi)

    def poses(self, a: I64, p: F64) -> F64:
        """``(n, 3)`` x, y, heading at progress ``p`` (within the path) of agents ``a``."""
        j = self._search(a, p, right=False)
        hi = np.clip(j, self.first[a] + 1, self.last[a])
        lo = hi - 1
        dx = self.prog[hi] - self.prog[lo]
        t = p - self.prog[lo]
        x = (self.x[hi] - self.x[lo]) / dx * t + self.x[lo]
        y = (self.y[hi] - self.y[lo]) / dx * t + self.y[lo]
        h = (self.h[hi] - self.h[lo]) / dx * t + self.h[lo]
        return np.stack([x, y, principal(h)], axis=-1)

    def to_go_bounds(self, a: I64, p: F64, pose: F64) -> F64:
        """``(n, 4)`` bounding box of ``trim_path_up_to_progress`` (p clamped)."""
        j = self._search(a, p, right=True)  # first point with progress > p
        none_later = j > self.last[a]
        jj = np.minimum(j, self.last[a])
        out = np.stack([np.minimum(pose[:, 0], self.sx_min[jj]), np.minimum(pose[:, 1], self.sy_min[jj]),
                        np.maximum(pose[:, 0], self.sx_max[jj]), np.maximum(pose[:, 1], self.sy_max[jj])], -1)
        if none_later.any():
            la = self.last[a[none_later]]
            out[none_later] = np.stack([np.minimum(self.x[la - 1], self.x[la]), np.minimum(self.y[la - 1], self.y[la]),
                                        np.maximum(self.x[la - 1], self.x[la]),
                                        np.maximum(self.y[la - 1], self.y[la])], -1)
        return out

    #: below this many agents the line builders go one agent at a time (fewer numpy calls; the same vertices)
    _FEW = 8

    def _search(self, a: I64, p: F64, right: bool) -> I64:
        """``searchsorted`` of ``p + local·BIG`` in the one-scene keys ``prog + local·BIG`` (side right / left)
        for agents of any scene: the key of agent ``a``'s scene-local index, rounded as a one-scene Paths rounds
        it, compared with that agent's keys so rounded. Paths are shorter than BIG, so the one-scene result lies
        in ``[first, last + 1]``; the search over all paths gives the start, moved while a neighbour's key
        compares the other way (keys are monotone along a path, rounding only moves ties)."""
        f, la = self.first[a], self.last[a]
        off = self.local[a] * self._BIG
        q = p + off
        j = np.clip(np.searchsorted(self.keys, p + self.base[a] * self._BIG, side="right" if right else "left"),
                    f, la + 1)
        top = len(self.prog) - 1
        while True:
            prev = self.prog[np.maximum(j - 1, 0)] + off
            down = (j > f) & ((prev > q) if right else (prev >= q))
            if not down.any():
                break
            j = j - down
        while True:
            cur = self.prog[np.minimum(j, top)] + off
            up = (j <= la) & ((cur <= q) if right else (cur < q))
            if not up.any():
                break
            j = j + up
        return j

    def _bisect(self, a: I64, p: F64, right: bool) -> I64:
        """Per agent, ``bisect_right`` (``right``) or ``bisect_left`` of ``p`` in its progresses ``[first, last]``:
        exact (as :meth:`pose1`'s bisect), the global-key search only gives the start, which is then moved while
        a neighbour compares the other way (keys ``p + a·BIG`` may round across a vertex)."""
        f, la = self.first[a], self.last[a]
        j = np.clip(np.searchsorted(self.keys, p + self.base[a] * self._BIG, side="right" if right else "left"),
                    f, la + 1)
        while True:
            prev = self.prog[np.maximum(j - 1, 0)]
            down = (j > f) & ((prev > p) if right else (prev >= p))
            if not down.any():
                break
            j = j - down
        while True:
            cur = self.prog[np.minimum(j, len(self.prog) - 1)]
            up = (j <= la) & ((cur <= p) if right else (cur < p))
            if not up.any():
                break
            j = j + up
        return j

    def _xy1(self, a: I64, p: F64) -> tuple[F64, F64]:
        """x and y of :meth:`pose1` for many agents (the same bisect and arithmetic, element by element)."""
        hi = np.minimum(np.maximum(self._bisect(a, p, right=False), self.first[a] + 1), self.last[a])
        lo = hi - 1
        dx = self.prog[hi] - self.prog[lo]
        t = p - self.prog[lo]
        return (self.x[hi] - self.x[lo]) / dx * t + self.x[lo], (self.y[hi] - self.y[lo]) / dx * t + self.y[lo]

    def _lines(self, head: F64, i0: I64, i1: I64, tail: F64 | None) -> npt.NDArray[np.object_]:
        """LineStrings ``[head] + vertices i0..i1 (inclusive) + [tail]`` (tail None: no tail), one per row."""
        n_mid = np.maximum(i1 - i0 + 1, 0)
        owner, idx = _ragged_ranges(i0, i0 + n_mid)
        per = n_mid + 1 + (tail is not None)
        start = np.concatenate([[0], np.cumsum(per)[:-1]])
        coords = np.empty((int(per.sum()), 2))
        coords[start] = head
        pos = start[owner] + 1 + (idx - i0[owner])
        coords[pos, 0], coords[pos, 1] = self.x[idx], self.y[idx]
        if tail is not None:
            coords[start + per - 1] = tail
        return shapely.linestrings(coords, indices=np.repeat(np.arange(len(i0)), per))

    def to_go_lines(self, a: I64, p: F64) -> npt.NDArray[np.object_]:
        """:meth:`to_go` of agents ``a`` as LineStrings, built together (the same vertices)."""
        if len(a) < self._FEW:
            return _line_array([self.to_go(int(i), float(q)) for i, q in zip(a.tolist(), p.tolist(), strict=True)])
        f, la = self.first[a], self.last[a]
        j = self._bisect(a, p, right=True)  # first vertex with progress > p
        none_later = j > la
        x, y = self._xy1(a, p)
        head = np.stack([np.where(none_later, self.x[la - 1], x), np.where(none_later, self.y[la - 1], y)], -1)
        i0 = np.where(none_later, la, j)
        del f
        return self._lines(head, i0, la, None)

    def trimmed_lines(self, a: I64, s: F64, e: F64) -> npt.NDArray[np.object_]:
        """:meth:`trimmed` of agents ``a`` as LineStrings, built together (the same vertices)."""
        if len(a) < self._FEW:
            return _line_array([self.trimmed(int(i), float(q), float(r))
                                for i, q, r in zip(a.tolist(), s.tolist(), e.tolist(), strict=True)])
        f, la = self.first[a], self.last[a]
        i0 = self._bisect(a, s, right=True)  # first vertex with progress > s
        i1 = self._bisect(a, e, right=False) - 1  # last vertex with progress < e
        no_front, no_tail = i0 > la, i1 < f
        xs, ys = self._xy1(a, s)
        xe, ye = self._xy1(a, e)
        # no front: the last two vertices; no tail: the first two (a head vertex and one mid vertex, no tail)
        head = np.stack([np.where(no_front, self.x[la - 1], np.where(no_tail, self.x[f], xs)),
                         np.where(no_front, self.y[la - 1], np.where(no_tail, self.y[f], ys))], -1)
        mid0 = np.where(no_front, la, np.where(no_tail, f + 1, i0))
        mid1 = np.where(no_front, la, np.where(no_tail, f + 1, i1))
        out = self._lines(head, mid0, mid1, np.stack([xe, ye], -1))
        plain = no_front | no_tail
        if plain.any():  # without the tail vertex
            out[plain] = self._lines(head[plain], mid0[plain], mid1[plain], None)
        return out

    def to_go(self, a: int, p: float) -> F64:
        """``trim_path_up_to_progress`` of one agent as an ``(n, 2)`` polyline (p clamped)."""
        f, la = int(self.first[a]), int(self.last[a])
        later = np.flatnonzero(self.prog[f : la + 1] > p) + f
        if not len(later):
            return np.stack([self.x[la - 1 : la + 1], self.y[la - 1 : la + 1]], -1)
        x, y, _ = self.pose1(a, p)
        return np.concatenate([[[x, y]], np.stack([self.x[later], self.y[later]], -1)])

    def trimmed(self, a: int, s: float, e: float) -> F64:
        """``trim_path(s, e)`` of one agent as an ``(n, 2)`` polyline (s, e clamped, s <= e)."""
        f, la = int(self.first[a]), int(self.last[a])
        prog = self.prog[f : la + 1]
        front = np.flatnonzero(prog > s)
        tail = np.flatnonzero(prog < e)
        if not len(front):
            return np.stack([self.x[la - 1 : la + 1], self.y[la - 1 : la + 1]], -1)
        if not len(tail):
            return np.stack([self.x[f : f + 2], self.y[f : f + 2]], -1)
        i0, i1 = int(front[0]) + f, int(tail[-1]) + f
        xs, ys, _ = self.pose1(a, s)
        xe, ye, _ = self.pose1(a, e)
        mid = np.stack([self.x[i0 : i1 + 1], self.y[i0 : i1 + 1]], -1)
        return np.concatenate([[[xs, ys]], mid, [[xe, ye]]])


