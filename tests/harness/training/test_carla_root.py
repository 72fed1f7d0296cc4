"""Training's CARLA data on the embedded world: ``<world>/carla`` when its rig matches, else a rig-specific copy."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from adapters.carla.reader import CarlaReader
from harness.embedded import CARLA_DIR, MARKER, carla_portion, carla_root_for_rig
from harness.errors import DataError


def test_matching_rig_reuses_the_worlds_own_copy(small_world_root: Path, tmp_path: Path) -> None:
    rig = carla_portion(small_world_root).write.rig
    found = carla_root_for_rig(small_world_root, rig, tmp_path)
    assert found.reused and found.root == small_world_root / CARLA_DIR and rig in found.note
    assert not any(tmp_path.iterdir())  # nothing written


def test_other_rig_gets_one_copy_of_the_same_routes(small_world_root: Path, tmp_path: Path) -> None:
    portion = carla_portion(small_world_root)
    assert portion.write.rig != "navsim_4cam"
    started: list[int] = []
    found = carla_root_for_rig(small_world_root, "navsim_4cam", tmp_path, on_start=started.append)
    assert not found.reused and found.root.parent == tmp_path and "navsim_4cam" in found.note
    assert started == [len(json.loads((small_world_root / MARKER).read_text())["splits"]["train"])]
    own = CarlaReader(small_world_root / CARLA_DIR, "train").index()
    copy = CarlaReader(found.root, "train")
    assert [r.token for r in copy.index()] == [r.token for r in own]  # same routes and frames
    cams = copy.load(copy.index()[0]).observation.cameras
    assert list(cams) == ["CAM_L0", "CAM_F0", "CAM_R0", "CAM_B0"]
    # Second call: reused from the cache, not written again.
    again = carla_root_for_rig(small_world_root, "navsim_4cam", tmp_path, on_start=started.append)
    assert again.root == found.root and len(started) == 1


def test_copy_is_keyed_on_the_worlds_identity(small_world_root: Path, tmp_path: Path) -> None:
    world = tmp_path / "world"
    world.mkdir()
    meta = json.loads((small_world_root / MARKER).read_text())
    meta["config"]["num_logs"] = 1  # a different world (as a rebuild with other settings would give)
    meta["config"]["duration_s"] = 1.0
    meta["carla"]["write"]["max_frames"] = 1
    (world / MARKER).write_text(json.dumps(meta))
    a = carla_root_for_rig(small_world_root, "navsim_4cam", tmp_path / "copies")
    b = carla_root_for_rig(world, "navsim_4cam", tmp_path / "copies")
    assert a.root != b.root


def test_world_without_carla_is_refused(small_world_root: Path, tmp_path: Path) -> None:
    meta = json.loads((small_world_root / MARKER).read_text())
    meta["carla"] = None
    (tmp_path / MARKER).write_text(json.dumps(meta))
    assert carla_portion(tmp_path) is None
    with pytest.raises(DataError, match="without a CARLA portion"):
        carla_root_for_rig(tmp_path, "navsim_4cam", tmp_path / "copies")
    shutil.rmtree(tmp_path / "copies", ignore_errors=True)
