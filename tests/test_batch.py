"""`attn batch` as a library: line parsing, per-line errors in place, order with workers, fields."""

from __future__ import annotations

import inspect as python_inspect
import io
import json

import jsonschema
import numpy as np
import pytest

from attn_cli.compute import batch
from attn_cli.compute.batch import (
    LINE_FIELDS,
    Job,
    check_fields,
    inspect_fields,
    job_options,
    parse_line,
    run_batch,
    run_job,
    select_fields,
    summarise,
)
from attn_cli.compute.inspect import inspect
from attn_cli.compute.options import NAMES, InspectOptions
from attn_cli.errors import InputError, ModelError

CAT = "The cat sat on the mat because it was tired."
DOG = "The dog chased the other dog."


def expected(model, number: int, text: str, **options) -> dict:
    return {"line": number, **inspect(model, text, **options).to_json()}


def split_floats(value) -> tuple[object, list[float]]:
    """(value with each float replaced by "<float>", the floats in order)."""
    floats: list[float] = []

    def walk(x):
        if isinstance(x, float):
            floats.append(x)
            return "<float>"
        if isinstance(x, dict):
            return {k: walk(v) for k, v in x.items()}
        if isinstance(x, list):
            return [walk(v) for v in x]
        return x

    return walk(value), floats


def check_schema(doc: dict, schema: dict) -> None:
    """A batch document is a shipped-schema document ($defs/inspect or $defs/error) plus "line".
    (Validating a full inspect document takes about 0.3 s, so tests check a few, not all.)"""
    kind = "error" if "error" in doc else "inspect"
    jsonschema.validate({k: v for k, v in doc.items() if k != "line"}, schema["$defs"][kind] | {"$defs": schema["$defs"]})


# --- parse_line: pure, never raises -------------------------------------------------------


def test_plain_line_is_text_without_its_line_break():
    assert parse_line("The cat sat.\r\n", 4) == Job(4, "The cat sat.", {}, None)
    assert parse_line("a {brace} inside is text\n", 2) == Job(2, "a {brace} inside is text", {}, None)


def test_a_line_that_starts_with_a_brace_is_json():
    job = parse_line("  {braces} first", 1)
    assert job.error == (
        "invalid JSON: Expecting property name enclosed in double quotes at column 4",
        'write one JSON object per line, e.g. {"text": "The cat sat.", "query": "cat"} (text starting with { must be written that way too)',
    )


def test_json_line_overrides_and_keeps_its_text_exactly():
    job = parse_line('  {"text": "  The dog ran. ", "query": "dog", "layer": "all", "head": 3}\n', 7)
    assert job == Job(7, "  The dog ran. ", {"query": "dog", "layer": "all", "head": 3}, None)


def test_bom_on_the_first_line_does_not_hide_a_json_object():
    assert parse_line('\ufeff{"text": "Hi there."}', 1) == Job(1, "Hi there.", {}, None)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("", "the line is empty"),
        ("   \n", "the line is empty"),
        ('{"text": "x", "query": }', "invalid JSON: Expecting value at column 24"),
        ('{"text": "x"} trailing', "invalid JSON: Extra data at column 15"),
        ('{"query": "x"}', 'the object has no "text"'),
        ('{"text": "x", "qeury": "x"}', 'unknown field "qeury"; a line may have: ' + ", ".join(LINE_FIELDS)),
        ('{"text": "x", "query_index": "3"}', '"query_index" must be an integer or null, not "3"'),
        ('{"text": "x", "query_index": true}', '"query_index" must be an integer or null, not true'),
        ('{"text": null}', '"text" must be a string, not null'),
        ('{"text": "x", "steps": 1}', '"steps" must be true or false, not 1'),
    ],
)
def test_unusable_lines_become_jobs_that_carry_their_error(line, message):
    job = parse_line(line, 3)
    assert job.number == 3
    assert job.error is not None and job.error[0] == message
    assert job.error[1]  # every error says what to do


def test_a_json_line_that_names_its_query_replaces_both_default_query_options():
    defaults = InspectOptions(query="cat", layer=2, top_k=3)
    assert job_options(Job(1, "t", {"query_index": 4}), defaults) == InspectOptions(query_index=4, layer=2, top_k=3)
    assert job_options(Job(1, "t", {"layer": "all"}), defaults) == InspectOptions(query="cat", layer="all", top_k=3)
    assert job_options(Job(1, "t", {}), InspectOptions(query_index=1)) == InspectOptions(query_index=1)


def test_a_line_may_set_every_option_of_inspect():
    parameters = list(python_inspect.signature(inspect).parameters)
    assert parameters[:2] == ["model", "text"]
    assert NAMES == tuple(parameters[2:])
    assert LINE_FIELDS == ("text", *NAMES)


