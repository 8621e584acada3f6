"""A PyTorch checkpoint in torch's legacy format (`torch.save` before torch 1.6: a
`pytorch_model.bin` that is not a zip) read without torch and without running its pickle, then
written as `model.safetensors`.

attn never unpickles a user's file (loading a pickle can run arbitrary code). This reader is used
only on the packaged Opus-MT checkpoint (packaged.py), whose archive's sha256 is pinned and checked
first, and even then it runs no code: its unpickler resolves exactly the three globals a state
dict names (OrderedDict, `torch._utils._rebuild_tensor_v2`, a storage type) to harmless stand-ins
defined here, and refuses any other; the tensors' bytes are read as raw arrays.

The legacy layout (torch/serialization.py `_legacy_save`): five pickles in a row, the magic
number, the protocol version (1001), the system's sizes, the state dict (each storage a
persistent id `('storage', type, key, location, numel)`), and the storages' keys; then, for each
key in that order, the storage as an int64 element count and its little-endian bytes.
"""

from __future__ import annotations

import io
import json
import pickle
import struct
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..records import frozen

MAGIC = 0x1950A86A20F9469CFC6C
STORAGE_DTYPES = {"FloatStorage": np.dtype("<f4"), "HalfStorage": np.dtype("<f2"), "DoubleStorage": np.dtype("<f8"), "LongStorage": np.dtype("<i8")}
SAFETENSORS_DTYPES = {"<f4": "F32", "<f2": "F16", "<f8": "F64", "<i8": "I64"}


@frozen
class StorageType:
    dtype: np.dtype


@frozen
class Storage:
    key: str
    dtype: np.dtype
    numel: int


@frozen
class TensorRef:
    """A tensor as the pickle describes it: a view (offset, size, stride, in elements) of a storage."""

    storage: Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None) -> TensorRef:
    return TensorRef(storage, int(offset), tuple(int(n) for n in size), tuple(int(n) for n in stride))


class _Unpickler(pickle.Unpickler):
    """Resolves only a state dict's globals, each to a stand-in that runs no code of the file's."""

    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in STORAGE_DTYPES:
            return StorageType(STORAGE_DTYPES[name])
        raise pickle.UnpicklingError(f"refused global {module}.{name}")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage" and isinstance(pid[1], StorageType)):
            raise pickle.UnpicklingError(f"refused persistent id {pid!r:.80}")
        _, kind, key, _location, numel, view = pid
        if view is not None or not isinstance(key, str) or not isinstance(numel, int):
            raise pickle.UnpicklingError("a storage view or a malformed storage id")
        return Storage(key, kind.dtype, numel)


def read_legacy(path: Path) -> dict[str, np.ndarray]:
    """The state dict of the legacy checkpoint at `path`: name -> a C-contiguous array. A tensor
    that is the same view of the same storage as an earlier one (tied embeddings: Marian's
    `model.shared`, `model.encoder.embed_tokens`, `model.decoder.embed_tokens`) is kept once,
    under the earlier name, as transformers' `save_pretrained` keeps it."""
    fix = "reinstall the model's packages (`--force-reinstall`)"
    try:
        with path.open("rb") as f:
            if _Unpickler(f).load() != MAGIC or _Unpickler(f).load() != 1001:
                raise ModelError(f"{path} is not a legacy PyTorch checkpoint", fix)
            sizes = _Unpickler(f).load()
            if not (isinstance(sizes, dict) and sizes.get("little_endian") is True):
                raise ModelError(f"{path} was saved big-endian or without its system's sizes", fix)
            state = _Unpickler(f).load()
            keys = _Unpickler(f).load()
            storages = {ref.storage.key: ref.storage for ref in state.values() if isinstance(ref, TensorRef)}
            if not isinstance(state, OrderedDict) or not all(isinstance(r, TensorRef) for r in state.values()) or sorted(keys) != sorted(storages):
                raise ModelError(f"{path}: its storages do not match its tensors", fix)
            data = {key: _storage(f, storages[key], path, fix) for key in keys}
            if f.read(1):
                raise ModelError(f"{path} has bytes after its last storage", fix)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise ModelError(f"cannot read {path} as a legacy PyTorch checkpoint: {exc}", fix) from None
    first = {}
    for name, ref in state.items():
        first.setdefault(ref, name)
    return {name: _view(data[ref.storage.key], ref, name, path, fix) for ref, name in first.items()}


def _storage(f: io.BufferedReader, storage: Storage, path: Path, fix: str) -> np.ndarray:
    (numel,) = struct.unpack("<q", f.read(8))
    raw = f.read(numel * storage.dtype.itemsize)
    if numel != storage.numel or len(raw) != numel * storage.dtype.itemsize:
        raise ModelError(f"{path} is truncated or corrupt at storage {storage.key}", fix)
    return np.frombuffer(raw, dtype=storage.dtype)


def _view(flat: np.ndarray, ref: TensorRef, name: str, path: Path, fix: str) -> np.ndarray:
    """The tensor `ref` of its storage `flat` (numel,), bounds checked, copied C-contiguous."""
    if len(ref.size) != len(ref.stride) or any(n < 0 for n in ref.size + ref.stride) or ref.offset < 0:
        raise ModelError(f"{path}: tensor {name!r} has a malformed shape or stride", fix)
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride)) if all(ref.size) else ref.offset - 1
    if last >= len(flat):
        raise ModelError(f"{path}: tensor {name!r} reaches past its storage", fix)
    item = flat.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(flat[ref.offset :], ref.size, tuple(s * item for s in ref.stride), writeable=False)
    return np.ascontiguousarray(view)


def write_safetensors(tensors: dict[str, np.ndarray], path: Path) -> None:
    """`tensors` as a .safetensors file: the header's length (u64 LE), the JSON header padded with
    spaces to a multiple of 8 bytes, then each tensor's bytes in the header's order."""
    header, begin = {}, 0
    for name, array in tensors.items():
        header[name] = {"dtype": SAFETENSORS_DTYPES[array.dtype.str], "shape": list(array.shape), "data_offsets": [begin, begin + array.nbytes]}
        begin += array.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with path.open("wb") as out:
        out.write(struct.pack("<Q", len(text)) + text)
        for array in tensors.values():
            out.write(array.tobytes())
