"""``lead-bench run navsim --metric epdms``, ``score navsim --metric epdms`` and ``submit navsim --version 2``."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from click.testing import CliRunner

from harness.cli import EXIT_BAD_INPUT, main
from metrics.epdms import EPDMS_COLUMNS


def _run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_run_score_and_submit_with_epdms(small_world_root, tmp_path):
    out = tmp_path / "run"
    res = _run("run", "navsim", "--data-root", str(small_world_root), "--out", str(out), "--metric", "epdms")
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scorer"].startswith("navsim-v2.2 EPDMS") and summary["human_filter"] is True
    rows = pd.read_parquet(out / "rows.parquet")
    assert summary["counts"]["expected"] == len(rows) == summary["counts"]["scored"] > 1
    official = pd.read_csv(out / "navsim_epdms_score.csv")
    assert list(official.columns) == ["token", "valid", *EPDMS_COLUMNS]
    assert official["token"].iloc[-1] == "average_all_frames"
    body = official.iloc[:-1]
    assert np.isclose(official["score"].iloc[-1], body["score"].mean())
    # Consecutive test scenes are 0.5 s apart: every scene but the first of each log has EC.
    n_logs = rows["log_name"].nunique()
    assert body["two_frame_extended_comfort"].isna().sum() == n_logs
    # Resume recomputes EC from the stored plans: same numbers.
    res = _run("run", "navsim", "--data-root", str(small_world_root), "--out", str(out), "--metric", "epdms",
               "--resume")
    assert res.exit_code == 0
    assert json.loads((out / "summary.json").read_text())["metrics"] == summary["metrics"]

    # Without the filter no sub-score can be higher.
    raw = tmp_path / "raw"
    assert _run("run", "navsim", "--data-root", str(small_world_root), "--out", str(raw), "--metric", "epdms",
                "--human-filter", "off").exit_code == 0
    raw_rows = pd.read_parquet(raw / "rows.parquet").set_index("token")
    for c in EPDMS_COLUMNS[:8]:
        assert (raw_rows[c] <= rows.set_index("token")[c]).all(), c

    sub = tmp_path / "sub.pkl"
    meta = ["--team", "t", "--authors", "a", "--email", "e@x", "--institution", "i", "--country", "c"]
    assert _run("submit", "navsim", "--run", str(out), "--out", str(sub), *meta).exit_code == 0
    scored = tmp_path / "scored"
    res = _run("score", "navsim", "--submission", str(sub), "--data-root", str(small_world_root), "--metric",
               "epdms", "--out", str(scored))
    assert res.exit_code == 0, res.output
    again = pd.read_csv(scored / "navsim_epdms_score.csv")
    pd.testing.assert_frame_equal(again, official)
    # A one-stage run has no synthetic (stage-two) tokens: --version 2 refuses with a message.
    res = CliRunner().invoke(main, ["submit", "navsim", "--run", str(out), "--out", str(tmp_path / "v2.pkl"),
                                    *meta, "--version", "2"])
    assert res.exit_code == EXIT_BAD_INPUT and "stage-two" in res.output


def test_submit_version_2_splits_stages_by_token_length(tmp_path):
    from submissions.navsim import read_submission

    run = tmp_path / "run"
    run.mkdir()
    tokens = ["a" * 16, "b" * 16, "c" * 17, "d" * 17, "e" * 17]
    poses = np.cumsum(np.full((len(tokens), 8, 3), 0.1), axis=1)
    np.savez(run / "plans.npz", tokens=np.array(tokens), poses=poses, interval_s=np.array(0.5))
    (run / "summary.json").write_text(json.dumps({"privileged": False, "counts": {"failed": 0}}))
    out = tmp_path / "v2.pkl"
    res = _run("submit", "navsim", "--run", str(run), "--out", str(out), "--team", "t", "--authors", "a",
               "--email", "e@x", "--institution", "i", "--country", "c", "--version", "2")
    assert res.exit_code == 0, res.output
    sub = read_submission(out)
    assert sub.version == 2
    assert sorted(sub.first_stage) == tokens[:2] and sorted(sub.second_stage) == tokens[2:]
    np.testing.assert_allclose(sub.second_stage["c" * 17].poses, poses[2], rtol=1e-6)


def test_reactive_traffic_is_refused_on_one_stage_splits(small_world_root, tmp_path):
    # One-stage EPDMS replays the log; asking for reactive traffic must not be silently ignored.
    res = CliRunner().invoke(main, ["run", "navsim", "--data-root", str(small_world_root), "--metric", "epdms",
                                    "--traffic", "reactive", "--out", str(tmp_path / "run")])
    assert res.exit_code == EXIT_BAD_INPUT
    assert "navhard_two_stage" in res.output
    assert not (tmp_path / "run").exists()
