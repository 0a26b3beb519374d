"""Issue 13: the simplifier's rewrites (symbackprop/rules_simplify.py), each with a test and a numeric check.

Every rewrite registered in REWRITES is exercised here: an expression it applies to is simplified, the
printed result is compared with the expected form, and the two expressions are evaluated at random points
(values here are NumPy arrays drawn independently of the code under test) and must agree.
"""
from __future__ import annotations

import time

import numpy as np
import pytest
import sympy

from symbackprop import derive, parse_formula
from symbackprop import expr as E
from symbackprop.evaluate import Point, evaluate
from symbackprop.expr import RULES, walk
from symbackprop.printing import expand_macros, to_text
from symbackprop.rules import apply_fn
from symbackprop.rules_simplify import CLOSED_FORMS, KEPT_PRIMES, PRINTED_AS, REWRITES
from symbackprop.simplify import Simplifier, simplify

N = 4
x, y, g = (E.var(n, (N,)) for n in "xyg")
a, b, u, v = (E.var(n, (N,)) for n in "abuv")
X, Y, A, B = (E.var(n, (N, N)) for n in "XYAB")
s, t = E.var("s"), E.var("t")
R = E.var("R", (N + 2, N))
I = E.eye(N)
one = E.const(1)


def fn(name, arg):
    return apply_fn(name, arg)


