"""Linear-map rules, one entry per operator of the rule table: how the Hessian reader
(linear_maps._Linear) represents an operator's result when some arguments are linear in a
vector direction v.

`LINEAR[op](lin, node, reps)` gets the reader `lin` (its helpers: scale, neg, add, left,
right, transpose, broadcast, lm, mv, covec, dg, not_linear), the node, and one representation
per argument (None: constant in v); it returns the node's representation or calls
`lin.not_linear(node)`. Operators that are never linear in an argument register `NOT_LINEAR`;
elementwise rules (kind="elementwise") decline by kind: they are not linear.
"""
from __future__ import annotations

from . import expr as E
from .expr import Node
from .rules import RULES, behaviour


def NOT_LINEAR(lin, node, reps):
    """The declined entry: the operator is not linear in any argument."""
    lin.not_linear(node)


def _neg(lin, node, reps):
    return lin.neg(reps[0], node.ndim)


def _add_sub(lin, node, reps):
    lin_args = [r is not None for r in reps]
    parts = []
    for a, r in zip(node.args, reps):
        if r is None:
            if not E.is_zero(a):
                lin.not_linear(node)
            continue
        if a.ndim < node.ndim:                   # a scalar broadcast against an array
            r = lin.broadcast(r, node.shape)
        parts.append(r)
    if node.op == "sub" and lin_args[1]:
        parts[-1] = lin.neg(parts[-1], node.ndim)
    out = parts[0]
    for p in parts[1:]:
        out = lin.add(out, p, node.ndim)
    return out


def _scaling(reciprocal: bool):
    """mul (reciprocal False) and div: linear in the one argument that depends on v (the numerator of div)."""
    def rule(lin, node, reps):
        lin_args = [r is not None for r in reps]
        if all(lin_args) or (reciprocal and lin_args[1]):
            lin.not_linear(node)
        i = 0 if lin_args[0] else 1
        e, r, c = node.args[i], reps[i], node.args[1 - i]
        if reciprocal:
            c = E.div(E.const(1), c)
        if c.ndim == 0:
            return lin.scale(r, e.ndim, c)
        if e.ndim == 0:                           # (wᵀv) c
            return E.outer(c, r) if c.ndim == 1 else [lin.ScalarTimes(r, c)]
        if e.ndim == 1:
            return lin.lm(lin.dg(c), r)
        out = []
        for t in r:                               # (matrix linear in v) ⊙ C
            if t[0] == "ol":
                out.append(lin.DiagBetween(None, t[1], E.matmul(c, lin.dg(t[2]))))
            elif t[0] == "or":
                out.append(lin.DiagBetween(E.matmul(lin.dg(t[1]), c), t[2], None))
            elif t[0] == "sc":
                out.append(lin.ScalarTimes(t[1], E.mul(c, t[2])))
            elif t[1] is None and t[3] is None:         # diag(M v) ⊙ C = diag(diag(C) ⊙ M v)
                out.append(lin.DiagBetween(None, lin.lm(lin.dg(Node("diag", (c,))), t[2]), None))
            elif t[1] is None:                          # (diag(a) R) ⊙ C = diag(a) (R ⊙ C)
                out.append(lin.DiagBetween(None, t[2], E.mul(t[3], c)))
            elif t[3] is None:                          # (L diag(a)) ⊙ C = (L ⊙ C) diag(a)
                out.append(lin.DiagBetween(E.mul(t[1], c), t[2], None))
            else:
                lin.not_linear(node)
        return out
    return rule


def _matmul(lin, node, reps):
    if all(r is not None for r in reps):
        lin.not_linear(node)
    A, B = node.args
    if reps[1] is not None:
        return lin.left(A, reps[1], B.ndim)
    return lin.right(reps[0], B)


def _transpose(lin, node, reps):
    return lin.transpose(reps[0]) if node.ndim == 2 else reps[0]


def _dot(lin, node, reps):
    if all(r is not None for r in reps):
        lin.not_linear(node)
    i = 0 if reps[0] is not None else 1
    return lin.covec(reps[i], node.args[1 - i])


def _outer(lin, node, reps):
    if all(r is not None for r in reps):
        lin.not_linear(node)
    return [lin.OuterLeft(reps[0], node.args[1])] if reps[0] is not None else [lin.OuterRight(node.args[0], reps[1])]


def _rows(lin, node, reps):                      # 𝟙 (M v)ᵀ
    return [lin.OuterRight(E.ones((node.shape[0],)), reps[0])]


