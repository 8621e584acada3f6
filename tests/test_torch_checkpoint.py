"""attn_cli/loading/torch_checkpoint.py: a legacy PyTorch checkpoint (torch.save before 1.6) read
without torch and without running its pickle's code, and written as safetensors. The files here
are written as torch's `_legacy_save` writes them, by a pickler that names torch's globals
through stand-in modules (torch is not installed where the tests run)."""

from __future__ import annotations

import pickle
import struct
import sys
import types
from collections import OrderedDict

import numpy as np
import pytest

from attn_cli.errors import ModelError
from attn_cli.loading.torch_checkpoint import MAGIC, read_legacy, write_safetensors
from attn_cli.loading.weights import open_weights


class FloatStorage:
    pass


def _rebuild_tensor_v2(*args):
    raise AssertionError("never called: the reader resolves this name to its own stand-in")


class Tensor:
    """What the pickler writes as torch writes a tensor: `_rebuild_tensor_v2(storage, offset, size, stride, False, {})`."""

    def __init__(self, key, offset, size, stride):
        self.storage, self.args = key, (offset, size, stride)

    def __reduce__(self):
        return _rebuild_tensor_v2, (("storage", self.storage), *self.args, False, OrderedDict())


@pytest.fixture
def fake_torch(monkeypatch):
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")
    FloatStorage.__module__, _rebuild_tensor_v2.__module__ = "torch", "torch._utils"
    torch.FloatStorage, utils._rebuild_tensor_v2 = FloatStorage, _rebuild_tensor_v2
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)


def legacy_file(path, state: dict, storages: dict[str, np.ndarray], extra: bytes = b"") -> None:
    """`state` (name -> Tensor) and its float32 storages, in torch's legacy layout."""

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, tuple) and obj[:1] == ("storage",):
                return ("storage", FloatStorage, obj[1], "cpu", storages[obj[1]].size, None)
            return None

    with path.open("wb") as f:
        for header in (MAGIC, 1001, {"protocol_version": 1001, "little_endian": True, "type_sizes": {"int": 4}}):
            pickle.dump(header, f, protocol=2)
        Pickler(f, protocol=2).dump(OrderedDict(state))
        pickle.dump(sorted(storages), f, protocol=2)
        for key in sorted(storages):
            f.write(struct.pack("<q", storages[key].size) + storages[key].astype("<f4").tobytes())
        f.write(extra)


def test_views_strides_and_tied_tensors_come_back_as_torch_saved_them(tmp_path, fake_torch):
    shared = np.arange(12, dtype=np.float32)
    bias = np.array([5.0, 6.0, 7.0], dtype=np.float32)
    state = {
        "shared.weight": Tensor("0", 0, (3, 4), (4, 1)),
        "encoder.embed_tokens.weight": Tensor("0", 0, (3, 4), (4, 1)),  # tied: the same view of the same storage
        "transposed": Tensor("0", 0, (4, 3), (1, 4)),
        "tail": Tensor("0", 8, (2, 2), (2, 1)),
        "bias": Tensor("1", 0, (3,), (1,)),
    }
    legacy_file(tmp_path / "pytorch_model.bin", state, {"0": shared, "1": bias})
    got = read_legacy(tmp_path / "pytorch_model.bin")
    assert list(got) == ["shared.weight", "transposed", "tail", "bias"]
    assert np.array_equal(got["shared.weight"], shared.reshape(3, 4))
    assert np.array_equal(got["transposed"], shared.reshape(3, 4).T) and got["transposed"].flags.c_contiguous
    assert np.array_equal(got["tail"], [[8, 9], [10, 11]]) and np.array_equal(got["bias"], bias)
    write_safetensors(got, tmp_path / "model.safetensors")
    weights = open_weights(tmp_path, ())
    assert all(np.array_equal(weights[name], array) for name, array in got.items())


def test_any_other_global_is_refused_and_never_called(tmp_path):
    """A pickle that would run `os.system` on load: refused by name, nothing runs."""
    ran = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            import os

            return os.system, (f"touch {ran}",)

    with (tmp_path / "evil.bin").open("wb") as f:
        for header in (MAGIC, 1001, {"little_endian": True}):
            pickle.dump(header, f, protocol=2)
        pickle.dump(OrderedDict(w=Evil()), f, protocol=2)
    with pytest.raises(ModelError, match="refused global (os|posix).system"):
        read_legacy(tmp_path / "evil.bin")
    assert not ran.exists()


def test_not_a_legacy_checkpoint(tmp_path):
    (tmp_path / "zip.bin").write_bytes(b"PK\x03\x04" + bytes(60))  # torch >= 1.6 saves a zip
    with pytest.raises(ModelError, match="legacy PyTorch checkpoint"):
        read_legacy(tmp_path / "zip.bin")


@pytest.mark.parametrize(
    ("case", "message"),
    [("truncated", "truncated or corrupt at storage 0"), ("trailing", "bytes after its last storage"), ("past", "reaches past its storage")],
)
def test_damaged_checkpoints_are_model_errors(tmp_path, fake_torch, case, message):
    storage = {"0": np.arange(6, dtype=np.float32)}
    state = {"w": Tensor("0", 4 if case == "past" else 0, (2, 3), (3, 1))}
    legacy_file(tmp_path / "m.bin", state, storage, extra=b"x" if case == "trailing" else b"")
    if case == "truncated":
        data = (tmp_path / "m.bin").read_bytes()
        (tmp_path / "m.bin").write_bytes(data[:-5])
    with pytest.raises(ModelError, match=message):
        read_legacy(tmp_path / "m.bin")
