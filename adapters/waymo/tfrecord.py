"""TFRecord files without TensorFlow: reader, atomic writer, shard index and random access.

A TFRecord file is a plain concatenation of records, each framed as (specs/waymo_e2e.md §1.2)::

    uint64 LE  length N
    uint32 LE  masked CRC-32C of the 8 length bytes
    N bytes    data
    uint32 LE  masked CRC-32C of the data

with ``mask(crc) = (((crc >> 15) | (crc << 17)) + 0xA282EAD8) mod 2**32``. There is no file header or
padding, so the writer's output is byte-identical to TensorFlow's ``TFRecordWriter`` (uncompressed), and
every uncompressed or GZIP file TensorFlow writes, this reads (ZLIB and SNAPPY streams are not supported:
nothing in lead-bench's sources uses them). The error semantics follow TensorFlow's ``RecordReader``: a clean
end of file between records is the end; anything cut inside a record, or a CRC that does not match, is
data loss and raises :class:`CorruptRecordError` naming the file and the byte offset of the record.

GZIP files (TensorFlow's ``compression_type="GZIP"``: the whole record stream in one gzip stream) are
read and written too; their offsets are positions in the *uncompressed* stream, and random access into
them has to decompress from the start, so shards meant for random access should stay uncompressed.
"""

from __future__ import annotations

import gzip
import logging
import os
import secrets
import struct
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Literal, NamedTuple, cast

import google_crc32c

from harness.errors import DataError

log = logging.getLogger(__name__)

Compression = Literal["", "GZIP"]

HEADER_SIZE = 12  # uint64 length + uint32 masked CRC of the length
FOOTER_SIZE = 4  # uint32 masked CRC of the data
MASK_DELTA = 0xA282EAD8
_U64_U32 = struct.Struct("<QI")
_U32 = struct.Struct("<I")
#: Resynchronisation after a corrupt length scans forward in chunks of this size.
_RESYNC_CHUNK = 1 << 20
#: Buffer of sequential reads. Payloads larger than it bypass it (read straight into the result), so a
#: bigger one only adds copies; 64 KiB measured fastest for both 2 KB and 2.3 MB records.
_READ_BUFFER = 1 << 16
#: The index reads 12-byte headers between seeks. 64 KiB: small records come from the buffer (2x faster
#: than 4 KiB on 2 KB records); for MB records it reads 64 KiB of data per header, which costs little.
_INDEX_BUFFER = 1 << 16


def masked_crc32c(data: bytes | bytearray | memoryview) -> int:
    """Masked CRC-32C (Castagnoli) of ``data``, as stored in TFRecord headers and footers.

    The mask exists because a CRC of data that itself contains CRCs is poorly distributed.
    """
    crc = google_crc32c.value(bytes(data) if isinstance(data, memoryview) else data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + MASK_DELTA) & 0xFFFFFFFF


def encode_record(data: bytes) -> bytes:
    """One framed record (header + data + footer), exactly as TensorFlow writes it."""
    length = struct.pack("<Q", len(data))
    return length + _U32.pack(masked_crc32c(length)) + data + _U32.pack(masked_crc32c(data))


class RecordIndex(NamedTuple):
    """Where one record lies in a shard (a named tuple: millions are built per split, cheaply).

    Attributes:
        offset: byte offset of the record's 12-byte header (for GZIP files: in the uncompressed stream).
        length: payload size in bytes (the record occupies ``length + 16`` bytes).
    """

    offset: int
    length: int

    @property
    def data_offset(self) -> int:
        """Byte offset of the payload."""
        return self.offset + HEADER_SIZE

    @property
    def end(self) -> int:
        """Byte offset just past the record (the next record's header)."""
        return self.offset + HEADER_SIZE + self.length + FOOTER_SIZE


class CorruptRecord(NamedTuple):
    """A record that was skipped by a reader with ``skip_corrupt=True``."""

    offset: int
    reason: str


class CorruptRecordError(DataError):
    """A TFRecord file is truncated or fails a CRC check.

    Attributes:
        offset: byte offset of the record's header (uncompressed stream for GZIP files).
        reason: what was wrong, without the location.
    """

    def __init__(self, reason: str, *, path: str | Path, offset: int) -> None:
        super().__init__(f"{reason} in the TFRecord at byte offset {offset}", path=path)
        self.offset = offset
        self.reason = reason


def _open(path: Path, compression: Compression, buffering: int) -> BinaryIO:
    if compression == "":
        return open(path, "rb", buffering=buffering)  # closed by the caller
    if compression == "GZIP":
        return cast(BinaryIO, gzip.GzipFile(filename=path, mode="rb"))
    raise ValueError(f"compression must be '' or 'GZIP', got {compression!r}")


