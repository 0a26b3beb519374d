"""Hypothesis strategies: random well-shaped formulas over the whole rule table.

Each generated formula comes with its shapes and with an independent oracle: a
function of the variables written with autograd.numpy, built side by side with
the formula text (never from symbackprop's rule table or printers), so the
generated gradient can be compared with autograd's.

Coverage (checked by tests/test_differential.py::test_strategy_covers_rule_table):
every built-in the parser accepts (read off RULES), + - * / ** @ .T and unary
minus, nesting, fan-out (variables drawn from small pools and reused; named
intermediates `z1 = ...` used several times) and scalar broadcasting
(scalar op array). Each built-in's input is drawn from its domain: log, sqrt
and fractional powers get positive arguments, inv and logdet symmetric
positive-definite ones, so a random point is almost surely a valid one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import autograd.numpy as anp
import numpy as np
from autograd.tracer import getval
from hypothesis import strategies as st

from symbackprop.parse import builtin_names
from symbackprop.rules import ELEMENTWISE, RULES

#: Concrete sizes of the symbolic dims at the oracle's point (distinct, >= 2).
DIM_SIZES = {"m": 3, "n": 4}
#: Variable pools per shape: reusing a name is fan-out.
VARIABLES = {
    (): ["a", "c"],
    ("n",): ["u", "v"],
    ("m",): ["w"],
    ("m", "n"): ["A", "P"],
    ("n", "m"): ["C"],
    ("n", "n"): ["S", "Q"],
    ("m", "m"): ["M"],
}
SHAPES = list(VARIABLES)
VECTORS = [("m",), ("n",)]
SQUARES = [("m", "m"), ("n", "n")]
MATRICES = [s for s in SHAPES if len(s) == 2]
#: Kink functions: the oracle records their arguments so tests can stay away from 0.
KINKS = ("relu", "abs", "step", "sign")


def _sigmoid(x):
    return 1.0 / (1.0 + anp.exp(-x))


def _logsumexp(x):
    m = anp.max(getval(x))
    return m + anp.log(anp.sum(anp.exp(x - m)))


def _kink(name, f):
    def g(x, env):
        env["_kinks"].append(np.asarray(getval(x)))
        return f(x)
    return g


#: The oracle's elementwise functions: autograd.numpy, written here by hand.
ORACLE_ELEMENTWISE = {
    "relu": _kink("relu", lambda x: anp.maximum(x, 0.0)),
    "step": _kink("step", lambda x: anp.where(x > 0, 1.0, 0.0)),
    "sign": _kink("sign", anp.sign),
    "abs": _kink("abs", anp.abs),
    "sigmoid": lambda x, env: _sigmoid(x),
    "tanh": lambda x, env: anp.tanh(x),
    "exp": lambda x, env: anp.exp(x),
    "log": lambda x, env: anp.log(x),
    "sqrt": lambda x, env: anp.sqrt(x),
    "sin": lambda x, env: anp.sin(x),
    "cos": lambda x, env: anp.cos(x),
    "softplus": lambda x, env: anp.logaddexp(0.0, x),
}
POSITIVE_DOMAIN = {name for name, f in ELEMENTWISE.items() if f.domain == "positive"}


@dataclass(frozen=True)
class Ex:
    """A formula fragment: its text, its shape (dim names) and its oracle."""

    text: str
    shape: tuple
    fn: Callable = field(compare=False)
    ops: frozenset = frozenset()        # built-ins and operators it uses (coverage bookkeeping)


@dataclass
class Formula:
    """A whole random program: statements, shapes, and an oracle of the variables."""

    text: str
    shapes: dict                        # variable -> "m,n" spec
    variables: list
    fn: Callable                        # env {name: value} -> scalar (autograd-traceable)
    ops: frozenset

    @property
    def shape_args(self) -> list[str]:
        return [a for name, spec in self.shapes.items() for a in ("--shape", f"{name}={spec}")]

    def __repr__(self):                 # what Hypothesis prints for a falsifying example
        return f"Formula({self.text!r}, shapes={self.shapes!r})"


def _wrap(op, a, fn, shape):
    return Ex(f"{op}({a.text})", shape, fn, a.ops | {op})


def _bin(sym, a, b, fn, shape, tag):
    return Ex(f"({a.text} {sym} {b.text})", shape, fn, a.ops | b.ops | {tag})


def positive(draw, x: Ex) -> Ex:
    """An expression of x that is positive everywhere."""
    k = draw(st.integers(0, 3))
    if k == 0:
        return Ex(f"({x.text} * {x.text} + 0.5)", x.shape, lambda e: x.fn(e) * x.fn(e) + 0.5, x.ops | {"mul", "add"})
    if k == 1:
        return Ex(f"sigmoid({x.text})", x.shape, lambda e: _sigmoid(x.fn(e)), x.ops | {"sigmoid"})
    if k == 2:
        return Ex(f"(softplus({x.text}) + 0.1)", x.shape, lambda e: anp.logaddexp(0.0, x.fn(e)) + 0.1,
                  x.ops | {"softplus", "add"})
    return Ex(f"exp(tanh({x.text}))", x.shape, lambda e: anp.exp(anp.tanh(x.fn(e))), x.ops | {"exp", "tanh"})


def spd(draw, x: Ex, depth) -> Ex:
    """A symmetric positive-definite matrix built from a square x: x xᵀ + diag(1 + v²)."""
    v = draw(expr(x.shape[:1], depth))
    return Ex(f"({x.text} @ {x.text}.T + diag(1 + {v.text} * {v.text}))", x.shape,
              lambda e: x.fn(e) @ x.fn(e).T + anp.diag(1 + v.fn(e) * v.fn(e)), x.ops | v.ops | {"@", "T", "diag"})


@st.composite
def leaf(draw, shape, scope=()):
    names = [n for n, s in scope if s == shape]
    options = VARIABLES[shape] + names
    if shape == ():
        options = options + ["#const"]
    pick = draw(st.sampled_from(options))
    if pick == "#const":
        c = draw(st.sampled_from([0.5, 2, 3, 1.5, 0.25, 10]))
        return Ex(repr(c), (), lambda e, c=c: float(c), frozenset({"const"}))
    return Ex(pick, shape, lambda e, n=pick: e[n], frozenset({"var"}))


@st.composite
def expr(draw, shape, depth=3, scope=()):
    """A random expression of the given shape (dim names), at most `depth` levels of operators."""
    if depth <= 0 or draw(st.integers(0, 4)) == 0:
        return draw(leaf(shape, scope))
    sub = lambda s: expr(s, depth - 1, scope)      # noqa: E731
    kinds = ["elementwise", "arith", "broadcast", "div", "pow", "neg"]
    if len(shape) == 2:
        kinds += ["T", "matmul", "outer"]
        if shape[0] == shape[1]:
            kinds += ["inv", "diagm"]
    elif len(shape) == 1:
        kinds += ["matvec", "vecmat", "diagv", "softmax"]
    else:
        kinds += ["dot", "@dot", "reduce", "reduce", "norm", "sqnorm", "trace", "det", "logdet", "logsumexp"]
    kind = draw(st.sampled_from(kinds))
    if kind == "elementwise":
        name = draw(st.sampled_from(sorted(ELEMENTWISE)))
        x = draw(sub(shape))
        if name in POSITIVE_DOMAIN:
            x = positive(draw, x)
        f = ORACLE_ELEMENTWISE[name]
        return _wrap(name, x, lambda e: f(x.fn(e), e), shape)
    if kind == "arith":
        sym, tag, op = draw(st.sampled_from([("+", "add", anp.add), ("-", "sub", anp.subtract),
                                             ("*", "mul", anp.multiply)]))
        a, b = draw(sub(shape)), draw(sub(shape))
        return _bin(sym, a, b, lambda e: op(a.fn(e), b.fn(e)), shape, tag)
    if kind == "broadcast":                       # a scalar on one side
        sym, tag, op = draw(st.sampled_from([("+", "add", anp.add), ("-", "sub", anp.subtract),
                                             ("*", "mul", anp.multiply)]))
        s, x = draw(sub(())), draw(sub(shape))
        if draw(st.booleans()):
            return _bin(sym, s, x, lambda e: op(s.fn(e), x.fn(e)), shape, tag)
        return _bin(sym, x, s, lambda e: op(x.fn(e), s.fn(e)), shape, tag)
    if kind == "div":
        a = draw(sub(shape))
        b = positive(draw, draw(sub(draw(st.sampled_from([shape, ()])))))
        if draw(st.booleans()):                   # negative denominators too
            b = Ex(f"(-{b.text})", b.shape, lambda e, b0=b: -b0.fn(e), b.ops | {"neg"})
        return _bin("/", a, b, lambda e: a.fn(e) / b.fn(e), shape, "div")
    if kind == "pow":
        k = draw(st.integers(0, 2))
        if k == 0:                                # integer power of anything
            p = draw(st.sampled_from([2, 3]))
            a = draw(sub(shape))
            return Ex(f"({a.text} ** {p})", shape, lambda e: a.fn(e) ** p, a.ops | {"pow"})
        a = positive(draw, draw(sub(shape)))
        if k == 1:                                # fractional or negative power of a positive base
            p = draw(st.sampled_from([0.5, -1, 1.5, -0.5]))
            return Ex(f"({a.text} ** {p})" if p > 0 else f"({a.text} ** ({p}))", shape, lambda e: a.fn(e) ** p,
                      a.ops | {"pow"})
        b0 = draw(sub(()))                        # a variable exponent (scalar, broadcast)
        b = Ex(f"tanh({b0.text})", (), lambda e: anp.tanh(b0.fn(e)), b0.ops | {"tanh"})
        return Ex(f"({a.text} ** {b.text})", shape, lambda e: a.fn(e) ** b.fn(e), a.ops | b.ops | {"pow"})
    if kind == "neg":
        a = draw(sub(shape))
        return Ex(f"(-{a.text})", shape, lambda e: -a.fn(e), a.ops | {"neg"})
    if kind == "T":
        a = draw(sub(shape[::-1]))
        return Ex(f"{a.text}.T", shape, lambda e: a.fn(e).T, a.ops | {"T"})
    if kind == "matmul":
        k = draw(st.sampled_from(["m", "n"]))
        a, b = draw(sub((shape[0], k))), draw(sub((k, shape[1])))
        return _bin("@", a, b, lambda e: a.fn(e) @ b.fn(e), shape, "@")
    if kind == "outer":
        a, b = draw(sub(shape[:1])), draw(sub(shape[1:]))
        return Ex(f"outer({a.text}, {b.text})", shape, lambda e: anp.outer(a.fn(e), b.fn(e)), a.ops | b.ops | {"outer"})
    if kind == "inv":
        x = spd(draw, draw(sub(shape)), depth - 1)
        return _wrap("inv", x, lambda e: anp.linalg.inv(x.fn(e)), shape)
    if kind == "diagm":
        v = draw(sub(shape[:1]))
        return _wrap("diag", v, lambda e: anp.diag(v.fn(e)), shape)
    if kind == "matvec":
        k = draw(st.sampled_from(["m", "n"]))
        a, b = draw(sub((shape[0], k))), draw(sub((k,)))
        return _bin("@", a, b, lambda e: a.fn(e) @ b.fn(e), shape, "@")
    if kind == "vecmat":                          # u @ A: a row vector times a matrix
        k = draw(st.sampled_from(["m", "n"]))
        a, b = draw(sub((k,))), draw(sub((k, shape[0])))
        return _bin("@", a, b, lambda e: a.fn(e) @ b.fn(e), shape, "@")
    if kind == "diagv":
        x = draw(sub((shape[0], shape[0])))
        return _wrap("diag", x, lambda e: anp.diag(x.fn(e)), shape)
    if kind == "softmax":
        x = draw(sub(shape))
        return _wrap("softmax", x, lambda e: anp.exp(x.fn(e) - _logsumexp(x.fn(e))), shape)
    # scalars from arrays
    if kind in ("dot", "@dot"):
        s = draw(st.sampled_from(VECTORS))
        a, b = draw(sub(s)), draw(sub(s))
        f = lambda e: anp.dot(a.fn(e), b.fn(e))   # noqa: E731
        if kind == "dot":
            return Ex(f"dot({a.text}, {b.text})", (), f, a.ops | b.ops | {"dot"})
        return _bin("@", a, b, f, (), "@")
    if kind == "reduce":
        name = draw(st.sampled_from(["sum", "mean"]))
        x = draw(sub(draw(st.sampled_from(SHAPES[1:]))))
        f = anp.sum if name == "sum" else anp.mean
        return _wrap(name, x, lambda e: f(x.fn(e)), ())
    if kind in ("norm", "sqnorm"):
        x = draw(sub(draw(st.sampled_from(SHAPES[1:]))))
        if kind == "norm":
            return _wrap("norm", x, lambda e: anp.sqrt(anp.sum(x.fn(e) ** 2)), ())
        return Ex(f"(norm({x.text})**2)", (), lambda e: anp.sum(x.fn(e) ** 2), x.ops | {"norm", "pow"})
    if kind == "trace":
        x = draw(sub(draw(st.sampled_from(SQUARES))))
        return _wrap("trace", x, lambda e: anp.trace(x.fn(e)), ())
    if kind == "det":                             # invertible: Jacobi's det(X) X⁻ᵀ needs X⁻¹
        x = draw(sub(draw(st.sampled_from(SQUARES))))
        if x.ops != {"var"}:
            x = spd(draw, x, depth - 1)
        return _wrap("det", x, lambda e: anp.linalg.det(x.fn(e)), ())
    if kind == "logdet":
        x = spd(draw, draw(sub(draw(st.sampled_from(SQUARES)))), depth - 1)
        return _wrap("logdet", x, lambda e: anp.linalg.slogdet(x.fn(e))[1], ())
    if kind == "logsumexp":
        x = draw(sub(draw(st.sampled_from(VECTORS))))
        return _wrap("logsumexp", x, lambda e: _logsumexp(x.fn(e)), ())
    raise AssertionError(kind)


def _shape_spec(shape) -> str:
    return ",".join(shape)


@st.composite
def formulas(draw, max_depth=3, max_statements=2):
    """A random program: up to `max_statements` named intermediates, then a scalar objective."""
    scope, statements, env_fns = [], [], []
    ops = frozenset()
    for i in range(draw(st.integers(0, max_statements))):
        shape = draw(st.sampled_from(SHAPES))
        x = draw(expr(shape, draw(st.integers(1, max_depth)), tuple(scope)))
        name = f"z{i + 1}"
        statements.append(f"{name} = {x.text}")
        env_fns.append((name, x.fn))
        scope.append((name, shape))
        ops |= x.ops
    obj = draw(expr((), draw(st.integers(1, max_depth)), tuple(scope)))
    ops |= obj.ops
    statements.append(obj.text)
    text = "; ".join(statements)
    names = _names(text)
    variables = [n for s, pool in VARIABLES.items() for n in pool if n in names]
    shapes = {n: _shape_spec(s) for s, pool in VARIABLES.items() for n in pool if n in names and s != ()}

    def fn(env):
        env = dict(env)
        env.setdefault("_kinks", [])
        for name, f in env_fns:
            env[name] = f(env)
        return obj.fn(env)

    return Formula(text, shapes, variables, fn, ops)


def _names(text: str) -> set[str]:
    import re
    return set(re.findall(r"(?<![A-Za-z0-9_.])[A-Za-z_][A-Za-z0-9_]*", text))


def rule_table_builtins() -> set[str]:
    """What the strategy must cover: every built-in the parser accepts (read off RULES)."""
    return set(builtin_names())


def random_values(formula: Formula, rng: np.random.Generator, sizes=None) -> dict:
    """Random inputs at the oracle's sizes: scalars as floats, arrays as float64."""
    sizes = dict(DIM_SIZES, **(sizes or {}))
    out = {}
    for name in formula.variables:
        spec = formula.shapes.get(name, "")
        concrete = tuple(int(d) if d.strip().isdigit() else sizes[d.strip()] for d in spec.split(",") if d.strip())
        out[name] = float(rng.standard_normal()) if not concrete else rng.standard_normal(concrete)
    return out


