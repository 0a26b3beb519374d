"""Formula text to expression, through Python's `ast` with an explicit whitelist.

User text never reaches eval, exec, sympify or parse_expr: `ast.parse` only
builds a syntax tree, and every tree node is checked against the whitelist
below before anything is built from it.
"""
from __future__ import annotations

import ast
import builtins
import difflib
import keyword
import re
import sys
from dataclasses import dataclass, field

import sympy

from . import expr as E
from .errors import FormulaError, LimitError, ShapeError, SymbackpropError
from .expr import Node
from .rules import RULES, numpy_matmul

#: Documented resource limits (docs/formula-language.md).
MAX_FORMULA_CHARS = 100_000
MAX_NESTING = 200
MAX_GRAPH_NODES = 20_000
#: Syntax-tree nodes visited while building one formula (or claim), counting each inlined call of a
#: user-defined function again: bounds the time of `f2(t) = f1(f1(t)); f3(t) = f2(f2(t)); ...`.
MAX_EXPANSION = 250_000

NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
PRIME = "ʹ"                                          # U+02B9, a letter Python accepts in identifiers
RESERVED = (set(keyword.kwlist) | set(keyword.softkwlist) | set(dir(builtins))
            | {"np", "numpy", "math", "sympy", "value", "grads", "inputs"})


def builtin_names() -> list[str]:
    """Names users may call, read off the rule table."""
    return sorted(n for n, r in RULES.items() if r.builtin is not None)


@dataclass
class Program:
    """A parsed formula: the objective and everything named along the way."""

    source: str
    objective: Node
    variables: dict[str, Node]                      # name -> var node, in order of first use
    intermediates: dict[str, Node]                   # user-named intermediates, in order
    shapes: dict[str, tuple]
    elementwise: tuple[str, ...] = ()
    functions: tuple[str, ...] = ()
    objective_name: str | None = None
    definitions: dict[str, "FunctionDef"] = field(default_factory=dict)

    @property
    def names(self) -> dict[Node, str]:
        """node -> the user's name for it (first name wins)."""
        out: dict[Node, str] = {}
        for name, node in self.intermediates.items():
            out.setdefault(node, name)
        return out

    @property
    def dims(self) -> list[sympy.Symbol]:
        seen: dict[str, sympy.Symbol] = {}
        for shape in self.shapes.values():
            for d in shape:
                if isinstance(d, sympy.Symbol):
                    seen.setdefault(d.name, d)
        return list(seen.values())


@dataclass
class FunctionDef:
    name: str
    params: tuple[str, ...]
    body: ast.AST
    text: str                                        # the statement's text, for error carets
    offset: int
    visible: dict                                    # functions defined before this one


def parse_shapes(specs) -> dict[str, tuple]:
    """['W1=h,d', 'x=d'] (or a dict) -> {'W1': (h, d), 'x': (d,)}; dims are ints or symbols."""
    if specs is None:
        return {}
    items = specs.items() if isinstance(specs, dict) else [_split_spec(s) for s in specs]
    out: dict[str, tuple] = {}
    for name, dims in items:
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise FormulaError(f"bad variable name {name!r} in a shape", hint="write NAME=DIMS, e.g. W1=h,d")
        if name in out:
            raise FormulaError(f"shape of `{name}` given twice")
        out[name] = _dims(name, dims)
    return out


def _split_spec(spec: str):
    if "=" not in spec:
        raise FormulaError(f"bad shape {spec!r}", hint="write NAME=DIMS with comma-separated dims, e.g. --shape W1=h,d")
    name, _, dims = spec.partition("=")
    return name.strip(), dims


