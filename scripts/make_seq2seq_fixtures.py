"""Make the tiny encoder–decoder models (T5, BART, Marian) and what transformers computes with them.

Each model is built by transformers from its config (scripts/seq2seq_specs.py), every parameter
redrawn (tiny_specs' scales, T5's q divided by √d_kv as its own initialisation does; Marian's sinusoidal positions kept, they are not learned; BART's and
Marian's `final_logits_bias` buffer redrawn too, so that it counts), saved through its
*ForConditionalGeneration class with a trained tokenizer.json, and run in eager attention,
float32, teacher-forced as `labels` are: the target tokenized as the source is (T5 and Marian
append </s>, BART wraps it in <s> … </s>), the decoder reading it shifted right behind
decoder_start_token_id. Run in the reference venv, from the repository root::

    .refenv/bin/python scripts/make_seq2seq_fixtures.py [--only t5 bart marian]

It writes tests/fixtures/seq2seq/<name>/ (config.json, model.safetensors, tokenizer.json) and for
each (source, target) pair of PAIRS a ref_<i>.npz:

- `source`, `target` (str); `input_ids` int64 (n,): the source; `labels` int64 (m,);
  `decoder_input_ids` int64 (m,): labels shifted right, as the model shifts them.
- `encoder_attentions` f32 (encoder layers, heads, n, n), `decoder_attentions` f32 (decoder
  layers, heads, m, m), `cross_attentions` f32 (decoder layers, heads, m, n): softmax weights.
- `encoder_bias` f32 (heads, n, n), `decoder_bias` f32 (heads, m, m) (t5 only): the relative
  position term every layer adds to Q·Kᵀ (the decoder's without its causal mask).
- `encoder_last_hidden_state` f32 (n, hidden); `logits` f32 (m, vocab).
- `generated` int64 (steps,): greedy `generate` (max_new_tokens STEPS), the start token left
  out; `top_ids` int64 and `top_logprobs` f32 (steps, 5): log_softmax of each step's raw logits;
  `cross_rows` f32 (steps, decoder layers, heads, n): each step's cross-attention row.
- `untied_lm_head` f32 (vocab, hidden) and `untied_logits` f32 (m, vocab) (t5, ref_0 only):
  Flan-T5's layout, an LM head of its own in the checkpoint (`tie_word_embeddings` false in
  config.json): transformers then reads that head, not the embeddings. The test writes it into
  a copy of the folder.
- `versions` (str).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
import transformers
from make_tiny_models import redraw_parameters
from reference import REPO_ROOT, save_npz, to_numpy, versions_string
from seq2seq_specs import PAIRS, SEQ2SEQ_SPECS, SEQ2SEQ_TOKENIZERS, Seq2SeqSpec
from tiny_shape import BIAS_STD, SEED
from tokenizers import Tokenizer

OUT = REPO_ROOT / "tests" / "fixtures" / "seq2seq"
STEPS = 8
TOP = 5


@torch.no_grad()
def build(spec: Seq2SeqSpec, tok: Tokenizer, seed: int) -> torch.nn.Module:
    cls = getattr(transformers, spec.model_class)
    model = cls._from_config(spec.make_config(tok), attn_implementation="eager", dtype=torch.float32)
    fixed = {n: p.clone() for n, p in model.named_parameters() if "embed_positions" in n and spec.name == "marian"}
    redraw_parameters(model, seed)
    for name, p in model.named_parameters():
        if name in fixed:  # Marian's sinusoids: a table of sin/cos, not weights
            p.copy_(fixed[name])
    if spec.name == "t5":
        for name, p in model.named_parameters():
            if name.endswith(".q.weight"):  # T5 does not scale Q·Kᵀ: its initialisation folds 1/√d_kv into q, as here
                p.mul_(model.config.d_kv**-0.5)
            elif name.endswith("relative_attention_bias.weight"):  # values ~1, so that the position term shows
                p.mul_(5.0)
    if hasattr(model, "final_logits_bias"):
        gen = torch.Generator().manual_seed(seed + 7)
        model.final_logits_bias.copy_(torch.randn(model.final_logits_bias.shape, generator=gen) * BIAS_STD)
    return model.eval()


class BiasRecorder:
    """Records T5Attention.compute_bias's outputs: (1, heads, q, k) per call."""

    def __init__(self) -> None:
        self.calls: list[torch.Tensor] = []

    def __enter__(self):
        from transformers.models.t5 import modeling_t5

        self.original = original = modeling_t5.T5Attention.compute_bias
        calls = self.calls

        def compute_bias(module, *args, **kwargs):
            out = original(module, *args, **kwargs)
            calls.append(out.detach()[0].clone())
            return out

        modeling_t5.T5Attention.compute_bias = compute_bias
        return self

    def __exit__(self, *exc) -> None:
        from transformers.models.t5 import modeling_t5

        modeling_t5.T5Attention.compute_bias = self.original


def _cache():
    """An empty cache that grows per layer: generate's own is sized by the encoder's layer count
    (transformers 5.25), which fails for a T5 decoder deeper than its encoder."""
    return transformers.EncoderDecoderCache(transformers.DynamicCache(), transformers.DynamicCache())


