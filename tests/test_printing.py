"""Printed output means what was derived: constants in every position, JSON that stays linear and
evaluates right, output to terminals that are not UTF-8, unique where-names, LaTeX steps."""
from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import subprocess
import sys

import hypothesis_profiles  # noqa: F401  (registers and loads the profile)
import numpy as np
import pytest
import sympy
from hypothesis import assume, given, strategies as st

import symbackprop as sb
from symbackprop import expr as E
from symbackprop.cli import main as cli_main
from symbackprop.expr import Node
from symbackprop.printing import to_text

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def cli(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli_main(list(argv))
    return code, out.getvalue(), err.getvalue()


# ----- a small, independent reader of the plain-text maths -----
# It reads the text the way a person does: · and / left to right, ^ binds tighter than a unary minus,
# an exponent after ^ is one atom (with an optional sign), so `x^−2/3` is x⁻² divided by 3. It refuses
# Python spellings (** and *) and stacked exponents (a^b^c), which a reader could take either way.

_SUPER = {"⁻": "-", "⁰": "0", "¹": "1", "²": "2", "³": "3", "⁴": "4", "⁵": "5", "⁶": "6", "⁷": "7", "⁸": "8", "⁹": "9"}
_TOKEN = re.compile(r"\s*(?:(?P<num>\d+(?:\.\d+)?(?:e[+-]?\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
                    r"|(?P<sup>[⁻⁰¹²³⁴⁵⁶⁷⁸⁹]+)|(?P<op>[-+−·/^()]))")
_FUNCS = {"log": math.log, "cos": math.cos, "sin": math.sin, "exp": math.exp}


class Unreadable(Exception):
    pass


def read(text: str, env: dict[str, float]) -> float:
    tokens, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise Unreadable(f"cannot read {text[pos:]!r} in {text!r}")
        kind = m.lastgroup
        tokens.append((kind, m.group(kind)))
        pos = m.end()
    tokens.append(("end", ""))
    i = 0

    def peek():
        return tokens[i]

    def take(value=None):
        nonlocal i
        tok = tokens[i]
        if value is not None and tok[1] != value:
            raise Unreadable(f"expected {value!r}, got {tok[1]!r} in {text!r}")
        i += 1
        return tok

    def expr():
        v = term()
        while peek()[1] in ("+", "−", "-"):
            op = take()[1]
            w = term()
            v = v + w if op == "+" else v - w
        return v

    def term():
        v = unary()
        while peek()[1] in ("·", "/"):
            op = take()[1]
            w = unary()
            v = v * w if op == "·" else v / w
        return v

    def unary():
        if peek()[1] in ("−", "-"):
            take()
            return -unary()
        return power()

    def power():
        v = atom()
        raised = False
        while peek()[0] == "sup" or peek()[1] == "^":
            if raised:
                raise Unreadable(f"stacked exponents in {text!r}")
            raised = True
            if peek()[0] == "sup":
                v = v ** int("".join(_SUPER[c] for c in take()[1]))
            else:
                take("^")
                sign = 1
                if peek()[1] in ("−", "-"):
                    take()
                    sign = -1
                v = v ** (sign * atom())
        return v

    def atom():
        kind, value = take()
        if kind == "num":
            return float(value)
        if kind == "name":
            if peek()[1] == "(" and value in _FUNCS:
                take("(")
                v = expr()
                take(")")
                return _FUNCS[value](v)
            if value not in env:
                raise Unreadable(f"unknown name {value!r} in {text!r}")
            return env[value]
        if value == "(":
            v = expr()
            take(")")
            return v
        raise Unreadable(f"unexpected {value!r} in {text!r}")

    v = expr()
    if peek()[0] != "end":
        raise Unreadable(f"trailing {peek()[1]!r} in {text!r}")
    return v


def test_reader_reads_like_a_person():
    env = {"x": 8.0}
    assert read("1/3·x^(−2/3)", env) == pytest.approx(1 / 3 * 8 ** (-2 / 3))
    assert read("1/3·x^−2/3", env) == pytest.approx(1 / 3 * 8 ** -2 / 3)      # the old, misleading print
    assert read("2/3^x", env) == pytest.approx(2 / 3 ** 8)
    assert read("−x²", env) == -64
    with pytest.raises(Unreadable):
        read("n**(-2)", {"n": 2.0})
    with pytest.raises(Unreadable):
        read("1/(m*n)", {"m": 2.0, "n": 3.0})


# ----- constants in every position -----

M, N = sympy.Symbol("m", integer=True, positive=True), sympy.Symbol("n", integer=True, positive=True)
DIMS = {"m": 3.0, "n": 5.0}


def _rational():
    return st.builds(lambda p, q: sympy.Rational(p, q), st.integers(-40, 40), st.integers(1, 40))


def _float():
    return st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False).map(sympy.Float) | \
        st.sampled_from([1e-8, 2.5e-12, 1.5e20, 0.1, 1 / 3, -0.7]).map(sympy.Float)


