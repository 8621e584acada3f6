"""Reading tensors from a `.safetensors` file through a memory map.

A safetensors file is an 8-byte little-endian header length, a JSON header that gives each
tensor's dtype, shape and byte range, then the raw bytes. Mapping the file instead of reading it
means a forward pass touches only what it uses: for the embedding table (the largest tensor),
just the rows of the sentence's tokens. That keeps start-up fast and memory low.
"""

from __future__ import annotations

import json
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
        if not isinstance(header, dict):
            raise ModelError(f"{path} has a corrupt safetensors header", fix)
        header.pop("__metadata__", None)
        data_start = 8 + header_len
        self._entries: dict[str, tuple[str, tuple[int, ...], int, int]] = {}
        for name, entry in header.items():
            try:
                dtype, shape = entry["dtype"], tuple(int(n) for n in entry["shape"])
                begin, end = (int(n) for n in entry["data_offsets"])
            except (KeyError, TypeError, ValueError):
                raise ModelError(f"{path} has a corrupt entry for tensor {name!r}", fix) from None
            if data_start + end > size:
                raise ModelError(
                    f"{path} is truncated: tensor {name!r} ends at byte {data_start + end:,} "
                    f"but the file has {size:,} bytes",
                    fix,
                )
            self._entries[name] = (dtype, shape, data_start + begin, end - begin)
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
        np_dtype = _DTYPES[dtype]
        if np_dtype.itemsize * int(np.prod(shape)) != nbytes:
            raise ModelError(f"tensor {name!r} in {self.path} has a size that does not match its shape")
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
        return _to_float32(np.asarray(array[indices]), dtype)


def open_weights(folder: Path, prefixes: tuple[str, ...]) -> SafetensorsWeights:
    """Weights of the model in `folder` (`model.safetensors`, or a sharded index)."""
    single = folder / "model.safetensors"
    index = folder / "model.safetensors.index.json"
    if single.is_file():
        return SafetensorsWeights([SafetensorsFile(single)], prefixes)
    if index.is_file():
        try:
            shard_names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (OSError, ValueError, KeyError, AttributeError) as exc:
            raise ModelError(f"cannot read {index}: {exc}", "re-export the sharded checkpoint") from None
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