class TFRecordReader:
    """Read the records of one TFRecord file, verifying both CRCs of every record.

    Iterating opens the file, yields each payload and closes it. With ``skip_corrupt=True`` a damaged
    record is skipped and listed in :attr:`corrupt` instead of raising: a bad data CRC skips exactly that
    record (its length CRC vouched for the length); a bad length CRC makes the reader scan forward for the
    next header whose length CRC and data CRC both check; a truncated tail ends the file.

    Args:
        path: the file.
        compression: ``""`` (uncompressed, the WOD-E2E release) or ``"GZIP"``.
        skip_corrupt: skip and count damaged records instead of raising :class:`CorruptRecordError`.
        verify_data: check each payload's CRC (the length CRC is always checked: a wrong length would
            derail every following record).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        compression: Compression = "",
        skip_corrupt: bool = False,
        verify_data: bool = True,
    ) -> None:
        self.path = Path(path)
        self.compression = compression
        self.skip_corrupt = skip_corrupt
        self.verify_data = verify_data
        #: Records skipped during the last pass (only with ``skip_corrupt=True``).
        self.corrupt: list[CorruptRecord] = []

    @property
    def num_corrupt(self) -> int:
        """How many records the last pass skipped."""
        return len(self.corrupt)

    def __iter__(self) -> Iterator[bytes]:
        for _, data in self.records():
            yield data

    def records(self) -> Iterator[tuple[RecordIndex, bytes]]:
        """Yield ``(index, payload)`` for every record, in file order."""
        for rec, data in self._scan(read_data=True, buffering=_READ_BUFFER):
            yield rec, cast(bytes, data)  # read_data=True always reads the payload

    def index(self, *, verify_data: bool = False) -> list[RecordIndex]:
        """Index the file by seeking from header to header.

        Args:
            verify_data: also read every payload and check its CRC (a full read); by default only the
                length CRCs are checked and the payloads are seeked over.

        Returns:
            One :class:`RecordIndex` per record, in file order.
        """
        if self.compression == "" and not verify_data:
            fast = _index_intact(self.path)
            if fast is not None:
                self.corrupt = []
                return fast
        # Damaged, compressed or fully verified: the general scan, which reports or skips damage.
        reader = TFRecordReader(self.path, compression=self.compression, skip_corrupt=self.skip_corrupt,
                                verify_data=verify_data)
        out = [rec for rec, _ in reader._scan(read_data=verify_data, buffering=_INDEX_BUFFER)]
        self.corrupt = reader.corrupt
        return out

    def _fail(self, reason: str, offset: int) -> None:
        if not self.skip_corrupt:
            raise CorruptRecordError(reason, path=self.path, offset=offset)
        log.warning("skipping a corrupt record in %s at byte offset %d: %s", self.path, offset, reason)
        self.corrupt.append(CorruptRecord(offset, reason))

    def _hint(self, offset: int, head: bytes) -> str:
        # A gzip magic at the very start of a file read as uncompressed is almost surely a GZIP shard.
        if offset == 0 and self.compression == "" and head[:2] == b"\x1f\x8b":
            return " (the file starts with the gzip magic: read it with compression='GZIP')"
        return ""

    def _scan(self, *, read_data: bool, buffering: int) -> Iterator[tuple[RecordIndex, bytes | None]]:
        self.corrupt = []
        try:
            f = _open(self.path, self.compression, buffering)
        except OSError as exc:
            raise DataError(f"cannot open TFRecord file ({exc})", path=self.path) from exc
        # Only an uncompressed file knows its size without decompressing; it lets the index detect a
        # truncated last record without reading it.
        size = os.fstat(f.fileno()).st_size if self.compression == "" else None
        offset = 0
        try:
            with f:
                while True:
                    try:
                        head = f.read(HEADER_SIZE)
                    except (OSError, EOFError, zlib.error) as exc:
                        self._fail(f"unreadable GZIP stream ({exc})", offset)
                        return
                    if not head:
                        return
                    if len(head) < HEADER_SIZE:
                        self._fail(f"truncated record: cut in the {len(head)}-byte header", offset)
                        return
                    length, length_crc = _U64_U32.unpack(head)
                    if masked_crc32c(head[:8]) != length_crc:
                        self._fail("length CRC mismatch" + self._hint(offset, head), offset)
                        found = self._resync(f, offset + 1, size)
                        if found is None:
                            return
                        offset = found
                        continue
                    rec = RecordIndex(offset, length)
                    if read_data or size is None:
                        # Payload and footer in two reads: slicing one combined read would copy the
                        # payload again (measured: 30-40 % slower on 2.3 MB records).
                        try:
                            data = f.read(length)
                            footer = f.read(FOOTER_SIZE) if len(data) == length else b""
                        except (OSError, EOFError, zlib.error) as exc:
                            self._fail(f"unreadable GZIP stream ({exc})", offset)
                            return
                        if len(footer) < FOOTER_SIZE:
                            have = len(data) + len(footer)
                            where = "data" if len(data) < length else "data CRC footer"
                            self._fail(f"truncated record: cut in the {where} ({have} of "
                                       f"{length + FOOTER_SIZE} bytes after the header)", offset)
                            return
                        if read_data and self.verify_data and masked_crc32c(data) != _U32.unpack(footer)[0]:
                            self._fail("data CRC mismatch", offset)
                        else:
                            yield rec, (data if read_data else None)
                    else:
                        if rec.end > size:
                            have = size - rec.data_offset
                            where = "data" if have < length else "data CRC footer"
                            self._fail(f"truncated record: cut in the {where} ({have} of "
                                       f"{length + FOOTER_SIZE} bytes after the header)", offset)
                            return
                        f.seek(rec.end)
                        yield rec, None
                    offset = rec.end
        finally:
            if self.corrupt:
                log.warning("%s: skipped %d corrupt record(s)", self.path, len(self.corrupt))

    def _resync(self, f: BinaryIO, start: int, size: int | None) -> int | None:
        """Find the first offset >= ``start`` holding a record whose length and data CRCs both check."""
        pos = start
        while True:
            f.seek(pos)
            chunk = f.read(_RESYNC_CHUNK + HEADER_SIZE - 1)
            if len(chunk) < HEADER_SIZE:
                return None
            for i in range(len(chunk) - HEADER_SIZE + 1):
                length, length_crc = _U64_U32.unpack_from(chunk, i)
                if size is not None and pos + i + HEADER_SIZE + length + FOOTER_SIZE > size:
                    continue
                if masked_crc32c(chunk[i:i + 8]) != length_crc:
                    continue
                # A false header match has odds of 2**-32 per position; the data CRC confirms it.
                f.seek(pos + i + HEADER_SIZE)
                body = f.read(length + FOOTER_SIZE)
                if len(body) == length + FOOTER_SIZE and masked_crc32c(body[:length]) == _U32.unpack_from(
                        body, length)[0]:
                    f.seek(pos + i)
                    log.warning("%s: resynchronised at byte offset %d", self.path, pos + i)
                    return pos + i
            pos += len(chunk) - HEADER_SIZE + 1


def _index_intact(path: Path) -> list[RecordIndex] | None:
    """Index an uncompressed file in a tight loop; ``None`` at the first sign of damage.

    The general scan costs ~2x per record (it handles GZIP, skipping and payloads); shards of small
    records are indexed at ~0.9 M records/s this way. Damage is rare, so the caller rescans then.
    """
    out: list[RecordIndex] = []
    append, unpack, crc32c = out.append, _U64_U32.unpack, google_crc32c.value
    offset = 0
    try:
        f = open(path, "rb", buffering=_INDEX_BUFFER)
    except OSError:
        return None
    with f:
        size = os.fstat(f.fileno()).st_size
        read, seek = f.read, f.seek
        while head := read(HEADER_SIZE):
            if len(head) < HEADER_SIZE:
                return None
            length, length_crc = unpack(head)
            crc = crc32c(head[:8])
            end = offset + HEADER_SIZE + length + FOOTER_SIZE
            if ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + MASK_DELTA) & 0xFFFFFFFF != length_crc or end > size:
                return None
            append(RecordIndex(offset, length))
            offset = end
            seek(end)
    return out


def read_records(path: str | os.PathLike[str], *, compression: Compression = "") -> Iterator[bytes]:
    """Yield every payload of a TFRecord file, raising :class:`CorruptRecordError` on damage."""
    return iter(TFRecordReader(path, compression=compression))


def index_shard(path: str | os.PathLike[str], *, verify_data: bool = False) -> list[RecordIndex]:
    """Index an uncompressed TFRecord shard: one seek per record, length CRCs checked.

    Args:
        path: the shard.
        verify_data: also read every payload and check its CRC.

    Returns:
        The records in file order.

    Raises:
        CorruptRecordError: a record is truncated or fails a checked CRC.
    """
    return TFRecordReader(path).index(verify_data=verify_data)


def read_record(source: str | os.PathLike[str] | BinaryIO, offset: int, length: int) -> bytes:
    """Read one record of an uncompressed shard at a known place: one seek, one read, both CRCs checked.

    Args:
        source: the shard's path, or an open binary file of it (kept open by the caller for many reads).
        offset: the record's header offset (:attr:`RecordIndex.offset`).
        length: its payload length (:attr:`RecordIndex.length`); checked against the stored length, so a
            stale index is caught.

    Returns:
        The payload.

    Raises:
        CorruptRecordError: truncated, stale index or CRC mismatch.
    """
    if isinstance(source, (str, os.PathLike)):
        try:
            f = open(source, "rb")
        except OSError as exc:
            raise DataError(f"cannot open TFRecord file ({exc})", path=Path(source)) from exc
        with f:
            return read_record(f, offset, length)
    path = Path(getattr(source, "name", "<file object>"))
    source.seek(offset)
    # Header, payload and footer are read separately (a buffered file turns them into ~2 system calls)
    # so that the payload is not copied out of a combined buffer; the header is checked first so that a
    # wrong offset or length never triggers a huge read.
    head = source.read(HEADER_SIZE)
    if len(head) < HEADER_SIZE:
        raise CorruptRecordError(f"truncated record: cut in the {len(head)}-byte header", path=path, offset=offset)
    stored, length_crc = _U64_U32.unpack(head)
    if masked_crc32c(head[:8]) != length_crc:
        raise CorruptRecordError("length CRC mismatch (is the offset a record start?)", path=path, offset=offset)
    if stored != length:
        raise CorruptRecordError(f"stored length {stored} differs from the indexed {length} (stale index?)",
                                 path=path, offset=offset)
    data = source.read(length)
    footer = source.read(FOOTER_SIZE) if len(data) == length else b""
    if len(footer) < FOOTER_SIZE:
        raise CorruptRecordError(f"truncated record: {HEADER_SIZE + len(data) + len(footer)} of "
                                 f"{HEADER_SIZE + length + FOOTER_SIZE} bytes", path=path, offset=offset)
    if masked_crc32c(data) != _U32.unpack(footer)[0]:
        raise CorruptRecordError("data CRC mismatch", path=path, offset=offset)
    return data


class _GzipSink:
    """A write-only gzip stream with TensorFlow's zlib settings (``ZlibCompressionOptions::GZIP``).

    ``gzip.GzipFile`` would put the temporary file's name and a timestamp into the header; TensorFlow
    writes neither.
    """

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._z = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, 16 + zlib.MAX_WBITS, 9)

    def write(self, data: bytes) -> None:
        self._raw.write(self._z.compress(data))

    def finish(self) -> None:
        self._raw.write(self._z.flush(zlib.Z_FINISH))


class TFRecordWriter:
    """Write a TFRecord file atomically: records go to a temporary file renamed into place on close.

    Use as a context manager; if the block raises, the temporary file is removed and ``path`` is left as
    it was, so an interrupted run never leaves a half-written shard that looks complete.

    Args:
        path: the final file (its directory is created).
        compression: ``""`` (byte-identical to TensorFlow) or ``"GZIP"`` (readable by TensorFlow's
            ``compression_type="GZIP"``; same zlib settings, byte identity not claimed).
        fsync: flush the data to disk before the rename, so a crash cannot leave an empty file behind.
    """

    def __init__(self, path: str | os.PathLike[str], compression: Compression = "", *, fsync: bool = True) -> None:
        if compression not in ("", "GZIP"):
            raise ValueError(f"compression must be '' or 'GZIP', got {compression!r}")
        self.path = Path(path)
        self.compression = compression
        self.fsync = fsync
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # A unique name beside the target (same file system, so the rename is atomic); opened with "xb"
        # rather than mkstemp so the file gets the usual umask permissions, not 0600.
        self._tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        self._raw: BinaryIO | None = open(self._tmp, "xb", buffering=_READ_BUFFER)
        self._sink = _GzipSink(self._raw) if compression == "GZIP" else None
        self._offset = 0

    def write(self, data: bytes) -> RecordIndex:
        """Append one record; returns where it lies (uncompressed offsets)."""
        if self._raw is None:
            raise ValueError(f"TFRecordWriter for {self.path} is closed")
        rec = RecordIndex(self._offset, len(data))
        length = struct.pack("<Q", len(data))
        out = self._sink or self._raw
        # Three writes rather than encode_record(): no copy of a multi-MB payload into a new buffer.
        out.write(length + _U32.pack(masked_crc32c(length)))
        out.write(data)
        out.write(_U32.pack(masked_crc32c(data)))
        self._offset = rec.end
        return rec

    def close(self) -> None:
        """Finish the file and rename it into place."""
        raw, self._raw = self._raw, None
        if raw is None:
            return
        try:
            if self._sink is not None:
                self._sink.finish()
            raw.flush()
            if self.fsync:
                os.fsync(raw.fileno())
            raw.close()
            os.replace(self._tmp, self.path)
        except BaseException:
            raw.close()
            self._tmp.unlink(missing_ok=True)
            raise

    def abort(self) -> None:
        """Drop everything written; ``path`` is left untouched."""
        raw, self._raw = self._raw, None
        if raw is not None:
            raw.close()
            self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> TFRecordWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_records(path: str | os.PathLike[str], records: Iterable[bytes], *,
                  compression: Compression = "") -> list[RecordIndex]:
    """Write ``records`` to ``path`` atomically; returns their index (uncompressed offsets)."""
    with TFRecordWriter(path, compression) as w:
        return [w.write(r) for r in records]
