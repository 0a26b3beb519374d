"""Training loops for the 1 -> width -> 1 ReLU net, with gradients from the generated module."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import SymbackpropError
from . import gradients
from .problem import Problem, init_params, minibatch_indices, predict

MODES_ALL = ("all", "output", "hidden", "ridge")
OPTIMIZERS = ("sgd", "momentum", "adam")
#: The notebook's learning rates: all layers 0.02, output layer only 0.2; Adam 0.02.
DEFAULT_LR = {"all": 0.02, "hidden": 0.02, "output": 0.2}
ADAM_LR = 0.02
MOMENTUM = 0.9
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8
RIDGE_LAMBDA = 1e-7
PARAMS = ("w", "b", "v", "c")


def default_lr(mode: str, optimizer: str) -> float:
    return ADAM_LR if optimizer == "adam" else DEFAULT_LR.get(mode, 0.0)


@dataclass
class Run:
    """One training run (or a stack of seeds) and its snapshot history.

    `history[name]` has one row per snapshot: shape (K, h) for w, b, v and (K,) for c; with stacked
    seeds a seed axis follows the snapshot axis ((K, S, h), (K, S)). `steps[k]` is the step of snapshot k."""

    mode: str
    width: int
    optimizer: str
    lr: float
    batch: int
    seed: int
    problem: Problem
    n_seeds: int | None = None          # None: one net; else the seeds seed..seed+n-1 stacked
    ridge_lambda: float | None = None
    steps: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    history: dict = field(default_factory=dict)
    train_mse: np.ndarray = field(default_factory=lambda: np.zeros(0))
    test_mse: np.ndarray = field(default_factory=lambda: np.zeros(0))
    seconds: float = 0.0
    backend: str = "numpy"
    compile_seconds: float = 0.0       # of `seconds`: compiling the step (jax.jit, torch.compile)

    @property
    def label(self) -> str:
        opt = "" if self.mode == "ridge" else f" {self.optimizer} lr={self.lr:g}"
        lam = f" λ={self.ridge_lambda:g}" if self.mode == "ridge" else ""
        return f"{self.mode} w={self.width}{opt}{lam}"

    def params(self, k: int = -1, seed_index: int | None = None) -> dict:
        """Parameters at snapshot k (the last by default), of one seed when stacked."""
        p = {n: self.history[n][k] for n in PARAMS}
        if self.n_seeds is not None and seed_index is not None:
            p = {n: a[seed_index] for n, a in p.items()}
        return p

    @property
    def final(self) -> dict:
        return self.params(-1)


def _record(run: Run, step: int, theta_views: dict) -> None:
    p = {n: np.array(a, copy=True) for n, a in theta_views.items()}
    for n in PARAMS:
        run.history.setdefault(n, []).append(p[n])
    pr = run.problem
    run.train_mse.append(np.mean((predict(p, pr.x_train) - pr.y_train) ** 2, axis=-1))
    run.test_mse.append(np.mean((predict(p, pr.x_test) - pr.y_test) ** 2, axis=-1))
    run.steps.append(step)


def _finish(run: Run) -> Run:
    run.history = {n: np.array(a) for n, a in run.history.items()}
    run.steps, run.train_mse, run.test_mse = np.array(run.steps), np.array(run.train_mse), np.array(run.test_mse)
    return run


def _flat(width: int, init: dict, n_seeds: int | None):
    """Parameters in one flat array [w, b, v, c] (a leading seed axis when stacked) and views into it."""
    h = width
    theta = np.empty((3 * h + 1,) if n_seeds is None else (n_seeds, 3 * h + 1))
    for i, n in enumerate(("w", "b", "v")):
        theta[..., i * h:(i + 1) * h] = init[n]
    theta[..., 3 * h] = init["c"]
    views = {"w": theta[..., :h], "b": theta[..., h:2 * h], "v": theta[..., 2 * h:3 * h],
             "c": theta[..., 3 * h]}
    if n_seeds is None:
        views["c"] = theta[3 * h:].reshape(())              # a 0-d view, updated in place
    return theta, views


def _slice(width: int, names) -> slice:
    start = {"w": 0, "b": width, "v": 2 * width, "c": 3 * width}
    return slice(start[names[0]], start[names[-1]] + (1 if names[-1] == "c" else width))


def train(problem: Problem, width: int, mode: str = "all", *, optimizer: str = "sgd", lr: float | None = None,
          steps: int = 150_000, batch: int = 40, every: int = 1000, seed: int = 0, seeds: int | None = None,
          ridge_lambda: float = RIDGE_LAMBDA, init: dict | None = None, progress=None,
          grad=None, backend: str = "numpy") -> Run:
    """Train one net (or `seeds` nets stacked, as one computation) and keep a snapshot every `every` steps.

    Gradients come from the generated module for the mode (generated/relu_net.py, relu_net_output.py);
    `grad` (a function like the module's grad(**inputs) -> {name: gradient}) overrides it (benchmarks only). `init` overrides the notebook's initial net.
    `backend` "jax" or "torch" runs the same steps with the array-API module on that library
    (symbackprop.relu.backends): same minibatches, same formulas, so in float64 the same trajectory.

    >>> from symbackprop.relu.problem import make_problem
    >>> run = train(make_problem(), 10, steps=200, every=100)
    >>> run.steps.tolist(), run.history["w"].shape
    ([0, 100, 200], (3, 10))
    """
    if mode not in MODES_ALL:
        raise SymbackpropError(f"unknown mode {mode!r}", hint="one of " + ", ".join(MODES_ALL))
    if optimizer not in OPTIMIZERS:
        raise SymbackpropError(f"unknown optimizer {optimizer!r}", hint="one of " + ", ".join(OPTIMIZERS))
    if width < 1 or batch < 1 or steps < 0 or every < 1:
        raise SymbackpropError("width, batch and every must be positive and steps non-negative")
    lr = default_lr(mode, optimizer) if lr is None else float(lr)
    if backend != "numpy":
        from .backends import load
        if grad is not None:
            raise SymbackpropError("`grad` overrides the NumPy backend's gradient only")
        backend_module = load(backend)
    run = Run(mode, width, optimizer, lr, batch, seed, problem, seeds, ridge_lambda if mode == "ridge" else None,
              steps=[], history={}, train_mse=[], test_mse=[], backend=backend)
    t0 = time.perf_counter()
    if init is None:
        if seeds is None:
            init = init_params(width, seed)
        else:
            nets = [init_params(width, seed + s) for s in range(seeds)]
            init = {n: np.stack([p[n] for p in nets]) for n in PARAMS}
    theta, views = _flat(width, init, seeds)
    if mode == "ridge":
        _ridge(problem, views, ridge_lambda)
        _record(run, 0, views)
        run.seconds = time.perf_counter() - t0
        return _finish(run)

    chunks = [minibatch_indices(seed + s, width, steps, batch, len(problem.x_train), every)
              for s in range(seeds or 1)]
    x, y = problem.x_train, problem.y_train
    if backend != "numpy":
        _record(run, 0, views)
        blocks = (b[0] if seeds is None else np.stack(b, axis=1) for b in zip(*chunks))   # (n, B) or (n, S, B)
        trained = backend_module.run_blocks(mode, gradients.MODES[mode][1], optimizer, lr,
                                            {n: views[n] for n in PARAMS}, blocks, x, y, progress)
        for k, snapshot in enumerate(trained.snapshots):
            _record(run, min((k + 1) * every, steps), snapshot)
        run.compile_seconds = trained.compile_seconds
        run.seconds = time.perf_counter() - t0
        return _finish(run)
    if grad is not None:
        vag, names = grad, gradients.MODES[mode][1]
    else:
        vag, names = gradients.grad_for(mode, seeds=seeds is not None)
    sl = _slice(width, names)
    state = _Optimizer(optimizer, lr, theta[..., sl])
    _record(run, 0, views)
    done = 0
    for blocks in zip(*chunks):
        idx = blocks[0] if seeds is None else np.stack(blocks, axis=1)          # (n, B) or (n, S, B)
        X, Y = x[idx], y[idx]
        if optimizer == "sgd" and seeds is None:
            _sgd_loop(vag, views, names, lr, X, Y)
        else:
            state.loop(vag, views, names, X, Y, theta[..., sl])
        done += len(idx)
        _record(run, done, views)
        if progress is not None:
            progress.update(len(idx) * (seeds or 1))
    run.seconds = time.perf_counter() - t0
    return _finish(run)


def _sgd_loop(vag, views, names, lr, X, Y):
    """Plain SGD, one net: the hot loop (one generated call and two NumPy calls per variable per step)."""
    w, b, v, c = views["w"], views["b"], views["v"], views["c"]
    if names == ("w", "b", "v", "c"):
        for xb, yb in zip(X, Y):
            g = vag(w=w, b=b, v=v, c=c, x=xb, y=yb)
            w -= lr * g["w"]
            b -= lr * g["b"]
            v -= lr * g["v"]
            c -= lr * g["c"]
        return
    targets = [(n, views[n]) for n in names]
    for xb, yb in zip(X, Y):
        g = vag(w=w, b=b, v=v, c=c, x=xb, y=yb)
        for n, p in targets:
            p -= lr * g[n]


class _Optimizer:
    """SGD / momentum 0.9 / Adam on the flat slice of trained parameters (PyTorch's update formulas)."""

    def __init__(self, kind, lr, flat):
        self.kind, self.lr, self.t = kind, lr, 0
        self.m = np.zeros_like(flat)
        self.s = np.zeros_like(flat)
        self.g = np.zeros_like(flat)

    def loop(self, vag, views, names, X, Y, flat):
        w, b, v, c = views["w"], views["b"], views["v"], views["c"]
        g, m, s, lr = self.g, self.m, self.s, self.lr
        cuts, at = [], 0
        for n in names:
            k = 1 if n == "c" else w.shape[-1]
            cuts.append((n, at, None if n == "c" else at + k))
            at += k
        b1, b2 = ADAM_BETAS
        for xb, yb in zip(X, Y):
            grads = vag(w=w, b=b, v=v, c=c, x=xb, y=yb)
            for n, i, j in cuts:
                if j is None:
                    g[..., i] = grads[n]
                else:
                    g[..., i:j] = grads[n]
            if self.kind == "sgd":
                flat -= lr * g
            elif self.kind == "momentum":
                m *= MOMENTUM
                m += g
                flat -= lr * m
            else:
                self.t += 1
                m *= b1
                m += (1 - b1) * g
                s *= b2
                s += (1 - b2) * (g * g)
                step = lr / (1 - b1 ** self.t)
                denom = np.sqrt(s) / np.sqrt(1 - b2 ** self.t) + ADAM_EPS
                flat -= step * (m / denom)


def _ridge(problem: Problem, views: dict, lam: float) -> None:
    """Closed-form ridge regression of the output layer on the initial hidden features:
    minimise mean((relu(x w + b) @ v + c - y)²) + lam·|v|² (c not penalised). Writes v, c in place."""
    x, y = problem.x_train, problem.y_train
    stacked = views["w"].ndim == 2
    for s in range(views["w"].shape[0] if stacked else 1):
        w, b = (views["w"][s], views["b"][s]) if stacked else (views["w"], views["b"])
        phi = np.maximum(np.multiply.outer(x, w) + b, 0.0)
        mu, ybar = phi.mean(0), y.mean()
        pc = phi - mu
        a = pc.T @ pc / len(x) + lam * np.eye(len(w))
        rhs = pc.T @ (y - ybar) / len(x)
        v = np.linalg.lstsq(a, rhs, rcond=None)[0] if lam == 0 else np.linalg.solve(a, rhs)
        c = ybar - mu @ v
        if stacked:
            views["v"][s], views["c"][s] = v, c
        else:
            views["v"][...], views["c"][...] = v, c
