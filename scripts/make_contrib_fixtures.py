"""Record the contribution matrices of `attn contrib` (value zeroing, ALTI, norms) as the
authors' code defines them, computed from transformers' own forward pass, for attn's tests.

The maths re-implements, in torch and float64 (from the float32 tensors transformers computes,
read with hooks), the authors' reference code; fetch it to compare:

- value zeroing: hmohebbi/ValueZeroing `scoring/value_zeroing.py` (the loop `for l, layer_module
  in enumerate(model.bert.encoder.layer)`: the layer module called again on the previous layer's
  original output with the value vectors of token t zeroed in every head, then
  `sklearn.metrics.pairwise.cosine_distances` (1 - cos, clipped to [0, 2]) of each token's new
  output against its original one, `score_matrix / np.sum(score_matrix, axis=-1)`, and
  `compute_joint_attention(score_matrix, res=False)` for the rollout). The value is zeroed in
  the modeling module's `eager_attention_forward` (the kv heads' values, before `repeat_kv`),
  not by a customised BertModel, so the same script covers decoders. One correction: 1 - cos
  is taken in float64 (sklearn works in the input's float32 and loses small distances).
- ALTI on encoders: mt-upc/transformer-contributions `src/contributions.py`,
  `ModelWrapper.get_contributions` (value_layer·dense per head = `transformed_layer`, weighted by
  the attention, summed over heads, `residual` on the diagonal, `l_transform` = LN1's centring
  and γ, × `ln_std_coef`, `resultant` = (Σ_j + L(b_O))·coef + β) and `src/utils_contributions.py`
  `normalize_contributions(scaling='min_sum', resultant_norm=‖y‖₁)`: clip(‖y‖₁ - d, 0) / row sum;
  rollout `compute_joint_attention` (the later layer on the left). Two corrections: the std is
  LN1's own (population variance, eps inside the root; the code uses torch's unbiased `.std()`
  of input + eps), and the L1 distance is plain (`F.pairwise_distance` adds 1e-6 inside).
- ALTI on decoders: mt-upc/logit-explanations `src/contributions.py`,
  `ModelWrapper.get_logit_contributions` (`l_transform` of LN1's input with its own variance,
  `v_j_heads` through W_V, the biases term (b_ln1·W_V + b_V)·W_O weighted by the attention,
  `residual` on the diagonal, `attn_res_output` = Σ_j + b_O checked against LN2's input, and
  `importance_matrix` from the L1 distance), normalised as above. RMSNorm (Llama) is
  linearised like LayerNorm without the centring; a grouped-query head reads its kv head.
- norms: Kobayashi et al. (EMNLP 2020): ‖Σ_h α_ij^h·(v_j^h·W_O^h)‖₂, each row divided by its sum.
- ALTI-Logit (Ferrando et al., ACL 2023), decoders only: mt-upc/logit-explanations
  `src/contributions.py` `get_logit_contributions` (`aff_x_j = biases_term_src + lin_x_j`: the
  attention block's per-source vectors A·(L1(x_j)·W_V + b_ln1·W_V + b_V)·W_O, no b_O;
  `run_final_ln` = `l_transform` with ln_f's γ and the variance of `pre_lnf_states`, the last
  layer's output, at each position, no β; `einsum('tsd,vd->tvs', ·, embed_matrix[token])`),
  then `extract_explanations.py` `track2input_tokens` (layer 0 as it is; layer l's row times
  `contributions_mix_alti[l-1]`, the ALTI rollout C_{l-1}·…·C_0 of `compute_alti`) and the
  sum over layers (`(alti_lg_dict[method][0] - alti_lg_dict[method][1]).sum(0)` for a target
  and a foil). The final RMSNorm (Llama) is linearised as ln_f without the centring. Models
  loaded as causal LMs with the head tied to the embeddings (the tiny files hold no
  lm_head.weight); checked: lm_head(ln_f(last layer's output)) is transformers' logits.

Models: the tiny bert, gpt2, llama, mpnet, nomic_bert, modernbert, phi3, gpt_neox-sequential, mixtral and qwen3_moe of
tests/fixtures/tiny (their input 2, `ref_2.npz`) and the packaged all-MiniLM-L6-v2 (tests/fixtures/minilm/cat.npz's sentence). Writes
tests/fixtures/contrib/<model>.npz: `input_ids`, and per method (`value_zeroing`, `alti`,
`norms`) the matrices (layers, seq, seq) and their rollouts `<method>_rollout` (layers, seq,
seq): row i of C_l·…·C_0; for the decoders `alti_logit_ids` (target = the top prediction at the
last position, foil = the second), `alti_logit_direct` (2, layers, seq): each layer's ∆logit of
target and foil per input position before the rollout, `alti_logit` (2, layers, seq) after it, `alti_logit_heads` (2, layers, heads, seq): the direct
part of each head (logit-explanations' `aff_x_j_h`).
Checks first that each pass reproduces transformers' own outputs.

Run in the reference venv (scripts/refenv.sh), from the repo root::

    .refenv/bin/python scripts/make_contrib_fixtures.py
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import sys
from pathlib import Path

import numpy as np
import torch
import transformers

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference import REPO_ROOT, save_npz, versions_string  # noqa: E402
from tiny_specs import SPECS  # noqa: E402

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


def normalise(c: torch.Tensor) -> torch.Tensor:
    return c / c.sum(dim=-1, keepdim=True)


def joint(mats: torch.Tensor) -> torch.Tensor:
    """compute_joint_attention(res=False): J_0 = C_0, J_l = C_l·J_{l-1}."""
    out = torch.zeros_like(mats)
    out[0] = mats[0]
    for i in range(1, len(mats)):
        out[i] = mats[i] @ out[i - 1]
    return out


def value_zeroing(run: Run, seq: int) -> torch.Tensor:
    mats = []
    for layer in range(len(run.layers)):
        plain = run.rerun(layer, None)
        assert torch.equal(plain, run.outputs[layer])
        c = torch.zeros(seq, seq, dtype=D)
        for t in range(seq):
            x, y = run.rerun(layer, t).to(D), plain.to(D)
            cos = (x * y).sum(-1) / (x.norm(dim=-1) * y.norm(dim=-1))
            c[:, t] = (1.0 - cos).clamp(0.0, 2.0)
        mats.append(normalise(c))
    return torch.stack(mats)


def weights_of(run: Run, layer: int, path: str):
    return get(run.layers[layer], path)


def per_head_vo(run: Run, layer: int, v: torch.Tensor) -> torch.Tensor:
    """v (heads, seq, d) -> (heads, seq, hidden) = v·W_O^h (transformed_layer)."""
    out = weights_of(run, layer, run.lay["out"])
    w = out.weight.detach().to(D)
    w = w if run.lay.get("conv1d") else w.T  # (in = heads·d, hidden)
    heads = v.shape[0]
    return torch.einsum("hsv,hvd->hsd", v, w.view(heads, -1, w.shape[1]))


def out_bias(run: Run, layer: int, hidden: int) -> torch.Tensor:
    b = getattr(weights_of(run, layer, run.lay["out"]), "bias", None)
    return torch.zeros(hidden, dtype=D) if b is None else b.detach().to(D)


def alti_encoder(run: Run, seq: int) -> torch.Tensor:
    mats = []
    for layer in range(len(run.layers)):
        a = run.attn[layer]  # (heads, seq, seq)
        v = run.values[layer].to(D)  # (heads, seq, d): value_layer, b_V inside
        vo = per_head_vo(run, layer, v)
        weighted = torch.einsum("hks,hsd->ksd", a, vo)  # summed_weighted_layer (seq, seq, hidden)
        x = run.hidden[layer].to(D)
        residual = torch.einsum("sk,sd->skd", torch.eye(seq, dtype=D), x)
        z = weighted + residual
        ln = weights_of(run, layer, run.lay["ln1"])
        gamma, beta, eps = ln.weight.detach().to(D), ln.bias.detach().to(D), ln.eps
        centre = torch.eye(len(gamma), dtype=D) - 1.0 / len(gamma)

        def l_transform(t, centre=centre, gamma=gamma):
            return torch.einsum("...e,ef,f->...f", t, centre, gamma)

        pre = z.sum(1) + out_bias(run, layer, x.shape[1])  # LN1's input
        assert torch.allclose(pre, run.ln1_in[layer].to(D), atol=1e-5), float((pre - run.ln1_in[layer].to(D)).abs().max())
        coef = 1.0 / torch.sqrt(pre.var(-1, unbiased=False) + eps)  # correction: LN1's own std
        t = l_transform(z) * coef[:, None, None]
        y = (l_transform(z.sum(1)) + l_transform(out_bias(run, layer, x.shape[1]))) * coef[:, None] + beta
        real = torch.nn.functional.layer_norm(pre, (len(gamma),), gamma, beta, eps)
        assert torch.allclose(y, real, atol=1e-10)
        # the layer's LN1 output as transformers had it: the post-LN state the FFN reads
        mats.append(_alti_scores(t, y))
    return torch.stack(mats)


def _alti_scores(t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    d = (t - y[:, None, :]).abs().sum(-1)  # correction: plain L1, no 1e-6
    return normalise((y.abs().sum(-1)[:, None] - d).clamp(min=0.0))


def linearised_norm(ln, x: torch.Tensor, rms: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The norm before attention as l_transform splits it: (its linear part of x with x's own
    scale, its bias). RMSNorm: no centring, no bias; ModernBERT's layer 0: the identity."""
    if isinstance(ln, torch.nn.Identity):
        return x, torch.zeros(x.shape[1], dtype=D)
    gamma, eps = ln.weight.detach().to(D), getattr(ln, "eps", getattr(ln, "variance_epsilon", None))
    if rms:
        return x * gamma / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps), torch.zeros_like(gamma)
    lx = (x - x.mean(-1, keepdim=True)) * gamma / torch.sqrt(x.var(-1, unbiased=False, keepdim=True) + eps)
    return lx, torch.zeros_like(gamma) if ln.bias is None else ln.bias.detach().to(D)


