"""The math notation's text level: which notation a text is in, the Lark grammar (grammar/math.lark)
with its post-lexer, names as written (W_1, x_{4}, \\mathrm{relu}, α), statements, and syntax errors
with the caret and a hint. parse_math.py builds the parsed tree into expression nodes."""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from . import rules_math as M
from .errors import FormulaError, LimitError
from .program import MAX_NESTING

try:
    from lark import Lark, Token, Tree
    from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
except ImportError:                                   # pragma: no cover - lark is a dependency
    Lark = None

# ----- which notation -----

#: Text that only the math notation has: a backslash (not a line continuation), the printed symbols
#: (ᵀ ⁻¹ ² ⊙ ⊘ 𝟙 ‖ · − ∂ ∇ √), ^ (Python's xor, never a formula), Greek letters, $.
_MATH_MARKERS = re.compile(r"\\(?![ \t]*(?:\r?\n|\Z))|[ᵀ⁻⁰¹²³⁴⁵⁶⁷⁸⁹⊙⊘∘𝟙‖·⋅−∂∇√×]|\^|[α-ωΑ-Ωϕϑϵ]|\$")
#: Text that only the NumPy notation has: @, **, .T, np.
_NUMPY_MARKERS = re.compile(r"@|\*\*|\.T(?![A-Za-z0-9_])|\bnp\.")

NOTATIONS = ("numpy", "math", "auto")


def detect_notation(text: str) -> str:
    """'math' when the text has a mark only the math notation has, else 'numpy'.

    Marks of the math notation: a backslash (LaTeX), a superscript (ᵀ ⁻¹ ²), ⊙ ⊘ ∘ 𝟙 ‖ · − ∂ ∇ √ ×, ^, a
    Greek letter or $. Text with none of these is NumPy notation (the caller may still try the math
    notation when the NumPy notation finds a syntax error: `W x` has two names written together).

    >>> detect_notation("W2.T @ x4 * relu'(x1)"), detect_notation("W_2^\\\\top x_4"), detect_notation("W2ᵀ x4")
    ('numpy', 'math', 'math')
    """
    if not isinstance(text, str):
        return "numpy"
    return "math" if _MATH_MARKERS.search(_COMMENT.sub("", text)) else "numpy"


_COMMENT = re.compile(r"#[^\n]*")


def check_notation(notation: str) -> str:
    if notation not in NOTATIONS:
        raise FormulaError(f"unknown notation {notation!r}", hint="the notation is numpy, math or auto")
    return notation


# ----- the grammar -----

_OPERAND_END = {"NUMBER", "NAME", "COMMAND", "WRAPPED", "GREEK", "RPAR", "RSQB", "RBRACE", "NORM_CLOSE",
                "ABS_CLOSE", "TRANSPOSE", "INVERSE", "INVERSE_T", "SUPERSCRIPT", "PRIMES", "ONES", "NORM_SUB",
                "LOGDET", "FRAC_DIGITS"}


_CALL_HEADS = {"NAME", "COMMAND", "WRAPPED", "GREEK", "NABLA", "PRIMES", "LOGDET"}
_CALL_GAP = re.compile(r"(\\(left|[bB]igg?l?)(?![A-Za-z]))?\Z")


class _Bars:
    """Post-lexer. Each ‖ (or \\|, ||) and | opens or closes by position: it closes the innermost open one
    of its kind when it follows the end of an operand; otherwise it opens one (‖a·‖u‖ ⊙ v‖). A ( right
    after a name (nothing between but \\left or \\big) opens its arguments: CALL_OPEN."""

    always_accept = ("NORM_BAR", "ABS_BAR", "LPAR")
    text = ""

    def process(self, stream):
        stack: list[str] = []
        prev = prev_tok = prev_before = None
        for tok in stream:
            if tok.type == "LPAR" and prev in _CALL_HEADS and _CALL_GAP.match(
                    self.text[prev_tok.end_pos:tok.start_pos]) and (prev != "PRIMES" or prev_before in _CALL_HEADS):
                tok = Token.new_borrow_pos("_CALL_OPEN", tok.value, tok)
            if tok.type in ("NORM_BAR", "ABS_BAR"):
                kind = "NORM" if tok.type == "NORM_BAR" else "ABS"
                text = tok.value
                explicit_open = text.startswith(("\\lVert", "\\lvert"))
                explicit_close = text.startswith(("\\rVert", "\\rvert"))
                if explicit_close or (not explicit_open and prev in _OPERAND_END and kind in stack):
                    while stack and stack[-1] != kind:          # |a ‖b| ...: let the parser report it
                        break
                    if stack and stack[-1] == kind:
                        stack.pop()
                    tok = Token.new_borrow_pos(kind + "_CLOSE", tok.value, tok)
                else:
                    stack.append(kind)
                    tok = Token.new_borrow_pos(kind + "_OPEN", tok.value, tok)
            prev_before, prev, prev_tok = prev, tok.type, tok
            yield tok


