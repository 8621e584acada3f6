"""Reading a GGUF file (llama.cpp, Ollama, LM Studio, `llm`): metadata, config and weights.

A GGUF file is a header (magic `GGUF`, version, tensor and key/value counts), key/value metadata
(the config, the tokenizer), a table of tensors (name, shape, ggml type, offset) and, aligned,
the tensors' bytes. attn reads the header itself (gguf-py's `GGUFReader` builds a Python object
per vocabulary entry: ~25 s for Gemma 3's 262,144 tokens) and memory-maps the data; ggml-org's
`gguf.quants.dequantize` (`quants.py`: the same bits, faster, for the common types) turns each
tensor into float32 when the forward pass first reads it, exactly as transformers' GGUF loader
does, so both start from the same numbers. The weights stay quantized in the file's pages; what
a run keeps de-quantized is `budget.BudgetedWeights`' choice.
"""

from __future__ import annotations

import hashlib
import mmap
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..models.architecture import GGUFLayout

MAGIC = b"GGUF"
VERSIONS = (2, 3)
_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_NUMPY = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 7: "<u1", 10: "<u8", 11: "<i8", 12: "<f8"}
_STRING, _ARRAY = 8, 9
DEQUANTIZE_BLOCK_BYTES = 8 << 20  # of the file's bytes per de-quantized block


class _Corrupt(Exception):
    """The header ends early or holds an impossible value (turned into a ModelError)."""


class _Cursor:
    """Reads little-endian GGUF values from a buffer, failing cleanly at its end."""

    def __init__(self, buffer, pos: int = 0) -> None:
        self.buffer, self.pos = buffer, pos

    def take(self, n: int):
        if n < 0 or self.pos + n > len(self.buffer):
            raise _Corrupt(f"ends inside its header (at byte {self.pos:,})")
        start, self.pos = self.pos, self.pos + n
        return self.buffer[start : self.pos]

    def scalar(self, kind: int):
        fmt = _SCALAR[kind]
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        return bytes(self.take(self.scalar(10))).decode("utf-8", errors="replace")

    def value(self, kind: int):
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            item, count = self.scalar(4), self.scalar(10)
            if item == _STRING:
                return [self.string() for _ in range(count)]
            if item not in _NUMPY:
                raise _Corrupt(f"has an array of unknown type {item}")
            dtype = np.dtype(_NUMPY[item])
            array = np.frombuffer(self.take(count * dtype.itemsize), dtype=dtype)
            return array.astype(bool) if item == 7 else array
        if kind not in _SCALAR:
            raise _Corrupt(f"has a value of unknown type {kind}")
        return self.scalar(kind)


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # numpy order, slowest axis first: (out, in) for a matrix
    ggml_type: int
    offset: int  # absolute byte offset in the file
    nbytes: int

    @property
    def type_name(self) -> str:
        from gguf import GGMLQuantizationType

        try:
            return GGMLQuantizationType(self.ggml_type).name
        except ValueError:
            return f"type {self.ggml_type}"


