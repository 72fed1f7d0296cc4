"""Interop with NAVSIM's own environment, simulated: classes registered under navsim's and nuPlan's module
paths with the field layout of the real ``Trajectory`` and ``TrajectorySampling``.

Plain ``pickle`` (the C pickler NAVSIM's scripts use, STACK_GLOBAL opcodes) writes submissions from these
classes, under numpy 2's ``numpy._core`` names or, through ``dumps_compatible``, numpy 1.x's
``numpy.core.multiarray`` names, as NAVSIM's numpy 1.23 environment does; lead-bench must read both. And a
lead-bench submission, loaded with plain ``pickle.loads``, must build these classes with the same state as
NAVSIM's agents produce.
"""

from __future__ import annotations

import math
import pickle
import sys
import types
from dataclasses import dataclass, field

import numpy as np
import pytest

from harness.safe_pickle import dumps_compatible
from harness.trajectory import NAVSIM_SAMPLING, Trajectory, TrajectorySampling
from submissions.navsim import SubmissionMetadata, read_submission, write_submission_v1, write_submission_v2

NAVSIM_MODULE = "navsim.common.dataclasses"
NUPLAN_MODULE = "nuplan.planning.simulation.trajectory.trajectory_sampling"


@dataclass
class FakeTrajectorySampling:
    """Field layout of nuPlan's TrajectorySampling: any two of the three given, the third completed."""

    num_poses: int | None = None
    time_horizon: float | None = None
    interval_length: float | None = None

    def __post_init__(self) -> None:
        if self.time_horizon:
            self.time_horizon = float(self.time_horizon)
        if self.interval_length:
            self.interval_length = float(self.interval_length)
        if self.num_poses is None:
            self.num_poses = int(self.time_horizon / self.interval_length)
        elif self.time_horizon is None:
            self.time_horizon = self.num_poses * self.interval_length
        elif self.interval_length is None:
            self.interval_length = self.time_horizon / self.num_poses

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, FakeTrajectorySampling) and other.num_poses == self.num_poses
                and math.isclose(other.time_horizon, self.time_horizon)
                and math.isclose(other.interval_length, self.interval_length))

    __hash__ = None  # type: ignore[assignment]


@dataclass
class FakeTrajectory:
    """Field layout of navsim.common.dataclasses.Trajectory."""

    poses: np.ndarray
    trajectory_sampling: FakeTrajectorySampling = field(
        default_factory=lambda: FakeTrajectorySampling(time_horizon=4, interval_length=0.5))


#: Pickled under the real paths; the navsim_modules fixture makes those paths resolve to these classes.
CLASS_PATHS = ((FakeTrajectory, NAVSIM_MODULE, "Trajectory"),
               (FakeTrajectorySampling, NUPLAN_MODULE, "TrajectorySampling"))
for _cls, _module, _name in CLASS_PATHS:
    _cls.__module__, _cls.__qualname__ = _module, _name


@pytest.fixture
def navsim_modules(monkeypatch):
    """Register the fake classes under the real paths (and their parent packages) for one test."""
    for cls, module, name in CLASS_PATHS:
        parts = module.split(".")
        for i in range(1, len(parts) + 1):
            monkeypatch.setitem(sys.modules, ".".join(parts[:i]), types.ModuleType(".".join(parts[:i])))
        setattr(sys.modules[module], name, cls)
    return FakeTrajectory, FakeTrajectorySampling


def official_style(seeds, *, dtype=np.float32, **stages):
    """A submission dict as NAVSIM's run_create_submission_pickle.py builds it, from fake-class objects."""
    sampling = FakeTrajectorySampling(time_horizon=4, interval_length=0.5)  # one per agent, shared
    out = {"team_name": "official", "authors": ["A", "B"], "email": "a@b.org", "institution": "I",
           "country / region": "C"}
    lists = {"predictions": seeds} if seeds is not None else stages
    for key, value in lists.items():
        out[key] = [{t: FakeTrajectory(p.astype(dtype), sampling) for t, p in s.items()} for s in value]
    return out


