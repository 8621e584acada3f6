"""`attn batch`: inspect many texts, one per input line, as a stream of JSON documents.

A line is plain text (it takes the batch-wide defaults) or a JSON object whose fields override
them for that line. A line that fails becomes an error object in its place and the run goes on,
so output n always answers input line n, with or without worker processes. A model that cannot
run (a ModelError) is no line's fault: it stops the run.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from dataclasses import field
from functools import cache
from typing import TYPE_CHECKING

from ..errors import AttnError, InputError, ModelError
from ..exit_status import error_json
from ..records import frozen
from .options import NAMES, InspectOptions, check_type
from .packed import answer_pack, packs
from .workers import check_workers, chunks, ordered_map

# NumPy is imported late (in the functions that need it), so that a worker process can limit
# BLAS threads before NumPy loads: see compute/workers.py.
if TYPE_CHECKING:
    from ..loading.model import Model


# What a JSON line may hold: "text", and any field of `InspectOptions` (its keyword arguments).
LINE_FIELDS = ("text", *NAMES)

# Kept whatever fields are selected: which line a document answers, its version, an error.
ALWAYS_KEPT = ("line", "schema_version", "error")


CHUNK = 4  # lines per task sent to a worker: fewer round trips, yet a progress bar that moves
AHEAD = 4  # tasks in flight per worker: keeps workers busy while bounding memory on both sides

JSON_EXAMPLE = '{"text": "The cat sat.", "query": "cat"}'


@frozen
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
    obj, problem = json_object(text)
    problem = problem or _check_object(obj)
    if problem is not None:
        return Job(number, text, error=(problem, _json_fix()))
    return Job(number, obj["text"], {k: v for k, v in obj.items() if k != "text"})


def json_object(text: str) -> tuple[dict | None, str | None]:
    """A JSON line -> (the object, None), or (None, what is wrong with it); never raises. Read
    alike by `batch` and `stats`."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON: {exc.msg} at column {exc.colno}"
    except RecursionError:
        return None, "invalid JSON: nested too deeply"
    except ValueError as exc:  # an integer of over 4,300 digits: Python refuses to convert it
        return None, f"invalid JSON: {str(exc).split(';')[0]}"
    return (obj, None) if isinstance(obj, dict) else (None, "invalid JSON: not an object")


def _json_fix() -> str:
    # Every line starting with `{` is read as JSON, so plain text that starts with one must be wrapped.
    return f"write one JSON object per line, e.g. {JSON_EXAMPLE} (text starting with {{ must be written that way too)"


def _check_object(obj) -> str | None:
    """What is wrong with a parsed JSON line (a field it may not have, or of the wrong type), or None."""
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
    """One line -> {"line": n, **inspect document}, or {"line": n, "error": {...}}. Raises only
    a ModelError (the model's, not the line's: a line's "chat" on a model without a template is
    the line's); any other failure is this line's alone, even a bug. `packed`: (tokenization,
    traces) of the line already run in a pack (see `packed.answer_pack`), else the line runs by
    itself."""
    from .inspect import inspect_tokens, inspect_with

    try:
        if job.error is not None:
            raise InputError(*job.error)
        options = job_options(job, defaults)
        if packed is None:
            return {"line": job.number, **inspect_with(model, job.text, options).to_json()}
        tok, traces = packed
        return {"line": job.number, **inspect_tokens(model, tok, options, traces).to_json()}
    except ModelError as exc:
        if job.overrides.get("chat") is not True:
            raise
        # The line asked for the chat template this model lacks: its own error, not the run's
        # (raised, it ended the run and lost the lines of its pack already answered).
        return {"line": job.number, **error_json(exc.code, exc.message, exc.fix)}
    except AttnError as exc:
        return {"line": job.number, **error_json(exc.code, exc.message, exc.fix, getattr(exc, "candidates", ()))}
    except Exception as exc:  # a bug, but only this line's
        return {"line": job.number, **error_json("internal", f"unexpected {type(exc).__name__}: {exc}", "please report this bug, with the input line")}


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




