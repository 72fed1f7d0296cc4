"""``lead-bench run/submit/score waymo`` on a tiny WOD-E2E data root: round trip, counts and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.cli_common import EXIT_BAD_INPUT, EXIT_OK, EXIT_PARTIAL
from harness.waymo_runner import read_predictions
from submissions.waymo import read_submission_archive
from tests.harness.waymo_mini import (
    CLUSTERS,
    LABELLED_FRAME,
    TEST_SEQUENCES,
    VAL_SEQUENCES,
    write_mini_dataset,
)

META = ["--account", "me@example.org", "--method-name", "cv-test", "--authors", "Ada, Grace", "--affiliation", "Lab",
        "--num-params", "0k", "--uses-public-model-pretraining", "false"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mini_dataset(tmp_path_factory.mktemp("waymo-mini"))


def _invoke(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(main, list(args))
    return res.exit_code, res.output + (repr(res.exception) if res.exception and res.exit_code == 3 else "")


def test_run_submit_score_round_trip(data_root: Path, tmp_path: Path) -> None:
    run, sub, scored = tmp_path / "run", tmp_path / "sub.tar.gz", tmp_path / "scored"
    code, out = _invoke("run", "waymo", "--data-root", str(data_root), "--out", str(run))
    assert code == EXIT_OK, out
    assert "mean of 2 cluster means (leaderboard)" in out and "Intersection" in out
    assert ("12 frames in val: 4 with rater labels, 4 planned and scored, 0 failed; 8 without rater labels not "
            "planned (skipped)") in out
    summary = json.loads((run / "summary.json").read_text())
    assert summary["counts"] == {"expected": 12, "scored": 4, "failed": 0, "skipped": 8,
                                 "corrupt_records_skipped": 0}
    rows = pd.read_parquet(run / "rows.parquet")
    assert list(rows.columns[:8]) == ["token", "frame_name", "sequence_id", "cluster", "rfs",
                                      "fully_inside_trust_region", "ade_3s", "ade_5s"]
    assert sorted(rows.frame_name) == [f"{s}-{LABELLED_FRAME:03d}" for s in VAL_SEQUENCES]
    assert dict(zip(rows.sequence_id, rows.cluster)) == CLUSTERS
    m = summary["metrics"]
    per = rows.groupby("cluster").rfs.mean()
    assert m["rfs"] == pytest.approx(per.mean(), abs=1e-12) and m["rfs_frame_mean"] == pytest.approx(rows.rfs.mean())
    assert m["rfs"] != pytest.approx(m["rfs_frame_mean"])  # clusters of 3 and 1 frames weigh the same
    preds, required, split = read_predictions(run)
    assert split == "val" and sorted(required) == sorted(preds) == sorted(rows.frame_name)

    code, out = _invoke("submit", "waymo", "--run", str(run), "--out", str(sub), *META, "--shards", "2")
    assert code == EXIT_OK, out
    got, meta = read_submission_archive(sub)
    assert meta.authors == ("Ada", "Grace") and meta.num_model_parameters == "0K"
    for name, xy in preds.items():
        np.testing.assert_array_equal(got[name], xy.astype(np.float32))

    code, out = _invoke("score", "waymo", "--submission", str(sub), "--data-root", str(data_root), "--out",
                        str(scored))
    assert code == EXIT_OK, out
    assert "val: 12 frames in 1 shard(s) (1 indexed from the cache)" in out  # indexed by `run waymo` above
    again = json.loads((scored / "summary.json").read_text())
    assert again["counts"]["scored"] == 4 and again["counts"]["skipped"] == 8
    # The archive holds float32 positions: the scores agree to float32 rounding.
    assert again["metrics"]["rfs"] == pytest.approx(m["rfs"], abs=1e-5)
    assert again["metrics"]["ade_5s_m"] == pytest.approx(m["ade_5s_m"], abs=1e-5)


def test_human_replay_scores_the_top_rater_exactly_and_cannot_be_submitted(data_root: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    code, out = _invoke("run", "waymo", "--data-root", str(data_root), "--agent", "human", "--out", str(run))
    assert code == EXIT_OK, out
    summary = json.loads((run / "summary.json").read_text())
    # The logged future of the mini world is the 9-rated rater's path: RFS 9 everywhere, ADE 0.
    assert summary["privileged"] and summary["metrics"]["rfs"] == 9.0 and summary["metrics"]["ade_5s_m"] == 0.0
    code, out = _invoke("submit", "waymo", "--run", str(run), "--out", str(tmp_path / "s.tar.gz"), *META)
    assert code == EXIT_BAD_INPUT and "privileged" in out


def test_test_split_predicts_the_manifest_frames_only(data_root: Path, tmp_path: Path) -> None:
    run, sub = tmp_path / "run", tmp_path / "sub.tar.gz"
    code, out = _invoke("run", "waymo", "--data-root", str(data_root), "--split", "test", "--out", str(run))
    assert code == EXIT_OK, out
    preds, required, split = read_predictions(run)
    want = sorted(f"{s}-{LABELLED_FRAME:03d}" for s in TEST_SEQUENCES)
    assert split == "test" and sorted(preds) == sorted(required) == want
    summary = json.loads((run / "summary.json").read_text())
    assert summary["counts"]["predicted"] == 2 and summary["rfs"] is None
    code, out = _invoke("submit", "waymo", "--run", str(run), "--out", str(sub), *META)
    assert code == EXIT_OK, out
    assert sorted(read_submission_archive(sub)[0]) == want
    # A test archive scored against val matches no labelled frame: every labelled frame fails (exit 1).
    code, out = _invoke("score", "waymo", "--submission", str(sub), "--data-root", str(data_root), "--out",
                        str(tmp_path / "scored"))
    assert code == EXIT_PARTIAL and "another split" in out


def test_manifest_frames_missing_from_the_shards_fail(data_root: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({TEST_SEQUENCES[0]: LABELLED_FRAME, "f" * 32: 7}))
    code, out = _invoke("run", "waymo", "--data-root", str(data_root), "--split", "test", "--manifest",
                        str(manifest), "--out", str(tmp_path / "run"))
    assert code == EXIT_PARTIAL, out
    failures = pd.read_csv(tmp_path / "run" / "failures.csv")
    assert list(failures.token) == ["f" * 32 + "-007"] and "not in the test shards" in failures.error[0]
    code, out = _invoke("submit", "waymo", "--run", str(tmp_path / "run"), "--out", str(tmp_path / "s.tar.gz"),
                        *META)
    assert code == EXIT_BAD_INPUT and "failed frame" in out


def test_score_exit_codes(data_root: Path, tmp_path: Path) -> None:
    run, sub = tmp_path / "run", tmp_path / "sub.tar.gz"
    assert _invoke("run", "waymo", "--data-root", str(data_root), "--out", str(run))[0] == EXIT_OK
    assert _invoke("submit", "waymo", "--run", str(run), "--out", str(sub), *META)[0] == EXIT_OK
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(b"not an archive")
    code, out = _invoke("score", "waymo", "--submission", str(broken), "--data-root", str(data_root))
    assert code == EXIT_BAD_INPUT and "not a gzip file" in out
    code, out = _invoke("score", "waymo", "--submission", str(sub), "--data-root", str(tmp_path / "nowhere"))
    assert code == EXIT_BAD_INPUT and "is not a directory" in out
    wrong = tmp_path / "clusters.json"
    wrong.write_text(json.dumps({VAL_SEQUENCES[0]: "Intersection"}))
    code, out = _invoke("score", "waymo", "--submission", str(sub), "--data-root", str(data_root), "--clusters",
                        str(wrong), "--out", str(tmp_path / "s"))
    assert code == EXIT_BAD_INPUT and "no scenario cluster" in out


@pytest.mark.parametrize("change, message", [
    (["--num-params", "1.5B"], "num_model_parameters"),
    (["--account", "nobody"], "account_name"),
    (["--uses-public-model-pretraining", "true"], "public_model_names"),
    (["--shards", "9"], "shards"),
])
def test_submit_validation_errors(data_root: Path, tmp_path: Path, change: list[str], message: str) -> None:
    run = tmp_path / "run"
    assert _invoke("run", "waymo", "--data-root", str(data_root), "--out", str(run))[0] == EXIT_OK
    code, out = _invoke("submit", "waymo", "--run", str(run), "--out", str(tmp_path / "s.tar.gz"), *META, *change)
    assert code == EXIT_BAD_INPUT and message in out, out
    assert not (tmp_path / "s.tar.gz").exists()


def _damaged_copy(data_root: Path, tmp_path: Path, flip_at) -> tuple[Path, str]:
    """A copy of the data root whose val shard has one byte flipped in the second labelled frame's record."""
    import shutil

    from adapters.waymo.reader import WaymoReader

    root = tmp_path / "damaged"
    shutil.copytree(data_root, root)
    reader = WaymoReader(root, "val")
    name = [n for n, e in reader.entries().items() if e.has_rater_labels][1]
    loc = reader.entry(name).location
    raw = bytearray(loc.shard.read_bytes())
    raw[flip_at(loc)] ^= 0x01
    loc.shard.write_bytes(bytes(raw))
    return root, name


