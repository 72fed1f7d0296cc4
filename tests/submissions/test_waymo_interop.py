"""Interoperability with the official Waymo classes (wheel 1.6.7, installed with --no-deps: protos only).

Both ways: the official ``E2EDChallengeSubmission`` parses every shard lead-bench writes with every field
equal (and re-serialises it to the same bytes), and archives built with the official classes, in the E2E
tutorial's layout and in the binproto layout, are read by ``read_submission_archive``.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import unknown_fields

from submissions.waymo import (
    LAYOUTS,
    WaymoSubmissionMetadata,
    read_submission_archive,
    write_submission_archive,
)

official = pytest.importorskip("waymo_open_dataset.protos.end_to_end_driving_submission_pb2")

META = WaymoSubmissionMetadata(account_name="me@example.org", unique_method_name="lead-bench-cv",
                               authors=("Ada Lovelace", "Grace Hopper"), affiliation="Lab",
                               uses_public_model_pretraining=True, num_model_parameters="3B",
                               description="interop", method_link="https://example.org/m",
                               public_model_names=("Qwen2.5-VL-3B", "other"))
METADATA_FIELDS = ("account_name", "unique_method_name", "affiliation", "description", "method_link",
                   "uses_public_model_pretraining", "num_model_parameters")


def _frames(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {f"{i:032x}-{i % 200:03d}": rng.normal(size=(20, 2)) * 20 for i in range(n)}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_official_classes_parse_every_shard_with_all_fields_equal(tmp_path: Path, layout: str) -> None:
    preds = _frames(11)
    path = write_submission_archive(preds, META, tmp_path / "sub.tar.gz", required_frames=list(preds), shards=4,
                                    layout=layout)
    seen: dict[str, np.ndarray] = {}
    with tarfile.open(path, "r:gz") as tar:
        shards = [m for m in tar.getmembers() if m.isfile()]
        assert len(shards) == 4
        for member in shards:
            data = tar.extractfile(member).read()
            msg = official.E2EDChallengeSubmission.FromString(data)
            assert msg.SerializeToString() == data, "the official classes re-serialise to other bytes"
            assert msg.submission_type == official.E2EDChallengeSubmission.SubmissionType.E2ED_SUBMISSION
            for field in ("submission_type", *METADATA_FIELDS):
                assert msg.HasField(field), f"{member.name}: {field} not set"
            assert msg.account_name == META.account_name
            assert msg.unique_method_name == META.unique_method_name
            assert list(msg.authors) == list(META.authors)
            assert msg.affiliation == META.affiliation
            assert msg.description == META.description
            assert msg.method_link == META.method_link
            assert msg.uses_public_model_pretraining is True
            assert msg.num_model_parameters == "3B"
            assert list(msg.public_model_names) == list(META.public_model_names)
            assert len(unknown_fields.UnknownFieldSet(msg)) == 0, "fields the official schema does not know"
            for p in msg.predictions:
                assert p.frame_name not in seen
                seen[p.frame_name] = np.stack([p.trajectory.pos_x, p.trajectory.pos_y], axis=-1)
    assert sorted(seen) == sorted(preds)
    for name, xy in preds.items():
        np.testing.assert_array_equal(seen[name], xy.astype(np.float32))


def _official_shards(preds: dict[str, np.ndarray], n: int) -> list[bytes]:
    """As the tutorial builds them: ``ceil(len / n)`` predictions per shard, metadata set on each."""
    items = [official.FrameTrajectoryPredictions(
        frame_name=name, trajectory=official.TrajectoryPrediction(pos_x=xy[:, 0].astype(np.float32),
                                                                  pos_y=xy[:, 1].astype(np.float32)))
        for name, xy in preds.items()]
    per = -(-len(items) // n)
    out = []
    for i in range(n):
        shard = official.E2EDChallengeSubmission(predictions=items[i * per:(i + 1) * per])
        shard.submission_type = official.E2EDChallengeSubmission.SubmissionType.E2ED_SUBMISSION
        shard.authors[:] = ["A", "B"]
        shard.affiliation = "Affiliation"
        shard.account_name = "acc@domain.com"
        shard.unique_method_name = "YourMethodName"
        shard.method_link = "method_link"
        shard.description = ""
        shard.uses_public_model_pretraining = True
        shard.public_model_names.extend(["Model_name"])
        shard.num_model_parameters = "200k"
        out.append(shard.SerializeToString())
    return out


def _tar_directory(tmp_path: Path, folder: Path, arcname: str | None) -> Path:
    """``tar cvf X.tar <folder>`` then ``gzip``, or the folder's files at the top level with ``arcname=None``."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        if arcname is None:
            for f in sorted(os.listdir(folder)):
                tar.add(folder / f, arcname=f)
        else:
            tar.add(folder, arcname=arcname)
    out = tmp_path / "official.tar.gz"
    out.write_bytes(gzip.compress(raw.getvalue()))
    return out


@pytest.mark.parametrize("naming, arcname", [("part{i}", "MySubmission"),
                                             ("submission.binproto-{i:05d}-of-{n:05d}", None),
                                             ("submission.binproto-{i:05d}-of-{n:05d}", "MySubmission")])
def test_archives_built_with_the_official_classes_are_read(tmp_path: Path, naming: str, arcname: str | None) -> None:
    preds = _frames(5)
    folder = tmp_path / "MySubmission"
    folder.mkdir()
    for i, data in enumerate(_official_shards(preds, 3)):
        (folder / naming.format(i=i, n=3)).write_bytes(data)
    got, meta = read_submission_archive(_tar_directory(tmp_path, folder, arcname))
    assert sorted(got) == sorted(preds)
    for name, xy in preds.items():
        np.testing.assert_array_equal(got[name], xy.astype(np.float32).astype(np.float64))
    assert meta == WaymoSubmissionMetadata(
        account_name="acc@domain.com", unique_method_name="YourMethodName", authors=("A", "B"),
        affiliation="Affiliation", uses_public_model_pretraining=True, num_model_parameters="200k",
        description="", method_link="method_link", public_model_names=("Model_name",))


def test_the_tutorial_metadata_placeholders_would_not_be_written(tmp_path: Path) -> None:
    """What reads fine is still refused for writing: the tutorial's placeholders are not real metadata."""
    preds = _frames(2)
    folder = tmp_path / "MySubmission"
    folder.mkdir()
    (folder / "part0").write_bytes(_official_shards(preds, 1)[0])
    got, meta = read_submission_archive(_tar_directory(tmp_path, folder, "MySubmission"))
    from submissions.waymo import SubmissionValidationError

    with pytest.raises(SubmissionValidationError, match="account_name"):
        write_submission_archive(got, meta, tmp_path / "again.tar.gz", required_frames=list(got))
