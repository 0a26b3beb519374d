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
    # powers: a square matrix's superscript is its matrix power, X^∘k the elementwise (Hadamard) power
    ("S³ + (Sᵀ)² u 𝟙ᵀ", "matrix_power(S, 3) + outer(matrix_power(S.T, 2) @ u, u * 0 + 1)"),
    ("S⁻² + S^(−1) + S^2", "matrix_power(S, -2) + inv(S) + S @ S"),
    ("P^∘2 + P^∘(1/3)", "P**2 + P**(1/3)"),
    ("S^∘3 + S² + S²S", "S**3 + S @ S + S @ S @ S"),
    ("u² + u^2 + u^∘2 + u^(1/3)", "3 * u**2 + u**(1/3)"),
    ("sin(S)^∘2 ⊘ cos(S)", "sin(S)**2 / cos(S)"),
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
    (r"S^{3} + A^2 + S^{-\top} + \left(S^\top\right)^{2}", "matrix_power(S, 3) + A @ A + inv(S).T + S.T @ S.T"),
    (r"P^{\circ 2} + P^{\circ \frac{1}{3}}", "P**2 + P**(1/3)"),
    (r"S^{\circ 2} + S^{2} + u^{2} \mathbf{1}^\top + u^{\circ 3} \mathbf{1}^\top", "S**2 + S @ S + outer(u**2 + u**3, u * 0 + 1)"),
    (r"\frac{1}{P} + P^{∘ -2}", "1 / P + P**(-2)"),
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


@pytest.mark.parametrize("written,message", [
    ("P²", r"matrix power, and this matrix \(m×n\) is not square"),
    (r"P^{2}", r"matrix power, and this matrix \(m×n\) is not square"),
    (r"S^{1/2}", r"matrix power, which needs an integer exponent.*\n.*\n.*\nhint: the elementwise \(Hadamard\) power is S\^∘\(1/2\)"),
    ("S^u", "matrix power, which needs an integer exponent"),
    ("u⁻²", "negative power of a vector is ambiguous"),
])
def test_a_matrix_power_that_is_not_one(written, message):
    """A matrix's power is its matrix power: a non-square matrix or a non-integer exponent is an error that
    points to the elementwise power X^∘k, never silently the elementwise power."""
    with pytest.raises(ShapeError, match=message) as e:
        math(written)
    assert "^∘" in (e.value.hint or "") or written == "u⁻²"


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


# ----- fuzzing: only a result or one clean error -----

from hypothesis import example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import hypothesis_profiles  # noqa: E402,F401  (registers and loads the profile)
from hypothesis_profiles import examples  # noqa: E402
from symbackprop.check import Problem  # noqa: E402
from symbackprop.errors import SymbackpropError  # noqa: E402

PIECES = ["W1", "W2", "x", "x1", "x4", "b", "y", "u", "v", "S", "A", "n", "d", "_1", "_{2}", "_", "^\\top", "ᵀ", "⁻¹", "⁻ᵀ",
          "²", "^", "^{-1}", "(", ")", "{", "}", "[", "]", "\\left(", "\\right)", "\\big(", "‖", "\\|", "|", "||",
          "\\lVert", "\\rVert", "_2", "_F", "⊙", "\\odot", "⊘", "·", "\\cdot", "\\,", "*", "+", "−", "-", "/",
          "\\frac", "\\tfrac12", "\\sqrt", "\\sqrt[3]", "𝟙", "\\mathbf{1}", "I", "relu", "'", "\\sigma", "σ", "\\log",
          "\\det", "log det", "tr", "\\operatorname{tr}", "\\mathrm{relu}", "\\sum_i", "x_i", "u_i", "2", "0.5", "1e-3",
          ",", "=", ";", "\\\\", "\n", "∂1", "f", "Phi", "\\Phi", "∇max", "axis=1", "\\foo", "$", "%", "#", " ", "  ",
          "\\alpha", "α", "\\pi", "max", "diag", "softmax", "\x00", "\ud800", "@", "**", ".T", "Wx", "W1x", "xy"]


@settings(max_examples=examples("math_fuzz"))
@given(st.lists(st.sampled_from(PIECES), max_size=40), st.sampled_from(["math", "auto"]))
# found by the long run (02ea916): TeX's reading of `x_imax` as x_i times `max` multiplied a function
# (AttributeError: 'Function' object has no attribute 'alts')
@example(["x_i", "ᵀ", "x_i", "max"], "math")
def test_math_notation_fuzz(pieces, notation):
    text = "".join(pieces)
    shapes = {"W1": "h,d", "W2": "k,h", "x": "d", "b": "h", "y": "k"}
    try:
        parse_formula(text, shapes, elementwise=["Phi"], functions=["f"], notation=notation)
    except SymbackpropError as e:
        assert e.format().startswith("error:") and "bug in symbackprop" not in e.format()


