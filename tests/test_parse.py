"""The formula language: what parses, what is refused, and how errors read."""
import json
import subprocess
import sys

import pytest

from symbackprop import FormulaError, LimitError, ShapeError, SymbackpropError, parse_formula
from symbackprop.cli import main
from symbackprop.parse import MAX_FORMULA_CHARS

SHAPES = {"W1": "h,d", "W2": "k,h", "x": "d", "b": "h", "y": "k"}


def error_of(formula, shapes=None, **kw) -> SymbackpropError:
    with pytest.raises(SymbackpropError) as info:
        parse_formula(formula, shapes, **kw)
    return info.value


def test_numpy_semantics_of_at():
    p = parse_formula("u @ v + u @ A @ v", {"u": "n", "v": "n", "A": "n,n"})
    assert p.objective.shape == ()
    p = parse_formula("sum(u @ A)", {"u": "m", "A": "m,n"})     # u @ A is Aᵀu, a vector of length n
    assert p.objective.args[0].shape[0].name == "n"


def test_transpose_of_a_vector_is_a_no_op():
    p = parse_formula("x.T @ x", {"x": "n"})
    q = parse_formula("x @ x", {"x": "n"})
    assert p.objective is q.objective


def test_statements_intermediates_and_functions():
    p = parse_formula("z = W1 @ x + b\nh = relu(z); 0.5 * norm(W2 @ h - y)**2", SHAPES)
    assert list(p.intermediates) == ["z", "h"]
    p = parse_formula("f(t) = t**2; g(t) = t; h(a, c) = a**2 + c**2; h(f(x), g(x))")
    assert list(p.variables) == ["x"]


@pytest.mark.parametrize("formula, fragment", [
    ("x.__class__", "attribute `.__class__`"),
    ("__import__('os')", "reserved"),
    ("(lambda t: t)(x)", "lambda"),
    ("open(x)", "reserved"),
    ("np.exp(x)", "attribute"),
    ("x[0]", "indexing"),
    ("x if y else z", "if-expression"),
    ("[x for x in y]", "comprehension"),
    ("'text'", "constant"),
    ("x // y", "//"),
    ("relu(x, y)", "relu takes 1 argument"),
    ("relu(x=1)", "keyword"),
    ("rleu(x)", "did you mean `relu`"),
    ("x = 1", "no variables"),
    ("f(t) = t", "last statement defines a function"),
    ("import os", "syntax error"),
    ("x +", "syntax error"),
    ("", "empty"),
    ("x\x00", "null byte"),
    ("2 ** 99999", "too large"),
    ("1e999 * x", "too large"),
])
def test_hostile_or_bad_input_gets_one_clean_error(formula, fragment):
    err = error_of(formula)
    assert fragment in err.format(), err.format()


