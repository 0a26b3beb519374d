"""symbackprop graph: DOT structure, local-derivative labels checked by finite differences, SVG, CLI."""
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from symbackprop import cli
from symbackprop.derivation import derive
from symbackprop.evaluate import evaluate
from symbackprop.expr import RULES
from symbackprop.graph import build_graph, format_value, op_label, random_values

PART_D = "0.5 * norm(W2 @ Phi(W1 @ x + b) - y)**2"
PART_D_SHAPES = {"W1": "h,d", "W2": "k,h", "x": "d", "b": "h", "y": "k"}
FIG2 = "(y - sum(Phi(W @ x + b)))**2"
FIG2_SHAPES = {"W": "n,d", "x": "d", "b": "n"}
EPS = 1e-6
RTOL = 1e-5


# ----- a small DOT reader (independent of the code under test) -----

_ATTR = re.compile(r'([A-Za-z_]+)=("(?:[^"\\]|\\.)*"|[^\s\]]+)')


def _unquote(v):
    if v.startswith('"'):
        v = v[1:-1].replace('\\"', '"')
    return v


def parse_dot(source):
    """{id: attrs} for nodes (label split into lines) and [(tail, head, attrs)] for edges."""
    nodes, edges = {}, []
    for line in source.splitlines():
        m = re.match(r"\s*(n\d+) -> (n\d+)(?: \[(.*)\])?\s*$", line)
        if m:
            edges.append((m[1], m[2], {k: _unquote(v) for k, v in _ATTR.findall(m[3] or "")}))
            continue
        m = re.match(r"\s*(n\d+) \[(.*)\]\s*$", line)
        if m:
            attrs = {k: _unquote(v) for k, v in _ATTR.findall(m[2])}
            attrs["lines"] = attrs["label"].split("\\n")
            nodes[m[1]] = attrs
    return nodes, edges


def _by_first_line(nodes):
    return {a["lines"][0]: (i, a) for i, a in nodes.items()}


@pytest.fixture(scope="module")
def part_d():
    return derive(PART_D, PART_D_SHAPES, elementwise=["Phi"])


# ----- forward structure -----

def test_forward_graph_structure(part_d):
    nodes, edges = parse_dot(build_graph(part_d).dot())
    first = _by_first_line(nodes)
    # variables with their shapes; the constant 0.5 is no node of its own but part of its user's label
    for name, shape in [("W1", "h×d"), ("W2", "k×h"), ("x", "d"), ("b", "h"), ("y", "k")]:
        i, a = first[name]
        assert a["lines"][1] == shape and a["shape"] == "ellipse"
    assert "0.5" not in first and not any("dashed" in a["style"] for a in nodes.values())
    assert first["ℓ = 0.5 ·"][1]["lines"][1] == "scalar"
    # named intermediates carry their names, the operation and the shape
    assert first["x1 = +"][1]["lines"][1] == "h"
    assert first["x2 = Phi"][1]["lines"][1] == "h"
    assert first["x3 = @"][1]["lines"][1] == "k"
    assert first["x4 = −"][1]["lines"][1] == "k"
    assert first["‖·‖²"][1]["lines"][1] == "scalar"
    assert first["@"][1]["lines"][1] == "h"                 # W1 @ x, unnamed
    # the sink, and only the sink, is marked
    sinks = [i for i, a in nodes.items() if a.get("peripheries") == "2"]
    assert len(sinks) == 1 and nodes[sinks[0]]["lines"][0].startswith("ℓ = ")
    assert not any(t == sinks[0] for t, _, _ in edges)
    # ids are topological indices n0..n(N-1); every edge goes forward
    assert sorted(nodes, key=lambda s: int(s[1:])) == [f"n{i}" for i in range(len(nodes))]
    assert all(int(t[1:]) < int(h[1:]) for t, h, _ in edges)
    # the structure: W1 -> @ <- x, @ -> x1 <- b, ...
    ids = {k: v[0] for k, v in first.items()}
    expect = {("W1", "@"), ("x", "@"), ("@", "x1 = +"), ("b", "x1 = +"), ("x1 = +", "x2 = Phi"),
              ("W2", "x3 = @"), ("x2 = Phi", "x3 = @"), ("x3 = @", "x4 = −"), ("y", "x4 = −"),
              ("x4 = −", "‖·‖²"), ("‖·‖²", nodes[sinks[0]]["lines"][0])}
    assert {(t, h) for t, h, _ in edges} == {(ids[a], ids[b]) for a, b in expect}
    assert not any("label" in a for _, _, a in edges)       # forward edges carry no derivative