@lru_cache(maxsize=1)
def grammar() -> "Lark":
    """The Lark parser of the math notation (built once: the LALR tables take a moment)."""
    if Lark is None:                                  # pragma: no cover
        raise FormulaError("the math notation needs the `lark` package", hint="pip install lark")
    text = resources.files("symbackprop").joinpath("grammar/math.lark").read_text(encoding="utf-8")
    return Lark(text, parser="lalr", lexer="contextual", postlex=_POSTLEX, propagate_positions=True,
                maybe_placeholders=False)


_POSTLEX = _Bars()


# ----- names -----

_SUB_RE = re.compile(r"_\s*(\{((?:[^{}]|\{[^{}]*\})*)\}|[A-Za-z0-9]+)")
_WRAP_RE = re.compile(r"\\(?:operatorname\*?|mathrm|mathit|mathbf|mathsf|mathcal|boldsymbol|bm|text|textrm|textnormal)"
                      r"\s*\{([^{}]*)\}")


@dataclass(frozen=True)
class Name:
    """A name as written: its base (W, alpha, relu) and subscripts, LaTeX wrappers removed."""

    base: str
    subs: tuple[str, ...]
    braced: bool                  # a subscript was written in braces (x_{12}: never split)
    command: bool = False         # written as a LaTeX command (\alpha, \log, \operatorname{tr})
    index: str = ""               # a superscript in parentheses: W^{(2)} (the handout's layer index)
    transposed: bool = False      # x^{(4)\top}: the index and a transpose in one superscript

    @property
    def canonical(self) -> str:
        """W_1 -> W1, x_{4} -> x4, W_{1,a} -> W1_a, x_hat -> x_hat (the usual subscript naming, inverted);
        W^{(2)} -> W2."""
        out = self._subscripted
        if self.index:
            out += self.index if self.index.isdigit() else "_" + self.index
        return out

    @property
    def _subscripted(self) -> str:
        out = self.base
        for sub in self.subs:
            digits, _, rest = sub.partition(",")
            if sub.isdigit():
                out += sub
            elif rest and digits.isdigit():
                out += f"{digits}_{rest.replace(',', '_')}"
            else:
                out += "_" + sub.replace(",", "_")
        return out

    @property
    def identifier(self) -> str:
        """The name as the formula language spells it with underscores kept (x_1 stays x_1)."""
        return self.base + "".join("_" + s.replace(",", "_") for s in self.subs) + (
            "_" + self.index if self.index else "")


def _clean_sub(s: str) -> str:
    s = _WRAP_RE.sub(lambda m: m.group(1), s)
    return re.sub(r"\s+", "", s).replace("\\_", "_")


