"""The handout's part (d), typed as a LaTeX Markdown homework file in the handout's own (transposed) notation,
graded line by line; and a copy with six planted mistakes, each diagnosed."""
import os

import pytest

from symbackprop import expr as E
from symbackprop.check import Problem
from symbackprop.homework import grade_file

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
PART_D = os.path.join(ROOT, "docs", "solutions", "part_d.md")
MISTAKES = os.path.join(ROOT, "docs", "solutions", "part_d_mistakes.md")
VERBATIM = os.path.join(ROOT, "docs", "solutions", "part_d_handout.md")

HANDOUT = [("x4", "correct"), ("x3", "correct"), ("x2", "correct"), ("W2", "correct up to transpose"),
           ("x1", "correct"), ("x", "correct"), ("b", "correct"), ("W1", "correct up to transpose"),
           ("W1", "correct")]


def test_the_handouts_solution_grades_line_by_line():
    r = grade_file(PART_D)
    assert [(ln.verdict.wrt, ln.grade) for ln in r.lines] == HANDOUT
    assert all(ln.credit for ln in r.lines) and r.exit_code == 0 and (r.points, r.max_points) == (4, 4)
    # every line in the handout's layout names it: rows (∂ℓ/∂v = x4ᵀ W2 …) and transposed matrices
    assert [ln.remark for ln in r.lines] == ["a row: the numerator layout"] * 3 + ["the numerator layout"] \
        + ["a row: the numerator layout"] * 3 + ["the numerator layout", ""]
    assert [ln.verdict.layout for ln in r.lines] == ["numerator"] * 8 + ["denominator"]
    # ∂ℓ/∂b = ∂ℓ/∂x1 is read with the line before it; ∂Φ/∂x1 as diag(Φ'(x1))
    b = r.lines[6].verdict
    assert b.claim == r"\frac{\partial \ell}{\partial x_1}"
    assert b.details[0] == (r"read as (x_4^\top W_2 \operatorname{diag}(\Phi'(x_1))), with ∂ℓ/∂x1 as on line 33")
    assert r.lines[4].verdict.details[0].endswith("with ∂Phi/∂x1 as diag(Phi'(x1))")
    assert r.notes and "one entry" in r.notes[0][1]


def test_the_course_layout_names_which_lines_count():
    num = grade_file(PART_D, layout="numerator")
    assert [ln.credit for ln in num.lines] == [True] * 8 + [False]
    assert num.lines[3].grade == "correct" and num.lines[3].remark == "the numerator layout, the course's convention"
    assert num.lines[0].remark == "a row: the numerator layout, the course's convention"
    assert num.lines[8].grade == "correct up to transpose" and "the course uses the numerator layout" in num.lines[8].remark
    grad = grade_file(PART_D, layout="gradient")
    assert [ln.credit for ln in grad.lines] == [False] * 8 + [True]
    assert grad.lines[0].remark == ("a row: the numerator layout; the course uses the gradient layout, in which "
                                    "∂ℓ/∂x4 is a column")
    assert "the course uses the gradient layout" in grad.lines[3].remark
    assert (grad.points, num.points) == (1, 3) and grad.exit_code == num.exit_code == 1


def test_the_handouts_latex_verbatim_grades_in_its_numerator_layout():
    """The handout's solution as the handout typesets it (\\mathbf{x}^{(4)\\top}, \\mathbf{W}^{(2)}, ∂Φ/∂x^{(1)},
    ∂ℓ/∂b = ∂ℓ/∂x^{(1)}): every derivative line is right in the numerator layout."""
    r = grade_file(VERBATIM, layout="numerator")
    assert [ln.verdict.wrt for ln in r.lines] == ["x4", "x3", "x2", "W2", "x1", "x", "b", "W1", "W1"]
    assert all(ln.credit and ln.grade == "correct" for ln in r.lines), r.text()
    assert all("numerator layout, the course's convention" in ln.remark for ln in r.lines)
    assert (r.points, r.max_points, r.exit_code) == (4, 4, 0)
    assert [t.split(" is ")[0] for _, t in r.notes] == ["∂ℓ/∂W1", "∂ℓ/∂W1_ij"]    # the chain rule, an entry
    grad = grade_file(VERBATIM, layout="gradient")
    assert not any(ln.credit for ln in grad.lines) and grad.exit_code == 1


