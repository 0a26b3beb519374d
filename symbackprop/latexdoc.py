"""Reading worked solutions written as Markdown or LaTeX: the front-matter block, the math in the text
(display and inline), its rows (aligned environments split at \\\\), each row's chain of = signs, and the
left-hand sides that say "the derivative of the objective with respect to X" in the ways people write it:
\\frac{\\partial \\ell}{\\partial W_1}, \\partial L / \\partial W, \\nabla_{W} \\ell, ∂ℓ/∂W.

Nothing here evaluates text: it only finds where the claims are. The claims themselves go to the
formula parser (symbackprop.homework has the one call)."""
from __future__ import annotations

import re
from dataclasses import dataclass

#: Display environments whose rows are separate equations.
ENVIRONMENTS = ("equation", "align", "aligned", "alignat", "alignedat", "gather", "gathered", "multline",
                "eqnarray", "flalign", "split", "array", "cases", "displaymath", "math")


@dataclass
class MathRow:
    """One row of math: its text, where it starts (offset in the document, 1-based line)."""
    text: str
    offset: int
    line: int
    inline: bool = False


@dataclass
class Segment:
    """One side of a chain a = b = c, with its offset in the row's text."""
    text: str
    offset: int


class DocumentError(Exception):
    """Malformed document structure (an unclosed math block, a bad front matter); carries a line."""

    def __init__(self, message: str, line: int | None = None, hint: str | None = None):
        super().__init__(message)
        self.message, self.line, self.hint = message, line, hint


# ----- front matter -----

_FENCE = re.compile(r"[ \t]*(?:%[ \t]*)?---[ \t]*\r?\n?")


def split_front_matter(text: str) -> tuple[str | None, int, str]:
    """(the front matter's YAML or None, the line of its first YAML line, the body with the front matter
    blanked out so that offsets and line numbers stay those of the file).

    The block opens the file with a line `---` and ends at the next `---` line. In a .tex file every line of
    it may start with `%`, so the file still compiles."""
    lines = text.split("\n")
    i = 0
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i >= len(lines) or not _FENCE.fullmatch(lines[i] + "\n"):
        return None, 0, text
    commented = lines[i].lstrip().startswith("%")
    for j in range(i + 1, len(lines)):
        if _FENCE.fullmatch(lines[j] + "\n") and lines[j].lstrip().startswith("%") == commented:
            body = lines[i + 1:j]
            if commented:
                body = [re.sub(r"^\s*%\s?", "", l) for l in body]
            blank = "\n".join(" " * len(l) for l in lines[:j + 1])
            return "\n".join(body), i + 2, blank + "\n" + "\n".join(lines[j + 1:]) if j + 1 < len(lines) else blank
    raise DocumentError("the front matter opened with --- is never closed", line=i + 1,
                        hint="end the problem block with a line `---`")


# ----- finding the math -----

def _blank(text: str, start: int, end: int) -> str:
    """Replace text[start:end] with spaces, keeping newlines (so offsets and line numbers stay)."""
    return text[:start] + re.sub(r"[^\n]", " ", text[start:end]) + text[end:]


def _strip_non_math(text: str, tex: bool) -> str:
    """Blank out what can hold dollar signs without being math: Markdown code (fenced and inline), LaTeX
    comments and verbatim blocks, and escaped dollars."""
    if tex:
        for m in list(re.finditer(r"\\begin\{(verbatim|lstlisting|minted|comment)\}.*?\\end\{\1\}", text, re.S)):
            text = _blank(text, m.start(), m.end())
        for m in list(re.finditer(r"(?<!\\)%[^\n]*", text)):
            text = _blank(text, m.start(), m.end())
    else:
        for m in list(re.finditer(r"^([ \t]*)(`{3,}|~{3,})[^\n]*\n.*?^[ \t]*\2[^\n]*$", text, re.S | re.M)):
            text = _blank(text, m.start(), m.end())
        for m in list(re.finditer(r"(`+)[^`\n].*?\1", text)):
            text = _blank(text, m.start(), m.end())
    for m in list(re.finditer(r"\\\$", text)):
        text = _blank(text, m.start(), m.end())
    return text


