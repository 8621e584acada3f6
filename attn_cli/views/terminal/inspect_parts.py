"""What the inspect screen says, without Rich: bars, numbers, row groups, labels and titles.

Shared by the Rich view (`inspect.py`) and the plain-text one (`plain.py`), so that both write the
same words; this module imports no Rich, so that the plain screen does not pay for it.
"""

from __future__ import annotations

import numpy as np

from ...compute.result import HeadResult, InspectResult, LayerResult
from ..palette import heat_style, weight_text
from ..text import printable
from .fit import Column, Seg, Table, cut, width_of

_BAR_WIDTH = 20
_EIGHTHS = " ▏▎▍▌▋▊▉"
_PREVIEW_DIMS = 3
_LABEL_WIDTH = 18  # longer token or word labels are cut with …
RANK_TITLES = {"weight": "Top-attended", "value_norm": "Top by ‖α·v‖", "output_norm": "Top by ‖α·v·Wₒ‖"}
LEGEND_WEIGHTS = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)
STEPS_HINT = "--steps adds step 1 (the q, k, v vectors) and step 3 (output = Σ weights·v)"


def bar(weight: float, width: int = _BAR_WIDTH) -> str:
    """A horizontal bar of `weight` ∈ [0, 1] in eighths of a character."""
    eighths = int(round(max(0.0, min(1.0, weight)) * width * 8))
    full, rest = divmod(eighths, 8)
    return "█" * full + (_EIGHTHS[rest] if rest else "")


def label_text(result: InspectResult, index: int) -> tuple[str, str]:
    """(text, style) of row `index` (a token, or a word at --level word); ▶ marks the query."""
    unit = result.units[index]
    if result.marked and set(unit.token_indices) <= result.marked:
        return f"▶ {printable(unit.text)}", "bold cyan"
    return f"  {printable(unit.text)}", "dim" if unit.special else ""


def scale_divisor(result: InspectResult) -> int | float:
    """s in Q·K/√s: head_dim, unless the model scales by something else (Gemma 3)."""
    scale = result.model.scale
    if scale is None or abs(scale * result.model.head_dim**0.5 - 1) < 1e-6:
        return result.model.head_dim
    s = 1 / scale**2
    return round(s) if abs(s - round(s)) < 1e-3 else round(s, 2)


def _layer_kind(result: InspectResult, layer: LayerResult) -> str:
    """For models whose layers differ (Gemma 3): whether this one slides or sees everything."""
    if result.model.layer_windows is None:
        return ""
    return " (global attention)" if layer.window is None else f" (sliding window {layer.window})"


def _position(result: InspectResult, index: int) -> str:
    """The # column: the token position, or a word's token positions (2–3)."""
    first, last = result.units[index].token_indices[0], result.units[index].token_indices[-1]
    return str(first) if first == last else f"{first}–{last}"


def _row_groups(result: InspectResult, layer: LayerResult, keep: set[int] | None = None):
    """Rows to show: ("token", i) for each visible unit, ("masked", first, last) for each run of
    units a decoder hides from the query, so a long future takes one line. `keep`: the units
    to show (`--rows top`); None: all of them."""
    visible = layer.visible
    i, n = 0, len(result.units)
    while i < n:
        if visible is None or visible[i]:
            if keep is None or i in keep:
                yield ("token", i)
            i += 1
            continue
        j = i
        while j + 1 < n and not visible[j + 1]:
            j += 1
        yield ("masked", i, j)
        i = j + 1


def top_rows(result: InspectResult, heads) -> set[int]:
    """`--rows top`: the units among the `--top` heaviest of any of `heads`, and the query's own."""
    keep = {i for i, u in enumerate(result.units) if result.marked and set(u.token_indices) <= result.marked}
    for head in heads:
        order = np.argsort(-np.nan_to_num(head.weights, nan=-1.0), kind="stable")
        keep |= {int(i) for i in order[: result.top_k]}
    return keep


def rows_fit(result: InspectResult, layer: LayerResult, height: int) -> bool:
    """Whether a table of every row of `layer` is no taller than `height` lines."""
    return sum(1 for _ in _row_groups(result, layer)) <= height


