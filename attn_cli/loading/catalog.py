"""`attn models`: the models attn can use — bundled, `$ATTN_MODEL`, the packaged real decoders
(`smollm2`, `gemma3`), encoders (`mpnet`, `nomic-embed`) and encoder–decoder (`opus-mt-fr-en`), paths given on the command line, the Hugging Face cache,
and the GGUF files of Ollama and LM Studio."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import AttnError
from ..records import frozen
from .hub import cached_models
from .packaged import PACKAGED, is_installed
from .stores import store_models


@frozen
class ModelEntry:
    name: str
    source: str  # "bundled", "ATTN_MODEL", "packaged", "path", "cache", "ollama" or "lmstudio"
    path: str | None
    architecture: str | None
    problem: str | None  # why attn cannot use it; None when it can
    layers: int | None = None
    heads: int | None = None
    quantization: str | None = None  # GGUF files only
    size_bytes: int | None = None  # GGUF files only

    @property
    def usable(self) -> bool:
        return self.problem is None


def _check(name: str, source: str, model: str | None) -> ModelEntry:
    """Open the model's config and weights header (cheap: nothing is read but headers)."""
    from .model import gguf_in, load_model, resolve_model_path

    try:
        _, path = resolve_model_path(model)
        gguf_file = path if path.is_file() else gguf_in(path)
    except AttnError as exc:
        return ModelEntry(name, source, None, None, exc.message)
    if gguf_file is not None:
        return _check_gguf(name, source, gguf_file)
    try:
        loaded = load_model(str(path))
    except AttnError as exc:
        return ModelEntry(name, source, str(path), None, exc.message)
    except Exception as exc:  # a model broken in a way nobody foresaw is listed as unusable, never a crash
        return ModelEntry(name, source, str(path), None, f"cannot be opened ({type(exc).__name__}: {exc})")
    return ModelEntry(name, source, str(path), loaded.spec.model_type, None, loaded.spec.layers, loaded.spec.heads)


def _check_gguf(name: str, source: str, path: Path) -> ModelEntry:
    """A GGUF file from its header alone (its tokenizer is neither read nor built)."""
    from .gguf_config import summarize

    try:
        g = summarize(path)
    except AttnError as exc:
        return ModelEntry(name, source, str(path), None, exc.message)
    except Exception as exc:  # as above: listed as unusable, never a crash
        return ModelEntry(name, source, str(path), None, f"cannot be opened ({type(exc).__name__}: {exc})")
    return ModelEntry(name, source, str(path), g.architecture, None, g.layers, g.heads, g.quantization, g.size_bytes)


def list_models(paths: list[str] | tuple[str, ...] = ()) -> list[ModelEntry]:
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
    for name, packaged in PACKAGED.items():
        if is_installed(name):
            entries.append(_check(name, "packaged", name))
        else:
            entries.append(ModelEntry(name, "packaged", None, None, f"not installed: `{packaged.install}`"))
    entries += [_check(p, "path", p) for p in paths]
    for m in cached_models():
        entry = ModelEntry(m.name, "cache", str(m.path), m.architecture, m.problem)
        if m.problem is None:  # its files are there: open it as a run would (headers only), to be sure
            opened = _check(m.name, "cache", str(m.path))
            entry = ModelEntry(m.name, "cache", str(m.path), opened.architecture or m.architecture, opened.problem, opened.layers, opened.heads)
        entries.append(entry)
    for name, source, path, problem in store_models():
        entries.append(ModelEntry(name, source, None, None, problem) if path is None else _check_gguf(name, source, path))
    return entries
