"""THE rule table: one entry per operator, with its shape rule, its vector-Jacobian
product, its NumPy evaluation and its printed forms.

Registration design (issue 12). Every per-operator behaviour is registered with its operator,
in one of two ways, and looked up through `behaviour()`, which raises an InternalError naming
the operator and the behaviour when an entry is missing (as JAX's "Batching rule for X not
implemented"); no caller falls back silently.

- Fields of `Rule` (this module): `shape`, `vjp`, `fn` (NumPy evaluation), `np`/`text`/`latex`
  (printed forms), `domain` (where tests and checks sample its arguments: real | positive |
  away_from_zero | well_conditioned | small), `kink` (a point of non-differentiability at 0:
  the checker samples both sides), `batch_safe` (its NumPy form is right on arrays with a
  leading batch axis, so the batched printer needs no entry for it).
- Named tables, one per use, filled next to the rules in the rule modules:
  `rules_sympy.SYMPY` (SymPy conversion), `rules_linear.LINEAR` (the linear-map rule the
  Hessian is read off with), `rules_numpy.NUMPY` / `rules_numpy.BATCH_SUM` (the NumPy printer's
  special forms: batch axes, batch sums, elided broadcasts, masks).

A rule may decline a table explicitly: `kind="elementwise"` rules are converted to SymPy as an
ElementwiseApplyFunction, are not linear (the Hessian reader treats them as nonlinear), and
are batch-safe; `NOT_LINEAR` in LINEAR declines the linear-map rule; `batch_safe=True`
declines the batched form. tests/test_rules.py::test_every_behaviour_is_registered checks,
for every operator in the table, that each behaviour is present or explicitly declined, and
tests/test_rules.py::test_no_operator_names_outside_the_rule_modules that no other module
of the package branches on an operator's name.

`vjp(g, ans)` maps the incoming adjoint `g` and the node `ans` (whose `.args`
are the operator's arguments) to one adjoint per argument, each shaped like
that argument (the gradient convention). The parser's whitelist, the printers,
the evaluator and the parametrised tests are all read off this table.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable

import numpy as np
import sympy

from . import expr as E
from .errors import InternalError, ShapeError
from .expr import Node, const, format_shape

from .formatting import (ADD, ATOM, MATMUL, MUL, NEG, POSTFIX, POW, _esc, latex_name,  # noqa: F401
                         number_fmt, number_np, number_text, superscript, sympy_np)  # (re-exported)


@dataclass(frozen=True)
class Fmt:
    """A print template: `{0}`, `{1}` are the arguments; `prec` the result's
    precedence; `need[i]` the precedence argument i must have to go without parentheses."""

    template: str
    prec: int = ATOM
    need: tuple = ()

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


def behaviour(table: dict, op: str, what: str):
    """The entry of `op` in a behaviour table, or an InternalError naming what is missing."""
    try:
        return table[op]
    except KeyError:
        raise InternalError(f"{what} rule for `{op}` not implemented: register it next to the operator's rule "
                            f"(symbackprop/rules*.py). This is a bug in symbackprop; please report it.") from None


# ----- shape rules -----

def _broadcast(a, b):
    if a == b or b == ():
        return a
    if a == ():
        return b
    raise ShapeError(f"cannot combine shapes {format_shape(a)} and {format_shape(b)} elementwise",
                     hint="elementwise operations need equal shapes, a scalar on one side, or an m×n matrix "
                          "with a length-n vector (broadcast along the rows, as in NumPy)")


def _same(a):
    return a


def _to_scalar(a):
    return ()


def _square(a, what):
    if len(a) != 2 or a[0] != a[1]:
        raise ShapeError(f"{what} needs a square matrix, got {format_shape(a)}")
    return a


def _matmul_shape(a, b):
    if len(a) == 2 and len(b) in (1, 2) and a[1] == b[0]:
        return (a[0],) + tuple(b[1:])
    raise ShapeError(f"matrix product of {format_shape(a)} and {format_shape(b)}: inner dimensions "
                     f"{a[-1] if a else '—'} and {b[0] if b else '—'} differ" if a and b else
                     f"matrix product needs arrays, got {format_shape(a)} and {format_shape(b)}",
                     hint="check the shapes with --shape, or transpose one side with .T")


def _vectors(a, b, what):
    if len(a) == 1 and len(b) == 1:
        return a, b
    raise ShapeError(f"{what} needs two vectors, got {format_shape(a)} and {format_shape(b)}")


def _dot_shape(a, b):
    _vectors(a, b, "dot")
    if a != b:
        raise ShapeError(f"inner product of vectors of lengths {a[0]} and {b[0]}")
    return ()


def _outer_shape(a, b):
    _vectors(a, b, "outer")
    return (a[0], b[0])


def _diag_shape(a):
    if len(a) == 1:
        return (a[0], a[0])
    if len(a) == 2 and a[0] == a[1]:
        return (a[0],)
    raise ShapeError(f"diag takes a vector or a square matrix, got {format_shape(a)}")


def _vector_only(a, what):
    if len(a) != 1:
        raise ShapeError(f"{what} takes a vector, got {format_shape(a)}")
    return a


def _array(a, what):
    if not a:
        raise ShapeError(f"{what} takes a vector or matrix, got a scalar")
    return ()


# ----- adjoint helpers -----

def unbroadcast(part: Node, shape: tuple) -> Node:
    """Sum an adjoint over the axes a scalar argument was broadcast along."""
    return E.sum_all(part) if shape == () and part.shape != () else part


def _binary(ga, gb):
    def vjp(g, ans):
        a, b = ans.args
        return unbroadcast(ga(g, ans, a, b), a.shape), unbroadcast(gb(g, ans, a, b), b.shape)
    return vjp


def _matmul_vjp(g, ans):
    a, b = ans.args
    ga = E.outer(g, b) if b.ndim == 1 else E.matmul(g, b.T)
    return ga, E.matmul(a.T, g)


def _pinv_shape(a):
    if len(a) != 2:
        raise ShapeError(f"pinv takes a matrix, got {format_shape(a)}")
    return (a[1], a[0])


def _pinv_vjp(g, ans):
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


def _norm(x: Node) -> Node:
    return Node("norm", (x,))


def _np_binop(symbol: str, prec: int):
    return Fmt("{0} %s {1}" % symbol, prec, (prec, prec + 1))


def _np_unary(fname: str):
    return Fmt(fname + "({0})")


def _text_mul(node):
    # Scalar products and ⊙ are associative and commute with each other, so a·(b·X) prints as a·b·X.
    a, b = node.args
    if a.shape == ():
        return Fmt("{0}·{1}", MUL, (MUL, MUL))
    return Fmt("{0} ⊙ {1}", MUL, (MUL, MUL if b.op == "mul" and b.args[0].shape != () else MUL + 1))


def _latex_mul(node):
    a, b = node.args
    if a.shape == () or b.shape == ():
        return Fmt("{0} \\, {1}", MUL, (MUL, MUL + 1))
    return Fmt("{0} \\odot {1}", MUL, (MUL, MUL + 1))


def _leaf(text_fn, latex_fn, np_fn):
    return dict(vjp=lambda g, ans: (), kind="leaf",
                text=lambda n: Fmt(text_fn(n)), latex=lambda n: Fmt(latex_fn(n)), np=lambda n: Fmt(np_fn(n)))


def _shape_src(shape):
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _reduce_build(what, whole):
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


def _diag(x: Node) -> Node:
    """diag of a vector or square matrix; diag(0) is 0, shaped (so no size is left unprinted)."""
    if E.is_zero(x):
        return E.zeros(_diag_shape(x.shape))
    s = E._fill_value(x)
    if s is not None:                                # diag(s·𝟙) = s·I, diag(s·𝟙 𝟙ᵀ) = s·𝟙
        return s * (E.eye(x.shape[0]) if x.ndim == 1 else E.ones((x.shape[0],)))
    return Node("diag", (x,))


def _trace(x: Node) -> Node:
    """tr of a square matrix; tr(0) = 0, tr(s·I) = tr(s·𝟙 𝟙ᵀ) = s·n (no unsized matrix left to print)."""
    if E.is_zero(x):
        return const(0)
    s, rest = (x.args[0], x.args[1]) if x.op == "mul" and x.args[0].shape == () else (const(1), x)
    if rest.op in ("eye", "ones"):
        return s * const(x.shape[0])
    return Node("trace", (x,))


E.CONSTRUCTORS.update(softmax=_softmax_vector, logsumexp=_logsumexp_vector, diag=_diag, trace=_trace)   # folded on rebuilds too


def _row_axis(x, axis, what: str, verb: str, gerund: str):
    """The axis of a row-wise function (None for a vector); a matrix without axis= is refused."""
    if axis is None:
        if x.ndim == 2:
            raise ShapeError(f"{what} of a {format_shape(x.shape)} matrix needs axis=",
                             hint=f"{what}(Z, axis=1) {verb} each row, axis=0 each column (symbackprop does "
                                  f"not follow scipy's default of {gerund} over all entries)")
        return None
    return E.check_axis(x, axis, what)


def _softmax_build(x, axis=None):
    axis = _row_axis(x, axis, "softmax", "normalises", "normalising")
    if x.ndim == 1:
        return _softmax_vector(x)
    return Node("softmax_rows", (x,)) if axis == 1 else E.transpose(Node("softmax_rows", (E.transpose(x),)))


def _logsumexp_build(x, axis=None):
    axis = _row_axis(x, axis, "logsumexp", "reduces", "reducing")
    if x.ndim == 1:
        return _logsumexp_vector(x)
    return Node("logsumexp_rows", (x if axis == 1 else E.transpose(x),))


def _elementwise_pair(op):
    def build(a, b):
        a, b = E.broadcast_operands(a, b)
        return Node(op, (a, b))
    return build


def _half_sign(g, d, s):
    """g ⊙ (1 + s·sign(d))/2: the share of a maximum/minimum's adjoint, ties split evenly."""
    return E.mul(E.mul(E.const(sympy.Rational(1, 2)), g), E.add(E.const(1), E.mul(E.const(s), apply_fn("sign", d))))


