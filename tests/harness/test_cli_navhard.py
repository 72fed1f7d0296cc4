"""``run navsim --split navhard_two_stage`` -> ``submit navsim --version 2`` -> ``score navsim --metric epdms``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from adapters.navsim.navhard import SPLIT_NAME, read_split
from adapters.navsim.navhard_writer import NavhardOptions
from adapters.navsim.writer import NavsimWriteOptions
from harness.cli import EXIT_BAD_INPUT, main
from harness.embedded import EmbeddedWorldSpec
from harness.world.build import WorldConfig

#: One test log of 11 s: one group with one synthetic pair (2 stage-one + 2 stage-two tokens).
SPEC = EmbeddedWorldSpec(WorldConfig(seed=3, num_logs=2, duration_s=11.0),
                         NavsimWriteOptions(camera_scale=0.05, write_sensors=False))
OPTIONS = NavhardOptions(groups_per_log=1, pairs_per_group=1, camera_scale=0.05, seed=1, write_sensors=False)
META = ["--team", "t", "--authors", "a", "--email", "e@x", "--institution", "i", "--country", "c"]


def _run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def navhard_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from harness.navhard_eval import build_navhard_world

    root = tmp_path_factory.mktemp("navhard-cli")
    build_navhard_world(root, SPEC, OPTIONS)
    return root


def test_two_stage_run_submit_and_score_reproduce(navhard_root: Path, tmp_path: Path) -> None:
    from harness.runner import read_plans
    from submissions.navsim import read_submission

    split = read_split(navhard_root / SPLIT_NAME / f"{SPLIT_NAME}.yaml")
    run = tmp_path / "run"
    res = _run("run", "navsim", "--data-root", str(navhard_root), "--split", "navhard_two_stage", "--metric",
               "epdms", "--out", str(run))
    assert res.exit_code == 0, res.output
    summary = json.loads((run / "summary.json").read_text())
    assert summary["counts"] == {"expected": 4, "scored": 4, "failed": 0} and summary["privileged"] is False
    # plans.npz: the one-stage format (read_plans) with every token of both stages, float32-exact
    plans = read_plans(run)
    assert list(plans) == list(split.stage_one_tokens + split.stage_two_tokens)
    for p in plans.values():
        assert p.poses.shape == (8, 3) and np.array_equal(p.poses, p.poses.astype(np.float32))

    # a two-stage run is not a v1 submission
    res = CliRunner().invoke(main, ["submit", "navsim", "--run", str(run), "--out", str(tmp_path / "v1.pkl"), *META])
    assert res.exit_code == EXIT_BAD_INPUT and "--version 2" in res.output
    assert not (tmp_path / "v1.pkl").exists()

    sub_path = tmp_path / "v2.pkl"
    res = _run("submit", "navsim", "--run", str(run), "--out", str(sub_path), *META, "--version", "2")
    assert res.exit_code == 0, res.output
    sub = read_submission(sub_path)  # the restricted unpickler
    assert sub.version == 2
    assert list(sub.first_stage) == list(split.stage_one_tokens)
    assert list(sub.second_stage) == list(split.stage_two_tokens)
    for t, p in {**sub.first_stage, **sub.second_stage}.items():
        assert np.array_equal(p.poses, plans[t].poses) and p.sampling == plans[t].sampling

    scored = tmp_path / "scored"
    res = _run("score", "navsim", "--submission", str(sub_path), "--data-root", str(navhard_root), "--metric",
               "epdms", "--out", str(scored))
    assert res.exit_code == 0, res.output
    for name in ("navsim_two_stage_score.csv", "rows.csv"):
        want, got = pd.read_csv(run / name), pd.read_csv(scored / name)
        pd.testing.assert_frame_equal(got, want, check_exact=True)
    again = json.loads((scored / "summary.json").read_text())
    assert again["metrics"] == summary["metrics"] and again["epdms"] == summary["epdms"]


def test_v2_submit_checks_every_token_of_each_stage(navhard_root: Path, tmp_path: Path) -> None:
    from harness.navhard_plans import read_stage_plans, write_stage_plans
    from harness.trajectory import NAVSIM_SAMPLING, Trajectory

    split = read_split(navhard_root / SPLIT_NAME / f"{SPLIT_NAME}.yaml")
    one, two = split.stage_one_tokens, split.stage_two_tokens
    plans = {t: Trajectory(np.cumsum(np.full((8, 3), 0.1), axis=0), NAVSIM_SAMPLING) for t in one + two}
    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({"privileged": False, "counts": {"failed": 0}}))
    # a stage-two token missing from the plans (e.g. a hand-edited run): refused, naming the stage and token
    write_stage_plans(run / "plans.npz", {t: p for t, p in plans.items() if t != two[1]}, one, two)
    back = read_stage_plans(run)
    assert back is not None and back.stage_two_tokens == two and two[1] not in back.second
    res = CliRunner().invoke(main, ["submit", "navsim", "--run", str(run), "--out", str(tmp_path / "s.pkl"), *META,
                                    "--version", "2"])
    assert res.exit_code == EXIT_BAD_INPUT
    assert "second_stage_predictions" in res.output and two[1] in res.output
    assert not (tmp_path / "s.pkl").exists()
    # stage membership comes from the file, not from the token length
    with pytest.raises(ValueError, match="both stages"):
        write_stage_plans(run / "plans.npz", plans, one, (one[0],) + two)
