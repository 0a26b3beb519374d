"""The rule table's building blocks: the Rule and Fmt types, the behaviour lookup, and the helpers
the entries in rules.py are built from (shape rules, adjoint helpers, builders that fold)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import sympy

from . import expr as E
from .errors import Hint, InternalError, ShapeError
from .expr import Node, const, format_shape
from .formatting import (
    ATOM,
    MUL,
)


@dataclass(frozen=True)
class Fmt:
    """A print template: `{0}`, `{1}` are the arguments; `prec` the result's
    precedence; `need[i]` the precedence argument i must have to go without parentheses."""

    template: str
    prec: int = ATOM
    need: tuple = ()
    # `through=i`: the fields are the arguments of argument i (X⁻ᵀ prints T(inv(X)) from X), unless argument
    # i prints as a name; then `plain` is the template
    through: int | None = None
    plain: "Fmt | None" = None

    def arg_need(self, i: int) -> int:
        return self.need[i] if i < len(self.need) else 0


@dataclass(frozen=True, kw_only=True)
class Rule:
    shape: Callable                    # (*arg_shapes, *attrs) -> shape, or raise ShapeError
    vjp: Callable | None               # (g, ans) -> one adjoint per argument (None: not differentiable)
    fn: Callable | None                # NumPy evaluation (*arg_values, *attrs) -> value
    np: Fmt | Callable                 # NumPy source; a callable takes the node
    text: Fmt | Callable               # plain-text math; a callable takes the node
    latex: Fmt | Callable
    kind: str = "op"                   # elementwise | reduction | linalg | arithmetic | leaf | abstract
    builtin: int | None = None         # arity when users may call it by name in formulas
    build: Callable | None = None      # how a user's call builds the node (default: the op itself)
    expand: Callable | None = None     # macro ops: the primitive expression they stand for
    doc: str = ""
    keywords: tuple = ()               # keyword arguments a user's call may pass to `build` (e.g. axis)
    domain: str = "real"               # where its arguments are sampled: see the module docstring
    kink: bool = False                 # not differentiable at 0: checks sample both sides of its argument
    batch_safe: bool = False           # its NumPy form is right with a leading batch axis on the arguments
    np_helper: str = ""                # source of a helper function its `np` form calls (a generated module's)
    contracts: tuple = ()              # argument positions a product contracts whole (matmul, dot): there a 𝟙 or I
                                       # takes its size from the other factor and prints without it (W 𝟙, xᵀ𝟙)
    unsized: Callable | None = None    # leaves printed with their size (𝟙ₙ, Iₙ): (node, style) -> the bare
                                       # symbol where a product fixes the size, or None where it does not


def behaviour(table: dict, op: str, what: str):
    """The entry of `op` in a behaviour table, or an InternalError naming what is missing."""
    try:
        return table[op]
    except KeyError:
        raise InternalError(f"{what} rule for `{op}` not implemented: register it next to the operator's rule "
                            f"(symbackprop/rules*.py). This is a bug in symbackprop; please report it.") from None


def apply_fn(name: str, x: Node) -> Node:
    """f(x) for an elementwise function, through its constructor (f of a zero array folds: f(0)·𝟙)."""
    return E.apply(name, x)


# ----- shape rules -----

def broadcast_shapes(a, b):
    if a == b or b == ():
        return a
    if a == ():
        return b
    raise ShapeError(f"cannot combine shapes {format_shape(a)} and {format_shape(b)} elementwise",
                     hint="elementwise operations need equal shapes, a scalar on one side, or an m×n matrix "
                          "with a length-n vector (broadcast along the rows, as in NumPy)")


def same(a):
    return a


def _to_scalar(a):
    return ()


def require_square(a, what):
    if len(a) != 2 or a[0] != a[1]:
        raise ShapeError(f"{what} needs a square matrix, got {format_shape(a)}")
    return a


def matmul_shape(a, b):
    if len(a) == 2 and len(b) in (1, 2) and a[1] == b[0]:
        return (a[0],) + tuple(b[1:])
    raise ShapeError(f"matrix product of {format_shape(a)} and {format_shape(b)}: inner dimensions "
                     f"{a[-1] if a else '—'} and {b[0] if b else '—'} differ" if a and b else
                     f"matrix product needs arrays, got {format_shape(a)} and {format_shape(b)}",
                     hint=Hint("check the shapes with --shape, or transpose one side with .T",
                               "check the Shapes field, or transpose one side with .T"))


def _vectors(a, b, what):
    if len(a) == 1 and len(b) == 1:
        return a, b
    raise ShapeError(f"{what} needs two vectors, got {format_shape(a)} and {format_shape(b)}")


def dot_shape(a, b):
    _vectors(a, b, "dot")
    if a != b:
        raise ShapeError(f"inner product of vectors of lengths {a[0]} and {b[0]}")
    return ()


def outer_shape(a, b):
    _vectors(a, b, "outer")
    return (a[0], b[0])


def diag_shape(a):
    if len(a) == 1:
        return (a[0], a[0])
    if len(a) == 2 and a[0] == a[1]:
        return (a[0],)
    raise ShapeError(f"diag takes a vector or a square matrix, got {format_shape(a)}")


def vector_only(a, what):
    if len(a) != 1:
        raise ShapeError(f"{what} takes a vector, got {format_shape(a)}")
    return a


def require_array(a, what):
    if not a:
        raise ShapeError(f"{what} takes a vector or matrix, got a scalar")
    return ()


# ----- adjoint helpers -----

def unbroadcast(part: Node, shape: tuple) -> Node:
    """Sum an adjoint over the axes a scalar argument was broadcast along."""
    return E.sum_all(part) if shape == () and part.shape != () else part


def binary(ga, gb):
    def vjp(g, ans):
        a, b = ans.args
        return unbroadcast(ga(g, ans, a, b), a.shape), unbroadcast(gb(g, ans, a, b), b.shape)
    return vjp


def matmul_vjp(g, ans):
    a, b = ans.args
    ga = E.outer(g, b) if b.ndim == 1 else E.matmul(g, b.T)
    return ga, E.matmul(a.T, g)


def pinv_shape(a):
    if len(a) != 2:
        raise ShapeError(f"pinv takes a matrix, got {format_shape(a)}")
    return (a[1], a[0])


def pinv_vjp(g, ans):
    """Golub–Pereyra: dP = −P dA P + P Pᵀ dAᵀ (I − A P) + (I − P A) dAᵀ Pᵀ P (A of constant rank), so
    Ā = −Pᵀ G Pᵀ + (I − A P) Gᵀ P Pᵀ + Pᵀ P Gᵀ (I − P A)."""
    a = ans.args[0]
    m, n = a.shape
    pt = ans.T
    return (-(pt @ g @ pt) + (E.eye(m) - a @ ans) @ g.T @ (ans @ pt) + (pt @ ans) @ g.T @ (E.eye(n) - ans @ a),)


def numpy_matmul(a: Node, b: Node) -> Node:
    """NumPy's `a @ b` in the internal convention (no row vectors)."""
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError(f"`@` needs arrays on both sides, got {format_shape(a.shape)} and {format_shape(b.shape)}",
                         hint="use * to scale by a scalar")
    if a.ndim == 1 and b.ndim == 1:
        return E.dot(a, b)
    if a.ndim == 1:
        return E.matmul(b.T, a)                      # u @ B = Bᵀu
    return E.matmul(a, b)


