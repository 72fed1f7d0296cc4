"""The CLI as a user meets it: exit codes, messages without tracebacks, results on disk."""

from __future__ import annotations

import json
import shutil

import pandas as pd
from click.testing import CliRunner

from harness.cli import EXIT_BAD_INPUT, main


def _run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_help_lists_commands():
    res = _run("--help")
    assert res.exit_code == 0
    for word in ("run", "world", "list"):
        assert word in res.output


def test_list_shows_components():
    res = _run("list")
    assert res.exit_code == 0 and "navsim" in res.output and "cv" in res.output


def test_run_navsim_writes_results(small_world_root, tmp_path):
    out = tmp_path / "run"
    res = _run("run", "navsim", "--data-root", str(small_world_root), "--split", "test", "--out", str(out))
    assert res.exit_code == 0, res.output
    rows = pd.read_parquet(out / "rows.parquet")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["expected"] == len(rows) == summary["counts"]["scored"] > 0
    assert summary["counts"]["failed"] == 0
    assert rows["valid"].all() and (rows["ade_m"] >= 0).all()
    assert abs(summary["metrics"]["ade_m"] - rows["ade_m"].mean()) < 1e-9
    assert (out / "rows.csv").is_file() and (out / "config.json").is_file()
    assert summary["provenance"]["lead_bench_version"]
    # Resume: nothing left to do, same numbers.
    res = _run("run", "navsim", "--data-root", str(small_world_root), "--split", "test", "--out", str(out), "--resume")
    assert res.exit_code == 0
    assert json.loads((out / "summary.json").read_text())["metrics"] == summary["metrics"]


def test_bad_inputs_exit_2_with_a_message(small_world_root, tmp_path):
    res = CliRunner().invoke(main, ["run", "navsim", "--data-root", str(tmp_path / "nope")])
    assert res.exit_code == EXIT_BAD_INPUT and "does not exist" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(main, ["run", "navsim", "--data-root", str(small_world_root), "--agent", "nope"])
    assert res.exit_code == EXIT_BAD_INPUT and "known agents: cv" in res.output
    res = CliRunner().invoke(main, ["run", "navsim", "--data-root", str(small_world_root), "--split", "navtest"])
    assert res.exit_code == EXIT_BAD_INPUT and "navsim_logs/navtest" in res.output
    # A corrupt pickle: exit 2 naming the file, no traceback.
    bad = tmp_path / "bad"
    shutil.copytree(small_world_root / "navsim_logs", bad / "navsim_logs")
    shutil.copytree(small_world_root / "maps", bad / "maps")
    log = sorted((bad / "navsim_logs" / "test").glob("*.pkl"))[0]
    log.write_bytes(log.read_bytes()[:500])
    res = CliRunner().invoke(main, ["run", "navsim", "--data-root", str(bad), "--out", str(tmp_path / "o")])
    assert res.exit_code == EXIT_BAD_INPUT and log.name in res.output and "Traceback" not in res.output


def test_unknown_map_location_is_a_clear_error(small_world_root, tmp_path):
    res = CliRunner().invoke(main, ["run", "navsim", "--data-root", str(small_world_root),
                                    "--maps-root", str(tmp_path / "nomaps"), "--out", str(tmp_path / "o")])
    assert res.exit_code == EXIT_BAD_INPUT and "nomaps" in res.output


def test_world_build_rejects_bad_options(tmp_path):
    res = CliRunner().invoke(main, ["world", "build", "--out", str(tmp_path / "w"), "--logs", "1"])
    assert res.exit_code == EXIT_BAD_INPUT and "--logs" in res.output
