"""The tokenizers of the tiny reference models, trained here with the `tokenizers` library
(no sentencepiece, no protobuf), deterministically: one per family of real tokenizers."""

from __future__ import annotations

import json
from collections.abc import Callable

from tokenizers import (
    AddedToken,
    Regex,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)

# The tokenizers are trained on these sentences only.
TRAIN_SENTENCES = [
    "The cat sat on the mat.",
    "The quick brown fox jumps over the lazy dog.",
    "Every head looks at the other tokens in the layer.",
    "The dog looks at the cat, and the cat looks at the dog.",
    "Why does attention split numbers like 1887 into pieces?",
    "The model reads every token and every head looks at every token.",
    "A lazy cat sat on the mat in the sun.",
    "The quick fox and the lazy dog sat on the old mat.",
    "Attention lets each token look at the other tokens.",
    "Small models are quick to test and easy to run.",
    "Keys and queries meet in a dot product, then a softmax.",
    "Why does the dog chase its own tail around the park?",
]


BYTE_LEVEL_VOCAB = 400  # 256 byte symbols + ~140 merges (+ specials)
LLAMA_VOCAB = 400  # 3 specials + 256 byte-fallback tokens + ~140 learned pieces


def _template(tok: Tokenizer, single: str, pair: str, names: list[str]) -> processors.TemplateProcessing:
    return processors.TemplateProcessing(
        single=single, pair=pair, special_tokens=[(n, tok.token_to_id(n)) for n in names]
    )


def train_wordpiece() -> Tokenizer:
    """BERT-style: lowercasing BertNormalizer, WordPiece, [CLS] $A [SEP]."""
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
    )
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    # tokenizers' WordPiece/BPE trainers give the "##x" symbols ids in hash-map
    # order, which changes merge tie-breaks from run to run. Seeding them (sorted)
    # before training makes the result deterministic; the vocabulary is then put
    # into a fresh WordPiece model so that they are ordinary (not special) tokens.
    chars = sorted(
        {c for s in TRAIN_SENTENCES for w, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(s)) for c in w}
    )
    trainee = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    trainee.normalizer = normalizer
    trainee.pre_tokenizer = pre_tokenizer
    trainer = trainers.WordPieceTrainer(
        vocab_size=300,
        min_frequency=1,
        special_tokens=specials + [f"##{c}" for c in chars],
        continuing_subword_prefix="##",
        show_progress=False,
    )
    trainee.train_from_iterator(TRAIN_SENTENCES, trainer)

    tok = Tokenizer(models.WordPiece(vocab=trainee.get_vocab(), unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    tok.post_processor = _template(tok, "[CLS] $A [SEP]", "[CLS] $A [SEP] $B:1 [SEP]:1", ["[CLS]", "[SEP]"])
    tok.decoder = decoders.WordPiece(prefix="##")
    return tok


def _train_byte_level(vocab_size: int, special_tokens: list[str], pre_tokenizer) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(TRAIN_SENTENCES, trainer)
    return tok


def train_roberta_bpe() -> Tokenizer:
    """RoBERTa-style: byte-level BPE, <s>=0 <pad>=1 </s>=2 <unk>=3 <mask>=4, <s> $A </s>."""
    tok = _train_byte_level(
        BYTE_LEVEL_VOCAB,
        ["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    )
    tok.post_processor = _template(tok, "<s> $A </s>", "<s> $A </s> </s> $B </s>", ["<s>", "</s>"])
    return tok


def train_gpt2_bpe() -> Tokenizer:
    """GPT-2-style: byte-level BPE, no special tokens added; <|endoftext|> is the last id."""
    tok = _train_byte_level(BYTE_LEVEL_VOCAB, [], pre_tokenizers.ByteLevel(add_prefix_space=False))
    tok.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=False)])
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


QWEN_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def train_qwen_bpe() -> Tokenizer:
    """Qwen2-style: NFC, regex split + byte-level BPE, no BOS/EOS added; specials at the end."""
    pre = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(pattern=Regex(QWEN_SPLIT), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok = _train_byte_level(BYTE_LEVEL_VOCAB, [], pre)
    tok.normalizer = normalizers.NFC()
    tok.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t in ("<|endoftext|>", "<|im_start|>", "<|im_end|>")]
    )
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def train_llama_bpe() -> Tokenizer:
    """Llama-2/Mistral-style (converted SentencePiece BPE): <unk>=0 <s>=1 </s>=2, then the
    256 byte-fallback tokens <0x00>..<0xFF>, then the learned pieces; "▁" marks spaces
    (normalizer: prepend "▁", replace " " by "▁"; no pre-tokenizer); template "<s> $A"."""
    # Train with a Metaspace pre-tokenizer so that no merge crosses a word boundary
    # (SentencePiece's split_by_whitespace), then rebuild the final BPE model.
    trainee = Tokenizer(models.BPE(unk_token="<unk>"))
    trainee.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    trainer = trainers.BpeTrainer(vocab_size=LLAMA_VOCAB - 256, min_frequency=1, special_tokens=[], show_progress=False)
    trainee.train_from_iterator(TRAIN_SENTENCES, trainer)
    learned = json.loads(trainee.to_str())["model"]
    pieces = sorted(learned["vocab"], key=learned["vocab"].__getitem__)

    vocab: dict[str, int] = {}
    for t in ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + pieces:
        vocab.setdefault(t, len(vocab))
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in learned["merges"]]

    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.pre_tokenizer = None
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in ("<unk>", "<s>", "</s>")])
    tok.post_processor = _template(tok, "<s> $A", "<s> $A <s> $B", ["<s>"])
    return tok


TOKENIZER_BUILDERS: dict[str, Callable[[], Tokenizer]] = {
    "wordpiece": train_wordpiece,
    "roberta-bpe": train_roberta_bpe,
    "gpt2-bpe": train_gpt2_bpe,
    "llama-bpe": train_llama_bpe,
    "qwen-bpe": train_qwen_bpe,
}