@torch.no_grad()
def reference(spec: Seq2SeqSpec, model, tok: Tokenizer, source: str, target: str) -> dict:
    ids = torch.tensor([tok.encode(source, add_special_tokens=True).ids])
    labels = torch.tensor([tok.encode(target, add_special_tokens=True).ids])
    with BiasRecorder() as biases:
        out = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels, output_attentions=True)
    decoder_input_ids = model.prepare_decoder_input_ids_from_labels(labels=labels)
    arrays = {
        "source": np.array(source), "target": np.array(target), "input_ids": ids[0].numpy().astype(np.int64),
        "labels": labels[0].numpy().astype(np.int64), "decoder_input_ids": decoder_input_ids[0].numpy().astype(np.int64),
        "encoder_attentions": to_numpy(torch.stack([a[0] for a in out.encoder_attentions])),
        "decoder_attentions": to_numpy(torch.stack([a[0] for a in out.decoder_attentions])),
        "cross_attentions": to_numpy(torch.stack([a[0] for a in out.cross_attentions])),
        "encoder_last_hidden_state": to_numpy(out.encoder_last_hidden_state[0]), "logits": to_numpy(out.logits[0]),
    }
    if spec.name == "t5":
        assert len(biases.calls) == 2, len(biases.calls)  # the encoder's, then the decoder's
        arrays["encoder_bias"], arrays["decoder_bias"] = (to_numpy(b) for b in biases.calls)
        if source == PAIRS[0][0]:
            arrays |= untied(model, ids, labels)
    gen = model.generate(
        ids, attention_mask=torch.ones_like(ids), max_new_tokens=STEPS, do_sample=False, output_logits=True,
        output_attentions=True, return_dict_in_generate=True, past_key_values=_cache(),
    )
    steps = len(gen.logits)
    top_ids, top_lp = np.zeros((steps, TOP), dtype=np.int64), np.zeros((steps, TOP), dtype=np.float32)
    for s in range(steps):
        values, indices = torch.topk(torch.log_softmax(gen.logits[s][0].to(torch.float64), dim=-1), TOP)
        top_ids[s], top_lp[s] = indices.numpy(), values.numpy().astype(np.float32)
    arrays.update(
        generated=gen.sequences[0, 1:].numpy().astype(np.int64), top_ids=top_ids, top_logprobs=top_lp,
        cross_rows=np.stack([to_numpy(torch.stack([a[0, :, -1] for a in step])) for step in gen.cross_attentions]),
        versions=np.array(versions_string()),
    )
    return arrays


@torch.no_grad()
def untied(model, ids: torch.Tensor, labels: torch.Tensor) -> dict:
    """The T5 fixture as Flan-T5 is saved: its own LM head in the file, tie_word_embeddings false."""
    import json
    import tempfile

    from safetensors.torch import load_file, save_file

    gen = torch.Generator().manual_seed(SEED + 200)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        weights = load_file(f"{tmp}/model.safetensors")
        weights["lm_head.weight"] = torch.randn(weights["shared.weight"].shape, generator=gen) * 0.5
        save_file(weights, f"{tmp}/model.safetensors", metadata={"format": "pt"})
        config = json.loads(Path(f"{tmp}/config.json").read_text())
        config.pop("scale_decoder_outputs", None)
        Path(f"{tmp}/config.json").write_text(json.dumps(config | {"tie_word_embeddings": False}))
        own = transformers.T5ForConditionalGeneration.from_pretrained(tmp, attn_implementation="eager", dtype=torch.float32).eval()
        assert torch.equal(own.lm_head.weight, weights["lm_head.weight"]) and not own.config.scale_decoder_outputs
        logits = own(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels).logits[0]
    return {"untied_lm_head": to_numpy(weights["lm_head.weight"]), "untied_logits": to_numpy(logits)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", choices=[s.name for s in SEQ2SEQ_SPECS])
    args = ap.parse_args(argv)
    torch.manual_seed(SEED)
    transformers.logging.set_verbosity_error()
    for index, spec in enumerate(SEQ2SEQ_SPECS):
        if args.only and spec.name not in args.only:
            continue
        tok = SEQ2SEQ_TOKENIZERS[spec.tokenizer]()
        dest = OUT / spec.name
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        build(spec, tok, SEED + 100 + index).save_pretrained(dest)
        tok.save(str(dest / "tokenizer.json"))
        model = getattr(transformers, spec.model_class).from_pretrained(dest, attn_implementation="eager", dtype=torch.float32).eval()
        tok = Tokenizer.from_file(str(dest / "tokenizer.json"))  # exactly what attn reads
        for i, (source, target) in enumerate(PAIRS):
            arrays = reference(spec, model, tok, source, target)
            save_npz(dest / f"ref_{i}.npz", arrays)
            rowmax = float(np.median(arrays["cross_attentions"].max(-1)))
            print(f"[{spec.name}] ref_{i}: source {len(arrays['input_ids'])} target {len(arrays['labels'])} tokens, "
                  f"cross row max median {rowmax:.2f}, generated {arrays['generated'].tolist()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
