"""NAVSIM submission pickles: round trips, what the file names, validation before writing, safe reading."""

from __future__ import annotations

import os
import pickle
import pickletools

import numpy as np
import pytest

import submissions.navsim as navsim_submission
from harness.errors import DataError
from harness.safe_pickle import dumps_with_global_names, load_restricted
from harness.trajectory import NAVSIM_SAMPLING, Trajectory, TrajectorySampling
from submissions.navsim import (
    NavsimSubmission,
    SubmissionMetadata,
    SubmissionValidationError,
    read_submission,
    write_submission_v1,
    write_submission_v2,
)
from submissions.navsim_classes import (
    GLOBAL_NAMES,
    SUBSTITUTES,
    NavsimTrajectory,
    NuplanTrajectorySampling,
)

META = SubmissionMetadata("<a href=https://example.org/lead>LEAD</a>", ["Ada Lovelace", "Alan Turing"],
                          "team@example.org", "Example University", "Germany")
TOKENS = [f"{i:016x}" for i in range(6)]

#: Every global a lead-bench submission may name: the two navsim/nuPlan classes and numpy 1.x's paths.
ALLOWED_GLOBALS = {
    ("navsim.common.dataclasses", "Trajectory"),
    ("nuplan.planning.simulation.trajectory.trajectory_sampling", "TrajectorySampling"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


def trajectories(seed: int, tokens=TOKENS) -> dict[str, Trajectory]:
    rng = np.random.default_rng(seed)
    return {t: Trajectory(rng.normal(scale=5.0, size=(8, 3))) for t in tokens}


def f32(traj: Trajectory) -> np.ndarray:
    """What a submission stores: the poses rounded to float32."""
    return traj.poses.astype(np.float32).astype(np.float64)


def broken_trajectory(poses: np.ndarray, sampling: TrajectorySampling = NAVSIM_SAMPLING) -> Trajectory:
    """A Trajectory whose construction-time checks were bypassed, as a buggy caller might produce."""
    traj = object.__new__(Trajectory)
    object.__setattr__(traj, "poses", poses)
    object.__setattr__(traj, "sampling", sampling)
    return traj


def pickle_globals(data: bytes) -> tuple[list[tuple[str, str]], set[str]]:
    """(module, name) of every GLOBAL opcode, and the names of all opcodes, via pickletools.genops."""
    found, ops = [], set()
    for op, arg, _ in pickletools.genops(data):
        ops.add(op.name)
        if op.name == "GLOBAL":
            module, name = arg.split(" ", 1)
            found.append((module, name))
    return found, ops


# --- round trips ----------------------------------------------------------------------------------------


def test_v1_round_trip_keeps_seeds_tokens_metadata_and_float32_values(tmp_path):
    seeds = [trajectories(0), trajectories(1), trajectories(2)]
    path = tmp_path / "out" / "submission.pkl"
    write_submission_v1(path, seeds, META, expected_tokens=TOKENS)

    sub = read_submission(path)
    assert isinstance(sub, NavsimSubmission)
    assert sub.version == 1 and sub.num_seeds == 3
    assert sub.metadata == META and sub.metadata.authors == ("Ada Lovelace", "Alan Turing")
    for written, read in zip(seeds, sub.predictions, strict=True):
        assert list(read) == list(written)
        for token, traj in written.items():
            assert read[token].sampling == NAVSIM_SAMPLING
            np.testing.assert_array_equal(read[token].poses, f32(traj))
            np.testing.assert_allclose(read[token].poses, traj.poses, rtol=1e-6, atol=1e-6)
    assert [p.name for p in path.parent.iterdir()] == ["submission.pkl"]  # no temporary file left


def test_v1_file_holds_navsims_layout_float32_and_one_shared_sampling(tmp_path):
    path = tmp_path / "submission.pkl"
    write_submission_v1(path, [trajectories(0)], SubmissionMetadata("t", "A. Author", "a@b.org", "I", "FR"))
    raw = load_restricted(path, substitutes=SUBSTITUTES)
    assert list(raw) == ["team_name", "authors", "email", "institution", "country / region", "predictions"]
    assert raw["authors"] == "A. Author" and raw["country / region"] == "FR"
    (seed,) = raw["predictions"]
    samplings = set()
    for traj in seed.values():
        assert isinstance(traj, NavsimTrajectory)
        assert list(vars(traj)) == ["poses", "trajectory_sampling"]
        assert traj.poses.dtype == np.float32 and traj.poses.shape == (8, 3)
        state = vars(traj.trajectory_sampling)
        # What nuPlan's TrajectorySampling(time_horizon=4, interval_length=0.5) holds after __post_init__.
        assert state == {"num_poses": 8, "time_horizon": 4.0, "interval_length": 0.5}
        assert [type(v) for v in state.values()] == [int, float, float]
        samplings.add(id(traj.trajectory_sampling))
    assert len(samplings) == 1


def test_v2_round_trip_writes_each_stage_as_a_list_of_one_dict(tmp_path):
    first = trajectories(3, TOKENS[:3])
    second = trajectories(4, [t + "-synthetic" for t in TOKENS])
    path = tmp_path / "submission.pkl"
    write_submission_v2(path, first, second, META, expected_first=TOKENS[:3], expected_second=list(second))

    raw = load_restricted(path, substitutes=SUBSTITUTES)
    assert list(raw)[-2:] == ["first_stage_predictions", "second_stage_predictions"]
    assert isinstance(raw["first_stage_predictions"], list) and len(raw["first_stage_predictions"]) == 1
    sub = read_submission(path)
    assert sub.version == 2 and sub.num_seeds == 1 and sub.predictions == ()
    for written, read in ((first, sub.first_stage), (second, sub.second_stage)):
        assert list(read) == list(written)
        for token, traj in written.items():
            np.testing.assert_array_equal(read[token].poses, f32(traj))
    with pytest.raises(ValueError, match="only in v2"):
        _ = read_submission(_write_v1(tmp_path / "v1.pkl")).first_stage


def _write_v1(path):
    write_submission_v1(path, [trajectories(0)], META)
    return path


# --- what the file names --------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [1, 2])
def test_globals_are_exactly_navsim_nuplan_and_numpy1_paths(tmp_path, version):
    path = tmp_path / "submission.pkl"
    if version == 1:
        write_submission_v1(path, [trajectories(0), trajectories(1)], META)
    else:
        write_submission_v2(path, trajectories(0), trajectories(1, ["x", "y"]), META)
    data = path.read_bytes()
    found, ops = pickle_globals(data)
    assert set(found) == ALLOWED_GLOBALS
    assert len(found) == len(set(found))  # each written once, then memoised
    # Every class reference is a GLOBAL, so the list above is complete.
    assert not ops & {"STACK_GLOBAL", "INST", "OBJ", "EXT1", "EXT2", "EXT4"}
    for forbidden in (b"numpy._core", b"harness", b"submissions"):
        assert forbidden not in data, forbidden


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_named_globals_pickler_writes_only_globals_and_numpy1_names(protocol):
    obj = {"t": NavsimTrajectory(np.arange(24, dtype=np.float32).reshape(8, 3),
                                 NuplanTrajectorySampling(8, 4.0, 0.5)), "s": np.float64(2.5)}
    data = dumps_with_global_names(obj, GLOBAL_NAMES, protocol=protocol)
    found, ops = pickle_globals(data)
    assert b"numpy._core" not in data and "STACK_GLOBAL" not in ops
    assert ("navsim.common.dataclasses", "Trajectory") in found
    assert all(module.split(".")[0] in {"numpy", "navsim", "nuplan", "_codecs"} for module, _ in found)


# --- validation before writing --------------------------------------------------------------------------


def _assert_refused(tmp_path, match, write):
    path = tmp_path / "submission.pkl"
    with pytest.raises(SubmissionValidationError, match=match) as info:
        write(path)
    assert not path.exists() and list(tmp_path.iterdir()) == []
    return info.value


def test_missing_and_extra_tokens_are_listed(tmp_path):
    preds = trajectories(0, TOKENS[:-1] + ["not-a-navtest-token"])
    err = _assert_refused(tmp_path, "1 missing token", lambda p: write_submission_v1(
        p, [preds], META, expected_tokens=TOKENS))
    assert TOKENS[-1] in str(err) and "not-a-navtest-token" in str(err) and "predictions[0]" in str(err)


def test_seeds_with_different_token_sets_are_refused(tmp_path):
    seeds = [trajectories(0), trajectories(1, TOKENS[1:])]
    err = _assert_refused(tmp_path, r"predictions\[1\] differs from predictions\[0\]",
                          lambda p: write_submission_v1(p, seeds, META))
    assert TOKENS[0] in str(err)


def test_v2_token_in_both_stages_is_refused(tmp_path):
    err = _assert_refused(tmp_path, "both stages", lambda p: write_submission_v2(
        p, trajectories(0, TOKENS[:3]), trajectories(1, TOKENS[2:]), META))
    assert TOKENS[2] in str(err) and TOKENS[3] not in str(err)


def test_every_bad_trajectory_is_named(tmp_path):
    preds = trajectories(0)
    preds[TOKENS[1]] = Trajectory(np.zeros((7, 3)), TrajectorySampling(7, 0.5))
    preds[TOKENS[2]] = Trajectory(np.zeros((8, 3)), TrajectorySampling(8, 0.25))
    nan = np.zeros((8, 3))
    nan[5, 2] = np.nan
    preds[TOKENS[3]] = broken_trajectory(nan)
    preds[TOKENS[4]] = Trajectory(np.full((8, 3), 1e39))  # finite in float64, inf once written as float32
    preds[TOKENS[5]] = np.zeros((8, 3))
    err = _assert_refused(tmp_path, "5 problem", lambda p: write_submission_v1(p, [preds], META))
    by_token = {t: [line for line in err.problems if t in line] for t in TOKENS[1:]}
    assert "7 poses every 0.5 s" in by_token[TOKENS[1]][0]
    assert "8 poses every 0.25 s" in by_token[TOKENS[2]][0]
    assert "poses[5, 2] (heading) is nan" in by_token[TOKENS[3]][0]
    assert "float32" in by_token[TOKENS[4]][0]
    assert "got ndarray" in by_token[TOKENS[5]][0]


@pytest.mark.parametrize(("field", "value", "match"), [
    ("team_name", "  ", "team_name is not set"),
    ("authors", [], "authors must name at least one author"),
    ("authors", ["A", ""], "authors must name"),
    ("email", "team.example.org", "email is not an e-mail address"),
    ("institution", "", "institution is not set"),
    ("country_region", "MUST_SET", "country_region is not set"),
])
def test_incomplete_metadata_is_refused_naming_the_field(tmp_path, field, value, match):
    fields = {"team_name": "t", "authors": "A", "email": "a@b.org", "institution": "I", "country_region": "C"}
    metadata = SubmissionMetadata(**{**fields, field: value})
    _assert_refused(tmp_path, match, lambda p: write_submission_v1(p, [trajectories(0)], metadata))


def test_metadata_types_are_checked_on_construction():
    with pytest.raises(ValueError, match="team_name must be a str"):
        SubmissionMetadata(None, "A", "a@b.org", "I", "C")
    with pytest.raises(ValueError, match="authors must be a str or a list of str"):
        SubmissionMetadata("t", ["A", 3], "a@b.org", "I", "C")


def test_shape_of_the_predictions_argument_is_checked(tmp_path):
    _assert_refused(tmp_path, "wrap a single seed in a list",
                    lambda p: write_submission_v1(p, trajectories(0), META))
    _assert_refused(tmp_path, "holds no seed", lambda p: write_submission_v1(p, [], META))
    _assert_refused(tmp_path, "no tokens to predict", lambda p: write_submission_v1(p, [{}], META))
    _assert_refused(tmp_path, "second_stage_predictions must be one",
                    lambda p: write_submission_v2(p, trajectories(0), [trajectories(1)], META))
    _assert_refused(tmp_path, r"first_stage_predictions\[0\] differs from the expected tokens",
                    lambda p: write_submission_v2(p, trajectories(0), trajectories(1), META,
                                                  expected_first=TOKENS[:2]))


# --- atomic writing -------------------------------------------------------------------------------------


def test_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "submission.pkl"
    write_submission_v1(path, [trajectories(0)], META)
    before = path.read_bytes()

    with pytest.raises(SubmissionValidationError):
        write_submission_v1(path, [trajectories(1, TOKENS[:2])], META, expected_tokens=TOKENS)
    assert path.read_bytes() == before

    def corrupt_read_back(p):
        raise DataError("simulated read-back failure", path=p)

    monkeypatch.setattr(navsim_submission, "read_submission", corrupt_read_back)
    with pytest.raises(DataError, match="simulated read-back failure"):
        write_submission_v1(path, [trajectories(2)], META)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["submission.pkl"]


def test_read_back_mismatch_is_an_error(tmp_path, monkeypatch):
    real = navsim_submission.read_submission

    def drop_a_token(p):
        sub = real(p)
        seed = dict(sub.predictions[0])
        seed.pop(TOKENS[0])
        return NavsimSubmission(1, sub.metadata, predictions=(seed,))

    monkeypatch.setattr(navsim_submission, "read_submission", drop_a_token)
    path = tmp_path / "submission.pkl"
    with pytest.raises(DataError, match="does not read back as written"):
        write_submission_v1(path, [trajectories(0)], META)
    assert list(tmp_path.iterdir()) == []


# --- reading others' files ------------------------------------------------------------------------------


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_code_in_a_submission_is_refused_naming_file_and_class(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"team_name": "x", "predictions": [{"t": Evil()}]}))
    with pytest.raises(DataError, match=r"refusing to unpickle \w+\.system") as info:
        read_submission(path)
    assert str(path) in str(info.value)


