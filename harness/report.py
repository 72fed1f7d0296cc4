"""``lead-bench report``: one self-contained HTML page per run (no server, no external assets, no scripts).

The page shows headline metrics with 95 % bootstrap intervals (``harness.compare.bootstrap_mean_ci``),
per-sub-metric bars, score distributions, the failure breakdown (which rule zeroed how many scenes, and the
tokens that failed to score, grouped by error), the worst scenes with their ``explain`` pictures, and the
run's provenance (config, versions, git revision, expected / scored / failed counts). Images are inline
base64 PNGs and the CSS is inline.

:func:`build_report` gathers the data (a typed :class:`RunReport`, which tests check), :func:`render_html`
writes the page, :func:`write_report` does both and writes atomically. Works for NAVSIM (PDMS and EPDMS),
Waymo and CARLA runs; CARLA has no per-scene pictures.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from harness.atomic import atomic_write_text
from harness.compare import METRIC_COLUMNS, SHORT_NAMES, Run, bootstrap_mean_ci, load_run

#: The column each benchmark ranks scenes by, and the sub-score columns whose 0 is a broken rule.
MAIN_SCORE = {"navsim": "score", "waymo": "rfs", "carla": "driving_score"}
_EXTRA_SHORT = {"traffic_light_compliance": "TLC", "lane_keeping": "LK", "history_comfort": "HC",
                "two_frame_extended_comfort": "EC", "fully_inside_trust_region": "inside TR"}
#: NAVSIM sub-scores in display order (PDMS and EPDMS).
NAVSIM_RULES = ("no_at_fault_collisions", "drivable_area_compliance", "driving_direction_compliance",
                "traffic_light_compliance", "time_to_collision_within_bound", "comfort", "lane_keeping",
                "history_comfort", "two_frame_extended_comfort", "ego_progress")

#: Renders explain pictures of some rows: ``[(token, row)] -> [(png or None, note)]``.
PictureSource = Callable[[Sequence[tuple[str, dict[str, Any]]]], list[tuple[bytes | None, str]]]


def short(metric: str) -> str:
    return SHORT_NAMES.get(metric, _EXTRA_SHORT.get(metric, metric))


@dataclass(frozen=True)
class Headline:
    """One metric's mean over scored rows with its 95 % percentile-bootstrap interval."""

    metric: str
    short: str
    mean: float
    ci_low: float
    ci_high: float
    n: int
    higher_is_better: bool


@dataclass(frozen=True)
class RuleCount:
    """How many scored scenes broke one rule.

    Attributes:
        rule: e.g. ``"NC = 0"``; column: the row column.
        scenes: scored scenes where it holds; share: scenes / scored.
        zeroed_score: of those, scenes whose main score is 0 (for multipliers, this rule alone suffices).
    """

    rule: str
    column: str
    scenes: int
    share: float
    zeroed_score: int


@dataclass(frozen=True)
class FailureGroup:
    """Tokens that failed to score, grouped by error kind (the text before the first ':')."""

    kind: str
    count: int
    example_tokens: tuple[str, ...]
    example_error: str


@dataclass(frozen=True)
class WorstScene:
    token: str
    score: float
    values: tuple[tuple[str, float], ...]
    picture: bytes | None
    note: str


@dataclass(frozen=True)
class RunReport:
    """Everything the HTML page shows."""

    run_dir: Path
    benchmark: str
    title: str
    scorer: str
    main_metric: str
    counts: dict[str, int]
    headlines: tuple[Headline, ...]
    rules: tuple[RuleCount, ...]
    failures: tuple[FailureGroup, ...]
    worst: tuple[WorstScene, ...]
    figures: tuple[tuple[str, bytes], ...]
    config: dict[str, Any]
    provenance: dict[str, Any]
    summary_metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def counts_text(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in self.counts.items())


def _scored(run: Run) -> pd.DataFrame:
    rows = run.rows
    if "valid" in rows.columns:
        rows = rows[rows["valid"].fillna(False).astype(bool)]
    return rows


def _metric_columns(rows: pd.DataFrame, benchmark: str) -> list[str]:
    cols = [m for m in METRIC_COLUMNS if m in rows.columns]
    if benchmark == "navsim":
        extra = [c for c in NAVSIM_RULES if c in rows.columns and c not in cols]
        cols[1:1] = extra
    return [c for c in cols if pd.api.types.is_numeric_dtype(rows[c])]


