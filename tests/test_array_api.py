"""`codegen --target array-api` (issue 15): one generated file, run on every array library.

Every module of the catalog (generated/) and random formulas of the differential strategy are
generated with --target array-api, run under array-api-strict (the standard and nothing more),
NumPy, PyTorch (CPU), JAX (CPU, float64) and Dask, and compared with the NumPy target (the
committed modules, themselves checked against autograd and finite differences elsewhere). Also:
jax.jit and torch.compile trace the module; with --batch, Dask arrays chunked along the batch axis
give the full-batch gradient on a dask.distributed LocalCluster. Libraries that are not installed
skip their tests.
"""
from __future__ import annotations

import ast
import contextlib
import io
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, note, settings
from hypothesis import strategies as st

import hypothesis_profiles  # noqa: F401  (registers and loads the profile)
import strategies as S
from hypothesis_profiles import examples
import symbackprop as sb
from symbackprop.catalog import BY_NAME, MODULES
from symbackprop.cli import main as cli_main
from symbackprop.emit import emit_module
from symbackprop.errors import InternalError
from symbackprop.expr import RULES
from symbackprop.files import load_file, load_source
from symbackprop.testing import random_inputs

pytest.importorskip("array_api_compat")

ROOT = Path(__file__).resolve().parent.parent
#: Agreement with the NumPy target: the same formulas in another order of rounding, so tight.
RTOL = 1e-10
ATOL = 1e-12
BACKENDS = ["numpy", "strict", "torch", "jax", "dask"]
#: linalg functions the Dask namespace lacks (array_api_compat.dask.array.linalg): those modules skip Dask.
DASK_MISSING = ("linalg.det(", "linalg.slogdet(", "linalg.pinv(", "linalg.matrix_power(")


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


_SOURCES: dict = {}


def catalog_source(name: str) -> str:
    if name not in _SOURCES:
        m = BY_NAME[name]
        _SOURCES[name] = codegen(m.formula, m.options)
    return _SOURCES[name]


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


# ----- the rule table -----

def test_every_operator_has_an_array_api_form():
    from symbackprop.rules_array_api import FORMS, TEMPLATES
    for op, rule in RULES.items():
        if rule.expand is not None or rule.kind in ("leaf", "abstract"):
            continue
        assert op in TEMPLATES or op in FORMS, op


def test_a_missing_form_raises(monkeypatch):
    from symbackprop import rules_array_api
    program = sb.parse_formula("sum(exp(x))", {"x": "n"})
    monkeypatch.delitem(rules_array_api.TEMPLATES, "exp")
    with pytest.raises(InternalError, match="array-API printing rule for `exp` not implemented"):
        emit_module(program, target="array-api")
    assert "np.exp(x)" in emit_module(program)                               # the NumPy target is untouched


# ----- the generated file -----

def test_the_module_uses_the_standard_only():
    for m in MODULES:
        src = catalog_source(m.name)
        tree = ast.parse(src)
        imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
        assert {a.name for n in imports for a in n.names} <= {"array_api_compat", "array_api_compat.numpy"}, m.name
        top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        assert [a.name for n in top for a in n.names] == ["array_api_compat"], m.name
        maths = [f for f in tree.body if isinstance(f, ast.FunctionDef)
                 and f.name not in ("_dims", "_shape_message", "_namespace")]
        code = "\n".join(ast.unparse(f) for f in maths)
        for bad in ("np.", "numpy", "einsum", "vdot", "heaviside", "outer("):
            assert bad not in code, (m.name, bad)
        for node in (n for f in maths for n in ast.walk(f)):   # no array methods (.sum(), .copy()): xp's functions
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                owner = node.func.value
                assert isinstance(owner, ast.Name) and owner.id in ("xp", "array_api_compat") or \
                    isinstance(owner, ast.Attribute) and ast.unparse(owner) == "xp.linalg", (m.name, ast.unparse(node))
        for node in (n for f in maths for n in ast.walk(f)):   # no in-place updates of arrays
            assert not isinstance(node, ast.AugAssign), (m.name, ast.unparse(node))
            if isinstance(node, ast.Assign):
                assert not any(isinstance(t, ast.Subscript) for t in node.targets), (m.name, ast.unparse(node))
        assert src.startswith('"""Gradient module generated by symbackprop'), m.name
        assert "--target array-api" in src, m.name


