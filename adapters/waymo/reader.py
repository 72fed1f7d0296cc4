"""Read a WOD-E2E split (E2EDFrame TFRecord shards) into canonical samples and rater labels.

Indexing: every shard is indexed once by seeking from record header to header (length CRCs checked; see
``tfrecord``); of each record only the first few KB (the frame name sits at the start of the message) and
the short tail after the camera data (past/future states, intent, rater trajectories) are read, so a 2.3 MB
frame costs two small reads. ``load`` is then one seek and one read of the whole record, with both CRCs
checked; ``labels`` reads only the name and the tail again (no image bytes), or with ``verify_crc=True``
the whole record with its data CRC checked (what scoring does). The wire-format walking lives in
:mod:`adapters.waymo.wire`; with ``index_cache`` the index of each shard is kept on disk
(:mod:`adapters.waymo.index_cache`) and read back while the shard is unchanged.

Frames (specs/waymo_e2e.md §1.3): Waymo's ego frame at the current time is the canonical frame, so states
are copied. Cameras are the exception: Waymo's camera axes are x forward (optical axis), y left, z up, and
the canonical camera axes are OpenCV's (x right, y down, z forward), so ``ego_from_camera`` =
``vehicle_from_camera @`` :data:`WAYMO_CAMERA_FROM_OPENCV`. With that, Waymo's projection
``u = f_u·(−y/x) + c_u``, ``v = f_v·(−z/x) + c_v`` becomes OpenCV's ``u = f_u·x'/z' + c_u``, and Waymo's
distortion (k1, k2, p1, p2, k3 with OpenCV's formulas, §1.7) is OpenCV's ``(k1, k2, p1, p2, k3)`` unchanged.

Intent -> command (:data:`INTENT_TO_COMMAND`): GO_STRAIGHT -> STRAIGHT, GO_LEFT -> LEFT, GO_RIGHT -> RIGHT,
UNKNOWN -> UNKNOWN; the raw value is kept in ``Navigation.source_command``.

Bad input: a truncated record or CRC mismatch raises ``CorruptRecordError`` naming the shard and byte offset
(with ``skip_corrupt=True`` the index skips damaged records and counts them in :attr:`WaymoReader.skipped`);
a record that is not an E2EDFrame, malformed states, missing cameras and non-JPEG images raise ``DataError``
naming the shard, offset and frame; two records with one frame name raise ``DataError`` naming both places.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import numpy as np
from google.protobuf.message import DecodeError
from PIL import Image, UnidentifiedImageError

from adapters.waymo import schema
from adapters.waymo.index_cache import ShardIndexCache, shard_key
from adapters.waymo.labels import (
    INTENT_GO_LEFT,
    INTENT_GO_RIGHT,
    INTENT_GO_STRAIGHT,
    INTENT_UNKNOWN,
    NUM_PAST_STATES,
    STATE_INTERVAL_S,
    FrameLabels,
    frame_labels,
    split_frame_name,
)
from adapters.waymo.layout import find_shards
from adapters.waymo.tfrecord import HEADER_SIZE, CorruptRecordError, TFRecordReader, read_record
from adapters.waymo.wire import Payload, peek_frame
from harness.errors import ConfigError, DataError
from harness.trajectory import WAYMO_SAMPLING, Trajectory, TrajectorySampling, headings_from_positions
from harness.types import (
    Camera,
    DrivingCommand,
    EgoState,
    Navigation,
    Observation,
    Sample,
    SampleMeta,
    SampleRef,
    Source,
    Targets,
)

#: ``CameraName.Name`` values and names (never list positions: §1.7).
CAMERA_NAMES: Mapping[int, str] = {1: "FRONT", 2: "FRONT_LEFT", 3: "FRONT_RIGHT", 4: "SIDE_LEFT",
                                   5: "SIDE_RIGHT", 6: "REAR_LEFT", 7: "REAR", 8: "REAR_RIGHT"}
CAMERA_IDS: Mapping[str, int] = {v: k for k, v in CAMERA_NAMES.items()}
ALL_CAMERAS: tuple[str, ...] = tuple(CAMERA_NAMES.values())
FRONT_CAMERAS: tuple[str, ...] = ("FRONT_LEFT", "FRONT", "FRONT_RIGHT")
#: JPEG DCT-domain scale factors libjpeg (and so Pillow's ``draft``) supports.
IMAGE_SCALES = (1, 2, 4, 8)

#: Waymo intent -> the canonical 4-way command.
INTENT_TO_COMMAND: Mapping[int, DrivingCommand] = {
    INTENT_UNKNOWN: DrivingCommand.UNKNOWN,
    INTENT_GO_STRAIGHT: DrivingCommand.STRAIGHT,
    INTENT_GO_LEFT: DrivingCommand.LEFT,
    INTENT_GO_RIGHT: DrivingCommand.RIGHT,
}

#: Maps OpenCV camera axes (x right, y down, z forward) into Waymo camera axes (x forward, y left, z up).
WAYMO_CAMERA_FROM_OPENCV = np.array([[0.0, 0.0, 1.0, 0.0],
                                     [-1.0, 0.0, 0.0, 0.0],
                                     [0.0, -1.0, 0.0, 0.0],
                                     [0.0, 0.0, 0.0, 1.0]])
WAYMO_CAMERA_FROM_OPENCV.setflags(write=False)

#: Past-state times (s), oldest first: -3.75 … 0.
PAST_TIMES_S = (np.arange(NUM_PAST_STATES, dtype=np.float64) - (NUM_PAST_STATES - 1)) * STATE_INTERVAL_S
#: Below this speed a past state's velocity direction is too noisy to give its heading.
_HEADING_MIN_SPEED_MPS = 0.5


class RecordLocation(NamedTuple):
    """Where one frame's record lies: shard, header offset and payload length (see ``tfrecord``)."""

    shard: Path
    offset: int
    length: int

    def __str__(self) -> str:
        return f"{self.shard} at byte offset {self.offset}"


