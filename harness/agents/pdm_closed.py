"""PDM-Closed: the rule-based planner whose trajectory normalises NAVSIM's ego progress (EP).

Re-implements the metric-cache use of NAVSIM v1.1's ``PDMClosedPlanner`` (specs/navsim.md §9.2; official:
``navsim/planning/simulation/planner/pdm_planner/`` and ``navsim/planning/metric_caching/
metric_cache_processor.py``), as ``MetricCacheProcessor`` runs it once per token:

1. observation: constant-velocity forecasts of the t = 0 objects and red on-route lights
   (:mod:`harness.agents.pdm_closed_observation`);
2. paths: the scene's PDM centerline and its ±1 m parallel copies (:mod:`harness.agents.pdm_closed_path`);
3. proposals: 3 paths × 5 IDM policies (target speed 0.2 … 1.0 × the starting lane's speed limit), unrolled
   for 4 s at 10 Hz (:mod:`harness.agents.pdm_closed_proposals`);
4. the 15 proposals' poses are tracked by the LQR + kinematic bicycle simulator (``metrics.pdm_simulation``)
   and scored by the v1.1 PDM scorer against the forecast (``metrics.pdms``, EP normalised over the 15);
5. the first proposal with the highest score is unrolled on to 5 s; its 51 poses (t = 0 … 5 s, the first
   being the path point nearest the ego, not the ego's own pose) are the reference, stored as nuPlan's
   ``InterpolatedTrajectory`` of ego states with zero velocity, acceleration and steering.

Frames: global (map) frame, rear axle, metres, radians counter-clockwise; state arrays use NAVSIM's
``StateIndex`` layout.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, fields

import numpy as np
import numpy.typing as npt
import shapely

from harness.agents.base import SensorNeeds
from harness.agents.pdm_closed_joint import JointUnroll
from harness.agents.pdm_closed_observation import (
    PDMObservation,
    build_observation,
    build_observations,
    forecast_timeline,
    forecast_timelines,
)
from harness.agents.pdm_closed_path import DiscretePath, PathBundle, corridor_pieces, parallel_path
from harness.agents.pdm_closed_proposals import (
    IDMParameters,
    ProposalGenerator,
    ProposalUnroll,
    candidate_entries,
    corridor_lines,
    precompute_candidates,
)
from harness.agents.pdm_closed_scoring import selection_scores
from harness.errors import ConfigError, DataError
from harness.geometry import global_to_local
from harness.scoring_scene import ObjectTimeline, ScoringScene
from harness.trajectory import Trajectory, TrajectorySampling
from harness.types import Sample
from metrics.pdm_simulation import PACIFICA, EgoInitialState, nuplan_rear_axle_roundtrip, simulate
from metrics.pdms import PDMSConfig, ProposalScores, score_batch

F64 = npt.NDArray[np.float64]

__all__ = ["PDMClosedAgent", "PDMClosedConfig", "PDMClosedResult", "forecast_constant_velocity",
           "plan_pdm_closed", "plan_pdm_closed_batch", "run_pdm_closed"]


@dataclass(frozen=True)
class PDMClosedConfig:
    """PDM-Closed as NAVSIM v1.1's ``MetricCacheProcessor`` configures it.

    Attributes:
        idm: the five IDM policies.
        lateral_offsets_m: parallel paths beside the centerline (negative = right), in proposal order.
        proposal_steps: scored horizon, steps of ``step_s`` (40 = 4 s).
        trajectory_steps: returned horizon (50 = 5 s).
        step_s: step, seconds.
        leading_agent_update_rate: leaders are searched every this many steps.
        map_radius_m: objects farther than this from the ego's centre are not observed.
        forecast_resolution_steps: the constant-velocity forecast is sampled every this many steps.
        scorer: the v1.1 scorer's configuration (official defaults).
    """

    idm: IDMParameters = IDMParameters()
    lateral_offsets_m: tuple[float, ...] = (-1.0, 1.0)
    proposal_steps: int = 40
    trajectory_steps: int = 50
    step_s: float = 0.1
    leading_agent_update_rate: int = 2
    map_radius_m: float = 100.0
    forecast_resolution_steps: int = 2
    scorer: PDMSConfig = field(default_factory=PDMSConfig)

    @property
    def observation_steps(self) -> int:
        """Steps the forecast covers: NAVSIM's ``max(proposal + 1 s, trajectory)`` = 50."""
        return max(self.proposal_steps + int(1 / self.step_s), self.trajectory_steps)


