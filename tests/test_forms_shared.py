"""The printed forms both code-generation targets share (rules_forms), and NumPy's sigmoid of a negation.

The shared forms spell nothing themselves: every word they ask the printer for must be spelled by
both targets. sigmoid(−a) printed `np.exp(-np.logaddexp(0.0, --a))` (right, but unreadable): its
negation is folded, and where the rule's template prints it, the argument is bracketed.
"""
from __future__ import annotations

import ast
import inspect

import numpy as np
import pytest

import symbackprop as sb
from symbackprop import rules_array_api, rules_forms, rules_numpy
from symbackprop.emit import emit_module
from symbackprop.errors import InternalError
from symbackprop.files import load_source


def _words() -> set:
    """The words rules_forms passes to p.spell (string literals only)."""
    words = set()
    for node in ast.walk(ast.parse(inspect.getsource(rules_forms))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "spell":
            for c in ast.walk(node.args[0]):
                if isinstance(c, ast.Constant) and isinstance(c.value, str):
                    words.add(c.value)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "_batch_form":
            words.add(node.args[0].value)
    return words


def test_every_shared_word_is_spelled_by_both_targets():
    words = _words()
    assert {"swap_T", "vdot", "sum0", "reduce", "bi,bi->b", "outer"} <= words      # the scan sees the calls
    assert words <= set(rules_numpy.SPELLING), words - set(rules_numpy.SPELLING)
    assert words <= set(rules_array_api.SPELLING), words - set(rules_array_api.SPELLING)


def test_an_unspelled_word_is_an_internal_error(monkeypatch):
    program = sb.parse_formula("sum(X.T @ y)", {"X": "m,n", "y": "m"})
    monkeypatch.delitem(rules_array_api.SPELLING, "swap_T")
    with pytest.raises(InternalError, match="no spelling of `swap_T`"):
        emit_module(program, batch=["X"], target="array-api")
    assert "np.swapaxes(X, 1, 2)" in emit_module(program, batch=["X"])     # NumPy's table is its own


def test_the_einsum_forms_differ_only_in_spelling():
    program = sb.parse_formula("u @ v + sum(A @ x)", {"u": "n", "v": "n", "A": "m,n", "x": "n"})
    numpy_src = emit_module(program, batch=["u", "v", "A", "x"])
    api_src = emit_module(program, batch=["u", "v", "A", "x"], target="array-api")
    assert "np.einsum('bi,bi->b', u, v)" in numpy_src and "np.einsum('bij,bj->bi', A, x)" in numpy_src
    assert "xp.vecdot(u, v)" in api_src and "xp.vecdot(A, x[:, None, :])" in api_src
    assert "einsum" not in api_src and "np." not in api_src


# ----- sigmoid(−a): no double minus, and the right values -----

def _module(formula, shapes, **options):
    return load_source(emit_module(sb.parse_formula(formula, shapes), **options), "sigmoid_module", keep=False)


def _reference(a):
    return float(np.sum(1.0 / (1.0 + np.exp(a))))           # σ(−a) = 1 / (1 + eᵃ)


def _check_values(module, a):
    value, grads = module.value_and_grad(a=a)
    assert value == pytest.approx(_reference(a), rel=1e-12)
    h = 1e-6
    fd = np.array([(_reference(a + h * e) - _reference(a - h * e)) / (2 * h) for e in np.eye(a.size)])
    assert np.allclose(grads["a"], fd, rtol=1e-6, atol=1e-9)
    assert np.allclose(grads["a"], -np.exp(a) / (1 + np.exp(a)) ** 2, rtol=1e-12)   # −σ(−a)(1 − σ(−a))


A = np.array([-3.0, -0.25, 0.0, 0.7, 4.0])


def test_sigmoid_of_a_negation_prints_no_double_minus():
    src = emit_module(sb.parse_formula("sum(sigmoid(-a))", {"a": "n"}))
    assert "--a" not in src and "-(-a)" not in src
    assert "x1 = np.exp(-np.logaddexp(0.0, a))  # (n,)" in src
    _check_values(_module("sum(sigmoid(-a))", {"a": "n"}), A)


def test_sigmoid_of_a_negation_batched():
    src = emit_module(sb.parse_formula("sum(sigmoid(-a))", {"a": "n"}), batch=["a"])
    assert "np.exp(-np.logaddexp(0.0, a))" in src and "--a" not in src
    module = _module("sum(sigmoid(-a))", {"a": "n"}, batch=["a"])
    batch = np.stack([A, A[::-1] * 2])
    value, grads = module.value_and_grad(a=batch)
    assert value == pytest.approx(np.mean([_reference(x) for x in batch]), rel=1e-12)
    assert np.allclose(grads["a"], -np.exp(batch) / (1 + np.exp(batch)) ** 2 / len(batch), rtol=1e-12)


def test_the_sigmoid_template_brackets_a_negated_argument(monkeypatch):
    """Without the fold (the rule's template alone), the argument is bracketed by precedence: -(-a)."""
    monkeypatch.delitem(rules_numpy.NUMPY, "sigmoid")
    src = emit_module(sb.parse_formula("sum(sigmoid(-a))", {"a": "n"}))
    assert "np.exp(-np.logaddexp(0.0, -(-a)))" in src
    _check_values(load_source(src, "sigmoid_template", keep=False), A)


def test_the_array_api_sigmoid_takes_the_negation_as_an_argument():
    pytest.importorskip("array_api_compat")
    src = emit_module(sb.parse_formula("sum(sigmoid(-a))", {"a": "n"}), target="array-api")
    assert "_sigmoid(xp, -a)" in src and "--a" not in src
    assert "xp.exp(-(xp.clip(-z, min=0.0) + xp.log1p(xp.exp(-xp.abs(z)))))" in src     # z is a name there
    _check_values(load_source(src, "sigmoid_api", keep=False), A)