@dataclass(frozen=True)
class IndexEntry:
    """What the index knows of one frame without reading its images (specs/waymo_e2e.md §1.8)."""

    location: RecordLocation
    frame_name: str
    sequence_id: str
    frame_index: int
    timestamp_us: int
    intent: int
    has_future: bool
    num_raters: int
    has_rater_labels: bool


class SkippedRecord(NamedTuple):
    """A record left out of the index by ``skip_corrupt=True``."""

    shard: Path
    offset: int
    reason: str


def _peek_message(src: Payload, loc: RecordLocation) -> tuple[str, int, Any]:
    """Frame name, ``timestamp_micros`` and the E2EDFrame parsed without its ``frame`` field (no images)."""
    try:
        name, ts, tail = peek_frame(src)
        return name, ts, schema.E2EDFrame.FromString(tail)
    except (DecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"record at byte offset {loc.offset} is not an E2EDFrame ({exc})", path=loc.shard) from exc


def _row_from_entry(e: IndexEntry) -> tuple[Any, ...]:
    """An index entry as a row of :data:`adapters.waymo.index_cache.COLUMNS`."""
    return (e.location.offset, e.location.length, e.frame_name, e.timestamp_us, e.intent, e.has_future,
            e.num_raters, e.has_rater_labels)


def _entry_from_row(shard: Path, row: tuple[Any, ...]) -> IndexEntry:
    offset, length, name, ts, intent, has_future, num_raters, has_labels = row
    seq, idx = split_frame_name(name)  # ValueError: not a frame name
    return IndexEntry(RecordLocation(shard, offset, length), name, seq, idx, ts, intent, has_future, num_raters,
                      has_labels)


# --- the reader --------------------------------------------------------------------------------------------


