"""Waymo E2E submission archive: validation before writing, layouts, atomic write, strict reading."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest

from adapters.waymo.schema import E2EDChallengeSubmission
from harness.errors import DataError
from submissions.waymo import (
    LAYOUTS,
    SubmissionValidationError,
    WaymoSubmissionMetadata,
    normalize_num_model_parameters,
    predictions_per_shard,
    read_submission_archive,
    write_submission_archive,
)

META = WaymoSubmissionMetadata(account_name="me@example.org", unique_method_name="cv-baseline",
                               authors=("Ada", "Grace"), affiliation="Lab", uses_public_model_pretraining=False,
                               num_model_parameters="200k", description="constant velocity",
                               method_link="https://example.org")


def _frames(n: int = 7) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {f"{i:032x}-{10 + i:03d}": rng.normal(size=(20, 2)) * 10 for i in range(n)}


def _write(tmp_path: Path, preds, **kw) -> Path:
    required = kw.pop("required_frames", list(_frames()))
    return write_submission_archive(preds, kw.pop("metadata", META), tmp_path / "sub.tar.gz",
                                    required_frames=required, **kw)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shards", [1, 3])
def test_round_trip_every_layout(tmp_path: Path, layout: str, shards: int) -> None:
    preds = _frames()
    path = _write(tmp_path, preds, shards=shards, layout=layout)
    got, meta = read_submission_archive(path)
    assert list(got) == sorted(preds)
    for name, xy in preds.items():
        np.testing.assert_array_equal(got[name], xy.astype(np.float32).astype(np.float64))
    assert meta == META.normalized()
    assert meta.num_model_parameters == "200K"
    with tarfile.open(path) as tar:
        files = [m.name for m in tar.getmembers() if m.isfile()]
    assert len(files) == shards
    expected_first = {"flat": "submission.binproto-00000-of-0000", "directory": "submission/submission.binproto-0",
                      "tutorial": "submission/part0"}[layout]
    assert sorted(files)[0].startswith(expected_first)


def test_every_shard_repeats_all_metadata_and_shards_are_balanced(tmp_path: Path) -> None:
    path = _write(tmp_path, _frames(), shards=3)
    sizes = []
    with tarfile.open(path) as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            msg = E2EDChallengeSubmission.FromString(tar.extractfile(member).read())
            sizes.append(len(msg.predictions))
            assert msg.submission_type == E2EDChallengeSubmission.E2ED_SUBMISSION
            for f in ("account_name", "unique_method_name", "affiliation", "description", "method_link",
                      "uses_public_model_pretraining", "num_model_parameters", "submission_type"):
                assert msg.HasField(f), f
            assert list(msg.authors) == ["Ada", "Grace"]
    assert sizes == [3, 2, 2] == predictions_per_shard(7, 3)


def test_archive_is_deterministic(tmp_path: Path) -> None:
    a = _write(tmp_path, _frames(), shards=2).read_bytes()
    b = _write(tmp_path, dict(reversed(list(_frames().items()))), shards=2).read_bytes()
    assert a == b
    assert a[:2] == b"\x1f\x8b"


def test_tutorial_ceil_split_would_leave_an_empty_shard_ours_does_not() -> None:
    assert predictions_per_shard(5, 4) == [2, 1, 1, 1]
    with pytest.raises(ValueError):
        predictions_per_shard(3, 4)


def _problems(tmp_path: Path, preds, **kw) -> str:
    out = tmp_path / "sub.tar.gz"
    with pytest.raises(SubmissionValidationError) as err:
        _write(tmp_path, preds, **kw)
    assert not out.exists(), "nothing may be written when validation fails"
    return str(err.value)


def test_missing_extra_and_duplicate_frames_are_all_reported(tmp_path: Path) -> None:
    preds = _frames()
    names = list(preds)
    pairs = [(n, preds[n]) for n in names[1:]] + [(names[2], preds[names[2]]), ("beef-001", preds[names[3]])]
    msg = _problems(tmp_path, pairs)
    assert "1 required frame(s) have no prediction" in msg and names[0] in msg
    assert "1 predicted frame(s) are not required" in msg and "beef-001" in msg
    assert "1 frame(s) predicted more than once" in msg and names[2] in msg


def test_duplicate_required_frames(tmp_path: Path) -> None:
    names = list(_frames())
    assert "more than once" in _problems(tmp_path, _frames(), required_frames=names + names[:1])


@pytest.mark.parametrize("bad, what", [
    (np.zeros((19, 2)), "shape (19, 2)"),
    (np.zeros((20, 3)), "shape (20, 3)"),
    (np.zeros(40), "shape (40,)"),
    (np.where(np.arange(40).reshape(20, 2) == 7, np.nan, 0.0), "not finite"),
    (np.full((20, 2), np.inf), "not finite"),
    (np.full((20, 2), 1e39), "not finite as float32"),
    ("abc", "not numbers"),
])
def test_bad_points(tmp_path: Path, bad, what: str) -> None:
    preds = _frames()
    name = list(preds)[4]
    preds[name] = bad
    msg = _problems(tmp_path, preds)
    assert what in msg and name in msg


def test_an_existing_archive_is_left_alone_on_failure(tmp_path: Path) -> None:
    path = _write(tmp_path, _frames())
    before = path.read_bytes()
    preds = _frames()
    preds.popitem()
    with pytest.raises(SubmissionValidationError):
        _write(tmp_path, preds)
    assert path.read_bytes() == before


@pytest.mark.parametrize("value, normalized", [("200K", "200K"), ("200k", "200K"), ("7B", "7B"), ("1t", "1T"),
                                               (" 35M ", "35M"), ("0200K", "200K")])
def test_num_model_parameters_accepted(value: str, normalized: str) -> None:
    assert normalize_num_model_parameters(value) == normalized


@pytest.mark.parametrize("value", ["", "200", "24", "1.5B", "200 K", "200KB", "K", "-5M", "200P", "2e5"])
def test_num_model_parameters_rejected(tmp_path: Path, value: str) -> None:
    with pytest.raises(ValueError, match="integer followed by K, M, B or T"):
        normalize_num_model_parameters(value)
    meta = WaymoSubmissionMetadata(**{**META.__dict__, "num_model_parameters": value})
    assert "num_model_parameters" in _problems(tmp_path, _frames(), metadata=meta)


@pytest.mark.parametrize("change, field", [
    ({"account_name": ""}, "account_name"),
    ({"account_name": "not-an-email"}, "account_name"),
    ({"account_name": "acc@domain.com"}, "account_name"),  # the tutorial's placeholder
    ({"unique_method_name": "  "}, "unique_method_name"),
    ({"affiliation": ""}, "affiliation"),
    ({"authors": ()}, "authors"),
    ({"authors": ("Ada", " ")}, "authors"),
    ({"uses_public_model_pretraining": True}, "public_model_names"),
])
def test_required_metadata(tmp_path: Path, change: dict, field: str) -> None:
    meta = WaymoSubmissionMetadata(**{**META.__dict__, **change})
    assert field in _problems(tmp_path, _frames(), metadata=meta)


def test_metadata_types_are_checked_on_construction() -> None:
    with pytest.raises(ValueError, match="authors"):
        WaymoSubmissionMetadata(**{**META.__dict__, "authors": "Ada"})
    with pytest.raises(ValueError, match="uses_public_model_pretraining"):
        WaymoSubmissionMetadata(**{**META.__dict__, "uses_public_model_pretraining": "yes"})


def test_public_models_are_written(tmp_path: Path) -> None:
    meta = WaymoSubmissionMetadata(**{**META.__dict__, "uses_public_model_pretraining": True,
                                      "public_model_names": ("Qwen2.5-VL-3B",)})
    _, got = read_submission_archive(_write(tmp_path, _frames(), metadata=meta))
    assert got.uses_public_model_pretraining and got.public_model_names == ("Qwen2.5-VL-3B",)


@pytest.mark.parametrize("shards", [0, 8, -1, True])
def test_bad_shard_count(tmp_path: Path, shards) -> None:
    assert "shards" in _problems(tmp_path, _frames(), shards=shards)


# --- reading archives written by others ------------------------------------------------------------------


def _shard(preds: dict[str, np.ndarray], **meta) -> bytes:
    msg = E2EDChallengeSubmission(submission_type=E2EDChallengeSubmission.E2ED_SUBMISSION,
                                  account_name="me@example.org", unique_method_name="m", authors=["A"],
                                  affiliation="L", uses_public_model_pretraining=False, num_model_parameters="1M")
    for k, v in meta.items():
        setattr(msg, k, v)
    for name, xy in preds.items():
        p = msg.predictions.add(frame_name=name)
        p.trajectory.pos_x.extend(np.asarray(xy)[:, 0].tolist())
        p.trajectory.pos_y.extend(np.asarray(xy)[:, 1].tolist())
    return msg.SerializeToString()


def _archive(tmp_path: Path, members: dict[str, bytes], *, gz: bool = True, links: dict[str, str] | None = None,
             name: str = "x.tar.gz") -> Path:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for n, data in members.items():
            info = tarfile.TarInfo(n)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for n, target in (links or {}).items():
            info = tarfile.TarInfo(n)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    path = tmp_path / name
    path.write_bytes(gzip.compress(raw.getvalue()) if gz else raw.getvalue())
    return path


def test_reads_binproto_without_numbering_and_mixed_folders(tmp_path: Path) -> None:
    preds = _frames(3)
    names = list(preds)
    path = _archive(tmp_path, {"./a/one.binproto": _shard({names[0]: preds[names[0]]}),
                               "two.binproto": _shard({n: preds[n] for n in names[1:]})})
    got, meta = read_submission_archive(path)
    assert list(got) == sorted(names) and meta.num_model_parameters == "1M"


@pytest.mark.parametrize("members, match", [
    ({"README.txt": b"hi"}, "unexpected archive member 'README.txt'"),
    ({"a/b/part0": b""}, "unexpected archive member"),
    ({"../part0": b""}, "unexpected archive member"),
    ({"/abs/part0": b""}, "unexpected archive member"),
    ({}, "holds no shard"),
    ({"s.binproto-00000-of-00002": b""}, r"shard\(s\) \[1\] missing"),
    ({"s.binproto-00000-of-00001": b"", "s.binproto-00001-of-00002": b""}, "disagree on the shard count"),
    ({"part0": b"\xff\xff\xff"}, "not a serialized E2EDChallengeSubmission"),
])
def test_unknown_layouts_are_rejected(tmp_path: Path, members: dict, match: str) -> None:
    with pytest.raises(DataError, match=match):
        read_submission_archive(_archive(tmp_path, members))


def test_links_and_non_gzip_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="link or special file"):
        read_submission_archive(_archive(tmp_path, {}, links={"part0": "/etc/passwd"}))
    with pytest.raises(DataError, match="not a gzip file"):
        read_submission_archive(_archive(tmp_path, {"part0": _shard({})}, gz=False))
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(gzip.compress(b"not a tar at all" * 100))
    with pytest.raises(DataError, match="not a readable gzip-compressed tar"):
        read_submission_archive(bad)


def test_shard_contents_are_checked(tmp_path: Path) -> None:
    preds = _frames(2)
    a, b = list(preds)
    cases = [
        ({"part0": _shard(preds, submission_type=0)}, "submission_type is UNKNOWN"),
        ({"part0": _shard({a: preds[a]}), "part1": _shard({b: preds[b]}, affiliation="Other")},
         "different metadata"),
        ({"part0": _shard(preds), "part1": _shard({a: preds[a]})}, "predicted more than once"),
        ({"part0": _shard({a: np.zeros((19, 2))})}, "19 pos_x and 19 pos_y"),
        ({"part0": _shard({a: np.full((20, 2), np.nan)})}, "non-finite"),
        ({"part0": _shard({"": np.zeros((20, 2))})}, "no frame_name"),
    ]
    for members, match in cases:
        with pytest.raises(DataError, match=match):
            read_submission_archive(_archive(tmp_path, members))
