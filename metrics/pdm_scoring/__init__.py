"""Parts of the PDMS v1.1 scorer (``metrics.pdms``), one job per module (specs/navsim.md §4.3, §5).

- ``geometry``: vehicle footprint, object boxes, exact vectorised box-box contact, relative angles.
- ``ego_areas``: per-state map flags (multiple lanes, off-road, oncoming) by strict point-in-polygon.
- ``collisions``: no at-fault collision (NC) and time-to-collision (TTC), hits found at once, ignore sets
  replayed in the official order.
- ``comfort``: the six nuPlan comfort checks with the official Savitzky-Golay settings.
- ``loop_scorer``: a straightforward shapely-per-step scorer that mirrors the official loops; the baseline
  of ``benchmarks/bench_pdms.py`` and an oracle in the tests. Slow; not for production use.
"""
