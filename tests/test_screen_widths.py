"""Every view at 40, 60, 80 and 120 columns, in colour (a terminal) and without (a pipe): no
line wider than the screen, no number cut (never a digit beside …), and the numbers of the
inspect tables equal the JSON's, rounded as shown, column by column — on MiniLM and on the
packaged real decoders, SmolLM2 and Gemma 3 (the latter's vectors have the widest numbers).

The screens are drawn as the CLI draws them (`write_screen` on a console of that width); the
CLI's own paths (COLUMNS, the plain screen, a real terminal) are in tests/test_screens_cli.py."""

from __future__ import annotations

import re

import numpy as np
import pytest
from rich.cells import cell_len
from rich.console import Console

from attn_cli.cli.common import write_screen
from attn_cli.compute.inspect import inspect
from attn_cli.loading.model import kept, load_model
from attn_cli.loading.packaged import is_installed
from attn_cli.views.terminal.inspect import inspect_view

WIDTHS = [40, 60, 80, 120]
SENTENCE = "The Transformer is making it possible to understand language."
CAT = "The cat sat on the mat because it was tired."
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
CUT = re.compile(r"[\d.]…|…[\d.]")  # an ellipsis touching a digit or a decimal point
NUMBER = re.compile(r"[-+]?\d*\.\d+")
VECTOR = re.compile(r"\[((?:[-+]\d+\.\d+ )*…)\]")  # [+0.12 -1.30 …]


def screen_lines(renderables, width: int, colour: bool, capsys) -> list[str]:
    console = Console(width=width, force_terminal=colour, color_system="truecolor" if colour else None, highlight=False, soft_wrap=False)
    capsys.readouterr()
    write_screen(renderables, console)
    return ANSI.sub("", capsys.readouterr().out).splitlines()


def assert_fits(lines: list[str], width: int) -> None:
    for line in lines:
        assert cell_len(line) <= width, (width, line)
        assert not CUT.search(line), (width, line)


def blocks(lines: list[str]):
    """Each table block: (column names, its row lines), found by the rule under its header."""
    for k, line in enumerate(lines):
        if k and line.startswith("──") and set(line) == {"─"}:
            names = re.split(r"\s{2,}", lines[k - 1].strip())
            rows = []
            for row in lines[k + 1 :]:
                if not re.match(r"^\s*\d+(–\d+)?\s", row):
                    break
                rows.append(row)
            yield names, rows


def check_step2(lines: list[str], doc: dict, head: dict) -> int:
    """Every number of the step-2 tables under its column's value in the JSON; returns how many."""
    expected = {"Q·K": ("scores", "{:.2f}"), "weight": ("weights", "{:.3f}"), "‖αv‖": ("value_norms", "{:.2f}"), "‖αvWₒ‖": ("output_norms", "{:.2f}")}
    checked = 0
    for names, rows in blocks(lines):
        columns = [n for n in names[2:] if n == "Q·K" or n.startswith("Q·K/√") or n in expected]
        if "weight" not in names and "‖αv‖" not in names:
            continue
        for row in rows:
            if "—" in row:  # a masked run
                continue
            index = int(row.split()[0])
            numbers = NUMBER.findall(row)
            assert len(numbers) == len(columns), (names, row)
            for name, number in zip(columns, numbers):
                key, form = expected.get(name, ("scaled_scores", "{:.2f}"))
                assert number == form.format(head[key][index]), (name, row)
                checked += 1
    return checked


def check_step1(lines: list[str], doc: dict, head: dict) -> int:
    """Every element of the step-1 vectors, and every norm, as the JSON's vectors give them."""
    steps = head["steps"]
    vectors = {"k pre-RoPE": "keys_pre_rope", "k post-RoPE": "keys", "key k": "keys", "value v": "values"}
    checked = 0
    for names, rows in blocks(lines):
        if not any(n in vectors for n in names):
            continue
        for row in rows:
            if "masked" in row:
                continue
            index = int(row.split()[0])
            shown = VECTOR.findall(row)
            rest = NUMBER.findall(VECTOR.sub("", row))
            columns = [n for n in names if n in vectors]
            assert len(shown) == len(columns), (names, row)
            for name, elements in zip(columns, shown):
                values = steps[vectors[name]][index]
                parts = elements.split()
                assert parts[-1] == "…" and parts[:-1] == [f"{x:+.2f}" for x in values[: len(parts) - 1]], (name, row)
                checked += len(parts) - 1
            norms = [n for n in names if n in ("‖k‖", "‖v‖")]
            for name, number in zip(norms, rest):
                vector = steps["keys" if name == "‖k‖" else "values"][index]
                assert number == f"{np.linalg.norm(vector):.2f}", (name, row)
                checked += 1
    return checked


