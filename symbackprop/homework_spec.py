"""The problem a homework file answers: its front-matter block (or a PROBLEM.yaml for `grade`), read and checked
with line numbers, and the reading of homework files as text."""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from . import latexdoc as L
from .errors import FormulaError

#: The course conventions --layout names. gradient and denominator agree for a scalar objective.
LAYOUTS = ("gradient", "numerator", "denominator")
SPEC_KEYS = {"title", "formula", "shapes", "elementwise", "functions", "lets", "wrt", "layout", "seed", "notation"}
NOTATIONS = ("auto", "numpy", "math")
MAX_DOCUMENT_CHARS = 1_000_000
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
    text = read_text(path)
    if path.lower().endswith((".yaml", ".yml")):
        return spec_from_yaml(text, path)
    fm, first, _ = front_matter(text, path)
    if fm is None:
        raise HomeworkError(f"{path} states no problem", hint="give a PROBLEM.yaml, or a file that opens with a "
                                                              "front-matter block (--- formula: … ---)")
    return spec_from_yaml(fm, path, first)


def read_text(path: str) -> str:
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


def front_matter(text: str, path: str):
    try:
        return L.split_front_matter(text)
    except L.DocumentError as e:
        raise HomeworkError(f"{path}:{e.line}: {e.message}", hint=e.hint) from None
