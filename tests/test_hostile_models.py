"""Corrupted copies of the tiny models: configs of the wrong type or range, safetensors headers
that lie about their bytes, shard indexes that are not indexes, weights that disagree with the
config or hold NaN, paths that cannot be opened. Each is a ModelError (exit 4) whose message
names what is wrong and whose fix is not empty, never a crash."""

from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from helpers import write_safetensors
from typer.testing import CliRunner

from attn_cli.cli import ExitStatus, app
from attn_cli.errors import ModelError
from attn_cli.loading.model import load_model
from attn_cli.loading.weights import SafetensorsFile

TINY = Path(__file__).parent / "fixtures" / "tiny"
SENTENCE = "The cat sat on the mat."


def copy_of(name: str, tmp_path: Path) -> Path:
    folder = tmp_path / name
    shutil.copytree(TINY / name, folder, ignore=shutil.ignore_patterns("ref_*.npz"))
    return folder


def edit_config(folder: Path, **changes) -> Path:
    config = json.loads((folder / "config.json").read_text())
    for key, value in changes.items():
        if value is ...:
            config.pop(key, None)
        else:
            config[key] = value
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def refused(folder: Path, *needles: str) -> ModelError:
    """load_model(folder) and a run on it refuse with a ModelError whose message holds `needles`."""
    with pytest.raises(ModelError) as caught:
        list(load_model(folder).trace(np.array([1, 2, 3])))
        from attn_cli import inspect

        inspect(load_model(folder), SENTENCE, query="cat")
    for needle in needles:
        assert needle in caught.value.message
    assert caught.value.fix
    return caught.value


# --- config.json ---------------------------------------------------------------------------

@pytest.mark.parametrize("value", [0, -4, "4", 4.0, True, None, [4]])
def test_a_head_count_that_is_not_a_positive_integer_is_named_with_its_value(tmp_path, value):
    folder = edit_config(copy_of("llama", tmp_path), num_attention_heads=value)
    shown = "has no num_attention_heads" if value is None else f"num_attention_heads is {json.dumps(value)}, expected an integer"
    refused(folder, shown)


@pytest.mark.parametrize("value", ["2", True, -1, 0, 1e13, 10**13])
def test_a_layer_count_out_of_type_or_range_is_refused_at_load(tmp_path, value):
    refused(edit_config(copy_of("bert", tmp_path), num_hidden_layers=value), "num_hidden_layers is")


def test_a_width_the_heads_do_not_split_is_refused(tmp_path):
    refused(edit_config(copy_of("bert", tmp_path), num_attention_heads=5), "width 64 does not split into 5 heads")


def test_key_value_heads_that_do_not_divide_the_heads_are_refused(tmp_path):
    refused(edit_config(copy_of("llama", tmp_path), num_key_value_heads=3), "3 key/value heads do not divide 4 attention heads")


@pytest.mark.parametrize("model_type, expected", [(["llama"], 'model_type is [\'llama\'], not a string'), (7, "not a string"), ("mamba", "is not supported")])
def test_a_model_type_that_is_not_a_supported_string(tmp_path, model_type, expected):
    refused(edit_config(copy_of("llama", tmp_path), model_type=model_type), expected)


@pytest.mark.parametrize("key, value", [("rms_norm_eps", "1e-5"), ("rms_norm_eps", -1), ("rope_theta", "abc"), ("hidden_act", ["silu"])])
def test_numbers_and_names_of_the_wrong_type(tmp_path, key, value):
    folder = copy_of("llama", tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config.pop("rope_parameters")
    config[key] = value
    (folder / "config.json").write_text(json.dumps(config))
    refused(folder, key)


@pytest.mark.parametrize("positions", [0, -5, 2])
def test_roberta_needs_positions_beyond_the_ones_it_reserves(tmp_path, positions):
    refused(edit_config(copy_of("roberta", tmp_path), max_position_embeddings=positions), "max_position_embeddings")


def test_llama3_rope_scaling_without_its_keys_names_what_is_missing(tmp_path):
    folder = edit_config(copy_of("llama", tmp_path), rope_parameters=..., rope_scaling={"rope_type": "llama3", "factor": 8.0})
    error = refused(folder, "rope_scaling", "low_freq_factor")
    assert "original_max_position_embeddings" in error.fix


def test_a_deeply_nested_config_is_unreadable_not_a_recursion_error(tmp_path):
    folder = copy_of("bert", tmp_path)
    (folder / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    refused(folder, "nested too deeply")


def test_the_cli_reports_a_bad_config_as_one_line_with_exit_4(tmp_path):
    folder = edit_config(copy_of("llama", tmp_path), num_attention_heads="4")
    result = CliRunner().invoke(app, ["inspect", SENTENCE, "-q", "cat", "-m", str(folder)])
    assert result.exit_code == ExitStatus.MODEL
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and 'num_attention_heads is "4"' in result.stderr


# --- safetensors headers -----------------------------------------------------------------------

def rewrite_header(path: Path, edit) -> None:
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + length])
    edit(header)
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + raw[8 + length :])


