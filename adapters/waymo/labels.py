"""The non-image content of one E2EDFrame, validated: ego past, logged future, intent and rater labels.

Everything here is in Waymo's ego frame at the frame's current time, which is lead-bench's canonical frame
(x forward, y left, z up, origin at the rear-axle centre; specs/waymo_e2e.md §1.3), so nothing is converted.

Sampling (§1.4): ``past_*`` has 16 states at 4 Hz, t = -3.75 … 0 s, oldest first (index 15 is the current
time); ``future_xy`` has 20 positions at 4 Hz, t = 0.25 … 5.0 s; rater trajectories are 4 Hz from t = 0.25 s
(real ones usually carry 21 points, a few 7-20; the metric keeps the first 20 and pads short ones).

Frame identity (§1.6): ``frame.context.name`` is ``"<sequence_id>-<frame_index:03d>"``; the sequence id is
everything before the **last** ``-`` and the frame index (10 Hz frames) the integer after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from harness.errors import DataError

F64 = npt.NDArray[np.float64]

NUM_PAST_STATES = 16
NUM_FUTURE_STATES = 20
#: Seconds between trajectory states (past, future, raters): 4 Hz.
STATE_INTERVAL_S = 0.25
#: Seconds between consecutive frame indices of a sequence: frames are stored at 10 Hz.
FRAME_INTERVAL_S = 0.1
#: The rater-score value of placeholder trajectories on unlabelled frames (official proto comment).
PLACEHOLDER_SCORE = -1.0
MAX_RATER_SCORE = 10.0

#: ``EgoIntent.Intent`` values.
INTENT_UNKNOWN, INTENT_GO_STRAIGHT, INTENT_GO_LEFT, INTENT_GO_RIGHT = 0, 1, 2, 3
INTENT_NAMES = {0: "UNKNOWN", 1: "GO_STRAIGHT", 2: "GO_LEFT", 3: "GO_RIGHT"}


def _frozen(a: npt.ArrayLike) -> F64:
    out = np.array(a, dtype=np.float64)
    out.setflags(write=False)
    return out


def split_frame_name(name: str) -> tuple[str, int]:
    """``(sequence_id, frame_index)`` of a frame name ``"<sequence_id>-<frame_index>"`` (split on the last ``-``).

    Raises:
        ValueError: the name has no ``-``, an empty sequence id, or a non-numeric index.
    """
    seq, sep, idx = name.rpartition("-")
    if not sep or not seq or not idx.isdigit() or not idx.isascii():
        raise ValueError(f"frame name {name!r} is not '<sequence_id>-<frame_index>'")
    return seq, int(idx)


def frame_name(sequence_id: str, frame_index: int) -> str:
    """The frame name of a sequence's frame, as the release and the submission server spell it."""
    return f"{sequence_id}-{int(frame_index):03d}"