@dataclass(frozen=True)
class PDMClosedResult:
    """Everything one PDM-Closed run produced (for tests and diagnostics).

    Attributes:
        states: ``(S, 11)`` the reference (S = 51 states, t = 0 … 5 s), global frame, as the metric cache's
            ``InterpolatedTrajectory`` reports its knots (rear-axle poses after nuPlan's centre round trip;
            other fields 0).
        times_s: ``(S,)`` knot times after the scene's timestamp (k × 0.1 s; microseconds k × 100 000).
        proposals: ``(P, 41, 11)`` the proposals' reference states (poses only), P = paths × policies.
        simulated: ``(P, 41, 11)`` the proposals after LQR + bicycle simulation.
        scores: the proposals' PDMS sub-scores against ``objects``.
        best: index of the chosen proposal (first maximum of ``scores.score``).
        target_velocities_mps: ``(num_policies,)`` IDM target speeds.
        lateral, policy: ``(P,)`` path and policy index of each proposal.
        observation: PDM-Closed's observation; objects: the timeline it scored against.
        unroll: the raw IDM unroll (arc lengths, speeds, leaders).
    """

    states: F64
    times_s: F64
    proposals: F64
    simulated: F64
    scores: ProposalScores
    best: int
    target_velocities_mps: F64
    lateral: npt.NDArray[np.int64]
    policy: npt.NDArray[np.int64]
    observation: PDMObservation
    objects: ObjectTimeline
    unroll: ProposalUnroll

    @property
    def collided_tokens(self) -> tuple[str, ...]:
        """Tokens the planner treated as overlapping the ego at t = 0 (objects, and red lights it stood in)."""
        return tuple(self.observation.tokens[self.observation.collided].tolist())


def _speed_limit_of(scene: ScoringScene, speed_limit_mps: float | None) -> float | None:
    value = scene.start_lane_speed_limit_mps if speed_limit_mps is None else speed_limit_mps
    return None if value is None or not np.isfinite(value) else float(value)


def initial_state(scene: ScoringScene) -> EgoInitialState:
    """The metric cache's ``ego_state`` of a scene (the scene already holds float32-rounded dynamics)."""
    return EgoInitialState(scene.ego_pose, scene.ego_velocity_xy, scene.ego_acceleration_xy,
                           np.int64(scene.timestamp_us), PACIFICA)


def forecast_constant_velocity(
    scene: ScoringScene,
    num_steps: int = 51,
    step_s: float = 0.1,
    *,
    resolution_steps: int = 2,
    map_radius_m: float = 100.0,
    drop_collided: bool = True,
) -> ObjectTimeline:
    """PDM-Closed's observation as an object timeline to score against (``score_proposals(objects=...)``).

    The t = 0 objects within ``map_radius_m`` of the ego (nearest 50 vehicles, 25 pedestrians, 10 bicycles,
    50 static objects) move at constant speed along their heading; step ``k`` (``k × step_s`` seconds) holds
    the forecast at ``(k // resolution_steps) × resolution_steps × step_s`` (NAVSIM samples it every 0.2 s).

    Args:
        scene: the scoring scene.
        num_steps: timeline steps (51 covers v1.1's TTC look-ahead).
        step_s: step, seconds.
        resolution_steps: forecast update interval in steps (NAVSIM: 2).
        map_radius_m: observation radius around the ego's box centre, metres.
        drop_collided: leave out objects that overlap the ego at t = 0; PDM-Closed's scorer ignores them from
            the start (its NC and TTC ignore-sets begin with them), so dropping them scores the same.

    Returns:
        The forecast timeline (global frame; red lights are not part of it).
    """
    obs = build_observation(scene, map_radius_m=map_radius_m, sample_interval_s=step_s,
                            resolution_steps=resolution_steps, horizon_steps=num_steps - 1)
    return forecast_timeline(obs, num_steps, drop_collided=drop_collided)


