"""The tokenizer a GGUF file describes, rebuilt as a `tokenizers.Tokenizer`.

A GGUF file has no tokenizer.json: its metadata holds the vocabulary (`tokenizer.ggml.tokens`),
the merges or scores, each token's type and the BOS/EOS flags. attn builds from them the same
tokenizer transformers builds for the same file (`AutoTokenizer.from_pretrained(dir,
gguf_file=...)`), so that both give the same ids:

- `gpt2`: byte-level BPE from `tokens` + `merges`, split by the `pre` type's regex;
- `llama` in a Gemma file: BPE with byte fallback, spaces as `▁`, merges rebuilt from the
  vocabulary in file order (Gemma's scores do not follow its merge order);
- `llama` otherwise: SentencePiece-style BPE (`▁` prefix on the first word), merges from scores;
- `bert` (nomic-bert): WordPiece. llama.cpp stores BERT's vocabulary with a "phantom space":
  a word-initial piece `the` as `▁the`, a continuation `##ing` as `ing`, `[CLS]`-like tokens
  unchanged; attn spells them back and tokenizes as llama.cpp's WPM tokenizer does: lower-cased,
  accents stripped, split at spaces and punctuation, [CLS] … [SEP] (bert-base-uncased's rules).

Building Gemma's (262,144 tokens, ~515,000 merges) takes seconds, so the result is kept as a
tokenizer.json in attn's cache, named by the sha256 of the file's metadata.
"""

from __future__ import annotations

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

from ..errors import ModelError
from .cache import cache_dir, write_atomically
from .gguf import GGUFFile
from .tokenizer import check_encodes

BUILDER_VERSION = "2"  # bump when the built tokenizer changes, to leave stale cache entries unused
CONTROL, USER_DEFINED = 3, 4  # llama.cpp's token types

_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# `tokenizer.ggml.pre` -> the regex its merges were learned on; other values keep GPT-2's.
PRE_TOKENIZER_SPLITS = {
    "llama3": _LLAMA3_SPLIT, "llama-v3": _LLAMA3_SPLIT, "llama-bpe": _LLAMA3_SPLIT, "smaug-bpe": _LLAMA3_SPLIT,
    "dbrx": _LLAMA3_SPLIT, "qwen2": _QWEN2_SPLIT, "deepseek-r1-qwen": _QWEN2_SPLIT,
}
GEMMA_ARCHITECTURES = ("gemma", "gemma2", "gemma3")


def gguf_tokenizer(file: GGUFFile) -> Tokenizer:
    """The file's tokenizer: from the cache when it was built before, else built (and cached)."""
    cached = cache_dir() / "tokenizers" / f"{file.metadata_digest()}-v{BUILDER_VERSION}.json"
    if cached.is_file():
        try:
            return Tokenizer.from_file(str(cached))
        except Exception:  # a damaged cache entry is rebuilt, never trusted
            pass
    tokenizer = check_encodes(build_tokenizer(file.metadata, file.architecture or "", file.path.name), str(file.path), f"re-download {file.path.name}")
    write_atomically(cached, tokenizer.to_str())
    return tokenizer


def build_tokenizer(metadata: dict, architecture: str, filename: str = "the GGUF file") -> Tokenizer:
    """The tokenizer of the metadata; a vocabulary or merges that do not hold together (a merge
    of tokens the vocabulary lacks: a corrupt file) are a ModelError, whatever `tokenizers` raises."""
    try:
        return _build(metadata, architecture, filename)
    except ModelError:
        raise
    except Exception as exc:  # tokenizers raises bare Exceptions, TypeErrors, ValueErrors
        raise ModelError(
            f"{filename}'s tokenizer does not hold together: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
            f"re-download {filename}: its tokenizer metadata is corrupt",
        ) from None


