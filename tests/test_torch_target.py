"""`codegen --target torch`: a module in PyTorch's own functions that imports torch alone.

Every module of the catalog, every built-in function (alone and on a batch axis) and random formulas
of the differential strategy are generated with --target torch (each through codegen's self-check
against finite differences), run on CPU tensors and compared with the NumPy target, itself checked
against autograd and finite differences elsewhere; PyTorch's own autograd through the generated
forward is a second oracle. Also: the file imports torch alone and reads like hand-written PyTorch,
torch.compile traces it in one graph, and float64 stays float64 where PyTorch would promote a
number to its default float32.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, note, settings
from hypothesis import strategies as st

import hypothesis_profiles  # noqa: F401  (registers and loads the profile)
import strategies as S
from hypothesis_profiles import examples
from module_runs import backend, check_bad_shape, check_float32, close, codegen, point_ok, run_all, run_without
from test_rules import arg_shapes, sample
import symbackprop as sb
from symbackprop.catalog import BY_NAME, MODULES
from symbackprop.emit import emit_module
from symbackprop.errors import InternalError
from symbackprop.expr import RULES
from symbackprop.files import load_file, load_source
from symbackprop.testing import check_grads, on_numpy, random_inputs

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parent.parent
TO, BACK = backend("torch")
_SOURCES: dict = {}


def catalog_source(name: str) -> str:
    if name not in _SOURCES:
        m = BY_NAME[name]
        _SOURCES[name] = codegen(m.formula, m.options, target="torch")
    return _SOURCES[name]


def _numpy_and_torch(formula: str, shapes: dict, **options):
    program = sb.parse_formula(formula, shapes)
    d = sb.Derivation(program, wrt=options.pop("wrt", None), check=True)
    reference = load_source(emit_module(d, **options), "torch_ref", keep=False)
    src = emit_module(d, target="torch", **options)
    return reference, load_source(src, "torch_module", keep=False), src


# ----- the catalog -----

@pytest.mark.parametrize("name", [m.name for m in MODULES])
def test_catalog_module(name):
    module = load_source(catalog_source(name), f"torch_{name}")
    reference = load_file(ROOT / BY_NAME[name].path)
    point = random_inputs(reference, rng=np.random.default_rng(3))
    run_all(module, reference, point, TO, BACK)


def test_the_module_imports_torch_alone_and_reads_like_pytorch():
    for m in MODULES:
        src = catalog_source(m.name)
        tree = ast.parse(src)
        imports = [a.name for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names]
        assert imports == ["torch"], (m.name, imports)
        for bad in ("np.", "numpy", "array_api_compat", "xp.", "_namespace", "einsum", "xp =", "axis="):
            assert bad not in src.split('"""', 2)[2], (m.name, bad)
        for node in ast.walk(tree):                  # no in-place updates of tensors
            assert not isinstance(node, ast.AugAssign), (m.name, ast.unparse(node))
        assert "--target torch" in src, m.name
    src = catalog_source("mlp_relu_batch")
    assert "x2 = torch.relu(x1)" in src and "g_x1 = (g_x3 @ W2) * (x1 > 0)" in src
    assert "grad_b = torch.sum(g_x1, dim=0)" in src


def test_the_module_is_deterministic():
    m = BY_NAME["logistic_hessian"]
    assert codegen(m.formula, m.options, target="torch") == catalog_source(m.name)


def test_autograd_agrees_with_the_generated_gradient():
    """A second oracle: PyTorch's own autograd through the generated forward."""
    for name in ("mlp_tanh", "mlp_relu_batch", "logistic_hessian"):
        module = load_source(catalog_source(name), f"torch_auto_{name}")
        point = random_inputs(module, rng=np.random.default_rng(4))
        args = {k: torch.asarray(v).requires_grad_(True) for k, v in point.items() if np.ndim(v)}
        args.update({k: v for k, v in point.items() if not np.ndim(v)})
        module.forward(**args).backward()
        value, grads = module.value_and_grad(**{k: v.detach() if torch.is_tensor(v) else v for k, v in args.items()})
        for n in module.WRT:
            assert close(BACK(grads[n]), BACK(args[n].grad)), (name, n)


# ----- every built-in function, alone and on a batch axis -----

BUILTINS = sorted(op for op, rule in RULES.items() if rule.builtin is not None)


def _builtin_case(op: str):
    """A formula calling `op` once on inputs a0, a1 (shapes from test_rules), weighted by r."""
    shapes = arg_shapes(op)
    rule = RULES[op]
    args = [f"a{i}" for i in range(len(shapes))]
    if op == "matrix_power":
        args, shapes = ["a0", "3"], shapes[:1]
    out = rule.shape(*shapes, *(() if op != "matrix_power" else (3,)))
    call = f"{op}({', '.join(args)})"
    formula = f"sum(r * {call})" if out else f"r * {call}"
    dims = {(): "", (3,): "n", (4,): "m", (3, 3): "n,n", (3, 4): "n,m", (4, 3): "m,n"}
    named = {f"a{i}": dims[s] for i, s in enumerate(shapes)}
    named["r"] = dims[tuple(out)]
    return formula, {k: v for k, v in named.items() if v}, shapes, rule.domain