def norm_node(x: Node) -> Node:
    return Node("norm", (x,))


def np_binop(symbol: str, prec: int):
    return Fmt("{0} %s {1}" % symbol, prec, (prec, prec + 1))


def _np_unary(fname: str):
    return Fmt(fname + "({0})")


def text_mul(node):
    # Scalar products and ⊙ are associative and commute with each other, so a·(b·X) prints as a·b·X.
    a, b = node.args
    if a.shape == ():
        return Fmt("{0}·{1}", MUL, (MUL, MUL))
    return Fmt("{0} ⊙ {1}", MUL, (MUL, MUL if b.op == "mul" and b.args[0].shape != () else MUL + 1))


def latex_mul(node):
    a, b = node.args
    if a.shape == () or b.shape == ():
        return Fmt("{0} \\, {1}", MUL, (MUL, MUL + 1))
    return Fmt("{0} \\odot {1}", MUL, (MUL, MUL + 1))


def leaf_forms(text_fn, latex_fn, np_fn):
    return dict(vjp=lambda g, ans: (), kind="leaf",
                text=lambda n: Fmt(text_fn(n)), latex=lambda n: Fmt(latex_fn(n)), np=lambda n: Fmt(np_fn(n)))


def shape_src(shape):
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def reduce_build(what, whole):
    """sum/mean(x) or sum/mean(x, axis=…)."""
    def build(x, axis=None):
        if axis is None:
            return whole(x)
        return E.sum_axis(x, axis, mean=what == "mean")
    return build


