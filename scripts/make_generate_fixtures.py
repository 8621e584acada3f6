"""Record what transformers' `generate` does, for attn's `attn generate` tests.

For each model: greedy generation (do_sample=False) of a plain prompt and, for models with a
chat template, a chat prompt; saved per run as tests/fixtures/generate/<model>-<kind>.npz (tiny-<name>-plain.npz for the tiny ones):

- `input_ids` int64 (prompt,): the prompt as transformers tokenizes it (for a chat,
  apply_chat_template(..., add_generation_prompt=True) then the tokenizer without added specials).
- `generated` int64 (steps,): the new ids, EOS included when generation stopped there.
- `top_ids` int64 and `top_logprobs` f32 (steps, 5): log_softmax of the raw logits of each step.
- `rows` f32 (steps, layers, heads, positions): the attention row of the position that chose
  each token (prompt - 1 + step), NaN beyond the keys it had.
- `text`, `chat` (0/1), `versions`.

Models: the tiny random decoders of tests/fixtures/tiny (gpt2, llama, mistral, qwen2, qwen3, gemma3, gemma2,
llama3rope; loaded as *ForCausalLM with tie_word_embeddings=True: their files hold no LM head,
so it is the embeddings, and attn's tests load them the same way; those of OWN_HEAD, saved with
their untied LM head, are loaded as saved) and the two real GGUF
decoders through transformers' own GGUF loader (`gguf_file=`), de-quantized to float32 (a chat
run only for a file with `tokenizer.chat_template`: Gemma 3 270M's has none).

Run in the reference venv, from the repo root::

    /work/refenv/bin/python scripts/make_generate_fixtures.py            # everything
    /work/refenv/bin/python scripts/make_generate_fixtures.py --only smollm2 gemma3

The GGUF files are found by attn itself (`uv run --group models`), which installs them from PyPI.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference import REPO_ROOT, save_npz, versions_string  # noqa: E402

OUT = REPO_ROOT / "tests" / "fixtures" / "generate"
TINY = ("gpt2", "llama", "mistral", "qwen2", "qwen3", "llama3rope", "gemma3", "gpt_neox", "olmo2", "phi3", "mixtral", "qwen3_moe", "gemma2")
# Tiny decoders saved with their own (untied) LM head, as their real checkpoints are: loaded as saved.
OWN_HEAD = ("gpt_neox",)
GGUF = ("smollm2", "gemma3")
PLAIN = "The capital of France is"
CHAT = "What is the capital of France?"
TINY_TEXT = "Every head looks at the other tokens."
STEPS = 12
TOP = 5


def gguf_path(name: str) -> Path:
    """Where attn finds the packaged GGUF model (joining Gemma's parts once)."""
    code = f"from attn_cli.loading.packaged import resolve_packaged; print(resolve_packaged({name!r}))"
    out = subprocess.run(["uv", "run", "--group", "models", "python", "-c", code], cwd=REPO_ROOT, check=True, capture_output=True, text=True)
    return Path(out.stdout.strip().splitlines()[-1])


def record(model, input_ids: list[int], text: str, chat: bool) -> dict:
    ids = torch.tensor([input_ids])
    with torch.no_grad():
        out = model.generate(
            ids, attention_mask=torch.ones_like(ids), max_new_tokens=STEPS, do_sample=False, output_attentions=True,
            output_logits=True, return_dict_in_generate=True, pad_token_id=model.generation_config.eos_token_id
            if model.generation_config.pad_token_id is None else model.generation_config.pad_token_id,
        )
    generated = out.sequences[0, len(input_ids):].numpy().astype(np.int64)
    steps, layers = len(out.logits), len(out.attentions[0])
    heads = out.attentions[0][0].shape[1]
    rows = np.full((steps, layers, heads, len(input_ids) + steps), np.nan, dtype=np.float32)
    top_ids = np.zeros((steps, TOP), dtype=np.int64)
    top_lp = np.zeros((steps, TOP), dtype=np.float32)
    for s in range(steps):
        logprobs = torch.log_softmax(out.logits[s][0].to(torch.float64), dim=-1)
        values, indices = torch.topk(logprobs, TOP)
        top_ids[s], top_lp[s] = indices.numpy(), values.numpy().astype(np.float32)
        for layer in range(layers):
            row = out.attentions[s][layer][0, :, -1, :].to(torch.float32).numpy()
            rows[s, layer, :, : row.shape[-1]] = row
    return {
        "text": np.array(text), "chat": np.array(int(chat)), "input_ids": np.array(input_ids, dtype=np.int64), "generated": generated,
        "top_ids": top_ids, "top_logprobs": top_lp, "rows": rows, "versions": np.array(versions_string()),
    }


def tiny(name: str) -> None:
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM

    source = REPO_ROOT / "tests" / "fixtures" / "tiny" / name
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / name
        shutil.copytree(source, folder)
        if name not in OWN_HEAD:
            config = json.loads((folder / "config.json").read_text())
            (folder / "config.json").write_text(json.dumps(config | {"tie_word_embeddings": True}))
        model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager", dtype=torch.float32).eval()
        ids = Tokenizer.from_file(str(folder / "tokenizer.json")).encode(TINY_TEXT, add_special_tokens=True).ids
        save_npz(OUT / f"tiny-{name}-plain.npz", record(model, ids, TINY_TEXT, False))


def real(name: str) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = gguf_path(name)
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, attn_implementation="eager", dtype=torch.float32).eval()
    save_npz(OUT / f"{name}-plain.npz", record(model, tokenizer(PLAIN)["input_ids"], PLAIN, False))
    if tokenizer.chat_template is None:  # Gemma 3 270M's GGUF has no tokenizer.chat_template
        print(f"{name}: the GGUF file has no chat template: no chat fixture", file=sys.stderr)
        return
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": CHAT}], add_generation_prompt=True, tokenize=False)
    ids = tokenizer(rendered, add_special_tokens=False)["input_ids"]
    save_npz(OUT / f"{name}-chat.npz", record(model, ids, CHAT, True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=TINY + GGUF)
    names = parser.parse_args().only or list(TINY + GGUF)
    OUT.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    for name in names:
        (tiny if name in TINY else real)(name)
        print(f"wrote {name}", file=sys.stderr)


if __name__ == "__main__":
    main()
