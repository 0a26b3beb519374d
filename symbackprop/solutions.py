"""Worked-solution files: every claim of a YAML/JSON solution checked, with a Markdown/HTML report."""
from __future__ import annotations

import difflib
import json
from dataclasses import dataclass

from .check import Problem
from .errors import FormulaError, SymbackpropError
from .verdict import STATUS_TEXT, Verdict

SOLUTION_KEYS = {"title", "problem", "claims", "notes"}
PROBLEM_KEYS = {"formula", "shapes", "elementwise", "functions", "lets", "seed"}
CLAIM_KEYS = {"wrt", "claim", "label", "note", "expect"}
EXPECT = {"correct", "transposed", "correct up to transpose", "wrong", "malformed"}


class SolutionError(FormulaError):
    """A worked-solution file that cannot be read; the message names the file and line."""


@dataclass
class Report:
    """Verdicts for every claim of a worked-solution file."""
    filename: str
    title: str
    formula: str
    objective: str
    verdicts: list

    @property
    def exit_code(self) -> int:
        return max((v.exit_code for v in self.verdicts), default=0)

    def counts(self) -> dict:
        return {s: sum(v.status == s for v in self.verdicts) for s in STATUS_TEXT}

    def summary(self) -> str:
        c = self.counts()
        parts = [f"{c['correct']} correct", f"{c['transposed']} correct up to transpose", f"{c['wrong']} wrong"]
        if c["malformed"]:
            parts.append(f"{c['malformed']} malformed")
        n = len(self.verdicts)
        return f"{n} claim{'s' * (n != 1)}: " + ", ".join(parts) + "."

    def _rows(self):
        for i, v in enumerate(self.verdicts, 1):
            verdict = v.verdict
            if v.expect and _expect_status(v.expect) != v.status:
                verdict += f" (expected: {v.expect})"
            yield i, v, verdict

    def text(self) -> str:
        head = f"{self.filename}: {self.title}" if self.title else self.filename
        lines = [head, f"  {self.objective} = {self.formula}"]
        where = list(dict.fromkeys(w for v in self.verdicts for w in v.where))
        if where:
            lines.append("  where " + "; ".join(where))
        lines.append("")
        claims = [f"∂{v.objective}/∂{v.wrt} = {v.claim}" for v in self.verdicts]
        width = min(max((len(c) for c in claims), default=10), 60)
        lines.append(f"  #  line  {'claim'.ljust(width)}  verdict")
        for (i, v, verdict), c in zip(self._rows(), claims):
            c = c if len(c) <= width else c[:width - 1] + "…"
            lines.append(f"{i:3d}  {v.line or '':>4}  {c.ljust(width)}  {verdict}"
                         + (f": {v.summary}" if v.summary and not v.ok else ""))
        notes = [(i, v) for i, v, _ in self._rows() if v.status != "correct" or v.layout == "numerator"]
        if notes:
            lines += ["", "Notes:"]
            for i, v in notes:
                lines.append(f"{i:3d}. " + (f"{v.label}: " if v.label else "")
                             + f"∂{v.objective}/∂{v.wrt} = {v.claim}   (line {v.line})")
                body = v.text(where=False, method=False).split("\n")[2:]
                lines += ["   " + l for l in body]
        lines += ["", self.summary()]
        checked = next((v for v in self.verdicts if v.points), None)
        if checked:
            lines.append("Each claim was " + checked.method)
        return "\n".join(lines)

    def markdown(self) -> str:
        lines = [f"### {self.title or self.filename}", "", f"`{self.objective} = {self.formula}`", "",
                 "| # | line | claim | verdict | note |", "|---:|---:|---|---|---|"]
        for i, v, verdict in self._rows():
            note = "; ".join([str(v.label)] * bool(v.label) + [v.summary] * bool(v.summary and not v.ok) + [d for d in v.details if v.status != "correct"]
                             + [f"the gradient (shaped like {v.wrt}): {v.gradient}"] * bool(v.gradient))
            lines.append(f"| {i} | {v.line or ''} | `∂{v.objective}/∂{v.wrt} = {_md_cell(v.claim)}` | "
                         f"**{verdict}** | {_md_cell(note)} |")
        lines += ["", self.summary()]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"file": self.filename, "title": self.title, "formula": self.formula, "objective": self.objective,
                "summary": self.counts(), "exit_code": self.exit_code, "verdicts": [v.to_dict() for v in self.verdicts]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False, default=str)

    def _repr_markdown_(self) -> str:
        return self.markdown()


def _expect_status(word: str) -> str:
    return "transposed" if word in ("transposed", "correct up to transpose") else word


def _md_cell(s: str) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


#: Worked-solution files larger than this are refused (a clean error, exit 2).
MAX_SOLUTION_CHARS = 1_000_000


