"""An independent reader of symbackprop's printed results, for the round-trip tests.

`derive` prints gradients as plain text (`∂ℓ/∂W1 = (W2ᵀ x4 ⊙ relu'(x1)) xᵀ    [h×d]`, with
`where` bindings and the chain-rule steps) and as LaTeX (`\\frac{\\partial \\ell}{\\partial W_{1}}
&= ...`). This module reads both back and evaluates them with NumPy at a point, so a test
can compare what a reader of the printout would compute with the true gradient.

It is written from the notation, not from symbackprop's code: it imports nothing from
symbackprop (no parser, no printer, no rule table). The notation it reads, loosest binding
first:

    a + b, a − b                 sum, difference (`-` accepted too)
    a·b  a ⊙ b  a/b  a ⊘ b       scalar product (one side a scalar), elementwise product and quotient;
                                 one level, left to right
    A B   uᵀv   u vᵀ            juxtaposition: the matrix product (vectors are columns, vᵀ a row)
    −a                           negation (binds tighter than juxtaposition, as the printer's table says)
    a^b  a²  a³  a⁻²             elementwise power of scalars and vectors; of a square matrix, the matrix
                                 power (X², (Xᵀ)³, ⁻¹ its inverse)
    X^∘2  X^∘(−1)                a matrix's elementwise (Hadamard) power
    Aᵀ  A⁻¹  A⁻ᵀ                 transpose, inverse, transposed inverse
    f(x) f'(x)  ‖x‖  tr det log det diag sum mean softmax logsumexp  𝟙 (ones)  I (identity)
    𝟙ₙ 𝟙_d 𝟙_(m×n) Iₙ I_d        ones and identity of the stated size (bare 𝟙 and I: the size the
                                 context needs, as in W 𝟙)
    max(X) min(X) ∇max(X) ∇min(X)  max(a, b) min(a, b) (elementwise)  matrix_power(X, k)

LaTeX: `+ -`, `\\,` and `\\cdot` (scalar product), `\\odot`, `\\frac{a}{b}`, juxtaposition (matrix
product; of two scalars, their product, as in `\\frac{1}{m n}`), `^{...}`, `^\\top`, `^{-1}`,
`^{\\circ 2}` (Hadamard power), `^{-\\top}`, `\\operatorname{f}\\left(x\\right)`, `\\operatorname{f}'\\left(x\\right)`, `\\det`, `\\log\\det`,
`\\left\\|x\\right\\|`, `\\mathbf{1}`, `\\mathbf{1}_{n}`, `I_{n}`, `\\sqrt{..}`, names `W_{1}`, `\\mathrm{abc}`, `\\alpha`.

Text that does not follow the notation (Python's `*` or `**`, a shape mismatch, a `⁻¹` that
could be an inverse or a reciprocal, 𝟙 of a size the context does not fix) raises ReadError:
a reader could not evaluate it either.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np


class ReadError(ValueError):
    """Printed text that cannot be read unambiguously in the notation above."""


# ----- values -----

@dataclass(frozen=True, eq=False)
class Fill:
    """𝟙 (kind 'ones') or I (kind 'eye') times a scalar, of a size the text leaves to the context.

    A product with 𝟙 keeps what is known: `value · u vᵀ` with u, v columns, None where the
    column is ones of a length still to be fixed (`W 𝟙` = rowsums(W) 𝟙ᵀ, `𝟙 W` = 𝟙 colsums(W)ᵀ)."""

    value: float
    kind: str
    u: object = None
    v: object = None

    @property
    def pure(self) -> bool:
        return self.kind == "eye" or (self.u is None and self.v is None)


def _is_scalar(v) -> bool:
    return not isinstance(v, Fill) and np.ndim(v) == 0


def _ones(n):
    return np.ones((n, 1))


def _materialize(f: Fill, shape: tuple):
    if f.kind == "ones":
        rows, cols = shape
        u = _ones(rows) if f.u is None else f.u
        v = _ones(cols) if f.v is None else f.v
        if u.shape[0] != rows or v.shape[0] != cols:
            raise ReadError(f"a product with 𝟙 of shape {(u.shape[0], v.shape[0])} where {shape} is due")
        return f.value * (u @ v.T)
    if len(shape) != 2 or shape[0] != shape[1]:
        raise ReadError(f"I used where a {shape} array is due")
    return f.value * np.eye(shape[0])


def _settle(x):
    """A product with 𝟙 whose both sides are known, as an array."""
    if isinstance(x, Fill) and x.kind == "ones" and x.u is not None and x.v is not None:
        return x.value * (x.u @ x.v.T)
    return x


def _fit(f: Fill, shape: tuple):
    """f in `shape`; a product with 𝟙 that cannot take it but is 1×? or ?×1 is the scalar uᵀ𝟙 or 𝟙ᵀv."""
    try:
        return _materialize(f, shape)
    except ReadError:
        known = f.u if f.u is not None else f.v
        if f.kind == "ones" and known is not None and known.shape == (1, 1) and (f.u is None or f.v is None):
            return np.float64(f.value * known[0, 0])
        raise


def _ew(op, a, b, what: str, expect=None):
    """Elementwise op: equal shapes, or a scalar on one side; 𝟙 and I take the other side's size
    (or `expect`, the stated shape of the whole, when both sides are 𝟙 of unknown size)."""
    a, b = _settle(a), _settle(b)
    if isinstance(a, Fill) or isinstance(b, Fill):
        if isinstance(a, Fill) and not isinstance(b, Fill) and np.ndim(b) == 2:
            a = _fit(a, np.shape(b))
        elif isinstance(b, Fill) and not isinstance(a, Fill) and np.ndim(a) == 2:
            b = _fit(b, np.shape(a))
        elif expect is not None and isinstance(a, Fill) and isinstance(b, Fill) and not (a.pure and b.pure):
            a, b = _fit(a, expect), _fit(b, expect)
        else:
            fills = [x for x in (a, b) if isinstance(x, Fill)]
            kinds = {x.kind for x in fills}
            sa = a.value if isinstance(a, Fill) else a
            sb = b.value if isinstance(b, Fill) else b
            both = len(fills) == 2
            if not all(x.pure for x in fills):          # s·(u vᵀ): only scaling keeps the form
                f = fills[0]
                if not both and (what in ("⊙", "·") or (what == "/" and isinstance(a, Fill))):
                    return Fill(float(op(sa, sb)), "ones", f.u, f.v)
                raise ReadError(f"{what} of a product with 𝟙 of unknown size")
            if kinds == {"ones"}:
                return Fill(float(op(sa, sb)), "ones")
            if kinds == {"eye"} and (what in ("⊙", "·") or (both and what in ("+", "−")) or
                                     (what == "/" and isinstance(a, Fill) and not both)):
                return Fill(float(op(sa, sb)), "eye")
            raise ReadError(f"{what} of {a} and {b}: the size of 𝟙/I is not fixed by the context")
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.ndim and b.ndim and a.shape != b.shape:
        raise ReadError(f"{what} of shapes {a.shape} and {b.shape}")
    return op(a, b)


class Inner(np.float64):
    """A scalar that a matrix product made of a 1×1 matrix (uᵀv): it may stand next to a row or a column,
    as the 1×1 matrix it is (x1ᵀ x1 uᵀ u is (x1ᵀx1)(uᵀ) u)."""


def _matmul(a, b, latex: bool):
    """Juxtaposition: the matrix product. 𝟙 takes the size the product and its context need."""
    if isinstance(a, Fill) and a.kind == "eye" and not _is_scalar(b):
        return _ew(np.multiply, a.value, b, "·")
    if isinstance(b, Fill) and b.kind == "eye" and not _is_scalar(a):
        return _ew(np.multiply, a, b.value, "·")
    if isinstance(a, Fill) and isinstance(b, Fill):              # (s u1 v1ᵀ)(t u2 v2ᵀ) = s t (v1ᵀu2) u1 v2ᵀ
        if a.v is None and b.u is None:
            raise ReadError("a product of two 𝟙 of unknown size")
        inner = float(np.sum(a.v if b.u is None else b.u if a.v is None else a.v.T @ b.u))
        return _settle(Fill(a.value * b.value * inner, "ones", a.u, b.v))
    if isinstance(a, Fill) and np.ndim(b) == 2:                   # (s u vᵀ) B = s u (Bᵀv)ᵀ
        b = np.asarray(b, dtype=float)
        v = b.sum(axis=0).reshape(-1, 1) if a.v is None else b.T @ a.v
        if a.v is not None and a.v.shape[0] != b.shape[0]:
            raise ReadError(f"matrix product of {a} and shape {b.shape}")
        return _settle(Fill(a.value, "ones", a.u, v))
    if isinstance(b, Fill) and np.ndim(a) == 2:                   # A (s u vᵀ) = s (A u) vᵀ
        a = np.asarray(a, dtype=float)
        u = a.sum(axis=1).reshape(-1, 1) if b.u is None else a @ b.u
        if b.u is not None and b.u.shape[0] != a.shape[1]:
            raise ReadError(f"matrix product of shape {a.shape} and {b}")
        return _settle(Fill(b.value, "ones", u, b.v))
    if isinstance(a, Fill) or isinstance(b, Fill):
        raise ReadError("a matrix product of 𝟙 and a scalar")
    if _is_scalar(a) and _is_scalar(b) and latex:     # \frac{1}{m n}: a product of scalars
        return np.float64(a) * np.float64(b)
    if isinstance(a, Inner) and np.ndim(b) == 2 and np.shape(b)[0] == 1:     # (1×1)(1×n)
        return float(a) * np.asarray(b, dtype=float)
    if isinstance(b, Inner) and np.ndim(a) == 2 and np.shape(a)[1] == 1:     # (n×1)(1×1)
        return np.asarray(a, dtype=float) * float(b)
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.ndim != 2 or b.ndim != 2:
        raise ReadError(f"juxtaposition (matrix product) of shapes {a.shape} and {b.shape}")
    if a.shape[1] != b.shape[0]:
        raise ReadError(f"matrix product of shapes {a.shape} and {b.shape}")
    out = a @ b
    if out.shape == (1, 1) and a.shape[0] == 1 and b.shape[1] == 1:
        return Inner(out[0, 0])                      # uᵀv: a scalar (a 1×1 matrix, next to a row or column)
    return out


def _inverse_or_reciprocal(x):
    if isinstance(x, Fill):
        if x.kind == "eye":
            return Fill(1.0 / x.value, "eye")
        raise ReadError("⁻¹ of 𝟙")
    x = np.asarray(x, dtype=float)
    if x.ndim == 0:
        return 1.0 / x
    if x.ndim == 2 and x.shape[0] == x.shape[1] and x.shape[0] > 1:
        return np.linalg.inv(x)
    return 1.0 / x                                  # a vector or non-square matrix: only a reciprocal makes sense


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _softmax(x):
    e = np.exp(x - np.max(x))
    return e / np.sum(e)


def _logsumexp(x):
    m = np.max(x)
    return np.float64(m + np.log(np.sum(np.exp(x - m))))


#: Elementwise functions and their first derivatives (f'), written here from calculus.
ELEMENTWISE = {
    "relu": (lambda x: np.maximum(x, 0.0), lambda x: (x > 0).astype(float) if np.ndim(x) else float(x > 0)),
    "step": (lambda x: (x > 0).astype(float) if np.ndim(x) else float(x > 0), lambda x: 0.0 * x),
    "sign": (np.sign, lambda x: 0.0 * x),
    "abs": (np.abs, np.sign),
    "sigmoid": (_sigmoid, lambda x: _sigmoid(x) * (1.0 - _sigmoid(x))),
    "tanh": (np.tanh, lambda x: 1.0 - np.tanh(x) ** 2),
    "exp": (np.exp, np.exp),
    "log": (np.log, lambda x: 1.0 / x),
    "sqrt": (np.sqrt, lambda x: 0.5 / np.sqrt(x)),
    "sin": (np.sin, np.cos),
    "cos": (np.cos, lambda x: -np.sin(x)),
    "softplus": (lambda x: np.logaddexp(0.0, x), _sigmoid),
    "tan": (np.tan, lambda x: 1.0 + np.tan(x) ** 2),
    "erf": (np.vectorize(math.erf, otypes=[float]), lambda x: 2.0 / math.sqrt(math.pi) * np.exp(-x * x)),
}


def _extreme_mask(x, sign):
    """∇max(X) (sign 1) or ∇min(X) (sign -1): 1 at the largest (smallest) entry, split between ties."""
    x = sign * require_array(x, "∇max")
    mask = (x == np.max(x)).astype(float)
    return mask / mask.sum()


def _matrix_power(x, k):
    x = require_square(x, "matrix_power")
    if float(k) != int(k):
        raise ReadError(f"matrix_power with exponent {k}")
    return np.linalg.matrix_power(x, int(k))


#: Functions of two arguments.
BINARY_FUNCTIONS = {
    "max": lambda a, b: _ew(np.maximum, a, b, "max"), "min": lambda a, b: _ew(np.minimum, a, b, "min"),
    "matrix_power": _matrix_power,
}


def _column(x, what):
    if isinstance(x, Fill) or np.ndim(x) != 2 or np.shape(x)[1] != 1 or np.shape(x)[0] < 2:
        raise ReadError(f"{what} takes a (column) vector, got {x if isinstance(x, Fill) else np.shape(x)}")
    return np.asarray(x, dtype=float)


def require_square(x, what):
    if isinstance(x, Fill) or np.ndim(x) != 2 or np.shape(x)[0] != np.shape(x)[1]:
        raise ReadError(f"{what} takes a square matrix, got {x if isinstance(x, Fill) else np.shape(x)}")
    return np.asarray(x, dtype=float)


def require_array(x, what):
    if isinstance(x, Fill):
        raise ReadError(f"{what} of 𝟙/I of unknown size")
    if np.ndim(x) == 0 and float(x) == 0.0:          # ‖0‖, sum(0): a zero array of any size
        return np.zeros((1, 1))
    if np.ndim(x) == 0:
        raise ReadError(f"{what} of a scalar")
    return np.asarray(x, dtype=float)


def build_diag(x):
    if isinstance(x, Fill):
        if x.kind == "ones" and x.u is not None and x.v is None:
            return np.diag(x.value * x.u[:, 0])      # diag(A 𝟙): 𝟙 is the vector its left factor sizes
        if not x.pure:
            raise ReadError("diag of a product with 𝟙 of unknown size")
        return Fill(x.value, "eye" if x.kind == "ones" else "ones")
    x = np.asarray(x, dtype=float)
    if x.ndim == 2 and x.shape[1] == 1 and x.shape[0] > 1:
        return np.diag(x[:, 0])
    if x.ndim == 2 and x.shape[0] == x.shape[1]:
        return np.diag(x).reshape(-1, 1)
    raise ReadError(f"diag of shape {x.shape}")


REDUCTIONS = {
    "sum": lambda x: np.float64(np.sum(require_array(x, "sum"))),
    "mean": lambda x: np.float64(np.mean(require_array(x, "mean"))),
    "norm": lambda x: np.float64(np.sqrt(np.sum(require_array(x, "‖·‖") ** 2))),
    "tr": lambda x: np.float64(np.trace(require_square(x, "tr"))),
    "det": lambda x: np.float64(np.linalg.det(require_square(x, "det"))),
    "logdet": lambda x: np.float64(np.linalg.slogdet(require_square(x, "log det"))[1]),
    "diag": build_diag,
    "softmax": lambda x: _softmax(_column(x, "softmax")),
    "logsumexp": lambda x: _logsumexp(_column(x, "logsumexp")),
    "inv": lambda x: np.linalg.inv(require_square(x, "inv")),
    "pinv": lambda x: np.linalg.pinv(require_array(x, "pinv")),
    "max": lambda x: np.float64(np.max(require_array(x, "max"))),
    "min": lambda x: np.float64(np.min(require_array(x, "min"))),
    "∇max": lambda x: _extreme_mask(x, 1.0),
    "∇min": lambda x: _extreme_mask(x, -1.0),
}


def _call(name: str, primes: int, args: list):
    if len(args) == 2 and name in BINARY_FUNCTIONS and not primes:
        return BINARY_FUNCTIONS[name](*args)
    if len(args) != 1:
        raise ReadError(f"{name} with {len(args)} arguments")
    x = args[0]
    if name in ELEMENTWISE:
        if primes > 1:
            raise ReadError(f"{name}{chr(39) * primes}: only first derivatives are read")
        f = ELEMENTWISE[name][primes]
        if isinstance(x, Fill):
            if not (x.kind == "ones" and x.pure):
                raise ReadError(f"{name} of I or of a product with 𝟙")
            return Fill(float(f(np.float64(x.value))), "ones")
        with np.errstate(all="ignore"):
            return f(np.asarray(x, dtype=float)) if np.ndim(x) else np.float64(f(np.float64(x)))
    if primes:
        raise ReadError(f"{name}{chr(39) * primes} is not a known derivative")
    if name in REDUCTIONS:
        return REDUCTIONS[name](x)
    raise ReadError(f"unknown function {name!r}")


# ----- tokens -----

_SUPERSCRIPT = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺", "0123456789-+")
#: Sizes printed as subscripts: 𝟙ₙ, Iₘ (the letters Unicode has as subscripts, and digits).
_SUBSCRIPT = str.maketrans("ₐₑₒₓₕₖₗₘₙₚₛₜᵢⱼᵣᵤᵥ₀₁₂₃₄₅₆₇₈₉", "aeoxhklmnpstijruv0123456789")

_TEXT_TOKENS = re.compile(r"""
    (?P<ws>\s+)
  | (?P<adj>∂[^\s/]*/∂[A-Za-z_][A-Za-z0-9_]*)           # ∂ℓ/∂x1: an adjoint named in the chain-rule steps
  | (?P<logdet>log\ det(?=\())
  | (?P<nabla>∇(?:max|min)(?=\())
  | (?P<sized>[𝟙I])(?P<size>[ₐₑₒₓₕₖₗₘₙₚₛₜᵢⱼᵣᵤᵥ₀₁₂₃₄₅₆₇₈₉]+|_\([^()]*\))
  | (?P<onesub>𝟙)_(?P<onename>[A-Za-z0-9_]+)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<primes>'*)
  | (?P<num>(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)
  | (?P<invt>⁻ᵀ)
  | (?P<sup>[⁻⁺]?[⁰¹²³⁴⁵⁶⁷⁸⁹]+)
  | (?P<hpow>\^∘)
  | (?P<sym>[-+−·⊙⊘/^()‖ᵀ𝟙,])
""", re.VERBOSE)

_SYMBOLS = {"+": "PLUS", "-": "MINUS", "−": "MINUS", "·": "SMUL", "⊙": "HAD", "⊘": "DIV", "/": "DIV",
            "^": "CARET", "(": "LP", ")": "RP", "‖": "BAR", "ᵀ": "T", "𝟙": "ONES", ",": "COMMA"}

_GREEK = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi pi rho sigma tau upsilon "
          "phi chi psi omega Gamma Delta Theta Lambda Xi Pi Sigma Upsilon Phi Psi Omega").split()

_LATEX_TOKENS = re.compile(r"""
    (?P<ws>\s+|\\\ |\\;|\\!)
  | (?P<left>\\left\()
  | (?P<right>\\right\))
  | (?P<nopen>\\left\\\|)
  | (?P<nclose>\\right\\\|)
  | (?P<op>\\operatorname\{(?P<opname>[A-Za-z\\_]+)\}(?P<opprimes>'*))
  | (?P<nablafn>\\nabla\s*\\(?P<nabname>max|min)(?![A-Za-z]))
  | (?P<logdet>\\log\s*\\det)
  | (?P<cmdfn>\\(?:det|log|exp|sin|cos|tanh|tan|max|min)(?![A-Za-z]))
  | (?P<ones>\\mathbf\{1\})(?:_\{(?P<onessize>[^{}]+)\})?
  | (?P<frac>\\frac(?![A-Za-z]))
  | (?P<sqrt>\\sqrt(?:\[(?P<root>[0-9]+)\])?(?![A-Za-z]))
  | (?P<top>\^\\top(?![A-Za-z]))
  | (?P<invtop>\^\{-\\top\})
  | (?P<invsup>\^\{-1\})
  | (?P<hpow>\^\{\\circ(?![A-Za-z]))
  | (?P<smul>\\,|\\cdot(?![A-Za-z]))
  | (?P<had>\\odot(?![A-Za-z]))
  | (?P<mathrm>\\mathrm\{(?P<rm>[A-Za-z]+)\}(?:_\{(?P<rmsub>[A-Za-z0-9,]+)\})?)
  | (?P<greek>\\(?P<gname>[A-Za-z]+)(?:_\{(?P<gsub>[A-Za-z0-9,]+)\})?)
  | (?P<letter>(?P<base>[A-Za-z])(?:_\{(?P<sub>[A-Za-z0-9,]+)\})?)
  | (?P<num>(?:[0-9]+\.?[0-9]*|\.[0-9]+))
  | (?P<sym>[-+/^{}(),])
""", re.VERBOSE)

_LATEX_SYMBOLS = {"+": "PLUS", "-": "MINUS", "/": "DIV", "^": "CARET", "{": "LB", "}": "RB", "(": "LP", ")": "RP",
                  ",": "COMMA"}


def _ident(base: str, sub: str | None) -> str:
    """W_{1} -> W1, x_{hat} -> x_hat, W_{1,a} -> W1_a (the inverse of the usual subscript naming)."""
    if not sub:
        return base
    if sub.isdigit():
        return base + sub
    digits, _, rest = sub.partition(",")
    if rest and digits.isdigit():
        return f"{base}{digits}_{rest}"
    return f"{base}_{sub}"


def tokenize_text(s: str) -> list[tuple]:
    out, i = [], 0
    while i < len(s):
        m = _TEXT_TOKENS.match(s, i)
        if not m:
            raise ReadError(f"unexpected {s[i]!r} at {i} in {s!r}")
        i = m.end()
        if m.group("ws"):
            continue
        if m.group("adj"):
            out.append(("NAME", m.group("adj")))
        elif m.group("logdet"):
            out.append(("FUNC", ("logdet", 0)))
        elif m.group("sized"):
            size = m.group("size")
            size = size[2:-1] if size.startswith("_(") else size.translate(_SUBSCRIPT)
            out.append(("SIZED", ("ones" if m.group("sized") == "𝟙" else "eye", size)))
        elif m.group("onesub"):
            out.append(("SIZED", ("ones", m.group("onename"))))
        elif m.group("nabla"):
            out.append(("FUNC", (m.group("nabla"), 0)))
        elif m.group("name"):
            name, primes = m.group("name"), len(m.group("primes"))
            if s[i:i + 1] == "(":
                out.append(("FUNC", (name, primes)))
            elif primes:
                raise ReadError(f"{name}{chr(39) * primes} without an argument")
            else:
                out.append(("NAME", name))
        elif m.group("num"):
            out.append(("NUM", m.group("num")))
        elif m.group("invt"):
            out.append(("INVT", "⁻ᵀ"))
        elif m.group("sup"):
            out.append(("SUP", int(m.group("sup").translate(_SUPERSCRIPT))))
        elif m.group("hpow"):
            out.append(("HCARET", "^∘"))
        else:
            out.append((_SYMBOLS[m.group("sym")], m.group("sym")))
    return out


def _latex_size(size: str) -> str:
    """The size in \\mathbf{1}_{n} or \\mathbf{1}_{m \\times n}, as text: 'n', 'm×n'."""
    return "×".join(_latex_name(part.strip()) if not part.strip().isdigit() else part.strip()
                    for part in size.split("\\times"))


def tokenize_latex(s: str) -> list[tuple]:
    out, i = [], 0
    while i < len(s):
        m = _LATEX_TOKENS.match(s, i)
        if not m:
            raise ReadError(f"unexpected {s[i:i + 12]!r} at {i} in {s!r}")
        i = m.end()
        if m.group("ws") is not None:
            continue
        if m.group("left"):
            out.append(("LP", "("))
        elif m.group("right"):
            out.append(("RP", ")"))
        elif m.group("nopen"):
            out.append(("NOPEN", "‖"))
        elif m.group("nclose"):
            out.append(("NCLOSE", "‖"))
        elif m.group("op"):
            out.append(("FUNC", (m.group("opname").replace("\\_", "_"), len(m.group("opprimes")))))
        elif m.group("nablafn"):
            out.append(("FUNC", ("∇" + m.group("nabname"), 0)))
        elif m.group("logdet"):
            out.append(("FUNC", ("logdet", 0)))
        elif m.group("cmdfn"):
            out.append(("FUNC", (m.group("cmdfn")[1:], 0)))
        elif m.group("ones"):
            size = m.group("onessize")
            out.append(("SIZED", ("ones", _latex_size(size))) if size else ("ONES", "𝟙"))
        elif m.group("frac"):
            out.append(("FRAC", None))
        elif m.group("sqrt"):
            out.append(("SQRT", int(m.group("root") or 2)))
        elif m.group("top"):
            out.append(("T", "ᵀ"))
        elif m.group("invtop"):
            out.append(("INVT", "⁻ᵀ"))
        elif m.group("invsup"):
            out.append(("SUP", -1))
        elif m.group("hpow"):                       # ^{\circ k}: the group's opening brace is in the token
            out += [("HCARET", "^∘"), ("LB", "{")]
        elif m.group("smul"):
            out.append(("SMUL", "·"))
        elif m.group("had"):
            out.append(("HAD", "⊙"))
        elif m.group("mathrm"):
            out.append(("NAME", _ident(m.group("rm"), m.group("rmsub"))))
        elif m.group("greek"):
            if m.group("gname") not in _GREEK:
                raise ReadError(f"unknown LaTeX command \\{m.group('gname')}")
            out.append(("NAME", _ident(m.group("gname"), m.group("gsub"))))
        elif m.group("letter"):
            out.append(("NAME", _ident(m.group("base"), m.group("sub"))))
        elif m.group("num"):
            out.append(("NUM", m.group("num")))
        else:
            out.append((_LATEX_SYMBOLS[m.group("sym")], m.group("sym")))
    return out


# ----- the parser: tokens -> a small tree of tuples -----

_OPERAND_START = {"NUM", "NAME", "FUNC", "LP", "LB", "NOPEN", "BAR", "ONES", "SIZED", "FRAC", "SQRT"}


class _Parser:
    def __init__(self, tokens, latex: bool):
        self.t, self.i, self.latex, self.norms = tokens, 0, latex, 0

    def peek(self):
        return self.t[self.i][0] if self.i < len(self.t) else None

    def take(self, kind=None):
        if self.i >= len(self.t):
            raise ReadError(f"the text ends where {kind or 'more'} is due")
        tok = self.t[self.i]
        if kind is not None and tok[0] != kind:
            raise ReadError(f"{kind} due, found {tok[1]!r} (token {self.i})")
        self.i += 1
        return tok

    def parse(self):
        tree = self.expr()
        if self.i != len(self.t):
            raise ReadError(f"unexpected {self.t[self.i][1]!r} after a complete expression (token {self.i})")
        return tree

    def expr(self):
        left = self.term()
        while self.peek() in ("PLUS", "MINUS"):
            op = self.take()[0]
            left = ("+" if op == "PLUS" else "−", left, self.term())
        return left

    def term(self):
        left = self.jux()
        while self.peek() in ("SMUL", "HAD", "DIV"):
            op = self.take()[0]
            left = ({"SMUL": "·", "HAD": "⊙", "DIV": "/"}[op], left, self.jux())
        return left

    def jux(self):
        left = self.unary()
        while self.peek() in _OPERAND_START and not (self.peek() == "BAR" and self.norms):
            left = ("@", left, self.power())
        return left

    def unary(self):
        if self.peek() == "MINUS":
            self.take()
            return ("neg", self.unary())
        return self.power()

    def power(self):
        base = self.atom()
        while True:
            k = self.peek()
            if k in ("CARET", "HCARET"):
                self.take()
                base = ("^" if k == "CARET" else "^∘", base, self.exponent())
            elif k == "SUP":
                p = self.take()[1]
                base = ("inv", base) if p == -1 else ("^", base, ("num", float(p)))
            elif k == "INVT":
                self.take()
                base = ("T", ("inv", base))
            elif k == "T":
                self.take()
                base = ("T", base)
            else:
                return base

    def exponent(self):
        if self.latex:
            if self.peek() == "LB":
                self.take()
                e = self.expr()
                self.take("RB")
                return e
            tok = self.take()
            if tok[0] == "NUM" and len(tok[1]) > 1:
                raise ReadError(f"x^{tok[1]} without braces raises only the first digit in TeX")
            if tok[0] not in ("NUM", "NAME"):
                raise ReadError(f"exponent {tok[1]!r}")
            return ("num", float(tok[1])) if tok[0] == "NUM" else ("name", tok[1])
        if self.peek() == "MINUS":                  # x^−1: a signed exponent
            self.take()
            return ("neg", self.exponent())
        e = self.atom()
        while self.peek() == "T":
            self.take()
            e = ("T", e)
        return e

    def group(self):
        self.take("LB")
        e = self.expr()
        self.take("RB")
        return e

    def atom(self):
        kind, val = self.take()
        if kind == "NUM":
            return ("num", float(val))
        if kind == "NAME":
            return ("name", val)
        if kind == "ONES":
            return ("ones",)
        if kind == "SIZED":                         # 𝟙ₙ, I_d, \mathbf{1}_{n}: a size the text states
            return ("sized",) + val
        if kind == "FUNC":
            name, primes = val
            if self.peek() == "LB":                 # \log{\left(2 \right)} (SymPy's LaTeX)
                return ("call", name, primes, [self.group()])
            self.take("LP")
            args = [self.expr()]
            while self.peek() == "COMMA":
                self.take()
                args.append(self.expr())
            self.take("RP")
            return ("call", name, primes, args)
        if kind == "LP":
            e = self.expr()
            self.take("RP")
            return e
        if kind == "LB":
            e = self.expr()
            self.take("RB")
            return e
        if kind == "BAR":                           # ‖ opens here; in juxtaposition position it closes
            self.norms += 1
            e = self.expr()
            self.take("BAR")
            self.norms -= 1
            return ("call", "norm", 0, [e])
        if kind == "NOPEN":
            e = self.expr()
            self.take("NCLOSE")
            return ("call", "norm", 0, [e])
        if kind == "FRAC":
            return ("/", self.group(), self.group())
        if kind == "SQRT":                          # \sqrt{x}, \sqrt[3]{x}
            g = self.group()
            return ("call", "sqrt", 0, [g]) if val == 2 else ("^∘", g, ("num", 1.0 / val))
        raise ReadError(f"an operand is due, found {val!r}")


def parse_text(s: str):
    """A tree for one printed plain-text expression."""
    return _Parser(tokenize_text(s), latex=False).parse()


def parse_latex(s: str):
    """A tree for one printed LaTeX expression."""
    return _Parser(tokenize_latex(s), latex=True).parse()


# ----- evaluation -----

_BINARY = {"+": np.add, "−": np.subtract, "⊙": np.multiply, "·": np.multiply, "/": np.divide}


def evaluate(tree, env: dict, latex: bool = False, shape=None):
    """The value of a tree; env maps names (variables, bindings, dims) to scalars or 2-D arrays
    (vectors as columns), or a Fill (𝟙, I, or a product with 𝟙) that `finalize` sizes. `shape`,
    the stated shape of the whole, sizes the terms of a sum of products with 𝟙."""
    expect = None if not shape else (tuple(shape) if len(shape) == 2 else (shape[0], 1))
    with np.errstate(all="ignore"):
        return _eval(tree, env, latex, expect)


def _sized(kind: str, size: str, env: dict):
    """𝟙ₙ (a column), 𝟙_(m×n) (a matrix) or Iₙ, of the size the text states (dims from `env`)."""
    dims = []
    for part in size.split("×"):
        part = part.strip()
        if part.isdigit():
            dims.append(int(part))
        elif part in env and np.ndim(env[part]) == 0 and not isinstance(env[part], Fill):
            dims.append(int(env[part]))
        else:
            raise ReadError(f"unknown size {part!r} of {'𝟙' if kind == 'ones' else 'I'}")
    if kind == "eye":
        if len(dims) != 1:
            raise ReadError(f"I of size {size}")
        return np.eye(dims[0])
    if len(dims) == 1:
        return np.ones((dims[0], 1))
    if len(dims) != 2:
        raise ReadError(f"𝟙 of size {size}")
    return np.ones(tuple(dims))


def _eval(tree, env, latex, expect=None):
    kind = tree[0]
    if kind == "num":
        return np.float64(tree[1])
    if kind == "name":
        name = tree[1]
        if name in env:
            return env[name]
        if name == "I":
            return Fill(1.0, "eye")
        if name.startswith("I_") and name[2:] in env:          # I_d (LaTeX I_{d}): the identity of size d
            return _sized("eye", name[2:], env)
        if re.fullmatch(r"I[0-9]+", name):                   # LaTeX I_{4}
            return _sized("eye", name[1:], env)
        raise ReadError(f"unknown name {name!r}")
    if kind == "ones":
        return Fill(1.0, "ones")
    if kind == "sized":
        return _sized(tree[1], tree[2], env)
    if kind == "neg":
        v = _eval(tree[1], env, latex, expect)
        return Fill(-v.value, v.kind, v.u, v.v) if isinstance(v, Fill) else -v
    if kind == "T":
        v = _eval(tree[1], env, latex, expect[::-1] if expect else None)
        if isinstance(v, Fill):
            return Fill(v.value, v.kind, v.v, v.u)
        return v if np.ndim(v) == 0 else np.asarray(v).T
    if kind == "inv":
        return _inverse_or_reciprocal(_settle(_eval(tree[1], env, latex)))
    if kind == "call":
        args = [_settle(_eval(a, env, latex)) for a in tree[3]]
        return _call(tree[1], tree[2], args)
    if kind == "@":
        return _matmul(_eval(tree[1], env, latex), _eval(tree[2], env, latex), latex)
    a, b = _eval(tree[1], env, latex, expect), _eval(tree[2], env, latex, expect)
    if kind == "^" and not isinstance(a, Fill) and np.ndim(a) == 2 and a.shape[0] == a.shape[1] > 1:
        return _matrix_power(a, b)                   # X², (Xᵀ)³: a square matrix's power is the matrix power
    if kind in ("^", "^∘"):
        return _ew(np.power, a, b, "^", expect)
    if kind == "·":
        if not (isinstance(a, Fill) or _is_scalar(a) or _is_scalar(b) or isinstance(b, Fill)):
            raise ReadError(f"· between two arrays ({np.shape(a)} and {np.shape(b)}): ⊙ or a product is due")
        return _ew(np.multiply, a, b, "·", expect)
    return _ew(_BINARY[kind], a, b, kind, expect)


def finalize(value, shape: tuple):
    """A value in the shape the printout states ([n] -> (n,), [1×n] a row, [scalar] -> ())."""
    if isinstance(value, Fill) and not shape:
        if value.pure:
            raise ReadError("𝟙 or I where a scalar is due")
        value = _materialize(value, (1, 1))[0, 0]
    if isinstance(value, Fill):
        value = _materialize(value, shape if len(shape) == 2 else (shape[0], 1))
    v = np.asarray(value, dtype=float)
    if v.ndim == 0 and shape and float(v) == 0.0:    # `0` stands for the zero array of the stated shape
        v = np.zeros(shape if len(shape) == 2 else (shape[0], 1))
    if shape == ():
        if v.ndim != 0:
            raise ReadError(f"a scalar is due, the text gives shape {v.shape}")
        return float(v)
    if len(shape) == 1:
        if v.shape != (shape[0], 1):
            raise ReadError(f"a vector of length {shape[0]} is due, the text gives shape {v.shape}")
        return v[:, 0]
    if v.shape != tuple(shape):
        raise ReadError(f"shape {tuple(shape)} is due, the text gives shape {v.shape}")
    return v


def as_env(values: dict, dims: dict) -> dict:
    """Variables (vectors become columns) and dim sizes, as names for `evaluate`."""
    env = {k: np.float64(v) for k, v in dims.items()}
    for k, v in values.items():
        v = np.asarray(v, dtype=float)
        env[k] = v.reshape(-1, 1) if v.ndim == 1 else (np.float64(v) if v.ndim == 0 else v)
    return env


def shape_of(spec: str, dims: dict) -> tuple:
    """'k×h' -> (dims['k'], dims['h']); 'scalar' -> (); '1×n' -> (1, n)."""
    spec = spec.strip()
    if spec == "scalar":
        return ()
    out = []
    for part in spec.split("×"):
        part = part.strip()
        if part.isdigit():
            out.append(int(part))
        elif part in dims:
            out.append(int(dims[part]))
        else:
            raise ReadError(f"unknown size {part!r} in [{spec}]")
    return tuple(out)


# ----- whole printouts -----

@dataclass
class Line:
    """One printed equation: `lhs = part = part ...    [shape]`."""

    lhs: str                 # '∂ℓ/∂W1' or a binding name ('x1', 'z', 'ℓ')
    parts: list              # printed right-hand sides (the chain-rule steps give two: local = expanded)
    shape: str | None        # the bracketed shape, as printed (None in LaTeX)

    @property
    def wrt(self) -> str | None:
        return self.lhs.split("/∂", 1)[1] if self.lhs.startswith("∂") else None


_TEXT_LINE = re.compile(r"^(?P<lhs>\S+) = (?P<rhs>.*?)\s{2,}\[(?P<shape>[^\]]*)\]$")


def read_text(text: str) -> list[Line]:
    """The equations of a plain-text printout (results, `where` bindings, or the chain-rule steps)."""
    out = []
    for raw in text.split("\n"):
        s = raw.strip()
        if not s or s == "where" or s.endswith(":"):
            continue
        m = _TEXT_LINE.match(s)
        if not m:
            raise ReadError(f"not an equation with a shape: {s!r}")
        out.append(Line(m.group("lhs"), m.group("rhs").split(" = "), m.group("shape")))
    return out


_LATEX_GRAD = re.compile(r"^\\frac\{\\partial (?P<obj>[^{}]+)\}\{\\partial (?P<var>.+)\}$")


def _latex_name(s: str) -> str:
    toks = tokenize_latex(s)
    if len(toks) != 1 or toks[0][0] != "NAME":
        raise ReadError(f"not a name: {s!r}")
    return toks[0][1]


def read_latex(latex: str) -> list[Line]:
    """The rows of an `aligned` LaTeX printout, `lhs &= rhs`."""
    body = latex.strip()
    if not (body.startswith("\\begin{aligned}") and body.endswith("\\end{aligned}")):
        raise ReadError("not an aligned environment")
    body = body[len("\\begin{aligned}"):-len("\\end{aligned}")].strip()
    out = []
    for row in body.split(" \\\\\n"):
        lhs, sep, rhs = row.partition(" &= ")
        if not sep:
            raise ReadError(f"not a row `lhs &= rhs`: {row!r}")
        lhs = lhs.strip()
        m = _LATEX_GRAD.match(lhs)
        name = ("∂ℓ/∂" + _latex_name(m.group("var"))) if m else _latex_name(lhs)
        out.append(Line(name, [rhs.strip()], None))
    return out


def evaluate_lines(lines: list[Line], values: dict, dims: dict, latex: bool = False, shapes: dict | None = None):
    """Evaluate the equations, each binding available to the lines after it: bindings (`where`,
    the forward pass) first, in printed order, then the derivatives (∂ℓ/∂…) in printed order.

    Returns {lhs: [value of each part]} in the stated shapes. `shapes` gives lhs -> shape tuple
    where the printout states none (LaTeX)."""
    env = as_env(values, dims)
    out = {}
    for line in sorted(lines, key=lambda l: l.wrt is not None):
        shape = shape_of(line.shape, dims) if line.shape is not None else (shapes or {}).get(line.lhs)
        if shape is None:
            raise ReadError(f"no shape known for {line.lhs}")
        vals = []
        for part in line.parts:
            tree = parse_latex(part) if latex else parse_text(part)
            try:
                vals.append(finalize(evaluate(tree, env, latex, shape), shape))
            except ReadError as e:
                raise ReadError(f"{line.lhs} = {part}: {e}") from None
        out[line.lhs] = vals
        v = vals[-1]
        env[line.lhs] = np.float64(v) if np.ndim(v) == 0 else (
            np.asarray(v).reshape(-1, 1) if np.ndim(v) == 1 else np.asarray(v))
    return out


def close(a, b, rtol=1e-7, atol=1e-9) -> bool:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    scale = max(1.0, float(np.max(np.abs(b), initial=0.0)))
    return a.shape == b.shape and bool(np.all(np.abs(a - b) <= rtol * np.abs(b) + atol * scale))

