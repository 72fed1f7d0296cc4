"""Comfort (C) of PDMS v1.1: nuPlan's six ego comfort checks on the simulated states (specs/navsim.md §5.5).

Reproduces ``pdm_comfort_metrics.ego_is_comfortable`` of NAVSIM v1.1 with the same SciPy calls, so the
values (rounded to 8 decimals, as officially) and the strict bound checks match:

| check | signal | Savitzky-Golay (mode "interp") | bound |
|---|---|---|---|
| longitudinal acceleration | ``acceleration_x`` | window min(41, T), poly 2 | (-4.05, 2.40) m/s² |
| lateral acceleration | ``acceleration_y`` | window min(41, T), poly 2 | (-4.89, 4.89) m/s² |
| jerk magnitude | d/dt hypot(ax, ay) (pre-smoothed: window 8, poly 2) | window min(41, T), poly 2 | (-8.37, 8.37) m/s³ |
| longitudinal jerk | d/dt ax (pre-smoothed: window 8, poly 2) | window min(41, T), poly 2 | (-4.13, 4.13) m/s³ |
| yaw acceleration | d²/dt² unwrapped heading | window 5, poly 3 | (-1.93, 1.93) rad/s² |
| yaw rate | d/dt unwrapped heading | window 5, poly 2 | (-0.95, 0.95) rad/s |

The yaw checks use window 5 whatever the caller asks: the official helper drops the window argument.
Accelerations are the rear-axle body-frame values of the state array.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import numpy.typing as npt
from scipy.signal import savgol_filter

from metrics.pdm_scoring.geometry import ACCELERATION_X, ACCELERATION_Y, HEADING

F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

#: Column order of ``comfort_checks`` (the official order of ``ego_is_comfortable``).
COMFORT_CHECKS = ("lon_acceleration", "lat_acceleration", "jerk", "lon_jerk", "yaw_acceleration", "yaw_rate")

MAX_LON_ACCEL_MPS2, MIN_LON_ACCEL_MPS2 = 2.40, -4.05
MAX_ABS_LAT_ACCEL_MPS2 = 4.89
MAX_ABS_MAG_JERK_MPS3 = 8.37
MAX_ABS_LON_JERK_MPS3 = 4.13
MAX_ABS_YAW_ACCEL_RADPS2 = 1.93
MAX_ABS_YAW_RATE_RADPS = 0.95

_DECIMALS = 8
_ACCEL_PRESMOOTH_WINDOW = 8
_YAW_WINDOW = 5


def phase_unwrap(headings: F64) -> F64:
    """nuPlan's ``phase_unwrap``: subtract 2π times the cumulative rounded jumps (first value unchanged)."""
    two_pi = 2.0 * np.pi
    adjustments = np.zeros_like(headings)
    adjustments[..., 1:] = np.cumsum(np.round(np.diff(headings, axis=-1) / two_pi), axis=-1)
    return headings - two_pi * adjustments


@lru_cache(maxsize=64)
def _savgol_matrix(n: int, window: int, poly: int, deriv: int, delta: float) -> F64:
    """``savgol_filter(x, ..., mode="interp")`` of a length-``n`` signal as the matrix ``M``: ``out = M @ x``.

    The filter (interior correlation plus least-squares polynomial fits at both edges) is linear in ``x``, so
    filtering the identity gives its matrix; applying it to every proposal at once replaces SciPy's per-call
    edge fits. Results agree with ``savgol_filter`` to float rounding (~1e-15).
    """
    m = savgol_filter(np.eye(n), polyorder=poly, window_length=window, deriv=deriv, delta=delta, axis=0)
    m.setflags(write=False)
    return m


def _savgol(signal: F64, window: int, poly: int, deriv: int = 0, delta: float = 1.0) -> F64:
    n = signal.shape[-1]
    # einsum, not BLAS: a multi-threaded BLAS call on a busy machine costs a hundred times more than this.
    return np.einsum("...j,ij->...i", signal, _savgol_matrix(n, min(window, n), poly, deriv, float(delta)))


def _smooth(signal: F64, window: int) -> F64:
    return np.round(_savgol(signal, window, 2), decimals=_DECIMALS)


def _derivative(signal: F64, dx: float, window: int, poly: int, deriv: int) -> F64:
    return np.round(_savgol(signal, window, poly, deriv, dx), decimals=_DECIMALS)


def _within(metric: F64, low: float, high: float) -> B:
    return np.all((metric > low) & (metric < high), axis=-1)


def comfort_checks(states: F64, time_s: F64) -> B:
    """The six comfort checks of every proposal.

    Args:
        states: ``(P, T, 11)`` simulated rear-axle states (T = 41 in PDMS).
        time_s: ``(T,)`` strictly increasing, equally spaced times, seconds (0, 0.1, ..., 4.0).

    Returns:
        ``(P, 6)`` bool, columns in ``COMFORT_CHECKS`` order; a proposal is comfortable iff all hold.

    Raises:
        ValueError: fewer than 6 states (the yaw-acceleration filter needs polyorder 3 < window), or times
            not strictly increasing.
    """
    n_t = states.shape[1]
    if n_t < 6 or len(time_s) != n_t:
        raise ValueError(
            f"comfort needs >= 6 states and one time per state, got {n_t} states, {len(time_s)} times"
        )
    dt = np.diff(time_s)
    if not np.all(dt > 0):
        raise ValueError("comfort: time_s must be strictly increasing")
    dx = float(dt.mean())
    ax, ay = states[..., ACCELERATION_X], states[..., ACCELERATION_Y]
    lon_accel = _smooth(ax, n_t)
    lat_accel = _smooth(ay, n_t)
    jerk = _derivative(_smooth(np.hypot(ax, ay), _ACCEL_PRESMOOTH_WINDOW), dx, n_t, 2, 1)
    lon_jerk = _derivative(_smooth(ax, _ACCEL_PRESMOOTH_WINDOW), dx, n_t, 2, 1)
    heading = phase_unwrap(states[..., HEADING])
    yaw_accel = _derivative(heading, dx, _YAW_WINDOW, 3, 2)
    yaw_rate = _derivative(heading, dx, _YAW_WINDOW, 2, 1)
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
