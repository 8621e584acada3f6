"""De-quantization: attn's (`loading/quants.py`) against gguf-py's `gguf.quants.dequantize`, and
against the product that reads the result in a step of `attn generate` (one row times the matrix).

    uv run python benchmarks/bench_dequantize.py [--gguf FILE] [--runs 5]

A (1,536 × 8,960) matrix of each type: Q8_0, Q4_0 and Q5_0 quantized by gguf-py from random
normal weights, Q5_K random codes with fixed scales, Q4_K and Q6_K a real feed-forward matrix of
--gguf (a Q4_K_M file, e.g. Qwen2.5-Coder-1.5B's; else random codes). CPU time of this process
(time.process_time, single-threaded BLAS), the best of --runs: on a shared machine, wall time
measures the neighbours. Checks the bits are gguf-py's before timing.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import loadavg, plain_table  # noqa: E402


def best(f, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.process_time()
        f()
        times.append(time.process_time() - t)
    return min(times)


def cases(gguf: Path | None) -> dict[str, tuple[np.ndarray, object]]:
    from gguf import GGMLQuantizationType as Q
    from gguf.constants import GGML_QUANT_SIZES
    from gguf.quants import quantize

    rng = np.random.default_rng(0)
    rows, cols = 1536, 8960
    w = (rng.standard_normal((rows, cols)) * 0.02).astype(np.float32)
    out = {q.name: (quantize(w, q), q) for q in (Q.Q8_0, Q.Q4_0, Q.Q5_0)}
    real = {}
    if gguf is not None:
        from attn_cli.loading.gguf import GGUFFile

        file = GGUFFile(gguf)
        for info in file.tensors.values():
            if info.type_name in ("Q4_K", "Q6_K") and info.type_name not in real and info.shape in ((rows, cols), (cols, rows)):
                real[info.type_name] = (np.array(file._bytes[info.offset : info.offset + info.nbytes]).reshape(info.shape[0], -1), Q[info.type_name])
    for q in (Q.Q4_K, Q.Q5_K, Q.Q6_K):
        if q.name in real:
            out[q.name] = real[q.name]
            continue
        block, size = GGML_QUANT_SIZES[q]
        raw = rng.integers(0, 256, (rows * cols // block, size), dtype=np.uint8)
        half = np.frombuffer(np.float16(0.001).tobytes(), np.uint8)
        if q == Q.Q6_K:
            raw[:, -2:] = half
        else:
            raw[:, 0:2], raw[:, 2:4] = half, half
        out[q.name] = (raw.reshape(rows, -1), q)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gguf", type=Path)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    from gguf.quants import dequantize as gguf_dequantize

    from attn_cli.loading.quants import dequantize

    load = loadavg()
    rows = []
    for name, (raw, q) in cases(args.gguf).items():
        ours = dequantize(raw, q)
        if not np.array_equal(ours.view(np.uint32), gguf_dequantize(raw, q).view(np.uint32)):
            sys.exit(f"bench: {name}: attn's bits differ from gguf-py's")
        x = np.random.default_rng(1).standard_normal((1, ours.shape[1])).astype(np.float32)
        theirs_s = best(lambda raw=raw, q=q: gguf_dequantize(raw, q), args.runs)
        ours_s = best(lambda raw=raw, q=q: dequantize(raw, q), args.runs)
        product_s = best(lambda x=x, w=ours: x @ w.T, args.runs)
        rows.append([
            name, f"{theirs_s * 1e3:.0f}", f"{ours_s * 1e3:.0f}", f"{theirs_s / ours_s:.1f}×", f"{ours.nbytes / ours_s / 1e9:.2f}",
            f"{product_s * 1e3:.1f}", f"{ours_s / product_s:.0f}×",
        ])
    header = ["type", "gguf-py ms", "attn ms", "speed-up", "attn GB/s (float32 out)", "x·Wᵀ ms", "attn / product"]
    print("\n".join(plain_table(header, rows)))
    print(f"load average {load} → {loadavg()}; CPU time, best of {args.runs}; one (1,536 × 8,960) matrix")
    return 0


if __name__ == "__main__":
    sys.exit(main())
