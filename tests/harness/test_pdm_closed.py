"""Tests for harness.agents.pdm_closed: NAVSIM v1.1's PDM-Closed planner (the reference that normalises EP).

Scenes are small synthetic ``ScoringScene``s from ``tests/metrics/scene_builders.py``: the straight road along
+x (ego lane y in [-1.75, 1.75], left lane on route up to y = 5.25, oncoming lanes beyond; centerline y = 0;
ego at the origin at 10 m/s) and random scenes on the fixture intersection.

``loop_plan`` below is a straightforward implementation written from the official structure (lateral path ->
time step -> proposal, one object at a time, NAVSIM's STRtree occupancy maps and GEOS calls): an independent
oracle for the vectorised planner and the baseline of benchmarks/bench_pdm_closed.py. Agreement with the
official code itself was measured outside the repository (see the module docstrings).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.agents.pdm_closed import (
    PDMClosedAgent,
    PDMClosedConfig,
    forecast_constant_velocity,
    initial_state,
    plan_pdm_closed,
    run_pdm_closed,
)
from harness.agents.pdm_closed_observation import (
    PDMObservation,
    build_observation,
    build_observations,
    ego_footprint_rings,
    forecast_timeline,
    forecast_timelines,
)
from harness.agents.pdm_closed_path import DiscretePath, parallel_path
from harness.agents.pdm_closed_proposals import LENGTH_REAR, PROGRESS, VELOCITY, IDMParameters
from harness.errors import ConfigError, DataError
from harness.scoring_scene import ObjectType, ScoringScene
from harness.trajectory import NAVSIM_SAMPLING
from metrics.pdm_simulation import PACIFICA, nuplan_rear_axle_roundtrip, simulate
from metrics.pdms import score_proposals
from tests.metrics.scene_builders import Obj, random_scene, straight_road

FRONT = PACIFICA.front_length  # rear axle -> front bumper, m
LIMIT = 15.0  # speed limit of the test lanes, m/s
LIGHT_ID = 3001


# --- the loop oracle ----------------------------------------------------------------------------------------

def _normalize(a: float) -> float:
    return float(np.arctan2(np.sin(a), np.cos(a)))


def loop_plan(scene: ScoringScene, speed_limit_mps: float | None = None, *,
              best: int | None = None) -> tuple[np.ndarray, int, np.ndarray]:
    """PDM-Closed one proposal and one object at a time; returns (the 51 reference states, best, proposals).

    With ``best`` given, the proposals are neither simulated nor scored and that one is extended (the
    planner's own work, for the benchmark).
    """
    obs = build_observation(scene)
    cl = scene.centerline
    paths = [DiscretePath(cl)] + [DiscretePath(parallel_path(cl, off)) for off in (-1.0, 1.0)]
    idm_params = IDMParameters()
    target = idm_params.target_velocities(scene.start_lane_speed_limit_mps if speed_limit_mps is None
                                          else speed_limit_mps)
    n_pol = len(target)
    n_prop, n_t, dt = 3 * n_pol, 51, 0.1
    states, idm, lead = np.zeros((n_prop, n_t, 11)), np.zeros((n_prop, n_t, 2)), np.zeros((n_prop, n_t, 3))
    ego_xy = nuplan_rear_axle_roundtrip(scene.ego_pose, PACIFICA.rear_axle_to_center)[:2]
    trees: dict[int, shapely.STRtree] = {}
    corridors: dict[int, shapely.Geometry] = {}

    def update(batch: list[int], lat: int, t: int) -> None:
        if t % 2:
            for p in batch:
                lead[p, t] = lead[p, t - 1]
            return
        j = t // 2
        polys = obs.polygons(j)
        if j not in trees:
            trees[j] = shapely.STRtree(polys, node_capacity=10)
        cand = [int(n) for n in trees[j].query(corridors[lat], predicate="intersects") if not obs.collided[n]]
        prog = {n: paths[lat].linestring.project(polys[n].centroid) for n in cand}
        rec = np.zeros(3)  # one record for the whole batch, as NAVSIM's generator keeps it
        for p in batch:
            x = idm[p, t - 1, PROGRESS]
            ahead = [n for n in cand if prog[n] > x]
            if ahead:
                ego = shapely.Polygon(ego_footprint_rings(states[p, t - 1, :3])[:4])
                d = [ego.distance(polys[n]) for n in ahead]
                k = int(np.argmin(d))
                n = ahead[k]
                rec[PROGRESS] = x + d[k]
                if not obs.is_red_light[n]:
                    rel = _normalize(obs.center_pose[n, 2] - states[p, t - 1, 2])
                    rec[VELOCITY] = obs.speed[n] * np.cos(rel) if obs.is_agent[n] else 0.0
            else:
                rec[PROGRESS] = paths[lat].length
                rec[LENGTH_REAR] = PACIFICA.length / 2
            lead[p, t] = rec

    def advance(p: int, lat: int, t: int) -> None:
        x, v = idm[p, t - 1]
        x_lead, v_lead, l_rear = lead[p, t]
        g0, a, b, v0 = idm_params.min_gap_m, idm_params.accel_max_mps2, idm_params.decel_max_mps2, target[p % n_pol]
        s_star = g0 + v * idm_params.headway_s + (v * (v - v_lead)) / (2 * np.sqrt(a * b))
        s_alpha = max(x_lead - x - l_rear, g0)
        with np.errstate(all="ignore"):
            v_dot = a * (1 - (v / v0) ** 10 - (s_star / s_alpha) ** 2)
        v_dot = min(max(v_dot, -b), a)
        idm[p, t] = (x + dt * v, v + dt * v_dot)
        states[p, t, :3] = paths[lat].interpolate(np.array([idm[p, t, PROGRESS]]))[0]

    for lat, path in enumerate(paths):
        batch = [lat * n_pol + k for k in range(n_pol)]
        s0 = float(path.linestring.project(shapely.Point(ego_xy)))
        for p in batch:
            idm[p, 0] = (s0, scene.ego_velocity_xy[0])
            states[p, 0, :3] = path.interpolate(np.array([s0]))[0]
        corridors[lat] = shapely.buffer(path.substring(s0, s0 + abs(np.max(target)) * 50 * dt), PACIFICA.width / 2,
                                        cap_style="square")
        for t in range(1, 41):
            update(batch, lat, t)
            for p in batch:
                advance(p, lat, t)
    if best is None:
        initial = initial_state(scene)
        simulated = np.concatenate([simulate(states[p : p + 1, :41], initial) for p in range(n_prop)])
        scores = score_proposals(scene, simulated, objects=forecast_timeline(obs, 51))
        best = int(np.argmax(scores.score))
    for t in range(41, 51):
        update([best], best // n_pol, t)
        advance(best, best // n_pol, t)
    out = states[best].copy()
    out[:, :3] = nuplan_rear_axle_roundtrip(out[:, :3], PACIFICA.rear_axle_to_center)
    return out, best, states


# --- scene helpers ------------------------------------------------------------------------------------------

def with_light(scene: ScoringScene, x0: float, x1: float, *, red: bool = True, on_route: bool = True) -> ScoringScene:
    """Adds a signalised lane connector over the ego lane between x0 and x1 (red or green for all steps)."""
    n_t = scene.num_steps
    route = scene.route_lane_ids.tolist() + ([LIGHT_ID] if on_route else [])
    return replace(scene, light_connector_ids=np.array([LIGHT_ID]), red_light_mask=np.full((n_t, 1), red),
                   light_polygons=np.array([shapely.box(x0, -1.75, x1, 1.75)], dtype=object),
                   route_lane_ids=np.asarray(route, dtype=np.int64))


def with_ego(scene: ScoringScene, *, y: float = 0.0, speed: float = 10.0) -> ScoringScene:
    return replace(scene, ego_pose=np.array([0.0, y, 0.0]), ego_velocity_xy=np.array([speed, 0.0]))


def speeds(states: np.ndarray) -> np.ndarray:
    return np.hypot(*np.diff(states[:, :2], axis=0).T) / 0.1


# --- the public API -----------------------------------------------------------------------------------------

def test_output_shape_times_and_fields():
    scene = with_ego(straight_road(), y=0.3)
    states, times = plan_pdm_closed(scene, speed_limit_mps=LIMIT)
    assert states.shape == (51, 11) and times.shape == (51,)
    np.testing.assert_allclose(times, np.arange(51) * 0.1, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(np.round(times * 1e6).astype(np.int64), np.arange(51) * 100_000)
    # Only poses are set (NAVSIM stores ego states with zero velocity, acceleration and steering).
    np.testing.assert_array_equal(states[:, 3:], 0.0)
    # State 0 is the path point nearest to the ego, not the ego's own pose.
    assert states[0, 1] == 0.0 and states[0, 0] == pytest.approx(0.0, abs=1e-9)
    assert np.all(np.isfinite(states))


def test_deterministic():
    rng = np.random.default_rng(3)
    scene, _ = random_scene(rng, n_objects=30)
    a, b = run_pdm_closed(scene), run_pdm_closed(scene)
    np.testing.assert_array_equal(a.states, b.states)
    np.testing.assert_array_equal(a.scores.score, b.scores.score)
    assert a.best == b.best


def test_free_road_accelerates_toward_the_best_fraction():
    r = run_pdm_closed(straight_road(), speed_limit_mps=LIMIT)
    np.testing.assert_allclose(r.target_velocities_mps, [3.0, 6.0, 9.0, 12.0, 15.0])
    assert r.best == int(np.argmax(r.scores.score))
    # The fastest policy on the centerline makes the most progress; nothing else differs on a free road.
    assert (r.lateral[r.best], r.policy[r.best]) == (0, 4)
    v = speeds(r.states)
    assert v[10] < v[-1] <= 15.0 + 1e-9 and np.all(np.diff(v[5:]) > -1e-9)
    # Slower targets brake towards their speed: 3 m/s policy ends far below 10 m/s.
    assert r.unroll.idm[0, 40, VELOCITY] < 5.0 < 10.0 < r.unroll.idm[4, 40, VELOCITY]
    # Official quirk: at step 1 every moving proposal follows the zero-initialised leader and brakes 3 m/s².
    np.testing.assert_allclose(r.unroll.idm[:, 1, VELOCITY], 10.0 - 0.3)


def test_speed_limit_fallback():
    assert np.allclose(IDMParameters().target_velocities(None), [3.0, 6.0, 9.0, 12.0, 15.0])
    assert np.allclose(IDMParameters().target_velocities(float("nan")), [3.0, 6.0, 9.0, 12.0, 15.0])
    assert np.allclose(IDMParameters().target_velocities(20.0), [4.0, 8.0, 12.0, 16.0, 20.0])
    r = run_pdm_closed(straight_road(), speed_limit_mps=20.0)
    assert speeds(r.states)[-1] > 15.0


def test_stops_behind_a_stopped_vehicle():
    car = Obj("car", ObjectType.VEHICLE, 20.0, 0.0)
    r = run_pdm_closed(with_ego(straight_road([car]), speed=6.0), speed_limit_mps=LIMIT)
    car_rear = 20.0 - 4.6 / 2
    # IDM closes in and holds at least its minimum gap of 1 m, almost at rest after 5 s.
    gap = car_rear - (r.states[:, 0] + FRONT)
    assert gap.min() >= 1.0 and gap[-1] < 2.0
    assert r.unroll.idm[r.best, 50, VELOCITY] < 0.5
    assert r.scores.no_at_fault_collisions[r.best] == 1.0
    # Every proposal on the centerline keeps that gap over the 4 s it is scored on.
    assert np.all(car_rear - (r.unroll.states[:5, :41, 0] + FRONT) >= 1.0)


def test_stops_before_a_red_light_on_route():
    r = run_pdm_closed(with_ego(with_light(straight_road(), 20.0, 35.0), speed=6.0), speed_limit_mps=LIMIT)
    gap = 20.0 - (r.states[:, 0] + FRONT)
    assert gap.min() >= 1.0 and gap[-1] < 2.0 and r.unroll.idm[r.best, 50, VELOCITY] < 0.5
    # Red lights have no speed: the leader record of the chosen proposal says 0.
    assert np.all(r.unroll.leader[r.best, 2:41:2, VELOCITY] == 0.0)


@pytest.mark.parametrize("red, on_route", [(False, True), (True, False)])
def test_green_or_off_route_lights_are_ignored(red: bool, on_route: bool):
    free = run_pdm_closed(straight_road(), speed_limit_mps=LIMIT)
    r = run_pdm_closed(with_light(straight_road(), 30.0, 45.0, red=red, on_route=on_route), speed_limit_mps=LIMIT)
    np.testing.assert_array_equal(r.states, free.states)


def test_ego_inside_a_red_connector_ignores_it():
    # The ego stands within the connector polygon: NAVSIM lists it as "collided" and ignores it as a leader.
    r = run_pdm_closed(with_light(straight_road(), -5.0, 30.0), speed_limit_mps=LIMIT)
    assert r.observation.collided[r.observation.is_red_light].all()
    assert speeds(r.states)[-1] > 10.0


def test_lateral_offset_chosen_when_the_scorer_prefers_it():
    # Cones block the centre and right paths' corridors (y in [-1.6, -0.8]); the left path (+1 m) passes.
    cones = [Obj(f"cone{i}", ObjectType.TRAFFIC_CONE, 30.0 + i, -1.2, size=(0.8, 0.8, 0.7)) for i in range(3)]
    r = run_pdm_closed(straight_road(cones), speed_limit_mps=LIMIT)
    assert r.lateral[r.best] == 2  # offsets in order: centerline, -1 m, +1 m
    assert r.scores.score[r.best] > r.scores.score[:10].max()
    assert r.states[-1, 0] > 40.0 and abs(r.states[-1, 1] - 1.0) < 0.05


def test_centerline_kept_when_the_offset_leaves_the_road():
    # The same cones further left block centre and left; the right path would put the ego's corners off the
    # road (y < -1.75), so the scorer rates it 0 and the centerline's stop wins.
    cones = [Obj(f"cone{i}", ObjectType.TRAFFIC_CONE, 30.0 + i, 1.2, size=(0.8, 0.8, 0.7)) for i in range(3)]
    r = run_pdm_closed(straight_road(cones), speed_limit_mps=LIMIT)
    assert np.all(r.scores.drivable_area_compliance[5:10] == 0.0)
    assert r.lateral[r.best] == 0 and r.states[-1, 0] + FRONT < 30.0 - 0.4


def test_bad_centerline_raises():
    scene = replace(straight_road(), centerline=np.zeros((1, 3)))
    with pytest.raises(DataError, match="centerline"):
        plan_pdm_closed(scene)


# --- the observation ----------------------------------------------------------------------------------------

def test_forecast_moves_agents_along_their_heading_every_two_steps():
    objs = [
        Obj("fwd", ObjectType.VEHICLE, 20.0, 0.0, 0.0, 5.0, 0.0),
        Obj("back", ObjectType.VEHICLE, 20.0, 4.0, 0.0, -5.0, 0.0),  # velocity against the heading: reversed
        Obj("skew", ObjectType.BICYCLE, 20.0, 8.0, 0.0, 3.0, 4.0),  # |v| = 5 along the heading, not (3, 4)
        Obj("cone", ObjectType.TRAFFIC_CONE, 20.0, -4.0),
        Obj("ego", ObjectType.EGO, 10.0, 8.0, 0.0, 5.0, 0.0),  # never observed
        Obj("far", ObjectType.VEHICLE, 150.0, 0.0),  # > 100 m from the ego's centre
        Obj("late", ObjectType.VEHICLE, 30.0, 0.0, appear=5),  # not there at t = 0
    ]
    tl = forecast_constant_velocity(straight_road(objs))
    assert tl.tokens.tolist() == ["cone", "fwd", "back", "skew"]  # static first, then vehicles, bicycles
    assert tl.num_steps == 51 and tl.present.all()
    x = tl.poses[:, :, 0]
    # Step k holds the forecast at (k // 2) * 0.2 s.
    np.testing.assert_allclose(x[[0, 1, 2, 3, 4, 50], 1], 20.0 + 5.0 * np.array([0, 0, 0.2, 0.2, 0.4, 5.0]))
    np.testing.assert_allclose(x[[3, 50], 2], 20.0 - 5.0 * np.array([0.2, 5.0]))
    np.testing.assert_allclose(tl.poses[50, 3, :2], [20.0 + 25.0, 8.0], atol=1e-9)
    np.testing.assert_array_equal(x[:, 0], 20.0)
    # The scorer's "stopped track" test reads the logged velocity, not the forecast's.
    np.testing.assert_allclose(tl.first_velocity_xy[3], [3.0, 4.0])


def test_observation_caps_and_collided_objects():
    cars = [Obj(f"car{i:02d}", ObjectType.VEHICLE, 10.0 + 1.5 * i, 20.0) for i in range(55)]
    peds = [Obj(f"ped{i:02d}", ObjectType.PEDESTRIAN, 10.0 + i, -20.0) for i in range(30)]
    touching = Obj("touch", ObjectType.VEHICLE, 3.0, 1.5)  # overlaps the ego footprint at t = 0
    obs: PDMObservation = build_observation(straight_road(cars + peds + [touching]))
    toks = obs.tokens.tolist()
    assert sum(t.startswith("car") for t in toks) == 49 and "touch" in toks  # 50 nearest vehicles
    assert sum(t.startswith("ped") for t in toks) == 25
    assert "car54" not in toks and "ped29" not in toks  # the farthest ones are dropped
    assert obs.collided.tolist() == [t == "touch" for t in toks]
    assert "touch" not in forecast_constant_velocity(straight_road([touching])).tokens
    assert "touch" in forecast_constant_velocity(straight_road([touching]), drop_collided=False).tokens


def test_carried_collided_tokens_reproduce_navsim_caching_order():
    # NAVSIM's cache reuses one observation per worker batch: a token that overlapped the ego in an earlier
    # scene is never observed again, and a red light the ego stood in is never a leader again.
    touching = Obj("car", ObjectType.VEHICLE, 3.0, 1.5)
    first = run_pdm_closed(straight_road([touching]), speed_limit_mps=LIMIT)
    assert first.collided_tokens == ("car",)
    blocker = Obj("car", ObjectType.VEHICLE, 20.0, 0.0)  # the same track later stands in the ego's way
    scene = with_ego(straight_road([blocker]), speed=6.0)
    fresh = run_pdm_closed(scene, speed_limit_mps=LIMIT)
    carried = run_pdm_closed(scene, speed_limit_mps=LIMIT, carried_collided=first.collided_tokens)
    assert "car" in fresh.objects.tokens and "car" not in carried.objects.tokens
    assert fresh.states[-1, 0] < 20.0 - 2.3 - FRONT < carried.states[-1, 0]
    inside = run_pdm_closed(with_light(straight_road(), -5.0, 30.0), speed_limit_mps=LIMIT)
    red = with_ego(with_light(straight_road(), 20.0, 35.0), speed=6.0)
    chained = run_pdm_closed(red, speed_limit_mps=LIMIT, carried_collided=inside.collided_tokens)
    assert inside.collided_tokens == (f"red_light_{LIGHT_ID}",)
    assert chained.states[-1, 0] > 20.0 > run_pdm_closed(red, speed_limit_mps=LIMIT).states[-1, 0] + FRONT


# --- against the loop oracle --------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2, 5])
def test_vectorised_equals_the_loop_oracle(seed: int):
    rng = np.random.default_rng(seed)
    scene, _ = random_scene(rng, n_objects=40)
    if seed % 2:  # a red light on an on-route connector ahead of the ego
        lc = int(scene.route_lane_ids[-1])
        poly = shapely.Polygon(ego_footprint_rings(np.r_[scene.centerline[len(scene.centerline) // 2, :2],
                                                         scene.centerline[len(scene.centerline) // 2, 2]])[:4])
        scene = replace(scene, light_connector_ids=np.array([lc]), red_light_mask=np.ones((scene.num_steps, 1), bool),
                        light_polygons=np.array([poly], dtype=object))
    limit = None if seed == 0 else 11.2
    r = run_pdm_closed(scene, speed_limit_mps=limit)
    ref_states, ref_best, ref_props = loop_plan(scene, limit)
    np.testing.assert_allclose(r.proposals[..., :3], ref_props[:, :41, :3], rtol=0, atol=1e-9)
    assert r.best == ref_best
    np.testing.assert_allclose(r.states, ref_states, rtol=0, atol=1e-9)


def test_straight_road_scenes_equal_the_loop_oracle():
    car = Obj("car", ObjectType.VEHICLE, 25.0, 0.3, 0.05, 4.0, 0.2)
    ped = Obj("ped", ObjectType.PEDESTRIAN, 35.0, -4.0, np.pi / 2, 0.0, 1.2)
    for scene in (straight_road([car, ped]), with_light(straight_road([car]), 50.0, 60.0),
                  with_ego(straight_road([ped]), y=0.4, speed=0.0)):
        r = run_pdm_closed(scene, speed_limit_mps=LIMIT)
        ref_states, ref_best, _ = loop_plan(scene, LIMIT)
        assert r.best == ref_best
        np.testing.assert_allclose(r.states, ref_states, rtol=0, atol=1e-9)


# --- the agent wrapper --------------------------------------------------------------------------------------

def test_agent_plans_from_scenes_in_the_ego_frame():
    scene = straight_road()
    agent = PDMClosedAgent(config=PDMClosedConfig())
    assert agent.privileged and agent.sensor_needs().cameras == ()
    (traj,) = agent.plan_scenes([scene], NAVSIM_SAMPLING)
    states, times = plan_pdm_closed(scene)
    np.testing.assert_allclose(traj.poses[-1, :2], states[40, :2], atol=1e-9)  # t = 4.0 s, ego at the origin
    assert traj.poses.shape == (8, 3)
    with pytest.raises(ConfigError, match="scene_provider"):
        agent.plan_from_samples([], NAVSIM_SAMPLING)


def test_batch_of_scenes_equals_each_scene_alone(small_world_root, tmp_path):
    from adapters.navsim.reader import NavsimReader
    from adapters.navsim.scoring_scenes import ScoringSceneCache
    from harness.agents.pdm_closed import PDMClosedConfig, _prepare, _run_batch, run_pdm_closed

    reader = NavsimReader(small_world_root, "test")
    cache = ScoringSceneCache(tmp_path / "scenes", reader, small_world_root / "maps")
    refs = reader.index()
    scenes = [cache.get(r.token) for r in refs[:: max(1, len(refs) // 10)]]
    for alone, joint in zip([run_pdm_closed(s) for s in scenes], _run_batch(scenes), strict=True):
        np.testing.assert_array_equal(alone.states, joint.states)
        np.testing.assert_array_equal(alone.simulated, joint.simulated)
        np.testing.assert_array_equal(alone.unroll.idm[:, :41], joint.unroll.idm[:, :41])
        np.testing.assert_array_equal(alone.unroll.leader[:, :41], joint.unroll.leader[:, :41])
        np.testing.assert_array_equal(alone.scores.score, joint.scores.score)
        assert alone.best == joint.best
    # The joint unroll equals each scene's own generator stepping alone (ProposalGenerator.generate/extend).
    for scene, joint in zip(scenes, _run_batch(scenes), strict=True):
        gen = _prepare(scene, None, PDMClosedConfig(), ()).generator  # projects and searches on its own
        unroll = gen.generate()
        np.testing.assert_array_equal(unroll.states[:, :41], joint.unroll.states[:, :41])
        np.testing.assert_array_equal(unroll.leader[:, :41], joint.unroll.leader[:, :41])
        np.testing.assert_array_equal(gen.extend(joint.best), joint.unroll.states[joint.best])


def test_joint_candidates_from_entries_equal_those_of_the_generators(small_world_root, tmp_path):
    """JointUnroll built from candidate_entries (the batch path) holds the arrays it builds from the generators'
    own leader-search arrays (precompute_candidates)."""
    from adapters.navsim.reader import NavsimReader
    from adapters.navsim.scoring_scenes import ScoringSceneCache
    from harness.agents.pdm_closed import PDMClosedConfig, _prepare_all
    from harness.agents.pdm_closed_joint import JointUnroll
    from harness.agents.pdm_closed_proposals import candidate_entries, precompute_candidates

    reader = NavsimReader(small_world_root, "test")
    cache = ScoringSceneCache(tmp_path / "scenes", reader, small_world_root / "maps")
    scenes = [cache.get(r.token) for r in reader.index()[::3]]
    gens = [p.generator for p in _prepare_all(scenes, None, PDMClosedConfig(), ())]
    from_entries = JointUnroll(gens, candidate_entries(gens))
    precompute_candidates(gens)
    from_gens = JointUnroll(gens)
    assert from_gens.inside.any()
    for name in ("candidate_row", "inside", "cand_progress", "bounds", "is_red", "is_agent", "obj_heading",
                 "obj_speed"):
        np.testing.assert_array_equal(getattr(from_entries, name), getattr(from_gens, name), err_msg=name)
    a, b = from_entries.polys.ravel(), from_gens.polys.ravel()
    np.testing.assert_array_equal(a == None, b == None)  # noqa: E711 (elementwise)
    assert shapely.to_wkb(a[a != None]).tolist() == shapely.to_wkb(b[b != None]).tolist()  # noqa: E711


def test_observations_of_many_scenes_equal_each_scene_alone(small_world_root, tmp_path):
    """build_observations (the batch path) equals build_observation scene by scene, also for a scene with two
    equally distant objects of one group (left to np.argsort, as alone)."""
    import dataclasses

    from adapters.navsim.reader import NavsimReader
    from adapters.navsim.scoring_scenes import ScoringSceneCache

    reader = NavsimReader(small_world_root, "test")
    cache = ScoringSceneCache(tmp_path / "scenes", reader, small_world_root / "maps")
    scenes = [cache.get(r.token) for r in reader.index()[::2]]
    # A tie: a second vehicle moved onto the first (the same distance).
    base = scenes[0]
    poses = base.object_poses.copy()
    vehicles = np.flatnonzero((base.object_types == ObjectType.VEHICLE) & base.object_present[0])
    poses[0, vehicles[1]] = poses[0, vehicles[0]]
    tied = dataclasses.replace(base, object_poses=poses)
    scenes.append(tied)
    many = build_observations(scenes)
    n_checked = 0
    for scene, got in zip(scenes, many, strict=True):
        want = build_observation(scene)
        for f in dataclasses.fields(want):
            if f.name == "_cache":
                continue
            a, b = getattr(want, f.name), getattr(got, f.name)
            if f.name == "light_polygons":
                assert shapely.to_wkb(a).tolist() == shapely.to_wkb(b).tolist()
            else:
                np.testing.assert_array_equal(a, b, err_msg=f.name)
        n_checked += want.num_objects
    assert n_checked > 0 and many[-1].num_objects > 1
    # Their forecasts, all at once, equal each one's own.
    for obs, timeline in zip(many, forecast_timelines(many, 51), strict=True):
        alone = forecast_timeline(obs, 51)
        for f in dataclasses.fields(alone):
            np.testing.assert_array_equal(getattr(alone, f.name), getattr(timeline, f.name), err_msg=f.name)


def test_registered_agent_runs_on_the_metric_cache(small_world_root, tmp_path):
    from adapters.navsim.reader import NavsimReader
    from harness.agents import AGENTS, build_agent
    from harness.errors import ConfigError
    from harness.runner import run_navsim
    from harness.trajectory import NAVSIM_SAMPLING

    assert "pdm_closed" in AGENTS
    agent = build_agent("pdm_closed")
    assert agent.privileged
    reader = NavsimReader(small_world_root, "test")
    with pytest.raises(ConfigError, match="scoring scenes"):
        agent.plan_from_samples([reader.load(reader.index()[0])], NAVSIM_SAMPLING)
    summary = run_navsim(reader, agent, tmp_path / "out", maps_root=small_world_root / "maps",
                         cache_dir=tmp_path / "mc")
    assert summary.failed == 0 and summary.scored == summary.expected > 0
    assert summary.metrics["score"] > 0.8
    # The cached reference and a fresh plan give the same trajectory.
    scene = agent.scene_provider(reader.index()[0].token)
    fresh = PDMClosedAgent(config=PDMClosedConfig(lateral_offsets_m=(-1.0, 1.0)))
    fresh_scene = replace(scene, pdm_closed_states=np.zeros((0, 11)), pdm_closed_times_s=np.zeros(0))
    np.testing.assert_array_equal(agent.plan_scenes([scene], NAVSIM_SAMPLING)[0].poses,
                                  fresh.plan_scenes([fresh_scene], NAVSIM_SAMPLING)[0].poses)


def test_equal_proposals_scored_once_give_the_same_results(small_world_root, tmp_path, monkeypatch):
    import dataclasses

    from adapters.navsim.reader import NavsimReader
    from adapters.navsim.scoring_scenes import ScoringSceneCache
    from harness.agents import pdm_closed

    reader = NavsimReader(small_world_root, "test")
    cache = ScoringSceneCache(tmp_path / "scenes", reader, small_world_root / "maps")
    scenes = [cache.get(r.token) for r in reader.index()[::4]]
    # Repeated target speeds make equal proposals in every scene (the world's own scenes have them now and then).
    config = pdm_closed.PDMClosedConfig(idm=IDMParameters(speed_limit_fractions=(0.4, 0.4, 1.0, 0.2, 1.0)))
    deduped = pdm_closed._run_batch(scenes, config=config)
    assert all(len(np.unique(r.proposals.reshape(len(r.proposals), -1), axis=0)) <= 9 for r in deduped)
    monkeypatch.setattr(pdm_closed, "_distinct_rows", lambda rows: (np.arange(len(rows)), np.arange(len(rows))))
    for a, b in zip(deduped, pdm_closed._run_batch(scenes, config=config), strict=True):
        np.testing.assert_array_equal(a.states, b.states)
        np.testing.assert_array_equal(a.simulated, b.simulated)
        assert a.best == b.best
        for f in dataclasses.fields(a.scores):
            np.testing.assert_array_equal(getattr(a.scores, f.name), getattr(b.scores, f.name), err_msg=f.name)


def test_selection_scores_equal_the_full_scorer(small_world_root, tmp_path):
    """The metric cache's cheaper scoring (``selection_only``) keeps each proposal's score bit for bit, also for
    proposals pushed into objects and off the road (contacts and off-road states exercise every flag)."""
    from adapters.navsim.reader import NavsimReader
    from adapters.navsim.scoring_scenes import ScoringSceneCache
    from harness.agents import pdm_closed
    from harness.agents.pdm_closed_scoring import selection_scores
    from metrics.pdm_scoring.ego_areas import compute_ego_areas
    from metrics.pdms import score_batch

    reader = NavsimReader(small_world_root, "test")
    cache = ScoringSceneCache(tmp_path / "scenes", reader, small_world_root / "maps")
    scenes = [cache.get(r.token) for r in reader.index()[::3]]
    full = pdm_closed._run_batch(scenes)
    chosen = pdm_closed._run_batch(scenes, selection_only=True)
    skipped = 0
    for a, b in zip(full, chosen, strict=True):
        assert a.best == b.best
        np.testing.assert_array_equal(a.states, b.states)
        # Proposals after the centerline's are scored only where they may change the choice (-inf otherwise).
        scored = np.isfinite(b.scores.score)
        np.testing.assert_array_equal(a.scores.score[scored], b.scores.score[scored])
        assert scored[: len(pdm_closed.PDMClosedConfig().idm.speed_limit_fractions)].all()
        skipped += int((~scored).sum())
    assert skipped > 0
    # Proposals shifted sideways and along their heading: into other objects and off the road.
    rng = np.random.default_rng(0)
    moved = []
    for r in full:
        sim = r.simulated.copy()
        shift = rng.uniform(-6.0, 6.0, size=(len(sim), 1, 2)) * np.linspace(0.0, 1.0, sim.shape[1])[None, :, None]
        sim[:, :, :2] += shift
        moved.append(sim)
    objects = [r.objects for r in full]
    reference = score_batch(scenes, moved, objects=objects)
    got = selection_scores(scenes, moved, objects)
    for ref, score in zip(reference, got, strict=True):
        np.testing.assert_array_equal(ref.score, score)
    # Head rows first: the rows scored equal the full scores, the first best row is the same, and rows are left
    # out only in scenes where a head row reaches the top score (1 with v1.1's weights).
    both = [r.simulated for r in full] + moved  # as planned (mostly decided early) and pushed around
    reference = score_batch(scenes + scenes, both, objects=objects + objects)
    heads = [5] * len(full) + rng.integers(1, 16, size=len(moved)).tolist()  # 5: the centerline's proposals
    got = selection_scores(scenes + scenes, both, objects + objects, head_rows=heads)
    left_out = 0
    for ref, score, head in zip(reference, got, heads, strict=True):
        scored = np.isfinite(score)
        np.testing.assert_array_equal(ref.score[scored], score[scored])
        assert int(np.argmax(score)) == int(np.argmax(ref.score))
        assert scored[:head].all()
        if not scored.all():
            assert (score[:head] == 1.0).any()
            left_out += 1
    assert 0 < left_out < len(got)
    nc = np.concatenate([ref.no_at_fault_collisions for ref in reference])
    dac = np.concatenate([ref.drivable_area_compliance for ref in reference])
    ttc = np.concatenate([ref.time_to_collision_within_bound for ref in reference])
    assert (nc < 1).any() and (dac == 0).any() and (dac == 1).any() and (ttc == 0).any()
    # The lane and intersection flags asked for at some states equal the full flags there.
    from metrics.pdm_scoring.geometry import X, Y, ego_coords

    states = moved[0]
    coords = ego_coords(states)
    polys = _map_polygons(scenes[0])
    row_scene = np.zeros(len(states), dtype=np.int64)
    every = compute_ego_areas(coords, states[..., [X, Y]], row_scene, polys)
    mask = rng.random(states.shape[:2]) < 0.3
    some = compute_ego_areas(coords, states[..., [X, Y]], row_scene, polys, lanes_at=mask, oncoming=False)
    np.testing.assert_array_equal(some.non_drivable, every.non_drivable)
    np.testing.assert_array_equal(some.multiple_lanes[mask], every.multiple_lanes[mask])
    np.testing.assert_array_equal(some.rear_axle_in_intersection[mask], every.rear_axle_in_intersection[mask])
    assert not some.multiple_lanes[~mask].any() and some.oncoming.all()
    assert every.multiple_lanes[mask].any() and every.non_drivable.any()


def _map_polygons(scene: ScoringScene):
    """The scorer's drivable-polygon table of one scene (as ``metrics.pdms`` builds it)."""
    from harness.map_query import MapLayer
    from metrics.pdm_scoring.ego_areas import MapPolygons

    types = np.asarray(scene.drivable_types, dtype=np.int64)
    lanes = np.isin(types, [int(MapLayer.LANE), int(MapLayer.LANE_CONNECTOR)])
    geoms = np.asarray(scene.drivable_polygons, dtype=object)
    return MapPolygons(
        geoms=geoms, scene=np.zeros(len(geoms), dtype=np.int64), bounds=shapely.bounds(geoms).reshape(-1, 4),
        is_lane=lanes,
        is_drivable=np.isin(types, [int(MapLayer.ROADBLOCK), int(MapLayer.INTERSECTION), int(MapLayer.CARPARK_AREA)]),
        is_route_lane=lanes & np.isin(scene.drivable_ids, scene.route_lane_ids),
        is_intersection=types == int(MapLayer.INTERSECTION),
    )


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 60), st.floats(0.1, 3.0), st.integers(0, 2**31 - 1), st.sampled_from([0.0, 6e5]))
def test_corridor_pieces_cover_the_buffer(n_vertices, half_width, seed, origin):
    """Every vertex of a square-capped buffer of a random line lies in one of the line's piece boxes (so a
    box meeting no piece cannot meet the corridor), for points, short and long curved lines."""
    from harness.agents.pdm_closed_proposals import corridor_pieces

    rng = np.random.default_rng(seed)
    heading = np.cumsum(rng.normal(0.0, 0.3, n_vertices))
    xy = origin + np.cumsum(np.column_stack([np.cos(heading), np.sin(heading)]) * rng.uniform(0.2, 2.0, (n_vertices, 1)),
                            axis=0)
    line = shapely.linestrings(xy) if n_vertices > 1 else shapely.points(xy[0])
    lines = np.array([line], dtype=object)
    corridor = shapely.buffer(lines, half_width, cap_style="square")[0]
    boxes = corridor_pieces(lines, half_width)[0]
    pts = shapely.get_coordinates(corridor)
    inside = ((pts[:, None, 0] >= boxes[None, :, 0]) & (pts[:, None, 0] <= boxes[None, :, 2])
              & (pts[:, None, 1] >= boxes[None, :, 1]) & (pts[:, None, 1] <= boxes[None, :, 3]))
    assert inside.any(axis=1).all()


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 700), st.integers(0, 2**31 - 1), st.sampled_from([0.0, 6e5]))
def test_path_projection_equals_geos(n_vertices, seed, origin):
    """PathBundle.project (grouped chunk pruning) against shapely's line_locate_point, bit for bit, on winding
    paths that come back near themselves, for points near and far, on vertices and on segments."""
    rng = np.random.default_rng(seed)
    heading = np.cumsum(rng.normal(0.0, 0.15, n_vertices))
    xy = origin + np.cumsum(np.column_stack([np.cos(heading), np.sin(heading)]) * 0.5, axis=0)
    states = np.column_stack([xy, heading])
    paths = [DiscretePath(states), DiscretePath(parallel_path(states, 1.0))]
    bundle = paths[0]._bundle.__class__(paths)
    pts = np.concatenate([xy[rng.integers(0, n_vertices, 20)] + rng.normal(0.0, 3.0, (20, 2)),
                          xy[rng.integers(0, n_vertices, 5)], (xy[:-1] + xy[1:])[:5] / 2.0,
                          xy[:1] + rng.normal(0.0, 200.0, (5, 2))])
    which = rng.integers(0, 2, len(pts))
    got = bundle.project(which, pts)
    expected = [shapely.line_locate_point(paths[w].linestring, shapely.Point(p)) for w, p in zip(which, pts)]
    np.testing.assert_array_equal(got, np.array(expected))
