"""Benchmark: SGD steps per second of the ReLU-net trainer (generated gradients) against hand-written NumPy,
a PyTorch loop and JAX (a jitted step and lax.scan), side by side; the whole notebook workload; the seed study.

    python bench/relu_training.py                 # the real thing (quiet machine)
    python bench/relu_training.py --quick         # smoke run at tiny sizes

Ratios are against hand-written NumPy measured in the same run (interleaved repeats, medians)."""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from symbackprop.relu import experiment  # noqa: E402
from symbackprop.relu.problem import init_params, make_problem, minibatch_indices  # noqa: E402
from symbackprop.relu.train import train  # noqa: E402


#: Seconds of quiet before each timed contender (other libraries' worker threads spin down).
PAUSE = 0.3


# ----- the hand-written NumPy baseline (same signature as generated/relu_net.py) -----

def value_and_grad(w, b, v, c, x, y):
    """mean over the batch of (v @ relu(w * x + b) + c - y)**2, and its gradient in w, b, v, c."""
    z = np.multiply.outer(x, w) + b                 # (B, h)
    a = np.maximum(z, 0.0)
    r = a @ v + (c - y)                             # (B,)
    g = r * (2.0 / len(x))
    gz = np.multiply.outer(g, v) * (z > 0)
    return r @ r / len(x), {"w": x @ gz, "b": gz.sum(0), "v": g @ a, "c": g.sum()}


def grad(w, b, v, c, x, y):
    """The gradient alone (same signature as the generated module's grad)."""
    z = np.multiply.outer(x, w) + b
    a = np.maximum(z, 0.0)
    g = (a @ v + (c - y)) * (2.0 / len(x))
    gz = np.multiply.outer(g, v) * (z > 0)
    return {"w": x @ gz, "b": gz.sum(0), "v": g @ a, "c": g.sum()}


def handwritten_loop(X, Y, p, lr):
    """A plain hand-written SGD loop, fused (no function call, no dict)."""
    w, b, v, c = p["w"].copy(), p["b"].copy(), p["v"].copy(), float(p["c"])
    scale = 2.0 / X.shape[1]
    for x, y in zip(X, Y):
        z = np.multiply.outer(x, w) + b
        a = np.maximum(z, 0.0)
        g = (a @ v + (c - y)) * scale
        gz = np.multiply.outer(g, v) * (z > 0)
        w -= lr * (x @ gz)
        b -= lr * gz.sum(0)
        v -= lr * (g @ a)
        c -= lr * g.sum()
    return w, b, v, c


