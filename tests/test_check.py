"""The worked-solution checker: verdicts, diagnoses, malformed input, solution files and the CLI.

Expected verdicts are not taken from the code under test: `test_labels_are_right`
checks every label of the MLP table against an independent NumPy implementation
of the claim and central finite differences of the loss.
"""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import symbackprop
from symbackprop.check import Problem, check, check_solution
from symbackprop.errors import FormulaError, SymbackpropError

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
HANDOUT = os.path.join(ROOT, "docs", "solutions", "handout-2d.yaml")
MISTAKES = os.path.join(ROOT, "docs", "solutions", "common-mistakes.yaml")

# ----- a two-layer tanh network with non-square shapes: every label verified by finite differences -----

MLP = "0.5 * norm(W2 @ tanh(W1 @ x + b) - y)**2"
MLP_SHAPES = {"W1": "h,d", "W2": "k,h", "x": "d", "b": "h", "y": "k"}
MLP_LETS = {"x1": "W1 @ x + b", "x2": "tanh(x1)", "x3": "W2 @ x2", "x4": "x3 - y"}


def _fwd(W1, W2, x, b, y):
    x1 = W1 @ x + b
    x2 = np.tanh(x1)
    x4 = W2 @ x2 - y
    g1 = (W2.T @ x4) * (1 - x2 ** 2)
    return x1, x2, x4, g1


def _np_claim(fn):
    return lambda W1, W2, x, b, y: fn(*_fwd(W1, W2, x, b, y), W1=W1, W2=W2, x=x, b=b, y=y)


# (wrt, claim, NumPy version of the claim, status, diagnosis)
MLP_CLAIMS = [
    ("W1", "outer(W2.T @ x4 * tanh'(x1), x)", lambda x1, x2, x4, g1, **v: np.outer(g1, v["x"]), "correct", None),
    ("W1", "outer(x, W2.T @ x4 * tanh'(x1))", lambda x1, x2, x4, g1, **v: np.outer(v["x"], g1), "transposed", None),
    ("W1", "outer(x, x4) @ W2 @ diag(tanh'(x1))",
     lambda x1, x2, x4, g1, **v: np.outer(v["x"], x4) @ v["W2"] @ np.diag(1 - x2 ** 2), "transposed", None),
    ("W1", "diag(tanh'(x1)) @ outer(W2.T @ x4, x)",
     lambda x1, x2, x4, g1, **v: np.diag(1 - x2 ** 2) @ np.outer(v["W2"].T @ x4, v["x"]), "correct", None),
    ("W1", "outer(W2.T @ x4, x)", lambda x1, x2, x4, g1, **v: np.outer(v["W2"].T @ x4, v["x"]),
     "wrong", "missing-factor"),
    ("W1", "outer(W2.T @ x4 * tanh(x1), x)", lambda x1, x2, x4, g1, **v: np.outer(v["W2"].T @ x4 * x2, v["x"]),
     "wrong", "function-for-derivative"),
    ("W1", "2 * outer(W2.T @ x4 * tanh'(x1), x)", lambda x1, x2, x4, g1, **v: 2 * np.outer(g1, v["x"]),
     "wrong", "factor"),
    ("W1", "outer(W2.T @ x4 * tanh'(x1), x1)", None, "wrong", "shape"),
    ("W2", "outer(x4, x2)", lambda x1, x2, x4, g1, **v: np.outer(x4, x2), "correct", None),
    ("W2", "outer(x2, x4)", lambda x1, x2, x4, g1, **v: np.outer(x2, x4), "transposed", None),
    ("W2", "-outer(x4, x2)", lambda x1, x2, x4, g1, **v: -np.outer(x4, x2), "wrong", "sign"),
    ("W2", "outer(x4, x2) / 2", lambda x1, x2, x4, g1, **v: np.outer(x4, x2) / 2, "wrong", "factor"),
    ("W2", "outer(x4 + y, x2)", lambda x1, x2, x4, g1, **v: np.outer(x4 + v["y"], x2), "wrong", "counterexample"),
    ("W2", "x4", None, "wrong", "shape"),
    ("W2", "W2 @ x4", None, "wrong", "ill-formed"),
    ("x", "W1.T @ (W2.T @ x4 * tanh'(x1))", lambda x1, x2, x4, g1, **v: v["W1"].T @ g1, "correct", None),
    ("x", "x4 @ W2 @ diag(tanh'(x1)) @ W1", lambda x1, x2, x4, g1, **v: v["W1"].T @ g1, "correct", None),
    ("x", "(x4 @ W2 * (1 - x2**2)) @ W1", lambda x1, x2, x4, g1, **v: v["W1"].T @ g1, "correct", None),
    ("x", "W1.T @ W2.T @ x4", lambda x1, x2, x4, g1, **v: v["W1"].T @ v["W2"].T @ x4, "wrong", "missing-factor"),
    ("b", "W2.T @ x4 * tanh'(x1)", lambda x1, x2, x4, g1, **v: g1, "correct", None),
    ("b", "W2.T @ x4 * (1 - tanh(x1)**2)", lambda x1, x2, x4, g1, **v: g1, "correct", None),
    ("b", "2 * W2.T @ x4 * tanh'(x1)", lambda x1, x2, x4, g1, **v: 2 * g1, "wrong", "factor"),
    ("y", "-x4", lambda x1, x2, x4, g1, **v: -x4, "correct", None),
    ("y", "x4", lambda x1, x2, x4, g1, **v: x4, "wrong", "sign"),
]


