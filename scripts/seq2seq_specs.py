"""The tiny encoder–decoder reference models (T5, BART, Marian): their tokenizers and configs.

A second file beside tiny_specs.py (the encoder-only and decoder-only models): these have a
source and a target, two tokenizer layouts of their own (SentencePiece-style Unigram for T5
and Marian, RoBERTa's byte-level BPE for BART) and configs read by make_seq2seq_fixtures.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import transformers
from tiny_shape import HEADS, HIDDEN, INTERMEDIATE, LAYERS, MAX_POSITIONS, ids_of
from tiny_tokenizers import TRAIN_SENTENCES, _template, train_roberta_bpe
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

UNIGRAM_VOCAB = 300


def _train_unigram(specials: list[str], unk: str, last: list[str] = ()) -> Tokenizer:
    """SentencePiece-style (as transformers converts T5's and Marian's spm files): NFKC, split on
    whitespace, "▁" marks a word's start, Unigram pieces; `specials` first, `last` at the end."""
    pre = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")])
    trainee = Tokenizer(models.Unigram())
    trainee.normalizer = normalizers.NFKC()
    trainee.pre_tokenizer = pre
    trainer = trainers.UnigramTrainer(vocab_size=UNIGRAM_VOCAB, special_tokens=specials, unk_token=unk, show_progress=False)
    trainee.train_from_iterator(TRAIN_SENTENCES, trainer)
    learned = json.loads(trainee.to_str())["model"]
    # The trainer's scores vary from run to run in their last digits (its threads sum in any
    # order), and pieces seen equally often get scores a hair apart in any order: rounded to
    # three decimals and sorted (specials first), the file is the same every time.
    pieces = sorted(((p, round(s, 3)) for p, s in learned["vocab"] if p not in specials and p not in last), key=lambda ps: (-ps[1], ps[0]))
    vocab = [(p, 0.0) for p in specials] + pieces + [(p, 0.0) for p in last]
    tok = Tokenizer(models.Unigram(vocab, unk_id=[p for p, _ in vocab].index(unk), byte_fallback=False))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials + list(last)])
    return tok


def train_t5_unigram() -> Tokenizer:
    """T5-style: <pad>=0 </s>=1 <unk>=2, Unigram, "$A </s>" (labels too)."""
    tok = _train_unigram(["<pad>", "</s>", "<unk>"], "<unk>")
    tok.post_processor = _template(tok, "$A </s>", "$A </s> $B </s>", ["</s>"])
    return tok


def train_marian_unigram() -> Tokenizer:
    """Marian-style (Opus-MT): </s>=0 <unk>=1, Unigram, <pad> the last id, "$A </s>"."""
    tok = _train_unigram(["</s>", "<unk>"], "<unk>", last=["<pad>"])
    tok.post_processor = _template(tok, "$A </s>", "$A </s> $B </s>", ["</s>"])
    return tok


SEQ2SEQ_TOKENIZERS: dict[str, Callable[[], Tokenizer]] = {
    "t5-unigram": train_t5_unigram,
    "bart-bpe": train_roberta_bpe,  # BART's is RoBERTa's: byte-level BPE, "<s> $A </s>"
    "marian-unigram": train_marian_unigram,
}


def config_t5(tok: Tokenizer):
    pad, eos = ids_of(tok, "<pad>", "</s>")
    # Flan-T5's layout (gated-GELU, untied head: no rescaling of the decoder's output), with
    # fewer buckets and a shorter max distance than T5's 32/128, so that the test texts reach
    # the logarithmic buckets and the last one; a decoder deeper than the encoder.
    return transformers.T5Config(
        vocab_size=tok.get_vocab_size(), d_model=HIDDEN, d_kv=HIDDEN // HEADS, d_ff=INTERMEDIATE, num_layers=LAYERS,
        num_decoder_layers=LAYERS + 1, num_heads=HEADS, relative_attention_num_buckets=8, relative_attention_max_distance=12,
        feed_forward_proj="gated-gelu", layer_norm_epsilon=1e-6, tie_word_embeddings=False,
        pad_token_id=pad, eos_token_id=eos, decoder_start_token_id=pad,
    )


def _bart_common(tok: Tokenizer, pad: int, eos: int) -> dict:
    return dict(
        vocab_size=tok.get_vocab_size(), d_model=HIDDEN, encoder_layers=LAYERS, decoder_layers=LAYERS, encoder_attention_heads=HEADS,
        decoder_attention_heads=HEADS, encoder_ffn_dim=INTERMEDIATE, decoder_ffn_dim=INTERMEDIATE, max_position_embeddings=MAX_POSITIONS,
        scale_embedding=True, pad_token_id=pad, eos_token_id=eos, forced_eos_token_id=None,
    )


def config_bart(tok: Tokenizer):
    bos, pad, eos = ids_of(tok, "<s>", "<pad>", "</s>")
    return transformers.BartConfig(
        **_bart_common(tok, pad, eos), activation_function="gelu", bos_token_id=bos, decoder_start_token_id=eos, forced_bos_token_id=None,
    )


def config_marian(tok: Tokenizer):
    pad, eos = ids_of(tok, "<pad>", "</s>")
    return transformers.MarianConfig(
        **_bart_common(tok, pad, eos), activation_function="swish", decoder_start_token_id=pad, share_encoder_decoder_embeddings=True,
    )


@dataclass
class Seq2SeqSpec:
    name: str
    tokenizer: str
    make_config: Callable[[Tokenizer], transformers.PretrainedConfig]
    model_class: str  # *ForConditionalGeneration: saved and run for the references


SEQ2SEQ_SPECS = [
    Seq2SeqSpec("t5", "t5-unigram", config_t5, "T5ForConditionalGeneration"),
    Seq2SeqSpec("bart", "bart-bpe", config_bart, "BartForConditionalGeneration"),
    Seq2SeqSpec("marian", "marian-unigram", config_marian, "MarianMTModel"),
]

# (source, target) pairs: short, medium, and long enough to reach the far position buckets.
PAIRS = [
    ("The cat sat on the mat.", "A lazy cat sat."),
    ("Every head looks at the other tokens.", "The dog looks at the cat, and the cat looks at the dog."),
    (
        "The quick brown fox jumps over the lazy dog. Why does attention split numbers like 1887 into pieces?",
        "Small models are quick to test and easy to run.",
    ),
]
