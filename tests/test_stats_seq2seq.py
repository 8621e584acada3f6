"""`attn stats` of encoder–decoder models (T5, BART, Marian): `--attention encoder|decoder|cross`
over (source, target) pairs, against statistics computed from transformers' attentions by
scripts/make_seq2seq_stats_fixture.py (tests/fixtures/seq2seq/stats_<name>.npz, over
stats_pairs.jsonl), and the refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import attn, validate
from option_registry import close, covers, run_json
from test_seq2seq import SEQ2SEQ, ref

from attn_cli.compute.result import json_schema
from attn_cli.compute.stats_seq2seq import CROSS_OMITTED
from attn_cli.maths.headsums import METRICS

PAIRS = SEQ2SEQ / "stats_pairs.jsonl"
KINDS = ("encoder", "decoder", "cross")
TOLERANCE = 1e-5


def fixture(name: str) -> dict:
    return dict(np.load(SEQ2SEQ / f"stats_{name}.npz"))


def grid(doc: dict, metric: str) -> np.ndarray:
    """(layers, heads) of one statistic of a stats document, NaN for null."""
    return np.array([[np.nan if h[metric] is None else h[metric] for h in layer["heads"]] for layer in doc["layers"]], dtype=np.float64)


def stats_json(name: str, *args: str) -> dict:
    return run_json("stats", "-m", str(SEQ2SEQ / name), "--json", *args)


def assert_statistics(doc: dict, want: dict, kind: str) -> None:
    """Every statistic of `kind` in `doc` is the fixture's within TOLERANCE (null where it is NaN)."""
    for metric in METRICS:
        if metric == "ablation":
            continue
        ours, ref_ = grid(doc, metric), want[f"{kind}_{metric}"]
        assert ours.shape == ref_.shape and close(ours.ravel().tolist(), ref_.ravel(), TOLERANCE), (kind, metric, np.nanmax(np.abs(ours - ref_)))
    assert np.array_equal([[h["entropy_histogram"] for h in layer["heads"]] for layer in doc["layers"]], want[f"{kind}_histogram"])
    assert (doc["texts"], doc["tokens"]) == (int(want[f"{kind}_texts"]), int(want[f"{kind}_tokens"]))


@covers("stats --attention", "stats --file")
@pytest.mark.parametrize("name", ["t5", "bart", "marian"])
@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_of_attention_has_transformers_statistics(name, kind):
    """Over JSONL pairs: the encoder's, the decoder's and cross-attention's statistics, each
    equal to those computed from transformers' encoder_attentions, decoder_attentions and
    cross_attentions; cross-attention leaves out (null) the statistics that compare positions."""
    doc = stats_json(name, "--file", str(PAIRS), "--attention", kind)
    assert_statistics(doc, fixture(name), kind)
    assert doc["attention"] == kind
    assert doc["model"]["layers"] == len(doc["layers"]) == fixture(name)[f"{kind}_entropy"].shape[0]  # T5: 2 encoder, 3 decoder layers
    if kind == "cross":
        assert doc["omitted"] == list(CROSS_OMITTED) and doc["detectors"]["induction"] is None
        assert all(h[m] is None for layer in doc["layers"] for h in layer["heads"] for m in CROSS_OMITTED)
    else:
        assert doc["omitted"] == [] and doc["detectors"]["induction"] == {"seed": 0, "sequences": 10, "length": 25}
    validate(doc, json_schema(), "stats")


@covers("stats --target", "stats TEXT")
def test_one_text_and_its_target_default_to_the_decoder_and_equal_transformers_maps():
    """stats TEXT --target T: the decoder's self-attention (as inspect's default), its means over
    the target's rows those of transformers' decoder_attentions; --attention cross: the means of
    cross_attentions over the source."""
    r = ref("t5", 0)
    source, target = str(r["source"]), str(r["target"])
    doc = stats_json("t5", source, "--target", target)
    assert doc["attention"] == "decoder" and doc["tokens"] == len(r["decoder_input_ids"])
    a = r["decoder_attentions"].astype(np.float64)  # (layers, heads, m, m)
    assert close(grid(doc, "self").ravel().tolist(), np.diagonal(a, 0, -2, -1).mean(-1).ravel())
    assert close(grid(doc, "previous_token").ravel().tolist(), np.diagonal(a, -1, -2, -1).mean(-1).ravel())
    assert close(grid(doc, "first_token").ravel().tolist(), a[..., 0].mean(-1).ravel())
    cross = stats_json("t5", source, "-t", target, "--attention", "cross")
    c = r["cross_attentions"].astype(np.float64)  # (layers, heads, m, n)
    entropy = -(c * np.log(np.where(c > 0, c, 1.0))).sum(-1).mean(-1)
    assert close(grid(cross, "entropy").ravel().tolist(), entropy.ravel())
    assert close(grid(cross, "first_token").ravel().tolist(), c[..., 0].mean(-1).ravel())
    assert grid(cross, "self").shape == (3, 4) and np.isnan(grid(cross, "self")).all()


@covers("stats --workers")
def test_two_workers_give_the_numbers_of_one_process():
    for kind in ("decoder", "cross"):
        one = stats_json("marian", "--file", str(PAIRS), "--attention", kind)
        two = stats_json("marian", "--file", str(PAIRS), "--attention", kind, "--workers", "2")
        assert_statistics(two, fixture("marian"), kind)
        for metric in METRICS:
            assert close(grid(two, metric).ravel().tolist(), grid(one, metric).ravel(), 1e-6), metric