def _counts(run: Run, scored: pd.DataFrame) -> dict[str, int]:
    counts = dict(run.summary.get("counts") or {})
    if not counts:
        counts = {"expected": len(run.rows), "scored": len(scored), "failed": len(run.rows) - len(scored)}
    return {str(k): int(v) for k, v in counts.items() if v is not None}


def headline_metrics(rows: pd.DataFrame, columns: Sequence[str], *, n_boot: int = 2000, seed: int = 0
                     ) -> tuple[Headline, ...]:
    """Mean and 95 % bootstrap interval of each column over ``rows`` (NaN dropped)."""
    out = []
    for c in columns:
        values = rows[c].to_numpy(dtype=np.float64, na_value=np.nan)
        mean, lo, hi = bootstrap_mean_ci(values, n_boot=n_boot, seed=seed)
        out.append(Headline(c, short(c), mean, lo, hi, int(np.isfinite(values).sum()),
                            METRIC_COLUMNS.get(c, True)))
    return tuple(out)


def rule_breakdown(rows: pd.DataFrame, benchmark: str) -> tuple[RuleCount, ...]:
    """Which rule zeroed (or lowered) how many scored scenes (see :class:`RuleCount`)."""
    n = max(len(rows), 1)
    main = MAIN_SCORE.get(benchmark, "score")
    zero_main = rows[main].to_numpy(dtype=np.float64, na_value=np.nan) == 0 if main in rows.columns else None
    out: list[RuleCount] = []

    def add(rule: str, col: str, mask: np.ndarray) -> None:
        z = int((mask & zero_main).sum()) if zero_main is not None else 0
        out.append(RuleCount(rule, col, int(mask.sum()), float(mask.sum()) / n, z))

    if benchmark == "navsim":
        for col in NAVSIM_RULES:
            if col not in rows.columns:
                continue
            v = rows[col].to_numpy(dtype=np.float64, na_value=np.nan)
            add(f"{short(col)} = 0", col, v == 0)
            if col in ("no_at_fault_collisions", "driving_direction_compliance"):
                add(f"{short(col)} = 0.5", col, v == 0.5)
        if zero_main is not None:
            out.append(RuleCount("PDMS = 0" if "traffic_light_compliance" not in rows.columns else "EPDMS = 0",
                                 main, int(zero_main.sum()), float(zero_main.sum()) / n, int(zero_main.sum())))
    elif benchmark == "waymo":
        if "fully_inside_trust_region" in rows.columns:
            inside = rows["fully_inside_trust_region"].astype("boolean").fillna(False).to_numpy(dtype=bool)
            add("outside every trust region (floored at 4)", "fully_inside_trust_region", ~inside)
        if "rfs" in rows.columns:
            rfs = rows["rfs"].to_numpy(dtype=np.float64, na_value=np.nan)
            add("RFS < 5", "rfs", rfs < 5)
            add("RFS < 8", "rfs", rfs < 8)
    elif benchmark == "carla":
        from metrics.carla.records import INFRACTION_TYPES

        for col in INFRACTION_TYPES:
            if col in rows.columns:
                add(f"{col} ≥ 1", col, rows[col].to_numpy(dtype=np.float64, na_value=0) > 0)
        if "route_completion" in rows.columns:
            add("route not completed", "route_completion",
                rows["route_completion"].to_numpy(dtype=np.float64, na_value=np.nan) < 100)
    return tuple(out)


def failure_groups(rows: pd.DataFrame) -> tuple[FailureGroup, ...]:
    """The rows that failed, grouped by error kind, largest group first."""
    if "error" not in rows.columns:
        return ()
    err = rows["error"]
    failed = rows[err.notna() & (err.astype(str) != "") & (err.astype(str) != "None")]
    if "valid" in rows.columns:
        failed = failed[~failed["valid"].fillna(False).astype(bool)]
    groups: dict[str, list[tuple[str, str]]] = {}
    for token, e in zip(failed["token"].astype(str), failed["error"].astype(str), strict=True):
        kind = e.split(":", 1)[0].strip()[:80] or "error"
        groups.setdefault(kind, []).append((token, e))
    out = [FailureGroup(k, len(v), tuple(t for t, _ in v[:5]), v[0][1][:300]) for k, v in groups.items()]
    return tuple(sorted(out, key=lambda g: (-g.count, g.kind)))


