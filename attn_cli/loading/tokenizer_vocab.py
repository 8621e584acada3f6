"""A WordPiece tokenizer opened from vocab.txt rather than tokenizer.json: the same tokenizer, sooner.

tokenizer.json spells a BERT vocabulary out as JSON (466 kB for 30,522 pieces), and parsing it is
most of the time it takes to open the tokenizer (~19 ms of attn's start). BERT folders also ship
vocab.txt, the same pieces one per line, which the tokenizers library reads in less time. That the
two make the same tokenizer is proved, never assumed: the first time a pair of files is seen,
the tokenizer read from tokenizer.json and the one built from vocab.txt plus the rest of
tokenizer.json (its "skeleton": normaliser, pre-tokeniser, post-processor, decoder, added
tokens, WordPiece settings) must serialise to equal JSON, the tokenizer's whole state. The
verdict is kept in attn's cache under the two files' sizes and CRC-32s, so a changed byte in
either file means a new proof. Whenever the proof fails or cannot be made (no vocab.txt, not
WordPiece, a vocab.txt that differs from tokenizer.json's vocabulary, a cache that cannot be
read or written), attn reads tokenizer.json as it always did.
"""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path

from tokenizers import Tokenizer

from .cache import cache_dir, write_atomically

VERSION = "1"  # bump when the skeleton or the proof changes, to leave old cache records unused
Stamp = list  # [[size, crc32] of tokenizer.json, [size, crc32] of vocab.txt]


def stamp(path: Path) -> Stamp | None:
    """The stamp of tokenizer.json `path` and the vocab.txt beside it, or None without one."""
    vocab = path.with_name("vocab.txt")
    if not vocab.is_file():
        return None
    try:
        return [[len(data), zlib.crc32(data)] for data in (path.read_bytes(), vocab.read_bytes())]
    except OSError:
        return None


def _record_path(stamp: Stamp) -> Path:
    (_, json_crc), (_, vocab_crc) = stamp
    return cache_dir() / "tokenizers" / f"wordpiece-{json_crc:08x}{vocab_crc:08x}-v{VERSION}.json"


def cached(path: Path, stamp: Stamp) -> Tokenizer | None:
    """The tokenizer built from vocab.txt when the cache holds a proof for exactly these files."""
    try:
        record = json.loads(_record_path(stamp).read_text(encoding="utf-8"))
        if record.get("stamp") != stamp or record.get("skeleton") is None:
            return None
        return _build(record["skeleton"], path.with_name("vocab.txt"))
    except Exception:  # no record, or a damaged one: never trusted, tokenizer.json is read instead
        return None


def remember(path: Path, tokenizer: Tokenizer, stamp: Stamp) -> None:
    """Prove (or disprove) that vocab.txt and the skeleton of `tokenizer`, read from tokenizer.json
    whose files had `stamp` before reading, make the same tokenizer; keep the verdict."""
    record = _record_path(stamp)
    if not _writable(record.parent):
        return  # a proof that cannot be kept would be made again on every run
    state = json.loads(tokenizer.to_str())
    skeleton = _skeleton(state)
    try:
        same = skeleton is not None and json.loads(_build(skeleton, path.with_name("vocab.txt")).to_str()) == state
    except Exception:  # vocab.txt unreadable by the library, or a skeleton it refuses
        same = False
    write_atomically(record, json.dumps({"stamp": stamp, "skeleton": skeleton if same else None}))


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK)


def _skeleton(state: dict) -> str | None:
    """tokenizer.json without its vocabulary: the model keeps its unknown token and the added
    tokens, at their ids (so that the added tokens keep theirs), and is replaced by vocab.txt."""
    model = state.get("model") or {}
    if model.get("type") != "WordPiece" or not isinstance(model.get("vocab"), dict):
        return None
    vocab = model["vocab"]
    kept = {t["content"]: t["id"] for t in state.get("added_tokens") or []}
    if model.get("unk_token") in vocab:
        kept[model["unk_token"]] = vocab[model["unk_token"]]
    return json.dumps(state | {"model": model | {"vocab": kept}})


def _build(skeleton: str, vocab: Path) -> Tokenizer:
    from tokenizers.models import WordPiece

    tokenizer = Tokenizer.from_str(skeleton)
    settings = json.loads(skeleton)["model"]
    tokenizer.model = WordPiece.from_file(
        str(vocab), unk_token=settings["unk_token"], continuing_subword_prefix=settings["continuing_subword_prefix"],
        max_input_chars_per_word=settings["max_input_chars_per_word"],
    )
    return tokenizer
