"""EPDMS comfort: history comfort (HC) and two-frame extended comfort (EC) (specs/navsim.md §6.8, §6.9).

Re-implements NAVSIM ``main``'s ``pdm_comfort_metrics.ego_is_comfortable`` (v2 signals and windows) and
``ego_is_two_frame_extended_comfort`` with the same SciPy calls, so the values (rounded to 8 decimals, as
officially) and the bound checks match.

HC, the six nuPlan checks on ``(P, T, 11)`` rear-axle states (T = history + 41 in EPDMS), bounds strict:

| check | signal | Savitzky-Golay (mode "interp") |
|---|---|---|
| longitudinal acceleration | ``acceleration_x`` shifted to the box centre | window min(8, T), poly 2 |
| lateral acceleration | ``acceleration_y`` at the centre (= rear axle) | window min(8, T), poly 2 |
| jerk magnitude | d/dt hypot(ax, ay) **rear axle**, pre-smoothed w 8 | derivative window min(15, T), poly 2 |
| longitudinal jerk | d/dt centre ax, pre-smoothed w 8 | derivative window min(15, T), poly 2 |
| yaw acceleration | d²/dt² unwrapped heading | window 5, poly 3 |
| yaw rate | d/dt unwrapped heading | window 5, poly 2 |

The centre shift is nuPlan's rigid-body ``get_acceleration_shifted`` with displacement (1.461 m, 0):
``ax_centre = (ax + d·ω²) + d·α``, ``ay_centre = ay``, with the official evaluation order.

EC compares two consecutive frames' simulated states over their overlap: features acceleration magnitude
(rear axle, w 8), jerk magnitude (w 8 then derivative w 15), yaw rate (w 5, poly 2) and yaw acceleration
(w 5, **poly 2**); the frames are comfortable together iff the RMS of the feature differences is at most
0.7 m/s², 0.5 m/s³, 0.1 rad/s and 0.1 rad/s² (inclusive).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.signal import savgol_filter

from metrics.pdm.state import PACIFICA, StateIndex
from metrics.pdm_scoring.comfort import (
    MAX_ABS_LAT_ACCEL_MPS2,
    MAX_ABS_LON_JERK_MPS3,
    MAX_ABS_MAG_JERK_MPS3,
    MAX_ABS_YAW_ACCEL_RADPS2,
    MAX_ABS_YAW_RATE_RADPS,
    MAX_LON_ACCEL_MPS2,
    MIN_LON_ACCEL_MPS2,
    phase_unwrap,
)

F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

#: Column order of ``history_comfort_checks`` (the official order of ``ego_is_comfortable``).
HISTORY_COMFORT_CHECKS = ("lon_acceleration", "lat_acceleration", "jerk", "lon_jerk", "yaw_acceleration",
                          "yaw_rate")

#: EC bounds on the RMS of the feature differences (inclusive).
EC_MAX_RMS_ACCELERATION_MPS2 = 0.7
EC_MAX_RMS_JERK_MPS3 = 0.5
EC_MAX_RMS_YAW_RATE_RADPS = 0.1
EC_MAX_RMS_YAW_ACCEL_RADPS2 = 0.1

_DECIMALS = 8
_ACCEL_WINDOW = 8
_JERK_WINDOW = 15
_YAW_WINDOW = 5


def _smooth(signal: F64, window: int) -> F64:
    n = signal.shape[-1]
    out = savgol_filter(signal, polyorder=2, window_length=min(window, n), axis=-1)
    return np.round(out, decimals=_DECIMALS)


def _derivative(signal: F64, time_s: F64, window: int, poly: int, deriv: int) -> F64:
    """nuPlan ``_approximate_derivatives`` (window clipped to the length, spacing = mean step), rounded."""
    dt = np.diff(time_s)
    if not np.all(dt > 0):
        raise ValueError("comfort: times must be strictly increasing")
    n = len(time_s)
    w = min(window, n)
    if not poly < w:
        raise ValueError(f"comfort: {len(time_s)} states are too few for a polynomial of order {poly}")
    out = savgol_filter(signal, polyorder=poly, window_length=w, deriv=deriv, delta=dt.mean(), axis=-1)
    return np.round(out, decimals=_DECIMALS)


def center_acceleration_x(states: F64, rear_axle_to_center_m: float = PACIFICA.rear_axle_to_center) -> F64:
    """Longitudinal acceleration at the box centre (nuPlan ``get_acceleration_shifted``, order kept)."""
    omega = states[..., StateIndex.ANGULAR_VELOCITY]
    alpha = states[..., StateIndex.ANGULAR_ACCELERATION]
    return (states[..., StateIndex.ACCELERATION_X] + rear_axle_to_center_m * omega**2) + rear_axle_to_center_m * alpha


def center_acceleration_y(states: F64) -> F64:
    """Lateral acceleration at the box centre: the rear axle's (the displacement has no lateral part)."""
    omega = states[..., StateIndex.ANGULAR_VELOCITY]
    alpha = states[..., StateIndex.ANGULAR_ACCELERATION]
    return (states[..., StateIndex.ACCELERATION_Y] + 0.0 * omega**2) + 0.0 * alpha


def _within(metric: F64, low: float, high: float) -> B:
    return np.all((metric > low) & (metric < high), axis=-1)


