"""Generate tiny random-weight Hugging Face models and transformers reference tensors for attn.

attn's NumPy forward pass must match ``transformers`` to max |delta attention| <= 1e-5
for every architecture it supports. Real checkpoints are far too big to ship, so
this script builds one tiny model per architecture (2 layers, 4 heads, hidden 64,
intermediate 96, vocab ~200-400, random weights with a fixed seed), saves it in
the ordinary Hugging Face folder layout and records what ``transformers``
(eager attention, float32, CPU, base model class) computes for a few inputs.

It needs torch, transformers and tokenizers, which live in the throwaway
reference virtualenv (never in the project's .venv). To regenerate, from the
repository root::

    bash scripts/refenv.sh                             # creates .refenv/ (pip, CPU torch)
    .refenv/bin/python scripts/make_tiny_models.py     # rewrites tests/fixtures/tiny/<name>/

Options: ``--out DIR`` (default ``tests/fixtures/tiny``), ``--only NAME ...`` to
rebuild some models only. No extra packages are needed (no sentencepiece, no
protobuf): the tokenizers are trained here with the ``tokenizers`` library.

The output is deterministic: fixed seeds, deterministic tokenizer training, and
the ``.npz`` files are written with fixed zip timestamps, so re-running with the
same torch/transformers versions gives byte-identical files. Each model folder is
deleted and rewritten; ``tests/fixtures/tiny/README.md`` is left alone (it is
hand-written: update it if you change anything here).

Models (folder name -> what it exercises):

- ``bert``: BertModel. Post-LN encoder, learned absolute positions from 0,
  token-type embeddings, exact (erf) GELU, LayerNorm eps 1e-12, biases
  everywhere, no mask. Saved keys have no prefix (``embeddings.word_embeddings.weight``).
- ``bert-prefixed``: the same weights saved through BertForMaskedLM, so every
  encoder key starts with ``bert.`` and extra ``cls.predictions.*`` head keys
  exist (no pooler). References equal ``bert``'s.
- ``roberta``: RobertaModel. Like BERT but position ids start at
  ``padding_idx + 1`` (= 2), type_vocab_size 1, LayerNorm eps 1e-5,
  byte-level BPE with ``<s> ... </s>``.
- ``distilbert``: DistilBertModel. Own weight names (``q_lin``, ``sa_layer_norm``,
  ``ffn.lin1`` ...), no token types, no pooler, LayerNorm eps hard-coded 1e-12.
- ``gpt2``: GPT2Model. Conv1D weights stored (in, out), fused ``c_attn``
  (q|k|v along the output axis), pre-LN, causal, ``gelu_new``, learned
  positions, final ``ln_f``.
- ``gpt2-sharded``: the same weights saved with a small ``max_shard_size``
  (several ``model-0000i-of-0000n.safetensors`` + ``model.safetensors.index.json``).
- ``llama``: LlamaModel. RMSNorm (eps 1e-5), RoPE with rope_theta 50000,
  GQA (4 query heads, 2 kv heads), SwiGLU MLP, no biases, causal,
  Llama-2-style tokenizer (BOS ``<s>``, byte fallback).
- ``llama-bf16``: the ``llama`` weights saved in bfloat16; references are that
  bf16 folder loaded with ``dtype=torch.float32`` (so they differ slightly from ``llama``).
- ``llama3rope``: LlamaModel with ``rope_type`` llama3 (factor 8,
  low/high_freq_factor 1/4, original_max_position_embeddings 32) and an explicit
  ``head_dim`` 32 != hidden/heads (q_proj is 64 -> 128).
- ``mistral``: MistralModel with ``sliding_window`` 4 (each query sees itself
  and the 3 previous tokens), GQA 2, rope_theta 10000.
- ``qwen2``: Qwen2Model. Biases on q/k/v (not on o_proj or the MLP), rope_theta
  1e6, ``use_sliding_window`` False, GQA 2, byte-level BPE without BOS. Saved
  through Qwen2ForCausalLM with tied embeddings (like Qwen2-0.5B), so its keys
  start with ``model.`` and there is no ``lm_head.weight``; references still
  come from Qwen2Model.
- ``qwen3``: Qwen3Model. Per-head RMSNorm on q and k (``q_norm``/``k_norm``,
  weight of size head_dim) applied before RoPE, explicit ``head_dim`` 24,
  no biases, GQA 2.

Every parameter is redrawn after ``__init__`` (matrices and embeddings ~ N(0, s),
biases ~ N(0, 0.1), norm weights ~ U(0.7, 1.3)) so that no bias is zero and no
norm is the identity.

Each ``<name>/`` folder holds ``config.json``, ``model.safetensors`` (or shards +
index), ``tokenizer.json`` and ``ref_<i>.npz`` (``np.load``-able without pickle)
for the inputs in ``INPUTS``:

- ``text``: str; ``input_ids``: int64 (seq,), from ``tokenizers.Tokenizer.from_file``
  + ``encode(text, add_special_tokens=True)``; ``position_ids``: int64 (seq,);
  ``token_type_ids``: int64 (seq,) for bert/roberta only
- ``attentions``: float32 (layers, heads, seq, seq), softmax weights (output_attentions)
- ``q``: float32 (layers, heads, seq, head_dim), ``k``/``v``: float32
  (layers, kv_heads, seq, head_dim): exactly the tensors that enter Q.K^T and
  weights.V in ``eager_attention_forward`` (after q/k norm and RoPE, before repeat_kv)
- ``q_pre_rope``/``k_pre_rope`` (RoPE models only): the same before RoPE (after
  q_norm/k_norm for qwen3)
- ``scaling``: float32 scalar used on Q.K^T; ``last_hidden_state``: float32 (seq, hidden)
- ``versions``: str, e.g. "torch=2.13.0 transformers=5.23.0"
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import shutil
import sys
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import transformers
from safetensors import safe_open
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

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "tests" / "fixtures" / "tiny"

SEED = 20240611

# Shared shape of every tiny model.
HIDDEN = 64
LAYERS = 2
HEADS = 4
KV_HEADS = 2  # Llama-family models (llama, llama3rope, mistral, qwen2, qwen3)
INTERMEDIATE = 96  # keeps tests/fixtures/tiny/ under ~6 MB
MAX_POSITIONS = 128

# Redraw scales (see redraw_parameters). Chosen so that attention rows are
# neither uniform nor one-hot (the script prints the typical row maximum).
EMBED_STD = 0.5
MATRIX_STD = 0.2
BIAS_STD = 0.1
NORM_LOW, NORM_HIGH = 0.7, 1.3

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

# Inputs for the reference tensors: short (~5 tokens), medium, long (>= 20 tokens).
# "naïve" has a character that is not in the training sentences (byte fallback
# for the Llama-style tokenizer, accent stripping for WordPiece, raw bytes for
# byte-level BPE).
INPUTS = [
    "The cat sat.",
    "Every head looks at the other tokens.",
    "The quick brown fox looks at the lazy dog. Why does naïve attention split 1887 into pieces?",
]


def versions_string() -> str:
    return f"torch={torch.__version__.split('+')[0]} transformers={transformers.__version__}"


# --------------------------------------------------------------------------- tokenizers


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


# --------------------------------------------------------------------------- models


def _ids(tok: Tokenizer, *names: str) -> list[int]:
    out = [tok.token_to_id(n) for n in names]
    assert None not in out, (names, out)
    return out


def _llama_family_common(tok: Tokenizer) -> dict:
    return dict(
        vocab_size=tok.get_vocab_size(),
        hidden_size=HIDDEN,
        intermediate_size=INTERMEDIATE,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS,
        hidden_act="silu",
        tie_word_embeddings=False,
    )


def config_bert(tok: Tokenizer):
    (pad,) = _ids(tok, "[PAD]")
    return transformers.BertConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=INTERMEDIATE,
        hidden_act="gelu",
        max_position_embeddings=MAX_POSITIONS,
        type_vocab_size=2,
        layer_norm_eps=1e-12,
        pad_token_id=pad,
    )


def config_roberta(tok: Tokenizer):
    bos, pad, eos = _ids(tok, "<s>", "<pad>", "</s>")
    return transformers.RobertaConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=INTERMEDIATE,
        hidden_act="gelu",
        # positions pad+1 .. : 128 usable positions, like roberta-base's 514 = 512 + 2
        max_position_embeddings=MAX_POSITIONS + pad + 1,
        type_vocab_size=1,
        layer_norm_eps=1e-5,
        pad_token_id=pad,
        bos_token_id=bos,
        eos_token_id=eos,
    )


def config_distilbert(tok: Tokenizer):
    (pad,) = _ids(tok, "[PAD]")
    return transformers.DistilBertConfig(
        vocab_size=tok.get_vocab_size(),
        dim=HIDDEN,
        n_layers=LAYERS,
        n_heads=HEADS,
        hidden_dim=INTERMEDIATE,
        activation="gelu",
        max_position_embeddings=MAX_POSITIONS,
        sinusoidal_pos_embds=False,
        pad_token_id=pad,
    )


def config_gpt2(tok: Tokenizer):
    (eot,) = _ids(tok, "<|endoftext|>")
    return transformers.GPT2Config(
        vocab_size=tok.get_vocab_size(),
        n_positions=MAX_POSITIONS,
        n_embd=HIDDEN,
        n_layer=LAYERS,
        n_head=HEADS,
        n_inner=INTERMEDIATE,
        activation_function="gelu_new",
        layer_norm_epsilon=1e-5,
        bos_token_id=eot,
        eos_token_id=eot,
    )


def config_llama(tok: Tokenizer):
    bos, eos = _ids(tok, "<s>", "</s>")
    return transformers.LlamaConfig(
        **_llama_family_common(tok),
        max_position_embeddings=MAX_POSITIONS,
        rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 50000.0},
        attention_bias=False,
        mlp_bias=False,
        bos_token_id=bos,
        eos_token_id=eos,
    )


def config_llama3rope(tok: Tokenizer):
    bos, eos = _ids(tok, "<s>", "</s>")
    return transformers.LlamaConfig(
        **_llama_family_common(tok),
        head_dim=32,
        max_position_embeddings=256,
        rms_norm_eps=1e-5,
        rope_parameters={
            "rope_type": "llama3",
            "rope_theta": 50000.0,
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 32,
        },
        attention_bias=False,
        mlp_bias=False,
        bos_token_id=bos,
        eos_token_id=eos,
    )


def config_mistral(tok: Tokenizer):
    bos, eos = _ids(tok, "<s>", "</s>")
    return transformers.MistralConfig(
        **_llama_family_common(tok),
        max_position_embeddings=MAX_POSITIONS,
        rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        sliding_window=4,
        bos_token_id=bos,
        eos_token_id=eos,
    )


def config_qwen2(tok: Tokenizer):
    (eot,) = _ids(tok, "<|endoftext|>")
    # Saved through Qwen2ForCausalLM with tied embeddings, like Qwen2-0.5B: keys are
    # "model.*" and the tied lm_head.weight is not stored.
    return transformers.Qwen2Config(
        **{**_llama_family_common(tok), "tie_word_embeddings": True},
        max_position_embeddings=MAX_POSITIONS,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
        use_sliding_window=False,
        bos_token_id=eot,
        eos_token_id=eot,
    )


def config_qwen3(tok: Tokenizer):
    (eot,) = _ids(tok, "<|endoftext|>")
    return transformers.Qwen3Config(
        **_llama_family_common(tok),
        head_dim=24,
        max_position_embeddings=MAX_POSITIONS,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
        attention_bias=False,
        use_sliding_window=False,
        bos_token_id=eot,
        eos_token_id=eot,
    )


@dataclass
class Spec:
    name: str
    tokenizer: str
    make_config: Callable[[Tokenizer], transformers.PretrainedConfig]
    model_class: str  # base model class used for the references
    module: str  # transformers.models.<module>.modeling_<module>
    # Variants re-save the weights of `source` differently instead of drawing new ones.
    source: str | None = None
    save_class: str | None = None  # class used to save, if not model_class
    save_dtype: torch.dtype = torch.float32
    max_shard_size: str | None = None
    rope: bool = False
    causal: bool = False
    sliding_window: int | None = None
    token_types: bool = False
    position_offset: int = 0  # position_ids = arange(seq) + position_offset


SPECS: list[Spec] = [
    Spec("bert", "wordpiece", config_bert, "BertModel", "bert", token_types=True),
    Spec(
        "bert-prefixed", "wordpiece", config_bert, "BertModel", "bert",
        source="bert", save_class="BertForMaskedLM", token_types=True,
    ),
    Spec("roberta", "roberta-bpe", config_roberta, "RobertaModel", "roberta", token_types=True, position_offset=2),
    Spec("distilbert", "wordpiece", config_distilbert, "DistilBertModel", "distilbert"),
    Spec("gpt2", "gpt2-bpe", config_gpt2, "GPT2Model", "gpt2", causal=True),
    Spec("gpt2-sharded", "gpt2-bpe", config_gpt2, "GPT2Model", "gpt2", source="gpt2", max_shard_size="150KB", causal=True),
    Spec("llama", "llama-bpe", config_llama, "LlamaModel", "llama", rope=True, causal=True),
    Spec(
        "llama-bf16", "llama-bpe", config_llama, "LlamaModel", "llama",
        source="llama", save_dtype=torch.bfloat16, rope=True, causal=True,
    ),
    Spec("llama3rope", "llama-bpe", config_llama3rope, "LlamaModel", "llama", rope=True, causal=True),
    Spec("mistral", "llama-bpe", config_mistral, "MistralModel", "mistral", rope=True, causal=True, sliding_window=4),
    Spec("qwen2", "qwen-bpe", config_qwen2, "Qwen2Model", "qwen2", save_class="Qwen2ForCausalLM", rope=True, causal=True),
    Spec("qwen3", "qwen-bpe", config_qwen3, "Qwen3Model", "qwen3", rope=True, causal=True),
]


def _is_norm_weight(name: str, p: torch.Tensor) -> bool:
    return p.ndim == 1 and name.endswith("weight")


@torch.no_grad()
def redraw_parameters(model: torch.nn.Module, seed: int) -> None:
    """Replace every parameter with fresh random values (deterministic in `seed`)."""
    gen = torch.Generator().manual_seed(seed)
    seen = 0
    for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        shape = tuple(p.shape)
        if name.endswith("bias"):
            new = torch.randn(shape, generator=gen) * BIAS_STD
        elif _is_norm_weight(name, p):
            new = NORM_LOW + (NORM_HIGH - NORM_LOW) * torch.rand(shape, generator=gen)
        elif p.ndim == 2 and ("embed" in name or name.startswith(("wte", "wpe"))):
            new = torch.randn(shape, generator=gen) * EMBED_STD
        elif p.ndim == 2:
            new = torch.randn(shape, generator=gen) * MATRIX_STD
        else:
            raise AssertionError(f"unexpected parameter {name} {shape}")
        p.copy_(new.to(p.dtype))
        seen += 1
    assert seen == len(list(model.parameters())), "tied or shared parameters were skipped"


def build_model(spec: Spec, tok: Tokenizer, seed: int) -> torch.nn.Module:
    config = spec.make_config(tok)
    cls = getattr(transformers, spec.model_class)
    model = cls._from_config(config, attn_implementation="eager", dtype=torch.float32)
    redraw_parameters(model, seed)
    return model.eval()


def save_model(spec: Spec, model: torch.nn.Module, dest: Path, seed: int) -> None:
    to_save = model
    if spec.save_class is not None:
        cls = getattr(transformers, spec.save_class)
        to_save = cls._from_config(model.config, attn_implementation="eager", dtype=torch.float32)
        redraw_parameters(to_save, seed + 1000)  # head weights (the base model's are loaded below)
        prefix = to_save.base_model_prefix
        missing, unexpected = getattr(to_save, prefix).load_state_dict(model.state_dict(), strict=False)
        assert not missing, missing
        assert all(k.startswith("pooler.") for k in unexpected), unexpected  # BertForMaskedLM has no pooler
    to_save = to_save.to(spec.save_dtype)
    kwargs = {}
    if spec.max_shard_size is not None:
        kwargs["max_shard_size"] = spec.max_shard_size
    # transformers 5 always writes safetensors (the old `safe_serialization` flag is gone).
    to_save.save_pretrained(dest, **kwargs)


def load_reference_model(spec: Spec, dest: Path) -> torch.nn.Module:
    cls = getattr(transformers, spec.model_class)
    kwargs = {}
    if spec.model_class == "BertModel" and spec.save_class is not None:
        kwargs["add_pooling_layer"] = False  # BertForMaskedLM has no pooler
    model = cls.from_pretrained(str(dest), attn_implementation="eager", dtype=torch.float32, **kwargs)
    return model.eval()


# --------------------------------------------------------------------------- capture


@contextlib.contextmanager
def capture(module_name: str) -> Iterator[dict[str, list]]:
    """Wrap the modeling module's `eager_attention_forward` (and `apply_rotary_pos_emb`)
    to record the exact tensors entering Q.K^T, the mask and the scaling."""
    mod = importlib.import_module(f"transformers.models.{module_name}.modeling_{module_name}")
    rec: dict[str, list] = {k: [] for k in ("q", "k", "v", "mask", "scaling", "q_pre_rope", "k_pre_rope")}
    orig_eager = mod.eager_attention_forward

    def eager(module, query, key, value, attention_mask, *args, **kwargs):
        scaling = kwargs["scaling"] if "scaling" in kwargs else args[0]
        rec["q"].append(query.detach()[0].clone())
        rec["k"].append(key.detach()[0].clone())
        rec["v"].append(value.detach()[0].clone())
        rec["mask"].append(None if attention_mask is None else attention_mask.detach()[0, 0].clone())
        rec["scaling"].append(scaling)
        return orig_eager(module, query, key, value, attention_mask, *args, **kwargs)

    patches = {"eager_attention_forward": eager}
    if hasattr(mod, "apply_rotary_pos_emb"):
        orig_rope = mod.apply_rotary_pos_emb

        def rope(q, k, cos, sin, *args, **kwargs):
            rec["q_pre_rope"].append(q.detach()[0].clone())
            rec["k_pre_rope"].append(k.detach()[0].clone())
            return orig_rope(q, k, cos, sin, *args, **kwargs)

        patches["apply_rotary_pos_emb"] = rope
    saved = {k: getattr(mod, k) for k in patches}
    try:
        for k, fn in patches.items():
            setattr(mod, k, fn)
        yield rec
    finally:
        for k, fn in saved.items():
            setattr(mod, k, fn)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.to(torch.float32).numpy().copy()


@torch.no_grad()
def run_reference(spec: Spec, model: torch.nn.Module, tok: Tokenizer, text: str) -> tuple[dict, list]:
    enc = tok.encode(text, add_special_tokens=True)
    input_ids = torch.tensor([enc.ids], dtype=torch.long)
    seq = input_ids.shape[1]
    kwargs = dict(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), output_attentions=True)
    if spec.model_class == "BertModel":
        kwargs["token_type_ids"] = torch.tensor([enc.type_ids], dtype=torch.long)
    with capture(spec.module) as rec:
        out = model(**kwargs)
    cfg = model.config
    n_layers = cfg.num_hidden_layers if hasattr(cfg, "num_hidden_layers") else cfg.n_layers
    for key in ("q", "k", "v"):
        assert len(rec[key]) == n_layers, (spec.name, key, len(rec[key]))
    if spec.rope:
        assert len(rec["q_pre_rope"]) == n_layers, (spec.name, len(rec["q_pre_rope"]))
    scalings = set(rec["scaling"])
    assert len(scalings) == 1, scalings

    attentions = torch.stack([a[0] for a in out.attentions])
    arrays = {
        "text": np.array(text),
        "input_ids": np.asarray(enc.ids, dtype=np.int64),
        "position_ids": np.arange(seq, dtype=np.int64) + spec.position_offset,
    }
    if spec.token_types:
        arrays["token_type_ids"] = np.asarray(enc.type_ids, dtype=np.int64)
    arrays.update(
        attentions=_np(attentions),
        q=_np(torch.stack(rec["q"])),
        k=_np(torch.stack(rec["k"])),
        v=_np(torch.stack(rec["v"])),
    )
    if spec.rope:
        arrays["q_pre_rope"] = _np(torch.stack(rec["q_pre_rope"]))
        arrays["k_pre_rope"] = _np(torch.stack(rec["k_pre_rope"]))
    arrays["scaling"] = np.float32(scalings.pop())
    arrays["last_hidden_state"] = _np(out.last_hidden_state[0])
    arrays["versions"] = np.array(versions_string())
    return arrays, rec["mask"]


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Like np.savez_compressed, but with fixed zip timestamps (byte-reproducible)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asanyarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


# --------------------------------------------------------------------------- checks


def allowed_mask(seq: int, causal: bool, window: int | None) -> np.ndarray:
    """[q, kv] True where attention is allowed (transformers 5.23 rule)."""
    q = np.arange(seq)[:, None]
    kv = np.arange(seq)[None, :]
    allowed = np.ones((seq, seq), dtype=bool)
    if causal:
        allowed &= kv <= q
    if window is not None:
        allowed &= kv > q - window
    return allowed


def check_reference(spec: Spec, arrays: dict, masks: list) -> dict[str, float]:
    att = arrays["attentions"].astype(np.float64)
    layers, heads, seq, _ = att.shape
    allowed = allowed_mask(seq, spec.causal, spec.sliding_window)
    for m in masks:
        if m is None:
            assert not spec.causal, spec.name
        else:
            m = m.numpy()
            assert np.array_equal(m == 0, allowed), f"{spec.name}: captured mask differs from the documented rule"
            assert np.all(m[~allowed] == np.finfo(np.float32).min), spec.name
    row_sum_dev = float(np.abs(att.sum(-1) - 1.0).max())
    masked_max = float(np.abs(att[..., ~allowed]).max()) if (~allowed).any() else 0.0

    q = arrays["q"].astype(np.float64)
    k = arrays["k"].astype(np.float64)
    kv_heads = k.shape[1]
    group = heads // kv_heads
    k_rep = np.repeat(k, group, axis=1)  # query head h uses kv head h // group
    scores = np.einsum("lhqd,lhkd->lhqk", q, k_rep) * float(arrays["scaling"])
    scores = np.where(allowed, scores, -np.inf)
    scores -= scores.max(-1, keepdims=True)
    p = np.exp(scores)
    p /= p.sum(-1, keepdims=True)
    softmax_dev = float(np.abs(p - att).max())

    # typical peakiness: row maxima over rows that can see >= 4 keys
    rows = allowed.sum(-1) >= 4
    row_max = att.max(-1)[..., rows]
    return {
        "row_sum_dev": row_sum_dev,
        "masked_max": masked_max,
        "softmax_dev": softmax_dev,
        "row_max_median": float(np.median(row_max)),
        "row_max_p90": float(np.quantile(row_max, 0.9)),
        "rows_gt_0.99": float((row_max > 0.99).mean()),
    }


def safetensors_keys(dest: Path) -> list[str]:
    keys: list[str] = []
    for f in sorted(dest.glob("*.safetensors")):
        with safe_open(str(f), framework="np") as st:
            keys.extend(st.keys())
    return sorted(keys)


def safetensors_dtypes(dest: Path) -> set[str]:
    dtypes: set[str] = set()
    for f in sorted(dest.glob("*.safetensors")):
        raw = f.read_bytes()
        n = int.from_bytes(raw[:8], "little")
        header = json.loads(raw[8 : 8 + n])
        dtypes |= {v["dtype"] for k, v in header.items() if k != "__metadata__"}
    return dtypes


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output dir (default: tests/fixtures/tiny)")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="only (re)build these models")
    args = ap.parse_args(argv)

    names = [s.name for s in SPECS]
    if args.only:
        unknown = set(args.only) - set(names)
        if unknown:
            ap.error(f"unknown model(s) {sorted(unknown)}; choose from {names}")
    torch.manual_seed(SEED)
    torch.set_grad_enabled(False)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()

    args.out.mkdir(parents=True, exist_ok=True)
    print(f"versions: {versions_string()}")

    tokenizers: dict[str, Tokenizer] = {}
    in_memory: dict[str, torch.nn.Module] = {}
    written: dict[tuple[str, int], dict[str, np.ndarray]] = {}
    failures = 0
    for index, spec in enumerate(SPECS):
        needed = not args.only or spec.name in args.only or any(
            s.source == spec.name and s.name in args.only for s in SPECS
        )
        if not needed:
            continue
        if spec.tokenizer not in tokenizers:
            tokenizers[spec.tokenizer] = TOKENIZER_BUILDERS[spec.tokenizer]()
        tok = tokenizers[spec.tokenizer]
        seed = SEED + index
        model = in_memory[spec.source] if spec.source else build_model(spec, tok, seed)
        in_memory[spec.name] = model
        if args.only and spec.name not in args.only:
            continue

        dest = args.out / spec.name
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        save_model(spec, model, dest, seed)
        tok.save(str(dest / "tokenizer.json"))
        tok_from_file = Tokenizer.from_file(str(dest / "tokenizer.json"))  # exactly what attn does

        ref_model = load_reference_model(spec, dest)
        keys = safetensors_keys(dest)
        print(
            f"\n[{spec.name}] {spec.model_class} vocab={tok.get_vocab_size()} "
            f"params={sum(p.numel() for p in ref_model.parameters())} "
            f"dtypes={sorted(safetensors_dtypes(dest))} files={sorted(p.name for p in dest.glob('model*'))}"
        )
        print(f"  keys: {len(keys)}, e.g. {keys[0]!r} .. {keys[-1]!r}")
        for i, text in enumerate(INPUTS):
            arrays, masks = run_reference(spec, ref_model, tok_from_file, text)
            stats = check_reference(spec, arrays, masks)
            ok = stats["row_sum_dev"] < 1e-5 and stats["masked_max"] == 0.0 and stats["softmax_dev"] < 1e-5
            failures += not ok
            path = dest / f"ref_{i}.npz"
            save_npz(path, arrays)
            written[spec.name, i] = arrays
            vs_source = ""
            if spec.source is not None and (spec.source, i) in written:
                src = written[spec.source, i]
                assert np.array_equal(src["input_ids"], arrays["input_ids"]), spec.name
                diff = max(float(np.abs(src[k] - arrays[k]).max()) for k in ("attentions", "last_hidden_state"))
                if spec.save_dtype == torch.float32 and diff != 0.0:  # same weights, only the files differ
                    ok = False
                    failures += 1
                vs_source = f"  vs {spec.source}: max|d|={diff:.1e}"
            toks = tok_from_file.encode(text, add_special_tokens=True).tokens
            print(
                f"  ref_{i}: {len(toks):3d} tokens  rowsum|d|={stats['row_sum_dev']:.1e} "
                f"masked={stats['masked_max']:.0e} softmax(qk)|d|={stats['softmax_dev']:.1e} "
                f"rowmax median={stats['row_max_median']:.2f} p90={stats['row_max_p90']:.2f} "
                f">0.99:{stats['rows_gt_0.99']:.0%}{vs_source}  {'ok' if ok else 'FAIL'}  ({path.stat().st_size} B)"
            )
            if i == 0:
                print(f"         {toks}")

    total = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    print(f"\ntotal size of {args.out}: {total / 1e6:.2f} MB")
    if failures:
        print(f"{failures} reference(s) failed the sanity checks", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
