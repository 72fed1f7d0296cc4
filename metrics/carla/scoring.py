"""CARLA leaderboard 2.0 driving score, recomputed from result records.

Reference: ``leaderboard/utils/statistics_manager.py`` of the CARLA leaderboard 2.0 (as vendored in
autonomousvision/lead ``3rd_party/leaderboard`` and, with Bench2Drive's change, ``3rd_party/Bench2Drive``),
the criteria in ``srunner/scenariomanager/scenarioatomics/atomic_criteria.py`` that write the messages, and
Bench2Drive's ``tools/merge_route_json.py`` / ``tools/ability_benchmark.py`` for the success rate.

Per route (``compute_route_statistics``):

- infraction penalty = product over the route's events of a coefficient: pedestrian collision 0.5, vehicle
  collision 0.6, layout (static) collision 0.65, red light 0.7, stop sign 0.8, scenario timeout 0.7, failing to
  yield to an emergency vehicle 0.7; a min-speed event with the ego at ``p`` % of the traffic's speed multiplies
  by ``1 - 0.3 (1 - p/100)`` (leaderboard 2.0 only: Bench2Drive marks that rule ``'unused'`` and applies no
  factor); the outside-route-lanes event with ``p`` % of the completed route outside multiplies by ``1 - p/100``.
  Route deviation, blocked agent and route timeout end the route but add no factor.
- route completion is the leaderboard's ``score_route`` (its route-completion criterion is not in the file, so it
  is read, not recomputed); the target counts as reached when it is >= 100.
- driving score = max(route completion x penalty, 0); all three rounded to 6 decimals as the leaderboard does.
  The outside-route-lanes percentage is printed with 2 decimals in the file, so a recomputed penalty can differ
  from the leaderboard's by up to 5e-5 of the other factors' product; when the stored scores agree with the
  recomputation within that bound they are used (they are the leaderboard's exact values), otherwise the
  recomputed ones are, and the disagreement is reported.

Aggregate (``compute_global_statistics``): each mean is the sum over the recorded routes divided by the total
number of routes of the evaluation (``progress[1]``), so a route without a record counts as 0; km driven =
sum of route length x completion, floored at 1 m; infractions per km = events per type / km driven, except
``outside_route_lanes`` whose global value is the kilometres driven outside the route lanes (not divided). The
global status is ``Failed`` if any route failed, else ``Completed`` if any had infractions, else ``Perfect``.
Sums use ``math.fsum`` (order-independent); the leaderboard adds in file order, which differs by < 1e-12.

lead-bench keeps the leaderboard's means (routes without a record count as 0) and reports those routes and the
ones that ended by a crash of the run rather than of the driving (:data:`~metrics.carla.records.RUN_FAILURES`)
explicitly, with means over the finished routes beside them.

Bench2Drive success (``merge_route_json.py``): status ``Completed`` or ``Perfect`` and no infraction of any
type except ``min_speed_infractions``; the rate divides by the number of routes of the benchmark (220 in
Bench2Drive's tool; here ``routes_total``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from metrics.carla.records import (
    DRIVING_FAILURES,
    INFRACTION_TYPES,
    STATUS_COMPLETED,
    STATUS_PERFECT,
    RouteRecord,
    StoredGlobalRecord,
)

#: Fixed penalty coefficient per event (the leaderboard's PENALTY_VALUE_DICT, by record key).
PENALTY_COEFFICIENTS: Mapping[str, float] = {
    "collisions_pedestrian": 0.5,
    "collisions_vehicle": 0.6,
    "collisions_layout": 0.65,
    "red_light": 0.7,
    "stop_infraction": 0.8,
    "scenario_timeouts": 0.7,
    "yield_emergency_vehicle_infractions": 0.7,
}
#: Percentage-based rules (PENALTY_PERC_DICT): coefficient at the worst value.
MIN_SPEED_COEFFICIENT = 0.7  # 'decreases': ideal is 100 %
OUTSIDE_ROUTE_LANES_COEFFICIENT = 0.0  # 'increases': ideal is 0 %
#: The leaderboard rounds route and mean scores to this many decimals.
ROUND_DIGITS_SCORE = 6
#: km driven is floored at this value before dividing (the leaderboard's ``max(km_driven, 0.001)``).
MIN_KM_DRIVEN = 0.001
#: Types that end a route without a penalty factor; counted per km like the others.
NO_PENALTY_TYPES: tuple[str, ...] = ("route_dev", "vehicle_blocked", "route_timeout")
#: Tolerance of stored global means against ours: the leaderboard rounds them to 6 decimals.
MEAN_TOLERANCE = 1e-6


class Protocol(Enum):
    """Which statistics manager's rules apply."""

    LEADERBOARD_2_0 = "leaderboard2"  # CARLA leaderboard 2.0 (Longest6 v2, Town13)
    BENCH2DRIVE = "bench2drive"  # Bench2Drive's fork: min-speed events carry no penalty


