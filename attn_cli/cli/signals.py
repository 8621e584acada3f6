"""How attn stops when told to: Ctrl-C (SIGINT), SIGTERM, SIGHUP.

`install()` runs first thing in `main`, before Typer, NumPy or a model is imported, so a signal
during imports is handled like any other. The first signal raises `Stopped` in the main thread:
`finally` blocks run (a plot's temporary file is removed), and `main` exits 128 + the signal
number with one line, "attn: interrupted". Because a signal can land where an exception is
swallowed or changed (inside a NumPy loop, a C extension, a worker pool), the first signal also
starts a watchdog that ends the process anyway a moment later; a second signal ends it at once.
"""

from __future__ import annotations

import os
import signal
import threading

from ..exit_status import ExitStatus

STATUS = {signal.SIGINT: ExitStatus.INTERRUPTED, signal.SIGTERM: ExitStatus.TERMINATED}
if hasattr(signal, "SIGHUP"):
    STATUS[signal.SIGHUP] = ExitStatus.HANGUP
MESSAGE = {signal.SIGINT: "attn: interrupted\n"}
GRACE_SECONDS = 2.0  # time for cleanup after the first signal before the watchdog exits

received: int | None = None  # the first stop signal received, if any


class Stopped(BaseException):
    """Raised in the main thread by a stop signal. A BaseException, like KeyboardInterrupt, so
    that `except Exception` clauses let it through."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def status(self) -> int:
        return int(STATUS.get(self.signum, 128 + self.signum))


def message(signum: int) -> str:
    return MESSAGE.get(signum, f"attn: {'terminated' if signum == signal.SIGTERM else 'stopped'} (signal {signum})\n")


def _leave(signum: int) -> None:
    os.write(2, message(signum).encode())
    os._exit(int(STATUS.get(signum, 128 + signum)))


def _handler(signum, frame) -> None:
    global received
    if received is not None:  # a second signal: the first one's cleanup is taking too long
        _leave(received)
    received = signum
    watchdog = threading.Timer(GRACE_SECONDS, _leave, args=(signum,))
    watchdog.daemon = True
    watchdog.start()
    raise Stopped(signum)


def install() -> None:
    """Handle the stop signals (main thread only), and get EFBIG instead of death from SIGXFSZ
    when a file outgrows `ulimit -f`, so that it is reported like any other write failure."""
    for signum in STATUS:
        signal.signal(signum, _handler)
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