def worst_rows(rows: pd.DataFrame, benchmark: str, n: int) -> list[tuple[str, dict[str, Any]]]:
    """The ``n`` scored rows with the lowest main score (ties: token order)."""
    main = MAIN_SCORE.get(benchmark, "score")
    if n <= 0 or main not in rows.columns or rows.empty:
        return []
    df = rows[np.isfinite(rows[main].to_numpy(dtype=np.float64, na_value=np.nan))]
    df = df.assign(_token=df["token"].astype(str)).sort_values([main, "_token"], kind="stable").head(n)
    return [(str(t), r) for t, r in zip(df["_token"], df.drop(columns="_token").to_dict("records"), strict=True)]


def default_pictures(run_dir: Path, benchmark: str) -> PictureSource:
    """Explain pictures from the run's own data roots (NAVSIM and Waymo); a note where none can be drawn."""

    def pictures(items: Sequence[tuple[str, dict[str, Any]]]) -> list[tuple[bytes | None, str]]:
        from harness.errors import LeadBenchError

        if benchmark not in ("navsim", "waymo"):
            return [(None, f"no per-scene pictures for {benchmark} runs")] * len(items)
        try:
            if benchmark == "navsim":
                from harness.explain import NavsimRunScenes
                from harness.explain_plot import draw_navsim

                scenes: Any = NavsimRunScenes(run_dir)
                draw: Any = draw_navsim
            else:
                from harness.explain import WaymoRunFrames
                from harness.explain_plot import draw_waymo

                scenes, draw = WaymoRunFrames(run_dir), draw_waymo
        except (LeadBenchError, ValueError, OSError) as exc:
            return [(None, f"no picture: cannot open the run's data ({exc})")] * len(items)
        out: list[tuple[bytes | None, str]] = []
        for token, row in items:
            try:
                e = scenes.explain(token, row=row)
                out.append((draw(e, dpi=72), "; ".join(getattr(e, "reasons", ())) or ""))
            except (LeadBenchError, ValueError, OSError) as exc:
                out.append((None, f"no picture: {exc}"))
        return out

    return pictures


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return buf.getvalue()


def _bars_figure(headlines: Sequence[Headline], main: str) -> bytes:
    subs = [h for h in headlines if h.higher_is_better and np.isfinite(h.mean)]
    fig = Figure(figsize=(8.0, 0.45 * max(len(subs), 2) + 1.0))
    ax = fig.add_subplot(111)
    y = np.arange(len(subs))[::-1]
    means = np.array([h.mean for h in subs])
    err = np.array([[h.mean - h.ci_low, h.ci_high - h.mean] for h in subs]).T.reshape(2, -1)
    ax.barh(y, means, xerr=err, color=["#1f77b4" if h.metric != main else "#2ca02c" for h in subs], capsize=3)
    for yi, h in zip(y, subs, strict=True):
        ax.text(h.ci_high, yi, f"  {h.mean:.3f}", va="center", fontsize=8)
    ax.set_yticks(y)
    ax.set_yticklabels([h.short for h in subs], fontsize=9)
    ax.set_title("sub-metric means with 95% bootstrap intervals (higher is better)", fontsize=10)
    fig.tight_layout()
    return _png(fig)


def _distribution_figure(rows: pd.DataFrame, main: str, discrete: Sequence[str]) -> bytes:
    fig = Figure(figsize=(10.0, 3.4))
    ax1, ax2 = fig.subplots(1, 2)
    v = rows[main].to_numpy(dtype=np.float64, na_value=np.nan) if main in rows.columns else np.zeros(0)
    v = v[np.isfinite(v)]
    ax1.hist(v, bins=40, color="#1f77b4")
    ax1.set_title(f"{short(main)} per scene ({len(v)} scored)", fontsize=10)
    ax1.set_xlabel(short(main))
    ax1.set_ylabel("scenes")
    if discrete:
        levels = (0.0, 0.5, 1.0)
        colours = ("#d62728", "#ff7f0e", "#2ca02c")
        left = np.zeros(len(discrete))
        for lev, col in zip(levels, colours, strict=True):
            share = np.array([np.mean(rows[c].to_numpy(dtype=np.float64, na_value=np.nan) == lev) if len(rows) else 0
                              for c in discrete])
            ax2.barh([short(c) for c in discrete], share, left=left, color=col, label=f"= {lev:g}")
            left += share
        ax2.set_xlim(0, 1)
        ax2.legend(fontsize=8, loc="lower right")
        ax2.set_title("share of scenes per sub-score value", fontsize=10)
    elif len(v):
        xs = np.sort(v)
        ax2.plot(xs, np.arange(1, len(xs) + 1) / len(xs), color="#1f77b4")
        ax2.set_title(f"cumulative share of scenes by {short(main)}", fontsize=10)
        ax2.set_xlabel(short(main))
    fig.tight_layout()
    return _png(fig)