def _symbolic():
    mono = st.builds(lambda c, a, b: c * M ** a * N ** b, _rational().filter(lambda c: c != 0),
                     st.integers(-2, 2), st.integers(-2, 2))
    return mono | st.builds(lambda u, w: u + w, mono, mono)


def _irrational():
    # what SymPy folds `(0.5*0.5 + 0.5) ** (1/3)` and the like into: powers, sums and products of them
    power = st.builds(lambda b, e: sympy.Rational(b) ** e, st.integers(2, 7),
                      st.sampled_from([sympy.Rational(1, 3), sympy.Rational(2, 3), sympy.Rational(1, 2)]))
    return st.builds(lambda p, r, e: (p + abs(r)) ** e, power, _rational(),
                     st.sampled_from([1, sympy.Rational(1, 3), sympy.Rational(-1, 2)])) | \
        st.builds(lambda p, r: p * r - 1, power, _rational())


CONSTANTS = st.one_of(st.integers(-30, 30).map(sympy.Integer), _rational(), _float(), _symbolic(), _irrational())

X, Y = E.var("x"), E.var("y")


def c_(v):
    return Node("const", (), (v,), ())


# (name, node from constants c, d, value from the constants' values and x, y). The nodes are built
# directly (not through the smart constructors) so every position is reached.
POSITIONS = [
    ("alone", lambda c, d: c_(c), lambda c, d, x, y: c),
    ("factor", lambda c, d: Node("mul", (c_(c), X)), lambda c, d, x, y: c * x),
    ("right factor", lambda c, d: Node("mul", (X, c_(c))), lambda c, d, x, y: x * c),
    ("two factors", lambda c, d: Node("mul", (c_(c), Node("mul", (c_(d), X)))), lambda c, d, x, y: c * d * x),
    ("divisor", lambda c, d: Node("div", (X, c_(c))), lambda c, d, x, y: x / c),
    ("dividend", lambda c, d: Node("div", (c_(c), X)), lambda c, d, x, y: c / x),
    ("exponent", lambda c, d: Node("pow", (X, c_(c))), lambda c, d, x, y: x ** c),
    ("base", lambda c, d: Node("pow", (c_(c), X)), lambda c, d, x, y: c ** x),
    ("after +", lambda c, d: Node("add", (Y, Node("mul", (c_(c), X)))), lambda c, d, x, y: y + c * x),
    ("after minus", lambda c, d: Node("sub", (Y, Node("mul", (c_(c), X)))), lambda c, d, x, y: y - c * x),
    ("term after +", lambda c, d: Node("add", (Y, c_(c))), lambda c, d, x, y: y + c),
    ("term after minus", lambda c, d: Node("sub", (Y, c_(c))), lambda c, d, x, y: y - c),
    ("first term", lambda c, d: Node("sub", (c_(c), Y)), lambda c, d, x, y: c - y),
    ("negated", lambda c, d: Node("neg", (c_(c),)), lambda c, d, x, y: -c),
    ("negated factor", lambda c, d: Node("neg", (Node("mul", (c_(c), X)),)), lambda c, d, x, y: -(c * x)),
    ("exponent of a sum", lambda c, d: Node("pow", (Node("add", (X, c_(c))), c_(d))),
     lambda c, d, x, y: (x + c) ** d),
    ("base and exponent", lambda c, d: Node("pow", (c_(c), c_(d))), lambda c, d, x, y: c ** d),
    ("inside a function", lambda c, d: Node("cos", (Node("mul", (c_(c), X)),)), lambda c, d, x, y: math.cos(c * x)),
    ("sum of products", lambda c, d: Node("add", (Node("mul", (c_(c), X)), Node("mul", (c_(d), Y)))),
     lambda c, d, x, y: c * x + d * y),
]