def _build(metadata: dict, architecture: str, filename: str) -> Tokenizer:
    kind = metadata.get("tokenizer.ggml.model")
    tokens = metadata.get("tokenizer.ggml.tokens")
    if not isinstance(tokens, list) or not tokens:
        raise ModelError(f"{filename} has no tokenizer vocabulary (tokenizer.ggml.tokens)", "use a GGUF file that includes its tokenizer")
    types = [int(t) for t in metadata.get("tokenizer.ggml.token_type", [])]
    if kind == "gpt2":
        tokenizer, add_bos_default = _byte_level(metadata, tokens), False
    elif kind == "llama" and architecture in GEMMA_ARCHITECTURES:
        tokenizer, add_bos_default = _gemma(tokens), True
    elif kind == "llama":
        tokenizer, add_bos_default = _sentencepiece(metadata, tokens), True
    elif kind == "bert":
        return _wordpiece(metadata, tokens, filename)
    else:
        raise ModelError(
            f"{filename} has a tokenizer of type {kind!r}, which attn cannot rebuild (supported: bert, gpt2, llama)", "use a model folder with tokenizer.json"
        )
    # As the file spells them: Gemma's respelled space runs are not added tokens.
    _add_special_tokens(tokenizer, tokens, types, byte_level=kind == "gpt2")
    _set_post_processor(tokenizer, metadata, tokens, add_bos_default)
    return tokenizer


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table (a space is `Ġ`, a newline `Ċ`)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            chars[byte] = chr(byte)
        else:
            chars[byte] = chr(256 + extra)
            extra += 1
    return chars


def _byte_level(metadata: dict, tokens: list[str]) -> Tokenizer:
    spelling = bytes_to_unicode()
    alphabet = set(spelling.values())
    # A vocabulary entry outside the byte alphabet is spelled in it (as transformers does).
    spelled = [t if set(t) <= alphabet else "".join(spelling[b] for b in t.encode("utf-8")) for t in tokens]
    vocab = {t: i for i, t in enumerate(spelled)}
    merges = [tuple(m.split(" ")) for m in metadata.get("tokenizer.ggml.merges", [])]
    tokenizer = Tokenizer(models.BPE(vocab, merges, dropout=None, continuing_subword_prefix="", end_of_word_suffix="", fuse_unk=False))
    split = PRE_TOKENIZER_SPLITS.get(metadata.get("tokenizer.ggml.pre"))
    if split is None:
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    else:
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Split(Regex(split), behavior="isolated"), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
        )
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def _gemma(tokens: list[str]) -> Tokenizer:
    # Tokens of two or more spaces are stored as spaces, but looked up as "▁▁…".
    tokens = ["▁" * len(t) if " " in t and not t.strip() else t for t in tokens]
    order = {t: -i for i, t in enumerate(tokens)}  # the merge order is the file order
    vocab = {t: i for i, t in enumerate(tokens)}
    tokenizer = Tokenizer(models.BPE(vocab, merges_from_vocab(vocab, order), fuse_unk=True, unk_token="<unk>", dropout=None, byte_fallback=True))
    tokenizer.normalizer = normalizers.Replace(" ", "▁")
    tokenizer.pre_tokenizer = pre_tokenizers.Split(" ", behavior="merged_with_previous", invert=False)
    tokenizer.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    return tokenizer


def _sentencepiece(metadata: dict, tokens: list[str]) -> Tokenizer:
    vocab = {t: i for i, t in enumerate(tokens)}
    scores = metadata.get("tokenizer.ggml.scores")
    if "tokenizer.ggml.merges" in metadata:
        merges = [tuple(m.split(" ")) for m in metadata["tokenizer.ggml.merges"]]
    else:
        merges = merges_from_vocab(vocab, dict(zip(tokens, (float(s) for s in scores))) if scores is not None else None)
    tokenizer = Tokenizer(models.BPE(vocab, merges, fuse_unk=True, byte_fallback=True, dropout=None))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    tokenizer.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    return tokenizer


def unphantom(token: str) -> str:
    """A vocabulary entry as llama.cpp's BERT converter stored it -> as BERT's vocab.txt spells it."""
    if token.startswith("[") and token.endswith("]"):
        return token
    return token[1:] if token.startswith("▁") else "##" + token


