"""Array-API printing rules: the forms of `codegen --target array-api`, one entry per operator.

The array-API module takes its namespace `xp` from its inputs (array_api_compat.array_namespace)
and calls only functions of the array API standard (https://data-apis.org/array-api/), so one
file runs on NumPy, CuPy, PyTorch, JAX and Dask arrays: no einsum, no np.vdot, no methods such as
`.sum()` or `.copy()`, no in-place updates, and no bool × float products (a relu' mask is a
`where`). The printers (printer_array_api.ArrayApiPrinter and BatchedArrayApiPrinter) dispatch as
the NumPy ones do (rules_numpy's docstring), through these tables:

- `TEMPLATES[op]`: the operator's printed form, an `rules.Fmt` (or a callable of the node giving
  one) whose `{xp}` is the namespace; every operator the printers may meet has one, and
  `template()` raises InternalError for one that has none (never a NumPy form by default);
- `FORMS[op](p, n)`: special forms (broadcasts, diag(v) @ M, batch axes), None to fall through;
- `BATCHED[op](p, n)`: forms for arguments with a leading batch axis;
- `BATCH_SUM[op](p, n, consts, scale)`: Σ_b n_b with the sum pushed inside the operator;
- `MASK[op](p, f)`: a 0/1 factor of a float product, printed as the condition of a `where`.

Which values a form refers to (rules_numpy.REFS), which nodes are printed in place
(rules_numpy.INLINE) and which operators are batch-safe (rules.Rule.batch_safe) are the same
for both targets: the array-API forms mirror the NumPy ones (linalg functions and the helpers
work over the last axes, so on stacks too).
"""
from __future__ import annotations

from . import expr as E
from .errors import FormulaError, InternalError
from .expr import Node
from .rules import ADD, ATOM, MUL, NEG, POSTFIX, POW, Fmt
from .rules_numpy import (BROADCASTING, diag_arg, diag_of_outer, diag_of_product, factors_of, is_diag_vec,
                          sum_add_sub, sum_neg, sum_pow, sum_transpose, rows_elided)


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


def template(op: str, n: Node) -> Fmt:
    """The array-API form of `op` (for node n), or an InternalError naming what is missing."""
    try:
        fmt = TEMPLATES[op]
    except KeyError:
        raise InternalError(f"array-API printing rule for `{op}` not implemented: register it in "
                            f"symbackprop/rules_array_api.py. This is a bug in symbackprop; please report it.") from None
    return fmt(n) if callable(fmt) and not isinstance(fmt, Fmt) else fmt


def fill(p, fmt: Fmt, parts: list) -> str:
    return fmt.template.format(*parts, xp=p.xp)


# ----- products: a relu' mask is the condition of a `where` (bool × float is not in the standard) -----

def product(p, n: Node, consts: list[str]):
    """An elementwise product tree, scalar factors first (constants folded), then arrays; 0/1 masks
    (relu'(z) = z > 0) multiply as xp.where(z > 0, rest, 0.0)."""
    factors = factors_of(p, n)
    cs = list(consts) + [p.const_src(f.attrs[0]) for f in factors if f.op == "const"]
    scalars = [f for f in factors if f.op != "const" and f.ndim == 0]
    scalars.sort(key=lambda f: p.batched[f])
    arrays = [f for f in factors if f.ndim > 0]
    arrays.sort(key=lambda f: p.batched[f])
    # a `where` needs an array to take the dtype from: with only numbers beside them, masks print as floats
    where = any(not p.is_mask(f) for f in arrays)
    masks = [f for f in arrays if where and p.is_mask(f)]
    arrays = [f for f in arrays if not (where and p.is_mask(f))]
    parts = [c if not c.startswith("-") else f"({c})" for c in cs] + [p.paren(f, MUL + 1) for f in scalars]
    if cs and cs[0].startswith("-") and len(parts) > 1:
        parts[0] = cs[0]
    head = " * ".join(parts)
    if not arrays and not masks:
        return head, MUL if len(parts) > 1 else (NEG if head.startswith("-") else ATOM)
    if head and arrays and any(p.batched[f] for f in scalars):
        head = (f"({head})" if len(parts) > 1 else head) + "[:" + ", None" * n.ndim + "]"
    tail = " * ".join(p.paren(f, MUL + 1) for f in arrays)
    body = f"{head} * {tail}" if head and tail else head or tail
    if not masks:
        return body, MUL
    if not head and len(arrays) == 1:                # a where's argument needs no parentheses
        body = p.ref(arrays[0])[0]
    cond = " & ".join(MASK[f.op](p, f) if len(masks) == 1 else f"({MASK[f.op](p, f)})" for f in masks)
    return f"{p.xp}.where({cond}, {body}, 0.0)", ATOM


