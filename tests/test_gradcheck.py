"""`symbackprop gradcheck`: gradients, and hvp/hessian when the module has them, against central differences.

The corrupted modules are real generated modules with one function's return value edited in
the source text, as a hand edit or an emitter bug would leave them.
"""
import re

import numpy as np
import pytest

import symbackprop as sb
from symbackprop.cli import main
from symbackprop.emit import emit_module, load_source
from symbackprop.testing import check_second_order

TANH_NET = ("0.5 * norm(W2 @ tanh(W1 @ x + b) - y)**2", {"W1": "h,d", "W2": "k,h", "x": "d", "b": "h", "y": "k"})
LOGISTIC = ("mean(softplus(A @ x) - y * (A @ x))", {"A": "m,n", "x": "n", "y": "m"})
TWO_VARIABLES = ("sum(sin(A @ x)) + 0.5 * x @ x", {"A": "m,n", "x": "n"})


def source(problem, wrt=("x",), **flags):
    formula, shapes = problem
    return emit_module(sb.derive(formula, shapes), wrt=list(wrt), **flags)


def corrupt(src: str, function: str, wrap: str) -> str:
    """Rewrite the return statement of `function` in module source `src` as `return wrap(value)`."""
    start = src.index(f"\ndef {function}(")
    m = re.compile(r"^    return (.*)$", re.M).search(src, start)
    assert m is not None and "\ndef " not in src[start + 1:m.start()], function
    return src[:m.start()] + "    return " + wrap.format(m.group(1)) + src[m.end():]


def gradcheck(tmp_path, capsys, src, *args, name="module.py"):
    path = tmp_path / name
    path.write_text(src, encoding="utf-8")
    code = main(["gradcheck", str(path), *args])
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return code, out.out


def rows(out: str, function: str) -> dict[str, str]:
    """{input: 'ok' or 'MISMATCH ...'} from the section of `function` in gradcheck's output."""
    lines = out.splitlines()
    head = next(i for i, l in enumerate(lines) if l.startswith(f"{function}: "))
    found = {}
    for line in lines[head + 1:]:
        m = re.match(r"  (\S+)\s+worst relative error \S+  (.*)$", line)
        if not m:
            break
        found[m.group(1)] = m.group(2)
    return found


# ----- correct modules pass, and say what was checked -----

@pytest.mark.parametrize("problem", [TANH_NET, LOGISTIC], ids=["tanh net", "logistic"])
def test_a_correct_module_with_hessian_and_hvp_passes(tmp_path, capsys, problem):
    code, out = gradcheck(tmp_path, capsys, source(problem, hessian=True, hvp=True))
    assert code == 0, out
    assert rows(out, "hvp") == {"x": "ok"} and rows(out, "hessian") == {"x": "ok"}
    assert "hvp: against central differences of value_and_grad along random directions" in out
    assert "hessian: against central differences of value_and_grad along basis and random directions" in out
    assert out.rstrip().endswith("all gradients, Hessian-vector products and Hessians agree")
    assert "MISMATCH" not in out


def test_hvp_of_several_variables_and_a_scalar_hessian_pass(tmp_path, capsys):
    code, out = gradcheck(tmp_path, capsys, source(TWO_VARIABLES, wrt=("A", "x"), hvp=True))
    assert code == 0, out
    assert rows(out, "hvp") == {"A": "ok", "x": "ok"} and "hessian:" not in out
    assert out.rstrip().endswith("all gradients and Hessian-vector products agree")
    code, out = gradcheck(tmp_path, capsys, source(("x*x*y + sin(x)", {}), hessian=True), name="scalar.py")
    assert code == 0, out
    assert rows(out, "hessian") == {"x": "ok"}


def test_a_module_without_second_order_is_checked_as_before(tmp_path, capsys):
    code, out = gradcheck(tmp_path, capsys, source(TANH_NET, wrt=("W1", "x")))
    assert code == 0
    assert "hvp" not in out and "hessian" not in out
    assert out.rstrip().endswith("all gradients agree")


# ----- corrupted hvp or hessian: exit 1, and the message names the function -----

