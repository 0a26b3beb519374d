"""NumPy printing rules, one entry per operator of the rule table where its printed `np`
template (rules.Rule.np) is not enough: dtypes, broadcasts NumPy does itself, diag(v) @ M
as a broadcast, batch axes and sums over the batch.

The printers (printer_numpy.NumpyPrinter and its subclass BatchedNumpyPrinter) dispatch
generically: `NUMPY[op](p, n)` and `BATCHED[op](p, n)` return (source, precedence) or None
(the next form applies: BATCHED, then NUMPY, then the rule's `np` template); `p` is the
printer (p.ref, p.paren, p.batched, …). `BATCH_SUM[op](p, n, consts, scale)` prints
Σ_b n_b with the sum pushed inside the operator (None: the generic `.sum(axis=0)`, right for
any operator). `REFS[op](p, n)` lists the values the printed form refers to (default: the
arguments), `INLINE[op](n)` says a node is always printed in place, `MASK[op](p, f)` prints
a 0/1 factor of a float product as a boolean mask.

An operator whose `np` template is wrong with a leading batch axis and that has no BATCHED
entry must not declare `batch_safe`: the batched printer then raises "Batching rule for X not
implemented" instead of printing the unbatched form onto batched arrays.
"""
from __future__ import annotations

from . import expr as E
from .errors import FormulaError
from .expr import Node
from .rules import ATOM, MUL, NEG, POSTFIX, RULES

# ----- shapes of nodes the printers treat specially -----

def is_diag_vec(n: Node) -> bool:
    """diag(v) for a vector v, or its transpose (the same matrix)."""
    if n.op == "T":
        n = n.args[0]
    return n.op == "diag" and n.args[0].ndim == 1


def diag_arg(n: Node) -> Node:
    return n.args[0].args[0] if n.op == "T" else n.args[0]


def diag_of_outer(n: Node) -> bool:
    """diag(u vᵀ): printed as u * v, never the outer product."""
    return n.op == "diag" and n.args[0].op == "outer"


def diag_of_product(n: Node) -> bool:
    """diag(P @ Q) with both matrices: computed as a row-wise inner product, never the n×n product."""
    return n.op == "diag" and n.args[0].op == "matmul" and n.args[0].args[1].ndim == 2


#: Elementwise operators whose NumPy form broadcasts a row vector along the rows itself.
BROADCASTING = ("add", "sub", "div", "pow", "maximum", "minimum")


def rows_elided(n: Node) -> set:
    """Arguments 𝟙 vᵀ of an elementwise op that print as v alone: NumPy broadcasts v along the rows
    against the other argument, which has the full shape (at most one per node)."""
    if n.op not in BROADCASTING or n.ndim != 2:
        return set()
    for i, x in enumerate(n.args):
        if x.op == "rows" and n.args[1 - i].shape == n.shape:
            return {i}
    return set()


# ----- products -----

def factors_of(p, n: Node) -> list:
    """The factors of an elementwise product tree (named products stay whole)."""
    factors, stack = [], [n]
    while stack:
        x = stack.pop()
        if x.op == "mul" and (x is n or x not in p.name):
            stack.extend(reversed(x.args))
        else:
            factors.append(x)
    return factors


def product(p, n: Node, consts: list[str]):
    """An elementwise product tree, scalar factors first (constants folded), then arrays."""
    factors = factors_of(p, n)
    cs = list(consts) + [p.const_src(f.attrs[0]) for f in factors if f.op == "const"]
    scalars = [f for f in factors if f.op != "const" and f.ndim == 0]
    scalars.sort(key=lambda f: p.batched[f])
    arrays = [f for f in factors if f.ndim > 0]
    arrays.sort(key=lambda f: p.batched[f])
    parts = [c if not c.startswith("-") else f"({c})" for c in cs] + [p.paren(f, MUL + 1) for f in scalars]
    if cs and cs[0].startswith("-") and len(parts) > 1:
        parts[0] = cs[0]
    head = " * ".join(parts)
    if not arrays:
        return head, MUL if len(parts) > 1 else (NEG if head.startswith("-") else ATOM)
    if head and any(p.batched[f] for f in scalars):
        head = (f"({head})" if len(parts) > 1 else head) + "[:" + ", None" * n.ndim + "]"
    floats = bool(cs or scalars) or any(not p.is_mask(f) for f in arrays)
    tail = " * ".join(p.mask(f) if floats and p.is_mask(f) else p.paren(f, MUL + 1) for f in arrays)
    return (f"{head} * {tail}" if head else tail), MUL


