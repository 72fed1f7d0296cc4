"""Restricted unpickling: pickles from others (dataset logs, submissions) may only build allowed classes.

A plain ``pickle.load`` runs whatever a file asks for. Dataset logs and leaderboard submissions come from
outside, so they are read with an unpickler that resolves only an explicit allow-list of globals (numpy's
array reconstruction and a few builtins by default) and raises ``DataError`` for anything else.
"""

from __future__ import annotations

import importlib
import io
import pickle
import types
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
            self.write(pickle.GLOBAL + f"{legacy}\n{qualname}\n".encode())
            self.memoize(obj)
            return
        super().save_global(obj, name)


def dumps_compatible(obj: Any, protocol: int = 4) -> bytes:
    """Pickle ``obj`` so that both numpy 1.x and 2.x environments can load it."""
    buf = io.BytesIO()
    _Numpy1CompatiblePickler(buf, protocol=protocol).dump(obj)
    return buf.getvalue()


class _NamedGlobalsPickler(_Numpy1CompatiblePickler):
    """Pickler that writes every class/function reference as one GLOBAL opcode, renaming stand-in classes.

    Leaderboards unpickle submissions with their own classes (navsim's ``Trajectory``), which lead-bench
    does not install. A stand-in class with the same pickled state, written under the foreign class's path,
    loads there as the real class. GLOBAL (not protocol 4's STACK_GLOBAL, whose two strings may come from
    the memo) keeps every path a file names in one opcode, so ``pickletools.genops`` can audit it.
    """

    # pickle._Pickler dispatches Python functions (numpy's protocol-5 ``_frombuffer``) to the base class's
    # save_global directly, bypassing any override; route them through ours too.
    dispatch = dict(pickle._Pickler.dispatch)  # type: ignore[attr-defined]
    dispatch[types.FunctionType] = lambda self, obj: self.save_global(obj)

    def __init__(self, file: io.BytesIO, *, protocol: int, names: Mapping[Any, tuple[str, str]]) -> None:
        super().__init__(file, protocol=protocol)
        self._names = dict(names)

    def save_global(self, obj: Any, name: str | None = None) -> None:
        try:
            path = self._names.get(obj)
        except TypeError:  # an unhashable object cannot be one of the stand-ins
            path = None
        if path is None:
            path = self._importable_path(obj, name)
        module, qualname = path
        self.write(pickle.GLOBAL + f"{module}\n{qualname}\n".encode())
        self.memoize(obj)

    @staticmethod
    def _importable_path(obj: Any, name: str | None) -> tuple[str, str]:
        qualname = name or getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
        module = getattr(obj, "__module__", None)
        if not module or not qualname or "." in qualname or "<" in qualname:
            # Nested or local objects need more than one GLOBAL; nothing lead-bench writes is one.
            raise pickle.PicklingError(f"cannot write {obj!r} as a single GLOBAL ({module}.{qualname})")
        # As pickle itself does: the path must lead back to this very object, or the file would not load.
        try:
            found = getattr(importlib.import_module(module), qualname)
        except (ImportError, AttributeError) as exc:
            raise pickle.PicklingError(f"cannot pickle {obj!r}: not found as {module}.{qualname}") from exc
        if found is not obj:
            raise pickle.PicklingError(f"cannot pickle {obj!r}: {module}.{qualname} is another object")
        if module == "numpy._core" or module.startswith("numpy._core."):
            module = "numpy.core" + module[len("numpy._core"):]
        return module, qualname


def dumps_with_global_names(
    obj: Any, global_names: Mapping[Any, tuple[str, str]], protocol: int = 4
) -> bytes:
    """Pickle ``obj`` for another project's environment: stand-in classes under that project's paths.

    Like :func:`dumps_compatible` (numpy 1.x and 2.x both load it), and every class or function the file
    refers to is written as a GLOBAL opcode.

    Args:
        obj: what to pickle.
        global_names: stand-in class -> (module, name) it is written as, e.g. lead-bench's mirror of
            navsim's ``Trajectory`` -> ``("navsim.common.dataclasses", "Trajectory")``. Each stand-in must
            pickle the same state as the class it names (same ``__dict__`` keys and value types).
        protocol: pickle protocol, 2 to 5.

    Raises:
        pickle.PicklingError: an object outside ``global_names`` cannot be found by its own path.
    """
    buf = io.BytesIO()
    _NamedGlobalsPickler(buf, protocol=protocol, names=global_names).dump(obj)
    return buf.getvalue()


#: Modules whose classes a result pickled by one of lead-bench's own forked workers may refer to.
_OWN_RESULT_MODULES = ("numpy", "harness", "metrics", "adapters", "collections", "pathlib")
#: Builtins such a result may name besides exception classes (no callables that run code: eval, getattr, ...).
_OWN_RESULT_BUILTINS = frozenset({"slice", "set", "frozenset", "complex", "bytearray", "range"})


class _OwnResultUnpickler(pickle.Unpickler):
    """Resolves only classes of numpy, the project's own packages and a few builtins (exceptions included)."""

    def find_class(self, module: str, name: str) -> Any:
        root = module.split(".", 1)[0]
        if root == "builtins":
            obj = getattr(__import__("builtins"), name, None)
            if name in _OWN_RESULT_BUILTINS or (isinstance(obj, type) and issubclass(obj, BaseException)):
                return obj
        elif root in _OWN_RESULT_MODULES:
            return super().find_class(module, name)
        raise DataError(f"refusing to unpickle {module}.{name} from a worker's result")


def loads_worker_result(data: bytes) -> Any:
    """A result that a forked lead-bench worker pickled into its pipe (packed arrays, project dataclasses, an
    exception): unpickled with only numpy, the project's classes and builtin exceptions resolvable, so that
    not even a process's own pipe can make the parent import and call arbitrary code."""
    return _OwnResultUnpickler(io.BytesIO(data)).load()
