"""Camera rigs and per-camera views: the crop, resize and viewpoint augmentation of the stitched image.

A :class:`RigSpec` names the cameras stitched left to right into the model's ``(H, W)`` image; slot ``i`` is
``W // n`` pixels wide (the last slot takes the remainder). Each camera's crop is computed from its own
calibration, never from hard-coded pixel numbers (:func:`camera_view`):

- the whole width of the camera is kept (its horizontal field of view) and scaled to the slot width;
- the rows the slot's aspect ratio leaves room for form a band placed so that the camera's horizon (the row
  where the horizontal direction of its optical axis projects) sits at ``horizon_fraction`` of the band,
  clamped to the image;
- if the camera is too wide for the slot even at full height, its full height is kept instead and the
  columns are cropped symmetrically about the principal point.

The result is a virtual pinhole camera (intrinsics ``K_slot``) at the slot's resolution. Without
augmentation an image is cropped and resized with Pillow's antialiasing bilinear filter. With a
:class:`ViewAugment` (the ego displaced by ``shift_m`` to its left and rotated by ``yaw_rad``, the same
rigid transform that moves every label and target, see :mod:`harness.training.inputs`), each slot pixel's
ray is cast from the displaced camera, intersected with the ground plane (capped at ``max_depth_m``; rays
above the horizon count as at that distance) and projected into the real camera: exact for a pure rotation,
a planar-world approximation for the shift. Pixels that the real camera did not see are black (label
``-1``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image

from harness.errors import ConfigError
from harness.types import Camera

F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class RigSpec:
    """Cameras stitched left to right (source names) and where the horizon sits in each crop."""

    name: str
    cameras: tuple[str, ...]
    horizon_fraction: float = 0.4

    def __post_init__(self) -> None:
        if not self.cameras:
            raise ConfigError(f"rig {self.name!r} has no cameras")
        if not 0.0 <= self.horizon_fraction <= 1.0:
            raise ConfigError(f"rig {self.name!r}: horizon_fraction must be in [0, 1], got {self.horizon_fraction}")

    def slots(self, width: int) -> list[tuple[int, int]]:
        """(first column, width) of each camera's slot in a stitched image ``width`` pixels wide."""
        n = len(self.cameras)
        w = width // n
        if w < 8:
            raise ConfigError(f"rig {self.name!r}: {n} cameras do not fit an image {width} px wide")
        return [(i * w, w if i < n - 1 else width - i * w) for i in range(n)]


#: Named rigs (camera names are the sources' own; LEAD's CARLA data re-rendered with a real rig uses them too).
RIGS: dict[str, RigSpec] = {
    "navsim_4cam": RigSpec("navsim_4cam", ("CAM_L0", "CAM_F0", "CAM_R0", "CAM_B0")),
    "navsim_3cam": RigSpec("navsim_3cam", ("CAM_L0", "CAM_F0", "CAM_R0")),
    "waymo_front_3cam": RigSpec("waymo_front_3cam", ("FRONT_LEFT", "FRONT", "FRONT_RIGHT")),
    "carla_lb_3cam": RigSpec("carla_lb_3cam", ("rgb_left", "rgb_front", "rgb_right")),
}


def get_rig(name: str) -> RigSpec:
    if name not in RIGS:
        raise ConfigError(f"unknown camera rig {name!r}; known: {', '.join(sorted(RIGS))}")
    return RIGS[name]


@dataclass(frozen=True)
class ViewAugment:
    """A rigid displacement of the ego: ``shift_m`` to the left (y), then ``yaw_rad`` counter-clockwise.

    ``augmented_from_original`` maps points of the original ego frame into the displaced one.
    """

    shift_m: float = 0.0
    yaw_rad: float = 0.0

    @property
    def is_identity(self) -> bool:
        return self.shift_m == 0.0 and self.yaw_rad == 0.0

    def original_from_augmented(self) -> F64:
        c, s = np.cos(self.yaw_rad), np.sin(self.yaw_rad)
        m = np.eye(4)
        m[:2, :2] = [[c, -s], [s, c]]
        m[1, 3] = self.shift_m
        return m

    def augmented_from_original(self) -> F64:
        return np.linalg.inv(self.original_from_augmented())

    def points_xy(self, xy: npt.ArrayLike) -> F64:
        """(N, 2) points of the original ego frame -> the displaced frame."""
        p = np.asarray(xy, dtype=np.float64)
        c, s = np.cos(self.yaw_rad), np.sin(self.yaw_rad)
        q = p - np.array([0.0, self.shift_m])
        return np.stack([c * q[..., 0] + s * q[..., 1], -s * q[..., 0] + c * q[..., 1]], axis=-1)

    def vectors_xy(self, v: npt.ArrayLike) -> F64:
        """(N, 2) free vectors (velocities) -> the displaced frame (rotation only)."""
        p = np.asarray(v, dtype=np.float64)
        c, s = np.cos(self.yaw_rad), np.sin(self.yaw_rad)
        return np.stack([c * p[..., 0] + s * p[..., 1], -s * p[..., 0] + c * p[..., 1]], axis=-1)

    def headings(self, h: npt.ArrayLike) -> F64:
        return np.asarray(h, dtype=np.float64) - self.yaw_rad


