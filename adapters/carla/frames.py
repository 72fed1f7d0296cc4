"""The one conversion from LEAD's CARLA ego frame to lead-bench's canonical frame (and back, for the writer).

CARLA ego frame (everything in LEAD's files): x forward, y **right**, z up, yaw **clockwise** seen from above,
origin on the ground under the vehicle centre. Canonical frame (DESIGN.md): x forward, y left, z up, yaw
counter-clockwise, origin at the rear-axle centre. The conversion is

* y -> -y for every position and y-velocity, yaw -> -yaw (a mirror, so it is done exactly once: here);
* then the origin moves to the rear axle, which LEAD's ``constants.CARLA_REAR_AXLE`` puts at
  (-1.389, 0, 0.360) m from the CARLA origin (LEAD itself ignores the offset). A pose k with centre c_k and
  canonical yaw psi_k has its rear axle at ``c_k + R(psi_k) (-1.389, 0)``, expressed relative to the current rear
  axle; static points simply shift by (+1.389, 0, -0.360).

Rasters (hdmap, box occupancy) use LEAD's layout, row = CARLA y (row 0 left), column = x (column 0 behind);
the canonical :class:`harness.types.BEVRaster` has row 0 = far front, column 0 = far left, which is exactly
``np.rot90(lead, k=1)``: the mirror is the change of layout, no pixel moves sideways.

LEAD's sensor perturbation (``carla_dataset_utils.perturbate_*``, ``common_utils.align_lidar``) moves the rig
``t`` metres to the right and yaws it ``r`` (clockwise); labels of a perturbed copy are expressed in that
moved CARLA frame with :func:`perturb_points` / :func:`perturb_yaws` before the conversion.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from harness.geometry import normalize_angle

F64 = npt.NDArray[np.float64]

#: ``lead/common/constants.py::CARLA_REAR_AXLE``: rear-axle centre relative to the CARLA vehicle origin (m).
CARLA_REAR_AXLE_M = np.array([-1.389, 0.0, 0.360])
_REAR_AXLE_XY = CARLA_REAR_AXLE_M[:2]


def _rot(yaw: npt.ArrayLike) -> F64:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)


def carla_points_to_canonical(points: npt.ArrayLike) -> F64:
    """Static points (N, 2) or (N, 3), CARLA ego frame -> canonical (mirror y, move the origin to the rear axle)."""
    p = np.array(points, dtype=np.float64)
    p[..., 1] = -p[..., 1]
    p -= np.array([CARLA_REAR_AXLE_M[0], 0.0, CARLA_REAR_AXLE_M[2]])[: p.shape[-1]]
    return p


def canonical_points_to_carla(points: npt.ArrayLike) -> F64:
    """The inverse of :func:`carla_points_to_canonical` (used by the writer)."""
    p = np.array(points, dtype=np.float64)
    p += np.array([CARLA_REAR_AXLE_M[0], 0.0, CARLA_REAR_AXLE_M[2]])[: p.shape[-1]]
    p[..., 1] = -p[..., 1]
    return p


def carla_yaws_to_canonical(yaw_rad: npt.ArrayLike) -> F64:
    """Clockwise CARLA yaw -> counter-clockwise canonical yaw, wrapped to [-pi, pi)."""
    return normalize_angle(-np.asarray(yaw_rad, dtype=np.float64))


def carla_vectors_to_canonical(v: npt.ArrayLike) -> F64:
    """Free vectors (velocities, accelerations) (..., 2): only the mirror applies."""
    out = np.array(v, dtype=np.float64)
    out[..., 1] = -out[..., 1]
    return out


def carla_centre_poses_to_canonical(centre_xy: npt.ArrayLike, yaw_rad: npt.ArrayLike) -> F64:
    """Vehicle-centre poses of the ego (CARLA frame, relative to the current centre) -> canonical rear-axle poses.

    Args:
        centre_xy: ``(N, 2)`` ego centre positions in the current CARLA ego frame (``future_positions[:, :2]``).
        yaw_rad: ``(N,)`` ego yaws relative to the current one, clockwise (``future_yaws``).

    Returns:
        ``(N, 3)`` (x, y, heading) of the rear axle in the canonical frame of the current rear axle.
    """
    c = np.array(centre_xy, dtype=np.float64).reshape(-1, 2)
    c[:, 1] = -c[:, 1]
    psi = -np.asarray(yaw_rad, dtype=np.float64).reshape(-1)
    rear = c + np.einsum("nij,j->ni", _rot(psi), _REAR_AXLE_XY) - _REAR_AXLE_XY
    return np.column_stack([rear, normalize_angle(psi)])


def canonical_poses_to_carla_centre(poses: npt.ArrayLike) -> tuple[F64, F64]:
    """Inverse of :func:`carla_centre_poses_to_canonical`: rear-axle poses (N, 3) -> CARLA centre xy (N, 2), yaw."""
    p = np.asarray(poses, dtype=np.float64).reshape(-1, 3)
    centre = p[:, :2] + _REAR_AXLE_XY - np.einsum("nij,j->ni", _rot(p[:, 2]), _REAR_AXLE_XY)
    centre[:, 1] = -centre[:, 1]
    return centre, normalize_angle(-p[:, 2])


def perturb_points(points: npt.ArrayLike, translation_m: float, rotation_deg: float) -> F64:
    """CARLA-frame points (N, 2|3) into the perturbed rig's CARLA frame: ``R(r)^T (p - (0, t[, 0]))``."""
    p = np.array(points, dtype=np.float64)
    if translation_m == 0.0 and rotation_deg == 0.0:
        return p
    p[..., 1] -= translation_m
    r = np.deg2rad(rotation_deg)
    c, s = np.cos(r), np.sin(r)
    x, y = p[..., 0].copy(), p[..., 1].copy()
    p[..., 0], p[..., 1] = c * x + s * y, -s * x + c * y
    return p


def perturb_vectors(v: npt.ArrayLike, rotation_deg: float) -> F64:
    """Free vectors (..., 2) into the perturbed rig's CARLA frame (rotation only)."""
    return perturb_points(v, 0.0, rotation_deg)


def perturb_yaws(yaw_rad: npt.ArrayLike, rotation_deg: float) -> F64:
    """CARLA yaws into the perturbed rig's frame (``yaw - r``)."""
    return np.asarray(yaw_rad, dtype=np.float64) - np.deg2rad(rotation_deg)


def lead_raster_to_canonical(raster: npt.ArrayLike) -> npt.NDArray[np.uint8]:
    """LEAD BEV layout (row = CARLA y, column = x) -> canonical (row 0 = far front, column 0 = far left)."""
    return np.ascontiguousarray(np.rot90(np.asarray(raster), k=1))


def canonical_raster_to_lead(raster: npt.ArrayLike) -> npt.NDArray[np.uint8]:
    return np.ascontiguousarray(np.rot90(np.asarray(raster), k=-1))
