"""transformers with hooks: the interventions attn makes (`attn_cli.models.interventions`) done
inside transformers' eager attention, for the reference fixtures of scripts/make_intervention_fixtures.py
and scripts/make_causal_fixtures.py. Knockouts and value zeroing act in the modeling module's
`eager_attention_forward` (looked up at call time; MPNet, which has none, in its self-attention's
mask argument and its v projection); head edits in a forward pre-hook on the output
projection; captures record what each layer reads and writes. `Checks` collects a script's
self-checks. Run in the reference venv (scripts/refenv.sh)."""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from reference import REPO_ROOT, save_npz
from tiny_specs import SPECS

F32_MIN = float(np.finfo(np.float32).min)


@dataclass(frozen=True)
class Arch:
    """Where the pieces live in a base model of this type, and how its layer sums them."""

    layers: str  # attribute path of the ModuleList of layers
    attn: str  # per layer: the module that calls eager_attention_forward (MPNet: computes its attention itself)
    o_proj: str  # per layer: output projection (input = hook_z)
    ffn_out: str  # per layer: module whose output is the feed-forward output
    conv1d: bool = False  # o_proj weight stored (in, out) (GPT-2 Conv1D) instead of (out, in)
    # How the layer rebuilds the residual from its input r, attention output a and feed-forward output f:
    # "pre" (r + a) + f; "parallel" (f + a) + r; "sandwich" (r + N1(a)) + N2(f); "post" N2(f + N1(a + r)).
    residual: str = "pre"
    norms: tuple[str, str] = ("", "")  # per layer: N1, N2 of "sandwich" and "post"
    final_norm: str | None = "norm"  # on the base model, after the last layer (None: encoders without one)
    v_proj: str | None = None  # per layer: the value projection, where there is no eager_attention_forward to wrap


def _llama() -> Arch:
    return Arch("layers", "self_attn", "self_attn.o_proj", "mlp")


def _sandwich() -> Arch:
    return Arch("layers", "self_attn", "self_attn.o_proj", "mlp", residual="sandwich", norms=("post_attention_layernorm", "post_feedforward_layernorm"))


def _bert() -> Arch:
    return Arch("encoder.layer", "attention.self", "attention.output.dense", "output.dense", residual="post",
                norms=("attention.output.LayerNorm", "output.LayerNorm"), final_norm=None)


ARCHS = {
    "bert": _bert(),
    "roberta": _bert(),
    "distilbert": Arch("transformer.layer", "attention", "attention.out_lin", "ffn", residual="post",
                       norms=("sa_layer_norm", "output_layer_norm"), final_norm=None),
    # MPNet's attention is written out in MPNetSelfAttention.forward: the knockout goes into its
    # attention_mask argument (added after the position bias) and value zeroing acts on v's projection.
    "mpnet": Arch("encoder.layer", "attention.attn", "attention.attn.o", "output.dense", residual="post",
                  norms=("attention.LayerNorm", "output.LayerNorm"), final_norm=None, v_proj="attention.attn.v"),
    "nomic_bert": Arch("layers", "self_attn", "self_attn.o_proj", "mlp", residual="post",
                       norms=("post_attention_layernorm", "post_mlp_layernorm"), final_norm=None),
    "modernbert": Arch("layers", "attn", "attn.Wo", "mlp", final_norm="final_norm"),
    "gpt2": Arch("h", "attn", "attn.c_proj", "mlp", conv1d=True, final_norm="ln_f"),
    "gpt_neox": Arch("layers", "attention", "attention.dense", "mlp", residual="parallel", final_norm="final_layer_norm"),
    "gpt_neox-sequential": Arch("layers", "attention", "attention.dense", "mlp", final_norm="final_layer_norm"),
    **{name: _llama() for name in ("llama", "llama3rope", "mistral", "qwen2", "qwen3", "phi3")},
    "mixtral": _llama(),  # mlp: transformers' name for block_sparse_moe
    "qwen3_moe": _llama(),
    "gemma3": _sandwich(),
    "gemma2": _sandwich(),
    "olmo2": _sandwich(),  # the same two output norms as Gemma's, no input norms
}


