"""Regressions of code generation (issues 11 and 17): each test failed on the code before its fix."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

import symbackprop as sb
from symbackprop.emit import emit_module, load_source
from symbackprop.testing import check_grads, random_inputs

ROOT = Path(__file__).resolve().parent.parent


def _cli(*args):
    """Run the command line in-process: (exit code, stdout, stderr)."""
    import contextlib
    import io

    from symbackprop import cli
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(list(args))
    return subprocess.CompletedProcess(args, rc, out.getvalue(), err.getvalue())


def _loop_vs_batch(formula, shapes, batch, wrt=None, square=(), B=3, seed=0):
    """The batched module against a Python loop over the per-example module: the value is the mean
    of the values, a batched input's gradient is its example's gradient / B, any other the mean."""
    program = sb.parse_formula(formula, shapes)
    mb = load_source(emit_module(program, wrt=wrt, batch=batch))
    m1 = load_source(emit_module(program, wrt=wrt))
    rng = np.random.default_rng(seed)

    def draw():
        p = random_inputs(m1, {d: 3 + i for i, d in enumerate(m1.DIMS)}, rng)
        for name in square:
            p[name] = p[name] + p[name].shape[0] * np.eye(p[name].shape[0])
        return p
    shared = draw()
    per = [{**shared, **{n: draw()[n] for n in batch}} for _ in range(B)]
    stacked = {**shared, **{n: np.stack([np.asarray(e[n], float) for e in per]) for n in batch}}
    value, grads = mb.value_and_grad(**stacked)
    results = [m1.value_and_grad(**e) for e in per]
    assert np.isclose(value, np.mean([r[0] for r in results]), rtol=1e-10)
    assert np.isclose(mb.forward(**stacked), value, rtol=1e-12)
    for name in mb.WRT:
        each = np.stack([np.asarray(r[1][name], float) for r in results])
        want = each / B if name in batch else each.mean(axis=0)
        assert np.shape(grads[name]) == want.shape, (name, np.shape(grads[name]), want.shape)
        assert np.allclose(grads[name], want, rtol=1e-9, atol=1e-12), name
        assert np.array_equal(mb.grad(**stacked)[name], grads[name]), name
    return mb


# ----- issue 11.1: --batch gradients of inputs that are not batched are summed over the batch -----

BATCH_CASES = [
    # (formula, shapes, batch, wrt, square inputs)
    ("0.5 * norm(y - W @ x)**2", {"W": "k,d", "x": "d", "y": "k"}, ["x", "y"], None, ()),
    ("0.5 * norm(W @ x - y)**2 - u @ V @ c", {"W": "k,d", "x": "d", "y": "k", "u": "k", "V": "k,d", "c": "d"},
     ["x", "y"], ["W", "V"], ()),
    ("a @ inv(X) @ b", {"a": "n", "X": "n,n", "b": "n"}, ["a"], None, ("X",)),
    ("norm(diag(B @ B.T - A))**2", {"B": "n,m", "A": "n,n"}, ["B"], None, ()),
    ("sum(diag(-u/(norm(C)**2+1)))", {"u": "n", "C": "m,n"}, ["u"], None, ()),
    ("-sum(W @ x)", {"W": "k,d", "x": "d"}, ["x"], None, ()),                # −1 shared by every gradient
    ("-(x @ x) - c", {"x": "d"}, ["x"], None, ()),                          # scalar input, −1 factor
    ("w @ diag(-u) @ v", {"u": "n", "v": "n", "w": "n"}, ["u"], None, ()),
    ("sum(diag(outer(u, v)) * w)", {"u": "n", "v": "n", "w": "n"}, ["u"], None, ()),
    ("sum(diag(outer(u, v)) * w)", {"u": "n", "v": "n", "w": "n"}, ["u", "v"], None, ()),
]


@pytest.mark.parametrize("formula,shapes,batch,wrt,square", BATCH_CASES)
def test_batch_gradients_match_a_loop_whatever_the_sign(formula, shapes, batch, wrt, square):
    mb = _loop_vs_batch(formula, shapes, batch, wrt, square)
    if not square:                                   # random points of inv(X) may be ill-conditioned
        assert all(r.ok for r in check_grads(mb, seed=1).values())


def test_diag_of_a_negated_vector_times_a_vector_is_emitted():
    """`w @ diag(-u) @ v` raised KeyError in the emitter (diag(v) u = v ⊙ u built a node the plan lacked)."""
    m = load_source(emit_module(sb.derive("w @ diag(-u) @ v", {"u": "n", "v": "n", "w": "n"})))
    rng = np.random.default_rng(0)
    w, u, v = (rng.standard_normal(4) for _ in range(3))
    value, g = m.value_and_grad(w=w, u=u, v=v)
    assert np.isclose(value, -np.sum(w * u * v))
    assert np.allclose(g["w"], -u * v) and np.allclose(g["u"], -w * v) and np.allclose(g["v"], -w * u)
    r = _cli("codegen", "w @ diag(-u) @ v", "-s", "u=n", "-s", "v=n", "-s", "w=n")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert "np.outer" not in r.stdout and "np.diag" not in r.stdout     # diag(w vᵀ) is w * v, no n×n matrix


# ----- issue 11.2: constants that do not fit a float64 -----

@pytest.mark.parametrize("formula", ["sum(x * 1e308 * 10)", "sum(x / 1e-320)", "sum(x / 1e-400)",
                                     "sum((x * 1e200)**2)"])
def test_constants_beyond_float64_are_one_clean_error_in_every_command(formula):
    with pytest.raises(sb.FormulaError, match="not a finite 64-bit float"):
        sb.derive(formula, {"x": "n"})
    for argv in (["derive", formula, "-s", "x=n"], ["codegen", formula, "-s", "x=n"],
                 ["graph", formula, "-s", "x=n"], ["check", formula, "--wrt", "x", "--claim", "x", "-s", "x=n"],
                 ["check", "sum(x)", "--wrt", "x", "--claim", formula.replace("sum", ""), "-s", "x=n"]):
        if argv[0] == "check" and argv[1] == "sum(x)" and "**2" in formula:
            continue                                 # that claim is fine; only its derivative overflows
        r = _cli(*argv)
        assert r.returncode == 2 and "Traceback" not in r.stderr, (argv, r.stderr)
        assert "not a finite 64-bit float" in r.stderr, (argv, r.stderr)


# ----- issue 11.1: codegen checks the module it writes -----

def test_codegen_refuses_a_module_its_own_self_check_rejects(tmp_path, monkeypatch, capsys):
    """Whatever goes wrong in the emitter, a module gradcheck would reject is never written (exit 3)."""
    from symbackprop import cli
    from symbackprop.commands import codegen

    real = codegen.emit_module

    def wrong(*args, **kwargs):                      # an emitter bug: a gradient off by a factor
        return real(*args, **kwargs).replace("grad_W = ", "grad_W = 1.5 * ")
    monkeypatch.setattr(codegen, "emit_module", wrong)
    out = tmp_path / "m.py"
    argv = ["codegen", "0.5 * norm(W @ x - y)**2", "-s", "W=k,d", "-s", "x=d", "-s", "y=k", "--batch", "x,y"]
    assert cli.main(argv + ["-o", str(out)]) == 3
    err = capsys.readouterr().err
    assert "self-check of the generated module failed" in err and "`W`" in err
    assert not out.exists() and list(tmp_path.iterdir()) == []
    assert cli.main(argv) == 3 and "def value_and_grad" not in capsys.readouterr().out   # nor printed
    monkeypatch.setattr(codegen, "emit_module", real)
    assert cli.main(argv + ["-o", str(out)]) == 0 and out.exists()
    assert _cli("gradcheck", str(out)).returncode == 0


def test_check_module_accepts_good_modules_and_notes_when_nothing_was_checked():
    from symbackprop.emit import check_module
    from symbackprop.errors import InternalError
    d = sb.derive("sum(log(x)) + logdet(S)", {"x": "n", "S": "n,n"})
    src = emit_module(d)
    assert check_module(src, d) is None
    with pytest.raises(InternalError, match="`x`"):
        check_module(src.replace("grad_x = ", "grad_x = -"), d)
    with pytest.raises(InternalError, match="raised ZeroDivisionError"):         # a module that crashes
        check_module(src.replace("return value, {", "return value, 1 / 0 or {"), d)
    d = sb.derive("sum(softplus(A @ x))", {"A": "m,n", "x": "n"})
    for dtype in ("float64", "float32"):
        src = emit_module(d, wrt=["x"], hvp=True, hessian=True, dtype=dtype)
        assert check_module(src, d) is None
        with pytest.raises(InternalError, match=r"hessian\(\) with respect to `x`"):
            check_module(src.replace("def hessian(A, x):", "def hessian(A, x):\n    return 2 * _hessian(A, x)\n\n\ndef _hessian(A, x):"), d)
    d = sb.derive("sum(log(-x*x - 1))", {"x": "n"}, check=False)            # finite nowhere
    assert "not checked" in check_module(emit_module(d, batch=["x"]), d)


# ----- issue 11.3: user names never shadow the module's own -----

def _module_names():
    """Every name a generated module defines or uses in its functions, that a user could also take."""
    from symbackprop.parse import NAME_RE, RESERVED
    names = set()
    for formula, shapes, kw in [(NAMES_BASE, NAMES_SHAPES, dict(batch=["x", "y"], dtype="float32")),
                                (NAMES_BASE, NAMES_SHAPES, dict(wrt=["x", "c"], hvp=True)),
                                (NAMES_BASE, NAMES_SHAPES, dict(wrt=["x"], hvp=True, hessian=True, dtype="float32"))]:
        m = load_source(emit_module(sb.parse_formula(formula, shapes), **kw))
        names |= {n for n in vars(m) if not n.startswith("__")}
        names |= {v for f in ("forward", "value_and_grad", "grad", "hvp", "hessian", "_dims") if hasattr(m, f)
                  for v in getattr(m, f).__code__.co_varnames}
    names = {n for n in names if NAME_RE.match(n) and n not in RESERVED}
    names -= {"W", "x", "y", "u", "c", "z", "k", "d"}                           # the formula's own names
    # one of each generated family (x1, x2, ...; g_x1, ...; grad_W, ...) is enough
    out, seen = [], set()
    for n in sorted(names):
        family = re.sub(r"\d+$", "#", n) if re.fullmatch(r"x\d+", n) else (n.split("_")[0] + "_" if re.match(r"(g|grad|v)_", n) else n)
        if family not in seen:
            seen.add(family)
            out.append(n)
    return out


NAMES_BASE = "z = W @ x; 0.5 * norm(z - y)**2 + c * sum(softmax(x)) + sum(diag(u) @ W.T)"
NAMES_SHAPES = {"W": "k,d", "x": "d", "y": "k", "u": "d"}


def test_module_names_are_found():
    names = set(_module_names())
    assert {"DTYPE", "FORMULA", "INPUTS", "SHAPES", "WRT", "DIMS", "forward", "value_and_grad", "grad", "hvp",
            "hessian", "HVP_WRT", "HESSIAN_WRT", "B", "direction", "x1"} <= names, names


@pytest.mark.parametrize("name", _module_names())
@pytest.mark.parametrize("role", ["input", "intermediate", "dim"])
def test_user_names_never_collide_with_the_modules_names(name, role):
    formula, shapes = {
        "input": (NAMES_BASE.replace("c *", f"{name} *"), NAMES_SHAPES),
        "intermediate": (NAMES_BASE.replace("z", name), NAMES_SHAPES),
        "dim": (NAMES_BASE, {k: v.replace("d", name) for k, v in NAMES_SHAPES.items()}),
    }[role]
    program = sb.parse_formula(formula, shapes)
    rng = np.random.default_rng(0)
    for kw in (dict(batch=["x", "y"], dtype="float32"), dict(wrt=["x"], hvp=True, hessian=True, dtype="float32")):
        m = load_source(emit_module(program, **kw))
        assert all(r.ok for r in check_grads(m, seed=1, trials=1).values()), (name, role, kw)
        p = random_inputs(m, None, rng)
        assert np.isfinite(m.forward(**p)) and m.grad(**p).keys() == set(m.WRT)
        if kw.get("hvp"):
            assert m.hvp(rng.standard_normal(np.shape(p["x"])), **p).shape == np.shape(p["x"])
            assert m.hessian(**p).shape == 2 * np.shape(p["x"])


# ----- issue 11.4: numerically stable forms at |z| = 1000 -----

def _mp(f, z):
    """f at z in 1000-digit arithmetic (1 - sigmoid(1000) needs 435 of them): the reference value."""
    import mpmath
    with mpmath.workdps(1000):
        return float(f(mpmath.mpf(z)))


def _mp_grad(f, z):
    import mpmath
    with mpmath.workdps(1000):
        return float(mpmath.diff(f, mpmath.mpf(z)))


def _mp_sigmoid(z):
    import mpmath
    return 1 / (1 + mpmath.exp(-z))


def _mp_softplus(z):
    import mpmath
    return mpmath.log(1 + mpmath.exp(z))


Y = 0.3
STABLE = {
    "y*log(sigmoid(z)) + (1-y)*log(1-sigmoid(z))": lambda z: Y * __import__("mpmath").log(_mp_sigmoid(z))
    + (1 - Y) * __import__("mpmath").log(1 - _mp_sigmoid(z)),
    "log(1 - sigmoid(z))": lambda z: __import__("mpmath").log(1 - _mp_sigmoid(z)),
    "1/(1+exp(-z))": _mp_sigmoid,
    "3/(1+exp(z))": lambda z: 3 * _mp_sigmoid(-z),
    "log(2+exp(z))": lambda z: __import__("mpmath").log(2 + __import__("mpmath").exp(z)),
    "log(exp(z) + 0.5)": lambda z: __import__("mpmath").log(0.5 + __import__("mpmath").exp(z)),
    "log(softplus(z))": lambda z: __import__("mpmath").log(_mp_softplus(z)),
    # found by the long run: sigmoid(z) rounds to a denormal (or 0) below z ≈ -708, so sigmoid(z) ** p lost its
    # digits there (and came out 0, inf or NaN at -1000); now exp(-p·softplus(-z)) (rules_stable)
    "sigmoid(z) ** 0.5": lambda z: _mp_sigmoid(z) ** 0.5,
    "sigmoid(z) ** (-0.5)": lambda z: _mp_sigmoid(z) ** -0.5,
    "sigmoid(z) ** y": lambda z: _mp_sigmoid(z) ** Y,
    "sigmoid(z) ** tanh(y)": lambda z: _mp_sigmoid(z) ** __import__("mpmath").tanh(Y),
}


@pytest.mark.parametrize("formula", sorted(STABLE))
def test_stable_forms_value_and_gradient_at_large_inputs(formula):
    exact = STABLE[formula]
    m = load_source(emit_module(sb.parse_formula(formula)))
    for z in (1000.0, -1000.0, 40.0, -30.0, -15.0, 0.7, -2.0):
        p = {"z": z, "y": Y} if "y" in m.INPUTS else {"z": z}
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            value, g = m.value_and_grad(**p)
        want = _mp(exact, z)
        rtol = 1e-10 if formula == "log(softplus(z))" else 1e-12        # see emit.SOFTPLUS_TAIL
        assert np.isclose(value, want, rtol=rtol, atol=1e-15), (z, value, want)
        want = _mp_grad(exact, z)
        assert np.isclose(g["z"], want, rtol=1e-9, atol=1e-15), (z, g["z"], want)
    assert all(r.ok for r in check_grads(m).values())


def test_stable_forms_vectorised_and_in_a_batch():
    m = load_source(emit_module(sb.parse_formula("sum(y * log(sigmoid(z)) + (1 - y) * log(1 - sigmoid(z)))",
                                                 {"z": "n", "y": "n"}), batch=["z", "y"]))
    z = np.array([[1000.0, -1000.0, 40.0], [-40.0, 3.0, 0.0]])
    y = np.array([[1.0, 0.0, 0.5], [0.2, 1.0, 0.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        value, g = m.value_and_grad(z=z, y=y)
    assert np.isclose(value, np.sum(-y * np.logaddexp(0.0, -z) - (1 - y) * np.logaddexp(0.0, z)) / 2)
    assert np.allclose(g["z"], (y - np.exp(-np.logaddexp(0.0, -z))) / 2, atol=1e-15)


# ----- issue 17: dtype, emit --check, the Newton script -----

FLOAT32_CASES = [
    ("0.5 * norm(A @ x - z)**2 + c * sum(0 * A)", {"A": "m,n", "x": "n", "z": "m"}, {}),
    ("0.5 * norm(A @ x - z)**2 + 2 * c", {"A": "m,n", "x": "n", "z": "m"}, dict(batch=["x", "c"])),
    ("sum(softplus(A @ x)) + c * c", {"A": "m,n", "x": "n"}, dict(wrt=["x"], hvp=True, hessian=True)),
    ("sum(softplus(A @ x)) + c * c", {"A": "m,n", "x": "n"}, dict(wrt=["x", "c"], hvp=True)),
    ("3 * c", {}, dict(hessian=True, hvp=True)),
]


@pytest.mark.parametrize("formula,shapes,kw", FLOAT32_CASES)
def test_float32_module_returns_float32_whatever_the_inputs(formula, shapes, kw):
    m = load_source(emit_module(sb.parse_formula(formula, shapes), dtype="float32", **kw))
    p = random_inputs(m, {"m": 3, "n": 2, "B": 4}, np.random.default_rng(0))   # float64 arrays, Python floats

    def f32(x):
        return np.asarray(x).dtype == np.float32 and not isinstance(x, float)
    value, grads = m.value_and_grad(**p)
    assert f32(value) and f32(m.forward(**p)), (type(value), value)
    assert all(f32(g) for g in grads.values()), {n: np.asarray(g).dtype for n, g in grads.items()}
    assert all(f32(g) for g in m.grad(**p).values())
    if hasattr(m, "hvp"):
        direction = {n: np.ones(np.shape(p[n])) for n in m.HVP_WRT}
        out = m.hvp(direction if len(m.HVP_WRT) > 1 else direction[m.HVP_WRT[0]], **p)
        assert all(f32(v) for v in (out.values() if isinstance(out, dict) else [out]))
    if hasattr(m, "hessian"):
        assert f32(m.hessian(**p))
    assert all(r.ok for r in check_grads(m).values())       # gradcheck's tolerances for float32


@pytest.mark.parametrize("extra", [["--batch", "x,y"], ["--wrt", "x", "--hvp", "--hessian"]])
def test_float32_module_passes_gradcheck(tmp_path, extra):
    out = tmp_path / "m32.py"
    r = _cli("codegen", "0.5 * norm(W2 @ tanh(W1 @ x + b) - y)**2", "-s", "W1=h,d", "-s", "W2=k,h", "-s", "x=d",
             "-s", "b=h", "-s", "y=k", "--dtype", "float32", "-o", str(out), *extra)
    assert r.returncode == 0, r.stderr
    r = _cli("gradcheck", str(out))
    assert r.returncode == 0, r.stdout


def test_emit_check_prints_a_summary(capsys):
    from tools.refresh_generated import GENERATED, main
    assert main(["--check"]) == 0
    assert capsys.readouterr().out == f"{len(GENERATED)} generated modules up to date\n"


def test_newton_script_writes_where_it_is_told(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from symbackprop.files import load_file
    newton = load_file(ROOT / "docs/newton_logistic.py", "newton_logistic")
    repo_img = ROOT / "docs/img/newton_vs_gd.png"
    before = repo_img.stat().st_mtime_ns if repo_img.exists() else None
    monkeypatch.chdir(tmp_path)
    newton.main(["--gd-iters", "5"])                               # the default: the current folder
    assert (tmp_path / "newton_vs_gd.png").is_file()
    newton.main(["--gd-iters", "5", "-o", str(tmp_path / "sub.png")])
    assert (tmp_path / "sub.png").is_file()
    assert (repo_img.stat().st_mtime_ns if repo_img.exists() else None) == before


@pytest.mark.parametrize("s", [-50.0, -40.0, -300.0])
def test_generated_sigmoid_keeps_its_relative_accuracy_far_left(s):
    """Found by the long run: the NumPy sigmoid 0.5·(1 + tanh(z/2)) rounds to exactly 0 below z ≈ −37, so
    sigmoid(s) ** tanh(c) with tanh(c) < 0 came out inf (due: a finite number near e^(−s·tanh c))."""
    mod = load_source(emit_module(sb.derive("a + sigmoid(s) ** tanh(c)")))
    value, grads = mod.value_and_grad(a=0.0, s=s, c=-0.05)
    t = np.tanh(-0.05)
    log_sig = -np.logaddexp(0.0, -s)                         # log σ(s), exact to the last bits
    want = np.exp(t * log_sig)
    assert np.isfinite(value) and value == pytest.approx(want, rel=1e-12)
    dsig = 1.0 - np.exp(log_sig)                             # d log σ / ds = 1 − σ(s)
    assert grads["s"] == pytest.approx(want * t * dsig, rel=1e-12)
