"""Test helpers: write safetensors files and tiny random-weight model folders.

A random-weight model is a test fixture only (for loader and error paths); every number the
product claims is checked against transformers' fixtures on the real bundled model.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from attn_cli.loading.model import bundled_model_path

_CODES = {np.dtype("float32"): "F32", np.dtype("float16"): "F16", np.dtype("int64"): "I64"}


def write_safetensors(path: Path, tensors: dict[str, np.ndarray], bf16: bool = False) -> None:
    """Write `tensors` in the safetensors format; with bf16=True, float32 tensors are stored as
    bfloat16 (truncated to their top 16 bits)."""
    header, blobs, offset = {}, [], 0
    for name, array in tensors.items():
        array = np.ascontiguousarray(array)
        if bf16 and array.dtype == np.float32:
            code, blob = "BF16", (array.view(np.uint32) >> 16).astype("<u2").tobytes()
        else:
            code, blob = _CODES[array.dtype], array.astype(array.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": code, "shape": list(array.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"".join(blobs))


def tiny_bert_tensors(seed: int = 0, layers: int = 2, hidden: int = 16, heads: int = 4, vocab: int = 30522) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)

    def r(*shape: int, scale: float = 0.3) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    t = {
        "embeddings.word_embeddings.weight": r(vocab, hidden),
        "embeddings.position_embeddings.weight": r(64, hidden),
        "embeddings.token_type_embeddings.weight": r(2, hidden),
        "embeddings.LayerNorm.weight": 1 + r(hidden, scale=0.1),
        "embeddings.LayerNorm.bias": r(hidden, scale=0.1),
    }
    for i in range(layers):
        p = f"encoder.layer.{i}."
        for n in ("query", "key", "value"):
            t[f"{p}attention.self.{n}.weight"] = r(hidden, hidden)
            t[f"{p}attention.self.{n}.bias"] = r(hidden, scale=0.1)
        t[f"{p}attention.output.dense.weight"] = r(hidden, hidden)
        t[f"{p}attention.output.dense.bias"] = r(hidden, scale=0.1)
        t[f"{p}attention.output.LayerNorm.weight"] = 1 + r(hidden, scale=0.1)
        t[f"{p}attention.output.LayerNorm.bias"] = r(hidden, scale=0.1)
        t[f"{p}intermediate.dense.weight"] = r(4 * hidden, hidden)
        t[f"{p}intermediate.dense.bias"] = r(4 * hidden, scale=0.1)
        t[f"{p}output.dense.weight"] = r(hidden, 4 * hidden)
        t[f"{p}output.dense.bias"] = r(hidden, scale=0.1)
        t[f"{p}output.LayerNorm.weight"] = 1 + r(hidden, scale=0.1)
        t[f"{p}output.LayerNorm.bias"] = r(hidden, scale=0.1)
    return t


def make_tiny_bert(
    folder: Path, prefix: str = "", bf16: bool = False, layers: int = 2, heads: int = 4, hidden: int = 16, **config_overrides
) -> Path:
    """A small random BERT (default 2 layers, 4 heads, hidden 16) with the bundled tokenizer."""
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "model_type": "bert", "hidden_size": hidden, "num_attention_heads": heads, "num_hidden_layers": layers,
        "intermediate_size": 4 * hidden, "max_position_embeddings": 64, "type_vocab_size": 2,
        "layer_norm_eps": 1e-12, "hidden_act": "gelu", "vocab_size": 30522,
    }
    config.update(config_overrides)
    (folder / "config.json").write_text(json.dumps(config))
    shutil.copy(bundled_model_path() / "tokenizer.json", folder / "tokenizer.json")
    tensors = {prefix + k: v for k, v in tiny_bert_tensors(layers=layers, hidden=hidden, heads=heads).items()}
    write_safetensors(folder / "model.safetensors", tensors, bf16=bf16)
    return folder


def tied_copy(name: str, folder: Path, **config) -> Path:
    """A copy of tiny decoder `name` (tests/fixtures/tiny) whose LM head is its embeddings: its
    file holds no lm_head.weight, so as a causal LM it needs `tie_word_embeddings`."""
    target = folder / name
    shutil.copytree(Path(__file__).parent / "fixtures" / "tiny" / name, target)
    c = json.loads((target / "config.json").read_text())
    (target / "config.json").write_text(json.dumps(c | {"tie_word_embeddings": True} | config))
    return target


def make_hub_cache(hf_home: Path, repo_id: str, source: Path, commit: str = "0" * 39 + "1") -> Path:
    """Put the files of model folder `source` into a Hugging Face cache under `hf_home`, in the
    hub's real layout: blobs named by hash, snapshot files as symlinks to them, refs/main."""
    import hashlib

    repo = hf_home / "hub" / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    for file in sorted(source.iterdir()):
        if not file.is_file():
            continue
        data = file.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        os.symlink(os.path.relpath(blob, snapshot), snapshot / file.name)
    return snapshot


def attn(*args: str, stdin: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run attn's entry point as a real process (pipes, exit codes, environment)."""
    return subprocess.run(
        [sys.executable, "-c", "from attn_cli.cli import main; main()", *args],
        input=stdin, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=120,
    )


def validate(doc: dict, schema: dict, kind: str) -> None:
    """`doc` is a valid `kind` document ($defs/<kind>), and the schema's top level accepts it."""
    jsonschema.validate(doc, schema["$defs"][kind] | {"$defs": schema["$defs"]})
    jsonschema.validate(doc, schema)


class OwnCache:
    """attn's cache of one test module: its folder, and the packaged models attn unpacked into it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.made: list[str] = []  # the file or folder name of each extraction, in order


@contextlib.contextmanager
def own_attn_cache(root: Path):
    """$ATTN_CACHE set to `root` while the block runs, every extraction of a packaged model counted.
    Tests that assert about the cache's contents use it: ~/.cache/attn is shared with other runs
    (other checkouts' runs re-extract into it, their parts being other paths), whose half-written
    .tmp files would be seen as this run's. `root` is deleted afterwards (a real model is 260-420 MB)."""
    from attn_cli.loading import packaged

    cache = OwnCache(root)

    def counted(unpack):
        def unpacked(archive, inside, target, *rest):
            cache.made.append(target.name)
            return unpack(archive, inside, target, *rest)

        return unpacked

    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("ATTN_CACHE", str(root))
            mp.setattr(packaged, "extract", counted(packaged.extract))
            mp.setattr(packaged, "unpack", counted(packaged.unpack))
            yield cache
    finally:
        shutil.rmtree(root, ignore_errors=True)
