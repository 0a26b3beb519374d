"""The derivation a user asks for: parse, sweep, name the steps, self-check, present."""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import sympy

from . import expr as E
from .sweep import sweep
from .errors import FormulaError, Hint, InternalError
from .evaluate import directional_check, find_point
from .expr import Node, format_shape, walk
from .parse import Program, parse_formula
from .printing import print_expr, shared_names
from .scalar import canonical_scalar
from .simplify import Simplifier

LAYOUTS = ("gradient", "numerator", "denominator")
CHECK_TRIALS = 3
PER_VARIABLE_CHECKS = 8


_KIND_POOLS = {"variable": "variables", "intermediate": "intermediates", "let": None}
_KIND_TEXT = {"variable": "a variable", "intermediate": "a named intermediate", "let": "a let"}


def resolve_wrt(program: Program, names, *, kinds=("variable", "intermediate"), lets=None, flag: str = "--wrt",
                single: str | None = None, why: str = "") -> dict[str, Node]:
    """{name: node} for the names a derivative is taken with respect to: the one validation of --wrt.

    `kinds`: what a name may be ("variable", "intermediate", "let": a name of `lets`); `flag`: where the
    names came from, for the message; `single`: the option (e.g. "--hessian") that takes exactly one name;
    `why`: the reason for the restriction to `kinds`, shown in the hint.

    >>> from symbackprop.parse import parse_formula
    >>> p = parse_formula("z = A @ x; sum(z)", {"A": "m,n", "x": "n"})
    >>> list(resolve_wrt(p, ["x", "z"]))
    ['x', 'z']
    >>> try: resolve_wrt(p, ["z"], kinds=("variable",))
    ... except FormulaError as e: print(e)
    error: --wrt names `z`, which is not a variable
    hint: variables: A, x
    """
    names = list(names)
    if single is not None and len(names) != 1:
        raise FormulaError(f"{single} is taken with respect to one variable, got {len(names)} ({', '.join(names)})",
                           hint=Hint(f"add --wrt {names[0]}, or use --hvp for several variables",
                                     f"put one name in With respect to ({names[0]}), or tick HVP for several "
                                     f"variables") if names else
                           Hint("add --wrt NAME", "put the variable's name in With respect to"))
    pools = [(k, getattr(program, _KIND_POOLS[k]) if _KIND_POOLS[k] else dict(lets or {})) for k in kinds]
    out: dict[str, Node] = {}
    for name in names:
        node = next((pool[name] for _, pool in pools if name in pool), None)
        if node is None:
            import difflib
            known = [n for _, pool in pools for n in pool]
            near = difflib.get_close_matches(name, known, 1)
            listed = "; ".join(f"{k}s: {', '.join(pool)}" for k, pool in pools if pool) or "no names to choose from"
            what = ("neither " + ", ".join(_KIND_TEXT[k] for k in kinds[:-1]) + " nor " if len(kinds) > 1 else
                    "not ") + _KIND_TEXT[kinds[-1]]
            raise FormulaError(f"{flag} names `{name}`, which is {what}",
                               hint=(why + "; " if why else "") + (f"did you mean `{near[0]}`?" if near else listed))
        out[name] = node
    return out


