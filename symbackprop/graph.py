"""The computation graph as plain data, read off a Derivation: one node per operation of the formula, in
topological order (ids n0, n1, …, never `id()`), shared sub-expressions once with fan-out edges. With
`backward=True` each node carries its adjoint and each edge the local derivative, printed by calling the
rule table's vjp with a placeholder adjoint ḡ. render.py draws it.

>>> from symbackprop.derivation import derive
>>> g = build_graph(derive("sum(relu(W @ x))", {"W": "h,d", "x": "d"}, check=False))
>>> [n.lines for n in g.nodes]
[['W', 'h×d'], ['x', 'd'], ['x1 = @', 'h'], ['x2 = relu', 'h'], ['ℓ = sum', 'scalar']]
"""
from __future__ import annotations

import re
import textwrap
import unicodedata
from dataclasses import dataclass, field

import numpy as np

from . import expr as E
from .sweep import sweep
from .errors import FormulaError, Hint, LimitError, ShapeError, SymbackpropError
from .expr import RULES, Node, format_shape, walk
from .printing import to_text
from .rules import Fmt

#: Graphs with more drawn nodes than this are refused (Graphviz layout grows fast); --collapse helps.
MAX_DRAWN_NODES = 1500
#: Arrays with at most this many entries are shown inline with --values; larger ones as shape and norm.
INLINE_ENTRIES = 6
#: Label lines are wrapped at about this many characters.
WRAP = 56
#: Placeholder for "the adjoint of the edge's head" in edge labels.
GBAR = "ḡ"
#: An operand in an operation label (`·²`, `‖·‖²`).
SLOT = "·"
RANKDIRS = ("auto", "LR", "TB")
#: An operand in an operation label (`·²`, `‖·‖²`).

@dataclass
class GraphNode:
    """One drawn node; `lines` make its label (`text` joins them with newlines)."""
    id: str
    node: Node
    kind: str                          # variable | constant | op | named | collapsed
    op: str                            # the operation's label: relu, @, +, ‖·‖², or the leaf itself
    name: str | None                   # user or step name (x1, …), the objective's name for the sink
    shape: str
    sink: bool = False
    adjoint: str | None = None         # backward: "∂ℓ/∂x1 = …" or "ḡ = …"
    fanin: str | None = None           # backward, fan-out nodes: the sum of the incoming contributions
    value: object = None               # --values: forward value and gradient (NumPy)
    grad: object = None
    lines: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@dataclass
class GraphEdge:
    """Data flows tail -> head; `arg` is the argument position at the head (collapsed boxes: input index)."""
    tail: str
    head: str
    arg: int
    label: str | None = None           # backward: the local derivative, in terms of the head's adjoint ḡ
    contribution: Node | None = None   # backward: what this edge adds to the tail's adjoint


@dataclass
class ComputationGraph:
    """A drawable computation graph: `dot()` gives DOT source, `svg()` renders it."""
    nodes: list[GraphNode]
    edges: list[GraphEdge]
    title: str
    rankdir: str = "LR"
    backward: bool = False
    notes: list[str] = field(default_factory=list)

    def node(self, key) -> GraphNode:
        """The drawn node for an id (`'n3'`), a name (`'x1'`, `'W'`) or an expression Node."""
        for n in self.nodes:
            if key in (n.id, n.name) or n.node is key or (n.kind == "variable" and n.op == key):
                return n
        raise KeyError(key)

    def dot(self) -> str:
        from .render import render_dot
        return render_dot(self)

    def svg(self, renderer: str = "auto") -> str:
        from .render import render_bytes
        return render_bytes(self.dot(), "svg", renderer)[0].decode("utf-8")

    def render(self, path: str, fmt: str | None = None, renderer: str = "auto") -> str:
        """Write the graph to `path` (format from the extension); return the renderer used."""
        from .render import write_graph
        return write_graph(self, path, fmt, renderer)

    def _repr_svg_(self):
        try:
            return self.svg()
        except SymbackpropError:
            return None

    def _repr_mimebundle_(self, include=None, exclude=None):
        out = {"text/plain": repr(self)}
        svg = self._repr_svg_()
        if svg is not None:
            out["image/svg+xml"] = svg
        return out

    def __repr__(self):
        return f"<ComputationGraph {self.title!r}: {len(self.nodes)} nodes, {len(self.edges)} edges>"


# ----- labels read off the rule table -----

_FUNCTION = re.compile(r"(?P<name>[^{}()]+)\((\{\d+\}(, )?)+\)\Z")
_INFIX = re.compile(r"\{0\}(?P<sym>.*?)\{1\}\Z")


def _fmt(node: Node, style: str) -> Fmt:
    fmt = getattr(RULES[node.op], style)
    return fmt(node) if callable(fmt) and not isinstance(fmt, Fmt) else fmt


