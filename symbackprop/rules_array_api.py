"""Array-API printing rules: the templates and spelling of `codegen --target array-api`.

The array-API module takes its namespace `xp` from its inputs (array_api_compat.array_namespace)
and calls only functions of the array API standard (https://data-apis.org/array-api/), so one
file runs on NumPy, CuPy, PyTorch, JAX and Dask arrays: no einsum, no np.vdot, no methods such as
`.sum()` or `.copy()`, no in-place updates, and no bool × float products (a relu' mask is a
`where`). The printers (printer_array_api.ArrayApiPrinter and BatchedArrayApiPrinter) dispatch
as the NumPy ones do (rules_numpy's docstring), through these tables:

- `TEMPLATES[op]`: the operator's printed form, an `rules.Fmt` (or a callable of the node giving
  one) whose `{xp}` is the namespace; every operator the printers may meet has one, and
  `template()` raises InternalError for one that has none (never a NumPy form by default);
- `SPELLING[word]`: how the standard spells the words the shared forms of rules_forms use
  (einsum contractions as vecdot, tensordot or xp.sum; reductions as functions, not methods);
- `FORMS[op](p, n)`, `BATCHED[op](p, n)`, `BATCH_SUM[op](p, n, consts, scale)`: rules_forms'
  shared forms plus the few of the array API's own (outer products as broadcasts, diag and the
  transpose of a vector);
- `MASK[op](p, f)`: a 0/1 factor of a float product, printed as the condition of a `where`.

Which values a form refers to (rules_forms.REFS), which nodes are printed in place
(rules_forms.INLINE) and which operators are batch-safe (rules.Rule.batch_safe) are the same
for both targets (linalg functions and the helpers work over the last axes, so on stacks too).
"""
from __future__ import annotations

from . import rules_forms as F
from .errors import InternalError
from .expr import Node
from .rules import ADD, ATOM, MUL, NEG, POSTFIX, POW, Fmt
from .rules_forms import build_diag


# ----- printed forms of the operators -----

def _call(name: str, *, prec: int = ATOM, need: tuple = ()) -> Fmt:
    return Fmt(name + "({0})", prec, need)


def _binop(symbol: str, prec: int) -> Fmt:
    return Fmt("{0} %s {1}" % symbol, prec, (prec, prec + 1))


def _sqnorm(n: Node) -> Fmt:
    return Fmt("{0} @ {0}", MUL, (MUL + 1,)) if n.args[0].ndim == 1 else Fmt("{xp}.sum({0} * {0})", ATOM, (MUL + 1,))


TEMPLATES = {
    # arithmetic
    "add": _binop("+", ADD),
    "sub": _binop("-", ADD),
    "mul": _binop("*", MUL),
    "div": _binop("/", MUL),
    "pow": Fmt("{0} ** {1}", POW, (POW + 1, NEG)),
    "neg": Fmt("-{0}", NEG, (NEG,)),
    "maximum": Fmt("{xp}.maximum({0}, {1})"),
    "minimum": Fmt("{xp}.minimum({0}, {1})"),
    # linear algebra (the linalg extension)
    "matmul": _binop("@", MUL),
    "dot": _binop("@", MUL),
    "inv": _call("{xp}.linalg.inv"),
    "det": _call("{xp}.linalg.det"),
    "logdet": Fmt("{xp}.linalg.slogdet({0}).logabsdet"),
    "pinv": _call("{xp}.linalg.pinv"),
    "trace": _call("{xp}.linalg.trace"),
    "matrix_power": lambda n: Fmt("{xp}.linalg.matrix_power({0}, %d)" % n.attrs[0]),
    # reductions
    "sum": _call("{xp}.sum"),
    "mean": _call("{xp}.mean"),
    "max": _call("{xp}.max"),
    "min": _call("{xp}.min"),
    "norm": _call("{xp}.linalg.vector_norm"),         # of a matrix: over every entry, the Frobenius norm
    "sqnorm": _sqnorm,
    "softmax": Fmt("_softmax({xp}, {0})"),
    "softmax_rows": Fmt("_softmax({xp}, {0})"),
    "logsumexp": Fmt("_logsumexp({xp}, {0})"),
    "logsumexp_rows": Fmt("_logsumexp({xp}, {0})"),
    "maxmask": Fmt("_max_mask({xp}, {0})"),
    "minmask": Fmt("_max_mask({xp}, -{0})", ATOM, (POW,)),
    # elementwise functions
    "relu": Fmt("{xp}.clip({0}, min=0.0)"),          # (xp.maximum(z, 0.0) breaks torch.compile's graph)
    "step": Fmt("_step({xp}, {0})"),                 # a float 0/1 (alone; in a product it is a `where`)
    "sign": _call("{xp}.sign"),
    "abs": _call("{xp}.abs"),
    "sigmoid": Fmt("_sigmoid({xp}, {0})"),
    "tanh": _call("{xp}.tanh"),
    "exp": _call("{xp}.exp"),
    "log": _call("{xp}.log"),
    "sqrt": _call("{xp}.sqrt"),
    "sin": _call("{xp}.sin"),
    "cos": _call("{xp}.cos"),
    "tan": _call("{xp}.tan"),
    "softplus": Fmt("_softplus({xp}, {0})"),
    "erf": Fmt("_erf({xp}, {0})"),
}


