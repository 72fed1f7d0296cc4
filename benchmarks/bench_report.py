"""Time of ``lead-bench explain`` for one scene (target < 1 s) and ``lead-bench report`` for a 12,000-token
run (target < 30 s), against baselines measured in the same run.

Data: the tests' small embedded world (4 logs x 10 s, cameras at 1/10), run with the constant-velocity agent
(PDMS v1.1) into a real results directory. The 12,000-token run is **synthesised** from it: the real rows
replicated with fresh tokens (``<token>-<copy>``; the first copy keeps the real tokens), with their plans,
summary counts and config. The worst scenes' pictures are drawn from the real scene each fresh token was
copied from (the synthetic tokens have no scoring scene of their own); everything else in the report runs
on the 12,000 rows.

Rows, explain (per scene, mean over the run's scenes, the run opened once unless said):
- scorer only (baseline): simulate and score the plan with ``harness.navsim_eval.score_plans``;
- explain data: ``NavsimRunScenes.explain`` (simulation, scoring, per-step evidence, views);
- explain + PNG: and ``draw_navsim`` (what ``lead-bench explain navsim`` does after start-up);
- explain + PNG + cameras;
- cold: open the run (metric cache, plans) and explain + PNG one scene.

Rows, report (12,000 tokens, once each):
- rows + means (baseline): read rows.parquet and take the column means;
- compare (baseline): ``harness.compare.compare_runs`` on the run (2,000-resample bootstrap CIs);
- report, no pictures: ``write_report(worst=0)``;
- report, 5 pictures: ``write_report(worst=5)`` (the command's default).

Timings on a shared 2-core machine vary by about ±30 % from contention.

Usage: python benchmarks/bench_report.py [--tokens 12000] [--worst 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table


def _time(fn: Callable[[], object], repeats: int = 1) -> tuple[float, float]:
    """Best (wall seconds, CPU seconds of this process) of ``repeats`` calls."""
    best = (float("inf"), float("inf"))
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        best = min(best, (time.perf_counter() - t0, time.process_time() - c0))
    return best


def _real_run(root: Path, out: Path) -> Path:
    from adapters.navsim.reader import NavsimReader
    from adapters.navsim.writer import NavsimWriteOptions
    from harness.agents import build_agent
    from harness.embedded import EmbeddedWorldSpec, build_embedded_world
    from harness.runner import run_navsim
    from harness.world.build import WorldConfig

    spec = EmbeddedWorldSpec(WorldConfig(seed=0, num_logs=4, duration_s=10.0), NavsimWriteOptions(camera_scale=0.1))
    world = build_embedded_world(root / "world", spec, workers=1)
    reader = NavsimReader(world, "test")
    cache = root / "cache"
    config = {"benchmark": "navsim", "data_root": str(world), "maps_root": str(world / "maps"), "split": "test",
              "agent": "cv", "cache_dir": str(cache), "scene_filter": reader.scene_filter.__dict__}
    run_navsim(reader, build_agent("cv"), out, maps_root=world / "maps", cache_dir=cache, config=config)
    return out


def synthesise_run(real: Path, out: Path, n_tokens: int) -> dict[str, str]:
    """A results directory of ``n_tokens`` rows replicated from ``real`` with fresh tokens; fresh -> real."""
    rows = pd.read_parquet(real / "rows.parquet")
    copies = -(-n_tokens // len(rows))
    parts, origin = [], {}
    for k in range(copies):
        part = rows.copy()
        if k:
            part["token"] = [f"{t}-{k:04d}" for t in rows["token"]]
        origin.update(zip(part["token"], rows["token"], strict=True))
        parts.append(part)
    big = pd.concat(parts, ignore_index=True).head(n_tokens)
    out.mkdir(parents=True)
    big.to_parquet(out / "rows.parquet", index=False)
    big.to_csv(out / "rows.csv", index=False)
    with np.load(real / "plans.npz") as z:
        plans = dict(zip(z["tokens"].tolist(), z["poses"], strict=True))
        interval = z["interval_s"]
    tokens = big["token"].astype(str).tolist()
    np.savez(out / "plans.npz", tokens=np.array(tokens), poses=np.stack([plans[origin[t]] for t in tokens]),
             interval_s=interval)
    summary = json.loads((real / "summary.json").read_text())
    valid = int(big["valid"].sum())
    summary["counts"] = {"expected": len(big), "scored": valid, "failed": len(big) - valid}
    summary["synthetic"] = f"{len(rows)} real rows replicated with fresh tokens"
    (out / "summary.json").write_text(json.dumps(summary))
    shutil.copy(real / "config.json", out / "config.json")
    return {t: origin[t] for t in tokens}


def _fill(table: Table, rows: list[tuple[str, tuple[float, float]]], digits: int) -> None:
    for col in ("what", "wall s", "CPU s", "x baseline (CPU)"):
        table.add_column(col, justify="right" if col != "what" else "left")
    base = rows[0][1][1]
    for name, (wall, cpu) in rows:
        table.add_row(name, f"{wall:.{digits}f}", f"{cpu:.{digits}f}", f"{cpu / base:.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=12_000)
    ap.add_argument("--worst", type=int, default=5)
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    from harness.compare import compare_runs, load_run
    from harness.explain import NavsimRunScenes
    from harness.explain_plot import draw_navsim
    from harness.navsim_eval import score_plans
    from harness.report import default_pictures, write_report

    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["LEAD_BENCH_CACHE"] = str(root / "lb-cache")
        real = _real_run(root, root / "run")
        scenes = NavsimRunScenes(real)
        tokens = list(scenes.plans)
        rows = pd.read_parquet(real / "rows.parquet").set_index("token")
        row_of = {t: rows.loc[t].to_dict() for t in tokens}
        scene_objs = {t: scenes.cache.get(t) for t in tokens}
        scenes.explain(tokens[0])  # warm imports and caches once

        def per_scene(fn: Callable[[str], object]) -> tuple[float, float]:
            t0, c0 = time.perf_counter(), time.process_time()
            for t in tokens:
                fn(t)
            return (time.perf_counter() - t0) / len(tokens), (time.process_time() - c0) / len(tokens)

        ex_rows = [
            ("scorer only (baseline)", per_scene(lambda t: score_plans([scene_objs[t]], [scenes.plans[t]]))),
            ("explain data", per_scene(lambda t: scenes.explain(t, row=row_of[t]))),
            ("explain + PNG", per_scene(lambda t: draw_navsim(scenes.explain(t, row=row_of[t])))),
            ("explain + PNG + cameras", per_scene(lambda t: draw_navsim(scenes.explain(t, cameras=True,
                                                                                      row=row_of[t])))),
            ("cold: open run + explain + PNG", _time(lambda: draw_navsim(NavsimRunScenes(real).explain(tokens[0])),
                                                     repeats=3)),
        ]
        table = Table(title=f"explain, one NAVSIM scene (mean of {len(tokens)} scenes; target < 1 s)")
        _fill(table, ex_rows, 3)
        console.print(table)

        big = root / "big"
        origin = synthesise_run(real, big, args.tokens)
        real_pictures = default_pictures(real, "navsim")

        def pictures(items):  # fresh token -> the real scene it was copied from
            return real_pictures([(origin[t], {**row, "token": origin[t]}) for t, row in items])

        rep_rows = [
            ("rows + means (baseline)", _time(lambda: pd.read_parquet(big / "rows.parquet").mean(numeric_only=True))),
            ("compare (bootstrap CIs)", _time(lambda: compare_runs([load_run(big)], n_boot=2000))),
            ("report, no pictures", _time(lambda: write_report(big, big / "r0.html", worst=0))),
            (f"report, {args.worst} pictures", _time(lambda: write_report(big, big / "r.html", worst=args.worst,
                                                                          pictures=pictures))),
        ]
        size = (big / "r.html").stat().st_size
        table = Table(title=f"report, {args.tokens:,}-token run (synthesised from {len(tokens)} real rows; "
                            f"target < 30 s); page {size / 1e6:.2f} MB")
        _fill(table, rep_rows, 3)
        console.print(table)
        console.print("shared 2-core machine: wall times vary with contention (load average "
                      f"{os.getloadavg()[0]:.1f} at the end); CPU seconds are this process's own")


if __name__ == "__main__":
    main()