def run_pdm_closed(
    scene: ScoringScene,
    *,
    speed_limit_mps: float | None = None,
    config: PDMClosedConfig = PDMClosedConfig(),
    carried_collided: Collection[str] = (),
) -> PDMClosedResult:
    """Run PDM-Closed on a scene and keep every intermediate result.

    Args:
        scene: the scoring scene (its ``centerline`` is PDM-Closed's centerline).
        speed_limit_mps: overrides the scene's ``start_lane_speed_limit_mps`` (m/s). Where neither is given
            (or it is NaN) the starting lane has no limit and IDM uses the fallback target speed (15 m/s).
        config: planner configuration.
        carried_collided: to reproduce NAVSIM's caching order effects only (see
            ``pdm_closed_observation.build_observation``); chain ``result.collided_tokens`` of the scenes
            planned before. Empty: the scene is planned on its own.

    Raises:
        DataError: the scene's centerline has fewer than two points.
    """
    return _run_batch([scene], speed_limit_mps=speed_limit_mps, config=config,
                      carried_collided=carried_collided)[0]


@dataclass(frozen=True)
class _Prepared:
    """One scene's planner inputs up to its proposal generator (before the unroll)."""

    obs: PDMObservation
    initial: EgoInitialState
    target: F64
    generator: ProposalGenerator


def _prepare(scene: ScoringScene, speed_limit_mps: float | None, cfg: PDMClosedConfig,
             carried_collided: Collection[str]) -> _Prepared:
    """One scene's planner inputs on its own: its generator projects the ego and searches its leader
    candidates itself (the reference the batched :func:`_prepare_all` is tested against)."""
    if scene.centerline.shape[0] < 2:
        raise DataError("PDM-Closed needs a centerline of at least two points", token=scene.token)
    obs = build_observation(scene, map_radius_m=cfg.map_radius_m, sample_interval_s=cfg.step_s,
                            resolution_steps=cfg.forecast_resolution_steps, horizon_steps=cfg.observation_steps,
                            carried_collided=carried_collided)
    paths, bundle = _lateral_paths(scene.centerline, cfg.lateral_offsets_m, None)
    initial = initial_state(scene)
    target = cfg.idm.target_velocities(_speed_limit_of(scene, speed_limit_mps))
    generator = ProposalGenerator(
        paths, obs, initial.rear_axle_pose_global()[:2], float(scene.ego_velocity_xy[0]), target, cfg.idm,
        proposal_steps=cfg.proposal_steps, trajectory_steps=cfg.trajectory_steps, dt_s=cfg.step_s,
        leading_agent_update_rate=cfg.leading_agent_update_rate, vehicle=PACIFICA, bundle=bundle,
    )
    return _Prepared(obs, initial, target, generator)


