"""Line up results directories: aggregate metrics with bootstrap confidence intervals and deltas.

Each run's per-token rows (``rows.parquet``) are resampled over tokens (percentile bootstrap, seeded), so
every mean comes with a 95 % interval. Deltas to the first run are paired: computed on the tokens both
runs scored, with a paired bootstrap interval and a paired bootstrap test (two-sided p-value of "mean
difference = 0", from the same resamples; see :func:`paired_bootstrap`). Published baselines from the specs
(:mod:`harness.published`) can be added as reference rows: marked ``kind == "published"``, with their scorer
version and source, and no interval, delta or p-value (no per-token data exists for them). Pure functions over
DataFrames; the CLI renders them and :mod:`harness.compare_plots` draws them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from harness.errors import DataError
from harness.published import PublishedBaseline

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
    "rfs": True,
    "ade_3s": False,
    "ade_5s": False,
    "driving_score": True,
    "route_completion": True,
    "infraction_penalty": True,
}
SHORT_NAMES = {"score": "PDMS", "no_at_fault_collisions": "NC", "drivable_area_compliance": "DAC",
               "driving_direction_compliance": "DDC", "time_to_collision_within_bound": "TTC", "comfort": "C",
               "ego_progress": "EP", "ade_m": "ADE", "fde_m": "FDE", "rfs": "RFS", "ade_3s": "ADE@3s",
               "ade_5s": "ADE@5s", "driving_score": "DS", "route_completion": "RC", "infraction_penalty": "IP"}


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


@dataclass(frozen=True)
class PairedTest:
    """A paired comparison over shared tokens: mean difference, its bootstrap interval, and the p-value.

    Attributes:
        mean: mean of the per-token differences (run minus reference).
        ci_low / ci_high: percentile-bootstrap interval of that mean.
        p_value: two-sided paired-bootstrap p-value of "mean difference = 0" (NaN for fewer than 2 pairs).
        n: number of finite pairs.
    """

    mean: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int


def paired_bootstrap(diffs: np.ndarray, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> PairedTest:
    """Paired bootstrap over per-token differences (NaN dropped).

    The resampled means give the percentile interval; the same means, shifted to have mean 0 (the null
    hypothesis of no difference), give the two-sided p-value ``(1 + #{|m* - d̄| >= |d̄|}) / (n_boot + 1)``
    (Efron & Tibshirani, *An Introduction to the Bootstrap*, §16.4; the +1 keeps it above 0). Identical runs
    give p = 1; a constant non-zero difference gives the smallest p, ``1 / (n_boot + 1)``.
    """
    d = np.asarray(diffs, dtype=np.float64)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return PairedTest(float("nan"), float("nan"), float("nan"), float("nan"), 0)
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(n_boot, d.size))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    observed = float(d.mean())
    if d.size < 2:
        p = float("nan")
    else:
        # tolerance: resampled means of a constant vector differ from it in the last bits
        extreme = np.abs(means - observed) >= abs(observed) - 1e-12 * max(1.0, abs(observed))
        p = float((1 + np.count_nonzero(extreme)) / (n_boot + 1))
    return PairedTest(observed, float(lo), float(hi), p, int(d.size))


def paired_values(run: Run, base: Run, metric: str) -> pd.DataFrame:
    """Per-token values of ``metric`` in ``base`` and ``run`` on the tokens both scored (finite in both)."""
    a, b = _valid(base).set_index("token"), _valid(run).set_index("token")
    if metric not in a.columns or metric not in b.columns:
        return pd.DataFrame(columns=["token", "base", "run"])
    shared = b.index.intersection(a.index)
    out = pd.DataFrame({"token": shared, "base": a.loc[shared, metric].to_numpy(float),
                        "run": b.loc[shared, metric].to_numpy(float)})
    return out[np.isfinite(out["base"]) & np.isfinite(out["run"])].reset_index(drop=True)


def _valid(run: Run) -> pd.DataFrame:
    rows = run.rows
    if "valid" in rows.columns:
        rows = rows[rows["valid"].astype(bool)]
    return rows


def compare_runs(runs: Sequence[Run], *, n_boot: int = 2000, seed: int = 0,
                 published: Sequence[PublishedBaseline] = ()) -> pd.DataFrame:
    """One row per (run, metric): mean, CI, n, the paired delta to the first run with its CI and p-value;
    then one row per (published baseline, metric) with its value as the mean (``kind == "published"``)."""
    if not runs:
        raise DataError("compare needs at least one results directory")
    metrics = [m for m in METRIC_COLUMNS if any(m in r.rows.columns for r in runs)]
    records = []
    for run in runs:
        rows = _valid(run)
        for m in metrics:
            if m not in rows.columns:
                continue
            values = rows[m].to_numpy(float)
            mean, lo, hi = bootstrap_mean_ci(values, n_boot=n_boot, seed=seed)
            rec = {"run": run.name, "kind": "run", "metric": m, "mean": mean, "ci_low": lo, "ci_high": hi,
                   "n": int(np.isfinite(values).sum()), "delta": np.nan, "delta_ci_low": np.nan,
                   "delta_ci_high": np.nan, "p_value": np.nan, "n_paired": 0,
                   "scorer": run.summary.get("scorer"), "source": str(run.path)}
            if run is not runs[0]:
                pairs = paired_values(run, runs[0], m)
                if len(pairs):
                    t = paired_bootstrap((pairs["run"] - pairs["base"]).to_numpy(), n_boot=n_boot, seed=seed)
                    rec.update(delta=t.mean, delta_ci_low=t.ci_low, delta_ci_high=t.ci_high, p_value=t.p_value,
                               n_paired=t.n)
            records.append(rec)
    for b in published:
        for m, value in b.metrics.items():
            records.append({"run": b.label, "kind": "published", "metric": m, "mean": float(value),
                            "ci_low": np.nan, "ci_high": np.nan, "n": 0, "delta": np.nan, "delta_ci_low": np.nan,
                            "delta_ci_high": np.nan, "p_value": np.nan, "n_paired": 0, "scorer": b.scorer,
                            "source": f"{b.source} [{b.status}]"})
    return pd.DataFrame.from_records(records)


def wide_table(long: pd.DataFrame, *, scale_score: float = 100.0) -> pd.DataFrame:
    """Runs (then published rows) as rows, metrics as ``mean [lo, hi] (Δ … p=…)`` strings; PDMS-style scores
    shown x100. Published values have no interval."""
    out: dict[str, dict[str, str]] = {}
    for rec in long.itertuples():
        k = scale_score if rec.metric == "score" else 1.0
        if np.isfinite(rec.ci_low):
            cell = f"{rec.mean * k:.3f} [{rec.ci_low * k:.3f}, {rec.ci_high * k:.3f}]"
        else:
            cell = f"{rec.mean * k:.3f}"
        if np.isfinite(rec.delta):
            cell += f" Δ{rec.delta * k:+.3f} [{rec.delta_ci_low * k:+.3f}, {rec.delta_ci_high * k:+.3f}]"
            if np.isfinite(getattr(rec, "p_value", np.nan)):
                cell += f" p={rec.p_value:.3g}"
        out.setdefault(rec.run, {})[SHORT_NAMES.get(rec.metric, rec.metric)] = cell
    return pd.DataFrame.from_dict(out, orient="index")
