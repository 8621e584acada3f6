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

The pieces live beside it: tiny_tokenizers.py (the trained tokenizers), tiny_shape.py (the shared shape,
Spec), tiny_specs.py and tiny_specs_encoders.py (configs, SPECS) and reference.py (recording and checking reference tensors, shared with
make_reference_fixtures.py).

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
- ``gemma3``: Gemma3TextModel. √hidden embedding scale, (1 + w) RMSNorm, q/k norms,
  query_pre_attn_scalar 20 (!= head_dim 24), layer 0 sliding (window 4) and layer 1 global,
  each with its own RoPE (global: linear factor 2), four norms per layer, GeGLU tanh.
- ``gemma3-multimodal``: the same weights saved inside Gemma3ForConditionalGeneration (a tiny
  vision tower too); references from that checkpoint's language model, equal to ``gemma3``'s.
- ``gemma2``: Gemma2Model. Gemma 3's layer without q/k norms, one RoPE θ, the scaled scores
  soft-capped (``attn_logit_softcapping`` 5, small enough to bite), layer 0 sliding (window 4).
- ``mpnet``: MPNetModel. BERT's encoder with T5's relative position bias (32 buckets, one
  value per bucket and head) added to the scaled scores in every layer; positions from 2.
- ``modernbert``: ModernBertModel. Pre-LN encoder without biases, fused Wqkv and GeGLU Wi,
  layer 0 global (θ 160000) and layer 1 local (θ 1e4) with a two-sided window (``local_attention``
  4: |i - j| <= 2); saved through ModernBertForMaskedLM (``model.`` prefix).
- ``qwen3``: Qwen3Model. Per-head RMSNorm on q and k (``q_norm``/``k_norm``,
  weight of size head_dim) applied before RoPE, explicit ``head_dim`` 24,
  no biases, GQA 2.
- ``gpt_neox``: GPTNeoXModel (Pythia). Partial rotary (a quarter of each head),
  fused per-head ``query_key_value``, parallel residual, LayerNorm with bias; saved
  through GPTNeoXForCausalLM with an untied LM head (``embed_out.weight``).
- ``gpt_neox-sequential``: GPTNeoXModel with the sequential residual, no attention
  biases, half of each head rotating and ``gelu_new``.
- ``olmo2``: Olmo2Model. RMSNorm on the attention's and the MLP's outputs inside the
  residual (none before them), q/k RMSNorm over the whole projection before the heads
  split, GQA 2.
- ``phi3``: Phi3Model. Fused ``qkv_proj`` and ``gate_up_proj``, ``sliding_window`` 4,
  partial rotary 0.75 (as Phi-4-mini), GQA 2.
- ``mixtral``: MixtralModel. 4 experts, top 2 renormalised, in both layers.
- ``qwen3_moe``: Qwen3MoeModel. 6 experts, top 2 not renormalised, in layer 0; layer 1
  dense (``mlp_only_layers``).

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
- ``router_layers`` int64 (n,), ``router_experts`` int64 and ``router_weights`` float32
  (n, seq, top_k) (mixture-of-experts models only): the n layers with experts, in order, and
  for each the experts the router chose for each token (most probable first) and their weights
- ``softcap`` (gemma2): float32, the cap on the scaled scores; ``position_bias`` (mpnet):
  float32 (heads, seq, seq), the relative position term added to them
