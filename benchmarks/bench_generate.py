"""Decode speed: 64 new tokens on SmolLM2-135M (the packaged Q4_1 GGUF), greedy.

attn with its KV cache, attn without it (--no-cache: the whole sequence every step), and
transformers' `generate` on the same GGUF file through its own GGUF loader (de-quantized to
float32, eager attention), with the same number of threads, in the same run. Each is timed
around the decoding loop only (loading and de-quantizing the weights are reported apart), in
its own process; the repeats alternate between them so that load changes hit all alike. The
machine is shared: the load average is printed before and after.

    python benchmarks/bench_generate.py [--tokens 64] [--threads 1] [--repeats 3]

Memory (`--memory 8000 [--every 500] --models gemma3`): `attn generate`'s loop writing 8,000
tokens (end of sequence set aside), its resident memory and the KV cache's size every 500.

Long context (`--contexts 1000 4000 [--models gemma3 smollm2]`): the same N prompt ids (a real
text: the README and docs/, cut to N tokens) on both sides, then `--tokens` greedy steps, each
step timed (transformers' through a streamer), tokens/s of the steps after the first; attn with
its KV cache (Gemma 3's sliding layers keep only their window).

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


# Long context: the same prompt ids on both sides (a real text, README + docs, cut to the context
# length by attn's tokenizer), then `tokens` greedy steps; each step timed, so that the rate is
# that of the steps after the first (the first also reads the whole prompt).
ATTN_CONTEXT = """
import json, sys, time
from attn_cli.compute.decoding import decode
from attn_cli.loading.model import kept, load_model
p = json.loads(open(sys.argv[1]).read())
model = kept(load_model(p["model"]))
ids = p["ids"]
list(decode(model, ids[:8], 1))  # converts every weight once (kept for the run): the load, not decoding
times, out = [time.perf_counter()], []
for step in decode(model, ids, p["tokens"]):  # no EOS: exactly `tokens` steps
    times.append(time.perf_counter())
    out.append(step.id)
print(json.dumps({"prefill": times[1] - times[0], "steps": [b - a for a, b in zip(times[1:], times[2:])], "ids": out}))
"""

TRANSFORMERS_CONTEXT = """
import json, sys, time
from pathlib import Path
import torch
from transformers import AutoModelForCausalLM
from transformers.generation.streamers import BaseStreamer
p = json.loads(open(sys.argv[1]).read())
torch.set_num_threads(p["threads"])
path = Path(p["gguf"])
model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32, attn_implementation="eager").eval()
ids = torch.tensor([p["ids"]])

class Clock(BaseStreamer):  # put() gets the prompt, then each new token as it is chosen
    def __init__(self):
        self.times = []
    def put(self, value):
        self.times.append(time.perf_counter())
    def end(self):
        pass

pad = model.generation_config.eos_token_id
model.generation_config.eos_token_id = None
clock = Clock()
with torch.no_grad():
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=p["tokens"], do_sample=False, pad_token_id=pad, streamer=clock)
t = clock.times
print(json.dumps({"prefill": t[1] - t[0], "steps": [b - a for a, b in zip(t[1:], t[2:])], "ids": out[0, ids.shape[1]:].tolist()}))
"""


# Memory: `attn generate`'s own loop (the library's `generate`, as the command calls it) for
# `tokens` new tokens with the end-of-sequence ids set aside, so that it writes them all; every
# `every` tokens the process's resident memory (VmRSS) and peak (VmHWM), and the KV cache's size.
ATTN_MEMORY = """
import json, sys, time
import attn_cli.compute.generate as g
from attn_cli.loading.model import load_model
from attn_cli.models.cache import cache_bytes
model, tokens, every = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
g.eos_ids = lambda model: ()  # no end of sequence: exactly `tokens` steps
loaded = g.kept(load_model(model))
rows, start, written = [], [0.0], [0]

def status():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024

def on_step(step):
    written[0] += 1
    n = written[0]
    if n == 1:
        start[0] = time.perf_counter()
    if n % every == 0:
        rss, peak = status()
        rows.append({"new": n, "position": step.position, "rss": rss, "peak": peak, "cache": cache_bytes(loaded.spec, step.position + 1),
                     "seconds": time.perf_counter() - start[0]})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)

