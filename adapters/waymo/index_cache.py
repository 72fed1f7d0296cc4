"""An on-disk cache of shard indexes, so a split is indexed once, not on every run.

One JSON file per shard in a cache directory chosen by the caller (the CLI uses ``<cache root>/waymo-index``),
named by a hash of the shard's resolved path. A file records the shard's resolved path, size, modification
time (ns) and inode, and the index rows; it is used only while all four still match the shard (any rewrite,
``os.replace`` included, changes the inode or the mtime), and it is rewritten after a fresh index. Files are
written atomically (temp file + rename), so concurrent runs see an old file or a new one, never half of one.
A cache file that cannot be read or does not check out is ignored and replaced: the cache can only save time,
never change an index. Only shards that indexed cleanly are stored (no skipped or unreadable record), so
``--skip-corrupt`` counts come from a real scan every time. Even a wrong entry could not go unnoticed:
``read_record`` checks each record's stored length and both CRCs, and ``WaymoReader.load`` the frame name.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapters.waymo.tfrecord import FOOTER_SIZE, HEADER_SIZE
from harness.atomic import atomic_write_text

log = logging.getLogger(__name__)

#: Bump when the rows' meaning changes (what :class:`adapters.waymo.reader.IndexEntry` holds).
INDEX_CACHE_VERSION = 1
#: One row per record, in file order.
COLUMNS = ("offset", "length", "frame_name", "timestamp_us", "intent", "has_future", "num_raters",
           "has_rater_labels")
_TYPES = (int, int, str, int, int, bool, int, bool)


@dataclass(frozen=True)
class ShardKey:
    """What identifies one version of a shard file."""

    path: str
    size: int
    mtime_ns: int
    inode: int

    @classmethod
    def of(cls, shard: Path) -> ShardKey:
        resolved = shard.resolve()
        st = resolved.stat()
        return cls(str(resolved), st.st_size, st.st_mtime_ns, st.st_ino)


class ShardIndexCache:
    """Cached index rows per shard (see the module docstring).

    Args:
        directory: where the cache files live (created on the first write).
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def file_for(self, key: ShardKey) -> Path:
        digest = hashlib.blake2b(key.path.encode("utf-8"), digest_size=12).hexdigest()
        return self.directory / f"{Path(key.path).name[:80]}.{digest}.json"

    def get(self, key: ShardKey) -> list[tuple[Any, ...]] | None:
        """The cached rows of this version of the shard, or None (absent, stale or unreadable)."""
        path = self.file_for(key)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable Waymo index cache %s (%s)", path, exc)
            return None
        if not isinstance(doc, dict) or doc.get("version") != INDEX_CACHE_VERSION:
            return None
        if [doc.get("path"), doc.get("size"), doc.get("mtime_ns"), doc.get("inode")] != [
                key.path, key.size, key.mtime_ns, key.inode]:
            return None  # the shard changed (or another file now has its path): index it again
        rows = doc.get("rows")
        if doc.get("columns") != list(COLUMNS) or not isinstance(rows, list) or not _plausible(rows, key.size):
            log.warning("ignoring malformed Waymo index cache %s", path)
            return None
        return [tuple(r) for r in rows]

    def put(self, key: ShardKey, rows: list[tuple[Any, ...]]) -> None:
        """Store the rows of this version of the shard (a failure to write only costs the next run time)."""
        doc = {"version": INDEX_CACHE_VERSION, "path": key.path, "size": key.size, "mtime_ns": key.mtime_ns,
               "inode": key.inode, "columns": list(COLUMNS), "rows": [list(r) for r in rows]}
        try:
            atomic_write_text(self.file_for(key), json.dumps(doc, separators=(",", ":")))
        except OSError as exc:
            log.warning("cannot write the Waymo index cache %s (%s)", self.file_for(key), exc)


def _plausible(rows: list[Any], size: int) -> bool:
    """Rows of the right types that tile the file: each record starts where the previous one ended."""
    end = 0
    for r in rows:
        if not isinstance(r, list) or len(r) != len(COLUMNS):
            return False
        if not all(type(v) is t for v, t in zip(r, _TYPES)):  # bool is not accepted as int, nor int as bool
            return False
        offset, length = r[0], r[1]
        if offset != end or length < 0:
            return False
        end = offset + HEADER_SIZE + length + FOOTER_SIZE
    return end == size


def shard_key(shard: Path) -> ShardKey | None:
    """The shard's key, or None if it cannot be stat'ed (the index then reports the real error)."""
    try:
        return ShardKey.of(shard)
    except OSError:
        return None


__all__ = ["COLUMNS", "INDEX_CACHE_VERSION", "ShardIndexCache", "ShardKey", "shard_key"]
