"""Issue 14, item 1: the math notation (LaTeX and symbackprop's printed text) builds the same nodes as
the NumPy notation. Expression nodes are interned, so `is` is structural equality: each case below
is checked against the NumPy-notation spelling of the same formula, written by hand."""
from __future__ import annotations

import numpy as np
import pytest

from symbackprop import expr as E
from symbackprop.errors import FormulaError, LimitError, ShapeError
from symbackprop.evaluate import evaluate, random_point
from symbackprop.parse import Parser, parse_formula
from symbackprop.parse_math import detect_notation, math_expression

SHAPES = {"W1": "h,d", "W2": "k,h", "x": "d", "b": "h", "y": "k", "x1": "h", "x4": "k", "X": "B,d", "W": "d,k",
          "c": "k", "S": "n,n", "A": "n,n", "u": "n", "v": "n", "P": "m,n"}


def parser():
    return Parser(SHAPES, elementwise=("Phi",), functions=("f",), allow_primes=True)


def math(text, shape=None, p=None):
    return math_expression(p or parser(), text, shape=shape)[0]


def numpy(text, p=None):
    return (p or parser()).expression(text)


@pytest.mark.parametrize("written,numpy_text", [
    # the tool's own printed text
    ("W2ᵀ x4 ⊙ relu'(x1)", "W2.T @ x4 * relu'(x1)"),
    ("(W2ᵀ x4 ⊙ relu'(x1)) xᵀ", "outer(W2.T @ x4 * relu'(x1), x)"),
    ("W1ᵀ (W2ᵀ x4 ⊙ Phi'(x1))", "W1.T @ (W2.T @ x4 * Phi'(x1))"),
    ("X W + 𝟙 cᵀ", "X @ W + c"),
    ("uᵀv", "u @ v"),
    ("u vᵀ", "outer(u, v)"),
    ("(S⁻¹)ᵀ u", "inv(S).T @ u"),
    ("S⁻ᵀ u", "inv(S).T @ u"),
    ("‖u‖² + ‖S‖", "norm(u)**2 + norm(S)"),
    ("log det(S) + det(S)·tr(A)", "logdet(S) + det(S) * trace(A)"),
    ("2/n·u − u^(−2)", "2/n * u - u**(-2)"),
    ("1/(m·n)·P", "1/(m*n) * P"),
    ("u^(1/3) ⊘ v", "u**(1/3) / v"),
    ("diag(u) A 𝟙", "diag(u) @ sum(A, axis=1)"),
    ("max(u, v) + min(u, v)", "maximum(u, v) + minimum(u, v)"),
    ("softmax(X W, axis=1)", "softmax(X @ W, axis=1)"),
    ("−S⁻¹ u 𝟙ᵀ S⁻¹", "-outer(inv(S) @ u, sum(inv(S), axis=0))"),
    ("𝟙 𝟙ᵀ ⊙ A", "A"),
    # LaTeX
    (r"\big(W_2^\top x_4 \odot \Phi'(x_1)\big)\,x^\top", "outer(W2.T @ x4 * Phi'(x1), x)"),
    (r"\frac{1}{2}\left\|W_1 x + b\right\|^2", "0.5 * norm(W1 @ x + b)**2"),
    (r"\tfrac12 \lVert u \rVert_2^2 + \|A\|_F", "0.5 * norm(u)**2 + norm(A)"),
    (r"\operatorname{tr}\left(A^{\mathsf T} S\right) + \mathrm{tr}(S)", "trace(A.T @ S) + trace(S)"),
    (r"\log\det S + \det(A) + \log \sigma(u^\top v)", "logdet(S) + det(A) + log(sigmoid(u @ v))"),
    (r"\exp(-u) \oslash (\mathbf{1} + \exp(-u))", "exp(-u) / (1 + exp(-u))"),
    (r"\tanh(W_{1} x) \odot \mathrm{relu}'(b)", "tanh(W1 @ x) * relu'(b)"),
    (r"\sigma'(u) + \sqrt{v} + \sqrt[3]{v}", "sigmoid'(u) + sqrt(v) + v ** (1/3)"),
    (r"A^{-1} u + A^{-\top} v + A^{T} u", "inv(A) @ u + inv(A).T @ v + A.T @ u"),
    (r"x_{4}^\top W_{2} W_1 x", "x4 @ W2 @ W1 @ x"),
    (r"u^\top A u \cdot 3", "u @ A @ u * 3"),
    (r"\sum_i u_i v_i + \sum_{j=1}^{n} (u_j - v_j)^2", "sum(u * v) + sum((u - v)**2)"),
    (r"A + 2 I", "A + 2 * matrix_power(A, 0)"),
    (r"\frac{2 u}{n}", "2 * u / n"),
    (r"W_1x + b", "W1 @ x + b"),
    (r"|u| \odot \mathbf{1}", "abs(u)"),
    ("$\\frac{1}{2}u^\\top u$", "0.5 * u @ u"),
    (r"\partial_{1} f\left(\|u\|, \pi\right)", None),
])
def test_math_notation_builds_the_numpy_notations_nodes(written, numpy_text):
    p = parser()
    got = math(written, p=p)
    if numpy_text is None:
        assert got.shape == ()
        return
    want = numpy(numpy_text, p=p)
    if got is not want:                              # spelled differently (𝟙 in NumPy): same values then
        rng = np.random.default_rng(0)
        prog = parse_formula("sum(" + "+".join(["0*sum(" + n + ")" for n in SHAPES]) + ")", SHAPES)
        for _ in range(3):
            point = random_point(prog, rng, scheme=1)
            a, b = evaluate([got, want], point)
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("written", ["W2ᵀ x4 ⊙ relu'(x1)", r"\frac{1}{2}\|W x - y\|^2", "u vᵀ", "A⁻¹",
                                     "x ⊙ y", "‖x‖", "𝟙", "a·b", "$x$", "α x", "x^2", "x²"])
