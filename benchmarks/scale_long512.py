"""long512: a 512-token text on MiniLM, in-process forward time, attn against transformers at the same thread count (see bench.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    BUNDLED_MODEL,
    failure_tail,
    last_json_line,
    md_table,
    plain_table,
    quartiles,
    run_process,
)
from _scale import Section, attn_threads_env, exact_length_text, log, max_abs_diff, med, torch_env  # noqa: E402

TARGET_LONG512 = 1.0  # attn in-process forward / transformers forward at the same threads, medians
THREADS = (1, 2)


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


def long_text(target: int = 512) -> tuple[str, int]:
    from attn_cli.loading.model import bundled_model_path
    from attn_cli.loading.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(bundled_model_path() / "tokenizer.json")
    return exact_length_text(LONG_TEXT.split(), lambda t: len(tokenizer.encode(t).ids), target)


# Run in the attn venv, with the BLAS thread variables set by the parent. argv[1]: JSON params.
ATTN_LONG_CHILD = r"""
import ctypes, json, sys, time
p = json.loads(sys.argv[1])
from attn_cli.compute.inspect import inspect_tokens
from attn_cli.compute.options import InspectOptions
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
# Tokenized once, outside the timed call, as transformers' child does.
tokens = tokenize(model.tokenizer, text, max_tokens=model.spec.max_positions)
options = InspectOptions(query_index=p["query_index"], layer="all")
run = lambda: inspect_tokens(model, tokens, options)
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
# For comparison, not graded: every layer whole (inspect stops at the last one's q, k, v).
whole = []
for _ in range(p["runs"]):
    t = time.perf_counter()
    for _trace in model.trace(tokens.ids):
        pass
    whole.append(time.perf_counter() - t)
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

    import attn_cli.models.bert as arch  # the family module whose functions the forward pass calls

    wrap(arch, "embeddings", "embeddings")
    wrap(arch, "linear", "linear layers (x·Wᵀ + b: Q, K, V, output, feed-forward)")
    wrap(arch, "attend", "self-attention (Q·Kᵀ, softmax, ·V, all rows)")
    wrap(arch, "gelu", "GELU (float32, erfc within 2.2e-7)")
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
    "times": times, "tokenize": tok, "whole": whole, "seq": len(result.tokenization.tokens), "blas_threads": blas_threads(),
    "token": result.tokenization.tokens[p["query_index"]].text,
    "row": [h.weights.tolist() for h in heads if h.head != "mean"], "breakdown": breakdown,
}))
"""

# Run in the reference env. argv[1]: JSON params.
TRANSFORMERS_LONG_CHILD = r"""
import json, os, sys, time
p = json.loads(sys.argv[1])
import torch
from transformers import AutoModel, AutoTokenizer

