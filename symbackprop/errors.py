"""Errors users see: one message that says what, where (with a caret) and how to fix."""
from __future__ import annotations

import importlib

#: The front ends a hint can be worded for: the command line, and the web page (where shapes go into the
#: page's Shapes field, not a --shape flag).
FRONTS = ("cli", "web")


class Hint(str):
    """A hint worded for the command line (the string itself), carrying the web page's wording in `web`.

    It is a str, so every caller that prints or compares a hint sees the command-line text unchanged;
    joining it with `+` keeps both wordings. `SymbackpropError.hint_for("web")` picks the page's."""

    def __new__(cls, cli: str, web: str):
        self = super().__new__(cls, cli)
        self.web = web
        return self

    def worded(self, front: str) -> str:
        return self.web if front == "web" else str(self)

    def __add__(self, other):
        return Hint(str(self) + str(other), self.web + _wording(other, "web"))

    def __radd__(self, other):
        return Hint(str(other) + str(self), _wording(other, "web") + self.web)

    def __reduce__(self):
        return Hint, (str(self), self.web)


def _wording(hint, front: str) -> str:
    return hint.worded(front) if isinstance(hint, Hint) else str(hint)


class SymbackpropError(Exception):
    """Base class of every error the CLI reports as a clean message (exit 2)."""

    exit_code = 2

    def __init__(self, message: str, *, source: str | None = None, offset: int | None = None,
                 length: int = 1, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.source = source
        self.offset = offset
        self.length = max(1, length)
        self.hint = hint

    def located(self, source: str, offset: int | None, length: int = 1) -> "SymbackpropError":
        """Attach a position in `source` unless one is already known."""
        if self.source is None and offset is not None:
            self.source, self.offset, self.length = source, offset, max(1, length)
        return self

    def hint_for(self, front: str = "cli") -> str | None:
        """The hint worded for `front` ("cli" or "web"; see Hint)."""
        if front not in FRONTS:
            raise ValueError(f"front must be one of {FRONTS}, got {front!r}")
        return None if self.hint is None else _wording(self.hint, front)

    def format(self, front: str = "cli") -> str:
        lines = [f"error: {self.message}"]
        if self.source is not None and self.offset is not None:
            lines += _caret(self.source, self.offset, self.length)
        hint = self.hint_for(front)
        if hint:
            lines.append(f"hint: {hint}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()


class FormulaError(SymbackpropError):
    """The formula text is not valid in the formula language."""


class ShapeError(SymbackpropError):
    """Shapes of a sub-expression do not fit together."""


class LimitError(SymbackpropError):
    """An input exceeds one of the documented resource limits."""


class InternalError(SymbackpropError):
    """A self-check failed: a bug in symbackprop, never shown as an answer."""

    exit_code = 3


def _caret(source: str, offset: int, length: int) -> list[str]:
    """Show the line of `source` holding `offset`, with a caret under the span."""
    offset = max(0, min(offset, len(source)))
    start = source.rfind("\n", 0, offset) + 1
    end = source.find("\n", offset)
    end = len(source) if end < 0 else end
    line = source[start:end]
    col = offset - start
    # Keep very long lines readable: show a window around the caret.
    if len(line) > 100:
        lo = max(0, col - 50)
        shown = ("…" if lo else "") + line[lo:lo + 100] + ("…" if lo + 100 < len(line) else "")
        col = col - lo + (1 if lo else 0)
        line = shown
    width = max(1, min(length, len(line) - col))
    printable = "".join(ch if ch.isprintable() else "?" for ch in line)
    return ["  " + printable, "  " + " " * col + "^" * width]


class MissingExtra(SymbackpropError):
    """A command needs the packages of an optional extra (pyproject.toml) that is not installed."""


def require_extra(extra: str, modules, what: str) -> None:
    """Raise MissingExtra (exit 2) naming `extra` unless every module in `modules` imports."""
    missing = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise MissingExtra(f"{what} needs {' and '.join(missing)}, which is not installed (the optional "
                           f"`{extra}` extra)",
                           hint=f"pip install 'symbackprop[{extra}]' (in a checkout: pip install '.[{extra}]')")
