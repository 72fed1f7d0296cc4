"""CARLA leaderboard 2.0 / Bench2Drive result files as typed records.

The leaderboard's statistics manager writes one JSON document per evaluation (its *checkpoint endpoint*,
``checkpoint_endpoint.json`` or ``results.json``)::

    {"_checkpoint": {"records": [route record, ...],      # only routes whose evaluation ended
                     "progress": [next_route_index, total_routes],
                     "global_record": {} or {"scores_mean": ..., "infractions": ..., "meta": ...}},
     "entry_status": "Started" | "Finished" | "Crashed" | "Rejected" | "Invalid",
     "eligible": bool, "sensors": [...], "values": [...], "labels": [...]}

A route record holds ``route_id`` (``RouteScenario_<id>_rep<n>``), ``index``, ``status``, ``num_infractions``,
``infractions`` (infraction type -> list of the traffic events' messages), ``scores`` (``score_route``,
``score_penalty``, ``score_composed``; route completion and driving score in 0-100, penalty in 0-1) and ``meta``
(``route_length`` in metres, ``duration_game`` and ``duration_system`` in seconds). Bench2Drive's fork adds
``scenario_name``, ``town_name``, ``weather_id`` and ``save_name``. Bench2Drive's ``tools/merge_route_json.py``
writes a merged file: ``{"_checkpoint": {"records": [...]}, "driving score", "success rate", "eval num"}``
(records without ``index``, no ``progress``).

Percent-based infractions carry their value only in the message text, which is what the stored file keeps:
``"Average speed is {p}% of the surrounding traffic's one"`` (min speed, ``p`` already rounded to 2 decimals
when the penalty was computed) and ``"Agent went outside its route lanes for about {m} meters ({p}% of the
completed route)"`` (``m`` rounded to 3 decimals, ``p`` to 2 decimals; the leaderboard's penalty used the
unrounded ``p``).

Everything here is pure: :func:`parse_result_document` turns an already-decoded JSON value into records and
raises :class:`~harness.errors.DataError` naming the file, the route and the missing or malformed key.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from harness.errors import DataError

#: Infraction types of a leaderboard 2.0 route record, in the leaderboard's label order.
INFRACTION_TYPES: tuple[str, ...] = (
    "collisions_pedestrian",
    "collisions_vehicle",
    "collisions_layout",
    "red_light",
    "stop_infraction",
    "outside_route_lanes",
    "route_dev",
    "route_timeout",
    "vehicle_blocked",
    "yield_emergency_vehicle_infractions",
    "scenario_timeouts",
    "min_speed_infractions",
)

#: Route statuses the leaderboard writes. ``Perfect``/``Completed``: the target was reached (without / with
#: infractions). ``Failed - …``: the route ended early; the suffix says why.
STATUS_PERFECT, STATUS_COMPLETED = "Perfect", "Completed"
#: Endings decided by the driving itself: the route was evaluated to its (early) end and its score stands.
DRIVING_FAILURES: tuple[str, ...] = (
    "Failed - Agent deviated from the route",
    "Failed - Agent got blocked",
    "Failed - Agent timed out",
)
#: Endings caused by the run, not the driving (the leaderboard's FAILURE_MESSAGES), plus a bare "Failed" (no
#: reason recorded; LEAD's result_parser treats it as an error too) and "Started" (never scored).
RUN_FAILURES: tuple[str, ...] = (
    "Failed - Simulation crashed",
    "Failed - Agent's sensors were invalid",
    "Failed - Agent couldn't be set up",
    "Failed - Agent crashed",
    "Failed",
    "Started",
)

_MIN_SPEED_RE = re.compile(r"^Average speed is (?P<pct>[-+0-9.eE]+|nan|inf)% of the surrounding traffic's one$")
_OUTSIDE_LANES_RE = re.compile(
    r"^Agent went outside its route lanes for about (?P<m>[-+0-9.eE]+) meters "
    r"\((?P<pct>[-+0-9.eE]+)% of the completed route\)$"
)


class FileKind(Enum):
    """Which tool wrote a result document."""

    CHECKPOINT = "checkpoint"  # the leaderboard's statistics manager (one evaluation, or merge_statistics.py)
    BENCH2DRIVE_MERGED = "bench2drive_merged"  # Bench2Drive's tools/merge_route_json.py


@dataclass(frozen=True)
class StoredScores:
    """The scores the leaderboard wrote for a route.

    Attributes:
        route_completion_pct: ``score_route``, percent of the route driven, 0-100.
        infraction_penalty: ``score_penalty``, product of the penalty coefficients, 0-1.
        driving_score: ``score_composed``, route completion x penalty, 0-100.
    """

    route_completion_pct: float
    infraction_penalty: float
    driving_score: float


@dataclass(frozen=True)
class Infractions:
    """One route's infractions, as the result file records them.

    Attributes:
        messages: infraction type (:data:`INFRACTION_TYPES`) -> the traffic events' messages, in file order.
        min_speed_pct: per min-speed event, the ego's mean speed as a percentage of the surrounding traffic's.
        outside_route_lanes_pct: per outside-route-lanes event (at most one per route), the percentage of the
            completed route driven outside the route's lanes (as printed, 2 decimals).
        outside_route_lanes_m: per outside-route-lanes event, the metres driven outside (as printed, 3 decimals).
    """

    messages: Mapping[str, tuple[str, ...]]
    min_speed_pct: tuple[float, ...] = ()
    outside_route_lanes_pct: tuple[float, ...] = ()
    outside_route_lanes_m: tuple[float, ...] = ()

    def count(self, kind: str) -> int:
        """Number of events of ``kind``."""
        return len(self.messages.get(kind, ()))


@dataclass(frozen=True)
class RouteRecord:
    """One route record of a result file.

    Attributes:
        route_id: the leaderboard's route name, ``RouteScenario_<id>_rep<n>``.
        status: the leaderboard's status string (see :data:`DRIVING_FAILURES`, :data:`RUN_FAILURES`).
        stored: the scores written in the file.
        infractions: the recorded infractions.
        route_length_m: length of the planned route, metres.
        duration_game_s / duration_system_s: simulated and wall-clock duration of the route, seconds.
        index: the record's ``index`` (absent in Bench2Drive merged files).
        num_infractions: the file's ``num_infractions`` (absent in some merged files).
        source: the file the record came from.
        scenario_name / town_name: Bench2Drive's extra fields, when present.
    """

    route_id: str
    status: str
    stored: StoredScores
    infractions: Infractions
    route_length_m: float
    duration_game_s: float
    duration_system_s: float
    index: int | None
    num_infractions: int | None
    source: str
    scenario_name: str | None = None
    town_name: str | None = None

    @property
    def has_bench2drive_fields(self) -> bool:
        """Whether the record carries the fields Bench2Drive's leaderboard fork adds."""
        return self.scenario_name is not None or self.town_name is not None


