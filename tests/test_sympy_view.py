"""The SymPy view (Derivation.gradients, sympy_bindings, inline) on every formula of the identity
corpus and on random formulas of the differential strategy.

Each view must build, keep matrix forms (no index `Sum(`), and evaluate, through SymPy itself
(explicit ImmutableMatrix values substituted, then SymPy's own doit/as_explicit), to the numbers
of an independent reference: central finite differences of the objective along a random
direction, our evaluator, and, for the random formulas, autograd.
"""
from __future__ import annotations

import math
import re

import autograd
import numpy as np
import pytest
import sympy
from hypothesis import assume, given, note, settings
from hypothesis import strategies as st
from sympy import matrices as Mx

import hypothesis_profiles  # noqa: F401  (registers and loads the profile)
import strategies as S
from hypothesis_profiles import examples
from identity_corpus import CORPUS
from symbackprop import derive
from symbackprop.evaluate import Point, evaluate, find_point
from symbackprop.rules_sympy import ELEMENTWISE_FUNCTIONS, symbol_for
from symbackprop.sympy_bridge import explicit
from symbackprop.tolerances import FD_ATOL, FD_RTOL

RTOL, ATOL = 1e-7, 1e-9


# ----- evaluating a SymPy expression numerically, with SymPy's own semantics -----

def as_array(value, shape):
    if isinstance(value, Mx.MatrixBase):
        return np.array(value.tolist(), dtype=float).reshape(shape)
    return np.broadcast_to(np.array(complex(value).real if _real(value) else float(value), dtype=float), shape)


def _real(value):
    v = complex(value)
    return abs(v.imag) <= 1e-12 * max(1.0, abs(v.real))


def stand_ins(point: Point, program) -> dict:
    """The concrete functions the point's Substitutes compute, written in SymPy (their derivatives are
    then SymPy's own): f(a) = sin(w·a + c) + ½ b (u·a)²."""
    out = {}
    for name, sub in point.functions.items():
        arity = 1 if name in program.elementwise else None
        if arity is None:                           # a scalar function: its arity from the parsed program
            arity = next(len(n.args) for n in _nodes(program) if n.op == "fn" and n.attrs[0] == name)
        w, c, u, b = sub._p(arity)
        xs = sympy.symbols(f"s1:{arity + 1}")
        s = sum(sympy.Float(float(wi)) * x for wi, x in zip(w, xs))
        t = sum(sympy.Float(float(ui)) * x for ui, x in zip(u, xs))
        out[sympy.Function(name)] = sympy.Lambda(xs, sympy.sin(s + float(c)) + sympy.Float(float(b)) / 2 * t ** 2)
    return out


def _nodes(program):
    from symbackprop.expr import walk
    return walk(program.objective)


def environment(d, point) -> dict:
    """Dims and variables as SymPy numbers and explicit matrices (vectors as columns)."""
    env = {s: sympy.Integer(v) for s, v in point.dims.items()}
    for name, node in d.program.variables.items():
        v = np.asarray(point.values[name], dtype=float)
        env[symbol_for(node)] = sympy.Float(float(v)) if v.ndim == 0 else sympy.ImmutableMatrix(
            v.reshape(v.shape[0], -1).tolist())
    return env


def sympy_values(d, point, inline=False) -> dict:
    """Each gradient of the SymPy view, evaluated by SymPy at `point`."""
    env = environment(d, point)
    functions = stand_ins(point, d.program)

    def ev(e):
        for f, lam in functions.items():
            e = e.replace(f, lam)
        return explicit(e.xreplace(env))

    grads = d.gradients
    if inline:
        return {n: ev(d.inline(g)) for n, g in grads.items()}
    for symbol, definition in d.sympy_bindings.items():
        env[symbol] = ev(definition)
    return {n: ev(g) for n, g in grads.items()}


def shape_of(d, name, point):
    return tuple(int(s) if isinstance(s, int) else point.dims[s] for s in d.program.shapes.get(name, ()))


def finite_difference(d, point, name, direction) -> float:
    """The derivative of the objective along `direction` in `name`, by the five-point central stencil (our
    evaluator on the objective only): step 1e-4, truncation error O(step⁴), little rounding error."""
    x = np.asarray(point.values[name], dtype=float)
    eps = 1e-4 * max(1.0, float(np.max(np.abs(x)))) if x.size else 1e-4
    node = d.program.variables[name]
    f = [float(evaluate([d.objective], point, {node: x + k * eps * direction})[0]) for k in (-2, -1, 1, 2)]
    return (f[0] - 8 * f[1] + 8 * f[2] - f[3]) / (12 * eps)


