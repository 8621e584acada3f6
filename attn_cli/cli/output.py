"""The one way data leaves attn: a whole document, written to stdout in one go, or not at all.

Every command builds its output in memory (a Rich screen is rendered to a string first) and
hands it to `write_stdout`. So a failure halfway (a bad row, Ctrl-C) leaves nothing on stdout,
and every way writing can fail is handled here, once:

- the reader went away (`attn … | head -1`): `BrokenPipe`, which the CLI turns into a quiet exit
  141 (128 + SIGPIPE), as coreutils do;
- stdout closed (`attn … >&-`), a full disk (`> /dev/full`), a file size limit (`ulimit -f`):
  `OutputFailed`, exit 7 with one line on stderr;
- an encoding that cannot hold the text (`PYTHONIOENCODING=ascii`): JSON falls back to \\u
  escapes (the same document, still valid JSON), text to backslash escapes (`\\xd7`).
"""

from __future__ import annotations

import codecs
import errno
import json
import os
import sys

from ..errors import OutputFailed


class BrokenPipe(Exception):
    """The reader of stdout went away: not an error, but the output stops here."""


_WHY = {
    errno.ENOSPC: ("the disk is full", "free some space, or write the output elsewhere"),
    errno.EFBIG: ("the output is larger than the file size limit (ulimit -f)", "raise the limit, or write the output elsewhere"),
    errno.EDQUOT: ("the disk quota is exceeded", "free some space, or write the output elsewhere"),
    errno.EBADF: ("stdout is closed", "run attn with stdout open (redirect it to a file or to /dev/null)"),
}


def _os_bytes_else_escapes(error: UnicodeEncodeError) -> tuple[bytes | str, int]:
    """The encoding error handler of stdout: a lone surrogate U+DC80…U+DCFF is a byte of a file
    name that is not UTF-8 (Python's surrogateescape), written back as that byte, so that the
    path `plot` prints is the file's; any other character the encoding lacks as `\\xd7`."""
    chunk = error.object[error.start : error.end]
    if all("\udc80" <= c <= "\udcff" for c in chunk):
        return bytes(ord(c) - 0xDC00 for c in chunk), error.end
    return codecs.backslashreplace_errors(error)


codecs.register_error("attn-stdout", _os_bytes_else_escapes)


def _encoding(stream) -> str:
    return getattr(stream, "encoding", None) or "utf-8"


def fits(text: str, stream=None) -> bool:
    """Whether `stream` (stdout) can encode `text` as it is."""
    try:
        text.encode(_encoding(stream or sys.stdout))
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def json_text(document: dict, stream=None) -> str:
    """One JSON document and its newline: UTF-8 as is when the stream can hold it, else ASCII with
    \\u escapes (equal once parsed)."""
    text = json.dumps(document, ensure_ascii=False) + "\n"
    return text if fits(text, stream) else json.dumps(document) + "\n"


def write_stdout(text: str) -> None:
    """Write `text` to stdout and flush; raise BrokenPipe or OutputFailed (see the module)."""
    stream = sys.stdout
    if stream is None:  # Python starts with stdout None when file descriptor 1 is closed
        raise OutputFailed("cannot write the output: stdout is closed", _WHY[errno.EBADF][1])
    data = text.encode(_encoding(stream), errors="attn-stdout")
    try:
        buffer = getattr(stream, "buffer", None)
        if buffer is None:  # a text stream without bytes below it (tests' StringIO)
            stream.write(data.decode(_encoding(stream)))
            stream.flush()
            return
        stream.flush()
        fd = _fileno(stream)
        if fd is None:
            buffer.write(data)
            buffer.flush()
            return
        view = memoryview(data)
        while view:  # os.write may write less than asked (at a file size limit, say): go on until it fails
            view = view[os.write(fd, view) :]
    except BrokenPipeError:
        raise BrokenPipe() from None
    except (OSError, ValueError) as exc:  # ValueError: a stream closed inside this process
        problem, fix = _WHY.get(getattr(exc, "errno", errno.EBADF), (getattr(exc, "strerror", None) or str(exc), "check where stdout goes"))
        raise OutputFailed(f"cannot write the output: {problem}", fix) from None


def _fileno(stream) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
        return None


def write_stderr(text: str) -> None:
    """Talk on stderr, escaped where its encoding cannot hold it; a stderr that cannot be written
    to is given up on silently (there is nowhere left to say so)."""
    stream = sys.stderr
    if stream is None:
        return
    try:
        data = text.encode(_encoding(stream), errors="backslashreplace")
        buffer = getattr(stream, "buffer", None)
        if buffer is None:
            stream.write(data.decode(_encoding(stream)))
        else:
            stream.flush()
            buffer.write(data)
        stream.flush()
    except (OSError, ValueError):
        pass


class GuardedStdout:
    """sys.stdout for what attn does not write itself (Click's --help, a library's print): the
    same failures as `write_stdout`, as the same exceptions. Click turns a broken pipe into exit 1
    by catching OSError, which BrokenPipe is not."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def __getattr__(self, name: str):
        return getattr(self._stream, name)

    def _guard(self, action):
        try:
            return action()
        except BrokenPipeError:
            raise BrokenPipe() from None
        except OSError as exc:
            problem, fix = _WHY.get(exc.errno, (exc.strerror or str(exc), "check where stdout goes"))
            raise OutputFailed(f"cannot write the output: {problem}", fix) from None

    def write(self, text: str) -> int:
        if not fits(text, self._stream):
            text = text.encode(_encoding(self._stream), errors="backslashreplace").decode(_encoding(self._stream))
        return self._guard(lambda: self._stream.write(text))

    def flush(self) -> None:
        self._guard(self._stream.flush)


class ClosedStdout:
    """sys.stdout when file descriptor 1 is closed (`attn --help >&-`), where Python leaves None:
    writing to it fails as a closed stdout does (exit 7), instead of Click's silent success."""

    encoding = "utf-8"
    closed = False

    def write(self, text: str) -> int:
        raise OSError(errno.EBADF, "Bad file descriptor")

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        raise OSError(errno.EBADF, "Bad file descriptor")


def silence_stdout() -> None:
    """Point file descriptor 1 at /dev/null, so that the interpreter's last flush at exit finds
    no broken pipe to complain about."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
    except OSError:
        pass