def test_data_crc_mismatch_in_a_labelled_frame_fails_it(data_root: Path, tmp_path: Path) -> None:
    # A flipped bit in the record's tail (states and raters): the labels are CRC-checked before scoring.
    root, name = _damaged_copy(data_root, tmp_path, lambda loc: loc.offset + 12 + loc.length - 20)
    for skip in ([], ["--skip-corrupt"]):
        code, out = _invoke("run", "waymo", "--data-root", str(root), "--out", str(tmp_path / "run"), *skip)
        assert code == EXIT_PARTIAL, out
        failures = pd.read_csv(tmp_path / "run" / "failures.csv")
        assert list(failures.token) == [name] and "data CRC mismatch" in failures.error[0]
        assert "at byte offset" in failures.error[0] and "val_202504211843" in failures.error[0]
        assert "4 with rater labels, 3 planned and scored, 1 failed" in out


def test_length_crc_mismatch_stops_or_is_skipped_and_counted(data_root: Path, tmp_path: Path) -> None:
    root, name = _damaged_copy(data_root, tmp_path, lambda loc: loc.offset + 9)
    code, out = _invoke("run", "waymo", "--data-root", str(root), "--out", str(tmp_path / "run"))
    assert code == EXIT_BAD_INPUT and "length CRC mismatch" in out and "byte offset" in out
    code, out = _invoke("run", "waymo", "--data-root", str(root), "--out", str(tmp_path / "run"), "--skip-corrupt")
    assert code == EXIT_PARTIAL, out
    assert "11 frames in val: 3 with rater labels, 3 planned and scored" in out
    assert "1 corrupt record(s) skipped (--skip-corrupt)" in out
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["counts"]["corrupt_records_skipped"] == 1 and summary["counts"]["expected"] == 11


def test_wrong_cluster_mapping_is_refused_before_planning(data_root: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.waymo_runner as runner

    wrong = tmp_path / "clusters.json"
    wrong.write_text(json.dumps({VAL_SEQUENCES[0]: "Intersection"}))

    def no_planning(*args, **kwargs):
        raise AssertionError("planned although the cluster mapping is wrong")

    monkeypatch.setattr(runner, "plan_frames", no_planning)
    code, out = _invoke("run", "waymo", "--data-root", str(data_root), "--clusters", str(wrong), "--out",
                        str(tmp_path / "run"))
    assert code == EXIT_BAD_INPUT and "no scenario cluster" in out
