"""A straightforward PDMS v1.1 scorer: shapely objects and Python loops per step, as the official code does.

It follows the structure of NAVSIM v1.1's ``PDMScorer`` (specs/navsim.md §5) step by step: one STR-tree of
object polygons per 0.1 s step queried with the ego polygons, every drivable polygon tested against every
ego point, the NC and TTC loops over (t[, k], hit) with per-proposal ignore sets, and the comfort checks.
It shares no geometry code with the vectorised scorer (only the comfort module and constants), which makes
it the baseline of ``benchmarks/bench_pdms.py`` and an independent oracle for the tests. It is slow (tens
of milliseconds per scene); use ``metrics.pdms`` for real work.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import shapely

from harness.map_query import MapLayer
from harness.scoring_scene import AGENT_TYPES, ObjectTimeline, ScoringScene
from metrics.pdm_scoring.comfort import comfort_checks
from metrics.pdm_scoring.geometry import (
    EGO_HALF_LENGTH_M,
    EGO_HALF_WIDTH_M,
    EGO_REAR_AXLE_TO_CENTER_M,
)

F64 = npt.NDArray[np.float64]

_KEYS = (
    "no_at_fault_collisions",
    "drivable_area_compliance",
    "driving_direction_compliance",
    "time_to_collision_within_bound",
    "comfort",
    "ego_progress",
    "progress_raw",
    "score",
)


def _corner(cx: float, cy: float, h: float, lon: float, lat: float) -> tuple[float, float]:
    half_pi = np.pi / 2.0
    return (
        cx + ((lat * np.cos(h + half_pi)) + (lon * np.cos(h))),
        cy + ((lat * np.sin(h + half_pi)) + (lon * np.sin(h))),
    )


def _ego(state: F64) -> tuple[list[tuple[float, float]], tuple[float, float]]:
    """Corners (FL, RL, RR, FR) and centre of the ego footprint at one rear-axle state."""
    x, y, h = float(state[0]), float(state[1]), float(state[2])
    cx = x + EGO_REAR_AXLE_TO_CENTER_M * np.cos(h)
    cy = y + EGO_REAR_AXLE_TO_CENTER_M * np.sin(h)
    hl, hw = EGO_HALF_LENGTH_M, EGO_HALF_WIDTH_M
    return [
        _corner(cx, cy, h, hl, hw),
        _corner(cx, cy, h, -hl, hw),
        _corner(cx, cy, h, -hl, -hw),
        _corner(cx, cy, h, hl, -hw),
    ], (cx, cy)


def _angle(ex: float, ey: float, eh: float, px: float, py: float) -> float:
    v = np.array([px - ex, py - ey])
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.arccos(np.dot(np.array([np.cos(eh), np.sin(eh)]), v / np.linalg.norm(v))))


def loop_score(scene: ScoringScene, states: F64, objects: ObjectTimeline | None = None) -> dict[str, F64]:
    """PDMS v1.1 sub-scores of ``(P, 41, 11)`` global rear-axle states, the slow way.

    Returns:
        ``_KEYS`` -> ``(P,)`` arrays, plus ``collision_step``/``ttc_step`` (-1: none) and ``ego_areas``
        ``(P, 41)`` bit flags (1 multiple lanes, 2 off-road, 4 oncoming).
    """
    obj = scene.objects if objects is None else objects
    n_p, n_t = states.shape[:2]
    coords = [[_ego(states[p, t]) for t in range(n_t)] for p in range(n_p)]
    ego_poly = [[shapely.Polygon(coords[p][t][0]) for t in range(n_t)] for p in range(n_p)]

    # Occupancy maps per step: tokens and polygons of the objects present.
    maps = []
    for t in range(obj.present.shape[0]):
        idx = np.flatnonzero(obj.present[t])
        polys = []
        for m in idx:
            x, y, h = obj.poses[t, m]
            hl, hw = obj.size_lwh[m, 0] / 2.0, obj.size_lwh[m, 1] / 2.0
            polys.append(
                shapely.Polygon(
                    [
                        _corner(x, y, h, hl, hw),
                        _corner(x, y, h, -hl, hw),
                        _corner(x, y, h, -hl, -hw),
                        _corner(x, y, h, hl, -hw),
                    ]
                )
            )
        maps.append((idx, shapely.STRtree(polys), polys))
    first_speed = np.hypot(obj.first_velocity_xy[:, 0], obj.first_velocity_xy[:, 1])
    is_agent = np.isin(obj.types, [int(a) for a in AGENT_TYPES])

    # Ego areas: every drivable polygon against every ego point.
    types = scene.drivable_types
    lane_idx = [i for i, ty in enumerate(types) if ty in (MapLayer.LANE, MapLayer.LANE_CONNECTOR)]
    route_idx = [i for i in lane_idx if scene.drivable_ids[i] in set(scene.route_lane_ids.tolist())]
    drv_idx = [
        i
        for i, ty in enumerate(types)
        if ty in (MapLayer.ROADBLOCK, MapLayer.INTERSECTION, MapLayer.CARPARK_AREA)
    ]
    inter_idx = [i for i, ty in enumerate(types) if ty == MapLayer.INTERSECTION]
    pts = np.array([[c[0] + [c[1]] for c in row] for row in coords])  # (P, T, 5, 2)
    inside = (
        np.stack([shapely.contains_xy(g, pts[..., 0], pts[..., 1]) for g in scene.drivable_polygons])
        if len(types)
        else np.zeros((0,) + pts.shape[:3], dtype=bool)
    )  # (N, P, T, 5)
    corners_in = inside[..., :4]
    multiple = ((corners_in[lane_idx].sum(-1) > 0).sum(0) > 1) & np.all(corners_in[lane_idx].sum(-1) != 4, 0)
    off_road = (corners_in[drv_idx].sum(0) > 0).sum(-1) < 4
    oncoming = inside[route_idx][..., 4].sum(0) == 0
    ego_areas = (multiple * 1 + off_road * 2 + oncoming * 4).astype(np.uint8)

    # NC.
    nc = np.ones(n_p)
    nc_step = np.full(n_p, -1)
    ignored: list[set[int]] = [set() for _ in range(n_p)]
    speeds = np.hypot(states[..., 3], states[..., 4])
    for t in range(n_t):
        idx, tree, polys = maps[t]
        for p in range(n_p):
            for g in tree.query(ego_poly[p][t], predicate="intersects"):
                m = int(idx[g])
                if m in ignored[p]:
                    continue
                x, y, h = states[p, t, :3]
                c = polys[g].centroid
                if speeds[p, t] <= 0.05:
                    fault = False  # stopped ego
                elif not is_agent[m] or first_speed[m] <= 0.05:
                    fault = True  # stopped track
                elif _angle(x, y, h, c.x, c.y) > np.deg2rad(150):
                    fault = False  # rear
                elif shapely.LineString([coords[p][t][0][0], coords[p][t][0][3]]).intersects(polys[g]):
                    fault = True  # front
                else:
                    fault = bool(multiple[p, t] or off_road[p, t])  # lateral
                if fault:
                    nc[p] = min(nc[p], 0.0 if is_agent[m] else 0.5)
                    nc_step[p] = t if nc_step[p] < 0 else min(nc_step[p], t)
                else:
                    ignored[p].add(m)

    # TTC.
    ttc = np.ones(n_p)
    ttc_step = np.full(n_p, -1)
    ignored = [set() for _ in range(n_p)]
    for t in range(n_t):
        for k in (0, 3, 6, 9):
            idx, tree, polys = maps[t + k]
            for p in range(n_p):
                dt = float(k) * 0.1
                x, y, h = states[p, t, :3]
                dx, dy = np.cos(h) * speeds[p, t] * dt, np.sin(h) * speeds[p, t] * dt
                shifted = shapely.Polygon([(cx + dx, cy + dy) for cx, cy in coords[p][t][0]])
                for g in tree.query(shifted, predicate="intersects"):
                    m = int(idx[g])
                    if m in ignored[p] or speeds[p, t] < 5e-3:
                        continue
                    c = polys[g].centroid
                    angle = _angle(x, y, h, c.x, c.y)
                    in_inter = any(shapely.contains_xy(scene.drivable_polygons[i], x, y) for i in inter_idx)
                    exposed = multiple[p, t] or off_road[p, t] or in_inter
                    if angle < np.deg2rad(30) or (exposed and not angle > np.deg2rad(150)):
                        ttc[p] = 0.0
                        ttc_step[p] = t if ttc_step[p] < 0 else min(ttc_step[p], t)
                    else:
                        ignored[p].add(m)

    # DAC, DDC, progress, comfort, aggregation.
    dac = np.where(off_road.any(-1), 0.0, 1.0)
    centers = pts[:, :, 4]
    step = np.zeros((n_p, n_t))
    step[:, 1:] = np.linalg.norm(centers[:, 1:] - centers[:, :-1], axis=-1)
    step[~oncoming] = 0.0
    windows = np.stack([step[:, max(0, t - 10) : t + 1].sum(-1) for t in range(n_t)], -1).max(-1)
    ddc = np.where(windows < 2.0, 1.0, np.where(windows < 6.0, 0.5, 0.0))
    line = shapely.LineString(scene.centerline[:, :2])
    raw = np.array(
        [
            max(0.0, line.project(shapely.Point(centers[p, -1])) - line.project(shapely.Point(centers[p, 0])))
            for p in range(n_p)
        ]
    )
    comfort = np.all(comfort_checks(states, np.arange(n_t) * 0.1), -1).astype(float)
    multi = nc * dac
    masked = raw * multi
    if masked.max() > 5.0:
        ep = masked / masked.max()
    else:
        ep = np.where(multi == 0.0, 0.0, 1.0)
    score = multi * ((((ep * 5.0 + ttc * 5.0) + comfort * 2.0) + ddc * 0.0) / 12.0)
    return dict(
        no_at_fault_collisions=nc,
        drivable_area_compliance=dac,
        driving_direction_compliance=ddc,
        time_to_collision_within_bound=ttc,
        comfort=comfort,
        ego_progress=ep,
        progress_raw=raw,
        score=score,
        collision_step=nc_step,
        ttc_step=ttc_step,
        ego_areas=ego_areas,
    )
