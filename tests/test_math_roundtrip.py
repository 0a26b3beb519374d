"""Issue 14, item 2: everything derive prints reads back in the math notation as the same function.

Each result of `derive` (plain text and LaTeX, gradient and numerator layouts) is parsed back with
the math notation, its `where` bindings first, and the parsed expression is evaluated at random
points beside the gradient derive computed: they must agree to rounding. A Hypothesis property runs
this over the differential strategy (tests/strategies.py); SYMBACKPROP_EXAMPLES_MATH_ROUNDTRIP=N sets
its example count (the long run: 2,000 or more).
"""
from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import assume, given, note, settings
from hypothesis.errors import InvalidArgument
from hypothesis import strategies as st

import hypothesis_profiles  # noqa: F401  (registers and loads the profile)
import strategies as S
from hypothesis_profiles import examples
from symbackprop import derive
from symbackprop import expr as E
from symbackprop.evaluate import evaluate, random_point
from symbackprop.parse import Parser
from symbackprop.parse_math import math_expression

_TEXT_LINE = re.compile(r"^(?P<lhs>\S+) = (?P<rhs>.*?)\s{2,}\[(?P<shape>[^\]]*)\]$")


def text_lines(printed: str) -> list[tuple[str, str]]:
    """(lhs, rhs) of each equation of a plain-text printout (results, then `where` bindings)."""
    out = []
    for raw in printed.split("\n"):
        s = raw.strip()
        if not s or s == "where" or s.startswith("Layout:"):
            continue
        m = _TEXT_LINE.match(s)
        assert m, f"not an equation with a shape: {s!r}"
        out.append((m.group("lhs"), m.group("rhs")))
    return out


def latex_lines(printed: str) -> list[str]:
    """The right-hand sides of an aligned LaTeX printout, in order."""
    body = printed.strip()
    assert body.startswith("\\begin{aligned}") and body.endswith("\\end{aligned}"), body
    body = body[len("\\begin{aligned}"):-len("\\end{aligned}")].strip()
    return [row.partition(" &= ")[2].strip() for row in body.split(" \\\\\n")]


def _close(a, b) -> bool:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        return False
    both = np.isfinite(a) & np.isfinite(b)
    if not np.array_equal(np.isfinite(a), np.isfinite(b)):
        return False
    scale = max(1.0, float(np.max(np.abs(b[both]), initial=0.0)))
    return bool(np.all(np.abs(a[both] - b[both]) <= 1e-8 * np.abs(b[both]) + 1e-10 * scale))


def read_back(d, style: str, layout: str, elementwise=(), functions=()) -> dict:
    """Parse a derivation's printout back in the math notation: {variable: (node, row)}."""
    printed = d.text(layout=layout) if style == "text" else d.latex(layout=layout)
    lines = text_lines(d.text(layout=layout))
    rhs = [r for _, r in lines] if style == "text" else latex_lines(printed)
    assert len(rhs) == len(lines), (printed, lines)
    names = list(d.grads)
    parser = Parser({k: tuple(v.shape) for k, v in d.program.variables.items() if v.shape},
                    elementwise, functions)
    for (lhs, _), text in list(zip(lines, rhs))[len(names):]:          # the `where` bindings, in order
        node, _ = math_expression(parser, text)
        parser.intermediates[lhs] = node
    out = {}
    for name, text in zip(names, rhs):
        shape = d.grads[name].shape
        node, row = math_expression(parser, text, shape=shape[::-1] if layout == "numerator" else shape)
        out[name] = (node, row)
    return out