def _dims(name: str, dims) -> tuple:
    if isinstance(dims, str):
        dims = [d.strip() for d in dims.split(",")] if dims.strip() else []
    out = []
    for d in dims:
        if isinstance(d, (int, sympy.Integer)) or (isinstance(d, str) and d.isdigit()):
            d = int(d)
            if d < 1:
                raise FormulaError(f"shape of `{name}`: dims must be positive, got {d}")
            if d > 10**6:
                raise LimitError(f"shape of `{name}`: dim {d} is larger than the limit 1000000")
            out.append(d)
        elif isinstance(d, sympy.Symbol) or (isinstance(d, str) and NAME_RE.match(d)):
            out.append(sympy.Symbol(str(d), integer=True, positive=True))
        else:
            raise FormulaError(f"shape of `{name}`: bad dim {d!r}",
                               hint="dims are positive integers or names, e.g. --shape W1=h,d or --shape x=3")
    if len(out) > 2:
        raise FormulaError(f"shape of `{name}` has {len(out)} dims; symbackprop handles scalars, vectors and matrices")
    return tuple(out)


class Parser:
    """Builds expression nodes from formula text. One instance per formula."""

    def __init__(self, shapes=None, elementwise=(), functions=(), allow_primes=False):
        self.shapes = parse_shapes(shapes)
        self.elementwise = tuple(elementwise)
        self.functions = tuple(functions)
        self.allow_primes = allow_primes
        self.variables: dict[str, Node] = {}
        self.intermediates: dict[str, Node] = {}
        self.definitions: dict[str, FunctionDef] = {}
        self.visits, self._in_program = 0, False
        self.unshaped_uses: dict[str, list] = {}      # variable without a shape -> [(_Ctx, ast node)] where used
        for name in self.elementwise + self.functions:
            self.check_new_name(name, "function", None, None)
            if name in RULES:
                raise FormulaError(f"`{name}` is a built-in; pick another name for the abstract function")
        dims = {d.name for s in self.shapes.values() for d in s if isinstance(d, sympy.Symbol)}
        for name in self.shapes:
            if name in dims:
                raise FormulaError(f"`{name}` names both a variable and a dimension",
                                   hint="use different names for dims (e.g. d, h) and variables")

    # ----- statements -----

    def parse_program(self, source: str) -> Program:
        self.visits, self._in_program = 0, True
        try:
            return self._parse_program(source)
        finally:
            self._in_program = False

    def _parse_program(self, source: str) -> Program:
        if not isinstance(source, str):
            raise FormulaError("the formula must be text")
        if len(source) > MAX_FORMULA_CHARS:
            raise LimitError(f"the formula is {len(source)} characters long; the limit is {MAX_FORMULA_CHARS}",
                             hint="split it into named intermediates, or use the Python API")
        if "\x00" in source:
            raise FormulaError("the formula contains a null byte", source=source, offset=source.index("\x00"))
        bad = _unencodable(source)
        if bad is not None:
            raise FormulaError("the formula contains bytes that are not valid UTF-8 text",
                               hint=f"character {bad} cannot be encoded; retype it")
        _refuse_latex(source, source, 0)
        statements = list(_split_statements(source))
        if not statements:
            raise FormulaError("the formula is empty", hint="e.g. symbackprop derive '0.5 * norm(A @ x - b)**2' --shape A=m,n --shape x=n --shape b=m")
        try:
            objective, objective_name = self._statements(statements, source)
        except ShapeError as e:
            self._blame_juxtaposition(e)
            raise
        if not self.variables:
            raise FormulaError("the formula has no variables to differentiate with respect to",
                               source=source, offset=statements[-1][1], length=len(statements[-1][0]),
                               hint="use names for the inputs, e.g. 0.5 * norm(A @ x - b)**2")
        unused = [n for n in self.shapes if n not in self.variables]
        if unused:
            self._blame_juxtaposition(None, unused[0])
            near = difflib.get_close_matches(unused[0], list(self.variables), 1)
            raise FormulaError(f"a shape is given for `{unused[0]}`, which the formula does not use",
                               hint=f"did you mean `{near[0]}`?" if near else "remove that --shape, or check the spelling")
        n_nodes = len(E.walk(objective))
        if n_nodes > MAX_GRAPH_NODES:
            raise LimitError(f"the formula's graph has {n_nodes} nodes; the limit is {MAX_GRAPH_NODES}")
        return Program(source, objective, dict(self.variables), dict(self.intermediates), self.shapes,
                       self.elementwise, self.functions, objective_name, dict(self.definitions))

    def _statements(self, statements, source):
        """Build every statement; return the objective node and its name (if the last statement names it)."""
        objective = objective_name = None
        for i, (text, offset) in enumerate(statements):
            last = i == len(statements) - 1
            m = _DEF_RE.match(text)
            if m:
                if last:
                    raise FormulaError("the last statement defines a function; it must be the objective",
                                       source=source, offset=offset, length=len(text),
                                       hint="end the formula with the expression to differentiate, e.g. h(f(x), g(x))")
                self._define(m, text, offset, source)
                continue
            m = _ASSIGN_RE.match(text)
            if m:
                name = m.group(1)
                self.check_new_name(name, "intermediate", source, offset + m.start(1))
                node = self.expression(text[m.end():], source, offset + m.end())
                self.intermediates[name] = node
                if last:
                    objective, objective_name = node, name
                continue
            node = self.expression(text, source, offset)
            if last:
                objective = node
            else:
                raise FormulaError("only the last statement may be a bare expression", source=source,
                                   offset=offset, length=len(text),
                                   hint="name it (z = ...) to use it later, or move it to the end")
        if objective.shape != ():
            raise ShapeError(f"the objective must be a scalar, but it has shape {E.format_shape(objective.shape)}",
                             source=source, offset=statements[-1][1], length=len(statements[-1][0]),
                             hint="reduce it, e.g. with sum(...), norm(...)**2 or a @ b")
        return objective, objective_name

    # ----- names written together: `Wx` for `W @ x` -----

    def _blame_juxtaposition(self, error: ShapeError | None, unused: str | None = None):
        """Raise a clearer error when a shapeless variable reads as known names written together.

        Called when the formula has already failed: with a shape error (`error`, blame a name used
        inside its span) or with a shape given for a name the formula never uses (`unused`, blame a
        name that holds it). Formulas that parse are never affected.
        """
        for name, found in self.unshaped_uses.items():
            uses = [(ctx.source, *ctx.where(node)) for ctx, node in found]
            if unused is not None:
                reading = self._reading(name, must_hold=unused)
                if reading is None and len(name) > len(unused):   # `Wx` with a shape for W only
                    rest = name[len(unused):] if name.startswith(unused) else name[:-len(unused)] if name.endswith(unused) else ""
                    if NAME_RE.match(rest) or rest == "T":
                        reading = self._reading(name, must_hold=unused, extra=(rest,))
                where = uses[0]
            else:
                where = next((u for u in uses if error.source is None or (
                    u[0] == error.source and error.offset is not None
                    and error.offset <= u[1] < error.offset + error.length)), None)
                reading = self._reading(name) if where is not None else None
            if reading is not None:
                raise self._juxtaposition_error(name, where, *reading)

    def _reading(self, name: str, must_hold: str | None = None, extra=()):
        """The best way to read `name` as known names written together, each maybe followed by T
        (a transpose): ([(part, transposed)], fits) or None. Readings whose products fit the shapes
        come first, then those with fewer parts. With `must_hold`, None unless some reading holds it."""
        if len(name) > 64:
            return None
        known = (set(self.shapes) | set(self.intermediates) | set(self.variables) | set(extra)) - {name}
        known = sorted((k for k in known if k in name), key=lambda k: (-len(k), k))
        steps = {i: [(k, t) for k in known if name.startswith(k, i)
                     for t in (False, True) if not t or name.startswith("T", i + len(k))]
                 for i in range(len(name))}
        ends = {len(name)}                           # positions from which the rest of the name reads fully
        for i in reversed(range(len(name))):
            if any(i + len(k) + t in ends for k, t in steps[i]):
                ends.add(i)
        readings: list[list[tuple[str, bool]]] = []

        def split(i, parts):
            if i == len(name):
                if len(parts) > 1 or (parts and parts[0][1]):
                    readings.append(parts)
                return
            for k, t in steps[i]:
                if len(readings) < 200 and i + len(k) + t in ends:
                    split(i + len(k) + t, parts + [(k, t)])

        split(0, [])
        shaped = set(self.shapes) | set(self.intermediates) | set(extra)
        readings = [r for r in readings if any(p in shaped for p, _ in r)]
        if not readings or (must_hold is not None and not any(p == must_hold for r in readings for p, _ in r)):
            return None
        scored = [(self._fits(r), r) for r in readings]
        rank = {True: 0, None: 1, False: 2}
        fits, best = min(scored, key=lambda s: (rank[s[0]], len(s[1]), [p for p, _ in s[1]]))
        return best, fits

    def _node(self, part: str):
        if part in self.intermediates:
            return self.intermediates[part]
        if part in self.variables:
            return self.variables[part]
        return E.var(part, self.shapes[part]) if part in self.shapes else None

    def _fits(self, reading) -> bool | None:
        """Whether the product of the parts fits their shapes (None: a part's shape is unknown)."""
        nodes = [self._node(p) for p, _ in reading]
        if any(n is None for n in nodes):
            return None
        try:
            acc = None
            for node, (_, transposed) in zip(nodes, reading):
                node = E.transpose(node) if transposed else node
                acc = node if acc is None else E.mul(acc, node) if () in (acc.shape, node.shape) else numpy_matmul(acc, node)
        except ShapeError:
            return False
        return True

    def _juxtaposition_error(self, name, where, reading, fits) -> FormulaError:
        source, offset, length = where
        read, hint = self._juxtaposition_words(reading, fits)
        return FormulaError(f"`{name}` is not a known name and has no shape; {read}", source=source,
                            offset=offset, length=length, hint=hint)

    def _juxtaposition_words(self, reading, fits, operand: str | None = None, function: str | None = None):
        """('it reads as …', 'did you mean `…`? …') for a reading. `operand` is the text of what
        followed the name: `(x - y)` for `WT(x - y)`, read `W.T @ (x - y)`, or `relu(x)` for
        `Wrelu(x)` (then `function` is relu), read `W @ relu(x)`."""
        nodes = [self._node(p) for p, _ in reading]
        words = [p + (".T" if t else "") + (f" ({E.format_shape((E.transpose(n) if t else n).shape)})" if n is not None else "")
                 for (p, t), n in zip(reading, nodes)] + ([function] if function else [])

        def product(reading):
            text = reading[0][0] + (".T" if reading[0][1] else "")
            for (p, t), n, prev in zip(reading[1:], nodes[1:], nodes):
                scalar = (n is not None and n.shape == ()) or (prev is not None and prev.shape == ())
                text += (" * " if scalar else " @ ") + p + (".T" if t else "")
            if operand is not None:
                text += (" * " if nodes[-1] is not None and nodes[-1].shape == () else " @ ") + operand
            return text

        text = product(reading)
        transposes = any(t for _, t in reading)
        if len(words) == 1:
            shape = f" ({E.format_shape(nodes[0].shape)})" if nodes[0] is not None else ""
            read = f"it reads as {reading[0][0]}{shape} followed by T"
            hint = f"did you mean `{text}`? A transpose is written .T"
            if operand is not None:
                hint += "; products need an operator: @ for matrices and vectors, * for scalars"
        else:
            read = "it reads as " + ", ".join(words[:-1]) + " and " + words[-1] + " written together"
            hint = (f"did you mean `{text}`? Products need an operator: @ for matrices and vectors, * for scalars"
                    + ("; a transpose is written .T" if transposes else ""))
        if fits is False:
            # The shapes do not fit in this order: offer the variant with the fewest factors transposed that does.
            variants = sorted(([(p, t ^ bool(k >> i & 1)) for i, (p, t) in enumerate(reading)]
                               for k in range(1, 2 ** min(len(reading), 4))), key=lambda r: sum(
                                   a[1] != b[1] for a, b in zip(r, reading)))
            fit = next((v for v in variants if self._fits(v)), None)
            hint += (f". As written the shapes do not fit; `{product(fit)}` does" if fit is not None
                     else ". As written the shapes do not fit: reorder or transpose the factors")
        unknown = [p for (p, _), n in zip(reading, nodes) if n is None]
        if unknown:
            hint += f", and give {unknown[0]} a shape with --shape {unknown[0]}=…"
        return read, hint

    def _define(self, m, text, offset, source):
        name = m.group(1)
        self.check_new_name(name, "function", source, offset + m.start(1))
        params = tuple(p.strip() for p in m.group(2).split(",")) if m.group(2).strip() else ()
        for p in params:
            if not NAME_RE.match(p) or p in RESERVED:
                raise FormulaError(f"bad parameter name {p!r} in the definition of {name}", source=source,
                                   offset=offset, length=len(text))
        if len(set(params)) != len(params):
            raise FormulaError(f"repeated parameter in the definition of {name}", source=source, offset=offset)
        body_text = text[m.end():]
        tree = self.parse_ast(body_text, source, offset + m.end())
        self.definitions[name] = FunctionDef(name, params, tree, source, offset + m.end(), dict(self.definitions))

    def check_new_name(self, name, what, source, offset):
        if not NAME_RE.match(name):                  # Python would NFKC-normalise a non-ASCII name: `aﬁ` is `afi`
            raise FormulaError(f"`{name}` is not a valid {what} name", source=source, offset=offset,
                               length=len(name), hint="names are ASCII letters, digits and _, starting with a letter")
        if name in RESERVED or name.startswith("_"):
            raise FormulaError(f"`{name}` is reserved and cannot name a {what}", source=source, offset=offset,
                               length=len(name), hint="pick another name")
        if name in RULES and RULES[name].builtin is not None:
            raise FormulaError(f"`{name}` is a built-in function and cannot name a {what}", source=source,
                               offset=offset, length=len(name), hint="pick another name")
        taken = (name in self.intermediates or name in self.definitions or name in self.variables
                 or (what != "function" and (name in self.elementwise or name in self.functions)))
        if taken or (what != "function" and name in self.shapes):
            raise FormulaError(f"`{name}` is already defined", source=source, offset=offset, length=len(name),
                               hint="each name is defined once; pick a new name")

    # ----- expressions -----

    def expression(self, text: str, source: str | None = None, offset: int = 0, scope=None) -> Node:
        """Parse one expression (`text` sits at `offset` of `source`, for error carets)."""
        source = text if source is None else source
        if not self._in_program:
            self.visits = 0
        tree = self.parse_ast(text, source, offset)
        return self._build(tree, source, offset, scope or {}, dict(self.definitions))

    def parse_ast(self, text, source, offset):
        bad = _unencodable(text)
        if bad is not None:                          # lone surrogates (undecodable bytes on the command line)
            raise FormulaError("the formula contains bytes that are not valid UTF-8 text",
                               hint=f"character {bad} cannot be encoded; retype it")
        _refuse_latex(text, source, offset)
        if self.allow_primes:
            text = re.sub(r"(?<=[A-Za-z0-9_])'", PRIME, text)
        lead = len(text) - len(text.lstrip())
        body = text.lstrip().rstrip()
        try:
            tree = ast.parse(body, mode="eval")
        except SyntaxError as e:
            where = offset + lead + _char_offset_lines(body.split("\n"), e.lineno or 1, (e.offset or 1) - 1, chars=True)
            raise FormulaError(f"syntax error: {e.msg}", source=source, offset=min(where, offset + len(text)),
                               hint="formulas use Python syntax: numbers, names, * / + - ** @ .T, calls like "
                                    "relu(x), and ; or newlines between statements") from None
        except (RecursionError, MemoryError):
            raise LimitError(f"the formula is nested too deeply (limit {MAX_NESTING} levels)") from None
        depth = _depth(tree.body)
        if depth > MAX_NESTING:
            raise LimitError(f"the formula is nested {depth} levels deep; the limit is {MAX_NESTING}",
                             source=source, offset=offset + lead, hint="name intermediate results to flatten it")
        tree.src_lines = body.split("\n")                    # type: ignore[attr-defined]
        tree.src_shift = offset + lead                       # type: ignore[attr-defined]
        return tree

    def _build(self, tree, source, offset, scope, visible) -> Node:
        ctx = _Ctx(self, source, tree, scope, visible)
        old = sys.getrecursionlimit()
        sys.setrecursionlimit(max(old, 10 * MAX_NESTING + 2000))
        try:
            return ctx.visit(tree.body)
        finally:
            sys.setrecursionlimit(old)


