"""TFRecord benchmarks: shard indexing, full reads with CRC checks, random access.

Two synthetic shards are written to a temporary directory (warm page cache, as on a second pass over real
data): "big" records of ~2.3 MB (the size of an E2EDFrame with 8 JPEGs, specs/waymo_e2e.md §1.2) and
"small" records of 2 KB, where per-record overhead dominates. Baselines are measured in the same run:

- index: lead-bench's seek-over-the-data index against indexing by reading every record;
- full read: CRC-32C with google-crc32c against a table-driven pure-Python CRC-32C (on a prefix of the
  shard, because it is slow), and against reading without the data CRC (the cost of the check);
- random access: ``read_record`` from the index against finding the record by scanning from the start.

Usage: python benchmarks/bench_tfrecord.py [--big N] [--small N]
"""

from __future__ import annotations

import argparse
import os
import random
import struct
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from adapters.waymo.tfrecord import TFRecordReader, TFRecordWriter, index_shard, read_record

BIG_RECORD = 2_300_000
SMALL_RECORD = 2_000
#: The pure-Python CRC baseline reads only this many payload bytes (it runs at a few MB/s).
PY_CRC_BUDGET = 8_000_000


def _table() -> list[int]:
    out = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ (0x82F63B78 if c & 1 else 0)
        out.append(c)
    return out


_CRC_TABLE = _table()


def crc32c_python(data: bytes) -> int:
    """Table-driven CRC-32C in pure Python: the straightforward implementation, as a baseline."""
    crc = 0xFFFFFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _mask(crc: int) -> int:
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def read_python_crc(path: Path, budget: int) -> tuple[int, int]:
    """Read records, checking both CRCs with the pure-Python CRC, until ``budget`` payload bytes."""
    n = nbytes = 0
    with open(path, "rb") as f:
        while nbytes < budget:
            head = f.read(12)
            if not head:
                break
            length, length_crc = struct.unpack("<QI", head)
            if _mask(crc32c_python(head[:8])) != length_crc:
                raise ValueError("length CRC")
            body = f.read(length + 4)
            if _mask(crc32c_python(body[:length])) != struct.unpack_from("<I", body, length)[0]:
                raise ValueError("data CRC")
            n, nbytes = n + 1, nbytes + length
    return n, nbytes


def index_by_reading(path: Path) -> list[tuple[int, int]]:
    """Index without seeking: read every record in full (what a plain record iterator does)."""
    out, offset = [], 0
    with open(path, "rb") as f:
        while head := f.read(12):
            (length,) = struct.unpack_from("<Q", head)
            f.read(length + 4)
            out.append((offset, length))
            offset += length + 16
    return out


def scan_to(path: Path, k: int) -> bytes:
    """Find record ``k`` without an index: read records from the start until it."""
    reader = iter(TFRecordReader(path))
    for _ in range(k):
        next(reader)
    return next(reader)


def _time(fn: Callable[[], object], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _write(path: Path, n: int, size: int) -> None:
    rng = random.Random(0)
    with TFRecordWriter(path, fsync=False) as w:
        for _ in range(n):
            w.write(os.urandom(rng.randint(size * 9 // 10, size * 11 // 10)))


def bench_shard(table: Table, path: Path, n: int, size: int) -> None:
    """Add one shard's rows to ``table``."""
    mb = path.stat().st_size / 1e6
    index = index_shard(path)
    shard = f"{path.stem} ({n} x {size / 1e3:,.0f} KB)"

    def row(what: str, seconds: float, records: int, megabytes: float, base: float | None) -> None:
        ratio = "" if base is None else f"{base / seconds:,.1f}x"
        table.add_row(shard, what, f"{records / seconds:,.0f}", f"{megabytes / seconds:,.0f}", ratio)

    t_scan = _time(lambda: index_by_reading(path))
    row("index by reading every record (baseline)", t_scan, n, mb, None)
    row("index_shard (seek, length CRCs)", _time(lambda: index_shard(path)), n, mb, t_scan)
    row("index_shard(verify_data=True)", _time(lambda: index_shard(path, verify_data=True)), n, mb, t_scan)

    py_n, py_bytes = read_python_crc(path, PY_CRC_BUDGET)
    t_py = _time(lambda: read_python_crc(path, PY_CRC_BUDGET), repeat=1)
    row("full read, pure-Python CRC (baseline)", t_py, py_n, py_bytes / 1e6, None)
    per_record_py = t_py / py_n
    t_full = _time(lambda: sum(1 for _ in TFRecordReader(path)))
    row("full read, both CRCs (google-crc32c)", t_full, n, mb, per_record_py * n)
    t_nocrc = _time(lambda: sum(1 for _ in TFRecordReader(path, verify_data=False)))
    row("full read, length CRC only", t_nocrc, n, mb, per_record_py * n)

    rng = random.Random(1)
    picks = [rng.randrange(n) for _ in range(min(n, 200))]
    few = picks[:5]
    t_base = _time(lambda: all(scan_to(path, k) is not None for k in few), repeat=1) / len(few)
    row("random record by scanning from the start (baseline)", t_base, 1, size / 1e6, None)
    def random_reads() -> None:
        with open(path, "rb") as f:
            for k in picks:  # each payload dropped at once, as a loader hands it on
                read_record(f, index[k].offset, index[k].length)

    t_rand = _time(random_reads)
    rand_mb = sum(index[k].length for k in picks) / 1e6
    row("random record via index + read_record", t_rand, len(picks), rand_mb, t_base * len(picks))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--big", type=int, default=48, help="records of ~2.3 MB in the big shard")
    ap.add_argument("--small", type=int, default=20_000, help="records of ~2 KB in the small shard")
    args = ap.parse_args()
    table = Table(title="TFRecord benchmarks (warm page cache; best of 3)")
    for col in ("shard", "what", "records/s", "MB/s", "vs baseline"):
        table.add_column(col, justify="right")
    with tempfile.TemporaryDirectory() as tmp:
        for label, n, size in (("big", args.big, BIG_RECORD), ("small", args.small, SMALL_RECORD)):
            path = Path(tmp) / f"{label}.tfrecord"
            _write(path, n, size)
            bench_shard(table, path, n, size)
    Console().print(table)


if __name__ == "__main__":
    main()
