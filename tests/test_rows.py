"""`--rows top|all|auto`: a long text's tables show each head's top keys and the query, and one
"… N more" line with the weight of the rest; auto does so only when the table would be taller
than the screen ($LINES, else 60 rows when piped). The plot draws the same rows."""

from __future__ import annotations

import html
import json
import re

import numpy as np
from option_registry import covers
from typer.testing import CliRunner

from attn_cli.cli import app

SENTENCE = "The Transformer is making it possible to understand language."
LONG = " ".join([SENTENCE] * 10)  # 112 tokens
runner = CliRunner()


def run(*args: str, **env: str):
    result = runner.invoke(app, list(args), env={"COLUMNS": "100", **env})
    assert result.exit_code == 0, result.output
    return result.stdout


def step2_rows(out: str) -> list[str]:
    lines = out.splitlines()
    start = next(k for k, line in enumerate(lines) if line.startswith("───")) + 1
    stop = next(k for k in range(start, len(lines)) if not re.match(r"^\s*\d+\s", lines[k]))
    return lines[start:stop]


@covers("inspect --rows")
def test_rows_top_shows_the_top_keys_and_sums_the_rest():
    out = run("inspect", LONG, "-q", "making", "--rows", "top")
    doc = json.loads(run("inspect", LONG, "-q", "making", "--json"))
    head = next(h for h in doc["layers"][0]["heads"] if h["head"] == doc["layers"][0]["auto_head"])
    weights = np.array(head["weights"])
    top = set(np.argsort(-weights, kind="stable")[: doc["top_k"]].tolist()) | set(doc["query"]["token_indices"])
    rows = step2_rows(out)
    assert [int(r.split()[0]) for r in rows] == sorted(top)
    for row in rows:
        assert f"{weights[int(row.split()[0])]:.3f}" in row.split()
    rest = sorted(set(range(len(weights))) - top)
    assert f"… {len(rest)} more tokens (Σ weight {weights[rest].sum():.3f}); --rows all shows every row" in out
    grid = next(line for line in out.splitlines() if "more, Σ" in line)  # the multi-head table's folded row
    heads = doc["layers"][0]["heads"]
    kept = set().union(*(set(np.argsort(-np.array(h["weights"]), kind="stable")[: doc["top_k"]].tolist()) for h in heads)) | top
    hidden = sorted(set(range(len(weights))) - kept)
    assert f"… {len(hidden)} more, Σ" in grid
    sums = [float(np.array(h["weights"])[hidden].sum()) for h in heads]
    assert grid.split()[-len(heads):] == ["1.0" if s >= 0.995 else f"{s:.2f}"[1:] for s in sums]
    assert len(out.splitlines()) < 60


@covers("inspect --rows")
def test_rows_auto_follows_the_screen_height():
    assert len(step2_rows(run("inspect", LONG, "-q", "making"))) < 10  # piped: more than 60 rows
    assert len(step2_rows(run("inspect", LONG, "-q", "making", "--rows", "all"))) == 112
    assert len(step2_rows(run("inspect", SENTENCE, "-q", "making"))) == 13
    assert len(step2_rows(run("inspect", SENTENCE, "-q", "making", LINES="10"))) < 10  # a short terminal
    assert len(step2_rows(run("inspect", SENTENCE, "-q", "making", "--rows", "all", LINES="10"))) == 13
    assert "more tokens" not in run("inspect", SENTENCE, "-q", "making", "--rows", "top", "-k", "20")  # nothing left out


def test_rows_refuses_what_it_does_not_know():
    result = runner.invoke(app, ["inspect", SENTENCE, "-q", "making", "--rows", "some"])
    assert result.exit_code == 2 and "--rows 'some' is not valid" in result.output


@covers("plot --rows")
def test_plot_draws_the_same_rows(tmp_path):
    out = tmp_path / "long.html"
    run("plot", LONG, "-q", "making", "-o", str(out), "--rows", "top", "--static")
    page = out.read_text(encoding="utf-8")
    labels = [html.unescape(x) for x in re.findall(r'<th class="row[^"]*" title="([^"]*)"', page)]
    doc = json.loads(run("inspect", LONG, "-q", "making", "--head", "all", "--json"))
    heads = doc["layers"][0]["heads"]
    kept = set(doc["query"]["token_indices"])
    for h in heads:
        kept |= set(np.argsort(-np.array(h["weights"]), kind="stable")[:5].tolist())
    hidden = sorted(set(range(len(doc["tokens"]))) - kept)
    assert labels == [doc["tokens"][i]["text"] for i in sorted(kept)] + [f"… {len(hidden)} more (Σ)"]
    mean = float(np.array(heads[-1]["weights"])[hidden].sum())
    assert f"… {len(hidden)} more (Σ) · mean: {mean:.4f}" in html.unescape(page)
    run("plot", LONG, "-q", "making", "-o", str(tmp_path / "auto.html"), "--static")  # auto: more than 60 rows
    assert (tmp_path / "auto.html").read_text(encoding="utf-8") == page
    run("plot", LONG, "-q", "making", "-o", str(tmp_path / "all.html"), "--rows", "all", "--static")
    assert len(re.findall(r'<th class="row', (tmp_path / "all.html").read_text(encoding="utf-8"))) == 112
