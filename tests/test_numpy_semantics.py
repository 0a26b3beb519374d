"""NumPy semantics the formula language promises (issue 17): row broadcasting, axis= on reductions and
softmax/logsumexp, tan, maximum/minimum, max/min and matrix_power.

Each feature is checked three ways: values against NumPy itself, gradients against autograd (an
independent oracle, written here by hand) and against central finite differences, and the generated
module (with --batch too) against the derivation.
"""
from __future__ import annotations

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
import sympy

import symbackprop as sb
from symbackprop.cli import main as cli_main
from symbackprop.emit import emit_module, load_source
from symbackprop.errors import FormulaError, ShapeError
from symbackprop.evaluate import Point, directional_check, evaluate
from symbackprop.hessian import second_order


def _lse(z, axis):
    m = anp.max(z, axis=axis, keepdims=True)
    return anp.log(anp.sum(anp.exp(z - m), axis=axis)) + anp.squeeze(m, axis=axis)


def _softmax(z, axis):
    e = anp.exp(z - anp.max(z, axis=axis, keepdims=True))
    return e / anp.sum(e, axis=axis, keepdims=True)


def _mpow(x, k):
    out = anp.eye(x.shape[0])
    for _ in range(k):
        out = anp.dot(out, x)
    return out


SIZES = {"m": 3, "n": 4, "B": 5, "O": 3}

# (formula, shapes, oracle written with autograd.numpy, inputs kept well-conditioned)
CASES = [
    ("sum(tanh(X @ W + b))", {"X": "B,O", "W": "O,O", "b": "O"},
     lambda X, W, b: anp.sum(anp.tanh(anp.dot(X, W) + b)), ()),
    ("sum((b - A) ** 2 * A) + sum(A / c) + sum(c * A)", {"A": "m,n", "b": "n", "c": "n"},
     lambda A, b, c: anp.sum((b - A) ** 2 * A) + anp.sum(A / c) + anp.sum(c * A), ()),
    ("sum(sin(S + x)) + sum(cos(x * S))", {"S": "n,n", "x": "n"},      # square: NumPy still broadcasts rows
     lambda S, x: anp.sum(anp.sin(S + x)) + anp.sum(anp.cos(x * S)), ()),
    ("sum(sum(A, axis=0) ** 2) + sum(sin(sum(A, axis=1))) + sum(A, axis=-1) @ z", {"A": "m,n", "z": "m"},
     lambda A, z: anp.sum(anp.sum(A, axis=0) ** 2) + anp.sum(anp.sin(anp.sum(A, axis=1))) + anp.dot(anp.sum(A, axis=-1), z), ()),
    ("mean(A, axis=0) @ x + sum(mean(A, axis=1) ** 3) + mean(x, axis=0)", {"A": "m,n", "x": "n"},
     lambda A, x: anp.dot(anp.mean(A, axis=0), x) + anp.sum(anp.mean(A, axis=1) ** 3) + anp.mean(x), ()),
    ("sum(softmax(Z, axis=1) * Y) + sum(softmax(Z, axis=0) * Y ** 2) + softmax(x, axis=-1) @ x",
     {"Z": "m,n", "Y": "m,n", "x": "n"},
     lambda Z, Y, x: anp.sum(_softmax(Z, 1) * Y) + anp.sum(_softmax(Z, 0) * Y ** 2) + anp.dot(_softmax(x, 0), x), ()),
    ("logsumexp(Z, axis=1) @ z + sum(logsumexp(Z, axis=0) ** 2) + logsumexp(Z, axis=-1) @ z",
     {"Z": "m,n", "z": "m"},
     lambda Z, z: anp.dot(_lse(Z, 1), z) + anp.sum(_lse(Z, 0) ** 2) + anp.dot(_lse(Z, -1), z), ()),
    ("sum(tan(0.5 * x) * y)", {"x": "n", "y": "n"}, lambda x, y: anp.sum(anp.tan(0.5 * x) * y), ()),
    ("sum(maximum(A, x) ** 2) + sum(minimum(x, y) * y) + sum(maximum(0.3, y) * x)",
     {"A": "m,n", "x": "n", "y": "n"},
     lambda A, x, y: anp.sum(anp.maximum(A, x) ** 2) + anp.sum(anp.minimum(x, y) * y) + anp.sum(anp.maximum(0.3, y) * x), ()),
    ("max(A) * min(x) + max(sin(x)) - min(A @ x)", {"A": "m,n", "x": "n"},
     lambda A, x: anp.max(A) * anp.min(x) + anp.max(anp.sin(x)) - anp.min(anp.dot(A, x)), ()),
    ("trace(matrix_power(S, 3) @ T) + sum(matrix_power(S, 2)) + trace(matrix_power(S, 0) + matrix_power(S, 1))",
     {"S": "n,n", "T": "n,n"},
     lambda S, T: anp.trace(anp.dot(_mpow(S, 3), T)) + anp.sum(_mpow(S, 2)) + anp.trace(_mpow(S, 0) + S), ()),
    ("sum(matrix_power(S, -2) * T)", {"S": "n,n", "T": "n,n"},
     lambda S, T: anp.sum(_mpow(anp.linalg.inv(S), 2) * T), ("S",)),
]
IDS = [c[0][:40] for c in CASES]