def test_shared_subexpression_drawn_once_with_fanout():
    d = derive("u = tanh(A @ x); dot(u, u) + sum(u)", {"A": "m,n", "x": "n"})
    nodes, edges = parse_dot(build_graph(d).dot())
    shared = [i for i, a in nodes.items() if a["lines"][0] == "u = tanh"]
    assert len(shared) == 1
    out = [h for t, h, _ in edges if t == shared[0]]
    assert len(out) == 3 and len(set(out)) == 2               # dot(u, u) twice, sum(u) once
    assert sum(1 for a in nodes.values() if a["lines"][0] == "A") == 1


def test_deterministic_ids_and_output(part_d):
    a = build_graph(part_d, backward=True).dot()
    b = build_graph(derive(PART_D, PART_D_SHAPES, elementwise=["Phi"]), backward=True).dot()
    assert a == b
    assert not re.search(r"0x[0-9a-f]{6,}|\b\d{9,}\b", a)    # no id()-style numbers


@pytest.mark.parametrize("op", sorted(RULES))
def test_every_rule_has_an_operation_label(op):
    rule = RULES[op]
    fmt = rule.text
    if rule.kind == "leaf" or op in ("phi", "fn"):
        return
    from symbackprop.expr import Node, var
    arity = len(re.findall(r"\{\d\}", fmt.template)) if not callable(fmt) else 2
    args = {1: (var("_a", (3, 3)),), 2: (var("_a", (3, 3)), var("_b", (3, 3)))}[max(1, min(arity, 2))]
    attrs = {"rows": (3,), "matrix_power": (3,)}.get(op, ())     # ops that carry attributes (one argument)
    args = args[:1] if attrs else args
    try:
        node = Node(op, args, attrs)
    except Exception:
        node = Node(op, (var("_v", (3,)),) * len(args), attrs)
    label = op_label(node)
    assert label and "{" not in label and label.strip() == label


def test_operation_labels_from_the_rule_table():
    d = derive("sum(relu(A @ x)) + norm(x)**2 + trace(inv(A).T) + x @ x - exp(x @ x / 2)", {"A": "n,n", "x": "n"},
               check=False)
    labels = {op_label(n) for n in d.order}
    assert {"relu", "@", "+", "−", "sum", "‖·‖²", "tr", "·⁻¹", "·ᵀ", "·ᵀ·", "exp", "0.5", "A", "x"} <= labels


# ----- backward -----

def test_backward_labels_part_d(part_d):
    g = build_graph(part_d, backward=True)
    nodes, edges = parse_dot(g.dot())
    first = _by_first_line(nodes)
    label = {(nodes[t]["lines"][0], nodes[h]["lines"][0]): a.get("label", "").strip() for t, h, a in edges}
    assert label[("W1", "@")] == "ḡ xᵀ"
    assert label[("x", "@")] == "W1ᵀ ḡ"
    assert label[("W2", "x3 = @")] == "ḡ x2ᵀ"
    assert label[("x2 = Phi", "x3 = @")] == "W2ᵀ ḡ"
    assert label[("x1 = +", "x2 = Phi")] == "ḡ ⊙ Phi'(x1)"
    assert label[("y", "x4 = −")] == "−ḡ"
    sink = [a["lines"][0] for a in nodes.values() if a.get("peripheries") == "2"][0]
    assert sink == "ℓ = 0.5 ·" and label[("‖·‖²", sink)] == "0.5·ḡ"   # the folded constant gets no edge
    # every node on a path to a variable shows its adjoint, as the derivation prints it
    assert "∂ℓ/∂x4 = x4" in first["x4 = −"][1]["lines"]
    assert "∂ℓ/∂x2 = W2ᵀ x4" in first["x2 = Phi"][1]["lines"]
    assert "∂ℓ/∂y = −x4" in first["y"][1]["lines"]
    assert any(line.startswith("∂ℓ/∂W1 = ") for line in first["W1"][1]["lines"])


