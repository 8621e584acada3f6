"""marian: `attn inspect SOURCE -q WORD -m opus-mt-fr-en` from a cold start, this tree against an
earlier commit's attn_cli (default: the one before the target tokenizer became lazy).

Both sides are whole processes run by the same interpreter, interleaved (the first rotating), the
Marian tokenizers already in attn's cache, so the difference is what each run still builds: the
earlier commit reads both sides' tokenizer.json back (~0.3 s each), this tree only the source's
(the target's waits for a target). Their stdout must be the same bytes.

    .venv/bin/python benchmarks/bench_marian_load.py [--before REV] [--rounds 8]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import loadavg, md_table, quartiles  # noqa: E402
from _scale import Proc, interleave, log, med  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ARGS = ["inspect", "Le chat.", "-q", "chat", "-m", "opus-mt-fr-en"]
# Run with -P (the cwd, this tree, not on sys.path); the process's own peak RSS (VmHWM, KiB) last on
# stderr: ru_maxrss survives exec, so here it reads this benchmark's own peak for both sides.
RUNNER = (
    "import atexit, sys; atexit.register(lambda: print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')), file=sys.stderr)); "
    "from attn_cli.cli import main; sys.exit(main())"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="6429eca", help="the git revision whose attn_cli is 'before'")
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    start = loadavg()
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.before, "attn_cli"], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        procs = [
            Proc("before", f"attn_cli of {args.before}", [sys.executable, "-P", "-c", RUNNER, *ARGS], env=os.environ | {"PYTHONPATH": tmp}),
            Proc("after", "this tree's attn_cli", [sys.executable, "-P", "-c", RUNNER, *ARGS], env=os.environ | {"PYTHONPATH": str(ROOT)}),
        ]
        for p in procs:  # the PYTHONPATH copy, not the installed one, is what runs
            where = subprocess.run([sys.executable, "-P", "-c", "import attn_cli; print(attn_cli.__file__)"], env=p.env, capture_output=True, text=True)
            assert where.stdout.startswith(p.env["PYTHONPATH"]), where.stdout
        interleave(procs, args.rounds, 1, "marian")
    if procs[0].output != procs[1].output:
        sys.exit("bench: before and after printed different output")
    rows = []
    for p in procs:
        walls = [r.wall for r in p.runs]
        q1, q3 = quartiles(walls)
        rows.append([p.label, f"{med(walls):.2f} s", f"{q1:.2f}–{q3:.2f} s", f"{med([int(r.stderr.split()[-1]) / 1024 for r in p.runs]):.0f} MiB"])
    ratio = med([r.wall for r in procs[1].runs]) / med([r.wall for r in procs[0].runs])
    log(f"load average {start} at the start, {loadavg()} at the end; after/before {ratio:.2f}×")
    print("\n".join(md_table(["attn inspect \"Le chat.\" -q chat -m opus-mt-fr-en", "median wall", "quartiles", "peak RSS"], rows)))
    print(f"\nafter / before: {ratio:.2f}× ({args.rounds} rounds; load average {start} → {loadavg()}; same stdout)")


if __name__ == "__main__":
    main()
