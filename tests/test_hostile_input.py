"""Hostile and unlucky input, in process: text that is not Unicode, control characters,
queries in other normal forms, options a command would ignore, and what the user reads about
them. Property tests (hypothesis) throw arbitrary texts and queries at the library: a result
that holds together, or an AttnError, never anything else."""

from __future__ import annotations

import ast
import csv
import io
import json
import os
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from option_registry import covers
from typer.testing import CliRunner

import attn_cli as attn
from attn_cli.cli import ExitStatus, app
from attn_cli.compute.inspect import auto_head
from attn_cli.compute.query import resolve_query
from attn_cli.errors import AttnError, InputError, QueryNotFound
from attn_cli.loading.tokenizer import tokenize

TINY = Path(__file__).parent / "fixtures" / "tiny"
BERT, LLAMA, GPT2 = (str(TINY / n) for n in ("bert", "llama", "gpt2"))
runner = CliRunner()


def invoke(*args: str, stdin: bytes | str | None = None):
    return runner.invoke(app, list(args), input=stdin)


@pytest.fixture(scope="module")
def tiny_bert():
    return attn.load_model(BERT)


# --- text that is not Unicode -------------------------------------------------------------------

def test_stdin_that_is_not_utf8_is_bad_input_naming_the_byte():
    result = invoke("inspect", "-", "-q", "sat", "-m", BERT, stdin=b"The caf\xe9 sat.")
    assert result.exit_code == ExitStatus.USAGE
    assert "byte 0xe9, which is not UTF-8" in result.stderr and result.stdout == ""


def test_an_argument_holding_a_lone_surrogate_is_bad_input():
    result = invoke("inspect", "The \udcff cat sat.", "-q", "cat", "-m", BERT)
    assert result.exit_code == ExitStatus.USAGE
    assert "character 5 is byte 0xff" in result.stderr


def test_a_query_holding_a_surrogate_is_bad_input(tiny_bert):
    with pytest.raises(InputError, match="the query is not valid Unicode"):
        attn.inspect(tiny_bert, "The cat sat.", query="c\ud800t")


def test_batch_fails_only_the_line_that_is_not_unicode(tmp_path):
    lines = tmp_path / "lines.txt"
    lines.write_bytes(b"The cat sat.\nThe dog sat.\nThe \xff bird sat.\n" + b'{"text": "The \\ud800 fox sat.", "query": "sat"}\n' + b"The cow sat.\n")
    result = invoke("batch", str(lines), "-q", "sat", "-m", BERT)
    docs = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.exit_code == ExitStatus.SOME_FAILED
    assert [d["line"] for d in docs] == [1, 2, 3, 4, 5]
    assert ["error" in d for d in docs] == [False, False, True, True, False]
    assert docs[2]["error"]["exit_status"] == ExitStatus.USAGE and "0xff" in docs[2]["error"]["message"]
    assert "U+D800" in docs[3]["error"]["message"]


def test_batch_of_plain_lines_without_a_query_is_refused_before_any_output(tmp_path):
    result = invoke("batch", "-", "-m", BERT, stdin="The cat sat.\nThe dog ran.\n")
    assert result.exit_code == ExitStatus.USAGE
    assert result.stdout == ""
    assert json.loads(result.stderr)["error"]["message"].startswith("line 1 is plain text, and no query was given")


