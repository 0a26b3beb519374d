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
import difflib
import html
import json
import os
import re
from dataclasses import dataclass, field

from . import latexdoc as L
from .check import Problem, Verdict
from .errors import FormulaError, LimitError, ShapeError, SymbackpropError
from .expr import format_shape

#: The course conventions --layout names. gradient and denominator agree for a scalar objective.
LAYOUTS = ("gradient", "numerator", "denominator")
SPEC_KEYS = {"title", "formula", "shapes", "elementwise", "functions", "lets", "wrt", "layout", "seed", "notation"}
NOTATIONS = ("auto", "numpy", "math")
MAX_DOCUMENT_CHARS = 1_000_000
#: Verdicts kept per problem for identical lines of other files (grading a class); 0 turns the cache off.
VERDICT_CACHE = 5000
HOMEWORK_SUFFIXES = (".md", ".markdown", ".tex", ".latex", ".txt")


class HomeworkError(FormulaError):
    """A homework file (or problem file) that cannot be read; the message names the file and line."""


# ----- the problem statement -----

@dataclass
class ProblemSpec:
    """The problem a homework file answers: what a front-matter block (or a PROBLEM.yaml) states."""
    formula: str
    shapes: dict = field(default_factory=dict)
    elementwise: list = field(default_factory=list)
    functions: list = field(default_factory=list)
    lets: dict = field(default_factory=dict)
    wrt: list = field(default_factory=list)
    layout: str | None = None
    seed: int = 0
    title: str = ""
    notation: str = "auto"

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("title", "formula", "shapes", "elementwise", "functions", "lets", "wrt",
                                               "layout", "seed", "notation")}


def spec_from_yaml(text: str, path: str, first_line: int = 1) -> ProblemSpec:
    """The problem block: YAML with the keys of SPEC_KEYS (a PROBLEM.yaml may also nest them under `problem:`,
    as a worked-solution YAML does; its `claims:` are not used)."""
    import yaml
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        raise HomeworkError(f"{path}: the problem block is nested too deeply") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{first_line + mark.line}" if mark else path
        raise HomeworkError(f"{where}: the problem block is not valid YAML: {getattr(e, 'problem', None) or e}",
                            hint="see docs/checker.md for the homework-file format") from None

    def line(*keys):
        node = root
        for k in keys:
            node = _yaml_child(node, k)
            if node is None:
                return first_line
        return first_line + node.start_mark.line

    def fail(message, *keys, hint=None):
        raise HomeworkError(f"{path}:{line(*keys)}: {message}",
                            hint=hint or "see docs/checker.md for the homework-file format")

    if not isinstance(data, dict):
        fail("the problem block is a mapping with at least `formula:` (and shapes, lets, wrt, layout)")
    prefix = ()
    if isinstance(data.get("problem"), dict):         # the worked-solution YAML's layout
        outer = {k: v for k, v in data.items() if k not in ("problem", "claims", "notes")}
        data, prefix = {**outer, **data["problem"]}, ("problem",)
    for k in data:
        if k not in SPEC_KEYS:
            near = difflib.get_close_matches(str(k), sorted(SPEC_KEYS), 1)
            fail(f"unknown key `{k}` in the problem block", *prefix, k,
                 hint=(f"did you mean `{near[0]}`? " if near else "") + "allowed: " + ", ".join(sorted(SPEC_KEYS)))
    formula = data.get("formula")
    if not isinstance(formula, str) or not formula.strip():
        fail("`formula:` is missing or not text", *prefix, *(("formula",) if "formula" in data else ()))
    shapes = data.get("shapes") or {}
    if not isinstance(shapes, dict):
        fail("`shapes:` must be a mapping like {W1: 'h,d', x: d}", *prefix, "shapes")
    names = {}
    for key in ("elementwise", "functions", "wrt"):
        v = data.get(key) or []
        if isinstance(v, str):
            v = [n.strip() for n in v.split(",") if n.strip()]
        if not isinstance(v, list) or not all(isinstance(n, str) for n in v):
            fail(f"`{key}:` must be a list of names, e.g. [{'Phi' if key != 'wrt' else 'W1, b'}]", *prefix, key)
        names[key] = v
    lets = data.get("lets") or {}
    if not isinstance(lets, dict):
        fail("`lets:` must be a mapping NAME: EXPR, e.g. {x1: W1 @ x + b}", *prefix, "lets")
    layout = data.get("layout")
    if layout is not None and layout not in LAYOUTS:
        fail(f"`layout:` must be one of {', '.join(LAYOUTS)}", *prefix, "layout")
    notation = data.get("notation", "auto")
    if notation not in NOTATIONS:
        fail(f"`notation:` must be one of {', '.join(NOTATIONS)}", *prefix, "notation")
    seed = data.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        fail("`seed:` must be an integer", *prefix, "seed")
    spec = ProblemSpec(formula.strip(), shapes, names["elementwise"], names["functions"],
                       {str(k): (v if isinstance(v, str) else str(v)) for k, v in lets.items()}, names["wrt"],
                       layout, seed, str(data.get("title") or ""), notation)
    spec._lines = {k: line(*prefix, k) for k in ("formula", "lets", "wrt")}     # for messages
    spec._let_lines = {str(k): line(*prefix, "lets", k) for k in lets}
    spec._path = path
    return spec