class _Ctx:
    """Walks one expression's syntax tree, allowing only whitelisted constructs."""

    BINOPS = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div", ast.Pow: "pow", ast.MatMult: "@"}

    def __init__(self, parser: Parser, source, tree, scope, visible):
        self.p, self.source, self.tree, self.scope, self.visible = parser, source, tree, scope, visible

    def where(self, node) -> tuple[int, int]:
        lines = self.tree.src_lines
        start = _char_offset_lines(lines, node.lineno, node.col_offset)
        end_line = getattr(node, "end_lineno", node.lineno)
        end = _char_offset_lines(lines, end_line, getattr(node, "end_col_offset", node.col_offset + 1))
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

    def visit_Constant(self, node):
        v = node.value
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            self.fail(node, f"{_describe(node)} is not allowed in formulas", hint="only real numbers are allowed")
        text = self.segment(node).replace("_", "")
        if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))) or (isinstance(v, int) and v > 1e300):
            self.fail(node, "number too large", hint="numbers must be finite 64-bit floats", cls=LimitError)
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
            dims = {d.name for s in self.p.shapes.values() for d in s if isinstance(d, sympy.Symbol)}
            if name in dims:
                self.fail(node, f"`{name}` is a dimension, not a variable", hint="dims only appear in --shape")
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
        inner = _Ctx(self.p, fdef.text, fdef.body, dict(zip(fdef.params, args)), fdef.visible)
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
                  hint=hint + f" To use an unspecified function, declare it: --elementwise {name} (applied entrywise) "
                              f"or --function {name} (scalar arguments).")


