"""The "math" notation: LaTeX, and the Unicode text symbackprop prints, read into expression nodes.

`W_2^\\top x_4 \\odot \\Phi'(x_1)`, `(W2ᵀ x4 ⊙ relu'(x1)) xᵀ` and `\\frac{1}{2}\\|W x - y\\|^2` are read
by a Lark grammar (grammar/math.lark, LALR) into a syntax tree; this module builds the tree into the
same whitelisted expression nodes the NumPy notation builds: names, numbers and function calls go
through the NumPy notation's own visitor (parse._Ctx, on syntax-tree nodes made here, never from
text), products and the elementwise operators through the builders of expr.py and the rule table.
User text never reaches eval, exec, sympify, parse_expr or SymPy's parse_latex.

What the notation means (docs/formula-language.md, "Math notation"):

- Vectors are columns; `xᵀ` is a row. Juxtaposition (and `·`, `\\cdot`, `\\,`, `*`, which bind looser)
  is the product: scalar·anything, A B, A x, u vᵀ (outer), uᵀv (inner), uᵀA (a row).
- `⊙ ∘ \\odot` and `⊘ / \\oslash \\frac` are elementwise; a row may meet every row of a matrix (NumPy's
  broadcasting), nothing else broadcasts. Powers `x²`, `x^2`, `X^{k}` are elementwise, as symbackprop
  prints them; `X⁻¹`, `X^{-1}` is the inverse of a square matrix (of a scalar, its reciprocal).
- `𝟙` (`\\mathbf{1}`) and `I` take the size the context gives them (`X W + 𝟙 bᵀ`, `A + I`).
- A run of letters is a declared name if it is one (`xy` declared, or a variable already used);
  otherwise names written together, if it splits into declared names (`Wx` is W x when W and x are
  declared); otherwise a new name. Sizes from the shapes are numbers (`2x/n`).
"""
from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from types import SimpleNamespace
from typing import Callable

import sympy

from . import expr as E
from . import rules_math as M
from .errors import FormulaError, LimitError, ShapeError, SymbackpropError
from .expr import Node, format_shape

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
    return "math" if _MATH_MARKERS.search(text) else "numpy"


def check_notation(notation: str) -> str:
    if notation not in NOTATIONS:
        raise FormulaError(f"unknown notation {notation!r}", hint="the notation is numpy, math or auto")
    return notation


# ----- the grammar -----

_OPERAND_END = {"NUMBER", "NAME", "COMMAND", "WRAPPED", "GREEK", "RPAR", "RSQB", "RBRACE", "NORM_CLOSE",
                "ABS_CLOSE", "TRANSPOSE", "INVERSE", "INVERSE_T", "SUPERSCRIPT", "PRIMES", "ONES", "NORM_SUB",
                "LOGDET", "FRAC_DIGITS"}


class _Bars:
    """Post-lexer: each ‖ (or \\|, ||) and | opens or closes by position. It closes the innermost open one
    of its kind when it follows the end of an operand; otherwise it opens one (‖a·‖u‖ ⊙ v‖)."""

    always_accept = ("NORM_BAR", "ABS_BAR")

    def process(self, stream):
        stack: list[str] = []
        prev = None
        for tok in stream:
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
            prev = tok.type
            yield tok


@lru_cache(maxsize=1)
def grammar() -> "Lark":
    """The Lark parser of the math notation (built once: the LALR tables take a moment)."""
    if Lark is None:                                  # pragma: no cover
        raise FormulaError("the math notation needs the `lark` package", hint="pip install lark")
    text = resources.files("symbackprop").joinpath("grammar/math.lark").read_text(encoding="utf-8")
    return Lark(text, parser="lalr", lexer="contextual", postlex=_Bars(), propagate_positions=True,
                maybe_placeholders=False)


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

    @property
    def canonical(self) -> str:
        """W_1 -> W1, x_{4} -> x4, W_{1,a} -> W1_a, x_hat -> x_hat (the usual subscript naming, inverted)."""
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
        return self.base + "".join("_" + s.replace(",", "_") for s in self.subs)


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
    subs, braced = [], False
    for m in _SUB_RE.finditer(rest):
        braced = braced or m.group(2) is not None
        subs.append(_clean_sub(m.group(2) if m.group(2) is not None else m.group(1)))
    return Name(base, tuple(s for s in subs if s), braced, command)


_LHS_RE = re.compile(r"\s*(?P<name>(?:[A-Za-z][A-Za-z0-9]*|\\[A-Za-z]+|\\(?:mathrm|mathbf|boldsymbol|bm|mathit)\s*\{[^{}]*\}"
                     r"|[α-ωΑ-Ωϕϑϵ])(?:_\s*(?:\{(?:[^{}]|\{[^{}]*\})*\}|[A-Za-z0-9]+))*|ℓ)\s*(?::=|=)(?!=)")


def assignment(text: str):
    """`name = …` at the start of a math-notation statement: (canonical name, its offset, the offset of
    the expression), or None. `x_{1} = W_1 x + b` names x1; `\\ell = …` and `ℓ = …` name the objective
    (None as the name)."""
    m = _LHS_RE.match(text)
    if m is None:
        return None
    raw = m.group("name")
    if raw in ("ℓ", "\\ell", "L") and raw != "L":
        return None, m.start("name"), m.end()
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


# ----- values while building: nodes with an orientation, and 𝟙 / I of a size still to come -----

SCALAR, COL, ROW, MAT, FLEX = "scalar", "column", "row", "matrix", "column or matrix"


@dataclass(frozen=True)
class Val:
    """A built operand. `node` is the expression (a row is its vector, with kind ROW); a pending value
    (𝟙, I, and what is built from them before anything fixes their size) has node None, `dims` with
    None where the size is not known yet, and `make(dims)` that builds it once the dims are known."""

    kind: str
    node: Node | None = None
    dims: tuple = ()
    make: Callable | None = None
    what: str = ""                # for messages: 𝟙 or I
    entry: bool = False           # inside \sum_i: built from names subscripted by the index
    eye: Node | None = None       # s when this is s·I (I B = s·B needs no size)
    alts: tuple = ()              # kind FLEX: the readings still possible (𝟙 is a column or a matrix)

    @property
    def pending(self) -> bool:
        return self.node is None

    def build(self, dims=None) -> Node:
        if self.node is not None:
            return self.node
        dims = tuple(self.dims if dims is None else dims)
        return self.make(dims)


