"""Rich views of a `StatsResult` (named heads, then a layers × heads grid) and of a
`CompareResult` (the most-changed heads word by word, then one line per layer).

Everything shown is read from the result; only presentation happens here. Every line is laid
out to fit the console's width (80 columns when piped): wide grids drop digits, then split.
"""

from __future__ import annotations

import numpy as np
from rich import box
from rich.console import RenderableType
from rich.style import Style
from rich.table import Table
from rich.text import Text

from ...compute.result import ModelInfo
from ...compute.stats import CompareResult, StatsResult
from ..palette import heat_style
from .fit import Column
from .fit import Table as FitTable
from .inspect import Fitted, heat

# One letter per kind of head in the grid, in `analysis.HEAD_KINDS` order.
CODES = {"previous-token": "P", "self": "S", "next-token": "N", "special-token": "C", "first-token": "F", "punctuation": "."}
_COMPARE_ROWS = 16  # aligned words per head table; longer texts keep their largest |Δ|
_HALF_BAR = 8  # characters on each side of a signed bar's zero line


def _model_line(m: ModelInfo) -> Text:
    return Text.assemble((m.name, "bold magenta"), f" ({m.architecture}, {m.layers} layers × {m.heads} heads, d_k {m.head_dim})")


def _value(v: float) -> str:
    """Three characters: .63, 1.0 (so a grid cell is a letter and three characters)."""
    return "1.0" if v >= 0.995 else f"{v:.2f}"[1:]


# --- attn stats ------------------------------------------------------------------------------


def stats_view(result: StatsResult, width: int, metric: str | None = None) -> list[RenderableType]:
    texts = "1 text" if result.texts == 1 else f"{result.texts} texts"
    parts: list[RenderableType] = [
        _model_line(result.model),
        Text(f"{texts}, {result.tokens} tokens · every query row of every text · threshold {result.threshold:g}", style="dim"),
        *_attention_lines(result),
        Text(f"\nNamed heads · mean attention mass ≥ {result.threshold:g}, heaviest first", style="bold underline"),
    ]
    if result.named:
        parts.append(named_table(result, width))
    else:
        parts.append(Text("  no head passes the threshold; try a lower --threshold", style="yellow"))
    sink = result.sink()
    parts.append(
        Text(
            f"\nSinks (Gu et al., ε = {sink['epsilon']:g}): {sink['heads_over_epsilon']:.0%} of heads put a mean > ε on the first token;"
            f" {sink['fraction']:.0%} of (head, text) pairs do",
            style="dim",
        )
    )
    if result.knockout is not None:
        parts += knockout_lines(result)
    if result.contributions is not None:
        parts += contribution_lines(result)
    if metric is not None:
        parts.append(Text(f"\nEvery head · {metric} ({METRIC_NOTES.get(metric, 'mean')})", style="bold underline"))
        return parts + metric_lines(result, metric, width)
    parts.append(Text("\nEvery head · its strongest kind and mass", style="bold underline"))
    parts += grid_lines(result, width)
    parts += [
        Text("P previous token · S self · N next token · . punctuation", style="dim"),
        Text("C special tokens ([CLS], [SEP]) · F the first token (BOS, [CLS])", style="dim"),
        Text("cell: the head's strongest kind; its mean mass, also as colour · nats: entropy", style="dim"),
    ]
    return parts


ATTENTION_LINES = {
    "encoder": "the encoder's self-attention: each source token over the source",
    "decoder": "the decoder's self-attention: each target position over the decoder's input up to it",
    "cross": "cross-attention: each target position over the source; position-based statistics not measured",
}


def _attention_lines(result: StatsResult) -> list[Text]:
    """An encoder–decoder's: which of its attentions the statistics are of."""
    return [] if result.attention is None else [Text(ATTENTION_LINES[result.attention], style="dim")]


