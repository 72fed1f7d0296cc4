"""PCD (Point Cloud Data v0.7) files as nuPlan/OpenScene store the merged LiDAR cloud.

What the official loader accepts (motional/nuplan-devkit ``nuplan/database/utils/pointclouds/pointcloud.py``,
``PointCloud.parse``, reached from NAVSIM's ``Lidar.from_paths`` through
``LidarPointCloud.from_buffer(..., "pcd").points``):

* header lines ``KEY value...`` until ``DATA``; lines starting with ``#`` are skipped, a blank line is fatal;
* exactly the keys VERSION, FIELDS, SIZE, TYPE, COUNT, WIDTH, HEIGHT, VIEWPOINT, POINTS, DATA (they become
  a NamedTuple, so an extra or missing key fails); VIEWPOINT values must parse as ints; every COUNT must be 1;
* ``DATA binary`` only, in that lower case; rows packed without padding, native (little-endian) types from
  TYPE (I/U/F) and SIZE; trailing bytes after ``POINTS`` rows are ignored;
* fields named x, y, z, intensity, ring, lidar_info, which become the rows of a ``(6, N)`` float32 array.

:func:`write_pcd` writes exactly that (all fields float32). :func:`read_pcd` is more lenient, as PCD readers
go: ascii, binary and binary_compressed (LZF) data, optional COUNT, any I/U/F type.
"""

from __future__ import annotations

import os
import struct
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from harness.errors import DataError

NUPLAN_PCD_FIELDS = ("x", "y", "z", "intensity", "ring", "lidar_info")

_TYPES = {("F", 4): "f4", ("F", 8): "f8", ("I", 1): "i1", ("I", 2): "i2", ("I", 4): "i4", ("I", 8): "i8",
          ("U", 1): "u1", ("U", 2): "u2", ("U", 4): "u4", ("U", 8): "u8"}
_MAX_HEADER_BYTES = 64 * 1024


def write_pcd(path: Path, points: npt.ArrayLike, fields: Sequence[str] = NUPLAN_PCD_FIELDS) -> None:
    """Write a binary PCD v0.7 file of float32 fields, atomically (temporary file, then rename).

    Args:
        path: destination; parent directories are created.
        points: ``(N, F)`` values, one column per field (cast to float32).
        fields: the field names; the default is nuPlan's merged-cloud layout.

    Raises:
        ValueError: ``points`` is not ``(N, len(fields))`` or a field name is not a single token.
    """
    pts = np.asarray(points, dtype=np.float32)
    names = list(fields)
    if pts.ndim != 2 or pts.shape[1] != len(names) or not names:
        raise ValueError(f"write_pcd: expected points of shape (N, {len(names)}) for fields {names}, got {pts.shape}")
    if any(not n or any(ch.isspace() for ch in n) for n in names):
        raise ValueError(f"write_pcd: field names must be non-empty single tokens, got {names}")
    n, f = pts.shape
    header = (
        "# .PCD v0.7 - Point Cloud Data file format\n"
        "VERSION 0.7\n"
        f"FIELDS {' '.join(names)}\n"
        f"SIZE {' '.join(['4'] * f)}\n"
        f"TYPE {' '.join(['F'] * f)}\n"
        f"COUNT {' '.join(['1'] * f)}\n"
        f"WIDTH {n}\n"
        "HEIGHT 1\n"
        "VIEWPOINT 0 0 0 1 0 0 0\n"
        f"POINTS {n}\n"
        "DATA binary\n"
    )
    body = np.ascontiguousarray(pts, dtype="<f4").tobytes()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # A unique sibling name: the rename is atomic on one file system, and concurrent writers never collide.
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb") as fh:
            fh.write(header.encode("ascii"))
            fh.write(body)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_pcd(source: Path | str | bytes) -> npt.NDArray[np.float32]:
    """Read a PCD file into ``(N, F)`` float32, one column per field component (FIELDS order).

    Args:
        source: a file path, or the file's bytes.

    Raises:
        DataError: unreadable file, malformed header, unsupported type or data format, or truncated data;
            the message names the file (``path`` is None for in-memory bytes).
    """
    path = None if isinstance(source, bytes | bytearray) else Path(source)
    if path is None:
        raw = bytes(source)  # type: ignore[arg-type]
    else:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise DataError(f"cannot read PCD file ({exc.strerror or exc})", path=path) from exc
    header, body = _split_header(raw, path)
    names, dtypes, counts, n, data = _parse_header(header, path)
    if data == "ascii":
        return _read_ascii(body, sum(counts), n, path)
    fmt = np.dtype([(f"f{i}", np.dtype("<" + t), (c,)) for i, (t, c) in enumerate(zip(dtypes, counts))])
    if data == "binary":
        if len(body) < n * fmt.itemsize:
            raise DataError(f"truncated PCD: {n} points need {n * fmt.itemsize} bytes of data, found {len(body)}",
                            path=path)
        rows = np.frombuffer(body, dtype=fmt, count=n)
        return _columns([rows[f"f{i}"].reshape(n, c) for i, c in enumerate(counts)], n)
    if data == "binary_compressed":
        if len(body) < 8:
            raise DataError("truncated PCD: binary_compressed data lacks its size words", path=path)
        csize, usize = struct.unpack("<II", body[:8])
        if len(body) < 8 + csize:
            raise DataError(f"truncated PCD: {csize} compressed bytes announced, found {len(body) - 8}", path=path)
        if usize != n * fmt.itemsize:
            raise DataError(f"PCD binary_compressed: {usize} bytes unpack, {n} points need {n * fmt.itemsize}",
                            path=path)
        flat = lzf_decompress(body[8:8 + csize], usize, path=path)
        # Compressed data is stored field by field (all x, then all y, ...), not point by point.
        cols, pos = [], 0
        for t, c in zip(dtypes, counts):
            size = np.dtype(t).itemsize * c * n
            cols.append(np.frombuffer(flat, dtype="<" + t, count=c * n, offset=pos).reshape(n, c))
            pos += size
        return _columns(cols, n)
    raise DataError(f"unsupported PCD DATA format {data!r} (expected ascii, binary or binary_compressed)", path=path)