class WaymoReader:
    """Index and load one split of WOD-E2E.

    Args:
        data_root: the directory holding the shards (flat, bucket names) or ``train/``, ``val/``, ``test/``.
        split: ``train``, ``val`` or ``test``.
        files: a glob replacing the shard discovery (see :func:`adapters.waymo.layout.find_shards`).
        skip_corrupt: leave damaged records out of the index and count them in :attr:`skipped` instead of
            raising. Without ``verify_data`` the index checks length CRCs only; a bad data CRC is then found
            by :meth:`load`, which raises ``CorruptRecordError`` for that frame.
        verify_data: read every payload while indexing and check its CRC (a full read of the split).
        index_cache: a directory for cached shard indexes (:mod:`adapters.waymo.index_cache`: keyed by the
            shard's path, size, mtime and inode); None indexes every shard afresh. ``verify_data`` bypasses
            the cache when reading (a full check is what was asked for) and refreshes it.
    """

    def __init__(self, data_root: str | Path, split: str, *, files: str | None = None,
                 skip_corrupt: bool = False, verify_data: bool = False,
                 index_cache: str | Path | None = None) -> None:
        self.data_root = Path(data_root)
        self.split = split
        self.shards = find_shards(self.data_root, split, files)
        self.skip_corrupt = skip_corrupt
        self.verify_data = verify_data
        self.index_cache = ShardIndexCache(index_cache) if index_cache is not None else None
        #: Shards whose index came from the cache during the last indexing.
        self.cached_shards = 0
        #: Records left out by ``skip_corrupt`` during indexing.
        self.skipped: list[SkippedRecord] = []
        self._entries: dict[str, IndexEntry] | None = None

    @property
    def num_skipped(self) -> int:
        return len(self.skipped)

    # --- index ----------------------------------------------------------------------------------------------

    def entries(self) -> Mapping[str, IndexEntry]:
        """The index: frame name -> :class:`IndexEntry`, shards in name order, records in file order."""
        if self._entries is None:
            entries: dict[str, IndexEntry] = {}
            self.skipped = []
            self.cached_shards = 0
            for shard in self.shards:
                for entry in self._index_shard_cached(shard):
                    other = entries.get(entry.frame_name)
                    if other is not None:
                        raise DataError(f"frame {entry.frame_name} appears twice: in {other.location} and in "
                                        f"{entry.location}", path=shard, token=entry.frame_name)
                    entries[entry.frame_name] = entry
            self._entries = entries
        return self._entries

    def index(self) -> list[SampleRef]:
        """One cheap :class:`SampleRef` per frame (token = frame name, log id = sequence id)."""
        return [SampleRef(Source.WAYMO, self.split, e.sequence_id, e.frame_name, e.timestamp_us)
                for e in self.entries().values()]

    def entry(self, ref: SampleRef | str) -> IndexEntry:
        """The index entry of a frame (by ref or frame name)."""
        name = ref if isinstance(ref, str) else ref.token
        e = self.entries().get(name)
        if e is None:
            raise DataError(f"frame is not in the {self.split} split ({len(self.entries())} frames in "
                            f"{len(self.shards)} shard(s))", path=self.data_root, token=name)
        return e

    def _skip_or_raise(self, exc: DataError, shard: Path, offset: int, reason: str) -> None:
        if not self.skip_corrupt:
            raise exc
        self.skipped.append(SkippedRecord(shard, offset, reason))

    def _index_shard_cached(self, shard: Path) -> list[IndexEntry]:
        """The shard's entries from the cache if it holds this version of the shard, else a fresh index
        (stored when the shard indexed cleanly and did not change meanwhile)."""
        key = shard_key(shard) if self.index_cache is not None else None
        if key is None or self.index_cache is None:
            return list(self._index_shard(shard))
        if not self.verify_data:
            rows = self.index_cache.get(key)
            if rows is not None:
                try:
                    entries = [_entry_from_row(shard, r) for r in rows]
                except ValueError:
                    entries = None
                if entries is not None:
                    self.cached_shards += 1
                    return entries
        skipped_before = len(self.skipped)
        entries = list(self._index_shard(shard))
        if len(self.skipped) == skipped_before and shard_key(shard) == key:
            self.index_cache.put(key, [_row_from_entry(e) for e in entries])
        return entries

    def _index_shard(self, shard: Path) -> Iterator[IndexEntry]:
        reader = TFRecordReader(shard, skip_corrupt=self.skip_corrupt)
        if self.verify_data:
            records: Iterator[tuple[Any, bytes | None]] = reader.records()
        else:
            records = ((rec, None) for rec in reader.index())
        try:
            f = open(shard, "rb", buffering=0)
        except OSError as exc:
            raise DataError(f"cannot open shard ({exc})", path=shard) from exc
        with f:
            for rec, data in records:
                loc = RecordLocation(shard, rec.offset, rec.length)
                src = Payload(data) if data is not None else Payload(f=f, start=rec.offset + HEADER_SIZE,
                                                                   length=rec.length)
                try:
                    yield self._entry(loc, src)
                except DataError as exc:
                    self._skip_or_raise(exc, shard, rec.offset, str(exc))
        for bad in reader.corrupt:  # filled by skip_corrupt once the shard has been read
            self.skipped.append(SkippedRecord(shard, bad.offset, bad.reason))

    @staticmethod
    def _entry(loc: RecordLocation, src: Payload) -> IndexEntry:
        name, ts, msg = _peek_message(src, loc)
        try:
            seq, idx = split_frame_name(name)
        except ValueError as exc:
            raise DataError(f"record at byte offset {loc.offset}: {exc}", path=loc.shard) from exc
        scores = [p.preference_score for p in msg.preference_trajectories]
        return IndexEntry(loc, name, seq, idx, ts, int(msg.intent), len(msg.future_states.pos_x) > 0,
                          len(scores), bool(scores) and all(s >= 0 for s in scores))

    # --- labels ---------------------------------------------------------------------------------------------

    def labels(self, ref: SampleRef | str, *, verify_crc: bool = False) -> FrameLabels:
        """Validated :class:`FrameLabels` of a frame, reading only its name and tail (no image bytes).

        Args:
            ref: the frame (ref or frame name).
            verify_crc: read the whole record and check its data CRC first (what scoring does: a flipped bit in
                a rater score would otherwise change a result silently); raises ``CorruptRecordError``.
        """
        entry = self.entry(ref)
        loc = entry.location
        if verify_crc:
            lab = self._labels_from(Payload(read_record(loc.shard, loc.offset, loc.length)), loc)
        else:
            try:
                with open(loc.shard, "rb", buffering=0) as f:
                    lab = self._labels_at(f, loc)
            except OSError as exc:
                raise DataError(f"cannot read shard ({exc})", path=loc.shard) from exc
        if lab.frame_name != entry.frame_name:  # the file changed since it was indexed
            raise CorruptRecordError(f"record holds frame {lab.frame_name}, the index says {entry.frame_name} "
                                     "(stale index?)", path=loc.shard, offset=loc.offset)
        return lab

    def iter_labels(self) -> Iterator[FrameLabels]:
        """:class:`FrameLabels` of every indexed frame, in index order (one open file per shard)."""
        f: BinaryIO | None = None
        current: Path | None = None
        try:
            for e in self.entries().values():
                if e.location.shard != current:
                    if f is not None:
                        f.close()
                    current = e.location.shard
                    f = open(current, "rb", buffering=0)
                assert f is not None
                yield self._labels_at(f, e.location)
        finally:
            if f is not None:
                f.close()

    @staticmethod
    def _labels_at(f: BinaryIO, loc: RecordLocation) -> FrameLabels:
        return WaymoReader._labels_from(Payload(f=f, start=loc.offset + HEADER_SIZE, length=loc.length), loc)

    @staticmethod
    def _labels_from(src: Payload, loc: RecordLocation) -> FrameLabels:
        name, _, msg = _peek_message(src, loc)
        msg.frame.context.name = name
        return frame_labels(msg, source=str(loc))

    # --- samples --------------------------------------------------------------------------------------------

    def read_frame(self, ref: SampleRef | str) -> Any:
        """The whole parsed ``E2EDFrame`` of a frame (one seek, one read, both CRCs checked)."""
        loc = self.entry(ref).location
        data = read_record(loc.shard, loc.offset, loc.length)
        try:
            return schema.E2EDFrame.FromString(data)
        except DecodeError as exc:
            raise DataError(f"record at byte offset {loc.offset} is not an E2EDFrame ({exc})",
                            path=loc.shard) from exc

    def load(self, ref: SampleRef | str, *, image_scale: int = 1,
             cameras: Sequence[str] | None = None) -> Sample:
        """The canonical :class:`Sample` of a frame.

        Args:
            ref: the frame (ref or frame name).
            image_scale: decode JPEGs at 1/``image_scale`` size (1, 2, 4 or 8) in the DCT domain (Pillow's
                ``draft``); intrinsics, width and height are scaled to match.
            cameras: which cameras to attach (default all 8, :data:`ALL_CAMERAS`); images decode lazily.

        Raises:
            CorruptRecordError: truncated record or CRC mismatch (shard and byte offset named).
            DataError: not an E2EDFrame, bad states, a requested camera missing its image or calibration,
                bad calibration values, or image bytes that are not a JPEG.
        """
        if image_scale not in IMAGE_SCALES:
            raise ConfigError(f"image_scale must be one of {IMAGE_SCALES}, got {image_scale!r}")
        names = ALL_CAMERAS if cameras is None else tuple(cameras)
        unknown = [n for n in names if n not in CAMERA_IDS]
        if unknown:
            raise ConfigError(f"unknown Waymo camera(s) {unknown}; expected names from {ALL_CAMERAS}")
        entry = self.entry(ref)
        loc = entry.location
        msg = self.read_frame(ref)
        source = str(loc)
        labels = frame_labels(msg, source=source)
        if labels.frame_name != entry.frame_name:  # the file changed since it was indexed
            raise CorruptRecordError(f"record holds frame {labels.frame_name}, the index says {entry.frame_name} "
                                     "(stale index?)", path=loc.shard, offset=loc.offset)
        cams = _cameras(msg, names, image_scale, source, labels.frame_name)
        return sample_from_labels(labels, cams, split=self.split, timestamp_us=int(msg.frame.timestamp_micros))