#: Operators printed as a product with extra scalar factors (a gradient's coefficient folded in).
SCALED = {"mul": product}

#: relu'(z) = step(z) as a factor of a float product: the condition `z > 0` of a `where`.
MASK = {"step": lambda p, f: f"{p.paren(f.args[0], MUL)} > 0"}


# ----- special forms of the plain printer -----

def transpose(p, x: Node):
    """xᵀ: (xᵀ)ᵀ is x; a batch of matrices swaps its last two axes; a vector is its own transpose."""
    if x.op == "T":
        return p.ref(x.args[0])
    if p.batched[x]:
        return f"{p.xp}.matrix_transpose({p.ref(x)[0]})", ATOM
    if x.ndim < 2:
        return p.ref(x)
    return p.paren(x, POSTFIX) + ".T", POSTFIX


def _const(p, n):
    s = p.const_src(n.attrs[0])
    return s, (NEG if s.startswith("-") else ATOM)


def _filled(p, n):
    return f"{p.xp}.{n.op}({p.shape_src(n.shape)}, {p.like()})", ATOM


def _broadcasting(p, n):
    fmt = template(n.op, n)
    parts = []
    elided = rows_elided(n)
    for i, x in enumerate(n.args):
        if i in elided:                              # a row vector broadcast by the library itself
            v = x.args[0]
            parts.append(p.paren(v, POSTFIX) + "[:, None, :]" if p.batched[v] else p.paren(v, fmt.arg_need(i)))
            continue
        lifted = p.lift(x, n.ndim)
        parts.append(lifted if lifted is not None else p.arg(x, fmt, i))
    return fill(p, fmt, parts), fmt.prec


def _matmul(p, n):
    a, b = n.args
    bat = p.batched
    if is_diag_vec(a):                              # diag(v) @ M = v[:, None] * M
        v = diag_arg(a)
        if b.ndim == 1:                              # diag(v) u = v ⊙ u, a node the plan may not hold
            return p.ref(E.mul(v, b))
        vs = p.paren(v, POSTFIX) + ("[:, :, None]" if bat[v] else "[:, None]")
        return f"{vs} * {p.paren(b, MUL + 1)}", MUL
    if is_diag_vec(b):                              # M @ diag(v) = M * v
        v = diag_arg(b)
        vs = p.paren(v, POSTFIX) + ("[:, None, :]" if bat[v] else "")
        return f"{p.paren(a, MUL)} * {vs}", MUL
    if not bat[a] and bat[b] and b.ndim == 1:       # A x_b for every b: X Aᵀ
        return f"{p.paren(b, MUL)} @ {p.transpose(a)[0] if a.op != 'T' else p.paren(a.args[0], MUL + 1)}", MUL
    if bat[a] and bat[b] and b.ndim == 1:            # A_b x_b: each row of A_b against x_b
        return f"{p.xp}.vecdot({p.ref(a)[0]}, {p.paren(b, POSTFIX)}[:, None, :])", ATOM
    return f"{p.paren(a, MUL)} @ {p.paren(b, MUL + 1)}", MUL


def _dot(p, n):
    u, v = n.args
    bat = p.batched
    if bat[u] and bat[v]:
        return f"{p.xp}.vecdot({p.ref(u)[0]}, {p.ref(v)[0]})", ATOM
    if bat[v]:
        u, v = v, u
    return f"{p.paren(u, MUL)} @ {p.paren(v, MUL + 1)}", MUL


def _outer(p, n):
    u, v = n.args
    bat = p.batched
    us = p.paren(u, POSTFIX) + ("[:, :, None]" if bat[u] else "[:, None]")
    vs = p.paren(v, POSTFIX) + "[:, None, :]" if bat[v] else p.paren(v, MUL + 1)
    return f"{us} * {vs}", MUL


