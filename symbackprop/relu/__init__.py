"""The course's ReLU-net exercise, trained on generated gradients: runs, snapshots, pictures, summary.

Notebook use:

    >>> from symbackprop.relu import experiment
    >>> ex = experiment(widths=[10], modes=["all", "ridge"], steps=300, every=100, progress=False)
    >>> [r.label for r in ex.runs]
    ['all w=10 sgd lr=0.02', 'ridge w=10 λ=1e-07']
    >>> figs = ex.figures()          # {name: matplotlib Figure}
    >>> sorted(figs)
    ['comparison', 'elbows', 'fit', 'mse', 'slopes']
    >>> import matplotlib.pyplot as plt; plt.get_fignums()   # made without pyplot: nothing to close
    []
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import SymbackpropError
from .problem import Problem, init_params, make_problem, predict, target_function
from .train import MODES_ALL, OPTIMIZERS, RIDGE_LAMBDA, Run, train

__all__ = ["experiment", "Experiment", "Run", "train", "make_problem", "init_params", "predict",
           "target_function", "Problem"]


@dataclass
class Experiment:
    """Every run of one command (widths × modes × optimizers), on one data set."""

    problem: Problem
    runs: list
    seconds: float = 0.0
    options: dict = field(default_factory=dict)

    def get(self, mode="all", width=None, optimizer=None) -> Run:
        for r in self.runs:
            if r.mode == mode and (width is None or r.width == width) and \
                    (optimizer is None or r.optimizer == optimizer or mode == "ridge"):
                return r
        raise KeyError((mode, width, optimizer))

    @property
    def main(self) -> Run:
        """The run the single-run pictures show: the widest trained net (all layers if present)."""
        trained = [r for r in self.runs if r.mode != "ridge"] or self.runs
        trained.sort(key=lambda r: (r.mode != "all", -r.width))
        return trained[0]

    def figures(self, run: Run | None = None) -> dict:
        """{name: Figure}: fit, elbows, slopes (of `run`, default `main`), mse, comparison, seeds."""
        from . import plots
        run = run or self.main
        figs = {"fit": plots.plot_fit(run), "mse": plots.plot_mse(self.runs)}
        if run.mode != "ridge":
            figs["elbows"] = plots.plot_elbows(run)
            figs["slopes"] = plots.plot_slopes(run)
        if len(self.runs) > 1:
            figs["comparison"] = plots.plot_comparison([r for r in self.runs])
        if self.runs[0].n_seeds:
            figs["seeds"] = plots.plot_seed_study(self.runs)
        return figs

    def save(self, out, gif=True, frames=None) -> list:
        """Write every figure as out/relu_<name>.png (and relu_fit.gif); returns the paths."""
        from . import plots
        os.makedirs(out, exist_ok=True)
        paths = []
        for name, fig in self.figures().items():
            p = os.path.join(out, f"relu_{name}.png")
            plots.save(fig, p)
            paths.append(p)
        if gif and self.main.mode != "ridge":
            p = os.path.join(out, "relu_fit.gif")
            plots.save_gif(self.main, p, frames=frames or plots.GIF_FRAMES)
            paths.append(p)
        return paths

    def summary(self) -> str:
        """One screen of text: final MSE per run, elbows inside [0, 1], time."""
        lines = [f"target {self.problem.target}, {len(self.problem.x_train)} training points "
                 f"(noise σ={self.problem.noise:g}), seed {self.problem.seed}"]
        backend = self.options.get("backend", "numpy")
        if backend != "numpy":
            lines[0] += f", backend {backend}"
        seeds = self.runs[0].n_seeds
        if seeds:
            lines.append(f"{seeds} seeds per configuration, stacked: test MSE median [25th, 75th percentile]")
            head = f"{'mode':7} {'width':>5} {'optimizer':9} {'lr':>6} {'steps':>8} " \
                   f"{'test MSE median [quartiles]':>32} {'elbows in [0,1]':>15} {'time':>7}"
        else:
            head = f"{'mode':7} {'width':>5} {'optimizer':9} {'lr':>6} {'steps':>8} {'train MSE':>10} " \
                   f"{'test MSE':>10} {'elbows in [0,1]':>15} {'time':>7}"
        lines += [head, "-" * len(head)]
        for r in self.runs:
            opt, lr = (f"λ={r.ridge_lambda:g}", "") if r.mode == "ridge" else (r.optimizer, f"{r.lr:g}")
            p = r.final
            with np.errstate(divide="ignore", invalid="ignore"):
                e = -p["b"] / p["w"]
            inside = np.sum((e >= 0) & (e <= 1), axis=-1)
            if seeds:
                q = np.percentile(r.test_mse[-1], [25, 50, 75])
                mse = f"{q[1]:.4f} [{q[0]:.4f}, {q[2]:.4f}]"
                lines.append(f"{r.mode:7} {r.width:>5} {opt:9} {lr:>6} {r.steps[-1]:>8,} {mse:>32} "
                             f"{np.median(inside):>8g}/{r.width:<6} {r.seconds:>6.1f}s")
            else:
                lines.append(f"{r.mode:7} {r.width:>5} {opt:9} {lr:>6} {r.steps[-1]:>8,} {r.train_mse[-1]:>10.4f} "
                             f"{r.test_mse[-1]:>10.4f} {int(inside):>8}/{r.width:<6} {r.seconds:>6.1f}s")
        steps = sum(int(r.steps[-1]) * (r.n_seeds or 1) for r in self.runs)
        compiling = sum(r.compile_seconds for r in self.runs)
        lines.append(f"total {self.seconds:.1f}s for {steps:,} SGD steps"
                     + (f" ({self.seconds / steps * 1e6:.1f} µs a step)" if steps else "")
                     + (f"; of which {compiling:.1f}s compiling" if compiling else ""))
        return "\n".join(lines)


def experiment(widths=(10, 20, 40), modes=("all", "output", "ridge"), optimizers=("sgd",), *, steps=150_000,
               lr=None, batch=40, every=1000, seed=0, seeds=None, target="notebook", ridge_lambda=RIDGE_LAMBDA,
               progress=True, backend="numpy") -> Experiment:
    """Train every (width, mode, optimizer) on the notebook's data; `seeds`=N stacks N nets per configuration;
    `backend` "jax" or "torch" trains with the array-API module on that library (relu.backends).

    Ridge and output-only runs start from the same initial hidden layer as the other modes of their width."""
    for m in modes:
        if m not in MODES_ALL:
            raise SymbackpropError(f"unknown mode {m!r}", hint="choose from " + ", ".join(MODES_ALL))
    for o in optimizers:
        if o not in OPTIMIZERS:
            raise SymbackpropError(f"unknown optimizer {o!r}", hint="choose from " + ", ".join(OPTIMIZERS))
    if seeds is not None and seeds < 1:
        raise SymbackpropError("--seeds must be at least 1")
    if backend != "numpy":
        from .backends import load
        load(backend)                                 # a missing library fails before any training
    problem = make_problem(target, seed=seed)
    configs = [(w, m, o) for w in widths for m in modes for o in (optimizers if m != "ridge" else (optimizers[0],))]
    total = steps * (seeds or 1) * sum(m != "ridge" for _, m, _ in configs)
    bar = None
    if progress:
        from ..errors import require_extra
        require_extra("relu", ["tqdm"], "the progress bar")
        from tqdm.auto import tqdm
        bar = tqdm(total=total, unit="step", unit_scale=True, smoothing=0.1, dynamic_ncols=True)
    t0 = time.perf_counter()
    runs = []
    try:
        for w, m, o in configs:
            if bar is not None:
                bar.set_description(f"{m} w={w} {o}" if m != "ridge" else f"ridge w={w}")
            r = train(problem, w, m, optimizer=o, lr=lr, steps=steps, batch=batch, every=every, seed=seed,
                      seeds=seeds, ridge_lambda=ridge_lambda, progress=bar, backend=backend)
            runs.append(r)
    finally:
        if bar is not None:
            bar.close()
    return Experiment(problem, runs, time.perf_counter() - t0,
                      dict(widths=list(widths), modes=list(modes), optimizers=list(optimizers), steps=steps,
                           lr=lr, batch=batch, every=every, seed=seed, seeds=seeds, target=target,
                           ridge_lambda=ridge_lambda, backend=backend))