def _extreme_vjp(s):
    """maximum (s = 1) or minimum (s = -1): the larger (smaller) argument gets the adjoint, ties half each."""
    def vjp(g, ans):
        a, b = ans.args
        d = E.sub(a, b)
        return unbroadcast(_half_sign(g, d, s), a.shape), unbroadcast(_half_sign(g, d, -s), b.shape)
    return vjp


#: Largest |k| in matrix_power(X, k): the adjoint has k terms.
MAX_MATRIX_POWER = 64


def _matrix_power_build(x, k):
    if k.op != "const" or not k.attrs[0].is_integer:
        raise ShapeError("matrix_power(X, k) needs an integer constant k", hint="e.g. matrix_power(X, 3); "
                         "X ** 3 is the elementwise power")
    k = int(k.attrs[0])
    _square(x.shape, "matrix_power")
    if abs(k) > MAX_MATRIX_POWER:
        raise ShapeError(f"matrix_power: |k| = {abs(k)} is larger than the limit {MAX_MATRIX_POWER}")
    return E.matrix_power(E.apply("inv", x) if k < 0 else x, abs(k))


def _mpow_vjp(g, ans):
    """d tr(Gᵀ Xᵏ) = Σ_{i<k} (Xᵀ)ⁱ G (Xᵀ)ᵏ⁻¹⁻ⁱ."""
    x, k = ans.args[0], ans.attrs[0]
    xt = E.transpose(x)
    out = None
    for i in range(k):
        term = E.matmul(E.matrix_power(xt, i), E.matmul(g, E.matrix_power(xt, k - 1 - i)))
        out = term if out is None else E.add(out, term)
    return (out,)


