"""`lead-bench compare`: bootstrap intervals, paired deltas and tests, published rows, plots, output formats."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.compare import bootstrap_mean_ci, compare_runs, load_run, paired_bootstrap, wide_table
from harness.compare_plots import delta_plot_data, plot_deltas, plot_paired_scatter, write_plots
from harness.published import PUBLISHED_BASELINES, published_for
from harness.results import write_results


def _run_dir(path, agent, values):
    rows = [{"token": f"t{i}", "valid": True, "ade_m": v, "fde_m": 2 * v, "error": None} for i, v in enumerate(values)]
    write_results(path, rows, {"agent": agent, "metrics": {}}, {})
    return path


def test_bootstrap_interval_contains_the_mean_and_is_seeded():
    v = np.random.default_rng(1).normal(3.0, 1.0, 500)
    mean, lo, hi = bootstrap_mean_ci(v)
    assert lo < mean < hi and abs(mean - v.mean()) < 1e-12
    assert bootstrap_mean_ci(v) == (mean, lo, hi)
    assert abs((hi - lo) - 2 * 1.96 / np.sqrt(500)) < 0.05  # close to the normal-theory width
    assert np.isnan(bootstrap_mean_ci(np.array([np.nan]))[0])


def test_paired_delta_uses_shared_tokens(tmp_path):
    a = load_run(_run_dir(tmp_path / "a", "cv", [1.0, 2.0, 3.0, 4.0]))
    b = load_run(_run_dir(tmp_path / "b", "mlp", [0.5, 1.5, 2.5]))  # t3 missing in b
    long = compare_runs([a, b], n_boot=200)
    ade_b = long[(long.run == b.name) & (long.metric == "ade_m")].iloc[0]
    assert ade_b["n_paired"] == 3 and abs(ade_b["delta"] + 0.5) < 1e-12
    assert ade_b["delta_ci_low"] <= -0.5 <= ade_b["delta_ci_high"]


def test_cli_formats(tmp_path):
    a = _run_dir(tmp_path / "a", "cv", [1.0, 2.0])
    b = _run_dir(tmp_path / "b", "mlp", [0.5, 1.0])
    for fmt in ("table", "markdown", "csv", "html"):
        res = CliRunner().invoke(main, ["compare", str(a), str(b), "--format", fmt])
        assert res.exit_code == 0, res.output
        assert "ADE" in res.output or "ade_m" in res.output
    csv = CliRunner().invoke(main, ["compare", str(a), str(b), "--format", "csv"]).output
    df = pd.read_csv(pd.io.common.StringIO(csv))
    assert set(df["metric"]) == {"ade_m", "fde_m"} and len(df) == 4
    res = CliRunner().invoke(main, ["compare", str(tmp_path)])
    assert res.exit_code == 2 and "not a lead-bench results directory" in res.output
    assert json.loads((a / "summary.json").read_text())["agent"] == "cv"


# --- paired test, published rows, plots ----------------------------------------------------------------------

def _navsim_dir(path, agent, scores):
    rows = [{"token": f"t{i}", "valid": True, "score": s, "ego_progress": min(1.0, s + 0.1), "error": None}
            for i, s in enumerate(scores)]
    write_results(path, rows, {"agent": agent, "benchmark": "navsim", "scorer": "navsim-v1.1 PDMS", "metrics": {}},
                  {})
    return path


def test_paired_bootstrap_p_values():
    rng = np.random.default_rng(3)
    same = paired_bootstrap(np.zeros(50))
    assert same.p_value == 1.0 and same.mean == 0.0
    shifted = paired_bootstrap(rng.normal(0.5, 0.2, 200), n_boot=999)
    assert shifted.p_value == pytest.approx(1 / 1000) and shifted.ci_low > 0
    noise = paired_bootstrap(rng.normal(0.0, 1.0, 200), n_boot=999, seed=1)
    assert noise.p_value > 0.05 and noise.ci_low < 0 < noise.ci_high
    assert np.isnan(paired_bootstrap(np.array([1.0])).p_value) and paired_bootstrap(np.array([])).n == 0
    # the p-value is seeded and symmetric in the sign of the difference
    d = rng.normal(0.1, 1.0, 80)
    assert paired_bootstrap(d).p_value == paired_bootstrap(d).p_value == paired_bootstrap(-d).p_value


def test_paired_test_uses_shared_tokens_and_is_in_every_format(tmp_path):
    a = load_run(_navsim_dir(tmp_path / "a", "cv", [0.2, 0.4, 0.6, 0.8] * 10))
    b = load_run(_navsim_dir(tmp_path / "b", "mlp", [0.3, 0.5, 0.7, 0.9] * 10 + [0.0]))  # t40 only in b
    long = compare_runs([a, b], n_boot=500)
    row = long[(long.run == b.name) & (long.metric == "score")].iloc[0]
    assert row["n_paired"] == 40 and row["delta"] == pytest.approx(0.1)
    assert row["p_value"] == pytest.approx(1 / 501)  # constant +0.1 on every shared token
    assert "p=0.002" in wide_table(long).loc[b.name, "PDMS"]
    csv = CliRunner().invoke(main, ["compare", str(a.path), str(b.path), "--format", "csv"]).output
    assert "p_value" in csv.splitlines()[0]


def test_published_rows_are_marked_with_scorer_and_have_no_interval(tmp_path):
    a = load_run(_navsim_dir(tmp_path / "a", "cv", [0.2, 0.4]))
    refs = published_for({"navsim"})
    assert refs and all(r.benchmark == "navsim" for r in refs)
    long = compare_runs([a], n_boot=100, published=refs)
    pub = long[long.kind == "published"]
    cv = pub[pub.run.str.contains("Constant Velocity")]
    assert cv.set_index("metric").loc["score", "mean"] == pytest.approx(0.206)
    assert all(r.startswith("[published]") and "NAVSIM v1 PDMS" in r for r in pub.run)
    assert pub[["ci_low", "delta", "p_value"]].isna().all().all()
    assert any("unconfirmed" in r for r in pub.run)  # LEAD's 86.4 carries its status
    res = CliRunner().invoke(main, ["compare", str(a.path), "--published", "--format", "markdown"])
    assert res.exit_code == 0 and "[published] TransFuser" in res.output and "84.000" in res.output
    assert {b.benchmark for b in PUBLISHED_BASELINES} == {"navsim", "waymo", "carla"}


def test_plots_show_the_paired_deltas_and_scatter(tmp_path):
    a = load_run(_navsim_dir(tmp_path / "a", "cv", [0.2, 0.4, 0.6, 0.8] * 5))
    b = load_run(_navsim_dir(tmp_path / "b", "mlp", [0.3, 0.3, 0.7, 0.9] * 5))
    long = compare_runs([a, b], n_boot=300, published=published_for({"navsim"}))
    data = plot_deltas(long, tmp_path / "p" / "deltas.png")
    score = data[data.metric == "score"].iloc[0]
    assert score["delta"] == pytest.approx(100 * (0.1 - 0.1 + 0.1 + 0.1) / 4)  # x100 like the tables
    assert score["delta_ci_low"] <= score["delta"] <= score["delta_ci_high"]
    assert (tmp_path / "p" / "deltas.png").stat().st_size > 5000
    assert len(delta_plot_data(long)) == 2  # score and ego_progress of run b; published rows never paired
    scatters = plot_paired_scatter([a, b], ["score", "ego_progress"], tmp_path / "p")
    ((path, pairs),) = scatters.items()
    assert path.name.startswith("scatter_1_") and path.stat().st_size > 5000
    s = pairs[pairs.metric == "score"]
    assert len(s) == 20 and int((s.run > s.base).sum()) == 15 and int((s.run < s.base).sum()) == 5
    written = write_plots([a, b], long, tmp_path / "cli")
    assert [p.name for p in written][:2] == ["means.png", "deltas.png"] and all(p.is_file() for p in written)
    res = CliRunner().invoke(main, ["compare", str(a.path), str(b.path), "--plots", str(tmp_path / "cli2"),
                                    "--published"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "cli2").iterdir())[:2] == ["deltas.png", "means.png"]
