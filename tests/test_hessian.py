"""Second order: closed-form Hessians (strings and numbers), HVPs of every rule against finite
differences of the gradient, generated hessian()/hvp() against finite differences of the generated gradient."""
from __future__ import annotations

import re

import numpy as np
import pytest

import symbackprop as sb
from symbackprop import expr as E
from symbackprop.cli import main as cli_main
from symbackprop.sweep import backprop
from symbackprop.emit import emit_module, load_source
from symbackprop.evaluate import Point, Substitute, evaluate
from symbackprop.expr import RULES, Node
from symbackprop.hessian import hessian_matrix, hvp, inner, second_order
from symbackprop.printing import to_text
from test_codegen import CASES, SH, _point                     # the per-rule formulas of the codegen tests
from test_rules import ATTRS, OPS, arg_shapes, sample, stable_seed  # the per-rule shapes, samplers, seeds

#: Central differences of a gradient, float64; tolerances named once.
EPS = 1e-6
RTOL = 1e-5
ATOL = 1e-7


def _close(analytic, numeric, scale=1.0):
    analytic, numeric = np.asarray(analytic, float), np.asarray(numeric, float)
    err = np.max(np.abs(analytic - numeric)) if analytic.size else 0.0
    size = max(np.max(np.abs(analytic)) if analytic.size else 0.0, np.max(np.abs(numeric)) if numeric.size else 0.0)
    return err <= RTOL * size + ATOL * max(1.0, scale), err


def _sigmoid(z):
    return 0.5 * (1 + np.tanh(0.5 * z))


def _softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


# ----- the closed forms of the issue: strings, then numbers -----

LOGISTIC = "sum(softplus(A @ x)) - y @ (A @ x)"
CLOSED = {
    # formula, shapes, the Hessian as printed, the Hessian computed independently (NumPy, by hand)
    "quadratic": ("x @ A @ x", {"A": "n,n", "x": "n"}, {"Aᵀ + A", "A + Aᵀ"},
                  lambda p: p["A"] + p["A"].T),
    "least squares": ("norm(A @ x - b)**2", {"A": "m,n", "x": "n", "b": "m"}, {"2·Aᵀ A"},
                      lambda p: 2 * p["A"].T @ p["A"]),
    "logistic": (LOGISTIC, {"A": "m,n", "x": "n", "y": "m"}, {"Aᵀ diag(sigmoid'(A x)) A"},
                 lambda p: p["A"].T @ np.diag(_sigmoid(p["A"] @ p["x"]) * (1 - _sigmoid(p["A"] @ p["x"]))) @ p["A"]),
    "logsumexp": ("logsumexp(x)", {"x": "n"}, {"diag(softmax(x)) − softmax(x) softmax(x)ᵀ"},
                  lambda p: np.diag(_softmax(p["x"])) - np.outer(_softmax(p["x"]), _softmax(p["x"]))),
}


def _values(shapes, rng, sizes={"m": 5, "n": 4}):
    return {k: rng.standard_normal(tuple(sizes[d] for d in v.split(","))) for k, v in shapes.items()}


@pytest.mark.parametrize("case", sorted(CLOSED))
def test_closed_form_hessian_text(case):
    formula, shapes, texts, _ = CLOSED[case]
    so = second_order(sb.derive(formula, shapes, wrt=["x"]))
    line = so.hessian_text().splitlines()[0]
    assert line.startswith("∂²ℓ/∂x² = ") and line.endswith("[n×n]")
    printed = line[len("∂²ℓ/∂x² = "):].rsplit("    [", 1)[0]
    assert printed in texts, printed


@pytest.mark.parametrize("case", sorted(CLOSED))
def test_closed_form_hessian_values(case):
    """The closed form evaluated at random points: against the hand formula, and against central
    differences of the gradient, column by column (the full Jacobian of the gradient)."""
    formula, shapes, _, by_hand = CLOSED[case]
    d = sb.derive(formula, shapes, wrt=["x"])
    so = second_order(d)
    x = d.program.variables["x"]
    rng = np.random.default_rng(11)
    dims = {s: {"m": 5, "n": 4}[s.name] for s in d.program.dims}
    for _ in range(3):
        values = _values(shapes, rng)
        point = Point(dims, values)
        H, = evaluate([so.hessian], point)
        assert np.allclose(H, by_hand(values), rtol=1e-10, atol=1e-12)
        n = values["x"].size
        fd = np.zeros((n, n))
        for j in range(n):
            e = np.zeros(n)
            e[j] = EPS
            hi, = evaluate([d.grads["x"]], point, {x: values["x"] + e})
            lo, = evaluate([d.grads["x"]], point, {x: values["x"] - e})
            fd[:, j] = (hi - lo) / (2 * EPS)
        ok, err = _close(H, fd)
        assert ok, (case, err)


