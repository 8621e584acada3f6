"""Domain errors. The library raises them; only the CLI turns them into messages and exit codes."""

from __future__ import annotations


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
