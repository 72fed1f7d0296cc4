"""PCD reading and writing: nuPlan's merged-cloud layout, and every DATA format a PCD reader meets."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from adapters.navsim.pcd import NUPLAN_PCD_FIELDS, lzf_decompress, read_pcd, write_pcd
from harness.errors import DataError

DEVKIT_HEADER_KEYS = {"version", "fields", "size", "type", "count", "width", "height", "viewpoint", "points", "data"}


def _cloud(n: int = 257, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pts = np.empty((n, 6), dtype=np.float32)
    pts[:, :3] = rng.normal(0, 30, (n, 3))
    pts[:, 3] = rng.integers(0, 256, n)
    pts[:, 4] = rng.integers(0, 32, n)
    pts[:, 5] = rng.integers(0, 5, n)
    return pts


def _devkit_style_parse(raw: bytes) -> np.ndarray:
    """What nuplan-devkit's ``PointCloud.parse(...).to_pcd_bin2()`` does, re-stated from its documented rules:
    header ``key value`` lines until ``data`` (``#`` lines skipped), exactly the ten keys, COUNT all 1, int
    VIEWPOINT, ``binary`` data of native I/U/F types, then the six named fields as rows of float32."""
    lines, pos = [], 0
    while True:
        end = raw.index(b"\n", pos)
        line = raw[pos:end].decode("utf8").strip()
        pos = end + 1
        if line.startswith("#"):
            continue
        cols = line.split()
        lines.append((cols[0].lower(), cols[1:] if len(cols) > 2 else cols[1]))
        if cols[0].lower() == "data":
            break
    head = dict(lines)
    assert set(head) == DEVKIT_HEADER_KEYS
    assert [int(c) for c in head["count"]] == [1] * len(head["fields"])
    [int(v) for v in head["viewpoint"]]  # must not raise
    assert head["data"] == "binary"
    kinds = {"I": "int", "U": "uint", "F": "float"}
    dtype = np.dtype([(f, kinds[t] + str(int(s) * 8)) for f, t, s in zip(head["fields"], head["type"], head["size"])])
    n = int(head["points"])
    buf = raw[pos:pos + dtype.itemsize * n]
    assert len(buf) == dtype.itemsize * n
    rows = np.frombuffer(buf, dtype)
    return np.array([np.array(rows[f], dtype=np.float32) for f in NUPLAN_PCD_FIELDS])


def _lzf_literals(data: bytes) -> bytes:
    """The simplest valid LZF stream: literal runs of at most 32 bytes."""
    out = bytearray()
    for i in range(0, len(data), 32):
        chunk = data[i:i + 32]
        out.append(len(chunk) - 1)
        out += chunk
    return bytes(out)


def test_round_trip_and_devkit_layout(tmp_path: Path) -> None:
    pts = _cloud()
    path = tmp_path / "sub" / "cloud.pcd"
    write_pcd(path, pts)
    assert [p.name for p in path.parent.iterdir()] == ["cloud.pcd"]  # no temporary file left behind
    back = read_pcd(path)
    assert back.dtype == np.float32 and back.shape == pts.shape
    np.testing.assert_array_equal(back, pts)
    np.testing.assert_array_equal(read_pcd(path.read_bytes()), pts)
    raw = path.read_bytes()
    assert raw.startswith(b"# .PCD v0.7")
    assert b"FIELDS x y z intensity ring lidar_info\n" in raw
    np.testing.assert_array_equal(_devkit_style_parse(raw), pts.T)  # NAVSIM's Lidar.lidar_pc, shape (6, N)


def test_empty_cloud_and_bad_shape(tmp_path: Path) -> None:
    path = tmp_path / "empty.pcd"
    write_pcd(path, np.zeros((0, 6), np.float32))
    assert read_pcd(path).shape == (0, 6)
    assert _devkit_style_parse(path.read_bytes()).shape == (6, 0)
    with pytest.raises(ValueError, match="shape"):
        write_pcd(path, np.zeros((4, 5)))


def test_read_ascii() -> None:
    raw = (b"# .PCD v0.7\nVERSION 0.7\nFIELDS x y z intensity\nSIZE 4 4 4 1\nTYPE F F F U\nCOUNT 1 1 1 1\n"
           b"WIDTH 3\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS 3\nDATA ascii\n"
           b"1.5 -2 0.25 7\n0 0 0 0\n-3e2 4.125 1 255\n")
    np.testing.assert_array_equal(read_pcd(raw), np.array([[1.5, -2, 0.25, 7], [0, 0, 0, 0], [-300, 4.125, 1, 255]],
                                                          np.float32))


def test_read_binary_mixed_types_and_counts(tmp_path: Path) -> None:
    dtype = np.dtype([("x", "<f4"), ("y", "<f8"), ("rgb", "<u1", (3,)), ("ring", "<u2"), ("t", "<i4")])
    rows = np.zeros(4, dtype)
    rows["x"], rows["y"] = [1, 2, 3, 4], [-1.5, 0, 2.5, 1e3]
    rows["rgb"] = [[1, 2, 3], [4, 5, 6], [7, 8, 9], [250, 251, 252]]
    rows["ring"], rows["t"] = [0, 1, 63, 65535], [-5, 0, 5, 2**31 - 1]
    header = (b"VERSION .7\nFIELDS x y rgb ring t\nSIZE 4 8 1 2 4\nTYPE F F U U I\nCOUNT 1 1 3 1 1\nWIDTH 4\n"
              b"HEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS 4\nDATA binary\n")
    path = tmp_path / "mixed.pcd"
    path.write_bytes(header + rows.tobytes() + b"\0\0\0")  # trailing padding is ignored, as nuPlan's loader does
    got = read_pcd(path)
    assert got.shape == (4, 7)
    np.testing.assert_array_equal(got[:, 0], rows["x"])
    np.testing.assert_array_equal(got[:, 2:5], rows["rgb"])
    np.testing.assert_array_equal(got[:, 5], rows["ring"])
    np.testing.assert_array_equal(got[:, 6], np.float32(rows["t"]))


def test_lzf_known_stream() -> None:
    # 'a' as a literal, then a back reference at distance 1 of length 9: ctrl = 7 << 5, length byte 0, offset 0.
    assert lzf_decompress(bytes([0x00, ord("a"), 0xE0, 0x00, 0x00]), 10) == b"a" * 10
    # literal 'abc', then back reference distance 3 length 3 (ctrl = 1 << 5, offset byte 2).
    assert lzf_decompress(b"\x02abc\x20\x02", 6) == b"abcabc"
    with pytest.raises(DataError, match="LZF"):
        lzf_decompress(b"\x20\x05", 3)  # reference before the start


def test_read_binary_compressed() -> None:
    pts = _cloud(50, seed=1)[:, :4]
    n = len(pts)
    # binary_compressed stores each field's column contiguously before compression.
    plain = b"".join(np.ascontiguousarray(pts[:, j]).astype("<f4").tobytes() for j in range(4))
    plain_rep = plain + b"\x00" * 0  # exact size
    comp = _lzf_literals(plain_rep)
    header = (b"# .PCD v0.7\nVERSION 0.7\nFIELDS x y z intensity\nSIZE 4 4 4 4\nTYPE F F F F\nCOUNT 1 1 1 1\n"
              b"WIDTH %d\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS %d\nDATA binary_compressed\n" % (n, n))
    raw = header + struct.pack("<II", len(comp), len(plain_rep)) + comp
    np.testing.assert_array_equal(read_pcd(raw), pts)
    with pytest.raises(DataError, match="truncated"):
        read_pcd(raw[:-10])


def test_truncated_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "cut.pcd"
    write_pcd(path, _cloud(10))
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(DataError, match="truncated") as info:
        read_pcd(path)
    assert info.value.path == path and str(path) in str(info.value)


@pytest.mark.parametrize("raw", [
    b"\x89PNG\r\n\x1a\n\x00\x00garbage without a header",
    b"hello world\nthis is not a point cloud\n",
    b"VERSION 0.7\nFIELDS x y\nSIZE 4\nTYPE F F\nWIDTH 1\nPOINTS 1\nDATA binary\n\0\0\0\0\0\0\0\0",
    b"VERSION 0.7\nSIZE 4 4\nTYPE F F\nWIDTH 1\nPOINTS 1\nDATA binary\n\0\0\0\0\0\0\0\0",
    b"VERSION 0.7\nFIELDS x\nSIZE 3\nTYPE F\nWIDTH 1\nPOINTS 1\nDATA binary\n\0\0\0",
    b"VERSION 0.7\nFIELDS x\nSIZE 4\nTYPE F\nWIDTH 1\nPOINTS 1\nDATA json\n\0\0\0\0",
])
def test_garbage_header_names_the_path(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "bad.pcd"
    path.write_bytes(raw)
    with pytest.raises(DataError) as info:
        read_pcd(path)
    assert str(path) in str(info.value)


def test_missing_file_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot read"):
        read_pcd(tmp_path / "absent.pcd")