# ----- the structure of the view -----

def assert_matrix_forms(d):
    grads = d.gradients
    assert set(grads) == set(d.grads)
    for name, g in grads.items():
        assert isinstance(g, sympy.Basic), name
        text = sympy.srepr(g)
        assert "Sum(" not in text and "MatrixElement" not in text, (name, g)
        assert not any(w in text for w in ("Array", "PermuteDims", "Kronecker")), (name, g)
        node = d.grads[name]
        if node.ndim:
            assert isinstance(g, Mx.MatrixExpr), (name, g)
            assert g.shape == (node.shape + (1,))[:2], (name, g.shape, node.shape)
        else:
            assert not isinstance(g, Mx.MatrixExpr) and g.is_commutative, (name, g)
    for symbol, definition in d.sympy_bindings.items():
        assert "Sum(" not in sympy.srepr(definition), (symbol, definition)
    for e in list(grads.values()) + list(d.sympy_bindings.values()):
        assert str(e) and sympy.latex(e) and sympy.pretty(e)          # SymPy's printers take every form
    inputs = {symbol_for(v) for v in d.program.variables.values()} | set(d.program.dims)
    for name, g in grads.items():
        free = d.inline(g).free_symbols
        free |= {a for a in sympy.preorder_traversal(d.inline(g)) if isinstance(a, Mx.MatrixSymbol)}
        left = {s for s in free if s not in inputs and not isinstance(s, sympy.Dummy)}
        assert not left, (name, left)              # inlined: the inputs alone


def _case_id(case):
    return re.sub(r"\s+", "", case[0])[:60]


@pytest.mark.parametrize("formula, shapes, options", CORPUS, ids=[_case_id(c) for c in CORPUS])
def test_corpus_view_evaluates_to_the_gradient(formula, shapes, options):
    d = derive(formula, shapes=shapes, check=False, **options)
    assert_matrix_forms(d)
    rng = np.random.default_rng(7)
    point, vals = find_point(d.program, rng, [d.objective] + list(d.grads.values()))
    assert point is not None
    got = sympy_values(d, point)
    for i, name in enumerate(d.grads):
        shape = shape_of(d, name, point)
        g = as_array(got[name], shape)
        ours = np.broadcast_to(np.asarray(vals[1 + i], dtype=float), shape)
        assert np.allclose(g, ours, rtol=RTOL, atol=ATOL), (name, g, ours)
        v = rng.standard_normal(shape)
        fd, analytic = finite_difference(d, point, name, v), float(np.sum(g * v))
        tol = FD_RTOL * max(abs(fd), abs(analytic)) + FD_ATOL * max(1.0, abs(float(vals[0])))
        assert abs(fd - analytic) <= tol, (name, fd, analytic)


INLINED = ["-y @ log(softmax(W @ x))", "0.5 * norm(W2 @ relu(W1 @ x + b1) - y)**2", "g @ ((x - a) / norm(x - a))",
           "trace(pinv(X))", "q = softmax(W @ x); -y @ log(q) + q @ q",
           "u1 = A @ x; u2 = sin(u1); u3 = u2 * u1; sum(u3) + u3 @ u2"]


@pytest.mark.parametrize("formula, shapes, options", [c for c in CORPUS if c[0] in INLINED],
                         ids=[_case_id(c) for c in CORPUS if c[0] in INLINED])
def test_inlined_view_evaluates_from_the_inputs_alone(formula, shapes, options):
    d = derive(formula, shapes=shapes, check=False, **options)
    assert d.sympy_bindings, "the case is meant to have named intermediates"
    point, vals = find_point(d.program, np.random.default_rng(3), [d.objective] + list(d.grads.values()))
    got = sympy_values(d, point, inline=True)
    for i, name in enumerate(d.grads):
        shape = shape_of(d, name, point)
        assert np.allclose(as_array(got[name], shape), np.broadcast_to(vals[1 + i], shape), rtol=RTOL, atol=ATOL), name


def test_inlined_cases_are_in_the_corpus():
    assert len([c for c in CORPUS if c[0] in INLINED]) == len(INLINED)


# ----- random formulas of the differential strategy, against autograd -----

def _oracle_grads(formula, values):
    names = formula.variables
    kinks = []

    def f(vals):
        env = dict(zip(names, vals))
        env["_kinks"] = kinks
        return formula.fn(env)

    args = [values[n] for n in names]
    value = float(f(args))
    grads = autograd.grad(f)(args)
    return value, {n: np.asarray(g, dtype=float) for n, g in zip(names, grads)}, kinks


