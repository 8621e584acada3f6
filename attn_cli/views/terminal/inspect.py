"""Rich views of an `InspectResult` and of a tokenization, in the textbook's order:
step 1 (Q, K, V vectors), step 2 (scores, scaled scores, softmax weights), step 3 (weighted
sum of values), then multi-head. Everything shown is read from the result; nothing is computed
here but presentation (bars, colours, rounding).
"""

from __future__ import annotations

import numpy as np
from rich import box
from rich.color import Color
from rich.console import Console, Group, RenderableType
from rich.measure import Measurement  # rich.console imports it anyway
from rich.style import Style
from rich.table import Table
from rich.text import Text

from ...compute.result import HeadResult, InspectResult, LayerResult, Steps
from ...loading.tokenizer import Tokenization
from ..palette import heat_rgb, text_is_dark, weight_text
from .inspect_parts import (  # noqa: F401  (_LABEL_WIDTH, _vector: read by the explorer's views)
    _LABEL_WIDTH,
    _PREVIEW_DIMS,
    LEGEND_TAIL,
    LEGEND_WEIGHTS,
    STEPS_HINT,
    _head_name,
    _number,
    _position,
    _row_groups,
    _vector,
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


def heat(weight: float) -> Style:
    """Background from dark blue (0) through red to yellow (1); text stays readable."""
    return Style(bgcolor=Color.from_rgb(*heat_rgb(weight)), color="black" if text_is_dark(weight) else "white")


def _token_label(result: InspectResult, index: int) -> Text:
    """The label of row `index` (a token, or a word at --level word); ▶ marks the query."""
    text, style = label_text(result, index)
    return Text(text, style=style)


def _masked_label(result: InspectResult, first: int, last: int) -> tuple[str, Text]:
    """The # and label cells of a run of masked rows (unit indices first … last)."""
    span, text = masked_text(result, first, last)
    return span, Text(text, style="dim italic")


def step2_table(result: InspectResult, layer: LayerResult, head: HeadResult) -> _Step2:
    """One row per token (or word): Q·K, Q·K/√d_k, softmax weight, a bar; with --norms also
    ‖α·v‖ and ‖α·v·W_O‖. Laid out for the width it is given (see `_Step2`)."""
    return _Step2(result, layer, head)


class _Step2:
    """The step-2 table, fitted to the width: numbers are never cut. The bar shrinks first,
    then goes; then labels are cut (to 6 characters, with …); a table that still does not fit
    keeps its numbers whole and is wider than the screen (the terminal wraps it)."""

    def __init__(self, result: InspectResult, layer: LayerResult, head: HeadResult) -> None:
        self.result, self.layer, self.head = result, layer, head

    def __rich_console__(self, console, options):
        result, layer, head = self.result, self.layer, self.head
        headers, scored, norms = step2_headers(result, head, layer)
        top_units = {i for i, u in enumerate(result.units) for w in head.top[:3] if u.token_indices == w.token_indices}
        table_rows = step2_rows(result, layer, head, scored, norms)
        natural = [max(len(headers[c]), *(len(cells[c]) for cells, *_ in table_rows)) for c in range(len(headers))]
        weight_column = headers.index("weight")
        rows, weights = [], []
        for cells, weight, style, i in table_rows:
            row = [*cells]
            row[1] = Text(cells[1], style=style)
            if i is not None:
                row[weight_column] = Text(cells[weight_column], style="bold" if i in top_units else "")
            rows.append(row)
            weights.append(weight)
        label, bar_width, width = step2_fit(natural, norms, options.max_width)
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1), width=max(width, 1) if width > options.max_width else None)
        for c, name in enumerate(headers):
            if c == 1:
                table.add_column(name, no_wrap=True, width=label, overflow="ellipsis")
            else:
                table.add_column(name, justify="right", no_wrap=True, min_width=natural[c], style="dim" if c == 0 else "")
        if bar_width:
            table.add_column("", no_wrap=True, max_width=bar_width)
        for row, weight in zip(rows, weights):
            table.add_row(*row, *([Text(bar(weight, bar_width), style="green") if weight is not None else ""] if bar_width else []))
        yield table


def top_line(head: HeadResult, rank_by: str = "weight") -> Items:
    """The top words and the value that ranks them (the weight, or a value norm)."""
    title, items = top_items(head, rank_by)
    return Items(Text(title, style="bold"), [Text.assemble((text, style), value) for text, style, value in items])


