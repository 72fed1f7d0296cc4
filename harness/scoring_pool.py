"""Local multi-process scoring: forked parts of one call, and a persistent pool that loads scenes by token.

Two ways to spread PDMS scoring over the cores of one machine (Ray stays for clusters, ``--ray-address``):

- ``fork_map(fn, n)``: part 0 runs in this process, parts 1..n-1 in processes forked for this call. The children
  inherit everything (the scenes of ``score_plans``; the spec and maps of a metric-cache build,
  ``harness.navsim_eval.build_metric_cache``): nothing is pickled on the way in, only each part's result
  comes back through a pipe. The calling process works too, and it is the warm one (a forked child first pays
  for the pages it writes), so a call with 2 parts costs one fork.
- ``ScoringPool``: worker processes forked once per run, inheriting the run's open ``MetricCache`` (its reader
  and indexes are not read again). A batch is sent as tokens and plan poses; the workers load their scenes
  from the cache and score them, so loading (which costs more than scoring) is spread over the workers too,
  and the workers stay warm from batch to batch.

Scenes are scored independently (``score_batch`` chunks are an implementation detail), so how the scenes are
split over processes never changes a result. Workers run with one BLAS/OpenMP thread each
(``one_blas_thread``).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import multiprocessing
import os
import pickle
import signal
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

import numpy as np

from harness.errors import LeadBenchError
from harness.safe_pickle import loads_worker_result
from harness.trajectory import Trajectory, TrajectorySampling

T = TypeVar("T")


def can_fork() -> bool:
    """Whether this platform has the fork start method (Linux); elsewhere everything runs serially."""
    return "fork" in multiprocessing.get_all_start_methods()


@functools.lru_cache(maxsize=1)
def _thread_pools() -> Any:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()  # inspects the loaded libraries once (~10 ms); limiting is then cheap


def one_blas_thread() -> Any:
    """Context manager: one BLAS/OpenMP thread in this process (workers beside each other fill the cores).

    Processes forked inside it keep the limit. Setting it in a forked child instead makes OpenBLAS rebuild its
    threads there, which costs the child's first scoring call ~50 ms.
    """
    return _thread_pools().limit(limits=1)


#: glibc's ``mallopt`` parameters (malloc.h) and the values ``keep_freed_memory`` sets while it is active.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_KEPT_MMAP_THRESHOLD, _KEPT_TRIM_THRESHOLD = 256 << 20, 1 << 30
#: What they are set back to: the ceiling glibc's dynamic thresholds reach on 64-bit Linux (32 MB, twice that
#: for trimming), which a process allocating many-MB numpy temporaries reaches anyway.
_AFTER_MMAP_THRESHOLD, _AFTER_TRIM_THRESHOLD = 32 << 20, 64 << 20


@functools.lru_cache(maxsize=1)
def _glibc() -> Any:
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        return libc if "glibc" in (os.confstr("CS_GNU_LIBC_VERSION") or "") else None
    except (OSError, AttributeError, ValueError):
        return None


@contextlib.contextmanager
def keep_freed_memory() -> Iterator[None]:
    """Inside: memory that C code (numpy) frees stays in this process's heap for the next allocation.

    glibc gives large blocks back to the kernel (munmap, heap trimming) as soon as they are freed, and the next
    allocation then pays a page fault for each of its 4 kB pages (~4 us each on the development VM). PDM-Closed's
    batched planning allocates and frees many-MB temporaries chunk after chunk: ~40 k faults for 132 scenes, a
    third of them avoidable this way. Afterwards the thresholds are set to the 32 MB ceiling of glibc's dynamic
    ones and the heap's free memory is given back (``malloc_trim``). Does nothing where libc is not glibc.
    """
    libc = _glibc()
    if libc is None:
        yield
        return
    libc.mallopt(_M_MMAP_THRESHOLD, _KEPT_MMAP_THRESHOLD)
    libc.mallopt(_M_TRIM_THRESHOLD, _KEPT_TRIM_THRESHOLD)
    try:
        yield
    finally:
        libc.mallopt(_M_MMAP_THRESHOLD, _AFTER_MMAP_THRESHOLD)
        libc.mallopt(_M_TRIM_THRESHOLD, _AFTER_TRIM_THRESHOLD)
        libc.malloc_trim(0)


def split_bounds(n_items: int, n_parts: int) -> list[tuple[int, int]]:
    """``n_parts`` contiguous (lo, hi) ranges covering ``range(n_items)``, sizes differing by at most one."""
    bounds = np.linspace(0, n_items, n_parts + 1).round().astype(int).tolist()
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def fork_map(fn: Callable[[int], T], n_parts: int) -> list[T]:
    """``[fn(0), ..., fn(n_parts - 1)]``, part 0 here and the others in forked child processes.

    The children share this process's memory as it was at the fork (copy-on-write), so ``fn`` may close over
    large inputs. A child's result (or exception) is pickled back through a pipe from the child this call
    forked (trusted: nothing else writes to it). An exception in any part is raised here after every child has
    finished; a child that dies without answering raises ``RuntimeError``. Without fork, runs serially.
    """
    if n_parts <= 1 or not can_fork():
        return [fn(i) for i in range(n_parts)]
    with one_blas_thread():
        return _fork_map(fn, n_parts)


def _fork_map(fn: Callable[[int], T], n_parts: int) -> list[T]:
    children: list[tuple[int, int]] = []
    gc.freeze()  # the children's garbage collector then leaves the inherited objects' pages alone
    try:
        for part in range(1, n_parts):
            read_fd, write_fd = os.pipe()
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child; coverage is not collected in forked processes
                _child(fn, part, read_fd, write_fd)
            os.close(write_fd)
            children.append((pid, read_fd))
    except BaseException:
        _reap(children, kill=True)
        raise
    finally:
        gc.unfreeze()
    results: list[Any] = [None] * n_parts
    failure: BaseException | None = None
    try:
        results[0] = fn(0)
    except BaseException as exc:  # noqa: BLE001 - re-raised below, once the children are reaped
        failure = exc
    answers = _reap(children, kill=isinstance(failure, KeyboardInterrupt))
    for part, (ok, value) in enumerate(answers, start=1):
        if failure is None and not ok:
            failure = value
        results[part] = value
    if failure is not None:
        raise failure
    return results


def _child(fn: Callable[[int], Any], part: int, read_fd: int, write_fd: int) -> None:  # pragma: no cover
    """Runs in the forked child: compute, write the pickled answer, and leave without running any cleanup."""
    code = 0
    try:
        os.close(read_fd)
        gc.disable()
        try:
            answer: tuple[bool, Any] = (True, fn(part))
        except Exception as exc:  # noqa: BLE001 - sent to the parent
            answer = (False, exc)
        try:
            payload = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # noqa: BLE001 - an unpicklable result or exception
            payload = pickle.dumps((False, RuntimeError(f"forked part {part}: {type(exc).__name__}: {exc}")))
        with os.fdopen(write_fd, "wb") as pipe:
            pipe.write(payload)
    except BaseException:  # noqa: BLE001 - nothing may escape into the parent's stack
        code = 1
    finally:
        os._exit(code)


def _reap(children: Sequence[tuple[int, int]], *, kill: bool) -> list[tuple[bool, Any]]:
    """Read every child's answer and wait for it; (ok, result or exception) per child."""
    answers: list[tuple[bool, Any]] = []
    for pid, read_fd in children:
        if kill:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        with os.fdopen(read_fd, "rb") as pipe:
            data = pipe.read()
        _, status = os.waitpid(pid, 0)
        if data:
            answers.append(loads_worker_result(data))  # written by the child forked above
        else:
            answers.append((False, RuntimeError(f"forked worker {pid} ended without a result "
                                                f"(wait status {status})")))
    return answers


