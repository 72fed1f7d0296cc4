"""Per-state ego areas against the drivable map, batched over proposals and scenes (specs/navsim.md §4.3).

The official ``PDMScorer._calculate_ego_area`` tests every ego corner and centre against every polygon of
the drivable map with ``shapely.vectorized.contains`` (strict interior), polygon by polygon. Here the same
strict test (``shapely.contains_xy`` on prepared polygons) runs only on the (point, polygon) pairs that pass
a bounding-box and an aligned-rectangle filter, found with numpy over all scenes of a batch at once.
Polygons of many vertices (long roads) are first clipped to the box of their scene's ego points, which
makes preparing them cheap; points near an edge that clipping cut are re-tested on the original polygon
(``strictly_inside``). The result is the same boolean per (point, polygon) as the official one; the flags
derived from it follow the official definitions:

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
    """

    geoms: npt.NDArray[np.object_]
    scene: I64
    bounds: F64
    is_lane: B
    is_drivable: B
    is_route_lane: B
    is_intersection: B


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


def _cut_edges(clipped: npt.NDArray[np.object_], region: F64) -> tuple[I64, F64, F64]:
    """Edges of clipped polygons that clipping created or shortened: those with an end on the clip box.

    Returns:
        (polygon index, start xy ``(E, 2)``, end xy ``(E, 2)``) of every edge with an endpoint on the
        boundary of its polygon's clip box, except edges lying along that boundary.
    """
    parts, part_of = shapely.get_parts(clipped, return_index=True)
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    xy, ring = shapely.get_coordinates(rings, return_index=True)
    poly = part_of[ring_part[ring]]
    box = region[poly]
    # Which sides of the box a vertex lies on (clipping puts new vertices exactly on them).
    side = np.stack(
        [xy[:, 0] == box[:, 0], xy[:, 1] == box[:, 1], xy[:, 0] == box[:, 2], xy[:, 1] == box[:, 3]], axis=-1
    )
    same_ring = ring[1:] == ring[:-1]
    a, b = side[:-1], side[1:]
    cut = same_ring & (a.any(-1) | b.any(-1)) & ~(a & b).any(-1)
    return poly[:-1][cut], xy[:-1][cut], xy[1:][cut]


def _near_segments(p: F64, a: F64, b: F64, tol: float) -> npt.NDArray[np.bool_]:
    """Whether points ``p`` lie within ``tol`` of segments ``a``-``b`` (all ``(N, 2)``)."""
    ab, ap = b - a, p - a
    denom = np.einsum("ij,ij->i", ab, ab)
    with np.errstate(invalid="ignore", divide="ignore"):
        u = np.clip(np.einsum("ij,ij->i", ap, ab) / denom, 0.0, 1.0)
    u = np.where(denom > 0, u, 0.0)
    d = ap - u[:, None] * ab
    return np.einsum("ij,ij->i", d, d) <= tol * tol


def clip_to_boxes(geoms: npt.NDArray[np.object_], boxes: F64) -> tuple[npt.NDArray[np.object_], F64]:
    """Clips polygons of many vertices to boxes around the points they will be asked about.

    Preparing a polygon for point queries costs O(n log n) in its vertices; a road polygon of thousands
    of vertices clipped to the box of a scene's ego points keeps only the hundred or so near the ego.

    Args:
        geoms: ``(N,)`` polygons.
        boxes: ``(N, 4)`` min x, min y, max x, max y per polygon (rows may repeat; NaN: leave it as is).
            Points later tested against a polygon must lie strictly inside its box.

    Returns:
        ``(clipped, boxes)``: the polygons, those with more than ``_CLIP_MIN_VERTICES`` vertices clipped,
        and the boxes with NaN rows for the polygons left unclipped (``strictly_inside``'s input).
    """
    clipped = geoms.copy()
    boxes = np.array(boxes, dtype=np.float64, copy=True)
    big = np.isfinite(boxes).all(axis=1) & (shapely.get_num_coordinates(geoms) > _CLIP_MIN_VERTICES)
    boxes[~big] = np.nan
    idx = np.flatnonzero(big)
    if len(idx):
        # clip_by_rect takes one box per call: one call per distinct box (one per scene in a batch).
        uniq, which = np.unique(boxes[idx], axis=0, return_inverse=True)
        for k, box in enumerate(uniq):
            group = idx[which.reshape(-1) == k]
            clipped[group] = shapely.clip_by_rect(geoms[group], *box.tolist())
    return clipped, boxes


