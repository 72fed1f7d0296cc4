"""PDM-Closed's proposals: IDM policies unrolled along lateral paths, all proposals at once.

Re-implements NAVSIM v1.1 ``pdm_planner/proposal/pdm_generator.py::PDMGenerator`` and
``batch_idm_policy.py::BatchIDMPolicy`` (specs/navsim.md §9.2), vectorised over the proposals. Proposal
``p = lateral * num_policies + policy``; lateral 0 is the centerline, then the offsets in config order.

One unroll step ``t = 1 .. T`` (0.1 s each), per proposal, as the official generator does it:

1. leading object: on even ``t`` (every ``leading_agent_update_rate`` steps) search the forecast sample
   ``t // 2`` for objects and red lights that intersect the lateral path's **driving corridor** (the path's
   own vertices from the ego's initial arc length to ``max target speed × 5 s`` further, buffered by half the
   ego width with square caps) and are not "collided"; keep those whose centroid projects on the path beyond
   the ego's arc length at ``t - 1``; the leader is the one nearest (polygon distance) to the ego footprint at
   ``t - 1`` (of equally near ones, the first in the order NAVSIM's STRtree returns them).
   Its arc length = ego arc length + that distance; its speed = ``|v|·cos(heading difference)`` for agents,
   0 for static objects, and for a red light the speed is left as it was (see below). With nothing ahead the
   leader sits at the path's end with rear length ``ego length / 2``. On odd ``t`` the previous leader is
   kept; at ``t = 1`` that is the zero-initialised leader (arc length 0), which makes IDM brake hard for the
   first 0.1 s whenever the ego moves — an official quirk, reproduced.
2. IDM: ``s* = g0 + v·T + v·(v - v_lead) / (2·sqrt(a·b))``, ``s = max(x_lead - x - l_rear, g0)``,
   ``dv = clip(a·(1 - (v/v0)^10 - (s*/s)²), -b, a)``; explicit Euler: ``x += dt·v``, ``v += dt·dv``.
3. pose: the path pose at the new arc length.

Official quirk reproduced: the leader record is one array reused across the proposals of a lateral path
within an update, so a field a proposal does not write keeps the previous proposal's value (the rear length
stays ``ego length / 2`` after any free-driving proposal; the speed stays that of the last non-red leader).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely

from harness.agents.pdm_closed_observation import PDMObservation, ego_footprint_rings
from harness.agents.pdm_closed_path import DiscretePath, PathBundle, corridor_pieces
from metrics.pdm.state import PACIFICA, STATE_SIZE, VehicleParameters

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

# Columns of the IDM state and of the leader record (NAVSIM StateIDMIndex / LeadingAgentIndex).
PROGRESS, VELOCITY, LENGTH_REAR = 0, 1, 2
def ring_extremes(rings: F64) -> tuple[F64, F64]:
    """``(rings.min(axis=1), rings.max(axis=1))`` of closed box rings ``(N, 5, 2)`` (the 5th vertex repeats the
    1st), pairwise over the 4 corners: numpy's reduction over an axis of 5 is several times slower."""
    lo = np.minimum(np.minimum(rings[:, 0], rings[:, 1]), np.minimum(rings[:, 2], rings[:, 3]))
    hi = np.maximum(np.maximum(rings[:, 0], rings[:, 1]), np.maximum(rings[:, 2], rings[:, 3]))
    return lo, hi


#: Above this many (proposal, candidate) pairs, pairs that cannot be the nearest are dropped before GEOS.
_PRUNE_ABOVE = 128