def _rows(p, n):                                     # 𝟙 vᵀ on its own: v broadcast along the rows
    v = n.args[0]
    if p.batched[v]:
        return f"{p.xp}.broadcast_to({p.paren(v, POSTFIX)}[:, None, :], {p.shape_src(n.shape, True)})", ATOM
    return f"{p.xp}.broadcast_to({p.ref(v)[0]}, {p.shape_src(n.shape)})", ATOM


def _diag(p, n):
    a = n.args
    if diag_of_outer(n):                            # diag(u vᵀ) = u ⊙ v: no n×n matrix
        return p.ref(E.mul(*a[0].args))
    if diag_of_product(n) and not p.batched[n]:     # diag(P Q): row-wise inner products, no n×n product
        P, Q = a[0].args
        if Q.op == "T":
            return f"{p.xp}.vecdot({p.ref(P)[0]}, {p.ref(Q.args[0])[0]})", ATOM
        return f"{p.xp}.vecdot({p.ref(P)[0]}, {p.transpose(Q)[0]})", ATOM
    if a[0].ndim == 2:
        return f"{p.xp}.linalg.diagonal({p.ref(a[0])[0]})", ATOM
    return f"_diag({p.xp}, {p.ref(a[0])[0]})", ATOM


def _abstract(p, n):
    raise FormulaError("codegen cannot emit an abstract function (declared with --elementwise/--function)",
                       hint="replace it by a concrete one (relu, tanh, sigmoid, …) to generate code")


FORMS = {
    "var": lambda p, n: (n.attrs[0], ATOM),
    "const": _const,
    "zeros": _filled,
    "ones": _filled,
    "eye": lambda p, n: (f"{p.xp}.eye({p.dim_src(n.shape[0])}, {p.like()})", ATOM),
    "mul": lambda p, n: product(p, n, []),
    **{op: _broadcasting for op in BROADCASTING},
    "T": lambda p, n: p.transpose(n.args[0]),
    "matmul": _matmul,
    "dot": _dot,
    "outer": _outer,
    "rows": _rows,
    "diag": _diag,
    "phi": _abstract,
    "fn": _abstract,
}


# ----- forms of the batched printer (arguments with a leading batch axis) -----

def _axis(x: Node) -> str:
    return "1" if x.ndim == 1 else "(1, 2)"


def _b_sqnorm(p, n):
    x = n.args[0]
    if not p.batched[x]:
        return None
    s = p.ref(x)[0]
    if x.ndim == 1:
        return f"{p.xp}.vecdot({s}, {s})", ATOM
    return f"{p.xp}.sum({p.paren(x, MUL + 1)} * {p.paren(x, MUL + 1)}, axis=(1, 2))", ATOM


def _b_total(p, n):                                  # sum, mean, max, min over each example
    x = n.args[0]
    if not p.batched[x]:
        return None
    return f"{p.xp}.{n.op}({p.ref(x)[0]}, axis={_axis(x)})", ATOM


def _b_norm(p, n):
    x = n.args[0]
    if not p.batched[x]:
        return None
    return f"{p.xp}.linalg.vector_norm({p.ref(x)[0]}, axis={_axis(x)})", ATOM


def _b_mask(sign: str):
    def form(p, n):
        x = n.args[0]
        if not p.batched[x]:
            return None
        arg = p.ref(x)[0] if not sign else "-" + p.paren(x, POSTFIX)
        return f"_max_mask({p.xp}, {arg}, axis={_axis(x)})", ATOM
    return form


def _b_trace(p, n):
    x = n.args[0]
    if not p.batched[x]:
        return None
    return f"{p.xp}.linalg.trace({p.ref(x)[0]})", ATOM


BATCHED = {
    "sqnorm": _b_sqnorm,
    "sum": _b_total,
    "mean": _b_total,
    "max": _b_total,
    "min": _b_total,
    "norm": _b_norm,
    "maxmask": _b_mask(""),
    "minmask": _b_mask("-"),
    "trace": _b_trace,
    # diag: FORMS' xp.linalg.diagonal and _diag work on stacks
}


# ----- sums over the batch: Σ_b n_b with the sum pushed inside -----

def _wrap(s: str) -> str:
    return s if s.isidentifier() or (s.endswith(")") and s.count("(") == 1 and s[:s.index("(")].replace(".", "_")
                                                                             .isidentifier()) else f"({s})"


