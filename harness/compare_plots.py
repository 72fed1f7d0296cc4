"""Pictures for `lead-bench compare --plots DIR`.

- ``deltas.png``: per metric, each run's paired difference to the first run (mean over shared tokens) with its
  95 % bootstrap interval and p-value; a zero line; the metric's better direction in its title.
- ``means.png``: per metric that a run has, each run's mean with its interval, and published baselines as hollow
  diamonds (labelled ``[published] <method>``; split and scorer are in the tables).
- ``scatter_<k>_<run>.png``: for run k >= 1, one panel per metric: the first run's per-token value against
  run k's on the shared tokens, with the diagonal (points above it: run k scored higher).

Each function returns the data it drew, so tests check what a reader sees. Figures are built with
``matplotlib.figure.Figure`` (no pyplot global state) and written atomically.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from harness.atomic import atomic_write_bytes
from harness.compare import METRIC_COLUMNS, SHORT_NAMES, Run, paired_values


def _scale(metric: str) -> float:
    return 100.0 if metric == "score" else 1.0


def _save(fig: Figure, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())


def _title(metric: str) -> str:
    arrow = "higher is better" if METRIC_COLUMNS.get(metric, True) else "lower is better"
    return f"{SHORT_NAMES.get(metric, metric)} ({arrow})"


def delta_plot_data(long: pd.DataFrame) -> pd.DataFrame:
    """The paired deltas the deltas plot shows (runs after the first, finite deltas), in display units."""
    runs = long[(long["kind"] == "run") & np.isfinite(long["delta"])].copy()
    k = runs["metric"].map(_scale)
    for col in ("delta", "delta_ci_low", "delta_ci_high"):
        runs[col] = runs[col] * k
    return runs[["run", "metric", "delta", "delta_ci_low", "delta_ci_high", "p_value", "n_paired"]].reset_index(
        drop=True)


def plot_deltas(long: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Draw ``deltas.png`` (see module docstring); returns :func:`delta_plot_data`."""
    data = delta_plot_data(long)
    metrics = list(dict.fromkeys(data["metric"])) or ["(none)"]
    fig = Figure(figsize=(7.5, 1.2 + 1.1 * len(metrics) * max(1, data["run"].nunique())))
    axes = fig.subplots(len(metrics), 1, squeeze=False)[:, 0]
    for ax, metric in zip(axes, metrics, strict=True):
        sub = data[data["metric"] == metric].reset_index(drop=True)
        y = np.arange(len(sub))
        if len(sub):
            xerr = np.vstack([sub["delta"] - sub["delta_ci_low"], sub["delta_ci_high"] - sub["delta"]])
            ax.errorbar(sub["delta"], y, xerr=np.clip(xerr, 0, None), fmt="o", capsize=4, color="tab:blue")
            for yi, row in zip(y, sub.itertuples(), strict=True):
                ax.annotate(f"p={row.p_value:.3g}, n={row.n_paired}", (row.delta, yi), textcoords="offset points",
                            xytext=(0, 7), ha="center", fontsize=7)
        ax.axvline(0.0, color="grey", lw=1, ls="--")
        ax.set_yticks(y, [str(r)[:40] for r in sub["run"]], fontsize=7)
        ax.set_ylim(-0.8, max(len(sub) - 0.2, 0.8))
        ax.set_title(f"Δ {_title(metric)} vs first run, 95% CI", fontsize=9)
    fig.tight_layout()
    _save(fig, path)
    return data


def means_plot_data(long: pd.DataFrame) -> pd.DataFrame:
    """Means (runs with intervals, published rows without) in display units, as the means plot shows them."""
    data = long.copy()
    k = data["metric"].map(_scale)
    for col in ("mean", "ci_low", "ci_high"):
        data[col] = data[col] * k
    return data[["run", "kind", "metric", "mean", "ci_low", "ci_high"]].reset_index(drop=True)


