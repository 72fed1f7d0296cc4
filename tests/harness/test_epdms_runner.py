"""One-stage EPDMS runner: each log parsed once (index, metric cache, scoring), serial and forked."""

from __future__ import annotations

import os

import pytest

from adapters.navsim.reader import NavsimReader
from harness.agents import build_agent
from harness.epdms_eval import EPDMSCacheSpec
from harness.epdms_runner import run_navsim_epdms


@pytest.mark.parametrize("workers", [1, 2])
def test_run_navsim_epdms_parses_each_log_once(small_world_root, tmp_path, monkeypatch, workers):
    import adapters.navsim.reader as reader_module

    loaded: list[str] = []
    load = reader_module.load_restricted
    # Forked parts inherit the patch: a log parsed again in a child would not be counted here, so the child
    # refuses instead (its tokens would then fail and the run would report them).
    parent = os.getpid()

    def counting(path, *args, **kwargs):
        if os.getpid() != parent:
            raise AssertionError(f"log parsed again in a forked part: {path}")
        loaded.append(path.name)
        return load(path, *args, **kwargs)

    monkeypatch.setattr(reader_module, "load_restricted", counting)
    reader = NavsimReader(small_world_root, "test")
    summary = run_navsim_epdms(reader, build_agent("cv"), tmp_path / "out", maps_root=small_world_root / "maps",
                               cache_dir=tmp_path / "cache", workers=workers, engine="processes")
    assert summary.failed == 0 and summary.scored == summary.expected > 0
    assert sorted(loaded) == sorted(p.name for p in (small_world_root / "navsim_logs" / "test").glob("*.pkl"))


def test_epdms_cache_spec_refuses_a_reader_of_another_split(small_world_root, tmp_path):
    reader = NavsimReader(small_world_root, "test")
    spec = EPDMSCacheSpec(small_world_root, "train", reader.scene_filter, small_world_root / "maps", tmp_path)
    with pytest.raises(ValueError, match="another scene filter or split"):
        spec.open(reader)
    same = EPDMSCacheSpec(small_world_root, "test", reader.scene_filter, small_world_root / "maps", tmp_path)
    assert same.open(reader).scenes.reader is reader
