"""Tokens map back to the text; queries find the right tokens; mistakes get helpful errors."""

from __future__ import annotations

import pytest
from conftest import SENTENCE

from attn_cli.compute.query import resolve_query
from attn_cli.errors import InputError, QueryNotFound
from attn_cli.loading.tokenizer import tokenize


@pytest.fixture(scope="module")
def tok(model):
    return tokenize(model.tokenizer, SENTENCE)


def test_tokens_are_bert_wordpieces_with_special_tokens_and_no_padding(tok):
    assert [t.text for t in tok.tokens] == [
        "[CLS]", "the", "transform", "##er", "is", "making", "it", "possible", "to", "understand", "language", ".", "[SEP]",
    ]
    assert tok.ids.tolist()[:2] == [101, 1996] and tok.ids.tolist()[-1] == 102
    assert [t.special for t in tok.tokens] == [True] + [False] * 11 + [True]


def test_offsets_map_tokens_back_to_words_of_the_text(tok):
    for t in tok.tokens:
        if t.special:
            assert (t.start, t.end, t.word) == (None, None, None)
        else:
            assert SENTENCE[t.start : t.end].lower() == t.text.removeprefix("##")
    assert [w.text for w in tok.words] == ["The", "Transformer", "is", "making", "it", "possible", "to", "understand", "language", "."]
    assert tok.words[1].token_indices == (2, 3)


def test_offsets_are_characters_not_bytes(model):
    text = "Café in Zürich — naïve!"
    tok = tokenize(model.tokenizer, text)
    assert [w.text for w in tok.words] == ["Café", "in", "Zürich", "—", "naïve", "!"]


def test_long_text_is_refused_with_its_length_and_the_limit(model):
    with pytest.raises(InputError, match=r"602 tokens long, but the model reads at most 512"):
        tokenize(model.tokenizer, "word " * 600, max_tokens=512)


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_text_is_refused(model, text):
    with pytest.raises(InputError, match="empty"):
        tokenize(model.tokenizer, text)


def test_query_word_is_case_insensitive(tok):
    q = resolve_query(tok, "MAKING")
    assert (q.text, q.token_indices, q.occurrence, q.occurrences) == ("making", (5,), 1, 1)


def test_split_word_is_one_query_of_all_its_tokens(tok):
    q = resolve_query(tok, "transformer")
    assert q.text == "Transformer" and q.token_indices == (2, 3)


def test_several_words_form_one_query(tok):
    assert resolve_query(tok, "understand language").token_indices == (9, 10)


def test_word_with_an_apostrophe_is_found_across_the_pre_tokenizer_split(model):
    tok = tokenize(model.tokenizer, "They aren't here.")
    assert resolve_query(tok, "aren't").token_indices == (2, 3, 4)


def test_occurrences(model):
    tok = tokenize(model.tokenizer, "The dog chased the other dog around the dog park.")
    assert resolve_query(tok, "dog").token_indices == (2,)
    assert resolve_query(tok, "dog").occurrences == 3
    q = resolve_query(tok, "dog#3")
    assert (q.token_indices, q.occurrence) == ((9,), 3)
    with pytest.raises(QueryNotFound, match="occurs 3 times in the text, so there is no occurrence #4") as e:
        resolve_query(tok, "dog#4")
    assert e.value.candidates == ["dog#1", "dog#2", "dog#3"]
    with pytest.raises(InputError, match="#0"):
        resolve_query(tok, "dog#0")


def test_query_by_position(tok):
    assert resolve_query(tok, query_index=0).token_indices == (0,)
    assert resolve_query(tok, query_index=0).text == "[CLS]"
    assert resolve_query(tok, "@5").token_indices == (5,)
    assert resolve_query(tok, query_index=-1).token_indices == (12,)
    with pytest.raises(InputError, match="position 13 is out of range: the text has 13 tokens"):
        resolve_query(tok, query_index=13)


def test_missing_query_suggests_close_words_and_lists_them(tok):
    with pytest.raises(QueryNotFound, match="did you mean making") as e:
        resolve_query(tok, "makng")
    assert "Transformer" in e.value.candidates
    with pytest.raises(QueryNotFound, match="the words are: The, Transformer, is, making"):
        resolve_query(tok, "zebra")


def test_no_query_or_two_queries_is_a_usage_error(tok):
    with pytest.raises(InputError, match="no query given"):
        resolve_query(tok)
    with pytest.raises(InputError, match="both"):
        resolve_query(tok, "making", 3)
