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
    label = min(LABEL, max(len(printable(tokens[i].text)) for i in shown))
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


def _table(result: ContribResult, shown: list[int], columns: list, label: int, colour: bool) -> Table:
    table = Table(box=None, show_edge=False, pad_edge=False, padding=(0, 0), header_style="dim")
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column(" ", width=1)
    table.add_column("token", no_wrap=True, overflow="ellipsis", max_width=label + 1, min_width=label + 1)
    for name, _ in columns:
        table.add_column(name.rjust(CELL), justify="right", no_wrap=True, width=CELL)
    peaks = [float(values.max()) or 1.0 for _, values in columns]
    for i in shown:
        token = result.tokenization.tokens[i]
        mark = "▶" if i in result.query.token_indices else " "
        cells = []
        for (_, values), peak in zip(columns, peaks, strict=True):
            share = float(values[i])
            number = "  ·" if share < 0.005 else f"{share * 100:3.0f}"
            cells.append(Text(" " + number, style=heat(share / peak) if colour and share >= 0.005 else ""))
        table.add_row(str(i), "", Text(f"{mark}{printable(token.text)}", style="bold cyan" if mark != " " else ""), *cells)
    return table


def _lines(result: ContribResult, width: int) -> Text:
    out = Text()
    for n, layer in enumerate(result.layers):
        if n:
            out.append("\n")
        out.append_text(_top(result, result.rows[n], f"L{layer} ", width))
    return out


def _top(result: ContribResult, row: np.ndarray, lead: str, width: int) -> Text:
    """`lead`, then the largest shares of `row` that fit in `width` columns."""
    line = Text(lead, style="bold")
    used = len(lead)
    for n, i in enumerate(np.argsort(-row, kind="stable")[:8]):
        if row[i] < 0.005:
            break
        part = f"{'' if n == 0 else ' · '}{printable(result.tokenization.tokens[i].text)[:LABEL]} {row[i] * 100:.0f}%"
        if used + len(part) > width:
            break
        line.append(part)
        used += len(part)
    return line


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
    label = min(LABEL, max(len(printable(tokens[i].text)) for i in shown))
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
    tokens, position = result.tokenization.tokens, result.logit.position
    table = Table(box=None, show_edge=False, pad_edge=False, padding=(0, 0), header_style="dim")
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column(" ", width=1)
    table.add_column("token", no_wrap=True, overflow="ellipsis", max_width=label + 1, min_width=label + 1)
    for name, _ in columns:
        table.add_column(name.rjust(LOGIT_CELL), justify="right", no_wrap=True, width=LOGIT_CELL)
    for i in shown:
        cells = []
        for _, values in columns:
            v = float(values[i])
            style = (heat(abs(v) / peak) if v > 0 else "bold blue") if colour and abs(v) >= 0.005 else ""
            cells.append(Text(f" {v:+6.2f}" if abs(v) < 100 else f" {v:+6.0f}", style=style))
        mark = "▶" if i == position else " "
        table.add_row(str(i), "", Text(f"{mark}{printable(tokens[i].text)}", style="bold cyan" if mark != " " else ""), *cells)
    return table


def _top_logits(result: ContribResult, width: int) -> Text:
    """The tokens with the largest parts of the logit (by size, with their sign), as fit in `width`."""
    row = result.whole
    line = Text("Whole model: ", style="bold")
    used = len(line.plain)
    for n, i in enumerate(np.argsort(-np.abs(row), kind="stable")[:8]):
        if abs(row[i]) < 0.005:
            break
        part = f"{'' if n == 0 else ' · '}{printable(result.tokenization.tokens[i].text)[:LABEL]} {row[i]:+.2f}"
        if used + len(part) > width:
            break
        line.append(part)
        used += len(part)
    return line


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
    line = Text("Largest heads: ", style="bold")
    used = len(line.plain)
    flat = np.argsort(-np.abs(totals), axis=None, kind="stable")[:8]
    for n, k in enumerate(flat):
        row, h = divmod(int(k), totals.shape[1])
        v = float(totals[row, h])
        if abs(v) < 0.005:
            break
        part = f"{'' if n == 0 else ' · '}L{result.layers[row]}.h{h} {v:+.2f}"
        if used + len(part) > width:
            break
        line.append(part)
        used += len(part)
    out.append(line)
    return out
