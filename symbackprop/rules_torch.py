"""PyTorch printing rules: the templates and spelling of `codegen --target torch`.

The PyTorch module imports torch and nothing else, and calls PyTorch's own functions: `torch.relu`,
`torch.softmax(z, dim=-1)`, `torch.logsumexp`, `torch.special.erf`, `x.mT`, reductions over `dim=`,
and a relu' mask multiplied into a float product, as hand-written PyTorch does. It prints the same
planned bodies as the array-API target (printer_torch subclasses printer_array_api), so these tables
are the array-API ones with PyTorch's spelling where it differs; an operator added to the array-API
TEMPLATES prints here too, and the tests run every operator on PyTorch against the NumPy target.

- `TEMPLATES[op]`: the operator's printed form (`{xp}` is `torch`);
- `SPELLING[word]`: the words of rules_forms (rules_array_api's, with dim= and PyTorch's names);
- `FORMS[op](p, n)`, `BATCHED[op](p, n)`: rules_array_api's own (they spell through SPELLING);
- `MASK[op](p, f)`: a 0/1 factor of a float product, printed as a boolean mask (`z > 0`).

A Python number times a boolean mask alone is a float32 tensor in PyTorch (its default dtype), so a
mask only stays boolean beside a tensor (printer_torch.TorchPrinter.MASK_NEEDS_TENSOR).
"""
from __future__ import annotations

from . import rules_array_api as A
from .expr import Node
from .rules import ATOM, MUL, POSTFIX, Fmt
from .rules_numpy import MASK  # noqa: F401  (the same boolean factor: `(z > 0)`)

# ----- printed forms of the operators: the array-API ones, PyTorch's spelling where it differs -----

TEMPLATES = {
    **A.TEMPLATES,
    "max": Fmt("{xp}.amax({0})"),
    "min": Fmt("{xp}.amin({0})"),
    "trace": Fmt("{xp}.trace({0})"),
    "softmax": Fmt("{xp}.softmax({0}, dim=-1)"),
    "softmax_rows": Fmt("{xp}.softmax({0}, dim=-1)"),
    "logsumexp": Fmt("{xp}.logsumexp({0}, dim=-1)"),
    "logsumexp_rows": Fmt("{xp}.logsumexp({0}, dim=-1)"),
    "maxmask": Fmt("_max_mask({0})"),
    "minmask": Fmt("_max_mask(-{0})", ATOM, (POSTFIX,)),
    "relu": Fmt("{xp}.relu({0})"),
    "step": Fmt("_step({0})"),
    "sigmoid": Fmt("{xp}.sigmoid({0})"),
    "softplus": Fmt("_softplus({0})"),
    "erf": Fmt("{xp}.special.erf({0})"),
}

# ----- the words of rules_forms spelled in PyTorch (p.spell) -----

_VECDOT = Fmt("{xp}.linalg.vecdot({0}, {1})")
_TENSORDOT = Fmt("{xp}.tensordot({0}, {1}, dims=([0, 2], [0, 1]))")
_REDUCE = {"max": "amax", "min": "amin"}


def _reduce(p, x, op, axis):
    return f"{p.xp}.{_REDUCE.get(op, op)}({p.ref(x)[0]}, dim={axis})", ATOM


SPELLING = {
    **A.SPELLING,
    "bi,bi->b": _VECDOT,
    "ij,ij->i": _VECDOT,
    "ij,ji->i": lambda p, P, Q: (f"{p.xp}.linalg.vecdot({p.ref(P)[0]}, {p.transpose(Q)[0]})", ATOM),
    "bij,bj->bi": Fmt("{xp}.linalg.vecdot({0}, {1}[:, None, :])", ATOM, (0, POSTFIX)),
    "bij,bij->b": Fmt("{xp}.sum({0} * {1}, dim=(1, 2))", ATOM, (MUL + 1, MUL + 1)),
    "b,bij->ij": Fmt("{xp}.tensordot({0}, {1}, dims=1)"),
    "bij,bj->i": _TENSORDOT,
    "bij,bjk->ik": _TENSORDOT,
    "swap_T": Fmt("{0}.mT", POSTFIX, (POSTFIX,)),
    "reduce": _reduce,
    "norm": Fmt("{xp}.linalg.vector_norm({0}, dim={axis})"),
    "trace": Fmt("{xp}.sum({xp}.diagonal({0}, dim1=-2, dim2=-1), dim=-1)"),
    "max_mask": Fmt("_max_mask({0}, dim={axis})"),
    "min_mask": Fmt("_max_mask(-{0}, dim={axis})", ATOM, (POSTFIX,)),
    "sum0": Fmt("{xp}.sum({0}, dim=0)"),
    "diagonal": Fmt("{xp}.diagonal({0}, dim1=-2, dim2=-1)"),
    "diag_matrix": Fmt("{xp}.diag_embed({0})"),
}


FORMS = A.FORMS
BATCHED = A.BATCHED


def template(op: str, n: Node) -> Fmt:
    """The PyTorch form of `op` (for node n), or an InternalError naming what is missing."""
    return A.lookup(TEMPLATES, op, n, "PyTorch", "symbackprop/rules_torch.py")


# ----- helper functions the printed forms call (copied into a module that uses them) -----

HELPERS = {
    "_max_mask": '''def _max_mask(x, dim=None):
    """The subgradient of max: 1 where x is largest (over dim), split evenly between ties."""
    m = (x == torch.amax(x, dim=dim, keepdim=True)).to(x.dtype)
    return m / torch.sum(m, dim=dim, keepdim=True)''',
    "_step": '''def _step(z):
    """1.0 where z > 0, else 0.0, in z's dtype."""
    return (z > 0).to(z.dtype)''',
    "_softplus": '''def _softplus(z):
    """log(1 + exp(z)) as relu(z) + log1p(exp(-|z|)): accurate for every z, never overflows (PyTorch's own
    softplus returns z itself above a threshold, off by up to 2e-9)."""
    return torch.relu(z) + torch.log1p(torch.exp(-torch.abs(z)))''',
}

#: The dtype conversion of float32 modules.
CAST = '''def _cast(*inputs):
    """The inputs as torch.{dtype} tensors, converted once per call (no copy when they already are)."""
    return tuple(torch.asarray(a, dtype=torch.{dtype}) for a in inputs)'''


def helpers() -> dict[str, str]:
    """Helper name -> source."""
    return dict(HELPERS)
