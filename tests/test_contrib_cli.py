"""`attn contrib` on the command line: its JSON against the schema, its screens within the
terminal's width, and its refusals (the numbers: tests/test_contrib.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import attn, tied_copy, validate
from option_registry import covers

from attn_cli.compute.result import json_schema
from attn_cli.exit_status import ExitStatus

TINY = Path(__file__).parent / "fixtures" / "tiny"
TEXT = "The cat sat on the mat because it was tired."


@covers("contrib TEXT", "contrib --query", "contrib --method", "contrib --rollout", "contrib --json")
@pytest.mark.parametrize("method", ["alti", "value-zeroing", "norms"])
def test_json_is_a_schema_document_with_a_row_per_layer(method):
    p = attn("contrib", TEXT, "-q", "it", "--method", method, "--rollout", "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    validate(doc, json_schema(), "contrib")
    rows = np.array([layer["contributions"] for layer in doc["layers"]])
    assert doc["method"] == method and rows.shape == (6, len(doc["tokens"]))
    assert np.allclose(rows.sum(axis=1), 1, atol=1e-5) and np.allclose(sum(doc["whole"]), 1, atol=1e-5)
    assert doc["layers"][-1]["rollout"] == doc["whole"] and doc["query"]["token_indices"] == [8]


@covers("contrib --model", "contrib --query-index", "contrib --layer")
def test_one_layer_without_rollout_on_a_decoder():
    p = attn("contrib", "The quick brown fox looks at the lazy dog", "-m", str(TINY / "llama"), "-i", "4", "-l", "-1", "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    validate(doc, json_schema(), "contrib")
    assert [layer["layer"] for layer in doc["layers"]] == [1] and doc["whole"] is None and doc["layers"][0]["rollout"] is None
    assert not any(doc["layers"][0]["contributions"][5:])  # after the query: never read


def test_no_query_on_a_decoder_is_its_last_token():
    """As ablate and knockout: the last token, the one that reads the whole text (an encoder still needs a query)."""
    text = "The quick brown fox looks at the lazy dog"
    plain = attn("contrib", text, "-m", str(TINY / "llama"), "--json")
    assert plain.returncode == 0, plain.stderr
    doc = json.loads(plain.stdout)
    assert doc["query"]["token_indices"] == [len(doc["tokens"]) - 1]
    assert doc == json.loads(attn("contrib", text, "-m", str(TINY / "llama"), "-i", "-1", "--json").stdout)


@pytest.mark.parametrize("columns", ["40", "80", "120"])
@pytest.mark.parametrize("model", [None, "gpt2"])
def test_screens_fit_the_width(model, columns):
    extra = [] if model is None else ["-m", str(TINY / model)]
    p = attn("contrib", TEXT, "-i", "5", "--rollout", *extra, env={"COLUMNS": columns, "NO_COLOR": "1"})
    assert p.returncode == 0, p.stderr
    assert all(len(line) <= int(columns) for line in p.stdout.splitlines()), p.stdout
    assert "Whole model (rollout)" in p.stdout and "ALTI" in p.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        ([TEXT], "no query given"),
        ([TEXT, "-q", "it", "--method", "attention"], "method 'attention'"),
        ([TEXT, "-q", "it", "-l", "9"], "layer 9 is out of range"),
        ([TEXT, "-q", "it", "-i", "2"], "both a query word and a query index"),
    ],
)
def test_refusals_are_one_line_with_the_usage_status(args, message):
    for extra in ([], ["--json"]):
        p = attn("contrib", *args, *extra)
        assert p.returncode == ExitStatus.USAGE and p.stdout == "", p.stderr
        assert message in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr


@pytest.mark.parametrize(
    "model, method, message, fix",
    [
        ("gemma3", "alti", "ALTI is not defined here for gemma3", "use --method value-zeroing or --method norms"),
        ("gpt_neox", "alti", "ALTI is not defined for gpt_neox with the parallel residual", "use --method value-zeroing or --method norms"),
        ("bert", "alti-logit", "ALTI-Logit explains a decoder's next token; bert is an encoder and predicts none", "use --method alti"),
    ],
)
def test_a_method_that_does_not_fit_the_model_is_a_usage_error_naming_one_that_does(model, method, message, fix):
    """The model is fine, the method does not apply to it: exit 2 (as ablate --target and knockout on an encoder), not 4."""
    p = attn("contrib", TEXT, "-i", "2", "-m", str(TINY / model), "--method", method)
    assert p.returncode == ExitStatus.USAGE and p.stdout == "", p.stderr
    assert message in p.stderr and fix in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    return str(tied_copy("llama", tmp_path_factory.mktemp("alti-logit")))  # the tiny llama with an LM head


@covers("contrib --target", "contrib --target-id", "contrib --contrast")
def test_alti_logit_json_explains_the_given_target_against_a_foil(lm):
    text = "The quick brown fox looks at the lazy dog"
    top = json.loads(attn("contrib", text, "-m", lm, "--method", "alti-logit", "--json").stdout)
    validate(top, json_schema(), "contrib")
    assert top["method"] == "alti-logit" and top["logit"]["target"]["chosen"] == "top-1" and top["logit"]["contrast"] is None
    assert top["logit"]["position"] == len(top["tokens"]) - 1 and len(top["layers"][0]["direct"]) == len(top["tokens"])
    for layer in top["layers"]:  # each head's part, per input token, sums to the layer's direct part
        assert len(layer["heads"]) == 4 and np.allclose(np.sum(layer["heads"], axis=0), layer["direct"], atol=1e-5)
    by_id = json.loads(attn("contrib", text, "-m", lm, "--method", "alti-logit", "--target-id", str(top["logit"]["target"]["id"]), "--json").stdout)
    assert by_id["logit"]["target"]["chosen"] == "given" and by_id["whole"] == top["whole"]
    p = attn("contrib", text, "-m", lm, "--method", "alti-logit", "--target", "a", "--contrast", "the", "-i", "4", "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    validate(doc, json_schema(), "contrib")
    got = doc["logit"]
    assert got["position"] == 4 and got["target"]["id"] != got["contrast"]["id"] and got["contrast"]["chosen"] == "given"
    assert got["logit"] == pytest.approx(got["target"]["logprob"] - got["contrast"]["logprob"], abs=1e-4)
    assert not any(doc["whole"][5:]) and any(doc["whole"][:5])


def test_a_contrast_equal_to_the_target_is_refused(lm):
    """Target minus itself is 0 at every layer: a usage error, not a screen of zeros."""
    text = "The quick brown fox looks at the lazy dog"
    top = json.loads(attn("contrib", text, "-m", lm, "--method", "alti-logit", "-t", "a", "--json").stdout)["logit"]["target"]
    p = attn("contrib", text, "-m", lm, "--method", "alti-logit", "-t", "a", "--contrast", "a")
    assert p.returncode == ExitStatus.USAGE and p.stdout == "", p.stderr
    assert f"the contrast {top['text']!r} is the target itself (token {top['id']}): their logit difference is 0 everywhere" in p.stderr, p.stderr
    assert "give --contrast a token other than the target" in p.stderr and len(p.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("columns", ["40", "80", "120"])
def test_alti_logit_screens_fit_the_width(lm, columns):
    p = attn("contrib", TEXT, "-m", lm, "--method", "alti-logit", "--contrast", "the", env={"COLUMNS": columns, "NO_COLOR": "1"})
    assert p.returncode == 0, p.stderr
    assert all(len(line) <= int(columns) for line in p.stdout.splitlines()), p.stdout
    assert "ALTI-Logit" in p.stdout and "Whole model:" in p.stdout and "Largest heads: L" in p.stdout


def thirty_layers(columns: int, *method: str) -> tuple[list[str], list[str], list[float]]:
    """SmolLM2's screen at `columns` (every line checked to fit, the layer columns L0 … L29 and
    all each once, block by block) and France's (token 3's) cells, with what the JSON has for them."""
    from gguf_helpers import packaged_gguf

    model, text = str(packaged_gguf("smollm2")), "The capital of France is"
    doc = json.loads(attn("contrib", text, "-m", model, *method, "--json").stdout)
    p = attn("contrib", text, "-m", model, *method, env={"COLUMNS": str(columns), "NO_COLOR": "1"})
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert all(len(line) <= columns for line in lines), p.stdout
    headers = [name for line in lines if line.startswith("# token") for name in line.split()[2:]]
    assert headers == [f"L{n}" for n in range(30)] + ["all"]
    france = [cell for line in lines if line.startswith("3  France") for cell in line.split()[2:]]  # token 3's row, block by block
    return lines, france, [layer["contributions"][3] for layer in doc["layers"]] + [doc["whole"][3]]


@pytest.mark.parametrize("columns", [40, 60, 80, 120])
def test_alti_logit_table_of_thirty_layers_folds_to_the_width(columns):
    """SmolLM2's 30 layers need ~248 columns in one row: the table comes in blocks of layers,
    each number whole, every layer once, at any width from 40 to 120."""
    _, france, want = thirty_layers(columns, "--method", "alti-logit")
    assert france == [f"{v:+.2f}" for v in want]


@pytest.mark.parametrize("columns", [40, 80, 120])
def test_table_of_thirty_layers_folds_to_the_width(columns):
    """SmolLM2's 30 layers and the rollout need ~140 columns in one row: the shares come in
    blocks of layers, each beside the tokens again, every layer once and each share the JSON's."""
    lines, france, want = thirty_layers(columns, "--rollout")
    assert france == ["·" if v < 0.005 else f"{v * 100:.0f}" for v in want]
    blocks = len([line for line in lines if line.startswith("# token")])
    assert blocks > 1 and f"the layers in {blocks} blocks of" in " ".join(lines)


def test_a_target_without_alti_logit_is_refused():
    p = attn("contrib", TEXT, "-q", "it", "--target-id", "3")
    assert p.returncode == ExitStatus.USAGE and "explain a logit" in p.stderr
