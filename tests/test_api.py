"""The Python API gives the same result objects, and so the same numbers, as the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import attn_cli as attn
from attn_cli.cli import app
from attn_cli.errors import QueryNotFound

TINY = Path(__file__).parent / "fixtures" / "tiny"

SENTENCE = "The cat sat on the mat."


@pytest.fixture(scope="module")
def model():
    return attn.load_model()


def test_inspect_equals_the_cli_json(model):
    r = attn.inspect(model, SENTENCE, query="sat", layer="all", head="all")
    cli = json.loads(CliRunner().invoke(app, ["inspect", SENTENCE, "-q", "sat", "--layer", "all", "--head", "all", "--json"]).stdout)
    assert isinstance(r, attn.InspectResult) and len(r.layers) == 6
    assert r.to_json() == cli
    # `weights` is the softmax row of the query over the units, one per head and layer.
    last = r.layers[-1].heads[3]
    assert last.weights.shape == (len(r.units),) and last.weights.dtype == np.float32
    assert last.weights.sum() == pytest.approx(1.0, abs=1e-6)
    # JSON holds the shortest decimal of each float32: it reads back to the very same float32.
    assert np.array_equal(np.asarray(cli["layers"][-1]["heads"][3]["weights"], dtype=np.float32), last.weights)


def test_lenses_stats_compare_tokenize(model):
    grid = attn.heads(model, SENTENCE, query="sat", key="cat")
    assert isinstance(grid, attn.HeadsResult) and grid.values.shape == (6, 12)
    one = attn.inspect(model, SENTENCE, query="sat", layer=2, head=5)
    cat = [u.text for u in one.units].index("cat")
    assert grid.values[2, 5] == pytest.approx(float(one.layers[0].heads[5].weights[cat]), abs=1e-6)
    roll = attn.rollout(model, SENTENCE, query="sat")
    assert isinstance(roll, attn.RolloutResult)
    s = attn.stats(model, [SENTENCE, "A dog ran."])
    assert isinstance(s, attn.StatsResult) and s.texts == 2
    assert attn.stats(model, SENTENCE).texts == 1  # one string is one text, not its characters
    c = attn.compare(model, SENTENCE, "The dog sat on the mat.", query="sat")
    assert isinstance(c, attn.CompareResult)
    tok = attn.tokenize(model, SENTENCE)
    assert [t.text for t in tok.tokens] == ["[CLS]", "the", "cat", "sat", "on", "the", "mat", ".", "[SEP]"]


def test_errors_are_raised_not_printed(model, capsys):
    with pytest.raises(QueryNotFound) as err:
        attn.inspect(model, SENTENCE, query="dog")
    assert err.value.fix and capsys.readouterr() == ("", "")


def test_any_model_folder(model):
    llama = attn.load_model(TINY / "llama")
    assert llama.spec.causal and attn.inspect(llama, SENTENCE, query="sat").model.architecture == "llama"


def test_import_is_cheap_and_lists_the_api():
    import subprocess
    import sys

    code = "import attn_cli, sys; print('numpy' in sys.modules, sorted(set(attn_cli.__all__) - set(dir(attn_cli))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")[0]
    assert out == "False []"


def test_reprs_are_short_summaries_not_dumps(model):
    """`print(model)` used to print the 30,522-piece vocabulary, and a result every array."""
    assert repr(model) == f"Model(name='all-MiniLM-L6-v2', architecture='bert', layers=6, heads=12, path={str(model.path)!r})"
    r = attn.inspect(model, SENTENCE, query="sat", layer="all", head="all")
    assert repr(r) == (
        "InspectResult(model='all-MiniLM-L6-v2', query='sat' (tokens [3]), layers=[0, 1, 2, 3, 4, 5], heads=13 (the last: the mean), "
        "level='token', weights: 6 × 13 rows of (9,), tokens=9, words=7, top_k=5)"
    )
    head = repr(r.layers[0].heads[0])
    assert "weights=<float32 array (9,)>" in head and "e-0" not in head and len(head) < 1200
    assert repr(r.tokenization) == "Tokenization(text='The cat sat on the mat.', tokens=9, words=7)"
    for result in (attn.heads(model, SENTENCE, query="sat"), attn.rollout(model, SENTENCE, query="sat"), attn.stats(model, SENTENCE),
                   attn.compare(model, SENTENCE, "The dog sat on the mat.", query="sat")):
        text = repr(result)
        assert "array(" not in text and " array (" in text and len(text) < 3000, text[:300]
