"""`attn explore`: the interactive explorer (Textual, imported only by this command).

Everything that can go wrong is checked before the app starts — the terminal, the text, the
model, the query, layer and head — so errors are the usual one line and exit code.
"""

from __future__ import annotations

import os
import sys

import typer

from .common import SENTENCE, app, read_text, reporting_errors
from .options import (
    AttentionKindOption,
    LevelOption,
    ModelOption,
    OneHeadOption,
    OneLayerOption,
    QueryIndexOption,
    QueryOption,
    TargetTextOption,
    TextArgument,
    TruncateOption,
)


@app.command(
    rich_help_panel="Views",
    epilog=(
        "[bold]Examples[/bold]\n\n"
        f'  attn explore "{SENTENCE}"\n\n'
        "  attn explore - -m tests/fixtures/tiny/llama < sample_inputs/cat.txt\n\n"
        '  attn explore "The cat sat on the mat because it was tired." --query it --layer 2 --head 3\n\n'
        '  attn explore "La maison est magnifique." -m opus-mt-fr-en -t "The house is wonderful." --attention cross\n\n'
        "Keys: ←/→ query · ↑/↓ layer · ]/[ head · m mean · a all heads · s steps · w words · n norms · "
        "r rollout · g model view · k encoder/decoder/cross · / find a word · e export JSON · ? help · q quit"
    ),
)
def explore(
    text: TextArgument,
    query: QueryOption = None,
    query_index: QueryIndexOption = None,
    layer: OneLayerOption = "-1",
    head: OneHeadOption = "auto",
    level: LevelOption = "token",
    truncate: TruncateOption = False,
    target: TargetTextOption = None,
    attention: AttentionKindOption = None,
    model: ModelOption = None,
) -> None:
    """Explore one text's attention interactively: move the query, the layer and the head with the keys; every number as in `attn inspect`.

    --query (default: the first word), --layer (default: the last), --head and --level say where to start.
    Encoder–decoder models: with --target, k switches between the encoder's, the decoder's and cross-attention (--attention starts there).
    """

    def action() -> None:
        from ..compute.explore import trace_pair, trace_text
        from ..compute.options import InspectOptions
        from ..compute.seq2seq import check_kind
        from ..loading.model import load_model
        from ..views.explorer.frame import FirstFrame
        from ..views.explorer.state import check_start, start_view

        check_start(layer, head)
        options = InspectOptions(
            query=query, query_index=query_index, layer=layer, head=head, level=level, truncate=truncate, target=target, attention=attention
        )
        source = read_text(text)
        _attach_terminal(from_stdin=text == "-")
        m = load_model(model)
        kind = check_kind(m, target, attention)
        kinds = trace_pair(m, source, target, options.truncate) if target is not None else {}
        traced = kinds[kind] if kinds else trace_text(m, source, truncate=options.truncate)
        start = start_view(traced, options.query, options.query_index, options.layer, options.head, options.level)
        frame = FirstFrame(traced, start) if os.name == "posix" and sys.stderr.isatty() else None  # on screen while Textual loads
        try:
            from ..views.explorer.app import Explorer  # Textual: imported by this command only

            explorer = Explorer(traced, start, first_frame=frame, kinds=kinds)
            explorer.run()
        finally:
            if frame:
                frame.close()
        raise typer.Exit(explorer.return_code or 0)  # 1 if the app failed (Textual has shown why)

    reporting_errors(False, action)


def _attach_terminal(from_stdin: bool) -> None:
    """The explorer reads keys from stdin and draws on stderr: both must be a terminal. When the
    text came through stdin, the keys come from the controlling terminal instead (as in fzf)."""
    from ..errors import InputError

    fix = "run attn explore in a terminal; for pipes and scripts use attn inspect (with --json)"
    if sys.stderr is None or not sys.stderr.isatty():  # None: descriptor 2 closed
        raise InputError("attn explore draws on stderr, and stderr is not a terminal", fix)
    if not from_stdin:
        if sys.stdin is None or not sys.stdin.isatty():  # None: stdin closed (<&-)
            raise InputError("attn explore reads keys from stdin, and stdin is not a terminal", fix)
        return
    try:
        tty = os.open("/dev/tty", os.O_RDWR)
    except OSError:
        raise InputError("the text came on stdin, and there is no terminal to read keys from", fix) from None
    os.dup2(tty, sys.stdin.fileno())
    os.close(tty)