def _prepare_all(scenes: Sequence[ScoringScene], speed_limit_mps: float | None, cfg: PDMClosedConfig,
                 carried_collided: Collection[str]) -> list[_Prepared]:
    """Every scene's planner inputs, the generators' leader-candidate search left to ``precompute_candidates``
    (which ``_run_batch`` runs for all scenes at once). Scenes with one centerline share their paths, and the
    egos of the scenes of one path bundle are projected onto it in one call (the same arithmetic per point)."""
    shared: _SharedPaths = {}
    parts = []
    for scene in scenes:
        if scene.centerline.shape[0] < 2:
            raise DataError("PDM-Closed needs a centerline of at least two points", token=scene.token)
    obs_kw = dict(map_radius_m=cfg.map_radius_m, sample_interval_s=cfg.step_s,
                  resolution_steps=cfg.forecast_resolution_steps, horizon_steps=cfg.observation_steps)
    observations = (build_observations(scenes, **obs_kw) if not carried_collided else
                    [build_observation(s, carried_collided=carried_collided, **obs_kw) for s in scenes])
    for scene, obs in zip(scenes, observations, strict=True):
        paths, bundle = _lateral_paths(scene.centerline, cfg.lateral_offsets_m, shared)
        initial = initial_state(scene)
        parts.append((scene, obs, paths, bundle, initial, initial.rear_axle_pose_global()[:2]))
    n_lat = 1 + len(cfg.lateral_offsets_m)
    start: list[F64 | None] = [None] * len(parts)
    by_bundle: dict[int, list[int]] = {}
    for i, part in enumerate(parts):
        by_bundle.setdefault(id(part[3]), []).append(i)
    for members in by_bundle.values():
        xy = np.repeat(np.stack([parts[i][5] for i in members]), n_lat, axis=0)
        which = np.tile(np.arange(n_lat), len(members))
        progress = parts[members[0]][3].project(which, xy).reshape(len(members), n_lat)
        for k, i in enumerate(members):
            start[i] = progress[k]
    targets = [cfg.idm.target_velocities(_speed_limit_of(part[0], speed_limit_mps)) for part in parts]
    corridors = build_corridors([part[2] for part in parts], start, targets, cfg)
    out = []
    for (scene, obs, paths, bundle, initial, rear_xy), s0, target, own in zip(parts, start, targets, corridors,
                                                                              strict=True):
        generator = ProposalGenerator(
            paths, obs, rear_xy, float(scene.ego_velocity_xy[0]), target, cfg.idm,
            proposal_steps=cfg.proposal_steps, trajectory_steps=cfg.trajectory_steps, dt_s=cfg.step_s,
            leading_agent_update_rate=cfg.leading_agent_update_rate, vehicle=PACIFICA, bundle=bundle,
            precompute=False, start_progress=s0, corridors=own,
        )
        out.append(_Prepared(obs, initial, target, generator))
    return out


def build_corridors(paths: Sequence[list[DiscretePath]], start_progress: Sequence[F64], targets: Sequence[F64],
                    cfg: PDMClosedConfig) -> list[tuple[npt.NDArray[np.object_], F64]]:
    """Per scene its paths' prepared corridor polygons and ``corridor_pieces`` (what ``ProposalGenerator`` builds
    for itself): every scene's corridors buffered and prepared in one shapely call, their piece boxes in one
    pass (each scene's pieces trimmed to its own longest line)."""
    lines = [corridor_lines(p, s0, target, cfg.trajectory_steps, cfg.step_s)
             for p, s0, target in zip(paths, start_progress, targets, strict=True)]
    all_lines = np.concatenate(lines) if lines else np.empty(0, dtype=object)
    polys = shapely.buffer(all_lines, PACIFICA.width / 2, cap_style="square")
    shapely.prepare(polys)
    pieces = corridor_pieces(all_lines, PACIFICA.width / 2)
    n_pieces = np.isfinite(pieces[:, :, 0]).sum(axis=1)
    start = np.concatenate([[0], np.cumsum([len(v) for v in lines])]).astype(np.int64)
    return [(polys[a:b], pieces[a:b, : int(n_pieces[a:b].max(initial=0))]) for a, b in zip(start[:-1], start[1:])]


#: Lateral paths already built in a batch: centerline key -> [(centerline, offsets, paths, bundle)].
_SharedPaths = dict[tuple[int, float, float, float, float], list[tuple[F64, tuple[float, ...], list[DiscretePath],
                                                                       PathBundle]]]


