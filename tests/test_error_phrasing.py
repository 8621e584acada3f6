"""The library's errors speak to a Python caller (`query_index`, `include_special=False`); the
command line says the same with its flags (--query-index, --no-special)."""

from __future__ import annotations

import json
import re

import pytest
from conftest import SENTENCE
from typer.testing import CliRunner

import attn_cli as attn
from attn_cli.cli import app
from attn_cli.cli.phrasing import for_cli
from attn_cli.compute.query import resolve_query
from attn_cli.errors import AttnError, InputError, QueryNotFound, phrased
from attn_cli.loading.tokenizer import tokenize

runner = CliRunner()
FLAG = re.compile(r"(?<![\w-])--?[a-z]")


def test_phrased_puts_names_in_the_caller_s_terms():
    names = {"query_index": "--query-index", "include_special=False": "--no-special", "top_k": "--top"}
    assert phrased("use `query_index`, or `query_index=N`", names) == "use --query-index, or --query-index N"
    assert phrased("drop `include_special=False`; `top_k=0` is not valid", names) == "drop --no-special; --top 0 is not valid"
    assert phrased("see `attn tokens` and `unknown`", names) == "see `attn tokens` and `unknown`"
    assert AttnError("`top_k=0` is bad", "give `top_k` 1").phrased(names) == ("--top 0 is bad", "give --top 1")


@pytest.mark.parametrize(
    "call",
    [
        lambda tok: resolve_query(tok, "zebra"),
        lambda tok: resolve_query(tok),
        lambda tok: resolve_query(tok, "cat", 2),
        lambda tok: resolve_query(tok, query_index=99),
    ],
)
def test_query_errors_name_python_arguments_not_flags(model, call):
    tok = tokenize(model.tokenizer, SENTENCE)
    with pytest.raises((InputError, QueryNotFound)) as e:
        call(tok)
    assert not FLAG.search(e.value.message) and not FLAG.search(e.value.fix), (e.value.message, e.value.fix)


def test_library_errors_of_options_name_python_arguments(model):
    for kwargs in ({"top_k": 0}, {"level": "letters"}, {"rank_by": "size"}, {"layer": "two"}, {"head": "x"}, {"steps": True, "level": "word"}):
        with pytest.raises(InputError) as e:
            attn.inspect(model, SENTENCE, query="making", **kwargs)
        assert not FLAG.search(e.value.message + e.value.fix), (kwargs, e.value.message, e.value.fix)
    with pytest.raises(InputError, match=r"`include_special=False` leaves no word") as e:
        attn.inspect(attn.load_model("gemma3"), "The cat sat.", query_index=0, include_special=False)  # <bos>
    assert "`include_special=True`" in e.value.fix
    with pytest.raises(InputError) as e:
        attn.tokenize(model, "word " * 600)
    assert "pass `truncate=True` to keep its first 512 tokens" in e.value.fix


def test_the_cli_says_the_same_with_its_flags():
    out = runner.invoke(app, ["inspect", SENTENCE, "-q", "zebra"]).stderr
    assert "a token position with --query-index (see `attn tokens`)" in out and "`" + "query_index" not in out
    err = json.loads(runner.invoke(app, ["inspect", SENTENCE, "-q", "zebra", "--json"]).stderr)
    assert "--query-index" in err["error"]["fix"]
    assert "give either --query or --query-index" in runner.invoke(app, ["inspect", SENTENCE, "-q", "cat", "-i", "2"]).stderr
    assert "--top 0 is not valid — give --top 1 or more" in runner.invoke(app, ["inspect", SENTENCE, "-q", "making", "-k", "0"]).stderr
    assert "--layer 'two' is not valid" in runner.invoke(app, ["inspect", SENTENCE, "-q", "making", "-l", "two"]).stderr
    out = runner.invoke(app, ["inspect", "The cat sat.", "-i", "0", "-m", "gemma3", "--no-special"]).stderr
    assert "so --no-special leaves no word to rank — use --special, or pick a later query" in out
    assert "or pass --truncate to keep its first 512 tokens" in runner.invoke(app, ["inspect", "word " * 600, "-q", "word"]).stderr


def test_for_cli_knows_every_name_the_library_s_messages_use():
    """Every `name` a library message puts in backquotes has a flag (or is a CLI word already)."""
    from pathlib import Path

    root = Path(attn.__file__).parent
    named = set()
    for path in [*root.glob("compute/*.py"), root / "loading" / "tokenizer.py", root / "loading" / "chat.py"]:
        for literal in re.findall(r"(?:raise \w+\(|QueryNotFound\(|InputError\(|ModelError\()([\s\S]*?)\)\s*(?:from None)?\n", path.read_text()):
            named.update(m[0] for m in re.finditer(r"`[^`\s]+`", literal) if "{" not in m[0].split("=")[0])
    unknown = {n for n in named if for_cli(n) == n}
    assert not unknown, unknown


def test_an_encoder_given_to_a_decoder_command_is_told_the_command_not_a_python_call():
    """`attn knockout` on an encoder said "use a decoder for `knockout()`": the library's words.
    Every command that calls require_decoder has its `name()` phrased as the CLI command."""
    from pathlib import Path

    compute = Path(attn.__file__).parent / "compute"
    commands = {m[1] for path in compute.glob("*.py") for m in re.finditer(r'require_decoder\(model, "(\w+)"\)', path.read_text())}
    assert "knockout" in commands
    stats = {"head_statistics": "attn stats --knockout", "corpus_statistics": "attn stats --knockout"}  # only --knockout needs a decoder
    assert {c: for_cli(f"`{c}()`") for c in commands} == {c: stats.get(c, f"attn {c}") for c in commands}
    err = runner.invoke(app, ["knockout", "The cat sat.", "--json"]).stderr
    assert json.loads(err)["error"]["fix"] == "use a decoder for attn knockout (gpt2, llama, mistral, qwen2, qwen3, …), e.g. --model smollm2"
