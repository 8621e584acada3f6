"""GGUF models: the two real packaged decoders against transformers' own GGUF loader, and tiny
GGUF files (every quantization gguf can de-quantize, broken files) written with GGUFWriter.

The references (tests/fixtures/gguf/*.npz) come from scripts/make_gguf_fixtures.py.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from gguf import GGMLQuantizationType as Q
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize, quantize
from gguf_helpers import TINY, packaged_gguf, write_gguf
from helpers import attn, validate
from option_registry import covers

from attn_cli.exit_status import ExitStatus
from attn_cli.loading.gguf import GGUFFile
from attn_cli.loading.model import load_model

FIXTURES = Path(__file__).parent / "fixtures" / "gguf"
TEXT = "The cat sat on the mat because it was tired."


@pytest.fixture(autouse=True)
def own_cache(request, tmp_path_factory, monkeypatch):
    """The tiny files' tokenizers go to a cache of this run. The real models use attn's own
    cache, as a user's run does: Gemma's parts are joined (250 MB) and its tokenizer built once."""
    if "real" not in request.fixturenames and "packaged" not in request.node.name:
        monkeypatch.setenv("ATTN_CACHE", str(tmp_path_factory.getbasetemp() / "attn-cache"))


# ----------------------------------------------------------------------------- the real models


@pytest.fixture(scope="module", params=["smollm2", "gemma3"])
def real(request):
    path = packaged_gguf(request.param)
    return request.param, load_model(path), np.load(FIXTURES / f"{request.param}.npz")


def test_tokens_equal_transformers(real):
    name, model, ref = real
    texts = [str(t) for t in ref["texts"]] + [str(t) for t in ref["tokens_texts"]]
    expected = [ref[f"ids_{i}"] for i in range(len(ref["texts"]))] + [ref[f"tok_ids_{j}"] for j in range(len(ref["tokens_texts"]))]
    assert len(texts) >= 15
    for text, ids in zip(texts, expected):
        assert model.tokenizer.encode(text).ids == ids.tolist(), (name, text)


def test_every_layer_and_head_matches_transformers(real):
    """All sentences, incl. one of ~850 tokens (past Gemma's 512-token window)."""
    name, model, ref = real
    worst = 0.0
    for i in range(len(ref["texts"])):
        rows, expected = ref[f"rows_{i}"], ref[f"attn_{i}"]
        seen = 0
        for trace in model.trace(ref[f"ids_{i}"]):
            weights = trace.rows(list(rows))[2]  # (heads, rows, seq)
            assert weights.shape == expected[trace.layer].shape
            worst = max(worst, float(np.abs(weights - expected[trace.layer]).max()))
            seen += 1
        assert seen == model.spec.layers
    assert worst <= 1e-5, f"{name}: max |Δ attention| = {worst:.2e}"


def test_q_k_v_match_transformers(real):
    name, model, ref = real
    pos = ref["qkv_pos"]
    for trace in model.trace(ref[f"ids_{int(ref['qkv_text'])}"]):
        for key, ours in (("q", trace.q), ("k", trace.k), ("v", trace.v), ("q_pre_rope", trace.q_pre_rope), ("k_pre_rope", trace.k_pre_rope)):
            theirs = ref[key][trace.layer]
            scale = max(1.0, float(np.abs(theirs).max()))
            assert np.abs(ours[:, pos] - theirs).max() <= 1e-5 * scale, (name, key, trace.layer)
    assert model.spec.scale == pytest.approx(float(ref["scaling"]), rel=1e-7)


def test_gemma3_sliding_and_global_layers_packaged():
    model = load_model(packaged_gguf("gemma3"))
    s = model.spec
    assert (s.model_type, s.layers, s.heads, s.kv_heads, s.head_dim) == ("gemma3_text", 18, 4, 1, 256)
    assert s.layer_windows == tuple(None if (i + 1) % 6 == 0 else 512 for i in range(18))
    p = attn("inspect", TEXT, "-q", "tired", "-m", "gemma3", "--layer", "all", "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    kinds = [(layer["attention"], layer["window"]) for layer in doc["layers"]]
    assert kinds == [("global", None) if (i + 1) % 6 == 0 else ("sliding", 512) for i in range(18)]
    assert doc["model"]["layer_windows"] == list(s.layer_windows)
    assert doc["tokens"][0]["text"] == "<bos>" and doc["tokens"][0]["special"]


def test_named_packaged_models_and_attn_models(schema):
    for name in ("smollm2", "gemma3"):
        packaged_gguf(name)
    p = attn("inspect", "The cat sat. 🎉", "-q", "🎉", "-m", "smollm2", "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    validate(doc, schema, "inspect")
    assert doc["model"]["architecture"] == "llama" and doc["model"]["layers"] == 30
    assert doc["query"]["occurrences"] == 1 and len(doc["query"]["token_indices"]) == 3  # 🎉 is 3 byte-level tokens, one word
    p = attn("models", "--json")
    entries = {m["name"]: m for m in json.loads(p.stdout)["models"]}
    assert entries["smollm2"]["usable"] and entries["smollm2"]["architecture"] == "llama"
    assert entries["gemma3"]["quantization"] == "Q4_K_M" and entries["gemma3"]["layers"] == 18


# ----------------------------------------------------------------------------- tiny GGUF files


@pytest.mark.parametrize("source", ["llama", "qwen2", "qwen3"])
def test_gguf_and_folder_give_the_same_numbers(tmp_path, source):
    """The same float32 weights as a GGUF file (Q/K rows permuted as llama.cpp stores them)
    and as a safetensors folder give identical attention."""
    gguf_model = load_model(write_gguf(tmp_path / f"{source}.gguf", source))
    folder_model = load_model(TINY / source)
    # GGUF stores eps as float32, and the tiny folders (base models) have no LM head to tie or not
    plain = lambda s: replace(s, eps=0.0, lm_head=None)  # noqa: E731
    assert plain(gguf_model.spec) == plain(folder_model.spec)
    assert gguf_model.spec.eps == np.float32(folder_model.spec.eps)
    ids = np.array(gguf_model.tokenizer.encode(TEXT).ids)  # the tiny byte-level BPE, in every file
    if source != "llama":  # the qwen folders have that tokenizer too
        assert ids.tolist() == folder_model.tokenizer.encode(TEXT).ids
    for a, b in zip(gguf_model.trace(ids), folder_model.trace(ids)):
        np.testing.assert_array_equal(a.rows()[2], b.rows()[2])
        np.testing.assert_array_equal(a.q, b.q)
    assert gguf_model.chat_template == "{% for m in messages %}{{ m.content }}{% endfor %}"


@pytest.mark.parametrize("qtype", [Q.F16, Q.BF16, Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1], ids=lambda q: q.name)
def test_quantized_weights_are_gguf_dequantized(tmp_path, qtype):
    model = load_model(write_gguf(tmp_path / "m.gguf", "qwen2", qtype))
    original = load_model(TINY / "qwen2").weights["layers.0.mlp.up_proj.weight"]
    expected = dequantize(quantize(original, qtype), qtype) if qtype != Q.F16 else original.astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(model.weights["layers.0.mlp.up_proj.weight"], expected)
    ids = np.array(model.tokenizer.encode(TEXT).ids)
    assert all(np.isfinite(t.rows()[2]).all() for t in model.trace(ids))


@pytest.mark.parametrize("qtype", [Q.Q2_K, Q.Q3_K, Q.Q4_K, Q.Q5_K, Q.Q6_K], ids=lambda q: q.name)
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # random bytes make some NaN scales
def test_k_quants_are_read(tmp_path, qtype):
    """Any bytes are a K-quant tensor: ours must equal gguf's de-quantization of the same bytes
    (the real Gemma file runs Q4_K and Q6_K through the forward pass)."""
    block, size = GGML_QUANT_SIZES[qtype]
    rows, cols = 96, 256  # up_proj is (96, 64): give it 256 columns' worth of blocks in a fresh tensor
    raw = np.random.default_rng(0).integers(0, 256, (rows, cols // block * size), dtype=np.uint8)
    path = write_gguf(tmp_path / "m.gguf", "qwen2", raw={"blk.0.ffn_up.weight": (raw, qtype)})
    file = GGUFFile(path)
    info = file.tensors["blk.0.ffn_up.weight"]
    assert info.shape == (rows, cols) and info.type_name == qtype.name
    np.testing.assert_array_equal(file.dequantize(info), dequantize(raw, qtype))


def test_a_folder_of_one_gguf_and_attn_model(tmp_path):
    write_gguf(tmp_path / "model.gguf", "llama")
    assert load_model(tmp_path).spec.model_type == "llama"
    p = attn("inspect", TEXT, "-q", "cat", "--json", env={"ATTN_MODEL": str(tmp_path / "model.gguf")})
    assert p.returncode == 0 and json.loads(p.stdout)["model"]["name"] == "model.gguf"
    write_gguf(tmp_path / "other.gguf", "llama")
    p = attn("inspect", TEXT, "-q", "cat", "-m", str(tmp_path))
    assert p.returncode == ExitStatus.MODEL and "holds 2 .gguf files" in p.stderr


def test_tokenizer_is_cached_and_a_broken_cache_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTN_CACHE", str(tmp_path / "cache"))
    path = write_gguf(tmp_path / "m.gguf", "qwen2")
    first = load_model(path).tokenizer.encode(TEXT).ids
    [cached] = (tmp_path / "cache" / "tokenizers").glob("*.json")
    assert load_model(path).tokenizer.encode(TEXT).ids == first
    cached.write_text("{not json")
    assert load_model(path).tokenizer.encode(TEXT).ids == first
    assert json.loads(cached.read_text())["model"]["type"] == "BPE"


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-1000])


def _header_only(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:200])


def _bad_magic(path: Path) -> None:
    path.write_bytes(b"GGML" + path.read_bytes()[4:])


@pytest.mark.parametrize(
    "damage, message",
    [
        (_truncate, "is truncated: tensor"),
        (_header_only, "ends inside its header"),
        (_bad_magic, "is not a GGUF file"),
        (lambda p: p.write_bytes(b""), "is not a GGUF file"),
    ],
)
def test_broken_gguf_files(tmp_path, damage, message):
    path = write_gguf(tmp_path / "m.gguf", "llama")
    damage(path)
    for args in (["inspect", TEXT, "-q", "cat", "-m", str(path)], ["inspect", TEXT, "-q", "cat", "-m", str(path), "--json"]):
        p = attn(*args)
        assert p.returncode == ExitStatus.MODEL and p.stdout == "", p.stderr
        assert message in p.stderr and "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_unknown_architecture_and_unsupported_quantization(tmp_path):
    p = attn("inspect", TEXT, "-q", "cat", "-m", str(write_gguf(tmp_path / "a.gguf", "llama", arch="mamba")))
    assert p.returncode == ExitStatus.MODEL and "architecture 'mamba', which attn does not support" in p.stderr
    raw = np.zeros((96, 2 * GGML_QUANT_SIZES[Q.Q8_1][1]), dtype=np.uint8)
    path = write_gguf(tmp_path / "q.gguf", "qwen2", raw={"blk.0.ffn_up.weight": (raw, Q.Q8_1)})
    p = attn("inspect", TEXT, "-q", "cat", "-m", str(path))
    assert p.returncode == ExitStatus.MODEL and "Q8_1" in p.stderr and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_garbled_metadata_is_a_model_error(tmp_path):
    """A count stored as a string is named, not a traceback."""
    path = write_gguf(tmp_path / "m.gguf", "qwen2")
    data = path.read_bytes()
    key = b"qwen2.block_count"
    at = data.index(key) + len(key)
    assert data[at : at + 4] == (4).to_bytes(4, "little")  # uint32 type
    path.write_bytes(data[:at] + (5).to_bytes(4, "little") + data[at + 4 :])  # now read as int32: fine
    assert load_model(path).spec.layers == 2
    path.write_bytes(data[:at] + (6).to_bytes(4, "little") + data[at + 4 :])  # float32: 2.8e-45 layers
    p = attn("inspect", TEXT, "-q", "cat", "-m", str(path))
    assert p.returncode == ExitStatus.MODEL and "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1


@covers("models PATHS")
def test_models_describes_gguf_files_given_as_paths(tmp_path, schema):
    good = write_gguf(tmp_path / "tiny.gguf", "qwen2", Q.Q8_0)
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + (3).to_bytes(4, "little") + b"\0" * 4)  # version 3, then nothing whole
    p = attn("models", str(good), str(broken), "--json", env={"HF_HOME": str(tmp_path)})
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    validate(doc, schema, "models")
    entries = {m["name"]: m for m in doc["models"] if m["source"] == "path"}
    assert entries[str(good)] | {"problem": None} == entries[str(good)]
    assert (entries[str(good)]["architecture"], entries[str(good)]["layers"], entries[str(good)]["heads"]) == ("qwen2", 2, 4)
    assert entries[str(good)]["quantization"] == "Q8_0" and entries[str(good)]["size_bytes"] == good.stat().st_size
    assert entries[str(broken)]["usable"] is False and "ends inside its header" in entries[str(broken)]["problem"]
    screen = attn("models", str(good), env={"HF_HOME": str(tmp_path), "COLUMNS": "200"}).stdout
    assert "qwen2 · 2 layers × 4 heads · Q8_0" in screen


def test_a_tensor_is_dequantized_in_blocks_into_its_result(tmp_path, monkeypatch):
    """The same numbers as gguf's de-quantizer on the whole tensor, at a peak of the result plus
    one block's temporaries (not gguf's ~2x the result: Gemma 3's 640 MiB table peaked at 1.9 GB)."""
    import tracemalloc

    from gguf import GGUFWriter

    from attn_cli.loading import gguf as module

    rng = np.random.default_rng(0)
    table = rng.normal(size=(4096, 512)).astype(np.float32)
    path = tmp_path / "t.gguf"
    w = GGUFWriter(str(path), "llama")
    w.add_tensor("token_embd.weight", quantize(table, Q.Q8_0), raw_dtype=Q.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    file = module.GGUFFile(path)
    info = file.tensors["token_embd.weight"]
    whole = dequantize(np.ascontiguousarray(file._bytes[info.offset : info.offset + info.nbytes].reshape(4096, -1)), Q.Q8_0)
    monkeypatch.setattr(module, "DEQUANTIZE_BLOCK_BYTES", 64 << 10)
    tracemalloc.start()
    ours = file.dequantize(info)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    np.testing.assert_array_equal(ours, whole)
    assert peak < ours.nbytes * 1.2, peak / ours.nbytes


def test_gemma2_gguf_gives_the_folder_numbers(tmp_path):
    """Gemma 2 from llama.cpp's layout: norms stored as 1 + w, the window and both soft-caps in the
    metadata, and Q·Kᵀ scaled by head_dim^-½ (llama.cpp's rule below 27B: GGUF has no
    query_pre_attn_scalar), so the folder it is checked against scales by head_dim too."""
    caps = {"attention.sliding_window": 4, "attn_logit_softcapping": 5.0, "final_logit_softcapping": 3.0}
    gguf_model = load_model(write_gguf(tmp_path / "gemma2.gguf", "gemma2", extra=caps))
    folder = tmp_path / "gemma2"
    folder.mkdir()
    for f in (TINY / "gemma2").iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | {"query_pre_attn_scalar": config["head_dim"]}))
    folder_model = load_model(folder)
    plain = lambda s: replace(s, eps=0.0, lm_head=None)  # noqa: E731
    assert plain(gguf_model.spec) == plain(folder_model.spec)
    assert (gguf_model.spec.windows, gguf_model.spec.attn_softcap, gguf_model.spec.final_softcap) == ((4, None), 5.0, 3.0)
    ids = np.load(TINY / "gemma2" / "ref_2.npz")["input_ids"]
    for a, b in zip(gguf_model.trace(ids), folder_model.trace(ids), strict=True):
        assert np.abs(a.rows()[2] - b.rows()[2]).max() <= 1e-5  # 1 + w - 1 is w to an ulp of 2


