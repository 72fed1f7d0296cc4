"""PDM-Closed's lateral paths: a discrete (x, y, heading) polyline with arc-length lookups.

Re-implements NAVSIM v1.1 ``pdm_planner/utils/pdm_path.py::PDMPath`` and
``pdm_geometry_utils.parallel_discrete_path`` with the same numerics, so that proposals built on these
paths equal the official ones to the last bit where the official code is deterministic:

- arc length = cumulative sum of ``sqrt(dx² + dy²)`` between consecutive vertices (zero-length segments kept);
- interpolation = scipy ``interp1d(kind="linear")`` semantics over the vertices with unwrapped headings,
  distances clipped to ``[1e-5, length]`` (the 1e-5 steps over a duplicated first vertex), heading wrapped back
  with ``arctan2(sin, cos)`` and NaN replaced by 0;
- projection = GEOS ``LineString.project`` (shapely ``line_locate_point``);
- the corridor substring keeps the path's own vertices between two distances (not the exact end points).

All coordinates are global (map frame): metres and radians, headings counter-clockwise.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import numpy.typing as npt
import shapely
import shapely.ops

from metrics.pdm_scoring.polyline import point_segment_distance

F64 = npt.NDArray[np.float64]


def parallel_path(states: npt.ArrayLike, offset_m: float) -> F64:
    """A discrete path shifted sideways by ``offset_m`` (positive = to the left of the driving direction).

    Each vertex moves along its own heading + π/2 and keeps its heading, exactly as NAVSIM's
    ``parallel_discrete_path`` (so the shifted path is not re-sampled and its spacing changes on curves).

    Args:
        states: ``(K, 3)`` path vertices (x, y, heading), global frame.
        offset_m: lateral offset in metres.

    Returns:
        ``(K, 3)`` shifted vertices.
    """
    s = np.asarray(states, dtype=np.float64)
    theta = s[:, 2] + np.pi / 2
    out = np.empty_like(s)
    out[:, 0] = s[:, 0] + np.cos(theta) * offset_m
    out[:, 1] = s[:, 1] + np.sin(theta) * offset_m
    out[:, 2] = s[:, 2]
    return out


class DiscretePath:
    """A path through ``(K, 3)`` vertices (x, y, heading) with NAVSIM ``PDMPath`` semantics.

    Args:
        states: ``(K >= 2, 3)`` vertices in driving order, global frame (metres, radians).

    Raises:
        ValueError: fewer than two vertices, or non-finite values.
    """

    def __init__(self, states: npt.ArrayLike) -> None:
        s = np.array(states, dtype=np.float64)
        if s.ndim != 2 or s.shape[1] != 3 or s.shape[0] < 2:
            raise ValueError(f"DiscretePath: expected (K >= 2, 3) vertices, got shape {s.shape}")
        if not np.all(np.isfinite(s)):
            raise ValueError("DiscretePath: vertices must be finite")
        s[:, 2] = np.unwrap(s[:, 2], axis=0)
        self.states: F64 = s
        d = np.diff(s[:, :2], axis=0)
        # Same reduction as NAVSIM's np.linalg.norm over the stacked (2, K-1) differences.
        step = np.sqrt(d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1])
        self.progress: F64 = np.cumsum(np.append(0.0, step), dtype=np.float64)
        self.length = float(self.progress[-1])
        # Segment data for project(): GEOS's own expressions, and chunk boxes to skip far segments.
        self._a = s[:-1, :2]
        self._b = s[1:, :2]
        self._dxy = self._b - self._a
        self._len2 = self._dxy[:, 0] * self._dxy[:, 0] + self._dxy[:, 1] * self._dxy[:, 1]
        self._seg_len = step
        n_seg = len(step)
        starts = np.arange(0, n_seg, _CHUNK)
        lo = np.minimum(self._a, self._b)
        hi = np.maximum(self._a, self._b)
        self._chunk_lo = np.minimum.reduceat(lo, starts, axis=0)
        self._chunk_hi = np.maximum.reduceat(hi, starts, axis=0)
        self._chunk_first = self._a[starts]

    @cached_property
    def linestring(self) -> shapely.LineString:
        """The path as a shapely line (built on first use; :meth:`project` does not need it)."""
        return shapely.linestrings(self.states[:, :2])

    def interpolate(self, distances_m: npt.ArrayLike) -> F64:
        """Poses at arc lengths along the path.

        Args:
            distances_m: ``(...)`` arc lengths in metres (clipped into ``[1e-5, length]``).

        Returns:
            ``(..., 3)`` poses (x, y, heading in (-π, π]).
        """
        d = np.asarray(distances_m, dtype=np.float64)
        flat = np.clip(d.reshape(-1), 1e-5, self.length)
        x = self.progress
        # scipy interp1d "linear": searchsorted(left), clipped to [1, K-1], slope times offset plus the lower y.
        hi = np.clip(np.searchsorted(x, flat), 1, len(x) - 1)
        lo = hi - 1
        x_lo = x[lo]
        y_lo = self.states[lo]
        slope = (self.states[hi] - y_lo) / (x[hi] - x_lo)[:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            out = slope * (flat - x_lo)[:, None] + y_lo
        out[:, 2] = np.arctan2(np.sin(out[:, 2]), np.cos(out[:, 2]))
        out[np.isnan(out)] = 0.0
        return out.reshape(d.shape + (3,))

    def project(self, points_xy: npt.ArrayLike) -> F64:
        """Arc length of the closest path point to each of ``(..., 2)`` points (see :class:`PathBundle`)."""
        p = np.asarray(points_xy, dtype=np.float64)
        return self._bundle.project(np.zeros(p.shape[:-1], dtype=np.int64), p)

    @cached_property
    def _bundle(self) -> PathBundle:
        return PathBundle([self])

    def substring(self, start_m: float, end_m: float) -> shapely.Geometry:
        """The path between two arc lengths, as PDM-Closed cuts its driving corridor.

        The vertices whose arc length lies in ``[start, end]`` (both clipped into ``[0, length]``) when there are
        at least two, else shapely's exact ``substring`` (a point when start equals end).
        """
        # np.clip's value for a scalar (NaN stays NaN: max / min return their first argument then).
        start = min(max(float(start_m), 0.0), self.length)
        end = min(max(float(end_m), 0.0), self.length)
        inside = (start <= self.progress) & (self.progress <= end)
        if np.count_nonzero(inside) > 1:
            return shapely.linestrings(self.states[inside, :2])
        return shapely.ops.substring(self.linestring, start, end)


class PathBundle:
    """Paths with the same number of vertices, stacked for projections onto several of them in one call.

    Args:
        paths: the paths (e.g. a centerline and its parallel copies).
    """

    def __init__(self, paths: list[DiscretePath]) -> None:
        if len({len(p.progress) for p in paths}) != 1:
            raise ValueError("PathBundle: all paths must have the same number of vertices")
        self.num_paths = len(paths)
        for name in ("progress", "states", "_a", "_b", "_dxy", "_len2", "_seg_len", "_chunk_lo", "_chunk_hi",
                     "_chunk_first"):
            setattr(self, name, np.stack([getattr(p, name) for p in paths]))
        # Chunk boxes and first vertices, x and y apart and contiguous per path (project() compares every
        # point with every chunk of its path: broadcasting, no gathers).
        self._chunk_xy = np.ascontiguousarray(np.stack(
            [self._chunk_lo[..., 0], self._chunk_hi[..., 0], self._chunk_first[..., 0],
             self._chunk_lo[..., 1], self._chunk_hi[..., 1], self._chunk_first[..., 1]], axis=1))
        # The same, kind-major, for project()'s gathers: (6, paths * chunks).
        self._chunk_by_kind = np.ascontiguousarray(np.moveaxis(self._chunk_xy, 1, 0)).reshape(6, -1)
        # The same for groups of _SUPER chunks (their boxes hold the chunks' boxes; their first vertex is their
        # first chunk's): a first pass over these leaves few chunks to compare.
        n_chunks = self._chunk_xy.shape[2]
        starts = np.arange(0, n_chunks, _SUPER)
        cx = self._chunk_xy
        self._super_xy = np.ascontiguousarray(np.stack(
            [np.minimum.reduceat(cx[:, 0], starts, axis=1), np.maximum.reduceat(cx[:, 1], starts, axis=1),
             cx[:, 2, starts], np.minimum.reduceat(cx[:, 3], starts, axis=1),
             np.maximum.reduceat(cx[:, 4], starts, axis=1), cx[:, 5, starts]], axis=1))
        self._super_by_kind = np.ascontiguousarray(np.moveaxis(self._super_xy, 1, 0))  # (6, paths, groups)

    def project(self, which: npt.ArrayLike, points_xy: npt.ArrayLike) -> F64:
        """Arc length along path ``which[...]`` of the closest path point to each of ``(..., 2)`` points.

        Bit-equal to GEOS ``LengthIndexedLine.project`` (shapely ``line_locate_point``): the first segment with
        the smallest point-to-segment distance wins, and the measure is its start plus the clamped projection
        factor times its length, with GEOS's own floating-point expressions. Segments are visited in chunks
        whose bounding box may hold the minimum, so far parts of a long path cost nothing.
        """
        p = np.asarray(points_xy, dtype=np.float64)
        shape = p.shape[:-1]
        p = p.reshape(-1, 2)
        w = np.broadcast_to(np.asarray(which, dtype=np.int64), shape).reshape(-1)
        if len(p) == 0:
            return np.zeros(shape, dtype=np.float64)
        pt, ch = self._candidate_chunks(p, w)
        seg = ch[:, None] * _CHUNK + np.arange(_CHUNK)[None, :]
        valid = seg < self._seg_len.shape[1]
        seg = np.where(valid, seg, 0)
        wp = w[pt][:, None]
        d = point_segment_distance(p[pt, 0][:, None], p[pt, 1][:, None], self._a[wp, seg], self._dxy[wp, seg],
                                    self._len2[wp, seg], self._b[wp, seg])
        d = np.where(valid, d, np.inf)
        # First minimum per point over its chunks in path order (pairs are sorted by point, then chunk).
        pair_best = np.argmin(d, axis=1)
        pair_min = d[np.arange(len(pt)), pair_best]
        new_point = np.empty(len(pt), dtype=bool)
        new_point[0], new_point[1:] = True, pt[1:] != pt[:-1]
        point_min = np.minimum.reduceat(pair_min, np.flatnonzero(new_point))
        hit = np.flatnonzero(pair_min == point_min[pt])
        keep = np.empty(len(hit), dtype=bool)
        keep[0], keep[1:] = True, pt[hit][1:] != pt[hit][:-1]
        first_hit = hit[keep]
        i = seg[first_hit, pair_best[first_hit]]
        x, y = p[:, 0], p[:, 1]
        a, dxy, b = self._a[w, i], self._dxy[w, i], self._b[w, i]
        len2, seg_len, start = self._len2[w, i], self._seg_len[w, i], self.progress[w, i]
        with np.errstate(invalid="ignore", divide="ignore"):
            factor = ((x - a[:, 0]) * dxy[:, 0] + (y - a[:, 1]) * dxy[:, 1]) / len2
        factor = np.where((x == a[:, 0]) & (y == a[:, 1]), 0.0, factor)
        factor = np.where((x == b[:, 0]) & (y == b[:, 1]), 1.0, factor)
        out = np.where(factor <= 0.0, start, np.where(factor <= 1.0, start + factor * seg_len, start + seg_len))
        return out.reshape(shape)

    def _candidate_chunks(self, p: F64, w: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.int64],
                                                                            npt.NDArray[np.int64]]:
        """``(point, chunk)`` pairs, sorted by point then chunk, of the chunks that may hold a point's nearest
        segment: the lower bound (distance to the chunk's box) is within the upper bound (the distance to the
        nearest first vertex of a candidate chunk, a point on the path). All points in one pass.

        Candidate chunks are those of the groups of ``_SUPER`` chunks whose box is within the distance to the
        nearest group's first vertex; a chunk of another group lies farther than that, so farther than the
        nearest segment. Any set of chunks that holds every chunk within the nearest segment's distance gives
        the same projection (the first segment at the smallest distance), and this set does.
        """
        # All points at once: each against its own path's groups, then chunks (a bundle's paths have the same
        # number of chunks, so no padding), pairs in point order, then chunk order.
        n_chunks = self._chunk_xy.shape[2]
        px, py = p[:, 0:1], p[:, 1:2]
        lower, first = _box_and_vertex_distances(px, py, self._super_by_kind[:, w])  # (n, groups)
        q, grp = np.nonzero(lower <= first.min(axis=1)[:, None] * (1.0 + 1e-9) + 1e-9)
        ch = (grp[:, None] * _SUPER + np.arange(_SUPER)[None, :]).reshape(-1)
        q = np.repeat(q, _SUPER)
        valid = ch < n_chunks
        q, ch = q[valid], ch[valid]
        # Pair by pair: the point against its chunk (each of the six box rows gathered contiguously).
        lower, first = _box_and_vertex_distances(p[q, 0], p[q, 1], self._chunk_by_kind[:, w[q] * n_chunks + ch])
        upper = np.full(len(p), np.inf)
        np.minimum.at(upper, q, first)
        # The slack keeps a chunk whose true minimum ties the bound up to rounding.
        keep = lower <= upper[q] * (1.0 + 1e-9) + 1e-9
        return q[keep], ch[keep]


#: Segments per bounding-box chunk of a path (project() skips chunks that cannot hold the nearest segment).
_CHUNK = 16
#: Chunks per group in project()'s first pass.
_SUPER = 8


def _box_and_vertex_distances(px: F64, py: F64, boxes: F64) -> tuple[F64, F64]:
    """Distances of points to boxes and to their first vertices; ``boxes[k]`` for k = 0 … 5 are lo x, hi x,
    first x, lo y, hi y, first y, broadcast against ``px``, ``py`` (``(n, 1)`` points against ``(6, n, m)``
    boxes, or ``(n,)`` points against ``(6, n)``: point i with box i)."""
    lo_x, hi_x, first_x, lo_y, hi_y, first_y = (boxes[k] for k in range(6))
    gx = np.maximum(np.maximum(lo_x - px, px - hi_x), 0.0)
    gy = np.maximum(np.maximum(lo_y - py, py - hi_y), 0.0)
    fx, fy = px - first_x, py - first_y
    return np.sqrt(gx * gx + gy * gy), np.sqrt(fx * fx + fy * fy)


#: Segments of a corridor's line per piece box (``corridor_pieces``).
_PIECE_SEGMENTS = 8


def corridor_pieces(lines: npt.NDArray[np.object_], half_width_m: float) -> F64:
    """Boxes that together cover each line's square-capped buffer: ``(L, P, 4)`` min x, min y, max x, max y.

    The line's segments are taken ``_PIECE_SEGMENTS`` at a time; each piece's bounding box is widened by
    ``half_width × sqrt(2)`` (the farthest a buffer point lies from its line: a square cap's corner; GEOS's round
    joins lie within ``half_width``) plus 1 µm for rounding. A geometry that meets no box of a line does not
    meet its buffer. Padding rows are NaN (they meet nothing). A one-point line is measured as the segment from
    that point to itself. All lines in one pass (no loop over lines).
    """
    coords, idx = shapely.get_coordinates(lines, return_index=True)
    margin = half_width_m * np.sqrt(2.0) + 1e-6
    n_lines = len(lines)
    count = np.bincount(idx, minlength=n_lines) if len(idx) else np.zeros(n_lines, dtype=np.int64)
    first = np.concatenate([[0], np.cumsum(count)[:-1]]).astype(np.int64)
    n_seg = np.where(count == 1, 1, np.maximum(count - 1, 0))
    n_piece = -(-n_seg // _PIECE_SEGMENTS)
    out = np.full((n_lines, int(n_piece.max(initial=0)), 4), np.nan)
    if n_seg.sum() == 0:
        return out
    # Segment k of line i joins its vertices k and min(k + 1, count - 1); a piece starts every _PIECE_SEGMENTS.
    line = np.repeat(np.arange(n_lines), n_seg)
    k = np.arange(n_seg.sum()) - np.repeat(np.cumsum(n_seg) - n_seg, n_seg)
    a = coords[first[line] + k]
    b = coords[first[line] + np.minimum(k + 1, count[line] - 1)]
    seg_lo, seg_hi = np.minimum(a, b), np.maximum(a, b)
    starts = np.flatnonzero(k % _PIECE_SEGMENTS == 0)
    lo = np.minimum.reduceat(seg_lo, starts) - margin
    hi = np.maximum.reduceat(seg_hi, starts) + margin
    out[line[starts], k[starts] // _PIECE_SEGMENTS] = np.concatenate([lo, hi], axis=1)
    return out
