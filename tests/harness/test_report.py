"""`lead-bench report`: the data of the page, a self-contained HTML file, and the page opened in headless
Chromium (Debian's `chromium`) with a screenshot taken and no console errors."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from harness.cli import main
from harness.report import build_report, render_html, rule_breakdown, write_report


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def open_in_chromium(html_path: Path, shot: Path, timeout_s: float = 90.0) -> list[str]:
    """Load the page headless, save a screenshot; returns the page's console messages (Chromium logs each
    as ``INFO:CONSOLE``/``:CONSOLE(...)`` on stderr with ``--enable-logging=stderr``)."""
    exe = _chromium()
    assert exe is not None
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
           "--no-first-run", "--window-size=1280,3000", f"--screenshot={shot}", "--enable-logging=stderr", "--v=0",
           html_path.resolve().as_uri()]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    return [line for line in res.stderr.splitlines() if re.search(r":CONSOLE[:(]", line)]


needs_chromium = pytest.mark.skipif(
    _chromium() is None,
    reason="headless Chromium not installed (Debian: apt-get install -y chromium; .ci/run installs it)")


def _navsim_rows(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    nc = rng.choice([0.0, 0.5, 1.0], n, p=[0.1, 0.05, 0.85])
    dac = rng.choice([0.0, 1.0], n, p=[0.08, 0.92])
    ttc = rng.choice([0.0, 1.0], n, p=[0.2, 0.8])
    ep = rng.uniform(0.3, 1.0, n)
    c = np.ones(n)
    score = nc * dac * (5 * ttc + 5 * ep + 2 * c) / 12
    return pd.DataFrame({"token": [f"t{i:05d}" for i in range(n)], "valid": True, "no_at_fault_collisions": nc,
                         "drivable_area_compliance": dac, "ego_progress": ep, "time_to_collision_within_bound": ttc,
                         "comfort": c, "driving_direction_compliance": np.ones(n), "score": score,
                         "log_name": "log", "ade_m": rng.uniform(0, 3, n), "fde_m": rng.uniform(0, 6, n),
                         "error": None})


def _write_run(path: Path, rows: pd.DataFrame, **summary) -> Path:
    path.mkdir(parents=True)
    rows.to_parquet(path / "rows.parquet")
    full = {"benchmark": "navsim", "scorer": "navsim-v1.1 PDMS", "agent": "synthetic", "split": "test",
            "counts": {"expected": len(rows), "scored": int(rows["valid"].sum()),
                       "failed": int((~rows["valid"]).sum())},
            "provenance": {"git_revision": "abc123", "packages": {"numpy": "2.x"}}}
    full.update(summary)
    (path / "summary.json").write_text(json.dumps(full))
    (path / "config.json").write_text(json.dumps({"benchmark": "navsim", "agent": "synthetic"}))
    return path


def test_rule_breakdown_counts_which_rule_zeroed_the_score():
    rows = _navsim_rows(500)
    rules = {r.rule: r for r in rule_breakdown(rows, "navsim")}
    assert rules["NC = 0"].scenes == int((rows["no_at_fault_collisions"] == 0).sum())
    assert rules["NC = 0"].zeroed_score == rules["NC = 0"].scenes  # a multiplier: zero alone zeroes PDMS
    assert rules["NC = 0.5"].scenes == int((rows["no_at_fault_collisions"] == 0.5).sum())
    assert rules["DAC = 0"].scenes == int((rows["drivable_area_compliance"] == 0).sum())
    both = ((rows["no_at_fault_collisions"] == 0) | (rows["drivable_area_compliance"] == 0)).sum()
    assert rules["PDMS = 0"].scenes == both
    assert rules["TTC = 0"].zeroed_score == int(((rows["time_to_collision_within_bound"] == 0)
                                                 & (rows["score"] == 0)).sum())


def test_report_data_and_self_contained_html(tmp_path):
    rows = _navsim_rows(300)
    rows.loc[5, ["valid", "score", "error"]] = [False, np.nan, "DataError: map tile missing"]
    rows.loc[9, ["valid", "score", "error"]] = [False, np.nan, "DataError: another"]
    run = _write_run(tmp_path / "run", rows)
    seen = []

    def pictures(items):
        seen.extend(t for t, _ in items)
        return [(None, f"no picture for {t}") for t, _ in items]

    rep = build_report(run, worst=4, n_boot=300, pictures=pictures)
    scored = rows[rows["valid"]]
    head = {h.short: h for h in rep.headlines}
    assert head["PDMS"].mean == pytest.approx(scored["score"].mean())
    assert head["PDMS"].ci_low < head["PDMS"].mean < head["PDMS"].ci_high and head["PDMS"].n == 298
    assert [w.token for w in rep.worst] == seen and len(seen) == 4
    assert [w.score for w in rep.worst] == sorted(scored["score"])[:4]
    assert rep.failures[0].kind == "DataError" and rep.failures[0].count == 2
    assert rep.counts == {"expected": 300, "scored": 298, "failed": 2}
    page = render_html(rep)
    assert "abc123" in page and "map tile missing" in page and "NC = 0" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)  # no external assets
    assert "<script" not in page
    imgs = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(imgs) == len(rep.figures) == 2
    for data in imgs:
        from io import BytesIO

        with Image.open(BytesIO(base64.b64decode(data))) as im:
            assert im.format == "PNG"


@needs_chromium
def test_chromium_detector_sees_console_errors(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><script>console.error('boom-1234')</script></body></html>")
    msgs = open_in_chromium(bad, tmp_path / "bad.png")
    assert any("boom-1234" in m for m in msgs)  # the check below can fail


@pytest.fixture(scope="module")
def navsim_run(small_world_root, tmp_path_factory):
    from adapters.navsim.reader import NavsimReader
    from harness.agents import build_agent
    from harness.runner import run_navsim

    out = tmp_path_factory.mktemp("report-run") / "cv"
    reader = NavsimReader(small_world_root, "test")
    cache = tmp_path_factory.mktemp("report-cache")
    config = {"benchmark": "navsim", "data_root": str(small_world_root), "maps_root": str(small_world_root / "maps"),
              "split": "test", "agent": "cv", "cache_dir": str(cache), "scene_filter": reader.scene_filter.__dict__}
    run_navsim(reader, build_agent("cv"), out, maps_root=small_world_root / "maps", cache_dir=cache, config=config)
    return out


@needs_chromium
def test_report_of_a_real_run_opens_in_chromium_without_console_errors(navsim_run, tmp_path):
    out = tmp_path / "report.html"
    res = CliRunner().invoke(main, ["report", "--run", str(navsim_run), "--out", str(out), "--worst", "3",
                                    "--bootstrap", "300"])
    assert res.exit_code == 0, res.output
    assert "3 with pictures" in res.output
    page = out.read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == 2 + 3  # two figures, three explain pictures
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)
    shot = tmp_path / "shot.png"
    console = open_in_chromium(out, shot)
    assert console == [], console
    with Image.open(shot) as im:
        assert im.size == (1280, 3000)
        px = np.asarray(im.convert("L"))
        assert px.std() > 10  # something was rendered, not a blank page


def test_report_of_a_waymo_run(small_world_root, tmp_path):
    run = tmp_path / "waymo"
    res = CliRunner().invoke(main, ["run", "waymo", "--data-root", str(small_world_root / "waymo"), "--split", "val",
                                    "--out", str(run)])
    assert res.exit_code == 0, res.output
    path, rep = write_report(run, tmp_path / "w.html", worst=2, n_boot=200)
    assert rep.benchmark == "waymo" and rep.main_metric == "rfs"
    assert sum(w.picture is not None for w in rep.worst) == 2
    rules = {r.rule: r for r in rep.rules}
    rows = pd.read_parquet(run / "rows.parquet")
    rows = rows[rows["valid"]]
    assert rules["outside every trust region (floored at 4)"].scenes == int((~rows["fully_inside_trust_region"]
                                                                             .astype(bool)).sum())
    assert "RFS" in path.read_text(encoding="utf-8")


def test_report_of_a_carla_run(tmp_path):
    from tests.metrics.carla_results import three_routes

    src = tmp_path / "three.json"
    src.write_text(json.dumps(three_routes()))
    res = CliRunner().invoke(main, ["run", "carla", "--results", str(src), "--out", str(tmp_path / "carla")])
    assert res.exit_code in (0, 1), res.output
    path, rep = write_report(tmp_path / "carla", tmp_path / "c.html", worst=2, n_boot=200)
    assert rep.benchmark == "carla" and rep.main_metric == "driving_score"
    assert all(w.picture is None and "no per-scene pictures" in w.note for w in rep.worst)
    rows = pd.read_parquet(tmp_path / "carla" / "rows.parquet")
    rules = {r.column: r for r in rep.rules}
    scored = rows[rows["error"].isna()]
    assert rules["collisions_vehicle"].scenes == int((scored["collisions_vehicle"].fillna(0) > 0).sum()) > 0
    assert "driving_score" in path.read_text(encoding="utf-8") or "DS" in path.read_text(encoding="utf-8")
