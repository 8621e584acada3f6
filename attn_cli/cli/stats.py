"""`attn stats` (what each head does, over one or many texts) and `attn compare` (how one
query's attention moves between two texts)."""

from __future__ import annotations

import os
import sys
from typing import Annotated, Optional

import typer

from .common import SENTENCE, app, emit, note_encoder_only, read_text, reporting_errors
from .options import (
    AttentionKindOption,
    FormatOption,
    HeadKindThresholdOption,
    InductionSeedOption,
    JsonOption,
    LayerOption,
    MaxMemoryOption,
    ModelOption,
    OutputFormat,
    QueryOption,
    StatMetricOption,
    TargetTextOption,
    TopOption,
    WorkersOption,
    output_format,
    refuse_unless,
    refuse_with,
)


@app.command(
    rich_help_panel="Views",
    epilog=(
        "[bold]Examples[/bold]\n\n"
        f'  attn stats "{SENTENCE}"\n\n'
        "  attn stats --file sample_inputs/sentences.txt --threshold 0.4\n\n"
        "  attn stats --file corpus.txt --metric induction_mul\n\n"
        "  attn stats --file corpus.txt --workers 2 --json > stats.json && attn plot --stats stats.json -o heads.png\n\n"
        "  attn stats --file corpus.txt --engine ray --ray-address auto --format csv > stats.csv\n\n"
        '  attn stats --file pairs.jsonl -m opus-mt-fr-en --attention cross   # lines {"text": SOURCE, "target": TARGET}\n\n'
        "  cat texts.txt | attn stats --file - --json | jq -c '.named[:3][]'"
    )
)
def stats(
    ctx: typer.Context,
    text: Annotated[
        Optional[str],
        typer.Argument(
            metavar="TEXT", help="The text itself, or - to read it from stdin; a file of texts: --file FILE (a TEXT that is a file's path gets a note).",
            show_default=False,
        ),
    ] = None,
    file: Annotated[
        Optional[str],
        typer.Option(
            "--file",
            help='A file of texts, one per line (blank lines skipped), streamed; - for stdin. A line may be JSON: {"text": ..., "target": ...}.',
            show_default=False,
        ),
    ] = None,
    target: TargetTextOption = None,
    attention: AttentionKindOption = None,
    threshold: HeadKindThresholdOption = 0.5,
    metric: StatMetricOption = None,
    chosen_format: FormatOption = OutputFormat.table,
    workers: WorkersOption = 1,
    engine: Annotated[str, typer.Option("--engine", help="--file: local (this machine) or ray (needs attn-cli\\[ray]).")] = "local",
    ray_address: Annotated[
        Optional[str], typer.Option("--ray-address", help="--engine ray: the cluster (else RAY_ADDRESS, else a local Ray).", show_default=False)
    ] = None,
    exclude_bos: Annotated[bool, typer.Option("--exclude-bos", help="Detector scores ignore attention to the first token (exclude_bos).")] = False,
    exclude_current: Annotated[
        bool, typer.Option("--exclude-current-token", help="Detector scores ignore attention to the token itself (exclude_current_token).")
    ] = False,
    seed: InductionSeedOption = 0,
    max_memory: MaxMemoryOption = None,
    ablate: Annotated[
        Optional[str],
        typer.Option(
            "--ablate", metavar="zero|mean",
            help="Also ablate every head on every text (as `attn ablate`: its last position), the mean change its `ablation` statistic.",
            show_default=False,
        ),
    ] = None,
    knockout: Annotated[
        Optional[int],
        typer.Option(
            "--knockout", metavar="W",
            help="Decoders: also knock out every word of every text (`attn knockout --window W`); mean changes by the word's distance from the last.",
            show_default=False,
        ),
    ] = None,
    contributions: Annotated[
        Optional[str],
        typer.Option(
            "--contributions", metavar="value-zeroing|alti|norms",
            help="Also every text's contribution matrices (`attn contrib --method`): per layer, the mean share from each kind of token.",
            show_default=False,
        ),
    ] = None,
    model: ModelOption = None,
    as_json: JsonOption = False,
) -> None:
    """What every head attends to, over one text or a corpus: entropy, mass on special/first/punctuation/nearby tokens, detector scores, sinks.

    The detectors are TransformerLens' (previous-token, duplicate-token, induction; mul and abs).
    Encoder–decoder models: TEXT is the source; --target (a corpus: each JSON line's "target") and --attention pick the attention.

    With --file the corpus is streamed: memory does not grow with its length. Progress goes to stderr when it is a terminal.
    --metric picks the statistic of the grid on the screen (table); --workers, --engine and --ray-address are for --file.
    """
    form = output_format(as_json, chosen_format)

    def action() -> None:
        from ..compute.stats import corpus_statistics, head_statistics
        from ..errors import InputError
        from ..loading.budget import parse_size
        from ..maths.headsums import METRICS, DetectorOptions

        budget = None if max_memory is None else parse_size(max_memory)

        if metric is not None and metric not in METRICS:
            raise InputError(f"--metric {metric!r} is not a statistic", f"give one of {', '.join(METRICS)}")
        if model in METRICS and not os.path.exists(model):  # -m was stats' --metric once
            raise InputError(f"-m is --model, and {model!r} is a statistic, not a model", f"give --metric {model} for its grid")
        if (text is None) == (file is None):
            raise InputError("give either TEXT or --file FILE", 'e.g. attn stats "The cat sat." or attn stats --file sentences.txt')
        refuse_unless(ctx, form is OutputFormat.table, "--format table", "metric", why=": it picks the statistic of the grid on the screen")
        refuse_unless(ctx, file is not None, "--file", "workers", "engine", "ray_address", why=" (a corpus)")
        refuse_unless(ctx, engine == "ray", "--engine ray", "ray_address")
        if form is OutputFormat.csv:
            refuse_with(ctx, "--format csv", "threshold", why=" (it names heads; the CSV rows are the statistics)")
        if file is not None and target is not None:
            lines = 'drop --target and write lines {"text": SOURCE, "target": TARGET}'
            raise InputError("--target is one TEXT's target, and a corpus's targets are on its lines", lines)
        options = DetectorOptions(exclude_bos, exclude_current)
        if file is None:
            from ..loading.model import budgeted, load_model

            loaded = budgeted(load_model(model), budget)  # the text's pass and the induction prompts'
            if loaded.has_cross_attention or target is not None or attention is not None:
                from ..compute.stats_seq2seq import text_statistics

                args = (threshold, options, seed, ablate, knockout, contributions)
                result = text_statistics(loaded, read_text(text, "--file"), target, attention, *args)
            else:
                result = head_statistics(loaded, [(None, read_text(text, "--file"))], threshold, options, seed, ablate, knockout, contributions)
        else:
            with _Progress() as progress:
                result = corpus_statistics(
                    model, file, threshold, engine, workers, ray_address, options, seed, progress, ablate, knockout, contributions, attention, budget
                )
        note_encoder_only(result, target, attention, "--target TEXT" if file is None else 'JSON lines {"text": SOURCE, "target": TARGET}')
        if form is OutputFormat.csv:
            from .output import write_stdout

            write_stdout(result.to_csv())
            return

        def view(out):
            from ..views.terminal.stats import stats_view

            return stats_view(result, out.width, metric)

        emit(result, form is OutputFormat.json, view)

    reporting_errors(form is OutputFormat.json, action)


