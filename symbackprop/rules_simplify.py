"""The simplifier's rule table: the algebra a lecturer does without thinking, as data.

Each rewrite belongs to the operator of the node it rewrites (`REWRITES[op]`), is a local pattern on that
node and its arguments (so one pass of `symbackprop.simplify` stays linear in the size of the DAG), and
returns an equal expression (equal wherever the original is defined) or None. Each has a test and a
numeric check (tests/test_simplify.py, tests/test_textbook.py).

The rewrites of the algebra itself are in rules_algebra.py (imported at the end, it registers them here).
`CLOSED_FORMS` holds the closed form of each known elementwise derivative (sin′ -> cos, log′(u) -> 1 ⊘ u, …),
registered with the derivative's operator; `KEPT_PRIMES` those that stay primes in results, and why.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import sympy

from . import expr as E
from .expr import Node


@dataclass(frozen=True)
class Rewrite:
    op: str                               # the operator of the node it rewrites
    name: str
    fn: Callable[[Node, Callable], Node | None]   # (node, simplify) -> an equal node, or None (no match)
    doc: str
    when: frozenset | None = None         # it can only apply when an argument's operator is one of these


REWRITES: dict[str, list[Rewrite]] = {}
_CANDIDATES: dict[tuple, tuple] = {}


def rewrites(op: str) -> list[Rewrite]:
    """The rewrites of nodes of `op` (most operators have none)."""
    return REWRITES.get(op, [])


def candidates(node: Node) -> tuple:
    """The rewrites that may apply to `node`, by its operator and its arguments' operators (cached), so a
    node no rewrite can match costs one lookup."""
    args = node.args
    key = (node.op, args[0].op) if len(args) == 1 else \
        (node.op, args[0].op, args[1].op) if len(args) == 2 else (node.op,) + tuple(a.op for a in args)
    hit = _CANDIDATES.get(key)
    if hit is None:
        ops = set(key[1:])
        hit = _CANDIDATES[key] = tuple(r for r in rewrites(node.op) if r.when is None or r.when & ops)
    return hit


def rule(op: str, doc: str, when=None):
    def register(fn):
        REWRITES.setdefault(op, []).append(Rewrite(op, fn.__name__.lstrip("_"), fn, doc,
                                                   None if when is None else frozenset(when)))
        return fn
    return register


def fn(name: str, x: Node) -> Node:
    return Node(name, (x,))


ONE = sympy.Integer(1)


def one() -> Node:
    return E.const(1)


def _recip(x: Node) -> Node:
    """1 ⊘ x (elementwise)."""
    return Node("div", (one(), x))


# ----- known derivatives in closed form (the prime's operator -> its closed form) -----

#: prime operator -> closed form of its argument. Each equals the rule table's expansion (ELEMENTWISE[...].d),
#: written as a textbook writes it: the forward value by its name (exp′ -> exp, tanh′ -> 1 − tanh²), the
#: reciprocal folded into the neighbouring factor (log′(u) -> 1 ⊘ u, so g ⊙ log′(u) prints g ⊘ u).
CLOSED_FORMS: dict[str, Callable[[Node], Node]] = {
    "cos'": lambda x: E.neg(fn("sin", x)),
    "tan'": lambda x: E.add(one(), E.power(fn("tan", x), E.const(2))),
    "exp'": lambda x: fn("exp", x),
    "log'": _recip,
    "sqrt'": lambda x: Node("div", (one(), E.mul(E.const(2), fn("sqrt", x)))),
    "tanh'": lambda x: E.sub(one(), E.power(fn("tanh", x), E.const(2))),
    "sigmoid'": lambda x: E.mul(fn("sigmoid", x), E.sub(one(), fn("sigmoid", x))),
    "step'": lambda x: E.zeros(x.shape),
    "sign'": lambda x: E.zeros(x.shape),
}

#: primes whose closed form is another function of the same argument: the prime prints as that function
#: (sin′(u) as cos(u)) and stays one node, so the DAG above it is not rebuilt (what keeps the simplifier's
#: cost within noise on deep formulas). It evaluates as the rule table's expansion, which is that function.
PRINTED_AS: dict[str, str] = {"sin'": "cos", "abs'": "sign", "softplus'": "sigmoid"}

#: primes that stay primes in results, and why (docs/formula-language.md, "How results are written").
KEPT_PRIMES = {
    "relu'": "relu′(u) is the step 𝟙[u > 0]; the prime says where it came from, as the handout writes it",
    "erf'": "erf′(u) = 2/√π·exp(−u²), whose constant has no short plain-text spelling (it would read 2/pi^0.5)",
}


def _closed(op):
    def rewrite(node: Node, s) -> Node:
        return CLOSED_FORMS[op](node.args[0])
    rewrite.__name__ = "closed_form"
    return rewrite


for _op in CLOSED_FORMS:
    REWRITES.setdefault(_op, []).append(Rewrite(_op, f"closed form of {_op}", _closed(_op),
                                                 "a known derivative in closed form"))


# ----- pattern helpers -----

def same(a: Node, b: Node) -> bool:
    """a and b are one value: the same node, or a prime that prints as a function and that function
    (sin′(x) and cos(x))."""
    if a is b:
        return True
    a2 = Node(PRINTED_AS[a.op], a.args) if a.op in PRINTED_AS else a
    b2 = Node(PRINTED_AS[b.op], b.args) if b.op in PRINTED_AS else b
    return a2 is b2



# ----- matrix products as chains of factors -----

#: Products longer than this are compared by identity only (keeps the comparison linear).
MAX_CHAIN = 16


def chain(n: Node) -> tuple | None:
    """The factors of a matrix product as a tuple of (base, power), association forgotten; None when it has
    more than MAX_CHAIN factors (so a call visits at most 2·MAX_CHAIN nodes). Adjacent repeats are merged:
    X X X is ((X, 3),)."""
    out: list = []
    stack = [n]
    while stack:
        m = stack.pop()
        if m.op == "matmul":
            stack += [m.args[1], m.args[0]]
        else:
            base, k = (m.args[0], m.attrs[0]) if m.op == "matrix_power" else (m, 1)
            if out and out[-1][0] is base:
                out[-1] = (base, out[-1][1] + k)
            else:
                out.append((base, k))
        if len(out) + len(stack) > MAX_CHAIN:
            return None
    return tuple(out)


def chain_product(factors) -> Node:
    out = None
    for base, k in factors:
        f = E.matrix_power(base, k) if k > 1 else base
        out = f if out is None else E.matmul(out, f)
    return out


from . import rules_algebra  # noqa: E402,F401  (registers the algebra's rewrites in REWRITES)
