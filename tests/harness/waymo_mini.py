"""A tiny WOD-E2E data root written with lead-bench's schema and TFRecord writer, in the bucket's flat layout.

No images (the cv and human agents read none, and labels never touch image bytes), so it builds in
milliseconds. val: ``VAL_SEQUENCES`` sequences of frames 10, 11, 12 at 10 Hz; frame 11 carries three rated
trajectories, the others three -1 placeholders; clusters "Intersection" (3 sequences) and "Cut_ins" (1).
test: two sequences without futures or raters, and a manifest naming frame 11 of each.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from adapters.waymo.schema import E2EDFrame
from adapters.waymo.tfrecord import write_records

T_FUTURE = (np.arange(20) + 1) * 0.25
T_PAST = (np.arange(16) - 15) * 0.25
VAL_SEQUENCES = [f"{i:032x}" for i in range(1, 5)]
TEST_SEQUENCES = [f"{i:032x}" for i in range(100, 102)]
CLUSTERS = {s: ("Cut_ins" if i == 3 else "Intersection") for i, s in enumerate(VAL_SEQUENCES)}
FRAMES = (10, 11, 12)
LABELLED_FRAME = 11


def _frame(seq: str, idx: int, speed: float, *, future: bool, raters: list[tuple[np.ndarray, float]]) -> bytes:
    msg = E2EDFrame()
    msg.frame.context.name = f"{seq}-{idx:03d}"
    msg.intent = 1
    p = msg.past_states
    p.pos_x.extend((speed * T_PAST).tolist())
    p.pos_y.extend([0.0] * 16)
    p.vel_x.extend([speed] * 16)
    p.vel_y.extend([0.0] * 16)
    p.accel_x.extend([0.0] * 16)
    p.accel_y.extend([0.0] * 16)
    if future:
        f = msg.future_states
        f.pos_x.extend((speed * T_FUTURE).tolist())
        f.pos_y.extend((0.05 * T_FUTURE ** 2).tolist())  # a gentle drift to the left
        f.pos_z.extend([0.0] * 20)
    for xy, score in raters:
        r = msg.preference_trajectories.add()
        r.pos_x.extend(xy[:, 0].tolist())
        r.pos_y.extend(xy[:, 1].tolist())
        r.preference_score = score
    return msg.SerializeToString()


def _raters(speed: float) -> list[tuple[np.ndarray, float]]:
    """21-point raters as in the release: the logged-like path (9), a faster one (6), a lane change (3)."""
    t = (np.arange(21) + 1) * 0.25
    return [(np.stack([speed * t, 0.05 * t ** 2], axis=-1), 9.0),
            (np.stack([(speed + 2.0) * t, np.zeros(21)], axis=-1), 6.0),
            (np.stack([speed * t, np.minimum(t, 3.5)], axis=-1), 3.0)]


def write_mini_dataset(root: Path) -> Path:
    """Write the data root; returns it."""
    root.mkdir(parents=True, exist_ok=True)
    val = []
    for i, seq in enumerate(VAL_SEQUENCES):
        speed = 2.0 + 3.0 * i
        for idx in FRAMES:
            labelled = idx == LABELLED_FRAME
            placeholder = [(np.zeros((21, 2)), -1.0)] * 3
            val.append(_frame(seq, idx, speed, future=True, raters=_raters(speed) if labelled else placeholder))
    write_records(root / "val_202504211843.tfrecord-00000-of-00001", val)
    test = [_frame(seq, idx, 6.0, future=False, raters=[]) for seq in TEST_SEQUENCES for idx in FRAMES]
    write_records(root / "test_202504211836-202504220845.tfrecord-00000-of-00001", test)
    (root / "val_sequence_name_to_scenario_cluster.json").write_text(json.dumps(CLUSTERS), encoding="utf-8")
    (root / "test_sequence_frames_for_submission.json").write_text(
        json.dumps({seq: LABELLED_FRAME for seq in TEST_SEQUENCES}), encoding="utf-8")
    return root
