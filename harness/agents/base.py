"""The policy contract: declare the sensors you need, map observations to trajectories, batched."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from harness.trajectory import Trajectory, TrajectorySampling
from harness.types import Observation, Sample


@dataclass(frozen=True)
class SensorNeeds:
    """Sensors a policy reads at the current frame (the runner loads only these)."""

    cameras: tuple[str, ...] = ()
    lidar: bool = False


@runtime_checkable
class Policy(Protocol):
    """A driving policy. ``privileged`` marks policies that read ground truth (human log replay)."""

    name: str
    privileged: bool

    def sensor_needs(self) -> SensorNeeds: ...

    def plan(self, observations: Sequence[Observation], sampling: TrajectorySampling) -> list[Trajectory]:
        """One trajectory per observation, in the canonical ego frame, at ``sampling``."""
        ...


@runtime_checkable
class PrivilegedPolicy(Protocol):
    """A policy that reads ground truth (e.g. human log replay). Its results are marked privileged."""

    name: str
    privileged: bool

    def sensor_needs(self) -> SensorNeeds: ...

    def plan_from_samples(self, samples: Sequence[Sample], sampling: TrajectorySampling) -> list[Trajectory]:
        """One trajectory per sample; may read ``sample.targets``."""
        ...
