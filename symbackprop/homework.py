"""Homework files: a worked solution in Markdown or LaTeX, graded line by line.

The problem sits in a front-matter block (formula, shapes, elementwise, functions, lets, wrt, layout);
every line of the text that states a derivative of the objective (\\frac{\\partial \\ell}{\\partial W_1} = …,
\\partial L / \\partial W = …, \\nabla_{W} \\ell = …, ∂ℓ/∂W = …) is a claim, graded by the checker. Lines that
are not derivatives are ignored, except definitions of intermediates (x_1 = W_1 x + b), which become lets.
`layout` (or --layout) is the course's convention: it decides whether "correct up to transpose" earns the
line its credit.

    >>> from symbackprop.homework import grade_file
    >>> report = grade_file("docs/solutions/part_d.md")            # doctest: +SKIP
    >>> report.score, report.text(), report.markdown(), report.html(), report.to_json()  # doctest: +SKIP
"""
from __future__ import annotations

import copy
import os
import re

from . import latexdoc as L
from .check import Problem, Verdict
from .errors import SymbackpropError
from .math_text import check_notation, detect_notation
from .homework_report import HomeworkReport, Line, credit, from_solution_report  # noqa: F401
from .homework_spec import (HOMEWORK_SUFFIXES, LAYOUTS, MAX_DOCUMENT_CHARS, NOTATIONS, SPEC_KEYS,  # noqa: F401
                            HomeworkError, ProblemSpec, front_matter, read_problem_file, read_text, spec_from_yaml)

#: Verdicts kept per problem for identical lines of other files (grading a class); 0 turns the cache off.
VERDICT_CACHE = 5000


def build_problem(spec: ProblemSpec) -> Problem:
    """The checker's Problem for a spec (parsed once; derivatives are derived on first use and cached)."""
    path = getattr(spec, "_path", "the problem")
    lines = getattr(spec, "_lines", {})
    try:
        problem = Problem(spec.formula, spec.shapes, spec.elementwise, spec.functions, seed=spec.seed)
    except SymbackpropError as e:
        e.message = f"{path}:{lines.get('formula', '?')}: in the formula: {e.message}"
        raise
    for name, text in spec.lets.items():
        try:
            define(problem, name, text, spec.notation)
        except SymbackpropError as e:
            e.message = f"{path}:{getattr(spec, '_let_lines', {}).get(name, '?')}: in the let `{name}`: {e.message}"
            raise
    for name in spec.wrt:
        if not known_name(problem, name):
            raise HomeworkError(f"{path}:{lines.get('wrt', '?')}: `wrt:` names `{name}`, which is neither a "
                                f"variable, a named intermediate nor a let of the problem",
                                hint="known names: " + ", ".join(_known(problem)))
    return problem


# ----- the one place claims and definitions are parsed -----

def notation_of(text: str, notation: str = "auto") -> str:
    """numpy or math: as given, or detected from the text (a backslash or a superscript ᵀ means math)."""
    return detect_notation(text) if notation in (None, "auto") else notation


def check_claim(problem: Problem, wrt: str, text: str, notation: str = "auto", line: int | None = None) -> Verdict:
    """Check one claimed derivative; malformed claims raise SymbackpropError (exit code 2).

    Verdicts are deterministic (the points are seeded), so a claim already checked against the same problem
    and lets (another student's identical line) is answered from the problem's cache."""
    if not VERDICT_CACHE:
        return _check(problem, wrt, text, notation, line)
    cache = problem.memo
    key = (wrt, text, notation)
    if key not in cache:
        if len(cache) >= VERDICT_CACHE:
            cache.clear()
        try:
            cache[key] = _check(problem, wrt, text, notation, line)
        except SymbackpropError as e:
            if e.exit_code != 2:
                raise
            cache[key] = e
    got = cache[key]
    if isinstance(got, SymbackpropError):
        raise copy.copy(got)
    v = copy.deepcopy(got)
    v.line = line
    return v


def _check(problem, wrt, text, notation, line) -> Verdict:
    """The checker's verdict on one line. A vector written as a row or a column in math notation names its
    layout."""
    v, used = _read(problem, text, notation, lambda: problem.check(wrt, text, line=line))
    node = next((n for n, t in reversed(problem.claim_text.items()) if t == text), None)
    if node is not None and node.ndim == 1 and v.ok and v.layout == "vector" and used == "math":
        row = problem.claim_row.get(node, False)
        v.layout = "numerator" if row else "denominator"
        v.details = [f"Written as a {'row' if row else 'column'}: the {v.layout} layout."] + [
            d for d in v.details if not d.startswith("Vectors are 1-D")]
    return v


