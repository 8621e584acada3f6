"""The models make_contrib_fixtures.py reads and how it reads them: where each family keeps its
layers, attention, value and output projections and norms (`LAYOUT`), loading a tiny fixture or
MiniLM (`load`), and one recorded forward pass whose layers can be run again with a value zeroed
(`Run`). Reference venv only (see make_contrib_fixtures.py)."""

from __future__ import annotations

import contextlib
import importlib

import numpy as np
import torch
import transformers
from reference import REPO_ROOT
from tiny_specs import SPECS

TINY = REPO_ROOT / "tests" / "fixtures" / "tiny"
OUT = REPO_ROOT / "tests" / "fixtures" / "contrib"
MODELS = ("bert", "gpt2", "llama", "minilm", "nomic_bert", "phi3", "gpt_neox-sequential", "mixtral", "qwen3_moe", "modernbert", "mpnet")
D = torch.float64


def get(obj, path: str):
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


# Where the pieces live: layers, the module calling eager attention, value / output projection,
# LN1 (encoders: after the residual sum; decoders: before attention), LN2's input owner.
LAYOUT = {
    "bert": dict(module="bert", layers="encoder.layer", attn="attention.self", value="attention.self.value", out="attention.output.dense",
                 ln1="attention.output.LayerNorm", pre_ln=False),
    "gpt2": dict(module="gpt2", layers="h", attn="attn", value=None, out="attn.c_proj", ln1="ln_1", ln2="ln_2", pre_ln=True, conv1d=True,
                 final="ln_f"),
    "llama": dict(module="llama", layers="layers", attn="self_attn", value="self_attn.v_proj", out="self_attn.o_proj",
                  ln1="input_layernorm", ln2="post_attention_layernorm", pre_ln=True, conv1d=False, rms=True, final="norm"),
}
LAYOUT["minilm"] = LAYOUT["bert"]
# Phi-3: Llama's pre-RMSNorm layer with q | k | v fused (`value`: the last kv_heads·d outputs of qkv_proj).
LAYOUT["phi3"] = LAYOUT["llama"] | dict(module="phi3", value=("self_attn.qkv_proj", "last"))
# The mixtures of experts: Llama's attention block (the experts come after LN2, which ALTI leaves out).
LAYOUT["mixtral"] = LAYOUT["llama"] | dict(module="mixtral")
LAYOUT["qwen3_moe"] = LAYOUT["llama"] | dict(module="qwen3_moe")
# GPT-NeoX with the sequential residual (use_parallel_residual false: LN2 reads x + attention, as
# ALTI's decomposition needs; Pythia's parallel layer never forms that sum) and a LayerNorm;
# `value`: the v third of each head's [q|k|v] block of query_key_value.
LAYOUT["gpt_neox-sequential"] = dict(module="gpt_neox", layers="layers", attn="attention", value=("attention.query_key_value", "per_head"),
                                     out="attention.dense", ln1="input_layernorm", ln2="post_attention_layernorm", pre_ln=True,
                                     conv1d=False, final="final_layer_norm")
# ModernBERT: a pre-LN encoder (attn_norm before attention, layer 0's the identity; mlp_norm reads
# x + attention), so the decoders' decomposition applies; no LM head, so no ALTI-Logit.
LAYOUT["modernbert"] = dict(module="modernbert", layers="layers", attn="attn", value=("attn.Wqkv", "last"), out="attn.Wo", ln1="attn_norm",
                            ln2="mlp_norm", pre_ln=True, conv1d=False, encoder=True)
# MPNet: BERT's post-LN layer with a relative position bias on the scores. Its attention is its
# own (no eager_attention_forward): the values are read, and zeroed, at the output of `v`.
LAYOUT["mpnet"] = dict(module="mpnet", layers="encoder.layer", attn="attention.attn", value="attention.attn.v", out="attention.attn.o",
                       ln1="attention.LayerNorm", pre_ln=False, value_hook=True)
# Nomic BERT: BERT's post-LN layer (LN1 after the residual sum) with RoPE on q and k only and no
# biases, so transformer-contributions' encoder form applies as to BERT (b_O = 0).
LAYOUT["nomic_bert"] = dict(module="nomic_bert", layers="layers", attn="self_attn", value="self_attn.v_proj", out="self_attn.o_proj",
                            ln1="post_attention_layernorm", pre_ln=False)


def load(name: str, causal: bool = False):
    if name == "minilm":
        folder = REPO_ROOT / "attn_cli" / "bundled" / "all-MiniLM-L6-v2"
        ids = np.load(REPO_ROOT / "tests" / "fixtures" / "minilm" / "cat.npz")["input_ids"]
        return transformers.BertModel.from_pretrained(str(folder), attn_implementation="eager", dtype=torch.float32).eval(), ids
    spec = next(s for s in SPECS if s.name == name)
    if causal:  # the LM head tied to the embeddings (tests/helpers.py `tied_copy`)
        config = transformers.AutoConfig.from_pretrained(str(TINY / name), tie_word_embeddings=True)
        model = transformers.AutoModelForCausalLM.from_pretrained(str(TINY / name), config=config, attn_implementation="eager", dtype=torch.float32).eval()
        return model, np.load(TINY / name / "ref_2.npz")["input_ids"]
    model = getattr(transformers, spec.model_class).from_pretrained(str(TINY / name), attn_implementation="eager", dtype=torch.float32).eval()
    return model, np.load(TINY / name / "ref_2.npz")["input_ids"]


