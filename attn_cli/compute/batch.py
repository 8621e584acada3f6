"""`attn batch`: inspect many texts, one per input line, as a stream of JSON documents.

A line is plain text (it takes the batch-wide defaults) or a JSON object whose fields override
them for that line. A line that fails becomes an error object in its place and the run goes on,
so output n always answers input line n, with or without worker processes.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from itertools import islice
from typing import TYPE_CHECKING

from ..errors import AttnError, InputError, QueryNotFound
from ..exit_status import STATUS_BY_CODE, ExitStatus
from .lifeline import bind_to_parent
from .packed import answer_pack, packs

# NumPy is imported late (in the functions that need it), so that a worker process can limit
# BLAS threads before NumPy loads: see _init_worker.
if TYPE_CHECKING:
    from ..loading.model import Model


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # JSON true is not a position


def _is_str(value) -> bool:
    return isinstance(value, str)


def _is_bool(value) -> bool:
    return isinstance(value, bool)


# What a JSON line may hold: "text", and the keyword arguments of `inspect`, each with the JSON
# types it takes. Checked on parsing because `inspect` expects the CLI's types: a string
# query_index would fail deep inside it, as an internal error.
LINE_TYPES = {
    "text": (_is_str, "a string"),
    "query": (lambda v: v is None or _is_str(v), "a string or null"),
    "query_index": (lambda v: v is None or _is_int(v), "an integer or null"),
    "layer": (lambda v: _is_int(v) or _is_str(v), 'an integer or "all"'),
    "head": (lambda v: _is_int(v) or _is_str(v), 'an integer, "auto", "mean" or "all"'),
    "top_k": (_is_int, "an integer"),
    "steps": (_is_bool, "true or false"),
    "include_special": (_is_bool, "true or false"),
    "truncate": (_is_bool, "true or false"),
    "level": (_is_str, 'a string ("token" or "word")'),
    "norms": (_is_bool, "true or false"),
    "rank_by": (_is_str, 'a string ("weight", "value_norm" or "output_norm")'),
    "chat": (_is_bool, "true or false"),
    "system": (lambda v: v is None or _is_str(v), "a string or null"),
}
# The keyword arguments of `inspect` that the defaults and a JSON line may set.
OPTIONS = tuple(k for k in LINE_TYPES if k != "text")

# Kept whatever fields are selected: which line a document answers, its version, an error.
ALWAYS_KEPT = ("line", "schema_version", "error")


CHUNK = 4  # lines per task sent to a worker: fewer round trips, yet a progress bar that moves
AHEAD = 4  # tasks in flight per worker: keeps workers busy while bounding memory on both sides

JSON_EXAMPLE = '{"text": "The cat sat.", "query": "cat"}'


@dataclass(frozen=True)
class Job:
    """One input line, parsed. `overrides`: the options a JSON line sets (a subset of OPTIONS).
    `error`: (message, fix) when the line cannot run (blank, bad JSON); run_job reports it."""

    number: int
    text: str
    overrides: dict = field(default_factory=dict)
    error: tuple[str, str] | None = None


def parse_line(line: str, number: int) -> Job:
    """One line (its line break optional) -> Job; never raises. `number` is 1-based.
    A line whose first non-space character is `{` is a JSON object; anything else is text."""
    text = line.rstrip("\r\n")
    if number == 1:
        text = text.removeprefix("\ufeff")  # a BOM would hide the `{` of a JSON line
    if not text.strip():
        return Job(number, text, error=("the line is empty", "delete the blank line, or put a text on it"))
    if not text.lstrip().startswith("{"):
        return Job(number, text)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        return Job(number, text, error=(f"invalid JSON: {exc.msg} at column {exc.colno}", _json_fix()))
    except RecursionError:
        return Job(number, text, error=("invalid JSON: nested too deeply", _json_fix()))
    problem = _check_object(obj)
    if problem is not None:
        return Job(number, text, error=(problem, _json_fix()))
    return Job(number, obj["text"], {k: v for k, v in obj.items() if k != "text"})


def _json_fix() -> str:
    # Every line starting with `{` is read as JSON, so plain text that starts with one must be wrapped.
    return f"write one JSON object per line, e.g. {JSON_EXAMPLE} (text starting with {{ must be written that way too)"


def _check_object(obj) -> str | None:
    """What is wrong with a parsed JSON line (see LINE_TYPES), or None."""
    if not isinstance(obj, dict):
        return "invalid JSON: not an object"
    unknown = [k for k in obj if k not in LINE_TYPES]
    if unknown:
        return f"unknown field {', '.join(map(json.dumps, unknown))}; a line may have: {', '.join(LINE_TYPES)}"
    if "text" not in obj:
        return 'the object has no "text"'
    for key, value in obj.items():
        suits, expected = LINE_TYPES[key]
        if not suits(value):
            return f'"{key}" must be {expected}, not {json.dumps(value)}'
    return None


def job_options(job: Job, defaults: dict) -> dict:
    """The keyword arguments of `inspect` for one line: the defaults, then the line's overrides.
    A line that names its query either way replaces both default query options, so a line's
    "query_index" under a batch-wide query is not "both a query word and a query index"."""
    options = {**defaults, **job.overrides}
    if "query" in job.overrides or "query_index" in job.overrides:
        options["query"] = job.overrides.get("query")
        options["query_index"] = job.overrides.get("query_index")
    return options


def run_job(model: Model, job: Job, defaults: dict, packed: tuple | None = None) -> dict:
    """One line -> {"line": n, **inspect document}, or {"line": n, "error": {...}}. Never raises
    an Exception: a failing line must not end the run. `packed`: (tokenization, traces) of the
    line already run in a pack (see `packed.answer_pack`), else the line runs by itself."""
    from .inspect import inspect, inspect_tokens

    try:
        if job.error is not None:
            raise InputError(*job.error)
        options = job_options(job, defaults)
        if packed is None:
            return {"line": job.number, **inspect(model, job.text, **options).to_json()}
        tok, traces = packed
        rest = {k: v for k, v in options.items() if k not in ("truncate", "chat", "system")}  # how the text became tokens
        return {"line": job.number, **inspect_tokens(model, tok, traces=traces, **rest).to_json()}
    except AttnError as exc:
        return error_document(job.number, exc)
    except Exception as exc:  # a bug, but only this line's
        return {
            "line": job.number,
            "error": {
                "code": "internal",
                "message": f"unexpected {type(exc).__name__}: {exc}",
                "fix": "please report this bug, with the input line",
                "exit_status": int(ExitStatus.ERROR),
            },
        }


def exit_status(exc: AttnError) -> int:
    """The exit status the CLI gives `exc` when it ends a single command."""
    return int(STATUS_BY_CODE.get(exc.code, ExitStatus.ERROR))


def error_document(number: int, exc: AttnError) -> dict:
    """The CLI's JSON error object ($defs/error) plus "line"."""
    error = {"code": exc.code, "message": exc.message, "fix": exc.fix, "exit_status": exit_status(exc)}
    if isinstance(exc, QueryNotFound) and exc.candidates:
        error["candidates"] = list(exc.candidates)
    return {"line": number, "error": error}


