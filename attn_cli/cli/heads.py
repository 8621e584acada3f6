"""`attn heads`: the model view, layers × heads, for one query."""

from __future__ import annotations

from .common import SENTENCE, app, emit, note_encoder_only, read_text, reporting_errors
from .options import (
    AttentionKindOption,
    HeadsMetricOption,
    JsonOption,
    KeyOption,
    ModelOption,
    QueryIndexOption,
    QueryOption,
    SpecialOption,
    TargetTextOption,
    TextArgument,
)


@app.command(
    rich_help_panel="Views",
    epilog=(
        "[bold]Examples[/bold]\n\n"
        f'  attn heads "{SENTENCE}" -q making\n\n'
        '  attn heads "The cat sat on the mat because it was tired." -q it --key cat\n\n'
        '  attn heads "The cat sat." -q sat --metric entropy --json | jq ".layers[0].heads[].value"\n\n'
        '  attn heads "La maison est magnifique." -m opus-mt-fr-en --target "The house is wonderful." -q house --attention cross --key maison'
    )
)
def heads(
    text: TextArgument,
    query: QueryOption = None,
    query_index: QueryIndexOption = None,
    metric: HeadsMetricOption = None,
    key: KeyOption = None,
    special: SpecialOption = True,
    target: TargetTextOption = None,
    attention: AttentionKindOption = None,
    model: ModelOption = None,
    as_json: JsonOption = False,
) -> None:
    """The model view: a layers × heads grid for one query — each head's top word, its weight on a key word, or its entropy.
    Encoder–decoder models: TEXT is the source; --target and --attention give the decoder's or the cross-attention's grid."""

    def action() -> None:
        from ..compute.heads import heads as run_heads
        from ..loading.model import load_model

        result = run_heads(load_model(model), read_text(text), query, query_index, metric, key, special, target, attention)
        note_encoder_only(result, target, attention)

        def view(out):
            from ..views.terminal.heads import heads_view

            return heads_view(result, out.width, colour=out.color_system is not None and not out.no_color)

        emit(result, as_json, view)

    reporting_errors(as_json, action)
