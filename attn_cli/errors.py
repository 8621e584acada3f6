"""Domain errors. The library raises them; only the CLI turns them into messages and exit codes.

A message is written for the library's user: it names an option as a Python caller writes it, in
backquotes (`query_index`, `query=WORD`, `include_special=False`, `tokenize()`). The CLI puts
those in its own terms (--query-index, --query WORD, --no-special, `attn tokens`) with `phrased`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_NAMED = re.compile(r"`([^`\s=]+)(?:=([^`]*))?`")


def phrased(text: str, names: Mapping[str, str]) -> str:
    """`text` with each option it names in backquotes put as `names` says: the whole form first
    (`include_special=False` -> --no-special), else the name with its value (`query_index=N` ->
    --query-index N). What `names` does not know stays as written."""

    def one(m: re.Match) -> str:
        if m[0][1:-1] in names:
            return names[m[0][1:-1]]
        if m[1] in names:
            return names[m[1]] + (f" {m[2]}" if m[2] else "")
        return m[0]

    return _NAMED.sub(one, text)


class AttnError(Exception):
    """Base class: `message` names the problem, `fix` tells the user what to do about it."""

    code = "error"

    def __init__(self, message: str, fix: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __reduce__(self):
        # Whole across processes: a worker's error reaches the parent as it was raised, fix
        # included (an Exception pickles only its args).
        return type(self), (self.message, self.fix)

    def prefixed(self, prefix: str) -> AttnError:
        """The same error, its message led by `prefix` (which input it is about: "line 7: ")."""
        kind, (message, *rest) = self.__reduce__()
        return kind(prefix + message, *rest)

    def phrased(self, names: Mapping[str, str]) -> tuple[str, str]:
        """(message, fix) with the options they name in `names`' terms (see `phrased`)."""
        return phrased(self.message, names), phrased(self.fix, names)


class InputError(AttnError):
    """The text or an option is unusable: empty text, too long, layer or head out of range."""

    code = "bad_input"


class QueryNotFound(AttnError):
    """The query names no word (or occurrence, or position) of the text."""

    code = "query_not_found"

    def __init__(self, message: str, fix: str = "", candidates: list[str] | None = None) -> None:
        super().__init__(message, fix)
        self.candidates = candidates or []

    def __reduce__(self):
        return type(self), (self.message, self.fix, self.candidates)


class ModelError(AttnError):
    """The model folder is missing, incomplete, corrupt, or of an unsupported architecture."""

    code = "model_error"


class MissingExtra(AttnError):
    """An optional dependency (an `attn-cli[...]` extra) is needed but not installed."""

    code = "missing_extra"


class OutputFailed(AttnError):
    """The output cannot be written: stdout closed, a full disk, a file size limit."""

    code = "output_error"


class OptionError(InputError):
    """An option's value is unusable, or two options do not go together. Its message names the
    options as a Python caller writes them (`top_k=0`, `level='word'`); the CLI puts them as its
    flags (`cli/phrasing.py`)."""
