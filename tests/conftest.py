"""Shared fixtures: a small embedded world written once per test session in NAVSIM's on-disk format."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.navsim.writer import NavsimWriteOptions
from harness.embedded import EmbeddedWorldSpec, build_embedded_world
from harness.world.build import WorldConfig

#: Small but complete: 4 logs (two train, two test) of 10 s, cameras at 1/10 of nuPlan's resolution.
SMALL_WORLD = EmbeddedWorldSpec(WorldConfig(seed=0, num_logs=4, duration_s=10.0),
                                NavsimWriteOptions(camera_scale=0.1))


@pytest.fixture(scope="session")
def small_world_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_embedded_world(tmp_path_factory.mktemp("world"), SMALL_WORLD, workers=1)


@pytest.fixture(scope="session")
def small_world():
    from harness.world.build import build_world

    return build_world(SMALL_WORLD.config)


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory):
    """Keep every test's metric cache and checkpoints out of the user's cache directory."""
    import os

    old = os.environ.get("LEAD_BENCH_CACHE")
    os.environ["LEAD_BENCH_CACHE"] = str(tmp_path_factory.mktemp("lead-bench-cache"))
    yield
    if old is None:
        os.environ.pop("LEAD_BENCH_CACHE", None)
    else:
        os.environ["LEAD_BENCH_CACHE"] = old
