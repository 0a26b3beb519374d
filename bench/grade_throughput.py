"""`symbackprop grade` throughput on the handout's part (d): submissions graded per second.

Writes N generated submissions (each a Markdown file with eight derivative lines of part (d), every line
drawn from right answers in both layouts and the usual mistakes) into a temporary folder, grades the folder
with `grade_folder` and prints submissions/second. Two workloads:

- `repeated`: the lines are drawn from a small pool, as in a real class where many students write the same
  line; identical lines are answered from the verdict cache.
- `uncached`: the same files with the cache off, so every line of every file is checked afresh.

    python bench/grade_throughput.py                           # 400 submissions, both workloads, all cores
    python bench/grade_throughput.py --n 20 --jobs 1           # smoke run
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from symbackprop.grading import default_jobs, grade_folder  # noqa: E402

PROBLEM = """\
title: "Handout 2(d)"
formula: 0.5 * norm(W2 @ Phi(W1 @ x + b) - y)**2
shapes: {W1: "d,d", W2: "d,d", x: d, b: d, y: d}
elementwise: [Phi]
lets: {x1: W1 @ x + b, x2: Phi(x1), x3: W2 @ x2, x4: x3 - y}
wrt: [x, W1, W2, b]
layout: numerator
"""

#: For each derivative of part (d): right answers in both layouts and typical mistakes, as students write them
#: (LaTeX in the handout's notation, and some NumPy).
LINES = {
    "x_4": [r"x_4^\top", r"-x_4^\top", r"2 x_4^\top"],
    "x_3": [r"\frac{\partial \ell}{\partial x_4}", r"x_4", r"-x_4"],
    "x_2": [r"x_4^\top W_2", r"W_2^\top x_4", r"W_2 x_4", "x4 @ W2"],
    "W_2": [r"x_2 x_4^\top", r"x_4 x_2^\top", "x2 @ x4.T", r"x_1 x_4^\top"],
    "x_1": [r"x_4^\top W_2 \frac{\partial \Phi}{\partial x_1}", r"W_2^\top x_4 \odot \Phi'(x_1)", r"x_4^\top W_2",
            r"x_4^\top W_2 \operatorname{diag}(\Phi(x_1))"],
    "x": [r"x_4^\top W_2 \frac{\partial \Phi}{\partial x_1} W_1", r"W_1^\top (W_2^\top x_4 \odot \Phi'(x_1))",
          r"W_1 (W_2^\top x_4 \odot \Phi'(x_1))"],
    "b": [r"\frac{\partial \ell}{\partial x_1}", r"W_2^\top x_4 \odot \Phi'(x_1)",
          r"\frac{1}{2} W_2^\top x_4 \odot \Phi'(x_1)", r"\frac{1}{d} W_2^\top x_4 \odot \Phi'(x_1)"],
    "W_1": [r"x\, x_4^\top W_2 \frac{\partial \Phi}{\partial x_1}", r"\big(W_2^\top x_4 \odot \Phi'(x_1)\big) x^\top",
            r"W_2^\top x_4 x^\top", "(W2.T @ x4 * Phi'(x1)) @ x.T"],
}


def submission(rng: random.Random) -> str:
    rows = []
    for wrt, claims in LINES.items():
        claim = rng.choice(claims)
        rows.append(f"\\frac{{\\partial \\ell}}{{\\partial {wrt}}} &= {claim}")
    return "Using the intermediate variables, we have\n\n$$\\begin{aligned}\n" + " \\\\\n".join(rows) \
        + "\n\\end{aligned}$$\n"


def run(n: int, jobs: int, workload: str, seed: int = 0) -> tuple[float, int]:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="grade-bench-") as tmp:
        problem = os.path.join(tmp, "problem.yaml")
        with open(problem, "w", encoding="utf-8") as f:
            f.write(PROBLEM)
        subs = os.path.join(tmp, "subs")
        os.mkdir(subs)
        for i in range(n):
            with open(os.path.join(subs, f"student{i:05d}.md"), "w", encoding="utf-8") as f:
                f.write(submission(rng))
        start = time.perf_counter()
        book = grade_folder(problem, subs, jobs=jobs, cache=workload == "repeated")
        book.write(os.path.join(tmp, "out"))
        seconds = time.perf_counter() - start
    graded = sum(s.status == "graded" for s in book.submissions)
    assert graded == n, [s.message for s in book.submissions if s.status != "graded"][:3]
    return seconds, graded


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=400, help="submissions per workload (default 400)")
    ap.add_argument("--jobs", type=int, default=None, help="worker processes (default: the available cores)")
    ap.add_argument("--workload", choices=("repeated", "uncached", "both"), default="both")
    args = ap.parse_args()
    jobs = args.jobs or default_jobs()
    print(f"load average before: {os.getloadavg()[0]:.2f}; {jobs} worker(s); {len(LINES)} lines per submission")
    for workload in (("repeated", "uncached") if args.workload == "both" else (args.workload,)):
        seconds, graded = run(args.n, jobs, workload)
        print(f"{workload:>8}: {graded} submissions in {seconds:.2f} s = {graded / seconds:.1f} submissions/s "
              f"({graded * len(LINES) / seconds:.0f} lines/s)")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
