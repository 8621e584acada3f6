"""Files written whole or not at all: the plots, the interactive page, the explorer's exports."""

from __future__ import annotations

import contextlib
import errno
import os
import shlex
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from ..errors import InputError, OutputFailed


def write_file(path: Path, write: Callable[[IO[bytes]], None], force: bool = False) -> Path:
    """Write `path` as the shell's `>` would, but whole or not at all, and return the path
    written (a symlink's target). `write` fills a temporary file beside it, which is then renamed
    over it: a rename within one directory is atomic, so readers see the old file or the new one,
    never half of one. On any failure (Ctrl-C included) the temporary file is removed and `path`
    is untouched. The temporary name is short (".attn-XXXXXXXX.part"), so any name the file
    system takes can be written. Raises InputError for a path that names no file to write (a
    directory; a parent that is missing or not a directory; a read-only file, unless `force`),
    and OutputFailed when the system refuses (no permission, a read-only file system, a full disk,
    `ulimit -f`, a name too long)."""
    path = _destination(path, force)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".attn-", suffix=".part")
    except OSError as exc:
        raise _refused(path, exc) from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())  # the data is on disk before the name points at it
        os.chmod(tmp, _mode_for(path))
        os.replace(tmp, path)
    except BaseException as exc:  # Ctrl-C and SIGTERM included (see cli.signals)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise _refused(path, exc) from None
        raise
    return path


def _destination(path: Path, force: bool) -> Path:
    """The file `write_file` writes: through a symlink to its target; InputError for a path that
    names no file to write."""
    try:
        if path.is_symlink():
            path = Path(os.path.realpath(path))
        if path.is_file() and not os.access(path, os.W_OK) and not force:
            raise InputError(f"cannot write {path}: the file is read-only", "add --force to replace it, or choose another path")
        parent = path.parent
        if not parent.is_dir():
            if parent.exists():  # a file: mkdir -p would fail on it
                raise InputError(f"cannot write {path}: {parent} is not a directory", "choose another path")
            fix = f"create the directory first (mkdir -p {shlex.quote(str(parent))}) or choose another path"
            raise InputError(f"cannot write {path}: {parent} does not exist", fix)
        if path.is_dir():
            raise InputError(f"cannot write {path}: it is a directory", f"name a file inside it, e.g. {path / 'attention.png'}")
    except OSError as exc:  # pathlib lets a directory we may not search raise PermissionError
        raise _refused(path, exc) from None
    return path


_FIXES = {
    errno.ENOSPC: "free some space, or write elsewhere",
    errno.EDQUOT: "free some space, or write elsewhere",
    errno.EFBIG: "raise the file size limit (ulimit -f), or write elsewhere",
    errno.ENAMETOOLONG: "choose a shorter file name",
}


def _refused(path: Path, exc: OSError) -> OutputFailed:
    return OutputFailed(f"cannot write {path}: {exc.strerror or exc}", _FIXES.get(exc.errno, "choose a directory you can write to, or write elsewhere"))


def _mode_for(path: Path) -> int:
    """The permissions open(path, "w") would leave: the old file's, or 0o666 less the umask.
    (mkstemp creates 0o600, owner-only, which a plot has no reason to be.)"""
    with contextlib.suppress(FileNotFoundError):
        return stat.S_IMODE(path.stat().st_mode)
    umask = os.umask(0)  # the only portable way to read the umask is to set it
    os.umask(umask)
    return 0o666 & ~umask
