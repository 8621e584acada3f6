"""Contributions and routes: time and peak RSS of `attn contrib` and `attn routes` against the
reference implementations the tests check them with, on the same inputs, one run each.

- contrib: ALTI on all-MiniLM-L6-v2 at 512 tokens (scale_long512's text). attn: the CLI
  (`attn contrib - -i 256 --json`: the query's row of every layer; with `--rollout`: every row
  of every layer, which the rollout needs). Reference: the ALTI of mt-upc/transformer-contributions
  as scripts/make_contrib_fixtures.py computes it (`alti_encoder`: every row of every layer, in
  float64, its (seq, seq, hidden) T tensor per layer, as the authors' code builds it) on
  transformers' pass, in the reference venv. Target: attn under 200 MiB.
- routes: SmolLM2-135M (`-m smollm2`, the Q4_1 GGUF). attn: `attn routes - --json` at
  --threshold 0.04 on 1,000 tokens (target: under 1 GiB peak RSS), and on SHORT tokens.
  Reference: facebookresearch/llm-transparency-tool's `build_full_graph` +
  `build_paths_to_predictions` (float32, as the tool runs) on transformers' pass
  (scripts/make_routes_fixtures.py's adapter), on the SHORT tokens only: its `decomposed_attn`
  is a positions × positions × heads × d_model tensor per layer, 20.7 GB in float32 at 1,000
  tokens, which this machine (shared) cannot hold; its size at 1,000 tokens is printed, not run.
  Needs the venv of scripts/routes_refenv.sh (.routes-refenv, or $ATTN_ROUTES_REFENV) and --tool PATH.

    python benchmarks/bench_contrib.py [--tool PATH/llm-transparency-tool]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, find_attn, last_json_line, loadavg, machine_info, md_table, offline_env, refenv_python, run_process  # noqa: E402
from scale_long512 import LONG_TEXT, long_text  # noqa: E402

SHORT = 100  # tokens the tool's graph can be built on here
LONG = 1000

ALTI_REF = """
import json, sys, time
import numpy as np, torch
torch.set_num_threads(1)
sys.path.insert(0, {scripts!r})
from make_contrib_fixtures import Run, alti_encoder, load
ids = np.array(json.loads(sys.argv[1]))
t0 = time.perf_counter()
model, _ = load("minilm")
run = Run(model, "minilm", ids)
alti = alti_encoder(run, len(ids))
print(json.dumps({{"seconds": time.perf_counter() - t0, "row": alti[:, 256].tolist()}}))
"""

ROUTES_REF = """
import importlib, json, sys, time
from pathlib import Path
import numpy as np, torch, transformers
torch.set_num_threads(1)
sys.path.insert(0, {scripts!r}); sys.path.insert(0, {tool!r})
import make_routes_fixtures as m
torch.nn.functional.pairwise_distance = m.plain_l1
contributions = importlib.import_module("llm_transparency_tool.routes.contributions")
contributions.apply_threshold_and_renormalize = m.corrected_renormalise(contributions.apply_threshold_and_renormalize)
graph = importlib.import_module("llm_transparency_tool.routes.graph")
m.Adapter.residual_in = lambda self, l: self.rec.resid_pre[l][None]  # float32, as the tool runs
m.Adapter.residual_after_attn = lambda self, l: (self.rec.resid_pre[l] + self.rec.attn_out[l])[None]
m.Adapter.residual_out = lambda self, l: (self.rec.resid_final if l + 1 not in self.rec.resid_pre else self.rec.resid_pre[l + 1])[None]
m.Adapter.ffn_out = lambda self, l: self.rec.ffn_out[l][None]
def decomposed(self, batch_i, l):  # the tool's two einsums in float32 (SmolLM2 has no b_V)
    v = self.rec.value[l].transpose(0, 1).repeat_interleave(self.heads // self.kv_heads, dim=-2)
    z = torch.einsum("khd,hqk->qkhd", v, self.patterns[l])
    return torch.einsum("qkhd,hdm->qkhm", z, self.layers[l].self_attn.o_proj.weight.T.reshape(self.heads, self.head_dim, self.hidden))
m.Adapter.decomposed_attn = decomposed
ids = np.array(json.loads(sys.argv[1])); path = Path(sys.argv[2])
t0 = time.perf_counter()
model = transformers.AutoModel.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32, attn_implementation="eager").eval()
t1 = time.perf_counter()
llm = m.Adapter(model, "llama", ids)
full = graph.build_full_graph(llm, 0, 0.04)
(tree,) = graph.build_paths_to_predictions(full, llm.n_layers, len(ids), [len(ids) - 1], 0.04)
print(json.dumps({{"load": t1 - t0, "seconds": time.perf_counter() - t1, "edges": tree.number_of_edges()}}))
"""

ATTN_ROUTES = """
import json, sys, time
import numpy as np
from attn_cli.compute.routes import route_edges
from attn_cli.loading.model import load_model
ids = np.array(json.loads(sys.argv[1]))
t0 = time.perf_counter()
model = load_model("smollm2")
t1 = time.perf_counter()
edges = route_edges(model, ids, len(ids) - 1, 0.04)
print(json.dumps({{"load": t1 - t0, "seconds": time.perf_counter() - t1, "edges": len(edges)}}))
"""


def smol_ids(n: int) -> list[int]:
    from attn_cli.loading.model import load_model

    model = load_model("smollm2")
    ids = []
    while len(ids) < n:
        ids += model.tokenizer.encode(LONG_TEXT).ids
    return ids[:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tool", type=Path, help="a checkout of facebookresearch/llm-transparency-tool (for the routes reference)")
    ap.add_argument("--only", choices=("contrib", "routes"), help="run one half")
    args = ap.parse_args()
    notes: list[str] = []
    refenv, ref_info = refenv_python(notes)
    env = offline_env(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", ATTN_THREADS="1")
    load_start = loadavg()
    attn = str(find_attn())
    rows, measured = [], []
    text, n = long_text(512)
    if args.only == "routes":
        text = ""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write(text)
    try:
        if args.only != "routes":
            for label, extra in (("contrib ALTI, query row", []), ("contrib ALTI --rollout, every row", ["--rollout"])):
                run = run_process([attn, "contrib", "-", "-i", "256", "--json", *extra], env=env, capture=True, stdin=f.name)
                if run.status:
                    sys.exit(run.stderr.decode(errors="replace")[-2000:])
                doc = json.loads(run.stdout)
                rows.append([f"{label}, MiniLM, {n} tokens", f"{run.wall:.1f} s", f"{run.maxrss_mib:.0f} MiB", "", "", "", "< 200 MiB"])
                measured.append((run.wall, run.maxrss_mib))
                ids = [t["id"] for t in doc["tokens"]]
            if refenv is not None:
                ref = run_process([str(refenv), "-c", ALTI_REF.format(scripts=str(ROOT / "scripts")), json.dumps(ids)], env=env, capture=True,
                                  timeout=3600, min_available_mib=2048)
                if ref.status:
                    notes.append(f"ALTI reference failed: {(ref.stopped or ref.stderr.decode(errors='replace')[-500:])}")
                else:
                    got = last_json_line(ref.stdout)
                    worst = max(abs(a - b) for a, b in zip(got["row"][-1], doc["layers"][-1]["contributions"], strict=True))
                    for row, (wall, rss) in zip(rows, measured, strict=True):
                        row[3:6] = [f"{ref.wall:.1f} s", f"{ref.maxrss_mib:.0f} MiB", f"{ref.wall / wall:.1f}× / {ref.maxrss_mib / rss:.1f}×"]
                    notes.append(f"ALTI: attn's last-layer row of token 256 against the reference's: max |Δ| {worst:.1e}")
    finally:
        os.unlink(f.name)
    routes_env = Path(os.environ.get("ATTN_ROUTES_REFENV", str(ROOT / ".routes-refenv"))) / "bin" / "python"
    from attn_cli.loading.model import load_model

    gguf = load_model("smollm2").path
    for size in () if args.only == "contrib" else (SHORT, LONG):
        ids = smol_ids(size)
        run = run_process([sys.executable, "-c", ATTN_ROUTES.format(), json.dumps(ids)], env=env, capture=True)
        if run.status:
            sys.exit(run.stderr.decode(errors="replace")[-2000:])
        ours = last_json_line(run.stdout)
        row = [f"routes, SmolLM2, {size} tokens ({ours['edges']} edges)", f"{run.wall:.1f} s", f"{run.maxrss_mib:.0f} MiB", "", "", "", "< 1 GiB"]
        if size == SHORT and args.tool is not None and routes_env.exists():
            ref = run_process([str(routes_env), "-c", ROUTES_REF.format(scripts=str(ROOT / "scripts"), tool=str(args.tool)), json.dumps(ids), str(gguf)],
                              env=env, capture=True, timeout=3600, min_available_mib=2048)
            if ref.status:
                notes.append(f"routes reference failed: {(ref.stopped or ref.stderr.decode(errors='replace')[-500:])}")
            else:
                theirs = last_json_line(ref.stdout)
                row[3:6] = [f"{ref.wall:.1f} s", f"{ref.maxrss_mib:.0f} MiB", f"{ref.wall / run.wall:.1f}× / {ref.maxrss_mib / run.maxrss_mib:.1f}×"]
                notes.append(f"routes at {size} tokens: attn {ours['edges']} edges (self-edges and residuals apart), the tool's paths {theirs['edges']} "
                             f"(merged, ffn as two); compute alone: attn {ours['seconds']:.1f} s, the tool {theirs['seconds']:.1f} s")
        elif size == SHORT:
            notes.append("routes reference skipped: give --tool PATH and a venv at $ATTN_ROUTES_REFENV")
        rows.append(row)
    if args.only != "contrib":
        notes.append(f"the tool's decomposed_attn at {LONG} tokens: {LONG * LONG * 9 * 576 * 4 / 1e9:.1f} GB per layer in float32 (not run)")
    header = ["run", "attn wall", "attn peak RSS", "reference wall", "reference peak RSS", "reference / attn (time / RSS)", "target"]
    print("\n" + "\n".join(md_table(header, rows)) + "\n")
    for note in notes:
        print(f"- {note}")
    for name, value in machine_info(ref_info, load_start):
        print(f"- {name}: {value}")


if __name__ == "__main__":
    main()