class RouteOutcome(Enum):
    """How a route's evaluation ended."""

    PERFECT = "perfect"  # target reached, no infraction
    COMPLETED = "completed"  # target reached with infractions
    DRIVING_FAILURE = "driving_failure"  # ended early by the driving: deviation, blocked, route timeout
    RUN_FAILURE = "run_failure"  # ended by the run: simulation/agent crash, set-up, sensors, bare "Failed"

    @property
    def finished(self) -> bool:
        """The evaluation ran to an end decided by the rules, so its score is a real result."""
        return self is not RouteOutcome.RUN_FAILURE


def classify_status(status: str) -> RouteOutcome:
    """The outcome of a leaderboard status string; unknown strings count as run failures."""
    if status == STATUS_PERFECT:
        return RouteOutcome.PERFECT
    if status == STATUS_COMPLETED:
        return RouteOutcome.COMPLETED
    if status in DRIVING_FAILURES:
        return RouteOutcome.DRIVING_FAILURE
    return RouteOutcome.RUN_FAILURE


def infraction_penalty(
    counts: Mapping[str, int],
    *,
    min_speed_pct: Sequence[float] = (),
    outside_route_lanes_pct: Sequence[float] = (),
    protocol: Protocol = Protocol.LEADERBOARD_2_0,
) -> float:
    """The leaderboard's infraction penalty (unrounded), in [0, 1].

    Args:
        counts: events per fixed-coefficient type (keys of :data:`PENALTY_COEFFICIENTS`; others ignored).
        min_speed_pct: per min-speed event, the ego's mean speed as % of the surrounding traffic's.
        outside_route_lanes_pct: per outside-route-lanes event, % of the completed route driven outside.
        protocol: Bench2Drive applies no min-speed factor.
    """
    penalty = 1.0
    for kind, coefficient in PENALTY_COEFFICIENTS.items():
        for _ in range(int(counts.get(kind, 0))):
            penalty *= coefficient
    if protocol is Protocol.LEADERBOARD_2_0:
        for pct in min_speed_pct:
            penalty *= 1 - (1 - MIN_SPEED_COEFFICIENT) * (1 - pct / 100)
    for pct in outside_route_lanes_pct:
        penalty *= 1 - (1 - OUTSIDE_ROUTE_LANES_COEFFICIENT) * pct / 100
    return penalty


@dataclass(frozen=True)
class RouteScore:
    """A route's recomputed scores.

    Attributes:
        record: the record they come from.
        outcome: how the evaluation ended.
        route_completion_pct: 0-100 (the record's ``score_route``).
        infraction_penalty: 0-1, the leaderboard's penalty (see :func:`score_route`).
        driving_score: 0-100, completion x penalty.
        recomputed_penalty / recomputed_driving_score: from the infraction messages alone, with the protocol's
            coefficients (rounded to 6 decimals as the leaderboard does).
        km_driven: route length x completion, km.
        infraction_counts: events per type (all of :data:`INFRACTION_TYPES`).
        outside_route_lanes_km: km driven outside the route lanes (from the message).
        success: Bench2Drive's success (target reached, no infraction other than min speed).
        mismatches: disagreements between the file's stored values and the recomputation (empty if none).
    """

    record: RouteRecord
    outcome: RouteOutcome
    route_completion_pct: float
    infraction_penalty: float
    driving_score: float
    recomputed_penalty: float
    recomputed_driving_score: float
    km_driven: float
    infraction_counts: Mapping[str, int]
    outside_route_lanes_km: float
    success: bool
    mismatches: tuple[str, ...]


def penalty_tolerance(record: RouteRecord, protocol: Protocol = Protocol.LEADERBOARD_2_0) -> float:
    """How far a penalty recomputed from ``record``'s messages may lie from the leaderboard's unrounded one.

    Outside-route-lanes percentages are printed with 2 decimals, so each such event's factor ``1 - p/100`` is
    known to 0.005/100; every other input is exact. Plus the stored value's rounding to 6 decimals.
    """
    inf = record.infractions
    if not inf.outside_route_lanes_pct:
        return 1e-9 + 0.5 * 10.0 ** -ROUND_DIGITS_SCORE
    rest = infraction_penalty({k: inf.count(k) for k in PENALTY_COEFFICIENTS}, min_speed_pct=inf.min_speed_pct,
                              protocol=protocol)
    return rest * 0.005 / 100 * len(inf.outside_route_lanes_pct) + 1e-9 + 0.5 * 10.0 ** -ROUND_DIGITS_SCORE