def _val(node: Node, row: bool = False, entry: bool = False) -> Val:
    kind = {0: SCALAR, 1: ROW if row else COL, 2: MAT}[node.ndim]
    return Val(kind, node, tuple(node.shape), entry=entry)


def _words(v: Val) -> str:
    dims = ["?" if d is None else str(d) for d in v.dims]
    if v.kind == SCALAR:
        return "a scalar"
    if v.kind == COL:
        return f"a column of length {dims[0]}"
    if v.kind == ROW:
        return f"a row of length {dims[0]}"
    return f"a {dims[0]}×{dims[1]} matrix"


class _Failure(Exception):
    """A building error without a position yet (the caller knows the span)."""

    def __init__(self, message, hint=None, cls=ShapeError):
        super().__init__(message)
        self.message, self.hint, self.cls = message, hint, cls


def _unify(a, b):
    """Two dims that must be equal; None is unknown. Returns the dim, or raises _Failure."""
    if a is None:
        return b
    if b is None or a == b:
        return a
    if E.shapes_equal((a,), (b,)):
        return a
    raise _Failure(f"sizes {a} and {b} differ")


# ----- readings of 𝟙: a column or a matrix of ones, until the context decides -----

def _either(f, *vals):
    """f over every combination of the operands' readings; the readings that fail drop out."""
    results, failure = [], None

    def combos(i, chosen):
        nonlocal failure
        if i == len(vals):
            try:
                results.append(f(*chosen))
            except _Failure as e:
                failure = failure or e
            return
        for alt in (vals[i].alts or (vals[i],)):
            combos(i + 1, chosen + [alt])
    combos(0, [])
    flat, kinds = [], set()
    for r in results:
        for alt in (r.alts or (r,)):
            if alt.kind not in kinds:
                kinds.add(alt.kind)
                flat.append(alt)
    if not flat:
        raise failure
    return flat[0] if len(flat) == 1 else Val(FLEX, None, (), None, flat[0].what, alts=tuple(flat))


def _flexible(*vals) -> bool:
    return any(v.alts for v in vals)


def ones_value() -> Val:
    """𝟙: a column of ones or a matrix of ones, of a size the context gives."""
    return Val(FLEX, None, (), None, "𝟙", alts=(Val(COL, None, (None,), E.ones, "𝟙"),
                                                 Val(MAT, None, (None, None), E.ones, "𝟙")))


def choose(v: Val, shape=None) -> Val:
    """One reading of a value: the one of `shape` if given, else a column if there is one."""
    if not v.alts:
        return v
    if shape is not None:
        kind = {0: SCALAR, 1: COL, 2: MAT}.get(len(shape))
        for alt in v.alts:
            if alt.kind == kind or (kind == COL and alt.kind == ROW):
                return alt
    concrete = [a for a in v.alts if not a.pending]
    return (concrete or [a for a in v.alts if a.kind == COL] or list(v.alts))[0]


# ----- products -----

#: (left kind, right kind) -> the result's kind, for juxtaposition.
_PRODUCT_KIND = {(COL, ROW): MAT, (ROW, COL): SCALAR, (MAT, COL): COL, (ROW, MAT): ROW, (MAT, MAT): MAT}


def _outer_inner(v: Val, side: str):
    """(outer dims, inner dim or None) of an operand on the left or right of a product."""
    d = v.dims
    if v.kind == MAT:
        return ((d[0],), d[1]) if side == "left" else ((d[1],), d[0])
    if v.kind == COL:
        return ((d[0],), None) if side == "left" else ((), d[0])
    return ((), d[0]) if side == "left" else ((d[0],), None)


def _concrete_product(ka: str, kb: str, a: Node, b: Node) -> Node:
    if (ka, kb) == (COL, ROW):
        return E.outer(a, b)
    if (ka, kb) == (ROW, COL):
        return E.dot(a, b)
    if (ka, kb) == (ROW, MAT):
        return E.matmul(E.transpose(b), a)
    return E.matmul(a, b)


def product(a: Val, b: Val) -> Val:
    """a b: juxtaposition (matrix product, scalar product, outer and inner products of vectors)."""
    if _flexible(a, b):
        return _either(product, a, b)
    entry = a.entry or b.entry
    if entry:
        return elementwise(E.mul, a, b, "·")
    if a.kind == SCALAR or b.kind == SCALAR:
        return elementwise(E.mul, a, b, "·")
    if a.eye is not None and b.kind in (COL, MAT):
        return elementwise(E.mul, _val(a.eye), b, "·")
    if b.eye is not None and a.kind in (ROW, MAT):
        return elementwise(E.mul, _val(b.eye), a, "·")
    kind = _PRODUCT_KIND.get((a.kind, b.kind))
    if kind is None:
        raise _Failure(f"the product of {_words(a)} and {_words(b)} is not defined", hint=_product_hint(a, b))
    (oa, ia), (ob, ib) = _outer_inner(a, "left"), _outer_inner(b, "right")
    try:
        inner = _unify(ia, ib) if ia is not None or ib is not None else None
    except _Failure:
        raise _Failure(f"the product of {_words(a)} and {_words(b)} is not defined: inner sizes "
                       f"{ia} and {ib} differ", hint="check the shapes, or transpose a factor") from None
    if (ia is not None or ib is not None) and inner is None:
        raise _Failure(f"the size of {a.what or b.what} in this product is not fixed by anything",
                       hint="write the sum or size it takes explicitly", cls=FormulaError)

    def full(v, outer, side):
        if v.kind == MAT:
            return (outer[0], inner) if side == "left" else (inner, outer[0])
        if v.kind == COL:
            return (outer[0],) if side == "left" else (inner,)
        return (inner,) if side == "left" else (outer[0],)

    dims = oa + ob
    if a.pending or b.pending:
        ka, kb = a.kind, b.kind
        fa = tuple(a.dims) if not a.pending else None
        fb = tuple(b.dims) if not b.pending else None
        a_full = full(a, oa, "left") if a.pending else fa
        b_full = full(b, ob, "right") if b.pending else fb
        if None not in a_full and None not in b_full:
            node = _node_product(ka, kb, a.build(a_full), b.build(b_full))
            return _with_kind(node, kind)

        def make(d, a=a, b=b, na=len(oa)):
            ad = full(a, d[:na], "left") if a.pending else a.dims
            bd = full(b, d[na:], "right") if b.pending else b.dims
            return _node_product(ka, kb, a.build(ad), b.build(bd))
        return Val(kind, None, dims, make, a.what or b.what)
    return _with_kind(_node_product(a.kind, b.kind, a.node, b.node), kind)


