"""`lead-bench explain`: pictures of scenes with known violations, checked through the data they are drawn
from (the violating step highlighted), the files written, and the CLI on real runs of the embedded world."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from harness.cli import main
from harness.explain import navsim_explanation, waymo_explanation
from harness.explain_plot import comfort_fractions, draw_navsim, draw_waymo, write_png
from harness.trajectory import NAVSIM_SAMPLING, Trajectory
from tests.metrics.scene_builders import Obj, ObjectType, straight_road, straight_states


def _scene_with_closed(objs, token):
    scene = straight_road(objs, token=token)
    from dataclasses import replace

    closed = straight_states(speed=10.0)  # PDM-Closed: straight on in its lane
    return replace(scene, pdm_closed_states=closed, pdm_closed_times_s=np.arange(41) * 0.1)


def _plan(xy_fn) -> Trajectory:
    t = np.arange(1, 9) * 0.5
    x, y = xy_fn(t)
    heading = np.arctan2(np.gradient(y, t), np.gradient(x, t))
    return Trajectory(np.stack([x, y, heading], -1), NAVSIM_SAMPLING)


def _check_png(path: Path, min_bytes: int = 20_000) -> None:
    assert path.is_file() and path.stat().st_size > min_bytes
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 600 and im.size[1] > 400


def test_collision_with_a_stopped_car_highlights_the_colliding_step(tmp_path):
    scene = _scene_with_closed([Obj("parked", ObjectType.VEHICLE, 30.0, 0.0)], "crash")
    plan = _plan(lambda t: (10.0 * t, 0.0 * t))  # straight on at 10 m/s into the parked car
    e = navsim_explanation(scene, plan)
    nc = e.highlight("NC")
    assert nc is not None and e.score("NC") == 0.0 and e.score("PDMS") == 0.0
    step = e.evidence.collision_step
    assert nc.steps == (step,) and 15 <= step <= 30
    np.testing.assert_allclose(nc.polygons_xy[0], e.ego_footprints_xy[step])
    # the highlighted footprint touches the parked car's box at that step
    import shapely

    car = next(o for o in e.objects if o.token == "parked")
    assert shapely.intersects(shapely.Polygon(nc.polygons_xy[0]), shapely.Polygon(car.corners_xy[step]))
    assert "at fault" in e.at_fault_reason and "parked" in e.at_fault_reason
    assert e.highlight("TTC") is not None and e.highlight("TTC").steps[0] < step  # seen coming
    _check_png(write_png(draw_navsim(e), tmp_path / "crash.png"))


def test_leaving_the_road_highlights_the_off_road_steps_and_corners(tmp_path):
    scene = _scene_with_closed([], "offroad")
    plan = _plan(lambda t: (8.0 * t, -0.5 * t * t))  # drifts right off the road (edge at y = -1.75)
    e = navsim_explanation(scene, plan)
    dac = e.highlight("DAC")
    assert dac is not None and e.score("DAC") == 0.0
    assert dac.steps == e.evidence.off_road_steps and len(dac.points_xy) > 0
    assert np.all(dac.points_xy[:, 1] < -1.75 + 1e-6)  # every marked corner is beyond the right road edge
    assert e.highlight("NC") is None
    # Officially "oncoming" means the centre is in no on-route lane, so driving off the road counts too.
    ddc = e.highlight("DDC")
    assert ddc is not None and all(e.evidence.oncoming[s] for s in ddc.steps)
    _check_png(write_png(draw_navsim(e), tmp_path / "offroad.png"))


def test_oncoming_lane_stretch_and_comfort_against_bounds():
    scene = _scene_with_closed([], "oncoming")
    # Swerve left into the westbound lanes (y > 5.25) and hold there: DDC, and a harsh lateral motion.
    plan = _plan(lambda t: (9.0 * t, 7.0 * np.clip(t / 1.5, 0, 1)))
    e = navsim_explanation(scene, plan)
    ddc = e.highlight("DDC")
    assert ddc is not None and e.score("DDC") < 1.0
    assert all(e.evidence.oncoming[s] for s in ddc.steps)
    assert all(e.ego_footprints_xy[s][:, 1].mean() > 5.25 for s in ddc.steps)
    for c in e.comfort:  # the drawn fractions reach +-1 exactly where the check fails
        frac = comfort_fractions(c.values, c.low, c.high)
        assert c.ok == bool(np.all(np.abs(frac) < 1.0))
    assert e.score("C") == float(all(c.ok for c in e.comfort))


@pytest.fixture(scope="module")
def navsim_run(small_world_root, tmp_path_factory):
    from adapters.navsim.reader import NavsimReader
    from harness.agents import build_agent
    from harness.runner import run_navsim

    out = tmp_path_factory.mktemp("explain-run") / "cv"
    reader = NavsimReader(small_world_root, "test")
    cache = tmp_path_factory.mktemp("explain-cache")
    config = {"benchmark": "navsim", "data_root": str(small_world_root), "maps_root": str(small_world_root / "maps"),
              "split": "test", "agent": "cv", "cache_dir": str(cache), "scene_filter": reader.scene_filter.__dict__}
    run_navsim(reader, build_agent("cv"), out, maps_root=small_world_root / "maps", cache_dir=cache, config=config)
    return out


def test_explain_navsim_cli_on_a_real_run_matches_its_rows(navsim_run, tmp_path):
    rows = pd.read_parquet(navsim_run / "rows.parquet")
    bad = rows[rows["time_to_collision_within_bound"] == 0]
    assert len(bad), "the constant-velocity run should close in on something"
    token = str(bad["token"].iloc[0])
    out = tmp_path / "scene.png"
    res = CliRunner().invoke(main, ["explain", "navsim", "--run", str(navsim_run), "--token", token, "--out",
                                    str(out), "--cameras"])
    assert res.exit_code == 0, res.output
    assert "TTC 0.000" in res.output and "TTC violation" in res.output
    _check_png(out, 50_000)

    from harness.explain import NavsimRunScenes

    scenes = NavsimRunScenes(navsim_run)
    e = scenes.explain(token, cameras=True)
    assert {c.name for c in e.cameras} == {"CAM_L0", "CAM_F0", "CAM_R0"}
    for s in e.scores:  # the recomputed sub-scores are the run's
        assert s.value == pytest.approx(s.run_value, abs=1e-9), s
    ttc = e.highlight("TTC")
    assert ttc is not None and ttc.steps[0] >= 0 and ttc.polygons_xy.shape == (1, 4, 2)
    t0 = time.perf_counter()
    draw_navsim(scenes.explain(str(rows["token"].iloc[0])))
    assert time.perf_counter() - t0 < 5.0  # generous: the benchmark measures the < 1 s target


def test_explain_navsim_reports_bad_input(navsim_run, tmp_path):
    res = CliRunner().invoke(main, ["explain", "navsim", "--run", str(navsim_run), "--token", "nope"])
    assert res.exit_code == 2 and "nope" in res.output and "not in this run" in res.output
    res = CliRunner().invoke(main, ["explain", "navsim", "--run", str(tmp_path), "--token", "x"])
    assert res.exit_code == 2 and "config.json" in res.output


def test_explain_waymo_trust_regions_and_horizon_scores(small_world_root, tmp_path):
    run = tmp_path / "waymo"
    res = CliRunner().invoke(main, ["run", "waymo", "--data-root", str(small_world_root / "waymo"), "--split", "val",
                                    "--out", str(run)])
    assert res.exit_code == 0, res.output
    rows = pd.read_parquet(run / "rows.parquet")
    rows = rows[rows["valid"]].sort_values("rfs")
    frame = str(rows["token"].iloc[0])
    out = tmp_path / "frame.png"
    res = CliRunner().invoke(main, ["explain", "waymo", "--run", str(run), "--frame", frame, "--out", str(out)])
    assert res.exit_code == 0, res.output
    _check_png(out)

    from harness.explain import WaymoRunFrames

    frames = WaymoRunFrames(run)
    e = frames.explain(frame)
    assert e.score == pytest.approx(float(rows["rfs"].iloc[0]), abs=1e-12)
    assert {r.horizon_s for r in e.trust_regions} == {3, 5}
    assert len(e.trust_regions) == 2 * len(e.raters_xy)
    for r in e.trust_regions:  # the drawn rectangle holds the prediction exactly when the metric says inside
        import shapely

        idx = 11 if r.horizon_s == 3 else 19
        inside = shapely.covers(shapely.Polygon(r.corners_xy), shapely.Point(e.prediction_xy[idx]))
        if abs(r.normalized_distance - 1.0) > 1e-6:
            assert inside == r.contains_prediction, r
    assert e.fully_inside == any(
        all(r.contains_prediction for r in e.trust_regions if r.rater == k) for k in {r.rater for r in e.trust_regions})
    if not e.fully_inside:
        assert e.score >= 4.0
    # a prediction on the best rater's path is inside its regions and gets that rater's score
    best = int(np.argmax(e.rater_scores))
    labels = frames.reader.labels(frame)
    on_rater = waymo_explanation(labels, e.raters_xy[best])
    assert on_rater.fully_inside and on_rater.score == pytest.approx(e.rater_scores.max())
    write_png(draw_waymo(on_rater), tmp_path / "on_rater.png")
    _check_png(tmp_path / "on_rater.png")


def test_explain_refuses_an_epdms_run(navsim_run, tmp_path):
    import json
    import shutil

    run = tmp_path / "epdms"
    shutil.copytree(navsim_run, run)
    summary = json.loads((run / "summary.json").read_text())
    summary.update(metric="epdms", scorer="navsim-v2.2 EPDMS")
    (run / "summary.json").write_text(json.dumps(summary))
    token = str(pd.read_parquet(run / "rows.parquet")["token"].iloc[0])
    res = CliRunner().invoke(main, ["explain", "navsim", "--run", str(run), "--token", token])
    assert res.exit_code == 2 and "EPDMS" in res.output
