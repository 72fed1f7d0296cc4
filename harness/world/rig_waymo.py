"""The WOD-E2E 8-camera rig as the embedded world mounts it.

Frames: the Waymo vehicle frame is x forward, y left, z up with its origin at the rear-axle centre; we put
that origin on the ground (Waymo's vehicle frame has the ground near z = 0), so it is the world's ego frame
and the renderer's "lidar frame" is the identity (:data:`WAYMO_EGO_FROM_RIG`). ``CameraSpec`` stores camera
axes as OpenCV's (x right, y down, z forward); the Waymo writer turns them back into Waymo's camera axes
(x forward, y left, z up) when it writes ``CameraCalibration.extrinsic``.

Where the numbers come from (specs/waymo_e2e.md §1.7):

* **Image sizes** (third-party report, unverified): FRONT, FRONT_LEFT, FRONT_RIGHT, SIDE_LEFT, SIDE_RIGHT
  972x1079 (portrait); REAR_LEFT, REAR_RIGHT 972x587; REAR 972x551.
* **Front cameras** (LEAD's hard-coded ``WAYMO_E2E_INTRINSIC`` / ``WAYMO_E2E_2025_CAMERA_SETTING``): FRONT
  f_u = 1112.178, f_v = 1112.041, c_u = 488.128, c_v = 719.156; mounts FRONT (1.519, 0.026, 1.806) yaw 0.1°,
  FRONT_LEFT (1.445, 0.153, 1.806) yaw +45.1°, FRONT_RIGHT (1.482, -0.116, 1.806) yaw -44.8°. The same
  intrinsics are used for FRONT_LEFT/RIGHT. c_v ≈ 719 in a 1079-row image means the principal point lies
  two thirds down (the delivered image is probably the top of a 1440-row calibrated frame, §1.7); we keep it.
* **Side and rear cameras** (derived, not published): the same lens for SIDE_LEFT/RIGHT (yaw ±90°); the rear
  cameras look back at ±135° and 180° with the same focal length and the principal point at the image
  centre, all mounted on the roof ring at the front cameras' height. Plausible choices, not measurements.
* **Distortion**: the world renders ideal pinhole images, so the calibration says k1 = k2 = p1 = p2 = k3 = 0
  (LEAD's k1 = -0.0736, k2 = -0.0366 would describe pixels the renderer does not produce).
"""

from __future__ import annotations

import numpy as np

from harness.geometry import se3_from_rt
from harness.world.rig import CameraSpec, LidarSpec

#: ``CameraName.Name`` order.
WAYMO_CAMERA_NAMES = ("FRONT", "FRONT_LEFT", "FRONT_RIGHT", "SIDE_LEFT", "SIDE_RIGHT", "REAR_LEFT", "REAR",
                      "REAR_RIGHT")

_FRONT_K = ((1112.178, 0.0, 488.128), (0.0, 1112.041, 719.156), (0.0, 0.0, 1.0))

#: name -> (width, height, intrinsics K, mount (x, y, z) m in the Waymo vehicle frame, yaw deg).
_RIG: dict[str, tuple[int, int, tuple[tuple[float, ...], ...], tuple[float, float, float], float]] = {
    "FRONT": (972, 1079, _FRONT_K, (1.519, 0.026, 1.806), 0.1),
    "FRONT_LEFT": (972, 1079, _FRONT_K, (1.445, 0.153, 1.806), 45.1),
    "FRONT_RIGHT": (972, 1079, _FRONT_K, (1.482, -0.116, 1.806), -44.8),
    "SIDE_LEFT": (972, 1079, _FRONT_K, (1.360, 0.190, 1.806), 90.0),
    "SIDE_RIGHT": (972, 1079, _FRONT_K, (1.360, -0.170, 1.806), -90.0),
    "REAR_LEFT": (972, 587, ((1112.0, 0.0, 485.5), (0.0, 1112.0, 293.0), (0.0, 0.0, 1.0)), (1.200, 0.150, 1.806),
                  135.0),
    "REAR": (972, 551, ((1112.0, 0.0, 485.5), (0.0, 1112.0, 275.0), (0.0, 0.0, 1.0)), (1.100, 0.000, 1.806),
             180.0),
    "REAR_RIGHT": (972, 587, ((1112.0, 0.0, 485.5), (0.0, 1112.0, 293.0), (0.0, 0.0, 1.0)),
                   (1.200, -0.150, 1.806), -135.0),
}

#: Maps OpenCV camera axes (x right, y down, z forward) into Waymo camera axes (x forward, y left, z up).
WAYMO_CAMERA_FROM_OPENCV = np.array([[0.0, 0.0, 1.0, 0.0],
                                     [-1.0, 0.0, 0.0, 0.0],
                                     [0.0, -1.0, 0.0, 0.0],
                                     [0.0, 0.0, 0.0, 1.0]])
WAYMO_CAMERA_FROM_OPENCV.setflags(write=False)

#: The renderer's rig frame is the Waymo vehicle frame, which is the world's ego frame (origin on the ground).
WAYMO_RIG = LidarSpec(ego_from_lidar=np.eye(4))


def vehicle_from_waymo_camera(name: str) -> np.ndarray:
    """``(4, 4)`` Waymo camera axes (x forward, y left, z up) -> vehicle frame, as the calibration stores it."""
    _, _, _, xyz, yaw_deg = _RIG[name]
    y = np.deg2rad(yaw_deg)
    rot = np.array([[np.cos(y), -np.sin(y), 0.0], [np.sin(y), np.cos(y), 0.0], [0.0, 0.0, 1.0]])
    return se3_from_rt(rot, xyz)


def waymo_cameras(scale: float = 0.25) -> tuple[CameraSpec, ...]:
    """The 8 cameras (in :data:`WAYMO_CAMERA_NAMES` order), images resized by ``scale`` (1.0 = 972 wide).

    ``lidar_from_camera`` is the camera (OpenCV axes) -> vehicle frame transform, since the rig frame is the
    vehicle frame (:data:`WAYMO_RIG`).
    """
    out = []
    for name in WAYMO_CAMERA_NAMES:
        width, height, k, _, _ = _RIG[name]
        spec = CameraSpec(name=name, width=width, height=height, intrinsics=np.array(k), distortion=np.zeros(5),
                          lidar_from_camera=vehicle_from_waymo_camera(name) @ WAYMO_CAMERA_FROM_OPENCV)
        out.append(spec if scale == 1.0 else spec.scaled(scale))
    return tuple(out)