def _value(v) -> float:
    return float(sympy.sympify(v).subs({M: DIMS["m"], N: DIMS["n"]}))


@pytest.mark.parametrize("name, build, value", POSITIONS, ids=[p[0] for p in POSITIONS])
@given(c=CONSTANTS, d=CONSTANTS, x=st.sampled_from([0.7, 1.3, 2.0]), y=st.sampled_from([-1.1, 0.4]))
def test_printed_constants_read_back_as_the_same_number(name, build, value, c, d, x, y):
    cv, dv = _value(c), _value(d)
    with np.errstate(all="ignore"):
        try:
            want = value(cv, dv, x, y)
        except (ZeroDivisionError, OverflowError, ValueError):
            assume(False)
    assume(isinstance(want, float) and math.isfinite(want) and abs(want) < 1e12)
    text = to_text(build(c, d))
    assert "*" not in text and "**" not in text, text
    try:
        got = read(text, {"x": x, "y": y, **DIMS})
    except (ZeroDivisionError, OverflowError):
        raise AssertionError(f"{text!r} does not evaluate") from None
    assert isinstance(got, float) and got == pytest.approx(want, rel=1e-9, abs=1e-12), \
        f"{text!r} reads as {got}, but the expression is {want} (c={c}, d={d})"


@pytest.mark.parametrize("formula, shapes, flags, want", [
    ("sum(x ** (1/3))", ["x=n"], [], "∂ℓ/∂x = 1/3·x^(−2/3)    [n]"),
    ("sum((2/3) ** (x*y))", ["x=n", "y=n"], [], "∂ℓ/∂x = log(2/3)·(2/3)^(x ⊙ y) ⊙ y    [n]"),
    ("mean(X)", ["X=m,n"], [], "∂ℓ/∂X = 1/(m·n)·𝟙_(m×n)    [m×n]"),
    ("mean(x)**2 - 0.2*mean(x*x)", ["x=n"], ["--hessian", "--wrt", "x"], "∂²ℓ/∂x² = 2/n²·𝟙ₙ 𝟙ₙᵀ − 2/(5·n)·Iₙ    [n×n]"),
    ("mean(tanh(x)) * mean(x)", ["x=n"], ["--hessian", "--wrt", "x"],
     "∂²ℓ/∂x² = 1/n²·𝟙ₙ (1 − x1²)ᵀ + 1/n²·(1 − x1²) 𝟙ₙᵀ − 2/n·mean(x)·diag((1 − x1²) ⊙ x1)    [n×n]"),
    ("0.1*sum(x) + 1e-8*sum(x)", ["x=n"], [], "∂ℓ/∂x = 0.10000001·𝟙ₙ    [n]"),
])
def test_constants_print_as_mathematics(formula, shapes, flags, want):
    code, out, err = cli("derive", formula, *[a for s in shapes for a in ("-s", s)], *flags)
    assert code == 0, err
    assert want in out.splitlines(), out


# ----- JSON: shared names, linear size, fields that evaluate right -----

def nested(n: int) -> str:
    """e_0 = x0, e_i = sin(e_{i-1}·x_i) + e_{i-1} (as bench/derive_scaling.py writes it): each e_i is used
    twice, so an expression printed without shared names doubles with every level."""
    return "; ".join(["e0 = x0"] + [f"e{i} = sin(e{i-1} * x{i}) + e{i-1}" for i in range(1, n + 1)])


