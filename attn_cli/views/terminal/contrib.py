"""The Rich view of `ContribResult`: tokens × layers (each cell the token's share of the query's
representation in that layer, in %), the layers folded into blocks where they do not fit the
width (each block beside the tokens again), or, on a screen too narrow for one layer beside the
tokens, the query's row per layer as its largest shares."""

from __future__ import annotations

import numpy as np
from rich.table import Table
from rich.text import Text

from ...compute.contrib import ContribResult
from ..text import printable
from .fit import width_of
from .inspect import heat

TITLES = {
    "alti": "ALTI (Ferrando et al. 2022)",
    "value-zeroing": "Value zeroing (Mohebbi et al. 2023)",
    "norms": "‖Σ α·f(x)‖ (Kobayashi et al. 2020)",
    "alti-logit": "ALTI-Logit (Ferrando et al. 2023)",
}
LOGIT_CELL = 7  # " +12.34"
CELL = 4  # " 37%" without the sign: three digits and a space
LABEL = 12  # widest token label in the table


def contrib_view(result: ContribResult, width: int, colour: bool = True) -> list:
    if result.logit is not None:
        return _logit_view(result, width, colour)
    m, q = result.model, result.query
    tokens = result.tokenization.tokens
    shown = _shown_positions(result)
    header = Text.assemble(
        (m.name, "bold magenta"), f" ({m.architecture}, {m.layers} layers) · query ", (f'"{printable(q.text)}"', "bold cyan"),
        f" (token{'s' if len(q.token_indices) > 1 else ''} {', '.join(map(str, q.token_indices))})",
    )
    title = Text(f"{TITLES[result.method]}: the share of each input token in the query's representation, per layer (%)", style="bold underline")
    columns = [(f"L{layer}", result.rows[n]) for n, layer in enumerate(result.layers)]
    if result.rollout is not None:
        columns += [("all", result.whole)]
    label = min(LABEL, max(width_of(printable(tokens[i].text)) for i in shown))
    per_block = (width - (len(str(shown[-1])) + 2 + label + 1)) // CELL  # layer columns beside the token labels
    fits = per_block >= 1
    out = [header, title]
    if fits:
        blocks = _folded(columns, per_block)
        out += _spaced([_table(result, shown, block, label, colour) for block in blocks])
    else:
        out.append(_lines(result, width))
    if result.whole is not None:
        out.append(_top(result, result.whole, "Whole model (rollout): ", width))
    legend = "Each column: one layer's row for the query (sums to 100)" if fits else "Each line: one layer's largest shares of the query's representation"
    if fits and result.whole is not None:
        legend += "; all: the layers multiplied (rollout), the later on the left"
    if fits and len(blocks) > 1:
        legend += f"; the layers in {len(blocks)} blocks of {per_block} to fit {width} columns"
    if len(shown) < len(tokens):
        legend += f"; tokens after {shown[-1]} are not read by the query"
    out.append(Text(legend, style="dim"))
    return out


def _folded(columns: list, per_block: int) -> list[list]:
    """The columns in blocks of `per_block`, in order: more layers than fit one row of columns."""
    return [columns[n : n + per_block] for n in range(0, len(columns), per_block)]


def _spaced(tables: list) -> list:
    """The blocks one after another, a blank line between them."""
    out = []
    for n, table in enumerate(tables):
        out += [Text(""), table] if n else [table]
    return out


def _shown_positions(result: ContribResult) -> list[int]:
    """Every position, but a decoder's after the query (which it never reads)."""
    seq = len(result.tokenization.tokens)
    last = max(result.query.token_indices) if result.model.causal else seq - 1
    return list(range(last + 1))


def _token_table(result: ContribResult, shown: list[int], marked, columns: list, label: int, width: int, cell) -> Table:
    """The tokens `shown` (those in `marked` with ▶) × `columns` (name, values (seq,)), each
    `width` wide, `cell(values, i)` the Text of one."""
    table = Table(box=None, show_edge=False, pad_edge=False, padding=(0, 0), header_style="dim")
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column(" ", width=1)
    table.add_column("token", no_wrap=True, overflow="ellipsis", max_width=label + 1, min_width=label + 1)
    for name, _ in columns:
        table.add_column(name.rjust(width), justify="right", no_wrap=True, width=width)
    for i in shown:
        mark = "▶" if i in marked else " "
        token = Text(f"{mark}{printable(result.tokenization.tokens[i].text)}", style="bold cyan" if mark != " " else "")
        table.add_row(str(i), "", token, *(cell(values, i) for _, values in columns))
    return table


def _table(result: ContribResult, shown: list[int], columns: list, label: int, colour: bool) -> Table:
    """Tokens × `columns`, each cell a share in %; heat scaled by each column's largest."""
    peaks = {id(values): float(values.max()) or 1.0 for _, values in columns}

    def cell(values: np.ndarray, i: int) -> Text:
        share = float(values[i])
        number = "  ·" if share < 0.005 else f"{share * 100:3.0f}"
        return Text(" " + number, style=heat(share / peaks[id(values)]) if colour and share >= 0.005 else "")

    return _token_table(result, shown, result.query.token_indices, columns, label, CELL, cell)


def _lines(result: ContribResult, width: int) -> Text:
    out = Text()
    for n, layer in enumerate(result.layers):
        if n:
            out.append("\n")
        out.append_text(_top(result, result.rows[n], f"L{layer} ", width))
    return out


