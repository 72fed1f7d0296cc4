"""Ray-cast LiDAR for the embedded world: a merged cloud of several spinning scanners.

Every ray (scanner, beam, azimuth step) is fixed on the ego, and the ground is a horizontal plane in the lidar
frame, so ground hits, the rays the ego's own body blocks, the range noise and the dropout are computed once.
Per sweep only the boxes change: a box is tested against the rays inside its azimuth and elevation window
(a broad phase), all candidate (ray, box) pairs go through one vectorised slab test, and the nearest hit per
ray wins against the ground.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from harness.world.rig import LidarScanner, LidarSpec

if TYPE_CHECKING:
    from harness.world.render_camera import EgoBoxes
    from harness.world.sensors import GroundTexture

F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]

#: The ego's body (nuPlan Pacifica, ``get_pacifica_parameters``): length, width, height (m), and its centre
#: in the world's ego frame (1.461 m ahead of the rear axle, resting on the ground).
EGO_SIZE_M = np.array([5.176, 2.297, 1.777])
EGO_CENTER_M = np.array([1.461, 0.0, 1.777 / 2])

_TWO_PI = 2.0 * np.pi


def _slab(origins: F64, dirs: F64, centers: F64, cos_yaw: F64, sin_yaw: F64, half: F64) -> F64:
    """Entry distance of rays into yaw-only boxes (``inf`` on a miss or when the ray starts inside).

    All arguments are per pair, shapes ``(M, 3)`` or ``(M,)``; directions need not be unit length (the distance
    is in units of the direction's length).
    """
    rel = origins - centers
    ox = cos_yaw * rel[:, 0] + sin_yaw * rel[:, 1]
    oy = -sin_yaw * rel[:, 0] + cos_yaw * rel[:, 1]
    dx = cos_yaw * dirs[:, 0] + sin_yaw * dirs[:, 1]
    dy = -sin_yaw * dirs[:, 0] + cos_yaw * dirs[:, 1]
    o = (ox, oy, rel[:, 2])
    d = (dx, dy, dirs[:, 2])
    t_near = np.full(len(rel), -np.inf)
    t_far = np.full(len(rel), np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        for k in range(3):
            inv = 1.0 / d[k]
            t1 = (-half[:, k] - o[k]) * inv
            t2 = (half[:, k] - o[k]) * inv
            np.maximum(t_near, np.minimum(t1, t2), out=t_near)
            np.minimum(t_far, np.maximum(t1, t2), out=t_far)
    # NaN (a ray parallel to and exactly on a face) compares false and counts as a miss.
    hit = (t_near <= t_far) & (t_near > 0)
    return np.where(hit, t_near, np.inf)


class _ScannerRays:
    """The fixed rays of one scanner, in the lidar frame, as a (beam, azimuth step) grid."""

    def __init__(self, scanner: LidarScanner, offset: int) -> None:
        self.scanner = scanner
        self.origin = np.asarray(scanner.origin_m, dtype=np.float64)
        self.elevations = np.radians(np.asarray(scanner.elevations_deg, dtype=np.float64))
        self.step = _TWO_PI / scanner.azimuth_steps
        start, end = np.radians(scanner.azimuth_sector_deg)
        self.start = float(start)
        self.n_full = scanner.azimuth_steps
        self.n_cols = max(1, min(self.n_full, int(round((end - start) / self.step))))
        az = self.start + self.step * np.arange(self.n_cols)
        ce, se = np.cos(self.elevations)[:, None], np.sin(self.elevations)[:, None]
        self.dirs = np.stack([ce * np.cos(az), ce * np.sin(az), np.broadcast_to(se, (len(ce), self.n_cols))],
                             axis=-1).reshape(-1, 3)
        self.offset = offset  # index of this scanner's first ray in the merged ray table
        self.size = len(self.dirs)


class LidarCaster:
    """Casts one merged sweep.

    Args:
        spec: the merged LiDAR (frame, scanners, noise, dropout).
        texture: the rasterised ground (material -> intensity).
        seed: seeds the per-ray range noise, intensity jitter and dropout.
    """

    def __init__(self, spec: LidarSpec, texture: GroundTexture, *, seed: int = 0) -> None:
        self.spec = spec
        self.texture = texture
        m = np.asarray(spec.ego_from_lidar, dtype=np.float64)
        self._ego_from_lidar = m
        self._yaw_el = float(np.arctan2(m[1, 0], m[0, 0]))  # rotation is about z only (LidarSpec checks)
        ground_z = -m[2, 3]  # the plane ego z = 0, expressed in the lidar frame
        self.scanners: list[_ScannerRays] = []
        offset = 0
        for sc in spec.scanners:
            self.scanners.append(_ScannerRays(sc, offset))
            offset += self.scanners[-1].size
        n = offset
        self._dirs = np.concatenate([s.dirs for s in self.scanners]) if n else np.zeros((0, 3))
        self._origins = np.concatenate([np.broadcast_to(s.origin, (s.size, 3)) for s in self.scanners]) if n \
            else np.zeros((0, 3))
        self._ring = np.concatenate([np.repeat(np.arange(len(s.elevations)), s.n_cols) for s in self.scanners]
                                    ) if n else np.zeros(0, np.int64)
        self._lidar_id = np.concatenate([np.full(s.size, s.scanner.lidar_id) for s in self.scanners]) if n \
            else np.zeros(0, np.int64)
        max_range = np.concatenate([np.full(s.size, s.scanner.max_range_m) for s in self.scanners]) if n \
            else np.zeros(0)
        dz = self._dirs[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            t_ground = np.where(dz < -1e-12, (ground_z - self._origins[:, 2]) / dz, np.inf)
        # The ego's own body: rays into it never return (nuPlan's clouds carry no ego points either).
        body_center = self._lidar_from_ego_points(EGO_CENTER_M[None])[0]
        t_body = _slab(self._origins, self._dirs, np.broadcast_to(body_center, (n, 3)),
                       np.full(n, np.cos(-self._yaw_el)), np.full(n, np.sin(-self._yaw_el)),
                       np.broadcast_to(EGO_SIZE_M / 2, (n, 3)))
        rng = np.random.default_rng(seed)
        self._noise_m = np.clip(rng.normal(0.0, spec.range_noise_m, n), -3 * spec.range_noise_m,
                                3 * spec.range_noise_m)
        self._intensity_gain = rng.uniform(0.85, 1.15, n).astype(np.float32)
        dropped = rng.random(n) < spec.dropout
        self._t_max = np.where(dropped, -1.0, np.minimum(max_range, t_body))
        self._max_range = max_range
        self._t_ground = np.where(t_ground <= self._t_max, t_ground, np.inf)
        ground_pts = self._origins + np.where(np.isfinite(self._t_ground), self._t_ground, 0.0)[:, None] * self._dirs
        self._ground_ego_xy = self._ego_from_lidar_points(ground_pts)[:, :2].astype(np.float32)

    @property
    def num_rays(self) -> int:
        """Rays per sweep over all scanners (before range, body blocking and dropout)."""
        return len(self._dirs)

    def rays(self) -> tuple[F64, F64]:
        """Every ray's origin and unit direction, ``(num_rays, 3)`` each, lidar frame."""
        return self._origins, self._dirs

    def _lidar_from_ego_points(self, p: F64) -> F64:
        m = self._ego_from_lidar
        return (p - m[:3, 3]) @ m[:3, :3]

    def _ego_from_lidar_points(self, p: F64) -> F64:
        m = self._ego_from_lidar
        return p @ m[:3, :3].T + m[:3, 3]

    def _candidates(self, centers: F64, size: F64, yaw: F64) -> tuple[np.ndarray, np.ndarray]:
        """Broad phase: flat ray indices and box indices of every (ray, box) pair worth a slab test."""
        rays: list[np.ndarray] = []
        owners: list[np.ndarray] = []
        c, s = np.cos(yaw), np.sin(yaw)
        hl, hw, hh = size[:, 0] / 2, size[:, 1] / 2, size[:, 2] / 2
        fx = np.stack([hl, -hl, -hl, hl], 1)
        fy = np.stack([hw, hw, -hw, -hw], 1)
        for sc in self.scanners:
            rel = centers - sc.origin
            dist = np.hypot(rel[:, 0], rel[:, 1])
            radius = np.hypot(hl, hw)
            near = np.maximum(dist - radius, 0.05)
            far = dist + radius
            # Azimuth window from the footprint corners, relative to the centre's azimuth (no wrap issues).
            cx = rel[:, 0:1] + c[:, None] * fx - s[:, None] * fy
            cy = rel[:, 1:2] + s[:, None] * fx + c[:, None] * fy
            az_c = np.arctan2(rel[:, 1], rel[:, 0])
            dev = (np.arctan2(cy, cx) - az_c[:, None] + np.pi) % _TWO_PI - np.pi
            az_lo, az_hi = az_c + dev.min(axis=1), az_c + dev.max(axis=1)
            full = dist <= radius  # the scanner may be inside the footprint's circle: test the whole turn
            zlo, zhi = rel[:, 2] - hh, rel[:, 2] + hh
            el_lo = np.minimum(np.arctan2(zlo, near), np.arctan2(zlo, far))
            el_hi = np.maximum(np.arctan2(zhi, near), np.arctan2(zhi, far))
            b0 = np.searchsorted(sc.elevations, el_lo, "left")
            b1 = np.searchsorted(sc.elevations, el_hi, "right")
            a0 = (az_lo - sc.start) % _TWO_PI
            j0 = np.ceil(a0 / sc.step).astype(np.int64)
            j1 = np.floor((a0 + (az_hi - az_lo)) / sc.step).astype(np.int64)
            live = (near < sc.scanner.max_range_m) & (b1 > b0) & ((j1 >= j0) | full)
            for k in np.flatnonzero(live):
                cols = np.arange(sc.n_full) if full[k] else np.arange(j0[k], j1[k] + 1) % sc.n_full
                cols = cols[cols < sc.n_cols]
                if len(cols) == 0:
                    continue
                idx = (sc.offset + np.arange(b0[k], b1[k])[:, None] * sc.n_cols + cols[None, :]).ravel()
                rays.append(idx)
                owners.append(np.full(len(idx), k))
        if not rays:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(rays), np.concatenate(owners)

    def cast(self, ego_pose: npt.ArrayLike, boxes: EgoBoxes) -> F32:
        """One sweep: ``(N, 6)`` float32 x, y, z (lidar frame, m), intensity (0-255), ring, lidar_id.

        Args:
            ego_pose: ``(3,)`` global (x, y, heading) of the rear axle (for ground materials).
            boxes: the frame's boxes in the world's ego frame.
        """
        t = self._t_ground.copy()
        hit_box = np.full(len(t), -1, dtype=np.int64)
        if len(boxes):
            centers = self._lidar_from_ego_points(np.asarray(boxes.center, dtype=np.float64))
            yaw = np.asarray(boxes.yaw, dtype=np.float64) - self._yaw_el
            size = np.asarray(boxes.size, dtype=np.float64)
            ray, box = self._candidates(centers, size, yaw)
            if len(ray):
                t_box = _slab(self._origins[ray], self._dirs[ray], centers[box], np.cos(yaw[box]), np.sin(yaw[box]),
                              size[box] / 2)
                ok = t_box <= self._t_max[ray]
                ray, box, t_box = ray[ok], box[ok], t_box[ok]
                order = np.lexsort((t_box, ray))  # nearest box per ray first
                ray, box, t_box = ray[order], box[order], t_box[order]
                first = np.ones(len(ray), dtype=bool)
                first[1:] = ray[1:] != ray[:-1]
                ray, box, t_box = ray[first], box[first], t_box[first]
                closer = t_box < t[ray]
                t[ray[closer]] = t_box[closer]
                hit_box[ray[closer]] = box[closer]
        valid = np.flatnonzero(np.isfinite(t))
        tv = t[valid]
        pts = self._origins[valid] + (tv + self._noise_m[valid])[:, None] * self._dirs[valid]
        intensity = np.empty(len(valid), dtype=np.float32)
        on_box = hit_box[valid] >= 0
        if np.any(on_box):
            intensity[on_box] = np.asarray(boxes.intensity, dtype=np.float32)[hit_box[valid][on_box]]
        ground = ~on_box
        mats = self.texture.materials_at(ego_pose, self._ground_ego_xy[valid[ground]])
        intensity[ground] = self.texture.intensities[mats]
        # Returns fade with range; the per-ray gain stands in for incidence angle and surface variation.
        intensity *= self._intensity_gain[valid] * (1.0 - 0.5 * (tv / self._max_range[valid])).astype(np.float32)
        out = np.empty((len(valid), 6), dtype=np.float32)
        out[:, :3] = pts
        out[:, 3] = np.clip(np.round(intensity), 0, 255)
        out[:, 4] = self._ring[valid]
        out[:, 5] = self._lidar_id[valid]
        return out
