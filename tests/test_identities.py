"""Matrix Cookbook identities and the handout's problems: closed forms, checked at random points
against formulas written here by hand in NumPy (independent of the code under test)."""
import numpy as np
import pytest

from symbackprop import derive
from symbackprop.evaluate import Point, evaluate

inv = np.linalg.inv
FORBIDDEN = ("kron", "⊗", "Array", "Permute", "Diagonal", "DiagMatrix", "Tensor")

# (formula, shapes, wrt, printed closed form, NumPy reference of the gradient)
COOKBOOK = [
    ("a @ X @ b", {"a": "m", "X": "m,n", "b": "n"}, "X", "a bᵀ", lambda a, X, b: np.outer(a, b)),
    ("a @ X.T @ b", {"a": "n", "X": "m,n", "b": "m"}, "X", "b aᵀ", lambda a, X, b: np.outer(b, a)),
    ("b @ X.T @ X @ c", {"b": "n", "X": "m,n", "c": "n"}, "X", None,
     lambda b, X, c: X @ (np.outer(b, c) + np.outer(c, b))),
    ("x @ B @ x", {"x": "n", "B": "n,n"}, "x", None, lambda x, B: (B + B.T) @ x),
    ("trace(A @ X @ B)", {"A": "p,m", "X": "m,n", "B": "n,p"}, "X", "Aᵀ Bᵀ", lambda A, X, B: A.T @ B.T),
    ("trace(X.T @ B @ X)", {"X": "m,n", "B": "m,m"}, "X", None, lambda X, B: (B + B.T) @ X),
    ("norm(X)**2", {"X": "m,n"}, "X", "2·X", lambda X: 2 * X),
    ("logdet(X)", {"X": "n,n"}, "X", "X⁻ᵀ", lambda X: inv(X).T),
    ("det(X)", {"X": "n,n"}, "X", "det(X)·X⁻ᵀ", lambda X: np.linalg.det(X) * inv(X).T),
    ("a @ inv(X) @ b", {"a": "n", "X": "n,n", "b": "n"}, "X", "−X⁻ᵀ a bᵀ X⁻ᵀ",
     lambda a, X, b: -inv(X).T @ np.outer(a, b) @ inv(X).T),
    # Cookbook (91): ∂ tr(A Xᵏ)/∂X = Σ_{i<k} (Xⁱ A Xᵏ⁻¹⁻ⁱ)ᵀ
    ("trace(A @ matrix_power(X, 3))", {"A": "n,n", "X": "n,n"}, "X", None,
     lambda A, X: sum((np.linalg.matrix_power(X, i) @ A @ np.linalg.matrix_power(X, 2 - i)).T for i in range(3))),
    ("a @ matrix_power(X, 2) @ b", {"a": "n", "X": "n,n", "b": "n"}, "X", None,
     lambda a, X, b: np.outer(a, X @ b) + np.outer(X.T @ a, b)),
    ("sum(X @ W + c)", {"X": "m,n", "W": "n,p", "c": "p"}, "c", "m·𝟙ₚ", lambda X, W, c: X.shape[0] * np.ones(W.shape[1])),
]


@pytest.mark.parametrize("formula, shapes, wrt, printed, reference", COOKBOOK, ids=[c[0] for c in COOKBOOK])
def test_cookbook_identity(formula, shapes, wrt, printed, reference):
    d = derive(formula, shapes=shapes, wrt=[wrt])
    text = d.text()
    assert not any(f in text for f in FORBIDDEN), text
    if printed is not None:
        assert text.splitlines()[0].split(" = ", 1)[1].rsplit("    [", 1)[0] == printed
    rng = np.random.default_rng(1)
    names = list(reference.__code__.co_varnames[:reference.__code__.co_argcount])
    for trial in range(3):
        dims = {s: int(v) for s, v in zip(d.program.dims, rng.choice(range(2, 7), len(d.program.dims), replace=False))}
        values = {}
        for name in names:
            shape = tuple(dims[s] if not isinstance(s, int) else s for s in d.program.shapes[name])
            values[name] = rng.standard_normal(shape) + (shape[0] * np.eye(shape[0]) if len(shape) == 2 and shape[0] == shape[1] else 0)
        ours, = evaluate([d.grads[wrt]], Point(dims, values))
        assert np.allclose(ours, reference(*(values[n] for n in names)), rtol=1e-9, atol=1e-12)


def test_handout_part_a():
    d = derive("f(t) = t**2; g(t) = t; h(a, c) = a**2 + c**2; h(f(x), g(x))")
    assert d.text().startswith("∂ℓ/∂x = 4·x³ + 2·x")
    for x in (-1.3, 0.4, 2.0):
        got, = evaluate([d.grads["x"]], Point({}, {"x": np.float64(x)}))
        assert np.isclose(got, 4 * x**3 + 2 * x)


def test_handout_part_b_prints_partials():
    d = derive("f(g1(w), g2(w), g3(w))", functions=["f", "g1", "g2", "g3"])
    text = d.text()
    for i in (1, 2, 3):
        assert f"∂{i}f(" in text and f"g{i}'(w)" in text
    assert all(c.verified for c in d.checks.values())


