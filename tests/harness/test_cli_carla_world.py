"""``lead-bench world carla`` writes LEAD route folders that CarlaReader reads; bad options exit with code 2."""

from __future__ import annotations

from click.testing import CliRunner

from adapters.carla.reader import CAMERAS_ONLY, CarlaReader
from harness.cli import main


def test_world_carla_writes_readable_routes(tmp_path):
    out = tmp_path / "carla"
    res = CliRunner().invoke(main, ["world", "carla", "--out", str(out), "--logs", "2", "--duration", "1.5",
                                    "--camera-scale", "0.1", "--max-frames", "2", "--rig", "navsim_4cam",
                                    "--no-perturbed"])
    assert res.exit_code == 0, res.output
    reader = CarlaReader(out, "test")
    refs = reader.index()
    assert len(refs) == 2
    sample = reader.load(refs[0], CAMERAS_ONLY)
    assert list(sample.observation.cameras) == ["CAM_L0", "CAM_F0", "CAM_R0", "CAM_B0"]
    assert not any(out.glob("data/*/*/rgb_perturbated"))


def test_world_carla_rejects_bad_scale(tmp_path):
    res = CliRunner().invoke(main, ["world", "carla", "--out", str(tmp_path), "--camera-scale", "2"])
    assert res.exit_code == 2 and "--camera-scale must be in [0.05, 1]" in res.output
