"""Reading tensors from a `.safetensors` file through a memory map.

A safetensors file is an 8-byte little-endian header length, a JSON header that gives each
tensor's dtype, shape and byte range, then the raw bytes. Mapping the file instead of reading it
means a forward pass touches only what it uses: for the embedding table (the largest tensor),
just the rows of the sentence's tokens. That keeps start-up fast and memory low.
"""

from __future__ import annotations

import json
import math
import mmap
import struct
from pathlib import Path

import numpy as np

from ..errors import ModelError

_DTYPES = {
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),  # raw bits, widened to float32 in `_to_float32`
    "F64": np.dtype("<f8"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
}
_MAX_HEADER_BYTES = 100 * 1024 * 1024
# Bytes per element of every safetensors dtype, read or not: a header is checked whole at load.
_ITEMSIZE = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_entries(path: Path, header: dict, data_size: int, fix: str) -> dict[str, tuple[str, tuple[int, ...], int, int]]:
    """Each tensor's (dtype, shape, begin, size in bytes), once the header is known to describe
    the file: known dtypes, shapes of non-negative integers, byte ranges inside the data section
    (never the header) that do not overlap, each exactly shape × dtype bytes long."""
    entries = {}
    for name, entry in header.items():
        if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= entry.keys():
            raise ModelError(f"{path} has a corrupt entry for tensor {name!r}: it needs dtype, shape and data_offsets", fix)
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if not isinstance(dtype, str) or dtype not in _ITEMSIZE:
            raise ModelError(f"{path}: tensor {name!r} has an unknown dtype {dtype!r}", fix)
        if not isinstance(shape, list) or not all(_is_count(n) for n in shape):
            raise ModelError(f"{path}: tensor {name!r} has the shape {shape!r}, not a list of sizes", fix)
        if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_count(n) for n in offsets) or offsets[0] > offsets[1]:
            raise ModelError(f"{path}: tensor {name!r} has the byte range {offsets!r}, not [begin, end] with 0 ≤ begin ≤ end", fix)
        begin, end = offsets
        if end > data_size:
            raise ModelError(
                f"{path} is truncated: tensor {name!r} ends at byte {end:,} of the data, "
                f"but the file holds {max(data_size, 0):,} bytes of data",
                fix,
            )
        expected = _ITEMSIZE[dtype] * math.prod(shape)
        if end - begin != expected:
            raise ModelError(
                f"{path}: tensor {name!r} of shape {tuple(shape)} in {dtype} needs {expected:,} bytes, but its range holds {end - begin:,}",
                fix,
            )
        entries[name] = (dtype, tuple(shape), begin, end - begin)
    spans = sorted((begin, begin + size, name) for name, (_, _, begin, size) in entries.items() if size)
    for (_, end, first), (begin, _, second) in zip(spans, spans[1:]):
        if begin < end:
            raise ModelError(f"{path}: the bytes of tensors {first!r} and {second!r} overlap", fix)
    return entries