assert set(RULES)                                   # the table is filled on import of symbackprop.rules


# ----- an independent interpreter of formula text (for the regression corpus) -----

_ORACLE_CALLS = {
    **{name: (lambda f: lambda x, env: f(x, env))(f) for name, f in ORACLE_ELEMENTWISE.items()},
    "sum": lambda x, env: anp.sum(x), "mean": lambda x, env: anp.mean(x),
    "norm": lambda x, env: anp.sqrt(anp.sum(x ** 2)), "trace": lambda x, env: anp.trace(x),
    "det": lambda x, env: anp.linalg.det(x), "logdet": lambda x, env: anp.linalg.slogdet(x)[1],
    "inv": lambda x, env: anp.linalg.inv(x), "diag": lambda x, env: anp.diag(x),
    "softmax": lambda x, env: anp.exp(x - _logsumexp(x)), "logsumexp": lambda x, env: _logsumexp(x),
    "dot": lambda x, y, env: anp.dot(x, y), "outer": lambda x, y, env: anp.outer(x, y),
}


def _interpret(node, env):
    import ast
    if isinstance(node, ast.Constant):
        return float(node.value)
    if isinstance(node, ast.Name):
        return env[node.id]
    if isinstance(node, ast.UnaryOp):
        x = _interpret(node.operand, env)
        return -x if isinstance(node.op, ast.USub) else x
    if isinstance(node, ast.Attribute) and node.attr == "T":
        return _interpret(node.value, env).T
    if isinstance(node, ast.BinOp):
        a, b = _interpret(node.left, env), _interpret(node.right, env)
        return {ast.Add: anp.add, ast.Sub: anp.subtract, ast.Mult: anp.multiply, ast.Div: anp.divide,
                ast.Pow: anp.power, ast.MatMult: anp.matmul}[type(node.op)](a, b)
    if isinstance(node, ast.Call):
        return _ORACLE_CALLS[node.func.id](*[_interpret(a, env) for a in node.args], env)
    raise ValueError(f"the oracle cannot interpret {ast.dump(node)}")


def formula_from_text(text: str, shapes: dict) -> Formula:
    """A Formula (with an autograd oracle) from text in the formula language's Python subset."""
    import ast
    statements = [s.strip() for s in text.split(";") if s.strip()]
    parsed = []
    for s in statements:
        name, sep, rhs = s.partition("=")
        if sep and name.strip().isidentifier() and not rhs.startswith("="):
            parsed.append((name.strip(), ast.parse(rhs.strip(), mode="eval").body))
        else:
            parsed.append((None, ast.parse(s, mode="eval").body))
    assigned = {n for n, _ in parsed if n}
    used = set()
    for _, tree in parsed:
        used |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} - set(_ORACLE_CALLS)
    variables = [n for n in sorted(used - assigned)]

    def fn(env):
        env = dict(env)
        env.setdefault("_kinks", [])
        value = None
        for name, tree in parsed:
            value = _interpret(tree, env)
            if name:
                env[name] = value
        return value

    return Formula(text, dict(shapes), variables, fn, frozenset())

