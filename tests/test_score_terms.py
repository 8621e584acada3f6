"""The term some families put between the scaled scores and the softmax, as `attn inspect`
shows it: MPNet's relative position bias and Gemma 2's soft-cap get a column (and a JSON field)
of what the softmax reads, between Q·K/√d and the weight; other families show none."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import numpy as np
import pytest
from typer.testing import CliRunner

from attn_cli.cli import app
from attn_cli.compute.inspect import inspect
from attn_cli.loading.model import load_model
from attn_cli.maths.ops import softmax

TINY = Path(__file__).parent / "fixtures" / "tiny"
TEXT = "The cat sat on the mat because it was tired."
runner = CliRunner()
HEADERS = {"gemma2": "capped (tanh, 5)", "mpnet": "+ position bias"}


@pytest.fixture(scope="module", params=["gemma2", "mpnet", "llama", "bert"])
def named(request):
    return request.param, load_model(TINY / request.param)


def test_adjusted_scores_are_what_the_softmax_reads(named, schema):
    """For a one-token query, softmax over the visible keys of the shown column is the shown
    weights, in every layer and head; the JSON carries the column and says what made it."""
    name, model = named
    result = inspect(model, TEXT, "sat", layer="all", head="all")
    doc = result.to_json()
    jsonschema.validate(doc, schema["$defs"]["inspect"] | {"$defs": schema["$defs"]})
    adjusts = {"gemma2": "cap", "mpnet": "bias"}.get(name)
    assert doc["model"]["attn_softcap"] == (5.0 if name == "gemma2" else None)
    for layer, layer_doc in zip(result.layers, doc["layers"], strict=True):
        assert layer.adjusts == layer_doc.get("adjusts") == adjusts
        for head, head_doc in zip(layer.heads[:-1], layer_doc["heads"][:-1], strict=True):
            if adjusts is None:
                assert head.adjusted_scores is None and "adjusted_scores" not in head_doc
                continue
            shown = np.array([np.nan if x is None else x for x in head_doc["adjusted_scores"]], dtype=np.float32)
            seen = ~np.isnan(shown)
            assert np.array_equal(seen, ~np.isnan(head.scaled_scores))  # masked where the scaled scores are
            assert np.abs(softmax(shown[seen]) - head.weights[seen]).max() <= 1e-6
            assert np.abs(shown[seen] - head.scaled_scores[seen]).max() > 1e-3  # the term changes the scores
        assert "adjusted_scores" not in layer_doc["heads"][-1]  # the mean over heads has no scores


def test_the_screen_shows_the_column_between_the_scaled_scores_and_the_weight(named):
    name, _ = named
    for extra in ([], ["--steps"]):
        out = runner.invoke(app, ["inspect", TEXT, "-q", "sat", "-m", str(TINY / name), "--head", "1", *extra], env={"COLUMNS": "120"}).output
        header = next(line for line in out.splitlines() if "Q·K/√" in line and "weight" in line)
        if name not in HEADERS:
            assert "capped" not in out and "position bias" not in out
            continue
        assert header.index("Q·K/√") < header.index(HEADERS[name]) < header.index("weight")
        assert HEADERS[name] in next(line for line in out.splitlines() if line.startswith("Step 2"))


def test_masked_rows_have_a_dash_in_the_column():
    out = runner.invoke(app, ["inspect", TEXT, "-q", "sat", "-m", str(TINY / "gemma2"), "--head", "0"], env={"COLUMNS": "120"}).output
    masked = next(line for line in out.splitlines() if "masked (future)" in line)
    assert masked.count("—") == 4  # Q·K, Q·K/√20, capped, weight


def test_the_explorer_names_the_scale_gemma_uses_not_head_dim():
    from attn_cli.compute.inspect import inspect
    from attn_cli.views.explorer.lines import _step2_lines

    model = load_model(TINY / "gemma2")  # query_pre_attn_scalar 20, head_dim 24
    result = inspect(model, "The cat sat on the mat.", query_index=-1, head="0")
    layer = result.layers[-1]
    header, _ = _step2_lines(result, layer, layer.heads[0], 120)
    assert "Q·K/√20" in header.plain and "√24" not in header.plain