def _json(*argv) -> tuple[dict, int]:
    code, out, err = cli("derive", *argv, "--json")
    assert code == 0, err
    return json.loads(out), len(out.encode())


def test_json_size_grows_linearly_with_depth():
    sizes = {n: _json(nested(n), "--no-check")[1] for n in (8, 16)}     # (it was 25 kB and 5 MB)
    assert sizes[16] / sizes[8] < 2.5, sizes
    sizes = {n: _json(nested(n), "--no-check")[1] for n in (50, 100)}
    assert sizes[100] / sizes[50] < 2.5, sizes
    data, size = _json(nested(300), "--no-check")
    assert len(data["gradients"]) == 301 and size < 2_000_000, size
    steps = [len(s["local"]) + len(s["adjoint"]) for s in data["steps"]]
    assert max(steps) < 400, max(steps)                      # each step's text is short at any depth


def test_steps_text_grows_linearly_with_depth():
    for a, b in [(8, 16), (30, 60)]:
        sizes = {n: len(cli("derive", nested(n), "--no-check", "--steps")[1]) for n in (a, b)}
        assert sizes[b] / sizes[a] < 2.5, sizes


def _exec_numpy(data: dict, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Evaluate the JSON's NumPy fields: the where-definitions in order, then each gradient."""
    env = {"np": np, **values}
    for name, entry in data["where"].items():
        env[name] = eval(entry["numpy"], env)               # test-side: our own output, not user input
    return {n: np.asarray(eval(g["numpy"], env), float) for n, g in data["gradients"].items()}


def _names_used(text: str) -> set[str]:
    return set(re.findall(r"\b[A-Za-z_][A-Za-z0-9_]*\b", text))


def test_json_fields_of_a_deep_formula_evaluate_to_the_gradient():
    torch = pytest.importorskip("torch")
    n = 12                                        # deep enough that printing without shared names blows up
    data, _ = _json(nested(n))
    rng = np.random.default_rng(3)
    xs = {f"x{i}": rng.uniform(-1, 1) for i in range(n + 1)}
    got = _exec_numpy(data, xs)
    t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in xs.items()}
    e = t["x0"]
    for i in range(1, n + 1):
        e = torch.sin(e * t[f"x{i}"]) + e
    e.backward()
    for k in xs:
        assert got[k] == pytest.approx(t[k].grad.item(), rel=1e-10), k
    # every name a text, LaTeX or step field uses is a variable, a function or defined in `where`
    known = set(xs) | set(data["where"]) | {"sin", "cos", "sin'", "np"}
    for g in data["gradients"].values():
        assert _names_used(g["text"]) <= known, g["text"]
    for s in data["steps"]:
        assert _names_used(s["adjoint"]) <= known | {"e" + str(i) for i in range(n + 1)}, s["adjoint"]
    for w in data["where"].values():
        assert _names_used(w["text"]) <= known, w["text"]
        assert w["latex"] and w["numpy"]


def test_json_fields_of_a_network_evaluate_to_the_gradient():
    torch = pytest.importorskip("torch")
    formula = "0.5 * norm(W2 @ tanh(W1 @ x + b) - y)**2 + sum(sigmoid(W1 @ x))"
    shapes = {"W1": (4, 3), "W2": (2, 4), "x": (3,), "b": (4,), "y": (2,)}
    data, _ = _json(formula, *[a for k, v in shapes.items() for a in ("-s", f"{k}={','.join(map(str, v))}")])
    rng = np.random.default_rng(5)
    values = {k: rng.standard_normal(v) for k, v in shapes.items()}
    got = _exec_numpy(data, values)
    t = {k: torch.tensor(v, requires_grad=True) for k, v in values.items()}
    loss = 0.5 * torch.sum((t["W2"] @ torch.tanh(t["W1"] @ t["x"] + t["b"]) - t["y"]) ** 2) + \
        torch.sum(torch.sigmoid(t["W1"] @ t["x"]))
    loss.backward()
    for k in shapes:
        np.testing.assert_allclose(got[k], t[k].grad.numpy(), rtol=1e-10, atol=1e-12)