class _Progress:
    """"N texts" on stderr while a corpus runs, when stderr is a terminal; otherwise nothing."""

    def __enter__(self):
        if not sys.stderr.isatty():
            return None
        from rich.progress import Progress, TextColumn, TimeElapsedColumn

        from .common import console

        self._bar = Progress(TextColumn("attn stats · {task.completed} texts"), TimeElapsedColumn(), console=console(stderr=True), transient=True)
        self._bar.start()
        task = self._bar.add_task("texts", total=None)
        return lambda n: self._bar.update(task, completed=n)

    def __exit__(self, *exc) -> None:
        if sys.stderr.isatty():
            self._bar.stop()


@app.command(
    rich_help_panel="Views",
    epilog=(
        "[bold]Examples[/bold]\n\n"
        '  attn compare "The cat sat on the mat." "The dog sat on the mat." --query sat\n\n'
        '  attn compare "The cat sat." "A cat was sitting." -q cat --layer 2 --top 3\n\n'
        '  attn compare "She saw the bank." "He rowed to the bank." -q bank --json | jq ".most_changed[0]"\n\n'
        '  attn compare "The cat sat." "The cat sat down." -q sat --query-b down\n\n'
        '  attn compare "La voiture est grande." "La voiture est vieille." -m opus-mt-fr-en'
        ' -t "The car is big." --target-b "The car is old." -q is --attention cross'
    )
)
def compare(
    text_a: Annotated[str, typer.Argument(metavar="TEXT_A", help="Text A, or - to read it from stdin.", show_default=False)],
    text_b: Annotated[str, typer.Argument(metavar="TEXT_B", help="Text B, or - to read it from stdin.", show_default=False)],
    query: QueryOption,
    query_b: Annotated[Optional[str], typer.Option("--query-b", help="A different query word for text B.", show_default=False)] = None,
    layer: LayerOption = "all",
    top: TopOption = 5,
    target: TargetTextOption = None,
    target_b: Annotated[
        Optional[str],
        typer.Option("--target-b", help="Encoder–decoder models: text B's target (default: --target, which is then text A's).", show_default=False),
    ] = None,
    attention: AttentionKindOption = None,
    model: ModelOption = None,
    as_json: JsonOption = False,
) -> None:
    """Compare one query's attention in two texts, aligned by word: weights in A and B, B − A, and the heads that changed most.

    --query is the word in A (and in B, unless --query-b); --top: how many of the most-changed heads to show word by word.
    Encoder–decoder models: the texts are sources; --target (and --target-b) and --attention compare a target token's decoder or cross-attention.
    """

    def action() -> None:
        from ..compute.stats import compare as run_compare
        from ..errors import InputError
        from ..loading.model import load_model

        if text_a == text_b == "-":  # stdin holds one text: B would be read empty after A took it all
            raise InputError("TEXT_A and TEXT_B are both -, but stdin holds one text", "give one of them as an argument")
        result = run_compare(
            load_model(model), read_text(text_a), read_text(text_b), query, query_b, layer=layer, top=top, target=target, target_b=target_b, attention=attention
        )
        note_encoder_only(result, target, attention)

        def view(out):
            from ..views.terminal.stats import compare_view

            return compare_view(result)

        emit(result, as_json, view)

    reporting_errors(as_json, action)