class Items:
    """A line of items ("language 0.30") joined by " · ", wrapped only between items, so that a
    word is never parted from its number. `append` adds a last item (a remark)."""

    def __init__(self, title: Text, items: list[Text]) -> None:
        self.title, self.items, self.tail = title, items, []

    def append(self, text: str, style: str = "") -> Items:
        self.tail.append(Text(text, style=style))
        return self

    def lines(self, width: int) -> list[Text]:
        """The line, wrapped between items to `width` cells."""
        out, line = [], self.title.copy()
        pieces = [(" · " if n else "", item) for n, item in enumerate(self.items)] + [("", t) for t in self.tail]
        for sep, item in pieces:
            if line.cell_len + len(sep) + item.cell_len > width and line.plain.strip():
                out.append(line)
                line, sep = Text("  "), ""
            line.append(sep, style="dim")
            line.append_text(item)
        return [*out, line]

    def __rich_console__(self, console, options):
        yield from self.lines(options.max_width)

    def __rich_measure__(self, console, options):
        """From the widest item alone to all on one line: a table column wraps between items."""
        one_line = self.lines(10**6)[0].cell_len
        first = self.title.cell_len + (self.items[0].cell_len if self.items else 0)
        alone = [first, *(2 + i.cell_len for i in self.items[1:]), *(2 + t.cell_len for t in self.tail)]
        return Measurement(min(max(alone), one_line), one_line)


def steps_view(result: InspectResult, layer: LayerResult, head: HeadResult, steps: Steps) -> tuple[RenderableType, RenderableType]:
    """Step 1 (q of the query, k and v of every token) and step 3 (the weighted sum of values)."""
    d_k = result.model.head_dim
    rotary = steps.keys_pre_rope is not None
    dims = 2 if rotary else _PREVIEW_DIMS  # three vectors per row must fit 80 columns
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1))
    table.add_column("#", justify="right", style="dim")
    table.add_column("token", no_wrap=True)
    if rotary:
        table.add_column(f"k pre-RoPE ({dims}/{d_k})", no_wrap=True)
        table.add_column("k post-RoPE", no_wrap=True)
    else:
        table.add_column(f"key k ({dims} of {d_k} dims)", no_wrap=True)
    if not rotary:  # (RoPE is a rotation: it keeps ‖k‖, and the column would not fit)
        table.add_column("‖k‖", justify="right", no_wrap=True)
    table.add_column("value v", no_wrap=True)
    table.add_column("‖v‖", justify="right", no_wrap=True)
    for group in _row_groups(result, layer):  # steps are token-level only
        if group[0] == "masked":
            table.add_row(*_masked_label(result, group[1], group[2]))
            continue
        i = group[1]
        k, v = steps.keys[i], steps.values[i]
        keys = [_vector(steps.keys_pre_rope[i], dims), _vector(k, dims)] if rotary else [_vector(k, dims), f"{np.linalg.norm(k):.2f}"]
        table.add_row(str(i), _token_label(result, i), *keys, _vector(v, dims), f"{np.linalg.norm(v):.2f}")
    if rotary:
        query = [f"  q({result.query.text}) before RoPE = {_vector(steps.query_pre_rope)}", f"  q({result.query.text}) after RoPE  = {_vector(steps.query)}"]
    else:
        query = [f"  query q({result.query.text}) = {_vector(steps.query)}  ‖q‖ = {np.linalg.norm(steps.query):.2f}"]
    step1 = Group(
        Text(f"Step 1 · query, key and value vectors ({_head_name(head.head)})", style="bold underline"),
        *(Text(line) for line in query),
        table,
    )
    contributions = head.weights[:, None] * steps.values  # (seq, head_dim): weight_j · v_j
    norms = np.linalg.norm(contributions, axis=1)
    largest = np.argsort(-norms, kind="stable")[:3]
    parts = " · ".join(f"{result.tokens[j].text} {norms[j]:.2f}" for j in largest)
    step3 = Group(
        Text("\nStep 3 · weighted sum of the values: output = Σⱼ weightⱼ · vⱼ", style="bold underline"),
        Text(f"  output({result.query.text}) = {_vector(steps.output)}  ‖output‖ = {np.linalg.norm(steps.output):.2f}"),
        Text(f"  largest terms ‖weightⱼ·vⱼ‖: {parts}"),
    )
    return step1, step3


def multihead_table(result: InspectResult, layer: LayerResult) -> _HeadGrid:
    """Tokens × heads weights for the query, heat-coloured, the mean last; focus heads marked."""
    return _HeadGrid(result, layer)


