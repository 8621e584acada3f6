"""Hostile input found by using attn as a newcomer would, then attacking it: each case is one
line on stderr naming the problem and the fix, a documented exit status, nothing on stdout,
never an "unexpected" error (exit 1)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from attn_cli.cli import ExitStatus, app

TINY = Path(__file__).parent / "fixtures" / "tiny"
BERT, LLAMA = (str(TINY / n) for n in ("bert", "llama"))
runner = CliRunner()


def invoke(*args: str, stdin: bytes | str | None = None):
    return runner.invoke(app, list(args), input=stdin)


def assert_usage_error(result, *needles: str) -> None:
    assert result.exit_code == ExitStatus.USAGE, result.stderr
    assert result.stdout == ""
    line = result.stderr.strip()
    assert "\n" not in line and line.startswith("attn: error: ") and "unexpected" not in line
    for needle in needles:
        assert needle in line


# --- seeds NumPy refuses --------------------------------------------------------------------------

def test_a_negative_sampling_seed_is_a_usage_error_not_a_crash():
    result = invoke("generate", "The cat", "-m", LLAMA, "--sample", "--seed", "-1", "-n", "1")
    assert_usage_error(result, "--seed -1 is not valid", "give --seed 0 or more")


def test_a_negative_induction_seed_is_refused_before_the_corpus_runs(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("The cat sat.\nThe dog ran.\n", encoding="utf-8")
    for args in (["The cat sat."], ["--file", str(corpus)]):
        result = invoke("stats", *args, "-m", BERT, "--seed", "-1")
        assert_usage_error(result, "--seed -1 is not valid", "give --seed 0 or more")


# --- a saved stats document that is not one -------------------------------------------------------

def _stats_document(heads) -> dict:
    return {"schema_version": "2.4", "model": {"name": "m"}, "texts": 1, "layers": [{"layer": 0, "heads": heads}]}


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        ([{"layer": 0, "heads": 5}], "the stats document's layers are not lists of heads"),
        ([None], "the stats document's layers are not lists of heads"),
        ([{"layer": 0, "heads": [7]}], "the stats document's heads are not objects"),
        ([{"heads": [{"first_token": 0.1}, {"first_token": 0.2}]}, {"heads": [{"first_token": 0.3}]}], "layers have different numbers of heads"),
        ([{"heads": [{"first_token": "x"}]}], "first_token values are not all numbers"),
        ([{"heads": [{"first_token": True}]}], "first_token values are not all numbers"),
    ],
)
def test_a_malformed_stats_document_is_bad_input_not_a_crash(tmp_path, layers, message):
    doc = tmp_path / "stats.json"
    doc.write_text(json.dumps({**_stats_document([]), "layers": layers}), encoding="utf-8")
    result = invoke("plot", "--stats", str(doc), "-o", str(tmp_path / "heads.svg"))
    assert_usage_error(result, message, "attn stats --file corpus.txt --json > stats.json")
    assert not (tmp_path / "heads.svg").exists()


def test_a_stats_document_without_its_model_says_so(tmp_path):
    doc = tmp_path / "stats.json"
    doc.write_text(json.dumps({"layers": [{"heads": [{"first_token": 0.5}]}]}), encoding="utf-8")
    result = invoke("plot", "--stats", str(doc), "-o", str(tmp_path / "heads.svg"))
    assert_usage_error(result, "is not an attn stats document (it has no model)")


# --- a GGUF file whose tokenizer metadata is corrupt ----------------------------------------------

GPT2_METADATA = {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.tokens": ["a", "b", "ab", "c"], "tokenizer.ggml.token_type": [1, 1, 1, 1]}


@pytest.mark.parametrize(
    ("merges", "message"),
    [
        (["a b", "ab x"], "Token `x` out of vocabulary"),  # one flipped byte in a merge (a fuzzed smollm2 file)
        (["a b", "abc"], "x.gguf's tokenizer does not hold together"),  # a merge without its space
    ],
)
def test_merges_the_vocabulary_does_not_hold_are_a_model_error(merges, message):
    from attn_cli.errors import ModelError
    from attn_cli.loading.gguf_tokenizer import build_tokenizer

    with pytest.raises(ModelError, match=message) as raised:
        build_tokenizer({**GPT2_METADATA, "tokenizer.ggml.merges": merges}, "llama", "x.gguf")
    assert "re-download x.gguf" in raised.value.fix


# --- stdout and stdin closed ----------------------------------------------------------------------

ENTRY = [sys.executable, "-c", "from attn_cli.cli import main; main()"]


@pytest.mark.parametrize("args", [["--help"], ["inspect", "--help"], ["--version"], []])
def test_help_into_a_closed_stdout_is_an_output_failure_not_silent_success(args):
    # Python starts with sys.stdout None when descriptor 1 is closed, and Click then writes nowhere.
    run = subprocess.run([*ENTRY, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=lambda: os.close(1), timeout=60)
    assert run.returncode == ExitStatus.OUTPUT
    assert run.stderr == "attn: error: cannot write the output: stdout is closed — run attn with stdout open (redirect it to a file or to /dev/null)\n"


def test_batch_of_a_closed_stdin_is_bad_input_not_an_empty_success():
    run = subprocess.run([*ENTRY, "batch", "-", "-q", "cat", "-m", BERT], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         preexec_fn=lambda: os.close(0), timeout=60)
    assert (run.returncode, run.stdout) == (ExitStatus.USAGE, "")
    error = json.loads(run.stderr)["error"]
    assert error["message"] == "FILE is - but nothing is piped to stdin" and "attn batch - < texts.txt" in error["fix"]


def test_plot_stats_of_a_closed_stdin_is_bad_input_not_a_crash(tmp_path):
    run = subprocess.run([*ENTRY, "plot", "--stats", "-", "-o", str(tmp_path / "heads.svg")], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         preexec_fn=lambda: os.close(0), timeout=60)
    assert (run.returncode, run.stdout) == (ExitStatus.USAGE, "")
    assert run.stderr.startswith("attn: error: --stats is - but nothing is piped to stdin — pipe the document in")


def test_explore_with_stdin_closed_says_it_needs_a_terminal():
    # stderr a terminal (so that the stdin check is reached), stdin closed
    main, other = os.openpty()
    try:
        run = subprocess.run([*ENTRY, "explore", "The cat sat.", "-m", BERT], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=other,
                             preexec_fn=lambda: os.close(0), timeout=60)
        os.close(other)
        said = os.read(main, 4096).decode()
    finally:
        os.close(main)
    assert (run.returncode, run.stdout) == (ExitStatus.USAGE, b"")
    assert said.startswith("attn: error: attn explore reads keys from stdin, and stdin is not a terminal — run attn explore in a terminal")


# --- queries and texts without words --------------------------------------------------------------

@pytest.mark.parametrize(("args", "message"), [
    (["inspect", "The cat sat.", "-q", "  "], "the query is empty — give a word of the text (The, cat, sat, .)"),
    (["heads", "The cat sat.", "-q", "cat", "--key", ""], "the key is empty — give a word of the text (The, cat, sat, .)"),
    (["compare", "The cat sat.", "The dog sat.", "-q", "sat", "--query-b", " "], "text B: the query is empty — give a word of the text (The, dog, sat, .)"),
    (["inspect", "\u200b\u200b", "-q", ""], "the query is empty — the text has no words: give --query-index N"),
    (["inspect", "\u200b\u200b"], "no query given, and the text has no words, only special tokens — add --query-index N (see `attn tokens`)"),
])
def test_an_empty_query_or_a_text_without_words_is_a_usage_error_that_says_so(args, message):
    result = invoke(*args, "-m", BERT)
    assert_usage_error(result, message)


def test_a_query_in_a_text_without_words_does_not_list_no_words():
    result = invoke("inspect", "\u200b\u200b", "-q", "cat", "-m", BERT)
    assert result.exit_code == ExitStatus.QUERY_NOT_FOUND and result.stdout == ""
    assert result.stderr == (
        "attn: error: 'cat' is not a word of the text: the text has no words, only special tokens — "
        "give a text with words, or a token position with --query-index (see `attn tokens`)\n"
    )


def test_a_10000_character_word_is_shortened_in_messages():
    word = "x" * 10_000
    result = invoke("inspect", f"The {word} sat.", "-q", "y" * 10_000, "-m", BERT)
    assert result.exit_code == ExitStatus.QUERY_NOT_FOUND
    short = "x" * 20 + "…" + "x" * 20
    assert result.stderr.startswith(f"attn: error: '{'y' * 20}…{'y' * 20}' is not a word of the text; the words are: The, {short}, sat, . — ")
    assert len(result.stderr) < 300


# --- model folders ----------------------------------------------------------------------------------

def test_a_folder_named_like_a_gguf_file_is_not_taken_for_one(tmp_path):
    (tmp_path / "old.gguf").mkdir()
    result = invoke("tokens", "The cat", "-m", str(tmp_path))
    assert result.exit_code == ExitStatus.MODEL and result.stdout == ""
    assert result.stderr.startswith(f"attn: error: {tmp_path} has no config.json — ")


def test_two_gguf_files_are_both_named_without_a_false_ellipsis(tmp_path):
    for name in ("a.gguf", "b.gguf"):
        (tmp_path / name).write_bytes(b"GGUF")
    result = invoke("tokens", "The cat", "-m", str(tmp_path))
    assert result.exit_code == ExitStatus.MODEL
    assert result.stderr == f"attn: error: {tmp_path} holds 2 .gguf files (a.gguf, b.gguf) — pass --model the .gguf file to use\n"


# --- output -----------------------------------------------------------------------------------------

def test_the_path_plot_prints_is_the_files_even_when_its_name_is_not_utf8(tmp_path):
    # A name with byte 0xff reaches Python as U+DCFF (surrogateescape); stdout carries the byte back.
    path = tmp_path / "caf\udcff.html"
    result = invoke("plot", "The cat sat.", "-q", "cat", "-m", BERT, "-o", str(path))
    assert result.exit_code == 0, result.stderr
    assert result.stdout_bytes == os.fsencode(str(path)) + b"\n"
    assert os.path.isfile(result.stdout_bytes.strip())


@pytest.mark.parametrize("args", [["inspect", "The cat sat.", "-q", "cat"], ["tokens", "The cat sat."]])
def test_columns_0_is_no_width_not_an_empty_screen(args):
    # Rich took COLUMNS=0 as a width of 0 and printed nothing, exit 0: the data was lost.
    run = subprocess.run([*ENTRY, *args, "-m", BERT], capture_output=True, text=True, env={**os.environ, "COLUMNS": "0"}, timeout=60)
    plain = subprocess.run([*ENTRY, *args, "-m", BERT], capture_output=True, text=True, env={**os.environ, "COLUMNS": "80"}, timeout=60)
    assert (run.returncode, run.stderr) == (0, "")
    assert run.stdout == plain.stdout and "cat" in run.stdout


def test_stats_knockout_on_an_encoder_names_the_command_as_typed(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("The cat sat.\n", encoding="utf-8")
    for args in (["The cat sat."], ["--file", str(corpus)]):
        result = invoke("stats", *args, "-m", BERT, "--knockout", "3")
        assert_usage_error(result, "use a decoder for attn stats --knockout (gpt2, llama,")
        assert "()" not in result.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["ablate", "The cat sat.", "-q", "cat", "--mode", "bogus"], "ablation mode 'bogus' is not valid — use one of: zero, mean"),
    (["contrib", "The cat sat.", "-q", "cat", "--method", "bogus"], "contribution method 'bogus' is not valid — use one of:"),
    (["knockout", "The cat sat.", "-m", LLAMA, "--window", "-1"], "a knockout window of -1 layers is not valid — give a window of 1 layer or more"),
    (["routes", "The cat sat.", "-m", LLAMA, "--threshold", "-1"], "a threshold of -1.0 is not valid — give --threshold from 0"),
])
def test_a_bad_choice_is_said_to_be_not_valid(args, message):
    # These said only "ablation mode 'bogus' — use one of …": the problem was left unsaid.
    result = invoke(*args, *([] if "-m" in args else ["-m", BERT]))
    assert_usage_error(result, message)


# --- JSON nested too deeply, numbers too long ----------------------------------------------------------

DEEP = "[" * 100_000 + "]" * 100_000


def test_a_jsonl_line_with_a_5000_digit_number_fails_alone(tmp_path):
    lines = tmp_path / "lines.jsonl"
    lines.write_text('{"text": "The cat sat.", "query_index": ' + "9" * 5000 + '}\n{"text": "The cat sat.", "query": "cat"}\n', encoding="utf-8")
    result = invoke("batch", str(lines), "-m", BERT)
    assert result.exit_code == ExitStatus.SOME_FAILED
    first, second = (json.loads(line) for line in result.stdout.splitlines())
    assert first["error"]["message"].startswith("invalid JSON: Exceeds the limit (4300 digits)") and first["error"]["exit_status"] == 2
    assert second["line"] == 2 and "error" not in second


def test_a_stats_document_nested_too_deeply_is_not_json(tmp_path):
    doc = tmp_path / "deep.json"
    doc.write_text(DEEP, encoding="utf-8")
    result = invoke("plot", "--stats", str(doc), "-o", str(tmp_path / "x.svg"))
    assert_usage_error(result, "deep.json is not JSON")


@pytest.mark.parametrize(("name", "args"), [("generation_config.json", []), ("tokenizer_config.json", ["--chat"])])
def test_a_model_json_nested_too_deeply_is_a_model_error(tmp_path, name, args):
    folder = tmp_path / "llama"
    shutil.copytree(LLAMA, folder, ignore=shutil.ignore_patterns("ref_*.npz"))
    (folder / name).write_text('{"a": ' + DEEP + "}", encoding="utf-8")
    result = invoke("generate", "The cat", "-m", str(folder), "-n", "1", *args)
    assert result.exit_code == ExitStatus.MODEL and result.stdout == ""
    assert result.stderr == f"attn: error: cannot read {folder / name}: its JSON is nested too deeply — re-download {name}\n"


@pytest.mark.parametrize(("args", "message"), [
    (["--layer", "9" * 5000], "--layer 99999999999999999999… (5000 digits) is out of range — give an index (negative from the end) or 'all'"),
    (["--head", "-" + "9" * 5000], "--head -9999999999999999999… (5000 digits) is out of range — give an index, or one of auto, mean, all"),
    (["-q", "@" + "9" * 5000], f"the number {'9' * 20}…{'9' * 20} is out of range — give a token position or occurrence from `attn tokens`"),
    (["-q", "cat#" + "9" * 5000], f"the number {'9' * 20}…{'9' * 20} is out of range"),
])
def test_a_number_of_thousands_of_digits_is_out_of_range_not_a_crash(args, message):
    # Python refuses int() of over 4,300 digits: an unexpected ValueError (exit 1) before.
    args = ["-q", "cat", *args] if args[0] != "-q" else args
    assert_usage_error(invoke("inspect", "The cat sat.", *args, "-m", BERT), message)


def test_a_memory_budget_beyond_any_float_is_too_large_not_a_crash():
    result = invoke("generate", "The cat", "-m", LLAMA, "-n", "1", "--max-memory", "9" * 400 + "G")
    assert_usage_error(result, f"--max-memory {'9' * 20}… is too large — give bytes with an optional unit")


@pytest.mark.parametrize("temperature", [1e-320, 5e-324])
def test_a_temperature_near_zero_samples_the_most_likely_token_not_nan(temperature, tmp_path):
    # logits / 1e-320 overflowed to inf, and softmax of inf − inf is NaN: exit 1 before.
    import numpy as np
    from helpers import tied_copy

    from attn_cli.maths.sampling import sample

    rng = np.random.default_rng(0)
    assert [sample(np.array([1.0, 3.0, 2.0], dtype=np.float32), rng, temperature) for _ in range(5)] == [1] * 5
    lm = str(tied_copy("llama", tmp_path))
    greedy = invoke("generate", "The cat", "-m", lm, "-n", "3", "--json")
    sampled = invoke("generate", "The cat", "-m", lm, "-n", "3", "--sample", "--temperature", str(temperature), "--seed", "1", "--json")
    assert sampled.exit_code == 0, sampled.stderr
    assert json.loads(sampled.stdout)["text"] == json.loads(greedy.stdout)["text"]


def test_compare_refuses_stdin_for_both_texts():
    # A took all of stdin, and B was then "empty": an error about text B the user never gave.
    result = invoke("compare", "-", "-", "-q", "cat", "-m", BERT, stdin="The cat sat.")
    assert_usage_error(result, "TEXT_A and TEXT_B are both -, but stdin holds one text — give one of them as an argument")


@pytest.mark.parametrize("fields", ["", ",,,", " , "])
def test_batch_fields_that_name_no_field_are_refused(tmp_path, fields):
    # "" kept every field and ",,," none but the line number: neither is what was asked.
    lines = tmp_path / "lines.txt"
    lines.write_text("The cat sat.\n", encoding="utf-8")
    result = invoke("batch", str(lines), "-q", "cat", "-m", BERT, "--fields", fields)
    assert (result.exit_code, result.stdout) == (ExitStatus.USAGE, "")
    assert json.loads(result.stderr)["error"] == {
        "code": "bad_input", "message": "--fields names no field",
        "fix": "give comma-separated fields, e.g. --fields query,layers, or drop --fields", "exit_status": 2,
    }


@pytest.mark.parametrize("args", [["--json=1"], ["--layer"]])
def test_an_options_parser_error_points_at_the_commands_help(args):
    # Click gives these no context: the fix said `attn --help`, whose page does not list --layer.
    run = subprocess.run([*ENTRY, "inspect", "The cat sat.", "-q", "cat", "-m", BERT, *args], capture_output=True, text=True, timeout=60)
    assert (run.returncode, run.stdout) == (ExitStatus.USAGE, "")
    assert run.stderr.startswith("attn: error: Option ") and run.stderr.endswith(" — see `attn inspect --help`\n")


def test_a_plot_under_a_file_does_not_suggest_mkdir_on_it(tmp_path):
    (tmp_path / "notes.txt").write_text("x", encoding="utf-8")
    result = invoke("plot", "The cat sat.", "-q", "cat", "-m", BERT, "-o", str(tmp_path / "notes.txt" / "x.png"))
    assert_usage_error(result, "notes.txt is not a directory — choose another path")
    assert "mkdir" not in result.stderr
    spaced = tmp_path / "no such dir" / "x.png"
    result = invoke("plot", "The cat sat.", "-q", "cat", "-m", BERT, "-o", str(spaced))
    assert_usage_error(result, f"(mkdir -p '{spaced.parent}')")


def test_a_tokenizer_whose_post_processor_names_a_missing_token_is_a_model_error(tmp_path):
    # It loaded, then panicked in Rust at the first encode: a Rust backtrace and exit 1.
    folder = tmp_path / "bert"
    shutil.copytree(BERT, folder, ignore=shutil.ignore_patterns("ref_*.npz"))
    tokenizer = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    tokenizer["post_processor"] = {
        "type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "[X]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [], "special_tokens": {},
    }
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer), encoding="utf-8")
    run = subprocess.run([*ENTRY, "inspect", "The cat sat.", "-q", "cat", "-m", str(folder)], capture_output=True, text=True, timeout=60)
    assert (run.returncode, run.stdout) == (ExitStatus.MODEL, "")
    assert run.stderr == (
        f"attn: error: {folder / 'tokenizer.json'}: the tokenizer fails on any text (no entry found for key) — re-download tokenizer.json\n"
    )


def test_a_rust_panic_anywhere_is_an_unexpected_error_in_one_line(monkeypatch, capsys):
    # pyo3's PanicException derives from BaseException: `except Exception` let it out as a traceback.
    import attn_cli.compute.inspect as compute
    from attn_cli.cli import main

    class PanicException(BaseException):
        pass

    def panic(*args, **kwargs):
        raise PanicException("no entry found for key")

    monkeypatch.delenv("ATTN_DEBUG", raising=False)
    monkeypatch.setattr(compute, "inspect_with", panic)
    monkeypatch.setattr(sys, "argv", ["attn", "inspect", "The cat sat.", "-q", "cat", "-m", BERT])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    assert (exit_info.value.code, out) == (ExitStatus.ERROR, "")
    assert err == "attn: error: unexpected PanicException: no entry found for key — please report this bug (ATTN_DEBUG=1 shows the traceback)\n"


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_batch_line_asking_for_chat_on_a_model_without_a_template_fails_alone(tmp_path, workers):
    # The ModelError ended the whole run (exit 4), losing the lines of its pack already answered.
    good = json.dumps({"text": "The cat sat on the mat.", "query": "cat"})
    lines = tmp_path / "lines.jsonl"
    lines.write_text("\n".join([good, json.dumps({"text": "The cat sat.", "query": "cat", "chat": True}), good]) + "\n", encoding="utf-8")
    result = invoke("batch", str(lines), "-m", BERT, "--workers", workers)
    assert result.exit_code == ExitStatus.SOME_FAILED, result.stderr
    docs = [json.loads(line) for line in result.stdout.splitlines()]
    assert [d["line"] for d in docs] == [1, 2, 3] and "error" not in docs[0] and "error" not in docs[2]
    assert docs[1]["error"]["code"] == "model_error" and docs[1]["error"]["exit_status"] == 4
    assert "has no chat template" in docs[1]["error"]["message"]
