"""The derivation a user asks for: parse, sweep, name the steps, self-check, present."""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from . import expr as E
from .derive import backprop
from .errors import FormulaError, InternalError
from .evaluate import directional_check, find_point
from .expr import RULES, Node, format_shape, walk
from .parse import Program, parse_formula
from .printing import render, shared_names, to_latex, to_text
from .scalar import canonical_scalar

LAYOUTS = ("gradient", "numerator", "denominator")
CHECK_TRIALS = 3
PER_VARIABLE_CHECKS = 8


@dataclass
class Check:
    """Outcome of the numerical self-check of one gradient."""
    name: str
    trials: int
    passed: int
    worst_error: float
    note: str = ""

    @property
    def verified(self) -> bool:
        return self.trials > 0 and self.passed == self.trials


class Derivation:
    """Every partial of a formula's objective, in closed matrix form, with its chain-rule steps.

    >>> d = derive("0.5 * norm(A @ x - b)**2", shapes={"A": "m,n", "x": "n", "b": "m"})
    >>> print(d.text(wrt=["x"]))
    ∂ℓ/∂x = Aᵀ (A x − b)    [n]
    """

    def __init__(self, program: Program, wrt=None, check: bool = True, seed: int = 0):
        self.program = program
        self.objective = program.objective
        wrt = list(program.variables) if wrt is None else list(wrt)
        self.wrt_nodes: dict[str, Node] = {}
        for name in wrt:
            node = program.variables.get(name) or program.intermediates.get(name)
            if node is None:
                import difflib
                near = difflib.get_close_matches(name, list(program.variables) + list(program.intermediates), 1)
                raise FormulaError(f"--wrt names `{name}`, which is neither a variable nor a named intermediate",
                                   hint=f"did you mean `{near[0]}`?" if near else
                                   f"variables: {', '.join(program.variables) or 'none'}")
            self.wrt_nodes[name] = node
        self.order = walk(self.objective)
        self.adjoints = backprop(self.objective, E.const(1), list(self.wrt_nodes.values()))
        self.grads: dict[str, Node] = {
            n: canonical_scalar(self.adjoints.get(node, E.zeros(node.shape)), program.variables)
            for n, node in self.wrt_nodes.items()}
        self.step_names = self._name_steps()
        self.checks: dict[str, Check] = self._self_check(seed) if check else {}

    # ----- naming -----

    @property
    def objective_name(self) -> str:
        return self.program.objective_name or "ℓ"

    def _name_steps(self) -> dict[Node, str]:
        """User names, and x1, x2, … for the other intermediates a worked solution would name."""
        names = dict(self.program.names)
        users: dict[Node, list[Node]] = {}
        for node in self.order:
            for a in set(node.args):
                users.setdefault(a, []).append(node)
        depends = set()
        for node in self.order:
            if node.op == "var" or any(a in depends for a in node.args):
                depends.add(node)
        taken = set(names.values()) | set(self.program.variables)
        prefix = "x" if not any(v.startswith("x") and v[1:].isdigit() for v in taken) else "u"
        k = 0
        for node in self.order:
            if node in names or not node.args or node is self.objective or node not in depends:
                continue
            us = users.get(node, [])
            if len(us) == 1 and (_is_const_scaling(us[0]) or (node.op == "matmul" and us[0].op == "add")
                                 or node.op in ("T", "neg") and all(not a.args for a in node.args)):
                continue
            k += 1
            while f"{prefix}{k}" in taken:
                k += 1
            names[node] = f"{prefix}{k}"
        return names

    # ----- results -----

    def gradient(self, name: str) -> Node:
        return self.grads[name]

    def _as_layout(self, node: Node, layout: str) -> Node:
        if layout == "numerator":
            return E.transpose(node)
        return node

    def _result_names(self, roots) -> dict[Node, str]:
        user = dict(self.program.names)
        for name, node in self.wrt_nodes.items():
            if node.op != "var":
                user.setdefault(node, name)
        return shared_names(roots, user, prefix="t", known=self.step_names)

    def _where(self, names: dict[Node, str], roots, style="text") -> list[tuple[str, str, tuple]]:
        """Definitions of the names the printed results use, in forward order."""
        used, out = set(), []
        pending = list(roots)
        seen = set()
        while pending:
            n = pending.pop()
            if n in seen:
                continue
            seen.add(n)
            for a in n.args:
                if a in names and a.args:
                    used.add(a)
                pending.append(a)
        for node in walk(list(used)):
            if node in used:
                out.append((names[node], render(node, style, names, define=True), node.shape))
        return out

    def text(self, wrt=None, layout: str = "gradient") -> str:
        """Each gradient with its shape, then the intermediates it refers to."""
        names_ = list(wrt or self.grads)
        roots = [self._as_layout(self.grads[n], layout) for n in names_]
        names = self._result_names(roots)
        lines = []
        for n, r in zip(names_, roots):
            s = to_text(r, names)
            if layout == "numerator" and r.ndim == 1:
                s = f"({s})ᵀ" if r.args else f"{s}ᵀ"
            lines.append(f"∂{self.objective_name}/∂{n} = {s}    [{_layout_shape(self.grads[n].shape, layout)}]")
        where = self._where(names, roots)
        if where:
            lines.append("where")
            lines += [f"  {k} = {v}    [{format_shape(sh)}]" for k, v, sh in where]
        return "\n".join(lines)

    def latex(self, wrt=None, layout: str = "gradient") -> str:
        names_ = list(wrt or self.grads)
        roots = [self._as_layout(self.grads[n], layout) for n in names_]
        names = self._result_names(roots)
        tex = {k: _latex_ident(v) for k, v in names.items()}
        obj = _latex_ident(self.objective_name)
        rows = []
        for n, r in zip(names_, roots):
            s = to_latex(r, tex)
            if layout == "numerator" and r.ndim == 1:
                s = f"\\left({s}\\right)^\\top"
            rows.append(f"\\frac{{\\partial {obj}}}{{\\partial {_latex_ident(n)}}} &= {s}")
        for k, v, _ in self._where(tex, roots, "latex"):
            rows.append(f"{k} &= {v}")
        return "\\begin{aligned}\n" + " \\\\\n".join(rows) + "\n\\end{aligned}"

    def steps(self, style: str = "text") -> str:
        """The chain rule node by node: each intermediate, then each adjoint, local and expanded."""
        names = self.step_names
        obj = self.objective_name
        lines = ["Forward pass:"]
        for node in self.order:
            if node in names and node.args:
                lines.append(f"  {names[node]} = {render(node, 'text', names, define=True)}"
                             f"    [{format_shape(node.shape)}]")
        lines.append(f"  {obj} = {render(self.objective, 'text', names, define=True)}"
                     f"    [scalar]")
        lines.append("")
        lines.append("Backward pass (each adjoint is shaped like its node):")
        for label, local, full, shape in self._adjoint_steps():
            lines.append(f"  ∂{obj}/∂{label} = " + (f"{local} = {full}" if local != full else full) + f"    [{format_shape(shape)}]")
        return "\n".join(lines)

    def _adjoint_steps(self):
        """(label, local chain-rule form, expanded form, shape) for each named node and each variable."""
        names = self.step_names
        placeholders: dict[Node, str] = {}
        adj: dict[Node, Node] = {self.objective: E.const(1)}
        live = {n for n in self.order if n.op == "var"}
        for node in self.order:
            if any(a in live for a in node.args):
                live.add(node)
        out = []
        wanted = set(self.wrt_nodes.values())
        for node in reversed(self.order):
            g = adj.get(node)
            if g is None:
                continue
            label = names.get(node) or (node.attrs[0] if node.op == "var" else None)
            if label is not None and node is not self.objective and (node.args or node in wanted):
                full = self.adjoints.get(node)
                if full is not None:
                    out.append((label, to_text(g, {**names, **placeholders}), to_text(full, names), node.shape))
                if node.args:
                    ph = E.var(f"_adj_{label}", node.shape)
                    placeholders[ph] = f"∂{self.objective_name}/∂{label}"
                    g = ph
            if not node.args:
                continue
            for arg, part in zip(node.args, RULES[node.op].vjp(g, node)):
                if part is None or arg not in live or E.is_zero(part):
                    continue
                adj[arg] = part if arg not in adj else adj[arg] + part
        return out

    # ----- checking -----

    def _self_check(self, seed: int) -> dict[str, Check]:
        """Each gradient against central finite differences at CHECK_TRIALS random points.

        Few variables: one directional check per variable. Many: one joint random direction
        per point (linear cost), and per-variable checks only to name the culprit of a failure."""
        rng = np.random.default_rng(seed)
        checks = {name: Check(name, 0, 0, 0.0) for name in self.grads}
        roots = [self.objective] + list(self.grads.values())
        names = list(self.wrt_nodes)
        for _ in range(CHECK_TRIALS):
            point, vals = find_point(self.program, rng, roots)
            if point is None:
                for c in checks.values():
                    c.note = "no random point found where the formula and its gradients are finite"
                break
            groups = [[n] for n in names] if len(names) <= PER_VARIABLE_CHECKS else [names]
            for group in groups:
                r = directional_check(self.objective, [self.wrt_nodes[n] for n in group],
                                      [self.grads[n] for n in group], point, rng, vals[0])
                culprits = [] if r.ok else group if len(group) == 1 else [
                    n for n in group if not directional_check(
                        self.objective, self.wrt_nodes[n], self.grads[n], point, rng, vals[0]).ok] or group
                for n in group:
                    c = checks[n]
                    c.trials += 1
                    c.passed += n not in culprits
                    c.worst_error = max(c.worst_error, r.error if (r.ok or n in culprits) else 0.0)
        bad = [c for c in checks.values() if c.trials and c.passed < c.trials - 1]
        if bad:
            raise InternalError(
                f"self-check failed: the derived ∂/∂{bad[0].name} disagrees with finite differences "
                f"(relative error {bad[0].worst_error:.2e}). This is a bug in symbackprop; please report it "
                f"with the formula and shapes.")
        return checks

    # ----- other views -----

    def to_dict(self, layout: str = "gradient") -> dict:
        names_ = list(self.grads)
        roots = [self._as_layout(self.grads[n], layout) for n in names_]
        names = self._result_names(roots)
        tex = {k: _latex_ident(v) for k, v in names.items()}
        return {
            "formula": self.program.source,
            "shapes": {k: [str(d) for d in v] for k, v in self.program.shapes.items()},
            "layout": layout,
            "objective": self.objective_name,
            "gradients": {n: {"shape": [str(d) for d in _layout_dims(self.grads[n].shape, layout)],
                              "text": to_text(r, names), "latex": to_latex(r, tex), "numpy": render(r, "np", names)}
                          for n, r in zip(names_, roots)},
            "where": {k: {"text": v, "shape": [str(d) for d in sh]} for k, v, sh in self._where(names, roots)},
            "steps": [{"node": label, "local": local, "adjoint": full, "shape": [str(d) for d in shape]}
                      for label, local, full, shape in self._adjoint_steps()],
            "check": {n: {"trials": c.trials, "passed": c.passed, "worst_relative_error": c.worst_error,
                          "note": c.note} for n, c in self.checks.items()},
        }

    def to_json(self, layout: str = "gradient") -> str:
        return json.dumps(self.to_dict(layout), indent=2, ensure_ascii=False)

    @property
    def gradients(self) -> dict:
        """The gradients as SymPy matrix expressions."""
        from .sympy_bridge import to_sympy
        return {n: to_sympy(g, self._result_names(list(self.grads.values()))) for n, g in self.grads.items()}

    def _repr_latex_(self) -> str:
        return "$$" + self.latex() + "$$"

    def _repr_markdown_(self) -> str:
        return "$$" + self.latex() + "$$\n\n```\n" + self.steps() + "\n```"

    def graph(self, **options):
        """The computation graph (symbackprop.render.build_graph options: backward, point, collapse, rankdir)."""
        from .render import build_graph
        return build_graph(self, **options)

    def _repr_svg_(self):
        return self.graph(backward=True)._repr_svg_()

    def _repr_mimebundle_(self, include=None, exclude=None):
        """Notebooks: the LaTeX and Markdown views, the Markdown one followed by the backward graph."""
        import base64
        out = {"text/plain": self.text(), "text/latex": self._repr_latex_(), "text/markdown": self._repr_markdown_()}
        svg = self._repr_svg_()
        if svg is not None:
            out["image/svg+xml"] = svg
            data = base64.b64encode(svg.encode("utf-8")).decode("ascii")
            out["text/markdown"] += f"\n\n![computation graph](data:image/svg+xml;base64,{data})"
        return out

    def __repr__(self) -> str:
        return self.text()


