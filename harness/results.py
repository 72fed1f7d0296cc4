"""Run results on disk: per-token rows, aggregate summary, resolved config and provenance.

Layout of a results directory::

    rows.parquet, rows.csv   one row per expected token (failed ones included, with their error)
    summary.json             aggregate metrics, counts of expected / scored / failed tokens, provenance
    config.json              the resolved configuration of the run
    failures.csv             the failed tokens and their errors (only if any failed)
    progress.jsonl           rows as they complete, so an interrupted run can resume

Everything but ``progress.jsonl`` is written to a temporary file and renamed into place.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

import harness
from harness.atomic import atomic_write_text, temp_path


def atomic_write_frame(df: pd.DataFrame, path: Path) -> None:
    """Write ``df`` as parquet or CSV (by suffix) through a temporary file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    if path.suffix == ".parquet":
        df.to_parquet(tmp, index=False)
    else:
        df.to_csv(tmp, index=False)
    os.replace(tmp, path)


def git_revision() -> str | None:
    """The git revision of the lead-bench checkout, if it is one."""
    here = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def provenance() -> dict[str, Any]:
    """Versions and revision recorded with every run."""
    versions = {}
    for pkg in ("numpy", "shapely", "pandas", "torch", "pyogrio"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "lead_bench_version": harness.__version__,
        "git_revision": git_revision(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
    }


@dataclass
class ProgressLog:
    """Append-only JSON-lines log of finished rows; lets a run resume where it stopped."""

    path: Path
    _done: dict[str, dict[str, Any]] = field(default_factory=dict)

    def load(self) -> dict[str, dict[str, Any]]:
        """Rows already finished (a torn last line from a crash is ignored)."""
        self._done = {}
        if self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                self._done[str(row["token"])] = row
        return dict(self._done)

    def append(self, rows: Iterable[Mapping[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, default=float) + "\n")
                self._done[str(row["token"])] = dict(row)
            fh.flush()
            os.fsync(fh.fileno())


def write_results(
    out_dir: Path,
    rows: Sequence[Mapping[str, Any]],
    summary: Mapping[str, Any],
    config: Mapping[str, Any],
    *,
    columns: Sequence[str] | None = None,
) -> None:
    """Write the results directory (rows, failures, summary with provenance, config)."""
    df = pd.DataFrame(list(rows), columns=list(columns) if columns is not None else None)
    atomic_write_frame(df, out_dir / "rows.parquet")
    atomic_write_frame(df, out_dir / "rows.csv")
    if "error" in df.columns:
        failed = df[df["error"].notna() & (df["error"].astype(str) != "")]
        if len(failed):
            atomic_write_frame(failed[["token", "error"]], out_dir / "failures.csv")
    atomic_write_text(out_dir / "config.json", json.dumps(config, indent=2, default=str) + "\n")
    full = dict(summary)
    full["provenance"] = provenance()
    atomic_write_text(out_dir / "summary.json", json.dumps(full, indent=2, default=float) + "\n")