def _fd_grad(f, args, name, eps=1e-6):
    """Full gradient of the scalar f(**args) in args[name], entry by entry (central differences)."""
    X = args[name]
    G = np.zeros_like(X)
    for idx in np.ndindex(X.shape):
        hi, lo = dict(args), dict(args)
        hi[name] = X.copy()
        lo[name] = X.copy()
        hi[name][idx] += eps
        lo[name][idx] -= eps
        G[idx] = (f(**hi) - f(**lo)) / (2 * eps)
    return G


def _mlp_loss(W1, W2, x, b, y):
    return 0.5 * np.sum((W2 @ np.tanh(W1 @ x + b) - y) ** 2)


@pytest.mark.parametrize("wrt, claim, fn, status, diagnosis", [c for c in MLP_CLAIMS if c[2] is not None],
                         ids=lambda v: v if isinstance(v, str) else "")
def test_labels_are_right(wrt, claim, fn, status, diagnosis):
    """The expected verdicts, checked independently: NumPy claim vs finite differences."""
    rng = np.random.default_rng(5)
    h, d, k = 3, 4, 2
    args = dict(W1=rng.standard_normal((h, d)), W2=rng.standard_normal((k, h)), x=rng.standard_normal(d),
                b=rng.standard_normal(h), y=rng.standard_normal(k))
    fd = _fd_grad(_mlp_loss, args, wrt)
    val = _np_claim(fn)(**args)
    same = val.shape == fd.shape and np.allclose(val, fd, rtol=1e-5, atol=1e-7)
    transposed = val.T.shape == fd.shape and np.allclose(val.T, fd, rtol=1e-5, atol=1e-7)
    if status == "correct":
        assert same
    elif status == "transposed":
        assert transposed and not same
    else:
        assert not same and not transposed


@pytest.fixture(scope="module")
def mlp():
    return Problem(MLP, MLP_SHAPES, lets=MLP_LETS)


@pytest.mark.parametrize("wrt, claim, fn, status, diagnosis", MLP_CLAIMS, ids=lambda v: v if isinstance(v, str) else "")
def test_mlp_verdicts(mlp, wrt, claim, fn, status, diagnosis):
    v = mlp.check(wrt, claim)
    assert v.status == status, v.text()
    assert v.diagnosis == diagnosis, v.text()
    assert v.exit_code == (0 if status in ("correct", "transposed") else 1)
    if status != "wrong" or diagnosis not in ("shape", "ill-formed"):
        assert v.points >= 6 and len(v.dims_tried) >= 2          # several sizes, several points


def test_factor_and_layout_details(mlp):
    v = mlp.check("W2", "outer(x4, x2) / 2")
    assert v.factor == "1/2" and "1/2 times" in v.summary
    v = mlp.check("W1", "2 * outer(W2.T @ x4 * tanh'(x1), x)")
    assert v.factor == "2"
    v = mlp.check("W2", "outer(x2, x4)")
    assert v.layout == "numerator" and "numerator layout" in v.text() and "x4 x2ᵀ" in v.gradient
    v = mlp.check("W2", "x4")
    assert "k×h" in v.summary and v.claim_shape == "k"


