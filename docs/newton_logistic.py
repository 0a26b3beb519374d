"""Newton's method against gradient descent on logistic regression, both on the generated module
generated/logistic_hessian.py (value_and_grad and hessian). Prints the measured comparison quoted
in docs/hessian.md and writes the plot to OUTPUT (default: newton_vs_gd.png in the current folder;
nothing is written into the repository unless asked):

    python docs/newton_logistic.py                                  # ./newton_vs_gd.png
    python docs/newton_logistic.py -o docs/img/newton_vs_gd.png     # the plot in docs/hessian.md
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from symbackprop.testing import load_module  # noqa: E402

M = load_module(ROOT / "generated/logistic_hessian.py")   # mean(softplus(A @ x) - y * (A @ x))
TOL = 1e-8                                                   # stop when ‖∇ℓ‖ < TOL


def data(m=2000, d=50, seed=0):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, d)) * np.logspace(-1, 0.5, d)          # features on different scales
    w = rng.standard_normal(d) / np.sqrt(d) * 3 / np.logspace(-1, 0.5, d)
    y = (rng.random(m) < 1 / (1 + np.exp(-(A @ w)))).astype(float)   # labels drawn from the model: not separable
    return A, y


def newton(A, y, iters=50):
    x, hist = np.zeros(A.shape[1]), []
    for _ in range(iters):
        value, g = M.value_and_grad(A=A, x=x, y=y)
        hist.append((value, np.linalg.norm(g["x"])))
        if hist[-1][1] < TOL:
            break
        x = x - np.linalg.solve(M.hessian(A=A, x=x, y=y), g["x"])
    return x, hist


def gradient_descent(A, y, iters=20000):
    L = np.linalg.eigvalsh(A.T @ A / (4 * A.shape[0]))[-1]            # ∇ℓ is L-Lipschitz (σ' ≤ 1/4)
    x, hist = np.zeros(A.shape[1]), []
    for _ in range(iters):
        value, g = M.value_and_grad(A=A, x=x, y=y)
        hist.append((value, np.linalg.norm(g["x"])))
        if hist[-1][1] < TOL:
            break
        x = x - g["x"] / L
    return x, hist


def timed(fn, *args, repeats=3):
    best = None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn(*args)
        dt = time.perf_counter() - t
        best = dt if best is None else min(best, dt)
    return out, best


def main(argv=None):
    p = argparse.ArgumentParser(description="Newton's method against gradient descent on logistic regression.")
    p.add_argument("-o", "--output", type=Path, default=Path("newton_vs_gd.png"),
                   help="where to write the plot (default: newton_vs_gd.png in the current folder)")
    p.add_argument("--gd-iters", type=int, default=20000, help="cap on gradient-descent iterations (default 20000)")
    args = p.parse_args(argv)
    A, y = data()
    print(f"load average {os.getloadavg()}; m={A.shape[0]}, d={A.shape[1]}, stop at ‖∇ℓ‖ < {TOL:g}")
    (xn, hn), tn = timed(newton, A, y)
    (xg, hg), tg = timed(gradient_descent, A, y, args.gd_iters, repeats=1)
    best = min(h[0] for h in hn + hg)
    print(f"Newton:           {len(hn) - 1:>6} iterations, {tn * 1e3:8.1f} ms, final ‖∇ℓ‖ {hn[-1][1]:.1e}")
    print(f"gradient descent: {len(hg) - 1:>6} iterations, {tg * 1e3:8.1f} ms, final ‖∇ℓ‖ {hg[-1][1]:.1e}")
    print(f"max |x_newton − x_gd| = {np.max(np.abs(xn - xg)):.1e}")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for h, label in ((hn, "Newton (generated hessian)"), (hg, "gradient descent, step 1/L")):
        gap = np.maximum(np.array([v for v, _ in h]) - best, 1e-16)
        ax.semilogy(np.arange(len(h)), gap, marker="o" if len(h) < 30 else None, ms=4, label=label)
    ax.set_xscale("symlog", linthresh=10)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss − best loss")
    ax.set_title(f"Logistic regression, m={A.shape[0]}, d={A.shape[1]}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.output, dpi=110, metadata={"Software": None})
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
