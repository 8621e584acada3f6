"""`attn rollout`: attention rollout through all layers, for one query."""

from __future__ import annotations

from typing import Annotated

import typer

from .common import SENTENCE, app, emit, note_encoder_only, read_text, reporting_errors
from .options import (
    AttentionKindOption,
    JsonOption,
    LevelOption,
    ModelOption,
    QueryIndexOption,
    QueryOption,
    SpecialOption,
    TargetTextOption,
    TextArgument,
    TopOption,
)


@app.command(
    rich_help_panel="Views",
    epilog=(
        "[bold]Examples[/bold]\n\n"
        f'  attn rollout "{SENTENCE}" -q making\n\n'
        '  attn rollout "The cat sat on the mat because it was tired." -q it --level word --json | jq ".top"\n\n'
        '  attn rollout "The cat sat." -q cat --full --json | jq ".full"\n\n'
        '  attn rollout "La maison est magnifique." -m opus-mt-fr-en --target "The house is wonderful." -q house --attention cross'
    )
)
def rollout(
    text: TextArgument,
    query: QueryOption = None,
    query_index: QueryIndexOption = None,
    full: Annotated[bool, typer.Option("--full", help="Also compute the whole rollout matrix (JSON: full).")] = False,
    level: LevelOption = "token",
    top: TopOption = 5,
    special: SpecialOption = True,
    target: TargetTextOption = None,
    attention: AttentionKindOption = None,
    model: ModelOption = None,
    as_json: JsonOption = False,
) -> None:
    """Attention rollout for one query: how attention flows through all layers, with the residual stream (Abnar & Zuidema 2020).
    Encoder–decoder models: TEXT is the source; --target and --attention roll out the decoder, or cross-attention onto the source."""

    def action() -> None:
        from ..compute.rollout import attention_rollout
        from ..errors import OptionError
        from ..loading.model import load_model

        if top < 1:
            raise OptionError(f"`top_k={top}` is not valid", "give `top_k` 1 or more")
        result = attention_rollout(load_model(model), read_text(text), query, query_index, full, level, top, special, target, attention)
        note_encoder_only(result, target, attention)

        def view(out):
            from ..views.terminal.rollout import rollout_view

            return rollout_view(result)

        emit(result, as_json, view)

    reporting_errors(as_json, action)