def test_a_pickle_of_lead_bench_objects_is_refused(tmp_path):
    path = tmp_path / "wrong.pkl"
    path.write_bytes(pickle.dumps({"predictions": [trajectories(0)]}))
    with pytest.raises(DataError, match="refusing to unpickle harness.trajectory.Trajectory"):
        read_submission(path)


def _raw_submission(**overrides):
    sampling = NuplanTrajectorySampling(8, 4.0, 0.5)
    good = {t: NavsimTrajectory(np.zeros((8, 3), np.float32), sampling) for t in TOKENS[:2]}
    raw = {**META.to_navsim_dict(), "predictions": [good]}
    raw.update(overrides)
    return {k: v for k, v in raw.items() if v is not None}


def _write_raw(tmp_path, obj) -> str:
    path = tmp_path / "submission.pkl"
    path.write_bytes(dumps_with_global_names(obj, GLOBAL_NAMES))
    return path


@pytest.mark.parametrize(("bad", "match"), [
    (np.full((8, 3), np.nan, np.float32), r"poses\[0, 0\] \(x\) is nan"),
    (np.zeros((8, 2), np.float32), r"shape \(N, 3\)"),
    (np.zeros((7, 3), np.float32), "7 poses but its sampling says 8"),
    (np.zeros((8, 3), bool), "real numbers"),
    ([[0.0] * 3] * 8, "must be a numpy array"),
])
def test_bad_poses_in_a_file_name_the_token(tmp_path, bad, match):
    sampling = NuplanTrajectorySampling(8, 4.0, 0.5)
    raw = _raw_submission(predictions=[{"tok-ok": NavsimTrajectory(np.zeros((8, 3), np.float32), sampling),
                                        "tok-bad": NavsimTrajectory(bad, sampling)}])
    path = _write_raw(tmp_path, raw)
    with pytest.raises(DataError, match=match) as info:
        read_submission(path)
    assert info.value.token == "tok-bad" and r"predictions[0]" in str(info.value) and str(path) in str(info.value)


