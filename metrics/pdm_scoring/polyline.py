"""Arc-length projection onto polylines, bit-equal to GEOS ``LengthIndexedLine.project`` (shapely
``line_locate_point``), for many lines and points in one call.

GEOS walks every segment of the line for every point; here segments are grouped into chunks of
``CHUNK_SEGMENTS`` with bounding boxes, and only chunks whose box may hold the nearest segment are measured,
with GEOS's own floating-point expressions (``Distance::pointToSegment``, ``LineSegment::projectionFactor``,
the running sum of segment lengths). The first segment at the smallest distance wins, as in GEOS.

Frames: any planar frame (PDMS: the global map frame), metres.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

#: Segments per bounding-box chunk.
CHUNK_SEGMENTS = 32


def point_segment_distance(px: F64, py: F64, a: F64, dxy: F64, len2: F64, b: F64) -> F64:
    """GEOS ``Distance::pointToSegment`` with its exact expressions, broadcast over points and segments.

    Args:
        px, py: point coordinates; a, b: ``(..., 2)`` segment ends; dxy: ``b - a``; len2: squared length.
    """
    ax, ay, bx, by = a[..., 0], a[..., 1], b[..., 0], b[..., 1]
    dx, dy = dxy[..., 0], dxy[..., 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        r = ((px - ax) * dx + (py - ay) * dy) / len2
        s = ((ay - py) * dx - (ax - px) * dy) / len2
    d_a = np.sqrt((px - ax) * (px - ax) + (py - ay) * (py - ay))
    d_b = np.sqrt((px - bx) * (px - bx) + (py - by) * (py - by))
    d = np.where(r <= 0.0, d_a, np.where(r >= 1.0, d_b, np.abs(s) * np.sqrt(len2)))
    # A zero-length segment measures the distance to its point.
    return np.where((ax == bx) & (ay == by), d_a, d)


def locate_on_polylines(vertices_xy: npt.ArrayLike, line_starts: npt.ArrayLike, line: npt.ArrayLike,
                        points_xy: npt.ArrayLike) -> F64:
    """Arc length along line ``line[q]`` of the point of that line nearest to ``points_xy[q]``.

    Args:
        vertices_xy: ``(V, 2)`` the vertices of all lines, concatenated in line order.
        line_starts: ``(L + 1,)`` offsets of each line's first vertex in ``vertices_xy`` (and ``V`` last); every
            line needs at least two vertices.
        line: ``(Q,)`` line index of each query.
        points_xy: ``(Q, 2)`` query points (finite).

    Returns:
        ``(Q,)`` arc lengths in metres, equal to ``shapely.line_locate_point(lines[line], points)``.

    Raises:
        ValueError: a line of fewer than two vertices, or mismatched shapes.
    """
    xy = np.asarray(vertices_xy, dtype=np.float64).reshape(-1, 2)
    starts = np.asarray(line_starts, dtype=np.int64)
    q_line = np.asarray(line, dtype=np.int64).reshape(-1)
    p = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
    if len(p) != len(q_line):
        raise ValueError(f"locate_on_polylines: {len(q_line)} line indices for {len(p)} points")
    n_vert = np.diff(starts)
    if np.any(n_vert < 2):
        raise ValueError("locate_on_polylines: every line needs at least two vertices")
    if len(p) == 0:
        return np.zeros(0)
    # Segments of every line: the vertex pairs that do not straddle two lines.
    n_seg = n_vert - 1
    seg_start = np.concatenate([[0], np.cumsum(n_seg)])
    first_vertex = np.repeat(starts[:-1] - seg_start[:-1], n_seg) + np.arange(seg_start[-1])
    a, b = xy[first_vertex], xy[first_vertex + 1]
    dxy = b - a
    len2 = dxy[:, 0] * dxy[:, 0] + dxy[:, 1] * dxy[:, 1]
    seg_len = np.sqrt(len2)
    # GEOS's measure at a segment start: the running sum of the line's segment lengths, line by line.
    measure = np.empty(len(seg_len))
    for i in range(len(n_seg)):
        lo, hi = seg_start[i], seg_start[i + 1]
        measure[lo] = 0.0
        measure[lo + 1 : hi] = np.cumsum(seg_len[lo : hi - 1])
    # Chunks of CHUNK_SEGMENTS segments within each line, with bounding boxes.
    n_chunk = -(-n_seg // CHUNK_SEGMENTS)
    chunk_start = np.concatenate([[0], np.cumsum(n_chunk)])
    chunk_seg = np.repeat(seg_start[:-1] - chunk_start[:-1] * CHUNK_SEGMENTS, n_chunk) + (
        np.arange(chunk_start[-1]) * CHUNK_SEGMENTS)
    chunk_end = np.repeat(seg_start[1:], n_chunk)
    lo_xy, hi_xy = np.minimum(a, b), np.maximum(a, b)
    c_lo = np.minimum.reduceat(lo_xy, chunk_seg, axis=0)
    c_hi = np.maximum.reduceat(hi_xy, chunk_seg, axis=0)
    c_first = a[chunk_seg]
    # (query, chunk) pairs of the query's line, queries in order and chunks in line order.
    counts = n_chunk[q_line]
    pq = np.repeat(np.arange(len(p)), counts)
    pc = np.repeat(chunk_start[q_line] - (np.cumsum(counts) - counts), counts) + np.arange(counts.sum())
    px, py = p[pq, 0], p[pq, 1]
    gx = np.maximum(np.maximum(c_lo[pc, 0] - px, px - c_hi[pc, 0]), 0.0)
    gy = np.maximum(np.maximum(c_lo[pc, 1] - py, py - c_hi[pc, 1]), 0.0)
    lower = np.sqrt(gx * gx + gy * gy)
    fx, fy = px - c_first[pc, 0], py - c_first[pc, 1]
    group = np.concatenate([[0], np.cumsum(counts)[:-1]])
    upper = np.minimum.reduceat(np.sqrt(fx * fx + fy * fy), group)
    # The slack keeps a chunk whose true minimum ties the bound up to rounding.
    keep = lower <= upper[pq] * (1.0 + 1e-9) + 1e-9
    pq, pc = pq[keep], pc[keep]
    seg = chunk_seg[pc][:, None] + np.arange(CHUNK_SEGMENTS)[None, :]
    valid = seg < chunk_end[pc][:, None]
    seg = np.where(valid, seg, 0)
    d = point_segment_distance(p[pq, 0][:, None], p[pq, 1][:, None], a[seg], dxy[seg], len2[seg], b[seg])
    d = np.where(valid, d, np.inf)
    # First minimum per query over its chunks in line order.
    pair_best = np.argmin(d, axis=1)
    pair_min = d[np.arange(len(pq)), pair_best]
    new_query = np.empty(len(pq), dtype=bool)
    new_query[0], new_query[1:] = True, pq[1:] != pq[:-1]
    query_min = np.minimum.reduceat(pair_min, np.flatnonzero(new_query))
    hit = np.flatnonzero(pair_min == query_min[np.cumsum(new_query) - 1])
    first = np.empty(len(hit), dtype=bool)
    first[0], first[1:] = True, pq[hit][1:] != pq[hit][:-1]
    hit = hit[first]
    i = np.empty(len(p), dtype=np.int64)
    i[pq[hit]] = seg[hit, pair_best[hit]]
    x, y = p[:, 0], p[:, 1]
    sa, sd, sb = a[i], dxy[i], b[i]
    with np.errstate(invalid="ignore", divide="ignore"):
        factor = ((x - sa[:, 0]) * sd[:, 0] + (y - sa[:, 1]) * sd[:, 1]) / len2[i]
    factor = np.where((x == sa[:, 0]) & (y == sa[:, 1]), 0.0, factor)
    factor = np.where((x == sb[:, 0]) & (y == sb[:, 1]), 1.0, factor)
    start, length = measure[i], seg_len[i]
    return np.where(factor <= 0.0, start, np.where(factor <= 1.0, start + factor * length, start + length))
