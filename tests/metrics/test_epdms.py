"""EPDMS v2.2 (metrics.epdms): hand-worked cases per sub-score, the human filter, EC, the final score, and
property tests. Scenes: ``scene_builders.straight_road`` (ego lane y in [-1.75, 1.75], centerline y = 0,
left lane up to 5.25, oncoming lanes up to 12.25; the ego starts at the origin heading +x at 10 m/s)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.map_query import MapLayer
from metrics.epdms import (
    EPDMSConfig,
    EPDMSRow,
    apply_human_filter,
    final_score,
    one_stage_predecessors,
    score_proposals,
    score_rows,
    with_two_frame_comfort,
)
from metrics.epdms_scoring.comfort import HISTORY_COMFORT_CHECKS, two_frame_extended_comfort
from metrics.pdms import score_proposals as score_v11
from metrics.traffic_agents import log_replay_objects
from tests.metrics.scene_builders import (
    DT,
    N_STATES,
    Obj,
    ObjectType,
    random_scene,
    states_from_path,
    straight_road,
    straight_states,
    transform_scene,
)

RED_ID = 3001


def with_red_light(scene, box, steps=slice(None)):
    """The scene with one red on-route lane connector polygon ``box`` (x0, y0, x1, y1), red at ``steps``."""
    mask = np.zeros((scene.num_steps, 1), dtype=bool)
    mask[steps, 0] = True
    return replace(scene, light_connector_ids=np.array([RED_ID]), red_light_mask=mask,
                   light_polygons=np.array([shapely.box(*box)], dtype=object),
                   log_route_lane_ids=np.array([RED_ID]))


def offset_states(y: np.ndarray, speed: float = 10.0) -> np.ndarray:
    """Straight +x at ``speed`` with a given rear-axle y per step (heading 0)."""
    t = np.arange(N_STATES) * DT
    return states_from_path(speed * t, y, np.zeros(N_STATES), np.full(N_STATES, speed))


def score_one(scene, agent, **kw):
    return score_proposals(scene, np.stack([straight_states(), agent]), **kw)


# --- TLC ---------------------------------------------------------------------------------------------------


def test_entering_a_red_connector_fails_tlc_and_stopping_before_it_passes():
    # Red connector across the ego lane from x = 30 m. At 10 m/s the front bumper (4.049 m ahead of the rear
    # axle) reaches it at t = 2.6 s; braking at 3 m/s² stops the rear axle after 100/6 = 16.7 m, bumper 20.7 m.
    scene = with_red_light(straight_road(), (30.0, -1.75, 40.0, 1.75))
    go, stop = straight_states(speed=10.0), straight_states(speed=10.0, accel=-3.0)
    res = score_proposals(scene, np.stack([go, stop]))
    assert res.traffic_light_compliance.tolist() == [0.0, 1.0]
    assert res.red_light_step[0] == 26  # rear axle at 26 m: bumper 30.05 m
    assert res.pdm_score[0] == 0.0  # TLC is a multiplier
    assert res.no_at_fault_collisions.tolist() == [1.0, 1.0]  # a red light is no collision


def test_a_light_that_turns_red_after_the_ego_left_it_is_compliant():
    scene = with_red_light(straight_road(), (5.0, -1.75, 8.0, 1.75), steps=slice(30, None))
    # At 10 m/s the rear bumper (1.127 m behind the axle) leaves x = 8 m at t = 0.92 s, long before step 30.
    assert score_one(scene, straight_states()).traffic_light_compliance[1] == 1.0


# --- LK ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("steps, lk", [(21, 0.0), (20, 0.0), (19, 1.0)])
def test_lane_keeping_fails_after_two_seconds_off_the_centerline(steps, lk):
    # 0.6 m > 0.5 m to the left of y = 0 for `steps` consecutive 0.1 s steps; 20 consecutive steps fail.
    y = np.zeros(N_STATES)
    y[5 : 5 + steps] = 0.6
    res = score_one(straight_road(), offset_states(y))
    assert res.lane_keeping[1] == lk
    assert res.lane_keeping_step[1] == (-1 if lk else 5 + 19)


def test_lane_keeping_skips_intersection_steps_without_resetting():
    # 10 steps off the centerline, 6 steps inside an intersection, 10 more off: 20 counted steps in a row.
    y = np.full(N_STATES, 0.6)
    x = 10.0 * np.arange(N_STATES) * DT
    centre_x = x + 1.461
    inside = (centre_x > 11.0) & (centre_x < 17.0)
    assert inside.sum() == 6 and np.flatnonzero(inside)[0] == 10
    y[26:] = 0.0  # back on the centerline after 10 + 6 + 10 steps
    with_inter = score_one(straight_road(intersection=(11.0, 17.0)), offset_states(y))
    assert with_inter.lane_keeping[1] == 0.0
    y[25] = 0.0  # one step fewer: 19 counted steps
    assert score_one(straight_road(intersection=(11.0, 17.0)), offset_states(y)).lane_keeping[1] == 1.0


# --- DDC (v2) and TTC (t <= 31) ------------------------------------------------------------------------------


def test_driving_direction_ignores_oncoming_progress_inside_an_intersection():
    # 40 m in the oncoming lane (y = 7): v1.1's DDC is 0; with the whole road an intersection v2's is 1.
    agent = straight_states(y0=7.0)
    plain, inter = straight_road(), straight_road(intersection=(-50.0, 100.0))
    assert score_one(plain, agent).driving_direction_compliance[1] == 0.0
    assert score_one(inter, agent).driving_direction_compliance[1] == 1.0
    assert score_v11(inter, np.stack([straight_states(), agent])).driving_direction_compliance[1] == 0.0


def test_ttc_checks_only_ego_steps_up_to_31():
    # A stopped car whose rear edge is at x = 52.7 m, logged only from t = 4.5 s on. v1.1 projects the ego at
    # t = 4.0 s by 0.9 s (front bumper 53.05 m) into the 5 s observation: TTC 0. v2 looks at t <= 4 s only.
    scene = straight_road([Obj("late", ObjectType.VEHICLE, 55.0, 0.0, appear=45)])
    states = np.stack([straight_states(), straight_states()])
    assert score_v11(scene, states).time_to_collision_within_bound.tolist() == [0.0, 0.0]
    assert score_proposals(scene, states).time_to_collision_within_bound.tolist() == [1.0, 1.0]


def test_ttc_object_ahead_within_point_nine_seconds_at_step_31():
    # Stopped car with its rear at x = 43.5 m: at t = 3.0 s the bumper (34.05 m) projected by 0.9 s reaches
    # 43.05 m, short of it; at t = 3.1 s it reaches 44.05 m: the first violation is at step 31, the last step
    # v2 checks. (The ego itself touches the car at t = 4.0 s: NC 0.)
    scene = straight_road([Obj("car", ObjectType.VEHICLE, 45.8, 0.0)])
    res = score_one(scene, straight_states())
    assert res.time_to_collision_within_bound[1] == 0.0
    assert res.ttc_step[1] == 31
    assert res.no_at_fault_collisions[1] == 0.0 and res.collision_step[1] == 40


# --- EP (v2) ----------------------------------------------------------------------------------------------


def test_progress_of_a_colliding_agent_is_not_masked():
    # The agent drives into a stopped car in the left lane (NC 0); its raw progress (~40 m) over PDM-Closed's
    # (40 m) is still its EP in v2, while v1.1 zeroes it.
    car = Obj("parked", ObjectType.VEHICLE, 25.0, 3.5)
    scene = straight_road([car])
    t = np.arange(N_STATES) * DT
    lateral = 3.5 * np.clip(t / 1.5, 0.0, 1.0)
    agent = states_from_path(10.0 * t, lateral, np.zeros(N_STATES), np.full(N_STATES, 10.0))
    states = np.stack([straight_states(), agent])
    v2, v1 = score_proposals(scene, states), score_v11(scene, states)
    assert v2.no_at_fault_collisions[1] == 0.0
    assert v2.ego_progress[1] == pytest.approx(min(1.0, v2.progress_raw[1] / v2.progress_raw[0]))
    assert v2.ego_progress[1] > 0.9
    assert v1.ego_progress[1] == 0.0


def test_progress_when_pdm_closed_fails_is_normalised_by_the_agent():
    # PDM-Closed runs into a stopped car (masked progress 0); the slower agent normalises itself: EP 1.
    scene = straight_road([Obj("stopped", ObjectType.VEHICLE, 30.0, 0.0)])
    res = score_proposals(scene, np.stack([straight_states(speed=10.0), straight_states(speed=10.0, accel=-3.0)]))
    assert res.no_at_fault_collisions.tolist() == [0.0, 1.0]
    assert res.ego_progress.tolist() == [1.0, 1.0]


# --- HC -----------------------------------------------------------------------------------------------------


def _history(accel: float) -> np.ndarray:
    """14 states at -1.5 .. -0.2 s ending where the plan starts (origin, 10 m/s), constant ``accel``."""
    t = -1.5 + np.arange(14) * DT
    v = 10.0 + accel * t
    x = 10.0 * t + 0.5 * accel * t * t
    out = np.zeros((14, 11))
    out[:, 0], out[:, 3], out[:, 5] = x, v, accel
    return out


def test_history_comfort_broken_by_a_jerk_where_history_and_plan_meet():
    # The plan brakes at -3 m/s² from t = 0. After a history braking at -3 m/s² every check holds; after one
    # accelerating at +1.5 m/s² the longitudinal acceleration steps by 4.5 m/s² within 0.1 s, and its smoothed
    # derivative (window 15) exceeds 4.13 m/s³: HC 0 (a +1 m/s² history, a 4 m/s² step, still passes). The plan
    # alone has no history: HC 1.
    plan = straight_states(speed=10.0, accel=-3.0)
    scene = straight_road()
    smooth = score_one(scene, plan, history=_history(-3.0))
    jerky = score_one(scene, plan, history=_history(+1.5))
    assert score_one(scene, plan, history=_history(+1.0)).history_comfort[1] == 1.0
    assert smooth.history_comfort[1] == 1.0
    assert jerky.history_comfort[1] == 0.0
    failed = [c for c, ok in zip(HISTORY_COMFORT_CHECKS, jerky.comfort_checks[1]) if not ok]
    assert failed == ["lon_jerk"]
    assert score_one(scene, plan).history_comfort[1] == 1.0


# --- EC ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("prev_accel, ec", [(-2.0, 0.0), (-0.5, 1.0), (-0.7, 1.0), (-0.75, 0.0)])
def test_two_frame_comfort_of_consecutive_plans(prev_accel, ec):
    # Current plan: 10 m/s steady (|a| = 0); previous: constant deceleration |a|. Over the 36 shared states
    # the acceleration RMS difference is |a| (jerk, yaw rate, yaw acceleration: 0): EC = 1 iff |a| <= 0.7.
    cur, prev = straight_states(speed=10.0), straight_states(speed=12.0, accel=prev_accel)
    res = two_frame_extended_comfort(cur, prev, 5)
    assert res.rms_acceleration_mps2 == pytest.approx(abs(prev_accel), abs=1e-7)
    assert res.rms_jerk_mps3 == pytest.approx(0.0, abs=1e-7)
    assert res.comfortable == ec


def test_one_stage_pairs_consecutive_tokens_and_sets_ec_on_the_later_one():
    pred = one_stage_predecessors(["a", "b", "c", "d", "e"], ["L1", "L1", "L1", "L2", "L2"],
                                  [0, 500_000, 1_500_000, 0, 500_000], [True, True, True, True, False])
    assert pred == {"b": "a"}  # c is 1.0 s after b; e is not an original scene
    rows = [_row(t) for t in "ab"]
    cur, prev = straight_states(speed=10.0), straight_states(speed=12.0, accel=-2.0)
    out = with_two_frame_comfort(rows, [prev, cur], [0, 500_000], pred)
    assert math.isnan(out[0].two_frame_extended_comfort)
    assert out[1].two_frame_extended_comfort == 0.0
    both = with_two_frame_comfort(rows, [prev, cur], [0, 500_000], pred, both_frames=True)
    assert [r.two_frame_extended_comfort for r in both] == [0.0, 0.0]


# --- rows, human filter, final score -----------------------------------------------------------------------


def _row(token: str, **kw) -> EPDMSRow:
    base = dict(no_at_fault_collisions=1.0, drivable_area_compliance=1.0, driving_direction_compliance=1.0,
                traffic_light_compliance=1.0, ego_progress=1.0, time_to_collision_within_bound=1.0,
                lane_keeping=1.0, history_comfort=1.0, multiplicative_metrics_prod=1.0,
                weighted_metrics=(1.0, 1.0, 1.0, 1.0, 0.0))
    base.update(kw)
    return EPDMSRow(token=token, **base)


def test_final_score_weights_and_missing_ec():
    hc0 = _row("x", history_comfort=0.0, weighted_metrics=(1.0, 1.0, 1.0, 0.0, 0.0))
    assert final_score([hc0])[0] == pytest.approx(12 / 14)  # no predecessor: EC's weight dropped
    assert final_score([replace(hc0, two_frame_extended_comfort=1.0)])[0] == pytest.approx(14 / 16)
    assert final_score([replace(hc0, two_frame_extended_comfort=0.0)])[0] == pytest.approx(12 / 16)
    half = replace(hc0, multiplicative_metrics_prod=0.5, two_frame_extended_comfort=1.0)
    assert half.score() == pytest.approx(0.5 * 14 / 16)


def test_human_filter_sets_exact_zeros_to_one_and_recomputes_the_score():
    agent = _row("t", drivable_area_compliance=0.0, lane_keeping=0.0, no_at_fault_collisions=0.5,
                 ego_progress=0.8, multiplicative_metrics_prod=0.0, weighted_metrics=(0.8, 1.0, 0.0, 1.0, 0.0))
    human = _row("t", drivable_area_compliance=0.0, lane_keeping=0.0, no_at_fault_collisions=0.5)
    out = apply_human_filter(agent, human)
    assert out.filtered == ("drivable_area_compliance", "lane_keeping")
    assert (out.drivable_area_compliance, out.lane_keeping, out.no_at_fault_collisions) == (1.0, 1.0, 0.5)
    assert out.multiplicative_metrics_prod == 0.5  # recomputed (the #151 fix)
    assert out.weighted_metrics == (0.8, 1.0, 1.0, 1.0, 0.0)
    assert out.score() == pytest.approx(0.5 * (5 * 0.8 + 5 + 2 + 2) / 14)
    assert apply_human_filter(agent, _row("t")).score() == 0.0  # a clean human changes nothing


@pytest.mark.parametrize("human_leaves_road, dac", [(True, 1.0), (False, 0.0)])
def test_off_road_manoeuvre_is_forgiven_only_when_the_human_does_the_same(human_leaves_road, dac):
    # The agent swerves right to y = -2.5 (its right corners cross the road edge y = -1.75): DAC 0.
    t = np.arange(N_STATES) * DT
    swerve = offset_states(-2.5 * np.clip(t / 2.0, 0.0, 1.0))
    scene = straight_road()
    human = swerve if human_leaves_road else straight_states()
    on = score_rows([scene], straight_states()[None], swerve[None], human_states=[human])[0]
    off = score_rows([scene], straight_states()[None], swerve[None], human_states=[human],
                     config=EPDMSConfig(human_penalty_filter=False))[0]
    assert off.drivable_area_compliance == 0.0 and off.score() == 0.0
    assert on.drivable_area_compliance == dac
    assert (on.score() > 0.0) == human_leaves_road
    synthetic = replace(scene, scene_type=1)  # no filter on synthetic scenes
    assert score_rows([synthetic], straight_states()[None], swerve[None],
                      human_states=[human])[0].drivable_area_compliance == 0.0


def test_log_replay_drops_objects_overlapping_the_ego_at_t0():
    scene = straight_road([Obj("on_ego", ObjectType.VEHICLE, 1.0, 0.5), Obj("ahead", ObjectType.VEHICLE, 30.0, 0.0)])
    assert log_replay_objects(scene).tokens.tolist() == ["ahead"]
    assert log_replay_objects(scene).num_steps == N_STATES


# --- properties --------------------------------------------------------------------------------------------


def _lights(scene, rng):
    """Red lights on some on-route lane connectors of a random scene, red at random steps."""
    conn = np.flatnonzero((scene.drivable_types == int(MapLayer.LANE_CONNECTOR))
                          & np.isin(scene.drivable_ids, scene.route_lane_ids))
    pick = conn[rng.random(len(conn)) < 0.7]
    mask = rng.random((scene.num_steps, len(pick))) < 0.6
    return replace(scene, light_connector_ids=scene.drivable_ids[pick], red_light_mask=mask,
                   light_polygons=np.asarray(scene.drivable_polygons[pick], dtype=object),
                   log_route_lane_ids=scene.route_lane_ids)


def _scene(seed, n_objects=30, n_agents=3, utm=True):
    rng = np.random.default_rng(seed)
    scene, states = random_scene(rng, n_objects=n_objects, n_agents=n_agents, utm=utm)
    return _lights(scene, rng), states


RANGES = {"no_at_fault_collisions": {0.0, 0.5, 1.0}, "drivable_area_compliance": {0.0, 1.0},
          "driving_direction_compliance": {0.0, 0.5, 1.0}, "traffic_light_compliance": {0.0, 1.0},
          "time_to_collision_within_bound": {0.0, 1.0}, "lane_keeping": {0.0, 1.0}, "history_comfort": {0.0, 1.0}}


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n_objects=st.integers(0, 50), n_agents=st.integers(0, 4))
def test_every_sub_score_is_in_its_range(seed, n_objects, n_agents):
    scene, states = _scene(seed, n_objects, n_agents)
    hist = np.repeat(states[0, :1], 14, axis=0)
    res = score_proposals(scene, states, history=hist)
    for name, allowed in RANGES.items():
        assert set(getattr(res, name).tolist()) <= allowed, name
    assert np.all((res.ego_progress >= 0) & (res.ego_progress <= 1))
    assert np.all((res.pdm_score >= 0) & (res.pdm_score <= 1))
    assert np.allclose(res.multiplicative_metrics_prod, res.no_at_fault_collisions * res.drivable_area_compliance
                       * res.driving_direction_compliance * res.traffic_light_compliance)


def _transform_lights(scene, angle, tx, ty):
    c, s = np.cos(angle), np.sin(angle)
    polys = shapely.transform(scene.light_polygons, lambda p: np.stack(
        [c * p[:, 0] - s * p[:, 1] + tx, s * p[:, 0] + c * p[:, 1] + ty], axis=-1))
    return np.asarray(polys, dtype=object).reshape(-1)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), angle=st.floats(-np.pi, np.pi), tx=st.floats(-1e4, 1e4),
       ty=st.floats(-1e4, 1e4))
def test_every_sub_score_is_invariant_under_a_rigid_transform(seed, angle, tx, ty):
    scene, states = _scene(seed, utm=False)
    hist = np.repeat(states[0, :1], 14, axis=0)
    hist[:, 3] = states[0, 0, 3]
    moved, moved_states, _ = transform_scene(scene, states, angle, tx, ty)
    moved = replace(moved, light_polygons=_transform_lights(scene, angle, tx, ty))
    c, s = np.cos(angle), np.sin(angle)
    moved_hist = hist.copy()
    moved_hist[:, 0], moved_hist[:, 1] = c * hist[:, 0] - s * hist[:, 1] + tx, s * hist[:, 0] + c * hist[:, 1] + ty
    moved_hist[:, 2] = np.arctan2(np.sin(hist[:, 2] + angle), np.cos(hist[:, 2] + angle))
    a = score_proposals(scene, states, history=hist)
    b = score_proposals(moved, moved_states, history=moved_hist)
    for name in (*RANGES, "red_light_step", "lane_keeping_step", "collision_step", "ttc_step", "comfort_checks"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    for name in ("ego_progress", "progress_raw", "pdm_score", "oncoming_progress_m"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-8, atol=1e-8, err_msg=name)


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1))
def test_scoring_is_deterministic_and_batching_changes_nothing(seed):
    (s1, st1), (s2, st2) = _scene(seed), _scene(seed + 1)
    one = [score_proposals(s1, st1), score_proposals(s2, st2)]
    from metrics.epdms import score_batch

    both = score_batch([s1, s2], [st1, st2])
    for x, y in zip(one, both):
        for name in (*RANGES, "ego_progress", "pdm_score", "progress_raw"):
            np.testing.assert_array_equal(getattr(x, name), getattr(y, name))


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_clipped_centerline_deviation_decides_like_the_full_line(seed):
    from metrics.epdms_scoring.map_metrics import centerline_deviation

    rng = np.random.default_rng(seed)
    s = np.linspace(0.0, 400.0, 2001)
    line = shapely.linestrings(np.stack([s, 5.0 * np.sin(s / 30.0)], -1) + 6e5)
    centers = rng.uniform(0.0, 60.0, (3, 41, 2)) + 6e5
    centers[0, :, 1] = 5.0 * np.sin((centers[0, :, 0] - 6e5) / 30.0) + 6e5 + rng.uniform(-0.6, 0.6, 41)
    got = centerline_deviation(centers, np.zeros(3, np.int64), np.array([line], dtype=object), 0.5)
    full = shapely.distance(shapely.points(centers), line)
    np.testing.assert_array_equal(got > 0.5, full > 0.5)
    np.testing.assert_allclose(got[full <= 1.0], full[full <= 1.0], rtol=0, atol=1e-9)


def test_progress_projects_each_distinct_point_once_with_the_same_values(monkeypatch: pytest.MonkeyPatch) -> None:
    from metrics.epdms import _progress

    rng = np.random.default_rng(0)
    lines = np.array([shapely.LineString(np.cumsum(rng.normal(1.0, 0.3, (60, 2)), axis=0)) for _ in range(3)])
    row_scene = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    centers = rng.normal(0, 5, (len(row_scene), 41, 2)) + 20
    centers[:3, 0] = centers[0, 0]  # scene 0's proposals share t = 0; scene 2 has two identical rows
    centers[7] = centers[8]
    want = np.array([max(0.0, lines[s].project(shapely.Point(c[-1])) - lines[s].project(shapely.Point(c[0])))
                     for s, c in zip(row_scene, centers)])
    assert np.array_equal(_progress(lines, centers, row_scene), want)
    calls = []
    real = shapely.line_locate_point

    def counted(line, pts):  # noqa: ANN001, ANN202
        calls.append(len(np.atleast_1d(pts)))
        return real(line, pts)

    monkeypatch.setattr(shapely, "line_locate_point", counted)
    _progress(lines, centers, row_scene)
    assert calls == [2 * len(row_scene) - 2 - 2]  # 2 shared starts in scene 0, one duplicate row in scene 2