@pytest.mark.parametrize("problem", [TANH_NET, LOGISTIC], ids=["tanh net", "logistic"])
@pytest.mark.parametrize("function, wrap", [
    ("hvp", "1.001 * ({})"),                                     # off by 0.1 %
    ("hessian", "1.001 * ({})"),
    ("hessian", "(lambda H: H + 1e-3 * np.triu(H, 1))({})"),     # one triangle wrong: not symmetric either
    ("hessian", "(lambda H: H + 1e-3 * np.max(np.abs(H)) * np.eye(len(H)))({})"),
])
def test_a_corrupted_function_fails_and_is_named(tmp_path, capsys, problem, function, wrap):
    good = source(problem, hessian=True, hvp=True)
    code, out = gradcheck(tmp_path, capsys, corrupt(good, function, wrap))
    assert code == 1, out
    other = {"hvp": "hessian", "hessian": "hvp"}[function]
    assert rows(out, function)["x"].startswith("MISMATCH") and rows(out, other) == {"x": "ok"}, out
    assert f"MISMATCH in {function}: x" in out
    assert f"MISMATCH in {other}" not in out and "MISMATCH in value_and_grad" not in out
    assert "agree" not in out


def test_a_corrupted_block_of_a_joint_hvp_names_its_variable(tmp_path, capsys):
    good = source(TWO_VARIABLES, wrt=("A", "x"), hvp=True)
    code, out = gradcheck(tmp_path, capsys, corrupt(good, "hvp", "(lambda r: {{**r, 'A': r['A'] * 1.001}})({})"))
    assert code == 1
    assert rows(out, "hvp")["A"].startswith("MISMATCH") and rows(out, "hvp")["x"] == "ok"
    assert "MISMATCH in hvp: A" in out


def test_a_wrong_gradient_is_named_as_such(tmp_path, capsys):
    good = source(LOGISTIC, hessian=True, hvp=True)
    code, out = gradcheck(tmp_path, capsys, corrupt(good, "value_and_grad", "(lambda v, g: (v, {{'x': 1.01 * g['x']}}))(*({}))"))
    assert code == 1 and "MISMATCH in value_and_grad: x" in out
    # hvp and hessian are compared with this gradient, so they disagree with it too; the output says why
    assert "value_and_grad, which failed its own check" in out


@pytest.mark.parametrize("function, wrap, note", [
    ("hessian", "({})[:, :-1]", "returned shape"),
    ("hvp", "np.reshape({}, (-1, 7, 11))", "raised ValueError"),
])
def test_a_broken_function_is_reported_not_raised(tmp_path, capsys, function, wrap, note):
    good = source(LOGISTIC, hessian=True, hvp=True)
    code, out = gradcheck(tmp_path, capsys, corrupt(good, function, wrap), "--shape", "n=4", "--shape", "m=6")
    assert code == 1
    assert rows(out, function)["x"].startswith("MISMATCH") and note in rows(out, function)["x"], out
    assert f"MISMATCH in {function}: x" in out


# ----- the Python API -----

def test_check_second_order_catches_a_small_error_along_one_basis_direction():
    """A Hessian wrong in one entry (and its mirror) is caught: every column is tried."""
    good = source(TANH_NET, hessian=True, hvp=True)
    m = load_source(good)
    results = check_second_order(m, {"d": 5, "h": 3, "k": 2})
    assert set(results) == {"hvp", "hessian"} and all(r.ok for rs in results.values() for r in rs.values())
    bad = load_source(corrupt(good, "hessian", "(lambda H: H + 1e-3 * np.max(np.abs(H)) * (np.eye(len(H))[[2]].T @ np.eye(len(H))[[4]] + np.eye(len(H))[[4]].T @ np.eye(len(H))[[2]]))({})"))
    results = check_second_order(bad, {"d": 5, "h": 3, "k": 2}, directions=0)
    assert not results["hessian"]["x"].ok and results["hvp"]["x"].ok
    assert results["hessian"]["x"].worst > 1e-5
    assert check_second_order(load_source(source(TANH_NET))) == {}


def test_second_order_checks_agree_with_an_independent_hessian():
    """The checker's reference is central differences of the gradient; here the module's
    Hessian also matches the logistic Hessian written by hand, so a pass means a right answer."""
    m = load_source(source(LOGISTIC, hessian=True, hvp=True))
    rng = np.random.default_rng(3)
    A, x, y = rng.standard_normal((7, 4)), rng.standard_normal(4), rng.uniform(0, 1, 7)
    s = 1 / (1 + np.exp(-(A @ x)))
    assert np.allclose(m.hessian(A=A, x=x, y=y), A.T @ np.diag(s * (1 - s)) @ A / 7, rtol=1e-10, atol=1e-12)
    results = check_second_order(m, inputs={"A": A, "x": x, "y": y})
    assert results["hessian"]["x"].ok and results["hvp"]["x"].ok