def lookup(table: dict, op: str, n: Node, target: str, where: str) -> Fmt:
    """The form of `op` (for node n) in a target's TEMPLATES, or an InternalError naming what is missing."""
    try:
        fmt = table[op]
    except KeyError:
        raise InternalError(f"{target} printing rule for `{op}` not implemented: register it in {where}. "
                            f"This is a bug in symbackprop; please report it.") from None
    return fmt(n) if callable(fmt) and not isinstance(fmt, Fmt) else fmt


def template(op: str, n: Node) -> Fmt:
    """The array-API form of `op` (for node n), or an InternalError naming what is missing."""
    return lookup(TEMPLATES, op, n, "array-API", "symbackprop/rules_array_api.py")


# ----- the words of rules_forms spelled in the standard (p.spell) -----

def _wrap(s: str) -> str:
    return s if s.isidentifier() or (s.endswith(")") and s.count("(") == 1 and s[:s.index("(")].replace(".", "_")
                                                                             .isidentifier()) else f"({s})"


def _outer(p, u, v):
    """u vᵀ as a broadcast; a side given as source (a sum over the batch) is bracketed unless it is a call."""
    us = _wrap(u[0]) if isinstance(u, tuple) else p.paren(u, POSTFIX)
    vs = _wrap(v[0]) if isinstance(v, tuple) else p.paren(v, MUL + 1)
    return f"{us}[:, None] * {vs}", MUL


_VECDOT = Fmt("{xp}.vecdot({0}, {1})")
_TENSORDOT = Fmt("{xp}.tensordot({0}, {1}, axes=([0, 2], [0, 1]))")

SPELLING = {
    "bi,bi->b": _VECDOT,
    "ij,ij->i": _VECDOT,
    "ij,ji->i": lambda p, P, Q: (f"{p.xp}.vecdot({p.ref(P)[0]}, {p.transpose(Q)[0]})", ATOM),
    "bij,bj->bi": Fmt("{xp}.vecdot({0}, {1}[:, None, :])", ATOM, (0, POSTFIX)),
    "bij,bij->b": Fmt("{xp}.sum({0} * {1}, axis=(1, 2))", ATOM, (MUL + 1, MUL + 1)),
    "b,bij->ij": Fmt("{xp}.tensordot({0}, {1}, axes=1)"),
    "bij,bj->i": _TENSORDOT,
    "bij,bjk->ik": _TENSORDOT,
    "swap_T": Fmt("{xp}.matrix_transpose({0})"),
    "vdot": Fmt("{xp}.sum({0} * {1})", ATOM, (MUL, MUL + 1)),
    "vdot_self": Fmt("{xp}.sum({0} * {0})", ATOM, (MUL + 1,)),
    "outer": _outer,
    "reduce": Fmt("{xp}.{op}({0}, axis={axis})"),
    "norm": Fmt("{xp}.linalg.vector_norm({0}, axis={axis})"),
    "trace": Fmt("{xp}.linalg.trace({0})"),
    "max_mask": Fmt("_max_mask({xp}, {0}, axis={axis})"),
    "min_mask": Fmt("_max_mask({xp}, -{0}, axis={axis})", ATOM, (POSTFIX,)),
    # 𝟙 vᵀ on its own: v broadcast along the rows
    "rows": Fmt("{xp}.broadcast_to({0}, {shape})"),
    "rows_b": Fmt("{xp}.broadcast_to({0}[:, None, :], {batch_shape})", ATOM, (POSTFIX,)),
    "sum0": Fmt("{xp}.sum({0}, axis=0)"),
    "sum_all": Fmt("{xp}.sum({0})"),
    # diag's two readings (the array API's own form, _diag below)
    "diagonal": Fmt("{xp}.linalg.diagonal({0})"),
    "diag_matrix": Fmt("_diag({xp}, {0})"),
}

