"""LEAD's sim-to-real relabels of CARLA training labels (outside leaderboard mode), hand-worked."""

import numpy as np
import pytest

from harness.training.config import preset_config
from harness.training.labels import carla_sim_to_real_bev, head_classes
from harness.types import Boxes3D

POLICE = "vehicle.dodge.charger_police_2020"


def test_bev_raster_every_class_hand_worked():
    # ids 0..12 = UNLABELED ROAD LANE_MARKERS STOP_SIGNS VEHICLE WALKER OBSTACLE PARKING SPECIAL BIKER GREEN
    # RED_NORMAL RED_NOT_NORMAL; stop signs -> 0, parking/special -> vehicle 4, red-not-normal -> red 11.
    raster = np.arange(13, dtype=np.uint8).reshape(1, 13)
    out = carla_sim_to_real_bev(raster)
    assert out.dtype == np.uint8 and out.shape == (1, 13)
    assert out.tolist() == [[0, 1, 2, 0, 4, 5, 6, 4, 4, 9, 10, 11, 11]]
    two_d = np.array([[3, 7], [12, 1]], np.uint8)
    assert carla_sim_to_real_bev(two_d).tolist() == [[0, 4], [11, 1]]


def test_bev_raster_rejects_foreign_ids():
    with pytest.raises(ValueError, match="13 CARLA BEV classes"):
        carla_sim_to_real_bev(np.array([[13]], np.uint8))


def _boxes():
    names = ("vehicle", "vehicle", "vehicle", "vehicle", "pedestrian", "traffic_cone", "bicycle", "barrier")
    src = ("car:vehicle.lincoln.mkz", f"car:{POLICE}", "static_prop_car", "static:static.prop.mesh",
           "walker:walker.pedestrian.0001", "static:static.prop.constructioncone", "car:vehicle.bh.crossbike",
           "static:static.prop.streetbarrier")
    n = len(names)
    return Boxes3D(np.zeros((n, 3)), np.ones((n, 3)), np.zeros(n), np.zeros((n, 2)), names, src,
                   tuple(str(i) for i in range(n)))


def test_box_classes_leaderboard_keeps_special_and_parking():
    # car -> VEHICLE 0, police car -> SPECIAL 4, parked props -> PARKING 6, walker 1, cone OBSTACLE 5, biker 7
    assert head_classes(_boxes(), "carla", carla_leaderboard_mode=True).tolist() == [0, 4, 6, 6, 1, 5, 7, -1]


def test_box_classes_sim_to_real_become_vehicle():
    assert head_classes(_boxes(), "carla", carla_leaderboard_mode=False).tolist() == [0, 0, 0, 0, 1, 5, 7, -1]
    # other heads never see the CARLA relabel
    assert head_classes(_boxes(), "navsim", carla_leaderboard_mode=True).tolist() == [0, 0, 0, 0, -1, -1, -1, -1]


def test_mode_follows_training_config():
    assert preset_config("carla-r34").carla_leaderboard_mode  # CARLA alone on the leaderboard rig
    assert preset_config("carla-r34").input_spec().carla_leaderboard_mode
    assert not preset_config("tiny-carla").carla_leaderboard_mode  # mixed NAVSIM + CARLA
    assert not preset_config("tiny-carla").input_spec().carla_leaderboard_mode
    assert not preset_config("navsim-r34").carla_leaderboard_mode
