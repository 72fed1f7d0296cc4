"""One geometry module for the whole project: SE(2)/SE(3) poses, quaternions, box corners, footprints.

Conventions (see DESIGN.md): x forward, y left, z up, metres, radians, headings counter-clockwise.
A pose array ``(..., 3)`` holds ``(x, y, heading)``. A transform is named for the frames it maps between:
``global_from_ego`` maps ego-frame coordinates into the global frame. Every function is vectorised over
leading dimensions; none loops over poses in Python.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import shapely

FloatArray = npt.NDArray[np.float64]


def normalize_angle(angle_rad: npt.ArrayLike) -> FloatArray:
    """Wrap angles to the principal value in [-pi, pi)."""
    a = np.asarray(angle_rad, dtype=np.float64)
    r = (a + np.pi) % (2.0 * np.pi) - np.pi
    # Rounding lands exactly on +pi for angles a hair below -pi; fold it to -pi to keep [-pi, pi).
    return r - 2.0 * np.pi * (r >= np.pi)


def rotation_2d(angle_rad: npt.ArrayLike) -> FloatArray:
    """Rotation matrices ``(..., 2, 2)`` for counter-clockwise angles."""
    a = np.asarray(angle_rad, dtype=np.float64)
    c, s = np.cos(a), np.sin(a)
    return np.stack([np.stack([c, -s], axis=-1), np.stack([s, c], axis=-1)], axis=-2)


def se2_compose(a_from_b: npt.ArrayLike, b_from_c: npt.ArrayLike) -> FloatArray:
    """Compose SE(2) poses: ``a_from_c = a_from_b ∘ b_from_c``. Both ``(..., 3)``, broadcast."""
    ab = np.asarray(a_from_b, dtype=np.float64)
    bc = np.asarray(b_from_c, dtype=np.float64)
    c, s = np.cos(ab[..., 2]), np.sin(ab[..., 2])
    x = ab[..., 0] + c * bc[..., 0] - s * bc[..., 1]
    y = ab[..., 1] + s * bc[..., 0] + c * bc[..., 1]
    return np.stack([x, y, normalize_angle(ab[..., 2] + bc[..., 2])], axis=-1)


def se2_inverse(a_from_b: npt.ArrayLike) -> FloatArray:
    """Invert SE(2) poses ``(..., 3)``: returns ``b_from_a``."""
    p = np.asarray(a_from_b, dtype=np.float64)
    c, s = np.cos(p[..., 2]), np.sin(p[..., 2])
    x = -(c * p[..., 0] + s * p[..., 1])
    y = -(-s * p[..., 0] + c * p[..., 1])
    return np.stack([x, y, normalize_angle(-p[..., 2])], axis=-1)


def se2_transform_points(a_from_b: npt.ArrayLike, points_b: npt.ArrayLike) -> FloatArray:
    """Map points ``(..., 2)`` given in frame b into frame a with one pose ``(3,)`` (or broadcastable)."""
    p = np.asarray(a_from_b, dtype=np.float64)
    pts = np.asarray(points_b, dtype=np.float64)
    c, s = np.cos(p[..., 2]), np.sin(p[..., 2])
    x = p[..., 0] + c * pts[..., 0] - s * pts[..., 1]
    y = p[..., 1] + s * pts[..., 0] + c * pts[..., 1]
    return np.stack([x, y], axis=-1)


def global_to_local(poses_global: npt.ArrayLike, origin_global: npt.ArrayLike) -> FloatArray:
    """Express global poses ``(..., 3)`` in the frame of ``origin_global`` ``(3,)``."""
    return se2_compose(se2_inverse(origin_global), poses_global)


def local_to_global(poses_local: npt.ArrayLike, origin_global: npt.ArrayLike) -> FloatArray:
    """Express poses ``(..., 3)`` given in the frame of ``origin_global`` in the global frame."""
    return se2_compose(origin_global, poses_local)


def se2_to_matrix(pose: npt.ArrayLike) -> FloatArray:
    """Homogeneous 3x3 matrices ``(..., 3, 3)`` for poses ``(..., 3)``."""
    p = np.asarray(pose, dtype=np.float64)
    m = np.zeros(p.shape[:-1] + (3, 3))
    m[..., :2, :2] = rotation_2d(p[..., 2])
    m[..., 0, 2] = p[..., 0]
    m[..., 1, 2] = p[..., 1]
    m[..., 2, 2] = 1.0
    return m


# --- SE(3) and quaternions -------------------------------------------------------------------------------


def quaternion_to_matrix(q_wxyz: npt.ArrayLike) -> FloatArray:
    """Rotation matrices ``(..., 3, 3)`` from unit quaternions ``(..., 4)`` in (w, x, y, z) order."""
    q = np.asarray(q_wxyz, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], axis=-1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], axis=-1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], axis=-1),
        ],
        axis=-2,
    )


def matrix_to_quaternion(rotation: npt.ArrayLike) -> FloatArray:
    """Unit quaternions (w, x, y, z) with w >= 0 from rotation matrices ``(..., 3, 3)``."""
    r = np.asarray(rotation, dtype=np.float64)
    m00, m11, m22 = r[..., 0, 0], r[..., 1, 1], r[..., 2, 2]
    # Four candidate magnitudes; choosing the largest per element keeps the division well-conditioned.
    cand = np.stack(
        [1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], axis=-1
    )
    k = np.argmax(cand, axis=-1)
    s = np.sqrt(np.maximum(np.take_along_axis(cand, k[..., None], axis=-1)[..., 0], 1e-300)) * 2.0
    m = r
    qs = np.stack(
        [
            np.stack([s / 4, (m[..., 2, 1] - m[..., 1, 2]) / s, (m[..., 0, 2] - m[..., 2, 0]) / s,
                      (m[..., 1, 0] - m[..., 0, 1]) / s], axis=-1),
            np.stack([(m[..., 2, 1] - m[..., 1, 2]) / s, s / 4, (m[..., 0, 1] + m[..., 1, 0]) / s,
                      (m[..., 0, 2] + m[..., 2, 0]) / s], axis=-1),
            np.stack([(m[..., 0, 2] - m[..., 2, 0]) / s, (m[..., 0, 1] + m[..., 1, 0]) / s, s / 4,
                      (m[..., 1, 2] + m[..., 2, 1]) / s], axis=-1),
            np.stack([(m[..., 1, 0] - m[..., 0, 1]) / s, (m[..., 0, 2] + m[..., 2, 0]) / s,
                      (m[..., 1, 2] + m[..., 2, 1]) / s, s / 4], axis=-1),
        ],
        axis=-2,
    )
    q = np.take_along_axis(qs, k[..., None, None], axis=-2)[..., 0, :]
    q = np.where(q[..., :1] < 0, -q, q)
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def yaw_to_quaternion(yaw_rad: npt.ArrayLike) -> FloatArray:
    """Quaternions (w, x, y, z) ``(..., 4)`` of rotations about +z."""
    y = np.asarray(yaw_rad, dtype=np.float64)
    z = np.zeros_like(y)
    return np.stack([np.cos(y / 2), z, z, np.sin(y / 2)], axis=-1)


def quaternion_yaw(q_wxyz: npt.ArrayLike) -> FloatArray:
    """Yaw (rotation about +z, counter-clockwise) of quaternions ``(..., 4)`` in (w, x, y, z) order."""
    q = np.asarray(q_wxyz, dtype=np.float64)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def se3_from_rt(rotation: npt.ArrayLike, translation: npt.ArrayLike) -> FloatArray:
    """Homogeneous 4x4 transforms ``(..., 4, 4)`` from rotations ``(..., 3, 3)`` and translations ``(..., 3)``."""
    r = np.asarray(rotation, dtype=np.float64)
    t = np.asarray(translation, dtype=np.float64)
    m = np.zeros(np.broadcast_shapes(r.shape[:-2], t.shape[:-1]) + (4, 4))
    m[..., :3, :3] = r
    m[..., :3, 3] = t
    m[..., 3, 3] = 1.0
    return m


def se3_inverse(a_from_b: npt.ArrayLike) -> FloatArray:
    """Invert rigid 4x4 transforms ``(..., 4, 4)`` exactly (transpose of the rotation)."""
    m = np.asarray(a_from_b, dtype=np.float64)
    r_t = np.swapaxes(m[..., :3, :3], -1, -2)
    return se3_from_rt(r_t, -(r_t @ m[..., :3, 3:4])[..., 0])


def se3_transform_points(a_from_b: npt.ArrayLike, points_b: npt.ArrayLike) -> FloatArray:
    """Map points ``(N, 3)`` from frame b to frame a with one 4x4 transform."""
    m = np.asarray(a_from_b, dtype=np.float64)
    p = np.asarray(points_b, dtype=np.float64)
    return p @ m[:3, :3].T + m[:3, 3]


# --- Boxes and footprints --------------------------------------------------------------------------------


def box_corners_2d(
    center_xy: npt.ArrayLike, length_m: npt.ArrayLike, width_m: npt.ArrayLike, heading_rad: npt.ArrayLike
) -> FloatArray:
    """Corners ``(..., 4, 2)`` of oriented rectangles in the order front-left, rear-left, rear-right, front-right.

    This is nuPlan's ``BBCoordsIndex`` order (FRONT_LEFT, REAR_LEFT, REAR_RIGHT, FRONT_RIGHT).
    """
    c = np.asarray(center_xy, dtype=np.float64)
    # Broadcast together so a scalar width can go with per-box lengths (np.stack needs equal shapes).
    hl, hw = np.broadcast_arrays(np.asarray(length_m, dtype=np.float64) / 2.0,
                                 np.asarray(width_m, dtype=np.float64) / 2.0)
    h = np.asarray(heading_rad, dtype=np.float64)
    local = np.stack(
        [np.stack([hl, hw], -1), np.stack([-hl, hw], -1), np.stack([-hl, -hw], -1), np.stack([hl, -hw], -1)],
        axis=-2,
    )
    cos, sin = np.cos(h)[..., None], np.sin(h)[..., None]
    x = c[..., None, 0] + cos * local[..., 0] - sin * local[..., 1]
    y = c[..., None, 1] + sin * local[..., 0] + cos * local[..., 1]
    return np.stack([x, y], axis=-1)


def box_corners_3d(
    center_xyz: npt.ArrayLike, size_lwh: npt.ArrayLike, heading_rad: npt.ArrayLike
) -> FloatArray:
    """Corners ``(..., 8, 3)`` of yaw-only 3-D boxes: the 4 bottom corners (FL, RL, RR, FR) then the 4 top ones."""
    c = np.asarray(center_xyz, dtype=np.float64)
    s = np.asarray(size_lwh, dtype=np.float64)
    xy = box_corners_2d(c[..., :2], s[..., 0], s[..., 1], heading_rad)
    z_lo = (c[..., 2] - s[..., 2] / 2)[..., None, None] * np.ones(xy.shape[:-1] + (1,))
    z_hi = (c[..., 2] + s[..., 2] / 2)[..., None, None] * np.ones(xy.shape[:-1] + (1,))
    return np.concatenate([np.concatenate([xy, z_lo], -1), np.concatenate([xy, z_hi], -1)], axis=-2)


def box_polygons(corners_xy: npt.ArrayLike) -> npt.NDArray[np.object_]:
    """Shapely polygons ``(...)`` from corner arrays ``(..., 4, 2)`` (vectorised through shapely 2)."""
    c = np.asarray(corners_xy, dtype=np.float64)
    return shapely.polygons(c)


def polyline_arc_length(points_xy: npt.ArrayLike) -> FloatArray:
    """Cumulative arc length ``(N,)`` of a polyline ``(N, 2)``, starting at 0."""
    p = np.asarray(points_xy, dtype=np.float64)
    seg = np.linalg.norm(np.diff(p, axis=0), axis=1)
    return np.concatenate([[0.0], np.cumsum(seg)])


def polyline_headings(points_xy: npt.ArrayLike) -> FloatArray:
    """Heading ``(N,)`` of each vertex of a polyline: the direction of the following segment (last repeats)."""
    p = np.asarray(points_xy, dtype=np.float64)
    d = np.diff(p, axis=0)
    h = np.arctan2(d[:, 1], d[:, 0])
    return np.concatenate([h, h[-1:]])