def _lateral_paths(centerline: F64, offsets_m: tuple[float, ...], shared: _SharedPaths | None
                   ) -> tuple[list[DiscretePath], PathBundle]:
    """The centerline and its parallel paths, reused from ``shared`` when a scene of the batch had the same
    centerline (a route's scenes usually do); paths are read-only to the planner."""
    key = (len(centerline), float(centerline[0, 0]), float(centerline[0, 1]), float(centerline[-1, 0]),
           float(centerline[-1, 1]))
    for line, offs, paths, bundle in (shared or {}).get(key, []):
        if offs == offsets_m and np.array_equal(line, centerline):
            return paths, bundle
    paths = [DiscretePath(centerline)]
    paths += [DiscretePath(parallel_path(centerline, off)) for off in offsets_m]
    bundle = PathBundle(paths)
    if shared is not None:
        shared.setdefault(key, []).append((centerline, offsets_m, paths, bundle))
    return paths, bundle


_Generated = tuple[list[_Prepared], JointUnroll, list[F64], list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]],
                   list[F64]]


def generate_batch(scenes: Sequence[ScoringScene], cfg: PDMClosedConfig, *, speed_limit_mps: float | None = None,
                   carried_collided: Collection[str] = ()) -> _Generated | None:
    """Every scene's proposals, generated together and simulated in one LQR + bicycle batch (None: no scenes).

    Returns:
        ``(prepared, joint, proposals, distinct, simulated_distinct)``: per scene its inputs, the joint unroll
        (``extend`` gives the chosen trajectories), its ``(P, 41, 11)`` proposals, ``(first, inverse)`` of its
        distinct proposals (``_distinct_rows``) and the simulated states of those distinct rows.
    """
    prepared = _prepare_all(scenes, speed_limit_mps, cfg, carried_collided)
    if not prepared:
        return None
    gens = [p.generator for p in prepared]
    entries = candidate_entries(gens)  # the leader search's inputs, all scenes at once
    if entries is None:  # generators configured differently (JointUnroll refuses them)
        precompute_candidates(gens)
    joint = JointUnroll(gens, entries)
    joint.generate()
    proposals = [p.generator.unroll.states[:, : cfg.proposal_steps + 1].copy() for p in prepared]
    # Equal proposals of a scene (policies that end up driving alike, ~1 in 10) are simulated and scored once:
    # rows are simulated and scored independently, and EP's normaliser (the best masked progress of the
    # scene) is the same over the distinct ones.
    distinct = [_distinct_rows(props) for props in proposals]
    counts = [len(first) for first, _ in distinct]
    initial = EgoInitialState.stack([p.initial for p in prepared])[np.repeat(np.arange(len(prepared)), counts)]
    simulated_all = simulate(np.concatenate([props[first] for props, (first, _) in zip(proposals, distinct)]),
                             initial, step_s=cfg.step_s)
    bounds = np.concatenate([[0], np.cumsum(counts)])
    simulated_distinct = [simulated_all[bounds[i]:bounds[i + 1]] for i in range(len(prepared))]
    return prepared, joint, proposals, distinct, simulated_distinct


