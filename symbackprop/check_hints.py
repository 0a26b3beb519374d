"""Two diagnoses of the claim checker that read the claim as it was written:

- an outer product written as a NumPy inner product (`r @ x.T` for r xᵀ): with both sides vectors, NumPy's
  @ is the inner product, a scalar, and `.T` of a vector does nothing. When the claim with outer(r, x) in
  that place is right, the verdict says so and how to write it.
- a factor that depends on the sizes (1/d, n, 1/(m·n)): claim = c·g(dims)·∂ℓ/∂X, which a constant-factor
  check cannot see because the factor changes with the random sizes.

Each returns the judge's diagnosis tuple (kind, summary, details, factor) or None."""
from __future__ import annotations

import ast
import itertools
from fractions import Fraction

import numpy as np

from .check_support import close, orient_value
from .errors import SymbackpropError
from .parse import PRIME
from .printing import to_text

#: The message of the first diagnosis; {r} and {x} are the two vectors as printed.
INNER_FOR_OUTER = "this is {r}·{x}ᵀ written as a NumPy inner product: use outer({rs}, {xs}) or {r} {x}ᵀ"


# ----- r @ x.T for r xᵀ -----

def _offset(lines: list[str], lineno: int, col: int) -> int:
    """The character offset of an ast position (1-based line, UTF-8 byte column) in the joined lines."""
    before = sum(len(l) + 1 for l in lines[:lineno - 1])
    return before + len(lines[lineno - 1].encode("utf-8")[:col].decode("utf-8", "replace"))


def inner_products_of_vectors(problem, text: str) -> list[tuple[str, str, str]]:
    """Every `u @ v` of the claim's text whose two sides are vectors: (the text with outer(u, v) in its place,
    u's text, v's text without a trailing .T), innermost first. Empty for text that is not NumPy notation."""
    try:
        tree = problem.parser.parse_ast(text, text, 0)
    except SymbackpropError:
        return []
    lines = tree.src_lines
    body = "\n".join(lines)
    out = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult)):
            continue
        segs = []
        for side in (node.left, node.right):
            seg = ast.get_source_segment(body, side)
            if seg is None:
                break
            seg = seg.replace(PRIME, "'")
            try:
                part = problem.parse(seg, what="a part of the claim")
            except SymbackpropError:
                break
            if part.ndim != 1:
                break
            segs.append(seg)
        if len(segs) != 2:
            continue
        u, v = segs
        v_plain = v[:-2].rstrip() if v.endswith(".T") else v
        u_plain = u[:-2].rstrip() if u.endswith(".T") else u
        start = _offset(lines, node.lineno, node.col_offset)
        end = _offset(lines, node.end_lineno, node.end_col_offset)
        fixed = (body[:start] + f"outer({u_plain}, {v_plain})" + body[end:]).replace(PRIME, "'")
        out.append((fixed, u_plain, v_plain))
    out.sort(key=lambda t: len(t[1]) + len(t[2]))
    return out


def inner_for_outer(problem, wrt: str, text: str) -> tuple | None:
    """The diagnosis 'inner-for-outer' when replacing one vector @ vector of the claim by their outer product
    makes it right (or right up to transpose)."""
    if not isinstance(text, str) or "@" not in text or getattr(problem, "_hinting", False):
        return None
    truth = problem.truth(wrt)[0]
    if truth.ndim != 2:
        return None
    problem._hinting = True                         # the fixed claim is checked without these hints
    try:
        for fixed, u, v in inner_products_of_vectors(problem, text):
            try:
                verdict = problem.check(wrt, fixed)
            except SymbackpropError:
                continue
            if verdict.status in ("correct", "transposed"):
                un, vn = problem.parse(u), problem.parse(v)
                r, x = _math(problem, un), _math(problem, vn)
                summary = INNER_FOR_OUTER.format(r=r, x=x, rs=u, xs=v)
                details = [f"with both sides vectors, NumPy's @ is the inner product (a number), and .T of a "
                           f"vector does nothing; with outer({u}, {v}) in its place the claim is "
                           + ("right" if verdict.status == "correct" else "right up to transpose (numerator layout)")]
                return ("inner-for-outer", summary, details, None)
    finally:
        problem._hinting = False
    return None