@pytest.mark.parametrize(("sampling", "match"), [
    (NuplanTrajectorySampling(8, 3.0, 0.5), "inconsistent"),
    (NuplanTrajectorySampling(8.0, 4.0, 0.5), "num_poses must be a positive int"),
    (NuplanTrajectorySampling(8, 4.0, None), "interval_length must be a finite positive number"),
    ("8 at 0.5", "must be a nuPlan TrajectorySampling"),
])
def test_bad_sampling_in_a_file_names_the_token(tmp_path, sampling, match):
    raw = _raw_submission(predictions=[{"tok": NavsimTrajectory(np.zeros((8, 3), np.float32), sampling)}])
    with pytest.raises(DataError, match=match) as info:
        read_submission(_write_raw(tmp_path, raw))
    assert info.value.token == "tok"


def test_a_file_may_use_another_consistent_sampling(tmp_path):
    poses = np.arange(30, dtype=np.float64).reshape(10, 3)
    raw = _raw_submission(predictions=[{"tok": NavsimTrajectory(poses, NuplanTrajectorySampling(10, 1.0, 0.1))}])
    traj = read_submission(_write_raw(tmp_path, raw)).predictions[0]["tok"]
    assert traj.sampling == TrajectorySampling(10, 0.1)
    np.testing.assert_array_equal(traj.poses, poses)


