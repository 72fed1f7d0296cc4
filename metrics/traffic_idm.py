"""Reactive traffic for NAVSIM v2: nuPlan IDM agents on lane rails, as ``NavsimIDMTrafficAgents`` runs them.

The semantics are listed in :mod:`metrics.traffic_agents`; the map side and nuPlan's paths are in
:mod:`metrics.traffic_rails`; this module holds the simulation (:class:`IDMScene`).

How it stays exact and still vectorised: agents are updated in the official order (each sees the agents
before it already moved), but an agent's update only depends on the others when some occupancy geometry
intersects its path-to-go buffer. Each step first bounds every footprint (old and new) by discs and every
path-to-go by its bounding box and the boxes of its 4-segment chunks (8 chunks to a super-chunk); agents with
nothing near their path take the free-road IDM update together, in one numpy expression. The agents with
something near their path ("busy") run the leader search in dependency levels: a busy agent waits only for
the earlier busy agents among its candidates (it must see where they moved to), so each level holds agents
that do not see each other and is computed together; agents after it are seen where they were before the
step, as in the official loop. The intersects test of a candidate with the flat-capped path-to-go buffer is
decided in numpy where it is clear (a point of the candidate well inside a to-go segment's rectangle: hit;
all of it well outside every segment's reach: miss; 5 % of the half width as margin, over GEOS's buffer
approximations; :mod:`metrics.traffic_idm_hits`; a candidate on the agent's own lane is first tried on
the segments around its middle point's progress) and by shapely near the edge only; the gap (``distance`` between footprints) is always
shapely's, measured only for the geometry pairs whose disc lower bound does not exceed the nearest measured
one. The discs are conservative (a chord is never longer than its arc, and a box rotating about its centre
stays in its circumscribed disc), so no prefilter changes a result.

Many simulations run together (:class:`IDMBatch`: every (scene, ego rollout) of a scoring chunk, agents
numbered simulation by simulation, candidates from the own simulation only, each level of every simulation
in one call); each gives the timeline of a run of its own. ``benchmarks/bench_two_stage.py`` compares the
rows against the one-scene-at-a-time implementation's git revision (93d9b74, itself checked against the
official code) and an older per-agent loop.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import shapely

from metrics.pdm.state import PACIFICA
from metrics.pdm_scoring.geometry import box_corners, polygons
from metrics.traffic_idm_geometry import (
    _MID_K,
    _PATH_SAMPLES,
    _box_discs,
    _boxes,
    _discs_distance,
    _Footprints,
    _nearest_as_nuplan,
    _ragged,
    _same_sim_pairs,
)
from metrics.traffic_idm_hits import clear_hits
from metrics.traffic_idm_start import NUM_STEPS, IDMParameters, IDMSim, IDMVehicles, _SimStart, _start
from metrics.traffic_rails import LaneRails, Paths, principal

__all__ = ["IDMParameters", "IDMScene", "IDMVehicles", "LaneRails", "NUM_STEPS"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

# --- the simulation ----------------------------------------------------------------------------------------


class IDMBatch:
    """``build_idm_agents_on_map_rails`` + ``NavsimIDMAgentManager`` for the vehicles of many simulations at once.

    Every simulation (a scene with one ego rollout) is independent: agents are numbered simulation by simulation
    (each in the official order), candidate leaders come from the agent's own simulation only (sparse pairs), the
    ego entry is the simulation's own, and the dependency level ``L`` of every simulation is searched in one
    ``_leaders`` call. Each simulation's result equals a one-simulation batch bit for bit (the one-scene path
    keys are reproduced, see :meth:`Paths._search`).
    """

    def __init__(self, sims: list[IDMSim], params: IDMParameters | None = None,
                 starts: list[_SimStart] | None = None) -> None:
        p = params if params is not None else IDMParameters()
        self.p = p
        self.sims = sims
        self.n_sims = len(sims)
        st = starts if starts is not None else [_start(s, p) for s in sims]
        self.starts = st
        counts = np.array([len(s.agents) for s in st], dtype=np.int64)
        self.agent_start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        n_veh = np.array([len(s.vehicles.poses) for s in sims], dtype=np.int64)
        self.veh_start = np.concatenate([[0], np.cumsum(n_veh)]).astype(np.int64)
        self.sim_of = np.repeat(np.arange(self.n_sims), counts)
        self.n = int(counts.sum())
        cat = (lambda xs, shape: np.concatenate(xs) if xs else np.zeros(shape))  # noqa: E731
        self.veh_poses = cat([s.vehicles.poses for s in sims], (0, 3))
        self.veh_vel = cat([s.vehicles.velocity_xy for s in sims], (0, 2))
        self.veh_length = cat([s.vehicles.length_m for s in sims], (0,))
        self.veh_width = cat([s.vehicles.width_m for s in sims], (0,))
        self.agent_veh = cat([s.agents + v0 for s, v0 in zip(st, self.veh_start, strict=False)], (0,)).astype(np.int64)
        self.length = self.veh_length[self.agent_veh]
        self.width = self.veh_width[self.agent_veh]
        baselines = [sim.rails.baselines[r] for sim, s in zip(sims, st, strict=True) for r in s.rail.tolist()]
        local = np.arange(self.n, dtype=np.int64) - np.repeat(self.agent_start[:-1], counts)
        self.paths = Paths(baselines, local) if self.n else None
        self.target = cat([s.target for s in st], (0,))
        self.progress = cat([s.progress for s in st], (0,))
        self.speed = cat([s.speed for s in st], (0,))
        snapped = cat([s.snapped for s in st], (0, 3))
        self.alive = np.ones(self.n, dtype=bool)
        # occupancy geometry of each agent: the path part between progresses fp_se (NaN: none) buffered by half
        # the width, and the box at fp_pose; at first only the snapped box
        self.fp_se = np.full((self.n, 2), np.nan)
        self.fp_pose = snapped.copy()
        # progress of the middle disc centre of each part (path part, box) on the agent's own path (NaN: unknown)
        self.fp_mid = np.full((self.n, 2), np.nan)
        all_a = np.arange(self.n)
        self.cur_pose = self.paths.poses(all_a, self.paths.clamp(all_a, self.progress)) if self.n else np.zeros((0, 3))
        self._geom = np.full((self.n, 2), None, dtype=object)  # built occupancy geometries (path part, box)
        self._built = np.zeros(self.n, dtype=bool)
        # discs (centre x, y, radius) covering each footprint: _PATH_SAMPLES along the path part, 3 on the box
        self.fp_disks = np.zeros((self.n, _PATH_SAMPLES + 3, 3))
        if self.n:
            self.fp_disks[:, :_PATH_SAMPLES, 2] = -np.inf  # no path part yet
            self.fp_disks[:, _PATH_SAMPLES:] = _box_discs(snapped, self.length, self.width)
        self.parked = cat([s.parked + v0 for s, v0 in zip(st, self.veh_start, strict=False)], (0,)).astype(np.int64)
        self.box0 = polygons(box_corners(self.veh_poses, self.veh_length / 2, self.veh_width / 2))

    # --- per-agent geometry ---------------------------------------------------------------------------

    def poses(self, a: I64) -> F64:
        assert self.paths is not None
        return self.paths.poses(a, self.paths.clamp(a, self.progress[a]))

    def _set_footprints(self, a: I64, prev: _Footprints | None = None) -> None:
        """``IDMAgent.projected_footprint`` after the agents moved: the path from ``p - L/2`` to
        ``p + L/2 + v·T`` buffered by half the width (flat caps), and the box (kept as two parts).

        An agent whose footprint did not change (a stopped vehicle) keeps the geometries built for the
        previous one (``prev``'s, or those in place): the same inputs give the same shapes."""
        assert self.paths is not None
        if not len(a):
            return
        s = self.paths.clamp(a, self.progress[a] - self.length[a] / 2)
        e = self.paths.clamp(a, self.progress[a] + self.length[a] / 2 + self.speed[a] * self.p.headway_s)
        pose = self.paths.poses(a, self.paths.clamp(a, self.progress[a]))
        same = (self.fp_se[a, 0] == s) & (self.fp_se[a, 1] == e) & (self.fp_pose[a] == pose).all(axis=1)
        if prev is not None:
            keep = a[same & prev.built[a]]
            self._geom[keep] = prev.geom[keep]
            self._built[keep] = True
        else:
            self._built[a[~same]] = False
        self.fp_se[a, 0], self.fp_se[a, 1] = s, e
        self.fp_pose[a] = pose
        self.fp_mid[a, 0], self.fp_mid[a, 1] = s + (e - s) * _MID_K, self.paths.clamp(a, self.progress[a])
        self.cur_pose[a] = pose
        self.fp_disks[a, :_PATH_SAMPLES] = self._path_discs(a, s, e)
        self.fp_disks[a, _PATH_SAMPLES:] = _box_discs(pose, self.length[a], self.width[a])

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

    def step(self, egos: F64) -> None:
        """``propagate_agents`` of every simulation, simulation ``s`` with its ego at ``egos[s]`` (11-entry
        rear-axle states)."""
        p = self.p
        if self.n == 0:
            return
        self._v_old = self.speed.copy()
        self._p_old = self.progress.copy()
        paths = self.paths
        assert paths is not None
        live = np.flatnonzero(self.alive)
        cur = self.poses(live)
        eg = egos[self.sim_of[live]]
        far = np.hypot(cur[:, 0] - eg[:, 0], cur[:, 1] - eg[:, 1]) > p.radius_m
        self.alive[live[far]] = False
        live, cur = live[~far], cur[~far]
        if not len(live):
            return
        sim = self.sim_of[live]
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
        sims = np.unique(sim)
        ego_discs = np.zeros((self.n_sims, 3, 3))
        ego_discs[sims] = _box_discs(egos[sims, :3], np.full(len(sims), PACIFICA.length),
                                     np.full(len(sims), PACIFICA.width))
        n_live = len(live)
        per = 2 * _PATH_SAMPLES + 6
        # one block of discs per live agent (current footprint, bound of the new one) and per simulation's ego
        agent_discs = np.concatenate([self.fp_disks[live], self._path_discs(live, s_new, e_new),
                                      _box_discs(box_new, self.length[live], self.width[live])], 1)
        discs = np.concatenate([agent_discs.reshape(-1, 3), ego_discs[sims].reshape(-1, 3)])
        blk_owner = np.concatenate([live, np.full(len(sims), -1)])
        blk_sim = np.concatenate([sim, sims])
        blk_first = np.concatenate([np.arange(n_live) * per, n_live * per + 3 * np.arange(len(sims))])
        blk_count = np.concatenate([np.full(n_live, per), np.full(len(sims), 3)])
        lo_x, hi_x = discs[:, 0] - discs[:, 2], discs[:, 0] + discs[:, 2]
        lo_y, hi_y = discs[:, 1] - discs[:, 2], discs[:, 1] + discs[:, 2]
        blk_lo_x = np.minimum.reduceat(lo_x, blk_first)
        blk_hi_x = np.maximum.reduceat(hi_x, blk_first)
        blk_lo_y = np.minimum.reduceat(lo_y, blk_first)
        blk_hi_y = np.maximum.reduceat(hi_y, blk_first)
        order = np.argsort(blk_sim, kind="stable")
        kr, kb = _same_sim_pairs(sim, blk_sim[order])
        kb = order[kb]
        ok = ((blk_hi_x[kb] >= tb[kr, 0]) & (blk_lo_x[kb] <= tb[kr, 2]) & (blk_hi_y[kb] >= tb[kr, 1])
              & (blk_lo_y[kb] <= tb[kr, 3]) & (blk_owner[kb] != live[kr]))
        kr, kb = kr[ok], kb[ok]
        ki, dj, near_k, near_o = self._near(live, pc, r, tb, kr, kb, (blk_lo_x, blk_lo_y, blk_hi_x, blk_hi_y), blk_first,
                                     blk_count, blk_owner, discs)
        busy = np.zeros(n_live, dtype=bool)
        busy[ki] = True
        # free road for everyone first (the lead is the end of the path); busy agents are redone in order
        gap = paths.end[live] - self.progress[live]
        self._idm(live, np.zeros(n_live), gap, self.length[live] / 2)
        busy_k = np.flatnonzero(busy)
        if not len(busy_k):
            self._set_footprints(live)
            return
        # agents after `a` are seen where they were before the step: keep those footprints
        old = _Footprints(self.fp_se.copy(), self.fp_pose.copy(), self.cur_pose.copy(), self.fp_disks.copy(),
                          self._geom, self._built, self.fp_mid.copy())
        self._geom = np.full((self.n, 2), None, dtype=object)
        self._built = np.zeros(self.n, dtype=bool)
        self._set_footprints(live[~busy], old)  # the free-road agents are final
        # owners per busy row (sorted, unique) and the extent of its near discs (grown by half the width, 1 m)
        pair_key = np.unique(near_k * (self.n + 1) + (near_o + 1))
        own_k, own_b = pair_key // (self.n + 1), pair_key % (self.n + 1) - 1
        ext = np.full((n_live, 4), np.inf)
        ext[:, 2:] = -np.inf
        at = np.flatnonzero(np.r_[True, ki[1:] != ki[:-1]])  # ki is sorted
        ext[ki[at], 0], ext[ki[at], 1] = np.minimum.reduceat(lo_x[dj], at), np.minimum.reduceat(lo_y[dj], at)
        ext[ki[at], 2], ext[ki[at], 3] = np.maximum.reduceat(hi_x[dj], at), np.maximum.reduceat(hi_y[dj], at)
        clip = np.stack([ext[:, 0] - r - 1.0, ext[:, 1] - r - 1.0, ext[:, 2] + r + 1.0, ext[:, 3] + r + 1.0], -1)
        # levels: an agent waits for the busy agents before it (same simulation) whose footprints it may meet
        is_busy = np.zeros(self.n, dtype=bool)
        is_busy[live[busy_k]] = True
        own_a = live[own_k]
        dep = (own_b >= 0) & (own_b < own_a)
        dep[dep] = is_busy[own_b[dep]]
        da, db = own_a[dep], own_b[dep]
        level = np.zeros(self.n, dtype=np.int64)
        while len(da):
            new = level.copy()
            np.maximum.at(new, da, level[db] + 1)
            if np.array_equal(new, level):
                break
            level = new
        lv_k = level[live[busy_k]]
        own_start = np.searchsorted(own_k, np.arange(n_live + 1))
        ego_boxes = np.empty(self.n_sims, dtype=object)
        bs = np.unique(sim[busy_k])
        ego_boxes[bs] = polygons(box_corners(egos[bs, :3], np.full(len(bs), PACIFICA.half_length),
                                             np.full(len(bs), PACIFICA.half_width)))
        for lv in np.unique(lv_k).tolist():
            ks = busy_k[lv_k == lv]
            self._leaders(live[ks], pc[ks], heading[ks], egos, ego_boxes, ego_discs,
                          [own_b[own_start[k]:own_start[k + 1]] for k in ks.tolist()], clip[ks], old)
            self._set_footprints(live[ks], old)

    def _near(self, live: I64, pc: F64, r: F64, tb: F64, kr: I64, kb: I64, blk_box: tuple[F64, F64, F64, F64],
              blk_first: I64, blk_count: I64, blk_owner: I64, discs: F64) -> tuple[I64, I64, I64, I64]:
        """The discs that may lie within half the width of an agent's path-to-go: ``(row of live, disc)``
        sorted by row, and the (row, owner) pairs among them, from the candidate (row ``kr``, disc block ``kb``)
        pairs of the same simulation.

        A disc is near when it overlaps the path-to-go's bounding box ``tb`` and its block's box, grown by half
        the width (+ 2e-6), overlaps the box of some chunk of the path-to-go (:meth:`Paths.chunks_near`): a
        block with no such chunk lies farther than half the width from the path on one axis. This is a
        superset of the discs that can reach the path-to-go buffer (the one-scene code also measured each
        disc centre against the chunk boxes); a larger near set only adds candidate entries (decided by the
        intersects test), level dependencies (ordering only) and path-to-go clip extent (the clip still cuts
        more than 1 m away from every candidate), so the simulation is unchanged (rows and timelines checked
        equal to 93d9b74's, see ``benchmarks/bench_two_stage.py``)."""
        paths = self.paths
        assert paths is not None
        none = np.zeros(0, dtype=np.int64)
        if not len(kr):
            return none, none, none, none
        bx0, by0, bx1, by1 = blk_box
        g = r[kr] + 2e-6
        b = kb
        pa, cc = paths.chunks_near(live, pc, kr, np.stack([bx0[b] - g, by0[b] - g, bx1[b] + g, by1[b] + g], -1))
        if not len(pa):
            return none, none, none, none
        has = pa[np.r_[True, pa[1:] != pa[:-1]]]  # pa is sorted
        qi, dj = _ragged(blk_first[kb[has]], blk_first[kb[has]] + blk_count[kb[has]])
        pq = has[qi]
        ki = kr[pq]
        hit = ((discs[dj, 0] + discs[dj, 2] >= tb[ki, 0]) & (discs[dj, 0] - discs[dj, 2] <= tb[ki, 2])
               & (discs[dj, 1] + discs[dj, 2] >= tb[ki, 1]) & (discs[dj, 1] - discs[dj, 2] <= tb[ki, 3]))
        blk_hit = np.zeros(len(has), dtype=bool)
        blk_hit[qi[hit]] = True
        return ki[hit], dj[hit], kr[has[blk_hit]], blk_owner[kb[has[blk_hit]]]

    def _leaders(self, ag: I64, pcs: F64, heading: F64, egos: F64, ego_boxes: npt.NDArray[np.object_],
                 ego_discs: F64, owners: list[I64], clips: F64, old: _Footprints) -> None:
        """The exact leader search of ``propagate_agents`` for agents that do not see each other (one level of
        every simulation): each sees the agents before it where they moved to, the others where they were
        before the step; owner -1 is the agent's own simulation's ego.

        The path-to-go is clipped to ``clip`` (the candidates' discs grown by half the width and 1 m) before it
        is buffered: every candidate lies inside the discs, so the cut ends (with their flat caps) stay more
        than 1 m away from all of them and the intersection tests are unchanged.

        Distances: the nearest entry is the one with the smallest distance (ties as nuPlan's STRtree). Each
        geometry lies in its discs, so the discs bound every distance from below; per agent, the pair of
        geometries with the smallest bound is measured first, then only pairs whose bound does not exceed
        that distance (the others can neither be nearer nor tie).
        """
        paths = self.paths
        assert paths is not None
        k = len(ag)
        pi = np.repeat(np.arange(k), [len(o) for o in owners])  # (agent position, owner) pairs
        pb = np.concatenate(owners)
        pa = ag[pi]
        psim = self.sim_of[pa]
        ego = pb == -1
        newer = ~ego & (pb < pa)
        ob = np.where(ego, 0, pb)
        se_b = np.where(newer, self.fp_se[ob, 0], old.se[ob, 0])
        disc_path = np.where(newer[:, None, None], self.fp_disks[ob, :_PATH_SAMPLES], old.discs[ob, :_PATH_SAMPLES])
        disc_box = np.where(newer[:, None, None], self.fp_disks[ob, _PATH_SAMPLES:], old.discs[ob, _PATH_SAMPLES:])
        disc_box[ego] = ego_discs[psim[ego]]
        # the parts: path parts (where there is one) then boxes; kind 0 = path part, 1 = box
        wp = np.flatnonzero(~ego & ~np.isnan(se_b))
        src = np.concatenate([wp, np.arange(len(pb))])
        kind = np.concatenate([np.zeros(len(wp), np.int64), np.ones(len(pb), np.int64)])
        of = pi[src]
        part_owner = pb[src]
        heads = (paths.to_go_chunks(ag, pcs)[0], paths._bisect(ag, pcs, right=True))
        hw = self.width[ag] / 2
        # parts of agents on the agent's own baseline: their middle disc centres lie on its path, at known progress
        mid = np.where(newer[:, None], self.fp_mid[ob], old.mid[ob])
        mid[ego | (paths.base[ob] != paths.base[pa])] = np.nan
        decided = np.concatenate([clear_hits(paths, hw, heads, of[: len(wp)], disc_path[wp], ag, pcs, mid[wp, 0]),
                                  clear_hits(paths, hw, heads, of[len(wp) :], disc_box, ag, pcs, mid[:, 1])])
        hits = decided == 1
        und = np.flatnonzero(decided < 0)
        # geometries only where still needed (undecided or hit parts)
        want = np.flatnonzero(decided != 0)
        if not len(want):
            return  # free road: the updates already written stand
        pw, kw = src[want], kind[want]
        now = (self.fp_se, self.fp_pose, self._geom, self._built)
        before = (old.se, old.pose, old.geom, old.built)
        self._shapes(np.unique(pb[pw][newer[pw]]), *now, before)
        self._shapes(np.unique(pb[pw][~ego[pw] & ~newer[pw]]), *before, now)
        gw = np.where(newer[pw], self._geom[ob[pw], kw], old.geom[ob[pw], kw])
        gw[ego[pw]] = ego_boxes[psim[pw][ego[pw]]]
        geoms = np.full(len(src), None, dtype=object)
        geoms[want] = gw
        if len(und):  # near the buffer's edge: GEOS decides, on the buffers of those agents only
            need, slot = np.unique(of[und], return_inverse=True)
            lines = np.array([shapely.clip_by_rect(line, *clip) for line, clip in
                              zip(paths.to_go_lines(ag[need], pcs[need]), clips[need].tolist(), strict=True)],
                             dtype=object)
            buffers = shapely.buffer(lines, self.width[ag[need]] / 2, cap_style="flat")
            shapely.prepare(buffers)
            hits[und] = shapely.intersects(buffers[slot], geoms[und])
        if not hits.any():
            return  # free road: the updates already written stand
        # distance between each agent's occupancy geometry (where it was) and each intersecting entry
        h = np.flatnonzero(hits)
        ah = ag[of[h]]
        self._shapes(np.unique(ah), *before, now)
        own_path = ~shapely.is_missing(old.geom[ah, 0])
        own_i = np.concatenate([h[own_path], h])
        own_kind = np.concatenate([np.zeros(int(own_path.sum()), np.int64), np.ones(len(h), np.int64)])
        oa = ag[of[own_i]]
        og = old.geom[oa, own_kind]
        bound = np.empty(len(own_i))
        for ko in (0, 1):
            for kp in (0, 1):
                sel = np.flatnonzero((own_kind == ko) & (kind[own_i] == kp))
                if not len(sel):
                    continue
                da = old.discs[oa[sel], :_PATH_SAMPLES] if ko == 0 else old.discs[oa[sel], _PATH_SAMPLES:]
                ps = src[own_i[sel]]
                db = disc_path[ps] if kp == 0 else disc_box[ps]
                bound[sel] = _discs_distance(da, db)
        ag_q = of[own_i]
        first = np.full(k, -1, dtype=np.int64)
        order = np.lexsort((bound, ag_q))
        starts = np.flatnonzero(np.r_[True, ag_q[order][1:] != ag_q[order][:-1]])
        first[ag_q[order][starts]] = order[starts]
        d_pair = np.full(len(own_i), np.inf)
        q1 = first[first >= 0]
        d_pair[q1] = shapely.distance(og[q1], geoms[own_i[q1]])
        best_d = np.full(k, np.inf)
        best_d[ag_q[q1]] = d_pair[q1]
        q2 = np.flatnonzero((bound <= best_d[ag_q]) & np.isinf(d_pair))
        q2 = q2[~np.isin(q2, q1)]
        if len(q2):
            d_pair[q2] = shapely.distance(og[q2], geoms[own_i[q2]])
        d = np.full(len(geoms), np.inf)
        np.minimum.at(d, own_i, d_pair)
        # per agent: the smallest distance over its intersecting entries, the lowest owner at it (the ego, -1,
        # first); several owners equally near: nuPlan's STRtree decides (see _nearest_as_nuplan)
        hi_of, hd, hown = of[h], d[h], part_owner[h]
        gap_of = np.full(k, np.inf)
        np.minimum.at(gap_of, hi_of, hd)
        at = hd == gap_of[hi_of]
        lead_b = np.full(k, np.iinfo(np.int64).max)
        np.minimum.at(lead_b, hi_of[at], hown[at])
        tie_key = np.unique(hi_of[at] * (self.n + 2) + (hown[at] + 1))
        tie_i, tie_n = np.unique(tie_key // (self.n + 2), return_counts=True)
        for i in tie_i[tie_n > 1].tolist():  # in practice overlapping footprints (distance 0)
            a = int(ag[i])
            entries: dict[int, tuple[shapely.Geometry | None, ...]] = {}
            for b in np.unique(hown[hi_of == i]).tolist():
                entries[b] = ((ego_boxes[self.sim_of[a]],) if b == -1 else
                              tuple(self._geom[b]) if b < a else tuple(old.geom[b]))
            lead_b[i] = _nearest_as_nuplan(tuple(old.geom[a]), entries)
        pos = np.unique(hi_of)
        b, a, hd_pos = lead_b[pos], ag[pos], heading[pos]
        lead_v = np.empty(len(pos))
        rel = np.empty(len(pos))
        m = b == -1
        e = egos[self.sim_of[a[m]]]
        lead_v[m], rel[m] = np.hypot(e[:, 3], e[:, 4]), e[:, 2] - hd_pos[m]
        m = (b >= 0) & (b < a)  # agents before a have moved (their pose and speed are new), the others not yet
        lead_v[m], rel[m] = self.speed[b[m]], self.cur_pose[b[m], 2] - hd_pos[m]
        m = b > a
        lead_v[m], rel[m] = self._v_old[b[m]], old.cur_pose[b[m], 2] - hd_pos[m]
        lead = lead_v * np.cos(principal(rel))
        self._idm(ag[pos], lead, gap_of[pos], np.zeros(len(pos)))

    def _shapes(self, ids: I64, se: F64, pose: F64, geom: npt.NDArray[np.object_], built: B,
                alt: tuple[F64, F64, npt.NDArray[np.object_], B] | None = None) -> None:
        """Occupancy geometries (path part buffered by half the width, flat caps, or None; box) of agents
        ``ids`` (unique) with footprints ``se`` / ``pose``, built together into ``geom`` for those not ``built``;
        taken from ``alt`` (the other footprints' ``se, pose, geom, built``) where it has the same footprint
        built."""
        paths = self.paths
        assert paths is not None
        todo = ids[~built[ids]]
        if alt is not None and len(todo):
            a_se, a_pose, a_geom, a_built = alt
            same = (a_built[todo] & (a_se[todo, 0] == se[todo, 0]) & (a_se[todo, 1] == se[todo, 1])
                    & (a_pose[todo] == pose[todo]).all(axis=1))
            geom[todo[same]] = a_geom[todo[same]]
            built[todo[same]] = True
            todo = todo[~same]
        if not len(todo):
            return
        geom[todo, 1] = _boxes(pose[todo], self.length[todo], self.width[todo])
        part = ~np.isnan(se[todo, 0])
        geom[todo[~part], 0] = None
        with_part = todo[part]
        if len(with_part):
            lines = paths.trimmed_lines(with_part, se[with_part, 0], se[with_part, 1])
            geom[with_part, 0] = shapely.buffer(lines, self.width[with_part] / 2, cap_style="flat")
        built[todo] = True

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
        """Steps 1..40 with ``ego_states (S, 41, 11)`` (simulation ``s`` reacts to ``ego_states[s]``); returns
        ``present (40, V)``, ``poses (40, V, 3)``, ``velocity (40, V, 2)`` over the vehicles of all simulations
        (simulation ``s``'s vehicles at ``veh_start[s] : veh_start[s + 1]``)."""
        n_veh = len(self.veh_poses)
        present = np.zeros((NUM_STEPS - 1, n_veh), dtype=bool)
        poses = np.zeros((NUM_STEPS - 1, n_veh, 3))
        vel = np.zeros((NUM_STEPS - 1, n_veh, 2))
        pairs = self._parked_pairs()
        for k in range(1, NUM_STEPS):
            self.step(ego_states[:, k - 1])
            active = np.flatnonzero(self.alive)
            idx = self.agent_veh[active]
            ap = self.poses(active) if len(active) else np.zeros((0, 3))
            present[k - 1, idx] = True
            poses[k - 1, idx] = ap
            vel[k - 1, idx, 0] = self.speed[active] * np.cos(ap[:, 2])
            vel[k - 1, idx, 1] = self.speed[active] * np.sin(ap[:, 2])
            self._add_parked(k - 1, pairs, present, poses, vel)
        return present, poses, vel

    def _parked_pairs(self) -> tuple[I64, I64, F64]:
        """(parked vehicle, agent) pairs of the same simulation with their reach (half the two diagonals)."""
        cand = self.parked
        if not len(cand) or not self.n:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
        c_sim = np.searchsorted(self.veh_start, cand, side="right") - 1
        ci, ai = _ragged(self.agent_start[c_sim], self.agent_start[c_sim + 1])
        ci = np.repeat(np.arange(len(cand)), self.agent_start[c_sim + 1] - self.agent_start[c_sim])
        av = self.agent_veh[ai]
        reach = (np.hypot(self.veh_length[cand[ci]], self.veh_width[cand[ci]])
                 + np.hypot(self.veh_length[av], self.veh_width[av])) / 2
        return ci, ai, reach

    def _add_parked(self, k: int, pairs: tuple[I64, I64, F64], present: B, poses: F64, vel: F64) -> None:
        """Parked vehicles at step ``k``: each whose t = 0 box does not touch an agent's box of its simulation."""
        cand = self.parked
        if not len(cand):
            return
        ci, ai, reach = pairs
        if len(ci):
            live = self.alive[ai]
            ci, ai, reach = ci[live], ai[live], reach[live]
            ap = self.poses(ai)
            c = cand[ci]
            close = np.hypot(self.veh_poses[c, 0] - ap[:, 0], self.veh_poses[c, 1] - ap[:, 1]) <= reach
            if close.any():
                ci, ai, ap = ci[close], ai[close], ap[close]
                av = self.agent_veh[ai]
                boxes = polygons(box_corners(ap, self.veh_length[av] / 2, self.veh_width[av] / 2))
                hit = np.zeros(len(cand), dtype=bool)
                hit[ci[shapely.intersects(self.box0[cand[ci]], boxes)]] = True
                cand = cand[~hit]
        present[k, cand] = True
        poses[k, cand] = self.veh_poses[cand]
        vel[k, cand] = self.veh_vel[cand]


class IDMScene(IDMBatch):
    """:class:`IDMBatch` of one simulation (``run`` takes the ego's ``(41, 11)`` states; ``agents`` and
    ``parked`` index the scene's vehicles)."""

    def __init__(self, vehicles: IDMVehicles, rails: LaneRails, ego_box: shapely.Geometry, ego_speed_mps: float,
                 params: IDMParameters | None = None) -> None:
        super().__init__([IDMSim(vehicles, rails, ego_box, ego_speed_mps)], params)
        self.agents = self.starts[0].agents

    def run(self, ego_states: F64) -> tuple[B, F64, F64]:  # type: ignore[override]
        return super().run(np.asarray(ego_states)[None])
