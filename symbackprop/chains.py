"""Matrix-chain ordering (a codegen stage): products A B C x reassociated into their cheapest order.

The chains are made of the four product operators themselves (matmul, outer, dot and the transpose),
so the names of those four appear here; no other operator has, or needs, an entry.
"""
from __future__ import annotations

from . import expr as E
from .expr import Node, walk

#: Nominal size of a symbolic dim when comparing the cost of matrix-chain orders.
NOMINAL_DIM = 100


def _dim(d) -> int:
    return d if isinstance(d, int) else NOMINAL_DIM


def _size(shape) -> int:
    n = 1
    for d in shape:
        n *= _dim(d)
    return n


def _flip(fs):
    """The factors of Pᵀ from those of P."""
    return [(f, {"c": "r", "r": "c"}.get(k, k), t ^ (k == "M")) for f, k, t in reversed(fs)]


class _Chains:
    """Reassociate products A B C x (matmul / outer / dot / transpose) into the cheapest order.

    A factor is (node, kind, transposed): kind 'M' matrix, 'c' column vector, 'r' row
    vector, 's' scalar. Only single-use, unnamed products are opened, so shared
    intermediates stay shared."""

    PRODUCTS = ("matmul", "outer", "dot")

    def __init__(self, uses: dict, keep: set):
        self.uses, self.keep = uses, keep
        self.vector_root = False

    def opens(self, n: Node) -> bool:
        # a shared matrix product is reopened under a chain that ends in a vector: A (B x) beats (A B) x
        # and a shared product holding an outer product is rank one: cheaper to rebuild from its vectors
        if n in self.keep or (self.uses.get(n, 0) > 1 and not (self.vector_root and n.ndim == 2)
                              and not self.rank_one(n)):
            return False
        return n.op in self.PRODUCTS or (n.op == "T" and self.opens(n.args[0]))

    def rank_one(self, n: Node) -> bool:
        if n.op == "outer":
            return True
        if n.op == "T":
            return self.rank_one(n.args[0])
        return n.op == "matmul" and n not in self.keep and any(self.rank_one(a) for a in n.args)

    @staticmethod
    def kind(n: Node) -> str:
        return {0: "s", 1: "c", 2: "M"}[n.ndim]

    def factors(self, n: Node, top: bool = False):
        if not (top or self.opens(n)) or not (n.op in self.PRODUCTS or n.op == "T"):
            return [(n, self.kind(n), False)]
        if n.op == "T":
            if not self.opens(n.args[0]):
                return [(n, self.kind(n), False)]
            return _flip(self.factors(n.args[0]))
        a, b = n.args
        if n.op == "matmul":
            return self.factors(a) + self.factors(b)
        if n.op == "outer":
            return self.factors(a) + _flip(self.factors(b))
        return _flip(self.factors(a)) + self.factors(b)

    def cost_as_is(self, n: Node, top: bool = True) -> int:
        """Multiplications of the chain's products as written."""
        if not (top or self.opens(n)) or not (n.op in self.PRODUCTS or n.op == "T"):
            return 0
        if n.op == "T":
            return self.cost_as_is(n.args[0], False)
        a, b = n.args
        inner = self.cost_as_is(a, False) + self.cost_as_is(b, False)
        if n.op == "matmul":
            return inner + _size(a.shape) * (_dim(b.shape[1]) if b.ndim == 2 else 1)
        return inner + (_size(n.shape) if n.op == "outer" else _size(a.shape))

    @staticmethod
    def dims(node: Node, kind: str, t: bool):
        if kind == "M":
            r, c = _dim(node.shape[0]), _dim(node.shape[1])
            return (c, r) if t else (r, c)
        return {"c": (_dim(node.shape[0]), 1), "r": (1, _dim(node.shape[0])), "s": (1, 1)}[kind]

    @staticmethod
    def combine(x, y):
        (a, ka), (b, kb) = x, y
        if ka == "s":
            return E.mul(a, b), kb
        if kb == "s":
            return E.mul(b, a), ka
        if (ka, kb) == ("M", "M"):
            return E.matmul(a, b), "M"
        if (ka, kb) == ("M", "c"):
            return E.matmul(a, b), "c"
        if (ka, kb) == ("r", "M"):
            return E.matmul(E.transpose(b), a), "r"
        if (ka, kb) == ("r", "c"):
            return E.dot(a, b), "s"
        if (ka, kb) == ("c", "r"):
            return E.outer(a, b), "M"
        raise KeyError((ka, kb))

    def best(self, n: Node, done: dict) -> Node | None:
        """The cheapest rebuild of the chain rooted at n, or None when the order as written is as cheap."""
        fs = self.factors(n, top=True)
        self.vector_root = n.ndim < 2 or any(k in "cr" for _, k, _ in fs)
        try:
            fs = self.factors(n, top=True)
        finally:
            self.vector_root = False
        if len(fs) < 3:
            return None
        dims = [self.dims(f, k, t) for f, k, t in fs]
        m = len(fs)
        cost = [[0] * m for _ in range(m)]
        split = [[0] * m for _ in range(m)]
        for length in range(2, m + 1):
            for i in range(m - length + 1):
                j = i + length - 1
                cost[i][j] = None
                for k in range(i, j):
                    c = cost[i][k] + cost[k + 1][j] + dims[i][0] * dims[k][1] * dims[j][1]
                    if cost[i][j] is None or c < cost[i][j]:
                        cost[i][j], split[i][j] = c, k
        self.vector_root = n.ndim < 2 or any(k in "cr" for _, k, _ in fs)
        try:
            as_is = self.cost_as_is(n)
        finally:
            self.vector_root = False
        if cost[0][m - 1] >= as_is:
            return None

        def leaf(i):
            f, k, t = fs[i]
            f = done.get(f, f)
            return (E.transpose(f) if t else f), k

        def build(i, j):
            if i == j:
                return leaf(i)
            k = split[i][j]
            return self.combine(build(i, k), build(k + 1, j))
        try:
            out, _ = build(0, m - 1)
        except KeyError:
            return None
        return out if out.shape == n.shape else None


def order_chains(roots: list[Node], keep: set) -> list[Node]:
    """Rebuild `roots` with every matrix chain in its cheapest order (vector first)."""
    uses = _use_counts(roots)
    chains = _Chains(uses, keep)
    users: dict[Node, Node] = {}
    for node in walk(roots):
        for a in node.args:
            users.setdefault(a, node)
    done: dict[Node, Node] = {}
    for node in walk(roots):
        if not node.args:
            done[node] = node
            continue
        new = None
        if node.op in _Chains.PRODUCTS or node.op == "T":
            u = users.get(node)
            inner = chains.opens(node) and u is not None and (u.op in _Chains.PRODUCTS or chains.opens(u) and u.op == "T")
            if not inner:
                new = chains.best(node, done)
        if new is None:
            args = tuple(done[a] for a in node.args)
            new = node if all(x is y for x, y in zip(args, node.args)) else E.apply(node.op, *args, attrs=node.attrs)
        done[node] = new
    return [done[r] for r in roots]


def _use_counts(roots: list[Node]) -> dict[Node, int]:
    uses: dict[Node, int] = {}
    for r in roots:
        uses[r] = uses.get(r, 0) + 1
    for n in walk(roots):
        for a in n.args:
            uses[a] = uses.get(a, 0) + 1
    return uses
