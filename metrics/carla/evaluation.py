"""One evaluation from one or more result documents: the routes, their scores, the aggregate and the checks.

Several documents (the per-worker checkpoints of a parallel evaluation, as the leaderboard's
``scripts/merge_statistics.py`` joins them) are merged: a route id may appear only once over all of them, and
the number of routes of the evaluation is the sum of the files' ``progress[1]`` when every file has one (as in
``merge_statistics.py``), else the number of records, unless given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harness.errors import ConfigError, DataError
from metrics.carla.records import FileKind, ResultDocument
from metrics.carla.scoring import (
    Aggregate,
    Protocol,
    RouteScore,
    aggregate,
    check_global_record,
    score_route,
)

#: Bench2Drive's merge_route_json.py divides by this many routes (its benchmark's size).
BENCH2DRIVE_ROUTES = 220


@dataclass(frozen=True)
class CarlaEvaluation:
    """Scored routes, the aggregate, and every disagreement found with what the files stored.

    Attributes:
        routes: per-route scores, sorted by route id.
        aggregate: the global record.
        sources: the documents' paths.
        entry_statuses: per document, the leaderboard's ``entry_status`` (``None`` for merged files).
        checks: human-readable disagreements (stored vs recomputed, progress counts); empty when consistent.
    """

    routes: tuple[RouteScore, ...]
    aggregate: Aggregate
    sources: tuple[str, ...]
    entry_statuses: tuple[str | None, ...]
    checks: tuple[str, ...]


def detect_protocol(docs: Sequence[ResultDocument]) -> Protocol:
    """Bench2Drive if the documents come from Bench2Drive's tools (a merged file, or records with its extra
    ``scenario_name``/``town_name`` fields), else leaderboard 2.0. Mixed inputs are an error."""
    kinds = {
        (d.kind is FileKind.BENCH2DRIVE_MERGED or any(r.has_bench2drive_fields for r in d.records))
        for d in docs if d.records
    }
    if len(kinds) > 1:
        raise ConfigError("the result files mix Bench2Drive and leaderboard 2.0 records; score them separately "
                          "or pass the protocol explicitly")
    return Protocol.BENCH2DRIVE if kinds == {True} else Protocol.LEADERBOARD_2_0


def evaluate_documents(docs: Sequence[ResultDocument], *, protocol: Protocol | None = None,
                       routes_total: int | None = None) -> CarlaEvaluation:
    """Score every route of ``docs`` and aggregate them.

    Args:
        docs: parsed result documents.
        protocol: scoring rules; ``None`` detects them (:func:`detect_protocol`).
        routes_total: routes in the evaluation (the means' denominator); default from the files' progress.

    Raises:
        DataError: a route id appears in two documents.
        ConfigError: ``routes_total`` is smaller than the number of records.
    """
    if not docs:
        raise ConfigError("no result documents to evaluate")
    protocol = protocol or detect_protocol(docs)
    owner: dict[str, str] = {}
    for doc in docs:
        for rec in doc.records:
            if rec.route_id in owner:
                raise DataError(f"route {rec.route_id} has records in both {owner[rec.route_id]} and {doc.source}; "
                                "pass each evaluation's results once (e.g. not a merged file together with the "
                                "files it was merged from)", path=doc.source)
            owner[rec.route_id] = doc.source
    n_records = len(owner)
    checks: list[str] = []
    if routes_total is None:
        if all(d.progress is not None for d in docs):
            routes_total = sum(d.progress[1] for d in docs if d.progress is not None)
        else:
            routes_total = n_records
    if routes_total < n_records:
        raise ConfigError(f"routes_total={routes_total} is smaller than the {n_records} route records found")
    if n_records == 0:
        raise DataError(f"the result files hold no route records ({[d.source for d in docs]})")
    scored_by_doc: list[list[RouteScore]] = []
    for doc in docs:
        scored = [score_route(r, protocol) for r in doc.records]
        scored_by_doc.append(scored)
        for s in scored:
            checks.extend(f"{doc.source}: route {s.record.route_id}: {m}" for m in s.mismatches)
        if doc.progress is not None and doc.progress[0] < len(doc.records):
            checks.append(f"{doc.source}: progress {list(doc.progress)} but {len(doc.records)} records")
        if doc.global_record is not None and doc.progress is not None and scored:
            doc_agg = aggregate(scored, routes_total=doc.progress[1], protocol=protocol)
            checks.extend(f"{doc.source}: {m}" for m in check_global_record(doc_agg, doc.global_record))
        if doc.kind is FileKind.BENCH2DRIVE_MERGED and scored:
            # merge_route_json.py: sum of stored driving scores / 220, successes / 220
            if doc.bench2drive_driving_score is not None:
                ours = sum(r.record.stored.driving_score for r in scored) / BENCH2DRIVE_ROUTES
                if abs(ours - doc.bench2drive_driving_score) > 1e-6:
                    checks.append(f"{doc.source}: stored 'driving score' {doc.bench2drive_driving_score} != "
                                  f"sum of route scores / {BENCH2DRIVE_ROUTES} = {ours:.6f}")
            if doc.bench2drive_success_rate is not None:
                ours = sum(r.success for r in scored) / BENCH2DRIVE_ROUTES
                if abs(ours - doc.bench2drive_success_rate) > 1e-9:
                    checks.append(f"{doc.source}: stored 'success rate' {doc.bench2drive_success_rate} != "
                                  f"successes / {BENCH2DRIVE_ROUTES} = {ours:.6f}")
            if doc.bench2drive_eval_num is not None and doc.bench2drive_eval_num != len(scored):
                checks.append(f"{doc.source}: 'eval num' {doc.bench2drive_eval_num} but {len(scored)} records")
    routes = tuple(sorted((s for group in scored_by_doc for s in group), key=lambda s: s.record.route_id))
    agg = aggregate(routes, routes_total=routes_total, protocol=protocol)
    return CarlaEvaluation(routes=routes, aggregate=agg, sources=tuple(d.source for d in docs),
                           entry_statuses=tuple(d.entry_status for d in docs), checks=tuple(checks))
