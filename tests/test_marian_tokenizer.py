"""attn_cli/loading/marian_tokenizer.py on hand-made files: a SentencePiece model read as the
protobuf it is, and the errors of files that are not what an Opus-MT folder holds. Its agreement
with transformers' MarianTokenizer on the real files: tests/test_opus_mt_real.py."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from attn_cli.errors import ModelError
from attn_cli.loading.marian_tokenizer import marian_tokenizers, read_spm


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTN_CACHE", str(tmp_path / "cache"))


def message(field: int, payload: bytes) -> bytes:
    return bytes([field << 3 | 2, len(payload)]) + payload


def piece(text: str, score: float, kind: int = 1) -> bytes:
    raw = text.encode()
    return message(1, bytes([0x0A, len(raw)]) + raw + b"\x15" + struct.pack("<f", score) + bytes([0x18, kind]))


def spm(*pieces: bytes, model_type: int = 1) -> bytes:
    return b"".join(pieces) + message(2, bytes([0x18, model_type]))


def folder(tmp_path, source: bytes, vocab) -> object:
    (tmp_path / "source.spm").write_bytes(source)
    (tmp_path / "target.spm").write_bytes(source)
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    return tmp_path


def test_pieces_scores_and_types_are_read_from_the_protobuf(tmp_path):
    path = tmp_path / "source.spm"
    path.write_bytes(spm(piece("<unk>", 0.0, 2), piece("▁le", -3.5), piece("chat", -7.25)))
    pieces, charsmap = read_spm(path)
    assert pieces == {"<unk>": (0.0, 2), "▁le": (-3.5, 1), "chat": (-7.25, 1)} and charsmap == b""


def test_a_vocabulary_scored_by_each_side_tokenizes_with_eos_last(tmp_path):
    vocab = {"</s>": 0, "<unk>": 1, "▁le": 2, "▁chat": 3, "▁": 4, "c": 5, "h": 6, "a": 7, "t": 8, "<pad>": 9}
    model = spm(piece("<unk>", 0.0, 2), piece("▁le", -2.0), piece("▁chat", -3.0), piece("▁", -4.0), *(piece(c, -5.0) for c in "chat"))
    source, target = marian_tokenizers(folder(tmp_path, model, vocab))
    assert source.encode("le  chat").ids == [2, 3, 0] == target.encode(" le chat ").ids
    assert source.encode("tac").ids == [4, 8, 7, 5, 0]  # ▁ t a c: no piece spans them
    assert source.encode("le x").ids == [2, 4, 1, 0]  # a character neither side knows: <unk>


def test_each_sides_tokenizer_is_kept_in_the_cache_and_a_damaged_record_is_rebuilt(tmp_path):
    vocab = {"</s>": 0, "<unk>": 1, "▁le": 2, "<pad>": 3}
    source_model, target_model = spm(piece("▁le", -2.0)), spm(piece("▁le", -2.5))
    models = folder(tmp_path, source_model, vocab)
    (models / "target.spm").write_bytes(target_model)
    first = [t.to_str() for t in marian_tokenizers(models)]
    records = sorted((tmp_path / "cache" / "tokenizers").glob("marian-*-v1.json"))
    kept = lambda: sorted(Tokenizer.from_file(str(r)).to_str() for r in records)  # noqa: E731
    assert len(records) == 2 and kept() == sorted(first)
    records[0].write_text("{not json")
    assert [t.to_str() for t in marian_tokenizers(models)] == first
    assert kept() == sorted(first)


@pytest.mark.parametrize(
    ("source", "vocab", "message"),
    [
        (b"\x0a\x05ab", {"</s>": 0, "<unk>": 1}, "as a SentencePiece model"),
        (spm(piece("a", -1.0), model_type=2), {"</s>": 0, "<unk>": 1}, "not a unigram SentencePiece model"),
        (spm(piece("a", -1.0)), ["</s>"], "is not a {piece: id} object"),
        (spm(piece("a", -1.0)), {"</s>": 0, "<unk>": 2}, "does not number its pieces"),
    ],
)
def test_files_that_are_not_an_opus_mt_folders_are_model_errors(tmp_path, source, vocab, message):
    with pytest.raises(ModelError, match=message.replace("{", r"\{").replace("}", r"\}")):
        marian_tokenizers(folder(tmp_path, source, vocab))


def test_an_opus_mt_folder_in_the_hub_cache_is_usable_without_tokenizer_json(tmp_path):
    """The tiny Marian fixture with its Unigram vocabulary written as Opus-MT ships one (the two
    .spm files and vocab.json, no tokenizer.json): the hub cache's listing finds it usable, and
    `inspect -m org/name` tokenizes a source with it as the fixture's own tokenizer.json does."""
    from helpers import attn, make_hub_cache

    from attn_cli.loading.hub import _describe

    fixture = Path(__file__).parent / "fixtures" / "seq2seq" / "marian"
    model = json.loads((fixture / "tokenizer.json").read_text(encoding="utf-8"))["model"]
    pieces = [piece(text, score, 1 if text not in ("</s>", "<unk>", "<pad>") else 3) for text, score in model["vocab"]]
    folder = tmp_path / "opus-tiny"
    folder.mkdir()
    for name in ("config.json", "generation_config.json", "model.safetensors"):
        (folder / name).write_bytes((fixture / name).read_bytes())
    (folder / "source.spm").write_bytes(spm(*pieces))
    (folder / "target.spm").write_bytes(spm(*pieces))
    (folder / "vocab.json").write_text(json.dumps({text: i for i, (text, _) in enumerate(model["vocab"])}))
    snapshot = make_hub_cache(tmp_path / "hf", "acme/opus-tiny", folder)
    assert _describe("acme/opus-tiny", snapshot).problem is None
    text = str(np.load(fixture / "ref_0.npz")["source"])
    env = {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    doc = json.loads(attn("inspect", text, "-q", "cat", "-m", "acme/opus-tiny", "--json", env=env).stdout)
    assert [t["id"] for t in doc["tokens"]] == Tokenizer.from_file(str(fixture / "tokenizer.json")).encode(text).ids