_OPEN = re.compile(r"\$\$|\\\[|\\\(|\$|\\begin\{(" + "|".join(ENVIRONMENTS) + r")(\*?)\}")


def math_blocks(text: str, tex: bool = False) -> list[tuple[int, str, bool]]:
    """(offset of the content, content, inline?) for every piece of math in the document, in order."""
    scan = _strip_non_math(text, tex)
    out = []
    pos = 0
    while True:
        m = _OPEN.search(scan, pos)
        if m is None:
            return out
        opener = m.group(0)
        if opener == "$$":
            close = re.compile(r"\$\$")
        elif opener == "\\[":
            close = re.compile(r"\\\]")
        elif opener == "\\(":
            close = re.compile(r"\\\)")
        elif opener == "$":
            close = re.compile(r"\$")
        else:
            close = re.compile(r"\\end\{" + re.escape(m.group(1)) + re.escape(m.group(2)) + r"\}")
        inline = opener in ("$", "\\(")
        c = close.search(scan, m.end())
        if inline and c is not None and "\n\n" in scan[m.end():c.start()]:
            c = None                                   # a lone $ (a price, say): not math
        if c is None:
            if inline:
                pos = m.end()
                continue
            raise DocumentError(f"the math opened with {opener} is never closed", line=line_of(text, m.start()),
                                hint="close it, or escape a literal dollar sign as \\$")
        out.append((m.end(), scan[m.end():c.start()], inline))    # comments blanked out
        pos = c.end()


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


_ENV_TOKEN = re.compile(r"\\(?:begin|end)\{(?:" + "|".join(ENVIRONMENTS) + r")\*?\}(?:\{[^{}]*\})?")
_ROW_BREAK = re.compile(r"\\\\(?:\s*\[[^\]]*\])?|\\cr\b|\\newline\b")


def math_rows(text: str, tex: bool = False) -> list[MathRow]:
    """Every row of math in the document: aligned environments are split at \\\\ into their rows."""
    rows = []
    for start, content, inline in math_blocks(text, tex):
        content = _ENV_TOKEN.sub(lambda m: " " * len(m.group()), content)
        pos = 0
        pieces = []
        for m in _ROW_BREAK.finditer(content):
            pieces.append((pos, content[pos:m.start()]))
            pos = m.end()
        pieces.append((pos, content[pos:]))
        for off, piece in pieces:
            lead = len(piece) - len(piece.lstrip())
            if piece.strip():
                rows.append(MathRow(piece.strip(), start + off + lead, line_of(text, start + off + lead), inline))
    return rows


# ----- a row's chain of = signs -----

_OPENERS, _CLOSERS = "({[", ")}]"


def split_equals(row: str) -> list[Segment]:
    """The sides of `a = b = c` (also &=, :=), split only outside brackets and braces."""
    out, depth, start, i = [], 0, 0, 0
    while i < len(row):
        ch = row[i]
        if ch == "\\" and i + 1 < len(row):
            i += 2                                    # \{ \} \= are not structure
            continue
        if ch in _OPENERS:
            depth += 1
        elif ch in _CLOSERS:
            depth = max(0, depth - 1)
        elif ch == "=" and depth == 0 and row[i + 1:i + 2] != "=" and row[i - 1:i] not in ("=", "<", ">", "!"):
            end = i - 1 if row[i - 1:i] == ":" else i
            out.append(Segment(row[start:end], start))
            start = i + 1
        i += 1
    out.append(Segment(row[start:], start))
    return [Segment(s.text.replace("&", " "), s.offset) for s in out]


# ----- "the derivative of the objective with respect to X" -----

_SPACING = re.compile(r"\\(?:left|right|bigl|bigr|Bigl|Bigr|biggl|biggr|Biggl|Biggr|big|Big|bigg|Bigg|displaystyle|"
                      r"textstyle|,|;|:|!|quad|qquad)(?![A-Za-z])|~")
