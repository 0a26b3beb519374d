"""Numbers: evaluate expressions with NumPy, draw random points, and check
gradients against central finite differences."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import sympy

from .expr import RULES, Node, walk
from .printing import expand_macros
from .tolerances import FD_ATOL, FD_EPS, FD_MAX_CONDITION, FD_RTOL, TINY  # noqa: F401  (FD_*: re-exported, named in tolerances)

#: inv of a matrix worse conditioned than this counts as undefined (the point is not used).
MAX_CONDITION = 1e12


@dataclass
class Point:
    """Concrete sizes for symbolic dims, values for variables, and stand-ins for abstract functions."""

    dims: dict[sympy.Symbol, int]
    values: dict[str, np.ndarray]
    functions: dict[str, "Substitute"] = field(default_factory=dict)


class Substitute:
    """A concrete smooth stand-in for an abstract function, with all its derivatives:
    f(a) = sin(w·a + c) + ½ b (u·a)²; elementwise (one argument) or scalar of several."""

    def __init__(self, rng: np.random.Generator, kind: int = 0):
        self.rng, self.kind = rng, kind
        self.params: dict[int, tuple] = {}

    def _p(self, n):
        if n not in self.params:
            r = self.rng
            self.params[n] = (r.uniform(0.6, 1.4, n) * r.choice([-1, 1], n), r.uniform(-1, 1),
                              r.uniform(-1, 1, n), r.uniform(0.2, 0.8))
        return self.params[n]

    def __call__(self, args, partials):
        if not isinstance(args, tuple):             # elementwise: (x, order)
            x, order = args, partials
            w, c, u, b = self._p(1)
            w, u = w[0], u[0]
            trig = w ** order * np.sin(w * x + c + order * np.pi / 2)
            poly = [0.5 * b * (u * x) ** 2, b * u * u * x, b * u * u][order] if order < 3 else 0.0
            return trig + poly
        w, c, u, b = self._p(len(args))
        k = len(partials)
        s = sum(wi * a for wi, a in zip(w, args))
        t = sum(ui * a for ui, a in zip(u, args))
        trig = np.prod([w[i] for i in partials]) * np.sin(s + c + k * np.pi / 2)
        if k == 0:
            poly = 0.5 * b * t * t
        elif k == 1:
            poly = b * u[partials[0]] * t
        elif k == 2:
            poly = b * u[partials[0]] * u[partials[1]] + 0 * t
        else:
            poly = 0 * t
        return trig + poly


def concrete(shape: tuple, dims: dict) -> tuple:
    return tuple(int(d) if isinstance(d, int) else int(d.subs(dims)) for d in shape)


def evaluate(roots: list[Node], point: Point, overrides: dict[Node, np.ndarray] | None = None) -> list:
    """Values of `roots` at `point`; `overrides` pins chosen nodes to given values."""
    expanded = expand_macros(list(roots))
    memo: dict[Node, object] = dict(overrides or {})
    with np.errstate(all="ignore"):
        for node in walk(expanded):
            if node in memo:
                continue
            memo[node] = _eval_node(node, memo, point)
    return [memo[r] for r in expanded]


def _eval_node(node: Node, memo, point: Point):
    op = node.op
    if op == "var":
        return point.values[node.attrs[0]]
    if op == "const":
        v = node.attrs[0]
        return np.float64(float(v.subs(point.dims) if v.free_symbols else v))
    if op in ("zeros", "ones", "eye"):
        return RULES[op].fn(concrete(node.shape, point.dims))
    args = [memo[a] for a in node.args]
    if op == "phi":
        return point.functions[node.attrs[0]](args[0], node.attrs[1])
    if op == "fn":
        return point.functions[node.attrs[0]](tuple(args), node.attrs[1])
    if op == "inv" and _ill_conditioned(args[0]):
        return np.full(concrete(node.shape, point.dims), np.nan)   # numerically singular: not a valid point
    attrs = tuple(int(a.subs(point.dims)) if isinstance(a, sympy.Basic) else a for a in node.attrs)
    try:
        return RULES[op].fn(*args, *attrs)             # attrs: rows' length m, matrix_power's k
    except np.linalg.LinAlgError:                    # inv of a singular matrix: not a valid point
        return np.full(concrete(node.shape, point.dims), np.nan)


def _ill_conditioned(m) -> bool:
    """Numerically singular, or not finite at all (SVD fails on inf and NaN entries)."""
    return not np.all(np.isfinite(m)) or np.linalg.cond(m) > MAX_CONDITION


def random_dims(symbols, rng: np.random.Generator, low: int = 2, high: int = 6) -> dict:
    """Distinct small sizes ≥ 2 for symbolic dims, so square-only or symmetric-only mistakes show."""
    symbols = list(symbols)
    pool = list(range(low, max(high, low + len(symbols)) + 1))
    picks = rng.choice(pool, size=len(symbols), replace=False) if symbols else []
    return {s: int(p) for s, p in zip(symbols, picks)}


def random_point(program, rng: np.random.Generator, scheme: int = 0, dims=None) -> Point:
    """Random values for the program's variables. scheme 0: normal; 1: positive; 2: well-conditioned."""
    dims = dims if dims is not None else random_dims(program.dims, rng)
    values = {}
    for name, node in program.variables.items():
        shape = concrete(node.shape, dims)
        if scheme == 1:
            v = rng.uniform(0.5, 2.0, shape)
        else:
            v = rng.standard_normal(shape)
            if scheme == 2 and len(shape) == 2 and shape[0] == shape[1]:
                v = v + shape[0] * np.eye(shape[0])
        values[name] = np.asarray(v, dtype=float)
    functions = {n: Substitute(rng) for n in tuple(program.elementwise) + tuple(program.functions)}
    return Point(dims, values, functions)