@dataclass(frozen=True, eq=False)
class FrameLabels:
    """Ego state, logged future and rater labels of one frame (no images).

    Compared by identity (``eq=False``): its fields are arrays, which have no single truth value.

    Attributes:
        frame_name: ``context.name``, e.g. ``"8e737334b520fdd0c04e36f463b2d211-085"``.
        sequence_id: the part before the last ``-``.
        frame_index: the 10 Hz frame index after it.
        initial_speed_mps: ``v0 = ‖(past.vel_x[-1], past.vel_y[-1])‖`` (the tutorial's and the metric's).
        past_xy: ``(16, 2)`` past positions (m), t = -3.75 … 0 s, oldest first.
        past_velocity_xy: ``(16, 2)`` past velocities (m/s), ego frame at t = 0.
        past_accel_xy: ``(16, 2)`` past accelerations (m/s²), ego frame at t = 0.
        intent: the raw ``EgoIntent.Intent`` value (0 UNKNOWN, 1 GO_STRAIGHT, 2 GO_LEFT, 3 GO_RIGHT).
        future_xy: ``(20, 2)`` logged future positions (m), t = 0.25 … 5.0 s; ``None`` when the frame has
            none (test split).
        rater_trajectories: ``(K, T, 2)`` rater trajectory positions (m), 4 Hz from t = 0.25 s. Ragged
            trajectories are padded to the longest by repeating their last point (what the metric does);
            :attr:`rater_lengths` keeps their true lengths. ``K = 0`` (shape ``(0, 0, 2)``) when absent.
        rater_scores: ``(K,)`` scores in [0, 10], or all -1 on placeholder frames.
        rater_lengths: ``(K,)`` number of points each rater trajectory really has.
        has_rater_labels: ``K > 0`` and every score is a real score (not the -1 placeholder).
    """

    frame_name: str
    sequence_id: str
    frame_index: int
    initial_speed_mps: float
    past_xy: F64
    past_velocity_xy: F64
    past_accel_xy: F64
    intent: int
    future_xy: F64 | None
    rater_trajectories: F64
    rater_scores: F64
    rater_lengths: npt.NDArray[np.int64]
    has_rater_labels: bool

    def __post_init__(self) -> None:
        o = f"FrameLabels[{self.frame_name}]"
        for name, shape in (("past_xy", (NUM_PAST_STATES, 2)), ("past_velocity_xy", (NUM_PAST_STATES, 2)),
                            ("past_accel_xy", (NUM_PAST_STATES, 2))):
            arr = _frozen(getattr(self, name))
            if arr.shape != shape or not np.all(np.isfinite(arr)):
                raise ValueError(f"{o}.{name}: expected finite {shape}, got {arr.shape}")
            object.__setattr__(self, name, arr)
        if self.future_xy is not None:
            fut = _frozen(self.future_xy)
            if fut.shape != (NUM_FUTURE_STATES, 2) or not np.all(np.isfinite(fut)):
                raise ValueError(f"{o}.future_xy: expected finite ({NUM_FUTURE_STATES}, 2), got {fut.shape}")
            object.__setattr__(self, "future_xy", fut)
        raters = _frozen(self.rater_trajectories)
        k = raters.shape[0] if raters.ndim == 3 else -1
        if raters.ndim != 3 or raters.shape[2] != 2 or not np.all(np.isfinite(raters)):
            raise ValueError(f"{o}.rater_trajectories: expected finite (K, T, 2), got {raters.shape}")
        scores = _frozen(self.rater_scores)
        lengths = np.array(self.rater_lengths, dtype=np.int64)
        lengths.setflags(write=False)
        if scores.shape != (k,) or lengths.shape != (k,):
            raise ValueError(f"{o}: {k} rater trajectories but scores {scores.shape} and lengths {lengths.shape}")
        object.__setattr__(self, "rater_trajectories", raters)
        object.__setattr__(self, "rater_scores", scores)
        object.__setattr__(self, "rater_lengths", lengths)
        if self.has_rater_labels != bool(k > 0 and np.all(scores >= 0)):
            raise ValueError(f"{o}.has_rater_labels={self.has_rater_labels} contradicts the scores {scores}")
        if not (np.isfinite(self.initial_speed_mps) and self.initial_speed_mps >= 0):
            raise ValueError(f"{o}.initial_speed_mps must be finite and >= 0, got {self.initial_speed_mps}")
        if self.intent not in INTENT_NAMES:
            raise ValueError(f"{o}.intent must be one of {sorted(INTENT_NAMES)}, got {self.intent}")

    @property
    def valid_raters(self) -> tuple[F64, ...]:
        """The labelled rater trajectories at their true lengths ``(T_k, 2)``; empty on placeholder frames."""
        if not self.has_rater_labels:
            return ()
        return tuple(self.rater_trajectories[i, :n] for i, n in enumerate(self.rater_lengths))


def _xy(states: Any, field_x: str, field_y: str) -> F64:
    x = np.asarray(getattr(states, field_x), dtype=np.float64)
    y = np.asarray(getattr(states, field_y), dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"{field_x} has {x.size} values but {field_y} has {y.size}")
    return np.stack([x, y], axis=-1).reshape(-1, 2)