def score_route(record: RouteRecord, protocol: Protocol = Protocol.LEADERBOARD_2_0) -> RouteScore:
    """Recompute one route's penalty and driving score and check them against the stored ones.

    If the stored penalty agrees with the recomputation within :func:`penalty_tolerance` (it always does for
    a file the leaderboard wrote under ``protocol``), the stored penalty and driving score are the route's
    scores: they were computed from the unrounded outside-route-lanes percentage. Otherwise the recomputed ones
    are, and the disagreement is listed in :attr:`RouteScore.mismatches`.
    """
    inf = record.infractions
    counts = {kind: inf.count(kind) for kind in INFRACTION_TYPES}
    rc = record.stored.route_completion_pct
    raw_penalty = infraction_penalty(counts, min_speed_pct=inf.min_speed_pct,
                                     outside_route_lanes_pct=inf.outside_route_lanes_pct, protocol=protocol)
    recomputed_penalty = round(raw_penalty, ROUND_DIGITS_SCORE)
    recomputed_ds = round(max(rc * raw_penalty, 0.0), ROUND_DIGITS_SCORE)
    tol = penalty_tolerance(record, protocol)
    stored = record.stored
    mismatches: list[str] = []
    penalty_ok = abs(raw_penalty - stored.infraction_penalty) <= tol
    ds_ok = abs(max(rc * stored.infraction_penalty, 0.0) - stored.driving_score) <= max(rc, 1.0) * 1e-6
    if penalty_ok and ds_ok:
        penalty, ds = stored.infraction_penalty, stored.driving_score
    else:
        penalty, ds = recomputed_penalty, recomputed_ds
        if not penalty_ok:
            mismatches.append(f"infraction penalty: stored {stored.infraction_penalty:.6f}, recomputed "
                              f"{recomputed_penalty:.6f} under {protocol.value} rules")
        if not ds_ok:
            mismatches.append(f"driving score: stored {stored.driving_score:.6f} is not route completion "
                              f"{rc} x stored penalty {stored.infraction_penalty:.6f}")
    outcome = classify_status(record.status)
    target_reached = rc >= 100
    if outcome in (RouteOutcome.PERFECT, RouteOutcome.COMPLETED) and not target_reached:
        mismatches.append(f"status {record.status!r} but route completion {rc} < 100")
    if target_reached and outcome not in (RouteOutcome.PERFECT, RouteOutcome.COMPLETED):
        mismatches.append(f"route completion {rc} but status {record.status!r}")
    if outcome is RouteOutcome.PERFECT and any(counts.values()):
        mismatches.append("status 'Perfect' but the record has infractions")
    success = outcome in (RouteOutcome.PERFECT, RouteOutcome.COMPLETED) and not any(
        n for kind, n in counts.items() if kind != "min_speed_infractions")
    return RouteScore(
        record=record, outcome=outcome, route_completion_pct=rc, infraction_penalty=penalty, driving_score=ds,
        recomputed_penalty=recomputed_penalty, recomputed_driving_score=recomputed_ds,
        km_driven=record.route_length_m / 1000 * rc / 100, infraction_counts=counts,
        outside_route_lanes_km=(inf.outside_route_lanes_m[0] / 1000) if inf.outside_route_lanes_m else 0.0,
        success=success, mismatches=tuple(mismatches),
    )


@dataclass(frozen=True)
class UnfinishedRoute:
    """A route whose evaluation did not finish (listed, never averaged in silently)."""

    route_id: str
    status: str
    source: str


@dataclass(frozen=True)
class Aggregate:
    """The leaderboard's global record over a set of routes, plus what lead-bench reports beside it.

    Attributes:
        protocol: the rules used.
        routes_total: routes of the evaluation (the means' denominator).
        routes_recorded: routes with a record.
        routes_finished: recorded routes whose evaluation ended by the rules (:attr:`RouteOutcome.finished`).
        routes_missing: routes without a record (``routes_total - routes_recorded``); they count as 0.
        unfinished: recorded routes that ended by a run failure, with their status.
        driving_score / route_completion: the leaderboard's global means, 0-100.
        infraction_penalty: the leaderboard's global mean, 0-1.
        driving_score_std / route_completion_std / infraction_penalty_std: the leaderboard's standard deviations
            (over recorded routes, divided by ``routes_total - 1``; 0 for one route).
        finished_means: ``(driving_score, route_completion, infraction_penalty)`` over finished routes only
            (``None`` if no route finished).
        km_driven: sum of route length x completion, km (unfloored).
        infraction_counts: events per type over all routes.
        infractions_per_km: the leaderboard's global ``infractions``: events / max(km_driven, 0.001) per type,
            except ``outside_route_lanes``: km driven outside the route lanes.
        global_status: ``Perfect`` / ``Completed`` / ``Failed`` as the leaderboard sets it.
        successes / success_rate: Bench2Drive's success count and rate (percent of ``routes_total``).
    """

    protocol: Protocol
    routes_total: int
    routes_recorded: int
    routes_finished: int
    routes_missing: int
    unfinished: tuple[UnfinishedRoute, ...]
    driving_score: float
    route_completion: float
    infraction_penalty: float
    driving_score_std: float
    route_completion_std: float
    infraction_penalty_std: float
    finished_means: tuple[float, float, float] | None
    km_driven: float
    infraction_counts: Mapping[str, int]
    infractions_per_km: Mapping[str, float]
    global_status: str
    successes: int
    success_rate: float