def focus_head(doc: dict, layer: int = 0) -> dict:
    entry = doc["layers"][layer]
    return next(h for h in entry["heads"] if h["head"] == entry["focus"][0])


@pytest.fixture(scope="module")
def minilm():
    return load_model(None)


@pytest.fixture(scope="module", params=["smollm2", "gemma3"])
def decoder(request):
    if not is_installed(request.param):
        pytest.skip(f"{request.param} is not installed (uv sync --group test)")
    return kept(load_model(request.param))


INSPECT = [dict(), dict(steps=True), dict(norms=True), dict(level="word"), dict(steps=True, norms=True)]


@pytest.mark.parametrize("options", INSPECT, ids=lambda o: ",".join(o) or "default")
def test_inspect_on_minilm_fits_every_width_and_shows_the_json(minilm, capsys, options):
    result = inspect(minilm, SENTENCE, query="making", **options)
    doc = result.to_json()
    for width in WIDTHS:
        for colour in (False, True):
            lines = screen_lines(inspect_view(result), width, colour, capsys)
            assert_fits(lines, width)
            if options.get("level") != "word":
                assert check_step2(lines, doc, focus_head(doc)) >= 3 * len(doc["tokens"]), width
            if options.get("steps"):
                assert check_step1(lines, doc, focus_head(doc)) >= 2 * len(doc["tokens"]), width


@pytest.mark.parametrize("options", [dict(steps=True), dict(norms=True)], ids=["steps", "norms"])
def test_inspect_on_the_real_decoders_fits_every_width_and_shows_the_json(decoder, capsys, options):
    result = inspect(decoder, CAT, query="it", **options)
    doc = result.to_json()
    for width in WIDTHS:
        for colour in (False, True):
            lines = screen_lines(inspect_view(result), width, colour, capsys)
            assert_fits(lines, width)
            visible = sum(doc["layers"][0]["visible"])
            assert check_step2(lines, doc, focus_head(doc)) >= 3 * visible, width
            if options.get("steps"):
                assert check_step1(lines, doc, focus_head(doc)) >= 3 * visible, width


def test_at_80_columns_smollm2_steps_keep_every_column(decoder, capsys):
    """The issue's screen: at 80 columns the # column and ‖v‖ were cut (`10.…`)."""
    lines = screen_lines(inspect_view(inspect(decoder, CAT, query="it", steps=True)), 80, False, capsys)
    step1 = next(names for names, _ in blocks(lines) if "value v" in names)
    assert step1[0] == "#" and "‖v‖" in step1 and "k post-RoPE" in step1


def test_the_other_views_fit_every_width(decoder, capsys):
    from attn_cli.compute.generate import generate
    from attn_cli.compute.lens import lens
    from attn_cli.views.terminal.generate import generate_view, lens_view

    r = generate(decoder, "The capital of France is", 5)
    shown = {f"{np.exp(c.logprob):.2f}" for s in r.steps for c in s.top} | {f"{np.exp(s.logprob):.2f}" for s in r.steps}
    shown |= {f"{s.attended.weight:.2f}" for s in r.steps if s.attended}
    lensed = lens(decoder, CAT)
    shown_lens = {f"{np.exp(c.logprob):.2f}" for row in lensed.layers for c in row.top}
    for width in WIDTHS:
        for colour in (False, True):
            lines = screen_lines(generate_view(r), width, colour, capsys)
            assert_fits(lines, width)
            start = next(k for k, line in enumerate(lines) if line.startswith("──"))
            table = lines[start : next(k for k, line in enumerate(lines) if "stopped at" in line)]
            assert {n for line in table for n in NUMBER.findall(line)} <= shown, width
            lines = screen_lines(lens_view(lensed), width, colour, capsys)
            assert_fits(lines, width)
            assert {n for line in lines for n in NUMBER.findall(line)} == shown_lens, width


