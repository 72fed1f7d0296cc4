"""Human log replay: the logged future as the plan. Privileged (it reads the targets); an upper reference."""

from __future__ import annotations

from collections.abc import Sequence

from harness.agents.base import SensorNeeds
from harness.errors import DataError
from harness.trajectory import Trajectory, TrajectorySampling
from harness.types import Sample


class HumanAgent:
    """Replays ``sample.targets.future`` resampled to the asked sampling (NAVSIM's ``HumanAgent``)."""

    name = "human"
    privileged = True

    def sensor_needs(self) -> SensorNeeds:
        return SensorNeeds()

    def plan_from_samples(self, samples: Sequence[Sample], sampling: TrajectorySampling) -> list[Trajectory]:
        out = []
        for s in samples:
            if s.targets.future is None:
                raise DataError("the human agent needs the logged future, which this sample lacks",
                                token=s.meta.token)
            out.append(s.targets.future.resample(sampling))
        return out
