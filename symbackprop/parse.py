"""Formula text to expression, through Python's `ast` with an explicit whitelist.

User text never reaches eval, exec, sympify or parse_expr: `ast.parse` only
builds a syntax tree, and every tree node is checked against the whitelist
(whitelist.py) before anything is built from it. This module holds the
program-level parser: statements, definitions, `let` names and the reading of
juxtaposed names; program.py holds what every notation shares.

Two notations build the same nodes: NumPy notation (Python syntax, this module and whitelist.py) and the
math notation (LaTeX and symbackprop's printed text: parse_math.py). `notation="auto"` reads a text as
math when it has a mark only maths has (math_text.detect_notation), and also when NumPy notation finds
a syntax error the math notation does not (`W x + b`).
"""
from __future__ import annotations

import ast
import difflib
import re
import sys

import sympy

from . import expr as E
from .errors import FormulaError, Hint, LimitError, ShapeError, SymbackpropError
from .expr import Node
from .program import (  # noqa: F401  (re-exported: the parser's public names)
    IDENTITY_HINT,
    MAX_EXPANSION,
    MAX_FORMULA_CHARS,
    MAX_GRAPH_NODES,
    MAX_NESTING,
    NAME_RE,
    PRIME,
    RESERVED,
    FunctionDef,
    Program,
    builtin_names,
    identity_lookalike,
    parse_shapes,
)
from .math_text import assignment as _math_assignment, check_notation, detect_notation
from .math_text import split_statements as _math_statements
from .rules import RULES, numpy_matmul
from .whitelist import (  # noqa: F401
    ASSIGN_RE,
    DEF_RE,
    Walker,
    char_offset_lines,
    nesting_depth,
    refuse_latex,
    split_statements,
    unencodable,
)


