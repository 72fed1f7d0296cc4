"""Fixtures for the world-generator tests: the map, its lane graph and the default world (built once)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

from harness.maps import RoadMap
from harness.world.build import (
    LogSimulation,
    World,
    WorldConfig,
    WorldSimulation,
    assemble_world,
    simulate_world,
)
from harness.world.lanegraph import LaneGraph, build_lane_graph
from harness.world.roads import build_road_map


@dataclass(frozen=True)
class TimedWorld:
    """The default world, its simulation (movers, paths, lights) and the CPU time the build took."""

    simulation: WorldSimulation
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
    # build_world(WorldConfig()) in its two halves, so that tests can also inspect the simulation. CPU time,
    # not wall time: other jobs on a shared machine must not make the speed test flaky.
    start = time.process_time()
    simulation = simulate_world(WorldConfig())
    world = assemble_world(simulation)
    return TimedWorld(simulation, world, time.process_time() - start)


@pytest.fixture(scope="session")
def default_sims(default_world: TimedWorld) -> tuple[LogSimulation, ...]:
    """The default world's logs before they became frames (movers, paths, lights) for rule checks."""
    return default_world.simulation.logs
