"""The `attn` command line: parse options, call the library, hand the result to a renderer.

`common` holds what commands share; each other module adds commands to the one Typer app
(`commands` imports them all, or only the one the command line names). This module stays
light: `main` installs the signal handlers before Typer, NumPy or any command is imported, so
Ctrl-C during imports is handled too.
`app` and `ExitStatus` are loaded on first use.
"""

from __future__ import annotations

import os
import sys

__all__ = ["ExitStatus", "app", "main"]


def __getattr__(name: str):
    if name == "app":
        from .commands import full_app

        return full_app()
    if name == "ExitStatus":
        from ..exit_status import ExitStatus

        return ExitStatus
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _wants_json(args: list[str]) -> bool:
    """Whether the command line asks for JSON, read before parsing so that even a parse error
    can be reported as JSON. `attn batch` writes JSON whatever its options."""
    pairs = zip(args, args[1:] + [""])
    return (
        "--json" in args or "--format=json" in args or any(a in ("--format", "-f") and b == "json" for a, b in pairs)
        or (bool(args) and args[0] == "batch")
    )


def _single_threaded_blas() -> None:
    """One BLAS thread unless the user chose otherwise. attn's matrices are small (a sentence
    by the model width): threads cost more to wake than they save, and on a busy machine a
    spinning thread can make one inspect 5-10x slower. Must run before NumPy is imported."""
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")


def _cache_bytecode() -> None:
    """Let Python write .pyc files for what this run imports, even under PYTHONDONTWRITEBYTECODE.

    Every `attn` is a fresh process: without cached bytecode each run re-compiles NumPy, Rich,
    Typer and attn from source (~1 s instead of ~0.2 s here). Some machines and containers set the
    variable globally, and uv installs no bytecode by default, so compiling once, on first use, is
    the only cache such a user gets. The files land beside the sources, where `pip install` would
    have put them; an unwritable tree is skipped silently by Python. Not under a file-size limit
    (`ulimit -f`): CPython does not check that a .pyc was written whole, and a truncated one
    breaks every later import of that module."""
    try:
        import resource

        if resource.getrlimit(resource.RLIMIT_FSIZE)[0] != resource.RLIM_INFINITY:
            return
    except (ImportError, OSError, ValueError):  # no `resource` (Windows): nothing to guard against
        pass
    sys.dont_write_bytecode = False


def main() -> None:
    """Console-script entry point: every way out goes through ExitStatus."""
    from . import signals

    signals.install()
    _cache_bytecode()
    # Called by the program's own top level (the console script, `python -c "...; main()"`),
    # main ends the process itself; called from other code (tests), it raises SystemExit.
    owns_process = sys._getframe(1).f_globals.get("__name__") == "__main__"
    try:
        status = _main()
        if owns_process:
            _end_process(status)
        sys.exit(status)
    except signals.Stopped as stop:
        from .output import write_stderr

        write_stderr(signals.message(stop.signum))
        sys.exit(stop.status)
    except KeyboardInterrupt:  # raised by a library before our handler could (or by a test)
        from .output import write_stderr

        write_stderr(signals.message(2))
        sys.exit(130)


def _end_process(status: int) -> None:
    """Exit now, skipping the interpreter's teardown (freeing every module and object: ~10-25 ms
    that nothing needs), when that changes nothing else: stdout and stderr flushed, atexit
    handlers run, no other live thread that the interpreter would wait for, no worker processes.
    Anything unusual returns instead, for the ordinary `sys.exit`, which then behaves as ever
    (a flush that fails is reported the way Python reports it)."""
    import atexit
    import threading

    if any(t is not threading.main_thread() and not t.daemon for t in threading.enumerate()):
        return
    if "multiprocessing" in sys.modules or "concurrent.futures.process" in sys.modules:
        return  # pools and their finalisers shut down in the interpreter's own exit
    if not _flushed():
        return
    atexit._run_exitfuncs()
    if _flushed():  # again: an atexit handler may have written
        os._exit(status)


def _flushed() -> bool:
    """Flush stdout and stderr; False if either fails (then the ordinary exit reports it)."""
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except Exception:
        return False
    return True


def _main() -> int:
    from ..errors import OutputFailed
    from ..exit_status import ExitStatus
    from . import signals
    from .output import BrokenPipe, ClosedStdout, GuardedStdout, silence_stdout

    _single_threaded_blas()
    if os.environ.get("COLUMNS", "").strip() == "0":
        # A width of 0 (a terminal that reports none) is no width: Rich would draw every screen empty.
        del os.environ["COLUMNS"]
    sys.stdout = GuardedStdout(sys.stdout if sys.stdout is not None else ClosedStdout())
    as_json = _wants_json(sys.argv[1:])
    try:
        from .commands import app_for
        from .common import report

        status = app_for(sys.argv[1:])(standalone_mode=False, prog_name="attn")
    except (BrokenPipe, BrokenPipeError):
        # The reader went away (e.g. `| head`): stop quietly, with the status coreutils give.
        silence_stdout()
        return int(ExitStatus.BROKEN_PIPE)
    except OutputFailed as exc:  # --help or --version, outside a command's own reporting
        from .common import report

        return report(exc.code, exc.message, exc.fix, as_json)
    except BaseException as exc:
        if not isinstance(exc, Exception) and type(exc).__name__ != "PanicException":
            raise  # Ctrl-C, a signal's Stopped, SystemExit; a Rust panic (pyo3's PanicException) is a bug like any other
        if signals.received is not None:  # a signal landed where it was turned into another error
            raise signals.Stopped(signals.received) from None
        # Typer vendors Click, so its usage errors are matched by behaviour, not by class.
        if callable(getattr(exc, "format_message", None)) and getattr(exc, "exit_code", None) == 2:
            if not exc.format_message():  # `attn` alone: Click has already printed the help
                return int(ExitStatus.USAGE)
            from .commands import COMMANDS

            ctx = getattr(exc, "ctx", None)
            command = f"attn {ctx.info_name}" if ctx is not None and ctx.info_name != "attn" else "attn"
            if ctx is None and sys.argv[1:] and sys.argv[1] in COMMANDS:  # an option's parser error (`--json=1`) has no context
                command = f"attn {sys.argv[1]}"
            return report("usage", exc.format_message(), f"see `{command} --help`", as_json)
        if type(exc).__name__ == "Abort":
            raise KeyboardInterrupt from None
        if os.environ.get("ATTN_DEBUG"):
            raise
        from .common import report

        # A bug: say so in one line; ATTN_DEBUG=1 shows the traceback.
        return report("internal", f"unexpected {type(exc).__name__}: {exc}", "please report this bug (ATTN_DEBUG=1 shows the traceback)", as_json)
    return int(status or 0)