class Parser:
    """Builds expression nodes from formula text. One instance per formula."""

    def __init__(self, shapes=None, elementwise=(), functions=(), allow_primes=False, notation="numpy"):
        self.notation = check_notation(notation)      # numpy | math | auto (detected for each text)
        self._program_notation = None                 # while a program is parsed: its statements' notation
        self.row = False                              # the last math-notation expression was a row (xᵀ)
        self.shapes = parse_shapes(shapes)
        self.elementwise = tuple(elementwise)
        self.functions = tuple(functions)
        self.allow_primes = allow_primes
        self.variables: dict[str, Node] = {}
        self.intermediates: dict[str, Node] = {}
        self.definitions: dict[str, FunctionDef] = {}
        self.visits, self._in_program = 0, False
        self.unshaped_uses: dict[str, list] = {}      # variable without a shape -> [(Walker, ast node)] where used
        for name in self.elementwise + self.functions:
            self.check_new_name(name, "function", None, None)
            if name in RULES:
                raise FormulaError(f"`{name}` is a built-in; pick another name for the abstract function")
        dims = {d.name for s in self.shapes.values() for d in s if isinstance(d, sympy.Symbol)}
        self.dim_names = frozenset(dims)
        for name in self.shapes:
            if name in dims:
                raise FormulaError(f"`{name}` names both a variable and a dimension",
                                   hint="use different names for dims (e.g. d, h) and variables")
            why = identity_lookalike(name, dims)
            if why:
                raise FormulaError(why, hint=IDENTITY_HINT)

    # ----- statements -----

    def parse_program(self, source: str) -> Program:
        self.visits, self._in_program = 0, True
        self._program_notation = self.notation if self.notation != "auto" else (
            detect_notation(source) if isinstance(source, str) else "numpy")
        if self._program_notation == "numpy" and self.notation == "auto":
            self._program_notation = "auto"           # each statement may still read as maths (`W x + b`)
        try:
            return self._parse_program(source)
        finally:
            self._in_program, self._program_notation = False, None

    def _parse_program(self, source: str) -> Program:
        if not isinstance(source, str):
            raise FormulaError("the formula must be text")
        if len(source) > MAX_FORMULA_CHARS:
            raise LimitError(f"the formula is {len(source)} characters long; the limit is {MAX_FORMULA_CHARS}",
                             hint="split it into named intermediates, or use the Python API")
        if "\x00" in source:
            raise FormulaError("the formula contains a null byte", source=source, offset=source.index("\x00"))
        bad = unencodable(source)
        if bad is not None:
            raise FormulaError("the formula contains bytes that are not valid UTF-8 text",
                               hint=f"character {bad} cannot be encoded; retype it")
        if self._program_notation == "math":
            statements = list(_math_statements(source))
        else:
            refuse_latex(source, source, 0)
            statements = list(split_statements(source))
        if not statements:
            raise FormulaError("the formula is empty", hint=Hint(
                "e.g. symbackprop derive '0.5 * norm(A @ x - b)**2' --shape A=m,n --shape x=n --shape b=m",
                "e.g. the formula 0.5 * norm(A @ x - b)**2 with A=m,n x=n b=m in Shapes"))
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
                               hint=f"did you mean `{near[0]}`?" if near else Hint("remove that --shape, or check the spelling",
                                                                   "remove it from Shapes, or check the spelling"))
        n_nodes = len(E.walk(objective))
        if n_nodes > MAX_GRAPH_NODES:
            raise LimitError(f"the formula's graph has {n_nodes} nodes; the limit is {MAX_GRAPH_NODES}")
        return Program(source, objective, dict(self.variables), dict(self.intermediates), self.shapes,
                       self.elementwise, self.functions, objective_name, dict(self.definitions))

    def _statements(self, statements, source):
        """Build every statement; return the objective node and its name (if the last statement names it)."""
        objective = objective_name = None
        math = self._program_notation == "math"
        for i, (text, offset) in enumerate(statements):
            last = i == len(statements) - 1
            m = DEF_RE.match(text) if not math else None
            if math and DEF_RE.match(text) and _math_assignment(text) is None:
                raise FormulaError("function definitions are written in NumPy notation", source=source,
                                   offset=offset, length=len(text),
                                   hint="define f(t) = ... in NumPy notation (--notation numpy), or write the "
                                        "expression out")
            if math:
                a = _math_assignment(text)
                if a is not None:
                    name, at, end = a
                    if name is None and not last:
                        raise FormulaError("ℓ names the objective: only the last statement may define it",
                                           source=source, offset=offset + at, length=end - at)
                    if name is not None:
                        self.check_new_name(name, "intermediate", source, offset + at)
                    node = self.expression(text[end:], source, offset + end)
                    if name is not None:
                        self.intermediates[name] = node
                    if last:
                        objective, objective_name = node, name
                    continue
            if m:
                if last:
                    raise FormulaError("the last statement defines a function; it must be the objective",
                                       source=source, offset=offset, length=len(text),
                                       hint="end the formula with the expression to differentiate, e.g. h(f(x), g(x))")
                self._define(m, text, offset, source)
                continue
            m = ASSIGN_RE.match(text)
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
            hint += Hint(f", and give {unknown[0]} a shape with --shape {unknown[0]}=…",
                         f", and give {unknown[0]} a shape: add {unknown[0]}=… to Shapes")
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
        why = identity_lookalike(name, self.dim_names, what) if what != "function" else None
        if why:
            raise FormulaError(why, source=source, offset=offset, length=len(name), hint=IDENTITY_HINT)
        taken = (name in self.intermediates or name in self.definitions or name in self.variables
                 or (what != "function" and (name in self.elementwise or name in self.functions)))
        if taken or (what != "function" and name in self.shapes):
            raise FormulaError(f"`{name}` is already defined", source=source, offset=offset, length=len(name),
                               hint="each name is defined once; pick a new name")

    # ----- expressions -----

    def expression(self, text: str, source: str | None = None, offset: int = 0, scope=None, notation=None,
                   shape=None) -> Node:
        """Parse one expression (`text` sits at `offset` of `source`, for error carets).

        `notation` (numpy, math or auto; default: the program's, else the parser's) says how to read it;
        `shape`, the shape the whole should have, sizes a math-notation 𝟙 or I nothing else sizes. After a
        math-notation expression, `self.row` says whether it was a row (xᵀ, uᵀA)."""
        source = text if source is None else source
        if not self._in_program:
            self.visits = 0
        notation = check_notation(notation or self._program_notation or self.notation)
        self.row = False
        if notation == "auto":
            notation = detect_notation(text)
            if notation == "numpy":
                return self._numpy_or_math(text, source, offset, scope, shape)
        if notation == "math":
            from .parse_math import math_expression
            node, self.row = math_expression(self, text, source, offset, scope or {}, shape)
            return node
        tree = self.parse_ast(text, source, offset)
        return self._build(tree, source, offset, scope or {}, dict(self.definitions))

    def _numpy_or_math(self, text, source, offset, scope, shape) -> Node:
        """NumPy notation; if it finds a syntax error and the math notation reads the text, maths (`W x + b`)."""
        try:
            tree = self.parse_ast(text, source, offset)
        except FormulaError as e:
            if not e.message.startswith("syntax error"):
                raise
            known, visits = set(self.variables), self.visits
            try:
                return self.expression(text, source, offset, scope, notation="math", shape=shape)
            except SymbackpropError as m:
                for name in [n for n in self.variables if n not in known]:
                    del self.variables[name]
                    self.unshaped_uses.pop(name, None)
                self.visits = visits
                if isinstance(m, ShapeError):
                    raise                             # maths reads it (`u v`) and says what does not fit
                raise e from None                     # neither notation reads it: NumPy's error
        return self._build(tree, source, offset, scope or {}, dict(self.definitions))

    def parse_ast(self, text, source, offset):
        bad = unencodable(text)
        if bad is not None:                          # lone surrogates (undecodable bytes on the command line)
            raise FormulaError("the formula contains bytes that are not valid UTF-8 text",
                               hint=f"character {bad} cannot be encoded; retype it")
        refuse_latex(text, source, offset)
        if self.allow_primes:
            text = re.sub(r"(?<=[A-Za-z0-9_])'", PRIME, text)
        lead = len(text) - len(text.lstrip())
        body = text.lstrip().rstrip()
        try:
            tree = ast.parse(body, mode="eval")
        except SyntaxError as e:
            where = offset + lead + char_offset_lines(body.split("\n"), e.lineno or 1, (e.offset or 1) - 1, chars=True)
            hint = ("formulas use Python syntax: numbers, names, * / + - ** @ .T, calls like relu(x), and ; or "
                    "newlines between statements")
            if detect_notation(text) == "math":
                hint = ("this looks like math notation (ᵀ, ⊙, ‖x‖, ^, …), and the formula is read in NumPy "
                        "notation: switch with --notation math (or --notation auto, the default); " + hint)
            raise FormulaError(f"syntax error: {e.msg}", source=source, offset=min(where, offset + len(text)),
                               hint=hint) from None
        except (RecursionError, MemoryError):
            raise LimitError(f"the formula is nested too deeply (limit {MAX_NESTING} levels)") from None
        depth = nesting_depth(tree.body)
        if depth > MAX_NESTING:
            raise LimitError(f"the formula is nested {depth} levels deep; the limit is {MAX_NESTING}",
                             source=source, offset=offset + lead, hint="name intermediate results to flatten it")
        tree.src_lines = body.split("\n")                    # type: ignore[attr-defined]
        tree.src_shift = offset + lead                       # type: ignore[attr-defined]
        return tree

    def _build(self, tree, source, offset, scope, visible) -> Node:
        ctx = Walker(self, source, tree, scope, visible)
        old = sys.getrecursionlimit()
        sys.setrecursionlimit(max(old, 10 * MAX_NESTING + 2000))
        try:
            return ctx.visit(tree.body)
        finally:
            sys.setrecursionlimit(old)


def parse_formula(source: str, shapes=None, elementwise=(), functions=(), notation="auto") -> Program:
    """Parse a formula (statements separated by ';' or newlines; the last is the objective).

    `notation` is "numpy" (Python syntax), "math" (LaTeX, or the text symbackprop prints) or "auto": math
    when the text has a mark only maths has (a backslash, ᵀ, ⊙, 𝟙, ‖, ^, …), or when NumPy notation finds
    a syntax error that maths does not (names written together: `W x + b`); else NumPy.

    >>> p = parse_formula("0.5 * norm(A @ x - b)**2", shapes={"A": "m,n", "x": "n", "b": "m"})
    >>> sorted(p.variables), p.objective.shape
    (['A', 'b', 'x'], ())
    >>> q = parse_formula(r"\\frac{1}{2}\\|A x - b\\|^2", shapes={"A": "m,n", "x": "n", "b": "m"})
    >>> q.objective is p.objective
    True
    """
    return Parser(shapes, elementwise, functions, notation=notation).parse_program(source)