# --- a persistent pool for runs --------------------------------------------------------------------------


class ScoringPool:
    """Scoring workers for a run: forked once with the run's metric cache, they score the tokens they are sent.

    ``score(tokens, plans)`` returns, per token, its ``ProposalScores`` or the error that kept it from being
    scored (its scene could not be loaded, or its batch part failed), in order. Use as a context manager.
    Needs the fork start method (``can_fork()``): the workers inherit ``cache``, it is never pickled.

    Args:
        cache: the run's open ``harness.navsim_eval.MetricCache``, built for the tokens to be scored.
        workers: worker processes (>= 2; the parts of a batch go to them in parallel).
        config: the PDMS configuration (None: the default).
    """

    def __init__(self, cache: Any, workers: int, config: Any = None) -> None:
        if workers < 2:
            raise ValueError(f"ScoringPool needs at least 2 workers, got {workers}")
        if not can_fork():
            raise LeadBenchError("local scoring workers need the fork start method (Linux); use --workers 1")
        self.workers = workers
        # The split's scene windows (every log parsed) once here, shared: each worker would otherwise parse
        # every log again on its first load (~100 ms each on the benchmark world; a copy per worker on navtest).
        reader = getattr(getattr(cache, "scenes", None), "reader", None)
        if reader is not None:
            try:
                reader.windows()
            except LeadBenchError:
                pass  # each token's load reports it
        self._executor = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"),
                                             initializer=_set_worker, initargs=(cache, config))
        gc.freeze()  # the workers' garbage collection then leaves the inherited objects' pages alone
        try:
            with one_blas_thread():  # the workers are forked now (all at the first submit), inheriting the limit
                self._executor.submit(int).result()
        finally:
            gc.unfreeze()

    def score(self, tokens: Sequence[str], plans: Sequence[Trajectory]) -> list[Any]:
        if len(tokens) != len(plans):
            raise ValueError(f"ScoringPool.score: {len(tokens)} tokens but {len(plans)} plans")
        futures = []
        for lo, hi in split_bounds(len(tokens), min(self.workers, max(1, len(tokens)))):
            if hi > lo:
                part = plans[lo:hi]
                futures.append(self._executor.submit(
                    _score_tokens, list(tokens[lo:hi]), np.stack([p.poses for p in part]),
                    [(p.sampling.num_poses, p.sampling.interval_s) for p in part]))
        from harness.navsim_eval import unpack_scores

        out: list[Any] = []
        for future in futures:
            answers, packed = future.result()
            scored = iter(unpack_scores(packed) if packed is not None else [])
            out.extend(next(scored) if a is None else a for a in answers)
        return out

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> ScoringPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: The worker's (metric cache, PDMS config), set by its initializer.
_WORKER: tuple[Any, Any] | None = None


