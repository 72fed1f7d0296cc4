"""EPDMS metrics against the map and the red lights: TLC, DDC (v2), LK (specs/navsim.md §6.3, §6.4, §6.7).

All batched over proposal rows of many scenes (``row_scene``), global map frame, vectorised:

- TLC: 0 if the ego footprint at any step t = 0..40 intersects (shapely ``intersects``, touching counts) a
  red-light polygon active at t (``PDMScorer._calculate_traffic_light_compliance``).
- DDC v2: v1.1's oncoming-progress windows, with a step's progress also zeroed when the box centre lies
  strictly inside an INTERSECTION polygon (``is_in_layer``: an STR-tree ``within`` query).
- LK: over t = 0..40, steps with the centre inside an intersection are skipped (the counter keeps its
  value); elsewhere the centre's distance to the centerline polyline above 0.5 m increments the counter and
  anything else resets it; LK = 0 once the counter reaches ceil(2.0 / 0.1) = 20.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely

from metrics.pdm_scoring.ego_areas import same_scene_pairs
from metrics.pdm_scoring.geometry import polygons

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class RedLights:
    """Red-light polygons of one scene and the steps at which each is red (what TLC tests).

    Attributes:
        polygons: ``(L,)`` shapely polygons (the lane connectors), global frame.
        active: ``(T, L)`` red at step t (t · 0.1 s after the current frame).
    """

    polygons: npt.NDArray[np.object_]
    active: B

    def __post_init__(self) -> None:
        if self.active.ndim != 2 or self.active.shape[1] != len(self.polygons):
            raise ValueError(f"RedLights: active {self.active.shape} does not fit {len(self.polygons)} polygons")

    @classmethod
    def none(cls, num_steps: int) -> RedLights:
        return cls(np.empty(0, dtype=object), np.zeros((num_steps, 0), dtype=bool))


def points_in_polygons(points: F64, row_scene: I64, geoms: npt.NDArray[np.object_], geom_scene: I64) -> B:
    """Whether each point lies strictly inside any polygon of its row's scene.

    Args:
        points: ``(R, T, 2)``; row_scene ``(R,)``; geoms ``(N,)`` polygons with their scene ``geom_scene``.

    Returns:
        ``(R, T)`` bool (``shapely.contains_xy``: the boundary is outside, as ``within``).
    """
    n_rows, n_t = points.shape[:2]
    out = np.zeros((n_rows, n_t), dtype=bool)
    if len(geoms) == 0:
        return out
    pr, pg = same_scene_pairs(row_scene, geom_scene)
    bounds = shapely.bounds(geoms).reshape(-1, 4)
    x, y = points[pr, :, 0], points[pr, :, 1]
    b = bounds[pg][:, None, :]
    cand = (x >= b[..., 0]) & (x <= b[..., 2]) & (y >= b[..., 1]) & (y <= b[..., 3])
    pair, t = np.nonzero(cand)
    if len(pair):
        shapely.prepare(geoms)
        inside = shapely.contains_xy(geoms[pg[pair]], x[pair, t], y[pair, t])
        out[pr[pair[inside]], t[inside]] = True
    return out


def traffic_light_compliance(corners: F64, row_scene: I64, lights: list[RedLights]) -> tuple[F64, I64]:
    """TLC per row and the first step whose footprint touches an active red light (-1: none).

    Args:
        corners: ``(R, T, 4, 2)`` ego footprint corners (FL, RL, RR, FR), global frame.
        row_scene: ``(R,)`` scene of each row; ``lights[scene]`` its red lights (``active`` >= T steps).
    """
    n_rows, n_t = corners.shape[:2]
    tlc = np.ones(n_rows, dtype=np.float64)
    first = np.full(n_rows, -1, dtype=np.int64)
    n_light = np.array([len(lt.polygons) for lt in lights])
    if n_light.sum() == 0:
        return tlc, first
    for lt in lights:
        if lt.active.shape[0] < n_t:
            raise ValueError(f"red lights cover {lt.active.shape[0]} steps, TLC needs {n_t}")
    geoms = np.concatenate([np.asarray(lt.polygons, dtype=object) for lt in lights])
    geom_scene = np.repeat(np.arange(len(lights)), n_light)
    all_active = np.concatenate([lt.active[:n_t] for lt in lights], axis=1)  # (T, L_total)
    pr, pg = same_scene_pairs(row_scene, geom_scene)
    active = all_active[:, pg].T  # (pairs, T)
    bounds = shapely.bounds(geoms).reshape(-1, 4)
    lo, hi = corners[pr].min(axis=2), corners[pr].max(axis=2)  # (n, T, 2)
    b = bounds[pg][:, None, :]
    cand = active & (lo[..., 0] <= b[..., 2]) & (hi[..., 0] >= b[..., 0]) & (lo[..., 1] <= b[..., 3]) & (
        hi[..., 1] >= b[..., 1])
    pair, t = np.nonzero(cand)
    if len(pair):
        hit = shapely.intersects(polygons(corners[pr[pair], t]), geoms[pg[pair]])
        rows, steps = pr[pair[hit]], t[hit]
        tlc[rows] = 0.0
        first_step = np.full(n_rows, n_t, dtype=np.int64)
        np.minimum.at(first_step, rows, steps)
        first = np.where(first_step < n_t, first_step, -1)
    return tlc, first


def driving_direction_v2(
    centers: F64, oncoming: B, center_in_intersection: B, *, horizon_steps: int,
    compliance_threshold_m: float, violation_threshold_m: float,
) -> tuple[F64, F64]:
    """DDC (v2) per row and its largest window of oncoming progress, metres.

    Args:
        centers: ``(R, T, 2)`` box centres; oncoming ``(R, T)`` ONCOMING_TRAFFIC; center_in_intersection
            ``(R, T)``.
        horizon_steps: window length (``int(1.0 / 0.1)`` = 10: indices ``[t - 10, t]``).
    """
    n_rows, n_t = centers.shape[:2]
    progress = np.zeros((n_rows, n_t), dtype=np.float64)
    progress[:, 1:] = np.linalg.norm(centers[:, 1:] - centers[:, :-1], axis=-1)
    progress[~oncoming | center_in_intersection] = 0.0
    # Window sums slice by slice, as officially, so that the sums round identically.
    windows = np.stack([progress[:, max(0, t - horizon_steps): t + 1].sum(axis=-1) for t in range(n_t)], axis=-1)
    worst = windows.max(axis=-1)
    ddc = np.where(worst < compliance_threshold_m, 1.0, np.where(worst < violation_threshold_m, 0.5, 0.0))
    return ddc, worst


def lane_keeping(deviation_m: F64, skip: B, *, limit_m: float, steps_required: int) -> tuple[F64, I64]:
    """LK per row and the step at which it failed (-1: kept its lane).

    Args:
        deviation_m: ``(R, T)`` distance of the box centre to the centerline, metres.
        skip: ``(R, T)`` steps with the centre in an intersection (ignored; the counter is kept).
        limit_m: deviation limit (0.5 m); steps_required: consecutive steps that fail LK (20).
    """
    exceed = (deviation_m > limit_m) & ~skip
    reset = ~(deviation_m > limit_m) & ~skip
    count = np.cumsum(exceed, axis=1)
    # The count at the last reset (carried forward): the run length is the count since then.
    at_reset = np.where(reset, count, 0)
    base = np.maximum.accumulate(at_reset, axis=1)
    run = np.where(exceed, count - base, 0)
    failed = run >= steps_required
    lk = np.where(failed.any(axis=1), 0.0, 1.0)
    step = np.where(failed.any(axis=1), np.argmax(failed, axis=1), -1)
    return lk, step


#: Clip margin of the centerline around a scene's ego centres (must exceed the LK limit).
_LK_CLIP_MARGIN_M = 1.0
#: Distances this close to the LK limit are recomputed on the unclipped centerline.
_LK_RECHECK_M = 1e-6


def centerline_deviation(centers: F64, row_scene: I64, lines: npt.NDArray[np.object_], limit_m: float) -> F64:
    """Distance of each centre to its scene's centerline, exact wherever it decides ``> limit_m``.

    The centerline is clipped to its scene's box of centres widened by 1 m (long centerlines make GEOS's
    point-line distance slow). A centre within 1 m of the centerline has its nearest point inside that box,
    so its distance is unchanged up to the rounding of the clip's new vertices; a farther one gets a distance
    above 1 m or infinity. Distances within 1e-6 m of the limit are recomputed on the full line, so the
    comparison with the limit is always the official one (``Point.distance(centerline)``).

    Args:
        centers: ``(R, T, 2)``; row_scene ``(R,)``; lines ``(S,)`` centerline linestrings; limit_m: 0.5 m.

    Returns:
        ``(R, T)`` metres (infinite for centres more than 1 m away from a clipped-away centerline).
    """
    n_scenes = len(lines)
    lo = np.full((n_scenes, 2), np.inf)
    hi = np.full((n_scenes, 2), -np.inf)
    np.minimum.at(lo, row_scene, centers.min(axis=1))
    np.maximum.at(hi, row_scene, centers.max(axis=1))
    clipped = np.empty(n_scenes, dtype=object)
    for s in range(n_scenes):
        if np.isfinite(lo[s]).all():
            box = (*(lo[s] - _LK_CLIP_MARGIN_M), *(hi[s] + _LK_CLIP_MARGIN_M))
            clipped[s] = shapely.clip_by_rect(lines[s], *box)
        else:
            clipped[s] = lines[s]
    pts = shapely.points(centers)
    dist = shapely.distance(pts, clipped[row_scene][:, None])
    dist = np.where(np.isnan(dist), np.inf, dist)
    near = np.abs(dist - limit_m) <= _LK_RECHECK_M
    if near.any():
        r, t = np.nonzero(near)
        dist[r, t] = shapely.distance(pts[r, t], lines[row_scene[r]])
    return dist
