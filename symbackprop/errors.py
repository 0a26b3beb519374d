"""Errors users see: one message that says what, where (with a caret) and how to fix."""
from __future__ import annotations

import importlib


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

    def format(self) -> str:
        lines = [f"error: {self.message}"]
        if self.source is not None and self.offset is not None:
            lines += _caret(self.source, self.offset, self.length)
        if self.hint:
            lines.append(f"hint: {self.hint}")
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
