"""The interactive page: one self-contained HTML file (`attn plot TEXT -q WORD -o page.html`).

Its script and style are the package files page.js and page.css, inlined when the page is
written, and its data one JSON blob (`page_data`) read from a `PageResult`: nothing is fetched,
so the file opens from file://, offline, and can be mailed as is.

Size: every query row of every head is in the page, as 8 bits per weight (the weight rounded to
0.01, 255 for a masked key), deflated and base64-encoded (the browser inflates it with its own
DecompressionStream); the chosen query's rows and steps are exact float32 numbers. The keys of
the neuron view are float16. A 128-token text: ~1.3 MB for MiniLM, ~3.4 MB for SmolLM2 (30
layers × 9 heads); docs/benchmarks.md.
"""

from __future__ import annotations

import base64
import html
import json
import math
import zlib
from importlib import resources

import numpy as np

from ...compute.inspect import auto_head
from ...compute.page import MAX_PAGE_TOKENS, PageResult
from ...compute.query import resolve_query
from ...compute.result import InspectResult
from ...loading.tokenizer import units
from ..text import printable

MASKED = 255  # the byte of a weight the query may not see
FORMAT = 1  # the data blob's layout, read by page.js


def page_html(result: PageResult | InspectResult, title: str | None = None, layer: int | None = None) -> str:
    """The whole page, as one HTML document, opened on `layer` (an index into the result's
    layers; default the last)."""
    data = page_data(result, layer)
    title = title or f'{data["model"]["name"]} · query "{data["query_text"]}"'
    return _DOCUMENT.format(title=html.escape(title), body=page_fragment(result, data))


def page_fragment(result: PageResult | InspectResult, data: dict | None = None) -> str:
    """The page's body: one `<div class="attn-page">` with its style, data and script inside,
    so that several on one HTML page (a notebook) do not meet: the script finds its data from
    its own element, and every CSS rule is under `.attn-page`."""
    data = page_data(result) if data is None else data
    blob = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    return (
        f'<div class="attn-page"><style>{_asset("page.css")}</style>'
        f'<script type="application/json" class="attn-data">{blob}</script>'
        f"<script>{_asset('page.js')}</script></div>"
    )


def page_data(result: PageResult | InspectResult, layer: int | None = None) -> dict:
    """The JSON blob page.js reads: the model, the tokens, the packed weights of every row, and
    the exact rows and steps of the query. From an `InspectResult` alone (a notebook's), only
    the query's rows are there (`rows`), over its units (tokens or words)."""
    written, notes = None, []
    if isinstance(result, PageResult) and result.weights is not None:
        r, weights, visible, query, rows = result.inspect, result.weights, result.visible, result.query, None
        if result.written is not None:
            written = [{"position": p, "text": printable(t), "logprob": _number(lp)} for p, t, lp in result.written]
    else:
        r = result.inspect if isinstance(result, PageResult) else result
        if isinstance(result, PageResult):
            why = f"every token's rows up to {MAX_PAGE_TOKENS} tokens"
            notes = [f"The text is {len(r.tokens)} tokens long: the page holds the query's rows only, without its steps ({why})."]
        else:
            notes = ["This result holds the query's rows only: attn.page(model, text, query=...) holds every token's."]
        row_units = _row_units(r)
        query = next(i for i, u in enumerate(row_units) if r.query.token_indices[0] in u.token_indices)
        weights, visible = _query_rows(r, query, len(row_units))
        rows = [query]
    m = r.model
    layers, heads, seq, _ = weights.shape
    start = layers - 1 if layer is None else layer
    labels = r.tokens if rows is None else r.units
    cross = r.attention == "cross"  # the queries are the target (the decoder's input), the keys the source
    keys = {"key_tokens": [printable(t.text) for t in labels], "key_special": [t.special for t in labels]} if cross else {}
    if cross:
        labels = r.decoder_tokenization.tokens if rows is None else _row_units(r)
    return {
        "format": FORMAT,
        "model": {
            "name": m.name, "architecture": m.architecture, "layers": layers, "heads": heads, "kv_heads": m.kv_heads, "head_dim": m.head_dim,
            "causal": m.causal, "scale": _number(m.scale if m.scale is not None else 1 / math.sqrt(m.head_dim)), "softcap": m.attn_softcap,
            "rotary": m.rotary,
        },
        "tokens": [printable(t.text) for t in labels],
        "special": [t.special for t in labels],
        "query": query,
        "query_text": printable(r.query.text),
        "rows": rows,  # the query rows the page holds; None: every row
        "written": written,  # `generate --html`: each written token (the row of the position before it chose it)
        "notes": [printable(n) for n in r.notes] + notes,
        "weights": _packed_weights(weights, visible),
        "keys": _packed_keys(r),
        "layer_info": [{"layer": lr.layer, "window": lr.window, "adjusts": lr.adjusts} for lr in r.layers],
        "exact": [[_exact_head(h) for h in lr.heads] for lr in r.layers],  # per layer: heads 0…H-1, then the mean
        "start_layer": start,
        "auto_head": _auto_head(r, start, query),
    } | keys


