"""The one reverse sweep (symbackprop.sweep.sweep) and the views that read its record: the gradients, the
chain-rule steps and the backward graph."""
import dataclasses

import numpy as np
import pytest

from symbackprop import expr as E
from symbackprop.derivation import derive
from symbackprop.sweep import sweep
from symbackprop.errors import InternalError
from symbackprop.evaluate import evaluate
from symbackprop.expr import RULES, Node
from symbackprop.graph import build_graph, random_values

CASES = [
    ("0.5 * norm(W2 @ Phi(W1 @ x + b) - y)**2", {"W1": "h,d", "x": "d", "b": "h", "W2": "k,h", "y": "k"}, ["Phi"], []),
    ("z = W @ x + b; 0.5 * norm(V @ tanh(z) - y)**2 + sum(z * z)",
     {"W": "h,d", "V": "k,h", "x": "d", "b": "h", "y": "k"}, [], []),
    ("f(g1(w), g2(w), g3(w))", {}, [], ["f", "g1", "g2", "g3"]),
    ("x @ B @ x + logdet(B @ B.T + C)", {"B": "n,n", "x": "n", "C": "n,n"}, [], []),
]


@pytest.mark.parametrize("formula,shapes,ew,fn", CASES)
def test_contributions_add_up_to_the_adjoints(formula, shapes, ew, fn):
    """Each node's adjoint is the sum of the contributions recorded into it, edge by edge."""
    d = derive(formula, shapes, elementwise=ew, functions=fn, check=False)
    point = random_values(d.program, 3)
    into: dict[Node, list] = {}
    for c in d.sweep.contributions:
        assert c.arg is c.node.args[c.index] and c.part.shape == c.arg.shape
        assert d.sweep.edge(c.node, c.index) is c
        into.setdefault(c.arg, []).append(c.part)
    assert set(into) == set(d.adjoints) - {d.objective}
    for node, parts in into.items():
        vals = evaluate(parts + [d.adjoints[node]], point)
        total = sum(np.broadcast_to(v, np.shape(vals[-1])) for v in vals[:-1])
        np.testing.assert_allclose(total, vals[-1], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("formula,shapes,ew,fn", CASES)
def test_local_steps_are_the_chain_rule_of_the_full_adjoints(formula, shapes, ew, fn):
    """Each step's local form, with every ∂ℓ/∂name placeholder set to that name's full adjoint, has the
    value of the step's full adjoint."""
    d = derive(formula, shapes, elementwise=ew, functions=fn, check=False)
    point = random_values(d.program, 5)
    steps = d._adjoint_steps()
    full_of = {label: full for label, _, full, _ in steps}
    assert len(steps) >= 3
    for label, local, full, shape in steps:
        used = [ph for ph in E.walk(local) if ph in d._placeholders]
        over = dict(zip(used, evaluate([full_of[d._placeholders[ph]] for ph in used], point)))
        lo, fu = evaluate([local], point, over)[0], evaluate([full], point)[0]
        np.testing.assert_allclose(np.broadcast_to(lo, np.shape(fu)), fu, rtol=1e-9, atol=1e-12, err_msg=label)


def test_steps_and_graph_read_the_record(monkeypatch):
    """After the derivation, the steps need no rule: they read the sweep's record. The graph's edges carry
    the record's contributions themselves."""
    d = derive(*CASES[0][:2], elementwise=CASES[0][2], check=False)
    g = build_graph(d, backward=True)
    by_id = {n.id: n.node for n in g.nodes}
    edged = [e for e in g.edges if e.contribution is not None]
    assert edged and all(e.contribution is d.sweep.edge(by_id[e.head], e.arg).part for e in edged)

    def no_rule(*_):
        raise AssertionError("a VJP rule ran again")
    for op, rule in list(RULES.items()):
        monkeypatch.setitem(RULES, op, dataclasses.replace(rule, vjp=no_rule))
    assert "∂ℓ/∂x2 = W2ᵀ ∂ℓ/∂x3 = W2ᵀ x4" in d.steps()


def test_the_sweep_checks_every_adjoint_shape(monkeypatch):
    """A rule that returns a wrongly shaped adjoint is a bug the sweep reports, for the steps as for the
    gradients (the steps printer used to run its own sweep, without the check)."""
    x = E.var("x", (3,))
    bad = Node("neg", (x,))
    monkeypatch.setitem(RULES, "neg", dataclasses.replace(RULES["neg"], vjp=lambda g, node: [E.var("w", (4,))]))
    with pytest.raises(InternalError, match="rule for neg gave an adjoint of shape 4"):
        sweep(E.sum_all(bad), E.const(1), [x])


def test_hold_passes_the_stand_in_on():
    """With `hold`, a held node's users see its stand-in, not its expanded adjoint."""
    x = E.var("x", ())
    y = E.mul(x, x)
    ph = E.var("held", ())
    s = sweep(E.mul(y, y), E.const(1), [x], hold=lambda n: ph if n is y else None)
    assert ph in E.walk(s.local[x]) and ph not in E.walk(s.adjoints[x])

