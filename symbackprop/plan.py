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

    def temporaries(self) -> tuple[set, set]:
        """(array names, scalar names) of the values this plan named: what `release` may free or drop."""
        arrays = {nm for n, nm in self.name.items() if n.ndim or self.batched[n]}
        return arrays, set(self.name.values()) - arrays

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


# ----- liveness: free each temporary once nothing reads it -----

def _reads_and_writes(statement: str) -> tuple[set, set, bool]:
    """(names read, names bound, whether the value is a bare name) of one printed statement."""
    import ast
    tree = ast.parse(statement.strip())
    reads, writes = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (reads if isinstance(node.ctx, ast.Load) else writes).add(node.id)
    body = tree.body[0] if tree.body else None
    alias = isinstance(body, ast.Assign) and isinstance(body.value, ast.Name)
    return reads, writes, alias


def release(sections: list[list[str]], result: str, temporaries: set[str], scalars=frozenset()) -> list[list[str]]:
    """The statements of one function body with each temporary freed once nothing reads it.

    `sections` are the body's statements in order (split as the function prints them), `result`
    the returned expression, `temporaries` the planned array values the function may free (never
    its inputs), `scalars` planned scalar values (dropped when dead, never worth a `del`). Two rewrites, both deterministic and both plain Python:
      - a statement that binds only names nothing reads later (the value in `grad`, which returns
        no value) is dropped, and so on backwards;
      - `del a, b` follows the statement that reads `a` and `b` last, so the peak memory is that
        of the values still needed, as in code written by hand. No `del` after the last statement
        (returning frees everything), nor after `y = x` (the value lives on as y).

    >>> release([["x1 = x * 2", "x2 = x1 + 1", "unused = x1 * 3"], ["y = x2 * x2"]], "y.sum()", {"x1", "x2", "unused"})
    [['x1 = x * 2', 'x2 = x1 + 1', 'del x1'], ['y = x2 * x2']]
    """
    flat = [(i, line) for i, lines in enumerate(sections) for line in lines]
    info = [_reads_and_writes(line) for _, line in flat]
    live = _reads_and_writes(result)[0]
    kept = [False] * len(flat)
    for k in range(len(flat) - 1, -1, -1):           # backwards: drop statements whose names nobody reads
        reads, writes, _ = info[k]
        if writes and writes <= (temporaries | set(scalars)) and not (writes & live):
            continue
        kept[k] = True
        live |= reads
    order = [k for k in range(len(flat)) if kept[k]]
    defined: dict[str, int] = {}
    last: dict[str, int] = {}
    for k in order:
        for nm in info[k][1]:
            defined.setdefault(nm, k)
        for nm in info[k][0] & temporaries:
            last[nm] = k
    for nm in _reads_and_writes(result)[0]:
        last.pop(nm, None)                           # returned: lives to the end
    frees: dict[int, list[str]] = {}
    for nm, k in last.items():
        frees.setdefault(k, []).append(nm)
    out: list[list[str]] = [[] for _ in sections]
    for pos, k in enumerate(order):
        i, line = flat[k]
        out[i].append(line)
        names = frees.get(k)
        if names and pos < len(order) - 1 and not info[k][2]:
            out[i].append("del " + ", ".join(sorted(names, key=lambda nm: (defined.get(nm, -1), nm))))
    return out
