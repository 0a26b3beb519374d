"""Second order: Hessian-vector products by a second reverse sweep, and closed-form Hessians read off them.

The gradient a derivation returns is itself an expression over the rule table's
operators, so its directional derivative needs no new rule: the Hessian-vector
product along a direction v is the gradient of ⟨∇ℓ, v⟩, one more reverse sweep
over the gradient's own graph ("reverse over reverse"; the result is the same
expression forward-over-reverse would give, since H v = ∇⟨∇ℓ, v⟩).

For a vector variable the HVP is a linear map v ↦ H v, and `hessian_matrix` (linear_maps.py)
reads the matrix H off it by pulling v out of the expression:
A (B v) -> A B, a ⊙ v -> diag(a) v, u (wᵀv) -> u wᵀ, …  For a matrix variable
the Hessian is a 4-index object and only the HVP is given.

    >>> from symbackprop import derive
    >>> so = second_order(derive("x @ A @ x", {"A": "n,n", "x": "n"}, wrt=["x"]))
    >>> print(so.hessian_text())
    ∂²ℓ/∂x² = Aᵀ + A    [n×n]
"""
from __future__ import annotations

import json
import math

import numpy as np

from . import expr as E
from .derivation import Derivation, resolve_wrt
from .sweep import backprop
from .errors import InternalError
from .evaluate import evaluate, find_point
from .expr import Node, format_shape
from .linear_maps import hessian_matrix  # noqa: F401
from .printing import print_expr, to_latex, to_text
from .tolerances import FD_ATOL, FD_EPS, FD_RTOL, SECOND_ORDER_SLACK, TINY

CHECK_TRIALS = 3


# ----- the second sweep -----

def inner(a: Node, b: Node) -> Node:
    """⟨a, b⟩ = sum of the entrywise products, for two arrays of the same shape."""
    if a.ndim == 0:
        return E.mul(a, b)
    if a.ndim == 1:
        return E.dot(a, b)
    return E.sum_all(E.mul(a, b))


def hvp(grads: dict[Node, Node], directions: dict[Node, Node]) -> dict[Node, Node]:
    """{variable: (H v) block} for the Hessian of the objective whose gradients are `grads`.

    `grads` maps each variable node to its gradient expression, `directions` each variable
    node to a direction variable shaped like it; H v = ∇⟨∇ℓ, v⟩ by one reverse sweep.

    >>> x, v = E.var("x", ()), E.var("v", ())
    >>> print(to_text(hvp({x: 3 * x * x}, {x: v})[x]))
    6·v·x
    """
    s = E.const(0)
    for node, g in grads.items():
        s = E.add(s, inner(g, directions[node]))
    adj = backprop(s, E.const(1), list(grads))
    return {node: adj.get(node, E.zeros(node.shape)) for node in grads}


# ----- what a user asks for -----