@dataclass(frozen=True)
class IDMParameters:
    """The five BatchIDMPolicy policies of PDM-Closed's metric cache (NAVSIM ``MetricCacheProcessor``).

    Attributes:
        speed_limit_fractions: target speed = fraction × the starting lane's speed limit.
        fallback_target_velocity_mps: used instead of the speed limit when the lane has none.
        min_gap_m, headway_s, accel_max_mps2, decel_max_mps2: IDM parameters (decel positive).
        acceleration_exponent: IDM's free-road exponent (hard-coded 10 in NAVSIM).
    """

    speed_limit_fractions: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8, 1.0)
    fallback_target_velocity_mps: float = 15.0
    min_gap_m: float = 1.0
    headway_s: float = 1.5
    accel_max_mps2: float = 1.5
    decel_max_mps2: float = 3.0
    acceleration_exponent: int = 10

    def target_velocities(self, speed_limit_mps: float | None) -> F64:
        """``(num_policies,)`` target speeds (m/s) for a lane speed limit (None or NaN: the fallback)."""
        fractions = np.asarray(self.speed_limit_fractions, dtype=np.float64)
        if speed_limit_mps is None or not np.isfinite(speed_limit_mps):
            return fractions * self.fallback_target_velocity_mps
        return fractions * float(speed_limit_mps)

    def propagate(self, idm_prev: F64, leader: F64, target_velocity: F64, dt_s: float) -> F64:
        """One Euler step of IDM for ``(P, 2)`` (arc length, speed) against ``(P, 3)`` leaders."""
        x, v = idm_prev[:, PROGRESS], idm_prev[:, VELOCITY]
        x_lead, v_lead, l_rear = leader[:, PROGRESS], leader[:, VELOCITY], leader[:, LENGTH_REAR]
        g0, a, b = self.min_gap_m, self.accel_max_mps2, self.decel_max_mps2
        # Same expression order as BatchIDMPolicy.propagate (bit-equal results).
        s_star = g0 + v * self.headway_s + (v * (v - v_lead)) / (2 * np.sqrt(a * b))
        s_alpha = np.maximum(x_lead - x - l_rear, g0)
        v_dot = a * (1 - (v / target_velocity) ** self.acceleration_exponent - (s_star / s_alpha) ** 2)
        v_dot = np.clip(v_dot, -b, a)
        out = np.empty_like(idm_prev)
        out[:, PROGRESS] = x + dt_s * v
        out[:, VELOCITY] = v + dt_s * v_dot
        return out


@dataclass
class ProposalUnroll:
    """Proposal arrays over the trajectory horizon (steps 0 .. T_traj, 0.1 s apart).

    Attributes:
        states: ``(P, T_traj + 1, 11)`` rear-axle states; only x, y, heading are set (the rest is 0, as in
            NAVSIM), for steps 0 .. T_prop of every proposal and beyond for an extended one.
        idm: ``(P, T_traj + 1, 2)`` arc length (m) along the proposal's path and speed (m/s).
        leader: ``(P, T_traj + 1, 3)`` leader arc length (m), speed (m/s), rear length (m).
        lateral: ``(P,)`` path index; policy ``(P,)`` IDM policy index.
        target_velocity: ``(P,)`` m/s.
    """

    states: F64
    idm: F64
    leader: F64
    lateral: I64
    policy: I64
    target_velocity: F64


@dataclass(frozen=True)
class _Batch:
    """Proposals advanced together (sorted), grouped by path as NAVSIM's lateral batches.

    Attributes:
        rows: ``(R,)`` proposal indices; lateral ``(R,)`` their paths.
        start: ``(R,)`` position (in ``rows``) of the first proposal of each row's path.
        spans: ``(lo, hi, path)`` slices of ``rows`` per path.
    """

    rows: I64
    lateral: I64
    start: I64
    spans: tuple[tuple[int, int, int], ...]
    index: slice | I64

    @classmethod
    def of(cls, rows: I64, lateral: I64) -> _Batch:
        lat = lateral[rows]
        cut = [0] + [i + 1 for i in np.flatnonzero(np.diff(lat)).tolist()] + [len(rows)]
        spans = tuple((lo, hi, int(lat[lo])) for lo, hi in zip(cut[:-1], cut[1:]))
        start = np.concatenate([np.full(hi - lo, lo) for lo, hi, _ in spans]).astype(np.int64)
        # A contiguous batch indexes the proposal arrays with a slice (views, no copies).
        contiguous = len(rows) and np.array_equal(rows, np.arange(rows[0], rows[0] + len(rows)))
        index = slice(int(rows[0]), int(rows[0]) + len(rows)) if contiguous else rows
        return cls(rows, lat, start, spans, index)


