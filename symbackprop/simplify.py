"""One simplifier for results: the rewrites of rules_simplify.REWRITES, applied bottom-up over the DAG.

Every node is simplified once (a memo over the DAG, shared by all the roots of one Simplifier), its
arguments first; then the rewrites registered for its operator are tried until none applies. A rewrite
only looks at a node and its nearest arguments, and what it builds is simplified through the same memo, so
the cost is linear in the size of the DAG. The simplified expressions are the ones that are printed,
checked against finite differences and emitted (Derivation.grads).

>>> from symbackprop.expr import var
>>> from symbackprop.rules import apply_fn
>>> x = var("x", (3,))
>>> print(simplify(apply_fn("log'", x) * var("g", (3,))))
<div g ⊘ x : 3>
"""
from __future__ import annotations

from .errors import InternalError
from .expr import Node, apply, format_shape
from .rules_simplify import candidates

#: Rewrites tried on one node before it is left as it is (a safeguard: the rules terminate on their own).
MAX_REWRITES = 12
#: Nesting of rewrites inside the results of rewrites (each result is simplified in turn).
MAX_DEPTH = 24


class Simplifier:
    """Simplify nodes with a memo shared across calls (call it on several roots: shared parts stay shared)."""

    def __init__(self):
        self.memo: dict[Node, Node] = {}
        self.depth = 0

    def __call__(self, root: Node) -> Node:
        memo = self.memo
        hit = memo.get(root)
        if hit is not None:
            return hit
        if self.depth > MAX_DEPTH:                   # a safeguard: rewrites nested this deep are left undone
            return root
        self.depth += 1
        try:
            return self._simplify(root)
        finally:
            self.depth -= 1

    def _simplify(self, root: Node) -> Node:
        memo = self.memo
        for node in _pending(root, memo):
            if node in memo:
                continue
            if not node.args:
                memo[node] = node
                continue
            args = [memo[a] for a in node.args]
            same = True
            for x, y in zip(args, node.args):
                if x is not y:
                    same = False
                    break
            new = node if same else apply(node.op, *args, attrs=node.attrs)
            if new is node:
                if candidates(node):                 # most nodes: one lookup says no rewrite can apply
                    new = self._rewrite(new)
            elif new in memo:
                new = memo[new]
            else:                                    # the constructors may have built new inner nodes too
                new = self(new)
            memo[node] = new
            memo.setdefault(new, new)
        return memo[root]

    def _rewrite(self, node: Node) -> Node:
        passed = []
        for _ in range(MAX_REWRITES):
            for rule in candidates(node):
                out = rule.fn(node, self)
                if out is None or out is node:
                    continue
                if out.shape != node.shape:
                    raise InternalError(f"the rewrite `{rule.name}` changed a shape from {format_shape(node.shape)} "
                                        f"to {format_shape(out.shape)}. This is a bug in symbackprop; please "
                                        f"report it with the formula and shapes.")
                passed.append(node)
                self.memo.setdefault(node, node)          # a rewrite that builds this node again stops there
                node = self(out)
                break
            else:
                break
        for p in passed:
            self.memo[p] = node
        return node


def _pending(root: Node, memo: dict) -> list[Node]:
    """The nodes under `root` not yet in `memo`, arguments before users (iterative: any depth)."""
    order: list[Node] = []
    seen: set[int] = set()
    stack = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in seen or node in memo:
            continue
        seen.add(id(node))
        stack.append((node, True))
        for arg in node.args:
            if arg not in memo and id(arg) not in seen:
                stack.append((arg, False))
    return order


def simplify(root: Node) -> Node:
    """`root` simplified by the rewrites of the rule table (see the module docstring)."""
    return Simplifier()(root)