def _overlap(first: dict, second: dict) -> None:
    """Move `second`'s bytes to start where `first`'s do, keeping its length."""
    begin, end = second["data_offsets"]
    second["data_offsets"] = [first["data_offsets"][0], first["data_offsets"][0] + end - begin]


def first_two(header: dict) -> tuple[dict, dict]:
    entries = [v for k, v in header.items() if k != "__metadata__"]
    return entries[0], entries[1]


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda h: first_two(h)[0].update(data_offsets=[-8, first_two(h)[0]["data_offsets"][1]]), "not [begin, end]"),
        (lambda h: _overlap(*first_two(h)), "overlap"),
        (lambda h: first_two(h)[0].update(data_offsets=[0, 10**12]), "truncated"),
        (lambda h: first_two(h)[0].update(shape=[3, 3]), "needs 36 bytes"),
        (lambda h: first_two(h)[0].update(dtype="Q7"), "unknown dtype"),
        (lambda h: first_two(h)[0].update(shape=["a"]), "not a list of sizes"),
        (lambda h: first_two(h)[0].pop("dtype"), "needs dtype, shape and data_offsets"),
        (lambda h: first_two(h)[0].update(dtype=["F32"]), "unknown dtype ['F32']"),
        (lambda h: first_two(h)[0].update(dtype={"F32": 1}), "unknown dtype {'F32': 1}"),
        (lambda h: h.update({next(k for k in h if k != "__metadata__"): ["F32", [4], [0, 16]]}), "needs dtype, shape and data_offsets"),
    ],
    ids=["negative-offset", "overlap", "beyond-the-file", "size-not-shape", "dtype", "shape-strings", "no-dtype", "dtype-list", "dtype-object", "entry-list"],
)
def test_a_header_that_lies_about_its_bytes_is_refused_at_load(tmp_path, edit, expected):
    folder = copy_of("llama", tmp_path)
    rewrite_header(folder / "model.safetensors", edit)
    refused(folder, expected)


def tensors_of(path: Path) -> dict[str, np.ndarray]:
    file = SafetensorsFile(path)
    return {name: np.array(file.raw(name)[0]) for name in file.names()}


def test_weights_with_other_shapes_than_the_config_says_are_refused(tmp_path):
    # The q projection makes 64 numbers: 4 heads of 16, not of 32. split_heads would not notice.
    folder = edit_config(copy_of("llama", tmp_path), head_dim=32)
    refused(folder, "do not fit its config.json")


def test_token_ids_beyond_the_embedding_table_are_refused(tmp_path):
    folder = copy_of("llama", tmp_path)
    tensors = tensors_of(folder / "model.safetensors")
    tensors["embed_tokens.weight"] = tensors["embed_tokens.weight"][:2]
    write_safetensors(folder / "model.safetensors", tensors)
    refused(folder, "token id", "beyond the 2 rows of embed_tokens.weight")


def test_positions_beyond_the_position_table_are_refused(tmp_path):
    folder = copy_of("gpt2", tmp_path)
    tensors = tensors_of(folder / "model.safetensors")
    tensors["wpe.weight"] = tensors["wpe.weight"][:2]
    write_safetensors(folder / "model.safetensors", tensors)
    error = refused(folder, "position", "is beyond the 2 rows of wpe.weight")
    assert "max_position_embeddings" in error.fix


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_weights_are_reported_never_shown_as_nan(tmp_path, bad):
    folder = copy_of("llama", tmp_path)
    tensors = tensors_of(folder / "model.safetensors")
    tensors["layers.1.self_attn.q_proj.weight"][0, 0] = bad
    write_safetensors(folder / "model.safetensors", tensors)
    result = CliRunner().invoke(app, ["inspect", SENTENCE, "-q", "cat", "-m", str(folder), "--json"])
    assert result.exit_code == ExitStatus.MODEL
    assert result.stdout == ""
    assert "NaN or infinite" in json.loads(result.stderr)["error"]["message"]