def _wordpiece(metadata: dict, tokens: list[str], filename: str) -> Tokenizer:
    """BERT's uncased WordPiece tokenizer over the file's vocabulary, [CLS] text [SEP]."""
    vocab = {unphantom(t): i for i, t in enumerate(tokens)}
    names = {}
    for role, key in (("unk", "unknown_token_id"), ("cls", "bos_token_id"), ("sep", "seperator_token_id")):  # llama.cpp's spelling
        token_id = metadata.get(f"tokenizer.ggml.{key}")
        if token_id is None or not 0 <= int(token_id) < len(tokens):
            problem = f"{filename} has a WordPiece vocabulary without its {role} token (tokenizer.ggml.{key})"
            raise ModelError(problem, "re-convert the model with a current llama.cpp")
        names[role] = (tokens[int(token_id)], int(token_id))
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token=names["unk"][0], max_input_chars_per_word=100))
    tokenizer.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    types = [int(t) for t in metadata.get("tokenizer.ggml.token_type", [])]
    control = [AddedToken(unphantom(t), normalized=False, special=True) for t, kind in zip(tokens, types) if kind == CONTROL]
    if control:
        tokenizer.add_special_tokens(control)
    (cls, cls_id), (sep, sep_id) = names["cls"], names["sep"]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{cls}:0 $A:0 {sep}:0", pair=f"{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1", special_tokens=[(cls, cls_id), (sep, sep_id)]
    )
    return tokenizer


def merges_from_vocab(vocab: dict[str, int], scores: dict[str, float] | None) -> list[tuple[str, str]]:
    """The merges a BPE vocabulary implies: every split of a token into two tokens, best
    score first (by id when there are no scores), ties broken by the parts' lengths, then ids."""
    ranked = scores if scores is not None else vocab
    found = []
    for token, score in ranked.items():
        pairs = [(token[:i], token[i:]) for i in range(1, len(token)) if token[:i] in vocab and token[i:] in vocab]
        pairs.sort(key=lambda p: (vocab[p[0]], vocab[p[1]]))
        found.extend((left, right, score) for left, right in pairs)
    found.sort(key=lambda m: (m[2], len(m[0]), len(m[1])), reverse=scores is not None)
    return [(left, right) for left, right, _ in found]


def _add_special_tokens(tokenizer: Tokenizer, tokens: list[str], types: list[int], byte_level: bool) -> None:
    """Control tokens (`<|im_start|>`, `<bos>`) stay whole and special; user-defined ones
    (`\\n\\n`, `<think>`) stay whole but are text. In a byte-level vocabulary a "control" token
    spelled outside the byte alphabet is a converter's mislabel, and is left alone."""
    alphabet = set(bytes_to_unicode().values()) if byte_level else None
    control = [
        AddedToken(t, normalized=False, special=True)
        for t, kind in zip(tokens, types)
        if kind == CONTROL and (alphabet is None or set(t) <= alphabet)
    ]
    if control:
        tokenizer.add_special_tokens(control)
    vocab = tokenizer.get_vocab()
    user = [AddedToken(t, normalized=False, special=False) for t, kind in zip(tokens, types) if kind == USER_DEFINED and t in vocab]
    if user:
        tokenizer.add_tokens(user)


def _set_post_processor(tokenizer: Tokenizer, metadata: dict, tokens: list[str], add_bos_default: bool) -> None:
    """BOS/EOS around every text, as the file's `add_bos_token` / `add_eos_token` say."""

    def special(flag: str, id_key: str, default: bool) -> tuple[str, int] | None:
        token_id = metadata.get(f"tokenizer.ggml.{id_key}")
        wanted = bool(metadata.get(f"tokenizer.ggml.{flag}", default))
        return (tokens[int(token_id)], int(token_id)) if wanted and token_id is not None and int(token_id) < len(tokens) else None

    bos = special("add_bos_token", "bos_token_id", add_bos_default)
    eos = special("add_eos_token", "eos_token_id", False)
    single = f"{bos[0] + ':0 ' if bos else ''}$A:0{' ' + eos[0] + ':0' if eos else ''}"
    pair = f"{single}{' ' + bos[0] + ':1' if bos else ''} $B:1{' ' + eos[0] + ':1' if eos else ''}"
    tokenizer.post_processor = processors.TemplateProcessing(single=single, pair=pair, special_tokens=[t for t in (bos, eos) if t])