def _row_units(r: InspectResult) -> tuple:
    """The units the query is one of: the keys' (`r.units`), or under cross-attention the
    decoder's input at the result's level."""
    return r.units if r.attention != "cross" else tuple(units(r.decoder_tokenization, r.level))


def _query_rows(r: InspectResult, query: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """An `InspectResult`'s rows as the page's (layers, heads, rows, units) weights and
    (layers, rows, units) visibility, the query's row filled and every other row masked."""
    keys, heads = len(r.units), len(r.layers[0].heads) - 1
    weights = np.zeros((len(r.layers), heads, rows, keys), np.float32)
    visible = np.zeros((len(r.layers), rows, keys), bool)
    for i, lr in enumerate(r.layers):
        weights[i, :, query] = np.stack([h.weights for h in lr.heads[:heads]])
        visible[i, query] = True if lr.visible is None else lr.visible
    return weights, visible


def centi(weights: np.ndarray, visible: np.ndarray | None) -> np.ndarray:
    """uint8 of the same shape: each weight rounded to 0.01 (0–100, half to even as Python's
    `f"{w:.2f}"` rounds), `MASKED` where `visible` (broadcast over heads) is False."""
    packed = np.rint(weights.astype(np.float64) * 100).clip(0, 100).astype(np.uint8)  # float64: w·100 is exact, so ties round as Python does
    if visible is not None:
        packed[~np.broadcast_to(visible[:, None], packed.shape)] = MASKED
    return packed


def _packed_weights(weights: np.ndarray, visible: np.ndarray | None) -> dict:
    """(layers, heads, seq, seq) as deflated, base64 bytes in C order."""
    return {"shape": list(weights.shape), "encoding": "centi-uint8-deflate-base64", "data": _deflated(centi(weights, visible).tobytes())}


def _packed_keys(r) -> dict | None:
    """Each layer's keys as they enter Q·Kᵀ (after RoPE), per key/value head: float16
    (layers, kv_heads, seq, head_dim), deflated, base64. None without steps."""
    if r.level != "token":
        return None  # the keys are per token, the rows per word
    per_layer = []
    for lr in r.layers:
        kv = {}
        for h in lr.heads:
            if h.steps is not None and h.kv_head not in kv:
                kv[h.kv_head] = h.steps.keys
        if len(kv) != r.model.kv_heads:
            return None
        per_layer.append(np.stack([kv[i] for i in range(r.model.kv_heads)]))
    keys = np.stack(per_layer).astype("<f2")
    return {"shape": list(keys.shape), "encoding": "float16-deflate-base64", "data": _deflated(keys.tobytes())}


def _exact_head(h) -> dict:
    """The query's row of one head (or of the mean) at full precision, and its steps."""
    out = {"w": _numbers(h.weights)}
    if h.scores is not None:
        out["qk"] = _numbers(h.scores)
    if h.adjusted_scores is not None:
        out["adj"] = _numbers(h.adjusted_scores)
    if h.kv_head is not None:
        out["kv"] = h.kv_head
    if h.steps is not None:
        out["q"] = _numbers(h.steps.query)
        if h.steps.output is not None:
            out["out"] = _numbers(h.steps.output)
    return out


def _auto_head(r: InspectResult, layer: int, query: int) -> int:
    """The head the page opens on: the one `--head` chose, else in `layer` the one whose query
    row sends the most weight to other words (what `attn inspect --head auto` picks)."""
    shown = r.layers[layer]
    if len(shown.focus) == 1 and isinstance(shown.focus[0], int):
        return shown.focus[0]
    rows = np.stack([h.weights for h in shown.heads if h.head != "mean"])
    if r.level != "token" or r.attention == "cross":  # cross-attention's query is no key: no word to leave out
        return int(np.argmax(rows.max(axis=1)))  # over words: the head most focused on one word
    return auto_head(rows, r.tokenization, resolve_query(r.tokenization, query_index=query), r.model.causal)


def _numbers(x: np.ndarray) -> list:
    """float32 values as the shortest decimals that read back as the same float32; NaN (a
    masked score) as null."""
    return [None if not math.isfinite(v) else _number(v) for v in np.asarray(x).tolist()]


def _number(x: float) -> float:
    """The shortest decimal that reads back as the same float32."""
    return float(np.format_float_positional(np.float32(x), unique=True, trim="-"))


def _deflated(raw: bytes) -> str:
    return base64.b64encode(zlib.compress(raw, 6)).decode("ascii")  # level 9: ~10× slower (long runs of masked bytes) for ~8% fewer bytes


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


_DOCUMENT = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
</head>
<body>
{body}
</body>
</html>
"""
