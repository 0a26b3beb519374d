"""Numerically stable rewrites of an objective before it is derived and emitted (codegen's first stage).

Each rewrite is a rule about specific operators (log of 1 + exp, of sigmoid, of softmax, …), so this is
one of the rule modules: a new operator needs no entry here unless it has a stable form of its own.
"""
from __future__ import annotations

import sympy

from . import expr as E
from .expr import Node, walk

def _is_one(n: Node) -> bool:
    return n.op == "const" and n.attrs[0] == 1


def _positive_const(n: Node):
    """The value of a positive numeric constant node, else None."""
    if n.op != "const" or getattr(n.attrs[0], "free_symbols", None):
        return None
    v = n.attrs[0]
    return v if v.is_positive else None


def _at_least_one(n: Node) -> bool:
    """A numeric constant ≥ 1 (sigmoid(s) ** p with p ≥ 1 is no smaller than it is accurate: left as it is)."""
    return n.op == "const" and not getattr(n.attrs[0], "free_symbols", None) and bool(n.attrs[0] >= 1)


def _plus_exp(a: Node):
    """(c, z) when a = c + exp(z) with c a positive constant, else None."""
    if a.op != "add":
        return None
    for c, e in (a.args, a.args[::-1]):
        if e.op == "exp" and _positive_const(c) is not None:
            return c.attrs[0], e.args[0]
    return None


#: Below -SOFTPLUS_TAIL, log(softplus(z)) is computed as log(softplus(-20)) + (z + 20): off by less than
#: exp(-20)/2 = 1.1e-9 (relative to |z| ≥ 20, under 6e-11), and the gradient 1 by the same. Above it the
#: gradient sigmoid(z)/softplus(z) is accurate to 3e-8 relative: NumPy's sigmoid (the tanh form) is
#: accurate in absolute terms only, so a lower threshold would lose the gradient's digits (at z = -37, all).
SOFTPLUS_TAIL = 20


def stabilise(root: Node) -> Node:
    """Rewrite forms that overflow or lose everything at |z| = 1000 into ones that do not:

    log(1 + exp(z)) -> softplus(z), and log(c + exp(z)) -> log(c) + softplus(z - log(c)) for c > 0;
    x / (1 + exp(z)) -> x * sigmoid(-z) (so 1/(1 + exp(-z)) is sigmoid(z));
    log(sigmoid(z)) -> -softplus(-z); log(1 - sigmoid(z)) -> -softplus(z);
    log(softmax(z)) -> z - logsumexp(z); log(sum(exp(z))) -> logsumexp(z);
    sigmoid(s) ** p -> exp(-p·softplus(-s)) unless p is a constant ≥ 1 (sigmoid(s) rounds to a denormal or 0
    below s ≈ -708, where sigmoid(s) ** 0.5 = exp(-354) still is a normal number; and its gradient
    p·sigmoid(s) ** (p - 1)·sigmoid'(s) is 0·inf there);
    and last log(softplus(z)) -> log(softplus(max(z, -20))) + min(z + 20, 0) (see SOFTPLUS_TAIL), so
    softplus never underflows to 0 under the log (z = -1000)."""
    for _ in range(8):
        mapping = {}
        for n in walk(root):
            if n.op == "pow" and n.args[0].op == "sigmoid" and not _at_least_one(n.args[1]):
                p, s = n.args[1], n.args[0].args[0]           # sigmoid(s) ** p = exp(-p·softplus(-s))
                mapping[n] = Node("exp", (-(p * Node("softplus", (-s,))),))
                continue
            if n.op in ("div", "pow") and (n.op == "div" or (n.args[1].op == "const" and n.args[1].attrs[0] == -1)):
                den = n.args[1] if n.op == "div" else n.args[0]
                ce = _plus_exp(den)
                if ce is not None and ce[0] == 1:
                    sig = Node("sigmoid", (-ce[1],))
                    mapping[n] = E.mul(n.args[0], sig) if n.op == "div" else sig
                continue
            if n.op != "log":
                continue
            a = n.args[0]
            ce = _plus_exp(a)
            if ce is not None:
                c, z = ce
                if c == 1:
                    mapping[n] = Node("softplus", (z,))
                else:
                    log_c = E.const(float(sympy.log(c)))
                    mapping[n] = log_c + Node("softplus", (z - log_c,))
            elif a.op == "sigmoid":
                mapping[n] = -Node("softplus", (-a.args[0],))
            elif a.op == "sub" and _is_one(a.args[0]) and a.args[1].op == "sigmoid":
                mapping[n] = -Node("softplus", (a.args[1].args[0],))
            elif a.op == "softmax":
                mapping[n] = a.args[0] - Node("logsumexp", (a.args[0],))
            elif a.op == "sum" and a.args[0].op == "exp" and a.args[0].ndim == 1:
                mapping[n] = Node("logsumexp", (a.args[0].args[0],))
        if not mapping:
            break
        root = E.substitute(root, mapping)
    mapping = {}
    for n in walk(root):                               # once, after the others: its result holds log(softplus(.))
        if n.op == "log" and n.args[0].op == "softplus":
            z = n.args[0].args[0]
            below = Node("relu", (-z - SOFTPLUS_TAIL,))          # how far z is below the tail; 0 above
            mapping[n] = Node("log", (Node("softplus", (z + below,)),)) - below
    return E.substitute(root, mapping) if mapping else root