def _check_point(d, seed=1):
    return random_values(d.program, seed)


@pytest.mark.parametrize("formula,shapes,ew,fn,collapse", [
    (PART_D, PART_D_SHAPES, ["Phi"], [], ()),
    (PART_D, PART_D_SHAPES, ["Phi"], [], ("x2",)),
    ("z = W @ x + b; 0.5 * norm(V @ tanh(z) - y)**2 + sum(z * z)", {"W": "h,d", "V": "k,h", "x": "d", "b": "h", "y": "k"},
     [], [], ("z",)),
    ("f(g1(w), g2(w), g3(w))", {}, [], ["f", "g1", "g2", "g3"], ()),
    ("x @ B @ x + logdet(B @ B.T + C)", {"B": "n,n", "x": "n", "C": "n,n"}, [], [], ()),
])
def test_edge_contributions_match_finite_differences(formula, shapes, ew, fn, collapse):
    """Each edge's contribution is the head's adjoint pulled back through the head's local function
    (checked by central differences with the head's other inputs pinned); the contributions leaving
    a node add up to its adjoint."""
    d = derive(formula, shapes, elementwise=ew, functions=fn)
    g = build_graph(d, backward=True, collapse=collapse)
    point = _check_point(d)
    rng = np.random.default_rng(7)
    by_id = {n.id: n for n in g.nodes}
    ins = {}
    for e in g.edges:
        ins.setdefault(e.head, []).append(e)
    checked = 0
    pairs = {}                                   # f(z, z): both argument slots move together
    for e in g.edges:
        if e.contribution is not None:
            pairs.setdefault((e.tail, e.head), []).append(e.contribution)
    for (t, h), contribs in pairs.items():
        head, tail = by_id[h].node, by_id[t].node
        pinned_nodes = [by_id[x.tail].node for x in ins[h]]
        pinned = dict(zip(pinned_nodes, evaluate(pinned_nodes, point)))
        x0 = np.asarray(pinned[tail], dtype=float)
        v = rng.standard_normal(x0.shape)
        hi, = evaluate([head], point, {**pinned, tail: x0 + EPS * v})
        lo, = evaluate([head], point, {**pinned, tail: x0 - EPS * v})
        gh, *cs = evaluate([d.adjoints[head]] + contribs, point)
        numeric = np.vdot(np.broadcast_to(gh, np.shape(hi)), (np.asarray(hi) - np.asarray(lo)) / (2 * EPS))
        analytic = sum(np.vdot(np.broadcast_to(c, x0.shape), v) for c in cs)
        assert abs(numeric - analytic) <= RTOL * max(1.0, abs(numeric)), (t, h, numeric, analytic)
        checked += 1
    assert checked >= 3
    # fan-out: the contributions leaving a node add up to its adjoint
    for n in g.nodes:
        parts = [e.contribution for e in g.edges if e.tail == n.id and e.contribution is not None]
        if len(parts) > 1:
            vals = evaluate(parts + [d.adjoints[n.node]], point)
            total = sum(np.broadcast_to(v, np.shape(vals[-1])) for v in vals[:-1])
            np.testing.assert_allclose(total, vals[-1], rtol=1e-9, atol=1e-12)
            assert n.fanin is not None