def check_solution(path: str, text: str | None = None, seed: int | None = None) -> Report:
    """Check every claim of a worked-solution YAML file (see docs/checker.md for the format)."""
    import yaml
    if text is None:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise SolutionError(f"cannot read {path}: {e.strerror}") from None
        except UnicodeDecodeError:
            raise SolutionError(f"{path} is not UTF-8 text") from None
    if len(text) > MAX_SOLUTION_CHARS:
        raise SolutionError(f"{path} is {len(text)} characters long; the limit is {MAX_SOLUTION_CHARS}")
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        raise SolutionError(f"{path}: the YAML is nested too deeply",
                            hint="see docs/checker.md for the worked-solution format") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
        raise SolutionError(f"{where}: not valid YAML: {getattr(e, 'problem', None) or e}",
                            hint="see docs/checker.md for the worked-solution format") from None

    def line(*keys) -> int | None:
        node = root
        if node is None:
            return None
        for k in keys:
            node = _yaml_child(node, k)
            if node is None:
                return None
        return node.start_mark.line + 1

    def fail(message, *keys, hint=None):
        ln = line(*keys)
        raise SolutionError(f"{path}:{ln}: {message}" if ln else f"{path}: {message}",
                            hint=hint or "see docs/checker.md for the worked-solution format")

    if not isinstance(data, dict):
        fail("a worked-solution file is a mapping with `problem:` and `claims:`")
    _unknown_keys(data, SOLUTION_KEYS, fail, ())
    prob = data.get("problem")
    if not isinstance(prob, dict):
        fail("`problem:` is missing or not a mapping (formula, shapes, elementwise, functions, lets)",
             *(("problem",) if "problem" in data else ()))
    _unknown_keys(prob, PROBLEM_KEYS, fail, ("problem",))
    formula = prob.get("formula")
    if not isinstance(formula, str) or not formula.strip():
        fail("`problem.formula` is missing or not text", *(("problem", "formula") if "formula" in prob else ("problem",)))
    shapes = prob.get("shapes") or {}
    if not isinstance(shapes, (dict, list)):
        fail("`problem.shapes` must be a mapping like {W1: 'h,d', x: d}", "problem", "shapes")
    names = {}
    for key in ("elementwise", "functions"):
        v = prob.get(key) or []
        if isinstance(v, str):
            v = [n.strip() for n in v.split(",") if n.strip()]
        if not isinstance(v, list) or not all(isinstance(n, str) for n in v):
            fail(f"`problem.{key}` must be a list of names, e.g. [Phi]", "problem", key)
        names[key] = v
    lets = prob.get("lets") or {}
    if not isinstance(lets, dict):
        fail("`problem.lets` must be a mapping NAME: EXPR, e.g. {x1: W1 @ x + b}", "problem", "lets")
    if seed is None:
        seed = prob.get("seed", 0)
        if not isinstance(seed, int) or isinstance(seed, bool):
            fail("`problem.seed` must be an integer", "problem", "seed")
    try:
        problem = Problem(formula, shapes, names["elementwise"], names["functions"], seed=seed)
    except SymbackpropError as e:
        e.message = f"{path}:{line('problem', 'formula') or '?'}: in problem.formula: {e.message}"
        raise
    for name, expr in lets.items():
        try:
            problem.define(str(name), expr if isinstance(expr, str) else str(expr))
        except SymbackpropError as e:
            e.message = f"{path}:{line('problem', 'lets', name) or '?'}: in the let `{name}`: {e.message}"
            raise
    claims = data.get("claims")
    if not isinstance(claims, list) or not claims:
        fail("`claims:` is missing or empty: give a list of {wrt: NAME, claim: EXPR}",
             *(("claims",) if "claims" in data else ()))
    verdicts = []
    for i, c in enumerate(claims):
        if not isinstance(c, dict):
            fail(f"claim {i + 1} must be a mapping with wrt: and claim:", "claims", i)
        _unknown_keys(c, CLAIM_KEYS, fail, ("claims", i))
        for key in ("wrt", "claim"):
            if key not in c or c[key] is None or (isinstance(c[key], str) and not c[key].strip()):
                fail(f"claim {i + 1} has no `{key}:`", "claims", i)
        expect = c.get("expect")
        if expect is not None and expect not in EXPECT:
            fail(f"claim {i + 1}: `expect:` must be one of {', '.join(sorted(EXPECT))}", "claims", i, "expect")
        ln = line("claims", i, "claim") or line("claims", i)
        wrt = str(c["wrt"]).strip()
        try:
            v = problem.check(wrt, c["claim"], line=ln, label=c.get("label"), expect=expect)
        except SymbackpropError as e:
            if isinstance(e, SolutionError) or e.exit_code != 2:
                raise
            v = Verdict(wrt=wrt, claim=str(c["claim"]).strip(), status="malformed", summary=e.message,
                        details=e.format().split("\n")[1:], objective=problem.objective_name, line=ln, label=c.get("label"), expect=expect)
        if c.get("note"):
            v.details = [str(c["note"])] + list(v.details)
        verdicts.append(v)
    title = data.get("title") or ""
    return Report(path, str(title), formula.strip(), problem.objective_name, verdicts)


def _yaml_child(node, key):
    import yaml
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == str(key):
                return v
        return None
    if isinstance(node, yaml.SequenceNode) and isinstance(key, int) and 0 <= key < len(node.value):
        return node.value[key]
    return None


def _unknown_keys(mapping: dict, allowed: set, fail, where: tuple):
    for k in mapping:
        if k not in allowed:
            near = difflib.get_close_matches(str(k), sorted(allowed), 1)
            fail(f"unknown key `{k}`" + (f" in {'.'.join(str(w) for w in where if isinstance(w, str))}" if where else ""),
                 *where, k, hint=(f"did you mean `{near[0]}`? " if near else "") + "allowed: " + ", ".join(sorted(allowed)))