def test_hessians_agree_with_autograd():
    ag = pytest.importorskip("autograd")
    anp = pytest.importorskip("autograd.numpy")
    rng = np.random.default_rng(5)
    A, y = rng.standard_normal((6, 4)), (rng.random(6) > 0.5).astype(float)
    x0 = rng.standard_normal(4)
    m = load_source(emit_module(sb.derive(LOGISTIC, CLOSED["logistic"][1]), wrt=["x"], hessian=True, hvp=True))
    ref = ag.hessian(lambda x: anp.sum(anp.logaddexp(0, A @ x)) - y @ (A @ x))(x0)
    assert np.allclose(m.hessian(A=A, x=x0, y=y), ref, rtol=1e-10, atol=1e-12)
    v = rng.standard_normal(4)
    assert np.allclose(m.hvp(v, A=A, x=x0, y=y), ref @ v, rtol=1e-10, atol=1e-12)


def test_matrix_variable_gets_the_hvp_and_says_so():
    d = sb.derive("0.5 * norm(W2 @ tanh(W1 @ x + b) - y)**2",
                  {"W1": "h,d", "W2": "k,h", "x": "d", "b": "h", "y": "k"}, wrt=["W1"])
    so = second_order(d)
    assert so.hessian is None and "4-index" in so.hessian_note
    assert so.hvps["W1"].shape == d.program.variables["W1"].shape
    assert so.checks["trials"] == 3
    assert so.hvp_text().startswith("∂²ℓ/∂W1² · v = ")


def test_scalar_variable_hessian_is_the_second_derivative():
    so = second_order(sb.derive("x**3 + sin(x)", {}))
    point = Point({}, {"x": np.array(0.7)})
    h, = evaluate([so.hessian], point)
    assert np.isclose(h, 6 * 0.7 - np.sin(0.7), rtol=1e-12)


def test_nonlinear_maps_are_refused_not_misread():
    v = E.var("v", (3,))
    a = E.var("a", (3,))
    assert hessian_matrix(Node("sin", (v,)), v) is None           # not linear in v
    assert hessian_matrix(E.mul(v, v), v) is None                 # quadratic
    assert hessian_matrix(E.add(v, a), v) is None                 # affine, not linear
    M = hessian_matrix(E.mul(a, v), v)
    assert to_text(M) == "diag(a)"


# ----- every rule: the HVP against central differences of the gradient -----

@pytest.mark.parametrize("op", OPS)
def test_rule_hvp_matches_finite_differences_of_the_gradient(op):
    """objective = ⟨r, op(args)⟩ + ½‖op(args)‖²: the second sweep goes through the op's own VJP expression
    (its second derivative) and through its VJP twice (the Gauss-Newton part), jointly in every argument."""
    rng = np.random.default_rng(stable_seed("hvp" + op))
    shapes = arg_shapes(op)
    args = [E.var(f"a{i}", s) for i, s in enumerate(shapes)]
    node = Node(op, tuple(args), ATTRS.get(op, ()))
    r = E.var("r", node.shape)
    objective = E.add(inner(r, node), E.mul(E.const(0.5), inner(node, node)))
    adj = backprop(objective, E.const(1), args)
    grads = {a: adj.get(a, E.zeros(a.shape)) for a in args}
    dirs = {a: E.var(f"v{i}", a.shape) for i, a in enumerate(args)}
    hv = hvp(grads, dirs)
    domain = RULES[op].domain
    for _ in range(3):
        values = {f"a{i}": sample(s, domain, rng) for i, s in enumerate(shapes)}
        values["r"] = rng.standard_normal(node.shape)
        values.update({f"v{i}": rng.standard_normal(s) for i, s in enumerate(shapes)})
        point = Point({}, values, {"Phi": Substitute(rng), "f": Substitute(rng)})
        got = evaluate([hv[a] for a in args], point)
        x0 = {a: np.asarray(values[a.attrs[0]], float) for a in args}
        v0 = {a: values[dirs[a].attrs[0]] for a in args}
        hi = evaluate([grads[a] for a in args], point, {a: x0[a] + EPS * v0[a] for a in args})
        lo = evaluate([grads[a] for a in args], point, {a: x0[a] - EPS * v0[a] for a in args})
        g0 = evaluate([grads[a] for a in args], point)
        for a, h, p, m, g in zip(args, got, hi, lo, g0):
            numeric = (np.asarray(p, float) - np.asarray(m, float)) / (2 * EPS)
            analytic = np.broadcast_to(np.asarray(h, float), np.shape(x0[a]))
            ok, err = _close(analytic, numeric, float(np.max(np.abs(g))) if np.size(g) else 1.0)
            assert ok, (op, a.attrs[0], err)


