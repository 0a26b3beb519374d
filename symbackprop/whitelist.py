"""The whitelisted syntax-tree walker: builds expression nodes from a Python syntax tree, allowing only
the constructs of the formula language, and the parser's small text helpers."""
from __future__ import annotations

import ast
import difflib
import re
from typing import TYPE_CHECKING

import sympy

from . import expr as E
from .errors import FormulaError, Hint, LimitError, ShapeError, SymbackpropError
from .expr import Node
from .program import (
    IDENTITY_HINT,
    MAX_EXPANSION,
    NAME_RE,
    PRIME,
    RESERVED,
    FunctionDef,
    builtin_names,
    identity_lookalike,
)
from .rules import RULES, numpy_matmul

if TYPE_CHECKING:
    from .parse import Parser


class Walker:
    """Walks one expression's syntax tree, allowing only whitelisted constructs."""

    BINOPS = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div", ast.Pow: "pow", ast.MatMult: "@"}

    def __init__(self, parser: Parser, source, tree, scope, visible):
        self.p, self.source, self.tree, self.scope, self.visible = parser, source, tree, scope, visible

    def where(self, node) -> tuple[int, int]:
        lines = self.tree.src_lines
        start = char_offset_lines(lines, node.lineno, node.col_offset)
        end_line = getattr(node, "end_lineno", node.lineno)
        end = char_offset_lines(lines, end_line, getattr(node, "end_col_offset", node.col_offset + 1))
        return self.tree.src_shift + start, max(1, end - start)

    def fail(self, node, message, hint=None, cls=FormulaError):
        off, length = self.where(node)
        raise cls(message, source=self.source, offset=off, length=length, hint=hint)

    def segment(self, node) -> str:
        off, length = self.where(node)
        return self.source[off:off + length]

    def visit(self, node) -> Node:
        self.p.visits += 1
        if self.p.visits > MAX_EXPANSION:
            raise LimitError(f"the formula expands to more than {MAX_EXPANSION} operations (counting each call of "
                             f"a defined function in full)", hint="define fewer nested function calls, or name "
                             "intermediate results (z = ...) instead of defining functions")
        method = getattr(self, "visit_" + type(node).__name__, None)
        if method is None:
            self.fail(node, f"{_describe(node)} is not allowed in formulas",
                      hint="formulas use numbers, names, + - * / ** @, .T and calls of built-in or declared functions")
        try:
            return method(node)
        except SymbackpropError as e:
            off, length = self.where(node)
            raise e.located(self.source, off, length)

    #: A literal that rounds to 0 with a decimal exponent beyond this is refused (read exactly, 1e-400 is fine).
    MAX_EXPONENT_DIGITS = 1000

    def visit_Constant(self, node):
        v = node.value
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            self.fail(node, f"{_describe(node)} is not allowed in formulas", hint="only real numbers are allowed")
        text = self.segment(node).replace("_", "")
        if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))) or (isinstance(v, int) and v > 1e300):
            self.fail(node, "number too large", hint="numbers must be finite 64-bit floats", cls=LimitError)
        mantissa, _, exponent = text.lower().partition("e")
        digits = exponent.lstrip("+-")
        if isinstance(v, float) and v == 0.0 and digits and (len(digits) > 6 or int(digits) > self.MAX_EXPONENT_DIGITS):
            if mantissa.strip("0."):                       # 0.1e-999991010: exact, a rational of a billion
                self.fail(node, "number too small: it rounds to 0 in 64-bit floats",   # digits (minutes of SymPy)
                          hint="numbers must be 0 or at least about 5e-324 in size; rescale the formula",
                          cls=LimitError)
            return E.const(0)
        try:
            value = sympy.Rational(text) if len(text) < 40 else sympy.Float(v)
        except (TypeError, ValueError):
            value = sympy.Float(v)
        return E.const(value)

    def visit_Name(self, node):
        name = node.id
        if PRIME in name:
            self.fail(node, f"`{name.replace(PRIME, chr(39))}` must be called, as in {name.replace(PRIME, chr(39))}(z)")
        if name in self.scope:
            return self.scope[name]
        if name in self.p.intermediates:
            return self.p.intermediates[name]
        if name in RULES and RULES[name].builtin is not None or name in self.visible or name in self.p.elementwise + self.p.functions:
            self.fail(node, f"`{name}` is a function; call it, as in {name}(x)")
        if name in RESERVED or name.startswith("_") or not NAME_RE.match(name):
            self.fail(node, f"`{name}` is reserved and cannot be used as a variable", hint="rename it")
        if name not in self.p.variables:
            dims = {d.name: d for s in self.p.shapes.values() for d in s if isinstance(d, sympy.Symbol)}
            if name in dims:                         # a size is a number: 2 * x / n
                return E.const(dims[name])
            why = identity_lookalike(name, dims)
            if why:
                self.fail(node, why, hint=IDENTITY_HINT)
            self.p.variables[name] = E.var(name, self.p.shapes.get(name, ()))
        if name not in self.p.shapes:
            uses = self.p.unshaped_uses.setdefault(name, [])
            if len(uses) < 100:
                uses.append((self, node))
        return self.p.variables[name]

    def visit_BinOp(self, node):
        op = self.BINOPS.get(type(node.op))
        if op is None:
            self.fail(node, f"the operator {_op_symbol(node.op)} is not allowed in formulas",
                      hint="use + - * / ** and @")
        a, b = self.visit(node.left), self.visit(node.right)
        try:
            if op == "@":
                return numpy_matmul(a, b)
            if op == "pow" and b.op == "const" and a.op == "const":
                _check_const_pow(a, b)
            return E.apply(op, *E.broadcast_operands(a, b))
        except ShapeError as e:
            sym = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**", "@": "@"}[op]
            whole, left = self.segment(node), self.segment(node.left)
            right = whole[len(left):].strip()[len(sym):].strip() if whole.startswith(left) else self.segment(node.right)
            self.fail(node, f"`{left} {sym} {right}` combines "
                            f"{_shape_words(a.shape)} with {_shape_words(b.shape)}: {e.message}", hint=e.hint, cls=ShapeError)

    def visit_UnaryOp(self, node):
        if isinstance(node.op, ast.USub):
            return E.neg(self.visit(node.operand))
        if isinstance(node.op, ast.UAdd):
            return self.visit(node.operand)
        self.fail(node, f"the operator {_op_symbol(node.op)} is not allowed in formulas")

    def visit_Attribute(self, node):
        if node.attr != "T":
            self.fail(node, f"attribute `.{node.attr}` is not allowed in formulas", hint="only .T (transpose) is allowed")
        return E.transpose(self.visit(node.value))

    def visit_Call(self, node):
        if isinstance(node.func, ast.Attribute):
            self.fail(node.func, f"attribute access `.{node.func.attr}` is not allowed in formulas",
                      hint=f"call built-ins directly, e.g. {node.func.attr}(x) rather than np.{node.func.attr}(x)")
        if not isinstance(node.func, ast.Name):
            self.fail(node.func, "only named functions can be called", hint="e.g. relu(x) or tanh(W @ x)")
        if node.keywords and not (isinstance(node.func, ast.Name) and node.func.id in RULES
                                  and RULES[node.func.id].builtin is not None and RULES[node.func.id].keywords):
            self.fail(node.keywords[0].value, "keyword arguments are not allowed in formulas"
                      + (f" (`{node.func.id}` takes none)" if isinstance(node.func, ast.Name) else ""),
                      hint="only sum, mean, softmax and logsumexp take a keyword: axis=0, axis=1 or axis=-1")
        if any(isinstance(a, ast.Starred) for a in node.args):
            self.fail(node, "starred arguments are not allowed in formulas")
        name = node.func.id
        primes = name.count(PRIME)
        base = name.replace(PRIME, "")
        if primes and (not name.endswith(PRIME * primes)):
            self.fail(node.func, f"bad derivative name `{name.replace(PRIME, chr(39))}`")
        if not primes and name not in self.visible and name not in self.p.elementwise + self.p.functions and (
                name not in RULES or RULES[name].builtin is None):
            if name in self.scope or name in self.p.intermediates or name in self.p.variables:
                self.fail(node.func, f"`{name}` is a variable, not a function")
            if name in RESERVED or name.startswith("_"):
                self.fail(node.func, f"`{name}` is reserved and is not a formula function",
                          hint="formulas may call the built-ins (relu, tanh, norm, …) and functions they define or declare")
            self._unknown(node, name)
        args = [self.visit(a) for a in node.args]
        if primes:
            return self._derivative(node, base, primes, args)
        if name in self.visible:
            return self._inline(node, self.visible[name], args)
        if name in self.p.elementwise:
            self._arity(node, name, 1)
            return Node("phi", (args[0],), (name, 0))
        if name in self.p.functions:
            try:
                return Node("fn", tuple(args), (name, ()))
            except ShapeError as e:
                self.fail(node, e.message, hint=e.hint, cls=ShapeError)
        rule = RULES[name]
        self._arity(node, name, rule.builtin)
        kwargs = self._keywords(node, name, rule.keywords)
        try:
            return rule.build(*args, **kwargs) if rule.build else E.apply(name, *args)
        except ShapeError as e:
            self.fail(node, f"`{self.segment(node)}`: {e.message}", hint=e.hint, cls=ShapeError)

    def _derivative(self, node, base, primes, args):
        if base in self.p.elementwise:
            self._arity(node, base, 1)
            return Node("phi", (args[0],), (base, primes))
        if base in self.p.functions and len(args) == 1:
            return Node("fn", tuple(args), (base, (0,) * primes))
        rule = RULES.get(base)
        if rule is not None and rule.kind == "elementwise" and rule.builtin is not None and primes == 1:
            self._arity(node, base, 1)
            return Node(base + "'", (args[0],))
        self.fail(node.func, f"no derivative `{base}{chr(39) * primes}` is known",
                  hint="write f'(z) for a built-in elementwise function (relu'(z), tanh'(z)) or one declared with --elementwise")

    def _inline(self, node, fdef: FunctionDef, args):
        if len(args) != len(fdef.params):
            self.fail(node, f"{fdef.name} takes {len(fdef.params)} argument{'s' * (len(fdef.params) != 1)}, got {len(args)}")
        inner = Walker(self.p, fdef.text, fdef.body, dict(zip(fdef.params, args)), fdef.visible)
        return inner.visit(fdef.body.body)

    def _keywords(self, node, name, allowed) -> dict:
        """A built-in's keyword arguments: only those its rule names, each an integer literal."""
        out = {}
        for kw in node.keywords:
            if kw.arg is None:
                self.fail(node, "**-arguments are not allowed in formulas")
            if kw.arg not in allowed:
                self.fail(kw.value, f"`{name}` takes no keyword `{kw.arg}`",
                          hint=f"{name} takes {', '.join(k + '=' for k in allowed)}")
            if kw.arg in out:
                self.fail(kw.value, f"`{kw.arg}` given twice")
            v = kw.value
            neg = isinstance(v, ast.UnaryOp) and isinstance(v.op, ast.USub)
            lit = v.operand if neg else v
            if not (isinstance(lit, ast.Constant) and type(lit.value) is int):
                self.fail(v, f"{kw.arg}= takes an integer, as in {name}(Z, {kw.arg}=1)")
            out[kw.arg] = -lit.value if neg else lit.value
        return out

    def _arity(self, node, name, n):
        if len(node.args) != n:
            self.fail(node, f"{name} takes {n} argument{'s' * (n != 1)}, got {len(node.args)}")

    def _unknown(self, node, name):
        func = node.func
        known = builtin_names() + list(self.visible) + list(self.p.elementwise) + list(self.p.functions)
        args = ", ".join(self.segment(a) for a in node.args)
        reading = self.p._reading(name) if len(node.args) == 1 else None
        if reading is not None:                               # `WT(x - y)`: a product, not a call
            read, hint = self.p._juxtaposition_words(*reading, operand=f"({args})")
            self.fail(func, f"unknown function `{name}`; {read}", hint=hint)
        shaped = set(self.p.shapes) | set(self.p.intermediates)
        for fn in sorted(known, key=lambda k: (-len(k), k)):  # `Wrelu(x)`: W @ relu(x)
            prefix = name[:-len(fn)]
            if name.endswith(fn) and prefix:
                reading = self.p._reading(prefix) or (([(prefix, False)], None) if prefix in shaped else None)
                if reading is not None:
                    read, hint = self.p._juxtaposition_words(*reading, operand=f"{fn}({args})", function=fn)
                    self.fail(func, f"unknown function `{name}`; {read}", hint=hint)
        near = difflib.get_close_matches(name, known, 1)
        hint = f"did you mean `{near[0]}`?" if near else "see docs/formula-language.md for the built-ins."
        self.fail(func, f"unknown function `{name}`",
                  hint=hint + Hint(f" To use an unspecified function, declare it: --elementwise {name} (applied "
                                   f"entrywise) or --function {name} (scalar arguments).",
                                   f" To use an unspecified function, add {name} to Elementwise functions (applied "
                                   f"entrywise) or to Scalar functions (scalar arguments)."))