def run_batch(
    model_path: str | None,
    lines: Iterable[str],
    defaults: InspectOptions,
    workers: int = 1,
    fields: list[str] | None = None,
    on_done: Callable[[int], None] | None = None,
    max_memory: int | None = None,
) -> Iterator[dict]:
    """One document per input line, in input order (see run_job for both shapes), streamed.

    lines: as iterating a text file gives them (line breaks optional), or one string, split at
    its line breaks; a final line break ends the last line and does not start another.
    defaults: the options of every line, as far as a JSON line does not set its own.
    fields: if given, each document keeps only these top-level fields (see select_fields).
    on_done(n): called when line n is answered, just before it is yielded; lines are answered
    in order, so n is also how many are done.
    workers > 1: that many spawned processes, each loading the model once from `model_path`.
    max_memory: bytes of a GGUF model's de-quantized weights kept between passes (None: the
    default; `loading.model.budgeted`), each of `workers` processes keeping its share
    (`budget.share`); the rest is de-quantized again at each pass, to the same numbers.

    Raises InputError (workers, fields, an `attention` for a model without cross-attention) or
    ModelError (the model) at once, before yielding.
    """
    check_workers(workers)
    if fields is not None:
        check_fields(fields)
    from ..loading.budget import share
    from ..loading.model import load_for_passes

    # Loaded and run once here even when workers load their own: a model that cannot run fails
    # now, as a ModelError, before any line is answered. Many texts: the pages are kept, and
    # float32 weights up to the budget, all of it for the workers' when there are workers.
    model = load_for_passes(model_path, max_memory if workers == 1 else 0)
    _check_runs(model)
    if defaults.attention is not None and not model.has_cross_attention:
        from .seq2seq import check_kind

        check_kind(model, None, defaults.attention)  # every line would fail: refused once, as inspect refuses it
    if isinstance(lines, str):
        lines = io.StringIO(lines, newline=None)  # line breaks as a text file in universal-newline mode
    jobs = _check_query_given((parse_line(line, n) for n, line in enumerate(lines, start=1)), defaults)
    if workers == 1:
        docs = (_select(doc, fields) for pack in packs(jobs) for doc in answer_pack(model, pack, defaults))
    else:
        setup = (model_path, defaults, fields, share(max_memory, workers))
        docs = _flat(ordered_map(_load_worker, setup, _run_chunk, chunks(jobs, CHUNK), workers, AHEAD))
    return _report(docs, on_done)


def _check_runs(model: Model) -> None:
    """One forward pass over a word: weights the model cannot compute with (NaN, shapes that do
    not fit its config) are only found when a layer runs."""
    from ..loading.tokenizer import tokenize

    for _ in model.trace(tokenize(model.tokenizer, "a").ids):
        pass


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


def _select(doc: dict, fields: list[str] | None) -> dict:
    return doc if fields is None else select_fields(doc, fields)


def _report(docs: Iterator[dict], on_done: Callable[[int], None] | None) -> Iterator[dict]:
    with closing(docs):  # a reader that stops early stops the workers now, not when `docs` is collected
        for n, doc in enumerate(docs, start=1):
            if on_done is not None:
                on_done(n)
            yield doc


# Worker processes (compute/workers.py): each loads the model once from its path.


def _load_worker(model_path: str | None, defaults: InspectOptions, fields: list[str] | None, budget: int) -> tuple:
    from ..loading.model import load_for_passes

    return load_for_passes(model_path, budget), defaults, fields


def _flat(answers: Iterator[list[dict]]) -> Iterator[dict]:
    with closing(answers):  # stops the workers when the reader stops
        for chunk in answers:
            yield from chunk


def _run_chunk(state: tuple, jobs: list[Job]) -> list[dict]:
    model, defaults, fields = state
    return [_select(doc, fields) for doc in answer_pack(model, jobs, defaults)]
