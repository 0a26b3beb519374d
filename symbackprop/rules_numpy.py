"""NumPy printing rules: the spelling of `codegen --target numpy`, and the forms only NumPy has.

The forms both targets share are written once in rules_forms (transposes, products, diag(v) @ M
as a broadcast, batch axes, sums over the batch); this module gives them NumPy's spelling
(SPELLING: einsum, np.vdot, array methods such as `.sum(axis=0)`) and adds what is NumPy's own:
np.outer, diag of a batch of matrices, sigmoid(−y) with its
double minus folded, relu' masks as boolean factors of a float product.

The printers (printer_numpy.NumpyPrinter and its subclass BatchedNumpyPrinter) dispatch
generically: `NUMPY[op](p, n)` and `BATCHED[op](p, n)` return (source, precedence) or None
(the next form applies: BATCHED, then NUMPY, then the rule's `np` template); `p` is the
printer (p.ref, p.paren, p.batched, p.spell, …). `MASK[op](p, f)` prints a 0/1 factor of a
float product as a boolean mask. The tables both targets share are rules_forms': `BATCH_SUM[op](p,
n, consts, scale)` prints Σ_b n_b with the sum pushed inside the operator (None: the generic
`.sum(axis=0)`, right for any operator), `REFS[op](p, n)` lists the values the printed form refers
to (default: the arguments), `INLINE[op](n)` says a node is always printed in place.

An operator whose `np` template is wrong with a leading batch axis and that has no BATCHED
entry must not declare `batch_safe`: the batched printer then raises "Batching rule for X not
implemented" instead of printing the unbatched form onto batched arrays.
"""
from __future__ import annotations

from . import rules_forms as F
from .rules import ATOM, MUL, POSTFIX, RULES, Fmt
from .rules_forms import diag_of_outer


def _einsum(sub: str) -> Fmt:
    return Fmt("np.einsum('%s', {0}, {1})" % sub)


#: The words of rules_forms spelled in NumPy (p.spell): `{xp}` is `np`; `{op}` and `{axis}` are given.
SPELLING = {
    **{sub: _einsum(sub) for sub in ("bi,bi->b", "ij,ij->i", "ij,ji->i", "bij,bj->bi", "bij,bij->b",
                                     "b,bij->ij", "bij,bj->i", "bij,bjk->ik")},
    "swap_T": Fmt("np.swapaxes({0}, 1, 2)"),
    "vdot": Fmt("np.vdot({0}, {1})"),
    "vdot_self": Fmt("np.vdot({0}, {0})"),
    "outer": Fmt("np.outer({0}, {1})"),
    "reduce": Fmt("{0}.{op}(axis={axis})", POSTFIX, (POSTFIX,)),
    "norm": Fmt("np.linalg.norm({0}, axis={axis})"),
    "trace": Fmt("np.trace({0}, axis1=1, axis2=2)"),
    "max_mask": Fmt("max_mask({0}, axis={axis})"),
    "min_mask": Fmt("max_mask(-{0}, axis={axis})", ATOM, (POSTFIX,)),
    # 𝟙 vᵀ on its own: a real (writable) array
    "rows": Fmt("np.tile({0}, ({m}, 1))"),
    "rows_b": Fmt("np.repeat({0}[:, None, :], {m}, axis=1)", ATOM, (POSTFIX,)),
    # Σ_b of a batched value: a method call that counts as a product (as it always has: -(x.sum(axis=0)))
    "sum0": Fmt("{0}.sum(axis=0)", MUL, (POSTFIX,)),
    "sum_all": Fmt("{0}.sum()", MUL, (POSTFIX,)),
}


# ----- forms only NumPy has -----

def _outer(p, n):
    u, v = n.args
    bat = p.batched
    if not (bat[u] or bat[v]):
        return f"np.outer({p.ref(u)[0]}, {p.ref(v)[0]})", ATOM
    us = p.paren(u, POSTFIX) + ("[:, :, None]" if bat[u] else "[:, None]")
    vs = p.paren(v, POSTFIX) + ("[:, None, :]" if bat[v] else "")
    return f"{us} * {vs}", MUL


def _sigmoid(p, n):
    """σ(−y) = exp(−logaddexp(0, y)): a negation printed in place folds into the rule's `-{0}` (never `--y`)."""
    x = n.args[0]
    if x.op != "neg" or x in p.name:
        return None                                  # the rule's template, its argument bracketed by precedence
    return f"np.exp(-np.logaddexp(0.0, {p.ref(x.args[0])[0]}))", ATOM


NUMPY = {
    **F.FORMS,
    "outer": _outer,
    "sigmoid": _sigmoid,
}


# ----- forms of the batched printer (arguments with a leading batch axis) -----

def _b_diag(p, n):
    x = n.args[0]
    if diag_of_outer(n) or not p.batched[x]:
        return None
    if x.ndim == 2:
        return f"np.diagonal({p.ref(x)[0]}, axis1=1, axis2=2)", ATOM
    return f"_batched_diag({p.ref(x)[0]})", ATOM


BATCHED = {**F.BATCHED, "diag": _b_diag}

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
