"""Write docs/explore.svg: the README's screenshot of `attn explore`, as Textual exports it.

    uv run python scripts/explore_screenshot.py

The bundled MiniLM on the README's sentence, query "making", at 80×24, after `a` (every head
of the last layer, the head chosen by --head auto marked).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from attn_cli.compute.explore import trace_text
from attn_cli.loading.model import load_model
from attn_cli.views.explorer.app import Explorer
from attn_cli.views.explorer.state import start_view

SENTENCE = "The Transformer is making it possible to understand language."
OUT = Path(__file__).resolve().parent.parent / "docs" / "explore.svg"


async def main() -> None:
    traced = trace_text(load_model(), SENTENCE)
    app = Explorer(traced, start_view(traced, "making", None, "-1", "auto"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("a")
        await pilot.pause()
        OUT.write_text(app.export_screenshot(title="attn explore"), encoding="utf-8")
    print(OUT)


if __name__ == "__main__":
    asyncio.run(main())
