"""Marian (`model_type: marian`), the Opus-MT translation models: BART's encoder–decoder
(bart.py) with fixed sinusoidal positions from 0 in place of learned ones, and no LayerNorm on
the embeddings (which `scale_embedding` scales by √d_model, as every Opus-MT config sets).

The sinusoids are not interleaved: for position p and j < d/2, column j is sin(p / 10000^(2j/d))
and column d/2 + j is cos(p / 10000^(2j/d)) (transformers' `MarianSinusoidalPositionalEmbedding`,
computed in float64, stored in float32). Checkpoints do not carry them: they are computed here.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from . import bart
from .architecture import Architecture
from .base import Weights
from .hyper import Hyper


def parse(config: dict) -> Hyper:
    return bart.parse(config, "marian", offset=0)


@cache
def _sinusoids(positions: int, dim: int) -> np.ndarray:
    """(positions, dim) float32: sin in the first half of the columns, cos in the second."""
    angle = np.arange(positions, dtype=np.float64)[:, None] / np.power(10000, 2 * (np.arange(dim) // 2) / dim)[None, :]
    half = (dim + 1) // 2
    out = np.empty((positions, dim), dtype=np.float32)
    out[:, :half] = np.sin(angle[:, 0::2])
    out[:, half:] = np.cos(angle[:, 1::2])
    out.flags.writeable = False
    return out


def sinusoidal_positions(w: Weights, s: Hyper, part: str, start: int, n: int) -> np.ndarray:
    """(n, hidden): the sinusoids of positions start … start+n-1."""
    return _sinusoids(s.max_positions, s.hidden)[start : start + n]


ARCHITECTURE = Architecture(
    "marian", parse, bart.encoder(sinusoidal_positions), bart.final_norm, bart.output_projection, ("model.",),
    seq2seq=bart.seq2seq(sinusoidal_positions),
)