def _node_product(ka, kb, a, b):
    try:
        return _concrete_product(ka, kb, a, b)
    except ShapeError as e:
        raise _Failure(e.message, hint=e.hint) from None


def _with_kind(node: Node, kind: str) -> Val:
    return _val(node, row=kind == ROW) if node.ndim == {SCALAR: 0, COL: 1, ROW: 1, MAT: 2}[kind] else _val(node)


def _product_hint(a: Val, b: Val) -> str:
    pairs = {(COL, COL): "two columns: write uᵀv for their inner product (a scalar), u vᵀ for the outer product",
             (ROW, ROW): "two rows: transpose one of them (uᵀv is a scalar, u vᵀ a matrix)",
             (COL, MAT): "a column before a matrix: did you mean uᵀA (a row) or Aᵀu?",
             (MAT, ROW): "a matrix before a row: did you mean A u (a column) or A (u vᵀ)?"}
    return pairs.get((a.kind, b.kind), "check the orientation of the factors")


# ----- elementwise operations -----

def elementwise(build, a: Val, b: Val, symbol: str) -> Val:
    """a ∘ b for an elementwise operator (`build` is expr.add, mul, ...): equal shapes, a scalar on one
    side, or a row meeting every row of a matrix. 𝟙 and I take the other side's size."""
    if _flexible(a, b):
        return _either(lambda x, y: elementwise(build, x, y, symbol), a, b)
    entry = a.entry or b.entry
    if entry and (a.kind not in (SCALAR, COL) or b.kind not in (SCALAR, COL) or
                  (not a.entry and a.kind != SCALAR) or (not b.entry and b.kind != SCALAR)):
        raise _Failure("inside the sum, an entry xᵢ meets a whole vector or matrix",
                       hint="subscript every vector by the index (Σᵢ xᵢ yᵢ), or write the sum without an index")
    ka, kb = a.kind, b.kind
    if ka != SCALAR and kb != SCALAR and ka != kb and {ka, kb} != {MAT, ROW}:
        raise _Failure(f"`{symbol}` combines {_words(a)} with {_words(b)}",
                       hint="a column and a row or matrix do not combine entry by entry; transpose one of them, "
                            "or write 𝟙 bᵀ for a row repeated down a matrix")
    kind = MAT if MAT in (ka, kb) else (ka if ka != SCALAR else kb)
    if a.pending or b.pending:
        if ka == kb and not a.pending:
            b_dims = tuple(a.dims)
            return _val(_apply(build, a.node, b.build(_merge(b.dims, b_dims)), symbol), row=kind == ROW, entry=entry)
        if ka == kb and not b.pending:
            return _val(_apply(build, a.build(_merge(a.dims, b.dims)), b.node, symbol), row=kind == ROW, entry=entry)
        if kind == MAT and (ka == ROW or kb == ROW):
            raise _Failure(f"`{symbol}` of a row with a matrix of unknown size", cls=FormulaError,
                           hint="write the row repeated down the matrix as 𝟙 bᵀ")
        dims = _merge(a.dims, b.dims) if ka == kb else (a.dims if ka != SCALAR else b.dims)
        if None not in dims:
            return _val(_apply(build, a.build(dims if ka != SCALAR else ()), b.build(dims if kb != SCALAR else ()),
                               symbol), row=kind == ROW)

        def make(d):
            return _apply(build, a.build(d if ka != SCALAR else ()), b.build(d if kb != SCALAR else ()), symbol)
        eye = None
        if build is E.mul and kind == MAT:
            if a.kind == SCALAR and b.eye is not None:
                eye = E.mul(a.node, b.eye)
            elif b.kind == SCALAR and a.eye is not None:
                eye = E.mul(a.eye, b.node)
        elif build is E.div and b.kind == SCALAR and a.eye is not None:
            eye = E.div(a.eye, b.node)
        return Val(kind, None, dims, make, a.what or b.what, eye=eye)
    node = _apply(build, a.node, b.node, symbol)
    return _val(node, row=kind == ROW, entry=entry)


def _merge(a, b):
    return tuple(_unify(x, y) for x, y in zip(a, b))


def _apply(build, a: Node, b: Node, symbol: str) -> Node:
    try:
        return build(*E.broadcast_operands(a, b))
    except ShapeError as e:
        raise _Failure(f"`{symbol}` combines {format_shape(a.shape)} with {format_shape(b.shape)}: {e.message}",
                       hint=e.hint) from None


def unary(build, v: Val) -> Val:
    """An operation entry by entry (−x, relu(x)); a pending 𝟙 stays pending."""
    if v.alts:
        return _either(lambda x: unary(build, x), v)
    if v.pending:
        eye = E.neg(v.eye) if v.eye is not None and build is E.neg else None
        return Val(v.kind, None, v.dims, lambda d: build(v.build(d)), v.what, eye=eye)
    return Val(v.kind, build(v.node), v.dims, entry=v.entry)


def transpose(v: Val) -> Val:
    if v.alts:
        return _either(transpose, v)
    if v.kind == SCALAR and v.node is not None and E.is_zero(v.node):     # 0ᵀ: the zero row (printed so)
        return Val(FLEX, None, (), None, "0", alts=(v, Val(ROW, None, (None,), E.zeros, "0"),
                                                    Val(MAT, None, (None, None), E.zeros, "0")))
    if v.kind == SCALAR:
        return v
    if v.kind in (COL, ROW):
        flip = ROW if v.kind == COL else COL
        return Val(flip, v.node, v.dims, v.make, v.what, v.entry)
    if v.pending:
        return Val(MAT, None, v.dims[::-1], lambda d: E.transpose(v.build(d[::-1])), v.what, eye=v.eye)
    return _val(E.transpose(v.node))


