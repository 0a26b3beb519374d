"""The printed forms both code-generation targets share (`codegen --target numpy` and
`--target array-api`), each written once.

A form is a function of the printer `p` and the node `n` that returns (source, precedence), or None
(the next form applies). The forms here spell nothing themselves: the namespace is `p.xp` (`np` or
`xp`), and every call whose spelling differs between the targets goes through `p.spell(word, *args,
**fields)`, which looks the word up in the printer's SPELLING table (rules_numpy.SPELLING: NumPy's
functions, methods and einsum; rules_array_api.SPELLING: the standard's vecdot, tensordot and
`xp.sum`) and fills it with the arguments: a Node (bracketed by the spelling's `need`), a
(source, precedence) pair (bracketed the same way), or a string (as it is). Masks (relu'(z) in a
float product) are the printer's too: `p.mask(f)` prints one, and `p.WHERE_MASKS` says whether they
multiply in as factors (NumPy) or become the condition of a `where` (the array API: no bool × float).

The tables below are the shared part of each target's tables: rules_numpy.NUMPY / BATCHED /
BATCH_SUM and rules_array_api.FORMS / BATCHED / BATCH_SUM are these plus the few forms that truly
differ (np.outer, NumPy's batched diag, sigmoid's folded minus; the array API's outer products as
broadcasts, diag, and the transpose of a vector).
REFS and INLINE (which values a form refers to, which nodes are printed in place) are the same for
both targets.
"""
from __future__ import annotations

from . import expr as E
from .errors import FormulaError
from .expr import Node
from .rules import ADD, ATOM, MUL, NEG, POSTFIX

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


#: Elementwise operators whose form broadcasts a row vector along the rows itself.
BROADCASTING = ("add", "sub", "div", "pow", "maximum", "minimum")