def _symbolic(s: str) -> bool:
    return bool(s) and all(unicodedata.category(c)[0] in "PS" for c in s)


def _foldable(node: Node) -> bool:
    """A constant leaf (a number, 0, 𝟙, I): shown inside its user's label, not as a node of its own."""
    return not node.args and node.op != "var"


def op_label(node: Node) -> str:
    """The operation as the rule table prints it: `relu`, `@`, `+`, `‖·‖²`, `·ᵀ`; a leaf prints itself.

    A constant operand is folded into the label, the other operands print as `·`:
    `x**2` gives `·²`, `0.5 * x` gives `0.5 ·`, `x - 1` gives `· − 1`.
    """
    fmt = _fmt(node, "text")
    if fmt.through is not None:                      # X⁻ᵀ spans two nodes; each graph node shows its own operation
        fmt = fmt.plain
    text = fmt.template
    if not node.args:
        return text
    infix = _INFIX.match(text) if len(node.args) == 2 else None
    sym = infix["sym"].strip() if infix else None
    if any(_foldable(a) for a in node.args):
        parts = []
        for i, a in enumerate(node.args):
            if not _foldable(a):
                parts.append(SLOT)
                continue
            leaf = _fmt(a, "text")
            parts.append(f"({leaf.template})" if leaf.prec < fmt.arg_need(i) else leaf.template)
        if sym in ("", SLOT):                         # juxtaposition, or a product dot next to the slot
            return " ".join(parts)
        return text.format(*parts)
    m = _FUNCTION.match(text)
    if m:
        return m["name"]
    if infix:
        if sym in ("", SLOT):                         # juxtaposition or `·`: the NumPy symbol (@, *) reads better
            m2 = _INFIX.match(_fmt(node, "np").template)
            sym = m2["sym"].strip() if m2 else sym
        if _symbolic(sym):
            return sym
    return re.sub(r"\{\d+\}", SLOT, text)


def format_value(v) -> str:
    """Small arrays inline, larger ones as shape and norm.

    >>> format_value([[1.0, -0.5], [2.25, 1e-9]]), format_value(np.ones(7))
    ('[[1, -0.5], [2.25, 1e-09]]', '7, ‖·‖ = 2.646')
    """
    a = np.asarray(v, dtype=float)
    if a.ndim == 0:
        return f"{float(a):.4g}"
    if a.size <= INLINE_ENTRIES:
        rows = a if a.ndim == 1 else a.reshape(a.shape[0], -1)
        fmt = lambda r: "[" + ", ".join(f"{float(x):.3g}" for x in r) + "]"
        return fmt(rows) if a.ndim == 1 else "[" + ", ".join(fmt(r) for r in rows) + "]"
    return f"{format_shape(a.shape)}, ‖·‖ = {np.linalg.norm(a):.4g}"


def _wrap(prefix: str, text: str) -> list[str]:
    return textwrap.wrap(prefix + text, WRAP, subsequent_indent="   ", break_long_words=False,
                         break_on_hyphens=False) or [prefix]


# ----- building -----