def masked_text(result: InspectResult, first: int, last: int) -> tuple[str, str]:
    """The # cell and the label text of a run of masked rows (unit indices first … last)."""
    first, last = result.units[first].token_indices[0], result.units[last].token_indices[-1]
    if not result.model.causal:  # an encoder's two-sided window (ModernBERT's local layers)
        where = "outside window"
    else:
        where = "future" if first > result.query.token_indices[-1] else "before window"
    span = str(first) if first == last else f"{first}–{last}"
    return span, f"masked ({where})"


def _head_name(head) -> str:
    return "mean over heads" if head == "mean" else f"head {head}"


def _number(values: np.ndarray | None, i: int) -> str:
    return "—" if values is None or np.isnan(values[i]) else f"{values[i]:.2f}"


def _vector(values: np.ndarray, dims: int = _PREVIEW_DIMS) -> str:
    """The first `dims` numbers of a vector: [+0.12 -1.30 …]."""
    shown = " ".join(f"{x:+.2f}" for x in values[:dims])
    return f"[{shown}{' …' if len(values) > dims else ''}]"


def _kv_note(result: InspectResult, head: HeadResult) -> str:
    """Under grouped-query attention: which key/value head this query head shares, and with whom."""
    m = result.model
    if head.kv_head is None or m.kv_heads == m.heads:
        return ""
    group = m.heads // m.kv_heads
    first = head.kv_head * group
    return f", reads key/value head {head.kv_head}, shared by heads {first}–{first + group - 1}"


def header_parts(result: InspectResult) -> list[tuple[str, str]]:
    """The first line, as (text, style) parts: the model, its shape, the query and where it is."""
    m, q = result.model, result.query
    where = f"token {q.token_indices[0]}" if len(q.token_indices) == 1 else f"tokens {', '.join(map(str, q.token_indices))}"
    layers = f"{m.layers} {'encoder ' if result.attention == 'encoder' else 'decoder ' if result.attention else ''}layers"
    return [
        (m.name, "bold magenta"), (f" ({m.architecture}, {layers} × {m.heads} heads, d_k {m.head_dim}) · query ", ""),
        (f'"{printable(q.text)}"', "bold cyan"), (f" = {'target ' if result.decoder_tokenization is not None else ''}{where}", ""),
    ]


def layer_title(result: InspectResult, layer: LayerResult, head_id, head: HeadResult) -> str:
    chosen = " — chosen by --head auto: attends most to other words" if layer.auto_head is not None else ""
    where = f"Layer {layer.layer} of 0–{result.model.layers - 1}{_layer_kind(result, layer)}"
    if result.attention is not None:  # an encoder–decoder's: which of its three attentions
        kind = {"encoder": "encoder self-attention", "decoder": "decoder self-attention (causal)", "cross": "cross-attention over the source"}
        where = f"{where} · {kind[result.attention]}"
    return f"{where} · {_head_name(head_id)}{_kv_note(result, head)}{chosen}"


def step2_title(result: InspectResult, layer: LayerResult | None = None) -> str:
    if result.level == "word":
        return "Step 2 · softmax weights, summed per word (words have no single score)"
    what = "Q·K (after RoPE)" if result.model.rotary else "Q·K"
    by = "√d_k" if scale_divisor(result) == result.model.head_dim else "√query_pre_attn_scalar"
    if scale_divisor(result) == 1:  # T5: 1/√d_k is folded into W_Q
        by = "1 (T5 folds √d_k into W_Q)"
    adjusted = f", {adjusted_label(result, layer.adjusts)}" if layer is not None and layer.adjusts else ""
    return f"Step 2 · scores {what}, scaled by {by}{adjusted}, softmax → weights"


def adjusted_label(result: InspectResult, adjusts: str) -> str:
    """The name of what comes between the scaled scores and the softmax (`LayerResult.adjusts`)."""
    if adjusts == "bias":
        return "+ position bias"
    cap = f"capped (tanh, {result.model.attn_softcap:g})"
    return cap if adjusts == "cap" else f"+ bias, {cap}"


