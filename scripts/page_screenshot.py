"""Write docs/page.png, the README's picture of the interactive page.

    uv run python scripts/page_screenshot.py [--out docs/page.png]

It writes the page of the README's sentence (`attn plot … -q making -o page.html`, the bundled
MiniLM), opens it in Debian's headless Chromium (/usr/bin/chromium, through Playwright; no
browser is downloaded), picks layer 2 and every head ("all", the head view in colours) and
screenshots the top of the page: the menus, the head view and the query's weights.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SENTENCE = "The Transformer is making it possible to understand language."
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "page.png")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as work:
        page_file = Path(work) / "page.html"
        attn = Path(sys.executable).parent / "attn"
        subprocess.run([str(attn), "plot", SENTENCE, "-q", "making", "-o", str(page_file)], check=True, stdout=subprocess.DEVNULL)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1100, "height": 620}, device_scale_factor=1)
            page.goto(page_file.as_uri())
            page.wait_for_selector(".attn-page[data-ready=true]")
            page.get_by_label("Layer").select_option("2")
            page.get_by_label("Head").select_option("all")
            page.screenshot(path=str(args.out), clip={"x": 0, "y": 0, "width": 1100, "height": 620})
            browser.close()
    print(args.out)


if __name__ == "__main__":
    main()