def _set_worker(cache: Any, config: Any) -> None:
    global _WORKER
    _WORKER = (cache, config)


def _score_tokens(tokens: list[str], poses: np.ndarray, samplings: list[tuple[int, float]]
                  ) -> tuple[list[Exception | None], dict[str, np.ndarray] | None]:
    """In a worker: load the tokens' scenes and score the plans.

    Returns:
        Per token its error or None (scored), and the scored tokens' scores in order, packed
        (``pack_scores``: a few arrays pickle much faster than many small result objects).
    """
    from harness.navsim_eval import pack_scores, score_plans

    if _WORKER is None:
        raise RuntimeError("scoring worker not initialised (not started by ScoringPool)")
    cache, config = _WORKER
    out: list[Exception | None] = [None] * len(tokens)
    scenes, plans, where = [], [], []
    for i, token in enumerate(tokens):
        try:
            scenes.append(cache.get(token))
        except (LeadBenchError, ValueError) as exc:
            out[i] = exc
            continue
        plans.append(Trajectory(poses[i], TrajectorySampling(*samplings[i])))
        where.append(i)
    if not scenes:
        return out, None
    try:
        return out, pack_scores(score_plans(scenes, plans, config=config))
    except (LeadBenchError, ValueError) as exc:
        for i in where:
            out[i] = exc
        return out, None