def test_a_corpus_of_targets_defaults_to_the_decoder_and_sources_alone_to_the_encoder(tmp_path):
    """As inspect chooses: JSONL lines with targets and no --attention give the decoder's
    statistics; plain lines (sources) the encoder's, with inspect's note on stderr."""
    doc = stats_json("bart", "--file", str(PAIRS))
    assert doc["attention"] == "decoder"
    assert_statistics(doc, fixture("bart"), "decoder")
    sources = tmp_path / "sources.txt"
    sources.write_text("".join(json.loads(line)["text"] + "\n" for line in PAIRS.read_text().splitlines()), encoding="utf-8")
    done = attn("stats", "--file", str(sources), "-m", str(SEQ2SEQ / "bart"), "--json")
    assert done.returncode == 0, done.stderr
    assert "encoder–decoder model: this is its encoder's self-attention" in done.stderr and '{"text": SOURCE, "target": TARGET}' in done.stderr
    assert_statistics(json.loads(done.stdout), fixture("bart"), "encoder")
    done = attn("stats", "The cat sat on the mat.", "-m", str(SEQ2SEQ / "t5"), "--json")
    assert json.loads(done.stdout)["attention"] == "encoder" and "add --target TEXT" in done.stderr


REFUSED = [["The cat sat.", "--target", "Le chat."], ["The cat sat.", "--attention", "cross"], ["--file", "-", "--attention", "encoder"]]


@pytest.mark.parametrize("args", REFUSED)
def test_models_without_cross_attention_refuse_target_and_attention_as_inspect_does(args):
    done = attn("stats", *args, stdin='{"text": "The cat sat."}\n')
    assert done.returncode == 2 and done.stdout == ""
    assert "has no cross-attention" in done.stderr and "bart, marian, t5" in done.stderr
    inspect = attn("inspect", "The cat sat.", "-q", "cat", *args[1:]) if args[0] != "--file" else None
    if inspect is not None:
        assert inspect.stderr == done.stderr


def test_a_corpus_line_with_a_target_is_refused_by_a_model_without_cross_attention_and_text_lines_read_as_text():
    lines = '{"text": "The cat sat."}\n{"text": "A dog ran.", "target": "Un chien."}\n'
    done = attn("stats", "--file", "-", stdin=lines)
    assert done.returncode == 2 and done.stderr.startswith("attn: error: line 2: --target is read only by encoder–decoder models")
    as_json = run_json("stats", "--file", "-", "--json", input='{"text": "The cat sat."}\nA dog ran.\n')
    plain = run_json("stats", "--file", "-", "--json", input="The cat sat.\nA dog ran.\n")
    assert as_json == plain


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (
            ["--file", "-", "--attention", "cross"], '{"text": "A cat.", "target": "A cat."}\nThe dog.\n',
            "line 2 has no target, and cross attention is a target token's",
        ),
        (["--file", "-"], 'The dog.\n{"text": "A cat.", "target": "A cat."}\n', "line 2 has a target, and the first line has none"),
        (["--file", "-"], '{"text": "A cat.", "targets": "A cat."}\n', 'line 1: unknown field "targets"; a stats line may have: text, target'),
        (["--file", "-"], '{"text": "A cat.", "n": ' + "9" * 5000 + "}\n", "line 1: invalid JSON: Exceeds the limit (4300 digits)"),
        (["--file", "-"], '{"text": "A cat.", "target": "A cat."}\n{"n": ' + "[" * 100_000 + "\n", "line 2: invalid JSON: nested too deeply"),
        (["The cat.", "--attention", "decoder"], None, "the text has no target, and decoder attention is a target token's"),
        (["--file", "-", "--target", "A cat."], "The cat.\n", "--target is one TEXT's target, and a corpus's targets are on its lines"),
        (["The cat.", "-t", "A cat.", "--ablate", "zero"], None, "--ablate is not available for encoder–decoder models (t5) in attn stats"),
        (["The cat.", "-t", "A cat.", "--attention", "self"], None, "--attention 'self' is not valid"),
        (["The cat.", "-t", "A cat.", "--threshold", "2"], None, "--threshold 2.0 is not valid"),
        (
            ["The cat.", "-t", "A cat.", "--attention", "cross", "--exclude-bos"], None,
            "--exclude-bos would change only detector scores, and cross-attention has none — drop --exclude-bos, or give --attention decoder",
        ),
        (
            ["--file", "-", "--attention", "cross", "--exclude-bos", "--exclude-current-token"], '{"text": "A cat.", "target": "A cat."}\n',
            "--exclude-bos and --exclude-current-token would change only detector scores",
        ),
    ],
)
def test_what_an_encoder_decoder_corpus_cannot_be_is_refused_with_its_line(args, stdin, message):
    done = attn("stats", "-m", str(SEQ2SEQ / "t5"), *args, stdin=stdin)
    assert done.returncode == 2 and done.stdout == "", done.stderr
    assert message in done.stderr


def test_any_model_s_corpus_reads_its_json_lines_as_batch_does():
    """A number of 5,000 digits was an unexpected ValueError (exit 1) in `stats`, as it had been in `batch`."""
    done = attn("stats", "--file", "-", stdin='The cat sat.\n{"text": "A cat.", "n": ' + "9" * 5000 + "}\n")
    assert done.returncode == 2 and done.stdout == "" and "line 2: invalid JSON: Exceeds the limit (4300 digits)" in done.stderr, done.stderr
