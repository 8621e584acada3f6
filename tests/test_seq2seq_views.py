"""The views of encoder–decoder models (`--target`, `--attention`): `heads`, `rollout` (cross-
attention rolled out through the decoder, computed here with NumPy from transformers' own
attentions, tests/fixtures/seq2seq/ref_<i>.npz, teacher-forced with `labels`), `plot` (static
tables and the interactive page's data; its browser tests are in test_page_browser.py), and
`contrib`'s refusal of ALTI. The explorer's are in test_explore_seq2seq.py."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import attn, validate
from option_registry import close, covers, invoke, run_json
from page_helpers import page_blob, unpacked
from test_cli_plot_values import html_cells
from test_seq2seq import SEQ2SEQ, ref

from attn_cli.compute.result import json_schema
from attn_cli.exit_status import ExitStatus

NAMES = ("t5", "bart", "marian")


def views_json(command: str, name: str, i: int, *args: str) -> dict:
    """`command` --json of pair i's source with `args` (--target …)."""
    r = ref(name, i)
    return run_json(command, str(r["source"]), "-m", str(SEQ2SEQ / name), "--json", *args)


def with_residual(a: np.ndarray) -> np.ndarray:
    """Abnar & Zuidema's Â = ½A + ½I, rows renormalised."""
    a = 0.5 * a.astype(np.float64) + 0.5 * np.eye(a.shape[-1])
    return a / a.sum(axis=-1, keepdims=True)


def cross_rollout_reference(decoder: np.ndarray, cross: np.ndarray) -> np.ndarray:
    """(m, n): each decoder position's rollout onto the source, by the block matrices of docs/options.md (attn rollout)
    multiplied whole: per layer [[½Â, ½C], [0, I]] over (m decoder positions, n source tokens),
    R = L_D·…·L_1, its source block with rows renormalised. decoder (layers, heads, m, m), cross
    (layers, heads, m, n): transformers' attentions."""
    m, n = cross.shape[-2:]
    r = np.eye(m + n)
    for a, c in zip(decoder.mean(axis=1), cross.mean(axis=1), strict=True):
        layer = np.eye(m + n)
        layer[:m, :m] = 0.5 * with_residual(a)
        layer[:m, m:] = 0.5 * c
        r = layer @ r
    block = r[:m, m:]
    assert np.allclose(block.sum(axis=-1), 1 - 0.5 ** len(decoder))  # the split is the convention's, whatever the weights
    return block / block.sum(axis=-1, keepdims=True)


@covers("rollout --target", "rollout --attention")
@pytest.mark.parametrize("name", NAMES)
def test_cross_rollout_is_the_block_product_of_transformers_attentions(name):
    r = ref(name, 1)
    want = cross_rollout_reference(r["decoder_attentions"], r["cross_attentions"])
    for t in (1, 4, len(r["decoder_input_ids"]) - 1):
        doc = views_json("rollout", name, 1, "--target", str(r["target"]), "--query-index", str(t), "--attention", "cross", "--full")
        assert doc["attention"] == "cross" and doc["query"]["token_indices"] == [t]
        assert [tok["id"] for tok in doc["tokens"]] == r["input_ids"].tolist()  # the source: the keys
        assert [tok["id"] for tok in doc["decoder_tokens"]] == r["decoder_input_ids"].tolist()
        assert close(doc["rollout"], want[t])
        assert close(doc["last_layer_mean"], r["cross_attentions"][-1, :, t].mean(axis=0))
        assert close(np.array(doc["full"]).ravel(), want.ravel())
        validate(doc, json_schema(), "rollout")


@covers("rollout --target", "rollout --attention")
@pytest.mark.parametrize("name", NAMES)
def test_decoder_rollout_is_rollout_of_transformers_decoder_attentions(name):
    r = ref(name, 2)
    t = len(r["decoder_input_ids"]) - 2
    row = np.eye(len(r["decoder_input_ids"]))[t]
    for a in r["decoder_attentions"].mean(axis=1)[::-1]:
        row = row @ with_residual(a)
    doc = views_json("rollout", name, 2, "--target", str(r["target"]), "--query-index", str(t))  # decoder: the default with --target
    assert doc["attention"] == "decoder" and [tok["id"] for tok in doc["tokens"]] == r["decoder_input_ids"].tolist()
    assert close(doc["rollout"], row) and doc["without_sink"] is not None
    validate(doc, json_schema(), "rollout")
    enc = views_json("rollout", name, 2, "--target", str(r["target"]), "--query-index", "2", "--attention", "encoder")
    row = np.eye(len(r["input_ids"]))[2]
    for a in r["encoder_attentions"].mean(axis=1)[::-1]:
        row = row @ with_residual(a)
    assert enc["attention"] == "encoder" and close(enc["rollout"], row)


