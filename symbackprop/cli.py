"""Command line: parses arguments, calls the stages, formats output. Errors exit 2 with one message."""
from __future__ import annotations

import argparse
import codecs
import importlib
import re
import sys

from . import __version__
from .errors import SymbackpropError

#: Subcommands; each lives in symbackprop/commands/<name>.py with add_parser(sub) and run(args) -> int.
COMMANDS = ("derive", "codegen", "gradcheck", "graph", "check", "grade", "relu", "serve")

EPILOG = """examples:
  symbackprop derive '0.5 * norm(W2 @ relu(W1 @ x + b) - y)**2' \\
      --shape W1=h,d --shape W2=k,h --shape x=d --shape b=h --shape y=k --steps
  symbackprop derive 'f(t) = t**2; g(t) = t; h(a, c) = a**2 + c**2; h(f(x), g(x))'

Run `symbackprop COMMAND --help` for each command's options."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):                        # usage errors: one message, exit 2
        self.print_usage(sys.stderr)
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)


def add_formula_arguments(p: argparse.ArgumentParser) -> None:
    """The options every formula-taking command shares."""
    p.add_argument("formula", help="the formula, e.g. '0.5 * norm(A @ x - b)**2' or '\\frac{1}{2}\\|A x - b\\|^2'; "
                                   "statements separated by ; or newlines")
    p.add_argument("--shape", "-s", action="append", default=[], metavar="NAME=DIMS",
                   help="shape of a variable, e.g. W1=h,d or x=3 (repeatable; undeclared names are scalars)")
    p.add_argument("--elementwise", "-e", action="append", default=[], metavar="NAME[,NAME]",
                   help="declare unspecified elementwise functions, e.g. Phi (their derivative prints as Phi')")
    p.add_argument("--function", "-f", action="append", default=[], metavar="NAME[,NAME]",
                   help="declare unspecified scalar functions of scalar arguments, e.g. f,g1,g2")
    p.add_argument("--notation", choices=("numpy", "math", "auto"), default="auto",
                   help="how the formula is written: numpy (Python syntax: @, .T, **), math (LaTeX, or the text "
                        "symbackprop prints: W x, xᵀ, ⊙, ‖x‖²), or auto (default): math when the text has a mark only "
                        "maths has (a backslash, ᵀ, ⊙, ^, ...) or names written together (W x)")


def split_names(values) -> list[str]:
    return [n.strip() for v in values for n in v.split(",") if n.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="symbackprop", description="Symbolic backprop: closed-form matrix gradients, "
                     "chain-rule steps, graphs, NumPy code and a checker for worked solutions.",
                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"symbackprop {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"symbackprop.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"symbackprop.commands.{name}":
                continue                             # not built yet
            raise
        p = module.add_parser(sub)
        p.set_defaults(run=module.run)
    return parser


def _option_strings(parser: argparse.ArgumentParser) -> set[str]:
    out = set(parser._option_string_actions)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                out |= _option_strings(sub)
    return out


def _protect_values(argv: list[str], options: set[str]) -> list[str]:
    """Formulas may start with a minus (`-x @ y`, `--claim '-outer(a, b)'`): argparse would take them
    for options. A leading space keeps them values; the formula parser ignores it."""
    out = []
    for tok in argv:
        flag = tok.split("=", 1)[0]
        if tok.startswith("-") and flag not in options and not _is_number(tok) and not re.fullmatch(r"--[A-Za-z][\w-]*", flag):
            tok = " " + tok
        out.append(tok)
    return out


def _is_number(tok: str) -> bool:
    try:
        float(tok)
        return True
    except ValueError:
        return False


def main(argv=None) -> int:
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = (s if s is None or is_unicode(s) else AsciiStream(s) for s in saved)
    try:
        return _main(argv)
    finally:
        sys.stdout, sys.stderr = saved


def _main(argv) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(_protect_values(argv, _option_strings(parser)))
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except SymbackpropError as e:
        print(_ascii_error(e) if isinstance(sys.stderr, AsciiStream) else e.format(), file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


# ----- terminals that are not UTF-8 -----
# Output is mathematics in Unicode (Wᵀ, ⊙, ‖x‖, 𝟙). Where stdout or stderr cannot encode it
# (PYTHONIOENCODING=ascii or latin-1, a legacy Windows console), everything written goes through one
# ASCII spelling, the same for every character in every command, instead of a UnicodeEncodeError.

ASCII = {
    "ᵀ": "^T", "·": "*", "⊙": "(.)", "−": "-", "‖": "||", "𝟙": "ones", "×": "x", "∂": "d", "ℓ": "L",
    "…": "...", "—": "--", "–": "-", "→": "->", "↦": "|->", "≈": "~=", "≤": "<=", "≥": ">=", "≠": "!=",
    "±": "+/-", "⟨": "<", "⟩": ">", "∇": "grad ", "ḡ": "gbar", "Σ": "sum", "Π": "prod", "λ": "lambda",
    "½": "1/2", "ʹ": "'", "σ": "sigma", "µ": "u", "μ": "u", "⊘": "./", "∘": "o",
    "✅": "[correct]", "☑": "[transposed]", "❌": "[wrong]", "⚠": "[!]", "\ufe0f": "",
    "₀": "_0", "₁": "_1", "₂": "_2", "₃": "_3", "₄": "_4", "₅": "_5", "₆": "_6", "₇": "_7", "₈": "_8", "₉": "_9",
    **{sub: "_" + plain for sub, plain in zip("ₐₑₒₓₕₖₗₘₙₚₛₜᵢⱼᵣᵤᵥ", "aeoxhklmnpstijruv")},   # sizes: 𝟙ₙ -> ones_n
    "\u00a0": " ", "‘": "'", "’": "'", "“": '"', "”": '"',
}
_SUPERSCRIPTS = "⁻⁰¹²³⁴⁵⁶⁷⁸⁹"
_SUPERSCRIPT_RUN = re.compile(f"[{_SUPERSCRIPTS}]+")


def asciify(text: str) -> str:
    """The ASCII spelling of printed output: Wᵀ -> W^T, a ⊙ b -> a (.) b, a ⊘ b -> a ./ b, 2·x -> 2*x,
    X⁻¹ -> X^(-1), X⁻ᵀ -> X^(-T), X^∘2 -> X.^2, ‖x‖² -> ||x||^2, 𝟙 -> ones, ∂ℓ/∂x -> dL/dx; anything else
    outside ASCII as \\N{NAME}.

    >>> asciify("∂ℓ/∂W = −2/n²·(X⁻¹)ᵀ ⊙ 𝟙    [n×n]")
    'dL/dW = -2/n^2*(X^(-1))^T (.) ones    [nxn]'
    """
    if text.isascii():
        return text

    def sup(m):
        s = m.group().translate(str.maketrans(_SUPERSCRIPTS, "-0123456789"))
        return f"^({s})" if "-" in s else f"^{s}"

    text = text.replace("⁻ᵀ", "^(-T)").replace("^∘", ".^")     # X⁻ᵀ, and X^∘2 (elementwise) as MATLAB's X.^2
    text = _SUPERSCRIPT_RUN.sub(sup, text)
    return "".join(ch if ch.isascii() else (ASCII[ch] if ch in ASCII else _fallback(ch)) for ch in text)


def _fallback(ch: str) -> str:
    import unicodedata
    plain = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
    return plain or "\\N{%s}" % unicodedata.name(ch, f"U+{ord(ch):04X}")


def is_unicode(stream) -> bool:
    """Whether `stream` can take any character (StringIO and other streams without an encoding can)."""
    enc = getattr(stream, "encoding", None)
    if not enc:
        return True
    try:
        return codecs.lookup(enc).name.startswith("utf")
    except LookupError:
        return False


def stdout_is_unicode() -> bool:
    return not isinstance(sys.stdout, AsciiStream) and is_unicode(sys.stdout)


class AsciiStream:
    """A text stream that writes the ASCII spelling (`asciify`) of everything to the stream it wraps."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(asciify(text))
        return len(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _ascii_error(e: SymbackpropError) -> str:
    """The error message in ASCII, with the caret still under the right characters."""
    if e.source is None or e.offset is None:
        return e.format()
    import copy
    off = max(0, min(e.offset, len(e.source)))
    before, span = asciify(e.source[:off]), asciify(e.source[off:off + e.length])
    e = copy.copy(e)
    e.source, e.offset, e.length = before + span + asciify(e.source[off + e.length:]), len(before), max(1, len(span))
    lines = e.format().split("\n")
    for i, line in enumerate(lines[:-1]):              # the caret line sits under the shown line; a leading …
        if line.startswith("  …") and lines[i + 1].lstrip(" ").startswith("^"):       # becomes three dots
            lines[i + 1] = "  " + lines[i + 1]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
