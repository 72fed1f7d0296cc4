"""Waymo end-to-end challenge metrics: Rater Feedback Score (RFS), ADE against the top-rated rater, and the
leaderboard's per-cluster aggregation.

Reference: ``get_rater_feedback_score`` in ``waymo_open_dataset/metrics/python/rater_feedback_utils.py``
(waymo-research/waymo-open-dataset, HEAD 99a4cb3). This is a re-implementation for one predicted trajectory
per frame (the challenge's case: one proposal with probability 1), vectorised over frames, in float64. It
does the same floating-point operations in the same order, so on float64 inputs the scores agree bit for bit.

Frames and units: positions are in each frame's own ego frame (x forward, y left, metres, origin at the
rear-axle centre at t = 0). Point ``k`` lies at ``t = (k + 1) / frequency_hz`` s; the origin is implicit.

Per frame (spec ``waymo_e2e.md`` §2.2):
1. Raters: keep the first 3 present; pad or truncate each to 20 points (padding repeats the last point).
2. A rater's longitudinal axis at point ``t`` is the backward difference into ``t`` (from the origin for
   ``t = 0``); over zero differences the last non-zero one is carried forward, else (1, 0). The lateral axis
   is that turned 90° counter-clockwise.
3. At 3 s and 5 s (indices 11 and 19 at 4 Hz) the prediction's offset from the rater, projected on both
   axes, is divided by the trust-region half-sizes (lateral 1.0 / 1.8 m, longitudinal 4x, all scaled 0.5 ->
   1.0 as the initial speed goes 1.4 -> 11 m/s). The larger ratio is the distance ``d``.
4. Per rater and horizon ``label * 0.1 ** max(d - 1, 0)``; best rater per horizon; mean of the horizons.
5. Unless one rater has ``d <= 1`` at both horizons, the score is raised to at least 4.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

#: Times at which the trust regions are checked, seconds after the current frame.
HORIZONS_S: tuple[int, int] = (3, 5)
#: Lateral trust-region half-size at each horizon before speed scaling, metres.
BASE_THRESHOLDS_M: tuple[float, float] = (1.0, 1.8)
#: (lateral, longitudinal) multipliers of the base thresholds.
LAT_LNG_THRESHOLD_MULTIPLIERS: tuple[float, float] = (1.0, 4.0)
#: Score factor per unit of normalised distance beyond the trust region.
DECAY_FACTOR = 0.1
#: Floor for predictions that no single rater's trust region contains at both horizons.
MIN_SCORE_OUTSIDE_TRUST_REGION = 4.0
#: The speed scaling runs linearly from 0.5 at this speed to 1.0 at the next one (m/s).
SPEED_SCALE_LOW_MPS = 1.4
SPEED_SCALE_HIGH_MPS = 11.0
#: Raters per frame that the official code keeps (the first ones; fewer are padded by repetition).
NUM_RATERS = 3
#: Valid rater labels; -1 marks an unlabelled frame.
SCORE_RANGE = (0.0, 10.0)


@dataclass(frozen=True)
class RFSResult:
    """Per-frame RFS and its diagnostics. ``F`` frames, ``R`` rater slots, horizons (3 s, 5 s).

    Attributes:
        score: ``(F,)`` the official ``rater_feedback_score``; in [0, 10].
        fully_inside_trust_region: ``(F,)`` one rater's trust region holds the prediction at both horizons.
        raw_score: ``(F,)`` mean of the two horizon scores, before the floor of 4.
        horizon_scores: ``(F, 2)`` best decayed rater score at 3 s and at 5 s.
        best_rater: ``(F, 2)`` input slot of the rater giving ``horizon_scores`` (first one on ties).
        normalized_distance: ``(F, R, 2)`` trust-region distance ``d`` (1 = on the boundary); ``inf`` for
            slots that are absent or beyond the first 3 present raters.
        lat_threshold_m: ``(F, 2)`` lateral trust-region half-sizes at 3 s and 5 s, metres.
        lng_threshold_m: ``(F, 2)`` longitudinal trust-region half-sizes at 3 s and 5 s, metres.
    """

    score: F64
    fully_inside_trust_region: npt.NDArray[np.bool_]
    raw_score: F64
    horizon_scores: F64
    best_rater: npt.NDArray[np.int64]
    normalized_distance: F64
    lat_threshold_m: F64
    lng_threshold_m: F64


@dataclass(frozen=True)
class NormalizedRaters:
    """Raters as the official code sees them after truncation and padding.

    Attributes:
        xy: ``(F, R, T, 2)`` ego-frame positions in metres, used raters padded/truncated to ``T`` points;
            zeros in unused slots.
        scores: ``(F, R)`` labels; 0 in unused slots.
        used: ``(F, R)`` the slot is one of the first ``NUM_RATERS`` present raters of its frame.
    """

    xy: F64
    scores: F64
    used: npt.NDArray[np.bool_]


@dataclass(frozen=True)
class ClusterAggregate:
    """Scores aggregated the leaderboard's way (``E2EDMetrics.average_score``).

    Attributes:
        per_cluster: cluster name -> mean score of its frames, names sorted.
        per_cluster_count: cluster name -> number of frames.
        mean_of_clusters: unweighted mean of the cluster means (the leaderboard's ``average_score``).
        frame_mean: plain mean over frames (what LEAD reports; not the leaderboard number).
    """

    per_cluster: dict[str, float]
    per_cluster_count: dict[str, int]
    mean_of_clusters: float
    frame_mean: float


def _float_array(name: str, value: npt.ArrayLike, ndim: int, shape_doc: str) -> F64:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != ndim or arr.shape[-1] != 2:
        raise ValueError(f"{name} must have shape {shape_doc}, got {arr.shape}")
    return arr


def _require_finite(name: str, arr: np.ndarray, where: npt.NDArray[np.bool_] | None = None) -> None:
    bad = ~np.isfinite(arr)
    if where is not None:
        bad &= where
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name} has {int(bad.sum())} non-finite values (first at index {first})")


def _check_param(name: str, value: float, *, low: float, high: float = np.inf) -> float:
    if not (np.isfinite(value) and low < value <= high):
        raise ValueError(f"{name} must be finite and in ({low}, {high}], got {value!r}")
    return float(value)


def speed_scale(initial_speed_mps: npt.ArrayLike) -> F64:
    """Trust-region scale: 0.5 up to 1.4 m/s, 1.0 from 11 m/s, linear in between.

    Args:
        initial_speed_mps: ``(F,)`` ego speed at t = 0, m/s (norm of the last past velocity).

    Returns:
        ``(F,)`` scale factors in [0.5, 1.0].
    """
    v = np.asarray(initial_speed_mps, dtype=np.float64)
    # The official expression, operation for operation, so that the rounding matches.
    ramp = 0.5 + 0.5 * (v - SPEED_SCALE_LOW_MPS) / (SPEED_SCALE_HIGH_MPS - SPEED_SCALE_LOW_MPS)
    return np.clip(ramp, 0.5, 1.0)


def trust_region_thresholds(
    initial_speed_mps: npt.ArrayLike,
    lat_lng_threshold_multipliers: tuple[float, float] = LAT_LNG_THRESHOLD_MULTIPLIERS,
) -> tuple[F64, F64]:
    """Lateral and longitudinal trust-region half-sizes at 3 s and 5 s.

    Args:
        initial_speed_mps: ``(F,)`` ego speed at t = 0, m/s.
        lat_lng_threshold_multipliers: lateral and longitudinal multipliers of ``BASE_THRESHOLDS_M``.

    Returns:
        ``(lat_m, lng_m)``, each ``(F, 2)`` in metres, columns (3 s, 5 s).
    """
    lat_mult, lng_mult = lat_lng_threshold_multipliers
    base = np.asarray(BASE_THRESHOLDS_M, dtype=np.float64)
    scale = speed_scale(initial_speed_mps)[..., None]
    return scale * (base * lat_mult), scale * (base * lng_mult)


@dataclass(frozen=True)
class _Raters:
    """Validated raters, not yet padded: ``x``, ``y`` are ``(F, R, min(Tr, T))`` planes, zero past ``n``."""

    x: F64
    y: F64
    n: npt.NDArray[np.int64]  # (F, R) valid leading points, at most T; 1 for unused slots
    scores: F64  # (F, R), 0 where unused
    used: npt.NDArray[np.bool_]  # (F, R)


def _validated_raters(rater_xy: npt.ArrayLike, rater_scores: npt.ArrayLike,
                      rater_mask: npt.ArrayLike | None, rater_num_points: npt.ArrayLike | None,
                      num_points: int, max_raters: int) -> _Raters:
    xy = _float_array("rater_xy", rater_xy, 4, "(F, R, Tr, 2)")
    f, r, tr = xy.shape[:3]
    if r < 1 or tr < 1:
        raise ValueError(f"rater_xy must have shape (F, R>=1, Tr>=1, 2), got {xy.shape}")
    scores = np.asarray(rater_scores, dtype=np.float64)
    if scores.shape != (f, r):
        raise ValueError(f"rater_scores must have shape (F, R) = {(f, r)}, got {scores.shape}")
    mask = np.ones((f, r), dtype=bool) if rater_mask is None else np.asarray(rater_mask)
    if mask.shape != (f, r) or mask.dtype != np.bool_:
        raise ValueError(f"rater_mask must be a bool array of shape {(f, r)}, got {mask.dtype} {mask.shape}")
    # The official code keeps the first `max_raters` of each frame's list.
    used = mask & (np.cumsum(mask, axis=1) <= max_raters)
    empty = ~used.any(axis=1)
    if empty.any():
        raise ValueError(f"rater_mask: {int(empty.sum())} frames have no rater (first frame "
                         f"{int(np.argmax(empty))}); the official code cannot score them, drop them first")
    if rater_num_points is None:
        n = np.full((f, r), tr, dtype=np.int64)
    else:
        n = np.asarray(rater_num_points)
        if n.shape != (f, r) or not np.issubdtype(n.dtype, np.integer):
            raise ValueError(f"rater_num_points must be an int array of shape {(f, r)}, "
                             f"got {n.dtype} {n.shape}")
        bad = used & ((n < 1) | (n > tr))
        if bad.any():
            fi, ri = np.argwhere(bad)[0]
            raise ValueError(f"rater_num_points[{fi}, {ri}] = {n[fi, ri]} is outside [1, Tr={tr}]")
    _require_finite("rater_scores", scores, used)
    lo, hi = SCORE_RANGE
    bad = used & ((scores < lo) | (scores > hi))
    if bad.any():
        fi, ri = np.argwhere(bad)[0]
        raise ValueError(f"rater_scores[{fi}, {ri}] = {scores[fi, ri]} is outside [{lo:g}, {hi:g}]; -1 marks "
                         "an unlabelled frame, which the official function would score as a negative label: "
                         "drop such frames (labelled_frames) or unset their slots in rater_mask")
    n = np.where(used, np.minimum(n, num_points), 1).astype(np.int64)  # truncation to num_points
    tc = min(tr, num_points)
    # Copies, never views of the caller's array: they are zeroed in place below.
    x = np.array(xy[:, :, :tc, 0], order="C")
    y = np.array(xy[:, :, :tc, 1], order="C")
    valid = used[..., None] & (np.arange(tc) < n[..., None])
    _require_finite("rater_xy (used points)", x, valid)
    _require_finite("rater_xy (used points)", y, valid)
    # NaN placeholders past a rater's end or in unused slots never reach the arithmetic.
    x[~valid] = 0.0
    y[~valid] = 0.0
    return _Raters(x=x, y=y, n=n, scores=np.where(used, scores, 0.0), used=used)


def _points_at(plane: F64, n: npt.NDArray[np.int64], idx: npt.ArrayLike) -> F64:
    """``(F, R, H)`` values of the padded raters at ``idx`` (past its end a rater holds its last point)."""
    at = np.minimum(np.asarray(idx)[None, None, :], n[..., None] - 1)
    return np.take_along_axis(plane, at, axis=2)


def normalize_raters(
    rater_xy: npt.ArrayLike,
    rater_scores: npt.ArrayLike,
    *,
    rater_mask: npt.ArrayLike | None = None,
    rater_num_points: npt.ArrayLike | None = None,
    num_points: int = 20,
    max_raters: int = NUM_RATERS,
) -> NormalizedRaters:
    """Pads/truncates raters like the official ``process_rater_specified_trajectories``, on dense arrays.

    The official code takes ragged lists; here a frame's raters are its slots with ``rater_mask`` set, in
    order, and rater ``r`` has its first ``rater_num_points[f, r]`` points valid (the rest may be NaN). The
    official code pads fewer than 3 raters by repeating the last one, which changes neither a maximum nor an
    "any", so unused slots are just marked unused.

    Args:
        rater_xy: ``(F, R, Tr, 2)`` ego-frame positions in metres, point ``k`` at ``(k + 1) / frequency`` s.
        rater_scores: ``(F, R)`` labels in [0, 10] for the used raters.
        rater_mask: ``(F, R)`` bool, slot holds a rater; default all.
        rater_num_points: ``(F, R)`` int, valid leading points per rater (>= 1 where used); default ``Tr``.
        num_points: points per trajectory after padding/truncation (``length_s * frequency``).
        max_raters: raters kept per frame.

    Returns:
        The normalised raters.

    Raises:
        ValueError: on shape mismatch, a frame without raters, a used rater with no points or non-finite
            points, or a used label outside [0, 10] (e.g. the -1 of unlabelled frames; see
            ``labelled_frames``).
    """
    raters = _validated_raters(rater_xy, rater_scores, rater_mask, rater_num_points, num_points, max_raters)
    t = np.arange(num_points)
    xy = np.stack([_points_at(raters.x, raters.n, t), _points_at(raters.y, raters.n, t)], axis=-1)
    return NormalizedRaters(xy=np.where(raters.used[..., None, None], xy, 0.0), scores=raters.scores,
                            used=raters.used)


def labelled_frames(rater_scores: npt.ArrayLike,
                    rater_mask: npt.ArrayLike | None = None) -> npt.NDArray[np.bool_]:
    """Frames that carry rater labels: at least one rater, and every present label in [0, 10].

    The tutorial keeps a frame when its first label is not -1; the two rules agree when placeholder frames
    carry only -1s. This one also rejects a frame that mixes labels and placeholders, which the official
    function would score with the placeholder as a real (negative) label.

    Args:
        rater_scores: ``(F, R)`` labels, -1 for placeholders.
        rater_mask: ``(F, R)`` bool, slot holds a rater; default all.

    Returns:
        ``(F,)`` bool.
    """
    s = np.asarray(rater_scores, dtype=np.float64)
    if s.ndim != 2:
        raise ValueError(f"rater_scores must have shape (F, R), got {s.shape}")
    m = np.ones(s.shape, dtype=bool) if rater_mask is None else np.asarray(rater_mask, dtype=bool)
    if m.shape != s.shape:
        raise ValueError(f"rater_mask must have shape {s.shape}, got {m.shape}")
    ok = (s >= SCORE_RANGE[0]) & (s <= SCORE_RANGE[1])
    return m.any(axis=1) & np.all(ok | ~m, axis=1)


def _horizon_axes(raters: _Raters, horizon_idx: npt.NDArray[np.int64]) -> tuple[F64, F64, F64, F64]:
    """Longitudinal axis ``(ax, ay)`` (not unit) and rater point ``(px, py)`` at the horizons, ``(F, R, H)``.

    The official code builds the axes at every point of the padded raters. Only the horizon points are
    needed, and padding (a repeated last point) never moves, so the unpadded points are enough.
    """
    x, y, n = raters.x, raters.y, raters.n
    tc = x.shape[2]
    dx = np.diff(x, axis=2, prepend=0.0)  # backward differences; the first one starts at the ego origin
    dy = np.diff(y, axis=2, prepend=0.0)
    # Officially "did not move" is np.linalg.norm(d) == 0, i.e. dx*dx + dy*dy == 0 (sqrt is zero only at
    # zero): a step under ~1e-162 m squares to 0 and counts as no motion, so hypot would differ.
    moved = ((dx * dx + dy * dy) != 0.0) & (np.arange(tc) < n[..., None])
    ax, ay = [], []
    for h in horizon_idx:
        last = min(int(h), tc - 1)
        # Carrying the direction forward over zero steps = using the last step that moved.
        j = (last - np.argmax(moved[..., last::-1], axis=-1))[..., None]
        has_moved = np.take_along_axis(moved, j, axis=2)[..., 0]
        # No motion since the origin: the ego's own x axis.
        ax.append(np.where(has_moved, np.take_along_axis(dx, j, axis=2)[..., 0], 1.0))
        ay.append(np.where(has_moved, np.take_along_axis(dy, j, axis=2)[..., 0], 0.0))
    px, py = _points_at(x, n, horizon_idx), _points_at(y, n, horizon_idx)
    return np.stack(ax, axis=-1), np.stack(ay, axis=-1), px, py


def rater_feedback_score(
    pred_xy: npt.ArrayLike,
    rater_xy: npt.ArrayLike,
    rater_scores: npt.ArrayLike,
    initial_speed_mps: npt.ArrayLike,
    *,
    rater_mask: npt.ArrayLike | None = None,
    rater_num_points: npt.ArrayLike | None = None,
    lat_lng_threshold_multipliers: tuple[float, float] = LAT_LNG_THRESHOLD_MULTIPLIERS,
    decay_factor: float = DECAY_FACTOR,
    min_score_outside_trust_region: float = MIN_SCORE_OUTSIDE_TRUST_REGION,
    frequency_hz: int = 4,
    length_s: int = 5,
    max_raters: int = NUM_RATERS,
) -> RFSResult:
    """Waymo's Rater Feedback Score of one predicted trajectory per frame.

    Equals the official ``get_rater_feedback_score(pred[:, None], ones((F, 1)), raters, labels, speed)``
    with the same keyword values, where each frame's rater list holds its used slots in order.

    Args:
        pred_xy: ``(F, T, 2)`` predicted ego-frame positions in metres, ``T = length_s * frequency_hz`` (20
            at 4 Hz: t = 0.25 ... 5.0 s). Only the points at 3 s and 5 s (indices 11, 19) matter.
        rater_xy: ``(F, R, Tr, 2)`` rater trajectories, same frame and timing, any ``Tr``: each used rater
            is truncated or padded (last point repeated) to ``T`` points.
        rater_scores: ``(F, R)`` labels in [0, 10]. Unlabelled frames (-1) must be dropped first (see
            ``labelled_frames``), as the tutorial does; the leaderboard scores only labelled frames.
        initial_speed_mps: ``(F,)`` ego speed at t = 0, m/s, >= 0.
        rater_mask: ``(F, R)`` bool, slot holds a rater (ragged rater counts); default all.
        rater_num_points: ``(F, R)`` int, valid leading points per rater (ragged lengths); default ``Tr``.
        lat_lng_threshold_multipliers: lateral and longitudinal multipliers of ``BASE_THRESHOLDS_M``.
        decay_factor: score factor per unit of normalised distance beyond the trust region, in (0, 1].
        min_score_outside_trust_region: floor for predictions outside every rater's trust region.
        frequency_hz: sampling rate of all trajectories (official ``frequency``, an int).
        length_s: trajectory length in seconds (official ``length_seconds``), at least 5.
        max_raters: raters kept per frame (official ``default_num_of_rater_specified_trajectories``).

    Returns:
        The per-frame scores and diagnostics.

    Raises:
        ValueError: on wrong shapes (naming the argument and shape), non-finite values, negative speeds,
            out-of-range labels or frames without raters.
    """
    if not (isinstance(frequency_hz, int | np.integer) and isinstance(length_s, int | np.integer)):
        raise ValueError(f"frequency_hz and length_s must be ints, got {frequency_hz!r} and {length_s!r}")
    if frequency_hz < 1 or length_s < max(HORIZONS_S):
        raise ValueError(f"need frequency_hz >= 1 and length_s >= {max(HORIZONS_S)}, "
                         f"got {frequency_hz} and {length_s}")
    if not (isinstance(max_raters, int | np.integer) and max_raters >= 1):
        raise ValueError(f"max_raters must be a positive int, got {max_raters!r}")
    decay = _check_param("decay_factor", decay_factor, low=0.0, high=1.0)
    lat_mult = _check_param("lat_lng_threshold_multipliers[0]", lat_lng_threshold_multipliers[0], low=0.0)
    lng_mult = _check_param("lat_lng_threshold_multipliers[1]", lat_lng_threshold_multipliers[1], low=0.0)
    if not np.isfinite(min_score_outside_trust_region):
        raise ValueError("min_score_outside_trust_region must be finite, "
                         f"got {min_score_outside_trust_region!r}")
    num_points = int(length_s * frequency_hz)
    pred = _float_array("pred_xy", pred_xy, 3, f"(F, {num_points}, 2)")
    if pred.shape[1] != num_points:
        raise ValueError(f"pred_xy must have shape (F, {num_points}, 2) ({num_points} points at "
                         f"{frequency_hz} Hz, t = {1 / frequency_hz:g} ... {length_s} s), got {pred.shape}")
    _require_finite("pred_xy", pred)
    f = pred.shape[0]
    speed = np.asarray(initial_speed_mps, dtype=np.float64)
    if speed.shape != (f,):
        raise ValueError(f"initial_speed_mps must have shape (F,) = ({f},), got {speed.shape}")
    _require_finite("initial_speed_mps", speed)
    if (speed < 0).any():
        raise ValueError(f"initial_speed_mps must be >= 0 (a speed), got {speed[speed < 0][0]} "
                         f"at frame {int(np.argmax(speed < 0))}")
    raters = _validated_raters(rater_xy, rater_scores, rater_mask, rater_num_points, num_points, max_raters)
    if raters.x.shape[0] != f:
        raise ValueError(f"rater_xy has {raters.x.shape[0]} frames but pred_xy has {f}")

    horizon_idx = np.asarray(HORIZONS_S, dtype=np.int64) * frequency_hz - 1
    ax, ay, px, py = _horizon_axes(raters, horizon_idx)  # (F, R, 2) each
    # Normalise the axes first and then project, as the official code does (the rounding differs otherwise).
    norm = np.sqrt(ax * ax + ay * ay)
    lng_x, lng_y = ax / norm, ay / norm
    lat_x, lat_y = -ay / norm, ax / norm  # the longitudinal axis turned 90° counter-clockwise
    off_x = pred[:, None, horizon_idx, 0] - px  # rater -> prediction
    off_y = pred[:, None, horizon_idx, 1] - py
    lng_err = np.abs(lng_x * off_x + lng_y * off_y)
    lat_err = np.abs(lat_x * off_x + lat_y * off_y)

    lat_thr, lng_thr = trust_region_thresholds(speed, (lat_mult, lng_mult))
    # An L-infinity box in the rater's own axes: the larger of the two normalised errors.
    dist = np.maximum(lng_err / lng_thr[:, None, :], lat_err / lat_thr[:, None, :])
    dist = np.where(raters.used[..., None], dist, np.inf)
    inside = np.any(np.all(dist <= 1.0, axis=2), axis=1)

    # Flat at the label inside the region, geometric decay outside.
    per_rater = raters.scores[..., None] * np.power(decay, np.maximum(dist - 1.0, 0.0))
    per_rater = np.where(raters.used[..., None], per_rater, -np.inf)
    # The best rater is chosen per horizon, independently: it may differ between 3 s and 5 s.
    best = np.argmax(per_rater, axis=1)
    horizon_scores = np.take_along_axis(per_rater, best[:, None, :], axis=1)[:, 0, :]
    raw = np.mean(horizon_scores, axis=-1)
    score = np.where(inside, raw, np.maximum(float(min_score_outside_trust_region), raw))
    return RFSResult(score=score, fully_inside_trust_region=inside, raw_score=raw,
                     horizon_scores=horizon_scores, best_rater=best.astype(np.int64),
                     normalized_distance=dist, lat_threshold_m=lat_thr, lng_threshold_m=lng_thr)


def top_rated_trajectory(
    rater_xy: npt.ArrayLike,
    rater_scores: npt.ArrayLike,
    *,
    rater_mask: npt.ArrayLike | None = None,
    rater_num_points: npt.ArrayLike | None = None,
    num_points: int = 20,
    max_raters: int = NUM_RATERS,
) -> F64:
    """The ADE ground truth: each frame's highest-labelled rater, padded/truncated like the RFS raters.

    Ties go to the first rater (numpy's argmax; no official tie rule is published).

    Args:
        rater_xy, rater_scores, rater_mask, rater_num_points, max_raters: as for ``rater_feedback_score``.
        num_points: points per returned trajectory (20 at 4 Hz).

    Returns:
        ``(F, num_points, 2)`` ego-frame positions in metres.
    """
    raters = _validated_raters(rater_xy, rater_scores, rater_mask, rater_num_points, num_points, max_raters)
    top = np.argmax(np.where(raters.used, raters.scores, -np.inf), axis=1)[:, None]
    n = np.take_along_axis(raters.n, top, axis=1)
    t = np.arange(num_points)
    x = _points_at(np.take_along_axis(raters.x, top[..., None], axis=1), n, t)
    y = _points_at(np.take_along_axis(raters.y, top[..., None], axis=1), n, t)
    return np.stack([x[:, 0], y[:, 0]], axis=-1)


def ade_at(pred_xy: npt.ArrayLike, gt_xy: npt.ArrayLike, horizon_s: float, hz: float = 4.0) -> F64:
    """Average displacement error over the first ``horizon_s`` seconds, per frame.

    The leaderboard's ADE@3s / ADE@5s take the top-rated rater (``top_rated_trajectory``) as ground truth
    and average over frames (not per cluster). ADE@3s averages the 12 points at 0.25 ... 3.0 s, ADE@5s 20.

    Args:
        pred_xy: ``(F, T, 2)`` ego-frame positions in metres, point ``k`` at ``(k + 1) / hz`` s.
        gt_xy: ``(F, T', 2)`` ground truth, same frame and timing.
        horizon_s: horizon in seconds; ``horizon_s * hz`` must be a whole number of points <= ``T``, ``T'``.
        hz: sampling rate of both trajectories.

    Returns:
        ``(F,)`` mean Euclidean distance in metres.
    """
    pred = _float_array("pred_xy", pred_xy, 3, "(F, T, 2)")
    gt = _float_array("gt_xy", gt_xy, 3, "(F, T', 2)")
    if pred.shape[0] != gt.shape[0]:
        raise ValueError(f"pred_xy and gt_xy must have the same F, got {pred.shape} and {gt.shape}")
    steps = float(horizon_s) * float(hz)
    n = int(round(steps)) if np.isfinite(steps) else -1
    if not (abs(steps - n) < 1e-9 and 1 <= n <= min(pred.shape[1], gt.shape[1])):
        raise ValueError(f"horizon_s * hz = {horizon_s} * {hz} must be a whole number of points in "
                         f"[1, {min(pred.shape[1], gt.shape[1])}] (pred_xy {pred.shape}, gt_xy {gt.shape})")
    _require_finite("pred_xy", pred[:, :n])
    _require_finite("gt_xy", gt[:, :n])
    diff = pred[:, :n] - gt[:, :n]
    return np.sqrt(diff[..., 0] * diff[..., 0] + diff[..., 1] * diff[..., 1]).mean(axis=1)


def aggregate_by_cluster(scores: npt.ArrayLike, clusters: Sequence[str]) -> ClusterAggregate:
    """Leaderboard aggregation: mean per scenario cluster, then the unweighted mean of the cluster means.

    Only clusters present in ``clusters`` count (val has 10 of the 11 clusters; no "Spotlight").

    Args:
        scores: ``(F,)`` per-frame scores (e.g. ``RFSResult.score``).
        clusters: ``F`` cluster names, e.g. from ``val_sequence_name_to_scenario_cluster.json``.

    Returns:
        The per-cluster means and counts, the mean of clusters and the frame mean.
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1 or s.size == 0:
        raise ValueError(f"scores must have shape (F,) with F >= 1, got {s.shape}")
    _require_finite("scores", s)
    names = list(clusters)
    if len(names) != s.size or not all(isinstance(c, str) for c in names):
        raise ValueError(f"clusters must be {s.size} strings (one per score), got {len(names)} items")
    keys, inverse = np.unique(np.asarray(names, dtype=np.str_), return_inverse=True)
    counts = np.bincount(inverse, minlength=keys.size)
    means = np.bincount(inverse, weights=s, minlength=keys.size) / counts
    return ClusterAggregate(
        per_cluster={str(k): float(m) for k, m in zip(keys, means)},
        per_cluster_count={str(k): int(c) for k, c in zip(keys, counts)},
        mean_of_clusters=float(means.mean()),
        frame_mean=float(s.mean()),
    )