def test_cross_rollout_at_word_level_sums_the_source_words_tokens():
    r = ref("t5", 0)  # source "The cat sat on the mat." ("T" "he" is one word)
    tokens = views_json("rollout", "t5", 0, "--target", str(r["target"]), "-q", "cat", "--attention", "cross")
    words = views_json("rollout", "t5", 0, "--target", str(r["target"]), "-q", "cat", "--attention", "cross", "--level", "word")
    sums = [sum(tokens["rollout"][i] for i in u["token_indices"]) for u in words["units"]]
    assert close(words["rollout"], sums) and words["top"][0]["weight"] == pytest.approx(max(words["rollout"]), abs=1e-6)
    (t,) = tokens["query"]["token_indices"]
    assert close(tokens["rollout"], cross_rollout_reference(r["decoder_attentions"], r["cross_attentions"])[t])


@covers("heads --target", "heads --attention")
@pytest.mark.parametrize("name", NAMES)
def test_the_heads_grid_of_each_kind_is_transformers(name):
    r = ref(name, 1)
    t = 3
    for kind, key, keys in (("decoder", "decoder_attentions", "decoder_input_ids"), ("cross", "cross_attentions", "input_ids")):
        rows = r[key][:, :, t]  # (layers, heads, keys)
        doc = views_json("heads", name, 1, "--target", str(r["target"]), "--query-index", str(t), "--attention", kind, "--metric", "entropy")
        assert doc["attention"] == kind and [tok["id"] for tok in doc["tokens"]] == r[keys].tolist()
        p = rows.astype(np.float64)
        entropy = -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0), axis=-1)
        assert close([h["value"] for layer in doc["layers"] for h in layer["heads"]], entropy.ravel())
        assert len(doc["layers"]) == r[key].shape[0]  # the decoder's layer count, not the encoder's
        validate(doc, json_schema(), "heads")
    top = views_json("heads", name, 1, "--target", str(r["target"]), "--query-index", str(t), "--attention", "cross")
    for layer in top["layers"]:  # each head's top source word: its tokens' weights summed, the heaviest word
        for h in layer["heads"]:
            row = r["cross_attentions"][layer["layer"], h["head"], t]
            assert h["value"] == pytest.approx(row[h["top"]["token_indices"]].sum(), abs=1e-5)
            assert all(h["value"] >= row[w["token_indices"]].sum() - 1e-5 for w in top["words"])


@covers("heads --target", "heads --attention")
def test_a_cross_heads_key_is_a_source_word_and_the_query_a_target_word():
    r = ref("t5", 0)  # source "The cat sat on the mat.", target "A lazy cat sat."
    doc = views_json("heads", "t5", 0, "--target", str(r["target"]), "-q", "cat", "--attention", "cross", "--key", "mat")
    (t,) = doc["query"]["token_indices"]
    assert (doc["decoder_tokens"][t]["text"], doc["decoder_tokens"][t]["piece"]) == ("cat", "▁cat") and doc["target"]["text"] == "mat"
    (k,) = doc["target"]["token_indices"]
    assert (doc["tokens"][k]["text"], doc["tokens"][k]["piece"]) == ("mat", "▁mat")  # as read; the piece as SentencePiece spells it
    assert close([h["value"] for layer in doc["layers"] for h in layer["heads"]], r["cross_attentions"][:, :, t, k].ravel())


@pytest.mark.parametrize("command", ["heads", "rollout"])
def test_models_without_cross_attention_refuse_target_in_the_views(command):
    done = attn(command, "The cat sat.", "-q", "cat", "--target", "Le chat.")
    assert done.returncode == 2 and done.stdout == "" and "has no cross-attention" in done.stderr


def test_the_cross_rollout_screen_marks_and_masks_no_source_token():
    r = ref("marian", 0)
    done = attn("rollout", str(r["source"]), "-m", str(SEQ2SEQ / "marian"), "-t", str(r["target"]), "-i", "1", "--attention", "cross")
    assert done.returncode == 0, done.stderr
    assert "Cross-attention rollout onto the source" in done.stdout and "masked" not in done.stdout and "▶" not in done.stdout


@pytest.mark.parametrize("name", NAMES)
def test_contrib_alti_refuses_an_encoder_decoder_for_its_true_reason(name):
    """Not "normalised before the residual sum" (T5 is pre-norm): ALTI is not written for
    encoder–decoders; norms, which contrib computes on the encoder, still run."""
    done = attn("contrib", "The cat sat.", "-m", str(SEQ2SEQ / name), "-i", "2")
    assert done.returncode == ExitStatus.USAGE and done.stdout == ""
    assert f"ALTI is not defined here for encoder–decoder models ({name})" in done.stderr and "normalised" not in done.stderr
    assert "--method norms or value-zeroing" in done.stderr and "--attention cross" in done.stderr
    assert attn("contrib", "The cat sat.", "-m", str(SEQ2SEQ / name), "-i", "2", "--method", "norms").returncode == 0


