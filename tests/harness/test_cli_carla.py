"""`lead-bench run carla`: tables, results directory, exit codes."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from harness.cli import main
from tests.metrics.carla_results import bench2drive_merged, finished_only, record, three_routes, write


def _run(*args):
    return CliRunner().invoke(main, ["run", "carla", *map(str, args)])


def test_unfinished_route_exits_1_and_is_listed(tmp_path):
    write(tmp_path / "eval" / "checkpoint_endpoint.json", three_routes())
    res = _run("--results", tmp_path / "eval", "--out", tmp_path / "out")
    assert res.exit_code == 1, res.output
    assert "RouteScenario_2_rep0" in res.output and "Agent crashed" in res.output
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["driving_score"] == pytest.approx(177.5 / 3)
    assert summary["route_completion"] == pytest.approx(235.5 / 3)
    assert summary["infraction_penalty"] == pytest.approx(2.42 / 3)
    assert (summary["routes_total"], summary["routes_finished"]) == (3, 2)
    assert summary["unfinished_routes"][0]["route_id"] == "RouteScenario_2_rep0"
    assert summary["km_driven"] == pytest.approx(3.1775)
    assert summary["infractions_per_km"]["collisions_vehicle"] == pytest.approx(1 / 3.1775)
    assert summary["success_rate"] is None  # leaderboard 2.0 rules
    assert summary["counts"] == {"expected": 3, "scored": 2, "failed": 1}
    rows = pd.read_parquet(tmp_path / "out" / "rows.parquet")
    assert list(rows.columns[:9]) == ["route_id", "token", "status", "outcome", "route_completion",
                                      "infraction_penalty", "driving_score", "route_length_m", "km_driven"]
    assert rows.set_index("route_id").loc["RouteScenario_0_rep0", "driving_score"] == 42.0
    assert rows.set_index("route_id").loc["RouteScenario_0_rep0", "red_light"] == 1
    assert pd.read_csv(tmp_path / "out" / "rows.csv").shape == (3, rows.shape[1])
    failures = pd.read_csv(tmp_path / "out" / "failures.csv")
    assert list(failures["token"]) == ["RouteScenario_2_rep0"]
    assert not list((tmp_path / "out").glob(".*tmp*"))  # atomic writes left no temporaries


def test_all_finished_exits_0(tmp_path):
    path = write(tmp_path / "ok.json", finished_only())
    res = _run("--results", path, "--out", tmp_path / "out")
    assert res.exit_code == 0, res.output
    assert "RouteScenario_1_rep0" in res.output  # the per-route table
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["driving_score"] == pytest.approx(71.0) and summary["checks"] == []


def test_missing_routes_exit_1(tmp_path):
    data = finished_only()
    data["_checkpoint"]["progress"] = [2, 4]
    res = _run("--results", write(tmp_path / "p.json", data), "--out", tmp_path / "out", "--no-routes")
    assert res.exit_code == 1 and "2 route(s) have no record" in res.output


def test_malformed_json_exits_2_naming_the_file(tmp_path):
    path = write(tmp_path / "half.json", json.dumps(three_routes())[:300])
    res = _run("--results", path, "--out", tmp_path / "out")
    assert res.exit_code == 2 and "half.json" in res.output and "not valid JSON" in res.output


def test_missing_key_exits_2_naming_key(tmp_path):
    data = three_routes()
    del data["_checkpoint"]["records"][0]["meta"]["route_length"]
    res = _run("--results", write(tmp_path / "k.json", data), "--out", tmp_path / "out")
    assert res.exit_code == 2 and "route_length" in res.output and "RouteScenario_0_rep0" in res.output
    assert not (tmp_path / "out").exists()


def test_bench2drive_merged_with_success_rate(tmp_path):
    recs = [record("RouteScenario_1_rep0", "Perfect", 100.0, 1.0, 100.0, 250.0),
            record("RouteScenario_2_rep0", "Completed", 100.0, 0.6, 60.0, 250.0,
                   collisions_vehicle=["Agent collided against object with type=vehicle.a and id=1 at (x=0, y=0, z=0)"])]
    path = write(tmp_path / "merged.json", bench2drive_merged(recs, 160.0 / 220, 1 / 220))
    res = _run("--results", path, "--out", tmp_path / "out", "--routes-total", 220)
    assert res.exit_code == 1  # 218 routes have no record
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["protocol"] == "bench2drive"
    assert summary["success_rate"] == pytest.approx(100 / 220) and summary["successes"] == 1
    assert summary["driving_score"] == pytest.approx(160.0 / 220)
    res = _run("--results", path, "--out", tmp_path / "out2", "--protocol", "leaderboard2")
    assert res.exit_code == 0 and json.loads((tmp_path / "out2" / "summary.json").read_text())["success_rate"] is None
