"""Stand-ins for the two classes a NAVSIM submission pickle refers to, and conversion to lead-bench types.

The leaderboard unpickles a submission with NAVSIM's own classes, so the file must name

- ``navsim.common.dataclasses.Trajectory``: a plain ``@dataclass`` whose instance ``__dict__`` is
  ``{"poses": ndarray (N, 3), "trajectory_sampling": TrajectorySampling}`` (poses annotated float32; the
  learned agents and the constant-velocity agent produce float32, the privileged human agent float64);
- ``nuplan.planning.simulation.trajectory.trajectory_sampling.TrajectorySampling``: a plain, non-frozen
  ``@dataclass`` with ``num_poses: int``, ``time_horizon: float``, ``interval_length: float``, whose
  ``__post_init__`` completes the missing one; NAVSIM's default
  ``TrajectorySampling(time_horizon=4, interval_length=0.5)`` holds ``{num_poses: 8, time_horizon: 4.0,
  interval_length: 0.5}``.

Neither project is installed here (nor should be: DESIGN.md), so lead-bench pickles these stand-ins, whose
``__dict__`` holds the same keys in the same order with the same value types, under the real module paths
(:data:`GLOBAL_NAMES`), and reads the real paths back into the stand-ins (:data:`SUBSTITUTES`). Unpickling
restores ``__dict__`` without calling ``__init__`` on either side, so what a NAVSIM environment loads equals
what its own ``run_create_submission_pickle.py`` writes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from harness.errors import DataError
from harness.trajectory import NAVSIM_SAMPLING, Trajectory, TrajectorySampling

NAVSIM_TRAJECTORY_PATH = ("navsim.common.dataclasses", "Trajectory")
NUPLAN_SAMPLING_PATH = ("nuplan.planning.simulation.trajectory.trajectory_sampling", "TrajectorySampling")

#: NAVSIM's agents emit float32 poses (torch outputs, ``ConstantVelocityAgent``); ``Trajectory`` says so.
POSES_DTYPE = np.float32

_INTERVAL_TOL_S = 1e-9


@dataclass(frozen=True, eq=False)
class NuplanTrajectorySampling:
    """Pickle-layout mirror of nuPlan's ``TrajectorySampling`` (fields in nuPlan's order).

    Build it with :func:`nuplan_sampling`, which completes ``time_horizon`` as nuPlan's ``__post_init__``
    does; unpickling fills ``__dict__`` directly, so a read instance may hold anything until checked.
    """

    num_poses: int
    time_horizon: float
    interval_length: float


@dataclass(frozen=True, eq=False)
class NavsimTrajectory:
    """Pickle-layout mirror of ``navsim.common.dataclasses.Trajectory``: poses ``(N, 3)`` (x m, y m, heading
    rad) in the rear-axle frame at t = 0, and their sampling."""

    poses: npt.NDArray[np.floating]
    trajectory_sampling: NuplanTrajectorySampling


#: Stand-in class -> the (module, name) it is pickled as.
GLOBAL_NAMES: dict[type, tuple[str, str]] = {
    NavsimTrajectory: NAVSIM_TRAJECTORY_PATH,
    NuplanTrajectorySampling: NUPLAN_SAMPLING_PATH,
}
#: (module, name) in a submission -> the stand-in class it is read into.
SUBSTITUTES: dict[tuple[str, str], type] = {path: cls for cls, path in GLOBAL_NAMES.items()}


def nuplan_sampling(sampling: TrajectorySampling) -> NuplanTrajectorySampling:
    """The nuPlan sampling for a lead-bench one, with the field types nuPlan's ``__post_init__`` leaves.

    nuPlan stores ``num_poses`` as int and both times as float; for NAVSIM's default (8 poses at 0.5 s) all
    of its constructors give ``time_horizon = 8 * 0.5 = 4.0`` exactly.
    """
    interval = float(sampling.interval_s)
    return NuplanTrajectorySampling(int(sampling.num_poses), float(sampling.num_poses * interval), interval)


def to_navsim(poses_f32: npt.NDArray[np.float32], sampling: NuplanTrajectorySampling) -> NavsimTrajectory:
    """Wrap already checked float32 poses ``(N, 3)``; callers share one ``sampling`` as NAVSIM agents do."""
    return NavsimTrajectory(np.ascontiguousarray(poses_f32, dtype=POSES_DTYPE), sampling)


def is_navsim_sampling(sampling: TrajectorySampling) -> bool:
    """Whether ``sampling`` is NAVSIM's submission sampling (8 poses every 0.5 s)."""
    return (sampling.num_poses == NAVSIM_SAMPLING.num_poses
            and abs(sampling.interval_s - NAVSIM_SAMPLING.interval_s) <= _INTERVAL_TOL_S)


