"""Score CARLA leaderboard result files into a lead-bench results directory (what `run carla` does).

Results directory::

    rows.parquet, rows.csv  one row per recorded route: route_id (also as ``token``), status, outcome,
                            route_completion (0-100), infraction_penalty (0-1), driving_score (0-100),
                            route_length_m, km_driven, one count column per infraction type, the stored and
                            recomputed scores, success (Bench2Drive's definition), error (unfinished routes)
    failures.csv            routes whose evaluation did not finish (status as the error)
    summary.json            the leaderboard's global means and counts (see :func:`summary_dict`)
    config.json             the inputs and options
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.results import write_results
from metrics.carla import (
    INFRACTION_TYPES,
    CarlaEvaluation,
    Protocol,
    evaluate_documents,
    find_result_files,
    read_result_file,
)

#: Per-route columns, in order (``token`` repeats ``route_id`` so `lead-bench compare` can pair routes).
ROW_COLUMNS: tuple[str, ...] = (
    "route_id", "token", "status", "outcome", "route_completion", "infraction_penalty", "driving_score",
    "route_length_m", "km_driven", *INFRACTION_TYPES, "outside_route_lanes_km", "success",
    "stored_route_completion", "stored_infraction_penalty", "stored_driving_score", "recomputed_penalty",
    "recomputed_driving_score", "duration_game_s", "duration_system_s", "scenario_name", "town_name", "source",
    "error",
)


@dataclass(frozen=True)
class CarlaRun:
    """What `run carla` produced: the evaluation, the files it read and skipped, and where it wrote."""

    evaluation: CarlaEvaluation
    files: tuple[Path, ...]
    skipped: tuple[Path, ...]
    out_dir: Path


def route_rows(evaluation: CarlaEvaluation) -> list[dict[str, Any]]:
    """One row per recorded route (see :data:`ROW_COLUMNS`)."""
    rows = []
    for r in evaluation.routes:
        rec = r.record
        row: dict[str, Any] = {
            "route_id": rec.route_id, "token": rec.route_id, "status": rec.status, "outcome": r.outcome.value,
            "route_completion": r.route_completion_pct, "infraction_penalty": r.infraction_penalty,
            "driving_score": r.driving_score, "route_length_m": rec.route_length_m, "km_driven": r.km_driven,
        }
        row.update({k: int(r.infraction_counts[k]) for k in INFRACTION_TYPES})
        row.update({
            "outside_route_lanes_km": r.outside_route_lanes_km, "success": bool(r.success),
            "stored_route_completion": rec.stored.route_completion_pct,
            "stored_infraction_penalty": rec.stored.infraction_penalty,
            "stored_driving_score": rec.stored.driving_score, "recomputed_penalty": r.recomputed_penalty,
            "recomputed_driving_score": r.recomputed_driving_score, "duration_game_s": rec.duration_game_s,
            "duration_system_s": rec.duration_system_s, "scenario_name": rec.scenario_name,
            "town_name": rec.town_name, "source": rec.source,
            "error": None if r.outcome.finished else f"unfinished: {rec.status}",
        })
        rows.append(row)
    return rows


def summary_dict(evaluation: CarlaEvaluation, *, skipped: Sequence[Path] = ()) -> dict[str, Any]:
    """The summary JSON: the leaderboard's global means (``driving_score``/``route_completion`` 0-100,
    ``infraction_penalty`` 0-1, over ``routes_total``: routes without a record count as 0), the counts, the
    unfinished routes by id, means over finished routes only, km driven, infractions per km (the leaderboard's
    global record: ``outside_route_lanes`` is km driven outside the route lanes, not a rate) and, under
    Bench2Drive's rules, its success rate (percent of ``routes_total``)."""
    a = evaluation.aggregate
    b2d = a.protocol is Protocol.BENCH2DRIVE
    unfinished = [{"route_id": u.route_id, "status": u.status, "source": u.source} for u in a.unfinished]
    return {
        "benchmark": "carla",
        "protocol": a.protocol.value,
        "scorer": "CARLA leaderboard 2.0 statistics manager rules" + (" (Bench2Drive fork)" if b2d else ""),
        "driving_score": a.driving_score,
        "route_completion": a.route_completion,
        "infraction_penalty": a.infraction_penalty,
        "scores_std_dev": {"driving_score": a.driving_score_std, "route_completion": a.route_completion_std,
                           "infraction_penalty": a.infraction_penalty_std},
        "routes_total": a.routes_total,
        "routes_recorded": a.routes_recorded,
        "routes_finished": a.routes_finished,
        "routes_missing": a.routes_missing,
        "unfinished_routes": unfinished,
        "means_over_finished_routes": None if a.finished_means is None else dict(
            zip(("driving_score", "route_completion", "infraction_penalty"), a.finished_means, strict=True)),
        "km_driven": a.km_driven,
        "infraction_counts": dict(a.infraction_counts),
        "infractions_per_km": dict(a.infractions_per_km),
        "outside_route_lanes_km": a.infractions_per_km["outside_route_lanes"],
        "global_status": a.global_status,
        "success_rate": a.success_rate if b2d else None,
        "successes": a.successes if b2d else None,
        "counts": {"expected": a.routes_total, "scored": a.routes_finished,
                   "failed": len(a.unfinished) + a.routes_missing},
        "checks": list(evaluation.checks),
        "sources": list(evaluation.sources),
        "entry_statuses": list(evaluation.entry_statuses),
        "skipped_files": [str(p) for p in skipped],
    }


def score_carla_results(paths: Iterable[str | Path], out_dir: Path, *, protocol: Protocol | None = None,
                        routes_total: int | None = None) -> CarlaRun:
    """Read every result file under ``paths``, score the routes, write ``out_dir``.

    Raises:
        DataError: a file does not decode or lacks a key (named), or a route appears twice.
        ConfigError: a path does not exist or holds no result file; ``routes_total`` is too small.
    """
    found = find_result_files(paths)
    docs = [read_result_file(p) for p in found.results]
    evaluation = evaluate_documents(docs, protocol=protocol, routes_total=routes_total)
    config = {"benchmark": "carla", "results": [str(p) for p in found.results],
              "protocol": None if protocol is None else protocol.value, "routes_total": routes_total}
    write_results(out_dir, route_rows(evaluation), summary_dict(evaluation, skipped=found.skipped), config,
                  columns=ROW_COLUMNS)
    return CarlaRun(evaluation=evaluation, files=found.results, skipped=found.skipped, out_dir=out_dir)
