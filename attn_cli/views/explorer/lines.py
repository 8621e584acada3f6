"""The explorer's views as lines of Rich `Text`, built only when scrolled into sight.

A long text (hundreds of tokens) must redraw as fast as a sentence, so a table is a count of
rows and a function that builds row i: the screen builds the 20-odd rows it shows. Everything
shown is read from the result types of `compute` (InspectResult, HeadsResult, RolloutResult);
numbers are formatted as `attn inspect` formats them, with the same bars, heat and masked rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from rich.cells import cell_len
from rich.style import Style
from rich.text import Text

from ...compute.result import HeadResult, InspectResult, LayerResult
from ..palette import weight_text
from ..terminal.inspect import _LABEL_WIDTH, Items, _masked_label, _position, _row_groups, _vector, bar, heat, top_line
from ..terminal.inspect_parts import adjusted_label, scale_divisor
from ..text import printable
from .state import View

_QUERY = Style(bold=True, color="cyan")
_MASKED = Style(dim=True, italic=True)


class Lines:
    """`count` lines; line i is `make(i)`, built once when first shown. `focus`: the line to
    keep in sight (the query's row)."""

    def __init__(self, count: int, make: Callable[[int], Text], focus: int | None = None) -> None:
        self.count, self._make, self.focus = count, make, focus
        self._built: dict[int, Text] = {}
        self.rendered: dict = {}  # what a widget made of the lines (its strips), kept with them

    def __len__(self) -> int:
        return self.count

    def line(self, i: int) -> Text:
        if i not in self._built:
            self._built[i] = self._make(i)
        return self._built[i]

    @classmethod
    def of(cls, texts: list[Text], focus: int | None = None) -> Lines:
        return cls(len(texts), texts.__getitem__, focus)

    @classmethod
    def join(cls, parts: list[Lines]) -> Lines:
        """One after the other (the steps view: step 1, step 2, step 3)."""
        starts = np.cumsum([0] + [len(p) for p in parts])
        focus = next((int(s) + p.focus for s, p in zip(starts, parts) if p.focus is not None), None)

        def make(i: int) -> Text:
            k = int(np.searchsorted(starts, i, side="right")) - 1
            return parts[k].line(i - int(starts[k]))

        return cls(int(starts[-1]), make, focus)


@dataclass
class Pane:
    """A view: column titles pinned above the scrolled body, and lines pinned below it."""

    columns: list[Text]
    body: Lines
    below: list[Text] = field(default_factory=list)


def _pick(i: int) -> Style:
    """Clicking makes token i the query."""
    return Style.on(click=f"app.pick({i})")


def _is_query(result: InspectResult, unit) -> bool:
    """Whether `unit` is the query (never under cross-attention: the keys are the source)."""
    return bool(result.marked) and set(unit.token_indices) <= result.marked


def _label(result: InspectResult, i: int, width: int) -> Text:
    unit = result.units[i]
    mine = _is_query(result, unit)
    text = Text(("▶ " if mine else "  ") + printable(unit.text), style=_QUERY if mine else ("dim" if unit.special else ""))
    text.truncate(width, overflow="ellipsis", pad=True)
    return text


def _label_width(result: InspectResult) -> int:
    """The label column: tokens up to 18 characters, and room for "masked (before window)"."""
    widest = 2 + min(_LABEL_WIDTH, max(len(result.level), *(cell_len(printable(u.text)) for u in result.units)))
    masked = result.layers[0].visible is not None and not result.layers[0].visible.all()
    label = "masked (future)" if not result.model.sliding_window else "masked (before window)" if result.model.causal else "masked (outside window)"
    return max(widest, len(label)) if masked else widest


def _number(values: np.ndarray | None, i: int) -> str:
    return "—" if values is None or np.isnan(values[i]) else f"{values[i]:.2f}"


def _num_width(values: np.ndarray | None, title: str) -> int:
    if values is None or np.isnan(values).all():
        return len(title)
    return max(len(title), len(f"{np.nanmin(values):.2f}"), len(f"{np.nanmax(values):.2f}"))


_KINDS = {"encoder": "encoder", "decoder": "decoder self-attention", "cross": "cross-attention over the source"}


def header(result: InspectResult, view: View) -> Text:
    """model · layer L · head H · query "WORD" (token i) — always on screen."""
    m, q = result.model, result.query
    where = f"token {q.token_indices[0]}" if len(q.token_indices) == 1 else f"tokens {q.token_indices[0]}–{q.token_indices[-1]}"
    head = "mean" if view.head == "mean" else f"head {view.head}"
    text = Text.assemble((m.name, "bold magenta"), " · ", (f"layer {view.layer}", "bold"), f"/{m.layers - 1} · ", (head, "bold"))
    if view.head != "mean" and m.kv_heads != m.heads:
        kv, group = result.layers[0].head(view.head).kv_head, m.heads // m.kv_heads
        text.append(f" (kv {kv}, shared by {kv * group}–{kv * group + group - 1})")
    text.append(" · query ")
    text.append(f'"{printable(q.text)}"', _QUERY)
    text.append(f" ({'target ' if result.decoder_tokenization is not None else ''}{where})")
    if result.attention is not None:  # an encoder–decoder's: which of its attentions (k switches)
        text.append(f" · {_KINDS[result.attention]}", "bold yellow")
    if m.sliding_window:
        text.append(f" · window {m.sliding_window}", "yellow")
    return text


def title(result: InspectResult, view: View) -> Text:
    """What the body shows, in the words of `attn inspect`."""
    m = result.model
    words = " · words" if result.level == "word" else ""
    if view.mode == "heads":
        text = f'Multi-head · layer {view.layer}: weights of "{printable(result.query.text)}" in every head{words}'
    elif view.mode == "rollout":
        text = "Rollout (Abnar & Zuidema 2020): mean of heads, ½A + ½I, through all layers"
        if result.attention == "cross":
            text = "Cross-attention rollout onto the source: through the decoder's layers, ½ self-attention (½A + ½I), ½ cross-attention"
    elif view.mode == "grid":
        text = "Model view · each head's top word (colour: its weight) · Enter opens"
    elif view.mode == "steps":
        text = "Steps · 1 q, k, v · 2 scores, scaled, softmax · 3 weighted sum of values"
    elif result.level == "word":
        text = "Step 2 · softmax weights, summed per word (words have no single score)"
    else:
        text = f"Step 2 · scores Q·K{' (after RoPE)' if m.rotary else ''}, scaled by √d_k, softmax → weights"
    return Text(text, style="bold underline")


_LAYOUTS: dict[tuple[int, int], tuple[object, list[list[int]]]] = {}


def _strip_layout(items: tuple, width: int) -> list[list[int]]:
    """The unit indices on each line of the strip, wrapped at `width` (cached per text, level
    and width: a 500-token text is laid out once, not on every key press)."""
    key = (id(items), width)
    if key not in _LAYOUTS or _LAYOUTS[key][0] is not items:
        lines, used = [[]], 0
        for i, unit in enumerate(items):
            size = cell_len(_strip_label(unit)) + 1
            if used and used + size > width - 1:  # 1: room for the query's ▶
                lines.append([])
                used = 0
            lines[-1].append(i)
            used += size
        _LAYOUTS[key] = (items, lines)
    return _LAYOUTS[key][1]


def _strip_label(unit) -> str:
    """A unit as the strip shows it, measured and drawn alike: a newline as ⏎, other control
    and format characters escaped (`printable`)."""
    return printable(unit.text.replace("\n", "⏎"))


def token_strip(result: InspectResult, view: View, width: int, max_lines: int) -> list[Text]:
    """The text as tokens (or words), each tinted by the weight the query gives it, the query
    marked ▶, masked keys dim; at most `max_lines` lines, the query's always among them."""
    layer = result.layers[0]
    weights = layer.head(view.head).weights
    items = result.units
    lines = _strip_layout(items, width)
    where = next((n for n, line in enumerate(lines) for k in line if _is_query(result, items[k])), 0)
    start = max(0, min(where - max_lines // 2, len(lines) - max_lines))
    shown = []
    for line in lines[start : start + max_lines]:
        text = Text()
        shown.append(text)
        for i in line:  # only the units on the lines shown are styled
            unit = items[i]
            label = _strip_label(unit)
            if _is_query(result, unit):
                label, style = "▶" + label, heat(float(weights[i])) + Style(bold=True, underline=True)
            elif layer.visible is not None and not layer.visible[i]:
                style = _MASKED
            else:
                style = heat(float(weights[i]))
            text.append(label, style + _pick(unit.token_indices[0]))
            text.append(" ")
    return shown


def _bar_width(width: int, used: int) -> int:
    return max(8, min(40, width - used - 1))


def _step2_lines(result: InspectResult, layer: LayerResult, head: HeadResult, width: int) -> tuple[Text, Lines]:
    """Step 2 as in `attn inspect`: #, token, Q·K, Q·K/√d_k, weight (3 decimals), a bar; with
    norms also ‖αv‖ and ‖αvWₒ‖. Masked runs of a decoder are one row."""
    groups = list(_row_groups(result, layer))
    pos = max(len("#"), *(len(_position(result, g[1])) if g[0] == "token" else len(_masked_label(result, g[1], g[2])[0]) for g in groups))
    name = _label_width(result)
    scored = head.scores is not None
    norms = head.value_norms is not None
    cols = []  # (title, width, values)
    if scored:
        cols += [("Q·K", _num_width(head.scores, "Q·K"), head.scores)]
        cols += [(f"Q·K/√{scale_divisor(result)}", _num_width(head.scaled_scores, "Q·K/√00"), head.scaled_scores)]
    if scored and head.adjusted_scores is not None:  # what the softmax reads: MPNet's position bias, Gemma 2's cap
        title = adjusted_label(result, layer.adjusts)
        cols += [(title, _num_width(head.adjusted_scores, title), head.adjusted_scores)]
    used = pos + 1 + name + sum(w + 1 for _, w, _ in cols) + 6 + (7 + 8 if norms else 0)
    bars = _bar_width(width, used)
    top3 = {w.token_indices for w in head.top[:3]}
    columns = Text(f"{'#':>{pos}} " + f"{result.level:<{name}}", style="bold")
    for t, w, _ in cols:
        columns.append(f" {t:>{w}}", style="bold")
    columns.append(f" {'weight':>6}" + (f" {'‖αv‖':>6} {'‖αvWₒ‖':>7}" if norms else ""), style="bold")

    def make(n: int) -> Text:
        group = groups[n]
        if group[0] == "masked":
            line = _masked_start(result, group, name, pos)
            for _, w, _ in cols:
                line.append(f" {'—':>{w}}")
            return line.append(f" {'—':>6}" + (f" {'—':>6} {'—':>7}" if norms else ""))
        i = group[1]
        weight = float(head.weights[i])
        line = Text.assemble((f"{_position(result, i):>{pos}} ", "dim"), _label(result, i, name))
        for _, w, values in cols:
            line.append(f" {_number(values, i):>{w}}")
        line.append(f" {weight:>6.3f}", style="bold" if result.units[i].token_indices in top3 else "")
        if norms:
            line.append(f" {head.value_norms[i]:>6.2f} {head.output_norms[i]:>7.2f}")
        line.append(" " + bar(weight, bars), style="green")
        line.stylize(_pick(result.units[i].token_indices[0]))
        return line

    focus = next((n for n, g in enumerate(groups) if g[0] == "token" and _is_query(result, result.units[g[1]])), None)
    return columns, Lines(len(groups), make, focus)


def _masked_start(result: InspectResult, group: tuple, name: int, pos: int) -> Text:
    """The start of a row that stands for a run of masked keys: its span and label."""
    span, label = _masked_label(result, group[1], group[2])
    label.truncate(name, overflow="ellipsis", pad=True)
    return Text.assemble((f"{span:>{pos}} ", "dim"), label)


def _wrapped(text: Text | Items, width: int, console) -> list[Text]:
    """Lines of `text` at `width` cells; a line of top words breaks only between its items."""
    return text.lines(width) if isinstance(text, Items) else list(text.wrap(console, width))


def weights_pane(result: InspectResult, view: View, width: int, console) -> Pane:
    layer = result.layers[0]
    head = layer.head(view.head)
    columns, body = _step2_lines(result, layer, head, width)
    rule = Text("─" * min(width, cell_len(columns.plain) + 10), style="dim")
    return Pane([columns, rule], body, _wrapped(top_line(head, result.rank_by), width, console))


def heads_pane(result: InspectResult, view: View, width: int, console) -> Pane:
    """Units × heads, heat-coloured, the mean last; as many heads as fit, the current one among
    them and marked. Clicking a head's number selects it."""
    layer = result.layers[0]
    heads = [h for h in layer.heads if h.head != "mean"]
    groups = list(_row_groups(result, layer))
    pos = max(len("#"), *(len(_position(result, g[1])) if g[0] == "token" else len(_masked_label(result, g[1], g[2])[0]) for g in groups))
    name = _label_width(result)
    widths = [max(3, len(str(h.head))) for h in heads]
    room = max(4, width - pos - name - 1 - 5)  # 5: the mean column
    current = view.last_head if view.head == "mean" else int(view.head)
    start, stop = 0, 0
    while stop < len(heads) and sum(w + 1 for w in widths[start : stop + 1]) <= room:
        stop += 1
    while current >= stop:  # slide the window until it holds the current head
        start, stop = start + 1, stop + 1
    shown = heads[start:stop] + [layer.head("mean")]
    cell = {h.head: (max(3, len(str(h.head))) if h.head != "mean" else 4) for h in shown}
    columns = Text(f"{'#':>{pos}} {result.level:<{name}}", style="bold")
    for h in shown:
        label = "mean" if h.head == "mean" else str(h.head)
        style = Style(bold=True, reverse=h.head == view.head) + Style.on(click=f"app.head({h.head!r})")
        columns.append(" ")
        columns.append(f"{label:>{cell[h.head]}}", style=style)
    if start:
        columns.append(f"  (heads {start}–{stop - 1} of 0–{len(heads) - 1})", style="dim")

    def make(n: int) -> Text:
        group = groups[n]
        if group[0] == "masked":
            line = _masked_start(result, group, name, pos)
            for h in shown:
                line.append(f" {'·':>{cell[h.head]}}", style="dim")
            return line
        i = group[1]
        line = Text.assemble((f"{_position(result, i):>{pos}} ", "dim"), _label(result, i, name))
        for h in shown:
            w = float(h.weights[i])
            line.append(" ")
            line.append(f"{weight_text(w):>{cell[h.head]}}", style=heat(w) + (Style(bold=True) if h.head == view.head else Style()))
        line.stylize(_pick(result.units[i].token_indices[0]))
        return line

    focus = next((n for n, g in enumerate(groups) if g[0] == "token" and _is_query(result, result.units[g[1]])), None)
    rule = Text("─" * min(width, cell_len(columns.plain)), style="dim")
    mean = top_line(layer.head("mean")).append("  (mean over heads)", style="dim")
    return Pane([columns, rule], Lines(len(groups), make, focus), _wrapped(mean, width, console))


def steps_pane(result: InspectResult, view: View, width: int, console) -> Pane:
    """Step 1 (q of the query; k, v of every token), step 2, step 3, as `attn inspect --steps`."""
    layer = result.layers[0]
    head = layer.head(view.head)
    columns, step2 = _step2_lines(result, layer, head, width)
    below = _wrapped(top_line(head, result.rank_by), width, console)
    if head.steps is None:  # the mean over heads has no single q, k, v
        note = Text("The mean over heads has no q, k, v of its own: pick a head with ] or [.", style="yellow")
        return Pane([], Lines.join([Lines.of([note, Text(""), columns]), step2]), below)
    s, q = head.steps, printable(result.query.text)
    rotary = s.keys_pre_rope is not None
    groups = list(_row_groups(result, layer))
    name = _label_width(result)
    vectors = 3 if rotary else 2
    dims = max(1, min(result.model.head_dim, ((width - 4 - name - 14) // vectors - 4) // 6))
    if rotary:
        qs = [f"q({q}) before RoPE = {_vector(s.query_pre_rope, dims)}", f"q({q}) after RoPE  = {_vector(s.query, dims)}"]
    else:
        qs = [f"q({q}) = {_vector(s.query, dims)}  ‖q‖ = {np.linalg.norm(s.query):.2f}"]
    vw = len(_vector(s.values[0], dims))
    kv_titles = ([f"k pre-RoPE ({dims}/{result.model.head_dim})", "k post-RoPE"] if rotary else [f"key k ({dims} of {result.model.head_dim})", "‖k‖"])
    kv_titles += ["value v", "‖v‖"]
    head1 = Text(f"{'#':>4} {'token':<{name}}", style="bold")
    for t in kv_titles:
        head1.append(f" {t:<{vw if not t.startswith('‖') else 6}}", style="bold")

    def make1(n: int) -> Text:
        group = groups[n]
        if group[0] == "masked":
            span, label = _masked_label(result, group[1], group[2])
            return Text.assemble((f"{span:>4} ", "dim"), label)
        i = group[1]
        k, v = s.keys[i], s.values[i]
        cells = [_vector(s.keys_pre_rope[i], dims), _vector(k, dims)] if rotary else [_vector(k, dims), f"{np.linalg.norm(k):.2f}"]
        cells += [_vector(v, dims), f"{np.linalg.norm(v):.2f}"]
        line = Text.assemble((f"{i:>4} ", "dim"), _label(result, i, name))
        for c in cells:
            line.append(f" {c:<{vw if c.startswith('[') else 6}}")
        return line.stylize(_pick(i)) or line

    terms = np.linalg.norm(head.weights[:, None] * s.values, axis=1)  # ‖weight_j · v_j‖
    largest = " · ".join(f"{printable(result.tokens[j].text)} {terms[j]:.2f}" for j in np.argsort(-terms, kind="stable")[:3])
    bold = Style(bold=True, underline=True)
    step1 = Lines.of([Text(f"Step 1 · query, key and value vectors (head {head.head})", bold), *map(Text, qs), head1])
    table1 = Lines(len(groups), make1)
    step2_title = Lines.of([Text(""), Text("Step 2 · scores, scaled by √d_k, softmax → weights", bold), columns])
    step3 = Lines.of([
        Text(""), Text("Step 3 · weighted sum of the values: output = Σⱼ weightⱼ · vⱼ", bold),
        Text(f"output({q}) = {_vector(s.output, dims)}  ‖output‖ = {np.linalg.norm(s.output):.2f}"),
        Text(f"largest terms ‖weightⱼ·vⱼ‖: {largest}"),
    ])
    body = Lines.join([step1, table1, step2_title, step2, step3])
    body.focus = None  # the steps read from the top
    return Pane([], body, below)
