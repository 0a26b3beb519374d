"""The course exercise's data, targets and initial networks (no gradients here)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import FormulaError

#: The notebook's target: piecewise linear through (k/10, sin(12345 k)), k = 0..10.
KNOTS = np.arange(11) / 10.0
HEIGHTS = np.sin(12345.0 * np.arange(11))


def notebook_target(x):
    return np.interp(x, KNOTS, HEIGHTS)


#: Targets by name; anything else is parsed as an expression in x.
TARGETS: dict[str, Callable] = {
    "notebook": notebook_target,
    "sin": lambda x: np.sin(2 * np.pi * x),
    "abs": lambda x: np.abs(2 * x - 1),
    "step": lambda x: (np.asarray(x) > 0.5).astype(float),
}

#: Where each named target has kinks (drawn as guides in the elbow plots).
TARGET_KINKS = {"notebook": KNOTS[1:-1], "abs": np.array([0.5]), "step": np.array([0.5])}


def target_function(spec: str) -> Callable:
    """The target named `spec`, or `spec` parsed as an expression in x (the formula language).

    >>> float(target_function("abs(x - 0.5)")(np.array([0.0]))[0])
    0.5
    """
    if spec in TARGETS:
        return TARGETS[spec]
    import sympy

    from ..evaluate import Point, evaluate
    from ..expr import walk
    from ..parse import Parser

    expr = Parser({"x": "n"}, (), ()).expression(spec)
    others = sorted({n.attrs[0] for n in walk([expr]) if n.op == "var"} - {"x"})
    if others:
        raise FormulaError(f"the target may use only the variable x, not {', '.join(map(str, others))}",
                           source=spec, offset=0, length=len(spec),
                           hint="write it in x, e.g. --target 'sin(6 * x)' or one of " + ", ".join(TARGETS))
    if len(expr.shape) > 1 or (expr.shape and str(expr.shape[0]) != "n"):
        raise FormulaError(f"the target must be a number for each x, not shape {expr.shape}",
                           source=spec, offset=0, length=len(spec))
    n = next((d for d in expr.shape), sympy.Symbol("n"))

    def f(x):
        x = np.atleast_1d(np.asarray(x, dtype=float))
        value = evaluate([expr], Point({n: len(x)}, {"x": x}))[0]
        return np.broadcast_to(np.asarray(value, dtype=float), x.shape).copy()

    f.__name__ = spec
    return f


@dataclass(frozen=True)
class Problem:
    """Training set (noisy) and test set (noiseless: the training x's plus a grid)."""

    target: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    noise: float
    seed: int

    def f(self, x):
        return target_function(self.target)(x)

    @property
    def kinks(self):
        return TARGET_KINKS.get(self.target, np.array([]))


def make_problem(target: str = "notebook", n_train: int = 200, noise: float = 0.1, n_grid: int = 1000,
                 seed: int = 0) -> Problem:
    """The notebook's data: x ~ U[0, 1], y = f(x) + N(0, noise²); test = train x's + linspace(0, 1, n_grid).

    >>> p = make_problem(seed=0); p.x_train.shape, p.x_test.shape
    ((200,), (1200,))
    """
    f = target_function(target)
    rng = np.random.default_rng([seed, 0])
    x = rng.uniform(0.0, 1.0, n_train)
    y = f(x) + rng.normal(0.0, noise, n_train)
    x_test = np.concatenate([x, np.linspace(0.0, 1.0, n_grid)])
    return Problem(target, x, y, x_test, f(x_test), noise, seed)


def init_params(width: int, seed: int = 0) -> dict:
    """The notebook's initial 1 -> width -> 1 ReLU net: w ~ U(-1, 1), elbows sorted U[0, 1], b = -elbow·w,
    output layer U(±1/√width) (PyTorch's nn.Linear default). Same (width, seed), same net, whatever the mode.

    >>> p = init_params(10, seed=1); bool(np.all(np.diff(-p["b"] / p["w"]) >= 0))
    True
    """
    rng = np.random.default_rng([seed, 1, width])
    w = rng.uniform(-1.0, 1.0, width)
    elbows = np.sort(rng.uniform(0.0, 1.0, width))
    bound = 1.0 / np.sqrt(width)
    v = rng.uniform(-bound, bound, width)
    c = rng.uniform(-bound, bound)
    return {"w": w, "b": -elbows * w, "v": v, "c": np.float64(c)}


def minibatch_indices(seed: int, width: int, steps: int, batch: int, n: int, chunk: int):
    """Yield the minibatch indices (drawn with replacement) in blocks of `chunk` steps; reproducible from
    (seed, width), shared by every mode and optimizer."""
    rng = np.random.default_rng([seed, 2, width])
    for start in range(0, steps, chunk):
        yield rng.integers(0, n, size=(min(chunk, steps - start), batch))


def predict(params: dict, x) -> np.ndarray:
    """The net's output at x (forward pass only; gradients come from the generated module)."""
    w, b, v, c = params["w"], params["b"], params["v"], params["c"]
    x = np.asarray(x, dtype=float)
    if np.ndim(w) == 1:
        return np.maximum(np.multiply.outer(x, w) + b, 0.0) @ v + c
    h = np.maximum(x[None, :, None] * w[:, None, :] + b[:, None, :], 0.0)        # stacked seeds: (S, n, h)
    return np.einsum("snh,sh->sn", h, v) + np.asarray(c)[:, None]


def contributions(params: dict, x) -> np.ndarray:
    """Each unit's contribution v_i·relu(w_i x + b_i), shape (len(x), width)."""
    return np.maximum(np.multiply.outer(np.asarray(x, float), params["w"]) + params["b"], 0.0) * params["v"]


def elbows(params: dict) -> np.ndarray:
    """Each unit's breakpoint -b_i/w_i (±inf where w_i = 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.asarray(params["b"]) / np.asarray(params["w"])
