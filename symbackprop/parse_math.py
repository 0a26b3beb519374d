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
  broadcasting), nothing else broadcasts. A power of a scalar or a vector (`x²`, `x^2`, `x^{1/3}`) is
  elementwise; of a matrix (`S³`, `S^{3}`, `S^2`) it is the matrix power (an integer exponent, a square
  matrix), as symbackprop prints it; `X^∘2`, `X^{\\circ 2}` is the elementwise (Hadamard) power of any
  operand. `X⁻¹`, `X^{-1}` is the inverse of a square matrix (of a scalar, its reciprocal).
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
from types import SimpleNamespace

import sympy

from . import expr as E
from . import rules_math as M
from .errors import FormulaError, LimitError, ShapeError, SymbackpropError
from .expr import Node, format_shape
from .math_calls import Calls, Function
from .math_text import (  # noqa: F401  (re-exported: the notation's public names)
    NOTATIONS, OBJECTIVE, SUPERSCRIPT_DIGITS, Name, Token, Tree, assignment, bracket_depth, check_notation,
    detect_notation, parse_tree, primes_of, read_derivative, read_name, split_statements, sum_index, tree_depth)
from .math_values import (  # noqa: F401
    COL, FLEX, MAT, ROW, SCALAR, Failure, Val, choose, either, elementwise, identity, merge, ones_value, product,
    transpose, unary, val, words)
from .program import MAX_EXPANSION, MAX_NESTING
from .whitelist import Walker, unencodable


#: Subscript letters and digits as printed in sizes (𝟙ₙ, I₄).
_SUBSCRIPT = str.maketrans("ₐₑₒₓₕₖₗₘₙₚₛₜᵢⱼᵣᵤᵥ₀₁₂₃₄₅₆₇₈₉", "aeoxhklmnpstijruv0123456789")


# ----- the builder -----

@dataclass
class _Context:
    source: str
    base: int                                     # offset of the parsed text in `source`
    scope: dict
    index: str | None = None                      # the index of an enclosing \sum_i
    indexed: list = field(default_factory=list)


