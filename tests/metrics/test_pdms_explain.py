"""The per-step PDMS evidence (metrics/pdms_explain.py): its sub-scores equal the scorer's, and hand-made
scenes put the evidence where a person expects it (the colliding step, the corner off the road, ...)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from metrics.pdms import score_proposals
from metrics.pdms_explain import ACTIVE_REAR, STOPPED_TRACK, explain_proposals
from tests.metrics.scene_builders import Obj, ObjectType, random_scene, straight_road, straight_states


def _assert_equal_to_scorer(scene, states):
    sc = score_proposals(scene, states)
    ev = explain_proposals(scene, states)
    for p, e in enumerate(ev):
        assert e.no_at_fault_collisions == sc.no_at_fault_collisions[p]
        assert e.drivable_area_compliance == sc.drivable_area_compliance[p]
        assert e.driving_direction_compliance == sc.driving_direction_compliance[p]
        assert e.time_to_collision_within_bound == sc.time_to_collision_within_bound[p]
        assert e.comfort_score == sc.comfort[p]
        assert [c.ok for c in e.comfort] == sc.comfort_checks[p].tolist()
        assert e.ego_progress == pytest.approx(sc.ego_progress[p], abs=1e-9)
        assert e.progress_m == pytest.approx(sc.progress_raw[p], abs=1e-9)
        assert e.score == pytest.approx(sc.score[p], abs=1e-12)
        assert e.collision_step == sc.collision_step[p]
        if e.at_fault_contact is not None:
            assert e.at_fault_contact.object_token == sc.collision_token[p]
        assert (e.ttc_violation.step if e.ttc_violation else -1) == sc.ttc_step[p]
        assert (e.off_road_steps[0] if e.off_road_steps else -1) == sc.off_road_step[p]
        assert np.max(e.oncoming_window_m) == pytest.approx(sc.oncoming_progress_m[p], abs=1e-12)
    return sc, ev


def test_sub_scores_equal_the_scorer_on_random_intersection_scenes():
    seen = {"nc": 0, "dac": 0, "ddc": 0, "ttc": 0, "c": 0}
    for seed in range(24):
        scene, states = random_scene(np.random.default_rng(seed), n_agents=3)
        sc, _ = _assert_equal_to_scorer(scene, states)
        seen["nc"] += int((sc.no_at_fault_collisions < 1).sum())
        seen["dac"] += int((sc.drivable_area_compliance < 1).sum())
        seen["ddc"] += int((sc.driving_direction_compliance < 1).sum())
        seen["ttc"] += int((sc.time_to_collision_within_bound < 1).sum())
        seen["c"] += int((sc.comfort < 1).sum())
    assert all(v > 0 for v in seen.values()), seen  # every rule broken somewhere: the comparison means something


def test_stopped_car_ahead_is_an_at_fault_collision_at_the_contact_step():
    # Ego front bumper at x = 1.461 + 2.588 = 4.05 m; a stopped car's rear at 20 - 2.3 = 17.7 m; at 10 m/s
    # the bumper reaches it after 1.365 s: first contact at step 14.
    scene = straight_road([Obj("parked", ObjectType.VEHICLE, 20.0, 0.0)])
    states = np.stack([straight_states(speed=0.0), straight_states(speed=10.0)])
    sc, ev = _assert_equal_to_scorer(scene, states)
    e = ev[1]
    c = e.at_fault_contact
    assert c is not None and c.step == 14 and c.collision_type == STOPPED_TRACK and c.nc_value == 0.0
    assert "at fault" in c.reason and "parked" in c.reason
    assert e.ttc_violation is not None and e.ttc_violation.step < 14  # the projection saw it coming
    assert ev[0].contacts == () and ev[0].score > 0


def test_rear_end_by_a_faster_car_is_not_at_fault():
    scene = straight_road([Obj("chaser", ObjectType.VEHICLE, -8.0, 0.0, vx=16.0)])
    states = np.stack([straight_states(speed=5.0)])
    _, (e,) = _assert_equal_to_scorer(scene, states)
    assert e.contacts and e.contacts[0].collision_type == ACTIVE_REAR and not e.contacts[0].at_fault
    assert e.no_at_fault_collisions == 1.0


def test_leaving_the_road_marks_the_right_corners_of_the_steps_off_road():
    scene = straight_road()
    t = np.arange(41) * 0.1
    st = straight_states(speed=8.0)
    st[:, 1] = -0.8 * t * t  # drift right: the right corners cross y = -1.75 first
    _, (e,) = _assert_equal_to_scorer(scene, st[None])
    assert e.drivable_area_compliance == 0.0 and e.off_road_steps
    first = e.off_road_steps[0]
    assert not e.corner_on_road[first, 2] or not e.corner_on_road[first, 3]  # rear/front right corner
    assert e.corner_on_road[first, 0]  # the front-left corner is still on the road
    assert e.score == 0.0


def test_driving_against_traffic_gives_the_oncoming_stretch():
    scene = straight_road()
    st = straight_states(speed=10.0, y0=7.0)  # in the westbound (oncoming) lane, heading east
    _, (e,) = _assert_equal_to_scorer(scene, st[None])
    assert e.driving_direction_compliance == 0.0
    assert e.oncoming.all() and len(e.oncoming_stretch) == 11  # the worst 1-s window: 11 states


def test_one_scene_well_under_a_second():
    scene, states = random_scene(np.random.default_rng(3), n_agents=1)
    t0 = time.perf_counter()
    explain_proposals(scene, states)
    assert time.perf_counter() - t0 < 1.0
