"""Tables laid out to the width of the screen without cutting a number.

A table is columns of cells. When it is wider than the screen it gives way in the order its
`plan` names — a bar shrinks, then goes; vectors lose elements (elided with …); labels are cut
with … — and the columns that still do not fit are folded: they go to further blocks below,
each block repeating the key columns (#, the token). Numbers are never cut, a word and its
number (`Paris 0.98`) are never parted, and no line is wider than the screen, down to the
narrowest screen where the key columns and one other still fit (about 24 columns).

This module imports no Rich console (the plain screen uses it): lines come out as lists of
(text, style) segments, which the Rich views assemble into `Text` and the plain one joins.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..text import printable

Seg = tuple[str, str]
ELLIPSIS = "…"


def width_of(text: str) -> int:
    """Terminal cells of `text` (CJK and emoji take two)."""
    if text.isascii():
        return len(text)
    from rich.cells import cell_len  # light: no console

    return cell_len(text)


def cut(text: str, width: int) -> str:
    """`text` in at most `width` cells, its end replaced by … when it is longer."""
    if width_of(text) <= width:
        return text
    if width <= 0:
        return ""
    if text.isascii():
        return text[: width - 1] + ELLIPSIS
    from rich.cells import set_cell_size

    head = set_cell_size(text, width - 1).rstrip(" ") if width > 1 else ""
    while width_of(head) > width - 1:  # a wide character cut in half leaves a space: drop it
        head = head[:-1]
    return head + ELLIPSIS


def vector_text(values: np.ndarray, dims: int) -> str:
    """The first `dims` numbers of a vector, whole, the rest elided: [+0.12 -1.30 …]."""
    shown = " ".join(f"{x:+.2f}" for x in values[:dims])
    more = len(values) > dims
    return f"[{shown}{' ' if more and shown else ''}{ELLIPSIS if more else ''}]"


def vector_lines(parts: list, width: int, dims: int = 3) -> list[str]:
    """`parts` (text, and NumPy vectors shown as `vector_text`) as one line, with as many of
    each vector's elements as let it fit `width` (at least one); if even one does not, what
    follows the last vector (a norm) goes to a line of its own, so no number is parted."""
    def line(parts: list, k: int) -> str:
        return "".join(vector_text(p, k) if isinstance(p, np.ndarray) else p for p in parts)

    for k in range(dims, 0, -1):
        if width_of(line(parts, k)) <= width:
            return [line(parts, k)]
    last = max(n for n, p in enumerate(parts) if isinstance(p, np.ndarray))
    head, tail = parts[: last + 1], parts[last + 1 :]
    k = next((k for k in range(dims, 0, -1) if width_of(line(head, k)) <= width), 1)
    return [line(head, k), *(["    " + line(tail, k).strip()] if tail else [])]


def bar(weight: float, width: int) -> str:
    """A horizontal bar of `weight` ∈ [0, 1] in eighths of a character."""
    eighths = int(round(max(0.0, min(1.0, weight)) * width * 8))
    full, rest = divmod(eighths, 8)
    return "█" * full + (" ▏▎▍▌▋▊▉"[rest] if rest else "")


@dataclass
class Column:
    """One column. `kind` says how its cells give way:

    - number: text (or (text, style)), never cut; right-aligned unless `left`.
    - label: (text, style), cut with … down to `min` cells.
    - pair: (label, label style, number, number style) or None: the label is cut, the number
      never (`assistant 0.33` → `assi… 0.33`).
    - items: a list of items, each a list of segments, joined by " · " and wrapped between
      items, never inside one, down to the widest item.
    - vector: a NumPy vector (or None), shown with `dims` elements, fewer when narrow;
      `header` may hold {dims}.
    - bar: a weight in [0, 1] (or None), drawn `width` cells wide at most, `min` at least.
    - fixed: a list of segments that is shown whole or not at all (a signed bar).
    """

    header: str
    kind: str = "number"
    cells: list = field(default_factory=list)
    left: bool = False
    key: bool = False
    style: str = ""
    min: int = 6
    dims: int = 3
    width: int | None = None  # bars: the natural width
    name: str = ""
    group: str = ""  # columns of one group are folded together (a vector and its norm)

    def __post_init__(self) -> None:
        self.name = self.name or self.header
        self.group = self.group or self.name
        self.left = self.left or self.kind in ("label", "pair", "items", "vector", "bar", "fixed")


class Table:
    """Columns fitted to a width by `lines(width)`; `plan` is the order in which they give way:
    ("shrink", name, min) narrows a label, pair, items or bar column; ("drop", name) leaves a
    column out; ("dims", names, min) shows fewer elements of vector columns, one at a time;
    ("gap", n) narrows the gap between columns to n; ("fold",) lets the groups of columns
    that do not fit go to further blocks: the steps after it apply only while one group with
    the key columns is wider than the screen.
    Columns not left out by the plan are never lost: what does not fit is folded into blocks."""

    def __init__(self, columns: list[Column], plan: tuple = (), gap: int = 2, header_style: str = "bold") -> None:
        self.columns, self.plan, self.gap, self.header_style = [_escaped(c) for c in columns], plan, gap, header_style
        self.rows = len(columns[0].cells) if columns else 0

    # Widths.

    def _natural(self, c: Column, dims: int) -> int:
        header = width_of(c.header.format(dims=dims)) if c.kind == "vector" else width_of(c.header)
        if c.kind == "bar":
            return c.width or 20
        widths = [self._cell_width(c, cell, dims) for cell in self._all_cells(c)]
        return max([header, *widths])

    def _all_cells(self, c: Column) -> list:
        return c.cells

    def _cell_width(self, c: Column, cell, dims: int) -> int:
        if cell is None or (isinstance(cell, str) and not cell):
            return 0
        if c.kind == "number":
            return width_of(cell if isinstance(cell, str) else cell[0])
        if c.kind == "label":
            return width_of(cell[0])
        if c.kind == "pair":
            return width_of(cell[0]) + width_of(cell[2])
        if c.kind == "items":
            return sum(width_of(t) for item in cell for t, _ in item) + 3 * (len(cell) - 1)
        if c.kind == "vector":
            return width_of(vector_text(cell, dims))
        if c.kind == "fixed":
            return sum(width_of(t) for t, _ in cell)
        return 0

    def _least(self, c: Column) -> int:
        """The narrowest `c` may get by shrinking."""
        if c.kind == "items":
            return max([width_of(c.header), *(max(sum(width_of(t) for t, _ in item) for item in cell) for cell in self._all_cells(c) if cell)])
        if c.kind == "pair":
            numbers = [width_of(cell[2]) for cell in self._all_cells(c) if cell]
            return max([c.min, *(n + 2 for n in numbers)])  # at least "x… 0.33"
        return c.min

    def fit(self, width: int) -> tuple[list[Column], dict[str, int], dict[str, int], int]:
        """(the columns shown, each one's width, each vector column's elements, the gap between
        columns) at `width`."""
        dims = {c.name: c.dims for c in self.columns if c.kind == "vector"}
        shown = list(self.columns)
        widths = {c.name: self._natural(c, dims.get(c.name, 0)) for c in shown}
        gap, folding = self.gap, False

        def span(columns: list[Column]) -> int:
            return sum(widths[c.name] for c in columns) + gap * (len(columns) - 1)

        def excess() -> int:
            if not folding:
                return span(shown) - width
            keys = [c for c in shown if c.key]
            return max(span(keys + group) for group in self._groups([c for c in shown if not c.key])) - width

        for step in self.plan:
            if excess() <= 0:
                break
            kind, names = step[0], (step[1] if len(step) > 1 else None)
            if kind == "fold":
                folding = True
            elif kind == "gap":
                gap = min(gap, names)
            elif kind == "drop":
                shown = [c for c in shown if c.name != names]
            elif kind == "shrink":
                c = next((c for c in shown if c.name == names), None)
                if c is not None:
                    least = max(step[2], self._least(c)) if c.kind in ("items", "pair") else step[2]
                    widths[c.name] = max(min(least, widths[c.name]), widths[c.name] - excess())
            elif kind == "dims":
                vectors = [c for c in shown if c.name in names]
                while excess() > 0 and vectors and min(dims[c.name] for c in vectors) > step[2]:
                    for c in vectors:
                        dims[c.name] -= 1
                        widths[c.name] = self._natural(c, dims[c.name])
        return shown, widths, dims, gap

    @staticmethod
    def _groups(columns: list[Column]) -> list[list[Column]]:
        groups: dict[str, list[Column]] = {}
        for c in columns:
            groups.setdefault(c.group, []).append(c)
        return list(groups.values()) or [[]]

    # Lines.

    def lines(self, width: int) -> list[list[Seg]]:
        """The table in blocks that fit `width`: header, rule, rows (and footer) each."""
        shown, widths, dims, gap = self.fit(width)
        for c in shown:  # a bar column is drawn to its fitted scale, as wide as its longest bar
            if c.kind == "bar":
                dims[c.name] = widths[c.name]
                widths[c.name] = max([0, *(len(bar(w, dims[c.name])) for w in c.cells if w is not None)])
        keys = [c for c in shown if c.key]
        others = [c for c in shown if not c.key]
        room = width - sum(widths[c.name] + gap for c in keys)
        blocks, block, used = [], [], 0
        for group in self._groups(others):
            size = sum(widths[c.name] for c in group) + gap * (len(group) - 1)
            need = size + (gap if block else 0)
            if block and used + need > room:
                blocks.append(block)
                block, used, need = [], 0, size
            block += group
            used += need
        blocks.append(block)
        out: list[list[Seg]] = []
        for block in blocks:
            columns = [c for c in shown if c.key or c in block]  # in the table's own order
            out += self._block(columns, widths, dims, gap)
        return out

    def _block(self, columns: list[Column], widths: dict[str, int], dims: dict[str, int], gap: int) -> list[list[Seg]]:
        heads = [c.header.format(dims=dims[c.name]) if c.kind == "vector" else c.header for c in columns]
        header = self._join(columns, widths, gap, [[[(cut(h, widths[c.name]), self.header_style)]] for c, h in zip(columns, heads)])
        total = sum(widths[c.name] for c in columns) + gap * (len(columns) - 1)
        out = [*header, [("─" * total, "")]]
        for r in range(self.rows):
            out += self._join(columns, widths, gap, [self._render(c, c.cells[r], widths[c.name], dims.get(c.name, 0)) for c in columns])
            last = next((k for k in range(len(columns) - 1, -1, -1) if not _empty(columns[k].cells[r])), None)
            if last is not None and columns[last].kind == "label" and last < len(columns) - 1:
                # A label with nothing after it in its row ("masked (future)") may run on into
                # the empty cells, rather than be cut.
                room = total - sum(widths[c.name] + gap for c in columns[:last])
                spill = self._render(columns[last], columns[last].cells[r], room, 0)
                out[-1] = _rstrip(self._join(columns[: last + 1], {**widths, columns[last].name: room}, gap, [
                    *(self._render(c, c.cells[r], widths[c.name], dims.get(c.name, 0)) for c in columns[:last]), spill])[0])
        return out

    def _join(self, columns: list[Column], widths: dict[str, int], gap: int, cells: list[list[list[Seg]]]) -> list[list[Seg]]:
        """Cells (each a list of lines) side by side, padded to their widths, the gap between."""
        height = max(len(lines) for lines in cells)
        out = []
        for y in range(height):
            line: list[Seg] = []
            for k, (c, lines) in enumerate(zip(columns, cells)):
                segs = lines[y] if y < len(lines) else []
                pad = widths[c.name] - sum(width_of(t) for t, _ in segs)
                if k:
                    line.append((" " * gap, ""))
                if not c.left:
                    line.append((" " * pad, ""))
                line += segs
                if c.left:
                    line.append((" " * pad, ""))
            out.append(_rstrip(line))
        return out

    def _render(self, c: Column, cell, width: int, dims: int) -> list[list[Seg]]:
        """One cell as lines of segments, at most `width` cells wide."""
        if cell is None or (isinstance(cell, str) and not cell):
            return [[]]
        if c.kind == "number":
            text, style = (cell, c.style) if isinstance(cell, str) else cell
            return [[(text, style or c.style)]]
        if c.kind == "label":
            return [[(cut(cell[0], width), cell[1] or c.style)]]
        if c.kind == "pair":
            label, style, number, number_style = cell
            return [[(cut(label, width - width_of(number)), style), (number, number_style)]]
        if c.kind == "vector":
            return [[(vector_text(cell, dims), c.style)]]
        if c.kind == "bar":
            return [[(bar(cell, dims), c.style)]]
        if c.kind == "fixed":
            return [list(cell)]
        return wrap_items(cell, width)


def _escaped(c: Column) -> Column:
    """`c` with the text of its header and cells made printable, before anything is measured (a
    NUL measured raw is no cell; shown, `\\x00` is four)."""
    def segs(items: list[Seg]) -> list[Seg]:
        return [(printable(t), s) for t, s in items]

    def cell(x):
        if x is None or isinstance(x, np.ndarray) or c.kind in ("bar", "vector"):
            return x
        if isinstance(x, str):
            return printable(x)
        if c.kind == "items":
            return [segs(item) for item in x]
        if c.kind == "fixed":
            return segs(x)
        return (printable(x[0]), *x[1:])  # label, pair, (text, style) number

    c.header = printable(c.header)
    c.cells = [cell(x) for x in c.cells]
    return c


def wrap_items(items: list[list[Seg]], width: int) -> list[list[Seg]]:
    """Items joined by " · ", wrapped between items to `width` cells, never inside one (an item
    alone on a line may be wider)."""
    lines: list[list[Seg]] = []
    line: list[Seg] = []
    used = 0
    for item in items:
        size = sum(width_of(t) for t, _ in item)
        sep = " · " if line else ""
        if line and used + len(sep) + size > width:
            lines.append(line)
            line, used, sep = [], 0, ""
        if sep:
            line.append((sep, "dim"))
        line += item
        used += len(sep) + size
    return [*lines, line]


def _empty(cell) -> bool:
    """A cell with nothing to show: None, "", or ("", style)."""
    return cell is None or (isinstance(cell, str) and not cell) or (isinstance(cell, tuple) and len(cell) == 2 and cell[0] == "")


def _rstrip(line: list[Seg]) -> list[Seg]:
    """The line without the unstyled spaces padding its end."""
    while line and (not line[-1][0] or (not line[-1][1] and not line[-1][0].strip())):
        line = line[:-1]
    if line and not line[-1][1]:
        line = [*line[:-1], (line[-1][0].rstrip(" "), "")]
    return line


def plain(line: list[Seg]) -> str:
    return "".join(t for t, _ in line)