def from_navsim(obj: Any, *, token: str, where: str, path: str | Path) -> Trajectory:
    """A lead-bench :class:`~harness.trajectory.Trajectory` from an unpickled NAVSIM trajectory.

    Any sampling that is consistent with the poses is accepted (the scorer interpolates whatever it gets).

    Args:
        obj: what the file holds for ``token``.
        token: the scene token, for errors.
        where: which list and seed, e.g. ``"predictions[0]"``, for errors.
        path: the file, for errors.

    Raises:
        DataError: not a NAVSIM ``Trajectory``, missing fields, wrong shape or dtype, non-finite values,
            or an inconsistent ``TrajectorySampling``; the message names the token.
    """

    def fail(problem: str) -> DataError:
        return DataError(f"{where}: {problem}", path=path, token=token)

    if not isinstance(obj, NavsimTrajectory):
        raise fail(f"expected a navsim.common.dataclasses.Trajectory, got {_type_name(obj)}")
    state = vars(obj)
    missing = [k for k in ("poses", "trajectory_sampling") if k not in state]
    if missing:
        raise fail(f"Trajectory has no {', '.join(missing)}")
    sampling = _read_sampling(state["trajectory_sampling"], fail)
    poses = state["poses"]
    if not isinstance(poses, np.ndarray):
        raise fail(f"Trajectory.poses must be a numpy array, got {_type_name(poses)}")
    if poses.dtype.kind not in "fiu":
        raise fail(f"Trajectory.poses must hold real numbers, got dtype {poses.dtype}")
    if poses.ndim != 2 or poses.shape[1] != 3:
        raise fail(f"Trajectory.poses must have shape (N, 3) = (x, y, heading), got {poses.shape}")
    if poses.shape[0] != sampling.num_poses:
        raise fail(f"Trajectory.poses has {poses.shape[0]} poses but its sampling says {sampling.num_poses}")
    poses64 = poses.astype(np.float64)
    if not np.all(np.isfinite(poses64)):
        row, col = np.argwhere(~np.isfinite(poses64))[0]
        raise fail(f"Trajectory.poses[{row}, {col}] ({('x', 'y', 'heading')[col]}) is {poses64[row, col]}")
    return Trajectory(poses64, sampling)


def _read_sampling(obj: Any, fail: Any) -> TrajectorySampling:
    if not isinstance(obj, NuplanTrajectorySampling):
        raise fail("Trajectory.trajectory_sampling must be a nuPlan TrajectorySampling, "
                   f"got {_type_name(obj)}")
    state = vars(obj)
    num_poses = state.get("num_poses")
    horizon = state.get("time_horizon")
    interval = state.get("interval_length")
    if not isinstance(num_poses, int | np.integer) or isinstance(num_poses, bool) or num_poses < 1:
        raise fail(f"TrajectorySampling.num_poses must be a positive int, got {num_poses!r}")
    times = []
    for name, value in (("time_horizon", horizon), ("interval_length", interval)):
        if (not isinstance(value, float | int | np.floating | np.integer) or isinstance(value, bool)
                or not math.isfinite(value) or value <= 0):
            raise fail(f"TrajectorySampling.{name} must be a finite positive number, got {value!r}")
        times.append(float(value))
    horizon_s, interval_s = times
    # nuPlan's __post_init__ guarantees this for objects it built; a hand-made file may not.
    if not math.isclose(int(num_poses) * interval_s, horizon_s, rel_tol=1e-9, abs_tol=1e-9):
        raise fail(f"TrajectorySampling is inconsistent: {num_poses} poses x {interval} s != {horizon} s")
    return TrajectorySampling(int(num_poses), interval_s)


def _type_name(obj: Any) -> str:
    cls = type(obj)
    if cls in GLOBAL_NAMES:  # name a stand-in by the class it stands for, as the file does
        return ".".join(GLOBAL_NAMES[cls])
    return f"{cls.__module__}.{cls.__qualname__}" if cls.__module__ != "builtins" else cls.__qualname__
