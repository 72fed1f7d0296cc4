"""Shard discovery and the side files (cluster JSON, test manifest)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapters.waymo.layout import (
    default_clusters_path,
    default_test_manifest_path,
    find_shards,
    read_clusters,
    read_test_manifest,
    required_frame_names,
)
from harness.errors import ConfigError, DataError


def _touch(root: Path, *names: str) -> None:
    for n in names:
        (root / n).parent.mkdir(parents=True, exist_ok=True)
        (root / n).write_bytes(b"")


def test_flat_bucket_layout_by_prefix(tmp_path: Path) -> None:
    _touch(tmp_path, "val_202504211843.tfrecord-00001-of-00002", "val_202504211843.tfrecord-00000-of-00002",
           "training_1.tfrecord-00000-of-00001", "test_1-2.tfrecord-00000-of-00001",
           ".val_202504211843.tfrecord-00002-of-00002.123.ab.tmp", "val_notes.txt",
           "val_sequence_name_to_scenario_cluster.json")
    assert [p.name for p in find_shards(tmp_path, "val")] == [
        "val_202504211843.tfrecord-00000-of-00002", "val_202504211843.tfrecord-00001-of-00002"]
    assert [p.name for p in find_shards(tmp_path, "train")] == ["training_1.tfrecord-00000-of-00001"]
    assert [p.name for p in find_shards(tmp_path, "test")] == ["test_1-2.tfrecord-00000-of-00001"]


def test_tutorial_generic_names_and_split_subfolder(tmp_path: Path) -> None:
    _touch(tmp_path, "validation.tfrecord-00000", "train/a.tfrecord", "train/b.tfrecord-1", "train/readme.md")
    assert [p.name for p in find_shards(tmp_path, "val")] == ["validation.tfrecord-00000"]
    assert [p.name for p in find_shards(tmp_path, "train")] == ["a.tfrecord", "b.tfrecord-1"]


def test_files_glob_overrides_discovery(tmp_path: Path) -> None:
    _touch(tmp_path, "val_1.tfrecord-0", "mine/x.rec", "mine/y.rec")
    assert [p.name for p in find_shards(tmp_path, "val", "mine/*.rec")] == ["x.rec", "y.rec"]
    assert [p.name for p in find_shards(tmp_path, "val", str(tmp_path / "mine" / "x.rec"))] == ["x.rec"]
    with pytest.raises(ConfigError, match="matched no file"):
        find_shards(tmp_path, "val", "nothing*")


def test_missing_split_lists_what_was_looked_for(tmp_path: Path) -> None:
    _touch(tmp_path, "training_1.tfrecord-0")
    with pytest.raises(ConfigError) as exc:
        find_shards(tmp_path, "test")
    msg = str(exc.value)
    assert "test_*.tfrecord*" in msg and str(tmp_path / "test") in msg and "--files" in msg
    with pytest.raises(ConfigError, match="unknown Waymo split 'validation'"):
        find_shards(tmp_path, "validation")
    with pytest.raises(ConfigError, match="not a directory"):
        find_shards(tmp_path / "absent", "val")


def test_both_layouts_at_once_is_refused(tmp_path: Path) -> None:
    _touch(tmp_path, "val_1.tfrecord-0", "val/val_1.tfrecord-0")
    with pytest.raises(ConfigError, match="both"):
        find_shards(tmp_path, "val")


def test_clusters_accept_both_forms_and_keep_names(tmp_path: Path) -> None:
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"a" * 32: "Interections", "b" * 32: {"scenario_cluster": "Cut_ins", "x": 1}}))
    assert read_clusters(p) == {"a" * 32: "Interections", "b" * 32: "Cut_ins"}
    p.write_text(json.dumps({"a": {"cluster": "X"}}))
    with pytest.raises(DataError, match="sequence 'a'"):
        read_clusters(p)
    p.write_text("[1, 2]")
    with pytest.raises(DataError, match="JSON object"):
        read_clusters(p)
    p.write_text("{")
    with pytest.raises(DataError, match="not valid JSON"):
        read_clusters(p)
    with pytest.raises(DataError, match="cannot read"):
        read_clusters(tmp_path / "absent.json")


def test_test_manifest_and_required_frame_names(tmp_path: Path) -> None:
    p = tmp_path / "m.json"
    p.write_text(json.dumps({"s1": 8, "s2": "85", "s3": 149}))
    m = read_test_manifest(p)
    assert m == {"s1": 8, "s2": 85, "s3": 149}
    assert required_frame_names(m) == ["s1-008", "s2-085", "s3-149"]
    for bad in (True, -1, 1.5, "x", None):
        p.write_text(json.dumps({"s": bad}))
        with pytest.raises(DataError, match="sequence 's'"):
            read_test_manifest(p)


def test_default_side_file_locations(tmp_path: Path) -> None:
    assert default_clusters_path(tmp_path) == tmp_path / "val_sequence_name_to_scenario_cluster.json"
    assert default_test_manifest_path(tmp_path) == tmp_path / "test_sequence_frames_for_submission.json"