#: The note of a check whose random points all had the formula undefined a finite-difference step away.
UNDEFINED_BESIDE = "the formula is undefined a finite-difference step from the random points"


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
        self._steps_cache = self._steps_names_cache = None
        self._placeholders: dict[Node, str] = {}
        self.wrt_nodes: dict[str, Node] = resolve_wrt(program, list(program.variables) if wrt is None else wrt)
        self.order = walk(self.objective)
        self.step_names = self._name_steps()
        self.sweep = sweep(self.objective, E.const(1), list(self.wrt_nodes.values()), hold=self._hold)
        simplified, sizes = Simplifier(), {}         # the results as printed, checked and emitted (shared memos)
        self.adjoints = {node: simplified(adj) for node, adj in self.sweep.adjoints.items()}
        self.grads: dict[str, Node] = {n: canonical_scalar(self.adjoints.get(node, E.zeros(node.shape)),
                                                           program.variables, sizes) for n, node in self.wrt_nodes.items()}
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

    def _user_names(self) -> dict[Node, str]:
        """The user's names of intermediates (and of --wrt intermediates). A variable a statement merely
        renames (`e0 = x0`) prints as itself: its new name is defined nowhere in the output."""
        user = {n: s for n, s in self.program.names.items() if n.args}
        for name, node in self.wrt_nodes.items():
            if node.args:
                user.setdefault(node, name)
        return user

    def result_names(self, roots, names: dict[Node, str] | None = None) -> dict[Node, str]:
        """Names for printing `roots`: `names` (default: the user's) extended by step names (x1, …) and
        t1, t2, … for long shared sub-expressions. Extending the names of an earlier part of an output
        keeps one meaning per name across the whole output."""
        reserved = set(self.program.variables) | set(self.program.intermediates) | {str(s) for s in self.program.dims}
        return shared_names(roots, self._user_names() if names is None else names, prefix="t",
                            known=self.step_names, reserved=reserved)

    def defined_nodes(self, names: dict[Node, str], roots) -> list[tuple[str, Node]]:
        """The named nodes printing `roots` refers to (directly or through other names), in forward order."""
        used = {r for r in roots if r in names and r.args}
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
        return [(names[node], node) for node in walk(list(used)) if node in used]

    def definitions(self, names: dict[Node, str], roots, style="text") -> list[tuple[str, str, tuple]]:
        """Definitions of the names the printed results use, in forward order."""
        return [(k, print_expr(node, style, names, define=True), node.shape)
                for k, node in self.defined_nodes(names, roots)]

    def text(self, wrt=None, layout: str = "gradient") -> str:
        """Each gradient with its shape, then the intermediates it refers to."""
        names_ = list(wrt or self.grads)
        roots = [self._as_layout(self.grads[n], layout) for n in names_]
        names = self.result_names(roots)
        lines = []
        for n, r in zip(names_, roots):
            s = _row(print_expr(r, "text", names), r, layout, "text")
            lines.append(f"∂{self.objective_name}/∂{n} = {s}    [{_layout_shape(self.grads[n].shape, layout)}]")
        where = self.definitions(names, roots)
        if where:
            lines.append("where")
            lines += [f"  {k} = {v}    [{format_shape(sh)}]" for k, v, sh in where]
        return "\n".join(lines)

    def latex(self, wrt=None, layout: str = "gradient") -> str:
        names_ = list(wrt or self.grads)
        roots = [self._as_layout(self.grads[n], layout) for n in names_]
        names = self.result_names(roots)
        tex = latex_names(names)
        obj = latex_ident(self.objective_name)
        rows = []
        for n, r in zip(names_, roots):
            s = _row(print_expr(r, "latex", tex), r, layout, "latex")
            rows.append(f"\\frac{{\\partial {obj}}}{{\\partial {latex_ident(n)}}} &= {s}")
        for k, v, _ in self.definitions(tex, roots, "latex"):
            rows.append(f"{k} &= {v}")
        return "\\begin{aligned}\n" + " \\\\\n".join(rows) + "\n\\end{aligned}"

    def _forward_names(self) -> dict[Node, str]:
        return {n: s for n, s in self.step_names.items() if n.args}

    def _step_names(self, names: dict[Node, str] | None = None) -> dict[Node, str]:
        """Names for the steps: the forward pass's, those of the rest of the output (default: the
        gradients'), then t-names for long sub-expressions the expanded adjoints share (so they print
        in linear size at any depth)."""
        fulls = [full for _, _, full, _ in self._adjoint_steps()]
        if names is not None:
            return self.result_names(fulls, {**self._forward_names(), **names})
        if self._steps_names_cache is None:
            grads = self.result_names(list(self.grads.values()))
            self._steps_names_cache = self.result_names(fulls, {**self._forward_names(), **grads})
        return self._steps_names_cache

    def steps(self, style: str = "text", names: dict[Node, str] | None = None) -> str:
        """The chain rule node by node: each intermediate, then each adjoint, local and expanded
        (style 'text', or 'latex' for an aligned block). `names`: those the rest of the output uses
        (default: the gradients'), which the steps extend, so that a name means one thing throughout."""
        if style not in ("text", "latex"):
            raise ValueError(f"steps are printed as 'text' or 'latex', not {style!r}")
        latex = style == "latex"
        forward = self._forward_names()
        names = self._step_names(names)
        obj = self.objective_name

        def adj(label):
            if latex:
                return f"\\frac{{\\partial {latex_ident(obj)}}}{{\\partial {latex_ident(label)}}}"
            return f"∂{obj}/∂{label}"

        shown = latex_names(names) if latex else names
        placeholders = {ph: adj(label) for ph, label in self._placeholders.items()}
        local_names = {**shown, **placeholders}

        def show(node, nm=shown):
            return print_expr(node, style, nm)

        def define(node):
            return print_expr(node, style, shown, define=True)

        def shape(sh):
            return f" \\quad ({_latex_shape(sh)})" if latex else f"    [{format_shape(sh)}]"

        def row(lhs, rhs):
            return f"{latex_ident(lhs) if latex else lhs} {'&=' if latex else '='} {rhs}"

        lines = ["&\\text{Forward pass:}" if latex else "Forward pass:"]
        for node in self.order:
            if node in forward and node is not self.objective:
                lines.append(("" if latex else "  ") + row(forward[node], define(node)) + shape(node.shape))
        name = forward.get(self.objective)
        if name is not None and name != obj:         # `z1 = det(S); det(S)`: the adjoints may say z1, so define it
            lines.append(("" if latex else "  ") + row(name, define(self.objective)) + shape(()))
            lines.append(("" if latex else "  ") + row(obj, latex_ident(name) if latex else name) + shape(()))
        else:
            lines.append(("" if latex else "  ") + row(obj, define(self.objective)) + shape(()))
        if not latex:
            lines.append("")
        lines.append("&\\text{Backward pass (each adjoint is shaped like its node):}" if latex else
                     "Backward pass (each adjoint is shaped like its node):")
        steps = self._adjoint_steps()
        for label, local, full, sh in steps:
            lo, fu = show(local, local_names), show(full)
            rhs = f"{lo} = {fu}" if lo != fu else fu
            lines.append(f"{adj(label)} &= {rhs}{shape(sh)}" if latex else f"  {adj(label)} = {rhs}{shape(sh)}")
        defined = {node for node in self.order if node in forward}   # a name the forward pass never printed
        printed = [full for _, _, full, _ in steps] + [local for _, local, _, _ in steps]
        where = [(k, n) for k, n in self.defined_nodes(names, printed) if n not in defined]
        if where:
            lines.append("&\\text{where}" if latex else "where")
            for k, node in where:
                lines.append(("" if latex else "  ") + row(k, define(node)) + shape(node.shape))
        if latex:
            return "\\begin{aligned}\n" + " \\\\\n".join(lines) + "\n\\end{aligned}"
        return "\n".join(lines)

    def _hold(self, node: Node) -> Node | None:
        """The sweep's stand-in for the adjoint of a named intermediate: a placeholder variable that the
        steps print as ∂ℓ/∂name, so each local adjoint reads in terms of the named adjoints above it."""
        label = self.step_names.get(node)
        if label is None or not node.args or node is self.objective:
            return None
        ph = E.var(f"_adj_{label}", node.shape)
        self._placeholders[ph] = label
        return ph

    def _adjoint_steps(self) -> list[tuple[str, Node, Node, tuple]]:
        """(label, local chain-rule form, expanded form, shape) for each named node and each variable, read
        from the sweep's record. The local form is over placeholder variables (`self._placeholders`:
        placeholder -> label) that print as the adjoints of the nodes named so far."""
        if self._steps_cache is not None:
            return self._steps_cache
        names = self._forward_names()
        wanted = set(self.wrt_nodes.values())
        out = []
        for node in reversed(self.order):
            local, full = self.sweep.local.get(node), self.adjoints.get(node)
            if local is None or full is None or node is self.objective:
                continue
            label = names.get(node) or (node.attrs[0] if node.op == "var" else None)
            if label is not None and (node.args or node in wanted):
                out.append((label, local, full, node.shape))
        self._steps_cache = out
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
        undefined = set()
        # points where the formula is undefined a step away do not count: draw up to 3 times as many
        for _ in range(3 * CHECK_TRIALS):
            if all(c.trials >= CHECK_TRIALS for c in checks.values()):
                break
            point, vals = find_point(self.program, rng, roots)
            if point is None:
                for c in checks.values():
                    c.note = "no random point found where the formula and its gradients are finite"
                break
            groups = [[n] for n in names] if len(names) <= PER_VARIABLE_CHECKS else [names]
            for group in groups:
                r = directional_check(self.objective, [self.wrt_nodes[n] for n in group],
                                      [self.grads[n] for n in group], point, rng, vals[0])
                if not np.isfinite(r.numeric):
                    # the formula is undefined a step away (x1^tr(S⁻¹S): a negative base to a power that is an
                    # integer at the point only, in floating point): nothing to compare there
                    undefined.update(group)
                    continue
                culprits = [] if r.ok else group if len(group) == 1 else [
                    n for n in group if not directional_check(
                        self.objective, self.wrt_nodes[n], self.grads[n], point, rng, vals[0]).ok] or group
                for n in group:
                    c = checks[n]
                    c.trials += 1
                    c.passed += n not in culprits
                    c.worst_error = max(c.worst_error, r.error if (r.ok or n in culprits) else 0.0)
        for n in undefined:
            if not checks[n].trials:
                checks[n].note = checks[n].note or UNDEFINED_BESIDE
        bad = [c for c in checks.values() if c.trials and c.passed < c.trials - 1]
        if bad:
            raise InternalError(
                f"self-check failed: the derived ∂/∂{bad[0].name} disagrees with finite differences "
                f"(relative error {bad[0].worst_error:.2e}). This is a bug in symbackprop; please report it "
                f"with the formula and shapes.")
        return checks

    # ----- other views -----

    def to_dict(self, layout: str = "gradient") -> dict:
        """Everything `text`, `latex` and `steps` show, as data. Every name a field uses (user names,
        step names x1, …, shared t1, …) is defined once in `where`, in text, LaTeX and NumPy, so the
        size stays linear in the formula's at any depth."""
        names_ = list(self.grads)
        roots = [self._as_layout(self.grads[n], layout) for n in names_]
        names = self.result_names(roots)
        steps = self._adjoint_steps()
        every = self.result_names([full for _, _, full, _ in steps], {**self._forward_names(), **names})
        tex = latex_names(names)
        placeholders = {ph: f"∂{self.objective_name}/∂{label}" for ph, label in self._placeholders.items()}
        where_roots = roots + [full for _, _, full, _ in steps] + [local for _, local, _, _ in steps] + [self.objective]
        every_tex = latex_names(every)
        return {
            "formula": self.program.source,
            "shapes": {k: [str(d) for d in v] for k, v in self.program.shapes.items()},
            "layout": layout,
            "objective": self.objective_name,
            "gradients": {n: {"shape": [str(d) for d in _layout_dims(self.grads[n].shape, layout)],
                              "text": _row(print_expr(r, "text", names), r, layout, "text"),
                              "latex": _row(print_expr(r, "latex", tex), r, layout, "latex"),
                              "numpy": print_expr(r, "np", names)}
                          for n, r in zip(names_, roots)},
            "where": {k: {"text": print_expr(node, "text", every, define=True),
                          "latex": print_expr(node, "latex", every_tex, define=True),
                          "numpy": print_expr(node, "np", every, define=True),
                          "shape": [str(d) for d in node.shape]}
                      for k, node in self.defined_nodes(every, where_roots)},
            "steps": [{"node": label, "local": print_expr(local, "text", {**every, **placeholders}),
                       "adjoint": print_expr(full, "text", every), "shape": [str(d) for d in shape]}
                      for label, local, full, shape in steps],
            "check": {n: {"trials": c.trials, "passed": c.passed, "worst_relative_error": c.worst_error,
                          "note": c.note} for n, c in self.checks.items()},
        }

    def to_json(self, layout: str = "gradient", ascii: bool = False) -> str:
        """`to_dict` as JSON (`ascii`: escape every non-ASCII character, for terminals that are not UTF-8)."""
        return json.dumps(self.to_dict(layout), indent=2, ensure_ascii=ascii)

    @property
    def gradients(self) -> dict:
        """The gradients as SymPy matrix expressions, over the names `text()` uses (x2, t1, …), which
        `sympy_bindings` defines and `inline` substitutes (docs/sympy.md)."""
        from .sympy_bridge import to_sympy
        names = self.result_names(list(self.grads.values()))
        return {n: to_sympy(g, names, define=False) for n, g in self.grads.items()}

    @property
    def sympy_bindings(self) -> dict:
        """{symbol: SymPy definition} of every name the SymPy gradients use, in forward order."""
        from .sympy_bridge import bindings
        return bindings(self)

    def inline(self, expr):
        """A SymPy expression with the names of `sympy_bindings` replaced by their definitions."""
        from .sympy_bridge import inline
        return inline(expr, self.sympy_bindings)

    def sympy_value(self, expr, values: dict):
        """A SymPy expression of this view at `values` ({variable: number or array}), evaluated by SymPy."""
        from .sympy_bridge import numeric
        return numeric(expr, values, self.sympy_bindings, self.program.shapes)

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


