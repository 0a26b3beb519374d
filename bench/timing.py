"""Side-by-side timing shared by the benchmarks: interleaved rounds, medians."""
from __future__ import annotations

import statistics
import time

#: Seconds of quiet before each timed peer: PyTorch's and JAX's thread pools keep spinning for
#: a while after a call, and whichever peer ran next would pay for it.
PAUSE = 0.3


def calls_per_timing(fn, target: float = 0.02) -> int:
    """How many calls make one timing of about `target` seconds."""
    t = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t, 1e-7)
    return max(1, min(10000, int(target / one)))


def interleaved_medians(fns: dict, repeats: int, number: int | None = None) -> dict:
    """{name: median seconds per call}: every peer once per round, the order rotated each round."""
    counts = {name: number or calls_per_timing(fn) for name, fn in fns.items()}
    times = {name: [] for name in fns}
    order = list(fns)
    for r in range(repeats):
        for name in order[r % len(order):] + order[:r % len(order)]:
            fn, n = fns[name], counts[name]
            time.sleep(PAUSE)
            t = time.perf_counter()
            for _ in range(n):
                fn()
            times[name].append((time.perf_counter() - t) / n)
    return {name: statistics.median(ts) for name, ts in times.items()}