# --- conversion ------------------------------------------------------------------------------------------------


def past_headings(past_velocity_xy: np.ndarray) -> np.ndarray:
    """Headings ``(16,)`` (rad, current ego frame) of the past states, which the proto does not carry.

    A state's heading is the direction of its velocity where the speed is at least 0.5 m/s; slower states
    take the heading of the nearest later state that is (so a stop keeps the heading it stopped with), and
    the current state (last) is the frame's origin: heading 0. Reversing is not detected (its velocity
    points backwards).
    """
    v = np.asarray(past_velocity_xy, dtype=np.float64)
    h = np.arctan2(v[:, 1], v[:, 0])
    ok = np.hypot(v[:, 0], v[:, 1]) >= _HEADING_MIN_SPEED_MPS
    n = len(h)
    ok[-1] = True
    h[-1] = 0.0
    idx = np.where(ok, np.arange(n), n - 1)
    nearest_later = np.minimum.accumulate(idx[::-1])[::-1]
    return h[nearest_later]


def sample_from_labels(labels: FrameLabels, cameras: Mapping[str, Camera], *, split: str,
                       timestamp_us: int = 0) -> Sample:
    """A canonical :class:`Sample` from a frame's labels and its cameras.

    The future (if present) becomes a :data:`WAYMO_SAMPLING` trajectory and each labelled rater trajectory
    a 4 Hz trajectory of its own length; headings are derived from positions (Waymo gives none).
    Placeholder raters (score -1) are not targets: ``rater_trajectories`` is empty and ``rater_scores`` None.
    """
    ego = EgoState(
        velocity_mps=labels.past_velocity_xy[-1],
        acceleration_mps2=labels.past_accel_xy[-1],
        history_poses=np.column_stack([labels.past_xy, past_headings(labels.past_velocity_xy)]),
        history_times_s=PAST_TIMES_S,
    )
    nav = Navigation(command=INTENT_TO_COMMAND[labels.intent], source_command=labels.intent)
    future = None
    if labels.future_xy is not None:
        future = Trajectory(np.column_stack([labels.future_xy, headings_from_positions(labels.future_xy)]),
                            WAYMO_SAMPLING)
    raters: tuple[Trajectory, ...] = ()
    scores = None
    if labels.has_rater_labels:
        raters = tuple(Trajectory(np.column_stack([xy, headings_from_positions(xy)]),
                                  TrajectorySampling(len(xy), STATE_INTERVAL_S)) for xy in labels.valid_raters)
        scores = labels.rater_scores
    meta = SampleMeta(Source.WAYMO, split, labels.sequence_id, labels.frame_name, timestamp_us)
    return Sample(meta=meta, observation=Observation(cameras=dict(cameras), ego=ego, navigation=nav),
                  targets=Targets(future=future, rater_trajectories=raters, rater_scores=scores))