@dataclass(frozen=True)
class CameraView:
    """How one camera fills one slot: crop box in source pixels and the slot's virtual intrinsics."""

    crop_box: tuple[float, float, float, float]  # left, top, right, bottom in source pixels
    slot_size: tuple[int, int]  # width, height
    intrinsics_slot: F64


def horizon_row(cam: Camera) -> float:
    """Image row (source pixels) where the horizontal direction of the optical axis projects."""
    rot = cam.ego_from_camera[:3, :3]
    axis = rot[:, 2].copy()
    axis[2] = 0.0
    n = np.linalg.norm(axis)
    if n < 1e-6:  # a camera looking straight down or up has no horizon: use the principal point
        return float(cam.intrinsics[1, 2])
    d = rot.T @ (axis / n)
    return float(cam.intrinsics[1, 1] * d[1] / d[2] + cam.intrinsics[1, 2])


def camera_view(cam: Camera, slot_w: int, slot_h: int, horizon_fraction: float) -> CameraView:
    """The crop of ``cam`` that fills a ``slot_w x slot_h`` slot (see the module docstring)."""
    k = cam.intrinsics
    w, h = float(cam.width), float(cam.height)
    rows = w * slot_h / slot_w
    if rows <= h:
        top = horizon_row(cam) - horizon_fraction * rows
        top = float(np.clip(top, 0.0, h - rows))
        box = (0.0, top, w, top + rows)
    else:
        cols = h * slot_w / slot_h
        left = float(np.clip(k[0, 2] + 0.5 - cols / 2, 0.0, w - cols))
        box = (left, 0.0, left + cols, h)
    s = slot_w / (box[2] - box[0])
    ks = np.array([[k[0, 0] * s, k[0, 1] * s, (k[0, 2] + 0.5 - box[0]) * s - 0.5],
                   [0.0, k[1, 1] * s, (k[1, 2] + 0.5 - box[1]) * s - 0.5],
                   [0.0, 0.0, 1.0]])
    return CameraView(box, (slot_w, slot_h), ks)


def render_slot(image: U8, cam: Camera, view: CameraView, aug: ViewAugment | None = None) -> U8:
    """The camera image as the slot sees it: ``(slot_h, slot_w, 3)`` uint8."""
    sw, sh = view.slot_size
    if aug is None or aug.is_identity:
        im = Image.fromarray(image)
        return np.asarray(im.resize((sw, sh), Image.Resampling.BILINEAR, box=view.crop_box))
    # Reduce the source by an integer factor first (box filter), so the bilinear gather does not alias.
    factor = max(1, int((view.crop_box[2] - view.crop_box[0]) / sw))
    src = np.asarray(Image.fromarray(image).reduce(factor)) if factor > 1 else image
    u, v, ok = source_coords(cam, view, aug)
    u = (u + 0.5) / factor - 0.5
    v = (v + 0.5) / factor - 0.5
    return _bilinear(src, u, v, ok)


def render_slot_labels(labels: npt.NDArray, cam: Camera, view: CameraView, aug: ViewAugment | None,
                       fill: float) -> npt.NDArray:
    """Per-pixel labels (class ids or depth) on the slot, nearest neighbour; unseen pixels get ``fill``."""
    u, v, ok = source_coords(cam, view, aug)
    h, w = labels.shape
    if (h, w) != (cam.height, cam.width):  # labels stored at another resolution than the image
        u, v = (u + 0.5) * w / cam.width - 0.5, (v + 0.5) * h / cam.height - 0.5
    ui, vi = np.floor(u + 0.5).astype(np.int64), np.floor(v + 0.5).astype(np.int64)
    ok &= (ui >= 0) & (ui < w) & (vi >= 0) & (vi < h)
    out = np.full(ui.shape, fill, dtype=np.float64)
    out[ok] = labels[vi[ok], ui[ok]]
    return out