@dataclass(frozen=True)
class StoredGlobalRecord:
    """The aggregate the leaderboard stored (``_checkpoint.global_record``), kept to cross-check ours.

    Attributes:
        scores_mean: ``score_composed``/``score_route``/``score_penalty`` means as stored.
        infractions: per-type values as stored (per km, except ``outside_route_lanes``: km).
        status: ``Perfect`` / ``Completed`` / ``Failed``.
    """

    scores_mean: Mapping[str, float]
    infractions: Mapping[str, float]
    status: str


@dataclass(frozen=True)
class ResultDocument:
    """One decoded result file.

    Attributes:
        source: where it came from (a path, for messages).
        kind: which tool wrote it.
        records: the route records, in file order.
        progress: ``(next_route_index, total_routes)``, or ``None`` where the file has none.
        entry_status: the leaderboard's ``entry_status``, or ``None`` (merged files).
        global_record: the stored aggregate, or ``None`` when empty (a partial run) or absent.
        bench2drive_driving_score / bench2drive_success_rate / bench2drive_eval_num: a Bench2Drive merged
            file's stored summary (``"driving score"`` 0-100, ``"success rate"`` 0-1, ``"eval num"``).
    """

    source: str
    kind: FileKind
    records: tuple[RouteRecord, ...]
    progress: tuple[int, int] | None
    entry_status: str | None
    global_record: StoredGlobalRecord | None
    bench2drive_driving_score: float | None = None
    bench2drive_success_rate: float | None = None
    bench2drive_eval_num: int | None = None


# --- parsing -----------------------------------------------------------------------------------------------