class Builder(Calls):
    """Builds one math-notation expression (a Lark tree) into nodes, with a NumPy-notation parser's state
    (its shapes, variables, intermediates, declared and defined functions) and its visitor for names,
    numbers and calls."""

    def __init__(self, parser, source: str, base: int, scope: dict):
        self.p = parser
        self.cx = _Context(source, base, dict(scope))
        self._lines = source.split("\n")
        starts, pos = [], 0
        for line in self._lines:
            starts.append(pos)
            pos += len(line) + 1
        self._starts = starts
        self._tree_info = SimpleNamespace(src_lines=self._lines, src_shift=0)
        self._Ctx = Walker
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
        if self.p.visits > MAX_EXPANSION:
            raise LimitError(f"the formula expands to more than {MAX_EXPANSION} operations")
        if isinstance(tree, Token):
            method = self.token
        else:
            method = getattr(self, "rule_" + tree.data, None)
            if method is None:                        # pragma: no cover - every rule has a method
                self.fail(tree, f"`{self.text(tree)}` is not understood")
        try:
            return method(tree)
        except Failure as f:
            self.fail(tree, f.message, f.hint, f.cls)
        except SymbackpropError as e:
            off, length = self.span(tree)
            raise e.located(self.cx.source, off, length)

    def value(self, tree) -> Val:
        """Build `tree`; a bare function name there is an error."""
        v = self.build(tree)
        if isinstance(v, Function):
            self.fail(tree, f"`{self.text(tree)}` is a function; apply it, as in {v.shown}(x)")
        return v

    # --- tokens ---

    def sized_constant(self, tok) -> Val:
        """𝟙, or 𝟙 and I with the size symbackprop prints where the context does not fix it: 𝟙ₙ, 𝟙_d,
        𝟙_(m×n), \\mathbf{1}_{n}, Iₙ, I₄. The size is read against the shapes' dims."""
        text = str(tok)
        m = re.match(r"(?s)(I|.*?)([ₐₑₒₓₕₖₗₘₙₚₛₜᵢⱼᵣᵤᵥ₀-₉]+|_\s*\((.*)\)|_\s*\{(.*)\}|_([A-Za-z0-9]+))?\Z", text)
        size = m and m.group(2)
        if not size:
            return ones_value()
        raw = size.translate(_SUBSCRIPT) if not size.startswith("_") else (m.group(3) or m.group(4) or m.group(5))
        parts = [q for q in re.split(r"\s*(?:×|\\times|x)\s*", raw.strip()) if q]
        dims = tuple(self.dim_value(q, tok) for q in parts)
        if m.group(1) == "I":
            return Val(MAT, None, (dims[0], dims[0]), identity, "I", eye=E.const(1))
        if len(dims) == 1:
            return Val(COL, None, dims, E.ones, "𝟙")
        return Val(MAT, None, dims[:2], E.ones, "𝟙")

    def dim_value(self, text: str, tok):
        """A size as printed in a subscript: a dim of the shapes, or a number."""
        text = text.strip()
        if text.isdigit():
            return int(text)
        if text in self.dims:
            return self.dims[text]
        self.fail(tok, f"`{self.text(tok)}`: the size `{text}` is not a dimension of the shapes")

    def token(self, tok) -> Val:
        kind = tok.type
        if kind == "NUMBER":
            return self.number(tok)
        if kind in ("NAME", "COMMAND", "WRAPPED", "GREEK", "NABLA"):
            return self.name(tok)
        if kind == "LOGDET":
            return Function(M.LOGDET, 0, tok, self.text(tok))
        if kind in ("ONES", "EYE_SIZED"):
            return self.sized_constant(tok)
        if kind == "SUM":
            return Function(M.SUM, 0, tok, "Σ", index=sum_index(str(tok)))
        if kind == "DERIV":
            return self.derivative(tok)
        if kind == "FRAC_DIGITS":
            a, b = re.findall(r"\d", str(tok)[-3:] if False else re.sub(r"^\\[dt]?frac", "", str(tok)))
            return val(E.div(E.const(int(a)), E.const(int(b)))) if int(b) else self.fail(tok, "division by 0")
        self.fail(tok, f"unexpected `{tok}`")

    def number(self, tok) -> Val:
        text = str(tok)
        if not any(c in text for c in ".eE") and len(text.lstrip("0")) > 300:   # past 1e300, and int() stops at
            self.fail(tok, "number too large", hint="numbers must be finite 64-bit floats", cls=LimitError)  # 4300
        node = ast.Constant(float(text) if any(c in text for c in ".eE") else int(text))
        return val(self.ctx().visit(self._ast_pos(node, tok)))

    def name(self, tok) -> Val:
        if tok.type == "NABLA":
            return Function(("∇" + re.search(r"max|min", str(tok)).group(0)), 0, tok, str(tok))
        nm = read_name(tok)
        resolved = self.resolve(nm, tok)
        if nm.transposed:                             # x^{(4)\top}
            if isinstance(resolved, Function):
                self.fail(tok, f"`{self.text(tok)}`: a function cannot be transposed")
            return transpose(resolved)
        return resolved

    def rule_derivative(self, tree):
        return self.derivative(tree.children[0])

    def derivative(self, tok) -> Val:
        """∂ℓ/∂x4 (bound by the context, as the checker binds earlier lines) or ∂Φ/∂x1 = diag(Φ'(x1)), the
        Jacobian of an elementwise function."""
        num, den = read_derivative(str(tok))
        if num is None or den is None:
            self.fail(tok, f"`{self.text(tok)}`: a derivative of one name by one name is understood here",
                      hint="write ∂ℓ/∂x4 for a derivative the context defines, ∂Φ/∂x1 for the Jacobian of an "
                           "elementwise Φ")
        fname = self._function_name(num.canonical) if num.base != OBJECTIVE else None
        if fname is not None and (M.is_elementwise(fname) or fname in self.p.elementwise):
            x = self.resolve(den, tok)
            if isinstance(x, Function):
                self.fail(tok, f"`{self.text(tok)}`: {den.canonical} is a function")
            slope = self._call_name(fname, [(x, tok)], {}, tok, primes=1)
            return self._call_name(M.DIAG, [(slope, tok)], {}, tok) if slope.kind == COL else slope
        key = f"∂{num.canonical}/∂{den.canonical}"
        bound = self.cx.scope.get(key)
        if bound is None:
            self.fail(tok, f"`{key}` is not defined here",
                      hint="a derivative inside an expression stands for an earlier line's result (the checker "
                           "binds ∂ℓ/∂x4 once a line defines it); otherwise write its expression")
        node, row = bound if isinstance(bound, tuple) else (bound, False)
        return val(node, row=row)

    def resolve(self, nm: Name, tok, new_ok: bool = True):
        """What a name means here: a value (variable, intermediate, let, size), a function, or names written
        together. See the module docstring for the rule."""
        p = self.cx
        if p.index is not None and nm.subs and nm.subs[-1] == p.index:      # x_i inside \sum_i
            inner = Name(nm.base, nm.subs[:-1], nm.braced, nm.command)
            v = self.resolve(inner, tok)
            if isinstance(v, Function) or v.kind != COL:
                self.fail(tok, f"`{self.text(tok)}`: only a vector can be indexed by {p.index}")
            p.indexed.append(tok)
            return Val(COL, v.node, v.dims, entry=True)
        if nm.command and not nm.subs:
            if nm.base in M.LATEX_CONSTANTS and not self._known(nm.base):
                return val(E.const(M.LATEX_CONSTANTS[nm.base]))
        if nm.command and nm.base not in M.GREEK_COMMANDS and tok.type == "COMMAND":
            fname = M.LATEX_FUNCTIONS.get(nm.base)
            if fname is None:
                self.fail(tok, f"unknown LaTeX command `\\{nm.base}`",
                          hint="the math notation reads \\frac, \\sqrt, \\top, \\odot, \\oslash, \\cdot, \\|…\\|, "
                               "\\log, \\exp, \\det, \\operatorname{…}, \\mathrm{…}, \\mathbf{1}, Greek letters "
                               "(docs/formula-language.md, Math notation)")
            if nm.subs:
                self.fail(tok, f"`{self.text(tok)}`: a subscript on a function is not understood")
            return Function(fname, 0, tok, "\\" + nm.base)
        candidates = [nm.canonical] + ([nm.identifier] if nm.identifier != nm.canonical else [])
        for c in candidates:
            if self._known(c):
                return self._value_name(c, tok)
        for c in candidates:
            fname = self._function_name(c)
            if fname is not None:
                return Function(fname, 0, tok, c)
        if nm.canonical == "I" and not nm.subs:
            return Val(MAT, None, (None, None), identity, "I", eye=E.const(1))
        if nm.base == "I" and len(nm.subs) == 1 and not nm.index and (nm.subs[0].isdigit() or nm.subs[0] in self.dims):
            d = self.dim_value(nm.subs[0], tok)                  # I_d, I_{n}: the identity of that size
            return Val(MAT, None, (d, d), identity, "I", eye=E.const(1))
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
        tail = self.resolve(Name(rest, (), False), tok)
        if not isinstance(tail, Val):                # x_imax: a function name is no factor (it needs its argument)
            return None
        return product(self._value_name(head.canonical, tok), tail)

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
            return val(E.const(self.dims[name]))
        node = self.ctx().visit(self._ast_pos(ast.Name(id=name, ctx=ast.Load()), tok))
        return val(node)

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
        if isinstance(a, Function) and str(tree.children[1]) == "\\,":        # \operatorname{tr}\, A: a space
            span = tree.children[2]
            return self.call(a, [(self.value(span), span)], {}, tree, primes=a.primes)
        a = self.value(tree.children[0])
        b = self.value(tree.children[2])
        if a.kind == COL and b.kind == COL and not (a.entry or b.entry):      # u · v: the dot product
            return product(transpose(a), b)
        return product(a, b)

    def rule_negative(self, tree):
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
                nm, primes = item.children[0], len(primes_of(item.children[1]))
                v = self.build(nm)
                f = v if isinstance(v, Function) else None
                if f is None:
                    self.fail(item, f"`{self.text(item)}`: a prime marks the derivative of a function")
                v = Function(f.name, primes, f.tok, f.shown)
            else:
                v = self.build(item) if not (isinstance(item, Token) and item.type == "SUM") else self.token(item)
            if isinstance(v, Function):
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
        except Failure as f:
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
            if not isinstance(head, Function) and len(items) == 1 and not (
                    isinstance(items[0], Tree) and items[0].data == "keyword"):
                return self._times(head, op(self.value(items[0])), child.children[0], tree)
        return op(self.value(child))

    def rule_transpose(self, tree):
        return self._postfix(tree, transpose)

    def rule_inverse(self, tree):
        return self._postfix(tree, self._inverse)

    def _inverse(self, v: Val) -> Val:
        if v.alts:
            return either(self._inverse, v)
        if v.kind == SCALAR:
            return val(E.power(v.node, E.const(-1)))
        if v.kind == MAT and not v.pending:
            if len(v.dims) == 2 and not E.shapes_equal((v.dims[0],), (v.dims[1],)):
                raise Failure(f"the inverse of a {format_shape(v.node.shape)} matrix: it is not square",
                               hint="⁻¹ is the matrix inverse; the entrywise reciprocal is 1/X or X^(−1)")
            return val(M.inverse(v.node))
        if v.pending and v.eye is not None:
            return Val(MAT, None, v.dims, lambda d: M.inverse(v.build(d)), "I", eye=E.power(v.eye, E.const(-1)))
        raise Failure(f"the inverse of {words(v)}", hint="⁻¹ is the inverse of a square matrix; the reciprocal "
                                                           "of each entry is 1/x or x^(−1)")

    def rule_inverse_t(self, tree):
        return self._postfix(tree, lambda v: transpose(self._inverse(v)))

    def rule_superscript(self, tree):
        k = int(str(tree.children[1]).translate(SUPERSCRIPT_DIGITS))

        def op(v):
            if self._matrix(v):                      # S³: the matrix power; S⁻² = (S⁻¹)²
                return self._matrix_power(v, val(E.const(k)), tree, str(k))
            if k < 0 and v.kind != SCALAR:
                raise Failure(f"`{self.text(tree)}`: a negative power of a vector is ambiguous (inverse or "
                               f"reciprocal?)", hint="write x^(−2) for the entrywise power")
            return self._power(v, val(E.const(k)))
        return self._postfix(tree, op)

    def rule_power(self, tree):
        e = self.value(tree.children[2])
        exponent = re.sub(r"^\{(.*)\}$", r"\1", self.text(tree.children[2]).strip())
        return self._postfix(tree, lambda v: self._matrix_power(v, e, tree, exponent) if self._matrix(v)
                             else self._power(v, e))

    def rule_hadamard_power(self, tree):
        e = self.value(tree.children[2])
        return self._postfix(tree, lambda v: self._power(v, e))

    @staticmethod
    def _matrix(v: Val) -> bool:
        return v.kind == MAT and not v.alts

    def _matrix_power(self, v: Val, e: Val, tree, exponent: str) -> Val:
        """X², X^{k}, X^(k) of a matrix: the matrix power, as textbooks write it (symbackprop prints a
        matrix's elementwise power as the Hadamard power X^∘2, X^{\\circ 2})."""
        shown = self.text(tree)
        base = self.text(tree.children[0])
        grouped = exponent if re.fullmatch(r"\w+", exponent) else f"({exponent})"
        hadamard = f"the elementwise (Hadamard) power is {base}^∘{grouped} (LaTeX {base}^{{\\circ {exponent}}})"
        k = M.integer_constant(e.node) if not e.pending and e.kind == SCALAR else None
        if k is None:
            raise Failure(f"`{shown}`: a power of a matrix is its matrix power, which needs an integer exponent",
                          hint=hadamard)
        if v.pending:
            if v.eye is not None:                   # (s·I)ᵏ = sᵏ·I
                return Val(MAT, None, v.dims, lambda d: M.matrix_power(v.build(d), k), "I",
                           eye=E.power(v.eye, E.const(k)))
            return Val(MAT, None, v.dims, lambda d: M.matrix_power(v.build(d), k), v.what)
        if len(v.dims) == 2 and not E.shapes_equal((v.dims[0],), (v.dims[1],)):
            raise Failure(f"`{shown}`: a power of a matrix is its matrix power, and this matrix "
                          f"({format_shape(v.node.shape)}) is not square",
                          hint=hadamard)
        return val(M.matrix_power(v.node, k))

    def _power(self, v: Val, e: Val) -> Val:
        return elementwise(E.power, v, e, "^")


