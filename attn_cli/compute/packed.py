"""`attn batch` in one process: many lines in one forward pass.

A forward pass over one short sentence is mostly overhead: a few dozen rows per matrix
product, thousands of small NumPy calls. So the lines of a pack are tokenized, their tokens
packed into one matrix for everything that works token by token, and each line's attention
computed over its own tokens alone (`Model.trace_packed`); each line's document is then built
from its own traces, exactly as `inspect` builds it. The numbers are those of the line run by
itself, bit for bit (each row of a matrix product, each token's norm and activation, each
line's attention is computed whole, as alone; tests/test_batch.py checks it). A line that
cannot join a pack (an error, a chat line, fewer than MIN_PACK_TOKENS tokens, an architecture
that does not pack) runs by itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TYPE_CHECKING

from ..errors import AttnError

if TYPE_CHECKING:
    from ..loading.model import Model
    from .batch import Job
    from .options import InspectOptions

PACK_LINES = 32  # lines per pack at most: ~600 tokens of typical sentences, enough for two threads
# Texts of fewer tokens run alone: OpenBLAS computes a product of 1 to 3 rows with its
# small-matrix kernels, which sum in another order than the big product of a pack.
MIN_PACK_TOKENS = 4
# Tokens per pack at most, where texts are packed by tokens (`pack_groups`): a pack's layer
# (q, k, v, head outputs, hidden, the feed-forward's inner rows) stays a few MB, and products of
# ~1,000 rows run as fast per row as any larger.
PACK_TOKENS = 1024
RAMP = (1, 2, 4, 8, 16)  # the first packs: the first answers come at once, not after 32 lines


def pack_groups(model: Model, lengths: list[int], max_tokens: int | None = None) -> list[list[int]]:
    """The texts of the given token counts, in order, cut into runs (lists of their indices):
    consecutive texts that pack (see the module's docstring) together, up to `max_tokens`
    (PACK_TOKENS) tokens a run; every other text by itself. Used by `attn stats`."""
    max_tokens = PACK_TOKENS if max_tokens is None else max_tokens
    groups: list[list[int]] = []
    run: list[int] = []
    for i, n in enumerate(lengths):
        if not model.packs or n < MIN_PACK_TOKENS:
            groups.append([i])
            continue
        if run and sum(lengths[j] for j in run) + n > max_tokens:
            groups.append(run)
            run = []
        run.append(i)
    if run:
        groups.append(run)
    return sorted(groups)


def packs(jobs: Iterable[Job]) -> Iterator[list[Job]]:
    """Consecutive packs of jobs: 1, 2, 4, 8, 16 lines, then PACK_LINES at a time."""
    it = iter(jobs)
    sizes = iter(RAMP)
    while chunk := list(islice(it, next(sizes, PACK_LINES))):
        yield chunk


def answer_pack(model: Model, jobs: list[Job], defaults: InspectOptions) -> list[dict]:
    """One document per job, in order, as `batch.run_job` answers each (see the module's docstring)."""
    from ..loading.tokenizer import tokenize
    from .batch import job_options, run_job

    packed: dict[int, tuple] = {}
    if model.packs and len(jobs) > 1:
        for i, job in enumerate(jobs):
            if job.error is not None:
                continue
            try:
                options = job_options(job, defaults)
                if options.chat:
                    continue
                tok = tokenize(model.tokenizer, job.text, max_tokens=model.spec.max_positions, truncate=options.truncate)
            except AttnError:
                continue  # run by itself, which reports the error in its place
            if len(tok.tokens) >= MIN_PACK_TOKENS:
                packed[i] = (tok,)
        if len(packed) > 1:  # a ModelError here is the run's (see `batch.run_job`)
            traces = model.trace_packed([tok.ids for (tok,) in packed.values()])
            packed = {i: (tok, t) for (i, (tok,)), t in zip(packed.items(), traces, strict=True)}
        else:
            packed = {}
    return [run_job(model, job, defaults, packed.get(i)) for i, job in enumerate(jobs)]