def test_stats_counts_lines_as_line_breaks_do_not_as_unicode_separators(tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_bytes("The cat sat.\nA\u2028B\x0cC.\n\nThe \udcff dog.\n".encode("utf-8", "surrogateescape"))
    result = invoke("stats", "--file", str(texts), "-m", BERT)
    assert result.exit_code == ExitStatus.USAGE
    assert result.stderr.startswith("attn: error: line 4: ")


# --- control characters ---------------------------------------------------------------------------

@pytest.mark.parametrize("command", [["inspect", "-q", "@3", "--level", "word"], ["heads", "-q", "@3"], ["tokens"], ["rollout", "-q", "@3"]])
def test_control_characters_of_the_text_never_reach_the_terminal_raw(command):
    text = "The \x1b[2Jcat sat\x07 on the mat."
    result = invoke(command[0], text, *command[1:], "-m", LLAMA)
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert "\\x1b" in result.stdout


def test_messages_show_control_characters_and_newlines_escaped_on_one_line(tmp_path):
    folder = tmp_path / "a\nb\x1b"
    result = invoke("inspect", "The cat.", "-q", "cat", "-m", str(folder))
    assert result.exit_code == ExitStatus.MODEL
    assert result.stderr.count("\n") == 1 and "a\\nb\\x1b" in result.stderr


ERRORS = {"AttnError", "InputError", "QueryNotFound", "ModelError", "MissingExtra", "OutputFailed"}


def test_every_error_attn_raises_says_how_to_fix_it():
    package = Path(attn.__file__).parent
    missing = []
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ERRORS:
                if any(isinstance(a, ast.Starred) for a in node.args):  # (message, fix) built elsewhere
                    continue
                fix = node.args[1] if len(node.args) > 1 else next((k.value for k in node.keywords if k.arg == "fix"), None)
                if fix is None or (isinstance(fix, ast.Constant) and not fix.value):
                    missing.append(f"{path.relative_to(package)}:{node.lineno}")
    assert not missing


def test_only_commands_with_truncate_suggest_it():
    long = " ".join(["word"] * 140)  # beyond the tiny BERT's 128 positions
    suggested = {cmd: "--truncate" in invoke(cmd, long, *extra, "-m", BERT).stderr for cmd, extra in
                 [("inspect", ["-q", "@1"]), ("heads", ["-q", "@1"]), ("rollout", ["-q", "@1"]), ("stats", [])]}
    assert suggested == {"inspect": True, "heads": False, "rollout": False, "stats": False}


# --- queries ------------------------------------------------------------------------------------------

def test_a_query_without_accents_finds_the_accented_word_and_says_so(tiny_bert):
    result = attn.inspect(tiny_bert, "Le Café est là.", query="cafe")
    assert result.query.text == "Café"
    assert any("accents were set aside" in note for note in result.notes)


def test_normal_forms_do_not_matter():
    text = unicodedata.normalize("NFD", "Le café est là.")  # GPT-2's byte-level tokenizer keeps the accent
    tok = tokenize(attn.load_model(GPT2).tokenizer, text)
    for query in ("CAFÉ", unicodedata.normalize("NFD", "café")):
        found = resolve_query(tok, query)
        assert found.text == text[3:8] and not found.accents_ignored


def test_a_word_cut_by_truncate_is_said_to_be_cut(tiny_bert):
    with pytest.raises(QueryNotFound, match=r"in the part of the text that truncation \(`truncate=True`\) cut off"):
        attn.inspect(tiny_bert, " ".join(["cat"] * 140) + " dog", query="dog", truncate=True)


def test_auto_never_takes_a_decoders_first_word_for_context(tiny_bert):
    tok = tokenize(attn.load_model(GPT2).tokenizer, "The cat sat on")  # GPT-2 adds no BOS: token 0 is "The"
    query = resolve_query(tok, "on")
    rows = np.array([[0.9, 0.0, 0.0, 0.1], [0.2, 0.1, 0.6, 0.1]])  # head 0: the sink; head 1: context
    assert auto_head(rows, tok, query, causal=True) == 1
    assert auto_head(rows, tok, query, causal=False) == 0


def test_a_query_that_sees_only_special_tokens_cannot_rank_without_them():
    result = invoke("heads", "The cat sat.", "-i", "0", "--no-special", "-m", LLAMA)
    assert result.exit_code == ExitStatus.USAGE
    assert "sees only special tokens (<s>)" in result.stderr


# --- options kept or refused --------------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ["inspect", "--format", "csv", "--json"],
    ["inspect", "--format", "csv", "--steps"],
    ["plot", "-o", "x.html", "--layer", "all"],
    ["plot", "-o", "x.html", "--key", "cat"],
    ["plot", "-o", "x.html", "--metric", "entropy"],
    ["plot", "-o", "x.html", "--view", "grid", "--level", "word"],
    ["plot", "-o", "x.html", "--view", "grid", "--layer", "0"],
])
def test_options_the_command_would_ignore_are_refused(tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    result = invoke(args[0], "The cat sat.", "-q", "cat", *args[1:], "-m", BERT)
    assert result.exit_code == ExitStatus.USAGE, result.output
    assert result.stdout == "" and not list(tmp_path.iterdir())


def test_csv_at_word_level_has_one_row_per_word_and_the_norms_when_asked():
    result = invoke("inspect", "The Transformer sat.", "-q", "sat", "--format", "csv", "--level", "word", "--norms", "-m", BERT)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    layer_rows = [r for r in rows if r["head"] == "0"]
    assert [r["token"] for r in layer_rows] == ["[CLS]", "The", "Transformer", "sat", ".", "[SEP]"]
    assert layer_rows[2]["token_index"] == "2 3 4 5 6 7 8 9 10 11" and layer_rows[2]["score"] == ""
    assert float(layer_rows[2]["value_norm"]) > 0
    assert sum(float(r["weight"]) for r in layer_rows) == pytest.approx(1, abs=1e-5)


def test_entropy_is_drawn_as_focus_over_the_keys_the_query_sees(tmp_path):
    model = attn.load_model(LLAMA)
    result = attn.heads(model, "The cat sat on the mat.", query="sat", metric="entropy")
    assert result.visible_keys == (4, 4)  # <s> The cat sat, in both layers
    np.testing.assert_allclose(result.focus, 1 - result.values / np.log(4), rtol=1e-6)
    assert result.focus.min() > 0  # no head spreads evenly, so none is drawn as no focus at all
    out = tmp_path / "grid.html"
    args = ["--view", "grid", "--metric", "entropy", "--static", "-o", str(out), "-m", LLAMA]
    assert invoke("plot", "The cat sat on the mat.", "-q", "sat", *args).exit_code == 0
    page = out.read_text()
    assert "focus = 1 − H/ln n (entropy H in nats over the n keys the query sees: 4)" in page and "1 (focus)" in page


def test_a_split_word_query_says_its_weights_are_a_mean_of_softmax_rows():
    result = invoke("inspect", "The Transformer sat.", "-q", "Transformer", "-m", BERT)
    assert "the weights are the mean of their softmax rows, not the softmax of the mean scores" in " ".join(result.stdout.split())


def test_help_shows_choices_extras_and_plain_usage():
    result = invoke("plot", "--help")
    text = " ".join(result.stdout.split())
    assert "attn-cli[plot]" in text and "heads|grid" in text and "top|weight|entropy" in text
    assert "Usage: attn plot [OPTIONS] [TEXT]" in text  # TEXT is optional with --stats
    assert "H|auto|mean|all" in invoke("inspect", "--help").stdout


# --- plots written as the shell would ------------------------------------------------------------------

@covers("plot --force")
def test_plot_writes_through_a_symlink_and_refuses_a_read_only_file(tmp_path):
    target, link = tmp_path / "real.html", tmp_path / "link.html"
    target.write_text("old")
    link.symlink_to(target)
    args = ["plot", "The cat sat.", "-q", "cat", "-m", BERT, "-o"]
    assert invoke(*args, str(link)).exit_code == 0
    assert link.is_symlink() and "class=\"attn-page\"" in target.read_text()
    target.write_text("old")
    target.chmod(0o444)
    refused = invoke(*args, str(target))
    if not os.access(target, os.W_OK):  # root may write anything, as the shell's > does
        assert refused.exit_code == ExitStatus.USAGE and "read-only" in refused.stderr and target.read_text() == "old"
    assert invoke(*args, str(target), "--force").exit_code == 0
    assert "attn-page" in target.read_text()


PLOT = ["plot", "The cat sat.", "-q", "cat", "-m", BERT, "-o"]


def test_a_directory_that_refuses_the_plot_is_an_output_failure(tmp_path, monkeypatch):
    # As a user without write permission on the directory (chmod 555). Root may write anywhere,
    # so the refusal is the kernel's answer to creating a file there, made up: os.open is what
    # every temporary file is created with.
    refusing, real_open = tmp_path / "read-only", os.open
    refusing.mkdir()

    def open_refused(path, flags, *args, **kwargs):
        if Path(os.fsdecode(path)).parent == refusing:
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_refused)
    result = invoke(*PLOT, str(refusing / "grid.html"))
    assert result.exit_code == ExitStatus.OUTPUT, result.output
    assert result.stderr == f"attn: error: cannot write {refusing / 'grid.html'}: Permission denied — choose a directory you can write to, or write elsewhere\n"
    assert list(refusing.iterdir()) == []


