"""Shared fixtures: a small embedded world written once per test session in NAVSIM's on-disk format."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.navsim.writer import NavsimWriteOptions
from harness.embedded import EmbeddedWorldSpec, build_embedded_world
from harness.world.build import WorldConfig

#: Small but complete: 2 logs (one train, one test) of 10 s, cameras at 1/10 of nuPlan's resolution.
SMALL_WORLD = EmbeddedWorldSpec(WorldConfig(seed=0, num_logs=2, duration_s=10.0),
                                NavsimWriteOptions(camera_scale=0.1))


@pytest.fixture(scope="session")
def small_world_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_embedded_world(tmp_path_factory.mktemp("world"), SMALL_WORLD, workers=1)


@pytest.fixture(scope="session")
def small_world():
    from harness.world.build import build_world

    return build_world(SMALL_WORLD.config)
