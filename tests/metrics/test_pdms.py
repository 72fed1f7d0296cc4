"""Tests for metrics.pdms (PDMS v1.1): hand-worked rules, properties, and the loop reference.

Hand values use specs/navsim.md §2.2 and §5 and the official v1.1 code. The ego (Pacifica) box is centred
1.461 m ahead of the rear axle, 5.176 m x 2.297 m: with heading 0 its front is at x_rear + 4.049, its back at
x_rear - 1.127 and its sides at y_rear ± 1.1485. States come every 0.1 s (step k = k / 10 s). The road of
``scene_builders.straight_road``: ego lane y in [-1.75, 1.75], left lane [1.75, 5.25] (both on route),
oncoming lanes [5.25, 12.25]; the two roadblocks meet at y = 5.25. A vehicle is 4.6 m x 1.9 m by default.
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.scoring_scene import ObjectType
from metrics.pdm_scoring.ego_areas import EgoArea, _in_frames, _unique_inverse, group_frames, strictly_inside
from metrics.pdm_scoring.geometry import FRONT_LEFT, ego_coords, relative_angle
from metrics.pdm_scoring.loop_scorer import loop_score
from metrics.pdms import PDMS_COLUMNS, PDMSConfig, score_batch, score_proposals
from tests.metrics.scene_builders import (
    Obj,
    random_scene,
    straight_road,
    straight_states,
    timeline,
    transform_scene,
)

V = ObjectType.VEHICLE


def one(scene, states, **kw):
    """Scores a single proposal; returns {column or diagnostic: value}."""
    res = score_proposals(scene, np.asarray(states)[None], **kw)
    return {
        name: getattr(res, name)[0]
        for name in (
            *PDMS_COLUMNS,
            "progress_raw",
            "collision_step",
            "collision_token",
            "ttc_step",
            "ttc_token",
            "off_road_step",
            "oncoming_progress_m",
        )
    } | {"areas": res.ego_areas[0], "checks": res.comfort_checks[0]}


# --- NC and TTC ----------------------------------------------------------------------------------------------


def test_rear_ending_a_stopped_vehicle():
    # Car's back at x = 30 - 2.3 = 27.7. Ego front 10 t + 4.049 reaches it at t = 2.365 s -> step 24.
    # TTC: the 0.9 s projection adds 9 m: 10 t + 13.049 >= 27.7 from t = 1.4651 s -> step 15.
    r = one(straight_road([Obj("car", V, 30.0, 0.0)]), straight_states(speed=10.0))
    assert r["no_at_fault_collisions"] == 0.0  # stopped track, an agent
    assert (r["collision_step"], r["collision_token"]) == (24, "car")
    assert r["time_to_collision_within_bound"] == 0.0
    assert (r["ttc_step"], r["ttc_token"]) == (15, "car")
    assert r["ego_progress"] == 0.0 and r["score"] == 0.0


def test_grazing_a_cone_halves_nc():
    # Cone y in [1.1, 1.5] overlaps the ego's left side (1.1485) by 4.85 cm; its back x = 29.8 is reached
    # at t = 2.575 s (step 26). Static object -> NC 0.5; TTC 0; EP 1 (its own normaliser); C 1.
    r = one(straight_road([Obj("cone", ObjectType.TRAFFIC_CONE, 30.0, 1.3)]), straight_states(speed=10.0))
    assert r["no_at_fault_collisions"] == 0.5 and r["collision_step"] == 26
    assert r["time_to_collision_within_bound"] == 0.0 and r["ttc_step"] == 17
    assert r["ego_progress"] == 1.0 and r["comfort"] == 1.0
    assert r["score"] == pytest.approx(0.5 * (5 * 0 + 5 * 1 + 2 * 1) / 12, abs=1e-15)


def test_being_rear_ended_while_stopped_is_not_at_fault():
    # Ego stands at x = 0 (back at -1.127); a car from behind at 5 m/s (front at -12 + 2.3 + 5 t) hits at 1.8 s.
    scene = straight_road([Obj("car", V, -12.0, 0.0, vx=5.0)])
    r = one(scene, straight_states(speed=0.0))
    assert r["no_at_fault_collisions"] == 1.0 and r["collision_step"] == -1  # stopped ego
    assert r["time_to_collision_within_bound"] == 1.0  # TTC skips contacts while the ego stands
    assert r["ego_progress"] == 1.0 and r["score"] == 1.0  # no progress anywhere: the 5 m guard


def test_being_rear_ended_while_moving_is_not_at_fault_and_no_ttc():
    # Ego at 2 m/s, a car at 10 m/s from behind: behind (> 150 deg) -> active rear, ignored by NC and TTC.
    r = one(straight_road([Obj("car", V, -10.0, 0.0, vx=10.0)]), straight_states(speed=2.0))
    assert r["no_at_fault_collisions"] == 1.0
    assert r["time_to_collision_within_bound"] == 1.0


@pytest.mark.parametrize(("ego_y", "expected_nc"), [(0.0, 1.0), (1.75, 0.0)])
def test_lateral_contact_in_own_lane_vs_straddling_lanes(ego_y, expected_nc):
    # A car alongside (centre level with the ego's centre, shorter than the ego, so the front bumper is
    # never touched) drifts right at 1 m/s into the ego. In its own lane the ego is not at fault; straddling
    # lanes 1001/1002 (corners in both) it is.
    car = Obj("car", V, 1.461, ego_y + 1.1485 + 0.95 + 0.45, vx=10.0, vy=-1.0)
    r = one(straight_road([car]), straight_states(speed=10.0, y0=ego_y))
    assert r["no_at_fault_collisions"] == expected_nc
    lanes = bool(r["areas"][0] & EgoArea.MULTIPLE_LANES)
    assert lanes == (ego_y == 1.75)
    if expected_nc == 0.0:
        assert r["collision_step"] == 5  # the 0.45 m gap closes after 0.45 s


def test_touching_counts_as_contact_and_a_hair_apart_does_not():
    # A barrier whose lower edge lies exactly on the ego's left side (shapely: touching intersects).
    edge = ego_coords(straight_states()[0])[FRONT_LEFT, 1]
    hw = 0.25
    centre = edge + hw
    assert centre - hw * 1.0 == edge  # the barrier's corners reproduce the edge bit for bit
    size = (2.0, 2 * hw, 1.0)
    touching = one(straight_road([Obj("b", ObjectType.BARRIER, 1.461, centre, size=size)]), straight_states())
    assert touching["no_at_fault_collisions"] == 0.5 and touching["collision_step"] == 0
    apart = np.nextafter(centre, np.inf)
    while apart - hw * 1.0 == edge:
        apart = np.nextafter(apart, np.inf)
    away = one(straight_road([Obj("b", ObjectType.BARRIER, 1.461, apart, size=size)]), straight_states())
    assert away["no_at_fault_collisions"] == 1.0


def test_ttc_object_ahead_within_point_nine_seconds():
    # Ego brakes 10 m/s at -3 m/s2 (stops at 3.33 s after 16.67 m) behind a stopped car whose back is 17 m
    # ahead of the ego's front: gap(t) = 17 - 10 t + 1.5 t^2, projection 0.9 v(t) = 9 - 2.7 t; overlap
    # for t in [1.667, 3.2] s -> first step 17. It never hits the car (NC 1).
    car = Obj("car", V, 4.049 + 17.0 + 2.3, 0.0)
    r = one(straight_road([car]), straight_states(speed=10.0, accel=-3.0))
    assert r["no_at_fault_collisions"] == 1.0
    assert r["time_to_collision_within_bound"] == 0.0 and r["ttc_step"] == 17
    # 19 m: 1.5 t^2 - 7.3 t + 10 > 0 for all t: the projections never reach it.
    far = one(
        straight_road([Obj("car", V, 4.049 + 19.0 + 2.3, 0.0)]), straight_states(speed=10.0, accel=-3.0)
    )
    assert far["time_to_collision_within_bound"] == 1.0


@pytest.mark.parametrize(("intersection", "expected"), [(None, 1.0), ((-20.0, 40.0), 0.0)])
def test_ttc_sideways_counts_only_in_an_intersection(intersection, expected):
    # Ego creeps at 0.5 m/s; a pedestrian (0.6 m) at x = 2 walks towards its right side at 1.5 m/s from
    # y = -6. First projection contact: t = 2.2 s (step 22) with k = 9, the pedestrian at (2.0, -1.35) seen
    # from the rear axle (1.1, 0) at 56 degrees: neither ahead (< 30) nor behind (> 150). In its own lane
    # the ego is exempt; with the rear axle inside an intersection it is a violation. The real contact
    # (t = 2.73 s) is lateral and the ego is in its lane: NC 1 either way.
    ped = Obj("ped", ObjectType.PEDESTRIAN, 2.0, -6.0, heading=np.pi / 2, vy=1.5)
    r = one(straight_road([ped], intersection=intersection), straight_states(speed=0.5))
    assert r["no_at_fault_collisions"] == 1.0
    assert r["time_to_collision_within_bound"] == expected
    assert r["ttc_step"] == (-1 if expected else 22)


def test_relative_angle_reproduces_nuplans_nan_straight_ahead():
    # nuPlan: arccos(dot(ego_unit, v / |v|)). For a point exactly on the heading line rounding can push the
    # cosine past 1, and the angle is NaN: neither ahead nor behind (TTC then ignores a car dead ahead).
    # Which headings do this depends on the BLAS dot product, so compare with nuPlan's formula, not values.
    heading = np.linspace(-np.pi, np.pi, 2001)
    x, y = 664_000.0 + np.zeros_like(heading), 3_997_000.0 + np.zeros_like(heading)
    px, py = x + 12.0 * np.cos(heading), y + 12.0 * np.sin(heading)
    with np.errstate(invalid="ignore"):
        nuplan = np.array(
            [
                np.arccos(
                    np.dot(
                        [np.cos(h), np.sin(h)],
                        np.array([a - x0, b - y0]) / np.linalg.norm(np.array([a - x0, b - y0])),
                    )
                )
                for h, x0, y0, a, b in zip(heading, x, y, px, py)
            ]
        )
    np.testing.assert_array_equal(relative_angle(x, y, heading, px, py), nuplan)
    assert np.all(np.isnan(relative_angle(x[:3], y[:3], heading[:3], x[:3], y[:3])))  # on the rear axle


# --- DAC and DDC ----------------------------------------------------------------------------------------------


def test_leaving_the_road_with_one_corner():
    # Heading -0.01 rad from y = -0.5: the front-right corner starts at y = -1.68893 and sinks 0.1 m/s;
    # it crosses the road edge y = -1.75 after 0.61 s -> step 7, while the rear-right one is still inside.
    states = straight_states(speed=10.0, y0=-0.5, heading=-0.01)
    r = one(straight_road(), states)
    assert r["drivable_area_compliance"] == 0.0 and r["off_road_step"] == 7
    corners_y = ego_coords(states)[:, :4, 1]
    assert (corners_y[7] < -1.75).sum() == 1 and (corners_y[6] < -1.75).sum() == 0
    assert r["areas"][7] & EgoArea.NON_DRIVABLE_AREA and not r["areas"][6] & EgoArea.NON_DRIVABLE_AREA
    assert r["ego_progress"] == 0.0 and r["score"] == 0.0


def test_a_corner_on_the_shared_roadblock_edge_is_off_road():
    # Centre y = 4.1015 puts the left corners exactly on y = 5.25, the edge both roadblocks share: strict
    # interior per polygon -> in neither -> off-road, although the union of the roadblocks contains it.
    y = 5.25 - 1.1485
    assert ego_coords(straight_states(y0=y)[0])[FRONT_LEFT, 1] == 5.25
    assert one(straight_road(), straight_states(y0=y))["drivable_area_compliance"] == 0.0
    assert one(straight_road(), straight_states(y0=y - 0.01))["drivable_area_compliance"] == 1.0


@pytest.mark.parametrize("seed", range(8))
def test_clipped_prefilter_keeps_every_point_the_polygon_holds(seed):
    # A 400 m road (two single long edges, a 300-vertex cap) at UTM coordinates, any orientation, and
    # points on or within 1e-13..1e-9 m of a long edge that the clip box cuts: the scorer's prefilter frame
    # is that of the polygon clipped to the points' box (tight), and it must hold every point that
    # contains_xy on the original holds; the final test is contains_xy on the original.
    rng = np.random.default_rng(seed)
    a = rng.uniform(-np.pi, np.pi)
    cap = np.linspace(-np.pi / 2, np.pi / 2, 300)
    ring = np.r_[[[0.0, -1.75]], np.c_[400 + 1.75 * np.cos(cap), 1.75 * np.sin(cap)], [[0.0, 1.75]]]
    ring = ring @ np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]]) + (664_000.0, 3_997_000.0)
    poly = shapely.Polygon(ring)
    edge_a, edge_b = ring[-1], ring[0]
    normal = np.array([edge_a[1] - edge_b[1], edge_b[0] - edge_a[0]]) / np.linalg.norm(edge_b - edge_a)
    offset = rng.choice([0.0, 1e-13, -1e-13, 1e-11, -1e-11, 1e-9, -1e-9], 300)
    pts = edge_a + rng.uniform(0.3, 0.35, (300, 1)) * (edge_b - edge_a) + offset[:, None] * normal
    pts = np.r_[pts, rng.uniform(pts.min(0), pts.max(0), (100, 2))]
    geoms = np.array([poly], dtype=object)
    one = np.zeros(1, dtype=np.int64)
    group, frames = group_frames(geoms, one, pts.min(0)[None], pts.max(0)[None])
    u_len, v_len = frames[0, 5] - frames[0, 4], frames[0, 7] - frames[0, 6]
    assert max(u_len, v_len) < 0.1 * 400  # the clipped piece's frame, not the whole road's
    _, flat = _in_frames(pts[None, :, 0], pts[None, :, 1], one, frames[group], np.arange(1))
    kept = np.zeros(len(pts), dtype=bool)
    kept[flat] = True
    scorer = strictly_inside(geoms, np.zeros(len(pts), dtype=np.int64), pts[:, 0], pts[:, 1])
    assert not shapely.is_prepared(poly)  # prepared for the test only
    inside = shapely.contains_xy(poly, pts[:, 0], pts[:, 1])
    assert inside.sum() > 100 and not inside.all()
    assert not np.any(inside & ~kept)
    np.testing.assert_array_equal(scorer, inside)


@pytest.mark.parametrize(("speed", "ddc", "metres"), [(1.5, 1.0, 1.65), (3.0, 0.5, 3.3), (6.0, 0.0, 6.6)])
def test_driving_direction_in_the_oncoming_lane(speed, ddc, metres):
    # Centre in oncoming lane 1003 for the whole horizon. The 1-s window holds 11 states, so it sums 10 steps
    # of progress (1.1 s worth from step 11 on): 11 * 0.1 * speed. < 2 m -> 1, < 6 m -> 0.5, else 0.
    r = one(straight_road(), straight_states(speed=speed, y0=7.0))
    assert r["oncoming_progress_m"] == pytest.approx(metres, abs=1e-9)
    assert r["driving_direction_compliance"] == ddc
    assert r["areas"][0] & EgoArea.ONCOMING_TRAFFIC
    assert r["drivable_area_compliance"] == 1.0 and r["score"] == 1.0  # DDC has weight 0 in v1.1


# --- comfort ---------------------------------------------------------------------------------------------------


def test_a_harsh_brake_is_uncomfortable():
    # -5 m/s2 throughout (25 -> 5 m/s): the smoothed longitudinal acceleration is -5 < -4.05.
    harsh = one(straight_road(), straight_states(speed=25.0, accel=-5.0))
    assert harsh["comfort"] == 0.0
    assert harsh["checks"].tolist() == [False, True, True, True, True, True]
    assert one(straight_road(), straight_states(speed=25.0, accel=-3.0))["comfort"] == 1.0


# --- EP ---------------------------------------------------------------------------------------------------------


def two(scene, closed, agent, **kw):
    return score_proposals(scene, np.stack([closed, agent]), **kw)


def test_standing_still_on_a_free_road_gets_no_progress():
    # PDM-Closed accelerates 2 m/s2 from rest: 16 m. The agent stands: EP 0, score (5 + 0 + 2) / 12.
    r = two(straight_road(), straight_states(speed=0.0, accel=2.0), straight_states(speed=0.0))
    assert r.progress_raw[0] == pytest.approx(16.0) and r.progress_raw[1] == 0.0
    assert r.ego_progress.tolist() == [1.0, 0.0]
    assert r.score[1] == pytest.approx(7 / 12)


def test_a_stationary_scene_gets_full_progress():
    # Best masked progress 4 m <= 5 m: every proposal that passes the multipliers gets EP 1.
    r = two(straight_road(), straight_states(speed=0.0, accel=0.5), straight_states(speed=0.0))
    assert r.progress_raw[0] == pytest.approx(4.0)
    assert r.ego_progress.tolist() == [1.0, 1.0]


def test_progress_is_normalised_by_the_best_proposal():
    r = two(straight_road(), straight_states(speed=10.0), straight_states(speed=5.0))
    assert r.ego_progress.tolist() == pytest.approx([1.0, 0.5])
    r = two(
        straight_road(), straight_states(speed=10.0), straight_states(speed=12.5)
    )  # overshoot: not penalised
    assert r.ego_progress.tolist() == pytest.approx([0.8, 1.0])


def test_progress_is_zero_when_a_multiplier_fails_and_halved_by_a_cone():
    crash = straight_road([Obj("car", V, 30.0, 0.0)])
    r = two(
        crash, straight_states(speed=10.0, y0=3.5), straight_states(speed=10.0)
    )  # agent rear-ends the car
    assert r.no_at_fault_collisions.tolist() == [1.0, 0.0] and r.ego_progress.tolist() == [1.0, 0.0]
    r = two(crash, straight_states(speed=10.0), straight_states(speed=5.0, y0=3.5))  # PDM-Closed crashes
    assert r.ego_progress.tolist() == [0.0, 1.0]
    cone = straight_road([Obj("cone", ObjectType.TRAFFIC_CONE, 30.0, 1.3)])
    r = two(cone, straight_states(speed=10.0, y0=-0.3), straight_states(speed=10.0))
    assert r.no_at_fault_collisions.tolist() == [1.0, 0.5]
    assert r.ego_progress.tolist() == pytest.approx([1.0, 0.5])


# --- aggregation, config, API -----------------------------------------------------------------------------------


def formula(r, w=(5.0, 5.0, 2.0, 0.0)):
    return (
        r.no_at_fault_collisions
        * r.drivable_area_compliance
        * (
            w[0] * r.ego_progress
            + w[1] * r.time_to_collision_within_bound
            + w[2] * r.comfort
            + w[3] * r.driving_direction_compliance
        )
        / sum(w)
    )


def test_score_formula_on_random_scenes():
    scenes = [random_scene(np.random.default_rng(i), n_agents=3) for i in range(12)]
    for res in score_batch([s for s, _ in scenes], [x for _, x in scenes]):
        np.testing.assert_allclose(res.score, formula(res), rtol=0, atol=1e-15)


def test_driving_direction_weight_enters_the_score():
    cfg = PDMSConfig(driving_direction_weight=1.0)
    r = score_proposals(straight_road(), straight_states(speed=3.0, y0=7.0)[None], config=cfg)
    assert r.score[0] == pytest.approx((5 + 5 + 2 + 0.5) / 13)
    np.testing.assert_allclose(r.score, formula(r, (5, 5, 2, 1)), atol=1e-15)


def test_objects_override_the_log_replay():
    scene = straight_road([Obj("car", V, 30.0, 0.0)])
    empty = timeline([])
    assert score_proposals(scene, straight_states()[None], objects=empty).no_at_fault_collisions[0] == 1.0


def test_row_has_the_official_columns():
    row = score_proposals(straight_road(), straight_states()[None]).row(0)
    assert tuple(row) == PDMS_COLUMNS and row["score"] == 1.0


@pytest.mark.parametrize("bad", ["shape", "nan", "short", "duplicate", "centerline"])
def test_invalid_input_is_rejected(bad):
    scene, states, objects = straight_road(), straight_states()[None], None
    if bad == "shape":
        states = states[:, :40]
    elif bad == "nan":
        states = states.copy()
        states[0, 5, 0] = np.nan
    elif bad == "short":
        objects = timeline([Obj("a", V, 50.0, 0.0)], n_steps=41)
    elif bad == "duplicate":
        objects = timeline([Obj("a", V, 50.0, 0.0), Obj("a", V, 80.0, 0.0)])
    else:
        scene = straight_road()
        object.__setattr__(scene, "centerline", scene.centerline[:1])
    with pytest.raises(ValueError):
        score_proposals(scene, states, objects=objects)


def test_matches_the_loop_reference_and_batching_changes_nothing():
    scenes = [random_scene(np.random.default_rng(100 + i), n_agents=3, utm=i % 2 == 0) for i in range(10)]
    batch = score_batch([s for s, _ in scenes], [x for _, x in scenes], chunk_scenes=4)
    for (scene, states), res in zip(scenes, batch):
        ref = loop_score(scene, states)
        for name, value in ref.items():
            np.testing.assert_array_equal(getattr(res, name), value, err_msg=f"{scene.token} {name}")
        single = score_proposals(scene, states)
        for name in (*PDMS_COLUMNS, "collision_step", "ttc_step", "collision_token", "ttc_token"):
            np.testing.assert_array_equal(getattr(single, name), getattr(res, name))


# --- properties ----------------------------------------------------------------------------------------------------

_SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(seed=st.integers(0, 2**32 - 1), n_objects=st.integers(0, 60), n_agents=st.integers(0, 4))
def test_every_sub_score_is_in_its_range(seed, n_objects, n_agents):
    scene, states = random_scene(np.random.default_rng(seed), n_objects=n_objects, n_agents=n_agents)
    r = score_proposals(scene, states)
    assert set(r.no_at_fault_collisions) <= {0.0, 0.5, 1.0}
    assert set(r.drivable_area_compliance) <= {0.0, 1.0}
    assert set(r.driving_direction_compliance) <= {0.0, 0.5, 1.0}
    assert set(r.time_to_collision_within_bound) <= {0.0, 1.0}
    assert set(r.comfort) <= {0.0, 1.0}
    assert np.all((r.ego_progress >= 0) & (r.ego_progress <= 1)) and np.all(r.progress_raw >= 0)
    assert np.all((r.score >= 0) & (r.score <= 1))
    assert np.all((r.collision_step >= 0) == (r.no_at_fault_collisions < 1))
    assert np.all((r.ttc_step >= 0) == (r.time_to_collision_within_bound < 1))
    assert np.all((r.off_road_step >= 0) == (r.drivable_area_compliance < 1))


@_SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    angle=st.floats(-np.pi, np.pi),
    tx=st.floats(-1e6, 1e6),
    ty=st.floats(-5e6, 5e6),
)
def test_every_sub_score_is_invariant_under_a_rigid_transform(seed, angle, tx, ty):
    scene, states = random_scene(np.random.default_rng(seed), n_agents=3, utm=False)
    moved, moved_states, _ = transform_scene(scene, states, angle, tx, ty)
    a, b = score_proposals(scene, states), score_proposals(moved, moved_states)
    for name in (
        "no_at_fault_collisions",
        "drivable_area_compliance",
        "driving_direction_compliance",
        "time_to_collision_within_bound",
        "comfort",
        "collision_step",
        "ttc_step",
        "off_road_step",
        "ego_areas",
        "collision_token",
        "ttc_token",
    ):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    for name in ("ego_progress", "progress_raw", "score", "oncoming_progress_m"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-8, atol=1e-8, err_msg=name)


@_SETTINGS
@given(seed=st.integers(0, 2**32 - 1))
def test_scoring_is_deterministic(seed):
    scene, states = random_scene(np.random.default_rng(seed), n_agents=2)
    a, b = score_proposals(scene, states), score_proposals(scene, states.copy())
    for name in (
        *PDMS_COLUMNS,
        "progress_raw",
        "ego_areas",
        "comfort_checks",
        "collision_token",
        "ttc_token",
    ):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 300), max_size=50), st.integers(0, 200_000))
def test_unique_inverse_equals_np_unique(values: list[int], extra: int) -> None:
    """The presence-table path (small ranges) and the sorting path (ranges far past the input) both give
    ``np.unique(values, return_inverse=True)``."""
    v = np.asarray(values, dtype=np.int64)
    want_u, want_inv = np.unique(v, return_inverse=True)
    for size in (301, 301 + extra * 100):
        u, inv = _unique_inverse(v, size)
        assert u.dtype == np.int64 and inv.dtype == np.int64
        np.testing.assert_array_equal(u, want_u)
        np.testing.assert_array_equal(inv, want_inv.reshape(-1))