MISTAKE_DIAGNOSES = [
    ("x4", "sign", "wrong sign"),
    ("x3", "factor", "off by a constant factor: 1/2 times the derivative"),
    ("x2", "symmetric-only", "right only when W2 is symmetric"),
    ("W2", "inner-for-outer", "this is x2·x4ᵀ written as a NumPy inner product: use outer(x2, x4) or x2 x4ᵀ"),
    ("x1", "missing-factor", "the factor Phi'(x1) is missing"),
    ("x", None, "correct"),
    ("b", "size-factor", "off by a factor that depends on the sizes: 1/d times the derivative"),
    ("W1", None, "correct up to transpose"),
]


def test_six_planted_mistakes_each_get_their_diagnosis():
    r = grade_file(MISTAKES)
    got = [(ln.verdict.wrt, ln.verdict.diagnosis, ln.verdict.summary if ln.verdict.status == "wrong" else ln.grade)
           for ln in r.lines]
    assert got == MISTAKE_DIAGNOSES
    assert sum(ln.verdict.status == "wrong" for ln in r.lines) == 6
    assert r.lines[3].verdict.details[0].endswith("right up to transpose (numerator layout)")
    assert r.lines[6].verdict.factor == "1/d"


# ----- the two new diagnoses, on their own -----

MLP = "0.5 * norm(W2 @ Phi(W1 @ x + b) - y)**2"
LETS = {"x1": "W1 @ x + b", "x2": "Phi(x1)", "x4": "W2 @ Phi(x1) - y"}


@pytest.mark.parametrize("shapes", [{"W1": "h,d", "W2": "k,h", "x": "d", "b": "h", "y": "k"},
                                    {"W1": "d,d", "W2": "d,d", "x": "d", "b": "d", "y": "d"}],
                         ids=["rectangular", "square"])
def test_an_outer_product_written_with_at(shapes):
    """r @ x.T for r xᵀ: ill-formed with rectangular shapes, a scalar with square ones; either way the
    verdict names the mistake and the fix (before: 'its dimensions do not fit together' or 'right only when
    every dimension is 1')."""
    p = Problem(MLP, shapes, ["Phi"], lets=LETS)
    v = p.check("W1", "(W2.T @ x4 * Phi'(x1)) @ x.T")
    assert v.status == "wrong" and v.diagnosis == "inner-for-outer"
    assert v.summary == ("this is (W2ᵀ x4 ⊙ Phi'(x1))·xᵀ written as a NumPy inner product: use "
                         "outer(W2.T @ x4 * Phi'(x1), x) or (W2ᵀ x4 ⊙ Phi'(x1)) xᵀ")
    assert p.check("W2", "x4 @ x2").diagnosis == "inner-for-outer"
    # an inner product that is not the mistake: no such diagnosis
    assert p.check("W2", "x2 @ x2.T").diagnosis != "inner-for-outer"


def test_a_size_dependent_factor():
    """claim = (1/d)·gradient: the ratio changes with the random sizes, so no constant factor fits (before:
    'right only when every dimension is 1')."""
    p = Problem(MLP, {"W1": "h,d", "W2": "k,h", "x": "d", "b": "h", "y": "k"}, ["Phi"], lets=LETS)
    truth = p.truth("W1")[0]
    d = next(s for s in p.program.dims if str(s) == "d")
    v = p.check("W1", E.mul(E.div(E.const(1), E.const(d)), truth))
    assert (v.diagnosis, v.factor) == ("size-factor", "1/d")
    h = next(s for s in p.program.dims if str(s) == "h")
    v = p.check("W1", E.mul(E.const(2 * h), truth))
    assert (v.diagnosis, v.factor) == ("size-factor", "2·h")
    assert p.check("W1", E.mul(E.const(3), truth)).diagnosis == "factor"      # a constant stays a constant


def test_the_docs_show_the_mistakes_file_as_it_is():
    """docs/checker.md quotes docs/solutions/part_d_mistakes.md; its console example (rerun by
    test_docs_examples.py) grades that file."""
    with open(os.path.join(ROOT, "docs", "checker.md"), encoding="utf-8") as f:
        doc = f.read()
    with open(MISTAKES, encoding="utf-8") as f:
        assert "```markdown\n" + f.read() + "```" in doc