def build_report(run_dir: str | Path, *, worst: int = 5, n_boot: int = 2000,
                 pictures: PictureSource | None = None) -> RunReport:
    """The data of the run's report page.

    Args:
        run_dir: a lead-bench results directory (rows.parquet, summary.json, config.json).
        worst: explain this many lowest-scoring scenes.
        n_boot: bootstrap resamples for the intervals.
        pictures: how to draw the worst scenes (default: :func:`default_pictures` from the run's data roots).

    Raises:
        DataError: not a results directory.
    """
    run = load_run(run_dir)
    path = Path(run_dir)
    summary = run.summary
    benchmark = str(summary.get("benchmark") or "navsim")
    scored = _scored(run)
    main = MAIN_SCORE.get(benchmark, "score")
    columns = _metric_columns(scored, benchmark)
    headlines = headline_metrics(scored, columns, n_boot=n_boot)
    config: dict[str, Any] = {}
    if (path / "config.json").is_file():
        try:
            config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        except ValueError:
            config = {"error": "config.json is not valid JSON"}
    items = worst_rows(scored, benchmark, worst)
    drawn = (pictures or default_pictures(path, benchmark))(items) if items else []
    show = [c for c in columns if c != main][:8]
    worst_scenes = tuple(
        WorstScene(token, float(row[main]), tuple((short(c), float(row[c])) for c in show if _finite(row.get(c))),
                   png, note)
        for (token, row), (png, note) in zip(items, drawn, strict=True))
    discrete = [c for c in NAVSIM_RULES if c in scored.columns and c != "ego_progress"] if benchmark == "navsim" else []
    figures = (("Sub-metrics", _bars_figure(headlines, main)),
               ("Score distributions", _distribution_figure(scored, main, discrete)))
    agent = summary.get("agent") or config.get("agent") or ""
    title = f"lead-bench report: {benchmark} {summary.get('split', config.get('split', ''))} — {agent} ({path.name})"
    return RunReport(
        run_dir=path, benchmark=benchmark, title=title, scorer=str(summary.get("scorer", "")), main_metric=main,
        counts=_counts(run, scored), headlines=headlines, rules=rule_breakdown(scored, benchmark),
        failures=failure_groups(run.rows), worst=worst_scenes, figures=figures, config=config,
        provenance=dict(summary.get("provenance") or {}),
        summary_metrics={k: v for k, v in summary.items() if k not in ("provenance",)},
    )


def _finite(v: Any) -> bool:
    try:
        return bool(np.isfinite(float(v)))
    except (TypeError, ValueError):
        return False


