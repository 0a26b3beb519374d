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

#: Modules allowed to branch on an operator's name (compare a node's op with it, match it, or key a dict
#: with it), and why. Each is capped at the count it has now, so the list can only shrink. Building a
#: node (`E.Node("matmul", …)`) is not a branch and is not counted.
ALLOWED = {
    "expr.py": (31, "the expression core: the builders' simplifications (x + 0, (Aᵀ)ᵀ, s·(t·X), …) are the "
                    "algebra of the arithmetic operators themselves, not a per-operator behaviour table"),
    "chains.py": (14, "matrix-chain ordering is the algebra of the product operators themselves "
                      "(matmul, outer, transpose); no other operator has or needs an entry"),
    "linear_maps.py": (10, "pulling v out of a linear map distributes over the linear operators (add, sub, "
                           "neg, matmul, outer, diag) before the per-operator rules of rules_linear.py apply"),
    "check_support.py": (21, "the checker reads a claim's terms off sums, differences and products (to name "
                             "the term that is wrong), and the divisors and fractional powers whose sign "
                             "decides where a claim is defined"),
    "judge.py": (16, "the claim checker's diagnoses name the mistakes students make with specific "
                     "operators (a transposed product, a missing relu', a log of a negative number)"),
    "derivation.py": (7, "the chain-rule steps say 'the adjoint is passed through unchanged' for sums and "
                         "signs, and print a product's local factor on the side it multiplies"),
    "whitelist.py": (7, "the parser maps the grammar's own operators (+ − * / ** .T) to nodes"),
    "parse.py": (1, "the parser maps the grammar's `.T` to a node"),
    "evaluate.py": (3, "evaluation of abstract functions (concrete stand-ins) and inv's conditioning check"),
    "relu/problem.py": (5, "the training problem's target functions, keyed by their own names"),
    "commands/graph.py": (1, "the DOT output format, `dot`, not the operator"),
    "render.py": (1, "the DOT output format, `dot`, not the operator"),
}


def _branch_literals(path: Path, ops: set) -> list[tuple[int, str]]:
    """Operator names (leaves excepted: every stage knows inputs and numbers) used to branch: compared
    with (`x.op == "inv"`, `op in ("add", "sub")`), matched, or used as a dict literal's keys."""
    hits = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Compare):
            pools = [node.left, *node.comparators]
        elif isinstance(node, ast.match_case):
            pools = [node.pattern]
        elif isinstance(node, ast.Dict):
            pools = [k for k in node.keys if k is not None]
        else:
            continue
        for pool in pools:
            for c in ast.walk(pool):
                if isinstance(c, ast.Constant) and isinstance(c.value, str) and c.value in ops:
                    hits.append((c.lineno, c.value))
    return hits


def test_the_branch_detector_sees_branches_and_not_constructions(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('if x.op == "inv": pass\nif x.op in ("add", "sub"): pass\nE.Node("matmul", (a, b))\n'
                      'table = {"outer": 1}\nmatch x.op:\n    case "trace": pass\n', encoding="utf-8")
    assert sorted(v for _, v in _branch_literals(sample, {"inv", "add", "sub", "matmul", "outer", "trace"})) \
        == ["add", "inv", "outer", "sub", "trace"]


def test_no_operator_names_outside_the_rule_modules():
    ops = {op for op, rule in RULES.items() if rule.kind != "leaf"}
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if path.name.startswith("rules"):
            continue
        hits = _branch_literals(path, ops)
        if hits:
            found[rel] = hits
    unexpected = {rel: hits for rel, hits in found.items() if rel not in ALLOWED}
    assert not unexpected, f"operator-name branches outside the rule modules (register the behaviour instead): {unexpected}"
    grown = {rel: len(hits) for rel, hits in found.items() if len(hits) > ALLOWED[rel][0]}
    assert not grown, f"more operator-name branches than allowed: {grown}"
    for rel in ("emit.py", "plan.py", "printer_numpy.py", "printer_array_api.py", "printer_torch.py", "sympy_bridge.py",
                "scalar.py", "hessian.py", "check.py", "graph.py", "printing.py", "sweep.py"):
        assert rel not in found, rel