def test_figure1_fan_out_fan_in():
    d = derive("f(g1(w), g2(w), g3(w))", functions=["f", "g1", "g2", "g3"])
    nodes, edges = parse_dot(build_graph(d, backward=True).dot())
    first = _by_first_line(nodes)
    w = first["w"][0]
    gs = [first[f"x{i} = g{i}"][0] for i in (1, 2, 3)]
    f = first["ℓ = f"][0]
    assert sorted(h for t, h, _ in edges if t == w) == sorted(gs)
    assert sorted(t for t, h, _ in edges if h == f) == sorted(gs)
    wl = " ".join(first["w"][1]["lines"])
    for i in (1, 2, 3):                          # the sum of the three incoming contributions
        assert f"∂ℓ/∂x{i}·g{i}'(w)" in wl


def test_collapse_folds_a_named_subgraph(part_d):
    nodes, edges = parse_dot(build_graph(part_d, collapse=["x2"]).dot())
    firsts = [a["lines"][0] for a in nodes.values()]
    assert "x1 = +" not in firsts and "@" not in firsts
    box = [i for i, a in nodes.items() if a["lines"][0].startswith("x2 = ")]
    assert len(box) == 1 and nodes[box[0]]["shape"] == "box3d"
    assert nodes[box[0]]["lines"][0] == "x2 = Phi(W1 x + b)"
    into = {nodes[t]["lines"][0] for t, h, _ in edges if h == box[0]}
    assert into == {"W1", "x", "b"}
    nodes, edges = parse_dot(build_graph(part_d, collapse=["x2"], backward=True).dot())
    lab = {nodes[t]["lines"][0]: a["label"].strip() for t, h, a in edges if h == box[0]}
    assert lab["b"] == "ḡ ⊙ Phi'(W1 x + b)"


def test_values_match_finite_differences():
    d = derive("0.5 * norm(W2 @ relu(W1 @ x + b) - y)**2", PART_D_SHAPES)
    point = random_values(d.program, 3)
    g = build_graph(d, point=point)
    rng = np.random.default_rng(0)
    obj, = evaluate([d.objective], point)
    assert np.isclose(float(g.node(d.objective).value), float(obj))
    for name, var in d.program.variables.items():
        gn = g.node(var)
        x0 = point.values[name]
        np.testing.assert_array_equal(gn.value, x0)
        v = rng.standard_normal(x0.shape)
        hi, = evaluate([d.objective], point, {var: x0 + EPS * v})
        lo, = evaluate([d.objective], point, {var: x0 - EPS * v})
        assert np.isclose(np.vdot(gn.grad, v), (hi - lo) / (2 * EPS), rtol=1e-5, atol=1e-8), name
        assert any(line.startswith("grad = ") for line in gn.lines)
    try:                                         # an independent oracle where installed
        import autograd
        import autograd.numpy as anp
    except ImportError:
        return
    vals = dict(point.values)
    loss = lambda W1: 0.5 * anp.sum((vals["W2"] @ anp.maximum(W1 @ vals["x"] + vals["b"], 0) - vals["y"]) ** 2)
    np.testing.assert_allclose(g.node(d.program.variables["W1"]).grad, autograd.grad(loss)(vals["W1"]), rtol=1e-10)


def test_format_value():
    assert format_value(2.5) == "2.5"
    assert format_value([1.0, -2.0]) == "[1, -2]"
    assert format_value(np.zeros((3, 4))).startswith("3×4, ‖·‖ = 0")


# ----- SVG, notebooks -----

def _svg_labels(svg):
    root = ET.fromstring(svg)
    ns = {"s": "http://www.w3.org/2000/svg"}
    out = {}
    for g in root.iter("{http://www.w3.org/2000/svg}g"):
        if g.get("class") == "node":
            title = g.find("s:title", ns).text
            out[title] = [t.text.strip() for t in g.findall("s:text", ns)]
    return out


@pytest.mark.parametrize("backward", [False, True])
def test_svg_embedded_has_every_label(part_d, backward, monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)     # no system Graphviz
    g = build_graph(part_d, backward=backward)
    svg = g.svg(renderer="embedded")
    labels = _svg_labels(svg)
    assert set(labels) == {n.id for n in g.nodes}
    for n in g.nodes:
        assert labels[n.id] == [line.strip() for line in n.lines], n.id


