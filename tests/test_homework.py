"""Homework files (check --solution FILE.md / .tex) and a class at a time (grade PROBLEM.yaml folder/)."""
import contextlib
import csv
import io
import json
import os
import textwrap

import pytest

from symbackprop import latexdoc as L
from symbackprop.cli import main
from symbackprop.errors import SymbackpropError
from symbackprop.grading import grade_folder
from symbackprop.homework import HomeworkError, credit, grade_text

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))

FRONT = textwrap.dedent("""\
    ---
    title: "Handout 2(d)"
    formula: 0.5 * norm(W2 @ Phi(W1 @ x + b) - y)**2
    shapes: {W1: "h,d", W2: "k,h", x: d, b: h, y: k}
    elementwise: [Phi]
    lets: {x1: W1 @ x + b, x2: Phi(x1), x3: W2 @ x2, x4: x3 - y}
    wrt: [x, W1, W2, b]
    ---
    """)


def cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


# ----- reading the document -----

@pytest.mark.parametrize("lhs, sides", [
    (r"\frac{\partial \ell}{\partial W_1}", (r"\ell", "W_1")),
    (r"\dfrac{\partial L}{\partial \mathbf{W}^{(1)}}", ("L", r"\mathbf{W}^{(1)}")),
    (r"\partial L / \partial W", ("L", "W")),
    (r"{\partial \ell}/{\partial x_4}", (r"\ell", "x_4")),
    (r"\nabla_{W} \ell", (r"\ell", "W")),
    (r"\nabla_b L", ("L", "b")),
    ("∂ℓ/∂W1", ("ℓ", "W1")),
    (r"\left.\frac{\partial \ell}{\partial b}\right.", None),
    (r"\frac{\partial \Phi}{\partial x_1}", (r"\Phi", "x_1")),
    ("x_1", None),
    (r"\frac{1}{2}", None),
])
def test_derivative_sides(lhs, sides):
    assert L.derivative_sides(lhs) == sides


@pytest.mark.parametrize("text, name", [
    ("W_1", "W1"), ("W_{1}", "W1"), (r"\mathbf{W}^{(1)}", "W1"), (r"\mathbf{x}^{(4)}", "x4"), ("x", "x"),
    (r"\boldsymbol{\theta}", "theta"), ("W₁", "W1"), (r"\mathbf{b}", "b"), ("W^{[2]}", "W2"),
])
def test_latex_names(text, name):
    assert L.latex_name(text).name == name


def test_entry_derivative_and_powers_are_not_names():
    n = L.latex_name(r"W_{ij}^{(1)}")
    assert (n.name, n.entry) == ("W1", "ij")
    assert L.latex_name("x^2") is None and L.latex_name(r"x^\top") is None


def test_rows_of_aligned_environments_keep_their_lines():
    doc = "text $a$ here\n\n$$\\begin{aligned}\na &= 1 \\\\\nb &= 2\n\\end{aligned}$$\n\\[ c = 3 \\]\n"
    rows = L.math_rows(doc)
    assert [(r.text, r.line) for r in rows] == [("a", 1), ("a &= 1", 4), ("b &= 2", 5), ("c = 3", 7)]


def test_code_and_escaped_dollars_are_not_math():
    doc = "costs \\$5 and `$x = 1$` here\n```\n$$y = 2$$\n```\n$z = 3$\n"
    assert [r.text for r in L.math_rows(doc)] == ["z = 3"]


def test_tex_comments_and_commented_front_matter():
    doc = "% ---\n% formula: x @ x\n% shapes: {x: n}\n% ---\n\\begin{equation}\n\\nabla_x f = 2 * x % ok\n\\end{equation}\n"
    fm, first, body = L.split_front_matter(doc)
    assert "formula: x @ x" in fm and first == 2
    rows = L.math_rows(body, tex=True)
    assert [(r.text, r.line) for r in rows] == [("\\nabla_x f = 2 * x", 6)]


def test_split_equals_outside_brackets_only():
    segs = L.split_equals(r"\frac{\partial \ell}{\partial b} &= f(a=1) = x_4 \leq 3 := y")
    assert [s.text.strip() for s in segs] == [r"\frac{\partial \ell}{\partial b}", "f(a=1)", r"x_4 \leq 3", "y"]