def test_a_lines_options_are_checked_with_the_defaults_and_named_as_in_json(model):
    # The line alone is fine; over --steps it is not: the error names the JSON fields.
    job = parse_line('{"text": "The cat sat.", "query": "cat", "level": "word"}', 5)
    assert job.error is None
    doc = run_job(model, job, InspectOptions(steps=True))
    assert doc["error"]["message"] == "`steps=True` shows token vectors, so it cannot be used with `level='word'`"
    assert doc["error"]["fix"] == "drop `steps=True` or `level='word'`" and doc["error"]["exit_status"] == 2
    doc = run_job(model, parse_line('{"text": "The cat sat.", "query": "cat", "top_k": 0}', 6), InspectOptions())
    assert (doc["line"], doc["error"]["message"]) == (6, "`top_k=0` is not valid")


def test_fields_are_the_top_level_fields_of_a_document(model):
    seq2seq = {"attention", "target", "decoder_tokens"}  # encoder–decoder models' only (tests/test_seq2seq_cli.py)
    assert set(inspect_fields()) == set(inspect(model, CAT, "cat").to_json()) | seq2seq


def test_check_fields_lists_the_valid_ones():
    check_fields(["query", "layers", "line", "schema_version"])
    with pytest.raises(InputError) as info:
        check_fields(["query", "qeury", "weights"])
    assert info.value.message == "unknown field 'qeury', 'weights'; the fields are: " + ", ".join(inspect_fields())
    assert "always kept" in info.value.fix


def test_select_fields_keeps_line_and_version_and_whole_errors():
    doc = {"line": 2, "schema_version": "1.0", "model": {}, "text": "t", "query": {"text": "q"}, "notes": []}
    assert select_fields(doc, ["notes", "query"]) == {"line": 2, "schema_version": "1.0", "query": {"text": "q"}, "notes": []}
    error = {"line": 5, "error": {"code": "bad_input", "message": "m", "fix": "f", "exit_status": 2}}
    assert select_fields(error, ["query"]) == error


def test_summarise_counts_successes_and_failures():
    docs = [{"line": 1, "schema_version": "1.0"}, {"line": 2, "error": {}}, {"line": 3, "schema_version": "1.0"}]
    assert summarise(iter(docs)) == (2, 1)


# --- real runs on the bundled model --------------------------------------------------------


def test_plain_lines_take_the_default_query(model, schema):
    lines = [f"{CAT}\n", "A cat is not a dog.\n"]
    docs = list(run_batch(None, lines, InspectOptions(query="cat", layer=3, top_k=2)))
    assert docs == [
        expected(model, 1, CAT, query="cat", layer=3, top_k=2),
        expected(model, 2, "A cat is not a dog.", query="cat", layer=3, top_k=2),
    ]
    assert [d["query"]["text"] for d in docs] == ["cat", "cat"]
    assert [d["layers"][0]["layer"] for d in docs] == [3, 3]
    assert all(len(h["top"]) == 2 for d in docs for h in d["layers"][0]["heads"])
    check_schema(docs[1], schema)


def test_json_lines_set_their_own_query_and_layer(model, schema):
    lines = [
        json.dumps({"text": DOG, "query": "dog#2", "layer": 1}),
        json.dumps({"text": CAT, "query_index": 8, "layer": "all", "head": "mean"}),  # index beats the default query
        CAT,  # plain: the defaults again
    ]
    docs = list(run_batch(None, lines, InspectOptions(query="cat", head=4)))
    assert docs == [
        expected(model, 1, DOG, query="dog#2", layer=1, head=4),
        expected(model, 2, CAT, query_index=8, layer="all", head="mean"),
        expected(model, 3, CAT, query="cat", head=4),
    ]
    assert docs[0]["query"] == {"text": "dog", "token_indices": [6], "occurrence": 2, "occurrences": 2}
    assert [layer["layer"] for layer in docs[1]["layers"]] == list(range(model.spec.layers))
    assert docs[1]["query"]["text"] == "it" and docs[1]["layers"][0]["focus"] == ["mean"]
    assert [d["layers"][-1]["focus"] for d in (docs[0], docs[2])] == [[4], [4]]
    check_schema(docs[0], schema)


BAD_MIDDLE = [
    f"{CAT}\n",
    "\n",  # 2: blank
    f"{DOG}\n",  # 3: the default query "cat" is not in it
    '{"text": "The dog ran.", "query": null}\n',  # 4: no query at all
    "word " * 600 + "\n",  # 5: too long
    '{"text": "The cat ran.", "query": "cat"\n',  # 6: invalid JSON
    '{"text": "The cat ran.", "query": "cat"}\n',
]


