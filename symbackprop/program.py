"""A parsed formula (Program), user-defined functions, shape specs, and the formula language's limits and
reserved names: what every parser (NumPy notation, maths notation) shares."""
from __future__ import annotations

import ast
import builtins
import keyword
import re
from dataclasses import dataclass, field

import sympy

from .errors import FormulaError, Hint, LimitError
from .expr import Node
from .rules import RULES

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


def identity_lookalike(name: str, dims=(), what: str = "variable") -> str | None:
    """Why `name` cannot name a variable, intermediate or let: results print the identity matrix as I, Iₙ or
    I_d (LaTeX I_{n}, I_{4}), so a name I, I4, I_4 or I_n (n a dim) would read as it; else None."""
    rest = name[2:] if name.startswith("I_") else name[1:] if name.startswith("I") else None
    if name == "I" or (rest is not None and (rest.isdigit() or (name.startswith("I_") and rest in dims))):
        return (f"`{name}` cannot name {'an' if what[0] in 'aeiou' else 'a'} {what}: it would read as the identity "
                f"matrix, which results print as I, Iₙ or I_d")
    return None


#: The fix the refusal of an identity look-alike offers.
IDENTITY_HINT = "rename it, e.g. J"


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
        raise FormulaError(f"bad shape {spec!r}", hint=Hint("write NAME=DIMS with comma-separated dims, e.g. --shape W1=h,d",
                                                             "write NAME=DIMS with comma-separated dims, e.g. W1=h,d"))
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
                               hint=Hint("dims are positive integers or names, e.g. --shape W1=h,d or --shape x=3",
                                         "dims are positive integers or names, e.g. W1=h,d or x=3"))
    if len(out) > 2:
        raise FormulaError(f"shape of `{name}` has {len(out)} dims; symbackprop handles scalars, vectors and matrices")
    return tuple(out)