class ProposalGenerator:
    """Unrolls PDM-Closed's proposals for one scene, vectorised over proposals.

    Everything the leader search needs from the (known) forecast is computed once up front, for all paths
    and forecast samples together: which observation rows intersect each path's corridor and where their
    centroids project on the path. An update step then only measures ego-to-candidate distances.

    Args:
        paths: lateral paths (centerline first), all with the same number of vertices.
        observation: PDM-Closed's observation of the scene.
        ego_rear_axle_xy: ``(2,)`` the ego's rear axle at t = 0 as nuPlan reports it (global frame).
        ego_speed_mps: the ego's longitudinal speed at t = 0.
        target_velocities: ``(num_policies,)`` IDM target speeds, m/s.
        idm: IDM parameters.
        proposal_steps / trajectory_steps: 40 and 50 steps of ``dt_s`` = 0.1 s.
        leading_agent_update_rate: leaders are searched every this many steps (2).
        vehicle: ego parameters.
        bundle: ``PathBundle(paths)`` if already built (scenes with the same centerline share it).
        start_progress: ``(num_paths,)`` the ego's arc length on each path, ``bundle.project`` of
            ``ego_rear_axle_xy``, if already computed (a batch of scenes projects all its egos at once).
        precompute: find the leader candidates now; False leaves that to :func:`precompute_candidates`, which
            does it for many generators at once (it must run before the unroll).
        corridors: the paths' prepared corridor polygons and ``corridor_pieces`` if already built (a batch of
            scenes buffers all its corridors in one call): the buffers of ``corridor_lines``.
    """

    def __init__(
        self,
        paths: list[DiscretePath],
        observation: PDMObservation,
        ego_rear_axle_xy: npt.ArrayLike,
        ego_speed_mps: float,
        target_velocities: npt.ArrayLike,
        idm: IDMParameters = IDMParameters(),
        *,
        proposal_steps: int = 40,
        trajectory_steps: int = 50,
        dt_s: float = 0.1,
        leading_agent_update_rate: int = 2,
        vehicle: VehicleParameters = PACIFICA,
        bundle: PathBundle | None = None,
        precompute: bool = True,
        start_progress: F64 | None = None,
        corridors: tuple[npt.NDArray[np.object_], F64] | None = None,
    ) -> None:
        if len({len(p.progress) for p in paths}) != 1:
            raise ValueError("ProposalGenerator: all paths must have the same number of vertices")
        self.paths = paths
        self.obs = observation
        self.idm_params = idm
        self.dt_s = dt_s
        self.proposal_steps = proposal_steps
        self.trajectory_steps = trajectory_steps
        self.update_rate = leading_agent_update_rate
        self.vehicle = vehicle
        tv = np.asarray(target_velocities, dtype=np.float64)
        n_lat, n_pol = len(paths), len(tv)
        self.num_policies = n_pol
        self.lateral = np.repeat(np.arange(n_lat), n_pol)
        self.policy = np.tile(np.arange(n_pol), n_lat)
        p, t = n_lat * n_pol, trajectory_steps + 1
        self.unroll = ProposalUnroll(np.zeros((p, t, STATE_SIZE)), np.zeros((p, t, 2)), np.zeros((p, t, 3)),
                                     self.lateral, self.policy, tv[self.policy])
        # Stacked path arrays: one interpolation call serves proposals on different paths.
        if bundle is not None and bundle.num_paths != len(paths):
            raise ValueError(f"ProposalGenerator: a bundle of {bundle.num_paths} paths for {len(paths)} paths")
        self._bundle = bundle or PathBundle(paths)
        self._progress = self._bundle.progress
        self._states = self._bundle.states
        self._length = np.array([path.length for path in paths])
        ego_xy = np.asarray(ego_rear_axle_xy, dtype=np.float64)
        self.start_progress = (self._bundle.project(np.arange(n_lat), np.broadcast_to(ego_xy, (n_lat, 2)))
                               if start_progress is None else np.asarray(start_progress, dtype=np.float64))
        u = self.unroll
        u.idm[:, 0, PROGRESS] = self.start_progress[self.lateral]
        u.idm[:, 0, VELOCITY] = ego_speed_mps
        self._all = _all_rows(n_lat, n_pol)
        with np.errstate(all="ignore"):
            u.states[:, 0, :3] = self.interpolate(self._all, u.idm[:, 0, PROGRESS])
        if corridors is None:
            lines = corridor_lines(paths, self.start_progress, tv, trajectory_steps, dt_s)
            corridors = (shapely.buffer(lines, vehicle.width / 2, cap_style="square"),
                         corridor_pieces(lines, vehicle.width / 2))
            shapely.prepare(corridors[0])
        self.corridors, self.corridor_pieces = corridors
        if precompute:
            self._precompute_candidates()

    def interpolate(self, batch: _Batch, distances_m: F64) -> F64:
        """Poses ``(R, 3)`` of a batch at arc lengths ``(R,)`` along its paths (``DiscretePath.interpolate``)."""
        lateral = batch.lateral
        d = np.minimum(np.maximum(distances_m, 1e-5), self._length[lateral])
        hi = np.empty(len(d), dtype=np.int64)
        for lo_i, hi_i, lat in batch.spans:
            hi[lo_i:hi_i] = self._progress[lat].searchsorted(d[lo_i:hi_i])
        hi = np.minimum(np.maximum(hi, 1), self._progress.shape[1] - 1)
        lo = hi - 1
        x_lo = self._progress[lateral, lo]
        y_lo = self._states[lateral, lo]
        # scipy interp1d's expression; a zero-length interval gives NaN, which NAVSIM turns into 0.
        slope = (self._states[lateral, hi] - y_lo) / (self._progress[lateral, hi] - x_lo)[:, None]
        out = slope * (d - x_lo)[:, None] + y_lo
        out[:, 2] = np.arctan2(np.sin(out[:, 2]), np.cos(out[:, 2]))
        out[np.isnan(out)] = 0.0
        return out

    # --- leader search -----------------------------------------------------------------------------

    def _precompute_candidates(self) -> None:
        """For every path ``l``, forecast sample ``j`` and observation row ``n``: ``inside[l, j, n]`` (intersects
        the corridor and is not collided), ``progress[l, j, n]`` (the centroid's arc length on path ``l``) and
        the polygons ``polys[j, n]`` of the rows inside any corridor (see :func:`precompute_candidates`)."""
        precompute_candidates([self])

    def _tie_order(self, lateral: int, map_index: int) -> I64:
        """Rank of each observation row in the official STRtree query order (ties between equally near
        leaders go to the first one NAVSIM's occupancy map returns)."""
        polys = self.obs.polygons(map_index)
        order = shapely.STRtree(polys, node_capacity=10).query(self.corridors[lateral], predicate="intersects")
        rank = np.full(len(polys), len(polys), dtype=np.int64)
        rank[order] = np.arange(len(order))
        return rank

    def update_leaders(self, batch: _Batch, step: int) -> None:
        """Leader records of a batch of proposals (one official update call per path) at ``step``."""
        u, obs = self.unroll, self.obs
        rows = batch.index
        if step % self.update_rate != 0:
            u.leader[rows, step] = u.leader[rows, step - 1]
            return
        j = obs.map_index(step)
        n_rows = len(batch.rows)
        x_prev = u.idm[rows, step - 1, PROGRESS]
        lat = batch.lateral
        # NaN progress (rows outside the corridor) compares False.
        paths = self.lateral[rows]
        ahead = self.inside[paths, j] & (self.progress[paths, j] > x_prev[:, None])
        has_ahead = ahead.any(axis=1)
        out = np.zeros((n_rows, 3))
        out[:, PROGRESS] = self._length[lat]
        sets_speed = np.zeros(n_rows, dtype=bool)
        lead_speed = np.zeros(n_rows)
        if has_ahead.any():
            pose = u.states[rows, step - 1, :3]
            rings = ego_footprint_rings(pose, self.vehicle)
            # Exact polygon distances only where a bounding-box lower bound can beat the row's best upper bound
            # (the distance between two vertices); the others are farther than the nearest and never tie.
            r, c = np.nonzero(ahead)
            if len(r) > _PRUNE_ABOVE:
                ego_lo, ego_hi = ring_extremes(rings[r])
                obj = self.bounds[j, c]
                gap = np.maximum(np.maximum(obj[:, :2] - ego_hi, ego_lo - obj[:, 2:]), 0.0)
                lower = np.sqrt(gap[:, 0] * gap[:, 0] + gap[:, 1] * gap[:, 1])
                vx = rings[r, 0] - obj[:, :2]  # ego front-left corner to the object's lower-left box corner
                upper_pair = np.sqrt(vx[:, 0] * vx[:, 0] + vx[:, 1] * vx[:, 1]) + np.hypot(obj[:, 2] - obj[:, 0],
                                                                                           obj[:, 3] - obj[:, 1])
                upper = np.full(n_rows, np.inf)
                np.minimum.at(upper, r, upper_pair)
                keep = lower <= upper[r] * (1.0 + 1e-9) + 1e-9
                r, c = r[keep], c[keep]
            ego_polys = shapely.polygons(rings)
            dist = np.full(ahead.shape, np.inf)
            dist[r, c] = shapely.distance(ego_polys[r], self.polys[j, c])
            nearest = dist.argmin(axis=1)
            dmin = dist[np.arange(n_rows), nearest]
            at_min = dist == dmin[:, None]
            n_tied = at_min.sum(axis=1)
            n_other = n_tied - (at_min & obs.is_red_light[None, :]).sum(axis=1) if np.any(n_tied > 1) else n_tied
            # Ties between red lights only lead alike; other ties are checked one by one (rare).
            for i in np.flatnonzero(has_ahead & (n_other > 0) & (n_tied > 1)):
                tied = np.flatnonzero(dist[i] == dmin[i])
                # Equally near leaders matter only if they lead differently (red light, or another speed).
                outcome = np.where(obs.is_red_light[tied], np.nan, self._leader_speed(tied, pose[i, 2]))
                if not np.array_equal(outcome, np.full_like(outcome, outcome[0]), equal_nan=True):
                    nearest[i] = tied[np.argmin(self._tie_order(int(lat[i]), j)[tied])]
            out[has_ahead, PROGRESS] = x_prev[has_ahead] + dmin[has_ahead]
            sets_speed = has_ahead & ~obs.is_red_light[nearest]
            lead_speed = self._leader_speed(nearest, pose[:, 2])
        # The official leader record is one array reused by the proposals of a path within an update: a field
        # a proposal does not write keeps the value of the last earlier proposal (same path) that wrote it.
        idx = np.arange(n_rows)
        start = batch.start
        last_speed = np.maximum.accumulate(np.where(sets_speed, idx, -1))
        out[:, VELOCITY] = np.where(last_speed >= start, lead_speed[np.maximum(last_speed, 0)], 0.0)
        last_free = np.maximum.accumulate(np.where(~has_ahead, idx, -1))
        out[:, LENGTH_REAR] = np.where(last_free >= start, self.vehicle.length / 2, 0.0)
        u.leader[rows, step] = out

    def _leader_speed(self, rows: I64, ego_heading: F64) -> F64:
        """Speed of observation ``rows`` along the ego heading: nuPlan ``transform((|v|, 0, 0), rotation(rel)).x``
        for an Agent, 0 for static objects and red lights."""
        obs = self.obs
        rel = obs.center_pose[rows, 2] - ego_heading
        rel = np.arctan2(np.sin(rel), np.cos(rel))
        return np.where(obs.is_agent[rows], obs.speed[rows] * np.cos(rel), 0.0)

    # --- unrolling ----------------------------------------------------------------------------------

    def step(self, batch: _Batch, step: int) -> None:
        """Leaders, IDM and poses of a batch of proposals at ``step``."""
        u, rows = self.unroll, batch.index
        self.update_leaders(batch, step)
        u.idm[rows, step] = self.idm_params.propagate(u.idm[rows, step - 1], u.leader[rows, step],
                                                      u.target_velocity[rows], self.dt_s)
        u.states[rows, step, :3] = self.interpolate(batch, u.idm[rows, step, PROGRESS])

    def generate(self) -> ProposalUnroll:
        """Unroll every proposal over the proposal horizon (steps 1 .. 40)."""
        # NAVSIM silences RuntimeWarnings for the planner: a zero speed limit or a zero-length path segment
        # gives inf/NaN that the official code passes on (NaN poses become 0).
        with np.errstate(all="ignore"):
            for t in range(1, self.proposal_steps + 1):
                self.step(self._all, t)
        return self.unroll

    def extend(self, proposal: int) -> F64:
        """Unroll one proposal on to the trajectory horizon (steps 41 .. 50); returns its ``(51, 11)`` states."""
        batch = _Batch.of(np.array([proposal]), self.lateral)
        with np.errstate(all="ignore"):
            for t in range(self.proposal_steps + 1, self.trajectory_steps + 1):
                self.step(batch, t)
        return self.unroll.states[proposal]


