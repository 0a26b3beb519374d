"""Fuzzing the front door: the parser and the derive/codegen/graph commands get random and
hostile text (Hypothesis text strategies and a grammar-aware mutator of valid formulas).

Only documented outcomes are allowed: success (exit 0), or one clean message and exit 2
(never a traceback, never exit 3 "this is a bug"), within a time bound, and no file written
on failure. Runs in-process through symbackprop.cli.main; a few subprocess runs check the
real entry point. Example counts come from tests/hypothesis_profiles.py.
"""
from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, note
from hypothesis import strategies as st

import hypothesis_profiles  # noqa: F401
import strategies as S
from symbackprop import SymbackpropError, parse_formula
from symbackprop import expr as E
from symbackprop.cli import main
from symbackprop.sweep import backprop
from symbackprop.emit import MARKER
from symbackprop.parse import MAX_EXPANSION, MAX_FORMULA_CHARS, MAX_GRAPH_NODES, MAX_NESTING
from symbackprop.testing import check_grads, load_module

ROOT = Path(__file__).resolve().parent.parent
REGRESSIONS = Path(__file__).with_name("regressions.json")
#: Wall-clock bound for one in-process command (the slowest documented limit, MAX_EXPANSION, takes ~5 s).
TIME_BOUND = 20.0

HOSTILE_NAMES = ["np", "numpy", "import", "__class__", "__import__", "eval", "exec", "os", "sys", "lambda", "for",
                 "None", "True", "print", "open", "value", "grads", "inputs", "B", "_t0", "x1", "grad_u", "g_z1",
                 "forward", "value_and_grad", "FORMULA", "SHAPES", "isinstance", "ValueError", "ﬁ", "é", "ｘ", "Ω",
                 "x" * 300, "_", "match", "type"]
HOSTILE_NUMBERS = ["1e308", "1e999", "9" * 400, "0x10", "1_000", "1j", "-0.0", "1e-400", "2**1024", "10**10**10", "0.999999**10**9",
                   "1" + "0" * 5000, "0.1e-99999", "3.", ".5", "00", "1__0"]
HOSTILE_TEXT = ['"""', "'''", '"', "'", "\\", "\\n", "\n", "\r", "\r\n", "\t", "\x00", "\u2028", "\x0c", "#", "# \"\"\"",
                ";", "=", "==", ":=", "lambda: 0", "[", "]", "{", "}", "(", ")", ",", ".", ".T", ".__class__", "@", "**",
                "*", "//", "%", "!", "$", "`", "\ud800", "\U0001F600", "\u202e", "٣", "¹", "x'", "relu'", "f(t) =",
                "import os", "__import__('os').system('true')", "\"\"\"; import os; \"\"\""]
SEEDS = ["0.5 * norm(W2 @ relu(W1 @ x + b) - y)**2", "x @ x", "sum(exp(A @ x))", "z = tanh(W @ x); sum(z * z)",
         "logdet(S) + trace(inv(S) @ S)", "f(t) = t**2; g(t) = t; h(a, c) = a**2 + c**2; h(f(x), g(x))",
         "softmax(u) @ v + logsumexp(u)", "mean(sigmoid(A) * A) / (1 + c**2)"]
SEED_SHAPES = ["W1=h,d", "W2=k,h", "x=d", "b=h", "y=k", "A=d,d", "S=n,n", "W=h,d", "u=n", "v=n"]


def run_cli(argv):
    """main(argv) in-process: (exit code, stdout, stderr, seconds). Any exception escaping is a failure."""
    out, err = io.StringIO(), io.StringIO()
    t0 = time.perf_counter()
    previous = signal.signal(signal.SIGALRM, _hung)
    signal.alarm(int(3 * TIME_BOUND))              # a hang fails the test (and shows the input) instead of CI
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main(list(argv))
            except SystemExit as e:                 # argparse usage errors
                rc = e.code if isinstance(e.code, int) else 2
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    return rc, out.getvalue(), err.getvalue(), time.perf_counter() - t0


def _hung(signum, frame):
    raise AssertionError(f"no answer within {3 * TIME_BOUND:.0f} s")


