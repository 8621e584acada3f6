"""Opus-MT's tokenizers, built for the `tokenizers` library from the files a Marian folder ships
(`source.spm`, `target.spm`, `vocab.json`), as transformers' MarianTokenizer tokenizes: the
source text with the source SentencePiece model, a target (`text_target`) with the target one,
each piece then looked up in the one shared vocab.json (unknown pieces → `<unk>`), `</s>` last.

A `.spm` file is a SentencePiece ModelProto (protobuf): read here by hand, it gives each piece's
string, score and type, and the normalizer's precompiled character map (NFKC and whitespace
rules). Each side becomes a Unigram model over vocab.json's pieces in id order, scored by its own
.spm; a piece the side's .spm lacks gets a score far below any real segmentation's, so that it
is used only where SentencePiece itself would emit an unknown piece that vocab.json maps back to
the same id (a character only the other side knows). Normalization is SentencePiece's: the
precompiled map, runs of spaces collapsed, the ends stripped, `▁` before the text and for every
space.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

from tokenizers import Tokenizer

from ..errors import ModelError
from .cache import cache_dir, write_atomically

NORMAL, UNKNOWN, CONTROL, USER_DEFINED = 1, 2, 3, 4
VERSION = "1"  # bump when tokenizer_json changes, to leave old cache records unused


def _fields(buf: bytes):
    """(field number, value) of a protobuf message: varints as int, 32-bit as bytes, the rest as bytes."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = buf[i : i + 8], i + 8
        elif wire == 2:
            size, i = _varint(buf, i)
            value, i = buf[i : i + size], i + size
        elif wire == 5:
            value, i = buf[i : i + 4], i + 4
        else:
            raise ValueError(f"protobuf wire type {wire}")
        if i > len(buf):
            raise ValueError("truncated protobuf")
        yield field, value


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[i]
        value |= (byte & 0x7F) << shift
        i, shift = i + 1, shift + 7
        if not byte & 0x80:
            return value, i


def read_spm(path: Path) -> tuple[dict[str, tuple[float, int]], bytes]:
    """A unigram .spm file's pieces ({piece: (score, type)}) and precompiled character map."""
    fix = "re-download the model's .spm files"
    try:
        pieces, charsmap, model_type = {}, b"", 1
        for field, value in _fields(path.read_bytes()):
            if field == 1:
                piece = dict(_fields(value))
                score = struct.unpack("<f", piece[2])[0] if 2 in piece else 0.0
                pieces[piece[1].decode("utf-8")] = (score, piece.get(3, NORMAL))
            elif field == 2:
                model_type = dict(_fields(value)).get(3, 1)
            elif field == 3:
                charsmap = dict(_fields(value)).get(2, b"")
    except (OSError, ValueError, IndexError, KeyError, UnicodeDecodeError, struct.error) as exc:
        raise ModelError(f"cannot read {path} as a SentencePiece model: {exc}", fix) from None
    if model_type != 1:
        raise ModelError(f"{path} is not a unigram SentencePiece model (type {model_type})", "use an Opus-MT model with unigram .spm files")
    return pieces, charsmap


def tokenizer_json(spm: Path, vocab: dict[str, int]) -> str:
    """The tokenizer.json text of one side: a Unigram over `vocab`'s pieces scored by `spm`."""
    pieces, charsmap = read_spm(spm)
    scores = [s for s, kind in pieces.values() if kind == NORMAL]
    absent = 100 * min(scores, default=0.0) - 1000  # below any path of real pieces: see the module's docstring
    ordered = sorted(vocab.items(), key=lambda item: item[1])
    if [i for _, i in ordered] != list(range(len(ordered))):
        raise ModelError(f"{spm.parent / 'vocab.json'} does not number its pieces 0 … {len(ordered) - 1}", "re-download vocab.json")
    unigram = [[piece, pieces[piece][0] if pieces.get(piece, (0, CONTROL))[1] in (NORMAL, USER_DEFINED) else absent] for piece, _ in ordered]
    specials = [t for t in ("</s>", "<unk>", "<pad>") if t in vocab]
    normalizers = [{"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}, {"type": "Strip", "strip_left": True, "strip_right": True}]
    if charsmap:
        import base64

        normalizers.insert(0, {"type": "Precompiled", "precompiled_charsmap": base64.b64encode(charsmap).decode()})
    return json.dumps({
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [
            {"id": vocab[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True} for t in specials
        ],
        "normalizer": {"type": "Sequence", "normalizers": normalizers},
        "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}],
            "special_tokens": {"</s>": {"id": "</s>", "ids": [vocab["</s>"]], "tokens": ["</s>"]}},
        },
        "decoder": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True},
        "model": {"type": "Unigram", "unk_id": vocab["<unk>"], "vocab": unigram, "byte_fallback": False},
    }, ensure_ascii=False)


def is_marian_folder(folder: Path) -> bool:
    return all((folder / name).is_file() for name in ("source.spm", "target.spm", "vocab.json"))


def marian_tokenizers(folder: Path) -> tuple[Tokenizer, Tokenizer]:
    """(source, target) tokenizers of a Marian folder, neither padding nor truncating."""
    return marian_tokenizer(folder, "source"), marian_tokenizer(folder, "target")


def marian_tokenizer(folder: Path, side: str) -> Tokenizer:
    """The `side` ("source" or "target") tokenizer of a Marian folder, neither padding nor
    truncating. Its tokenizer.json is kept in attn's cache under the CRC-32s of its .spm and
    vocab.json: building it reads 60,000 pieces (most of a second), and even reading it back
    takes ~0.3 s, so a model builds its target side only when a target is tokenized."""
    try:
        raw = (folder / "vocab.json").read_bytes()
        data = (folder / f"{side}.spm").read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read {folder}: {exc.strerror or exc}", "check that the model folder's files are readable") from None
    record = cache_dir() / "tokenizers" / f"marian-{zlib.crc32(data):08x}{zlib.crc32(raw):08x}-v{VERSION}.json"
    try:
        return Tokenizer.from_file(str(record))
    except Exception:  # not cached yet, or damaged: built again
        pass
    text = tokenizer_json(folder / f"{side}.spm", _vocab(folder, raw))
    write_atomically(record, text)
    return Tokenizer.from_str(text)


def _vocab(folder: Path, raw: bytes) -> dict[str, int]:
    try:
        vocab = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise ModelError(f"cannot read {folder / 'vocab.json'}: {exc}", "re-download vocab.json") from None
    if not (isinstance(vocab, dict) and all(isinstance(i, int) for i in vocab.values()) and {"</s>", "<unk>"} <= vocab.keys()):
        raise ModelError(f"{folder / 'vocab.json'} is not a {{piece: id}} object with </s> and <unk>", "re-download vocab.json")
    return vocab
