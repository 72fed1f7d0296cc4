"""Finding and reading CARLA leaderboard result files.

A path given by the user is either a result file or a directory searched recursively for ``*.json`` files; in a
directory, JSON files that are not result documents (no top-level ``_checkpoint``, e.g. a lead-bench
``summary.json`` or a route's ``metas``) are skipped and reported. A file named explicitly must be a result
document. JSON that does not decode is an error in both cases: a half-written checkpoint is not a result.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ConfigError, DataError
from metrics.carla.records import ResultDocument, parse_result_document


@dataclass(frozen=True)
class FoundFiles:
    """Result files to read, and JSON files skipped because they are not result documents."""

    results: tuple[Path, ...]
    skipped: tuple[Path, ...]


def _decode(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read the result file ({exc})", path=path) from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", path=path) from exc


def find_result_files(paths: Iterable[str | Path]) -> FoundFiles:
    """Result files among ``paths`` (files, or directories searched recursively), sorted, each once.

    Raises:
        ConfigError: a path does not exist, or nothing was found.
        DataError: a JSON file does not decode.
    """
    results: list[Path] = []
    skipped: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_file():
            results.append(p)
        elif p.is_dir():
            for f in sorted(p.rglob("*.json")):
                if not f.is_file():
                    continue
                data = _decode(f)
                (results if isinstance(data, dict) and "_checkpoint" in data else skipped).append(f)
        else:
            raise ConfigError(f"result path {p} does not exist (expected a leaderboard result JSON or a "
                              "directory containing them)")
    unique = tuple(dict.fromkeys(f.resolve() for f in results))
    if not unique:
        raise ConfigError(f"no leaderboard result JSON (with a top-level '_checkpoint') under "
                          f"{[str(p) for p in paths]}")
    return FoundFiles(results=unique, skipped=tuple(skipped))


def read_result_file(path: str | Path) -> ResultDocument:
    """Decode and parse one result file.

    Raises:
        DataError: naming the file and the missing or malformed key.
    """
    p = Path(path)
    return parse_result_document(_decode(p), source=str(p))