def define(problem: Problem, name: str, text: str, notation: str = "auto"):
    return _read(problem, text, notation, lambda: problem.define(name, text))[0]


#: Marks of the NumPy notation: text with one of them is not retried in math notation.
_NUMPY_MARKS = re.compile(r"@|\*\*|\.T(?![A-Za-z0-9_])|\bnp\.")


def _read(problem: Problem, text: str, notation, action):
    """(action(), the notation it read the text in). In auto mode, text with no mark of either notation that the
    NumPy notation cannot read (`x_3 - y`: x_3 is no name of the problem; `W_1 x + b`) is read as maths."""
    notation = check_notation(notation or "auto")
    used = notation_of(text, notation)
    problem.claim_notation = notation
    try:
        return action(), used
    except SymbackpropError as e:
        if notation != "auto" or used == "math" or e.exit_code != 2 or _NUMPY_MARKS.search(text):
            raise
        problem.claim_notation = "math"
        try:
            return action(), "math"
        except SymbackpropError:
            raise e from None
    finally:
        problem.claim_notation = notation


def _known(problem: Problem) -> list[str]:
    p = problem.program
    return list(p.variables) + list(p.intermediates) + list(problem.lets)


def known_name(problem: Problem, name: str) -> bool:
    return name in problem.program.variables or name in problem.program.intermediates or name in problem.lets


def grade_file(path: str, *, spec: ProblemSpec | None = None, problem: Problem | None = None,
               layout: str | None = None, notation: str | None = None, seed: int | None = None) -> HomeworkReport:
    """Grade a homework file. Its problem is `spec` (or `problem`, parsed already) when given (grading a class
    against one PROBLEM.yaml), else its own front matter."""
    return grade_text(read_text(path), path, spec=spec, problem=problem, layout=layout, notation=notation, seed=seed)


def grade_text(text: str, path: str = "<text>", *, spec: ProblemSpec | None = None, problem: Problem | None = None,
               layout: str | None = None, notation: str | None = None, seed: int | None = None) -> HomeworkReport:
    fm, first, body = front_matter(text, path)
    if spec is None:
        if fm is None:
            raise HomeworkError(f"{path} states no problem: it needs a front-matter block",
                                hint="open the file with ---, then formula:, shapes:, lets:, wrt:, layout:, then "
                                     "--- (see docs/checker.md)")
        spec = spec_from_yaml(fm, path, first)
    if seed is not None and problem is None:
        spec = copy.copy(spec)
        spec.seed = seed
    if problem is None:
        problem = build_problem(spec)
    problem = problem.fork()                        # the file's lets stay its own
    layout = layout or spec.layout
    notation = notation or spec.notation
    tex = path.lower().endswith((".tex", ".latex"))
    try:
        rows = L.math_rows(body, tex=tex)
    except L.DocumentError as e:
        raise HomeworkError(f"{path}:{e.line}: {e.message}", hint=e.hint) from None
    graded: list[Line] = []
    notes: list[tuple[int, str]] = []
    answers: dict[str, tuple[str, int]] = {}       # wrt -> (the claim as written, its line): for ∂ℓ/∂x1 on a RHS
    obj = problem.objective_name
    for row in rows:
        segs = L.split_equals(row.text)
        if len(segs) < 2:
            continue
        sides = L.derivative_sides(segs[0].text)
        if sides is None:
            _maybe_define(problem, segs, row, notation, notes)
            continue
        num, den = sides
        if not L.is_objective(num, obj):
            continue                                  # ∂x4/∂x3, ∂Φ/∂x1: a Jacobian, not a claim about ℓ
        name = L.latex_name(den)
        if name is not None and name.entry and known_name(problem, name.name):
            notes.append((row.line, f"∂{obj}/∂{name.name}_{name.entry} is a derivative by one entry; only whole "
                                    f"derivatives are graded"))
            continue
        wrt = name.name if name is not None else den.strip()
        claim, used, written = _right_side(segs[1:], answers, problem, notation)
        reading = [f"read as {claim}, with {', '.join(used)}"] if used else []
        if claim is None:                            # ∂ℓ/∂W1 = ∂ℓ/∂x1 ∂x1/∂W1: the chain rule, not an answer
            notes.append((row.line, f"∂{obj}/∂{wrt} is written with derivatives only (a chain rule, not an answer "
                                    f"in closed form)"))
            continue
        try:
            v = check_claim(problem, wrt, claim, notation, line=row.line)
        except SymbackpropError as e:
            if e.exit_code != 2:
                raise
            graded.append(_malformed(problem, wrt, written, row, e.message, reading + e.format().split("\n")[1:],
                                     layout))
            continue
        v.claim = written
        v.details = reading + list(v.details)
        ok, grade, remark = credit(v, layout)
        graded.append(Line(v, ok, grade, remark, row.text))
        answers[wrt] = (claim, row.line)
    if not graded:
        raise HomeworkError(f"{path} has no derivative lines to grade",
                            hint=f"write each answer as a line of math, e.g. $$\\frac{{\\partial \\ell}}{{\\partial "
                                 f"W_1}} = …$$ (or ∂{obj}/∂W1 = …)")
    return HomeworkReport(path, spec.title, spec.formula, obj, layout, graded, notes, list(spec.wrt))


