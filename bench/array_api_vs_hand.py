"""value_and_grad of the two-layer ReLU loss (batch mode) generated with `codegen --target array-api`,
against hand-written code in the same library: under jax.jit (float64) against hand-written JAX under
jax.jit, and in PyTorch eager mode (float64, CPU) against hand-written PyTorch, beside the same formula
printed by `codegen --target torch` (PyTorch's own functions, no array_api_compat). Medians of interleaved
repeats, ratios measured side by side in the same run, at the sizes of bench/codegen_vs_peers.py.
Autodiff in each library (jax.value_and_grad under jit, torch autograd) is shown for reference.

Two checks of the measurement itself:
- a control peer, "hand-written again", runs the hand-written code a second time as a peer of its own
  (under jax.jit, a second compilation of a copy of it): its ratio to the hand-written code is the
  noise floor of the run, since the two are the same program;
- under jax.jit the script compares the compiled XLA programs: the kernels (fusions, dots, custom
  calls) the CPU runs for the generated module against those of the hand-written code.
The ratio column is the median over rounds of each round's ratio (bench/timing.paired_ratio), so a
drift of the machine's speed during the run cancels.

    python bench/array_api_vs_hand.py                      # the issue's sizes
    python bench/array_api_vs_hand.py --sizes 1,1,32,1 --repeats 3 --number 10   # smoke run

Issue 15's targets: generated ÷ hand-written ≤ 1.1 under jax.jit, ≤ 1.15 in PyTorch eager.
"""
from __future__ import annotations

import argparse
import os
import sys
import statistics
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from symbackprop import parse_formula  # noqa: E402
from symbackprop.catalog import BY_NAME  # noqa: E402
from symbackprop.emit import emit_module  # noqa: E402
from symbackprop.files import load_source  # noqa: E402
from timing import interleaved_times, paired_ratio  # noqa: E402  (bench/timing.py)

SIZES = [(1, 1, 32, 1), (32, 16, 32, 4), (128, 64, 128, 16), (256, 256, 256, 64), (1024, 1024, 1024, 256)]


def generated_module(target: str = "array-api"):
    """The array-API (or PyTorch) twin of generated/mlp_relu_batch.py, emitted in memory."""
    m = BY_NAME["mlp_relu_batch"]
    shapes = dict(s.split("=") for s in m.shapes)
    return load_source(emit_module(parse_formula(m.formula, shapes), wrt=list(m.wrt), batch=list(m.batch),
                                   target=target), "mlp_relu_batch_" + target.replace("-", "_"))


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
    again_jit = jax.jit(types.FunctionType(hand.__code__, hand.__globals__, "hand_again", None, hand.__closure__))
    auto_jit = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))
    order = [jp[k] for k in ("W1", "b", "W2", "x", "y")]
    v1, g1 = jax.block_until_ready(gen_jit(**jp))
    v2, g2 = jax.block_until_ready(hand_jit(**jp))
    jax.block_until_ready(auto_jit(*order))
    jax.block_until_ready(again_jit(**jp))
    assert np.isclose(float(v1), float(v2)) and all(np.allclose(g1[n], g2[n]) for n in g2)
    mine, theirs = xla_kernels(gen_jit, jp), xla_kernels(hand_jit, jp)
    print(f"  XLA kernels, generated:    {mine}")
    print(f"  XLA kernels, hand-written: {theirs}  ({'the same' if mine == theirs else 'DIFFERENT'})")
    return {"generated, jax.jit": lambda: jax.block_until_ready(gen_jit(**jp)),
            "hand-written, jax.jit": lambda: jax.block_until_ready(hand_jit(**jp)),
            "hand-written again, jit": lambda: jax.block_until_ready(again_jit(**jp)),
            "jax.value_and_grad, jit": lambda: jax.block_until_ready(auto_jit(*order))}


def xla_kernels(jitted, kwargs) -> str:
    """The kernels of the compiled XLA program's entry computation, counted by kind (fusion, dot,
    custom-call, ...): what the CPU runs per call, whatever the names XLA gave them."""
    import collections
    import re
    text = jitted.lower(**kwargs).compile().as_text()
    entry = text[text.index("ENTRY"):]
    entry = entry[:entry.index("\n}")]
    kinds = collections.Counter(m.group(1) for m in re.finditer(r"= \S+ ([a-z-]+)\(", entry)
                                if m.group(1) not in ("parameter", "tuple", "get-tuple-element", "bitcast",
                                                      "constant"))
    return ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))


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

    native = generated_module("torch")
    v2, g2 = hand(**tp)
    for module in (gen, native):
        v1, g1 = module.value_and_grad(**tp)
        assert torch.isclose(v1, v2) and all(torch.allclose(g1[n], g2[n]) for n in g2)
    return {"generated, torch eager": lambda: gen.value_and_grad(**tp),
            "--target torch, eager": lambda: native.value_and_grad(**tp),
            "hand-written, torch eager": lambda: hand(**tp),
            "hand-written again, eager": lambda: hand(**tp),
            "torch autograd": autograd}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", action="append", help="B,d,h,k (repeatable; default: the issue's sizes)")
    ap.add_argument("--repeats", type=int, default=15, help="interleaved rounds (median reported)")
    ap.add_argument("--number", type=int, default=0, help="calls per timing (default: auto, about --target s)")
    ap.add_argument("--target", type=float, default=0.05, help="seconds per timing when --number is auto")
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
            times = interleaved_times(fns, args.repeats, args.number, args.target)
            print(f"  {'':28} {'median':>12} {'÷ hand-written':>15}")
            for name, ts in times.items():
                print(f"  {name:28} {statistics.median(ts) * 1e6:>10.1f}µs {paired_ratio(times, name, base):>15.2f}")
    print(f"\nload average {os.getloadavg()}")


if __name__ == "__main__":
    main()