def test_notebook_reprs(part_d):
    g = build_graph(part_d)
    assert g._repr_svg_().lstrip().startswith("<?xml")
    bundle = part_d._repr_mimebundle_()
    assert bundle["image/svg+xml"].lstrip().startswith("<?xml")
    assert bundle["text/latex"] == part_d._repr_latex_()
    assert bundle["text/markdown"].startswith(part_d._repr_markdown_())
    assert "data:image/svg+xml;base64," in bundle["text/markdown"]


# ----- command line -----

def _run(argv, capsys):
    rc = cli.main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_dot_to_stdout(capsys):
    rc, out, _ = _run(["graph", "f(g1(w), g2(w))", "--function", "f,g1,g2", "--rankdir", "TB"], capsys)
    assert rc == 0 and out.startswith("// symbackprop graph") and "rankdir=TB" in out
    nodes, edges = parse_dot(out)
    assert len(nodes) == 4 and len(edges) == 4


def test_cli_svg(tmp_path, capsys):
    out = tmp_path / "g.svg"
    rc, stdout, _ = _run(["graph", PART_D, "-e", "Phi", *sum((["-s", f"{k}={v}"] for k, v in PART_D_SHAPES.items()), []),
                          "--backward", "-o", str(out), "--save-dot"], capsys)
    assert rc == 0 and "wrote" in stdout
    labels = _svg_labels(out.read_text())
    nodes, _ = parse_dot((tmp_path / "g.dot").read_text())
    assert set(labels) == set(nodes)


def test_cli_png_without_graphviz_writes_dot(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)
    out = tmp_path / "g.png"
    rc, _, err = _run(["graph", "x * x", "-o", str(out)], capsys)
    assert rc == 2 and "cannot render PNG" in err and "Traceback" not in err
    assert not out.exists() and (tmp_path / "g.dot").read_text().startswith("// symbackprop graph")


def test_cli_values_from_npz(tmp_path, capsys):
    rng = np.random.default_rng(0)
    W, x = rng.standard_normal((2, 3)), rng.standard_normal(3)
    np.savez(tmp_path / "in.npz", W=W, x=x)
    rc, out, _ = _run(["graph", "sum(tanh(W @ x))", "-s", "W=m,n", "-s", "x=n", "--at", str(tmp_path / "in.npz")],
                      capsys)
    assert rc == 0
    nodes, _ = parse_dot(out)
    sink = [a for a in nodes.values() if a.get("peripheries") == "2"][0]
    assert f"value = {np.sum(np.tanh(W @ x)):.4g}" in sink["lines"]
    np.savez(tmp_path / "bad.npz", W=W, x=np.ones(4))
    rc, _, err = _run(["graph", "sum(tanh(W @ x))", "-s", "W=m,n", "-s", "x=n", "--at", str(tmp_path / "bad.npz")],
                      capsys)
    assert rc == 2 and "`x` has shape (4,)" in err


@pytest.mark.parametrize("argv,message", [
    (["graph", "x * x", "-o", "g.gif"], "unsupported output format"),
    (["graph", "z = x * x; z + x", "--collapse", "zz"], "not a named intermediate"),
    (["graph", "z = x * x; z + x", "--collapse", "x"], "a variable"),
])
def test_cli_errors(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, _, err = _run(argv, capsys)
    assert rc == 2 and message in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())


# ----- legible pictures: folded constants, fonts with room to spare, the layout direction -----