def test_bad_lines_fail_in_place_and_the_run_goes_on(model, schema):
    docs = list(run_batch(None, io.StringIO("".join(BAD_MIDDLE)), InspectOptions(query="cat")))
    assert [d["line"] for d in docs] == list(range(1, 8))
    errors = {d["line"]: d["error"] for d in docs if "error" in d}
    assert {n: (e["code"], e["exit_status"]) for n, e in errors.items()} == {
        2: ("bad_input", 2),
        3: ("query_not_found", 3),
        4: ("bad_input", 2),
        5: ("bad_input", 2),
        6: ("bad_input", 2),
    }
    assert errors[2]["message"] == "the line is empty"
    assert errors[3]["candidates"] == ["The", "dog", "chased", "the", "other", "dog", "."]
    assert errors[4]["message"] == "no query given"
    assert errors[5]["message"] == "the text is 602 tokens long, but the model reads at most 512"
    assert errors[6]["message"] == "invalid JSON: Expecting ',' delimiter at column 40"
    assert all("candidates" not in e for n, e in errors.items() if n != 3)
    assert docs[0] == expected(model, 1, CAT, query="cat")
    assert docs[6] == expected(model, 7, "The cat ran.", query="cat")
    assert summarise(docs) == (2, 5)
    for doc in [docs[6], *(d for d in docs if "error" in d)]:
        check_schema(doc, schema)


def test_a_trailing_newline_is_not_a_line_but_a_blank_last_line_is():
    assert [d["line"] for d in run_batch(None, "The cat sat.\nA cat.\n", InspectOptions(query="cat"))] == [1, 2]
    docs = list(run_batch(None, "The cat sat.\r\n\r\n", InspectOptions(query="cat")))
    assert ["error" in d for d in docs] == [False, True]
    assert docs[1]["error"]["message"] == "the line is empty"


def test_an_unexpected_exception_fails_only_its_line(model, schema, monkeypatch):
    from attn_cli.compute.inspect import inspect_with

    real = inspect_with

    def flaky(model, text, options):
        if text == "boom":
            raise ZeroDivisionError("division by zero")
        return real(model, text, options)

    monkeypatch.setattr("attn_cli.compute.inspect.inspect_with", flaky)
    docs = [run_job(model, parse_line(line, n), InspectOptions(query="cat")) for n, line in enumerate(["A cat.", "boom", "The cat."], 1)]
    assert docs[1] == {
        "line": 2,
        "error": {
            "code": "internal",
            "message": "unexpected ZeroDivisionError: division by zero",
            "fix": "please report this bug, with the input line",
            "exit_status": 1,
        },
    }
    assert [d["query"]["text"] for d in (docs[0], docs[2])] == ["cat", "cat"]
    check_schema(docs[1], schema)


def test_fields_selection_on_a_run(model):
    lines = [CAT, "", DOG]
    docs = list(run_batch(None, lines, InspectOptions(query="the"), fields=["query", "notes"]))
    assert [list(d) for d in docs] == [["line", "schema_version", "query", "notes"], ["line", "error"], ["line", "schema_version", "query", "notes"]]
    full = expected(model, 3, DOG, query="the")
    assert docs[2] == {k: full[k] for k in ("line", "schema_version", "query", "notes")}
    assert docs[2]["notes"] == ["'The' occurs 2 times; this is the first (The#1); use The#2 for the next"]


def test_bad_arguments_fail_before_anything_runs(tmp_path):
    calls = []
    with pytest.raises(InputError) as info:
        run_batch(None, [CAT], InspectOptions(query="cat"), workers=0, on_done=calls.append)
    assert info.value.message == "--workers 0 is not valid"
    with pytest.raises(InputError):
        run_batch(None, [CAT], InspectOptions(query="cat"), fields=["nope"])
    with pytest.raises(ModelError):
        run_batch(str(tmp_path / "missing"), [CAT], InspectOptions(query="cat"))
    assert calls == []


def test_workers_keep_input_order_and_match_one_process(monkeypatch):
    # More lines than workers × chunk, errors among them, and texts of very different lengths,
    # so that answers come back out of order and must be put back in it.
    monkeypatch.setattr(batch, "CHUNK", 2)
    monkeypatch.setattr(batch, "AHEAD", 1)
    long = " ".join(["The cat sat on the mat."] * 20)
    lines = [long, CAT, "", DOG, '{"text": "A cat.", "layer": "all"}', "word " * 600, long, "{oops", "The cat.", CAT, DOG, long]
    done_1, done_2 = [], []
    one = list(run_batch(None, lines, InspectOptions(query="cat"), workers=1, fields=["text", "query", "layers"], on_done=done_1.append))
    two = list(run_batch(None, lines, InspectOptions(query="cat"), workers=2, fields=["text", "query", "layers"], on_done=done_2.append))
    # Same documents, numbers aside: workers run NumPy with one BLAS thread, which sums in
    # another order than this process's BLAS threads, so float32 results may differ in the last bits.
    (skeleton_1, floats_1), (skeleton_2, floats_2) = split_floats(one), split_floats(two)
    assert skeleton_2 == skeleton_1
    np.testing.assert_allclose(floats_2, floats_1, rtol=1e-4, atol=1e-4)
    assert [d["line"] for d in two] == list(range(1, len(lines) + 1))
    assert done_1 == done_2 == list(range(1, len(lines) + 1))
    assert summarise(two) == (7, 5)
    assert [d.get("text") for d in two] == [long, CAT, None, None, "A cat.", None, long, None, "The cat.", CAT, None, long]
    assert [len(d["layers"]) for d in two if "layers" in d] == [1, 1, 6, 1, 1, 1, 1]
    assert [d["error"]["exit_status"] for d in two if "error" in d] == [2, 3, 2, 2, 3]