def assert_clean(rc, out, err, seconds, ok=(0, 2)):
    assert rc in ok, (rc, err[-2000:])
    assert "Traceback" not in err and "Traceback" not in out
    if rc == 2:
        assert err.strip(), "exit 2 without a message"
        assert "bug in symbackprop" not in err
    assert seconds < TIME_BOUND, f"took {seconds:.1f} s"


def _arg(text):
    """The formula as a command-line argument: one starting with '-' gets a leading space, else argparse takes
    it for an option (and `--` does not help after a subcommand)."""
    return " " + text if text.startswith("-") else text


def _shape_args(specs):
    return [a for s in specs for a in ("--shape", s)]


def _used_shapes(text, specs=SEED_SHAPES):
    return [s for s in specs if s.split("=")[0] in S._names(text)]


# ----- the grammar-aware mutator -----

@st.composite
def mutated(draw):
    """A valid formula (hand-written or random), then 1-4 mutations that know the grammar."""
    if draw(st.booleans()):
        text = draw(st.sampled_from(SEEDS))
        shapes = _used_shapes(text)
    else:
        f = draw(S.formulas(max_depth=2))
        text, shapes = f.text, [f"{k}={v}" for k, v in f.shapes.items()]
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["insert", "delete", "dup", "name", "number", "nest", "swap", "shape"]))
        i = draw(st.integers(0, len(text)))
        j = draw(st.integers(i, min(len(text), i + 12)))
        if kind == "insert":
            text = text[:i] + draw(st.sampled_from(HOSTILE_TEXT)) + text[i:]
        elif kind == "delete":
            text = text[:i] + text[j:]
        elif kind == "dup":
            text = text[:j] + text[i:j] + text[j:]
        elif kind == "name":
            names = sorted(S._names(text)) or ["x"]
            old = draw(st.sampled_from(names))
            text = text.replace(old, draw(st.sampled_from(HOSTILE_NAMES)), draw(st.integers(1, 3)))
        elif kind == "number":
            text = text[:i] + draw(st.sampled_from(HOSTILE_NUMBERS)) + text[i:]
        elif kind == "nest":
            k = draw(st.sampled_from([1, 3, MAX_NESTING - 5, MAX_NESTING + 5, 3000]))
            f = draw(st.sampled_from(["(", "relu(", "-(", "f("]))
            text = f * k + text + ")" * k
        elif kind == "swap" and len(text) > 1:
            i = min(i, len(text) - 2)
            text = text[:i] + text[i + 1] + text[i] + text[i + 2:]
        elif kind == "shape":
            spec = draw(st.sampled_from(["x=" + draw(st.sampled_from(HOSTILE_NAMES)), "x=0", "x=-1", "x=a,b,c",
                                         "x=10000000", "==", "x=", "W1=h,h", "x=" + "9" * 30, "x=d,d", "q=n"]))
            shapes = shapes + [spec]
    return text, shapes


# ----- properties -----

@given(st.text(max_size=300))
def test_parse_random_text(text):
    try:
        parse_formula(text)
    except SymbackpropError as e:
        assert e.format().startswith("error:") and "bug in symbackprop" not in e.format()


@given(mutated())
def test_parse_mutated(case):
    text, shapes = case
    try:
        parse_formula(text, [s for s in shapes if "=" in s] or None)
    except SymbackpropError as e:
        assert "bug in symbackprop" not in e.format()


@given(mutated())
def test_derive_mutated(case):
    text, shapes = case
    note(repr(text))
    assert_clean(*run_cli(["derive", *_shape_args(shapes), _arg(text)]))


@given(mutated(), st.sampled_from(["codegen", "graph"]))
def test_writers_mutated(case, command):
    """codegen and graph: a clean error writes nothing; a written module imports and is right."""
    text, shapes = case
    note(repr(text))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / ("m.py" if command == "codegen" else "g.dot")
        extra = ["--no-check"] if command == "graph" else []
        rc, stdout, err, sec = run_cli([command, *_shape_args(shapes), "-o", str(out), *extra, _arg(text)])
        assert_clean(rc, stdout, err, sec)
        written = sorted(p.name for p in Path(tmp).iterdir())
        if rc != 0:
            assert written == [], written
            return
        assert written == [out.name], written
        if command == "codegen":
            _assert_module_sound(out, _arg(text))          # FORMULA is the argument, verbatim