def test_deep_nesting_and_huge_input_hit_documented_limits():
    assert isinstance(error_of("(" * 5000 + "x" + ")" * 5000), (LimitError, FormulaError))
    assert isinstance(error_of("-" * 300 + "x"), LimitError)
    huge = "x + " * (MAX_FORMULA_CHARS // 4 + 10) + "x"
    assert isinstance(error_of(huge), LimitError)
    assert isinstance(error_of("x" * 1_000_000), LimitError)


def test_caret_points_at_the_culprit():
    err = error_of("W1 @ x + rleu(b)", SHAPES)
    lines = err.format().splitlines()
    assert lines[1] == "  W1 @ x + rleu(b)"
    assert lines[2] == "  " + " " * 9 + "^^^^"


def test_shape_error_names_the_grouping_and_both_shapes():
    err = error_of("sum(b * W1 @ x)", {"b": "h", "W1": "h,d", "x": "d"})
    assert isinstance(err, ShapeError)
    text = err.format()
    assert "`b * W1` combines (h,) with (h, d)" in text
    assert "^^^^^^" in text


def test_objective_must_be_scalar():
    err = error_of("W1 @ x", SHAPES)
    assert "objective must be a scalar" in err.format()


def test_shape_for_an_unused_name_is_reported():
    err = error_of("sum(x)", {"x": "n", "xx": "n"})
    assert "`xx`" in err.format()


@pytest.mark.parametrize("name", ["np", "import", "sum", "_x", "print"])
def test_reserved_names_cannot_be_defined(name):
    err = error_of(f"{name} = x; {name} * 2")
    assert any(s in err.format() for s in ("cannot name", "syntax error", "not a valid"))


def test_dims_must_be_positive_and_at_most_two():
    assert "positive" in error_of("sum(x)", {"x": "0"}).format()
    assert "3 dims" in error_of("sum(x)", {"x": "a,b,c"}).format()


def test_abstract_function_declarations():
    p = parse_formula("sum(Phi(W @ x))", {"W": "n,d", "x": "d"}, elementwise=["Phi"])
    assert p.objective.args[0].op == "phi"
    err = error_of("f(x)", {"x": "n"}, functions=["f"])
    assert "scalar arguments" in err.format()


# ----- the CLI -----

def run_cli(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_derive_prints_gradients_and_steps(capsys):
    argv = ["derive", "0.5 * norm(W2 @ relu(W1 @ x + b) - y)**2"] + [f"--shape={k}={v}" for k, v in SHAPES.items()]
    code, out, err = run_cli(argv + ["--steps"], capsys)
    assert code == 0 and "x4 = x3 − y" in out and "∂ℓ/∂W1" in out and "Checked against central finite differences" in out
    code, out, _ = run_cli(argv + ["--json"], capsys)
    data = json.loads(out)
    assert set(data["gradients"]) == {"W1", "W2", "x", "b", "y"}
    assert data["gradients"]["W1"]["shape"] == ["h", "d"]
    assert all(c["passed"] == c["trials"] == 3 for c in data["check"].values())
    code, out, _ = run_cli(argv + ["--latex"], capsys)
    assert out.startswith("\\begin{aligned}") and "\\odot" in out
    code, out, _ = run_cli(argv + ["--layout", "numerator", "--wrt", "W2"], capsys)
    assert "∂ℓ/∂W2 = x2 (W2 x2 − y)ᵀ    [h×k]" in out and "numerator" in out   # the handout's layout


@pytest.mark.parametrize("argv", [
    ["derive", "x.__class__"],
    ["derive", "sum(W @ x)", "--shape", "W=3,4", "--shape", "x=3"],
    ["derive", "sum(x)", "--shape", "x"],
    ["derive", "sum(x)", "--wrt", "nope", "--shape", "x=3"],
    ["derive"],
    ["frobnicate"],
])
def test_cli_errors_exit_2_without_traceback(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    assert code == 2
    assert "Traceback" not in out.err and "error" in out.err.lower()


def test_module_entry_point_runs_as_a_subprocess():
    r = subprocess.run([sys.executable, "-m", "symbackprop", "derive", "x @ B @ x", "-s", "x=n", "-s", "B=n,n"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "∂ℓ/∂x = " in r.stdout
    r = subprocess.run([sys.executable, "-m", "symbackprop", "derive", "(" * 5000 + "x" + ")" * 5000],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.startswith("error:")


def test_cli_formula_may_start_with_a_minus(capsys):
    code, out, err = run_cli(["derive", "-sum(x)", "--shape", "x=3"], capsys)
    assert code == 0 and "∂ℓ/∂x = −𝟙" in out
    try:
        main(["derive", "sum(x)", "--shape", "x=3", "--frobnicate"])
    except SystemExit as e:
        assert e.code == 2
    assert "unrecognized arguments: --frobnicate" in capsys.readouterr().err


def test_shape_error_keeps_the_parentheses_of_the_right_operand():
    err = error_of("sum(W1 @ (W2.T @ x4 * v))", {"W1": "h,d", "W2": "k,h", "x4": "k", "v": "h"})
    assert "`W1 @ (W2.T @ x4 * v)` combines (h, d) with (h,)" in err.format()


def test_singular_everywhere_is_reported_as_not_verified(capsys):
    """inv(w wᵀ) is singular for every w: no valid point, so the result is marked unverified
    (never a false "bug" report, never silently presented as checked)."""
    code, out, err = run_cli(["derive", "sum(inv(outer(w, w)))", "--shape", "w=n"], capsys)
    assert code == 0
    assert out.strip().splitlines()[-1].startswith("Not verified numerically")


# ----- names written together (`Wx` for `W @ x`) and LaTeX input -----

@pytest.mark.parametrize("formula, shapes, name, suggestion", [
    ("0.5*norm(Wx-y)**2", {"W": "m,n", "x": "n", "y": "m"}, "Wx", "W @ x"),
    ("sum(relu(W1x + b))", {"W1": "h,d", "x": "d", "b": "h"}, "W1x", "W1 @ x"),
    ("sum(ABx)", {"A": "m,k", "B": "k,n", "x": "n"}, "ABx", "A @ B @ x"),
    ("xT @ A @ x", {"A": "n,n", "x": "n"}, "xT", "x.T"),
    ("xTAx + sum(x)", {"A": "n,n", "x": "n"}, "xTAx", "x.T @ A @ x"),
    ("sum(lamx) + x @ x", {"lam": "", "x": "n"}, "lamx", "lam * x"),
    # A shape for W only: x is read as a name too, and the hint asks for its shape.
    ("norm(Wx - y)**2", {"W": "m,n", "y": "m"}, "Wx", "W @ x"),
    # `AB` is a known name too, but `AB @ x` does not fit; `A @ B @ x` does.
    ("sum(ABx)", {"AB": "m,m", "A": "m,k", "B": "k,n", "x": "n"}, "ABx", "A @ B @ x"),
])
def test_names_written_together_suggest_the_product(formula, shapes, name, suggestion):
    err = error_of(formula, shapes)
    text = err.format()
    assert isinstance(err, FormulaError) and f"`{name}` is not a known name" in text, text
    assert f"did you mean `{suggestion}`?" in text, text
    assert f"did you mean `{name}`" not in text                      # the old hint pointed the wrong way
    lines = text.splitlines()
    assert lines[1] == "  " + formula and lines[2] == "  " + " " * formula.index(name) + "^" * len(name), text


def test_names_written_together_hint_takes_shapes_into_account():
    text = error_of("sum(xW)", {"W": "m,n", "x": "n"}).format()
    assert "x (n) and W (m×n) written together" in text
    assert "did you mean `x @ W`?" in text and "the shapes do not fit; `x @ W.T` does" in text
    text = error_of("norm(Wx - y)**2", {"W": "m,n", "y": "m"}).format()
    assert "give x a shape with --shape x=" in text


def test_a_formula_that_parses_keeps_its_names_even_if_they_read_as_products():
    p = parse_formula("sum(a * b) + ab", {"a": "n", "b": "n"})       # `ab` is a scalar input here
    assert p.variables["ab"].shape == ()
    err = error_of("sum(x)", {"x": "n", "xx": "n"})                   # no reading: the typo hint stays
    assert "a shape is given for `xx`" in err.format()


@pytest.mark.parametrize("formula, shapes, name, suggestion", [
    ("sum(WT(W @ x - y))", {"W": "m,n", "x": "n", "y": "m"}, "WT", "W.T @ (W @ x - y)"),
    ("sum(Wrelu(x))", {"W": "m,n", "x": "n"}, "Wrelu", "W @ relu(x)"),
    ("sum(W2Ttanh(y))", {"W2": "m,n", "y": "m"}, "W2Ttanh", "W2.T @ tanh(y)"),
])
def test_a_call_of_names_written_together_suggests_the_product(formula, shapes, name, suggestion):
    text = error_of(formula, shapes).format()
    assert f"unknown function `{name}`; it reads as" in text and f"did you mean `{suggestion}`?" in text, text
    assert text.splitlines()[2] == "  " + " " * formula.index(name) + "^" * len(name), text


def test_cli_names_written_together_exit_2_with_a_caret(capsys):
    code = main(["derive", "0.5*norm(Wx-y)**2", "-s", "W=m,n", "-s", "x=n", "-s", "y=m"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.splitlines()[1:3] == ["  0.5*norm(Wx-y)**2", "           ^^"], err
    assert "did you mean `W @ x`?" in err


@pytest.mark.parametrize("formula, caret", [
    (r"\frac{1}{2} x @ x", r"\frac"),
    (r"0.5 * \|A @ x - b\|^2", "\\"),
    (r"x \cdot x", r"\cdot"),
    ("z = x @ x\n" r"\sqrt{z}", r"\sqrt"),
    ("x @ x \\\\ 2", "\\"),
])
def test_latex_in_numpy_notation_says_how_to_switch(formula, caret):
    """Issue 14: LaTeX where NumPy notation is forced is refused as LaTeX, with the way to switch (before
    the math notation existed, the message said it was not supported yet)."""
    err = error_of(formula, {"x": "n", "A": "m,n", "b": "m"}, notation="numpy")
    text = err.format()
    assert "this looks like LaTeX, and the formula is read in NumPy notation" in text, text
    assert "--notation math" in text, text
    assert "line continuation" not in text and "syntax error" not in text
    line = formula.splitlines()[-1]
    assert text.splitlines()[1:3] == ["  " + line, "  " + " " * line.index("\\") + "^" * len(caret)], text


def test_latex_cli_exits_2_in_numpy_notation_and_line_continuations_still_parse(capsys):
    code = main(["derive", r"\frac{1}{2} x @ x", "-s", "x=n", "--notation", "numpy"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: this looks like LaTeX") and "Traceback" not in err
    assert err.splitlines()[2] == "  ^^^^^"
    code = main(["derive", r"\frac{1}{2} x^\top x", "-s", "x=n"])          # auto (the default) reads LaTeX
    out = capsys.readouterr().out
    assert code == 0 and "∂ℓ/∂x = x    [n]" in out, out
    p = parse_formula("(x @ x +\\\n 1)", {"x": "n"})                 # a Python line continuation is not LaTeX
    assert p.objective.shape == ()
    p = parse_formula("x @ x  # from \\frac{1}{2} \\|x\\|^2, halved\n", {"x": "n"})   # nor is a comment
    assert p.objective.shape == ()
    assert "LaTeX" in error_of("x @ x  # comment\n\\frac{1}{2}", {"x": "n"}, notation="numpy").format()


def test_latex_mixed_with_numpy_notation_names_both():
    text = error_of(r"\frac{1}{2} x @ x", {"x": "n"}).format()
    assert "`@` is NumPy notation" in text and "\\frac" in text.split("hint:")[1], text
