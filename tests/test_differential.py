"""Differential tests: random formulas from the whole rule table, through derive (with its
self-check), codegen (the generated module, imported from a file), graph (DOT) and check,
against autograd (an independent AD library) and central finite differences.

Example counts come from the Hypothesis profile (tests/hypothesis_profiles.py):
`ci` by default, `HYPOTHESIS_PROFILE=long` for a long run (docs/reliability.md).
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

import autograd
import numpy as np
import pytest
from hypothesis import assume, given, note, settings
from hypothesis import strategies as st

import hypothesis_profiles  # noqa: F401  (registers and loads the profile)
import strategies as S
from symbackprop import derive
from symbackprop import expr as E
from symbackprop.check import Problem
from symbackprop.emit import emit_module
from symbackprop.render import build_graph, render_dot
from symbackprop.testing import check_grads, load_module

#: Agreement with autograd: both are exact up to rounding, so tight.
RTOL = 1e-7
ATOL = 1e-9
#: Points closer than this to a kink of relu/abs/step/sign are skipped (the derivative jumps there).
KINK_MARGIN = 1e-3
#: Points where the objective or a gradient is larger than this are skipped (overflow-prone).
MAX_MAGNITUDE = 1e6

REGRESSIONS = Path(__file__).with_name("regressions.json")


def _oracle(formula, values):
    names = formula.variables
    env_kinks = []

    def f(vals):
        env = dict(zip(names, vals))
        env["_kinks"] = env_kinks
        return formula.fn(env)

    args = [values[n] for n in names]
    value = float(f(args))
    grads = autograd.grad(f)(args) if names else []
    return value, dict(zip(names, (np.asarray(g, dtype=float) for g in grads))), env_kinks


def _usable(value, grads, kinks) -> bool:
    if not math.isfinite(value) or abs(value) > MAX_MAGNITUDE:
        return False
    if any(not np.all(np.isfinite(g)) or np.max(np.abs(g), initial=0) > MAX_MAGNITUDE for g in grads.values()):
        return False
    return all(np.min(np.abs(k), initial=np.inf) > KINK_MARGIN for k in kinks)


def _close(a, b) -> bool:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    scale = max(1.0, float(np.max(np.abs(b), initial=0.0)))
    return a.shape == b.shape and bool(np.all(np.abs(a - b) <= RTOL * np.abs(b) + ATOL * scale))


def run_pipeline(formula, seed=0):
    """derive -> codegen -> import -> compare with autograd and finite differences -> graph.

    Returns a dict of figures; raises AssertionError on any disagreement."""
    d = derive(formula.text, formula.shapes, seed=seed)            # raises InternalError if the self-check fails
    for c in d.checks.values():
        assert c.verified or "no random point" in c.note, (c.name, c.note, c.worst_error)
    src = emit_module(d)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "grad_module.py"
        path.write_text(src, encoding="utf-8")
        module = load_module(path)
    assert list(module.INPUTS) == list(d.program.variables)
    rng = np.random.default_rng(seed)
    tried = 0
    for _ in range(4):
        values = S.random_values(formula, rng)
        value, grads, kinks = _oracle(formula, values)
        if _usable(value, grads, kinks):
            break
    else:
        return {"compared": False}
    tried += 1
    got_value, got = module.value_and_grad(**values)
    assert _close(got_value, value), ("value", got_value, value)
    assert set(got) == set(formula.variables)
    for name in formula.variables:
        assert _close(got[name], grads[name]), (name, got[name], grads[name])
    fd = check_grads(module, inputs=values, seed=seed)
    assert all(r.ok for r in fd.values()), {n: r.worst for n, r in fd.items()}
    for backward in (False, True):
        dot = render_dot(build_graph(d, backward=backward))
        assert "digraph symbackprop {" in dot and dot.rstrip().endswith("}")
    _through_checker(formula, d, seed, got)
    return {"compared": True}


def _through_checker(formula, d, seed, got):
    """The checker says `correct` to the true gradient and `wrong` to perturbed ones
    (for a variable whose gradient is not zero at the point compared above)."""
    name = next((n for n in formula.variables if np.max(np.abs(got[n]), initial=0.0) > 1e-3), None)
    if name is None:
        return
    problem = Problem(formula.text, formula.shapes, seed=seed)
    grad, var = d.grads[name], d.program.variables[name]
    verdict = problem.check(name, grad)
    assert verdict.status == "correct", (name, verdict.text())
    for wrong in (E.mul(E.const(sympy_rational(3, 2)), grad), E.add(grad, E.mul(E.const(sympy_rational(1, 10)), var))):
        verdict = problem.check(name, wrong)
        assert verdict.status == "wrong", (name, verdict.text())


def sympy_rational(p, q):
    import sympy
    return sympy.Rational(p, q)


# ----- the property -----

@pytest.mark.filterwarnings("ignore:Output seems independent of input")
@given(formula=S.formulas(), seed=st.integers(0, 2**16))
def test_random_formulas_against_autograd(formula, seed):
    note(formula.text)
    assume(formula.variables)                       # a formula of constants only is a clean error, fuzzed elsewhere
    figures = run_pipeline(formula, seed)
    assume(figures["compared"])


# ----- the regression corpus: every failing case found, replayed -----

def _corpus():
    return json.loads(REGRESSIONS.read_text(encoding="utf-8"))["differential"]


@pytest.mark.parametrize("case", _corpus(), ids=lambda c: c["id"])
def test_regression_corpus(case):
    formula = S.formula_from_text(case["formula"], case.get("shapes", {}))
    figures = run_pipeline(formula, case.get("seed", 0))
    assert figures["compared"]


# ----- the strategy itself -----

def test_strategy_covers_rule_table():
    """Every built-in read off RULES, and every operator, shows up in generated formulas."""
    seen = set()

    @settings(max_examples=600, database=None, deadline=None, derandomize=True)
    @given(S.formulas())
    def collect(formula):
        seen.update(formula.ops)

    collect()
    wanted = S.rule_table_builtins() | {"add", "sub", "mul", "div", "pow", "neg", "@", "T", "var", "const"}
    assert wanted - seen == set()
