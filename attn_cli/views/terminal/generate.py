"""Rich views of `attn generate` (the continuation, then one line per generated token) and of
`attn lens` (layers as rows). With a query, generate's view ends with inspect's, from the same
renderer."""

from __future__ import annotations

import math

from rich.console import RenderableType
from rich.text import Text

from ...compute.generate import GenerateResult
from ...compute.lens import LensResult
from ..text import token_text as _shown
from .fit import Column, Table
from .inspect import Fitted, inspect_view, tokens_table


def _mib(n: int) -> str:
    if n < 2**20:
        return f"{n / 2**10:.1f} KiB"
    return f"{n / 2**20:.1f} MiB" if n < 2**30 else f"{n / 2**30:.2f} GiB"


def _settings(r: GenerateResult) -> str:
    s = r.sampling
    if not s.sample:
        return "greedy"
    parts = [f"sampled, temperature {s.temperature:g}"]
    parts += [f"top-k {s.top_k}"] if s.top_k is not None else []
    parts += [f"top-p {s.top_p:g}"] if s.top_p is not None else []
    return ", ".join(parts + [f"seed {s.seed}" if s.seed is not None else "no seed (not reproducible)"])


def generate_view(r: GenerateResult) -> list[RenderableType]:
    m = r.model
    layers = f"{m.layers} decoder layers" if r.source is not None else f"{m.layers} layers"
    parts: list[RenderableType] = [Text.assemble((m.name, "bold magenta"), f" ({m.architecture}, {layers} × {m.heads} heads) · {_settings(r)}")]
    prompt_text = r.prompt.text if r.prompt is not None else r.tokenization.text[: len(r.tokenization.text) - len(r.continuation)]
    if r.chat:
        parts.append(Text("\nChat template, rendered (special tokens dim in the table):", style="bold"))
        parts.append(Text(prompt_text, style="dim"))
        if r.prompt is not None:
            parts.append(tokens_table(r.prompt))
    if r.source is not None:  # an encoder–decoder: the source, and the target it wrote
        parts.append(Text.assemble("\nSource: ", (r.source.text, "dim"), "\nTarget: ", (r.continuation, "bold green")))
    else:
        parts.append(Text.assemble(("\n" if not r.chat else "") + "Text: ", (prompt_text if not r.chat else "…", "dim"), (r.continuation, "bold green")))

    alternatives = [[[(_shown(c.text), ""), (f" {math.exp(c.logprob):.2f}", "dim")] for c in s.top if c.id != s.id] for s in r.steps]
    attended = [
        ("—", "dim", "", "") if s.attended is None else (_shown(s.attended.label or s.attended.text), "", f" {s.attended.weight:.2f}", "dim")
        for s in r.steps
    ]
    columns = [
        Column("#", cells=[str(s.position) for s in r.steps], key=True),
        Column("token", "label", [(_shown(s.text), "bold") for s in r.steps], key=True),
        Column("p", cells=[f"{math.exp(s.logprob):.2f}" for s in r.steps], group="p"),
        Column("alternatives", "items", alternatives, group="p"),  # wrapped between alternatives, never inside one
        Column("source word" if r.source is not None else "attended most", "pair", attended, min=8),
    ]
    attended_name = "source word" if r.source is not None else "attended most"
    plan = (("gap", 2), ("shrink", "alternatives", 0), ("shrink", attended_name, 13), ("shrink", "token", 10), ("fold",), ("shrink", "token", 6))
    table = Fitted(Table(columns, plan, gap=3).lines)
    parts.append(table)
    stop = "end of sequence" if r.stop_reason == "eos" else f"length (-n {r.max_new_tokens})"
    cache = f" · KV cache {_mib(r.cache_bytes)}" if r.cache_bytes else " · no KV cache"
    how = (
        "source word: the one its cross-attention weighs most, last layer, mean over heads" if r.source is not None
        else "attended most: last layer, mean over heads, first token left out"
    )
    parts.append(Text(f"{len(r.steps)} tokens · stopped at {stop}{cache} · {how}", style="dim"))
    if r.inspect is not None:
        parts.append(Text(""))
        parts += inspect_view(r.inspect)
    return parts


def lens_view(r: LensResult) -> list[RenderableType]:
    m = r.model
    parts: list[RenderableType] = [
        Text.assemble(
            (m.name, "bold magenta"), f" · logit lens at token {r.position} ",
            (f'"{r.tokenization.tokens[r.position].text}"', "bold cyan"), ": the next token read after each layer"
        )
    ]
    columns = [Column("layer", cells=[str(row.layer) for row in r.layers], key=True)]
    for k in range(r.top_k):
        cells = [(_shown(row.top[k].text), "", f" {math.exp(row.top[k].logprob):.2f}", "dim") if k < len(row.top) else None for row in r.layers]
        columns.append(Column(f"#{k + 1}", "pair", cells, min=8))
    plan = (("gap", 2), *(("shrink", c.name, 12) for c in columns[1:]), ("fold",), *(("shrink", c.name, 8) for c in columns[1:]))
    table = Fitted(Table(columns, plan, gap=3).lines)
    parts.append(table)
    parts.append(Text("the last layer's row is the model's own prediction", style="dim"))
    return parts