_ALL_ROWS: dict[tuple[int, int], _Batch] = {}


def _all_rows(n_lat: int, n_pol: int) -> _Batch:
    """``_Batch.of(arange(n_lat * n_pol), repeat(arange(n_lat), n_pol))``, built once per shape (read-only)."""
    key = (n_lat, n_pol)
    if key not in _ALL_ROWS:
        _ALL_ROWS[key] = _Batch.of(np.arange(n_lat * n_pol), np.repeat(np.arange(n_lat), n_pol))
    return _ALL_ROWS[key]


def corridor_lines(paths: list[DiscretePath], start_progress: F64, target_velocities: F64, trajectory_steps: int,
                   dt_s: float) -> npt.NDArray[np.object_]:
    """Each path's driving corridor line: NAVSIM uses the trajectory horizon (5 s) at the highest target speed."""
    tv = np.asarray(target_velocities, dtype=np.float64)
    horizon_m = abs(np.max(tv)) * trajectory_steps * dt_s if len(tv) else 0.0
    return np.array([path.substring(s0, s0 + horizon_m) for path, s0 in zip(paths, start_progress)], dtype=object)


@dataclass(frozen=True)
class CandidateEntries:
    """The leader-search inputs of several generators as flat entries (``candidate_entries``).

    Entry ``k`` is observation row ``row[k]`` of generator ``gen[k]`` at forecast sample ``sample[k]``; a row
    that does not move has one entry standing for every sample (``fixed[k]``, sample 0).

    Attributes:
        gen, row, sample: ``(K,)``; fixed: ``(K,)``.
        inside: ``(n_lat, K)`` intersects path ``l``'s corridor; progress: ``(n_lat, K)`` the centroid's arc
            length on path ``l`` where inside (NaN elsewhere).
        polys: ``(K,)`` polygons; box: ``(K, 4)`` their bounds (min x, min y, max x, max y).
        num_maps: forecast samples per generator.
    """

    gen: I64
    row: I64
    sample: I64
    fixed: npt.NDArray[np.bool_]
    inside: npt.NDArray[np.bool_]
    progress: F64
    polys: npt.NDArray[np.object_]
    box: F64
    num_maps: int


