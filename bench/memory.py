"""Peak memory and time of the generated MLP module (generated/mlp_relu_batch.py, which frees each
temporary after its last read) against hand-written NumPy and against the same module with its `del`
lines taken out (every intermediate alive to the end of the function, as before issue 15).

Timed twice: in a fresh process, and after a run of small calls (the allocator's state that made the
generated module up to 1.2× hand-written at 512-wide layers before it freed its temporaries).
Peak memory is tracemalloc's peak during one call (NumPy reports its allocations to tracemalloc),
the inputs excluded. Ratios against hand-written NumPy, medians of interleaved repeats, one run.

    python bench/memory.py                                  # 512-wide layers (quiet machine)
    python bench/memory.py --sizes 8,16,16,4 --repeats 3 --small-calls 100   # smoke run
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from symbackprop.files import load_source  # noqa: E402
from symbackprop.testing import load_module  # noqa: E402
from codegen_vs_peers import hand  # noqa: E402  (value_and_grad as one writes it by hand)
from timing import interleaved_medians  # noqa: E402  (bench/timing.py)

PATH = ROOT / "generated/mlp_relu_batch.py"
GEN = load_module(PATH)
#: The same module with every `del` line removed: each intermediate lives to the end of the function.
KEPT = load_source(re.sub(r"(?m)^ +del .*\n", "", PATH.read_text(encoding="utf-8")), "mlp_relu_batch_kept")
SIZES = [(64, 512, 512, 512), (512, 512, 512, 512)]
SMALL = [(1, 1, 32, 1), (32, 16, 32, 4), (40, 1, 40, 1)]


def inputs(rng, B, d, h, k):
    return dict(W2=rng.standard_normal((k, h)) / np.sqrt(h), W1=rng.standard_normal((h, d)) / np.sqrt(d),
                x=rng.standard_normal((B, d)), b=rng.standard_normal(h), y=rng.standard_normal((B, k)))


def peak_bytes(fn) -> int:
    """tracemalloc's peak during one call of fn (after one untraced call)."""
    fn()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def contenders(p) -> dict:
    return {"hand-written": lambda: hand(**p),
            "generated value_and_grad": lambda: GEN.value_and_grad(**p),
            "generated grad": lambda: GEN.grad(**p),
            "generated, no del (before)": lambda: KEPT.value_and_grad(**p)}


def small_calls(rng, n: int) -> None:
    """n calls of every contender at small sizes, with the results kept a while (allocator churn)."""
    keep = []
    for i in range(n):
        B, d, h, k = SMALL[i % len(SMALL)]
        for fn in contenders(inputs(rng, B, d, h, k)).values():
            keep.append(fn())
        if len(keep) > 200:
            keep = keep[100:]


def report(title, fns, repeats, number):
    med = interleaved_medians(fns, repeats, number)
    base = med["hand-written"]
    print(f"  {title}")
    for name, m in med.items():
        print(f"    {name:28} {m * 1e6:10.1f} µs {m / base:8.2f}× hand-written")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", action="append", help="B,d,h,k (repeatable; default 64 and 512 rows, 512-wide)")
    ap.add_argument("--repeats", type=int, default=15, help="interleaved rounds (median reported)")
    ap.add_argument("--number", type=int, default=0, help="calls per timing (default: auto, ~20 ms)")
    ap.add_argument("--small-calls", type=int, default=20_000, help="small calls between the two timings")
    args = ap.parse_args(argv)
    sizes = [tuple(int(v) for v in s.split(",")) for s in args.sizes] if args.sizes else SIZES
    print(f"load average {os.getloadavg()}  (NumPy {np.__version__}, {os.cpu_count()} CPUs)")
    rng = np.random.default_rng(0)
    params = {s: inputs(rng, *s) for s in sizes}
    for s, p in params.items():
        v0, g0 = hand(**p)
        for name, fn in contenders(p).items():
            out = fn()
            v, g = (None, out) if name == "generated grad" else out
            assert v is None or np.isclose(v, v0)
            assert all(np.allclose(g[n], g0[n]) for n in g0), name

    print("\npeak memory during one call (tracemalloc, MiB; the returned gradients included)")
    for s, p in params.items():
        peaks = {name: peak_bytes(fn) for name, fn in contenders(p).items()}
        base = peaks["hand-written"]
        print(f"  B={s[0]} d={s[1]} h={s[2]} k={s[3]}")
        for name, b in peaks.items():
            print(f"    {name:28} {b / 2**20:10.2f} MiB {b / base:8.2f}× hand-written")

    print("\ntime per call, fresh process")
    for s, p in params.items():
        report(f"B={s[0]} d={s[1]} h={s[2]} k={s[3]}", contenders(p), args.repeats, args.number)
    small_calls(rng, args.small_calls)
    print(f"\ntime per call, after {args.small_calls:,} small calls")
    for s, p in params.items():
        report(f"B={s[0]} d={s[1]} h={s[2]} k={s[3]}", contenders(p), args.repeats, args.number)
    print(f"\nload average {os.getloadavg()}")


if __name__ == "__main__":
    main()