_FRAC = re.compile(r"\\[dt]?frac(?![A-Za-z])")
_D = r"(?:\\partial(?![A-Za-z])|∂|\\mathrm\{d\}|\\operatorname\{d\}|d(?=[\s\\{]))"


def _group(s: str, i: int) -> tuple[str, int] | None:
    """The brace group (or single token) at s[i:]: (its content, the index after it)."""
    while i < len(s) and s[i].isspace():
        i += 1
    if i >= len(s):
        return None
    if s[i] == "{":
        depth = 0
        for j in range(i, len(s)):
            if s[j] == "{":
                depth += 1
            elif s[j] == "}":
                depth -= 1
                if depth == 0:
                    return s[i + 1:j], j + 1
        return None
    if s[i] == "\\":
        m = re.match(r"\\[A-Za-z]+", s[i:])
        if m:
            return m.group(), i + m.end()
    return s[i], i + 1


def derivative_sides(lhs: str) -> tuple[str, str] | None:
    """(numerator's function, denominator's variable), both as LaTeX, when `lhs` is a first derivative
    written as \\frac{\\partial f}{\\partial X}, \\partial f / \\partial X, ∂f/∂X or \\nabla_{X} f; else None."""
    s = _SPACING.sub(" ", lhs).strip()
    s = re.sub(r"^\{(.*)\}$", r"\1", s, flags=re.S).strip()
    m = _FRAC.match(s)
    if m:
        num = _group(s, m.end())
        den = num and _group(s, num[1])
        if not den or s[den[1]:].strip():
            return None
        a = re.fullmatch(r"\s*" + _D + r"\s*(.+?)\s*", num[0], re.S)
        b = re.fullmatch(r"\s*" + _D + r"\s*(.+?)\s*", den[0], re.S)
        return (a.group(1), b.group(1)) if a and b else None
    m = re.fullmatch(r"\{?\s*" + _D + r"\s*(.+?)\s*\}?\s*/\s*\{?\s*" + _D + r"\s*(.+?)\s*\}?", s, re.S)
    if m:
        return m.group(1), m.group(2)
    m = re.match(r"(?:\\nabla(?![A-Za-z])|∇)\s*_", s)
    if m:
        var = _group(s, m.end())
        if var and s[var[1]:].strip():
            return s[var[1]:].strip(), var[0]
    return None


_WRAPPERS = re.compile(r"\\(?:mathbf|boldsymbol|bm|mathrm|mathit|mathsf|mathbb|vec|bar|hat|tilde|operatorname|"
                       r"mathcal|mathscr|mathnormal|text|textbf|textit|pmb)\s*(?![A-Za-z])")
def _greek_word(ch: str) -> str | None:
    """θ -> theta, Φ -> Phi, ℓ -> ell (the LaTeX command's name)."""
    if ch == "ℓ":
        return "ell"
    import unicodedata
    words = unicodedata.name(ch, "").split()
    if len(words) < 4 or words[0] != "GREEK" or words[2] != "LETTER":
        return None
    word = words[-1].lower()
    return word.capitalize() if words[1] == "CAPITAL" else word
_SUBSCRIPT_DIGITS = str.maketrans("₀₁₂₃₄₅₆₇₈₉", "0123456789")
_SUPERSCRIPT_DIGITS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹", "0123456789")


@dataclass
class LatexName:
    """A name as LaTeX writes it: W_1, \\mathbf{W}^{(1)}, x_{4}, \\theta, W_{ij}^{(1)}."""
    base: str
    index: str          # a subscript, or a superscript in parentheses or brackets (an index, not a power)
    entry: str          # a subscript of index letters when the index came from the superscript (W_{ij}^{(1)})

    @property
    def name(self) -> str:
        return self.base + self.index


