"""Geometry of the reactive IDM step (:mod:`metrics.traffic_idm`): oriented boxes of vehicles and their
covering discs (the conservative prefilter bounds), footprints, and nuPlan's nearest-entry tie-break.

Frames: everything in the global map frame; poses are box-centre (x, y, heading) in m, m, rad.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

_CORNERS = np.array([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]])
#: Discs along a footprint's path part in the prefilter (more: tighter discs, more of them).
_PATH_SAMPLES = 12
#: where the middle disc of a path part lies, as a fraction of the part's length
_MID_K = float(np.linspace(0.0, 1.0, _PATH_SAMPLES)[_PATH_SAMPLES // 2])


def _box_discs(pose: F64, length: F64, width: F64) -> F64:
    """``(n, 3, 3)`` discs covering boxes: centres at -L/3, 0, L/3 along the heading, radius hypot(L/6, W/2)."""
    off = np.array([-1.0, 0.0, 1.0])[None, :] * (length / 3)[:, None]
    c, s = np.cos(pose[:, 2])[:, None], np.sin(pose[:, 2])[:, None]
    rad = np.hypot(length / 6, width / 2) + 1e-6
    return np.stack([pose[:, 0, None] + c * off, pose[:, 1, None] + s * off, np.repeat(rad[:, None], 3, 1)], -1)


def _ragged(lo: I64, hi: I64) -> tuple[I64, I64]:
    """``(owner, value)`` of the concatenated ranges ``[lo_i, hi_i)``."""
    n = np.maximum(hi - lo, 0)
    owner = np.repeat(np.arange(len(lo)), n)
    start = np.concatenate([[0], np.cumsum(n)[:-1]])
    return owner, np.arange(int(n.sum())) - np.repeat(start - lo, n)


def _discs_distance(a: F64, b: F64) -> F64:
    """``(n,)`` lower bounds of the distance between what discs ``a`` and ``b`` (``(n, k, 3)``) cover: the
    nearest centres' distance less the largest radius of each side (a footprint part's discs share one
    radius, so this is the nearest discs' gap)."""
    dx = a[:, :, None, 0] - b[:, None, :, 0]
    dy = a[:, :, None, 1] - b[:, None, :, 1]
    d2 = (dx * dx + dy * dy).reshape(len(a), -1).min(axis=1)
    return np.maximum(np.sqrt(d2) - a[:, :, 2].max(axis=1) - b[:, :, 2].max(axis=1), 0.0) - 1e-9


def _boxes(pose: F64, length: F64, width: F64) -> npt.NDArray[np.object_]:
    """:func:`_box` of ``n`` poses at once (the same arithmetic, element by element)."""
    c, s = np.cos(pose[:, 2])[:, None], np.sin(pose[:, 2])[:, None]
    lx, ly = _CORNERS[None, :, 0] * (length / 2)[:, None], _CORNERS[None, :, 1] * (width / 2)[:, None]
    return shapely.polygons(np.stack([pose[:, 0, None] + c * lx - s * ly, pose[:, 1, None] + s * lx + c * ly], -1))


@dataclass(frozen=True)
class _Footprints:
    """The agents' occupancy footprints before a step (path part ``se``, box ``pose``, heading in ``cur_pose``)
    and the geometries built from them so far (``geom (n, 2)``: path part or None, box; where ``built``);
    ``mid (n, 2)``: the progress of each part's middle disc centre on the agent's path (NaN: unknown)."""

    se: F64
    pose: F64
    cur_pose: F64
    discs: F64
    geom: npt.NDArray[np.object_]
    built: B
    mid: F64


def _nearest_as_nuplan(own: tuple[shapely.Geometry | None, ...],
                       entries: dict[int, tuple[shapely.Geometry | None, ...]]) -> int:
    """``STRTreeOccupancyMap.get_nearest_entry_to`` among equally near entries: shapely's ``STRtree.nearest``
    returns one of them in its traversal order, so it is asked the same question: a tree over the intersecting
    entries (each the union of its parts, in the occupancy map's order: agents by index, the ego last) and the
    agent's own footprint. Returns the chosen owner (-1: the ego)."""
    owners = sorted(entries, key=lambda b: (b == -1, b))
    geoms = [shapely.union_all([g for g in entries[b] if g is not None]) for b in owners]
    mine = shapely.union_all([g for g in own if g is not None])
    return owners[int(shapely.STRtree(geoms).nearest(mine))]


def _same_sim_pairs(row_sim: I64, item_sim: I64) -> tuple[I64, I64]:
    """All ``(row, item)`` index pairs of rows and items of the same simulation (items sorted by simulation)."""
    bounds = np.searchsorted(item_sim, np.arange(int(max(row_sim.max(initial=-1), item_sim.max(initial=-1))) + 2))
    return _ragged(bounds[row_sim], bounds[row_sim + 1])
