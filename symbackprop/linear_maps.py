"""Reading a matrix off a linear map: the HVP v ↦ H v of a vector variable is an expression linear in v,
and `hessian_matrix` pulls v out of it (A (B v) → A B, a ⊙ v → diag(a) v, u (wᵀv) → u wᵀ, …) with the
linear-map rules registered per operator in rules_linear.py."""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

from . import expr as E
from .expr import Node, walk
from .rules_linear import linear_rule

# ----- reading the matrix off a linear map -----

class NotLinear(Exception):
    """The expression is not (recognisably) linear in the direction."""


def _dg(a: Node) -> Node:
    """diag(a) as a matrix (a vector): printed diag(a); emitted as a broadcast wherever it multiplies."""
    return Node("diag", (a,))


def _is_dg(n: Node) -> bool:
    return n.op == "diag" and n.args[0].ndim == 1


def _lm(A: Node, M: Node) -> Node:
    """A @ M with the rewrites that keep Hessians readable: diag(a) distributes over sums, folds into
    diag(b) and outer(u, w), and A outer(u, w) = (A u) wᵀ."""
    if M.op == "eye":
        return A
    if A.op == "eye":
        return M
    c, X = E.split_coeff(M)
    if c != 1:
        return E.scaled(c, _lm(A, X))
    if M.op == "outer":
        return E.outer(_mv(A, M.args[0]), M.args[1])
    if _is_dg(A):
        a = A.args[0]
        if _is_dg(M):
            return _dg(E.mul(a, M.args[0]))
        if M.op == "matmul" and _is_dg(M.args[0]):
            return _lm(_dg(E.mul(a, M.args[0].args[0])), M.args[1])
        if M.op in ("add", "sub"):
            return E.apply(M.op, _lm(A, M.args[0]), _lm(A, M.args[1]))
    return E.matmul(A, M)


def _mv(A: Node, u: Node) -> Node:
    """A @ u for a vector u; diag(a) u = a ⊙ u."""
    if _is_dg(A):
        return E.mul(A.args[0], u)
    return E.matmul(A, u)


def _terms(M: Node, sign: int, out: list) -> list:
    """M as a signed sum of terms."""
    if M.op in ("add", "sub"):
        _terms(M.args[0], sign, out)
        _terms(M.args[1], sign if M.op == "add" else -sign, out)
    elif M.op == "neg":
        _terms(M.args[0], -sign, out)
    else:
        out.append((sign, M))
    return out


def _collect(M: Node) -> Node:
    """diag(a) R ± diag(b) R -> diag(a ± b) R: one diagonal per right factor."""
    terms = _terms(M, 1, [])
    groups: dict[Node, list] = {}
    rest = []
    for sign, t in terms:
        if t.op == "matmul" and _is_dg(t.args[0]):
            groups.setdefault(t.args[1], []).append(E.scaled(sign, t.args[0].args[0]))
        else:
            rest.append((sign, t))
    if all(len(g) < 2 for g in groups.values()):
        return M
    out = None
    for R, parts in groups.items():
        a = parts[0]
        for p in parts[1:]:
            a = E.add(a, p)
        t = _lm(_dg(a), R)
        out = t if out is None else E.add(out, t)
    for sign, t in rest:
        out = E.add(out, t) if sign > 0 else E.sub(out, t)
    return out


def _covec(M: Node, c: Node) -> Node:
    """Mᵀ c: the covector of the scalar cᵀ (M v)."""
    if M.op == "eye":
        return c
    if _is_dg(M):
        return E.mul(M.args[0], c)
    return _mv(E.transpose(M), c)


class _Term:
    """A term of a matrix linear in a vector direction v (see _Linear). Its fields read by name; t[0] is its
    TAG and t[1], t[2], … its fields, for the per-operator branches of _Linear.apply."""
    TAG: ClassVar[str] = ""

    def __getitem__(self, i):
        return (self.TAG, *(getattr(self, f.name) for f in fields(self)))[i]


@dataclass(frozen=True)
class OuterLeft(_Term):
    """(M v) uᵀ."""
    TAG: ClassVar[str] = "ol"
    M: Node
    u: Node


@dataclass(frozen=True)
class OuterRight(_Term):
    """u (M v)ᵀ."""
    TAG: ClassVar[str] = "or"
    u: Node
    M: Node


@dataclass(frozen=True)
class ScalarTimes(_Term):
    """(wᵀv) C."""
    TAG: ClassVar[str] = "sc"
    w: Node
    C: Node


@dataclass(frozen=True)
class DiagBetween(_Term):
    """L diag(M v) R, with L or R None for the identity."""
    TAG: ClassVar[str] = "ldr"
    L: Node | None
    M: Node
    R: Node | None


