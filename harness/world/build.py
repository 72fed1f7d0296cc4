"""Build the embedded world: one road map and a set of 10 Hz logs, split into train and test.

Log ``i`` plays situation ``i % 8`` (the seed varies the traffic, pedestrians, routes and the map's
placement). Together the default eight logs exercise every NAVSIM sub-metric:

=====  =====  =====================  ===============================================================
log    split  situation              what happens (ego)
=====  =====  =====================  ===============================================================
0      test   ``red_light_peds``     middle road east-bound, left lane; stops first in line at the red
                                     light of B, waits through the pedestrian phase (walkers cross right
                                     in front of it), goes straight on green (red light, standing start,
                                     pedestrian crossing, oncoming traffic on the other roadblock)
1      train  ``stopped_queue``      middle road west-bound, right lane; brakes behind a queue of two
                                     stopped cars at A's red light, turns right on green (stopped lead
                                     vehicle, queue discharge, right turn)
2      test   ``obstacle_pass``      middle road east-bound, right lane, blocked ahead by a broken-down
                                     car behind a cone taper and a barrier; changes to the left lane and
                                     passes it, oncoming traffic beside, straight through B on green
3      train  ``busy_follow``        outer road in dense traffic, following a lead vehicle through
                                     curves (car following, curves, many objects)
4      test   ``oncoming_curve``     north road (one lane each way) from A: two 90-degree curves with
                                     oncoming traffic an arm's length away (curve, oncoming traffic)
5      train  ``standing_start``     outer road at A's stop line, stopped at red with a queue behind;
                                     light turns green after 2 s, accelerates and turns left
6      test   ``curve_right_turn``   south road past the car park (parked cars), through a curve, then a
                                     right turn at A on green with walkers waiting on the kerb
7      train  ``curve_queue``        outer road at speed through two curves, then stops behind a queue at
                                     A's red light (curve, stopped lead vehicle, red light)
=====  =====  =====================  ===============================================================

Splits: logs are assigned to test in the order 0, 2, 4, ... then 1, 3, ..., so with the default
``test_fraction = 0.5`` the even logs are test and the odd ones train; both splits are non-empty whenever
there are at least two logs and ``0 < test_fraction < 1``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from harness.maps import RoadMap
from harness.types import DrivingCommand
from harness.world.ego import (
    FRONT_FROM_REAR_AXLE_M,
    REAR_FROM_REAR_AXLE_M,
    EgoPlan,
    EgoTrack,
    LaneChange,
    ego_mover,
    ego_path,
    ego_track,
)
from harness.world.lanegraph import LaneGraph, build_lane_graph, build_path
from harness.world.model import ObjectStates, WorldFrame, WorldLog
from harness.world.pedestrians import Pedestrians, evaluate_pedestrians, plan_pedestrians
from harness.world.props import Prop, kerb_clutter, parked_cars, work_zone
from harness.world.roads import (
    INTERSECTIONS,
    build_road_map,
    crosswalk_id,
    inbound_roadblock_id,
    intersection_id,
    lane_id,
)
from harness.world.signals import RED, IntersectionSignals, make_signals, node_light_states
from harness.world.spawn import Reserved, TrafficSpec, Vehicle, place_traffic
from harness.world.traffic import DT_S, Mover, SimResult, path_poses, simulate

#: Start of the first log, epoch microseconds (2021-05-03, like nuPlan's 2021 drives).
EPOCH_US = 1_620_000_000_000_000
PHASE_ARMS = ("W", "N", "E", "S")  # order of the approach greens at every intersection
BROKEN_CAR_SIZE_LWH = (4.7, 1.9, 1.6)


@dataclass(frozen=True)
class WorldConfig:
    """How much world to build.

    Args:
        seed: seeds everything (map placement, traffic, pedestrians, names).
        num_logs: logs in total, split between train and test.
        duration_s: length of each log (10 Hz frames; 30 s gives 60 keyframes at 2 Hz).
        test_fraction: share of the logs in the test split.
    """

    seed: int = 0
    num_logs: int = 8
    duration_s: float = 30.0
    test_fraction: float = 0.5

    def __post_init__(self) -> None:
        if self.num_logs < 1:
            raise ValueError(f"WorldConfig.num_logs must be >= 1, got {self.num_logs}")
        if not self.duration_s >= 0.2:
            raise ValueError(f"WorldConfig.duration_s must be >= 0.2 s, got {self.duration_s}")
        if not 0.0 <= self.test_fraction <= 1.0:
            raise ValueError(f"WorldConfig.test_fraction must be in [0, 1], got {self.test_fraction}")


@dataclass(frozen=True)
class World:
    """The map, the logs (in index order) and the split: ``"train"`` / ``"test"`` -> log names."""

    road_map: RoadMap
    logs: tuple[WorldLog, ...]
    splits: Mapping[str, tuple[str, ...]]

    def __repr__(self) -> str:  # the default would print every frame
        sizes = ", ".join(f"{k}: {len(v)}" for k, v in self.splits.items())
        return f"World({len(self.logs)} logs at {self.road_map.location}; {sizes})"


@dataclass(frozen=True)
class Situation:
    """What one log sets up for the ego (see the module table).

    ``lane`` = (road, forward, lane index); ``position_m`` = rear-axle position along it (negative: back from
    its end); ``greens`` = (intersection, arm, log time) at which that approach turns green (other
    intersections get a random phase); ``clear_ahead_m`` keeps the ego's lane empty that far ahead at t = 0
    (None: to the end of the lane); ``queue_ahead`` forces a queue at the end of the ego's lane;
    ``lane_change`` = (target lane index, start, end) on the start lane; ``obstacle_m`` puts a broken-down
    car (centre) on the start lane; ``crossers`` = (intersection, arm, count) walkers that cross in the first
    pedestrian phase; ``mean_free_gap_m`` sets the traffic density; ``busy`` logs have longer queues, more
    walkers and kerbside clutter gathered around the ego (at least 40 objects near it).
    """

    name: str
    lane: tuple[str, bool, int]
    position_m: float
    speed_mps: float
    turns: tuple[str, ...] = ()
    greens: tuple[tuple[str, str, float], ...] = ()
    clear_ahead_m: float | None = 20.0
    queue_ahead: int | None = None
    lane_change: tuple[int, float, float] | None = None
    obstacle_m: float | None = None
    crossers: tuple[tuple[str, str, int], ...] = ()
    mean_free_gap_m: float = 25.0
    busy: bool = False
    bicycles: int = 1


SITUATIONS: tuple[Situation, ...] = (
    Situation(
        "red_light_peds",
        ("middle", True, 0),
        -75.0,
        10.0,
        ("S",),
        (("B", "W", 21.0),),
        clear_ahead_m=None,
        crossers=(("B", "W", 3),),
        mean_free_gap_m=10.0,
        busy=True,
    ),
    Situation(
        "stopped_queue",
        ("middle", False, 1),
        -90.0,
        11.0,
        ("R",),
        (("A", "E", 12.5),),
        clear_ahead_m=None,
        queue_ahead=2,
        mean_free_gap_m=10.0,
        busy=True,
    ),
    Situation(
        "obstacle_pass",
        ("middle", True, 1),
        8.0,
        9.0,
        ("S",),
        (("B", "W", 14.0), ("A", "W", 40.0)),
        lane_change=(0, 35.0, 65.0),
        obstacle_m=100.0,
        mean_free_gap_m=30.0,
        bicycles=0,
    ),
    Situation("busy_follow", ("outer", True, 0), 5.0, 10.0, (), clear_ahead_m=15.0, mean_free_gap_m=4.0),
    Situation("oncoming_curve", ("north", True, 0), 5.0, 8.0, mean_free_gap_m=12.0),
    Situation(
        "standing_start",
        ("outer", True, 0),
        -(0.6 + FRONT_FROM_REAR_AXLE_M),
        0.0,
        ("L",),
        (("A", "W", 2.0),),
        clear_ahead_m=None,
        mean_free_gap_m=10.0,
    ),
    Situation(
        "curve_right_turn", ("south", False, 0), 230.0, 10.0, ("R",), (("A", "S", 15.0),), clear_ahead_m=None
    ),
    Situation(
        "curve_queue",
        ("outer", True, 1),
        -250.0,
        8.0,
        ("S",),
        (("A", "W", 30.0),),
        queue_ahead=2,
        clear_ahead_m=None,
        mean_free_gap_m=15.0,
    ),
)


@dataclass(frozen=True)
class LogSimulation:
    """Everything simulated for one log before it becomes frames (tests inspect it).

    ``lights (T, M)`` node light states; ``movers[0]`` is the ego, ``movers[1:]`` drive ``vehicles``;
    ``result`` holds every mover's path coordinate, speed and acceleration per step.
    """

    situation: Situation
    times_s: npt.NDArray[np.float64]
    signals: tuple[IntersectionSignals, ...]
    lights: npt.NDArray[np.int8]
    movers: tuple[Mover, ...]
    vehicles: tuple[Vehicle, ...]
    pedestrians: Pedestrians
    props: tuple[Prop, ...]
    result: SimResult
    ego: EgoTrack


@dataclass(frozen=True)
class WorldSimulation:
    """Every log of a world, simulated but not yet recorded as frames (tests inspect it)."""

    config: WorldConfig
    graph: LaneGraph
    logs: tuple[LogSimulation, ...]


def build_world(config: WorldConfig = WorldConfig()) -> World:
    """Build the map and every log of the embedded world (deterministic in ``config``)."""
    return assemble_world(simulate_world(config))


def simulate_world(config: WorldConfig = WorldConfig()) -> WorldSimulation:
    """Build the map and simulate every log (the first half of :func:`build_world`)."""
    graph = build_lane_graph(build_road_map(config.seed))
    return WorldSimulation(
        config, graph, tuple(simulate_log(graph, config, i) for i in range(config.num_logs))
    )


def assemble_world(sim: WorldSimulation) -> World:
    """Record simulated logs as frames and split them (the second half of :func:`build_world`)."""
    config = sim.config
    logs = tuple(_assemble(sim.graph, config, i, log) for i, log in enumerate(sim.logs))
    order = sorted(range(config.num_logs), key=lambda i: (i % 2, i))
    n = config.num_logs
    n_test = int(np.floor(n * config.test_fraction + 0.5))
    if n >= 2 and 0.0 < config.test_fraction < 1.0:
        n_test = min(max(n_test, 1), n - 1)
    test = set(order[:n_test])
    splits = {
        "train": tuple(logs[i].name for i in range(n) if i not in test),
        "test": tuple(logs[i].name for i in range(n) if i in test),
    }
    return World(sim.graph.road_map, logs, splits)


def _token(*parts: object) -> str:
    return hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=8).hexdigest()


def _log_name_and_start(seed: int, index: int, steps: int) -> tuple[str, int]:
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, index, 0x4E414D45])
    start_s = (int(seed) % 180) * 86400 + index * 2237 + int(rng.integers(0, 600)) + 16 * 3600
    start_us = EPOCH_US + start_s * 1_000_000 + int(rng.integers(0, 1_000_000))
    when = dt.datetime.fromtimestamp(start_us / 1e6, tz=dt.UTC).strftime("%Y.%m.%d.%H.%M.%S")
    first = int(rng.integers(100, 9000))
    return f"{when}_veh-{int(rng.integers(10, 60)):02d}_{first:05d}_{first + 2 * steps:05d}", start_us


def _signals(graph: LaneGraph, sit: Situation, rng: np.random.Generator) -> list[IntersectionSignals]:
    out = []
    for name in sorted(INTERSECTIONS):
        order = [inbound_roadblock_id(name, arm) for arm in PHASE_ARMS]
        sig = make_signals(graph.road_map, intersection_id(name), order, 0.0)
        want = [(arm, t) for inter, arm, t in sit.greens if inter == name]
        offset = (
            sig.offset_for_green(inbound_roadblock_id(name, want[0][0]), want[0][1])
            if want
            else float(rng.uniform(0.0, sig.cycle_s))
        )
        out.append(make_signals(graph.road_map, intersection_id(name), order, offset))
    return out


def simulate_log(graph: LaneGraph, config: WorldConfig, index: int) -> LogSimulation:
    """Set up log ``index``'s situation (ego, signals, traffic, pedestrians, props) and simulate it."""
    sit = SITUATIONS[index % len(SITUATIONS)]
    rng = np.random.default_rng([int(config.seed) & 0xFFFFFFFF, index])
    steps = max(2, int(round(config.duration_s / DT_S)))
    times = np.arange(steps) * DT_S
    signals = _signals(graph, sit, rng)
    lights = node_light_states(graph, signals, times)

    # The ego and what its situation reserves on the lanes at t = 0.
    road, forward, idx = sit.lane
    node = graph.index[lane_id(road, forward, idx)]
    lane_len = float(graph.length[node])
    rear_axle = sit.position_m if sit.position_m >= 0 else lane_len + sit.position_m
    change = None
    if sit.lane_change is not None:
        change = LaneChange(
            lane_id(road, forward, sit.lane_change[0]), sit.lane_change[1], sit.lane_change[2]
        )
    plan = EgoPlan(graph.ids[node], rear_axle, sit.speed_mps, sit.turns, change)
    reach = config.duration_s * 17.0 + 150.0
    path = ego_path(graph, plan, rear_axle + reach, rng)
    front, rear = rear_axle + FRONT_FROM_REAR_AXLE_M, rear_axle - REAR_FROM_REAR_AXLE_M
    reserved = [Reserved(node, rear, front, sit.speed_mps)]
    ahead = lane_len if sit.clear_ahead_m is None else front + sit.clear_ahead_m
    if sit.queue_ahead is not None:
        ahead = min(ahead, lane_len - 8.0 * sit.queue_ahead - 2.0)
    reserved.append(Reserved(node, front, ahead))
    forbidden: frozenset[int] = frozenset()
    extra: list[Vehicle] = []
    props: list[Prop] = []
    if change is not None:
        target = graph.index[change.target_lane_id]
        reserved.append(Reserved(target, rear - 50.0, float(graph.length[target])))
    if sit.obstacle_m is not None:
        half = BROKEN_CAR_SIZE_LWH[0] / 2
        reserved.append(Reserved(node, sit.obstacle_m - half, sit.obstacle_m + half, 0.0))
        forbidden = frozenset({node})
        extra.append(
            Vehicle(
                Mover(build_path(graph, [node]), sit.obstacle_m, 0.0, half, half, frozen=True),
                "vehicle",
                BROKEN_CAR_SIZE_LWH,
            )
        )
        props += work_zone(graph, node, sit.obstacle_m, 2 * half)
    queues = {node: sit.queue_ahead} if sit.queue_ahead is not None else {}
    spec = TrafficSpec(
        sit.mean_free_gap_m, 6 if sit.busy else 3, queues, forbidden, tuple(reserved), sit.bicycles
    )
    vehicles = place_traffic(graph, spec, lights[0], rng, reach) + extra
    crossers = {crosswalk_id(i, a): n for i, a, n in sit.crossers}
    # Strollers gather where the ego will be a quarter into the log, so busy logs are busy around it.
    near, _ = path.interpolate(rear_axle + 0.25 * config.duration_s * max(sit.speed_mps, 4.0))
    props += parked_cars(graph, rng) + kerb_clutter(graph, rng, 12 if sit.busy else 6, near)
    walkers = plan_pedestrians(
        graph,
        signals,
        times,
        rng,
        crossers=(1, 4) if sit.busy else (0, 2),
        forced_crossers=crossers,
        strollers=30 if sit.busy else 12,
        near_xy=near,
        avoid_xy=np.array([p.xy for p in props]).reshape(-1, 2),
    )

    movers = (ego_mover(path, plan), *(v.mover for v in vehicles))
    result = simulate(graph, movers, lights, walkers.crossers)
    peds = evaluate_pedestrians(walkers, times, result.departures_s)
    ego = ego_track(graph, path, result.s[:, 0], result.v[:, 0], result.a[:, 0])
    return LogSimulation(
        sit, times, tuple(signals), lights, movers, tuple(vehicles), peds, tuple(props), result, ego
    )


