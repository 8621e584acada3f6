"""The WordPiece tokenizer built from vocab.txt (loading/tokenizer_vocab.py) is the tokenizer
read from tokenizer.json: the same serialised state, the same ids, offsets, words and special
marks on every text; and it is used only once that was proved for exactly these files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

import attn_cli.loading.tokenizer as tokenizer_module
from attn_cli.loading import tokenizer_vocab
from attn_cli.loading.model import bundled_model_path
from attn_cli.loading.tokenizer import load_tokenizer

TINY_BERT = Path(__file__).parent / "fixtures" / "tiny" / "bert"

TEXTS = [
    "The Transformer is making it possible to understand language.",
    "Ein naïver Café-Besuch in Zürich, São Paulo, Ærøskøbing; Ελληνικά και Русский.",
    "e\u0301 a\u0300 n\u0303: combining marks, and precomposed é à ñ; ÉCOLE, İstanbul, ß, ﬁ ligature",
    "日本語の文章と中文句子，还有한국어 문장。ＦＵＬＬＷＩＤＴＨ ｶﾀｶﾅ",
    "control\x00chars\x07bell\x1bescape\x7fdel\x0bvt\x0cff and \r\n\t whitespace\u00a0nbsp\u2003em\u200bzw\ufeffbom",
    "a" * 101 + " " + "b" * 100 + " " + "antidisestablishmentarianism" * 5,
    "unknown: 🙂🚀 ⌘ ∰ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ᚠᛇᚻ ꙮ \U0010fffd \ue000 private use",
    "typed specials: [CLS] [SEP] [MASK] [PAD] [UNK] [cls] [ MASK ] x[MASK]y",
    "numbers 3.14159, 1,000,000 and $5.00 — dashes – en — em … ellipsis «quotes» “curly” 'single'",
    "עברית וערבית: مرحبا بالعالم، ‏RTL‏ marks ‮override‬",
    "   leading and trailing spaces   ",
    "x",
    "don't can't won't y'all rock'n'roll e-mail U.S.A. @user #tag https://example.com/a?b=c&d=e",
]


def facts(tokenizer: Tokenizer, text: str, special: bool = True) -> tuple:
    e = tokenizer.encode(text, add_special_tokens=special)
    return e.ids, e.offsets, e.tokens, e.word_ids, e.type_ids, e.special_tokens_mask, e.attention_mask


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("ATTN_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _folder(tmp_path: Path, source: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    for name in ("tokenizer.json", "vocab.txt"):
        if (source / name).is_file():
            shutil.copy(source / name, folder / name)
    return folder


@pytest.fixture
def minilm(tmp_path) -> Path:
    return _folder(tmp_path, bundled_model_path()) / "tokenizer.json"


def _records(cache: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((cache / "tokenizers").glob("wordpiece-*.json"))]


def _reading_json_fails(monkeypatch) -> None:
    class NoJson:
        @staticmethod
        def from_file(path):
            raise AssertionError("tokenizer.json was parsed")

    monkeypatch.setattr(tokenizer_module, "Tokenizer", NoJson)


def _from_json(path: Path) -> Tokenizer:
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def test_the_bundled_tokenizer_is_proved_once_then_built_from_vocab_txt(minilm, cache, monkeypatch):
    first = load_tokenizer(minilm)
    [record] = _records(cache)
    assert record["stamp"] == tokenizer_vocab.stamp(minilm) and record["skeleton"] is not None
    assert len(record["skeleton"]) < 5000  # the skeleton holds no vocabulary
    _reading_json_fails(monkeypatch)
    second = load_tokenizer(minilm)
    assert json.loads(second.to_str()) == json.loads(first.to_str()) == json.loads(_from_json(minilm).to_str())
    assert second.get_vocab_size() == 30522 and second.token_to_id("[MASK]") == 103 and second.token_to_id("##er") == 2121


@pytest.mark.parametrize("special", [True, False])
def test_every_text_tokenizes_identically(minilm, cache, special):
    load_tokenizer(minilm)
    fast, slow = load_tokenizer(minilm), _from_json(minilm)
    assert fast is not None and _records(cache)[0]["skeleton"] is not None
    for text in TEXTS:
        assert facts(fast, text, special) == facts(slow, text, special), text
    unknown = facts(fast, TEXTS[5])[2]  # words over max_input_chars_per_word (100) are one [UNK] each
    assert unknown.count("[UNK]") == 2 and unknown[2:4] == ["bb", "##bb"]
    assert "[UNK]" in facts(fast, TEXTS[6])[2] and facts(fast, TEXTS[7])[0].count(103) == 2  # "[MASK]" and "x[MASK]y", not "[ MASK ]"


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    folder = _folder(tmp_path_factory.mktemp("pair"), bundled_model_path())
    slow = _from_json(folder / "tokenizer.json")
    skeleton = tokenizer_vocab._skeleton(json.loads(slow.to_str()))
    return tokenizer_vocab._build(skeleton, folder / "vocab.txt"), slow


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(min_size=1, max_size=80) | st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=300))
def test_random_unicode_tokenizes_identically(pair, text):
    fast, slow = pair
    assert facts(fast, text) == facts(slow, text)


def test_a_vocab_txt_that_differs_from_the_json_is_refused(minilm, cache, monkeypatch):
    vocab = minilm.with_name("vocab.txt")
    lines = vocab.read_text(encoding="utf-8").split("\n")
    lines[2000], lines[2001] = lines[2001], lines[2000]  # same size, two pieces swapped
    vocab.write_text("\n".join(lines), encoding="utf-8")
    tokenizer = load_tokenizer(minilm)
    assert _records(cache)[0]["skeleton"] is None
    assert load_tokenizer(minilm).token_to_id(lines[2000]) == _from_json(minilm).token_to_id(lines[2000]) == 2001
    assert json.loads(tokenizer.to_str()) == json.loads(_from_json(minilm).to_str())


def test_a_changed_byte_needs_a_new_proof(minilm, cache, monkeypatch):
    load_tokenizer(minilm)
    vocab = minilm.with_name("vocab.txt")
    data = vocab.read_bytes()
    vocab.write_bytes(data.replace(b"\nthe\n", b"\nthf\n", 1))  # same size, one byte changed
    assert tokenizer_vocab.cached(minilm, tokenizer_vocab.stamp(minilm)) is None
    tokenizer = load_tokenizer(minilm)
    assert [r["skeleton"] is None for r in _records(cache)].count(True) == 1
    assert tokenizer.token_to_id("the") == _from_json(minilm).token_to_id("the")


def test_a_damaged_record_is_never_trusted(minilm, cache):
    load_tokenizer(minilm)
    [path] = (cache / "tokenizers").glob("wordpiece-*.json")
    path.write_text('{"stamp": ' + json.dumps(tokenizer_vocab.stamp(minilm)) + ', "skeleton": "{not json"}')
    assert facts(load_tokenizer(minilm), TEXTS[0]) == facts(_from_json(minilm), TEXTS[0])


def test_an_unwritable_cache_reads_the_json_every_time(minilm, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("ATTN_CACHE", str(blocker))
    assert facts(load_tokenizer(minilm), TEXTS[1]) == facts(_from_json(minilm), TEXTS[1])
    assert blocker.read_text() == ""


def test_only_wordpiece_with_a_vocab_txt_is_tried(tmp_path, cache):
    gpt2 = _folder(tmp_path, TINY_BERT.parent / "gpt2") / "tokenizer.json"
    assert tokenizer_vocab.stamp(gpt2) is None  # no vocab.txt: nothing tried, nothing cached
    gpt2.with_name("vocab.txt").write_text("[UNK]\nthe\n", encoding="utf-8")
    load_tokenizer(gpt2)
    assert [r["skeleton"] for r in _records(cache)] == [None]  # BPE: refused


@pytest.mark.parametrize("normalizer", [{}, {"strip_accents": True}, {"lowercase": False}, {"handle_chinese_chars": False, "clean_text": False}])
def test_other_bert_settings_are_carried_over(tmp_path, cache, normalizer):
    """The skeleton carries the file's own settings: a tokenizer.json that strips accents or
    keeps case is rebuilt that way (and its vocab.txt written in id order)."""
    folder = _folder(tmp_path, TINY_BERT)
    state = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    state["normalizer"] |= normalizer
    (folder / "tokenizer.json").write_text(json.dumps(state), encoding="utf-8")
    vocab = state["model"]["vocab"]
    (folder / "vocab.txt").write_text("".join(p + "\n" for p in sorted(vocab, key=vocab.get)), encoding="utf-8")
    path = folder / "tokenizer.json"
    load_tokenizer(path)
    assert _records(cache)[0]["skeleton"] is not None
    fast, slow = load_tokenizer(path), _from_json(path)
    assert json.loads(fast.to_str())["normalizer"] == state["normalizer"]
    for text in TEXTS:
        assert facts(fast, text) == facts(slow, text), text
