"""Waymo E2E challenge submissions: validate, write and read the ``.tar.gz`` of ``E2EDChallengeSubmission``s.

What the server takes (specs/waymo_e2e.md §3; official ``end_to_end_driving_submission.proto``): one
``TrajectoryPrediction`` of exactly 20 (x, y) points at 4 Hz (t = 0.25 ... 5.0 s, current rear-axle ego
frame, x forward, y left, metres; no t = 0 point) per required test frame, keyed by the frame's
``context.name``; the predictions split into shards, each shard a complete ``E2EDChallengeSubmission`` with
``submission_type = E2ED_SUBMISSION`` and **every** metadata field repeated, serialised with no framing;
the shard files packed into a tar and gzipped.

Shard file names and layout (decided here; the official sources disagree):

* The E2E tutorial writes ``MySubmission/part0 ... part{N-1}`` and tars the directory. The E2E server has
  answered exactly that archive with "No shards found in submission" (issues #943 and #992, which list
  ``MySubmission/`` and ``MySubmission/part0``), and also a flat archive of ``part*`` files (#936). The
  maintainers point to #936, whose fix is to name the files ``xxx.binproto-00000-of-00001``; that is the
  convention the sim-agents tutorial (same challenge server) states as the regular expression
  ``.*\\.binproto(-\\d{5}-of-\\d{5})?`` and packs with the files at the top level of the archive.
* So lead-bench writes ``LAYOUT_FLAT`` by default: ``submission.binproto-00000-of-0000N`` ... at the top
  level. ``LAYOUT_DIRECTORY`` puts the same files in a ``submission/`` folder; ``LAYOUT_TUTORIAL`` writes the
  notebook's ``submission/part0`` ... literally, for whoever needs it.
* :func:`read_submission_archive` accepts all three, and any mix of ``*.binproto``,
  ``*.binproto-iiiii-of-nnnnn`` and ``part<i>`` files at the top level or in one folder; anything else in the
  archive (other files, links, deeper folders, absolute paths) is rejected with the member's name.

``num_model_parameters`` (required): the proto asks for "an integer number followed by a multiplier suffix
(from the set [K, M, B, T, ...], e.g. "200K")"; the E2E tutorial writes ``"200k"``. lead-bench accepts the
suffix in either case and writes it upper-case, the proto's form; reading keeps what the file holds.

Shards are balanced (sizes differ by at most one, frames sorted by name), where the tutorial's
``ceil(n / N)`` split can leave trailing shards empty. The archive is deterministic (sorted members, zero
mtimes and owners), written through a temporary file, read back and compared before it is renamed into
place.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import tarfile
import tempfile
import zlib
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from google.protobuf.message import DecodeError

from adapters.waymo.schema import E2EDChallengeSubmission
from harness.errors import DataError
from submissions.errors import SubmissionValidationError
from submissions.errors import listed as _listed

#: Points per prediction: 4 Hz for 5 s, t = 0.25 ... 5.0 s.
NUM_POINTS = 20
INTERVAL_S = 0.25

LAYOUT_FLAT = "flat"
LAYOUT_DIRECTORY = "directory"
LAYOUT_TUTORIAL = "tutorial"
LAYOUTS = (LAYOUT_FLAT, LAYOUT_DIRECTORY, LAYOUT_TUTORIAL)
#: Base name of the shard files, and of the folder in the directory layouts.
SHARD_STEM = "submission"

#: ``200K``, ``7B``: an integer and one multiplier suffix.
_NUM_PARAMS = re.compile(r"^([0-9]+)([KMBT])$", re.IGNORECASE)
_BINPROTO = re.compile(r"^[^/]*\.binproto(?:-(\d{5})-of-(\d{5}))?$")
_PART = re.compile(r"^part(\d+)$")
#: An upper bound on one shard's size: protobuf cannot parse messages of 2 GiB or more.
_MAX_SHARD_BYTES = (2 << 30) - 1
#: Placeholders of the tutorial that a real submission must replace.
_PLACEHOLDERS = frozenset({"", "acc@domain.com", "YourMethodName", "Affiliation", "MUST_SET", "???"})


def normalize_num_model_parameters(value: str) -> str:
    """``"200k"`` -> ``"200K"``: check the proto's "integer + multiplier suffix" form and upper-case the suffix.

    Raises:
        ValueError: not an integer followed by one of K, M, B, T (e.g. ``"1.5B"``, ``"24"``, ``"200 K"``).
    """
    m = _NUM_PARAMS.match(value.strip()) if isinstance(value, str) else None
    if m is None:
        raise ValueError(f"num_model_parameters must be an integer followed by K, M, B or T, e.g. '200K' or "
                         f"'7B' (write 1.5B as '1500M'), got {value!r}")
    return f"{int(m.group(1))}{m.group(2).upper()}"


@dataclass(frozen=True)
class WaymoSubmissionMetadata:
    """Who submits and what the method is; every field is repeated in every shard.

    Construction checks types only (so any archive's metadata can be read back); :meth:`check_complete`
    checks what the server needs before a file is written.

    Attributes:
        account_name: the e-mail address registered at waymo.com/open.
        unique_method_name: the leaderboard shows only the latest result per method name.
        authors: one entry per author.
        affiliation: institution or company.
        description: short description of the method (may be empty).
        method_link: URL of a paper or code (may be empty).
        uses_public_model_pretraining: an open-source LLM/VLM was used for pre-training (required).
        num_model_parameters: an integer with a K/M/B/T suffix, e.g. ``"200K"`` (required).
        public_model_names: the open-source models used, with their configuration.
    """

    account_name: str
    unique_method_name: str
    authors: tuple[str, ...]
    affiliation: str
    uses_public_model_pretraining: bool
    num_model_parameters: str
    description: str = ""
    method_link: str = ""
    public_model_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("account_name", "unique_method_name", "affiliation", "num_model_parameters", "description",
                     "method_link"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"WaymoSubmissionMetadata.{name} must be a str, "
                                 f"got {type(getattr(self, name)).__name__}")
        for name in ("authors", "public_model_names"):
            value = getattr(self, name)
            if isinstance(value, str) or not isinstance(value, Sequence) or not all(isinstance(a, str)
                                                                                    for a in value):
                raise ValueError(f"WaymoSubmissionMetadata.{name} must be a sequence of str, got {value!r}")
            object.__setattr__(self, name, tuple(value))
        if not isinstance(self.uses_public_model_pretraining, bool | np.bool_):
            raise ValueError("WaymoSubmissionMetadata.uses_public_model_pretraining must be a bool, "
                             f"got {self.uses_public_model_pretraining!r}")
        object.__setattr__(self, "uses_public_model_pretraining", bool(self.uses_public_model_pretraining))

    def check_complete(self) -> None:
        """Raise :class:`SubmissionValidationError` naming each required field that is empty or malformed."""
        problems = []
        for name in ("account_name", "unique_method_name", "affiliation"):
            value = getattr(self, name).strip()
            if value in _PLACEHOLDERS:
                problems.append(f"metadata field {name} is not set (got {getattr(self, name)!r})")
        local, at, domain = self.account_name.strip().partition("@")
        if self.account_name.strip() and (not at or not local or "." not in domain):
            problems.append(f"metadata field account_name must be the e-mail address registered at "
                            f"waymo.com/open (got {self.account_name!r})")
        if not self.authors or any(not a.strip() for a in self.authors):
            problems.append(f"metadata field authors must name at least one author, each non-empty "
                            f"(got {list(self.authors)!r})")
        try:
            normalize_num_model_parameters(self.num_model_parameters)
        except ValueError as exc:
            problems.append(f"metadata field {exc}")
        if any(not n.strip() for n in self.public_model_names):
            problems.append(f"metadata field public_model_names has an empty name "
                            f"(got {list(self.public_model_names)!r})")
        if self.uses_public_model_pretraining and not self.public_model_names:
            problems.append("uses_public_model_pretraining is set, so public_model_names must name the "
                            "open-source model(s) used")
        if problems:
            raise SubmissionValidationError("incomplete submission metadata", problems)

    def normalized(self) -> WaymoSubmissionMetadata:
        """The metadata as written: stripped strings, the parameter count's suffix upper-case."""
        return WaymoSubmissionMetadata(
            account_name=self.account_name.strip(), unique_method_name=self.unique_method_name.strip(),
            authors=tuple(a.strip() for a in self.authors), affiliation=self.affiliation.strip(),
            uses_public_model_pretraining=self.uses_public_model_pretraining,
            num_model_parameters=normalize_num_model_parameters(self.num_model_parameters),
            description=self.description, method_link=self.method_link.strip(),
            public_model_names=tuple(n.strip() for n in self.public_model_names))


# --- writing ----------------------------------------------------------------------------------------------


def write_submission_archive(
    predictions: Mapping[str, npt.ArrayLike] | Iterable[tuple[str, npt.ArrayLike]],
    metadata: WaymoSubmissionMetadata,
    out: str | Path,
    *,
    required_frames: Collection[str],
    shards: int = 1,
    layout: str = LAYOUT_FLAT,
) -> Path:
    """Validate predictions and metadata, then write the challenge ``.tar.gz`` atomically.

    Args:
        predictions: frame name -> ``(20, 2)`` ego-frame positions in metres at t = 0.25 ... 5.0 s; a
            mapping, or (name, points) pairs (so duplicates can be reported).
        metadata: who submits; see :meth:`WaymoSubmissionMetadata.check_complete`.
        out: the archive to write (``.tar.gz``; replaced atomically, parent folders created).
        required_frames: the frame names the server requires (test: the 1,505 names of
            ``test_sequence_frames_for_submission.json``). Each must be predicted exactly once; a prediction
            for any other frame is an error too.
        shards: number of shard files, 1 ... number of predictions.
        layout: ``"flat"`` (default), ``"directory"`` or ``"tutorial"``; see the module docstring.

    Returns:
        ``out`` as a Path.

    Raises:
        SubmissionValidationError: listing missing, extra and duplicate frames, bad points (shape, NaN/inf,
            beyond float32) and bad metadata; no file is created or changed.
        DataError: the archive could not be written, or did not read back as written.
    """
    if layout not in LAYOUTS:
        raise SubmissionValidationError("invalid layout", [f"layout must be one of {LAYOUTS}, got {layout!r}"])
    metadata.check_complete()
    meta = metadata.normalized()
    checked = _checked_predictions(predictions, required_frames)
    if not (isinstance(shards, int | np.integer) and not isinstance(shards, bool) and 1 <= shards <= len(checked)):
        raise SubmissionValidationError("invalid shard count", [f"shards must be an int in [1, {len(checked)}] "
                                                                f"(one frame per shard at most), got {shards!r}"])
    names = sorted(checked)
    members: dict[str, bytes] = {}
    lo = 0
    for i, size in enumerate(predictions_per_shard(len(names), int(shards))):
        msg = _shard_message({n: checked[n] for n in names[lo:lo + size]}, meta)
        members[_shard_name(layout, i, int(shards))] = msg.SerializeToString()
        lo += size
    data = _tar_gz(members)
    expected = {n: checked[n].astype(np.float64) for n in names}
    return _write_verified(Path(out), data, expected, meta)


def _checked_predictions(
    predictions: Mapping[str, npt.ArrayLike] | Iterable[tuple[str, npt.ArrayLike]],
    required_frames: Collection[str],
) -> dict[str, np.ndarray]:
    """``{frame: float32 (20, 2)}`` after checking coverage and values; every problem is collected."""
    problems: list[str] = []
    if isinstance(required_frames, str):
        raise SubmissionValidationError("invalid required_frames",
                                        ["required_frames must be a collection of frame names, got one str"])
    required_list = list(required_frames)
    required = set(required_list)
    if len(required) != len(required_list):
        dup = sorted({n for n in required_list if required_list.count(n) > 1})
        problems.append(f"required_frames lists {len(required_list) - len(required)} frame(s) more than once: "
                        f"{_listed(dup)}")
    if not required:
        problems.append("required_frames is empty: there is nothing to submit")
    pairs = list(predictions.items()) if isinstance(predictions, Mapping) else list(predictions)
    seen: dict[str, int] = {}
    out: dict[str, np.ndarray] = {}
    for item in pairs:
        if not (isinstance(item, tuple) and len(item) == 2):
            problems.append(f"predictions must be a mapping or (frame name, points) pairs, got {item!r:.60}")
            continue
        name, points = item
        if not isinstance(name, str) or not name.strip() or name != name.strip():
            problems.append(f"frame name {name!r} is not a non-empty str without surrounding whitespace")
            continue
        seen[name] = seen.get(name, 0) + 1
        xy = _checked_points(name, points, problems)
        if xy is not None:
            out[name] = xy
    duplicates = sorted(n for n, c in seen.items() if c > 1)
    if duplicates:
        problems.append(f"{len(duplicates)} frame(s) predicted more than once: {_listed(duplicates)}")
    missing, extra = required - set(seen), set(seen) - required
    if missing:
        problems.append(f"{len(missing)} required frame(s) have no prediction: {_listed(missing)}")
    if extra:
        problems.append(f"{len(extra)} predicted frame(s) are not required (wrong split or frame index?): "
                        f"{_listed(extra)}")
    if problems:
        raise SubmissionValidationError("invalid predictions", problems)
    return out


def _checked_points(name: str, points: Any, problems: list[str]) -> np.ndarray | None:
    try:
        xy = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        problems.append(f"frame {name}: points are not numbers ({exc})")
        return None
    if xy.shape != (NUM_POINTS, 2):
        problems.append(f"frame {name}: points have shape {xy.shape}, need ({NUM_POINTS}, 2) (x, y at "
                        f"t = {INTERVAL_S} ... {NUM_POINTS * INTERVAL_S} s, no t = 0 point)")
        return None
    # Checked after the cast: a finite float64 beyond float32's range would be written as inf.
    with np.errstate(over="ignore", invalid="ignore"):
        xy32 = xy.astype(np.float32)
    bad = ~np.isfinite(xy32)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        problems.append(f"frame {name}: {int(bad.sum())} value(s) not finite as float32, first point {row} "
                        f"{'xy'[col]} = {xy[row, col]}")
        return None
    return xy32


def _shard_message(predictions: Mapping[str, np.ndarray], meta: WaymoSubmissionMetadata) -> Any:
    msg = E2EDChallengeSubmission()
    for name, xy in predictions.items():
        p = msg.predictions.add(frame_name=name)
        p.trajectory.pos_x.extend(xy[:, 0].tolist())
        p.trajectory.pos_y.extend(xy[:, 1].tolist())
    msg.submission_type = E2EDChallengeSubmission.E2ED_SUBMISSION
    msg.account_name = meta.account_name
    msg.unique_method_name = meta.unique_method_name
    msg.authors.extend(meta.authors)
    msg.affiliation = meta.affiliation
    msg.description = meta.description
    msg.method_link = meta.method_link
    msg.uses_public_model_pretraining = meta.uses_public_model_pretraining
    msg.public_model_names.extend(meta.public_model_names)
    msg.num_model_parameters = meta.num_model_parameters
    return msg


def _shard_name(layout: str, index: int, count: int) -> str:
    if layout == LAYOUT_TUTORIAL:
        return f"{SHARD_STEM}/part{index}"
    name = f"{SHARD_STEM}.binproto-{index:05d}-of-{count:05d}"
    return name if layout == LAYOUT_FLAT else f"{SHARD_STEM}/{name}"


def _tar_gz(members: Mapping[str, bytes]) -> bytes:
    """A deterministic gzip-compressed tar: folders first, sorted names, zero mtimes, no owners."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        folders = sorted({name.rsplit("/", 1)[0] for name in members if "/" in name})
        for folder in folders:
            info = tarfile.TarInfo(folder)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        for name in sorted(members):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(members[name]), 0o644, 0
            tar.addfile(info, io.BytesIO(members[name]))
    return gzip.compress(raw.getvalue(), compresslevel=9, mtime=0)


def _write_verified(path: Path, data: bytes, expected: Mapping[str, np.ndarray],
                    meta: WaymoSubmissionMetadata) -> Path:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise DataError(f"cannot create the submission archive: {exc.strerror or exc}", path=path) from exc
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would surprise whoever uploads or copies the file
        got, got_meta = read_submission_archive(tmp)
        if got_meta != meta:
            raise DataError(f"the written archive's metadata reads back as {got_meta}, not {meta}", path=path)
        if list(got) != list(expected) or any(not np.array_equal(got[n], expected[n]) for n in expected):
            raise DataError("the written archive's predictions do not read back as written", path=path)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DataError(f"cannot write the submission archive: {exc.strerror or exc}", path=path) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


# --- reading ----------------------------------------------------------------------------------------------


def read_submission_archive(path: str | Path) -> tuple[dict[str, np.ndarray], WaymoSubmissionMetadata]:
    """Read a challenge archive: predictions by frame name and the (shared) metadata.

    Accepts gzip-compressed tars whose members are shard files named ``*.binproto``,
    ``*.binproto-iiiii-of-nnnnn`` or ``part<i>``, at the top level or inside one folder.

    Args:
        path: the ``.tar.gz``.

    Returns:
        ``({frame_name: float64 (20, 2)}, metadata)``; frames sorted by name. The float64 values are the
        float32 values of the file, widened exactly.

    Raises:
        DataError: not a gzip tar; a member that is not a shard file (named, with the accepted patterns);
            incomplete ``-of-`` numbering; a shard that does not parse; a shard whose ``submission_type`` is
            not E2ED_SUBMISSION or whose metadata differs from the first shard's; a frame predicted twice; a
            prediction without 20 finite x and y values; no shard at all.
    """
    p = Path(path)
    shards = _read_members(p)
    predictions: dict[str, np.ndarray] = {}
    first_meta: WaymoSubmissionMetadata | None = None
    first_name = ""
    for name, data in shards:
        msg = E2EDChallengeSubmission()
        try:
            msg.ParseFromString(data)
        except DecodeError as exc:
            raise DataError(f"shard {name} is not a serialized E2EDChallengeSubmission ({exc})", path=p) from exc
        if msg.submission_type != E2EDChallengeSubmission.E2ED_SUBMISSION:
            raise DataError(f"shard {name}: submission_type is "
                            f"{E2EDChallengeSubmission.SubmissionType.Name(msg.submission_type)} "
                            f"({msg.submission_type}), the server needs E2ED_SUBMISSION (1)", path=p)
        try:
            meta = _metadata_of(msg)
        except ValueError as exc:
            raise DataError(f"shard {name}: bad metadata ({exc})", path=p) from exc
        if first_meta is None:
            first_meta, first_name = meta, name
        elif meta != first_meta:
            raise DataError(f"shard {name} carries different metadata from shard {first_name} (every shard "
                            f"repeats all of it): {meta} != {first_meta}", path=p)
        for pred in msg.predictions:
            frame = pred.frame_name
            if not frame:
                raise DataError(f"shard {name}: a prediction has no frame_name", path=p)
            if frame in predictions:
                raise DataError(f"frame {frame} is predicted more than once (again in shard {name})", path=p)
            x = np.asarray(pred.trajectory.pos_x, dtype=np.float32)
            y = np.asarray(pred.trajectory.pos_y, dtype=np.float32)
            if x.shape != (NUM_POINTS,) or y.shape != (NUM_POINTS,):
                raise DataError(f"shard {name}, frame {frame}: {x.size} pos_x and {y.size} pos_y values, need "
                                f"{NUM_POINTS} each", path=p)
            xy = np.stack([x, y], axis=-1).astype(np.float64)
            if not np.isfinite(xy).all():
                raise DataError(f"shard {name}, frame {frame}: non-finite positions", path=p)
            predictions[frame] = xy
    assert first_meta is not None  # _read_members returns at least one shard
    return {n: predictions[n] for n in sorted(predictions)}, first_meta


def _metadata_of(msg: Any) -> WaymoSubmissionMetadata:
    return WaymoSubmissionMetadata(
        account_name=msg.account_name, unique_method_name=msg.unique_method_name, authors=tuple(msg.authors),
        affiliation=msg.affiliation, uses_public_model_pretraining=msg.uses_public_model_pretraining,
        num_model_parameters=msg.num_model_parameters, description=msg.description,
        method_link=msg.method_link, public_model_names=tuple(msg.public_model_names))


def _read_members(path: Path) -> list[tuple[str, bytes]]:
    """The shard files of the archive, in shard order, after checking the layout."""
    accepted = ("shard files named '*.binproto', '*.binproto-00000-of-00001' or 'part0', at the top level "
                "or in one folder")
    try:
        with path.open("rb") as fh:
            magic = fh.read(2)
    except OSError as exc:
        raise DataError(f"cannot read the submission archive: {exc.strerror or exc}", path=path) from exc
    if magic != b"\x1f\x8b":
        raise DataError("not a gzip file: the server takes a .tar.gz (tar the shard files, then gzip)", path=path)
    shards: list[tuple[tuple[int, int, str], str, bytes]] = []
    numbering: set[tuple[str, int]] = set()
    counts: set[int] = set()
    try:
        with tarfile.open(path, mode="r:gz") as tar:
            for info in tar:
                name = info.name.removeprefix("./")
                parts = [s for s in name.split("/") if s]
                if info.name.startswith("/") or ".." in parts or len(parts) > 2:
                    raise DataError(f"unexpected archive member {info.name!r}: expected {accepted}", path=path)
                if info.isdir():
                    continue
                base = parts[-1] if parts else ""
                binproto, part = _BINPROTO.match(base), _PART.match(base)
                if not info.isfile() or not (binproto or part):
                    kind = "a file" if info.isfile() else "a link or special file"
                    raise DataError(f"unexpected archive member {info.name!r} ({kind}): expected {accepted}",
                                    path=path)
                if info.size > _MAX_SHARD_BYTES:
                    raise DataError(f"shard {name} has {info.size} bytes; protobuf parses at most 2 GiB, so "
                                    "use more shards", path=path)
                fh = tar.extractfile(info)
                data = fh.read() if fh is not None else b""
                if binproto and binproto.group(1) is not None:
                    index, count = int(binproto.group(1)), int(binproto.group(2))
                    prefix = name[: name.rindex(".binproto") + len(".binproto")]
                    numbering.add((prefix, index))
                    counts.add(count)
                    key = (0, index, name)
                else:
                    key = (1, int(part.group(1)) if part else 0, name)
                shards.append((key, name, data))
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise DataError(f"not a readable gzip-compressed tar ({exc})", path=path) from exc
    if not shards:
        raise DataError(f"the archive holds no shard: expected {accepted}", path=path)
    if counts:
        if len(counts) > 1:
            raise DataError(f"shard names disagree on the shard count (-of-{sorted(counts)})", path=path)
        (count,) = counts
        for prefix in {pfx for pfx, _ in numbering}:
            have = {i for pfx, i in numbering if pfx == prefix}
            if have != set(range(count)):
                lost = sorted(set(range(count)) - have)
                raise DataError(f"{prefix}-iiiii-of-{count:05d}: shard(s) {_listed(lost)} missing or numbered "
                                f"beyond the count ({_listed(have - set(range(count)))})", path=path)
    return [(name, data) for _, name, data in sorted(shards)]


def predictions_per_shard(total: int, shards: int) -> list[int]:
    """Frames per shard for ``total`` predictions over ``shards`` files (balanced; the tutorial uses
    ``ceil(total / shards)`` per shard, which can leave the last shards empty)."""
    if shards < 1 or total < shards:
        raise ValueError(f"need 1 <= shards <= total, got shards={shards}, total={total}")
    base, rest = divmod(total, shards)
    return [base + (i < rest) for i in range(shards)]


__all__ = [
    "INTERVAL_S", "LAYOUTS", "LAYOUT_DIRECTORY", "LAYOUT_FLAT", "LAYOUT_TUTORIAL", "NUM_POINTS",
    "SubmissionValidationError", "WaymoSubmissionMetadata", "normalize_num_model_parameters",
    "predictions_per_shard", "read_submission_archive", "write_submission_archive",
]
