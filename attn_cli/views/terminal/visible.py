"""Renderables with their text made printable (`views.text.printable`) before Rich lays them out.

A token can hold a NUL, a right-to-left override or a zero-width space. Escaped after Rich has
measured the table (`\\x00` is four cells where the raw NUL was none), its row would be wider
than the rest; escaped before, every width Rich computes is the width printed. Every screen
goes through `visible` on its way out (`cli.common.write_screen`), so no view has to remember.

It reaches the text of what the views build: strings, `Text`, Rich tables (headers, cells,
footers, title, caption), groups, and any renderable that keeps its text in `Text` attributes
or lists of them (`inspect.Items`). A renderable that measures its own strings (`fit.Table`'s
lines, say) escapes them itself, before measuring. Line breaks in a `Text` are layout, kept.
"""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from ..text import printable


def _kept(ch: str) -> bool:
    return ch == "\n" or ch.isprintable()


def visible_str(text: str) -> str:
    """`text` escaped but for its line breaks (a view's own)."""
    if text.isprintable():
        return text
    return "\n".join(printable(line) for line in text.split("\n"))


def visible_text(text: Text) -> Text:
    """`text` escaped, its styles kept on the characters they covered (an escape takes the
    style of the character it stands for)."""
    plain = text.plain
    if all(_kept(ch) for ch in plain):
        return text
    shown = [ch if _kept(ch) else printable(ch) for ch in plain]
    starts = [0]
    for piece in shown:
        starts.append(starts[-1] + len(piece))
    out = text.blank_copy("".join(shown))
    for span in text.spans:
        out.stylize(span.style, starts[span.start], starts[min(span.end, len(plain))])
    return out


def visible(renderable):
    """`renderable` with every text it holds escaped (tables and groups are changed in place:
    they are built to be printed once)."""
    if isinstance(renderable, str):
        return visible_str(renderable)
    if isinstance(renderable, Text):
        return visible_text(renderable)
    if isinstance(renderable, Table):
        for column in renderable.columns:
            column.header, column.footer = visible(column.header), visible(column.footer)
            column._cells = [visible(cell) for cell in column._cells]
        renderable.title, renderable.caption = visible(renderable.title), visible(renderable.caption)
        return renderable
    if isinstance(renderable, Group):
        renderable._renderables = [visible(r) for r in renderable._renderables]
        return renderable
    if hasattr(renderable, "__rich_console__") and hasattr(renderable, "__dict__"):
        for name, value in vars(renderable).items():  # a view's own renderable: its Text parts
            if isinstance(value, Text):
                setattr(renderable, name, visible_text(value))
            elif isinstance(value, list) and value and all(isinstance(v, Text) for v in value):
                setattr(renderable, name, [visible_text(v) for v in value])
    return renderable