def _fitted(lead: str, parts, width: int) -> Text:
    """`lead` in bold, then as many of `parts` (largest first) as fit in `width` columns, joined by ·."""
    line = Text(lead, style="bold")
    used = len(lead)
    for n, part in enumerate(parts):
        part = part if n == 0 else " · " + part
        if used + len(part) > width:
            break
        line.append(part)
        used += len(part)
    return line


def _top(result: ContribResult, row: np.ndarray, lead: str, width: int) -> Text:
    """`lead`, then the largest shares of `row` that fit in `width` columns."""
    largest = [i for i in np.argsort(-row, kind="stable")[:8] if row[i] >= 0.005]
    return _fitted(lead, (f"{printable(result.tokenization.tokens[i].text)[:LABEL]} {row[i] * 100:.0f}%" for i in largest), width)


def _logit_view(result: ContribResult, width: int, colour: bool) -> list:
    """ALTI-Logit: tokens × layers, each cell the token's part of the target's logit (minus the
    foil's) through that layer's attention, rolled out to the input; `all`: their sum."""
    m, e = result.model, result.logit
    tokens = result.tokenization.tokens
    explained = f'"{printable(e.target.text)}"' + ("" if e.foil is None else f' − "{printable(e.foil.text)}"')
    header = Text.assemble(
        (m.name, "bold magenta"), f" ({m.architecture}, {m.layers} layers) · at token {e.position} ",
        (f'"{printable(tokens[e.position].text)}"', "bold cyan"), " · logit of ", (explained, "bold"), f" = {e.logit:.2f}",
    )
    title = Text(f"{TITLES[result.method]}: each input token's part of that logit, per layer's attention, rolled out", style="bold underline")
    shown = list(range(e.position + 1))
    columns = [(f"L{layer}", result.rows[n]) for n, layer in enumerate(result.layers)] + [("all", result.whole)]
    label = min(LABEL, max(width_of(printable(tokens[i].text)) for i in shown))
    per_block = (width - (len(str(shown[-1])) + 1 + label + 1)) // LOGIT_CELL  # layer columns beside the token labels
    fits = per_block >= 1
    out = [header, title]
    if fits:  # more layers than fit in one row of columns: blocks of layers, each beside the tokens again
        peak = max(float(np.abs(values[: len(shown)]).max()) for _, values in columns) or 1.0
        blocks = _folded(columns, per_block)
        out += _spaced([_logit_table(result, shown, block, label, peak, colour) for block in blocks])
    out.append(_top_logits(result, width))
    out.extend(_head_logits(result, width, colour))
    legend = "Each column: one layer's attention (no MLP, no b_O, no embedding); all: their sum" if fits else "Largest parts of the logit (sum over layers)"
    if fits and len(blocks) > 1:
        legend += f"; the layers in {len(blocks)} blocks of {per_block} to fit {width} columns"
    out.append(Text(legend, style="dim"))
    return out


def _logit_table(result: ContribResult, shown: list[int], columns: list, label: int, peak: float, colour: bool) -> Table:
    """Tokens × `columns` (name, values (seq,)), each cell a part of the logit; heat scaled by `peak`."""

    def cell(values: np.ndarray, i: int) -> Text:
        v = float(values[i])
        style = (heat(abs(v) / peak) if v > 0 else "bold blue") if colour and abs(v) >= 0.005 else ""
        return Text(f" {v:+6.2f}" if abs(v) < 100 else f" {v:+6.0f}", style=style)

    return _token_table(result, shown, (result.logit.position,), columns, label, LOGIT_CELL, cell)


def _top_logits(result: ContribResult, width: int) -> Text:
    """The tokens with the largest parts of the logit (by size, with their sign), as fit in `width`."""
    row = result.whole
    largest = [i for i in np.argsort(-np.abs(row), kind="stable")[:8] if abs(row[i]) >= 0.005]
    return _fitted("Whole model: ", (f"{printable(result.tokenization.tokens[i].text)[:LABEL]} {row[i]:+.2f}" for i in largest), width)


def _head_logits(result: ContribResult, width: int, colour: bool) -> list:
    """Each head's part of the logit, summed over the input positions (before the rollout): a
    layers × heads grid where it fits, and the largest heads by size."""
    totals = result.logit.heads.sum(axis=-1)  # (layers shown, heads)
    out = [Text("Each head's part of the logit (its direct update, all input tokens)", style="bold underline")]
    if 4 + LOGIT_CELL * totals.shape[1] <= width:
        table = Table(box=None, show_edge=False, pad_edge=False, padding=(0, 0), header_style="dim")
        table.add_column("L", justify="right", no_wrap=True, min_width=3)
        for h in range(totals.shape[1]):
            table.add_column(str(h).rjust(LOGIT_CELL), justify="right", no_wrap=True, width=LOGIT_CELL)
        peak = float(np.abs(totals).max()) or 1.0
        for layer, row in zip(result.layers, totals, strict=True):
            cells = []
            for v in row:
                style = (heat(abs(v) / peak) if v > 0 else "bold blue") if colour and abs(v) >= 0.005 else ""
                cells.append(Text(f" {v:+6.2f}" if abs(v) < 100 else f" {v:+6.0f}", style=style))
            table.add_row(str(layer), *cells)
        out.append(table)
    largest = [divmod(int(k), totals.shape[1]) for k in np.argsort(-np.abs(totals), axis=None, kind="stable")[:8]]
    parts = (f"L{result.layers[row]}.h{h} {totals[row, h]:+.2f}" for row, h in largest if abs(totals[row, h]) >= 0.005)
    out.append(_fitted("Largest heads: ", parts, width))
    return out
