"""Polyline helpers for the world generator: reference lines, offsets, resampling, connector curves.

All coordinates are metres in one planar frame; headings are radians, counter-clockwise from +x. Polylines
are ``(N, 2)`` float64 arrays. Headings returned by these helpers are *unwrapped* (continuous), so they can
be interpolated linearly along arc length.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import shapely

from harness.geometry import polyline_arc_length

F64 = npt.NDArray[np.float64]

#: Spacing of every baseline path and boundary the world writes (nuPlan's discrete paths are ~0.5-1 m).
SAMPLE_STEP_M = 0.5

#: A straight piece ``("line", length_m)`` or a circular arc ``("arc", radius_m, signed_angle_rad)``
#: (positive angle = left turn) of a reference line.
Segment = tuple[str, float] | tuple[str, float, float]


def reference_line(
    start_xy: npt.ArrayLike,
    start_heading_rad: float,
    segments: Sequence[Segment],
    step_m: float = SAMPLE_STEP_M,
) -> tuple[F64, F64]:
    """Sample a reference line made of straight pieces and circular arcs, analytically.

    Args:
        start_xy: ``(2,)`` start point.
        start_heading_rad: heading at the start.
        segments: pieces in driving order (see :data:`Segment`).
        step_m: maximum spacing of the samples along the line.

    Returns:
        ``(points (N, 2), headings (N,))``; headings are unwrapped and exact (not finite differences).
    """
    pts = [np.asarray(start_xy, dtype=np.float64).reshape(1, 2)]
    hdg = [np.array([float(start_heading_rad)])]
    x, y, h = float(pts[0][0, 0]), float(pts[0][0, 1]), float(start_heading_rad)
    for seg in segments:
        if seg[0] == "line":
            length = float(seg[1])
            n = max(1, int(np.ceil(length / step_m)))
            d = np.linspace(0.0, length, n + 1)[1:]
            px, py = x + d * np.cos(h), y + d * np.sin(h)
            ph = np.full(n, h)
        elif seg[0] == "arc":
            radius, angle = float(seg[1]), float(seg[2])  # type: ignore[misc]
            n = max(2, int(np.ceil(radius * abs(angle) / step_m)))
            turn = np.sign(angle)
            # Centre of the turning circle lies to the left of the heading for a left turn.
            cx, cy = x - turn * radius * np.sin(h), y + turn * radius * np.cos(h)
            ph = h + np.linspace(0.0, angle, n + 1)[1:]
            px, py = cx + turn * radius * np.sin(ph), cy - turn * radius * np.cos(ph)
        else:
            raise ValueError(f"reference_line: unknown segment kind {seg[0]!r}")
        pts.append(np.stack([px, py], axis=1))
        hdg.append(ph)
        x, y, h = float(px[-1]), float(py[-1]), float(ph[-1])
    return np.concatenate(pts), np.concatenate(hdg)


def left_normals(headings_rad: npt.ArrayLike) -> F64:
    """Unit normals ``(N, 2)`` pointing to the left of each heading."""
    h = np.asarray(headings_rad, dtype=np.float64)
    return np.stack([-np.sin(h), np.cos(h)], axis=1)


def offset_line(points: npt.ArrayLike, headings_rad: npt.ArrayLike, offset_m: float) -> F64:
    """Points shifted by ``offset_m`` to the left (negative = right) of their headings."""
    return np.asarray(points, dtype=np.float64) + offset_m * left_normals(headings_rad)


def resample(points: npt.ArrayLike, step_m: float = SAMPLE_STEP_M) -> F64:
    """Resample a polyline at uniform arc-length spacing of at most ``step_m``, keeping both ends exactly."""
    p = np.asarray(points, dtype=np.float64)
    s = polyline_arc_length(p)
    n = max(1, int(np.ceil(s[-1] / step_m - 1e-9)))
    q = np.linspace(0.0, s[-1], n + 1)
    out = np.stack([np.interp(q, s, p[:, 0]), np.interp(q, s, p[:, 1])], axis=1)
    out[0], out[-1] = p[0], p[-1]
    return out


def vertex_headings(points: npt.ArrayLike) -> F64:
    """Unwrapped heading ``(N,)`` at each vertex: the mean direction of its two adjacent segments."""
    p = np.asarray(points, dtype=np.float64)
    d = np.diff(p, axis=0)
    seg = np.unwrap(np.arctan2(d[:, 1], d[:, 0]))
    mid = 0.5 * (seg[:-1] + seg[1:])
    return np.concatenate([seg[:1], mid, seg[-1:]])


def curvature(points: npt.ArrayLike, smooth_m: float = 2.0) -> F64:
    """Signed curvature ``(N,)`` (1/m, positive = turning left), smoothed over about ``smooth_m``."""
    p = np.asarray(points, dtype=np.float64)
    s = polyline_arc_length(p)
    h = vertex_headings(p)
    k = np.gradient(h, s) if len(s) > 2 else np.zeros(len(s))
    step = max(float(s[-1]) / max(len(s) - 1, 1), 1e-6)
    w = max(1, int(round(smooth_m / step)))
    if w > 1 and len(k) > w:
        kernel = np.ones(w) / w
        k = np.convolve(np.pad(k, (w // 2, w - 1 - w // 2), mode="edge"), kernel, mode="valid")
    return k


def bezier_connector(
    p0: npt.ArrayLike, h0: float, p3: npt.ArrayLike, h3: float, step_m: float = SAMPLE_STEP_M
) -> F64:
    """A smooth cubic Bezier from pose ``(p0, h0)`` to pose ``(p3, h3)``, resampled at ``step_m``.

    For turns the control arms are 0.5523 times the distances to the corner where the two tangents meet,
    which makes a quarter turn with equal arms a near-circular arc; for (near-)straight moves a third of
    the chord is used.
    """
    a, b = np.asarray(p0, dtype=np.float64), np.asarray(p3, dtype=np.float64)
    u0, u3 = np.array([np.cos(h0), np.sin(h0)]), np.array([np.cos(h3), np.sin(h3)])
    chord = float(np.linalg.norm(b - a))
    cross = u0[0] * u3[1] - u0[1] * u3[0]
    k0 = k3 = chord / 3.0
    if abs(cross) > 0.2:
        # Corner: a + t0 * u0 = b - t3 * u3.
        t0, t3 = np.linalg.solve(np.stack([u0, u3], axis=1), b - a)
        if t0 > 0 and t3 > 0:
            k0, k3 = 0.5523 * t0, 0.5523 * t3
    t = np.linspace(0.0, 1.0, 400)[:, None]
    c1, c2 = a + k0 * u0, b - k3 * u3
    curve = (1 - t) ** 3 * a + 3 * (1 - t) ** 2 * t * c1 + 3 * (1 - t) * t**2 * c2 + t**3 * b
    return resample(curve, step_m)


def swept_polygon(points: npt.ArrayLike, half_width_m: float) -> shapely.Polygon:
    """The polygon swept by a segment of width ``2 * half_width_m`` held across a polyline."""
    p = np.asarray(points, dtype=np.float64)
    h = vertex_headings(p)
    return strip_polygon(offset_line(p, h, half_width_m), offset_line(p, h, -half_width_m))


def strip_polygon(left: npt.ArrayLike, right: npt.ArrayLike) -> shapely.Polygon:
    """Polygon between a left and a right line that run in the same direction."""
    ring = np.concatenate([np.asarray(left, dtype=np.float64), np.asarray(right, dtype=np.float64)[::-1]])
    poly = shapely.Polygon(ring)
    if not poly.is_valid:
        poly = largest_polygon(shapely.make_valid(poly))
    return poly


def largest_polygon(geom: shapely.Geometry) -> shapely.Polygon:
    """The largest polygon part of any geometry (an empty polygon if there is none)."""
    if isinstance(geom, shapely.Polygon):
        return geom
    parts = [g for g in getattr(geom, "geoms", []) if isinstance(g, shapely.Polygon)]
    parts += [
        p
        for g in getattr(geom, "geoms", [])
        for p in getattr(g, "geoms", [])
        if isinstance(p, shapely.Polygon)
    ]
    return max(parts, key=lambda g: g.area) if parts else shapely.Polygon()


def oriented_rectangle(
    center_xy: npt.ArrayLike, heading_rad: float, length_m: float, width_m: float
) -> shapely.Polygon:
    """A rectangle ``length_m`` long along ``heading_rad`` and ``width_m`` wide, centred on ``center_xy``."""
    c = np.asarray(center_xy, dtype=np.float64)
    u = np.array([np.cos(heading_rad), np.sin(heading_rad)])
    n = np.array([-u[1], u[0]])
    hl, hw = length_m / 2.0, width_m / 2.0
    return shapely.Polygon(
        [c + hl * u + hw * n, c - hl * u + hw * n, c - hl * u - hw * n, c + hl * u - hw * n]
    )
