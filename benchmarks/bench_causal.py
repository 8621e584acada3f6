"""Causal sweeps: `attn knockout` and `attn ablate` against the same sweeps written with
transformers hooks, on SmolLM2-135M (the packaged Q4_1 GGUF, `-m smollm2`).

A 12-token prompt; every word × every layer knocked out (Geva et al.'s window of 9 layers, the
last position's edges from the word's tokens blocked in every head), and every head ablated
(zero, hook_z at every position). attn runs its library calls (`compute.knockout.knockout`,
`compute.ablate.ablate`); transformers runs the same sweeps through the hooks of
scripts/make_causal_fixtures.py (`Runner`: eager attention, float32, the changes made inside
transformers' attention), imported, not rewritten. Each side in its own process, one thread,
one run (the machine is shared: the load average is printed before and after); loading (and
de-quantizing) the weights is timed apart from the sweeps. Both sides' numbers are compared:
max |Δ| of the knockout's relative changes (p′ − p)/p and of the ablation's Δ log p.

Cost model: transformers runs every changed pass through all L layers; attn keeps the plain
pass's input to every layer and reruns a changed pass from its first changed layer only
(`compute.prediction.Reruns`), so a sweep costs Σ over its passes of (L − first) layer-passes,
not passes × L. The script prints both counts.

    python benchmarks/bench_causal.py

Needs `uv sync --group models` (the GGUF file) and the reference venv ($ATTN_REFENV, else .refenv).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, last_json_line, loadavg, machine_info, md_table, offline_env, refenv_python, run_process  # noqa: E402

PROMPT = "The Eiffel Tower is a famous landmark in the city of"  # 12 tokens, 11 words for SmolLM2
WINDOW = 9

ATTN = f"""
import json, time
import numpy as np
from attn_cli.compute.ablate import ablate
from attn_cli.compute.knockout import knockout
from attn_cli.loading.model import kept, load_model
t0 = time.perf_counter()
model = kept(load_model("smollm2"))
list(model.trace(np.array([1, 2, 3])))  # converts every weight once (kept for the run): the load, not the sweeps
t1 = time.perf_counter()
k = knockout(model, {PROMPT!r}, window={WINDOW})
t2 = time.perf_counter()
a = ablate(model, {PROMPT!r}, target_id=k.target.id, mode="zero")
t3 = time.perf_counter()
print(json.dumps({{
    "load": t1 - t0, "knockout": t2 - t1, "ablate": t3 - t2,
    "ids": k.tokenization.ids.tolist(), "position": k.position, "target": k.target.id,
    "words": [list(s.token_indices) for s in k.sources], "word_texts": [s.text for s in k.sources],
    "layers": int(model.spec.layers), "heads": int(model.spec.heads),
    "knockout_changes": [s.changes.tolist() for s in k.sources], "ablate_changes": a.changes.tolist(),
}}))
"""

TRANSFORMERS = f"""
import json, sys, time
from pathlib import Path
import numpy as np
import torch
torch.set_num_threads(1)
sys.path.insert(0, {str(ROOT / "scripts")!r})
from make_causal_fixtures import Runner, geva_window
from transformers import AutoModelForCausalLM
job = json.loads(sys.argv[1])
path = Path(job["path"])
t0 = time.perf_counter()
model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32, attn_implementation="eager").eval()
r = Runner(model, "llama", job["ids"], job["position"])
base = r.run()[0]
t1 = time.perf_counter()
target = int(np.argmax(base))
p = np.exp(base[target])
L, H = r.layers, r.heads
knocked = [[(np.exp(r.run(r.knockout(geva_window(l, {WINDOW}, L), keys))[0][target]) - p) / p for l in range(L)] for keys in job["words"]]
t2 = time.perf_counter()
ablated = [[r.run(r.ablation(l, h, "zero"))[0][target] - base[target] for h in range(H)] for l in range(L)]
t3 = time.perf_counter()
print(json.dumps({{"load": t1 - t0, "knockout": t2 - t1, "ablate": t3 - t2, "target": target,
                  "knockout_changes": knocked, "ablate_changes": ablated}}))
