"""Displacement errors between planned and logged trajectories (pure functions, vectorised)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class DisplacementErrors:
    """Per-sample average and final displacement errors in metres, ``(B,)`` each."""

    ade_m: npt.NDArray[np.float64]
    fde_m: npt.NDArray[np.float64]


def displacement_errors(pred_xy: npt.ArrayLike, gt_xy: npt.ArrayLike) -> DisplacementErrors:
    """ADE (mean L2 over poses) and FDE (L2 at the last pose) for ``(B, T, 2)`` positions in metres.

    Raises:
        ValueError: on shape mismatch or non-finite input.
    """
    p = np.asarray(pred_xy, dtype=np.float64)
    g = np.asarray(gt_xy, dtype=np.float64)
    if p.shape != g.shape or p.ndim != 3 or p.shape[-1] != 2 or p.shape[1] < 1:
        raise ValueError(f"displacement_errors needs equal (B, T>=1, 2) arrays, got {p.shape} and {g.shape}")
    if not (np.all(np.isfinite(p)) and np.all(np.isfinite(g))):
        raise ValueError("displacement_errors: positions must be finite")
    d = np.linalg.norm(p - g, axis=-1)
    return DisplacementErrors(ade_m=d.mean(axis=1), fde_m=d[:, -1])