# --- HTML ---------------------------------------------------------------------------------------------------

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1180px;color:#222;
line-height:1.4;padding:0 16px}
h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}th,td{border:1px solid #ddd;padding:4px 8px;
text-align:right}th{background:#f4f4f4}td.l,th.l{text-align:left}.main{font-weight:bold;background:#eef7ee}
img{max-width:100%;border:1px solid #eee}.note{color:#666;font-size:12px}pre{background:#f7f7f7;padding:8px;
font-size:12px;overflow-x:auto}.counts span{display:inline-block;margin-right:18px;font-size:15px}
.scene{margin:18px 0 28px 0}.bad{color:#b00}
"""


def _img(data: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode("ascii")}">'


def _fmt(v: float, metric: str) -> str:
    if not np.isfinite(v):
        return "–"
    return f"{100 * v:.2f}" if metric == "score" else f"{v:.3f}"


def render_html(rep: RunReport) -> str:
    """The report page (self-contained HTML5: inline CSS and images, no scripts, no external links)."""
    e = html.escape
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{e(rep.title)}</title>",
             f"<style>{_CSS}</style></head><body>", f"<h1>{e(rep.title)}</h1>",
             f"<p class='note'>scorer: {e(rep.scorer or 'unknown')}; intervals: 95% percentile bootstrap over "
             f"scored scenes; PDMS-style scores ×100.</p>",
             "<div class='counts'>" + "".join(f"<span><b>{v}</b> {e(k)}</span>" for k, v in rep.counts.items())
             + "</div>", "<h2>Headline metrics</h2><table><tr><th class='l'>metric</th><th>mean</th>"
             "<th>95% CI</th><th>n</th><th class='l'>better</th></tr>"]
    for h in rep.headlines:
        cls = " class='main'" if h.metric == rep.main_metric else ""
        parts.append(f"<tr{cls}><td class='l'>{e(h.short)}</td><td>{_fmt(h.mean, h.metric)}</td>"
                     f"<td>[{_fmt(h.ci_low, h.metric)}, {_fmt(h.ci_high, h.metric)}]</td><td>{h.n}</td>"
                     f"<td class='l'>{'higher' if h.higher_is_better else 'lower'}</td></tr>")
    parts.append("</table>")
    for name, png in rep.figures:
        parts.append(f"<h2>{e(name)}</h2>{_img(png, name)}")
    parts.append("<h2>Failure breakdown</h2><table><tr><th class='l'>rule</th><th>scenes</th><th>share</th>"
                 "<th>main score 0</th></tr>")
    for r in rep.rules:
        parts.append(f"<tr><td class='l'>{e(r.rule)}</td><td>{r.scenes}</td><td>{100 * r.share:.1f}%</td>"
                     f"<td>{r.zeroed_score}</td></tr>")
    parts.append("</table>")
    if rep.failures:
        parts.append("<p>Scenes that could not be scored, by error:</p><table><tr><th class='l'>error</th>"
                     "<th>count</th><th class='l'>examples</th></tr>")
        for f in rep.failures:
            parts.append(f"<tr><td class='l'>{e(f.kind)}</td><td>{f.count}</td><td class='l'>"
                         f"{e(', '.join(f.example_tokens))}<br><span class='note'>{e(f.example_error)}</span></td></tr>")
        parts.append("</table>")
    else:
        parts.append("<p>Every expected scene was scored.</p>")
    parts.append(f"<h2>Worst scenes ({len(rep.worst)})</h2>")
    for w in rep.worst:
        vals = ", ".join(f"{e(k)} {v:.3f}" for k, v in w.values)
        parts.append(f"<div class='scene'><h3>{e(w.token)}: {e(short(rep.main_metric))} "
                     f"{_fmt(w.score, rep.main_metric)}</h3><p>{vals}</p>")
        if w.note:
            parts.append(f"<p class='note'>{e(w.note)}</p>")
        if w.picture is not None:
            parts.append(_img(w.picture, f"explain {w.token}"))
        parts.append("</div>")
    prov = rep.provenance
    parts.append("<h2>Provenance</h2><table>")
    for k in ("lead_bench_version", "git_revision", "python", "platform", "created_utc"):
        parts.append(f"<tr><th class='l'>{e(k)}</th><td class='l'>{e(str(prov.get(k)))}</td></tr>")
    for pkg, ver in (prov.get("packages") or {}).items():
        parts.append(f"<tr><th class='l'>{e(pkg)}</th><td class='l'>{e(str(ver))}</td></tr>")
    parts.append("</table><h3>Configuration</h3>"
                 f"<pre>{e(json.dumps(rep.config, indent=2, default=str))}</pre>"
                 f"<h3>Summary</h3><pre>{e(json.dumps(rep.summary_metrics, indent=2, default=str))}</pre>"
                 f"<p class='note'>results directory: {e(str(rep.run_dir))}</p></body></html>")
    return "\n".join(parts)


def write_report(run_dir: str | Path, out: str | Path, *, worst: int = 5, n_boot: int = 2000,
                 pictures: PictureSource | None = None) -> tuple[Path, RunReport]:
    """Build the report of ``run_dir`` and write it to ``out`` atomically; returns (path, report)."""
    rep = build_report(run_dir, worst=worst, n_boot=n_boot, pictures=pictures)
    p = Path(out)
    p.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(p, render_html(rep))
    return p, rep
