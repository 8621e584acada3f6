"""batch: sentences per second over a file of sentences, attn batch against a transformers loop (see bench.py)."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    BUNDLED_MODEL,
    find_attn,
    md_table,
    plain_table,
    quartiles,
)
from _scale import Proc, Section, interleave, log, max_abs_diff, med, torch_env  # noqa: E402

BATCH_N = 200
BATCH_QUERY_INDEX = 1
TARGET_BATCH = 3.0  # attn batch (one process) / a transformers loop, sentences per second

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
import json, os, sys, time
t0 = time.perf_counter()
import torch
from transformers import AutoModel, AutoTokenizer

path = "@BUNDLED@"
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
""".replace("@BUNDLED@", str(BUNDLED_MODEL))


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
    log(f"batch: {len(procs)} commands × ({args.batch_warmup} warm-up + {args.batch_rounds} rounds), interleaved")
    interleave(procs, args.batch_rounds, args.batch_warmup, "batch")
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
        ratio = rate("attn") / rate("transformers")
        sec.verdicts.append(
            (
                "batch: attn batch, 1 process / transformers loop (sentences/s)",
                f"{ratio:.2f}×",
                f"≥ {TARGET_BATCH}×",
                "PASS" if ratio >= TARGET_BATCH else "MISS",
            )
        )
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