# (rewrite name, expression, printed result)
CASES = [
    ("fold_reciprocal", g * fn("log'", x), "g ⊘ x"),
    ("fold_reciprocal", E.mul(g, E.div(E.const(3), x)), "3·g ⊘ x"),
    ("cancel_quotient", x * E.div(g, x), "g"),
    ("cancel_quotient", E.mul(E.mul(x, y), E.div(g, x)), "g ⊙ y"),
    ("square_product", fn("cos", x) * fn("cos", x), "cos(x)²"),
    ("square_product", fn("cos", x) * E.power(fn("cos", x), E.const(2)), "cos(x)³"),
    ("function_first", E.mul(E.dot(a, b), fn("cos", s)), "cos(s)·aᵀb"),
    ("repeated_divisor", E.div(E.div(g, x), x), "g ⊘ x²"),
    ("div_coefficient", E.Node("div", (E.mul(E.const(3), g), x)), "3·g ⊘ x"),
    ("powers_of_products", X.T @ X.T @ X.T, "(Xᵀ)³"),
    ("powers_of_products", X @ (X @ v), "X² v"),
    ("cancel_inverse", E.Node("inv", (X,)) @ X, "I₄"),
    ("cancel_inverse", (A @ E.Node("inv", (X,))) @ (X @ B), "A B"),
    ("cancel_inverse", E.transpose(E.Node("inv", (X,))) @ (X.T @ B), "B"),
    ("scalar_out_of_matmul", E.mul(s, A) @ B, "s·A B"),
    ("scalar_out_of_matmul", E.div(A, s) @ B, "A B/s"),
    ("scalar_out_of_outer", E.outer(E.mul(s, u), v), "s·u vᵀ"),
    ("collect_add", E.add((X @ X) @ X, X @ (X @ X)), "2·X³"),
    ("collect_add", E.add((A @ B) @ X, A @ (B @ X)), "2·A B X"),
    ("collect_sub", E.sub(E.mul(E.const(3), (A @ B) @ X), A @ (B @ X)), "2·A B X"),
    ("plus_minus", E.Node("add", (x, E.mul(E.const(-2), y))), "x − 2·y"),
    ("plus_minus", E.Node("add", (E.mul(E.const(-2), y), x)), "x − 2·y"),
    ("sum_of_product", E.sum_all(E.mul(I, X)), "tr(X)"),
    ("sum_of_product", E.sum_all(E.mul(a, b)), "aᵀb"),
    ("sum_of_product", E.sum_all(E.mul(E.outer(u, v), A)), "uᵀ A v"),
    ("sum_of_product", E.sum_all(E.mul(E.outer(u, v) @ B, A)), "uᵀ A Bᵀ v"),
    ("dot_of_transposed", E.dot(X.T @ a, b), "aᵀ X b"),
    ("dot_cancel", E.dot(x, E.div(g, x)), "sum(g)"),
    ("scalar_out_of_dot", E.dot(E.mul(s, u), v), "s·uᵀv"),
    ("inv_inv", E.Node("inv", (E.Node("inv", (X,)),)), "X"),
    ("inv_product", E.Node("inv", (A @ B,)), "B⁻¹ A⁻¹"),
    ("det_inv", E.Node("det", (E.Node("inv", (X,)),)), "1/det(X)"),
    ("det_product", E.Node("det", (A @ B,)), "det(A)·det(B)"),
    ("power_of_power", E.power(E.power(s, E.const(2)), E.const(3)), "s⁶"),
    ("det_power", E.Node("det", (E.matrix_power(X, 3),)), "det(X)³"),
    ("inv_power", E.Node("inv", (E.matrix_power(X, 2),)), "(X⁻¹)²"),
    ("transposed_power", E.Node("T", (E.matrix_power(X, 2),)), "(Xᵀ)²"),
    ("distribute", E.mul(fn("exp", x), E.sub(y, E.div(g, fn("exp", x)))), "exp(x) ⊙ y − g"),
    ("quotient_out", E.mul(E.div(fn("sin", x), fn("cos", x)), fn("sin", x)), "sin(x)² ⊘ cos(x)"),
    ("logistic", E.sub(E.mul(y, E.sub(one, x)), E.mul(E.sub(one, y), x)), "y − x"),
    ("symmetric_inverse", E.transpose(E.Node("inv", (R.T @ R,))), "(Rᵀ R)⁻¹"),
    ("inv_of_transposed", E.Node("inv", (X.T,)), "X⁻ᵀ"),
    ("cancel_factor", E.div(E.mul(x, y), x), "y"),
    ("div_constants", E.Node("div", (E.mul(E.const(6), g), E.mul(E.const(2), x))), "3·g ⊘ x"),
    ("outer_of_transposed", E.outer(u, X.T @ v), "u vᵀ X"),
    ("ones_outer", E.mul(E.mul(E.const(2), E.outer(E.ones((N,)), E.ones((N,)))), X), "2·X"),
    ("constant_over_constant", E.Node("mul", (E.const(2), E.div(g, E.mul(E.const(2), x)))), "g ⊘ x"),
    ("constant_into_numerator", E.Node("mul", (E.const(3), E.Node("div", (one, x)))), "3 ⊘ x"),
    ("constant_into_numerator", E.Node("mul", (E.const(-5), E.mul(E.div(E.div(one, s), t), x))), "−5/s/t·x"),
    ("constant_into_numerator", E.Node("mul", (E.const(sympy.Rational(1, 3)), E.Node("div", (one, x)))),
     "1/3·1 ⊘ x"),                                 # a fraction stays in front: 1/3 ⊘ x reads ambiguously
]


def _values(root, rng):
    """Random values for the variables of `root`: positive vectors (so logs, quotients and square roots
    are defined) and well-conditioned matrices (so inverses are)."""
    out = {}
    for n in walk(root):
        if n.op == "var" and n.attrs[0] not in out:
            shape = n.shape
            if len(shape) == 2 and shape[0] == shape[1]:
                out[n.attrs[0]] = rng.standard_normal(shape) + 3 * np.eye(shape[0])
            else:
                out[n.attrs[0]] = rng.uniform(0.5, 2.0, shape)
    return out