class Run:
    """One plain forward pass, with each layer's call (args, kwargs), input, attention weights,
    values (kv heads), LN2 input (decoders) and output recorded; and each layer run again alone."""

    def __init__(self, model, name: str, ids: np.ndarray) -> None:
        self.model, self.lay = model, LAYOUT[name]
        self.mod = importlib.import_module(f"transformers.models.{self.lay['module']}.modeling_{self.lay['module']}")
        self.layers = list(get(model, self.lay["layers"]))
        self.calls, self.values, self.ln2_in, self.ln1_in, self.outputs = {}, {}, {}, {}, {}
        self.aff_x_j: list[torch.Tensor] = []
        self.aff_x_j_h: list[torch.Tensor] = []
        self.zero: tuple[int, int] | None = None  # (layer, position) whose values are zeroed
        self.layer_of = {id(get(layer, self.lay["attn"])): i for i, layer in enumerate(self.layers)}
        handles = []
        for i, layer in enumerate(self.layers):
            handles.append(layer.register_forward_pre_hook(lambda m, a, k, i=i: self.calls.__setitem__(i, (a, dict(k))), with_kwargs=True))
            handles.append(layer.register_forward_hook(lambda m, a, out, i=i: self.outputs.__setitem__(i, first(out).detach()[0].clone())))
            if self.lay["pre_ln"]:
                handles.append(get(layer, self.lay["ln2"]).register_forward_pre_hook(lambda m, a, i=i: self.ln2_in.__setitem__(i, a[0].detach()[0].clone())))
            else:  # LN1's input as transformers had it: the encoder decomposition must sum to it
                handles.append(get(layer, self.lay["ln1"]).register_forward_pre_hook(lambda m, a, i=i: self.ln1_in.__setitem__(i, a[0].detach()[0].clone())))
        t = torch.tensor(ids[None], dtype=torch.long)
        with self.patched(), torch.no_grad():
            out = model(input_ids=t, attention_mask=torch.ones_like(t), output_attentions=True, output_hidden_states=True, use_cache=False)
        for h in handles:
            h.remove()
        self.attn = [a[0].to(D) for a in out.attentions]  # (heads, seq, seq)
        self.hidden = [h[0] for h in out.hidden_states]  # layer inputs (and the final normed output)
        for i in range(len(self.layers)):  # the hook's layer input is the hidden state transformers reports
            assert torch.equal(self.calls[i][0][0][0] if self.calls[i][0] else self.calls[i][1]["hidden_states"][0], self.hidden[i])

    @contextlib.contextmanager
    def patched(self):
        if self.lay.get("value_hook"):
            with self.value_hooks():
                yield
            return
        orig = self.mod.eager_attention_forward

        def eager(module, query, key, value, attention_mask, *args, **kwargs):
            layer = self.layer_of[id(module)]
            self.values.setdefault(layer, value.detach()[0].clone())
            if self.zero is not None and self.zero[0] == layer:
                value = value.clone()
                value[:, :, self.zero[1], :] = 0.0  # every (kv) head, before repeat_kv
            return orig(module, query, key, value, attention_mask, *args, **kwargs)

        self.mod.eager_attention_forward = eager
        try:
            yield
        finally:
            self.mod.eager_attention_forward = orig

    @contextlib.contextmanager
    def value_hooks(self):
        """The values (heads, seq, d) at the output of each layer's `value` projection, token
        j's zeroed in every head when asked: what the eager function's patch does elsewhere."""
        heads = self.model.config.num_attention_heads

        def hook(module, args, out, layer):
            self.values.setdefault(layer, out.detach()[0].view(out.shape[1], heads, -1).transpose(0, 1).clone())
            if self.zero is not None and self.zero[0] == layer:
                out = out.clone()
                out[:, self.zero[1], :] = 0.0
            return out

        handles = [get(layer, self.lay["value"]).register_forward_hook(lambda m, a, out, i=i: hook(m, a, out, i)) for i, layer in enumerate(self.layers)]
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    @torch.no_grad()
    def rerun(self, layer: int, position: int | None) -> torch.Tensor:
        """The layer alone on its original input (its recorded call), value j zeroed: (seq, hidden)."""
        args, kwargs = self.calls[layer]
        self.zero = None if position is None else (layer, position)
        with self.patched():
            out = self.layers[layer](*args, **kwargs)
        self.zero = None
        return first(out).detach()[0]


def first(out):
    """A layer's output tensor (transformers returns a tuple from some layers)."""
    return out[0] if isinstance(out, tuple) else out

def weights_of(run: Run, layer: int, path: str):
    return get(run.layers[layer], path)


def value_projection(run: Run, layer: int, cfg, heads: int, d: int) -> tuple[torch.Tensor, torch.Tensor]:
    """W_V (hidden, kv_heads·d) in x·W layout and b_V (kv_heads·d,), zeros where there is none."""
    value = run.lay["value"]
    if value is None:  # GPT-2: the value third of c_attn (Conv1D, (in, 3·hidden))
        c = weights_of(run, layer, "attn.c_attn")
        return c.weight.detach().to(D)[:, -cfg.hidden_size :], c.bias.detach().to(D)[-cfg.hidden_size :]
    lin = weights_of(run, layer, value if isinstance(value, str) else value[0])
    w = lin.weight.detach().to(D)  # (outputs, hidden)
    b = torch.zeros(w.shape[0], dtype=D) if lin.bias is None else lin.bias.detach().to(D)
    if isinstance(value, tuple) and value[1] == "last":  # q | k | v: v is the last kv_heads·d outputs
        kv = getattr(cfg, "num_key_value_heads", heads)
        w, b = w[-kv * d :], b[-kv * d :]
    elif isinstance(value, tuple):  # per_head: [q|k|v] for each head in turn
        rows = torch.cat([torch.arange(h * 3 * d + 2 * d, (h + 1) * 3 * d) for h in range(heads)])
        w, b = w[rows], b[rows]
    return w.T, b
