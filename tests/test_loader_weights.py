"""Model folders: what loads (prefixes, dtypes, shards, $ATTN_MODEL), and what is refused and how."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import make_tiny_bert, tiny_bert_tensors, write_safetensors

import attn_cli
from attn_cli.compute.inspect import inspect
from attn_cli.errors import ModelError
from attn_cli.loading import model as model_module
from attn_cli.loading.model import BUNDLED_NAME, bundled_model_path, load_model
from attn_cli.loading.packaged import PACKAGED
from attn_cli.loading.weights import SafetensorsFile, open_weights


def test_bundled_model_is_the_default(model, monkeypatch):
    monkeypatch.delenv("ATTN_MODEL", raising=False)
    assert model.name == BUNDLED_NAME and model.path == bundled_model_path()
    assert (model.spec.layers, model.spec.heads, model.spec.head_dim, model.spec.max_positions) == (6, 12, 32, 512)


def test_attn_model_environment_variable(tmp_path, monkeypatch):
    folder = make_tiny_bert(tmp_path / "tiny")
    monkeypatch.setenv("ATTN_MODEL", str(folder))
    assert load_model().spec.heads == 4
    assert load_model(str(bundled_model_path())).spec.heads == 12  # --model wins


# The bundled files are the upstream sentence-transformers/all-MiniLM-L6-v2 (Hugging Face's sha256s,
# the files the reference fixtures were made from), shipped with their Apache-2.0 license.
BUNDLED_SHA256 = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
}


@pytest.mark.parametrize("name", sorted(BUNDLED_SHA256))
def test_the_bundled_files_are_upstreams(name):
    assert hashlib.sha256((bundled_model_path() / name).read_bytes()).hexdigest() == BUNDLED_SHA256[name]


def test_the_bundled_model_ships_inside_attn_with_its_license():
    folder = bundled_model_path()
    assert folder.parent == Path(attn_cli.__file__).resolve().parent / "bundled"
    assert "Apache License" in (folder / "LICENSE").read_text() and "license: apache-2.0" in (folder / "README.md").read_text()


def test_a_missing_bundled_model_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(model_module, "BUNDLED_DIR", tmp_path)
    with pytest.raises(ModelError, match="bundled model's files are missing") as caught:
        bundled_model_path()
    assert "reinstall attn-cli" in caught.value.fix


def test_bert_prefix_and_no_prefix_give_the_same_numbers(tmp_path):
    plain = inspect(load_model(make_tiny_bert(tmp_path / "plain")), "The cat sat.", "cat", layer="all")
    prefixed = inspect(load_model(make_tiny_bert(tmp_path / "prefixed", prefix="bert.")), "The cat sat.", "cat", layer="all")
    for a, b in zip(plain.layers, prefixed.layers):
        np.testing.assert_array_equal(a.head(1).weights, b.head(1).weights)


def test_bfloat16_and_float16_weights_widen_to_float32(tmp_path):
    x = np.array([[1.0, -2.5, 3.140625], [0.1, 1e-3, 65504]], np.float32)
    write_safetensors(tmp_path / "bf.safetensors", {"x": x}, bf16=True)
    write_safetensors(tmp_path / "f16.safetensors", {"x": x.astype(np.float16)})
    bf, f16 = (SafetensorsFile(tmp_path / n).raw("x") for n in ("bf.safetensors", "f16.safetensors"))
    from attn_cli.loading.weights import _to_float32

    got_bf = _to_float32(*bf)
    assert got_bf.dtype == np.float32
    np.testing.assert_array_equal(got_bf[0], [1.0, -2.5, 3.140625])  # exactly representable in bf16
    np.testing.assert_allclose(got_bf, x, rtol=2**-7)
    np.testing.assert_array_equal(_to_float32(*f16), x.astype(np.float16).astype(np.float32))


def test_embedding_rows_are_read_without_loading_the_table(tmp_path):
    tensors = {"table": np.arange(40, dtype=np.float32).reshape(10, 4)}
    write_safetensors(tmp_path / "model.safetensors", tensors)
    w = open_weights(tmp_path, ())
    np.testing.assert_array_equal(w.rows("table", np.array([3, 0, 3])), tensors["table"][[3, 0, 3]])


def test_sharded_checkpoint(tmp_path):
    tensors = tiny_bert_tensors()
    names = sorted(tensors)
    half = len(names) // 2
    folder = make_tiny_bert(tmp_path / "sharded")
    (folder / "model.safetensors").unlink()
    shards = {"model-00001-of-00002.safetensors": names[:half], "model-00002-of-00002.safetensors": names[half:]}
    for shard, keys in shards.items():
        write_safetensors(folder / shard, {k: tensors[k] for k in keys})
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {k: s for s, ks in shards.items() for k in ks}}))
    single = inspect(load_model(make_tiny_bert(tmp_path / "single")), "The cat sat.", "sat")
    sharded = inspect(load_model(folder), "The cat sat.", "sat")
    np.testing.assert_array_equal(single.layers[0].head(0).weights, sharded.layers[0].head(0).weights)


@pytest.fixture
def tiny(tmp_path):
    return make_tiny_bert(tmp_path / "m")


def test_missing_folder():
    with pytest.raises(ModelError, match="model folder '/no/such/model' does not exist"):
        load_model("/no/such/model")


@pytest.mark.parametrize("typed, meant", [("smolm2", "smollm2"), ("SmolLM2", "smollm2"), ("Gemma3", "gemma3"), ("nomic-embd", "nomic-embed")])
def test_a_misspelled_packaged_name_is_answered_with_the_name_meant(typed, meant):
    """`--model smolm2` listed every kind of model there is; it now names the one meant."""
    with pytest.raises(ModelError) as info:
        load_model(typed)
    assert (info.value.message, info.value.fix) == (f"model folder {typed!r} does not exist", f"did you mean --model {meant}?")
    with pytest.raises(ModelError) as info:
        load_model("nowhere-near")
    assert f"a packaged model ({', '.join(PACKAGED)})" in info.value.fix


@pytest.mark.parametrize(
    "missing, message",
    [("config.json", "has no config.json"), ("tokenizer.json", "has no tokenizer.json"), ("model.safetensors", "has no model.safetensors")],
)
def test_missing_files(tiny, missing, message):
    (tiny / missing).unlink()
    with pytest.raises(ModelError, match=message):
        load_model(tiny)


def test_truncated_weights_say_so(tiny):
    path = tiny / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-1000])
    with pytest.raises(ModelError, match=r"is truncated: tensor .* ends at byte"):
        load_model(tiny)


@pytest.mark.parametrize("content", [b"", b"\x01\x02", b"\xff" * 8 + b"{}", (20).to_bytes(8, "little") + b"not json at all....."])
def test_corrupt_weights(tiny, content):
    (tiny / "model.safetensors").write_bytes(content)
    with pytest.raises(ModelError, match="too short|corrupt|cannot read"):
        load_model(tiny)


def test_pickle_checkpoints_are_refused_not_unpickled(tiny):
    (tiny / "model.safetensors").unlink()
    (tiny / "pytorch_model.bin").write_bytes(b"\x80\x04 this would be a pickle")
    with pytest.raises(ModelError, match="never unpickles") as e:
        load_model(tiny)
    assert "safetensors" in e.value.fix


def test_unsupported_architecture_lists_the_supported_ones(tiny):
    (tiny / "config.json").write_text(json.dumps({"model_type": "xlnet"}))
    with pytest.raises(ModelError, match=r"model_type 'xlnet' is not supported \(supported: bart, bert, distilbert"):
        load_model(tiny)


def test_garbled_config(tiny):
    (tiny / "config.json").write_text("{not json")
    with pytest.raises(ModelError, match="cannot read"):
        load_model(tiny)
    (tiny / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ModelError, match="config.json has no hidden_size"):
        load_model(tiny)


def test_missing_tensor_is_a_model_error(tiny):
    tensors = tiny_bert_tensors()
    del tensors["encoder.layer.1.attention.self.key.weight"]
    write_safetensors(tiny / "model.safetensors", tensors)
    with pytest.raises(ModelError, match="no tensor named 'encoder.layer.1.attention.self.key.weight'"):
        inspect(load_model(tiny), "The cat sat.", "cat")


def test_broken_tokenizer(tiny):
    (tiny / "tokenizer.json").write_text("{}")
    with pytest.raises(ModelError, match="cannot read .*tokenizer.json"):
        load_model(tiny)


def test_model_path_that_is_a_file(tiny):
    with pytest.raises(ModelError, match="is a file, not a folder"):
        load_model(tiny / "config.json")
