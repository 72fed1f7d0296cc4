"""`lead-bench compare`: bootstrap intervals, paired deltas, output formats."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from click.testing import CliRunner

from harness.cli import main
from harness.compare import bootstrap_mean_ci, compare_runs, load_run
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