def read_name(tok: "Token") -> Name:
    """The Name a NAME, COMMAND, WRAPPED or GREEK token spells."""
    text, kind = str(tok), tok.type
    subs_at = text.find("_") if kind in ("NAME", "GREEK") else None
    if kind == "WRAPPED":
        m = _WRAP_RE.match(text)
        base, rest, command = _clean_sub(m.group(1)), text[m.end():], True
    elif kind == "COMMAND":
        m = re.match(r"\\([A-Za-z]+)", text)
        base, rest, command = m.group(1), text[m.end():], True
        base = M.VARIANT_GREEK.get(base, base)
    elif kind == "GREEK":
        base, rest, command = M.GREEK_LETTERS.get(text[0], text[0]), text[1:], False
    else:
        m = re.match(r"[A-Za-z][A-Za-z0-9]*", text)
        base, rest, command = m.group(0), text[m.end():], False
    del subs_at
    index, transposed = "", False
    m = _INDEX_RE.search(rest)
    if m is not None:
        index, transposed, rest = m.group(1), m.group(2) is not None, rest[:m.start()]
    subs, braced = [], False
    for m in _SUB_RE.finditer(rest):
        braced = braced or m.group(2) is not None
        subs.append(_clean_sub(m.group(2) if m.group(2) is not None else m.group(1)))
    return Name(base, tuple(s for s in subs if s), braced, command, index, transposed)


_INDEX_RE = re.compile(r"\^\s*\{\s*\(\s*([A-Za-z0-9]+)\s*\)\s*(\\top|\\intercal|T|\\mathsf\s*\{\s*T\s*\}|"
                       r"\\mathrm\s*\{\s*T\s*\})?\s*\}\s*\Z")
_ONE_NAME = re.compile(r"\s*(?:(?P<WRAPPED>\\(?:mathbf|mathrm|mathit|mathsf|boldsymbol|bm|operatorname)\s*\{[^{}]*\})"
                       r"|(?P<COMMAND>\\[A-Za-z]+)|(?P<GREEK>[α-ωΑ-Ωϕϑϵℓ])|(?P<NAME>[A-Za-z][A-Za-z0-9]*))"
                       r"(?P<rest>(?:_\s*(?:\{(?:[^{}]|\{[^{}]*\})*\}|[A-Za-z0-9]+)|\^\s*\{[^{}]*\})*)\s*\Z")
OBJECTIVE = "ℓ"


def read_derivative(text: str):
    """The names in ∂ℓ/∂x4 or \\frac{\\partial \\ell}{\\partial \\mathbf{x}^{(4)}}: (numerator, denominator), each a
    Name (the objective ℓ, \\ell, as Name("ℓ")), or None where either is not one name."""
    m = re.match(r"\\[dt]?frac\s*\{\s*\\partial\s*(.*)\}\s*\{\s*\\partial\s*(.*)\}\s*\Z", text, re.S)
    if m is None:
        m = re.match(r"∂(.*)/∂(.*)\Z", text)
    num, den = (_one_name(m.group(1)), _one_name(m.group(2))) if m else (None, None)
    return num, den


def _one_name(text: str):
    if text.strip() in ("ℓ", "\\ell", "L"):
        return Name(OBJECTIVE, (), False)
    m = _ONE_NAME.match(text)
    if m is None:
        return None
    kind = next(k for k in ("WRAPPED", "COMMAND", "GREEK", "NAME") if m.group(k))
    return read_name(Token(kind, m.group(kind) + m.group("rest")))


_LHS_RE = re.compile(r"\s*(?P<name>(?:[A-Za-z][A-Za-z0-9]*|\\[A-Za-z]+|\\(?:mathrm|mathbf|boldsymbol|bm|mathit)\s*\{[^{}]*\}"
                     r"|[α-ωΑ-Ωϕϑϵ])(?:_\s*(?:\{(?:[^{}]|\{[^{}]*\})*\}|[A-Za-z0-9]+))*"
                     r"(?:\^\s*\{\s*\(\s*[A-Za-z0-9]+\s*\)\s*\})?|ℓ)(?P<args>\s*\([^()]*\))?\s*(?::=|=)(?!=)")


