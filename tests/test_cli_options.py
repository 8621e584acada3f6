"""The options of every command, walked from the Typer app: a short flag means one long option
everywhere, no command declares a flag twice, --format is one enum, help texts keep their
brackets, and an option that the rest of the command line would make a command ignore is
refused (exit 2, one line naming the option and what it needs)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import typer.main
from conftest import SENTENCE
from rich.text import Text
from typer.testing import CliRunner

import attn_cli.cli.explore as explore_cli
from attn_cli.cli import ExitStatus, app
from attn_cli.views.explorer.app import Explorer

runner = CliRunner()
TINY = Path(__file__).parent / "fixtures" / "tiny"
LLAMA = str(TINY / "llama")
CLI = Path(__file__).parent.parent / "attn_cli" / "cli"
CAT = "The cat sat on the mat because it was tired."


def commands() -> dict:
    return dict(typer.main.get_command(app).commands)


def options(command) -> list:
    return [p for p in command.params if p.param_type_name == "option"]


def test_a_short_flag_is_one_long_option_in_every_command():
    long_of: dict[str, set[str]] = {}
    shorts_of: dict[str, set[frozenset[str]]] = {}
    for command in commands().values():
        for p in options(command):
            long = max(p.opts, key=len)
            shorts = frozenset(o for o in p.opts if not o.startswith("--"))
            shorts_of.setdefault(long, set()).add(shorts)
            for short in shorts:
                long_of.setdefault(short, set()).add(long)
    assert {s: longs for s, longs in long_of.items() if len(longs) > 1} == {}
    assert {long: s for long, s in shorts_of.items() if len(s) > 1} == {}  # --top is -k wherever it is
    assert long_of["-m"] == {"--model"} and long_of["-t"] == {"--target"} and long_of["-k"] == {"--top"}


def test_no_command_declares_a_flag_twice():
    for name, command in commands().items():
        flags = [o for p in command.params for o in (*p.opts, *p.secondary_opts)] + ["-h", "--help"]
        assert len(flags) == len(set(flags)), (name, sorted(f for f in flags if flags.count(f) > 1))


def _declared_flags(path: Path) -> list[str]:
    """The long flags a module's own `typer.Option(...)` calls declare."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "Option":
            out += [a.value for a in node.args if isinstance(a, ast.Constant) and str(a.value).startswith("--")]
    return out


def test_options_of_several_commands_are_declared_once_in_the_options_module():
    used_by: dict[str, set[str]] = {}
    for name, command in commands().items():
        for p in options(command):
            used_by.setdefault(max(p.opts, key=len), set()).add(name)
    shared = {flag for flag, names in used_by.items() if len(names) > 1} - {"--help"}
    elsewhere = {m.name: sorted(set(_declared_flags(m)) & shared) for m in CLI.glob("*.py") if m.name != "options.py"}
    assert {m: flags for m, flags in elsewhere.items() if flags} == {}
    assert {"--query", "--layer", "--head", "--top", "--level", "--special", "--model", "--json", "--format", "--metric", "--target"} <= shared


def test_stats_m_is_the_model_and_a_statistic_there_says_so():
    # -m was both --metric and --model in stats; now it is --model, as everywhere, and a statistic
    # given to it is named as such, with the option that takes it.
    out = runner.invoke(app, ["stats", "-m", "first_token", "The cat sat."])
    assert out.exit_code == ExitStatus.USAGE, out.output
    assert out.stderr == "attn: error: -m is --model, and 'first_token' is a statistic, not a model — give --metric first_token for its grid\n"
    doc = json.loads(runner.invoke(app, ["stats", "The cat sat.", "-m", str(TINY / "bert"), "--json"]).stdout)
    assert doc["model"]["name"] == "bert"


def test_format_is_one_enum_everywhere():
    choices = {
        name: tuple(p.type.choices) for name, command in commands().items() for p in options(command) if "--format" in p.opts
    }
    assert choices == {"inspect": ("table", "json", "csv"), "stats": ("table", "json", "csv")}
    out = runner.invoke(app, ["stats", "The cat sat.", "--format", "xml"], env={"COLUMNS": "300"})
    assert out.exit_code == ExitStatus.USAGE and "'xml' is not one of 'table', 'json', 'csv'" in out.stderr


