"""Running generated modules on other array libraries, for the tests of the array-API and PyTorch
targets: inputs to a library and results back to NumPy (`backend`), agreement with the NumPy target
(`close`, `run_all`), and `symbackprop codegen` into a string (`codegen`)."""
from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from symbackprop.catalog import BY_NAME
from symbackprop.cli import main as cli_main
from symbackprop.files import load_file, load_source
from symbackprop.testing import random_inputs

ROOT = Path(__file__).resolve().parent.parent

#: Agreement with the NumPy target: the same formulas in another order of rounding, so tight.
RTOL = 1e-10
ATOL = 1e-12


# ----- the backends: inputs to each library, results back to NumPy -----

def backend(name: str):
    """(to the library, back to NumPy) for a backend, or skip the test when the library is missing."""
    if name == "numpy":
        return (lambda a: a), np.asarray
    if name == "strict":
        xs = pytest.importorskip("array_api_strict")
        return (lambda a: xs.asarray(np.asarray(a, dtype=float))), (lambda v: np.from_dlpack(v))
    if name == "torch":
        torch = pytest.importorskip("torch")
        return (lambda a: torch.asarray(np.asarray(a, dtype=float))), (lambda v: v.detach().cpu().numpy())
    if name == "jax":
        jax = pytest.importorskip("jax")
        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp
        return (lambda a: jnp.asarray(np.asarray(a, dtype=float))), np.asarray
    if name == "dask":
        da = pytest.importorskip("dask.array")
        return (lambda a: da.from_array(np.asarray(a, dtype=float), chunks=2)), (lambda v: np.asarray(v.compute()))
    raise AssertionError(name)


def close(got, want) -> bool:
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    scale = max(1.0, float(np.max(np.abs(want), initial=0.0)))
    return got.shape == want.shape and bool(np.all(np.abs(got - want) <= RTOL * np.abs(want) + ATOL * scale))


def codegen(formula: str, options: list, target: str = "array-api", shown: str = "module.py") -> str:
    """`symbackprop codegen` (with its self-check) into a string; `shown`: the -o its header names."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "module.py"
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            rc = cli_main(["codegen", formula, *options, "--target", target, "-o", str(out),
                          "--command-output", shown])
        assert rc == 0, err.getvalue()
        return out.read_text(encoding="utf-8")


def run_all(module, reference, point, to, back):
    """Value, gradients, hvp and hessian of `module` on the library's arrays against `reference` on NumPy's."""
    args = {k: to(v) for k, v in point.items()}
    value, grads = module.value_and_grad(**args)
    want_value, want = reference.value_and_grad(**point)
    assert close(back(value), want_value), (back(value), want_value)
    assert set(grads) == set(want)
    for n in want:
        assert close(back(grads[n]), want[n]), (n, back(grads[n]), want[n])
    only = module.grad(**args)
    for n in want:
        assert close(back(only[n]), want[n]), n
    assert close(back(module.forward(**args)), want_value)
    if hasattr(reference, "hvp"):
        rng = np.random.default_rng(7)
        names = list(reference.HVP_WRT)
        direction = {n: rng.standard_normal(np.shape(point[n])) for n in names}
        pick = (lambda d: d) if len(names) > 1 else (lambda d: d[names[0]])
        got = module.hvp(pick({n: to(v) for n, v in direction.items()}), **args)
        expect = reference.hvp(pick(direction), **point)
        got, expect = (got, expect) if len(names) > 1 else ({names[0]: got}, {names[0]: expect})
        for n in names:
            assert close(back(got[n]), expect[n]), ("hvp", n)
    if hasattr(reference, "hessian"):
        assert close(back(module.hessian(**args)), reference.hessian(**point)), "hessian"


def point_ok(reference, point) -> bool:
    """The NumPy module is finite and moderate at `point` (values and gradients below 1e6)."""
    try:
        with np.errstate(all="ignore"):
            value, grads = reference.value_and_grad(**point)
    except (np.linalg.LinAlgError, ValueError, FloatingPointError):
        return False
    arrays = [np.asarray(value)] + [np.asarray(g) for g in grads.values()]
    return all(np.all(np.isfinite(a)) and np.max(np.abs(a), initial=0.0) < 1e6 for a in arrays)


# ----- checks every target other than NumPy passes -----

def check_float32(target: str) -> None:
    """A --dtype float32 module takes float64 tensors and returns float32 ones, close to the float64 values."""
    torch = pytest.importorskip("torch")
    m = BY_NAME["logistic_hessian"]
    module = load_source(codegen(m.formula, m.options + ["--dtype", "float32"], target=target), "runs_f32", keep=False)
    reference = load_file(ROOT / m.path)
    point = random_inputs(reference, rng=np.random.default_rng(1))
    args = {k: torch.asarray(v) for k, v in point.items()}                  # float64 in, float32 out
    value, grads = module.value_and_grad(**args)
    assert value.dtype == torch.float32 and grads["x"].dtype == torch.float32
    assert module.hessian(**args).dtype == torch.float32
    want_value, want = reference.value_and_grad(**point)
    assert np.allclose(grads["x"].numpy(), want["x"], rtol=1e-4, atol=1e-5)


def check_bad_shape(src: str, to) -> None:
    """The MLP module (mlp_relu_batch) given a wrong shape: one message naming the input and the dims."""
    module = load_source(src, "runs_shape", keep=False)
    rng = np.random.default_rng(0)
    point = {"W2": rng.standard_normal((2, 3)), "W1": rng.standard_normal((3, 4)), "x": rng.standard_normal((5, 4)),
             "b": rng.standard_normal(3), "y": rng.standard_normal((5, 3))}
    with pytest.raises(ValueError, match=r"input `y` has shape \(5, 3\), expected \(B=5, k=2\)"):
        module.value_and_grad(**{k: to(v) for k, v in point.items()})


def run_without(package: str, argv: list) -> subprocess.CompletedProcess:
    """`symbackprop ARGV` in a fresh interpreter where `package` cannot be imported."""
    code = ("import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            f"        if name.split('.')[0] == {package!r}:\n"
            "            raise ModuleNotFoundError(name, name=name)\n"
            "sys.meta_path.insert(0, Block())\n"
            f"sys.path.insert(0, {str(ROOT)!r})\n"
            "from symbackprop.cli import main\n"
            f"sys.exit(main({argv!r}))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stdout == "", r.stderr
    return r
