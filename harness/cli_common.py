"""What every ``lead-bench`` command module shares: consoles, exit codes, error handling, progress bars and
the cache directory. Command modules (``cli_<benchmark>.py``) import from here, never from ``harness.cli``,
and ``harness.cli`` registers their commands on its groups.

Exit codes: 0 success; 1 the run finished but some samples failed; 2 bad input or usage (the message names
the file, token and what was expected); 3 an unexpected internal error (please report it).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from harness.errors import LeadBenchError

EXIT_OK, EXIT_PARTIAL, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 3
console = Console(stderr=True)
out_console = Console()
F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(fn: F) -> F:
    """Turn project errors into a one-line message and exit code 2 instead of a traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except LeadBenchError as exc:
            console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            sys.exit(EXIT_BAD_INPUT)
        except (click.exceptions.Exit, click.ClickException, KeyboardInterrupt):
            raise
        except Exception:  # a bug, not bad input: show where, and say so with its own exit code
            console.print_exception(show_locals=False)
            console.print("[bold red]internal error[/]: please report it with the traceback above")
            sys.exit(EXIT_INTERNAL)

    return wrapper  # type: ignore[return-value]


def cache_root() -> Path:
    """The lead-bench cache directory: $LEAD_BENCH_CACHE, else $XDG_CACHE_HOME/lead-bench."""
    env = os.environ.get("LEAD_BENCH_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lead-bench"


@contextmanager
def progress_bar() -> Iterator[Progress]:
    """A rich progress display on stderr (stdout stays clean for tables)."""
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as progress:
        yield progress
