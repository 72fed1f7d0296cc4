"""run -> submit -> score round trip on the embedded world, and the token-set check of `score navsim`."""

from __future__ import annotations

import json

from click.testing import CliRunner

from harness.cli import EXIT_BAD_INPUT, main
from submissions.navsim import SubmissionMetadata, read_submission, write_submission_v1

META = ["--team", "T", "--authors", "A, B", "--email", "a@b.org", "--institution", "I", "--country", "DE"]


def test_submit_then_score_reproduces_the_run(small_world_root, tmp_path):
    run = tmp_path / "run"
    args = ["--data-root", str(small_world_root)]
    assert CliRunner().invoke(main, ["run", "navsim", *args, "--out", str(run)]).exit_code == 0
    sub = tmp_path / "sub.pkl"
    res = CliRunner().invoke(main, ["submit", "navsim", "--run", str(run), "--out", str(sub), *META])
    assert res.exit_code == 0, res.output
    back = read_submission(sub)
    assert back.version == 1 and back.metadata.authors == ("A", "B") and len(back.predictions) == 1
    scored = tmp_path / "scored"
    res = CliRunner().invoke(main, ["score", "navsim", "--submission", str(sub), *args, "--out", str(scored)])
    assert res.exit_code == 0, res.output
    a = json.loads((run / "summary.json").read_text())["metrics"]["score"]
    b = json.loads((scored / "summary.json").read_text())["metrics"]["score"]
    assert abs(a - b) < 1e-4  # the pickle stores float32 poses, as NAVSIM's agents do

    # A submission missing a token is refused with the token listed.
    preds = dict(back.predictions[0])
    dropped = sorted(preds)[0]
    del preds[dropped]
    short = tmp_path / "short.pkl"
    write_submission_v1(short, [preds], SubmissionMetadata("T", "A", "a@b.org", "I", "DE"))
    res = CliRunner().invoke(main, ["score", "navsim", "--submission", str(short), *args])
    assert res.exit_code == EXIT_BAD_INPUT and "1 missing" in res.output and dropped in res.output


def test_privileged_runs_cannot_be_submitted(small_world_root, tmp_path):
    run = tmp_path / "human"
    CliRunner().invoke(main, ["run", "navsim", "--data-root", str(small_world_root), "--agent", "human",
                              "--out", str(run)])
    res = CliRunner().invoke(main, ["submit", "navsim", "--run", str(run), "--out", str(tmp_path / "s.pkl"), *META])
    assert res.exit_code == EXIT_BAD_INPUT and "privileged" in res.output