@pytest.mark.parametrize("source", ["olmo2", "phi3", "gpt_neox", "gpt_neox-sequential"])
def test_more_families_gguf_give_the_folder_numbers(tmp_path, source):
    """A family's tiny folder written as llama.cpp's converter writes it (its tensor names, its
    fused or stacked tensors, its own metadata) gives the folder's attention, float32 throughout."""
    folder = tmp_path / source
    folder.mkdir()
    for f in (TINY / source).iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    config = json.loads((folder / "config.json").read_text())
    if config["model_type"] == "gpt_neox":  # GGUF names no activation: attn takes Pythia's exact GELU
        (folder / "config.json").write_text(json.dumps(config | {"hidden_act": "gelu"}))
    gguf_model = load_model(write_gguf(tmp_path / f"{source}.gguf", folder))
    folder_model = load_model(folder)
    plain = lambda s: replace(s, eps=0.0, lm_head=None)  # noqa: E731
    assert plain(gguf_model.spec) == plain(folder_model.spec)
    assert gguf_model.spec.eps == np.float32(folder_model.spec.eps)
    ids = np.load(TINY / source / "ref_2.npz")["input_ids"]
    for a, b in zip(gguf_model.trace(ids), folder_model.trace(ids), strict=True):
        assert np.abs(a.rows()[2] - b.rows()[2]).max() <= 1e-6
        assert np.abs(a.q - b.q).max() <= 1e-6


