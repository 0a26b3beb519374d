"""Printed output means what was derived: constants in every position, JSON that stays linear and
evaluates right, output to terminals that are not UTF-8, unique where-names, LaTeX steps."""
from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import subprocess
import sys
from fractions import Fraction

import hypothesis_profiles  # noqa: F401  (registers and loads the profile)
import numpy as np
import pytest
import sympy
from hypothesis import assume, given, strategies as st

import symbackprop as sb
from symbackprop import expr as E
from symbackprop.cli import main as cli_main
from symbackprop.expr import Node
from symbackprop.printing import to_text

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def cli(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli_main(list(argv))
    return code, out.getvalue(), err.getvalue()


# ----- a small, independent reader of the plain-text maths -----
# It reads the text the way a person does: · and / left to right, ^ binds tighter than a unary minus,
# an exponent after ^ is one atom (with an optional sign), so `x^−2/3` is x⁻² divided by 3. It refuses
# Python spellings (** and *) and stacked exponents (a^b^c), which a reader could take either way.

_SUPER = {"⁻": "-", "⁰": "0", "¹": "1", "²": "2", "³": "3", "⁴": "4", "⁵": "5", "⁶": "6", "⁷": "7", "⁸": "8", "⁹": "9"}
_TOKEN = re.compile(r"\s*(?:(?P<num>\d+(?:\.\d+)?(?:e[+-]?\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
                    r"|(?P<sup>[⁻⁰¹²³⁴⁵⁶⁷⁸⁹]+)|(?P<op>[-+−·/^()]))")
_FUNCS = {"log": math.log, "cos": math.cos, "sin": math.sin, "exp": math.exp}


class Unreadable(Exception):
    pass


def read(text: str, env: dict[str, float]) -> float:
    tokens, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise Unreadable(f"cannot read {text[pos:]!r} in {text!r}")
        kind = m.lastgroup
        tokens.append((kind, m.group(kind)))
        pos = m.end()
    tokens.append(("end", ""))
    i = 0

    def peek():
        return tokens[i]

    def take(value=None):
        nonlocal i
        tok = tokens[i]
        if value is not None and tok[1] != value:
            raise Unreadable(f"expected {value!r}, got {tok[1]!r} in {text!r}")
        i += 1
        return tok

    def expr():
        v = term()
        while peek()[1] in ("+", "−", "-"):
            op = take()[1]
            w = term()
            v = v + w if op == "+" else v - w
        return v

    def term():
        v = unary()
        while peek()[1] in ("·", "/"):
            op = take()[1]
            w = unary()
            v = v * w if op == "·" else v / w
        return v

    def unary():
        if peek()[1] in ("−", "-"):
            take()
            return -unary()
        return power()

    def power():
        v = atom()
        raised = False
        while peek()[0] == "sup" or peek()[1] == "^":
            if raised:
                raise Unreadable(f"stacked exponents in {text!r}")
            raised = True
            if peek()[0] == "sup":
                v = v ** int("".join(_SUPER[c] for c in take()[1]))
            else:
                take("^")
                sign = 1
                if peek()[1] in ("−", "-"):
                    take()
                    sign = -1
                v = v ** (sign * atom())
        return v

    def atom():
        kind, value = take()
        if kind == "num":
            return float(value)
        if kind == "name":
            if peek()[1] == "(" and value in _FUNCS:
                take("(")
                v = expr()
                take(")")
                return _FUNCS[value](v)
            if value not in env:
                raise Unreadable(f"unknown name {value!r} in {text!r}")
            return env[value]
        if value == "(":
            v = expr()
            take(")")
            return v
        raise Unreadable(f"unexpected {value!r} in {text!r}")

    v = expr()
    if peek()[0] != "end":
        raise Unreadable(f"trailing {peek()[1]!r} in {text!r}")
    return v


def test_reader_reads_like_a_person():
    env = {"x": 8.0}
    assert read("1/3·x^(−2/3)", env) == pytest.approx(1 / 3 * 8 ** (-2 / 3))
    assert read("1/3·x^−2/3", env) == pytest.approx(1 / 3 * 8 ** -2 / 3)      # the old, misleading print
    assert read("2/3^x", env) == pytest.approx(2 / 3 ** 8)
    assert read("−x²", env) == -64
    with pytest.raises(Unreadable):
        read("n**(-2)", {"n": 2.0})
    with pytest.raises(Unreadable):
        read("1/(m*n)", {"m": 2.0, "n": 3.0})


# ----- constants in every position -----

M, N = sympy.Symbol("m", integer=True, positive=True), sympy.Symbol("n", integer=True, positive=True)
DIMS = {"m": 3.0, "n": 5.0}


def _rational():
    return st.builds(lambda p, q: sympy.Rational(p, q), st.integers(-40, 40), st.integers(1, 40))


def _float():
    return st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False).map(sympy.Float) | \
        st.sampled_from([1e-8, 2.5e-12, 1.5e20, 0.1, 1 / 3, -0.7]).map(sympy.Float)


def _symbolic():
    mono = st.builds(lambda c, a, b: c * M ** a * N ** b, _rational().filter(lambda c: c != 0),
                     st.integers(-2, 2), st.integers(-2, 2))
    return mono | st.builds(lambda u, w: u + w, mono, mono)


CONSTANTS = st.one_of(st.integers(-30, 30).map(sympy.Integer), _rational(), _float(), _symbolic())

X, Y = E.var("x"), E.var("y")