def named_table(result: StatsResult, width: int) -> Table:
    """layer, head, kind, value of every named head; in two blocks side by side (read down,
    then across) when there are many and the width allows, to keep the table short."""
    group_width = 33  # layer 5 + head 4 + "P previous-token" 16 + value 5, a space between each
    blocks = 2 if len(result.named) > 10 and width >= 2 * group_width + 4 else 1
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 0))
    for block in range(blocks):
        if block:
            table.add_column("│", style="dim", no_wrap=True)
        table.add_column("layer", justify="right")
        table.add_column("head", justify="right")
        table.add_column("kind", no_wrap=True)
        table.add_column("value", justify="right")
    heads = _by_head(result.named)
    rows = -(-len(heads) // blocks)
    for r in range(rows):
        cells: list[RenderableType] = []
        for block in range(blocks):
            if block:
                cells.append("│")
            k = block * rows + r
            if k < len(heads):
                (layer, head), kinds = heads[k]
                label = kinds[0].kind if len(kinds) == 1 else " + ".join(n.kind.removesuffix("-token") for n in kinds)
                codes = "".join(CODES[n.kind] for n in kinds)
                cells += [str(layer), str(head), f"{codes:<2} {label}"[:20], Text(f"{kinds[0].value:.2f}", style=heat(kinds[0].value))]
            else:
                cells += ["", "", "", ""]
        table.add_row(*cells)
    return table


def _by_head(named) -> list:
    """Named kinds grouped per (layer, head), heads in the order of their strongest kind: a
    [CLS] head is both a special-token and a first-token head, and gets one row."""
    grouped: dict[tuple[int, int], list] = {}
    for n in named:
        grouped.setdefault((n.layer, n.head), []).append(n)
    return list(grouped.items())


def _grid_layout(heads: int, label: int, width: int) -> tuple[int, int, int]:
    """(cell width, gap, heads per block): a letter and three digits per cell if every head
    fits, else a letter alone, else letters in blocks of heads. `label`: the row label width
    plus the entropy column."""
    for cell, gap in ((4, 1), (1, 1), (1, 0)):
        if label + heads * (cell + gap) <= width:
            return cell, gap, heads
    return 1, 0, max(1, width - label)


def grid_lines(result: StatsResult, width: int) -> list[Text]:
    """Layers × heads: each head's strongest kind as a letter (and its mass), heat-coloured by
    that mass, then the layer's mean entropy in nats."""
    heads, layers = result.model.heads, len(result.layers)
    label = len(f"L{layers - 1}") + 1
    cell, gap, per_block = _grid_layout(heads, label + 6, width)
    lines = []
    for first in range(0, heads, per_block):
        block = range(first, min(first + per_block, heads))
        # Narrow cells: the head index written downwards, tens above units, never cut to a digit.
        names = [str(h) if cell > 1 else str(h % 10) for h in block]
        if cell == 1 and block[-1] >= 10:
            tens = Text(" " * label, style="bold")
            tens.append((" " * gap).join((str(h // 10) if h >= 10 else " ") for h in block), style="bold")
            lines.append(tens)
        header = Text(" " * label, style="bold")
        header.append((" " * gap).join(n.rjust(cell) for n in names), style="bold")
        lines.append(header.append("  nats", style="bold"))
        for layer in range(layers):
            kinds, values = result.strongest(layer)
            line = Text(f"L{layer}".ljust(label), style="bold")
            for n, h in enumerate(block):
                if n:
                    line.append(" " * gap)
                style = heat(float(values[h]))
                line.append(CODES[kinds[h]], style=style + Style(bold=True))  # bold: "." must not read as a decimal point
                if cell > 1:
                    line.append(_value(float(values[h])), style=style)
            line.append(f"  {float(np.mean(result.layers[layer]['entropy'])):4.2f}")
            lines.append(line)
    return lines


METRIC_NOTES = {
    "entropy": "nats; colour: share of the largest",
    "entropy_normalised": "entropy / ln(visible keys)",
    "sink_rate": "share of texts where the head's mean first-token attention > ε",
    "induction_mul": "on repeated random tokens",
    "induction_abs": "on repeated random tokens; 1 − row L1 error",
    "previous_token_abs": "1 − row L1 error",
    "duplicate_token_abs": "1 − row L1 error",
    "ablation": "mean change when the head is ablated (--ablate); colour: |change|, share of the largest",
}


def knockout_lines(result: StatsResult, top: int = 5) -> list[Text]:
    """`--knockout`: the (distance, layer) pairs whose knockout lowered p most, on average."""
    k = result.knockout
    lines = [Text(f"\nKnockout (Geva et al.; window {k.window} layers; {k.texts} texts) · biggest mean drops of p(top-1)", style="bold underline")]
    flat = np.where(np.isnan(k.changes), np.inf, k.changes).ravel()
    for i in np.argsort(flat, kind="stable")[:top]:
        d, layer = divmod(int(i), k.changes.shape[1])
        if np.isfinite(flat[i]):
            word = "the last word" if d == 0 else f"{d} word{'s' if d > 1 else ''} back"
            lines.append(Text(f"  {word}, layer {layer}: {k.changes[d, layer]:+.1%} over {k.words[d]} words"))
    return lines


CONTRIBUTION_COLUMNS = {"self": "self", "first_token": "first", "special": "special", "punctuation": "punct", "previous_token": "prev", "next_token": "next"}


def contribution_lines(result: StatsResult) -> list[Text]:
    """`--contributions`: per layer and kind of token, the mean attention mass (over the layer's
    heads) beside the mean contribution share, so that a kind that takes weight but gives little
    stands out."""
    c = result.contributions
    lines = [
        Text(f"\nContributions ({c.method}; {c.texts} texts) · per layer and kind of token", style="bold underline"),
        Text(("  layer " + "".join(f"{name:<11}" for name in CONTRIBUTION_COLUMNS.values())).rstrip(), style="dim"),
    ]
    for layer in range(len(c.shares["self"])):
        cells = "".join(f"{_cell(c.attention[k][layer])} {_cell(c.shares[k][layer])}    " for k in CONTRIBUTION_COLUMNS)
        lines.append(Text(f"  {layer:<5} {cells}".rstrip()))
    return [*lines, Text("cell: attention mass (mean over heads), contribution share (mean over tokens)", style="dim")]


def _cell(v: float) -> str:
    """Three characters for any statistic: .63, 1.0, 2.4, -.3, 12 ; " - " for no data."""
    if np.isnan(v):
        return " - "
    if 0 <= v < 0.995:
        return f"{v:.2f}"[1:]
    if -0.95 < v < 0:
        return "-" + f"{-v:.1f}"[1:]
    if abs(v) < 9.95:
        return f"{v:3.1f}"
    return f"{v:3.0f}"[:3]


def metric_lines(result: StatsResult, metric: str, width: int) -> list[Text]:
    """Layers × heads of one statistic: its value in each cell, heat-coloured (values in [0, 1]
    as they are; entropy in nats, and an ablation's |change|, as a share of the grid's largest;
    other negatives as 0)."""
    values = result.metric(metric)
    signed = metric == "ablation"  # Δ log p is mostly negative: its size is what matters
    top = float(np.nanmax(np.abs(values) if signed else values)) if np.isfinite(values).any() else 1.0
    scale = top if metric in ("entropy", "ablation") and top > 0 else 1.0
    heads, layers = result.model.heads, values.shape[0]
    label = len(f"L{layers - 1}") + 1
    per_block = max(1, (width - label - 6) // 4)
    lines = []
    for first in range(0, heads, per_block):
        block = range(first, min(first + per_block, heads))
        header = Text(" " * label, style="bold")
        header.append(" ".join(str(h).rjust(3) for h in block), style="bold")
        lines.append(header.append("  mean", style="bold"))
        for layer in range(layers):
            line = Text(f"L{layer}".ljust(label), style="bold")
            for n, h in enumerate(block):
                v = float(values[layer, h])
                line.append(" " if n else "")
                line.append(_cell(v), style=heat(0.0 if np.isnan(v) else min(max((abs(v) if signed else v) / scale, 0.0), 1.0)))
            row = values[layer]
            line.append("  " + (_cell(float(np.nanmean(row))) if np.isfinite(row).any() else " - "))
            lines.append(line)
    return lines


# --- attn compare ----------------------------------------------------------------------------


def _word(words: tuple[str, ...], index: int | None) -> str:
    return "—" if index is None else words[index]


def pair_label(result: CompareResult, k: int) -> str:
    """The k-th aligned pair as one label: "sat", or "cat→dog" where the words differ."""
    i, j = result.alignment[k]
    a, b = _word(result.words_a, i), _word(result.words_b, j)
    return a if a.casefold() == b.casefold() else f"{a}→{b}"


def signed_bar(delta: float, scale: float) -> list[tuple[str, str]]:
    """Δ as a bar from a zero line, as (text, style) segments: left (red) for B < A, right
    (green) for B > A, in half characters, `scale` filling one side."""
    halves = int(round(min(abs(delta) / scale, 1.0) * _HALF_BAR * 2)) if scale > 0 else 0
    full, half = divmod(halves, 2)
    if delta < 0:
        left = ("▐" if half else "") + "█" * full
        return [(left.rjust(_HALF_BAR), "red"), ("│", "dim"), (" " * _HALF_BAR, "")]
    return [(" " * _HALF_BAR, ""), ("│", "dim"), (("█" * full + ("▌" if half else "")).ljust(_HALF_BAR), "green")]


def _shown_rows(diff: np.ndarray) -> list[int]:
    """The aligned pairs to list, in text order: all, or the largest |Δ| of a long text."""
    if len(diff) <= _COMPARE_ROWS:
        return list(range(len(diff)))
    return sorted(np.argsort(-np.abs(diff), kind="stable")[:_COMPARE_ROWS].tolist())


def head_table(result: CompareResult, layer: int, head: int) -> tuple[Fitted, int]:
    """word A | weight A | word B | weight B | Δ | bar for one head; and how many rows were left out.
    Narrow, the bar goes, then words are cut; the weights and Δ are never cut."""
    c = result.layer(layer)
    a, b, diff = c.weights_a[head], c.weights_b[head], c.diff[head]
    scale = float(np.abs(diff).max())
    rows = _shown_rows(diff)

    def weight(seen: tuple[bool, ...], index: int | None, value: float) -> str:
        if index is None:
            return ""
        return "—" if seen and not seen[index] else f"{value:.3f}"  # a decoder's future: masked, as in inspect

    cells: list[list] = [[], [], [], [], [], []]
    for k in rows:
        i, j = result.alignment[k]
        masked = bool(result.seen_a and i is not None and not result.seen_a[i] and (j is None or not result.seen_b[j]))
        row = [
            (_word(result.words_a, i), "dim" if i is None else ""), weight(result.seen_a, i, a[k]),
            (_word(result.words_b, j), "dim" if j is None else ""), weight(result.seen_b, j, b[k]),
            "—" if masked else f"{diff[k]:+.3f}", signed_bar(float(diff[k]), scale),
        ]
        for column, cell in zip(cells, row):
            column.append(cell)
    columns = [
        Column("word A", "label", cells[0], key=True, min=6), Column("A", cells=cells[1], group="A"),
        Column("word B", "label", cells[2], min=6, group="B"), Column("B", cells=cells[3], group="B"),
        Column("Δ B−A", cells=cells[4]), Column("", "fixed", cells[5]),
    ]
    plan = (("shrink", "word A", 14), ("shrink", "word B", 14), ("gap", 2), ("drop", ""), ("shrink", "word A", 6), ("shrink", "word B", 6), ("fold",))
    return Fitted(FitTable(columns, plan, gap=3).lines), len(diff) - len(rows)


def layer_summary(result: CompareResult) -> Fitted:
    """One line per layer: the mean change over heads, the most changed head, and the aligned
    word whose mean weight over heads moved most."""
    rows = []
    for c in result.layers:
        top, k, moved = c.top_head, c.most_moved, float(c.mean_diff[c.most_moved])
        rows.append([
            str(c.layer), f"{c.change.mean():.3f}", str(top), (f"{c.change[top]:.3f}", heat_style(min(1.0, c.change[top] / 2))),
            (pair_label(result, k), ""), (f"{moved:+.3f}", "green" if moved > 0 else "red"),
        ])
    cells = list(zip(*rows)) if rows else [[]] * 6
    columns = [
        Column("layer", cells=list(cells[0]), key=True), Column("mean Σ|Δ|", cells=list(cells[1])),
        Column("top head", cells=list(cells[2]), group="head"), Column("Σ|Δ|", cells=list(cells[3]), group="head"),
        Column("word", "label", list(cells[4]), min=6, group="word"), Column("mean Δ", cells=list(cells[5]), group="word"),
    ]
    plan = (("shrink", "word", 22), ("gap", 2), ("shrink", "word", 8), ("fold",), ("shrink", "word", 6))
    return Fitted(FitTable(columns, plan, gap=3).lines)


# An encoder–decoder's comparison: which of its attentions, and whose words the rows run over.
COMPARE_KINDS = {
    "encoder": "the encoder's self-attention: a source token over the source's words",
    "decoder": "the decoder's self-attention: a target token over the target's words up to it",
    "cross": "cross-attention: a target token over the source's words",
}


def compare_view(result: CompareResult) -> list[RenderableType]:
    qa, qb = result.query_a, result.query_b
    parts: list[RenderableType] = [_model_line(result.model)]
    if result.attention is not None:
        parts.append(Text(COMPARE_KINDS[result.attention], style="dim"))
    for name, text, target, q in (("A", result.text_a, result.target_a, qa), ("B", result.text_b, result.target_b, qb)):
        where = ", ".join(map(str, q.token_indices)) + ("" if target is None else " of the target")
        line = Text.assemble((f"{name} · ", "bold"), (f'"{q.text}"', "bold cyan"), f" = token{'s' if len(q.token_indices) > 1 else ''} {where} · ")
        line.append(text.replace("\n", " ") if target is None else f"{target} ← {text}".replace("\n", " "))
        line.no_wrap, line.overflow = True, "ellipsis"
        parts.append(line)
    shown = result.most_changed[: result.top]
    title = f"\nMost changed heads · Σ|Δ| of the query's word weights, Δ = B − A ({len(shown)} of {len(result.most_changed)})"
    parts.append(Text(title, style="bold underline"))
    for layer, head, change in shown:
        table, hidden = head_table(result, layer, head)
        parts += [Text(f"\nLayer {layer} · head {head} · Σ|Δ| {change:.3f}", style="bold"), table]
        if hidden:
            parts.append(Text(f"  … {hidden} more aligned words with smaller |Δ|", style="dim"))
    parts.append(Text("\nEvery layer · mean over its heads", style="bold underline"))
    parts.append(layer_summary(result))
    return parts