@covers("plot --target", "plot --attention")
@pytest.mark.parametrize("name", NAMES)
def test_the_static_plots_of_decoder_and_cross_attention_hold_transformers_weights(name, tmp_path):
    r = ref(name, 1)
    t = 4
    out = tmp_path / "p.html"
    model = str(SEQ2SEQ / name)
    for kind, key in (("decoder", "decoder_attentions"), ("cross", "cross_attentions")):
        given = ("--target", str(r["target"]), "-i", str(t), "--attention", kind)
        invoke("plot", str(r["source"]), "-m", model, *given, "--layer", "0", "--static", "-o", str(out))
        cells = html_cells(out)  # keys × (heads + mean) of decoder layer 0
        rows = r[key][0, :, t]  # (heads, keys)
        assert len(cells) == rows.shape[-1]
        for j, row in enumerate(cells):
            if kind == "decoder" and j > t:
                assert row == [None] * (rows.shape[0] + 1)  # the target after the query is masked
                continue
            assert np.allclose(row, [*rows[:, j], rows[:, j].mean()], atol=6e-5), (kind, j)
    given = ("-t", str(r["target"]), "-i", str(t), "--attention", "cross")
    invoke("plot", str(r["source"]), "-m", model, *given, "--view", "grid", "--metric", "entropy", "--static", "-o", str(out))
    p = r["cross_attentions"][:, :, t].astype(np.float64)  # (decoder layers, heads, n): a target token sees every source token
    assert np.allclose(html_cells(out), 1 - -(p * np.log(p)).sum(axis=-1) / np.log(p.shape[-1]), atol=6e-5)


@covers("plot --target", "plot --attention")
@pytest.mark.parametrize("name", NAMES)
def test_the_interactive_page_of_the_decoder_holds_transformers_weights(name, tmp_path):
    """The page draws one sequence on both sides: the decoder's input, its self-attention."""
    r = ref(name, 2)
    out = tmp_path / "p.html"
    t = len(r["decoder_input_ids"]) - 2
    done = invoke("plot", str(r["source"]), "-m", str(SEQ2SEQ / name), "--target", str(r["target"]), "-i", str(t), "--attention", "decoder", "-o", str(out))
    assert done.stdout == f"{out}\n"
    blob, want = page_blob(out), r["decoder_attentions"].astype(np.float64)  # (decoder layers, heads, m, m)
    weights = unpacked(blob["weights"])
    assert weights.shape == want.shape and blob["query"] == t and len(blob["tokens"]) == len(r["decoder_input_ids"])
    masked = weights == 255
    assert np.array_equal(masked, want == 0)  # the target after each query is masked
    assert np.all(np.abs(weights[~masked] / 100 - want[~masked]) <= 0.005 + 1e-6)
    for layer in range(want.shape[0]):
        assert np.allclose(blob["exact"][layer][0]["w"], want[layer, 0, t], atol=1e-5)
    assert "decoder self-attention" in out.read_text(encoding="utf-8").split("</title>")[0]


@covers("plot --attention")
@pytest.mark.parametrize("name", NAMES)
def test_the_interactive_page_of_cross_attention_has_the_target_left_and_the_source_right(name, tmp_path):
    r = ref(name, 1)
    out = tmp_path / "p.html"
    t = 3
    invoke("plot", str(r["source"]), "-m", str(SEQ2SEQ / name), "--target", str(r["target"]), "-i", str(t), "--attention", "cross", "-o", str(out))
    blob, want = page_blob(out), r["cross_attentions"].astype(np.float64)  # (decoder layers, heads, m, n)
    weights = unpacked(blob["weights"])
    assert weights.shape == want.shape and not (weights == 255).any()  # a target token sees every source token
    assert np.all(np.abs(weights / 100 - want) <= 0.005 + 1e-6)
    assert len(blob["tokens"]) == len(r["decoder_input_ids"]) and len(blob["key_tokens"]) == len(r["input_ids"]) and blob["query"] == t
    for layer in range(want.shape[0]):
        for h in range(want.shape[1]):
            assert np.allclose(blob["exact"][layer][h]["w"], want[layer, h, t], atol=1e-5)
    assert unpacked(blob["keys"]).shape[2] == len(r["input_ids"])  # the keys are the source's



@pytest.mark.parametrize("command", ["heads", "rollout"])
def test_without_a_target_the_views_show_the_encoder_and_say_how_to_see_the_rest(command):
    r = ref("t5", 0)
    done = attn(command, str(r["source"]), "-m", str(SEQ2SEQ / "t5"), "-i", "3", "--json")
    assert done.returncode == 0 and "add --target TEXT" in done.stderr and "--attention cross" in done.stderr
    doc = json.loads(done.stdout)
    assert doc["attention"] == "encoder" and "decoder_tokens" not in doc
    if command == "heads":  # each head's top word: its weight is the heaviest source word's
        assert len(doc["layers"]) == r["encoder_attentions"].shape[0]
        h = doc["layers"][-1]["heads"][0]
        assert h["value"] == pytest.approx(r["encoder_attentions"][-1, 0, 3][h["top"]["token_indices"]].sum(), abs=1e-5)
    else:
        assert close(doc["last_layer_mean"], r["encoder_attentions"][-1, :, 3].mean(axis=0))