def history_comfort_checks(states: F64, time_s: F64) -> B:
    """The six v2 comfort checks of every proposal (``ego_is_comfortable`` of NAVSIM ``main``).

    Args:
        states: ``(P, T, 11)`` rear-axle states (EPDMS: the history states followed by the 41 simulated).
        time_s: ``(T,)`` strictly increasing times, seconds (EPDMS: ``arange(T) · 0.1``).

    Returns:
        ``(P, 6)`` bool, columns ``HISTORY_COMFORT_CHECKS``; HC is 1 iff all hold.
    """
    if states.ndim != 3 or states.shape[1] != len(time_s) or states.shape[1] < 6:
        raise ValueError(f"history comfort: states {states.shape} and times {np.shape(time_s)} do not fit "
                         "(need >= 6 states)")
    ax_c = center_acceleration_x(states)
    ay_c = center_acceleration_y(states)
    mag = np.hypot(states[..., StateIndex.ACCELERATION_X], states[..., StateIndex.ACCELERATION_Y])
    lon_accel = _smooth(ax_c, _ACCEL_WINDOW)
    lat_accel = _smooth(ay_c, _ACCEL_WINDOW)
    jerk = _derivative(_smooth(mag, _ACCEL_WINDOW), time_s, _JERK_WINDOW, 2, 1)
    lon_jerk = _derivative(lon_accel, time_s, _JERK_WINDOW, 2, 1)
    heading = phase_unwrap(states[..., StateIndex.HEADING])
    yaw_accel = _derivative(heading, time_s, _YAW_WINDOW, 3, 2)
    yaw_rate = _derivative(heading, time_s, _YAW_WINDOW, 2, 1)
    return np.stack(
        [
            _within(lon_accel, MIN_LON_ACCEL_MPS2, MAX_LON_ACCEL_MPS2),
            _within(lat_accel, -MAX_ABS_LAT_ACCEL_MPS2, MAX_ABS_LAT_ACCEL_MPS2),
            _within(jerk, -MAX_ABS_MAG_JERK_MPS3, MAX_ABS_MAG_JERK_MPS3),
            _within(lon_jerk, -MAX_ABS_LON_JERK_MPS3, MAX_ABS_LON_JERK_MPS3),
            _within(yaw_accel, -MAX_ABS_YAW_ACCEL_RADPS2, MAX_ABS_YAW_ACCEL_RADPS2),
            _within(yaw_rate, -MAX_ABS_YAW_RATE_RADPS, MAX_ABS_YAW_RATE_RADPS),
        ],
        axis=-1,
    )


@dataclass(frozen=True)
class TwoFrameComfort:
    """EC of consecutive frames and the RMS feature differences behind it (all ``(N,)``).

    Attributes:
        comfortable: EC in {0, 1}.
        rms_acceleration_mps2, rms_jerk_mps3, rms_yaw_rate_radps, rms_yaw_accel_radps2: RMS differences.
    """

    comfortable: F64
    rms_acceleration_mps2: F64
    rms_jerk_mps3: F64
    rms_yaw_rate_radps: F64
    rms_yaw_accel_radps2: F64


def _ec_features(states: F64, time_s: F64) -> tuple[F64, F64, F64, F64]:
    mag = np.hypot(states[..., StateIndex.ACCELERATION_X], states[..., StateIndex.ACCELERATION_Y])
    accel = _smooth(mag, _ACCEL_WINDOW)
    jerk = _derivative(accel, time_s, _JERK_WINDOW, 2, 1)
    heading = phase_unwrap(states[..., StateIndex.HEADING])
    yaw_rate = _derivative(heading, time_s, _YAW_WINDOW, 2, 1)
    yaw_accel = _derivative(heading, time_s, _YAW_WINDOW, 2, 2)
    return accel, jerk, yaw_rate, yaw_accel


def two_frame_extended_comfort(current: F64, previous: F64, overlap_steps: int, step_s: float = 0.1
                               ) -> TwoFrameComfort:
    """EC between each frame's simulated states and its predecessor's (``SceneAggregator``).

    The current frame starts ``overlap_steps`` steps after the previous one (5 for 0.5 s), so current states
    ``[: T - overlap]`` and previous states ``[overlap :]`` cover the same absolute times.

    Args:
        current: ``(N, T, 11)`` or ``(T, 11)`` simulated rear-axle states of the later frames (T = 41).
        previous: the same shape, their predecessors.
        overlap_steps: start-time difference in steps (``round(Δt / 0.1)``), 1 <= overlap <= T - 6.
        step_s: state spacing, seconds.

    Returns:
        EC and the four RMS differences, ``(N,)`` (``()``-shaped arrays for unbatched input).
    """
    cur = np.asarray(current, dtype=np.float64)
    prev = np.asarray(previous, dtype=np.float64)
    if cur.shape != prev.shape or cur.ndim not in (2, 3) or cur.shape[-1] != 11:
        raise ValueError(f"two-frame comfort: shapes {cur.shape} and {prev.shape} must agree as (N, T, 11)")
    unbatched = cur.ndim == 2
    if unbatched:
        cur, prev = cur[None], prev[None]
    n_t = cur.shape[1]
    if not 1 <= overlap_steps <= n_t - 6:
        raise ValueError(f"two-frame comfort: overlap of {overlap_steps} steps does not fit {n_t} states")
    cur_o = cur[:, : n_t - overlap_steps]
    prev_o = prev[:, overlap_steps:]
    time_s = np.arange(cur_o.shape[1]) * step_s
    rms = []
    for f_cur, f_prev in zip(_ec_features(cur_o, time_s), _ec_features(prev_o, time_s)):
        rms.append(np.sqrt(np.mean((f_cur - f_prev) ** 2, axis=1)))
    ok = (
        (rms[0] <= EC_MAX_RMS_ACCELERATION_MPS2)
        & (rms[1] <= EC_MAX_RMS_JERK_MPS3)
        & (rms[2] <= EC_MAX_RMS_YAW_RATE_RADPS)
        & (rms[3] <= EC_MAX_RMS_YAW_ACCEL_RADPS2)
    )
    out = [ok.astype(np.float64)] + rms
    if unbatched:
        out = [o[0] for o in out]
    return TwoFrameComfort(*out)
