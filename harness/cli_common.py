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


def metric_cache_dir(data_root: Path, split: str) -> Path:
    """The NAVSIM metric cache of a split: ``<cache>/metric-cache/<path key>-<split>-<inputs key>``.

    The inputs key hashes ``SCORING_SCENE_VERSION`` and the identity (relative path, size, mtime, inode) of the
    files a scene is built from: the split's log pickles, the maps under the data root, and for
    ``navhard_two_stage`` its split file and synthetic scenes. A rebuilt world or replaced logs therefore get a
    fresh cache directory rather than another build's scenes (each scene also checks its own log's fingerprint
    before it is reused). Costs one ``stat`` per file. Old directories are left in place.
    """
    import hashlib

    from harness.scoring_scene import SCORING_SCENE_VERSION

    root = Path(data_root).resolve()
    h = hashlib.blake2b(f"v{SCORING_SCENE_VERSION}|{split}\n".encode(), digest_size=6)
    for path in _metric_cache_inputs(root, split):
        st = path.stat()
        h.update(f"{path.relative_to(root).as_posix()}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}\n".encode())
    path_key = hashlib.blake2b(str(root).encode(), digest_size=6).hexdigest()
    return cache_root() / "metric-cache" / f"{path_key}-{split}-{h.hexdigest()}"


def _metric_cache_inputs(root: Path, split: str) -> list[Path]:
    two_stage = split == "navhard_two_stage"
    logs = root / "navsim_logs" / ("test" if two_stage else split)
    files = sorted(logs.glob("*.pkl")) if logs.is_dir() else []
    if (root / "maps").is_dir():
        files += sorted(p for p in (root / "maps").rglob("*") if p.suffix in (".json", ".gpkg"))
    if two_stage and (root / split).is_dir():
        files += sorted(p for p in (root / split).rglob("*")
                        if p.suffix in (".yaml", ".pkl") and "sensor_blobs" not in p.relative_to(root).parts)
    return files


@contextmanager
def progress_bar() -> Iterator[Progress]:
    """A rich progress display on stderr (stdout stays clean for tables)."""
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as progress:
        yield progress