# ----- the builder -----

@dataclass
class _Context:
    source: str
    base: int                                     # offset of the parsed text in `source`
    scope: dict
    index: str | None = None                      # the index of an enclosing \sum_i
    indexed: list = field(default_factory=list)


class Builder:
    """Builds one math-notation expression (a Lark tree) into nodes, with a NumPy-notation parser's state
    (its shapes, variables, intermediates, declared and defined functions) and its visitor for names,
    numbers and calls."""

    def __init__(self, parser, source: str, base: int, scope: dict):
        from .parse import _Ctx
        self.p = parser
        self.cx = _Context(source, base, dict(scope))
        self._lines = source.split("\n")
        starts, pos = [], 0
        for line in self._lines:
            starts.append(pos)
            pos += len(line) + 1
        self._starts = starts
        self._tree_info = SimpleNamespace(src_lines=self._lines, src_shift=0)
        self._Ctx = _Ctx
        self.visible = dict(parser.definitions)
        self.dims = {d.name: d for s in parser.shapes.values() for d in s if isinstance(d, sympy.Symbol)}

    # --- positions ---

    def span(self, item) -> tuple[int, int]:
        if isinstance(item, Token):
            start, end = item.start_pos, item.end_pos
        else:
            meta = item.meta
            if getattr(meta, "empty", True):
                return self.cx.base, 1
            start, end = meta.start_pos, meta.end_pos
        return self.cx.base + start, max(1, end - start)

    def text(self, item) -> str:
        off, length = self.span(item)
        return self.cx.source[off:off + length]

    def fail(self, item, message, hint=None, cls=FormulaError):
        off, length = self.span(item)
        raise cls(message, source=self.cx.source, offset=off, length=length, hint=hint)

    def _ast_pos(self, node, item):
        off, length = self.span(item)
        line = max(0, next((i for i in range(len(self._starts) - 1, -1, -1) if self._starts[i] <= off), 0))
        col = off - self._starts[line]
        end = off + length
        eline = max(0, next((i for i in range(len(self._starts) - 1, -1, -1) if self._starts[i] <= end), 0))
        ecol = end - self._starts[eline]
        node.lineno, node.end_lineno = line + 1, eline + 1
        node.col_offset = len(self._lines[line][:col].encode("utf-8"))
        node.end_col_offset = len(self._lines[eline][:ecol].encode("utf-8"))
        return node

    def ctx(self, extra=None):
        return self._Ctx(self.p, self.cx.source, self._tree_info, {**self.cx.scope, **(extra or {})}, self.visible)

    # --- entry ---

    def build(self, tree) -> Val:
        self.p.visits += 1
        from .parse import MAX_EXPANSION
        if self.p.visits > MAX_EXPANSION:
            raise LimitError(f"the formula expands to more than {MAX_EXPANSION} operations")
        if isinstance(tree, Token):
            return self.token(tree)
        method = getattr(self, "rule_" + tree.data, None)
        if method is None:                            # pragma: no cover - every rule has a method
            self.fail(tree, f"`{self.text(tree)}` is not understood")
        try:
            return method(tree)
        except _Failure as f:
            self.fail(tree, f.message, f.hint, f.cls)
        except SymbackpropError as e:
            off, length = self.span(tree)
            raise e.located(self.cx.source, off, length)

    def value(self, tree) -> Val:
        """Build `tree`; a bare function name there is an error."""
        v = self.build(tree)
        if isinstance(v, _Function):
            self.fail(tree, f"`{self.text(tree)}` is a function; apply it, as in {v.shown}(x)")
        return v

    # --- tokens ---

    def token(self, tok) -> Val:
        kind = tok.type
        if kind == "NUMBER":
            return self.number(tok)
        if kind in ("NAME", "COMMAND", "WRAPPED", "GREEK", "NABLA"):
            return self.name(tok)
        if kind == "LOGDET":
            return _Function(M.LOGDET, 0, tok, self.text(tok))
        if kind == "ONES":
            return ones_value()
        if kind == "SUM":
            return _Function(M.SUM, 0, tok, "Σ", index=_sum_index(str(tok)))
        if kind == "FRAC_DIGITS":
            a, b = re.findall(r"\d", str(tok)[-3:] if False else re.sub(r"^\\[dt]?frac", "", str(tok)))
            return _val(E.div(E.const(int(a)), E.const(int(b)))) if int(b) else self.fail(tok, "division by 0")
        self.fail(tok, f"unexpected `{tok}`")

    def number(self, tok) -> Val:
        node = ast.Constant(float(tok) if any(c in str(tok) for c in ".eE") else int(str(tok)))
        return _val(self.ctx().visit(self._ast_pos(node, tok)))

    def name(self, tok) -> Val:
        if tok.type == "NABLA":
            return _Function(("∇" + re.search(r"max|min", str(tok)).group(0)), 0, tok, str(tok))
        nm = read_name(tok)
        resolved = self.resolve(nm, tok)
        return resolved

    def resolve(self, nm: Name, tok, new_ok: bool = True):
        """What a name means here: a value (variable, intermediate, let, size), a function, or names written
        together. See the module docstring for the rule."""
        p = self.cx
        if p.index is not None and nm.subs and nm.subs[-1] == p.index:      # x_i inside \sum_i
            inner = Name(nm.base, nm.subs[:-1], nm.braced, nm.command)
            v = self.resolve(inner, tok)
            if isinstance(v, _Function) or v.kind != COL:
                self.fail(tok, f"`{self.text(tok)}`: only a vector can be indexed by {p.index}")
            p.indexed.append(tok)
            return Val(COL, v.node, v.dims, entry=True)
        if nm.command and not nm.subs:
            if nm.base in M.LATEX_CONSTANTS and not self._known(nm.base):
                return _val(E.const(M.LATEX_CONSTANTS[nm.base]))
        if nm.command and nm.base not in M.GREEK_COMMANDS and tok.type == "COMMAND":
            fname = M.LATEX_FUNCTIONS.get(nm.base)
            if fname is None:
                self.fail(tok, f"unknown LaTeX command `\\{nm.base}`",
                          hint="the math notation reads \\frac, \\sqrt, \\top, \\odot, \\oslash, \\cdot, \\|…\\|, "
                               "\\log, \\exp, \\det, \\operatorname{…}, \\mathrm{…}, \\mathbf{1}, Greek letters "
                               "(docs/formula-language.md, Math notation)")
            if nm.subs:
                self.fail(tok, f"`{self.text(tok)}`: a subscript on a function is not understood")
            return _Function(fname, 0, tok, "\\" + nm.base)
        candidates = [nm.canonical] + ([nm.identifier] if nm.identifier != nm.canonical else [])
        for c in candidates:
            if self._known(c):
                return self._value_name(c, tok)
        for c in candidates:
            fname = self._function_name(c)
            if fname is not None:
                return _Function(fname, 0, tok, c)
        if nm.canonical == "I" and not nm.subs:
            return Val(MAT, None, (None, None), _eye, "I", eye=E.const(1))
        split = self._split(nm)
        if split is not None:
            parts = [self._value_name(part, tok) for part in split]
            out = parts[0]
            for part in parts[1:]:
                out = product(out, part)
            return out
        tex = self._tex_subscript(nm, tok)
        if tex is not None:
            return tex
        if not new_ok:
            return None
        return self._value_name(nm.canonical, tok)

    def _tex_subscript(self, nm: Name, tok):
        """TeX's reading of an unbraced subscript: W_1x is W_1 x (a subscript is one character)."""
        if nm.braced or nm.command or not nm.subs or len(nm.subs[-1]) < 2:
            return None
        head = Name(nm.base, nm.subs[:-1] + (nm.subs[-1][0],), False)
        rest = nm.subs[-1][1:]
        if not self._known(head.canonical) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", rest):
            return None
        return product(self._value_name(head.canonical, tok), self.resolve(Name(rest, (), False), tok))

    def _known(self, name: str) -> bool:
        p = self.p
        return (name in self.cx.scope or name in p.intermediates or name in p.variables or name in p.shapes
                or name in self.dims)

    def _function_name(self, name: str):
        p = self.p
        if name in p.elementwise or name in p.functions or name in self.visible:
            return name
        if name in M.FUNCTION_ALIASES:
            return M.FUNCTION_ALIASES[name]
        if name in M.PRINTED_FUNCTIONS:
            return name
        rule = E.RULES.get(name)
        if rule is not None and rule.builtin is not None:
            return name
        return None

    def _value_name(self, name: str, tok) -> Val:
        if name in self.dims and name not in self.cx.scope and name not in self.p.intermediates:
            return _val(E.const(self.dims[name]))
        node = self.ctx().visit(self._ast_pos(ast.Name(id=name, ctx=ast.Load()), tok))
        return _val(node)

    def _split(self, nm: Name):
        """A run of letters (and digits) that is several declared names written together: `Wx`, `W2x4`."""
        if nm.command or nm.braced and len(nm.subs) > 0 and not nm.subs[-1].isdigit():
            return None
        whole = nm.canonical
        if len(whole) > 64 or not re.fullmatch(r"[A-Za-z0-9]+", whole):
            return None
        known = sorted({k for k in list(self.cx.scope) + list(self.p.intermediates) + list(self.p.variables)
                        + list(self.p.shapes) + list(self.dims) if k and k in whole}, key=lambda k: (-len(k), k))
        best: dict[int, list | None] = {len(whole): []}
        for i in range(len(whole) - 1, -1, -1):
            options = [[k] + best[i + len(k)] for k in known
                       if whole.startswith(k, i) and best.get(i + len(k)) is not None]
            best[i] = min(options, key=len) if options else None
        out = best.get(0)
        return out if out is not None and len(out) > 1 else None

    # --- rules ---

    def rule_number(self, tree):
        return self.number(tree.children[0])

    def rule_group(self, tree):
        return self.value(tree.children[0])

    def rule_add(self, tree):
        return self._binary(tree, E.add, "+")

    def rule_sub(self, tree):
        return self._binary(tree, E.sub, "−")

    def rule_hadamard(self, tree):
        return self._binary(tree, E.mul, "⊙")

    def rule_divide(self, tree):
        return self._binary(tree, E.div, "/")

    def _binary(self, tree, build, symbol):
        a, b = self.value(tree.children[0]), self.value(tree.children[2])
        return elementwise(build, a, b, symbol)

    def rule_product(self, tree):
        a = self.build(tree.children[0])
        if isinstance(a, _Function) and str(tree.children[1]) == "\\,":        # \operatorname{tr}\, A: a space
            span = tree.children[2]
            return self.call(a, [(self.value(span), span)], {}, tree, primes=a.primes)
        a = self.value(tree.children[0])
        b = self.value(tree.children[2])
        if a.kind == COL and b.kind == COL and not (a.entry or b.entry):      # u · v: the dot product
            return product(transpose(a), b)
        return product(a, b)

    def rule_neg(self, tree):
        return unary(E.neg, self.value(tree.children[-1]))

    def rule_pos(self, tree):
        return self.value(tree.children[-1])

    def rule_jux(self, tree):
        items = []
        node = tree
        while isinstance(node, Tree) and node.data == "jux":              # left-deep: flatten
            items.append(node.children[1])
            node = node.children[0]
        items.append(node)
        items.reverse()
        return self._chain(items)

    def _chain(self, items) -> Val:
        """Factors written together, left to right; a function without parentheses applies to the rest."""
        out = None
        for i, item in enumerate(items):
            if isinstance(item, Tree) and item.data == "primed":
                nm, primes = item.children[0], len(_primes(item.children[1]))
                v = self.build(nm)
                f = v if isinstance(v, _Function) else None
                if f is None:
                    self.fail(item, f"`{self.text(item)}`: a prime marks the derivative of a function")
                v = _Function(f.name, primes, f.tok, f.shown)
            else:
                v = self.build(item) if not (isinstance(item, Token) and item.type == "SUM") else self.token(item)
            if isinstance(v, _Function):
                rest = items[i + 1:]
                if not rest:
                    self.fail(item, f"`{self.text(item)}` is a function; apply it, as in {v.shown}(x)")
                arg_span = _Span(rest[0], rest[-1])
                if v.index is not None:
                    arg = self._sum_body(v, rest, arg_span)
                else:
                    arg = self._chain(rest) if len(rest) > 1 else self.value(rest[0])
                    arg = self.call(v, [(arg, arg_span)], {}, item, primes=v.primes)
                return arg if out is None else self._times(out, arg, items[0], items[-1])
            out = v if out is None else self._times(out, v, items[0], item)
        return out

    def _times(self, a, b, first, last):
        try:
            return product(a, b)
        except _Failure as f:
            self.fail(_Span(first, last), f.message, f.hint, f.cls)

    def _sum_body(self, f, rest, span) -> Val:
        outer = self.cx.index, self.cx.indexed
        self.cx.index, self.cx.indexed = f.index, []
        try:
            body = self._chain(rest) if len(rest) > 1 else self.value(rest[0])
            if not self.cx.indexed:
                self.fail(span, f"the sum over {f.index} has no term subscripted by {f.index}",
                          hint=f"write Σ over a vector's entries, e.g. \\sum_{f.index} x_{f.index}^2; "
                               f"without an index, sum(x) sums every entry")
        finally:
            self.cx.index, self.cx.indexed = outer
        if body.kind != COL:
            self.fail(span, "the summand of \\sum is not a vector's entry")
        return self._call_name(M.SUM, [(Val(COL, body.node, body.dims), span)], {}, span)

    def _postfix(self, tree, op):
        """A postfix operator (ᵀ ⁻¹ ² ^) applied to its operand. After a value and parentheses (`x (…)ᵀ`,
        read as a call by the grammar) it applies to the parenthesized factor: x·((…)ᵀ)."""
        child = tree.children[0]
        if isinstance(child, Tree) and child.data == "call":
            head = self.build(child.children[0])
            items = child.children[1].children
            if not isinstance(head, _Function) and len(items) == 1 and not (
                    isinstance(items[0], Tree) and items[0].data == "keyword"):
                return self._times(head, op(self.value(items[0])), child.children[0], tree)
        return op(self.value(child))

    def rule_transpose(self, tree):
        return self._postfix(tree, transpose)

    def rule_inverse(self, tree):
        return self._postfix(tree, self._inverse)

    def _inverse(self, v: Val) -> Val:
        if v.alts:
            return _either(self._inverse, v)
        if v.kind == SCALAR:
            return _val(E.power(v.node, E.const(-1)))
        if v.kind == MAT and not v.pending:
            if len(v.dims) == 2 and not E.shapes_equal((v.dims[0],), (v.dims[1],)):
                raise _Failure(f"the inverse of a {format_shape(v.node.shape)} matrix: it is not square",
                               hint="⁻¹ is the matrix inverse; the entrywise reciprocal is 1/X or X^(−1)")
            return _val(M.inverse(v.node))
        if v.pending and v.eye is not None:
            return Val(MAT, None, v.dims, lambda d: M.inverse(v.build(d)), "I", eye=E.power(v.eye, E.const(-1)))
        raise _Failure(f"the inverse of {_words(v)}", hint="⁻¹ is the inverse of a square matrix; the reciprocal "
                                                           "of each entry is 1/x or x^(−1)")

    def rule_inverse_t(self, tree):
        return self._postfix(tree, lambda v: transpose(self._inverse(v)))

    def rule_superscript(self, tree):
        k = int(str(tree.children[1]).translate(_SUPERSCRIPTS))

        def op(v):
            if k < 0 and v.kind != SCALAR:
                raise _Failure(f"`{self.text(tree)}`: a negative power of an array is ambiguous (inverse or "
                               f"reciprocal?)", hint="write (X⁻¹)² for a power of the inverse, X^(−2) for the "
                                                    "entrywise power")
            return self._power(v, _val(E.const(k)))
        return self._postfix(tree, op)

    def rule_power(self, tree):
        e = self.value(tree.children[2])
        return self._postfix(tree, lambda v: self._power(v, e))

    def _power(self, v: Val, e: Val) -> Val:
        if e.kind != SCALAR and v.kind == SCALAR:
            return elementwise(E.power, v, e, "^")
        return elementwise(E.power, v, e, "^")

    def rule_norm(self, tree):
        inner = self.value(tree.children[1])
        sub = str(tree.children[3]) if len(tree.children) > 3 else ""
        if inner.kind == MAT and "2" in sub:
            raise _Failure("‖A‖₂ of a matrix is its spectral norm, which symbackprop does not have",
                           hint="‖A‖_F (or ‖A‖) is the Frobenius norm", cls=FormulaError)
        return self._call_name(M.NORM, [(inner, tree.children[1])], {}, tree)

    def rule_abs(self, tree):
        return self._call_name(M.ABS, [(self.value(tree.children[1]), tree.children[1])], {}, tree)

    def rule_frac(self, tree):
        a, b = self.value(tree.children[1]), self.value(tree.children[2])
        return elementwise(E.div, a, b, "/")

    def rule_frac_digits(self, tree):
        return self.token(tree.children[0])

    def rule_sqrt(self, tree):
        return self._call_name(M.SQRT, [(self.value(tree.children[1]), tree.children[1])], {}, tree)

    def rule_root(self, tree):
        n = int(float(str(tree.children[1])))
        if n < 1:
            raise _Failure("a root of order 0", cls=FormulaError)
        v = self.value(tree.children[2])
        return elementwise(E.power, v, _val(E.const(sympy.Rational(1, n))), "^")

    def rule_ones(self, tree):
        return self.token(tree.children[0])

    def rule_sum_over(self, tree):
        return self.token(tree.children[0])

    def rule_logdet(self, tree):
        return self.token(tree.children[0])

    def rule_logdet_call(self, tree):
        f = _Function(M.LOGDET, 0, tree.children[0], "log det")
        return self._apply_call(f, tree.children[1], tree)

    def rule_primed(self, tree):
        v = self.build(tree.children[0])
        if not isinstance(v, _Function):
            self.fail(tree, f"`{self.text(tree)}`: a prime marks the derivative of a function",
                      hint="write f'(x) for the derivative of a declared or built-in function")
        return _Function(v.name, len(_primes(tree.children[1])), v.tok, v.shown)

    def rule_call(self, tree):
        head, args = tree.children[0], tree.children[1]
        if isinstance(head, Token) and head.type in ("NAME", "GREEK", "WRAPPED"):
            nm = read_name(head)
            f = self.resolve(nm, head, new_ok=False)
            if f is None:                             # a name nothing declares, called: an unknown function
                self._unknown_call(head, nm, args)
        else:
            f = self.build(head)
        if not isinstance(f, _Function):
            # a value followed by parentheses: a product, W(x + y)
            items = args.children
            if len(items) != 1 or (isinstance(items[0], Tree) and items[0].data == "keyword"):
                nm = read_name(head) if isinstance(head, Token) and head.type in ("NAME", "GREEK", "WRAPPED") else None
                self._unknown_call(head, nm, args)
            return self._times(f, self.value(items[0]), head, items[0])
        return self._apply_call(f, args, tree)

    def _unknown_call(self, head, nm, args):
        name = nm.canonical if nm is not None else self.text(head)
        if name in self.p.variables or name in self.p.intermediates or name in self.cx.scope:
            self.fail(head, f"`{name}` is a variable, not a function")
        holders = [self._ast_pos(ast.Name(id=f" arg{i}", ctx=ast.Load()), a) for i, a in enumerate(args.children)]
        call = self._ast_pos(ast.Call(func=self._ast_pos(ast.Name(id=name, ctx=ast.Load()), head),
                                      args=holders, keywords=[]), head)
        self.ctx().visit(call)

    def rule_primed_call(self, tree):
        head, primes, args = tree.children
        f = self.build(head)
        if not isinstance(f, _Function):
            nm = read_name(head) if isinstance(head, Token) else None
            name = nm.canonical if nm is not None else self.text(head)
            self.fail(head, f"no derivative `{name}{chr(39) * len(_primes(primes))}` is known",
                      hint="write f'(z) for a built-in elementwise function (relu'(z), tanh'(z), σ'(z)) or one "
                           "declared with --elementwise")
        return self._apply_call(_Function(f.name, len(_primes(primes)), f.tok, f.shown), args, tree)

    def rule_partial_call(self, tree):
        mark, head, args = tree.children
        indices = tuple(int(c) - 1 for c in re.sub(r"\D", "", str(mark)))
        nm = read_name(head)
        name = nm.canonical
        if name not in self.p.functions:
            self.fail(head, f"`∂{''.join(str(i + 1) for i in indices)}{name}`: `{name}` is not declared as a function",
                      hint=f"declare it with --function {name}")
        values = [self.value(a) for a in args.children]
        if any(i < 0 or i >= len(values) for i in indices):
            self.fail(mark, f"{name} takes {len(values)} arguments; there is no argument {max(indices) + 1}")
        return _val(M.partial(name, indices, tuple(self._concrete(v, a) for v, a in zip(values, args.children))))

    def _apply_call(self, f, args_tree, tree):
        positional, keywords = [], {}
        for a in args_tree.children:
            if isinstance(a, Tree) and a.data == "keyword":
                key, value = a.children
                keywords[str(key)] = (value, a)
            else:
                positional.append((self.value(a), a))
        return self.call(f, positional, keywords, tree, primes=f.primes)

    def call(self, f, positional, keywords, tree, primes=0) -> Val:
        return self._call_name(f.name, positional, keywords, tree, primes)

    def _concrete(self, v: Val, item) -> Node:
        if v.pending:
            self.fail(item, f"the size of {v.what} here is not fixed by anything",
                      hint="write it where the expression around it gives it a size (A + I, X W + 𝟙 bᵀ)")
        return v.node

    def _call_name(self, name, positional, keywords, tree, primes=0) -> Val:
        """A call of a built-in, declared, defined or printed function, built as the NumPy notation builds it."""
        if len(positional) == 2 and name in M.TWO_ARGUMENTS and not primes:
            name = M.TWO_ARGUMENTS[name]
        if name in M.PRINTED_FUNCTIONS and not primes:
            arity, build = M.PRINTED_FUNCTIONS[name]
            if len(positional) != arity or keywords:
                self.fail(tree, f"{name} takes {arity} argument{'s' * (arity != 1)}")
            try:
                return _val(build(*(self._concrete(v, a) for v, a in positional)))
            except ShapeError as e:
                self.fail(tree, e.message, e.hint, ShapeError)
        elementwise_fn = (M.is_elementwise(name) or name in self.p.elementwise) and len(positional) == 1 and not keywords
        if elementwise_fn and positional[0][0].alts:
            (v, a), = positional
            return _either(lambda x: self._call_name(name, [(x, a)], keywords, tree, primes), v)
        positional = [(choose(v), a) for v, a in positional]
        if elementwise_fn:
            (v, a), = positional
            if v.pending or v.kind in (ROW,) or v.entry:
                build = lambda x: self._ast_call(name, primes, [(x, a)], {}, tree)    # noqa: E731
                if v.pending:
                    return unary(build, v)
                return Val(v.kind, build(v.node), v.dims, entry=v.entry)
        args = [(self._concrete(v, a), a) for v, a in positional]
        node = self._ast_call(name, primes, args, keywords, tree)
        row = len(positional) == 1 and positional[0][0].kind == ROW and node.shape == positional[0][0].node.shape
        return _val(node, row=row)

    def _ast_call(self, name, primes, args, keywords, tree) -> Node:
        from .parse import PRIME
        holders, extra = [], {}
        for i, (node, item) in enumerate(args):
            key = f" arg{i}"
            extra[key] = node
            holders.append(self._ast_pos(ast.Name(id=key, ctx=ast.Load()), item))
        kws = []
        for key, (value, item) in keywords.items():
            kws.append(ast.keyword(arg=key, value=self._literal(value, item)))
        head = tree.children[0] if isinstance(tree, Tree) and tree.children else tree
        func = self._ast_pos(ast.Name(id=name + PRIME * primes, ctx=ast.Load()), head if head is not None else tree)
        call = self._ast_pos(ast.Call(func=func, args=holders, keywords=kws), tree)
        return self.ctx(extra).visit(call)

    def _literal(self, value, item):
        """A keyword's value (axis=1, axis=-1) as a syntax-tree literal; anything else is refused by the visitor."""
        neg = isinstance(value, Tree) and value.data == "neg"
        inner = value.children[-1] if neg else value
        if isinstance(inner, Tree) and inner.data == "number":
            inner = inner.children[0]
        if isinstance(inner, Token) and inner.type == "NUMBER" and str(inner).isdigit():
            lit = self._ast_pos(ast.Constant(int(str(inner))), inner)
            return self._ast_pos(ast.UnaryOp(op=ast.USub(), operand=lit), value) if neg else lit
        return self._ast_pos(ast.Constant(str(self.text(value))), value)


