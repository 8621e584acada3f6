"""The decoding loop of `attn generate`: a forward pass per new token over a KV cache, the next
token read from the LM head, until the length limit or an end-of-sequence id.

`decode` yields each step's layer traces and logits, so that the command, the tests (cache
equals the full pass; equals transformers' `generate`) and the benchmark read the same loop.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from ..errors import InputError, ModelError
from ..loading.model import Model
from ..maths.sampling import greedy, sample, top_tokens
from ..models import KVCache, LayerTrace
from ..records import frozen


@frozen
class Sampling:
    """How the next token is chosen: greedy (the most likely), or drawn with a seeded generator
    after temperature, top-k and top-p."""

    sample: bool = False
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None

    def validate(self) -> None:
        if not self.sample:
            return
        if not self.temperature > 0:
            raise InputError(
                f"`Sampling.temperature={self.temperature}` cannot be used with `Sampling.sample=True`",
                "give `Sampling.temperature` above 0 (drop `Sampling.sample=True` for greedy decoding)",
            )
        if self.top_k is not None and self.top_k < 1:
            raise InputError(f"`Sampling.top_k={self.top_k}` is not valid", "give `Sampling.top_k` 1 or more (1 is greedy)")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise InputError(f"`Sampling.top_p={self.top_p}` is not valid", "give `Sampling.top_p` in (0, 1]")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0):
            # NumPy's generators take only non-negative integers: refused here, not as a ValueError mid-run
            raise InputError(f"`Sampling.seed={self.seed}` is not valid", "give `Sampling.seed` 0 or more")

    def chooser(self) -> Callable[[np.ndarray], int]:
        """logits (vocab,) -> the next id; a sampler keeps its generator, so a seed gives one text."""
        if not self.sample:
            return greedy
        rng = np.random.default_rng(self.seed)
        return lambda logits: sample(logits, rng, self.temperature, self.top_k, self.top_p)


@frozen
class DecodeStep:
    """One generated token: `position` is where it goes; `logits` (vocab,) are the model's output
    at position - 1, which chose it, with the banned tokens (`bad_words`) at -inf (at the last
    step, with `forced_eos`, all but those ids); `traces` are the layers of the forward pass that
    made them (with the cache, over the new tokens only: the prompt at the first step, then one
    token)."""

    position: int
    id: int
    logits: np.ndarray
    traces: tuple[LayerTrace, ...]


def require_decoder(model: Model, command: str = "generate") -> None:
    """Encoders (BERT) see the whole text at once and have no next-token head: they cannot generate."""
    if not model.arch.decodes and model.has_cross_attention:
        raise InputError(
            f"{model.name} is an encoder–decoder model ({model.spec.model_type}): `{command}()` reads decoder-only models",
            "use a decoder (gpt2, llama, …); with this model, `generate()` writes a target and `inspect()` with `target=TEXT` shows its decoder",
        )
    if not model.arch.decodes:
        raise InputError(
            f"{model.name} is an encoder ({model.spec.model_type}): it sees the whole text at once and cannot predict a next token",
            f"use a decoder for `{command}()` (gpt2, llama, mistral, qwen2, qwen3, …), e.g. `load_model('smollm2')`",
        )


def eos_ids(model: Model) -> tuple[int, ...]:
    """The ids that end generation, where transformers' `generate` finds them: generation_config.json's
    `eos_token_id` (an id or a list), else config.json's, else the tokenizer's eos_token."""
    for source in (_json(model.path / "generation_config.json"), model.config):
        ids = source.get("eos_token_id")
        if ids is not None:
            ids = [ids] if isinstance(ids, int) else ids
            return tuple(int(i) for i in ids)
    token = _json(model.path / "tokenizer_config.json").get("eos_token")
    token = token.get("content") if isinstance(token, dict) else token
    found = model.tokenizer.token_to_id(token) if isinstance(token, str) else None
    return () if found is None else (int(found),)


def bad_words(model: Model) -> tuple[tuple[int, ...], ...]:
    """The id sequences generation never completes: `bad_words_ids` of generation_config.json, or
    of config.json when the folder has no generation_config.json (transformers 5 then reads only
    the first), as transformers' NoBadWordsLogitsProcessor takes them: a sequence that is just an
    end-of-sequence id is dropped. Marian models ban `<pad>` ([[pad_token_id]])."""
    found = _setting(model, "bad_words_ids")
    if found is None:
        return ()
    valid = isinstance(found, list) and found and all(
        isinstance(seq, list) and seq and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in seq) for seq in found
    )
    if not valid:
        raise ModelError(
            f"bad_words_ids of {model.path} is {str(found)[:80]}, not a non-empty list of non-empty lists of token ids",
            "fix or remove bad_words_ids in its generation_config.json or config.json",
        )
    eos = eos_ids(model)
    return tuple(dict.fromkeys(tuple(seq) for seq in found if not (len(seq) == 1 and seq[0] in eos)))


def forced_eos(model: Model) -> tuple[int, ...]:
    """`forced_eos_token_id` (an id or a list), read as `bad_words`: transformers' ForcedEOSTokenLogitsProcessor
    makes the last of `max_new_tokens` new tokens one of them (`only`). Opus-MT's is `</s>`."""
    found = _setting(model, "forced_eos_token_id")
    found = [found] if isinstance(found, int) and not isinstance(found, bool) else found
    if found is None:
        return ()
    if not (isinstance(found, list) and found and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in found)):
        raise ModelError(
            f"forced_eos_token_id of {model.path} is {str(found)[:80]}, not a token id or a list of them",
            "fix or remove forced_eos_token_id in its generation_config.json or config.json",
        )
    return tuple(found)


