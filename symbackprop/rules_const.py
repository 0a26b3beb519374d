"""Elementwise functions of constant arrays, folded as they are built: f(s·𝟙) = f(s)·𝟙.

So a printout never holds `tanh(0)` of a zero vector, whose size nothing in it fixes: tanh(0) -> 0,
exp(0) -> 𝟙, sigmoid(0) -> 1/2·𝟙, and tanh(𝟙) -> tanh(1)·𝟙 (a scalar times a ones array of printed size).
This is a rule module: the smart constructors below go into expr.CONSTRUCTORS, one per elementwise
function of the rule table, so parsing and every rebuild (expr.substitute) fold the same way. Scalars are
left as they are (scalar.py gives them their canonical forms).
"""
from __future__ import annotations

import sympy

from . import expr as E
from .errors import SymbackpropError
from .expr import Node
from .rules import ELEMENTWISE


def _constant_entry(x: Node):
    """s (a scalar constant node) when x is the constant array s·𝟙 (0 for a zero array), else None."""
    if E.is_zero(x):
        return E.const(0)
    s = E.fill_value(x)
    return s if s is not None and s.op == "const" else None


def folding(name: str):
    """The smart constructor of the elementwise function `name`."""
    scalar_fn = ELEMENTWISE[name].sympy

    def build(x: Node) -> Node:
        s = _constant_entry(x) if x.shape != () else None
        if s is None:
            return Node(name, (x,))
        try:
            value = sympy.sympify(scalar_fn(s.attrs[0]))
        except (TypeError, ValueError, ArithmeticError):
            value = None
        exact = value is not None and value.is_Number and value.is_finite and value.is_real
        return E.mul(E.const(value) if exact else Node(name, (s,)), E.ones(x.shape))

    return build


E.CONSTRUCTORS.update({name: folding(name) for name in ELEMENTWISE})


_power = E.CONSTRUCTORS["pow"]


def _folding_power(a: Node, b: Node) -> Node:
    """(s·𝟙) ** c = (s ** c)·𝟙 for a constant c, so no `0²` of a zero vector is printed (found by the long run)."""
    s = _constant_entry(a) if a.shape != () and b.op == "const" else None
    if s is not None:
        try:
            scalar = _power(s, b)
        except SymbackpropError:                     # 0 ** −1: left as it is written
            return _power(a, b)
        value = scalar.attrs[0] if scalar.op == "const" else None
        if value is None or (value.is_finite and value.is_real):
            return E.mul(scalar, E.ones(a.shape))
    return _power(a, b)


E.CONSTRUCTORS["pow"] = _folding_power
