"""attn's speed against its references, every figure of issue 14 in one command.

Run from the repo root:

    uv run python benchmarks/bench.py [--quick] [--only NAME] [--markdown PATH]

Each section measures attn and its reference in the same run, interleaved, and reports ratios of
medians (the load average at the start and end of each section is in its notes):

  cold         cold `attn inspect` (table, and --json) against the import floor `python -c
               "import numpy, tokenizers, rich, typer"` (≤ 1.2×, --json ≤ 1.1×) and against
               transformers doing the same (≤ 0.035×); peak RSS ≤ 100 MiB.
  long512      A 512-token text on the bundled MiniLM, in-process forward time after warm-up,
               attn against torch + transformers at the same thread count, 1 and 2 (≤ 1.0× each).
  batch        `attn batch FILE -i 1` over 200 sentences, one process, against a transformers
               script that loads the model once and loops over the lines (≥ 3× sentences/s).
  decoder      A random-weight Llama in SmolLM2-135M's shape on a 4,096-token input, whole
               processes: `attn inspect - --query-index -1 --json` against transformers with
               output_attentions=True (≤ 0.2× wall; attn's peak RSS ≤ 320 MiB).
  uvrun        `uv run attn --version` in this checkout: no run after the first byte-compiles
               anything.

--quick (under two minutes on this 2-core machine): fewer runs, no breakdowns, and the decoder on
1,024 tokens instead of 4,096 (reported, not graded). The transformers side needs the reference
env (`bash scripts/refenv.sh` makes `.refenv`, or set $ATTN_REFENV); without it those ratios are
skipped with a note. The decoder's model folder is made once with transformers and cached under
$XDG_CACHE_HOME/attn-bench (else /tmp/attn-bench-cache). Progress goes to stderr, the report to
stdout; a missed target never makes this script exit non-zero (it exits non-zero only if an attn
command it times fails).
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
from cold_start import bench_cold  # noqa: E402
from scale_batch import bench_batch  # noqa: E402
from scale_decoder import bench_decoder  # noqa: E402
from scale_long512 import bench_long512  # noqa: E402
from uv_run import bench_uv_run  # noqa: E402

SECTIONS = {"cold": bench_cold, "long512": bench_long512, "batch": bench_batch, "decoder": bench_decoder, "uvrun": bench_uv_run}
# (full run, --quick): a value given on the command line wins over both.
PROFILES = {
    "cold_runs": (15, 5),
    "cold_warmup": (2, 1),
    "cold_ref_runs": (5, 2),
    "long_rounds": (3, 1),
    "long_runs": (3, 3),
    "long_warmup": (2, 1),
    "batch_rounds": (5, 1),
    "batch_warmup": (1, 0),
    "decoder_runs": (3, 1),
    "decoder_tokens": (4096, 1024),
    "uv_runs": (5, 3),
}


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
        lines += ["attn benchmark", "", "summary:"]
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
    parser.add_argument("--quick", action="store_true", help="fewer runs, no breakdowns, a 1,024-token decoder: under two minutes")
    parser.add_argument("--only", choices=list(SECTIONS), action="append", help="run only this section (repeatable)")
    parser.add_argument("--markdown", metavar="PATH", help="also write the report as Markdown to PATH")
    for name, (full, quick) in PROFILES.items():
        parser.add_argument("--" + name.replace("_", "-"), type=int, help=f"default {full} ({quick} with --quick)")
    parser.add_argument("--no-breakdown", dest="breakdown", action="store_false", help="skip the breakdowns of attn's time (long512) and memory (decoder)")
    parser.add_argument("--decoder-one-thread", action="store_true", help="decoder: also run attn with ATTN_THREADS=1")
    parser.add_argument("--decoder-timeout", type=float, default=600.0, help="decoder: time limit of a transformers run, s (default 600)")
    parser.add_argument("--min-available-mib", type=float, default=1024.0, help="decoder: stop transformers if MemAvailable falls below this (default 1024)")
    args = parser.parse_args(argv)
    for name, (full, quick) in PROFILES.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
        if getattr(args, name) < (0 if name.endswith("warmup") else 1):
            parser.error(f"--{name.replace('_', '-')} is too small")
    if args.quick:
        args.breakdown = False
    names = args.only or list(SECTIONS)

    notes: list[str] = []
    load_start = loadavg()
    python_ref, ref_info = refenv_python(notes)
    sections = []
    with tempfile.TemporaryDirectory(prefix="attn-bench-") as tmp:
        for name, bench in SECTIONS.items():
            if name in names:
                load = loadavg()
                section = bench(args, python_ref, Path(tmp))
                section.notes.append(f"load average (1/5/15 min) during this section: {load} → {loadavg()}")
                sections.append(section)
    info = machine_info(ref_info, load_start, [("mode", "--quick" if args.quick else "full")])
    sys.stdout.write(report(sections, info, notes, markdown=False))
    if args.markdown:
        out = Path(args.markdown)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report(sections, info, notes, markdown=True), encoding="utf-8")
        log(f"bench: wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
