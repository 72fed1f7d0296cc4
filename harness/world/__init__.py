"""The embedded world: a deterministic procedural road network, traffic and ego, recorded as typed logs.

- ``roads``: the road map (nuPlan map model) in a UTM-like frame; ``lanegraph``: the lane graph as arrays
  and paths through it; ``signals``: traffic-light cycles.
- ``traffic`` (vectorised IDM for all vehicles and the ego), ``spawn`` (initial traffic), ``pedestrians``,
  ``props`` (parked cars, work zones, kerbside objects), ``ego`` (route, driver, recorded ego state).
- ``build``: ``WorldConfig`` -> ``World`` (map, logs, train/test split), one situation per log.
- ``model``: the log record (``WorldLog``); ``sensors``/``rig``: cameras and LiDAR (rendered from a log).

Nothing is imported here, so that importing one module does not pull in the others.
"""
