"""Derivation cost against depth: symbackprop's reverse sweep vs sympy.diff.

The nested expression e_0 = x0, e_i = sin(e_{i-1}·x_i) + e_{i-1}, objective e_n, all n+1 partials.
symbackprop: parse + reverse sweep (+ the numerical self-check, timed separately), result size as
distinct DAG nodes of all gradients. sympy.diff: every partial of the expanded expression, size as
count_ops, run in a subprocess and stopped at a time cap.

    python bench/derive_scaling.py [--sizes 10,100,1000] [--sympy-sizes 4,6,8,10,12,14,100,1000] [--cap 30]

This is a benchmark, not a test: it prints figures; nothing asserts on them.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

SYMPY_CHILD = r"""
import sys, time, sympy
n = int(sys.argv[1])
xs = sympy.symbols(f"x0:{n + 1}")
e = xs[0]
for i in range(1, n + 1):
    e = sympy.sin(e * xs[i]) + e
t = time.perf_counter()
grads = [sympy.diff(e, x) for x in xs]
dt = time.perf_counter() - t
print(dt, sum(sympy.count_ops(g) for g in grads))
"""


def formula(n: int) -> str:
    return "; ".join(["e0 = x0"] + [f"e{i} = sin(e{i-1} * x{i}) + e{i-1}" for i in range(1, n + 1)])


def ours(n: int, repeats: int):
    import symbackprop
    from symbackprop.expr import walk
    src = formula(n)
    times, checked = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        program = symbackprop.parse_formula(src)
        d = symbackprop.Derivation(program, check=False)
        t1 = time.perf_counter()
        symbackprop.Derivation(program, check=True)
        t2 = time.perf_counter()
        times.append(t1 - t0)
        checked.append(t2 - t1)
    size = len(walk(list(d.grads.values())))
    return statistics.median(times), statistics.median(checked), size


def theirs(n: int, cap: float):
    try:
        out = subprocess.run([sys.executable, "-c", SYMPY_CHILD, str(n)], capture_output=True, text=True, timeout=cap)
    except subprocess.TimeoutExpired:
        return None, None
    dt, ops = out.stdout.split()
    return float(dt), int(ops)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10,100,1000")
    ap.add_argument("--sympy-sizes", default="4,6,8,10,12,14,16,100,1000")
    ap.add_argument("--cap", type=float, default=30.0, help="seconds before sympy.diff is stopped")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    ours(3, 1)                                       # warm up imports and caches
    print(f"load average: {os.getloadavg()}")
    print(f"{'n':>6} {'derive (s)':>11} {'self-check (s)':>15} {'result nodes':>13} {'nodes/n':>8}")
    for n in [int(s) for s in args.sizes.split(",")]:
        t, c, size = ours(n, args.repeats)
        print(f"{n:>6} {t:>11.3f} {c:>15.3f} {size:>13} {size / n:>8.1f}", flush=True)
    print()
    print(f"sympy.diff (cap {args.cap:.0f} s per size):")
    print(f"{'n':>6} {'time (s)':>10} {'count_ops':>12}   symbackprop derive (s) at the same n")
    stopped = False
    for n in [int(s) for s in args.sympy_sizes.split(",")]:
        t, _, size = ours(n, 1)
        if stopped:
            print(f"{n:>6} {'skipped':>10} {'':>12}   {t:.3f}")
            continue
        dt, ops = theirs(n, args.cap)
        if dt is None:
            print(f"{n:>6} {'> ' + str(int(args.cap)):>10} {'—':>12}   {t:.3f}   (stopped at the cap; larger n skipped)")
            stopped = True
        else:
            print(f"{n:>6} {dt:>10.3f} {ops:>12}   {t:.3f}", flush=True)
    print(f"load average: {os.getloadavg()}")


if __name__ == "__main__":
    main()
