"""Regressions of code generation (issues 11 and 17): each test failed on the code before its fix."""
from __future__ import annotations

import numpy as np
import pytest

import symbackprop as sb
from symbackprop.emit import emit_module, load_source
from symbackprop.testing import check_grads, random_inputs


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
]


@pytest.mark.parametrize("formula,shapes,batch,wrt,square", BATCH_CASES)
def test_batch_gradients_match_a_loop_whatever_the_sign(formula, shapes, batch, wrt, square):
    mb = _loop_vs_batch(formula, shapes, batch, wrt, square)
    if not square:                                   # random points of inv(X) may be ill-conditioned
        assert all(r.ok for r in check_grads(mb, seed=1).values())
