"""Planning the statements of a generated function (a codegen stage): which values get a line and a name.

A value gets its own line when it is named by the user or the derivation, or used more than once;
everything else is printed in place. The planner is target-independent: the printer subclass supplies
`src` (a node's source), `refs` (the values a printed form refers to), `always_inline` and
`shape_comment`.
"""
from __future__ import annotations

from .chains import order_chains
from .derivation import Derivation
from .expr import Node, walk


def constant(n: Node) -> bool:
    """n depends on no input (its value prints as a Python number when it is a scalar)."""
    return not any(m.op == "var" for m in walk(n))


class Batched(dict):
    """Node -> whether its value carries the batch axis (depends on a batched input); nodes built
    while printing (diag(v) u = v ⊙ u) are worked out on first use."""

    def __init__(self, batch):
        super().__init__()
        self.batch = batch

    def __missing__(self, n: Node) -> bool:
        out = (n.op == "var" and n.attrs[0] in self.batch) or any(self[a] for a in n.args)
        self[n] = out
        return out



class StatementPlanner:
    """Plans the body of `forward`, `value_and_grad`, `hvp` or `hessian`; a printer subclass prints it."""

    def __init__(self, d: Derivation, wrt: list[str], batch: set[str], dtype: str, names: dict[Node, str],
                 dimnames: dict, batch_dim: str):
        self.d, self.wrt, self.batch, self.dtype = d, wrt, batch, dtype
        self.user_names, self.dimnames, self.B = names, dimnames, batch_dim
        self.name: dict[Node, str] = {}
        self.batched = Batched(batch)

    def plan(self, objective: Node | None, grads: dict[str, Node], adjoint_names: dict[Node, str]):
        """(forward lines, backward lines); objective None plans `grads` alone (hvp, hessian)."""
        head = [objective] if objective is not None else []
        roots = order_chains(head + list(grads.values()), set(self.d.program.names))
        objective, grads = (roots[0] if head else None), dict(zip(grads, roots[len(head):]))
        self.objective, self.grads = objective, grads
        self.planned: list[tuple[Node, str]] = []
        nodes = walk(roots)
        self.batched = Batched(self.batch)
        for n in nodes:                             # arguments first: no deep recursion in _Batched
            self.batched[n]
        uses: dict[Node, int] = {}
        for r in roots:
            uses[r] = uses.get(r, 0) + 1
        for n in nodes:
            for a in self.refs(n):
                uses[a] = uses.get(a, 0) + 1
        forward = set(walk(objective)) if objective is not None else set()
        self.name: dict[Node, str] = {}
        taken = set(self.user_names.values()) | set(self.dimnames.values()) | {self.B} | set(self.d.program.variables)
        counter = 0
        lines_f, lines_b = [], []
        needed = self._needed(roots)
        for n in nodes:
            if n not in needed or not n.args or self.always_inline(n):
                continue
            named = n in self.user_names and n is not objective
            if not named and uses.get(n, 0) < 2:
                continue
            if named:
                nm = self.user_names[n]
            elif n in adjoint_names and adjoint_names[n] not in taken:
                nm = adjoint_names[n]
            else:
                while f"_t{counter}" in taken:
                    counter += 1
                nm = f"_t{counter}"
                counter += 1
            taken.add(nm)
            src = self.src(n)[0]
            self.name[n] = nm
            line = f"{nm} = {src}"
            line = f"{line}  # {self.shape_comment(n)}"
            (lines_f if n in forward else lines_b).append(line)
            self.planned.append((n, line))
        return lines_f, lines_b

    def _needed(self, roots):
        """Nodes whose values the printed code refers to (diag(v) under a product is never built)."""
        out, stack = set(), list(roots)
        while stack:
            n = stack.pop()
            if n in out:
                continue
            out.add(n)
            stack.extend(self.refs(n))
        return out
