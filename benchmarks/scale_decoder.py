"""decoder: a 4,096-token input (1,024 with --quick) on a SmolLM2-135M-shaped Llama, time and peak RSS against transformers (see bench.py)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    ROOT,
    failure_tail,
    find_attn,
    last_json_line,
    md_table,
    mem_available_mib,
    plain_table,
    run_process,
)
from _scale import Proc, Section, attn_threads_env, exact_length_text, log, max_abs_diff, med, torch_env  # noqa: E402

DECODER_TOKENS = 4096
TARGET_DECODER_WALL = 0.2  # attn / transformers, whole processes, medians
# attn's peak RSS on 4,096 tokens when issue 14 was filed (305 MiB, docs/benchmarks.md): keep it.
TARGET_DECODER_RSS_MIB = 320.0
DECODER_CONFIG = {
    "hidden_size": 576,
    "num_hidden_layers": 30,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "intermediate_size": 1536,
    "max_position_embeddings": 8192,
    "rope_theta": 100000.0,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": True,
}
TINY_TOKENIZER = ROOT / "tests" / "fixtures" / "tiny" / "llama" / "tokenizer.json"
DECODER_PARAGRAPH = (
    "The cat sat on the mat because it was tired. Attention lets every word look at every other word in the "
    "sentence, and the model learns which ones matter. A long document gives each word many more places to look."
)

# Run in the reference env: argv[1] the output folder, argv[2] tokenizer.json, argv[3] the config as JSON.
MAKE_DECODER_SCRIPT = r"""
import json, os, shutil, sys
import torch
from transformers import LlamaConfig, LlamaModel

out, tokenizer, overrides = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
vocab = len(json.load(open(tokenizer, encoding="utf-8"))["model"]["vocab"])
torch.manual_seed(0)
config = LlamaConfig(vocab_size=vocab, hidden_act="silu", bos_token_id=1, eos_token_id=2, **overrides)
model = LlamaModel(config)
model.save_pretrained(out)
shutil.copy(tokenizer, os.path.join(out, "tokenizer.json"))
print(json.dumps({"parameters": sum(p.numel() for p in model.parameters()), "vocab_size": vocab}))
"""

# Run in the reference env: argv[1] the model folder; the text on stdin. The same work as
# `attn inspect - --query-index -1 --json`: one forward pass keeping every layer's attention
# maps (output_attentions=True), the last token's row of the last layer in every head as JSON.
TRANSFORMERS_DECODER_SCRIPT = r"""
import json, os, sys
import torch
from tokenizers import Tokenizer
from transformers import AutoModel

path = sys.argv[1]
text = sys.stdin.read()
ids = Tokenizer.from_file(os.path.join(path, "tokenizer.json")).encode(text).ids
model = AutoModel.from_pretrained(path, attn_implementation="eager")
model.eval()
with torch.no_grad():
    out = model(input_ids=torch.tensor([ids]), output_attentions=True)
row = out.attentions[-1][0, :, -1, :]
print(json.dumps({"seq": len(ids), "threads": torch.get_num_threads(), "rows": row.tolist()}))
"""


# Run in the attn venv with 1 BLAS thread: argv[1] JSON params {"model", "text"}. Where attn's
# peak RSS on the decoder comes from: /proc/self/status at each stage, tracemalloc's peak of
# allocations (NumPy reports its array buffers to it), the peak inside one layer's
# self-attention, and the file-backed pages (weights and libraries) seen before each layer's
# pages are released. Same forward pass as the CLI (`inspect`, query -1, last layer).
ATTN_DECODER_MEMORY_CHILD = r"""
import json, sys, tracemalloc

def status():
    out = {}
    for line in open("/proc/self/status"):
        key, value = line.split(":", 1)
        if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
            out[key] = int(value.split()[0]) / 1024
    return out

p = json.loads(sys.argv[1])
start = status()
from attn_cli.compute.inspect import inspect
from attn_cli.loading.model import load_model
imported = status()
model = load_model(p["model"])
text = open(p["text"], encoding="utf-8").read()
loaded = status()
seen = {"file": 0.0, "anon": 0.0, "attention": 0.0}
cls = type(model.weights)
release = cls.release
def sampled_release(self):
    s = status()
    seen["file"] = max(seen["file"], s["RssFile"])
    seen["anon"] = max(seen["anon"], s["RssAnon"])
    release(self)