def _yaml_child(node, key):
    import yaml
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == str(key):
                return v
    return None


def read_problem_file(path: str) -> ProblemSpec:
    """A PROBLEM.yaml for `grade` (or a homework file whose front matter states the problem)."""
    text = _read(path)
    if path.lower().endswith((".yaml", ".yml")):
        return spec_from_yaml(text, path)
    fm, first, _ = _front_matter(text, path)
    if fm is None:
        raise HomeworkError(f"{path} states no problem", hint="give a PROBLEM.yaml, or a file that opens with a "
                                                              "front-matter block (--- formula: … ---)")
    return spec_from_yaml(fm, path, first)


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
    from .parse_math import detect_notation
    return detect_notation(text) if notation in (None, "auto") else notation


def parse_claim(problem: Problem, text: str, notation: str = "auto", what: str = "the claim"):
    """(node, orientation): a claim (or let) read as the checker reads it. NumPy text goes through the checker's
    own parser; math notation (LaTeX, Wᵀ x) through parse_math, with the same rule that a claim adds no
    variables. In auto mode, text without a mark of either (`W_1 x + b`) that the NumPy notation cannot read is
    read in math notation. The orientation of a vector is "row" (xᵀ, uᵀA) or "column" in math notation, None in
    NumPy notation, where vectors are 1-D."""
    used = notation_of(text, notation)
    if used == "numpy":
        try:
            return problem.parse(text, what=what), None
        except (ShapeError, LimitError):
            raise
        except SymbackpropError as e:
            if notation not in (None, "auto") or _NUMPY_MARKS.search(text):
                raise
            try:
                return _parse_math(problem, text, what)
            except SymbackpropError:
                raise e from None
    return _parse_math(problem, text, what)


_NUMPY_MARKS = re.compile(r"@|\*\*|\.T(?![A-Za-z0-9_])|\bnp\.")


def _parse_math(problem: Problem, text: str, what: str):
    from .parse import MAX_FORMULA_CHARS
    from .parse_math import math_expression
    if len(text) > MAX_FORMULA_CHARS:
        raise LimitError(f"{what} is {len(text)} characters long; the limit is {MAX_FORMULA_CHARS}")
    known = set(problem.parser.variables)
    error = None
    try:
        node, row = math_expression(problem.parser, text, scope=dict(problem.lets))
    except SymbackpropError as e:
        error = e
    new = [n for n in problem.parser.variables if n not in known]
    for n in new:
        del problem.parser.variables[n]
    if new:
        names = _known(problem)
        near = difflib.get_close_matches(new[0], names, 1)
        raise FormulaError(f"{what} uses `{new[0]}`, which is not a variable of the formula, a named intermediate "
                           f"or a let", source=text,
                           hint=(f"did you mean `{near[0]}`? " if near else "") + "known names: " + ", ".join(names))
    if error is not None:
        raise error
    return node, ("row" if row else "column") if node.ndim == 1 else None