TWO_LAYER = "0.5 * norm(W2 @ relu(W1 @ x + b) - y)**2"
TWO_LAYER_SHAPES = {"W1": "h,d", "W2": "k,h", "x": "d", "b": "h", "y": "k"}


def test_handout_part_d_closed_forms():
    d = derive(TWO_LAYER, shapes=TWO_LAYER_SHAPES)
    text = d.text()
    assert "∂ℓ/∂W2 = x4 x2ᵀ" in text
    assert "∂ℓ/∂W1 = (W2ᵀ x4 ⊙ relu'(x1)) xᵀ" in text
    assert "∂ℓ/∂b = W2ᵀ x4 ⊙ relu'(x1)" in text
    assert "∂ℓ/∂x = W1ᵀ (W2ᵀ x4 ⊙ relu'(x1))" in text
    rng = np.random.default_rng(5)
    for _ in range(3):
        h, dd, k = rng.choice(range(2, 8), 3, replace=False)
        W1, W2 = rng.standard_normal((h, dd)), rng.standard_normal((k, h))
        x, b, y = rng.standard_normal(dd), rng.standard_normal(h), rng.standard_normal(k)
        z = W1 @ x + b
        r = W2 @ np.maximum(z, 0) - y
        gz = (W2.T @ r) * (z > 0)
        ref = {"W1": np.outer(gz, x), "W2": np.outer(r, np.maximum(z, 0)), "b": gz, "x": W1.T @ gz, "y": -r}
        dims = {s: int(v) for s, v in zip(d.program.dims, [h, dd, k]) if True}
        dims = {s: {"h": int(h), "d": int(dd), "k": int(k)}[s.name] for s in d.program.dims}
        point = Point(dims, {"W1": W1, "W2": W2, "x": x, "b": b, "y": y})
        for name, want in ref.items():
            got, = evaluate([d.grads[name]], point)
            assert np.allclose(got, want), name


def test_handout_part_d_steps_name_x1_to_x4():
    steps = derive(TWO_LAYER, shapes=TWO_LAYER_SHAPES).steps()
    for line in ("x1 = W1 x + b    [h]", "x2 = relu(x1)    [h]", "x3 = W2 x2    [k]", "x4 = x3 − y    [k]",
                 "∂ℓ/∂x4 = x4    [k]", "∂ℓ/∂x1 = ∂ℓ/∂x2 ⊙ relu'(x1) = W2ᵀ x4 ⊙ relu'(x1)    [h]",
                 "∂ℓ/∂W1 = ∂ℓ/∂x1 xᵀ"):
        assert line in steps, line


def test_user_names_are_kept():
    d = derive("z = W1 @ x + b; 0.5 * norm(W2 @ relu(z) - y)**2", shapes=TWO_LAYER_SHAPES)
    assert "relu'(z)" in d.text() and "z = W1 x + b" in d.text()


@pytest.mark.parametrize("layout", ["numerator", "denominator"])
def test_layouts_are_views_of_the_gradient(layout):
    d = derive(TWO_LAYER, shapes=TWO_LAYER_SHAPES)
    text = d.text(layout=layout)
    if layout == "numerator":
        assert "∂ℓ/∂W2 = x2 x4ᵀ    [h×k]" in text          # the handout's own layout
        assert "[1×d]" in text
    else:
        assert text == d.text()


def test_nested_expression_stays_linear():
    """e_i = sin(e_{i-1}·x_i) + e_{i-1}: the derivation's size grows linearly with depth."""
    def size(n):
        stmts = ["e0 = x0"] + [f"e{i} = sin(e{i-1} * x{i}) + e{i-1}" for i in range(1, n + 1)]
        d = derive("; ".join(stmts), check=False)
        from symbackprop.expr import walk
        return len(walk(list(d.grads.values())))
    s50, s100, s200 = size(50), size(100), size(200)
    assert s200 - s100 == pytest.approx(2 * (s100 - s50), rel=0.05)
    assert s200 < 40 * 200


def test_gradients_as_sympy_matrix_expressions():
    """The API's SymPy view: matrix expressions shaped like each variable, never array contractions."""
    import sympy
    from sympy.matrices.expressions import MatrixExpr
    d = derive(TWO_LAYER, shapes=TWO_LAYER_SHAPES)
    grads = d.gradients
    h, dd, k = (sympy.Symbol(n, integer=True, positive=True) for n in "hdk")
    assert grads["W1"].shape == (h, dd) and grads["W2"].shape == (k, h)
    assert grads["x"].shape == (dd, 1) and grads["b"].shape == (h, 1)
    for g in grads.values():
        assert isinstance(g, MatrixExpr)
        assert not any("Array" in type(a).__name__ or "Permute" in type(a).__name__ for a in sympy.preorder_traversal(g))
    # a plain linear case evaluates to the right numbers through SymPy itself
    lin = derive("a @ X @ b", shapes={"a": "2", "X": "2,3", "b": "3"}).gradients["X"]
    a, b = sympy.MatrixSymbol("a", 2, 1), sympy.MatrixSymbol("b", 3, 1)
    A, B = sympy.Matrix([[1], [2]]), sympy.Matrix([[3], [4], [5]])
    assert sympy.Matrix(lin.subs({a: A, b: B}).doit()) == A * B.T