def test_clean_claim_drops_typesetting():
    assert L.clean_claim(r"x4 @ W2 \quad (2)") == "x4 @ W2"
    assert L.clean_claim(r"x4 @ W2. \label{eq:1}") == "x4 @ W2"
    assert L.clean_claim(r"x4 @ W2,\quad\text{by the chain rule}") == "x4 @ W2"


# ----- grading a file -----

def grade(body, **kw):
    return grade_text(FRONT + body, "hw.md", **kw)


def test_lines_graded_with_definitions_and_references_to_earlier_lines():
    r = grade(textwrap.dedent(r"""
        The forward pass: $x_1 = W_1 x + b$ (a definition, not graded).

        $$\begin{aligned}
        \frac{\partial \ell}{\partial x_4} &= x4 \\
        \frac{\partial \ell}{\partial x_3} &= \frac{\partial \ell}{\partial x_4}\frac{\partial x_4}{\partial x_3}
            = \frac{\partial \ell}{\partial x_4} \\
        \frac{\partial \ell}{\partial b} &= W2.T @ x4 * Phi'(x1) \\
        \nabla_{W_1} \ell &= outer(\frac{\partial \ell}{\partial b}, x)
        \end{aligned}$$
        """))
    assert [(ln.verdict.wrt, ln.grade) for ln in r.lines] == [("x4", "correct"), ("x3", "correct"),
                                                              ("b", "correct"), ("W1", "correct")]
    assert r.lines[1].verdict.claim == r"\frac{\partial \ell}{\partial x_4}"
    assert r.lines[1].verdict.details[0] == "read as (x4), with ∂ℓ/∂x4 as on line 13"
    assert (r.points, r.max_points, r.unanswered) == (2, 4, ["x", "W2"])
    assert r.exit_code == 1                        # two asked derivatives not answered


def test_the_layout_decides_whether_a_transposed_answer_counts():
    body = "$$\\frac{\\partial \\ell}{\\partial W_2} = outer(x2, x4)$$\n$$\\nabla_{W_2} \\ell = outer(x4, x2)$$\n"
    free = grade(body)
    assert [(ln.grade, ln.credit) for ln in free.lines] == [("correct up to transpose", True), ("correct", True)]
    num = grade(body, layout="numerator")
    assert [(ln.grade, ln.credit) for ln in num.lines] == [("correct", True), ("correct up to transpose", False)]
    assert "the course's convention" in num.lines[0].remark and "numerator" in num.lines[1].remark
    grad = grade(body, layout="gradient")
    assert [(ln.grade, ln.credit) for ln in grad.lines] == [("correct up to transpose", False), ("correct", True)]
    assert "gradient layout" in grad.lines[0].remark
    assert "the course's layout: gradient" in grad.text()


def test_vectors_count_in_every_layout():
    r = grade("$$\\frac{\\partial \\ell}{\\partial b} = x4 @ W2 * Phi'(x1)$$\n", layout="gradient")
    assert r.lines[0].grade == "correct" and r.lines[0].credit


def test_an_unreadable_line_gets_its_own_message_and_the_rest_is_graded():
    r = grade("$$\\frac{\\partial \\ell}{\\partial b} = W2.T @ (x4 * $$\n\n"
              "$$\\frac{\\partial \\ell}{\\partial z} = x4$$\n\n"
              "$$\\frac{\\partial \\ell}{\\partial y} = -x4$$\n")
    assert [ln.grade for ln in r.lines] == ["malformed", "malformed", "correct"]
    assert r.lines[0].verdict.line == 9 and "syntax error" in r.lines[0].verdict.summary
    assert "`z`" in r.lines[1].verdict.summary
    assert r.exit_code == 2
    text = r.text()
    assert "line 9: ∂ℓ/∂b = W2.T @ (x4 *" in text and "unreadable: syntax error" in text


