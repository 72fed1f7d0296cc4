"""Building blocks of NAVSIM's PDM score (v1.1 PDMS and v2.2 EPDMS), one job per module.

- ``state``: vehicle parameters, the 11-entry state array and the initial ego state.
- ``reference``: submitted local poses -> 41 reference states (nuPlan ``InterpolatedTrajectory`` sampling).
- ``tracker``: the batched LQR tracker (velocity/curvature profile fits and one-step LQR).
- ``bicycle``: the batched kinematic bicycle model.

The public entry point for the simulation is ``metrics.pdm_simulation``; see specs/navsim.md §2–§3.
"""