@pytest.mark.parametrize("command", [["inspect", CAT, "-q", "it"], ["stats", CAT]])
@pytest.mark.parametrize("spelling", [["--format", "csv"], ["-f", "csv"]])
def test_json_and_csv_together_are_refused_by_every_command(command, spelling):
    out = runner.invoke(app, [*command, "--json", *spelling])
    assert out.exit_code == ExitStatus.USAGE and out.stdout == ""
    assert json.loads(out.stderr)["error"] == {
        "code": "usage", "message": "--json and --format csv ask for two different outputs", "fix": "give one of them", "exit_status": 2,
    }


def test_stats_csv_and_json_formats_write_the_documents():
    csv_out = runner.invoke(app, ["stats", "The cat sat.", "-f", "csv"])
    assert csv_out.exit_code == 0 and csv_out.stdout.splitlines()[0] == "layer,head,statistic,value"
    as_json = json.loads(runner.invoke(app, ["stats", "The cat sat.", "--format", "json"]).stdout)
    assert csv_out.stdout.splitlines()[1] == f"0,0,entropy,{as_json['layers'][0]['heads'][0]['entropy']}"


def test_help_keeps_the_extras_in_brackets():
    for command, literal in (("stats", "attn-cli[ray]"), ("plot", "attn-cli[plot]")):
        out = runner.invoke(app, [command, "--help"], env={"COLUMNS": "300"})
        assert out.exit_code == 0 and literal in out.stdout, out.stdout


def test_no_help_text_loses_a_bracket_to_rich_markup():
    # Typer reads help, docstrings and epilogs as Rich markup: "[ray]" would be taken for a style.
    for name, command in commands().items():
        texts = [command.help or "", command.epilog or ""] + [p.help or "" for p in command.params if getattr(p, "help", None)]
        for text in texts:
            shown = Text.from_markup(text).plain
            assert shown == text.replace("\\[", "[").replace("[bold]", "").replace("[/bold]", ""), (name, text)


REFUSED = [
    (["generate", CAT, "-m", LLAMA, "--temperature", "0.5"], "--temperature is read only with --sample (greedy decoding draws nothing)",
     "add --sample, or drop --temperature"),
    (["generate", CAT, "-m", LLAMA, "--top-k", "3", "--top-p", "0.9", "--seed", "7"],
     "--top-k, --top-p and --seed are read only with --sample (greedy decoding draws nothing)", "add --sample, or drop --top-k, --top-p and --seed"),
    (["generate", CAT, "-m", LLAMA, "--layer", "0"], "--layer is read only with --query or --query-index (the token to inspect)",
     "add --query or --query-index, or drop --layer"),
    (["generate", CAT, "-m", LLAMA, "--head", "1", "--steps"], "--head and --steps are read only with --query or --query-index (the token to inspect)",
     "add --query or --query-index, or drop --head and --steps"),
    (["stats", CAT, "--metric", "first_token", "--json"], "--metric is read only with --format table: it picks the statistic of the grid on the screen",
     "add --format table, or drop --metric"),
    (["stats", CAT, "--workers", "1"], "--workers is read only with --file (a corpus)", "add --file, or drop --workers"),
    (["stats", "--file", "-", "--ray-address", "auto"], "--ray-address is read only with --engine ray", "add --engine ray, or drop --ray-address"),
    (["plot", "--stats", "s.json", "-o", "x.png", "-q", "it", "--key", "cat"], "--query and --key are not read with --stats (it plots a saved document)",
     "drop --query and --key"),
    (["inspect", CAT, "-q", "it", "--system", "Be brief."], "--system is a chat template's system message, and the text is not read as a chat",
     "add --chat, or drop --system"),
    (["lens", CAT, "-m", LLAMA, "--system", "Be brief."], "--system is a chat template's system message, and the text is not read as a chat",
     "add --chat, or drop --system"),
    (["inspect", CAT, "-q", "it", "-f", "csv", "--head", "3", "--top", "2"],
     "--head and --top are not read with --format csv (its rows are every head's weights on every token)", "drop --head and --top"),
    (["inspect", CAT, "-q", "it", "-f", "csv", "--no-special", "--rank-by", "output_norm"],
     "--no-special and --rank-by are not read with --format csv (its rows are every head's weights on every token)", "drop --no-special and --rank-by"),
    (["stats", CAT, "-f", "csv", "--threshold", "0.2"], "--threshold is not read with --format csv (it names heads; the CSV rows are the statistics)",
     "drop --threshold"),
    (["heads", CAT, "-q", "it", "--metric", "entropy", "--key", "sat"], "--key is read by --metric weight only, and --metric entropy does not use it",
     "drop --key, or use --metric weight"),
    (["heads", CAT, "-q", "it", "--metric", "weight"], "--metric weight is each head's weight on a key word, and no --key was given",
     "add --key WORD, e.g. --key it"),
]


