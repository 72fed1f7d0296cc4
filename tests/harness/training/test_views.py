"""Camera crops from calibrations, and viewpoint augmentation that agrees with the label transform."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import ConfigError
from harness.training.views import (
    ViewAugment,
    camera_view,
    get_rig,
    horizon_row,
    render_slot,
    source_coords,
)
from harness.types import Camera
from harness.world.rig import nuplan_cameras


def _camera(name: str = "CAM_F0", scale: float = 0.25) -> Camera:
    spec = next(c for c in nuplan_cameras(scale) if c.name == name)
    return Camera(name, spec.intrinsics, spec.lidar_from_camera, spec.width, spec.height)


def _level_camera(yaw_deg: float = 0.0, height_m: float = 1.5) -> Camera:
    """A pinhole 400x300 camera at (1.0, 0.2, height) looking horizontally at ``yaw_deg`` (OpenCV axes)."""
    y = np.deg2rad(yaw_deg)
    fwd = np.array([np.cos(y), np.sin(y), 0.0])
    left = np.array([-np.sin(y), np.cos(y), 0.0])
    up = np.array([0.0, 0.0, 1.0])
    m = np.eye(4)
    m[:3, :3] = np.column_stack([-left, -up, fwd])
    m[:3, 3] = (1.0, 0.2, height_m)
    k = np.array([[300.0, 0, 199.5], [0, 300.0, 149.5], [0, 0, 1]])
    return Camera("cam", k, m, 400, 300)


def test_nuplan_camera_fills_a_quarter_slot_without_crop():
    cam = _camera(scale=1.0)  # 1920 x 1080
    view = camera_view(cam, 480, 270, 0.4)
    assert view.crop_box == pytest.approx((0.0, 0.0, 1920.0, 1080.0))
    k = cam.intrinsics
    assert view.intrinsics_slot[0, 0] == pytest.approx(k[0, 0] / 4)
    assert view.intrinsics_slot[1, 2] == pytest.approx((k[1, 2] + 0.5) / 4 - 0.5)


def test_wide_slot_crops_rows_around_the_horizon():
    cam = _level_camera()  # horizon at the principal row 149.5
    assert horizon_row(cam) == pytest.approx(149.5)
    view = camera_view(cam, 200, 50, 0.4)  # needs 100 of 300 rows
    left, top, right, bottom = view.crop_box
    assert (left, right) == (0.0, 400.0)
    assert bottom - top == pytest.approx(100.0)
    assert top == pytest.approx(149.5 - 40.0)


def test_tall_slot_crops_columns_about_the_principal_point():
    cam = _level_camera()
    view = camera_view(cam, 100, 150, 0.4)  # 300 rows kept -> 200 of 400 columns
    left, top, right, bottom = view.crop_box
    assert (top, bottom) == (0.0, 300.0)
    assert right - left == pytest.approx(200.0)
    assert (left + right) / 2 == pytest.approx(200.0)


def test_identity_render_is_a_resize_of_the_crop():
    cam = _level_camera()
    img = np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8)
    view = camera_view(cam, 200, 150, 0.4)
    out = render_slot(img, cam, view)
    assert out.shape == (150, 200, 3)
    # a pure rotation/shift of zero through the remap path gives nearly the same image
    aug = render_slot(img, cam, view, ViewAugment(0.0, 1e-9))
    assert np.mean(np.abs(out.astype(int) - aug.astype(int))) < 40  # antialias vs box+bilinear, noise image


@settings(max_examples=30, deadline=None)
@given(shift=st.floats(-1.0, 1.0), yaw=st.floats(-0.1, 0.1), x=st.floats(5.0, 25.0), y=st.floats(-4.0, 4.0),
       cam_yaw=st.sampled_from([0.0, 50.0, -50.0]))
def test_augmented_view_of_a_ground_point_reads_the_real_pixel(shift, yaw, x, y, cam_yaw):
    """A ground point seen by the displaced camera maps back to where the real camera saw it."""
    cam = _level_camera(cam_yaw)
    view = camera_view(cam, 200, 150, 0.4)
    aug = ViewAugment(shift, yaw)
    p_orig = np.array([x, y, 0.0])
    # where the displaced (virtual) camera sees it: the point in the augmented ego frame, then the slot intrinsics
    p_aug = np.append(aug.points_xy(p_orig[None, :2])[0], 0.0)
    e = cam.ego_from_camera
    q = e[:3, :3].T @ (p_aug - e[:3, 3])
    if q[2] < 1.0:
        return
    ks = view.intrinsics_slot
    us, vs = ks[0, 0] * q[0] / q[2] + ks[0, 2], ks[1, 1] * q[1] / q[2] + ks[1, 2]
    if not (0 <= us <= 199 and 0 <= vs <= 149):
        return
    u, v, ok = source_coords(cam, view, aug, max_depth_m=1e6)
    # bilinear interpolation of the map at the (fractional) slot pixel
    iu, iv = int(np.floor(us)), int(np.floor(vs))
    fu, fv = us - iu, vs - iv
    iu1, iv1 = min(iu + 1, 199), min(iv + 1, 149)
    got_u = (u[iv, iu] * (1 - fu) + u[iv, iu1] * fu) * (1 - fv) + (u[iv1, iu] * (1 - fu) + u[iv1, iu1] * fu) * fv
    got_v = (v[iv, iu] * (1 - fu) + v[iv, iu1] * fu) * (1 - fv) + (v[iv1, iu] * (1 - fu) + v[iv1, iu1] * fu) * fv
    q0 = e[:3, :3].T @ (p_orig - e[:3, 3])
    k = cam.intrinsics
    want_u, want_v = k[0, 0] * q0[0] / q0[2] + k[0, 2], k[1, 1] * q0[1] / q0[2] + k[1, 2]
    assert ok[iv, iu]
    assert got_u == pytest.approx(want_u, abs=0.6)
    assert got_v == pytest.approx(want_v, abs=0.6)


def test_pure_rotation_is_exact_for_far_points():
    """A yaw of the ego moves a distant point's image by the camera's rotation, independent of depth."""
    cam = _level_camera()
    view = camera_view(cam, 400, 300, 0.5)
    u, v, _ = source_coords(cam, view, ViewAugment(0.0, np.deg2rad(5.0)))
    # The ego turned 5 deg left, so the view's centre column reads the original image f tan(5 deg) left of
    # the principal point (up to the parallax of the camera's 1 m lever arm at the 40 m depth cap, < 1 px).
    assert u[150, 200] == pytest.approx(200.0 - 300.0 * np.tan(np.deg2rad(5.0)), abs=1.0)
    assert v[150, 200] == pytest.approx(150.0, abs=1.0)


def test_augment_transforms_are_inverse_of_each_other():
    aug = ViewAugment(0.7, 0.05)
    pts = np.array([[3.0, 1.0], [10.0, -2.0]])
    m = aug.original_from_augmented()
    back = (m[:2, :2] @ aug.points_xy(pts).T).T + m[:2, 3]
    np.testing.assert_allclose(back, pts, atol=1e-12)
    np.testing.assert_allclose(aug.augmented_from_original() @ m, np.eye(4), atol=1e-12)


def test_rigs_and_slots():
    rig = get_rig("navsim_4cam")
    assert rig.cameras == ("CAM_L0", "CAM_F0", "CAM_R0", "CAM_B0")
    assert rig.slots(1920) == [(0, 480), (480, 480), (960, 480), (1440, 480)]
    assert get_rig("navsim_3cam").slots(385)[-1] == (256, 129)
    with pytest.raises(ConfigError, match="unknown camera rig"):
        get_rig("nope")
