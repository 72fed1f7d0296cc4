"""Line up results directories: aggregate metrics with bootstrap confidence intervals and deltas.

Each run's per-token rows (``rows.parquet``) are resampled over tokens (percentile bootstrap, seeded), so
every mean comes with a 95 % interval. Deltas to the first run are paired: computed on the tokens both
runs scored, with a paired bootstrap interval. Pure functions over DataFrames; the CLI renders them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from harness.errors import DataError

#: Metric columns in display order, with whether higher is better.
METRIC_COLUMNS: dict[str, bool] = {
    "score": True,
    "no_at_fault_collisions": True,
    "drivable_area_compliance": True,
    "driving_direction_compliance": True,
    "time_to_collision_within_bound": True,
    "comfort": True,
    "ego_progress": True,
    "ade_m": False,
    "fde_m": False,
}
SHORT_NAMES = {"score": "PDMS", "no_at_fault_collisions": "NC", "drivable_area_compliance": "DAC",
               "driving_direction_compliance": "DDC", "time_to_collision_within_bound": "TTC", "comfort": "C",
               "ego_progress": "EP", "ade_m": "ADE", "fde_m": "FDE"}


@dataclass(frozen=True)
class Run:
    name: str
    path: Path
    rows: pd.DataFrame
    summary: dict


def load_run(path: str | Path) -> Run:
    """Read a results directory written by a lead-bench run."""
    p = Path(path)
    rows_path, summary_path = p / "rows.parquet", p / "summary.json"
    if not rows_path.is_file() or not summary_path.is_file():
        raise DataError("not a lead-bench results directory (expected rows.parquet and summary.json)", path=p)
    try:
        rows = pd.read_parquet(rows_path)
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read results ({exc})", path=p) from exc
    if "token" not in rows.columns:
        raise DataError("rows.parquet has no 'token' column", path=rows_path)
    name = f"{summary.get('agent', p.name)} ({p.name})"
    return Run(name=name, path=p, rows=rows, summary=summary)


def bootstrap_mean_ci(
    values: np.ndarray, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """Mean and percentile-bootstrap interval of ``values`` (NaN dropped). NaNs if nothing is left."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return (float("nan"),) * 3  # type: ignore[return-value]
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(v.mean()), float(lo), float(hi)


def compare_runs(runs: Sequence[Run], *, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One row per (run, metric): mean, CI, n, and the paired delta to the first run with its CI."""
    if not runs:
        raise DataError("compare needs at least one results directory")
    metrics = [m for m in METRIC_COLUMNS if any(m in r.rows.columns for r in runs)]
    base = runs[0].rows.set_index("token")
    records = []
    for run in runs:
        rows = run.rows.set_index("token")
        valid = rows["valid"].astype(bool) if "valid" in rows.columns else pd.Series(True, index=rows.index)
        for m in metrics:
            if m not in rows.columns:
                continue
            mean, lo, hi = bootstrap_mean_ci(rows.loc[valid, m].to_numpy(float), n_boot=n_boot, seed=seed)
            rec = {"run": run.name, "metric": m, "mean": mean, "ci_low": lo, "ci_high": hi,
                   "n": int(np.isfinite(rows.loc[valid, m].to_numpy(float)).sum()),
                   "delta": np.nan, "delta_ci_low": np.nan, "delta_ci_high": np.nan, "n_paired": 0}
            if run is not runs[0] and m in base.columns:
                shared = rows.index.intersection(base.index)
                d = rows.loc[shared, m].to_numpy(float) - base.loc[shared, m].to_numpy(float)
                dm, dlo, dhi = bootstrap_mean_ci(d, n_boot=n_boot, seed=seed)
                rec.update(delta=dm, delta_ci_low=dlo, delta_ci_high=dhi, n_paired=int(np.isfinite(d).sum()))
            records.append(rec)
    return pd.DataFrame.from_records(records)


def wide_table(long: pd.DataFrame, *, scale_score: float = 100.0) -> pd.DataFrame:
    """Runs as rows, metrics as ``mean [lo, hi] (Δ …)`` strings; PDMS-style scores shown ×100."""
    out: dict[str, dict[str, str]] = {}
    for rec in long.itertuples():
        k = scale_score if rec.metric == "score" else 1.0
        cell = f"{rec.mean * k:.3f} [{rec.ci_low * k:.3f}, {rec.ci_high * k:.3f}]"
        if np.isfinite(rec.delta):
            cell += f" Δ{rec.delta * k:+.3f} [{rec.delta_ci_low * k:+.3f}, {rec.delta_ci_high * k:+.3f}]"
        out.setdefault(rec.run, {})[SHORT_NAMES.get(rec.metric, rec.metric)] = cell
    return pd.DataFrame.from_dict(out, orient="index")
