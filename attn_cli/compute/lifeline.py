"""Worker processes that die with their parent, and ignore Ctrl-C (the parent handles it).

A worker pool's processes outlive a parent that is killed (SIGKILL, out of memory): they wait
on their task queue forever. `bind_to_parent`, called first thing in a worker, makes the kernel
kill the worker (SIGKILL: nothing to clean up, no handler can delay it) when its parent dies (Linux prctl PR_SET_PDEATHSIG), and elsewhere
starts a thread that exits the worker once its parent is gone (the worker is re-parented).
Shared by every command that starts workers (batch, stats).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1
_POLL_SECONDS = 1.0


def bind_to_parent(parent_pid: int) -> None:
    """Make this process end when `parent_pid` (its parent) ends, and ignore SIGINT: a Ctrl-C
    reaches the whole process group, and the parent stops the workers itself, in order."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux") and _set_death_signal():
        if os.getppid() != parent_pid:  # the parent died before the signal was armed
            os._exit(1)
        return
    threading.Thread(target=_watch, args=(parent_pid,), daemon=True, name="attn-parent-watch").start()


def _set_death_signal() -> bool:
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
