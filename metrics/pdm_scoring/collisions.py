"""No at-fault collision (NC) and time-to-collision (TTC) of PDMS v1.1 (specs/navsim.md §5.1, §5.4).

The official ``PDMScorer`` walks ``for t: for (proposal, object) in STRtree hits`` (TTC: ``for t: for k``)
and keeps, per proposal, a set of object tokens it ignores from then on. Here every contact of every
(proposal, object, t[, k]) is found at once (bounding-box and circle filters, then an exact separating-axis
test), and the bookkeeping is replayed on the hits. Replaying is simple because a token's ignore entry only
ever comes from that same token: the first counted contact of a (proposal, token) pair in the official
order (t, then k) decides everything that pair contributes.

- NC: if that first contact is at fault, the proposal's NC drops to 0 (agents) or 0.5 (static objects);
  otherwise the token is ignored afterwards. So only first contacts need classifying.
- TTC: contacts at ego speeds below ``stopped_speed_threshold`` are skipped without touching the ignore set;
  the first remaining contact either violates (TTC = 0) or puts the token on the ignore set.

Frames: global map frame; states are rear-axle states (``geometry`` indices).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely

from metrics.pdm_scoring.ego_areas import EgoAreas, same_scene_pairs
from metrics.pdm_scoring.geometry import (
    CONTACT_TOLERANCE_M,
    EGO_CIRCUMRADIUS_M,
    FRONT_LEFT,
    FRONT_RIGHT,
    HEADING,
    VELOCITY_X,
    VELOCITY_Y,
    X,
    Y,
    box_corners,
    obb_margin,
    polygons,
    relative_angle,
)

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class ObjectBatch:
    """The object timelines of every scene of a batch, concatenated along the object axis.

    Attributes:
        scene: ``(M,)`` scene index of each object.
        is_agent: ``(M,)`` VEHICLE, PEDESTRIAN, BICYCLE or EGO (an NC hit costs 0.0, else 0.5).
        track_stopped: ``(M,)`` nuPlan ``is_track_stopped``: not an agent, or first-appearance speed <= 0.05.
        present: ``(T, M)`` present at step t (t * 0.1 s).
        poses: ``(T, M, 3)`` box-centre x, y, heading, global frame.
        half_length, half_width: ``(M,)`` metres.
    """

    scene: I64
    is_agent: B
    track_stopped: B
    present: B
    poses: F64
    half_length: F64
    half_width: F64

    @property
    def radius(self) -> F64:
        return np.hypot(self.half_length, self.half_width)


@dataclass(frozen=True)
class CollisionResult:
    """Per proposal row: the score, the first infraction step (-1: none) and the object behind it (-1)."""

    score: F64
    step: I64
    obj: I64


@dataclass(frozen=True)
class _Hits:
    row: I64
    obj: I64
    t: I64
    k: I64  # TTC projection offset in steps (0 for NC)


def _first_per_pair(h: _Hits) -> _Hits:
    """The first hit of every (row, object) pair in the official loop order (t, then k)."""
    order = np.lexsort((h.k, h.t, h.obj, h.row))
    row, obj, t, k = h.row[order], h.obj[order], h.t[order], h.k[order]
    first = np.ones(len(row), dtype=bool)
    first[1:] = (row[1:] != row[:-1]) | (obj[1:] != obj[:-1])
    return _Hits(row[first], obj[first], t[first], k[first])


def _object_polygons(objs: ObjectBatch, t: I64, m: I64) -> npt.NDArray[np.object_]:
    return polygons(box_corners(objs.poses[t, m], objs.half_length[m], objs.half_width[m]))


def _centroids(poly: npt.NDArray[np.object_]) -> tuple[F64, F64]:
    """Polygon centroids as GEOS computes them (the official ``polygon.centroid``); NaN where empty."""
    c = shapely.centroid(poly)
    return shapely.get_x(c), shapely.get_y(c)


def _reduce_rows(n_rows: int, rows: I64, values: F64, steps: I64, objs: I64) -> CollisionResult:
    """Per row: min value (start 1), and the earliest infraction (ties: lowest value, then object index)."""
    score = np.ones(n_rows, dtype=np.float64)
    step = np.full(n_rows, -1, dtype=np.int64)
    obj = np.full(n_rows, -1, dtype=np.int64)
    if len(rows):
        np.minimum.at(score, rows, values)
        order = np.lexsort((objs, values, steps, rows))
        rows_o = rows[order]
        first = np.ones(len(rows_o), dtype=bool)
        first[1:] = rows_o[1:] != rows_o[:-1]
        step[rows_o[first]] = steps[order][first]
        obj[rows_o[first]] = objs[order][first]
    return CollisionResult(score, step, obj)


class ContactFinder:
    """All ego-object contacts of a batch, for NC (t = 0..40) and TTC (projections t + k).

    Candidates are narrowed in two numpy passes before the exact test: (row, object) pairs of one scene
    whose whole-horizon extents meet, then (row, object, t, k) whose bounding circles meet. The survivors
    get ``geometry.obb_margin`` and, in its tolerance band, shapely.

    Args:
        states: ``(R, T_ego, 11)`` rear-axle states.
        corners: ``(R, T_ego, 4, 2)`` ego corners (FL, RL, RR, FR).
        centers: ``(R, T_ego, 2)`` ego box centres.
        row_scene: ``(R,)`` scene of each row.
        objs: the batch's objects; ``objs.present.shape[0]`` must be at least ``T_ego + max(ttc_offsets)``.
        ttc_offsets: TTC projection offsets in steps (official ``arange(0, 10, 3)``).
        dt_s: step length, seconds.
    """

    def __init__(
        self,
        states: F64,
        corners: F64,
        centers: F64,
        row_scene: I64,
        objs: ObjectBatch,
        ttc_offsets: tuple[int, ...],
        dt_s: float,
    ) -> None:
        self.states, self.corners, self.centers, self.objs = states, corners, centers, objs
        self.offsets = np.asarray(ttc_offsets, dtype=np.int64)
        n_t = states.shape[1]
        self.speeds = np.hypot(states[..., VELOCITY_X], states[..., VELOCITY_Y])
        heading = states[..., HEADING]
        self.cos, self.sin = np.cos(heading), np.sin(heading)
        # The official projection: corners + (cos(h) * speed, sin(h) * speed) * (k * dt), same operations.
        self.dxy_per_s = np.stack([self.cos * self.speeds, self.sin * self.speeds], axis=-1)
        self.delta_t = np.array([float(k) * dt_s for k in self.offsets])
        n_obs = n_t + int(self.offsets.max())
        self.obj_radius = objs.radius
        self.hits = self._find(row_scene, n_t, n_obs)

    def _find(self, row_scene: I64, n_t: int, n_obs: int) -> _Hits:
        objs, offsets = self.objs, self.offsets
        max_shift = self.speeds * self.delta_t.max()  # (R, T) farthest TTC projection, metres
        present = objs.present[:n_obs]
        oxy = objs.poses[:n_obs, :, :2]

        # 1. (row, object) pairs of the same scene whose whole-horizon extents meet.
        pr, pm = same_scene_pairs(row_scene, objs.scene)
        reach = EGO_CIRCUMRADIUS_M + max_shift.max(axis=1) + CONTACT_TOLERANCE_M
        emin = self.centers.min(axis=1) - reach[:, None]
        emax = self.centers.max(axis=1) + reach[:, None]
        # Extents over the steps each object is present (NaN elsewhere, which fmin / fmax skip; never present:
        # NaN extents, which meet nothing); x and y apart, on (T, M) arrays.
        ox, oy = objs.poses[:n_obs, :, 0], objs.poses[:n_obs, :, 1]
        omin, omax = np.empty((len(objs.scene), 2)), np.empty((len(objs.scene), 2))
        for c, coord in enumerate((ox, oy)):
            masked = np.where(present, coord, np.nan)
            omin[:, c] = np.fmin.reduce(masked, axis=0) - self.obj_radius
            omax[:, c] = np.fmax.reduce(masked, axis=0) + self.obj_radius
        keep = np.all((omin[pm] <= emax[pr]) & (omax[pm] >= emin[pr]), axis=-1)
        pr, pm = pr[keep], pm[keep]

        # 2. Bounding circles for every (pair, t, k), on dense per-pair arrays (no per-element gathers).
        ego_cx, ego_cy = self.centers[pr, :, 0], self.centers[pr, :, 1]  # (n, T)
        ego_vx, ego_vy = self.dxy_per_s[pr, :, 0], self.dxy_per_s[pr, :, 1]
        obj_cx, obj_cy = ox[:, pm].T, oy[:, pm].T  # (n, T_obs)
        obj_p = present[:, pm].T
        lim = EGO_CIRCUMRADIUS_M + self.obj_radius[pm] + CONTACT_TOLERANCE_M
        lim2 = (lim * lim)[:, None]
        parts = []
        for ki, k in enumerate(offsets):
            dx = obj_cx[:, k : k + n_t] - (ego_cx + ego_vx * self.delta_t[ki])
            dy = obj_cy[:, k : k + n_t] - (ego_cy + ego_vy * self.delta_t[ki])
            near = obj_p[:, k : k + n_t] & (dx * dx + dy * dy <= lim2)
            pair, t = np.nonzero(near)
            parts.append((pair, t, np.full(len(t), ki)))
        pair, t, ki = (np.concatenate(x) for x in zip(*parts))
        r, m, to = pr[pair], pm[pair], t + offsets[ki]

        # 3. The exact test: separating axes, shapely inside the tolerance band.
        shift = self.dxy_per_s[r, t] * self.delta_t[ki][:, None]
        d = oxy[to, m] - (self.centers[r, t] + shift)
        obj_heading = objs.poses[to, m, 2]
        margin = obb_margin(
            d,
            self.cos[r, t],
            self.sin[r, t],
            np.cos(obj_heading),
            np.sin(obj_heading),
            objs.half_length[m],
            objs.half_width[m],
        )
        hit = margin > CONTACT_TOLERANCE_M
        unsure = np.flatnonzero(np.abs(margin) <= CONTACT_TOLERANCE_M)
        if len(unsure):
            u = unsure
            ego = polygons(self.corners[r[u], t[u]] + shift[u][:, None, :])
            hit[u] = shapely.intersects(ego, _object_polygons(objs, to[u], m[u]))
        return _Hits(r[hit], m[hit], t[hit], offsets[ki[hit]])

    def nc_hits(self) -> _Hits:
        """Ego polygon at t against the objects at t (TTC's k = 0 projection: the same polygons)."""
        h = self.hits
        k0 = h.k == 0
        return _Hits(h.row[k0], h.obj[k0], h.t[k0], h.k[k0])

    def ttc_hits(self) -> _Hits:
        return self.hits


def no_at_fault_collisions(
    finder: ContactFinder, areas: EgoAreas, *, stopped_speed_mps: float, behind_deg: float
) -> CollisionResult:
    """NC per proposal row (official ``_calculate_no_at_fault_collision`` with ``get_collision_type``).

    Args:
        finder: the batch's contacts.
        areas: the batch's ego areas (lateral contacts are at fault off-lane or off-road).
        stopped_speed_mps: ``get_collision_type``'s threshold for a stopped ego or track (0.05 m/s).
        behind_deg: nuPlan's ``is_agent_behind`` angle (150°).
    """
    h = _first_per_pair(finder.nc_hits())
    objs, st = finder.objs, finder.states[h.row, h.t]
    ego_stopped = finder.speeds[h.row, h.t] <= stopped_speed_mps
    poly = _object_polygons(objs, h.t, h.obj)
    cx, cy = _centroids(poly)
    behind_rad = np.deg2rad(behind_deg)
    angle = relative_angle(st[:, X], st[:, Y], st[:, HEADING], cx, cy, (behind_rad,))
    behind = angle > behind_rad
    bumper = shapely.linestrings(finder.corners[h.row, h.t][:, [FRONT_LEFT, FRONT_RIGHT]])
    front = shapely.intersects(bumper, poly)
    off_lane = areas.multiple_lanes[h.row, h.t] | areas.non_drivable[h.row, h.t]
    at_fault = ~ego_stopped & (objs.track_stopped[h.obj] | (~behind & (front | off_lane)))
    value = np.where(objs.is_agent[h.obj], 0.0, 0.5)
    n_rows = finder.states.shape[0]
    return _reduce_rows(n_rows, h.row[at_fault], value[at_fault], h.t[at_fault], h.obj[at_fault])


def time_to_collision(
    finder: ContactFinder, areas: EgoAreas, *, stopped_speed_mps: float, ahead_deg: float, behind_deg: float
) -> CollisionResult:
    """TTC within bound per proposal row (official ``_calculate_ttc``, v1.1: every ego step t).

    Args:
        finder: the batch's contacts.
        areas: the batch's ego areas.
        stopped_speed_mps: ego speeds below this skip the contact (``stopped_speed_threshold``, 5e-3 m/s).
        ahead_deg, behind_deg: nuPlan's ``is_agent_ahead`` / ``is_agent_behind`` angles (30°, 150°).
    """
    h = finder.ttc_hits()
    moving = finder.speeds[h.row, h.t] >= stopped_speed_mps
    h = _first_per_pair(_Hits(h.row[moving], h.obj[moving], h.t[moving], h.k[moving]))
    st = finder.states[h.row, h.t]
    cx, cy = _centroids(_object_polygons(finder.objs, h.t + h.k, h.obj))
    ahead_rad, behind_rad = np.deg2rad(ahead_deg), np.deg2rad(behind_deg)
    angle = relative_angle(st[:, X], st[:, Y], st[:, HEADING], cx, cy, (ahead_rad, behind_rad))
    ahead, behind = angle < ahead_rad, angle > behind_rad
    exposed = (
        areas.multiple_lanes[h.row, h.t]
        | areas.non_drivable[h.row, h.t]
        | areas.rear_axle_in_intersection[h.row, h.t]
    )
    violation = ahead | (exposed & ~behind)
    n_rows = finder.states.shape[0]
    return _reduce_rows(
        n_rows, h.row[violation], np.zeros(int(violation.sum())), h.t[violation], h.obj[violation]
    )
