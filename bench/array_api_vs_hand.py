"""value_and_grad of the two-layer ReLU loss (batch mode) generated with `codegen --target array-api`,
against hand-written code in the same library: under jax.jit (float64) against hand-written JAX under
jax.jit, and in PyTorch eager mode (float64, CPU) against hand-written PyTorch. Medians of interleaved
repeats, ratios measured side by side in the same run, at the sizes of bench/codegen_vs_peers.py.
Autodiff in each library (jax.value_and_grad under jit, torch autograd) is shown for reference.

    python bench/array_api_vs_hand.py                      # the issue's sizes
    python bench/array_api_vs_hand.py --sizes 1,1,32,1 --repeats 3 --number 10   # smoke run

Issue 15's targets: generated ÷ hand-written ≤ 1.1 under jax.jit, ≤ 1.15 in PyTorch eager.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from symbackprop import parse_formula  # noqa: E402
from symbackprop.catalog import BY_NAME  # noqa: E402
from symbackprop.emit import emit_module  # noqa: E402
from symbackprop.files import load_source  # noqa: E402
from timing import interleaved_medians  # noqa: E402  (bench/timing.py)

SIZES = [(1, 1, 32, 1), (32, 16, 32, 4), (128, 64, 128, 16), (256, 256, 256, 64), (1024, 1024, 1024, 256)]


def generated_module():
    """The array-API twin of generated/mlp_relu_batch.py, emitted in memory."""
    m = BY_NAME["mlp_relu_batch"]
    shapes = dict(s.split("=") for s in m.shapes)
    return load_source(emit_module(parse_formula(m.formula, shapes), wrt=list(m.wrt), batch=list(m.batch),
                                   target="array-api"), "mlp_relu_batch_array_api")


def jax_fns(gen, p):
    """name -> zero-argument callable (results ready), or None when JAX is not installed."""
    try:
        import jax
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    def hand(W2, W1, x, b, y):
        B = x.shape[0]
        z = x @ W1.T + b
        a = jnp.maximum(z, 0.0)
        r = a @ W2.T - y
        g3 = r / B
        gz = (g3 @ W2) * (z > 0)
        return 0.5 * jnp.sum(r * r) / B, {"W1": gz.T @ x, "b": gz.sum(axis=0), "W2": g3.T @ a}

    def loss(W1, b, W2, x, y):
        r = jnp.maximum(x @ W1.T + b, 0.0) @ W2.T - y
        return 0.5 * jnp.sum(r * r) / x.shape[0]

    jp = {k: jnp.asarray(v) for k, v in p.items()}
    gen_jit, hand_jit = jax.jit(gen.value_and_grad), jax.jit(hand)
    auto_jit = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))
    order = [jp[k] for k in ("W1", "b", "W2", "x", "y")]
    v1, g1 = jax.block_until_ready(gen_jit(**jp))
    v2, g2 = jax.block_until_ready(hand_jit(**jp))
    jax.block_until_ready(auto_jit(*order))
    assert np.isclose(float(v1), float(v2)) and all(np.allclose(g1[n], g2[n]) for n in g2)
    return {"generated, jax.jit": lambda: jax.block_until_ready(gen_jit(**jp)),
            "hand-written, jax.jit": lambda: jax.block_until_ready(hand_jit(**jp)),
            "jax.value_and_grad, jit": lambda: jax.block_until_ready(auto_jit(*order))}


def torch_fns(gen, p):
    """name -> zero-argument callable, or None when PyTorch is not installed."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    tp = {k: torch.tensor(np.asarray(v), dtype=torch.float64) for k, v in p.items()}

    def hand(W2, W1, x, b, y):
        B = x.shape[0]
        z = x @ W1.T + b
        a = torch.relu(z)
        r = a @ W2.T - y
        g3 = r / B
        gz = (g3 @ W2) * (z > 0)
        return 0.5 * torch.sum(r * r) / B, {"W1": gz.T @ x, "b": gz.sum(dim=0), "W2": g3.T @ a}

    def autograd():
        W1, b, W2 = (tp[k].detach().requires_grad_(True) for k in ("W1", "b", "W2"))
        r = torch.relu(tp["x"] @ W1.T + b) @ W2.T - tp["y"]
        loss = 0.5 * (r * r).sum() / tp["x"].shape[0]
        loss.backward()
        return loss.detach(), (W1.grad, b.grad, W2.grad)

    v1, g1 = gen.value_and_grad(**tp)
    v2, g2 = hand(**tp)
    assert torch.isclose(v1, v2) and all(torch.allclose(g1[n], g2[n]) for n in g2)
    return {"generated, torch eager": lambda: gen.value_and_grad(**tp),
            "hand-written, torch eager": lambda: hand(**tp),
            "torch autograd": autograd}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", action="append", help="B,d,h,k (repeatable; default: the issue's sizes)")
    ap.add_argument("--repeats", type=int, default=15, help="interleaved rounds (median reported)")
    ap.add_argument("--number", type=int, default=0, help="calls per timing (default: auto, ~20 ms)")
    args = ap.parse_args(argv)
    sizes = [tuple(int(v) for v in s.split(",")) for s in args.sizes] if args.sizes else SIZES
    print(f"load average {os.getloadavg()}  (NumPy {np.__version__})")
    gen = generated_module()
    rng = np.random.default_rng(0)
    for B, d, h, k in sizes:
        p = dict(W2=rng.standard_normal((k, h)) / np.sqrt(h), W1=rng.standard_normal((h, d)) / np.sqrt(d),
                 x=rng.standard_normal((B, d)), b=rng.standard_normal(h), y=rng.standard_normal((B, k)))
        print(f"\nB={B} d={d} h={h} k={k}")
        for lib, make, base in (("jax", jax_fns, "hand-written, jax.jit"),
                                ("torch", torch_fns, "hand-written, torch eager")):
            fns = make(gen, p)
            if fns is None:
                print(f"  note: {lib} not installed: skipped")
                continue
            med = interleaved_medians(fns, args.repeats, args.number)
            print(f"  {'':28} {'median':>12} {'÷ hand-written':>15}")
            for name in fns:
                print(f"  {name:28} {med[name] * 1e6:>10.1f}µs {med[name] / med[base]:>15.2f}")
    print(f"\nload average {os.getloadavg()}")


if __name__ == "__main__":
    main()
