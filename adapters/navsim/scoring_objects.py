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
:func:`object_timelines` does the scenes of a log together (boxes moved to the map frame once per keyframe,
every scene's tracks interpolated in the same array operations), with the same bytes per scene.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

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
    return object_timelines(frames, [current], horizon_s)[0].timeline


@dataclass(frozen=True)
class SceneObjects:
    """One scene's object timeline and, per track, whether the current keyframe annotates it (``(M,)``)."""

    timeline: ObjectTimeline
    in_current_frame: npt.NDArray[np.bool_]


def object_timelines(frames: Sequence[NavsimFrame], currents: Sequence[int], horizon_s: float = 5.0
                     ) -> list[SceneObjects]:
    """:func:`object_timeline` of several scenes over one frame sequence (a log), computed together.

    The scenes of a log share keyframes and tracks: every box is moved into the map frame once, and the
    per-scene track tables of all scenes are interpolated in one set of array operations (a scene's tracks
    are rows of their own, so each scene's arrays are exactly those of :func:`object_timeline`).

    Args:
        frames: frames in time order (a whole log, or one scene's frames).
        currents: the scenes' current-frame indices in ``frames``.
        horizon_s: as :func:`object_timeline`.

    Returns:
        One :class:`SceneObjects` per entry of ``currents``, in that order.

    Raises:
        DataError: as :func:`object_timeline`, naming the token of the first scene concerned.
    """
    n_kf = num_keyframes(horizon_s)
    kt = keyframe_times(horizon_s)[:n_kf]
    tt = step_times(horizon_s)
    n_steps = len(tt)
    cur = np.asarray(currents, dtype=np.int64).reshape(-1)
    n_win = len(cur)
    if n_win == 0:
        return []
    for c in cur.tolist():
        if c < 0 or c + n_kf > len(frames):
            raise DataError(f"a {horizon_s:g} s object timeline needs {n_kf - 1} future frames, the scene has "
                            f"{len(frames) - c - 1}", token=frames[c].token)
    lo = int(cur.min())
    span = frames[lo : int(cur.max()) + n_kf]
    # The frames some scene reads, and the first scene reading each (named in errors).
    covered = np.zeros(len(span), dtype=bool)
    owner = np.full(len(span), -1, dtype=np.int64)
    for w in range(n_win - 1, -1, -1):
        a = int(cur[w]) - lo
        covered[a : a + n_kf] = True
        owner[a : a + n_kf] = w
    anns = []
    for s, f in enumerate(span):
        if not covered[s]:
            anns.append(None)
        elif f.annotations is None:
            raise DataError("frame has no annotations ('anns'); the metric cache needs ground-truth boxes",
                            token=f.token)
        else:
            anns.append(f.annotations)
    counts = np.array([0 if a is None else len(a.track_tokens) for a in anns], dtype=np.int64)
    det_off = np.concatenate([[0], np.cumsum(counts)])
    lens = det_off[cur - lo + n_kf] - det_off[cur - lo]  # detections per scene
    total = int(lens.sum())
    if total == 0:
        return [_empty(n_steps) for _ in range(n_win)]

    present_anns = [a for a in anns if a is not None and len(a.track_tokens)]
    boxes = np.concatenate([a.boxes for a in present_anns], axis=0)
    vel = np.concatenate([a.velocity_3d for a in present_anns], axis=0)
    tokens = [t for a in present_anns for t in a.track_tokens]
    type_parts = []
    for s, a in enumerate(anns):
        if a is not None and len(a.track_tokens):
            try:
                type_parts.append(_frame_type_codes(a.names))
            except ValueError as exc:
                raise DataError(str(exc), token=frames[int(cur[owner[s]])].token) from exc
    types = np.concatenate(type_parts)
    fk = np.repeat(np.arange(len(span)), counts)  # span frame of each detection
    ego = np.stack([f.ego_pose for f in span])[fk]

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
    det_states = np.stack([gx, gy, gh, gvx, gvy], axis=-1)

    # Tokens numbered once over the span; a scene's track is the pair (scene, token number).
    number: dict[str, int] = {}
    tok_num = np.fromiter((number.setdefault(t, len(number)) for t in tokens), dtype=np.int64, count=len(tokens))
    # Each scene's detections, concatenated scene after scene (keyframe, then box order within a scene).
    starts = det_off[cur - lo]
    win = np.repeat(np.arange(n_win), lens)
    rows = np.arange(total) - np.repeat(np.cumsum(lens) - lens, lens) + np.repeat(starts, lens)
    kidx = fk[rows] - (cur[win] - lo)
    key = win * len(number) + tok_num[rows]
    # A token repeated within one frame keeps its first box. Within a scene, tracks are ordered by the type of
    # their first appearance, then by first appearance (nuPlan's TrackedObjects sorts each step by type).
    _, first_det, inverse = np.unique(key, return_index=True, return_inverse=True)
    by_appearance = np.lexsort((first_det, types[rows[first_det]], win[first_det]))
    n_tracks = len(first_det)
    rank = np.empty_like(by_appearance)
    rank[by_appearance] = np.arange(n_tracks)
    track = rank[inverse.reshape(-1)]
    first_det = first_det[by_appearance]
    tracks_per_win = np.bincount(win[first_det], minlength=n_win)
    _, keep = np.unique(track * n_kf + kidx, return_index=True)

    present_kf = np.zeros((n_tracks, n_kf), dtype=bool)
    states = np.zeros((n_tracks, n_kf, 5))
    present_kf[track[keep], kidx[keep]] = True
    states[track[keep], kidx[keep]] = det_states[rows[keep]]
    in_current = present_kf[:, 0].copy()

    # Compact each track's keyframes to the left, padding with its last one (zero differences, so the
    # unwrap and the interpolation of the real keyframes are untouched).
    n_valid = present_kf.sum(axis=1)
    order = np.argsort(~present_kf, axis=1, kind="stable")
    order = np.take_along_axis(order, np.minimum(np.arange(n_kf)[None, :], n_valid[:, None] - 1), axis=1)
    trows = np.arange(n_tracks)[:, None]
    ct = kt[order]  # (M, K) keyframe times
    cs = states[trows, order]  # (M, K, 5)
    cs[..., 2] = np.unwrap(cs[..., 2], axis=1)

    # interp1d's linear rule: searchsorted(left), clipped to [1, n - 1], then slope * (t - t_lo) + y_lo. A
    # track's keyframe times are a subset of the grid, so its count of times < t is the count of its present
    # keyframes before the grid's own searchsorted position. The slope of a segment is the same float at
    # every step it serves, so it is computed once per (track, segment) and gathered.
    before = np.concatenate([np.zeros((n_tracks, 1), dtype=np.int64), np.cumsum(present_kf, axis=1)], axis=1)
    below = before[:, np.searchsorted(kt, tt, side="left")].T  # (T, M)
    hi = np.clip(below, 1, np.maximum(n_valid - 1, 1)[None, :])
    lo_i = hi - 1
    cols = np.arange(n_tracks)[None, :]
    # Channel-major (5, T, M): each step is one long array operation per channel.
    cs_c = np.ascontiguousarray(cs.transpose(2, 0, 1))  # (5, M, K)
    with np.errstate(invalid="ignore", divide="ignore"):  # single-keyframe tracks divide 0 by 0; unused
        seg_slope = (cs_c[:, :, 1:] - cs_c[:, :, :-1]) / (ct[:, 1:] - ct[:, :-1])[None]  # (5, M, K - 1)
    at = (cols * n_kf + lo_i).reshape(-1)
    at_seg = (cols * (n_kf - 1) + lo_i).reshape(-1)
    dt = tt[:, None] - np.take(ct.reshape(-1), at).reshape(n_steps, n_tracks)
    # Each channel is written straight into the output layout: poses (T, M, 3) and velocities (T, M, 2).
    poses = np.empty((n_steps, n_tracks, 3))
    velocity = np.empty((n_steps, n_tracks, 2))
    for c, dest in enumerate((poses[..., 0], poses[..., 1], poses[..., 2], velocity[..., 0], velocity[..., 1])):
        np.multiply(np.take(seg_slope[c].reshape(-1), at_seg).reshape(n_steps, n_tracks), dt, out=dest)
        np.add(dest, np.take(cs_c[c].reshape(-1), at).reshape(n_steps, n_tracks), out=dest)
    multi = n_valid >= 2
    in_span = (ct[:, 0][None, :] <= tt[:, None]) & (tt[:, None] <= ct[np.arange(n_tracks), n_valid - 1][None, :])
    present = in_span | ~multi[None, :]
    if not multi.all():  # frozen single-keyframe tracks (their heading is already wrapped)
        poses[:, ~multi] = cs[~multi, 0, :3][None]
        velocity[:, ~multi] = cs[~multi, 0, 3:][None]
    absent = ~present[..., None]
    np.copyto(poses, 0.0, where=absent)
    np.copyto(velocity, 0.0, where=absent)
    # Wrap the interpolated headings of multi-keyframe tracks. A track whose keyframe headings are all equal
    # has slope 0 and the same heading at every step (y_lo + 0.0 is y_lo): wrapped once, not at every step.
    heading = poses[..., 2]
    steady = multi & np.all(cs_c[2] == cs_c[2][:, :1], axis=1)
    moving = np.flatnonzero(multi & ~steady)
    if len(moving):
        sub = heading[:, moving]
        np.copyto(sub, _wrap(sub), where=present[:, moving])
        heading[:, moving] = sub
    if steady.any():
        still = np.flatnonzero(steady)
        sub = heading[:, still]
        np.copyto(sub, _wrap(cs_c[2, still, 0])[None, :], where=present[:, still])
        heading[:, still] = sub

    first_rows = rows[first_det]
    first_types = types[first_rows]
    agent = _IS_AGENT[first_types]
    velocity[:, ~agent] = 0.0  # static objects carry no velocity
    first_velocity = np.where(agent[:, None], det_states[first_rows, 3:5], 0.0)
    size = boxes[first_rows, 3:6]
    out = []
    bounds = np.concatenate([[0], np.cumsum(tracks_per_win)]).tolist()
    for w in range(n_win):
        a, b = bounds[w], bounds[w + 1]
        if a == b:
            out.append(_empty(n_steps))
            continue
        names = np.asarray([tokens[i] for i in first_rows[a:b].tolist()], dtype=str)
        out.append(SceneObjects(
            ObjectTimeline(
                tokens=names,
                types=first_types[a:b].copy(),
                size_lwh=size[a:b].copy(),
                first_velocity_xy=first_velocity[a:b].copy(),
                present=np.ascontiguousarray(present[:, a:b]),
                poses=np.ascontiguousarray(poses[:, a:b]),
                velocity_xy=np.ascontiguousarray(velocity[:, a:b]),
            ),
            in_current[a:b].copy(),
        ))
    return out


def _empty(n_steps: int) -> SceneObjects:
    empty = np.zeros((n_steps, 0))
    return SceneObjects(
        ObjectTimeline(np.zeros(0, dtype="<U16"), np.zeros(0, dtype=np.int64), np.zeros((0, 3)), np.zeros((0, 2)),
                       np.zeros((n_steps, 0), dtype=bool), empty[..., None].repeat(3, -1),
                       empty[..., None].repeat(2, -1)),
        np.zeros(0, dtype=bool),
    )