@pytest.mark.parametrize("args, message, fix", REFUSED, ids=[" ".join(a[:1] + a[2:]) for a, _, _ in REFUSED])
def test_options_a_command_would_ignore_are_refused(args, message, fix):
    out = runner.invoke(app, args, input="The cat sat.\n")
    assert out.exit_code == ExitStatus.USAGE, out.output
    if "--json" in args:
        error = json.loads(out.stderr)["error"]
        assert (error["code"], error["message"], error["fix"]) == ("bad_input", message, fix) and out.stdout == ""
        return
    assert out.stderr == f"attn: error: {message} — {fix}\n" and out.stdout == ""
    if args[0] != "plot" and "csv" not in args:  # plot has no --json, and --json with csv is its own error
        error = json.loads(runner.invoke(app, [*args, "--json"], input="The cat sat.\n").stderr)["error"]
        assert (error["code"], error["message"], error["fix"]) == ("bad_input", message, fix)


def test_generate_takes_them_with_what_they_need(tmp_path):
    from test_generate import tied_copy

    lm = str(tied_copy("llama", tmp_path))  # a tiny Llama with an LM head
    out = runner.invoke(app, ["generate", CAT, "-m", lm, "-n", "2", "--sample", "--temperature", "0.5", "--seed", "7", "-q", "cat", "--layer", "0", "--json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert doc["sampling"]["temperature"] == 0.5 and doc["sampling"]["seed"] == 7 and [x["layer"] for x in doc["layers"]] == [0]


@pytest.fixture
def started(monkeypatch):
    apps = []
    monkeypatch.setattr(explore_cli, "_attach_terminal", lambda from_stdin: None)
    monkeypatch.setattr(Explorer, "run", lambda self: apps.append(self))
    return apps


@pytest.mark.parametrize(
    "args, line",
    [
        (["--head", "99"], "head 99 is out of range: each layer has 12 heads (0 … 11) — pick --head between 0 and 11, or auto, mean"),
        (["--layer", "9"], "layer 9 is out of range: the model has 6 layers (0 … 5, or -1 … -6) — pick --layer between 0 and 5"),
        (["--head", "x"], "--head 'x' is not valid — give an index, or one of auto, mean"),
        (["--layer", "last"], "--layer 'last' is not valid — give an index (negative from the end)"),
    ],
)
def test_explore_offers_only_what_it_takes(started, args, line):
    out = runner.invoke(app, ["explore", SENTENCE, *args])
    assert out.exit_code == ExitStatus.USAGE and out.stderr == f"attn: error: {line}\n" and not started


def test_plot_offers_no_all_for_its_one_layer(tmp_path):
    out = runner.invoke(app, ["plot", SENTENCE, "-q", "making", "--layer", "9", "-o", str(tmp_path / "x.html")])
    assert out.exit_code == ExitStatus.USAGE
    assert out.stderr == "attn: error: layer 9 is out of range: the model has 6 layers (0 … 5, or -1 … -6) — pick --layer between 0 and 5\n"
    inspect = runner.invoke(app, ["inspect", SENTENCE, "-q", "making", "--layer", "9"])
    assert inspect.stderr.endswith("— pick --layer between 0 and 5, or 'all'\n")


@pytest.mark.parametrize(
    "args, line",
    [
        (["--top", "0"], "--top 0 is not valid — give --top 1 or more"),
        (["--rank-by", "size"], "--rank-by 'size' is not valid — give one of weight, value_norm, output_norm"),
        (["--steps", "--level", "word"], "--steps shows token vectors, so it cannot be used with --level word — drop --steps or --level word"),
        (["-i", "2"], "both a query word and a query index were given — give either --query or --query-index"),
    ],
)
@pytest.mark.parametrize("command", ["inspect", "batch"])
def test_inspect_and_batch_name_the_flags_of_a_bad_option(command, args, line):
    text = SENTENCE if command == "inspect" else "-"
    out = runner.invoke(app, [command, text, "-q", "making", *args], input=SENTENCE + "\n")
    assert out.exit_code == ExitStatus.USAGE and out.stdout == ""
    error = out.stderr if command == "inspect" else json.loads(out.stderr)["error"]
    assert error == f"attn: error: {line}\n" if command == "inspect" else (error["message"], error["fix"]) == tuple(line.split(" — "))
