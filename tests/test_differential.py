"""Differential tests: random formulas from the whole rule table, through derive (with its
self-check), codegen (the generated module, imported from a file; per example and with random
--batch and --wrt subsets), graph (DOT), check (true, perturbed, NaN-on-part-of-the-domain and
missing-kink-factor claims) and the printed results read back by an independent evaluator
(tests/roundtrip.py), against autograd (an independent AD library) and central finite differences.

Example counts come from tests/hypothesis_profiles.py: `ci` by default, `HYPOTHESIS_PROFILE=long`
for a long run (docs/reliability.md).
"""
from __future__ import annotations

import ast
import contextlib
import io
import json
import math
import os
import tempfile
from pathlib import Path

import autograd
import numpy as np
import pytest
from hypothesis import assume, event, given, note, settings
from hypothesis import strategies as st

import hypothesis_profiles  # (registers and loads the profile)
import roundtrip as R
import strategies as S
from hypothesis_profiles import examples
from symbackprop import Derivation, SymbackpropError, derive, parse_formula
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
    # the true gradient times exp(log(q))/q, q = sum(var) or var: equal where q > 0, NaN where q < 0
    q = E._sum(var)
    nan_part = E.mul(grad, E.div(E.apply("exp", E.apply("log", q)), q))
    verdict = problem.check(name, nan_part)
    if verdict.status != "wrong" and "check-nan-part" in KNOWN_OPEN:
        event(f"tolerated known bug check-nan-part ({KNOWN_OPEN['check-nan-part']})")
    else:
        assert verdict.status == "wrong", (name, "NaN where sum(var) < 0", verdict.text())


def sympy_rational(p, q):
    import sympy
    return sympy.Rational(p, q)


# ----- the property -----

@pytest.mark.filterwarnings("ignore:Output seems independent of input")
@settings(max_examples=examples("differential"))
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


# ----- bugs other branches fix: tolerated by signature until they are merged -----

#: Known open bugs, by the branch that fixes them. While a class is listed here, a random example
#: that fails with exactly that class's signature is tolerated (and counted with `event`); any
#: other failure fails the test. Empty this after merging the fixes, so every property is strict.
KNOWN_OPEN = {
    "batch-shape": "h1-codegen",        # --batch: a gradient with the wrong leading batch axis (or none)
    "batch-scale": "h1-codegen",        # --batch: a gradient off by the factor B
    "check-nan-part": "h2-check",       # check says correct to a claim that is NaN on part of the domain
    "check-kink": "h2-check",           # check says correct to a claim missing a relu', sign or abs factor
    "check-no-point": "h2-check",       # check exits 2 (no point) for a claim that is NaN everywhere
    "print-ambiguous": "h3-print",      # text like x^−2/3, 2/3^x, n**(-2), 1/(m*n)
    "codegen-keyerror": "none yet",     # NEW_CODEGEN_FAILURES below: found here, reported to the lead
}
if os.environ.get("SYMBACKPROP_STRICT"):        # SYMBACKPROP_STRICT=1: tolerate nothing (see the bugs)
    KNOWN_OPEN = {}


def _xfail_until(key: str):
    return pytest.mark.xfail(key in KNOWN_OPEN, reason=f"known bug, fixed on branch {KNOWN_OPEN.get(key)}",
                             strict=False)


