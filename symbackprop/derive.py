"""The reverse sweep: accumulate adjoints from the objective back to the variables."""
from __future__ import annotations

from .errors import InternalError
from .expr import RULES, Node, walk, is_zero, format_shape


def backprop(root: Node, seed: Node, wanted: list[Node] | None = None) -> dict[Node, Node]:
    """Return {node: adjoint of root w.r.t. node} from one reverse sweep.

    Only nodes on a path to `wanted` (default: every variable) get adjoints; a
    node used several times (fan-out) gets the sum of its users' contributions.

    >>> from symbackprop.expr import var
    >>> x = var("x")
    >>> backprop(x * x, var("one"))[x]
    <mul 2·one·x : scalar>
    """
    order = walk(root)
    targets = set(wanted) if wanted is not None else {n for n in order if n.op == "var"}
    live = set()                                    # nodes that depend on a target
    for node in order:
        if node in targets or any(a in live for a in node.args):
            live.add(node)
    adj: dict[Node, Node] = {root: seed}
    for node in reversed(order):
        g = adj.get(node)
        if g is None or not node.args:
            continue
        parts = RULES[node.op].vjp(g, node)
        for arg, part in zip(node.args, parts):
            if part is None or arg not in live or is_zero(part):
                continue
            if part.shape != arg.shape:
                raise InternalError(f"rule for {node.op} gave an adjoint of shape {format_shape(part.shape)} "
                                    f"for an argument of shape {format_shape(arg.shape)}")
            adj[arg] = part if arg not in adj else adj[arg] + part
    return adj