def check_claim(problem: Problem, wrt: str, text: str, notation: str = "auto", line: int | None = None) -> Verdict:
    """Check one claimed derivative; malformed claims raise SymbackpropError (exit code 2).

    Verdicts are deterministic (the points are seeded), so a claim already checked against the same problem
    and lets (another student's identical line) is answered from the problem's cache."""
    if not VERDICT_CACHE:
        return _check(problem, wrt, text, notation, line)
    cache = problem.__dict__.setdefault("_verdict_cache", {})
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
    try:
        claim, orientation = parse_claim(problem, text, notation)
    except ShapeError as e:
        if notation_of(text, notation) == "numpy":    # the checker's own verdict (ill-formed, or r @ x.T)
            return problem.check(wrt, text, line=line)
        truth = problem.truth(wrt)[0]
        return Verdict(wrt=wrt, claim=text.strip(), status="wrong", diagnosis="ill-formed",
                       summary="its dimensions do not fit together", objective=problem.objective_name,
                       details=e.format().replace("error: ", "", 1).split("\n"), line=line,
                       due_shape=format_shape(truth.shape))
    problem.claim_text[claim] = text               # for the notes that quote the claim as written
    v = problem.check(wrt, claim, line=line)
    v.claim = text.strip()
    if orientation and v.ok and v.layout == "vector":    # a row or a column, as written: name its layout
        v.layout = "numerator" if orientation == "row" else "denominator"
        v.details = [f"Written as a {orientation}: the {v.layout} layout."] + [
            d for d in v.details if not d.startswith("Vectors are 1-D")]
    return v


def define(problem: Problem, name: str, text: str, notation: str = "auto"):
    if notation_of(text, notation) == "numpy" and notation != "auto":
        return problem.define(name, text)
    _check_let_name(problem, name)
    node, _ = parse_claim(problem, text, notation, what=f"the definition of {name}")
    problem.lets[name] = node
    problem._truths.clear()
    return node


def _check_let_name(problem: Problem, name: str):
    """Problem.define's checks of a let's name (Problem.define reads NumPy text only)."""
    from .parse import NAME_RE
    if not NAME_RE.match(name):
        raise FormulaError(f"bad name {name!r} for a let", hint="names are letters, digits and _, e.g. x1")
    if name in problem.lets:
        raise FormulaError(f"`{name}` is defined twice", hint="each let name is defined once")
    problem.parser.check_new_name(name, "intermediate", None, None)
    if name in {d.name for d in problem.program.dims}:
        raise FormulaError(f"`{name}` is a dimension and cannot name an intermediate", hint="pick another name")


def _known(problem: Problem) -> list[str]:
    p = problem.program
    return list(p.variables) + list(p.intermediates) + list(problem.lets)


def known_name(problem: Problem, name: str) -> bool:
    return name in problem.program.variables or name in problem.program.intermediates or name in problem.lets


# ----- grading -----

@dataclass
class Line:
    """One graded line: the checker's verdict, and what it earns under the course's convention."""
    verdict: Verdict
    credit: bool
    grade: str                        # correct | correct up to transpose | wrong | malformed
    remark: str = ""                  # the layout named, or why a transposed answer does not count
    source: str = ""                  # the row as written
    column: int | None = None