class _Span:
    """The span from one tree item to another (for error carets over several factors)."""

    def __init__(self, first, last):
        self.meta = SimpleNamespace(empty=False, start_pos=_start(first), end_pos=_end(last))


def _start(item):
    return item.start_pos if isinstance(item, Token) else item.meta.start_pos


def _end(item):
    return item.end_pos if isinstance(item, Token) else item.meta.end_pos


def math_expression(parser, text: str, source: str | None = None, offset: int = 0, scope=None,
                    shape=None) -> tuple[Node, bool]:
    """Build one math-notation expression with `parser`'s state (a parse.Parser: its shapes, variables,
    intermediates and functions). Returns (node, row): row is True when the text is a row (xᵀ, uᵀA).

    `shape`, when given, is the shape the whole should have: it sizes a 𝟙 or I nothing else sizes
    (the printed `1/(m·n)·𝟙`) and turns a printed `0` into the zero array."""
    source = text if source is None else source
    bad = unencodable(text)
    if bad is not None:
        raise FormulaError("the formula contains bytes that are not valid UTF-8 text",
                           hint=f"character {bad} cannot be encoded; retype it")
    depth = bracket_depth(text)
    if depth > MAX_NESTING:
        raise LimitError(f"the formula is nested {depth} levels deep; the limit is {MAX_NESTING}",
                         source=source, offset=offset, hint="name intermediate results to flatten it")
    tree = parse_tree(text, source, offset)
    depth = tree_depth(tree)
    if depth > MAX_NESTING + 60:
        raise LimitError(f"the formula is nested {depth} levels deep; the limit is {MAX_NESTING}",
                         source=source, offset=offset, hint="name intermediate results to flatten it")
    builder = Builder(parser, source, offset, scope or {})
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 20 * MAX_NESTING + 4000))
    try:
        v = builder.value(tree)
    except Failure as f:                             # pragma: no cover - build() locates every failure
        raise f.cls(f.message, source=source, offset=offset, length=len(text), hint=f.hint) from None
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
            raise ShapeError(f"{words(v)} where shape {format_shape(tuple(shape))} is due", source=source,
                             offset=offset, length=length)
        try:
            return v.build(merge(v.dims, dims))
        except Failure as f:
            raise f.cls(f.message, source=source, offset=offset, length=length, hint=f.hint) from None
    node = v.node
    if shape is not None and tuple(shape) and node.shape == () and E.is_zero(node):
        return E.zeros(tuple(shape))
    return node


