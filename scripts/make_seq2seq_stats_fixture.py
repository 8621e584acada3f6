"""What `attn stats` must report for the tiny encoder–decoder models, from transformers' attentions.

For each model of tests/fixtures/seq2seq/ (t5, bart, marian) and each kind of attention
(encoder, decoder, cross), the per-head statistics over the (source, target) pairs of
tests/fixtures/seq2seq/stats_pairs.jsonl, computed here in NumPy, independently of attn, from
transformers' `encoder_attentions`, `decoder_attentions` and `cross_attentions` (eager attention,
float32, teacher-forced with `labels`), as docs/stats.md defines them:

- over query rows: `entropy` (nats), `entropy_normalised` (÷ ln of the keys the row sees, rows
  that see one key left out) and its 10-bin histogram, the mass on `special` tokens, the
  `first_token` and `punctuation` (tokens all Unicode P*), and (not cross) the weight on the
  `previous_token`, `self` and the `next_token`;
- over texts: `sink_rate` (mean first-token weight > 0.3) and (not cross) TransformerLens'
  previous- and duplicate-token scores, mul Σ A·D / Σ A and abs 1 − Σ|A − D| / seq;
- (not cross) the induction scores on 10 sequences of 25 tokens drawn by NumPy default_rng(0)
  from the vocabulary less special and bracketed tokens, each repeated once: the encoder reads
  them inside the tokenizer's special tokens; the decoder is taught them behind its start token,
  the source the tokenizer's special tokens alone.

The token kinds come from the tokenizer's own encoding: special, the ids of its special tokens
(as transformers' all_special_ids: <unk> is one); punctuation, from its offsets. The decoder's
input is the labels shifted right behind decoder_start_token_id (its start token special). Writes tests/fixtures/seq2seq/stats_<name>.npz:
`<kind>_<statistic>` float64 (layers, heads) (NaN: not measured), `<kind>_histogram` int64
(layers, heads, 10), `<kind>_texts`, `<kind>_tokens`, `versions`. Run in the reference venv, from
the repository root::

    .refenv/bin/python scripts/make_seq2seq_stats_fixture.py
"""

from __future__ import annotations

import json
import sys
import unicodedata

import numpy as np
import torch
import transformers
from reference import REPO_ROOT, save_npz, versions_string
from tokenizers import Tokenizer

SEQ2SEQ = REPO_ROOT / "tests" / "fixtures" / "seq2seq"
CORPUS = SEQ2SEQ / "stats_pairs.jsonl"
CLASSES = {"t5": "T5ForConditionalGeneration", "bart": "BartForConditionalGeneration", "marian": "MarianMTModel"}
KINDS = ("encoder", "decoder", "cross")
ROW = ("entropy", "entropy_normalised", "special", "first_token", "punctuation", "previous_token", "self", "next_token")
TEXT = ("sink_rate", "previous_token_mul", "previous_token_abs", "duplicate_token_mul", "duplicate_token_abs")
INDUCTION = ("induction_mul", "induction_abs")
SINK, BINS, SEED, SEQUENCES, LENGTH = 0.3, 10, 0, 10, 25


def kinds_of(tok: Tokenizer, text: str) -> tuple[list[int], np.ndarray, np.ndarray]:
    """ids, special (bool: a special token's id, as transformers' all_special_ids, so <unk> too)
    and punctuation (bool: not special, the text its offsets cover all Unicode P*) of `text`."""
    specials = {i for i, t in tok.get_added_tokens_decoder().items() if t.special}
    enc = tok.encode(text, add_special_tokens=True)
    special = np.array([i in specials for i in enc.ids], dtype=bool)
    punct = []
    for (start, end), is_special in zip(enc.offsets, special, strict=True):
        piece = "" if is_special else text[start:end].strip()
        punct.append(bool(piece) and all(unicodedata.category(c).startswith("P") for c in piece))
    return enc.ids, special, np.array(punct, dtype=bool)


class Sums:
    """Per statistic: (layers, heads) float64 sums and a count (every layer counts the same)."""

    def __init__(self, layers: int, heads: int) -> None:
        self.sums = {m: np.zeros((layers, heads)) for m in ROW + TEXT + INDUCTION}
        self.counts = dict.fromkeys(ROW + TEXT + INDUCTION, 0)
        self.histogram = np.zeros((layers, heads, BINS), dtype=np.int64)
        self.texts = self.tokens = 0

    def add(self, metric: str, layer: int, values: np.ndarray, count: int) -> None:
        self.sums[metric][layer] += values
        if layer == 0:
            self.counts[metric] += count

    def means(self) -> dict[str, np.ndarray]:
        return {m: self.sums[m] / self.counts[m] if self.counts[m] else np.full(self.sums[m].shape, np.nan) for m in self.sums}


