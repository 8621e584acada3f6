"""The Rich view of `KnockoutResult`: source words × layers, Geva et al.'s figure in a terminal."""

from __future__ import annotations

import numpy as np
from rich.table import Table
from rich.text import Text

from ...compute.knockout import KnockoutResult
from ..text import printable
from .fit import width_of
from .inspect import heat

SHADES = " ▁▂▃▄▅▆▇█"  # a drop of 0 … 100 % of the target's probability, one character per layer


def shade(change: float) -> str:
    """One character for a relative change: blank for none, a bar as tall as the drop, + for a rise of 5 % or more."""
    if change >= 0.05:
        return "+"
    drop = min(1.0, max(0.0, -change))
    return SHADES[int(round(drop * (len(SHADES) - 1)))]


def knockout_view(result: KnockoutResult, width: int, colour: bool = True) -> list:
    """A row per source word, a cell per layer (its drop as colour and bar height), then the
    biggest drops in numbers, which colour and bars only suggest."""
    m, t = result.model, result.target
    position = result.tokenization.tokens[result.position].text
    header = Text.assemble(
        (m.name, "bold magenta"), f" ({m.architecture}, {m.layers} layers) · after ", (f'"{printable(position)}"', "bold cyan"),
        f" (token {result.position}) the model gives ", (f'"{printable(t.text)}"', "bold"), f" p = {result.probability:.3f}",
        f"{' (its top prediction)' if t.chosen == 'top-1' else ''}",
    )
    if result.window >= 2 * m.layers - 1:  # every layer's window holds them all: say so, not "100 layers"
        layers = f"all {m.layers} layers (--window {result.window})"
    else:
        layers = f"{result.window} layer{'s' if result.window != 1 else ''}"
    title = Text(f"Attention knockout (Geva et al. 2023): the change of p when a word's edges to the position are blocked in {layers}", style="bold underline")
    label = max(width_of(printable(s.text)) for s in result.sources)  # cells, not characters
    table = Table(box=None, show_edge=False, pad_edge=False, padding=(0, 0), header_style="dim")
    table.add_column("word", no_wrap=True, overflow="ellipsis", max_width=max(4, min(label, width - m.layers - 2)))
    table.add_column(" ", width=1)
    table.add_column(_ruler(m.layers), no_wrap=True)
    for s in result.sources:
        cells = Text()
        for change in s.changes:
            drop = min(1.0, max(0.0, -float(change)))
            cells.append(shade(float(change)), style=heat(drop) if colour else "")
        table.add_row(printable(s.text), "", cells)
    order = sorted(((float(c), s.text, layer) for s in result.sources for layer, c in enumerate(s.changes)), key=lambda x: x[0])[:5]
    drops = Text("Biggest drops: ", style="bold")
    for n, (change, text, layer) in enumerate(c for c in order if c[0] < 0):
        drops.append((" · " if n else "") + printable(text), style="bold")
        drops.append(f" layer {layer} {change:+.0%}")
    legend = Text("Each cell: one layer at the centre of its window; bar height = the drop of p (█ = all of it), + = p rose 5 % or more", style="dim")
    return [header, title, table, drops, legend]


def _ruler(layers: int) -> str:
    """Layer numbers above the cells: every tenth layer's number at its column."""
    ruler = [" "] * layers
    for layer in range(0, layers, 10):
        for i, ch in enumerate(str(layer)):
            if layer + i < layers:
                ruler[layer + i] = ch
    return "".join(ruler)


def changes_table(result: KnockoutResult) -> np.ndarray:
    """(sources, layers) relative changes, as the view draws them."""
    return np.stack([s.changes for s in result.sources])
