"""Record what transformers computes for attn's `knockout` and `ablate` sweeps (tests/test_causal.py).

attn's `compute/knockout.py` (attention knockout, Geva et al., "Dissecting Recall of Factual
Associations", EMNLP 2023) and `compute/ablate.py` (head ablation, zero or mean) rerun attn's own
forward pass with `Interventions`. Their tests need the same sweeps made by transformers itself,
with every change applied *inside* transformers' eager attention. This script makes them, with
the hooks of scripts/make_intervention_fixtures.py (`intervene`: the float32 minimum added to the
per-head additive mask for a knockout; a forward pre-hook on the output projection, whose input is
TransformerLens' hook_z, for a head ablation).

Models, each loaded as *ForCausalLM (eager attention, float32, eval, CPU), so there is an LM head:

- `gpt2`, `gemma3`: the tiny random-weight fixtures of tests/fixtures/tiny, copied to a temporary
  folder with `tie_word_embeddings: true` (their files hold no lm_head.weight; tests/test_generate.py
  does the same), texts "The quick brown fox looks at the lazy dog" / "The quick brown fox looks
  at the" (the first 10 tokens of their ref_2 input; gemma3's include <s>), knockout window W = 1
  (2 layers);
- `smollm2`: the SmolLM2-135M-Instruct Q4_1 GGUF that attn ships as `-m smollm2`, through
  transformers' GGUF loader (de-quantized to float32), text "The capital of France is", W = 9.

The token ids and the words (a word's token indices) are attn's own: a first step runs attn's
`tokenize` in the project's virtualenv (--attn-python) and hands them over as JSON; the script
checks that transformers' tokenizer gives the same ids. The explained position is the last token;
the target is transformers' top-1 next token there, p its probability. The same passes also give
every number for the runner-up (the second most likely token, keys `runner_up.*`): the tiny gemma3
(random weights, tied embeddings scaled by √hidden) predicts its own last token at p ≈ 1, so its
top-1 barely moves, and a test needs a target that does.

1. Knockout: for each word and each layer l, the edges from the word's tokens to the last position
   are blocked in every head of the layers l - ⌊W/2⌋ … l + ⌈W/2⌉ - 1 (clipped), written as Geva et
   al.'s notebook writes it: range(max(0, l - W // 2), min(L, l - (-W // 2))). Saved: (p' - p) / p.
2. Head ablation: each head of each layer alone, its hook_z slice zeroed at every position, or
   replaced by its mean over the input's positions. Saved: log p'(target) - log p(target).

Probabilities come from a float64 log-softmax of transformers' float32 logits (as attn's).
Writes tests/fixtures/causal/<model>.npz (keys: tests/fixtures/causal/README.md) after self-checks
(exits non-zero if one fails): no-op hooks and empty knockouts are bit-identical to a plain pass,
the LM head is the tied embeddings and logits == lm_head(final_norm(residual)), blocked weights are
exactly 0 and only where they should be, ablated slices are exactly 0 / the mean.

Run in the reference venv, from the repo root (about 2 minutes of one core: SmolLM2 takes ~700 passes)::

    OMP_NUM_THREADS=1 .refenv/bin/python scripts/make_causal_fixtures.py           # gpt2 gemma3 smollm2
    OMP_NUM_THREADS=1 .refenv/bin/python scripts/make_causal_fixtures.py --only gpt2

Deterministic: one torch thread, fixed zip timestamps (reference.save_npz).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import transformers
from safetensors import safe_open

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hooks import F32_MIN, Checks, Recorder, intervene  # noqa: E402
from reference import REPO_ROOT, quiet_torch, versions_string  # noqa: E402

TINY = REPO_ROOT / "tests" / "fixtures" / "tiny"
OUT = REPO_ROOT / "tests" / "fixtures" / "causal"
SMOL_TEXT = "The capital of France is"


@dataclass(frozen=True)
class Case:
    source: str  # a tiny fixture folder name, or "packaged:<name>" for a model attn ships
    text: str
    window: int
    module: str  # transformers' modeling module, the key of make_intervention_fixtures' ARCHS


CASES = {
    # the first 10 tokens of ref_2.npz's input_ids (gemma3's include its <s>)
    "gpt2": Case("gpt2", "The quick brown fox looks at the lazy dog", 1, "gpt2"),
    "gemma3": Case("gemma3", "The quick brown fox looks at the", 1, "gemma3"),
    "smollm2": Case("packaged:smollm2", SMOL_TEXT, 9, "llama"),
}

# Run by the project's python: attn's tokenization, words and explained position (as knockout() has them).
ATTN_SIDE = r"""
import json, sys
from attn_cli.compute.prediction import explained_position
from attn_cli.loading.model import load_model
from attn_cli.loading.packaged import resolve_packaged
from attn_cli.loading.tokenizer import tokenize
out = {}
for name, source, text in json.loads(sys.argv[1]):
    path = resolve_packaged(source.removeprefix("packaged:")) if source.startswith("packaged:") else source
    model = load_model(path)
    tok = tokenize(model.tokenizer, text, max_tokens=model.spec.max_positions)
    pos = explained_position(tok, None, None)
    words = [{"text": w.text, "token_indices": [i for i in w.token_indices if i <= pos]} for w in tok.words if w.token_indices[0] <= pos]
    special = [t.index for t in tok.tokens if t.special or t.word is None]  # special, or whitespace alone: no word's
    out[name] = {"path": str(path), "ids": tok.ids.tolist(), "position": pos, "words": words, "special": special}