def slot_depth(depth_m: npt.NDArray, cam: Camera, view: CameraView, aug: ViewAugment | None) -> npt.NDArray:
    """Depth (m along the optical axis) on the slot: each seen point re-expressed in the displaced camera."""
    d = render_slot_labels(depth_m, cam, view, aug, np.nan)
    if aug is None or aug.is_identity:
        return d
    sw, sh = view.slot_size
    u, v, _ = source_coords(cam, view, aug)  # the image pixel each slot pixel reads (depth sampled there)
    kinv = np.linalg.inv(cam.intrinsics)
    rays = np.stack([u, v, np.ones_like(u)], axis=-1) @ kinv.T  # original camera, z = 1
    pts_cam = rays * d[..., None]
    e = cam.ego_from_camera
    pts_ego = pts_cam @ e[:3, :3].T + e[:3, 3]
    a = aug.augmented_from_original()
    pts_aug = pts_ego @ a[:3, :3].T + a[:3, 3]
    einv = np.linalg.inv(e)
    z = pts_aug @ einv[2, :3] + einv[2, 3]
    return np.where(np.isfinite(d) & (z > 0), z, np.nan).reshape(sh, sw)


def source_coords(cam: Camera, view: CameraView, aug: ViewAugment | None, *, ground_z_m: float = 0.0,
                  max_depth_m: float = 40.0) -> tuple[F64, F64, npt.NDArray[np.bool_]]:
    """Source-pixel coordinates ``(u, v)`` (slot_h, slot_w) of every slot pixel, and where they are valid."""
    sw, sh = view.slot_size
    us, vs = np.meshgrid(np.arange(sw, dtype=np.float64), np.arange(sh, dtype=np.float64))
    rays = np.stack([us, vs, np.ones_like(us)], axis=-1) @ np.linalg.inv(view.intrinsics_slot).T
    e = cam.ego_from_camera
    if aug is None or aug.is_identity:
        q = rays
    else:
        oa = aug.original_from_augmented()
        d = rays @ (oa[:3, :3] @ e[:3, :3]).T  # ray directions in the original ego frame
        c = oa[:3, :3] @ e[:3, 3] + oa[:3, 3]  # the displaced camera centre in the original ego frame
        d = d / np.linalg.norm(d, axis=-1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            lam = np.where(d[..., 2] < -1e-6, (ground_z_m - c[2]) / d[..., 2], np.inf)
        lam = np.minimum(lam, max_depth_m)
        p = c + lam[..., None] * d
        q = (p - e[:3, 3]) @ e[:3, :3]  # into the real camera: R^T (p - t)
    k = cam.intrinsics
    z = q[..., 2]
    ok = z > 1e-6
    zs = np.where(ok, z, 1.0)
    u = (k[0, 0] * q[..., 0] + k[0, 1] * q[..., 1]) / zs + k[0, 2]
    v = k[1, 1] * q[..., 1] / zs + k[1, 2]
    return u, v, ok


def _bilinear(src: U8, u: F64, v: F64, ok: npt.NDArray[np.bool_]) -> U8:
    h, w = src.shape[:2]
    ok = ok & (u > -0.5) & (u < w - 0.5) & (v > -0.5) & (v < h - 0.5)
    u = np.clip(u, 0.0, w - 1.0)
    v = np.clip(v, 0.0, h - 1.0)
    u0 = np.minimum(np.floor(u).astype(np.int64), w - 2 if w > 1 else 0)
    v0 = np.minimum(np.floor(v).astype(np.int64), h - 2 if h > 1 else 0)
    u1, v1 = np.minimum(u0 + 1, w - 1), np.minimum(v0 + 1, h - 1)
    fu, fv = (u - u0)[..., None], (v - v0)[..., None]
    s = src.astype(np.float32)
    top = s[v0, u0] * (1 - fu) + s[v0, u1] * fu
    bot = s[v1, u0] * (1 - fu) + s[v1, u1] * fu
    out = top * (1 - fv) + bot * fv
    out[~ok] = 0.0
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