def test_counterexample_is_real(mlp):
    """The counterexample's numbers: recompute the claim and the gradient from its inputs with NumPy."""
    v = mlp.check("W2", "outer(x4 + y, x2)")
    cx = v.counterexample
    assert cx is not None and cx.dims == {"h": 2, "d": 3, "k": 4}
    ins = {k: np.asarray(val) for k, val in cx.inputs.items()}
    x1, x2, x4, g1 = _fwd(ins["W1"], ins["W2"], ins["x"], ins["b"], ins["y"])
    assert np.allclose(cx.claimed, np.outer(x4 + ins["y"], x2))
    assert np.allclose(cx.true, _fd_grad(_mlp_loss, ins, "W2"), rtol=1e-5, atol=1e-7)
    assert not np.allclose(cx.claimed, cx.true)
    assert "counterexample" in v.text() and "claimed:" in v.text()


# ----- the handout's own part (d) solution (square d×d matrices, abstract Phi) -----

HANDOUT_LINES = [
    ("x4", "x4.T", "correct"),
    ("x3", "x4.T", "correct"),
    ("x2", "x4.T @ W2", "correct"),
    ("W2", "outer(x2, x4)", "transposed"),
    ("x1", "x4.T @ W2 @ diag(Phi'(x1))", "correct"),
    ("x", "x4.T @ W2 @ diag(Phi'(x1)) @ W1", "correct"),
    ("b", "x4.T @ W2 @ diag(Phi'(x1))", "correct"),
    ("W1", "outer(x, x4) @ W2 @ diag(Phi'(x1))", "transposed"),
    ("W1", "outer(x4.T @ W2 @ diag(Phi'(x1)), x)", "correct"),         # the index form before equation (2)
]


def test_handout_solution_file():
    report = check_solution(HANDOUT)
    got = [(v.wrt, v.claim, v.status) for v in report.verdicts]
    assert got == HANDOUT_LINES
    assert report.exit_code == 0
    for v in report.verdicts:
        assert v.line is not None
        if v.status == "transposed":
            assert v.layout == "numerator"


@pytest.fixture(scope="module")
def handout():
    return Problem("0.5 * norm(W2 @ Phi(W1 @ x + b) - y)**2",
                   {"W1": "d,d", "W2": "d,d", "x": "d", "b": "d", "y": "d"}, ["Phi"],
                   lets={"x1": "W1 @ x + b", "x2": "Phi(x1)", "x3": "W2 @ x2", "x4": "x3 - y"})


@pytest.mark.parametrize("wrt, claim, diagnosis", [
    ("W1", "outer(x, x4) @ W2", "missing-factor"),                          # forgotten Φ'(x1)
    ("b", "x4.T @ W2", "missing-factor"),
    ("x1", "x4 @ W2 @ diag(Phi(x1))", "function-for-derivative"),
    ("W2", "outer(x4, x1)", "counterexample"),
    ("x", "W1 @ (W2.T @ x4 * Phi'(x1))", "symmetric-only"),                  # W1 where W1ᵀ belongs
    ("x", "W1.T @ (W2 @ x4 * Phi'(x1))", "symmetric-only"),                  # W2 where W2ᵀ belongs
    ("x", "W1.T @ W2.T @ (x4 * Phi'(x1))", "scalar-only"),                    # Φ' applied at the wrong place
    ("x2", "x4", "counterexample"),
    ("x1", "W2.T @ x4 * (1 - Phi(x1)**2)", "counterexample"),                # right for tanh only, not every Phi
    ("W1", "outer(W2.T @ x4 * Phi'(x1), x) * 0.5", "factor"),
])
def test_handout_mistakes(handout, wrt, claim, diagnosis):
    """Square matrices everywhere: only non-symmetric random values and several Phi stand-ins tell these apart."""
    v = handout.check(wrt, claim)
    assert v.status == "wrong", v.text()
    assert v.diagnosis == diagnosis, v.text()


