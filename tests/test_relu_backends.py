"""`relu --backend jax|torch` (issue 15, item 2): the same generated module (its array-API print) trains on
JAX (jax.jit, lax.scan, jax.vmap over seeds) and PyTorch, and in float64 follows the NumPy run step for step.

Tolerance: TRAJ_ATOL on every parameter at every snapshot. The runs differ only in the order a BLAS
and XLA sum a dot product (the last bit); over 2,000–20,000 steps the largest difference measured
was 2e-14, so 1e-10 leaves four orders of margin and still fails on any real divergence (one
step with a different minibatch moves the parameters by ~1e-3)."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from symbackprop.cli import main
from symbackprop.relu import experiment
from symbackprop.relu.problem import make_problem
from symbackprop.relu.train import train

TRAJ_ATOL = 1e-10
PROBLEM = make_problem()


def _max_gap(a, b):
    assert a.steps.tolist() == b.steps.tolist()
    return max(float(np.max(np.abs(a.history[n] - b.history[n]))) for n in "wbvc")


def _follows_numpy(backend, mode, optimizer, steps, seeds=None, width=20, every=250):
    kw = dict(steps=steps, every=every, optimizer=optimizer, seeds=seeds)
    ref = train(PROBLEM, width, mode, **kw)
    run = train(PROBLEM, width, mode, backend=backend, **kw)
    assert run.backend == backend and ref.steps[-1] == steps
    gap = _max_gap(ref, run)
    assert gap < TRAJ_ATOL, (backend, mode, optimizer, gap)
    # the test can fail: the runs move far from where they started
    assert max(float(np.max(np.abs(ref.history[n][-1] - ref.history[n][0]))) for n in "wbvc") > 1e-2
    return run


@pytest.mark.parametrize("mode, optimizer, steps", [("all", "sgd", 5000), ("output", "sgd", 2000),
                                                    ("hidden", "momentum", 2000), ("all", "adam", 2000)])
def test_jax_trajectory_follows_numpy(mode, optimizer, steps):
    pytest.importorskip("jax")
    pytest.importorskip("array_api_compat")
    run = _follows_numpy("jax", mode, optimizer, steps)
    assert run.compile_seconds > 0                       # jit-compiled, timed apart


def test_jax_stacks_seeds_with_vmap_and_follows_numpy():
    pytest.importorskip("jax")
    pytest.importorskip("array_api_compat")
    run = _follows_numpy("jax", "all", "momentum", 1000, seeds=3, every=300)     # a short last block too
    assert run.history["w"].shape == (5, 3, 20) and run.steps.tolist() == [0, 300, 600, 900, 1000]


def test_jax_step_is_one_scan_per_group(monkeypatch):
    """Every block of one shape goes through one compiled call (lax.scan over blocks of lax.scan over steps)."""
    pytest.importorskip("jax")
    pytest.importorskip("array_api_compat")
    from symbackprop.relu import backend_jax
    monkeypatch.setattr(backend_jax, "GROUP_INDICES", 40 * 100 * 4)        # four blocks of 100 steps a call
    calls = []
    real = backend_jax.make_group

    def counting(step, seeds):
        group = real(step, seeds)

        class Lowered:
            def lower(self, carry, idx):
                compiled = group.lower(carry, idx).compile()

                def call(carry, idx):
                    calls.append(idx.shape)
                    return compiled(carry, idx)
                return type("C", (), {"compile": lambda self: call})()
        return Lowered()
    monkeypatch.setattr(backend_jax, "make_group", counting)
    ref = train(PROBLEM, 10, "all", steps=1050, every=100)
    run = train(PROBLEM, 10, "all", steps=1050, every=100, backend="jax")
    assert calls == [(4, 100, 40), (4, 100, 40), (2, 100, 40), (1, 50, 40)]
    assert _max_gap(ref, run) < TRAJ_ATOL


@pytest.mark.parametrize("mode, optimizer, seeds", [("all", "sgd", None), ("output", "adam", None),
                                                    ("all", "momentum", 3)])
def test_torch_trajectory_follows_numpy(mode, optimizer, seeds):
    pytest.importorskip("torch")
    _follows_numpy("torch", mode, optimizer, 600, seeds=seeds, every=200)


def test_torch_vmap_over_seeds_gives_the_same_numbers():
    torch = pytest.importorskip("torch")
    from symbackprop.relu import backend_torch
    from symbackprop.relu.train import _flat
    from symbackprop.relu.problem import init_params, minibatch_indices
    init = {n: np.stack([init_params(10, s)[n] for s in range(2)]) for n in "wbvc"}
    _, views = _flat(10, init, 2)
    idx = [np.stack(b, axis=1) for b in zip(*(minibatch_indices(s, 10, 20, 40, 200, 10) for s in range(2)))]
    args = ("all", ("w", "b", "v", "c"), "sgd", 0.02, {n: views[n] for n in "wbvc"})
    stacked = backend_torch.run_blocks(*args, iter(idx), PROBLEM.x_train, PROBLEM.y_train, seeds_with="stack")
    vmapped = backend_torch.run_blocks(*args, iter(idx), PROBLEM.x_train, PROBLEM.y_train, seeds_with="vmap")
    assert torch.is_tensor(torch.zeros(1))
    for a, b in zip(stacked.snapshots, vmapped.snapshots):
        for n in "wbvc":
            np.testing.assert_allclose(a[n], b[n], rtol=0, atol=1e-13)


def test_cli_backend_jax(capsys):
    pytest.importorskip("jax")
    pytest.importorskip("array_api_compat")
    rc = main(["relu", "--backend", "jax", "--width", "10", "--mode", "all,output,ridge", "--steps", "500",
               "--every", "250", "--no-plots", "-q"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "backend jax" in out.splitlines()[0] and "compiling" in out.splitlines()[-1]
    ref = experiment([10], ["all", "output", "ridge"], steps=500, every=250, progress=False)
    for line in ref.summary().splitlines()[3:-1]:          # the same numbers, run by run
        assert line[:-8] in out


@pytest.mark.parametrize("backend, package", [("jax", "jax"), ("torch", "torch")])
def test_missing_library_is_one_message_naming_the_extra(monkeypatch, capsys, backend, package):
    monkeypatch.setitem(sys.modules, package, None)         # `import jax` raises ImportError
    rc = main(["relu", "--backend", backend, "--width", "10", "--steps", "10", "--no-plots", "-q"])
    err = capsys.readouterr().err
    assert rc == 2
    assert f"--backend {backend} needs {package}" in err and f"symbackprop[{backend}]" in err
    assert "Traceback" not in err


def test_unknown_backend_is_rejected(capsys):
    with pytest.raises(SystemExit) as e:
        main(["relu", "--backend", "cupy", "--no-plots", "-q"])
    assert e.value.code == 2
    assert "invalid choice: 'cupy'" in capsys.readouterr().err
