"""`--model ollama:NAME[:TAG]` and `--model lmstudio:PUBLISHER/NAME[/FILE.gguf]`: the GGUF files
that Ollama and LM Studio already keep on disk, found without running either program.

Ollama: `$OLLAMA_MODELS` (else `~/.ollama/models`) holds `manifests/HOST/NAMESPACE/NAME/TAG`
(JSON: `layers[]`, the model's layer has mediaType `application/vnd.ollama.image.model` and a
digest `sha256:<hex>`) and the blobs `blobs/sha256-<hex>`; a bare NAME is
`registry.ollama.ai/library/NAME`. LM Studio: `$LMSTUDIO_MODELS`, else `~/.lmstudio/models` and
`~/.cache/lm-studio/models`, hold `PUBLISHER/NAME/*.gguf`."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from ..errors import ModelError

OLLAMA = "ollama:"
LMSTUDIO = "lmstudio:"
DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
MODEL_LAYER = "application/vnd.ollama.image.model"
_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")  # one path component: never "", "." or ".."
_HOST = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._:-]*")  # a registry host may carry a port
_DIGEST = re.compile(r"sha256:([0-9a-f]{64})")


def is_store_model(model: str) -> bool:
    return model.startswith((OLLAMA, LMSTUDIO))


def resolve_store(model: str) -> Path:
    """The GGUF file that `ollama:…` or `lmstudio:…` names; a ModelError with a fix if none."""
    if model.startswith(OLLAMA):
        return resolve_ollama(model[len(OLLAMA):])
    return resolve_lmstudio(model[len(LMSTUDIO):])


# --- Ollama ---------------------------------------------------------------------------------


def ollama_dir() -> Path:
    env = os.environ.get("OLLAMA_MODELS")
    return Path(env).expanduser() if env else Path.home() / ".ollama" / "models"


def parse_ollama(ref: str) -> tuple[str, str, str, str]:
    """`name`, `ns/name` or `host/ns/name`, each with an optional `:tag` -> (host, namespace, name, tag)."""
    path, tag = ref, "latest"
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        path, tag = ref[: len(ref) - len(last)] + last.split(":", 1)[0], last.split(":", 1)[1]
    parts = path.split("/")
    if len(parts) == 1:
        parts = [DEFAULT_HOST, DEFAULT_NAMESPACE, *parts]
    elif len(parts) == 2:
        parts = [DEFAULT_HOST, *parts]
    ok = (
        len(parts) == 3
        and _HOST.fullmatch(parts[0]) is not None
        and all(_PART.fullmatch(p) for p in parts[1:])
        and _PART.fullmatch(tag) is not None
    )
    if not ok:
        raise ModelError(
            f"--model ollama:{ref!r} is not an Ollama model name",
            "write ollama:NAME[:TAG], e.g. ollama:qwen2.5:0.5b (or ollama:NAMESPACE/NAME[:TAG])",
        )
    host, namespace, name = parts
    return host, namespace, name, tag


def ollama_display(host: str, namespace: str, name: str, tag: str) -> str:
    """The shortest `ollama:` name that means this manifest."""
    if host != DEFAULT_HOST:
        return f"{OLLAMA}{host}/{namespace}/{name}:{tag}"
    if namespace != DEFAULT_NAMESPACE:
        return f"{OLLAMA}{namespace}/{name}:{tag}"
    return f"{OLLAMA}{name}:{tag}"


def _pull_name(host: str, namespace: str, name: str, tag: str | None) -> str:
    """What `ollama pull` takes: the name, with `:tag` unless the tag is None or `latest`."""
    full = ollama_display(host, namespace, name, tag or "latest")[len(OLLAMA):]
    return full if tag not in (None, "latest") else full.rsplit(":", 1)[0]


def resolve_ollama(ref: str) -> Path:
    host, namespace, name, tag = parse_ollama(ref)
    root = ollama_dir()
    pull = f"ollama pull {_pull_name(host, namespace, name, tag)}"
    folder = root / "manifests" / host / namespace / name
    manifest = folder / tag
    if not manifest.is_file():
        if not folder.is_dir():
            raise ModelError(f"Ollama has no model {_pull_name(host, namespace, name, None)!r} in {root}", f"run `{pull}` (or set OLLAMA_MODELS)")
        tags = sorted(p.name for p in folder.iterdir() if p.is_file())
        found = ", ".join(tags) if tags else "none"
        raise ModelError(f"Ollama model {name!r} has no tag {tag!r} (tags found: {found})", f"pick one of its tags, or run `{pull}`")
    return _ollama_blob(root, manifest, pull)


def _ollama_blob(root: Path, manifest: Path, pull: str) -> Path:
    bad = f"re-pull it: `{pull}`"
    try:
        doc = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read Ollama manifest {manifest}: {exc}", bad) from None
    except RecursionError:
        raise ModelError(f"cannot read Ollama manifest {manifest}: its JSON is nested too deeply", bad) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("layers"), list):
        raise ModelError(f"Ollama manifest {manifest} has no list of layers", bad)
    digest = None
    for layer in doc["layers"]:
        if not isinstance(layer, dict):
            raise ModelError(f"Ollama manifest {manifest} has a layer that is not a JSON object", bad)
        media = layer.get("mediaType")
        if not isinstance(media, str):
            raise ModelError(f"Ollama manifest {manifest} has a layer without a mediaType string", bad)
        if media == MODEL_LAYER:
            digest = layer.get("digest")
            break
    else:
        raise ModelError(f"Ollama manifest {manifest} has no model layer ({MODEL_LAYER})", "is it a model? " + bad)
    match = _DIGEST.fullmatch(digest) if isinstance(digest, str) else None
    if match is None:
        raise ModelError(f"Ollama manifest {manifest}: the model layer's digest is not sha256:<64 hex digits>", bad)
    blob = root / "blobs" / f"sha256-{match.group(1)}"
    if not blob.is_file():
        raise ModelError(f"Ollama blob {blob.name} (the model of {manifest.name}) is missing from {blob.parent}", bad)
    return blob


def ollama_models() -> list[tuple[str, Path | None, str | None]]:
    """(name, blob or None, problem or None) for each manifest under the Ollama models dir."""
    base = ollama_dir() / "manifests"
    found = []
    try:
        manifests = sorted(p for p in base.glob("*/*/*/*") if p.is_file())
    except OSError:
        return []
    for m in manifests:
        host, namespace, name, tag = (p.name for p in (m.parent.parent.parent, m.parent.parent, m.parent, m))
        display = ollama_display(host, namespace, name, tag)
        try:
            found.append((display, resolve_ollama(display[len(OLLAMA):]), None))
        except ModelError as exc:
            found.append((display, None, exc.message))
        except OSError as exc:
            found.append((display, None, f"cannot read {m}: {exc.strerror or exc}"))
    return found


# --- LM Studio ------------------------------------------------------------------------------


def lmstudio_dirs() -> list[Path]:
    env = os.environ.get("LMSTUDIO_MODELS")
    if env:
        return [Path(env).expanduser()]
    home = Path.home()
    return [home / ".lmstudio" / "models", home / ".cache" / "lm-studio" / "models"]


def _ggufs(folder: Path) -> list[Path]:
    """The model files of an LM Studio folder (vision projectors, `mmproj-*.gguf`, left out)."""
    return sorted(p for p in folder.glob("*.gguf") if p.is_file() and not p.name.lower().startswith("mmproj"))


def resolve_lmstudio(ref: str) -> Path:
    parts = ref.split("/")
    if len(parts) not in (2, 3) or not all(_PART.fullmatch(p) for p in parts) or (len(parts) == 3 and not parts[2].lower().endswith(".gguf")):
        raise ModelError(f"--model lmstudio:{ref!r} is not an LM Studio model name", "write lmstudio:PUBLISHER/NAME or lmstudio:PUBLISHER/NAME/FILE.gguf")
    roots = lmstudio_dirs()
    folder = next((r / parts[0] / parts[1] for r in roots if (r / parts[0] / parts[1]).is_dir()), None)
    if folder is None:
        where = " or ".join(str(r) for r in roots)
        key = f"{parts[0]}/{parts[1]}"
        raise ModelError(f"LM Studio has no model {key} in {where}", f"download it in LM Studio (`lms get {key}`), or set LMSTUDIO_MODELS")
    files = _ggufs(folder)
    if len(parts) == 3:
        path = folder / parts[2]
        if not path.is_file():
            listed = ", ".join(p.name for p in files) or "none"
            raise ModelError(f"{folder} has no {parts[2]} (.gguf files found: {listed})", "pass one of the files found")
        return path
    if not files:
        raise ModelError(f"LM Studio folder {folder} holds no .gguf file", "download a GGUF build of the model in LM Studio")
    if len(files) > 1:
        listed = ", ".join(p.name for p in files)
        example = f"{LMSTUDIO}{parts[0]}/{parts[1]}/{files[0].name}"
        raise ModelError(f"LM Studio folder {folder} holds {len(files)} .gguf files ({listed})", f"pass one, e.g. --model {example}")
    return files[0]


def lmstudio_models() -> list[tuple[str, Path | None, str | None]]:
    """(name, file, None) for each GGUF file in the LM Studio models dirs (the first dir wins a name)."""
    found, seen = [], set()
    for root in lmstudio_dirs():
        try:
            folders = sorted(p for p in root.glob("*/*") if p.is_dir())
        except OSError:
            continue
        for folder in folders:
            key = f"{folder.parent.name}/{folder.name}"
            if key in seen:
                continue
            seen.add(key)
            try:
                files = _ggufs(folder)
            except OSError as exc:
                found.append((LMSTUDIO + key, None, f"cannot read {folder}: {exc.strerror or exc}"))
                continue
            if len(files) == 1:
                found.append((LMSTUDIO + key, files[0], None))
            else:
                found += [(f"{LMSTUDIO}{key}/{f.name}", f, None) for f in files]
    return found


def store_models() -> list[tuple[str, str, Path | None, str | None]]:
    """(name, source, file, problem) for `attn models`: Ollama's models, then LM Studio's."""
    return [(n, "ollama", p, e) for n, p, e in ollama_models()] + [(n, "lmstudio", p, e) for n, p, e in lmstudio_models()]