def get(obj, path: str):
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def resolve(case: dict, heads: int, kv_heads: int, layers: int, seq: int) -> dict:
    out = dict(case)
    for key, n in (("heads", heads), ("kv_heads", kv_heads), ("layers", layers), ("positions", seq)):
        if out.get(key) == "all":
            out[key] = list(range(n))
    return out


class Recorder:
    """Per-layer tensors of one forward pass (batch dim dropped)."""

    def __init__(self) -> None:
        self.resid_pre: dict[int, torch.Tensor] = {}
        self.z: dict[int, torch.Tensor] = {}  # o_proj input as transformers had it, after any change
        self.attn_out: dict[int, torch.Tensor] = {}
        self.ffn_out: dict[int, torch.Tensor] = {}
        self.value: dict[int, torch.Tensor] = {}  # value entering eager attention, after any change
        self.resid_final: torch.Tensor | None = None


@contextlib.contextmanager
def intervene(model, name: str, case: dict, rec: Recorder) -> Iterator[None]:
    arch = ARCHS[name]
    spec = next(s for s in SPECS if s.name == name)
    mod = importlib.import_module(f"transformers.models.{spec.module}.modeling_{spec.module}")
    layers = list(get(model, arch.layers))
    layer_of = {id(get(layer, arch.attn)): i for i, layer in enumerate(layers)}
    mode = case["mode"]

    def knocked(attention_mask, heads: int, queries: int, keys: int, dtype):
        """The additive mask plus the float32 minimum at the knocked [head, q, k] (per head)."""
        add = torch.zeros((1, heads, queries, keys), dtype=dtype)
        for hh in case["heads"]:
            for q in case["query_positions"]:
                for k in case["key_positions"]:
                    add[:, hh, q, k] = F32_MIN
        return add if attention_mask is None else attention_mask + add

    def eager(module, query, key, value, attention_mask, *args, **kwargs):
        layer = layer_of[id(module)]
        if mode == "knockout" and layer in case["layers"]:
            attention_mask = knocked(attention_mask, query.shape[1], query.shape[2], key.shape[2], query.dtype)
        if mode == "value_zero" and layer in case["layers"]:
            value = value.clone()
            for kv in case["kv_heads"]:
                value[:, kv, case["positions"], :] = 0.0
        rec.value[layer] = value.detach()[0].clone()
        return orig_eager(module, query, key, value, attention_mask, *args, **kwargs)

    handles = []
    head_dim = model.config.hidden_size // model.config.num_attention_heads
    head_dim = getattr(model.config, "head_dim", None) or head_dim
    if arch.v_proj is None:
        orig_eager = mod.eager_attention_forward
    else:  # MPNet: no eager_attention_forward; the mask is MPNetSelfAttention's 2nd argument, v its v projection's output
        orig_eager = None
        heads = model.config.num_attention_heads

        def mask_pre(module, args, kwargs):
            layer = layer_of[id(module)]
            if mode != "knockout" or layer not in case["layers"]:
                return None
            seq = args[0].shape[1]
            if len(args) > 1:
                return (args[0], knocked(args[1], heads, seq, seq, args[0].dtype), *args[2:]), kwargs
            return args, {**kwargs, "attention_mask": knocked(kwargs.get("attention_mask"), heads, seq, seq, args[0].dtype)}

        def v_out(layer: int):
            def hook(module, args, out):
                if mode == "value_zero" and layer in case["layers"]:
                    out = out.clone()
                    out[:, case["positions"], :] = 0.0  # every head's row: one head per kv head here
                rec.value[layer] = out.detach()[0].view(out.shape[1], heads, head_dim).transpose(0, 1).clone()
                return out

            return hook

        for i, layer in enumerate(layers):
            handles.append(get(layer, arch.attn).register_forward_pre_hook(mask_pre, with_kwargs=True))
            handles.append(get(layer, arch.v_proj).register_forward_hook(v_out(i)))

    def o_pre(layer: int, head_dim: int):
        def hook(module, args):
            (x,) = args
            if mode in ("head_zero", "head_mean") and layer in case["layers"]:
                x = x.clone()
                for hh in case["heads"]:
                    sl = slice(hh * head_dim, (hh + 1) * head_dim)
                    if mode == "head_zero":
                        x[..., sl] = 0.0
                    else:
                        x[..., sl] = x[..., sl].mean(dim=1, keepdim=True)  # over positions (dim 1 of (batch, seq, ·))
            rec.z[layer] = x.detach()[0].clone()
            return (x,)

        return hook

    for i, layer in enumerate(layers):
        handles.append(get(layer, arch.o_proj).register_forward_pre_hook(o_pre(i, head_dim)))
        handles.append(get(layer, arch.o_proj).register_forward_hook(lambda m, a, out, i=i: rec.attn_out.__setitem__(i, out.detach()[0].clone())))
        handles.append(get(layer, arch.ffn_out).register_forward_hook(lambda m, a, out, i=i: rec.ffn_out.__setitem__(i, out.detach()[0].clone())))

        def pre(m, args, kwargs, i=i):
            hs = args[0] if args else kwargs["hidden_states"]
            rec.resid_pre[i] = hs.detach()[0].clone()

        handles.append(layer.register_forward_pre_hook(pre, with_kwargs=True))

    def final(module, args, out) -> None:
        rec.resid_final = (out[0] if isinstance(out, tuple) else out).detach()[0].clone()

    handles.append(layers[-1].register_forward_hook(final))
    if orig_eager is not None:
        mod.eager_attention_forward = eager
    try:
        yield
    finally:
        if orig_eager is not None:
            mod.eager_attention_forward = orig_eager
        for h in handles:
            h.remove()