class _Linear:
    """Representations of sub-expressions linear in a vector direction v of length n:

    scalar e: a vector w with e = wᵀv;   vector e: a matrix M with e = M v;
    matrix e: a list of terms, each OuterLeft(M, u) = (M v) uᵀ, OuterRight(u, M) = u (M v)ᵀ,
    ScalarTimes(w, C) = (wᵀv) C or DiagBetween(L, M, R) = L diag(M v) R (L, R None for I)."""

    def __init__(self, v: Node):
        self.v, self.n = v, v.shape[0]

    def matrix(self, root: Node) -> Node:
        """M with root = M v (root a vector linear in v)."""
        rep: dict[Node, object] = {}
        for node in walk(root):
            if node is self.v:
                rep[node] = E.eye(self.n)
            elif not node.args or all(rep.get(a) is None for a in node.args):
                rep[node] = None
            else:
                rep[node] = self.apply(node, [rep.get(a) for a in node.args])
        out = rep[root]
        if out is None:
            if E.is_zero(root):
                return E.zeros((root.shape[0], self.n))
            raise NotLinear(root)
        return out

    # ----- helpers on representations -----

    @staticmethod
    def scale(r, ndim, s: Node):
        """s · e for a scalar s constant in v."""
        if ndim < 2:
            return E.mul(s, r)
        out = []
        for t in r:
            if isinstance(t, OuterLeft):
                out.append(OuterLeft(E.mul(s, t.M), t.u))
            elif isinstance(t, OuterRight):
                out.append(OuterRight(t.u, E.mul(s, t.M)))
            elif isinstance(t, ScalarTimes):
                out.append(ScalarTimes(E.mul(s, t.w), t.C))
            else:
                out.append(DiagBetween(t.L, E.mul(s, t.M), t.R))
        return out

    @staticmethod
    def transpose(r):
        def flip(t):
            if isinstance(t, OuterLeft):
                return OuterRight(t.u, t.M)
            if isinstance(t, OuterRight):
                return OuterLeft(t.M, t.u)
            if isinstance(t, ScalarTimes):
                return ScalarTimes(t.w, E.transpose(t.C))
            return DiagBetween(None if t.R is None else E.transpose(t.R), t.M,
                               None if t.L is None else E.transpose(t.L))
        return [flip(t) for t in r]

    def broadcast(self, w: Node, shape) -> object:
        """A scalar wᵀv broadcast to `shape`."""
        if len(shape) == 1:
            return E.outer(E.ones(shape), w)
        return [ScalarTimes(w, E.ones(shape))]

    def add(self, a, b, ndim):
        if ndim == 1:
            return _collect(E.add(a, b))
        if ndim < 2:
            return E.add(a, b)
        return list(a) + list(b)

    def neg(self, r, ndim):
        return self.scale(r, ndim, E.const(-1))

    def left(self, A: Node, r, ndim_r):
        """A @ e for A constant in v."""
        if ndim_r == 1:
            return _lm(A, r)
        out = []
        for t in r:
            if isinstance(t, OuterLeft):
                out.append(OuterLeft(_lm(A, t.M), t.u))
            elif isinstance(t, OuterRight):
                out.append(OuterRight(_mv(A, t.u), t.M))
            elif isinstance(t, ScalarTimes):
                out.append(ScalarTimes(t.w, E.matmul(A, t.C)))
            else:
                out.append(DiagBetween(A if t.L is None else E.matmul(A, t.L), t.M, t.R))
        return out

    def right(self, r, B: Node):
        """e @ B for a matrix e linear in v and B constant: a vector map (B a vector) or terms."""
        if B.ndim == 1:
            M = None
            for t in r:
                if isinstance(t, OuterLeft):
                    part = E.mul(E.dot(t.u, B), t.M)
                elif isinstance(t, OuterRight):
                    part = E.outer(t.u, _covec(t.M, B))
                elif isinstance(t, ScalarTimes):
                    part = E.outer(_mv(t.C, B), t.w)
                else:
                    y = B if t.R is None else _mv(t.R, B)
                    part = _lm(_dg(y), t.M)
                    if t.L is not None:
                        part = _lm(t.L, part)
                M = part if M is None else E.add(M, part)
            return M
        out = []
        for t in r:
            if isinstance(t, OuterLeft):
                out.append(OuterLeft(t.M, _mv(E.transpose(B), t.u)))
            elif isinstance(t, OuterRight):
                out.append(OuterRight(t.u, _lm(E.transpose(B), t.M)))
            elif isinstance(t, ScalarTimes):
                out.append(ScalarTimes(t.w, E.matmul(t.C, B)))
            else:
                out.append(DiagBetween(t.L, t.M, B if t.R is None else E.matmul(t.R, B)))
        return out

    # ----- one node: the operator's rule (rules_linear.LINEAR) -----

    def apply(self, node: Node, reps: list):
        return linear_rule(node.op)(self, node, reps)

    def not_linear(self, node: Node):
        raise NotLinear(node)

    lm, mv, covec, dg = staticmethod(_lm), staticmethod(_mv), staticmethod(_covec), staticmethod(_dg)
    OuterLeft, OuterRight, ScalarTimes, DiagBetween = OuterLeft, OuterRight, ScalarTimes, DiagBetween


def hessian_matrix(hv: Node, direction: Node) -> Node | None:
    """The matrix H with hv = H v, for a vector direction v; None if it cannot be read off."""
    if direction.ndim == 0:
        return E.substitute(hv, {direction: E.const(1)})
    if direction.ndim != 1:
        return None
    try:
        return _Linear(direction).matrix(hv)
    except NotLinear:
        return None