# ----- generated hvp() and hessian() against the generated gradient -----

def _fd_hvp(m, point, direction):
    """Central differences of the generated gradient along `direction` ({name: array})."""
    hi = {**point, **{n: point[n] + EPS * direction[n] for n in direction}}
    lo = {**point, **{n: point[n] - EPS * direction[n] for n in direction}}
    gh, gl = m.value_and_grad(**hi)[1], m.value_and_grad(**lo)[1]
    return {n: (np.asarray(gh[n], float) - np.asarray(gl[n], float)) / (2 * EPS) for n in direction}


def _module(formula, wrt=None, **kw):
    shapes = {k: v for k, v in SH.items() if re.search(rf"\b{k}\b", formula)}
    return load_source(emit_module(sb.parse_formula(formula, shapes), wrt=wrt, **kw))


@pytest.mark.parametrize("op", sorted(CASES))
def test_generated_hvp_matches_finite_differences(op):
    formula, positive, square = CASES[op]
    m = _module(formula, hvp=True)
    rng = np.random.default_rng(4)
    for _ in range(2):
        point = _point(m, rng, positive, square)
        point = {k: np.asarray(v, float) for k, v in point.items()}
        direction = {n: rng.standard_normal(np.shape(point[n])) for n in m.HVP_WRT}
        got = m.hvp(direction if len(m.HVP_WRT) > 1 else direction[m.HVP_WRT[0]], **point)
        got = got if isinstance(got, dict) else {m.HVP_WRT[0]: got}
        want = _fd_hvp(m, point, direction)
        g0 = m.value_and_grad(**point)[1]
        for n in m.HVP_WRT:
            assert np.shape(got[n]) == np.shape(point[n]), (op, n)
            ok, err = _close(got[n], want[n], float(np.max(np.abs(g0[n]))))
            assert ok, (op, formula, n, err)


#: Formulas whose HVPs pass matrices linear in v through products, diag, trace, sum and ⊙ on the way.
STRUCTURED_FORMULAS = [
    ("trace(outer(x, x) @ S @ outer(x, x))", {"S": "n,n", "x": "n"}),
    ("sum(diag(outer(x, y) * S))**2", {"S": "n,n", "x": "n", "y": "n"}),
    ("sum(sin(outer(x, y) @ S))", {"S": "n,n", "x": "n", "y": "n"}),
    ("sum(sin(S @ outer(y, x)))", {"S": "n,n", "x": "n", "y": "n"}),
    ("sum(diag(x) @ S @ diag(x))", {"S": "n,n", "x": "n"}),
    ("trace(S @ diag(x) @ S @ diag(x))", {"S": "n,n", "x": "n"}),
    ("mean(outer(x, x) * S) + sum(exp(x)) * sum(x)", {"S": "n,n", "x": "n"}),
    ("y @ diag(outer(x, x) @ S) + norm(x)", {"S": "n,n", "x": "n", "y": "n"}),
    ("sum(tanh(diag(x) @ S) @ y)", {"S": "n,n", "x": "n", "y": "n"}),
    ("(x @ y) * (x @ S @ x)", {"S": "n,n", "x": "n", "y": "n"}),
]