def rows_elided(n: Node) -> set:
    """Arguments 𝟙 vᵀ of an elementwise op that print as v alone: the library broadcasts v along the rows
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
    """An elementwise product tree, scalar factors first (constants folded), then arrays. A 0/1 mask
    (relu'(z) = z > 0) multiplies in as a boolean factor, or, where the printer says WHERE_MASKS, as the
    condition of xp.where(z > 0, rest, 0.0) (with only numbers beside them, masks print as floats)."""
    factors = factors_of(p, n)
    cs = list(consts) + [p.const_src(f.attrs[0]) for f in factors if f.op == "const"]
    scalars = [f for f in factors if f.op != "const" and f.ndim == 0]
    scalars.sort(key=lambda f: p.batched[f])
    arrays = [f for f in factors if f.ndim > 0]
    arrays.sort(key=lambda f: p.batched[f])
    where = p.WHERE_MASKS and any(not p.is_mask(f) for f in arrays)
    masks = [f for f in arrays if where and p.is_mask(f)]
    arrays = [f for f in arrays if not (where and p.is_mask(f))]
    parts = [c if not c.startswith("-") else f"({c})" for c in cs] + [p.paren(f, MUL + 1) for f in scalars]
    if cs and cs[0].startswith("-") and len(parts) > 1:
        parts[0] = cs[0]
    head = " * ".join(parts)
    if not arrays:
        return head, MUL if len(parts) > 1 else (NEG if head.startswith("-") else ATOM)
    if head and any(p.batched[f] for f in scalars):
        head = (f"({head})" if len(parts) > 1 else head) + "[:" + ", None" * n.ndim + "]"
    floats = not p.WHERE_MASKS and ((bool(cs or scalars) and not p.MASK_NEEDS_TENSOR)
                                    or any(not p.is_mask(f) for f in arrays))
    tail = " * ".join(p.mask(f) if floats and p.is_mask(f) else p.paren(f, MUL + 1) for f in arrays)
    body = f"{head} * {tail}" if head else tail
    if not masks:
        return body, MUL
    if not head and len(arrays) == 1:                # a where's argument needs no parentheses
        body = p.ref(arrays[0])[0]
    cond = " & ".join(p.mask(f) if len(masks) == 1 else f"({p.mask(f)})" for f in masks)
    return f"{p.xp}.where({cond}, {body}, 0.0)", ATOM


#: Operators printed as a product with extra scalar factors (a gradient's coefficient folded in).
SCALED = {"mul": product}


# ----- forms of the plain printer -----

def transpose(p, x: Node):
    """xᵀ: (xᵀ)ᵀ is x; a batch of matrices swaps its last two axes."""
    if x.op == "T":
        return p.ref(x.args[0])
    if p.batched[x]:
        return p.spell("swap_T", x)
    return p.paren(x, POSTFIX) + ".T", POSTFIX


def _const(p, n):
    s = p.const_src(n.attrs[0])
    return s, (NEG if s.startswith("-") else ATOM)


def _filled(p, n):
    return f"{p.xp}.{n.op}({p.shape_src(n.shape)}{p.dt()})", ATOM


def _broadcasting(p, n):
    fmt = p.fmt(n)
    parts = []
    elided = rows_elided(n)
    for i, x in enumerate(n.args):
        if i in elided:                              # a row vector broadcast by the library itself
            v = x.args[0]
            parts.append(p.paren(v, POSTFIX) + "[:, None, :]" if p.batched[v] else p.paren(v, fmt.arg_need(i)))
            continue
        lifted = p.lift(x, n.ndim)
        parts.append(lifted if lifted is not None else p.arg(x, fmt, i))
    return p.fill(fmt, parts), fmt.prec


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
        return p.spell("bij,bj->bi", a, b)
    return f"{p.paren(a, MUL)} @ {p.paren(b, MUL + 1)}", MUL


def _dot(p, n):
    u, v = n.args
    bat = p.batched
    if bat[u] and bat[v]:
        return p.spell("bi,bi->b", u, v)
    if bat[v]:
        u, v = v, u
    return f"{p.paren(u, MUL)} @ {p.paren(v, MUL + 1)}", MUL


def _rows(p, n):                                     # 𝟙 vᵀ on its own
    v = n.args[0]
    sizes = dict(m=p.dim_src(n.shape[0]), shape=p.shape_src(n.shape), batch_shape=p.shape_src(n.shape, True))
    return p.spell("rows_b" if p.batched[v] else "rows", v, **sizes)


def build_diag(p, n):
    """diag(u vᵀ) as u ⊙ v and diag(P Q) as row-wise inner products (no n×n matrix); None otherwise."""
    a = n.args
    if diag_of_outer(n):
        return p.ref(E.mul(*a[0].args))
    if diag_of_product(n) and not p.batched[n]:
        P, Q = a[0].args
        if Q.op == "T":
            return p.spell("ij,ij->i", P, Q.args[0])
        return p.spell("ij,ji->i", P, Q)
    return None


def _abstract(p, n):
    raise FormulaError("codegen cannot emit an abstract function (declared with --elementwise/--function)",
                       hint="replace it by a concrete one (relu, tanh, sigmoid, …) to generate code")


FORMS = {
    "var": lambda p, n: (n.attrs[0], ATOM),
    "const": _const,
    "zeros": _filled,
    "ones": _filled,
    "eye": lambda p, n: (f"{p.xp}.eye({p.dim_src(n.shape[0])}{p.dt()})", ATOM),
    "mul": lambda p, n: p.product(n, []),
    **{op: _broadcasting for op in BROADCASTING},
    "T": lambda p, n: p.transpose(n.args[0]),
    "matmul": _matmul,
    "dot": _dot,
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
    return p.spell("bi,bi->b" if x.ndim == 1 else "bij,bij->b", x, x)


def _batch_form(word: str):
    """A form of one batched argument (None when it is not batched): `word` spelled with it and its axes."""
    def form(p, n):
        x = n.args[0]
        if not p.batched[x]:
            return None
        return p.spell(word, x, op=n.op, axis=_axis(x))
    return form


BATCHED = {
    "sqnorm": _b_sqnorm,
    "sum": _batch_form("reduce"),                    # sum, mean, max, min over each example
    "mean": _batch_form("reduce"),
    "max": _batch_form("reduce"),
    "min": _batch_form("reduce"),
    "norm": _batch_form("norm"),
    "maxmask": _batch_form("max_mask"),
    "minmask": _batch_form("min_mask"),
    "trace": _batch_form("trace"),
}


# ----- sums over the batch: Σ_b n_b with the sum pushed inside -----

def _scaled(core: str, scale: str, paren: bool = True):
    return (f"{scale} * ({core})" if paren else f"{scale} * {core}") if scale else core, MUL


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
                p.spell("b,bij->ij", s, A)[0])
    elif not barr and len(bsc) == 2:
        core = f"{p.paren(bsc[0], MUL)} @ {p.paren(bsc[1], MUL + 1)}"
    elif not barr and len(bsc) == 1:
        core, _ = p.bsum(bsc[0], [])
    elif len(barr) == 1 and not bsc:
        inner, prec = p.bsum(barr[0], [])
        core = inner if prec >= MUL else f"({inner})"
    else:
        core = p.spell("sum0", (p.product_of(bs, n.ndim), MUL))[0]
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
        core = p.spell("outer", p.bsum(u, []), v)[0]
    else:
        core = p.spell("outer", u, p.bsum(v, []))[0]
    return _scaled(core, scale)


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
    else:                                            # Σ_b A_b X_b: the batch and inner axes contracted at once
        core = p.spell("bij,bj->i" if X.ndim == 1 else "bij,bjk->ik", A, X)[0]
    return _scaled(core, scale)


def _s_dot(p, n, consts, scale):
    u, v = n.args
    bat = p.batched
    if bat[u] and bat[v]:
        core = p.spell("vdot", u, v)[0]
    elif bat[u]:
        core = f"{p.paren(v, MUL)} @ ({p.bsum(u, [])[0]})"
    else:
        core = f"{p.paren(u, MUL)} @ ({p.bsum(v, [])[0]})"
    return _scaled(core, scale, paren=False)


def _s_sqnorm(p, n, consts, scale):
    return _scaled(p.spell("vdot_self", n.args[0])[0], scale, paren=False)


def _s_pow(p, n, consts, scale):
    a = n.args
    if not (n.ndim == 0 and a[1].op == "const" and a[1].attrs[0] == 2):
        return None
    s = p.paren(a[0], MUL)
    return _scaled(f"{s} @ {s}", scale)


def _s_add_sub(p, n, consts, scale):
    """Σ_b (u ± v) = Σ_b u ± Σ_b v, where the sum of a side that is the same for every example is B times it:
    never the whole sum broadcast to a per-example array (a weight decay beside a per-example outer
    product built a (B, k, d) tensor)."""
    a = n.args
    if n.shape != a[0].shape or n.shape != a[1].shape:
        return None                                  # a broadcast side: the generic sum
    left, _ = p.bsum(a[0], consts)
    r, pr = p.bsum(a[1], consts)
    sym = "+" if n.op == "add" else "-"
    return f"{left} {sym} {r if pr > MUL or n.op == 'add' else '(' + r + ')'}", ADD


def _s_neg(p, n, consts, scale):
    s, prec = p.bsum(n.args[0], consts)
    return f"-{s if prec >= NEG else '(' + s + ')'}", NEG


def _s_transpose(p, n, consts, scale):
    s, prec = p.bsum(n.args[0], [])
    return _scaled(f"({s}).T" if prec < POSTFIX else f"{s}.T", scale, paren=False)


BATCH_SUM = {
    "mul": _s_mul,
    "outer": _s_outer,
    "matmul": _s_matmul,
    "dot": _s_dot,
    "sqnorm": _s_sqnorm,
    "pow": _s_pow,
    "add": _s_add_sub,
    "sub": _s_add_sub,
    "neg": _s_neg,
    "T": _s_transpose,
}


# ----- what a printed form refers to, what is always inline -----

def _refs_broadcasting(p, n):
    elided = rows_elided(n)
    if elided:                                       # 𝟙 vᵀ under + − / **: the library broadcasts v itself
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


# ----- the mean over the batch of a sum: the sum of the means (the value of a batched objective) -----

def _m_add_sub(p, n):
    """mean_b (u ± v) = mean_b u ± v where v is the same for every example (a weight decay beside a
    data term: `x3.sum() / B + x5`, not `(x3.sum() + B * x5) / B`); two batched sides stay one Σ / B."""
    a = n.args
    if n.shape != a[0].shape or n.shape != a[1].shape or (p.batched[a[0]] and p.batched[a[1]]):
        return None
    left, _ = p.bmean(a[0])
    r, pr = p.bmean(a[1])
    if n.op == "add":
        return f"{left} + {r}", ADD
    return f"{left} - {r if pr > ADD else '(' + r + ')'}", ADD


#: op -> (p, n) -> (source, precedence) of mean_b n_b, or None (the generic Σ_b n_b / B): p.bmean.
MEAN = {"add": _m_add_sub, "sub": _m_add_sub}


# ----- a batch sum of the sweep's seed times what every example shares: B · (1/B) · x = x -----

def _unseed_product(p, n):
    factors = factors_of(p, n)
    seeds = [f for f in factors if f.op == "var" and f.attrs[0] == p.seed_name]
    if len(seeds) != 1:
        return None
    rest = [f for f in factors if f is not seeds[0]]
    out = rest[0]
    for f in rest[1:]:
        out = E.mul(out, f)
    return out if out.shape == n.shape else None


def _unseed_sum(p, n):
    a, b = (p.without_seed(x) for x in n.args)
    if a is None or b is None:
        return None
    out = E.add(a, b) if n.op == "add" else E.sub(a, b)
    return out if out.shape == n.shape else None


def _unseed_neg(p, n):
    a = p.without_seed(n.args[0])
    return None if a is None else E.neg(a)


#: op -> (p, n) -> x where n = seed · x (the seed a factor of every term), else None (p.without_seed).
UNSEEDED = {"mul": _unseed_product, "add": _unseed_sum, "sub": _unseed_sum, "neg": _unseed_neg}