def failed(doc: dict) -> bool:
    return "error" in doc


def summarise(docs: Iterable[dict]) -> tuple[int, int]:
    """(lines that succeeded, lines that failed)."""
    ok = bad = 0
    for doc in docs:
        bad += failed(doc)
        ok += not failed(doc)
    return ok, bad


@cache
def inspect_fields() -> tuple[str, ...]:
    """The top-level fields of an inspect document, in order: read from the shipped schema
    ($defs/inspect), so that a field added there can be selected without a change here."""
    from .result import json_schema

    return tuple(k for k in json_schema()["$defs"]["inspect"]["properties"] if k != "line")  # "line" is always kept


def check_fields(fields: Iterable[str]) -> None:
    """Raise InputError, listing the valid names, if any field is not a top-level field."""
    valid = inspect_fields()
    unknown = [f for f in fields if f not in valid and f not in ALWAYS_KEPT]
    if unknown:
        raise InputError(
            f"unknown field {', '.join(map(repr, unknown))}; the fields are: {', '.join(valid)}",
            "pick fields from that list (line and schema_version are always kept)",
        )


def select_fields(doc: dict, fields: Iterable[str]) -> dict:
    """`doc` with only the given top-level fields and ALWAYS_KEPT, in the document's order.
    An error document is kept whole. Assumes check_fields(fields) has passed."""
    keep = {*fields, *ALWAYS_KEPT}
    return {k: v for k, v in doc.items() if k in keep}


def check_workers(workers: int) -> None:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InputError(f"--workers {workers!r} is not valid", "give --workers 1 or more")


def check_defaults(defaults: dict) -> None:
    """A programming error in the caller, not bad input: the CLI builds `defaults`."""
    unknown = sorted(set(defaults) - set(OPTIONS))
    if unknown:
        raise TypeError(f"unknown batch defaults {unknown}; expected some of {OPTIONS}")


