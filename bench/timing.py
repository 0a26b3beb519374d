"""Side-by-side timing shared by the benchmarks: interleaved rounds, medians."""
from __future__ import annotations

import statistics
import time

#: Seconds of quiet before each timed peer: PyTorch's and JAX's thread pools keep spinning for
#: a while after a call, and whichever peer ran next would pay for it.
PAUSE = 0.3


def calls_per_timing(fn, target: float = 0.02) -> int:
    """How many calls make one timing of about `target` seconds, from the fastest of a few warm calls
    (a single cold call can take twice as long, and would give one peer half the window of another)."""
    fn()
    one = []
    for _ in range(5):
        t = time.perf_counter()
        fn()
        one.append(time.perf_counter() - t)
    return max(1, min(100000, int(target / max(min(one), 1e-7))))


def interleaved_times(fns: dict, repeats: int, number: int | None = None, target: float = 0.02) -> dict:
    """{name: [seconds per call, one per round]}: every peer once per round, the order rotated each
    round, so that round r of every peer ran within a second of the others. Each timing follows a
    pause (PAUSE) and a tenth of its calls untimed, so that no peer pays for the CPU waking up."""
    counts = {name: number or calls_per_timing(fn, target) for name, fn in fns.items()}
    times = {name: [] for name in fns}
    order = list(fns)
    for r in range(repeats):
        for name in order[r % len(order):] + order[:r % len(order)]:
            fn, n = fns[name], counts[name]
            time.sleep(PAUSE)
            for _ in range(max(1, n // 10)):         # untimed: the clock and the thread pools wake up
                fn()
            t = time.perf_counter()
            for _ in range(n):
                fn()
            times[name].append((time.perf_counter() - t) / n)
    return times


def interleaved_medians(fns: dict, repeats: int, number: int | None = None) -> dict:
    """{name: median seconds per call} over interleaved rounds (interleaved_times)."""
    return {name: statistics.median(ts) for name, ts in interleaved_times(fns, repeats, number).items()}


def paired_ratio(times: dict, name: str, base: str) -> float:
    """The median over rounds of name's time ÷ base's time in the same round: a drift of the machine's
    speed during the run (another process, the clock) cancels in each round's ratio."""
    return statistics.median(a / b for a, b in zip(times[name], times[base]))
