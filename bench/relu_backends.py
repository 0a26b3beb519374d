"""`relu --backend jax|torch` against hand-written loops in the same library, and the notebook's whole workload.

Per step (SGD, all layers, batch 40, the notebook's seeded minibatches), medians of interleaved repeats,
ratios against a hand-written JAX lax.scan loop measured in the same run:
  - relu --backend jax: the compiled group of backend_jax (lax.scan over blocks of lax.scan over steps,
    minibatches gathered on the device, a snapshot per block), compiled before timing;
  - hand-written JAX lax.scan: the loss written in jax.numpy, jax.grad, minibatches gathered on the host
    (bench/relu_training.py's loop), and the same with the gather on the device (the same job as ours);
  - relu --backend torch (eager) and a hand-written PyTorch loop with the gradient written out (no
    autograd), the same arithmetic;
  - relu --backend numpy (the generated NumPy loop), for scale.
The workload: widths 10, 20, 40 × modes all, output × 150,000 steps (ridge is a closed form), with
--backend jax; compile time stated apart; the NumPy backend's time for scale.

    python bench/relu_backends.py                 # the real thing (quiet machine)
    python bench/relu_backends.py --quick         # smoke run at tiny sizes
    python bench/relu_backends.py --torch-compile # also time torch.compile of the step (about a minute to compile)
"""
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
from symbackprop.relu.train import PARAMS, train  # noqa: E402

PAUSE = 0.3          # seconds of quiet before each timed contender (other libraries' threads spin down)
NAMES = ("w", "b", "v", "c")
LR = 0.02


def indices(problem, width, steps, every):
    return list(minibatch_indices(0, width, steps, 40, len(problem.x_train), every))


# ----- JAX -----

def jax_contenders(problem, width, steps, every):
    import jax
    import jax.numpy as jnp
    from symbackprop.relu import backend_jax, gradients
    jax.config.update("jax_enable_x64", True)
    idx = indices(problem, width, steps, every)
    p0 = init_params(width, 0)
    x, y = jnp.asarray(problem.x_train), jnp.asarray(problem.y_train)

    # relu --backend jax: the backend's own compiled group, as train() calls it
    grad = gradients.target_module("relu_net").grad
    group = backend_jax.make_group(backend_jax.make_step(grad, NAMES, "sgd", LR, x, y), False)
    p = {n: jnp.asarray(np.asarray(p0[n], dtype=np.float64)) for n in PARAMS}
    zeros = {n: jnp.zeros_like(p[n]) for n in NAMES}
    carry = (p, (zeros, zeros, jnp.zeros((), dtype=jnp.int64)))
    grouped = jnp.asarray(np.stack(idx).astype(np.int32))
    t0 = time.perf_counter()
    ours = group.lower(carry, grouped).compile()
    compile_ours = time.perf_counter() - t0

    # hand-written
    def loss(q, xb, yb):
        return jnp.mean((jnp.maximum(jnp.outer(xb, q[0]) + q[1], 0.0) @ q[2] + q[3] - yb) ** 2)

    def step(q, xb, yb):
        g = jax.grad(loss)(q, xb, yb)
        return tuple(a - LR * ga for a, ga in zip(q, g))

    @jax.jit
    def scan_host(q, X, Y):
        return jax.lax.scan(lambda q, xy: (step(q, xy[0], xy[1]), None), q, (X, Y))[0]

    @jax.jit
    def scan_device(q, I):
        return jax.lax.scan(lambda q, i: (step(q, x[i], y[i]), None), q, I)[0]

    flat = np.concatenate(idx)
    q = tuple(jnp.asarray(np.asarray(p0[n], dtype=np.float64)) for n in NAMES)
    X, Y = jnp.asarray(problem.x_train[flat]), jnp.asarray(problem.y_train[flat])
    Iflat = jnp.asarray(flat.astype(np.int32))
    jax.block_until_ready(scan_host(q, X, Y))
    jax.block_until_ready(scan_device(q, Iflat))
    fns = {"relu --backend jax": lambda: jax.block_until_ready(ours(carry, grouped)),
           "hand-written JAX lax.scan": lambda: jax.block_until_ready(scan_host(q, X, Y)),
           "hand-written, device gather": lambda: jax.block_until_ready(scan_device(q, Iflat))}
    # the same numbers: our final parameters against the hand-written scan's
    final = ours(carry, grouped)[0][0]
    ref = scan_host(q, X, Y)
    gap = max(float(jnp.max(jnp.abs(final[n] - r))) for n, r in zip(NAMES, ref))
    return fns, compile_ours, gap


# ----- PyTorch -----

def torch_contenders(problem, width, steps, every):
    import torch
    from symbackprop.relu import backend_torch
    from symbackprop.relu.train import _flat
    idx = indices(problem, width, steps, every)
    p0 = init_params(width, 0)
    _, views = _flat(width, p0, None)
    init = {n: views[n] for n in PARAMS}

    def ours():
        return backend_torch.run_blocks("all", NAMES, "sgd", LR, init, iter(idx), problem.x_train, problem.y_train)

    xt, yt = torch.from_numpy(problem.x_train), torch.from_numpy(problem.y_train)

    def hand():
        w, b, v, c = (torch.tensor(np.asarray(p0[n], dtype=np.float64)) for n in NAMES)
        for block in idx:
            I = torch.from_numpy(block)
            X, Y = xt[I], yt[I]
            for i in range(len(X)):
                xb, yb = X[i], Y[i]
                z = xb[:, None] * w + b
                a = torch.clamp(z, min=0.0)
                g = (a @ v + c - yb) * (2.0 / len(xb))
                gz = torch.where(z > 0, g[:, None] * v, 0.0)
                w, b, v, c = w - LR * (xb @ gz), b - LR * gz.sum(0), v - LR * (g @ a), c - LR * g.sum()
        return w, b, v, c
    return {"relu --backend torch": ours, "hand-written PyTorch (eager)": hand}


