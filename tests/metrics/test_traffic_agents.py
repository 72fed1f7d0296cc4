"""NAVSIM v2 traffic-agent policies: log replay and reactive IDM agents, with hand-worked cases.

The road: one eastbound lane, polygon y in [-2, 2] for x in [-50, 300], baseline y = 0 sampled every 0.5 m
(so the IDM path ends at x = 299.5: nuPlan's path drops the last baseline point), no speed limit (the IDM
target is then 10 m/s). A parking strip y in [6, 10] is off the lane. Vehicles are 4.5 m x 2 m.
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from harness.scoring_scene import ObjectType
from metrics.traffic_agents import (
    LaneRails,
    TrafficPolicy,
    log_replay_objects,
    objects_for_policy,
    reactive_idm_objects,
    reactive_idm_objects_many,
)
from tests.metrics.scene_builders import make_scene

N = 41
S_STAR_V5 = 1 + 5 * 1.5 + 5 * 5 / (2 * np.sqrt(1 * 2))  # s* = s0 + vT + v(v - 0)/(2 sqrt(ab)) = 17.3388 m


def _rails(with_limit: float | None = None) -> LaneRails:
    xs = np.arange(-50.0, 300.0 + 1e-9, 0.5)
    base = np.stack([xs, np.zeros_like(xs)], -1)
    return LaneRails(
        ids=np.array([1], dtype=np.int64),
        is_connector=np.array([False]),
        polygons=np.array([shapely.box(-50, -2, 300, 2)], dtype=object),
        baselines=(base,),
        speed_limit_mps=np.array([np.nan if with_limit is None else with_limit]),
        intersections=np.zeros(0, dtype=object),
    )


def _obj(token, kind, poses, velocity=(0.0, 0.0), size=(4.5, 2.0, 1.5), present=None):
    """An object timeline entry: poses (3,) constant or (N, 3); present (N,) mask (default: always)."""
    p = np.broadcast_to(np.asarray(poses, dtype=float), (N, 3)).copy()
    pres = np.ones(N, bool) if present is None else np.asarray(present)
    v = np.broadcast_to(np.asarray(velocity, dtype=float), (N, 2)).copy()
    return dict(token=token, kind=int(kind), poses=p, velocity=v, size=size, present=pres)


def _scene(objs, ego=(0.0, 50.0, 0.0), ego_speed=0.0):
    tl = timeline_from(objs)
    state = np.zeros(11)
    state[:3] = ego
    state[3] = ego_speed
    scene = make_scene(objects=tl, drivable=[], route_lane_ids=[1], centerline=np.array([[0, 0, 0], [1, 0, 0.0]]),
                       ego_state=state)
    return scene


def timeline_from(objs):
    from harness.scoring_scene import ObjectTimeline

    m = len(objs)
    present = np.stack([o["present"] for o in objs], 1) if m else np.zeros((N, 0), bool)
    poses = np.stack([o["poses"] for o in objs], 1) if m else np.zeros((N, 0, 3))
    vel = np.stack([o["velocity"] for o in objs], 1) if m else np.zeros((N, 0, 2))
    poses = np.where(present[..., None], poses, 0.0)
    vel = np.where(present[..., None], vel, 0.0)
    first = np.argmax(present, 0)
    return ObjectTimeline(np.array([o["token"] for o in objs], dtype="<U16"),
                          np.array([o["kind"] for o in objs], dtype=np.int64),
                          np.array([o["size"] for o in objs], dtype=float).reshape(m, 3),
                          vel[first, np.arange(m)], present, poses, vel)


def _static_ego(x=0.0, y=50.0, heading=0.0):
    s = np.zeros((N, 11))
    s[:, 0], s[:, 1], s[:, 2] = x, y, heading
    return s


# --- log replay ---------------------------------------------------------------------------------------------


def test_log_replay_removes_tracks_touching_the_ego_at_t0_from_every_step():
    # Ego rear axle at the origin: its box spans x in [1.461 - 2.588, 1.461 + 2.588] = [-1.127, 4.049],
    # y in [-1.1485, 1.1485].
    objs = [
        _obj("overlap", ObjectType.VEHICLE, (3.0, 0.0, 0.0)),           # overlaps
        _obj("touching", ObjectType.BARRIER, (4.049 + 1.0, 0.0, 0.0), size=(2.0, 1.0, 1.0)),  # rear edge at 4.049
        _obj("clear", ObjectType.VEHICLE, (4.049 + 2.25 + 0.01, 0.0, 0.0)),  # 1 cm gap
        _obj("later", ObjectType.PEDESTRIAN, np.where(np.arange(N)[:, None] < 20, (30.0, 0.0, 0.0), (2.0, 0.0, 0.0)),
             size=(0.5, 0.5, 1.8)),                                      # reaches the ego's spot only later
    ]
    scene = _scene(objs, ego=(0.0, 0.0, 0.0))
    out = log_replay_objects(scene)
    assert list(out.tokens) == ["clear", "later"]
    assert out.present.shape == (N, 2) and out.present.all()
    np.testing.assert_array_equal(out.poses, scene.object_poses[:N, [2, 3]])


def test_log_replay_needs_41_steps():
    objs = [_obj("a", ObjectType.VEHICLE, (30.0, 0.0, 0.0))]
    tl = timeline_from(objs)
    short = make_scene(objects=type(tl)(tl.tokens, tl.types, tl.size_lwh, tl.first_velocity_xy, tl.present[:30],
                                        tl.poses[:30], tl.velocity_xy[:30]), drivable=[], route_lane_ids=[],
                       centerline=np.zeros((2, 3)), ego_state=np.zeros(11))
    with pytest.raises(ValueError, match="41"):
        log_replay_objects(short)


# --- reactive IDM --------------------------------------------------------------------------------------------


def test_free_road_idm_step_by_hand():
    # Vehicle at x = 50 (progress 100 on the path that starts at x = -50), 0.3 m left of the baseline, 5 m/s.
    # Free road: the "lead" is the path end (progress 349.5) with length_rear = L/2 = 2.25:
    #   s_alpha = 249.5 - 2.25 = 247.25, s* = 17.3388, a = 1 (1 - (5/10)^4 - (s*/s_alpha)^2) = 0.932582
    #   v1 = 5 + 0.1 a = 5.0932582, progress1 = 100 + 0.1 * 5 = 100.5 -> x = 50.5, snapped to y = 0.
    objs = [_obj("veh", ObjectType.VEHICLE, (50.0, 0.3, 0.0), velocity=(5.0, 0.0))]
    out = reactive_idm_objects(_scene(objs), _rails(), _static_ego())
    np.testing.assert_allclose(out.poses[0, 0], (50.0, 0.3, 0.0))  # step 0: the raw annotation
    a = 1 - 0.5**4 - (S_STAR_V5 / 247.25) ** 2
    assert a == pytest.approx(0.932582, abs=1e-6)
    np.testing.assert_allclose(out.poses[1, 0], (50.5, 0.0, 0.0), atol=1e-9)
    np.testing.assert_allclose(out.velocity_xy[1, 0], (5 + 0.1 * a, 0.0), atol=1e-12)
    np.testing.assert_allclose(out.first_velocity_xy[0], (5.0, 0.0))
    # step 2: progress grows by 0.1 * v1
    np.testing.assert_allclose(out.poses[2, 0, 0], 50.5 + 0.1 * (5 + 0.1 * a), atol=1e-9)


def test_speed_limit_is_the_idm_target():
    # target 5 m/s = v: a = 1 (1 - 1 - (s*/s_alpha)^2) < 0
    objs = [_obj("veh", ObjectType.VEHICLE, (50.0, 0.0, 0.0), velocity=(5.0, 0.0))]
    out = reactive_idm_objects(_scene(objs), _rails(with_limit=5.0), _static_ego())
    a = 1 - 1.0 - (S_STAR_V5 / 247.25) ** 2
    np.testing.assert_allclose(out.velocity_xy[1, 0, 0], 5 + 0.1 * a, atol=1e-12)


def test_agent_brakes_for_the_simulated_ego_box_centred_on_its_rear_axle():
    # Ego stopped in the lane with its rear axle at x = 70. The agents' occupancy map gets the box centred on
    # the rear axle (the official quirk): x in [67.412, 72.588]. The agent's occupancy at step 1 is its snapped
    # box, x in [47.75, 52.25]: gap 15.162 m, lead speed 0, length_rear 0:
    #   a = 1 (1 - 0.0625 - (17.3388 / 15.162)^2) = -0.370256, v1 = 4.9629744
    objs = [_obj("veh", ObjectType.VEHICLE, (50.0, 0.0, 0.0), velocity=(5.0, 0.0))]
    ego = _static_ego(x=70.0, y=0.0)
    out = reactive_idm_objects(_scene(objs, ego=(70.0, 0.0, 0.0)), _rails(), ego)
    a = 1 - 0.0625 - (S_STAR_V5 / (67.412 - 52.25)) ** 2
    assert 5 + 0.1 * a == pytest.approx(4.9629744, abs=1e-6)
    np.testing.assert_allclose(out.velocity_xy[1, 0, 0], 5 + 0.1 * a, atol=1e-9)
    # the same agent on a free road accelerates: the policy reacts to the simulated ego
    far = reactive_idm_objects(_scene(objs), _rails(), _static_ego())
    assert far.velocity_xy[1, 0, 0] > 5.0
    # and never drives into the stopped ego box
    front = out.poses[1:, 0, 0] + 2.25
    assert np.all(front < 67.412)


def test_follower_sees_the_leader_that_already_moved():
    # Two agents, leader first in the annotation order: the follower's gap is measured to the leader's new
    # projected footprint (path from p - L/2 to p + L/2 + v T, buffered, plus its box) of this step.
    objs = [_obj("lead", ObjectType.VEHICLE, (80.0, 0.0, 0.0), velocity=(4.0, 0.0)),
            _obj("follow", ObjectType.VEHICLE, (60.0, 0.0, 0.0), velocity=(6.0, 0.0))]
    out = reactive_idm_objects(_scene(objs), _rails(), _static_ego())
    # leader: free road, moves to progress 130.4; its box rear is then at x = 80.4 - 2.25 = 78.15
    # follower: its own occupancy is its box, front at 62.25 -> gap 15.9; lead speed = the leader's new speed
    s_lead = 1 + 4 * 1.5 + 4 * 4 / (2 * np.sqrt(2))
    a_lead = 1 - (4 / 10) ** 4 - (s_lead / (349.5 - 130 - 2.25)) ** 2
    v_lead1 = 4 + 0.1 * a_lead
    s_f = 1 + 6 * 1.5 + 6 * (6 - v_lead1) / (2 * np.sqrt(2))
    a_f = 1 - (6 / 10) ** 4 - (s_f / (78.15 - 62.25)) ** 2
    np.testing.assert_allclose(out.velocity_xy[1, 0, 0], v_lead1, atol=1e-12)
    np.testing.assert_allclose(out.velocity_xy[1, 1, 0], 6 + 0.1 * a_f, atol=1e-9)


def test_equally_near_leaders_are_chosen_as_nuplans_strtree_does():
    # A (x = 50, 5 m/s) has two entries at distance 0 on its path: the ego (rear axle at x = 54: its box, centred
    # there, spans x 51.41..56.59 and overlaps A's box) and B (x = 44, 10 m/s, updated before A: its footprint
    # now reaches 46.25 + 0.1 * 10 + 9.8 * 1.5 = 61.95). nuPlan's STRtree.nearest picks B (checked with navsim
    # main + nuplan-devkit v1.2: A's speed 5.09372833620557 after step 1), not the ego (that would give 4.8):
    #   s* = 1 + 5 * 1.5 + 5 * (5 - 9.8) / (2 sqrt(2)) = 0.0147186, s_alpha = max(0, 1) = 1,
    #   a = 1 - (5/10)^4 - s*^2 = 0.9372834, v1 = 5 + 0.1 a.
    objs = [_obj("B", ObjectType.VEHICLE, (44.0, 0.0, 0.0), velocity=(10.0, 0.0)),
            _obj("A", ObjectType.VEHICLE, (50.0, 0.0, 0.0), velocity=(5.0, 0.0))]
    out = reactive_idm_objects(_scene(objs, ego=(0.0, 50.0, 0.0)), _rails(), _static_ego(54.0, 0.0))
    s_star = 1 + 5 * 1.5 + 5 * (5 - 9.8) / (2 * np.sqrt(2))
    assert out.velocity_xy[1, 1, 0] == pytest.approx(5 + 0.1 * (1 - 0.5**4 - s_star**2), abs=1e-12)
    assert out.velocity_xy[1, 1, 0] == pytest.approx(5.09372833620557, abs=1e-12)


def test_parked_off_lane_and_late_vehicles_and_other_classes():
    objs = [
        _obj("parked", ObjectType.VEHICLE, (20.0, 8.0, 0.0)),                        # stationary, off lane
        _obj("moving_off", ObjectType.VEHICLE, (40.0, 8.0, 0.0), velocity=(3.0, 0.0)),  # moving, off lane
        _obj("late", ObjectType.VEHICLE, (60.0, 0.0, 0.0), present=np.arange(N) >= 10),  # not at t = 0
        _obj("ped", ObjectType.PEDESTRIAN, np.stack([np.full(N, 30.0), np.linspace(-5, 5, N), np.zeros(N)], 1),
             velocity=(0.0, 2.5), size=(0.5, 0.5, 1.8)),
    ]
    out = reactive_idm_objects(_scene(objs), _rails(), _static_ego())
    assert out.present[:, 0].all()
    np.testing.assert_allclose(out.poses[:, 0], np.tile((20.0, 8.0, 0.0), (N, 1)))
    assert out.present[0, 1] and not out.present[1:, 1].any()
    assert not out.present[:, 2].any()
    np.testing.assert_array_equal(out.present[:, 3], True)
    np.testing.assert_allclose(out.poses[1:, 3], objs[3]["poses"][1:])


def test_touching_parked_vehicles_keep_the_first_as_navsims_observation_does():
    # NAVSIM appends parked vehicles one by one, each checked against what was appended before it:
    # b overlaps a (x 21.75..22.25) and is left out; c overlaps only b (x 26.15..26.25), which is not there.
    objs = [_obj("a", ObjectType.VEHICLE, (20.0, 8.0, 0.0)), _obj("b", ObjectType.VEHICLE, (24.0, 8.0, 0.0)),
            _obj("c", ObjectType.VEHICLE, (28.4, 8.0, 0.0)), _obj("d", ObjectType.VEHICLE, (40.0, 8.0, 0.0))]
    out = reactive_idm_objects(_scene(objs), _rails(), _static_ego())
    assert out.present[0].all()  # step 0: the raw annotations
    np.testing.assert_array_equal(out.present[1:], np.tile([True, False, True, True], (N - 1, 1)))


def test_agents_beyond_100_m_of_the_ego_rear_axle_are_dropped():
    objs = [_obj("near", ObjectType.VEHICLE, (0.0, 0.0, 0.0), velocity=(5.0, 0.0)),
            _obj("far", ObjectType.VEHICLE, (120.0, 0.0, 0.0), velocity=(5.0, 0.0))]
    out = reactive_idm_objects(_scene(objs, ego=(0.0, 30.0, 0.0)), _rails(), _static_ego(0.0, 30.0))
    assert out.present[0, 1] and not out.present[1:, 1].any()
    assert out.present[:, 0].all()


def test_snapped_box_overlapping_the_ego_is_not_simulated():
    # The ego's real footprint at t = 0 (rear axle at x = 40, box x in [38.873, 44.049]) overlaps the vehicle.
    objs = [_obj("veh", ObjectType.VEHICLE, (45.0, 0.0, 0.0), velocity=(5.0, 0.0))]
    out = reactive_idm_objects(_scene(objs, ego=(40.0, 0.0, 0.0)), _rails(), _static_ego(40.0, 0.0))
    assert out.present[0, 0] and not out.present[1:, 0].any()


def test_nan_velocity_of_a_would_be_agent_fails_as_navsims_builder_does():
    # NAVSIM's builder falls back to the ego's speed through ``Agent.dynamic_car_state``, which does not exist:
    # the token fails there. A NaN-velocity vehicle that is no agent (off lane) is kept as before.
    nan = (float("nan"), 0.0)
    off_lane = [_obj("off", ObjectType.VEHICLE, (20.0, 8.0, 0.0), velocity=nan)]
    out = reactive_idm_objects(_scene(off_lane), _rails(), _static_ego())
    assert out.present[0, 0] and not out.present[1:, 0].any()  # moving (NaN is not < 0.1 m/s), off lane: gone
    on_lane = off_lane + [_obj("lane", ObjectType.VEHICLE, (50.0, 0.0, 0.0), velocity=nan)]
    with pytest.raises(ValueError, match="vehicle lane .*NaN velocity"):
        reactive_idm_objects(_scene(on_lane), _rails(), _static_ego())


def test_dispatch_and_input_checks():
    objs = [_obj("veh", ObjectType.VEHICLE, (50.0, 0.0, 0.0), velocity=(5.0, 0.0))]
    scene = _scene(objs)
    assert objects_for_policy(TrafficPolicy.NON_REACTIVE, scene).present.all()
    with pytest.raises(ValueError, match="rails"):
        objects_for_policy(TrafficPolicy.REACTIVE, scene)
    with pytest.raises(ValueError, match="ego_states"):
        reactive_idm_objects(scene, _rails(), np.zeros((40, 11)))
    assert TrafficPolicy("reactive") is TrafficPolicy.REACTIVE


def test_reactive_is_deterministic_and_invariant_to_a_rigid_motion():
    rng = np.random.default_rng(3)
    objs = [_obj(f"v{i}", ObjectType.VEHICLE, (float(x), 0.0, 0.0), velocity=(float(v), 0.0))
            for i, (x, v) in enumerate(zip(rng.uniform(-40, 250, 8), rng.uniform(0, 12, 8), strict=True))]
    scene = _scene(objs, ego=(10.0, 0.0, 0.0))
    ego = _static_ego(10.0, 0.0)
    ego[:, 0] += np.arange(N) * 0.3
    ego[:, 3] = 3.0
    a = reactive_idm_objects(scene, _rails(), ego)
    b = reactive_idm_objects(scene, _rails(), ego)
    np.testing.assert_array_equal(a.poses, b.poses)
    # translate everything by (1000, -500): same speeds, poses shifted
    shift = np.array([1000.0, -500.0])
    r = _rails()
    moved_rails = LaneRails(r.ids, r.is_connector, np.array([shapely.transform(p, lambda c: c + shift)
                                                             for p in r.polygons], dtype=object),
                            tuple(bl + shift for bl in r.baselines), r.speed_limit_mps, r.intersections)
    objs2 = [dict(o, poses=o["poses"] + np.array([*shift, 0.0])) for o in objs]
    ego2 = ego.copy()
    ego2[:, :2] += shift
    c = reactive_idm_objects(_scene(objs2, ego=(1010.0, -500.0, 0.0)), moved_rails, ego2)
    np.testing.assert_array_equal(a.present, c.present)
    np.testing.assert_allclose(np.linalg.norm(a.velocity_xy, axis=-1), np.linalg.norm(c.velocity_xy, axis=-1),
                               atol=1e-6)
    np.testing.assert_allclose(c.poses[a.present][:, :2] - shift, a.poses[a.present][:, :2], atol=1e-6)


# --- many simulations at once ----------------------------------------------------------------------------------


def test_many_simulations_together_equal_each_run_alone():
    # Vehicles of different scenes share the lane and overlap in space: a leak between simulations would give an
    # agent a leader from another scene (scene A's queue at x = 50, 58, 66 vs scene B's lone car at x = 54 that
    # drives into A's queue only if it could see it), or the other scene's ego (C's ego stands at x = 90).
    rng = np.random.default_rng(5)
    a = [_obj(f"a{i}", ObjectType.VEHICLE, (50.0 + 8 * i, 0.0, 0.0), velocity=(6.0 - i, 0.0)) for i in range(3)]
    b = [_obj("b0", ObjectType.VEHICLE, (54.0, 0.2, 0.0), velocity=(9.0, 0.0)),
         _obj("parked", ObjectType.VEHICLE, (20.0, 8.0, 0.0))]
    c = [_obj(f"c{i}", ObjectType.VEHICLE, (float(x), 0.0, 0.0), velocity=(float(v), 0.0))
         for i, (x, v) in enumerate(zip(rng.uniform(0, 200, 6), rng.uniform(0, 12, 6), strict=True))]
    ego_c = _static_ego(90.0, 0.0)
    moving = _static_ego(30.0, 0.0)
    moving[:, 0] += np.arange(N) * 0.8
    moving[:, 3] = 8.0
    cases = [(_scene(a), _rails(), _static_ego()), (_scene(b), _rails(with_limit=12.0), moving),
             (_scene(c, ego=(90.0, 0.0, 0.0)), _rails(), ego_c), (_scene([]), _rails(), _static_ego()),
             (_scene(a), _rails(), moving)]
    together = reactive_idm_objects_many([s for s, _, _ in cases], [r for _, r, _ in cases],
                                         [e for _, _, e in cases])
    alone = [reactive_idm_objects(s, r, e) for s, r, e in cases]
    assert len(together) == len(cases)
    for x, y in zip(together, alone, strict=True):
        for field in ("tokens", "present", "poses", "velocity_xy", "first_velocity_xy"):
            np.testing.assert_array_equal(getattr(x, field), getattr(y, field))
    # the scenes do interact with their own egos / queues (the comparison is not between free roads)
    assert not np.array_equal(together[0].poses, together[4].poses)
    assert together[0].present[1:, :3].all()


def test_many_simulations_fail_on_the_first_nan_velocity_agent():
    nan = (float("nan"), 0.0)
    good = _scene([_obj("ok", ObjectType.VEHICLE, (50.0, 0.0, 0.0), velocity=(5.0, 0.0))])
    bad = _scene([_obj("bad", ObjectType.VEHICLE, (60.0, 0.0, 0.0), velocity=nan)])
    with pytest.raises(ValueError, match="vehicle bad would be an IDM agent"):
        reactive_idm_objects_many([good, bad, good], [_rails()] * 3, [_static_ego()] * 3)


def test_paths_of_many_scenes_search_as_one_scene_paths():
    # Paths over the agents of several scenes reproduce each scene's own key search (p + local index * 1e6,
    # rounded as one scene rounds it), also at vertex progresses and with many agents (large global keys).
    from metrics.traffic_rails import Paths

    rng = np.random.default_rng(11)
    scenes = []
    for _ in range(40):
        lines = []
        for _ in range(int(rng.integers(1, 5))):
            n = int(rng.integers(3, 30))
            xy = np.cumsum(rng.uniform(0.1, 3.0, (n, 2)), axis=0) + rng.uniform(-1e5, 1e5, 2)
            lines.append(xy)
        scenes.append(lines)
    flat = [ln for lines in scenes for ln in lines]
    local = np.concatenate([np.arange(len(lines)) for lines in scenes])
    many = Paths(flat, local)
    offset = 0
    for lines in scenes:
        one = Paths(lines)
        k = len(lines)
        a1 = np.repeat(np.arange(k), 50)
        p = rng.uniform(one.start[a1], one.end[a1])
        p[::5] = one.prog[one.first[a1[::5]] + 1]  # exactly at vertices
        am = a1 + offset
        pose_one = one.poses(a1, p)
        np.testing.assert_array_equal(many.poses(am, p), pose_one)
        np.testing.assert_array_equal(many.to_go_bounds(am, p, pose_one), one.to_go_bounds(a1, p, pose_one))
        c_one, e_one = one.to_go_chunks(a1, p)
        c_many, e_many = many.to_go_chunks(am, p)
        np.testing.assert_array_equal(c_many - many.chunk_first[am], c_one - one.chunk_first[a1])
        np.testing.assert_array_equal(e_many - many.chunk_first[am], e_one - one.chunk_first[a1])
        offset += k


def test_a_stopped_agent_keeps_its_geometries_and_the_run_is_unchanged(monkeypatch):
    # A queue behind the stopped ego (box x in [67.412, 72.588]): the first agent stands 0.16 m behind it
    # (s_alpha = s0 = 1 > s* = 1 at v = 0: a = -1, the speed stays 0), so its footprint never changes and its
    # occupancy shapes are built once; the follower keeps measuring its gap to them. Rebuilding every shape at
    # every step gives the same timeline bit for bit.
    import metrics.traffic_agents as ta
    from metrics.traffic_idm import IDMBatch

    objs = [_obj("stop", ObjectType.VEHICLE, (65.0, 0.0, 0.0)),
            _obj("follow", ObjectType.VEHICLE, (40.0, 0.0, 0.0), velocity=(5.0, 0.0))]
    ego = _static_ego(x=70.0, y=0.0)
    seen: list[object] = []

    class Watching(IDMBatch):
        def step(self, egos):
            super().step(egos)
            i = int(np.flatnonzero(self.agent_veh == 0)[0])  # the stopped vehicle's agent
            if self._built[i]:
                seen.append(self._geom[i, 1])

    class Rebuilding(IDMBatch):
        def step(self, egos):
            super().step(egos)
            self._built[:] = False

    runs = []
    for cls in (Watching, Rebuilding):
        monkeypatch.setattr(ta, "IDMBatch", cls)
        runs.append(reactive_idm_objects(_scene(objs, ego=(70.0, 0.0, 0.0)), _rails(), ego))
    kept, rebuilt = runs
    assert np.all(kept.poses[1:, 0, 0] == 65.0) and np.all(kept.velocity_xy[1:, 0] == 0.0)
    assert kept.poses[-1, 1, 0] > 45.0  # the follower moved up behind it
    assert len(seen) > 30 and all(g is seen[0] for g in seen)
    for x, y in ((kept.present, rebuilt.present), (kept.poses, rebuilt.poses), (kept.velocity_xy, rebuilt.velocity_xy)):
        np.testing.assert_array_equal(x, y)
