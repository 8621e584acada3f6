"""Benchmark of the interactive page (`attn plot TEXT -q WORD -o page.html`): its size, the time
to write it, and the time a browser takes to show it.

Run from the repo root (needs the test group's SmolLM2 and Debian's /usr/bin/chromium):

    uv run --group test python benchmarks/bench_page.py [--runs 5] [--markdown PATH]

Texts: sample_inputs/sentences.txt, cut to the longest run of its words that is at most 128
tokens for each model (all-MiniLM-L6-v2, 6 × 12 heads; SmolLM2-135M, 30 × 9 heads, 3 key/value
heads), query "it".

- Size: the page's bytes, and those of its two packed arrays (every row's weights in hundredths;
  the keys in float16). Target: under 5 MB.
- Write: a fresh `attn plot … -o page.html` process, against the reference measured
  interleaved in the same run: a fresh `attn inspect … --layer all --head all --json` (the
  query's rows in every layer and head, which the page holds too), medians over `--runs`.
- Load: headless Chromium (Playwright) from `goto(file://…)` to the page's `data-ready` mark
  (the blob parsed, the weights inflated, the head view, the model view's thumbnails and the
  steps drawn), against loading the `--static` table of the same text, medians over `--runs`
  fresh tabs.

This is a benchmark, not a test: it prints a table and never fails on a number.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, find_attn, loadavg, machine_info, md_table, run_process  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TARGET_BYTES = 5_000_000


def text_of(model: str | None, tokens: int = 128) -> tuple[str, int]:
    """The longest prefix of sample_inputs/sentences.txt's words (repeated) that `model` reads
    as at most `tokens` tokens, and its length in tokens."""
    import attn_cli as attn

    m = attn.load_model(model)
    words = (ROOT / "sample_inputs" / "sentences.txt").read_text(encoding="utf-8").split() * 3
    best = (words[0], 0)
    for n in range(1, len(words)):
        text = " ".join(words[:n])
        count = len(attn.tokenize(m, text).tokens)
        if count > tokens:
            break
        best = (text, count)
    return best


def load_ms(browser, path: Path, ready: str) -> float:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    start = time.perf_counter()
    page.goto(path.as_uri())
    page.wait_for_selector(ready, timeout=120_000)
    took = (time.perf_counter() - start) * 1000
    page.close()
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--markdown", type=Path, help="also write the report as Markdown")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from attn_cli.views.page import page_data  # noqa: F401  (fails early if the package is not importable)

    attn, load_start, rows = str(find_attn()), loadavg(), []
    work = Path(tempfile.mkdtemp(prefix="attn-bench-page-"))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for name, model in (("all-MiniLM-L6-v2", None), ("SmolLM2-135M", "smollm2")):
            text, tokens = text_of(model)
            flags = [] if model is None else ["-m", model]
            page, static = work / f"{name}.html", work / f"{name}-static.html"
            write, inspect = [], []
            for _ in range(args.runs):  # interleaved, so that the machine's load hits both alike
                write.append(run_process([attn, "plot", text, "-q", "it", *flags, "-o", str(page)]).wall * 1000)
                inspect.append(run_process([attn, "inspect", text, "-q", "it", *flags, "--layer", "all", "--head", "all", "--json"]).wall * 1000)
            run_process([attn, "plot", text, "-q", "it", *flags, "--static", "-o", str(static)])
            loads, statics = [], []
            for _ in range(args.runs):
                loads.append(load_ms(browser, page, ".attn-page[data-ready=true]"))
                statics.append(load_ms(browser, static, "table"))
            blob = _blob(page)
            size = page.stat().st_size
            w, s, lw, ls = (statistics.median(x) for x in (write, inspect, loads, statics))
            rows.append([
                name, str(tokens), f"{size / 1e6:.2f} MB", f"{len(blob['weights']['data']) / 1e6:.2f} / {len(blob['keys']['data']) / 1e6:.2f} MB",
                "PASS" if size < TARGET_BYTES else "MISS", f"{w:.0f} ms", f"{s:.0f} ms", f"{w / s:.2f}×", f"{lw:.0f} ms", f"{ls:.0f} ms", f"{lw / ls:.1f}×",
            ])
        browser.close()
    header = ["model", "tokens", "page", "weights / keys (base64)", "< 5 MB", "write", "inspect --json", "ratio", "load", "load --static", "ratio"]
    lines = md_table(header, rows) + [""] + [f"- {k}: {v}" for k, v in machine_info({}, load_start, [("Chromium", _chromium_version())])]
    report = "\n".join(lines)
    print(report)
    if args.markdown:
        args.markdown.write_text(report + "\n", encoding="utf-8")


def _blob(path: Path) -> dict:
    import json
    import re

    (text,) = re.findall(r'<script type="application/json" class="attn-data">(.*?)</script>', path.read_text(encoding="utf-8"), re.S)
    return json.loads(text.replace("<\\/", "</"))


def _chromium_version() -> str:
    import subprocess

    return subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True).stdout.strip()


if __name__ == "__main__":
    main()