def _split_header(raw: bytes, path: Path | None) -> tuple[list[str], bytes]:
    lines: list[str] = []
    pos = 0
    while True:
        end = raw.find(b"\n", pos)
        if end < 0 or end > _MAX_HEADER_BYTES:
            raise DataError("not a PCD file: no DATA line in the header", path=path)
        try:
            line = raw[pos:end].decode("ascii").strip()
        except UnicodeDecodeError as exc:
            raise DataError("not a PCD file: the header is not ASCII text", path=path) from exc
        pos = end + 1
        if line and not line.startswith("#"):
            lines.append(line)
            if line.split()[0].upper() == "DATA":
                return lines, raw[pos:]


def _parse_header(lines: list[str], path: Path | None) -> tuple[list[str], list[str], list[int], int, str]:
    head: dict[str, list[str]] = {}
    for line in lines:
        key, *vals = line.split()
        head[key.upper()] = vals
    try:
        names = head["FIELDS"]
        sizes = [int(v) for v in head["SIZE"]]
        types = [v.upper() for v in head["TYPE"]]
        counts = [int(v) for v in head.get("COUNT", ["1"] * len(names))]
        width = int(head["WIDTH"][0])
        height = int(head.get("HEIGHT", ["1"])[0])
        n = int(head["POINTS"][0]) if "POINTS" in head else width * height
        data = head["DATA"][0].lower()
    except KeyError as exc:
        raise DataError(f"malformed PCD header: missing {exc.args[0]}", path=path) from exc
    except (ValueError, IndexError) as exc:
        raise DataError(f"malformed PCD header ({exc})", path=path) from exc
    if not names or not len(names) == len(sizes) == len(types) == len(counts):
        raise DataError(f"malformed PCD header: FIELDS/SIZE/TYPE/COUNT lengths differ ({len(names)}, {len(sizes)}, "
                        f"{len(types)}, {len(counts)})", path=path)
    if n < 0 or any(c < 1 for c in counts):
        raise DataError("malformed PCD header: negative POINTS or COUNT < 1", path=path)
    try:
        dtypes = [_TYPES[(t, s)] for t, s in zip(types, sizes)]
    except KeyError as exc:
        raise DataError(f"unsupported PCD field type/size {exc.args[0]}", path=path) from exc
    return names, dtypes, counts, n, data


def _read_ascii(body: bytes, width: int, n: int, path: Path | None) -> npt.NDArray[np.float32]:
    try:
        values = np.array(body.decode("ascii").split()[: n * width], dtype=np.float64)
    except (UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"malformed PCD ascii data ({exc})", path=path) from exc
    if len(values) < n * width:
        raise DataError(f"truncated PCD: {n} points x {width} values announced, found {len(values)} values", path=path)
    return values.reshape(n, width).astype(np.float32)


def _columns(cols: list[np.ndarray], n: int) -> npt.NDArray[np.float32]:
    out = np.empty((n, sum(c.shape[1] for c in cols)), dtype=np.float32)
    j = 0
    for c in cols:
        out[:, j:j + c.shape[1]] = c
        j += c.shape[1]
    return out


def lzf_decompress(data: bytes, size: int, *, path: Path | None = None) -> bytes:
    """Decompress LZF (liblzf's format, used by PCL's binary_compressed PCD) into exactly ``size`` bytes.

    Each control byte ``c`` starts either a literal run (``c < 32``: the next ``c + 1`` bytes) or a back
    reference (length ``(c >> 5) + 2``, plus one extension byte when ``c >> 5 == 7``; distance
    ``((c & 31) << 8) + next byte + 1`` back into the output).

    Raises:
        DataError: corrupt input (a reference before the start, a run past either end, a size mismatch).
    """
    out = bytearray(size)
    ip = op = 0
    n = len(data)
    try:
        while ip < n:
            ctrl = data[ip]
            ip += 1
            if ctrl < 32:
                run = ctrl + 1
                if ip + run > n or op + run > size:
                    raise ValueError("literal run past the end")
                out[op:op + run] = data[ip:ip + run]
                ip += run
                op += run
                continue
            length = ctrl >> 5
            if length == 7:
                length += data[ip]
                ip += 1
            ref = op - ((ctrl & 0x1F) << 8) - data[ip] - 1
            ip += 1
            length += 2
            if ref < 0 or op + length > size:
                raise ValueError("back reference outside the output")
            if ref + length <= op:
                out[op:op + length] = out[ref:ref + length]
            else:  # overlapping copy repeats the pattern byte by byte
                for k in range(length):
                    out[op + k] = out[ref + k]
            op += length
    except (IndexError, ValueError) as exc:
        raise DataError(f"corrupt LZF data in PCD ({exc})", path=path) from exc
    if op != size:
        raise DataError(f"corrupt LZF data in PCD: {op} bytes decoded, {size} expected", path=path)
    return bytes(out)
