"""A minimal protobuf wire-format walker: find an E2EDFrame's name, timestamp and non-image fields without reading
its camera images (each is skipped by its length), so that indexing a 2.3 MB frame costs two small reads.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from google.protobuf.message import DecodeError

#: First read of a record while indexing: the frame name is in the first ~100 bytes, calibrations follow.
PEEK_BYTES = 8192


class Payload:
    """Random access to one record's payload: a bytes object or a shard file read in small windows."""

    def __init__(self, data: bytes | None = None, f: BinaryIO | None = None, start: int = 0, length: int = 0) -> None:
        self.f, self.start = f, start
        self.length = len(data) if data is not None else length
        self.buf, self.buf_at = (data or b""), 0

    def get(self, pos: int, n: int) -> bytes:
        """Payload bytes ``[pos, pos + n)`` (fewer at the end of the payload)."""
        end = min(pos + n, self.length)
        if self.buf_at <= pos and end <= self.buf_at + len(self.buf):
            return self.buf[pos - self.buf_at:end - self.buf_at]
        if self.f is None:  # cannot happen: a bytes payload is whole
            raise DecodeError(f"payload byte {pos} is outside the record")
        self.f.seek(self.start + pos)
        want = max(end - pos, PEEK_BYTES)
        self.buf, self.buf_at = self.f.read(min(want, self.length - pos)), pos
        return self.buf[:end - pos]


def _varint(src: Payload, pos: int) -> tuple[int, int]:
    chunk = src.get(pos, 10)
    value = shift = 0
    for i, b in enumerate(chunk):
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos + i + 1
        shift += 7
    raise DecodeError(f"bad varint at payload byte {pos}")


def _fields(src: Payload, start: int, end: int) -> Iterator[tuple[int, int, int, int, int]]:
    """``(field number, wire type, tag start, value start, value end)`` of each field in ``[start, end)``.

    For varints the value end is just past the varint; for fixed and length-delimited fields it is the
    end of the value (the bytes are not read).
    """
    pos = start
    while pos < end:
        tag, vpos = _varint(src, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            _, vend = _varint(src, vpos)
        elif wire == 1:
            vend = vpos + 8
        elif wire == 2:
            n, vpos = _varint(src, vpos)
            vend = vpos + n
        elif wire == 5:
            vend = vpos + 4
        else:
            raise DecodeError(f"unsupported wire type {wire} at payload byte {pos}")
        if number == 0 or vend > end:
            raise DecodeError(f"field {number} at payload byte {pos} runs past its message")
        yield number, wire, pos, vpos, vend
        pos = vend


def peek_frame(src: Payload) -> tuple[str, int, bytes]:
    """Frame name, ``timestamp_micros`` and the E2EDFrame without its ``frame`` field (the serialized tail).

    Reads ``frame.context.name`` and ``frame.timestamp_micros`` and every top-level field other than
    ``frame`` (1); the cameras inside ``frame`` are skipped by their lengths.
    """
    name, ts = "", 0
    tail: list[bytes] = []
    for number, wire, tag_at, vpos, vend in _fields(src, 0, src.length):
        if number != 1 or wire != 2:
            tail.append(src.get(tag_at, vend - tag_at))
            continue
        found_name = found_ts = False
        for fnum, fwire, _, fv, fend in _fields(src, vpos, vend):  # Frame
            if fnum == 1 and fwire == 2:  # context
                for cnum, cwire, _, cv, cend in _fields(src, fv, fend):
                    if cnum == 1 and cwire == 2:
                        name = src.get(cv, cend - cv).decode("utf-8")
                        found_name = True
                        break
            elif fnum == 2 and fwire == 0:  # timestamp_micros (int64: two's complement varint)
                ts, _ = _varint(src, fv)
                ts = ts - (1 << 64) if ts >= 1 << 63 else ts
                found_ts = True
            if found_name and found_ts:
                break
    return name, ts, b"".join(tail)


__all__ = ["PEEK_BYTES", "Payload", "peek_frame"]