class _HeadGrid:
    """The multi-head table as plain fixed-width lines rather than a Rich Table: the grid is
    regular, and Rich's table layout costs ~50 ms per run for it, a tenth of attn's start-up.
    Heads that do not fit the width go to a further block below, never wrapped."""

    def __init__(self, result: InspectResult, layer: LayerResult) -> None:
        self.result, self.layer = result, layer
        self.rows = []  # (position, label Text, weights per head, or None for a masked run)
        for group in _row_groups(result, layer):
            if group[0] == "masked":
                self.rows.append((*_masked_label(result, group[1], group[2]), None))
            else:
                i = group[1]
                self.rows.append((_position(result, i), _token_label(result, i), [float(h.weights[i]) for h in layer.heads]))

    def __rich_console__(self, console, options):
        number = max(len(r[0]) for r in self.rows)
        name = min(_LABEL_WIDTH, max(len(self.result.level), *(len(r[1]) for r in self.rows)))
        widths = grid_widths(self.layer)
        for start, stop in grid_blocks(widths, options.max_width - number - name - 1):
            yield from self._block(number, name, widths, start, stop)

    def _block(self, number: int, name: int, widths: list[int], start: int, stop: int):
        header = Text(f"{'#':>{number}} {self.result.level:<{name}}", style="bold")
        for h, width in zip(self.layer.heads[start:stop], widths[start:stop]):
            header.append(" ")
            label = "mean" if h.head == "mean" else str(h.head)
            header.append(f"{label:>{width}}", style="bold reverse" if h.head in self.layer.focus else "bold")
        yield header
        yield Text("─" * len(header))
        for position, label, weights in self.rows:
            label = label.copy()
            label.truncate(name, overflow="ellipsis", pad=True)
            line = Text.assemble((f"{position:>{number}}", "dim"), " ", label)
            for k in range(start, stop):
                line.append(" ")
                if weights is None:
                    line.append(f"{'·':>{widths[k]}}", style="dim")
                else:
                    line.append(f"{weight_text(weights[k]):>{widths[k]}}", style=heat(weights[k]))
            yield line


def inspect_view(result: InspectResult) -> list[RenderableType]:
    """The screen of `attn inspect` (`plain.inspect_text` writes the same without colour or Rich)."""
    parts: list[RenderableType] = [Text.assemble(*header_parts(result))]
    parts += [Text(f"note: {note}", style="yellow") for note in result.notes]
    for layer in result.layers:
        for head_id in layer.focus:
            head = layer.head(head_id)
            parts.append(Text(f"\n{layer_title(result, layer, head_id, head)}", style="bold"))
            if head.steps is not None:
                step1, step3 = steps_view(result, layer, head, head.steps)
                parts.append(step1)
            gap = "\n" if head.steps is not None else ""
            parts.append(Text(gap + step2_title(result, layer), style="bold underline"))
            if (note := mean_rows_note(result, head)) is not None:
                parts.append(Text(note, style="dim"))
            parts.append(step2_table(result, layer, head))
            parts.append(Text(sum_line(head), style="dim"))
            if head.steps is not None:
                parts.append(step3)
            parts.append(top_line(head, result.rank_by))
        parts.append(Text(f"\n{multihead_title(result, layer)}", style="bold underline"))
        parts.append(multihead_table(result, layer))
        parts.append(top_line(layer.head("mean")).append("  (mean over heads)", style="dim"))
    parts.append(_legend())
    if not any(h.steps is not None for layer in result.layers for h in layer.heads):
        parts.append(Text(STEPS_HINT, style="dim"))
    return parts


def _legend() -> Text:
    """What the heat map's colours mean, on one line: the weight scale from 0 to 1."""
    line = Text("colour: weight ", style="dim")
    for w in LEGEND_WEIGHTS:
        line.append(f" {weight_text(w)} ", style=heat(w))
    return line.append(LEGEND_TAIL, style="dim")


def tokens_table(tok: Tokenization) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for name, justify in [("#", "right"), ("token", "left"), ("id", "right"), ("start", "right"), ("end", "right"), ("word", "left")]:
        table.add_column(name, justify=justify)
    for t in tok.tokens:
        word = "(special)" if t.special else f"{t.word}: {tok.words[t.word].text}"
        offsets = ("", "") if t.start is None else (str(t.start), str(t.end))
        table.add_row(str(t.index), t.text, str(t.id), *offsets, Text(word, style="dim" if t.special else ""))
    return table


def models_table(entries) -> Group:
    """Two lines per model: its name, source, architecture, layers × heads (GGUF files: their
    quantization and size) and whether attn can use it; then its path, whole (a path broken
    mid-word cannot be copied)."""
    lines = []
    for e in entries:
        shape = f"{e.layers} layers × {e.heads} heads" if getattr(e, "layers", None) else None
        quantization = getattr(e, "quantization", None)
        size = f"{e.size_bytes / 2**20:,.0f} MiB" if getattr(e, "size_bytes", None) else None
        facts = " · ".join(x for x in (e.architecture, shape, quantization, size) if x) or "—"
        line = Text.assemble((e.name, "bold"), f"  {e.source} · {facts} · ")
        line.append_text(Text("usable", style="green") if e.usable else Text(f"unusable: {e.problem}", style="yellow"))
        lines += [line, Text(f"  {e.path or '—'}", style="dim", no_wrap=True, overflow="ignore")]
    return Group(*lines)


def print_all(console: Console, renderables: list[RenderableType]) -> None:
    for r in renderables:
        console.print(r)