# --- shard indexes, paths ------------------------------------------------------------------------

BAD_INDEXES = [
    [], None, {"weight_map": None}, {"weight_map": {"wte.weight": 3}}, {"weight_map": {"wte.weight": "../x"}}, {"weight_map": {}},
    {"weight_map": {"wte.weight": ["model-00001-of-00002.safetensors"]}}, {"weight_map": {"wte.weight": None}},
    {"weight_map": {"wte.weight": {"file": "model-00001-of-00002.safetensors"}}},
]


@pytest.mark.parametrize("index", BAD_INDEXES)
def test_a_malformed_shard_index_is_refused(tmp_path, index):
    folder = copy_of("gpt2-sharded", tmp_path)
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    refused(folder, "model.safetensors.index.json")


@pytest.mark.parametrize("broken", ["index", "header"])
def test_json_fields_of_the_wrong_type_are_a_model_error_on_the_command_line(tmp_path, broken):
    folder = copy_of("gpt2-sharded", tmp_path)
    if broken == "index":
        index = json.loads((folder / "model.safetensors.index.json").read_text())
        index["weight_map"] = {name: [shard] for name, shard in index["weight_map"].items()}
        (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    else:
        shard = sorted(folder.glob("*.safetensors"))[0]
        rewrite_header(shard, lambda h: first_two(h)[0].update(dtype=["F32"]))
    result = CliRunner().invoke(app, ["inspect", SENTENCE, "-q", "cat", "-m", str(folder)])
    assert result.exit_code == ExitStatus.MODEL, result.output
    assert result.stderr.count("\n") == 1 and "unexpected" not in result.stderr


@pytest.mark.parametrize("model", ["~nosuchuser-attn/x", "a" * 300, "/" + "b" * 5000])
def test_model_paths_that_cannot_be_opened(model):
    result = CliRunner().invoke(app, ["inspect", SENTENCE, "-q", "cat", "-m", model])
    assert result.exit_code == ExitStatus.MODEL, result.output
    assert result.stderr.count("\n") == 1 and " — " in result.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any folder")
def test_an_unreadable_model_folder(tmp_path):
    folder = copy_of("bert", tmp_path)
    folder.chmod(0)
    try:
        result = CliRunner().invoke(app, ["inspect", SENTENCE, "-q", "cat", "-m", str(folder)])
    finally:
        folder.chmod(0o755)
    assert result.exit_code == ExitStatus.MODEL


def test_models_lists_a_broken_model_as_unusable(tmp_path, monkeypatch):
    folder = edit_config(copy_of("llama", tmp_path), num_key_value_heads=3)
    monkeypatch.setenv("ATTN_MODEL", str(folder))
    result = CliRunner().invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    entry = next(m for m in json.loads(result.stdout)["models"] if m["source"] == "ATTN_MODEL")
    assert entry["usable"] is False and "do not divide" in entry["problem"]


@pytest.mark.parametrize("stamp", ["[" * 100_000, '{"parts": 3}', "\udcff"])
def test_an_older_attns_file_and_stamp_are_neither_read_nor_touched(tmp_path, monkeypatch, stamp):
    # Older attn versions (other venvs may still run one) kept models/FILENAME beside a stamp of the parts' paths.
    from attn_cli.loading.packaged import Packaged, joined

    monkeypatch.setenv("ATTN_CACHE", str(tmp_path / "cache"))
    parts = [tmp_path / "a", tmp_path / "b"]
    parts[0].write_bytes(b"GGUF")
    parts[1].write_bytes(b"rest")
    model = Packaged("x", "X", "x.gguf", (("p", "a"), ("p", "b")), "pip install x")
    target = tmp_path / "cache" / "models" / "x.gguf"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"stale")
    target.with_name("x.gguf.stamp.json").write_text(stamp, errors="surrogateescape")
    made = joined(model, parts)
    assert made.read_bytes() == b"GGUFrest" and made.parent.parent == target.parent and made.parent.name.startswith("x-")
    assert target.read_bytes() == b"stale"
