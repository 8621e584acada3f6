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
from ..text import printable
from .fit import vector_lines, width_of
from .inspect_parts import (  # noqa: F401  (_LABEL_WIDTH, _vector: read by the explorer's views)
    _LABEL_WIDTH,
    _PREVIEW_DIMS,
    LEGEND_WEIGHTS,
    STEPS_HINT,
    _head_name,
    _number,
    _position,
    _row_groups,
    _vector,
    bar,
    folded_line,
    grid_blocks,
    grid_lines,
    grid_widths,
    header_parts,
    hidden_units,
    label_text,
    layer_title,
    masked_legend,
    masked_text,
    mean_rows_note,
    multihead_title,
    step1_layout,
    step2_layout,
    step2_title,
    sum_line,
    top_items,
    top_rows,
    window_note,
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


class Fitted:
    """Lines laid out for the console's width by `lines(width)` (a `fit.Table`'s, say): numbers
    whole, no line wider than the screen."""

    def __init__(self, lines) -> None:
        self.lines = lines

    def __rich_console__(self, console, options):
        for line in self.lines(options.max_width):
            yield Text.assemble(*line)


def step2_table(result: InspectResult, layer: LayerResult, head: HeadResult, keep: set[int] | None = None) -> Fitted:
    """One row per token (or word): Q·K, Q·K/√d_k, softmax weight, a bar; with --norms also
    ‖α·v‖ and ‖α·v·W_O‖. Laid out for the width it is given (`inspect_parts.step2_table`)."""
    return Fitted(step2_layout(result, layer, head, keep).lines)


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


def steps_view(
    result: InspectResult, layer: LayerResult, head: HeadResult, steps: Steps, keep: set[int] | None = None
) -> tuple[RenderableType, RenderableType]:
    """Step 1 (q of the query, k and v of every token) and step 3 (the weighted sum of values)."""
    return _Step1(result, layer, head, steps, keep), _Step3(result, head, steps)


class _Step1:
    """The query vector(s), then each token's key and value vectors, fitted to the width:
    vectors show as many elements as fit (at most 3), elided with …, never a cut number."""

    def __init__(self, result: InspectResult, layer: LayerResult, head: HeadResult, steps: Steps, keep: set[int] | None) -> None:
        self.result, self.layer, self.head, self.steps, self.keep = result, layer, head, steps, keep

    def __rich_console__(self, console, options):
        result, steps, width = self.result, self.steps, options.max_width
        q = printable(result.query.text)
        yield Text(f"Step 1 · query, key and value vectors ({_head_name(self.head.head)})", style="bold underline")
        if steps.keys_pre_rope is not None:
            lines = vector_lines([f"  q({q}) before RoPE = ", steps.query_pre_rope], width)
            lines += vector_lines([f"  q({q}) after RoPE  = ", steps.query], width)
        else:
            lines = vector_lines([f"  query q({q}) = ", steps.query, f"  ‖q‖ = {np.linalg.norm(steps.query):.2f}"], width)
        yield from (Text(line) for line in lines)
        table = step1_layout(result, self.layer, steps, self.keep)
        dims = min(table.fit(width)[2].values())
        for line in table.lines(width):
            yield Text.assemble(*line)
        if (note := folded_line(result, self.layer, self.head, self.keep)) is not None:
            yield Text(note, style="dim")
        yield Text(f"vectors: the first {dims} of {result.model.head_dim} dimensions (--json has them all)", style="dim")


class _Step3:
    """The weighted sum of the values, and its largest terms."""

    def __init__(self, result: InspectResult, head: HeadResult, steps: Steps) -> None:
        self.result, self.head, self.steps = result, head, steps

    def __rich_console__(self, console, options):
        result, head, steps, width = self.result, self.head, self.steps, options.max_width
        contributions = head.weights[:, None] * steps.values  # (seq, head_dim): weight_j · v_j
        norms = np.linalg.norm(contributions, axis=1)
        largest = np.argsort(-norms, kind="stable")[:3]
        yield Text("\nStep 3 · weighted sum of the values: output = Σⱼ weightⱼ · vⱼ", style="bold underline")
        q = printable(result.query.text)
        yield from (Text(line) for line in vector_lines([f"  output({q}) = ", steps.output, f"  ‖output‖ = {np.linalg.norm(steps.output):.2f}"], width))
        terms = Items(Text("  largest terms ‖weightⱼ·vⱼ‖: "), [Text(f"{result.tokens[j].text} {norms[j]:.2f}") for j in largest])
        yield from terms.lines(width)


def multihead_table(result: InspectResult, layer: LayerResult, keep: set[int] | None = None) -> Fitted:
    """Tokens × heads weights for the query, heat-coloured, the mean last; focus heads marked;
    heads that do not fit the width in further blocks (`inspect_parts.grid_lines`)."""
    return Fitted(lambda width: grid_lines(result, layer, width, keep))


def inspect_view(result: InspectResult, rows: str = "all") -> list[RenderableType]:
    """The screen of `attn inspect` (`plain.inspect_text` writes the same without colour or Rich).
    `rows`: "all", or "top" for each table's top rows only (`--rows top`)."""
    parts: list[RenderableType] = [Text.assemble(*header_parts(result))]
    parts += [Text(f"note: {note}", style="yellow") for note in result.notes]
    for layer in result.layers:
        for head_id in layer.focus:
            head = layer.head(head_id)
            keep = top_rows(result, [head]) if rows == "top" else None
            parts.append(Text(f"\n{layer_title(result, layer, head_id, head)}", style="bold"))
            if head.steps is not None:
                step1, step3 = steps_view(result, layer, head, head.steps, keep)
                parts.append(step1)
            gap = "\n" if head.steps is not None else ""
            parts.append(Text(gap + step2_title(result, layer), style="bold underline"))
            if (note := mean_rows_note(result, head)) is not None:
                parts.append(Text(note, style="dim"))
            parts.append(step2_table(result, layer, head, keep))
            parts += [Text(line, style="dim") for line in (folded_line(result, layer, head, keep), window_note(result, layer)) if line]
            parts.append(Text(sum_line(head), style="dim"))
            if head.steps is not None:
                parts.append(step3)
            parts.append(top_line(head, result.rank_by))
        parts.append(Text(f"\n{multihead_title(result, layer)}", style="bold underline"))
        parts.append(multihead_table(result, layer, top_rows(result, layer.heads) if rows == "top" else None))
        parts.append(top_line(layer.head("mean")).append("  (mean over heads)", style="dim"))
        if layer.routing is not None:
            parts.append(_Routing(result, layer))
    parts.append(_Legend(masked_legend(result)))
    if not any(h.steps is not None for layer in result.layers for h in layer.heads):
        parts.append(Text(STEPS_HINT, style="dim"))
    return parts


class _Routing:
    """A mixture-of-experts layer's feed-forward (with --steps): the experts the router sent each
    token to, most probable first, and each one's weight, wrapped between experts."""

    def __init__(self, result: InspectResult, layer: LayerResult) -> None:
        self.result, self.layer = result, layer

    def __rich_console__(self, console, options):
        routing, tokens, query = self.layer.routing, self.result.tokens, set(self.result.query.token_indices)
        yield Text(f"\nExperts · layer {self.layer.layer}: the router's top {routing.experts.shape[1]} for each token (expert, weight)", style="bold underline")
        names = [printable(t.text) for t in tokens]
        pad = max(width_of(name) for name in names)  # cells, not characters: 猫 takes two
        for i, (experts, weights) in enumerate(zip(routing.experts, routing.weights, strict=True)):
            label = Text(f"{i:<3}{'▶' if i in query else ' '} {names[i]}{' ' * (pad - width_of(names[i]))}  ")
            yield from Items(label, [Text(f"expert {e} {w:.2f}") for e, w in zip(experts, weights, strict=True)]).lines(options.max_width)


class _Legend:
    """What the heat map's colours mean (the weight scale from 0 to 1), only where there are
    colours (not under NO_COLOR, nor in a pipe); and what `·` stands for, where there is one."""

    def __init__(self, masked: str | None) -> None:
        self.masked = masked

    def __rich_console__(self, console, options):
        if console.color_system is None or console.no_color:
            if self.masked:
                yield Text(self.masked, style="dim")
            return
        weights = LEGEND_WEIGHTS if 15 + 5 * len(LEGEND_WEIGHTS) <= options.max_width else [w for w in LEGEND_WEIGHTS if w != 0.1]
        line = Text("colour: weight ", style="dim")
        for w in weights:
            line.append(f" {weight_text(w)} ", style=heat(w))
        if self.masked and line.cell_len + 2 + len(self.masked) <= options.max_width:
            yield line.append("  " + self.masked, style="dim")
            return
        yield line
        if self.masked:
            yield Text(self.masked, style="dim")


def tokens_table(tok: Tokenization) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for name, justify in [("#", "right"), ("token", "left"), ("id", "right"), ("start", "right"), ("end", "right"), ("word", "left")]:
        table.add_column(name, justify=justify)
    for t in tok.tokens:
        words = tok.words_of(t)
        word = "(special)" if t.special else " ".join(f"{w.index}: {w.text}" for w in words) or ("(space)" if (tok.source(t) or "").isspace() else "(no word)")
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
