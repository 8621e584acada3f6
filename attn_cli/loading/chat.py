"""Chat templates: the model's own Jinja template turns messages into the text it was trained on.

The template comes from the model folder (`chat_template.jinja`, else `tokenizer_config.json`'s
`chat_template`, a string or a list of named templates). It is rendered as transformers'
`apply_chat_template` does: Jinja's immutable sandbox (templates from the hub are untrusted
code), trim_blocks and lstrip_blocks, the loop-controls extension, a `tojson` that does not
escape HTML, `raise_exception` and `strftime_now`, the tokenizer's special tokens as variables,
and `add_generation_prompt=True`. The rendered text is tokenized without adding special tokens
(the template writes them), again as transformers does.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from ..errors import InputError, ModelError

SPECIAL_TOKEN_NAMES = ("bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token")


def tokenizer_config(folder: Path) -> dict:
    """tokenizer_config.json of a model folder, or {} when it has none."""
    path = folder / "tokenizer_config.json"
    if not path.is_file():
        return {}
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path}: {exc}", "re-download tokenizer_config.json") from None
    except RecursionError:
        raise ModelError(f"cannot read {path}: its JSON is nested too deeply", "re-download tokenizer_config.json") from None
    return config if isinstance(config, dict) else {}


def find_chat_template(folder: Path, config: dict | None = None) -> str:
    """The folder's chat template source; a clear error when the model has none."""
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    template = (tokenizer_config(folder) if config is None else config).get("chat_template")
    if isinstance(template, list):  # [{"name": "default", "template": ...}, {"name": "tool_use", ...}]
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default") or next(iter(named.values()), None)
    if not isinstance(template, str) or not template.strip():
        raise ModelError(
            f"the model in {folder} has no chat template (no chat_template.jinja, no chat_template in tokenizer_config.json)",
            "drop `chat=True`, or use an instruction-tuned model that ships a chat template",
        )
    return template


def special_tokens(config: dict) -> dict[str, str]:
    """bos_token, eos_token, ... as strings (tokenizer_config.json may store {"content": ...})."""
    found = {}
    for name in SPECIAL_TOKEN_NAMES:
        value = config.get(name)
        if isinstance(value, dict):
            value = value.get("content")
        if isinstance(value, str):
            found[name] = value
    return found


def chat_messages(user: str, system: str | None = None) -> list[dict]:
    """One user message, after a system message when one is given."""
    if not user.strip():
        raise InputError("the text is empty", 'give a message, e.g. "What is the capital of France?"')
    return ([{"role": "system", "content": system}] if system is not None else []) + [{"role": "user", "content": user}]


def render_chat(template: str, messages: list[dict], variables: dict[str, str] | None = None) -> str:
    """The template rendered for `messages` with the generation prompt (the assistant's turn) added."""
    import jinja2
    from jinja2.ext import Extension, loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class GenerationBlock(Extension):
        """`{% generation %}…{% endgeneration %}` marks the assistant's text; rendered as is."""

        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

        def _render(self, caller):
            return caller()

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[GenerationBlock, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    try:
        return env.from_string(template).render(messages=messages, add_generation_prompt=True, **(variables or {}))
    except jinja2.exceptions.SecurityError as exc:
        raise ModelError(f"the chat template tried something the sandbox forbids: {exc}", "use the model's official chat template") from None
    except jinja2.exceptions.TemplateError as exc:
        raise ModelError(f"the chat template failed: {exc}", "check the model's chat template, or drop `chat=True` (or `system`)") from None