def latex_name(text: str) -> LatexName | None:
    """W_1 -> W1, \\mathbf{x}^{(4)} -> x4, x_{4} -> x4, \\theta -> theta, W₁ -> W1; None when it is not a name."""
    s = _SPACING.sub(" ", text).strip()
    s = s.translate(_SUBSCRIPT_DIGITS)
    s = re.sub(r"[⁽]?([⁰¹²³⁴⁵⁶⁷⁸⁹]+)[⁾]?", lambda m: "^{(" + m.group(1).translate(_SUPERSCRIPT_DIGITS) + ")}", s)
    for _ in range(4):
        s = _WRAPPERS.sub("", s)
    s = re.sub(r"\\([A-Za-z]+)", r"\1", s)
    s = "".join((_greek_word(ch) or ch) if not ch.isascii() else ch for ch in s)
    s = s.replace(" ", "")
    # base, then any of _{...} / ^{(...)} in any order
    m = re.fullmatch(r"\{?([A-Za-z][A-Za-z0-9]*)\}?((?:[_^](?:\{[^{}]*\}|[A-Za-z0-9]))*)", s)
    if not m:
        return None
    base, rest = m.group(1), m.group(2)
    sub = sup = ""
    for kind, body in re.findall(r"([_^])(\{[^{}]*\}|[A-Za-z0-9])", rest):
        body = body.strip("{}").replace("{", "").replace("}", "")
        if kind == "_":
            sub += body.replace(",", "")
        else:
            pm = re.fullmatch(r"[(\[]\s*([A-Za-z0-9]+)\s*[)\]]", body)
            if not pm:
                return None                           # a power or a transpose: not a plain name
            sup += pm.group(1)
    if sup:
        return LatexName(base, sup, sub)
    return LatexName(base, sub, "")


#: How the objective may be written in a derivative's numerator, beyond its own name.
OBJECTIVE_SPELLINGS = ("ell", "l", "L", "J", "E", "f", "C", "R", "loss", "cost")


def is_objective(text: str, objective: str) -> bool:
    """Whether `text` (a numerator) names the objective: ℓ, \\ell, L, \\mathcal{L}, J, f, …, or its own name;
    an argument list after it (\\ell(W)) is allowed."""
    s = re.sub(r"\\(?:left|right)", "", text).strip()
    s = re.sub(r"\s*\(.*\)\s*$", "", s, flags=re.S)
    n = latex_name(s)
    if n is None or n.index or n.entry:
        return False
    return n.base in OBJECTIVE_SPELLINGS or n.base == objective or (objective == "ℓ" and n.base == "ell")


def row_definition(segments: list[Segment]) -> LatexName | None:
    """`x_1 = W_1 x + b`: the name defined by a row with two sides whose left side is a plain name."""
    if len(segments) != 2:
        return None
    return latex_name(segments[0].text)


def has_derivative(text: str) -> bool:
    return bool(re.search(r"\\partial(?![A-Za-z])|∂|\\nabla(?![A-Za-z])|∇", text))


def clean_claim(text: str) -> str:
    """A right-hand side without what only typesets: trailing punctuation, equation numbers, labels, tags,
    spacing and \\text{...} remarks at the end."""
    s = re.sub(r"\\(?:left|right)\s*\.|\\(?:left|right|[bB]igg?[lr]?)(?![A-Za-z])", " ", text)
    s = re.sub(r"\\(?:label|tag\*?|eqref)\s*\{[^{}]*\}|\\(?:nonumber|notag)(?![A-Za-z])", " ", s)
    s = re.sub(r"\\q?quad(?![A-Za-z])\s*(?:\\text\s*\{[^{}]*\}|\([^()]*\))?\s*$", " ", s.rstrip())
    s = re.sub(r"(?:\\q?quad|\\,|\\;|\\:|\\!|~|\s)*$", "", s)
    s = re.sub(r"(?:\\q?quad\s*)?\\text\s*\{[^{}]*\}\s*[.,;]?\s*$", "", s).rstrip()
    s = re.sub(r"\s*[.,;]\s*$", "", s)
    return s.strip()