#: Operators printed as a product with extra scalar factors (a gradient's coefficient folded in).
SCALED = {"mul": product}


# ----- forms of the plain printer -----

def transpose(p, x: Node):
    """xᵀ: (xᵀ)ᵀ is x; a batch of matrices swaps its last two axes."""
    if x.op == "T":
        return p.ref(x.args[0])
    if p.batched[x]:
        return f"np.swapaxes({p.ref(x)[0]}, 1, 2)", ATOM
    return p.paren(x, POSTFIX) + ".T", POSTFIX


def _const(p, n):
    s = p.const_src(n.attrs[0])
    return s, (NEG if s.startswith("-") else ATOM)


def _filled(p, n):
    return f"np.{n.op}({p.shape_src(n.shape)}{p.dt()})", ATOM


def _broadcasting(p, n):
    fmt = RULES[n.op].np
    parts = []
    elided = rows_elided(n)
    for i, x in enumerate(n.args):
        if i in elided:                              # a row vector broadcast by NumPy itself
            v = x.args[0]
            parts.append(p.paren(v, POSTFIX) + "[:, None, :]" if p.batched[v] else p.paren(v, fmt.arg_need(i)))
            continue
        lifted = p.lift(x, n.ndim)
        parts.append(lifted if lifted is not None else p.paren(x, fmt.arg_need(i)))
    return fmt.template.format(*parts), fmt.prec


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
        vs = p.paren(v, POSTFIX) + ("[:, None, :]" if bat[v] and not bat[a] else "[:, None, :]" if bat[v] else "")
        return f"{p.paren(a, MUL)} * {vs}", MUL
    if not bat[a] and bat[b] and b.ndim == 1:       # A x_b for every b: X Aᵀ
        return f"{p.paren(b, MUL)} @ {p.transpose(a)[0] if a.op != 'T' else p.paren(a.args[0], MUL + 1)}", MUL
    if bat[a] and bat[b] and b.ndim == 1:
        return f"np.einsum('bij,bj->bi', {p.ref(a)[0]}, {p.ref(b)[0]})", ATOM
    return f"{p.paren(a, MUL)} @ {p.paren(b, MUL + 1)}", MUL


def _dot(p, n):
    u, v = n.args
    bat = p.batched
    if bat[u] and bat[v]:
        return f"np.einsum('bi,bi->b', {p.ref(u)[0]}, {p.ref(v)[0]})", ATOM
    if bat[v]:
        u, v = v, u
    return f"{p.paren(u, MUL)} @ {p.paren(v, MUL + 1)}", MUL


def _outer(p, n):
    u, v = n.args
    bat = p.batched
    if not (bat[u] or bat[v]):
        return f"np.outer({p.ref(u)[0]}, {p.ref(v)[0]})", ATOM
    us = p.paren(u, POSTFIX) + ("[:, :, None]" if bat[u] else "[:, None]")
    vs = p.paren(v, POSTFIX) + ("[:, None, :]" if bat[v] else "")
    return f"{us} * {vs}", MUL


def _rows(p, n):                                     # 𝟙 vᵀ on its own: a real (writable) array
    v, m = n.args[0], p.dim_src(n.shape[0])
    if p.batched[v]:
        return f"np.repeat({p.paren(v, POSTFIX)}[:, None, :], {m}, axis=1)", ATOM
    return f"np.tile({p.ref(v)[0]}, ({m}, 1))", ATOM


def build_diag(p, n):
    a = n.args
    if diag_of_outer(n):                            # diag(u vᵀ) = u ⊙ v: no n×n matrix
        return p.ref(E.mul(*a[0].args))
    if diag_of_product(n) and not p.batched[n]:
        P, Q = a[0].args
        if Q.op == "T":
            return f"np.einsum('ij,ij->i', {p.ref(P)[0]}, {p.ref(Q.args[0])[0]})", ATOM
        return f"np.einsum('ij,ji->i', {p.ref(P)[0]}, {p.ref(Q)[0]})", ATOM
    return None


def _abstract(p, n):
    raise FormulaError("codegen cannot emit an abstract function (declared with --elementwise/--function)",
                       hint="replace it by a concrete one (relu, tanh, sigmoid, …) to generate code")