def _row(s: str, r: Node, layout: str, style: str) -> str:
    """A vector's derivative in the numerator layout is a row: print it transposed."""
    if layout != "numerator" or r.ndim != 1:
        return s
    if style == "latex":
        return f"\\left({s}\\right)^\\top"
    return f"({s})ᵀ" if r.args else f"{s}ᵀ"


def latex_names(names: dict[Node, str]) -> dict[Node, str]:
    return {k: latex_ident(v) for k, v in names.items()}


def _latex_shape(shape) -> str:
    return "\\text{scalar}" if not shape else " \\times ".join(sympy.latex(s) for s in shape)


def latex_ident(name: str) -> str:
    from .rules import latex_name
    if name.startswith("∂"):
        return "\\frac{\\partial \\ell}{\\partial " + latex_name(name.split("∂")[-1]) + "}"
    return "\\ell" if name == "ℓ" else latex_name(name)


def derive(formula: str, shapes=None, *, wrt=None, elementwise=(), functions=(), check: bool = True,
           seed: int = 0, notation: str = "auto") -> Derivation:
    """Derive every partial of `formula`'s objective in closed matrix form.

    >>> d = derive("x @ B @ x", shapes={"B": "n,n", "x": "n"})
    >>> print(d.text())
    ∂ℓ/∂x = Bᵀ x + B x    [n]
    ∂ℓ/∂B = x xᵀ    [n×n]
    """
    program = parse_formula(formula, shapes, elementwise, functions, notation=notation)
    return Derivation(program, wrt=wrt, check=check, seed=seed)