def test_qwen3moe_gguf_gives_the_folder_numbers(tmp_path):
    """Qwen3-MoE as llama.cpp stores it: the experts' matrices stacked (ffn_gate_exps …), their
    count, top k and size in the metadata. llama.cpp's qwen3moe has experts in every layer and
    renormalises the top k's weights, so the folder is cut to the fixture's MoE layer 0 with
    norm_topk_prob on."""
    folder = tmp_path / "qwen3_moe"
    folder.mkdir()
    for f in (TINY / "qwen3_moe").iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | {"num_hidden_layers": 1, "mlp_only_layers": [], "norm_topk_prob": True}))
    gguf_model = load_model(write_gguf(tmp_path / "qwen3moe.gguf", folder))
    folder_model = load_model(folder)
    plain = lambda s: replace(s, eps=0.0, lm_head=None)  # noqa: E731
    assert plain(gguf_model.spec) == plain(folder_model.spec)
    assert gguf_model.spec.experts.renormalize and gguf_model.spec.experts.sparse == (True,)
    ids = np.load(TINY / "qwen3_moe" / "ref_2.npz")["input_ids"]
    for a, b in zip(gguf_model.trace(ids), folder_model.trace(ids), strict=True):
        assert np.abs(a.rows()[2] - b.rows()[2]).max() <= 1e-6
        np.testing.assert_array_equal(a.routing.experts, b.routing.experts)
        assert np.abs(a.hidden - b.hidden).max() <= 1e-5