cls.release = sampled_release
import attn_cli.models.llama as family  # the module whose `attend` the forward pass calls

attention = family.attend  # one layer's self-attention, scores to weighted values
def traced_attention(*a, **k):
    before = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    try:
        return attention(*a, **k)
    finally:
        seen["attention"] = max(seen["attention"], (tracemalloc.get_traced_memory()[1] - before) / 2**20)
family.attend = traced_attention
tracemalloc.start()
inspect(model, text, query_index=-1)
traced_peak = tracemalloc.get_traced_memory()[1] / 2**20
end = status()
print(json.dumps({"start": start, "imported": imported, "loaded": loaded, "end": end, "traced_peak": traced_peak,
                  "attention_peak": seen["attention"], "file_max": seen["file"], "anon_max_between_layers": seen["anon"]}))
"""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) / "attn-bench") if base else Path(tempfile.gettempdir()) / "attn-bench-cache"


def decoder_model(python_ref: Path | None, notes: list[str]) -> Path | None:
    """The random-weight SmolLM2-shaped Llama folder: reused if the cache holds one made from the
    same config and tokenizer, else made with transformers in the reference env."""
    key = hashlib.sha256(json.dumps(DECODER_CONFIG, sort_keys=True).encode() + TINY_TOKENIZER.read_bytes()).hexdigest()[:12]
    folder = cache_dir() / f"llama-smollm2-135m-shape-{key}"
    if (folder / "model.safetensors").is_file() and (folder / "bench-complete").is_file():
        log(f"decoder4096: reusing {folder}")
        return folder
    if python_ref is None:
        notes.append("decoder4096 skipped: the model is made with transformers, and there is no reference env")
        return None
    log(f"decoder4096: making the model in {folder} (random weights, seed 0)")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    made = subprocess.run(
        [str(python_ref), "-c", MAKE_DECODER_SCRIPT, str(tmp), str(TINY_TOKENIZER), json.dumps(DECODER_CONFIG)],
        env=torch_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if made.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        sys.exit("bench: making the decoder model failed:\n  " + "\n  ".join(made.stderr.strip().splitlines()[-5:]))
    (tmp / "bench-complete").write_text(made.stdout.strip().splitlines()[-1] + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder


def decoder_text(folder: Path, tokens: int) -> tuple[str, int]:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    words = (DECODER_PARAGRAPH + " ") * 200
    return exact_length_text(words.split(), lambda t: len(tokenizer.encode(t).ids), tokens)


def bench_decoder(args, python_ref: Path | None, workdir: Path) -> Section:
    tokens = args.decoder_tokens
    name = f"decoder{tokens}"
    sec = Section("decoder", f"{name}: a {tokens}-token input on a SmolLM2-135M-shaped Llama, whole processes")
    folder = decoder_model(python_ref, sec.notes)
    if folder is None:
        return sec
    text, n = decoder_text(folder, tokens)
    if n != tokens:
        sec.notes.append(f"the input tokenizes to {n} tokens, not {tokens}")
    path = workdir / f"{name}.txt"
    path.write_text(text, encoding="utf-8")
    weights_mib = (folder / "model.safetensors").stat().st_size / 2**20
    made = json.loads((folder / "bench-complete").read_text())
    attn = str(find_attn())
    attn_argv = [attn, "inspect", "-", "--query-index", "-1", "--json", "--model", str(folder)]
    procs = [Proc("attn", "attn inspect (CLI default: its threads, 1 BLAS thread)", attn_argv, stdin=path)]
    if args.decoder_one_thread:
        procs.append(Proc("attn1", "attn inspect, ATTN_THREADS=1", attn_argv, attn_threads_env(1), stdin=path))
    tr = None
    if python_ref is not None:
        tr = Proc(
            "transformers",
            "transformers (eager, output_attentions)",
            [str(python_ref), "-c", TRANSFORMERS_DECODER_SCRIPT, str(folder)],
            torch_env(),
            stdin=path,
        )
        procs.append(tr)
    limits = {"timeout": args.decoder_timeout, "min_available_mib": args.min_available_mib}
    log(f"{name}: {len(procs)} commands × {args.decoder_runs} runs, interleaved; transformers limited to {args.decoder_timeout:.0f} s")
    tr_failed: str | None = None
    for r in range(args.decoder_runs):
        order = procs[r % len(procs) :] + procs[: r % len(procs)]
        for p in order:
            if p is tr and tr_failed:
                continue
            run = run_process(p.argv, env=p.env, capture=r == 0, stdin=p.stdin, **(limits if p is tr else {}))
            if p is tr and (run.status != 0 or run.stopped):
                avail = mem_available_mib()
                tr_failed = run.stopped or (
                    f"exit {run.status}" + (" (killed by SIGKILL: the kernel's OOM killer?)" if run.status == -9 else "") + f": {failure_tail(run, 2)}"
                )
                tr_failed += f"; peak RSS at that point {run.maxrss_mib:.0f} MiB after {run.wall:.0f} s; MemAvailable now {avail:.0f} MiB"
                log(f"  transformers stopped: {tr_failed}")
                p.runs.append(run)
                continue
            if run.status != 0:
                sys.exit(f"bench: {name} {p.label} failed (exit {run.status}):\n  {failure_tail(run)}")
            if r == 0:
                p.output = run.stdout
            p.runs.append(run)
            log(f"  run {r + 1}/{args.decoder_runs}: {p.label:<42} {run.wall:7.1f} s  {run.maxrss_mib:8.0f} MiB")

    memory = None
    if args.breakdown:
        log(f"{name}: memory breakdown of attn (one more in-process run, with tracemalloc)")
        params = json.dumps({"model": str(folder), "text": str(path)})
        run = run_process([sys.executable, "-c", ATTN_DECODER_MEMORY_CHILD, params], env=attn_threads_env(1), capture=True)
        if run.status == 0:
            memory = last_json_line(run.stdout)
        else:
            sec.notes.append(f"memory breakdown failed (exit {run.status}): {failure_tail(run, 2)}")

    rows = []
    for p in procs:
        ok = [x for x in p.runs if x.status == 0 and not x.stopped]
        if not ok:
            rows.append([p.label, "did not finish", "—", "—", "—", "0"])
            continue
        walls, rss = [x.wall for x in ok], [x.maxrss_mib for x in ok]
        rows.append(
            [p.label, f"{med(walls):.1f} s", f"{min(walls):.1f}–{max(walls):.1f} s", f"{med(rss):.0f} MiB", f"{min(rss):.0f}–{max(rss):.0f} MiB", str(len(ok))]
        )
    header = ["command (whole process)", "median wall", "min–max", "peak RSS (median)", "peak RSS min–max", "n"]
    sec.plain += plain_table(header, rows)
    sec.markdown += md_table(header, rows)

    a_ok = [x for x in procs[0].runs if x.status == 0]
    a_rss, a_wall = med([x.maxrss_mib for x in a_ok]), med([x.wall for x in a_ok])
    layers, heads = DECODER_CONFIG["num_hidden_layers"], DECODER_CONFIG["num_attention_heads"]
    maps_mib = layers * heads * n**2 * 4 / 2**20
    checks = [("model weights (model.safetensors, float32)", f"{weights_mib:.0f} MiB ({made.get('parameters', 0) / 1e6:.1f} M parameters)")]
    if tr is not None and not tr_failed:
        t_rss, t_wall = med([x.maxrss_mib for x in tr.runs]), med([x.wall for x in tr.runs])
        checks += [
            ("attn peak RSS / transformers peak RSS", f"{a_rss / t_rss:.3f}× ({a_rss:.0f} vs {t_rss:.0f} MiB)"),
            ("attn wall / transformers wall", f"{a_wall / t_wall:.2f}× ({a_wall:.1f} vs {t_wall:.1f} s)"),
            ("transformers peak RSS minus weights", f"{t_rss - weights_mib:.0f} MiB"),
            (f"{layers} layers × {heads} heads × {n}² float32 attention maps (what output_attentions keeps)", f"{maps_mib:.0f} MiB"),
        ]
        ratio = a_wall / t_wall
        graded = tokens == DECODER_TOKENS  # --quick's shorter input is a proxy, not the target's measurement
        verdict = ("PASS" if ratio <= TARGET_DECODER_WALL else "MISS") if graded else "(quick)"
        sec.verdicts.append((f"{name}: attn / transformers (wall)", f"{ratio:.2f}× ({a_wall:.1f} vs {t_wall:.1f} s)", f"≤ {TARGET_DECODER_WALL}×", verdict))
    elif tr is not None:
        checks.append(("transformers", f"did not finish: {tr_failed}"))
        sec.verdicts.append(
            (f"{name}: attn / transformers (wall)", f"transformers did not finish ({a_wall:.1f} s for attn)", f"≤ {TARGET_DECODER_WALL}×", "n/a")
        )
    rss_verdict = ("PASS" if a_rss <= TARGET_DECODER_RSS_MIB else "MISS") if tokens == DECODER_TOKENS else "(quick)"
    sec.verdicts.append((f"{name}: attn peak RSS", f"{a_rss:.0f} MiB", f"≤ {TARGET_DECODER_RSS_MIB:.0f} MiB", rss_verdict))
    if "attn1" in {p.key for p in procs}:
        a1 = [x.wall for x in procs[1].runs]
        checks.append(("attn at 1 thread / attn at its default (wall)", f"{med(a1) / a_wall:.2f}×"))
    sec.plain += [""] + [f"{w:<80} {m}" for w, m in checks]
    sec.markdown += [""] + md_table(["figure", "value"], [list(c) for c in checks])

    if memory:
        m = memory
        mrows = [
            ["Python + attn's imports (numpy, tokenizers, …)", f"{m['imported']['VmRSS']:.0f} MiB RSS"],
            ["after opening the model (config, tokenizer, weights memory-mapped, nothing read)", f"{m['loaded']['VmRSS']:.0f} MiB RSS"],
            [
                "largest file-backed RSS seen before a layer's pages are released (libraries + that layer's weights)",
                f"{m['file_max']:.0f} MiB ({m['file_max'] - m['loaded']['RssFile']:.0f} MiB more than after opening)",
            ],
            ["peak of allocations during inspect() (tracemalloc: NumPy arrays + Python objects)", f"{m['traced_peak']:.0f} MiB"],
            ["… of which the most one layer's self-attention holds at once (score blocks and softmax temporaries)", f"{m['attention_peak']:.0f} MiB"],
            ["peak RSS of that process (VmHWM)", f"{m['end']['VmHWM']:.0f} MiB"],
        ]
        sec.plain += ["", "attn's memory on this input (one in-process run, 1 thread, tracemalloc on):"] + [f"  {a:<100} {b}" for a, b in mrows]
        sec.markdown += ["", "Where attn's peak RSS comes from (one in-process `inspect()` of the same input, 1 thread, tracemalloc on):", ""]
        sec.markdown += md_table(["stage / part", "MiB"], mrows)
    sec.notes.append(
        f"model: random weights (seed 0) in SmolLM2-135M's shape ({', '.join(f'{k} {v}' for k, v in DECODER_CONFIG.items())}), "
        f"vocab_size {made.get('vocab_size')} to match `tests/fixtures/tiny/llama/tokenizer.json`; saved by transformers' "
        f"`save_pretrained` (float32) in {folder}"
    )
    sec.notes.append(f"input: {n} tokens incl. <s> (a paragraph repeated, `DECODER_PARAGRAPH` in the script), fed on stdin; query = the last token")
    sec.notes.append(
        f"transformers runs with a {args.decoder_timeout:.0f} s limit and a memory guard (killed if the machine's MemAvailable "
        f"falls below {args.min_available_mib:.0f} MiB; its oom_score_adj is 1000); {args.decoder_runs} run(s) each, interleaved"
    )
    if tr is not None and not tr_failed and procs[0].output and tr.output:
        try:
            ours = json.loads(procs[0].output)
            ref = last_json_line(tr.output)
            rows_ = [h["weights"] for h in ours["layers"][-1]["heads"] if h["head"] != "mean"]
            sec.notes.append(
                f"same answer: attn's last-layer row of the last token (all {len(rows_)} heads) matches transformers' within "
                f"{max_abs_diff(rows_, ref['rows']):.1e}; torch used {ref['threads']} threads"
            )
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            sec.notes.append(f"could not compare attn's answer with transformers': {exc!r}")
    return sec
