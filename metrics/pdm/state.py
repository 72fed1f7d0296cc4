"""Ego state arrays of NAVSIM's PDM simulation: vehicle parameters, state index and the initial ego state.

A state array has 11 entries (``StateIndex``), all for the **centre of the rear axle**: global pose
(x, y in metres, heading in radians, counter-clockwise), velocity and acceleration in the ego (body) frame
(m/s, m/s²), tire steering angle (rad) and rate (rad/s), yaw rate (rad/s) and yaw acceleration (rad/s²).
Spec: specs/navsim.md §2.2–§2.3 and §3.2; official: nuPlan ``EgoState`` / ``CarFootprint`` and NAVSIM
``pdm_array_representation.ego_state_to_state_array``.

nuPlan stores an ego pose as its box **centre** and derives the rear axle back from it
(``CarFootprint.rear_axle`` = centre translated by -``rear_axle_to_center``). Every rear-axle pose that passes
through an ``EgoState`` therefore comes back rounded by that round trip (about one ulp of the global
coordinate, ~1e-10 m at UTM magnitudes). ``nuplan_rear_axle_roundtrip`` reproduces it so that the arrays here
equal the official ones bit for bit.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]


class StateIndex(enum.IntEnum):
    """Columns of a state array (NAVSIM ``pdm_enums.StateIndex``); all at the rear-axle centre."""

    X = 0
    Y = 1
    HEADING = 2
    VELOCITY_X = 3
    VELOCITY_Y = 4
    ACCELERATION_X = 5
    ACCELERATION_Y = 6
    STEERING_ANGLE = 7
    STEERING_RATE = 8
    ANGULAR_VELOCITY = 9
    ANGULAR_ACCELERATION = 10


#: Number of entries of a state array.
STATE_SIZE = len(StateIndex)
#: Slice of (x, y, heading) in a state array.
SE2 = slice(StateIndex.X, StateIndex.HEADING + 1)


@dataclass(frozen=True)
class VehicleParameters:
    """Ego vehicle geometry (nuPlan ``VehicleParameters``); lengths in metres.

    ``length`` and ``rear_axle_to_center`` are derived exactly as nuPlan derives them
    (``front_length + rear_length`` and ``length / 2 - rear_length``), so they carry the same rounding.

    Attributes:
        width: full width.
        front_length: rear axle to front bumper.
        rear_length: rear axle to rear bumper.
        length: front_length + rear_length (derived).
        wheel_base: rear axle to front axle.
        rear_axle_to_center: rear axle to the box centre along the heading (derived).
        cog_position_from_rear_axle: rear axle to the centre of gravity.
        height: full height.
    """

    width: float
    front_length: float
    rear_length: float
    length: float = field(init=False)
    wheel_base: float = field(kw_only=True)
    rear_axle_to_center: float = field(init=False)
    cog_position_from_rear_axle: float = field(kw_only=True)
    height: float = field(kw_only=True)

    def __post_init__(self) -> None:
        for name in ("width", "front_length", "rear_length", "wheel_base", "cog_position_from_rear_axle", "height"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating) or not (
                np.isfinite(value) and value > 0
            ):
                raise ValueError(f"VehicleParameters.{name} must be a finite number > 0, got {value!r}")
            object.__setattr__(self, name, float(value))
        length = self.front_length + self.rear_length
        object.__setattr__(self, "length", length)
        object.__setattr__(self, "rear_axle_to_center", length / 2.0 - self.rear_length)

    @property
    def half_width(self) -> float:
        return self.width / 2.0

    @property
    def half_length(self) -> float:
        return self.length / 2.0


#: nuPlan ``get_pacifica_parameters()``, NAVSIM's ego everywhere (spec §2.2).
PACIFICA = VehicleParameters(
    width=1.1485 * 2.0,
    front_length=4.049,
    rear_length=1.127,
    wheel_base=3.089,
    cog_position_from_rear_axle=1.67,
    height=1.777,
)


def nuplan_rear_axle_roundtrip(poses: npt.ArrayLike, rear_axle_to_center: float) -> F64:
    """Rear-axle poses ``(..., 3)`` as nuPlan's ``EgoState.rear_axle`` reports them after
    ``EgoState.build_from_rear_axle``: shifted forward to the box centre, then back.

    Args:
        poses: rear-axle poses (x, y, heading), metres and radians, any frame.
        rear_axle_to_center: metres (``VehicleParameters.rear_axle_to_center``).

    Returns:
        The poses with x and y rounded as nuPlan rounds them; headings unchanged.
    """
    p = np.asarray(poses, dtype=np.float64)
    c, s = np.cos(p[..., 2]), np.sin(p[..., 2])
    # nuPlan computes the centre as pose + d*(cos, sin), then the rear axle as centre + (-d)*(cos, sin).
    back = -rear_axle_to_center
    x = (p[..., 0] + rear_axle_to_center * c) + back * c
    y = (p[..., 1] + rear_axle_to_center * s) + back * s
    return np.stack([x, y, p[..., 2]], axis=-1)


@dataclass(frozen=True, eq=False)  # array fields: element-wise == would be ambiguous
class EgoInitialState:
    """The real ego state at t = 0 that every NAVSIM proposal starts from (the metric cache's ``ego_state``).

    NAVSIM builds it with ``EgoState.build_from_rear_axle`` from the log: the rear-axle pose, the
    ``ego_dynamic_state`` velocity and acceleration (ego frame), tire steering angle 0, and the defaults
    angular velocity 0, angular acceleration 0, steering rate 0 (the log has none of these).

    Fields are either unbatched (``pose_global`` ``(3,)``, ``timestamp_us`` a scalar) or batched over ``P``
    proposals (``(P, 3)``, ``(P,)``), e.g. to simulate the proposals of many scenes in one call.

    Attributes:
        pose_global: rear-axle (x, y, heading) in the global (map) frame, metres and radians, as logged.
        velocity_xy: (vx, vy) of the rear axle in the ego frame, m/s.
        acceleration_xy: (ax, ay) of the rear axle in the ego frame, m/s².
        timestamp_us: time of the state, integer microseconds (>= 0, nuPlan ``TimePoint``).
        vehicle: ego vehicle parameters (Pacifica in NAVSIM).
    """

    pose_global: F64
    velocity_xy: F64
    acceleration_xy: F64
    timestamp_us: npt.NDArray[np.int64]
    vehicle: VehicleParameters = PACIFICA

    def __post_init__(self) -> None:
        pose = _finite("pose_global", self.pose_global, 3)
        batch = pose.shape[:-1]
        if len(batch) > 1:
            raise ValueError(f"EgoInitialState.pose_global: expected shape (3,) or (P, 3), got {pose.shape}")
        vel = _finite("velocity_xy", self.velocity_xy, 2)
        acc = _finite("acceleration_xy", self.acceleration_xy, 2)
        ts_raw = np.asarray(self.timestamp_us)
        if ts_raw.dtype.kind not in "iu" and not (
            ts_raw.dtype.kind == "f" and np.all(np.isfinite(ts_raw)) and np.all(ts_raw == np.round(ts_raw))
        ):
            raise ValueError(f"EgoInitialState.timestamp_us: expected integer microseconds, got {ts_raw.dtype}")
        ts = ts_raw.astype(np.int64)
        for name, arr, want in (("velocity_xy", vel, batch + (2,)), ("acceleration_xy", acc, batch + (2,)),
                                ("timestamp_us", ts, batch)):
            if arr.shape != want:
                raise ValueError(f"EgoInitialState.{name}: expected shape {want} to match pose_global "
                                 f"{pose.shape}, got {arr.shape}")
        if np.any(ts < 0):
            raise ValueError(f"EgoInitialState.timestamp_us must be >= 0, got {ts}")
        if not isinstance(self.vehicle, VehicleParameters):
            raise ValueError(f"EgoInitialState.vehicle must be VehicleParameters, got {type(self.vehicle)}")
        for name, arr in (("pose_global", pose), ("velocity_xy", vel), ("acceleration_xy", acc),
                          ("timestamp_us", ts)):
            arr = arr.copy()
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)

    @classmethod
    def from_ego_dynamic_state(
        cls,
        pose_global: npt.ArrayLike,
        ego_dynamic_state: npt.ArrayLike,
        timestamp_us: int | npt.ArrayLike,
        vehicle: VehicleParameters = PACIFICA,
    ) -> EgoInitialState:
        """The state exactly as NAVSIM's scenario builds it from a log frame.

        NAVSIM's ``EgoStatus`` stores velocity and acceleration as float32 (``ego_dynamic_state[:2]`` and
        ``[2:]``), so they are rounded to float32 here; the pose stays float64.

        Args:
            pose_global: rear-axle (x, y, yaw) ``(3,)`` or ``(P, 3)`` in the global frame.
            ego_dynamic_state: ``(4,)`` or ``(P, 4)``: vx, vy, ax, ay in the ego frame.
            timestamp_us: the frame's timestamp, microseconds.
            vehicle: ego vehicle parameters.
        """
        dyn = np.asarray(ego_dynamic_state, dtype=np.float64)
        if dyn.shape[-1:] != (4,):
            raise ValueError(f"ego_dynamic_state: expected shape (..., 4), got {dyn.shape}")
        dyn = dyn.astype(np.float32).astype(np.float64)
        return cls(np.asarray(pose_global, dtype=np.float64), dyn[..., :2], dyn[..., 2:],
                   np.asarray(timestamp_us), vehicle)

    @classmethod
    def stack(cls, states: Sequence[EgoInitialState]) -> EgoInitialState:
        """One batched state ``(P, ...)`` from unbatched ones (all with the same vehicle)."""
        if not states:
            raise ValueError("EgoInitialState.stack: need at least one state")
        if any(s.batch_shape != () for s in states):
            raise ValueError("EgoInitialState.stack: every state must be unbatched")
        vehicle = states[0].vehicle
        if any(s.vehicle != vehicle for s in states):
            raise ValueError("EgoInitialState.stack: all states must share one VehicleParameters")
        return cls(np.stack([s.pose_global for s in states]), np.stack([s.velocity_xy for s in states]),
                   np.stack([s.acceleration_xy for s in states]), np.stack([s.timestamp_us for s in states]),
                   vehicle)

    def __getitem__(self, index: int | slice | npt.ArrayLike) -> EgoInitialState:
        """Rows of a batched state: an int gives an unbatched state, a slice or index array a batch."""
        if self.batch_shape == ():
            raise ValueError("EgoInitialState: cannot index an unbatched state")
        return EgoInitialState(self.pose_global[index], self.velocity_xy[index], self.acceleration_xy[index],
                               self.timestamp_us[index], self.vehicle)

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """``()`` for one state, ``(P,)`` for a batch."""
        return self.pose_global.shape[:-1]

    def rear_axle_pose_global(self) -> F64:
        """The rear-axle pose ``(..., 3)`` as nuPlan's ``EgoState.rear_axle`` reports it (centre round trip)."""
        return nuplan_rear_axle_roundtrip(self.pose_global, self.vehicle.rear_axle_to_center)

    def state_array(self) -> F64:
        """The simulated state at t = 0, ``(..., 11)`` (NAVSIM ``ego_state_to_state_array``)."""
        out = np.zeros(self.batch_shape + (STATE_SIZE,), dtype=np.float64)
        out[..., SE2] = self.rear_axle_pose_global()
        out[..., StateIndex.VELOCITY_X:StateIndex.VELOCITY_Y + 1] = self.velocity_xy
        out[..., StateIndex.ACCELERATION_X:StateIndex.ACCELERATION_Y + 1] = self.acceleration_xy
        # Steering angle, steering rate, angular velocity and acceleration: 0 (see the class docstring).
        return out

    def broadcast_to(self, num: int) -> EgoInitialState:
        """This state for ``num`` proposals: an unbatched state is repeated; a batch must have ``num`` rows."""
        if self.batch_shape == (num,):
            return self
        if self.batch_shape != ():
            raise ValueError(f"EgoInitialState has batch shape {self.batch_shape}, expected () or ({num},)")
        return EgoInitialState(np.broadcast_to(self.pose_global, (num, 3)),
                               np.broadcast_to(self.velocity_xy, (num, 2)),
                               np.broadcast_to(self.acceleration_xy, (num, 2)),
                               np.broadcast_to(self.timestamp_us, (num,)), self.vehicle)


def _finite(name: str, value: npt.ArrayLike, last: int) -> F64:
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"EgoInitialState.{name}: expected numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if arr.ndim < 1 or arr.shape[-1] != last:
        raise ValueError(f"EgoInitialState.{name}: expected shape (..., {last}), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"EgoInitialState.{name}: values must be finite (found NaN or inf)")
    return arr
