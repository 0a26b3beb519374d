"""Handout part (e), measured: the gradient of the two-layer loss w.r.t. W1 by finite differences
against the generated analytic gradient, as d grows. Prints times, flop counts and ratios; plots a PNG.

    python bench/fd_vs_analytic.py                       # d = 4 .. 128, docs/img/fd_vs_analytic.png
    python bench/fd_vs_analytic.py --sizes 4,8 --repeats 1 --out /tmp/fd.png   # smoke run
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from symbackprop.testing import load_module  # noqa: E402

M = load_module(ROOT / "generated/mlp_relu.py")


def fd_grad_W1(p, eps=1e-6):
    """One-sided differences, one entry at a time: d² forward passes of O(d²) each."""
    W1 = p["W1"].copy()
    f0 = M.forward(**p)
    g = np.empty_like(W1)
    for i in range(W1.shape[0]):
        for j in range(W1.shape[1]):
            old = W1[i, j]
            W1[i, j] = old + eps
            g[i, j] = (M.forward(**{**p, "W1": W1}) - f0) / eps
            W1[i, j] = old
    return g


def flops(d):
    forward = 2 * d * d + d + d + 2 * d * d + d + 2 * d      # W1x+b, relu, W2x2, -y, ‖·‖²
    analytic = forward + 2 * d * d + d + d * d                # + W2ᵀx4, mask, outer for ∂/∂W1
    fd = (d * d + 1) * forward
    return fd, analytic


def timed(fn, repeats):
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="4,8,16,32,64,128")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=str(ROOT / "docs/img/fd_vs_analytic.png"))
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    rng = np.random.default_rng(0)
    print(f"load average {os.getloadavg()}")
    print(f"{'d':>5} {'FD s':>10} {'analytic s':>11} {'ratio':>9} {'FD flops':>12} {'analytic flops':>15}")
    rows = []
    for d in sizes:
        p = {k: rng.standard_normal(s) for k, s in
             dict(W1=(d, d), W2=(d, d), x=(d,), b=(d,), y=(d,)).items()}
        fd_t, an_t = [], []
        for _ in range(args.repeats):                 # interleaved repeats
            fd_t.append(timed(lambda: fd_grad_W1(p), 1))
            an_t.append(timed(lambda: M.value_and_grad(**p), 1))
        g_fd, g_an = fd_grad_W1(p), M.value_and_grad(**p)[1]["W1"]
        assert np.allclose(g_fd, g_an, atol=1e-4 * max(1, np.abs(g_an).max())), "FD and analytic disagree"
        f_fd, f_an = flops(d)
        a, b = statistics.median(fd_t), statistics.median(an_t)
        rows.append((d, a, b, f_fd, f_an))
        print(f"{d:>5} {a:>10.3e} {b:>11.3e} {a / b:>9.1f} {f_fd:>12.3e} {f_an:>15.3e}")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ds = [r[0] for r in rows]
    ax1.loglog(ds, [r[1] for r in rows], "o-", label="finite differences")
    ax1.loglog(ds, [r[2] for r in rows], "s-", label="generated analytic")
    ax1.set_xlabel("d"), ax1.set_ylabel("seconds (median)"), ax1.set_title("time for ∂ℓ/∂W1"), ax1.legend()
    ax2.loglog(ds, [r[3] for r in rows], "o-", label="finite differences  O(d⁴)")
    ax2.loglog(ds, [r[4] for r in rows], "s-", label="analytic  O(d²)")
    ax2.set_xlabel("d"), ax2.set_ylabel("flops"), ax2.set_title("floating-point operations"), ax2.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
