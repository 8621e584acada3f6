"""attn's exit codes: the one table from an error's `code` to the status a process exits with,
and the one JSON form of an error.

The CLI exits with them; `attn batch` writes them into each failed line's error object. Kept
apart from the CLI so that batch workers need not import Typer.
"""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    """attn's exit codes (documented in docs/errors.md)."""

    OK = 0
    ERROR = 1  # an unexpected failure: a bug in attn
    USAGE = 2  # bad option or input text: unknown option, empty or too-long text, layer/head out of range
    QUERY_NOT_FOUND = 3  # the query word, occurrence or position is not in the text
    MODEL = 4  # the model folder is missing, incomplete, corrupt or unsupported
    UNAVAILABLE = 5  # an optional extra is not installed (e.g. matplotlib for PNG plots)
    SOME_FAILED = 6  # `attn batch`: some lines failed (each has an error object on stdout)
    OUTPUT = 7  # the output could not be written: stdout closed, disk full, file size limit
    HANGUP = 129  # 128 + SIGHUP: the terminal went away
    INTERRUPTED = 130  # 128 + SIGINT: Ctrl-C
    BROKEN_PIPE = 141  # 128 + SIGPIPE: the reader of stdout went away (`| head`), as coreutils exit
    TERMINATED = 143  # 128 + SIGTERM


# Domain errors carry a `code`; this is the one place that turns codes into exit statuses.
STATUS_BY_CODE = {
    "bad_input": ExitStatus.USAGE,
    "usage": ExitStatus.USAGE,
    "query_not_found": ExitStatus.QUERY_NOT_FOUND,
    "model_error": ExitStatus.MODEL,
    "missing_extra": ExitStatus.UNAVAILABLE,
    "output_error": ExitStatus.OUTPUT,
    "internal": ExitStatus.ERROR,
}


def error_json(code: str, message: str, fix: str, candidates: list[str] | tuple[str, ...] = ()) -> dict:
    """An error as JSON ($defs/error in the schema): what `--json` prints on stderr, and what
    `attn batch` writes in a failed line's place. `candidates`: the words a query could be."""
    error = {"code": code, "message": message, "fix": fix, "exit_status": int(STATUS_BY_CODE.get(code, ExitStatus.ERROR))}
    if candidates:
        error["candidates"] = list(candidates)
    return {"error": error}