def _cameras(msg: Any, names: Sequence[str], scale: int, source: str, frame: str) -> dict[str, Camera]:
    def fail(what: str) -> DataError:
        return DataError(f"E2EDFrame {frame} from {source}: {what}", token=frame)

    images: dict[int, bytes] = {}
    for img in msg.frame.images:
        if img.name in images:
            raise fail(f"camera {CAMERA_NAMES.get(img.name, img.name)} has two images")
        images[int(img.name)] = img.image
    calibs: dict[int, Any] = {}
    for cal in msg.frame.context.camera_calibrations:
        if cal.name in calibs:
            raise fail(f"camera {CAMERA_NAMES.get(cal.name, cal.name)} has two calibrations")
        calibs[int(cal.name)] = cal
    have = sorted(CAMERA_NAMES.get(i, str(i)) for i in images)
    out: dict[str, Camera] = {}
    for name in names:
        cid = CAMERA_IDS[name]
        if cid not in images:
            raise fail(f"camera {name} has no image (images of {have or 'no camera'})")
        if cid not in calibs:
            raise fail(f"camera {name} has no calibration (calibrations of "
                       f"{sorted(CAMERA_NAMES.get(i, str(i)) for i in calibs) or 'no camera'})")
        out[name] = _camera(name, calibs[cid], images[cid], scale, fail)
    return out


