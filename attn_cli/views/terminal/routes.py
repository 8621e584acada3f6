"""The Rich view of `RoutesResult`: the routes as a layered listing, from the prediction down to
the input tokens. Per layer, each position the routes reach: the feed-forward's share and the
residual's into the layer output, then the attention's sources (with their heads) and the
residual into the attention's sum; last, the input tokens the routes start from."""

from __future__ import annotations

import numpy as np
from rich.text import Text

from ...compute.routes import RouteEdge, RoutesResult
from ..text import printable

LABEL = 16  # longest token text shown
TOP_HEADS = 3  # heads named per attention edge


def routes_view(result: RoutesResult, width: int, colour: bool = True) -> list:
    m = result.model
    header = Text.assemble(
        (m.name, "bold magenta"), f" ({m.architecture}, {m.layers} layers × {m.heads} heads) · routes to the prediction at ",
        (_token(result, result.position), "bold cyan"), f" · threshold {result.threshold:g}",
    )
    title = Text("Information-flow routes (Ferrando & Voita 2024): edge weights are shares of each sum (0–1)", style="bold underline")
    out = [header, title]
    for layer in sorted({e.layer for e in result.edges}, reverse=True):
        out.append(Text(f"Layer {layer}", style="bold"))
        edges = [e for e in result.edges if e.layer == layer]
        for t in sorted({e.target for e in edges}, reverse=True):
            out.append(_position(result, [e for e in edges if e.target == t], t, colour))
    sources = result.sources()
    drawn = [i for i in np.argsort(-sources, kind="stable") if sources[i] >= 0.005]
    line = Text("Input tokens by their share of the routes: ", style="bold")
    line.append(" · ".join(f"{_token(result, int(i))} {sources[i]:.2f}" for i in drawn) if drawn else "none above the threshold")
    out.append(line)
    out.append(Text(
        "← attention: from that token's input into its attention sum; h: each head's share; a token's share of the routes: "
        "the weights multiplied along each route and summed (docs/contributions.md)", style="dim",
    ))
    return out


def _token(result: RoutesResult, i: int) -> str:
    text = printable(result.tokenization.tokens[i].text)
    return f'{i} "{text if len(text) <= LABEL else text[: LABEL - 1] + "…"}"'


def _position(result: RoutesResult, edges: list[RouteEdge], t: int, colour: bool) -> Text:
    """One position's edges in one layer: its output's parts, then its attention sum's."""
    out = Text("  ")
    out.append(_token(result, t), style="cyan" if colour else "")
    ffn = [e for e in edges if e.kind == "ffn" or e.into == "ffn" or (e.kind == "residual" and e.into == "output")]
    if ffn:
        out.append("\n    output ← " + " · ".join(f"{'feed-forward' if e.kind == 'ffn' else 'residual'} {e.weight:.2f}" for e in ffn))
    attention = sorted((e for e in edges if e.kind == "attention"), key=lambda e: -e.weight)
    for e in attention:
        into = "attention" if e.into is None else "output ← attention"  # a parallel layer's attention enters the output
        out.append(f"\n    {into} ← {_token(result, e.source)} {e.weight:.2f}")
        top = [h for h in np.argsort(-e.heads, kind="stable")[:TOP_HEADS] if e.heads[h] > 0]
        out.append(" (" + ", ".join(f"h{h} {e.heads[h]:.2f}" for h in top) + ")", style="dim")
    for e in edges:
        if e.kind == "residual" and e.into == "attention":
            out.append(f"\n    attention ← residual {e.weight:.2f}")
    return out