def test_forgotten_phi_prime_never_passes_by_accident():
    """Different seeds, smallest sizes: the forgotten relu' must be caught every time."""
    for seed in range(8):
        v = check("0.5 * norm(W2 @ relu(W1 @ x + b) - y)**2",
                  {"W1": "h,d", "W2": "k,h", "x": "d", "b": "h", "y": "k"},
                  wrt="W1", claim="outer(W2.T @ (W2 @ relu(W1 @ x + b) - y), x)", seed=seed)
        assert v.status == "wrong" and v.diagnosis == "missing-factor", v.text()
        ok = check("0.5 * norm(W2 @ relu(W1 @ x + b) - y)**2",
                   {"W1": "h,d", "W2": "k,h", "x": "d", "b": "h", "y": "k"}, lets={"z": "W1 @ x + b"},
                   wrt="W1", claim="outer(W2.T @ (W2 @ relu(z) - y) * step(z), x)", seed=seed)
        assert ok.status == "correct", ok.text()


# ----- claims that are wrong but agree on special inputs -----

def test_symmetric_only_claim():
    """∂(xᵀAx)/∂x = (A + Aᵀ)x; 2Ax agrees only for symmetric A."""
    v = check("x @ A @ x", {"A": "n,n", "x": "n"}, wrt="x", claim="2 * A @ x")
    assert v.status == "wrong" and v.diagnosis == "symmetric-only" and "A = Aᵀ" in v.text()
    v = check("x @ A @ x", {"A": "n,n", "x": "n"}, wrt="x", claim="A @ x")
    assert v.status == "wrong" and v.diagnosis == "missing-term"
    v = check("x @ A @ x", {"A": "n,n", "x": "n"}, wrt="x", claim="A @ x + A.T @ x")
    assert v.status == "correct"
    v = check("x @ A @ x", {"A": "n,n", "x": "n"}, wrt="x", claim="A @ x + A.T @ x + x")
    assert v.status == "wrong" and v.diagnosis == "extra-term"


def test_wrong_product_order_is_caught():
    """ℓ = ½‖ABx − y‖²: ∂ℓ/∂x = BᵀAᵀr; AᵀBᵀr agrees only when A and B commute (e.g. 1×1)."""
    f, shapes = "0.5 * norm(A @ B @ x - y)**2", {"A": "n,n", "B": "n,n", "x": "n", "y": "n"}
    assert check(f, shapes, wrt="x", claim="B.T @ A.T @ (A @ B @ x - y)").status == "correct"
    v = check(f, shapes, wrt="x", claim="A.T @ B.T @ (A @ B @ x - y)")
    assert v.status == "wrong" and v.diagnosis == "scalar-only"
    # the same mistake with non-square shapes is not even well-formed
    v = check(f, {"A": "m,n", "B": "n,p", "x": "p", "y": "m"}, wrt="x", claim="A.T @ B.T @ (A @ B @ x - y)")
    assert v.status == "wrong" and v.diagnosis == "ill-formed"


def test_trace_product_order():
    """∂tr(ABC)/∂B = AᵀCᵀ; CᵀAᵀ agrees only when A and C commute."""
    shapes = {"A": "n,n", "B": "n,n", "C": "n,n"}
    assert check("trace(A @ B @ C)", shapes, wrt="B", claim="A.T @ C.T").status == "correct"
    assert check("trace(A @ B @ C)", shapes, wrt="B", claim="C @ A").status == "transposed"
    v = check("trace(A @ B @ C)", shapes, wrt="B", claim="C.T @ A.T")
    assert v.status == "wrong" and v.diagnosis in ("symmetric-only", "scalar-only", "counterexample")


def test_scalar_only_claim():
    """½ sum(x)²: the gradient is sum(x)·𝟙; x agrees only when n = 1."""
    v = check("0.5 * sum(x)**2", {"x": "n"}, wrt="x", claim="x")
    assert v.status == "wrong" and v.diagnosis == "scalar-only"


def test_square_only_claims():
    """Well-formed only when A is square, and even then wrong."""
    v = check("0.5 * norm(A @ x - b)**2", {"A": "n,n", "x": "n", "b": "n"}, wrt="x", claim="A.T @ A @ x - b")
    assert v.status == "wrong"
    v = check("0.5 * norm(A @ x - b)**2", {"A": "m,n", "x": "n", "b": "m"}, wrt="x", claim="A.T @ A @ x - b")
    assert v.status == "wrong" and v.diagnosis == "ill-formed"
    # right shape only when m = n
    v = check("0.5 * norm(A @ x - b)**2", {"A": "m,n", "x": "n", "b": "m"}, wrt="A", claim="outer(x, x)")
    assert v.status == "wrong" and v.diagnosis == "shape"