@dataclass(frozen=True)
class _Function:
    """A function name not yet applied (\\log, tr, relu', a declared Φ)."""

    name: str
    primes: int
    tok: object
    shown: str
    index: str | None = None

    kind = "function"
    entry = False
    pending = False


class _Span:
    """The span from one tree item to another (for error carets over several factors)."""

    def __init__(self, first, last):
        self.meta = SimpleNamespace(empty=False, start_pos=_start(first), end_pos=_end(last))


def _start(item):
    return item.start_pos if isinstance(item, Token) else item.meta.start_pos


def _end(item):
    return item.end_pos if isinstance(item, Token) else item.meta.end_pos


def _eye(d):
    if d[0] is None and d[1] is None:
        raise _Failure("the size of I is not fixed by anything", cls=FormulaError,
                       hint="write I where the expression around it gives it a size (A + I, A − λ I)")
    return E.eye(d[0] if d[0] is not None else d[1])


def _primes(tok) -> str:
    s = str(tok)
    return "'" * (s.count("'") + s.count("′") + s.count("ʹ") + s.count("\\prime"))


_SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺", "0123456789-+")


def _sum_index(text: str) -> str:
    m = re.match(r"\\sum\s*_\s*(?:\{\s*([A-Za-z])|([A-Za-z]))", text)
    return m.group(1) or m.group(2)