def test_constants_fold_into_their_users_labels():
    d = derive("sum((x - 1)**2) + 0.5 * sum(x) + sum(2 / x) + sum(1 - x)", {"x": "n"}, check=False)
    g = build_graph(d, backward=True)
    nodes, edges = parse_dot(g.dot())
    ops = {a["lines"][0].split(" = ", 1)[-1] for a in nodes.values()}
    assert {"· − 1", "·²", "0.5 ·", "2/·", "1 − ·"} <= ops
    # no number is a node of its own, so no dashed boxes and no edges out of constants
    assert not any(re.fullmatch(r"[\d.]+", a["lines"][0]) for a in nodes.values())
    assert not any("dashed" in a["style"] for a in nodes.values())
    x = _by_first_line(nodes)["x"][0]
    assert sorted(nodes[h]["lines"][0].split(" = ", 1)[-1] for t, h, _ in edges if t == x) == \
        ["1 − ·", "2/·", "sum", "· − 1"]
    square = [i for i, a in nodes.items() if a["lines"][0].endswith(" = ·²")]
    assert len(square) == 1
    assert [nodes[t]["lines"][0].split(" = ", 1)[-1] for t, h, _ in edges if h == square[0]] == ["· − 1"]


def test_figure2_square_is_labelled_as_a_square():
    nodes, edges = parse_dot(build_graph(derive(FIG2, FIG2_SHAPES, elementwise=["Phi"])).dot())
    sink = [i for i, a in nodes.items() if a.get("peripheries") == "2"][0]
    assert nodes[sink]["lines"][0] == "ℓ = ·²"
    assert [nodes[t]["lines"][0] for t, h, _ in edges if h == sink] == ["x4 = −"]


def test_folded_constant_inside_a_collapsed_box():
    d = derive("z = relu(W @ x + 1); sum(z)", {"W": "h,d", "x": "d"})
    g = build_graph(d, backward=True, collapse=["z"])
    nodes, edges = parse_dot(g.dot())
    box = _by_first_line(nodes)["z = relu(W x + 1)"][0]
    assert sorted(nodes[t]["lines"][0] for t, h, _ in edges if h == box) == ["W", "x"]
    assert len(nodes) == 4


