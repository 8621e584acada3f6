"""`attn plot` end to end: the files it writes hold the numbers `inspect` and `heads` compute."""

from __future__ import annotations

import json
import re
import sys

import numpy as np
import pytest
from conftest import SENTENCE
from helpers import attn
from PIL import Image
from typer.testing import CliRunner

from attn_cli.cli import ExitStatus, app
from attn_cli.views.palette import heat_rgb

CAT = "The cat sat on the mat because it was tired."
runner = CliRunner()


def html_cells(path) -> list[str]:
    return re.findall(r"<td class=\"cell[^\"]*\"[^>]*>([^<]*)</td>", path.read_text())


def test_grid_html_holds_the_model_view_values(tmp_path):
    out = tmp_path / "grid.html"
    p = attn("plot", CAT, "-q", "it", "--view", "grid", "--key", "cat", "--static", "-o", str(out))
    assert p.returncode == 0 and p.stdout.strip() == str(out) and p.stderr == ""
    doc = json.loads(attn("heads", CAT, "-q", "it", "--key", "cat", "--json").stdout)
    cells = html_cells(out)
    assert len(cells) == 6 * 12
    assert cells[5 * 12 + 11] == ".71" == "." + f"{doc['layers'][5]['heads'][11]['value']:.2f}".split(".")[1]
    assert "http" not in out.read_text() and "<script" not in out.read_text()


def test_heads_png_is_the_multihead_table(tmp_path):
    out = tmp_path / "making.png"
    result = runner.invoke(app, ["plot", SENTENCE, "-q", "making", "-o", str(out)])
    assert result.exit_code == 0, result.output
    image = np.asarray(Image.open(out).convert("RGB"))
    assert image.shape[0] > 300 and image.shape[1] > 300
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 50  # a picture, not a blank
    # the warmest cell of the picture is the hottest weight's colour: [CLS] in head 1, 0.68
    assert np.any(np.all(np.abs(image.astype(int) - heat_rgb(0.68)) <= 4, axis=-1))


def test_decoder_plot_greys_the_masked_cells(tmp_path):
    from pathlib import Path

    llama = Path(__file__).parent / "fixtures" / "tiny" / "llama"
    out = tmp_path / "llama.html"
    assert runner.invoke(app, ["plot", CAT, "-q", "sat", "-m", str(llama), "--static", "-o", str(out)]).exit_code == 0
    cells = html_cells(out)
    assert cells.count("") == (25 - 4) * 5  # 21 future tokens × (4 heads + mean): no number


@pytest.mark.parametrize(
    "args, status, message",
    [
        (["-o", "/no/such/dir/x.png"], ExitStatus.USAGE, "create the directory first"),
        (["-o", "x.pdf"], ExitStatus.USAGE, "end the file name in one of .png, .svg, .html"),
        (["-o", "x.png", "--view", "pie"], ExitStatus.USAGE, "--view 'pie' is not valid"),
        (["-o", "x.png", "-q", "dog"], ExitStatus.QUERY_NOT_FOUND, "'dog' is not a word"),
    ],
)
def test_plot_errors(tmp_path, args, status, message):
    query = [] if "-q" in args else ["-q", "cat"]
    p = attn("plot", CAT, *query, *args)
    assert p.returncode == status and message in p.stderr and p.stdout == ""


def test_missing_matplotlib_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    result = runner.invoke(app, ["plot", CAT, "-q", "it", "-o", str(tmp_path / "x.png")])
    assert result.exit_code == ExitStatus.UNAVAILABLE
    assert "attn-cli[plot]" in result.output and not (tmp_path / "x.png").exists()
    # HTML needs no matplotlib
    assert runner.invoke(app, ["plot", CAT, "-q", "it", "-o", str(tmp_path / "x.html")]).exit_code == 0
