"""`--chat`: a user message (and a system message) through the model's chat template, tokenized."""

from __future__ import annotations

from ..errors import ModelError
from ..loading.chat import chat_messages, find_chat_template, render_chat, special_tokens, tokenizer_config
from ..loading.model import Model
from ..loading.tokenizer import Tokenization, tokenize


def chat_text(model: Model, user: str, system: str | None = None) -> str:
    """The text the model reads for one user turn: its template rendered with the generation prompt."""
    template = getattr(model, "chat_template", None)  # a GGUF file carries its own (tokenizer.chat_template)
    if model.path.is_file() and not template:
        raise ModelError(
            f"{model.path.name} has no chat template (no tokenizer.chat_template in its metadata)",
            "drop `chat=True`, or use a GGUF file of an instruction-tuned model that ships one",
        )
    config = tokenizer_config(model.path) if model.path.is_dir() else {}
    if template is None:
        template = find_chat_template(model.path, config)
    return render_chat(template, chat_messages(user, system), special_tokens(config))


def chat_tokenization(model: Model, user: str, system: str | None = None, truncate: bool = False) -> Tokenization:
    """The rendered chat, tokenized as transformers' apply_chat_template does (no special tokens
    added: the template writes them; those it writes are marked special)."""
    return tokenize(model.tokenizer, chat_text(model, user, system), max_tokens=model.spec.max_positions, truncate=truncate, add_special_tokens=False)
