"""Finding and opening a model folder in the Hugging Face layout.

A folder holds config.json, tokenizer.json and model.safetensors (or a sharded index); an
Opus-MT folder has source.spm, target.spm and vocab.json in place of tokenizer.json.
`--model` (else `$ATTN_MODEL`) is a folder, a `.gguf` file (or a folder whose only model file
is one; see `gguf.py`), a packaged model's name (`smollm2`, `gemma3`, `mpnet`, `nomic-embed`, `opus-mt-fr-en`; see `packaged.py`) or a
hub name `org/name` (see `hub.py`); without any, attn uses the bundled all-MiniLM-L6-v2.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from ..errors import ModelError
from ..models import Architecture, Hyper, Interventions, LayerTrace, Weights, architecture
from ..models.seq2seq import Memory
from ..models.trace import checked_decode, checked_forward, checked_forward_packed
from ..records import frozen
from .budget import BudgetedWeights, default_budget
from .marian_tokenizer import is_marian_folder, marian_tokenizer
from .tokenizer import load_tokenizer
from .weights import open_weights

BUNDLED_DIR = Path(__file__).resolve().parent.parent / "bundled"
BUNDLED_NAME = "all-MiniLM-L6-v2"


@frozen
class Model:
    name: str
    path: Path
    config: dict
    spec: Hyper
    weights: Weights
    tokenizer: Tokenizer
    arch: Architecture
    # Release each layer's weight pages after use, so that one run holds one layer's weights.
    # A process that runs many texts (attn batch) keeps them: it would re-read them every time.
    release_weights: bool = True
    chat_template: str | None = None  # the Jinja template a GGUF file ships (`tokenizer.chat_template`)
    # an encoder–decoder's target side, when it tokenizes targets otherwise (Marian's target.spm):
    # built on first use (`decoder_tokenizer`), as `inspect` without a target never needs it
    target_tokenizer: Callable[[], Tokenizer] | None = None

    def __repr__(self) -> str:  # not the dataclass's: that prints the config, weights and the whole vocabulary
        s = self.spec
        return f"Model(name={self.name!r}, architecture={s.model_type!r}, layers={s.layers}, heads={s.heads}, path={str(self.path)!r})"

    def trace(self, input_ids, cache=None, through: int | None = None, interventions: Interventions | None = None) -> Iterator[LayerTrace]:
        """The forward pass, one checked `LayerTrace` per layer (see `models.trace.checked_forward` and
        `release_weights`). With a `KVCache` (decoders), `input_ids` are the tokens after the
        cached ones. With `through`, it stops at that layer, computing of it only q, k and v
        (`models.base.layer_plan`): its head_output and hidden are None. `interventions`: what
        to change in the pass, and keep from it (`models.interventions`)."""
        return checked_forward(self.arch, self.weights, self.spec, input_ids, str(self.path), cache, through, interventions, self.release_weights)

    @property
    def decoder_tokenizer(self) -> Tokenizer:
        """What tokenizes a target (`--target`, transformers' `text_target`) and reads the decoder's ids."""
        return self.target_tokenizer() if self.target_tokenizer is not None else self.tokenizer

    @property
    def has_cross_attention(self) -> bool:
        """Whether it is an encoder–decoder model (T5, BART, Marian): `trace` is its encoder,
        `memory` and `trace_decoder` its decoder."""
        return self.arch.seq2seq is not None

    def memory(self, source_ids) -> Memory:
        """Encode the source (n,) ids and make every decoder layer's cross-attention keys and
        values of it, once: the `Memory` `trace_decoder` reads."""
        *_, last = self.trace(source_ids)
        return self.memory_of(last)

    def memory_of(self, last: LayerTrace) -> Memory:
        """`memory` of an encoder pass already run (a view that keeps the encoder's traces too):
        its last layer's `LayerTrace`, hidden state kept."""
        encoded = self.arch.final_norm(self.weights, self.spec, last.hidden)
        return self.arch.seq2seq.memory(self.weights, self.spec, encoded)

    def trace_decoder(self, decoder_ids, memory, cache=None, through: int | None = None, interventions: Interventions | None = None) -> Iterator[LayerTrace]:
        """The decoder's pass over its input ids (`models.seq2seq.decoder_input`), or with a
        `KVCache` of the decoder the ids after the cached ones: one checked `LayerTrace` per
        decoder layer, its `cross` the cross-attention over the source of `memory`."""
        return checked_decode(self.arch, self.weights, self.spec, decoder_ids, memory, str(self.path), cache, through, interventions, self.release_weights)

    def decoder_logits(self, hidden: np.ndarray) -> np.ndarray:
        """(m, vocab): the next-token logits of the decoder's last hidden state (m, hidden)."""
        s2s = self.arch.seq2seq
        return s2s.logits(self.weights, self.spec, s2s.decoder_norm(self.weights, self.spec, hidden))

    @property
    def packs(self) -> bool:
        """Whether the architecture runs several texts in one pass (`trace_packed`): encoders."""
        return self.arch.packs

    def trace_packed(self, texts: list[np.ndarray]) -> list[list[LayerTrace]]:
        """The forward passes of several texts at once (see `packs`): [text][layer] -> that
        text's LayerTrace, the same numbers as `trace(text)`."""
        return [list(per_text) for per_text in zip(*self.trace_packed_layers(texts), strict=True)]

    def trace_packed_layers(self, texts: list[np.ndarray]) -> Iterator[list[LayerTrace]]:
        """`trace_packed` layer by layer: per layer, one LayerTrace per text (a reader that
        reduces each layer as it comes holds one layer of the pack, not all of them)."""
        return checked_forward_packed(self.arch, self.weights, self.spec, texts, str(self.path))


def kept(model: Model, budget: int | None = None) -> Model:
    """The model with float32 copies of its weights kept up to `budget` bytes (default:
    `budget.default_budget()`; see `BudgetedWeights`), for runs that read every layer many
    times: generation, one forward pass per new token. The numbers do not depend on the budget."""
    if isinstance(model.weights, BudgetedWeights):
        if budget is None or budget == model.weights.budget:
            return model
        model = replace(model, weights=model.weights.weights)
    weights = BudgetedWeights(model.weights, default_budget() if budget is None else budget)
    return replace(model, weights=weights, release_weights=True)


def is_quantized(model: Model) -> bool:
    """Whether the weights are a GGUF file's, de-quantized to float32 when read (kept or not)."""
    from .gguf import GGUFWeights

    weights = model.weights.weights if isinstance(model.weights, BudgetedWeights) else model.weights
    return isinstance(weights, GGUFWeights)


def budgeted(model: Model, budget: int | None = None) -> Model:
    """A model loaded with `release_weights=False` (a run of many forward passes: `attn batch`,
    `attn stats`), its de-quantized weights kept up to `budget` bytes (`kept`; None: the
    default) if it is quantized; any other model as it is. Without a budget, a GGUF model that
    keeps its pages kept every layer in float32 (an 8B model: 32 GB) after the first pass."""
    return kept(model, budget) if is_quantized(model) else model


def load_for_passes(model: str | os.PathLike | None = None, budget: int | None = None) -> Model:
    """`load_model` for a run of many forward passes: the file's pages kept, a GGUF model's
    float32 weights kept up to `budget` (`budgeted`). The numbers do not depend on the budget."""
    return budgeted(load_model(model, release_weights=False), budget)


def bundled_model_path() -> Path:
    """The folder of the bundled all-MiniLM-L6-v2, shipped inside attn itself (attn_cli/bundled/,
    Apache-2.0): no other package, no download, nothing that pulls in torch."""
    folder = BUNDLED_DIR / BUNDLED_NAME
    if not (folder / "model.safetensors").is_file():
        raise ModelError(f"the bundled model's files are missing from {folder}", "reinstall attn-cli, or pass --model PATH")
    return folder


def resolve_model_path(model: str | os.PathLike | None) -> tuple[str, Path]:
    """(display name, folder) for `--model`, else `$ATTN_MODEL`, else the bundled model."""
    if model is None or str(model) == "":
        model = os.environ.get("ATTN_MODEL") or None
    if model is None:
        return BUNDLED_NAME, bundled_model_path()
    from .stores import is_store_model, resolve_store

    if is_store_model(str(model)):  # ollama:NAME[:TAG], lmstudio:PUBLISHER/NAME[/FILE.gguf]
        return str(model), resolve_store(str(model))
    try:
        path = Path(model).expanduser()
        exists = path.exists()
    except RuntimeError:  # ~nosuchuser/...
        raise ModelError(f"--model {str(model)!r} starts with a ~user that does not exist", "give the folder's full path") from None
    except OSError as exc:  # a name too long, a folder we may not enter
        raise ModelError(f"cannot use --model {str(model)!r}: {exc.strerror}", "give the path of a model folder you can read") from None
    # Imported here, not at the top: the bundled model (the common case) needs neither.
    from .hub import is_repo_id, resolve_repo
    from .packaged import PACKAGED, resolve_packaged

    if not exists and str(model) in PACKAGED:
        return str(model), resolve_packaged(str(model))
    if not exists and is_repo_id(str(model)):
        return str(model), resolve_repo(str(model))
    if not exists:
        import difflib

        near = difflib.get_close_matches(str(model).lower(), PACKAGED, n=1, cutoff=0.7)
        if near:  # a misspelled packaged name (smolm2, Gemma3, nomic): name it rather than list every kind of model
            raise ModelError(f"model folder {str(model)!r} does not exist", f"did you mean --model {near[0]}?")
        raise ModelError(
            f"model folder {str(model)!r} does not exist",
            "pass --model a folder with config.json, tokenizer.json and model.safetensors, a .gguf file, "
            f"a packaged model ({', '.join(PACKAGED)}), a hub name org/name, ollama:NAME[:TAG] or lmstudio:PUBLISHER/NAME",
        )
    if path.is_file() and (path.suffix.lower() == ".gguf" or _has_gguf_magic(path)):  # an Ollama blob has no suffix
        return path.name, path.resolve()
    if not path.is_dir():
        raise ModelError(f"--model {str(model)!r} is a file, not a folder or a .gguf file", "pass the folder that holds it")
    return path.resolve().name, path.resolve()


def _has_gguf_magic(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(4) == b"GGUF"
    except OSError:
        return False


def gguf_in(folder: Path) -> Path | None:
    """The .gguf file of a folder that holds one and no config.json, else None."""
    if (folder / "config.json").is_file():
        return None
    found = sorted(p for p in folder.glob("*.gguf") if p.is_file())  # a folder named x.gguf is not a model file
    if len(found) > 1:
        names = ", ".join(p.name for p in found[:3]) + (", …" if len(found) > 3 else "")
        raise ModelError(f"{folder} holds {len(found)} .gguf files ({names})", "pass --model the .gguf file to use")
    return found[0] if found else None


def read_config(folder: Path) -> dict:
    path = folder / "config.json"
    if not path.is_file():
        raise ModelError(f"{folder} has no config.json", "use a Hugging Face model folder (config.json, tokenizer.json, model.safetensors)")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path}: {exc}", "re-download config.json") from None
    except RecursionError:
        raise ModelError(f"cannot read {path}: its JSON is nested too deeply", "re-download config.json") from None
    if not isinstance(config, dict):
        raise ModelError(f"{path} is not a JSON object", "re-download config.json")
    return config


def load_model(model: str | os.PathLike | None = None, release_weights: bool = True) -> Model:
    """Open a model folder (see `resolve_model_path`): config checked into a Hyper, weight
    headers checked against their bytes, the tokenizer read. Any problem is a ModelError."""
    try:
        return _load(model, release_weights)
    except OSError as exc:  # a folder or file we may not read: the permission, not a bug
        where = exc.filename if exc.filename is not None else model
        raise ModelError(f"cannot read {where}: {exc.strerror or exc}", "check that the model folder and its files are readable") from None


def _load(model, release_weights: bool) -> Model:
    name, folder = resolve_model_path(model)
    gguf_file = folder if folder.is_file() else gguf_in(folder)
    if gguf_file is not None:
        return _load_gguf(name, gguf_file, release_weights)
    config = read_config(folder)
    try:
        arch = architecture(config.get("model_type"))
        spec = arch.parse(config)  # every value checked: see models.hyper.ConfigValues
    except ModelError as exc:
        raise ModelError(f"{folder}: {exc.message}", exc.fix) from None
    tokenizer_path = folder / "tokenizer.json"
    if not tokenizer_path.is_file() and is_marian_folder(folder):  # Opus-MT: source.spm, target.spm, vocab.json
        weights = open_weights(folder, arch.weight_prefixes)
        target = functools.cache(functools.partial(marian_tokenizer, folder, "target"))  # once, shared by the model's copies (`kept`)
        return Model(name, folder, config, spec, weights, marian_tokenizer(folder, "source"), arch, release_weights, target_tokenizer=target)
    if not tokenizer_path.is_file():
        raise ModelError(
            f"{folder} has no tokenizer.json",
            "save one with transformers: AutoTokenizer.from_pretrained(path).save_pretrained(path)",
        )
    weights = open_weights(folder, arch.weight_prefixes)
    return Model(name, folder, config, spec, weights, load_tokenizer(tokenizer_path), arch, release_weights)


def _load_gguf(name: str, path: Path, release_weights: bool) -> Model:
    """A GGUF model: config from its metadata into the same architecture code as a folder's."""
    from .gguf_config import open_gguf
    from .gguf_tokenizer import gguf_tokenizer

    config, file, weights = open_gguf(path)
    arch = architecture(config["model_type"])
    try:
        spec = arch.parse(config)  # the same checks as a folder's config.json
    except ModelError as exc:
        raise ModelError(f"{path.name} (its metadata as config): {exc.message}", "re-convert the model with a current llama.cpp") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{path.name}'s metadata lacks or garbles {exc}", "re-convert the model with a current llama.cpp") from None
    template = file.metadata.get("tokenizer.chat_template")
    return Model(name, path, config, spec, weights, gguf_tokenizer(file), arch, release_weights, template if isinstance(template, str) else None)