@pytest.mark.filterwarnings("ignore:Output seems independent of input")
@settings(max_examples=examples("sympy_view"))
@given(formula=st.one_of(S.formulas(), S.wide_formulas()), seed=st.integers(0, 2**16))
def test_random_formulas_view_matches_autograd(formula, seed):
    note(formula.text)
    assume(formula.variables)
    d = derive(formula.text, formula.shapes, check=False)
    assert_matrix_forms(d)
    rng = np.random.default_rng(seed)
    values = S.random_values(formula, rng)
    with np.errstate(all="ignore"):
        value, grads, kinks = _oracle_grads(formula, values)
    usable = math.isfinite(value) and abs(value) < 1e6 and all(
        np.all(np.isfinite(g)) and np.max(np.abs(g), initial=0) < 1e6 for g in grads.values()) and all(
        np.min(np.abs(k), initial=np.inf) > 1e-3 for k in kinks)
    assume(usable)
    for name, g in d.gradients.items():               # SymPy evaluates the view (sizes read off the values)
        got = np.broadcast_to(d.sympy_value(g, values), np.shape(grads[name]))
        scale = max(1.0, float(np.max(np.abs(grads[name]), initial=0.0)))
        assert np.all(np.abs(got - grads[name]) <= 1e-6 * np.abs(grads[name]) + 1e-8 * scale), (name, got, grads[name])


# ----- the pieces -----

def test_scalars_from_arrays_are_traces_not_index_sums():
    """xᵀy is Trace(x.T*y), a commutative scalar: it multiplies matrices without expanding into an index Sum."""
    d = derive("sqrt(x @ y)", shapes={"x": "k", "y": "k"})
    k = sympy.Symbol("k", integer=True, positive=True)
    x, y = sympy.MatrixSymbol("x", k, 1), sympy.MatrixSymbol("y", k, 1)
    assert d.gradients["x"] == y / (2 * sympy.sqrt(sympy.Trace(x.T * y)))
    assert sympy.Trace(x.T * y).diff(x) == y                   # SymPy's own matrix calculus reads such a trace


def test_the_issue_cases_build():
    """The seven formulas issue 13 names as raising (noncommutative scalars; softmax's Mix of Matrix and Scalar)."""
    for formula, shapes in [("sum(X)**2", {"X": "m,n"}), ("trace(trace(A) * A)", {"A": "k,k"}),
                            ("g @ ((x - a) / norm(x - a))", {"g": "k", "x": "k", "a": "k"}),
                            ("-y @ log(softmax(W @ x))", {"W": "p,k", "x": "k", "y": "p"}),
                            ("sum(softmax(Z, axis=1) * F)", {"Z": "m,k", "F": "m,k"})]:
        assert_matrix_forms(derive(formula, shapes=shapes))


def test_bindings_define_the_names_in_forward_order():
    d = derive("-y @ log(softmax(W @ x))", shapes={"W": "p,k", "x": "k", "y": "p"})
    p, k = (sympy.Symbol(n, integer=True, positive=True) for n in "pk")
    W, x = sympy.MatrixSymbol("W", p, k), sympy.MatrixSymbol("x", k, 1)
    x2 = sympy.MatrixSymbol("x2", p, 1)
    e = sympy.matrices.expressions.applyfunc.ElementwiseApplyFunction(sympy.exp, W * x)
    (symbol, definition), = d.sympy_bindings.items()
    assert symbol == x2 and definition.dummy_eq(e / sympy.Trace(sympy.OneMatrix(1, p) * e))
    assert x2 in set(sympy.preorder_traversal(d.gradients["W"]))
    assert x2 not in set(sympy.preorder_traversal(d.inline(d.gradients["W"])))


def test_named_elementwise_functions_evaluate_and_differentiate():
    t = sympy.Symbol("t")
    relu, step, sigmoid, softplus = (ELEMENTWISE_FUNCTIONS[n] for n in ("relu", "step", "sigmoid", "softplus"))
    assert relu(sympy.Float(-1.5)) == 0 and relu(sympy.Float(2.5)) == 2.5
    assert step(sympy.Float(0.0)) == 0 and step(sympy.Float(3.0)) == 1        # step(0) = 0, as NumPy's heaviside(·, 0)
    assert abs(float(sigmoid(sympy.Float(0.3))) - 1 / (1 + math.exp(-0.3))) < 1e-14
    assert abs(float(softplus(sympy.Float(0.3))) - math.log1p(math.exp(0.3))) < 1e-14
    assert sympy.diff(relu(t), t) == step(t)
    assert sympy.diff(step(t), t) == 0
    assert sympy.diff(softplus(t), t) == sigmoid(t)
    assert sympy.simplify(sympy.diff(sigmoid(t), t) - sigmoid(t) * (1 - sigmoid(t))) == 0


