"""The screen of `attn inspect` as plain text, for a stdout that shows no colour (a pipe, a file),
written without Rich: the same characters the Rich view prints there, at a fraction of the cost
(importing Rich's console and laying out its tables was ~40 ms of a ~200 ms start).

`inspect_text` returns None wherever it cannot promise those very characters, and the caller
lets Rich draw the screen: --steps, a line wider than the screen (Rich would wrap it), a step-2
table that must shrink, a character that is not printable or not one cell wide (escapes, CJK,
emoji). tests/test_plain_screen.py checks it against the Rich view over many screens and widths.
"""

from __future__ import annotations

from ...compute.result import HeadResult, InspectResult, LayerResult
from ..palette import weight_text
from .inspect_parts import (
    _LABEL_WIDTH,
    LEGEND_TAIL,
    LEGEND_WEIGHTS,
    STEPS_HINT,
    _position,
    _row_groups,
    bar,
    grid_blocks,
    grid_widths,
    header_parts,
    label_text,
    layer_title,
    masked_text,
    mean_rows_note,
    multihead_title,
    step2_fit,
    step2_headers,
    step2_rows,
    step2_title,
    sum_line,
    top_items,
)


class _Unsure(Exception):
    """This screen is Rich's to draw."""


def inspect_text(result: InspectResult, width: int) -> str | None:
    """The screen `inspect_view` prints at `width` columns without colour, or None (see the module)."""
    if any(h.steps is not None for layer in result.layers for h in layer.heads):
        return None
    shown = [result.model.name, result.query.text, *result.notes, *(u.text for u in result.units)]
    shown += [w.text for layer in result.layers for h in layer.heads for w in h.top]
    if not all(_narrow(text) for text in shown):  # checked whole, before any is cut to a width
        return None
    try:
        lines = list(_lines(result, width))
    except _Unsure:
        return None
    if not all(len(line) <= width and _narrow(line) for line in lines):
        return None
    return "".join(line + "\n" for line in lines)


def _narrow(text: str) -> bool:
    """Printable, and one cell a character (so that lengths are widths), by Rich's own measure."""
    if text.isascii():
        return text.isprintable()
    from rich.cells import cell_len  # light: no console

    return text.isprintable() and cell_len(text) == len(text)


def _lines(result: InspectResult, width: int):
    yield "".join(text for text, _ in header_parts(result))
    yield from (f"note: {note}" for note in result.notes)
    for layer in result.layers:
        for head_id in layer.focus:
            head = layer.head(head_id)
            yield from ("", layer_title(result, layer, head_id, head), step2_title(result, layer))
            if (note := mean_rows_note(result, head)) is not None:
                yield note
            yield from _step2(result, layer, head, width)
            yield sum_line(head)
            title, items = top_items(head, result.rank_by)
            yield from _items(title, [text + value for text, _, value in items], [], width)
        yield from ("", multihead_title(result, layer))
        yield from _grid(result, layer, width)
        title, items = top_items(layer.head("mean"))
        yield from _items(title, [text + value for text, _, value in items], ["  (mean over heads)"], width)
    yield "colour: weight " + "".join(f" {weight_text(w)} " for w in LEGEND_WEIGHTS) + LEGEND_TAIL
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


def _fit(text: str, width: int) -> str:
    """Rich's `Text.truncate(width, overflow="ellipsis", pad=True)` of narrow text."""
    return text[: width - 1] + "…" if len(text) > width else text.ljust(width)


def _step2(result: InspectResult, layer: LayerResult, head: HeadResult, max_width: int) -> list[str]:
    """The step-2 table as Rich lays it out when it fits: SIMPLE_HEAD, no edge, one cell of
    padding, columns as wide as their widest cell; a table that must shrink is Rich's."""
    headers, scored, norms = step2_headers(result, head, layer)
    table = step2_rows(result, layer, head, scored, norms)
    rows, weights = [cells for cells, *_ in table], [weight for _, weight, *_ in table]
    natural = [max(len(headers[c]), *(len(r[c]) for r in rows)) for c in range(len(headers))]
    label, bar_width, width = step2_fit(natural, norms, max_width)
    if width > max_width:
        raise _Unsure()
    widths = [label if c == 1 else natural[c] for c in range(len(headers))]
    cells = [[h if c != 1 else _fit(h, label) for c, h in enumerate(headers)]]
    cells += [[_fit(v, label) if c == 1 else v for c, v in enumerate(r)] for r in rows]
    if bar_width:
        bars = [bar(w, bar_width) if w is not None else "" for w in weights]
        widths.append(max(len(b) for b in bars))
        cells[0].append("")
        for row, b in zip(cells[1:], bars):
            row.append(b)
    if sum(widths) + 3 * (len(widths) - 1) > max_width:
        raise _Unsure()
    left = {1} | ({len(widths) - 1} if bar_width else set())  # left-justified: the label and the bar
    lines = [" ".join(_row(cells[0], widths, left)), "─" * (sum(widths) + 3 * (len(widths) - 1))]
    return [lines[0], lines[1], *(" ".join(_row(r, widths, left)) for r in cells[1:])]


def _row(cells: list[str], widths: list[int], left: set[int]) -> list[str]:
    """Cells padded to their columns, with a space inside each gap on either side (none at the edges)."""
    last = len(widths) - 1
    out = []
    for c, (cell, w) in enumerate(zip(cells, widths)):
        text = cell.ljust(w) if c in left else cell.rjust(w)
        out.append(("" if c == 0 else " ") + text + ("" if c == last else " "))
    return out


def _grid(result: InspectResult, layer: LayerResult, max_width: int):
    """`_HeadGrid`'s lines, uncoloured."""
    rows = []
    for group in _row_groups(result, layer):
        if group[0] == "masked":
            rows.append((*masked_text(result, group[1], group[2]), None))
        else:
            i = group[1]
            rows.append((_position(result, i), label_text(result, i)[0], [float(h.weights[i]) for h in layer.heads]))
    number = max(len(r[0]) for r in rows)
    name = min(_LABEL_WIDTH, max(len(result.level), *(len(r[1]) for r in rows)))
    widths = grid_widths(layer)
    for start, stop in grid_blocks(widths, max_width - number - name - 1):
        header = f"{'#':>{number}} {result.level:<{name}}" + "".join(
            " " + f"{'mean' if h.head == 'mean' else str(h.head):>{w}}" for h, w in zip(layer.heads[start:stop], widths[start:stop])
        )
        yield header
        yield "─" * len(header)
        for position, label, weights in rows:
            cells = (f"{'·':>{widths[k]}}" if weights is None else f"{weight_text(weights[k]):>{widths[k]}}" for k in range(start, stop))
            yield f"{position:>{number}} {_fit(label, name)}" + "".join(" " + c for c in cells)
