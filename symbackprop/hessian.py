"""Second order: Hessian-vector products by a second reverse sweep, and closed-form Hessians read off them.

The gradient a derivation returns is itself an expression over the rule table's
operators, so its directional derivative needs no new rule: the Hessian-vector
product along a direction v is the gradient of ⟨∇ℓ, v⟩, one more reverse sweep
over the gradient's own graph ("reverse over reverse"; the result is the same
expression forward-over-reverse would give, since H v = ∇⟨∇ℓ, v⟩).

For a vector variable the HVP is a linear map v ↦ H v, and `hessian_matrix`
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
from dataclasses import dataclass, fields
from typing import ClassVar

import numpy as np

from . import expr as E
from .derivation import Derivation, resolve_wrt
from .derive import backprop
from .errors import InternalError
from .evaluate import evaluate, find_point
from .expr import Node, format_shape, walk
from .printing import render, to_latex, to_text
from .rules_linear import linear_rule
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


# ----- reading the matrix off a linear map -----

class NotLinear(Exception):
    """The expression is not (recognisably) linear in the direction."""


def _dg(a: Node) -> Node:
    """diag(a) as a matrix (a vector): printed diag(a); emitted as a broadcast wherever it multiplies."""
    return Node("diag", (a,))


def _is_dg(n: Node) -> bool:
    return n.op == "diag" and n.args[0].ndim == 1


def _lm(A: Node, M: Node) -> Node:
    """A @ M with the rewrites that keep Hessians readable: diag(a) distributes over sums, folds into
    diag(b) and outer(u, w), and A outer(u, w) = (A u) wᵀ."""
    if M.op == "eye":
        return A
    if A.op == "eye":
        return M
    c, X = E.split_coeff(M)
    if c != 1:
        return E.scaled(c, _lm(A, X))
    if M.op == "outer":
        return E.outer(_mv(A, M.args[0]), M.args[1])
    if _is_dg(A):
        a = A.args[0]
        if _is_dg(M):
            return _dg(E.mul(a, M.args[0]))
        if M.op == "matmul" and _is_dg(M.args[0]):
            return _lm(_dg(E.mul(a, M.args[0].args[0])), M.args[1])
        if M.op in ("add", "sub"):
            return E.apply(M.op, _lm(A, M.args[0]), _lm(A, M.args[1]))
    return E.matmul(A, M)


def _mv(A: Node, u: Node) -> Node:
    """A @ u for a vector u; diag(a) u = a ⊙ u."""
    if _is_dg(A):
        return E.mul(A.args[0], u)
    return E.matmul(A, u)


def _terms(M: Node, sign: int, out: list) -> list:
    """M as a signed sum of terms."""
    if M.op in ("add", "sub"):
        _terms(M.args[0], sign, out)
        _terms(M.args[1], sign if M.op == "add" else -sign, out)
    elif M.op == "neg":
        _terms(M.args[0], -sign, out)
    else:
        out.append((sign, M))
    return out


def _collect(M: Node) -> Node:
    """diag(a) R ± diag(b) R -> diag(a ± b) R: one diagonal per right factor."""
    terms = _terms(M, 1, [])
    groups: dict[Node, list] = {}
    rest = []
    for sign, t in terms:
        if t.op == "matmul" and _is_dg(t.args[0]):
            groups.setdefault(t.args[1], []).append(E.scaled(sign, t.args[0].args[0]))
        else:
            rest.append((sign, t))
    if all(len(g) < 2 for g in groups.values()):
        return M
    out = None
    for R, parts in groups.items():
        a = parts[0]
        for p in parts[1:]:
            a = E.add(a, p)
        t = _lm(_dg(a), R)
        out = t if out is None else E.add(out, t)
    for sign, t in rest:
        out = E.add(out, t) if sign > 0 else E.sub(out, t)
    return out


def _covec(M: Node, c: Node) -> Node:
    """Mᵀ c: the covector of the scalar cᵀ (M v)."""
    if M.op == "eye":
        return c
    if _is_dg(M):
        return E.mul(M.args[0], c)
    return _mv(E.transpose(M), c)


class _Term:
    """A term of a matrix linear in a vector direction v (see _Linear). Its fields read by name; t[0] is its
    TAG and t[1], t[2], … its fields, for the per-operator branches of _Linear.apply."""
    TAG: ClassVar[str] = ""

    def __getitem__(self, i):
        return (self.TAG, *(getattr(self, f.name) for f in fields(self)))[i]


@dataclass(frozen=True)
class OuterLeft(_Term):
    """(M v) uᵀ."""
    TAG: ClassVar[str] = "ol"
    M: Node
    u: Node


@dataclass(frozen=True)
class OuterRight(_Term):
    """u (M v)ᵀ."""
    TAG: ClassVar[str] = "or"
    u: Node
    M: Node


@dataclass(frozen=True)
class ScalarTimes(_Term):
    """(wᵀv) C."""
    TAG: ClassVar[str] = "sc"
    w: Node
    C: Node


@dataclass(frozen=True)
class DiagBetween(_Term):
    """L diag(M v) R, with L or R None for the identity."""
    TAG: ClassVar[str] = "ldr"
    L: Node | None
    M: Node
    R: Node | None


class _Linear:
    """Representations of sub-expressions linear in a vector direction v of length n:

    scalar e: a vector w with e = wᵀv;   vector e: a matrix M with e = M v;
    matrix e: a list of terms, each OuterLeft(M, u) = (M v) uᵀ, OuterRight(u, M) = u (M v)ᵀ,
    ScalarTimes(w, C) = (wᵀv) C or DiagBetween(L, M, R) = L diag(M v) R (L, R None for I)."""

    def __init__(self, v: Node):
        self.v, self.n = v, v.shape[0]

    def matrix(self, root: Node) -> Node:
        """M with root = M v (root a vector linear in v)."""
        rep: dict[Node, object] = {}
        for node in walk(root):
            if node is self.v:
                rep[node] = E.eye(self.n)
            elif not node.args or all(rep.get(a) is None for a in node.args):
                rep[node] = None
            else:
                rep[node] = self.apply(node, [rep.get(a) for a in node.args])
        out = rep[root]
        if out is None:
            if E.is_zero(root):
                return E.zeros((root.shape[0], self.n))
            raise NotLinear(root)
        return out

    # ----- helpers on representations -----

    @staticmethod
    def scale(r, ndim, s: Node):
        """s · e for a scalar s constant in v."""
        if ndim < 2:
            return E.mul(s, r)
        out = []
        for t in r:
            if isinstance(t, OuterLeft):
                out.append(OuterLeft(E.mul(s, t.M), t.u))
            elif isinstance(t, OuterRight):
                out.append(OuterRight(t.u, E.mul(s, t.M)))
            elif isinstance(t, ScalarTimes):
                out.append(ScalarTimes(E.mul(s, t.w), t.C))
            else:
                out.append(DiagBetween(t.L, E.mul(s, t.M), t.R))
        return out

    @staticmethod
    def transpose(r):
        def flip(t):
            if isinstance(t, OuterLeft):
                return OuterRight(t.u, t.M)
            if isinstance(t, OuterRight):
                return OuterLeft(t.M, t.u)
            if isinstance(t, ScalarTimes):
                return ScalarTimes(t.w, E.transpose(t.C))
            return DiagBetween(None if t.R is None else E.transpose(t.R), t.M,
                               None if t.L is None else E.transpose(t.L))
        return [flip(t) for t in r]

    def broadcast(self, w: Node, shape) -> object:
        """A scalar wᵀv broadcast to `shape`."""
        if len(shape) == 1:
            return E.outer(E.ones(shape), w)
        return [ScalarTimes(w, E.ones(shape))]

    def add(self, a, b, ndim):
        if ndim == 1:
            return _collect(E.add(a, b))
        if ndim < 2:
            return E.add(a, b)
        return list(a) + list(b)

    def neg(self, r, ndim):
        return self.scale(r, ndim, E.const(-1))

    def left(self, A: Node, r, ndim_r):
        """A @ e for A constant in v."""
        if ndim_r == 1:
            return _lm(A, r)
        out = []
        for t in r:
            if isinstance(t, OuterLeft):
                out.append(OuterLeft(_lm(A, t.M), t.u))
            elif isinstance(t, OuterRight):
                out.append(OuterRight(_mv(A, t.u), t.M))
            elif isinstance(t, ScalarTimes):
                out.append(ScalarTimes(t.w, E.matmul(A, t.C)))
            else:
                out.append(DiagBetween(A if t.L is None else E.matmul(A, t.L), t.M, t.R))
        return out

    def right(self, r, B: Node):
        """e @ B for a matrix e linear in v and B constant: a vector map (B a vector) or terms."""
        if B.ndim == 1:
            M = None
            for t in r:
                if isinstance(t, OuterLeft):
                    part = E.mul(E.dot(t.u, B), t.M)
                elif isinstance(t, OuterRight):
                    part = E.outer(t.u, _covec(t.M, B))
                elif isinstance(t, ScalarTimes):
                    part = E.outer(_mv(t.C, B), t.w)
                else:
                    y = B if t.R is None else _mv(t.R, B)
                    part = _lm(_dg(y), t.M)
                    if t.L is not None:
                        part = _lm(t.L, part)
                M = part if M is None else E.add(M, part)
            return M
        out = []
        for t in r:
            if isinstance(t, OuterLeft):
                out.append(OuterLeft(t.M, _mv(E.transpose(B), t.u)))
            elif isinstance(t, OuterRight):
                out.append(OuterRight(t.u, _lm(E.transpose(B), t.M)))
            elif isinstance(t, ScalarTimes):
                out.append(ScalarTimes(t.w, E.matmul(t.C, B)))
            else:
                out.append(DiagBetween(t.L, t.M, B if t.R is None else E.matmul(t.R, B)))
        return out

    # ----- one node: the operator's rule (rules_linear.LINEAR) -----

    def apply(self, node: Node, reps: list):
        return linear_rule(node.op)(self, node, reps)

    def not_linear(self, node: Node):
        raise NotLinear(node)

    lm, mv, covec, dg = staticmethod(_lm), staticmethod(_mv), staticmethod(_covec), staticmethod(_dg)
    OuterLeft, OuterRight, ScalarTimes, DiagBetween = OuterLeft, OuterRight, ScalarTimes, DiagBetween


def hessian_matrix(hv: Node, direction: Node) -> Node | None:
    """The matrix H with hv = H v, for a vector direction v; None if it cannot be read off."""
    if direction.ndim == 0:
        return E.substitute(hv, {direction: E.const(1)})
    if direction.ndim != 1:
        return None
    try:
        return _Linear(direction).matrix(hv)
    except NotLinear:
        return None


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
            return {"shape": [str(s) for s in node.shape], "text": render(node, "text", names),
                    "latex": render(node, "latex", tex), "numpy": render(node, "np", names)}

        return {
            "formula": self.d.program.source,
            "objective": self.objective_name,
            "wrt": list(self.wrt),
            "directions": {n: self.directions[n].attrs[0] for n in self.wrt},
            "gradients": {n: forms(self.d.grads[n]) for n in self.wrt},
            "hvp": {n: forms(self.hvps[n]) for n in self.wrt},
            "hessian": None if self.hessian is None else forms(self.hessian),
            "note": self.hessian_note,
            "where": {k: {"text": render(node, "text", names, define=True),
                          "latex": render(node, "latex", tex, define=True),
                          "numpy": render(node, "np", names, define=True),
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