def _assert_module_sound(path, source):
    """The generated module: starts with the marker, imports only NumPy, keeps the formula verbatim
    in FORMULA, and its gradients agree with finite differences."""
    src = path.read_text(encoding="utf-8")
    assert src.startswith(MARKER)
    tree = ast.parse(src)
    imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert [ast.unparse(n) for n in imports] == ["import numpy as np"]
    tops = {type(n).__name__ for n in tree.body}
    assert tops <= {"Expr", "Import", "Assign", "FunctionDef"}
    module = load_module(path)
    assert module.FORMULA == source
    results = check_grads(module, trials=1, directions=1)
    bad = {n: r.worst for n, r in results.items() if not r.ok}
    # a random point can sit where the formula is undefined (log of a negative): then both sides are nan
    assert not bad or all(not np.isfinite(w) for w in bad.values()), bad


# ----- hostile inputs, one by one -----

HOSTILE_CASES = [
    ("one MB", "x + " * 250_000 + "x", [], "limit"),
    ("just over the limit", "x" * (MAX_FORMULA_CHARS + 1), [], "limit"),
    ("deep parentheses", "(" * 5000 + "x" + ")" * 5000, [], "nest"),
    ("deep calls", "relu(" * (MAX_NESTING + 1) + "x" + ")" * (MAX_NESTING + 1), [], "nested"),
    ("many minus signs", "-" * 90_000 + "x", [], "nest"),
    ("null byte", "x\x00 + 1", [], "null byte"),
    ("huge literal", "x * 1e999", [], "too large"),
    ("huge integer", "x * " + "9" * 400, [], "too large"),
    ("huge constant power", "x * 10**10**10", [], "too large"),
    # found by the long run: exact, these were rationals of 100 000 to a billion digits (minutes of SymPy, or a
    # ValueError converting them); they round to 0 in float64
    ("tiny literal, huge exponent", "sum(x) * 0.1e-999991010", ["x=n"], "too small"),
    ("tiny literal", "sum(x) * 10.1e-999990", ["x=n"], "too small"),
    ("tiny literal in a product", "0.5 * norm(W2 @ relu(W1 @ x + b) - y)*0.1e-99999*2",
     ["W1=h,d", "x=d", "b=h", "W2=k,h", "y=k"], "too small"),
    # found by the long run: the gradient overflows (x ~ 1e308), so codegen's self-check said exit 3
    ("overflowing gradient", "0.5 * norm(W2 @ relu(W1 @ x + b) - y)*1e308*2",
     ["W1=h,d", "x=d", "b=h", "W2=k,h", "y=k"], None),
    # exact folding of these would build rationals of billions of digits, in one uninterruptible SymPy call
    ("tiny base, huge exponent", "x * 0.999999 ** 1000000000 + x", [], None),
    ("near-one base, huge exponent", "x * 1.0000001 ** 100000000", [], None),
    ("huge power of 2", "x * 2 ** 100000000", [], "too large"),
    ("huge exponent of a variable", "exp(x) ** 1e308 + x ** 99999999", [], None),
    ("python dunder", "x.__class__", [], "attribute"),
    ("import", "__import__('os').system('true')", [], None),
    ("name np", "np * 2", [], "reserved"),
    ("name import", "import", [], "syntax"),
    ("keyword as dim", "sum(x) * a", ["x=for"], None),
    ("lambda", "(lambda: 0)()", [], None),
    ("subscript", "x[0]", ["x=n"], "indexing"),
    ("exponential inlining", "f1(t) = t*t; " + "; ".join(f"f{i}(t) = f{i-1}(f{i-1}(t))" for i in range(2, 40))
     + "; f39(x)", [], "expands"),
    ("non-ASCII intermediate", "aﬁ = 2*x; aﬁ*aﬁ + afi", [], "not a valid"),
    ("lone surrogate", "x\udcff * x", [], "UTF-8"),
    ("lone surrogate in a comment", "x * x # \udcff", [], "UTF-8"),
    ("bidi override", "x\u202e * x", [], None),
    ("empty", "   ", [], "empty"),
    ("shape of huge dim", "sum(x)", ["x=" + "9" * 30], "limit"),
]