def test_the_module_is_deterministic():
    m = BY_NAME["mlp_relu_batch"]
    assert codegen(m.formula, m.options) == catalog_source(m.name)


def test_the_numpy_target_is_the_default_and_unchanged():
    m = BY_NAME["mlp_relu_batch"]
    src = codegen(m.formula, m.options, target="numpy", shown=m.path)
    assert src == (ROOT / m.path).read_text(encoding="utf-8")
    assert "--target" not in src


@pytest.mark.parametrize("name", [m.name for m in MODULES])
@pytest.mark.parametrize("lib", BACKENDS)
def test_catalog_module_on_each_library(name, lib):
    to, back = backend(lib)
    src = catalog_source(name)
    if lib == "dask" and any(f in src for f in DASK_MISSING):
        pytest.skip("Dask has no " + ", ".join(f for f in DASK_MISSING if f in src))
    module = load_source(src, f"aa_{name}")
    reference = load_file(ROOT / BY_NAME[name].path)
    point = random_inputs(reference, rng=np.random.default_rng(3))
    run_all(module, reference, point, to, back)


def test_scalars_may_be_python_numbers():
    """part_a has scalar inputs only: Python floats run on NumPy through array_api_compat.numpy."""
    module = load_source(catalog_source("part_a"), "aa_part_a_floats")
    reference = load_file(ROOT / BY_NAME["part_a"].path)
    value, grads = module.value_and_grad(x=1.5)
    want_value, want = reference.value_and_grad(x=1.5)
    assert close(value, want_value) and close(grads["x"], want["x"])


def test_a_bad_shape_is_one_clear_message():
    module = load_source(catalog_source("mlp_relu_batch"), "aa_mlp_shape")
    rng = np.random.default_rng(0)
    point = {"W2": rng.standard_normal((2, 3)), "W1": rng.standard_normal((3, 4)), "x": rng.standard_normal((5, 4)),
             "b": rng.standard_normal(3), "y": rng.standard_normal((5, 3))}
    with pytest.raises(ValueError, match=r"input `y` has shape \(5, 3\), expected \(B=5, k=2\)"):
        module.value_and_grad(**point)


