"""Choosing the next token from logits: log-probabilities, greedy, and seeded sampling with
temperature, top-k and top-p (nucleus, Holtzman et al. 2020), in the order transformers'
`generate` applies them (temperature, then top-k, then top-p)."""

from __future__ import annotations

import numpy as np


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """log p over the last axis, computed in float64 for accuracy: (..., vocab) -> (..., vocab) float32."""
    x = logits.astype(np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return (x - np.log(np.exp(x).sum(axis=-1, keepdims=True))).astype(np.float32)


def top_tokens(logprobs: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest log-probs (vocab,), largest first; ties in id order."""
    k = min(k, logprobs.shape[-1])
    part = np.argpartition(-logprobs, k - 1)[:k]
    return part[np.lexsort((part, -logprobs[part]))]


def greedy(logits: np.ndarray) -> int:
    """The most likely token (the first, on a tie, as torch.argmax)."""
    return int(np.argmax(logits))


def filtered_logits(logits: np.ndarray, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None) -> np.ndarray:
    """(logits − max) / temperature (the same softmax as logits / temperature, without overflow to
    inf − inf = NaN at a temperature like 1e-320), with -inf outside the top_k tokens and outside
    the smallest set of most likely tokens whose probabilities add up to at least top_p (the most
    likely token is always kept). (vocab,) -> (vocab,) float64."""
    x = logits.astype(np.float64)
    with np.errstate(over="ignore"):  # a tiny temperature sends all but the largest to -inf, as it should
        x = (x - x.max()) / temperature
    if top_k is not None and top_k < x.shape[-1]:
        kth = np.partition(x, -top_k)[-top_k]
        x = np.where(x < kth, -np.inf, x)
    if top_p is not None and top_p < 1.0:
        order = np.argsort(-x, kind="stable")
        p = np.exp(x[order] - x[order[0]])
        p /= p.sum()
        before = np.cumsum(p) - p  # probability of the tokens ranked above each one
        drop = order[before >= top_p]
        x[drop] = -np.inf
    return x


def sample(logits: np.ndarray, rng: np.random.Generator, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None) -> int:
    """Draw a token from softmax(filtered_logits(...)) with `rng`: the same seed, the same draws."""
    x = filtered_logits(logits, temperature, top_k, top_p)
    p = np.exp(x - x.max())
    p /= p.sum()
    return int(rng.choice(p.shape[-1], p=p))
