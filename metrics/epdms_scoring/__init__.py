"""Parts of the EPDMS v2.2 scorer (``metrics.epdms``) that v1.1 does not have (specs/navsim.md §6).

- ``comfort``: history comfort (v2 signals and windows) and two-frame extended comfort.
- ``history``: the human history states HC prepends (nuPlan ``InterpolatedTrajectory`` sampling).
- ``map_metrics``: traffic-light compliance, driving direction v2 (intersections excluded), lane keeping.
"""