def strictly_inside(
    geoms: npt.NDArray[np.object_], clipped: npt.NDArray[np.object_], boxes: F64, poly: I64, x: F64, y: F64
) -> npt.NDArray[np.bool_]:
    """Strict point-in-polygon, exactly ``shapely.contains_xy(geoms[poly], x, y)``, on clipped copies.

    Inside its box a clipped polygon has the original vertices and edges, except the edges clipping cut,
    whose new end points are rounded (about 1e-10 m at UTM magnitudes). A point within
    ``_CUT_TOLERANCE_M`` of such an edge is therefore re-tested on the original polygon, so the answer is
    always the original polygon's (strict interior: a point on the boundary is outside).

    Args:
        geoms, clipped, boxes: the polygons and ``clip_to_boxes(geoms, ...)``.
        poly: ``(K,)`` polygon index of each query; x, y: ``(K,)`` query points, inside the polygon's box.

    Returns:
        ``(K,)`` bool.
    """
    region = boxes
    used = np.unique(poly)
    shapely.prepare(clipped[used])
    inside = shapely.contains_xy(clipped[poly], x, y)
    cut = used[np.isfinite(region[used, 0])]
    e_poly, e_a, e_b = _cut_edges(clipped[cut], region[cut])
    # Query points lie at least _CLIP_MARGIN_M inside their box. A cut edge whose bounding box stays in
    # that margin (the usual case for densely sampled roads, whose cut edges are short) cannot be near one.
    inner = region[cut][e_poly] + (_CLIP_MARGIN_M - 2 * _CUT_TOLERANCE_M) * np.array([1.0, 1.0, -1.0, -1.0])
    lo, hi = np.minimum(e_a, e_b), np.maximum(e_a, e_b)
    deep = (
        (lo[:, 0] <= inner[:, 2])
        & (hi[:, 0] >= inner[:, 0])
        & (lo[:, 1] <= inner[:, 3])
        & (hi[:, 1] >= inner[:, 1])
    )
    e_poly, e_a, e_b = e_poly[deep], e_a[deep], e_b[deep]
    if len(e_poly):
        e_poly = cut[e_poly]
        order = np.argsort(e_poly, kind="stable")
        e_poly, e_a, e_b = e_poly[order], e_a[order], e_b[order]
        start = np.searchsorted(e_poly, poly)
        count = np.searchsorted(e_poly, poly, side="right") - start
        pair = np.repeat(np.arange(len(poly)), count)
        edge = np.repeat(start - (np.cumsum(count) - count), count) + np.arange(count.sum())
        near = _near_segments(np.stack([x[pair], y[pair]], -1), e_a[edge], e_b[edge], _CUT_TOLERANCE_M)
        redo = np.unique(pair[near])
        if len(redo):
            inside[redo] = shapely.contains_xy(geoms[poly[redo]], x[redo], y[redo])
    return inside


#: Clip boxes extend this far beyond the ego points, so that no point lies on a box edge.
_CLIP_MARGIN_M = 1.0
#: Polygons with more vertices than this are clipped before they are prepared.
_CLIP_MIN_VERTICES = 256
#: Points this close to an edge cut by clipping are re-tested on the original polygon.
_CUT_TOLERANCE_M = 1e-6


