"""Cache folders written once and never changed: made in a fresh temp folder beside their final
place, then renamed into it whole, so that a reader finds a complete folder or none.

Several processes (venvs, checkouts, users sharing one cache) may want the same folder at once.
Each folder name has a lock file beside it (`.NAME.lock`, flock'd while the folder is made): the
first process makes it, the others wait and then find it made. A temp folder (`.NAME.XXXX.tmp`)
whose lock nobody holds was left by a run that crashed, and is removed by the next run that makes
a folder. A published folder is never modified or replaced: a different content gets a different
name (packaged.py derives names from what the folder was made from).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; a crashed run's temp folder is swept once it is a day old
    fcntl = None

STALE_WITHOUT_LOCKS = 24 * 3600  # seconds


def published(root: Path, name: str, make: Callable[[Path], None]) -> Path:
    """The folder `root/name`, made once by `make(work)`, which fills the empty folder `work`.
    When the folder exists nothing is written (a read-only cache can still be read).
    Raises OSError when the cache cannot be written; `make`'s own exceptions pass through."""
    final = root / name
    if final.is_dir():
        return final
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root / f".{name}.lock"):
        if final.is_dir():  # another process made it while this one waited
            return final
        sweep(root, holding=name)
        work = Path(tempfile.mkdtemp(dir=root, prefix=f".{name}.", suffix=".tmp"))
        try:
            make(work)
            os.chmod(work, 0o755)  # mkdtemp's is 0o700; a published folder reads like one made by mkdir
            try:
                os.rename(work, final)
            except OSError:
                if not final.is_dir():  # without flock (Windows) another process may have won the race
                    raise
        finally:
            if work.exists():
                shutil.rmtree(work, ignore_errors=True)
    return final


def temp_owner(entry: Path) -> str | None:
    """The folder name a temp folder `.NAME.XXXX.tmp` was being made for (mkdtemp's XXXX has no dot)."""
    if not (entry.name.startswith(".") and entry.name.endswith(".tmp")) or entry.name.count(".") < 3:
        return None
    return entry.name[1:-4].rsplit(".", 1)[0]


def sweep(root: Path, holding: str | None = None) -> list[Path]:
    """Remove the temp folders of crashed runs from `root`: those whose lock is free (or, for
    `holding`, whose lock this process holds, so no other process writes them). Returns them."""
    removed = []
    for entry in root.iterdir():
        name = temp_owner(entry)
        if name is None or not entry.is_dir():
            continue
        if fcntl is None:  # no locks: another process may be writing it, unless it is old
            try:
                stale = time.time() - entry.stat().st_mtime > STALE_WITHOUT_LOCKS
            except OSError:  # published or swept meanwhile
                continue
        elif name == holding:
            stale = True
        else:
            with _held_if_free(root / f".{name}.lock") as free:  # removed while held: no run can start on it meanwhile
                if free:
                    shutil.rmtree(entry, ignore_errors=True)
                    removed.append(entry)
            continue
        if stale:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


@contextlib.contextmanager
def _locked(lock: Path) -> Iterator[None]:
    """Hold `lock` exclusively (waiting for another process that holds it)."""
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the flock


@contextlib.contextmanager
def _held_if_free(lock: Path) -> Iterator[bool]:
    """Whether no process held `lock` (or it is gone); if so it is held here until the block ends."""
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        yield True
        return
    except OSError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
        else:
            yield True
    finally:
        os.close(fd)