def test_compare_heads_and_rollout_on_the_real_decoders_fit_every_width(decoder, capsys):
    from attn_cli.compute.heads import heads
    from attn_cli.compute.rollout import attention_rollout
    from attn_cli.compute.stats import compare
    from attn_cli.views.terminal.heads import heads_view
    from attn_cli.views.terminal.rollout import rollout_view
    from attn_cli.views.terminal.stats import compare_view

    c = compare(decoder, "The cat sat on the mat.", "The dog sat on the rug.", query="sat", layer="-1")
    r = attention_rollout(decoder, CAT, query="it")
    h = heads(decoder, CAT, query="it")
    for width in WIDTHS:
        for colour in (False, True):
            for view in (compare_view(c), rollout_view(r), heads_view(h, width, colour)):
                assert_fits(screen_lines(view, width, colour, capsys), width)


def test_stats_compare_heads_and_rollout_fit_every_width(minilm, capsys):
    from attn_cli.compute.heads import heads
    from attn_cli.compute.rollout import attention_rollout
    from attn_cli.compute.stats import compare, head_statistics
    from attn_cli.views.terminal.heads import heads_view
    from attn_cli.views.terminal.rollout import rollout_view
    from attn_cli.views.terminal.stats import compare_view, stats_view

    c = compare(minilm, "The cat sat on the mat.", "The dog sat on the rug.", query="sat")
    doc = c.to_json()
    r = attention_rollout(minilm, SENTENCE, query="making")
    s = head_statistics(minilm, [(None, SENTENCE)])
    h = heads(minilm, SENTENCE, query="making")
    for width in WIDTHS:
        for colour in (False, True):
            for view in (compare_view(c), rollout_view(r), stats_view(s, width), heads_view(h, width, colour)):
                assert_fits(screen_lines(view, width, colour, capsys), width)
            lines = screen_lines(compare_view(c), width, colour, capsys)
            for names, rows in blocks(lines):
                if names[:2] == ["layer", "mean Σ|Δ|"]:
                    for row, layer in zip(rows, doc["layers"]):
                        assert row.split()[1] == f"{np.mean([h['change'] for h in layer['heads']]):.3f}", row


def _ablate_numbers(lines: list[str]) -> list[str]:
    """The grid's numbers, block after block, row by row (the rows of a block: a layer first)."""
    return [n for line in lines if re.match(r"^\s*\d+\s+[-+.\d]", line) for n in NUMBER.findall(line)]


def test_ablate_grid_fits_every_width_and_shows_every_number_whole(minilm, capsys):
    """At 40 and 60 columns the grid of 12 heads used to run past the screen: Rich cropped its cells
    (".001" shown as ".00", "-1.30" as "1.3") and dropped the layer column. Now it folds into
    blocks of heads, each number whole: the numbers shown are the result's, rounded, every one."""
    from attn_cli.compute.ablate import ablate
    from attn_cli.views.terminal.ablate import ablate_view

    r = ablate(minilm, CAT, query="it")
    for width in WIDTHS:
        for colour in (False, True):
            lines = screen_lines(ablate_view(r, width, colour), width, colour, capsys)
            assert_fits(lines, width)
            blocks_of_heads = [line.split()[1:] for line in lines if line.split()[:1] == ["L"]]
            heads = [int(h) for block in blocks_of_heads for h in block]
            assert heads == list(range(minilm.spec.heads)), (width, blocks_of_heads)
            want = [f"{v:.3f}"[1:] for block in blocks_of_heads for row in r.changes for v in row[int(block[0]) : int(block[-1]) + 1]]
            assert _ablate_numbers(lines) == want, width


def test_ablate_grid_of_log_p_changes_keeps_the_sign_of_every_change(minilm, capsys):
    """A decoder's grid (Δ log p, signed, as wide as "-1.30"): at 40 columns its cells were cut
    from the left, so "-1.30" showed as "1.3". The changes here are MiniLM's distances made signed
    and larger (the view does not care where they came from; a real decoder's take minutes)."""
    from dataclasses import replace

    from attn_cli.compute.ablate import ablate
    from attn_cli.compute.prediction import Target
    from attn_cli.views.terminal.ablate import ablate_view

    r = ablate(minilm, CAT, query="it")
    signs = np.where(np.arange(r.changes.size).reshape(r.changes.shape) % 2, 1.0, -1.0)
    r = replace(r, measure="logprob", target=Target(1, " it", -0.5, "top-1"), changes=signs * r.changes * 40)
    for width in (40, 60, 80):
        lines = screen_lines(ablate_view(r, width, False), width, False, capsys)
        assert_fits(lines, width)
        assert sorted(_ablate_numbers(lines)) == sorted(f"{v:+.2f}" for v in r.changes.ravel()), width
