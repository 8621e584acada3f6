"""Decode speed: 64 new tokens on SmolLM2-135M (the packaged Q4_1 GGUF), greedy.

attn with its KV cache, attn without it (--no-cache: the whole sequence every step), and
transformers' `generate` on the same GGUF file through its own GGUF loader (de-quantized to
float32, eager attention), with the same number of threads, in the same run. Each is timed
around the decoding loop only (loading and de-quantizing the weights are reported apart), in
its own process; the repeats alternate between them so that load changes hit all alike. The
machine is shared: the load average is printed before and after.

    python benchmarks/bench_generate.py [--tokens 64] [--threads 1] [--repeats 3]

Needs `uv sync --group models` (the GGUF file) and the reference venv (/work/refenv or
$ATTN_REFENV) for the transformers column.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, loadavg, machine_info, md_table, quartiles  # noqa: E402

PROMPT = "The capital of France is"

ATTN = f"""
import json, sys, time
import numpy as np
from attn_cli.compute.decoding import decode
from attn_cli.loading.model import kept, load_model
from attn_cli.loading.tokenizer import tokenize
tokens, use_cache = int(sys.argv[1]), sys.argv[2] == "cache"
t0 = time.perf_counter()
model = kept(load_model("smollm2"))
ids = tokenize(model.tokenizer, {PROMPT!r}).ids
list(decode(model, ids, 1))  # converts every weight once (kept for the run): the load, not decoding
t1 = time.perf_counter()
out = [s.id for s in decode(model, ids, tokens, use_cache=use_cache)]  # no EOS: exactly `tokens` steps
t2 = time.perf_counter()
print(json.dumps({{"load": t1 - t0, "decode": t2 - t1, "ids": out}}))
"""

TRANSFORMERS = f"""
import json, sys, time
from pathlib import Path
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
tokens, threads, path = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
torch.set_num_threads(threads)
t0 = time.perf_counter()
tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32, attn_implementation="eager").eval()
ids = tok({PROMPT!r}, return_tensors="pt")["input_ids"]
t1 = time.perf_counter()
pad = model.generation_config.eos_token_id
model.generation_config.eos_token_id = None  # no EOS: exactly `tokens` steps, as attn's (min_new_tokens would mask EOS instead)
with torch.no_grad():
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=tokens, do_sample=False, pad_token_id=pad)
t2 = time.perf_counter()
print(json.dumps({{"load": t1 - t0, "decode": t2 - t1, "ids": out[0, ids.shape[1]:].tolist()}}))
"""


def thread_env(threads: int) -> dict[str, str]:
    return {**os.environ, **{k: str(threads) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}, "TOKENIZERS_PARALLELISM": "false"}


def run(argv: list[str], env: dict[str, str]) -> dict:
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"{argv[0]} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    env = thread_env(args.threads)
    refenv = Path(os.environ.get("ATTN_REFENV", "/work/refenv")) / "bin" / "python"
    attn = ["uv", "run", "--group", "models", "python", "-c", ATTN]
    gguf = subprocess.run(
        ["uv", "run", "--group", "models", "python", "-c", "from attn_cli.loading.packaged import resolve_packaged; print(resolve_packaged('smollm2'))"],
        capture_output=True, text=True, cwd=ROOT, check=True,
    ).stdout.strip().splitlines()[-1]
    load_start = loadavg()
    results: dict[str, list[dict]] = {"attn (KV cache)": [], "attn (no cache)": [], "transformers generate": []}
    for _ in range(args.repeats):
        results["attn (KV cache)"].append(run([*attn, str(args.tokens), "cache"], env))
        results["attn (no cache)"].append(run([*attn, str(args.tokens), "none"], env))
        if refenv.is_file():
            results["transformers generate"].append(run([str(refenv), "-c", TRANSFORMERS, str(args.tokens), str(args.threads), gguf], env))
        print(f"repeat done · load {loadavg()}", file=sys.stderr)
    reference = results["transformers generate"]
    medians = {name: sorted(args.tokens / r["decode"] for r in runs)[len(runs) // 2] for name, runs in results.items() if runs}
    ref_speed = medians.get("transformers generate")
    rows = []
    for name, runs in results.items():
        if not runs:
            rows.append([name, "—", "—", "—", "not run (no reference venv)"])
            continue
        speeds = sorted(args.tokens / r["decode"] for r in runs)
        median = speeds[len(speeds) // 2]
        low, high = quartiles(speeds) if len(speeds) > 2 else (speeds[0], speeds[-1])
        same = "—" if not reference else ("yes" if runs[0]["ids"] == reference[0]["ids"] else "NO")
        rows.append([name, f"{median:.1f}", f"{low:.1f} – {high:.1f}", f"{sorted(r['load'] for r in runs)[len(runs) // 2]:.1f}", same])
    for row, name in zip(rows, results):
        row.insert(2, f"{medians[name] / ref_speed:.2f}×" if ref_speed and name in medians else "—")
    print(f"\n{args.tokens} new tokens on SmolLM2-135M-Instruct Q4_1 (GGUF), greedy, {args.threads} thread(s), {args.repeats} repeats (median)\n")
    print("\n".join(md_table(["", "tokens/s", "vs transformers", "spread", "load + de-quantize s", "same ids as transformers"], rows)))
    print()
    for name, value in machine_info({}, load_start):
        print(f"- {name}: {value}")


if __name__ == "__main__":
    main()
