"""micro_forward: A/B timing of the forward pass (the `forward` scope's own bench, not a report).

    uv run python benchmarks/micro_forward.py [--base DIR] [--threads 1 2] [--rounds 5] [--case long512|sentence]

Times attn's `inspect(model, text, query_index=5, layer="all")` on the bundled MiniLM in child
processes, interleaved round by round: this checkout, optionally an older tree (`--base`, a
directory holding an `attn_cli` package, e.g. `git archive main attn_cli | tar -x -C DIR`), and
torch + transformers (eager, output_attentions) from the reference venv when there is one, each
at the same thread count: torch.set_num_threads(n); ATTN_THREADS=n for attn with BLAS held
at 1; OPENBLAS_NUM_THREADS=n for the old tree, which had no threads of its own. Medians of
each child's timed passes; the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

# The children are long512's own (the same forward pass, timed the same way).
from scale_long512 import ATTN_LONG_CHILD as ATTN_CHILD  # noqa: E402
from scale_long512 import TRANSFORMERS_LONG_CHILD as TORCH_CHILD  # noqa: E402
from scale_long512 import long_text  # noqa: E402

SENTENCE = "The Transformer is making it possible to understand language."


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", type=Path, help="a directory holding an older attn_cli package to compare with")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--case", choices=("long512", "sentence"), default="long512")
    ap.add_argument("--no-torch", action="store_true")
    args = ap.parse_args()

    if args.case == "long512":
        text, _ = long_text(512)
    else:
        text = SENTENCE
    work = Path(tempfile.mkdtemp(prefix="micro_forward."))
    (work / "text.txt").write_text(text, encoding="utf-8")
    ref = os.environ.get("ATTN_REFENV", "/work/refenv") + "/bin/python"
    variants = []
    for threads in args.threads:
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", ATTN_THREADS=str(threads))
        env.pop("PYTHONPATH", None)
        variants.append((f"attn  t={threads}", [sys.executable, "-c", ATTN_CHILD], env))
        if args.base is not None:
            # The old tree threads through BLAS, if at all: give it both ways of asking.
            old = env | {"PYTHONPATH": str(args.base), "OPENBLAS_NUM_THREADS": str(threads)}
            variants.append((f"base  t={threads}", [sys.executable, "-c", ATTN_CHILD], old))
        if not args.no_torch and Path(ref).is_file():
            tenv = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")} | {"HF_HUB_OFFLINE": "1"}
            variants.append((f"torch t={threads}", [ref, "-c", TORCH_CHILD], tenv))
    times: dict[str, list[float]] = {label: [] for label, *_ in variants}
    print(f"load before: {loadavg()}", file=sys.stderr)
    for r in range(args.rounds):
        order = variants[r % len(variants) :] + variants[: r % len(variants)]
        for label, argv, env in order:
            threads = int(label.split("t=")[1])
            query = 5 if args.case == "long512" else 2
            params = {"text": str(work / "text.txt"), "query_index": query, "warmup": args.warmup, "runs": args.runs, "threads": threads}
            # cwd: not the checkout, since `python -c` puts the cwd first on sys.path (it would shadow --base)
            run = subprocess.run(argv + [json.dumps(params)], env=env, capture_output=True, text=True, check=False, cwd=work)
            if run.returncode != 0:
                sys.exit(f"{label} failed:\n{run.stderr[-2000:]}")
            got = json.loads(run.stdout.strip().splitlines()[-1])["times"]
            times[label] += got
            print(f"  round {r + 1} {label}: {statistics.median(got) * 1000:.1f} ms  (load {loadavg()})", file=sys.stderr)
    print(f"load after: {loadavg()}")
    for label, t in times.items():
        print(f"{label}: median {statistics.median(t) * 1000:.1f} ms  min {min(t) * 1000:.1f}  n={len(t)}")
    for threads in args.threads:
        a, tt = times.get(f"attn  t={threads}"), times.get(f"torch t={threads}")
        if a and tt:
            print(f"attn/torch at {threads} thread(s): {statistics.median(a) / statistics.median(tt):.2f}x")
        b = times.get(f"base  t={threads}")
        if a and b:
            print(f"attn/base at {threads} thread(s): {statistics.median(a) / statistics.median(b):.2f}x")


if __name__ == "__main__":
    main()
