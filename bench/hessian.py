"""Generated hessian() and hvp() against autograd's `hessian` / `make_hvp` and JAX's `jax.hessian` and
forward-over-reverse HVP (jitted and not, float64), on logistic regression and a two-layer tanh net
(Hessian with respect to the input x), at d = 10, 100, 300. Medians of interleaved repeats; every
peer's time is divided by the generated module's, measured in the same run. A peer that is not
installed is skipped. Every peer's answer is compared with the generated one before timing.

    python bench/hessian.py                                   # the issue's sizes
    python bench/hessian.py --sizes 10 --repeats 2 --number 2 # smoke run
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from symbackprop.testing import load_module  # noqa: E402
from timing import interleaved_medians  # noqa: E402  (bench/timing.py)

LOGREG = load_module(ROOT / "generated/logistic_hessian.py")   # mean(softplus(A @ x) - y * (A @ x))
TANH = load_module(ROOT / "generated/tanh_net_hessian.py")     # 0.5 * norm(W2 @ tanh(W1 @ x + b) - y)**2
SIZES = [10, 100, 300]


def problems(d, rng):
    """name -> (generated module, inputs, loss(x, **rest) in array-library terms)."""
    m = 2 * d
    logreg = dict(A=rng.standard_normal((m, d)) / np.sqrt(d), x=rng.standard_normal(d) * 0.1,
                  y=(rng.random(m) > 0.5).astype(float))
    tanh = dict(W2=rng.standard_normal((d, d)) / np.sqrt(d), W1=rng.standard_normal((d, d)) / np.sqrt(d),
                x=rng.standard_normal(d), b=rng.standard_normal(d), y=rng.standard_normal(d))

    def logreg_loss(np_, x, A, y):
        z = A @ x
        return np_.mean(np_.logaddexp(0.0, z) - y * z)

    def tanh_loss(np_, x, W2, W1, b, y):
        r = W2 @ np_.tanh(W1 @ x + b) - y
        return 0.5 * np_.sum(r * r)
    return {"logistic regression": (LOGREG, logreg, logreg_loss), "two-layer tanh net": (TANH, tanh, tanh_loss)}


def peers(module, p, loss, v):
    """label -> (zero-argument callable, what it returns: 'H' or 'Hv'); notes for skipped peers."""
    rest = {k: val for k, val in p.items() if k != "x"}
    out = {"generated hessian": (lambda: module.hessian(**p), "H"),
           "generated hvp": (lambda: module.hvp(v, **p), "Hv")}
    notes = []
    try:
        import autograd
        import autograd.numpy as anp
        f = lambda x: loss(anp, x, **rest)                          # noqa: E731
        H = autograd.hessian(f)
        mk = autograd.make_hvp(f)
        out["autograd hessian"] = (lambda: H(p["x"]), "H")
        out["autograd make_hvp"] = (lambda: mk(p["x"])[0](v), "Hv")
    except ImportError:
        notes.append("autograd not installed: skipped")
    try:
        import jax
        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp
        jrest = {k: jnp.asarray(val) for k, val in rest.items()}
        f = lambda x: loss(jnp, x, **jrest)                         # noqa: E731
        jH = jax.hessian(f)
        jHv = lambda x, u: jax.jvp(jax.grad(f), (x,), (u,))[1]        # noqa: E731
        jHj, jHvj = jax.jit(jH), jax.jit(jHv)
        x, u = jnp.asarray(p["x"]), jnp.asarray(v)
        jax.block_until_ready(jHj(x))
        jax.block_until_ready(jHvj(x, u))
        out["jax.hessian"] = (lambda: jax.block_until_ready(jH(x)), "H")
        out["jax.jit(jax.hessian)"] = (lambda: jax.block_until_ready(jHj(x)), "H")
        out["jax hvp (jvp of grad)"] = (lambda: jax.block_until_ready(jHv(x, u)), "Hv")
        out["jax.jit(hvp)"] = (lambda: jax.block_until_ready(jHvj(x, u)), "Hv")
    except ImportError:
        notes.append("jax not installed: skipped")
    return out, notes


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=SIZES,
                    help="comma-separated d (default 10,100,300)")
    ap.add_argument("--repeats", type=int, default=15, help="interleaved rounds (median reported)")
    ap.add_argument("--number", type=int, default=0, help="calls per timing (default: auto, ~20 ms)")
    args = ap.parse_args(argv)
    print(f"load average {os.getloadavg()}  (NumPy {np.__version__})")
    rng = np.random.default_rng(0)
    noted = set()
    for d in args.sizes:
        for title, (module, p, loss) in problems(d, rng).items():
            v = rng.standard_normal(d)
            fns, notes = peers(module, p, loss, v)
            for n in notes:
                if n not in noted:
                    print("note:", n)
                    noted.add(n)
            H = module.hessian(**p)
            for name, (fn, kind) in fns.items():              # same answers before any timing
                want = H if kind == "H" else H @ v
                assert np.allclose(np.asarray(fn()), want, rtol=1e-8, atol=1e-10), (title, d, name)
            med = interleaved_medians({name: fn for name, (fn, _) in fns.items()}, args.repeats, args.number)
            print(f"\n{title}, d={d}")
            print(f"  {'':24} {'median':>12} {'÷ generated':>12}")
            for name, (_, kind) in fns.items():
                base = med["generated hessian" if kind == "H" else "generated hvp"]
                print(f"  {name:24} {med[name] * 1e6:>10.1f}µs {med[name] / base:>12.1f}")
    print(f"\nload average {os.getloadavg()}")


if __name__ == "__main__":
    main()