def torch_loop(X, Y, p, lr):
    import torch
    params = [torch.tensor(np.asarray(p[n], dtype=np.float64), requires_grad=True) for n in "wbvc"]
    opt = torch.optim.SGD(params, lr=lr)
    Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)
    for i in range(len(Xt)):
        w, b, v, c = params
        loss = ((torch.relu(Xt[i][:, None] * w + b) @ v + c - Yt[i]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return params


def jax_fns():
    import jax
    import jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)

    def loss(p, x, y):
        return jnp.mean((jnp.maximum(jnp.outer(x, p[0]) + p[1], 0.0) @ p[2] + p[3] - y) ** 2)

    @jax.jit
    def step(p, x, y, lr):
        g = jax.grad(loss)(p, x, y)
        return tuple(a - lr * ga for a, ga in zip(p, g))

    @jax.jit
    def scan(p, X, Y, lr):
        return jax.lax.scan(lambda q, xy: (step(q, xy[0], xy[1], lr), None), p, (X, Y))[0]

    def jit_loop(X, Y, p, lr):
        q = tuple(jnp.asarray(p[n]) for n in "wbvc")
        Xj, Yj = jnp.asarray(X), jnp.asarray(Y)
        for i in range(len(X)):
            q = step(q, Xj[i], Yj[i], lr)
        return jax.block_until_ready(q)

    def scan_loop(X, Y, p, lr):
        return jax.block_until_ready(scan(tuple(jnp.asarray(p[n]) for n in "wbvc"), jnp.asarray(X),
                                          jnp.asarray(Y), lr))
    return jit_loop, scan_loop


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20_000, help="steps per timed loop")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--widths", default="10,20,40")
    ap.add_argument("--workload-steps", type=int, default=150_000, help="0 skips the notebook workload")
    ap.add_argument("--seed-steps", type=int, default=30_000, help="0 skips the seed study")
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny sizes")
    a = ap.parse_args(argv)
    if a.quick:
        a.steps, a.repeats, a.workload_steps, a.seed_steps, a.seeds = 300, 2, 300, 100, 3
    widths = [int(w) for w in a.widths.split(",")]
    print(f"load average at start: {os.getloadavg()}")
    problem = make_problem(seed=0)
    lr = 0.02

    contenders = {"symbackprop (generated)": None, "hand-written fused loop": handwritten_loop,
                  "hand-written grad, same loop": "vag"}
    try:
        import torch  # noqa: F401
        contenders["PyTorch loop (float64)"] = torch_loop
    except ImportError:
        print("PyTorch not installed: skipped")
    try:
        jit_loop, scan_loop = jax_fns()
        contenders["jax.jit step"] = jit_loop
        contenders["jax lax.scan"] = scan_loop
    except ImportError:
        print("JAX not installed: skipped")

    print(f"\nSGD, all layers, batch 40, {a.steps:,} steps a loop, median of {a.repeats} interleaved repeats")
    for width in widths:
        p = init_params(width, 0)
        idx = np.concatenate(list(minibatch_indices(0, width, a.steps, 40, len(problem.x_train), 1000)))
        X, Y = problem.x_train[idx], problem.y_train[idx]
        times = {k: [] for k in contenders}
        for name, fn in contenders.items():                 # warm-up (jit compiles here)
            if fn is not None and fn != "vag":
                fn(X[:50], Y[:50], p, lr)
        order = list(contenders)
        for r in range(a.repeats):
            # Rotate the order each round and pause before each contender: PyTorch's and JAX's thread
            # pools keep spinning for a while after a call, and whoever runs next would pay for it.
            for name in order[r % len(order):] + order[:r % len(order)]:
                fn = contenders[name]
                time.sleep(PAUSE)
                t0 = time.perf_counter()
                if fn is None:
                    train(problem, width, "all", steps=a.steps, every=a.steps)
                elif fn == "vag":
                    train(problem, width, "all", steps=a.steps, every=a.steps, grad=grad)
                else:
                    fn(X, Y, p, lr)
                times[name].append((time.perf_counter() - t0) / a.steps)
        base = statistics.median(times["hand-written fused loop"])
        print(f"width {width}:")
        for name, ts in times.items():
            m = statistics.median(ts)
            print(f"  {name:28} {m * 1e6:9.2f} µs/step {1 / m:12,.0f} steps/s   time ratio vs hand-written {m / base:6.2f}")

    if a.workload_steps:
        print(f"\nnotebook workload: modes all, output × widths {widths} × {a.workload_steps:,} steps (no pictures)")
        t0 = time.perf_counter()
        experiment(widths, ["all", "output"], steps=a.workload_steps, progress=False)
        t = time.perf_counter() - t0
        print(f"  symbackprop: {t:.1f} s ({t / (2 * len(widths) * a.workload_steps) * 1e6:.1f} µs a step)")
        t0 = time.perf_counter()
        for width in widths:                                 # baseline: the hand-written fused loop, same work
            p = init_params(width, 0)
            for mode in ("all", "output"):
                for idx in minibatch_indices(0, width, a.workload_steps, 40, len(problem.x_train), 1000):
                    handwritten_loop(problem.x_train[idx], problem.y_train[idx], p, lr)
        print(f"  hand-written NumPy (all layers for both modes): {time.perf_counter() - t0:.1f} s")

    if a.seed_steps:
        print(f"\nseed study: {a.seeds} seeds × widths {widths} × sgd, momentum, adam × {a.seed_steps:,} steps, stacked")
        t0 = time.perf_counter()
        ex = experiment(widths, ["all"], ["sgd", "momentum", "adam"], steps=a.seed_steps, seeds=a.seeds,
                        progress=False)
        print(f"  {time.perf_counter() - t0:.1f} s")
        print(ex.summary())
    print(f"\nload average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