def frame_labels(frame_msg: Any, *, source: str) -> FrameLabels:
    """Validated :class:`FrameLabels` of a parsed ``E2EDFrame`` (lead-bench's class or the official one).

    Args:
        frame_msg: the message (only ``frame.context.name``, ``past_states``, ``future_states``, ``intent``
            and ``preference_trajectories`` are read; images are never touched).
        source: where the message came from (file and byte offset), for error messages.

    Raises:
        DataError: naming ``source`` and the frame: a malformed frame name; past states that are not 16
            of each of pos/vel/accel x/y; future states present but not exactly 20; non-finite values; a
            rater trajectory without a score, without points, or with a score neither -1 nor in [0, 10];
            a frame mixing placeholder and real scores.
    """
    name = frame_msg.frame.context.name
    token = name or "<no frame name>"

    def fail(what: str) -> DataError:
        return DataError(f"E2EDFrame {token} from {source}: {what}", token=token)

    try:
        sequence_id, frame_index = split_frame_name(name)
    except ValueError as exc:
        raise fail(str(exc)) from exc

    past = frame_msg.past_states
    try:
        past_xy = _xy(past, "pos_x", "pos_y")
        past_v = _xy(past, "vel_x", "vel_y")
        past_a = _xy(past, "accel_x", "accel_y")
    except ValueError as exc:
        raise fail(f"past_states: {exc}") from exc
    for label, arr in (("pos", past_xy), ("vel", past_v), ("accel", past_a)):
        if arr.shape[0] != NUM_PAST_STATES:
            raise fail(f"past_states has {arr.shape[0]} {label} x/y values, expected {NUM_PAST_STATES}")
        if not np.all(np.isfinite(arr)):
            raise fail(f"past_states {label} has NaN or inf")

    fut = frame_msg.future_states
    try:
        future = _xy(fut, "pos_x", "pos_y")
    except ValueError as exc:
        raise fail(f"future_states: {exc}") from exc
    if future.shape[0] == 0:
        future_xy = None
    elif future.shape[0] != NUM_FUTURE_STATES:
        raise fail(f"future_states has {future.shape[0]} positions, expected {NUM_FUTURE_STATES} (or none on test)")
    elif not np.all(np.isfinite(future)):
        raise fail("future_states has NaN or inf")
    else:
        future_xy = future

    trajs: list[F64] = []
    scores: list[float] = []
    for i, pref in enumerate(frame_msg.preference_trajectories):
        if not pref.HasField("preference_score"):
            raise fail(f"preference_trajectories[{i}] has no preference_score")
        score = float(pref.preference_score)
        try:
            xy = _xy(pref, "pos_x", "pos_y")
        except ValueError as exc:
            raise fail(f"preference_trajectories[{i}]: {exc}") from exc
        if not np.all(np.isfinite(xy)) or not np.isfinite(score):
            raise fail(f"preference_trajectories[{i}] has NaN or inf")
        if score != PLACEHOLDER_SCORE and not 0.0 <= score <= MAX_RATER_SCORE:
            raise fail(f"preference_trajectories[{i}] score {score} is neither -1 nor in [0, 10]")
        if score != PLACEHOLDER_SCORE and xy.shape[0] == 0:
            raise fail(f"preference_trajectories[{i}] has score {score} but no points")
        trajs.append(xy)
        scores.append(score)
    score_arr = np.array(scores, dtype=np.float64)
    placeholder = score_arr == PLACEHOLDER_SCORE
    if placeholder.any() and not placeholder.all():
        raise fail(f"rater scores {scores} mix -1 placeholders with real scores")

    lengths = np.array([len(t) for t in trajs], dtype=np.int64)
    t_max = int(lengths.max()) if len(trajs) else 0
    raters = np.zeros((len(trajs), t_max, 2))
    for i, t in enumerate(trajs):
        if len(t):
            raters[i, : len(t)] = t
            raters[i, len(t):] = t[-1]  # hold the last point, as the metric pads
        # an empty placeholder trajectory stays at the origin: it carries no information

    return FrameLabels(
        frame_name=name,
        sequence_id=sequence_id,
        frame_index=frame_index,
        initial_speed_mps=float(np.hypot(*past_v[-1])),
        past_xy=past_xy,
        past_velocity_xy=past_v,
        past_accel_xy=past_a,
        intent=int(frame_msg.intent),
        future_xy=future_xy,
        rater_trajectories=raters,
        rater_scores=score_arr,
        rater_lengths=lengths,
        has_rater_labels=bool(len(trajs) > 0 and not placeholder.any()),
    )
