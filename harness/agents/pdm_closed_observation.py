"""PDM-Closed's own observation: constant-velocity forecasts of the t = 0 objects plus red on-route lights.

Re-implements NAVSIM v1.1 ``pdm_planner/observation/pdm_observation.py::PDMObservation.update`` and
``pdm_object_manager.py::PDMObjectManager`` as arrays (specs/navsim.md §9.2):

- objects: the scene's objects detected at t = 0 (``object_in_current_frame``), without EGO and without those whose box centre is more than
  ``map_radius_m`` (100 m) from the ego's box centre; then the nearest 50 vehicles, 25 pedestrians, 10 bicycles
  and 50 static objects by centre distance. Map order: static, vehicles, pedestrians, bicycles (each nearest
  first), then red lights; it matters only where two candidates tie.
- agents (VEHICLE, PEDESTRIAN, BICYCLE) move at their speed ``|v|`` along their box heading (reversed when the
  velocity points backwards); static objects do not move.
- the forecast is sampled every ``resolution_steps`` (2) steps of 0.1 s, i.e. at 0.0, 0.2, … 5.0 s, and a
  0.1 s step index ``k`` reads the forecast at ``(k // 2) * 0.2`` s (a zero-order hold, not an interpolation).
- red lights: every on-route lane connector whose light is RED at t = 0, as its lane-connector polygon under
  the token ``red_light_<id>``, at every step.
- "collided" tokens: objects whose box intersects the ego footprint at t = 0 (red lights only if the ego lies
  within them). The planner ignores them as leaders and the scorer starts its NC and TTC ignore-sets with them.

Frames: global (map) frame, metres, radians, m/s.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import shapely

from harness.scoring_scene import AGENT_TYPES, ObjectTimeline, ObjectType, ScoringScene
from metrics.pdm.state import PACIFICA, VehicleParameters

F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

#: PDMObjectManager caps: nearest objects kept per agent type, and static objects in total.
MAX_DYNAMIC_OBJECTS = {ObjectType.VEHICLE: 50, ObjectType.PEDESTRIAN: 25, ObjectType.BICYCLE: 10}
MAX_STATIC_OBJECTS = 50
RED_LIGHT_TOKEN = "red_light"
#: ObjectType value -> agent type (VEHICLE, PEDESTRIAN, BICYCLE, EGO) / a type the forecast moves.
_IS_AGENT_TYPE = np.isin(np.arange(len(ObjectType)), [int(t) for t in AGENT_TYPES])
_IS_DYNAMIC_TYPE = np.isin(np.arange(len(ObjectType)), [int(t) for t in MAX_DYNAMIC_OBJECTS])


def box_corners(center_pose: npt.ArrayLike, length: npt.ArrayLike, width: npt.ArrayLike,
                cos_sin: tuple[F64, F64] | None = None) -> F64:
    """Closed box rings ``(..., 5, 2)``: FL, RL, RR, FR, FL, as nuPlan ``OrientedBox.all_corners`` computes them.

    Args:
        center_pose: ``(..., 3)`` box centre (x, y, heading), metres and radians.
        length, width: ``(...)`` or scalars, metres.
        cos_sin: ``(cos, sin)`` of the headings ``(...)`` if already computed (the same floats).
    """
    p = np.asarray(center_pose, dtype=np.float64)
    h = p[..., 2, None]
    half_l = np.asarray(length, dtype=np.float64)[..., None] / 2.0
    half_w = np.asarray(width, dtype=np.float64)[..., None] / 2.0
    lon = half_l * _LON_SIGN
    lat = half_w * _LAT_SIGN
    cos, sin = (np.cos(h), np.sin(h)) if cos_sin is None else (cos_sin[0][..., None], cos_sin[1][..., None])
    out = np.empty(p.shape[:-1] + (5, 2), dtype=np.float64)
    # nuPlan translate_longitudinally_and_laterally: centre + (lat*cos(h+π/2) + lon*cos h, lat*sin(h+π/2) + lon*sin h).
    out[..., :4, 0] = p[..., 0, None] + (lat * np.cos(h + np.pi / 2.0) + lon * cos)
    out[..., :4, 1] = p[..., 1, None] + (lat * np.sin(h + np.pi / 2.0) + lon * sin)
    out[..., 4, :] = out[..., 0, :]
    return out


#: Corner order FL, RL, RR, FR: signs of the longitudinal and lateral half extents.
_LON_SIGN = np.array([1.0, -1.0, -1.0, 1.0])
_LAT_SIGN = np.array([1.0, 1.0, -1.0, -1.0])


def ego_center(rear_axle_pose: npt.ArrayLike, vehicle: VehicleParameters = PACIFICA) -> F64:
    """Box centre pose ``(..., 3)`` of the ego from its rear-axle pose (nuPlan ``translate_longitudinally``)."""
    p = np.asarray(rear_axle_pose, dtype=np.float64)
    d = vehicle.rear_axle_to_center
    out = p.copy()
    out[..., 0] = p[..., 0] + d * np.cos(p[..., 2])
    out[..., 1] = p[..., 1] + d * np.sin(p[..., 2])
    return out


def ego_footprint_rings(rear_axle_pose: npt.ArrayLike, vehicle: VehicleParameters = PACIFICA) -> F64:
    """Closed footprint rings ``(..., 5, 2)`` of the ego at rear-axle poses (nuPlan ``CarFootprint``)."""
    p = np.asarray(rear_axle_pose, dtype=np.float64)
    cos, sin = np.cos(p[..., 2]), np.sin(p[..., 2])
    center = p.copy()  # ego_center, its cos and sin kept for the corners (the centre keeps the heading)
    d = vehicle.rear_axle_to_center
    center[..., 0] = p[..., 0] + d * cos
    center[..., 1] = p[..., 1] + d * sin
    return box_corners(center, vehicle.length, vehicle.width, (cos, sin))


@dataclass(frozen=True)
class PDMObservation:
    """The observation PDM-Closed plans and scores its proposals against.

    Rows ``n`` are the kept objects followed by the red lights, in the official map order.

    Attributes:
        tokens: ``(N,)`` track tokens, ``red_light_<connector id>`` for red lights.
        types: ``(N,)`` ``ObjectType`` values (-1 for red lights).
        size_lwh: ``(N, 3)`` box size (0 for red lights).
        center_pose: ``(N, 3)`` box centre (x, y, heading) at t = 0 (0 for red lights).
        velocity_xy: ``(N, 2)`` the object's logged velocity at t = 0 (0 for static objects and red lights).
        forecast_velocity_xy: ``(N, 2)`` the constant velocity the forecast moves the box with.
        is_agent: ``(N,)`` VEHICLE, PEDESTRIAN or BICYCLE.
        is_red_light: ``(N,)``.
        collided: ``(N,)`` overlapping the ego at t = 0 (see the module docstring).
        rings_t0: ``(N_obj, 5, 2)`` closed box rings of the objects at t = 0.
        light_polygons: ``(N_light,)`` red-light polygons.
        sample_interval_s: 0.1 s steps of the planner.
        resolution_steps: the forecast is updated every this many steps (2).
        num_maps: number of forecast samples (26 = 0.0 … 5.0 s).
    """

    tokens: npt.NDArray[np.str_]
    types: npt.NDArray[np.int64]
    size_lwh: F64
    center_pose: F64
    velocity_xy: F64
    forecast_velocity_xy: F64
    is_agent: B
    is_red_light: B
    collided: B
    rings_t0: F64
    light_polygons: npt.NDArray[np.object_]
    sample_interval_s: float = 0.1
    resolution_steps: int = 2
    num_maps: int = 26
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def speed(self) -> F64:
        """``(N,)`` logged speed ``|v|`` at t = 0 (m/s; 0 for static objects and red lights)."""
        return np.hypot(self.velocity_xy[:, 0], self.velocity_xy[:, 1])

    @property
    def num_objects(self) -> int:
        """Objects (without red lights)."""
        return int(self.rings_t0.shape[0])

    def map_index(self, step: int) -> int:
        """Forecast sample read at 0.1 s step ``step`` (``step // resolution_steps``)."""
        return step // self.resolution_steps

    def map_time_s(self, map_index: int) -> float:
        """Forecast time of sample ``map_index``, computed as NAVSIM does (``float(sample) * interval``)."""
        return float(map_index * self.resolution_steps) * self.sample_interval_s

    def map_times_s(self, map_index: npt.NDArray[np.int64]) -> F64:
        """:meth:`map_time_s` of many samples (the same floats)."""
        return (np.asarray(map_index, dtype=np.int64) * self.resolution_steps).astype(np.float64) * self.sample_interval_s

    def object_rings(self, map_index: int) -> F64:
        """``(N_obj, 5, 2)`` object box rings at forecast sample ``map_index``."""
        dt = self.map_time_s(map_index)
        if dt == 0.0 or not np.any(self.is_agent):
            return self.rings_t0
        # NAVSIM moves every dynamic ring by dt * dxy (statics have dxy = 0; adding 0 keeps them bit-equal).
        return self.rings_t0 + dt * self.forecast_velocity_xy[: self.num_objects, None, :]

    def polygons(self, map_index: int) -> npt.NDArray[np.object_]:
        """``(N,)`` shapely polygons at forecast sample ``map_index`` (objects, then red lights); cached."""
        key = ("poly", map_index)
        if key not in self._cache:
            polys = shapely.polygons(self.object_rings(map_index)) if self.num_objects else np.empty(0, object)
            self._cache[key] = np.concatenate([np.asarray(polys, dtype=object), self.light_polygons])
        return self._cache[key]


def _agent_motion(obj_types: np.ndarray, center: np.ndarray, velocity_xy: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(is-agent flags, logged velocity (0 for static objects), forecast velocity) of objects, m/s in the global
    frame: an agent moves at its speed along its box heading (flipped when the velocity points backwards);
    others stand."""
    agent = _type_flag(_IS_DYNAMIC_TYPE, obj_types)
    vel = np.where(agent[:, None], velocity_xy, 0.0)
    speed = np.hypot(vel[:, 0], vel[:, 1])
    heading = center[:, 2]
    vel_angle = np.arctan2(vel[:, 1], vel[:, 0])
    forward = np.abs(_normalize(heading - vel_angle)) < np.pi / 2
    track_heading = np.where(forward, heading, _normalize(heading + np.pi))
    dxy = np.where(agent[:, None], np.stack([np.cos(track_heading) * speed, np.sin(track_heading) * speed], -1), 0.0)
    return agent, vel, dxy


def build_observation(
    scene: ScoringScene,
    *,
    map_radius_m: float = 100.0,
    vehicle: VehicleParameters = PACIFICA,
    sample_interval_s: float = 0.1,
    resolution_steps: int = 2,
    horizon_steps: int = 50,
    carried_collided: Collection[str] = (),
) -> PDMObservation:
    """PDM-Closed's observation of a scene (see the module docstring).

    Args:
        scene: the scoring scene (objects at step 0, red-light mask at step 0, route lane ids).
        map_radius_m: objects farther than this from the ego's box centre are dropped (metres).
        vehicle: ego vehicle parameters.
        sample_interval_s: planner step, seconds.
        resolution_steps: forecast update interval, in planner steps.
        horizon_steps: the last planner step the forecast must cover (NAVSIM: max(40 + 10, 50) = 50).
        carried_collided: "collided" tokens of scenes planned before by the same official planner instance.
            NAVSIM's metric caching reuses one ``PDMObservation`` for all scenes of a worker's batch, and its
            collided list only grows: such objects are not observed at all, such red lights are no leaders.
            Empty (the default) plans every scene on its own.
    """
    present = scene.object_present[0] if scene.num_steps else np.zeros(len(scene.object_tokens), dtype=bool)
    if scene.object_in_current_frame is not None:
        # PDM-Closed sees the current frame's detections; a track first annotated later is frozen at step 0 of
        # the timeline but was not detected yet.
        present = present & scene.object_in_current_frame
    carried = set(carried_collided)
    if carried:
        present = present & ~np.isin(scene.object_tokens, list(carried))
    idx = np.flatnonzero(present & (scene.object_types != ObjectType.EGO))
    poses = scene.object_poses[0, idx] if idx.size else np.zeros((0, 3))
    ego_c = ego_center(np.asarray(scene.ego_pose, dtype=np.float64), vehicle)
    within = np.hypot(ego_c[0] - poses[:, 0], ego_c[1] - poses[:, 1]) <= map_radius_m
    idx, poses = idx[within], poses[within]
    # PDMObjectManager sorts with ((c - p) ** 2).sum() ** 0.5, not hypot; ties are broken by argsort.
    dist = ((poses[:, :2] - ego_c[None, :2]) ** 2.0).sum(axis=-1) ** 0.5
    types = scene.object_types[idx]
    is_agent_type = _type_flag(_IS_AGENT_TYPE, types)
    groups = [np.flatnonzero(~is_agent_type)]
    caps = [MAX_STATIC_OBJECTS]
    for t, cap in MAX_DYNAMIC_OBJECTS.items():
        groups.append(np.flatnonzero(types == t))
        caps.append(cap)
    order = np.concatenate([g[np.argsort(dist[g])][:cap] for g, cap in zip(groups, caps)]).astype(np.int64)
    sel = idx[order]

    obj_types = scene.object_types[sel].astype(np.int64)
    size = scene.object_size_lwh[sel].astype(np.float64)
    center = scene.object_poses[0, sel].astype(np.float64)
    agent, vel, dxy = _agent_motion(obj_types, center, scene.object_velocity_xy[0, sel])
    rings = box_corners(center, size[:, 0], size[:, 1])

    # Red lights: on-route lane connectors that are red at t = 0 (the planner sees iteration 0 only).
    n_conn = len(scene.light_connector_ids)
    red_now = scene.red_light_mask[0] if scene.num_steps and n_conn else np.zeros(n_conn, bool)
    on_route = (np.asarray(scene.light_connector_ids, dtype=np.int64)[:, None]
                == np.asarray(scene.route_lane_ids, dtype=np.int64)[None, :]).any(axis=1)
    light_idx = np.flatnonzero(red_now & on_route)
    light_tokens = [f"{RED_LIGHT_TOKEN}_{int(scene.light_connector_ids[i])}" for i in light_idx]
    light_polys = np.asarray([scene.light_polygons[i] for i in light_idx], dtype=object).reshape(-1)

    n_obj, n_light = len(sel), len(light_idx)
    # Collided at t = 0: intersecting the ego footprint; a red light only when the ego lies within it. Boxes
    # whose bounding box misses the ego's cannot intersect it (GEOS's envelope test): only the others become
    # polygons here (the observation builds its polygons when first asked).
    ego_rings = box_corners(ego_c, vehicle.length, vehicle.width)  # ego_footprint_rings(scene.ego_pose)
    ego_lo, ego_hi = ego_rings[:4].min(axis=0), ego_rings[:4].max(axis=0)
    obj_lo = np.minimum(np.minimum(rings[:, 0], rings[:, 1]), np.minimum(rings[:, 2], rings[:, 3]))
    obj_hi = np.maximum(np.maximum(rings[:, 0], rings[:, 1]), np.maximum(rings[:, 2], rings[:, 3]))
    near = np.flatnonzero(np.all((obj_lo <= ego_hi) & (obj_hi >= ego_lo), axis=1))
    collided = np.zeros(n_obj + n_light, dtype=bool)
    ego_poly = shapely.polygons(ego_rings) if len(near) or n_light else None
    if len(near):
        collided[near] = shapely.intersects(ego_poly, shapely.polygons(rings[near]))
    if n_light:
        collided[n_obj:] = (np.asarray(shapely.intersects(ego_poly, light_polys), dtype=bool)
                            & np.asarray(shapely.within(ego_poly, light_polys), dtype=bool))
        if carried:
            collided[n_obj:] |= np.isin(light_tokens, list(carried))
    zeros2 = np.zeros((n_light, 2))
    obs = PDMObservation(
        tokens=_tokens(scene.object_tokens[sel], light_tokens),
        types=np.concatenate([obj_types, np.full(n_light, -1, np.int64)]),
        size_lwh=np.concatenate([size, np.zeros((n_light, 3))]),
        center_pose=np.concatenate([center, np.zeros((n_light, 3))]),
        velocity_xy=np.concatenate([vel, zeros2]),
        forecast_velocity_xy=np.concatenate([dxy, zeros2]),
        is_agent=np.concatenate([agent, np.zeros(n_light, bool)]),
        is_red_light=np.concatenate([np.zeros(n_obj, bool), np.ones(n_light, bool)]),
        collided=collided,
        rings_t0=rings,
        light_polygons=light_polys,
        sample_interval_s=sample_interval_s,
        resolution_steps=resolution_steps,
        num_maps=horizon_steps // resolution_steps + 1,
    )
    return obs


def build_observations(
    scenes: Sequence[ScoringScene],
    *,
    map_radius_m: float = 100.0,
    vehicle: VehicleParameters = PACIFICA,
    sample_interval_s: float = 0.1,
    resolution_steps: int = 2,
    horizon_steps: int = 50,
) -> list[PDMObservation]:
    """:func:`build_observation` of many scenes (no carried tokens), each equal to the scene's own: the same
    element-wise arithmetic on the scenes' objects side by side. Objects are ranked per (scene, type group)
    by a stable sort; a scene with two equally distant objects in one group is built on its own instead
    (``np.argsort`` decides such ties there)."""
    if not scenes:
        return []
    kw = dict(map_radius_m=map_radius_m, vehicle=vehicle, sample_interval_s=sample_interval_s,
              resolution_steps=resolution_steps, horizon_steps=horizon_steps)
    n_scenes = len(scenes)
    counts = np.array([len(sc.object_tokens) for sc in scenes])
    present = np.concatenate([
        (sc.object_present[0] if sc.num_steps else np.zeros(len(sc.object_tokens), dtype=bool))
        & (True if sc.object_in_current_frame is None else sc.object_in_current_frame) for sc in scenes])
    types_all = np.concatenate([sc.object_types for sc in scenes])
    scene_all = np.repeat(np.arange(n_scenes), counts)
    idx = np.flatnonzero(present & (types_all != ObjectType.EGO))
    poses_all = np.concatenate([sc.object_poses[0] if sc.num_steps else np.zeros((n, 3))
                                for sc, n in zip(scenes, counts, strict=True)]).reshape(-1, 3)
    poses = poses_all[idx]
    ego_c = ego_center(np.stack([np.asarray(sc.ego_pose, dtype=np.float64) for sc in scenes]), vehicle)
    sc_of = scene_all[idx]
    c = ego_c[sc_of]
    within = np.hypot(c[:, 0] - poses[:, 0], c[:, 1] - poses[:, 1]) <= map_radius_m
    idx, poses, sc_of, c = idx[within], poses[within], sc_of[within], c[within]
    dist = ((poses[:, :2] - c[:, :2]) ** 2.0).sum(axis=-1) ** 0.5
    types = types_all[idx]
    # Groups in map order: static (0), then VEHICLE, PEDESTRIAN, BICYCLE (1-3); other agent types (none but the
    # excluded EGO) in no group.
    group = np.where(_type_flag(_IS_AGENT_TYPE, types), -1, 0)
    caps = [MAX_STATIC_OBJECTS]
    for g, (t, cap) in enumerate(MAX_DYNAMIC_OBJECTS.items(), start=1):
        group[types == t] = g
        caps.append(cap)
    order = np.lexsort((dist, group, sc_of))
    key_s, key_g, key_d = sc_of[order], group[order], dist[order]
    run = np.ones(len(order), dtype=bool)
    run[1:] = (key_s[1:] != key_s[:-1]) | (key_g[1:] != key_g[:-1])
    tied = np.zeros(n_scenes, dtype=bool)
    tied[key_s[1:][~run[1:] & (key_d[1:] == key_d[:-1])]] = True
    rank = np.arange(len(order)) - np.maximum.accumulate(np.where(run, np.arange(len(order)), 0))
    keep = (key_g >= 0) & (rank < np.asarray(caps)[np.maximum(key_g, 0)])
    order = order[keep]
    sel_scene = sc_of[order]
    sel = idx[order]  # into the concatenated objects
    sizes = np.concatenate([sc.object_size_lwh for sc in scenes]).reshape(-1, 3)
    vels = np.concatenate([sc.object_velocity_xy[0] if sc.num_steps else np.zeros((n, 2))
                           for sc, n in zip(scenes, counts, strict=True)]).reshape(-1, 2)
    tokens_all = np.concatenate([sc.object_tokens for sc in scenes])
    obj_types = types_all[sel].astype(np.int64)
    size = sizes[sel].astype(np.float64)
    center = poses_all[sel].astype(np.float64)
    agent, vel, dxy = _agent_motion(obj_types, center, vels[sel])
    rings = box_corners(center, size[:, 0], size[:, 1])
    ego_rings = box_corners(ego_c, vehicle.length, vehicle.width)
    ego_lo, ego_hi = ego_rings[:, :4].min(axis=1), ego_rings[:, :4].max(axis=1)
    obj_lo = np.minimum(np.minimum(rings[:, 0], rings[:, 1]), np.minimum(rings[:, 2], rings[:, 3]))
    obj_hi = np.maximum(np.maximum(rings[:, 0], rings[:, 1]), np.maximum(rings[:, 2], rings[:, 3]))
    near = np.flatnonzero(np.all((obj_lo <= ego_hi[sel_scene]) & (obj_hi >= ego_lo[sel_scene]), axis=1))
    obj_collided = np.zeros(len(sel), dtype=bool)
    lights = [_red_lights(sc) for sc in scenes]
    n_light = np.array([len(li) for li, _ in lights])
    light_scene = np.repeat(np.arange(n_scenes), n_light)
    light_polys = np.concatenate([lp for _, lp in lights]) if n_light.sum() else np.empty(0, dtype=object)
    need = np.zeros(n_scenes, dtype=bool)
    need[sel_scene[near]] = True
    need[light_scene] = True
    ego_polys = np.empty(n_scenes, dtype=object)
    ego_polys[need] = shapely.polygons(ego_rings[need])
    if len(near):
        obj_collided[near] = shapely.intersects(ego_polys[sel_scene[near]], shapely.polygons(rings[near]))
    light_collided = np.zeros(len(light_polys), dtype=bool)
    if len(light_polys):
        light_collided = (np.asarray(shapely.intersects(ego_polys[light_scene], light_polys), dtype=bool)
                          & np.asarray(shapely.within(ego_polys[light_scene], light_polys), dtype=bool))
    bounds = np.searchsorted(sel_scene, np.arange(n_scenes + 1))
    light_bounds = np.concatenate([[0], np.cumsum(n_light)])
    out = []
    for i, sc in enumerate(scenes):
        if tied[i]:
            out.append(build_observation(sc, **kw))
            continue
        a, b = bounds[i], bounds[i + 1]
        la, lb = light_bounds[i], light_bounds[i + 1]
        nl = lb - la
        zeros2 = np.zeros((nl, 2))
        out.append(PDMObservation(
            tokens=_tokens(tokens_all[sel[a:b]], [f"{RED_LIGHT_TOKEN}_{int(x)}" for x in lights[i][0]]),
            types=np.concatenate([obj_types[a:b], np.full(nl, -1, np.int64)]),
            size_lwh=np.concatenate([size[a:b], np.zeros((nl, 3))]),
            center_pose=np.concatenate([center[a:b], np.zeros((nl, 3))]),
            velocity_xy=np.concatenate([vel[a:b], zeros2]),
            forecast_velocity_xy=np.concatenate([dxy[a:b], zeros2]),
            is_agent=np.concatenate([agent[a:b], np.zeros(nl, bool)]),
            is_red_light=np.concatenate([np.zeros(b - a, bool), np.ones(nl, bool)]),
            collided=np.concatenate([obj_collided[a:b], light_collided[la:lb]]),
            rings_t0=rings[a:b],
            light_polygons=light_polys[la:lb],
            sample_interval_s=sample_interval_s,
            resolution_steps=resolution_steps,
            num_maps=horizon_steps // resolution_steps + 1,
        ))
    return out


def _red_lights(scene: ScoringScene) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.object_]]:
    """Connector ids and polygons of the scene's on-route lane connectors that are red at t = 0."""
    n_conn = len(scene.light_connector_ids)
    red_now = scene.red_light_mask[0] if scene.num_steps and n_conn else np.zeros(n_conn, bool)
    on_route = (np.asarray(scene.light_connector_ids, dtype=np.int64)[:, None]
                == np.asarray(scene.route_lane_ids, dtype=np.int64)[None, :]).any(axis=1)
    light_idx = np.flatnonzero(red_now & on_route)
    polys = np.asarray([scene.light_polygons[i] for i in light_idx], dtype=object).reshape(-1)
    return np.asarray(scene.light_connector_ids, dtype=np.int64)[light_idx], polys


def forecast_timeline(obs: PDMObservation, num_steps: int, *, drop_collided: bool = True) -> ObjectTimeline:
    """The observation's objects as an :class:`ObjectTimeline` at ``num_steps`` steps of ``sample_interval_s``.

    Step ``k`` holds the forecast sample ``k // resolution_steps``. Red lights are left out (v1.1 scoring skips
    them). With ``drop_collided`` the objects that overlap the ego at t = 0 are left out too: PDM-Closed's scorer
    starts its NC and TTC ignore-sets with them, which is the same as not seeing them at all.
    """
    keep = np.flatnonzero(~obs.is_red_light & (~obs.collided if drop_collided else True))
    m = len(keep)
    poses = np.empty((num_steps, m, 3), dtype=np.float64)
    # All steps at once; element by element the same expression as step by step (centre + dt * velocity).
    dt = obs.map_times_s(np.arange(num_steps) // obs.resolution_steps)
    poses[:, :, :2] = obs.center_pose[keep, :2][None] + dt[:, None, None] * obs.forecast_velocity_xy[keep][None]
    poses[:, :, 2] = obs.center_pose[keep, 2][None]
    vel = np.broadcast_to(obs.forecast_velocity_xy[keep], (num_steps, m, 2)).copy()
    return ObjectTimeline(
        tokens=obs.tokens[keep].copy(),
        types=obs.types[keep].copy(),
        size_lwh=obs.size_lwh[keep].copy(),
        first_velocity_xy=obs.velocity_xy[keep].copy(),
        present=np.ones((num_steps, m), dtype=bool),
        poses=poses,
        velocity_xy=vel,
    )


def _tokens(object_tokens: npt.NDArray[np.str_], light_tokens: list[str]) -> npt.NDArray[np.str_]:
    """The objects' then the lights' tokens, one string array."""
    if object_tokens.dtype.kind != "U":
        return np.asarray([str(t) for t in object_tokens] + light_tokens, dtype=np.str_)
    if not light_tokens:
        return object_tokens.astype(np.str_)
    return np.concatenate([object_tokens, np.asarray(light_tokens, dtype=np.str_)])


def forecast_timelines(observations: Sequence[PDMObservation], num_steps: int) -> list[ObjectTimeline]:
    """:func:`forecast_timeline` of many observations (``drop_collided``), the poses of all computed in one
    pass (the same expression per element); each timeline's arrays are views into the shared ones."""
    if not observations:
        return []
    keep = [np.flatnonzero(~o.is_red_light & ~o.collided) for o in observations]
    counts = np.array([len(k) for k in keep])
    if any(o.resolution_steps != observations[0].resolution_steps
           or o.sample_interval_s != observations[0].sample_interval_s for o in observations):
        return [forecast_timeline(o, num_steps) for o in observations]
    o0 = observations[0]
    dt = o0.map_times_s(np.arange(num_steps) // o0.resolution_steps)
    center = np.concatenate([o.center_pose[k] for o, k in zip(observations, keep, strict=True)]).reshape(-1, 3)
    fvel = np.concatenate([o.forecast_velocity_xy[k] for o, k in zip(observations, keep, strict=True)]).reshape(-1, 2)
    m = len(center)
    poses = np.empty((num_steps, m, 3), dtype=np.float64)
    poses[:, :, :2] = center[:, :2][None] + dt[:, None, None] * fvel[None]
    poses[:, :, 2] = center[:, 2][None]
    vel = np.broadcast_to(fvel, (num_steps, m, 2)).copy()
    present = np.ones((num_steps, m), dtype=bool)
    bounds = np.concatenate([[0], np.cumsum(counts)])
    return [ObjectTimeline(
        tokens=o.tokens[k].copy(),
        types=o.types[k].copy(),
        size_lwh=o.size_lwh[k].copy(),
        first_velocity_xy=o.velocity_xy[k].copy(),
        present=present[:, a:b],
        poses=poses[:, a:b],
        velocity_xy=vel[:, a:b],
    ) for o, k, a, b in zip(observations, keep, bounds[:-1], bounds[1:], strict=True)]


def _type_flag(table: B, types: npt.NDArray[np.int64]) -> B:
    """``table[types]``, False for values outside the table (as ``np.isin`` against the flagged values)."""
    ok = (types >= 0) & (types < len(table))
    return np.where(ok, table[np.where(ok, types, 0)], False)


def _normalize(angle: npt.ArrayLike) -> F64:
    return np.arctan2(np.sin(angle), np.cos(angle))
