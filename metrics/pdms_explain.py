"""Per-step evidence behind a PDMS v1.1 score, for one scene: why did this plan score what it did?

``metrics.pdms`` is built for throughput (contacts of a whole batch at once, bookkeeping replayed on the
hits) and reports only the first infraction per rule. This module recomputes, for the proposals of **one**
scene, every piece of evidence a person asks for, in the official scorer's own terms and loop order
(``PDMScorer`` of NAVSIM ``v1.1``): which corners of which state left the drivable area, every ego-object
contact with its nuPlan collision type and whether it was at fault, every TTC projection that hit something
and why it counted, the stretch driven against traffic and its 1-s windows, the six comfort signals with
their bounds, the progress along the centerline. The sub-scores are then re-derived from that evidence
alone; the tests assert they equal ``metrics.pdms.score_proposals`` on the same inputs.

It reuses the scorer's geometry (``pdm_scoring.geometry``: the official ego and box corner arithmetic and
nuPlan's relative angle) and is otherwise written plainly: straight shapely predicates on one scene's
polygons, and Python loops over the (few) contacts. Speed target: well under a second per scene.

Red lights: NAVSIM v1.1's scorer skips red-light geometry in NC and TTC (the ``red_light_token`` check), so
a red-light entry does not change PDMS; it is reported (``red_light_steps``) because EPDMS's TLC counts it
and because a person looking at the picture wants to see it.

Frames: global map frame, metres, radians; states are rear-axle ``StateIndex`` rows at t = 0, 0.1, .., 4 s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely
from scipy.signal import savgol_filter

from harness.map_query import MapLayer
from harness.scoring_scene import AGENT_TYPES, ObjectTimeline, ObjectType, ScoringScene
from metrics.pdm_scoring.comfort import (
    COMFORT_CHECKS,
    MAX_ABS_LAT_ACCEL_MPS2,
    MAX_ABS_LON_JERK_MPS3,
    MAX_ABS_MAG_JERK_MPS3,
    MAX_ABS_YAW_ACCEL_RADPS2,
    MAX_ABS_YAW_RATE_RADPS,
    MAX_LON_ACCEL_MPS2,
    MIN_LON_ACCEL_MPS2,
    phase_unwrap,
)
from metrics.pdm_scoring.geometry import (
    ACCELERATION_X,
    ACCELERATION_Y,
    CENTER,
    FRONT_LEFT,
    FRONT_RIGHT,
    HEADING,
    VELOCITY_X,
    VELOCITY_Y,
    X,
    Y,
    box_corners,
    ego_coords,
    polygons,
    relative_angle,
)
from metrics.pdms import NUM_STATES, PDMSConfig

F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

__all__ = ["COMFORT_BOUNDS", "CollisionType", "ComfortSignal", "ContactEvidence", "PDMSEvidence", "TTCEvidence",
           "explain_proposals"]

#: nuPlan's collision types (``CollisionType``), as strings.
CollisionType = str
STOPPED_EGO, STOPPED_TRACK = "stopped ego", "stopped track"
ACTIVE_REAR, ACTIVE_FRONT, ACTIVE_LATERAL = "active rear", "active front", "active lateral"

#: (low, high) strict bounds of each comfort check, in ``COMFORT_CHECKS`` order, with units.
COMFORT_BOUNDS: dict[str, tuple[float, float, str]] = {
    "lon_acceleration": (MIN_LON_ACCEL_MPS2, MAX_LON_ACCEL_MPS2, "m/s²"),
    "lat_acceleration": (-MAX_ABS_LAT_ACCEL_MPS2, MAX_ABS_LAT_ACCEL_MPS2, "m/s²"),
    "jerk": (-MAX_ABS_MAG_JERK_MPS3, MAX_ABS_MAG_JERK_MPS3, "m/s³"),
    "lon_jerk": (-MAX_ABS_LON_JERK_MPS3, MAX_ABS_LON_JERK_MPS3, "m/s³"),
    "yaw_acceleration": (-MAX_ABS_YAW_ACCEL_RADPS2, MAX_ABS_YAW_ACCEL_RADPS2, "rad/s²"),
    "yaw_rate": (-MAX_ABS_YAW_RATE_RADPS, MAX_ABS_YAW_RATE_RADPS, "rad/s"),
}

_DRIVABLE = (int(MapLayer.ROADBLOCK), int(MapLayer.INTERSECTION), int(MapLayer.CARPARK_AREA))
_LANES = (int(MapLayer.LANE), int(MapLayer.LANE_CONNECTOR))


@dataclass(frozen=True)
class ContactEvidence:
    """An ego-object contact that NC counted (the first of its object, or an at-fault one).

    Attributes:
        step: state index (t = step * 0.1 s).
        object_index: index into the scene's object timeline; object_token, object_type as there.
        collision_type: nuPlan's type (``STOPPED_EGO`` .. ``ACTIVE_LATERAL``).
        ego_off_lane: the ego straddles lanes or is off the road at that step (a lateral hit is then at fault).
        at_fault: the contact lowers NC.
        nc_value: NC after this contact alone: 0 (agent), 0.5 (static object) if at fault, else 1.
        reason: one sentence a person can read.
    """

    step: int
    object_index: int
    object_token: str
    object_type: int
    collision_type: CollisionType
    ego_off_lane: bool
    at_fault: bool
    nc_value: float
    reason: str


@dataclass(frozen=True)
class TTCEvidence:
    """A TTC projection that hit an object and was judged (skipped contacts are not listed).

    Attributes:
        step: ego state index t; offset_steps: k (the ego is projected k * 0.1 s ahead at its speed).
        object_index, object_token: the object at step t + k.
        violation: TTC drops to 0; else the object is ignored from then on.
        ego_polygon_xy: ``(4, 2)`` the projected ego corners (FL, RL, RR, FR), global frame.
        reason: one sentence.
    """

    step: int
    offset_steps: int
    object_index: int
    object_token: str
    violation: bool
    ego_polygon_xy: F64
    reason: str


@dataclass(frozen=True)
class ComfortSignal:
    """One comfort check's filtered signal over the 41 states and its strict bounds."""

    name: str
    values: F64
    low: float
    high: float
    unit: str

    @property
    def ok(self) -> bool:
        return bool(np.all((self.values > self.low) & (self.values < self.high)))

    @property
    def violating_steps(self) -> tuple[int, ...]:
        return tuple(int(i) for i in np.flatnonzero(~((self.values > self.low) & (self.values < self.high))))