@pytest.mark.parametrize("name", ["xp", "array_api_compat"])
def test_a_name_the_module_needs_is_a_clear_error(name):
    r = subprocess.run([sys.executable, "-m", "symbackprop", "codegen", f"sum({name} * {name})", "-s", f"{name}=n",
                        "--target", "array-api"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2, r.stderr
    assert f"`{name}` names the array namespace" in r.stderr and "Traceback" not in r.stderr


def test_float32_modules():
    torch = pytest.importorskip("torch")
    m = BY_NAME["logistic_hessian"]
    src = codegen(m.formula, m.options + ["--dtype", "float32"])
    module = load_source(src, "aa_logistic32")
    reference = load_file(ROOT / m.path)
    point = random_inputs(reference, rng=np.random.default_rng(1))
    args = {k: torch.asarray(v) for k, v in point.items()}                  # float64 in, float32 out
    value, grads = module.value_and_grad(**args)
    assert value.dtype == torch.float32 and grads["x"].dtype == torch.float32
    assert module.hessian(**args).dtype == torch.float32
    want_value, want = reference.value_and_grad(**point)
    assert np.allclose(grads["x"].numpy(), want["x"], rtol=1e-4, atol=1e-5)


# ----- compilers: jax.jit and torch.compile trace the module -----

def test_jax_jit():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    for name in ("mlp_relu_batch", "logistic_hessian"):
        module = load_source(catalog_source(name), f"aa_jit_{name}")
        reference = load_file(ROOT / BY_NAME[name].path)
        point = random_inputs(reference, rng=np.random.default_rng(5))
        args = {k: jnp.asarray(v) for k, v in point.items()}
        value, grads = jax.jit(module.value_and_grad)(**args)
        want_value, want = reference.value_and_grad(**point)
        assert close(value, want_value) and all(close(grads[n], want[n]) for n in want), name
        if hasattr(reference, "hessian"):
            assert close(jax.jit(module.hessian)(**args), reference.hessian(**point))
            d = np.ones(np.shape(point["x"]))
            assert close(jax.jit(module.hvp)(jnp.asarray(d), **args), reference.hvp(d, **point))
    # and jax's own autodiff through the generated forward agrees with the generated gradient
    module = load_source(catalog_source("mlp_tanh"), "aa_jit_mlp_tanh")
    point = random_inputs(module, rng=np.random.default_rng(6))
    args = {k: jnp.asarray(v) for k, v in point.items()}
    auto = jax.grad(lambda W1: module.forward(**{**args, "W1": W1}))(args["W1"])
    assert close(module.value_and_grad(**args)[1]["W1"], auto)


def test_torch_compile():
    torch = pytest.importorskip("torch")
    module = load_source(catalog_source("mlp_relu_batch"), "aa_compile_mlp")
    reference = load_file(ROOT / BY_NAME["mlp_relu_batch"].path)
    point = random_inputs(reference, rng=np.random.default_rng(8))
    args = {k: torch.asarray(v) for k, v in point.items()}
    # fullgraph: one graph, no break anywhere in the module (aot_eager: traced, without a C++ compiler)
    compiled = torch.compile(module.value_and_grad, fullgraph=True, backend="aot_eager")
    value, grads = compiled(**args)
    want_value, want = reference.value_and_grad(**point)
    assert close(value.numpy(), want_value) and all(close(grads[n].numpy(), want[n]) for n in want)


# ----- sizes under a function: log(m), √m (found by the long run: the target refused them) -----

@pytest.mark.parametrize("formula, shapes", [
    ("logsumexp(abs((w - w)))", ["-s", "w=m"]),
    ("norm(w - w + 1) * sum(w) + logsumexp(w - w)", ["-s", "w=m"]),
    ("sum(w) / norm(w - w + 1)", ["-s", "w=m"]),
    ("w @ w * logsumexp(0 * w)", ["-s", "w=m"]),
    ("mean(C @ erf(w))", ["-s", "C=n,m", "-s", "w=m"]),          # 2/(√π·n): an irrational constant
])
@pytest.mark.parametrize("lib", ["numpy", "strict", "torch", "jax"])
def test_functions_of_sizes(formula, shapes, lib):
    """A size expression with a function of the dims is printed with the namespace's function of a 0-d
    array, an irrational number as its float literal (the module imports no math); values are checked
    on each library against the NumPy module."""
    to, back = backend(lib)
    src = codegen(formula, shapes)
    assert "math." not in src and "import math" not in src
    module = load_source(src, "aa_sizes")
    reference = load_source(codegen(formula, shapes, target="numpy"), "aa_sizes_ref")
    rng = np.random.default_rng(3)
    point = {"w": rng.standard_normal(5), "C": rng.standard_normal((4, 5))}
    point = {k: v for k, v in point.items() if k in reference.INPUTS}
    run_all(module, reference, point, to, back)
    if lib == "jax":                                 # traces: the log of a size is a constant of the program
        import jax
        value, grads = jax.jit(module.value_and_grad)(**{k: to(v) for k, v in point.items()})
        assert close(back(value), reference.value_and_grad(**point)[0])


# ----- random formulas of the differential strategy -----

def _point_ok(reference, point) -> bool:
    try:
        with np.errstate(all="ignore"):
            value, grads = reference.value_and_grad(**point)
    except (np.linalg.LinAlgError, ValueError, FloatingPointError):
        return False
    arrays = [np.asarray(value)] + [np.asarray(g) for g in grads.values()]
    return all(np.all(np.isfinite(a)) and np.max(np.abs(a), initial=0.0) < 1e6 for a in arrays)


def _compare_targets(program, point, libs, **options):
    d = sb.Derivation(program, wrt=options.get("wrt"), check=True)     # derived (and checked) once for both
    reference = load_source(emit_module(d, **options), "aa_ref")
    src = emit_module(d, target="array-api", **options)
    module = load_source(src, "aa_random")
    assume(_point_ok(reference, point))
    for lib in libs:
        if lib == "dask" and (any(f in src for f in DASK_MISSING) or options.get("batch") and "linalg." in src):
            continue                                 # (Dask's linalg takes 2-d arrays only, not stacks)
        to, back = backend(lib)
        with np.errstate(all="ignore"):
            run_all(module, reference, point, to, back)


def _available(libs):
    out = []
    for lib in libs:
        try:
            backend(lib)
            out.append(lib)
        except pytest.skip.Exception:
            pass
    return out


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@settings(max_examples=examples("array_api"))
@given(formula=S.formulas(), seed=st.integers(0, 2**16))
def test_random_formulas_on_each_library(formula, seed):
    note(formula.text)
    assume(formula.variables)
    program = sb.parse_formula(formula.text, formula.shapes)
    point = S.random_values(formula, np.random.default_rng(seed))
    _compare_targets(program, point, _available(["numpy", "strict", "torch", "jax"]))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@settings(max_examples=examples("array_api_batch"))
@given(case=S.batch_cases(), seed=st.integers(0, 2**16))
def test_random_batched_formulas_on_each_library(case, seed):
    note(repr(case))
    assume(case.batch)
    f = case.formula
    program = sb.parse_formula(f.text, f.shapes)
    rng = np.random.default_rng(seed)
    base = S.random_values(f, rng)
    point = {n: (np.stack([np.asarray(S.random_values(f, rng)[n]) for _ in range(case.size)]) if n in case.batch
                 else v) for n, v in base.items()}
    _compare_targets(program, point, _available(["strict", "torch", "jax", "dask"]), wrt=case.wrt, batch=case.batch)


# ----- out of core: Dask arrays chunked along the batch axis, on a distributed cluster -----

def test_full_batch_gradient_on_a_dask_cluster():
    """Logistic regression with --batch: the data in chunks of rows on a LocalCluster (loopback), the
    gradient of the mean loss over every row, against NumPy's in-memory gradient."""
    da = pytest.importorskip("dask.array")
    distributed = pytest.importorskip("distributed")
    src = codegen("softplus(a @ w) - y * (a @ w)", ["-s", "a=n", "-s", "w=n", "--batch", "a,y", "--wrt", "w"])
    module = load_source(src, "aa_logistic_batch")
    rng = np.random.default_rng(11)
    N, n = 600, 5
    X, w = rng.standard_normal((N, n)), rng.standard_normal(n)
    y = (rng.uniform(size=N) < 1 / (1 + np.exp(-X @ w))).astype(float)
    z = X @ w
    want_value = np.mean(np.logaddexp(0, z) - y * z)
    want = X.T @ (1 / (1 + np.exp(-z)) - y) / N                             # by hand, not by symbackprop
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp", host="127.0.0.1",
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        Xd, yd = da.from_array(X, chunks=(100, n)), da.from_array(y, chunks=100)
        value, grads = module.value_and_grad(a=Xd, w=da.from_array(w), y=yd)
        assert isinstance(grads["w"], da.Array) and Xd.numblocks == (6, 1)  # lazy until computed, in 6 chunks
        value, g = client.compute([value, grads["w"]], sync=True)
    assert math.isclose(float(value), want_value, rel_tol=1e-12)
    assert np.allclose(g, want, rtol=1e-12, atol=1e-15)


# ----- the README's examples, one per library -----

def test_readme_examples(tmp_path, monkeypatch):
    """README.md's "Other array libraries": its codegen command, then its session, run as a doctest."""
    import doctest
    import re
    import shlex
    for lib in ("torch", "jax", "dask.array"):
        pytest.importorskip(lib)
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("### Other array libraries"):]
    section = section[:section.index("\n### ", 5)]
    command = re.search(r"```sh\n(symbackprop codegen [^\n]*)\n```", section).group(1)
    monkeypatch.chdir(tmp_path)
    assert cli_main(shlex.split(command)[1:]) == 0
    monkeypatch.syspath_prepend(str(tmp_path))
    session = re.search(r"```pycon\n(.*?)```", section, re.S).group(1)
    test = doctest.DocTestParser().get_doctest(session, {}, "README", "README.md", 0)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.summarize(verbose=False).failed == 0
    assert runner.summarize(verbose=False).attempted >= 8


# ----- the extras -----

def test_the_extras():
    import tomllib
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras["torch"] == ["array-api-compat>=1.11", "torch==2.13.0"]          # exactly: any other spec is CUDA
    assert any(r.startswith("dask[array,distributed]") for r in extras["dask"])
    assert any(r.startswith("jax") for r in extras["jax"])
    for name in ("array-api", "jax", "torch", "dask"):
        assert any(r.startswith("array-api-compat") for r in extras[name]), name
    assert any(r.startswith("array-api-strict") for r in extras["test"])
    assert any(r.startswith("array-api-compat") for r in extras["test"])


def test_without_array_api_compat_the_target_names_the_extra():
    code = ("import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] == 'array_api_compat':\n"
            "            raise ModuleNotFoundError(name, name=name)\n"
            "sys.meta_path.insert(0, Block())\n"
            f"sys.path.insert(0, {str(ROOT)!r})\n"
            "from symbackprop.cli import main\n"
            "sys.exit(main(['codegen', 'sum(x * x)', '-s', 'x=n', '--target', 'array-api']))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr
    assert "--target array-api needs the package array-api-compat" in r.stderr
    assert "pip install 'symbackprop[array-api]'" in r.stderr and "Traceback" not in r.stderr
    assert r.stdout == ""


# ----- found by the random formulas above, while the target was written -----

@pytest.mark.parametrize("formula, shapes, batch", [
    ("softplus(0.5) + sum(u)", {"u": "n"}, []),       # a number handed to a function: a 0-d array, not 0.5
    ("sign(0.5) * a", {}, []),
    ("a", {}, []),                                   # a constant gradient (1.0): returned as an array
    ("z1 = u; a", {"u": "n"}, ["u"]),                # B · (1/B) for an unbatched scalar: an array, not a float
    ("z1 = u; a", {"u": "n"}, ["a"]),                # the seed broadcast over a batched scalar input
    ("sum(2 * relu(u) + u)", {"u": "n"}, []),         # 2·step(u): no `where` with numbers only (no dtype)
])
def test_numbers_never_reach_the_standards_functions(formula, shapes, batch):
    xs = pytest.importorskip("array_api_strict")
    program = sb.parse_formula(formula, shapes)
    module = load_source(emit_module(program, batch=batch, target="array-api"), "aa_numbers")
    reference = load_source(emit_module(program, batch=batch), "aa_numbers_ref")
    rng = np.random.default_rng(2)
    point = {n: rng.standard_normal(tuple(3 if s != "B" else 4 for s in reference.SHAPES[n])) for n in reference.INPUTS}
    point = {n: float(v) if v.ndim == 0 else v for n, v in point.items()}
    to, back = backend("strict")
    value, grads = module.value_and_grad(**{n: to(v) for n, v in point.items()})
    array = type(xs.asarray(0.0))
    assert isinstance(value, array) and all(isinstance(g, array) for g in grads.values())
    run_all(module, reference, point, to, back)


def test_dim_printer_values():
    """Every size expression the array-API printer writes evaluates (with the NumPy namespace) to the
    expression's value, precedence included: √, its reciprocal, powers, logs and irrational constants."""
    import sympy
    import array_api_compat.numpy as xp
    from symbackprop.printer_array_api import DimPrinter
    m, n = sympy.symbols("m n", positive=True)
    printer = DimPrinter("xp", "dtype=xp.float64")
    cases = [sympy.log(m), 2 / (sympy.sqrt(sympy.pi) * n), sympy.sqrt(m), 1 / sympy.sqrt(m), n / sympy.sqrt(m),
             sympy.sqrt(m) + 1, m ** sympy.Rational(-3, 2), sympy.exp(n) / m, sympy.log(m) ** 2 / n,
             (1 + sympy.sqrt(m)) ** 2, sympy.log(2) * m, 3 - 1 / sympy.sqrt(n * m)]
    for e in cases:
        src = printer.doprint(e)
        assert "math." not in src, src
        got = float(eval(src, {"xp": xp, "m": 7, "n": 3}))             # our own printed source, not user text
        want = float(e.subs({m: 7, n: 3}))
        assert got == pytest.approx(want, rel=1e-15), (e, src, got, want)
