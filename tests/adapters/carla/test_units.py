"""Hand-checked cases: rigs against LEAD's numbers, class and command maps, the frame conversion, BEV drawing,
file codecs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.carla import format as fmt
from adapters.carla.frames import (
    canonical_points_to_carla,
    canonical_poses_to_carla_centre,
    carla_centre_poses_to_canonical,
    carla_points_to_canonical,
    lead_raster_to_canonical,
    perturb_points,
)
from adapters.carla.labels import bev_semantics, canonical_box_class, canonical_command, source_box_class
from adapters.carla.rigs import Rig, carla_mount_to_ego_from_camera, get_rig, rig_for_target
from harness.errors import DataError
from harness.types import DrivingCommand
from harness.world.rig import nuplan_cameras


def _axis_yaw_deg(m: np.ndarray) -> float:
    z = m[:3, 2]  # optical axis in the ego frame
    return float(np.degrees(np.arctan2(z[1], z[0])))


# --- rigs -----------------------------------------------------------------------------------------------


def test_carla_leaderboard_rig_matches_lead_config():
    rig = get_rig("carla_lb_3cam")
    assert rig.target_dataset == fmt.TargetDataset.CARLA_LEADERBOARD2_3CAMERAS
    assert (rig.width, rig.height) == (1152, 384)
    left, front, right = rig.cameras
    # CARLA (0.1, -0.35, 2.25), yaw -54.5 (left): canonical (0.1 + 1.389, +0.35, 2.25 - 0.36), axis at +54.5 deg.
    np.testing.assert_allclose(left.ego_from_camera[:3, 3], (1.489, 0.35, 1.89), atol=1e-9)
    np.testing.assert_allclose(front.ego_from_camera[:3, 3], (1.739, 0.0, 1.89), atol=1e-9)
    np.testing.assert_allclose(right.ego_from_camera[:3, 3], (1.489, -0.35, 1.89), atol=1e-9)
    assert _axis_yaw_deg(left.ego_from_camera) == pytest.approx(54.5)
    assert _axis_yaw_deg(front.ego_from_camera) == pytest.approx(0.0)
    assert _axis_yaw_deg(right.ego_from_camera) == pytest.approx(-54.5)
    # FOV 60 deg at 384 px: f = 192 / tan(30 deg); image y axis points down (OpenCV).
    assert front.intrinsics[0, 0] == pytest.approx(192 / np.tan(np.radians(30)))
    np.testing.assert_allclose(front.ego_from_camera[:3, 1], (0, 0, -1), atol=1e-12)


def test_navsim_rig_reuses_nuplan_calibration_with_leads_taller_render():
    rig = get_rig("navsim_4cam")
    nup = {c.name: c for c in nuplan_cameras(0.25)}
    assert [c.name for c in rig.cameras] == ["CAM_L0", "CAM_F0", "CAM_R0", "CAM_B0"]
    for cam in rig.cameras:
        want = nup[cam.name].lidar_from_camera.copy()
        want[2, 3] += 0.45 - 0.36  # same height above the road on CARLA's lower rear axle
        np.testing.assert_allclose(cam.ego_from_camera, want, atol=1e-12)
        np.testing.assert_array_equal(cam.intrinsics, nup[cam.name].intrinsics)
        assert (cam.width, cam.height) == (480, 280)  # LEAD: 1920 // 4 x 1120 // 4, 10 rows cropped at load
    assert _axis_yaw_deg(rig.cameras[0].ego_from_camera) > 50 and abs(_axis_yaw_deg(rig.cameras[3].ego_from_camera)) > 170


def test_waymo_front_rig_matches_spec():
    rig = get_rig("waymo_front_3cam")
    yaws = [_axis_yaw_deg(c.ego_from_camera) for c in rig.cameras]
    assert [c.name for c in rig.cameras] == ["FRONT_LEFT", "FRONT", "FRONT_RIGHT"]
    assert yaws == pytest.approx([45.1, 0.1, -44.8], abs=1e-9)
    # Waymo's mount is 1.806 m above the road; the canonical CARLA origin (rear axle) is 0.36 m above it.
    np.testing.assert_allclose(rig.cameras[1].ego_from_camera[:3, 3], (1.519, 0.026, 1.806 - 0.36), atol=1e-9)
    assert rig.cameras[1].intrinsics[0, 2] == pytest.approx(488.128)
    assert rig.cameras[1].intrinsics[1, 2] == pytest.approx(719.156)  # ~ the centre of LEAD's 1440-row render
    assert (rig.width, rig.height) == (3 * 972, 1440)


def test_rig_json_round_trip_scaling_and_lookup():
    rig = get_rig("carla_lb_3cam").scaled(0.25)
    back = Rig.from_json(rig.to_json())
    assert (back.name, back.target_dataset) == (rig.name, rig.target_dataset)
    for a, b in zip(back.cameras, rig.cameras):
        assert (a.name, a.width, a.height) == (b.name, b.width, b.height)
        np.testing.assert_array_equal(a.intrinsics, b.intrinsics)
        np.testing.assert_array_equal(a.ego_from_camera, b.ego_from_camera)
    assert rig.cameras[0].intrinsics[0, 2] == pytest.approx(48.0) and rig.column_ranges()[1] == (96, 192)
    assert rig_for_target(3, where="x").name == "navsim_4cam"
    with pytest.raises(DataError, match="no rig for target_dataset 2"):
        rig_for_target(2, where="route r frame 0000")
    with pytest.raises(ValueError, match="known rigs"):
        get_rig("nope")


def test_pitched_mount_looks_down():
    m = carla_mount_to_ego_from_camera((0.0, 0.0, 2.0), (0.0, -10.0, 90.0))  # pitch down, yaw right (CARLA)
    axis = m[:3, 2]
    assert axis[2] == pytest.approx(-np.sin(np.radians(10)))
    assert axis[1] < -0.9  # canonical right is -y


# --- class and command maps -----------------------------------------------------------------------------


@pytest.mark.parametrize(("box", "want"), [
    ({"class": "ego_car"}, None),
    ({"class": "car", "type_id": "vehicle.lincoln.mkz_2020"}, "vehicle"),
    ({"class": "car", "type_id": "vehicle.ford.ambulance"}, "vehicle"),
    ({"class": "car", "type_id": "vehicle.kawasaki.ninja"}, "bicycle"),
    ({"class": "walker"}, "pedestrian"),
    ({"class": "static_prop_car"}, "vehicle"),
    ({"class": "static", "type_id": "static.prop.mesh",
      "mesh_path": "/Game/Carla/Static/Car/4Wheeled/ParkedVehicles/Lincoln/SM_LincolnParked.SM_LincolnParked"},
     "vehicle"),
    ({"class": "static", "type_id": "static.prop.constructioncone"}, "traffic_cone"),
    ({"class": "static", "type_id": "static.prop.trafficwarning"}, "czone_sign"),
    ({"class": "static", "type_id": "static.prop.streetbarrier"}, "barrier"),
    ({"class": "static", "type_id": "static.prop.bench01"}, "generic_object"),
    ({"class": "traffic_light"}, "traffic_light"),
    ({"class": "stop_sign"}, "stop_sign"),
])
def test_box_class_mapping(box, want):
    assert canonical_box_class(box) == want


def test_box_source_class_kept_and_unknown_class_rejected():
    assert source_box_class({"class": "car", "type_id": "vehicle.bh.crossbike"}) == "car:vehicle.bh.crossbike"
    assert source_box_class({"class": "walker"}) == "walker"
    with pytest.raises(ValueError, match="unknown LEAD box class 'tram'"):
        canonical_box_class({"class": "tram"})


@pytest.mark.parametrize(("six_way", "four_way"), [
    (-1, DrivingCommand.UNKNOWN), (0, DrivingCommand.UNKNOWN), (1, DrivingCommand.LEFT), (2, DrivingCommand.RIGHT),
    (3, DrivingCommand.STRAIGHT), (4, DrivingCommand.STRAIGHT), (5, DrivingCommand.LEFT), (6, DrivingCommand.RIGHT),
    (7, DrivingCommand.UNKNOWN),
])
def test_command_mapping(six_way, four_way):
    assert canonical_command(six_way) == four_way


# --- the frame conversion -------------------------------------------------------------------------------


def test_centre_pose_to_rear_axle_hand_case():
    # 10 m ahead, turned 90 deg clockwise in CARLA (facing CARLA +y = right): canonical heading -90 deg, its rear
    # axle 1.389 m behind its centre, i.e. at canonical y = +1.389; x relative to the current rear axle.
    out = carla_centre_poses_to_canonical([[10.0, 0.0]], [np.pi / 2])
    np.testing.assert_allclose(out, [[11.389, 1.389, -np.pi / 2]], atol=1e-12)
    np.testing.assert_allclose(carla_centre_poses_to_canonical([[0.0, 0.0]], [0.0]), [[0.0, 0.0, 0.0]])
    np.testing.assert_allclose(carla_points_to_canonical([[1.0, 2.0, 3.0]]), [[2.389, -2.0, 2.64]])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.floats(-50, 50), st.floats(-50, 50), st.floats(-3.1, 3.1)), min_size=1, max_size=8))
def test_pose_conversion_round_trips(poses):
    p = np.array(poses)
    centre, yaw = canonical_poses_to_carla_centre(p)
    np.testing.assert_allclose(carla_centre_poses_to_canonical(centre, yaw), p, atol=1e-9)
    np.testing.assert_allclose(canonical_points_to_carla(carla_points_to_canonical(p)), p, atol=1e-9)


def test_perturbation_matches_leads_formula():
    # LEAD: R(r)^T (p - (0, t)); a point at the rig's new origin goes to 0, the rig's forward axis to +x.
    t, r = 0.5, 10.0
    rr = np.radians(r)
    np.testing.assert_allclose(perturb_points([[0.0, 0.5]], t, r), [[0.0, 0.0]], atol=1e-12)
    np.testing.assert_allclose(perturb_points([[np.cos(rr), 0.5 + np.sin(rr)]], t, r), [[1.0, 0.0]], atol=1e-12)


def test_lead_raster_layout_to_canonical():
    lead = np.zeros((4, 6), np.uint8)  # rows = CARLA y (row 0 left), columns = x (column 0 behind)
    lead[0, 5] = 1  # front-left corner
    can = lead_raster_to_canonical(lead)
    assert can.shape == (6, 4) and can[0, 0] == 1  # row 0 = far front, column 0 = far left


# --- BEV drawing ----------------------------------------------------------------------------------------


def test_bev_semantics_draws_boxes_by_leads_rules():
    hdmap = np.zeros((256, 256), np.uint8)
    hdmap[120:136, :] = 1  # a road strip along x through the ego
    hdmap[127, :] = 3
    boxes = [
        {"class": "car", "type_id": "vehicle.lincoln.mkz_2020", "num_points": 10},
        {"class": "walker", "num_points": 0, "visible_pixels": 0},  # occluded: not drawn
        {"class": "traffic_light", "affects_ego": True, "state": "Red"},
        {"class": "static", "type_id": "static.prop.bench01", "num_points": 50},  # not a LEAD obstacle
    ]
    xy = np.array([[10.0, -5.0], [5.0, 5.0], [20.0, 0.0], [-10.0, 3.0]])
    bev = bev_semantics(hdmap, boxes, {}, xy, np.zeros(4), np.array([[2.0, 1.0], [0.3, 0.3], [0.5, 0.5], [1, 1]]))
    assert bev.shape == (512, 512)
    # car: x in [8, 12], y in [-6, -4] -> columns (x + 64) * 4, rows (y + 64) * 4
    assert np.all(bev[233:239, 289:303] == 4) and np.all(bev[233:239, 306:310] != 4)
    assert bev[(5 + 64) * 4, (5 + 64) * 4] != 5  # the occluded walker
    assert bev[64 * 4, (20 + 64) * 4] == 11  # red light affecting the ego, "normal" kind
    assert bev[(3 + 64) * 4, (-10 + 64) * 4] == 1  # road under the unlabelled bench
    assert bev[64 * 4 - 10, 0] == 1 and bev[127 * 2, 0] == 2  # road and lane marker, upsampled x2


# --- codecs ---------------------------------------------------------------------------------------------


def test_laz_round_trip_at_lead_precision(tmp_path):
    rng = np.random.default_rng(0)
    pts = rng.uniform(-30, 60, size=(500, 3))
    time = rng.integers(0, 5, 500).astype(np.uint8)
    path = tmp_path / "0000.laz"
    path.write_bytes(fmt.laz_bytes(pts, time))
    assert path.read_bytes()[:4] == b"LASF"
    xyz, t = fmt.read_laz(path, where="t")
    assert np.abs(xyz - pts).max() <= 0.05 + 1e-6 and np.array_equal(t, time)


def test_depth_upsampling_follows_opencv_bilinear():
    d = np.array([[0.0, 8.0], [4.0, 12.0]], dtype=np.float32)
    up = fmt.upsample_depth(d, 4)
    assert up.shape == (8, 8)
    # Column j samples x = (j + 0.5) / 4 - 0.5 clamped: j = 0, 1 -> 0 (clamped), j = 2 -> 0.125, j = 7 -> 1.
    np.testing.assert_allclose(up[0, [0, 1, 2, 3, 7]], [0.0, 0.0, 1.0, 3.0, 8.0])
    np.testing.assert_allclose(up[2, 2], 0.875 * 1.0 + 0.125 * 5.0)


def test_depth_and_pickle_codecs(tmp_path):
    d = np.array([[0.0, 10.0, 49.9, 80.0, np.inf]])
    enc = fmt.encode_depth(d)
    np.testing.assert_array_equal(enc, [[0, 51, 254, 255, 255]])
    np.testing.assert_allclose(fmt.decode_depth(enc), [[0.0, 10.0, 49.803921, 50.0, 50.0]], atol=1e-5)
    p = tmp_path / "0000.pkl"
    p.write_bytes(fmt.lzma_pickle_bytes({"a": np.arange(3, dtype=np.float32), "b": [1, "x"]}))
    back = fmt.read_lzma_pickle(p, where="t")
    assert back["b"] == [1, "x"] and back["a"].dtype == np.float32