@pytest.mark.parametrize("command", ["derive", "codegen", "graph"])
@pytest.mark.parametrize("label,text,shapes,fragment", HOSTILE_CASES, ids=[c[0] for c in HOSTILE_CASES])
def test_hostile(label, text, shapes, fragment, command):
    with tempfile.TemporaryDirectory() as tmp:
        argv = [command, *_shape_args(shapes)]
        if command != "derive":
            argv += ["-o", str(Path(tmp) / ("m.py" if command == "codegen" else "g.dot"))]
        argv += [_arg(text)]                        # a formula may start with a minus sign
        rc, out, err, sec = run_cli(argv)
        assert_clean(rc, out, err, sec)
        if fragment is not None:
            assert rc == 2 and fragment in err, err
        if rc != 0:
            assert list(Path(tmp).iterdir()) == []


#: Text that lands in the generated module's docstring (comments of the formula) and the names
#: the module's own code uses, as dims (the user's names never reach the module unvalidated).
DOCSTRING_BREAKERS = ['x * x # """', "x * x # '''", 'x * x # " \\', "x * x # \\N{BULLET} \\x00 \\u0000",
                      'x * x # """; import os; """', "x * x # \r stray carriage return", "x * x # \u2028 line sep",
                      "x * x\n# a comment line with \"\"\"\n", "x * x # }} {% raw %} {{ 1/0 }}", "x*x #\x0c\x1c"]


@pytest.mark.parametrize("text", DOCSTRING_BREAKERS)
def test_generated_module_escapes_user_text(tmp_path, text):
    out = tmp_path / "m.py"
    rc, _, err, _ = run_cli(["codegen", text, "-o", str(out)])
    assert rc == 0, err
    _assert_module_sound(out, text)


@pytest.mark.parametrize("dim", ["for", "None", "value", "isinstance", "float", "ValueError", "np", "B", "x1", "grad_x",
                                 "forward", "lambda", "match", "print"])
def test_dim_names_never_break_the_module(tmp_path, dim):
    """Regression: dims named like keywords/builtins (for, None, ValueError) gave a module that did not
    compile or misbehaved; `value` was overwritten by the objective before the backward pass used it."""
    out = tmp_path / "m.py"
    rc, _, err, _ = run_cli(["codegen", "mean(x) * sum(x) + trace(A) + a * sum(x)", "--shape", f"x={dim}",
                             "--shape", f"A={dim},{dim}", "--batch", "x", "-o", str(out)])
    assert rc == 0, err
    _assert_module_sound(out, "mean(x) * sum(x) + trace(A) + a * sum(x)")
    module = load_module(out)
    with pytest.raises(ValueError, match="shape"):                 # the shape check still works
        module.value_and_grad(x=np.ones((2, 3)), A=np.ones((4, 4)), a=1.0)


def test_adjoint_names_never_shadow_inputs(tmp_path):
    """Regression: an input named g_z (like the adjoint of an intermediate z) was overwritten."""
    text = "z = tanh(W @ x); sum(z * g_z) + sum(relu(z) * z) + norm(z)"
    out = tmp_path / "m.py"
    rc, _, err, _ = run_cli(["codegen", text, "-s", "W=m,n", "-s", "x=n", "-s", "g_z=m", "-o", str(out)])
    assert rc == 0, err
    _assert_module_sound(out, text)


def test_unused_input_gradient(tmp_path):
    """Regression: codegen crashed (KeyError) when the objective ignores an input (a - a)."""
    for text, shapes in [("a - a", []), ("sum(u - u) + a", ["u=n"])]:
        out = tmp_path / "m.py"
        rc, _, err, _ = run_cli(["codegen", text, *_shape_args(shapes), "-o", str(out), "--force"])
        assert rc == 0, err
        _assert_module_sound(out, text)


