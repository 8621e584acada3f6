"""Gemma 3 mixes sliding layers (a window of 4 keys in the tiny model) with global ones: whatever
divides by "the keys a row sees" must count them with the row's own layer's window."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from attn_cli.cli import app
from attn_cli.compute.heads import heads
from attn_cli.compute.stats import head_statistics
from attn_cli.loading.model import load_model
from attn_cli.loading.tokenizer import tokenize
from attn_cli.maths.headsums import row_entropy

GEMMA3 = Path(__file__).parent / "fixtures" / "tiny" / "gemma3"
TEXT = "The cat sat on the mat because it was tired."


@pytest.fixture(scope="module")
def gemma3():
    model = load_model(GEMMA3)
    assert model.spec.layer_windows == (4, None)  # the fixture: layer 0 sliding, layer 1 global
    return model


def keys_seen(seq: int, window: int | None) -> np.ndarray:
    """(seq,): row i of a causal layer sees i + 1 keys, at most `window`."""
    seen = np.arange(1, seq + 1)
    return seen if window is None else np.minimum(seen, window)


def test_normalised_entropy_divides_each_layer_by_the_keys_its_rows_see(gemma3):
    ids = tokenize(gemma3.tokenizer, TEXT).ids
    assert len(ids) > 6  # long enough for the global layer's rows to see more than the window
    result = head_statistics(gemma3, [(None, TEXT)])
    for trace in gemma3.trace(ids):
        keys = keys_seen(len(ids), gemma3.spec.window(trace.layer))
        h = row_entropy(trace.rows()[2].astype(np.float64))  # (heads, seq)
        want = (h[:, keys > 1] / np.log(keys[keys > 1])).mean(axis=1)
        np.testing.assert_allclose(result.metric("entropy_normalised")[trace.layer], want, rtol=1e-5, err_msg=f"layer {trace.layer}")
        assert (result.metric("entropy_normalised")[trace.layer] <= 1 + 1e-6).all()


def test_heads_entropy_focus_and_its_legend_use_each_layers_window(gemma3, tmp_path):
    result = heads(gemma3, TEXT, query_index=-1, metric="entropy")  # the final "."
    query = result.query.token_indices[-1]
    assert query >= 4
    assert result.visible_keys == (4, query + 1)
    for layer, keys in enumerate(result.visible_keys):
        np.testing.assert_allclose(result.focus[layer], 1 - result.values[layer] / np.log(keys), rtol=1e-5)
        assert (result.values[layer] <= np.log(keys) + 1e-5).all()  # no row spreads over more keys than counted
    # "tired" is four tokens (20–23): its row is the mean of theirs, spread over the keys any of
    # them sees: 17–23 in the sliding layer (each row its last 4), 0–23 in the global one.
    tired = heads(gemma3, TEXT, "tired", metric="entropy")
    assert tired.query.token_indices == (20, 21, 22, 23) and tired.visible_keys == (7, 24)
    assert all((tired.values[layer] <= np.log(keys) + 1e-5).all() for layer, keys in enumerate(tired.visible_keys))

    shown = CliRunner().invoke(app, ["heads", TEXT, "-i", "-1", "--metric", "entropy", "-m", str(GEMMA3)], env={"COLUMNS": "120"})
    assert shown.exit_code == 0, shown.output
    assert f"focus 1 − H/ln n, n the keys seen (4 or {query + 1} by layer)" in " ".join(shown.stdout.split())
    out = tmp_path / "grid.html"
    drawn = CliRunner().invoke(app, ["plot", TEXT, "-i", "-1", "--view", "grid", "--metric", "entropy", "--static", "-o", str(out), "-m", str(GEMMA3)])
    assert drawn.exit_code == 0, drawn.output
    assert f"the n keys the query sees: 4 or {query + 1} by layer" in out.read_text()