def _assemble(graph: LaneGraph, config: WorldConfig, index: int, log: LogSimulation) -> WorldLog:
    """Turn simulated states into frames of :class:`ObjectStates` (vehicles, pedestrians, static props)."""
    sim, vehicles, peds, props, ego, lights = (
        log.result,
        log.vehicles,
        log.pedestrians,
        log.props,
        log.ego,
        log.lights,
    )
    steps = len(log.times_s)
    xy_v, yaw_v = (
        path_poses([v.mover.path for v in vehicles], sim.s[:, 1:])
        if vehicles
        else (np.zeros((steps, 0, 2)), np.zeros((steps, 0)))
    )
    vel_v = sim.v[:, 1:, None] * np.stack([np.cos(yaw_v), np.sin(yaw_v)], axis=-1)
    n_p = len(props)
    xy_s = np.broadcast_to(np.array([p.xy for p in props]).reshape(1, n_p, 2), (steps, n_p, 2))
    yaw_s = np.broadcast_to(np.array([p.yaw_rad for p in props]).reshape(1, n_p), (steps, n_p))
    xy = np.concatenate([xy_v, peds.xy, xy_s], axis=1)
    yaw = np.concatenate([yaw_v, peds.heading, yaw_s], axis=1)
    vel = np.concatenate([vel_v, peds.velocity, np.zeros((steps, n_p, 2))], axis=1)
    sizes = np.concatenate(
        [
            np.array([v.size_lwh for v in vehicles]).reshape(-1, 3),
            peds.size_lwh,
            np.array([p.size_lwh for p in props]).reshape(-1, 3),
        ]
    )
    cats = (
        tuple(v.category for v in vehicles) + ("pedestrian",) * len(peds) + tuple(p.category for p in props)
    )
    tokens = tuple(_token(config.seed, index, "track", k) for k in range(len(cats)))
    center = np.concatenate([xy, np.broadcast_to(sizes[None, :, 2:] / 2, (steps, len(cats), 1))], axis=2)
    for arr in (center, sizes, yaw, vel):
        arr.setflags(write=False)

    signal_nodes = np.nonzero(graph.approach >= 0)[0]
    signal_nodes = signal_nodes[np.argsort([graph.ids[k] for k in signal_nodes])]
    signal_ids = [graph.ids[k] for k in signal_nodes]
    red = lights[:, signal_nodes] == RED
    light_cache: dict[bytes, tuple[tuple[int, bool], ...]] = {}
    name, start_us = _log_name_and_start(config.seed, index, steps)
    frames = []
    for t in range(steps):
        key = red[t].tobytes()
        if key not in light_cache:
            light_cache[key] = tuple((i, bool(r)) for i, r in zip(signal_ids, red[t]))
        objects = ObjectStates(tokens, cats, center[t], sizes, yaw[t], vel[t])
        frames.append(
            WorldFrame(
                start_us + t * 100_000,
                ego.pose[t],
                ego.velocity[t],
                ego.acceleration[t],
                objects,
                light_cache[key],
                ego.route[t],
                DrivingCommand(int(ego.command[t])),
            )
        )
    seed = int.from_bytes(
        hashlib.blake2b(f"{config.seed}/{index}/log".encode(), digest_size=4).digest(), "little"
    )
    return WorldLog(name, graph.road_map, tuple(frames), seed & 0x7FFFFFFF)
