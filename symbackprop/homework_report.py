"""The report of a graded homework file: each line's grade under the course's layout, the score, and the
feedback as text, Markdown, HTML (escaped) and JSON."""
from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field

from .verdict import Verdict

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


def from_solution_report(report, layout: str | None) -> HomeworkReport:
    """A worked-solution YAML's report (symbackprop.solutions.Report), graded under a course's layout."""
    lines = []
    for v in report.verdicts:
        ok, grade, remark = credit(v, layout)
        lines.append(Line(v, ok, grade, remark, v.claim))
    return HomeworkReport(report.filename, report.title, report.formula, report.objective, layout, lines)
