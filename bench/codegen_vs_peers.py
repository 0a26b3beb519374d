"""value_and_grad of the generated two-layer ReLU loss (batch mode) against hand-written NumPy,
autograd, JAX (jitted and not, float64) and PyTorch (float64, CPU). Medians of interleaved repeats,
ratios against hand-written NumPy measured in the same run. A peer that is not installed is skipped.

    python bench/codegen_vs_peers.py                      # the issue's sizes
    python bench/codegen_vs_peers.py --sizes 1,1,32,1 --repeats 3 --number 10   # smoke run
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

GEN = load_module(ROOT / "generated/mlp_relu_batch.py")
SIZES = [(1, 1, 32, 1), (32, 16, 32, 4), (128, 64, 128, 16), (256, 256, 256, 64), (1024, 1024, 1024, 256)]


def hand(W2, W1, x, b, y):
    B = x.shape[0]
    z = x @ W1.T + b
    a = np.maximum(z, 0.0)
    r = a @ W2.T - y
    value = 0.5 * np.vdot(r, r) / B
    g3 = r / B
    gz = (g3 @ W2) * (z > 0)
    return value, {"W1": gz.T @ x, "b": gz.sum(axis=0), "W2": g3.T @ a}




def peers(p):
    """name -> zero-argument callable computing value and gradients; notes for peers skipped."""
    out, notes = {}, []
    out["generated"] = lambda: GEN.value_and_grad(**p)
    out["hand-written"] = lambda: hand(**p)
    out["forward only (generated)"] = lambda: GEN.forward(**p)
    try:
        import autograd
        import autograd.numpy as anp

        def loss(W1, b, W2, x, y):
            r = anp.maximum(x @ W1.T + b, 0.0) @ W2.T - y
            return 0.5 * anp.sum(r * r) / x.shape[0]
        vg = autograd.value_and_grad(loss, argnum=[0, 1, 2])
        out["autograd"] = lambda: vg(p["W1"], p["b"], p["W2"], p["x"], p["y"])
    except ImportError:
        notes.append("autograd not installed: skipped")
    try:
        import jax
        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp

        def jloss(W1, b, W2, x, y):
            r = jnp.maximum(x @ W1.T + b, 0.0) @ W2.T - y
            return 0.5 * jnp.sum(r * r) / x.shape[0]
        jvg = jax.value_and_grad(jloss, argnums=(0, 1, 2))
        jit = jax.jit(jvg)
        jp = [jnp.asarray(p[k]) for k in ("W1", "b", "W2", "x", "y")]
        jax.block_until_ready(jit(*jp))
        out["jax"] = lambda: jax.block_until_ready(jvg(*jp))
        out["jax.jit"] = lambda: jax.block_until_ready(jit(*jp))
    except ImportError:
        notes.append("jax not installed: skipped")
    try:
        import torch
        torch.set_num_threads(max(1, os.cpu_count() or 1))
        tp = {k: torch.tensor(np.asarray(v), dtype=torch.float64) for k, v in p.items()}

        def tstep():
            W1, b, W2 = (tp[k].detach().requires_grad_(True) for k in ("W1", "b", "W2"))
            r = torch.relu(tp["x"] @ W1.T + b) @ W2.T - tp["y"]
            loss = 0.5 * (r * r).sum() / tp["x"].shape[0]
            loss.backward()
            return loss.item(), (W1.grad, b.grad, W2.grad)
        out["pytorch"] = tstep
    except ImportError:
        notes.append("torch not installed: skipped")
    return out, notes


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", action="append", help="B,d,h,k (repeatable; default: the issue's sizes)")
    ap.add_argument("--repeats", type=int, default=15, help="interleaved rounds (median reported)")
    ap.add_argument("--number", type=int, default=0, help="calls per timing (default: auto, ~20 ms)")
    args = ap.parse_args(argv)
    sizes = [tuple(int(v) for v in s.split(",")) for s in args.sizes] if args.sizes else SIZES
    print(f"load average {os.getloadavg()}  (NumPy {np.__version__})")
    rng = np.random.default_rng(0)
    noted = set()
    for B, d, h, k in sizes:
        p = dict(W2=rng.standard_normal((k, h)) / np.sqrt(h), W1=rng.standard_normal((h, d)) / np.sqrt(d),
                 x=rng.standard_normal((B, d)), b=rng.standard_normal(h), y=rng.standard_normal((B, k)))
        fns, notes = peers(p)
        for n in notes:
            if n not in noted:
                print("note:", n)
                noted.add(n)
        v_gen, g_gen = fns["generated"]()
        v_hand, g_hand = fns["hand-written"]()
        assert np.isclose(v_gen, v_hand) and all(np.allclose(g_gen[n], g_hand[n]) for n in g_hand)
        med = interleaved_medians(fns, args.repeats, args.number)
        base = med["hand-written"]
        fwd = med["forward only (generated)"]
        print(f"\nB={B} d={d} h={h} k={k}")
        print(f"  {'':26} {'median':>12} {'÷ hand-written':>15}")
        for name in fns:
            m = med[name]
            print(f"  {name:26} {m * 1e6:>10.1f}µs {m / base:>15.2f}")
        print(f"  generated value_and_grad ÷ its forward: {med['generated'] / fwd:.2f}")
    print(f"\nload average {os.getloadavg()}")


if __name__ == "__main__":
    main()
