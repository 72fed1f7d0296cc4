"""Pinhole camera rendering of the embedded world: textured ground, sky, and shaded 3-D boxes.

The camera is fixed on the ego and the ground is the plane z = 0 of the world's ego frame, so the ground
point seen by every pixel is computed once. A frame then costs one rigid 2-D transform of those points, one
texture lookup and a painter's-algorithm pass over the visible box faces (far boxes first; a box's visible
faces never overlap each other, so per-box order is enough). Distortion is not rendered: images are ideal
pinhole images of ``spec.intrinsics``.

Pixel convention: pixel (column c, row r) is centred on image coordinates (u, v) = (c, r), i.e. a point
projecting to (u, v) lands in pixel (round(u), round(v)).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

from harness.geometry import box_corners_3d
from harness.world.rig import CameraSpec

if TYPE_CHECKING:
    from harness.world.sensors import GroundTexture

F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]

_SKY_ZENITH = np.array([96.0, 146.0, 214.0])
_SKY_HORIZON = np.array([196.0, 212.0, 230.0])
_HAZE = np.array([182.0, 194.0, 206.0])
_FOG_LEVELS = 64

# Corner indices of harness.geometry.box_corners_3d (bottom FL, RL, RR, FR, then top) per face, in order
# around the face: front (+x), rear (-x), left (+y), right (-y), top, bottom.
_FACES = np.array([[0, 3, 7, 4], [1, 2, 6, 5], [0, 1, 5, 4], [3, 2, 6, 7], [4, 5, 6, 7], [0, 1, 2, 3]])


@dataclass(frozen=True)
class EgoBoxes:
    """One frame's boxes in the world's ego frame (ground z = 0).

    Attributes:
        center: ``(N, 3)`` box centres, m.
        size: ``(N, 3)`` length, width, height, m.
        yaw: ``(N,)`` heading relative to the ego, rad.
        color: ``(N, 3)`` uint8 RGB base colour.
        intensity: ``(N,)`` LiDAR reflectivity on the 0-255 scale.
    """

    center: F64
    size: F64
    yaw: F64
    color: U8
    intensity: F32

    def __len__(self) -> int:
        return len(self.center)


class CameraRenderer:
    """Renders one camera.

    Args:
        spec: the camera (size and intrinsics are used; distortion is not rendered).
        ego_from_camera: ``(4, 4)`` camera (OpenCV axes) -> world ego frame.
        texture: the rasterised ground.
        near_m: near clipping plane (box faces are clipped against it).
        ground_max_m: ground farther than this along the ray is drawn as haze.
        haze_m: distance scale of the aerial-perspective fog (fraction ``1 - exp(-d / haze_m)``).
    """

    def __init__(self, spec: CameraSpec, ego_from_camera: F64, texture: GroundTexture, *, near_m: float = 0.1,
                 ground_max_m: float = 400.0, haze_m: float = 350.0) -> None:
        self.spec = spec
        self.texture = texture
        self.near_m = near_m
        m = np.asarray(ego_from_camera, dtype=np.float64)
        self.rotation, self.translation = m[:3, :3].copy(), m[:3, 3].copy()
        k = spec.intrinsics
        self._fx, self._fy, self._cx, self._cy = k[0, 0], k[1, 1], k[0, 2], k[1, 2]
        h, w = spec.height, spec.width
        u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
        rays = np.stack([(u - self._cx) / self._fx, (v - self._cy) / self._fy, np.ones_like(u)], axis=-1)
        rays = (rays @ self.rotation.T).reshape(-1, 3)  # ego-frame direction per pixel
        norm = np.linalg.norm(rays, axis=1)
        dz = rays[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            s = np.where(dz < -1e-9, -self.translation[2] / dz, np.inf)
        dist = s * norm
        ground = dist < ground_max_m
        # Sky: a vertical gradient by ray elevation; below the horizon but beyond ground_max_m: haze.
        elev = np.clip(np.arcsin(np.clip(dz / norm, -1.0, 1.0)) / 0.5, 0.0, 1.0)[:, None]
        base = _SKY_HORIZON * (1 - elev) + _SKY_ZENITH * elev
        base[dz < 0] = _HAZE
        self._base = base.reshape(h, w, 3).round().astype(np.uint8)
        self._ground_pix = np.flatnonzero(ground)
        gxy = self.translation[:2] + s[ground, None] * rays[ground, :2]
        self._ground_xy = gxy.astype(np.float32)
        fog = 1.0 - np.exp(-dist[ground] / haze_m)
        colors = np.asarray(texture.colors, dtype=np.float64)
        # Fog is quantised so that a frame needs one integer table lookup per pixel, no float maths.
        self._fog_offset = np.round(fog * (_FOG_LEVELS - 1)).astype(np.int32) * len(colors)
        f = np.linspace(0.0, 1.0, _FOG_LEVELS)[:, None, None]
        self._fog_lut = (colors[None] * (1 - f) + _HAZE * f).reshape(-1, 3).round().astype(np.uint8)

    # --- geometry ---------------------------------------------------------------------------------------

    def camera_from_ego(self, points_ego: npt.ArrayLike) -> F64:
        """Ego-frame points ``(..., 3)`` in camera axes (x right, y down, z forward)."""
        return (np.asarray(points_ego, dtype=np.float64) - self.translation) @ self.rotation

    def project(self, points_ego: npt.ArrayLike) -> tuple[F64, F64]:
        """Pinhole projection of ego-frame points ``(N, 3)``: pixel coordinates ``(N, 2)`` (u, v) and depth ``(N,)``
        along the optical axis (m). Points with depth <= 0 are behind the camera; their (u, v) are meaningless."""
        pc = self.camera_from_ego(points_ego)
        z = pc[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = np.stack([self._fx * pc[..., 0] / z + self._cx, self._fy * pc[..., 1] / z + self._cy], axis=-1)
        return uv, z

    # --- rendering --------------------------------------------------------------------------------------

    def render(self, ego_pose: npt.ArrayLike, boxes: EgoBoxes, light_ego: F64) -> U8:
        """The image ``(height, width, 3)`` uint8 RGB for one frame.

        Args:
            ego_pose: ``(3,)`` global (x, y, heading) of the rear axle.
            boxes: the frame's boxes in the ego frame.
            light_ego: ``(3,)`` unit vector towards the sun, ego frame (shades box faces).
        """
        img = self._base.copy()
        mats = self.texture.materials_at(ego_pose, self._ground_xy)
        img.reshape(-1, 3)[self._ground_pix] = self._fog_lut[self._fog_offset + mats]
        if len(boxes):
            img = self._draw_boxes(img, boxes, light_ego)
        return img

    def _draw_boxes(self, img: U8, boxes: EgoBoxes, light_ego: F64) -> U8:
        w, h = self.spec.width, self.spec.height
        corners = box_corners_3d(boxes.center, boxes.size, boxes.yaw)
        pc = self.camera_from_ego(corners)  # (N, 8, 3)
        x, y, z = pc[..., 0], pc[..., 1], pc[..., 2]
        outside = (
            np.all(z < self.near_m, axis=1)
            | np.all(self._fx * x + self._cx * z < 0, axis=1)
            | np.all(self._fx * x + (self._cx - w) * z > 0, axis=1)
            | np.all(self._fy * y + self._cy * z < 0, axis=1)
            | np.all(self._fy * y + (self._cy - h) * z > 0, axis=1)
        )
        # The camera in each box's own frame decides which faces it sees and how far the box is.
        c, s = np.cos(boxes.yaw), np.sin(boxes.yaw)
        d = self.translation - boxes.center
        local = np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1], d[:, 2]], axis=1)
        half = boxes.size / 2
        inside = np.all(np.abs(local) <= half, axis=1)  # a box around the camera would cover the image
        keep = np.flatnonzero(~outside & ~inside)
        if len(keep) == 0:
            return img
        gap = np.linalg.norm(np.maximum(np.abs(local) - half, 0.0), axis=1)
        visible = np.stack([local[:, 0] > half[:, 0], local[:, 0] < -half[:, 0], local[:, 1] > half[:, 1],
                            local[:, 1] < -half[:, 1], local[:, 2] > half[:, 2], local[:, 2] < -half[:, 2]], axis=1)
        zeros = np.zeros_like(c)
        normals = np.stack([np.stack([c, s, zeros], 1), np.stack([-c, -s, zeros], 1), np.stack([-s, c, zeros], 1),
                            np.stack([s, -c, zeros], 1), np.stack([zeros, zeros, zeros + 1], 1),
                            np.stack([zeros, zeros, zeros - 1], 1)], axis=1)  # (N, 6, 3)
        shade = 0.5 + 0.5 * np.clip(normals @ light_ego, 0.0, 1.0)  # (N, 6)
        fill = np.clip(boxes.color[:, None, :] * shade[..., None], 0, 255).astype(np.uint8)
        pil = Image.fromarray(img)
        draw = ImageDraw.Draw(pil)
        for i in keep[np.argsort(-gap[keep], kind="stable")]:
            for f in np.flatnonzero(visible[i]):
                poly = pc[i, _FACES[f]]
                if poly[:, 2].min() < self.near_m:
                    poly = _clip_near(poly, self.near_m)
                    if len(poly) < 3:
                        continue
                uv = np.stack([self._fx * poly[:, 0] / poly[:, 2] + self._cx,
                               self._fy * poly[:, 1] / poly[:, 2] + self._cy], axis=1)
                # +0.5: PIL's pixel c spans [c, c + 1), ours is centred on c.
                xy = np.clip(uv + 0.5, -1e5, 1e5).ravel().tolist()
                color = tuple(int(v) for v in fill[i, f])
                draw.polygon(xy, fill=color, outline=tuple(int(v * 0.7) for v in color))
        return np.asarray(pil).copy()


class CameraLabelRenderer:
    """Per-pixel labels of one camera: a class id and the depth along the optical axis (m).

    Exactly the pixels :class:`CameraRenderer` paints: the same ground rays and the same box faces drawn
    far-first, so labels and the RGB image agree pixel for pixel (except the 1-px box outlines, which the RGB
    renderer draws darker and which are labelled with their box here).

    Args:
        camera: the RGB renderer of this camera (its precomputed rays are reused).
        material_classes: ``(n_materials,)`` class id per ground material (index = material id).
        sky_class: class id of pixels that see no ground and no box (depth ``inf``).
    """

    def __init__(self, camera: CameraRenderer, material_classes: npt.ArrayLike, sky_class: int = 0) -> None:
        self.camera = camera
        self.material_classes = np.asarray(material_classes, dtype=np.uint8)
        self.sky_class = int(sky_class)
        spec = camera.spec
        h, w = spec.height, spec.width
        u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
        self._rays_cam = np.stack([(u - camera._cx) / camera._fx, (v - camera._cy) / camera._fy], axis=-1)
        # Depth along the optical axis of every ground pixel: the ground point in camera axes, z component.
        gxy = camera._ground_xy.astype(np.float64)
        ground = np.column_stack([gxy, np.zeros(len(gxy))])
        self._ground_depth = camera.camera_from_ego(ground)[:, 2].astype(np.float32)

    def render(self, ego_pose: npt.ArrayLike, boxes: EgoBoxes, box_classes: npt.ArrayLike) -> tuple[U8, F32]:
        """``(classes (H, W) uint8, depth_m (H, W) float32)`` for one frame; depth is ``inf`` at the sky.

        Args:
            ego_pose: ``(3,)`` global (x, y, heading) of the rear axle.
            boxes: the frame's boxes in the ego frame.
            box_classes: ``(N,)`` class id per box.
        """
        cam = self.camera
        h, w = cam.spec.height, cam.spec.width
        classes = np.full(h * w, self.sky_class, dtype=np.uint8)
        depth = np.full(h * w, np.inf, dtype=np.float32)
        mats = cam.texture.materials_at(ego_pose, cam._ground_xy)
        classes[cam._ground_pix] = self.material_classes[mats]
        depth[cam._ground_pix] = self._ground_depth
        classes, depth = classes.reshape(h, w), depth.reshape(h, w)
        if len(boxes):
            self._draw_boxes(classes, depth, boxes, np.asarray(box_classes, dtype=np.uint8))
        return classes, depth

    def _draw_boxes(self, classes: U8, depth: F32, boxes: EgoBoxes, box_classes: U8) -> None:
        cam = self.camera
        w, h = cam.spec.width, cam.spec.height
        corners = box_corners_3d(boxes.center, boxes.size, boxes.yaw)
        pc = cam.camera_from_ego(corners)
        x, y, z = pc[..., 0], pc[..., 1], pc[..., 2]
        outside = (
            np.all(z < cam.near_m, axis=1)
            | np.all(cam._fx * x + cam._cx * z < 0, axis=1)
            | np.all(cam._fx * x + (cam._cx - w) * z > 0, axis=1)
            | np.all(cam._fy * y + cam._cy * z < 0, axis=1)
            | np.all(cam._fy * y + (cam._cy - h) * z > 0, axis=1)
        )
        c, s = np.cos(boxes.yaw), np.sin(boxes.yaw)
        d = cam.translation - boxes.center
        local = np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1], d[:, 2]], axis=1)
        half = boxes.size / 2
        inside = np.all(np.abs(local) <= half, axis=1)
        keep = np.flatnonzero(~outside & ~inside)
        if len(keep) == 0:
            return
        gap = np.linalg.norm(np.maximum(np.abs(local) - half, 0.0), axis=1)
        visible = np.stack([local[:, 0] > half[:, 0], local[:, 0] < -half[:, 0], local[:, 1] > half[:, 1],
                            local[:, 1] < -half[:, 1], local[:, 2] > half[:, 2], local[:, 2] < -half[:, 2]], axis=1)
        # Paint face ids (1-based) far-first, then get each painted pixel's depth from its face's plane.
        ids = Image.new("I", (w, h), 0)
        draw = ImageDraw.Draw(ids)
        planes: list[tuple[F64, float]] = []
        owners: list[int] = []
        for i in keep[np.argsort(-gap[keep], kind="stable")]:
            for f in np.flatnonzero(visible[i]):
                face = pc[i, _FACES[f]]
                poly = _clip_near(face, cam.near_m) if face[:, 2].min() < cam.near_m else face
                if len(poly) < 3:
                    continue
                uv = np.stack([cam._fx * poly[:, 0] / poly[:, 2] + cam._cx,
                               cam._fy * poly[:, 1] / poly[:, 2] + cam._cy], axis=1)
                normal = np.cross(face[1] - face[0], face[2] - face[0])
                planes.append((normal, float(normal @ face[0])))
                owners.append(int(i))
                xy = np.clip(uv + 0.5, -1e5, 1e5).ravel().tolist()
                draw.polygon(xy, fill=len(planes), outline=len(planes))
        fid = np.asarray(ids, dtype=np.int64)
        hit = fid > 0
        if not hit.any():
            return
        n = np.array([p[0] for p in planes])
        dist = np.array([p[1] for p in planes])
        k = fid[hit] - 1
        ray = self._rays_cam[hit]
        denom = n[k, 0] * ray[:, 0] + n[k, 1] * ray[:, 1] + n[k, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            zc = np.where(np.abs(denom) > 1e-12, dist[k] / denom, np.inf)
        depth[hit] = np.where(zc > 0, zc, cam.near_m).astype(np.float32)
        classes[hit] = box_classes[np.array(owners)[k]]


def _clip_near(poly: F64, near_m: float) -> F64:
    """Sutherland-Hodgman clip of a convex polygon ``(K, 3)`` (camera axes) to the half-space z >= near_m."""
    out = []
    k = len(poly)
    for j in range(k):
        a, b = poly[j], poly[(j + 1) % k]
        a_in, b_in = a[2] >= near_m, b[2] >= near_m
        if a_in:
            out.append(a)
        if a_in != b_in:
            out.append(a + (near_m - a[2]) / (b[2] - a[2]) * (b - a))
    return np.array(out).reshape(-1, 3)