@pytest.mark.parametrize("batched", [False, True], ids=["one", "batch"])
@pytest.mark.parametrize("op", BUILTINS)
def test_every_builtin(op, batched):
    formula, shapes, arg_shapes_, domain = _builtin_case(op)
    batch = ["a0"] if batched else []
    reference, module, src = _numpy_and_torch(formula, shapes, batch=batch)
    rng = np.random.default_rng(11)
    size = 4
    point = {}
    for i, s in enumerate(arg_shapes_):
        v = sample(((size,) if f"a{i}" in batch else ()) + s, domain, rng)
        point[f"a{i}"] = float(v) if v.ndim == 0 else v
    if "r" in reference.INPUTS:
        r_shape = tuple(size if d == "B" else {"n": 3, "m": 4}[d] for d in reference.SHAPES["r"])
        point["r"] = rng.standard_normal(r_shape) if r_shape else float(rng.standard_normal())
    assert point_ok(reference, point)
    run_all(module, reference, point, TO, BACK)
    assert all(r.ok for r in check_grads(on_numpy(module), inputs=point).values()), src


def test_every_operator_has_a_torch_form():
    from symbackprop.rules_torch import FORMS, TEMPLATES
    for op, rule in RULES.items():
        if rule.expand is not None or rule.kind in ("leaf", "abstract"):
            continue
        assert op in TEMPLATES or op in FORMS, op


def test_a_missing_form_raises(monkeypatch):
    from symbackprop import rules_torch
    program = sb.parse_formula("sum(exp(x))", {"x": "n"})
    monkeypatch.delitem(rules_torch.TEMPLATES, "exp")
    with pytest.raises(InternalError, match="PyTorch printing rule for `exp` not implemented"):
        emit_module(program, target="torch")
    assert "xp.exp(x)" in emit_module(program, target="array-api")          # the array-API table is its own


# ----- dtypes: float64 stays float64 -----

@pytest.mark.parametrize("formula, shapes, batch", [
    ("sum(2 * relu(u) + u)", {"u": "n"}, []),         # 2·step(u): a number times a mask alone
    ("sum(relu(u))", {"u": "n"}, []),
    ("sum(3 * relu(u))", {"u": "n"}, ["u"]),
    ("a * sum(relu(u))", {"u": "n"}, []),
    ("a", {}, []),                                   # a constant gradient: a float64 tensor
    ("a * a", {}, []),                               # every input a scalar: Python floats in, float64 out
])
def test_float64_stays_float64(formula, shapes, batch):
    """A Python number times a boolean tensor is torch's default float32: the module never prints one."""
    reference, module, src = _numpy_and_torch(formula, shapes, batch=batch)
    rng = np.random.default_rng(5)
    point = {n: rng.standard_normal(tuple(4 if s == "B" else 3 for s in reference.SHAPES[n])) for n in reference.INPUTS}
    point = {n: float(v) if v.ndim == 0 else v for n, v in point.items()}
    for args in ({n: TO(v) if np.ndim(v) else v for n, v in point.items()}, {n: TO(v) for n, v in point.items()}):
        value, grads = module.value_and_grad(**args)
        assert value.dtype == torch.float64, (src, value)
        assert all(g.dtype == torch.float64 for g in grads.values()), (src, grads)
    run_all(module, reference, point, TO, BACK)


@pytest.mark.parametrize("formula, shapes", [
    ("logsumexp(abs((w - w)))", {"w": "m"}),                       # log(m): a 0-d tensor, not math.log
    ("norm(w - w + 1) * sum(w) + logsumexp(w - w)", {"w": "m"}),   # √m and log(m)
    ("mean(C @ erf(w))", {"C": "n,m", "w": "m"}),                  # 2/(√π·n)
    ("softplus(0.5) + sum(u)", {"u": "n"}),                         # a number handed to a function
    ("sign(0.5) * a + a * b", {}),
])
def test_sizes_and_numbers(formula, shapes):
    """Sizes under a function, constants handed to functions: the values of the NumPy module, in float64."""
    reference, module, src = _numpy_and_torch(formula, shapes)
    assert "math." not in src and "np." not in src
    rng = np.random.default_rng(6)
    point = {"w": rng.standard_normal(5), "C": rng.standard_normal((4, 5)), "u": rng.standard_normal(3),
             "a": 0.7, "b": -1.3}
    point = {k: v for k, v in point.items() if k in reference.INPUTS}
    value, grads = module.value_and_grad(**{k: TO(v) if np.ndim(v) else v for k, v in point.items()})
    assert value.dtype == torch.float64 and all(g.dtype == torch.float64 for g in grads.values())
    run_all(module, reference, point, TO, BACK)


def test_float32_modules():
    check_float32("torch")


# ----- shapes, names, the command line -----