def finite(x) -> bool:
    return bool(np.all(np.isfinite(x)))


def find_point(program, rng, roots, dims=None):
    """A random point where every root evaluates finite, and where finite differences can resolve the roots:
    the argument of every op whose domain is `well_conditioned` (inv, det, logdet, pinv) has a condition
    number at most FD_MAX_CONDITION. Where none of the draws is that well conditioned, the best-conditioned
    finite one; (None, None) if no draw is finite. Returns (point, values of the roots)."""
    roots = list(roots)
    guarded = conditioning_guards(roots)
    best = None
    for attempt in range(9):
        point = random_point(program, rng, scheme=attempt % 3, dims=dims)
        vals = evaluate(roots + guarded, point)
        if all(finite(v) for v in vals[:len(roots)]):
            cond = worst_condition(vals[len(roots):])
            if cond <= FD_MAX_CONDITION:
                return point, vals[:len(roots)]
            if best is None or cond < best[0]:
                best = (cond, point, vals[:len(roots)])
    return (best[1], best[2]) if best is not None else (None, None)


def conditioning_guards(roots: list[Node]) -> list[Node]:
    """The matrix arguments of the ops in `roots` whose domain is `well_conditioned` (read off the rule table)."""
    return [n.args[0] for n in walk(expand_macros(list(roots)))
            if RULES[n.op].domain == "well_conditioned" and n.args and len(n.args[0].shape) == 2]


def worst_condition(matrices) -> float:
    """The largest condition number among `matrices` (inf for one that is not finite); 1 for none."""
    worst = 1.0
    for m in matrices:
        m = np.asarray(m, dtype=float)
        if m.ndim != 2:
            continue
        if not np.all(np.isfinite(m)):
            return math.inf
        with np.errstate(all="ignore"):
            c = float(np.linalg.cond(m))
        worst = max(worst, c if math.isfinite(c) else math.inf)
    return worst


@dataclass
class FDResult:
    name: str
    analytic: float
    numeric: float
    ok: bool

    @property
    def error(self) -> float:
        return abs(self.analytic - self.numeric) / max(abs(self.analytic), abs(self.numeric), TINY)


def directional_check(objective: Node, wrt, grad, point: Point, rng, base_value=None) -> FDResult:
    """Compare ⟨grad, v⟩ with the central difference of the objective along a random v.

    `wrt` and `grad` are one node each, or equal-length lists (a joint direction in all of them)."""
    wrts = list(wrt) if isinstance(wrt, (list, tuple)) else [wrt]
    grads = list(grad) if isinstance(grad, (list, tuple)) else [grad]
    vals = evaluate(grads + wrts, point)
    g_vals, x_vals = vals[:len(grads)], [np.asarray(x, dtype=float) for x in vals[len(grads):]]
    vs = [rng.standard_normal(x.shape) for x in x_vals]
    scale = max([1.0] + [float(np.max(np.abs(x))) for x in x_vals if x.size])
    eps = FD_EPS * scale
    hi, = evaluate([objective], point, {w: x + eps * v for w, x, v in zip(wrts, x_vals, vs)})
    lo, = evaluate([objective], point, {w: x - eps * v for w, x, v in zip(wrts, x_vals, vs)})
    numeric = float((hi - lo) / (2 * eps))
    analytic = float(sum(np.vdot(np.broadcast_to(g, x.shape), v) for g, x, v in zip(g_vals, x_vals, vs)))
    f0 = base_value if base_value is not None else evaluate([objective], point)[0]
    tol = FD_RTOL * max(abs(numeric), abs(analytic)) + FD_ATOL * max(1.0, abs(float(f0)))
    ok = math.isfinite(numeric) and math.isfinite(analytic) and abs(numeric - analytic) <= tol
    return FDResult(", ".join(_label(w) for w in wrts), analytic, numeric, ok)


def _label(node: Node) -> str:
    return node.attrs[0] if node.op == "var" else node.op