def _load(src: str):
    """A generated module, imported from a private temporary file that is removed at once."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "grad_module.py"
        path.write_text(src, encoding="utf-8")
        return load_module(path)


# ----- codegen --batch against a loop over examples -----

class BatchMismatch(AssertionError):
    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind


def _per_example_points(formula, batch, size, rng, sizes=None):
    """A shared point for the inputs that are not batched, and `size` examples of the batched ones,
    each usable (finite, away from kinks): [(values, oracle value, oracle grads)], or None."""
    for _ in range(4):
        base = S.random_values(formula, rng, sizes)
        out = []
        for _ in range(size):
            fresh = S.random_values(formula, rng, sizes)
            values = {**base, **{n: fresh[n] for n in batch}}
            value, grads, kinks = _oracle(formula, values)
            if not _usable(value, grads, kinks):
                break
            out.append((values, value, grads))
        else:
            return out
    return None


def run_batch(case: S.BatchCase, seed: int = 0, sizes=None) -> bool:
    """codegen --batch against a Python loop over the unbatched module (itself checked against
    autograd at each example). The objective is the mean over the batch (docs/codegen.md), so a
    batched input's gradient is its per-example gradient / B, stacked on axis 0, and an unbatched
    input's gradient is the mean of the per-example gradients. Compared in shape and value.
    Returns False when no usable point was found; raises BatchMismatch on a disagreement."""
    f, B = case.formula, case.size
    program = parse_formula(f.text, f.shapes)
    d = Derivation(program, wrt=case.wrt, check=False)
    single = _load(emit_module(d, wrt=case.wrt))
    batched = _load(emit_module(d, wrt=case.wrt, batch=case.batch))
    wrt = list(case.wrt or program.variables)
    assert list(batched.WRT) == wrt and list(batched.BATCHED) == list(case.batch)
    examples_ = _per_example_points(f, case.batch, B, np.random.default_rng(seed), sizes)
    if examples_ is None:
        return False
    per = []
    for values, value, grads in examples_:
        v1, g1 = single.value_and_grad(**values)
        assert _close(v1, value), ("unbatched value", v1, value)
        for n in wrt:
            assert _close(g1[n], grads[n]), ("unbatched grad", n, g1[n], grads[n])
        per.append((v1, g1))
    stacked = dict(examples_[0][0])
    for n in case.batch:
        stacked[n] = np.stack([np.asarray(values[n], dtype=float) for values, _, _ in examples_])
    value, grads = batched.value_and_grad(**stacked)
    want_value = float(np.mean([v for v, _ in per]))
    if not _close(value, want_value):
        raise BatchMismatch("value", f"value {value} != mean over the batch {want_value}")
    if not _close(batched.forward(**stacked), value):
        raise BatchMismatch("value", "forward() differs from value_and_grad()")
    if set(grads) != set(wrt):
        raise BatchMismatch("names", f"gradients for {sorted(grads)}, due {sorted(wrt)}")
    for n in wrt:
        per_grads = [np.asarray(g[n], dtype=float) for _, g in per]
        want = np.stack(per_grads) / B if n in case.batch else np.mean(per_grads, axis=0)
        got = np.asarray(grads[n], dtype=float)
        if got.shape != want.shape:
            kind = "batch-shape" if (got.shape == (B,) + want.shape or (B,) + got.shape == want.shape) else "shape"
            raise BatchMismatch(kind, f"grad_{n} has shape {got.shape}, due {want.shape}")
        if not _close(got, want):
            ratio = np.divide(got, want, out=np.full(want.shape, np.nan), where=np.abs(want) > 1e-6)
            scaled = B > 1 and np.any(np.isfinite(ratio)) and any(
                np.allclose(ratio[np.isfinite(ratio)], r, rtol=1e-6) for r in (B, 1 / B))
            ratio_text = f"{np.nanmedian(ratio):.6g}" if np.any(np.isfinite(ratio)) else "n/a"
            raise BatchMismatch("batch-scale" if scaled else "value",
                                f"grad_{n} differs from the loop: max |got - due| = {np.max(np.abs(got - want)):.3g} "
                                f"(max |due| = {np.max(np.abs(want)):.3g}), median got/due = {ratio_text}, B = {B}")
    return True


def _run_batch_tolerating(case, seed=0):
    try:
        return run_batch(case, seed)
    except BatchMismatch as e:
        if e.kind in KNOWN_OPEN:
            event(f"tolerated known bug {e.kind} ({KNOWN_OPEN[e.kind]})")
            return True
        raise
    except KeyError as e:                           # NEW_CODEGEN_FAILURES: emit's planner misses a node
        if "codegen-keyerror" in KNOWN_OPEN and "<neg" in str(e):
            event(f"tolerated known bug codegen-keyerror ({KNOWN_OPEN['codegen-keyerror']})")
            return True
        raise


@pytest.mark.filterwarnings("ignore:Output seems independent of input")
@settings(max_examples=examples("batch"))
@given(case=S.batch_cases(), seed=st.integers(0, 2**16))
def test_batch_mode_against_a_loop(case, seed):
    note(repr(case))
    assume(case.batch)
    assume(_run_batch_tolerating(case, seed))


#: Found by the outside review of main (the first five) and by these tests (the rest): wrong batch gradients.
BATCH_REGRESSIONS = [
    ("norm-y-minus-Wx", "0.5 * norm(y - W @ x)**2", {"W": "k,d", "x": "d", "y": "k"}, ["x", "y"], None, "batch-shape"),
    ("wrt-subset-scale", "0.5 * norm(W @ x - y)**2 - u @ V @ c", {"W": "k,d", "x": "d", "y": "k", "u": "m", "V": "m,n",
                                                                   "c": "n"}, ["x", "y"], ["W", "V"], "batch-scale"),
    ("inv-batched-a", "a @ inv(X) @ b", {"a": "n", "X": "n,n", "b": "n"}, ["a"], None, "batch-shape"),
    ("diag-BBt", "norm(diag(B @ B.T - A))**2", {"B": "n,n", "A": "n,n"}, ["B"], None, "batch-shape"),
    ("diag-of-scaled-u", "sum(diag(-u/(norm(C)**2+1)))", {"u": "n", "C": "n,n"}, ["u"], None, "batch-shape"),
    # found by test_batch_mode_against_a_loop (minimised): a gradient that is a constant
    ("minus-unbatched-scalar", "x @ x - a", {"x": "n"}, ["x"], None, "batch-scale"),        # grad_a = -1/B, due -1
    ("constant-grad-of-batched", "a - c", {}, ["c"], None, "batch-shape"),                # grad_c = -1.0, due (B,)
    ("scaled-sum-batched-c", "c * sum(-u / (norm(C)**2 + 1))", {"u": "n", "C": "n,m"}, ["c"], None, "batch-shape"),
]


@pytest.mark.filterwarnings("ignore:Output seems independent of input")
@pytest.mark.parametrize("size", [5, 2])
@pytest.mark.parametrize("label,text,shapes,batch,wrt,bug", [pytest.param(*c, marks=_xfail_until(c[-1]))
                                                             for c in BATCH_REGRESSIONS], ids=[c[0] for c in BATCH_REGRESSIONS])
def test_batch_regressions(label, text, shapes, batch, wrt, bug, size):
    """--batch on formulas that gave wrong gradients, at sizes k=3, d=4, m=6, n=7."""
    f = S.formula_from_text(text, shapes)
    assert run_batch(S.BatchCase(f, batch, wrt, size), seed=1, sizes={"k": 3, "d": 4, "m": 6, "n": 7})


#: New failures found by the widened strategies that no branch fixes yet (reported to the lead).
NEW_CODEGEN_FAILURES = [
    # codegen raises KeyError (a traceback, exit 1) in emit._Emitter.product: diag(v) @ M with a negated
    # factor builds a node the planner never saw (found by test_batch_mode_against_a_loop; unbatched too)
    ("neg-sum-diag-outer", "-sum(diag(outer(w, v)))", {"w": "m", "v": "m"}),
    ("neg-v-diag-outer", "-(v @ diag(outer(v, u)))", {"u": "n", "v": "n"}),
]


@pytest.mark.filterwarnings("ignore:Output seems independent of input")
@pytest.mark.xfail(reason="new bug found by h4-holes: KeyError in emit._Emitter.product; no branch fixes it yet",
                   strict=False)
@pytest.mark.parametrize("label,text,shapes", NEW_CODEGEN_FAILURES, ids=[c[0] for c in NEW_CODEGEN_FAILURES])
def test_new_codegen_failures(label, text, shapes):
    formula = S.formula_from_text(text, shapes)
    assert run_pipeline(formula)["compared"]
    assert run_batch(S.BatchCase(formula, list(formula.variables), None, 2), sizes={"m": 3, "n": 4})


# ----- the checker: kinks of scalars, missing kink factors, claims NaN on part of the domain -----

def _confirm_expectation(case: S.ClaimCase, rng) -> None:
    """The case's expected verdict, confirmed with autograd at random points (not with symbackprop):
    a `correct` claim agrees wherever it is compared; a `wrong` one is NaN or different somewhere."""
    f = S.formula_from_text(case.formula, case.shapes)
    claim_tree = ast.parse(case.claim, mode="eval").body
    agree = differ = 0
    for _ in range(16):
        values = S.random_values(f, rng, {"n": 4, "m": 3})
        value, grads, kinks = _oracle(f, values)
        if not _usable(value, grads, kinks):
            continue
        with np.errstate(all="ignore"):
            claimed = np.asarray(S._interpret(claim_tree, {**values, "_kinks": []}), dtype=float)
        truth = grads[case.wrt]
        claimed = np.broadcast_to(claimed, truth.shape)
        if np.all(np.isfinite(claimed)) and _close(claimed, truth):
            agree += 1
        else:
            differ += 1
    if case.expect == "correct":
        assert differ == 0 and agree > 0, ("the test's own claim is not the derivative", agree, differ)
    else:
        assert differ > 0, ("the test's own wrong claim agrees everywhere it was compared", agree)


def _status(case: S.ClaimCase, seed: int) -> str:
    try:
        return Problem(case.formula, case.shapes, seed=seed).check(case.wrt, case.claim).status
    except SymbackpropError as e:
        return "error: " + str(e).split("\n")[0]


#: Which known bug a wrong verdict on each kind of claim is (KNOWN_OPEN).
_CLAIM_BUG = {"nan-part": "check-nan-part", "missing-kink": "check-kink", "nan-everywhere": "check-no-point"}


@pytest.mark.filterwarnings("ignore:Output seems independent of input")
@settings(max_examples=examples("claims"))
@given(case=S.claim_cases(), seed=st.integers(0, 2**16))
def test_checker_on_kink_and_nan_claims(case, seed):
    """check must say `correct` to the true derivative and `wrong` (exit 1, never exit 2) to a
    claim missing a relu', sign or abs factor or NaN on part (or all) of the domain. A missing
    factor of a scalar kink shows only at points of the other sign, so those claims are checked
    with three checker seeds."""
    note(repr(case))
    _confirm_expectation(case, np.random.default_rng(seed))
    for s in ((seed, seed + 1, seed + 2) if case.kind == "missing-kink" else (seed,)):
        status = _status(case, s)
        if (status == "correct") == (case.expect == "correct") and not status.startswith("error"):
            continue
        bug = _CLAIM_BUG.get(case.kind)
        if case.expect == "wrong" and bug in KNOWN_OPEN:
            event(f"tolerated known bug {bug} ({KNOWN_OPEN[bug]})")
            continue
        raise AssertionError(f"check says {status!r} (seed {s}); due: {case.expect}")


#: Found by the outside review of main: the checker said `correct` (or exit 2) to wrong claims.
CHECK_REGRESSIONS = [
    ("relu-pow-sqrt", "sum(relu(W @ x) ** 1.5)", {"W": "m,n", "x": "n"}, "x", "1.5 * W.T @ sqrt(W @ x)", "check-nan-part"),
    ("abs-pow-sqrt", "sum(abs(x)**1.5)", {"x": "n"}, "x", "1.5 * x ** 0.5", "check-nan-part"),
    ("exp-log", "x @ x", {"x": "n"}, "x", "2*exp(log(x))", "check-nan-part"),
    ("nan-everywhere", "x @ x", {"x": "n"}, "x", "log(-x*x - 1)", "check-no-point"),
    ("scalar-relu-95", "0.5 * (v * relu(w @ x + b) - y) ** 2", {"w": "95", "x": "95"}, "b",
     "(v * relu(w @ x + b) - y) * v", "check-kink"),
    ("scalar-abs-13", "abs(a) * b + sum(z * z)", {"z": "13"}, "b", "a", "check-kink"),
]


@pytest.mark.parametrize("label,formula,shapes,wrt,claim,bug",
                         [pytest.param(*c, marks=_xfail_until(c[-1])) for c in CHECK_REGRESSIONS],
                         ids=[c[0] for c in CHECK_REGRESSIONS])
def test_checker_regressions(label, formula, shapes, wrt, claim, bug):
    """Each is wrong (confirmed with autograd), and check must say so with exit code 1, from the
    Python API and from the command line."""
    case = S.ClaimCase(formula, shapes, wrt, claim, "wrong", bug)
    _confirm_expectation(case, np.random.default_rng(0))
    assert _status(case, 0) == "wrong"
    from symbackprop.cli import main
    argv = ["check", formula, "--wrt", wrt, "--claim", claim, *[a for k, v in shapes.items() for a in ("-s", f"{k}={v}")]]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(argv) == 1


@pytest.mark.parametrize("formula,shapes,wrt,claim", [
    ("sum(relu(W @ x) ** 1.5)", {"W": "m,n", "x": "n"}, "x", "1.5 * W.T @ (relu(W @ x) ** 0.5 * step(W @ x))"),
    ("sum(abs(x)**1.5)", {"x": "n"}, "x", "1.5 * abs(x) ** 0.5 * sign(x)"),
    ("x @ x", {"x": "n"}, "x", "2 * sqrt(x * x) * sign(x)"),
    ("0.5 * (v * relu(w @ x + b) - y) ** 2", {"w": "95", "x": "95"}, "b",
     "(v * relu(w @ x + b) - y) * v * step(w @ x + b)"),
    ("abs(a) * b + sum(z * z)", {"z": "13"}, "b", "abs(a)"),
    ("step(a) * b + sum(z * z)", {"z": "13"}, "a", "0"),
])
def test_checker_accepts_the_true_kink_derivatives(formula, shapes, wrt, claim):
    """The right answers to the regressions above stay `correct` (a fix must not reject them)."""
    case = S.ClaimCase(formula, shapes, wrt, claim, "correct", "true")
    _confirm_expectation(case, np.random.default_rng(0))
    for seed in range(3):
        assert _status(case, seed) == "correct", seed