NUMPY = {
    "var": lambda p, n: (n.attrs[0], ATOM),
    "const": _const,
    "zeros": _filled,
    "ones": _filled,
    "eye": lambda p, n: (f"np.eye({p.dim_src(n.shape[0])}{p.dt()})", ATOM),
    "mul": lambda p, n: product(p, n, []),
    **{op: _broadcasting for op in BROADCASTING},
    "T": lambda p, n: p.transpose(n.args[0]),
    "matmul": _matmul,
    "dot": _dot,
    "outer": _outer,
    "rows": _rows,
    "diag": build_diag,
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
    sub = "bi,bi->b" if x.ndim == 1 else "bij,bij->b"
    return f"np.einsum('{sub}', {s}, {s})", ATOM


def _b_total(p, n):                                  # sum, mean, max, min: a method of the array
    x = n.args[0]
    if not p.batched[x]:
        return None
    return f"{p.paren(x, POSTFIX)}.{n.op}(axis={_axis(x)})", POSTFIX


def _b_norm(p, n):
    x = n.args[0]
    if not p.batched[x]:
        return None
    return f"np.linalg.norm({p.ref(x)[0]}, axis={_axis(x)})", ATOM


def _b_mask(sign: str):
    def form(p, n):
        x = n.args[0]
        if not p.batched[x]:
            return None
        arg = p.ref(x)[0] if not sign else "-" + p.paren(x, POSTFIX)
        return f"max_mask({arg}, axis={_axis(x)})", ATOM
    return form


def _b_trace(p, n):
    x = n.args[0]
    if not p.batched[x]:
        return None
    return f"np.trace({p.ref(x)[0]}, axis1=1, axis2=2)", ATOM


def _b_diag(p, n):
    x = n.args[0]
    if diag_of_outer(n) or not p.batched[x]:
        return None
    if x.ndim == 2:
        return f"np.diagonal({p.ref(x)[0]}, axis1=1, axis2=2)", ATOM
    return f"_batched_diag({p.ref(x)[0]})", ATOM


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
    "diag": _b_diag,
}


# ----- sums over the batch: Σ_b n_b with the sum pushed inside -----

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
                f"np.einsum('b,bij->ij', {s}, {p.ref(A)[0]})")
    elif not barr and len(bsc) == 2:
        core = f"{p.paren(bsc[0], MUL)} @ {p.paren(bsc[1], MUL + 1)}"
    elif not barr and len(bsc) == 1:
        core, _ = p.bsum(bsc[0], [])
    elif len(barr) == 1 and not bsc:
        inner, prec = p.bsum(barr[0], [])
        core = inner if prec >= MUL else f"({inner})"
    else:
        prod = p.product_of(bs, n.ndim)
        core = f"({prod}).sum(axis=0)"
    parts = [c for c in cs] + [p.paren(f, MUL + 1) for f in fixed]
    if parts and " " in core and not (core.startswith("np.") and core.endswith(")")):
        core = f"({core})"
    parts.append(core)
    return " * ".join(x if not x.startswith("-") or i == 0 else f"({x})" for i, x in enumerate(parts)), MUL


def _s_outer(p, n, consts, scale):
    u, v = n.args
    bat = p.batched
    if bat[u] and bat[v]:
        core = f"{p.paren(u, POSTFIX)}.T @ {p.paren(v, MUL + 1)}"
    elif bat[u]:
        core = f"np.outer({p.bsum(u, [])[0]}, {p.ref(v)[0]})"
    else:
        core = f"np.outer({p.ref(u)[0]}, {p.bsum(v, [])[0]})"
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
    elif X.ndim == 1:
        core = f"np.einsum('bij,bj->i', {p.ref(A)[0]}, {p.ref(X)[0]})"
    else:
        core = f"np.einsum('bij,bjk->ik', {p.ref(A)[0]}, {p.ref(X)[0]})"
    return (f"{scale} * ({core})" if scale else core), MUL


def _s_dot(p, n, consts, scale):
    u, v = n.args
    bat = p.batched
    if bat[u] and bat[v]:
        core = f"np.vdot({p.ref(u)[0]}, {p.ref(v)[0]})"
    elif bat[u]:
        core = f"{p.paren(v, MUL)} @ ({p.bsum(u, [])[0]})"
    else:
        core = f"{p.paren(u, MUL)} @ ({p.bsum(v, [])[0]})"
    return (f"{scale} * {core}" if scale else core), MUL