def alti_decoder(run: Run, seq: int) -> tuple[torch.Tensor, torch.Tensor]:
    """ALTI and norms of a pre-LN decoder, as logit-explanations builds T_i(x_j)."""
    alti, norms = [], []
    cfg = run.model.config
    heads = cfg.num_attention_heads
    for layer in range(len(run.layers)):
        a = run.attn[layer]
        x = run.hidden[layer].to(D)
        ln = weights_of(run, layer, run.lay["ln1"])
        lx, b_ln = linearised_norm(ln, x, run.lay.get("rms"))
        d = cfg.hidden_size // heads if not getattr(cfg, "head_dim", None) else cfg.head_dim
        w_v, b_v = value_projection(run, layer, cfg, heads, d)
        kv = w_v.shape[1] // d
        v = ((lx + b_ln) @ w_v + b_v).view(seq, kv, d).transpose(0, 1)  # (kv, seq, d): L(x_j)·W_V + (b_ln·W_V + b_V)
        assert torch.allclose(v, run.values[layer].to(D), atol=1e-5), float((v - run.values[layer].to(D)).abs().max())
        v = v[[h // (heads // kv) for h in range(heads)]]  # a grouped-query head reads its kv head
        vo = per_head_vo(run, layer, v)
        weighted = torch.einsum("hts,hsd->tsd", a, vo)
        t = weighted + torch.einsum("sk,sd->skd", torch.eye(seq, dtype=D), x)
        y = t.sum(1) + out_bias(run, layer, x.shape[1])
        real = run.ln2_in[layer].to(D)
        assert torch.allclose(y, real, atol=1e-4), float((y - real).abs().max())
        alti.append(_alti_scores(t, y))
        norms.append(normalise(weighted.norm(dim=-1)))
        run.aff_x_j.append(weighted)  # logit-explanations' aff_x_j (t, s, d): no b_O
        run.aff_x_j_h.append(torch.einsum("hts,hsd->htsd", a, vo))  # aff_x_j_heads (h, t, s, d), before the sum over heads
    return torch.stack(alti), torch.stack(norms)


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


def alti_logit(causal, name: str, ids: np.ndarray) -> dict:
    """ALTI-Logit of the top prediction and the second at the last position (see the module)."""
    run = Run(causal.base_model, name, ids)
    seq, pos = len(ids), len(ids) - 1
    alti, _ = alti_decoder(run, seq)
    with torch.no_grad():
        logits = causal(input_ids=torch.tensor(ids[None], dtype=torch.long), use_cache=False).logits[0, pos].to(D)
    tokens = [int(i) for i in torch.argsort(logits, descending=True)[:2]]
    lnf = get(causal.base_model, LAYOUT[name]["final"])
    gamma, eps = lnf.weight.detach().to(D), getattr(lnf, "eps", getattr(lnf, "variance_epsilon", None))
    pre = run.outputs[len(run.layers) - 1].to(D)  # pre_lnf_states: the last layer's output
    if not LAYOUT[name].get("rms"):  # a LayerNorm
        coef = 1.0 / torch.sqrt(pre.var(-1, unbiased=False) + eps)
        centre = torch.eye(len(gamma), dtype=D) - 1.0 / len(gamma)

        def run_final_ln(t):  # l_transform(t, γ, eps, pre_lnf_states): (t, s, d) -> (t, s, d)
            return torch.einsum("...e,ef,f->...f", t, centre, gamma) * coef[:, None, None]

        whole = torch.nn.functional.layer_norm(pre, (len(gamma),), gamma, lnf.bias.detach().to(D), eps)
    else:
        coef = 1.0 / torch.sqrt(pre.pow(2).mean(-1) + eps)

        def run_final_ln(t):
            return t * gamma * coef[:, None, None]

        whole = pre * gamma * coef[:, None]
    embed = causal.lm_head.weight.detach().to(D)
    assert torch.equal(embed, causal.get_input_embeddings().weight.detach().to(D))  # tied
    assert torch.allclose(whole[pos] @ embed.T, logits, atol=1e-4), float((whole[pos] @ embed.T - logits).abs().max())
    embed_matrix = embed[tokens]  # (2, d)
    direct = torch.stack([torch.einsum("tsd,vd->tvs", run_final_ln(a), embed_matrix)[pos] for a in run.aff_x_j], dim=1)  # (2, layers, s)
    mix = joint(alti)  # contributions_mix_alti
    rolled = direct.clone()
    for layer in range(1, len(run.layers)):
        rolled[:, layer] = direct[:, layer] @ mix[layer - 1]
    # logit-explanations' 'aff_x_j_h' (the notebook's "head level logit updates"): each head's
    # part of `direct`, einsum('htsd,vd->htvs') at the predicting position: (2, layers, heads, s)
    heads = torch.stack([torch.einsum("htsd,vd->htvs", run_final_ln(a), embed_matrix)[:, pos] for a in run.aff_x_j_h], dim=0).permute(2, 0, 1, 3)
    assert torch.allclose(heads.sum(2), direct, atol=1e-9)
    return {"alti_logit_ids": np.array(tokens), "alti_logit_direct": direct.numpy(), "alti_logit": rolled.numpy(), "alti_logit_heads": heads.numpy()}


def norms_encoder(run: Run, seq: int) -> torch.Tensor:
    mats = []
    for layer in range(len(run.layers)):
        vo = per_head_vo(run, layer, run.values[layer].to(D))
        mats.append(normalise(torch.einsum("hks,hsd->ksd", run.attn[layer], vo).norm(dim=-1)))
    return torch.stack(mats)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=MODELS, action="append")
    args = ap.parse_args()
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    for name in args.only or MODELS:
        model, ids = load(name)
        run = Run(model, name, ids)
        seq = len(ids)
        vz = value_zeroing(run, seq)
        if LAYOUT[name]["pre_ln"]:
            alti, norms = alti_decoder(run, seq)
        else:
            alti, norms = alti_encoder(run, seq), norms_encoder(run, seq)
        arrays = {"input_ids": ids, "versions": np.array(versions_string())}
        for key, mats in (("value_zeroing", vz), ("alti", alti), ("norms", norms)):
            assert torch.allclose(mats.sum(-1), torch.ones((), dtype=D)), key
            arrays[key] = mats.numpy()
            arrays[f"{key}_rollout"] = joint(mats).numpy()
        if LAYOUT[name]["pre_ln"] and not LAYOUT[name].get("encoder"):
            arrays |= alti_logit(load(name, causal=True)[0], name, ids)
        save_npz(OUT / f"{name}.npz", arrays)
        print(f"{name}: seq {seq}, wrote {OUT / f'{name}.npz'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