def build_graph(derivation, *, backward: bool = False, point=None, collapse=(), rankdir: str = "auto",
                title: str | None = None) -> ComputationGraph:
    """The computation graph of a Derivation: forward, or with adjoints (`backward`), values (`point`)."""
    d = derivation
    if rankdir not in RANKDIRS:
        raise FormulaError(f"--rankdir must be one of {', '.join(RANKDIRS)}, got `{rankdir}`")
    order = d.order
    users: dict[Node, list[Node]] = {}
    for node in order:
        for a in node.args:
            users.setdefault(a, []).append(node)
    step_names = dict(d.step_names)
    if d.objective.args:                            # a leaf objective (`1`, `x`) prints as itself, not as ℓ
        step_names[d.objective] = d.objective_name

    hidden: set[Node] = set()
    boxes: list[Node] = []
    for name in collapse:
        box = _lookup(d, name, step_names)
        boxes.append(box)
        for m in reversed(walk(box)):
            if m is box or not m.args or m in hidden:
                continue
            if all(u in hidden or u is box for u in users.get(m, ())):
                hidden.add(m)
    # constant operands show in their users' labels (`·²`, `0.5 ·`), not as nodes of their own
    folded = {n for n in order if _foldable(n) and n is not d.objective}
    visible = [n for n in order if n not in hidden and n not in folded]
    if len(visible) > MAX_DRAWN_NODES:
        raise LimitError(f"the graph has {len(visible)} nodes to draw, more than {MAX_DRAWN_NODES}",
                         hint=Hint("name intermediates (z = ...; ...) and fold them with --collapse NAME",
                                   "name intermediates (z = ...; ...) in the formula, and fold them into boxes "
                                   "with the command line's `symbackprop graph --collapse NAME`"))
    ids = {n: f"n{i}" for i, n in enumerate(visible)}
    names = {n: s for n, s in step_names.items() if n not in hidden}
    boxes = [b for b in boxes if b not in hidden]

    def inputs(node: Node) -> list[Node]:
        if node not in boxes:
            return list(node.args)
        out, seen = [], set()
        for m in walk(node, stop=[n for n in visible if n is not node]):
            if m is not node and m not in hidden and m not in folded and m not in seen:
                seen.add(m)
                out.append(m)
        return out

    stand_names: dict[Node, str] = {}               # collapsed boxes: stand-ins for their inputs

    def local_parts(node: Node, seed: Node) -> list[Node | None]:
        """The contribution of `seed` (the adjoint at `node`) to each drawn input's adjoint."""
        if node not in boxes:
            vjp = RULES[node.op].vjp
            return list(vjp(seed, node)) if vjp else [None] * len(node.args)
        ins = inputs(node)
        stand = {}
        for k, a in enumerate(ins):
            if a.op == "var":
                stand[a] = a
                continue
            stand[a] = E.var(f"_in_{ids[node]}_{k}", a.shape)
            shown = names.get(a) or to_text(a, names)
            stand_names[stand[a]] = shown if shown.isidentifier() else f"({shown})"
        body = E.substitute(node, {a: s for a, s in stand.items() if s is not a})
        adj = sweep(body, seed, list(stand.values())).adjoints
        return [adj.get(stand[a]) for a in ins]

    gnodes: list[GraphNode] = []
    by_node: dict[Node, GraphNode] = {}
    for node in visible:
        kind = ("collapsed" if node in boxes else "variable" if node.op == "var" else
                "constant" if not node.args else "named" if node in names else "op")
        gn = GraphNode(ids[node], node, kind, op_label(node), names.get(node), format_shape(node.shape),
                       sink=node is d.objective)
        gnodes.append(gn)
        by_node[node] = gn

    gedges: list[GraphEdge] = []
    for node in visible:
        for k, a in enumerate(inputs(node)):
            if a in ids:
                gedges.append(GraphEdge(ids[a], ids[node], k))

    if backward:
        _add_backward(d, visible, by_node, gedges, ids, names, inputs, local_parts, stand_names, boxes)
    if point is not None:
        _add_values(d, visible, by_node, point)

    notes = []
    if backward:
        notes.append(f"edge label: what the edge adds to its tail's adjoint; {GBAR} = the adjoint at its head")
    if point is not None and (d.program.elementwise or d.program.functions):
        notes.append("values: abstract functions are replaced by random smooth stand-ins")
    for gn in gnodes:
        gn.lines = _label_lines(gn, names)
    graph = ComputationGraph(gnodes, gedges, title or d.program.source, rankdir, backward, notes)
    if rankdir == "auto":
        from .render import choose_rankdir
        graph.rankdir = choose_rankdir(graph)
    return graph


def _lookup(d, name: str, step_names: dict) -> Node:
    for node, s in step_names.items():
        if s == name and node.args:
            return node
    if name in d.program.variables:
        raise FormulaError(f"--collapse names `{name}`, a variable: only named intermediates fold into a box")
    known = sorted({s for n, s in step_names.items() if n.args})
    import difflib
    near = difflib.get_close_matches(name, known, 1)
    raise FormulaError(f"--collapse names `{name}`, which is not a named intermediate",
                       hint=f"did you mean `{near[0]}`?" if near else
                       f"named intermediates: {', '.join(known) or 'none (name one with z = ...)'}")


