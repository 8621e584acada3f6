"""The per-shard function of `attn stats` and the engines that map it over a corpus.

A corpus is read line by line and cut into shards of SHARD_LINES texts. `shard_sums(model,
shard)` turns one shard into a `HeadSums`; the engines (this process, worker processes, Ray:
`stats_ray.py`) map it over the shards and merge the sums in shard order, so every engine
gives the same numbers. At most `in_flight` shards are read ahead of the merge, so memory does
not grow with the corpus: the parent holds O(in_flight · SHARD_LINES · line length) of text
and one HeadSums (O(layers · heads · metrics)) per shard in flight.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import sys
import unicodedata
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING

from ..errors import AttnError, InputError

if TYPE_CHECKING:
    import numpy as np

    from ..loading.model import Model
    from ..loading.tokenizer import Tokenization
    from ..maths.headsums import DetectorOptions, HeadSums

SHARD_LINES = 32  # texts per shard: few round trips to a worker, a progress count that moves
AHEAD = 3  # shards in flight per worker
INDUCTION_SEQUENCES = 10  # repeated random-token prompts for the induction score
INDUCTION_LENGTH = 25  # random tokens in each half

Shard = list[tuple[int | None, str]]  # (line number, or None for a lone TEXT; text)


@dataclass(frozen=True)
class ShardError:
    """A bad line, sent back instead of raised (an AttnError need not survive pickling)."""

    kind: str
    message: str
    fix: str


# --- Reading the corpus ----------------------------------------------------------------------


def iter_lines(file: str) -> Iterator[tuple[int, str]]:
    """(line number, text) of each non-blank line of `file` (`-`: stdin), read lazily. Lines end
    at \n, \r\n or \r (as `attn batch` and editors count them; not at U+2028 or a form feed, as
    str.splitlines would); a BOM is dropped. Bytes that are not UTF-8 stay as surrogates, so that
    their line fails by number."""
    if file == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise InputError("--file is - but nothing is piped to stdin", "pipe the lines in (attn stats --file - < texts.txt) or give a file name")
        buffer = getattr(sys.stdin, "buffer", None)
        handle = sys.stdin if buffer is None else io.TextIOWrapper(buffer, encoding="utf-8-sig", errors="surrogateescape", newline=None)
        yield from _numbered(handle)
        return
    try:
        handle = open(file, encoding="utf-8-sig", errors="surrogateescape", newline=None)
    except OSError as exc:
        raise InputError(f"cannot read {file}: {exc.strerror or exc}", "check the file name") from None
    with handle:
        yield from _numbered(handle)


def _numbered(lines: Iterable[str]) -> Iterator[tuple[int, str]]:
    for n, line in enumerate(lines, start=1):
        text = line.rstrip("\r\n").removeprefix("\ufeff")
        if text.strip():
            yield n, text


def shards(texts: Iterable[tuple[int, str]], size: int = SHARD_LINES) -> Iterator[Shard]:
    it = iter(texts)
    while shard := list(islice(it, size)):
        yield shard


# --- The per-shard function ------------------------------------------------------------------


def punctuation_mask(tok: Tokenization) -> np.ndarray:
    """bool (seq,): tokens whose text (read from the input, so without ## or a leading-space
    marker) is all Unicode punctuation (categories P*). Special tokens are not punctuation."""
    import numpy as np

    def is_punct(t) -> bool:
        piece = "" if t.special else tok.text[t.start : t.end].strip()
        return bool(piece) and all(unicodedata.category(c).startswith("P") for c in piece)

    return np.array([is_punct(t) for t in tok.tokens], dtype=bool)


def add_text(model: Model, tok: Tokenization, options: DetectorOptions, into: HeadSums) -> None:
    """One text's forward pass, each layer's maps reduced to sums as soon as they exist."""
    import numpy as np

    from ..maths.headsums import layer_sums, visible_keys

    ids = tok.ids
    special = np.array([t.special for t in tok.tokens], dtype=bool)
    punctuation = punctuation_mask(tok)
    for trace in model.trace(ids):
        visible = visible_keys(len(ids), model.spec.causal, model.spec.window(trace.layer))  # Gemma 3: each layer its own window
        parts, histogram = layer_sums(trace.rows()[2], ids, special, punctuation, visible, options)
        into.add_layer(trace.layer, parts, histogram)
    into.texts += 1
    into.tokens += len(ids)


def shard_sums(model: Model, shard: Shard, options: DetectorOptions) -> HeadSums | ShardError:
    """The sums of one shard's texts, or the first bad line's error. Every engine runs this."""
    from ..loading.tokenizer import tokenize
    from ..maths.headsums import HeadSums

    sums = HeadSums(model.spec.layers, model.spec.heads)
    for line, text in shard:
        try:
            tok = tokenize(model.tokenizer, text, max_tokens=model.spec.max_positions)
        except AttnError as exc:
            return ShardError(type(exc).__name__, exc.message if line is None else f"line {line}: {exc.message}", exc.fix)
        add_text(model, tok, options, sums)
    return sums


def raise_if_error(result: HeadSums | ShardError) -> HeadSums:
    if isinstance(result, ShardError):
        from .. import errors

        raise getattr(errors, result.kind, InputError)(result.message, result.fix)
    return result


def induction_sums(model: Model, options: DetectorOptions, seed: int) -> HeadSums:
    """Induction scores on INDUCTION_SEQUENCES seeded repeated random-token prompts, each
    wrapped in the model's own special tokens ([CLS] … [SEP], or BOS). Random tokens are drawn
    from the vocabulary less special and bracketed tokens ([unused7])."""
    import numpy as np

    from ..maths import headsums

    sums = headsums.HeadSums(model.spec.layers, model.spec.heads)
    wrapper = model.tokenizer.encode("", add_special_tokens=True).ids
    special = {t.content for t in model.tokenizer.get_added_tokens_decoder().values() if t.special}
    vocab = np.array(sorted(i for t, i in model.tokenizer.get_vocab().items() if t not in special and not (t.startswith("[") and t.endswith("]"))))
    prompts = headsums.repeated_random_tokens(vocab, INDUCTION_LENGTH, INDUCTION_SEQUENCES, seed)
    lead = len(wrapper) if model.spec.causal else min(1, len(wrapper))  # BERT: [CLS] first, [SEP] last
    for prompt in prompts:
        ids = np.array([*wrapper[:lead], *prompt, *wrapper[lead:]], dtype=np.int64)
        for trace in model.trace(ids):
            sums.add_layer(trace.layer, headsums.induction_sums(trace.rows()[2], ids, options), np.zeros((model.spec.heads, headsums.HISTOGRAM_BINS), np.int64))
    return sums


# --- Engines: this process, worker processes -------------------------------------------------


def merge_in_order(results: Iterable[HeadSums | ShardError], start: HeadSums, on_shard: Callable[[int], None] | None) -> HeadSums:
    """Merge shard results into `start` in the order given, raising the first error."""
    for sums in results:
        start.merge(raise_if_error(sums))
        if on_shard is not None:
            on_shard(start.texts)
    return start


def run_local(model: Model, parts: Iterable[Shard], options: DetectorOptions) -> Iterator[HeadSums | ShardError]:
    for shard in parts:
        yield shard_sums(model, shard, options)


# One BLAS thread, and one attn thread, per worker: the workers are the parallelism (see compute/batch.py).
_BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "ATTN_THREADS")
_WORKER: tuple[Model, DetectorOptions] | None = None


def _init_worker(model_path: str | None, options: DetectorOptions, parent: int) -> None:
    global _WORKER
    from .lifeline import bind_to_parent

    bind_to_parent(parent)
    for name in _BLAS_THREADS:
        os.environ.setdefault(name, "1")
    from ..loading.model import load_model

    _WORKER = (load_model(model_path, release_weights=False), options)


def _worker_shard(shard: Shard) -> HeadSums | ShardError:
    assert _WORKER is not None, "worker not initialised"
    return shard_sums(_WORKER[0], shard, _WORKER[1])


def run_processes(model_path: str | None, parts: Iterable[Shard], options: DetectorOptions, workers: int) -> Iterator[HeadSums | ShardError]:
    """Shards to `workers` spawned processes (each loads the model once), results in shard
    order, at most workers·AHEAD shards in flight. On any exit (end, error, Ctrl-C, a reader
    that stops) the workers are stopped and reaped: none outlives the run."""
    from .lifeline import stop_processes

    pool = ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker, initargs=(model_path, options, os.getpid())
    )
    pending: deque = deque()
    finished = False
    try:
        for shard in parts:
            pending.append(pool.submit(_worker_shard, shard))
            if len(pending) >= workers * AHEAD:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
        finished = True
    finally:
        processes = list((getattr(pool, "_processes", None) or {}).values())  # private, but the only handle on them
        if not finished:
            stop_processes(processes)  # Ctrl-C or an error: do not wait for queued shards
        pool.shutdown(wait=True, cancel_futures=True)
        stop_processes(processes)
