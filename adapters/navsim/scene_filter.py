"""NAVSIM's scene construction: cut each log's 2 Hz frame list into fixed windows (specs/navsim.md §8.3).

Mirrors ``navsim/common/dataloader.py::filter_scenes``: windows ``frames[i : i + num_frames]`` for ``i`` in
steps of ``frame_interval`` (default: ``num_frames``, non-overlapping), short windows dropped, windows whose
current frame has no route dropped when ``has_route``, scene token = current frame's token, then optional
token and log filters and ``max_scenes``. Logs are taken in sorted name order so results are reproducible
(NAVSIM iterates the directory in filesystem order).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SceneFilter:
    """Which windows of which logs form the scenes of a split (NAVSIM's ``SceneFilter``)."""

    num_history_frames: int = 4
    num_future_frames: int = 10
    frame_interval: int | None = None
    has_route: bool = True
    max_scenes: int | None = None
    log_names: tuple[str, ...] | None = None
    tokens: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.num_history_frames < 1:
            raise ValueError(f"SceneFilter.num_history_frames must be >= 1, got {self.num_history_frames}")
        if self.num_future_frames < 0:
            raise ValueError(f"SceneFilter.num_future_frames must be >= 0, got {self.num_future_frames}")
        if self.frame_interval is not None and self.frame_interval < 1:
            raise ValueError(f"SceneFilter.frame_interval must be >= 1, got {self.frame_interval}")

    @property
    def num_frames(self) -> int:
        return self.num_history_frames + self.num_future_frames

    @property
    def step(self) -> int:
        return self.frame_interval if self.frame_interval is not None else self.num_frames


#: navtest / navtrain: every frame with 1.5 s of history and 5 s of future.
NAVTEST_FILTER = SceneFilter(num_history_frames=4, num_future_frames=10, frame_interval=1, has_route=True)
#: navmini: non-overlapping windows.
NAVMINI_FILTER = SceneFilter(num_history_frames=4, num_future_frames=10, frame_interval=None, has_route=True)


@dataclass(frozen=True)
class SceneWindow:
    """One scene: a log and the index range ``[start, start + num_frames)`` of its frames."""

    log_name: str
    start: int
    num_history_frames: int
    num_frames: int
    token: str

    @property
    def current_index(self) -> int:
        return self.start + self.num_history_frames - 1


def filter_scenes(logs: Mapping[str, Sequence[Mapping[str, Any]]], scene_filter: SceneFilter) -> list[SceneWindow]:
    """Scenes of ``logs`` (log name -> frame dicts) under ``scene_filter``, in log-name then time order.

    Duplicated tokens keep the last window, as NAVSIM's dict does.
    """
    wanted_logs = set(scene_filter.log_names) if scene_filter.log_names is not None else None
    wanted_tokens = set(scene_filter.tokens) if scene_filter.tokens is not None else None
    n, h = scene_filter.num_frames, scene_filter.num_history_frames
    out: dict[str, SceneWindow] = {}
    for log_name in sorted(logs):
        if wanted_logs is not None and log_name not in wanted_logs:
            continue
        frames = logs[log_name]
        for start in range(0, len(frames), scene_filter.step):
            if start + n > len(frames):
                continue
            current = frames[start + h - 1]
            if scene_filter.has_route and len(current["roadblock_ids"]) == 0:
                continue
            token = str(current["token"])
            if wanted_tokens is not None and token not in wanted_tokens:
                continue
            out[token] = SceneWindow(log_name, start, h, n, token)
            if scene_filter.max_scenes is not None and len(out) >= scene_filter.max_scenes:
                return list(out.values())
    return list(out.values())