def _uniform(x: Node):
    """The common value s of a vector whose entries are all equal (0, s·𝟙), else None."""
    return const(0) if E.is_zero(x) else E.fill_value(x)


def _softmax_vector(x: Node) -> Node:
    """softmax of a vector; of a constant vector it is 𝟙/n (printed with no hidden size)."""
    if _uniform(x) is not None:
        return E.ones(x.shape) / const(x.shape[0])
    return Node("softmax", (x,))


def _logsumexp_vector(x: Node) -> Node:
    """logsumexp of a vector; of s·𝟙 it is s + log n."""
    s = _uniform(x)
    if s is not None:
        return s + const(sympy.log(x.shape[0]))
    return Node("logsumexp", (x,))


def build_diag(x: Node) -> Node:
    """diag of a vector or square matrix; diag(0) is 0, shaped (so no size is left unprinted)."""
    if E.is_zero(x):
        return E.zeros(diag_shape(x.shape))
    s = E._fill_value(x)
    if s is not None:                                # diag(s·𝟙) = s·I, diag(s·𝟙 𝟙ᵀ) = s·𝟙
        return s * (E.eye(x.shape[0]) if x.ndim == 1 else E.ones((x.shape[0],)))
    s, rest = (x.args[0], x.args[1]) if x.op == "mul" and x.args[0].shape == () else (const(1), x)
    if rest.op == "eye":                             # diag(s·I) = s·𝟙: no I of unprinted size (diag(I))
        return s * E.ones((x.shape[0],))
    return Node("diag", (x,))


def _extreme(op: str):
    """max(X) or min(X); of an array whose entries are all equal (0, s·𝟙) it is that value (no max(0))."""
    def build(x: Node) -> Node:
        s = _uniform(x) if x.shape != () else None
        return s if s is not None else Node(op, (x,))
    return build


def _trace(x: Node) -> Node:
    """tr of a square matrix; tr(0) = 0, tr(s·I) = tr(s·𝟙 𝟙ᵀ) = s·n (no unsized matrix left to print)."""
    if E.is_zero(x):
        return const(0)
    s, rest = (x.args[0], x.args[1]) if x.op == "mul" and x.args[0].shape == () else (const(1), x)
    if rest.op in ("eye", "ones"):
        return s * const(x.shape[0])
    return Node("trace", (x,))


def _of_identity(op: str, value):
    """det(X) or logdet(X); of I it is 1 (0): no I of unprinted size (det(I))."""
    def build(x: Node) -> Node:
        return const(value) if x.op == "eye" else Node(op, (x,))
    return build


E.CONSTRUCTORS.update(softmax=_softmax_vector, logsumexp=_logsumexp_vector, diag=build_diag, trace=_trace,
                      max=_extreme("max"), min=_extreme("min"), det=_of_identity("det", 1),
                      logdet=_of_identity("logdet", 0))   # folded on rebuilds too


def _row_axis(x, axis, what: str, verb: str, gerund: str):
    """The axis of a row-wise function (None for a vector); a matrix without axis= is refused."""
    if axis is None:
        if x.ndim == 2:
            raise ShapeError(f"{what} of a {format_shape(x.shape)} matrix needs axis=",
                             hint=f"{what}(Z, axis=1) {verb} each row, axis=0 each column (symbackprop does "
                                  f"not follow scipy's default of {gerund} over all entries)")
        return None
    return E.check_axis(x, axis, what)


def softmax_build(x, axis=None):
    axis = _row_axis(x, axis, "softmax", "normalises", "normalising")
    if x.ndim == 1:
        return _softmax_vector(x)
    return Node("softmax_rows", (x,)) if axis == 1 else E.transpose(Node("softmax_rows", (E.transpose(x),)))


def logsumexp_build(x, axis=None):
    axis = _row_axis(x, axis, "logsumexp", "reduces", "reducing")
    if x.ndim == 1:
        return _logsumexp_vector(x)
    return Node("logsumexp_rows", (x if axis == 1 else E.transpose(x),))