class GGUFFile:
    """One memory-mapped GGUF file: `metadata` (key -> value) and `tensors` (name -> TensorInfo)."""

    def __init__(self, path: Path) -> None:
        from gguf.constants import GGML_QUANT_SIZES

        self.path = path
        fix = f"re-download {path.name}: it should be a complete GGUF file"
        try:
            size = path.stat().st_size
            with path.open("rb") as f:
                self._mmap = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else None
        except OSError as exc:
            raise ModelError(f"cannot read {path}: {exc.strerror or exc}", fix) from None
        buffer = memoryview(self._mmap) if self._mmap is not None else memoryview(b"")
        if bytes(buffer[:4]) != MAGIC:
            raise ModelError(f"{path} is not a GGUF file (it does not start with the bytes 'GGUF')", "pass a .gguf model file, or a model folder")
        try:
            cursor = _Cursor(buffer, 4)
            version = cursor.scalar(4)
            if version not in VERSIONS:
                raise ModelError(f"{path} is GGUF version {version}; attn reads versions 2 and 3", "re-convert the model with a current llama.cpp")
            tensor_count, kv_count = cursor.scalar(10), cursor.scalar(10)
            self.metadata: dict = {}
            for _ in range(kv_count):
                key = cursor.string()
                self.metadata[key] = cursor.value(cursor.scalar(4))
            self.metadata_end = cursor.pos
            infos = []
            for _ in range(tensor_count):
                name = cursor.string()
                dims = [cursor.scalar(10) for _ in range(cursor.scalar(4))]
                infos.append((name, tuple(reversed(dims)), cursor.scalar(4), cursor.scalar(10)))
        except _Corrupt as exc:
            raise ModelError(f"{path} {exc}: the file is truncated or corrupt", fix) from None
        alignment = int(self.metadata.get("general.alignment", 32)) or 32
        data_start = -(-cursor.pos // alignment) * alignment
        self.tensors: dict[str, TensorInfo] = {}
        for name, shape, kind, offset in infos:
            elements = int(np.prod(shape))
            if kind in GGML_QUANT_SIZES:
                block, type_size = GGML_QUANT_SIZES[kind]
                nbytes = elements // block * type_size
            else:
                nbytes = 0  # an unknown type: refused when the tensor is read
            end = data_start + offset + nbytes
            if end > size:
                raise ModelError(f"{path} is truncated: tensor {name!r} ends at byte {end:,} but the file has {size:,} bytes", fix)
            self.tensors[name] = TensorInfo(name, shape, kind, data_start + offset, nbytes)
        self._bytes = np.frombuffer(self._mmap, dtype=np.uint8) if self._mmap is not None else None

    @property
    def architecture(self) -> str | None:
        value = self.metadata.get("general.architecture")
        return value if isinstance(value, str) else None

    def metadata_digest(self) -> str:
        """sha256 of the key/value section: names the tokenizer this file describes."""
        return hashlib.sha256(self._mmap[: self.metadata_end]).hexdigest()

    def quantization(self) -> str:
        """How the weights are stored: the file type llama.cpp recorded (e.g. "Q4_K_M"), else
        the ggml type of most of the weights (by bytes)."""
        from gguf import LlamaFileType

        file_type = self.metadata.get("general.file_type")
        try:
            name = LlamaFileType(int(file_type)).name if file_type is not None else None
        except ValueError:
            name = None
        if name and name != "GUESSED":
            return name.removeprefix("MOSTLY_").removeprefix("ALL_")
        by_type: dict[str, int] = {}
        for info in self.tensors.values():
            if len(info.shape) > 1:
                by_type[info.type_name] = by_type.get(info.type_name, 0) + info.nbytes
        return max(by_type, key=by_type.get) if by_type else "F32"

    def dequantize(self, info: TensorInfo, rows: np.ndarray | slice | None = None) -> np.ndarray:
        """The tensor (or some of its rows: indices, or a slice of consecutive ones) as float32,
        in numpy order (out, in)."""
        from gguf import GGMLQuantizationType

        from .quants import dequantize  # gguf-py's numbers, faster for the common types

        try:
            kind = GGMLQuantizationType(info.ggml_type)
        except ValueError:
            kind = None
        if kind is None or info.nbytes == 0:
            raise ModelError(
                f"tensor {info.name!r} in {self.path.name} has ggml type {info.type_name}, which attn cannot read",
                "use a file quantized as F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 or Q2_K … Q6_K",
            )
        raw = self._bytes[info.offset : info.offset + info.nbytes]
        raw = raw.reshape(*info.shape[:-1], info.nbytes // max(1, int(np.prod(info.shape[:-1]))))
        whole = raw
        if rows is not None:
            raw = raw[rows]
        shape = (len(raw), *info.shape[1:]) if rows is not None else info.shape
        out = np.empty(shape, dtype=np.float32)
        # A block of rows at a time, into the result: gguf's de-quantizer makes temporaries ~2x
        # its output, which for a whole embedding table (Gemma 3's: 640 MiB) doubled the peak.
        step = max(1, DEQUANTIZE_BLOCK_BYTES // max(1, raw[:1].nbytes)) if raw.ndim > 1 else len(raw)
        try:
            for start in range(0, len(raw), step):
                block = dequantize(np.ascontiguousarray(raw[start : start + step]), kind)
                out[start : start + step] = np.asarray(block, dtype=np.float32).reshape(out[start : start + step].shape)
        except NotImplementedError:
            raise ModelError(
                f"tensor {info.name!r} in {self.path.name} is quantized as {kind.name}, which gguf cannot de-quantize",
                "use a file quantized as F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 or Q2_K … Q6_K",
            ) from None
        if rows is None:
            self._drop(info.offset, info.nbytes)
        elif isinstance(rows, slice) and len(raw):  # a block of the LM head: its pages are not read again this step
            row_bytes = whole[:1].nbytes
            self._drop(info.offset + rows.indices(len(whole))[0] * row_bytes, len(raw) * row_bytes)
        return out

    def _drop(self, offset: int, nbytes: int) -> None:
        """Let go of a tensor's file pages once they are de-quantized: what reads it next is
        the float32 copy, so keeping both (a run that keeps its weights) held the model twice."""
        if self._mmap is None or not hasattr(mmap, "MADV_DONTNEED"):
            return
        first = offset // mmap.PAGESIZE * mmap.PAGESIZE
        last = (offset + nbytes) // mmap.PAGESIZE * mmap.PAGESIZE  # a page shared with a neighbour is read back if needed
        if last > first:
            self._mmap.madvise(mmap.MADV_DONTNEED, first, last - first)

    def release(self) -> None:
        """Drop the file's pages from this process (they come back from the page cache if read again)."""
        if self._mmap is not None and hasattr(mmap, "MADV_DONTNEED"):
            self._mmap.madvise(mmap.MADV_DONTNEED)


_LAYER = re.compile(r"^blk\.(\d+)\.")


def architecture_name(gguf_name: str, tensors: dict[str, str]) -> str | None:
    """The architecture's name for a GGUF tensor name (`tensors`: a family's table, `{n}` the
    layer), or None if attn does not use it."""
    match = _LAYER.match(gguf_name)
    key = gguf_name if match is None else "blk.{n}." + gguf_name[match.end() :]
    target = tensors.get(key)
    return None if target is None else target.replace("{n}", match.group(1) if match else "")


class GGUFWeights:
    """A GGUF file's tensors under the architecture's names, de-quantized to float32 when read.

    Implements `models.base.Weights`. Nothing is de-quantized twice between two `release()`
    calls; `release()` (after each layer) forgets them and drops the file's pages, so a forward
    pass holds about one layer in float32."""

    def __init__(self, file: GGUFFile, layout: GGUFLayout, config: dict) -> None:
        self.file, self.layout, self.config = file, layout, config
        self._where = {}
        for name, info in file.tensors.items():
            mapped = architecture_name(name, layout.tensors)
            if mapped is not None:
                self._where[mapped] = info
        self._cache: dict[str, np.ndarray] = {}

    def __contains__(self, name: str) -> bool:
        return name in self._where

    def _info(self, name: str) -> TensorInfo:
        try:
            return self._where[name]
        except KeyError:
            raise ModelError(f"{self.file.path.name} has no tensor for {name!r}", "use a complete GGUF file of a supported architecture") from None

    def _convert(self, name: str, w: np.ndarray) -> np.ndarray:
        """What llama.cpp's converter did, undone the way transformers undoes it (the family's `GGUFLayout.convert`)."""
        return w if self.layout.convert is None else self.layout.convert(name, w, self.config)

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._cache:
            self._cache[name] = self._convert(name, self.file.dequantize(self._info(name)))
        return self._cache[name]

    def rows(self, name: str, indices: np.ndarray) -> np.ndarray:
        """Only these rows are de-quantized (the embedding table is the largest tensor)."""
        return self._convert(name, self.file.dequantize(self._info(name), np.asarray(indices)))

    def shape(self, name: str) -> tuple[int, ...]:
        return self._info(name).shape

    def row_range(self, name: str, start: int, stop: int) -> np.ndarray:
        """Rows start … stop - 1, de-quantized alone (a block of the LM head), their file pages then dropped."""
        if name in self._cache:
            return self._cache[name][start:stop]
        return self._convert(name, self.file.dequantize(self._info(name), slice(start, stop)))

    def release(self) -> None:
        self._cache.clear()
        self.file.release()
