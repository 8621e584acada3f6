"""uvrun: what `uv run attn …` costs in this checkout on top of the attn it starts (see bench.py).

`uv run` checks that the environment matches the lock before it starts the command. With
`compile-bytecode = true` in pyproject.toml it also re-compiled all of site-packages on every run
(astral-sh/uv#12202: ~5,700 files, +0.2-0.45 s, "Bytecode compiled …" on stderr). The target is
that no run after the first compiles anything.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, find_attn, md_table, plain_table  # noqa: E402
from _scale import Proc, Section, interleave, log, med  # noqa: E402

COMPILED = re.compile(rb"Bytecode compiled (\d+) files?")


def bench_uv_run(args, python_ref: Path | None, workdir: Path) -> Section:
    sec = Section("uvrun", "uvrun: `uv run attn --version` in this checkout against the attn it starts")
    uv = shutil.which("uv")
    if uv is None:
        sec.verdicts.append(("uv run attn: files compiled per run after the first", "skipped (no uv on PATH)", "0", "n/a"))
        return sec
    procs = [
        Proc("uv", "uv run attn --version", [uv, "run", "--project", str(ROOT), "attn", "--version"]),
        Proc("direct", "<venv>/bin/attn --version", [str(find_attn()), "--version"]),
    ]
    log(f"uvrun: {len(procs)} commands × (1 warm-up + {args.uv_runs} runs), interleaved")
    interleave(procs, args.uv_runs, 1, "uvrun")
    uv_proc, direct = procs
    compiled = [sum(int(n) for n in COMPILED.findall(r.stderr)) for r in uv_proc.runs]
    rows = [[p.label, f"{med([r.wall for r in p.runs]) * 1000:.0f} ms", f"{min(r.wall for r in p.runs) * 1000:.0f} ms", str(len(p.runs))] for p in procs]
    header = ["command (fresh process)", "median wall", "min", "n"]
    sec.plain += plain_table(header, rows)
    sec.markdown += md_table(header, rows)
    worst = max(compiled)
    sec.verdicts.append(
        ("uv run attn: files byte-compiled per run after the first", f"{worst} (max over {len(compiled)} runs)", "0", "PASS" if worst == 0 else "MISS")
    )
    overhead = med([r.wall for r in uv_proc.runs]) - med([r.wall for r in direct.runs])
    sec.verdicts.append(("uv run attn: time added by uv (lock check, sync check)", f"{overhead * 1000:.0f} ms", "—", "(info)"))
    sec.notes.append("the warm-up run may install or compile (a changed lock); it is not counted")
    return sec
