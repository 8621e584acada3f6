"""Worker processes, for `attn batch --workers N` and `attn stats --workers N`: one pool that
answers in input order, with workers that die with their parent.

Each worker is spawned, on every platform (not forked, the Linux default: a forked child inherits
the locks of the parent's threads, tokenizers' and BLAS's, in whatever state they were), and sets
itself up once (`setup`, e.g. load the model from its path: a Model is never pickled). It runs
one BLAS thread and one attn thread (ATTN_THREADS, see models/runtime.py): the workers are the
parallelism. With OpenBLAS's default, a thread per core in every worker, 2 workers on a busy
2-core machine ran 20 lines in 7.1 s instead of 1.2 s. The price: BLAS sums in another order than
a multi-threaded process does, so numbers can differ from a one-process run in the last float32
bits (as they do between machines). NumPy is not imported here, nor by the setup's module at
import, so that these settings are read when it is.

A worker would outlive a parent that is killed (SIGKILL, out of memory), waiting on its task
queue forever: `_start` first has the kernel kill it when its parent dies (Linux
PR_SET_PDEATHSIG; elsewhere a thread exits the worker once it is re-parented). Workers ignore
Ctrl-C, which reaches the whole process group: the parent stops them itself.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from itertools import islice

from ..errors import InputError

BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "ATTN_THREADS")
_PR_SET_PDEATHSIG = 1
_POLL_SECONDS = 1.0

_STATE = None  # in a worker: what `setup` returned


def check_workers(workers: int) -> None:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InputError(f"--workers {workers!r} is not valid", "give --workers 1 or more")


def chunks(items: Iterable, size: int) -> Iterator[list]:
    """Consecutive lists of `size` items (the last may be shorter), read as needed."""
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def ordered_map(setup: Callable, setup_args: tuple, task: Callable, items: Iterable, workers: int, ahead: int) -> Iterator:
    """task(setup(*setup_args), item) for each item, computed in `workers` processes, yielded in
    the items' order. setup and task must be module-level functions (they are pickled by name).

    At most workers·ahead items are in flight, so neither the input nor unread answers pile up
    (Pool.imap reads its input ahead and keeps every answer the reader has not taken yet). An
    exception in a task is raised here, as raised there (attn's errors pickle whole). Through
    ProcessPoolExecutor rather than Pool: a worker that dies (killed, out of memory) raises
    BrokenProcessPool instead of hanging the run. On any end before the last answer (an error,
    Ctrl-C, SIGTERM, a reader that stops) the workers are terminated at once, not waited for: a
    task can take longer than `cli.signals` lets a stopping run clean up, and a run cut short
    there leaves multiprocessing's resource tracker to complain of leaked semaphores on stderr.
    """
    import multiprocessing  # here: a run without workers is spared it (see cli._end_process)
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"), initializer=_start, initargs=(os.getpid(), setup, setup_args)
    )
    pending: deque = deque()
    finished = False
    try:
        for item in items:
            pending.append(pool.submit(_run, task, item))
            if len(pending) >= workers * ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
        finished = True
    finally:
        processes = list((getattr(pool, "_processes", None) or {}).values())  # private, but the only handle on them
        if not finished:
            stop_processes(processes)
        pool.shutdown(wait=True, cancel_futures=True)
        stop_processes(processes)  # reaped, whatever the pool did


def _start(parent: int, setup: Callable, setup_args: tuple) -> None:
    global _STATE
    bind_to_parent(parent)
    for name in BLAS_THREADS:
        os.environ.setdefault(name, "1")  # a user's own setting wins
    _STATE = setup(*setup_args)


def _run(task: Callable, item):
    return task(_STATE, item)


def bind_to_parent(parent_pid: int) -> None:
    """Make this process end when `parent_pid` (its parent) ends, and ignore SIGINT."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux") and _set_death_signal():
        if os.getppid() != parent_pid:  # the parent died before the signal was armed
            os._exit(1)
        return
    threading.Thread(target=_watch, args=(parent_pid,), daemon=True, name="attn-parent-watch").start()


def _set_death_signal() -> bool:
    # SIGKILL: nothing to clean up in a worker, and no handler can delay it.
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(_POLL_SECONDS)
    os._exit(1)


def stop_processes(processes) -> None:
    """Terminate, then kill, the given multiprocessing processes, and reap them."""
    processes = [p for p in processes if p is not None]
    for p in processes:
        if p.is_alive():
            p.terminate()
    for p in processes:
        p.join(timeout=2)
        if p.is_alive():
            p.kill()
            p.join(timeout=2)