def test_hessian_json_has_the_gradients_and_latex_names():
    torch = pytest.importorskip("torch")
    code, out, err = cli("derive", "sum(tanh(W @ tanh(W @ x)))", "-s", "W=3,3", "-s", "x=3", "--hessian", "--wrt", "x",
                         "--json")
    assert code == 0, err
    data = json.loads(out)
    assert set(data["gradients"]) == {"x"}
    assert any(re.fullmatch(r"x\d", name) for name in data["where"])                   # it names x2, …
    for field in [data["gradients"]["x"], data["hvp"]["x"], data["hessian"]] + list(data["where"].values()):
        assert not re.search(r"(?<![A-Za-z\\])(x|t)\d", field["latex"]), field["latex"]   # x1 -> x_{1} in LaTeX
    rng = np.random.default_rng(7)
    W, x, v = rng.standard_normal((3, 3)), rng.standard_normal(3), rng.standard_normal(3)
    env = {"np": np, "W": W, "x": x, data["directions"]["x"]: v}
    for name, entry in data["where"].items():
        env[name] = eval(entry["numpy"], env)
    g, hv, H = (np.asarray(eval(f["numpy"], env), float) for f in (data["gradients"]["x"], data["hvp"]["x"],
                                                                      data["hessian"]))
    tx = torch.tensor(x, requires_grad=True)
    f = lambda z: torch.sum(torch.tanh(torch.tensor(W) @ torch.tanh(torch.tensor(W) @ z)))  # noqa: E731
    np.testing.assert_allclose(g, torch.autograd.grad(f(tx), tx)[0].numpy(), rtol=1e-10)
    Ht = torch.autograd.functional.hessian(f, tx).numpy()
    np.testing.assert_allclose(H, Ht, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(hv, Ht @ v, rtol=1e-9, atol=1e-12)


def test_hessian_latex_and_json_name_intermediates_alike():
    from symbackprop.hessian import second_order
    so = second_order(sb.derive("sum(tanh(W @ tanh(W @ x)))", {"W": "n,n", "x": "n"}, wrt=["x"]), wrt=["x"])
    latex = so.latex()
    data = so.to_dict()
    assert re.search(r"x_\{\d\}", latex)
    for field in [data["hvp"]["x"], data["hessian"]]:
        assert not re.search(r"(?<![A-Za-z\\{_])x\d", field["latex"]), field["latex"]


# ----- terminals that are not UTF-8 -----

MLP = ["0.5 * norm(W2 @ relu(W1 @ x + b) - y)**2", "-s", "W1=h,d", "-s", "W2=k,h", "-s", "x=d", "-s", "b=h", "-s", "y=k"]
LONG_BAD = "sum(x) + " * 12 + "sum(x·y) + " + "sum(x) + " * 12 + "sum(x)"

#: (arguments, expected exit code, a line the output must hold in its ASCII spelling)
COMMANDS = [
    (["derive", *MLP, "--steps"], 0, "dL/dW1 = (W2^T x4 (.) relu'(x1)) x^T    [hxd]"),
    (["derive", *MLP, "--steps", "--latex"], 0, "x_{1} &= W_{1} x + b \\quad (h) \\\\"),
    (["derive", *MLP, "--json"], 0, '"text": "x4 x2\\u1d40"'),
    (["derive", "mean(x)**2 - 0.2*mean(x*x)", "-s", "x=n", "--hessian", "--hvp", "--wrt", "x"], 0,
     "d^2L/dx^2 = 2/n^2*ones_n ones_n^T - 2/(5*n)*I_n    [nxn]"),
    (["derive", "sum(inv(X))", "-s", "X=n,n"], 0, "dL/dX = -X^(-T) ones_(nxn) X^(-T)    [nxn]"),
    (["check", "x @ A @ x", "-s", "A=n,n", "-s", "x=n", "--wrt", "x", "--claim", "A @ x"], 1, "A x"),
    (["codegen", *MLP, "-o", "{tmp}/mlp.py"], 0, "wrote"),
    (["codegen", *MLP], 0, "def value_and_grad"),
    (["graph", *MLP, "-o", "{tmp}/g.dot"], 0, "wrote"),
    (["graph", *MLP], 0, "digraph"),
    (["gradcheck", "{tmp}/mlp.py"], 0, "all gradients agree"),
    (["relu", "--steps", "20", "--no-plots"], 0, "us a step"),
    (["derive", LONG_BAD, "-s", "x=n", "-s", "y=m"], 2, "error: "),         # x·y: lengths n and m differ
    (["derive", "sum(x) + ‖x‖ +", "-s", "x=n", "--notation", "numpy"], 2, "           ^^"),
    (["derive", "--help"], 0, "--hessian"),
]

DRIVER = r"""
import json, sys, traceback
from symbackprop.cli import main
for argv in json.loads(sys.argv[1]):
    print("=====", flush=True); print("=====", file=sys.stderr, flush=True)
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    except BaseException:
        traceback.print_exc()
        code = "traceback"
    sys.stdout.flush(); sys.stderr.flush()
    print(f"\n##### exit {code}", flush=True)
"""


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
def test_every_command_writes_to_a_terminal_that_is_not_utf8(encoding, tmp_path):
    argvs = [[a.replace("{tmp}", str(tmp_path)) for a in argv] for argv, _, _ in COMMANDS]
    env = {**os.environ, "PYTHONIOENCODING": encoding, "PYTHONPATH": ROOT}
    r = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(argvs)], capture_output=True, env=env, cwd=ROOT,
                       timeout=600)
    out, err = r.stdout.decode(encoding), r.stderr.decode(encoding)
    assert r.returncode == 0, err
    assert "Traceback" not in out + err and "UnicodeEncodeError" not in out + err, err[-3000:]
    assert (out + err).isascii(), [c for c in out + err if not c.isascii()][:10]
    outs, errs = out.split("=====\n")[1:], err.split("=====\n")[1:]
    assert len(outs) == len(COMMANDS) == len(errs)
    for (argv, code, want), o, e in zip(COMMANDS, outs, errs):
        assert o.rstrip().endswith(f"##### exit {code}"), (argv[:2], o[-500:], e[-500:])
        assert want in o + e, (argv[:2], want, (o + e)[:3000])
    # the JSON is valid and its text exact (escaped, not spelled in ASCII)
    assert json.loads(outs[2].rsplit("#####", 1)[0])["gradients"]["W2"]["text"] == "x4 x2ᵀ"
    bad = errs[next(i for i, c in enumerate(COMMANDS) if LONG_BAD in c[0])].splitlines()                                # the caret sits under `x*y` in the shortened line
    line, caret = next((a, b) for a, b in zip(bad, bad[1:]) if b.strip().startswith("^"))
    assert line[caret.index("^"):caret.index("^") + len(caret.strip())] == "x*y", (line, caret)