def _run_batch(
    scenes: Sequence[ScoringScene],
    *,
    speed_limit_mps: float | None = None,
    config: PDMClosedConfig = PDMClosedConfig(),
    carried_collided: Collection[str] = (),
    selection_only: bool = False,
) -> list[PDMClosedResult]:
    """``run_pdm_closed`` of many scenes: the proposals of all scenes are simulated in one LQR + bicycle batch
    and scored in one ``score_batch`` call (each scene's EP still normalised over its own 15 proposals); the
    per-row arithmetic is the same, so every result equals the scene planned alone.

    ``selection_only``: the proposals are scored by ``pdm_closed_scoring.selection_scores`` (the score alone,
    equal to ``score_batch``'s bit for bit, at a fraction of the cost, the centerline's proposals first: where
    they decide the choice the others are not scored); the results' ``scores`` then hold only ``score``, -inf
    for proposals not scored (for the metric cache, which keeps the trajectory: the same choice)."""
    cfg = config
    gen = generate_batch(scenes, cfg, speed_limit_mps=speed_limit_mps, carried_collided=carried_collided)
    if gen is None:
        return []
    prepared, joint, proposals, distinct, simulated_distinct = gen
    objects = forecast_timelines([p.obs for p in prepared], cfg.observation_steps + 1)
    simulated = [sim[inv] for sim, (_, inv) in zip(simulated_distinct, distinct, strict=True)]
    if selection_only:
        # The centerline's proposals first (their distinct rows lead): most scenes are decided by them.
        n_first = len(cfg.idm.speed_limit_fractions)
        heads = [int(np.searchsorted(first, n_first)) for first, _ in distinct]
        chosen = selection_scores(list(scenes), simulated_distinct, objects, config=cfg.scorer, head_rows=heads)
        all_scores = [_ScoreOnly(sc[inv]) for sc, (_, inv) in zip(chosen, distinct, strict=True)]
    else:
        scores_distinct = score_batch(list(scenes), simulated_distinct, objects=objects, config=cfg.scorer)
        all_scores = [_take(sc, inv) for sc, (_, inv) in zip(scores_distinct, distinct, strict=True)]
    times_s = np.arange(cfg.trajectory_steps + 1) * int(cfg.step_s * 1e6) / 1e6
    bests = [int(np.argmax(scores.score)) for scores in all_scores]
    extended = joint.extend(bests)
    out = []
    for p, props, sim, obj, scores, best, ext in zip(prepared, proposals, simulated, objects, all_scores, bests,
                                                     extended, strict=True):
        states = ext.copy()
        # The cache stores nuPlan EgoStates built from these rear-axle poses: report them as EgoState does.
        states[:, :3] = nuplan_rear_axle_roundtrip(states[:, :3], PACIFICA.rear_axle_to_center)
        out.append(PDMClosedResult(states, times_s.copy(), props, sim, scores, best, p.target,
                                   p.generator.lateral, p.generator.policy, p.obs, obj, p.generator.unroll))
    return out


@dataclass(frozen=True)
class _ScoreOnly:
    """The proposals' scores where only ``score`` was computed (``_run_batch(selection_only=True)``)."""

    score: F64


def _distinct_rows(rows: F64) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """``(first, inverse)``: indices of the first of each distinct row (bytewise equal), in order, and the
    position in ``first`` of every row's copy (``rows[first][inverse]`` equals ``rows``)."""
    seen: dict[bytes, int] = {}
    first: list[int] = []
    inverse = np.empty(len(rows), dtype=np.int64)
    for i, row in enumerate(rows):
        key = row.tobytes()
        if key not in seen:
            seen[key] = len(first)
            first.append(i)
        inverse[i] = seen[key]
    return np.asarray(first, dtype=np.int64), inverse


def _take(scores: ProposalScores, rows: npt.NDArray[np.int64]) -> ProposalScores:
    """The proposal scores of ``rows`` (every field's rows)."""
    return ProposalScores(**{f.name: getattr(scores, f.name)[rows] for f in fields(scores)})


def plan_pdm_closed(
    scene: ScoringScene, *, speed_limit_mps: float | None = None, config: PDMClosedConfig = PDMClosedConfig()
) -> tuple[F64, F64]:
    """PDM-Closed's reference trajectory, as NAVSIM v1.1's metric cache stores it.

    Args:
        scene: the scoring scene.
        speed_limit_mps: see :func:`run_pdm_closed`.
        config: planner configuration.

    Returns:
        ``(S, 11)`` global rear-axle states (S = 51: t = 0 … 5 s at 10 Hz; x, y, heading set, the rest 0) and
        ``(S,)`` their times in seconds after the scene's timestamp. Scoring samples them at 0 … 4 s with
        ``metrics.pdm_simulation.sample_reference`` (nuPlan ``InterpolatedTrajectory`` semantics).
    """
    result = run_pdm_closed(scene, speed_limit_mps=speed_limit_mps, config=config)
    return result.states, result.times_s