@pytest.mark.parametrize(("overrides", "match"), [
    ({"country / region": None}, r"missing keys \['country / region'\]"),
    ({"predictions": None}, "cannot tell the submission version"),
    ({"first_stage_predictions": [{}], "second_stage_predictions": [{}]}, "cannot tell the submission version"),
    ({"score": 99.0}, r"unknown keys \['score'\]"),
    ({"predictions": []}, "non-empty list"),
    ({"predictions": [["tok"]]}, r"predictions\[0\] must be a \{token: Trajectory\} dict"),
    ({"predictions": [{"tok": np.zeros((8, 3))}]},
     "expected a navsim.common.dataclasses.Trajectory, got numpy.ndarray"),
    ({"predictions": [{7: None}]}, "token 7 is not a str"),
    ({"team_name": 42}, "team_name must be a str"),
])
def test_malformed_submissions_are_explained(tmp_path, overrides, match):
    with pytest.raises(DataError, match=match):
        read_submission(_write_raw(tmp_path, _raw_submission(**overrides)))


def test_not_a_dict_and_garbage_are_refused(tmp_path):
    with pytest.raises(DataError, match="is a dict, the file holds a list"):
        read_submission(_write_raw(tmp_path, [1, 2]))
    path = tmp_path / "garbage.pkl"
    path.write_bytes(b"\x80\x04not a pickle")
    with pytest.raises(DataError, match="corrupt or truncated"):
        read_submission(path)
