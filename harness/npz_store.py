"""Uncompressed ``.npz`` files written fast and byte-reproducibly (the scoring scenes' storage).

:func:`npz_bytes` gives the bytes ``np.savez`` would write (fixed time stamps, so equal arrays give equal
bytes), assembled in one pass; :func:`_grouped` / :func:`_ungrouped` pack many small arrays into one member per
storage type plus a layout (each ``.npz`` member costs a zip entry and a header to write and to read); the
``*_view`` writers assemble into a reused per-thread buffer, and :func:`_write_atomically` writes it with
one system call (temp file + rename).
"""

from __future__ import annotations

import io
import math
import os
import struct
import threading
import zlib
from pathlib import Path

import numpy as np

from harness.atomic import temp_path


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """The bytes of an uncompressed ``.npz`` of these arrays, as ``np.savez`` writes it (each array one
    ``<name>.npy`` member in the ``.npy`` format 1.0, stored) but assembled in one pass: ``np.savez``'s zip
    writer costs ~60 µs per member, several times the cost of a scene's small arrays. Members carry a fixed
    time stamp (1980-01-01), so equal arrays give equal bytes. ``np.load`` reads the result.

    Raises:
        ValueError: an object array (not storable without pickles) or a file past the 4 GiB of plain zip.
    """
    out = io.BytesIO()
    central = []
    for name, value in arrays.items():
        a = np.asarray(value)
        if a.dtype.hasobject:
            raise ValueError(f"cannot store array {name!r} of dtype {a.dtype}")
        data = _npy_bytes(a)
        key = f"{name}.npy".encode()
        crc = zlib.crc32(data)
        offset = out.tell()
        out.write(_ZIP_LOCAL.pack(b"PK\x03\x04", 20, 0, 0, 0, _ZIP_DATE, crc, len(data), len(data), len(key), 0))
        out.write(key)
        out.write(data)
        central.append(_ZIP_CENTRAL.pack(b"PK\x01\x02", 20, 20, 0, 0, 0, _ZIP_DATE, crc, len(data), len(data),
                                         len(key), 0, 0, 0, 0, 0, offset) + key)
    start = out.tell()
    for entry in central:
        out.write(entry)
    end = out.tell()
    if end >= 2**32 - 1 or len(central) >= 0xFFFF:
        raise ValueError("npz_bytes: too large for a plain zip (use np.savez)")
    out.write(_ZIP_END.pack(b"PK\x05\x06", 0, 0, len(central), len(central), end - start, start, 0))
    return out.getvalue()


def grouped_npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """``npz_bytes(_grouped(arrays))``, byte for byte, assembled in one buffer: each group's arrays are
    concatenated straight into their member's place and each member's CRC is taken there (no intermediate
    concatenation, ``.npy`` member or zip stream to copy; a scene is a few hundred kB).

    Raises:
        ValueError: as :func:`_grouped` and :func:`npz_bytes`.
    """
    return bytes(_grouped_npz_view(arrays))


#: Per-thread buffer the scene files are assembled in: reused, so that its pages are not faulted in afresh for
#: every scene (a fresh buffer of a few hundred kB costs more to map than to fill).
_ASSEMBLY = threading.local()


def _assembly_buffer(size: int) -> bytearray:
    buf = getattr(_ASSEMBLY, "buf", None)
    if buf is None or len(buf) < size:
        buf = bytearray(max(size, 2 * len(buf) if buf is not None else size))
        _ASSEMBLY.buf = buf
    return buf


def _grouped_npz_view(arrays: dict[str, np.ndarray]) -> memoryview:
    """:func:`grouped_npz_bytes` as a view into this thread's assembly buffer (valid until its next call)."""
    parts, sizes, layout = _group_layout(arrays)
    if any(g[0].dtype.names is not None or g[0].dtype.subdtype is not None for g in parts.values()):
        return memoryview(npz_bytes(_grouped(arrays)))  # not a plain dtype: numpy's own .npy writer
    layout_array = np.array(layout)
    members: list[tuple[bytes, bytes, np.dtype, list[np.ndarray]]] = []  # name, npy header, dtype, parts
    for key, group in parts.items():
        dt = np.concatenate([g[:0] for g in group]).dtype  # np.concatenate's result type (native order)
        members.append((f"{key}.npy".encode(), _npy_header(dt, (sizes[key],), False), dt, group))
    members.append((b"__layout__.npy", _npy_header(layout_array.dtype, layout_array.shape, False),
                    layout_array.dtype, [layout_array]))
    return _assembled(members)


