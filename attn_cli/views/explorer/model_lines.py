"""The explorer's views of the whole model for the query: rollout, the layers × heads grid, and
token contributions (ALTI)."""

from __future__ import annotations

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text

from ...compute.contrib import ContribResult
from ...compute.heads import HeadsResult
from ...compute.rollout import RolloutResult
from ...loading.tokenizer import units
from ..terminal.heads import _grid_cells
from ..terminal.inspect import _LABEL_WIDTH, Items, bar, heat
from ..text import printable
from .lines import _QUERY, Lines, Pane, _bar_width, _pick, _wrapped
from .state import View


def rollout_pane(result: RolloutResult, width: int, console) -> Pane:
    items = units(result.tokenization, result.level)
    query = set() if result.attention == "cross" else set(result.query.token_indices)  # cross: the rows are the source
    pos = max(len(str(u.token_indices[0])) + (len(str(u.token_indices[-1])) + 1 if len(u.token_indices) > 1 else 0) for u in items)
    name = 2 + min(_LABEL_WIDTH, max(cell_len(printable(u.text)) for u in items))
    bars = _bar_width(width, pos + name + 8 + 11 + 2)
    columns = Text(f"{'#':>{pos}} {result.level:<{name}} {'rollout':>7} {'':<{bars}} {'last layer':>10}", style="bold")

    def make(n: int) -> Text:
        u = items[n]
        first, last = u.token_indices[0], u.token_indices[-1]
        mine = set(u.token_indices) <= query
        label = Text(("▶ " if mine else "  ") + printable(u.text), style=_QUERY if mine else ("dim" if u.special else ""))
        label.truncate(name, overflow="ellipsis", pad=True)
        span = str(first) if first == last else f"{first}–{last}"
        line = Text.assemble((f"{span:>{pos}} ", "dim"), label, f" {result.rollout[n]:>7.3f} ")
        line.append(f"{bar(float(result.rollout[n]), bars):<{bars}}", style="green")
        line.append(f" {result.last_layer[n]:>10.3f}")
        return line.stylize(_pick(first)) or line

    top = Items(Text("Top by rollout: ", style="bold"), [Text.assemble((w.name, "dim" if w.special else "bold"), f" {w.weight:.2f}") for w in result.top])
    focus = next((n for n, u in enumerate(items) if set(u.token_indices) <= query), None)
    rule = Text("─" * min(width, cell_len(columns.plain)), style="dim")
    return Pane([columns, rule], Lines(len(items), make, focus), _wrapped(top, width, console))


def grid_pane(result: HeadsResult, view: View, width: int) -> Pane:
    """Layers × heads, each cell the head's top word on its weight's heat; the current cell
    reversed. Clicking a cell selects it; Enter opens it."""
    layers, heads = result.values.shape
    cell = min(12, _grid_cells(heads, width))
    columns = Text(" L ", style="bold")
    for h in range(heads):
        style = Style(bold=h % 2 == 1, dim=h % 2 == 0, reverse=h == view.head) + Style.on(click=f"app.head({h})")
        columns.append(" " + str(h)[-cell:].ljust(cell), style=style)

    def make(n: int) -> Text:
        layer = layers - 1 - n  # the last layer on top, so that ↑ (next layer) moves up
        line = Text(f"{layer:>2} ", style="bold reverse" if layer == view.layer else "dim")
        for h in range(heads):
            word = result.top[layer][h]
            style = heat(word.weight) + Style.on(click=f"app.cell({layer}, {h})")
            if layer == view.layer and h == view.head:
                style += Style(reverse=True, bold=True)
            line.append(" ")
            line.append(printable(word.text)[:cell].ljust(cell), style=style)
        return line

    current = result.top[view.layer][view.head] if view.head != "mean" else None
    below = [Text(f"layer {view.layer}, head {view.head}: top word '{printable(current.name)}' {current.weight:.2f}")] if current else []
    return Pane([columns], Lines(layers, make, layers - 1 - view.layer), below)


def contrib_pane(result: ContribResult, view: View, width: int, console) -> Pane:
    """ALTI (`attn contrib --rollout`): each token's share of the query's representation in the
    current layer and through the whole model, as shares (%) with a bar for the layer's."""
    tokens = result.tokenization.tokens
    query = set(result.query.token_indices)
    shown = range(max(query) + 1 if result.model.causal else len(tokens))  # a decoder's query reads no later token
    row, whole = result.rows[result.layers.index(view.layer)], result.whole
    pos = len(str(shown[-1]))
    name = 2 + min(_LABEL_WIDTH, max(cell_len(printable(tokens[i].text)) for i in shown))
    bars = _bar_width(width, pos + name + 7 + 8 + 2)
    columns = Text(f"{'#':>{pos}} {'token':<{name}} {'L' + str(view.layer):>6} {'':<{bars}} {'whole':>7}", style="bold")

    def make(n: int) -> Text:
        mine = n in query
        label = Text(("▶ " if mine else "  ") + printable(tokens[n].text), style=_QUERY if mine else ("dim" if tokens[n].special else ""))
        label.truncate(name, overflow="ellipsis", pad=True)
        line = Text.assemble((f"{n:>{pos}} ", "dim"), label, f" {row[n] * 100:>5.1f}% ")
        line.append(f"{bar(float(row[n]), bars):<{bars}}", style="green")
        line.append(f" {whole[n] * 100:>6.1f}%")
        return line.stylize(_pick(n)) or line

    rule = Text("─" * min(width, cell_len(columns.plain)), style="dim")
    below = Text.assemble(("ALTI (Ferrando et al. 2022): ", "bold"), f"layer {view.layer}'s row (↑↓ moves the layer); whole: the layers multiplied")
    return Pane([columns, rule], Lines(len(shown), make, max(query)), _wrapped(below, width, console))
