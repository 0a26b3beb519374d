"""Markup the web page inlines, made safe: MathML from latex2mathml and SVG from Graphviz are parsed and
re-serialized through an allow-list of elements and attributes (anything else, a <script> or an
on* attribute or a link, is refused), so no user text can become markup. Everything else the page
shows goes through Jinja2's autoescaping.

>>> mathml_row(r"x_{1} &= W_{1} x")[0].startswith('<math')
True
>>> mathml(r"\\text{<script>alert(1)</script>}")  # latex2mathml passes \\text through unescaped
Traceback (most recent call last):
...
symbackprop.web.safe.Unsafe: <script> is not allowed in MathML
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET

MATHML_NS = "http://www.w3.org/1998/Math/MathML"
SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"

MATHML_TAGS = {"math", "mrow", "mi", "mn", "mo", "ms", "msub", "msup", "msubsup", "mfrac", "msqrt", "mroot",
               "mtext", "mspace", "mstyle", "mover", "munder", "munderover", "mtable", "mtr", "mtd", "mpadded",
               "mphantom", "menclose", "merror"}
MATHML_ATTRS = {"display", "mathvariant", "stretchy", "fence", "form", "separator", "lspace", "rspace", "width",
                "height", "depth", "linebreak", "accent", "accentunder", "movablelimits", "largeop", "symmetric",
                "columnalign", "rowspacing", "columnspacing", "displaystyle", "scriptlevel", "minsize", "maxsize",
                "linethickness", "notation", "columnlines", "rowlines", "frame"}
SVG_TAGS = {"svg", "g", "title", "polygon", "polyline", "ellipse", "path", "text", "tspan", "defs", "rect", "line",
            "circle"}
SVG_ATTRS = {"width", "height", "viewBox", "transform", "id", "class", "fill", "stroke", "stroke-width",
             "stroke-dasharray", "points", "cx", "cy", "rx", "ry", "r", "d", "x", "y", "x1", "y1", "x2", "y2",
             "text-anchor", "font-family", "font-size", "font-weight", "font-style", "opacity", "fill-opacity",
             "stroke-opacity", "stroke-linecap", "stroke-linejoin", "textLength", "lengthAdjust"}

ET.register_namespace("", MATHML_NS)


class Unsafe(ValueError):
    """Markup outside the allow-list."""


def _local(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        ns, _, name = tag[1:].partition("}")
        return ns, name
    return "", tag


def _clean(root: ET.Element, ns: str, tags: set, attrs: set, what: str) -> None:
    for el in root.iter():
        el_ns, name = _local(el.tag) if isinstance(el.tag, str) else ("", "?")
        if el_ns not in ("", ns) or name not in tags:
            raise Unsafe(f"<{name}> is not allowed in {what}")
        for key in list(el.attrib):
            a_ns, a_name = _local(key)
            if key == "xmlns":
                continue
            if a_ns or a_name not in attrs:
                del el.attrib[key]                   # on*, href, style, anything unknown: dropped
            elif "javascript:" in el.attrib[key].lower() or "url(" in el.attrib[key].lower():
                del el.attrib[key]


def _serialize(root: ET.Element, ns: str) -> str:
    ET.register_namespace("", ns)
    return ET.tostring(root, encoding="unicode", short_empty_elements=True)


def mathml(latex: str, display: str = "inline", displaystyle: bool = False) -> str:
    """LaTeX -> MathML (latex2mathml), checked against the allow-list; raises Unsafe or ValueError.
    `displaystyle`: fractions at full size, as in a displayed equation, while the math stays inline."""
    import latex2mathml.converter
    raw = latex2mathml.converter.convert(latex, display=display)
    try:
        root = ET.fromstring(raw)
    except ET.ParseError:
        raise Unsafe("latex2mathml produced markup that is not well formed") from None
    _clean(root, MATHML_NS, MATHML_TAGS, MATHML_ATTRS, "MathML")
    if displaystyle:
        root.set("displaystyle", "true")
    return _serialize(root, MATHML_NS)


def mathml_row(row: str) -> tuple[str, str]:
    """One row `lhs &= rhs` of an aligned block as (lhs MathML, rhs MathML)."""
    lhs, sep, rhs = row.partition("&=")
    if not sep:
        return mathml(row.strip(), displaystyle=True), ""
    return mathml(lhs.strip(), displaystyle=True), mathml(rhs.strip(), displaystyle=True)


_ROW_SPLIT = re.compile(r"\s*\\\\\s*\n")
_HEADING = re.compile(r"&\\text\{(.*)\}\s*\Z", re.S)


def aligned_rows(latex: str) -> list[dict]:
    """An `\\begin{aligned} … \\end{aligned}` block (what Derivation.latex and .steps print) as rows for
    a table: {"heading": text} or {"lhs": MathML, "rhs": MathML, "latex": the row}. latex2mathml does not
    lay out `aligned`, so each row is typeset on its own and the page aligns them in a table."""
    body = latex.strip()
    body = body.removeprefix("\\begin{aligned}").removesuffix("\\end{aligned}").strip()
    rows = []
    for row in _ROW_SPLIT.split(body):
        row = row.strip()
        if not row:
            continue
        m = _HEADING.match(row)
        if m:
            rows.append({"heading": m[1]})
            continue
        try:
            lhs, rhs = mathml_row(row)
        except (Unsafe, ValueError, IndexError, KeyError, TypeError, AttributeError, RecursionError):
            lhs, rhs = None, None                    # the page shows the LaTeX source instead, escaped
        rows.append({"lhs": lhs, "rhs": rhs, "latex": row})
    return rows


def svg(data: bytes | str) -> str:
    """Graphviz SVG for inlining in HTML: no XML declaration, DOCTYPE or comments, allow-listed markup."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    text = re.sub(r"<!DOCTYPE[^>]*>", "", text)
    try:
        root = ET.fromstring(text.encode("utf-8"))
    except ET.ParseError:
        raise Unsafe("the SVG is not well formed") from None
    _clean(root, SVG_NS, SVG_TAGS, SVG_ATTRS, "SVG")
    root.set("role", "img")
    return _serialize(root, SVG_NS)
