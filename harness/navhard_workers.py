"""Chunks of one job spread over forked processes that take the next chunk when they are free.

``harness.scoring_pool.fork_map`` gives each process one fixed part. The two-stage evaluation's chunks differ
a lot in cost (stage-one chunks simulate the human's reactive traffic too; dense logs cost several times
sparse ones: 1.0 to 6.0 CPU-s for 32 tokens of the benchmark world), so fixed parts leave one process idle
while the other finishes. Here the chunk indices are written into a pipe before the fork, and every process
(this one and the forked children, through ``fork_map``) reads the next index from it until it is empty: a
read of 4 bytes from a pipe that holds only 4-byte records returns one whole record, so each chunk is done
exactly once. Results come back as ``fork_map``'s (``safe_pickle.loads_worker_result`` in the parent).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

from harness.scoring_pool import can_fork, fork_map

T = TypeVar("T")

_RECORD = 4
#: A pipe holds 64 KiB before a writer blocks; every index is written before the fork.
_MAX_CHUNKS = (64 << 10) // _RECORD


def fork_chunks(fn: Callable[[int], T], n_chunks: int, workers: int) -> list[T]:
    """``[fn(0), ..., fn(n_chunks - 1)]`` computed by ``workers`` processes (this one and forked children),
    each taking the next chunk index when it has finished its last one (chunks are taken in index order:
    put the costly ones first). Runs serially with one worker, one chunk, or without fork.

    Raises:
        whatever ``fn`` raised in any process (after every child has finished), as ``fork_map``.
    """
    workers = max(1, min(workers, n_chunks))
    if workers == 1 or not can_fork():
        return [fn(i) for i in range(n_chunks)]
    if n_chunks > _MAX_CHUNKS:
        raise ValueError(f"fork_chunks: at most {_MAX_CHUNKS} chunks, got {n_chunks}")
    read_fd, write_fd = os.pipe()
    try:
        os.write(write_fd, b"".join(i.to_bytes(_RECORD, "little") for i in range(n_chunks)))
        os.close(write_fd)
        write_fd = -1

        def part(_: int) -> list[tuple[int, T]]:
            done = []
            while True:
                rec = os.read(read_fd, _RECORD)
                if not rec:
                    return done
                i = int.from_bytes(rec, "little")
                done.append((i, fn(i)))

        results: dict[int, T] = {}
        for got in fork_map(part, workers):
            results.update(got)
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)
    if len(results) != n_chunks:  # pragma: no cover - every index is read exactly once
        raise RuntimeError(f"fork_chunks: {n_chunks - len(results)} chunks were not computed")
    return [results[i] for i in range(n_chunks)]
