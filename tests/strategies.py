"""Hypothesis strategies: random well-shaped formulas over the whole rule table.

Each generated formula comes with its shapes and with an independent oracle: a
function of the variables written with autograd.numpy, built side by side with
the formula text (never from symbackprop's rule table or printers), so the
generated gradient can be compared with autograd's.

Coverage (checked by tests/test_differential.py::test_strategy_covers_rule_table):
every built-in the parser accepts (read off RULES: also tan, max, min, maximum, minimum,
matrix_power), + - * / ** @ .T and unary
minus, nesting, fan-out (variables drawn from small pools and reused; named
intermediates `z1 = ...` used several times) and scalar broadcasting
(scalar op array). Each built-in's input is drawn from its domain: log, sqrt
and fractional powers get positive arguments, inv and logdet symmetric
positive-definite ones, so a random point is almost surely a valid one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import autograd.numpy as anp
import numpy as np
from autograd.extend import defvjp, primitive
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


@primitive
def _erf(x):
    return np.vectorize(math.erf, otypes=[float])(x)


defvjp(_erf, lambda ans, x: lambda g: g * (2.0 / math.sqrt(math.pi)) * anp.exp(-x * x))   # the textbook derivative


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
    "tan": lambda x, env: anp.tan(x),
    "erf": lambda x, env: _erf(x),
}
POSITIVE_DOMAIN = {name for name, f in ELEMENTWISE.items() if f.domain == "positive"}
#: Built-ins whose argument is squashed into (-1, 1) first (tan has poles at ±π/2).
BOUNDED_DOMAIN = {name for name, f in ELEMENTWISE.items() if f.domain == "small"}


def _top_gap(x, env):
    """max/min jump where the two largest (smallest) entries tie: record the gap as a kink."""
    v = np.sort(np.ravel(getval(x)))
    env["_kinks"].append(np.asarray([v[-1] - v[-2], v[1] - v[0]]) if v.size > 1 else np.asarray([1.0]))


def _extreme(f):
    def g(x, env):
        _top_gap(x, env)
        return f(x)
    return g


def _pairwise(f):
    def g(x, y, env):
        env["_kinks"].append(np.asarray(getval(x) - getval(y)))
        return f(x, y)
    return g


def _matrix_power(x, k):
    k = int(k)
    base = anp.linalg.inv(x) if k < 0 else x
    out = base
    for _ in range(abs(k) - 1):
        out = out @ base
    return out


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
    """A well-conditioned symmetric positive-definite matrix built from a square x: t tᵀ + diag(1 + s²) with
    t = tanh(x), s = tanh(v), so its condition number stays below n + 2 whatever x and v are (an unbounded
    x such as M + det(...) made near rank-one matrices whose det finite differences cannot resolve)."""
    v = draw(expr(x.shape[:1], depth))
    t, s = f"tanh({x.text})", f"tanh({v.text})"
    return Ex(f"({t} @ {t}.T + diag(1 + {s} * {s}))", x.shape,
              lambda e: anp.tanh(x.fn(e)) @ anp.tanh(x.fn(e)).T + anp.diag(1 + anp.tanh(v.fn(e)) ** 2),
              x.ops | v.ops | {"@", "T", "diag", "tanh"})


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
    kinds = ["elementwise", "arith", "broadcast", "div", "pow", "neg", "maximum"]
    if len(shape) == 2:
        kinds += ["T", "matmul", "outer", "pinv"]
        if shape[0] == shape[1]:
            kinds += ["inv", "diagm", "mpow"]
    elif len(shape) == 1:
        kinds += ["matvec", "vecmat", "diagv", "softmax"]
    else:
        kinds += ["dot", "@dot", "reduce", "reduce", "norm", "sqnorm", "trace", "det", "logdet", "logsumexp",
                  "extreme"]
    kind = draw(st.sampled_from(kinds))
    if kind == "maximum":                         # maximum(a, b), minimum(a, b): elementwise, kinks where a = b
        name = draw(st.sampled_from(["maximum", "minimum"]))
        a, b = draw(sub(shape)), draw(sub(draw(st.sampled_from([shape, ()]))))
        f = _pairwise(anp.maximum if name == "maximum" else anp.minimum)
        return Ex(f"{name}({a.text}, {b.text})", shape, lambda e: f(a.fn(e), b.fn(e), e), a.ops | b.ops | {name})
    if kind == "extreme":                         # max(X), min(X): kinks where the top two entries tie
        name = draw(st.sampled_from(["max", "min"]))
        x = draw(sub(draw(st.sampled_from(SHAPES[1:]))))
        f = _extreme(anp.max if name == "max" else anp.min)
        return _wrap(name, x, lambda e: f(x.fn(e), e), ())
    if kind == "mpow":                            # matrix_power(X, k): negative k of an SPD matrix
        k = draw(st.sampled_from([2, 3, -1, -2]))
        x = draw(sub(shape))
        if k < 0:
            x = spd(draw, x, depth - 1)
        return Ex(f"matrix_power({x.text}, {k})", shape, lambda e: _matrix_power(x.fn(e), k), x.ops | {"matrix_power"})
    if kind == "elementwise":
        name = draw(st.sampled_from(sorted(ELEMENTWISE)))
        x = draw(sub(shape))
        if name in POSITIVE_DOMAIN:
            x = positive(draw, x)
        if name in BOUNDED_DOMAIN:
            x = Ex(f"tanh({x.text})", x.shape, lambda e, x0=x: anp.tanh(x0.fn(e)), x.ops | {"tanh"})
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
    if kind == "pinv":
        if shape[0] == shape[1]:                  # square: well conditioned, like inv's argument (a random 3×3
            x = spd(draw, draw(sub(shape)), depth - 1)   # matrix may be near singular, and pinv³ then swamps FD)
        else:                                     # a variable of the transposed shape: full rank almost surely
            x = draw(leaf(shape[::-1]))
        return _wrap("pinv", x, lambda e: anp.linalg.pinv(x.fn(e)), shape)
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
        # only a plain variable is left as drawn: a named intermediate such as z = C @ A (n×m times m×n,
        # m < n) is a square that is singular everywhere, where the derivative's X⁻ᵀ does not exist
        if x.ops != {"var"} or not any(x.text in names for names in VARIABLES.values()):
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
    "pinv": lambda x, env: anp.linalg.pinv(x),
    "softmax": lambda x, env: anp.exp(x - _logsumexp(x)), "logsumexp": lambda x, env: _logsumexp(x),
    "dot": lambda x, y, env: anp.dot(x, y), "outer": lambda x, y, env: anp.outer(x, y),
    "max": _extreme(anp.max), "min": _extreme(anp.min),
    "maximum": _pairwise(anp.maximum), "minimum": _pairwise(anp.minimum),
    "matrix_power": lambda x, k, env: _matrix_power(x, k),
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



# ----- wider draws for the round trip: constants and powers whose printing is easy to get wrong -----

#: Constants with more than 6 significant digits, thirds, tiny and large ones (as formula text).
WIDE_CONSTANTS = ["(1/3)", "(2/3)", "0.0009765625", "11.390625", "1e-05", "123456.5", "0.1"]
#: Exponents beyond ±1/2, ±1, 3/2: thirds and 5/2 print as fractions.
WIDE_POWERS = ["(1/3)", "(2/3)", "(-1/3)", "(-2/3)", "2.5", "(-1.5)"]


def _value(text: str) -> float:
    import ast
    return float(_interpret(ast.parse(text, mode="eval").body, {}))


@st.composite
def wide_expr(draw, shape, depth=3, scope=()):
    """expr(), plus (with some probability at each level) a wide constant, a fractional power
    of a positive base, or a constant base raised to an expression (`(2/3) ** (x * y)`)."""
    k = draw(st.integers(0, 5))
    if depth <= 0 or k >= 3:
        return draw(expr(shape, depth, scope))
    if k == 0 and shape == ():
        c = draw(st.sampled_from(WIDE_CONSTANTS))
        x = draw(expr((), depth - 1, scope))
        v = _value(c)
        return Ex(f"({c} * {x.text})", (), lambda e: v * x.fn(e), x.ops | {"const", "mul"})
    if k == 1 or (k == 0 and shape != ()):
        p = draw(st.sampled_from(WIDE_POWERS))
        a = positive(draw, draw(wide_expr(shape, depth - 1, scope)))
        v = _value(p)
        return Ex(f"({a.text} ** {p})", shape, lambda e: a.fn(e) ** v, a.ops | {"pow"})
    c = draw(st.sampled_from(["(2/3)", "0.5", "3", "(3/2)"]))
    x0 = draw(wide_expr(shape, depth - 1, scope))
    x = Ex(f"tanh({x0.text})", shape, lambda e: anp.tanh(x0.fn(e)), x0.ops | {"tanh"})
    v = _value(c)
    return Ex(f"({c} ** {x.text})", shape, lambda e: v ** x.fn(e), x.ops | {"pow"})


@st.composite
def wide_formulas(draw, max_depth=3):
    """A random program like formulas(), with wide_expr() at the top of each statement."""
    scope, statements, env_fns = [], [], []
    for i in range(draw(st.integers(0, 1))):
        shape = draw(st.sampled_from(SHAPES))
        x = draw(wide_expr(shape, draw(st.integers(1, max_depth)), tuple(scope)))
        statements.append(f"z{i + 1} = {x.text}")
        env_fns.append((f"z{i + 1}", x.fn))
        scope.append((f"z{i + 1}", shape))
    obj = draw(wide_expr((), draw(st.integers(1, max_depth)), tuple(scope)))
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

    return Formula(text, shapes, variables, fn, obj.ops)


# ----- batch mode: random --batch and --wrt subsets -----

#: Batch sizes: distinct from every dim size (a (B, n) vs (n, B) mix-up shows), and B = 1.
BATCH_SIZES = [2, 5, 1]


@dataclass
class BatchCase:
    formula: Formula
    batch: list                         # inputs with a leading batch axis
    wrt: list | None                    # None: every input
    size: int                           # B

    def __repr__(self):
        wrt = f" --wrt {','.join(self.wrt)}" if self.wrt else ""
        shapes = "".join(f" -s {k}={v}" for k, v in self.formula.shapes.items())
        return f"BatchCase(codegen {self.formula.text!r}{shapes} --batch {','.join(self.batch)}{wrt}; B={self.size})"


#: Ways a variable enters through diag, inv, trace and norm (templates over its name `{v}`), by its shape.
#: Each gives an expression of the stated shape; `{o}` is another variable of the same shape.
THROUGH = {
    ("n",): [("diag({v})", ("n", "n")), ("norm({v})", ()), ("(norm({v})**2)", ()), ("diag(outer({v}, {o}))", ("n",)),
             ("inv(outer({v}, {v}) + diag(1 + {o} * {o}))", ("n", "n")), ("(-{v} / (norm(C)**2 + 1))", ("n",)),
             ("diag(diag({v}) @ S)", ("n",))],
    ("m",): [("diag({v})", ("m", "m")), ("norm({v})", ()), ("diag(outer({v}, {v}))", ("m",))],
    ("n", "n"): [("diag({v})", ("n",)), ("trace({v})", ()), ("norm({v})", ()), ("inv({v} @ {v}.T + diag(1 + u * u))", ("n", "n")),
                 ("diag({v} @ {v}.T - {o})", ("n",)), ("logdet({v} @ {v}.T + diag(1 + u * u))", ())],
    ("m", "n"): [("diag({v} @ {v}.T)", ("m",)), ("diag({v}.T @ {o})", ("n",)), ("norm({v})", ()), ("trace({v} @ C)", ()),
                 ("(w - {v} @ u)", ("m",)), ("({v} @ u - w)", ("m",))],
    ("n", "m"): [("diag({v} @ {v}.T)", ("n",)), ("trace(A @ {v})", ()), ("norm({v} @ w)", ())],
    ("m", "m"): [("diag({v})", ("m",)), ("trace({v})", ()), ("inv({v} @ {v}.T + diag(1 + w * w))", ("m", "m"))],
    (): [("norm({v} * u)", ()), ("trace({v} * S)", ()), ("diag({v} * u)", ("n", "n")), ("({v} * {v})", ())],
}
#: Scalars from an expression of each shape.
REDUCE = {
    (): ["{e}", "({e})**2"],
    ("n",): ["sum({e})", "(norm({e})**2)", "(v @ {e})", "sum({e} * {e})", "norm({e})"],
    ("m",): ["sum({e})", "(norm({e})**2)", "(w @ {e})", "(0.5 * norm({e})**2)"],
    ("n", "n"): ["trace({e})", "sum({e})", "(norm({e})**2)", "(u @ {e} @ v)", "sum(diag({e}))"],
    ("m", "m"): ["trace({e})", "(w @ {e} @ w)"],
}
#: Scaled, negated and combined objectives: `F` and `G` are scalars.
COMBINE = ["F", "-F", "0.5 * F", "-3 * F", "c * F", "F - G", "G - F", "2 * F - G", "-(F) * c", "F / 4", "F + G"]


@st.composite
def through_parts(draw):
    """(text, variables of F, variables of G): a scalar F built from one variable entering through
    diag, inv, trace or norm, then scaled, negated or combined with another random scalar G."""
    shape = draw(st.sampled_from(list(THROUGH)))
    v = draw(st.sampled_from(VARIABLES[shape]))
    others = [n for n in VARIABLES[shape] if n != v] or [v]
    template, out_shape = draw(st.sampled_from(THROUGH[shape]))
    e = template.format(v=v, o=draw(st.sampled_from(others)))
    F = draw(st.sampled_from(REDUCE[out_shape])).format(e=e)
    G = draw(expr((), 2)).text
    combine = draw(st.sampled_from(COMBINE))
    text = combine.replace("F", F).replace("G", G)
    pool = [n for p in VARIABLES.values() for n in p]
    f_vars = [n for n in pool if n in _names(F) or ("c *" in combine and n == "c") or ("* c" in combine and n == "c")]
    g_vars = [n for n in pool if "G" in combine and n in _names(G)]
    return text, f_vars, g_vars


@st.composite
def through_formulas(draw):
    text, _, _ = draw(through_parts())
    return formula_from_text(text, shapes_of(text))


def shapes_of(text: str) -> dict:
    """--shape specs of the pool variables a text uses."""
    names = _names(text)
    return {n: _shape_spec(s) for s, pool in VARIABLES.items() for n in pool if n in names and s != ()}


@st.composite
def batch_cases(draw):
    """A formula (random, or through diag/inv/trace/norm, scaled, negated, combined), a non-empty
    --batch subset of its inputs, a --wrt subset (or every input), and a batch size.

    The subsets are random, or chosen where batch code has to tell terms apart: batch only the
    variables of F (so G's gradients are per-batch constants) and --wrt a mix of F's and G's."""
    if draw(st.booleans()):
        text, f_vars, g_vars = draw(through_parts())
        f = formula_from_text(text, shapes_of(text))
    else:
        f = draw(formulas(max_depth=2))
        f_vars, g_vars = list(f.variables), []
    names = list(f.variables)
    if not names:
        return BatchCase(f, [], None, 2)
    only_f = [n for n in f_vars if n not in g_vars and n in names]
    if only_f and g_vars and draw(st.booleans()):
        batch = draw(st.lists(st.sampled_from(only_f), min_size=1, max_size=len(only_f), unique=True))
    else:
        batch = draw(st.lists(st.sampled_from(names), min_size=1, max_size=len(names), unique=True))
    wrt = None
    if draw(st.booleans()):
        wrt = draw(st.lists(st.sampled_from(names), min_size=1, max_size=len(names), unique=True))
        wrt = [n for n in names if n in wrt]              # in input order, as a user would list them
    return BatchCase(f, [n for n in names if n in batch], wrt, draw(st.sampled_from(BATCH_SIZES)))


# ----- claims for the checker: kinks with scalar arguments, missing kink factors, NaN on part of the domain -----

@dataclass
class ClaimCase:
    formula: str
    shapes: dict
    wrt: str
    claim: str
    expect: str                        # 'correct' or 'wrong'
    kind: str                          # what the claim tests: true, missing-kink, nan-part, nan-everywhere

    def __repr__(self):
        shapes = "".join(f" -s {k}={v}" for k, v in self.shapes.items())
        return (f"ClaimCase(check {self.formula!r}{shapes} --wrt {self.wrt} --claim {self.claim!r} "
                f"-> {self.expect} [{self.kind}])")


#: Scalar kink arguments: (text, {variable: d(text)/d(variable) as text}, shapes).
SCALAR_KINK_ARGS = [
    ("w @ x + b", {"b": "1", "x": "w", "w": "x"}, {"w": "{d}", "x": "{d}"}),
    ("a", {"a": "1"}, {}),
    ("a - c", {"a": "1", "c": "-1"}, {}),
    ("sum(z) + b", {"b": "1", "z": "1"}, {"z": "{d}"}),
    ("a * c + b", {"b": "1", "a": "c", "c": "a"}, {}),
]
#: Sizes for `{d}`: a symbolic dim and concrete ones (95 makes w @ x large next to b).
KINK_DIMS = ["n", "95", "13", "3"]
#: The derivative of each kink, as a factor: relu' = step, abs' = sign, step' = sign' = 0 (away from 0).
KINK_PRIME = {"relu": "step", "abs": "sign", "step": None, "sign": None}


def _nan_variants(true: str, q: str) -> list[str]:
    """Claims equal to `true` where q > 0 and NaN where q < 0 (q: a sign-changing scalar)."""
    return [f"({true}) * (exp(log({q})) / ({q}))", f"({true}) * (sqrt({q}) ** 2 / ({q}))"]


@st.composite
def claim_cases(draw):
    """A formula with a kink (relu, abs, step, sign) of a scalar or a vector, the variable to
    differentiate by, and a claim: the true derivative, or one missing the relu', sign or abs
    factor (or the kink itself), or one NaN on part of the domain (a factor written exp(log(q))/q
    or sqrt(q)²/q of a sign-changing q, or sqrt of a pre-activation in place of relu), or NaN
    everywhere. `expect` is what the checker must say; the test confirms it with autograd."""
    template = draw(st.sampled_from(["lsq", "scale", "pow", "vecpow", "square"]))
    K = draw(st.sampled_from(sorted(KINK_PRIME) if template in ("lsq", "scale") else ["abs", "relu"]))
    Kp = KINK_PRIME[K]
    d = draw(st.sampled_from(KINK_DIMS))
    if template in ("lsq", "scale"):
        s, partials, shapes = draw(st.sampled_from(SCALAR_KINK_ARGS))
        shapes = {k: v.format(d=d) for k, v in shapes.items()}
        without = {"relu": f"({s})", "abs": f"({s})", "step": "1", "sign": "1"}[K]   # the kink left out
        if template == "lsq":                         # 0.5 * (v * K(s) - y) ** 2: the review's scalar-kink case
            formula = f"0.5 * (v * {K}({s}) - y) ** 2"
            r = f"(v * {K}({s}) - y)"
            outer = {"v": (f"{r} * {K}({s})", f"{r} * {without}"), "y": (f"-{r}", None)}
            inner = {p: ((f"{r} * v * {Kp}({s}) * {ds}" if Kp else "0"), f"{r} * v * {ds}") for p, ds in partials.items()}
        else:                                         # K(s) * m + sum(t * t)
            formula = f"{K}({s}) * m + sum(t * t)"
            shapes["t"] = draw(st.sampled_from(["13", "n"]))
            outer = {"m": (f"{K}({s})", without), "t": ("2 * t", None)}
            inner = {p: ((f"{Kp}({s}) * m * {ds}" if Kp else "0"), f"m * {ds}") for p, ds in partials.items()}
        table = {**outer, **inner}
        wrt = draw(st.sampled_from(sorted(table)))
        true, missing = table[wrt]
        q = s
    elif template == "pow":                           # sum(K(W @ x) ** 1.5): a vector kink
        formula = f"sum({K}(W @ x) ** 1.5)"
        shapes = {"W": f"m,{d}", "x": d}
        z = "W @ x"
        wrt = draw(st.sampled_from(["x", "W"]))
        g = f"({K}({z}) ** 0.5 * {Kp}({z}))"
        if wrt == "x":
            true, missing = f"1.5 * W.T @ {g}", f"1.5 * W.T @ sqrt({z})"
        else:
            true, missing = f"1.5 * outer({g}, x)", f"1.5 * outer(sqrt({z}), x)"
        q = "sum(x)"
    elif template == "vecpow":                        # sum(K(x) ** 1.5) by x
        formula, shapes, wrt = f"sum({K}(x) ** 1.5)", {"x": d}, "x"
        true = f"1.5 * {K}(x) ** 0.5 * {Kp}(x)"
        missing = draw(st.sampled_from(["1.5 * x ** 0.5", "1.5 * sqrt(x)"]))
        q = "sum(x)"
    else:                                             # x @ x: no kink; claims NaN on part of the domain, or everywhere
        formula, shapes, wrt = draw(st.sampled_from(["x @ x", "sum(x * x)", "norm(x)**2"])), {"x": d}, "x"
        true = draw(st.sampled_from(["2 * x", "2 * sqrt(x * x) * sign(x)"]))
        missing = draw(st.sampled_from(["2*exp(log(x))", "2 * sqrt(x) ** 2", "log(-x*x - 1)", "sqrt(-x*x - 1)"]))
        q = "sum(x)"
    shapes = {k: v for k, v in shapes.items() if k in _names(formula)}
    kind = draw(st.sampled_from(["true", "missing", "nan"]))
    if kind == "true":
        return ClaimCase(formula, shapes, wrt, true, "correct", "true")
    if kind == "missing" and missing is not None:
        everywhere = "-x*x - 1" in missing
        nan = template in ("pow", "vecpow", "square") and not everywhere
        return ClaimCase(formula, shapes, wrt, missing, "wrong",
                         "nan-everywhere" if everywhere else "nan-part" if nan else "missing-kink")
    if true == "0":
        return ClaimCase(formula, shapes, wrt, true, "correct", "true")
    return ClaimCase(formula, shapes, wrt, draw(st.sampled_from(_nan_variants(true, q))), "wrong", "nan-part")