def _values(shapes, rng, square=()):
    out = {}
    for name, spec in shapes.items():
        shape = tuple(SIZES[d] for d in spec.split(","))
        v = rng.standard_normal(shape)
        if name in square:
            v = v + shape[0] * np.eye(shape[0])
        out[name] = v
    return out


def _dims(d):
    return {s: SIZES[s.name] for s in d.program.dims}


@pytest.mark.parametrize("formula, shapes, oracle, square", CASES, ids=IDS)
def test_gradients_match_autograd_and_finite_differences(formula, shapes, oracle, square):
    d = sb.derive(formula, shapes=shapes)
    rng = np.random.default_rng(17)
    names = list(shapes)
    for _ in range(3):
        values = _values(shapes, rng, square)
        point = Point(_dims(d), values)
        value, = evaluate([d.objective], point)
        assert np.isclose(value, oracle(*(values[n] for n in names)), rtol=1e-10)
        for i, name in enumerate(names):
            ours, = evaluate([d.grads[name]], point)
            want = autograd.grad(oracle, i)(*(values[n] for n in names))
            assert np.shape(ours) == np.shape(want), name
            assert np.allclose(ours, want, rtol=1e-8, atol=1e-10), (formula, name)
            r = directional_check(d.objective, d.wrt_nodes[name], d.grads[name], point, rng)
            assert r.ok, (formula, name, r)


@pytest.mark.parametrize("formula, shapes, oracle, square", CASES, ids=IDS)
def test_generated_module_matches_autograd(formula, shapes, oracle, square):
    m = load_source(emit_module(sb.parse_formula(formula, shapes)))
    rng = np.random.default_rng(5)
    values = _values(shapes, rng, square)
    value, grads = m.value_and_grad(**values)
    assert np.isclose(value, oracle(*values.values()), rtol=1e-10)
    for i, name in enumerate(shapes):
        want = autograd.grad(oracle, i)(*values.values())
        assert np.allclose(grads[name], want, rtol=1e-8, atol=1e-10), name
        grads[name][...] = 0.0                       # gradients are real arrays, never read-only views


@pytest.mark.parametrize("which", ["all", "first", "last"])
@pytest.mark.parametrize("formula, shapes, oracle, square", CASES, ids=IDS)
def test_batch_mode_matches_a_loop(formula, shapes, oracle, square, which):
    """--batch over every input (or only the first or last): the mean of the per-example objectives,
    and its gradients (summed over the batch for inputs shared by every example)."""
    names = list(shapes)
    batch = {"all": names, "first": names[:1], "last": names[-1:]}[which]
    mb = load_source(emit_module(sb.parse_formula(formula, shapes), batch=batch))
    rng = np.random.default_rng(9)
    shared = _values(shapes, rng, square)
    per = [{**shared, **{n: v for n, v in _values(shapes, rng, square).items() if n in batch}} for _ in range(4)]
    stacked = {n: np.stack([e[n] for e in per]) if n in batch else shared[n] for n in names}
    value, grads = mb.value_and_grad(**stacked)
    assert np.isclose(value, np.mean([oracle(*e.values()) for e in per]), rtol=1e-10)
    for i, name in enumerate(names):
        each = np.stack([autograd.grad(oracle, i)(*e.values()) for e in per]) / len(per)
        want = each if name in batch else each.sum(axis=0)
        assert np.shape(grads[name]) == np.shape(want), name
        assert np.allclose(grads[name], want, rtol=1e-8, atol=1e-10), name