# ----- helpers -----

DEF_RE = re.compile(r"\s*([A-Za-z_]\w*)\s*\(([^()]*)\)\s*=(?!=)")
ASSIGN_RE = re.compile(r"\s*([A-Za-z_]\w*)\s*=(?!=)")


def split_statements(source: str):
    """Yield (text, offset) for each statement, split at ';' and newlines outside brackets."""
    depth, start, comment = 0, 0, False
    for i, ch in enumerate(source + ";"):
        if comment and ch != "\n" and i < len(source):      # a ; inside a comment separates nothing
            continue
        comment = False
        if ch == "#":
            comment = True
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth = max(0, depth - 1)
        elif ch in ";\n" and (depth == 0 or ch == ";") or i == len(source):
            text = source[start:i]
            hash_at = text.find("#")
            if hash_at >= 0:
                text = text[:hash_at]
            if text.strip():
                yield text, start
            start, depth = i + 1, 0 if ch == ";" else depth


_LATEX_RE = re.compile(r"\\(?![ \t]*(?:\r?\n|\Z))([A-Za-z]+|.?)")


def refuse_latex(text: str, source: str, offset: int):
    """A backslash (other than a line continuation, or in a # comment) means LaTeX, which the formula
    language is not."""
    m = next((m for m in _LATEX_RE.finditer(text)
              if "#" not in text[text.rfind("\n", 0, m.start()) + 1:m.start()]), None)
    if m is None:
        return
    command = m.group(0) if m.group(1).isalpha() else ""
    raise FormulaError("this looks like LaTeX, and the formula is read in NumPy notation"
                       + (f": `{command}` is a LaTeX command" if command else ": NumPy notation has no backslashes"),
                       source=source, offset=offset + m.start(), length=len(command) or 1,
                       hint="to read LaTeX, switch to the math notation: --notation math (or --notation auto, the "
                            "default, which detects it; in Python notation=\"math\"). In NumPy notation write a / b "
                            "for \\frac{a}{b}, * for \\cdot, x.T for x^\\top, norm(v)**2 for \\|v\\|^2, @ for "
                            "matrix products")


