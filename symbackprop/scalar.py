"""Scalar algebra with SymPy: canonical forms for results that are plain scalar expressions.

Only expressions made of scalars, arithmetic and elementwise functions go
through here (e.g. the handout's part (a) gives 4·x³ + 2·x, not 2·((1 + 2·x²)·x)).
The round trip Node -> SymPy -> Node is exact; the result is self-checked like any other.
"""
from __future__ import annotations

import sympy

from . import expr as E
from .expr import Node, walk
from .rules import apply_fn
from .rules_sympy import SCALAR, SCALAR_BACK, SQRT


def is_plain_scalar(root: Node) -> bool:
    return all(n.shape == () and n.op in SCALAR for n in walk(root))


def to_sympy_scalar(root: Node):
    done: dict[Node, object] = {}
    for n in walk(root):
        done[n] = SCALAR[n.op](n, [done[x] for x in n.args])
    return done[root]


def from_sympy_scalar(e, variables: dict[str, Node]) -> Node:
    if e.is_Number:
        return E.const(e)
    if e.is_Symbol:
        return variables[e.name]
    if e.is_Add:
        terms = sorted(e.args, key=sympy.default_sort_key, reverse=True)
        out = from_sympy_scalar(terms[0], variables)
        for t in terms[1:]:
            c, rest = t.as_coeff_Mul()
            if c < 0:
                out = E.sub(out, from_sympy_scalar(-t, variables))
            else:
                out = E.add(out, from_sympy_scalar(t, variables))
        return out
    if e.is_Mul:
        c, rest = e.as_coeff_Mul()
        factors = [f for f in sympy.Mul.make_args(rest)]
        num = [f for f in factors if not (f.is_Pow and f.exp.is_negative)]
        den = [1 / f for f in factors if f.is_Pow and f.exp.is_negative]
        out = from_sympy_scalar(num[0], variables) if num else E.const(1)
        for f in num[1:]:
            out = E.mul(out, from_sympy_scalar(f, variables))
        for f in den:
            out = E.div(out, from_sympy_scalar(f, variables))
        return E.mul(E.const(c), out) if c != 1 else out
    if e.is_Pow:
        if e.exp == sympy.Rational(1, 2):
            return apply_fn(SQRT, from_sympy_scalar(e.base, variables))
        return E.power(from_sympy_scalar(e.base, variables), from_sympy_scalar(e.exp, variables))
    if e.func in SCALAR_BACK:
        return apply_fn(SCALAR_BACK[e.func], from_sympy_scalar(e.args[0], variables))
    raise ValueError(f"cannot convert {e!r}")


#: Scalar results whose expression tree (shared nodes counted each time) is larger keep their DAG form.
MAX_TREE = 200


def _tree_size(root: Node, memo: dict | None = None) -> int:
    """Nodes in the expression *tree* (shared nodes counted every time), capped at MAX_TREE + 1. `memo` (one
    dict across calls) keeps the sizes of the nodes seen, so sizing many results sharing one DAG costs its size."""
    memo = {} if memo is None else memo
    if root in memo:
        return memo[root]
    stack = [(root, False)]
    while stack:
        node, ready = stack.pop()
        if node in memo:
            continue
        if ready:
            total = 1
            for a in node.args:
                total += memo[a]
                if total > MAX_TREE:
                    total = MAX_TREE + 1
                    break
            memo[node] = total
            continue
        stack.append((node, True))
        stack.extend((a, False) for a in node.args if a not in memo)
    return memo[root]


def canonical_scalar(root: Node, variables: dict[str, Node], sizes: dict | None = None) -> Node:
    """A plain scalar expression in its simplest of a few SymPy canonical forms (else unchanged). `sizes`: a
    dict shared by the calls for the results of one derivation (see _tree_size)."""
    if not root.args or root.shape != ():
        return root
    from .printing import expand_macros
    if _tree_size(root, sizes) > MAX_TREE:
        return root                                  # SymPy trees would repeat shared nodes: keep the DAG
    plain = expand_macros([root])[0]
    if not is_plain_scalar(plain):
        return root
    e = to_sympy_scalar(plain)
    candidates = [sympy.expand(e), sympy.factor_terms(e)]
    best = min(candidates, key=sympy.count_ops)
    if sympy.count_ops(best) > sympy.count_ops(e):
        return root
    try:
        return from_sympy_scalar(best, variables)
    except (ValueError, KeyError):
        return root
