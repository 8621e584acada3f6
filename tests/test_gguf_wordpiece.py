"""A GGUF file's WordPiece vocabulary (llama.cpp's `bert` tokenizer model, as nomic-bert files
store it) rebuilt as BERT's uncased tokenizer; the real file is checked in tests/test_nomic_real.py."""

from __future__ import annotations

import numpy as np
import pytest

from attn_cli.errors import ModelError
from attn_cli.loading.gguf_tokenizer import build_tokenizer, unphantom

# As llama.cpp writes them: a word's first piece with "▁", a continuation without "##".
TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "▁the", "▁cat", "▁sat", "s", "▁un", "believ", "able", "▁.", "▁,", "▁naive"]
METADATA = {
    "tokenizer.ggml.model": "bert",
    "tokenizer.ggml.tokens": TOKENS,
    "tokenizer.ggml.token_type": np.array([3, 3, 3, 3, 3] + [1] * (len(TOKENS) - 5), dtype=np.int32),
    "tokenizer.ggml.unknown_token_id": 1,
    "tokenizer.ggml.bos_token_id": 2,
    "tokenizer.ggml.seperator_token_id": 3,  # llama.cpp's spelling
}


def test_phantom_spaces_are_spelled_back_as_bert_vocab_txt():
    assert [unphantom(t) for t in ("▁the", "s", "[CLS]", "▁.", "[unused0]")] == ["the", "##s", "[CLS]", ".", "[unused0]"]


def test_text_is_lowercased_stripped_of_accents_split_into_pieces_between_cls_and_sep():
    tokenizer = build_tokenizer(METADATA, "nomic-bert")
    encoding = tokenizer.encode("The CATS sat, Naïve unbelievable. [MASK] dog")
    assert encoding.tokens == ["[CLS]", "the", "cat", "##s", "sat", ",", "naive", "un", "##believ", "##able", ".", "[MASK]", "[UNK]", "[SEP]"]
    assert encoding.ids == [2, 5, 6, 8, 7, 13, 14, 9, 10, 11, 12, 4, 1, 3]
    assert tokenizer.decode(encoding.ids) == "the cats sat, naive unbelievable."


@pytest.mark.parametrize("key", ["unknown_token_id", "bos_token_id", "seperator_token_id"])
def test_a_vocabulary_without_its_special_tokens_is_a_model_error(key):
    metadata = {k: v for k, v in METADATA.items() if k != f"tokenizer.ggml.{key}"}
    with pytest.raises(ModelError, match=f"tokenizer.ggml.{key}"):
        build_tokenizer(metadata, "nomic-bert", "x.gguf")
