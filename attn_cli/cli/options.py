"""Every option that more than one command takes, declared once: its flags, type and help.

A command writes `layer: LayerOption = "-1"`: the default stays with the command, the flags
live here, so that a short flag means one long option in every command
(tests/test_cli_options.py walks every command to check it). The short flags:

    -q --query   -i --query-index   -l --layer   -k --top   -t --target   -m --model
    -f --format  -w --workers       -o --output  -n --max-new-tokens      -h --help

The library's errors name options as a Python caller writes them; `phrasing.FLAGS` maps those
names to these flags. `refuse_unless` refuses an option that the rest of the command line would
make it ignore.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Optional

import typer


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


TextArgument = Annotated[
    str,
    typer.Argument(
        metavar="TEXT",
        help="The text itself, or - to read it from stdin (a file: - < FILE). A TEXT that is a file's path is still read as text, with a note on stderr.",
        show_default=False,
    ),
]
ModelOption = Annotated[
    Optional[str],
    typer.Option(
        "--model", "-m",
        help=(
            "Model folder (config.json, tokenizer.json, model.safetensors), .gguf file, packaged model (smollm2, gemma3, mpnet, nomic-embed, opus-mt-fr-en), "
            "hub name org/name, ollama:NAME\\[:TAG] or lmstudio:PUBLISHER/NAME\\[/FILE.gguf]. Default: $ATTN_MODEL, else the bundled all-MiniLM-L6-v2."
        ),
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout (errors as JSON on stderr).")]
FormatOption = Annotated[
    OutputFormat,
    typer.Option(
        "--format", "-f",
        help="table (the screen), json (the same as --json) or csv: one row per number (inspect: layer, head, token; stats: layer, head, statistic).",
    ),
]

# The query, the layers and heads, and how the rows are read: `InspectOptions`' fields.
QueryOption = Annotated[
    Optional[str],
    typer.Option("--query", "-q", help="Query word (case-insensitive); WORD#N for its N-th occurrence; @N for token position N.", show_default=False),
]
QueryIndexOption = Annotated[
    Optional[int],
    typer.Option("--query-index", "-i", help="Query token position (0 is the first token, [CLS] for BERT; negative from the end).", show_default=False),
]
LayerOption = Annotated[Optional[str], typer.Option("--layer", "-l", metavar="L|all", help="Layer index (negative from the end) or 'all'.")]
OneLayerOption = Annotated[Optional[str], typer.Option("--layer", "-l", metavar="L", help="Layer index (negative from the end).")]
HeadOption = Annotated[
    str,
    typer.Option("--head", metavar="H|auto|mean|all", help="Head index, 'mean', 'all', or 'auto': the head that attends most to other words."),
]
OneHeadOption = Annotated[
    str, typer.Option("--head", metavar="H|auto|mean", help="Head index, 'mean', or 'auto': the head that attends most to other words.")
]
MeanHeadOption = Annotated[str, typer.Option("--head", metavar="H|mean", help="Head index, or 'mean': the mean over the layer's heads.")]
TopOption = Annotated[int, typer.Option("--top", "-k", help="How many to list: top-attended words (or predictions, alternatives, heads).")]
StepsOption = Annotated[bool, typer.Option("--steps", help="Also show step 1 (q, k, v vectors) and step 3 (weighted sum of values).")]
SpecialOption = Annotated[bool, typer.Option("--special/--no-special", help="Rank special tokens ([CLS], [SEP]) among the top-attended words.")]
TruncateOption = Annotated[
    bool, typer.Option("--truncate", help="Keep the first tokens of a text longer than the model reads (default: an error).")
]
LevelOption = Annotated[
    Optional[str],
    typer.Option("--level", metavar="token|word", help="Rows are tokens, or words: attention to a word is the sum of its tokens (Clark et al. 2019)."),
]
NormsOption = Annotated[
    bool, typer.Option("--norms", help="Show ‖α·v‖ and ‖α·v·W_O‖ beside each weight: weights alone mislead (Kobayashi et al. 2020).")
]
RankByOption = Annotated[
    str,
    typer.Option("--rank-by", metavar="weight|value_norm|output_norm", help="Rank the top words by weight, value_norm or output_norm (implies --norms)."),
]
ROWS = ("auto", "top", "all")
RowsOption = Annotated[
    str,
    typer.Option(
        "--rows",
        metavar="auto|top|all",
        help=(
            "Rows of the tables: all; top: each head's heaviest keys (inspect: --top of them; plot: 5) and the query, the rest "
            "summed on one line ('… N more'); auto: all if they fit the screen's height ($LINES; 60 when not a terminal), else top. "
            "JSON and CSV always have every row."
        ),
    ),
]
ChatOption = Annotated[bool, typer.Option("--chat", help="Read TEXT as a user message, rendered by the model's chat template (decoders).")]
SystemOption = Annotated[Optional[str], typer.Option("--system", help="With --chat: a system message before the user's.", show_default=False)]

# Encoder–decoder models (T5, BART, Marian): the text the decoder writes, and which attention.
# `--target` names what the model outputs, here and in `knockout`/`ablate`/`contrib` (a token
# there, the target text here); no command takes both.
TargetTextOption = Annotated[
    Optional[str],
    typer.Option(
        "--target", "-t",
        help="Encoder–decoder models (T5, BART, Marian): the target text the decoder writes, teacher-forced (TEXT is the source). "
        "The query is then a target token.",
        show_default=False,
    ),
]
AttentionKindOption = Annotated[
    Optional[str],
    typer.Option(
        "--attention",
        help="Encoder–decoder models: encoder (a source token over the source), decoder (a target token over the target before it; "
        "the default with --target) or cross (a target token over the source).",
        show_default=False,
    ),
]
WrittenAttentionOption = Annotated[
    Optional[str],
    typer.Option(
        "--attention",
        help="Encoder–decoder models, with --query: the written token's cross (over the source; the default) or decoder "
        "(over the target before it) attention.",
        show_default=False,
    ),
]

# A file to write (`plot`, `align`).
OutputFileOption = Annotated[
    Optional[Path],
    typer.Option("--output", "-o", help="The file to write: .png, .svg (need attn-cli\\[plot]) or .html (self-contained; plot's is an interactive page)."),
]
ForceOption = Annotated[bool, typer.Option("--force", help="Replace a read-only file.")]
# `--threshold`: a cut-off, of a different quantity in each command that takes it.
HeadKindThresholdOption = Annotated[float, typer.Option("--threshold", help="Name the heads whose mean mass for a kind is at least this.")]
RouteThresholdOption = Annotated[
    float,
    typer.Option("--threshold", help="Keep the parts whose share of a sum is above this (per head), renormalise, follow the edges above it."),
]

# The model view (`heads`, `plot --view grid`): a key word. (`--target` is the model's output.)
KeyOption = Annotated[
    Optional[str], typer.Option("--key", metavar="WORD", help="A word of the text: each head's weight on it (--metric weight).", show_default=False)
]
# What a prediction is explained by (`knockout`, `ablate`): a token, by its text or its id.
PredictionTargetOption = Annotated[
    Optional[str],
    typer.Option(
        "--target", "-t", help='The token to explain: the text of exactly one token, its leading space included (" Paris"). Default: the top prediction.',
        show_default=False,
    ),
]
TargetIdOption = Annotated[Optional[int], typer.Option("--target-id", help="The token to explain, by its id (instead of --target).", show_default=False)]
ContrastOption = Annotated[
    Optional[str],
    typer.Option(
        "--contrast", metavar="TOKEN", help='A foil: explain the target\'s logit minus this token\'s (the text of exactly one token, " London").',
        show_default=False,
    ),
]
HeadsMetricOption = Annotated[
    Optional[str],
    typer.Option(
        "--metric", metavar="top|weight|entropy",
        help="top (each head's top-attended word), weight (on --target), or entropy. Default: weight with --target, else top.",
        show_default=False,
    ),
]
StatMetricOption = Annotated[
    Optional[str],
    typer.Option("--metric", metavar="STAT", help="A statistic of `attn stats` (a JSON field: first_token, induction_mul, ...).", show_default=False),
]
PlotMetricOption = Annotated[
    Optional[str],
    typer.Option(
        "--metric", metavar="top|weight|entropy|STAT",
        help="--view grid: top, weight (on --target) or entropy (drawn as focus 1 − H/ln n). --stats: a statistic (default first_token).",
        show_default=False,
    ),
]
SampleSeedOption = Annotated[Optional[int], typer.Option("--seed", help="With --sample: the same seed gives the same text.", show_default=False)]
InductionSeedOption = Annotated[int, typer.Option("--seed", help="Seed of the random-token prompts the induction score is measured on.")]
WorkersOption = Annotated[int, typer.Option("--workers", "-w", help="Processes to use, each loading the model once; output keeps input order.")]
MaxMemoryOption = Annotated[
    Optional[str],
    typer.Option(
        "--max-memory", metavar="SIZE",
        help="GGUF models: keep at most SIZE (800M, 2G, 0) of de-quantized weights between forward passes (--workers N: SIZE/N each); "
        "the rest is de-quantized again each pass. Default: half the available RAM, at most 1G.",
        show_default=False,
    ),
]


def given(ctx: typer.Context, *names: str) -> list[str]:
    """The flags, among parameters `names`, that the command line sets (not left at their default)."""
    flags = {p.name: p for p in ctx.command.params}
    out = []
    for name in names:
        # By name: Typer may bring its own copy of Click, with its own ParameterSource.
        if getattr(ctx.get_parameter_source(name), "name", None) in ("COMMANDLINE", "ENVIRONMENT"):
            param = flags[name]
            out.append(max(param.opts, key=len) if ctx.params.get(name) is not False or not param.secondary_opts else param.secondary_opts[0])
    return out


def refuse_unless(ctx: typer.Context, condition: bool, needs: str, *names: str, why: str = "") -> None:
    """Refuse the options `names` (parameter names) when the command line sets them and
    `condition` is false: without `needs` (as the user writes it) they would be ignored."""
    if not condition and (flags := given(ctx, *names)):
        listed, verb = _listed(flags)
        _refuse(f"{listed} {verb} read only with {needs}{why}", f"add {needs}, or drop {listed}")


def refuse_with(ctx: typer.Context, other: str, *names: str, why: str = "") -> None:
    """Refuse the options `names` when the command line sets them: with `other` (as the user
    writes it, already given) they would be ignored."""
    if flags := given(ctx, *names):
        listed, verb = _listed(flags)
        _refuse(f"{listed} {verb} not read with {other}{why}", f"drop {listed}")


def _listed(flags: list[str]) -> tuple[str, str]:
    if len(flags) == 1:
        return flags[0], "is"
    return f"{', '.join(flags[:-1])} and {flags[-1]}", "are"


def _refuse(message: str, fix: str) -> None:
    from ..errors import InputError

    raise InputError(message, fix)


def output_format(as_json: bool, chosen: OutputFormat) -> OutputFormat:
    """The one output `--json` and `--format` ask for together. --json with --format csv is a
    usage error (exit 2), reported as JSON since --json asked for JSON."""
    if as_json and chosen is OutputFormat.csv:
        from .common import report

        raise typer.Exit(report("usage", "--json and --format csv ask for two different outputs", "give one of them", True))
    return OutputFormat.json if as_json else chosen
