"""Code generation: every rule through a generated module, batch mode, shapes, determinism, generated/ in sync."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import symbackprop as sb
from symbackprop.emit import emit_module, load_source
from tools.refresh_generated import GENERATED, refresh
from symbackprop.expr import RULES
from symbackprop.rules import ELEMENTWISE
from symbackprop.testing import check_grads, random_inputs

ROOT = Path(__file__).resolve().parent.parent
SH = {"A": "m,n", "S": "n,n", "x": "n", "y": "n", "z": "m"}

# op -> (formula, positive inputs, square well-conditioned inputs); shapes from SH
CASES = {
    "add": ("sum(sin(x + y))", (), ()),
    "sub": ("sum(sin(x - y))", (), ()),
    "mul": ("sum(x * y * x)", (), ()),
    "div": ("sum(x / y)", ("y",), ()),
    "pow": ("sum(y ** x) + sum(x ** 3)", ("y",), ()),
    "neg": ("sum(sin(-x))", (), ()),
    "matmul": ("sum(sin(A @ x))", (), ()),
    "T": ("sum(sin(A.T @ z))", (), ()),
    "dot": ("(x @ y) * (x @ x)", (), ()),
    "pinv": ("sum(sin(pinv(A) @ z)) + trace(pinv(S) @ S.T)", (), ("S",)),
    "outer": ("sum(sin(outer(x, y)))", (), ()),
    "inv": ("sum(inv(S))", (), ("S",)),
    "det": ("det(S)", (), ("S",)),
    "logdet": ("logdet(S)", (), ("S",)),
    "trace": ("trace(S @ S)", (), ()),
    "diag": ("sum(sin(diag(S))) + sum(sin(diag(x) @ S))", (), ()),
    "sum": ("sum(sin(A))", (), ()),
    "mean": ("mean(sin(A))", (), ()),
    "norm": ("norm(A @ x)", (), ()),
    "sqnorm": ("norm(A @ x - z)**2", (), ()),
    "softmax": ("softmax(x) @ y", (), ()),
    "logsumexp": ("logsumexp(x)", (), ()),
    "rows": ("sum(sin(A + x)) + sum(A * y) + sum(cos(x - A))", (), ()),
    "maximum": ("sum(maximum(A, x) ** 2) + sum(maximum(x, 0.1) * y)", (), ()),
    "minimum": ("sum(minimum(x, y) * x) + sum(minimum(A, 0.2) * A)", (), ()),
    "max": ("max(A) * max(x)", (), ()),
    "min": ("min(A) * min(x) + max(sin(A))", (), ()),
    "maxmask": ("max(sin(A)) + max(x)", (), ()),
    "minmask": ("min(sin(A)) - min(x)", (), ()),
    "softmax_rows": ("sum(softmax(A, axis=1) * sin(A)) + sum(softmax(A, axis=0) * cos(A))", (), ()),
    "logsumexp_rows": ("logsumexp(A, axis=0) @ x + logsumexp(A, axis=-1) @ z", (), ()),
    "matrix_power": ("trace(matrix_power(S, 3)) + sum(matrix_power(S, -2))", (), ("S",)),
}
for _f, _spec in ELEMENTWISE.items():
    CASES[_f] = (f"sum({_f}(x) * y)", ("x",) if _spec.domain == "positive" else (), ())
#: covered through other rows: leaves, derivative macros (expanded before emission), abstract functions
NOT_EMITTED = {"var", "const", "zeros", "ones", "eye", "phi", "fn"} | {f + "'" for f in ELEMENTWISE}


def _module(formula, batch=(), wrt=None, shapes=None):
    shapes = shapes if shapes is not None else {k: v for k, v in SH.items() if re.search(rf"\b{k}\b", formula)}
    return load_source(emit_module(sb.parse_formula(formula, shapes), wrt=wrt, batch=batch))


def _point(m, rng, positive=(), square=()):
    p = random_inputs(m, None, rng, positive)
    for name in square:
        n = p[name].shape[-1]
        p[name] = p[name] + n * np.eye(n)
    return p


def test_every_rule_has_a_case():
    assert set(RULES) - NOT_EMITTED == set(CASES)


@pytest.mark.parametrize("op", sorted(CASES))
def test_rule_through_generated_module(op):
    formula, positive, square = CASES[op]
    m = _module(formula)
    rng = np.random.default_rng(1)
    for _ in range(2):
        res = check_grads(m, inputs=_point(m, rng, positive, square), seed=2)
        assert all(r.ok for r in res.values()), (formula, res)


@pytest.mark.parametrize("op", ["matmul", "T", "dot", "outer", "mul", "sqnorm", "softmax", "logsumexp", "tanh",
                                "trace", "diag", "inv", "norm", "mean", "div", "rows", "maximum", "minimum", "max",
                                "min", "softmax_rows", "logsumexp_rows", "matrix_power", "tan", "erf", "pinv"])
def test_batch_mode_matches_a_loop_over_examples(op):
    formula, positive, square = CASES[op]
    names = [k for k in SH if re.search(rf"\b{k}\b", formula)]
    batch = names[-1:] if op not in ("outer", "dot", "mul") else names
    mb, m1 = _module(formula, batch=batch), _module(formula)
    rng = np.random.default_rng(3)
    point = _point(m1, rng, positive, square)
    B = 4
    per = [dict(point) for _ in range(B)]
    for name in batch:
        for e in per:
            e[name] = _point(m1, rng, positive, square)[name] if False else (
                point[name] + 0.3 * rng.standard_normal(np.shape(point[name])))
            if name in square:
                e[name] = e[name] + 0.0
    batched = dict(point)
    for name in batch:
        batched[name] = np.stack([np.asarray(e[name], float) for e in per])
    value, grads = mb.value_and_grad(**batched)
    results = [m1.value_and_grad(**e) for e in per]
    assert np.isclose(value, np.mean([r[0] for r in results]), rtol=1e-10)
    assert np.isclose(mb.forward(**batched), value, rtol=1e-12)
    for name in mb.WRT:
        if name in batch:
            want = np.stack([np.asarray(r[1][name]) for r in results]) / B
        else:
            want = np.mean([r[1][name] for r in results], axis=0)
        assert np.shape(grads[name]) == np.shape(want), name
        assert np.allclose(grads[name], want, rtol=1e-9, atol=1e-12), name
    assert all(r.ok for r in check_grads(mb, inputs=batched).values())


def test_a_weight_decay_beside_a_batch_builds_no_per_example_tensor():
    """Σ_b of (unbatched + batched) is split: the decay's gradient is added once, and the data term is a
    matrix product, never a (B, k, d) tensor summed over the batch (it was: 160 MB at B=2000, k=d=100)."""
    import tracemalloc
    formula, shapes = "0.5 * norm(W @ x - y)**2 + lam * norm(W)**2", {"W": "k,d", "x": "d", "y": "k"}
    src = emit_module(sb.parse_formula(formula, shapes), wrt=["W"], batch=["x", "y"])
    module = load_source(src, "weight_decay", keep=False)
    assert "grad_W = 2.0 * lam * W + (_seed * x2).T @ x" in src          # B · (1/B) folded: no `B * (_seed …)`
    assert "value = x3.sum() / B + x5" in src                           # the decay's mean is itself
    rng = np.random.default_rng(0)
    B, k, d, lam = 2000, 100, 100, 0.3
    W, x, y = rng.standard_normal((k, d)), rng.standard_normal((B, d)), rng.standard_normal((B, k))
    tracemalloc.start()
    value, grads = module.value_and_grad(W=W, x=x, y=y, lam=lam)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 20e6, peak                                             # a (B, k, d) float64 tensor is 160 MB
    r = x @ W.T - y                                                      # by hand
    assert np.isclose(value, 0.5 * np.mean(np.sum(r * r, axis=1)) + lam * np.sum(W * W), rtol=1e-12)
    assert np.allclose(grads["W"], r.T @ x / B + 2 * lam * W, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("formula, shapes, wrt, line", [
    # a sum of seeded terms the same for every example: B · (1/B) · (lam w + lam w) is 2 lam w (x4 = lam w)
    ("sum(softplus(-y * (w @ x))) + lam * w @ w", {"w": "d", "x": "d"}, ["w"],
     "grad_w = 2.0 * x4 - (_seed * ((np.exp(-np.logaddexp(0.0, -x2)) * y) @ x))"),
    ("-y @ log(softmax(W @ x)) + lam * norm(W)**2", {"W": "k,d", "x": "d", "y": "k"}, ["W"],
     "grad_W = ((_seed * y.sum(axis=1))[:, None] * _softmax(x3) - _seed * y).T @ x + 2.0 * lam * W"),
])
def test_what_every_example_shares_is_not_scaled_by_b_and_back(formula, shapes, wrt, line):
    """Σ_b of the seed 1/B times an unbatched term is the term itself: printed without `B * (_seed …)`."""
    src = emit_module(sb.parse_formula(formula, shapes), wrt=wrt, batch=["x", "y"])
    assert line in src and "B * (" not in src, src
    module = load_source(src, "shared_terms", keep=False)
    rng = np.random.default_rng(4)
    point = random_inputs(module, sizes={"B": 5}, rng=rng)
    assert all(r.ok for r in check_grads(module, inputs=point).values())


def test_relu_net_module_is_hand_written_quality():
    src = (ROOT / "generated/relu_net.py").read_text()
    body = src[src.index("def value_and_grad"):src.index("\ndef grad(")]
    assert "for " not in body                       # no Python loop over examples
    assert "* (x2 > 0)" in body                     # relu' as a mask, multiplying a float product
    assert "x @ _t1" in body or re.search(r"x @ \w+", body)
    assert "np.outer" not in body and "np.eye" not in body and "np.diag" not in body
    m = load_source(src)
    rng = np.random.default_rng(0)
    for h, B in [(10, 40), (3, 1)]:
        p = dict(w=rng.standard_normal(h), b=rng.standard_normal(h), v=rng.standard_normal(h), c=0.2,
                 x=rng.standard_normal(B), y=rng.standard_normal(B))
        assert all(r.ok for r in check_grads(m, inputs=p).values())
        # against a hand-written loop
        z = np.outer(p["x"], p["w"]) + p["b"]
        r = np.maximum(z, 0) @ p["v"] + p["c"] - p["y"]
        value, g = m.value_and_grad(**p)
        assert np.isclose(value, np.mean(r ** 2))
        assert np.allclose(g["c"], 2 * r.mean())


def test_optimisations_visible_in_source():
    src = (ROOT / "generated/mlp_relu.py").read_text()
    body = src[src.index("def value_and_grad"):src.index("\ndef grad(")]
    assert "g_x1 = (W2.T @ x4) * (x1 > 0)" in body   # forward x1/x4 reused, mask, transpose as a view
    assert body.count("W1 @ x") == 1                 # each node once (CSE)
    for bad in ("np.eye", "np.kron", "np.diag", "np.einsum"):
        assert bad not in body
    batch = (ROOT / "generated/mlp_relu_batch.py").read_text()
    assert "grad_W1 = g_x1.T @ x" in batch and "x @ W1.T" in batch   # batched products, no per-example outer
    tanh = (ROOT / "generated/mlp_tanh.py").read_text()
    assert "(1.0 - x2 ** 2.0)" in tanh and tanh.count("np.tanh(") == 3   # forward, value_and_grad, grad: tanh' reuses the forward tanh


def test_matrix_chain_ordered_vector_first():
    src = emit_module(sb.parse_formula("sum(sin(A @ B @ C @ x))", {"A": "n,n", "B": "n,n", "C": "n,n", "x": "n"}))
    fwd = src[src.index("def forward"):src.index("def value_and_grad")]
    assert re.search(r"C @ x\b", fwd) and not re.search(r"A @ B\b|B @ C\b", src[src.index("def forward"):]), fwd
    body = src[src.index("def value_and_grad"):src.index("\ndef grad(")]
    # every product has a vector on one side: no n×n×n product anywhere
    for line in body.splitlines():
        assert not re.search(r"\b[ABC](\.T)? @ [ABC]\b", line), line
    m = load_source(src)
    assert all(r.ok for r in check_grads(m).values())


def test_scalar_factor_folded_and_diag_broadcast():
    src = emit_module(sb.parse_formula("sum(diag(v) @ M)", {"v": "n", "M": "n,m"}))
    body = src[src.index("def forward"):]
    assert "np.diag" not in body and "v[:, None] * M" in body, body
    assert all(r.ok for r in check_grads(load_source(src)).values())
    src = emit_module(sb.parse_formula("3 * (0.5 * norm(A @ x)**2)", {"A": "m,n", "x": "n"}))
    assert "1.5" in src and "0.5 *" not in src.split("# backward")[1]


@pytest.mark.parametrize("formula,shapes", [
    ("sum(log(1 + exp(x)))", {"x": "n"}), ("sum(softplus(x))", {"x": "n"}), ("sum(sigmoid(x))", {"x": "n"}),
    ("logsumexp(x)", {"x": "n"}), ("log(softmax(x)) @ y", {"x": "n", "y": "n"}),
    ("sum(log(sigmoid(x)))", {"x": "n"}), ("log(sum(exp(x)))", {"x": "n"}),
])
def test_stable_at_large_inputs(formula, shapes):
    m = load_source(emit_module(sb.parse_formula(formula, shapes)))
    x = np.array([1000.0, -1000.0, 3.0, -999.0])
    p = {"x": x, "y": np.ones(4)} if "y" in shapes else {"x": x}
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        value, grads = m.value_and_grad(**p)
    assert np.isfinite(value) and all(np.all(np.isfinite(g)) for g in grads.values())
    assert all(r.ok for r in check_grads(m).values())


def test_shape_errors_name_input_expected_and_given():
    m = load_source((ROOT / "generated/mlp_relu_batch.py").read_text())
    rng = np.random.default_rng(0)
    p = random_inputs(m, {"h": 4, "d": 3, "k": 2, "B": 5}, rng)
    m.value_and_grad(**p)
    bad = dict(p, b=np.zeros(7))
    with pytest.raises(ValueError, match=r"input `b` has shape \(7,\), expected \(h=4,\)"):
        m.value_and_grad(**bad)
    with pytest.raises(ValueError, match=r"input `y` has shape \(4, 2\), expected \(B=5, k=2\)"):
        m.forward(**dict(p, y=np.zeros((4, 2))))
    with pytest.raises(ValueError, match="input `W2`"):
        m.value_and_grad(**dict(p, W2=np.zeros(3)))


def test_deterministic_and_user_names_kept():
    args = ("z = W @ x; u = relu(z); 0.5 * norm(u - y)**2", {"W": "h,d", "x": "d", "y": "h"})
    a = emit_module(sb.parse_formula(*args), batch=["x", "y"])
    b = emit_module(sb.parse_formula(*args), batch=["x", "y"])
    assert a == b
    assert re.search(r"^    z = ", a, re.M) and re.search(r"^    u = ", a, re.M)
    assert all(r.ok for r in check_grads(load_source(a)).values())


def test_names_never_collide_with_user_names():
    src = emit_module(sb.parse_formula("sum(sin(x1 * x2 * B) * sin(x1))", {"x1": "n", "x2": "n"}), batch=["x1"])
    m = load_source(src)
    assert "B" in m.INPUTS and m.SHAPES["x1"][0] != "B"
    assert all(r.ok for r in check_grads(m).values())


def test_generated_modules_are_in_sync():
    assert refresh(ROOT, check=True) == [], "run: python tools/refresh_generated.py --refresh"
    readme = (ROOT / "generated/README.md").read_text()
    for rel, _ in GENERATED:
        assert rel in readme
    # the README's table is the catalog's list, command for command
    from symbackprop.catalog import MODULES
    rows = [line.split(" | ")[2].strip(" `|") for line in readme.splitlines() if line.startswith("| generated/")]
    assert rows == [m.command for m in MODULES]
    assert [rel for rel, _ in GENERATED] == [m.path for m in MODULES]


def test_autograd_agrees():
    ag = pytest.importorskip("autograd")
    anp = pytest.importorskip("autograd.numpy")
    m = load_source((ROOT / "generated/mlp_tanh.py").read_text())
    rng = np.random.default_rng(5)
    p = random_inputs(m, {"d": 4}, rng)

    def loss(W2, W1, x, b, y):
        r = W2 @ anp.tanh(W1 @ x + b) - y
        return 0.5 * anp.sum(r * r)
    _, grads = m.value_and_grad(**p)
    for i, name in enumerate(m.INPUTS):
        assert np.allclose(ag.grad(loss, i)(*[p[n] for n in m.INPUTS]), grads[name], rtol=1e-10)
    mb = load_source((ROOT / "generated/relu_net.py").read_text())
    p = random_inputs(mb, {"h": 6, "B": 9}, rng)

    def loss2(w, b, v, c, x, y):
        return anp.mean((anp.maximum(anp.outer(x, w) + b, 0) @ v + c - y) ** 2)
    _, grads = mb.value_and_grad(**p)
    args = [p[n] for n in ("w", "b", "v", "c", "x", "y")]
    for i, name in enumerate(("w", "b", "v", "c")):
        assert np.allclose(ag.grad(loss2, i)(*args), grads[name], rtol=1e-10)


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "symbackprop", *args], capture_output=True, text=True, cwd=cwd)


def test_cli_codegen_writes_atomically_and_refuses_foreign_files(tmp_path):
    out = tmp_path / "m.py"
    r = _cli("codegen", "norm(A @ x)**2", "-s", "A=m,n", "-s", "x=n", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert "-o " + str(out) in out.read_text()
    r = _cli("gradcheck", str(out))
    assert r.returncode == 0 and "worst relative error" in r.stdout
    foreign = tmp_path / "mine.py"
    foreign.write_text("x = 1\n")
    r = _cli("codegen", "x * x", "-o", str(foreign))
    assert r.returncode == 2 and "refusing" in r.stderr and "Traceback" not in r.stderr
    assert foreign.read_text() == "x = 1\n"
    assert _cli("codegen", "x * x", "-o", str(foreign), "--force").returncode == 0
    r = _cli("codegen", "x * y", "--batch", "q")
    assert r.returncode == 2 and "--batch names `q`" in r.stderr
    assert list(tmp_path.glob(".*.tmp")) == []


def test_cli_gradcheck_exits_1_on_a_wrong_gradient(tmp_path):
    src = emit_module(sb.parse_formula("sum(sin(x))", {"x": "n"}))
    assert "np.cos(x)" in src
    bad = tmp_path / "bad.py"
    bad.write_text(src.replace("np.cos(x)", "np.cos(x) * 1.01"))
    r = _cli("gradcheck", str(bad), "--shape", "n=4")
    assert r.returncode == 1 and "MISMATCH" in r.stdout


def test_float32_module_keeps_dtype():
    src = emit_module(sb.parse_formula("0.5 * norm(A @ x - z)**2 + sum(0 * A) ", {"A": "m,n", "x": "n", "z": "m"}),
                      dtype="float32")
    m = load_source(src)
    rng = np.random.default_rng(0)
    p = {k: v.astype(np.float32) for k, v in random_inputs(m, {"m": 3, "n": 2}, rng).items()}
    value, grads = m.value_and_grad(**p)
    assert all(g.dtype == np.float32 for g in grads.values())


def test_step_prints_as_a_float_unless_it_multiplies_a_float():
    """The boolean mask (z > 0) only appears as a factor of a float product; elsewhere step is
    np.heaviside, a float (a bool would make step(a) + step(c) a logical or)."""
    from symbackprop import derive
    src = emit_module(derive("sum(step(a) + step(c)) + sum(relu(a) * c)", {"a": "n", "c": "n"}))
    assert "np.heaviside(a, 0.0)" in src and "np.heaviside(c, 0.0)" in src and "> 0)" not in src
    module = load_source(src)
    a, c = np.array([1.0, -2.0, 3.0]), np.array([-1.0, 2.0, 0.5])
    value, grads = module.value_and_grad(a=a, c=c)
    assert value == pytest.approx(np.sum((a > 0) * 1.0 + (c > 0)) + np.sum(np.maximum(a, 0) * c))
    assert np.allclose(grads["a"], c * (a > 0)) and np.allclose(grads["c"], np.maximum(a, 0))
    assert module.grad(a=a, c=c).keys() == grads.keys()


def test_installed_wheel_finds_its_templates(tmp_path):
    """A wheel ships templates/ as symbackprop/templates: codegen must work from an install."""
    import shutil
    import zipfile
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                        "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        pytest.skip(f"cannot build a wheel here: {r.stderr[-300:]}")
    wheel = next(tmp_path.glob("symbackprop-*.whl"))
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    assert (site / "symbackprop" / "templates" / "module.py.j2").is_file()
    out = tmp_path / "m.py"
    code = ("import sys; sys.path.insert(0, %r); from symbackprop.cli import main; "
            "sys.exit(main(['codegen', 'x @ x', '-s', 'x=n', '-o', %r]))") % (str(site), str(out))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert out.read_text().startswith('"""Gradient module generated by symbackprop')
    shutil.rmtree(site)
