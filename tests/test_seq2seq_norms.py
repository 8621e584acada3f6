"""Value-weighted norms (Kobayashi et al. 2020) of every kind of attention of the encoder–decoder
models against transformers: ‖α·v‖ and ‖α·v·W_O‖ of every layer, head, query row and key, from
the value vectors and output projections transformers' modules use (forward hooks,
scripts/make_seq2seq_norms.py → tests/fixtures/seq2seq/<name>/norms_<i>.npz): `inspect --norms`
(with `--target` and `--attention`) and the explorer's `n` view, which reads the same `inspect`
over traces it keeps.

Tolerance: ‖α_j·v_j‖ = α_j·‖v_j‖, so the 1e-5 on α that the weights meet (test_seq2seq) is 1e-5
of ‖v_j‖ here, and norms reach 30 on these models: each key's norms are checked within 1e-5 of
its own size (‖v_j‖, resp. ‖v_j·W_O‖, in the fixture), and the sizes within 1e-5 relative."""

from __future__ import annotations

import numpy as np
import pytest
from option_registry import covers, run_json
from test_seq2seq import NAMES, SEQ2SEQ, TOLERANCE

from attn_cli.compute.explore import trace_pair
from attn_cli.loading.model import load_model
from attn_cli.maths.analysis import output_slices

KINDS = ("encoder", "decoder", "cross")


def norms_ref(name: str, i: int) -> dict:
    return dict(np.load(SEQ2SEQ / name / f"norms_{i}.npz"))


def within(ours, want, size) -> bool:
    """|ours − want| ≤ 1e-5·size, key by key: α within 1e-5, times the key's vector's size."""
    return np.shape(ours) == np.shape(want) and bool(np.all(np.abs(np.asarray(ours, np.float64) - want) <= TOLERANCE * np.asarray(size, np.float64)))


def w_o_of(model, kind: str, layer: int) -> np.ndarray:
    if kind == "encoder":
        return model.arch.output_projection(model.weights, layer)
    return model.arch.seq2seq.output_projections(model.weights, layer)[kind == "cross"]


@pytest.mark.parametrize(("name", "i"), [(name, i) for name in NAMES for i in range(3)])
def test_every_kinds_norms_are_transformers_for_every_row(name, i):
    """Every query row of every kind, every layer and head: the numbers the explorer's `n` view
    shows (`TracedText.inspect(norms=True)`, `inspect_tokens` over the kept traces)."""
    r, model = norms_ref(name, i), load_model(SEQ2SEQ / name)
    traced = trace_pair(model, str(r["source"]), str(r["target"]))
    for kind in KINDS:
        value, output = r[f"{kind}_value_norms"], r[f"{kind}_output_norms"]
        value_size, output_size = r[f"{kind}_value_sizes"], r[f"{kind}_output_sizes"]
        # The vectors weighed: the values the trace keeps, through the W_O the norms read.
        for trace in traced[kind].shown_traces():
            f = trace.v @ output_slices(w_o_of(model, kind, trace.layer), trace.v.shape[0])
            assert np.allclose(np.linalg.norm(trace.v, axis=-1), value_size[trace.layer], rtol=TOLERANCE, atol=0), (kind, trace.layer)
            assert np.allclose(np.linalg.norm(f, axis=-1), output_size[trace.layer], rtol=TOLERANCE, atol=0), (kind, trace.layer)
        assert len(traced[kind].queries.tokens) == value.shape[2]
        for t in range(value.shape[2]):
            result = traced[kind].inspect(query_index=t, layer="all", head="all", norms=True)
            for layer in result.layers:
                for h in range(value.shape[1]):
                    head, where = layer.head(h), (kind, t, layer.layer, h)
                    assert within(head.value_norms, value[layer.layer, h, t], value_size[layer.layer, h]), where
                    assert within(head.output_norms, output[layer.layer, h, t], output_size[layer.layer, h]), where


@covers("inspect --norms", "inspect --target", "inspect --attention")
@pytest.mark.parametrize("name", NAMES)
def test_inspect_norms_of_each_kind_are_transformers_in_the_json(name):
    """The command's own path (`inspect_decoder`, the last decoder layer run whole for
    cross-attention), and a word's norm, the norm of its tokens' summed vectors, in the top list."""
    r = norms_ref(name, 1)
    t = 5
    for kind in KINDS:
        doc = run_json(
            "inspect", str(r["source"]), "-m", str(SEQ2SEQ / name), "--target", str(r["target"]), "--attention", kind,
            "--query-index", str(t), "--layer", "all", "--head", "all", "--norms", "--json",
        )
        assert doc["attention"] == kind
        for layer in doc["layers"]:
            for head in layer["heads"][:-1]:
                at, where = (layer["layer"], head["head"]), (kind, layer["layer"], head["head"])
                for key in ("value", "output"):
                    want, size = r[f"{kind}_{key}_norms"][at][t], r[f"{kind}_{key}_sizes"][at]
                    assert within(head[f"{key}_norms"], want, size), where
                    # a word's norm is that of its tokens' summed vectors: at most the sum of their norms
                    for word in head["top"]:
                        assert word[f"{key}_norm"] <= want[word["token_indices"]].sum() + TOLERANCE * size[word["token_indices"]].sum()
                        if len(word["token_indices"]) == 1:
                            assert within(word[f"{key}_norm"], want[word["token_indices"][0]], size[word["token_indices"][0]]), where
