"""Reference RoPE tensors from transformers (torch float32, CPU), for tests/test_rope.py.

attn's inv_freq and angles must equal transformers' bit for bit, and its cos/sin be within one
ulp (PyTorch takes cos/sin from MKL, whose rounding is not public). For each case below this
records what `LlamaRotaryEmbedding` computes for positions 0 … 8,191::

    /work/refenv/bin/python scripts/make_rope_fixture.py   # writes tests/fixtures/rope.npz

Keys, for case i: `theta_<i>`, `head_dim_<i>`, `rope_<i>` (a JSON string of rope_parameters),
`inv_freq_<i>` float32 (head_dim/2,), `positions` int64 (p,), and `cos_<i>`, `sin_<i>` float32
(p, head_dim) at those positions (a sample of the 8,192: the first, those around 4,095 and
8,191, and random ones); `cpu` str: torch's CPU capability on the machine that made them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from reference import save_npz, versions_string
from transformers import LlamaConfig
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "rope.npz"
SEQ = 8192
LLAMA3 = {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
CASES = [
    (1e4, 64, {}), (1e5, 64, {}), (1e6, 64, {}), (1e4, 256, {}), (1e6, 256, {}), (1e6, 128, {}), (1e4, 80, {}),
    (5e5, 128, LLAMA3), (5e5, 64, LLAMA3 | {"factor": 8.0}),
]


def main() -> None:
    rng = np.random.default_rng(0)
    positions = np.unique(np.concatenate([np.arange(32), np.arange(4064, 4128), np.arange(8160, 8192), rng.integers(0, SEQ, 64)]))
    arrays = {"positions": positions.astype(np.int64), "cpu": np.array(torch.backends.cpu.get_cpu_capability()),
              "versions": np.array(versions_string())}
    for i, (theta, dim, extra) in enumerate(CASES):
        rope = {"rope_type": "default", "rope_theta": theta} | extra
        config = LlamaConfig(hidden_size=dim * 4, num_attention_heads=4, head_dim=dim, max_position_embeddings=SEQ, rope_parameters=rope)
        emb = LlamaRotaryEmbedding(config)
        x = torch.zeros(1, SEQ, dim)
        cos, sin = emb(x, torch.arange(SEQ)[None])
        arrays |= {
            f"theta_{i}": np.float64(theta), f"head_dim_{i}": np.int64(dim), f"rope_{i}": np.array(json.dumps(rope)),
            f"inv_freq_{i}": emb.inv_freq.numpy().copy(),
            f"cos_{i}": cos[0, positions].numpy().copy(), f"sin_{i}": sin[0, positions].numpy().copy(),
        }
    save_npz(OUT, arrays)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
