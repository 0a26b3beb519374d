"""Every script in bench/ runs its smoke configuration to the end (exit 0) and prints what it
measures: benchmarks are run rarely, by hand, on a quiet machine, so a script that broke would
otherwise be found only then. Timings are not checked here (no speed targets in unit tests);
what a script computes besides times is (the out-of-core gradient's agreement with NumPy, the
XLA kernels of the jitted module against hand-written JAX).
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def has(*modules: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


def bench(script: str, *args: str, timeout: int = 600) -> str:
    """Run bench/<script> with `args`; its output, after checking that it exited 0."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    run = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args], capture_output=True,
                         text=True, timeout=timeout, cwd=ROOT, env=env)
    assert run.returncode == 0, f"bench/{script} exited {run.returncode}:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    return run.stdout


def test_array_api_vs_hand():
    out = bench("array_api_vs_hand.py", "--sizes", "1,1,32,1", "--sizes", "32,16,32,4", "--repeats", "2",
                "--number", "3")
    if has("jax"):
        # the generated module, jitted, compiles to the kernels of the hand-written JAX code
        assert out.count("(the same)") == 2, out
        assert "DIFFERENT" not in out
        assert out.count("hand-written again, jit") == 2
    if has("torch"):
        assert out.count("generated, torch eager") == 2 and out.count("hand-written again, eager") == 2


def test_out_of_core(tmp_path):
    pytest.importorskip("dask.array")
    out = bench("out_of_core.py", "--dir", str(tmp_path / "ooc"), "--size", "4M", "--chunk", "512K",
                "--subsample", "1000", "--verify-full", "--clean")
    assert "agreement to 1e-10: yes" in out, out
    assert "full gradient vs a NumPy loop over the chunk files" in out
    assert not (tmp_path / "ooc").exists()                                       # --clean


def test_out_of_core_size_rounds_up():
    """The default size (1.5 × RAM) is a lower bound: the rows are rounded up, never down."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import out_of_core
    finally:
        sys.path.remove(str(ROOT / "bench"))
    ram = 25_275_940_864                          # the development machine's: 1.5 × it is not a whole row
    for size, n in ((int(1.5 * ram) + 1, 100), (36 * 2**30, 100), (10**9 + 7, 3), (1, 100)):
        rows = out_of_core.rows_for(size, n)
        assert rows * 8 * (n + 1) >= size > (rows - 1) * 8 * (n + 1)
    assert out_of_core.parse_bytes("36G") == 36 * 2**30
    assert out_of_core.parse_bytes("512MiB") == 512 * 2**20


@pytest.mark.parametrize("script, args, expect", [
    ("codegen_vs_peers.py", ("--sizes", "1,1,32,1", "--repeats", "2", "--number", "3"), "B=1"),
    ("memory.py", ("--sizes", "8,16,16,4", "--repeats", "2", "--small-calls", "10"), "generated grad"),
    ("hessian.py", ("--sizes", "10", "--repeats", "2", "--number", "2"), "hessian"),
    ("grade_throughput.py", ("--n", "20", "--jobs", "1"), "submissions"),
    ("relu_backends.py", ("--quick",), "width"),
    ("relu_training.py", ("--quick",), "width"),
    ("gpu.py", ("--cpu", "--quick"), "CPU smoke run"),
    ("derive_scaling.py", ("--sizes", "10", "--sympy-sizes", "4"), "sympy.diff"),
])
def test_smoke_runs(script, args, expect):
    if script == "gpu.py" and not has("torch") and not has("jax"):
        pytest.skip("gpu.py's CPU smoke run needs torch or jax")
    out = bench(script, *args)
    assert expect in out, out[-2000:]
    assert "load average" in out                                  # every benchmark prints the machine's load


def test_web_load():
    pytest.importorskip("starlette")
    pytest.importorskip("uvicorn")
    out = bench("web_load.py", "--requests", "60", "--clients", "6", "--slow-every", "30")
    assert "bound (no simple request delayed by more than the time limit):" in out, out  # its timing: not here
    assert "0 errors" in out, out


def test_fd_vs_analytic(tmp_path):
    pytest.importorskip("matplotlib")
    bench("fd_vs_analytic.py", "--sizes", "4,8", "--repeats", "1", "--out", str(tmp_path / "fd.png"))
    assert (tmp_path / "fd.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