def _max_mask(x, axis=None):
    """1 where x takes its max, split evenly between ties: the subgradient of max (as autograd has it)."""
    m = np.asarray(x) == np.max(x, axis=axis, keepdims=True)
    return m / np.sum(m, axis=axis, keepdims=True)


def _softmax_rows(z):
    e = np.exp(z - np.max(z, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


def _logsumexp_rows(z):
    m = np.max(z, axis=-1, keepdims=True)
    return (m + np.log(np.sum(np.exp(z - m), axis=-1, keepdims=True)))[..., 0]


def _rows_vjp(g, ans):
    """unbroadcast: the adjoint summed over the rows, gᵀ𝟙 (m·s·𝟙 when g is the constant array s·𝟙)."""
    m, n = ans.shape
    s = E.fill_value(g)
    if s is not None:
        return (E.mul(E.mul(s, const(m)), E.ones((n,))),)
    return (E.matmul(E.transpose(g), E.ones((m,))),)


def _logsumexp_rows_vjp(g, ans):
    """Row i of the adjoint: gᵢ softmax(row i), that is diag(g) softmax(Z, axis=1) (s·softmax for g = s·𝟙)."""
    s = E.fill_value(g)
    sm = Node("softmax_rows", ans.args)
    return (E.mul(s, sm) if s is not None else E.matmul(Node("diag", (g,)), sm),)


def _softmax_rows_vjp(g, ans):
    """Each row: s ⊙ (g − (sᵀg) 𝟙)."""
    n = ans.shape[1]
    c = E.matmul(E.mul(ans, g), E.ones((n,)))
    return (E.mul(ans, E.sub(g, E.outer(c, E.ones((n,))))),)


RULES = E.RULES

RULES.update({
    # ----- leaves -----
    "var": Rule(shape=None,
                fn=None, **_leaf(lambda n: n.attrs[0], lambda n: latex_name(n.attrs[0]), lambda n: n.attrs[0])),
    "const": Rule(shape=None, fn=None,
                  **{**_leaf(None, lambda n: sympy.latex(n.attrs[0]), lambda n: number_np(n.attrs[0])),
                     "text": lambda n: Fmt(*number_fmt(n.attrs[0]))}),     # with its precedence: 1/3 is a quotient
    "zeros": Rule(shape=None, fn=lambda shape: np.zeros(shape),
                  **_leaf(lambda n: "0", lambda n: "0", lambda n: f"np.zeros({_shape_src(n.shape)})")),
    "ones": Rule(shape=None, fn=lambda shape: np.ones(shape),
                 **_leaf(lambda n: "𝟙", lambda n: "\\mathbf{1}", lambda n: f"np.ones({_shape_src(n.shape)})")),
    "eye": Rule(shape=None, fn=lambda shape: np.eye(shape[0]),
                **_leaf(lambda n: "I", lambda n: "I", lambda n: f"np.eye({n.shape[0]})")),

    # ----- arithmetic (elementwise, scalars broadcast) -----
    "add": Rule(shape=_broadcast, vjp=_binary(lambda g, ans, a, b: g, lambda g, ans, a, b: g), fn=np.add,
                np=_np_binop("+", ADD), text=Fmt("{0} + {1}", ADD, (ADD, ADD)), latex=Fmt("{0} + {1}", ADD, (ADD, ADD)),
                kind="arithmetic"),
    "sub": Rule(shape=_broadcast, vjp=_binary(lambda g, ans, a, b: g, lambda g, ans, a, b: -g), fn=np.subtract,
                np=_np_binop("-", ADD), text=Fmt("{0} − {1}", ADD, (ADD, ADD + 1)),
                latex=Fmt("{0} - {1}", ADD, (ADD, ADD + 1)),
                kind="arithmetic"),
    "mul": Rule(shape=_broadcast, vjp=_binary(lambda g, ans, a, b: g * b, lambda g, ans, a, b: g * a), fn=np.multiply,
                np=_np_binop("*", MUL), text=_text_mul, latex=_latex_mul, kind="arithmetic"),
    "div": Rule(shape=_broadcast, vjp=_binary(lambda g, ans, a, b: g / b, lambda g, ans, a, b: -(g * (ans / b))),
                fn=np.divide,
                np=_np_binop("/", MUL), text=Fmt("{0}/{1}", MUL, (MUL, MUL + 1)),
                latex=Fmt("\\frac{{{0}}}{{{1}}}", ATOM),
                domain="away_from_zero", kind="arithmetic"),
    "pow": Rule(shape=_broadcast,
                vjp=lambda g, ans: (unbroadcast(g * ans.args[1] * ans.args[0] ** (ans.args[1] - 1), ans.args[0].shape),
                                None if ans.args[1].op == "const" else
                                unbroadcast(g * ans * apply_fn("log", ans.args[0]), ans.args[1].shape)),
                fn=np.power, np=Fmt("{0} ** {1}", POW, (POW + 1, NEG)), text=lambda n: _text_pow(n),
                latex=lambda n: _latex_pow(n), domain="positive", kind="arithmetic"),
    "neg": Rule(shape=_same, vjp=lambda g, ans: (-g,), fn=np.negative, np=Fmt("-{0}", NEG, (NEG,)),
                text=Fmt("−{0}", NEG, (MUL,)),
                latex=Fmt("-{0}", NEG, (MUL,)), batch_safe=True, kind="arithmetic"),

    # ----- linear algebra -----
    "matmul": Rule(shape=_matmul_shape, vjp=_matmul_vjp, fn=np.matmul, np=_np_binop("@", MUL),
                   text=Fmt("{0} {1}", MATMUL, (MATMUL, MATMUL)),
                   latex=Fmt("{0} {1}", MATMUL, (MATMUL, MATMUL)), kind="linalg", builtin=None),
    "T": Rule(shape=lambda a: (a[1], a[0]) if len(a) == 2 else a, vjp=lambda g, ans: (g.T,), fn=np.transpose,
              np=Fmt("{0}.T", POSTFIX, (POSTFIX,)), text=Fmt("{0}ᵀ", POSTFIX, (POSTFIX + 1,)),
              latex=Fmt("{0}^\\top", POSTFIX, (POSTFIX + 1,)), kind="linalg"),
    "dot": Rule(shape=_dot_shape, vjp=lambda g, ans: (g * ans.args[1], g * ans.args[0]), fn=np.dot,
                np=_np_binop("@", MUL), text=Fmt("{0}ᵀ{1}", MATMUL, (POSTFIX + 1, MATMUL + 1)),
                latex=Fmt("{0}^\\top {1}", MATMUL, (POSTFIX + 1, MATMUL + 1)), kind="linalg", builtin=2,
                build=numpy_matmul),
    "outer": Rule(shape=_outer_shape, vjp=lambda g, ans: (E.matmul(g, ans.args[1]), E.matmul(g.T, ans.args[0])),
                  fn=np.outer,
                  np=Fmt("np.outer({0}, {1})"), text=Fmt("{0} {1}ᵀ", MATMUL, (MATMUL, POSTFIX + 1)),
                  latex=Fmt("{0} {1}^\\top", MATMUL, (MATMUL, POSTFIX + 1)), kind="linalg", builtin=2),
    "inv": Rule(shape=lambda a: _square(a, "inv"), vjp=lambda g, ans: (-(ans.T @ g @ ans.T),), fn=np.linalg.inv,
                np=Fmt("np.linalg.inv({0})"), text=Fmt("{0}⁻¹", POSTFIX, (POSTFIX + 1,)),
                latex=Fmt("{0}^{{-1}}", POSTFIX, (POSTFIX + 1,)),
                domain="well_conditioned", batch_safe=True, kind="linalg", builtin=1),
    "det": Rule(shape=lambda a: _square(a, "det") and (),
                vjp=lambda g, ans: ((g * ans) * E.apply("inv", ans.args[0]).T,),
                fn=np.linalg.det, np=Fmt("np.linalg.det({0})"), text=Fmt("det({0})"),
                latex=Fmt("\\det\\left({0}\\right)"),
                domain="well_conditioned", batch_safe=True, kind="linalg",
                builtin=1),                           # Jacobi's formula
    "logdet": Rule(shape=lambda a: _square(a, "logdet") and (), vjp=lambda g, ans: (g * E.apply("inv", ans.args[0]).T,),
                   fn=lambda x: np.linalg.slogdet(x)[1], np=Fmt("np.linalg.slogdet({0})[1]"), text=Fmt("log det({0})"),
                   latex=Fmt("\\log\\det\\left({0}\\right)"), domain="well_conditioned", batch_safe=True,
                   kind="linalg", builtin=1,
                   doc="log |det X| (the sign is dropped, as numpy.linalg.slogdet does)"),
    "pinv": Rule(shape=_pinv_shape, vjp=_pinv_vjp, fn=np.linalg.pinv, np=Fmt("np.linalg.pinv({0})"),
                 text=Fmt("pinv({0})"), latex=Fmt("\\operatorname{{pinv}}\\left({0}\\right)"), kind="linalg", builtin=1,
                 domain="well_conditioned", batch_safe=True,
                 doc="Moore–Penrose pseudo-inverse of a matrix (its gradient holds where the rank is constant, "
                     "e.g. full rank)"),
    "trace": Rule(shape=lambda a: _square(a, "trace") and (), vjp=lambda g, ans: (g * E.eye(ans.args[0].shape[0]),),
                  fn=np.trace,
                  np=Fmt("np.trace({0})"), text=Fmt("tr({0})"), latex=Fmt("\\operatorname{{tr}}\\left({0}\\right)"),
                  kind="linalg", builtin=1),
    "diag": Rule(shape=_diag_shape, vjp=lambda g, ans: (_diag(g),), fn=np.diag, np=Fmt("np.diag({0})"),
                 text=Fmt("diag({0})"),
                 latex=Fmt("\\operatorname{{diag}}\\left({0}\\right)"), kind="linalg", builtin=1),

    # ----- reductions -----
    "sum": Rule(shape=lambda a: (), vjp=lambda g, ans: (g * E.ones(ans.args[0].shape),), fn=np.sum,
                np=Fmt("np.sum({0})"),
                text=Fmt("sum({0})"), latex=Fmt("\\operatorname{{sum}}\\left({0}\\right)"), kind="reduction", builtin=1,
                build=_reduce_build("sum", E.sum_all), keywords=("axis",)),
    "mean": Rule(shape=lambda a: (),
                 vjp=lambda g, ans: ((g / const(E.numel(ans.args[0].shape))) * E.ones(ans.args[0].shape),),
                 fn=np.mean, np=Fmt("np.mean({0})"), text=Fmt("mean({0})"),
                 latex=Fmt("\\operatorname{{mean}}\\left({0}\\right)"),
                 kind="reduction", builtin=1, build=_reduce_build("mean", lambda x: Node("mean", (x,))),
                 keywords=("axis",)),
    "norm": Rule(shape=lambda a: (), vjp=lambda g, ans: ((g / ans) * ans.args[0],), fn=np.linalg.norm,
                 np=Fmt("np.linalg.norm({0})"),
                 text=Fmt("‖{0}‖"), latex=Fmt("\\left\\|{0}\\right\\|"), kind="reduction", builtin=1, build=_norm,
                 doc="2-norm of a vector, Frobenius norm of a matrix"),
    "sqnorm": Rule(shape=lambda a: (), vjp=lambda g, ans: (2 * g * ans.args[0],), fn=lambda x: np.sum(x * x),
                   np=lambda n: Fmt("{0} @ {0}", MUL, (MUL + 1,)) if n.args[0].ndim == 1 else Fmt("np.sum({0} * {0})", ATOM, (MUL + 1,)),
                   text=Fmt("‖{0}‖²", POW), latex=Fmt("\\left\\|{0}\\right\\|^2", POW), kind="reduction",
                   doc="norm(X)**2, kept as one node"),
    "softmax": Rule(shape=lambda a: _vector_only(a, "softmax"),
                    vjp=lambda g, ans: (ans * (g - E.dot(ans, g)),), fn=lambda x: _softmax(x),
                    np=Fmt("_softmax({0})"), text=Fmt("softmax({0})"),
                    latex=Fmt("\\operatorname{{softmax}}\\left({0}\\right)"),
                    batch_safe=True, kind="reduction", builtin=1, build=_softmax_build, keywords=("axis",),
                    doc="softmax of a vector; on a matrix pass axis= (each row or column)"),
    "logsumexp": Rule(shape=lambda a: _vector_only(a, "logsumexp") and (),
                      vjp=lambda g, ans: (g * Node("softmax", (ans.args[0],)),),
                      fn=lambda x: _logsumexp(x), np=Fmt("_logsumexp({0})"), text=Fmt("logsumexp({0})"),
                      latex=Fmt("\\operatorname{{logsumexp}}\\left({0}\\right)"), batch_safe=True, kind="reduction",
                      builtin=1,
                      build=_logsumexp_build, keywords=("axis",),
                      doc="log Σ exp over a vector; on a matrix pass axis= (per row or column)"),
    "softmax_rows": Rule(shape=lambda a: a if len(a) == 2 else _vector_only((), "softmax_rows"), vjp=_softmax_rows_vjp,
                         fn=_softmax_rows, np=Fmt("_softmax({0})"), text=Fmt("softmax({0}, axis=1)"),
                         latex=Fmt("\\operatorname{{softmax}}_{{\\text{{rows}}}}\\left({0}\\right)"), batch_safe=True,
                         kind="reduction",
                         doc="softmax of each row of a matrix: softmax(Z, axis=1); axis=0 is softmax_rows(Zᵀ)ᵀ"),
    "logsumexp_rows": Rule(shape=lambda a: (a[0],) if len(a) == 2 else _vector_only((), "logsumexp_rows"),
                           vjp=_logsumexp_rows_vjp,
                           fn=_logsumexp_rows, np=Fmt("_logsumexp({0})"), text=Fmt("logsumexp({0}, axis=1)"),
                           latex=Fmt("\\operatorname{{logsumexp}}_{{\\text{{rows}}}}\\left({0}\\right)"),
                           batch_safe=True, kind="reduction",
                           doc="logsumexp of each row: logsumexp(Z, axis=1) (axis=0: of Zᵀ)"),
    "max": Rule(shape=lambda a: _array(a, "max") and (), vjp=lambda g, ans: (E.mul(g, Node("maxmask", ans.args)),),
                fn=np.max, np=Fmt("np.max({0})"), text=Fmt("max({0})"), latex=Fmt("\\max\\left({0}\\right)"),
                kind="reduction",
                builtin=1, doc="largest entry; its subgradient splits evenly between tied entries"),
    "min": Rule(shape=lambda a: _array(a, "min") and (), vjp=lambda g, ans: (E.mul(g, Node("minmask", ans.args)),),
                fn=np.min, np=Fmt("np.min({0})"), text=Fmt("min({0})"), latex=Fmt("\\min\\left({0}\\right)"),
                kind="reduction",
                builtin=1, doc="smallest entry; its subgradient splits evenly between tied entries"),
    "maxmask": Rule(shape=_same, vjp=lambda g, ans: (None,), fn=_max_mask, np=Fmt("_max_mask({0})"),
                    text=Fmt("∇max({0})"),
                    latex=Fmt("\\nabla\\max\\left({0}\\right)"), kind="reduction",
                    doc="the gradient of max(X): 1/t at the t entries equal to the max, 0 elsewhere"),
    "minmask": Rule(shape=_same, vjp=lambda g, ans: (None,), fn=lambda x: _max_mask(-np.asarray(x)),
                    np=Fmt("_max_mask(-{0})", ATOM, (POW,)),
                    text=Fmt("∇min({0})"), latex=Fmt("\\nabla\\min\\left({0}\\right)"), kind="reduction",
                    doc="the gradient of min(X): 1/t at the t entries equal to the min, 0 elsewhere"),
    "maximum": Rule(shape=_broadcast, vjp=_extreme_vjp(1), fn=np.maximum, np=Fmt("np.maximum({0}, {1})"),
                    text=Fmt("max({0}, {1})"),
                    latex=Fmt("\\max\\left({0}, {1}\\right)"), kind="arithmetic", builtin=2,
                    build=_elementwise_pair("maximum"),
                    doc="elementwise larger of two arrays (NumPy broadcasting); ties split the gradient evenly"),
    "minimum": Rule(shape=_broadcast, vjp=_extreme_vjp(-1), fn=np.minimum, np=Fmt("np.minimum({0}, {1})"),
                    text=Fmt("min({0}, {1})"),
                    latex=Fmt("\\min\\left({0}, {1}\\right)"), kind="arithmetic", builtin=2,
                    build=_elementwise_pair("minimum"),
                    doc="elementwise smaller of two arrays (NumPy broadcasting); ties split the gradient evenly"),
    "rows": Rule(shape=lambda a, m: (m, a[0]) if len(a) == 1 else _vector_only(a, "rows"),
                 vjp=_rows_vjp, fn=lambda v, m: np.broadcast_to(v, (m,) + np.shape(v)),
                 np=lambda n: Fmt("np.broadcast_to({0}, %s)" % _shape_src(n.shape)),
                 text=Fmt("𝟙 {0}ᵀ", MATMUL, (POSTFIX + 1,)),
                 latex=Fmt("\\mathbf{{1}} {0}^\\top", MATMUL, (POSTFIX + 1,)), kind="arithmetic",
                 doc="𝟙 vᵀ: a vector broadcast along the rows of a matrix (NumPy's (m, n) + (n,))"),
    "matrix_power": Rule(shape=lambda a, k: _square(a, "matrix_power"), vjp=_mpow_vjp,
                 fn=lambda x, k: np.linalg.matrix_power(x, k),
                         np=lambda n: Fmt("np.linalg.matrix_power({0}, %d)" % n.attrs[0]),
                 text=lambda n: Fmt("matrix_power({0}, %d)" % n.attrs[0]),
                 latex=lambda n: Fmt("\\operatorname{{matrix\\_power}}\\left({0}, %d\\right)" % n.attrs[0]),
                 batch_safe=True, kind="linalg", builtin=2, build=_matrix_power_build,
                 doc="matrix_power(X, k): Xᵏ for an integer constant k (negative k: powers of inv(X)); X ** k is elementwise"),
})


def _softmax(x):
    e = np.exp(x - np.max(x))
    return e / np.sum(e)


def _logsumexp(x):
    m = np.max(x)
    return m + np.log(np.sum(np.exp(x - m)))


def _latex_pow(node):
    # X^{-1} of an array reads as the matrix inverse: the elementwise reciprocal is written as a fraction
    p = node.args[1]
    if node.args[0].shape != () and p.op == "const" and p.attrs[0] == -1:
        return Fmt("\\frac{{1}}{{{0}}}", ATOM)
    return Fmt("{0}^{{{1}}}", POW, (POW + 1, 0))


def _text_pow(node):
    # integer exponents as superscripts (x², x⁻¹); any other exponent is grouped unless atomic: x^(1/3), (2/3)^x
    p = node.args[1]
    # ... but X⁻¹ of an array reads as the matrix inverse: an array's negative power keeps the ^ (X^(−1))
    if p.op == "const" and p.attrs[0].is_Integer and p.attrs[0] != 1 and (p.attrs[0] > 0 or node.args[0].shape == ()):
        return Fmt("{0}" + superscript(int(p.attrs[0])), POW, (POW + 1,))
    return Fmt("{0}^{1}", POW, (POW + 1, POW + 1))


# ----- elementwise functions -----
# name: (NumPy source, NumPy callable, derivative (x, ans) -> Node, SymPy scalar function, test domain)
# The derivative shows as name'(x) and stands for the expression given here;
# second derivatives follow from differentiating that expression.

@dataclass(frozen=True)
class Elementwise:
    np: str
    fn: Callable
    d: Callable
    sympy: Callable
    domain: str = "real"             # real | positive | small (tan: well inside (−π/2, π/2))
    np_prec: int = ATOM              # precedence of the NumPy source (sigmoid's is a product)
    kink: bool = False               # not differentiable at 0 (relu, step, sign, abs)
    canonical: bool = False          # SymPy's scalar canonical forms may round-trip it (scalar.py)
    np_helper: str = ""               # source of a helper its NumPy form calls (NumPy has no such function)


def apply_fn(name: str, x: Node) -> Node:
    return Node(name, (x,))


def _erf(x):
    """The error function entry by entry (NumPy has none): 2/√π·exp(−x²)·Σₙ 2ⁿx²ⁿ⁺¹/(1·3···(2n+1)), a
    series of terms of one sign (no cancellation; 1.6e-15 relative at worst); |x| ≥ 6 gives ±1 to double
    precision."""
    t = np.clip(x, -6.0, 6.0)
    term = total = t * 1.0
    for n in range(1, 200):
        term = term * (2.0 * t * t) / (2 * n + 1)
        total = total + term
    return (1.1283791670955126 * np.exp(-t * t) * total)[()]              # 2/√π


def _sig(x):                          # accurate to the last digits for very negative x too (the self-check divides)
    return np.exp(-np.logaddexp(0.0, -x))


ELEMENTWISE = {
    "relu": Elementwise("np.maximum({0}, 0.0)", lambda x: np.maximum(x, 0.0), lambda x, y: apply_fn("step", x),
                        lambda t: sympy.Piecewise((t, t > 0), (0, True)), kink=True),
    # step prints as a float, not a bool: (a > 0) + (c > 0) would be a logical or, -(a > 0) an error
    "step": Elementwise("np.heaviside({0}, 0.0)", lambda x: (np.asarray(x) > 0).astype(float), lambda x, y: E.zeros(x.shape),
                        lambda t: sympy.Piecewise((1, t > 0), (0, True)), kink=True),
    "sign": Elementwise("np.sign({0})", np.sign, lambda x, y: E.zeros(x.shape), sympy.sign, kink=True),
    "abs": Elementwise("np.abs({0})", np.abs, lambda x, y: apply_fn("sign", x), sympy.Abs, kink=True),
    "sigmoid": Elementwise("np.exp(-np.logaddexp(0.0, -{0}))", _sig, lambda x, y: y * (1 - y),
                           lambda t: 1 / (1 + sympy.exp(-t))),
    "tanh": Elementwise("np.tanh({0})", np.tanh, lambda x, y: 1 - y ** 2, sympy.tanh, canonical=True),
    "exp": Elementwise("np.exp({0})", np.exp, lambda x, y: y, sympy.exp, canonical=True),
    "log": Elementwise("np.log({0})", np.log, lambda x, y: 1 / x, sympy.log, "positive", canonical=True),
    "sqrt": Elementwise("np.sqrt({0})", np.sqrt, lambda x, y: 0.5 / y, sympy.sqrt, "positive", canonical=True),
    "sin": Elementwise("np.sin({0})", np.sin, lambda x, y: apply_fn("cos", x), sympy.sin, canonical=True),
    "cos": Elementwise("np.cos({0})", np.cos, lambda x, y: -apply_fn("sin", x), sympy.cos, canonical=True),
    "tan": Elementwise("np.tan({0})", np.tan, lambda x, y: 1 + y ** 2, sympy.tan, "small", canonical=True),
    "softplus": Elementwise("np.logaddexp(0.0, {0})", lambda x: np.logaddexp(0.0, x),
                            lambda x, y: apply_fn("sigmoid", x), lambda t: sympy.log(1 + sympy.exp(t))),
    # erf' = 2/√π exp(−x²); NumPy has no erf: a series, copied into generated modules as _erf
    "erf": Elementwise("_erf({0})", _erf, lambda x, y: E.const(2 / sympy.sqrt(sympy.pi)) *
                       apply_fn("exp", -(x * x)), sympy.erf, np_helper=inspect.getsource(_erf).strip()),
}


def _elementwise_rules(name: str, f: Elementwise) -> dict[str, Rule]:
    prime = name + "'"

    def expand_prime(x: Node) -> Node:
        return f.d(x, apply_fn(name, x))

    return {
        name: Rule(shape=_same, vjp=lambda g, ans: (g * Node(prime, ans.args),), fn=f.fn, np=Fmt(f.np, f.np_prec),
                   text=Fmt(name + "({0})"), latex=Fmt("\\operatorname{{" + name + "}}\\left({0}\\right)"),
                   kind="elementwise", builtin=1, domain=f.domain, kink=f.kink, batch_safe=True,
                   np_helper=f.np_helper),
        prime: Rule(shape=_same, vjp=lambda g, ans: (vjp_of_expansion(ans, g),), fn=None, np=None,
                    text=Fmt(prime + "({0})"), latex=Fmt("\\operatorname{{" + name + "}}'\\left({0}\\right)"),
                    kind="elementwise", expand=lambda node: expand_prime(node.args[0]), domain=f.domain,
                    kink=f.kink, batch_safe=True),
    }


for _name, _f in ELEMENTWISE.items():
    RULES.update(_elementwise_rules(_name, _f))


def vjp_of_expansion(node: Node, g: Node) -> Node:
    """Adjoint of a macro node's single argument, by a reverse sweep through its expansion."""
    from .derive import backprop
    x = node.args[0]
    return backprop(RULES[node.op].expand(node), g, [x]).get(x, E.zeros(x.shape))


# ----- abstract functions (declared with --elementwise / --function) -----

def _phi_vjp(g, ans):
    name, order = ans.attrs
    return (g * Node("phi", ans.args, (name, order + 1)),)


def _fn_shape(*shapes_and_attrs):
    *shapes, name, partials = shapes_and_attrs
    for s in shapes:
        if s != ():
            raise ShapeError(f"the abstract function {name} takes scalar arguments, got {format_shape(s)}",
                             hint=f"declare {name} with --elementwise to apply it to each entry of an array")
    return ()


def _fn_vjp(g, ans):
    name, partials = ans.attrs
    return tuple(g * Node("fn", ans.args, (name, tuple(sorted(partials + (i,)))))
                 for i in range(len(ans.args)))


def _fn_text(node):
    name, partials = node.attrs
    args = ", ".join("{%d}" % i for i in range(len(node.args)))
    if not partials:
        return Fmt(f"{name}({args})")
    if len(node.args) == 1:
        return Fmt(f"{name}{chr(39) * len(partials)}({args})")
    sub = "".join(str(i + 1) for i in partials)
    return Fmt(f"∂{sub}{name}({args})")


def _fn_latex(node):
    name, partials = node.attrs
    args = ", ".join("{%d}" % i for i in range(len(node.args)))
    if not partials:
        return Fmt(f"{_esc(latex_name(name))}\\left({args}\\right)")
    if len(node.args) == 1:
        return Fmt(f"{_esc(latex_name(name))}{chr(39) * len(partials)}\\left({args}\\right)")
    sub = "".join(str(i + 1) for i in partials)
    return Fmt(f"\\partial_{{{{{sub}}}}} {_esc(latex_name(name))}\\left({args}\\right)")


RULES.update({
    "phi": Rule(shape=lambda a, name, order: a, vjp=_phi_vjp, fn=None,
                np=lambda n: Fmt(f"_fn[{n.attrs[0]!r}]({{0}}, {n.attrs[1]})"),
                text=lambda n: Fmt(n.attrs[0] + "'" * n.attrs[1] + "({0})"),
                latex=lambda n: Fmt(_esc(latex_name(n.attrs[0])) + "'" * n.attrs[1] + "\\left({0}\\right)"),
                kind="abstract", doc="an unspecified elementwise function and its derivatives"),
    "fn": Rule(shape=_fn_shape, vjp=_fn_vjp, fn=None,
               np=lambda n: Fmt(f"_fn[{n.attrs[0]!r}](({', '.join('{%d}' % i for i in range(len(n.args)))},), "
                             f"{n.attrs[1]!r})"),
               text=_fn_text, latex=_fn_latex, kind="abstract",
               doc="an unspecified scalar function of scalars and its partials"),
})