def test_a_bad_shape_is_one_clear_message():
    check_bad_shape(catalog_source("mlp_relu_batch"), TO)


def test_torch_as_a_name_is_a_clear_error():
    r = subprocess.run([sys.executable, "-m", "symbackprop", "codegen", "sum(torch * torch)", "-s", "torch=n",
                        "--target", "torch"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2, r.stderr
    assert "`torch` names the array namespace" in r.stderr and "Traceback" not in r.stderr


def test_gradcheck_runs_a_torch_module(tmp_path):
    path = tmp_path / "mlp.py"
    path.write_text(catalog_source("mlp_relu"), encoding="utf-8")
    r = subprocess.run([sys.executable, "-m", "symbackprop", "gradcheck", str(path)], capture_output=True, text=True,
                       cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "all gradients agree" in r.stdout


def test_without_torch_the_target_names_the_extra():
    r = run_without("torch", ["codegen", "sum(x * x)", "-s", "x=n", "--target", "torch"])
    assert "--target torch needs torch" in r.stderr and "pip install 'symbackprop[torch]'" in r.stderr


# ----- compilers and transforms -----

def test_torch_compile_traces_one_graph():
    module = load_source(catalog_source("mlp_relu_batch"), "torch_compile_mlp")
    reference = load_file(ROOT / BY_NAME["mlp_relu_batch"].path)
    point = random_inputs(reference, rng=np.random.default_rng(8))
    args = {k: torch.asarray(v) for k, v in point.items()}
    compiled = torch.compile(module.value_and_grad, fullgraph=True, backend="aot_eager")
    value, grads = compiled(**args)
    want_value, want = reference.value_and_grad(**point)
    assert close(value.numpy(), want_value) and all(close(grads[n].numpy(), want[n]) for n in want)


def test_vmap_over_seeds():
    """torch.func.vmap of the per-example module over a stack of parameters (what --seeds stacks)."""
    module = load_source(catalog_source("mlp_relu"), "torch_vmap_mlp")
    reference = load_file(ROOT / BY_NAME["mlp_relu"].path)
    rng = np.random.default_rng(9)
    points = [random_inputs(reference, sizes={"d": 3, "h": 5, "k": 2}, rng=rng) for _ in range(3)]
    stacked = [torch.asarray(np.stack([p[k] for p in points])) for k in reference.INPUTS]
    values, grads = torch.func.vmap(module.value_and_grad)(*stacked)      # (vmap maps positional arguments)
    for i, p in enumerate(points):
        want_value, want = reference.value_and_grad(**p)
        assert close(values[i].numpy(), want_value)
        assert all(close(grads[n][i].numpy(), want[n]) for n in want)


# ----- random formulas of the differential strategy -----

def _compare(program, point, **options):
    d = sb.Derivation(program, wrt=options.get("wrt"), check=True)
    reference = load_source(emit_module(d, **options), "torch_rand_ref", keep=False)
    module = load_source(emit_module(d, target="torch", **options), "torch_rand", keep=False)
    assume(point_ok(reference, point))
    with np.errstate(all="ignore"):
        run_all(module, reference, point, TO, BACK)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@settings(max_examples=examples("torch"))
@given(formula=S.formulas(), seed=st.integers(0, 2**16))
def test_random_formulas(formula, seed):
    note(formula.text)
    assume(formula.variables)
    program = sb.parse_formula(formula.text, formula.shapes)
    _compare(program, S.random_values(formula, np.random.default_rng(seed)))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@settings(max_examples=examples("torch_batch"))
@given(case=S.batch_cases(), seed=st.integers(0, 2**16))
def test_random_batched_formulas(case, seed):
    note(repr(case))
    assume(case.batch)
    f = case.formula
    program = sb.parse_formula(f.text, f.shapes)
    rng = np.random.default_rng(seed)
    base = S.random_values(f, rng)
    point = {n: (np.stack([np.asarray(S.random_values(f, rng)[n]) for _ in range(case.size)]) if n in case.batch
                 else v) for n, v in base.items()}
    _compare(program, point, wrt=case.wrt, batch=case.batch)


def test_the_readme_command(tmp_path, monkeypatch):
    """README.md's `--target torch` command, and the module it writes against the NumPy target."""
    import re
    import shlex
    from symbackprop.cli import main as cli_main
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    command = re.search(r"```sh\n(symbackprop codegen [^\n]*--target torch[^\n]*)\n```", text).group(1)
    monkeypatch.chdir(tmp_path)
    assert cli_main(shlex.split(command)[1:]) == 0
    module = load_file(tmp_path / "lsq_torch.py")
    X, y, w = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]), np.array([1.0, 2.0, 3.0]), np.zeros(2)
    got = module.grad(a=torch.asarray(X), w=torch.asarray(w), y=torch.asarray(y))["w"]
    assert np.allclose(got.numpy(), X.T @ (X @ w - y) / 3, rtol=1e-14)     # the mean's gradient by hand
    assert "import torch\n" in (tmp_path / "lsq_torch.py").read_text() and "array_api_compat" not in module.__dict__