def _math(problem, node) -> str:
    t = to_text(node, problem.names)
    return f"({t})" if " " in t else t


# ----- a factor that depends on the sizes -----

def _monomials(dims):
    """(text, function of the dims' sizes) for 1/d, d, 1/d², d², 1/(d·h), d·h, d/h over the symbolic dims."""
    names = list(dims)
    out = []
    for d in names:
        s = str(d)
        out += [(f"1/{s}", lambda z, d=d: 1 / z[d]), (s, lambda z, d=d: z[d]),
                (f"1/{s}²", lambda z, d=d: 1 / z[d] ** 2), (f"{s}²", lambda z, d=d: z[d] ** 2)]
    for a, b in itertools.combinations(names, 2):
        sa, sb = str(a), str(b)
        out += [(f"1/({sa}·{sb})", lambda z, a=a, b=b: 1 / (z[a] * z[b])),
                (f"{sa}·{sb}", lambda z, a=a, b=b: z[a] * z[b]),
                (f"{sa}/{sb}", lambda z, a=a, b=b: z[a] / z[b]), (f"{sb}/{sa}", lambda z, a=a, b=b: z[b] / z[a])]
    return out


def _coefficient(text: str, k: float) -> str:
    """c·g as it is written: 1/d, −1/d, 2/d, 1/2·d."""
    f = Fraction(k).limit_denominator(64)
    if abs(float(f) - k) > 1e-9 * max(1.0, abs(k)):
        return f"{k:.6g}·{text}"
    sign = "−" if f < 0 else ""
    f = abs(f)
    if f == 1:
        return sign + text
    if f.denominator == 1 and text.startswith("1/"):
        return f"{sign}{f.numerator}/{text[2:]}"
    return f"{sign}{f}·{text}"


def size_factor(judge, samples, orients) -> tuple | None:
    """claim = c·g(sizes)·∂ℓ/∂X, with a factor that changes with the sizes of the symbolic dims."""
    dims = judge.p.program.dims
    if not dims:
        return None
    for o in orients:
        ks = []
        for s in samples:
            c, t = orient_value(o, s.vals[1]), np.asarray(s.vals[0], dtype=float)
            tt = float(np.vdot(t, t))
            if tt < 1e-20:
                continue
            k = float(np.vdot(np.broadcast_to(c, t.shape), t)) / tt
            if not close(c, k * t):
                break
            ks.append((s.point.dims, k))
        else:
            if len(ks) < max(2, len(samples) // 2):
                continue
            by_size = {}
            for z, k in ks:
                by_size.setdefault(tuple(sorted((str(a), b) for a, b in z.items())), []).append(k)
            if len(by_size) < 2 or any(not np.allclose(v, v[0], rtol=1e-6) for v in by_size.values()):
                continue                                 # one factor per size, and not one for all sizes
            if np.allclose([k for _, k in ks], ks[0][1], rtol=1e-6):
                continue                                 # a constant factor: diagnose_factor's case
            seen = "; ".join(f"{_sizes(z)}: {k:.4g}" for z, k in _first_per_size(ks))
            tr = " and transposed (numerator layout)" if o == "transposed" else ""
            for text, g in _monomials(dims):
                cs = [k / g(z) for z, k in ks]
                if np.allclose(cs, cs[0], rtol=1e-6) and abs(cs[0]) > 1e-12:
                    factor = _coefficient(text, cs[0])
                    return ("size-factor", f"off by a factor that depends on the sizes: {factor} times the "
                                           f"derivative{tr}",
                            [f"claim = {factor} · ∂{judge.obj}/∂{judge.wrt}; the ratio at the sizes tried: {seen}",
                             "a factor that changes with the sizes: a mean where a sum belongs (or the reverse), "
                             "or a size written into the answer"], factor)
            return ("size-factor", f"off by a factor that depends on the sizes{tr}",
                    [f"claim = k · ∂{judge.obj}/∂{judge.wrt}, with k changing with the sizes: {seen}"], None)
    return None


def _sizes(z) -> str:
    return ", ".join(f"{a}={b}" for a, b in z.items())


def _first_per_size(ks):
    seen, out = set(), []
    for z, k in ks:
        key = tuple(sorted((str(a), b) for a, b in z.items()))
        if key not in seen:
            seen.add(key)
            out.append((z, k))
    return out
