"""A corpus of 151 matrix-derivative identities, as formulas with shapes.

Taken from SymPy's own matrix-derivative tests (sympy/matrices/expressions/tests/test_derivatives.py,
a matrix-valued expression M contracted with a seed, `g @ M` or `sum(G * M)`, to make a scalar
objective), from The Matrix Cookbook (traces, determinants, inverses, norms), from tensorgrad-style
machine-learning objectives (softmax, cross-entropy, attention, normalisation) and from the course
handout and the common losses (least squares, ridge, logistic, the MLP).

Each entry is (formula, shapes, options): `options` holds derive's keyword arguments beyond the
shapes (`elementwise=`, `functions=`). No expected results live here: the tests that use the corpus
compare against finite differences and against independent evaluations.
"""
from __future__ import annotations

V = {n: "k" for n in ("x", "y", "a", "b", "c", "d", "g", "h")}           # vectors of length k
M = {n: "k,k" for n in ("X", "A", "B", "C", "D", "G")}                  # k×k matrices


def _s(formula: str) -> dict:
    """The shapes of the names `formula` uses: the SymPy test suite's k-vectors and k×k matrices (S too)."""
    return _used(formula, {**V, **M, "S": "k,k"})


# ----- SymPy's test_derivatives.py: matrix expressions of k-vectors and k×k matrices -----
SYMPY_SUITE = [
    "g @ (A @ (X + B) @ c)",
    "g @ (x + y)",
    "g @ x**2",
    "g @ (i * x * y)",
    "g @ (i * x)",
    "g @ (sin(i) * A @ B @ x)",
    "trace(i**2 * X)",
    "g @ (2 * mu * x)",
    "x @ a",
    "a @ X @ b",
    "a @ X.T @ b",
    "a @ X @ a",
    "a @ X.T @ a",
    "b @ X.T @ X @ c",
    "(B @ x + b) @ C @ (D @ x + d)",
    "x @ B @ x",
    "b @ X.T @ D @ X @ c",
    "(X @ b + c) @ D @ (X @ b + c)",
    "g @ (x * (x @ x))",
    "a @ inv(X) @ b",
    "det(inv(X))",
    "trace(A @ inv(X) @ B)",
    "trace(inv(X + A))",
    "trace(X)",
    "trace(X @ A)",
    "trace(A @ X @ B)",
    "trace(A @ X.T @ B)",
    "trace(X.T @ A)",
    "trace(A @ X.T)",
    "trace(X @ X)",
    "trace(X @ X @ B)",
    "trace(X.T @ B @ X)",
    "trace(B @ X @ X.T)",
    "trace(X @ X.T @ B)",
    "trace(X @ B @ X.T)",
    "trace(B @ X.T @ X)",
    "trace(X.T @ X @ B)",
    "trace(A @ X @ B @ X)",
    "trace(X.T @ X)",
    "trace(X @ X.T)",
    "trace(B.T @ X.T @ C @ X @ B)",
    "trace(X.T @ B @ X @ C)",
    "trace(A @ X @ B @ X.T @ C)",
    "trace((A @ X @ B + C) @ (A @ X @ B + C).T)",
    "trace(X)**2",
    "trace(matrix_power(X, 5))",
    "trace(A @ matrix_power(X, 3))",
    "trace(B.T @ X.T @ C @ X @ X.T @ C @ X @ B)",
    "trace(inv(X.T @ C @ X) @ A)",
    "trace(inv(X.T @ C @ X) @ (X.T @ B @ X))",
    "trace(inv(A + X.T @ C @ X) @ (X.T @ B @ X))",
    "a @ (A @ X @ (X.T @ B + X @ A) + B.T @ X.T @ (outer(a, b) @ (X @ D @ X.T - X.T @ C.T @ A) @ B"
    " + B @ (X @ D.T - 3 * X @ D)) @ B + 42 * X @ B @ X.T @ A.T @ (X + X.T)) @ b",
    "3 * trace(A)",
    "trace(A)**2",
    "sum(G * (trace(A) * A))",
    "trace(trace(A) * A)",
    "trace(trace(trace(A) * A) * A)",
    "x @ y",
    "sqrt(x @ y)",
    "sqrt(x @ x)",
    "sqrt((c @ a) * (x @ b))",
    "((c @ a) * (x @ b)) ** (1/3)",
    "sqrt(a @ X @ b)",
    "(d @ x) * sqrt(a @ X @ b) * (y @ c)",
    "g @ tan(x)",
    "g @ sin(i**2 * x)",
    "sum(G * sin(log(i) * A @ B))",
    "g @ (A @ exp(x))",
    "x @ A @ x + s * (sin(y) @ x)",
    "sin(x) @ y",
    "sin(a @ X @ b)",
    "a @ sin(X) @ b",
    "a @ sin(A @ X @ B) @ b",
    "a @ A @ sin(X) @ B @ b",
    "a @ log(sigmoid(A @ sin(X) @ B)) @ b",
    "a @ log(cos(X)**2 + 1) @ b",
    "g @ (a * x * b)",
    "a @ (A * X * B) @ b",
    "g @ sqrt(x * x + 1)",
    "(a @ X @ b)**2",
    "g @ (x ** i)",
]

