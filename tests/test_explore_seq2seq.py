"""`attn explore` on encoder–decoder models: with --target, `k` switches between the encoder's,
the decoder's and cross-attention, and every number shown is transformers' (the seq2seq
fixtures' attentions), as `attn inspect --target … --attention …` gives it."""

from __future__ import annotations

import asyncio
import io

import numpy as np
import pytest
from option_registry import covers
from rich.console import Console
from test_explore import header, llama, shown  # noqa: F401 (llama: a fixture)
from test_explore_cli import started  # noqa: F401 (a fixture)
from test_seq2seq import SEQ2SEQ, ref
from test_seq2seq_views import cross_rollout_reference
from textual.widgets import Static
from typer.testing import CliRunner

from attn_cli.cli import app
from attn_cli.compute.explore import trace_pair, trace_text
from attn_cli.loading.model import load_model
from attn_cli.views.explorer.app import Explorer
from attn_cli.views.explorer.state import View

runner = CliRunner()


def drive(traced, view: View, keys: list[str], check, kinds=None):
    """As test_explore's `drive`, with an encoder–decoder's `kinds` for `k`."""

    async def go():
        explorer = Explorer(traced, view, kinds=kinds)
        async with explorer.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            for key in keys:
                await pilot.press(key)
                await pilot.pause()
            return check(explorer)

    return asyncio.run(go())


@pytest.fixture(scope="module")
def bart():
    r = ref("bart", 1)
    return r, trace_pair(load_model(SEQ2SEQ / "bart"), str(r["source"]), str(r["target"]))


def test_k_cycles_the_kinds_and_each_shows_transformers_weights(bart):
    r, kinds = bart
    t, layer, head = 4, 1, 2
    view = View(layer=layer, head=head, query=None, query_index=t, attention="decoder")

    def shown(app):
        result = app.result()
        return app.traced.kind, result.query.token_indices, np.array(result.layers[0].head(app.view.head).weights), header(app)

    kind, rows, weights, top = drive(kinds["decoder"], view, [], shown, kinds)
    assert kind == "decoder" and rows == (t,) and np.allclose(weights, r["decoder_attentions"][layer, head, t], atol=1e-5)
    kind, rows, weights, _ = drive(kinds["decoder"], view, ["k"], shown, kinds)  # the same target token, over the source
    assert kind == "cross" and rows == (t,) and np.allclose(weights, r["cross_attentions"][layer, head, t], atol=1e-5)
    kind, rows, weights, _ = drive(kinds["decoder"], view, ["k", "k"], shown, kinds)  # the encoder: the source's first word
    first = next(tok.index for tok in kinds["encoder"].tokenization.tokens if not tok.special)
    assert kind == "encoder" and rows == (first,)
    assert np.allclose(weights, r["encoder_attentions"][layer, head, first], atol=1e-5)
    kind, *_ = drive(kinds["decoder"], view, ["k", "k", "k"], shown, kinds)
    assert kind == "decoder"


def test_the_cross_rollout_and_model_view_in_the_explorer(bart):
    r, kinds = bart
    t = 3
    view = View(layer=0, head=0, query=None, query_index=t, mode="rollout", attention="cross")
    rollout = drive(kinds["cross"], view, [], lambda app: app.traced.rollout(**app.view.query_args()).rollout)
    assert np.allclose(rollout, cross_rollout_reference(r["decoder_attentions"], r["cross_attentions"])[t], atol=1e-5)
    grid = drive(kinds["cross"], View(layer=0, head=0, query=None, query_index=t, mode="grid"), [], lambda app: app.traced.heads(**app.view.query_args()))
    assert grid.attention == "cross" and grid.values.shape == r["cross_attentions"].shape[:2]
    contrib = drive(kinds["cross"], View(layer=0, head=0, query=None, query_index=t, mode="contrib"), [], lambda app: shown(app).pane.columns)
    assert "press k for the encoder" in " ".join(line.plain for line in contrib)  # ALTI is the encoder's: the pane says so
    assert view.command() == f"attn rollout TEXT -i {t} --target TARGET --attention cross --json"