def _setting(model: Model, key: str):
    """A generation setting: generation_config.json's, or config.json's when the folder has no
    generation_config.json (transformers 5 reads config.json's only then)."""
    generation = model.path / "generation_config.json"
    return (_json(generation) if generation.is_file() else model.config).get(key)


def only(logits: np.ndarray, ids: tuple[int, ...]) -> np.ndarray:
    """(vocab,) logits where `ids` are 0 and every other token -inf: one of `ids` is chosen, with
    probability 1/len(ids) (transformers' forced tokens, renormalized)."""
    if max(ids) >= logits.shape[-1]:
        raise ModelError(
            f"forced_eos_token_id names token {max(ids)}, but the model has {logits.shape[-1]} tokens",
            "fix or remove forced_eos_token_id in its generation_config.json or config.json",
        )
    out = np.full_like(logits, -np.inf)
    out[list(ids)] = 0.0
    return out


def banned(ids: list[int], bad: tuple[tuple[int, ...], ...]) -> list[int]:
    """The next ids that would complete a sequence of `bad` after `ids` (the whole input so far:
    prompt, or decoder start, and what was written): a one-token sequence always, a longer one
    when `ids` end with all but its last token (transformers' SequenceBiasLogitsProcessor)."""
    return [seq[-1] for seq in bad if len(seq) == 1 or (len(seq) - 1 <= len(ids) and tuple(ids[len(ids) - len(seq) + 1 :]) == seq[:-1])]


def masked(logits: np.ndarray, ids: list[int], bad: tuple[tuple[int, ...], ...]) -> np.ndarray:
    """`logits` (vocab,) with the `banned` ids at -inf: never chosen, probability 0, the others'
    log-probabilities renormalized over what is left (transformers' `output_scores`)."""
    drop = banned(ids, bad)
    if not drop:
        return logits
    if max(drop) >= logits.shape[-1]:
        raise ModelError(
            f"bad_words_ids bans token {max(drop)}, but the model has {logits.shape[-1]} tokens",
            "fix or remove bad_words_ids in its generation_config.json or config.json",
        )
    logits = logits.copy()
    logits[drop] = -np.inf
    return logits


def likeliest(logprobs: np.ndarray, k: int) -> list[int]:
    """The ids of the k largest log-probs (vocab,), largest first, leaving out the banned ones
    (-inf: they have no probability, and JSON no number for them)."""
    return [int(i) for i in top_tokens(logprobs, k) if logprobs[i] > -np.inf]


def _json(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path}: {exc}", f"re-download {path.name}") from None
    except RecursionError:
        raise ModelError(f"cannot read {path}: its JSON is nested too deeply", f"re-download {path.name}") from None
    return data if isinstance(data, dict) else {}


def check_length(model: Model, prompt_tokens: int, max_new_tokens: int) -> None:
    if max_new_tokens < 1:
        raise InputError(f"`max_new_tokens={max_new_tokens}` is not valid", "give `max_new_tokens` 1 or more")
    limit = model.spec.max_positions
    if prompt_tokens + max_new_tokens > limit:
        raise InputError(
            f"the prompt is {prompt_tokens} tokens and {max_new_tokens} new ones would make {prompt_tokens + max_new_tokens}, "
            f"but the model reads at most {limit}",
            f"give -n {max(limit - prompt_tokens, 0)} or less, or a shorter prompt",
        )


def decode(
    model: Model,
    prompt_ids: np.ndarray,
    max_new_tokens: int,
    choose: Callable[[np.ndarray], int] = greedy,
    eos: tuple[int, ...] = (),
    use_cache: bool = True,
    bad: tuple[tuple[int, ...], ...] = (),
    forced: tuple[int, ...] = (),
) -> Iterator[DecodeStep]:
    """Generate up to `max_new_tokens` after `prompt_ids`, stopping after an id in `eos` (which
    is yielded), never completing a sequence of `bad` (`bad_words`), the last one of `forced`
    (`forced_eos`) when it has any. With `use_cache` each step runs the new token alone over the
    KV cache; without, it reruns the whole sequence (the same numbers, to float32 rounding; slower)."""
    require_decoder(model)
    cache = KVCache(model.spec, len(prompt_ids) + max_new_tokens) if use_cache else None

    def logits_of(hidden: np.ndarray) -> np.ndarray:
        return model.arch.logits(model.weights, model.spec, hidden)

    yield from decode_steps(prompt_ids, max_new_tokens, cache, model.trace, logits_of, choose, eos, bad, forced)


def decode_steps(
    prompt_ids, max_new_tokens: int, cache, run: Callable, logits_of: Callable[[np.ndarray], np.ndarray],
    choose: Callable[[np.ndarray], int], eos: tuple[int, ...], bad: tuple[tuple[int, ...], ...], forced: tuple[int, ...],
) -> Iterator[DecodeStep]:
    """The loop every decoder shares: `run(ids, cache)` gives the layers' traces of `ids` (the new
    token alone over `cache`, or the whole sequence when `cache` is None), `logits_of` the
    `(1, vocab)` logits of the last hidden state; each step's token is chosen from them."""
    ids = [int(i) for i in prompt_ids]
    new = np.asarray(ids, dtype=np.int64)
    for step in range(max_new_tokens):
        traces = tuple(run(new if cache is not None else np.asarray(ids, dtype=np.int64), cache))
        logits = masked(logits_of(traces[-1].hidden[-1:])[0], ids, bad)
        logits = only(logits, forced) if forced and step == max_new_tokens - 1 else logits
        token = int(choose(logits))
        yield DecodeStep(len(ids), token, logits, traces)
        ids.append(token)
        if token in eos:
            return
        new = np.asarray([token], dtype=np.int64)