def plan_pdm_closed_batch(
    scenes: Sequence[ScoringScene], *, config: PDMClosedConfig = PDMClosedConfig()
) -> list[tuple[F64, F64]]:
    """:func:`plan_pdm_closed` of many scenes at once (proposals simulated and scored in one batch).

    Each scene's result equals ``plan_pdm_closed(scene)``; a scene is planned on its own (no state carried
    from one scene to the next). Raises as :func:`plan_pdm_closed` for the first bad scene.
    """
    return [(r.states, r.times_s) for r in _run_batch(scenes, config=config, selection_only=True)]


class PDMClosedAgent:
    """PDM-Closed as a privileged policy (``PrivilegedPolicy``): it plans on each token's scoring scene.

    Args:
        scene_provider: token -> ``ScoringScene`` (e.g. ``MetricCache.get``); PDM-Closed needs the map,
            route and objects, which a ``Sample`` does not carry. The runner supplies its metric cache through
            :meth:`use_scoring_scenes` when none is given here.
        config: planner configuration.
    """

    name = "pdm_closed"
    privileged = True

    def __init__(self, scene_provider: Callable[[str], ScoringScene] | None = None,
                 config: PDMClosedConfig = PDMClosedConfig()) -> None:
        self.scene_provider = scene_provider
        self.config = config

    def sensor_needs(self) -> SensorNeeds:
        return SensorNeeds()

    def use_scoring_scenes(self, scene_provider: Callable[[str], ScoringScene]) -> None:
        """Plan on these scoring scenes (the runner's metric cache) unless a provider was given already."""
        if self.scene_provider is None:
            self.scene_provider = scene_provider

    def plan_from_samples(self, samples: Sequence[Sample], sampling: TrajectorySampling) -> list[Trajectory]:
        """One trajectory per sample, in the sample's ego frame at ``sampling``.

        Raises:
            ConfigError: the agent has no scene provider.
        """
        if self.scene_provider is None:
            raise ConfigError("the pdm_closed agent needs scoring scenes: build it with scene_provider=... or run "
                              "it through lead-bench run navsim")
        return self.plan_scenes([self.scene_provider(s.meta.token) for s in samples], sampling)

    def plan_scenes(self, scenes: Sequence[ScoringScene], sampling: TrajectorySampling) -> list[Trajectory]:
        """One trajectory per scene in its t = 0 rear-axle frame at ``sampling`` (the reference's poses,
        linearly interpolated at the sampling's times). A scene from the metric cache already holds PDM-Closed's
        trajectory under the default configuration; it is used as is (the planner is deterministic)."""
        planned = [s.pdm_closed_states.shape[0] >= 2 and self.config == PDMClosedConfig() for s in scenes]
        todo = [s for s, done in zip(scenes, planned, strict=True) if not done]
        fresh = iter(plan_pdm_closed_batch(todo, config=self.config) if todo else [])
        out = []
        for scene, done in zip(scenes, planned, strict=True):
            states, times = (scene.pdm_closed_states, scene.pdm_closed_times_s) if done else next(fresh)
            out.append(Trajectory(_local_poses_at(scene.ego_pose, states, times, sampling.times_s), sampling))
        return out


def _local_poses_at(ego_pose: F64, states: F64, times_s: F64, query_s: F64) -> F64:
    """Global reference poses linearly interpolated at ``query_s`` (clipped), in the t = 0 rear-axle frame."""
    q = np.clip(query_s, times_s[0], times_s[-1])
    heading = np.unwrap(states[:, 2])
    poses = np.stack([np.interp(q, times_s, v) for v in (states[:, 0], states[:, 1], heading)], axis=-1)
    return global_to_local(poses, ego_pose)