def test_jacobian_lines_and_entry_lines_are_not_graded():
    r = grade("$$\\frac{\\partial x_4}{\\partial x_3} = I$$\n"
              "$$\\frac{\\partial \\ell}{\\partial W_{ij}^{(1)}} = 3$$\n"
              "$$\\frac{\\partial \\ell}{\\partial y} = -x4$$\n")
    assert [ln.verdict.wrt for ln in r.lines] == ["y"]
    assert r.notes and "one entry" in r.notes[0][1]


def test_a_file_without_derivatives_or_problem_is_a_clear_error():
    with pytest.raises(HomeworkError, match="no derivative lines"):
        grade("Just prose, $x = 1$.\n")
    with pytest.raises(HomeworkError, match="states no problem"):
        grade_text("$$\\nabla_x f = x$$", "hw.md")
    with pytest.raises(HomeworkError, match="never closed"):
        grade("$$\\frac{\\partial \\ell}{\\partial y} = -x4\n")
    with pytest.raises(HomeworkError, match=r"hw.md:3: unknown key `shape`"):
        grade_text("---\nformula: x @ x\nshape: {x: n}\n---\n$$\\nabla_x f = 2*x$$", "hw.md")


def test_html_output_is_escaped():
    r = grade_text(FRONT.replace('"Handout 2(d)"', '"<script>alert(1)</script>"')
                   + "$$\\frac{\\partial \\ell}{\\partial y} = x4 <b> y$$\n", "hw.md")
    page = r.html()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "x4 &lt;b&gt; y" in page and "<b>" not in page.replace("<b>correct", "").split("</style>")[1].replace(
        "<b>unreadable", "")


def test_markdown_and_json_outputs():
    r = grade("$$\\frac{\\partial \\ell}{\\partial y} = x4$$\n")
    md = r.markdown()
    assert "| line | claim | grade |" in md and "wrong: wrong sign" in md
    d = json.loads(r.to_json())
    assert d["lines"][0]["diagnosis"] == "sign" and d["lines"][0]["grade"] == "wrong" and d["points"] == 0


def test_credit_table():
    from symbackprop.check import Verdict
    def v(status, layout):
        return Verdict(wrt="W", claim="c", status=status, summary="", layout=layout)
    assert credit(v("correct", "denominator"), None)[:2] == (True, "correct")
    assert credit(v("correct", "denominator"), "numerator")[:2] == (False, "correct up to transpose")
    assert credit(v("correct", "denominator"), "denominator")[:2] == (True, "correct")
    assert credit(v("transposed", "numerator"), "numerator")[:2] == (True, "correct")
    assert credit(v("transposed", "numerator"), "denominator")[:2] == (False, "correct up to transpose")
    assert credit(v("wrong", None), "numerator")[:2] == (False, "wrong")


# ----- the CLI -----

def test_cli_solution_formats(tmp_path):
    f = tmp_path / "hw.md"
    f.write_text(FRONT + "$$\\frac{\\partial \\ell}{\\partial y} = -x4$$\n", encoding="utf-8")
    code, out, _ = cli("check", "--solution", str(f))
    assert code == 1 and "✓ correct" in out and "Score: 0/4" in out      # y is not one of the asked derivatives
    assert "Not answered: ∂ℓ/∂x, ∂ℓ/∂W1, ∂ℓ/∂W2, ∂ℓ/∂b" in out
    f.write_text(FRONT.replace("wrt: [x, W1, W2, b]\n", "") + "$$\\frac{\\partial \\ell}{\\partial y} = -x4$$\n",
                 encoding="utf-8")
    code, out, _ = cli("check", "--solution", str(f))
    assert code == 0 and "Score: 1/1 (the lines graded" in out
    code, out, _ = cli("check", str(f), "--format", "json")
    assert code == 0 and json.loads(out)["lines"][0]["status"] == "correct"
    code, out, _ = cli("check", "--solution", str(f), "--format", "html")
    assert code == 0 and out.startswith("<!doctype html>")
    code, _, err = cli("check", "--solution", str(f), "--wrt", "x")
    assert code == 2 and "cannot be combined" in err
    code, _, err = cli("check", "--solution", str(tmp_path / "missing.md"))
    assert code == 2 and "no such file" in err and "Traceback" not in err