def scores(a: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TransformerLens' detector scores of maps a (heads, seq, seq) against pattern d: mul, abs."""
    return (a * d).sum(axis=(1, 2)) / a.sum(axis=(1, 2)), 1.0 - np.abs(a - d).sum(axis=(1, 2)) / a.shape[-1]


def duplicate(ids: np.ndarray) -> np.ndarray:
    return np.tril(ids[:, None] == ids[None, :], k=-1).astype(np.float64)


def add_maps(s: Sums, layer: int, a: np.ndarray, ids: np.ndarray, special: np.ndarray, punct: np.ndarray, kind: str) -> None:
    """One text's maps of one layer: a (heads, rows, keys) float64; ids, special, punct of the keys."""
    heads, rows, keys = a.shape
    h = -np.where(a > 0, a * np.log(np.where(a > 0, a, 1.0)), 0.0).sum(axis=-1)  # (heads, rows)
    seen = np.arange(1, rows + 1) if kind == "decoder" else np.full(rows, keys)
    spread = seen > 1
    normalised = h[:, spread] / np.log(seen[spread])
    for head in range(heads):
        s.histogram[layer, head] += np.bincount(np.clip((normalised[head] * BINS).astype(int), 0, BINS - 1), minlength=BINS)
    s.add("entropy", layer, h.sum(axis=-1), rows)
    s.add("entropy_normalised", layer, normalised.sum(axis=-1), int(spread.sum()))
    for name, mask in (("special", special), ("first_token", np.arange(keys) == 0), ("punctuation", punct)):
        s.add(name, layer, a[:, :, mask].sum(axis=(1, 2)), rows)
    s.add("sink_rate", layer, (a[:, :, 0].mean(axis=-1) > SINK).astype(float), 1)
    if kind == "cross":
        return
    i = np.arange(rows)
    s.add("previous_token", layer, a[:, i[1:], i[1:] - 1].sum(axis=-1), rows - 1)
    s.add("self", layer, a[:, i, i].sum(axis=-1), rows)
    s.add("next_token", layer, a[:, i[:-1], i[:-1] + 1].sum(axis=-1), rows - 1)
    if rows > 1:
        for name, d in (("previous_token", np.eye(rows, k=-1)), ("duplicate_token", duplicate(ids))):
            mul, abs_ = scores(a, d)
            s.add(f"{name}_mul", layer, mul, 1)
            s.add(f"{name}_abs", layer, abs_, 1)


@torch.no_grad()
def corpus(model, tok: Tokenizer, kind: str, layers: int, heads: int) -> Sums:
    s = Sums(layers, heads)
    start = model.config.decoder_start_token_id
    for line in CORPUS.read_text(encoding="utf-8").splitlines():
        pair = json.loads(line)
        src, src_special, src_punct = kinds_of(tok, pair["text"])
        labels, lab_special, lab_punct = kinds_of(tok, pair["target"])
        out = model(input_ids=torch.tensor([src]), labels=torch.tensor([labels]), output_attentions=True)
        decoder_ids = np.array([start, *labels[:-1]])
        assert decoder_ids.tolist() == model.prepare_decoder_input_ids_from_labels(labels=torch.tensor([labels]))[0].tolist()
        if kind == "encoder":
            maps, keys = out.encoder_attentions, (np.array(src), src_special, src_punct)
        elif kind == "decoder":
            keys = (decoder_ids, np.array([True, *lab_special[:-1]]), np.array([False, *lab_punct[:-1]]))
            maps = out.decoder_attentions
        else:
            maps, keys = out.cross_attentions, (np.array(src), src_special, src_punct)
        for layer, a in enumerate(maps):
            add_maps(s, layer, a[0].double().numpy(), *keys, kind)
        s.texts += 1
        s.tokens += len(src) if kind == "encoder" else len(labels)
    return s


@torch.no_grad()
def induction(model, tok: Tokenizer, kind: str, s: Sums) -> None:
    special = {t.content for t in tok.get_added_tokens_decoder().values() if t.special}
    vocab = np.array(sorted(i for t, i in tok.get_vocab().items() if t not in special and not (t.startswith("[") and t.endswith("]"))))
    half = np.random.default_rng(SEED).choice(vocab, size=(SEQUENCES, LENGTH), replace=True)
    empty = tok.encode("", add_special_tokens=True).ids
    lead = tok.encode("a", add_special_tokens=True).special_tokens_mask.index(0)
    for prompt in np.concatenate([half, half], axis=1).tolist():
        if kind == "encoder":
            ids = [*empty[:lead], *prompt, *empty[lead:]]
            maps = model.get_encoder()(input_ids=torch.tensor([ids]), output_attentions=True).attentions
        else:
            ids = [model.config.decoder_start_token_id, *prompt]
            maps = model(input_ids=torch.tensor([empty]), decoder_input_ids=torch.tensor([ids]), output_attentions=True).decoder_attentions
        d = np.zeros((len(ids), len(ids)))
        d[:, 1:] = duplicate(np.array(ids))[:, :-1]
        for layer, a in enumerate(maps):
            mul, abs_ = scores(a[0].double().numpy(), np.tril(d))
            s.add("induction_mul", layer, mul, 1)
            s.add("induction_abs", layer, abs_, 1)


def stack_shape(c, kind: str) -> tuple[int, int]:
    """(layers, heads) of the encoder (kind "encoder") or the decoder, T5's names or BART's."""
    if kind == "encoder":
        return getattr(c, "encoder_layers", None) or c.num_layers, getattr(c, "encoder_attention_heads", None) or c.num_heads
    return getattr(c, "decoder_layers", None) or c.num_decoder_layers, getattr(c, "decoder_attention_heads", None) or c.num_heads


def main() -> int:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    for name, cls in CLASSES.items():
        folder = SEQ2SEQ / name
        model = getattr(transformers, cls).from_pretrained(folder, attn_implementation="eager", dtype=torch.float32).eval()
        tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        arrays = {"versions": np.array(versions_string())}
        for kind in KINDS:
            layers, heads = stack_shape(model.config, kind)
            s = corpus(model, tok, kind, layers, heads)
            if kind != "cross":
                induction(model, tok, kind, s)
            arrays |= {f"{kind}_{m}": v for m, v in s.means().items()}
            arrays |= {f"{kind}_histogram": s.histogram, f"{kind}_texts": np.array(s.texts), f"{kind}_tokens": np.array(s.tokens)}
            print(f"[{name}] {kind}: {s.texts} pairs, {s.tokens} rows, {layers}×{heads} heads", file=sys.stderr)
        save_npz(SEQ2SEQ / f"stats_{name}.npz", arrays)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
