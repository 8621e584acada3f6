"""A headless Chromium for the page's browser tests: Debian's /usr/bin/chromium (which .ci/run
installs), driven by Playwright for Python. `playwright install` is never run: no browser is
downloaded. Outside CI a missing Chromium or Playwright skips the tests; in CI it fails them."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("ATTN_CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def missing(why: str):
    if os.environ.get("CI"):
        pytest.fail(f"{why}: CI must have it (.ci/run installs Debian's chromium; the dev group has playwright)")
    pytest.skip(why)


def launch(playwright):
    """The system Chromium, headless, with nothing of its own reaching the network."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)


@pytest.fixture(scope="module")
def browser():
    """Module scope, not session: while Playwright's sync API is started it marks its own event loop
    as the main thread's running loop (between calls too), so every later `asyncio.run` (Textual's
    run_test in tests/test_explore*.py) would fail with "cannot be called from a running event
    loop". Stopped at the end of the module, it leaves no loop behind for the tests after it."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright is not installed (uv sync --group dev)")
    if not CHROMIUM.exists():
        missing(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()
    assert asyncio._get_running_loop() is None, "Playwright left its event loop marked as running"


class Opened:
    """A page opened from file://, with what it logged and every URL it asked for."""

    def __init__(self, browser, path: Path) -> None:
        self.page = browser.new_page(viewport={"width": 1400, "height": 1000})
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type in ("error", "warning") else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(path.resolve().as_uri())
        self.page.wait_for_selector(".attn-page[data-ready=true]", timeout=30_000)

    def weights(self) -> list[str]:
        """The weights column of the numbers panel, as shown."""
        return self.page.locator("table.weights td.weight").all_inner_texts()