def char_offset_lines(lines, lineno, col, chars=False):
    """Offset in the joined text of (lineno, col); ast gives col in UTF-8 bytes, SyntaxError in chars."""
    lineno = min(max(lineno, 1), len(lines))
    line = lines[lineno - 1]
    if not chars:
        col = len(line.encode("utf-8")[:col].decode("utf-8", errors="ignore"))
    return sum(len(l) + 1 for l in lines[:lineno - 1]) + min(max(col, 0), len(line))


def unencodable(text: str):
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return f"{ascii(text[e.start])} at offset {e.start}"
    return None


def nesting_depth(root) -> int:
    best, stack = 0, [(root, 1)]
    while stack:
        node, d = stack.pop()
        best = max(best, d)
        stack.extend((c, d + 1) for c in ast.iter_child_nodes(node))
    return best


def _check_const_pow(a: Node, b: Node):
    try:
        val = float(a.attrs[0]) ** float(b.attrs[0])
        if isinstance(val, complex) or abs(val) > 1e300:
            raise OverflowError
    except (OverflowError, ZeroDivisionError, ValueError):
        raise FormulaError("this constant power is too large or undefined", hint="numbers must be finite 64-bit floats") from None


def _describe(node) -> str:
    names = {"Lambda": "a lambda", "Subscript": "indexing", "Compare": "a comparison", "BoolOp": "a boolean operator",
             "IfExp": "an if-expression", "ListComp": "a comprehension", "GeneratorExp": "a generator",
             "List": "a list", "Tuple": "a tuple", "Dict": "a dict", "Set": "a set", "JoinedStr": "an f-string",
             "NamedExpr": "the := operator", "Await": "await", "Yield": "yield", "Starred": "a starred expression"}
    kind = type(node).__name__
    if kind == "Constant":
        return f"the constant {node.value!r}"[:60]
    return names.get(kind, f"a {kind} expression")


def _op_symbol(op) -> str:
    return {ast.FloorDiv: "//", ast.Mod: "%", ast.LShift: "<<", ast.RShift: ">>", ast.BitOr: "|", ast.BitXor: "^",
            ast.BitAnd: "&", ast.Invert: "~", ast.Not: "not"}.get(type(op), type(op).__name__)


def _shape_words(shape) -> str:
    return "a scalar" if not shape else f"({', '.join(str(s) for s in shape)}{',' if len(shape) == 1 else ''})"