def test_a_directory_that_may_not_be_searched_is_an_output_failure(tmp_path, monkeypatch):
    # chmod 600 on the directory: pathlib's is_file and is_dir raise PermissionError there
    # (it swallows only "no such file"). Made up as above, for root.
    hidden = tmp_path / "hidden"
    real_stat = os.stat

    def stat_refused(path, *args, **kwargs):
        if hidden in Path(os.fsdecode(path)).parents:
            raise PermissionError(13, "Permission denied", path)
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat_refused)
    result = invoke(*PLOT, str(hidden / "grid.html"))
    assert result.exit_code == ExitStatus.OUTPUT, result.output
    assert "unexpected" not in result.stderr and "Permission denied" in result.stderr


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_a_file_system_that_refuses_files_is_an_output_failure_even_for_root(tmp_path):
    result = invoke(*PLOT, "/proc/attn-grid.html")
    assert result.exit_code == ExitStatus.OUTPUT, result.output
    assert result.stderr.startswith("attn: error: cannot write /proc/attn-grid.html: ")


def test_a_file_name_as_long_as_the_file_system_takes_can_be_written(tmp_path):
    longest = tmp_path / ("g" * 250 + ".html")  # 255 bytes, ext4's limit: the temporary name must be shorter
    assert invoke(*PLOT, str(longest)).exit_code == 0
    assert [p.name for p in tmp_path.iterdir()] == [longest.name] and "attn-page" in longest.read_text()
    too_long = invoke(*PLOT, str(tmp_path / ("g" * 251 + ".html")))
    assert too_long.exit_code == ExitStatus.OUTPUT, too_long.output
    assert "File name too long — choose a shorter file name" in too_long.stderr
    assert [p.name for p in tmp_path.iterdir()] == [longest.name]


