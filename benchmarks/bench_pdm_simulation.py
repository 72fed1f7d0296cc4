"""PDM simulation throughput: the batched ``metrics.pdm_simulation`` against the straightforward one-proposal
loop of ``tests/metrics/test_pdm_simulation.py`` (``loop_simulate``: explicit 3x3 matrices, ``lstsq``
profile fits), on the same random NAVSIM submissions in the same run.

Each proposal: 8 poses at 2 Hz -> 41 reference states (``reference_states_from_local_poses``) -> 40 steps of
LQR + kinematic bicycle (``simulate``). Proposals come from different scenes (batched initial states at
map-scale coordinates), as when a scorer batches the agent and PDM-Closed proposals of many scenes.
Vectorised times are the best of ``--repeats`` runs (small batches repeat until ``--min-time`` s). The loop
runs once over ``min(P, --loop-max)`` proposals and its rate stands for the whole batch. Both results are
checked to agree (1e-8) before the table is printed.

Usage: python benchmarks/bench_pdm_simulation.py [--sizes 1 15 1000 10000] [--repeats 3] [--loop-max 200]
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from metrics.pdm_simulation import reference_states_from_local_poses, simulate

_TESTS = Path(__file__).resolve().parent.parent / "tests" / "metrics" / "test_pdm_simulation.py"


def _load_reference():
    """The loop baseline lives with the tests that check it; loaded by path (tests/ is no package)."""
    spec = importlib.util.spec_from_file_location("lead_bench_test_pdm_simulation", _TESTS)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load the reference loop from {_TESTS}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _best_of(repeats: int, min_time_s: float, fn) -> tuple[float, object]:
    """Best time per call over ``repeats`` rounds; a round repeats ``fn`` until it lasts ``min_time_s``."""
    best, out = float("inf"), None
    for _ in range(repeats):
        calls, t0 = 0, time.perf_counter()
        while True:
            out = fn()
            calls += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= min_time_s:
                break
        best = min(best, elapsed / calls)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 15, 1000, 10_000])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--min-time", type=float, default=0.3)
    ap.add_argument("--loop-max", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    ref_module = _load_reference()
    rng = np.random.default_rng(args.seed)
    poses_all, init_all = ref_module.random_scenes(rng, max(args.sizes))

    # Loop baseline: one rate, measured once on the first proposals.
    n_loop = min(max(args.sizes), args.loop_max)
    refs = reference_states_from_local_poses(poses_all[:n_loop], 0.5, init_all[:n_loop])
    states0 = init_all[:n_loop].state_array()
    t0 = time.perf_counter()
    loop_refs = [reference_states_from_local_poses(poses_all[i], 0.5, init_all[i]) for i in range(n_loop)]
    loop_sims = [ref_module.loop_simulate(r, s) for r, s in zip(loop_refs, states0)]
    t_loop = (time.perf_counter() - t0) / n_loop
    np.testing.assert_allclose(simulate(refs, init_all[:n_loop]), np.stack(loop_sims), rtol=0, atol=1e-8)

    table = Table(title=f"PDM simulation (41 states) throughput; loop baseline measured on {n_loop} proposals")
    for col in ("proposals per batch", "reference s", "simulate s", "total s", "proposals/s", "loop proposals/s",
                "ratio vs loop"):
        table.add_column(col, justify="right")
    for size in args.sizes:
        poses, init = poses_all[:size], init_all[:size]
        t_ref, refs = _best_of(args.repeats, args.min_time, lambda p=poses, i=init: reference_states_from_local_poses(
            p, 0.5, i))
        t_sim, sims = _best_of(args.repeats, args.min_time, lambda r=refs, i=init: simulate(r, i))
        m = min(size, n_loop)
        np.testing.assert_allclose(sims[:m], np.stack(loop_sims[:m]), rtol=0, atol=1e-8)
        total = t_ref + t_sim
        table.add_row(f"{size:,}", f"{t_ref:.4f}", f"{t_sim:.4f}", f"{total:.4f}", f"{size / total:,.0f}",
                      f"{1 / t_loop:,.0f}", f"{t_loop * size / total:,.1f}x")
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