# ----- values: NumPy's meaning -----

def test_row_broadcast_adds_the_vector_to_every_row():
    d = sb.derive("sum((X @ W + b) * R)", shapes={"X": "B,O", "W": "O,O", "b": "O", "R": "B,O"})
    rng = np.random.default_rng(0)
    X, W, b, R = rng.standard_normal((5, 3)), rng.standard_normal((3, 3)), rng.standard_normal(3), rng.standard_normal((5, 3))
    point = Point(_dims(d), {"X": X, "W": W, "b": b, "R": R})
    assert np.isclose(evaluate([d.objective], point)[0], np.sum((X @ W + b[None, :]) * R))
    gb, = evaluate([d.grads["b"]], point)
    assert np.allclose(gb, R.sum(axis=0))           # unbroadcast: summed over the broadcast (row) axis
    assert d.text().splitlines()[2].startswith("∂ℓ/∂b = Rᵀ 𝟙")


def test_broadcast_prints_as_ones_times_a_row():
    d = sb.derive("sum(tanh(X @ W + b))", shapes={"X": "B,O", "W": "O,O", "b": "O"})
    assert "X W + 𝟙_B bᵀ" in d.text()          # 𝟙 with its size B: no product fixes it
    assert "X W + \\mathbf{1}_{B} b^\\top" in d.latex()
    src = emit_module(d)
    assert "X @ W + b" in src and "broadcast_to" not in src and "np.tile" not in src


def test_column_broadcast_is_refused_as_in_numpy():
    with pytest.raises(ShapeError) as e:
        sb.parse_formula("sum(A + z)", {"A": "m,n", "z": "m"})
    assert "cannot combine shapes m×n and m elementwise" in str(e.value)
    assert "along the rows" in str(e.value)


def test_axis_reductions_match_numpy():
    rng = np.random.default_rng(2)
    A = rng.standard_normal((3, 4))
    for text, ref in [("sum(A, axis=0)", A.sum(axis=0)), ("sum(A, axis=1)", A.sum(axis=1)),
                      ("sum(A, axis=-1)", A.sum(axis=-1)), ("sum(A, axis=-2)", A.sum(axis=-2)),
                      ("mean(A, axis=0)", A.mean(axis=0)), ("mean(A, axis=1)", A.mean(axis=1)),
                      ("softmax(A, axis=1)", np.exp(A) / np.exp(A).sum(axis=1, keepdims=True)),
                      ("softmax(A, axis=0)", np.exp(A) / np.exp(A).sum(axis=0, keepdims=True)),
                      ("logsumexp(A, axis=1)", np.log(np.exp(A).sum(axis=1))),
                      ("logsumexp(A, axis=0)", np.log(np.exp(A).sum(axis=0))),
                      ("max(A)", A.max()), ("min(A)", A.min()),
                      ("maximum(A, 0.1)", np.maximum(A, 0.1)), ("minimum(0.1, A)", np.minimum(0.1, A)),
                      ("tan(A)", np.tan(A))]:
        node = sb.parse_formula(f"t = {text}; sum(t)", {"A": "3,4"}).intermediates["t"]
        got, = evaluate([node], Point({}, {"A": A}))
        assert np.allclose(got, ref, rtol=1e-12), text


def test_softmax_with_a_huge_entry_stays_finite():
    d = sb.derive("sum(softmax(Z, axis=1) * Y)", shapes={"Z": "2,3", "Y": "2,3"})
    Z = np.array([[1000.0, 0.0, -1000.0], [0.0, 1.0, 2.0]])
    got, = evaluate([d.grads["Z"]], Point({}, {"Z": Z, "Y": np.ones((2, 3))}))
    assert np.all(np.isfinite(got))


def test_matrix_power_matches_numpy_and_the_cookbook_vjp():
    rng = np.random.default_rng(4)
    X, G = rng.standard_normal((3, 3)), rng.standard_normal((3, 3))
    for k in range(0, 5):
        d = sb.derive(f"sum(matrix_power(X, {k}) * G)", shapes={"X": "3,3", "G": "3,3"}, wrt=["X"])
        point = Point({}, {"X": X, "G": G})
        assert np.isclose(evaluate([d.objective], point)[0], np.sum(np.linalg.matrix_power(X, k) * G))
        got, = evaluate([d.grads["X"]], point)
        P = lambda i: np.linalg.matrix_power(X.T, i)    # noqa: E731
        want = sum((P(i) @ G @ P(k - 1 - i) for i in range(k)), np.zeros((3, 3)))
        assert np.allclose(got, want, rtol=1e-10, atol=1e-12), k