def mean_rows_note(result: InspectResult, head: HeadResult) -> str | None:
    """Said when the query is several tokens: the arithmetic on screen must be true."""
    q = result.query
    if len(q.token_indices) > 1 and head.scores is not None:
        return (
            f"each column is the mean over the {len(q.token_indices)} query tokens' rows: the weights are the mean of "
            "their softmax rows, not the softmax of the mean scores"
        )
    return None


def sum_line(head: HeadResult) -> str:
    return f"Σ weights = {float(np.sum(head.weights)):.3f}: softmax makes each row sum to 1"


def multihead_title(result: InspectResult, layer: LayerResult) -> str:
    return f'Multi-head · layer {layer.layer}: weights of "{printable(result.query.text)}" in every head'


def step2_headers(result: InspectResult, head: HeadResult, layer: LayerResult) -> tuple[list[str], bool, bool]:
    """The step-2 table's column names, whether it has score columns, whether it has norms.
    Where the `layer` adjusts the scaled scores, a column of what the softmax reads follows them."""
    norms = head.value_norms is not None
    scored = head.scores is not None or result.level == "token"  # words have no score columns
    adjusted = [adjusted_label(result, layer.adjusts)] if head.adjusted_scores is not None else []  # what the softmax reads
    scores = ["Q·K", f"Q·K/√{scale_divisor(result)}", *adjusted] if scored else []
    headers = ["#", result.level, *scores, "weight"] + (["‖αv‖", "‖αvWₒ‖"] if norms else [])
    return headers, scored, norms


def step2_rows(
    result: InspectResult, layer: LayerResult, head: HeadResult, scored: bool, norms: bool, keep: set[int] | None = None
) -> list[tuple[list[str], float | None, str, int | None]]:
    """The step-2 table's rows as text, the cells both views print under `step2_headers`:
    (cells, weight, the label's style, unit index) per row; a run of masked rows has weight and
    index None. `keep`: the units to show (`--rows top`), else all."""
    rows = []
    columns = [head.scores, head.scaled_scores] + ([head.adjusted_scores] if head.adjusted_scores is not None else []) if scored else []
    for group in _row_groups(result, layer, keep):
        if group[0] == "masked":  # no score the model used, weight exactly 0
            span, text = masked_text(result, group[1], group[2])
            rows.append(([span, text, *["—"] * (len(columns) + 1 + 2 * norms)], None, "dim italic", None))
            continue
        i = group[1]
        weight = float(head.weights[i])
        label, style = label_text(result, i)
        scores = [_number(values, i) for values in columns]
        extra = [f"{head.value_norms[i]:.2f}", f"{head.output_norms[i]:.2f}"] if norms else []
        rows.append(([_position(result, i), label, *scores, f"{weight:.3f}", *extra], weight, style, i))
    return rows