# ----- helpers -----

_DEF_RE = re.compile(r"\s*([A-Za-z_]\w*)\s*\(([^()]*)\)\s*=(?!=)")
_ASSIGN_RE = re.compile(r"\s*([A-Za-z_]\w*)\s*=(?!=)")


def _split_statements(source: str):
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


def _refuse_latex(text: str, source: str, offset: int):
    """A backslash (other than a line continuation, or in a # comment) means LaTeX, which the formula
    language is not."""
    m = next((m for m in _LATEX_RE.finditer(text)
              if "#" not in text[text.rfind("\n", 0, m.start()) + 1:m.start()]), None)
    if m is None:
        return
    command = m.group(0) if m.group(1).isalpha() else ""
    raise FormulaError("LaTeX input is not supported yet (a math notation is planned)"
                       + (f": `{command}` is a LaTeX command" if command else ": formulas contain no backslashes"),
                       source=source, offset=offset + m.start(), length=len(command) or 1,
                       hint="write the formula in the formula language (docs/formula-language.md): a / b for "
                            "\\frac{a}{b}, * for \\cdot, x.T for x^\\top, norm(v)**2 for \\|v\\|^2, @ for matrix products")


def _char_offset_lines(lines, lineno, col, chars=False):
    """Offset in the joined text of (lineno, col); ast gives col in UTF-8 bytes, SyntaxError in chars."""
    lineno = min(max(lineno, 1), len(lines))
    line = lines[lineno - 1]
    if not chars:
        col = len(line.encode("utf-8")[:col].decode("utf-8", errors="ignore"))
    return sum(len(l) + 1 for l in lines[:lineno - 1]) + min(max(col, 0), len(line))


def _unencodable(text: str):
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return f"{ascii(text[e.start])} at offset {e.start}"
    return None


def _depth(root) -> int:
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


def parse_formula(source: str, shapes=None, elementwise=(), functions=()) -> Program:
    """Parse a formula (statements separated by ';' or newlines; the last is the objective).

    >>> p = parse_formula("0.5 * norm(A @ x - b)**2", shapes={"A": "m,n", "x": "n", "b": "m"})
    >>> sorted(p.variables), p.objective.shape
    (['A', 'b', 'x'], ())
    """
    return Parser(shapes, elementwise, functions).parse_program(source)