@dataclass
class HomeworkReport:
    """Every derivative line of a homework file, graded; the score; notes on lines that were not used."""
    filename: str
    title: str
    formula: str
    objective: str
    layout: str | None
    lines: list
    notes: list = field(default_factory=list)       # (line, text): definitions not used, entry-wise lines, …
    asked: list = field(default_factory=list)       # the derivatives the problem asks for (wrt:)

    # ----- the score -----

    def final_lines(self) -> dict:
        """The last line for each asked derivative (the student's answer to it)."""
        out = {}
        for ln in self.lines:
            if ln.verdict.wrt in self.asked:
                out[ln.verdict.wrt] = ln
        return out

    @property
    def points(self) -> int:
        if self.asked:
            return sum(ln.credit for ln in self.final_lines().values())
        return sum(ln.credit for ln in self.lines)

    @property
    def max_points(self) -> int:
        return len(self.asked) if self.asked else len(self.lines)

    @property
    def score(self) -> float:
        return self.points / self.max_points if self.max_points else 0.0

    @property
    def unanswered(self) -> list:
        got = self.final_lines()
        return [w for w in self.asked if w not in got]

    @property
    def exit_code(self) -> int:
        if any(ln.grade == "malformed" for ln in self.lines):
            return 2
        return 0 if all(ln.credit for ln in self.lines) and not self.unanswered else 1

    def counts(self) -> dict:
        c = {k: 0 for k in ("correct", "correct up to transpose", "wrong", "malformed")}
        for ln in self.lines:
            c[ln.grade] += 1
        return c

    def summary(self) -> str:
        c = self.counts()
        n = len(self.lines)
        s = (f"{n} derivative line{'s' * (n != 1)}: {c['correct']} correct, {c['correct up to transpose']} correct up "
             f"to transpose, {c['wrong']} wrong" + (f", {c['malformed']} unreadable" if c["malformed"] else "") + ".")
        scope = (f"the {len(self.asked)} asked derivative{'s' * (len(self.asked) != 1)} "
                 "(" + ", ".join(f"∂{self.objective}/∂{w}" for w in self.asked) + ")" if self.asked else "the lines graded")
        s += f"\nScore: {self.points}/{self.max_points} ({scope}"
        s += (f"; the course's layout: {self.layout})" if self.layout else "; no layout stated: a transposed answer "
              "counts)")
        if self.unanswered:
            s += "\nNot answered: " + ", ".join(f"∂{self.objective}/∂{w}" for w in self.unanswered)
        return s

    # ----- output -----

    def _claim(self, ln: Line) -> str:
        return f"∂{self.objective}/∂{ln.verdict.wrt} = {ln.verdict.claim}"

    def _body(self, ln: Line) -> list[str]:
        v = ln.verdict
        if v.status == "malformed":
            return list(v.details)
        body = v.text(where=False, method=False).split("\n")[2:]
        return [b[2:] if b.startswith("  ") else b for b in body]

    def _headline(self, ln: Line) -> str:
        v = ln.verdict
        s = ln.grade
        if v.status == "wrong" and v.summary:
            s += f": {v.summary}"
        elif v.status == "malformed":
            s = "unreadable: " + v.summary
        if ln.remark:
            s += f" ({ln.remark})"
        return s

    def text(self) -> str:
        head = f"{self.filename}: {self.title}" if self.title else self.filename
        out = [head, f"  {self.objective} = {self.formula}"]
        where = list(dict.fromkeys(w for ln in self.lines for w in ln.verdict.where))
        if where:
            out.append("  where " + "; ".join(where))
        if self.layout:
            out.append(f"  the course's layout: {self.layout}")
        for ln in self.lines:
            out += ["", f"line {ln.verdict.line}: {self._claim(ln)}", f"  {'✓' if ln.credit else '✗'} "
                    + self._headline(ln)]
            out += ["    " + b for b in self._body(ln) if ln.grade != "correct" or b.startswith(("Vectors", "read as"))]
        if self.notes:
            out += ["", "Not graded:"] + [f"  line {n}: {t}" for n, t in self.notes]
        out += ["", self.summary()]
        method = next((ln.verdict.method for ln in self.lines if ln.verdict.points), "")
        if method:
            out.append("Each line was " + method)
        return "\n".join(out)

    def markdown(self) -> str:
        out = [f"### {_md(self.title or self.filename)}", "", f"`{self.objective} = {_code(self.formula)}`"
               + (f" · the course's layout: **{self.layout}**" if self.layout else ""), "",
               "| line | claim | grade |", "|---:|---|---|"]
        for ln in self.lines:
            out.append(f"| {ln.verdict.line} | `{_code(self._claim(ln))}` | {'✅' if ln.credit else '❌'} "
                       f"**{_md(self._headline(ln))}** |")
        details = [ln for ln in self.lines if ln.grade != "correct" and self._body(ln)]
        for ln in details:
            body = self._body(ln)
            fence = "`" * max([3] + [len(r) + 1 for b in body for r in re.findall(r"`+", b)])
            out += ["", f"**Line {ln.verdict.line}**, `{_code(self._claim(ln))}`: {_md(self._headline(ln))}", "",
                    fence + "text", *body, fence]
        if self.notes:
            out += ["", "Not graded:", ""] + [f"- line {n}: {_md(t)}" for n, t in self.notes]
        out += [""] + [s + "  " for s in self.summary().split("\n")]
        return "\n".join(out).rstrip()

    def html(self, standalone: bool = True) -> str:
        e = html.escape
        rows = []
        for ln in self.lines:
            fb = "\n".join(b for b in self._body(ln) if ln.grade != "correct")
            cls = "ok" if ln.credit else ("bad" if ln.grade != "malformed" else "unreadable")
            rows.append(f"<tr class='{cls}'><td>{e(str(ln.verdict.line))}</td><td><code>{e(self._claim(ln))}</code></td>"
                        f"<td><b>{e(self._headline(ln))}</b></td><td><pre>{e(fb)}</pre></td></tr>")
        notes = "".join(f"<li>line {e(str(n))}: {e(t)}</li>" for n, t in self.notes)
        body = (f"<section class='symbackprop-homework'><h3>{e(self.title or self.filename)}</h3>"
                f"<p><code>{e(self.objective)} = {e(self.formula)}</code>"
                + (f" · the course's layout: <b>{e(self.layout)}</b>" if self.layout else "") + "</p>"
                "<table><thead><tr><th>line</th><th>claim</th><th>grade</th><th>feedback</th></tr></thead><tbody>"
                + "".join(rows) + "</tbody></table>"
                + (f"<p>Not graded:</p><ul>{notes}</ul>" if notes else "")
                + "<p>" + "<br>".join(e(s) for s in self.summary().split("\n")) + "</p></section>")
        if not standalone:
            return body
        return ("<!doctype html>\n<html><head><meta charset='utf-8'><title>" + e(self.title or self.filename)
                + "</title><style>body{font-family:sans-serif;max-width:70em;margin:auto}td,th{border:1px solid #ccc;"
                "padding:.3em;vertical-align:top}table{border-collapse:collapse}tr.ok b{color:#1a7f37}"
                "tr.bad b{color:#cf222e}tr.unreadable b{color:#9a6700}pre{white-space:pre-wrap;margin:0}</style>"
                "</head><body>\n" + body + "\n</body></html>\n")

    def to_dict(self) -> dict:
        return {"file": self.filename, "title": self.title, "formula": self.formula, "objective": self.objective,
                "layout": self.layout, "score": self.score, "points": self.points, "max_points": self.max_points,
                "asked": self.asked, "unanswered": self.unanswered, "counts": self.counts(),
                "exit_code": self.exit_code, "notes": [{"line": n, "note": t} for n, t in self.notes],
                "lines": [{**ln.verdict.to_dict(), "grade": ln.grade, "credit": ln.credit, "remark": ln.remark,
                           "source": ln.source} for ln in self.lines]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False, default=str)

    def render(self, fmt: str) -> str:
        return {"text": self.text, "md": self.markdown, "html": self.html, "json": self.to_json}[fmt]()

    def _repr_markdown_(self) -> str:
        return self.markdown()

    def _repr_html_(self) -> str:
        return self.html(standalone=False)