def _is_const_scaling(node: Node) -> bool:
    return node.op in ("mul", "div") and any(a.op == "const" for a in node.args) or node.op == "neg"


def _layout_dims(shape, layout):
    return tuple(reversed(shape)) if layout == "numerator" and len(shape) == 2 else (
        (1,) + tuple(shape) if layout == "numerator" and len(shape) == 1 else shape)


def _layout_shape(shape, layout):
    return format_shape(_layout_dims(shape, layout))


def _latex_ident(name: str) -> str:
    from .rules import latex_name
    if name.startswith("∂"):
        return "\\frac{\\partial \\ell}{\\partial " + latex_name(name.split("∂")[-1]) + "}"
    return "\\ell" if name == "ℓ" else latex_name(name)


def derive(formula: str, shapes=None, *, wrt=None, elementwise=(), functions=(), check: bool = True,
           seed: int = 0) -> Derivation:
    """Derive every partial of `formula`'s objective in closed matrix form.

    >>> d = derive("x @ B @ x", shapes={"B": "n,n", "x": "n"})
    >>> print(d.text())
    ∂ℓ/∂x = Bᵀ x + B x    [n]
    ∂ℓ/∂B = x xᵀ    [n×n]
    """
    program = parse_formula(formula, shapes, elementwise, functions)
    return Derivation(program, wrt=wrt, check=check, seed=seed)