print(json.dumps(out))
"""


def attn_side(names: list[str], folders: dict[str, Path], python: Path) -> dict:
    jobs = [(n, str(folders[n]) if n in folders else CASES[n].source, CASES[n].text) for n in names]
    done = subprocess.run([str(python), "-c", ATTN_SIDE, json.dumps(jobs)], cwd=REPO_ROOT, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def tied_copy(name: str, into: Path) -> Path:
    """The tiny fixture with its LM head tied to the embeddings (its file holds no lm_head.weight)."""
    target = into / name
    shutil.copytree(TINY / name, target)
    config = json.loads((target / "config.json").read_text())
    (target / "config.json").write_text(json.dumps(config | {"tie_word_embeddings": True}))
    return target


def geva_window(layer: int, window: int, layers: int) -> list[int]:
    """The layers blocked around `layer`, as Geva et al.'s notebook writes it."""
    return list(range(max(0, layer - window // 2), min(layers, layer - (-window // 2))))


class Runner:
    """One model under transformers: its plain pass, and passes with one `intervene` case."""

    def __init__(self, model, module: str, ids: list[int], position: int) -> None:
        self.model, self.base, self.module, self.position = model, model.base_model, module, position
        self.ids = torch.tensor([ids], dtype=torch.long)
        cfg = model.config
        self.layers, self.heads = cfg.num_hidden_layers, cfg.num_attention_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.heads

    @torch.no_grad()
    def run(self, case: dict | None = None, attentions: bool = False) -> tuple[np.ndarray, Recorder, object]:
        """Log p of the next token at the explained position (float64, vocab), the recorder, the output."""
        rec = Recorder()
        with intervene(self.base, self.module, case or {"mode": "none"}, rec):
            out = self.model(input_ids=self.ids, attention_mask=torch.ones_like(self.ids), output_attentions=attentions)
        logits = out.logits[0, self.position].double()
        return torch.log_softmax(logits, dim=-1).numpy(), rec, out

    def knockout(self, layers: list[int], keys: list[int]) -> dict:
        return {"mode": "knockout", "layers": layers, "heads": list(range(self.heads)), "query_positions": [self.position], "key_positions": keys}

    def ablation(self, layer: int, head: int, mode: str) -> dict:
        return {"mode": f"head_{mode}", "layers": [layer], "heads": [head]}


def check_head(r: Runner, c: Checks, model, plain, rec: Recorder, tied_to: np.ndarray | None) -> None:
    """The LM head is the tied embeddings, and transformers' logits are lm_head(final_norm(residual))."""
    head = model.get_output_embeddings().weight
    c.true("lm_head.weight is the input embeddings (tied)", head.data_ptr() == model.get_input_embeddings().weight.data_ptr())
    if tied_to is not None:
        c.true("the tied LM head equals the file's embeddings bit for bit", np.array_equal(head.detach().numpy(), tied_to))
    norm = getattr(r.base, "ln_f", None) or r.base.norm
    with torch.no_grad():
        logits = norm(rec.resid_final[None])[0, r.position] @ head.T
        cap = getattr(model.config, "final_logit_softcapping", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
    want = plain.logits[0, r.position].numpy()
    c.close("logits == lm_head(final_norm(last layer's residual)), last position (x max|logit|)", logits.numpy(), want, 1e-6, scaled=True)


def check_knockout(r: Runner, c: Checks, plain_attn, keys: list[int], layers: list[int]) -> None:
    """One knockout with the attention weights: blocked edges weigh exactly 0 in every head of the
    window, the rest of the row renormalises, everything else is untouched."""
    _, _, out = r.run(r.knockout(layers, keys), attentions=True)
    got = [a[0].double().numpy() for a in out.attentions]
    want = [a[0].double().numpy() for a in plain_attn]
    q = r.position
    for layer in range(r.layers):
        if layer < layers[0]:
            c.true(f"knockout {keys} in {layers}: layer {layer} (before the window) bit-identical", np.array_equal(got[layer], want[layer]))
        elif layer in layers:
            c.true(f"knockout {keys}: layer {layer} row {q} blocked weights exactly 0, every head", np.all(got[layer][:, q, keys] == 0.0))
            if layer == layers[0]:
                others = [i for i in range(got[layer].shape[1]) if i != q]
                c.true(f"knockout: layer {layer} rows other than {q} bit-identical", np.array_equal(got[layer][:, others], want[layer][:, others]))
                renorm = want[layer][:, q].copy()
                renorm[:, keys] = 0.0
                renorm /= renorm.sum(-1, keepdims=True)
                c.close(f"knockout: layer {layer} row {q} == plain row without {keys}, renormalised", got[layer][:, q], renorm, 1e-6)
                c.differs(f"knockout: layer {layer} row {q}", got[layer][:, q], want[layer][:, q], 1e-3)


def check_ablation(r: Runner, c: Checks, plain_rec: Recorder, layer: int, head: int, mode: str) -> None:
    _, rec, _ = r.run(r.ablation(layer, head, mode))
    d = r.head_dim
    z, z0 = rec.z[layer].numpy(), plain_rec.z[layer].numpy()
    mine = slice(head * d, (head + 1) * d)
    want = np.zeros_like(z0[:, mine]) if mode == "zero" else np.broadcast_to(torch.from_numpy(z0[:, mine]).mean(0, keepdim=True).numpy(), z0[:, mine].shape)
    c.true(f"head_{mode} L{layer}H{head}: the head's hook_z slice is exactly the {mode} at every position", np.array_equal(z[:, mine], want))
    rest = np.arange(head * d, (head + 1) * d)
    c.true(f"head_{mode} L{layer}H{head}: the other heads' slices bit-identical", np.array_equal(np.delete(z, rest, 1), np.delete(z0, rest, 1)))
    for earlier in range(layer):
        c.true(f"head_{mode} L{layer}H{head}: layer {earlier}'s hook_z bit-identical", np.array_equal(rec.z[earlier].numpy(), plain_rec.z[earlier].numpy()))


def load(name: str, info: dict, folder: Path | None):
    kwargs = dict(attn_implementation="eager", dtype=torch.float32)
    if folder is not None:
        model, loading = transformers.AutoModelForCausalLM.from_pretrained(str(folder), output_loading_info=True, **kwargs)
        with safe_open(str(folder / "model.safetensors"), "pt") as f:
            key = next(k for k in f.keys() if k.endswith(("wte.weight", "embed_tokens.weight")))
            embeddings = f.get_tensor(key).numpy()
        tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"))
    else:
        path = Path(info["path"])
        model, loading = transformers.AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, output_loading_info=True, **kwargs)
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        embeddings = None
    return model.eval(), loading, tokenizer, embeddings


def build(name: str, info: dict, folder: Path | None) -> tuple[dict[str, np.ndarray], Checks]:
    case = CASES[name]
    model, loading, tokenizer, embeddings = load(name, info, folder)
    c = Checks(name)
    c.true(f"{type(model).__name__}: no missing or unexpected weights ({loading['missing_keys'] or ''}{loading['unexpected_keys'] or ''})",
           not loading["missing_keys"] and not loading["unexpected_keys"])
    ids, position, words = info["ids"], info["position"], info["words"]
    c.true(f"transformers' tokenizer gives attn's ids {ids}", tokenizer(case.text)["input_ids"] == ids)
    c.true("the explained position is the last token", position == len(ids) - 1)
    flat, plain_tokens = [i for w in words for i in w["token_indices"]], [i for i in range(len(ids)) if i not in info["special"]]
    c.true(f"attn's words cover every token but the special and whitespace ones {info['special']} once, in order", flat == plain_tokens)
    r = Runner(model, case.module, ids, position)
    L, H, W = r.layers, r.heads, case.window

    # The plain pass, with and without the (passive) hooks.
    with torch.no_grad():
        plain = model(input_ids=r.ids, attention_mask=torch.ones_like(r.ids), output_attentions=True)
    base, rec0, hooked = r.run()
    c.true("the hooked pass without a change is bit-identical to a plain pass (logits)", torch.equal(hooked.logits, plain.logits))
    check_head(r, c, model, plain, rec0, embeddings)
    order = np.argsort(-base, kind="stable")
    targets = {"": int(order[0]), "runner_up.": int(order[1])}  # the same passes give both
    chosen = np.array(list(targets.values()))
    lp0 = base[chosen]

    # Knockout sweep: log p of both targets, (words, layers, 2).
    for layer in range(L):
        c.true(f"W={W}: layer {layer}'s window {geva_window(layer, W, L)} is l-⌊W/2⌋ … l+⌈W/2⌉-1 clipped",
               geva_window(layer, W, L) == [i for i in range(layer - W // 2, layer + (W + 1) // 2) if 0 <= i < L])
    keys0 = words[0]["token_indices"]
    nothing = {"no layer": r.knockout([], keys0), "no key": r.knockout(list(range(L)), [])}
    for what, empty in nothing.items():
        c.true(f"a knockout of {what} changes nothing (log p bit-identical)", np.array_equal(r.run(empty)[0], base))
    knocked = np.empty((len(words), L, 2), dtype=np.float64)
    for w, word in enumerate(words):
        for layer in range(L):
            knocked[w, layer] = r.run(r.knockout(geva_window(layer, W, L), word["token_indices"]))[0][chosen]
    check_knockout(r, c, plain.attentions, words[-2]["token_indices"], geva_window(L // 2, W, L))

    # Head ablation sweeps: log p of both targets, (layers, heads, 2).
    ablated = {}
    for mode in ("zero", "mean"):
        ablated[mode] = np.empty((L, H, 2), dtype=np.float64)
        for layer in range(L):
            for head in range(H):
                ablated[mode][layer, head] = r.run(r.ablation(layer, head, mode))[0][chosen]
        check_ablation(r, c, rec0, L - 1, H - 1, mode)
        check_ablation(r, c, rec0, 0, 0, mode)

    per_target: dict[str, np.ndarray] = {}
    for t, (prefix, target) in enumerate(targets.items()):
        p = float(np.exp(lp0[t]))
        changes = (np.exp(knocked[..., t]) - p) / p
        zero, mean = ablated["zero"][..., t] - lp0[t], ablated["mean"][..., t] - lp0[t]
        per_target |= {
            f"{prefix}target": np.int64(target), f"{prefix}target_text": np.array(tokenizer.decode([target])),
            f"{prefix}p": np.float64(p), f"{prefix}logprob": np.float64(lp0[t]),
            f"{prefix}knockout.changes": changes.astype(np.float32),
            f"{prefix}ablate.zero": zero.astype(np.float32), f"{prefix}ablate.mean": mean.astype(np.float32),
        }
        c.lines.append(f"  {prefix or 'top-1 '}target {target} {tokenizer.decode([target])!r} p={p:.8g}: "
                       f"knockout change in [{changes.min():.3g}, {changes.max():.3g}], "
                       f"ablate Δ log p zero [{zero.min():.3g}, {zero.max():.3g}], mean [{mean.min():.3g}, {mean.max():.3g}]")
    c.true("the runner-up's knockout sweep moves it (max |change| > 1e-2)", float(np.abs(per_target["runner_up.knockout.changes"]).max()) > 1e-2)
    for mode in ("zero", "mean"):
        c.true(f"ablate {mode}: every head changes the runner-up's log p (min |Δ| > 0)", float(np.abs(per_target[f"runner_up.ablate.{mode}"]).min()) > 0.0)

    spec = {
        "model": name,
        "source": f"tests/fixtures/tiny/{name} with tie_word_embeddings=true" if folder else Path(info["path"]).name,
        "model_class": type(model).__name__, "attn_implementation": "eager", "dtype": "float32",
        "layers": L, "heads": H, "head_dim": r.head_dim, "kv_heads": getattr(model.config, "num_key_value_heads", None) or H,
        "window": W, "windows": [geva_window(layer, W, L) for layer in range(L)],
        "knockout": "the float32 minimum added to the additive mask at [every head, last position, each key of the word] in each layer of the window",
        "ablate": "the head's hook_z slice (output projection input) zeroed, or replaced by its f32 mean over all positions, in one layer",
        "probability": "exp of a float64 log_softmax of transformers' float32 logits at the last position",
    }
    arrays = {
        "text": np.array(case.text),
        "input_ids": np.array(ids, dtype=np.int64),
        "words": np.array(json.dumps([w["token_indices"] for w in words])),
        "word_texts": np.array(json.dumps([w["text"] for w in words])),
        "position": np.int64(position),
        "window": np.int64(W),
        **per_target,
        "spec": np.array(json.dumps(spec)),
        "versions": np.array(versions_string()),
        "cpu_capability": np.array(torch.backends.cpu.get_cpu_capability()),
    }
    return arrays, c


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", choices=list(CASES))
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--attn-python", type=Path, default=REPO_ROOT / ".venv" / "bin" / "python", help="the project's python (attn's tokenizer)")
    args = ap.parse_args()
    quiet_torch()
    args.out.mkdir(parents=True, exist_ok=True)
    names = args.only or list(CASES)
    print(f"versions: {versions_string()}; blocked scores get {F32_MIN:g} added")
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        folders = {n: tied_copy(CASES[n].source, Path(tmp)) for n in names if not CASES[n].source.startswith("packaged:")}
        infos = attn_side(names, folders, args.attn_python)
        for name in names:
            arrays, c = build(name, infos[name], folders.get(name))
            failed += c.write(args.out / f"{name}.npz", arrays)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
