"""Which experts each token used, as `attn inspect --steps` shows it (terminal and JSON), against
the router's top-k that transformers returned for the tiny Mixtral and Qwen3-MoE fixtures
(`router_experts`, `router_weights` in tests/fixtures/tiny/<name>/ref_<i>.npz)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import validate
from option_registry import TINY, invoke, ref, run_json

from attn_cli.compute.result import json_schema

CASES = [(name, i) for name in ("mixtral", "qwen3_moe") for i in range(3)]


@pytest.mark.parametrize("name,i", CASES)
def test_json_routing_is_the_routers_top_k_for_every_token(name, i):
    r = ref(name, i)
    doc = run_json("inspect", str(r["text"]), "-m", str(TINY / name), "-i", "1", "--layer", "all", "--steps", "--json")
    validate(doc, json_schema(), "inspect")
    assert doc["schema_version"] == "2.4"
    routed = {layer["layer"]: layer["routing"] for layer in doc["layers"] if "routing" in layer}
    assert sorted(routed) == r["router_layers"].tolist()  # every layer with experts, and only those
    for layer, experts, weights in zip(r["router_layers"], r["router_experts"], r["router_weights"], strict=True):
        tokens = routed[int(layer)]
        assert len(tokens) == len(doc["tokens"]) == len(experts)
        assert [t["experts"] for t in tokens] == experts.tolist()  # the same experts, most probable first
        assert np.abs(np.array([t["weights"] for t in tokens]) - weights).max() <= 1e-5


def test_routing_needs_steps_and_experts():
    r = ref("mixtral", 0)
    plain = run_json("inspect", str(r["text"]), "-m", str(TINY / "mixtral"), "-i", "1", "--layer", "all", "--json")
    assert not any("routing" in layer for layer in plain["layers"])
    dense = run_json("inspect", str(r["text"]), "-m", str(TINY / "llama"), "-i", "1", "--steps", "--json")
    assert not any("routing" in layer for layer in dense["layers"])


@pytest.mark.parametrize("name", ["mixtral", "qwen3_moe"])
def test_the_steps_screen_lists_each_tokens_experts_and_weights(name):
    r = ref(name, 1)
    layer = int(r["router_layers"][-1])
    out = invoke("inspect", str(r["text"]), "-m", str(TINY / name), "-i", "1", "--layer", str(layer), "--steps").stdout
    section = out[out.index(f"Experts · layer {layer}: the router's top 2 for each token") :].splitlines()[1:]
    k = len(r["input_ids"])
    for line, experts, weights in zip(section[:k], r["router_experts"][-1], r["router_weights"][-1], strict=True):
        assert line.endswith(" · ".join(f"expert {e} {w:.2f}" for e, w in zip(experts, weights, strict=True))), line