def poses_by_token(n_tokens: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {f"{seed:02d}{i:014x}": rng.normal(scale=10.0, size=(8, 3)) for i in range(n_tokens)}


@pytest.mark.parametrize(("numpy_names", "protocol"), [
    ("numpy1", 2), ("numpy1", 4), ("numpy2", 2), ("numpy2", 4), ("numpy2", 5)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])  # learned agents / the human agent
def test_reads_submissions_written_with_navsims_classes(tmp_path, navsim_modules, numpy_names, protocol, dtype):
    seeds = [poses_by_token(4, 0), poses_by_token(4, 0)]
    obj = official_style(seeds, dtype=dtype)
    # numpy1: the C pickler's STACK_GLOBAL class paths with numpy 1.x's module names, as NAVSIM's numpy 1.23
    # environment writes them (protocol 4 is its default); numpy2: plain pickle under numpy 2.
    data = dumps_compatible(obj, protocol=protocol) if numpy_names == "numpy1" else pickle.dumps(obj, protocol)
    assert b"navsim.common.dataclasses" in data and b"Trajectory" in data
    if numpy_names == "numpy1":
        assert b"numpy._core" not in data and b"numpy.core" in data
    path = tmp_path / "submission.pkl"
    path.write_bytes(data)

    sub = read_submission(path)
    assert sub.version == 1 and sub.num_seeds == 2
    assert sub.metadata == SubmissionMetadata("official", ("A", "B"), "a@b.org", "I", "C")
    for written, read in zip(seeds, sub.predictions, strict=True):
        assert list(read) == list(written)
        for token, poses in written.items():
            assert read[token].sampling == NAVSIM_SAMPLING
            np.testing.assert_array_equal(read[token].poses, poses.astype(dtype).astype(np.float64))


def test_reads_a_v2_submission_written_with_navsims_classes(tmp_path, navsim_modules):
    first, second = poses_by_token(3, 1), poses_by_token(5, 2)
    path = tmp_path / "submission.pkl"
    path.write_bytes(dumps_compatible(official_style(None, first_stage_predictions=[first],
                                                     second_stage_predictions=[second])))
    sub = read_submission(path)
    assert sub.version == 2
    assert list(sub.first_stage) == list(first) and list(sub.second_stage) == list(second)
    np.testing.assert_array_equal(sub.second_stage[next(iter(second))].poses,
                                  next(iter(second.values())).astype(np.float32).astype(np.float64))


def test_plain_pickle_load_builds_navsims_classes_with_their_state(tmp_path, navsim_modules):
    seeds = [poses_by_token(5, 3), poses_by_token(5, 3)]
    meta = SubmissionMetadata("official", ["A", "B"], "a@b.org", "I", "C")
    path = tmp_path / "submission.pkl"
    write_submission_v1(path, [{t: Trajectory(p) for t, p in s.items()} for s in seeds], meta)

    loaded = pickle.loads(path.read_bytes())  # no restrictions, as the leaderboard loads it
    expected = official_style(seeds)
    assert list(loaded) == list(expected)
    assert {k: loaded[k] for k in list(loaded)[:5]} == {k: expected[k] for k in list(expected)[:5]}
    for got_seed, want_seed in zip(loaded["predictions"], expected["predictions"], strict=True):
        assert list(got_seed) == list(want_seed)
        for token, want in want_seed.items():
            got = got_seed[token]
            assert type(got) is FakeTrajectory and type(got.trajectory_sampling) is FakeTrajectorySampling
            assert vars(got.trajectory_sampling) == vars(want.trajectory_sampling)
            assert got.poses.dtype == want.poses.dtype == np.float32
            np.testing.assert_array_equal(got.poses, want.poses)
    # Re-pickled, the loaded object is byte-identical to the one built the official way.
    assert pickle.dumps(loaded) == pickle.dumps(expected)


def test_v2_writer_output_loads_as_navsims_classes(tmp_path, navsim_modules):
    first = {t: Trajectory(p) for t, p in poses_by_token(2, 4).items()}
    second = {t: Trajectory(p) for t, p in poses_by_token(3, 5).items()}
    path = tmp_path / "submission.pkl"
    write_submission_v2(path, first, second, SubmissionMetadata("t", "A", "a@b.org", "I", "C"))
    loaded = pickle.loads(path.read_bytes())
    samplings = {id(tr.trajectory_sampling) for key in ("first_stage_predictions", "second_stage_predictions")
                 for tr in loaded[key][0].values()}
    assert len(samplings) == 1  # one agent, one sampling object, as NAVSIM's writer produces
    sampling = loaded["first_stage_predictions"][0][next(iter(first))].trajectory_sampling
    assert sampling == FakeTrajectorySampling(time_horizon=4, interval_length=0.5)
    assert TrajectorySampling(sampling.num_poses, sampling.interval_length) == NAVSIM_SAMPLING