def _add_backward(d, visible, by_node, gedges, ids, names, inputs, local_parts, stand_names, boxes):
    obj = d.objective_name
    adjoints = d.adjoints
    edges_at = {}
    for e in gedges:
        edges_at.setdefault((e.head, e.arg), e)
    outgoing: dict[Node, list[tuple[Node, int, Node]]] = {}
    placeholders: dict[Node, str] = {}
    for node in visible:
        g = adjoints.get(node)
        if g is None or not node.args:
            continue
        ins = inputs(node)
        if node in boxes:                           # a box's edges skip the nodes inside it: sweep its body
            real_parts = local_parts(node, g)
        else:                                       # an op's edges are the sweep's
            real_parts = [c.part if c else None for c in map(d.sweep.edge, [node] * len(ins), range(len(ins)))]
        label_parts = local_parts(node, E.var(GBAR, node.shape))
        label = names.get(node)
        if label is not None and node is not d.objective:
            ph = E.var(f"_adj_{ids[node]}", node.shape)
            placeholders[ph] = f"∂{obj}/∂{label}"
            ph_parts = local_parts(node, ph)
        else:
            ph_parts = real_parts
        for k, a in enumerate(ins):
            if a not in ids or a not in adjoints or real_parts[k] is None or E.is_zero(real_parts[k]):
                continue
            e = edges_at[(ids[node], k)]
            e.contribution = real_parts[k]
            e.label = to_text(label_parts[k], {**names, **stand_names})
            outgoing.setdefault(a, []).append(ph_parts[k])
    for node in visible:
        g = adjoints.get(node)
        if g is None:
            continue
        gn = by_node[node]
        who = f"∂{obj}/∂{gn.name}" if gn.name else (
            f"∂{obj}/∂{node.attrs[0]}" if node.op == "var" else GBAR)
        gn.adjoint = f"{who} = {to_text(g, names)}"
        parts = outgoing.get(node, [])
        if len(parts) > 1:
            total = parts[0]
            for p in parts[1:]:
                total = total + p
            gn.fanin = f"{who} = {to_text(total, {**names, **placeholders, **stand_names})}"


def _add_values(d, visible, by_node, point):
    from .evaluate import evaluate
    vals = evaluate(list(visible), point)
    for node, v in zip(visible, vals):
        by_node[node].value = np.asarray(v, dtype=float)
    live = [n for n in visible if n in d.adjoints]
    grads = evaluate([d.adjoints[n] for n in live], point)
    for node, v in zip(live, grads):
        by_node[node].grad = np.broadcast_to(np.asarray(v, dtype=float), np.shape(by_node[node].value))


def _label_lines(gn: GraphNode, names) -> list[str]:
    node = gn.node
    if gn.kind == "variable":
        lines = [gn.op, gn.shape]
    elif gn.kind == "constant":
        lines = [gn.op] + ([gn.shape] if node.shape else [])
    elif gn.kind == "collapsed":
        nm = {k: v for k, v in names.items() if k is not node}
        lines = _wrap(f"{gn.name} = ", to_text(node, nm)) + [gn.shape]
    else:
        lines = [f"{gn.name} = {gn.op}" if gn.name else gn.op, gn.shape]
    if gn.fanin:
        lines += _wrap("", gn.fanin)
        lines += _wrap("   = ", gn.adjoint.split(" = ", 1)[1]) if gn.adjoint else []
    elif gn.adjoint:
        lines += _wrap("", gn.adjoint)
    if gn.value is not None and gn.kind != "constant":
        lines += _wrap("value = ", format_value(gn.value))
    if gn.grad is not None:
        lines += _wrap("grad = ", format_value(gn.grad))
    return lines


# ----- layout direction -----

def point_from_arrays(program, arrays: dict, seed: int = 0, where: str = "inputs"):
    """A Point from named arrays (e.g. an .npz file), inferring symbolic dims from their shapes."""
    import sympy

    from .evaluate import Point, Substitute
    missing = [n for n in program.variables if n not in arrays]
    if missing:
        raise FormulaError(f"{where} has no value for {', '.join(f'`{m}`' for m in missing)}",
                           hint="save every variable of the formula, e.g. np.savez(path, W=..., x=...)")
    extra = [n for n in arrays if n not in program.variables]
    if extra:
        raise FormulaError(f"{where} has {', '.join(f'`{m}`' for m in extra)}, which the formula does not use",
                           hint=f"variables: {', '.join(program.variables)}")
    dims: dict = {}
    values = {}
    for name, node in program.variables.items():
        a = np.asarray(arrays[name], dtype=float)
        if a.ndim != len(node.shape):
            raise ShapeError(f"{where}: `{name}` has shape {a.shape}, but the formula needs {format_shape(node.shape)}")
        for want, got in zip(node.shape, a.shape):
            if isinstance(want, sympy.Symbol):
                if dims.setdefault(want, got) != got:
                    raise ShapeError(f"{where}: `{name}` has shape {a.shape}, but {want} = {dims[want]} "
                                     f"from an earlier input")
            elif int(want) != got:
                raise ShapeError(f"{where}: `{name}` has shape {a.shape}, but the formula needs {format_shape(node.shape)}")
        values[name] = a
    rng = np.random.default_rng(seed)
    functions = {n: Substitute(rng) for n in tuple(program.elementwise) + tuple(program.functions)}
    return Point(dims, values, functions)


def random_values(program, seed: int = 0):
    """A random Point (sizes for symbolic dims, values, stand-ins) where the formula is finite."""
    from .evaluate import find_point
    point, _ = find_point(program, np.random.default_rng(seed), [program.objective])
    if point is None:
        raise SymbackpropError("no random point found where the formula is finite",
                               hint="give the inputs with --at inputs.npz")
    return point
