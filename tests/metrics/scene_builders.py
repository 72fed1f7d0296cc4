"""Small ``ScoringScene`` builders for the PDMS tests, the PDMS benchmark and checks against the official scorer.

Two kinds of scene:

- ``straight_road``: a hand-checkable road along +x. Eastbound roadblock 101 (y in [-1.75, 5.25]) with the
  ego lane 1001 (y in [-1.75, 1.75], on route) and its left neighbour 1002 (y in [1.75, 5.25], on route);
  westbound roadblock 102 (y in [5.25, 12.25]) with lanes 1003 and 1004 (off route, i.e. oncoming). The
  centerline is y = 0. The two roadblocks share the edge y = 5.25. Optionally an intersection polygon.
- ``random_scene``: a 4-way intersection tile of ``tests/fixtures_maps.py`` with the PDM drivable map within
  100 m, a route through the intersection, 41-state proposals (PDM-Closed-like first, then perturbed agents
  that change lanes, swerve, brake, stop or leave the road) and a crowd of moving and static objects, many
  placed on the ego's path so that collisions and TTC events are common. Optionally moved to UTM-like
  coordinates and rotated.

``log_proposals`` makes two kinematic proposals (logged human, constant velocity) for scenes built from logs
by the NAVSIM adapter (the benchmark's embedded-world scenes).

States are rear-axle states in NAVSIM's ``StateIndex`` layout, global frame, t = 0, 0.1, ..., 4.0 s.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
import shapely

from harness.map_query import MapLayer, MapQuery
from harness.scoring_scene import ObjectTimeline, ObjectType, ScoringScene
from tests.fixtures_maps import build_fixture_map

DT = 0.1
N_STATES = 41
N_OBJECT_STEPS = 51
REAR_AXLE_TO_CENTER = 1.461  # spec §2.2 (the scorer derives it from the Pacifica parameters)

EGO_LANE, LEFT_LANE, ONCOMING_LANE, ONCOMING_FAR_LANE = 1001, 1002, 1003, 1004
EAST_RB, WEST_RB, INTERSECTION_ID = 101, 102, 201
ROAD_X = (-100.0, 200.0)

SIZES = {
    ObjectType.VEHICLE: (4.6, 1.9, 1.6),
    ObjectType.PEDESTRIAN: (0.6, 0.6, 1.7),
    ObjectType.BICYCLE: (1.8, 0.6, 1.6),
    ObjectType.TRAFFIC_CONE: (0.4, 0.4, 0.7),
    ObjectType.BARRIER: (2.0, 0.4, 1.0),
    ObjectType.CZONE_SIGN: (0.6, 0.4, 1.5),
    ObjectType.GENERIC_OBJECT: (1.0, 1.0, 1.0),
    ObjectType.EGO: (5.176, 2.297, 1.777),
}


# --- states ------------------------------------------------------------------------------------------------


def states_from_path(x, y, heading, speed, accel=None, *, ay0: float = 0.0) -> np.ndarray:
    """``(41, 11)`` states from per-step rear-axle x, y, heading, speed (and acceleration; else d speed/dt)."""
    st = np.zeros((N_STATES, 11))
    st[:, 0], st[:, 1], st[:, 2], st[:, 3] = x, y, heading, speed
    st[:, 5] = np.gradient(speed, DT) if accel is None else accel
    st[0, 6] = ay0
    return st


def straight_states(
    x0: float = 0.0, speed: float = 10.0, accel: float = 0.0, *, y0: float = 0.0, heading: float = 0.0
) -> np.ndarray:
    """``(41, 11)`` states along ``heading`` from (x0, y0) with constant acceleration, stopping at speed 0."""
    t = np.arange(N_STATES) * DT
    v = speed + accel * t
    if accel < 0 and speed > 0:
        t_stop = speed / -accel
        v = np.where(t < t_stop, v, 0.0)
        s = np.where(t < t_stop, speed * t + 0.5 * accel * t * t, speed * t_stop / 2.0)
        a = np.where(t < t_stop, accel, 0.0)
    else:
        s = speed * t + 0.5 * accel * t * t
        a = np.full(N_STATES, accel)
    return states_from_path(
        x0 + s * np.cos(heading), y0 + s * np.sin(heading), np.full(N_STATES, heading), v, a
    )


# --- objects -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Obj:
    """An object moving at constant velocity (global frame) over steps ``[appear, vanish)``."""

    token: str
    type: ObjectType
    x: float
    y: float
    heading: float = 0.0
    vx: float = 0.0
    vy: float = 0.0
    size: tuple[float, float, float] | None = None
    appear: int = 0
    vanish: int = N_OBJECT_STEPS


def timeline(objs: list[Obj], n_steps: int = N_OBJECT_STEPS) -> ObjectTimeline:
    m = len(objs)
    present = np.zeros((n_steps, m), dtype=bool)
    poses = np.zeros((n_steps, m, 3))
    vel = np.zeros((n_steps, m, 2))
    t = np.arange(n_steps) * DT
    for i, o in enumerate(objs):
        sl = slice(o.appear, min(o.vanish, n_steps))
        present[sl, i] = True
        poses[sl, i] = np.stack([o.x + o.vx * t[sl], o.y + o.vy * t[sl], np.full(len(t[sl]), o.heading)], -1)
        vel[sl, i] = (o.vx, o.vy)
    return ObjectTimeline(
        tokens=np.array([o.token for o in objs], dtype=str).reshape(m),
        types=np.array([int(o.type) for o in objs], dtype=np.int64).reshape(m),
        size_lwh=np.array([o.size or SIZES[o.type] for o in objs], dtype=np.float64).reshape(m, 3),
        first_velocity_xy=np.array([(o.vx, o.vy) for o in objs], dtype=np.float64).reshape(m, 2),
        present=present,
        poses=poses,
        velocity_xy=vel,
    )


# --- scenes ------------------------------------------------------------------------------------------------


def make_scene(
    *,
    objects: ObjectTimeline,
    drivable: list[tuple[int, MapLayer, shapely.Polygon]],
    route_lane_ids: list[int],
    centerline: np.ndarray,
    ego_state: np.ndarray,
    token: str = "scene",
    pdm_closed_states: np.ndarray | None = None,
) -> ScoringScene:
    """A ``ScoringScene`` from its scoring inputs; the rest (lights, human data) is empty."""
    closed = ego_state[None] if pdm_closed_states is None else pdm_closed_states
    n_t = objects.present.shape[0]
    return ScoringScene(
        token=token,
        log_name="synthetic",
        map_location="us-nv-las-vegas-strip",
        timestamp_us=0,
        scene_type=0,
        ego_pose=np.asarray(ego_state[:3], dtype=np.float64),
        ego_velocity_xy=np.asarray(ego_state[3:5], dtype=np.float64),
        ego_acceleration_xy=np.asarray(ego_state[5:7], dtype=np.float64),
        object_tokens=objects.tokens,
        object_types=objects.types,
        object_size_lwh=objects.size_lwh,
        object_first_velocity_xy=objects.first_velocity_xy,
        object_present=objects.present,
        object_poses=objects.poses,
        object_velocity_xy=objects.velocity_xy,
        light_connector_ids=np.zeros(0, np.int64),
        red_light_mask=np.zeros((n_t, 0), bool),
        light_polygons=np.zeros(0, dtype=object),
        drivable_ids=np.array([d[0] for d in drivable], dtype=np.int64).reshape(-1),
        drivable_types=np.array([int(d[1]) for d in drivable], dtype=np.int64).reshape(-1),
        drivable_polygons=np.array([d[2] for d in drivable] + [None], dtype=object)[:-1],
        route_roadblock_ids=np.zeros(0, np.int64),
        route_lane_ids=np.asarray(route_lane_ids, dtype=np.int64),
        centerline=np.asarray(centerline, dtype=np.float64),
        pdm_closed_states=np.asarray(closed, dtype=np.float64),
        pdm_closed_times_s=np.arange(len(closed)) * DT,
        human_future_local=None,
        human_history_global=None,
        human_history_times_s=None,
    )


def straight_road(
    objs: list[Obj] = (), *, intersection: tuple[float, float] | None = None, token: str = "straight"
) -> ScoringScene:
    """The straight test road (module docstring) with the given objects; ``intersection`` = (x0, x1)."""
    x0, x1 = ROAD_X
    drivable = [
        (EAST_RB, MapLayer.ROADBLOCK, shapely.box(x0, -1.75, x1, 5.25)),
        (WEST_RB, MapLayer.ROADBLOCK, shapely.box(x0, 5.25, x1, 12.25)),
        (EGO_LANE, MapLayer.LANE, shapely.box(x0, -1.75, x1, 1.75)),
        (LEFT_LANE, MapLayer.LANE, shapely.box(x0, 1.75, x1, 5.25)),
        (ONCOMING_LANE, MapLayer.LANE, shapely.box(x0, 5.25, x1, 8.75)),
        (ONCOMING_FAR_LANE, MapLayer.LANE, shapely.box(x0, 8.75, x1, 12.25)),
    ]
    if intersection is not None:
        drivable.append(
            (
                INTERSECTION_ID,
                MapLayer.INTERSECTION,
                shapely.box(intersection[0], -1.75, intersection[1], 12.25),
            )
        )
    xs = np.arange(x0, x1 + 1.0, 1.0)
    centerline = np.stack([xs, np.zeros_like(xs), np.zeros_like(xs)], axis=-1)
    return make_scene(
        objects=timeline(list(objs)),
        drivable=drivable,
        route_lane_ids=[EGO_LANE, LEFT_LANE],
        centerline=centerline,
        ego_state=straight_states()[0],
        token=token,
    )


def transform_scene(
    scene: ScoringScene,
    states: np.ndarray,
    angle: float,
    tx: float,
    ty: float,
    objects: ObjectTimeline | None = None,
) -> tuple[ScoringScene, np.ndarray, ObjectTimeline]:
    """Rotates everything by ``angle`` about the origin, then translates by (tx, ty)."""
    c, s = np.cos(angle), np.sin(angle)

    def xy(p: np.ndarray) -> np.ndarray:
        out = np.array(p, dtype=np.float64, copy=True)
        out[..., 0], out[..., 1] = c * p[..., 0] - s * p[..., 1] + tx, s * p[..., 0] + c * p[..., 1] + ty
        return out

    def vec(v: np.ndarray) -> np.ndarray:
        out = np.array(v, dtype=np.float64, copy=True)
        out[..., 0], out[..., 1] = c * v[..., 0] - s * v[..., 1], s * v[..., 0] + c * v[..., 1]
        return out

    def pose(p: np.ndarray) -> np.ndarray:
        out = xy(p)
        out[..., 2] = np.arctan2(np.sin(p[..., 2] + angle), np.cos(p[..., 2] + angle))
        return out

    def state(st: np.ndarray) -> np.ndarray:
        out = np.array(st, dtype=np.float64, copy=True)
        out[..., :3] = pose(st[..., :3])
        return out  # velocities and accelerations are body-frame: unchanged

    def objs(o: ObjectTimeline) -> ObjectTimeline:
        return replace(
            o,
            poses=np.where(o.present[..., None], pose(o.poses), 0.0),
            velocity_xy=np.where(o.present[..., None], vec(o.velocity_xy), 0.0),
            first_velocity_xy=vec(o.first_velocity_xy),
        )

    polys = (
        shapely.transform(scene.drivable_polygons, lambda p: xy(p))
        if len(scene.drivable_polygons)
        else scene.drivable_polygons
    )
    new_objs = objs(scene.objects)
    moved = replace(
        scene,
        ego_pose=pose(scene.ego_pose),
        drivable_polygons=np.asarray(polys, dtype=object),
        object_poses=new_objs.poses,
        object_velocity_xy=new_objs.velocity_xy,
        object_first_velocity_xy=new_objs.first_velocity_xy,
        centerline=pose(scene.centerline),
        pdm_closed_states=state(scene.pdm_closed_states),
    )
    return moved, state(states), objs(objects) if objects is not None else moved.objects


# --- random scenes on the fixture intersection ----------------------------------------------------------------


@lru_cache(maxsize=1)
def _fixture() -> tuple[object, MapQuery]:
    road_map = build_fixture_map()
    return road_map, MapQuery(road_map)


def _arc_length(xy: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(xy, axis=0).T))])


def _along(xy: np.ndarray, s: np.ndarray, offset: np.ndarray | float = 0.0) -> np.ndarray:
    """(x, y, heading) at arc lengths ``s`` of a polyline, shifted ``offset`` to the left (extrapolates)."""
    cum = _arc_length(xy)
    seg = np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(xy) - 2)
    d = xy[seg + 1] - xy[seg]
    heading = np.arctan2(d[:, 1], d[:, 0])
    u = (s - cum[seg]) / np.maximum(cum[seg + 1] - cum[seg], 1e-9)
    p = xy[seg] + u[:, None] * d
    off = np.broadcast_to(offset, s.shape)
    p = p + off[:, None] * np.stack([-np.sin(heading), np.cos(heading)], -1)
    return np.concatenate([p, heading[:, None]], axis=-1)


def _join(*lines: np.ndarray) -> np.ndarray:
    out = [lines[0]]
    for line in lines[1:]:
        out.append(line[1:] if np.allclose(line[0], out[-1][-1]) else line)
    return np.concatenate(out)


def random_scene(
    rng: np.random.Generator,
    *,
    n_objects: int = 40,
    n_agents: int = 1,
    utm: bool = True,
    token: str = "random",
) -> tuple[ScoringScene, np.ndarray]:
    """A random intersection scene and ``(1 + n_agents, 41, 11)`` proposals (module docstring)."""
    road_map, query = _fixture()
    rb = road_map.roadblocks[sorted(road_map.roadblocks)[rng.integers(0, 8)]]
    while not any(road_map.outgoing_connectors(lid) for lid in rb.lane_ids):  # an inbound arm
        rb = road_map.roadblocks[sorted(road_map.roadblocks)[rng.integers(0, 8)]]
    lane = road_map.lanes[
        [lid for lid in rb.lane_ids if road_map.outgoing_connectors(lid)][
            rng.integers(0, sum(1 for lid in rb.lane_ids if road_map.outgoing_connectors(lid)))
        ]
    ]
    lcs = road_map.outgoing_connectors(lane.id)
    lc = road_map.lane_connectors[lcs[rng.integers(0, len(lcs))]]
    exit_lane = road_map.lanes[lc.entry_lane_id]
    path = _join(lane.baseline_xy, lc.baseline_xy, exit_lane.baseline_xy)
    rbc = road_map.roadblock_connectors[lc.roadblock_connector_id]
    route = (
        list(rb.lane_ids)
        + list(rbc.lane_connector_ids)
        + list(road_map.roadblocks[road_map.lanes[exit_lane.id].roadblock_id].lane_ids)
    )
    centerline = np.concatenate([path, _along(path, _arc_length(path))[:, 2:]], axis=-1)

    t = np.arange(N_STATES) * DT
    s0 = rng.uniform(0.0, 45.0)
    v0 = rng.uniform(0.0, 14.0)
    start = _along(path, np.array([s0]))[0]

    def follow(accel: float, lateral_end: float, jitter: float = 0.0) -> np.ndarray:
        v = np.maximum(v0 + accel * t, 0.0)
        s = s0 + np.concatenate([[0.0], np.cumsum((v[1:] + v[:-1]) / 2 * DT)])
        ramp = lateral_end * (3 * (t / t[-1]) ** 2 - 2 * (t / t[-1]) ** 3)
        p = _along(path, s, ramp)
        p[:, 2] += np.arctan2(np.gradient(ramp, DT), np.maximum(v, 0.5)) + jitter * rng.standard_normal(
            N_STATES
        )
        p[0] = start
        acc = np.where(v > 0, accel, 0.0) + (rng.normal(0, 1.5, N_STATES) if rng.random() < 0.3 else 0.0)
        return states_from_path(p[:, 0], p[:, 1], p[:, 2], v, acc, ay0=rng.normal(0, 0.5))

    def arc(accel: float, yaw_rate: float) -> np.ndarray:
        v = np.maximum(v0 + accel * t, 0.0)
        h = start[2] + yaw_rate * t
        x = start[0] + np.concatenate([[0.0], np.cumsum(v[:-1] * np.cos(h[:-1]) * DT)])
        y = start[1] + np.concatenate([[0.0], np.cumsum(v[:-1] * np.sin(h[:-1]) * DT)])
        return states_from_path(x, y, h, v, np.where(v > 0, accel, 0.0), ay0=rng.normal(0, 0.5))

    proposals = [follow(rng.uniform(-1.0, 1.0), 0.0)]
    for _ in range(n_agents):
        kind = rng.integers(0, 5)
        if kind == 0:
            proposals.append(follow(rng.uniform(-3.0, 2.5), rng.uniform(-4.0, 9.0), rng.choice([0.0, 0.02])))
        elif kind == 1:
            proposals.append(arc(rng.uniform(-2.0, 2.0), rng.uniform(-0.35, 0.35)))
        elif kind == 2:
            proposals.append(follow(rng.uniform(-8.0, -4.0), rng.uniform(-1.0, 1.0)))
        elif kind == 3:
            proposals.append(follow(-v0 / rng.uniform(1.0, 4.0) - 0.5, 0.0))  # comes to a stop
        else:
            proposals.append(follow(rng.uniform(0.0, 3.0), rng.choice([-3.5, 3.5, 7.0]) + rng.normal(0, 0.3)))
    states = np.stack(proposals)

    objs = _random_objects(rng, n_objects, road_map, path, s0, v0)
    ego_center = start[:2] + REAR_AXLE_TO_CENTER * np.array([np.cos(start[2]), np.sin(start[2])])
    dp = query.drivable_polygons_within(ego_center, 100.0)
    drivable = list(zip(dp.ids.tolist(), [MapLayer(x) for x in dp.types.tolist()], list(dp.polygons)))
    scene = make_scene(
        objects=timeline(objs),
        drivable=drivable,
        route_lane_ids=route,
        centerline=centerline,
        ego_state=states[0, 0],
        token=token,
        pdm_closed_states=states[0],
    )
    if utm:
        scene, states, _ = transform_scene(
            scene,
            states,
            rng.uniform(-np.pi, np.pi),
            664_000.0 + rng.uniform(-5e3, 5e3),
            3_997_000.0 + rng.uniform(-5e3, 5e3),
        )
    return scene, states


def _random_objects(
    rng: np.random.Generator, n: int, road_map, path: np.ndarray, s0: float, v0: float
) -> list[Obj]:
    lanes = [road_map.lanes[i].baseline_xy for i in sorted(road_map.lanes)]
    lanes += [road_map.lane_connectors[i].baseline_xy for i in sorted(road_map.lane_connectors)]
    out: list[Obj] = []
    for i in range(n):
        u = rng.random()
        appear, vanish = 0, N_OBJECT_STEPS
        if rng.random() < 0.25:
            appear = int(rng.integers(0, 30))
            vanish = int(rng.integers(appear + 1, N_OBJECT_STEPS + 1))
        if u < 0.3:  # traffic on a random lane
            kind = ObjectType.VEHICLE if rng.random() < 0.85 else ObjectType.BICYCLE
            xy = lanes[rng.integers(0, len(lanes))]
            # Off the baseline by a little: a box centre exactly on the ego's heading line makes nuPlan's
            # relative angle NaN or not by rounding (see metrics.pdm_scoring.geometry.relative_angle).
            p = _along(xy, np.array([rng.uniform(0, _arc_length(xy)[-1])]), rng.normal(0, 0.2))[0]
            speed = rng.uniform(0, 12)
        elif u < 0.36:  # on the ego's path ahead, slower (rear-end candidates), some stopped
            kind = ObjectType.VEHICLE
            p = _along(path, np.array([s0 + rng.uniform(8, 60)]), rng.normal(0, 1.0))[0]
            speed = 0.0 if rng.random() < 0.4 else rng.uniform(0, max(v0 - 1, 0.5))
        elif u < 0.39:  # behind the ego, faster
            kind = ObjectType.VEHICLE
            p = _along(path, np.array([s0 - rng.uniform(5, 15)]), rng.normal(0, 0.5))[0]
            speed = v0 + rng.uniform(1, 5)
        elif u < 0.46:  # pedestrians crossing near the path
            kind = ObjectType.PEDESTRIAN
            q = _along(path, np.array([s0 + rng.uniform(0, 50)]), rng.uniform(-8, 8))[0]
            p = np.array([q[0], q[1], q[2] + rng.choice([-1, 1]) * np.pi / 2])
            speed = rng.uniform(0.0, 1.8)
        elif u < 0.53:  # static objects on or beside the path
            kind = ObjectType(rng.choice([3, 4, 5, 6]))
            p = _along(path, np.array([s0 + rng.uniform(2, 50)]), rng.uniform(-6, 6))[0]
            p[2] += rng.uniform(-np.pi, np.pi)
            speed = 0.0
        else:  # parked or wandering anything, anywhere around
            kind = ObjectType(rng.choice([0, 0, 1, 2, 3, 6, 7]))
            q = _along(path, np.array([rng.uniform(0, _arc_length(path)[-1])]), rng.uniform(-25, 25))[0]
            p = np.array([q[0], q[1], rng.uniform(-np.pi, np.pi)])
            speed = rng.uniform(0, 3) if rng.random() < 0.5 else 0.0
        moving = kind in (ObjectType.VEHICLE, ObjectType.PEDESTRIAN, ObjectType.BICYCLE, ObjectType.EGO)
        speed = speed if moving else 0.0
        if moving and speed > 0 and rng.random() < 0.1:
            speed = rng.uniform(0.0, 0.06)  # around the 0.05 m/s "stopped track" threshold
        t0 = appear * DT  # positions are given at first appearance
        vx, vy = speed * np.cos(p[2]), speed * np.sin(p[2])
        out.append(
            Obj(
                f"obj{i:03d}",
                kind,
                p[0] - vx * t0,
                p[1] - vy * t0,
                p[2],
                vx,
                vy,
                size=tuple(np.array(SIZES[kind]) * rng.uniform(0.8, 1.2)),
                appear=appear,
                vanish=vanish,
            )
        )
    return out


# --- proposals for scenes built from logs (embedded world) ---------------------------------------------------


def _states_from_poses(times_s: np.ndarray, poses: np.ndarray, v0: float) -> np.ndarray:
    """``(41, 11)`` states sampled at 0.1 s from global rear-axle poses at ``times_s`` (starting at 0)."""
    t = np.arange(N_STATES) * DT
    heading = np.unwrap(poses[:, 2])
    x, y = np.interp(t, times_s, poses[:, 0]), np.interp(t, times_s, poses[:, 1])
    h = np.arctan2(np.sin(np.interp(t, times_s, heading)), np.cos(np.interp(t, times_s, heading)))
    speed = np.hypot(np.gradient(x, DT), np.gradient(y, DT))
    speed[0] = v0
    return states_from_path(x, y, h, speed)


def log_proposals(scene: ScoringScene) -> np.ndarray:
    """``(2, 41, 11)`` kinematic proposals for a scene built from a log, without the simulator.

    Index 0 follows the logged human future (a stand-in for PDM-Closed), index 1 is the constant-velocity
    agent (NAVSIM's ``ConstantVelocityAgent``: straight ahead at the current speed).
    """
    x0, y0, h0 = scene.ego_pose
    v0 = float(np.hypot(*scene.ego_velocity_xy))
    local = np.concatenate([[[0.0, 0.0, 0.0]], np.asarray(scene.human_future_local)[:8]])
    c, s = np.cos(h0), np.sin(h0)
    human = np.stack(
        [x0 + c * local[:, 0] - s * local[:, 1], y0 + s * local[:, 0] + c * local[:, 1], h0 + local[:, 2]],
        axis=-1,
    )
    times = np.arange(len(local)) * 0.5
    t = np.arange(N_STATES) * DT
    cv = states_from_path(
        x0 + v0 * t * c, y0 + v0 * t * s, np.full(N_STATES, h0), np.full(N_STATES, v0), np.zeros(N_STATES)
    )
    return np.stack([_states_from_poses(times, human, v0), cv])