- ``versions``: str, e.g. "torch=2.13.0 transformers=5.23.0"
"""


from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
import transformers
from reference import REPO_ROOT, capture, check_reference, safetensors_dtypes, safetensors_keys, save_npz, to_numpy, versions_string
from tiny_shape import BIAS_STD, EMBED_STD, MATRIX_STD, NORM_HIGH, NORM_LOW, SEED, Spec
from tiny_specs import SPECS, gemma3_multimodal_config
from tiny_tokenizers import TOKENIZER_BUILDERS
from tokenizers import Tokenizer

DEFAULT_OUT = REPO_ROOT / "tests" / "fixtures" / "tiny"

# Inputs for the reference tensors: short (~5 tokens), medium, long (>= 20 tokens).
# "naïve" has a character that is not in the training sentences (byte fallback
# for the Llama-style tokenizer, accent stripping for WordPiece, raw bytes for
# byte-level BPE).
INPUTS = [
    "The cat sat.",
    "Every head looks at the other tokens.",
    "The quick brown fox looks at the lazy dog. Why does naïve attention split 1887 into pieces?",
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
        elif p.ndim in (2, 3):  # 3: a mixture of experts' stacked matrices (experts, out, in)
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
    if spec.save_class == "Gemma3ForConditionalGeneration":  # the text model inside an image+text checkpoint
        torch.manual_seed(seed + 1000)  # the vision tower and projector keep their (seeded) initial weights
        config = gemma3_multimodal_config(model.config)
        to_save = transformers.Gemma3ForConditionalGeneration._from_config(config, attn_implementation="eager", dtype=torch.float32)
        to_save.model.language_model.load_state_dict(model.state_dict(), strict=True)
    elif spec.save_class is not None:
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
    if spec.save_class == "Gemma3ForConditionalGeneration":
        whole = transformers.Gemma3ForConditionalGeneration.from_pretrained(str(dest), attn_implementation="eager", dtype=torch.float32)
        return whole.model.language_model.eval()
    cls = getattr(transformers, spec.model_class)
    kwargs = {}
    if spec.model_class == "BertModel" and spec.save_class is not None:
        kwargs["add_pooling_layer"] = False  # BertForMaskedLM has no pooler
    model = cls.from_pretrained(str(dest), attn_implementation="eager", dtype=torch.float32, **kwargs)
    return model.eval()


@torch.no_grad()
def run_reference(spec: Spec, model: torch.nn.Module, tok: Tokenizer, text: str) -> tuple[dict, list]:
    enc = tok.encode(text, add_special_tokens=True)
    input_ids = torch.tensor([enc.ids], dtype=torch.long)
    seq = input_ids.shape[1]
    kwargs = dict(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), output_attentions=True)
    if spec.model_class == "BertModel":
        kwargs["token_type_ids"] = torch.tensor([enc.type_ids], dtype=torch.long)
    routers = [m for m in model.modules() if type(m).__name__.endswith("TopKRouter")]  # mixture-of-experts layers
    routed: list[tuple] = []
    hooks = [m.register_forward_hook(lambda m, a, out: routed.append((out[2][:, :].clone(), out[1].clone()))) for m in routers]
    with capture(spec.module) as rec:
        out = model(**kwargs)
    for hook in hooks:
        hook.remove()
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
        attentions=to_numpy(attentions),
        q=to_numpy(torch.stack(rec["q"])),
        k=to_numpy(torch.stack(rec["k"])),
        v=to_numpy(torch.stack(rec["v"])),
    )
    if spec.rope:
        arrays["q_pre_rope"] = to_numpy(torch.stack(rec["q_pre_rope"]))
        arrays["k_pre_rope"] = to_numpy(torch.stack(rec["k_pre_rope"]))
    if routers:  # which experts each token went to, and their weights, in each layer that has experts
        layer_of = {id(m): i for i, layer in enumerate(model.layers) for m in layer.modules()}
        arrays["router_layers"] = np.array([layer_of[id(m)] for m in routers], dtype=np.int64)
        arrays["router_experts"] = np.stack([indices.numpy().astype(np.int64) for indices, _ in routed])
        arrays["router_weights"] = np.stack([to_numpy(weights) for _, weights in routed])
    arrays["scaling"] = np.float32(scalings.pop())
    caps = {c for c in rec["softcap"] if c is not None}
    if caps:  # Gemma 2: the soft-cap on the scaled scores, the same in every layer
        assert len(caps) == 1, caps
        arrays["softcap"] = np.float32(caps.pop())
    if rec["position_bias"]:  # MPNet: one relative position bias, computed once, read by every layer
        assert all(torch.equal(b, rec["position_bias"][0]) for b in rec["position_bias"]), spec.name
        arrays["position_bias"] = to_numpy(rec["position_bias"][0])
    arrays["last_hidden_state"] = to_numpy(out.last_hidden_state[0])
    arrays["versions"] = np.array(versions_string())
    return arrays, rec["mask"]


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
            stats = check_reference(spec.name, spec.causal, spec.layer_windows or spec.sliding_window, arrays, masks)
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
