"""`attn models`: the models attn can use — bundled, `$ATTN_MODEL`, and the Hugging Face cache."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import AttnError
from .hub import cached_models


@dataclass(frozen=True)
class ModelEntry:
    name: str
    source: str  # "bundled", "ATTN_MODEL" or "cache"
    path: str | None
    architecture: str | None
    problem: str | None  # why attn cannot use it; None when it can
    layers: int | None = None
    heads: int | None = None

    @property
    def usable(self) -> bool:
        return self.problem is None


def _check(name: str, source: str, model: str | None) -> ModelEntry:
    """Open the model's config and weights header (cheap: nothing is read but headers)."""
    from .model import load_model, resolve_model_path

    try:
        _, path = resolve_model_path(model)
    except AttnError as exc:
        return ModelEntry(name, source, None, None, exc.message)
    try:
        loaded = load_model(str(path))
    except AttnError as exc:
        return ModelEntry(name, source, str(path), None, exc.message)
    except Exception as exc:  # a model broken in a way nobody foresaw is listed as unusable, never a crash
        return ModelEntry(name, source, str(path), None, f"cannot be opened ({type(exc).__name__}: {exc})")
    return ModelEntry(name, source, str(path), loaded.spec.model_type, None, loaded.spec.layers, loaded.spec.heads)


def list_models() -> list[ModelEntry]:
    from .model import BUNDLED_NAME

    entries = []
    saved = os.environ.pop("ATTN_MODEL", None)  # so that "bundled" means the bundled model
    try:
        entries.append(_check(BUNDLED_NAME, "bundled", None))
    finally:
        if saved is not None:
            os.environ["ATTN_MODEL"] = saved
    if saved:
        entries.append(_check(saved, "ATTN_MODEL", saved))
    for m in cached_models():
        entry = ModelEntry(m.name, "cache", str(m.path), m.architecture, m.problem)
        if m.problem is None:  # its files are there: open it as a run would (headers only), to be sure
            opened = _check(m.name, "cache", str(m.path))
            entry = ModelEntry(m.name, "cache", str(m.path), opened.architecture or m.architecture, opened.problem, opened.layers, opened.heads)
        entries.append(entry)
    return entries