def test_matrix_power_is_not_the_elementwise_power():
    d = sb.derive("sum(matrix_power(X, 2) - X ** 2)", shapes={"X": "2,2"})
    X = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert np.isclose(evaluate([d.objective], Point({}, {"X": X}))[0], np.sum(X @ X - X * X))
    # printed: X² is the matrix power, X^∘2 the elementwise one (issue 13)
    assert "matrix_power(X, 2)" in d.program.source and "3·(Xᵀ)²" in sb.derive(
        "trace(matrix_power(X, 3))", shapes={"X": "n,n"}).text()
    from symbackprop.printing import to_text
    assert to_text(d.program.objective) == "sum(X² − X^∘2)"


# ----- subgradients: ties split evenly (as autograd), the same in derive and in codegen -----

def test_ties_split_the_gradient_evenly_in_derive_and_codegen():
    formula = "sum(maximum(x, y) * r) + 2 * max(x) - 3 * min(y) + sum(minimum(x, y) * r ** 2)"
    shapes = {"x": "3", "y": "3", "r": "3"}
    x, y, r = np.array([1.0, 2.0, 2.0]), np.array([1.0, -1.0, -1.0]), np.array([0.5, 0.7, 1.3])

    def oracle(x, y, r):
        return (anp.sum(anp.maximum(x, y) * r) + 2 * anp.max(x) - 3 * anp.min(y)
                + anp.sum(anp.minimum(x, y) * r ** 2))
    want = [autograd.grad(oracle, i)(x, y, r) for i in range(3)]
    assert np.isclose(want[0][0], 0.5 * 0.5 + 0.5 * 0.25) and np.isclose(want[0][1], 0.7 + 1.0)
    d = sb.derive(formula, shapes=shapes, check=False)
    point = Point({}, {"x": x, "y": y, "r": r})
    m = load_source(emit_module(d))
    _, grads = m.value_and_grad(x=x, y=y, r=r)
    for i, name in enumerate("xyr"):
        ours, = evaluate([d.grads[name]], point)
        assert np.allclose(ours, want[i], rtol=1e-12), name
        assert np.allclose(grads[name], want[i], rtol=1e-12), name


def test_checker_agrees_with_a_correct_maximum_claim():
    rc = cli_main(["check", "sum(maximum(x, y))", "--shape", "x=n", "--shape", "y=n", "--wrt", "x",
                   "--claim", "0.5 * (1 + sign(x - y))"])
    assert rc == 0


# ----- the parser: axis= only where it means something -----

@pytest.mark.parametrize("text, message", [
    ("sum(relu(A, axis=1))", "`relu` takes none"),
    ("sum(norm(A, axis=1))", "`norm` takes none"),
    ("sum(A, axis=2)", "axis 2 is out of range for m×n"),
    ("sum(A, axis=-3)", "axis -3 is out of range"),
    ("sum(A, axis=1.0)", "axis= takes an integer"),
    ("sum(A, axis=x)", "axis= takes an integer"),
    ("sum(A, keepdims=1)", "`sum` takes no keyword `keepdims`"),
    ("sum(A, axis=0, axis=1)", None),                       # Python's own syntax error
    ("sum(softmax(A))", "softmax of a m×n matrix needs axis="),
    ("logsumexp(A)", "logsumexp of a m×n matrix needs axis="),
    ("sum(matrix_power(A, 2))", "matrix_power needs a square matrix"),
    ("sum(matrix_power(S, 1.5))", "needs an integer constant k"),
    ("sum(matrix_power(S, x @ x))", "needs an integer constant k"),
    ("sum(matrix_power(S, 65))", "larger than the limit 64"),
    ("max(2.0)", "max takes a vector or matrix"),
    ("sum(maximum(A, z))", "cannot combine shapes m×n and m"),
])
def test_bad_calls_get_one_clear_message(text, message):
    with pytest.raises((FormulaError, ShapeError)) as e:
        sb.parse_formula(text, {"A": "m,n", "S": "n,n", "x": "n", "z": "m"} if "x" in text or "z" in text else
                         {k: v for k, v in {"A": "m,n", "S": "n,n"}.items() if k in text})
    if message is not None:
        assert message in str(e.value), str(e.value)