_PROBLEM = []


@settings(max_examples=examples("math_fuzz"))
@given(st.lists(st.sampled_from(PIECES), max_size=30))
def test_math_claims_fuzz(pieces):
    if not _PROBLEM:
        _PROBLEM.append(Problem("0.5 * norm(W2 @ Phi(W1 @ x + b) - y)**2", {"W1": "h,d", "W2": "k,h", "x": "d", "b": "h",
                                                                              "y": "k"}, ["Phi"],
                                lets={"x1": "W1 @ x + b", "x4": "W2 @ Phi(x1) - y"}))
    try:
        _PROBLEM[0].check("W1", "".join(pieces))
    except SymbackpropError as e:
        assert e.format().startswith("error:") and "bug in symbackprop" not in e.format()


# ----- the command line: --notation, --claim-notation, hints -----

from symbackprop.cli import main  # noqa: E402


def test_cli_notation_option(capsys):
    args = ["-s", "A=m,n", "-s", "x=n", "-s", "b=m"]
    assert main(["derive", r"\frac{1}{2}\|A x - b\|^2", *args]) == 0
    auto = capsys.readouterr().out
    assert main(["derive", r"\frac{1}{2}\|A x - b\|^2", *args, "--notation", "math"]) == 0
    assert capsys.readouterr().out == auto and "∂ℓ/∂x = Aᵀ x2    [n]" in auto
    assert main(["derive", "0.5 * norm(A @ x - b)**2", *args, "--notation", "numpy"]) == 0
    assert capsys.readouterr().out == auto
    assert main(["derive", r"\frac{1}{2}\|A x - b\|^2", *args, "--notation", "numpy"]) == 2
    err = capsys.readouterr().err
    assert "--notation math" in err and "Traceback" not in err
    assert main(["derive", "0.5 * norm(A @ x - b)**2", *args, "--notation", "math"]) == 2
    err = capsys.readouterr().err
    assert "`@` is NumPy notation" in err and "--notation numpy" in err


def test_cli_claims_are_detected_on_their_own(capsys):
    base = ["check", "0.5 * norm(A @ x - b)**2", "-s", "A=m,n", "-s", "x=n", "-s", "b=m", "--let", "r=A @ x - b",
            "--wrt", "A"]
    for claim in ["outer(r, x)", "r xᵀ", r"r x^\top", "(A x − b) xᵀ"]:
        assert main(base + ["--claim", claim]) == 0, claim
        assert "verdict: correct" in capsys.readouterr().out
    assert main(base + ["--claim", "r @ x.T"]) == 1                   # NumPy: an inner product, not r xᵀ
    capsys.readouterr()
    assert main(base + ["--claim", "r xᵀ", "--claim-notation", "numpy"]) == 2
    assert "--notation math" in capsys.readouterr().err


def test_cli_hint_for_names_written_together_in_numpy_notation(capsys):
    assert main(["derive", "0.5*norm(Wx-y)**2", "-s", "W=m,n"]) == 2
    err = capsys.readouterr().err
    assert "did you mean `W @ x`?" in err and "did you mean `Wx`" not in err


def test_sizes_are_numbers_in_numpy_claims(capsys):
    assert main(["check", "mean(x**2)", "-s", "x=n", "--wrt", "x", "--claim", "2*x/n"]) == 0
    assert "verdict: correct" in capsys.readouterr().out
    assert main(["check", "mean(x**2)", "-s", "x=n", "--wrt", "x", "--claim", "2x/n"]) == 0
    assert main(["check", "mean(x**2)", "-s", "x=n", "--wrt", "x", "--claim", "x/n"]) == 1


def test_the_claim_row_is_recorded():
    p = Problem("0.5 * norm(A @ x - b)**2", {"A": "m,n", "x": "n", "b": "m"})
    node = p.parse("(A x - b)^\\top A")
    assert p.claim_row[node] is True
    assert p.claim_row[p.parse("A^\\top (A x - b)")] is False


# ----- the handout's own notation (part (d)): W^{(2)}, x^{(4)\top}, ∂Φ/∂x^{(1)} -----

HANDOUT_D = (r"\ell(\mathbf{x}) = \frac{1}{2} \|\mathbf{W}^{(2)} \Phi(\mathbf{W}^{(1)} \mathbf{x} + \mathbf{b}) "
             r"- \mathbf{y}\|_2^2")
HANDOUT_LETS = {"x1": r"\mathbf{W}^{(1)} \mathbf{x} + \mathbf{b}", "x2": r"\Phi(\mathbf{x}^{(1)})",
                "x3": r"\mathbf{W}^{(2)} \mathbf{x}^{(2)}", "x4": r"\mathbf{x}^{(3)} - \mathbf{y}"}