"""


def layer_passes(layers: int, heads: int, words: int, window: int) -> dict[str, tuple[int, int, int]]:
    """Per sweep: (passes, layer-passes transformers runs, layer-passes attn runs)."""
    firsts = [max(0, layer - window // 2) for layer in range(layers)]  # a knockout window's first layer
    return {
        "knockout": (words * layers, words * layers * layers, words * sum(layers - f for f in firsts)),
        "ablate": (layers * heads, layers * heads * layers, heads * sum(layers - layer for layer in range(layers))),
    }


def main() -> None:
    env = offline_env(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    notes: list[str] = []
    refenv, ref_info = refenv_python(notes)
    if refenv is None:
        sys.exit(notes[0])
    gguf = subprocess.run(
        [sys.executable, "-c", "from attn_cli.loading.packaged import resolve_packaged; print(resolve_packaged('smollm2'))"],
        capture_output=True, text=True, cwd=ROOT, check=True,
    ).stdout.strip().splitlines()[-1]
    load_start = loadavg()
    results = {}
    for name, argv in (("attn", [sys.executable, "-c", ATTN]), ("transformers", None)):
        if argv is None:
            job = {k: results["attn"][k] for k in ("ids", "position", "words")} | {"path": gguf}
            argv = [str(refenv), "-c", TRANSFORMERS, json.dumps(job)]
        run = run_process(argv, env=env, capture=True)
        if run.status:
            sys.exit(f"{name} failed:\n{run.stderr.decode(errors='replace')[-2000:]}")
        results[name] = last_json_line(run.stdout) | {"wall": run.wall, "rss": run.maxrss_mib}
        print(f"{name} done · load {loadavg()}", file=sys.stderr)
    ours, ref = results["attn"], results["transformers"]
    if ours["target"] != ref["target"]:
        sys.exit(f"the sides explain different tokens: attn {ours['target']}, transformers {ref['target']}")
    costs = layer_passes(ours["layers"], ours["heads"], len(ours["words"]), WINDOW)
    rows = []
    for sweep in ("knockout", "ablate"):
        worst = float(np.abs(np.array(ours[f"{sweep}_changes"], np.float64) - np.array(ref[f"{sweep}_changes"], np.float64)).max())
        passes, full, resumed = costs[sweep]
        rows.append([sweep, str(passes), f"{full} / {resumed} ({resumed / full:.2f})", f"{ref[sweep]:.1f}", f"{ours[sweep]:.1f}",
                     f"{ref[sweep] / ours[sweep]:.2f}×", f"{worst:.1e}"])
    both = ("knockout", "ablate")
    rows.append(["both", str(sum(costs[s][0] for s in both)), "", f"{sum(ref[s] for s in both):.1f}", f"{sum(ours[s] for s in both):.1f}",
                 f"{sum(ref[s] for s in both) / sum(ours[s] for s in both):.2f}×", ""])
    print(f"\nSmolLM2-135M-Instruct Q4_1 (GGUF), {len(ours['ids'])} tokens, {len(ours['words'])} words, "
          f"{ours['layers']} layers × {ours['heads']} heads, knockout window {WINDOW}, ablation zero; one thread, one run\n")
    print("\n".join(md_table(["sweep", "passes", "layer-passes transformers / attn", "transformers s", "attn s", "attn faster by", "max |Δ|"], rows)))
    print(f"\nload (+ de-quantize, + plain pass for transformers): attn {ours['load']:.1f} s, transformers {ref['load']:.1f} s; "
          f"process wall: attn {ours['wall']:.1f} s ({ours['rss']:.0f} MiB), transformers {ref['wall']:.1f} s ({ref['rss']:.0f} MiB)\n")
    for name, value in machine_info(ref_info, load_start):
        print(f"- {name}: {value}")


if __name__ == "__main__":
    main()
