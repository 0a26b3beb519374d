"""The array-API print of the generated MLP module (generated/mlp_relu_batch.py's formula, `codegen --target
array-api`) on a GPU, against hand-written code in the same library: CuPy, PyTorch CUDA (eager), JAX GPU
(both under jax.jit). value_and_grad in float64 and float32, at bench/codegen_vs_peers.py's sizes.
Medians of interleaved repeats, ratios against the hand-written code of the same library, one run.

Each library and device is skipped cleanly when absent, and the run says what it skipped; no test
needs a GPU. --cpu runs the same comparisons on the CPU devices (a smoke test of this script where
there is no GPU; not figures for the README).

    python bench/gpu.py                       # every GPU library installed (a GPU machine)
    python bench/gpu.py --cpu --quick         # smoke run on the CPU
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from timing import interleaved_medians  # noqa: E402  (bench/timing.py)

SIZES = [(32, 16, 32, 4), (128, 64, 128, 16), (256, 256, 256, 64), (1024, 1024, 1024, 256), (4096, 2048, 2048, 512)]
QUICK = [(32, 16, 32, 4), (128, 64, 128, 16)]


def mlp_module(target: str = "array-api"):
    """The MLP module printed for the array API, or for PyTorch (emitted in memory from the catalog's formula)."""
    from symbackprop.catalog import BY_NAME
    from symbackprop.emit import emit_module
    from symbackprop.files import load_source
    from symbackprop.parse import parse_formula
    m = BY_NAME["mlp_relu_batch"]
    shapes = dict(s.split("=") for s in m.shapes)
    src = emit_module(parse_formula(m.formula, shapes), wrt=list(m.wrt), batch=list(m.batch), target=target)
    return load_source(src, "mlp_relu_batch_" + target.replace("-", "_"))


def inputs(rng, B, d, h, k):
    return dict(W2=rng.standard_normal((k, h)) / np.sqrt(h), W1=rng.standard_normal((h, d)) / np.sqrt(d),
                x=rng.standard_normal((B, d)), b=rng.standard_normal(h), y=rng.standard_normal((B, k)))


# ----- one entry per library: (device, to_device, hand-written value_and_grad, sync, wrap) or a skip reason -----

def cupy_backend(cpu: bool):
    if cpu:
        return "CuPy has no CPU device"
    try:
        import cupy as cp
        cp.cuda.runtime.getDeviceCount()
    except Exception as e:                                   # noqa: BLE001  (not installed, no driver, no GPU)
        return f"CuPy unavailable ({type(e).__name__}: {e})"

    def hand(W2, W1, x, b, y):
        B = x.shape[0]
        z = x @ W1.T + b
        a = cp.maximum(z, 0.0)
        r = a @ W2.T - y
        g3 = r / B
        gz = (g3 @ W2) * (z > 0)
        return 0.5 * cp.vdot(r, r) / B, {"W1": gz.T @ x, "b": gz.sum(axis=0), "W2": g3.T @ a}
    name = cp.cuda.runtime.getDeviceProperties(0)["name"].decode()
    return dict(device=f"CuPy {cp.__version__} on {name}", put=lambda a, dt: cp.asarray(a, dtype=dt), hand=hand,
                sync=lambda out: cp.cuda.Stream.null.synchronize(), jit=lambda f: f)


def torch_backend(cpu: bool):
    try:
        import torch
    except ImportError as e:
        return f"PyTorch not installed ({e})"
    if not cpu and not torch.cuda.is_available():
        return "PyTorch has no CUDA device here"
    dev = "cpu" if cpu else "cuda"

    def hand(W2, W1, x, b, y):
        B = x.shape[0]
        z = x @ W1.T + b
        a = torch.clamp(z, min=0.0)
        r = a @ W2.T - y
        g3 = r / B
        gz = torch.where(z > 0, g3 @ W2, 0.0)
        return 0.5 * torch.sum(r * r) / B, {"W1": gz.T @ x, "b": gz.sum(dim=0), "W2": g3.T @ a}
    name = "CPU" if cpu else torch.cuda.get_device_name(0)
    sync = (lambda out: None) if cpu else (lambda out: torch.cuda.synchronize())
    return dict(device=f"PyTorch {torch.__version__} on {name}",
                put=lambda a, dt: torch.as_tensor(np.asarray(a, dtype=dt), device=dev), hand=hand, sync=sync,
                jit=lambda f: f, native=mlp_module("torch").value_and_grad)


def jax_backend(cpu: bool):
    try:
        import jax
        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp
    except ImportError as e:
        return f"JAX not installed ({e})"
    try:
        device = jax.devices("cpu" if cpu else "gpu")[0]
    except RuntimeError as e:
        return f"JAX has no GPU device here ({e})".replace("\n", " ")

    def hand(W2, W1, x, b, y):
        B = x.shape[0]
        z = x @ W1.T + b
        a = jnp.maximum(z, 0.0)
        r = a @ W2.T - y
        g3 = r / B
        gz = jnp.where(z > 0, g3 @ W2, 0.0)
        return 0.5 * jnp.vdot(r, r) / B, {"W1": gz.T @ x, "b": gz.sum(axis=0), "W2": g3.T @ a}
    return dict(device=f"JAX {jax.__version__} on {device.device_kind} ({device.platform})",
                put=lambda a, dt: jax.device_put(jnp.asarray(a, dtype=dt), device), hand=hand,
                sync=lambda out: jax.block_until_ready(out), jit=jax.jit)


BACKENDS = {"CuPy": cupy_backend, "PyTorch": torch_backend, "JAX": jax_backend}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", action="append", help="B,d,h,k (repeatable; default: codegen_vs_peers' and one larger)")
    ap.add_argument("--dtypes", default="float64,float32")
    ap.add_argument("--repeats", type=int, default=15, help="interleaved rounds (median reported)")
    ap.add_argument("--number", type=int, default=0, help="calls per timing (default: auto, ~20 ms)")
    ap.add_argument("--cpu", action="store_true", help="use the CPU devices (smoke test; not GPU figures)")
    ap.add_argument("--quick", action="store_true", help="two small sizes, 3 repeats")
    args = ap.parse_args(argv)
    sizes = [tuple(int(v) for v in s.split(",")) for s in args.sizes] if args.sizes else (QUICK if args.quick else SIZES)
    if args.quick:
        args.repeats = 3
    print(f"load average {os.getloadavg()}")
    module = mlp_module()
    rng = np.random.default_rng(0)
    skipped = []
    for lib, make in BACKENDS.items():
        bk = make(args.cpu)
        if isinstance(bk, str):
            skipped.append(f"{lib}: {bk}")
            print(f"\n{lib}: skipped: {bk}")
            continue
        print(f"\n{bk['device']}" + ("  (CPU smoke run, not GPU figures)" if args.cpu else ""))
        gen_fn, hand_fn = bk["jit"](module.value_and_grad), bk["jit"](bk["hand"])
        for dtype in args.dtypes.split(","):
            for B, d, h, k in sizes:
                p = {n: bk["put"](a, dtype) for n, a in inputs(rng, B, d, h, k).items()}
                v1, g1 = gen_fn(**p)
                v2, g2 = hand_fn(**p)
                tol = 1e-9 if dtype == "float64" else 2e-3
                assert np.allclose(float(v1), float(v2), rtol=tol)
                for n in g2:
                    a1, a2 = np.asarray(_host(g1[n])), np.asarray(_host(g2[n]))
                    assert np.allclose(a1, a2, rtol=tol, atol=tol * np.abs(a2).max()), (lib, n)
                fns = {"generated (array API)": lambda: bk["sync"](gen_fn(**p)),
                       "hand-written": lambda: bk["sync"](hand_fn(**p))}
                if "native" in bk:                   # the same formula printed by --target torch
                    v3, g3 = bk["native"](**p)
                    assert all(np.allclose(np.asarray(_host(g3[n])), np.asarray(_host(g2[n])), rtol=tol,
                                           atol=tol * np.abs(np.asarray(_host(g2[n]))).max()) for n in g2)
                    fns["--target torch"] = lambda: bk["sync"](bk["native"](**p))
                med = interleaved_medians(fns, args.repeats, args.number)
                ratio = med["generated (array API)"] / med["hand-written"]
                native = (f", --target torch {med['--target torch'] / med['hand-written']:5.2f}"
                          if "--target torch" in med else "")
                print(f"  {dtype} B={B} d={d} h={h} k={k}: generated {med['generated (array API)'] * 1e6:9.1f} µs, "
                      f"hand-written {med['hand-written'] * 1e6:9.1f} µs, ratio {ratio:5.2f}{native}")
    if skipped:
        print("\nskipped: " + "; ".join(skipped))
    print(f"\nload average {os.getloadavg()}")


def _host(a):
    """An array's values on the host (CuPy: .get(); PyTorch: .cpu(); JAX and NumPy: as they are)."""
    if hasattr(a, "get") and not isinstance(a, dict):
        return a.get()
    if hasattr(a, "cpu"):
        return a.cpu()
    return a


if __name__ == "__main__":
    main()
