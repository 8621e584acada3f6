"""cold: `attn inspect` from a cold start, whole processes, against the import floor and transformers (see bench.py).

Every run is a fresh process, so each pays interpreter start-up, imports, opening the model, the
forward pass and the output. The page cache is warm after the warm-up, as it is for anyone
running attn twice.

  attn         <venv>/bin/attn inspect SENTENCE --query making      (stdout -> /dev/null, Rich tables)
  attn --json  the same with --json
  imports      <venv>/bin/python -c "import numpy, tokenizers, rich, typer"   (the floor)
  transformers import transformers, AutoTokenizer + AutoModel(eager) from the bundled model
               folder, one forward with output_attentions=True, print the last layer's row of
               "making" in every head (in the reference env)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BUNDLED_MODEL, find_attn, loadavg, md_table, offline_env, plain_table, quartiles  # noqa: E402
from _scale import Proc, Section, interleave, log, max_abs_diff, med  # noqa: E402

SENTENCE = "The Transformer is making it possible to understand language."
QUERY = "making"
QUERY_INDEX = 5  # [CLS] the transform ##er is making …
FLOOR = "import numpy, tokenizers, rich, typer"

TARGET_VS_FLOOR = 1.2
TARGET_JSON_VS_FLOOR = 1.1
TARGET_VS_TRANSFORMERS = 0.035
TARGET_RSS_MIB = 100.0

# What a transformers user would write to get the same answer. The model folder is found without
# importing its package (which would import sentence-transformers, absent from the reference env).
TRANSFORMERS_SCRIPT = f"""
import json, os
import torch
from transformers import AutoModel, AutoTokenizer

path = "@BUNDLED@"
tokenizer = AutoTokenizer.from_pretrained(path)
model = AutoModel.from_pretrained(path, attn_implementation="eager")
model.eval()
inputs = tokenizer({SENTENCE!r}, return_tensors="pt")
with torch.no_grad():
    out = model(**inputs, output_attentions=True)
tokens = tokenizer.convert_ids_to_tokens(inputs["input_ids"][0])
row = out.attentions[-1][0, :, {QUERY_INDEX}, :]  # (heads, seq): last layer, query "making"
print(json.dumps({{"token": tokens[{QUERY_INDEX}], "rows": row.tolist()}}))
""".replace("@BUNDLED@", str(BUNDLED_MODEL))


def _same_answer(attn_json: bytes, reference: bytes) -> str:
    try:
        layer = json.loads(attn_json)["layers"][-1]
        ours = [h["weights"] for h in layer["heads"] if h["head"] != "mean"]
        ref = json.loads(reference.decode().strip().splitlines()[-1])
        return f"same answer: attn's last-layer row of {QUERY!r} (all {len(ours)} heads) matches transformers' within {max_abs_diff(ours, ref['rows']):.1e}"
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        return f"could not compare attn's answer with transformers': {exc!r}"


def bench_cold(args, python_ref: Path | None, workdir: Path) -> Section:
    sec = Section("cold", "cold: `attn inspect` from a cold start, whole processes")
    attn = str(find_attn())
    inspect = [attn, "inspect", SENTENCE, "--query", QUERY]
    procs = [
        Proc("attn", "attn inspect", inspect),
        Proc("attn_json", "attn inspect --json", inspect + ["--json"]),
        Proc("imports", "imports (the floor)", [sys.executable, "-c", FLOOR]),
    ]
    if python_ref is not None:
        procs.append(Proc("transformers", "transformers", [str(python_ref), "-c", TRANSFORMERS_SCRIPT], offline_env()))
    by = {p.key: p for p in procs}
    load = loadavg()
    log(f"cold: {len(procs)} commands × ({args.cold_warmup} warm-up + {args.cold_runs} runs), interleaved")
    # transformers takes ~5 s a run: it gets fewer runs, interleaved with the first rounds.
    interleave(procs, args.cold_runs, args.cold_warmup, "cold", rounds_of={"transformers": args.cold_ref_runs})

    rows = []
    for p in procs:
        walls = [r.wall * 1000 for r in p.runs]
        rss = [r.maxrss_mib for r in p.runs]
        q1, q3 = quartiles(walls)
        rows.append([p.label, f"{med(walls):.0f} ms", f"{q1:.0f}–{q3:.0f} ms", f"{min(walls):.0f}–{max(walls):.0f} ms", f"{med(rss):.1f} MiB", str(len(walls))])
    header = ["command (fresh process)", "median wall", "IQR", "min–max", "peak RSS (median)", "n"]
    sec.plain += plain_table(header, rows)
    sec.markdown += md_table(header, rows)

    def wall(key: str) -> float:
        return med([r.wall for r in by[key].runs])

    def grade(what: str, ratio: float, target: float, digits: int = 2) -> None:
        sec.verdicts.append((what, f"{ratio:.{digits}f}×", f"≤ {target}×", "PASS" if ratio <= target else "MISS"))

    grade("cold attn inspect / imports floor (wall)", wall("attn") / wall("imports"), TARGET_VS_FLOOR)
    grade("cold attn inspect --json / imports floor (wall)", wall("attn_json") / wall("imports"), TARGET_JSON_VS_FLOOR)
    if "transformers" in by:
        grade("cold attn inspect / transformers (wall)", wall("attn") / wall("transformers"), TARGET_VS_TRANSFORMERS, 3)
        sec.notes.append(_same_answer(by["attn_json"].output, by["transformers"].output))
    else:
        sec.verdicts.append(("cold attn inspect / transformers (wall)", "skipped", f"≤ {TARGET_VS_TRANSFORMERS}×", "n/a"))
    rss = med([r.maxrss_mib for r in by["attn"].runs])
    sec.verdicts.append(("cold attn inspect peak RSS", f"{rss:.1f} MiB", f"≤ {TARGET_RSS_MIB:.0f} MiB", "PASS" if rss <= TARGET_RSS_MIB else "MISS"))
    sec.notes.append(
        f"commands: attn = `<venv>/bin/attn inspect {SENTENCE!r} --query {QUERY}` (stdout to /dev/null); imports = `<venv>/bin/python -c {FLOOR!r}`"
    )
    sec.notes.append(f"each run a fresh process, commands interleaved round-robin (first one rotating); load average {load} → {loadavg()}")
    return sec
