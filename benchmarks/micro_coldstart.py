"""What each cold-start saving of `attn inspect` is worth, part by part, old way against new.

    uv run python benchmarks/micro_coldstart.py [--runs 15]

Every sample is a fresh process (imports are the point), A and B alternating, medians printed
with the load average. Each process times only its part, after importing the import floor
(numpy, tokenizers, rich, typer), so interpreter start-up noise stays out of the figures:

  typer       building the whole app's Click commands  vs  only `inspect`'s (lazy loading)
  tokenizer   Tokenizer.from_file(tokenizer.json)      vs  load_tokenizer (vocab.txt, once proved)
  screen      the Rich view rendered to a string       vs  views.terminal.plain (no Rich console)
  teardown    the floor, exiting as Python does        vs  the floor, ending with os._exit
              (whole processes, wall time: teardown happens after any timer inside could stop)
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

FLOOR = "import numpy, tokenizers, rich, typer, time, os, sys\n"
SENTENCE = "The Transformer is making it possible to understand language."
RESULT = (
    "from attn_cli.compute.inspect import inspect\nfrom attn_cli.loading.model import load_model\n"
    f"r = inspect(load_model(None), {SENTENCE!r}, query='making')\n"
)
PARTS = {
    "typer": (
        FLOOR + "import typer.main\nt = time.perf_counter()\nfrom attn_cli.cli.commands import full_app\ntyper.main.get_command(full_app())\n",
        FLOOR + "import typer.main\nt = time.perf_counter()\nfrom attn_cli.cli.commands import app_for\ntyper.main.get_command(app_for(['inspect']))\n",
    ),
    "tokenizer": (
        FLOOR + "from attn_cli.loading.model import bundled_model_path\np = bundled_model_path() / 'tokenizer.json'\n"
        "t = time.perf_counter()\nfrom tokenizers import Tokenizer\nTokenizer.from_file(str(p))\n",
        FLOOR + "from attn_cli.loading.model import bundled_model_path\np = bundled_model_path() / 'tokenizer.json'\n"
        "from attn_cli.loading.tokenizer import load_tokenizer\nload_tokenizer(p)\n"  # makes the proof if it is missing
        "t = time.perf_counter()\nload_tokenizer(p)\n",
    ),
    "screen": (
        FLOOR + RESULT + "t = time.perf_counter()\nimport io\nfrom rich.console import Console\n"
        "from attn_cli.views.terminal.inspect import inspect_view\nfrom attn_cli.cli.common import write_screen\n"
        "sys.stdout = io.StringIO()\nwrite_screen(inspect_view(r), Console(force_terminal=False, width=80))\nsys.stdout = sys.__stdout__\n",
        FLOOR + RESULT + "t = time.perf_counter()\nfrom attn_cli.views.terminal.plain import inspect_text\nassert inspect_text(r, 80)\n",
    ),
}
TEARDOWN = (["-c", "import numpy, tokenizers, rich, typer"], ["-c", "import numpy, tokenizers, rich, typer, os; os._exit(0)"])


def _timed(code: str) -> float:
    """Milliseconds the snippet reports for its part (from `t` to its end)."""
    done = subprocess.run([sys.executable, "-c", code + "sys.__stdout__.write(f'{(time.perf_counter() - t) * 1000:.3f}')\n"],
                          capture_output=True, text=True, check=True, env={"OPENBLAS_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    return float(done.stdout)


def _wall(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], check=True)
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    print(f"load average at start: {open('/proc/loadavg').read().split()[:3]}")
    print(f"{'part':10s} {'before ms':>10s} {'after ms':>10s} {'saved ms':>9s}")
    jobs = {name: (lambda a=a: _timed(a), lambda b=b: _timed(b)) for name, (a, b) in PARTS.items()}
    jobs["teardown"] = (lambda: _wall(TEARDOWN[0]), lambda: _wall(TEARDOWN[1]))
    for name, (before, after) in jobs.items():
        before(), after()  # warm-up: page cache, and the tokenizer's proof
        samples = [[], []]
        for i in range(runs):
            for k, job in ((0, before), (1, after)) if i % 2 == 0 else ((1, after), (0, before)):
                samples[k].append(job())
        a, b = statistics.median(samples[0]), statistics.median(samples[1])
        print(f"{name:10s} {a:10.1f} {b:10.1f} {a - b:9.1f}")
    print(f"load average at end: {open('/proc/loadavg').read().split()[:3]}")


if __name__ == "__main__":
    main()
