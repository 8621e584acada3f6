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
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from contrib_models import LAYOUT, MODELS, OUT, D, Run, get, load, value_projection, weights_of  # noqa: E402
from reference import save_npz, versions_string  # noqa: E402


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