def precompute_candidates(gens: list[ProposalGenerator]) -> None:
    """The leader-search arrays of several generators (one scene each), computed together.

    For every path ``l``, forecast sample ``j`` and observation row ``n`` of a generator: ``inside[l, j, n]``
    (intersects the path's corridor and is not collided), ``progress[l, j, n]`` (the centroid's arc length on
    path ``l``), the polygons ``polys[j, n]`` and their bounds ``bounds[j, n]`` of the rows near a corridor
    (:func:`candidate_entries`, scattered into each generator).
    """
    if not gens:
        return
    entries = candidate_entries(gens)
    if entries is None:
        for g in gens:  # differently configured generators: one at a time
            precompute_candidates([g])
        return
    n_maps, n_lat = entries.num_maps, entries.inside.shape[0]
    gi, nn, jj = entries.gen, entries.row, entries.sample
    polys, inside, progress, box = entries.polys, entries.inside, entries.progress, entries.box
    # Scatter into each generator's (path, sample, row) arrays; fixed rows fill every sample.
    order = np.argsort(gi, kind="stable")
    starts = np.searchsorted(gi[order], np.arange(len(gens) + 1))
    for i, g in enumerate(gens):
        sel = order[starts[i] : starts[i + 1]]
        n = len(g.obs.tokens)
        nn_i, jj_i = nn[sel], jj[sel]
        f = entries.fixed[sel]
        g.polys = np.full((n_maps, n), None, dtype=object)
        g.inside = np.zeros((n_lat, n_maps, n), dtype=bool)
        g.progress = np.full((n_lat, n_maps, n), np.nan)
        g.bounds = np.full((n_maps, n, 4), np.nan)
        g.bounds[:, nn_i[f]] = box[sel][None, f]
        g.bounds[jj_i[~f], nn_i[~f]] = box[sel][~f]
        g.polys[:, nn_i[f]] = polys[sel][None, f]
        g.inside[:, :, nn_i[f]] = inside[:, sel][:, None, f]
        g.progress[:, :, nn_i[f]] = progress[:, sel][:, None, f]
        g.polys[jj_i[~f], nn_i[~f]] = polys[sel][~f]
        g.inside[:, jj_i[~f], nn_i[~f]] = inside[:, sel][:, ~f]
        g.progress[:, jj_i[~f], nn_i[~f]] = progress[:, sel][:, ~f]


