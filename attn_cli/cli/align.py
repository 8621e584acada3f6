"""`attn align`: an encoder–decoder's cross-attention as a target × source table, and the word alignment."""

from __future__ import annotations

from .common import app, emit, read_text, reporting_errors
from .options import (
    ForceOption,
    JsonOption,
    LevelOption,
    MeanHeadOption,
    ModelOption,
    OneLayerOption,
    OutputFileOption,
    SpecialOption,
    TargetTextOption,
    TextArgument,
)


@app.command(
    rich_help_panel="Views",
    epilog=(
        "[bold]Examples[/bold]\n\n"
        '  attn align "La maison est magnifique." --target "The house is wonderful." -m opus-mt-fr-en\n\n'
        '  attn align "Le chat était assis." -t "The cat sat." -m opus-mt-fr-en --layer 3 --head 5 --json\n\n'
        '  attn align "La maison est magnifique." -t "The house is wonderful." -m opus-mt-fr-en -o alignment.png'
    ),
)
def align(
    text: TextArgument,
    target: TargetTextOption = None,
    layer: OneLayerOption = "-1",
    head: MeanHeadOption = "mean",
    level: LevelOption = "word",
    special: SpecialOption = False,
    output: OutputFileOption = None,
    force: ForceOption = False,
    model: ModelOption = None,
    as_json: JsonOption = False,
) -> None:
    """Encoder–decoder models: the target × source cross-attention table, and the word alignment it implies (argmax per target word)."""

    def action() -> None:
        from ..compute.align import align as run_align
        from ..errors import InputError
        from ..loading.model import load_model

        if target is None:
            raise InputError("align needs the target the decoder writes", "add --target TEXT (TEXT is the source)")
        if output is not None and as_json:
            raise InputError("--output writes a picture and --json a document: give one", "drop --output or --json")
        if force and output is None:
            raise InputError("--force is read only with --output", "add --output FILE, or drop --force")
        result = run_align(load_model(model), read_text(text), target, layer, head, level, special)
        if output is not None:
            from ..views.plot import write_heatmap
            from .output import write_stderr, write_stdout

            rows, columns = [u.label or u.text for u in result.rows], [u.label or u.text for u in result.columns]
            head_name = "mean over heads" if result.head == "mean" else f"head {result.head}"
            title = f"{result.model.name} · cross-attention, layer {result.layer}, {head_name}: target (rows) × source (columns)"
            path = write_heatmap(output, result.weights, rows, columns, title, force=force, warn=lambda m: write_stderr(f"attn: note: {m}\n"))
            write_stdout(f"{path}\n")
            return

        def view(out):
            from ..views.terminal.align import align_view

            return align_view(result, out.width, colour=out.color_system is not None and not out.no_color)

        emit(result, as_json, view)

    reporting_errors(as_json, action)