HESSIAN_CASES = {
    **{k: (formula, shapes) for k, (formula, shapes, _, _) in CLOSED.items()},
    "tanh net": ("0.5 * norm(W2 @ tanh(W1 @ x + b) - y)**2",
                 {"W1": "h,d", "W2": "k,h", "x": "d", "b": "h", "y": "k"}),
    "norm": ("norm(x)", {"x": "n"}),
    "logdet": ("logdet(S + outer(x, x))", {"S": "n,n", "x": "n"}),
    "ridge logistic": ("mean(softplus(A @ x) - y * (A @ x)) + 0.5 * lam * x @ x", {"A": "m,n", "x": "n", "y": "m"}),
}


@pytest.mark.parametrize("case", sorted(HESSIAN_CASES) + [f for f, _ in STRUCTURED_FORMULAS])
def test_generated_hessian_matches_finite_differences(case):
    formula, shapes = HESSIAN_CASES.get(case) or (case, dict(STRUCTURED_FORMULAS)[case])
    m = load_source(emit_module(sb.derive(formula, shapes), wrt=["x"], hessian=True, hvp=True))
    rng = np.random.default_rng(9)
    for _ in range(2):
        point = _point(m, rng, (), ("S",) if "S" in shapes else ())
        H = m.hessian(**point)
        n = point["x"].size
        assert H.shape == (n, n)
        assert np.allclose(H, H.T, rtol=1e-9, atol=1e-12)
        g0 = m.value_and_grad(**point)[1]["x"]
        for _ in range(2):
            v = rng.standard_normal(n)
            want = _fd_hvp(m, point, {"x": v})["x"]
            for got in (H @ v, m.hvp(v, **point)):
                ok, err = _close(got, want, float(np.max(np.abs(g0))))
                assert ok, (case, err)


def test_generated_hessian_source_never_builds_what_it_does_not_need():
    src = emit_module(sb.derive(LOGISTIC, CLOSED["logistic"][1]), wrt=["x"], hessian=True, hvp=True)
    hess = src[src.index("def hessian"):]
    hv = src[src.index("def hvp"):src.index("def hessian")]
    for bad in ("np.eye", "np.kron", "np.diag", "np.einsum", "np.outer"):
        assert bad not in hess and bad not in hv, bad
    assert "[:, None] * A" in hess                 # diag(s) A as a broadcast
    assert "A @ direction" in hv                   # the HVP is matrix-vector products only
    src2 = emit_module(sb.derive(LOGISTIC, CLOSED["logistic"][1]), wrt=["x"], hessian=True, hvp=True)
    assert src == src2                             # deterministic


def test_generated_hvp_of_several_variables_takes_and_returns_dicts():
    m = _module("sum(sin(A @ x))", hvp=True)
    assert set(m.HVP_WRT) == {"A", "x"}
    rng = np.random.default_rng(2)
    point = _point(m, rng)
    direction = {n: rng.standard_normal(point[n].shape) for n in m.HVP_WRT}
    out = m.hvp(direction, **point)
    assert set(out) == {"A", "x"}
    want = _fd_hvp(m, point, direction)
    for n in out:
        assert _close(out[n], want[n])[0]


# ----- command line -----

