"""Record what transformers computes under attention interventions, for attn's `Interventions` tests.

attn's forward pass gets an `Interventions` mechanism (knock out attention edges, zero or
mean-ablate a head's output, zero value vectors, capture per-head writes). Its tests need
numbers made by transformers itself, with the change applied *inside* transformers' eager
attention, not by a second NumPy implementation. This script makes them.

For each model (the tiny random-weight fixtures of MODELS in tests/fixtures/tiny)
it reads input 2 (`input_ids`, and `token_type_ids` for bert) from `ref_2.npz`, loads the base
model class exactly like scripts/make_tiny_models.py (eager attention, float32, eval, CPU) and
runs the cases of `CASES` one forward pass each. The changes are applied by:

- wrapping the modeling module's `eager_attention_forward` (the function the attention module
  looks up at call time when `_attn_implementation == "eager"`): `knockout*` adds the float32
  minimum to the additive attention mask (a per-head copy; BERT's mask is None and becomes
  zeros first) for the chosen (query, key) pairs; `value_zero` zeroes the rows of `value` (the
  kv heads' values, before `repeat_kv`) at the chosen positions;
- a forward pre-hook on the output projection (`o_proj`, BERT's `attention.output.dense`,
  GPT-2's `attn.c_proj`), whose input (seq, heads·head_dim) is TransformerLens' hook_z:
  `head_zero` zeroes a head's slice, `head_mean` replaces it by its mean over positions;
- passive hooks for `capture` (layer inputs, o-proj input/output, feed-forward output).

Writes tests/fixtures/interventions/<model>.npz (see tests/fixtures/interventions/README.md for
every key and shape) and checks, before writing, that `none` equals ref_2.npz within 1e-6, that
every intervention changed what it should and nothing else (earlier layers and untouched heads
and rows bit-identical, knocked-out weights exactly 0, renormalised rows, head and value
changes equal to what the `capture` arrays predict), and that the captured pieces add up
(Σ_h head writes + o-proj bias == attention block output; the layer's residual update).
Exits non-zero if a check fails.

Run in the reference venv, from the repo root::

    .refenv/bin/python scripts/make_intervention_fixtures.py                 # every model of MODELS
    .refenv/bin/python scripts/make_intervention_fixtures.py --only llama

Deterministic: one torch thread, fixed zip timestamps (reference.save_npz), so a re-run with the
same torch/transformers versions gives byte-identical files.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import transformers

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hooks import ARCHS, F32_MIN, Checks, Recorder, get, intervene, resolve  # noqa: E402, F401
from reference import REPO_ROOT, quiet_torch, to_numpy, versions_string  # noqa: E402
from tiny_specs import SPECS  # noqa: E402

TINY = REPO_ROOT / "tests" / "fixtures" / "tiny"
OUT = REPO_ROOT / "tests" / "fixtures" / "interventions"
MODELS = (
    "bert", "roberta", "distilbert", "mpnet", "nomic_bert", "modernbert", "gpt2", "gpt_neox", "gpt_neox-sequential",
    "llama", "llama3rope", "mistral", "qwen2", "qwen3", "phi3", "olmo2", "gemma2", "gemma3", "mixtral", "qwen3_moe",
)
REF_INPUT = 2
# Key positions of the knockouts where keys 1 and 2 would not do: some head of gpt_neox's layer 1
# gives them under 0.01 of its weight from queries 5 and 6 (the knockout would change next to
# nothing), and phi3's and mistral's window of 4 hides them from query 6 (a knocked edge must be one the
# query sees), as does modernbert's two-sided window of layer 1 (|q - k| <= 2) from both queries. In
# roberta, mpnet and nomic_bert some head gives keys 1 and 2 under 0.01 too; there the keys are ones
# every head weighs (encoders: keys after the queries as well).
KNOCKED_KEYS = {
    "gpt_neox": [0, 1], "phi3": [3, 4], "mistral": [3, 4], "modernbert": [4, 5], "roberta": [3, 21], "mpnet": [7, 12], "nomic_bert": [7, 9],
}

# Every case, exactly as saved in the `spec` JSON, except that "all" (heads, kv_heads, layers,
# positions) is written out as the full list for the model and input. Positions are 0-based.
CASES: dict[str, dict] = {
    "none": {"mode": "none"},
    "knockout": {
        "mode": "knockout", "layers": [1], "heads": "all", "query_positions": [5, 6], "key_positions": [1, 2],
        "how": "float32 min added to the additive mask at [head, q, k] for every (q, k) in query_positions x key_positions, before softmax",
    },
    "knockout_heads": {
        "mode": "knockout", "layers": [1], "heads": [0, 2], "query_positions": [5, 6], "key_positions": [1, 2],
        "how": "as knockout, only in the listed heads",
    },
    "head_zero": {
        "mode": "head_zero", "layers": [0], "heads": [1], "positions": "all",
        "how": "the head's slice [h*head_dim:(h+1)*head_dim] of the output projection's input (hook_z) set to 0 at every position",
    },
    "head_mean": {
        "mode": "head_mean", "layers": [0], "heads": [3], "positions": "all",
        "how": "the head's slice of the output projection's input replaced at every position by its mean over all positions (f32 torch mean)",
    },
    "value_zero": {
        "mode": "value_zero", "layers": [1], "heads": "all", "kv_heads": "all", "positions": [2, 4],
        "how": "rows of the value tensor (kv heads, before repeat_kv; after the v bias) at these positions set to 0 before P·V; softmax unaffected",
    },
    "capture": {"mode": "capture", "layers": "all", "heads": "all", "how": "no change; records the arrays capture.*"},
}


def load_model(name: str):
    spec = next(s for s in SPECS if s.name == name)
    cls = getattr(transformers, spec.model_class)
    return cls.from_pretrained(str(TINY / name), attn_implementation="eager", dtype=torch.float32).eval()


@torch.no_grad()
def run(model, name: str, ref: dict, case: dict) -> tuple[dict[str, np.ndarray], Recorder]:
    ids = torch.tensor(ref["input_ids"][None], dtype=torch.long)
    kwargs = dict(input_ids=ids, attention_mask=torch.ones_like(ids), output_attentions=True)
    if "token_type_ids" in ref:
        kwargs["token_type_ids"] = torch.tensor(ref["token_type_ids"][None], dtype=torch.long)
    rec = Recorder()
    with intervene(model, name, case, rec):
        out = model(**kwargs)
    arrays = {
        "attentions": to_numpy(torch.stack([a[0] for a in out.attentions])),
        "last_hidden_state": to_numpy(out.last_hidden_state[0]),
    }
    return arrays, rec


def o_weight(model, name: str, layer: int) -> tuple[np.ndarray, np.ndarray]:
    """W_O as (in = heads·head_dim, out = hidden) in f64, and its bias (zeros if none)."""
    lin = get(get(model, ARCHS[name].layers)[layer], ARCHS[name].o_proj)
    w = lin.weight.detach().double().numpy()
    w = w if ARCHS[name].conv1d else w.T
    b = lin.bias.detach().double().numpy() if getattr(lin, "bias", None) is not None else np.zeros(w.shape[1])
    return w, b


def head_writes(model, name: str, rec: Recorder, layers: int, heads: int, head_dim: int) -> np.ndarray:
    """(layers, heads, seq, hidden): z[:, h] @ W_O[h*D:(h+1)*D, :] in f64, rounded to f32."""
    out = []
    for layer in range(layers):
        w, _ = o_weight(model, name, layer)
        z = rec.z[layer].double().numpy()
        out.append([z[:, h * head_dim:(h + 1) * head_dim] @ w[h * head_dim:(h + 1) * head_dim] for h in range(heads)])
    return np.asarray(out).astype(np.float32)


@torch.no_grad()
def check_residuals(model, name: str, rec: Recorder, lhs: np.ndarray, c: Checks) -> None:
    """The captured pieces rebuild the residual stream with the layer's own norms (`Arch.residual`)."""
    arch = ARCHS[name]
    layers = get(model, arch.layers)
    for i, layer in enumerate(layers):
        r, a, f = rec.resid_pre[i][None], rec.attn_out[i][None], rec.ffn_out[i][None]
        if arch.residual == "post":  # post-LN: N2(ffn + N1(attn + r))
            mid = get(layer, arch.norms[0])(a + r)
            nxt = get(layer, arch.norms[1])(f + mid)
        elif arch.residual == "sandwich":  # norms on both blocks' outputs, inside the residual
            mid = r + get(layer, arch.norms[0])(a)
            nxt = mid + get(layer, arch.norms[1])(f)
        elif arch.residual == "parallel":  # both blocks read r
            nxt = (f + a) + r
        else:  # pre-LN: r + attn + ffn
            nxt = (r + a) + f
        want = rec.resid_pre[i + 1] if i + 1 < len(layers) else rec.resid_final
        c.close(f"capture: layer {i} pieces rebuild the residual leaving the layer", nxt[0].numpy(), want.numpy(), 0.0)
    final = rec.resid_final[None]
    if arch.final_norm is not None:
        final = get(model, arch.final_norm)(final)
    c.close("capture: final norm(resid_final) == last_hidden_state", final[0].numpy(), lhs, 0.0)