@dataclass(frozen=True)
class PDMSEvidence:
    """Everything behind one proposal's PDMS sub-scores. Arrays over the 41 states unless noted.

    Attributes:
        states: ``(41, 11)`` simulated rear-axle states; corners ``(41, 4, 2)`` (FL, RL, RR, FR);
            centers ``(41, 2)`` box centres; all global frame.
        corner_on_road: ``(41, 4)`` the corner lies strictly inside some ROADBLOCK/INTERSECTION/CARPARK polygon.
        non_drivable, multiple_lanes, oncoming, rear_axle_in_intersection: the ego-area flags per state.
        oncoming_progress_m: ``(41,)`` centre progress of each step counted as oncoming (0 elsewhere).
        oncoming_window_m: ``(41,)`` DDC's 1-s window sums ending at each step.
        contacts: NC's counted contacts in the official order; ttc: TTC's judged projections.
        red_light_steps: states whose footprint overlaps a red-light connector that is red then (not scored
            by v1.1, see the module docstring).
        comfort: the six comfort signals.
        progress_m: centre progress along the centerline from t = 0 to 4 s, >= 0.
        no_at_fault_collisions .. comfort_score, ego_progress, score: the sub-scores re-derived from all this.
    """

    states: F64
    corners: F64
    centers: F64
    corner_on_road: B
    non_drivable: B
    multiple_lanes: B
    oncoming: B
    rear_axle_in_intersection: B
    oncoming_progress_m: F64
    oncoming_window_m: F64
    contacts: tuple[ContactEvidence, ...]
    ttc: tuple[TTCEvidence, ...]
    red_light_steps: tuple[int, ...]
    comfort: tuple[ComfortSignal, ...]
    progress_m: float
    no_at_fault_collisions: float
    drivable_area_compliance: float
    driving_direction_compliance: float
    time_to_collision_within_bound: float
    comfort_score: float
    ego_progress: float
    score: float

    @property
    def collision_step(self) -> int:
        """First at-fault contact step, -1 if none."""
        steps = [c.step for c in self.contacts if c.at_fault]
        return min(steps) if steps else -1

    @property
    def at_fault_contact(self) -> ContactEvidence | None:
        """The contact behind NC: the earliest at-fault one, the lowest NC value first on ties."""
        hits = [c for c in self.contacts if c.at_fault]
        return min(hits, key=lambda c: (c.step, c.nc_value, c.object_index)) if hits else None

    @property
    def off_road_steps(self) -> tuple[int, ...]:
        return tuple(int(i) for i in np.flatnonzero(self.non_drivable))

    @property
    def ttc_violation(self) -> TTCEvidence | None:
        hits = [e for e in self.ttc if e.violation]
        return min(hits, key=lambda e: (e.step, e.offset_steps)) if hits else None

    @property
    def oncoming_stretch(self) -> tuple[int, ...]:
        """Steps of the worst 1-s window that were driven against traffic (empty if none)."""
        if not np.any(self.oncoming_progress_m > 0):
            return ()
        end = int(np.argmax(self.oncoming_window_m))
        horizon = _ddc_horizon(PDMSConfig())
        return tuple(int(i) for i in range(max(0, end - horizon), end + 1) if self.oncoming[i])