def test_the_entry_point_writes_ascii_where_stdout_is_ascii():
    env = {**os.environ, "PYTHONIOENCODING": "ascii", "PYTHONPATH": ROOT}
    r = subprocess.run([sys.executable, "-m", "symbackprop", "derive", "x @ B @ x", "-s", "x=n", "-s", "B=n,n"],
                       capture_output=True, env=env, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr.decode("ascii", "replace")
    assert r.stdout.decode("ascii").splitlines()[1] == "dL/dx = B^T x + B x    [n]"


# ----- derive --steps with --latex -----

def _balanced(tex: str) -> bool:
    depth = 0
    for ch in tex.replace("\\{", "").replace("\\}", ""):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0 and tex.count("\\left") == tex.count("\\right")


def test_steps_print_in_latex():
    code, out, err = cli("derive", *MLP, "--steps", "--latex")
    assert code == 0, err
    steps, grads = out.strip().split("\n\n")
    assert steps.startswith("\\begin{aligned}") and steps.endswith("\\end{aligned}") and _balanced(steps)
    assert "x_{1} &= W_{1} x + b \\quad (h) \\\\" in steps
    assert ("\\frac{\\partial \\ell}{\\partial x} &= W_{1}^\\top \\frac{\\partial \\ell}{\\partial x_{1}} = "
            "W_{1}^\\top \\left(W_{2}^\\top x_{4} \\odot \\operatorname{relu}'\\left(x_{1}\\right)\\right) \\quad (d)") in steps
    assert "∂" not in out and "_adj_" not in out
    assert grads == cli("derive", *MLP, "--latex")[1].strip()


def test_latex_steps_of_a_deep_formula_define_their_shared_names():
    d = sb.derive(nested(12), check=False)
    tex = d.steps(style="latex")
    assert _balanced(tex)
    used = set(re.findall(r"\bt_\{(\d+)\}", tex))
    defined = set(re.findall(r"^t_\{(\d+)\} &=", tex, re.M))
    assert used and used == defined


def test_steps_with_second_order_print_or_refuse():
    argv = ["derive", "x @ A @ x", "-s", "A=n,n", "-s", "x=n", "--hessian", "--wrt", "x", "--steps"]
    code, out, err = cli(*argv)
    assert code == 0 and out.startswith("Forward pass:\n  x1 = Aᵀ x    [n]") and "∂²ℓ/∂x² = Aᵀ + A    [n×n]" in out
    code, out, err = cli(*argv, "--latex")
    assert code == 0 and "&\\text{Forward pass:}" in out and "\\frac{\\partial^2 \\ell}" in out
    code, out, err = cli(*argv, "--json")
    assert code == 2 and out == "" and err.startswith("error: --steps with --hessian") and "Traceback" not in err


# ----- every name printed is defined, and means one thing -----

def test_shared_names_never_take_a_variables_name():
    formula = "; ".join(["e0 = t0"] + [f"e{i} = sin(e{i-1} * t{i}) + e{i-1}" for i in range(1, 9)])
    code, out, err = cli("derive", formula, "--no-check")
    assert code == 0, err
    defined = re.findall(r"^  (\w+) = ", out, re.M)
    assert any(re.fullmatch(r"t\d+", n) for n in defined), out
    assert not set(defined) & {f"t{i}" for i in range(9)}, out


def test_a_renamed_variable_prints_as_itself():
    code, out, err = cli("derive", "e0 = x0; e1 = sin(e0 * x1) + e0; e1")
    assert code == 0, err
    assert "∂ℓ/∂x0 = x1·cos(x0·x1) + 1    [scalar]" in out.splitlines(), out
    assert "e0" not in out


@pytest.mark.parametrize("layout", ["gradient", "numerator"])
def test_json_gradients_read_as_the_text_output(layout):
    code, text, err = cli("derive", *MLP, "--layout", layout, "--no-check")
    assert code == 0, err
    data, _ = _json(*MLP, "--layout", layout, "--no-check")
    for name, g in data["gradients"].items():
        assert f"∂ℓ/∂{name} = {g['text']}    [{'×'.join(g['shape'])}]" in text.splitlines(), (name, g["text"])


def test_steps_and_second_order_share_one_naming():
    from symbackprop.hessian import second_order
    so = second_order(sb.derive(nested(6), check=False), wrt=["x1", "x2"], check=False)
    hess = so._names()
    steps = so.d._step_names(hess)
    by_name: dict[str, set] = {}
    for node, name in list(hess.items()) + list(steps.items()):
        by_name.setdefault(name, set()).add(node)
    assert {k: v for k, v in by_name.items() if len(v) > 1} == {}
    assert sum(bool(re.fullmatch(r"t\d+", k)) for k in by_name) >= 4
    code, out, err = cli("derive", nested(6), "--hvp", "--wrt", "x1,x2", "--steps", "--no-check")
    assert code == 0 and out.startswith("Forward pass:") and "where" in out.split("Gradients")[0], err
