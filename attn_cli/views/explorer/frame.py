"""The explorer's screen as lines of Rich `Text`, region by region, without Textual.

`screen_parts` is what the app shows for a view (it fills its widgets from it); `first_frame`
lays the same parts out as a whole terminal screen, which `FirstFrame` writes before Textual is
even imported: Textual's import and start take ~250 ms, longer than the forward pass
of a sentence, and the numbers can be on the screen meanwhile. Textual then takes over the same
(alternate) screen and draws the same text in its own colours.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

from rich.text import Text

from ...compute.explore import TracedText
from ...errors import AttnError, phrased
from .lines import Lines, Pane, header, heads_pane, steps_pane, title, token_strip, weights_pane
from .model_lines import contrib_pane, grid_pane, rollout_pane
from .state import View, footer


@dataclass
class Parts:
    """The screen from top to bottom: `header`, `title`, `strip` and the pane's `columns` pinned
    above its scrolled `body`; the pane's `below` and the `keys` pinned under it."""

    header: list[Text]
    title: list[Text]
    strip: list[Text]
    pane: Pane
    keys: list[Text]
    rendered: dict = field(default_factory=dict, compare=False, repr=False)  # what the app's widget made of the pinned lines (their strips), kept with them


def screen_parts(traced: TracedText, view: View, width: int, height: int, console) -> Parts:
    """What the explorer shows for `view` on a `width`×`height` screen (every number read from
    the traced text through the functions of `attn inspect`)."""
    width = max(20, width)
    result = traced.inspect(**view.query_args(), **view.inspect_options())
    strip_lines = 3 if height <= 30 else min(8, height // 6)
    return Parts(
        header=list(header(result, view).wrap(console, width)),
        title=[title(result, view)],
        strip=token_strip(result, view, width, strip_lines) + [Text("")],
        pane=_pane(traced, view, result, width, console),
        keys=list(keys_line(traced.model.has_cross_attention).wrap(console, width)),
    )


def _pane(traced: TracedText, view: View, result, width: int, console) -> Pane:
    if view.mode == "heads":
        return heads_pane(result, view, width, console)
    if view.mode == "steps":
        return steps_pane(result, view, width, console)
    if view.mode == "rollout":
        return rollout_pane(traced.rollout(**view.query_args(), level=view.level), width, console)
    if view.mode == "grid":
        return grid_pane(traced.heads(**view.query_args()), view, width)
    if view.mode == "contrib":
        try:
            return contrib_pane(traced.contributions(**view.query_args()), view, width, console)
        except AttnError as exc:  # a family ALTI does not cover: say so in the pane
            message, fix = phrased(exc.message, ELSEWHERE), phrased(exc.fix, ELSEWHERE)
            return Pane([Text(f"{message} — {fix}", style="yellow")], Lines(0, Text))
    return weights_pane(result, view, width, console)


# The methods the explorer does not run, as the command that does (the library names them as arguments).
ELSEWHERE = {"method='value-zeroing'": "attn contrib --method value-zeroing", "method='norms'": "--method norms"}


def keys_line(cross: bool = False) -> Text:
    """The footer: each key and its word, clickable as the key would be; `k` (the attention
    kind) only with `cross`, a model that has cross-attention."""
    actions = {"←→": None, "↑↓": None, "][": None, "m": "mean", "a": "mode('heads')", "s": "mode('steps')", "w": "level", "n": "norms",
               "r": "mode('rollout')", "g": "mode('grid')", "k": "kind", "/": "find", "e": "export", "?": "help", "q": "quit"}
    text = Text()
    for key, word in footer(cross):
        start = len(text)
        text.append(key, "bold reverse")
        text.append(f" {word}  ")
        if actions[key]:
            text.apply_meta({"@click": f"app.{actions[key]}"}, start, len(text))
    return text


def scroll_start(body: Lines, rows: int, top: int = 0) -> int:
    """The first body line in sight: `top` unless the focus (the query's row) would be out of
    sight, then the focus half-way down; never past the last screenful."""
    if body.focus is not None and rows and not top <= body.focus < top + rows:
        top = body.focus - rows // 2
    return max(0, min(top, len(body) - rows))


def first_frame(parts: Parts, width: int, height: int) -> list[Text]:
    """The `height` lines of the screen as the app lays `parts` out: the pinned parts, the body
    in the rows left (one column narrower when it scrolls: the scroll bar's)."""
    top = parts.header + parts.title + parts.strip + parts.pane.columns
    bottom = parts.pane.below + parts.keys
    rows = max(0, height - len(top) - len(bottom))
    body = parts.pane.body
    start = scroll_start(body, rows)
    inner = width - 1 if len(body) > rows else width
    shown = [body.line(i)[:inner] for i in range(start, min(len(body), start + rows))]
    return (top + shown + [Text("")] * (rows - len(shown)) + bottom)[:height]


class FirstFrame:
    """The first frame on the terminal (stderr, the alternate screen, keys unechoed until Textual
    reads them), and how to take it down again if Textual never takes over."""

    def __init__(self, traced: TracedText, view: View) -> None:
        import termios
        from shutil import get_terminal_size

        from rich.console import Console

        self.handed_over = False  # set by the app's driver once Textual owns the terminal
        width, height = get_terminal_size()
        console = Console(file=sys.__stderr__, width=width, height=height)
        lines = first_frame(screen_parts(traced, view, width, height, console), width, height)
        self._stdin = sys.stdin.fileno()
        self._attributes = termios.tcgetattr(self._stdin)
        quiet = termios.tcgetattr(self._stdin)
        quiet[3] &= ~(termios.ECHO | termios.ICANON)  # keys typed now wait, unechoed, for Textual
        termios.tcsetattr(self._stdin, termios.TCSANOW, quiet)
        console.set_alt_screen(True)
        console.show_cursor(False)
        for n, line in enumerate(lines):
            console.print(line, end="\n" if n < len(lines) - 1 else "", no_wrap=True, overflow="crop", crop=True, soft_wrap=False)
        console.file.flush()

    def close(self) -> None:
        """Give the terminal back as it was: Textual leaves the alternate screen itself, if it
        started; the echo and line mode are ours to restore."""
        import termios

        if not self.handed_over:
            os.write(sys.__stderr__.fileno(), b"\x1b[?1049l\x1b[?25h")
        termios.tcsetattr(self._stdin, termios.TCSANOW, self._attributes)
