"""Hand-built E2EDFrames and shards for the Waymo reader tests (small images, exact values)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from adapters.waymo.tfrecord import write_records
from adapters.waymo.world_writer import make_frame
from harness.world.rig_waymo import waymo_cameras

CAMS = waymo_cameras(0.05)  # 49x54 front images


def jpeg(width: int, height: int, value: int = 100, fmt: str = "JPEG") -> bytes:
    rng = np.random.default_rng(value)
    img = np.clip(value + rng.integers(-20, 20, (height, width, 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format=fmt)
    return buf.getvalue()


def past(speed: float = 5.0) -> dict[str, np.ndarray]:
    t = (np.arange(16) - 15) * 0.25
    return {"past_xy": np.column_stack([speed * t, np.zeros(16)]),
            "past_velocity_xy": np.column_stack([np.full(16, speed), np.zeros(16)]),
            "past_accel_xy": np.zeros((16, 2))}


def future(speed: float = 5.0, n: int = 20) -> np.ndarray:
    return np.column_stack([speed * 0.25 * np.arange(1, n + 1), np.zeros(n)])


def frame_bytes(name: str, *, cameras: Sequence[str] | None = None, future_xy=..., raters=(), intent: int = 1,
                speed: float = 5.0, image_format: str = "JPEG") -> bytes:
    cams = [(c, jpeg(c.width, c.height, 40 + 20 * i, image_format)) for i, c in enumerate(CAMS)
            if cameras is None or c.name in cameras]
    fut = future(speed) if future_xy is ... else future_xy
    return make_frame(name, intent=intent, future_xy=fut, raters=raters, cameras=cams, **past(speed)).SerializeToString()


def write_shard(path: Path, records: Sequence[bytes]) -> Path:
    write_records(path, records)
    return path
