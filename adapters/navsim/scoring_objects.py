"""The metric cache's object timeline: 2 Hz log boxes -> global 10 Hz object states, vectorised.

Semantics of NAVSIM's ``MetricCacheProcessor._interpolate_gt_observation`` (v1.1; ``main`` is the same with
the horizon taken from the proposal sampling) and the scenario's ``annotations_to_detection_tracks``
(specs/navsim.md §4.1):

- keyframe ``j`` (``j = 0 .. H / 0.5``) is the scene frame ``current + j``, at the *nominal* time
  ``j * 0.5 s`` (the log's timestamps are not used);
- each box is rotated from that frame's ego frame into the map frame with that frame's rear-axle pose, its
  heading wrapped twice with ``arctan2(sin, cos)`` as NAVSIM does; agents (vehicle, pedestrian, bicycle,
  ego) get ``gt_velocity_3d[:2]`` rotated by the ego heading, static objects get none (zero here);
- per track, the states (x, y, heading, vx, vy) of the keyframes where it appears are interpolated linearly
  (heading unwrapped over those keyframes, wrapped again after) at ``k * 0.1 s``, with the arithmetic of
  scipy's ``interp1d`` (so values at interior keyframes agree with the official ones to the last bit, not
  exactly with the keyframe), and the track is absent outside ``[first, last]`` keyframe time (the float
  step times ``k * 0.1`` compared with ``j * 0.5`` as NAVSIM computes both);
- a track seen in one keyframe only is kept, frozen at that keyframe's pose and velocity, at every step;
- type, box size and the "first velocity" come from the track's first appearance; tracks are ordered by
  that type, then by first appearance (frame, then box order): the order of NAVSIM's per-step object lists,
  which nuPlan's ``TrackedObjects`` sorts by type.

Everything is numpy over tracks x keyframes x steps; there is no Python loop over objects or steps.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from adapters.navsim.log_format import NavsimFrame
from harness.errors import DataError
from harness.scoring_scene import AGENT_TYPES, ObjectTimeline, ObjectType

F64 = npt.NDArray[np.float64]

#: OpenScene keyframe spacing and the metric cache's interpolation step (official constants).
KEYFRAME_STEP_S = 0.5
INTERPOLATION_STEP_S = 0.1
_AGENT_CODES = np.array(sorted(int(t) for t in AGENT_TYPES), dtype=np.int64)


def keyframe_times(horizon_s: float) -> F64:
    """Nominal keyframe times ``(K,)``, seconds after the current frame, computed as NAVSIM computes them."""
    return np.arange(0, horizon_s * 1 / KEYFRAME_STEP_S + 1, 1, dtype=float) * KEYFRAME_STEP_S


def step_times(horizon_s: float) -> F64:
    """The 10 Hz sample times ``(T,)``, seconds after the current frame, computed as NAVSIM computes them."""
    return np.arange(0, int(horizon_s / INTERPOLATION_STEP_S) + 1, 1, dtype=float) * INTERPOLATION_STEP_S


def num_keyframes(horizon_s: float) -> int:
    """Keyframes ``current .. current + K - 1`` the horizon reads (``zip`` of NAVSIM's two index ranges)."""
    return min(len(keyframe_times(horizon_s)), int(horizon_s / KEYFRAME_STEP_S) + 1)


def _wrap(angle: F64) -> F64:
    return np.arctan2(np.sin(angle), np.cos(angle))


_CODE_OF_NAME = {t.name.lower(): int(t) for t in ObjectType}


def _type_codes(names: Sequence[str]) -> npt.NDArray[np.int64]:
    try:
        return np.fromiter((_CODE_OF_NAME[n] for n in names), dtype=np.int64, count=len(names))
    except KeyError:
        for n in names:
            ObjectType.from_name(n)  # raises ValueError naming the category and the known ones
        raise


@functools.lru_cache(maxsize=512)
def _frame_type_codes(names: tuple[str, ...]) -> npt.NDArray[np.int64]:
    """A frame's type codes, read-only (a keyframe belongs to a dozen scenes: converted once)."""
    codes = _type_codes(names)
    codes.flags.writeable = False
    return codes


#: Code -> whether the type is an agent.
_IS_AGENT = np.isin(np.arange(len(ObjectType)), _AGENT_CODES)


def object_timeline(frames: Sequence[NavsimFrame], current: int, horizon_s: float = 5.0) -> ObjectTimeline:
    """Ground-truth objects of a scene at 10 Hz over ``[0, horizon_s]``, map frame.

    Args:
        frames: the scene's frames (history, current, future), 2 Hz, with annotations.
        current: index of the current frame in ``frames``.
        horizon_s: seconds covered (v1.1: 5.0 -> 51 steps; v2: 4.0 -> 41 steps); a multiple of 0.5 s.

    Returns:
        The timeline: ``(M,)`` tokens/types/sizes/first velocities and ``(T, M, ...)`` presence, box-centre
        poses (x, y, heading) and global velocities; zeros where a track is absent.

    Raises:
        DataError: too few future frames for the horizon, a frame without annotations, an unknown category.
    """
    n_kf = num_keyframes(horizon_s)
    kt = keyframe_times(horizon_s)[:n_kf]
    tt = step_times(horizon_s)
    if current + n_kf > len(frames):
        raise DataError(f"a {horizon_s:g} s object timeline needs {n_kf - 1} future frames, the scene has "
                        f"{len(frames) - current - 1}", token=frames[current].token)
    keyframes = frames[current : current + n_kf]
    for f in keyframes:
        if f.annotations is None:
            raise DataError("frame has no annotations ('anns'); the metric cache needs ground-truth boxes",
                            token=f.token)
    counts = np.array([len(f.annotations.track_tokens) for f in keyframes], dtype=np.int64)  # type: ignore[union-attr]
    n_det = int(counts.sum())
    n_steps = len(tt)
    if n_det == 0:
        empty = np.zeros((n_steps, 0))
        return ObjectTimeline(np.zeros(0, dtype="<U16"), np.zeros(0, dtype=np.int64), np.zeros((0, 3)),
                              np.zeros((0, 2)), np.zeros((n_steps, 0), dtype=bool), empty[..., None].repeat(3, -1),
                              empty[..., None].repeat(2, -1))

    anns = [f.annotations for f in keyframes]
    boxes = np.concatenate([a.boxes for a in anns], axis=0)  # type: ignore[union-attr]
    vel = np.concatenate([a.velocity_3d for a in anns], axis=0)  # type: ignore[union-attr]
    tokens = [t for a in anns for t in a.track_tokens]  # type: ignore[union-attr]
    try:
        types = np.concatenate([_frame_type_codes(a.names) for a in anns])  # type: ignore[union-attr]
    except ValueError as exc:
        raise DataError(str(exc), token=frames[current].token) from exc
    kidx = np.repeat(np.arange(n_kf), counts)
    ego = np.stack([f.ego_pose for f in keyframes])[kidx]

    # Ego frame -> map frame, in NAVSIM's order of operations (rotate, wrap, translate, wrap again).
    cos, sin = np.cos(ego[:, 2]), np.sin(ego[:, 2])
    lx, ly = boxes[:, 0], boxes[:, 1]
    gx = (lx * cos - ly * sin) + ego[:, 0]
    gy = (lx * sin + ly * cos) + ego[:, 1]
    gh = _wrap(_wrap(boxes[:, 6] + ego[:, 2]))
    is_agent = _IS_AGENT[types]
    vx, vy = vel[:, 0], vel[:, 1]
    gvx = np.where(is_agent, vx * cos - vy * sin, 0.0)
    gvy = np.where(is_agent, vx * sin + vy * cos, 0.0)

    # A token repeated within one frame keeps its first box. Tracks are numbered in order of first appearance
    # (the final order below depends only on that position and the type, never on the token strings).
    number: dict[str, int] = {}
    inverse = np.fromiter((number.setdefault(t, len(number)) for t in tokens), dtype=np.int64, count=len(tokens))
    _, first_det = np.unique(inverse, return_index=True)
    names = np.asarray([tokens[i] for i in first_det.tolist()], dtype=str)
    # nuPlan's TrackedObjects sorts every step's objects by type (stable), so order tracks by the type of their
    # first appearance, then by first appearance: each step's present tracks are then in NAVSIM's order.
    by_appearance = np.lexsort((first_det, types[first_det]))
    rank = np.empty_like(by_appearance)
    rank[by_appearance] = np.arange(len(names))
    track = rank[inverse.reshape(-1)]
    n_tracks = len(names)
    first_det = first_det[by_appearance]
    _, keep = np.unique(track * n_kf + kidx, return_index=True)

    present_kf = np.zeros((n_tracks, n_kf), dtype=bool)
    states = np.zeros((n_tracks, n_kf, 5))
    present_kf[track[keep], kidx[keep]] = True
    states[track[keep], kidx[keep]] = np.stack([gx, gy, gh, gvx, gvy], axis=-1)[keep]

    # Compact each track's keyframes to the left, padding with its last one (zero differences, so the
    # unwrap and the interpolation of the real keyframes are untouched).
    n_valid = present_kf.sum(axis=1)
    order = np.argsort(~present_kf, axis=1, kind="stable")
    order = np.take_along_axis(order, np.minimum(np.arange(n_kf)[None, :], n_valid[:, None] - 1), axis=1)
    rows = np.arange(n_tracks)[:, None]
    ct = kt[order]  # (M, K) keyframe times
    cs = states[rows, order]  # (M, K, 5)
    cs[..., 2] = np.unwrap(cs[..., 2], axis=1)

    # interp1d's linear rule: searchsorted(left), clipped to [1, n - 1], then slope * (t - t_lo) + y_lo. A
    # track's keyframe times are a subset of the grid, so its count of times < t is the count of its present
    # keyframes before the grid's own searchsorted position.
    before = np.concatenate([np.zeros((n_tracks, 1), dtype=np.int64), np.cumsum(present_kf, axis=1)], axis=1)
    below = before[:, np.searchsorted(kt, tt, side="left")].T  # (T, M)
    hi = np.clip(below, 1, np.maximum(n_valid - 1, 1)[None, :])
    lo = hi - 1
    cols = np.arange(n_tracks)[None, :]
    t_lo, t_hi = ct[cols, lo], ct[cols, hi]
    y_lo, y_hi = cs[cols, lo], cs[cols, hi]
    with np.errstate(invalid="ignore", divide="ignore"):  # single-keyframe tracks divide 0 by 0; unused
        slope = (y_hi - y_lo) / (t_hi - t_lo)[..., None]
        interp = slope * (tt[:, None] - t_lo)[..., None] + y_lo
    multi = n_valid >= 2
    in_span = (ct[:, 0][None, :] <= tt[:, None]) & (tt[:, None] <= ct[np.arange(n_tracks), n_valid - 1][None, :])
    present = in_span | ~multi[None, :]
    interp[:, ~multi] = cs[~multi, 0][None]  # frozen single-keyframe tracks (their heading is already wrapped)
    interp[~present] = 0.0
    wrap = present & multi[None, :]
    interp[..., 2][wrap] = _wrap(interp[..., 2][wrap])

    first_types = types[first_det]
    agent = _IS_AGENT[first_types]
    interp[:, ~agent, 3:] = 0.0  # static objects carry no velocity
    poses = interp[..., :3]
    velocity = interp[..., 3:]
    first_velocity = np.where(agent[:, None], np.stack([gvx, gvy], axis=-1)[first_det], 0.0)
    return ObjectTimeline(
        tokens=names[by_appearance],
        types=first_types,
        size_lwh=boxes[first_det, 3:6].copy(),
        first_velocity_xy=first_velocity,
        present=present,
        poses=np.ascontiguousarray(poses),
        velocity_xy=np.ascontiguousarray(velocity),
    )
