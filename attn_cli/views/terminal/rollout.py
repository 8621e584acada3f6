"""The Rich view of `RolloutResult`."""

from __future__ import annotations

from rich.text import Text

from ...compute.rollout import RolloutResult
from ...loading.tokenizer import units
from .fit import Column, Table
from .inspect import Fitted


def rollout_view(result: RolloutResult) -> list:
    m = result.model
    cross = result.attention == "cross"  # rows are the source, the query a target token: none is masked or the query
    query = set() if cross else set(result.query.token_indices)
    rows = []
    for n, unit in enumerate(units(result.tokenization, result.level)):
        first, last = unit.token_indices[0], unit.token_indices[-1]
        is_query = set(unit.token_indices) <= query
        position = str(first) if first == last else f"{first}–{last}"
        if m.causal and not cross and first > max(query):  # as inspect shows them: masked, not a weight of 0
            rows.append((position, ("  masked (future)", "dim italic"), "—", None, "—", "—"))
            continue
        label = (("▶ " if is_query else "  ") + unit.text, "bold cyan" if is_query else ("dim" if unit.special else ""))
        clean = "" if result.without_sink is None else f"{result.without_sink[n]:.3f}"
        rows.append((position, label, f"{result.rollout[n]:.3f}", float(result.rollout[n]), f"{result.last_layer[n]:.3f}", clean))
    cells = list(zip(*rows))
    columns = [
        Column("#", cells=list(cells[0]), key=True, style="dim"), Column(result.level, "label", list(cells[1]), key=True, min=6),
        Column("rollout", cells=list(cells[2])), Column("", "bar", list(cells[3]), style="green", min=3), Column("last layer", cells=list(cells[4])),
    ]
    if result.without_sink is not None:  # decoders: where attention flows once the first token's sink is set aside
        columns.append(Column("w/o sink", cells=list(cells[5])))
    plan = (("shrink", "", 3), ("drop", ""), ("gap", 2), ("shrink", result.level, 6), ("fold",))
    table = Fitted(Table(columns, plan, gap=3).lines)
    top = _top("Top by rollout: ", result.top)
    extra = [_top("Top without the sink: ", result.top_without_sink)] if result.top_without_sink else []
    extra += [Text("note: " + note, style="yellow") for note in result.notes]
    return [
        Text.assemble((m.name, "bold magenta"), f" ({m.architecture}, {m.layers} layers) · query ", (f'"{result.query.text}"', "bold cyan")),
        Text(_TITLES.get(result.attention, _TITLES[None]), style="bold underline"),
        table,
        top,
        *extra,
    ]


_TITLES = {
    None: "Attention rollout (Abnar & Zuidema 2020): mean over heads, ½A + ½I, multiplied through all layers",
    "encoder": "Attention rollout of the encoder (Abnar & Zuidema 2020): mean over heads, ½A + ½I, multiplied through its layers",
    "decoder": "Attention rollout of the decoder's self-attention: mean over heads, ½A + ½I, multiplied through its layers",
    "cross": "Cross-attention rollout onto the source: through the decoder's layers, each ½ its self-attention (½A + ½I), ½ its "
    "cross-attention (mean over heads); last layer: its cross-attention",
}


def _top(title: str, words) -> Text:
    top = Text(title, style="bold")
    for n, w in enumerate(words):
        top.append((" · " if n else "") + w.name, style="dim" if w.special else "bold")
        top.append(f" {w.weight:.2f}")
    return top
