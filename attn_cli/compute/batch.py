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
from .options import NAMES, InspectOptions, check_type
from .packed import answer_pack, packs

# NumPy is imported late (in the functions that need it), so that a worker process can limit
# BLAS threads before NumPy loads: see _init_worker.
if TYPE_CHECKING:
    from ..loading.model import Model


# What a JSON line may hold: "text", and any field of `InspectOptions` (its keyword arguments).
LINE_FIELDS = ("text", *NAMES)

# Kept whatever fields are selected: which line a document answers, its version, an error.
ALWAYS_KEPT = ("line", "schema_version", "error")


CHUNK = 4  # lines per task sent to a worker: fewer round trips, yet a progress bar that moves
AHEAD = 4  # tasks in flight per worker: keeps workers busy while bounding memory on both sides

JSON_EXAMPLE = '{"text": "The cat sat.", "query": "cat"}'


@dataclass(frozen=True)
class Job:
    """One input line, parsed. `overrides`: the options a JSON line sets (fields of InspectOptions).
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
    """What is wrong with a parsed JSON line (a field it may not have, or of the wrong type), or None."""
    if not isinstance(obj, dict):
        return "invalid JSON: not an object"
    unknown = [k for k in obj if k not in LINE_FIELDS]
    if unknown:
        return f"unknown field {', '.join(map(json.dumps, unknown))}; a line may have: {', '.join(LINE_FIELDS)}"
    if "text" not in obj:
        return 'the object has no "text"'
    for key, value in obj.items():
        if key == "text" and not isinstance(value, str):
            return f'"text" must be a string, not {json.dumps(value)}'
        if key != "text":
            try:
                check_type(key, value)
            except InputError as exc:
                return exc.message
    return None


def job_options(job: Job, defaults: InspectOptions) -> InspectOptions:
    """The options of one line: the defaults, then what the line sets (see InspectOptions.from_json).
    Raises OptionError if they do not go together."""
    return InspectOptions.from_json(job.overrides, defaults)


def run_job(model: Model, job: Job, defaults: InspectOptions, packed: tuple | None = None) -> dict:
    """One line -> {"line": n, **inspect document}, or {"line": n, "error": {...}}. Never raises
    an Exception: a failing line must not end the run. `packed`: (tokenization, traces) of the
    line already run in a pack (see `packed.answer_pack`), else the line runs by itself."""
    from .inspect import inspect_tokens, inspect_with

    try:
        if job.error is not None:
            raise InputError(*job.error)
        options = job_options(job, defaults)
        if packed is None:
            return {"line": job.number, **inspect_with(model, job.text, options).to_json()}
        tok, traces = packed
        return {"line": job.number, **inspect_tokens(model, tok, options, traces).to_json()}
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


def run_batch(
    model_path: str | None,
    lines: Iterable[str],
    defaults: InspectOptions,
    workers: int = 1,
    fields: list[str] | None = None,
    on_done: Callable[[int], None] | None = None,
) -> Iterator[dict]:
    """One document per input line, in input order (see run_job for both shapes), streamed.

    lines: as iterating a text file gives them (line breaks optional), or one string, split at
    its line breaks; a final line break ends the last line and does not start another.
    defaults: the options of every line, as far as a JSON line does not set its own.
    fields: if given, each document keeps only these top-level fields (see select_fields).
    on_done(n): called when line n is answered, just before it is yielded; lines are answered
    in order, so n is also how many are done.
    workers > 1: that many spawned processes, each loading the model once from `model_path`.

    Raises InputError (workers, fields) or ModelError (the model) at once, before yielding.
    """
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


def _check_query_given(jobs: Iterator[Job], defaults: InspectOptions) -> Iterator[Job]:
    """`jobs`, unchanged, once the first line that runs is known not to lack a query: plain text
    without a batch-wide --query or --query-index would fail on every line, so refuse up front."""
    from itertools import chain

    seen: list[Job] = []
    for job in jobs:
        seen.append(job)
        if job.error is None:
            break
    first = seen[-1] if seen else None
    if first is not None and first.error is None and not first.overrides and defaults.query is None and defaults.query_index is None:
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
