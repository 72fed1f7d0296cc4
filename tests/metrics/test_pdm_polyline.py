"""locate_on_polylines equals shapely.line_locate_point (GEOS) bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from metrics.pdm_scoring.polyline import CHUNK_SEGMENTS, locate_on_polylines


def _geos(lines: list[np.ndarray], line: np.ndarray, points: np.ndarray) -> np.ndarray:
    geoms = np.array([shapely.linestrings(v) for v in lines], dtype=object)
    return shapely.line_locate_point(geoms[line], shapely.points(points))


def _ours(lines: list[np.ndarray], line: np.ndarray, points: np.ndarray) -> np.ndarray:
    starts = np.concatenate([[0], np.cumsum([len(v) for v in lines])])
    return locate_on_polylines(np.concatenate(lines), starts, line, points)


def test_hand_worked_l_shape() -> None:
    # (0,0) -> (10,0) -> (10,10): a point beside the second leg projects to 10 + its y.
    line = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0]])
    got = _ours([line], np.zeros(4, dtype=np.int64), np.array([[3.0, 1.0], [12.0, 4.0], [-5.0, 0.0], [10.0, 20.0]]))
    np.testing.assert_array_equal(got, [3.0, 14.0, 0.0, 20.0])


def test_first_of_equally_near_segments_wins() -> None:
    # A point equidistant from the two legs of a U: GEOS keeps the first segment.
    line = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 2.0], [0.0, 2.0]])
    got = _ours([line], np.zeros(1, dtype=np.int64), np.array([[5.0, 1.0]]))
    np.testing.assert_array_equal(got, _geos([line], np.zeros(1, dtype=np.int64), np.array([[5.0, 1.0]])))
    assert got[0] == 5.0


def test_rejects_short_lines_and_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="two vertices"):
        locate_on_polylines(np.zeros((1, 2)), [0, 1], [0], [[0.0, 0.0]])
    with pytest.raises(ValueError, match="line indices"):
        locate_on_polylines(np.zeros((2, 2)), [0, 2], [0, 0], [[0.0, 0.0]])


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), offset=st.sampled_from([0.0, 4.2e6]), scale=st.sampled_from([0.01, 1.0, 30.0]))
def test_equals_geos_on_random_lines(seed: int, offset: float, scale: float) -> None:
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(int(rng.integers(1, 4))):
        n = int(rng.integers(2, 3 * CHUNK_SEGMENTS + 5))
        v = np.cumsum(rng.normal(size=(n, 2)) * scale, axis=0) + offset
        if n > 2 and rng.random() < 0.3:
            v[1] = v[0]  # a zero-length segment
        lines.append(v)
    line = rng.integers(0, len(lines), 40)
    pts = np.stack([lines[k][rng.integers(0, len(lines[k]))] for k in line])
    pts = pts + rng.normal(size=pts.shape) * rng.choice([0.0, 0.5, 20.0], size=(len(pts), 1))
    np.testing.assert_array_equal(_ours(lines, line, pts), _geos(lines, line, pts))