def _md(s: str) -> str:
    return html.escape(str(s), quote=False).replace("|", "\\|").replace("\n", " ")


def _code(s: str) -> str:
    return str(s).replace("|", "\\|").replace("`", "'").replace("\n", " ")


def credit(v: Verdict, layout: str | None) -> tuple[bool, str, str]:
    """(earns the credit, the grade, a remark naming the layout) for a verdict under the course's convention."""
    if v.status == "correct":
        if layout == "numerator" and v.layout == "denominator":
            return False, "correct up to transpose", ("shaped like the variable: the denominator layout; the course "
                                                     "uses the numerator layout")
        if v.layout == "numerator":                  # a vector written as a row (math notation)
            if layout in ("gradient", "denominator"):
                return False, "correct up to transpose", (f"a row: the numerator layout; the course uses the {layout} "
                                                         f"layout, in which ∂{v.objective}/∂{v.wrt} is a column")
            return True, "correct", "a row: the numerator layout" + (", the course's convention" * (layout == "numerator"))
        return True, "correct", ""
    if v.status == "transposed":
        if layout in ("gradient", "denominator"):
            return False, "correct up to transpose", (f"the numerator layout; the course uses the {layout} layout, "
                                                     f"in which ∂{v.objective}/∂{v.wrt} is shaped like {v.wrt}")
        if layout == "numerator":
            return True, "correct", "the numerator layout, the course's convention"
        return True, "correct up to transpose", "the numerator layout"
    return False, v.status, ""


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read(MAX_DOCUMENT_CHARS + 1)
    except FileNotFoundError:
        raise HomeworkError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise HomeworkError(f"{path} is a folder, not a file") from None
    except OSError as e:
        raise HomeworkError(f"cannot read {path}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise HomeworkError(f"{path} is not UTF-8 text (byte {e.start})",
                            hint="save the file as UTF-8") from None
    if len(text) > MAX_DOCUMENT_CHARS:
        raise HomeworkError(f"{path} is longer than {MAX_DOCUMENT_CHARS} characters")
    if "\x00" in text:
        raise HomeworkError(f"{path} contains NUL bytes: it is not a text file")
    return text