def assert_same(d, read: dict, layout: str, seed: int = 0, points: int = 2) -> int:
    """Each read-back gradient equals derive's at random points (transposed in the numerator layout).
    Returns the number of points compared."""
    rng = np.random.default_rng(seed)
    compared = 0
    for attempt in range(6 * points):
        point = random_point(d.program, rng, scheme=attempt % 3)
        names = list(read)
        truths = [d.grads[n] for n in names]
        parsed = [read[n][0] for n in names]
        try:
            values = evaluate(truths + parsed, point)
        except (ValueError, FloatingPointError, np.linalg.LinAlgError, ZeroDivisionError):
            continue
        want, got = values[:len(names)], values[len(names):]
        if not all(np.all(np.isfinite(w)) for w in want):
            continue
        for n, w, g in zip(names, want, got):
            node, row = read[n]
            truth = d.grads[n]
            if layout == "numerator" and truth.ndim == 2:
                assert node.shape == truth.shape[::-1], (n, node.shape, truth.shape)
                w = np.asarray(w).T
            if layout == "numerator" and truth.ndim == 1:
                assert row, (n, "a vector in the numerator layout reads as a row")
            if layout == "gradient" and truth.ndim == 1:
                assert not row, (n, "a vector in the gradient layout reads as a column")
            assert _close(g, w), (n, g, w)
        compared += 1
        if compared >= points:
            break
    return compared


def _note(text: str):
    try:
        note(text)
    except InvalidArgument:                             # outside a Hypothesis test
        pass


def roundtrip(text, shapes, elementwise=(), functions=(), seed=0, layouts=("gradient", "numerator"),
              styles=("text", "latex")) -> int:
    d = derive(text, shapes, elementwise=elementwise, functions=functions, check=False)
    compared = 0
    for layout in layouts:
        for style in styles:
            printed = d.text(layout=layout) if style == "text" else d.latex(layout=layout)
            _note(f"{style}, {layout}:\n{printed}")
            try:
                read = read_back(d, style, layout, elementwise, functions)
                compared += assert_same(d, read, layout, seed)
            except Exception as e:
                raise AssertionError(f"{text} ({style}, {layout}):\n{printed}\n{type(e).__name__}: {e}") from e
    return compared


# ----- hand-picked printouts -----

HANDOUT = ("0.5 * norm(W2 @ relu(W1 @ x + b) - y)**2", {"W1": "h,d", "W2": "k,h", "x": "d", "b": "h", "y": "k"})


@pytest.mark.parametrize("text,shapes,elementwise,functions", [
    (*HANDOUT, (), ()),
    ("0.5 * norm(W2 @ Phi(W1 @ x + b) - y)**2", HANDOUT[1], ("Phi",), ()),
    ("mean(logsumexp(X @ W + b, axis=1) - sum((X @ W + b) * Y, axis=1))",
     {"X": "B,d", "W": "d,k", "b": "k", "Y": "B,k"}, (), ()),
    ("mean(x**2) + det(S) + sum(inv(S) @ x)", {"x": "n", "S": "n,n"}, (), ()),
    ("logdet(S) + a @ inv(S) @ c + trace(A @ S @ B)", {"S": "n,n", "a": "n", "c": "n", "A": "n,n", "B": "n,n"}, (), ()),
    ("f(a, sum(u)) + sum(g(u))", {"u": "n"}, ("g",), ("f",)),
    ("max(X) + sum(maximum(u, v)) + sum(softmax(u) * v) + sum(sqrt(abs(u)) ** 1.5)",
     {"X": "m,n", "u": "n", "v": "n"}, (), ()),
    ("mean(A) + mean(mean(u) * u) + sum(x ** (1/3)) + sum(matrix_power(S, 3))",
     {"A": "m,n", "u": "n", "x": "n", "S": "n,n"}, (), ()),
    ("sum(sigmoid(W @ x) * tanh(x @ W)) + sum(erf(x)) + norm(outer(x, x) - S)", {"W": "n,n", "x": "n", "S": "n,n"}, (), ()),
])
def test_printed_results_read_back_in_math_notation(text, shapes, elementwise, functions):
    assert roundtrip(text, shapes, elementwise, functions) >= 4


# ----- the property -----

@pytest.mark.filterwarnings("ignore:Output seems independent of input")
@settings(max_examples=examples("math_roundtrip"))
@given(formula=st.one_of(S.formulas(), S.wide_formulas()), seed=st.integers(0, 2**16))
def test_every_printed_result_reads_back(formula, seed):
    """derive's text and LaTeX, both layouts, read back in the math notation: the same function."""
    note(repr(formula))
    assume(formula.variables)
    roundtrip(formula.text, formula.shapes, seed=seed)