path = "@BUNDLED@"
tokenizer = AutoTokenizer.from_pretrained(path)
model = AutoModel.from_pretrained(path, attn_implementation="eager")
model.eval()
torch.set_num_threads(p["threads"])
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
""".replace("@BUNDLED@", str(BUNDLED_MODEL))


def bench_long512(args, python_ref: Path | None, workdir: Path) -> Section:
    sec = Section("long512", "long512: a 512-token input on MiniLM, in-process forward time, attn and torch at the same threads")
    text, n = long_text(512)
    if n != 512:
        sec.notes.append(f"the input text tokenizes to {n} tokens, not 512")
    path = workdir / "long512.txt"
    path.write_text(text, encoding="utf-8")
    params = {"text": str(path), "warmup": args.long_warmup, "runs": args.long_runs, "query_index": LONG_QUERY_INDEX}
    variants = [(f"attn{t}", f"attn, {t} thread(s)", [sys.executable, "-c", ATTN_LONG_CHILD, json.dumps(params)], attn_threads_env(t)) for t in THREADS]
    if python_ref is not None:
        variants += [
            (
                f"torch{t}",
                f"transformers (eager), torch {t} thread(s)",
                [str(python_ref), "-c", TRANSFORMERS_LONG_CHILD, json.dumps(params | {"threads": t})],
                torch_env(),
            )
            for t in THREADS
        ]
    results: dict[str, list[dict]] = {key: [] for key, *_ in variants}
    log(f"long512: {args.long_rounds} rounds × {len(variants)} processes, each {args.long_warmup} warm-up + {args.long_runs} timed forward passes")
    for r in range(args.long_rounds):
        order = variants[r % len(variants) :] + variants[: r % len(variants)]
        for key, label, argv, env in order:
            run = run_process(argv, env=env, capture=True)
            if run.status != 0:
                sys.exit(f"bench: long512 {label} failed (exit {run.status}):\n  {failure_tail(run)}")
            doc = last_json_line(run.stdout)
            results[key].append(doc)
            log(f"  round {r + 1}: {label:<40} " + ", ".join(f"{t * 1000:.0f}" for t in doc["times"]) + " ms")

    if args.breakdown:
        log("long512: phase breakdown of attn's inspect() (1 thread, a separate process)")
        run = run_process([sys.executable, "-c", ATTN_LONG_CHILD, json.dumps(params | {"breakdown": True})], env=attn_threads_env(1), capture=True)
        if run.status == 0:
            results["breakdown"] = [last_json_line(run.stdout)]
        else:
            sec.notes.append(f"phase breakdown failed (exit {run.status}): {failure_tail(run, 2)}")

    times = {k: [t for d in docs for t in d["times"]] for k, docs in results.items() if k != "breakdown"}
    labels = {key: label for key, label, *_ in variants}
    first = {k: docs[0] for k, docs in results.items() if docs}
    rows = []
    for key in labels:
        t = times[key]
        d = first[key]
        threads = d.get("blas_threads") if key.startswith("attn") else d.get("threads")
        tok = [x for doc in results[key] for x in doc["tokenize"]]
        q1, q3 = quartiles(t)
        rows.append(
            [
                labels[key],
                f"{med(t) * 1000:.1f} ms",
                f"{q1 * 1000:.1f}–{q3 * 1000:.1f} ms",
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
    for t in THREADS:
        a, ref = f"attn{t}", f"torch{t}"
        if ref not in times:
            sec.verdicts.append((f"long512: attn / torch, {t} thread(s) each (forward time)", "skipped", f"≤ {TARGET_LONG512}×", "n/a"))
            continue
        ratio = med(times[a]) / med(times[ref])
        verdict = "PASS" if ratio <= TARGET_LONG512 else "MISS"
        checks.append((f"attn / torch, {t} thread(s) each", f"{ratio:.2f}×", f"{min(times[a]) / min(times[ref]):.2f}×", f"≤ {TARGET_LONG512}×", verdict))
        sec.verdicts.append((f"long512: attn / torch, {t} thread(s) each (forward time)", f"{ratio:.2f}×", f"≤ {TARGET_LONG512}×", verdict))
    for t in THREADS:  # info: had inspect() run every layer whole
        a, ref = f"attn{t}", f"torch{t}"
        whole = [x for doc in results[a] for x in doc.get("whole", [])]
        if whole and ref in times:
            label = f"attn every layer whole (model.trace) / torch, {t} thread(s)"
            checks.append((label, f"{med(whole) / med(times[ref]):.2f}×", f"{min(whole) / min(times[ref]):.2f}×", "—", "(info)"))
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
        + (f", {first['torch1']['seq']} for transformers" if "torch1" in first else "")
        + f" ({len(text.split())} words of a natural English text, `LONG_TEXT` in the script); query token {LONG_QUERY_INDEX} "
        f"= {first['attn1']['token']!r}"
    )
    if "torch1" in first:
        diff = max_abs_diff(first["attn1"]["row"], first["torch1"]["row"])
        sec.notes.append(f"same answer: attn's last-layer row of token {LONG_QUERY_INDEX} (all heads) matches transformers' within {diff:.1e} (max abs diff)")
    sec.notes.append(
        f"timing: {args.long_rounds} round(s), the processes interleaved (starting process rotating); each process loads the model, "
        f"runs {args.long_warmup} warm-up passes, then {args.long_runs} timed passes; n = rounds × timed passes. "
        "attn's time is the `inspect()` call on the tokenized text (6 layers, the last up to its q, k, v, which is all it reads of it; "
        "the result for every layer and head); "
        "transformers' is `model(**inputs, output_attentions=True)` under `torch.no_grad()` (tokenization outside, shown separately)."
    )
    bd = results.get("breakdown")
    if bd and bd[0].get("breakdown"):
        b = bd[0]["breakdown"]
        brow = [[name, f"{v * 1000:.0f} ms", f"{100 * v / b['total']:.0f} %"] for name, v in b["parts"]]
        bheader = [f"where attn's inspect() time goes (1 thread; median total {b['total'] * 1000:.0f} ms)", "median", "share"]
        sec.plain += [""] + plain_table(bheader, brow)
        sec.markdown += ["", "Where attn's time goes: wall-clock timers around its building blocks, in a separate process (not a profiler):", ""]
        sec.markdown += md_table(bheader, brow)
    return sec