def test_concrete_square_dims():
    """Fixed sizes (no symbolic dims): still several points, non-symmetric values."""
    v = check("x @ A @ x", {"A": "3,3", "x": "3"}, wrt="x", claim="2 * A @ x")
    assert v.status == "wrong" and v.diagnosis == "symmetric-only"
    v = check("x @ A @ x", {"A": "3,3", "x": "3"}, wrt="A", claim="outer(x, x)")
    assert v.status == "correct" and v.points >= 6


# ----- layouts of vectors -----

def test_row_and_column_claims():
    """A 1×n claim for an n-vector is the numerator layout; n×1 is the gradient."""
    v = check("sum(R @ x)", {"R": "1,n", "x": "n"}, wrt="x", claim="R")
    assert v.status == "transposed" and v.layout == "numerator"
    v = check("sum(R @ x)", {"R": "1,n", "x": "n"}, wrt="x", claim="R.T")
    assert v.status == "correct"
    v = check("sum(R @ x)", {"R": "1,n", "x": "n"}, wrt="x", claim="-R")
    assert v.status == "wrong" and v.diagnosis == "sign"


# ----- other problems: scalars, abstract scalar functions, intermediates -----

def test_handout_part_a():
    f = "f(t) = t**2; g(t) = t; h(a, c) = a**2 + c**2; h(f(x), g(x))"
    assert check(f, wrt="x", claim="4*x**3 + 2*x").status == "correct"
    v = check(f, wrt="x", claim="4*x**3")
    assert v.status == "wrong" and v.diagnosis == "missing-term"
    v = check(f, wrt="x", claim="8*x**3 + 4*x")
    assert v.diagnosis == "factor" and v.factor == "2"


def test_abstract_scalar_functions():
    with pytest.raises(FormulaError, match="derivative"):      # h has two arguments: h' means nothing
        check("h(f(x), g(x))", functions="f,g,h", wrt="x", claim="h'(f(x), g(x))")
    v = check("f(x) * g(x)", functions="f,g", wrt="x", claim="f'(x) * g(x) + f(x) * g'(x)")
    assert v.status == "correct"
    v = check("f(x) * g(x)", functions="f,g", wrt="x", claim="f'(x) * g'(x)")
    assert v.status == "wrong"


def test_wrt_let_located_numerically():
    """A let written in another order than the formula (b + W1 x) still names the formula's node."""
    p = Problem(MLP, MLP_SHAPES, lets={"z": "b + W1 @ x"})
    assert p.check("z", "W2.T @ (W2 @ tanh(z) - y) * tanh'(z)").status == "correct"


def test_formula_intermediates_and_lets():
    f = "r = A @ x - b; 0.5 * norm(r)**2"
    shapes = {"A": "m,n", "x": "n", "b": "m"}
    assert check(f, shapes, wrt="r", claim="r").status == "correct"
    assert check(f, shapes, wrt="x", claim="A.T @ r").status == "correct"
    assert check(f, shapes, wrt="x", claim="A.T @ g", lets={"g": "r"}).status == "correct"


def test_scalar_claims_for_constant_gradients():
    """∂sum(x)/∂x = 𝟙: the claim 1 stands for the constant vector."""
    assert check("sum(x)", {"x": "n"}, wrt="x", claim="1").status == "correct"
    v = check("sum(x)", {"x": "n"}, wrt="x", claim="2")
    assert v.status == "wrong" and v.diagnosis == "factor" and v.factor == "2"
    v = check("sum(A @ x)", {"A": "m,n", "x": "n"}, wrt="x", claim="1")
    assert v.status == "wrong"


def test_zero_derivative():
    v = check("sum(x) + 0 * sum(y)", {"x": "n", "y": "n"}, wrt="y", claim="0")
    assert v.status == "correct"
    v = check("sum(x * y)", {"x": "n", "y": "n"}, wrt="y", claim="0")
    assert v.status == "wrong" and v.diagnosis == "zero"


# ----- malformed claims: errors, never verdicts -----

