"""The on-disk shard index cache: hits give the same index, stale or damaged caches are never used."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from adapters.waymo.index_cache import ShardIndexCache, ShardKey
from adapters.waymo.reader import WaymoReader
from adapters.waymo.tfrecord import CorruptRecordError
from tests.adapters.waymo.frames import frame_bytes, future, write_shard

SEQ = "0123456789abcdef0123456789abcdef"


def _records(n: int, start: int = 0) -> list[bytes]:
    return [frame_bytes(f"{SEQ}-{i:03d}", raters=[(future(), 7.0)] if i == 1 else ()) for i in range(start, start + n)]


def _snapshot(r: WaymoReader) -> list[tuple]:
    return [(e.location, e.frame_name, e.sequence_id, e.frame_index, e.timestamp_us, e.intent, e.has_future,
             e.num_raters, e.has_rater_labels) for e in r.entries().values()]


def test_hit_equals_fresh_index_and_loads(tmp_path: Path) -> None:
    data, cache = tmp_path / "data", tmp_path / "cache"
    write_shard(data / "val_000.tfrecord-00000-of-00002", _records(3))
    write_shard(data / "val_001.tfrecord-00001-of-00002", _records(2, start=3))
    fresh = WaymoReader(data, "val")
    first = WaymoReader(data, "val", index_cache=cache)
    assert _snapshot(first) == _snapshot(fresh) and first.cached_shards == 0
    assert len(list(cache.glob("*.json"))) == 2
    second = WaymoReader(data, "val", index_cache=cache)
    assert _snapshot(second) == _snapshot(fresh) and second.cached_shards == 2
    name = f"{SEQ}-001"
    assert second.entry(name).has_rater_labels
    assert second.load(name, cameras=["FRONT"]).meta.token == name


def test_changed_shard_is_indexed_again(tmp_path: Path) -> None:
    data, cache = tmp_path / "data", tmp_path / "cache"
    shard = write_shard(data / "val_000.tfrecord", _records(3))
    WaymoReader(data, "val", index_cache=cache).entries()
    write_shard(shard, _records(4))  # rewritten in place (os.replace): new size, inode and mtime
    r = WaymoReader(data, "val", index_cache=cache)
    assert len(r.entries()) == 4 and r.cached_shards == 0
    # Same size, same inode, new mtime (bytes changed in place): still a miss.
    body = bytearray(shard.read_bytes())
    WaymoReader(data, "val", index_cache=cache).entries()
    st = shard.stat()
    shard.write_bytes(bytes(body))
    os.utime(shard, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    r = WaymoReader(data, "val", index_cache=cache)
    assert len(r.entries()) == 4 and r.cached_shards == 0
    again = WaymoReader(data, "val", index_cache=cache)
    assert len(again.entries()) == 4 and again.cached_shards == 1


def test_damaged_or_forged_cache_files_are_ignored(tmp_path: Path) -> None:
    data, cache = tmp_path / "data", tmp_path / "cache"
    shard = write_shard(data / "val_000.tfrecord", _records(3))
    want = _snapshot(WaymoReader(data, "val"))
    WaymoReader(data, "val", index_cache=cache).entries()
    (path,) = cache.glob("*.json")
    doc = json.loads(path.read_text())
    forged = [
        "not json {",
        json.dumps({**doc, "version": 999}),
        json.dumps({**doc, "rows": doc["rows"][:-1]}),  # does not reach the end of the file
        json.dumps({**doc, "rows": [[doc["rows"][0][0] + 1, *doc["rows"][0][1:]], *doc["rows"][1:]]}),  # offset
        json.dumps({**doc, "rows": [[*r[:5], 1, *r[6:]] for r in doc["rows"]]}),  # int where a bool belongs
        json.dumps({**doc, "rows": [[*r[:2], "not-a-frame-name", *r[3:]] for r in doc["rows"]]}),
        json.dumps([1, 2, 3]),
    ]
    for text in forged:
        path.write_text(text)
        r = WaymoReader(data, "val", index_cache=cache)
        assert _snapshot(r) == want and r.cached_shards == 0, text[:60]
        assert json.loads(path.read_text())["rows"] == doc["rows"]  # replaced by a good one
    assert ShardIndexCache(cache).get(ShardKey.of(shard)) is not None


def test_corrupt_shards_are_not_cached_and_still_reported(tmp_path: Path) -> None:
    data, cache = tmp_path / "data", tmp_path / "cache"
    shard = write_shard(data / "val_000.tfrecord", _records(3))
    shard.write_bytes(shard.read_bytes()[:-10])  # cut in the last record
    with pytest.raises(CorruptRecordError, match="byte offset"):
        WaymoReader(data, "val", index_cache=cache).entries()
    for _ in range(2):
        r = WaymoReader(data, "val", skip_corrupt=True, index_cache=cache)
        assert len(r.entries()) == 2 and r.num_skipped == 1 and r.cached_shards == 0
    assert not list(cache.glob("*.json"))
    # verify_data bypasses a cache hit (a full check was asked for) and a bad data CRC is found.
    write_shard(shard, _records(3))
    WaymoReader(data, "val", index_cache=cache).entries()
    raw = bytearray(shard.read_bytes())
    raw[40] ^= 0xFF  # inside the first payload: only its data CRC fails
    st = shard.stat()
    shard.write_bytes(bytes(raw))
    os.utime(shard, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, inode and mtime: the cache still matches
    hit = WaymoReader(data, "val", index_cache=cache)
    assert len(hit.entries()) == 3 and hit.cached_shards == 1
    with pytest.raises(CorruptRecordError, match="data CRC mismatch"):
        hit.load(f"{SEQ}-000")
    full = WaymoReader(data, "val", skip_corrupt=True, verify_data=True, index_cache=cache)
    assert len(full.entries()) == 2 and full.num_skipped == 1 and full.cached_shards == 0