def _maybe_define(problem: Problem, segs, row, notation, notes):
    """`x_1 = W_1 x + b` defines the let x1 unless x1 is already known."""
    name = L.row_definition(segs)
    if name is None or name.entry or known_name(problem, name.name) or L.has_derivative(segs[1].text):
        return
    if name.name in L.OBJECTIVE_SPELLINGS or name.name == problem.objective_name:
        return
    if name.name in {d.name for d in problem.program.dims}:
        return
    text = L.clean_claim(segs[1].text)
    if not text:
        return
    try:
        define(problem, name.name, text, notation)  # the file's own lets: its own derivations from here on
    except SymbackpropError as e:
        notes.append((row.line, f"the definition of {name.name} was not used: {e.message}"))


def _right_side(segs, answers, problem, notation) -> tuple[str | None, list, str | None]:
    """The claim of a derivative line: the last side written in closed form. A derivative of the objective on it
    (∂ℓ/∂x1) stands for the student's own earlier answer for it, and the Jacobian ∂Φ/∂x1 of an elementwise
    function for diag(Φ'(x1))."""
    for seg in reversed(segs):
        written = L.clean_claim(seg.text)
        text, used = _substitute(written, answers, problem, notation)
        if text and not L.has_derivative(text):
            return text, used, written
    return None, [], None


_FRAC_OR_SLASH = re.compile(r"\\[dt]?frac\s*\{[^{}]*\}\s*\{(?:[^{}]|\{[^{}]*\})*\}|∂\S+?/∂[A-Za-z0-9_{}()^\\]+")


def _elementwise_name(problem, name) -> bool:
    from .rules import ELEMENTWISE
    return name in problem.program.elementwise or name in ELEMENTWISE


def _substitute(text: str, answers, problem, notation) -> tuple[str, list]:
    if not L.has_derivative(text):
        return text, []
    used = []
    obj = problem.objective_name

    def repl(m):
        sides = L.derivative_sides(m.group())
        if sides is None:
            return m.group()
        name = L.latex_name(sides[1])
        if name is None:
            return m.group()
        if L.is_objective(sides[0], obj):
            if name.name not in answers:
                return m.group()
            claim, line = answers[name.name]
            used.append(f"∂{obj}/∂{name.name} as on line {line}")
            return f"({claim})"
        f = L.latex_name(sides[0])
        if f is not None and not f.index and _elementwise_name(problem, f.base):
            used.append(f"∂{f.base}/∂{name.name} as diag({f.base}'({name.name}))")
            if notation == "numpy":
                return f"diag({f.base}'({name.name}))"
            return f"\\operatorname{{diag}}({sides[0].strip()}'({sides[1].strip()}))"
        return m.group()
    return _FRAC_OR_SLASH.sub(repl, text), used


def _malformed(problem, wrt, claim, row, message, details, layout) -> Line:
    v = Verdict(wrt=wrt, claim=claim, status="malformed", summary=message, details=details,
                objective=problem.objective_name, line=row.line)
    return Line(v, False, "malformed", "", row.text)


def is_homework_file(arg: str) -> bool:
    return arg.lower().endswith(HOMEWORK_SUFFIXES) and "\n" not in arg and ";" not in arg and os.path.sep != arg