def run_batch(
    model_path: str | None,
    lines: Iterable[str],
    defaults: dict,
    workers: int = 1,
    fields: list[str] | None = None,
    on_done: Callable[[int], None] | None = None,
) -> Iterator[dict]:
    """One document per input line, in input order (see run_job for both shapes), streamed.

    lines: as iterating a text file gives them (line breaks optional), or one string, split at
    its line breaks; a final line break ends the last line and does not start another.
    defaults: keyword arguments of `inspect` (keys from OPTIONS) for every line.
    fields: if given, each document keeps only these top-level fields (see select_fields).
    on_done(n): called when line n is answered, just before it is yielded; lines are answered
    in order, so n is also how many are done.
    workers > 1: that many spawned processes, each loading the model once from `model_path`.

    Raises InputError (workers, fields) or ModelError (the model) at once, before yielding.
    """
    check_defaults(defaults)
    check_workers(workers)
    if fields is not None:
        check_fields(fields)
    from ..loading.model import load_model

    # Loaded here even when workers load their own: a bad model fails now, as a ModelError,
    # instead of as a broken pool once the first line is sent.
    model = load_model(model_path, release_weights=False)  # many texts: keep the pages
    if isinstance(lines, str):
        lines = io.StringIO(lines, newline=None)  # line breaks as a text file in universal-newline mode
    jobs = _check_query_given((parse_line(line, n) for n, line in enumerate(lines, start=1)), defaults)
    if workers == 1:
        docs = (_select(doc, fields) for pack in packs(jobs) for doc in answer_pack(model, pack, defaults))
    else:
        docs = _parallel(model_path, jobs, defaults, fields, workers)
    return _report(docs, on_done)


def _check_query_given(jobs: Iterator[Job], defaults: dict) -> Iterator[Job]:
    """`jobs`, unchanged, once the first line that runs is known not to lack a query: plain text
    without a batch-wide --query or --query-index would fail on every line, so refuse up front."""
    from itertools import chain

    seen: list[Job] = []
    for job in jobs:
        seen.append(job)
        if job.error is None:
            break
    first = seen[-1] if seen else None
    if first is not None and first.error is None and not first.overrides and defaults.get("query") is None and defaults.get("query_index") is None:
        raise InputError(
            f"line {first.number} is plain text, and no query was given for plain lines",
            "add --query WORD or --query-index N, or write JSONL lines with their own query, e.g. " + JSON_EXAMPLE,
        )
    return chain(seen, jobs)


def _answer(model: Model, job: Job, defaults: dict, fields: list[str] | None) -> dict:
    return _select(run_job(model, job, defaults), fields)


def _select(doc: dict, fields: list[str] | None) -> dict:
    return doc if fields is None else select_fields(doc, fields)


def _report(docs: Iterator[dict], on_done: Callable[[int], None] | None) -> Iterator[dict]:
    try:
        for n, doc in enumerate(docs, start=1):
            if on_done is not None:
                on_done(n)
            yield doc
    finally:  # a reader that stops early stops the workers now, not when `docs` is collected
        close = getattr(docs, "close", None)
        if close is not None:
            close()


# Worker processes: the model is loaded in each one from its path and never pickled.
_WORKER: tuple[Model, dict, list[str] | None] | None = None

# One BLAS thread per worker: the workers are the parallelism. With OpenBLAS's default (a thread
# per core in every worker), 2 workers on a busy 2-core machine ran 20 lines in 7.1 s instead of
# 1.2 s. The price: BLAS sums in another order than a multi-threaded process does, so numbers
# can differ from a workers=1 run in the last float32 bits (as they do between machines).
# attn's own threads too (ATTN_THREADS, see models/runtime.py): one each, for the same reason.
_BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "ATTN_THREADS")


def _init_worker(model_path: str | None, defaults: dict, fields: list[str] | None, parent: int | None = None) -> None:
    global _WORKER
    if parent is not None:
        bind_to_parent(parent)
    for name in _BLAS_THREADS:
        os.environ.setdefault(name, "1")  # a user's own setting wins
    from ..loading.model import load_model  # imports NumPy, which reads those variables once

    _WORKER = (load_model(model_path, release_weights=False), defaults, fields)


def _run_chunk(jobs: list[Job]) -> list[dict]:
    assert _WORKER is not None, "worker not initialised"
    model, defaults, fields = _WORKER
    return [_select(doc, fields) for doc in answer_pack(model, jobs, defaults)]


def _chunks(jobs: Iterable[Job], size: int) -> Iterator[list[Job]]:
    it = iter(jobs)
    while chunk := list(islice(it, size)):
        yield chunk


def _parallel(model_path: str | None, jobs: Iterable[Job], defaults: dict, fields: list[str] | None, workers: int) -> Iterator[dict]:
    """Chunks of jobs to `workers` processes, answers back in input order.

    A window of at most workers·AHEAD chunks is in flight, so neither the input nor unread
    answers pile up (Pool.imap reads its input ahead and keeps every answer the reader has not
    taken yet). ProcessPoolExecutor rather than Pool: a worker that dies (killed, out of memory)
    raises BrokenProcessPool instead of hanging the run. Spawn on every platform, not the OS
    default (fork on Linux): a forked child inherits the locks of the parent's threads
    (tokenizers, BLAS) in whatever state they were; and spawn needs the model path, not the Model.
    """
    pool = ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker, initargs=(model_path, defaults, fields, os.getpid())
    )
    pending: deque = deque()
    try:
        for chunk in _chunks(jobs, CHUNK):
            pending.append(pool.submit(_run_chunk, chunk))
            if len(pending) >= workers * AHEAD:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()
    finally:  # also when the reader stops early: drop queued chunks, wait for running ones
        pool.shutdown(wait=True, cancel_futures=True)
