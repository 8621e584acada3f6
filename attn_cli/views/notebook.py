"""Results in a notebook: `_repr_html_` and `attn.show`.

An `InspectResult` or a `PageResult` shows as the interactive page; every other result as the
screen its command prints, with its colours (Rich's HTML export). Each is framed in its own
sandboxed iframe (`srcdoc`, scripts allowed, no same origin), so that two outputs in one
notebook share no ids, no style and no script, and a notebook that does not trust its outputs
still runs none of attn's script outside the frame.
"""

from __future__ import annotations

import html
import io
import tempfile
import webbrowser
from pathlib import Path

from ..compute.page import PageResult
from ..compute.result import InspectResult
from .page import page_html

FRAME_HEIGHT = 720  # px: the page scrolls inside its frame
SCREEN_WIDTH = 100  # columns of a command's screen


def result_document(result) -> str:
    """The whole HTML document of `result`: the interactive page, or the command's screen."""
    if isinstance(result, (InspectResult, PageResult)):
        return page_html(result)
    return _screen_document(result)


def framed(result) -> str:
    """`result` for a notebook cell: its document in a sandboxed iframe."""
    document = result_document(result)
    height = FRAME_HEIGHT if isinstance(result, (InspectResult, PageResult)) else min(FRAME_HEIGHT, 40 + 17 * document.count("\n"))
    return (
        f'<iframe class="attn-frame" sandbox="allow-scripts" style="width:100%;height:{height}px;border:1px solid #ddd" '
        f'srcdoc="{html.escape(document, quote=True)}"></iframe>'
    )


def show(result, open_browser=webbrowser.open) -> Path:
    """Write `result`'s page to a temporary .html file and open it in the browser; returns the
    file (it is left for the browser to read)."""
    with tempfile.NamedTemporaryFile("w", suffix=".html", prefix="attn-", delete=False, encoding="utf-8") as f:
        f.write(result_document(result))
    path = Path(f.name)
    open_browser(path.as_uri())
    return path


def _screen_document(result) -> str:
    """The command's screen, as `attn COMMAND` prints it in a 100-column terminal with colour."""
    from rich.console import Console

    console = Console(record=True, width=SCREEN_WIDTH, color_system="truecolor", force_terminal=True, file=io.StringIO())
    for renderable in _screen(result):
        console.print(renderable)
    return console.export_html(inline_styles=True)


def _screen(result) -> list:
    """The renderables of the command that made `result`."""
    from ..compute.ablate import AblateResult
    from ..compute.generate import GenerateResult
    from ..compute.heads import HeadsResult
    from ..compute.knockout import KnockoutResult
    from ..compute.lens import LensResult
    from ..compute.rollout import RolloutResult
    from ..compute.stats import CompareResult
    from ..compute.stats_result import StatsResult
    from .terminal import ablate, generate, heads, knockout, rollout, stats

    if isinstance(result, HeadsResult):
        return heads.heads_view(result, SCREEN_WIDTH)
    if isinstance(result, RolloutResult):
        return rollout.rollout_view(result)
    if isinstance(result, StatsResult):
        return stats.stats_view(result, SCREEN_WIDTH)
    if isinstance(result, CompareResult):
        return stats.compare_view(result)
    if isinstance(result, GenerateResult):
        return generate.generate_view(result)
    if isinstance(result, LensResult):
        return generate.lens_view(result)
    if isinstance(result, KnockoutResult):
        return knockout.knockout_view(result, SCREEN_WIDTH)
    if isinstance(result, AblateResult):
        return ablate.ablate_view(result, SCREEN_WIDTH)
    raise TypeError(f"no view for {type(result).__name__}")