@pytest.mark.parametrize("claim, fragment", [
    ("W2.T @@ x4", "syntax error"),
    ("W2.T @ x5", "`x5`"),
    ("Psi'(x1) * x4", "derivative"),
    ("foo(x1)", "unknown function"),
    ("x4[0]", "indexing"),
    ('__import__("os")', "__import__"),
    ("", "empty"),
])
def test_malformed_claims(mlp, claim, fragment):
    with pytest.raises(SymbackpropError) as e:
        mlp.check("x2", claim)
    assert e.value.exit_code == 2
    assert fragment in e.value.format()
    assert "x5" not in mlp.parser.variables                 # a failed claim leaves no stray variable


def test_claim_length_limit(mlp):
    from symbackprop.parse import MAX_FORMULA_CHARS
    with pytest.raises(SymbackpropError, match="limit"):
        mlp.check("x", "x" + " " * MAX_FORMULA_CHARS)


def test_malformed_wrt_and_lets():
    with pytest.raises(FormulaError, match="neither"):
        check(MLP, MLP_SHAPES, wrt="W3", claim="W1")
    with pytest.raises(FormulaError, match="does not occur"):
        check(MLP, MLP_SHAPES, wrt="q", claim="x", lets={"q": "x @ x"})
    with pytest.raises(FormulaError, match="already defined"):
        check(MLP, MLP_SHAPES, wrt="x", claim="x", lets={"W1": "x"})
    with pytest.raises(FormulaError):
        check(MLP, MLP_SHAPES, wrt="x", claim="x", lets=["nonsense"])


def test_verdict_displays():
    v = symbackprop.check("0.5 * norm(A @ x - b)**2", {"A": "m,n", "x": "n", "b": "m"}, wrt="A",
                          claim="outer(x, A @ x - b)")
    assert isinstance(v, symbackprop.Verdict)
    assert "correct up to transpose" in v._repr_markdown_()
    assert "<b" in v._repr_html_() and "&" not in v.claim
    d = json.loads(json.dumps(v.to_dict(), default=str))
    assert d["status"] == "transposed" and d["layout"] == "numerator"


# ----- solution files -----

def _write(tmp_path, text, name="sol.yaml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return str(p)


GOOD_PROBLEM = """\
problem:
  formula: 0.5 * norm(A @ x - b)**2
  shapes: {A: "m,n", x: n, b: m}
  lets: {r: A @ x - b}
"""


def test_solution_file_mixed(tmp_path):
    path = _write(tmp_path, GOOD_PROBLEM + """\
claims:
  - {wrt: x, claim: A.T @ r}
  - {wrt: A, claim: "outer(x, r)"}
  - {wrt: A, claim: "outer(r, x) * 2", expect: wrong}
  - {wrt: b, claim: "r"}
""")
    rep = check_solution(path)
    assert [v.status for v in rep.verdicts] == ["correct", "transposed", "wrong", "wrong"]
    assert [v.line for v in rep.verdicts] == [6, 7, 8, 9]
    assert rep.exit_code == 1
    assert "2 wrong" in rep.text() and "| 3 | 8 |" in rep.markdown()
    assert json.loads(rep.to_json())["summary"]["wrong"] == 2


def test_solution_file_malformed_claim(tmp_path):
    path = _write(tmp_path, GOOD_PROBLEM + """\
claims:
  - {wrt: x, claim: A.T @ r}
  - wrt: x
    claim: A.T @ q
""")
    rep = check_solution(path)
    assert [v.status for v in rep.verdicts] == ["correct", "malformed"]
    assert rep.verdicts[1].line == 8 and rep.exit_code == 2


@pytest.mark.parametrize("text, line, fragment", [
    ("problem:\n  formula: x\n claims: [\n", None, "not valid YAML"),
    (GOOD_PROBLEM + "claims:\n  - {wrt: x, claim: A.T @ r, grade: 3}\n", 6, "unknown key `grade`"),
    (GOOD_PROBLEM + "claims:\n  - {wrt: x}\n", 6, "no `claim:`"),
    (GOOD_PROBLEM + "claims: []\n", 5, "missing or empty"),
    (GOOD_PROBLEM.replace("formula:", "fromula:") + "claims:\n  - {wrt: x, claim: x}\n", 2, "did you mean `formula`"),
    (GOOD_PROBLEM.replace("A @ x - b)**2", "A @ x - b)**2 +") + "claims:\n  - {wrt: x, claim: x}\n", 2, "syntax error"),
    (GOOD_PROBLEM.replace("r: A @ x - b", "r: A @ z") + "claims:\n  - {wrt: x, claim: x}\n", 4, "`z`"),
    ("- just a list\n", None, "mapping"),
])
def test_bad_solution_files(tmp_path, text, line, fragment):
    path = _write(tmp_path, text)
    with pytest.raises(SymbackpropError) as e:
        check_solution(path)
    msg = e.value.format()
    assert fragment in msg
    if line is not None:
        assert f"sol.yaml:{line}:" in msg
    assert e.value.exit_code == 2


def test_common_mistakes_file():
    """The gallery's expectations hold (each claim says what it expects)."""
    rep = check_solution(MISTAKES)
    import yaml
    with open(MISTAKES) as f:
        data = yaml.safe_load(f)
    for v, c in zip(rep.verdicts, data["claims"]):
        expect = c["expect"]
        assert v.status == ("transposed" if expect == "correct up to transpose" else expect), v.text()
    assert rep.exit_code == 1


# ----- the command line (subprocess: exit codes, no tracebacks) -----

def _cli(*args):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-m", "symbackprop", "check", *args], capture_output=True, text=True,
                       cwd=ROOT, env=env, timeout=120)
    assert "Traceback" not in r.stderr + r.stdout
    return r


