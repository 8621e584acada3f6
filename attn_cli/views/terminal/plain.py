"""The screen of `attn inspect` as plain text, for a stdout that shows no colour (a pipe, a file),
written without Rich: the same characters the Rich view prints there, at a fraction of the cost
(importing Rich's console and laying out its tables was ~40 ms of a ~200 ms start).

`inspect_text` returns None wherever it cannot promise those very characters, and the caller
lets Rich draw the screen: --steps, a line wider than the screen (Rich would wrap it), a
character that is not printable or not one cell wide (escapes, CJK, emoji). The tables come
from the same Rich-free layout as the Rich view's (`fit`, `inspect_parts`).
tests/test_plain_screen.py checks it against the Rich view over many screens and widths.
"""

from __future__ import annotations

from ...compute.result import InspectResult
from .fit import plain
from .inspect_parts import (
    STEPS_HINT,
    folded_line,
    grid_lines,
    header_parts,
    layer_title,
    masked_legend,
    mean_rows_note,
    multihead_title,
    step2_layout,
    step2_title,
    sum_line,
    top_items,
    top_rows,
    window_note,
)


def inspect_text(result: InspectResult, width: int, rows: str = "all") -> str | None:
    """The screen `inspect_view` prints at `width` columns without colour, or None (see the module)."""
    if any(h.steps is not None for layer in result.layers for h in layer.heads):
        return None
    shown = [result.model.name, result.query.text, *result.notes, *(u.text for u in result.units)]
    shown += [w.name for layer in result.layers for h in layer.heads for w in h.top]
    if not all(_narrow(text) for text in shown):  # checked whole, before any is cut to a width
        return None
    lines = list(_lines(result, width, rows))
    if not all(len(line) <= width and _narrow(line) for line in lines):
        return None
    return "".join(line + "\n" for line in lines)


def _narrow(text: str) -> bool:
    """Printable, and one cell a character (so that lengths are widths), by Rich's own measure."""
    if text.isascii():
        return text.isprintable()
    from rich.cells import cell_len  # light: no console

    return text.isprintable() and cell_len(text) == len(text)


def _lines(result: InspectResult, width: int, rows: str):
    yield "".join(text for text, _ in header_parts(result))
    yield from (f"note: {note}" for note in result.notes)
    for layer in result.layers:
        for head_id in layer.focus:
            head = layer.head(head_id)
            keep = top_rows(result, [head]) if rows == "top" else None
            yield from ("", layer_title(result, layer, head_id, head), step2_title(result, layer))
            if (note := mean_rows_note(result, head)) is not None:
                yield note
            yield from map(plain, step2_layout(result, layer, head, keep).lines(width))
            yield from (line for line in (folded_line(result, layer, head, keep), window_note(result, layer)) if line)
            yield sum_line(head)
            title, items = top_items(head, result.rank_by)
            yield from _items(title, [text + value for text, _, value in items], [], width)
        yield from ("", multihead_title(result, layer))
        yield from map(plain, grid_lines(result, layer, width, top_rows(result, layer.heads) if rows == "top" else None))
        title, items = top_items(layer.head("mean"))
        yield from _items(title, [text + value for text, _, value in items], ["  (mean over heads)"], width)
    if (masked := masked_legend(result)) is not None:
        yield masked
    yield STEPS_HINT


def _items(title: str, items: list[str], tail: list[str], width: int) -> list[str]:
    """`Items.lines`: the items joined by " · ", wrapped only between items."""
    out, line = [], title
    for sep, item in [(" · " if n else "", item) for n, item in enumerate(items)] + [("", t) for t in tail]:
        if len(line) + len(sep) + len(item) > width and line.strip():
            out.append(line)
            line, sep = "  ", ""
        line += sep + item
    return [*out, line]