def test_abstract_functions_are_sympy_derivatives():
    d = derive("f(g1(w), g2(w))", functions=["f", "g1", "g2"])
    w = sympy.Symbol("w")
    f, g1, g2 = (sympy.Function(n) for n in ("f", "g1", "g2"))
    assert (d.gradients["w"] - sympy.diff(f(g1(w), g2(w)), w)).doit() == 0        # SymPy's own chain rule


def test_max_and_pinv_evaluate_on_explicit_matrices():
    X = sympy.MatrixSymbol("X", 2, 3)
    value = [[1.0, 5.0, 2.0], [5.0, 0.5, 3.0]]
    d = derive("max(X)", shapes={"X": "2,3"})
    mask = explicit(d.gradients["X"].xreplace({X: sympy.ImmutableMatrix(value)}))
    assert mask.tolist() == [[0, sympy.Rational(1, 2), 0], [sympy.Rational(1, 2), 0, 0]]   # a tie split evenly
    d = derive("trace(pinv(X) @ A)", shapes={"X": "2,3", "A": "2,3"})
    A = sympy.MatrixSymbol("A", 2, 3)
    a = [[1.0, 2.0, 0.0], [0.5, -1.0, 3.0]]
    g = explicit(d.inline(d.gradients["A"]).xreplace({X: sympy.ImmutableMatrix(value), A: sympy.ImmutableMatrix(a)}))
    assert np.allclose(np.array(g.tolist(), dtype=float), np.linalg.pinv(np.array(value)).T)


def test_docs_sympy_page_holds_real_output():
    """Every ```pycon block of docs/sympy.md runs, in order, and prints what the page shows."""
    import doctest
    from pathlib import Path
    page = Path(__file__).resolve().parent.parent / "docs" / "sympy.md"
    blocks = re.findall(r"```pycon\n(.*?)```", page.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 3
    test = doctest.DocTestParser().get_doctest("\n".join(blocks), {}, "docs/sympy.md", str(page), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.failures == 0 and runner.tries >= 10, (runner.failures, runner.tries)


SECOND_ORDER = [("norm(A @ x - b)**2", {"A": "m,k", "x": "k", "b": "m"}, ["x"]),
                ("sum(softplus(-t * (E @ w))) + lam * norm(w)**2", {"E": "m,k", "w": "k", "t": "m"}, ["w"]),
                ("-y @ log(softmax(W @ x))", {"W": "p,k", "x": "k", "y": "p"}, None),
                ("logdet(X) + trace(X @ X) * sum(relu(X @ a))", {"X": "k,k", "a": "k"}, ["X"])]


@pytest.mark.parametrize("formula, shapes, wrt", SECOND_ORDER, ids=[c[0] for c in SECOND_ORDER])
def test_second_order_view_evaluates_to_the_hvp_and_hessian(formula, shapes, wrt):
    """SecondOrder.sympy: H v (and H) through SymPy equal the self-checked second-order results."""
    from symbackprop.hessian import second_order
    from symbackprop.sympy_bridge import numeric
    so = second_order(derive(formula, shapes=shapes), wrt=wrt)      # checked against differences of the gradient
    view = so.sympy
    assert set(view["hvp"]) == set(so.wrt) and (view["hessian"] is None) == (so.hessian is None)
    rng = np.random.default_rng(11)
    point, _ = find_point(so.d.program, rng, [so.d.objective] + [so.d.grads[n] for n in so.wrt])
    for n, v in so.directions.items():
        point.values[v.attrs[0]] = rng.standard_normal(np.shape(point.values[n]))
    roots = [so.hvps[n] for n in so.wrt] + ([so.hessian] if so.hessian is not None else [])
    ours = evaluate(roots, point)
    got = [numeric(view["hvp"][n], point.values, view["bindings"], so.d.program.shapes) for n in so.wrt]
    if so.hessian is not None:
        got.append(numeric(view["hessian"], point.values, view["bindings"], so.d.program.shapes))
    for g, o in zip(got, ours):
        o = np.asarray(o, dtype=float)
        assert np.allclose(np.broadcast_to(g, o.shape), o, rtol=RTOL, atol=ATOL)
