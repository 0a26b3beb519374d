"""Regressions of the checker (issue 11, and issue 14 item 5).

Every verdict here is backed by an independent NumPy computation: the claim is evaluated by hand and the
true gradient by central finite differences of the objective, so the expected verdict does not come from
the code under test.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

from symbackprop.check import Problem, check
from symbackprop.errors import FormulaError

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def _cli(*args):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-m", "symbackprop", "check", *args], capture_output=True, text=True,
                       env=env, cwd=ROOT)
    return r.returncode, r.stdout, r.stderr


def _fd(f, x, eps=1e-6):
    """Central differences of the scalar f at x (an array or a float)."""
    x = np.asarray(x, dtype=float)
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        hi, lo = x.copy(), x.copy()
        hi[i] += eps
        lo[i] -= eps
        g[i] = (f(hi) - f(lo)) / (2 * eps)
    return g


def _relu(t):
    return np.maximum(t, 0.0)


# ----- 1. a claim that is undefined (NaN) where the gradient is defined is wrong, and the verdict says where -----

# (formula, shapes, wrt, claim, NumPy objective in the variable, NumPy claim, diagnosis, words in the summary)
UNDEFINED = [
    ("sum(relu(W @ x) ** 1.5)", {"x": "n", "W": "m,n"}, "x", "1.5 * W.T @ sqrt(W @ x)",
     lambda W: (lambda x: np.sum(_relu(W @ x) ** 1.5)), lambda W: (lambda x: 1.5 * W.T @ np.sqrt(W @ x)),
     "missing-factor", ["relu'(W x) is missing", "W x has negative entries"]),
    ("sum(abs(x)**1.5)", {"x": "n"}, "x", "1.5 * x ** 0.5",
     lambda W: (lambda x: np.sum(np.abs(x) ** 1.5)), lambda W: (lambda x: 1.5 * x ** 0.5),
     "missing-factor", ["sign(x) is missing", "x has negative entries"]),
    ("x @ x", {"x": "n"}, "x", "2*exp(log(x))",
     lambda W: (lambda x: x @ x), lambda W: (lambda x: 2 * np.exp(np.log(x))),
     "undefined", ["undefined at points where x has negative entries"]),
]


@pytest.mark.parametrize("formula, shapes, wrt, claim, f, g, diagnosis, words", UNDEFINED,
                         ids=[u[3] for u in UNDEFINED])
def test_claim_undefined_on_part_of_the_domain_is_wrong(formula, shapes, wrt, claim, f, g, diagnosis, words):
    rng = np.random.default_rng(3)
    W, x = rng.standard_normal((4, 3)), rng.standard_normal(3)
    x[0] = -abs(x[0])
    if "W" in shapes:
        W[0] = -np.sign(x) * np.abs(W[0])            # W x has a negative entry
    with np.errstate(invalid="ignore"):
        claimed = g(W)(x)
    true = _fd(f(W), x)
    assert np.all(np.isfinite(true)) and not np.all(np.isfinite(claimed))   # the claim is wrong at this point
    v = check(formula, shapes, wrt=wrt, claim=claim)
    assert v.status == "wrong" and v.exit_code == 1
    assert v.diagnosis == diagnosis
    for w in words:
        assert w in v.summary, v.summary
    assert "undefined" in v.text()


def test_claim_undefined_everywhere_is_wrong_not_malformed():
    x = np.random.default_rng(0).standard_normal(4)
    with np.errstate(invalid="ignore"):
        assert np.all(np.isnan(np.log(-x * x - 1)))  # NaN at every point
    assert np.all(np.isfinite(_fd(lambda t: t @ t, x)))   # while the gradient 2x is finite
    rc, out, err = _cli("x @ x", "-s", "x=n", "--wrt", "x", "--claim", "log(-x*x - 1)")
    assert rc == 1, (out, err)
    assert "verdict: wrong: undefined at every point tried" in out
    assert "log of a negative number" in out
    assert "no random point found" not in out + err


def test_a_gradient_that_is_nowhere_finite_is_still_reported():
    """Only a non-finite TRUE gradient makes a claim uncheckable."""
    rc, out, err = _cli("sum(sqrt(-x*x - 1))", "-s", "x=n", "--wrt", "x", "--claim", "x")
    assert rc == 2
    assert "no random point found where ∂ℓ/∂x is finite" in err


def test_claim_right_where_the_objective_is_defined_stays_correct():
    """sum(log(x)) is defined for x > 0 only: 1/x written as exp(-log(x)) is right on that domain."""
    x = np.array([0.5, 1.5, 2.0])
    assert np.allclose(_fd(lambda t: np.sum(np.log(t)), x), np.exp(-np.log(x)))
    assert check("sum(log(x))", {"x": "n"}, wrt="x", claim="exp(-log(x))").status == "correct"


# ----- 2. every kink argument, scalar ones included, is sampled on both sides of its kink -----

def test_scalar_relu_argument_takes_both_signs():
    rc, out, _ = _cli("0.5 * (v * relu(w @ x + b) - y) ** 2", "-s", "w=95", "-s", "x=95", "--wrt", "b",
                      "--claim", "(v * relu(w @ x + b) - y) * v")
    assert rc == 1 and "verdict: wrong: the factor relu'(wᵀx + b) is missing" in out, out
    # at a point with w·x + b < 0 the claim is not the derivative (which is 0 there)
    rng = np.random.default_rng(1)
    w, x, v, y = rng.standard_normal(95), rng.standard_normal(95), 1.3, 0.4
    b = -(w @ x) - 1.0
    loss = lambda t: 0.5 * (v * _relu(w @ x + t) - y) ** 2
    assert abs(_fd(loss, b) - (v * _relu(w @ x + b) - y) * v) > 0.1


def test_scalar_abs_argument_takes_both_signs():
    rc, out, _ = _cli("abs(a) * b + sum(z * z)", "-s", "z=13", "--wrt", "b", "--claim", "a")
    assert rc == 1 and "verdict: wrong" in out, out
    assert abs(_fd(lambda t: abs(-0.7) * t, 2.0) - (-0.7)) > 1    # a < 0: the claim a is not |a|


KINKED = {   # kink op -> (its NumPy version, its derivative)
    "relu": (_relu, lambda t: (np.asarray(t) > 0).astype(float)),
    "abs": (np.abs, np.sign),
}
LINEAR = {   # a scalar argument of the kink, with ∂/∂a = 1
    "a": lambda a, b, w, x: a,
    "a + b": lambda a, b, w, x: a + b,
    "a - 2 * b": lambda a, b, w, x: a - 2 * b,
    "w @ x + a": lambda a, b, w, x: w @ x + a,
    "a + 2": lambda a, b, w, x: a + 2,              # positive at most standard-normal points
    "3 + b - a * -1": lambda a, b, w, x: 3 + b + a,
}


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("op", sorted(KINKED))
@pytest.mark.parametrize("arg", sorted(LINEAR))
def test_random_scalar_kinks_missing_the_kink_factor_are_wrong(op, arg, seed):
    """ℓ = ½ (k(arg) − c)², with k a kink and arg a scalar through a: a claim without k′(arg) is wrong, the
    one with it is right; both checked at points on each side of the kink by finite differences."""
    formula = f"0.5 * ({op}({arg}) - c) ** 2 + sum(x * x)"
    shapes = {"w": 7, "x": 7} if "w" in arg else {"x": 7}
    k, dk = KINKED[op]
    rng = np.random.default_rng(seed)
    w, x, b, c = rng.standard_normal(7), rng.standard_normal(7), rng.standard_normal(), rng.standard_normal()
    for side in (-1, 1):                             # the reference, on both sides of the kink
        a = 0.0
        a = side * (1.0 + abs(rng.standard_normal())) - (LINEAR[arg](a, b, w, x))
        t = LINEAR[arg](a, b, w, x)
        loss = lambda s: 0.5 * (k(LINEAR[arg](s, b, w, x)) - c) ** 2
        assert np.isclose(_fd(loss, a), (k(t) - c) * dk(t), rtol=1e-5, atol=1e-7)
        if side < 0:
            assert not np.isclose(_fd(loss, a), k(t) - c, rtol=1e-5, atol=1e-7)
    right = check(formula, shapes, wrt="a", claim=f"({op}({arg}) - c) * {op}'({arg})", seed=seed)
    wrong = check(formula, shapes, wrt="a", claim=f"{op}({arg}) - c", seed=seed)
    assert right.status == "correct", right.text()
    assert wrong.status == "wrong", wrong.text()


@pytest.mark.parametrize("claim", ["2 * sqrt(x) * sqrt(x)", "2 * exp(log(x))", "(2 * x ** 0.5) ** 2 / 2",
                                   "2 / (1 / x)", "x + x * exp(log(x)) / x"])
@pytest.mark.parametrize("seed", range(3))
def test_claims_undefined_for_negative_entries_are_wrong(claim, seed):
    """Each claim is 2x where it is defined; 2x is the gradient of x·x everywhere."""
    v = check("x @ x", {"x": "n"}, wrt="x", claim=claim, seed=seed)
    x = np.array([-1.5, 0.5, 2.0])
    assert np.allclose(_fd(lambda t: t @ t, x), 2 * x)
    if claim == "2 / (1 / x)":                       # defined wherever x has no zero entry: right
        assert v.status == "correct", v.text()
    else:
        assert v.status == "wrong" and v.diagnosis == "undefined", v.text()
        assert "x has negative entries" in v.summary


# ----- 3. a let that occurs in two places, spelled two ways -----

LET_FORMULA = "sum(relu(W@x+b)) + sum(tanh(b+W@x))"
LET_SHAPES = {"W": "m,n", "x": "n", "b": "m"}


@pytest.mark.parametrize("claim, status", [("relu'(z) + tanh'(z)", "correct"), ("relu'(z)", "wrong"),
                                           ("tanh'(z)", "wrong"), ("2 * relu'(z) + tanh'(z)", "wrong")])
def test_let_spelled_either_way_gives_the_same_verdict(claim, status):
    rng = np.random.default_rng(5)
    z = rng.standard_normal(4)
    reference = _fd(lambda t: np.sum(_relu(t)) + np.sum(np.tanh(t)), z)   # z stands for both places
    claimed = {"relu'(z) + tanh'(z)": (z > 0) + 1 - np.tanh(z) ** 2, "relu'(z)": (z > 0) * 1.0,
               "tanh'(z)": 1 - np.tanh(z) ** 2, "2 * relu'(z) + tanh'(z)": 2.0 * (z > 0) + 1 - np.tanh(z) ** 2}[claim]
    assert np.allclose(claimed, reference, atol=1e-6) == (status == "correct")
    verdicts = [Problem(LET_FORMULA, LET_SHAPES, lets={"z": spelling}).check("z", claim)
                for spelling in ("W@x+b", "b+W@x", "x @ W.T + b")]
    assert [v.status for v in verdicts] == [status] * 3, [v.text() for v in verdicts]


@pytest.mark.parametrize("spelling", ["a * b - c", "-c + b * a", "b * a - c"])
def test_let_matches_products_and_differences_in_any_order(spelling):
    rng = np.random.default_rng(6)
    z = rng.standard_normal(5)
    sig = lambda t: 1 / (1 + np.exp(-t))
    reference = _fd(lambda t: np.sum(_relu(t)) + np.sum(sig(t)), z)      # z stands for both places
    assert np.allclose(reference, (z > 0) + sig(z) * (1 - sig(z)), atol=1e-6)
    p = Problem("sum(relu(a * b - c)) + sum(sigmoid(-c + b * a))", {"a": "n", "b": "n", "c": "n"},
                lets={"z": spelling})
    assert p.check("z", "relu'(z) + sigmoid'(z)").status == "correct"
    assert p.check("z", "sigmoid'(z)").status == "wrong"


def test_let_with_the_values_of_two_nested_places_is_refused():
    """abs(x) and abs(abs(x)) have the same values: relu(abs(x)) could stand for either."""
    with pytest.raises(FormulaError) as e:
        Problem("sum(abs(abs(x)))", {"x": "n"}, lets={"z": "relu(abs(x))"}).check("z", "sign(z)")
    assert "nested" in str(e.value.message) and "ambiguous" in str(e.value.message)
    z = np.array([0.5, 1.0, 2.0])                    # the let spelled as in the formula is fine
    assert np.allclose(_fd(lambda t: np.sum(np.abs(t)), z), np.sign(z))
    assert Problem("sum(abs(abs(x)))", {"x": "n"}, lets={"z": "abs(x)"}).check("z", "sign(z)").status == "correct"


# ----- 4. the row-vector note appears where it applies, and only there -----

MLP = "0.5 * norm(W2 @ tanh(W1 @ x + b) - y)**2"
MLP_SHAPES = {"W1": "h,d", "W2": "k,h", "x": "d", "b": "h", "y": "k"}
MLP_LETS = {"x1": "W1 @ x + b", "x4": "W2 @ tanh(x1) - y"}


@pytest.mark.parametrize("wrt, claim, note", [
    ("x", "x4 @ W2 @ diag(tanh'(x1)) @ W1", "x4 @ W2 here, for x4ᵀ W2"),
    ("x", "(W2.T @ x4 * tanh'(x1)) @ W1", "(W2.T @ x4 * tanh'(x1)) @ W1 here"),
    ("b", "(W2.T @ x4).T * tanh'(x1)", "(W2.T @ x4).T here, a vector's transpose"),
    ("x", "W1.T @ (W2.T @ x4 * tanh'(x1))", None),
    ("b", "W2.T @ x4 * tanh'(x1)", None),
    ("y", "-x4", None),
])
def test_row_vector_note_only_where_it_applies(wrt, claim, note):
    v = Problem(MLP, MLP_SHAPES, lets=MLP_LETS).check(wrt, claim)
    assert v.status == "correct"
    text = v.text()
    if note is None:
        assert "Vectors are 1-D" not in text and "x4ᵀ W2" not in text, text
    else:
        assert "Vectors are 1-D" in text and note in text, text


def test_undefined_claim_json_is_strict_json():
    """A NaN claim's counterexample is JSON null, not the NaN token that strict JSON parsers refuse."""
    import json
    rc, out, _ = _cli("x @ x", "-s", "x=n", "--wrt", "x", "--claim", "log(-x*x - 1)", "--json")
    def refuse(token):
        raise ValueError(token)
    d = json.loads(out, parse_constant=refuse)
    assert rc == 1 and d["status"] == "wrong" and d["diagnosis"] == "undefined"
    assert all(c is None for c in d["counterexample"]["claimed"])
    x = np.array(d["counterexample"]["inputs"]["x"])
    assert np.allclose(d["counterexample"]["true"], _fd(lambda t: t @ t, x))