def test_cli_refuses_a_keyword_with_exit_2(capsys):
    rc = cli_main(["derive", "sum(tanh(x, axis=0))", "--shape", "x=n"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and "keyword" in err


# ----- second order and the SymPy view -----

def test_hessian_through_the_new_ops():
    d = sb.derive("sum(tanh(A + x) ** 2) + logsumexp(A @ x, axis=0) + trace(matrix_power(outer(x, x), 2))",
                  shapes={"A": "m,n", "x": "n"}, wrt=["x"])
    so = second_order(d)
    assert so.hessian is not None
    rng = np.random.default_rng(6)
    A, x = rng.standard_normal((3, 4)), rng.standard_normal(4)

    def f(x):
        return (anp.sum(anp.tanh(A + x) ** 2) + _lse(anp.dot(A, x), 0)
                + anp.trace(_mpow(anp.outer(x, x), 2)))
    H, = evaluate([so.hessian], Point({s: {"m": 3, "n": 4}[s.name] for s in d.program.dims}, {"A": A, "x": x}))
    assert np.allclose(H, autograd.hessian(f)(x), rtol=1e-8, atol=1e-10)


def test_sympy_view_of_a_broadcast_gradient_evaluates_right():
    d = sb.derive("sum((X @ W + b) * R)", shapes={"X": "2,2", "W": "2,2", "b": "2", "R": "2,2"})
    gb = d.gradients["b"]
    assert gb.shape == (2, 1)
    R = sympy.Matrix([[1, 2], [3, 5]])
    got = sympy.Matrix(gb.subs({sympy.MatrixSymbol("R", 2, 2): R}).doit())
    assert got == sympy.Matrix([[4], [7]])                # column sums of R
    gx = d.gradients["X"]
    W = sympy.Matrix([[1, -1], [2, 0]])
    got = sympy.Matrix(gx.subs({sympy.MatrixSymbol("R", 2, 2): R, sympy.MatrixSymbol("W", 2, 2): W}).doit())
    assert got == R * W.T


def test_sympy_view_of_maximum_and_matrix_power_evaluates_right():
    d = sb.derive("sum(maximum(X, b) * R) + trace(matrix_power(X, 2))",
                  shapes={"X": "2,2", "b": "2", "R": "2,2"})
    X, R, b = sympy.Matrix([[1, -2], [3, 0]]), sympy.Matrix([[1, 2], [3, 5]]), sympy.Matrix([[2], [-1]])
    subs = {sympy.MatrixSymbol("X", 2, 2): X, sympy.MatrixSymbol("R", 2, 2): R, sympy.MatrixSymbol("b", 2, 1): b}
    got = sympy.Matrix(d.gradients["R"].subs(subs).doit())
    assert got == sympy.Matrix([[2, -1], [3, 0]])            # np.maximum(X, b) with b on every row
    point = Point({}, {"X": np.array(X, float), "R": np.array(R, float), "b": np.array(b, float).ravel()})
    gx, = evaluate([d.grads["X"]], point)
    assert np.allclose(gx, np.array([[0, 0], [3, 5]]) + 2 * np.array(X, float).T)   # R where X wins, + 2Xᵀ


def test_checker_judges_a_broadcast_bias_gradient(capsys):
    args = ["check", "sum(tanh(X @ W + b))", "--shape", "X=B,d", "--shape", "W=d,k", "--shape", "b=k", "--wrt", "b"]
    assert cli_main(args + ["--claim", "sum(tanh'(X @ W + b), axis=0)"]) == 0
    assert cli_main(args + ["--claim", "sum(tanh'(X @ W + b), axis=1)"]) == 1      # summed over the wrong axis
    assert cli_main(args + ["--claim", "mean(tanh'(X @ W + b), axis=0)"]) == 1     # off by the factor B
    out = capsys.readouterr().out
    assert "verdict: correct" in out and "(1 − tanh(X W + 𝟙_B bᵀ)^∘2)ᵀ 𝟙" in out      # tanh′ in closed form
