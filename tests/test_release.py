"""Memory-aware generated code (issue 15, item 5): temporaries are freed after their last use, grad()
computes nothing only the value needs, and the peak memory is no more than hand-written NumPy's."""
from __future__ import annotations

import ast
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from symbackprop.emit import emit_module
from symbackprop.parse import parse_formula
from symbackprop.plan import release
from symbackprop.testing import load_module

ROOT = Path(__file__).resolve().parent.parent
MODULES = sorted((ROOT / "generated").glob("*.py"))
FUNCTIONS = ("forward", "value_and_grad", "grad", "hvp", "hessian")


def _names(node, ctx):
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ctx)}


def _functions(text):
    tree = ast.parse(text)
    return [f for f in tree.body if isinstance(f, ast.FunctionDef) and f.name in FUNCTIONS]


def _array_api(path):
    """The array-API print of the catalog module generated/<path> (codegen --target array-api)."""
    from symbackprop.catalog import BY_NAME
    m = BY_NAME[path.stem]
    shapes = dict(s.split("=") for s in m.shapes)
    return emit_module(parse_formula(m.formula, shapes), wrt=list(m.wrt) or None, batch=list(m.batch),
                       hessian=m.hessian, hvp=m.hvp, target="array-api")


@pytest.mark.parametrize("target", ["numpy", "array-api"])
@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_every_statement_is_read_and_every_del_is_final(path, target):
    """In every function of every module in generated/ (and its array-API print): each name a statement
    binds is read later (no dead line: grad() leaves out what only the value needs); a deleted name is
    never read again; and an array bound to a temporary that a later statement allocates after its
    last read is deleted."""
    text = path.read_text(encoding="utf-8") if target == "numpy" else _array_api(path)
    for fn in _functions(text):
        params = {a.arg for a in fn.args.args}
        body = fn.body[1:] if isinstance(fn.body[0], ast.Expr) else fn.body     # the docstring
        *stmts, ret = body
        assert isinstance(ret, ast.Return)
        for i, s in enumerate(stmts):
            later = set().union(*(_names(t, ast.Load) for t in stmts[i + 1:]), _names(ret, ast.Load))
            if isinstance(s, ast.Delete):
                gone = {t.id for t in s.targets}
                assert not gone & later, f"{path.name} {fn.name}: {ast.unparse(s)} is read later"
                assert not gone & params, f"{path.name} {fn.name}: deletes an input"
                assert i < len(stmts) - 1, f"{path.name} {fn.name}: a del just before return frees nothing"
                continue
            bound = _names(s, ast.Store)
            if {"_dims", "_cast", "_namespace"} & _names(s, ast.Load) or bound & params:
                continue                               # the shape check, the namespace, input conversions
            assert bound & later or not bound, f"{path.name} {fn.name}: `{ast.unparse(s)}` is never read"
        # every temporary named x<k>/g_.../_t<k> that dies before the last statement is deleted
        lines = text.splitlines()
        deleted = set().union(*(({t.id for t in s.targets}) for s in stmts if isinstance(s, ast.Delete)))
        for i, s in enumerate(stmts[:-1]):
            if isinstance(s, ast.Delete) or not isinstance(s, ast.Assign):
                continue
            (target,) = s.targets
            name = target.id if isinstance(target, ast.Name) else None
            if name is None or name.startswith("grad_") or name in ("value", "_seed") or name in params:
                continue
            reads = [j for j, t in enumerate(stmts) if not isinstance(t, ast.Delete) and name in _names(t, ast.Load)]
            if name in _names(ret, ast.Load) or not reads:
                continue
            last = reads[-1]
            plain_alias = isinstance(stmts[last], ast.Assign) and isinstance(stmts[last].value, ast.Name)
            allocs_after = any(not isinstance(t, ast.Delete) for t in stmts[last + 1:])
            line = lines[s.lineno - 1]
            scalar = "  # (" not in line or line.rstrip().endswith("# ()")      # the shape comment
            if allocs_after and not plain_alias and not scalar:
                assert name in deleted, f"{path.name} {fn.name}: `{name}` dies at line {last} but is kept"


def test_release_frees_after_last_read_in_the_mlp():
    src = emit_module(parse_formula("0.5 * norm(W2 @ relu(W1 @ x + b) - y)**2",
                                    {"W1": "h,d", "W2": "k,h", "x": "d", "b": "h", "y": "k"}),
                      wrt=["W1", "b", "W2"], batch=["x", "y"])
    vg = src[src.index("def value_and_grad"):src.index("def grad(")]
    assert "    x4 = x3 - y  # (B, k)\n    del x3\n" in vg
    assert "    g_x1 = (g_x3 @ W2) * (x1 > 0)  # (B, h)\n    del x1\n" in vg
    assert "del x2" not in vg                  # read by the last statement: returning frees it


def test_release_keeps_aliases_and_drops_dead_lines():
    sections = [["a = x * 2", "b = a + 1", "c = a", "dead = b * 3"], ["d = b - c", "e = d * d"]]
    out = release(sections, "e.sum()", {"a", "b", "c", "d", "dead", "e"})
    assert out == [["a = x * 2", "b = a + 1", "c = a"], ["d = b - c", "del b, c", "e = d * d"]]


def test_grad_leaves_out_what_only_the_value_needs():
    """logistic_hessian's value needs softplus(A x) and y·(A x); its gradient needs neither."""
    src = (ROOT / "generated/logistic_hessian.py").read_text()
    grad = src[src.index("def grad("):src.index("def hessian(")]
    assert "np.logaddexp(0.0, x1)  # (m,)" not in grad
    assert "np.logaddexp(0.0, x1)" in src[src.index("def value_and_grad("):src.index("def grad(")]


def _hand(W2, W1, x, b, y):
    """The MLP's value and gradient as one writes it by hand (bench/codegen_vs_peers.py's reference, written again here so the test does not import bench/)."""
    B = x.shape[0]
    z = x @ W1.T + b
    a = np.maximum(z, 0.0)
    r = a @ W2.T - y
    value = 0.5 * np.vdot(r, r) / B
    g3 = r / B
    gz = (g3 @ W2) * (z > 0)
    return value, {"W1": gz.T @ x, "b": gz.sum(axis=0), "W2": g3.T @ a}


def _peak(f, p):
    f(**p)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        f(**p)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_peak_memory_no_more_than_hand_written():
    """At 256-wide layers the generated MLP holds no more memory at its peak than the hand-written
    one (before freeing temporaries it held every intermediate to the end: 16 MiB against 14 at 512)."""
    gen = load_module(ROOT / "generated/mlp_relu_batch.py")
    rng = np.random.default_rng(0)
    B = d = h = k = 256
    p = dict(W2=rng.standard_normal((k, h)), W1=rng.standard_normal((h, d)), x=rng.standard_normal((B, d)),
             b=rng.standard_normal(h), y=rng.standard_normal((B, k)))
    hand = _peak(_hand, p)
    assert _peak(gen.value_and_grad, p) <= hand
    assert _peak(gen.grad, p) <= hand
    v1, g1 = gen.value_and_grad(**p)
    v2, g2 = _hand(**p)
    assert np.isclose(v1, v2) and all(np.allclose(g1[n], g2[n]) for n in g2)