# ----- The Matrix Cookbook and textbook identities -----
COOKBOOK = [
    "logdet(X)",
    "det(X)",
    "det(A @ X @ B)",
    "logdet(X.T @ X)",
    "det(X.T @ A @ X)",
    "norm(X)**2",
    "norm(X - A)**2",
    "norm(x - a)",
    "norm(A @ x - b)**2",
    "sum(G * inv(X))",
    "a @ matrix_power(X, 2) @ b",
    "trace(matrix_power(X, 3))",
    "trace(matrix_power(X, -2))",
    "logdet(X @ X.T + A @ A.T)",
    "(x - a) @ inv(S) @ (x - a)",
    "trace(inv(X) @ A)",
    "det(X @ X)",
    "det(X)**2",
    "trace(X @ X @ X @ X)",
    "sum(X)**2",
    "sum(x) * sum(y)",
    "mean(X)",
    "sum(diag(X))",
    "g @ diag(X)",
    "sum(G * diag(x))",
    "a @ diag(x) @ b",
    "trace(diag(x) @ A)",
    "x @ diag(y) @ x",
    "sum(outer(x, y) * A)",
    "dot(x, y)",
    "norm(X @ a)",
    "g @ ((x - a) / norm(x - a))",
    "trace(X) * det(X)",
    "a @ inv(X) @ inv(X) @ b",
    "norm(X @ X.T - A)**2",
    "abs(x @ x)",
    "sum(sin(x) / cos(x))",
    "sum(tan(x))",
    "exp(a @ X @ b)",
    "log(x @ x + 1)",
    "i**3 + sin(i) * j",
    "exp(i * j) / (1 + j**2)",
]

