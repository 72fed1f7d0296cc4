"""Atomic file writes: write beside the target under a temporary name, then rename into place.

A reader never sees a half-written file, and an interrupted write leaves the previous version intact.
"""

from __future__ import annotations

import os
from pathlib import Path


def temp_path(path: Path) -> Path:
    """A per-process temporary name in the target's directory (same filesystem, so the rename is atomic)."""
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(p)
    tmp.write_bytes(data)
    os.replace(tmp, p)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