# ----- entry points -----

def _depth(tree) -> int:
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
    from .parse import MAX_NESTING
    try:
        return grammar().parse(text)
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


_NUMPY_HINT = "that is NumPy notation: switch with --notation numpy, or write it in maths"


def _char_hint(text: str, i: int) -> str:
    c = text[i]
    if c == "@":
        return "`@` is NumPy notation; in math notation write a product by juxtaposition (W x, W_2^\\top x_4). " \
               + "To use NumPy notation, pass --notation numpy"
    if text.startswith(".T", i):
        return "`.T` is NumPy notation; in math notation a transpose is xᵀ, x^T or x^\\top. " \
               + "To use NumPy notation, pass --notation numpy"
    if c == "'":
        return "a prime marks a function's derivative: relu'(x), \\sigma'(z), \\Phi'(x_1)"
    return "the math notation reads LaTeX (\\frac, ^\\top, \\odot, \\|…\\|) and symbackprop's printed text " \
           "(Wᵀ x ⊙ relu'(z), ‖x‖²); see docs/formula-language.md, Math notation"


def _token_hint(text: str, tok, expected) -> str:
    s = str(tok)
    if s == "**" or text.startswith("**", tok.start_pos):
        return "`**` is NumPy notation; in math notation a power is x^2 or x². To use NumPy notation, " \
               "pass --notation numpy"
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