def _std(values: Sequence[float], mean: float, total: int) -> float:
    if total <= 1:
        return 0.0
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (total - 1))


def aggregate(routes: Iterable[RouteScore], *, routes_total: int | None = None,
              protocol: Protocol = Protocol.LEADERBOARD_2_0) -> Aggregate:
    """The global record over ``routes``.

    Args:
        routes: scored routes (order does not matter).
        routes_total: routes in the evaluation; default the number given. Must be >= that number.
        protocol: recorded in the result.
    """
    routes = sorted(routes, key=lambda r: r.record.route_id)
    n = len(routes)
    total = n if routes_total is None else int(routes_total)
    if total < n:
        raise ValueError(f"routes_total={total} is smaller than the {n} routes given")
    if total == 0:
        raise ValueError("no routes to aggregate")
    ds = [r.driving_score for r in routes]
    rc = [r.route_completion_pct for r in routes]
    ip = [r.infraction_penalty for r in routes]
    means = [math.fsum(v) / total for v in (ds, rc, ip)]
    km = math.fsum(r.km_driven for r in routes)
    km_floor = max(km, MIN_KM_DRIVEN)
    counts = {k: sum(r.infraction_counts[k] for r in routes) for k in INFRACTION_TYPES}
    per_km = {k: counts[k] / km_floor for k in INFRACTION_TYPES}
    per_km["outside_route_lanes"] = math.fsum(r.outside_route_lanes_km for r in routes)
    status = "Perfect"
    for r in routes:
        if "Failed" in r.record.status:
            status = "Failed"
        elif status == "Perfect" and r.record.status != STATUS_PERFECT:
            status = r.record.status
    finished = [r for r in routes if r.outcome.finished]
    nf = len(finished)
    finished_means = tuple(
        math.fsum(getattr(r, a) for r in finished) / nf
        for a in ("driving_score", "route_completion_pct", "infraction_penalty")
    ) if nf else None
    successes = sum(r.success for r in routes)
    return Aggregate(
        protocol=protocol, routes_total=total, routes_recorded=n, routes_finished=nf, routes_missing=total - n,
        unfinished=tuple(UnfinishedRoute(r.record.route_id, r.record.status, r.record.source)
                         for r in routes if not r.outcome.finished),
        driving_score=means[0], route_completion=means[1], infraction_penalty=means[2],
        driving_score_std=_std(ds, round(means[0], ROUND_DIGITS_SCORE), total),
        route_completion_std=_std(rc, round(means[1], ROUND_DIGITS_SCORE), total),
        infraction_penalty_std=_std(ip, round(means[2], ROUND_DIGITS_SCORE), total),
        finished_means=finished_means,  # type: ignore[arg-type]
        km_driven=km, infraction_counts=counts, infractions_per_km=per_km, global_status=status,
        successes=successes, success_rate=100.0 * successes / total,
    )


def check_global_record(agg: Aggregate, stored: StoredGlobalRecord) -> tuple[str, ...]:
    """Disagreements between an aggregate and the global record a file stored (empty if none).

    The leaderboard rounds means to 6 decimals and per-km values to 3, so those are the tolerances.
    """
    out: list[str] = []
    pairs = (("score_composed", agg.driving_score), ("score_route", agg.route_completion),
             ("score_penalty", agg.infraction_penalty))
    for key, ours in pairs:
        if key in stored.scores_mean and abs(stored.scores_mean[key] - ours) > MEAN_TOLERANCE:
            out.append(f"global {key}: stored {stored.scores_mean[key]}, recomputed {ours:.6f}")
    for key, ours in agg.infractions_per_km.items():
        if key in stored.infractions and abs(stored.infractions[key] - ours) > 5e-4 + 1e-9:
            out.append(f"global infractions.{key}: stored {stored.infractions[key]}, recomputed {ours:.4f}")
    return tuple(out)