def test_math_is_detected(written):
    assert detect_notation(written) == "math"


@pytest.mark.parametrize("written", ["W2.T @ x4 * relu'(x1)", "0.5 * norm(W @ x - y)**2", "outer(u, v)", "inv(A)",
                                     "x * y", "(x @ x +\\\n 1)"])
def test_numpy_is_detected(written):
    assert detect_notation(written) == "numpy"


def test_names_written_together_follow_the_declared_names():
    p = Parser({"W": "m,n", "x": "n", "xy": "n"})
    assert math("W x", p=p) is math("Wx", p=p) is E.matmul(p.variables["W"], p.variables["x"])
    assert math("W xy", p=p).args[1] is p.variables["xy"]
    q = Parser({"x": "n"})
    node = math("2 ab x", p=q)                      # `ab` is no declared name and splits into none: a new scalar
    assert "ab" in q.variables and q.variables["ab"].shape == ()
    r = Parser({"x": "n"})
    math("a x", p=r)
    math("b x", p=r)
    assert math("ab x", p=r).args[0].op == "mul"   # a and b are known now: ab is a·b
    del node


def test_sizes_are_numbers():
    p = Parser({"x": "n", "A": "m,n"})
    node = math("2x/n + 𝟙/m·sum(A)", p=p)
    assert node.shape == (p.shapes["x"][0],)
    assert "n" not in p.variables and "m" not in p.variables


def test_ones_and_identity_take_their_size_from_the_context():
    p = parser()
    assert math("A + I", p=p) is numpy("A + matrix_power(A, 0)", p=p)
    assert math("1/(n·n)·𝟙", shape=p.shapes["A"], p=p).shape == p.shapes["A"]
    assert math("1/n·𝟙", shape=p.shapes["u"], p=p).shape == p.shapes["u"]
    with pytest.raises(FormulaError, match="size of 𝟙 .*is not fixed"):
        math("sum(𝟙)", p=p)
    with pytest.raises(FormulaError, match="size of I is not fixed"):
        math("2 I", p=p)


@pytest.mark.parametrize("written,message,caret", [
    ("u v", "product of a column of length n and a column of length n", "u v"),
    ("W @ x", "unexpected character `@`", "@"),
    ("x.T", "unexpected character `.`", "."),
    ("x**2", "unexpected `**`", "**"),
    (r"\foo x", "unknown LaTeX command `\\foo`", r"\foo"),
    (r"\frac{1}{2}\|x", "ends too early", None),
    ("A⁻¹ u + P⁻¹", "not square", "P⁻¹"),
    ("u ⊙ A", "combines a column of length n with a n×n matrix", "u ⊙ A"),
    ("‖P‖_2", "spectral norm", "‖P‖_2"),
    ("rleu(u)", "unknown function `rleu`", "rleu"),
    ("x'", "a prime marks the derivative", "x'"),
])
def test_errors_have_a_caret_and_a_hint(written, message, caret):
    with pytest.raises((FormulaError, ShapeError)) as info:
        math(written)
    e = info.value
    text = e.format()
    assert message in text, text
    assert "hint:" in text or "did you mean" in text, text
    if caret is not None:
        lines = text.split("\n")
        assert lines[2] == "  " + " " * written.index(caret) + "^" * len(caret), text


def test_limits_hold():
    with pytest.raises(LimitError):
        math("(" * 300 + "u" + ")" * 300)
    with pytest.raises(LimitError):
        math(" + ".join(["u"] * 3000))
