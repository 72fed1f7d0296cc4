"""The reactive IDM's numpy decisions checked against GEOS: the intersects test of a footprint part with an
agent's flat-capped path-to-go buffer (``metrics.traffic_idm_hits.clear_hits``: a hit or a miss it decides must
be GEOS's answer) and the vectorised nuPlan starting segment (``metrics.traffic_rails.starting_segments``)
against a one-vehicle-at-a-time reference."""

from __future__ import annotations

import numpy as np
import shapely

from metrics.traffic_idm_geometry import _MID_K, _PATH_SAMPLES, _box_discs, _boxes
from metrics.traffic_idm_hits import clear_hits
from metrics.traffic_rails import LaneRails, Paths, starting_segments


def _curved(n: int, x0: float, y0: float, bend: float, step: float = 0.5) -> np.ndarray:
    s = np.arange(n) * step
    return np.stack([x0 + s, y0 + bend * (s / 40.0) ** 2 * 10.0], -1)


def _path_discs(paths: Paths, b: np.ndarray, s: np.ndarray, e: np.ndarray, half_w: np.ndarray) -> np.ndarray:
    k = np.linspace(0.0, 1.0, _PATH_SAMPLES)
    prog = s[:, None] + (e - s)[:, None] * k[None, :]
    pts = paths.poses(np.repeat(b, _PATH_SAMPLES), prog.ravel()).reshape(len(b), _PATH_SAMPLES, 3)
    rad = half_w + (e - s) / (_PATH_SAMPLES - 1) / 2 + 1e-6
    return np.concatenate([pts[..., :2], np.repeat(rad[:, None, None], _PATH_SAMPLES, axis=1)], -1)


def test_clear_hits_decisions_are_geos_intersects():
    rng = np.random.default_rng(5)
    lanes = [_curved(300, 0.0, 0.0, 0.0), _curved(300, 0.0, 3.5, 0.6), _curved(200, 40.0, -30.0, -2.0)]
    n_ag = 60
    lane_of = rng.integers(0, len(lanes), n_ag)
    paths = Paths([lanes[i] for i in lane_of])
    half_w = rng.uniform(0.8, 1.1, n_ag)
    pcs = rng.uniform(paths.start, paths.end - 5.0)
    # each agent meets 6 parts: path parts and boxes of other agents (on its lane or not) and boxes anywhere near
    of = np.repeat(np.arange(n_ag), 6)
    b = rng.integers(0, n_ag, len(of))
    s = rng.uniform(paths.start[b], paths.end[b] - 25.0)
    ahead = rng.random(len(of)) < 0.4  # a part on the agent's own lane, somewhere ahead of (or just behind) it
    b[ahead] = of[ahead]
    s[ahead] = np.minimum(pcs[of[ahead]] + rng.uniform(-6.0, 40.0, int(ahead.sum())), paths.end[of[ahead]] - 25.0)
    e = s + rng.uniform(4.0, 22.0, len(of))
    is_box = rng.random(len(of)) < 0.5
    pose = paths.poses(b, s + 2.0)
    jitter = is_box & (rng.random(len(of)) < 0.5)
    pose[jitter, :2] += rng.normal(0.0, 2.5, (int(jitter.sum()), 2))
    pose[jitter, 2] += rng.normal(0.0, 0.5, int(jitter.sum()))
    length, width = np.full(len(of), 4.6), 2 * half_w[b]
    ag = np.arange(n_ag)
    heads = (paths.to_go_chunks(ag, pcs)[0], paths._bisect(ag, pcs, right=True))
    same = paths.base[b] == paths.base[of]
    bi, pi = np.flatnonzero(is_box), np.flatnonzero(~is_box)
    box_mid = np.where(same & ~jitter, paths.clamp(b, s + 2.0), np.nan)[bi]
    decided = np.full(len(of), -2, dtype=np.int8)
    decided[bi] = clear_hits(paths, half_w, heads, of[bi], _box_discs(pose[bi], length[bi], width[bi]), ag, pcs,
                             box_mid)
    path_mid = np.where(same, s + (e - s) * _MID_K, np.nan)[pi]
    decided[pi] = clear_hits(paths, half_w, heads, of[pi], _path_discs(paths, b[pi], s[pi], e[pi], half_w[b[pi]]),
                             ag, pcs, path_mid)
    # GEOS: the part (a box, or the trimmed path buffered by half its owner's width) against the to-go buffer
    parts = np.empty(len(of), dtype=object)
    parts[bi] = _boxes(pose[bi], length[bi], width[bi])
    parts[pi] = shapely.buffer(paths.trimmed_lines(b[pi], s[pi], e[pi]), half_w[b[pi]], cap_style="flat")
    to_go = shapely.buffer(paths.to_go_lines(ag, pcs), half_w, cap_style="flat")
    truth = shapely.intersects(to_go[of], parts)
    assert (decided >= -1).all()
    assert truth[decided == 1].all()
    assert not truth[decided == 0].any()
    # the numpy test decides most parts, hits and misses (same-lane parts through the segments around them)
    assert (decided == 1).sum() > 50 and (decided == 0).sum() > 50 and (decided == -1).mean() < 0.2