def _front_matter(text: str, path: str):
    try:
        return L.split_front_matter(text)
    except L.DocumentError as e:
        raise HomeworkError(f"{path}:{e.line}: {e.message}", hint=e.hint) from None


def grade_file(path: str, *, spec: ProblemSpec | None = None, problem: Problem | None = None,
               layout: str | None = None, notation: str | None = None, seed: int | None = None) -> HomeworkReport:
    """Grade a homework file. Its problem is `spec` (or `problem`, parsed already) when given (grading a class
    against one PROBLEM.yaml), else its own front matter."""
    return grade_text(_read(path), path, spec=spec, problem=problem, layout=layout, notation=notation, seed=seed)


def grade_text(text: str, path: str = "<text>", *, spec: ProblemSpec | None = None, problem: Problem | None = None,
               layout: str | None = None, notation: str | None = None, seed: int | None = None) -> HomeworkReport:
    fm, first, body = _front_matter(text, path)
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
    problem = _fresh(problem)
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
        if claim is None:
            graded.append(_malformed(problem, wrt, segs[-1].text.strip(), row,
                                     "the right-hand side is written with derivatives only",
                                     [f"write ∂{obj}/∂{wrt} in closed form (the Jacobians ∂x/∂y are not graded)"],
                                     layout))
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


def _fresh(problem: Problem) -> Problem:
    """A copy of a parsed problem that a homework file may add lets to without touching the original; the
    derivatives already derived are kept (a let does not change ∂ℓ/∂x for a variable x)."""
    p = copy.copy(problem)
    p.lets = dict(problem.lets)
    problem.__dict__.setdefault("_verdict_cache", {})
    p._truths = problem._truths                     # shared until the file defines a let (_maybe_define)
    p.claim_text = {}
    return p


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
        problem._truths = {}                        # the file's own lets: its own derivations from here on
        problem._verdict_cache = {}
        define(problem, name.name, text, notation)
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


def from_solution_report(report, layout: str | None) -> HomeworkReport:
    """A worked-solution YAML's report (symbackprop.solutions.Report), graded under a course's layout."""
    lines = []
    for v in report.verdicts:
        ok, grade, remark = credit(v, layout)
        lines.append(Line(v, ok, grade, remark, v.claim))
    return HomeworkReport(report.filename, report.title, report.formula, report.objective, layout, lines)
