"""attn's own cache folder: rebuilt GGUF and Opus-MT tokenizers, and model files joined from parts."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """$ATTN_CACHE, else $XDG_CACHE_HOME/attn, else ~/.cache/attn."""
    if os.environ.get("ATTN_CACHE"):
        return Path(os.environ["ATTN_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "attn"


def write_atomically(path: Path, text: str) -> bool:
    """Write `path` whole or not at all; False if it could not be written (a cache that cannot
    be written only costs time, so callers carry on)."""
    import tempfile  # only when a cache entry is written

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError:
        return False
    return True