def test_undefined_claim_without_a_simple_place_shows_the_point():
    """exp(1000 x⊙x) overflows for |x| > 0.84: no sign pattern says where, so the point is shown."""
    v = check("x @ x", {"x": "n"}, wrt="x", claim="2*x*exp(1000*x*x)/exp(1000*x*x)")
    assert v.status == "wrong" and v.diagnosis == "undefined"
    assert "see the counterexample" in v.summary
    text = v.text()
    assert "counterexample:" in text and "nan" in text
    x = np.asarray(v.counterexample.inputs["x"])
    with np.errstate(over="ignore", invalid="ignore"):
        claimed = 2 * x * np.exp(1000 * x * x) / np.exp(1000 * x * x)
    assert not np.all(np.isfinite(claimed)) and np.all(np.isfinite(_fd(lambda t: t @ t, x)))


def test_inv_of_a_non_finite_matrix_is_undefined_not_an_error():
    """Found by the long run: the checker's kink search reached a point where inv's argument had inf
    entries, and the conditioning check (an SVD) raised LinAlgError instead of marking the point invalid."""
    from symbackprop.evaluate import evaluate, random_point
    from symbackprop.parse import parse_formula
    program = parse_formula("sum(inv(A))", {"A": "n,n"})
    point = random_point(program, np.random.default_rng(0))
    for bad in (np.inf, np.nan):                    # SVD fails to converge on a NaN entry
        point.values["A"] = np.eye(point.values["A"].shape[0])
        point.values["A"][0, 0] = bad
        assert np.isnan(evaluate([program.objective], point)[0])
    verdict = check("det(M / sigmoid(M / sigmoid(M)) @ (M / sigmoid(M / sigmoid(M))).T + diag(1 + w * w))",
                    {"w": "m", "M": "m,m"}, wrt="w", claim="w")
    assert verdict.status == "wrong"
