"""NAVSIM leaderboard submissions: write, validate and read ``submission.pkl`` (v1 navtest, v2 two-stage).

A submission is a pickled dict (spec: specs/navsim.md §10), as NAVSIM's ``run_create_submission_pickle.py``
writes it::

    {"team_name": str, "authors": str | list[str], "email": str, "institution": str,
     "country / region": str,
     "predictions": [{token: Trajectory}, ...]}                       # v1, one dict per seed
     # v2 instead: "first_stage_predictions": [{token: Trajectory}],
     #             "second_stage_predictions": [{token: Trajectory}]

The leaderboard loads it with NAVSIM's classes and numpy 1.x, so lead-bench writes its stand-ins under the
real class paths and numpy's 1.x module names (:mod:`submissions.navsim_classes`,
:func:`harness.safe_pickle.dumps_with_global_names`). Writers validate everything before creating a file,
write through a temporary file, read that back with the restricted reader and compare before renaming it
into place. :func:`read_submission` reads anyone's submission without running code from it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from harness.errors import DataError
from harness.safe_pickle import dumps_with_global_names, load_restricted
from harness.trajectory import NAVSIM_SAMPLING, Trajectory
from submissions.errors import SubmissionValidationError
from submissions.errors import listed as _listed
from submissions.navsim_classes import (
    GLOBAL_NAMES,
    POSES_DTYPE,
    SUBSTITUTES,
    NuplanTrajectorySampling,
    from_navsim,
    is_navsim_sampling,
    nuplan_sampling,
    to_navsim,
)

#: Metadata keys in the order NAVSIM writes them; note the spaces and slash in "country / region".
METADATA_KEYS = ("team_name", "authors", "email", "institution", "country / region")
V1_KEYS = ("predictions",)
V2_KEYS = ("first_stage_predictions", "second_stage_predictions")

#: NAVSIM's shell scripts ship these placeholders; a file that still holds one was not filled in.
_PLACEHOLDERS = frozenset({"MUST_SET", "???"})


@dataclass(frozen=True)
class SubmissionMetadata:
    """Who submits. ``country_region`` is written under the key ``"country / region"``.

    Construction checks types only (so any file's metadata can be read); :meth:`check_complete` checks what
    the leaderboard needs before a file is written.
    """

    team_name: str
    authors: str | tuple[str, ...]
    email: str
    institution: str
    country_region: str

    def __post_init__(self) -> None:
        for name in ("team_name", "email", "institution", "country_region"):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise ValueError(f"SubmissionMetadata.{name} must be a str, got {type(value).__name__}")
        authors = self.authors
        if not isinstance(authors, str):
            if not isinstance(authors, Sequence) or not all(isinstance(a, str) for a in authors):
                raise ValueError(f"SubmissionMetadata.authors must be a str or a list of str, "
                                 f"got {authors!r}")
            # A tuple keeps the frozen dataclass hashable and comparable whatever sequence came in.
            object.__setattr__(self, "authors", tuple(authors))

    def check_complete(self) -> None:
        """Raise :class:`SubmissionValidationError` naming each field that is empty or malformed."""
        problems = []
        for name in ("team_name", "institution", "country_region", "email"):
            value = getattr(self, name).strip()
            if not value or value in _PLACEHOLDERS:
                problems.append(f"metadata field {name} is not set (got {getattr(self, name)!r})")
        authors = [self.authors] if isinstance(self.authors, str) else list(self.authors)
        if not authors or any(not a.strip() or a.strip() in _PLACEHOLDERS for a in authors):
            problems.append(f"metadata field authors must name at least one author, each non-empty "
                            f"(got {self.authors!r})")
        local, at, domain = self.email.strip().partition("@")
        if self.email.strip() and (not at or not local or not domain):
            problems.append(f"metadata field email is not an e-mail address (got {self.email!r})")
        if problems:
            raise SubmissionValidationError("incomplete submission metadata", problems)

    def to_navsim_dict(self) -> dict[str, Any]:
        """The metadata entries of a submission dict, with NAVSIM's keys and order."""
        authors = self.authors if isinstance(self.authors, str) else list(self.authors)
        return dict(zip(METADATA_KEYS, (self.team_name, authors, self.email, self.institution,
                                        self.country_region), strict=True))


@dataclass(frozen=True)
class NavsimSubmission:
    """A submission as read from a file; trajectories are lead-bench :class:`~harness.trajectory.Trajectory`.

    Attributes:
        version: 1 (``predictions``) or 2 (``first_stage_predictions`` / ``second_stage_predictions``).
        metadata: who submitted.
        predictions: v1: one ``{token: Trajectory}`` per seed, in file order; empty for v2.
        first_stage_predictions: v2: the per-seed dicts of stage one (NAVSIM writes exactly one).
        second_stage_predictions: v2: the same for stage two.
    """

    version: Literal[1, 2]
    metadata: SubmissionMetadata
    predictions: tuple[dict[str, Trajectory], ...] = ()
    first_stage_predictions: tuple[dict[str, Trajectory], ...] = field(default=())
    second_stage_predictions: tuple[dict[str, Trajectory], ...] = field(default=())

    @property
    def num_seeds(self) -> int:
        return len(self.predictions if self.version == 1 else self.first_stage_predictions)

    @property
    def first_stage(self) -> dict[str, Trajectory]:
        """The one stage-one dict of a v2 submission (the v2 scorer takes exactly one seed)."""
        return _single(self.first_stage_predictions, "first_stage_predictions", self.version)

    @property
    def second_stage(self) -> dict[str, Trajectory]:
        """The one stage-two dict of a v2 submission."""
        return _single(self.second_stage_predictions, "second_stage_predictions", self.version)


def write_submission_v1(
    path: str | Path,
    predictions: Sequence[Mapping[str, Trajectory]],
    metadata: SubmissionMetadata,
    *,
    expected_tokens: Collection[str] | None = None,
) -> None:
    """Write a NAVSIM v1 (navtest) submission pickle after validating it.

    Args:
        path: the ``submission.pkl`` to write (replaced atomically; parent folders are created).
        predictions: one ``{token: Trajectory}`` per seed; each trajectory 8 poses at 0.5 s, finite in
            float32 (the dtype written), in the rear-axle frame at t = 0.
        metadata: who submits; every field must be set and ``email`` must contain '@'.
        expected_tokens: the split's tokens (navtest: 12,146). Each seed must hold exactly these; without
            it, every seed must hold the same tokens as seed 0.

    Raises:
        SubmissionValidationError: listing missing and extra tokens per seed, and each bad trajectory
            or metadata field; no file is created or changed.
        DataError: the file could not be written, or reading it back did not give what was written.
    """
    metadata.check_complete()
    seeds = _checked_seeds(predictions, "predictions", expected_tokens)
    sampling = nuplan_sampling(NAVSIM_SAMPLING)
    payload = {**metadata.to_navsim_dict(), "predictions": _navsim_seeds(seeds, sampling)}
    expected = NavsimSubmission(1, metadata, predictions=_as_read(seeds))
    _write_verified(Path(path), payload, expected)


def write_submission_v2(
    path: str | Path,
    first_stage: Mapping[str, Trajectory],
    second_stage: Mapping[str, Trajectory],
    metadata: SubmissionMetadata,
    *,
    expected_first: Collection[str] | None = None,
    expected_second: Collection[str] | None = None,
) -> None:
    """Write a NAVSIM v2 two-stage (navhard, warmup, private test) submission pickle after validating it.

    Each stage is written as a list of one dict, as NAVSIM's writer does (its scorer takes one seed).

    Args:
        path: the ``submission.pkl`` to write.
        first_stage: ``{token: Trajectory}`` for the stage-one tokens (original and ``prev`` scenes).
        second_stage: ``{token: Trajectory}`` for the stage-two (reactive synthetic) tokens.
        metadata: who submits.
        expected_first: the stage-one tokens the split defines, if known.
        expected_second: the stage-two tokens the split defines, if known.

    Raises:
        SubmissionValidationError: as for :func:`write_submission_v1`, naming the stage.
        DataError: the file could not be written or did not read back as written.
    """
    metadata.check_complete()
    stages = []
    for name, stage, expected_tokens in (("first_stage_predictions", first_stage, expected_first),
                                         ("second_stage_predictions", second_stage, expected_second)):
        if not isinstance(stage, Mapping):
            raise SubmissionValidationError(
                f"{name}", [f"{name} must be one {{token: Trajectory}} mapping, got {type(stage).__name__}"])
        stages.append(_checked_seeds([stage], name, expected_tokens))
    both = set(first_stage) & set(second_stage)
    if both:
        raise SubmissionValidationError("tokens in both stages", [f"{len(both)} token(s) are in both "
                                        f"first_stage_predictions and second_stage_predictions: {_listed(both)}"])
    sampling = nuplan_sampling(NAVSIM_SAMPLING)
    payload = {**metadata.to_navsim_dict(),
               "first_stage_predictions": _navsim_seeds(stages[0], sampling),
               "second_stage_predictions": _navsim_seeds(stages[1], sampling)}
    expected = NavsimSubmission(2, metadata, first_stage_predictions=_as_read(stages[0]),
                                second_stage_predictions=_as_read(stages[1]))
    _write_verified(Path(path), payload, expected)


def read_submission(path: str | Path) -> NavsimSubmission:
    """Read a NAVSIM submission pickle (v1 or v2, written under numpy 1.x or 2.x) without running its code.

    Only NAVSIM's ``Trajectory``, nuPlan's ``TrajectorySampling`` and numpy's array reconstruction may
    appear in the file; they are built as lead-bench stand-ins, never imported.

    Raises:
        DataError: unreadable or corrupt file; a class that is not allowed (named); not a submission dict;
            missing or unknown keys; bad metadata; a prediction that is not a ``Trajectory`` or has the
            wrong shape, dtype, sampling or non-finite values (naming the token).
    """
    p = Path(path)
    obj = load_restricted(p, substitutes=SUBSTITUTES)
    if not isinstance(obj, dict):
        raise DataError(f"a NAVSIM submission is a dict, the file holds a {type(obj).__name__}", path=p)
    keys = [k for k in obj if isinstance(k, str)]
    if len(keys) != len(obj):
        raise DataError(f"submission keys must be str, got {sorted(map(repr, obj))}", path=p)
    has_v1, has_v2 = V1_KEYS[0] in obj, any(k in obj for k in V2_KEYS)
    if has_v1 == has_v2:
        raise DataError("cannot tell the submission version: it needs 'predictions' (v1) or "
                        "'first_stage_predictions' and 'second_stage_predictions' (v2); "
                        f"keys: {keys}", path=p)
    version: Literal[1, 2] = 1 if has_v1 else 2
    required = METADATA_KEYS + (V1_KEYS if version == 1 else V2_KEYS)
    missing = [k for k in required if k not in obj]
    unknown = [k for k in keys if k not in required]
    if missing or unknown:
        raise DataError(f"v{version} submission: missing keys {missing}, unknown keys {unknown}", path=p)
    try:
        metadata = SubmissionMetadata(obj["team_name"], obj["authors"], obj["email"], obj["institution"],
                                      obj["country / region"])
    except ValueError as exc:
        raise DataError(f"bad submission metadata: {exc}", path=p) from exc
    lists = {k: _read_seeds(obj[k], k, p) for k in required[len(METADATA_KEYS):]}
    return NavsimSubmission(version, metadata, **lists)


# --- validation ---------------------------------------------------------------------------------------


def _checked_seeds(
    predictions: Sequence[Mapping[str, Trajectory]], name: str, expected_tokens: Collection[str] | None
) -> list[dict[str, np.ndarray]]:
    """Validate per-seed predictions; return per seed ``{token: float32 poses (8, 3)}`` in input order."""
    if isinstance(predictions, Mapping | str) or not isinstance(predictions, Sequence):
        hint = " (wrap a single seed in a list)" if isinstance(predictions, Mapping) else ""
        raise SubmissionValidationError(name, [f"{name} must be a list with one {{token: Trajectory}} dict "
                                               f"per seed, got {type(predictions).__name__}{hint}"])
    if len(predictions) == 0:
        raise SubmissionValidationError(name, [f"{name} holds no seed"])
    problems: list[str] = []
    if expected_tokens is not None:
        reference, against = set(expected_tokens), "the expected tokens"
    else:
        first = predictions[0]
        reference, against = (set(first) if isinstance(first, Mapping) else set()), f"{name}[0]"
    if not reference:
        problems.append(f"{name}: no tokens to predict ({against} is empty)")
    out: list[dict[str, np.ndarray]] = []
    for seed, tokens in enumerate(predictions):
        where = f"{name}[{seed}]"
        if not isinstance(tokens, Mapping):
            problems.append(f"{where} must be a {{token: Trajectory}} dict, got {type(tokens).__name__}")
            continue
        keys = set(tokens)
        missing, extra = reference - keys, keys - reference
        if missing or extra:
            problems.append(f"{where} differs from {against}: {len(missing)} missing token(s) "
                            f"{_listed(missing)}, {len(extra)} extra token(s) {_listed(extra)}")
        checked: dict[str, np.ndarray] = {}
        for token, trajectory in tokens.items():
            if not isinstance(token, str) or not token:
                problems.append(f"{where}: token {token!r} is not a non-empty str")
                continue
            poses = _checked_poses(trajectory, where, token, problems)
            if poses is not None:
                checked[token] = poses
        out.append(checked)
    if problems:
        raise SubmissionValidationError(f"invalid {name}", problems)
    return out


def _checked_poses(trajectory: Any, where: str, token: str, problems: list[str]) -> np.ndarray | None:
    """The float32 poses ``(8, 3)`` to write for ``token``, or None after appending the problem."""
    if not isinstance(trajectory, Trajectory):
        problems.append(f"{where}, token {token}: expected a harness.trajectory.Trajectory, "
                        f"got {type(trajectory).__name__}")
        return None
    sampling = trajectory.sampling
    if not is_navsim_sampling(sampling):
        problems.append(f"{where}, token {token}: sampling is {sampling.num_poses} poses every "
                        f"{sampling.interval_s} s; NAVSIM needs {NAVSIM_SAMPLING.num_poses} every "
                        f"{NAVSIM_SAMPLING.interval_s} s "
                        "(TrajectorySampling(time_horizon=4, interval_length=0.5))")
        return None
    poses = np.asarray(trajectory.poses)
    if poses.shape != (NAVSIM_SAMPLING.num_poses, 3):
        problems.append(f"{where}, token {token}: poses have shape {poses.shape}, need (8, 3)")
        return None
    # Checked after the cast: a finite float64 beyond float32's range would be written as inf.
    with np.errstate(over="ignore", invalid="ignore"):
        poses32 = poses.astype(POSES_DTYPE)
    if not np.all(np.isfinite(poses32)):
        row, col = np.argwhere(~np.isfinite(poses32))[0]
        problems.append(f"{where}, token {token}: poses[{row}, {col}] ({('x', 'y', 'heading')[col]}) is "
                        f"{poses[row, col]}, not finite as float32")
        return None
    return poses32


# --- conversion, writing, reading ---------------------------------------------------------------------


def _navsim_seeds(
    seeds: list[dict[str, np.ndarray]], sampling: NuplanTrajectorySampling
) -> list[dict[str, Any]]:
    """NAVSIM trajectories for checked poses; callers pass one ``sampling`` for the whole file, because a
    NAVSIM agent hands its own single ``TrajectorySampling`` to every trajectory it makes (both stages)."""
    return [{token: to_navsim(poses, sampling) for token, poses in seed.items()} for seed in seeds]


def _as_read(seeds: list[dict[str, np.ndarray]]) -> tuple[dict[str, Trajectory], ...]:
    """What reading the written file must give: the float32 poses, widened back exactly."""
    return tuple({token: Trajectory(poses.astype(np.float64), NAVSIM_SAMPLING)
                  for token, poses in seed.items()} for seed in seeds)


def _write_verified(path: Path, payload: dict[str, Any], expected: NavsimSubmission) -> None:
    data = dumps_with_global_names(payload, GLOBAL_NAMES)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise DataError(f"cannot create the submission file: {exc.strerror or exc}", path=path) from exc
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would surprise whoever uploads or copies the file
        difference = _difference(expected, read_submission(tmp))
        if difference:
            raise DataError(f"the written submission does not read back as written: {difference}", path=path)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DataError(f"cannot write the submission file: {exc.strerror or exc}", path=path) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _difference(expected: NavsimSubmission, got: NavsimSubmission) -> str | None:
    """The first way ``got`` differs from ``expected``, or None."""
    if (expected.version, expected.metadata) != (got.version, got.metadata):
        return f"version/metadata {got.version}/{got.metadata} != {expected.version}/{expected.metadata}"
    for name in ("predictions",) + V2_KEYS:
        want, have = getattr(expected, name), getattr(got, name)
        if len(want) != len(have):
            return f"{name}: {len(have)} seeds read, {len(want)} written"
        for seed, (w, h) in enumerate(zip(want, have)):
            if list(w) != list(h):
                return f"{name}[{seed}]: tokens differ"
            for token, traj in w.items():
                back = h[token]
                if back.sampling != traj.sampling or not np.array_equal(back.poses, traj.poses):
                    return f"{name}[{seed}], token {token}: trajectory differs"
    return None


def _read_seeds(value: Any, name: str, path: Path) -> tuple[dict[str, Trajectory], ...]:
    if not isinstance(value, list | tuple) or not value:
        raise DataError(f"{name} must be a non-empty list of {{token: Trajectory}} dicts, got {value!r:.80}",
                        path=path)
    seeds = []
    for seed, tokens in enumerate(value):
        where = f"{name}[{seed}]"
        if not isinstance(tokens, dict):
            raise DataError(f"{where} must be a {{token: Trajectory}} dict, got {type(tokens).__name__}",
                            path=path)
        read: dict[str, Trajectory] = {}
        for token, obj in tokens.items():
            if not isinstance(token, str):
                raise DataError(f"{where}: token {token!r} is not a str", path=path)
            read[token] = from_navsim(obj, token=token, where=where, path=path)
        seeds.append(read)
    return tuple(seeds)


def _single(seeds: tuple[dict[str, Trajectory], ...], name: str, version: int) -> dict[str, Trajectory]:
    if version != 2:
        raise ValueError(f"{name} exists only in v2 submissions; this one is v{version}")
    if len(seeds) != 1:
        raise ValueError(f"{name} holds {len(seeds)} seeds; NAVSIM's v2 scorer takes exactly one")
    return seeds[0]