def _s_sqnorm(p, n, consts, scale):
    s = p.ref(n.args[0])[0]
    core = f"np.vdot({s}, {s})"
    return (f"{scale} * {core}" if scale else core), MUL


def sum_pow(p, n, consts, scale):
    a = n.args
    if not (n.ndim == 0 and a[1].op == "const" and a[1].attrs[0] == 2):
        return None
    s = p.paren(a[0], MUL)
    core = f"{s} @ {s}"
    return (f"{scale} * ({core})" if scale else core), MUL


def sum_add_sub(p, n, consts, scale):
    a = n.args
    if not (p.batched[a[0]] and p.batched[a[1]]):
        return None
    left, _ = p.bsum(a[0], consts)
    r, pr = p.bsum(a[1], consts)
    sym = RULES[n.op].np.template.split()[1]          # + or -
    return f"{left} {sym} {r if pr > MUL or n.op == 'add' else '(' + r + ')'}", 10


def sum_neg(p, n, consts, scale):
    s, prec = p.bsum(n.args[0], consts)
    return f"-{s if prec >= NEG else '(' + s + ')'}", NEG


def sum_transpose(p, n, consts, scale):
    s, prec = p.bsum(n.args[0], [])
    core = f"({s}).T" if prec < POSTFIX else f"{s}.T"
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


# ----- what a printed form refers to, what is always inline, masks -----

def _refs_broadcasting(p, n):
    elided = rows_elided(n)
    if elided:                                       # 𝟙 vᵀ under + − / **: NumPy broadcasts v itself
        return [x.args[0] if i in elided else x for i, x in enumerate(n.args)]
    return list(n.args)


def _refs_diag(p, n):
    if diag_of_product(n) and not p.batched.get(n):
        return list(n.args[0].args)
    if diag_of_outer(n):
        return list(n.args[0].args)
    return list(n.args)


REFS = {
    **{op: _refs_broadcasting for op in BROADCASTING},
    "matmul": lambda p, n: [diag_arg(a) if is_diag_vec(a) else a for a in n.args],
    "diag": _refs_diag,
}

INLINE = {
    "T": lambda n: not n.args[0].args or n.args[0].op == "var",
    "neg": lambda n: not n.args[0].args,
}

#: relu'(z) = step(z) as a factor of a float product: the boolean mask `(z > 0)` (one cheap comparison;
#: the product makes it float). Alone it prints as np.heaviside, a float.
MASK = {"step": lambda p, f: f"({p.paren(f.args[0], MUL)} > 0)"}


# ----- helper functions the printed forms call (copied into a module that uses them) -----

HELPERS = {
    "_softmax": '''def _softmax(z):
    """softmax along the last axis, shifted by the max so exp never overflows."""
    e = np.exp(z - np.max(z, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)''',
    "_logsumexp": '''def _logsumexp(z):
    """log(sum(exp(z))) along the last axis, shifted by the max so exp never overflows."""
    m = np.max(z, axis=-1, keepdims=True)
    return (m + np.log(np.sum(np.exp(z - m), axis=-1, keepdims=True)))[..., 0]''',
    "max_mask": '''def max_mask(x, axis=None):
    """The subgradient of max: 1 where x is largest (over axis), split evenly between ties."""
    m = x == np.max(x, axis=axis, keepdims=True)
    return m / np.sum(m, axis=axis, keepdims=True)''',
    "_batched_diag": '''def _batched_diag(v):
    """diag(v_b) for each row v_b of v."""
    out = np.zeros(v.shape + v.shape[-1:], dtype=v.dtype)
    i = np.arange(v.shape[-1])
    out[:, i, i] = v
    return out''',
}


#: The dtype conversion of float32 modules.
CAST = '''def _cast(*inputs):
    """The inputs as {dtype}, converted once per call: arrays (no copy when they already are {dtype}) and
    scalars (np.{dtype}), so every result is {dtype} whatever the inputs were."""
    return tuple(np.asarray(a, dtype=np.{dtype}) if np.ndim(a) else np.{dtype}(a) for a in inputs)'''


def helpers() -> dict[str, str]:
    """Helper name -> source: the table above and each rule's own `np_helper` (a function its `np` form calls)."""
    out = dict(HELPERS)
    for rule in RULES.values():
        if rule.np_helper:
            out[rule.np_helper.split("(", 1)[0].split()[-1]] = rule.np_helper
    return out