def _ddc_horizon(cfg: PDMSConfig) -> int:
    return int(cfg.driving_direction_horizon_s / cfg.step_s)


def explain_proposals(
    scene: ScoringScene,
    states: npt.ArrayLike,
    *,
    objects: ObjectTimeline | None = None,
    config: PDMSConfig | None = None,
) -> tuple[PDMSEvidence, ...]:
    """The evidence behind every proposal's PDMS (EP is normalised over all of them, as the scorer does).

    Args:
        scene: the token's scoring scene, global frame.
        states: ``(P, 41, 11)`` simulated states (index 0 is PDM-Closed in NAVSIM's use).
        objects: the object timeline; ``scene.objects`` (log replay) when None.
        config: the scorer's weights and thresholds (the official ones when None).

    Returns:
        One ``PDMSEvidence`` per proposal.
    """
    config = config or PDMSConfig()
    arr = np.asarray(states, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[1] != NUM_STATES or not np.all(np.isfinite(arr)):
        raise ValueError(f"scene {scene.token}: states must be finite (P, {NUM_STATES}, 11), got {arr.shape}")
    obj = scene.objects if objects is None else objects
    if obj.num_steps < config.object_steps_needed:
        raise ValueError(f"scene {scene.token}: {obj.num_steps} object steps, need {config.object_steps_needed}")
    coords = ego_coords(arr)  # (P, 41, 5, 2)
    parts = [_proposal(scene, arr[p], coords[p], obj, config) for p in range(len(arr))]
    multi = np.array([p["nc"] * p["dac"] for p in parts])
    masked = np.array([p["progress"] for p in parts]) * multi
    best = masked.max()
    if best > config.progress_distance_threshold_m:
        ep = masked / best
    else:
        ep = np.where(multi == 0.0, 0.0, 1.0)
    w = config.weights
    out = []
    for p, e, m in zip(parts, ep, multi, strict=True):
        weighted = (((e * w[0] + p["ttc"] * w[1]) + p["comfort_score"] * w[2]) + p["ddc"] * w[3]) / w.sum()
        out.append(PDMSEvidence(
            states=p["states"], corners=p["corners"], centers=p["centers"], corner_on_road=p["corner_on_road"],
            non_drivable=p["non_drivable"], multiple_lanes=p["multiple_lanes"], oncoming=p["oncoming"],
            rear_axle_in_intersection=p["in_intersection"], oncoming_progress_m=p["oncoming_progress"],
            oncoming_window_m=p["windows"], contacts=p["contacts"], ttc=p["ttc_events"],
            red_light_steps=p["red_light_steps"], comfort=p["comfort"], progress_m=float(p["progress"]),
            no_at_fault_collisions=float(p["nc"]), drivable_area_compliance=float(p["dac"]),
            driving_direction_compliance=float(p["ddc"]), time_to_collision_within_bound=float(p["ttc"]),
            comfort_score=float(p["comfort_score"]), ego_progress=float(e), score=float(m * weighted),
        ))
    return tuple(out)


# --- one proposal ---------------------------------------------------------------------------------------


def _contains(geoms: npt.NDArray[np.object_], xy: F64) -> B:
    """``(N, Q)``: point q strictly inside polygon n (the official ``shapely.vectorized.contains``)."""
    out = np.zeros((len(geoms), len(xy)), dtype=bool)
    if len(geoms) == 0 or len(xy) == 0:
        return out
    b = shapely.bounds(geoms)
    cand = ((xy[None, :, 0] > b[:, None, 0]) & (xy[None, :, 0] < b[:, None, 2])
            & (xy[None, :, 1] > b[:, None, 1]) & (xy[None, :, 1] < b[:, None, 3]))
    n, q = np.nonzero(cand)
    shapely.prepare(geoms)  # a cache on the geometry objects; the predicate is unchanged
    out[n, q] = shapely.contains_xy(geoms[n], xy[q, 0], xy[q, 1])
    return out


def _proposal(scene: ScoringScene, st: F64, coords: F64, obj: ObjectTimeline, cfg: PDMSConfig) -> dict:
    n_t = NUM_STATES
    corners, centers = coords[:, :4], coords[:, CENTER]
    geoms = np.asarray(scene.drivable_polygons, dtype=object)
    types = np.asarray(scene.drivable_types, dtype=np.int64)
    is_lane = np.isin(types, _LANES)
    on_route = is_lane & np.isin(scene.drivable_ids, scene.route_lane_ids)
    inside = _contains(geoms, coords.reshape(-1, 2)).reshape(len(geoms), n_t, 5)  # (N, T, 5)
    corner_in = inside[:, :, :4]
    corner_on_road = corner_in[np.isin(types, _DRIVABLE)].any(axis=0)  # (T, 4)
    non_drivable = corner_on_road.sum(axis=-1) < 4
    lane_counts = corner_in[is_lane].sum(axis=-1)  # (lanes, T): corners per lane polygon
    multiple_lanes = ((lane_counts > 0).sum(axis=0) > 1) & np.all(lane_counts != 4, axis=0)
    oncoming = ~inside[on_route, :, 4].any(axis=0)
    inter = geoms[types == int(MapLayer.INTERSECTION)]
    in_intersection = _contains(inter, st[:, [X, Y]]).any(axis=0)

    step_len = np.zeros(n_t)
    step_len[1:] = np.linalg.norm(centers[1:] - centers[:-1], axis=-1)
    onc = np.where(oncoming, step_len, 0.0)
    h = _ddc_horizon(cfg)
    windows = np.array([onc[max(0, t - h): t + 1].sum() for t in range(n_t)])
    worst = windows.max()
    ddc = 1.0 if worst < cfg.driving_direction_compliance_threshold_m else (
        0.5 if worst < cfg.driving_direction_violation_threshold_m else 0.0)

    speeds = np.hypot(st[:, VELOCITY_X], st[:, VELOCITY_Y])
    half_l, half_w = obj.size_lwh[:, 0] / 2.0, obj.size_lwh[:, 1] / 2.0
    is_agent = np.isin(obj.types, [int(t) for t in AGENT_TYPES])
    track_stopped = ~is_agent | (np.hypot(*obj.first_velocity_xy.T) <= cfg.collision_stopped_speed_mps)
    off_lane = multiple_lanes | non_drivable
    contacts, nc = _contacts(st, corners, speeds, obj, half_l, half_w, is_agent, track_stopped, off_lane, cfg)
    ttc_events, ttc = _ttc(st, corners, speeds, obj, half_l, half_w, off_lane | in_intersection, cfg)

    line = shapely.LineString(np.asarray(scene.centerline[:, :2], dtype=np.float64))
    s0, s1 = shapely.line_locate_point(line, shapely.points(centers[[0, -1]]))
    comfort = _comfort(st, cfg)
    return dict(
        states=st, corners=corners, centers=centers, corner_on_road=corner_on_road, non_drivable=non_drivable,
        multiple_lanes=multiple_lanes, oncoming=oncoming, in_intersection=in_intersection,
        oncoming_progress=onc, windows=windows, contacts=contacts, ttc_events=ttc_events,
        red_light_steps=_red_light_steps(scene, corners), comfort=comfort, progress=max(float(s1 - s0), 0.0),
        nc=nc, dac=0.0 if non_drivable.any() else 1.0, ddc=ddc, ttc=ttc,
        comfort_score=1.0 if all(c.ok for c in comfort) else 0.0,
    )


def _object_polygon(obj: ObjectTimeline, t: int, m: int, half_l: F64, half_w: F64) -> shapely.Polygon:
    return polygons(box_corners(obj.poses[t, m][None], half_l[m], half_w[m]))[0]


def _angle(st: F64, poly: shapely.Polygon, crit: tuple[float, ...]) -> float:
    c = shapely.centroid(poly)
    one = np.ones(1)
    return float(relative_angle(st[X] * one, st[Y] * one, st[HEADING] * one, shapely.get_x(c) * one,
                                shapely.get_y(c) * one, crit)[0])


def _type_name(t: int) -> str:
    try:
        return ObjectType(int(t)).name.lower()
    except ValueError:
        return f"type {t}"


def _contacts(st: F64, corners: F64, speeds: F64, obj: ObjectTimeline, half_l: F64, half_w: F64, is_agent: B,
              track_stopped: B, off_lane: B, cfg: PDMSConfig) -> tuple[tuple[ContactEvidence, ...], float]:
    """NC in the official loop order: per step, every object the ego polygon intersects (not yet ignored)."""
    n_t = NUM_STATES
    ego = polygons(corners)
    t_idx, m_idx = np.nonzero(obj.present[:n_t])
    boxes = polygons(box_corners(obj.poses[t_idx, m_idx], half_l[m_idx], half_w[m_idx]))
    hit = shapely.intersects(ego[t_idx], boxes)
    ignored: set[int] = set()
    faulted: set[int] = set()  # at-fault objects stay counted officially; listed once here
    out: list[ContactEvidence] = []
    nc = 1.0
    behind_rad = np.deg2rad(cfg.behind_angle_deg)
    for t, m, poly in sorted(zip(t_idx[hit].tolist(), m_idx[hit].tolist(), boxes[hit]), key=lambda x: x[:2]):
        if m in ignored or m in faulted:
            continue
        if speeds[t] <= cfg.collision_stopped_speed_mps:
            kind = STOPPED_EGO
        elif track_stopped[m]:
            kind = STOPPED_TRACK
        elif _angle(st[t], poly, (behind_rad,)) > behind_rad:
            kind = ACTIVE_REAR
        elif shapely.intersects(shapely.LineString(corners[t, [FRONT_LEFT, FRONT_RIGHT]]), poly):
            kind = ACTIVE_FRONT
        else:
            kind = ACTIVE_LATERAL
        at_fault = kind in (STOPPED_TRACK, ACTIVE_FRONT) or (kind == ACTIVE_LATERAL and bool(off_lane[t]))
        value = (0.0 if is_agent[m] else 0.5) if at_fault else 1.0
        what = f"{_type_name(obj.types[m])} {obj.tokens[m]}"
        if at_fault:
            nc = min(nc, value)
            faulted.add(m)
            why = {STOPPED_TRACK: "the ego, moving, hit a stopped or static object",
                   ACTIVE_FRONT: "the ego's front bumper hit it",
                   ACTIVE_LATERAL: "side contact while the ego straddled lanes or was off the road"}[kind]
            reason = f"at fault at t={t * cfg.step_s:.1f}s with {what}: {why} (NC {value:g})"
        else:
            why = {STOPPED_EGO: "the ego was stopped", ACTIVE_REAR: "it hit the ego from behind",
                   ACTIVE_LATERAL: "side contact within the ego's own lane"}[kind]
            reason = f"not at fault at t={t * cfg.step_s:.1f}s with {what}: {why}; ignored from then on"
            ignored.add(m)
        out.append(ContactEvidence(int(t), int(m), str(obj.tokens[m]), int(obj.types[m]), kind, bool(off_lane[t]),
                                   at_fault, value, reason))
    return tuple(out), nc


def _ttc(st: F64, corners: F64, speeds: F64, obj: ObjectTimeline, half_l: F64, half_w: F64, exposed: B,
         cfg: PDMSConfig) -> tuple[tuple[TTCEvidence, ...], float]:
    """TTC in the official loop order: per step t, per projection k, the objects at t + k the projection hits."""
    n_t = NUM_STATES
    offsets = np.asarray(cfg.ttc_offsets_steps, dtype=np.int64)
    dxy = np.stack([np.cos(st[:, HEADING]) * speeds, np.sin(st[:, HEADING]) * speeds], axis=-1)  # (T, 2)
    shifted = corners[:, None] + (dxy[:, None, None, :] * (offsets.astype(np.float64) * cfg.step_s)[None, :, None, None])
    ego = polygons(shifted)  # (T, K)
    t_all, k_all = np.meshgrid(np.arange(n_t), np.arange(len(offsets)), indexing="ij")
    t_all, k_all = t_all.ravel(), k_all.ravel()
    pres = obj.present[t_all + offsets[k_all]]  # (T*K, M)
    row, m_idx = np.nonzero(pres)
    t_idx, k_idx = t_all[row], k_all[row]
    to = t_idx + offsets[k_idx]
    boxes = polygons(box_corners(obj.poses[to, m_idx], half_l[m_idx], half_w[m_idx]))
    hit = shapely.intersects(ego[t_idx, k_idx], boxes)
    ahead_rad, behind_rad = np.deg2rad(cfg.ahead_angle_deg), np.deg2rad(cfg.behind_angle_deg)
    ignored: set[int] = set()
    faulted: set[int] = set()  # violations are listed once per object
    out: list[TTCEvidence] = []
    score = 1.0
    order = sorted(zip(t_idx[hit].tolist(), k_idx[hit].tolist(), m_idx[hit].tolist(), boxes[hit]),
                   key=lambda x: x[:3])
    for t, k, m, poly in order:
        if m in ignored or m in faulted or speeds[t] < cfg.stopped_speed_threshold_mps:
            continue
        angle = _angle(st[t], poly, (ahead_rad, behind_rad))
        ahead, behind = angle < ahead_rad, angle > behind_rad
        violation = bool(ahead or (exposed[t] and not behind))
        kk = int(offsets[k])
        what = f"{_type_name(obj.types[m])} {obj.tokens[m]}"
        when = f"t={t * cfg.step_s:.1f}s projected {kk * cfg.step_s:.1f}s ahead"
        if violation:
            score = 0.0
            faulted.add(m)
            why = "it is ahead of the ego" if ahead else ("the ego straddles lanes, is off the road or in an "
                                                          "intersection, and it is not behind")
            reason = f"TTC violation at {when}: would hit {what}; {why}"
        else:
            reason = f"projection at {when} meets {what}, not ahead (and the ego in its lane): ignored from then on"
            ignored.add(m)
        out.append(TTCEvidence(int(t), kk, int(m), str(obj.tokens[m]), violation, shifted[t, k], reason))
    return tuple(out), score


def _red_light_steps(scene: ScoringScene, corners: F64) -> tuple[int, ...]:
    if len(scene.light_connector_ids) == 0:
        return ()
    ego = polygons(corners)  # (T,)
    lights = np.asarray(scene.light_polygons, dtype=object)
    meets = shapely.intersects(ego[:, None], lights[None, :])  # (T, L)
    red = scene.red_light_mask[: len(ego)]
    return tuple(int(t) for t in np.flatnonzero((meets & red).any(axis=1)))


def _comfort(st: F64, cfg: PDMSConfig) -> tuple[ComfortSignal, ...]:
    """nuPlan's comfort signals with SciPy's ``savgol_filter`` (mode "interp"), rounded to 8 decimals."""
    n_t = len(st)
    dx = float(np.diff(np.arange(n_t, dtype=np.float64) * cfg.step_s).mean())  # as the scorer derives it

    def sg(x: F64, window: int, poly: int, deriv: int = 0, delta: float = 1.0) -> F64:
        return np.round(savgol_filter(x, window_length=min(window, n_t), polyorder=poly, deriv=deriv,
                                      delta=delta), 8)

    ax, ay = st[:, ACCELERATION_X], st[:, ACCELERATION_Y]
    heading = phase_unwrap(st[:, HEADING])
    values = {
        "lon_acceleration": sg(ax, n_t, 2),
        "lat_acceleration": sg(ay, n_t, 2),
        "jerk": sg(sg(np.hypot(ax, ay), 8, 2), n_t, 2, 1, dx),
        "lon_jerk": sg(sg(ax, 8, 2), n_t, 2, 1, dx),
        "yaw_acceleration": sg(heading, 5, 3, 2, dx),
        "yaw_rate": sg(heading, 5, 2, 1, dx),
    }
    return tuple(ComfortSignal(name, values[name], *COMFORT_BOUNDS[name]) for name in COMFORT_CHECKS)
