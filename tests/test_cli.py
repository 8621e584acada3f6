"""The command line, through Typer's CliRunner and as a real process (pipes, stdin, exit codes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SENTENCE
from helpers import attn, make_tiny_bert, validate
from typer.testing import CliRunner

from attn_cli.cli import ExitStatus, app

runner = CliRunner()
ANSI = "\x1b["


def test_default_screen_tells_the_three_steps_in_one_screen():
    result = runner.invoke(app, ["inspect", SENTENCE, "--query", "making"])
    assert result.exit_code == 0, result.output
    out = result.output
    lines = out.splitlines()
    assert len(lines) <= 50
    assert 'all-MiniLM-L6-v2 (bert, 6 layers × 12 heads, d_k 32) · query "making" = token 5' in out
    assert "Layer 5 of 0–5 · head 6 — chosen by --head auto" in out
    assert "Q·K/√32" in out and "Multi-head · layer 5" in out
    assert "Top-attended: language 0.30 · Transformer 0.16 · understand 0.12" in out
    row = next(line for line in lines if "▶ making" in line)  # the step-2 table comes first
    assert row.split()[3:6] == ["-8.57", "-1.51", "0.007"]


def test_steps_adds_step_1_and_step_3():
    out = runner.invoke(app, ["inspect", SENTENCE, "-q", "making", "--steps"]).output
    assert "Step 1 · query, key and value vectors (head 6)" in out
    assert "Step 3 · weighted sum of the values" in out
    assert out.index("Step 1") < out.index("Step 2") < out.index("Step 3") < out.index("Multi-head")


def test_head_mean_shows_no_scores():
    out = runner.invoke(app, ["inspect", SENTENCE, "-q", "making", "--head", "mean"]).output
    assert "mean over heads" in out and "—" in out


def test_json_is_one_valid_document(schema):
    result = runner.invoke(app, ["inspect", SENTENCE, "-q", "making", "--json"])
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    validate(doc, schema, "inspect")
    assert doc["query"]["token_indices"] == [5]
    assert doc["layers"][0]["layer"] == 5 and doc["layers"][0]["focus"] == [6]


def test_tokens_command(schema):
    out = runner.invoke(app, ["tokens", SENTENCE]).output
    assert "##er" in out and "1: Transformer" in out and "(special)" in out
    doc = json.loads(runner.invoke(app, ["tokens", SENTENCE, "--json"]).stdout)
    validate(doc, schema, "tokens")
    assert [t["text"] for t in doc["tokens"]][:4] == ["[CLS]", "the", "transform", "##er"]
    assert doc["tokens"][2] == {
        "index": 2, "text": "transform", "piece": "transform", "source": "Transform", "id": 10938, "start": 4, "end": 13, "word": 1, "special": False,
    }


def test_schema_command_prints_the_shipped_schema(schema):
    assert json.loads(runner.invoke(app, ["schema"]).stdout) == schema


def test_help_has_examples():
    out = runner.invoke(app, ["inspect", "--help"], env={"COLUMNS": "200"}).output
    assert "Examples" in out and "--query making" in out and "--query-index" in out


# --- as a real process -------------------------------------------------------------------

def test_stdin_pipe_and_no_ansi_when_piped(schema):
    p = attn("inspect", "-", "--query", "it", "--layer", "3", "--head", "7", "--json", stdin="The cat sat on the mat because it was tired.\n")
    assert p.returncode == 0 and p.stderr == ""
    doc = json.loads(p.stdout)
    validate(doc, schema, "inspect")
    assert doc["text"] == "The cat sat on the mat because it was tired."
    assert doc["layers"][0]["layer"] == 3 and doc["layers"][0]["focus"] == [7]
    table = attn("inspect", SENTENCE, "-q", "making")
    assert table.returncode == 0 and ANSI not in table.stdout and "▶ making" in table.stdout


def test_color_on_a_terminal_and_no_color_respected():
    coloured = attn("inspect", SENTENCE, "-q", "making", env={"FORCE_COLOR": "1", "TTY_COMPATIBLE": "1"})
    assert ANSI in coloured.stdout
    plain = attn("inspect", SENTENCE, "-q", "making", env={"FORCE_COLOR": "1", "NO_COLOR": "1"})
    assert "\x1b[38;" not in plain.stdout and "\x1b[48;" not in plain.stdout  # no colours (bold may stay)


ERRORS = [
    (["inspect", "", "-q", "x"], ExitStatus.USAGE, "the text is empty"),
    (["inspect", "   ", "-q", "x"], ExitStatus.USAGE, "the text is empty"),
    (["inspect", SENTENCE, "-q", "zebra"], ExitStatus.QUERY_NOT_FOUND, "'zebra' is not a word of the text"),
    (["inspect", SENTENCE, "-q", "making#2"], ExitStatus.QUERY_NOT_FOUND, "no occurrence #2"),
    (["inspect", SENTENCE, "-q", "making", "--layer", "6"], ExitStatus.USAGE, "layer 6 is out of range"),
    (["inspect", SENTENCE, "-q", "making", "--head", "12"], ExitStatus.USAGE, "head 12 is out of range"),
    (["inspect", SENTENCE, "-q", "making", "--model", "/no/such/folder"], ExitStatus.MODEL, "does not exist"),
    (["inspect", SENTENCE, "-q", "making", "--frobnicate"], ExitStatus.USAGE, "No such option: --frobnicate"),
    (["inspect", SENTENCE], ExitStatus.USAGE, "no query given"),
    (["inspect", "word " * 600, "-q", "word"], ExitStatus.USAGE, "602 tokens long, but the model reads at most 512"),
]


@pytest.mark.parametrize("args, status, message", ERRORS)
def test_errors_are_one_line_with_a_fix_and_an_exit_code(args, status, message):
    p = attn(*args)
    assert p.returncode == status
    assert p.stdout == ""
    assert p.stderr.count("\n") == 1 and p.stderr.startswith("attn: error: ") and message in p.stderr
    assert " — " in p.stderr  # problem — fix
    assert "Traceback" not in p.stderr


@pytest.mark.parametrize("args, status, message", ERRORS)
def test_errors_are_json_with_json(args, status, message, schema):
    p = attn(*args, "--json")
    assert p.returncode == status and p.stdout == ""
    doc = json.loads(p.stderr)
    validate(doc, schema, "error")
    assert doc["error"]["exit_status"] == status and message in doc["error"]["message"]


def test_query_not_found_json_lists_candidates():
    doc = json.loads(attn("inspect", "The cat sat.", "-q", "dog", "--json").stderr)
    assert doc["error"]["candidates"] == ["The", "cat", "sat", "."]


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda f: (f / "config.json").unlink(), "has no config.json"),
        (lambda f: (f / "tokenizer.json").unlink(), "has no tokenizer.json"),
        (lambda f: (f / "model.safetensors").write_bytes((f / "model.safetensors").read_bytes()[:5000]), "is truncated"),
        (lambda f: (f / "model.safetensors").write_bytes(b"garbage!garbage!"), "corrupt safetensors header"),
    ],
)
def test_broken_model_folders(tmp_path, damage, message):
    folder = make_tiny_bert(tmp_path / "m")
    damage(folder)
    p = attn("inspect", "The cat sat.", "-q", "cat", "--model", str(folder))
    assert p.returncode == ExitStatus.MODEL and message in p.stderr and p.stdout == ""
    p = attn("inspect", "The cat sat.", "-q", "cat", env={"ATTN_MODEL": str(folder)})
    assert p.returncode == ExitStatus.MODEL and message in p.stderr


def test_stdin_dash_without_a_pipe_is_an_error():
    command = [sys.executable, "-c", "from attn_cli.cli import main; main()", "inspect", "-", "-q", "x"]
    p = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    assert p.returncode == ExitStatus.USAGE and "the text is empty" in p.stderr


def test_sample_inputs_run(tmp_path):
    root = Path(__file__).parent.parent
    text = (root / "sample_inputs" / "cat.txt").read_text()
    p = attn("inspect", "-", "-q", "it", "--json", stdin=text)
    assert p.returncode == 0 and json.loads(p.stdout)["query"]["text"] == "it"


def test_version():
    p = attn("--version")
    assert p.returncode == 0 and p.stdout.startswith("attn 0.")


def test_truncate_keeps_the_first_tokens_and_says_so(schema):
    p = attn("inspect", "-", "-q", "word#3", "--truncate", "--json", stdin="word " * 600)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    validate(doc, schema, "inspect")
    assert doc["truncated_from"] == 602 and len(doc["tokens"]) == 512
    assert doc["tokens"][-1]["text"] == "[SEP]"  # the tokenizer keeps the closing special token
    assert doc["notes"][0] == "the text is 602 tokens long; only its first 512 were read (up to 'word')"
    assert json.loads(attn("inspect", "The cat sat.", "-q", "cat", "--json").stdout)["truncated_from"] is None


def test_csv_is_one_row_per_layer_head_and_token():
    import csv
    import io

    p = attn("inspect", "The cat sat.", "-q", "cat", "--layer", "all", "--format", "csv")
    assert p.returncode == 0 and p.stderr == ""
    rows = list(csv.DictReader(io.StringIO(p.stdout)))
    assert len(rows) == 6 * 13 * 6  # layers × (12 heads + mean) × tokens
    doc = json.loads(attn("inspect", "The cat sat.", "-q", "cat", "--layer", "all", "--json").stdout)
    row = next(r for r in rows if r["layer"] == "2" and r["head"] == "7" and r["token"] == "sat")
    head = doc["layers"][2]["heads"][7]
    assert float(row["weight"]) == head["weights"][3] and float(row["score"]) == head["scores"][3]
    assert row["word"] == "sat" and row["special"] == "0"
    mean = next(r for r in rows if r["head"] == "mean" and r["token"] == "[CLS]")
    assert mean["score"] == "" and mean["special"] == "1"


def test_format_json_errors_are_json_too():
    p = attn("inspect", "The cat sat.", "-q", "dog", "-f", "json")
    assert p.returncode == ExitStatus.QUERY_NOT_FOUND and json.loads(p.stderr)["error"]["code"] == "query_not_found"
    p = attn("inspect", "The cat sat.", "-q", "cat", "--format", "xml")
    assert p.returncode == ExitStatus.USAGE and "'xml' is not one of 'table', 'json', 'csv'" in p.stderr


def test_shell_completion_is_available():
    # The script `--show-completion` prints (it detects the shell from the process tree, which
    # varies with how the tests were started; the environment variable names the shell).
    p = attn(env={"_ATTN_COMPLETE": "source_bash"})
    assert p.returncode == 0 and "_attn_completion" in p.stdout
    p = attn(env={"_ATTN_COMPLETE": "complete_bash", "COMP_WORDS": "attn ins", "COMP_CWORD": "1"})
    assert p.stdout.split() == ["inspect"]


def test_a_text_that_is_a_file_s_path_is_read_as_text_with_a_note(tmp_path, monkeypatch):
    """`attn inspect notes.txt -q it` analyses the words "notes.txt"; a note says how to read the file."""
    (tmp_path / "notes.txt").write_text("The cat sat because it was tired.\n")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["inspect", "notes.txt", "-q", "notes", "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["text"] == "notes.txt"
    assert result.stderr == "attn: note: 'notes.txt' is a file's path, and TEXT is read as the text itself; to read the file, give - < notes.txt\n"
    stats = runner.invoke(app, ["stats", "notes.txt", "--json"])
    assert stats.exit_code == 0 and stats.stderr.endswith("to read the file, give --file notes.txt\n")
    assert runner.invoke(app, ["tokens", "notes"]).stderr == ""  # not a file: no note
    piped = runner.invoke(app, ["tokens", "-", "--json"], input="notes.txt")
    assert piped.stderr == "" and json.loads(piped.stdout)["text"] == "notes.txt"
