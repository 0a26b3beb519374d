"""Issue 12: every per-operator behaviour is registered with its operator, and nothing else branches on names.

One test parametrised over the rule table checks that each behaviour is present or explicitly
declined; others check that a missing entry fails loudly (never a silent fallback), and that no
module outside the rule modules spells an operator's name where it compares a node's op.
"""
from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

import symbackprop as sb
from symbackprop.emit import emit_module
from symbackprop.errors import InternalError
from symbackprop.expr import RULES
from symbackprop.rules_linear import LINEAR, NOT_LINEAR, linear_rule
from symbackprop.rules_numpy import BATCHED, NUMPY
from symbackprop.rules_sympy import SYMPY, sympy_rule

PACKAGE = Path(sb.__file__).resolve().parent
DOMAINS = {"real", "positive", "away_from_zero", "well_conditioned", "small"}


def _macro(rule) -> bool:
    """Derivative macros (relu', …) stand for their expansion and are never evaluated or emitted as such."""
    return rule.expand is not None


@pytest.mark.parametrize("op", sorted(RULES))
def test_every_behaviour_is_registered(op):
    rule = RULES[op]
    leaf, abstract, elementwise = rule.kind == "leaf", rule.kind == "abstract", rule.kind == "elementwise"
    # the VJP and the shape rule (leaves have a fixed shape and no arguments)
    assert callable(rule.vjp), op
    assert callable(rule.shape) or leaf, op
    # evaluation: leaves and abstract functions are evaluated by evaluate.py itself, macros by expansion
    assert callable(rule.fn) or leaf or abstract or _macro(rule) or op in ("var", "const"), op
    # printed forms
    for form in (rule.text, rule.latex):
        assert form is not None, op
    assert rule.np is not None or _macro(rule), op
    # SymPy conversion: present, or declined by kind (elementwise functions)
    assert op in SYMPY or elementwise, op
    assert callable(sympy_rule(op))
    # the Hessian's linear-map rule: present (NOT_LINEAR is an explicit decline), or elementwise
    assert op in LINEAR or elementwise, op
    assert callable(linear_rule(op))
    # the batched NumPy form: a form of its own, or declared batch-safe; macros are expanded first
    assert op in BATCHED or op in NUMPY or rule.batch_safe or _macro(rule), op
    # kinks and domains
    assert isinstance(rule.kink, bool) and rule.domain in DOMAINS, op


def test_elementwise_rules_decline_explicitly():
    for op, rule in RULES.items():
        if rule.kind == "elementwise":
            assert rule.batch_safe, op
            assert linear_rule(op) is NOT_LINEAR or op in LINEAR, op


def test_a_missing_entry_raises(monkeypatch):
    fake = dataclasses.replace(RULES["inv"], kind="linalg")
    monkeypatch.setitem(RULES, "_unregistered", fake)
    with pytest.raises(InternalError, match="SymPy conversion rule for `_unregistered` not implemented"):
        sympy_rule("_unregistered")
    with pytest.raises(InternalError, match="Hessian linear-map rule for `_unregistered` not implemented"):
        linear_rule("_unregistered")


def test_the_batched_printer_never_prints_an_unbatched_form_silently(monkeypatch):
    program = sb.parse_formula("sum(inv(A) @ x)", {"A": "n,n", "x": "n"})
    assert "np.linalg.inv(A)" in emit_module(program, batch=["A"])          # inv is declared batch-safe
    monkeypatch.setitem(RULES, "inv", dataclasses.replace(RULES["inv"], batch_safe=False))
    with pytest.raises(InternalError, match="Batching rule for `inv` not implemented"):
        emit_module(program, batch=["A"])
    assert "np.linalg.inv(A)" in emit_module(program)                         # unbatched: the template


# ----- no per-operator branches outside the rule modules -----

#: Modules allowed to compare a node's op with an operator's name, and why. Each is capped at the count
#: it has now, so the list can only shrink.
ALLOWED = {
    "chains.py": (17, "matrix-chain ordering is the algebra of the four product operators themselves "
                      "(matmul, outer, dot, transpose); no other operator has or needs an entry"),
    "expr.py": (59, "the expression core: the builders' simplifications (x + 0, (Aᵀ)ᵀ, …) are identities "
                    "of specific operators, like the rules; not a per-operator behaviour table"),
    "check.py": (20, "the claim checker's diagnoses name the mistakes students make with specific "
                     "operators (a transposed product, a missing sign, a missing relu')"),
    "check_support.py": (24, "the checker reads a claim's terms off sums, differences and products (to name "
                             "the term that is wrong), a dot product's scalar factor, and the divisors and "
                             "fractional powers whose sign decides where a claim is defined"),
    "derivation.py": (7, "the backward sweep's presentation (owned by another helper in issue 12)"),
    "render.py": (3, "graph drawing (owned by another helper in issue 12)"),
    "hessian.py": (11, "the helpers outside _Linear (owned by another helper in issue 12)"),
    "parse.py": (18, "the parser builds the nodes of the grammar's own operators (+ − * / ** .T)"),
    "evaluate.py": (3, "evaluation of abstract functions and inv's conditioning check"),
    "relu/problem.py": (5, "the training problem's own formulas"),
    "relu/plots.py": (7, "the training problem's own formulas"),
    "relu/__init__.py": (2, "the training problem's own formulas"),
    "cli.py": (2, "examples in the help text"),
    "commands/relu.py": (2, "the training problem's own formulas"),
    "commands/graph.py": (1, "the name of the Graphviz program, `dot`"),
    "catalog.py": (4, "the formulas of the committed generated modules (mlp_relu, mlp_tanh)"),
    "formatting.py": (1, "the Greek letter names LaTeX knows (`phi` → \\phi), not the operator"),
}


def _op_literals(path: Path, ops: set) -> list[tuple[int, str]]:
    """String literals naming an operator (leaves excepted: every stage knows inputs and numbers)."""
    return [(node.lineno, node.value) for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in ops]


def test_no_operator_names_outside_the_rule_modules():
    ops = {op for op, rule in RULES.items() if rule.kind != "leaf"}
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if path.name.startswith("rules"):
            continue
        hits = _op_literals(path, ops)
        if hits:
            found[rel] = hits
    unexpected = {rel: hits for rel, hits in found.items() if rel not in ALLOWED}
    assert not unexpected, f"operator names outside the rule modules (register the behaviour instead): {unexpected}"
    grown = {rel: len(hits) for rel, hits in found.items() if len(hits) > ALLOWED[rel][0]}
    assert not grown, f"more operator names than allowed: {grown}"
    for rel in ("emit.py", "plan.py", "printer_numpy.py", "sympy_bridge.py", "scalar.py"):
        assert rel not in found, rel