#: relu'(z) = step(z) as a factor of a float product: the condition `z > 0` of a `where`.
MASK = {"step": lambda p, f: f"{p.paren(f.args[0], MUL)} > 0"}


# ----- forms of the array API's own -----

def transpose(p, x: Node):
    """xᵀ as rules_forms prints it, but a vector is its own transpose (the standard has no `.T` of one)."""
    if x.op != "T" and not p.batched[x] and x.ndim < 2:
        return p.ref(x)
    return F.transpose(p, x)


def _outer_form(p, n):
    u, v = n.args
    bat = p.batched
    us = p.paren(u, POSTFIX) + ("[:, :, None]" if bat[u] else "[:, None]")
    vs = p.paren(v, POSTFIX) + "[:, None, :]" if bat[v] else p.paren(v, MUL + 1)
    return f"{us} * {vs}", MUL


def _diag(p, n):
    """diag of a matrix (its diagonal) or of a vector (the matrix with it on the diagonal), on stacks too:
    the words `diagonal` and `diag_matrix` of the target's SPELLING."""
    out = build_diag(p, n)
    if out is not None:
        return out
    x = n.args[0]
    return p.spell("diagonal" if x.ndim == 2 else "diag_matrix", x)


FORMS = {**F.FORMS, "outer": _outer_form, "diag": _diag}
BATCHED = dict(F.BATCHED)                            # diag: FORMS' xp.linalg.diagonal and _diag work on stacks


# ----- helper functions the printed forms call (copied into a module that uses them) -----

HELPERS = {
    "_softmax": '''def _softmax(xp, z):
    """softmax along the last axis, shifted by the max so exp never overflows."""
    e = xp.exp(z - xp.max(z, axis=-1, keepdims=True))
    return e / xp.sum(e, axis=-1, keepdims=True)''',
    "_logsumexp": '''def _logsumexp(xp, z):
    """log(sum(exp(z))) along the last axis, shifted by the max so exp never overflows."""
    m = xp.max(z, axis=-1, keepdims=True)
    return (m + xp.log(xp.sum(xp.exp(z - m), axis=-1, keepdims=True)))[..., 0]''',
    "_max_mask": '''def _max_mask(xp, x, axis=None):
    """The subgradient of max: 1 where x is largest (over axis), split evenly between ties."""
    m = xp.astype(x == xp.max(x, axis=axis, keepdims=True), x.dtype)
    return m / xp.sum(m, axis=axis, keepdims=True)''',
    "_step": '''def _step(xp, z):
    """1.0 where z > 0, else 0.0, in z's dtype."""
    return xp.astype(z > 0, z.dtype)''',
    "_diag": '''def _diag(xp, v):
    """diag(v): the square matrix with v on its diagonal (for each row of v when v is a batch)."""
    return v[..., :, None] * xp.eye(v.shape[-1], dtype=v.dtype, device=array_api_compat.device(v))''',
    "_softplus": '''def _softplus(xp, z):
    """log(1 + exp(z)) as max(z, 0) + log1p(exp(-|z|)): accurate for every z, never overflows."""
    return xp.clip(z, min=0.0) + xp.log1p(xp.exp(-xp.abs(z)))''',
    "_sigmoid": '''def _sigmoid(xp, z):
    """1 / (1 + exp(-z)) as exp(-softplus(-z)): accurate to the last bits far left too, never overflows."""
    return xp.exp(-(xp.clip(-z, min=0.0) + xp.log1p(xp.exp(-xp.abs(z)))))''',
    "_erf": '''def _erf(xp, x):
    """The error function entry by entry (the standard has none): 2/√π·exp(−x²)·Σₙ 2ⁿx²ⁿ⁺¹/(1·3···(2n+1)),
    a series of terms of one sign (no cancellation); |x| ≥ 6 gives ±1 to double precision."""
    t = xp.clip(x, -6.0, 6.0)
    term = total = t * 1.0
    for n in range(1, 200):
        term = term * (2.0 * t * t) / (2 * n + 1)
        total = total + term
    return 1.1283791670955126 * xp.exp(-t * t) * total''',
}

#: The dtype conversion of float32 modules.
CAST = '''def _cast(xp, *inputs):
    """The inputs as {dtype} arrays of namespace xp, converted once per call (no copy when they already are)."""
    return tuple(xp.asarray(a, dtype=xp.{dtype}) for a in inputs)'''


def helpers() -> dict[str, str]:
    """Helper name -> source."""
    return dict(HELPERS)
