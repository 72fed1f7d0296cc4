"""PDM-Closed's IDM unroll for many scenes at once: the proposals of every scene advance in one array.

:class:`~harness.agents.pdm_closed_proposals.ProposalGenerator` unrolls one scene's 15 proposals with a
Python loop over the 40 steps; most of a step's cost is the fixed overhead of its numpy calls. Here the
generators of many scenes (each already built: paths, corridors, forecast candidates) are stacked, padded
to the longest path and the largest observation, and stepped together:

- path interpolation: a vectorised binary search replaces the per-path ``searchsorted`` (same index: the
  first vertex whose arc length is not below the query), then the same arithmetic;
- leaders: the per-scene candidate arrays side by side (padding never intersects a corridor), the same
  pruning, distances and tie rules; a tie is settled by the scene's own generator;
- the leader record shared by the proposals of one path within an update (an official quirk) is kept per
  (scene, path) group.

Every element sees the same arithmetic as in its own generator, so each scene's unroll equals
``ProposalGenerator.generate`` / ``extend`` bit for bit; the results are written back into the generators.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import shapely

from harness.agents.pdm_closed_observation import ego_footprint_rings
from harness.agents.pdm_closed_proposals import (
    LENGTH_REAR,
    PROGRESS,
    VELOCITY,
    CandidateEntries,
    ProposalGenerator,
    ring_extremes,
)

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


def _distinct(key: npt.NDArray[np.int64]) -> tuple[I64, I64]:
    """``(first, inverse)``: one row index per distinct row of ``key`` and each row's position among them
    (rows sorted lexicographically, equal neighbours grouped)."""
    if len(key) == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    order = np.lexsort(key.T[::-1])
    ordered = key[order]
    new = np.empty(len(key), dtype=bool)
    new[0] = True
    new[1:] = np.any(ordered[1:] != ordered[:-1], axis=1)
    group = np.cumsum(new) - 1
    inverse = np.empty(len(key), dtype=np.int64)
    inverse[order] = group
    return order[new], inverse


class JointUnroll:
    """The proposals of several scenes' generators, unrolled together.

    Args:
        generators: one built generator per scene, all with the same IDM parameters, step, horizons, update
            rate, vehicle and forecast resolution.
        candidates: ``candidate_entries(generators)``; None: the generators' own leader-search arrays
            (``precompute_candidates``) are read.

    Raises:
        ValueError: generators configured differently.
    """

    def __init__(self, generators: Sequence[ProposalGenerator], candidates: CandidateEntries | None = None) -> None:
        gens = list(generators)
        if not gens:
            raise ValueError("JointUnroll: need at least one generator")
        g0 = gens[0]
        for g in gens[1:]:
            if (g.idm_params, g.dt_s, g.proposal_steps, g.trajectory_steps, g.update_rate, g.vehicle,
                    g.obs.resolution_steps, g.obs.num_maps) != (
                    g0.idm_params, g0.dt_s, g0.proposal_steps, g0.trajectory_steps, g0.update_rate, g0.vehicle,
                    g0.obs.resolution_steps, g0.obs.num_maps):
                raise ValueError("JointUnroll: all generators must share one configuration")
        self.gens = gens
        n_rows = np.array([len(g.lateral) for g in gens])
        self.row_offset = np.concatenate([[0], np.cumsum(n_rows)])
        self.scene = np.repeat(np.arange(len(gens)), n_rows)
        n_paths = np.array([len(g.paths) for g in gens])
        path_offset = np.concatenate([[0], np.cumsum(n_paths)])
        self.path = np.concatenate([g.lateral + path_offset[i] for i, g in enumerate(gens)])
        self.local_lateral = np.concatenate([g.lateral for g in gens])
        # Paths padded to the longest (arc length +inf, poses 0 beyond a path's end).
        k = np.array([g._progress.shape[1] for g in gens])
        kmax = int(k.max())
        self.path_vertices = np.repeat(k, n_paths)
        self.progress = np.full((len(self.path_vertices), kmax), np.inf)
        self.states_path = np.zeros((len(self.path_vertices), kmax, 3))
        for i, g in enumerate(gens):
            sl = slice(path_offset[i], path_offset[i + 1])
            self.progress[sl, : k[i]] = g._progress
            self.states_path[sl, : k[i]] = g._states
        self._progress_flat = self.progress.reshape(-1)
        self._states_flat = self.states_path.reshape(-1, 3)
        self.length = np.concatenate([g._length for g in gens])
        # Scenes with one centerline share their paths: the distinct arc-length arrays, and each padded path's.
        distinct: dict[tuple[int, int], int] = {}
        self.distinct_progress: list[F64] = []
        self.path_distinct = np.empty(len(self.path_vertices), dtype=np.int64)
        for i, g in enumerate(gens):
            for lat in range(len(g.paths)):
                key = (id(g._progress), lat)
                if key not in distinct:
                    distinct[key] = len(self.distinct_progress)
                    self.distinct_progress.append(np.ascontiguousarray(g._progress[lat]))
                self.path_distinct[path_offset[i] + lat] = distinct[key]
        self._search_plan: dict[int, tuple[I64, I64, list[tuple[int, int, int]]]] = {}
        # Forecast candidates (see _candidates_of_generators).
        if candidates is None:
            self._candidates_of_generators(gens)
        else:
            self._candidates_of_entries(gens, candidates)
        # The unroll arrays of all scenes, stacked (step 0 as each generator set it).
        self.states = np.concatenate([g.unroll.states for g in gens])
        self.idm = np.concatenate([g.unroll.idm for g in gens])
        self.leader = np.concatenate([g.unroll.leader for g in gens])
        self.target_velocity = np.concatenate([g.unroll.target_velocity for g in gens])

    def _allocate_candidates(self, gens: list[ProposalGenerator], n_cols: I64) -> int:
        nmax = max(int(n_cols.max(initial=0)), 1)
        n_maps, total, n_gens = gens[0].obs.num_maps, len(self.scene), len(gens)
        self.candidate_row = np.zeros((n_gens, nmax), dtype=np.int64)
        self.inside = np.zeros((n_maps, total, nmax), dtype=bool)
        self.cand_progress = np.full((n_maps, total, nmax), np.nan)
        self.bounds = np.full((n_maps, n_gens, nmax, 4), np.nan)
        self.polys = np.full((n_maps, n_gens, nmax), None, dtype=object)
        self.is_red = np.zeros((n_gens, nmax), dtype=bool)
        self.is_agent = np.zeros((n_gens, nmax), dtype=bool)
        self.obj_heading = np.zeros((n_gens, nmax))
        self.obj_speed = np.zeros((n_gens, nmax))
        return nmax

    def _candidates_of_generators(self, gens: list[ProposalGenerator]) -> None:
        """Forecast candidates, sample-major: per scene only the observation rows inside some corridor at some
        sample (the others are never a leader), in ascending row order (so the first of equal distances is the
        same row), padded to the largest such count (padding is never inside); ``candidate_row`` maps a column
        back to its observation row. The rows far from every path (most of a busy scene) would make these
        (sample, proposal, row) arrays several times larger, and their memory costs more than the work."""
        cols = [np.flatnonzero(g.inside.any(axis=(0, 1))) for g in gens]
        n_cols = np.array([len(c) for c in cols])
        self._allocate_candidates(gens, n_cols)
        for i, (g, c) in enumerate(zip(gens, cols, strict=True)):
            rows, n = slice(self.row_offset[i], self.row_offset[i + 1]), n_cols[i]
            self.candidate_row[i, :n] = c
            self.inside[:, rows, :n] = np.moveaxis(g.inside[:, :, c][g.lateral], 1, 0)
            self.cand_progress[:, rows, :n] = np.moveaxis(g.progress[:, :, c][g.lateral], 1, 0)
            self.bounds[:, i, :n] = g.bounds[:, c]
            self.polys[:, i, :n] = g.polys[:, c]
            self.is_red[i, :n] = g.obs.is_red_light[c]
            self.is_agent[i, :n] = g.obs.is_agent[c]
            self.obj_heading[i, :n] = g.obs.center_pose[c, 2]
            self.obj_speed[i, :n] = g.obs.speed[c]

    def _candidates_of_entries(self, gens: list[ProposalGenerator], e: CandidateEntries) -> None:
        """The arrays of :meth:`_candidates_of_generators` straight from ``candidate_entries`` (the same
        values; the generators' own arrays are not built)."""
        lateral = gens[0].lateral
        if any(len(g.lateral) != len(lateral) or not np.array_equal(g.lateral, lateral) for g in gens[1:]):
            raise ValueError("JointUnroll: candidate entries need the same proposals per scene")
        n_gens = len(gens)
        n_obs = np.array([len(g.obs.tokens) for g in gens])
        row_off = np.concatenate([[0], np.cumsum(n_obs)])
        # Columns: per scene the rows with some entry inside some corridor, ascending.
        used = np.zeros(int(row_off[-1]), dtype=bool)
        used[(row_off[e.gen] + e.row)[e.inside.any(axis=0)]] = True
        flat_cols = np.flatnonzero(used)
        col_gen = np.searchsorted(row_off, flat_cols, side="right") - 1
        n_cols = np.bincount(col_gen, minlength=n_gens)
        self._allocate_candidates(gens, n_cols)
        col_start = np.concatenate([[0], np.cumsum(n_cols)])
        col_of = np.full(len(used), -1, dtype=np.int64)
        col_of[flat_cols] = np.arange(len(flat_cols)) - col_start[col_gen]
        self.candidate_row[col_gen, col_of[flat_cols]] = flat_cols - row_off[col_gen]
        at = (col_gen, col_of[flat_cols])
        self.is_red[at] = np.concatenate([g.obs.is_red_light for g in gens])[flat_cols]
        self.is_agent[at] = np.concatenate([g.obs.is_agent for g in gens])[flat_cols]
        self.obj_heading[at] = np.concatenate([g.obs.center_pose[:, 2] for g in gens])[flat_cols]
        self.obj_speed[at] = np.concatenate([g.obs.speed for g in gens])[flat_cols]
        # Entries of a used row: fixed ones fill every sample, moving ones their own.
        col = col_of[row_off[e.gen] + e.row]
        k = np.flatnonzero(col >= 0)
        gk, ck, fixed = e.gen[k], col[k], e.fixed[k]
        rows = self.row_offset[gk][None, :] + np.arange(len(lateral))[:, None]  # (P, k) joint rows
        ins, prog = e.inside[lateral][:, k], e.progress[lateral][:, k]  # (P, k)
        f, m = np.flatnonzero(fixed), np.flatnonzero(~fixed)
        self.bounds[:, gk[f], ck[f]] = e.box[k[f]]
        self.polys[:, gk[f], ck[f]] = e.polys[k[f]]
        self.inside[:, rows[:, f], ck[f]] = ins[:, f]
        self.cand_progress[:, rows[:, f], ck[f]] = prog[:, f]
        jm = e.sample[k[m]]
        self.bounds[jm, gk[m], ck[m]] = e.box[k[m]]
        self.polys[jm, gk[m], ck[m]] = e.polys[k[m]]
        self.inside[jm, rows[:, m], ck[m]] = ins[:, m]
        self.cand_progress[jm, rows[:, m], ck[m]] = prog[:, m]

    # --- one step -------------------------------------------------------------------------------------

    def _searchsorted(self, path: I64, d: F64) -> I64:
        """``np.searchsorted(progress[path], d)`` (side left) per row: the first vertex with arc length >= d.

        One ``np.searchsorted`` per distinct path (scenes of one centerline share theirs); the rows' grouping is
        planned once per set of paths (the unroll asks with the same rows at every step). A query beyond a
        path's end gets its vertex count, which the caller clips as it would the padded width.
        """
        key = len(path)
        plan = self._search_plan.get(key)
        if plan is None or not np.array_equal(plan[0], path):
            which = self.path_distinct[path]
            order = np.argsort(which, kind="stable")
            cuts = np.flatnonzero(np.diff(which[order])) + 1
            spans = [(int(lo), int(hi), int(which[order[lo]]))
                     for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(order)])] if len(order) else []
            plan = (path.copy(), order, spans)
            self._search_plan[key] = plan
        _, order, spans = plan
        d_sorted = d[order]
        out_sorted = np.empty(len(d), dtype=np.int64)
        for lo, hi, u in spans:
            out_sorted[lo:hi] = np.searchsorted(self.distinct_progress[u], d_sorted[lo:hi])
        out = np.empty(len(d), dtype=np.int64)
        out[order] = out_sorted
        return out

    def _interpolate(self, rows: I64 | slice, distances_m: F64) -> F64:
        """``ProposalGenerator.interpolate`` for global rows."""
        path = self.path[rows]
        d = np.minimum(np.maximum(distances_m, 1e-5), self.length[path])
        hi = self._searchsorted(path, d)
        hi = np.minimum(np.maximum(hi, 1), self.path_vertices[path] - 1)
        lo = hi - 1
        # Flat gathers (one index per row instead of a (path, vertex) pair): the same elements.
        flat_lo = path * self.progress.shape[1] + lo
        flat_hi = flat_lo + 1
        x_lo = self._progress_flat[flat_lo]
        y_lo = self._states_flat[flat_lo]
        slope = (self._states_flat[flat_hi] - y_lo) / (self._progress_flat[flat_hi] - x_lo)[:, None]
        out = slope * (d - x_lo)[:, None] + y_lo
        out[:, 2] = np.arctan2(np.sin(out[:, 2]), np.cos(out[:, 2]))
        out[np.isnan(out)] = 0.0
        return out

    def _leader_speed(self, scene: I64, obj: I64, ego_heading: F64) -> F64:
        rel = self.obj_heading[scene, obj] - ego_heading
        rel = np.arctan2(np.sin(rel), np.cos(rel))
        return np.where(self.is_agent[scene, obj], self.obj_speed[scene, obj] * np.cos(rel), 0.0)

    def _update_leaders(self, rows: I64 | slice, group_start: I64, step: int) -> None:
        g0 = self.gens[0]
        if step % g0.update_rate != 0:
            self.leader[rows, step] = self.leader[rows, step - 1]
            return
        j = g0.obs.map_index(step)
        scene = self.scene[rows]
        n_rows = len(scene)
        x_prev = self.idm[rows, step - 1, PROGRESS]
        ahead = self.inside[j, rows] & (self.cand_progress[j, rows] > x_prev[:, None])
        has_ahead = ahead.any(axis=1)
        out = np.zeros((n_rows, 3))
        out[:, PROGRESS] = self.length[self.path[rows]]
        sets_speed = np.zeros(n_rows, dtype=bool)
        lead_speed = np.zeros(n_rows)
        if has_ahead.any():
            pose = self.states[rows, step - 1, :3]
            rings = ego_footprint_rings(pose, g0.vehicle)
            r, c = np.nonzero(ahead)
            # The generator's pruning (it never drops the nearest candidate nor one tied with it).
            row_lo, row_hi = ring_extremes(rings)
            ego_lo, ego_hi = row_lo[r], row_hi[r]
            obj = self.bounds[j, scene[r], c]
            gap = np.maximum(np.maximum(obj[:, :2] - ego_hi, ego_lo - obj[:, 2:]), 0.0)
            lower = np.sqrt(gap[:, 0] * gap[:, 0] + gap[:, 1] * gap[:, 1])
            vx = rings[r, 0] - obj[:, :2]
            upper_pair = np.sqrt(vx[:, 0] * vx[:, 0] + vx[:, 1] * vx[:, 1]) + np.hypot(obj[:, 2] - obj[:, 0],
                                                                                       obj[:, 3] - obj[:, 1])
            upper = np.full(n_rows, np.inf)
            np.minimum.at(upper, r, upper_pair)
            keep = lower <= upper[r] * (1.0 + 1e-9) + 1e-9
            r, c, lower = r[keep], c[keep], lower[keep]
            dist = np.full(ahead.shape, np.inf)
            # Boxes first; then red-light polygons (many vertices, costly), only those whose bounding-box bound
            # is within the row's nearest box (the others are farther than it: never the leader, never tied).
            light = self.is_red[scene[r], c]
            rb, cb = r[~light], c[~light]
            # One footprint polygon per row that needs one (a row usually has several candidates).
            ego_polys = np.empty(n_rows, dtype=object)
            made = np.zeros(n_rows, dtype=bool)
            made[rb] = True
            ego_polys[made] = shapely.polygons(rings[made])
            dist[rb, cb] = shapely.distance(ego_polys[rb], self.polys[j, scene[rb], cb])
            if light.any():
                rl, cl = r[light], c[light]
                near = lower[light] <= dist.min(axis=1)[rl] * (1.0 + 1e-9) + 1e-9
                rl, cl = rl[near], cl[near]
                # Proposals often stand at the same pose (the first steps, a stopped ego): each distinct
                # (footprint, light) pair is measured once.
                first, inverse = _distinct(np.column_stack([rings[rl, :4].reshape(-1, 8).view(np.int64), scene[rl],
                                                            cl]))
                rf, cf = rl[first], cl[first]
                missing = np.zeros(n_rows, dtype=bool)
                missing[rf] = True
                missing &= ~made
                ego_polys[missing] = shapely.polygons(rings[missing])
                measured = shapely.distance(ego_polys[rf], self.polys[j, scene[rf], cf])
                dist[rl, cl] = measured[inverse]
            nearest = dist.argmin(axis=1)
            dmin = dist[np.arange(n_rows), nearest]
            at_min = dist == dmin[:, None]
            n_tied = at_min.sum(axis=1)
            n_other = n_tied - (at_min & self.is_red[scene]).sum(axis=1)
            for i in np.flatnonzero(has_ahead & (n_other > 0) & (n_tied > 1)):
                # Equally near leaders: settled by the scene's own generator, as it would alone.
                gen = self.gens[int(scene[i])]
                tied = np.flatnonzero(dist[i] == dmin[i])
                obs_rows = self.candidate_row[scene[i], tied]
                outcome = np.where(gen.obs.is_red_light[obs_rows], np.nan, gen._leader_speed(obs_rows, pose[i, 2]))
                if not np.array_equal(outcome, np.full_like(outcome, outcome[0]), equal_nan=True):
                    nearest[i] = tied[np.argmin(gen._tie_order(int(self.local_lateral[rows][i]), j)[obs_rows])]
            out[has_ahead, PROGRESS] = x_prev[has_ahead] + dmin[has_ahead]
            sets_speed = has_ahead & ~self.is_red[scene, nearest]
            lead_speed = self._leader_speed(scene, nearest, pose[:, 2])
        # The leader record shared within a (scene, path) group (see ProposalGenerator.update_leaders).
        idx = np.arange(n_rows)
        last_speed = np.maximum.accumulate(np.where(sets_speed, idx, -1))
        out[:, VELOCITY] = np.where(last_speed >= group_start, lead_speed[np.maximum(last_speed, 0)], 0.0)
        last_free = np.maximum.accumulate(np.where(~has_ahead, idx, -1))
        out[:, LENGTH_REAR] = np.where(last_free >= group_start, g0.vehicle.length / 2, 0.0)
        self.leader[rows, step] = out

    def _step(self, rows: I64 | slice, group_start: I64, step: int) -> None:
        """Leaders, IDM and poses of ``rows`` (indices, or a slice: views instead of copies) at ``step``."""
        self._update_leaders(rows, group_start, step)
        self.idm[rows, step] = self.gens[0].idm_params.propagate(
            self.idm[rows, step - 1], self.leader[rows, step], self.target_velocity[rows], self.gens[0].dt_s)
        self.states[rows, step, :3] = self._interpolate(rows, self.idm[rows, step, PROGRESS])

    @staticmethod
    def _group_start(keys: I64) -> I64:
        """Position of the first row of each row's run of equal keys (rows sorted by key)."""
        idx = np.arange(len(keys))
        first = np.ones(len(keys), dtype=bool)
        first[1:] = keys[1:] != keys[:-1]
        return np.maximum.accumulate(np.where(first, idx, 0))

    # --- unrolling ------------------------------------------------------------------------------------

    def generate(self) -> None:
        """Every proposal of every scene over the proposal horizon; written into each generator's unroll."""
        start = self._group_start(self.path)
        g0 = self.gens[0]
        with np.errstate(all="ignore"):
            for t in range(1, g0.proposal_steps + 1):
                self._step(slice(0, len(self.scene)), start, t)
        steps = slice(0, g0.proposal_steps + 1)
        for i, gen in enumerate(self.gens):  # every row: each scene's block at once
            block = slice(int(self.row_offset[i]), int(self.row_offset[i + 1]))
            gen.unroll.states[:, steps] = self.states[block, steps]
            gen.unroll.idm[:, steps] = self.idm[block, steps]
            gen.unroll.leader[:, steps] = self.leader[block, steps]

    def extend(self, proposals: Sequence[int]) -> list[F64]:
        """Each scene's chosen proposal on to the trajectory horizon; returns their ``(T_traj + 1, 11)`` states
        (as ``ProposalGenerator.extend``, whose arrays are updated too)."""
        rows = self.row_offset[:-1] + np.asarray(proposals, dtype=np.int64)
        start = np.arange(len(rows))  # one proposal per (scene, path): each row its own group
        g0 = self.gens[0]
        with np.errstate(all="ignore"):
            for t in range(g0.proposal_steps + 1, g0.trajectory_steps + 1):
                self._step(rows, start, t)
        self._write_back(rows, slice(g0.proposal_steps + 1, g0.trajectory_steps + 1))
        return [self.states[r] for r in rows]

    def _write_back(self, rows: I64, steps: slice) -> None:
        for r in rows.tolist():
            i = int(self.scene[r])
            gen, p = self.gens[i], r - int(self.row_offset[i])
            gen.unroll.states[p, steps] = self.states[r, steps]
            gen.unroll.idm[p, steps] = self.idm[r, steps]
            gen.unroll.leader[p, steps] = self.leader[r, steps]