def test_singular_matrix_is_not_a_crash():
    """Regression: det(outer(w, w)) raised numpy's LinAlgError (a traceback) in the self-check."""
    rc, out, err, sec = run_cli(["derive", "det(outer(w, w))", "-s", "w=m"])
    assert_clean(rc, out, err, sec)


# ----- generated files: never half-written, never over a file symbackprop did not write -----

def test_existing_file_not_overwritten_without_force(tmp_path):
    out = tmp_path / "mine.py"
    out.write_text("# my own code\n", encoding="utf-8")
    rc, _, err, _ = run_cli(["codegen", "x * x", "-o", str(out)])
    assert rc == 2 and "--force" in err and "Traceback" not in err
    assert out.read_text(encoding="utf-8") == "# my own code\n"
    rc, _, err, _ = run_cli(["codegen", "x * x", "-o", str(out), "--force"])
    assert rc == 0 and out.read_text(encoding="utf-8").startswith(MARKER)
    rc, _, err, _ = run_cli(["codegen", "x * x * x", "-o", str(out)])   # a generated module is refreshed
    assert rc == 0 and load_module(out).FORMULA == "x * x * x"


def test_failed_write_leaves_nothing_half_written(tmp_path, monkeypatch):
    out = tmp_path / "m.py"
    assert run_cli(["codegen", "x * x", "-o", str(out)])[0] == 0
    before = out.read_text(encoding="utf-8")

    def boom(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        main(["codegen", "x * x * x", "-o", str(out)])
    assert out.read_text(encoding="utf-8") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.py"]          # no temp file left behind


def test_missing_output_folder(tmp_path):
    """Regression: graph -o into a folder that does not exist gave a FileNotFoundError traceback."""
    for command, name in (("codegen", "m.py"), ("graph", "g.svg"), ("graph", "g.dot")):
        rc, out, err, sec = run_cli([command, "x * x", "-o", str(tmp_path / "nowhere" / name)])
        assert_clean(rc, out, err, sec)
        assert rc == 2 and "does not exist" in err, err
    assert list(tmp_path.iterdir()) == []


def test_error_writes_no_file(tmp_path):
    for command, name in (("codegen", "m.py"), ("graph", "g.svg")):
        rc, _, err, _ = run_cli([command, "x @ y", "-s", "x=n", "-s", "y=m", "-o", str(tmp_path / name)])
        assert rc == 2 and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


# ----- resource bounds -----

def _chain(n_steps):
    """e_i = sin(e_{i-1} * x_i) + e_{i-1}: about 4 nodes a step, each x_i used once, e_i twice (fan-out)."""
    e = E.var("a", ())
    xs = []
    for i in range(n_steps):
        x = E.var(f"x{i}", ())
        xs.append(x)
        e = E.apply("sin", e * x) + e
    return e, xs


def test_ten_thousand_node_graph_derives():
    root, xs = _chain(2600)
    n = len(E.walk(root))
    assert n >= 10_000
    t0 = time.perf_counter()
    adj = backprop(root, E.const(1), xs)
    assert all(x in adj and adj[x].shape == () for x in xs)      # (no repr of deep nodes in the message)
    assert time.perf_counter() - t0 < 30


def test_ten_thousand_node_formula_through_derive():
    """The same chain as formula text (named statements, under MAX_FORMULA_CHARS), through derive."""
    steps = 2600
    lines = ["e0 = a"] + [f"e{i} = sin(e{i-1} * x{i}) + e{i-1}" for i in range(1, steps)]
    text = "\n".join(lines[:-1] + [lines[-1].split(" = ")[1]])
    assert len(text) < MAX_FORMULA_CHARS
    from symbackprop import Derivation
    p = parse_formula(text)
    assert len(E.walk(p.objective)) >= 10_000 - 5 and len(E.walk(p.objective)) <= MAX_GRAPH_NODES
    t0 = time.perf_counter()
    d = Derivation(p, wrt=["x1", f"x{steps - 1}"], check=True)
    assert all(c.verified for c in d.checks.values())
    assert time.perf_counter() - t0 < 60


def test_memory_stays_linear():
    """Peak memory of the reverse sweep at two sizes: doubling the graph about doubles it."""
    peaks = []
    for steps in (1250, 2500):
        root, xs = _chain(steps)
        tracemalloc.start()
        adj = backprop(root, E.const(1), xs)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        del adj
    ratio = peaks[1] / peaks[0]
    assert 1.5 < ratio < 2.6, (peaks, ratio)


def test_graph_node_limit():
    text = "\n".join(["e0 = a"] + [f"e{i} = sin(e{i-1} * x{i}) + e{i-1}" for i in range(1, 5200)] + ["e5199"])
    if len(text) > MAX_FORMULA_CHARS:
        text = text.replace(" ", "")
    rc, _, err, sec = run_cli(["derive", text])
    assert rc == 2 and ("limit is 20000" in err or "characters long" in err), err


def test_expansion_limit_is_quick():
    text = "f1(t) = sin(t); " + "; ".join(f"f{i}(t) = f{i-1}(t) * f{i-1}(t)" for i in range(2, 60)) + "; f59(x)"
    rc, _, err, sec = run_cli(["derive", text])
    assert rc == 2 and str(MAX_EXPANSION) in err and sec < TIME_BOUND


# ----- the real entry point, a few subprocess runs -----

@pytest.mark.parametrize("argv", [
    ["derive", "x" * 120_000],                      # the OS caps one argument at 128 KiB
    ["derive", "(" * 60_000 + "x" + ")" * 60_000],
    ["codegen", "x.__class__"],
    ["derive", "np @ import"],
])
def test_subprocess_clean_errors(argv, tmp_path):
    r = subprocess.run([sys.executable, "-m", "symbackprop", *argv], capture_output=True, text=True, timeout=60,
                       cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.startswith("error:"), r.stderr[-500:]
    assert list(tmp_path.iterdir()) == []


def test_subprocess_undecodable_bytes(tmp_path):
    """Regression: a byte that is not UTF-8 (\\xff) on the command line gave a UnicodeEncodeError traceback."""
    for formula in (b"x\xff * x", b"x * x # \xff"):
        r = subprocess.run([sys.executable.encode(), b"-m", b"symbackprop", b"codegen", formula, b"-o", b"m.py"],
                           capture_output=True, timeout=60, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert r.returncode == 2 and b"Traceback" not in r.stderr and b"UTF-8" in r.stderr, r.stderr[-500:]
        assert list(tmp_path.iterdir()) == []


# ----- the regression corpus -----

def _corpus():
    return json.loads(REGRESSIONS.read_text(encoding="utf-8"))["fuzz"]


@pytest.mark.parametrize("case", _corpus(), ids=lambda c: c["id"])
def test_fuzz_regression_corpus(case, tmp_path):
    argv = [case["command"], case["formula"], *_shape_args(case.get("shapes", []))]
    if case["command"] == "codegen":
        argv += ["-o", str(tmp_path / "m.py")]
    rc, out, err, sec = run_cli(argv)
    assert_clean(rc, out, err, sec)
    assert rc == case["exit"], err
    if case["command"] == "codegen" and rc == 0:
        _assert_module_sound(tmp_path / "m.py", case["formula"])


BIG = "1" + "0" * 5000                             # past Python's 4300-digit limit on int(str)


@pytest.mark.parametrize("argv", [
    ["codegen", BIG + "a"],                       # found by the long run (4c557a4): NumPy's syntax error, then
    ["derive", BIG + " x", "--notation", "math"],    # the math notation's int() raised ValueError (a traceback)
    ["derive", "\\frac{1}{2} " + BIG + " x^2", "--notation", "math"],
])
def test_a_huge_integer_in_math_notation_is_one_clean_error(argv, tmp_path):
    if argv[0] == "codegen":
        argv = [*argv, "-o", str(tmp_path / "m.py")]
    rc, out, err, sec = run_cli(argv)
    assert_clean(rc, out, err, sec)
    assert rc == 2 and ("number too large" in err or "syntax error" in err), err
    assert not (tmp_path / "m.py").exists()


# ----- the checker: hostile claims and solution files -----

CHECK_BASE = ["check", "0.5 * norm(W2 @ Phi(W1 @ x + b) - y)**2", "-e", "Phi", "--shape", "W1=d,d", "--shape", "W2=d,d",
              "--shape", "x=d", "--shape", "b=d", "--shape", "y=d", "--let", "x1=W1 @ x + b", "--let", "x4=W2 @ Phi(x1) - y"]
CLAIM_SEEDS = ["outer(W2.T @ x4 * Phi'(x1), x)", "outer(x4, Phi(x1))", "W1.T @ (W2.T @ x4 * Phi'(x1))", "x4",
               "x4.T @ W2 @ diag(Phi'(x1))", "0.5 * outer(x4, x)"]
SOLUTION_FILE = (Path(__file__).resolve().parent.parent / "docs" / "solutions" / "handout-2d.yaml").read_text(encoding="utf-8")


@st.composite
def mutated_text(draw, seeds):
    text = draw(st.sampled_from(seeds))
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(text)))
        j = draw(st.integers(i, min(len(text), i + 12)))
        kind = draw(st.sampled_from(["insert", "delete", "dup", "swap"]))
        if kind == "insert":
            text = text[:i] + draw(st.sampled_from(HOSTILE_TEXT + ["'", "''", ":", "- ", "\n  ", "{", "[", "&a", "*a",
                                                                   "!!python/object:os.system", "\t"])) + text[i:]
        elif kind == "delete":
            text = text[:i] + text[j:]
        elif kind == "dup":
            text = text[:j] + text[i:j] + text[j:]
        elif len(text) > 1:
            i = min(i, len(text) - 2)
            text = text[:i] + text[i + 1] + text[i] + text[i + 2:]
    return text


@given(mutated_text(CLAIM_SEEDS), st.sampled_from(["W1", "x", "b", "x1", "x4", "nope"]))
def test_check_mutated_claims(claim, wrt):
    """A claim is right (0), wrong (1) or malformed (2, one message): never a traceback or a hang."""
    note(repr(claim))
    assert_clean(*run_cli([*CHECK_BASE, "--wrt", wrt, "--claim", _arg(claim)]), ok=(0, 1, 2))


@given(mutated_text([SOLUTION_FILE]))
def test_solution_file_reader_mutated(text):
    """A mangled solution file gives verdicts (0/1) or one clean error naming what is wrong (2)."""
    note(repr(text[:400]))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "solution.yaml"
        try:
            path.write_text(text, encoding="utf-8")
        except UnicodeEncodeError:                   # lone surrogates cannot be stored as UTF-8 text
            path.write_bytes(text.encode("utf-8", "replace"))
        rc, out, err, sec = run_cli(["check", str(path)])
        if rc == 2 and not err.strip():              # a malformed claim is a row of the verdict table
            assert "malformed" in out, out[-2000:]
            err = "malformed claim"
        assert_clean(rc, out, err, sec, ok=(0, 1, 2))


@pytest.mark.parametrize("text", [
    "", "\x00\x01", "- just\n- a list\n", "problem: 3\n", "!!python/object/apply:os.system ['echo hi']\n",
    "problem:\n  formula: x.__class__\nclaims: []\n", "problem:\n  formula: sum(x)\n  shapes: {x: n}\nclaims: 7\n",
    "problem:\n  formula: sum(x)\n  shapes: {x: n}\nclaims:\n  - wrt: x\n    claim: '\"\"\"'\n",
    "a: &a [*a]\n", "problem:\n  formula: '" + "(" * 300 + "x" + ")" * 300 + "'\nclaims: []\n",
    "x: " + "[" * 5000 + "]" * 5000 + "\n",
], ids=["empty", "binary", "list", "scalar-problem", "python-tag", "hostile-formula", "claims-not-list",
        "triple-quote-claim", "yaml-alias-loop", "deep-formula", "deep-yaml"])
def test_hostile_solution_files(tmp_path, text):
    path = tmp_path / "s.yaml"
    path.write_text(text, encoding="utf-8")
    rc, out, err, sec = run_cli(["check", str(path)])
    if rc == 2 and not err.strip():
        assert "malformed" in out
        err = "malformed claim"
    assert_clean(rc, out, err, sec, ok=(0, 1, 2))
    assert rc == 2 or text.startswith("problem:\n  formula: sum")