def timed(fns, repeats):
    times = {k: [] for k in fns}
    order = list(fns)
    for r in range(repeats):
        for name in order[r % len(order):] + order[:r % len(order)]:
            time.sleep(PAUSE)
            t0 = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20_000, help="steps per timed JAX loop")
    ap.add_argument("--torch-steps", type=int, default=2_000, help="steps per timed PyTorch loop")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--widths", default="10,20,40")
    ap.add_argument("--workload-steps", type=int, default=150_000, help="0 skips the notebook workload")
    ap.add_argument("--torch-compile", action="store_true", help="also time the step under torch.compile")
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny sizes")
    a = ap.parse_args(argv)
    if a.quick:
        a.steps, a.torch_steps, a.repeats, a.workload_steps = 2000, 100, 2, 2000
    widths = [int(w) for w in a.widths.split(",")]
    every = 1000
    print(f"load average at start: {os.getloadavg()}  ({os.cpu_count()} CPUs)")
    problem = make_problem(seed=0)

    print(f"\nper step: SGD, all layers, batch 40; JAX loops of {a.steps:,} steps, PyTorch and NumPy of "
          f"{a.torch_steps:,}; median of {a.repeats} interleaved repeats")
    for width in widths:
        fns, per_steps = {}, {}
        try:
            jfns, compile_s, gap = jax_contenders(problem, width, a.steps, every)
            fns.update(jfns)
            per_steps.update({k: a.steps for k in jfns})
            note = f"compile of relu --backend jax {compile_s:.2f} s; final parameters differ from the " \
                   f"hand-written scan's by at most {gap:.1e}"
        except ImportError as e:
            note = f"JAX skipped ({e})"
        try:
            tfns = torch_contenders(problem, width, a.torch_steps, every)
            fns.update(tfns)
            per_steps.update({k: a.torch_steps for k in tfns})
        except ImportError as e:
            note += f"; PyTorch skipped ({e})"
        fns["relu --backend numpy"] = lambda w=width: train(problem, w, "all", steps=a.torch_steps, every=every)
        per_steps["relu --backend numpy"] = a.torch_steps
        med = timed(fns, a.repeats)
        base = med.get("hand-written JAX lax.scan", None)
        base = base / per_steps["hand-written JAX lax.scan"] if base else None
        print(f"width {width}: {note}")
        for name, t in med.items():
            us = t / per_steps[name] * 1e6
            ratio = f"{us / (base * 1e6):8.2f}× hand-written JAX scan" if base else ""
            print(f"  {name:30} {us:9.2f} µs/step {ratio}")

    if a.torch_compile:
        try:
            import torch
            from symbackprop.relu import backend_torch
            from symbackprop.relu.train import _flat
            width = widths[-1]
            _, views = _flat(width, init_params(width, 0), None)
            idx = indices(problem, width, a.torch_steps, every)
            args = ("all", NAMES, "sgd", LR, {n: views[n] for n in PARAMS})
            t0 = time.perf_counter()
            out = backend_torch.run_blocks(*args, iter(idx), problem.x_train, problem.y_train, compile=True)
            total = time.perf_counter() - t0
            t0 = time.perf_counter()
            backend_torch.run_blocks(*args, iter(idx), problem.x_train, problem.y_train, compile=False)
            eager = time.perf_counter() - t0
            print(f"\ntorch.compile of the step, width {width}: compile {out.compile_seconds:.1f} s, then "
                  f"{(total - out.compile_seconds) / a.torch_steps * 1e6:.1f} µs/step against "
                  f"{eager / a.torch_steps * 1e6:.1f} eager (torch {torch.__version__})")
        except ImportError as e:
            print(f"\ntorch.compile skipped ({e})")

    if a.workload_steps:
        print(f"\nnotebook workload: modes all, output × widths {widths} × {a.workload_steps:,} steps (no pictures)")
        for backend in ("jax", "numpy"):
            try:
                for attempt in ("first run", "again"):
                    t0 = time.perf_counter()
                    ex = experiment(widths, ["all", "output"], steps=a.workload_steps, progress=False, backend=backend)
                    total = time.perf_counter() - t0
                    comp = sum(r.compile_seconds for r in ex.runs)
                    print(f"  --backend {backend:5} ({attempt:9}): {total:6.2f} s in all, of which compiling "
                          f"{comp:5.2f} s, training {total - comp:6.2f} s "
                          f"({(total - comp) / (2 * len(widths) * a.workload_steps) * 1e6:.2f} µs a step)")
                    if backend == "numpy":
                        break
            except Exception as e:                          # noqa: BLE001  (a missing library: say so, go on)
                print(f"  --backend {backend}: skipped ({e})")
    print(f"\nload average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
