"""Numeric checks of generated modules: gradients against central finite differences, and
`hvp`/`hessian` (when generated) against central differences of the module's own gradient."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .files import load_file
#: Tolerances: symbackprop.tolerances, under the names this module has always exported.
from .tolerances import FD_ATOL as ATOL, FD_ATOL_SECOND as ATOL_SECOND, FD_EPS as EPS, FD_RTOL as RTOL  # noqa: F401
from .tolerances import MODULE_SECOND_ORDER_TOLERANCES as SECOND_ORDER_TOLERANCES
from .tolerances import MODULE_TOLERANCES as TOLERANCES, TINY

#: `hessian` is checked column by column along at most this many basis directions (then random ones).
MAX_BASIS = 20


@dataclass
class GradCheck:
    name: str
    worst: float             # worst relative error over the directions tried
    ok: bool
    note: str = ""           # why it failed where the number cannot say (a wrong shape, an exception)


def load_module(path):
    """Import a generated module from its file path (symbackprop.files.load_file), callable with NumPy arrays."""
    return on_numpy(load_file(path))


#: The functions of a generated module.
FUNCTIONS = ("forward", "value_and_grad", "grad", "hvp", "hessian")


class _OnNumpy:
    """A PyTorch module (`codegen --target torch`) called with NumPy arrays, as the checks call modules:
    arrays go in as tensors (Python numbers as they are), tensors come back as NumPy arrays."""

    def __init__(self, module, torch):
        self.module, self.torch = module, torch

    def __getattr__(self, name):
        value = getattr(self.module, name)
        if name not in FUNCTIONS:
            return value
        return lambda *args, **kwargs: self._back(value(*map(self._to, args),
                                                        **{k: self._to(v) for k, v in kwargs.items()}))

    def _to(self, v):
        if isinstance(v, dict):
            return {k: self._to(x) for k, x in v.items()}
        return self.torch.from_numpy(np.array(v)) if isinstance(v, np.ndarray) else v

    def _back(self, v):
        if isinstance(v, dict):
            return {k: self._back(x) for k, x in v.items()}
        if isinstance(v, tuple):
            return tuple(map(self._back, v))
        return v.detach().cpu().numpy() if isinstance(v, self.torch.Tensor) else v


def on_numpy(module):
    """`module` callable with NumPy arrays: a PyTorch module behind a converting facade, any other as it is
    (NumPy and array-API modules take NumPy arrays themselves)."""
    torch = vars(module).get("torch")
    if torch is None or "np" in vars(module) or not hasattr(torch, "Tensor"):
        return module
    return _OnNumpy(module, torch)


def random_inputs(module, sizes=None, rng=None, positive=()):
    """Random float64 inputs for a generated module; `sizes` maps dim names to ints (others: distinct 2..7)."""
    rng = rng if rng is not None else np.random.default_rng(0)
    sizes = dict(sizes or {})
    free = [d for d in module.DIMS if d not in sizes]
    picks = rng.choice(np.arange(2, 3 + max(6, len(free))), size=len(free), replace=False)
    sizes.update({d: int(p) for d, p in zip(free, picks)})
    out = {}
    for name in module.INPUTS:
        shape = tuple(s if isinstance(s, int) else sizes[s] for s in module.SHAPES[name])
        v = rng.uniform(0.5, 2.0, shape) if name in positive else rng.standard_normal(shape)
        out[name] = float(v) if shape == () else v
    return out


def check_grads(module, shapes=None, *, inputs=None, seed=0, trials=3, directions=2, positive=(), verbose=False):
    """Compare `module.value_and_grad` with central finite differences of `module.forward`.

    `shapes` maps dim names to sizes (default: random distinct sizes); `inputs` fixes the
    point. Returns {input name: GradCheck}; raise nothing, so callers decide.

    >>> import symbackprop.emit as em, symbackprop as sb
    >>> m = em.load_source(em.emit_module(sb.parse_formula("x @ x", {"x": "n"})))
    >>> all(r.ok for r in check_grads(m).values())
    True
    """
    rng = np.random.default_rng(seed)
    step, rtol, atol, same = TOLERANCES.get(getattr(module, "DTYPE", "float64"), TOLERANCES["float64"])
    results = {name: GradCheck(name, 0.0, True) for name in module.WRT}
    for _ in range(trials if inputs is None else 1):
        point = dict(inputs) if inputs is not None else random_inputs(module, shapes, rng, positive)
        value, grads = module.value_and_grad(**point)
        f0 = float(module.forward(**point))
        if not math.isclose(float(value), f0, rel_tol=same, abs_tol=same):
            for r in results.values():
                r.ok, r.worst = False, max(r.worst, abs(float(value) - f0))
        for name in module.WRT:
            x = np.asarray(point[name], dtype=float)
            g = np.asarray(grads[name], dtype=float)
            if g.shape != x.shape:
                results[name].ok, results[name].worst = False, math.inf
                continue
            for _ in range(directions):
                v = rng.standard_normal(x.shape)
                eps = step * max(1.0, float(np.max(np.abs(x))) if x.size else 1.0)
                hi = module.forward(**{**point, name: _like(point[name], x + eps * v)})
                lo = module.forward(**{**point, name: _like(point[name], x - eps * v)})
                numeric = float(hi - lo) / (2 * eps)
                analytic = float(np.vdot(g, v))
                err = abs(numeric - analytic) / max(abs(numeric), abs(analytic), TINY)
                tol = rtol * max(abs(numeric), abs(analytic)) + atol * max(1.0, abs(f0))
                r = results[name]
                r.worst = max(r.worst, err if math.isfinite(err) else math.inf)
                if not (math.isfinite(numeric) and math.isfinite(analytic) and abs(numeric - analytic) <= tol):
                    r.ok = False
    return results


def _like(original, value):
    return float(value) if np.ndim(original) == 0 and not isinstance(original, np.ndarray) else value


def check_second_order(module, shapes=None, *, inputs=None, seed=0, trials=3, directions=2, positive=()):
    """Compare the module's `hvp` and `hessian` (present when generated with codegen --hvp or
    --hessian) with central differences of its own `value_and_grad`.

    `hvp` is tried along random directions, every HVP_WRT variable moved at once; `hessian` along
    basis directions (each column, up to MAX_BASIS of them) and random ones, and must be symmetric.
    Each function is judged against the gradient alone, so a wrong one cannot hide behind the
    other (check the gradient itself with check_grads). Returns {"hvp": {name: GradCheck},
    "hessian": {name: GradCheck}}, holding only the functions the module has; raises nothing.

    >>> import symbackprop.emit as em, symbackprop as sb
    >>> m = em.load_source(em.emit_module(sb.derive("x @ A @ x", {"A": "n,n", "x": "n"}), wrt=["x"], hessian=True, hvp=True))
    >>> {f: all(r.ok for r in rs.values()) for f, rs in check_second_order(m).items()}
    {'hvp': True, 'hessian': True}
    """
    rng = np.random.default_rng(seed)
    tol = SECOND_ORDER_TOLERANCES.get(getattr(module, "DTYPE", "float64"), SECOND_ORDER_TOLERANCES["float64"])
    out = {}
    if callable(getattr(module, "hvp", None)):
        out["hvp"] = {name: GradCheck(name, 0.0, True) for name in module.HVP_WRT}
    if callable(getattr(module, "hessian", None)):
        out["hessian"] = {module.HESSIAN_WRT: GradCheck(module.HESSIAN_WRT, 0.0, True)}
    if not out:
        return out
    for _ in range(trials if inputs is None else 1):
        point = dict(inputs) if inputs is not None else random_inputs(module, shapes, rng, positive)
        grads = module.value_and_grad(**point)[1]
        if "hvp" in out:
            _check_hvp(module, point, grads, out["hvp"], rng, directions, tol)
        if "hessian" in out:
            _check_hessian(module, point, grads, out["hessian"][module.HESSIAN_WRT], rng, directions, tol)
    return out


def _check_hvp(module, point, grads, results, rng, directions, tol):
    names = list(module.HVP_WRT)
    for _ in range(directions):
        direction = {n: _like(point[n], rng.standard_normal(np.shape(point[n]))) for n in names}
        want = _fd_gradient(module, point, direction, tol[0])
        try:
            got = module.hvp(direction if len(names) > 1 else direction[names[0]], **point)
        except Exception as e:                       # a broken module: report it, do not crash the checker
            _fail(results.values(), f"raised {type(e).__name__}: {e}")
            return
        got = got if len(names) > 1 else {names[0]: got}
        for n in names:
            if not isinstance(got, dict) or n not in got:
                _fail([results[n]], f"returned no entry for {n}")
                continue
            _compare(results[n], got[n], want[n], grads.get(n), tol)


def _check_hessian(module, point, grads, result, rng, directions, tol):
    name = module.HESSIAN_WRT
    x = np.asarray(point[name], dtype=float)
    try:
        H = np.asarray(module.hessian(**point), dtype=float)
    except Exception as e:
        _fail([result], f"raised {type(e).__name__}: {e}")
        return
    if H.shape != x.shape * 2:
        _fail([result], f"returned shape {H.shape}, expected {x.shape * 2}")
        return
    g = grads.get(name)
    if H.ndim == 2:
        size = float(np.max(np.abs(H))) if H.size else 0.0
        asym = float(np.max(np.abs(H - H.T))) if H.size else 0.0
        if not asym <= tol[1] * size + tol[2] * max(1.0, _maxabs(g)):
            result.worst = max(result.worst, asym / max(size, TINY) if math.isfinite(asym) else math.inf)
            result.ok, result.note = False, result.note or "not symmetric"
    basis = [np.eye(1, x.size, i).reshape(x.shape) for i in sorted(rng.permutation(x.size)[:MAX_BASIS])]
    for v in basis + [rng.standard_normal(x.shape) for _ in range(directions)]:
        want = _fd_gradient(module, point, {name: _like(point[name], v)}, tol[0])[name]
        _compare(result, H @ v if H.ndim == 2 else H * v, want, g, tol)


def _fd_gradient(module, point, direction, step=EPS):
    """Central differences of module's gradient along `direction` ({name: array}), every name moved at once."""
    scale = max([1.0] + [_maxabs(point[n]) for n in direction])
    eps = step * scale
    hi = {**point, **{n: _like(point[n], np.asarray(point[n], float) + eps * np.asarray(d)) for n, d in direction.items()}}
    lo = {**point, **{n: _like(point[n], np.asarray(point[n], float) - eps * np.asarray(d)) for n, d in direction.items()}}
    gh, gl = module.value_and_grad(**hi)[1], module.value_and_grad(**lo)[1]
    return {n: (np.asarray(gh[n], float) - np.asarray(gl[n], float)) / (2 * eps) for n in direction}


def _compare(result, got, want, g, tol=(EPS, RTOL, ATOL_SECOND)):
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    if got.shape != want.shape:
        _fail([result], f"returned shape {got.shape}, expected {want.shape}")
        return
    err = float(np.max(np.abs(got - want))) if got.size else 0.0
    size = max(_maxabs(got), _maxabs(want))
    result.worst = max(result.worst, err / max(size, TINY) if math.isfinite(err) else math.inf)
    if not (math.isfinite(err) and err <= tol[1] * size + tol[2] * max(1.0, _maxabs(g))):
        result.ok = False


def _fail(results, note):
    for r in results:
        r.ok, r.worst, r.note = False, math.inf, r.note or note


def _maxabs(a) -> float:
    a = np.asarray(a if a is not None else 0.0, dtype=float)
    return float(np.max(np.abs(a))) if a.size else 0.0


def report(results) -> str:
    return "\n".join(f"  {r.name:<12} worst relative error {r.worst:.1e}  {'ok' if r.ok else 'MISMATCH'}"
                     + (f" ({r.note})" if r.note else "") for r in results.values())
