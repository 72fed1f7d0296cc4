"""A 10 Hz world log at any time: ego and objects linearly interpolated (yaws unwrapped), for CARLA's 20 Hz ticks."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from adapters.carla.format import CARLA_FPS
from harness.geometry import normalize_angle
from harness.world.model import ObjectStates, WorldLog

F64 = npt.NDArray[np.float64]
TICK_S = 1.0 / CARLA_FPS


class Timeline:
    """Ego and objects of a log at any time (linear interpolation between 10 Hz frames, yaws unwrapped)."""

    def __init__(self, log: WorldLog) -> None:
        self.log = log
        frames = log.frames
        self.dt = log.frame_interval_s
        self.duration_s = (len(frames) - 1) * self.dt
        pose = np.array([f.ego_pose for f in frames], dtype=np.float64)
        pose[:, 2] = np.unwrap(pose[:, 2])
        self.ego_pose = pose
        self.ego_vel = np.array([f.ego_velocity_mps for f in frames], dtype=np.float64)
        self.ego_acc = np.array([f.ego_acceleration_mps2 for f in frames], dtype=np.float64)
        tokens = sorted({t for f in frames for t in f.objects.track_tokens})
        col = {t: i for i, t in enumerate(tokens)}
        n_f, n_t = len(frames), len(tokens)
        self.tokens = tuple(tokens)
        self.present = np.zeros((n_f, n_t), dtype=bool)
        self.center = np.zeros((n_f, n_t, 3))
        self.yaw = np.zeros((n_f, n_t))
        self.size = np.ones((n_t, 3))
        self.vel = np.zeros((n_f, n_t, 2))
        self.category = [""] * n_t
        for i, f in enumerate(frames):
            o = f.objects
            idx = np.array([col[t] for t in o.track_tokens], dtype=np.int64)
            if len(idx) == 0:
                continue
            self.present[i, idx] = True
            self.center[i, idx] = o.center_xyz
            self.yaw[i, idx] = o.yaw_rad
            self.size[idx] = o.size_lwh
            self.vel[i, idx] = o.velocity_xy_mps
            for j, c in zip(idx.tolist(), o.categories):
                self.category[j] = c
        self.yaw = np.unwrap(self.yaw, axis=0)

    def _bracket(self, t: F64) -> tuple[np.ndarray, np.ndarray, F64]:
        u = np.clip(np.asarray(t, dtype=np.float64) / self.dt, 0.0, len(self.log.frames) - 1)
        i0 = np.minimum(np.floor(u + 1e-9).astype(np.int64), len(self.log.frames) - 1)
        i1 = np.minimum(i0 + 1, len(self.log.frames) - 1)
        return i0, i1, np.clip(u - i0, 0.0, 1.0)

    def ego(self, t: npt.ArrayLike) -> tuple[F64, F64, F64]:
        """Rear-axle poses (N, 3), ego-frame velocity (N, 2) and acceleration (N, 2) at times ``t``."""
        i0, i1, a = self._bracket(np.atleast_1d(t))
        w0, w1 = (1 - a)[:, None], a[:, None]
        return tuple(x[i0] * w0 + x[i1] * w1 for x in (self.ego_pose, self.ego_vel, self.ego_acc))  # type: ignore[return-value]

    def objects(self, t: float) -> tuple[np.ndarray, ObjectStates]:
        """Track indices and states of the objects present at time ``t`` (interpolated where present twice)."""
        i0, i1, a = (v[0] for v in self._bracket(np.array([t])))
        near = i0 if a < 0.5 else i1
        idx = np.flatnonzero(self.present[near])
        both = self.present[i0, idx] & self.present[i1, idx]
        w = np.where(both, a, 0.0 if near == i0 else 1.0)
        src0 = np.where(both, i0, near)
        src1 = np.where(both, i1, near)

        def mix(arr: np.ndarray) -> np.ndarray:
            wk = w.reshape((-1,) + (1,) * (arr.ndim - 2))
            return arr[src0, idx] * (1 - wk) + arr[src1, idx] * wk

        states = ObjectStates(tuple(self.tokens[j] for j in idx), tuple(self.category[j] for j in idx),
                              mix(self.center), self.size[idx], normalize_angle(mix(self.yaw)), mix(self.vel))
        return idx, states

    def track_future(self, j: int, t0: float, n_ticks: int) -> tuple[F64, F64]:
        """Global (x, y) and yaw of track ``j`` at ticks after ``t0`` (offsets 0..n) while it stays in the log."""
        ts = t0 + np.arange(n_ticks + 1) * TICK_S
        ts = ts[ts <= self.duration_s + 1e-9]
        i0, i1, a = self._bracket(ts)
        ok = self.present[i0, j] & self.present[i1, j]
        stop = int(np.argmin(ok)) if not ok.all() else len(ok)
        i0, i1, a = i0[:stop], i1[:stop], a[:stop]
        xy = self.center[i0, j, :2] * (1 - a)[:, None] + self.center[i1, j, :2] * a[:, None]
        return xy, self.yaw[i0, j] * (1 - a) + self.yaw[i1, j] * a
