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
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    loadavg,
    machine_info,
    md_table,
    refenv_python,
)
from _scale import Section, log  # noqa: E402
from scale_batch import bench_batch  # noqa: E402
from scale_decoder import bench_decoder  # noqa: E402
from scale_long512 import bench_long512  # noqa: E402

NAMES = ("long512", "batch", "decoder4096")


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