def test_input_is_read_as_needed_and_a_reader_that_stops_early_stops_the_workers(monkeypatch):
    monkeypatch.setattr(batch, "CHUNK", 2)
    monkeypatch.setattr(batch, "AHEAD", 1)
    read = []

    def lines():
        for n in range(10_000):
            read.append(n)
            yield f"The cat number {n}."

    docs = run_batch(None, lines(), InspectOptions(query="cat"), workers=2)
    first = [next(docs) for _ in range(3)]
    assert [d["line"] for d in first] == [1, 2, 3]
    assert [d["query"]["text"] for d in first] == ["cat"] * 3
    # At most the window of chunks in flight (workers × AHEAD × CHUNK lines), plus one chunk.
    assert len(read) <= (2 * batch.AHEAD + 1) * batch.CHUNK
    docs.close()  # the workers are stopped: queued chunks are never run
    assert len(read) <= (2 * batch.AHEAD + 1) * batch.CHUNK


def test_packed_lines_answer_exactly_as_each_line_alone(model):
    # One process packs lines into one forward pass (compute/packed.py): the documents must be
    # the very same, float for float, as each line run by itself, whatever sits beside it in
    # its pack: errors, lines too long (failed, or truncated), JSON lines with their own options.
    long = " ".join(["The cat sat on the mat."] * 20)
    lines = [
        CAT, DOG, "", long, '{"text": "A cat.", "layer": "all", "head": "all"}', "word " * 600,
        '{"text": "' + "cat " * 600 + '", "truncate": true}', "{oops", "The cat.", "cat", CAT + " " + DOG,
    ] * 3
    docs = list(run_batch(None, lines, InspectOptions(query="cat")))
    alone = [run_job(model, parse_line(line, n), InspectOptions(query="cat")) for n, line in enumerate(lines, 1)]
    assert docs == alone
    assert summarise(docs) == (21, 12)  # per copy: blank, too long, bad JSON, and DOG has no "cat"


@pytest.mark.parametrize("name", ["bundled", "bert", "roberta", "distilbert", "modernbert", "nomic_bert", "mpnet"])
def test_packed_traces_are_bit_identical_to_each_text_alone(model, name):
    from pathlib import Path

    from attn_cli.loading.model import load_model
    from attn_cli.loading.tokenizer import tokenize

    m = model if name == "bundled" else load_model(Path(__file__).parent / "fixtures" / "tiny" / name)
    assert m.packs
    # Over 256 tokens in all, so two threads split the pack too. (Texts of 1-3 tokens are never
    # packed: OpenBLAS's small-matrix kernels sum their products in another order.)
    texts = [CAT, DOG, "A cat.", " ".join(["The cat sat on the mat."] * 30), "The cat."]
    ids = [tokenize(m.tokenizer, t, max_tokens=m.spec.max_positions, truncate=True).ids for t in texts]
    packed = m.trace_packed(ids)
    for one, traces in zip(ids, packed, strict=True):
        alone = list(m.trace(one))
        assert len(traces) == len(alone) == m.spec.layers
        for a, b in zip(traces, alone, strict=True):
            for field in ("q", "k", "v", "head_output", "hidden"):
                if name == "bundled":  # a real model: bit for bit
                    assert np.array_equal(getattr(a, field), getattr(b, field)), (field, a.layer)
                else:
                    # A tiny test model (width 32, values up to ~5): every product is small enough
                    # for OpenBLAS's small-matrix kernels, whose summation order depends on the
                    # row count, so packed and alone differ by an ulp or two, carried through the
                    # layers (~2e-6), a few ulps of the array's scale (ModernBERT's hidden states
                    # reach ~10); a wrong segment, position or window would differ by ~1.
                    want = getattr(b, field)
                    atol = 1e-5 * max(1.0, float(np.abs(want).max()))
                    np.testing.assert_allclose(getattr(a, field), want, rtol=1e-5, atol=atol, err_msg=f"{name} {field} {a.layer}")
