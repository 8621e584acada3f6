"""What the docs and the schema claim, held by tests: the exactness figures per model
(docs/exactness.md, and the bound the README quotes), the
JSON field a one-token query's weight equals, the weight-name prefixes and float16 folders that
load, RoPE's linear scaling, and a description for every field of the JSON Schema."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import write_safetensors
from option_registry import MINILM, TINY, ref
from safetensors.numpy import load_file

from attn_cli import api
from attn_cli.loading.model import load_model
from attn_cli.loading.tokenizer import tokenize

ROOT = Path(__file__).parents[1]
README = ROOT / "README.md"
EXACTNESS = ROOT / "docs" / "exactness.md"  # the Exactness table moved here from the README
TOLERANCE = 1e-5
TINY_MODELS = sorted(p.name for p in TINY.iterdir() if (p / "config.json").is_file())
SEQ2SEQ = TINY.parent / "seq2seq"  # encoder–decoder models: tests/test_seq2seq.py
SEQ2SEQ_MODELS = sorted(p.name for p in SEQ2SEQ.iterdir() if (p / "config.json").is_file())


def worst_attention_difference(model, refs) -> float:
    """max |Δ| between our attention weights and transformers', every layer, head, row."""
    worst = 0.0
    for r in refs:
        tok = tokenize(model.tokenizer, str(r["text"]))
        ours = np.stack([t.rows()[2] for t in model.trace(tok.ids)])
        worst = max(worst, float(np.abs(ours - r["attentions"]).max()))
    return worst


def worst_seq2seq_difference(model, refs) -> float:
    """max |Δ| over the encoder's self-attention, the decoder's and the cross-attention."""
    worst = 0.0
    for r in refs:
        memory = model.memory(r["input_ids"])
        encoder = np.stack([t.rows()[2] for t in model.trace(r["input_ids"])])
        decoder = list(model.trace_decoder(r["decoder_input_ids"], memory))
        pairs = ((encoder, "encoder_attentions"), (np.stack([t.rows()[2] for t in decoder]), "decoder_attentions"),
                 (np.stack([t.cross.rows()[2] for t in decoder]), "cross_attentions"))
        worst = max(worst, *(float(np.abs(ours - r[key]).max()) for ours, key in pairs))
    return worst


def exactness_table() -> dict[str, tuple[float, float]]:
    """model -> (bound the tests hold, measured worst) from docs/exactness.md's table."""
    rows = re.findall(r"^\| `([\w-]+)` \| ([\d.e-]+) \| ([\d.e-]+) \|", EXACTNESS.read_text(encoding="utf-8"), re.M)
    return {name: (float(bound), float(measured)) for name, bound, measured in rows}


def test_exactness_figures_are_what_the_tests_measure():
    """Each model's row: the bound is the tests' tolerance, the measured worst is within a
    factor 1.5 of today's measurement (BLAS may round a little differently elsewhere), and
    the measurement is under the bound."""
    table = exactness_table()
    assert set(table) == {"all-MiniLM-L6-v2", *TINY_MODELS, *SEQ2SEQ_MODELS}
    measured = {"all-MiniLM-L6-v2": worst_attention_difference(load_model(), [dict(np.load(p)) for p in sorted(MINILM.glob("*.npz"))])}
    for name in TINY_MODELS:
        measured[name] = worst_attention_difference(load_model(TINY / name), [ref(name, i) for i in range(3)])
    for name in SEQ2SEQ_MODELS:
        measured[name] = worst_seq2seq_difference(load_model(SEQ2SEQ / name), [dict(np.load(SEQ2SEQ / name / f"ref_{i}.npz")) for i in range(3)])
    for name, (bound, quoted) in table.items():
        assert bound == TOLERANCE and measured[name] <= bound, name
        assert quoted / 1.5 <= measured[name] <= quoted * 1.5, (name, quoted, measured[name])
    for page in (README, EXACTNESS):
        figures = re.findall(r"max \|Δ\| ≤ ([\d.e-]+)", page.read_text(encoding="utf-8"))
        assert figures, page.name  # each states the bound...
        assert all(float(f) == TOLERANCE for f in figures), (page.name, figures)  # ...the tests hold


QUERIES = [(name, i) for name in TINY_MODELS for i in (0, 7, -1)] + [("minilm", i) for i in (0, 5, 45, -1)]


@pytest.mark.parametrize(("name", "i"), QUERIES)
def test_json_weights_are_transformers_attentions(name, i):
    """For a one-token query at position i, layers[l].heads[h].weights[j] ==
    attentions[l][0, h, i, j], in every layer and head, as docs/json.md and docs/exactness.md say."""
    if name == "minilm":
        r = dict(np.load(MINILM / ("long.npz" if i in (45, -1) else "making.npz")))
        model = api.load_model()
    else:
        r, model = ref(name, 2), api.load_model(TINY / name)
    n = r["attentions"].shape[-1]
    doc = api.inspect(model, str(r["text"]), query_index=i, layer="all", head="all").to_json()
    assert doc["query"]["token_indices"] == [i % n]
    for layer in doc["layers"]:
        for head in layer["heads"][:-1]:
            want = r["attentions"][layer["layer"], head["head"], i % n]
            assert np.max(np.abs(np.array(head["weights"]) - want)) <= TOLERANCE


