"""Value-weighted norms (Kobayashi et al., EMNLP 2020) of the tiny encoder–decoder models, from transformers.

For every kind of attention (the encoder's self-attention, the decoder's causal self-attention,
the decoder's cross-attention over the source), every layer, head, query row i and key j:

- `<kind>_value_norms` f32 (layers, heads, q, k): ‖α_ij^h·v_j^h‖₂, v_j^h the value vector of key
  j in head h, as the module's value projection writes it (BART's and Marian's v_proj with its
  bias; T5's `v` has none);
- `<kind>_output_norms` f32 (layers, heads, q, k): ‖α_ij^h·v_j^h·W_O^h‖₂, Kobayashi's ‖α·f(x)‖,
  W_O^h head h's columns of the output projection (its bias, added once per row, belongs to no
  token and is left out);
- `<kind>_value_sizes` and `<kind>_output_sizes` f32 (layers, heads, k): ‖v_j^h‖₂ and
  ‖v_j^h·W_O^h‖₂ before the weight, the scale of each key's norms: an error ε in α_ij is one of
  ε·‖v_j^h‖ in the first (the test's tolerance is 1e-5 of these sizes, as it is 1e-5 on α).

α are transformers' eager attention weights (`output_attentions`), v the outputs of the value
projections and W_O the weights of the output projections, both read by forward hooks; the hook on
the output projection checks the decomposition: Σ_h Σ_j α_ij^h·v_j^h·W_O^h + b_O is what the
module returns (≤ 1e-5), so these are the vectors the model adds. Computed in float64 from the
float32 tensors, stored float32. Run in the reference venv, from the repository root, after
scripts/make_seq2seq_fixtures.py (it reads the committed model folders)::

    .refenv/bin/python scripts/make_seq2seq_norms.py

It writes tests/fixtures/seq2seq/<name>/norms_<i>.npz for each (source, target) pair of PAIRS,
teacher-forced with `labels` as ref_<i>.npz is, with `versions` (str).
"""

from __future__ import annotations

import sys

import numpy as np
import torch
import transformers
from make_seq2seq_fixtures import OUT
from reference import save_npz, versions_string
from seq2seq_specs import PAIRS, SEQ2SEQ_SPECS
from tokenizers import Tokenizer

# Per family: the attention modules of each kind (dotted paths with {layer}), and the names of
# their value and output projections.
MODULES = {
    "t5": (
        {"encoder": "encoder.block.{layer}.layer.0.SelfAttention", "decoder": "decoder.block.{layer}.layer.0.SelfAttention",
         "cross": "decoder.block.{layer}.layer.1.EncDecAttention"},
        "v", "o",
    ),
    "bart": (
        {"encoder": "model.encoder.layers.{layer}.self_attn", "decoder": "model.decoder.layers.{layer}.self_attn",
         "cross": "model.decoder.layers.{layer}.encoder_attn"},
        "v_proj", "out_proj",
    ),
}
MODULES["marian"] = MODULES["bart"]


class Recorder:
    """Forward hooks on one attention module's value and output projections: the last value
    outputs (1, keys, heads·d) and output projection's input and output (1, q, ·)."""

    def __init__(self, module: torch.nn.Module, value: str, output: str) -> None:
        self.o = getattr(module, output)
        self.handles = [
            getattr(module, value).register_forward_hook(lambda m, args, out: setattr(self, "v", out.detach().clone())),
            self.o.register_forward_hook(lambda m, args, out: setattr(self, "out", (args[0].detach().clone(), out.detach().clone()))),
        ]

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def norms(alpha: torch.Tensor, v: torch.Tensor, o: torch.nn.Linear, out: tuple[torch.Tensor, torch.Tensor]) -> tuple[np.ndarray, ...]:
    """alpha (heads, q, k), v (1, k, heads·d), o the output projection and what it was given and
    returned -> ‖α·v‖ and ‖α·v·W_O^h‖, each (heads, q, k), and ‖v‖ and ‖v·W_O^h‖, each (heads, k),
    float32, after checking the sum."""
    heads = alpha.shape[0]
    a = alpha.to(torch.float64)
    values = v[0].to(torch.float64).reshape(v.shape[1], heads, -1).transpose(0, 1)  # (heads, k, d)
    d = values.shape[-1]
    w_o = o.weight.detach().to(torch.float64).T.reshape(heads, d, -1)  # (heads, d, hidden): x·W layout, split by head
    f = values @ w_o  # (heads, k, hidden): f^h(x_j) = v_j^h·W_O^h
    weighted_v = a[..., None] * values[:, None]  # (heads, q, k, d)
    weighted_f = a[..., None] * f[:, None]  # (heads, q, k, hidden)
    bias = 0.0 if o.bias is None else o.bias.detach().to(torch.float64)
    total = weighted_f.sum(dim=(0, 2)) + bias  # (q, hidden): the module's output, rebuilt
    given, returned = out
    assert torch.allclose(given[0].to(torch.float64), (a @ values).transpose(0, 1).reshape(a.shape[1], -1), atol=1e-5), "α·v is not the heads' output"
    gap = (total - returned[0].to(torch.float64)).abs().max().item()
    assert gap <= 1e-5, f"Σ α·v·W_O + b misses the module's output by {gap}"
    return tuple(torch.linalg.vector_norm(x, dim=-1).numpy().astype(np.float32) for x in (weighted_v, weighted_f, values, f))


@torch.no_grad()
def reference(name: str, model, tok: Tokenizer, source: str, target: str) -> dict:
    paths, value, output = MODULES[name]
    config = model.config
    layers = {"encoder": config.num_layers if name == "t5" else config.encoder_layers}
    layers["decoder"] = layers["cross"] = config.num_decoder_layers if name == "t5" else config.decoder_layers
    recorders = {
        (kind, layer): Recorder(model.get_submodule(path.format(layer=layer)), value, output)
        for kind, path in paths.items() for layer in range(layers[kind])
    }
    ids = torch.tensor([tok.encode(source, add_special_tokens=True).ids])
    labels = torch.tensor([tok.encode(target, add_special_tokens=True).ids])
    try:
        out = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels, output_attentions=True)
    finally:
        for r in recorders.values():
            r.close()
    attentions = {"encoder": out.encoder_attentions, "decoder": out.decoder_attentions, "cross": out.cross_attentions}
    arrays = {"source": np.array(source), "target": np.array(target)}
    for kind in paths:
        per_layer = [norms(attentions[kind][layer][0], r.v, r.o, r.out) for layer in range(layers[kind]) for r in [recorders[kind, layer]]]
        for k, key in enumerate(("value_norms", "output_norms", "value_sizes", "output_sizes")):
            arrays[f"{kind}_{key}"] = np.stack([p[k] for p in per_layer])
    arrays["versions"] = np.array(versions_string())
    return arrays


def main() -> int:
    transformers.logging.set_verbosity_error()
    for spec in SEQ2SEQ_SPECS:
        dest = OUT / spec.name
        model = getattr(transformers, spec.model_class).from_pretrained(dest, attn_implementation="eager", dtype=torch.float32).eval()
        tok = Tokenizer.from_file(str(dest / "tokenizer.json"))
        for i, (source, target) in enumerate(PAIRS):
            arrays = reference(spec.name, model, tok, source, target)
            save_npz(dest / f"norms_{i}.npz", arrays)
            sizes = ", ".join(f"{k} {arrays[f'{k}_output_norms'].max():.3g}" for k in ("encoder", "decoder", "cross"))
            print(f"[{spec.name}] norms_{i}: largest ‖α·f(x)‖ {sizes}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
