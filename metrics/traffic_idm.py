"""Reactive traffic for NAVSIM v2: nuPlan IDM agents on lane rails, as ``NavsimIDMTrafficAgents`` runs them.

The semantics are listed in :mod:`metrics.traffic_agents`; the map side and nuPlan's paths are in
:mod:`metrics.traffic_rails`; this module holds the simulation (:class:`IDMScene`).

How it stays exact and still vectorised: agents are updated in the official order (each sees the agents
before it already moved), but an agent's update only depends on the others when some occupancy geometry
intersects its path-to-go buffer. Each step first bounds every footprint (old and new) by discs and every
path-to-go by its bounding box; agents with nothing near their path take the free-road IDM update together,
in one numpy expression; only the few agents with something near their path run the exact shapely tests
(``intersects`` with the flat-capped path buffer, ``distance`` between footprints), one after the other.
The discs are conservative (a chord is never longer than its arc, and a box rotating about its centre stays
in its circumscribed disc), so the prefilter never changes a result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely

from metrics.pdm.state import PACIFICA
from metrics.pdm_scoring.geometry import box_corners, polygons
from metrics.traffic_rails import LaneRails, Paths, principal, starting_segments

__all__ = ["IDMParameters", "IDMScene", "IDMVehicles", "LaneRails", "NUM_STEPS"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

STEP_S = 0.1
NUM_STEPS = 41


@dataclass(frozen=True)
class IDMParameters:
    """``navsim_IDM_traffic_agents.yaml`` (units: m/s, m, s, m/s²)."""

    target_velocity_mps: float = 10.0
    min_gap_m: float = 1.0
    headway_s: float = 1.5
    accel_max_mps2: float = 1.0
    decel_max_mps2: float = 2.0
    radius_m: float = 100.0
    snap_threshold_m: float = 3.0
    stationary_speed_mps: float = 0.1
    heading_estimation_m: float = 0.5  # nuPlan polyline get_nearest_pose_from_position
    step_s: float = STEP_S


_CORNERS = np.array([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]])
#: Discs along a footprint's path part in the prefilter (more: tighter discs, more of them).
_PATH_SAMPLES = 12


def _box_discs(pose: F64, length: F64, width: F64) -> F64:
    """``(n, 3, 3)`` discs covering boxes: centres at -L/3, 0, L/3 along the heading, radius hypot(L/6, W/2)."""
    off = np.array([-1.0, 0.0, 1.0])[None, :] * (length / 3)[:, None]
    c, s = np.cos(pose[:, 2])[:, None], np.sin(pose[:, 2])[:, None]
    rad = np.hypot(length / 6, width / 2) + 1e-6
    return np.stack([pose[:, 0, None] + c * off, pose[:, 1, None] + s * off, np.repeat(rad[:, None], 3, 1)], -1)


def _box(pose: F64, length: float, width: float) -> shapely.Polygon:
    """An oriented box polygon (corners FL, RL, RR, FR) from a centre pose, metres."""
    c, s = np.cos(pose[2]), np.sin(pose[2])
    lx, ly = _CORNERS[:, 0] * (length / 2), _CORNERS[:, 1] * (width / 2)
    return shapely.polygons(np.stack([pose[0] + c * lx - s * ly, pose[1] + s * lx + c * ly], -1))


def _rear_axle_centred_box(state: F64) -> shapely.Polygon:
    """The ego box of ``build_ego_state_from_simulated_ego_states``: Pacifica centred on the rear axle."""
    c = box_corners(state[None, :3], np.array([PACIFICA.half_length]), np.array([PACIFICA.half_width]))
    return polygons(c)[0]




# --- the simulation ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IDMVehicles:
    """The current-frame vehicles of a scene (box-centre poses and global velocities at t = 0, map frame)."""

    poses: F64  # (V, 3)
    velocity_xy: F64  # (V, 2)
    length_m: F64  # (V,)
    width_m: F64  # (V,)


class IDMScene:
    """``build_idm_agents_on_map_rails`` + ``NavsimIDMAgentManager`` for one scene's vehicles.

    Args:
        vehicles: the current-frame vehicles in the official order (nuPlan's per-type order = annotation order).
        rails: the map's lanes and connectors.
        ego_box: the ego's real footprint at t = 0 (the initial collision check uses it).
        ego_speed_mps: replaces a NaN vehicle speed (nuPlan's fallback).
    """

    def __init__(self, vehicles: IDMVehicles, rails: LaneRails, ego_box: shapely.Geometry, ego_speed_mps: float,
                 params: IDMParameters | None = None) -> None:
        p = params if params is not None else IDMParameters()
        self.p = p
        self.v = vehicles
        n_veh = len(vehicles.poses)
        half_l, half_w = vehicles.length_m / 2, vehicles.width_m / 2
        self.box0 = polygons(box_corners(vehicles.poses, half_l, half_w))
        rail, progress, snapped = starting_segments(rails, vehicles.poses, p.heading_estimation_m)
        lateral = np.hypot(snapped[:, 0] - vehicles.poses[:, 0], snapped[:, 1] - vehicles.poses[:, 1])
        snapped_boxes = polygons(box_corners(np.nan_to_num(snapped), half_l, half_w))
        occupied = [ego_box]
        agents: list[int] = []
        for i in range(n_veh):
            if rail[i] < 0 or lateral[i] > p.snap_threshold_m:
                continue
            if shapely.intersects(snapped_boxes[i], np.array(occupied, dtype=object)).any():
                continue
            occupied.append(snapped_boxes[i])
            agents.append(i)
        ag = np.array(agents, dtype=np.int64)
        self.agents = ag
        self.n = len(ag)
        self.length = vehicles.length_m[ag]
        self.width = vehicles.width_m[ag]
        self.paths = Paths([rails.baselines[rail[i]] for i in agents]) if agents else None
        limit = rails.speed_limit_mps[rail[ag]]
        self.target = np.where(np.isfinite(limit) & (limit > 0), limit, p.target_velocity_mps)
        self.progress = progress[ag].astype(np.float64)
        speed = np.hypot(vehicles.velocity_xy[ag, 0], vehicles.velocity_xy[ag, 1])
        self.speed = np.where(np.isnan(speed), ego_speed_mps, speed)
        self.alive = np.ones(self.n, dtype=bool)
        # occupancy geometry of each agent: the path part between progresses fp_se (NaN: none) buffered by half
        # the width, and the box at fp_pose; at first only the snapped box
        self.fp_se = np.full((self.n, 2), np.nan)
        self.fp_pose = snapped[ag].copy()
        self.cur_pose = self.paths.poses(np.arange(self.n), self.paths.clamp(np.arange(self.n), self.progress)
                                         ) if agents else np.zeros((0, 3))
        self._fp_shape: dict[int, tuple[shapely.Geometry | None, shapely.Geometry]] = {}
        # discs (centre x, y, radius) covering each footprint: _PATH_SAMPLES along the path part, 3 on the box
        self.fp_disks = np.zeros((self.n, _PATH_SAMPLES + 3, 3))
        if agents:
            self.fp_disks[:, :_PATH_SAMPLES, 2] = -np.inf  # no path part yet
            self.fp_disks[:, _PATH_SAMPLES:] = _box_discs(snapped[ag], self.length, self.width)
        # parked / off-lane vehicles: the current vehicles that are not agents
        others = np.setdiff1d(np.arange(n_veh), ag)
        stationary = np.hypot(vehicles.velocity_xy[:, 0], vehicles.velocity_xy[:, 1]) < p.stationary_speed_mps
        p_idx, r_idx = rails.segments_containing(vehicles.poses[:, :2])
        in_lane = np.zeros(n_veh, dtype=bool)
        in_lane[p_idx[~rails.is_connector[r_idx]]] = True
        in_lanes = in_lane | rails.in_intersection(vehicles.poses[:, :2])
        off_rail = (rail >= 0) & (lateral > p.snap_threshold_m)
        self.parked = others[((stationary & ~in_lanes) | off_rail)[others]]

    # --- per-agent geometry ---------------------------------------------------------------------------

    def poses(self, a: I64) -> F64:
        assert self.paths is not None
        return self.paths.poses(a, self.paths.clamp(a, self.progress[a]))

    def _shape(self, a: int) -> tuple[shapely.Geometry | None, shapely.Geometry]:
        got = self._fp_shape.get(a)
        if got is None:
            assert self.paths is not None
            s, e = self.fp_se[a]
            part = None
            if not np.isnan(s):
                line = shapely.LineString(self.paths.trimmed(a, float(s), float(e)))
                part = shapely.buffer(line, self.width[a] / 2, cap_style="flat")
            got = (part, _box(self.fp_pose[a], float(self.length[a]), float(self.width[a])))
            self._fp_shape[a] = got
        return got

    def _set_footprints(self, a: I64) -> None:
        """``IDMAgent.projected_footprint`` after the agents moved: the path from ``p - L/2`` to
        ``p + L/2 + v·T`` buffered by half the width (flat caps), and the box (kept as two parts)."""
        assert self.paths is not None
        s = self.paths.clamp(a, self.progress[a] - self.length[a] / 2)
        e = self.paths.clamp(a, self.progress[a] + self.length[a] / 2 + self.speed[a] * self.p.headway_s)
        pose = self.paths.poses(a, self.paths.clamp(a, self.progress[a]))
        self.fp_se[a, 0], self.fp_se[a, 1] = s, e
        self.fp_pose[a] = pose
        self.cur_pose[a] = pose
        self.fp_disks[a, :_PATH_SAMPLES] = self._path_discs(a, s, e)
        self.fp_disks[a, _PATH_SAMPLES:] = _box_discs(pose, self.length[a], self.width[a])
        for i in a:
            self._fp_shape.pop(int(i), None)

    def _path_discs(self, a: I64, s: F64, e: F64) -> F64:
        """``(len(a), _PATH_SAMPLES, 3)`` discs covering the path between progresses s and e buffered by half
        the width: samples every ``(e - s) / (K - 1)`` metres of arc, radius half that plus half the width."""
        assert self.paths is not None
        k = np.linspace(0.0, 1.0, _PATH_SAMPLES)
        prog = s[:, None] + (e - s)[:, None] * k[None, :]
        pts = self.paths.poses(np.repeat(a, _PATH_SAMPLES), prog.ravel()).reshape(len(a), _PATH_SAMPLES, 3)
        rad = self.width[a] / 2 + (e - s) / (_PATH_SAMPLES - 1) / 2 + 1e-6
        return np.concatenate([pts[..., :2], np.repeat(rad[:, None, None], _PATH_SAMPLES, axis=1)], -1)

    # --- one step -------------------------------------------------------------------------------------

    def step(self, ego: F64) -> None:
        """``propagate_agents`` with the ego at ``ego`` (an 11-entry rear-axle state)."""
        p = self.p
        if self.n == 0:
            return
        self._v_old = self.speed.copy()
        self._p_old = self.progress.copy()
        paths = self.paths
        assert paths is not None
        live = np.flatnonzero(self.alive)
        cur = self.poses(live)
        far = np.hypot(cur[:, 0] - ego[0], cur[:, 1] - ego[1]) > p.radius_m
        self.alive[live[far]] = False
        live, cur = live[~far], cur[~far]
        if not len(live):
            return
        pc = paths.clamp(live, self.progress[live])
        heading = cur[:, 2].copy()
        r = self.width[live] / 2
        tb = paths.to_go_bounds(live, pc, cur) + np.stack([-r, -r, r, r], -1)
        # discs that bound every geometry an agent may meet this step: the ego (box centred on the rear axle),
        # the agents' current footprints, and a bound of their footprints after they move
        v_hi = self.speed[live] + p.accel_max_mps2 * p.step_s
        p_new = self.progress[live] + p.step_s * self.speed[live]
        s_new = paths.clamp(live, p_new - self.length[live] / 2)
        e_new = paths.clamp(live, p_new + self.length[live] / 2 + v_hi * p.headway_s)
        box_new = paths.poses(live, paths.clamp(live, p_new))  # exact: progress moves by dt · v_old
        ego_discs = _box_discs(ego[None, :3], np.array([PACIFICA.length]), np.array([PACIFICA.width]))[0]
        discs = np.concatenate([
            ego_discs,
            self.fp_disks[live].reshape(-1, 3),
            self._path_discs(live, s_new, e_new).reshape(-1, 3),
            _box_discs(box_new, self.length[live], self.width[live]).reshape(-1, 3),
        ])
        owner = np.concatenate([np.full(len(ego_discs), -1), np.repeat(live, _PATH_SAMPLES + 3),
                                np.repeat(live, _PATH_SAMPLES), np.repeat(live, 3)])
        near = ((discs[None, :, 0] + discs[None, :, 2] >= tb[:, None, 0])
                & (discs[None, :, 0] - discs[None, :, 2] <= tb[:, None, 2])
                & (discs[None, :, 1] + discs[None, :, 2] >= tb[:, None, 1])
                & (discs[None, :, 1] - discs[None, :, 2] <= tb[:, None, 3])
                & (owner[None, :] != live[:, None]))
        rows = np.flatnonzero(near.any(axis=1))
        if len(rows):
            lines = np.array([shapely.LineString(paths.to_go(int(live[k]), float(pc[k]))) for k in rows],
                             dtype=object)
            ki, di = np.nonzero(near[rows])
            d = shapely.distance(lines[ki], shapely.points(discs[di, :2]))
            near[rows[ki], di] = d <= r[rows[ki]] + discs[di, 2] + 1e-9
        busy = near.any(axis=1)
        # free road for everyone first (the lead is the end of the path); busy agents are redone in order
        gap = paths.end[live] - self.progress[live]
        self._idm(live, np.zeros(len(live)), gap, self.length[live] / 2)
        done: set[int] = set()
        ego_box: list[shapely.Geometry] = []
        for k in np.flatnonzero(busy):
            dk = discs[near[k]]
            clip = (float((dk[:, 0] - dk[:, 2]).min() - r[k] - 1.0), float((dk[:, 1] - dk[:, 2]).min() - r[k] - 1.0),
                    float((dk[:, 0] + dk[:, 2]).max() + r[k] + 1.0), float((dk[:, 1] + dk[:, 2]).max() + r[k] + 1.0))
            self._busy_agent(int(live[k]), float(pc[k]), float(heading[k]), ego, ego_box,
                             np.unique(owner[near[k]]), done, clip)
        rest = np.array([a for a in live if int(a) not in done], dtype=np.int64)
        if len(rest):
            self._set_footprints(rest)

    def _busy_agent(self, a: int, pc: float, heading: float, ego: F64, ego_box: list[shapely.Geometry],
                    owners: I64, done: set[int], clip: tuple[float, float, float, float]) -> None:
        """The exact leader search of ``propagate_agents`` for agent ``a`` (agents before it have moved).

        The path-to-go is clipped to ``clip`` (the candidates' discs grown by half the width and 1 m) before it
        is buffered: every candidate lies inside the discs, so the cut ends (with their flat caps) stay more
        than 1 m away from all of them and the intersection tests are unchanged.
        """
        paths = self.paths
        assert paths is not None
        parts: list[shapely.Geometry] = []
        part_owner: list[int] = []
        for b in owners:
            b = int(b)
            if b == -1:
                if not ego_box:
                    ego_box.append(_rear_axle_centred_box(ego))
                shapes: tuple[shapely.Geometry | None, ...] = (ego_box[0],)
            else:
                if b < a and b not in done:  # agents before a already moved: their new footprint counts
                    self._set_footprints(np.array([b]))
                    done.add(b)
                shapes = self._shape(b)
            for g in shapes:
                if g is not None:
                    parts.append(g)
                    part_owner.append(b)
        line = shapely.clip_by_rect(shapely.LineString(paths.to_go(a, pc)), *clip)
        buffer = shapely.buffer(line, self.width[a] / 2, cap_style="flat")
        geoms = np.array(parts, dtype=object)
        hits = shapely.intersects(geoms, buffer)
        if not hits.any():
            return  # free road: the update already written stands
        po = np.array(part_owner)[hits]
        own = np.array([g for g in self._shape(a) if g is not None], dtype=object)
        # distance between the agent's occupancy geometry and each intersecting entry (unions: min over parts)
        d = shapely.distance(own[:, None], geoms[hits][None, :]).min(axis=0)
        cand, inv = np.unique(po, return_inverse=True)
        dist = np.full(len(cand), np.inf)
        np.minimum.at(dist, inv, d)
        j = int(np.argmin(dist))
        b, gap = int(cand[j]), float(dist[j])
        if b == -1:
            lead_v, rel = float(np.hypot(ego[3], ego[4])), float(ego[2]) - heading
        else:
            # agents before a have moved (their pose and speed are new), the others not yet
            lead_v = float(self.speed[b] if b < a else self._v_old[b])
            rel = float(self.cur_pose[b, 2]) - heading
        lead = lead_v * float(np.cos(principal(rel)))
        self._idm(np.array([a]), np.array([lead]), np.array([gap]), np.array([0.0]))

    def _idm(self, a: I64, lead_v: F64, gap: F64, length_rear: F64, v: F64 | None = None,
             progress: F64 | None = None) -> None:
        """nuPlan ``IDMPolicy.solve_forward_euler_idm_policy`` from the pre-step state, written in place."""
        p = self.p
        v = self._v_old[a] if v is None else v
        prog = self._p_old[a] if progress is None else progress
        s_star = p.min_gap_m + v * p.headway_s + v * (v - lead_v) / (2 * np.sqrt(p.accel_max_mps2 * p.decel_max_mps2))
        s_alpha = np.maximum(gap - length_rear, p.min_gap_m)
        accel = p.accel_max_mps2 * (1 - (v / self.target[a]) ** 4 - (s_star / s_alpha) ** 2)
        self.progress[a] = prog + p.step_s * v
        self.speed[a] = np.maximum(v + p.step_s * np.minimum(np.maximum(-p.decel_max_mps2, accel), p.accel_max_mps2),
                                   0.0)

    def run(self, ego_states: F64) -> tuple[B, F64, F64]:
        """Steps 1..40; returns ``present (40, V)``, ``poses (40, V, 3)``, ``velocity (40, V, 2)`` per vehicle."""
        n_veh = len(self.v.poses)
        present = np.zeros((NUM_STEPS - 1, n_veh), dtype=bool)
        poses = np.zeros((NUM_STEPS - 1, n_veh, 3))
        vel = np.zeros((NUM_STEPS - 1, n_veh, 2))
        for k in range(1, NUM_STEPS):
            self.step(ego_states[k - 1])
            active = np.flatnonzero(self.alive)
            idx = self.agents[active]
            ap = self.poses(active) if len(active) else np.zeros((0, 3))
            present[k - 1, idx] = True
            poses[k - 1, idx] = ap
            vel[k - 1, idx, 0] = self.speed[active] * np.cos(ap[:, 2])
            vel[k - 1, idx, 1] = self.speed[active] * np.sin(ap[:, 2])
            self._add_parked(k - 1, idx, ap, present, poses, vel)
        return present, poses, vel

    def _add_parked(self, k: int, idx: I64, ap: F64, present: B, poses: F64, vel: F64) -> None:
        cand = self.parked
        if not len(cand):
            return
        if len(idx):
            reach = (np.hypot(self.v.length_m[cand], self.v.width_m[cand])[:, None]
                     + np.hypot(self.v.length_m[idx], self.v.width_m[idx])[None, :]) / 2
            d = np.hypot(self.v.poses[cand, None, 0] - ap[None, :, 0], self.v.poses[cand, None, 1] - ap[None, :, 1])
            close = d <= reach
            if close.any():
                ci, ai = np.nonzero(close)
                boxes = polygons(box_corners(ap[ai], self.v.length_m[idx[ai]] / 2, self.v.width_m[idx[ai]] / 2))
                hit = np.zeros(len(cand), dtype=bool)
                hit[ci[shapely.intersects(self.box0[cand[ci]], boxes)]] = True
                cand = cand[~hit]
        present[k, cand] = True
        poses[k, cand] = self.v.poses[cand]
        vel[k, cand] = self.v.velocity_xy[cand]
