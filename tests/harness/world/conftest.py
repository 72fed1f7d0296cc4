"""Fixtures for the world-generator tests: the map, its lane graph and the default world (built once)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

from harness.maps import RoadMap
from harness.world.build import LogSimulation, World, WorldConfig, build_world, simulate_log
from harness.world.lanegraph import LaneGraph, build_lane_graph
from harness.world.roads import build_road_map


@dataclass(frozen=True)
class TimedWorld:
    world: World
    seconds: float

    def __repr__(self) -> str:
        return f"TimedWorld({self.world!r}, built in {self.seconds:.2f} CPU s)"


@pytest.fixture(scope="session")
def world_map() -> RoadMap:
    return build_road_map(0)


@pytest.fixture(scope="session")
def world_graph(world_map: RoadMap) -> LaneGraph:
    return build_lane_graph(world_map)


@pytest.fixture(scope="session")
def default_world() -> TimedWorld:
    # CPU time, not wall time: other jobs on a shared machine must not make the speed test flaky.
    start = time.process_time()
    world = build_world(WorldConfig())
    return TimedWorld(world, time.process_time() - start)


@pytest.fixture(scope="session")
def default_sims(world_graph: LaneGraph) -> tuple[LogSimulation, ...]:
    """The default world's logs before they become frames (movers, paths, lights) for rule checks."""
    config = WorldConfig()
    return tuple(simulate_log(world_graph, config, i) for i in range(config.num_logs))