def _in_frames(pts: F64, pr: I64, frames: F64, pairs: I64, kinds: slice) -> tuple[I64, I64, I64]:
    """(pair, step, kind) of the points of kinds ``kinds`` of each pair's row inside the pair's aligned frame.

    Args:
        pts: ``(R, T, 6, 2)`` points; pr: ``(n,)`` row of each pair; frames: ``(n, 8)`` ``polygon_frames`` rows
        of each pair's polygon; pairs: the pairs to test.
    """
    f = frames[pairs][:, None, None, :]
    p = pts[pr[pairs], :, kinds]  # (m, T, k, 2)
    rel_x = p[..., 0] - f[..., 0]
    rel_y = p[..., 1] - f[..., 1]
    u = rel_x * f[..., 2] + rel_y * f[..., 3]
    v = rel_y * f[..., 2] - rel_x * f[..., 3]
    pair, t, kind = np.nonzero((u >= f[..., 4]) & (u <= f[..., 5]) & (v >= f[..., 6]) & (v <= f[..., 7]))
    return pairs[pair], t, kind + kinds.start


def compute_ego_areas(coords: F64, rear_axle_xy: F64, row_scene: I64, polys: MapPolygons) -> EgoAreas:
    """Ego area flags of every state of every proposal row.

    Args:
        coords: ``(R, T, 5, 2)`` ego corners and centre (``geometry.ego_coords``), global frame.
        rear_axle_xy: ``(R, T, 2)`` rear-axle positions.
        row_scene: ``(R,)`` scene index of each row (indexes ``polys.scene``).
        polys: the batch's map polygons.

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
        lo, hi = pts.min(axis=(1, 2)), pts.max(axis=(1, 2))
        bb = polys.bounds[pp]
        keep = (
            (bb[:, 0] <= hi[pr, 0])
            & (bb[:, 2] >= lo[pr, 0])
            & (bb[:, 1] <= hi[pr, 1])
            & (bb[:, 3] >= lo[pr, 1])
        )
        pr, pp = pr[keep], pp[keep]

        # 2. Clip the polygons to their scene's box of ego points; every point of the row against the
        #    clipped polygon's aligned bounding rectangle, on dense arrays.
        n_scenes = int(row_scene.max()) + 1
        s_lo = np.full((n_scenes, 2), np.inf)
        s_hi = np.full((n_scenes, 2), -np.inf)
        np.minimum.at(s_lo, row_scene, lo)
        np.maximum.at(s_hi, row_scene, hi)
        used, inverse = np.unique(pp, return_inverse=True)
        boxes = np.concatenate(
            [s_lo[polys.scene[used]] - _CLIP_MARGIN_M, s_hi[polys.scene[used]] + _CLIP_MARGIN_M], axis=-1
        )
        clipped_used, boxes = clip_to_boxes(polys.geoms[used], boxes)
        clipped = polys.geoms.copy()
        clipped[used] = clipped_used
        region = np.full((len(polys.geoms), 4), np.nan)
        region[used] = boxes
        frames = polygon_frames(clipped[used])[inverse]  # (n, 8)
        # Each point kind only against the polygons it is tested on: corners against lanes and drivable
        # areas, the centre against route lanes, the rear axle against intersections.
        found = [
            _in_frames(pts, pr, frames, np.flatnonzero(mask), kinds)
            for mask, kinds in (
                ((polys.is_lane | polys.is_drivable)[pp], slice(0, 4)),
                (polys.is_route_lane[pp], slice(CENTER, CENTER + 1)),
                (polys.is_intersection[pp], slice(CENTER + 1, CENTER + 2)),
            )
        ]
        pair = np.concatenate([f[0] for f in found])
        t = np.concatenate([f[1] for f in found])
        kind = np.concatenate([f[2] for f in found])
        rr, pp = pr[pair], pp[pair]

        # 3. The strict point-in-polygon test on what is left.
        inside = strictly_inside(polys.geoms, clipped, region, pp, pts[rr, t, kind, 0], pts[rr, t, kind, 1])
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
        oncoming=~center_on_route,
        rear_axle_in_intersection=rear_in_inter,
    )