def _npz_view(arrays: dict[str, np.ndarray]) -> memoryview:
    """``npz_bytes(arrays)``, byte for byte, assembled in this thread's buffer (valid until its next use);
    arrays that are not C-contiguous plain dtypes go through :func:`npz_bytes` itself."""
    members: list[tuple[bytes, bytes, np.dtype, list[np.ndarray]]] = []
    for name, value in arrays.items():
        a = np.asarray(value)
        if a.dtype.hasobject:
            raise ValueError(f"cannot store array {name!r} of dtype {a.dtype}")
        if (a.dtype.names is not None or a.dtype.subdtype is not None or a.ndim > 64
                or not a.flags.c_contiguous):
            return memoryview(npz_bytes(arrays))
        members.append((f"{name}.npy".encode(), _npy_header(a.dtype, a.shape, False), a.dtype, [a.reshape(-1)]))
    return _assembled(members)


def _assembled(members: list[tuple[bytes, bytes, np.dtype, list[np.ndarray]]]) -> memoryview:
    """The stored zip of ``.npy`` members (name, header, dtype, the arrays concatenated as its data), as
    :func:`npz_bytes` lays it out, in this thread's assembly buffer."""
    total = _ZIP_END.size
    for name, header, dt, group in members:
        n_bytes = sum(g.size for g in group) * dt.itemsize
        total += _ZIP_LOCAL.size + _ZIP_CENTRAL.size + 2 * len(name) + len(header) + n_bytes
    if total >= 2**32 - 1 or len(members) >= 0xFFFF:
        raise ValueError("npz_bytes: too large for a plain zip (use np.savez)")
    buf = _assembly_buffer(total)
    view = memoryview(buf)
    pos = 0
    central = []
    for name, header, dt, group in members:
        n_items = sum(g.size for g in group)
        start = pos + _ZIP_LOCAL.size + len(name)
        data_at = start + len(header)
        end = data_at + n_items * dt.itemsize
        view[start:data_at] = header
        if n_items:
            out = np.frombuffer(buf, dtype=dt, count=n_items, offset=data_at)
            if len(group) == 1:
                out[...] = group[0]
            else:
                np.concatenate(group, out=out)
        size = end - start
        crc = zlib.crc32(view[start:end])
        _ZIP_LOCAL.pack_into(buf, pos, b"PK\x03\x04", 20, 0, 0, 0, _ZIP_DATE, crc, size, size, len(name), 0)
        view[pos + _ZIP_LOCAL.size : start] = name
        central.append(_ZIP_CENTRAL.pack(b"PK\x01\x02", 20, 20, 0, 0, 0, _ZIP_DATE, crc, size, size, len(name),
                                         0, 0, 0, 0, 0, pos) + name)
        pos = end
    directory = pos
    for entry in central:
        view[pos : pos + len(entry)] = entry
        pos += len(entry)
    _ZIP_END.pack_into(buf, pos, b"PK\x05\x06", 0, 0, len(central), len(central), pos - directory, directory, 0)
    return view[:total]


#: Directories known to exist (the scene directories of a cache: created once, not stat-ed per file).
_MADE_DIRS: set[str] = set()


def _write_atomically(path: Path, data: bytes | bytearray | memoryview) -> None:
    """``atomic_write_bytes`` with the target directory created once per process and the bytes written by
    one ``os.write`` (no buffered file object)."""
    parent = str(path.parent)
    if parent not in _MADE_DIRS:
        path.parent.mkdir(parents=True, exist_ok=True)
        _MADE_DIRS.add(parent)
    tmp = str(temp_path(path))
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    except FileNotFoundError:  # the directory was removed since: create it again
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _npy_header(dtype: np.dtype, shape: tuple[int, ...], fortran: bool) -> bytes:
    """The ``.npy`` 1.0 magic, length and padded header of :func:`_npy_bytes` (plain dtypes)."""
    header = f"{{'descr': {dtype.str!r}, 'fortran_order': {fortran!r}, 'shape': {shape!r}, }}".encode("latin1")
    pad = 64 - (10 + len(header) + 1) % 64
    return b"".join((b"\x93NUMPY\x01\x00", struct.pack("<H", len(header) + pad + 1), header, b" " * pad, b"\n"))


