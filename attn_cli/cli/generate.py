"""`attn generate` (a decoder writes, and shows what it attended to) and `attn lens` (the logit lens)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import app, emit, read_text, reporting_errors
from .options import (
    ChatOption,
    HeadOption,
    JsonOption,
    LayerOption,
    MaxMemoryOption,
    ModelOption,
    QueryIndexOption,
    QueryOption,
    SampleSeedOption,
    StepsOption,
    SystemOption,
    TextArgument,
    TopOption,
    WrittenAttentionOption,
    refuse_unless,
)


@app.command(
    rich_help_panel="Decoders",
    epilog=(
        "[bold]Examples[/bold]\n\n"
        '  attn generate "The capital of France is" --model smollm2 -n 12\n\n'
        '  attn generate "What is the capital of France?" --chat --model smollm2\n\n'
        '  attn generate "Once upon a time" --sample --temperature 0.8 --top-p 0.9 --seed 7 -m smollm2\n\n'
        '  attn generate "The capital of France is" -m gemma3 -n 12 --query-index -2 --layer all --json'
    ),
)
def generate(
    ctx: typer.Context,
    text: TextArgument,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", "-n", help="Generate at most this many tokens (fewer if the model ends its text).")] = 20,
    sample: Annotated[bool, typer.Option("--sample", help="Draw each token (default: greedy, the most likely).")] = False,
    temperature: Annotated[float, typer.Option("--temperature", help="With --sample: divide the logits by T (below 1: surer).")] = 1.0,
    top_k: Annotated[Optional[int], typer.Option("--top-k", help="With --sample: draw among the K most likely tokens only.", show_default=False)] = None,
    top_p: Annotated[
        Optional[float], typer.Option("--top-p", help="With --sample: draw among the most likely tokens whose probabilities add up to P.", show_default=False)
    ] = None,
    seed: SampleSeedOption = None,
    top: TopOption = 5,
    chat: ChatOption = False,
    system: SystemOption = None,
    query: QueryOption = None,
    query_index: QueryIndexOption = None,
    layer: LayerOption = "-1",
    head: HeadOption = "auto",
    steps: StepsOption = False,
    attention: WrittenAttentionOption = None,
    cache: Annotated[
        bool, typer.Option("--cache/--no-cache", help="Keep past keys and values (KV cache); --no-cache reruns the whole text per token.")
    ] = True,
    html: Annotated[
        Optional[Path],
        typer.Option("--html", metavar="FILE", help="Also write the interactive page of the whole text, a slider over the written tokens.", show_default=False),
    ] = None,
    max_memory: MaxMemoryOption = None,
    model: ModelOption = None,
    as_json: JsonOption = False,
) -> None:
    """Let a decoder write: each new token's probability, the alternatives and what it attended to; --query inspects any token.

    --top: how many alternatives per token. --query or --query-index (over the prompt and what was written) adds inspect's view
    of that token, at --layer and --head (and --steps). An encoder–decoder (T5, BART, Marian) reads TEXT as the source; a
    written token's view is then its cross-attention over the source (--attention decoder: over what it wrote before).
    """

    def action() -> None:
        from ..compute.decoding import Sampling
        from ..compute.generate import generate as run_generate
        from ..compute.options import InspectOptions
        from ..loading.budget import parse_size
        from ..loading.model import load_model

        budget = None if max_memory is None else parse_size(max_memory)
        refuse_unless(ctx, sample, "--sample", "temperature", "top_k", "top_p", "seed", why=" (greedy decoding draws nothing)")
        asked = query is not None or query_index is not None
        refuse_unless(ctx, asked, "--query or --query-index", "layer", "head", "steps", "attention", why=" (the token to inspect)")
        view = InspectOptions(query=query, query_index=query_index, layer=layer, head=head, steps=steps, attention=attention) if asked else None
        m = load_model(model)
        result = run_generate(
            m, read_text(text), max_new_tokens, Sampling(sample, temperature, top_k, top_p, seed), top, chat, system, view, use_cache=cache,
            max_memory=budget,
        )
        if html is not None:
            _write_page(m, result, html)
        from ..views.terminal.generate import generate_view

        emit(result, as_json, lambda _: generate_view(result))

    reporting_errors(as_json, action)


def _write_page(m, result, path: Path) -> None:
    """generate --html: the page of the prompt and what was written (views/page), whole or not at all."""
    from ..compute.page import written_page
    from ..views.files import write_file
    from ..views.page import page_html

    page = page_html(written_page(m, result), title=f"{result.model.name} · generate: {result.continuation[:60]}")
    write_file(path, lambda f: f.write(page.encode("utf-8")))


@app.command(
    rich_help_panel="Decoders",
    epilog=(
        "[bold]Examples[/bold]\n\n"
        '  attn lens "The capital of France is" --model smollm2\n\n'
        '  attn lens "The Eiffel Tower is in Paris" -q Tower -m smollm2 --json'
    ),
)
def lens(
    text: TextArgument,
    query: QueryOption = None,
    query_index: QueryIndexOption = None,
    top: TopOption = 5,
    chat: ChatOption = False,
    system: SystemOption = None,
    model: ModelOption = None,
    as_json: JsonOption = False,
) -> None:
    """The logit lens: the next token a decoder would predict after each layer, read through its final norm and LM head."""

    def action() -> None:
        from ..compute.lens import lens as run_lens
        from ..loading.model import load_model

        result = run_lens(load_model(model), read_text(text), query, query_index, top, chat, system)
        from ..views.terminal.generate import lens_view

        emit(result, as_json, lambda _: lens_view(result))

    reporting_errors(as_json, action)
