"""TFRecord container: byte-exact framing, corruption handling, index and random access.

Expected bytes are computed independently of the module under test: a bitwise pure-Python CRC-32C below
(checked against the published check values) and constants worked out by hand from specs/waymo_e2e.md §1.2.
"""

from __future__ import annotations

import gzip
import os
import random
import struct
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.waymo.tfrecord import (
    CorruptRecordError,
    RecordIndex,
    TFRecordReader,
    TFRecordWriter,
    encode_record,
    index_shard,
    masked_crc32c,
    read_record,
    read_records,
    write_records,
)
from harness.errors import DataError


def crc32c_reference(data: bytes) -> int:
    """CRC-32C, bit by bit: reflected polynomial 0x82F63B78, init and final XOR 0xFFFFFFFF."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def mask_reference(crc: int) -> int:
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def frame_reference(data: bytes) -> bytes:
    """One record framed from the definition, with the reference CRC."""
    length = struct.pack("<Q", len(data))
    return (length + struct.pack("<I", mask_reference(crc32c_reference(length))) + data
            + struct.pack("<I", mask_reference(crc32c_reference(data))))


def _payloads(n: int, seed: int = 0, max_size: int = 5000) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(rng.choice((0, 1, rng.randrange(max_size)))) for _ in range(n)]


# --- CRC and framing --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "crc"), [
    (b"123456789", 0xE3069283),  # the CRC-32C check value
    (b"", 0x00000000),
    (bytes(32), 0x8A9136AA),  # RFC 3720 (iSCSI) B.4 test vectors
    (b"\xff" * 32, 0x62A8AB43),
    (bytes(range(32)), 0x46DD794E),
    (bytes(range(31, -1, -1)), 0x113FDB5C),
])
def test_reference_crc32c_matches_published_values(data: bytes, crc: int) -> None:
    assert crc32c_reference(data) == crc


@pytest.mark.parametrize(("data", "masked"), [
    (b"", 0xA282EAD8),  # crc 0 -> mask delta only
    (bytes(8), 0x07980329),  # the length field of an empty record (spec §1.2)
    (b"123456789", 0xC78AB0E5),  # rotr15(0xE3069283) = 0x0527C60D, + 0xA282EAD8
])
def test_masked_crc_known_values(data: bytes, masked: int) -> None:
    assert mask_reference(crc32c_reference(data)) == masked
    assert masked_crc32c(data) == masked


@given(st.binary(max_size=2000))
def test_masked_crc_agrees_with_reference(data: bytes) -> None:
    assert masked_crc32c(data) == mask_reference(crc32c_reference(data))


def test_empty_record_bytes_written_out_by_hand() -> None:
    assert encode_record(b"") == bytes(8) + bytes.fromhex("29039807") + bytes.fromhex("d8ea82a2")


def test_record_bytes_written_out_by_hand() -> None:
    length = bytes.fromhex("0900000000000000")
    expected = (length + struct.pack("<I", mask_reference(crc32c_reference(length))) + b"123456789"
                + bytes.fromhex("e5b08ac7"))
    assert encode_record(b"123456789") == expected
    assert len(expected) == 9 + 16


def test_writer_output_is_the_plain_concatenation_of_framed_records(tmp_path: Path) -> None:
    payloads = _payloads(50)
    path = tmp_path / "a.tfrecord"
    write_records(path, payloads)
    assert path.read_bytes() == b"".join(frame_reference(p) for p in payloads)


def test_empty_file_has_no_records(tmp_path: Path) -> None:
    path = tmp_path / "empty.tfrecord"
    write_records(path, [])
    assert path.read_bytes() == b""
    assert list(read_records(path)) == []
    assert index_shard(path) == []


# --- round trips ------------------------------------------------------------------------------------------


def test_round_trip_many_records(tmp_path: Path) -> None:
    payloads = _payloads(2000, seed=1) + [os.urandom(3 << 20)]  # plus one record larger than the buffers
    path = tmp_path / "many.tfrecord"
    written = write_records(path, payloads)
    assert list(read_records(path)) == payloads
    assert index_shard(path) == written
    assert index_shard(path, verify_data=True) == written
    assert [rec for rec, _ in TFRecordReader(path).records()] == written
    assert written[-1].end == path.stat().st_size


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=30))
def test_any_list_of_byte_strings_round_trips(payloads: list[bytes]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "h.tfrecord"
        index = write_records(path, payloads)
        assert list(read_records(path)) == payloads
        assert index_shard(path) == index
        assert [read_record(path, r.offset, r.length) for r in index] == payloads
        gz = Path(tmp) / "h.tfrecord.gz"
        write_records(gz, payloads, compression="GZIP")
        assert list(read_records(gz, compression="GZIP")) == payloads


# --- truncation and corruption ----------------------------------------------------------------------------


@pytest.fixture()
def three(tmp_path: Path) -> tuple[Path, list[RecordIndex]]:
    path = tmp_path / "three.tfrecord"
    return path, write_records(path, [b"first record", b"second record, a bit longer", b"third"])


@pytest.mark.parametrize(("cut", "where"), [
    (5, "header"), (11, "header"), (12, "data"), (20, "data"), (12 + 27, "footer"), (12 + 27 + 3, "footer"),
])
def test_truncated_record_raises_with_file_and_offset(three, cut: int, where: str) -> None:
    path, index = three
    second = index[1]
    path.write_bytes(path.read_bytes()[: second.offset + cut])
    for read in (lambda: list(read_records(path)), lambda: index_shard(path),
                 lambda: index_shard(path, verify_data=True)):
        with pytest.raises(CorruptRecordError) as info:
            read()
        err = info.value
        assert isinstance(err, DataError)
        assert err.offset == second.offset
        assert err.path == path
        assert f"byte offset {second.offset}" in str(err) and str(path) in str(err)
        assert "truncated" in err.reason and where in err.reason


def test_cut_at_a_record_boundary_is_a_clean_end(three) -> None:
    path, index = three
    path.write_bytes(path.read_bytes()[: index[2].offset])
    assert list(read_records(path)) == [b"first record", b"second record, a bit longer"]
    assert index_shard(path) == index[:2]


def _flip(path: Path, byte_offset: int, bit: int = 0) -> None:
    data = bytearray(path.read_bytes())
    data[byte_offset] ^= 1 << bit
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(("pos", "reason"), [
    (0, "length CRC"),  # in the length
    (9, "length CRC"),  # in the length's CRC
    (14, "data CRC"),  # in the data
    (12 + 27 + 1, "data CRC"),  # in the data's CRC
])
def test_flipped_bit_is_a_crc_error(three, pos: int, reason: str) -> None:
    path, index = three
    _flip(path, index[1].offset + pos, bit=3)
    with pytest.raises(CorruptRecordError, match=reason) as info:
        list(read_records(path))
    assert info.value.offset == index[1].offset


def test_index_checks_only_length_crcs_unless_asked(three) -> None:
    path, index = three
    _flip(path, index[1].data_offset + 2)
    assert index_shard(path) == index  # data not read
    with pytest.raises(CorruptRecordError, match="data CRC"):
        index_shard(path, verify_data=True)


def test_verify_data_false_skips_the_data_crc(three) -> None:
    path, index = three
    _flip(path, index[1].data_offset)
    assert len(list(TFRecordReader(path, verify_data=False))) == 3


def test_skip_corrupt_counts_a_bad_data_crc(tmp_path: Path) -> None:
    payloads = _payloads(6, seed=2)
    path = tmp_path / "s.tfrecord"
    index = write_records(path, payloads)
    _flip(path, index[2].end - 1)  # the data CRC of record 2
    reader = TFRecordReader(path, skip_corrupt=True)
    assert list(reader) == payloads[:2] + payloads[3:]
    assert reader.num_corrupt == 1 and reader.corrupt[0].offset == index[2].offset
    assert "data CRC" in reader.corrupt[0].reason


def test_skip_corrupt_resynchronises_after_a_bad_length(tmp_path: Path) -> None:
    payloads = [os.urandom(n) for n in (100, 2000, 50, 70000, 3)]
    path = tmp_path / "s.tfrecord"
    index = write_records(path, payloads)
    _flip(path, index[1].offset + 2, bit=5)  # the length of record 1: the next header must be searched
    reader = TFRecordReader(path, skip_corrupt=True)
    assert list(reader) == [payloads[0], *payloads[2:]]
    assert [c.offset for c in reader.corrupt] == [index[1].offset]
    assert reader.index() == [index[0], *index[2:]] and reader.num_corrupt == 1


def test_skip_corrupt_counts_a_truncated_tail(three) -> None:
    path, index = three
    path.write_bytes(path.read_bytes()[:-2])
    reader = TFRecordReader(path, skip_corrupt=True)
    assert list(reader) == [b"first record", b"second record, a bit longer"]
    assert reader.num_corrupt == 1 and reader.corrupt[0].offset == index[2].offset
    assert reader.index() == index[:2] and reader.num_corrupt == 1


def test_garbage_only_file_yields_nothing_with_skip_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "junk.tfrecord"
    path.write_bytes(os.urandom(5000))
    reader = TFRecordReader(path, skip_corrupt=True)
    assert list(reader) == [] and reader.num_corrupt == 1
    with pytest.raises(CorruptRecordError, match="length CRC"):
        list(read_records(path))


# --- index and random access ------------------------------------------------------------------------------


def test_random_access_by_index(tmp_path: Path) -> None:
    payloads = _payloads(300, seed=3)
    path = tmp_path / "r.tfrecord"
    write_records(path, payloads)
    index = index_shard(path)
    order = list(range(len(index)))
    random.Random(0).shuffle(order)
    with open(path, "rb") as f:  # one open file for many reads
        for i in order:
            assert read_record(f, index[i].offset, index[i].length) == payloads[i]
    assert read_record(path, index[7].offset, index[7].length) == payloads[7]


def test_random_access_errors(three) -> None:
    path, index = three
    with pytest.raises(CorruptRecordError, match="stale index"):
        read_record(path, index[1].offset, index[1].length + 1)
    with pytest.raises(CorruptRecordError, match="length CRC"):
        read_record(path, index[1].offset + 1, index[1].length)
    with pytest.raises(CorruptRecordError, match="stale index"):
        read_record(path, index[2].offset, index[2].length + 10**12)  # caught before any huge read
    with pytest.raises(CorruptRecordError, match="truncated"):
        read_record(path, index[2].end, 0)  # past the last record
    _flip(path, index[1].data_offset)
    with pytest.raises(CorruptRecordError, match="data CRC") as info:
        read_record(path, index[1].offset, index[1].length)
    assert info.value.offset == index[1].offset and info.value.path == path
    path.write_bytes(path.read_bytes()[:-2])
    with pytest.raises(CorruptRecordError, match="truncated"):
        read_record(path, index[2].offset, index[2].length)


# --- GZIP ---------------------------------------------------------------------------------------------------


def test_gzip_file_written_by_the_gzip_module_is_read(tmp_path: Path) -> None:
    payloads = _payloads(40, seed=4)
    path = tmp_path / "g.tfrecord.gz"
    path.write_bytes(gzip.compress(b"".join(frame_reference(p) for p in payloads)))
    assert list(read_records(path, compression="GZIP")) == payloads
    assert TFRecordReader(path, compression="GZIP").index() == write_records(tmp_path / "u", payloads)


def test_gzip_shard_read_as_uncompressed_says_so(tmp_path: Path) -> None:
    path = tmp_path / "g.tfrecord.gz"
    write_records(path, [b"abc"], compression="GZIP")
    with pytest.raises(CorruptRecordError, match="compression='GZIP'"):
        list(read_records(path))


def test_truncated_gzip_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "g.tfrecord.gz"
    write_records(path, _payloads(20, seed=5), compression="GZIP")
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(DataError):
        list(read_records(path, compression="GZIP"))


def test_unknown_compression_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="compression"):
        TFRecordWriter(tmp_path / "x", "ZLIB")  # type: ignore[arg-type]


# --- atomic writes ----------------------------------------------------------------------------------------


def test_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    path = tmp_path / "out" / "a.tfrecord"
    with pytest.raises(RuntimeError), TFRecordWriter(path) as w:
        w.write(b"partial")
        raise RuntimeError("interrupted")
    assert list(path.parent.iterdir()) == []


def test_failed_rewrite_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "a.tfrecord"
    write_records(path, [b"old"])
    with pytest.raises(RuntimeError), TFRecordWriter(path) as w:
        w.write(b"new")
        raise RuntimeError("interrupted")
    assert list(read_records(path)) == [b"old"]
    assert [p.name for p in tmp_path.iterdir()] == ["a.tfrecord"]


def test_file_appears_only_on_close(tmp_path: Path) -> None:
    path = tmp_path / "a.tfrecord"
    w = TFRecordWriter(path)
    assert w.write(b"abc") == RecordIndex(0, 3)
    assert not path.exists()
    w.close()
    assert list(read_records(path)) == [b"abc"]
    with pytest.raises(ValueError, match="closed"):
        w.write(b"more")


def test_missing_file_is_a_data_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.tfrecord"
    for read in (lambda: list(read_records(missing)), lambda: index_shard(missing),
                 lambda: read_record(missing, 0, 0)):
        with pytest.raises(DataError, match="cannot open"):
            read()