# ----- machine learning (tensorgrad-style), the handout and common losses: (formula, shapes) -----
_MLP = {"W1": "q,k", "W2": "p,q", "b1": "q", "b2": "p", "x": "k", "y": "p"}
_BATCH = {"E": "m,k", "W": "k,p", "c": "p", "Y": "m,p"}
LEARNING = [
    ("-y @ log(softmax(W @ x))", {"W": "p,k", "x": "k", "y": "p"}),
    ("-y @ log(softmax(W2 @ relu(W1 @ x + b1) + b2))", _MLP),
    ("-sum(Y * log(softmax(E @ W, axis=1)))", _BATCH),
    ("logsumexp(W @ x) - y @ (W @ x)", {"W": "p,k", "x": "k", "y": "p"}),
    ("g @ softmax(x)", V),
    ("sum(softmax(E, axis=1) * F)", {"E": "m,k", "F": "m,k"}),
    ("sum(softmax(E, axis=0) * F)", {"E": "m,k", "F": "m,k"}),
    ("logsumexp(x)", V),
    ("sum(logsumexp(E, axis=1))", {"E": "m,k"}),
    ("h @ logsumexp(E, axis=1)", {"E": "m,k", "h": "m"}),
    ("h @ logsumexp(E, axis=0)", {"E": "m,k", "h": "k"}),
    ("softmax(x) @ softmax(y)", V),
    ("mean(logsumexp(E @ W + c, axis=1) - sum((E @ W + c) * Y, axis=1))", _BATCH),
    ("sum(log(1 + exp(-t * (E @ w))))", {"E": "m,k", "w": "k", "t": "m"}),
    ("sum(softplus(-t * (E @ w)))", {"E": "m,k", "w": "k", "t": "m"}),
    ("-(t @ log(sigmoid(E @ w)) + (1 - t) @ log(1 - sigmoid(E @ w)))", {"E": "m,k", "w": "k", "t": "m"}),
    ("norm(A @ x - b)**2 + lam * norm(x)**2", {"A": "m,k", "x": "k", "b": "m"}),
    ("0.5 * norm(E @ w - t)**2 + lam * norm(w)**2", {"E": "m,k", "w": "k", "t": "m"}),
    ("norm(E @ W - Y)**2", _BATCH),
    ("norm(A @ x - b)**2 + lam * sum(abs(x))", {"A": "m,k", "x": "k", "b": "m"}),
    ("0.5 * norm(W2 @ relu(W1 @ x + b1) - y)**2", _MLP),
    ("sum(tanh(E @ W + c) @ H)", {**_BATCH, "H": "p,q"}),
    ("0.5 * norm(W2 @ sigmoid(W1 @ x + b1) + b2 - y)**2", _MLP),
    ("sum(F * (softmax(Q @ K.T, axis=1) @ P))", {"Q": "m,k", "K": "p,k", "P": "p,q", "F": "m,q"}),
    ("g @ ((x - mean(x)) / sqrt(mean((x - mean(x))**2) + 1e-5))", V),
    ("max(X)", M),
    ("min(x)", V),
    ("sum(maximum(X, 0))", M),
    ("sum(minimum(x, y))", V),
    ("max(A @ x)", {"A": "m,k", "x": "k"}),
    ("trace(pinv(X))", M),
    ("sum(F * pinv(E))", {"E": "m,k", "F": "k,m"}),
    ("sum(erf(x))", V),
    ("sum(sign(x) * x)", V),
    ("sum(step(x) * x)", V),
    ("sum(abs(x))", V),
    ("sum(softplus(x))", V),
    ("sum(sigmoid(x))", V),
    ("sum(relu(x))", V),
    ("sum(relu(E @ W + c) ** 2)", _BATCH),
    ("norm(E @ W + c - Y)**2", _BATCH),
    ("sum(E @ W + c)", _BATCH),
    ("g @ sum(E, axis=0)", {"E": "m,k", "g": "k"}),
    ("h @ mean(E, axis=1)", {"E": "m,k", "h": "m"}),
    ("sum(E * E) / sum(E)", {"E": "m,k"}),
    ("sum(E + s)", {"E": "m,k"}),
    ("sum(s - E)", {"E": "m,k"}),
    ("sum(s / (E * E + 1))", {"E": "m,k"}),
    ("sum(exp(E) / (1 + exp(E)))", {"E": "m,k"}),
    ("s ** 2 * sum(x)", V),
    ("sum(x ** s)", V),
    ("sum(maximum(x, s))", V),
    ("sum(relu(W @ x) * relu(W @ y))", {"W": "p,k", "x": "k", "y": "k"}),
    ("sum(tanh(W2 @ tanh(W1 @ x)))", _MLP),
    ("z = W1 @ x + b1; h2 = relu(z); 0.5 * norm(W2 @ h2 - y)**2", _MLP),
    ("u1 = A @ x; u2 = sin(u1); u3 = u2 * u1; sum(u3) + u3 @ u2", {"A": "m,k", "x": "k"}),
    ("r = A @ x - b; r @ r + sum(r)**2", {"A": "m,k", "x": "k", "b": "m"}),
    ("q = softmax(W @ x); -y @ log(q) + q @ q", {"W": "p,k", "x": "k", "y": "p"}),
    ("sum(G * (E @ inv(A + E.T @ E)))", {"G": "m,k", "E": "m,k", "A": "k,k"}),
    ("logdet(A @ A.T + diag(exp(x)))", {"A": "k,m", "x": "k"}),
    ("sum(relu(x) * x) + sum(sqrt(x * x + 1))", V),
    ("sum(sigmoid(E) * log(1 + E * E))", {"E": "m,k"}),
    ("norm(softmax(x) - y)**2", V),
    ("x @ inv(A @ A.T + diag(y * y + 1)) @ x", {"A": "k,m", "x": "k", "y": "k"}),
]

ABSTRACT = [
    ("sum(Phi(W @ x))", {"W": "p,k", "x": "k"}, {"elementwise": ["Phi"]}),
    ("g @ Phi(A @ Phi(x))", V | M, {"elementwise": ["Phi"]}),
    ("f(t) = t**2; g(t) = t; h(a, c) = a**2 + c**2; h(f(x), g(x))", {}, {}),
    ("f(g1(w), g2(w), g3(w))", {}, {"functions": ["f", "g1", "g2", "g3"]}),
    ("f(i * j, sin(i))", {}, {"functions": ["f"]}),
]


def _used(formula: str, shapes: dict) -> dict:
    import re
    names = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", formula))
    return {n: s for n, s in shapes.items() if n in names}


CORPUS: list[tuple[str, dict, dict]] = (
    [(f, _s(f), {}) for f in SYMPY_SUITE + COOKBOOK]
    + [(f, _used(f, shapes), {}) for f, shapes in LEARNING]
    + [(f, _used(f, shapes), opts) for f, shapes, opts in ABSTRACT])
