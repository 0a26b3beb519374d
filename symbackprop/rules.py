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
  Hessian is read off with), `rules_forms.FORMS` / `.BATCH_SUM` (the code printers' shared special
  forms: batch axes, batch sums, elided broadcasts), `rules_numpy.NUMPY` (NumPy's own), `rules_array_api`.

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
from .errors import Hint, ShapeError
from .expr import Node, const, format_shape
from .formatting import (  # noqa: F401
    ADD,
    ATOM,
    MATMUL,
    MUL,
    NEG,
    POSTFIX,
    POW,
    latex_escape,
    latex_name,
    number_fmt,  # (re-exported)
    number_np,
    number_text,
    size_subscript,
    superscript,
    sympy_np,
)
from .rules_base import (  # noqa: F401  (re-exported: the table's public names)
    MAX_MATRIX_POWER,
    Fmt,
    Rule,
    apply_fn,  # noqa: F401
    behaviour,
    binary,
    broadcast_shapes,
    build_diag,
    diag_shape,
    dot_shape,
    elementwise_pair,
    extreme_vjp,
    latex_mul,
    leaf_forms,
    logsumexp_build,
    logsumexp_rows_vjp,
    matmul_shape,
    matmul_vjp,
    matrix_power_build,
    max_mask,
    mpow_vjp,
    norm_node,
    np_binop,
    np_logsumexp_rows,
    np_softmax_rows,
    numpy_matmul,
    outer_shape,
    pinv_shape,
    pinv_vjp,
    reduce_build,
    require_array,
    require_square,
    rows_vjp,
    same,
    shape_src,
    softmax_build,
    softmax_rows_vjp,
    text_mul,
    unbroadcast,
    vector_only,
)
from .rules_simplify import PRINTED_AS

def _mean_all(x: Node) -> Node:
    """mean(X); of an array whose entries are all equal (0, s·𝟙) it is that value (no mean(0) of unprinted size)."""
    s = const(0) if E.is_zero(x) and x.shape != () else (E.fill_value(x) if x.shape != () else None)
    return s if s is not None else Node("mean", (x,))


RULES = E.RULES

#: The bare 𝟙 and I, for a product that fixes their size (Rule.contracts).
_BARE = {("ones", "text"): "𝟙", ("ones", "latex"): "\\mathbf{1}", ("eye", "text"): "I", ("eye", "latex"): "I"}

RULES.update({
    # ----- leaves -----
    "var": Rule(shape=None,
                fn=None, **leaf_forms(lambda n: n.attrs[0], lambda n: latex_name(n.attrs[0]), lambda n: n.attrs[0])),
    "const": Rule(shape=None, fn=None,
                  **{**leaf_forms(None, lambda n: sympy.latex(n.attrs[0]), lambda n: number_np(n.attrs[0])),
                     "text": lambda n: Fmt(*number_fmt(n.attrs[0]))}),     # with its precedence: 1/3 is a quotient
    "zeros": Rule(shape=None, fn=lambda shape: np.zeros(shape),
                  **leaf_forms(lambda n: "0", lambda n: "0", lambda n: f"np.zeros({shape_src(n.shape)})")),
    # 𝟙 and I print with their size (𝟙ₙ, I_d, \\mathbf{1}_{n}), except where a product fixes it (W 𝟙, xᵀ𝟙)
    "ones": Rule(shape=None, fn=lambda shape: np.ones(shape),
                 **leaf_forms(lambda n: "𝟙" + size_subscript(n.shape), lambda n: "\\mathbf{1}" + size_subscript(n.shape, "latex"),
                         lambda n: f"np.ones({shape_src(n.shape)})"),
                 unsized=lambda n, style: _BARE.get(("ones", style)) if n.ndim == 1 else None),
    "eye": Rule(shape=None, fn=lambda shape: np.eye(shape[0]),
                **leaf_forms(lambda n: "I" + size_subscript(n.shape[:1]), lambda n: "I" + size_subscript(n.shape[:1], "latex"),
                        lambda n: f"np.eye({n.shape[0]})"),
                unsized=lambda n, style: _BARE.get(("eye", style))),

    # ----- arithmetic (elementwise, scalars broadcast) -----
    "add": Rule(shape=broadcast_shapes, vjp=binary(lambda g, ans, a, b: g, lambda g, ans, a, b: g), fn=np.add,
                np=np_binop("+", ADD), text=Fmt("{0} + {1}", ADD, (ADD, ADD)), latex=Fmt("{0} + {1}", ADD, (ADD, ADD)),
                kind="arithmetic"),
    "sub": Rule(shape=broadcast_shapes, vjp=binary(lambda g, ans, a, b: g, lambda g, ans, a, b: -g), fn=np.subtract,
                np=np_binop("-", ADD), text=Fmt("{0} − {1}", ADD, (ADD, ADD + 1)),
                latex=Fmt("{0} - {1}", ADD, (ADD, ADD + 1)),
                kind="arithmetic"),
    "mul": Rule(shape=broadcast_shapes, vjp=binary(lambda g, ans, a, b: g * b, lambda g, ans, a, b: g * a), fn=np.multiply,
                np=np_binop("*", MUL), text=text_mul, latex=latex_mul, kind="arithmetic"),
    "div": Rule(shape=broadcast_shapes, vjp=binary(lambda g, ans, a, b: g / b, lambda g, ans, a, b: -(g * (ans / b))),
                fn=np.divide,
                np=np_binop("/", MUL), text=lambda n: _text_div(n),
                latex=Fmt("\\frac{{{0}}}{{{1}}}", ATOM),
                domain="away_from_zero", kind="arithmetic"),
    "pow": Rule(shape=broadcast_shapes,
                vjp=lambda g, ans: (unbroadcast(g * ans.args[1] * ans.args[0] ** (ans.args[1] - 1), ans.args[0].shape),
                                None if ans.args[1].op == "const" else
                                unbroadcast(g * ans * apply_fn("log", ans.args[0]), ans.args[1].shape)),
                fn=np.power, np=Fmt("{0} ** {1}", POW, (POW + 1, NEG)), text=lambda n: _text_pow(n),
                latex=lambda n: _latex_pow(n), domain="positive", kind="arithmetic"),
    "neg": Rule(shape=same, vjp=lambda g, ans: (-g,), fn=np.negative, np=Fmt("-{0}", NEG, (NEG,)),
                text=Fmt("−{0}", NEG, (MUL,)),
                latex=Fmt("-{0}", NEG, (MUL,)), batch_safe=True, kind="arithmetic"),

    # ----- linear algebra -----
    "matmul": Rule(shape=matmul_shape, vjp=matmul_vjp, fn=np.matmul, np=np_binop("@", MUL),
                   text=Fmt("{0} {1}", MATMUL, (MATMUL, MATMUL)),
                   latex=Fmt("{0} {1}", MATMUL, (MATMUL, MATMUL)), kind="linalg", builtin=None, contracts=(0, 1)),
    "T": Rule(shape=lambda a: (a[1], a[0]) if len(a) == 2 else a, vjp=lambda g, ans: (g.T,), fn=np.transpose,
              np=Fmt("{0}.T", POSTFIX, (POSTFIX,)), text=lambda n: _transposed(n, "text"),
              latex=lambda n: _transposed(n, "latex"), kind="linalg"),
    "dot": Rule(shape=dot_shape, vjp=lambda g, ans: (g * ans.args[1], g * ans.args[0]), fn=np.dot,
                np=np_binop("@", MUL), text=lambda n: _dot_form(n, "text"),
                latex=lambda n: _dot_form(n, "latex"), kind="linalg", builtin=2,
                build=numpy_matmul, contracts=(0, 1)),
    "outer": Rule(shape=outer_shape, vjp=lambda g, ans: (E.matmul(g, ans.args[1]), E.matmul(g.T, ans.args[0])),
                  fn=np.outer,
                  np=Fmt("np.outer({0}, {1})"), text=Fmt("{0} {1}ᵀ", MATMUL, (MATMUL, POSTFIX + 1)),
                  latex=Fmt("{0} {1}^\\top", MATMUL, (MATMUL, POSTFIX + 1)), kind="linalg", builtin=2),
    "inv": Rule(shape=lambda a: require_square(a, "inv"), vjp=lambda g, ans: (-(ans.T @ g @ ans.T),), fn=np.linalg.inv,
                np=Fmt("np.linalg.inv({0})"), text=Fmt("{0}⁻¹", POSTFIX, (POSTFIX + 1,)),
                latex=Fmt("{0}^{{-1}}", POSTFIX, (POSTFIX + 1,)),
                domain="well_conditioned", batch_safe=True, kind="linalg", builtin=1),
    "det": Rule(shape=lambda a: require_square(a, "det") and (),
                vjp=lambda g, ans: ((g * ans) * E.apply("inv", ans.args[0]).T,),
                fn=np.linalg.det, np=Fmt("np.linalg.det({0})"), text=Fmt("det({0})"),
                latex=Fmt("\\det\\left({0}\\right)"),
                domain="well_conditioned", batch_safe=True, kind="linalg",
                builtin=1),                           # Jacobi's formula
    "logdet": Rule(shape=lambda a: require_square(a, "logdet") and (), vjp=lambda g, ans: (g * E.apply("inv", ans.args[0]).T,),
                   fn=lambda x: np.linalg.slogdet(x)[1], np=Fmt("np.linalg.slogdet({0})[1]"), text=Fmt("log det({0})"),
                   latex=Fmt("\\log\\det\\left({0}\\right)"), domain="well_conditioned", batch_safe=True,
                   kind="linalg", builtin=1,
                   doc="log |det X| (the sign is dropped, as numpy.linalg.slogdet does)"),
    "pinv": Rule(shape=pinv_shape, vjp=pinv_vjp, fn=np.linalg.pinv, np=Fmt("np.linalg.pinv({0})"),
                 text=Fmt("pinv({0})"), latex=Fmt("\\operatorname{{pinv}}\\left({0}\\right)"), kind="linalg", builtin=1,
                 domain="well_conditioned", batch_safe=True,
                 doc="Moore–Penrose pseudo-inverse of a matrix (its gradient holds where the rank is constant, "
                     "e.g. full rank)"),
    "trace": Rule(shape=lambda a: require_square(a, "trace") and (), vjp=lambda g, ans: (g * E.eye(ans.args[0].shape[0]),),
                  fn=np.trace,
                  np=Fmt("np.trace({0})"), text=Fmt("tr({0})"), latex=Fmt("\\operatorname{{tr}}\\left({0}\\right)"),
                  kind="linalg", builtin=1),
    "diag": Rule(shape=diag_shape, vjp=lambda g, ans: (build_diag(g),), fn=np.diag, np=Fmt("np.diag({0})"),
                 text=Fmt("diag({0})"),
                 latex=Fmt("\\operatorname{{diag}}\\left({0}\\right)"), kind="linalg", builtin=1),

    # ----- reductions -----
    "sum": Rule(shape=lambda a: (), vjp=lambda g, ans: (g * E.ones(ans.args[0].shape),), fn=np.sum,
                np=Fmt("np.sum({0})"),
                text=Fmt("sum({0})"), latex=Fmt("\\operatorname{{sum}}\\left({0}\\right)"), kind="reduction", builtin=1,
                build=reduce_build("sum", E.sum_all), keywords=("axis",)),
    "mean": Rule(shape=lambda a: (),
                 vjp=lambda g, ans: ((g / const(E.numel(ans.args[0].shape))) * E.ones(ans.args[0].shape),),
                 fn=np.mean, np=Fmt("np.mean({0})"), text=Fmt("mean({0})"),
                 latex=Fmt("\\operatorname{{mean}}\\left({0}\\right)"),
                 kind="reduction", builtin=1, build=reduce_build("mean", _mean_all),
                 keywords=("axis",)),
    "norm": Rule(shape=lambda a: (), vjp=lambda g, ans: ((g / ans) * ans.args[0],), fn=np.linalg.norm,
                 np=Fmt("np.linalg.norm({0})"),
                 text=Fmt("‖{0}‖"), latex=Fmt("\\left\\|{0}\\right\\|"), kind="reduction", builtin=1, build=norm_node,
                 doc="2-norm of a vector, Frobenius norm of a matrix"),
    "sqnorm": Rule(shape=lambda a: (), vjp=lambda g, ans: (2 * g * ans.args[0],), fn=lambda x: np.sum(x * x),
                   np=lambda n: Fmt("{0} @ {0}", MUL, (MUL + 1,)) if n.args[0].ndim == 1 else Fmt("np.sum({0} * {0})", ATOM, (MUL + 1,)),
                   text=Fmt("‖{0}‖²", POW), latex=Fmt("\\left\\|{0}\\right\\|^2", POW), kind="reduction",
                   doc="norm(X)**2, kept as one node"),
    "softmax": Rule(shape=lambda a: vector_only(a, "softmax"),
                    vjp=lambda g, ans: (ans * (g - E.dot(ans, g)),), fn=lambda x: _softmax(x),
                    np=Fmt("_softmax({0})"), text=Fmt("softmax({0})"),
                    latex=Fmt("\\operatorname{{softmax}}\\left({0}\\right)"),
                    batch_safe=True, kind="reduction", builtin=1, build=softmax_build, keywords=("axis",),
                    doc="softmax of a vector; on a matrix pass axis= (each row or column)"),
    "logsumexp": Rule(shape=lambda a: vector_only(a, "logsumexp") and (),
                      vjp=lambda g, ans: (g * Node("softmax", (ans.args[0],)),),
                      fn=lambda x: _logsumexp(x), np=Fmt("_logsumexp({0})"), text=Fmt("logsumexp({0})"),
                      latex=Fmt("\\operatorname{{logsumexp}}\\left({0}\\right)"), batch_safe=True, kind="reduction",
                      builtin=1,
                      build=logsumexp_build, keywords=("axis",),
                      doc="log Σ exp over a vector; on a matrix pass axis= (per row or column)"),
    "softmax_rows": Rule(shape=lambda a: a if len(a) == 2 else vector_only((), "softmax_rows"), vjp=softmax_rows_vjp,
                         fn=np_softmax_rows, np=Fmt("_softmax({0})"), text=Fmt("softmax({0}, axis=1)"),
                         latex=Fmt("\\operatorname{{softmax}}_{{\\text{{rows}}}}\\left({0}\\right)"), batch_safe=True,
                         kind="reduction",
                         doc="softmax of each row of a matrix: softmax(Z, axis=1); axis=0 is softmax_rows(Zᵀ)ᵀ"),
    "logsumexp_rows": Rule(shape=lambda a: (a[0],) if len(a) == 2 else vector_only((), "logsumexp_rows"),
                           vjp=logsumexp_rows_vjp,
                           fn=np_logsumexp_rows, np=Fmt("_logsumexp({0})"), text=Fmt("logsumexp({0}, axis=1)"),
                           latex=Fmt("\\operatorname{{logsumexp}}_{{\\text{{rows}}}}\\left({0}\\right)"),
                           batch_safe=True, kind="reduction",
                           doc="logsumexp of each row: logsumexp(Z, axis=1) (axis=0: of Zᵀ)"),
    "max": Rule(shape=lambda a: require_array(a, "max") and (), vjp=lambda g, ans: (E.mul(g, Node("maxmask", ans.args)),),
                fn=np.max, np=Fmt("np.max({0})"), text=Fmt("max({0})"), latex=Fmt("\\max\\left({0}\\right)"),
                kind="reduction",
                builtin=1, doc="largest entry; its subgradient splits evenly between tied entries"),
    "min": Rule(shape=lambda a: require_array(a, "min") and (), vjp=lambda g, ans: (E.mul(g, Node("minmask", ans.args)),),
                fn=np.min, np=Fmt("np.min({0})"), text=Fmt("min({0})"), latex=Fmt("\\min\\left({0}\\right)"),
                kind="reduction",
                builtin=1, doc="smallest entry; its subgradient splits evenly between tied entries"),
    "maxmask": Rule(shape=same, vjp=lambda g, ans: (None,), fn=max_mask, np=Fmt("max_mask({0})"),
                    text=Fmt("∇max({0})"),
                    latex=Fmt("\\nabla\\max\\left({0}\\right)"), kind="reduction",
                    doc="the gradient of max(X): 1/t at the t entries equal to the max, 0 elsewhere"),
    "minmask": Rule(shape=same, vjp=lambda g, ans: (None,), fn=lambda x: max_mask(-np.asarray(x)),
                    np=Fmt("max_mask(-{0})", ATOM, (POW,)),
                    text=Fmt("∇min({0})"), latex=Fmt("\\nabla\\min\\left({0}\\right)"), kind="reduction",
                    doc="the gradient of min(X): 1/t at the t entries equal to the min, 0 elsewhere"),
    "maximum": Rule(shape=broadcast_shapes, vjp=extreme_vjp(1), fn=np.maximum, np=Fmt("np.maximum({0}, {1})"),
                    text=Fmt("max({0}, {1})"),
                    latex=Fmt("\\max\\left({0}, {1}\\right)"), kind="arithmetic", builtin=2,
                    build=elementwise_pair("maximum"),
                    doc="elementwise larger of two arrays (NumPy broadcasting); ties split the gradient evenly"),
    "minimum": Rule(shape=broadcast_shapes, vjp=extreme_vjp(-1), fn=np.minimum, np=Fmt("np.minimum({0}, {1})"),
                    text=Fmt("min({0}, {1})"),
                    latex=Fmt("\\min\\left({0}, {1}\\right)"), kind="arithmetic", builtin=2,
                    build=elementwise_pair("minimum"),
                    doc="elementwise smaller of two arrays (NumPy broadcasting); ties split the gradient evenly"),
    "rows": Rule(shape=lambda a, m: (m, a[0]) if len(a) == 1 else vector_only(a, "rows"),
                 vjp=rows_vjp, fn=lambda v, m: np.broadcast_to(v, (m,) + np.shape(v)),
                 np=lambda n: Fmt("np.broadcast_to({0}, %s)" % shape_src(n.shape)),
                 text=lambda n: Fmt("𝟙" + latex_escape(size_subscript(n.shape[:1])) + " {0}ᵀ", MATMUL, (POSTFIX + 1,)),
                 latex=lambda n: Fmt("\\mathbf{{1}}" + latex_escape(size_subscript(n.shape[:1], "latex")) + " {0}^\\top", MATMUL,
                                     (POSTFIX + 1,)), kind="arithmetic",
                 doc="𝟙 vᵀ: a vector broadcast along the rows of a matrix (NumPy's (m, n) + (n,))"),
    "matrix_power": Rule(shape=lambda a, k: require_square(a, "matrix_power"), vjp=mpow_vjp,
                 fn=lambda x, k: np.linalg.matrix_power(x, k),
                         np=lambda n: Fmt("np.linalg.matrix_power({0}, %d)" % n.attrs[0]),
                 text=lambda n: Fmt("{0}" + superscript(n.attrs[0]), POW, (POSTFIX + 1,)),
                 latex=lambda n: Fmt("{0}^{{%d}}" % n.attrs[0], POW, (POSTFIX + 1,)),
                 batch_safe=True, kind="linalg", builtin=2, build=matrix_power_build,
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
    if node.args[0].ndim == 2:                       # X^{∘2}: the Hadamard power (X^{2} is the matrix power)
        return Fmt("{0}^{{\\circ {1}}}", POW, (POW + 1, 0))
    return Fmt("{0}^{{{1}}}", POW, (POW + 1, 0))


def _text_pow(node):
    # integer exponents as superscripts (x², x⁻¹); any other exponent is grouped unless atomic: x^(1/3), (2/3)^x
    p = node.args[1]
    # ... a matrix's elementwise power is the Hadamard power X^∘2 (X² is the matrix power, matrix_power(X, 2))
    if node.args[0].ndim == 2:
        return Fmt("{0}^∘{1}", POW, (POW + 1, ATOM))
    # ... but X⁻¹ of an array reads as the matrix inverse: an array's negative power keeps the ^ (X^(−1))
    if p.op == "const" and p.attrs[0].is_Integer and p.attrs[0] != 1 and (p.attrs[0] > 0 or node.args[0].shape == ()):
        return Fmt("{0}" + superscript(int(p.attrs[0])), POW, (POW + 1,))
    return Fmt("{0}^{1}", POW, (POW + 1, POW + 1))


def _text_div(node):
    # a ⊘ b divides entry by entry by an array; a/b divides by a scalar. The divisor is grouped unless it is
    # atomic, a power or a function value: 2·x/(xᵀx), 𝟙 ⊘ (X w), x/‖x‖
    if node.args[1].shape != ():
        return Fmt("{0} ⊘ {1}", MUL, (MUL, POW))
    return Fmt("{0}/{1}", MUL, (MUL, POW))


_T = {"text": Fmt("{0}ᵀ", POSTFIX, (POSTFIX + 1,)), "latex": Fmt("{0}^\\top", POSTFIX, (POSTFIX + 1,))}
_INV_T = {"text": Fmt("{0}⁻ᵀ", POSTFIX, (POSTFIX + 1,), through=0, plain=_T["text"]),
          "latex": Fmt("{0}^{{-\\top}}", POSTFIX, (POSTFIX + 1,), through=0, plain=_T["latex"])}


def _transposed(node, style):
    """Xᵀ; the transposed inverse (X⁻¹)ᵀ is X⁻ᵀ."""
    return _INV_T[style] if node.args[0].op == "inv" else _T[style]


def _dot_form(node, style):
    """aᵀb; aᵀ X b when the right side is a product (aᵀ(X b) is aᵀ X b by associativity)."""
    chain = node.args[1].op == "matmul"
    form = "{0}^\\top {1}" if style == "latex" else "{0}ᵀ {1}" if chain else "{0}ᵀ{1}"
    return Fmt(form, MATMUL, (POSTFIX + 1, MATMUL if chain else MATMUL + 1))


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
    np_need: tuple = ()               # its argument's Fmt.need (sigmoid's -{0}: -(-a), never --a)


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
                           lambda t: 1 / (1 + sympy.exp(-t)), np_need=(NEG + 1,)),
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
        name: Rule(shape=same, vjp=lambda g, ans: (g * Node(prime, ans.args),), fn=f.fn, np=Fmt(f.np, f.np_prec, f.np_need),
                   text=Fmt(name + "({0})"), latex=Fmt("\\operatorname{{" + name + "}}\\left({0}\\right)"),
                   kind="elementwise", builtin=1, domain=f.domain, kink=f.kink, batch_safe=True,
                   np_helper=f.np_helper),
        prime: Rule(shape=same, vjp=lambda g, ans: (vjp_of_expansion(ans, g),), fn=None, np=None,
                    text=Fmt(PRINTED_AS[prime] + "({0})") if prime in PRINTED_AS else Fmt(prime + "({0})"),
                    latex=Fmt("\\operatorname{{" + PRINTED_AS[prime] + "}}\\left({0}\\right)") if prime in PRINTED_AS
                    else Fmt("\\operatorname{{" + name + "}}'\\left({0}\\right)"),
                    kind="elementwise", expand=lambda node: expand_prime(node.args[0]), domain=f.domain,
                    kink=f.kink, batch_safe=True),
    }


def _elementwise_constructor(name: str, f: Elementwise):
    """f(x), with f of a zero array folded to f(0)·𝟙 where f(0) is finite: sign(0) of a vector would print
    as a scalar (issue 14: every printed result reads back); f(s·𝟙) is f(s)·𝟙 (sum(log(0.5·𝟙)) would
    print with no size)."""
    def build(x: Node) -> Node:
        if x.shape != () and E.is_zero(x):
            with np.errstate(all="ignore"):
                v = float(np.asarray(f.fn(np.float64(0.0))))
            if np.isfinite(v):
                return E.mul(const(v), E.ones(x.shape))
        fill = E.fill_value(x) if x.shape != () else None
        if fill is not None:                         # f(s·𝟙) = f(s)·𝟙: no 𝟙 whose size nothing in a sum fixes
            return E.mul(E.apply(name, fill), E.ones(x.shape))
        return Node(name, (x,))
    return build


for _name, _f in ELEMENTWISE.items():
    RULES.update(_elementwise_rules(_name, _f))
    E.CONSTRUCTORS[_name] = _elementwise_constructor(_name, _f)


def vjp_of_expansion(node: Node, g: Node) -> Node:
    """Adjoint of a macro node's single argument, by a reverse sweep through its expansion."""
    from .sweep import backprop
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
                             hint=Hint(f"declare {name} with --elementwise to apply it to each entry of an array",
                                       f"add {name} to Elementwise functions to apply it to each entry of an array"))
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
        return Fmt(f"{latex_escape(latex_name(name))}\\left({args}\\right)")
    if len(node.args) == 1:
        return Fmt(f"{latex_escape(latex_name(name))}{chr(39) * len(partials)}\\left({args}\\right)")
    sub = "".join(str(i + 1) for i in partials)
    return Fmt(f"\\partial_{{{{{sub}}}}} {latex_escape(latex_name(name))}\\left({args}\\right)")


RULES.update({
    "phi": Rule(shape=lambda a, name, order: a, vjp=_phi_vjp, fn=None,
                np=lambda n: Fmt(f"_fn[{n.attrs[0]!r}]({{0}}, {n.attrs[1]})"),
                text=lambda n: Fmt(n.attrs[0] + "'" * n.attrs[1] + "({0})"),
                latex=lambda n: Fmt(latex_escape(latex_name(n.attrs[0])) + "'" * n.attrs[1] + "\\left({0}\\right)"),
                kind="abstract", doc="an unspecified elementwise function and its derivatives"),
    "fn": Rule(shape=_fn_shape, vjp=_fn_vjp, fn=None,
               np=lambda n: Fmt(f"_fn[{n.attrs[0]!r}](({', '.join('{%d}' % i for i in range(len(n.args)))},), "
                             f"{n.attrs[1]!r})"),
               text=_fn_text, latex=_fn_latex, kind="abstract",
               doc="an unspecified scalar function of scalars and its partials"),
})
