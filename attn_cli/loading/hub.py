"""Models named `org/name`, found in (or fetched into) the Hugging Face cache.

Everything goes through `huggingface_hub`, so `HF_HOME`, `HF_HUB_CACHE` and `HF_HUB_OFFLINE`
mean what they mean everywhere else. Only the files attn reads are downloaded: config,
tokenizer (an Opus-MT folder's SentencePiece files and vocab.json) and safetensors weights (never pickles). huggingface_hub is imported only when a
name is used, since it costs start-up time.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..errors import ModelError
from ..records import frozen

REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# source.spm, target.spm and vocab.json: an Opus-MT (Marian) folder's tokenizers (marian_tokenizer.py)
FILES = ["config.json", "tokenizer.json", "*.safetensors", "model.safetensors.index.json", "source.spm", "target.spm", "vocab.json"]


def is_repo_id(name: str) -> bool:
    return bool(REPO_ID.match(name))


def resolve_repo(repo_id: str) -> Path:
    """The snapshot folder of `repo_id` in the cache, downloading it first when the hub is
    reachable and `HF_HUB_OFFLINE` is not set."""
    import huggingface_hub
    from huggingface_hub import constants

    offline = bool(constants.HF_HUB_OFFLINE)
    try:
        return Path(huggingface_hub.snapshot_download(repo_id, allow_patterns=FILES, local_files_only=offline))
    except Exception as exc:  # the hub raises many types: not cached, offline, no network, 404, gated
        # Offline or unreachable, a complete cached snapshot is still good enough.
        try:
            return Path(huggingface_hub.snapshot_download(repo_id, allow_patterns=FILES, local_files_only=True))
        except Exception:
            pass
        where = f"the Hugging Face cache ({constants.HF_HUB_CACHE})"
        reason = "HF_HUB_OFFLINE is set" if offline else f"the hub could not be reached or refused ({type(exc).__name__})"
        raise ModelError(
            f"model {repo_id!r} is not in {where}, and {reason}",
            f"download it where the hub is reachable (`huggingface-cli download {repo_id}`), "
            "or pass --model a local folder",
        ) from None


@frozen
class CachedModel:
    name: str
    path: Path
    architecture: str | None
    problem: str | None  # why attn cannot use it, or None


def cached_models() -> list[CachedModel]:
    """Models in the Hugging Face cache, each with the reason attn cannot use it, if any."""
    from huggingface_hub import constants, scan_cache_dir

    if not Path(constants.HF_HUB_CACHE).is_dir():
        return []
    try:
        info = scan_cache_dir()
    except Exception:  # a missing or corrupt cache lists nothing rather than failing `attn models`
        return []
    found = []
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model" or not repo.revisions:
            continue
        revision = max(repo.revisions, key=lambda r: r.last_modified)
        found.append(_describe(repo.repo_id, Path(revision.snapshot_path)))
    return found


def _describe(name: str, folder: Path) -> CachedModel:
    from ..models import ARCHITECTURES

    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return CachedModel(name, folder, None, "no readable config.json")
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if not isinstance(model_type, str):
        return CachedModel(name, folder, None, "config.json has no model_type string")
    if model_type not in ARCHITECTURES:
        return CachedModel(name, folder, model_type, f"model_type {model_type!r} is not supported")
    from .marian_tokenizer import is_marian_folder

    if not (folder / "tokenizer.json").is_file() and not is_marian_folder(folder):
        return CachedModel(name, folder, model_type, "no tokenizer.json")
    if not (folder / "model.safetensors").is_file() and not (folder / "model.safetensors.index.json").is_file():
        return CachedModel(name, folder, model_type, "no safetensors weights")
    return CachedModel(name, folder, model_type, None)
