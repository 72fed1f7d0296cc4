"""The embedded world's CARLA portion (``<world>/carla``): read with CarlaReader like any LEAD data."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from adapters.carla import format as fmt
from adapters.carla.reader import CarlaReader
from adapters.carla.writer import CarlaWriteOptions, write_carla_world
from harness.embedded import CARLA_DIR, WRITER_FILES, EmbeddedWorldSpec, generator_digest


def test_embedded_world_has_labelled_carla_train_routes(small_world_root: Path, small_world) -> None:
    spec = EmbeddedWorldSpec()
    opts = spec.carla.write
    reader = CarlaReader(small_world_root / CARLA_DIR, "train")
    refs = reader.index()
    train = small_world.splits["train"]
    assert sorted({r.log_id.split("_Rep0_")[1] for r in refs}) == sorted(train)
    # Every frame_stride-th 4 Hz frame of each 10 s log (41 frames), file numbers kept, at most max_frames.
    n_frames = int(round(small_world.logs[0].frames[-1].timestamp_us - small_world.logs[0].frames[0].timestamp_us)
                   / 1e6 / fmt.FRAME_INTERVAL_S) + 1
    want = list(range(0, n_frames, opts.frame_stride))[:opts.max_frames]
    assert len(refs) == len(train) * len(want)
    assert [int(r.token[-4:]) for r in refs[:len(want)]] == want
    assert refs[1].timestamp_us == want[1] * 250_000
    with pytest.raises(Exception, match="known splits: all, train"):
        reader.index("test")  # only the configured splits are written
    sample = reader.load(refs[1])
    cams = sample.observation.cameras
    assert list(cams) == ["rgb_left", "rgb_front", "rgb_right"]
    assert all((c.width, c.height) == (192, 192) for c in cams.values())
    assert cams["rgb_front"].load_image().shape == (192, 192, 3)
    t = sample.targets
    assert t.boxes is not None and len(t.boxes) > 0 and t.bev is not None
    assert set(t.semantics) == set(cams) and set(t.depth_m) == set(cams)
    assert sample.observation.lidar is not None and len(sample.observation.lidar.points) > 100
    assert t.future is not None and np.isfinite(t.future.poses).all()
    assert not (small_world_root / CARLA_DIR / "data" / "noScenarios" / refs[0].log_id / "rgb_perturbated").exists()


def test_generator_digest_covers_the_writers_not_the_readers(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    import adapters.carla
    import adapters.navsim

    for pkg_name, names in WRITER_FILES:
        folder = Path(importlib.import_module(pkg_name).__path__[0])
        assert all((folder / f).is_file() for f in names), pkg_name
    before = generator_digest()
    real = Path.read_bytes

    def changed(target: Path):
        def read(self: Path) -> bytes:
            data = real(self)
            return data + b"# changed\n" if self == target else data
        return read

    # A changed writer source changes the digest (so a cached world is rebuilt); a reader's does not.
    for target, moves in ((Path(adapters.carla.__path__[0]) / "writer.py", True),
                          (Path(adapters.navsim.__path__[0]) / "writer.py", True),
                          (Path(adapters.navsim.__path__[0]) / "reader.py", False),
                          (Path(adapters.carla.__path__[0]) / "reader.py", False)):
        monkeypatch.setattr(Path, "read_bytes", changed(target))
        assert (generator_digest() != before) is moves, target
        monkeypatch.undo()
    assert EmbeddedWorldSpec().to_json()["carla"]["write"]["rig"] == "carla_lb_3cam"
    assert EmbeddedWorldSpec(carla=None).to_json()["carla"] is None


def test_frame_stride_and_option_checks(small_world, tmp_path: Path) -> None:
    name = small_world.splits["test"][0]
    root = write_carla_world(small_world, tmp_path, CarlaWriteOptions(camera_scale=0.1, perturbed=False,
                                                                      frame_stride=7, max_frames=2), logs=[name])
    refs = CarlaReader(root, "test").index()
    assert [r.token[-4:] for r in refs] == ["0000", "0007"]
    assert not (root / "splits" / "train.txt").exists()
    with pytest.raises(ValueError, match="not in the world"):
        write_carla_world(small_world, tmp_path, logs=["nope"])
    for bad in ({"frame_stride": 0}, {"max_frames": 0}, {"camera_scale": 0.0}):
        with pytest.raises(ValueError):
            replace(CarlaWriteOptions(), **bad)