def _dejavu():
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font
    return FT2Font(font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans"), fallback_to_default=False))


def _text_width(font, text, size):
    """Advance width (pt) of `text` set in the real DejaVu Sans (matplotlib ships it)."""
    font.set_size(size, 72)
    font.set_text(text, 0.0)
    return font.get_width_height()[0] / 64


def _node_boxes(svg):
    """[(node id, (xmin, xmax) of the innermost shape or an ellipse, [(x, y, size, text)])] of an SVG."""
    ns = "{http://www.w3.org/2000/svg}"
    out = []
    for g in ET.fromstring(svg).iter(ns + "g"):
        if g.get("class") != "node":
            continue
        lo, hi, ellipse = -np.inf, np.inf, None
        for el in g:
            if el.tag == ns + "ellipse":
                ellipse = tuple(float(el.get(k)) for k in ("cx", "cy", "rx", "ry"))
                continue
            pts = el.get("points") if el.tag == ns + "polygon" else el.get("d") if el.tag == ns + "path" else None
            if pts:
                xs = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", pts)[::2]]
                lo, hi = max(lo, min(xs)), min(hi, max(xs))
        texts = [(float(t.get("x")), float(t.get("y")), float(t.get("font-size")), t.text)
                 for t in g.findall(ns + "text")]
        out.append((g.find(ns + "title").text, (lo, hi), ellipse, texts))
    return out


@pytest.mark.parametrize("rankdir", ["LR", "TB"])
@pytest.mark.parametrize("what", ["backward", "values"])
def test_labels_fit_their_boxes_in_a_wider_font(what, rankdir):
    """Viewers that swap in DejaVu Sans (wider than Helvetica) still show every label inside its box."""
    d = derive("0.5 * norm(W2 @ relu(W1 @ x + b) - y)**2", PART_D_SHAPES)
    g = build_graph(d, backward=what == "backward", point=random_values(d.program, 0) if what == "values" else None,
                    rankdir=rankdir)
    dot = g.dot()
    assert 'fontname="DejaVu Sans"' in dot and re.search(r'margin="0\.1[2-9]', dot)
    svg = g.svg(renderer="embedded")
    assert 'font-family="DejaVu Sans,Helvetica,Arial,sans-serif"' in svg
    font = _dejavu()
    boxes = _node_boxes(svg)
    assert len(boxes) == len(g.nodes) and sum(len(t) for *_, t in boxes) >= 2 * len(g.nodes)
    for node, (lo, hi), ellipse, texts in boxes:
        for x, y, size, text in texts:
            half = _text_width(font, text, size) / 2
            left, right = lo, hi
            if ellipse:
                cx, cy, rx, ry = ellipse
                dy = max(abs(y - cy), abs(y - 0.8 * size - cy))           # the glyphs' row farthest out
                half_chord = rx * np.sqrt(1 - min(1, (dy / ry) ** 2))
                left, right = cx - half_chord, cx + half_chord
            assert left + 2 <= x - half and x + half <= right - 2, (node, text, x - half, x + half, left, right)


def _laid_out_width(graph, rankdir):
    import dataclasses
    svg = dataclasses.replace(graph, rankdir=rankdir).svg(renderer="embedded")
    return float(re.search(r'<svg width="([\d.]+)pt"', svg)[1])


@pytest.mark.parametrize("formula,shapes,kw,backward,expect", [
    (PART_D, PART_D_SHAPES, dict(elementwise=["Phi"]), True, "TB"),       # the README's picture: 1430 pt wide in LR
    (FIG2, FIG2_SHAPES, dict(elementwise=["Phi"]), False, "LR"),
    ("f(g1(w), g2(w), g3(w))", {}, dict(functions=["f", "g1", "g2", "g3"]), False, "LR"),
    ("f(g1(w), g2(w), g3(w))", {}, dict(functions=["f", "g1", "g2", "g3"]), True, "TB"),
    ("sum(relu(W @ x))", {"W": "h,d", "x": "d"}, {}, False, "LR"),
    ("z0 = tanh(W @ x + b); z1 = tanh(W @ z0 + b); z2 = tanh(W @ z1 + b); sum(z2)",
     {"W": "d,d", "x": "d", "b": "d"}, {}, False, "TB"),
    ("x @ B @ x + logdet(B @ B.T + C)", {"B": "n,n", "x": "n", "C": "n,n"}, {}, True, "TB"),
])
def test_auto_rankdir_picks_the_more_legible_layout(formula, shapes, kw, backward, expect):
    """`auto` (the default) keeps LR unless TB, laid out for real, shows the text larger in an 800 px column."""
    from symbackprop.render import column_scale
    g = build_graph(derive(formula, shapes, check=False, **kw), backward=backward)
    assert g.rankdir == expect and f"rankdir={expect}" in g.dot()
    lr, tb = (column_scale(_laid_out_width(g, rd)) for rd in ("LR", "TB"))
    assert (tb > 1.1 * lr) == (expect == "TB"), (lr, tb)
    # explicit directions are kept
    for rd in ("LR", "TB"):
        assert build_graph(derive(formula, shapes, check=False, **kw), backward=backward, rankdir=rd).rankdir == rd


def test_cli_rankdir_choices(capsys):
    rc, out, _ = _run(["graph", "f(g1(w), g2(w))", "--function", "f,g1,g2", "--backward", "--rankdir", "auto"], capsys)
    assert rc == 0 and re.search(r"rankdir=(LR|TB)", out)
    with pytest.raises(SystemExit) as e:
        cli.main(["graph", "x * x", "--rankdir", "BT"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "--rankdir" in err and "auto" in err and "Traceback" not in err


def test_constant_objective_is_drawn_and_its_adjoint_prints_as_a_number():
    """A formula that folds to a constant keeps its one node; its adjoint 1 does not print as `ℓ`."""
    nodes, edges = parse_dot(build_graph(derive("x * 0 + 1", {}, check=False), backward=True).dot())
    (sink,) = nodes.values()
    assert sink["lines"][0] == "1" and sink.get("peripheries") == "2" and not edges
    assert not any(line.endswith("= ℓ") for line in sink["lines"]) and sink["lines"][-1].endswith("= 1")
