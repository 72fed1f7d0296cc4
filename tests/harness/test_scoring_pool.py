"""Local multi-process scoring: forked parts of one call, the persistent pool of a run, identical results."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from adapters.navsim.reader import NavsimReader
from harness.agents import build_agent
from harness.errors import DataError
from harness.navsim_eval import CacheSpec, build_metric_cache, score_plans
from harness.runner import plan_samples, run_navsim
from harness.scoring_pool import ScoringPool, can_fork, fork_map, split_bounds
from harness.trajectory import NAVSIM_SAMPLING
from metrics.pdms import PDMS_COLUMNS

pytestmark = pytest.mark.skipif(not can_fork(), reason="needs the fork start method")


def test_split_bounds_cover_everything_evenly():
    assert split_bounds(7, 3) == [(0, 2), (2, 5), (5, 7)]
    assert split_bounds(2, 2) == [(0, 1), (1, 2)]
    assert split_bounds(0, 2) == [(0, 0), (0, 0)]


def test_fork_map_runs_part_zero_here_and_the_others_in_children_in_order():
    big = np.arange(1_000_000)  # inherited by the children, never sent

    def part(i):
        return i, os.getpid(), int(big[i * 10])

    out = fork_map(part, 3)
    assert [o[0] for o in out] == [0, 1, 2] and [o[2] for o in out] == [0, 10, 20]
    assert out[0][1] == os.getpid()
    assert len({o[1] for o in out}) == 3


def test_fork_map_raises_a_childs_error_here():
    def part(i):
        if i == 1:
            raise ValueError(f"part {i} failed")
        return i

    with pytest.raises(ValueError, match="part 1 failed"):
        fork_map(part, 2)


def test_fork_map_reports_a_child_that_dies_without_answering():
    def part(i):
        if i == 1:
            os._exit(3)
        return i

    with pytest.raises(RuntimeError, match="ended without a result"):
        fork_map(part, 2)


def _tokens_by_log(refs):
    by_log: dict[str, list[str]] = {}
    for r in refs:
        by_log.setdefault(r.log_id, []).append(r.token)
    return by_log


def test_score_plans_over_two_processes_equals_serial(small_world_root, tmp_path, monkeypatch):
    import harness.navsim_eval as navsim_eval

    reader = NavsimReader(small_world_root, "test")
    refs = reader.index()[:10]
    spec = CacheSpec(small_world_root, "test", reader.scene_filter, small_world_root / "maps", tmp_path / "mc")
    assert not any(build_metric_cache(spec, _tokens_by_log(refs)).values())
    cache = spec.open()
    scenes = [cache.get(r.token) for r in refs]
    plans = plan_samples(build_agent("cv"), [reader.load(r) for r in refs], NAVSIM_SAMPLING)
    serial = score_plans(scenes, plans)
    calls = []
    monkeypatch.setattr(navsim_eval, "fork_map", lambda fn, n: calls.append(n) or fork_map(fn, n))
    assert score_plans(scenes, plans, workers=2) is not None and calls == []  # too few scenes to fork
    monkeypatch.setattr(navsim_eval, "FORK_MIN_SCENES", 2)
    forked = score_plans(scenes, plans, workers=2)
    assert calls == [2]
    for a, b in zip(serial, forked, strict=True):
        assert a.row(0) == b.row(0) and a.row(1) == b.row(1)
        np.testing.assert_array_equal(a.ego_areas, b.ego_areas)
        np.testing.assert_array_equal(a.comfort_checks, b.comfort_checks)


def test_pool_scores_as_serial_and_fails_only_the_missing_token(small_world_root, tmp_path):
    reader = NavsimReader(small_world_root, "test")
    refs = reader.index()[:10]
    spec = CacheSpec(small_world_root, "test", reader.scene_filter, small_world_root / "maps", tmp_path / "mc")
    assert not any(build_metric_cache(spec, _tokens_by_log(refs)).values())
    cache = spec.open()
    plans = plan_samples(build_agent("cv"), [reader.load(r) for r in refs], NAVSIM_SAMPLING)
    serial = score_plans([cache.get(r.token) for r in refs], plans)
    tokens = [r.token for r in refs]
    tokens[3] = "no-such-token"
    with ScoringPool(cache, 2) as pool:
        got = pool.score(tokens, plans)
    assert len(got) == len(refs) and isinstance(got[3], DataError)
    for i, (a, b) in enumerate(zip(serial, got, strict=True)):
        if i != 3:
            assert a.row(0) == b.row(0) and a.row(1) == b.row(1)
            np.testing.assert_array_equal(a.ego_areas, b.ego_areas)


def test_run_with_two_workers_equals_serial(small_world_root, tmp_path):
    reader = NavsimReader(small_world_root, "test")
    rows = []
    for workers in (1, 2):
        run_navsim(reader, build_agent("cv"), tmp_path / f"out{workers}", maps_root=small_world_root / "maps",
                   cache_dir=tmp_path / "mc", workers=workers, batch_size=4)
        rows.append(pd.read_parquet(tmp_path / f"out{workers}" / "rows.parquet"))
    assert len(rows[0]) == len(rows[1]) > 4 and rows[0]["valid"].all()
    pd.testing.assert_frame_equal(rows[0][["token", *PDMS_COLUMNS]], rows[1][["token", *PDMS_COLUMNS]])


def test_keep_freed_memory_reuses_a_freed_block_without_page_faults():
    import subprocess
    import sys
    import textwrap

    from harness.scoring_pool import _glibc

    if _glibc() is None:
        pytest.skip("needs glibc")
    # In a fresh interpreter: page-fault counts depend on what the process's allocator has seen before (in the
    # full suite, earlier tests left blocks that made the last check flaky).
    code = textwrap.dedent("""
        import resource
        import numpy as np
        from harness.scoring_pool import keep_freed_memory

        def faults_of_fresh_block(n_floats):
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            block = np.ones(n_floats)  # written: every page touched
            del block
            return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

        with keep_freed_memory():
            faults_of_fresh_block(6 << 20)  # 48 MB
            inside = faults_of_fresh_block(6 << 20)
        after = min(faults_of_fresh_block(6 << 20) for _ in range(2))
        print(inside, after)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    inside, after = map(int, out.stdout.split())
    assert inside <= 2  # the second block reuses the first's pages
    # Afterwards blocks above 32 MB are mapped afresh and given back when freed, as by default: at least one
    # fault per 2 MB (numpy asks for transparent huge pages), 12 k where it gets 4 kB pages.
    assert after >= 20
