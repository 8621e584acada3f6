"""Encoder–decoder models in `inspect`: a source and a target, and three kinds of attention.

The target is teacher-forced as transformers does with `labels`: tokenized as the model's
tokenizer tokenizes labels (T5 and Marian append </s>, BART wraps it in <s> … </s>), and read by
the decoder shifted right, its start token first and the last label dropped, so that decoder
position t is the step that writes label t. `encoder`: a source token over the source;
`decoder`: a decoder position over the positions before it; `cross`: a decoder position over the
source. A query is found in the sequence it lives in: the source for `encoder`, the decoder's
input otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from ..errors import InputError, OptionError
from ..loading.model import Model
from ..loading.tokenizer import Token, Tokenization, Word, tokenize
from ..models import Hyper, LayerTrace, cross_attention_models
from ..models.seq2seq import decoder_input
from ..records import frozen
from .options import ATTENTION_KINDS


@frozen
class Pair:
    """A source and its target as the model reads them: `source` (the encoder's input),
    `labels` (the target as transformers tokenizes labels) and `decoder` (the decoder's input:
    the labels shifted right behind the decoder start token)."""

    source: Tokenization
    labels: Tokenization
    decoder: Tokenization


def check_kind(model: Model, target: str | None, attention: str | None) -> str:
    """The kind of attention to show: `attention`, else decoder with a target, else (an
    encoder–decoder model without a target) encoder. A model without cross-attention given
    either is refused, naming the models that have it, as is an `attention` not among
    `options.ATTENTION_KINDS`."""
    if attention is not None and attention not in ATTENTION_KINDS:
        raise OptionError(f"`attention={attention!r}` is not valid", f"give one of {', '.join(ATTENTION_KINDS)}")
    if not model.has_cross_attention:
        if target is not None or attention is not None:
            given = "`target`" if target is not None else "`attention`"
            raise InputError(
                f"{given} is read only by encoder–decoder models, and {model.name} ({model.spec.model_type}) has no cross-attention",
                f"use a model of one of: {', '.join(cross_attention_models())} (e.g. a T5, BART or Marian folder), or drop {given}",
            )
        return "self"
    if attention in ("decoder", "cross") and target is None:
        raise InputError(f"`attention={attention!r}` is a target token's attention, and no target was given", "add `target=TEXT`")
    return attention or ("decoder" if target is not None else "encoder")


def pair(model: Model, source: str, target: str, truncate: bool | None = False) -> Pair:
    """Tokenize a source and a target (see the module's docstring)."""
    src = tokenize(model.tokenizer, source, max_tokens=model.spec.max_positions, truncate=truncate)
    labels = tokenize(model.decoder_tokenizer, target, max_tokens=model.spec.seq2seq.decoder.max_positions, truncate=truncate)
    return Pair(src, labels, shifted_right(model, labels))


def shifted_right(model: Model, labels: Tokenization) -> Tokenization:
    """The decoder's input: the decoder start token (special), then the labels but the last,
    each at its position + 1, their words keeping only the tokens kept."""
    start = model.spec.seq2seq.decoder_start
    ids = decoder_input(labels.ids, start)
    first = Token(0, model.decoder_tokenizer.id_to_token(start) or f"[{start}]", int(ids[0]), None, None, None, True)
    tokens = (first, *(replace(t, index=t.index + 1) for t in labels.tokens[:-1]))
    words = []
    for w in labels.words:
        kept = tuple(i + 1 for i in w.token_indices if i + 1 < len(tokens))
        if kept:
            words.append(Word(len(words), w.text, w.start, w.end, kept))
    return Tokenization(labels.text, tokens, tuple(words), labels.total_tokens)


@frozen
class Attended:
    """One kind of attention of a text, ready for a view (`heads`, `rollout`): `kind` (None for
    a model without cross-attention, else "encoder", "decoder" or "cross"), `keys` (the
    tokenization the keys are tokens of: the text, the decoder's input, or the source),
    `decoder` (the decoder's input, where the query lives; None for self-attention and the
    encoder), `traces` (one `LayerTrace` per layer, for cross-attention each decoder layer's
    `cross`), `spec` (the `Hyper` of the stack shown) and `pair` (the source and target, if any)."""

    kind: str | None
    keys: Tokenization
    decoder: Tokenization | None
    traces: Iterable[LayerTrace]
    spec: Hyper
    pair: Pair | None = None

    @property
    def queries(self) -> Tokenization:
        """The tokenization the query is found in."""
        return self.keys if self.decoder is None else self.decoder


def attended(model: Model, text: str, target: str | None = None, attention: str | None = None, whole: bool = False) -> Attended:
    """The kind of attention `target` and `attention` ask for (`check_kind`), traced: a
    decoder's over the target teacher-forced (cross-attention runs after the self-attention of
    its layer, so each decoder layer runs whole), else the encoder's (or the model's) over `text`.
    `whole`: cross-attention's traces are the decoder layers' (each with its `cross`), for a
    view that reads both (cross rollout)."""
    kind = check_kind(model, target, attention)
    if kind in ("decoder", "cross"):
        p = pair(model, source=text, target=target)
        traces = model.trace_decoder(p.decoder.ids, model.memory(p.source.ids))
        if kind == "cross" and not whole:
            traces = (t.cross for t in traces)
        return Attended(kind, p.decoder if kind == "decoder" else p.source, p.decoder, traces, model.spec.seq2seq.decoder, p)
    tok = tokenize(model.tokenizer, text, max_tokens=model.spec.max_positions)
    return Attended(None if kind == "self" else kind, tok, None, model.trace(tok.ids), model.spec)