def _npy_bytes(a: np.ndarray) -> bytes:
    """``np.lib.format.write_array(a, version=(1, 0))``'s bytes; plain dtypes directly (its writer costs ~15 µs
    an array, most of it in the generic header code), anything else through it."""
    if a.dtype.names is not None or a.dtype.subdtype is not None or a.dtype.hasobject or a.ndim > 64:
        member = io.BytesIO()
        np.lib.format.write_array(member, a, version=(1, 0), allow_pickle=False)
        return member.getvalue()
    fortran = bool(a.flags.f_contiguous and not a.flags.c_contiguous)
    header = f"{{'descr': {a.dtype.str!r}, 'fortran_order': {fortran!r}, 'shape': {a.shape!r}, }}".encode("latin1")
    pad = 64 - (10 + len(header) + 1) % 64  # magic, version and length, then the header padded to 64 bytes
    return b"".join((b"\x93NUMPY\x01\x00", struct.pack("<H", len(header) + pad + 1), header, b" " * pad, b"\n",
                     a.tobytes(order="F" if fortran else "C")))


#: Zip records (APPNOTE 4.3.7, 4.3.12, 4.3.16): local header, central directory entry, end of central directory.
_ZIP_LOCAL = struct.Struct("<4sHHHHHLLLHH")
_ZIP_CENTRAL = struct.Struct("<4sHHHHHHLLLHHHHHLL")
_ZIP_END = struct.Struct("<4sHHHHLLH")
#: MS-DOS date of 1980-01-01 (day 1, month 1, year 0 from 1980).
_ZIP_DATE = (0 << 9) | (1 << 5) | 1


def _grouped(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A scene's arrays as a few ``.npz`` members: the bytes of all arrays of one storage type concatenated
    into one member named by it (``"<f8"``, ``"<i8"``, ``"|b1"``, ...; unicode arrays of every width as their
    UCS-4 code units in ``"<u4"``), and ``__layout__``, one string per array: ``name:dtype:offset:shape``
    (offset in elements of the member). Each ``.npz`` member costs a zip entry and a header to write and to
    read, which dominated the time of a scene's many small arrays."""
    blobs, _, layout = _group_layout(arrays)
    out = {key: np.concatenate(parts) for key, parts in blobs.items()}
    out["__layout__"] = np.array(layout)
    return out


def _ungrouped(members: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The arrays of :func:`_grouped` (views into the members).

    Raises:
        KeyError, ValueError, TypeError: a malformed layout or a member that does not hold it.
    """
    out: dict[str, np.ndarray] = {}
    for entry in members["__layout__"].tolist():
        name, dtype_str, offset, shape = str(entry).split(":")
        dtype = np.dtype(dtype_str)
        if dtype.hasobject:
            raise TypeError(f"array {name!r}: object dtype")
        dims = tuple(int(d) for d in shape.split(",")) if shape else ()
        count = math.prod(dims)
        if dtype.kind == "U":
            key, units = ("<u4" if dtype_str.startswith("<") else ">u4"), dtype.itemsize // 4
        else:
            key, units = dtype_str, 1
        member = members[key]
        lo = int(offset)
        hi = lo + count * units
        if member.ndim != 1 or lo < 0 or hi > member.size:
            raise ValueError(f"array {name!r} lies outside member {key!r}")
        part = member[lo:hi]
        out[name] = (part.view(dtype) if units > 1 or dtype.kind == "U" else part).reshape(dims)
    return out


def _group_layout(arrays: dict[str, np.ndarray]) -> tuple[dict[str, list[np.ndarray]], dict[str, int], list[str]]:
    """The grouping of :func:`_grouped`: per storage type its arrays flattened (C order; unicode as UCS-4
    code units) and its size in elements, and the ``name:dtype:offset:shape`` layout entries."""
    parts: dict[str, list[np.ndarray]] = {}
    sizes: dict[str, int] = {}
    layout = []
    for name, value in arrays.items():
        a = np.asarray(value)
        dtype = a.dtype.str
        if a.dtype.hasobject or ":" in name or ":" in dtype:
            raise ValueError(f"cannot store array {name!r} of dtype {a.dtype}")
        flat = np.ascontiguousarray(a).reshape(-1)
        if a.dtype.kind == "U":
            flat = flat.view(np.dtype("<u4") if dtype.startswith("<") else np.dtype(">u4"))
        key = flat.dtype.str
        offset = sizes.get(key, 0)
        layout.append(f"{name}:{dtype}:{offset}:{','.join(str(d) for d in a.shape)}")
        parts.setdefault(key, []).append(flat)
        sizes[key] = offset + flat.size
    return parts, sizes, layout
