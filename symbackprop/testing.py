"""Numeric checks of generated modules: gradients against central finite differences."""
from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Tolerances, named once (central differences in float64 along random directions).
EPS = 1e-6
RTOL = 1e-5
ATOL = 1e-8


@dataclass
class GradCheck:
    name: str
    worst: float             # worst relative error over the directions tried
    ok: bool


def load_module(path):
    """Import a generated module from its file path."""
    path = Path(path)
    spec = importlib.util.spec_from_file_location(f"_symbackprop_generated_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


#: Central differences per module DTYPE: float64 as above; float32 modules compute in float32 whatever
#: the inputs, so a wider step and looser tolerances (measured worst 0.3% on the rule-table cases; a
#: wrong gradient is off by far more). dtype -> (step, rtol, atol, value-versus-forward tolerance).
TOLERANCES = {"float64": (EPS, RTOL, ATOL, 1e-12), "float32": (3e-3, 1e-2, 1e-4, 1e-5)}


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
                err = abs(numeric - analytic) / max(abs(numeric), abs(analytic), 1e-12)
                tol = rtol * max(abs(numeric), abs(analytic)) + atol * max(1.0, abs(f0))
                r = results[name]
                r.worst = max(r.worst, err if math.isfinite(err) else math.inf)
                if not (math.isfinite(numeric) and math.isfinite(analytic) and abs(numeric - analytic) <= tol):
                    r.ok = False
    return results


def _like(original, value):
    return float(value) if np.ndim(original) == 0 and not isinstance(original, np.ndarray) else value


def report(results) -> str:
    return "\n".join(f"  {r.name:<12} worst relative error {r.worst:.1e}  {'ok' if r.ok else 'MISMATCH'}"
                     for r in results.values())