class Checks:
    def __init__(self, name: str) -> None:
        self.name = name
        self.failed: list[str] = []
        self.lines: list[str] = []

    def close(self, what: str, got, want, tol: float, scaled: bool = False) -> None:
        """max|got - want| <= tol, or with `scaled` <= tol * max(1, max|want|) (float32 rounding
        grows with the values' size: the attention outputs reach ~30)."""
        want = np.asarray(want, np.float64)
        d = float(np.abs(np.asarray(got, np.float64) - want).max()) if np.size(got) else 0.0
        if scaled:
            tol = tol * max(1.0, float(np.abs(want).max()))
        ok = d <= tol
        self.lines.append(f"  {'ok  ' if ok else 'FAIL'} {what}: max|d|={d:.1e} (<= {tol:.1e})")
        if not ok:
            self.failed.append(what)

    def differs(self, what: str, got, want, at_least: float) -> None:
        d = float(np.abs(np.asarray(got, np.float64) - np.asarray(want, np.float64)).max())
        ok = d >= at_least
        self.lines.append(f"  {'ok  ' if ok else 'FAIL'} {what} changed: max|d|={d:.1e} (>= {at_least:g})")
        if not ok:
            self.failed.append(what)

    def true(self, what: str, cond: bool) -> None:
        self.lines.append(f"  {'ok  ' if cond else 'FAIL'} {what}")
        if not cond:
            self.failed.append(what)

    def write(self, path: Path, arrays: dict[str, np.ndarray]) -> int:
        """Print the checks, then write the fixture if they all passed: the number that failed."""
        print(f"\n[{self.name}]")
        print("\n".join(self.lines))
        if self.failed:
            print(f"  {len(self.failed)} check(s) failed: not written", file=sys.stderr)
            return len(self.failed)
        save_npz(path, arrays)
        print(f"  wrote {path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path} ({path.stat().st_size} B)")
        return 0