def math_expression(parser, text: str, source: str | None = None, offset: int = 0, scope=None,
                    shape=None) -> tuple[Node, bool]:
    """Build one math-notation expression with `parser`'s state (a parse.Parser: its shapes, variables,
    intermediates and functions). Returns (node, row): row is True when the text is a row (xᵀ, uᵀA).

    `shape`, when given, is the shape the whole should have: it sizes a 𝟙 or I nothing else sizes
    (the printed `1/(m·n)·𝟙`) and turns a printed `0` into the zero array."""
    from .parse import MAX_NESTING, _unencodable
    source = text if source is None else source
    bad = _unencodable(text)
    if bad is not None:
        raise FormulaError("the formula contains bytes that are not valid UTF-8 text",
                           hint=f"character {bad} cannot be encoded; retype it")
    depth = _bracket_depth(text)
    if depth > MAX_NESTING:
        raise LimitError(f"the formula is nested {depth} levels deep; the limit is {MAX_NESTING}",
                         source=source, offset=offset, hint="name intermediate results to flatten it")
    tree = parse_tree(text, source, offset)
    depth = _depth(tree)
    if depth > MAX_NESTING + 60:
        raise LimitError(f"the formula is nested {depth} levels deep; the limit is {MAX_NESTING}",
                         source=source, offset=offset, hint="name intermediate results to flatten it")
    builder = Builder(parser, source, offset, scope or {})
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 20 * MAX_NESTING + 4000))
    try:
        v = builder.value(tree)
    except RecursionError:
        raise LimitError(f"the formula is nested too deeply (limit {MAX_NESTING} levels)") from None
    finally:
        sys.setrecursionlimit(old)
    v = choose(v, shape)
    return finish(v, shape, source, offset, len(text)), v.kind == ROW


