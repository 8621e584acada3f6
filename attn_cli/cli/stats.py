"""`attn stats` (what each head does, over one or many texts) and `attn compare` (how one
query's attention moves between two texts)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .common import SENTENCE, JsonOption, ModelOption, app, emit, read_text, run


@app.command(
    rich_help_panel="Views",
    epilog=(
        "[bold]Examples[/bold]\n\n"
        f'  attn stats "{SENTENCE}"\n\n'
        "  attn stats --file sample_inputs/sentences.txt --threshold 0.4\n\n"
        "  attn stats --file sample_inputs/sentences.txt --json | jq -c '.named[:3][]'\n\n"
        "  cat texts.txt | attn stats --file - --json"
    )
)
def stats(
    text: Annotated[Optional[str], typer.Argument(metavar="TEXT", help="The text, or - to read it from stdin (or use --file).", show_default=False)] = None,
    file: Annotated[
        Optional[str], typer.Option("--file", help="A file of texts, one per line (blank lines skipped); - for stdin.", show_default=False)
    ] = None,
    threshold: Annotated[float, typer.Option("--threshold", "-t", help="Name the heads whose mean mass for a kind is at least this.")] = 0.5,
    model: ModelOption = None,
    as_json: JsonOption = False,
) -> None:
    """What every head attends to, over one or many texts: previous/same/next token, special tokens, first token, punctuation; entropy."""

    def action() -> None:
        from ..compute.stats import collect_texts, head_statistics
        from ..loading.model import load_model

        texts = collect_texts(None if text is None else read_text(text), file)
        result = head_statistics(load_model(model), texts, threshold)

        def view(out):
            from ..views.terminal.stats import stats_view

            return stats_view(result, out.width)

        emit(result, as_json, view)

    run(as_json, action)


@app.command(
    rich_help_panel="Views",
    epilog=(
        "[bold]Examples[/bold]\n\n"
        '  attn compare "The cat sat on the mat." "The dog sat on the mat." --query sat\n\n'
        '  attn compare "The cat sat." "A cat was sitting." -q cat --layer 2 --top 3\n\n'
        '  attn compare "She saw the bank." "He rowed to the bank." -q bank --json | jq ".most_changed[0]"\n\n'
        '  attn compare "The cat sat." "The cat sat down." -q sat --query-b down'
    )
)
def compare(
    text_a: Annotated[str, typer.Argument(metavar="TEXT_A", help="Text A, or - to read it from stdin.", show_default=False)],
    text_b: Annotated[str, typer.Argument(metavar="TEXT_B", help="Text B, or - to read it from stdin.", show_default=False)],
    query: Annotated[str, typer.Option("--query", "-q", help="Query word in A (and in B); WORD#N for its N-th occurrence; @N for token position N.")],
    query_b: Annotated[Optional[str], typer.Option("--query-b", help="A different query word for text B.", show_default=False)] = None,
    layer: Annotated[str, typer.Option("--layer", "-l", metavar="L|all", help="Layer index (negative from the end) or 'all'.")] = "all",
    top: Annotated[int, typer.Option("--top", "-k", help="How many of the most-changed heads to show word by word.")] = 5,
    model: ModelOption = None,
    as_json: JsonOption = False,
) -> None:
    """Compare one query's attention in two texts, aligned by word: weights in A and B, B − A, and the heads that changed most."""

    def action() -> None:
        from ..compute.stats import compare as run_compare
        from ..loading.model import load_model

        result = run_compare(load_model(model), read_text(text_a), read_text(text_b), query, query_b, layer=layer, top=top)

        def view(out):
            from ..views.terminal.stats import compare_view

            return compare_view(result)

        emit(result, as_json, view)

    run(as_json, action)