def test_cli_yaml_solution_with_a_layout():
    code, out, _ = cli("check", "--solution", os.path.join(ROOT, "docs", "solutions", "handout-2d.yaml"),
                       "--layout", "numerator")
    assert code == 1                               # the index-form line is in the gradient layout
    assert "Score: 8/9" in out


def test_cli_layout_needs_a_solution_file():
    code, _, err = cli("check", "x @ x", "-s", "x=n", "--wrt", "x", "--claim", "2*x", "--layout", "numerator")
    assert code == 2 and "--layout applies to solution files" in err


# ----- a class at a time -----

PROBLEM_YAML = FRONT.strip().strip("-").strip() + "\nlayout: numerator\n"
ANSWERS = {
    "right": "$$\\frac{\\partial \\ell}{\\partial W_2} = outer(x2, x4)$$\n$$\\nabla_b \\ell = W2.T @ x4 * Phi'(x1)$$\n",
    "transposed": "$$\\frac{\\partial \\ell}{\\partial W_2} = outer(x4, x2)$$\n",
    "sign": "$$\\frac{\\partial \\ell}{\\partial b} = -W2.T @ x4 * Phi'(x1)$$\n",
    "syntax": "$$\\frac{\\partial \\ell}{\\partial b} = W2.T @@ x4$$\n",
    "unclosed": "$$\\frac{\\partial \\ell}{\\partial b} = W2.T @ x4\n",
    "prose": "I did not do it.\n",
}


def test_a_folder_of_200_submissions_is_graded_without_a_crash(tmp_path):
    (tmp_path / "problem.yaml").write_text(PROBLEM_YAML, encoding="utf-8")
    subs = tmp_path / "subs"
    subs.mkdir()
    kinds = list(ANSWERS)
    for i in range(200):
        kind = kinds[i % len(kinds)]
        (subs / f"s{i:03d}.md").write_text(ANSWERS[kind], encoding="utf-8")
    (subs / "s200.tex").write_bytes(b"\xff\xfe not utf-8")
    (subs / "s201.pdf").write_bytes(b"%PDF-1.4")
    out = tmp_path / "grades"
    code, stdout, stderr = cli("grade", str(tmp_path / "problem.yaml"), str(subs), "--out", str(out), "-j", "2")
    assert code == 2 and "Traceback" not in stderr
    assert "202 submissions" in stdout
    with open(out / "gradebook.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 202
    by = {r["student"]: r for r in rows}
    assert by["s000"]["status"] == "graded" and by["s000"]["points"] == "2" and by["s000"]["d/dW2"] == "correct"
    assert by["s001"]["d/dW2"] == "correct up to transpose" and by["s001"]["points"] == "0"
    assert by["s002"]["d/db"] == "wrong"
    assert by["s003"]["d/db"] == "malformed" and by["s003"]["unreadable_lines"] == "1"
    assert by["s004"]["status"] == "unreadable" and "never closed" in by["s004"]["message"]
    assert by["s005"]["status"] == "unreadable" and "no derivative lines" in by["s005"]["message"]
    assert "not UTF-8" in by["s200"]["message"] and "not a homework file" in by["s201"]["message"]
    assert sorted(os.listdir(out / "feedback")) == sorted(f"s{i:03d}.md" for i in range(202))
    assert "wrong sign" in (out / "feedback" / "s002.md").read_text(encoding="utf-8")
    assert "never closed" in (out / "feedback" / "s004.md").read_text(encoding="utf-8")
    # a second run replaces the earlier gradebook folder whole
    code, _, _ = cli("grade", str(tmp_path / "problem.yaml"), str(subs), "--out", str(out), "--format", "json",
                     "--feedback", "html", "-j", "1")
    assert sorted(os.listdir(out)) == ["feedback", "gradebook.json"]
    book = json.loads((out / "gradebook.json").read_text(encoding="utf-8"))
    assert len(book["submissions"]) == 202 and book["submissions"][0]["report"]["points"] == 2
    assert (out / "feedback" / "s000.html").read_text(encoding="utf-8").startswith("<!doctype html>")
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]      # no temporary folder left