def plot_means(long: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Draw ``means.png``: per metric, run means with 95 % intervals and published values (hollow diamonds)."""
    data = means_plot_data(long)
    metrics = list(dict.fromkeys(data.loc[data["kind"] == "run", "metric"]))  # published-only metrics: not drawn
    data = data[data["metric"].isin(metrics)].reset_index(drop=True)
    fig = Figure(figsize=(7.5, 1.0 + 0.35 * len(data)))
    axes = fig.subplots(len(metrics), 1, squeeze=False)[:, 0]
    for ax, metric in zip(axes, metrics, strict=True):
        sub = data[data["metric"] == metric].reset_index(drop=True)
        y = np.arange(len(sub))
        run = sub["kind"] == "run"
        xerr = np.vstack([sub["mean"] - sub["ci_low"], sub["ci_high"] - sub["mean"]])
        ax.errorbar(sub.loc[run, "mean"], y[run], xerr=np.clip(xerr[:, run.to_numpy()], 0, None), fmt="o",
                    capsize=4, color="tab:blue", label="lead-bench run")
        if (~run).any():
            ax.plot(sub.loc[~run, "mean"], y[~run], "D", mfc="none", color="tab:red", label="published")
        ax.set_yticks(y, [str(r).split(" (")[0][:40] for r in sub["run"]], fontsize=7)
        ax.set_title(_title(metric), fontsize=9)
    axes[0].legend(fontsize=7, loc="best")
    fig.tight_layout()
    _save(fig, path)
    return data


def plot_paired_scatter(runs: Sequence[Run], metrics: Sequence[str], out_dir: Path) -> dict[Path, pd.DataFrame]:
    """Draw one ``scatter_<k>_<run>.png`` per run after the first; returns path -> the pairs drawn
    (columns ``metric, token, base, run`` in display units)."""
    out: dict[Path, pd.DataFrame] = {}
    for k, run in enumerate(runs[1:], start=1):
        frames = []
        for m in metrics:
            pairs = paired_values(run, runs[0], m)
            if len(pairs):
                pairs = pairs.assign(metric=m, base=pairs["base"] * _scale(m), run=pairs["run"] * _scale(m))
                frames.append(pairs[["metric", "token", "base", "run"]])
        if not frames:
            continue
        data = pd.concat(frames, ignore_index=True)
        shown = list(dict.fromkeys(data["metric"]))
        cols = min(3, len(shown))
        rows = -(-len(shown) // cols)
        fig = Figure(figsize=(3.4 * cols, 3.2 * rows))
        axes = fig.subplots(rows, cols, squeeze=False).ravel()
        for ax, m in zip(axes, shown, strict=False):
            sub = data[data["metric"] == m]
            lo = float(min(sub["base"].min(), sub["run"].min()))
            hi = float(max(sub["base"].max(), sub["run"].max()))
            pad = 0.05 * (hi - lo) or 0.5
            ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="grey", lw=1, ls="--")
            ax.scatter(sub["base"], sub["run"], s=10, alpha=0.6, color="tab:blue")
            above = int((sub["run"] > sub["base"]).sum())
            below = int((sub["run"] < sub["base"]).sum())
            ax.set_title(f"{_title(m)}\n{above} tokens above, {below} below", fontsize=8)
            ax.set_xlabel(str(runs[0].name)[:40], fontsize=7)
            ax.set_ylabel(str(run.name)[:40], fontsize=7)
        for ax in axes[len(shown):]:
            ax.set_visible(False)
        fig.tight_layout()
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", run.path.name).strip("-") or "run"
        path = out_dir / f"scatter_{k}_{slug}.png"
        _save(fig, path)
        out[path] = data
    return out


def write_plots(runs: Sequence[Run], long: pd.DataFrame, out_dir: Path) -> list[Path]:
    """All comparison pictures into ``out_dir``; returns the files written."""
    written = [out_dir / "means.png"]
    plot_means(long, written[0])
    if len(runs) > 1:
        plot_deltas(long, out_dir / "deltas.png")
        written.append(out_dir / "deltas.png")
        metrics = [m for m in METRIC_COLUMNS if m in set(long.loc[long["kind"] == "run", "metric"])]
        written.extend(plot_paired_scatter(runs, metrics, out_dir))
    return written
