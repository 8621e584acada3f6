"""Reading an interactive page (`attn plot -o page.html`) back: its JSON blob and packed arrays."""

from __future__ import annotations

import base64
import json
import re
import zlib
from pathlib import Path

import numpy as np

BLOB = re.compile(r'<script type="application/json" class="attn-data">(.*?)</script>', re.S)


def page_blobs(text: str) -> list[dict]:
    """Every page's data blob in `text` (a file holds one; a notebook cell may hold several)."""
    return [json.loads(m.replace("<\\/", "</")) for m in BLOB.findall(text)]


def page_blob(path: Path) -> dict:
    (blob,) = page_blobs(Path(path).read_text(encoding="utf-8"))
    return blob


def unpacked(packed: dict) -> np.ndarray:
    """A packed array of the blob: weights (uint8 hundredths, 255 masked) or keys (float16)."""
    dtype = {"centi-uint8-deflate-base64": np.uint8, "float16-deflate-base64": np.dtype("<f2")}[packed["encoding"]]
    return np.frombuffer(zlib.decompress(base64.b64decode(packed["data"])), dtype=dtype).reshape(packed["shape"])
