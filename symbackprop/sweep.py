"""The reverse sweep: accumulate adjoints from the objective back to the variables.

`sweep` is the one implementation of liveness, accumulation and the adjoint-shape check; it returns a
`Sweep`, the record every view reads: the gradients (`Derivation`), the chain-rule steps (`Derivation.steps`)
and the backward graph (`render.build_graph`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .errors import InternalError
from .expr import RULES, Node, walk, is_zero, format_shape


@dataclass(frozen=True)
class Contribution:
    """What the edge `node` → its argument `index` adds to that argument's adjoint.

    `part` is the rule's VJP at the accumulated adjoint of `node`; `local` (only in a sweep with `hold`) is
    the same at the local adjoint: `hold(node)` if it holds `node`, else its accumulated local contributions."""
    node: Node
    index: int
    part: Node
    local: Node | None = None

    @property
    def arg(self) -> Node:
        return self.node.args[self.index]


@dataclass
class Sweep:
    """The record of one reverse sweep.

    order: the forward order of the nodes (arguments before users); live: the nodes on a path to a wanted
    node; adjoints: {node: accumulated adjoint}; contributions: every nonzero edge contribution, in the order
    the sweep added them (users in reverse forward order, then argument index); local: {node: its adjoint
    with each held node's adjoint standing in for that node's own} (a sweep with `hold` only)."""
    order: list[Node]
    live: set[Node]
    adjoints: dict[Node, Node]
    contributions: list[Contribution] = field(default_factory=list)
    local: dict[Node, Node] = field(default_factory=dict)

    def edge(self, node: Node, index: int) -> Contribution | None:
        """The contribution of argument `index` of `node`, if the sweep recorded one."""
        if not hasattr(self, "_by_edge"):
            self._by_edge = {(id(c.node), c.index): c for c in self.contributions}
        return self._by_edge.get((id(node), index))


def sweep(root: Node, seed: Node, wanted: list[Node] | None = None,
          hold: Callable[[Node], Node | None] | None = None) -> Sweep:
    """One reverse sweep from `root` (adjoint `seed`) to `wanted` (default: every variable).

    Only nodes on a path to `wanted` get adjoints; a node used several times (fan-out) gets the sum of its
    users' contributions, in the order recorded. With `hold`, the sweep also keeps the chain rule's local
    view: a node for which `hold(node)` returns a stand-in passes that stand-in on instead of its local
    adjoint, so each local adjoint reads in terms of the adjoints of the held nodes above it.

    >>> from symbackprop.expr import var
    >>> x = var("x")
    >>> s = sweep(x * x, var("one"))
    >>> s.adjoints[x], [(c.index, c.part) for c in s.contributions]
    (<mul 2·one·x : scalar>, [(0, <mul one·x : scalar>), (1, <mul one·x : scalar>)])
    """
    order = walk(root)
    targets = set(wanted) if wanted is not None else {n for n in order if n.op == "var"}
    live = set()                                    # nodes that depend on a target
    for node in order:
        if node in targets or any(a in live for a in node.args):
            live.add(node)
    record = Sweep(order, live, {root: seed}, [], {root: seed} if hold is not None else {})
    adj, local = record.adjoints, record.local
    for node in reversed(order):
        g = adj.get(node)
        if g is None or not node.args:
            continue
        parts = RULES[node.op].vjp(g, node)
        local_parts = [None] * len(parts)
        if hold is not None:
            stand_in = hold(node)
            lg = local.get(node) if stand_in is None else stand_in
            local_parts = parts if lg is g else RULES[node.op].vjp(lg, node) if lg is not None else local_parts
        for k, (arg, part, lpart) in enumerate(zip(node.args, parts, local_parts)):
            if part is None or arg not in live or is_zero(part):
                continue
            if part.shape != arg.shape:
                raise InternalError(f"rule for {node.op} gave an adjoint of shape {format_shape(part.shape)} "
                                    f"for an argument of shape {format_shape(arg.shape)}")
            adj[arg] = part if arg not in adj else adj[arg] + part
            if lpart is not None and not is_zero(lpart):
                local[arg] = lpart if arg not in local else local[arg] + lpart
            record.contributions.append(Contribution(node, k, part, lpart))
    return record


def backprop(root: Node, seed: Node, wanted: list[Node] | None = None) -> dict[Node, Node]:
    """Return {node: adjoint of root w.r.t. node} from one reverse sweep (see `sweep`).

    >>> from symbackprop.expr import var
    >>> x = var("x")
    >>> backprop(x * x, var("one"))[x]
    <mul 2·one·x : scalar>
    """
    return sweep(root, seed, wanted).adjoints