class SecondOrder:
    """Hessian-vector products of a derivation's objective (w.r.t. its variables) and, for one
    vector or scalar variable, the Hessian in closed form; numerically self-checked.

    `directions` maps each variable name to the direction variable of the HVP (v, or v_x, v_W, …
    when there are several)."""

    def __init__(self, d: Derivation, wrt=None, check: bool = True, seed: int = 0, direction_names=None):
        self.d = d
        program = d.program
        names = list(wrt) if wrt else list(d.wrt_nodes)
        resolve_wrt(program, names, kinds=("variable",), why="second derivatives are taken with respect to variables")
        if any(n not in d.grads for n in names):
            d = self.d = Derivation(program, wrt=names, check=check, seed=seed)
        self.wrt = names
        self._names_cache = None
        self.variables = {n: program.variables[n] for n in names}
        taken = set(program.variables) | set(program.intermediates) | {s.name for s in program.dims}
        self.directions: dict[str, Node] = {}
        for n in names:
            if direction_names:
                self.directions[n] = E.var(direction_names[n], self.variables[n].shape)
                continue
            nm = "v" if len(names) == 1 else f"v_{n}"
            while nm in taken:
                nm += "_"
            taken.add(nm)
            self.directions[n] = E.var(nm, self.variables[n].shape)
        out = hvp({self.variables[n]: d.grads[n] for n in names},
                  {self.variables[n]: self.directions[n] for n in names})
        self.hvps: dict[str, Node] = {n: out[self.variables[n]] for n in names}
        self.hessian: Node | None = None
        self.hessian_note = ""
        if len(names) == 1:
            n = names[0]
            var = self.variables[n]
            if var.ndim == 2:
                self.hessian_note = (f"{n} is a matrix ({format_shape(var.shape)}), so its Hessian is a 4-index "
                                     f"object; the Hessian-vector product is its closed form")
            else:
                self.hessian = hessian_matrix(self.hvps[n], self.directions[n])
                if self.hessian is None:
                    self.hessian_note = "no closed matrix form was recognised; the Hessian-vector product is exact"
        else:
            self.hessian_note = "a Hessian is given for one variable at a time (--wrt NAME)"
        self.checks = self._self_check(seed) if check else {}

    @property
    def objective_name(self) -> str:
        return self.d.objective_name

    # ----- checking -----

    def _self_check(self, seed: int) -> dict:
        """H v and (where there is one) the matrix H against central differences of the gradient along v."""
        rng = np.random.default_rng(seed + 1)
        grads = [self.d.grads[n] for n in self.wrt]
        hv = [self.hvps[n] for n in self.wrt]
        extra = [self.hessian] if self.hessian is not None else []
        worst, trials = 0.0, 0
        for _ in range(CHECK_TRIALS):
            point, _ = find_point(self.d.program, rng, [self.d.objective] + grads)
            if point is None:
                break
            for n, v in self.directions.items():
                point.values[v.attrs[0]] = rng.standard_normal(
                    tuple(int(s) if isinstance(s, int) else point.dims[s] for s in v.shape))
            vals = evaluate(hv + extra, point)
            if not all(np.all(np.isfinite(x)) for x in vals):
                continue
            xs = {n: np.asarray(point.values[n], dtype=float) for n in self.wrt}
            dirs = {n: np.asarray(point.values[self.directions[n].attrs[0]], dtype=float) for n in self.wrt}
            scale = max([1.0] + [float(np.max(np.abs(x))) for x in xs.values() if x.size])
            eps = FD_EPS * scale
            hi = evaluate(grads, point, {self.variables[n]: xs[n] + eps * dirs[n] for n in self.wrt})
            lo = evaluate(grads, point, {self.variables[n]: xs[n] - eps * dirs[n] for n in self.wrt})
            g0 = evaluate(grads, point)
            trials += 1
            for i, n in enumerate(self.wrt):
                numeric = (np.asarray(hi[i], float) - np.asarray(lo[i], float)) / (2 * eps)
                got = [np.broadcast_to(vals[i], xs[n].shape)]
                if extra:
                    H = np.asarray(vals[-1], float)
                    got.append(H @ dirs[n] if dirs[n].ndim else H * dirs[n])
                for analytic in got:
                    err = float(np.max(np.abs(numeric - analytic))) if numeric.size else 0.0
                    size = max(float(np.max(np.abs(numeric))) if numeric.size else 0.0,
                               float(np.max(np.abs(analytic))) if numeric.size else 0.0)
                    gscale = float(np.max(np.abs(g0[i]))) if np.size(g0[i]) else 0.0
                    tol = SECOND_ORDER_SLACK * (FD_RTOL * size + FD_ATOL * max(1.0, gscale))
                    rel = err / max(size, TINY)
                    worst = max(worst, rel if math.isfinite(rel) else math.inf)
                    if not (math.isfinite(err) and err <= tol):
                        raise InternalError(
                            f"self-check failed: the derived second derivative with respect to {n} disagrees with "
                            f"finite differences of the gradient (max error {err:.2e}). This is a bug in "
                            f"symbackprop; please report it with the formula and shapes.")
        return {"trials": trials, "worst_relative_error": worst}

    # ----- presentation -----

    def _names(self) -> dict[Node, str]:
        """One set of printing names for the gradients, HVPs and Hessian: the gradients' names first
        (t1, … numbered as `derive` numbers them), then those the HVPs and the Hessian add. Every part of
        an output prints with it, so a name has one meaning and one definition throughout."""
        if self._names_cache is None:
            names = self.d.result_names([self.d.grads[n] for n in self.wrt])
            names = self.d.result_names([self.hvps[n] for n in self.wrt], names)
            if self.hessian is not None:
                names = self.d.result_names([self.hessian], names)
            self._names_cache = names
        return self._names_cache

    def _label(self, name: str) -> str:
        obj = self.objective_name
        if len(self.wrt) == 1:
            return f"∂²{obj}/∂{name}² · {self.directions[name].attrs[0]}"
        return f"(H v)_{name}"

    def steps(self, style: str = "text") -> str:
        """The first-order steps, with names that extend this output's (see `Derivation.steps`)."""
        return self.d.steps(style, names=self._names())

    def gradient_text(self) -> str:
        """The gradients, named as in `hvp_text` and `hessian_text`."""
        names = self._names()
        roots = [self.d.grads[n] for n in self.wrt]
        lines = [f"∂{self.objective_name}/∂{n} = {to_text(r, names)}    [{format_shape(r.shape)}]"
                 for n, r in zip(self.wrt, roots)]
        return "\n".join(lines + self._where_lines(names, roots))

    def hvp_text(self) -> str:
        roots = [self.hvps[n] for n in self.wrt]
        names = self._names()
        lines = []
        if len(self.wrt) > 1:
            vs = ", ".join(self.directions[n].attrs[0] for n in self.wrt)
            lines.append(f"H is the Hessian of {self.objective_name} with respect to ({', '.join(self.wrt)}); "
                         f"v = ({vs}), each shaped like its variable.")
        for n, r in zip(self.wrt, roots):
            lines.append(f"{self._label(n)} = {to_text(r, names)}    [{format_shape(r.shape)}]")
        lines += self._where_lines(names, roots)
        return "\n".join(lines)

    def hessian_text(self) -> str:
        if self.hessian is None:
            return ""
        n = self.wrt[0]
        names = self._names()
        lines = [f"∂²{self.objective_name}/∂{n}² = {to_text(self.hessian, names)}    "
                 f"[{format_shape(self.hessian.shape)}]"]
        lines += self._where_lines(names, [self.hessian])
        return "\n".join(lines)

    def _where_lines(self, names, roots, style="text"):
        where = self.d.definitions(names, roots, style)
        if not where:
            return []
        return ["where"] + [f"  {k} = {v}    [{format_shape(sh)}]" for k, v, sh in where]

    def _roots(self) -> list[Node]:
        return [self.d.grads[n] for n in self.wrt] + [self.hvps[n] for n in self.wrt] + \
            ([self.hessian] if self.hessian is not None else [])

    def latex(self) -> str:
        from .derivation import latex_ident, latex_names
        names = self._names()
        tex = latex_names(names)
        obj = latex_ident(self.objective_name)
        rows = []
        for n in self.wrt:
            v = latex_ident(self.directions[n].attrs[0])
            lhs = (f"\\frac{{\\partial^2 {obj}}}{{\\partial {latex_ident(n)}^2}} {v}" if len(self.wrt) == 1
                   else f"(H v)_{{{latex_ident(n)}}}")
            rows.append(f"{lhs} &= {to_latex(self.hvps[n], tex)}")
        if self.hessian is not None:
            rows.append(f"\\frac{{\\partial^2 {obj}}}{{\\partial {latex_ident(self.wrt[0])}^2}} &= "
                        f"{to_latex(self.hessian, tex)}")
        roots = self._roots()[len(self.wrt):]
        for k, v, _ in self.d.definitions(tex, roots, "latex"):
            rows.append(f"{k} &= {v}")
        return "\\begin{aligned}\n" + " \\\\\n".join(rows) + "\n\\end{aligned}"

    def to_dict(self) -> dict:
        """Gradients, HVPs and the Hessian as text, LaTeX and NumPy, over one set of names defined in `where`."""
        from .derivation import latex_names
        names = self._names()
        tex = latex_names(names)

        def forms(node):
            return {"shape": [str(s) for s in node.shape], "text": print_expr(node, "text", names),
                    "latex": print_expr(node, "latex", tex), "numpy": print_expr(node, "np", names)}

        return {
            "formula": self.d.program.source,
            "objective": self.objective_name,
            "wrt": list(self.wrt),
            "directions": {n: self.directions[n].attrs[0] for n in self.wrt},
            "gradients": {n: forms(self.d.grads[n]) for n in self.wrt},
            "hvp": {n: forms(self.hvps[n]) for n in self.wrt},
            "hessian": None if self.hessian is None else forms(self.hessian),
            "note": self.hessian_note,
            "where": {k: {"text": print_expr(node, "text", names, define=True),
                          "latex": print_expr(node, "latex", tex, define=True),
                          "numpy": print_expr(node, "np", names, define=True),
                          "shape": [str(s) for s in node.shape]}
                      for k, node in self.d.defined_nodes(names, self._roots())},
            "check": self.checks,
        }

    def to_json(self, ascii: bool = False) -> str:
        """`to_dict` as JSON (`ascii`: escape every non-ASCII character)."""
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=ascii)


def second_order(d: Derivation, wrt=None, check: bool = True, seed: int = 0) -> SecondOrder:
    """Hessian-vector products (and the closed-form Hessian for one vector variable) of a derivation.

    >>> from symbackprop import derive
    >>> so = second_order(derive("norm(A @ x - b)**2", {"A": "m,n", "x": "n", "b": "m"}), wrt=["x"])
    >>> print(so.hessian_text())
    ∂²ℓ/∂x² = 2·Aᵀ A    [n×n]
    """
    return SecondOrder(d, wrt=wrt, check=check, seed=seed)