def _constant_fill(x: Node):
    """s when x is an array whose entries all equal the scalar s (0, s·𝟙), else None."""
    if x.shape == ():
        return None
    return const(0) if E.is_zero(x) else E.fill_value(x)


def elementwise_pair(op):
    def build(a, b):
        # max(s·𝟙, t) with t a scalar is max(s, t)·𝟙: max(0, a) of a zero vector would print with no size
        for x, y, swap in ((a, b, False), (b, a, True)):
            s = _constant_fill(x)
            if s is not None and y.shape == ():
                return E.mul(Node(op, (y, s) if swap else (s, y)), E.ones(x.shape))
        a, b = E.broadcast_operands(a, b)
        return Node(op, (a, b))
    return build


def _half_sign(g, d, s):
    """g ⊙ (1 + s·sign(d))/2: the share of a maximum/minimum's adjoint, ties split evenly."""
    return E.mul(E.mul(E.const(sympy.Rational(1, 2)), g), E.add(E.const(1), E.mul(E.const(s), apply_fn("sign", d))))


def extreme_vjp(s):
    """maximum (s = 1) or minimum (s = -1): the larger (smaller) argument gets the adjoint, ties half each."""
    def vjp(g, ans):
        a, b = ans.args
        d = E.sub(a, b)
        return unbroadcast(_half_sign(g, d, s), a.shape), unbroadcast(_half_sign(g, d, -s), b.shape)
    return vjp


#: Largest |k| in matrix_power(X, k): the adjoint has k terms.
MAX_MATRIX_POWER = 64


def matrix_power_build(x, k):
    if k.op != "const" or not k.attrs[0].is_integer:
        raise ShapeError("matrix_power(X, k) needs an integer constant k", hint="e.g. matrix_power(X, 3); "
                         "X ** 3 is the elementwise power")
    k = int(k.attrs[0])
    require_square(x.shape, "matrix_power")
    if abs(k) > MAX_MATRIX_POWER:
        raise ShapeError(f"matrix_power: |k| = {abs(k)} is larger than the limit {MAX_MATRIX_POWER}")
    return E.matrix_power(E.apply("inv", x) if k < 0 else x, abs(k))


def mpow_vjp(g, ans):
    """d tr(Gᵀ Xᵏ) = Σ_{i<k} (Xᵀ)ⁱ G (Xᵀ)ᵏ⁻¹⁻ⁱ."""
    x, k = ans.args[0], ans.attrs[0]
    xt = E.transpose(x)
    out = None
    for i in range(k):
        term = E.matmul(E.matrix_power(xt, i), E.matmul(g, E.matrix_power(xt, k - 1 - i)))
        out = term if out is None else E.add(out, term)
    return (out,)


def max_mask(x, axis=None):
    """1 where x takes its max, split evenly between ties: the subgradient of max (as autograd has it)."""
    m = np.asarray(x) == np.max(x, axis=axis, keepdims=True)
    return m / np.sum(m, axis=axis, keepdims=True)


def np_softmax_rows(z):
    e = np.exp(z - np.max(z, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


def np_logsumexp_rows(z):
    m = np.max(z, axis=-1, keepdims=True)
    return (m + np.log(np.sum(np.exp(z - m), axis=-1, keepdims=True)))[..., 0]


def rows_vjp(g, ans):
    """unbroadcast: the adjoint summed over the rows, gᵀ𝟙 (m·s·𝟙 when g is the constant array s·𝟙)."""
    m, n = ans.shape
    s = E.fill_value(g)
    if s is not None:
        return (E.mul(E.mul(s, const(m)), E.ones((n,))),)
    return (E.matmul(E.transpose(g), E.ones((m,))),)


def logsumexp_rows_vjp(g, ans):
    """Row i of the adjoint: gᵢ softmax(row i), that is diag(g) softmax(Z, axis=1) (s·softmax for g = s·𝟙)."""
    s = E.fill_value(g)
    sm = Node("softmax_rows", ans.args)
    return (E.mul(s, sm) if s is not None else E.matmul(Node("diag", (g,)), sm),)


def softmax_rows_vjp(g, ans):
    """Each row: s ⊙ (g − (sᵀg) 𝟙)."""
    n = ans.shape[1]
    c = E.matmul(E.mul(ans, g), E.ones((n,)))
    return (E.mul(ans, E.sub(g, E.outer(c, E.ones((n,))))),)
