"""Draw ``harness.explain`` explanations as PNG pictures (matplotlib, Agg; no pyplot global state).

NAVSIM: a bird's-eye view in the ego frame (x forward drawn upwards, y left drawn leftwards) beside a panel of
sub-scores and reasons, with the six comfort signals against their bounds below; optionally the front cameras
above. Waymo: raters, trust regions at 3 s and 5 s, the prediction and the per-horizon scores.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure

from harness.atomic import atomic_write_bytes
from harness.explain import SceneExplanation, WaymoExplanation

#: Colours of the rules' highlights.
RULE_COLOURS = {"NC": "#d62728", "DAC": "#ff7f0e", "DDC": "#9467bd", "TTC": "#e377c2", "red light": "#b8860b"}
_MAP_STYLE = {  # kind -> (face, edge, zorder)
    "roadblock": ("#e9e9e9", "none", 0), "intersection": ("#dedede", "none", 0.1), "carpark": ("#e4e4ee", "none", 0),
    "lane": ("none", "#b9b9b9", 0.2), "lane_connector": ("none", "#cfcfcf", 0.2),
}
_OBJECT_COLOURS = {"vehicle": "#1f77b4", "pedestrian": "#2ca02c", "bicycle": "#17becf"}
#: Object boxes and ego footprints are drawn every this many 0.1-s steps (highlights at every step they have).
DRAW_EVERY = 5


def _bev(xy: np.ndarray) -> np.ndarray:
    """Ego frame (x forward, y left) -> plot axes (right = -y, up = x)."""
    xy = np.asarray(xy, dtype=np.float64)
    return np.stack([-xy[..., 1], xy[..., 0]], axis=-1)


def _png(fig: Figure, dpi: int) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _view_limits(e: SceneExplanation) -> tuple[float, float, float, float]:
    pts = [e.simulated_xy, e.pdm_closed_xy, e.submitted_xy]
    if e.human_xy is not None:
        pts.append(e.human_xy)
    p = _bev(np.vstack(pts))
    cx, cy = (p.min(axis=0) + p.max(axis=0)) / 2.0
    half = max(25.0, float(np.max(p.max(axis=0) - p.min(axis=0))) / 2.0 + 12.0)
    return cx - half, cx + half, cy - half, cy + half


def draw_navsim(e: SceneExplanation, *, dpi: int = 90) -> bytes:
    """The NAVSIM picture of ``e`` as PNG bytes."""
    has_cams = bool(e.cameras)
    fig = Figure(figsize=(15.0, 11.5 if has_cams else 9.5))
    rows = [2.3, 7.2] if has_cams else [7.2]
    outer = fig.add_gridspec(len(rows), 1, height_ratios=rows, hspace=0.08, left=0.03, right=0.98, top=0.95,
                             bottom=0.05)
    if has_cams:
        cam_grid = outer[0].subgridspec(1, len(e.cameras), wspace=0.02)
        for i, cam in enumerate(e.cameras):
            ax = fig.add_subplot(cam_grid[i])
            ax.imshow(cam.image)
            ax.set_title(cam.name, fontsize=9)
            ax.axis("off")
    main = outer[-1].subgridspec(1, 2, width_ratios=[1.25, 1.0], wspace=0.08)
    ax = fig.add_subplot(main[0])
    _draw_bev(ax, e)
    right = main[1].subgridspec(3, 1, height_ratios=[1.0, 0.42, 1.0], hspace=0.3)
    _draw_panel(fig.add_subplot(right[0]), e)
    _draw_reasons(fig.add_subplot(right[1]), e)
    _draw_comfort(fig.add_subplot(right[2]), e)
    fig.suptitle(e.title, fontsize=12)
    return _png(fig, dpi)


def _draw_bev(ax, e: SceneExplanation) -> None:
    for kind in ("roadblock", "carpark", "intersection", "lane", "lane_connector"):
        shapes = [_bev(s.xy) for s in e.map_shapes if s.kind == kind]
        if shapes:
            face, edge, z = _MAP_STYLE[kind]
            ax.add_collection(PolyCollection(shapes, facecolors=face, edgecolors=edge, linewidths=0.6, zorder=z), autolim=False)
    route = [_bev(s.xy) for s in e.map_shapes if s.on_route]
    if route:
        ax.add_collection(PolyCollection(route, facecolors="#cfe3f7", edgecolors="none", alpha=0.5, zorder=0.15), autolim=False)
    reds = [_bev(s.xy) for s in e.map_shapes if s.kind == "red_light"]
    if reds:
        ax.add_collection(PolyCollection(reds, facecolors="#ff9999", edgecolors="#cc0000", alpha=0.45,
                                         linewidths=0.8, zorder=0.3, label="red light connector"), autolim=False)
    ax.plot(*_bev(e.centerline_xy).T, color="#6baed6", lw=1.0, ls=":", zorder=0.5, label="route centerline")

    n_t = e.ego_footprints_xy.shape[0]
    steps = np.arange(0, n_t, DRAW_EVERY)
    polys, colours = [], []
    for obj in e.objects:
        base = np.array(_rgba(_OBJECT_COLOURS.get(obj.kind, "#7f7f7f")))
        for t in steps:
            if t < len(obj.present) and obj.present[t]:
                polys.append(_bev(obj.corners_xy[t]))
                colours.append(np.append(base[:3], 0.85 - 0.7 * t / max(n_t - 1, 1)))
    if polys:
        ax.add_collection(PolyCollection(polys, facecolors=colours, edgecolors=colours, linewidths=0.5, zorder=2), autolim=False)
    ego = [_bev(e.ego_footprints_xy[t]) for t in steps]
    ax.add_collection(PolyCollection(ego, facecolors="none", edgecolors="#444444", linewidths=0.6, alpha=0.6,
                                     zorder=3), autolim=False)
    ax.plot(*_bev(e.pdm_closed_xy).T, color="#2ca02c", lw=1.6, ls="--", zorder=4, label="PDM-Closed")
    if e.human_xy is not None:
        ax.plot(*_bev(e.human_xy).T, color="#8c564b", lw=1.6, ls="-.", zorder=4, label="human")
    ax.plot(*_bev(e.simulated_xy).T, color="#111111", lw=1.4, zorder=5, label="simulated ego")
    ax.plot(*_bev(e.submitted_xy).T, "o-", color="#1f77b4", ms=3.5, lw=1.2, zorder=6, label="submitted")
    for z, h in enumerate(sorted(e.highlights, key=lambda h: -list(RULE_COLOURS).index(h.rule))):
        col = RULE_COLOURS[h.rule]
        ax.add_collection(PolyCollection([_bev(p) for p in h.polygons_xy], facecolors=col, edgecolors=col,
                                         alpha=0.45, linewidths=1.5, zorder=7 + 0.1 * z), autolim=False)
        ax.plot([], [], color=col, lw=6, alpha=0.5, label=f"{h.rule} @ t={h.steps[0] / 10:.1f}s")
        if len(h.points_xy):
            ax.scatter(*_bev(h.points_xy).T, marker="x", color=col, s=28, zorder=8)
    x0, x1, y0, y1 = _view_limits(e)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    ax.set_xlabel("← left   lateral (m)   right →", fontsize=8)
    ax.set_ylabel("forward (m)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(loc="upper left", fontsize=7, framealpha=0.85)
    ax.set_title("bird's-eye view, ego frame at t=0 (objects fade with time, every 0.5 s)", fontsize=9)


def comfort_fractions(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """A comfort signal as a fraction of its bound on each side: positive values over ``high``, negative ones
    over ``|low|`` (bounds are strict, so a value at +-1 or beyond breaks the check)."""
    return np.where(values >= 0, values / high, values / abs(low))


def _draw_comfort(ax, e: SceneExplanation) -> None:
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#17becf"]
    for i, c in enumerate(e.comfort):
        frac = comfort_fractions(c.values, c.low, c.high)
        label = f"{c.name} ({c.low:g}..{c.high:g} {c.unit}){'' if c.ok else ' VIOLATED'}"
        ax.plot(c.time_s, frac, color=palette[i % len(palette)], lw=2.2 if not c.ok else 1.1, label=label)
        bad = np.abs(frac) >= 1.0
        if bad.any():
            ax.scatter(c.time_s[bad], frac[bad], s=10, color=RULE_COLOURS["NC"], zorder=3)
    for b in (-1.0, 1.0):
        ax.axhline(b, color="#d62728", ls="--", lw=0.9)
    ax.set_ylim(min(-1.2, ax.get_ylim()[0]), max(1.2, ax.get_ylim()[1]))
    ax.set_xlabel("t (s)", fontsize=8)
    ax.set_ylabel("fraction of bound", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6.5, loc="lower left", ncol=2, framealpha=0.8)
    ax.set_title("comfort signals against their bounds (C = 1 iff all stay inside ±1)", fontsize=9)


def _rgba(colour: str) -> tuple[float, float, float, float]:
    from matplotlib.colors import to_rgba

    return to_rgba(colour)


def _draw_panel(ax, e: SceneExplanation) -> None:
    names = [s.short for s in e.scores]
    vals = [s.value for s in e.scores]
    y = np.arange(len(names))[::-1]
    colours = ["#2ca02c" if v >= 0.999 else "#ff7f0e" if v > 0 else "#d62728" for v in vals]
    ax.barh(y, vals, color=colours, height=0.6)
    for yi, s in zip(y, e.scores, strict=True):
        run = f" (run {s.run_value:.3f})" if np.isfinite(s.run_value) else ""
        ax.text(1.02, yi, f"{s.value:.3f}{run}  {s.note}", va="center", fontsize=7.5)
    ax.set_yticks(y)
    ax.set_yticklabels(names, fontsize=8)
    ax.set_xlim(0, 2.1)
    ax.set_xticks([0, 0.5, 1.0])
    ax.tick_params(labelsize=7)
    ax.set_title("sub-scores (recomputed; the run's value in brackets)", fontsize=9)


def _draw_reasons(ax, e: SceneExplanation) -> None:
    lines = [f"• {r}" for r in e.reasons] or ["• no rule broken"]
    if e.at_fault_reason and not any(e.at_fault_reason in r for r in e.reasons):
        lines.insert(0, f"• {e.at_fault_reason}")
    ax.axis("off")
    ax.text(0.0, 1.0, "\n".join(_wrap(x, 100) for x in lines[:6]), transform=ax.transAxes, va="top", fontsize=7.5)


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n  ".join(textwrap.wrap(text, width)) or text


def draw_waymo(e: WaymoExplanation, *, dpi: int = 90) -> bytes:
    """The Waymo picture of ``e`` as PNG bytes."""
    fig = Figure(figsize=(11.0, 7.5))
    grid = fig.add_gridspec(1, 2, width_ratios=[1.4, 1.0], left=0.06, right=0.98, top=0.9, bottom=0.08, wspace=0.2)
    ax = fig.add_subplot(grid[0])
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b"]
    ax.plot(*_bev(e.past_xy).T, color="#999999", lw=1.2, label="past")
    if e.future_xy is not None:
        ax.plot(*_bev(np.vstack([[0, 0], e.future_xy])).T, color="#8c564b", lw=1.2, ls="-.", label="logged future")
    for i, (xy, score) in enumerate(zip(e.raters_xy, e.rater_scores, strict=True)):
        col = palette[i % len(palette)]
        ax.plot(*_bev(np.vstack([[0, 0], xy])).T, color=col, lw=1.5, label=f"rater {i} (score {score:g})")
    slots = sorted({r.rater for r in e.trust_regions})
    for r in e.trust_regions:
        col = palette[slots.index(r.rater) % len(palette)]
        ax.add_collection(PolyCollection([_bev(r.corners_xy)], facecolors=col, edgecolors=col,
                                         alpha=0.18 if r.contains_prediction else 0.08,
                                         linewidths=1.6 if r.contains_prediction else 0.8,
                                         linestyles="-" if r.horizon_s == 5 else "--"), autolim=False)
    ax.plot(*_bev(np.vstack([[0, 0], e.prediction_xy])).T, "o-", color="#d62728", ms=3, lw=1.5, label="prediction")
    for h, idx in ((3, 11), (5, 19)):
        ax.scatter(*_bev(e.prediction_xy[idx]), marker="*", s=120, color="#d62728", zorder=5)
        ax.annotate(f"{h}s", _bev(e.prediction_xy[idx]), textcoords="offset points", xytext=(6, 4), fontsize=8)
    pts = _bev(np.vstack([e.prediction_xy, *e.raters_xy, e.past_xy, [[0, 0]]]))
    lo, hi = pts.min(axis=0) - 6, pts.max(axis=0) + 6
    half = max(float(np.max(hi - lo)) / 2.0, 10.0)
    mid = (lo + hi) / 2
    ax.set_xlim(mid[0] - half, mid[0] + half)
    ax.set_ylim(mid[1] - half, mid[1] + half)
    ax.set_aspect("equal")
    ax.legend(loc="upper left", fontsize=7)
    ax.set_xlabel("← left   lateral (m)   right →", fontsize=8)
    ax.set_ylabel("forward (m)", fontsize=8)
    ax.set_title("raters, trust regions (3 s dashed, 5 s solid) and the prediction", fontsize=9)
    pax = fig.add_subplot(grid[1])
    pax.axis("off")
    lines = [f"RFS {e.score:.3f}" + (f"   (run {e.run_rfs:.3f})" if np.isfinite(e.run_rfs) else ""),
             f"initial speed {e.initial_speed_mps:.2f} m/s",
             f"score at 3 s: {e.horizon_scores[0]:.3f} (rater {e.best_rater[0]})",
             f"score at 5 s: {e.horizon_scores[1]:.3f} (rater {e.best_rater[1]})",
             f"mean of horizons: {e.raw_score:.3f}",
             "inside one rater's trust region at both horizons" if e.fully_inside
             else "outside every rater's trust region at some horizon: floored at 4", ""]
    for r in e.trust_regions:
        lines.append(f"rater {r.rater} @ {r.horizon_s}s: d = {r.normalized_distance:.2f} "
                     f"({'inside' if r.contains_prediction else 'outside'}; half-sizes {r.lng_half_m:.1f} x "
                     f"{r.lat_half_m:.1f} m)")
    pax.text(0.0, 1.0, "\n".join(lines), va="top", fontsize=9, family="monospace", transform=pax.transAxes)
    fig.suptitle(e.title, fontsize=12)
    return _png(fig, dpi)


def write_png(data: bytes, path: str | Path) -> Path:
    """Write PNG bytes atomically; returns the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(p, data)
    return p
