"""Per-state ego areas against the drivable map, batched over proposals and scenes (specs/navsim.md §4.3).

The official ``PDMScorer._calculate_ego_area`` tests every ego corner and centre against every polygon of
the drivable map with ``shapely.vectorized.contains`` (strict interior), polygon by polygon. Here the same
strict test (``shapely.contains_xy`` on the original polygons, prepared) runs only on the (point, polygon)
pairs that pass a bounding-box and an aligned-rectangle filter, found with numpy over all scenes of a batch at
once. A map polygon near several scenes of a batch is handled once (``MapPolygons.representative``); the
rectangle of a polygon of many vertices (a long road) is that of its piece clipped to the box of nearby
rows' points, which keeps the filter tight. The result is the same boolean per (point, polygon) as the
official one; the flags derived from it follow the official definitions:

- MULTIPLE_LANES: more than one LANE/LANE_CONNECTOR polygon holds at least one corner, and none holds all 4.
- NON_DRIVABLE_AREA: fewer than 4 corners lie each in some ROADBLOCK / INTERSECTION / CARPARK_AREA polygon.
- ONCOMING_TRAFFIC: the centre lies in no on-route LANE/LANE_CONNECTOR polygon.

It also returns whether the rear axle lies strictly inside an INTERSECTION polygon (TTC's ``is_in_layer``,
an STR-tree ``within`` query: the same strict interior).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely

from metrics.pdm_scoring.geometry import CENTER

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]


class EgoArea(enum.IntFlag):
    """Bits of ``ProposalScores.ego_areas`` (the official ``EgoAreaIndex``, as flags)."""

    MULTIPLE_LANES = 1
    NON_DRIVABLE_AREA = 2
    ONCOMING_TRAFFIC = 4


@dataclass(frozen=True)
class MapPolygons:
    """The drivable-map polygons of every scene of a batch, concatenated.

    Attributes:
        geoms: ``(N,)`` shapely polygons, global frame.
        scene: ``(N,)`` index of the scene each polygon belongs to.
        bounds: ``(N, 4)`` min x, min y, max x, max y.
        is_lane: LANE or LANE_CONNECTOR (the multiple-lanes test).
        is_drivable: ROADBLOCK, INTERSECTION or CARPARK_AREA (the drivable-area test).
        is_route_lane: a lane/lane connector whose id is on the route (the oncoming test).
        is_intersection: INTERSECTION (TTC's "ego in intersection").
        representative: ``(N,)`` for each polygon the index of an equal polygon (the same for all polygons
            equal to each other, e.g. one map polygon near several scenes), whose geometry is tested in its
            place; None: the first occurrence of the same Python object.
    """

    geoms: npt.NDArray[np.object_]
    scene: I64
    bounds: F64
    is_lane: B
    is_drivable: B
    is_route_lane: B
    is_intersection: B
    representative: I64 | None = None


@dataclass(frozen=True)
class EgoAreas:
    """Map flags per proposal row and state. All arrays ``(R, T)``."""

    multiple_lanes: B
    non_drivable: B
    oncoming: B
    rear_axle_in_intersection: B

    @property
    def bits(self) -> npt.NDArray[np.uint8]:
        """``(R, T)`` ``EgoArea`` bit flags."""
        return (
            self.multiple_lanes * np.uint8(EgoArea.MULTIPLE_LANES)
            | self.non_drivable * np.uint8(EgoArea.NON_DRIVABLE_AREA)
            | self.oncoming * np.uint8(EgoArea.ONCOMING_TRAFFIC)
        ).astype(np.uint8)


def same_scene_pairs(row_scene: I64, item_scene: I64) -> tuple[I64, I64]:
    """Every (row, item) pair whose scenes agree, rows in order and items in their order within a scene."""
    order = np.argsort(item_scene, kind="stable")
    n_scenes = int(max(row_scene.max(initial=0), item_scene.max(initial=0))) + 1
    start = np.searchsorted(item_scene[order], np.arange(n_scenes + 1))
    counts = start[row_scene + 1] - start[row_scene]
    rows = np.repeat(np.arange(len(row_scene)), counts)
    items = order[
        np.repeat(start[row_scene] - (np.cumsum(counts) - counts), counts) + np.arange(counts.sum())
    ]
    return rows, items


def polygon_frames(geoms: npt.NDArray[np.object_]) -> F64:
    """A bounding rectangle per polygon, aligned with the principal axis of its vertices: a tight prefilter
    for long, thin, arbitrarily oriented lanes and roadblocks (any orientation would be correct).

    Returns:
        ``(N, 8)``: origin x, y (the first vertex), axis cos, sin, then the extents u_min, u_max, v_min,
        v_max of the vertices along (cos, sin) and (-sin, cos) from the origin, widened by a micrometre so
        that rounding never drops a point that the polygon contains. Empty geometries get NaN (no point
        passes).
    """
    n = len(geoms)
    out = np.full((n, 8), np.nan)
    xy, idx = shapely.get_coordinates(geoms, return_index=True)
    if len(xy) == 0:
        return out
    has, idx = np.unique(idx, return_inverse=True)  # only geometries with coordinates, renumbered
    first = np.searchsorted(idx, np.arange(len(has)))
    origin = xy[first]
    rel = xy - origin[idx]
    count = np.diff(np.append(first, len(xy)))
    mx = np.add.reduceat(rel[:, 0], first) / count
    my = np.add.reduceat(rel[:, 1], first) / count
    cx, cy = rel[:, 0] - mx[idx], rel[:, 1] - my[idx]
    angle = 0.5 * np.arctan2(
        2.0 * np.add.reduceat(cx * cy, first),
        np.add.reduceat(cx * cx, first) - np.add.reduceat(cy * cy, first),
    )
    cos, sin = np.cos(angle), np.sin(angle)
    u = rel[:, 0] * cos[idx] + rel[:, 1] * sin[idx]
    v = rel[:, 1] * cos[idx] - rel[:, 0] * sin[idx]
    pad = 1e-6
    out[has, 0:2], out[has, 2], out[has, 3] = origin, cos, sin
    out[has, 4] = np.minimum.reduceat(u, first) - pad
    out[has, 5] = np.maximum.reduceat(u, first) + pad
    out[has, 6] = np.minimum.reduceat(v, first) - pad
    out[has, 7] = np.maximum.reduceat(v, first) + pad
    return out


def _clip_rect(geoms: npt.NDArray[np.object_], box: F64) -> npt.NDArray[np.object_]:
    """``shapely.clip_by_rect`` of each polygon to its own box ``(N, 4)`` (the public function takes one box)."""
    try:  # the ufunc behind clip_by_rect broadcasts its box arguments
        return shapely.lib.clip_by_rect(geoms, box[:, 0], box[:, 1], box[:, 2], box[:, 3])
    except (AttributeError, TypeError):
        return np.array([shapely.clip_by_rect(g, *b.tolist()) for g, b in zip(geoms, box, strict=True)],
                        dtype=object)


def group_frames(geoms: npt.NDArray[np.object_], poly: I64, lo: F64, hi: F64) -> tuple[I64, F64]:
    """Prefilter frames for (point set, polygon) pairs: a ``polygon_frames`` rectangle per group of pairs.

    Pairs of a polygon share one frame. For a polygon of many vertices (a long road), whose whole-polygon
    rectangle would be loose, the pairs are grouped by the ``_CLIP_CELL_M`` cell of their box centre and each
    group's frame is that of the polygon clipped to the group's box of points (widened by
    ``_CLIP_MARGIN_M``). Every point of a pair's set that lies in the polygon lies in the pair's frame: the
    clipped piece holds the polygon's part within the box (its new vertices are rounded by ~1e-10 m, far within
    the frames' 1e-6 m padding), and the points lie inside the box.

    Args:
        geoms: ``(N,)`` polygons.
        poly: ``(n,)`` polygon of each pair; lo, hi: ``(n, 2)`` min / max x, y of the pair's points.

    Returns:
        ``(group of each pair (n,), frames (G, 8))``.
    """
    used, which = _unique_inverse(poly, len(geoms))
    big = shapely.get_num_coordinates(geoms[used]) > _CLIP_MIN_VERTICES
    cell = np.floor((lo + hi) / (2.0 * _CLIP_CELL_M)).astype(np.int64)
    if len(cell):
        cell -= np.array([cell[:, 0].min(), cell[:, 1].min()])  # (per column: faster than axis=0)
    cell[~big[which]] = 0  # small polygons: one whole-polygon frame
    n_cells = int(cell.max(initial=0)) + 1  # per axis: the span of the points' cells
    uniq, group = _unique_inverse((which * n_cells + cell[:, 0]) * n_cells + cell[:, 1], len(used) * n_cells * n_cells)
    keys = uniq // (n_cells * n_cells)  # the polygon (index into ``used``) of each group
    n_groups = len(uniq)
    # Per group the box of its pairs' boxes: pairs sorted by group, reduced per run (every group has pairs).
    order = np.argsort(group, kind="stable")
    starts = np.searchsorted(group[order], np.arange(n_groups))
    g_lo = np.minimum.reduceat(lo[order], starts, axis=0) if n_groups else np.zeros((0, 2))
    g_hi = np.maximum.reduceat(hi[order], starts, axis=0) if n_groups else np.zeros((0, 2))
    pieces = geoms[used[keys]]
    clip = np.flatnonzero(big[keys])
    if len(clip):
        box = np.concatenate([g_lo[clip] - _CLIP_MARGIN_M, g_hi[clip] + _CLIP_MARGIN_M], axis=-1)
        pieces[clip] = _clip_rect(pieces[clip], box)
    return group, polygon_frames(pieces)


def _unique_inverse(values: I64, size: int) -> tuple[I64, I64]:
    """``np.unique(values, return_inverse=True)`` of integers in ``[0, size)``: by a presence table when
    ``size`` is not much larger than the input (no sort), else by ``np.unique``. Same arrays either way."""
    if size > 4 * len(values) + 65536:
        uniq, inverse = np.unique(values, return_inverse=True)
        return uniq, inverse.reshape(-1)
    present = np.zeros(size, dtype=bool)
    present[values] = True
    uniq = np.flatnonzero(present)
    rank = np.empty(size, dtype=np.int64)
    rank[uniq] = np.arange(len(uniq))
    return uniq, rank[values]


def strictly_inside(geoms: npt.NDArray[np.object_], poly: I64, x: F64, y: F64) -> B:
    """``shapely.contains_xy(geoms[poly], x, y)`` (strict interior), each polygon prepared once.

    Polygons prepared here are unprepared again afterwards (scenes of one map patch share polygon objects).
    """
    used = _unique_inverse(poly, len(geoms))[0] if len(poly) else np.empty(0, dtype=np.int64)
    fresh = used[~shapely.is_prepared(geoms[used])]
    shapely.prepare(geoms[fresh])
    try:
        return shapely.contains_xy(geoms[poly], x, y)
    finally:
        shapely.destroy_prepared(geoms[fresh])


#: Polygons of one group are clipped to their rows' box widened by this, so that no point lies on a box edge.
_CLIP_MARGIN_M = 1.0
#: Polygons with more vertices than this get frames of clipped pieces (one per group of nearby rows).
_CLIP_MIN_VERTICES = 256
#: Point sets whose box centres share a cell of this size share a clipped piece of a polygon.
_CLIP_CELL_M = 128.0
#: Each row's states are filtered in segments of this many steps (boxes of 6 points x 6 steps).
_SEGMENT_STEPS = 6


def _box_meets_frame(lo: F64, hi: F64, frames: F64, group: I64) -> B:
    """Whether axis-aligned boxes ``(n, 2)`` lo/hi may meet their ``polygon_frames`` rectangles
    ``frames[group]`` (``frames`` ``(G, 8)``): the separating-axis test on the frames' two axes (the box
    projected onto them; conservative by the frames' padding) and the x, y axes (the frames' bounding boxes,
    computed once per frame)."""
    # The frame's corners, back in x, y (relative to its origin): its bounding box, widened by the slack.
    g_cos, g_sin = frames[:, 2:3], frames[:, 3:4]
    u = frames[:, [4, 5, 5, 4]]
    v = frames[:, [6, 6, 7, 7]]
    x = u * g_cos - v * g_sin
    y = u * g_sin + v * g_cos
    ext = np.stack([x.min(axis=1) - _FRAME_SLACK_M, x.max(axis=1) + _FRAME_SLACK_M,
                    y.min(axis=1) - _FRAME_SLACK_M, y.max(axis=1) + _FRAME_SLACK_M], axis=1)
    f = np.concatenate([frames, ext], axis=1)[group]
    cos, sin = f[:, 2], f[:, 3]
    cx, cy = (lo[:, 0] + hi[:, 0]) / 2 - f[:, 0], (lo[:, 1] + hi[:, 1]) / 2 - f[:, 1]
    hx, hy = (hi[:, 0] - lo[:, 0]) / 2, (hi[:, 1] - lo[:, 1]) / 2
    cu, cv = cx * cos + cy * sin, cy * cos - cx * sin
    abs_cos, abs_sin = np.abs(cos), np.abs(sin)
    ru = hx * abs_cos + hy * abs_sin + _FRAME_SLACK_M
    rv = hx * abs_sin + hy * abs_cos + _FRAME_SLACK_M
    meets = (cu + ru >= f[:, 4]) & (cu - ru <= f[:, 5]) & (cv + rv >= f[:, 6]) & (cv - rv <= f[:, 7])
    return (
        meets
        & (f[:, 8] <= hi[:, 0] - f[:, 0])
        & (f[:, 9] >= lo[:, 0] - f[:, 0])
        & (f[:, 10] <= hi[:, 1] - f[:, 1])
        & (f[:, 11] >= lo[:, 1] - f[:, 1])
    )


#: Rounding allowance of ``_box_meets_frame`` (a pair it drops may not hold a point the frame holds).
_FRAME_SLACK_M = 1e-6


def _same_objects(geoms: npt.NDArray[np.object_]) -> I64:
    """For each geometry the index of its first occurrence as the same Python object (scenes of one map
    patch share their polygon objects)."""
    ident = np.fromiter((id(g) for g in geoms), dtype=np.int64, count=len(geoms))
    _, first, which = np.unique(ident, return_index=True, return_inverse=True)
    return first[which.reshape(-1)]


def _in_frames(xs: F64, ys: F64, pr: I64, frames: F64, pairs: I64) -> tuple[I64, I64]:
    """(pair, flat point index) of the points of each pair's row that lie in the pair's aligned frame.

    Args:
        xs, ys: ``(R, K)`` x and y of the K points of each row.
        pr: ``(n,)`` row of each pair; frames: ``(n, 8)`` ``polygon_frames`` rows; pairs: the pairs to test.
    """
    f = frames[pairs]
    rows = pr[pairs]
    rel_x = xs[rows] - f[:, 0:1]
    rel_y = ys[rows] - f[:, 1:2]
    cos, sin = f[:, 2:3], f[:, 3:4]
    u = rel_x * cos
    u += rel_y * sin
    inside = u >= f[:, 4:5]
    inside &= u <= f[:, 5:6]
    v = rel_y * cos
    v -= rel_x * sin
    inside &= v >= f[:, 6:7]
    inside &= v <= f[:, 7:8]
    pair, flat = np.nonzero(inside)
    return pairs[pair], flat


def compute_ego_areas(coords: F64, rear_axle_xy: F64, row_scene: I64, polys: MapPolygons, *,
                      lanes_at: B | None = None, oncoming: bool = True) -> EgoAreas:
    """Ego area flags of every state of every proposal row.

    Args:
        coords: ``(R, T, 5, 2)`` ego corners and centre (``geometry.ego_coords``), global frame.
        rear_axle_xy: ``(R, T, 2)`` rear-axle positions.
        row_scene: ``(R,)`` scene index of each row (indexes ``polys.scene``).
        polys: the batch's map polygons.
        lanes_at: ``(R, T)`` the states whose ``multiple_lanes`` and ``rear_axle_in_intersection`` are needed
            (NC and TTC read them at contacts only); elsewhere they are returned False without testing. None:
            every state.
        oncoming: False skips the centre-on-route test (``oncoming`` is then returned all True: DDC unused).

    Returns:
        The flags; with no polygon at all every state is off-road and oncoming, as officially.
    """
    n_rows, n_t = coords.shape[:2]
    # Points per state: 4 corners (kinds 0-3), the centre (kind 4), the rear axle (kind 5).
    pts = np.concatenate([coords, rear_axle_xy[:, :, None, :]], axis=2)  # (R, T, 6, 2)
    corner_in_drivable = np.zeros((n_rows, n_t, 4), dtype=bool)
    lane_hits_rt = np.empty(0, np.int64)
    lane_hits_poly = np.empty(0, np.int64)
    center_on_route = np.zeros((n_rows, n_t), dtype=bool)
    rear_in_inter = np.zeros((n_rows, n_t), dtype=bool)

    if len(polys.geoms):
        # 1. (row, polygon) pairs of one scene whose bounding boxes meet.
        pr, pp = same_scene_pairs(row_scene, polys.scene)
        seg = _SEGMENT_STEPS
        n_seg = -(-n_t // seg)
        # Boxes of each row's points per segment of steps (the last segment repeats the last state).
        steps = np.minimum(np.arange(n_seg * seg), n_t - 1)
        # x and y apart, each segment's 36 values contiguous (a reduction over the last axis is the fast one).
        seg_xy = np.ascontiguousarray(np.moveaxis(pts, 3, 0)[:, :, steps]).reshape(2, n_rows, n_seg, seg * 6)
        seg_lo = np.moveaxis(seg_xy.min(axis=3), 0, -1)  # (R, S, 2)
        seg_hi = np.moveaxis(seg_xy.max(axis=3), 0, -1)
        lo, hi = seg_lo.min(axis=1), seg_hi.max(axis=1)
        bb = polys.bounds[pp]
        keep = (
            (bb[:, 0] <= hi[pr, 0])
            & (bb[:, 2] >= lo[pr, 0])
            & (bb[:, 1] <= hi[pr, 1])
            & (bb[:, 3] >= lo[pr, 1])
        )
        pr, pp = pr[keep], pp[keep]

        # 2. (row, segment, polygon) triples whose boxes meet, then each point of the segment against an aligned
        #    bounding rectangle of (a clipped piece of) the polygon, on dense arrays. Equal polygons of several
        #    scenes are handled once, as their representative.
        rep = (_same_objects(polys.geoms) if polys.representative is None else polys.representative)[pp]
        pair = np.repeat(np.arange(len(pr)), n_seg)
        sg = np.tile(np.arange(n_seg), len(pr))
        flat_seg = pr[pair] * n_seg + sg
        b_lo, b_hi = seg_lo.reshape(-1, 2)[flat_seg], seg_hi.reshape(-1, 2)[flat_seg]
        bb = polys.bounds[pp[pair]]
        keep = np.flatnonzero((bb[:, 0] <= b_hi[:, 0]) & (bb[:, 2] >= b_lo[:, 0]) & (bb[:, 1] <= b_hi[:, 1])
                              & (bb[:, 3] >= b_lo[:, 1]))
        pair, sg, b_lo, b_hi = pair[keep], sg[keep], b_lo[keep], b_hi[keep]
        group, group_frame = group_frames(polys.geoms, rep[pair], b_lo, b_hi)
        keep = np.flatnonzero(_box_meets_frame(b_lo, b_hi, group_frame, group))
        pair, sg, frames = pair[keep], sg[keep], group_frame[group[keep]]
        seg_row = pr[pair] * n_seg + sg  # index into the (R * S) segments
        # Points of a segment, step-major; steps past the end are NaN (in no frame).
        padded = np.full((n_rows, n_seg * seg, 6, 2), np.nan)
        padded[:, :n_t] = pts
        # Each point kind only against the polygons it is tested on: corners against lanes and drivable
        # areas, the centre against route lanes, the rear axle against intersections.
        tests = [((polys.is_lane | polys.is_drivable)[pp[pair]], slice(0, 4), padded)]
        if lanes_at is not None:
            # Lanes and intersections only at the states asked for: the others' points are NaN there.
            masked = np.full((n_rows, n_seg * seg, 6, 2), np.nan)
            masked[:, :n_t][lanes_at] = pts[lanes_at]
            tests = [(polys.is_drivable[pp[pair]], slice(0, 4), padded),
                     (polys.is_lane[pp[pair]], slice(0, 4), masked)]
        if oncoming:
            tests.append((polys.is_route_lane[pp[pair]], slice(CENTER, CENTER + 1), padded))
        tests.append((polys.is_intersection[pp[pair]], slice(CENTER + 1, CENTER + 2),
                      padded if lanes_at is None else masked))
        found = []
        for mask, kinds, points in tests:
            sel = points[:, :, kinds]  # (R, S * seg, k, 2)
            n_kinds = sel.shape[2]
            xs = np.ascontiguousarray(sel[..., 0]).reshape(n_rows * n_seg, -1)
            ys = np.ascontiguousarray(sel[..., 1]).reshape(n_rows * n_seg, -1)
            hit, flat = _in_frames(xs, ys, seg_row, frames, np.flatnonzero(mask))
            found.append((hit, sg[hit] * seg + flat // n_kinds, flat % n_kinds + kinds.start))
        hit = np.concatenate([f[0] for f in found])
        t = np.concatenate([f[1] for f in found])
        kind = np.concatenate([f[2] for f in found])
        pair = pair[hit]
        rr = pr[pair]
        rep = rep[pair]
        pp = pp[pair]

        # 3. The strict point-in-polygon test on what is left.
        inside = strictly_inside(polys.geoms, rep, pts[rr, t, kind, 0], pts[rr, t, kind, 1])
        rr, pp, t, kind = rr[inside], pp[inside], t[inside], kind[inside]

        corner = kind < 4
        drv = corner & polys.is_drivable[pp]
        corner_in_drivable[rr[drv], t[drv], kind[drv]] = True
        lane = corner & polys.is_lane[pp]
        lane_hits_rt, lane_hits_poly = rr[lane] * n_t + t[lane], pp[lane]
        ctr = kind == CENTER
        center_on_route[rr[ctr], t[ctr]] = True
        rear = kind == CENTER + 1
        rear_in_inter[rr[rear], t[rear]] = True

    # Multiple lanes: count the corners each lane polygon holds per (row, step).
    multiple = np.zeros(n_rows * n_t, dtype=bool)
    if len(lane_hits_rt):
        key = lane_hits_rt * len(polys.geoms) + lane_hits_poly
        uniq, n_corners = np.unique(key, return_counts=True)
        rt = uniq // len(polys.geoms)
        n_lanes = np.bincount(rt, minlength=n_rows * n_t)
        holds_all = np.zeros(n_rows * n_t, dtype=bool)
        holds_all[rt[n_corners == 4]] = True
        multiple = (n_lanes > 1) & ~holds_all
    return EgoAreas(
        multiple_lanes=multiple.reshape(n_rows, n_t),
        non_drivable=corner_in_drivable.sum(axis=-1) < 4,
        oncoming=~center_on_route,  # all True when not asked for
        rear_axle_in_intersection=rear_in_inter,
    )