def assignment(text: str):
    """`name = …` at the start of a math-notation statement: (canonical name, its offset, the offset of
    the expression), or None. `x_{1} = W_1 x + b` names x1; `\\ell = …` and `ℓ = …` name the objective
    (None as the name)."""
    m = _LHS_RE.match(text)
    if m is None:
        return None
    raw = m.group("name")
    if raw in ("ℓ", "\\ell"):
        return None, m.start("name"), m.end()
    if m.group("args"):                           # f(x) = ...: a definition, not an assignment (ℓ(x) = ... is)
        return None
    if raw.startswith("\\") and not raw.startswith(("\\mathrm", "\\mathbf", "\\boldsymbol", "\\bm", "\\mathit")):
        command = re.match(r"\\([A-Za-z]+)", raw).group(1)
        if command == "ell":
            return None, m.start("name"), m.end()
        if command not in M.GREEK_COMMANDS:
            return None
        kind = "COMMAND"
    elif raw.startswith("\\"):
        kind = "WRAPPED"
    elif raw[0] in M.GREEK_LETTERS:
        kind = "GREEK"
    else:
        kind = "NAME"
    return read_name(Token(kind, raw)).canonical, m.start("name"), m.end()


def split_statements(source: str):
    """Yield (text, offset) for each statement of a math-notation formula.

    Statements are separated by `;`, by `\\\\` (a LaTeX line break) and by line breaks, outside brackets
    and `\\left … \\right`; a line that begins with an operator, or follows a line that ends with one,
    continues the statement. `%` and `#` start comments."""
    depth, start, i, n = 0, 0, 0, len(source)
    pieces = []
    while i <= n:
        ch = source[i] if i < n else ";"
        if i < n and ch in "%#" and not source[i - 1:i] == "\\":
            j = source.find("\n", i)
            j = n if j < 0 else j
            pieces.append((source[start:i], start))
            start = i = j
            continue
        if source.startswith("\\left", i) and not source[i + 5:i + 6].isalpha():
            depth += 1
        elif source.startswith("\\right", i) and not source[i + 6:i + 7].isalpha():
            depth = max(0, depth - 1)
        elif ch in "([{" and source[i - 1:i] != "\\":
            depth += 1
        elif ch in ")]}" and source[i - 1:i] != "\\":
            depth = max(0, depth - 1)
        if i == n or (depth == 0 and (ch == ";" or source.startswith("\\\\", i) or ch == "\n")):
            pieces.append((source[start:i], start))
            step = 2 if i < n and source.startswith("\\\\", i) else 1
            start = i + step
            i += step
            continue
        i += 1
    merged: list[list] = []
    for text, offset in pieces:
        if not text.strip():
            continue
        if merged and (_ends_with_operator(merged[-1][0]) or _begins_with_operator(text)):
            prev_text, prev_off = merged[-1]
            merged[-1] = [source[prev_off:offset + len(text)], prev_off]
            continue
        merged.append([text, offset])
    for text, offset in merged:
        yield text, offset


_OPERATOR_END = re.compile(r"(?:[-+−⊙⊘∘·⋅×*/=^_,(\[{]|\\(?:cdot|odot|oslash|times|circ|frac|,))\s*\Z")
_OPERATOR_BEGIN = re.compile(r"\A\s*(?:[-+−⊙⊘∘·⋅×*/^)\]}]|\\(?:cdot|odot|oslash|times|circ|right)(?![A-Za-z]))")


def _ends_with_operator(text: str) -> bool:
    return bool(_OPERATOR_END.search(text))


def _begins_with_operator(text: str) -> bool:
    return bool(_OPERATOR_BEGIN.match(text))


def primes_of(tok) -> str:
    s = str(tok)
    return "'" * (s.count("'") + s.count("′") + s.count("ʹ") + s.count("\\prime"))


SUPERSCRIPT_DIGITS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺", "0123456789-+")


def sum_index(text: str) -> str:
    m = re.match(r"\\sum\s*_\s*(?:\{\s*([A-Za-z])|([A-Za-z]))", text)
    return m.group(1) or m.group(2)


def tree_depth(tree) -> int:
    best, stack = 0, [(tree, 1)]
    while stack:
        node, d = stack.pop()
        best = max(best, d)
        if isinstance(node, Tree):
            step = 0 if node.data in ("arguments", "group") else 1
            stack.extend((c, d + step) for c in node.children)
    return best


