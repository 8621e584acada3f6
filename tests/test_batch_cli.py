"""`attn batch` as a real process: NDJSON on stdout in input order, errors per line, exit codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import attn, validate, write_safetensors

from attn_cli.cli import ExitStatus
from attn_cli.compute.result import SCHEMA_VERSION
from attn_cli.loading.weights import SafetensorsFile

SAMPLES = Path(__file__).parent.parent / "sample_inputs"
TINY = Path(__file__).parent / "fixtures" / "tiny"


def test_jsonl_file_gives_one_valid_document_per_line(schema):
    p = attn("batch", str(SAMPLES / "queries.jsonl"))
    assert p.returncode == 0 and p.stderr == ""  # no progress bar when stderr is not a terminal
    docs = [json.loads(line) for line in p.stdout.splitlines()]
    assert [d["line"] for d in docs] == [1, 2, 3, 4]
    for doc in docs:
        validate(doc, schema, "inspect")
    assert docs[1]["layers"][0]["layer"] == 3 and docs[1]["layers"][0]["focus"] == [7]
    assert docs[2]["layers"][0]["focus"] == ["mean"] and docs[3]["query"]["occurrence"] == 2
    single = json.loads(attn("inspect", "The cat sat on the mat because it was tired.", "-q", "it", "-l", "3", "--head", "7", "--json").stdout)
    assert {k: v for k, v in docs[1].items() if k != "line"} == single  # the same document as inspect --json


def test_bad_lines_fail_alone_and_the_exit_status_says_so(schema):
    stdin = "The cat sat.\n\nThe dog ran.\n" + "word " * 600 + "\n{not json\n"
    p = attn("batch", "-", "-q", "cat", "--fields", "query", stdin=stdin)
    assert p.returncode == ExitStatus.SOME_FAILED
    docs = [json.loads(line) for line in p.stdout.splitlines()]
    assert [d["line"] for d in docs] == [1, 2, 3, 4, 5]
    assert docs[0] == {"line": 1, "schema_version": SCHEMA_VERSION, "query": {"text": "cat", "token_indices": [2], "occurrence": 1, "occurrences": 1}}
    codes = {d["line"]: (d["error"]["code"], d["error"]["exit_status"]) for d in docs if "error" in d}
    assert codes == {2: ("bad_input", 2), 3: ("query_not_found", 3), 4: ("bad_input", 2), 5: ("bad_input", 2)}
    assert "602 tokens long" in docs[3]["error"]["message"]
    for doc in docs[1:]:
        validate(doc, schema, "error")


def test_workers_keep_input_order():
    one = attn("batch", str(SAMPLES / "sentences.txt"), "-i", "2", "--fields", "query")
    two = attn("batch", str(SAMPLES / "sentences.txt"), "-i", "2", "--fields", "query", "--workers", "2")
    assert one.returncode == two.returncode == 0 and one.stdout == two.stdout
    assert len(one.stdout.splitlines()) == len((SAMPLES / "sentences.txt").read_text().splitlines())


def test_whole_run_errors_are_single_json_objects():
    p = attn("batch", "no-such-file.txt", "-q", "x")
    assert p.returncode == ExitStatus.USAGE and p.stdout == "" and json.loads(p.stderr)["error"]["message"].startswith("cannot read no-such-file.txt")
    p = attn("batch", "-", "-q", "x", "--fields", "nope", stdin="x\n")
    assert p.returncode == ExitStatus.USAGE and p.stdout == "" and "nope" in json.loads(p.stderr)["error"]["message"]
    p = attn("batch", "-", "-q", "x", "--workers", "0", stdin="x\n")
    assert p.returncode == ExitStatus.USAGE and p.stdout == ""


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_model_that_cannot_run_is_the_runs_error_exit_4_before_any_output(tmp_path, workers, schema):
    folder = tmp_path / "llama"
    shutil.copytree(TINY / "llama", folder, ignore=shutil.ignore_patterns("ref_*.npz"))
    stored = SafetensorsFile(folder / "model.safetensors")
    tensors = {name: np.array(stored.raw(name)[0]) for name in stored.names()}
    del stored
    tensors["layers.1.self_attn.q_proj.weight"][0, 0] = np.nan  # loads; fails once layer 1 runs
    write_safetensors(folder / "model.safetensors", tensors)
    # A blank first line would be answered (with its error) before any line ran the model.
    p = attn("batch", "-", "-q", "cat", "--workers", workers, "-m", str(folder), stdin="\nThe cat sat.\nA cat.\n")
    assert (p.returncode, p.stdout) == (ExitStatus.MODEL, "")
    error = json.loads(p.stderr)
    validate(error, schema, "error")
    assert error["error"]["code"] == "model_error" and "NaN or infinite" in error["error"]["message"] and error["error"]["fix"]


def test_a_batch_wide_attention_is_refused_at_once_by_a_model_without_cross_attention():
    """--attention would fail every line of a BERT's batch: exit 2 before any output, as
    inspect refuses it; a line's own "target" fails that line alone (exit 6)."""
    p = attn("batch", "-", "--attention", "cross", stdin='{"text": "The cat sat.", "query": "cat"}\n')
    assert p.returncode == ExitStatus.USAGE and p.stdout == ""
    error = json.loads(p.stderr)["error"]
    assert error["message"] == "--attention is read only by encoder–decoder models, and all-MiniLM-L6-v2 (bert) has no cross-attention"
    p = attn("batch", "-", stdin='{"text": "The cat sat.", "query": "cat"}\n{"text": "The cat sat.", "query": "cat", "target": "Le chat."}\n')
    docs = [json.loads(line) for line in p.stdout.splitlines()]
    assert p.returncode == ExitStatus.SOME_FAILED and "error" not in docs[0] and "has no cross-attention" in docs[1]["error"]["message"]


def test_target_lines_of_an_encoder_decoder_give_transformers_weights_with_two_workers():
    """JSONL lines with "target" (and "attention") on the tiny T5: each line's cross-attention
    row is transformers', in one process and in two workers."""
    from test_seq2seq import SEQ2SEQ, ref

    refs = [ref("t5", i) for i in range(3)]
    lines = "".join(
        json.dumps({"text": str(r["source"]), "target": str(r["target"]), "query_index": 2, "attention": "cross", "layer": "all", "head": "all"}) + "\n"
        for r in refs
    )
    one, two = (attn("batch", "-", "-m", str(SEQ2SEQ / "t5"), *extra, stdin=lines) for extra in ([], ["--workers", "2"]))
    assert one.returncode == two.returncode == 0, two.stderr
    docs = [json.loads(line) for out in (one, two) for line in out.stdout.splitlines()]
    assert [d["line"] for d in docs] == [1, 2, 3] * 2
    for doc, r in zip(docs, refs * 2, strict=True):
        assert doc["attention"] == "cross" and doc["target"] == str(r["target"])
        for layer in doc["layers"]:
            for head in layer["heads"][:-1]:
                assert np.allclose(head["weights"], r["cross_attentions"][layer["layer"], head["head"], 2], atol=1e-5, rtol=0)