def test_a_signal_during_a_plot_write_leaves_no_part_file(tmp_path, monkeypatch):
    from attn_cli.cli.signals import Stopped
    from attn_cli.views import plot

    def stopped(f):
        f.write(b"half")
        raise Stopped(15)

    with pytest.raises(Stopped):
        plot.write_file(tmp_path / "x.png", stopped)
    assert list(tmp_path.iterdir()) == []


# --- properties -----------------------------------------------------------------------------------------

TEXTS = st.text(st.characters(blacklist_categories=()), max_size=40)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=TEXTS)
def test_any_text_gives_weights_that_sum_to_one_or_an_attn_error(tiny_bert, text):
    try:
        result = attn.inspect(tiny_bert, text, query_index=-1, head="all")
    except AttnError as exc:
        assert exc.message and exc.fix
        return
    weights = np.stack([h.weights for h in result.layers[0].heads])
    assert np.isfinite(weights).all()
    np.testing.assert_allclose(weights.sum(axis=1), 1, atol=1e-5)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(words=st.lists(st.text(st.characters(whitelist_categories=("Lu", "Ll", "Mn")), min_size=1, max_size=6), min_size=1, max_size=5),
       pick=st.integers(min_value=0), form=st.sampled_from(["NFC", "NFD", "NFKC"]), case=st.sampled_from([str.lower, str.upper, str]))
def test_a_word_of_the_text_is_found_whatever_its_case_and_normal_form(tiny_bert, words, pick, form, case):
    text = " ".join(words)
    try:
        tok = tokenize(tiny_bert.tokenizer, text)
    except AttnError:
        return
    if not tok.words:
        return
    word = tok.words[pick % len(tok.words)]
    query = unicodedata.normalize(form, case(word.text))
    try:
        found = resolve_query(tok, query)
    except (QueryNotFound, InputError) as exc:
        # Only what case-folding or compatibility forms change beyond NFC may miss (e.g. ß → SS).
        assert unicodedata.normalize("NFC", query).casefold() != unicodedata.normalize("NFC", word.text).casefold(), exc.message
        return
    assert word.token_indices[0] in found.token_indices or found.occurrences > 1


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(min_size=1, max_size=30), query=st.text(max_size=10))
def test_any_query_is_found_or_refused_with_an_attn_error(tiny_bert, text, query):
    try:
        tok = tokenize(tiny_bert.tokenizer, text)
        resolve_query(tok, query)
    except AttnError as exc:
        assert exc.message and exc.fix


def test_batch_reports_a_bad_option_as_json_like_its_other_errors():
    from helpers import attn as run

    result = run("batch", "-", "--workers", "abc")
    assert result.returncode == ExitStatus.USAGE
    assert json.loads(result.stderr)["error"]["code"] == "usage"