def test_cli_derive_hessian(capsys):
    rc = cli_main(["derive", "norm(A @ x - b)**2", "-s", "A=m,n", "-s", "x=n", "-s", "b=m", "--hessian", "--wrt", "x"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "∂²ℓ/∂x² = 2·Aᵀ A    [n×n]" in out and "Checked against central finite differences" in out


def test_cli_derive_hvp_several_variables(capsys):
    rc = cli_main(["derive", "x @ A @ x", "-s", "A=n,n", "-s", "x=n", "--hvp"])
    out = capsys.readouterr().out
    assert rc == 0 and "(H v)_x = " in out and "(H v)_A = " in out


@pytest.mark.parametrize("argv, message", [
    (["derive", "x @ A @ x", "-s", "A=n,n", "-s", "x=n", "--hessian"], "one variable"),
    (["codegen", "norm(W @ x)**2", "-s", "W=n,n", "-s", "x=n", "--hessian", "--wrt", "W"], "4-index"),
    (["codegen", "sum(exp(x))", "-s", "x=n", "--hvp", "--batch", "x"], "--batch"),
])
def test_cli_errors_are_one_message(capsys, argv, message):
    rc = cli_main(argv)
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err


def test_cli_codegen_writes_a_newton_ready_module(tmp_path):
    out = tmp_path / "logreg.py"
    rc = cli_main(["codegen", LOGISTIC, "-s", "A=m,n", "-s", "x=n", "-s", "y=m", "--wrt", "x", "--hessian", "--hvp",
                   "-o", str(out)])
    assert rc == 0
    src = out.read_text()
    assert "--hessian --hvp" in src                # the regenerate command keeps the flags
    m = load_source(src)
    rng = np.random.default_rng(0)
    A, y = rng.standard_normal((30, 3)), (rng.random(30) > 0.5).astype(float)
    x = np.zeros(3)
    for _ in range(8):                             # Newton's method converges to the stationary point
        _, g = m.value_and_grad(A=A, x=x, y=y)
        x = x - np.linalg.solve(m.hessian(A=A, x=x, y=y) + 1e-9 * np.eye(3), g["x"])
    assert np.linalg.norm(m.value_and_grad(A=A, x=x, y=y)[1]["x"]) < 1e-8


def test_cli_hessian_and_hvp_give_each_name_one_meaning(capsys):
    """--hessian --hvp prints the gradients, the HVP and the Hessian, each with a where-block: a name such as
    t1 must stand for the same expression in all of them (it once meant three different ones)."""
    rc = cli_main(["derive", "logsumexp(W @ softmax(W @ w)) * sum(sigmoid(W @ softmax(W @ w)))", "-s", "W=n,n",
                   "-s", "w=n", "--hessian", "--hvp", "--wrt", "w"])
    out = capsys.readouterr().out
    assert rc == 0
    definitions: dict[str, set] = {}
    for name, body in re.findall(r"^  (\w+) = (.*)    \[", out, re.M):
        definitions.setdefault(name, set()).add(body)
    assert len([n for n in definitions if re.fullmatch(r"t\d+", n)]) >= 3, out
    assert {n: b for n, b in definitions.items() if len(b) > 1} == {}, out
    blocks = out.split("\n\n")
    for block in blocks:                          # each block defines every name it uses
        used = set(re.findall(r"\b(t\d+)\b", block))
        assert used <= set(re.findall(r"^  (t\d+) = ", block, re.M)), block


# ----- docs/hessian.md shows real output -----

def test_doc_outputs_are_current(capsys):
    """Every `$ symbackprop derive …` block in docs/hessian.md: each line shown is a line the command prints today."""
    import shlex
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    text = (root / "docs/hessian.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^    \$ (symbackprop derive .*)\n((?:    (?!\$).*\n|\n)*)", text, re.M)
    assert len(blocks) >= 6
    for command, shown in blocks:
        rc = cli_main(shlex.split(command)[1:])
        out = capsys.readouterr().out.splitlines()
        assert rc == 0, command
        for line in shown.splitlines():
            line = line[4:]
            if line.strip():
                assert line in out, (command, line)
    module = (root / "generated/logistic_hessian.py").read_text(encoding="utf-8")
    excerpt = re.search(r"```python\n(def hvp.*?)```", text, re.S).group(1)
    assert excerpt.strip() in module.replace("\n\nHESSIAN_WRT = 'x'\n", "")


@pytest.mark.parametrize("formula, shapes", STRUCTURED_FORMULAS)
def test_structured_hessians_match_the_jacobian_of_the_gradient(formula, shapes):
    d = sb.derive(formula, shapes, wrt=["x"])
    so = second_order(d)
    assert so.hessian is not None, (formula, so.hessian_note)
    x = d.program.variables["x"]
    rng = np.random.default_rng(21)
    dims = {s: 4 for s in d.program.dims}
    for _ in range(2):
        values = {k: rng.standard_normal((4, 4) if v == "n,n" else (4,)) for k, v in shapes.items()}
        point = Point(dims, values)
        H, g = evaluate([so.hessian, d.grads["x"]], point)
        fd = np.zeros((4, 4))
        for j in range(4):
            e = np.zeros(4)
            e[j] = EPS
            hi, = evaluate([d.grads["x"]], point, {x: values["x"] + e})
            lo, = evaluate([d.grads["x"]], point, {x: values["x"] - e})
            fd[:, j] = (hi - lo) / (2 * EPS)
        ok, err = _close(H, fd, float(np.max(np.abs(g))))
        assert ok, (formula, err)
