"""Words are found in the text's characters, the same for every tokenizer: a query finds the
same word on BERT's WordPiece, SmolLM2's byte-level BPE and Gemma's SentencePiece."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from attn_cli.cli import app
from attn_cli.compute.query import resolve_query
from attn_cli.loading.model import load_model
from attn_cli.loading.tokenizer import tokenize
from attn_cli.loading.words import same_text, segment

runner = CliRunner()


def words(text: str) -> list[str]:
    return [text[a:b] for a, b in segment(text)]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("猫坐在垫子上。", ["猫", "坐", "在", "垫", "子", "上", "。"]),
        ("私はネコです", ["私", "は", "ネ", "コ", "で", "す"]),
        ("I didn’t go, they didn't.", ["I", "didn’t", "go", ",", "they", "didn't", "."]),
        ("'quoted' rock 'n' roll", ["'", "quoted", "'", "rock", "'", "n", "'", "roll"]),
        ("pi is 3.14, not 1,000. Wait...", ["pi", "is", "3.14", ",", "not", "1,000", ".", "Wait", "..."]),
        ("well-known e.g. x_y", ["well", "-", "known", "e", ".", "g", ".", "x", "_", "y"]),
        ("Café naïve Zürich", ["Café", "naïve", "Zürich"]),
        ("Cafe\u0301 ok", ["Cafe\u0301", "ok"]),  # a decomposed é: the accent stays on its letter
        ("go 🎉🎉 👨\u200d👩\u200d👧 👍🏽 🇫🇷!", ["go", "🎉🎉", "👨\u200d👩\u200d👧", "👍🏽", "🇫🇷", "!"]),
        ("a\u200bb\n\n\tc  ", ["a", "b", "c"]),  # a zero-width space separates
        ("東京2024年", ["東", "京", "2024", "年"]),
    ],
)
def test_segment(text, expected):
    assert words(text) == expected


def test_segment_skips_special_tokens_written_in_the_text():
    text = "<|im_start|>user\nHi<|im_end|>"
    assert [text[a:b] for a, b in segment(text, ((0, 12), (19, 29)))] == ["user", "Hi"]


def test_same_text_reads_apostrophes_case_and_spacing_alike():
    assert same_text("Didn’t  New\nYork") == same_text("didn't new york") == "didn't new york"


@pytest.fixture(scope="module")
def models(model):
    return {"minilm": model, "smollm2": load_model("smollm2"), "gemma3": load_model("gemma3")}


@pytest.mark.parametrize(
    "text",
    ["猫坐在垫子上。", "I didn’t see the well-known café at 3.14 pm… 🎉🎉", "Who wrote Hamlet?\n\nShakespeare did."],
)
def test_every_tokenizer_reads_the_same_words(models, text):
    found = {name: [(w.text, w.start, w.end) for w in tokenize(m.tokenizer, text).words] for name, m in models.items()}
    assert found["smollm2"] == found["minilm"] == found["gemma3"] == [(text[a:b], a, b) for a, b in segment(text)]


def test_every_token_that_covers_a_word_is_among_its_tokens(models):
    text = "猫坐在垫子上。 I didn’t go."
    for name, m in models.items():
        tok = tokenize(m.tokenizer, text)
        for t in tok.tokens:
            covered = [w.index for w in tok.words if t.index in w.token_indices]
            source = tok.source(t)
            if t.special or not source.strip():
                assert covered == [] and t.word is None, (name, t)
            else:
                assert covered and t.word == covered[0], (name, t)
                assert all(tok.words[i].start < t.end and t.start < tok.words[i].end for i in covered)


def test_chinese_query_is_found_on_every_model(models):
    for name, m in models.items():
        tok = tokenize(m.tokenizer, "猫坐在垫子上。")
        q = resolve_query(tok, "猫")
        assert q.text == "猫" and q.occurrences == 1, name
        assert {tok.source(tok.tokens[i]) for i in q.token_indices} == {"猫"}, name
    # SmolLM2 spells 猫 as three byte tokens: the query is all three
    assert len(resolve_query(tokenize(models["smollm2"].tokenizer, "猫坐在垫子上。"), "猫").token_indices) == 3


def test_a_token_of_two_words_is_one_unit_and_either_word_finds_it(models):
    tok = tokenize(models["gemma3"].tokenizer, "猫坐在垫子上。")  # Gemma reads 坐在 as one token
    shared = next(t for t in tok.tokens if t.text == "坐在")
    assert resolve_query(tok, "坐").token_indices == resolve_query(tok, "在").token_indices == (shared.index,)
    assert resolve_query(tok, "坐在").token_indices == (shared.index,)
    assert [u.text for u in tok.word_units] == ["<bos>", "猫", "坐在", "垫", "子上", "。"]
    assert [w.text for w in tok.words_of(shared)] == ["坐", "在"]


@pytest.mark.parametrize("asked, written", [("didn't", "didn’t"), ("didn’t", "didn't"), ("DIDN'T", "didn’t")])
def test_apostrophes_match_either_way(models, asked, written):
    for name, m in models.items():
        tok = tokenize(m.tokenizer, f"She {written} know.")
        q = resolve_query(tok, asked)
        assert q.text == written, name
        assert "".join(tok.source(tok.tokens[i]) for i in q.token_indices).strip() == written, name


def test_cli_finds_a_chinese_word_on_a_decoder():
    result = runner.invoke(app, ["inspect", "猫坐在垫子上。", "-q", "猫", "-m", "smollm2", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["query"]["text"] == "猫" and doc["query"]["token_indices"] == [0, 1, 2]
    assert [w["text"] for w in doc["words"]] == ["猫", "坐", "在", "垫", "子", "上", "。"]


def test_truncation_keeps_the_words_it_read(model):
    tok = tokenize(model.tokenizer, "cat " * 10 + "fibonacci", max_tokens=12, truncate=True)
    assert [w.text for w in tok.words] == ["cat"] * 10
    assert tok.total_tokens is not None


def test_generated_text_continues_the_words(models):
    from attn_cli.loading.tokenizer import continued

    m = models["smollm2"]
    tok = tokenize(m.tokenizer, "The cat sa")
    ids = m.tokenizer.encode("t down").ids
    grown = continued(m.tokenizer, tok, ids, [m.tokenizer.decode([i]) for i in ids])
    assert grown.text == "The cat sat down"
    assert [w.text for w in grown.words] == ["The", "cat", "sat", "down"]
    assert grown.words[2].token_indices[0] == tok.words[2].token_indices[0]