def build(name: str) -> tuple[dict[str, np.ndarray], Checks]:
    ref = dict(np.load(TINY / name / f"ref_{REF_INPUT}.npz"))
    model = load_model(name)
    cfg = model.config
    n_layers, heads = cfg.num_hidden_layers, cfg.num_attention_heads
    kv_heads = getattr(cfg, "num_key_value_heads", None) or heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    seq = len(ref["input_ids"])
    causal = next(s for s in SPECS if s.name == name).causal
    cases = {k: resolve(v, heads, kv_heads, n_layers, seq) for k, v in CASES.items()}
    for key in ("knockout", "knockout_heads"):  # where a model's heads barely look at keys 1 and 2
        cases[key]["key_positions"] = KNOCKED_KEYS.get(name, cases[key]["key_positions"])
    c = Checks(name)

    results = {k: run(model, name, ref, case) for k, case in cases.items()}
    base, brec = results["none"]
    cap, crec = results["capture"]

    # none == the committed reference. Not bit for bit: ref_2.npz files were made on CPUs whose
    # torch kernels (ATen/MKL ISA dispatch) round differently; same q/k give P 1 ulp apart, and
    # last_hidden_state (values up to ~7) drifts by a few ulps. Hence the scaled tolerance there.
    c.close("none.attentions == ref_2.attentions", base["attentions"], ref["attentions"], 1e-6)
    c.close("none.last_hidden_state == ref_2.last_hidden_state (x max|value|)", base["last_hidden_state"], ref["last_hidden_state"], 1e-6, scaled=True)
    for key in ("attentions", "last_hidden_state"):
        c.true(f"capture.{key} bit-identical to none (hooks are passive)", np.array_equal(cap[key], base[key]))

    # ---- capture: per-head writes add up
    hw = head_writes(model, name, crec, n_layers, heads, head_dim)
    attn_out = np.stack([to_numpy(crec.attn_out[i]) for i in range(n_layers)])
    for i in range(n_layers):
        _, b = o_weight(model, name, i)
        c.close(f"capture: layer {i} sum_h head_writes + o_proj bias == attn_out", hw[i].astype(np.float64).sum(0) + b, attn_out[i], 1e-6, scaled=True)
    check_residuals(model, name, crec, base["last_hidden_state"], c)

    # ---- knockout / knockout_heads
    for key in ("knockout", "knockout_heads"):
        case, (got, _) = cases[key], results[key]
        ko = case["layers"][0]
        qs, ks = case["query_positions"], case["key_positions"]
        att, a0 = got["attentions"], base["attentions"]
        c.true(f"{key}: layers < {ko} attentions bit-identical", np.array_equal(att[:ko], a0[:ko]))
        c.true(f"{key}: knocked-out weights exactly 0.0", np.all(att[ko][np.ix_(case["heads"], qs, ks)] == 0.0))
        removed = a0[ko][np.ix_(case["heads"], qs, ks)].sum(-1)  # (heads, queries): mass the knockout takes away
        lost = removed.max(1)
        c.true(f"{key}: not vacuous: each knocked head loses >= 0.01 of some knocked row (min per head {lost.min():.3f})", bool(np.all(lost >= 0.01)))
        c.differs(f"{key}: attentions of knocked rows", att[ko][case["heads"]][:, qs], a0[ko][case["heads"]][:, qs], 1e-4)
        other_heads = [h for h in range(heads) if h not in case["heads"]]
        c.true(f"{key}: other heads {other_heads} of layer {ko} bit-identical", np.array_equal(att[ko][other_heads], a0[ko][other_heads]))
        other_rows = [q for q in range(seq) if q not in qs]
        c.true(f"{key}: rows not in {qs} of layer {ko} bit-identical", np.array_equal(att[ko][:, other_rows], a0[ko][:, other_rows]))
        rows = a0[ko][case["heads"]][:, qs].astype(np.float64)  # (h, q, k): none's rows, renormalised without the keys
        rows[:, :, ks] = 0.0
        rows /= rows.sum(-1, keepdims=True)
        c.close(f"{key}: knocked rows == none's rows renormalised without keys {ks}", att[ko][case["heads"]][:, qs], rows, 1e-6)
        c.differs(f"{key}: last_hidden_state", got["last_hidden_state"], base["last_hidden_state"], 1e-4)
        if causal:  # queries before the first knocked row cannot see the change
            first = min(qs)
            same = np.array_equal(got["last_hidden_state"][:first], base["last_hidden_state"][:first])
            c.true(f"{key}: last_hidden_state rows < {first} bit-identical (causal)", same)
            c.differs(f"{key}: last_hidden_state rows {qs}", got["last_hidden_state"][qs], base["last_hidden_state"][qs], 1e-4)

    # ---- head_zero / head_mean
    for key in ("head_zero", "head_mean"):
        case, (got, rec) = cases[key], results[key]
        layer, hh = case["layers"][0], case["heads"][0]
        sl = slice(hh * head_dim, (hh + 1) * head_dim)
        z0, z = crec.z[layer].numpy(), rec.z[layer].numpy()
        want = np.zeros_like(z0[:, sl]) if key == "head_zero" else np.broadcast_to(crec.z[layer][:, sl].mean(0, keepdim=True).numpy(), z0[:, sl].shape)
        c.true(f"{key}: layer {layer} head {hh} z replaced as specified (bit-exact)", np.array_equal(z[:, sl], want))
        keep = np.ones(z0.shape[1], bool)
        keep[sl] = False
        c.true(f"{key}: layer {layer} other heads' z bit-identical", np.array_equal(z[:, keep], z0[:, keep]))
        c.true(f"{key}: attentions of layers <= {layer} bit-identical", np.array_equal(got["attentions"][: layer + 1], base["attentions"][: layer + 1]))
        c.differs(f"{key}: attentions of layer {layer + 1}", got["attentions"][layer + 1], base["attentions"][layer + 1], 1e-4)
        w, _ = o_weight(model, name, layer)
        pred = attn_out[layer] + (want.astype(np.float64) - z0[:, sl]) @ w[sl]  # the head's write swapped
        c.close(f"{key}: attn_out[{layer}] == none's attn_out - head write + new write", to_numpy(rec.attn_out[layer]), pred, 1e-6, scaled=True)
        c.differs(f"{key}: last_hidden_state", got["last_hidden_state"], base["last_hidden_state"], 1e-4)

    # ---- value_zero
    case, (got, rec) = cases["value_zero"], results["value_zero"]
    layer, pos = case["layers"][0], case["positions"]
    c.true("value_zero: all attentions bit-identical (V does not enter the softmax)", np.array_equal(got["attentions"], base["attentions"]))
    v0 = brec.value[layer].double().numpy()  # (kv, seq, D)
    value = rec.value[layer].numpy()
    untouched = np.array_equal(np.delete(value, pos, 1), np.delete(v0.astype(np.float32), pos, 1))
    c.true("value_zero: value rows zeroed exactly, others untouched", np.all(value[:, pos] == 0.0) and untouched)
    group = heads // kv_heads
    p = base["attentions"][layer].astype(np.float64)  # (H, q, k)
    pred = crec.z[layer].double().numpy().reshape(seq, heads, head_dim).copy()
    for h in range(heads):
        pred[:, h] -= p[h][:, pos] @ v0[h // group][pos]  # query head h reads kv head h // group
    z = rec.z[layer].numpy().reshape(seq, heads, head_dim)
    c.close(f"value_zero: layer {layer} z == none's z - P[:, {pos}] @ v[{pos}] (GQA: kv head h // {group})", z, pred, 1e-6, scaled=True)
    c.differs("value_zero: last_hidden_state", got["last_hidden_state"], base["last_hidden_state"], 1e-4)
    if causal:
        first = min(pos)
        same = np.array_equal(got["last_hidden_state"][:first], base["last_hidden_state"][:first])
        c.true(f"value_zero: last_hidden_state rows < {first} bit-identical (causal)", same)

    # ---- arrays
    arrays: dict[str, np.ndarray] = {"input_ids": ref["input_ids"].astype(np.int64)}
    if "token_type_ids" in ref:
        arrays["token_type_ids"] = ref["token_type_ids"].astype(np.int64)
    for key in cases:
        if key == "capture":
            continue
        arrays[f"{key}.attentions"] = results[key][0]["attentions"]
        arrays[f"{key}.last_hidden_state"] = results[key][0]["last_hidden_state"]
    # the values entering P·V under value zeroing, (L, KV, S, D) (MPNet: its v projection's output by head)
    arrays["value_zero.v"] = np.stack([to_numpy(results["value_zero"][1].value[i]) for i in range(n_layers)])
    arrays["capture.resid_pre"] = np.stack([to_numpy(crec.resid_pre[i]) for i in range(n_layers)])
    arrays["capture.z"] = np.stack([to_numpy(crec.z[i]).reshape(seq, heads, head_dim).transpose(1, 0, 2) for i in range(n_layers)])
    arrays["capture.head_writes"] = hw
    arrays["capture.attn_out"] = attn_out
    arrays["capture.ffn_out"] = np.stack([to_numpy(crec.ffn_out[i]) for i in range(n_layers)])
    arrays["capture.resid_final"] = to_numpy(crec.resid_final)
    spec = {
        "model": name,
        "fixture": f"tests/fixtures/tiny/{name}",
        "input": f"ref_{REF_INPUT}.npz input_ids" + (" and token_type_ids" if "token_type_ids" in ref else ""),
        "model_class": next(s.model_class for s in SPECS if s.name == name),
        "attn_implementation": "eager",
        "dtype": "float32",
        "seq": seq, "layers": n_layers, "heads": heads, "kv_heads": kv_heads, "head_dim": head_dim, "hidden": cfg.hidden_size,
        "kv_head_of_query_head": [h // (heads // kv_heads) for h in range(heads)],
        "o_proj": ARCHS[name].o_proj, "o_proj_has_bias": getattr(get(get(model, ARCHS[name].layers)[0], ARCHS[name].o_proj), "bias", None) is not None,
        "ffn_out": ARCHS[name].ffn_out,
        "mask_fill": F32_MIN,
        "cases": cases,
    }
    arrays["spec"] = np.array(json.dumps(spec))
    arrays["versions"] = np.array(versions_string())
    arrays["cpu_capability"] = np.array(torch.backends.cpu.get_cpu_capability())  # kernels differ in the last ulps by ISA
    for k, v in arrays.items():
        if v.dtype.kind == "f":
            assert v.dtype == np.float32, k
    return arrays, c


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", choices=MODELS)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    quiet_torch()
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"versions: {versions_string()}")
    failed = 0
    for name in args.only or MODELS:
        arrays, c = build(name)
        failed += c.write(args.out / f"{name}.npz", arrays)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