def test_grade_refuses_to_overwrite_a_foreign_folder(tmp_path):
    (tmp_path / "problem.yaml").write_text(PROBLEM_YAML, encoding="utf-8")
    (tmp_path / "subs").mkdir()
    (tmp_path / "subs" / "a.md").write_text(ANSWERS["right"], encoding="utf-8")
    out = tmp_path / "home"
    out.mkdir()
    (out / "thesis.tex").write_text("precious", encoding="utf-8")
    code, _, err = cli("grade", str(tmp_path / "problem.yaml"), str(tmp_path / "subs"), "--out", str(out))
    assert code == 2 and "not a gradebook folder" in err
    assert os.listdir(out) == ["thesis.tex"]


def test_grade_stops_on_a_bad_problem_before_writing(tmp_path):
    (tmp_path / "problem.yaml").write_text("formula: W @ \nshapes: {W: 'n,n'}\n", encoding="utf-8")
    (tmp_path / "subs").mkdir()
    (tmp_path / "subs" / "a.md").write_text(ANSWERS["right"], encoding="utf-8")
    code, _, err = cli("grade", str(tmp_path / "problem.yaml"), str(tmp_path / "subs"), "--out", str(tmp_path / "o"))
    assert code == 2 and "problem.yaml:1: in the formula" in err and not (tmp_path / "o").exists()


def test_csv_cells_never_start_a_spreadsheet_formula(tmp_path):
    (tmp_path / "problem.yaml").write_text(PROBLEM_YAML, encoding="utf-8")
    (tmp_path / "subs").mkdir()
    (tmp_path / "subs" / "=HYPERLINK(1).md").write_text(ANSWERS["right"], encoding="utf-8")
    book = grade_folder(str(tmp_path / "problem.yaml"), str(tmp_path / "subs"), jobs=1)
    book.write(str(tmp_path / "o"))
    text = (tmp_path / "o" / "gradebook.csv").read_text(encoding="utf-8")
    assert "\n'=HYPERLINK(1)," in text


# ----- hostile documents: a clean message or a report, never a traceback -----

from hypothesis import given, settings, strategies as st  # noqa: E402

import hypothesis_profiles  # noqa: E402,F401

PIECES = ["$", "$$", "\\[", "\\]", "\\begin{aligned}", "\\end{aligned}", "\\\\", "&", "=", "\\frac", "{", "}",
          "\\partial", "\\ell", "W_1", "x_4", "^\\top", "\\nabla_", "∂ℓ/∂", "b", "x4 @ W2", "(", ")", "\n", " ",
          "---", "%", "`", "```", "\\left(", "\\big", "'", "Phi'(x1)", "\x00", "\ud800", "é", "1e999", "@", "*"]


@settings(max_examples=hypothesis_profiles.examples(), deadline=None, derandomize=True)
@given(st.lists(st.sampled_from(PIECES), max_size=40))
def test_hostile_documents_get_a_report_or_one_clean_error(pieces):
    body = "".join(pieces)
    try:
        r = grade_text(FRONT + body, "hw.md")
    except SymbackpropError as e:
        assert e.exit_code == 2 and e.format().startswith("error: ")
        return
    assert r.lines and r.exit_code in (0, 1, 2)
    r.text(), r.markdown(), r.html(), json.loads(r.to_json())


def test_a_latex_file(tmp_path):
    f = tmp_path / "hw.tex"
    f.write_text(textwrap.dedent(r"""
        % ---
        % formula: 0.5 * norm(A @ x - b)**2
        % shapes: {A: "m,n", x: n, b: m}
        % wrt: [x]
        % ---
        \documentclass{article}
        \begin{document}
        With $r = A x - b$ % the residual
        \begin{align}
          \nabla_x \ell &= A^\top r \label{eq:grad} \\
          \frac{\partial \ell}{\partial b} &= r  % wrong sign
        \end{align}
        \end{document}
        """), encoding="utf-8")
    code, out, _ = cli("check", str(f))
    assert code == 1
    assert "line 11: ∂ℓ/∂x = A^\\top r\n  ✓ correct" in out
    assert "line 12: ∂ℓ/∂b = r\n  ✗ wrong: wrong sign" in out and "Score: 1/1" in out
