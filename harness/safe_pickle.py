"""Restricted unpickling: pickles from others (dataset logs, submissions) may only build allowed classes.

A plain ``pickle.load`` runs whatever a file asks for. Dataset logs and leaderboard submissions come from
outside, so they are read with an unpickler that resolves only an explicit allow-list of globals (numpy's
array reconstruction and a few builtins by default) and raises ``DataError`` for anything else.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import DataError

_NUMPY2 = int(np.__version__.split(".")[0]) >= 2

#: Globals needed to rebuild numpy arrays, scalars and dtypes across numpy 1.x and 2.x pickles.
NUMPY_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),  # protocol-2 pickles store array bytes through codecs.encode
        ("builtins", "bytearray"),
        ("builtins", "complex"),
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("builtins", "slice"),
        ("collections", "OrderedDict"),
        ("pathlib", "PosixPath"),
        ("pathlib", "PurePosixPath"),
    }
)


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only ``allowed`` (module, name) globals, or ``substitutes`` for them.

    Args:
        file: binary stream.
        allowed: (module, name) pairs that may be imported as they are.
        substitutes: (module, name) -> a callable/class of ours to build instead (e.g. navsim's
            ``Trajectory`` read into lead-bench's own mirror class without importing navsim).
        origin: a path or label for error messages.
    """

    def __init__(
        self,
        file: io.BufferedIOBase | io.BytesIO,
        *,
        allowed: frozenset[tuple[str, str]] = NUMPY_GLOBALS,
        substitutes: Mapping[tuple[str, str], Callable[..., Any] | type] | None = None,
        origin: str = "<stream>",
    ) -> None:
        super().__init__(file)
        self._allowed = allowed
        self._substitutes = dict(substitutes or {})
        self._origin = origin

    def find_class(self, module: str, name: str) -> Any:
        key = (module, name)
        if key in self._substitutes:
            return self._substitutes[key]
        if key in self._allowed:
            if module.startswith("numpy.core") and _NUMPY2:
                # numpy 1.x pickles name numpy.core.*; numpy 2 keeps those objects under numpy._core.
                module = "numpy._core" + module[len("numpy.core"):]
            return super().find_class(module, name)
        raise DataError(
            f"refusing to unpickle {module}.{name}: not one of the classes this file may contain",
            path=self._origin,
        )


def load_restricted(
    path: str | Path,
    *,
    allowed: frozenset[tuple[str, str]] = NUMPY_GLOBALS,
    substitutes: Mapping[tuple[str, str], Callable[..., Any] | type] | None = None,
) -> Any:
    """Read a pickle file with :class:`RestrictedUnpickler`; errors name the file.

    Raises:
        DataError: missing, truncated or corrupt file, or a disallowed class.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read pickle: {exc.strerror or exc}", path=p) from exc
    try:
        return RestrictedUnpickler(io.BytesIO(data), allowed=allowed, substitutes=substitutes, origin=str(p)).load()
    except DataError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, ImportError, MemoryError) as exc:
        raise DataError(f"corrupt or truncated pickle ({type(exc).__name__}: {exc})", path=p) from exc


class _Numpy1CompatiblePickler(pickle._Pickler):  # type: ignore[name-defined]
    """Pickler that names numpy 2's ``numpy._core`` globals by their numpy 1 path ``numpy.core``.

    NAVSIM and the leaderboards run numpy 1.x, which cannot import ``numpy._core``; numpy 2 still resolves
    ``numpy.core.*`` through its compatibility module, so the 1.x names load under both.
    """

    def save_global(self, obj: Any, name: str | None = None) -> None:
        module = getattr(obj, "__module__", None) or ""
        if module == "numpy._core" or module.startswith("numpy._core."):
            qualname = name or getattr(obj, "__qualname__", obj.__name__)
            legacy = "numpy.core" + module[len("numpy._core"):]
            self.write(pickle.GLOBAL + f"{legacy}\n{qualname}\n".encode("utf-8"))
            self.memoize(obj)
            return
        super().save_global(obj, name)


def dumps_compatible(obj: Any, protocol: int = 4) -> bytes:
    """Pickle ``obj`` so that both numpy 1.x and 2.x environments can load it."""
    buf = io.BytesIO()
    _Numpy1CompatiblePickler(buf, protocol=protocol).dump(obj)
    return buf.getvalue()