def _to_float32(array: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "BF16":
        # bfloat16 is the top half of a float32: shift the bits back into place.
        return (array.astype(np.uint32) << 16).view(np.float32)
    return array.astype(np.float32, copy=False)


class SafetensorsFile:
    """One memory-mapped `.safetensors` file: names -> (dtype, shape, byte range)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        fix = f"re-download or re-export the model so that {path.name} is complete"
        try:
            size = path.stat().st_size
            with path.open("rb") as f:
                prefix = f.read(8)
                if len(prefix) < 8:
                    raise ModelError(f"{path} is too short to be a safetensors file", fix)
                (header_len,) = struct.unpack("<Q", prefix)
                if header_len > min(_MAX_HEADER_BYTES, size - 8):
                    raise ModelError(f"{path} has a corrupt safetensors header", fix)
                header = json.loads(f.read(header_len))
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            if isinstance(exc, ModelError):
                raise
            raise ModelError(f"cannot read {path}: {exc}", fix) from None
        except RecursionError:
            raise ModelError(f"{path} has a corrupt safetensors header: JSON nested too deeply", fix) from None
        if not isinstance(header, dict):
            raise ModelError(f"{path} has a corrupt safetensors header", fix)
        header.pop("__metadata__", None)
        data_start = 8 + header_len
        self._entries = {
            name: (dtype, shape, data_start + begin, nbytes)
            for name, (dtype, shape, begin, nbytes) in _check_entries(path, header, size - data_start, fix).items()
        }
        self._mmap = None
        if size:
            with path.open("rb") as f:
                self._mmap = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self._map = None if self._mmap is None else np.frombuffer(self._mmap, dtype=np.uint8)

    def release(self) -> None:
        """Drop the file's pages from this process's memory: they are re-read (from the page
        cache) if used again. Called between layers, so only one layer's weights stay resident."""
        if self._mmap is not None and hasattr(mmap, "MADV_DONTNEED"):
            self._mmap.madvise(mmap.MADV_DONTNEED)

    def names(self) -> list[str]:
        return list(self._entries)

    def raw(self, name: str) -> tuple[np.ndarray, str]:
        """The stored array (a view of the map, not a copy) and its safetensors dtype name."""
        dtype, shape, offset, nbytes = self._entries[name]
        if dtype not in _DTYPES:
            raise ModelError(
                f"tensor {name!r} in {self.path} has dtype {dtype}, which attn cannot read",
                "convert the checkpoint to float32, float16 or bfloat16",
            )
        np_dtype = _DTYPES[dtype]  # sizes were checked against shapes at load (_check_entries)
        return self._map[offset : offset + nbytes].view(np_dtype).reshape(shape), dtype


class SafetensorsWeights:
    """A model's tensors by their name without the checkpoint's prefix (`bert.`, ...).

    `weights["encoder.layer.0.attention.self.query.weight"]` gives a float32 array.
    """

    def __init__(self, files: list[SafetensorsFile], prefixes: tuple[str, ...] = ()) -> None:
        self._where: dict[str, tuple[SafetensorsFile, str]] = {}
        for file in files:
            for stored in file.names():
                name = stored
                for prefix in prefixes:
                    if stored.startswith(prefix):
                        name = stored[len(prefix) :]
                        break
                self._where[name] = (file, stored)

    def __contains__(self, name: str) -> bool:
        return name in self._where

    def release(self) -> None:
        """Let go of the pages read so far (see `SafetensorsFile.release`)."""
        for file in {file for file, _ in self._where.values()}:
            file.release()

    def _raw(self, name: str) -> tuple[np.ndarray, str]:
        try:
            file, stored = self._where[name]
        except KeyError:
            raise ModelError(
                f"the checkpoint has no tensor named {name!r}",
                "check that config.json's model_type matches the weights",
            ) from None
        return file.raw(stored)

    def __getitem__(self, name: str) -> np.ndarray:
        array, dtype = self._raw(name)
        return _to_float32(array, dtype)

    def rows(self, name: str, indices: np.ndarray) -> np.ndarray:
        """`weights[name][indices]`, reading only those rows from disk: (len(indices), ...)."""
        array, dtype = self._raw(name)
        indices = np.asarray(indices)
        if indices.size and (int(indices.max()) >= len(array) or int(indices.min()) < -len(array)):
            what = "position" if "position" in name or name.startswith("wpe") else "token id"
            fix = (
                "use the tokenizer that came with the weights (its vocabulary is larger than the embedding table)"
                if what == "token id"
                else "correct max_position_embeddings in config.json: the position table has fewer rows"
            )
            raise ModelError(f"{what} {int(indices.max())} is beyond the {len(array):,} rows of {name}", fix)
        return _to_float32(np.asarray(array[indices]), dtype)

    def shape(self, name: str) -> tuple[int, ...]:
        return self._raw(name)[0].shape

    def row_range(self, name: str, start: int, stop: int) -> np.ndarray:
        """`weights[name][start:stop]`: a bfloat16 head converted a block at a time."""
        array, dtype = self._raw(name)
        return _to_float32(array[start:stop], dtype)


def _shards(index: Path) -> list[str]:
    """The shard file names an index's weight_map points at: {"weight_map": {tensor: file}}."""
    fix = "re-export the sharded checkpoint (model.safetensors.index.json maps each tensor to a shard file)"
    try:
        document = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {index}: {exc}", fix) from None
    except RecursionError:
        raise ModelError(f"cannot read {index}: its JSON is nested too deeply", fix) from None
    weight_map = document.get("weight_map") if isinstance(document, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise ModelError(f"{index} has no weight_map object of tensor names and shard files", fix)
    bad = [n for n in weight_map.values() if not isinstance(n, str) or not n or Path(n).name != n]
    if bad:  # a list, not next(…, None): the bad name may be None itself
        raise ModelError(f"{index}: the weight_map names the shard {bad[0]!r}, not a file name in the folder", fix)
    return sorted(set(weight_map.values()))


def open_weights(folder: Path, prefixes: tuple[str, ...]) -> SafetensorsWeights:
    """Weights of the model in `folder` (`model.safetensors`, or a sharded index)."""
    single = folder / "model.safetensors"
    index = folder / "model.safetensors.index.json"
    if single.is_file():
        return SafetensorsWeights([SafetensorsFile(single)], prefixes)
    if index.is_file():
        shard_names = _shards(index)
        missing = [n for n in shard_names if not (folder / n).is_file()]
        if missing:
            raise ModelError(f"{folder} lacks shard {missing[0]} named in {index.name}", "download every shard")
        return SafetensorsWeights([SafetensorsFile(folder / n) for n in shard_names], prefixes)
    pickles = sorted(p.name for p in folder.glob("*.bin")) + sorted(p.name for p in folder.glob("*.pt"))
    if pickles:
        raise ModelError(
            f"{folder} has only a pickle checkpoint ({pickles[0]}); attn never unpickles "
            "(loading a pickle can run arbitrary code)",
            "convert it to model.safetensors, e.g. with transformers: "
            "AutoModel.from_pretrained(path).save_pretrained(path, safe_serialization=True)",
        )
    raise ModelError(f"{folder} has no model.safetensors", "point --model at a folder with model.safetensors")
