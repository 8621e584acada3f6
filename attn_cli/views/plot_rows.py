"""What `attn plot --view heads` draws: the multi-head table of one layer as a grid of weights,
every token's row or (`--rows top`) only the rows of each head's heaviest keys and the query,
the rest summed in one "… N more" row, as the terminal's table does."""

from __future__ import annotations

import numpy as np

from ..compute.result import InspectResult
from .terminal.inspect_parts import hidden_units, top_rows

PLOT_ROWS = 60  # --rows auto: a grid of more rows than this is drawn with its top rows


def heads_grid(result: InspectResult, rows: str = "auto") -> tuple[np.ndarray, list[str], set[int], np.ndarray | None, str]:
    """(weights (rows, heads + mean), row labels, the query's rows, masked cells or None, title)
    of the first layer of `result`, for `views.plot.write_heatmap`."""
    drawn = result.layers[0]
    values = np.stack([h.weights for h in drawn.heads], axis=1)  # (units, heads + mean)
    masked = None if drawn.visible is None else np.repeat(~drawn.visible[:, None], values.shape[1], axis=1)
    labels = [u.text for u in result.units]
    query = {i for i, u in enumerate(result.units) if result.marked and set(u.token_indices) <= result.marked}
    kind = {"encoder": " (encoder)", "decoder": " (decoder self-attention)", "cross": " (cross-attention over the source)"}.get(result.attention, "")
    title = f'{result.model.name} · layer {drawn.layer}{kind}: weights of "{result.query.text}" in every head'
    if rows == "all" or (rows == "auto" and len(labels) <= PLOT_ROWS):
        return values, labels, query, masked, title
    keep = top_rows(result, drawn.heads)
    hidden = hidden_units(result, drawn, keep)
    shown = sorted(keep)
    grid = values[shown]
    labels = [labels[i] for i in shown]
    masked = None if masked is None else masked[shown]
    query = {shown.index(i) for i in query}
    if hidden:
        grid = np.vstack([grid, values[hidden].sum(axis=0, keepdims=True)])
        labels.append(f"… {len(hidden)} more (Σ)")
        masked = None if masked is None else np.vstack([masked, np.zeros((1, values.shape[1]), dtype=bool)])
    title += f" (the {len(shown)} rows of each head's top {result.top_k} and the query; the rest summed)"
    return grid, labels, query, masked, title