def _s_mul(p, n, consts, scale):
    bat = p.batched
    factors = factors_of(p, n)
    cs = list(consts) + [p.const_src(f.attrs[0]) for f in factors if f.op == "const"]
    rest = [f for f in factors if f.op != "const"]
    fixed = [f for f in rest if not bat[f]]
    bs = [f for f in rest if bat[f]]
    bsc = [f for f in bs if f.ndim == 0]
    barr = [f for f in bs if f.ndim > 0]
    if len(barr) == 1 and bsc:                       # Σ_b s_b A_b = s @ A
        s = " * ".join(cs + [p.paren(f, MUL + 1) for f in bsc])
        cs = []
        A = barr[0]
        core = (f"{s if ' ' not in s else '(' + s + ')'} @ {p.paren(A, MUL + 1)}" if A.ndim == 1 else
                f"{p.xp}.tensordot({s}, {p.ref(A)[0]}, axes=1)")
    elif not barr and len(bsc) == 2:
        core = f"{p.paren(bsc[0], MUL)} @ {p.paren(bsc[1], MUL + 1)}"
    elif not barr and len(bsc) == 1:
        core, _ = p.bsum(bsc[0], [])
    elif len(barr) == 1 and not bsc:
        inner, prec = p.bsum(barr[0], [])
        core = inner if prec >= MUL else f"({inner})"
    else:
        core = f"{p.xp}.sum({p.product_of(bs, n.ndim)}, axis=0)"
    parts = [c for c in cs] + [p.paren(f, MUL + 1) for f in fixed]
    if parts and " " in core and not (core.startswith(p.xp + ".") and core.endswith(")")):
        core = f"({core})"
    parts.append(core)
    return " * ".join(x if not x.startswith("-") or i == 0 else f"({x})" for i, x in enumerate(parts)), MUL


def _s_outer(p, n, consts, scale):
    u, v = n.args
    bat = p.batched
    if bat[u] and bat[v]:
        core = f"{p.paren(u, POSTFIX)}.T @ {p.paren(v, MUL + 1)}"
    elif bat[u]:
        core = f"{_wrap(p.bsum(u, [])[0])}[:, None] * {p.paren(v, MUL + 1)}"
    else:
        core = f"{p.paren(u, POSTFIX)}[:, None] * {_wrap(p.bsum(v, [])[0])}"
    return (f"{scale} * ({core})" if scale else core), MUL


def _s_matmul(p, n, consts, scale):
    A, X = n.args
    if is_diag_vec(A) or is_diag_vec(X):
        return None
    bat = p.batched
    if not bat[A]:
        inner = p.bsum(X, [])[0]
        core = f"{p.paren(A, MUL)} @ ({inner})" if not inner.isidentifier() else f"{p.paren(A, MUL)} @ {inner}"
    elif not bat[X]:
        inner = p.bsum(A, [])[0]
        core = f"({inner}) @ {p.paren(X, MUL + 1)}"
    else:                                            # Σ_b A_b X_b: contract the batch and inner axes at once
        core = f"{p.xp}.tensordot({p.ref(A)[0]}, {p.ref(X)[0]}, axes=([0, 2], [0, 1]))"
    return (f"{scale} * ({core})" if scale else core), MUL


def _s_dot(p, n, consts, scale):
    u, v = n.args
    bat = p.batched
    if bat[u] and bat[v]:
        core = f"{p.xp}.sum({p.paren(u, MUL)} * {p.paren(v, MUL + 1)})"
    elif bat[u]:
        core = f"{p.paren(v, MUL)} @ ({p.bsum(u, [])[0]})"
    else:
        core = f"{p.paren(u, MUL)} @ ({p.bsum(v, [])[0]})"
    return (f"{scale} * {core}" if scale else core), MUL


def _s_sqnorm(p, n, consts, scale):
    s = p.paren(n.args[0], MUL + 1)
    core = f"{p.xp}.sum({s} * {s})"
    return (f"{scale} * {core}" if scale else core), MUL


BATCH_SUM = {
    "mul": _s_mul,
    "outer": _s_outer,
    "matmul": _s_matmul,
    "dot": _s_dot,
    "sqnorm": _s_sqnorm,
    "pow": sum_pow,
    "add": sum_add_sub,
    "sub": sum_add_sub,
    "neg": sum_neg,
    "T": sum_transpose,
}


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
