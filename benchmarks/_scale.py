"""What the scale benchmarks share: processes, interleaved rounds, sections of the report."""

from __future__ import annotations

import os
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    Run,
    failure_tail,
    run_process,
)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def blas_env(threads: int) -> dict[str, str]:
    """This environment with BLAS held to `threads` threads (the variables attn's CLI sets)."""
    return dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))


def attn_threads_env(threads: int) -> dict[str, str]:
    """This environment with attn allowed `threads` threads: its own (ATTN_THREADS), over a
    one-thread BLAS, as the CLI runs it (see attn_cli/models/runtime.py)."""
    return blas_env(1) | {"ATTN_THREADS": str(threads)}


def torch_env() -> dict[str, str]:
    """Offline, and without thread-count variables: torch picks its default intra-op threads."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    return env | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def med(values: list[float]) -> float:
    return statistics.median(values)


@dataclass
class Section:
    name: str
    title: str
    plain: list[str] = field(default_factory=list)
    markdown: list[str] = field(default_factory=list)
    verdicts: list[tuple[str, str, str, str]] = field(default_factory=list)  # (what, measured, target, verdict)
    notes: list[str] = field(default_factory=list)


def max_abs_diff(ours: list[list[float]], theirs: list[list[float]]) -> float:
    return max(abs(x - y) for r1, r2 in zip(ours, theirs, strict=True) for x, y in zip(r1, r2, strict=True))


@dataclass
class Proc:
    key: str
    label: str
    argv: list[str]
    env: dict[str, str] | None = None
    stdin: Path | None = None
    runs: list[Run] = field(default_factory=list)
    output: bytes = b""  # stdout of the warm-up run


def interleave(procs: list[Proc], rounds: int, warmup: int, what: str, rounds_of: dict[str, int] | None = None, **limits) -> None:
    """`warmup` unmeasured runs, then `rounds` rounds over the processes, the first one rotating.
    `rounds_of` caps the rounds of slow processes (by key): they run in the first rounds only.
    Each process's first run (warm-up or not) keeps its stdout in `Proc.output`."""

    def once(p: Proc, where: str) -> Run:
        run = run_process(p.argv, env=p.env, capture=not p.output, stdin=p.stdin, **limits)
        if run.status != 0:
            sys.exit(f"bench: {what} {p.label} failed (exit {run.status}) in {where}:\n  {failure_tail(run)}")
        p.output = p.output or run.stdout
        return run

    for _ in range(warmup):
        for p in procs:
            log(f"  warm-up {p.label:<34} {once(p, 'warm-up').wall:7.2f} s")
    for r in range(rounds):
        order = procs[r % len(procs) :] + procs[: r % len(procs)]
        line = []
        for p in order:
            if r >= (rounds_of or {}).get(p.key, rounds):
                continue
            run = once(p, f"round {r + 1}")
            p.runs.append(run)
            line.append(f"{p.key} {run.wall:.2f}")
        log(f"  round {r + 1}/{rounds}: " + ", ".join(line) + " s")


def exact_length_text(words: list[str], count, target: int) -> tuple[str, int]:
    """The longest prefix of `words` (joined by spaces) with at most `target` tokens, topped up
    with full stops (one token each in the tokenizers used here) if it falls short; returns
    (text, its token count). `count(text)` counts tokens including special tokens."""
    lo, hi = 1, len(words)
    if count(" ".join(words)) < target:
        raise ValueError(f"the source text has fewer than {target} tokens")
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count(" ".join(words[:mid])) <= target:
            lo = mid
        else:
            hi = mid - 1
    text = " ".join(words[:lo])
    n = count(text)
    while n < target:
        longer = text + "."
        if count(longer) <= n:  # "." merged into the last token: stop rather than loop
            break
        text, n = longer, count(longer)
    return text, n
