"""Footprints and contact tests for the PDM scorer, vectorised and exact (specs/navsim.md §2.2, §4.1, §5.1).

Frames: everything here is in the global map frame (x, y in metres, headings in radians, counter-clockwise).
Ego states are rear-axle states in NAVSIM's ``StateIndex`` layout.

Floating-point contract: corner coordinates are computed with exactly the arithmetic of the official code
(``pdm_array_representation.state_array_to_coords_array`` for the ego, nuPlan's
``OrientedBox.all_corners`` for objects), so the polygons are the official polygons bit for bit. Contact is
decided by a separating-axis test (``obb_margin``) with a safety band: the caller hands pairs whose
separation or penetration is within ``CONTACT_TOLERANCE_M`` of zero (touching, or nearly so) to shapely's
``intersects`` on those exact polygons, so the answer always equals the official
``STRtree.query(..., predicate="intersects")``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import shapely

from metrics.pdm.state import PACIFICA, StateIndex

F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

# --- The ego: nuPlan's Pacifica, with VehicleParameters' own arithmetic (metrics.pdm.state).
EGO_HALF_LENGTH_M = PACIFICA.half_length
EGO_HALF_WIDTH_M = PACIFICA.half_width
#: Rear axle -> box centre along the heading (1.461 m).
EGO_REAR_AXLE_TO_CENTER_M = PACIFICA.rear_axle_to_center
#: Radius of the circle around the box centre that holds the whole ego footprint.
EGO_CIRCUMRADIUS_M = float(np.hypot(EGO_HALF_LENGTH_M, EGO_HALF_WIDTH_M))

# --- NAVSIM ``StateIndex`` (pdm_enums.py): all rear-axle, velocities/accelerations in the body frame.
X, Y, HEADING = StateIndex.X, StateIndex.Y, StateIndex.HEADING
VELOCITY_X, VELOCITY_Y = StateIndex.VELOCITY_X, StateIndex.VELOCITY_Y
ACCELERATION_X, ACCELERATION_Y = StateIndex.ACCELERATION_X, StateIndex.ACCELERATION_Y

# --- ``BBCoordsIndex``: corners in ring order, then the centre.
FRONT_LEFT, REAR_LEFT, REAR_RIGHT, FRONT_RIGHT, CENTER = range(5)

#: Contacts whose separating-axis margin is within this many metres of zero are decided by shapely. Corner
#: coordinates carry rounding errors of about 1e-9 m at UTM magnitudes (1e6 m), far below this band.
CONTACT_TOLERANCE_M = 1e-6

_HALF_PI = np.pi / 2.0


def ego_coords(states: F64) -> F64:
    """Ego footprint corners and centre for every state.

    Args:
        states: ``(..., 11)`` rear-axle states, global frame.

    Returns:
        ``(..., 5, 2)`` global x, y of FRONT_LEFT, REAR_LEFT, REAR_RIGHT, FRONT_RIGHT and CENTER (the box
        centre, 1.461 m ahead of the rear axle), metres.
    """
    heading = states[..., HEADING]
    cos, sin = np.cos(heading), np.sin(heading)
    cx = states[..., X] + EGO_REAR_AXLE_TO_CENTER_M * cos
    cy = states[..., Y] + EGO_REAR_AXLE_TO_CENTER_M * sin
    out = np.empty(states.shape[:-1] + (5, 2), dtype=np.float64)
    out[..., CENTER, 0], out[..., CENTER, 1] = cx, cy
    # The official translate_lon_and_lat: centre + (lat * cos(h + π/2) + lon * cos h, lat * sin(h + π/2) +
    # lon * sin h), its four trigonometric values computed once for all corners (cos(h + π/2) is evaluated as
    # officially, not replaced by -sin h).
    cos_lat, sin_lat = np.cos(heading + _HALF_PI), np.sin(heading + _HALF_PI)
    for idx, lon, lat in (
        (FRONT_LEFT, EGO_HALF_LENGTH_M, EGO_HALF_WIDTH_M),
        (FRONT_RIGHT, EGO_HALF_LENGTH_M, -EGO_HALF_WIDTH_M),
        (REAR_LEFT, -EGO_HALF_LENGTH_M, EGO_HALF_WIDTH_M),
        (REAR_RIGHT, -EGO_HALF_LENGTH_M, -EGO_HALF_WIDTH_M),
    ):
        out[..., idx, 0] = cx + ((lat * cos_lat) + (lon * cos))
        out[..., idx, 1] = cy + ((lat * sin_lat) + (lon * sin))
    return out


def box_corners(poses: F64, half_length_m: F64, half_width_m: F64) -> F64:
    """Corners of oriented boxes in nuPlan's order (FL, RL, RR, FR), nuPlan's ``OrientedBox`` arithmetic.

    Args:
        poses: ``(..., 3)`` box-centre x, y, heading, global frame.
        half_length_m, half_width_m: half sizes, broadcastable to ``poses[..., 0]``.

    Returns:
        ``(..., 4, 2)`` corner coordinates, metres.
    """
    cx, cy, h = poses[..., 0], poses[..., 1], poses[..., 2]
    hl = np.broadcast_to(half_length_m, cx.shape)
    hw = np.broadcast_to(half_width_m, cx.shape)
    out = np.empty(cx.shape + (4, 2), dtype=np.float64)
    cos, sin = np.cos(h), np.sin(h)
    cos_lat, sin_lat = np.cos(h + _HALF_PI), np.sin(h + _HALF_PI)
    for idx, sl, sw in ((0, 1.0, 1.0), (1, -1.0, 1.0), (2, -1.0, -1.0), (3, 1.0, -1.0)):
        # nuPlan passes the negated half sizes (-half_length), the same floats as sl * hl here.
        lon, lat = sl * hl, sw * hw
        out[..., idx, 0] = cx + ((lat * cos_lat) + (lon * cos))
        out[..., idx, 1] = cy + ((lat * sin_lat) + (lon * sin))
    return out


def polygons(corners: F64) -> npt.NDArray[np.object_]:
    """Shapely polygons from ``(..., 4, 2)`` corner rings (closed by repeating the first corner)."""
    return shapely.polygons(np.concatenate([corners, corners[..., :1, :]], axis=-2))


def obb_margin(
    d: F64, ego_cos: F64, ego_sin: F64, obj_cos: F64, obj_sin: F64, obj_half_length: F64, obj_half_width: F64
) -> F64:
    """Separating-axis margin between the ego footprint and an object box (> 0 overlap, < 0 apart).

    The smallest, over the four edge normals of the two boxes, of (sum of the projected half extents) minus
    (projected centre distance): the boxes are disjoint iff it is negative, touch where it is 0. Computed
    from centres and half sizes, so it differs from the margin of the official corner polygons only by
    rounding (about 1e-9 m at UTM magnitudes); callers send ``|margin| <= CONTACT_TOLERANCE_M`` to shapely.

    Args:
        d: ``(N, 2)`` object centre minus ego box centre, metres.
        ego_cos, ego_sin: ``(N,)`` ego heading.
        obj_cos, obj_sin: ``(N,)`` object heading.
        obj_half_length, obj_half_width: ``(N,)`` object half sizes, metres.

    Returns:
        ``(N,)`` margins, metres.
    """
    hl, hw = EGO_HALF_LENGTH_M, EGO_HALF_WIDTH_M
    c = np.abs(ego_cos * obj_cos + ego_sin * obj_sin)  # |cos| and |sin| of the relative heading
    s = np.abs(ego_cos * obj_sin - ego_sin * obj_cos)
    dx, dy = d[:, 0], d[:, 1]
    m = hl + obj_half_length * c + obj_half_width * s - np.abs(dx * ego_cos + dy * ego_sin)
    m = np.minimum(m, hw + obj_half_length * s + obj_half_width * c - np.abs(dy * ego_cos - dx * ego_sin))
    m = np.minimum(m, obj_half_length + hl * c + hw * s - np.abs(dx * obj_cos + dy * obj_sin))
    return np.minimum(m, obj_half_width + hl * s + hw * c - np.abs(dy * obj_cos - dx * obj_sin))


def relative_angle(
    x: F64, y: F64, heading: F64, px: F64, py: F64, critical_rad: tuple[float, ...] = ()
) -> F64:
    """Angle between a heading and the direction to a point, as nuPlan's ``get_agent_relative_angle``.

    nuPlan computes ``arccos(dot(ego_unit, v / norm(v)))`` with BLAS dot products on 2-vectors. For a point
    (almost) straight ahead or behind, rounding can push the cosine past ±1, and the official angle is then
    NaN: neither ahead nor behind. Whether that happens depends on BLAS's rounding (fused multiply-add or
    not), so those near-collinear cases are recomputed here with nuPlan's own scalar numpy calls, which
    gives the answer the official code gives with the same numpy. Elsewhere the vectorised value differs
    from nuPlan's by an ulp at most, which decides nothing unless an angle sits on a cone boundary, which
    is also recomputed (``critical_rad``).

    Args:
        x, y, heading: ``(N,)`` pose (the ego rear axle), global frame.
        px, py: ``(N,)`` the other point (an object polygon's centroid).
        critical_rad: angles the caller compares against (the 30° / 150° cones).

    Returns:
        ``(N,)`` radians in [0, π], or NaN as above (also where the point coincides with (x, y)).
    """
    dx, dy = px - x, py - y
    norm = np.sqrt(dx * dx + dy * dy)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos_angle = np.cos(heading) * (dx / norm) + np.sin(heading) * (dy / norm)
        angle = np.arccos(cos_angle)
    near = ~(1.0 - np.abs(cos_angle) > _COLLINEAR_TOL)  # also NaN
    for crit in critical_rad:
        near |= np.abs(angle - crit) < _COLLINEAR_TOL
    for i in np.flatnonzero(near):
        angle[i] = _nuplan_relative_angle(x[i], y[i], heading[i], px[i], py[i])
    return angle


#: Cosines this close to ±1 (and angles this close to a cone boundary) take nuPlan's scalar path.
_COLLINEAR_TOL = 1e-9


def _nuplan_relative_angle(x: float, y: float, heading: float, px: float, py: float) -> float:
    agent_vector = np.array([px - x, py - y])
    ego_vector = np.array([np.cos(heading), np.sin(heading)])
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.arccos(np.dot(ego_vector, agent_vector / np.linalg.norm(agent_vector))))