def _agree(before, after, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(3):
        point = Point({}, _values(before, rng))
        want, got = evaluate([before, after], point)
        assert np.allclose(got, want, rtol=1e-9, atol=1e-12), (to_text(before), to_text(after))


@pytest.mark.parametrize("name, node, printed", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_each_rewrite(name, node, printed):
    out = simplify(node)
    assert to_text(out) == printed, (name, to_text(node), to_text(out))
    _agree(node, out)


def test_every_rewrite_has_a_case():
    named = {r.name for rules in REWRITES.values() for r in rules if r.name.split()[0] != "closed"}
    assert named <= {c[0] for c in CASES}, named - {c[0] for c in CASES}


def test_every_prime_is_closed_or_kept():
    primes = {op for op, rule in RULES.items() if rule.expand is not None}
    kinds = [set(CLOSED_FORMS), set(KEPT_PRIMES), set(PRINTED_AS)]
    assert primes == set().union(*kinds)
    assert sum(len(k) for k in kinds) == len(primes)                 # each in one kind only


@pytest.mark.parametrize("prime", sorted(CLOSED_FORMS))
def test_closed_forms_equal_the_rule_tables_expansion(prime):
    """Each closed form against the derivative the rule table defines, and against central differences of
    the function itself."""
    node = E.Node(prime, (x,))
    closed = simplify(node)
    assert not any(RULES[n.op].expand for n in walk(closed)), to_text(closed)
    _agree(expand_macros([node])[0], closed)
    rng = np.random.default_rng(3)
    xs = rng.uniform(0.3, 1.2, N)
    h = 1e-6
    f = E.Node(prime[:-1], (x,))
    hi, lo = (evaluate([f], Point({}, {"x": xs + d}))[0] for d in (h, -h))
    got, = evaluate([closed], Point({}, {"x": xs}))
    assert np.allclose(got, (hi - lo) / (2 * h), rtol=1e-6, atol=1e-8), prime


def test_relu_prime_stays():
    assert to_text(simplify(E.Node("relu'", (x,)))) == "relu'(x)"


def test_shared_parts_stay_shared():
    """One Simplifier over several roots: a shared sub-expression is simplified once, to one node."""
    shared = g * fn("log'", x)
    simp = Simplifier()
    r1 = simp(shared + y)
    assert simp(shared) is r1.args[0] and to_text(r1) == "g ⊘ x + y"


def test_cost_is_linear_in_depth():
    """The depth-n nest of bench/derive_scaling.py: simplifying all n+1 gradients takes time linear in n
    (generous bound: the ratio for 4× the depth stays under 8, allowing for a loaded machine)."""
    from symbackprop.sweep import backprop

    def nest(n):
        return "; ".join(["e0 = x0"] + [f"e{i} = sin(e{i-1} * x{i}) + e{i-1}" for i in range(1, n + 1)])

    times = {}
    for n in (100, 400):
        program = parse_formula(nest(n))
        adjoints = backprop(program.objective, E.const(1), list(program.variables.values()))
        t0 = time.perf_counter()
        simp = Simplifier()
        for adj in adjoints.values():
            simp(adj)
        times[n] = time.perf_counter() - t0
    assert times[400] < 8 * times[100] + 0.05, times


def test_derivation_checks_what_it_prints():
    """The self-check evaluates the simplified gradients, the very nodes `text()` prints."""
    d = derive("sum(log(x))", shapes={"x": "n"})
    assert d.text().startswith("∂ℓ/∂x = 1 ⊘ x")
    assert d.checks["x"].verified
    assert not any(RULES[n.op].expand for n in walk(d.grads["x"]))


@pytest.mark.parametrize("formula, printed", [
    ("n * (1/norm(x))", "∂ℓ/∂x = −n/‖x‖²/‖x‖·x    [n]"),         # was −n·1/‖x‖²/‖x‖·x
    ("n * sum(1/x)", "∂ℓ/∂x = −n ⊘ x²    [n]"),                     # was −n·1 ⊘ x²
])
def test_a_size_times_a_reciprocal_prints_as_the_quotient(formula, printed):
    """n·(1/y) prints as n/y, as `n / norm(x)` already did; the derive self-check confirms the value."""
    from symbackprop.derivation import Derivation
    from symbackprop.parse import parse_formula
    d = Derivation(parse_formula(formula, {"x": "n"}), check=True)
    assert d.text() == printed