LS = ["0.5 * norm(A @ x - b)**2", "-s", "A=m,n", "-s", "x=n", "-s", "b=m", "--let", "r=A @ x - b"]


def test_cli_exit_codes(tmp_path):
    r = _cli(*LS, "--wrt", "x", "--claim", "A.T @ r")
    assert r.returncode == 0 and "correct" in r.stdout
    r = _cli(*LS, "--wrt", "A", "--claim", "outer(x, r)")
    assert r.returncode == 0 and "correct up to transpose" in r.stdout
    r = _cli(*LS, "--wrt", "x", "--claim", "A @ r")
    assert r.returncode == 1 and r.stderr == ""
    r = _cli(*LS, "--wrt", "x", "--claim", "2 * A.T @ r", "--json")
    assert r.returncode == 1 and json.loads(r.stdout)["diagnosis"] == "factor"
    r = _cli(*LS, "--wrt", "x", "--claim", "A.T @ (r")
    assert r.returncode == 2 and "syntax error" in r.stderr and "^" in r.stderr
    r = _cli(*LS, "--wrt", "x", "--claim", "A.T @ s")
    assert r.returncode == 2 and "`s`" in r.stderr
    r = _cli(*LS, "--wrt", "x")
    assert r.returncode == 2 and "--claim" in r.stderr


def test_cli_solution_files(tmp_path):
    r = _cli(HANDOUT)
    assert r.returncode == 0 and "7 correct, 2 correct up to transpose, 0 wrong" in r.stdout
    r = _cli(HANDOUT, "--format", "md")
    assert r.returncode == 0 and r.stdout.count("**correct**") == 7
    r = _cli(MISTAKES, "--json")
    assert r.returncode == 1 and json.loads(r.stdout)["exit_code"] == 1
    r = _cli(str(tmp_path / "missing.yaml"))
    assert r.returncode == 2 and "no such file" in r.stderr
    bad = _write(tmp_path, GOOD_PROBLEM + "claims:\n  - {wrt: x, claim: A.T @ r, grade: 3}\n")
    r = _cli(bad)
    assert r.returncode == 2 and "sol.yaml:6:" in r.stderr
    r = _cli(HANDOUT, "--wrt", "x")
    assert r.returncode == 2


def test_a_fork_shares_derivatives_until_it_defines_a_let():
    """Problem.fork (what the homework grader uses): the copy reuses what was derived, and its own lets leave
    the original's lets, derivatives and memo alone."""
    p = Problem("sum(tanh(A @ x))", {"A": "m,n", "x": "n"})
    truth = p.truth("x")
    p.memo["seen"] = 1
    f = p.fork()
    assert f.truth("x") is truth and f.memo is p.memo
    f.define("z", "A @ x")
    assert "z" in f.lets and "z" not in p.lets
    assert p.truth("x") is truth and p.memo == {"seen": 1} and f.memo == {}
    assert f.check("z", "1 - tanh(z) ** 2").ok and f.truth("x") is not truth