before = status()
g.generate(loaded, "The capital of France is", tokens, on_step=on_step)
print(json.dumps({"before": before, "rows": rows}))
"""


def memory(args, env: dict[str, str]) -> None:
    """Resident memory every `--every` tokens of an `--memory`-token generation, and per token."""
    load_start = loadavg()
    for model in args.models:
        result = run([sys.executable, "-c", ATTN_MEMORY, model, str(args.memory), str(args.every)], env)
        rows, mib = result["rows"], 1024 * 1024
        table = [[f"{r['new']:,}", f"{r['position'] + 1:,}", f"{r['rss'] / mib:,.1f}", f"{r['peak'] / mib:,.1f}", f"{r['cache'] / mib:,.1f}",
                  f"{r['new'] / r['seconds']:.1f}" if r["seconds"] else "—"] for r in rows]
        print(f"\n`attn generate` on {model}: {args.memory:,} new tokens, resident memory every {args.every:,}\n")
        print("\n".join(md_table(["new tokens", "positions", "RSS MiB", "peak MiB", "KV cache MiB", "tokens/s so far"], table)))
        if len(rows) >= 2:
            first, last = rows[0], rows[-1]
            per = (last["peak"] - first["peak"]) / (last["new"] - first["new"])
            cache = (last["cache"] - first["cache"]) / (last["new"] - first["new"])
            print(f"\npeak memory per new token from {first['new']:,} to {last['new']:,}: {per / 1024:.1f} KiB (KV cache: {cache / 1024:.1f} KiB)")
    print()
    for name, value in machine_info({}, load_start):
        print(f"- {name}: {value}")


def prompt_ids(model: str, context: int) -> list[int]:
    """`context` ids of a real text (the README and docs/, in order) as attn tokenizes it for `model`."""
    from attn_cli.loading.model import load_model
    from attn_cli.loading.tokenizer import tokenize

    text = "\n\n".join(p.read_text(encoding="utf-8") for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])
    ids = [int(i) for i in tokenize(load_model(model).tokenizer, text, max_tokens=context, truncate=True).ids]
    if len(ids) < context:
        raise SystemExit(f"the docs are {len(ids)} tokens for {model}, fewer than {context}")
    return ids[:context]


def thread_env(threads: int) -> dict[str, str]:
    return {**os.environ, **{k: str(threads) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}, "TOKENIZERS_PARALLELISM": "false"}


def run(argv: list[str], env: dict[str, str]) -> dict:
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"{argv[0]} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def long_context(args, env: dict[str, str], refenv: Path) -> None:
    """tokens/s of the steps after the first, at each context length, attn against transformers."""
    import statistics
    import tempfile

    load_start = loadavg()
    rows = []
    for model in args.models:
        gguf = subprocess.run(
            [sys.executable, "-c", f"from attn_cli.loading.packaged import resolve_packaged; print(resolve_packaged({model!r}))"],
            capture_output=True, text=True, cwd=ROOT, check=True,
        ).stdout.strip().splitlines()[-1]
        for context in args.contexts:
            with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
                json.dump({"model": model, "gguf": gguf, "ids": prompt_ids(model, context), "tokens": args.tokens, "threads": args.threads}, f)
            runs: dict[str, list[dict]] = {"attn": [], "transformers": []}
            try:
                for _ in range(args.repeats):
                    runs["attn"].append(run([sys.executable, "-c", ATTN_CONTEXT, f.name], env))
                    if refenv.is_file():
                        runs["transformers"].append(run([str(refenv), "-c", TRANSFORMERS_CONTEXT, f.name], env))
                    print(f"{model} {context}: repeat done · load {loadavg()}", file=sys.stderr)
            finally:
                os.unlink(f.name)
            speed = {k: statistics.median(1 / statistics.median(r["steps"]) for r in v) for k, v in runs.items() if v}
            prefill = {k: statistics.median(r["prefill"] for r in v) for k, v in runs.items() if v}
            same = "—" if not runs["transformers"] else ("yes" if runs["attn"][0]["ids"] == runs["transformers"][0]["ids"] else "NO")
            ratio = f"{speed['attn'] / speed['transformers']:.2f}×" if "transformers" in speed else "—"
            rows.append([model, f"{context:,}", f"{speed['attn']:.1f}", f"{speed.get('transformers', float('nan')):.1f}", ratio,
                         f"{prefill['attn']:.2f} / {prefill.get('transformers', float('nan')):.2f}", same])
            print(f"{model} {context}: " + " | ".join(rows[-1][2:]), file=sys.stderr, flush=True)
    print(f"\n{args.tokens} new tokens after a prompt of N tokens, greedy, {args.threads} thread(s), {args.repeats} repeats", end="")
    print(" (medians; per run the median step)\n")
    header = ["model", "context N", "attn tokens/s", "transformers tokens/s", "attn / transformers", "first step s (attn / transformers)", "same ids"]
    print("\n".join(md_table(header, rows)))
    print()
    for name, value in machine_info({}, load_start):
        print(f"- {name}: {value}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--contexts", type=int, nargs="*", help="long-context mode: prompts of these many tokens (e.g. 1000 4000)")
    parser.add_argument("--models", nargs="*", default=["gemma3", "smollm2"], help="long-context and memory modes: the packaged models")
    parser.add_argument("--memory", type=int, help="memory mode: generate this many tokens (e.g. 8000), RSS every --every")
    parser.add_argument("--every", type=int, default=500)
    args = parser.parse_args()
    env = thread_env(args.threads)
    refenv = Path(os.environ.get("ATTN_REFENV", "/work/refenv")) / "bin" / "python"
    if args.memory:
        memory(args, env)
        return
    if args.contexts:
        long_context(args, env, refenv)
        return
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