def _camera(name: str, cal: Any, jpeg: bytes, scale: int, fail: Any) -> Camera:
    intr = np.asarray(cal.intrinsic, dtype=np.float64)
    if intr.shape != (9,) or not np.all(np.isfinite(intr)) or intr[0] <= 0 or intr[1] <= 0:
        raise fail(f"camera {name}: intrinsic must be 9 finite values (f_u, f_v, c_u, c_v, k1, k2, p1, p2, k3) "
                   f"with positive focal lengths, got {intr.tolist()}")
    ext = np.asarray(cal.extrinsic.transform, dtype=np.float64)
    if ext.shape != (16,) or not np.all(np.isfinite(ext)):
        raise fail(f"camera {name}: extrinsic must be 16 finite values (row-major 4x4), got {ext.size}")
    vehicle_from_camera = ext.reshape(4, 4)
    r = vehicle_from_camera[:3, :3]
    if not (np.allclose(r @ r.T, np.eye(3), atol=1e-4) and np.linalg.det(r) > 0
            and np.allclose(vehicle_from_camera[3], (0, 0, 0, 1))):
        raise fail(f"camera {name}: extrinsic is not a rigid transform")
    width, height = _jpeg_size(jpeg, scale, lambda what: fail(f"camera {name}: {what}"))
    f_u, f_v, c_u, c_v = intr[:4]
    # DCT scaling averages s x s pixel blocks: with pixel centres at integer coordinates, full-size
    # coordinate u maps to (u + 0.5) / s - 0.5.
    k = np.array([[f_u / scale, 0.0, (c_u + 0.5) / scale - 0.5],
                  [0.0, f_v / scale, (c_v + 0.5) / scale - 0.5],
                  [0.0, 0.0, 1.0]])
    return Camera(
        name=name,
        intrinsics=k,
        ego_from_camera=vehicle_from_camera @ WAYMO_CAMERA_FROM_OPENCV,
        width=width,
        height=height,
        distortion=intr[4:9],
        image_path=None,
        loader=partial(decode_jpeg, jpeg, scale=scale, where=name),
    )


def _open_jpeg(jpeg: bytes, scale: int, fail: Any) -> Image.Image:
    try:
        im = Image.open(io.BytesIO(jpeg))
    except (OSError, UnidentifiedImageError) as exc:
        raise fail(f"image bytes are not a readable image ({exc})") from exc
    if im.format != "JPEG":
        raise fail(f"image is {im.format}, expected JPEG")
    if scale > 1:
        w, h = im.size
        im.draft("RGB", (w // scale, h // scale))
        want = (math.ceil(w / scale), math.ceil(h / scale))
        if im.size != want:
            raise fail(f"DCT scaling to 1/{scale} gave {im.size}, expected {want}")
    return im


def _jpeg_size(jpeg: bytes, scale: int, fail: Any) -> tuple[int, int]:
    return _open_jpeg(jpeg, scale, fail).size


def decode_jpeg(jpeg: bytes, *, scale: int = 1, where: str = "image") -> np.ndarray:
    """Decode JPEG bytes to uint8 ``(H, W, 3)`` RGB, at 1/``scale`` size by DCT-domain scaling.

    Raises:
        DataError: the bytes are not a decodable JPEG.
    """
    def fail(what: str) -> DataError:
        return DataError(f"{where}: {what}")

    im = _open_jpeg(jpeg, scale, fail)
    try:
        return np.asarray(im.convert("RGB"))
    except OSError as exc:
        raise fail(f"cannot decode the JPEG ({exc})") from exc
