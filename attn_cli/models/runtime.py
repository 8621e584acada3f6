"""How the forward pass uses the machine: how many threads, and the C allocator's thresholds.

Threads. A long input (`MIN_PARALLEL_ROWS` tokens or more) is split between Python threads,
up to `threads()` of them, at two places only: a layer's row-local steps (norms, projections,
RoPE, feed-forward: `row_local`, one split for all of them) and the heads and row blocks of
attention (`maths.attention`). The maths itself takes no threads. NumPy lets go of the GIL inside BLAS and its loops, so the threads run at
once, and each computes exactly what one thread would have (every row and every head is
computed whole, in the same order, whatever the split), so the numbers do not depend on the
thread count. BLAS itself stays at one thread (the CLI sets OPENBLAS_NUM_THREADS=1): OpenBLAS's
own threads spin while they wait, and on a busy machine that made a 512-token forward pass 4.5x
slower, where a split between Python threads degrades to about one thread's speed. Shorter
inputs run on one thread: waking a second costs more than it saves. `ATTN_THREADS` sets the
most threads (1 turns them off); when BLAS is multi-threaded (a library user's choice), attn
adds none of its own.

Allocator. A forward pass makes and frees arrays of megabytes, layer after layer. glibc's
malloc gives those back to the kernel on free (mmap above 128 KiB-32 MiB, trimming the heap
above 128 KiB), so the next layer's arrays start as fresh pages, each a page fault: 14-17
thousand per 512-token pass, ~10 % of its time. `tune_allocator` keeps freed memory for reuse
instead (glibc only; elsewhere it does nothing). Peak memory is unchanged: what is kept is what
the pass had already used.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # imported where a pool is made: concurrent.futures brings logging, ~3 ms of every start
    from concurrent.futures import ThreadPoolExecutor

MIN_PARALLEL_ROWS = 256  # below this, one thread is as fast (docs/speed.md)
MIN_CHUNK_ROWS = 192  # a matrix product of fewer rows loses BLAS efficiency
DEFAULT_THREADS = 2  # ATTN_THREADS asks for more

RowsRunner = Callable[..., None]
"""run(fn, n, min_chunk=MIN_CHUNK_ROWS): calls fn(start, stop) over consecutive chunks of at
least min_chunk covering range(n), maybe at once; returns when all are done."""


@cache
def tune_allocator() -> bool:
    """Keep freed memory in the process instead of returning it to the kernel at once (glibc's
    mallopt: M_MMAP_THRESHOLD 32 MiB, its largest, and M_TRIM_THRESHOLD 1 GiB). True if set."""
    try:
        import ctypes

        libc = ctypes.CDLL(None)
    except OSError:
        return False
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):
        return False  # glibc only: another libc's mallopt takes other parameters, or none
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(libc.mallopt(m_mmap_threshold, 32 << 20)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))


def _requested() -> int:
    """ATTN_THREADS if it is a positive integer, else the default (at most the CPUs we may use)."""
    value = os.environ.get("ATTN_THREADS", "").strip()
    if value.isdigit() and int(value) >= 1:
        return int(value)
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(DEFAULT_THREADS, cpus))


@cache
def _blas_threads() -> int | None:
    """OpenBLAS's thread count, asked of the library NumPy loaded (Linux), None if unknown."""
    try:
        import ctypes

        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            libs = sorted({line.split()[-1] for line in maps if "openblas" in line.lower() and ".so" in line})
        for lib in libs:
            handle = ctypes.CDLL(lib)
            for name in ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_", "openblas_get_num_threads"):
                if hasattr(handle, name):
                    return int(getattr(handle, name)())
    except (OSError, ValueError, IndexError):
        pass
    return None


def threads() -> int:
    """How many threads a long input is split between (see the module's docstring)."""
    wanted = _requested()
    if wanted == 1:
        return 1
    blas = _blas_threads()
    if blas is None:  # not OpenBLAS, or not found: trust the thread variables the CLI sets
        blas = 1 if os.environ.get("OPENBLAS_NUM_THREADS", os.environ.get("OMP_NUM_THREADS")) == "1" else 2
    return wanted if blas == 1 else 1


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _forget_pool() -> None:
    """In a forked child: the parent's pool threads do not exist there, so make a new pool."""
    global _POOL, _POOL_LOCK
    _POOL, _POOL_LOCK = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _pool(workers: int) -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL._max_workers < workers:
            from concurrent.futures import ThreadPoolExecutor

            _POOL = ThreadPoolExecutor(workers, thread_name_prefix="attn-forward")
        return _POOL


def split_rows(fn: Callable[[int, int], None], n: int, workers: int, chunks: int) -> None:
    """fn(start, stop) over `chunks` consecutive near-equal chunks of range(n), taken in order by
    the calling thread and `workers - 1` pool threads as each finishes one: a thread slowed by
    the machine's other work takes fewer."""
    bounds = [n * i // chunks for i in range(chunks + 1)]
    pending = iter(zip(bounds[:-1], bounds[1:], strict=True))
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                chunk = next(pending, None)
            if chunk is None:
                return
            fn(*chunk)

    helpers = [_pool(workers - 1).submit(work) for _ in range(workers - 1)]
    try:
        work()
    finally:
        for helper in helpers:
            helper.result()  # a chunk's exception is raised here


def row_local(run: RowsRunner | None, fn: Callable[..., np.ndarray | tuple], width: int | tuple[int, ...], *arrays: np.ndarray):
    """fn(*arrays) for work that is row-local (each output row depends on the same rows of the
    inputs alone): (n, width) float32, or one such array per width when `width` is a tuple (fn
    then returns a tuple). With `run`, one split of the rows between the threads for all of fn's
    steps, where a split per step would wake a thread per step, and keep the threads in step,
    handing the GIL to each other at every NumPy call (a 512-token encoder layer's tail: 0.88x
    the time). Each row is computed whole, so the numbers do not change."""
    if run is None:
        return fn(*arrays)
    widths = width if isinstance(width, tuple) else (width,)
    outs = tuple(np.empty((len(arrays[0]), w), dtype=np.float32) for w in widths)

    def part(start: int, stop: int) -> None:
        got = fn(*(a[start:stop] for a in arrays))
        for out, value in zip(outs, got if isinstance(width, tuple) else (got,), strict=True):
            out[start:stop] = value

    run(part, len(arrays[0]))
    return outs if isinstance(width, tuple) else outs[0]


def rows_runner(rows: int) -> RowsRunner | None:
    """How to run per-row work over `rows` query rows: None (one thread, the plain path) below
    MIN_PARALLEL_ROWS or with one thread, else a `split_rows` over the threads. Inputs large
    enough for their arrays to be mmapped tune the allocator first."""
    if rows >= 64:
        tune_allocator()
    if rows < MIN_PARALLEL_ROWS:
        return None
    workers = threads()
    if workers == 1:
        return None

    def run(fn: Callable[[int, int], None], n: int, min_chunk: int = MIN_CHUNK_ROWS) -> None:
        chunks = max(1, min(2 * workers, n // min_chunk))
        if chunks < 2:
            fn(0, n)
        else:
            split_rows(fn, n, min(workers, chunks), chunks)

    return run