def parse_tree(text: str, source: str, offset: int):
    """The Lark tree of one math-notation expression, or a FormulaError with the caret and a hint."""
    try:
        lark = grammar()
        _POSTLEX.text = text
        return lark.parse(text)
    except UnexpectedCharacters as e:
        where = offset + e.pos_in_stream
        raise FormulaError(f"syntax error: unexpected character `{text[e.pos_in_stream]}`", source=source,
                           offset=where, hint=_char_hint(text, e.pos_in_stream)) from None
    except UnexpectedToken as e:
        tok = e.token
        if tok.type == "$END":
            raise FormulaError("syntax error: the expression ends too early", source=source,
                               offset=offset + len(text.rstrip()),
                               hint=_end_hint(text)) from None
        where, length = offset + (tok.start_pos or 0), max(1, len(str(tok)))
        if str(tok) == "*" and text[tok.start_pos - 1:tok.start_pos] == "*":      # `**`: point at both
            where, length, tok = where - 1, 2, Token.new_borrow_pos(tok.type, "**", tok)
        raise FormulaError(f"syntax error: unexpected `{tok}`", source=source, offset=where,
                           length=length, hint=_token_hint(text, tok, e.expected)) from None
    except UnexpectedEOF:
        raise FormulaError("syntax error: the expression ends too early", source=source,
                           offset=offset + len(text.rstrip()), hint=_end_hint(text)) from None
    except UnexpectedInput as e:                       # pragma: no cover - the cases above are all Lark raises
        raise FormulaError(f"syntax error: {e}", source=source, offset=offset) from None
    except RecursionError:
        raise LimitError(f"the formula is nested too deeply (limit {MAX_NESTING} levels)") from None




def _mixed(text: str) -> str:
    """`, and the text also has LaTeX (`\\frac`)`: what makes the text read as maths, for hints."""
    m = _MATH_MARKERS.search(_COMMENT.sub("", text))
    if m is None:
        return ""
    mark = re.match(r"\\[A-Za-z]+|.", text[m.start():]).group(0)
    return f"; this formula is read in math notation (it has `{mark}`), so write it all in one notation"


def _char_hint(text: str, i: int) -> str:
    c = text[i]
    if c == "@":
        return ("`@` is NumPy notation; in math notation write a product by juxtaposition (W x, W_2^\\top x_4), "
                "or pass --notation numpy for NumPy notation" + _mixed(text))
    if text.startswith(".T", i):
        return ("`.T` is NumPy notation; in math notation a transpose is xᵀ, x^T or x^\\top, or pass "
                "--notation numpy for NumPy notation" + _mixed(text))
    if c == "'":
        return "a prime marks a function's derivative: relu'(x), \\sigma'(z), \\Phi'(x_1)"
    return "the math notation reads LaTeX (\\frac, ^\\top, \\odot, \\|…\\|) and symbackprop's printed text " \
           "(Wᵀ x ⊙ relu'(z), ‖x‖²); see docs/formula-language.md, Math notation"


def _token_hint(text: str, tok, expected) -> str:
    s = str(tok)
    if s == "**" or text.startswith("**", tok.start_pos):
        return ("`**` is NumPy notation; in math notation a power is x^2 or x², or pass --notation numpy for "
                "NumPy notation" + _mixed(text))
    if tok.type in ("NORM_CLOSE", "ABS_CLOSE", "NORM_OPEN", "ABS_OPEN"):
        return "a norm is ‖x‖ (\\|x\\|, \\lVert x\\rVert), an absolute value |x|; check that they pair up"
    if tok.type in ("RPAR", "RBRACE", "RSQB"):
        return "check that the brackets pair up"
    if tok.type == "EQUAL":
        return "only a statement's first name may be assigned (z = W x); compare with = elsewhere is not a formula"
    return "check the operators between the terms; the math notation is described in " \
           "docs/formula-language.md (Math notation)"


def _end_hint(text: str) -> str:
    opened = sum(text.count(c) for c in "([{") - sum(text.count(c) for c in ")]}")
    if opened > 0:
        return "a bracket is not closed"
    if text.count("‖") % 2 or text.count("\\|") % 2:
        return "a norm ‖…‖ is not closed"
    return "an operand is missing at the end"


def bracket_depth(text: str) -> int:
    best = depth = 0
    for ch in text:
        if ch in "([{":
            depth += 1
            best = max(best, depth)
        elif ch in ")]}":
            depth = max(0, depth - 1)
    return best