def step2_layout(result: InspectResult, layer: LayerResult, head: HeadResult, keep: set[int] | None = None) -> Table:
    """The step-2 table, laid out for any width by `fit`: the bar shrinks first, then goes; the
    gap between columns narrows; labels are cut (to 6 cells); the columns that still do not fit
    (the norms) fold into a second block. The weights of the top words are bold."""
    headers, scored, norms = step2_headers(result, head, layer)
    top_units = {i for i, u in enumerate(result.units) for w in head.top[:3] if u.token_indices == w.token_indices}
    rows = step2_rows(result, layer, head, scored, norms, keep)
    weight = headers.index("weight")
    columns = [Column("#", cells=[cells[0] for cells, *_ in rows], key=True, style="dim")]
    columns.append(Column(headers[1], "label", [(cells[1], style) for cells, _, style, _ in rows], key=True, min=6))
    for c in range(2, len(headers)):
        bold = [c == weight and i in top_units for *_, i in rows]
        group = "norms" if c > weight else "weights"  # scores and weight stay together
        columns.append(Column(headers[c], cells=[(cells[c], "bold" if b else "") for (cells, *_), b in zip(rows, bold)], group=group))
    columns.append(Column("", "bar", [w for _, w, *_ in rows], style="green", width=_BAR_WIDTH // 2 if norms else _BAR_WIDTH, min=3))
    plan = (("shrink", "", 3), ("drop", ""), ("gap", 2), ("fold",), ("shrink", headers[1], 6))
    return Table(columns, plan, gap=3)


def step1_layout(result: InspectResult, layer: LayerResult, steps, keep: set[int] | None = None) -> Table:
    """Step 1's table: each token's key and value vectors (before and after RoPE for rotary
    models) and their norms. Narrow, the vectors show fewer elements (never a cut number), the
    gap narrows, labels are cut, and the norms fold into a second block."""
    rotary = steps.keys_pre_rope is not None
    rows = list(_row_groups(result, layer, keep))  # steps are token-level only
    label = [masked_text(result, g[1], g[2]) if g[0] == "masked" else (_position(result, g[1]), *label_text(result, g[1])) for g in rows]
    positions = [x[0] for x in label]
    labels = [(x[1], "dim italic") if len(x) == 2 else (x[1], x[2]) for x in label]
    index = [None if g[0] == "masked" else g[1] for g in rows]

    def vectors(array):
        return [None if i is None else array[i] for i in index]

    def norms(array):
        return [("" if i is None else f"{np.linalg.norm(array[i]):.2f}", "") for i in index]

    columns = [Column("#", cells=positions, key=True, style="dim"), Column("token", "label", labels, key=True, min=6)]
    if rotary:
        columns += [Column("k pre-RoPE", "vector", vectors(steps.keys_pre_rope)), Column("k post-RoPE", "vector", vectors(steps.keys))]
    else:
        columns += [Column("key k", "vector", vectors(steps.keys), group="k"), Column("‖k‖", cells=norms(steps.keys), group="k")]
    columns += [Column("value v", "vector", vectors(steps.values), group="v"), Column("‖v‖", cells=norms(steps.values), group="v")]
    names = [c.name for c in columns if c.kind == "vector"]
    plan = (("dims", names, 2), ("gap", 2), ("shrink", "token", 12), ("fold",), ("shrink", "token", 10), ("dims", names, 1), ("shrink", "token", 6))
    return Table(columns, plan, gap=3)


def hidden_units(result: InspectResult, layer: LayerResult, keep: set[int] | None) -> list[int]:
    """The visible units a table cut to `keep` (`--rows top`) leaves out."""
    if keep is None:
        return []
    return [i for i in range(len(result.units)) if (layer.visible is None or layer.visible[i]) and i not in keep]


def folded_line(result: InspectResult, layer: LayerResult, head: HeadResult, keep: set[int] | None) -> str | None:
    """Under a table cut to its top rows (`--rows top`): how many rows it leaves out and their
    total weight."""
    hidden = hidden_units(result, layer, keep)
    if not hidden:
        return None
    total = float(sum(head.weights[i] for i in hidden))
    return f"… {len(hidden)} more {result.level}s (Σ weight {total:.3f}); --rows all shows every row"


def top_items(head: HeadResult, rank_by: str = "weight") -> tuple[str, list[tuple[str, str, str]]]:
    """The top line's title and items (word, its style, the value that ranks it)."""
    by = rank_by if head.head != "mean" else "weight"  # the mean over heads has no norms
    return f"{RANK_TITLES[by]}: ", [(printable(w.name), "dim" if w.special else "bold", f" {getattr(w, by):.2f}") for w in head.top]


def grid_widths(layer: LayerResult) -> list[int]:
    """The width of each head's column in the multi-head grid."""
    return [4 if h.head == "mean" else max(3, len(str(h.head))) for h in layer.heads]


def grid_blocks(widths: list[int], room: int):
    """(start, stop) of each block of heads that fits `room` cells (at least one head a block)."""
    start = 0
    while start < len(widths):
        stop = start + 1
        while stop < len(widths) and sum(w + 1 for w in widths[start : stop + 1]) <= room:
            stop += 1
        yield start, stop
        start = stop


def grid_lines(result: InspectResult, layer: LayerResult, width: int, keep: set[int] | None = None) -> list[list[Seg]]:
    """The multi-head table as lines of (text, style): tokens × heads, each weight on its heat
    colour, focus heads' numbers reversed; the heads that do not fit the width go to further
    blocks below, never wrapped. With `keep` (`--rows top`), a last row sums the rows left out."""
    rows: list[tuple[str, tuple[str, str], list[float] | None]] = []
    for group in _row_groups(result, layer, keep):
        if group[0] == "masked":
            span, text = masked_text(result, group[1], group[2])
            rows.append((span, (text, "dim italic"), None))
        else:
            i = group[1]
            text, style = label_text(result, i)
            rows.append((_position(result, i), (printable(text), style), [float(h.weights[i]) for h in layer.heads]))
    if hidden := hidden_units(result, layer, keep):
        rows.append(("", (f"… {len(hidden)} more, Σ", "dim"), [float(sum(h.weights[i] for i in hidden)) for h in layer.heads]))
    number = max(len(r[0]) for r in rows)
    natural = max(len(result.level), *(width_of(r[1][0]) for r in rows))
    name = max(6, min(_LABEL_WIDTH, natural, width - number - 6))
    widths = grid_widths(layer)
    out = []
    for start, stop in grid_blocks(widths, width - number - name - 1):
        header: list[Seg] = [(f"{'#':>{number}} {result.level:<{name}}", "bold")]
        for h, w in zip(layer.heads[start:stop], widths[start:stop]):
            label = "mean" if h.head == "mean" else str(h.head)
            header += [(" ", ""), (f"{label:>{w}}", "bold reverse" if h.head in layer.focus else "bold")]
        out += [header, [("─" * sum(width_of(t) for t, _ in header), "")]]
        for position, (text, style), weights in rows:
            label = cut(text, name)
            line: list[Seg] = [(f"{position:>{number}}", "dim"), (" ", ""), (label, style), (" " * (name - width_of(label)), "")]
            for k in range(start, stop):
                line.append((" ", ""))
                if weights is None:
                    line.append((f"{'·':>{widths[k]}}", "dim"))
                else:
                    line.append((f"{weight_text(weights[k]):>{widths[k]}}", heat_style(min(weights[k], 1.0))))
            out.append(line)
    return out


def masked_legend(result: InspectResult) -> str | None:
    """What a `·` (or a masked row) in the tables stands for, when there is one: a decoder's
    future, or keys outside a sliding window. None for an encoder, which masks nothing."""
    kinds = []
    for layer in result.layers:
        for group in _row_groups(result, layer):
            if group[0] == "masked":
                kinds.append(masked_text(result, group[1], group[2])[1])
    if not kinds:
        return None
    why = []
    if "masked (future)" in kinds:
        why.append("the decoder's future")
    if "masked (before window)" in kinds or "masked (outside window)" in kinds:
        why.append("outside the layer's sliding window")
    return "· = masked: " + " or ".join(why)


def window_note(result: InspectResult, layer: LayerResult) -> str | None:
    """Under a table with "masked (before window)" (or, in an encoder, "masked (outside
    window)") rows: why they are masked."""
    runs = [masked_text(result, g[1], g[2]) for g in _row_groups(result, layer) if g[0] == "masked"]
    label = "masked (before window)" if result.model.causal else "masked (outside window)"
    spans = [span for span, text in runs if text == label]
    if not spans or layer.window is None:
        return None
    what = f"tokens {spans[0]} fall" if "–" in spans[0] else f"token {spans[0]} falls"
    if not result.model.causal:  # keys on both sides of the query may fall outside: name every run
        what = " and ".join(spans)
        what = f"tokens {what} fall" if "–" in what or len(spans) > 1 else f"token {what} falls"
        return (
            f"{label}: {what} outside the sliding window of layer {layer.layer}: there a query sees only "
            f"the tokens fewer than {layer.window} positions away, on either side"
        )
    return (
        f"{label}: {what} outside the sliding window of layer {layer.layer}: "
        f"there a query sees only the last {layer.window} tokens, itself included"
    )