@pytest.mark.parametrize("wrt,claim,verdict,row", [
    ("x4", r"\mathbf{x}^{(4)\top}", "correct", True),
    ("x2", r"\mathbf{x}^{(4)\top} \mathbf{W}^{(2)}", "correct", True),
    ("W2", r"\mathbf{x}^{(2)} \mathbf{x}^{(4)\top}", "correct up to transpose", False),
    ("x1", r"\mathbf{x}^{(4)\top} \mathbf{W}^{(2)} \frac{\partial \Phi}{\partial \mathbf{x}^{(1)}}", "correct", True),
    ("x", r"\mathbf{x}^{(4)\top} \mathbf{W}^{(2)} \frac{\partial \Phi}{\partial \mathbf{x}^{(1)}} \mathbf{W}^{(1)}",
     "correct", True),
    ("W1", r"\mathbf{x} \mathbf{x}^{(4)\top} \mathbf{W}^{(2)} \frac{\partial \Phi}{\partial \mathbf{x}^{(1)}}",
     "correct up to transpose", False),
    ("W1", r"\mathbf{x} \mathbf{x}^{(4)\top} \mathbf{W}^{(2)}", "wrong", False),
])
def test_the_handouts_part_d_in_its_own_notation(wrt, claim, verdict, row):
    """The handout's solution (docs/handout.md, part (d)), typed as the handout types it: W^{(2)} is W2 (a
    superscript in parentheses is an index), x^{(4)\\top} is x4ᵀ, ∂Φ/∂x^{(1)} the Jacobian diag(Φ'(x1))."""
    p = Problem(HANDOUT_D, {"W1": "d,d", "W2": "d,d", "x": "d", "b": "d", "y": "d"}, ["Phi"], lets=HANDOUT_LETS)
    assert p.program.objective is parse_formula("0.5 * norm(W2 @ Phi(W1 @ x + b) - y)**2", {
        "W1": "d,d", "W2": "d,d", "x": "d", "b": "d", "y": "d"}, ["Phi"]).objective
    v = p.check(wrt, claim)
    assert v.verdict == verdict, v.text()
    assert p.claim_row[p.parse(claim)] is row


def test_derivatives_inside_expressions_are_bound_by_the_context():
    p = parser()
    x4 = p.variables.setdefault("x4", E.var("x4", p.shapes["x4"]))
    got = math_expression(p, r"W_2^\top \frac{\partial \ell}{\partial x_4}", scope={"∂ℓ/∂x4": x4})[0]
    assert got is numpy("W2.T @ x4", p=p)
    assert math_expression(p, "W2ᵀ ∂ℓ/∂x4", scope={"∂ℓ/∂x4": x4})[0] is got
    row, is_row = math_expression(p, r"\frac{\partial \ell}{\partial x_4} W_2", scope={"∂ℓ/∂x4": (x4, True)})
    assert row is numpy("x4 @ W2", p=p) and is_row
    with pytest.raises(FormulaError, match="`∂ℓ/∂x3` is not defined here"):
        math(r"\frac{\partial \ell}{\partial x_3}")


@pytest.mark.parametrize("text", ["**#\n^\\top", "@#\n^\\top"])
def test_found_by_the_fuzzer(text):
    """The hint that names the math mark read it from the text with comments left in (an AttributeError)."""
    with pytest.raises(FormulaError, match="NumPy notation"):
        parse_formula(text, {"W1": "h,d"}, notation="math")


@pytest.mark.parametrize("math, numpy", [
    (r"\mathbf{1}_{n}^\top x + \operatorname{tr}(I_{n}) \, \mathbf{1}_{m}^\top A x", "sum(x) + n * sum(A @ x)"),
    ("𝟙ₙᵀ x + sum(𝟙_(m×n) ⊙ A) + tr(Iₙ)·sum(x)", "sum(x) + sum(A) + n * sum(x)"),
    (r"\operatorname{sum}(\mathbf{1}_{m \times n} \odot A) + x^\top I_n x", "sum(A) + x @ x"),
    ("𝟙_m ᵀ A x", "sum(A @ x)"),
])
def test_sized_ones_and_identity_read_back(math, numpy):
    """𝟙ₙ, 𝟙_(m×n), Iₙ and their LaTeX spellings (as symbackprop prints them where the context does not
    fix the size) read as ones and identities of that size: the same function as the NumPy spelling."""
    shapes = {"x": "n", "A": "m,n"}
    got = parse_formula(math, shapes, notation="math")
    want = parse_formula(numpy, shapes, notation="numpy")
    rng = np.random.default_rng(0)
    for _ in range(3):
        point = random_point(want, rng)
        a, b = evaluate([got.objective, want.objective], point)
        assert np.allclose(a, b, rtol=1e-12), (math, a, b)
