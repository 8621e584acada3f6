"""Snapshots of the explorer's main views: the screen as text (readable diffs) and as the SVG
Textual exports (colours: heat, masked keys, the marked query), compared with the committed
files in tests/snapshots/explore/. After a deliberate change of the screen, rewrite them with
`ATTN_UPDATE_SNAPSHOTS=1 uv run pytest tests/test_explore_snapshots.py` and review the diff."""

from __future__ import annotations

import asyncio
import io
import os
from pathlib import Path

import pytest
from conftest import SENTENCE
from rich.console import Console

from attn_cli.compute.explore import trace_text
from attn_cli.loading.model import load_model
from attn_cli.views.explorer.app import Explorer
from attn_cli.views.explorer.frame import first_frame, screen_parts
from attn_cli.views.explorer.state import start_view

SNAPSHOTS = Path(__file__).parent / "snapshots" / "explore"
LLAMA = Path(__file__).parent / "fixtures" / "tiny" / "llama"
CAT = "The cat sat on the mat because it was tired."

CASES = {
    # name: (model, text, query, head, keys, size)
    "weights": (None, SENTENCE, "making", "auto", [], (80, 24)),
    "heads": (None, SENTENCE, "making", "auto", ["a"], (80, 24)),
    "steps": (None, SENTENCE, "making", "auto", ["s"], (80, 24)),
    "rollout": (None, SENTENCE, "making", "auto", ["r"], (80, 24)),
    "grid": (None, SENTENCE, "making", "auto", ["g", "down"], (80, 24)),
    "words_norms": (None, SENTENCE, "making", "auto", ["w", "n"], (80, 24)),
    "wide_heads": (None, SENTENCE, "making", "auto", ["a"], (160, 40)),
    "decoder": (LLAMA, CAT, "sat", "2", [], (80, 24)),
    "decoder_steps": (LLAMA, CAT, "sat", "2", ["s"], (160, 40)),
}


@pytest.fixture(scope="module")
def traced():
    return {None: trace_text(load_model(), SENTENCE), LLAMA: trace_text(load_model(LLAMA), CAT)}


def screens(traced_text, view, keys, size) -> tuple[str, str]:
    async def go():
        app = Explorer(traced_text, view)
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            for key in keys:
                await pilot.press(key)
                await pilot.pause()
            console = Console(width=size[0], height=size[1], file=io.StringIO(), record=True, force_terminal=True, color_system="truecolor")
            console.print(app.screen._compositor.render_update(full=True))
            return console.export_text(), app.export_screenshot(title="attn explore")

    return asyncio.run(go())


@pytest.mark.parametrize("name", CASES)
def test_snapshot(traced, name):
    model, text, query, head, keys, size = CASES[name]
    view = start_view(traced[model], query, None, "-1", head)
    shown, svg = screens(traced[model], view, keys, size)
    text_file, svg_file = SNAPSHOTS / f"{name}.txt", SNAPSHOTS / f"{name}.svg"
    if os.environ.get("ATTN_UPDATE_SNAPSHOTS"):
        SNAPSHOTS.mkdir(parents=True, exist_ok=True)
        text_file.write_text(shown, encoding="utf-8")
        svg_file.write_text(svg, encoding="utf-8")
    assert shown == text_file.read_text(encoding="utf-8")
    assert svg == svg_file.read_text(encoding="utf-8"), f"the colours of {name} changed (the text did not): see {svg_file}"


@pytest.mark.parametrize("name", ["weights", "decoder"])
def test_the_first_frame_is_the_screen_the_app_then_shows(traced, name):
    """The frame painted before Textual loads has the app's very text, line for line."""
    model, text, query, head, keys, (width, height) = CASES[name]
    view = start_view(traced[model], query, None, "-1", head)
    console = Console(width=width, height=height, file=io.StringIO())
    frame = first_frame(screen_parts(traced[model], view, width, height, console), width, height)
    shown = (SNAPSHOTS / f"{name}.txt").read_text(encoding="utf-8").splitlines()
    assert [line.plain.rstrip() for line in frame] == [line.rstrip() for line in shown]