def finish(v: Val, shape, source, offset, length) -> Node:
    """The node of a built value; a 𝟙 or I whose size nothing fixed takes `shape` (or is an error)."""
    v = choose(v, shape)
    if v.pending:
        if shape is None:
            raise FormulaError(f"the size of {v.what} is not fixed by anything", source=source, offset=offset,
                               length=length, hint="write it where the expression around it gives it a size "
                                                   "(A + I, X W + 𝟙 bᵀ)")
        dims = tuple(shape) if v.kind != ROW else tuple(shape)[-1:]
        if len(dims) != len(v.dims):
            raise ShapeError(f"{_words(v)} where shape {format_shape(tuple(shape))} is due", source=source,
                             offset=offset, length=length)
        try:
            return v.build(_merge(v.dims, dims))
        except _Failure as f:
            raise f.cls(f.message, source=source, offset=offset, length=length, hint=f.hint) from None
    node = v.node
    if shape is not None and tuple(shape) and node.shape == () and E.is_zero(node):
        return E.zeros(tuple(shape))
    return node


def _bracket_depth(text: str) -> int:
    best = depth = 0
    for ch in text:
        if ch in "([{":
            depth += 1
            best = max(best, depth)
        elif ch in ")]}":
            depth = max(0, depth - 1)
    return best
