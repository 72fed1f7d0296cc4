"""The intersects test of the reactive IDM leader search (:mod:`metrics.traffic_idm`) decided in numpy
where it is clear: whether a part of an occupancy footprint (covered by discs) meets the flat-capped buffer of
an agent's path-to-go. Where a decision is made it is exact (conservative margins over GEOS's buffer
approximations); the rest is left to GEOS.

Frames: the global map frame, metres.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from metrics.traffic_idm_geometry import _ragged
from metrics.traffic_rails import Paths

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]


def clear_hits(paths: Paths, half_width: F64, heads: tuple[I64, I64], of: I64, discs: F64, ag: I64, pcs: F64,
               mid_prog: F64) -> npt.NDArray[np.int8]:
    """Whether each part (covered by ``discs (P, K, 3)``, radius -inf: none) intersects the flat-capped
    buffer (half the width) of agent ``ag[of]``'s path-to-go where that is clear without GEOS: 1 (some
    disc centre, a point of the part, lies within ``r - m`` of a to-go segment after the head, its
    projection inside the segment: inside that segment's rectangle, which the buffer holds), 0 (every disc
    is farther than ``r + m`` from every to-go segment), -1 (undecided: GEOS decides). The margin
    ``m = 0.05 r + 1e-6`` covers GEOS's buffer approximations (input simplified by 0.01 r, round joins as
    chords inside the arcs); the clip of the path-to-go only cuts it more than 1 m away from every part.
    ``heads``: per agent, the first chunk of its path-to-go (:meth:`Paths.to_go_chunks`) and its first
    vertex after the progress (``Paths._bisect``, right), found once per level. ``mid_prog``: where finite,
    the middle disc centre lies on the agent's path at that progress (a part of an agent on the same lane):
    the segments around it are tried first (the same test on fewer segments; such parts are nearly always
    inside), the other parts take the full test (nearly always far)."""
    n_p = len(of)
    out = np.full(n_p, -1, dtype=np.int8)
    if not n_p:
        return out
    inside = np.zeros(n_p, dtype=bool)
    on = np.flatnonzero(np.isfinite(mid_prog))
    if len(on):
        inside[on] = _inside_near(paths, half_width, heads, of[on], discs[on, discs.shape[1] // 2, :2], ag,
                                  mid_prog[on])
    out[inside] = 1
    rest = np.flatnonzero(~inside)
    if len(rest):
        far, inside = _segment_tests(paths, half_width, heads, of[rest], discs[rest], ag, pcs)
        out[rest[far]] = 0
        out[rest[inside]] = 1
    return out


def _inside_near(paths: Paths, half_width: F64, heads: tuple[I64, I64], of: I64, xy: F64, ag: I64, prog: F64) -> B:
    """The ``inside`` test of :func:`_segment_tests` for points ``xy`` on agent ``ag[of]``'s path at
    progress ``prog``, on the three segments around that progress only."""
    a = ag[of]
    r = half_width[of]
    m = 0.05 * r + 1e-6
    sk = (paths._bisect(a, prog, right=True) - 1)[:, None] + np.array([-1, 0, 1])[None, :]
    ok = (sk >= heads[1][of][:, None]) & (sk >= paths.first[a][:, None]) & (sk < paths.last[a][:, None])
    sk = np.clip(sk, 0, len(paths.x) - 2)
    ax, ay = paths.x[sk], paths.y[sk]
    vx, vy = paths.x[sk + 1] - ax, paths.y[sk + 1] - ay
    cx, cy = xy[:, 0, None] - ax, xy[:, 1, None] - ay
    t = (cx * vx + cy * vy) / (vx * vx + vy * vy)
    tc = np.clip(t, 0.0, 1.0)
    ex, ey = cx - tc * vx, cy - tc * vy
    return (ok & (t >= 0.0) & (t <= 1.0) & (ex * ex + ey * ey <= ((r - m) ** 2)[:, None])).any(1)


def _segment_tests(paths: Paths, half_width: F64, heads: tuple[I64, I64], of: I64, discs: F64, ag: I64,
                   pcs: F64) -> tuple[B, B]:
    """``(far, inside)`` of :func:`clear_hits` for parts covered by ``discs (P, K, 3)``, on squared
    distances (the margins dwarf their rounding)."""
    n_p = len(of)
    r = half_width[of]
    m = 0.05 * r + 1e-6
    valid = discs[:, :, 2] > -np.inf
    bx0 = np.where(valid, discs[:, :, 0] - discs[:, :, 2], np.inf).min(1) - r - m
    by0 = np.where(valid, discs[:, :, 1] - discs[:, :, 2], np.inf).min(1) - r - m
    bx1 = np.where(valid, discs[:, :, 0] + discs[:, :, 2], -np.inf).max(1) + r + m
    by1 = np.where(valid, discs[:, :, 1] + discs[:, :, 2], -np.inf).max(1) + r + m
    pp, cc = paths.chunks_near(ag, pcs, of, np.stack([bx0, by0, bx1, by1], -1), heads[0])
    # chunks whose box is farther than the reach from every disc decide nothing (neither far nor inside)
    reach = discs[:, :, 2] + (r + m)[:, None]
    cb = paths.chunk_box[cc]
    dx = np.maximum(np.maximum(cb[:, 0, None] - discs[pp, :, 0], discs[pp, :, 0] - cb[:, 2, None]), 0.0)
    dy = np.maximum(np.maximum(cb[:, 1, None] - discs[pp, :, 1], discs[pp, :, 1] - cb[:, 3, None]), 0.0)
    rp = reach[pp]
    keep = ((dx * dx + dy * dy <= rp * rp) & valid[pp]).any(1)
    pp, cc = pp[keep], cc[keep]
    ps, sk = _ragged(paths.chunk_lo[cc], paths.chunk_hi[cc])
    sp = pp[ps]  # the part of each segment [sk, sk + 1]
    inner = sk >= heads[1][of[sp]]  # after the head: a segment of the path-to-go
    ax, ay = paths.x[sk][:, None], paths.y[sk][:, None]
    vx, vy = paths.x[sk + 1][:, None] - ax, paths.y[sk + 1][:, None] - ay
    cx, cy = discs[sp, :, 0] - ax, discs[sp, :, 1] - ay
    t = (cx * vx + cy * vy) / (vx * vx + vy * vy)
    tc = np.clip(t, 0.0, 1.0)
    ex, ey = cx - tc * vx, cy - tc * vy
    dist2 = ex * ex + ey * ey
    near2 = np.full((n_p, discs.shape[1]), np.inf)
    if len(sp):  # segments come grouped by part
        first = np.flatnonzero(np.r_[True, sp[1:] != sp[:-1]])
        near2[sp[first]] = np.minimum.reduceat(dist2, first, axis=0)
    far = ((near2 > reach * reach) | ~valid).all(1)
    inside = np.zeros(n_p, dtype=bool)
    rin2 = ((r - m) ** 2)[sp][:, None]
    inside[sp[(inner[:, None] & (t >= 0.0) & (t <= 1.0) & (dist2 <= rin2) & valid[sp]).any(1)]] = True
    return far, inside
