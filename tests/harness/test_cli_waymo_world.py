"""``lead-bench run waymo -> submit waymo -> score waymo`` on the embedded world's WOD-E2E data (``waymo/``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from adapters.waymo.layout import default_test_manifest_path, read_test_manifest, required_frame_names
from harness.cli import main
from harness.cli_common import EXIT_BAD_INPUT, EXIT_OK
from harness.waymo_runner import read_predictions
from submissions.waymo import read_submission_archive

META = ["--account", "me@example.org", "--method-name", "cv", "--authors", "Ada", "--affiliation", "Lab",
        "--num-params", "1K", "--uses-public-model-pretraining", "false"]


def _invoke(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(main, list(args))
    return res.exit_code, res.output + (repr(res.exception) if res.exit_code == 3 else "")


@pytest.fixture(scope="module")
def waymo_root(small_world_root: Path) -> Path:
    return small_world_root / "waymo"


def test_val_round_trip_on_the_embedded_world(waymo_root: Path, tmp_path: Path) -> None:
    run, sub, scored = tmp_path / "run", tmp_path / "val.tar.gz", tmp_path / "scored"
    code, out = _invoke("run", "waymo", "--data-root", str(waymo_root), "--split", "val", "--out", str(run))
    assert code == EXIT_OK, out
    summary = json.loads((run / "summary.json").read_text())
    counts = summary["counts"]
    rows = pd.read_parquet(run / "rows.parquet")
    # One labelled frame per val sequence; every other frame is skipped and counted.
    assert counts["scored"] == len(rows) == rows.sequence_id.nunique() >= 2
    assert counts["expected"] == counts["scored"] + counts["skipped"] and counts["skipped"] > 0
    assert rows.cluster.notna().all() and rows.rfs.between(0, 10).all()
    m = summary["metrics"]
    assert m["rfs"] == pytest.approx(rows.groupby("cluster").rfs.mean().mean(), abs=1e-12)

    code, out = _invoke("submit", "waymo", "--run", str(run), "--out", str(sub), *META, "--shards", "2")
    assert code == EXIT_OK, out
    code, out = _invoke("score", "waymo", "--submission", str(sub), "--data-root", str(waymo_root), "--out",
                        str(scored))
    assert code == EXIT_OK, out
    again = json.loads((scored / "summary.json").read_text())
    assert again["counts"] == {**counts, "unmatched_predictions": 0}
    assert again["metrics"]["rfs"] == pytest.approx(m["rfs"], abs=1e-5)
    assert again["metrics"]["ade_3s_m"] == pytest.approx(m["ade_3s_m"], abs=1e-5)


def test_human_replay_and_test_split_on_the_embedded_world(waymo_root: Path, tmp_path: Path) -> None:
    code, out = _invoke("run", "waymo", "--data-root", str(waymo_root), "--agent", "human", "--out",
                        str(tmp_path / "human"))
    assert code == EXIT_OK, out
    human = json.loads((tmp_path / "human" / "summary.json").read_text())["metrics"]
    assert 0.0 <= human["rfs"] <= 10.0 and human["ade_5s_m"] >= 0.0

    code, out = _invoke("run", "waymo", "--data-root", str(waymo_root), "--split", "test", "--out",
                        str(tmp_path / "test"))
    assert code == EXIT_OK, out
    preds, required, split = read_predictions(tmp_path / "test")
    manifest = required_frame_names(read_test_manifest(default_test_manifest_path(waymo_root)))
    assert split == "test" and sorted(preds) == sorted(required) == sorted(manifest)
    code, out = _invoke("submit", "waymo", "--run", str(tmp_path / "test"), "--out", str(tmp_path / "t.tar.gz"),
                        *META)
    assert code == EXIT_OK, out
    got, _ = read_submission_archive(tmp_path / "t.tar.gz")
    for name in manifest:
        np.testing.assert_array_equal(got[name], preds[name].astype(np.float32))
    # Test labels are hidden: scoring is for labelled splits only.
    code, out = _invoke("score", "waymo", "--submission", str(tmp_path / "t.tar.gz"), "--data-root",
                        str(waymo_root), "--split", "test")
    assert code == EXIT_BAD_INPUT and "'test' is not one of" in out
