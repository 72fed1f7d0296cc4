"""CARLA leaderboard 2.0 and Bench2Drive driving scores from result JSON (no CARLA server needed).

- :mod:`metrics.carla.records`: typed records parsed from ``checkpoint_endpoint.json`` / merged files.
- :mod:`metrics.carla.scoring`: the leaderboard's penalty, driving score, infractions per km and global means.
- :mod:`metrics.carla.evaluation`: several files as one evaluation, with consistency checks.
- :mod:`metrics.carla.files`: finding and reading result files.
"""

from metrics.carla.evaluation import CarlaEvaluation, detect_protocol, evaluate_documents
from metrics.carla.files import find_result_files, read_result_file
from metrics.carla.records import INFRACTION_TYPES, ResultDocument, RouteRecord, parse_result_document
from metrics.carla.scoring import (
    PENALTY_COEFFICIENTS,
    Aggregate,
    Protocol,
    RouteOutcome,
    RouteScore,
    aggregate,
    infraction_penalty,
    score_route,
)

__all__ = [
    "INFRACTION_TYPES", "PENALTY_COEFFICIENTS", "Aggregate", "CarlaEvaluation", "Protocol", "ResultDocument",
    "RouteOutcome", "RouteRecord", "RouteScore", "aggregate", "detect_protocol", "evaluate_documents",
    "find_result_files", "infraction_penalty", "parse_result_document", "read_result_file", "score_route",
]
