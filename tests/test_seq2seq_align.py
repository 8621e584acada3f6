"""`attn align SOURCE --target TARGET`: the target × source cross-attention table is
transformers' (tests/fixtures/seq2seq/), per token and summed per source word, and the
alignment is its argmax per target word."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import attn, validate
from option_registry import covers, run_json
from test_seq2seq import SEQ2SEQ, ref

from attn_cli import api
from attn_cli.compute.align import align
from attn_cli.compute.result import json_schema


@covers("align TEXT", "align --target", "align --layer", "align --head", "align --level", "align --model", "align --json")
@pytest.mark.parametrize("name", ["t5", "bart", "marian"])
def test_the_token_table_is_transformers_cross_attention(name):
    r = ref(name, 1)
    folder = str(SEQ2SEQ / name)
    doc = run_json("align", str(r["source"]), "--target", str(r["target"]), "-m", folder, "--layer", "0", "--head", "2", "--level", "token", "--json")
    validate(doc, json_schema(), "align")
    assert np.abs(np.array(doc["weights"]) - r["cross_attentions"][0, 2]).max() <= 1e-5
    assert [t["id"] for t in doc["target_tokens"]] == r["labels"].tolist()  # row t: the step that writes label t
    assert [t["id"] for t in doc["tokens"]] == r["input_ids"].tolist()


@pytest.mark.parametrize("name", ["t5", "bart"])
def test_word_rows_are_means_of_their_tokens_and_columns_sums_and_the_alignment_their_argmax(name):
    r, model = ref(name, 2), api.load_model(SEQ2SEQ / name)
    result = align(model, str(r["source"]), str(r["target"]))
    mean = r["cross_attentions"][-1].mean(axis=0)  # (m, n): the last layer, mean over heads
    for i, row in enumerate(result.rows):
        want = mean[list(row.token_indices)].mean(axis=0)
        assert np.abs(result.weights[i] - [want[list(c.token_indices)].sum() for c in result.columns]).max() <= 1e-5
    assert np.allclose(result.weights.sum(axis=1), 1, atol=1e-5)
    words = [i for i, c in enumerate(result.columns) if not c.special]
    assert [a.target for a in result.alignment] == [i for i, u in enumerate(result.rows) if not u.special]
    for a in result.alignment:
        assert a.source == words[int(np.argmax(result.weights[a.target, words]))]


@covers("align --special", "align --no-special")
def test_special_tokens_join_the_alignment_only_when_asked():
    r = ref("t5", 0)
    folder = str(SEQ2SEQ / "t5")
    kept = run_json("align", str(r["source"]), "-t", str(r["target"]), "-m", folder, "--special", "--json")
    left = run_json("align", str(r["source"]), "-t", str(r["target"]), "-m", folder, "--no-special", "--json")
    assert len(kept["alignment"]) == len(kept["rows"]) and kept["rows"][-1]["text"] == "</s>"
    assert len(left["alignment"]) == len(left["rows"]) - 1 and all(a["source"] != "</s>" for a in left["alignment"])


def test_align_refuses_models_without_cross_attention_and_a_missing_target():
    done = attn("align", "The cat sat.", "--target", "Le chat.")
    assert done.returncode == 2 and "has no cross-attention" in done.stderr and done.stdout == ""
    done = attn("align", "The cat sat.", "-m", str(SEQ2SEQ / "t5"))
    assert done.returncode == 2 and "add --target TEXT" in done.stderr


def test_the_screen_marks_each_rows_argmax_without_colour():
    r = ref("t5", 0)
    done = attn("align", str(r["source"]), "-t", str(r["target"]), "-m", str(SEQ2SEQ / "t5"), env={"NO_COLOR": "1"})
    assert done.returncode == 0, done.stderr
    assert "Alignment (each target word → the source word it weighs most)" in done.stdout
    assert done.stdout.count("*") == 5  # one per target word, </s> left out


@covers("align --output", "align --force")
def test_the_picture_holds_the_table(tmp_path):
    """-o FILE.html: each cell's title carries its weight, the same as the JSON's table."""
    import os
    import re

    r = ref("t5", 0)
    args = ["align", str(r["source"]), "-t", str(r["target"]), "-m", str(SEQ2SEQ / "t5")]
    doc = run_json(*args, "--json")
    page = tmp_path / "align.html"
    done = attn(*args, "--output", str(page))
    assert done.returncode == 0 and done.stdout.strip() == str(page)
    cells = [float(w) for w in re.findall(r'<td class="cell" [^>]*title="[^"]*: ([\d.]+)"', page.read_text(encoding="utf-8"))]
    assert np.abs(np.array(cells) - np.array(doc["weights"]).ravel()).max() <= 1e-4
    page.chmod(0o444)
    if not os.access(page, os.W_OK):  # root may write anything, as the shell's > does
        assert attn(*args, "--output", str(page)).returncode == 2  # a read-only file is kept…
    assert attn(*args, "--output", str(page), "--force").returncode == 0  # …unless --force
    assert attn(*args, "--output", str(page), "--json").returncode == 2