def _derived(tmp_path: Path, name: str, rename=lambda k: k, convert=lambda v: v, extra: dict | None = None) -> Path:
    """A copy of tiny model `name` with its tensors renamed, or converted."""
    folder = tmp_path / f"{name}-derived"
    folder.mkdir()
    for file in ("config.json", "tokenizer.json"):
        shutil.copy(TINY / name / file, folder / file)
    tensors = {rename(k): convert(v) for k, v in load_file(str(TINY / name / "model.safetensors")).items()}
    write_safetensors(folder / "model.safetensors", tensors | (extra or {}))
    return folder


@pytest.mark.parametrize(
    ("name", "prefix"),
    [("roberta", "roberta."), ("distilbert", "distilbert."), ("gpt2", "transformer."), ("llama", "model."), ("bert", "bert.")],
)
def test_weight_name_prefixes_load(tmp_path, name, prefix):
    """Checkpoints saved through a head class (…ForMaskedLM, …LMHeadModel) prefix every name,
    and carry head tensors that are not needed. DistilBERT's own `transformer.layer.N` must keep
    its `transformer.` under `distilbert.`."""
    head = {"lm_head.weight": np.ones((3, 64), np.float32)}
    folder = _derived(tmp_path, name, lambda k: prefix + k, extra=head)
    assert worst_attention_difference(load_model(folder), [ref(name, i) for i in range(3)]) <= TOLERANCE


@pytest.mark.parametrize("name", ["bert", "gpt2", "llama"])
def test_float16_folders_compute_in_float32(tmp_path, name):
    """A float16 checkpoint gives exactly the numbers of a float32 one holding the same
    (float16-rounded) values, and stays close to the float32 model's reference."""
    (tmp_path / "f16").mkdir()
    (tmp_path / "f32").mkdir()
    half = _derived(tmp_path / "f16", name, convert=lambda v: v.astype(np.float16))
    widened = _derived(tmp_path / "f32", name, convert=lambda v: v.astype(np.float16).astype(np.float32))
    assert {v.dtype for v in load_file(str(half / "model.safetensors")).values()} == {np.dtype(np.float16)}
    r = ref(name, 2)
    a, b = (np.stack([t.rows()[2] for t in m.trace(tokenize(m.tokenizer, str(r["text"])).ids)]) for m in map(load_model, (half, widened)))
    assert a.dtype == np.float32 and np.array_equal(a, b)
    assert 0 < np.abs(a - r["attentions"]).max() <= 0.02


def test_rope_linear_scaling_divides_positions_by_its_factor(tmp_path):
    """rope_type linear with factor f: position p is rotated by the angles of p / f. Checked at
    layer 0 against the reference q before RoPE (which scaling cannot change), rotated by hand."""
    folder = tmp_path / "llama-linear"
    shutil.copytree(TINY / "llama", folder)
    config = json.loads((folder / "config.json").read_text())
    theta = config["rope_parameters"]["rope_theta"]
    config["rope_parameters"] = {"rope_type": "linear", "factor": 4.0, "rope_theta": theta}
    (folder / "config.json").write_text(json.dumps(config))
    r = ref("llama", 2)
    model = load_model(folder)
    trace = next(iter(model.trace(tokenize(model.tokenizer, str(r["text"])).ids)))
    q = r["q_pre_rope"][0]  # (heads, seq, 16)
    assert np.abs(trace.q_pre_rope - q).max() <= 1e-5
    d = q.shape[-1]
    inv_freq = 1.0 / theta ** (np.arange(0, d, 2) / d)
    angles = (np.arange(q.shape[1])[:, None] / 4.0) * inv_freq[None, :]
    cos, sin = np.cos(np.concatenate([angles, angles], -1)), np.sin(np.concatenate([angles, angles], -1))
    rotated = q * cos + np.concatenate([-q[..., d // 2 :], q[..., : d // 2]], -1) * sin
    assert np.abs(trace.q - rotated).max() <= 1e-4
    assert np.abs(trace.q - r["q"][0]).max() > 0.01  # unscaled RoPE would differ


def _undescribed(node, path="#") -> list[str]:
    missing = []
    if isinstance(node, dict):
        for key, sub in node.get("properties", {}).items():
            if isinstance(sub, dict) and not str(sub.get("description", "")).strip():
                missing.append(f"{path}/properties/{key}")
        for key, sub in node.items():
            missing += _undescribed(sub, f"{path}/{key}")
    elif isinstance(node, list):
        for k, sub in enumerate(node):
            missing += _undescribed(sub, f"{path}/{k}")
    return missing


def test_every_schema_property_is_described(schema):
    assert not _undescribed(schema)
    assert _undescribed({"properties": {"a": {"type": "string"}, "b": {"description": "x"}}}) == ["#/properties/a"]
