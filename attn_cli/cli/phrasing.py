"""The library's errors in the CLI's words: the options a message names as Python arguments
(`query_index`, `include_special=False`; see `attn_cli.errors`) as the flags that set them."""

from __future__ import annotations

from ..errors import phrased

FLAGS = {
    "query": "--query",
    "query_b": "--query-b",
    "query_index": "--query-index",
    "include_special=False": "--no-special",
    "include_special=True": "--special",
    "truncate=True": "--truncate",
    "truncate": "--truncate",
    "layer": "--layer",
    "head": "--head",
    "top_k": "--top",
    "top": "--top",
    "level": "--level",
    "level='word'": "--level word",
    "rank_by": "--rank-by",
    "norms": "--norms",
    "target_id": "--target-id",
    "window": "--window",
    "mode": "--mode",
    "mode='mean'": "--mode mean",
    "mean_over": "--mean-over",
    "steps=True": "--steps",
    "steps": "--steps",
    "metric": "--metric",
    "metric='weight'": "--metric weight",
    "key": "--key",
    "contrast": "--contrast",
    "method='alti'": "--method alti",
    "method='value-zeroing'": "--method value-zeroing",
    "method='norms'": "--method norms",
    "target": "--target",
    "target=TEXT": "--target TEXT",
    "target_b": "--target-b",
    "attention": "--attention",
    "attention='encoder'": "--attention encoder",
    "attention='decoder'": "--attention decoder",
    "attention='cross'": "--attention cross",
    "chat=True": "--chat",
    "chat": "--chat",
    "system": "--system",
    "max_new_tokens": "-n",
    "max_memory": "--max-memory",
    "Sampling.sample=True": "--sample",
    "Sampling.temperature": "--temperature",
    "Sampling.top_k": "--top-k",
    "Sampling.top_p": "--top-p",
    "Sampling.seed": "--seed",
    "seed": "--seed",
    "exclude_bos=True": "--exclude-bos",
    "exclude_current_token=True": "--exclude-current-token",
    "tokenize()": "`attn tokens`",
    "generate()": "attn generate",
    "lens()": "attn lens",
    "inspect()": "attn inspect",
    "knockout()": "attn knockout",  # require_decoder(model, "knockout"): formatted, so the scan below misses it
    "ablate()": "attn ablate",
    "head_statistics()": "attn stats --knockout",  # require_decoder(model, "head_statistics"), only for --knockout
    "corpus_statistics()": "attn stats --knockout",
    "load_model('smollm2')": "--model smollm2",
}


def for_cli(text: str) -> str:
    """A library message or fix with the CLI's flags for the options it names."""
    return phrased(text, FLAGS)