@covers("explore --target", "explore --attention")
def test_target_and_attention_start_the_explorer_on_that_kind(started):  # noqa: F811
    r = ref("t5", 0)
    result = runner.invoke(app, ["explore", str(r["source"]), "-m", str(SEQ2SEQ / "t5"), "--target", str(r["target"]), "-i", "5", "--attention", "cross"])
    assert result.exit_code == 0, result.output
    (explorer,) = started
    assert explorer.traced.kind == "cross" and sorted(explorer.kinds) == ["cross", "decoder", "encoder"]
    assert explorer.view.query_index == 5 and explorer.view.layer == 2  # the decoder's last layer (T5's encoder has 2)
    weights = explorer.result().layers[0].head(explorer.view.head).weights
    assert np.allclose(weights, r["cross_attentions"][2, int(explorer.view.head), 5], atol=1e-5)


def test_explore_refuses_target_on_a_model_without_cross_attention(started):  # noqa: F811
    result = runner.invoke(app, ["explore", "The cat sat.", "--target", "Le chat."])
    assert result.exit_code == 2 and "has no cross-attention" in result.output and not started


def footer_and_help(traced, kinds=None) -> tuple[str, str]:
    """The footer's text, and the `?` screen's, of the explorer on `traced`."""

    async def go():
        explorer = Explorer(traced, View(layer=0, head=0, query=None, query_index=1), kinds=kinds)
        async with explorer.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            footer = "".join(line.plain for line in explorer.query_one("#keys").lines)  # a wrapped line keeps its trailing space
            await pilot.press("question_mark")
            await pilot.pause()
            shown = explorer.screen.query_one(Static).content  # the key table
            console = Console(width=100, record=True, file=io.StringIO())
            console.print(shown)
            return footer, console.export_text()

    return asyncio.run(go())


def test_the_footer_and_help_list_k_only_for_a_model_with_cross_attention(bart, llama):  # noqa: F811
    """k switches an encoder–decoder's attention (or says to start with --target); a model with
    one kind of attention has no use for it."""
    _, kinds = bart
    footer, help_text = footer_and_help(kinds["decoder"], kinds)
    assert "k attention" in footer and "g grid  k attention  / find" in footer
    assert "encoder / decoder / cross-attention" in help_text
    t5 = trace_text(load_model(SEQ2SEQ / "t5"), "The cat sat on the mat.")  # no --target: k says how to see the rest
    assert "k attention" in footer_and_help(t5)[0]
    footer, help_text = footer_and_help(llama)
    assert "k attention" not in footer and "g grid  / find" in footer
    assert "cross-attention" not in help_text and "/" in help_text and "value norms" in help_text


def test_trace_pair_runs_the_encoder_once(monkeypatch):
    """One encoder pass serves both the encoder's kind and the memory the decoder's
    cross-attention reads: the same numbers as two passes gave."""
    model, r = load_model(SEQ2SEQ / "t5"), ref("t5", 1)
    passes = []
    original = type(model).trace
    monkeypatch.setattr(type(model), "trace", lambda self, ids, *a, **k: passes.append(len(ids)) or original(self, ids, *a, **k))
    kinds = trace_pair(model, str(r["source"]), str(r["target"]))
    assert passes == [len(r["input_ids"])]
    monkeypatch.undo()
    decoder = list(model.trace_decoder(kinds["decoder"].decoder.ids, model.memory(r["input_ids"])))  # the memory of a pass of its own
    for kept, fresh in zip(kinds["decoder"].traces, decoder, strict=True):
        assert np.array_equal(kept.cross.k, fresh.cross.k) and np.array_equal(kept.cross.v, fresh.cross.v)
        assert np.array_equal(kept.cross.rows()[2], fresh.cross.rows()[2])
    assert np.abs(np.stack([t.cross.rows()[2] for t in kinds["cross"].traces]) - r["cross_attentions"]).max() <= 1e-5
    assert all(t.hidden is None for t in kinds["encoder"].traces)  # nothing kept that no view reads