def c_(v):
    return Node("const", (), (v,), ())


# (name, node from constants c, d, value from the constants' values and x, y). The nodes are built
# directly (not through the smart constructors) so every position is reached.
POSITIONS = [
    ("alone", lambda c, d: c_(c), lambda c, d, x, y: c),
    ("factor", lambda c, d: Node("mul", (c_(c), X)), lambda c, d, x, y: c * x),
    ("right factor", lambda c, d: Node("mul", (X, c_(c))), lambda c, d, x, y: x * c),
    ("two factors", lambda c, d: Node("mul", (c_(c), Node("mul", (c_(d), X)))), lambda c, d, x, y: c * d * x),
    ("divisor", lambda c, d: Node("div", (X, c_(c))), lambda c, d, x, y: x / c),
    ("dividend", lambda c, d: Node("div", (c_(c), X)), lambda c, d, x, y: c / x),
    ("exponent", lambda c, d: Node("pow", (X, c_(c))), lambda c, d, x, y: x ** c),
    ("base", lambda c, d: Node("pow", (c_(c), X)), lambda c, d, x, y: c ** x),
    ("after +", lambda c, d: Node("add", (Y, Node("mul", (c_(c), X)))), lambda c, d, x, y: y + c * x),
    ("after minus", lambda c, d: Node("sub", (Y, Node("mul", (c_(c), X)))), lambda c, d, x, y: y - c * x),
    ("term after +", lambda c, d: Node("add", (Y, c_(c))), lambda c, d, x, y: y + c),
    ("term after minus", lambda c, d: Node("sub", (Y, c_(c))), lambda c, d, x, y: y - c),
    ("first term", lambda c, d: Node("sub", (c_(c), Y)), lambda c, d, x, y: c - y),
    ("negated", lambda c, d: Node("neg", (c_(c),)), lambda c, d, x, y: -c),
    ("negated factor", lambda c, d: Node("neg", (Node("mul", (c_(c), X)),)), lambda c, d, x, y: -(c * x)),
    ("exponent of a sum", lambda c, d: Node("pow", (Node("add", (X, c_(c))), c_(d))),
     lambda c, d, x, y: (x + c) ** d),
    ("base and exponent", lambda c, d: Node("pow", (c_(c), c_(d))), lambda c, d, x, y: c ** d),
    ("inside a function", lambda c, d: Node("cos", (Node("mul", (c_(c), X)),)), lambda c, d, x, y: math.cos(c * x)),
    ("sum of products", lambda c, d: Node("add", (Node("mul", (c_(c), X)), Node("mul", (c_(d), Y)))),
     lambda c, d, x, y: c * x + d * y),
]


def _value(v) -> float:
    return float(sympy.sympify(v).subs({M: DIMS["m"], N: DIMS["n"]}))


@pytest.mark.parametrize("name, build, value", POSITIONS, ids=[p[0] for p in POSITIONS])
@given(c=CONSTANTS, d=CONSTANTS, x=st.sampled_from([0.7, 1.3, 2.0]), y=st.sampled_from([-1.1, 0.4]))
def test_printed_constants_read_back_as_the_same_number(name, build, value, c, d, x, y):
    cv, dv = _value(c), _value(d)
    with np.errstate(all="ignore"):
        try:
            want = value(cv, dv, x, y)
        except (ZeroDivisionError, OverflowError, ValueError):
            assume(False)
    assume(isinstance(want, float) and math.isfinite(want) and abs(want) < 1e12)
    text = to_text(build(c, d))
    assert "*" not in text and "**" not in text, text
    try:
        got = read(text, {"x": x, "y": y, **DIMS})
    except (ZeroDivisionError, OverflowError):
        raise AssertionError(f"{text!r} does not evaluate") from None
    assert isinstance(got, float) and got == pytest.approx(want, rel=1e-9, abs=1e-12), \
        f"{text!r} reads as {got}, but the expression is {want} (c={c}, d={d})"


@pytest.mark.parametrize("formula, shapes, flags, want", [
    ("sum(x ** (1/3))", ["x=n"], [], "∂ℓ/∂x = 1/3·x^(−2/3)    [n]"),
    ("sum((2/3) ** (x*y))", ["x=n", "y=n"], [], "∂ℓ/∂x = log(2/3)·(2/3)^(x ⊙ y) ⊙ y    [n]"),
    ("mean(X)", ["X=m,n"], [], "∂ℓ/∂X = 1/(m·n)·𝟙    [m×n]"),
    ("mean(x)**2 - 0.2*mean(x*x)", ["x=n"], ["--hessian", "--wrt", "x"], "∂²ℓ/∂x² = 2/n²·𝟙 𝟙ᵀ − 2/(5·n)·I    [n×n]"),
    ("mean(tanh(x)) * mean(x)", ["x=n"], ["--hessian", "--wrt", "x"],
     "∂²ℓ/∂x² = −2/n·diag(tanh'(x) ⊙ tanh(x)) (mean(x)·I) + 1/n²·𝟙 tanh'(x)ᵀ + 1/n²·tanh'(x) 𝟙ᵀ    [n×n]"),
    ("0.1*sum(x) + 1e-8*sum(x)", ["x=n"], [], "∂ℓ/∂x = 0.10000001·𝟙    [n]"),
])
def test_constants_print_as_mathematics(formula, shapes, flags, want):
    code, out, err = cli("derive", formula, *[a for s in shapes for a in ("-s", s)], *flags)
    assert code == 0, err
    assert want in out.splitlines(), out