def _diag(lin, node, reps):
    r = reps[0]
    if node.args[0].ndim == 1:
        return [lin.DiagBetween(None, r, None)]
    M = None
    for t in r:
        if t[0] in ("ol", "or"):
            u, m = (t[2], t[1]) if t[0] == "ol" else (t[1], t[2])
            part = lin.lm(lin.dg(u), m)
        elif t[0] == "sc":
            part = E.outer(Node("diag", (t[2],)), t[1])
        else:
            L, m, R = t[1], t[2], t[3]
            if L is None and R is None:
                part = m
            elif L is None:
                part = lin.lm(lin.dg(Node("diag", (R,))), m)
            elif R is None:
                part = lin.lm(lin.dg(Node("diag", (L,))), m)
            else:
                part = E.matmul(E.mul(L, E.transpose(R)), m)
        M = part if M is None else E.add(M, part)
    return M


def _total(kind: str):
    """sum, mean (kind "sum", "mean") and trace: the covector of a scalar linear in v."""
    def rule(lin, node, reps):
        r, a = reps[0], node.args[0]
        if a.ndim == 0:
            return r
        if a.ndim == 1:
            if kind == "trace":
                lin.not_linear(node)
            w = lin.covec(r, E.ones(a.shape))
        else:
            w = None
            for t in r:
                part = _trace_term(lin, t) if kind == "trace" else _sum_term(lin, t)
                w = part if w is None else E.add(w, part)
        if kind == "mean":
            w = E.div(w, E.const(E.numel(a.shape)))
        return w
    return rule


def _trace_term(lin, t):
    if t[0] in ("ol", "or"):
        u, m = (t[2], t[1]) if t[0] == "ol" else (t[1], t[2])
        return lin.covec(m, u)
    if t[0] == "sc":
        return E.mul(Node("trace", (t[2],)), t[1])
    L, m, R = t[1], t[2], t[3]
    if L is None and R is None:
        dd = E.ones((m.shape[0],))
    else:
        RL = L if R is None else (R if L is None else E.matmul(R, L))
        dd = Node("diag", (RL,))
    return lin.covec(m, dd)


def _sum_term(lin, t):
    if t[0] in ("ol", "or"):
        u, m = (t[2], t[1]) if t[0] == "ol" else (t[1], t[2])
        return E.mul(E.sum_all(u), lin.covec(m, E.ones((m.shape[0],))))
    if t[0] == "sc":
        return E.mul(E.sum_all(t[2]), t[1])
    L, m, R = t[1], t[2], t[3]
    k = m.shape[0]
    lt = E.ones((k,)) if L is None else lin.covec(L, E.ones((L.shape[0],)))
    rt = E.ones((k,)) if R is None else lin.mv(R, E.ones((R.shape[1],)))
    return lin.covec(m, E.mul(lt, rt))


LINEAR = {
    # leaves have no arguments: the reader never asks for them
    "var": NOT_LINEAR, "const": NOT_LINEAR, "zeros": NOT_LINEAR, "ones": NOT_LINEAR, "eye": NOT_LINEAR,
    # ----- arithmetic -----
    "neg": _neg,
    "add": _add_sub,
    "sub": _add_sub,
    "mul": _scaling(False),
    "div": _scaling(True),
    "pow": NOT_LINEAR,
    "maximum": NOT_LINEAR,
    "minimum": NOT_LINEAR,
    "rows": _rows,
    # ----- linear algebra -----
    "matmul": _matmul,
    "T": _transpose,
    "dot": _dot,
    "outer": _outer,
    "diag": _diag,
    "trace": _total("trace"),
    "inv": NOT_LINEAR, "pinv": NOT_LINEAR, "det": NOT_LINEAR, "logdet": NOT_LINEAR, "matrix_power": NOT_LINEAR,
    # ----- reductions -----
    "sum": _total("sum"),
    "mean": _total("mean"),
    "norm": NOT_LINEAR, "sqnorm": NOT_LINEAR, "softmax": NOT_LINEAR, "logsumexp": NOT_LINEAR,
    "softmax_rows": NOT_LINEAR, "logsumexp_rows": NOT_LINEAR, "max": NOT_LINEAR, "min": NOT_LINEAR,
    "maxmask": NOT_LINEAR, "minmask": NOT_LINEAR,
    # ----- abstract functions -----
    "phi": NOT_LINEAR, "fn": NOT_LINEAR,
}


def linear_rule(op: str):
    """The linear-map rule of `op` (elementwise rules: not linear)."""
    if RULES[op].kind == "elementwise" and op not in LINEAR:
        return NOT_LINEAR
    return behaviour(LINEAR, op, "Hessian linear-map")