def candidate_entries(gens: list[ProposalGenerator]) -> CandidateEntries | None:
    """The leader-search inputs of several generators (one scene each, at least one), computed together:
    the (sample, row) entries near some corridor, whether each intersects each path's corridor and where its
    centroid projects on the path. None when the generators differ in forecast samples or paths per scene.

    Rows that do not move (static objects, agents at rest, red lights) are evaluated once for all samples;
    moving agents once per sample that the unroll reads (1 .. num_maps - 1). Every element gets the same
    arithmetic and predicates as for its scene alone; only the numpy and GEOS calls are shared.
    """
    time_of: dict[tuple[int, int, float], tuple[float, ...]] = {}
    times = []
    for g in gens:
        key = (g.obs.num_maps, g.obs.resolution_steps, g.obs.sample_interval_s)
        if key not in time_of:
            time_of[key] = tuple(g.obs.map_times_s(np.arange(g.obs.num_maps)).tolist())
        times.append(time_of[key])
    if len(gens) > 1 and (any(t != times[0] for t in times) or len({len(g.paths) for g in gens}) > 1):
        return None
    n_maps = gens[0].obs.num_maps
    n_lat = len(gens[0].paths)
    dt = np.array(times[0])
    maps = np.arange(1, n_maps)
    # Observation rows of all generators side by side (each generator's rows: objects, then red lights).
    n_obs = np.array([len(g.obs.tokens) for g in gens])
    row_off = np.concatenate([[0], np.cumsum(n_obs)])
    obs_gen = np.repeat(np.arange(len(gens)), n_obs)
    local = np.arange(int(row_off[-1])) - row_off[obs_gen]
    n_objs = np.array([g.obs.num_objects for g in gens])
    obj_off = np.concatenate([[0], np.cumsum(n_objs)])
    is_obj_row = local < n_objs[obs_gen]
    fvel = np.concatenate([g.obs.forecast_velocity_xy for g in gens]).reshape(-1, 2)
    moving_all = is_obj_row & np.concatenate([g.obs.is_agent for g in gens]) & np.any(fvel != 0.0, axis=1)
    collided = np.concatenate([g.obs.collided for g in gens])
    fixed = np.flatnonzero(~moving_all & ~collided)
    mov = np.flatnonzero(moving_all & ~collided)
    rings_t0 = np.concatenate([g.obs.rings_t0 for g in gens]) if n_objs.sum() else np.zeros((1, 5, 2))
    if len(mov) and n_maps > 1:
        # A moving box's samples lie between its first and last sampled rings (x0 + dt * v rounds
        # monotonically in dt): one that sweeps past every corridor piece is never inside at any sample.
        v = fvel[mov, None, :]
        ring0 = rings_t0[obj_off[obs_gen[mov]] + local[mov]]
        lo_a, hi_a = ring_extremes(ring0 + dt[1] * v)
        lo_b, hi_b = ring_extremes(ring0 + dt[-1] * v)
        lo_s, hi_s = np.minimum(lo_a, lo_b), np.maximum(hi_a, hi_b)
        n_pc = max(g.corridor_pieces.shape[0] * g.corridor_pieces.shape[1] for g in gens)
        pieces_of = np.full((len(gens), n_pc, 4), np.nan)
        for i, g in enumerate(gens):
            pieces_of[i, : g.corridor_pieces.shape[0] * g.corridor_pieces.shape[1]] = g.corridor_pieces.reshape(-1, 4)
        pc = pieces_of[obs_gen[mov]]  # (movers, pieces, 4); padding NaN meets nothing
        near = np.any((lo_s[:, None, 0] <= pc[:, :, 2]) & (hi_s[:, None, 0] >= pc[:, :, 0])
                      & (lo_s[:, None, 1] <= pc[:, :, 3]) & (hi_s[:, None, 1] >= pc[:, :, 1]), axis=1)
        mov = mov[near]
    # Entries per generator: its fixed rows (sample 0), then its movers sample by sample.
    kind = np.concatenate([np.zeros(len(fixed), np.int64), np.ones(len(mov) * len(maps), np.int64)])
    rows = np.concatenate([fixed, np.tile(mov, len(maps))])
    jj = np.concatenate([np.zeros(len(fixed), np.int64), np.repeat(maps, len(mov))])
    order = np.lexsort((local[rows], jj, kind, obs_gen[rows]))
    jj, nn, gi = jj[order], local[rows][order].astype(np.int64), obs_gen[rows][order]
    n_lights = np.array([len(g.obs.light_polygons) for g in gens])
    light_off = np.concatenate([[0], np.cumsum(n_lights)])
    is_obj = nn < n_objs[gi]
    vel = np.concatenate([g.obs.forecast_velocity_xy[: g.obs.num_objects] for g in gens]) if n_objs.sum() \
        else np.zeros((1, 2))
    obj_row = np.where(is_obj, obj_off[gi] + nn, 0)
    # Rings of the pairs (sample, row): NAVSIM's rings + dt * dxy for moving agents.
    rings = rings_t0[obj_row] if n_objs.sum() else np.zeros((len(nn), 5, 2))
    move = is_obj & moving_all[row_off[gi] + nn]
    rings[move] = rings[move] + dt[jj[move], None, None] * vel[obj_row[move], None, :]
    lo, hi = ring_extremes(rings)
    light_polys = np.concatenate([np.asarray(g.obs.light_polygons, dtype=object) for g in gens]) \
        if n_lights.sum() else np.empty(0, dtype=object)
    light_idx = light_off[gi] + nn - n_objs[gi]
    if np.any(~is_obj):
        b = shapely.bounds(light_polys[light_idx[~is_obj]])
        lo[~is_obj], hi[~is_obj] = b[:, :2], b[:, 2:]
    corridors = np.concatenate([g.corridors for g in gens])  # (gens * n_lat,), generator-major
    cb = shapely.bounds(corridors).reshape(len(gens), n_lat, 4)[gi]  # (K, n_lat, 4)
    # Bounding boxes first: the exact intersection test runs only where they overlap.
    maybe = ((lo[:, None, 0] <= cb[:, :, 2]) & (hi[:, None, 0] >= cb[:, :, 0])
             & (lo[:, None, 1] <= cb[:, :, 3]) & (hi[:, None, 1] >= cb[:, :, 1])).T  # (n_lat, K)
    # Then the boxes of the corridors' pieces (a long curved corridor's bounding box holds much besides it).
    n_pieces = max(g.corridor_pieces.shape[1] for g in gens)
    pieces = np.full((len(gens) * n_lat, n_pieces, 4), np.nan)
    for i, g in enumerate(gens):
        pieces[i * n_lat:(i + 1) * n_lat, : g.corridor_pieces.shape[1]] = g.corridor_pieces
    ll, kk = np.nonzero(maybe)
    pb = pieces[gi[kk] * n_lat + ll]  # (pairs, n_pieces, 4)
    maybe[ll, kk] = np.any((lo[kk, None, 0] <= pb[..., 2]) & (hi[kk, None, 0] >= pb[..., 0])
                           & (lo[kk, None, 1] <= pb[..., 3]) & (hi[kk, None, 1] >= pb[..., 1]), axis=1)
    keep = np.flatnonzero(maybe.any(axis=0))
    jj, nn, gi, is_obj, rings, maybe = jj[keep], nn[keep], gi[keep], is_obj[keep], rings[keep], maybe[:, keep]
    lo, hi, light_idx = lo[keep], hi[keep], light_idx[keep]
    polys = np.empty(len(keep), dtype=object)
    if np.any(is_obj):
        polys[is_obj] = shapely.polygons(rings[is_obj])
    if np.any(~is_obj):
        polys[~is_obj] = light_polys[light_idx[~is_obj]]
    inside = np.zeros((n_lat, len(keep)), dtype=bool)
    progress = np.full((n_lat, len(keep)), np.nan)
    ll, kk = np.nonzero(maybe)
    inside[ll, kk] = shapely.intersects(corridors[gi[kk] * n_lat + ll], polys[kk])
    hit = np.flatnonzero(inside.any(axis=0))
    if hit.size:
        centroid = shapely.get_coordinates(shapely.centroid(polys[hit]))
        ll, kk = np.nonzero(inside[:, hit])
        # Projections per path bundle (scenes with one centerline share theirs), each point on its own path.
        bundle_of = {}
        for i, g in enumerate(gens):
            bundle_of.setdefault(id(g._bundle), (g._bundle, []))[1].append(i)
        owner = gi[hit[kk]]
        for bundle, members in bundle_of.values():
            sel = np.flatnonzero(np.isin(owner, members))
            if len(sel):
                progress[ll[sel], hit[kk[sel]]] = bundle.project(ll[sel], centroid[kk[sel]])
    return CandidateEntries(gen=gi, row=nn, sample=jj, fixed=~moving_all[row_off[gi] + nn], inside=inside,
                            progress=progress, polys=polys, box=np.concatenate([lo, hi], axis=1), num_maps=n_maps)
