"""CARLA leaderboard 2.0 / Bench2Drive driving score from result JSON: hand-worked cases and properties."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import ConfigError, DataError
from metrics.carla import (
    Protocol,
    RouteOutcome,
    aggregate,
    evaluate_documents,
    find_result_files,
    infraction_penalty,
    parse_result_document,
    read_result_file,
    score_route,
)
from metrics.carla.records import parse_route_record
from tests.metrics.carla_results import (
    RED_LIGHT,
    VEHICLE_COLLISION,
    bench2drive_merged,
    min_speed,
    outside_lanes,
    record,
    three_routes,
    write,
)


def _doc(data, source="results.json"):
    return parse_result_document(data, source=source)


def _route(raw, protocol=Protocol.LEADERBOARD_2_0):
    return score_route(parse_route_record(raw, source="r.json", position=0), protocol)


# --- per route ------------------------------------------------------------------------------------------------


def test_three_routes_per_route_scores():
    ev = evaluate_documents([_doc(three_routes())])
    a, b, c = ev.routes
    assert (a.infraction_penalty, a.driving_score, a.outcome) == (0.42, 42.0, RouteOutcome.COMPLETED)
    assert a.recomputed_penalty == pytest.approx(0.6 * 0.7, abs=1e-12)
    assert a.infraction_counts["collisions_vehicle"] == 1 and a.infraction_counts["red_light"] == 1
    assert (b.infraction_penalty, b.driving_score, b.outcome, b.success) == (1.0, 100.0, RouteOutcome.PERFECT, True)
    assert (c.route_completion_pct, c.driving_score, c.outcome) == (35.5, 35.5, RouteOutcome.RUN_FAILURE)
    assert c.km_driven == pytest.approx(0.5 * 0.355)
    assert ev.checks == ()


def test_three_routes_aggregate_is_the_leaderboard_global_record():
    agg = evaluate_documents([_doc(three_routes())]).aggregate
    assert agg.routes_total == 3 and agg.routes_recorded == 3 and agg.routes_finished == 2
    assert [u.route_id for u in agg.unfinished] == ["RouteScenario_2_rep0"]
    assert agg.driving_score == pytest.approx((42 + 100 + 35.5) / 3, abs=1e-12)
    assert agg.route_completion == pytest.approx((100 + 100 + 35.5) / 3, abs=1e-12)
    assert agg.infraction_penalty == pytest.approx((0.42 + 1 + 1) / 3, abs=1e-12)
    assert agg.finished_means[0] == pytest.approx(71.0)
    km = 1.0 + 2.0 + 0.5 * 0.355
    assert agg.km_driven == pytest.approx(km)
    assert agg.infractions_per_km["collisions_vehicle"] == pytest.approx(1 / km)
    assert agg.infractions_per_km["red_light"] == pytest.approx(1 / km)
    assert agg.infractions_per_km["collisions_pedestrian"] == 0.0
    assert agg.global_status == "Failed"
    # sample std over the recorded routes, divided by routes_total - 1 (the leaderboard's formula)
    mean = round((42 + 100 + 35.5) / 3, 6)
    expected = math.sqrt(((42 - mean) ** 2 + (100 - mean) ** 2 + (35.5 - mean) ** 2) / 2)
    assert agg.driving_score_std == pytest.approx(expected)


def test_routes_without_a_record_count_as_zero_and_are_reported():
    data = three_routes()
    data["_checkpoint"]["progress"] = [3, 5]  # two routes never ran
    agg = evaluate_documents([_doc(data)]).aggregate
    assert agg.routes_total == 5 and agg.routes_missing == 2
    assert agg.driving_score == pytest.approx((42 + 100 + 35.5) / 5)
    assert agg.finished_means[0] == pytest.approx(71.0)  # unchanged: only finished routes
    override = evaluate_documents([_doc(data)], routes_total=10).aggregate
    assert override.driving_score == pytest.approx(177.5 / 10)
    with pytest.raises(ConfigError):
        evaluate_documents([_doc(data)], routes_total=2)


def test_every_fixed_coefficient_once():
    raw = record("RouteScenario_7_rep0", "Completed", 100.0, 0.053508, 5.3508, 800.0,
                 collisions_pedestrian=["p"], collisions_vehicle=["v"], collisions_layout=["l"], red_light=["r"],
                 stop_infraction=["s"], scenario_timeouts=["t"], yield_emergency_vehicle_infractions=["y"])
    r = _route(raw)
    assert r.recomputed_penalty == pytest.approx(0.5 * 0.6 * 0.65 * 0.7 * 0.8 * 0.7 * 0.7)
    assert r.recomputed_penalty == pytest.approx(0.053508, abs=1e-9)
    assert r.mismatches == ()


def test_route_ending_events_carry_no_penalty():
    raw = record("RouteScenario_8_rep0", "Failed - Agent got blocked", 61.25, 1.0, 61.25, 1200.0,
                 route_dev=["Agent deviated from the route at (x=1, y=2, z=0)"],
                 vehicle_blocked=["Agent got blocked at (x=1, y=2, z=0)"], route_timeout=["Route timeout."])
    r = _route(raw)
    assert (r.infraction_penalty, r.driving_score, r.outcome) == (1.0, 61.25, RouteOutcome.DRIVING_FAILURE)
    assert r.outcome.finished and not r.success


def test_percentage_rules_min_speed_and_outside_route_lanes():
    # min speed at 50 % and 80 %: 1 - 0.3 * 0.5 = 0.85, 1 - 0.3 * 0.2 = 0.94; 10 % outside lanes: 0.9
    lb2 = 0.85 * 0.94 * 0.9
    raw = record("RouteScenario_9_rep0", "Completed", 100.0, round(lb2, 6), round(100 * lb2, 6), 1000.0,
                 min_speed_infractions=[min_speed(50.0), min_speed(80.0)],
                 outside_route_lanes=[outside_lanes(25.5, 10.0)])
    r = _route(raw)
    assert r.infraction_penalty == pytest.approx(0.7191, abs=1e-12) and r.mismatches == ()
    assert r.outside_route_lanes_km == pytest.approx(0.0255)
    assert infraction_penalty({}, min_speed_pct=[50.0, 80.0], outside_route_lanes_pct=[10.0]) == pytest.approx(lb2)
    # Bench2Drive marks the min-speed rule 'unused': only the outside-lanes factor is left
    assert infraction_penalty({}, min_speed_pct=[50.0, 80.0], outside_route_lanes_pct=[10.0],
                              protocol=Protocol.BENCH2DRIVE) == pytest.approx(0.9)
    b2d = _route(raw, Protocol.BENCH2DRIVE)
    assert b2d.recomputed_penalty == pytest.approx(0.9) and b2d.mismatches  # the file was written by LB 2.0
    # the global record: outside_route_lanes is km driven outside (not divided by km driven)
    agg = aggregate([r])
    assert agg.infractions_per_km["outside_route_lanes"] == pytest.approx(0.0255)
    assert agg.infractions_per_km["min_speed_infractions"] == pytest.approx(2 / 1.0)


def test_outside_lanes_rounding_uses_the_stored_exact_value_within_the_bound():
    # the leaderboard used 10.004 %; the message prints 10.0 %
    exact = 1 - 10.004 / 100
    raw = record("RouteScenario_3_rep0", "Completed", 100.0, round(exact, 6), round(100 * exact, 6), 700.0,
                 outside_route_lanes=[outside_lanes(70.028, 10.0)])
    r = _route(raw)
    assert r.recomputed_penalty == 0.9 and r.infraction_penalty == round(exact, 6) and r.mismatches == ()
    raw["scores"]["score_penalty"], raw["scores"]["score_composed"] = 0.8998, 89.98  # beyond 0.005 % of rounding
    r = _route(raw)
    assert r.infraction_penalty == 0.9 and any("infraction penalty" in m for m in r.mismatches)


def test_a_wrong_stored_penalty_is_reported_and_the_recomputed_one_used():
    raw = record("RouteScenario_4_rep0", "Completed", 100.0, 0.5, 50.0, 900.0, collisions_vehicle=[VEHICLE_COLLISION])
    r = _route(raw)
    assert r.infraction_penalty == 0.6 and r.driving_score == 60.0
    assert any("stored 0.500000, recomputed 0.600000" in m for m in r.mismatches)


def test_status_and_completion_disagreement_is_reported():
    raw = record("RouteScenario_5_rep0", "Perfect", 80.0, 1.0, 80.0, 900.0)
    assert any("< 100" in m for m in _route(raw).mismatches)


# --- Bench2Drive ---------------------------------------------------------------------------------------------


def _b2d_records():
    return [
        record("RouteScenario_1711_rep0", "Perfect", 100.0, 1.0, 100.0, 300.0),
        record("RouteScenario_1712_rep0", "Completed", 100.0, 1.0, 100.0, 300.0,
               min_speed_infractions=[min_speed(61.2)]),  # success: min speed does not count, no penalty
        record("RouteScenario_1713_rep0", "Completed", 100.0, 0.7, 70.0, 300.0, red_light=[RED_LIGHT]),
        record("RouteScenario_1714_rep0", "Failed - Agent deviated from the route", 40.0, 1.0, 40.0, 300.0,
               route_dev=["Agent deviated from the route at (x=1, y=2, z=0)"]),
    ]


def test_bench2drive_merged_file_success_rate():
    data = bench2drive_merged(_b2d_records(), driving_score=310.0 / 220, success_rate=2 / 220)
    doc = _doc(data)
    ev = evaluate_documents([doc], routes_total=220)
    agg = ev.aggregate
    assert agg.protocol is Protocol.BENCH2DRIVE
    assert [r.success for r in ev.routes] == [True, True, False, False]
    assert agg.successes == 2 and agg.success_rate == pytest.approx(100 * 2 / 220)
    assert agg.driving_score == pytest.approx(310.0 / 220)
    assert ev.checks == ()
    # without the override the denominator is the number of records (a merged file has no progress)
    assert evaluate_documents([doc]).aggregate.success_rate == pytest.approx(50.0)


def test_bench2drive_merged_file_with_a_wrong_stored_rate_is_reported():
    data = bench2drive_merged(_b2d_records(), driving_score=310.0 / 220, success_rate=3 / 220)
    checks = evaluate_documents([_doc(data)], routes_total=220).checks
    assert any("success rate" in c for c in checks)


def test_protocol_is_leaderboard_for_plain_checkpoints():
    assert evaluate_documents([_doc(three_routes())]).aggregate.protocol is Protocol.LEADERBOARD_2_0


# --- files and bad input -------------------------------------------------------------------------------------


def test_missing_key_names_file_route_and_key(tmp_path):
    data = three_routes()
    del data["_checkpoint"]["records"][1]["scores"]["score_penalty"]
    path = write(tmp_path / "bad.json", data)
    with pytest.raises(DataError) as err:
        read_result_file(path)
    msg = str(err.value)
    assert "score_penalty" in msg and "RouteScenario_1_rep0" in msg and "bad.json" in msg


@pytest.mark.parametrize("mutate, expected", [
    (lambda d: d.pop("_checkpoint"), "_checkpoint"),
    (lambda d: d["_checkpoint"].pop("records"), "records"),
    (lambda d: d["_checkpoint"].pop("progress"), "progress"),
    (lambda d: d["_checkpoint"]["records"][0]["meta"].pop("route_length"), "route_length"),
    (lambda d: d["_checkpoint"]["records"][0]["infractions"].pop("red_light"), "red_light"),
    (lambda d: d["_checkpoint"]["records"][0]["infractions"].update(wrong_way=[]), "wrong_way"),
    (lambda d: d["_checkpoint"]["records"][0]["scores"].update(score_route="100"), "score_route"),
    (lambda d: d["_checkpoint"]["records"][0]["infractions"].update(min_speed_infractions=["slow"]), "slow"),
    (lambda d: d["_checkpoint"].update(progress=[3, 2]), "progress"),
    (lambda d: d["_checkpoint"]["records"].append(d["_checkpoint"]["records"][0]), "two records"),
])
def test_malformed_documents(mutate, expected):
    data = three_routes()
    mutate(data)
    with pytest.raises(DataError, match=expected):
        _doc(data)


def test_not_json_and_discovery(tmp_path):
    good = write(tmp_path / "run" / "a" / "checkpoint_endpoint.json", three_routes())
    write(tmp_path / "run" / "summary.json", {"driving_score": 1.0})  # not a result document: skipped
    found = find_result_files([tmp_path / "run"])
    assert found.results == (good.resolve(),) and len(found.skipped) == 1
    write(tmp_path / "run" / "b" / "truncated.json", json.dumps(three_routes())[:200])
    with pytest.raises(DataError, match="truncated.json"):
        find_result_files([tmp_path / "run"])
    with pytest.raises(ConfigError):
        find_result_files([tmp_path / "nowhere"])


def test_duplicate_route_across_files():
    with pytest.raises(DataError, match="RouteScenario_0_rep0"):
        evaluate_documents([_doc(three_routes(), "a.json"), _doc(three_routes(), "b.json")])


def test_several_checkpoints_merge_with_summed_progress():
    first, second = three_routes(), three_routes()
    for r in second["_checkpoint"]["records"]:
        r["route_id"] = r["route_id"].replace("_rep0", "_rep1")
    agg = evaluate_documents([_doc(first, "a.json"), _doc(second, "b.json")]).aggregate
    assert agg.routes_total == 6 and agg.driving_score == pytest.approx(177.5 / 3)


# --- properties ----------------------------------------------------------------------------------------------

_pct = st.floats(min_value=0.0, max_value=100.0, allow_nan=False).map(lambda x: round(x, 2))


@st.composite
def _records(draw, i):
    counts = {k: draw(st.integers(0, 3)) for k in ("collisions_pedestrian", "collisions_vehicle",
                                                    "collisions_layout", "red_light", "stop_infraction",
                                                    "scenario_timeouts", "yield_emergency_vehicle_infractions")}
    ms = draw(st.lists(_pct, max_size=3))
    ol = draw(st.lists(_pct, max_size=1))
    rc = draw(st.one_of(st.just(100.0), _pct))
    pen = infraction_penalty(counts, min_speed_pct=ms, outside_route_lanes_pct=ol)
    status = draw(st.sampled_from(["Completed", "Perfect"])) if rc >= 100 else draw(st.sampled_from(
        ["Failed - Agent got blocked", "Failed - Agent crashed", "Failed"]))
    inf = {k: ["x"] * n for k, n in counts.items()}
    inf["min_speed_infractions"] = [min_speed(p) for p in ms]
    inf["outside_route_lanes"] = [outside_lanes(12.5, p) for p in ol]
    return record(f"RouteScenario_{i}_rep0", status, rc, round(pen, 6), round(rc * pen, 6),
                  draw(st.floats(0.0, 5000.0)), index=i, **inf)


@st.composite
def _route_sets(draw):
    n = draw(st.integers(1, 8))
    return [draw(_records(i)) for i in range(n)]


@settings(max_examples=60, deadline=None)
@given(_route_sets(), st.randoms(use_true_random=False), st.sampled_from(list(Protocol)))
def test_scores_in_range_and_aggregate_invariant_to_order(raws, rnd, protocol):
    routes = [_route(r, protocol) for r in raws]
    for r in routes:
        assert 0.0 <= r.infraction_penalty <= 1.0
        assert 0.0 <= r.driving_score <= r.route_completion_pct + 1e-9 <= 100.0 + 1e-9
    total = len(routes) + rnd.randint(0, 3)
    agg = aggregate(routes, routes_total=total, protocol=protocol)
    shuffled = routes[:]
    rnd.shuffle(shuffled)
    assert aggregate(shuffled, routes_total=total, protocol=protocol) == agg
    assert 0.0 <= agg.driving_score <= agg.route_completion <= 100.0 + 1e-9
    assert 0.0 <= agg.infraction_penalty <= 1.0 and 0.0 <= agg.success_rate <= 100.0
    assert all(v >= 0 for v in agg.infractions_per_km.values())