def _reference_starting_segment(rails: LaneRails, pose: np.ndarray, est_m: float) -> tuple[int, float]:
    """nuPlan ``get_starting_segment`` for one box centre: candidate by candidate, scalar shapely calls."""
    pt = shapely.Point(pose[:2])
    inside = [r for r in range(len(rails.ids)) if shapely.contains(rails.polygons[r], pt)]
    lanes = [r for r in inside if not rails.is_connector[r]]
    in_inter = any(shapely.contains(g, pt) for g in rails.intersections)
    cand = lanes if lanes else ([r for r in inside if rails.is_connector[r]] if in_inter else [])
    best, best_diff, best_arc = -1, np.inf, np.nan
    for r in cand:
        line = shapely.LineString(rails.baselines[r])
        arc = float(shapely.line_locate_point(line, pt))
        p1 = shapely.get_coordinates(shapely.line_interpolate_point(line, arc))[0]
        p2 = shapely.get_coordinates(shapely.line_interpolate_point(line, arc + est_m))[0]
        if np.array_equal(p1, p2):
            p2 = shapely.get_coordinates(shapely.line_interpolate_point(line, arc - est_m))[0]
            heading = np.arctan2(p1[1] - p2[1], p1[0] - p2[0])
        else:
            heading = np.arctan2(p2[1] - p1[1], p2[0] - p1[0])
        diff = abs(heading - pose[2])
        if diff < best_diff:
            best, best_diff, best_arc = r, diff, arc
    return best, best_arc


def test_starting_segments_equal_the_one_vehicle_reference():
    east = _curved(200, 0.0, 0.0, 0.0)
    west = east[::-1].copy()
    north = np.stack([np.full(120, 30.0), np.arange(120) * 0.5 - 30.0], -1)
    turn = np.stack([20.0 + 10.0 * np.sin(np.linspace(0, np.pi / 2, 30)), 10.0 - 10.0 * np.cos(np.linspace(0, np.pi / 2, 30))], -1)
    rails = LaneRails(
        ids=np.array([1, 2, 3, 10], dtype=np.int64),
        is_connector=np.array([False, False, False, True]),
        polygons=np.array([shapely.box(0, -2, 99.5, 2), shapely.box(0, -2, 99.5, 2), shapely.box(28, -30, 32, 29.5),
                           shapely.buffer(shapely.LineString(turn), 2.0)], dtype=object),
        baselines=(east, west, north, turn),
        speed_limit_mps=np.array([10.0, 10.0, np.nan, 5.0]),
        intersections=np.array([shapely.box(18, -5, 35, 12)], dtype=object),
    )
    rng = np.random.default_rng(2)
    poses = np.stack([rng.uniform(-5, 105, 400), rng.uniform(-35, 35, 400), rng.uniform(-np.pi, np.pi, 400)], -1)
    poses[200:, 1] = rng.uniform(-3.0, 3.0, 200)  # half of them on or near the two-way road
    poses[:8, :2] = [[0.0, 0.0], [99.5, 0.0], [30.0, -30.0], [30.0, 29.5], [0.0, 2.0], [50.0, -2.0], [25.0, 5.0],
                     [28.0, 0.0]]  # ends, edges and corners
    rail, progress, snapped = starting_segments(rails, poses, 0.5)
    for i in range(len(poses)):
        r, arc = _reference_starting_segment(rails, poses[i], 0.5)
        assert rail[i] == r
        if r >= 0:
            assert progress[i] == arc
            assert np.isfinite(snapped[i]).all()
    assert (rail >= 0).sum() > 100 and (rail == 3).any() and (rail == 1).any() and (rail == 0).any()