def _get(mapping: Any, key: str, *, source: str, where: str) -> Any:
    if not isinstance(mapping, Mapping):
        raise DataError(f"{where} is not a JSON object (got {type(mapping).__name__})", path=source)
    if key not in mapping:
        raise DataError(f"missing key '{key}' in {where}", path=source)
    return mapping[key]


def _number(value: Any, *, source: str, where: str, integer: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(f"{where} must be a number, got {value!r}", path=source)
    if not math.isfinite(value):
        raise DataError(f"{where} must be finite, got {value!r}", path=source)
    if integer and int(value) != value:
        raise DataError(f"{where} must be an integer, got {value!r}", path=source)
    return float(value)


def _parse_pct(regex: re.Pattern[str], message: str, *, source: str, where: str) -> re.Match[str]:
    match = regex.match(message) if isinstance(message, str) else None
    if match is None:
        raise DataError(f"{where}: cannot read the percentage from message {message!r} (expected "
                        f"the leaderboard 2.0 text, e.g. {regex.pattern!r})", path=source)
    for value in match.groupdict().values():
        if not math.isfinite(float(value)):
            raise DataError(f"{where}: non-finite value in message {message!r}", path=source)
    return match


def parse_infractions(raw: Any, *, source: str, where: str) -> Infractions:
    """The ``infractions`` object of a route record: every leaderboard 2.0 type, each a list of messages."""
    if not isinstance(raw, Mapping):
        raise DataError(f"{where}.infractions must be an object of infraction lists", path=source)
    unknown = sorted(set(raw) - set(INFRACTION_TYPES))
    if unknown:
        raise DataError(f"{where}.infractions has unknown type(s) {unknown}; leaderboard 2.0 records have "
                        f"{list(INFRACTION_TYPES)}", path=source)
    messages: dict[str, tuple[str, ...]] = {}
    for kind in INFRACTION_TYPES:
        items = _get(raw, kind, source=source, where=f"{where}.infractions")
        if not isinstance(items, list) or not all(isinstance(m, str) for m in items):
            raise DataError(f"{where}.infractions.{kind} must be a list of message strings", path=source)
        messages[kind] = tuple(items)
    min_speed = tuple(
        float(_parse_pct(_MIN_SPEED_RE, m, source=source, where=f"{where}.infractions.min_speed_infractions")["pct"])
        for m in messages["min_speed_infractions"]
    )
    lanes = [_parse_pct(_OUTSIDE_LANES_RE, m, source=source, where=f"{where}.infractions.outside_route_lanes")
             for m in messages["outside_route_lanes"]]
    return Infractions(messages=messages, min_speed_pct=min_speed,
                       outside_route_lanes_pct=tuple(float(m["pct"]) for m in lanes),
                       outside_route_lanes_m=tuple(float(m["m"]) for m in lanes))


def parse_route_record(raw: Any, *, source: str, position: int) -> RouteRecord:
    """One element of ``_checkpoint.records``; ``position`` is its place in the list (for messages)."""
    where = f"_checkpoint.records[{position}]"
    route_id = _get(raw, "route_id", source=source, where=where)
    if not isinstance(route_id, str) or not route_id:
        raise DataError(f"{where}.route_id must be a non-empty string, got {route_id!r}", path=source)
    where = f"{where} (route {route_id})"
    status = _get(raw, "status", source=source, where=where)
    if not isinstance(status, str):
        raise DataError(f"{where}.status must be a string, got {status!r}", path=source)
    scores = _get(raw, "scores", source=source, where=where)
    stored = StoredScores(
        *(_number(_get(scores, k, source=source, where=f"{where}.scores"), source=source, where=f"{where}.scores.{k}")
          for k in ("score_route", "score_penalty", "score_composed"))
    )
    meta = _get(raw, "meta", source=source, where=where)
    length = _number(_get(meta, "route_length", source=source, where=f"{where}.meta"), source=source,
                     where=f"{where}.meta.route_length")
    if length < 0:
        raise DataError(f"{where}.meta.route_length must be >= 0 m, got {length}", path=source)
    durations = [_number(meta.get(k, 0.0), source=source, where=f"{where}.meta.{k}")
                 for k in ("duration_game", "duration_system")]
    infractions = parse_infractions(_get(raw, "infractions", source=source, where=where), source=source, where=where)
    index = raw.get("index")
    num = raw.get("num_infractions")
    return RouteRecord(
        route_id=route_id, status=status, stored=stored, infractions=infractions, route_length_m=length,
        duration_game_s=durations[0], duration_system_s=durations[1],
        index=None if index is None else int(_number(index, source=source, where=f"{where}.index", integer=True)),
        num_infractions=None if num is None else int(_number(num, source=source, where=f"{where}.num_infractions",
                                                             integer=True)),
        source=source,
        scenario_name=raw.get("scenario_name") if isinstance(raw.get("scenario_name"), str) else None,
        town_name=raw.get("town_name") if isinstance(raw.get("town_name"), str) else None,
    )


def _parse_global_record(raw: Any, *, source: str) -> StoredGlobalRecord | None:
    if raw in (None, {}):
        return None
    where = "_checkpoint.global_record"
    means = _get(raw, "scores_mean", source=source, where=where)
    infr = _get(raw, "infractions", source=source, where=where)
    if not isinstance(means, Mapping) or not isinstance(infr, Mapping):
        raise DataError(f"{where}.scores_mean and .infractions must be objects", path=source)
    return StoredGlobalRecord(
        scores_mean={k: _number(v, source=source, where=f"{where}.scores_mean.{k}") for k, v in means.items()},
        infractions={k: _number(v, source=source, where=f"{where}.infractions.{k}") for k, v in infr.items()},
        status=str(raw.get("status", "")),
    )


def parse_result_document(data: Any, *, source: str) -> ResultDocument:
    """A decoded result JSON (checkpoint endpoint or Bench2Drive merged file) as a :class:`ResultDocument`.

    Raises:
        DataError: naming ``source``, the route and the key that is missing or malformed.
    """
    checkpoint = _get(data, "_checkpoint", source=source, where="the result file")
    raw_records = _get(checkpoint, "records", source=source, where="_checkpoint")
    if not isinstance(raw_records, list):
        raise DataError("_checkpoint.records must be a list of route records", path=source)
    records = tuple(parse_route_record(r, source=source, position=i) for i, r in enumerate(raw_records))
    seen: dict[str, int] = {}
    for i, r in enumerate(records):
        if r.route_id in seen:
            raise DataError(f"route {r.route_id} has two records (_checkpoint.records[{seen[r.route_id]}] and "
                            f"[{i}])", path=source)
        seen[r.route_id] = i
    is_merged = "eval num" in data or "success rate" in data
    progress: tuple[int, int] | None = None
    raw_progress = checkpoint.get("progress")
    if raw_progress not in (None, []):
        if (not isinstance(raw_progress, list) or len(raw_progress) != 2):
            raise DataError(f"_checkpoint.progress must be [next_route_index, total_routes], got {raw_progress!r}",
                            path=source)
        done, total = (int(_number(v, source=source, where="_checkpoint.progress", integer=True))
                       for v in raw_progress)
        if total < len(records):
            raise DataError(f"_checkpoint.progress says {total} routes in total but the file has {len(records)} "
                            "records", path=source)
        progress = (done, total)
    elif not is_merged and "entry_status" in data:
        raise DataError("missing key 'progress' in _checkpoint (the leaderboard writes "
                        "[next_route_index, total_routes])", path=source)
    entry_status = data.get("entry_status")
    global_record = _parse_global_record(checkpoint.get("global_record"), source=source)
    b2d_ds = b2d_sr = None
    b2d_n = None
    if is_merged:
        if "driving score" in data:
            b2d_ds = _number(data["driving score"], source=source, where="'driving score'")
        if "success rate" in data:
            b2d_sr = _number(data["success rate"], source=source, where="'success rate'")
        if "eval num" in data:
            b2d_n = int(_number(data["eval num"], source=source, where="'eval num'", integer=True))
    return ResultDocument(
        source=source, kind=FileKind.BENCH2DRIVE_MERGED if is_merged else FileKind.CHECKPOINT, records=records,
        progress=progress, entry_status=entry_status if isinstance(entry_status, str) else None,
        global_record=global_record, bench2drive_driving_score=b2d_ds, bench2drive_success_rate=b2d_sr,
        bench2drive_eval_num=b2d_n,
    )
