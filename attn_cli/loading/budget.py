"""De-quantized weights kept up to a memory budget: the one place where a run decides what stays.

A GGUF model stays quantized in its file's memory map and each tensor becomes float32 when the
forward pass reaches its layer (`gguf.GGUFWeights`, which lets go of it after the layer). A run
that reads every layer many times (`attn generate`: a pass per new token; `attn batch`, `attn
stats`: a pass per line or pack of lines) keeps float32 copies too, but only up to `budget`
bytes: the tensors read first are kept (with a pass that always reads the layers in the same
order, keeping the first ones and de-quantizing the rest again each time costs the least; a
least-recently-used cache would evict each tensor just before it is read again), the others are
de-quantized each time they are read. De-quantization is exact and the LM head is read in the
same blocks either way (`models.base.Head`), so the numbers do not depend on the budget.
"""

from __future__ import annotations

import math
import os
import re

import numpy as np

from ..errors import OptionError

DEFAULT_SHARE = 0.5  # of the RAM available when the run starts
DEFAULT_CAP = 1 << 30  # and at most this: float32 is 4-7 times a quantized file, a default must not take the machine
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Bytes of a size as written on a command line: `2G`, `800M`, `1.5GiB`, `0`, `123456`
    (K, M, G, T are powers of 1024)."""
    m = _SIZE.match(text)
    if m is None:
        raise OptionError(f"`max_memory={text}` is not a size", "give bytes with an optional unit: 800M, 2G, 1.5G, 0")
    size = float(m[1]) * _UNITS[m[2].upper()]
    if not math.isfinite(size):  # 400 digits: float says inf, which int() refuses
        raise OptionError(f"`max_memory={text.strip()[:20]}…` is too large", "give bytes with an optional unit: 800M, 2G, 1.5G, 0")
    return int(size)


def available_memory() -> int | None:
    """Bytes of RAM the system can give without swapping (Linux's MemAvailable), else its free pages, else None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def default_budget() -> int:
    """min(half the available RAM, 1 GiB): see docs/options.md#max-memory."""
    available = available_memory()
    return DEFAULT_CAP if available is None else min(int(available * DEFAULT_SHARE), DEFAULT_CAP)


def share(budget: int | None, workers: int) -> int:
    """Each of `workers` processes' share of a run's budget (None: `default_budget()`, measured
    once by the parent): together they keep at most the budget."""
    return (default_budget() if budget is None else max(0, budget)) // max(1, workers)


class BudgetedWeights:
    """Weights (`models.base.Weights`) of which float32 copies are kept up to `budget` bytes.

    Keeps whole tensors (`weights[name]`) and blocks of the LM head (`row_range`); rows of the
    embeddings (`rows`) are always read afresh, a few rows of the file. `release()` (after each
    layer) lets the wrapped weights drop what they read; the kept copies stay."""

    def __init__(self, weights, budget: int) -> None:
        self.weights, self.budget = weights, max(0, int(budget))
        self._kept: dict[object, np.ndarray] = {}
        self.used = 0  # bytes kept

    def _keep(self, key, array: np.ndarray) -> np.ndarray:
        array = np.ascontiguousarray(array, dtype=np.float32)
        if self.used + array.nbytes <= self.budget:
            self._kept[key] = array
            self.used += array.nbytes
        return array

    def __contains__(self, name: str) -> bool:
        return name in self.weights

    def __getitem__(self, name: str) -> np.ndarray:
        kept = self._kept.get(name)
        return kept if kept is not None else self._keep(name, self.weights[name])

    def rows(self, name: str, indices: np.ndarray) -> np.ndarray:
        return self.weights.rows(name, indices)

    def shape(self, name: str) -> tuple[int, ...]:
        return self.weights.shape(name)

    def row_range(self, name: str, start: int, stop: int) -> np.ndarray:
        whole = self._kept.get(name)
        if whole is not None:
            return whole[start:stop]
        kept = self._kept.get((name, start, stop))
        return kept if kept is not None else self._keep((name, start, stop), self.weights.row_range(name, start, stop))

    def release(self) -> None:
        self.weights.release()
