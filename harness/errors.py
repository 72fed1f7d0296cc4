"""Project exceptions. Each names what was read (path, token) and what was expected.

The CLI turns any ``LeadBenchError`` into a one-paragraph message and exit code 2; library code raises
them and never prints or exits.
"""

from __future__ import annotations

from pathlib import Path


class LeadBenchError(Exception):
    """Base class for errors a user can act on (bad input, missing data, bad configuration)."""


class DataError(LeadBenchError):
    """Input data is missing, corrupt or not in the expected format.

    Args:
        message: what was wrong and what was expected.
        path: the file or directory concerned, if any.
        token: the sample/scene token concerned, if any.
    """

    def __init__(self, message: str, *, path: str | Path | None = None, token: str | None = None) -> None:
        self.path = None if path is None else Path(path)
        self.token = token
        where = []
        if path is not None:
            where.append(f"file {path}")
        if token is not None:
            where.append(f"token {token}")
        super().__init__(f"{message} ({', '.join(where)})" if where else message)


class MapError(DataError):
    """A map is missing, unreadable or not in nuPlan's GeoPackage layout."""


class ConfigError(LeadBenchError):
    """A command-line option or configuration value is invalid."""
