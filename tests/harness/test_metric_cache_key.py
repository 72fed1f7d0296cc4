"""The metric cache directory is keyed on the inputs' identity (log and map files, scene version), not the path."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.navsim.writer import NavsimWriteOptions
from harness.cli_common import metric_cache_dir
from harness.embedded import EmbeddedWorldSpec, build_embedded_world
from harness.world.build import WorldConfig

TINY = EmbeddedWorldSpec(WorldConfig(seed=3, num_logs=2, duration_s=1.0),
                         NavsimWriteOptions(camera_scale=0.1, write_sensors=False), carla=None)


@pytest.fixture()
def tiny_world(tmp_path: Path) -> Path:
    return build_embedded_world(tmp_path / "world", TINY)


def test_same_inputs_same_directory(tiny_world: Path) -> None:
    a = metric_cache_dir(tiny_world, "test")
    assert metric_cache_dir(tiny_world / ".." / tiny_world.name, "test") == a  # path resolved
    assert a.parent.name == "metric-cache" and "-test-" in a.name
    assert metric_cache_dir(tiny_world, "train") != a


def test_rebuilding_the_world_invalidates_it(tiny_world: Path) -> None:
    before = metric_cache_dir(tiny_world, "test")
    stale = before / "some_log" / "token.npz"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"scene of the old world")
    build_embedded_world(tiny_world, TINY)  # same place, same content, new files
    after = metric_cache_dir(tiny_world, "test")
    assert after != before and not after.exists()


def test_replaced_log_or_map_or_scene_version_changes_it(tiny_world: Path, monkeypatch) -> None:
    import harness.scoring_scene

    before = metric_cache_dir(tiny_world, "test")
    log = next((tiny_world / "navsim_logs" / "test").glob("*.pkl"))
    log.write_bytes(log.read_bytes() + b"\0")
    after_log = metric_cache_dir(tiny_world, "test")
    assert after_log != before
    assert metric_cache_dir(tiny_world, "train") == metric_cache_dir(tiny_world, "train")  # other split: stable
    gpkg = next((tiny_world / "maps").rglob("*.gpkg"))
    gpkg.write_bytes(gpkg.read_bytes())
    after_map = metric_cache_dir(tiny_world, "test")
    assert after_map != after_log
    monkeypatch.setattr(harness.scoring_scene, "SCORING_SCENE_VERSION", harness.scoring_scene.SCORING_SCENE_VERSION + 1)
    assert metric_cache_dir(tiny_world, "test") != after_map
