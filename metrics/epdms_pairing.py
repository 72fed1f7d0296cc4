"""EPDMS one-stage pairing: which token precedes which in a log, and two-frame extended comfort (EC)
set on the later frame of each pair, as NAVSIM v2's one-stage script does."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import numpy.typing as npt

from harness.scoring_scene import SCORING_STEP_S
from metrics.epdms_rows import EPDMSRow
from metrics.epdms_scoring.comfort import two_frame_extended_comfort

F64 = npt.NDArray[np.float64]

def one_stage_predecessors(
    tokens: Sequence[str],
    log_names: Sequence[str],
    timestamps_us: Sequence[int],
    original: Sequence[bool],
    *,
    max_gap_s: float = 0.55,
) -> dict[str, str]:
    """``infer_start_adjacent_mapping`` of NAVSIM's one-stage script: token -> its predecessor token.

    Per log, the ORIGINAL scored tokens are sorted by start time; each is linked to the one before it when
    their start times differ by at most ``max_gap_s`` (start times in seconds, ``timestamp_us · 1e-6``).
    Pass only tokens that were scored (the official script drops failed rows, which have no log name).
    """
    groups: dict[str, list[tuple[float, str]]] = {}
    for tok, log_name, ts, orig in zip(tokens, log_names, timestamps_us, original, strict=True):
        if orig:
            groups.setdefault(str(log_name), []).append((int(ts) * 1e-6, str(tok)))
    out: dict[str, str] = {}
    for items in groups.values():
        items.sort(key=lambda x: x[0])
        for (t0, prev), (t1, cur) in zip(items, items[1:]):
            if abs(t1 - t0) <= max_gap_s:
                out[cur] = prev
    return out


def ec_overlap_steps(current_start_us: int, previous_start_us: int, step_s: float = SCORING_STEP_S) -> int | None:
    """``round(Δt / 0.1)`` for ``0 < Δt < 0.55`` s (``SceneAggregator._compute_two_frame_comfort``), else None
    (the official code asserts there; lead-bench leaves such a pair's EC unset)."""
    dt = int(current_start_us) * 1e-6 - int(previous_start_us) * 1e-6
    if not 0 < dt < 0.55:
        return None
    return round(dt / step_s)


def with_two_frame_comfort(
    rows: Sequence[EPDMSRow],
    states: Sequence[F64],
    start_times_us: Sequence[int],
    predecessors: dict[str, str],
    *,
    both_frames: bool = False,
) -> list[EPDMSRow]:
    """Sets EC of every row with a predecessor.

    Args:
        rows: the scored rows; states: their agent's simulated ``(41, 11)`` states; start_times_us: their
            scene timestamps.
        predecessors: ``token -> previous token`` (``one_stage_predecessors``, or a two-stage group's pairs).
        both_frames: also give the previous frame the pair's EC (``SceneAggregator`` in two-stage mode);
            the one-stage script sets it on the later frame only.
    """
    index = {r.token: i for i, r in enumerate(rows)}
    cur_idx, prev_idx, overlaps = [], [], []
    for tok, prev in predecessors.items():
        if tok not in index or prev not in index:
            continue
        ov = ec_overlap_steps(start_times_us[index[tok]], start_times_us[index[prev]])
        if ov is not None:
            cur_idx.append(index[tok])
            prev_idx.append(index[prev])
            overlaps.append(ov)
    out = list(rows)
    for ov in sorted(set(overlaps)):
        sel = [k for k, o in enumerate(overlaps) if o == ov]
        cur = np.stack([np.asarray(states[cur_idx[k]], dtype=np.float64) for k in sel])
        prev = np.stack([np.asarray(states[prev_idx[k]], dtype=np.float64) for k in sel])
        ec = two_frame_extended_comfort(cur, prev, ov).comfortable
        for k, v in zip(sel, ec):
            out[cur_idx[k]] = replace(out[cur_idx[k]], two_frame_extended_comfort=float(v))
            if both_frames:
                out[prev_idx[k]] = replace(out[prev_idx[k]], two_frame_extended_comfort=float(v))
    return out
