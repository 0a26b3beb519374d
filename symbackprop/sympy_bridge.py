"""Expressions as SymPy matrix expressions, for users who want to keep working in SymPy.

Vectors become n×1 MatrixSymbols, ⊙ a HadamardProduct, an elementwise function an
ElementwiseApplyFunction of a named SymPy function (relu, relu', Phi', …). This is a
view for display and further algebra: symbackprop never differentiates through it.
"""
from __future__ import annotations

from . import expr as E
from .expr import Node, walk
from .rules_sympy import symbol_for, sympy_rule


def to_sympy(root: Node, names: dict[Node, str] | None = None):
    """`root` as a SymPy (matrix) expression; nodes in `names` become symbols of that name."""
    names = names or {}
    done: dict[Node, object] = {}
    for node in walk(root, stop=names):
        if node in names and node is not root:
            done[node] = symbol_for(E.var(names[node], node.shape))
            continue
        done[node] = sympy_rule(node.op)(node, [done[x] for x in node.args])
    return done[root]
