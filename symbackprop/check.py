"""Claim checking: is a claimed derivative right, and if not, what is wrong with it?

A claim is an expression in the formula language (it may use the formula's
named intermediates, `let` names, `Phi'(z)`, `relu'(z)`, `diag(v)`, `outer`,
`.T`). It is compared with the true derivative, which the reverse sweep gives
shaped like the variable (the gradient convention, i.e. the denominator layout
for a scalar objective):

- symbolically, when the claim is the very same node (hash-consing makes `is`
  structural equality);
- always numerically, at several random points, for several random sizes of
  the symbolic dims (distinct, >= 2), with a fresh concrete stand-in for each
  abstract function at each point, away from relu's kink and with pre-activations
  of both signs (every kink argument, scalar ones included, is seen on both sides
  of its kink), and with non-symmetric random matrices. A claim that holds only
  for square, symmetric or 1-dimensional inputs therefore fails. The points are
  chosen where the derivative and the objective are finite, never by the claim: a
  claim that is NaN there is wrong ('undefined').

Verdicts: `correct`, `transposed` (correct up to transpose: the claim follows
the numerator layout), `wrong` (with a diagnosis when one fits), `malformed`.
"""
from __future__ import annotations

import ast
import dataclasses
import difflib
import html
import itertools
import json
import re
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import sympy

from . import expr as E
from .derivation import Derivation, resolve_wrt
from .errors import FormulaError, LimitError, ShapeError, SymbackpropError
from .evaluate import Substitute, evaluate, random_dims, random_point
from .expr import RULES, Node, format_shape, shapes_equal, walk
from .parse import MAX_FORMULA_CHARS, NAME_RE, PRIME, Parser
from .printing import expand_macros, to_text
from .rules import ELEMENTWISE
from .tolerances import CLAIM_ATOL, CLAIM_RTOL

#: Random sizes drawn for the symbolic dims, and random points per draw.
DIM_DRAWS = 3
POINTS_PER_DRAW = 2
#: Two values agree when max|a − b| <= RTOL·max(|a|, |b|) + ATOL.
RTOL, ATOL = CLAIM_RTOL, CLAIM_ATOL
#: Sampled points keep the arguments of relu, step, sign and abs at least this far from 0.
KINK_MARGIN = 1e-3
_KINKS = ("relu", "step", "sign", "abs", "relu'", "step'", "sign'", "abs'")
#: Extra points tried so that every kink argument is seen on both sides of its kink; the search stops after
#: KINK_STALE tries in a row that show no new side (an argument that cannot change sign, e.g. relu(x ⊙ x)).
KINK_TRIES = 60
KINK_STALE = 24
#: The extra points are spread wider or narrower than standard normal by these factors, so that relu(a + 2)
#: is also seen with a + 2 < 0 and relu(1 - x ⊙ x) with 1 - x ⊙ x > 0.
KINK_SCALES = (1.0, 3.0, 10.0, 0.3)
KINK_SHIFTS = (-10.0, -3.0, -1.0, 1.0, 3.0, 10.0)

STATUS_TEXT = {"correct": "correct", "transposed": "correct up to transpose", "wrong": "wrong",
               "malformed": "malformed"}
EXIT_CODES = {"correct": 0, "transposed": 0, "wrong": 1, "malformed": 2}


# ----- results -----

@dataclass
class Counterexample:
    """Concrete inputs at which the claim and the derivative differ."""
    dims: dict
    inputs: dict
    functions: dict
    claimed: object
    true: object

    def to_dict(self) -> dict:
        return {"dims": self.dims, "inputs": {k: _json_array(v) for k, v in self.inputs.items()},
                "functions": self.functions, "claimed": _json_array(self.claimed), "true": _json_array(self.true)}

    def lines(self) -> list[str]:
        out = []
        if self.dims:
            out.append("dims: " + ", ".join(f"{k}={v}" for k, v in self.dims.items()))
        for k, v in self.inputs.items():
            out.append(f"{k} = {_array_text(v, 2)}")
        for k, v in self.functions.items():
            out.append(f"{k} stands for {v}")
        out.append(f"claimed: {_array_text(self.claimed, 4)}")
        out.append(f"true:    {_array_text(self.true, 4)}")
        return out


@dataclass
class Verdict:
    """The outcome of checking one claimed derivative.

    `status` is 'correct', 'transposed' (correct up to transpose), 'wrong' or
    'malformed'; `diagnosis` names the mistake of a wrong claim ('shape',
    'ill-formed', 'factor', 'sign', 'zero', 'missing-factor', 'function-for-derivative',
    'missing-term', 'extra-term', 'undefined', 'symmetric-only', 'scalar-only', 'counterexample').
    """
    wrt: str
    claim: str
    status: str
    summary: str
    details: list = field(default_factory=list)
    diagnosis: str | None = None
    objective: str = "ℓ"
    due_shape: str | None = None
    claim_shape: str | None = None
    layout: str | None = None
    gradient: str | None = None
    where: list = field(default_factory=list)
    factor: str | None = None
    method: str = ""
    symbolic: str = ""
    points: int = 0
    dims_tried: list = field(default_factory=list)
    counterexample: Counterexample | None = None
    line: int | None = None
    label: str | None = None
    expect: str | None = None
    show_counterexample: bool = False    # also for a diagnosis other than 'counterexample'

    @property
    def ok(self) -> bool:
        return self.status in ("correct", "transposed")

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    @property
    def verdict(self) -> str:
        return STATUS_TEXT[self.status]

    def headline(self) -> str:
        s = self.verdict
        if self.summary:
            s += f": {self.summary}"
        return s

    def text(self, where: bool = True, method: bool = True) -> str:
        lines = [f"∂{self.objective}/∂{self.wrt} = {self.claim}", f"  verdict: {self.headline()}"]
        lines += ["  " + d for d in self.details]
        if self.counterexample is not None and (self.diagnosis == "counterexample" or self.show_counterexample):
            lines.append("  counterexample:")
            lines += ["    " + l for l in self.counterexample.lines()]
        if self.gradient:
            lines.append(f"  the gradient (shaped like {self.wrt}): {self.gradient}")
            if self.where and where:
                lines.append("  where " + "; ".join(self.where))
        if self.points and method:
            lines.append("  " + (f"{self.symbolic}; " if self.symbolic else "") + self.method)
        return "\n".join(lines)

    def markdown(self) -> str:
        icon = {"correct": "✅", "transposed": "☑️", "wrong": "❌", "malformed": "⚠️"}[self.status]
        lines = [f"**∂{self.objective}/∂{self.wrt}** = `{self.claim}`: {icon} **{self.verdict}**"
                 + (f": {self.summary}" if self.summary else ""), ""]
        body = list(self.details)
        if self.counterexample is not None and (self.diagnosis == "counterexample" or self.show_counterexample):
            body += ["counterexample:"] + ["  " + l for l in self.counterexample.lines()]
        if self.gradient:
            body.append(f"the gradient (shaped like {self.wrt}): {self.gradient}")
            if self.where:
                body.append("where " + "; ".join(self.where))
        if self.points:
            body.append((f"{self.symbolic}; " if self.symbolic else "") + self.method)
        if body:
            lines += ["```", *body, "```"]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("wrt", "claim", "status", "summary", "details", "diagnosis", "objective",
                                           "due_shape", "claim_shape", "layout", "gradient", "where", "factor", "method", "symbolic",
                                           "points", "dims_tried", "line", "label", "expect")}
        d["verdict"] = self.verdict
        d["counterexample"] = self.counterexample.to_dict() if self.counterexample else None
        return d

    def _repr_markdown_(self) -> str:
        return self.markdown()

    def _repr_html_(self) -> str:
        color = {"correct": "#1a7f37", "transposed": "#1a7f37", "wrong": "#cf222e", "malformed": "#9a6700"}[self.status]
        body = self.text().split("\n", 2)
        rest = body[2] if len(body) > 2 else ""
        return (f"<div><code>∂{html.escape(self.objective)}/∂{html.escape(self.wrt)} = {html.escape(self.claim)}</code>"
                f"<br><b style='color:{color}'>{html.escape(self.verdict)}</b>"
                + (f": {html.escape(self.summary)}" if self.summary else "")
                + (f"<pre>{html.escape(rest)}</pre>" if rest else "") + "</div>")

    def __str__(self) -> str:
        return self.text()


# ----- the problem a claim is about -----

class Problem:
    """A formula with its shapes and declared functions, plus `let` names for intermediates.

    >>> p = Problem("0.5 * norm(A @ x - b)**2", {"A": "m,n", "x": "n", "b": "m"}, lets={"r": "A @ x - b"})
    >>> p.check("x", "A.T @ r").status
    'correct'
    """

    def __init__(self, formula: str, shapes=None, elementwise=(), functions=(), lets=None, seed: int = 0):
        self.parser = Parser(_shape_specs(shapes), elementwise, functions, allow_primes=True)
        self.program = self.parser.parse_program(formula)
        self.seed = seed
        self.lets: dict[str, Node] = {}
        self._graph = set(walk(self.program.objective))
        self._truths: dict[str, tuple] = {}
        self.claim_text: dict[Node, str] = {}       # the text each parsed claim was written as
        for name, text in _let_items(lets):
            self.define(name, text)

    @property
    def objective_name(self) -> str:
        return self.program.objective_name or "ℓ"

    def define(self, name: str, text: str) -> Node:
        """Name an intermediate (`let`): later lets, claims and --wrt may use the name."""
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise FormulaError(f"bad name {name!r} for a let", hint="names are letters, digits and _, e.g. x1")
        if name in self.lets:
            raise FormulaError(f"`{name}` is defined twice", hint="each let name is defined once")
        self.parser.check_new_name(name, "intermediate", None, None)
        if name in {d.name for d in self.program.dims}:
            raise FormulaError(f"`{name}` is a dimension and cannot name an intermediate", hint="pick another name")
        node = self.parse(text, what=f"the definition of {name}")
        self.lets[name] = node
        self._truths.clear()
        return node

    def parse(self, text: str, what: str = "the claim") -> Node:
        """Parse a claim (or let) in the formula's context; unknown names are errors."""
        if not isinstance(text, str):
            if isinstance(text, (int, float)) and not isinstance(text, bool):
                text = repr(text)
            else:
                raise FormulaError(f"{what} must be text, got {type(text).__name__}")
        if not text.strip():
            raise FormulaError(f"{what} is empty", hint="write an expression, e.g. W2.T @ x4")
        if len(text) > MAX_FORMULA_CHARS:
            raise LimitError(f"{what} is {len(text)} characters long; the limit is {MAX_FORMULA_CHARS}")
        known = set(self.parser.variables)
        error = None
        try:
            node = self.parser.expression(text, scope=dict(self.lets))
        except SymbackpropError as e:
            error = e
        new = [n for n in self.parser.variables if n not in known]
        for n in new:                               # a claim never adds variables
            del self.parser.variables[n]
        if new:                                     # an unknown name explains any later shape error
            name = new[0]
            m = re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", text)
            names = list(self.program.variables) + list(self.program.intermediates) + list(self.lets)
            near = difflib.get_close_matches(name, names, 1)
            raise FormulaError(
                f"{what} uses `{name}`, which is not a variable of the formula, a named intermediate or a let",
                source=text, offset=m.start() if m else None, length=len(name),
                hint=(f"did you mean `{near[0]}`? " if near else "")
                + "Name intermediates with --let NAME=EXPR (or `lets:` in a solution file); known names: "
                + ", ".join(names)) from None
        if error is not None:
            raise error
        return node

    @property
    def names(self) -> dict[Node, str]:
        out = dict(self.program.names)
        for name, node in self.lets.items():
            if node.args:
                out.setdefault(node, name)
        return out

    # ----- the true derivative -----

    def truth(self, wrt: str) -> tuple[Node, Derivation, Node]:
        """(gradient, derivation, node differentiated by) for a variable, intermediate or let name."""
        if wrt in self._truths:
            return self._truths[wrt]
        program = self.program
        target = program.variables.get(wrt) or program.intermediates.get(wrt)
        others = []
        if target is None and wrt in self.lets:
            target, others = self._locate(wrt, self.lets[wrt])
        if target is None:
            resolve_wrt(program, [wrt], kinds=("variable", "intermediate", "let"), lets=self.lets,
                        flag=f"the claim about ∂{self.objective_name}/∂{wrt}")
        inter = dict(program.intermediates)
        for name, node in self.lets.items():
            if node in self._graph and name not in inter:
                inter[name] = node
        objective = program.objective
        if others:                                  # the let occurs in several places: make them one node
            mapping = {n: target for n in others}
            objective = E.substitute(objective, mapping)
            kept = set(walk(objective))
            inter = {k: n for k, n in zip(inter, E.substitute(list(inter.values()), mapping)) if n in kept}
        inter[wrt] = target
        prog = dataclasses.replace(program, objective=objective, intermediates=inter)
        d = Derivation(prog, wrt=[wrt], check=True, seed=self.seed)
        self._truths[wrt] = (d.grads[wrt], d, target)
        return self._truths[wrt]

    def _locate(self, name: str, node: Node) -> tuple[Node, list[Node]]:
        """The formula's nodes a let stands for: (the one to differentiate by, the other places it occurs).

        A let stands for every place of the formula that computes it: the same node, the same expression up to
        the order of the terms of + and the factors of * (W @ x + b and b + W @ x), or a node with the same
        values at random points where no place spells it. ∂ℓ/∂let is then the total over all of them."""
        graph = walk(self.program.objective)
        if not node.args and node in self._graph:   # a variable
            return node, []
        canon = _canonical(graph + walk(node))
        same = [n for n in graph if n.args and canon[n] == canon[node]]
        cands = [n for n in graph if n.args and shapes_equal(n.shape, node.shape)]
        rng = np.random.default_rng(self.seed + 7)
        matched = None
        for _ in range(2):
            point = random_point(self.program, rng, dims=random_dims(self.program.dims, rng))
            vals = evaluate([node] + cands, point)
            if not np.all(np.isfinite(vals[0])):
                continue
            keep = [n for n, v in zip(cands, vals[1:]) if _close(v, vals[0])]
            matched = [n for n in (matched if matched is not None else cands) if n in set(keep)]
        if not same and matched and len(matched) < len(graph):
            same = matched                           # no place spells it: the places with its values
        if not same:
            raise FormulaError(f"`{name}` = {to_text(node, _unname(self.names, node))} does not occur in the "
                               f"formula, so ∂{self.objective_name}/∂{name} is not defined",
                               hint="a derivative with respect to an intermediate needs the intermediate to be part "
                                    "of the formula; define the let as a sub-expression of the formula, e.g. "
                                    "W1 @ x + b")
        order = {n: i for i, n in enumerate(graph)}
        same.sort(key=order.__getitem__)
        for a in same:
            inner = set(walk(a)) - {a}
            b = next((b for b in same if b in inner), None)
            if b is not None:
                raise FormulaError(f"`{name}` = {to_text(node, _unname(self.names, node))} has the values of two "
                                   f"nested places of the formula, {to_text(b, _unname(self.names, b))} inside "
                                   f"{to_text(a, _unname(self.names, a))}, so ∂{self.objective_name}/∂{name} "
                                   f"is ambiguous", hint="define the let as a sub-expression that occurs once, or "
                                                         "check the claim with respect to a variable")
        target = node if node in same else same[-1]
        return target, [n for n in same if n is not target]

    # ----- checking -----

    def check(self, wrt: str, claim: str, *, label: str | None = None, line: int | None = None,
              expect: str | None = None) -> Verdict:
        """Check the claim ∂objective/∂wrt = claim; malformed input raises SymbackpropError.

        `claim` is formula text, or an expression Node built over this problem's variables (API use)."""
        truth, deriv, target = self.truth(wrt)
        obj = self.objective_name
        grad_text, where = _split_gradient(deriv.text(wrt=[wrt]))
        shown = to_text(claim, self.names) if isinstance(claim, Node) else str(claim).strip()
        base = dict(wrt=wrt, claim=shown, objective=obj, due_shape=format_shape(truth.shape),
                    label=label, line=line, expect=expect, where=where)
        try:
            node = claim if isinstance(claim, Node) else self.parse(claim)
            if not isinstance(claim, Node):
                self.claim_text[node] = str(claim)
        except ShapeError as e:
            return Verdict(status="wrong", diagnosis="ill-formed",
                           summary="its dimensions do not fit together",
                           details=e.format().replace("error: ", "", 1).split("\n"), gradient=grad_text, **base)
        return _Judge(self, wrt, node, truth, target, grad_text, base).run()


def _split_gradient(text: str) -> tuple[str, list[str]]:
    """'∂ℓ/∂W = x4 x2ᵀ    [k×h]\nwhere\n  x1 = ...' -> ('x4 x2ᵀ    [k×h]', ['x1 = ...', ...])."""
    first, *rest = text.split("\n")
    where = [re.sub(r"\s{2,}", " ", l.strip()) for l in rest if l.strip() and l.strip() != "where"]
    return first.split("=", 1)[1].strip(), where


# ----- the judge -----

class _Judge:
    """Compares one claim with the true derivative and diagnoses the difference."""

    def __init__(self, problem: Problem, wrt, claim: Node, truth: Node, target: Node, grad_text, base):
        self.p, self.wrt, self.claim, self.truth, self.target = problem, wrt, claim, truth, target
        self.grad_text, self.base = grad_text, base
        self.obj = problem.objective_name

    # orientation: how a claim value maps onto the gradient's layout
    def orientations(self) -> list[str]:
        c, t = self.claim.shape, self.truth.shape
        out = []
        if shapes_equal(c, t):
            out.append("same")
            if len(t) == 2 and shapes_equal((t[0],), (t[1],)):
                out.append("transposed")            # square: the transpose has the same shape
        elif len(c) == 2 and len(t) == 2 and shapes_equal((c[1], c[0]), t):
            out.append("transposed")
        elif len(t) == 1 and len(c) == 2 and shapes_equal(c, (t[0], 1)):
            out.append("column")
        elif len(t) == 1 and len(c) == 2 and shapes_equal(c, (1, t[0])):
            out.append("row")
        return out

    def run(self) -> Verdict:
        v = self.base
        claim, truth = self.claim, self.truth
        v["claim_shape"] = format_shape(claim.shape)
        orients = self.orientations()
        if claim.shape == () and truth.shape != ():
            orients = ["broadcast"]                  # a scalar c stands for the constant array c·𝟙
        if not orients:
            due = format_shape(truth.shape)
            alt = (f" (or {format_shape(tuple(reversed(truth.shape)))} in the numerator layout)"
                   if truth.ndim == 2 and not shapes_equal((truth.shape[0],), (truth.shape[1],)) else ""
                   if truth.ndim == 2 else f" (a vector; 1×{truth.shape[0]} as a row in the numerator layout)"
                   if truth.ndim == 1 else "")
            return Verdict(status="wrong", diagnosis="shape",
                           summary=f"wrong shape: due {due}, given {format_shape(claim.shape)}",
                           details=[f"due: {due}, shaped like {self.wrt}{alt}; given: {format_shape(claim.shape)}"],
                           gradient=self.grad_text, **v)
        v["symbolic"] = ("identical to the derived expression" if claim is truth else
                         "its transpose is identical to the derived expression"
                         if truth.ndim == 2 and E.transpose(claim) is truth else "")
        cands = self.candidates()
        samples = self.sample([truth, claim] + [c[2] for c in cands])
        if not samples:
            raise SymbackpropError(f"no random point found where ∂{self.obj}/∂{self.wrt} is finite, so the claim "
                                   f"cannot be checked numerically")
        v["points"] = len(samples)
        v["dims_tried"] = _dims_tried(samples)
        v["method"] = self.method(samples)
        if any(not _finite(s.vals[1]) for s in samples):
            return self.undefined(samples, orients, cands, v)
        agree = {o: all(_agrees(o, s.vals[1], s.vals[0]) for s in samples) for o in orients}
        if agree.get("same") or agree.get("column") or agree.get("broadcast"):
            layout, note = self.layout_note(orients[0])
            return Verdict(status="correct", summary="", details=note, layout=layout, **v)
        if agree.get("transposed") or agree.get("row"):
            layout, note = self.layout_note("transposed" if agree.get("transposed") else "row")
            return Verdict(status="transposed", summary="the claim is the transpose of the gradient "
                                                        "(numerator layout)",
                           details=note, layout=layout, gradient=self.grad_text, **v)
        # wrong: look for a diagnosis
        for diagnose in (lambda: self.diagnose_factor(samples, orients),
                         lambda: self.diagnose_candidates(samples, orients, cands),
                         lambda: self.diagnose_special(orients)):
            diag = diagnose()                        # in order; the first that fits wins
            if diag:
                kind, summary, details, factor = diag
                cx = self.counterexample(orients)
                return Verdict(status="wrong", diagnosis=kind, summary=summary, details=details, factor=factor,
                               gradient=self.grad_text, counterexample=cx, **v)
        cx = self.counterexample(orients)
        return Verdict(status="wrong", diagnosis="counterexample",
                       summary="it differs from the derivative (see the counterexample)",
                       details=[], gradient=self.grad_text, counterexample=cx, **v)

    def undefined(self, samples, orients, cands, v) -> Verdict:
        """A claim that is NaN or ±inf at points where the derivative is finite: wrong, and say where."""
        bad = [s for s in samples if not _finite(s.vals[1])]
        why, negative = self.why_undefined(bad[0])
        roots = [self.truth, self.claim] + [c[2] for c in cands]
        defined = self.sample(roots, need=2)        # where the claim is defined, if anywhere
        cx = self.counterexample(orients)
        v = dict(v, gradient=self.grad_text, counterexample=cx)
        n = f"{len(bad)} of the {len(samples)} points tried" if len(bad) < len(samples) else \
            f"all {len(samples)} points tried"
        undefined = f"the claim is undefined (NaN or ±inf) at {n}, where ∂{self.obj}/∂{self.wrt} is finite"
        if why:
            undefined += f": {why}"
        if not defined:
            return Verdict(status="wrong", diagnosis="undefined",
                           summary=f"undefined at every point tried{f' ({why})' if why else ''}",
                           details=[undefined], **v)
        where = self.where_undefined(bad, negative)
        head = f"undefined at points where {where}" if where else "undefined at some points (see the counterexample)"
        v["show_counterexample"] = not where
        if any(all(_agrees(o, s.vals[1], s.vals[0]) for s in defined) for o in orients):
            for d in (m for m in walk(self.truth) if m.op in ("relu'", "abs'", "step")):
                vals = [evaluate([d], s.point)[0] for s in defined]
                if all(np.all(np.asarray(x, dtype=float) == 1) for x in vals):
                    label = to_text(d, self.p.names)
                    return Verdict(status="wrong", diagnosis="missing-factor",
                                   summary=f"the factor {label} is missing; the claim is {head}",
                                   details=[undefined, f"a forgotten derivative factor: the claim agrees with the "
                                            f"derivative only at points where {label} = 1 (and where it is "
                                            f"defined)"], **v)
            return Verdict(status="wrong", diagnosis="undefined", summary=head,
                           details=[undefined, "where the claim is defined it agrees with the derivative, but "
                                    "the derivative is defined on a larger domain, and the claim must hold there too"],
                           **v)
        for diagnose in (lambda: self.diagnose_factor(defined, orients),
                         lambda: self.diagnose_candidates(defined, orients, cands)):
            diag = diagnose()
            if diag:
                kind, summary, details, factor = diag
                return Verdict(status="wrong", diagnosis=kind, summary=f"{summary}; the claim is also {head}",
                               details=[undefined] + details, factor=factor, **v)
        return Verdict(status="wrong", diagnosis="undefined",
                       summary=f"{head}, and it differs from the derivative where it is defined",
                       details=[undefined], **v)

    def why_undefined(self, sample) -> tuple[str, Node | None]:
        """The first operation of the claim that leaves the finite numbers at a sample, in words, and the
        argument that is negative there (of log, sqrt or a fractional power), if that is why."""
        nodes = [n for n in walk(self.claim)]
        vals = dict(zip(nodes, evaluate(nodes, sample.point)))
        for n in nodes:
            if _finite(vals[n]) or not all(_finite(vals[a]) for a in n.args):
                continue
            here = to_text(n, self.p.names)
            if n.op in ("log", "sqrt", "pow") and np.any(np.asarray(vals[n.args[0]], dtype=float) < 0):
                a = n.args[0]
                what = {"log": "log", "sqrt": "sqrt"}.get(n.op, "a fractional power")
                return f"{what} of a negative number: {to_text(a, self.p.names)} < 0", a
            if n.op in ("log", "pow", "div"):
                return f"a division by 0 in {here}", None
            if n.op in ("inv", "logdet"):
                return f"a singular matrix in {here}", None
            return f"{here} is not finite", None
        return "", None

    def where_undefined(self, bad, negative) -> str:
        """'W x has negative entries' when that is where the claim is undefined (negative: the argument of
        the log, sqrt or fractional power that is negative at the first bad point), or when flipping a variable's
        signs to + makes the claim defined at every bad point."""
        program = self.p.program
        if negative is not None:
            text = to_text(negative, self.p.names)
            if all(np.any(np.asarray(evaluate([negative], s.point)[0], dtype=float) < 0) for s in bad):
                return f"{text} is negative" if negative.ndim == 0 else f"{text} has negative entries"
        names = list(program.variables)
        def fixes(group):
            for s in bad:
                values = {k: (np.abs(v) if k in group else v) for k, v in s.point.values.items()}
                pt = dataclasses.replace(s.point, values=values)
                if not _finite(evaluate([self.claim], pt)[0]):
                    return False
            return True
        for name in names:
            if fixes({name}):
                return f"{name} is negative" if program.variables[name].ndim == 0 else f"{name} has negative entries"
        if len(names) > 1 and fixes(set(names)):
            return "some inputs are negative"
        return ""

    def method(self, samples) -> str:
        dims = _dims_tried(samples)
        s = f"checked numerically at {len(samples)} random points"
        if dims and any(dims):
            s += " (sizes " + "; ".join(", ".join(f"{k}={v}" for k, v in d.items()) for d in dims) + ")"
        abstract = tuple(self.p.program.elementwise) + tuple(self.p.program.functions)
        if abstract:
            s += f", with a fresh concrete stand-in for {', '.join(abstract)} at each point"
        return s + "."

    def layout_note(self, orient) -> tuple[str, list[str]]:
        t, name = self.truth, self.wrt
        if orient == "transposed":
            return "numerator", [
                f"The claim is {format_shape(tuple(reversed(t.shape)))}, the transpose of the gradient "
                f"({format_shape(t.shape)}, shaped like {name}): it follows the numerator layout, in which "
                f"∂{self.obj}/∂{name} is laid out like {name}ᵀ (as a Jacobian is). In the denominator layout "
                f"(the gradient convention symbackprop uses) the answer is its transpose."]
        if orient == "row":
            return "numerator", [f"The claim is a 1×{t.shape[0]} row vector: the numerator layout. The gradient is "
                                 f"the column vector of length {t.shape[0]}."]
        if orient == "broadcast":
            return "gradient", [f"The scalar claim stands for the constant {format_shape(t.shape)} array with every "
                                f"entry equal to it."]
        if orient == "column":
            return "denominator", [f"The claim is a {t.shape[0]}×1 column: the gradient (denominator layout)."]
        if t.ndim == 1:
            row = self.row_vector_spelling()
            if row is None:
                return "vector", []
            return "vector", [f"Vectors are 1-D in the formula language, so a row-vector answer (numerator layout, "
                              f"e.g. {row}) and the column gradient are the same claim."]
        if t.ndim == 2:
            return "denominator", [f"Shaped like {name} ({format_shape(t.shape)}): the gradient convention "
                                   f"(denominator layout)."]
        return "scalar", []

    def row_vector_spelling(self) -> str | None:
        """The smallest part of the claim's text written as a row vector, explained: a vector on the left of @
        ('x4 @ W2 here, for x4ᵀ W2') or a vector's .T; None when there is none (or the claim was given as a node)."""
        text = self.p.claim_text.get(self.claim)
        if text is None:
            return None
        try:
            tree = self.p.parser.parse_ast(text, text, 0)
        except SymbackpropError:
            return None
        body = "\n".join(tree.src_lines)

        def part(node):
            seg = ast.get_source_segment(body, node)
            if seg is None:
                return None, None
            seg = seg.replace(PRIME, "'")
            try:
                return seg, self.p.parse(seg, what="a part of the claim")
            except SymbackpropError:
                return seg, None

        def math(n: Node) -> str:
            t = to_text(n, _unname(self.p.names, n) if n not in self.p.lets.values() else self.p.names)
            return f"({t})" if " " in t else t
        found = []
        for node in ast.walk(tree):
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult):
                (seg, _), (_, left), (_, right) = part(node), part(node.left), part(node.right)
                if left is not None and right is not None and left.ndim == 1 and right.ndim == 2:
                    found.append((len(seg), f"{seg} here, for {math(left)}ᵀ {math(right)}"))
            elif isinstance(node, ast.Attribute) and node.attr == "T":
                (seg, _), (_, value) = part(node), part(node.value)
                if value is not None and value.ndim == 1:
                    found.append((len(seg), f"{seg} here, a vector's transpose"))
        return min(found)[1] if found else None

    # ----- sampling -----

    def sample(self, roots: list[Node], dims_list=None, symmetric=(), need=1):
        """Points (with the roots' values) for several random sizes of the symbolic dims.

        The points are chosen where roots[:need] (the derivative, by default) and the objective are finite;
        every kink argument is seen on both sides of its kink where it can be."""
        program = self.p.program
        rng = np.random.default_rng(self.p.seed + 1)
        expanded = expand_macros(list(roots))
        kink_args = [n.args[0] for n in walk(expanded) if n.op in _KINKS]
        # where the claim alone may be undefined: each such argument is seen on both sides too
        domain_args = [a for a in _domain_args(expanded[1]) if a not in kink_args] if need == 1 and len(expanded) > 1 else []
        out = []
        if not dims_list:
            dims_list = []
            for _ in range(DIM_DRAWS if program.dims else 1):
                for _ in range(10):                 # distinct draws where the dims allow
                    dims = random_dims(program.dims, rng)
                    if dims not in dims_list:
                        break
                dims_list.append(dims)
        per = POINTS_PER_DRAW if program.dims else POINTS_PER_DRAW * DIM_DRAWS
        for dims in dims_list:
            for _ in range(per):
                got = _good_point(program, rng, dims, expanded, kink_args, symmetric=symmetric, need=need,
                                  domain_args=domain_args)
                if got is not None:
                    out.append(got)
        return _cover_kinks(program, rng, out, expanded, kink_args, symmetric=symmetric, need=need,
                            domain_args=domain_args)

    # ----- diagnoses -----

    def candidates(self) -> list[tuple[str, str, Node, str]]:
        """(kind, description, node, side): 'truth' side nodes are compared with the claim,
        'claim' side nodes with the truth."""
        truth, claim, names = self.truth, self.claim, self.p.names
        out = []
        derivs = [n for n in walk(truth) if (n.op == "phi" and n.attrs[1] >= 1)
                  or (RULES[n.op].expand is not None and n.op.endswith("'"))]
        for d in derivs:
            label = to_text(d, names)
            ones = E.ones(d.shape)
            out.append(("missing-factor", f"the factor {label} is missing", E.substitute(truth, {d: ones}), "truth"))
            primal = (Node("phi", d.args, (d.attrs[0], d.attrs[1] - 1)) if d.op == "phi"
                      else Node(d.op[:-1], d.args))
            out.append(("function-for-derivative", f"{to_text(primal, _unname(names, primal))} is used where "
                        f"its derivative "
                        f"{label} belongs", E.substitute(truth, {d: primal}), "truth"))
        if len(derivs) > 1:
            out.append(("missing-factor", "the factors " + ", ".join(to_text(d, names) for d in derivs)
                        + " are missing", E.substitute(truth, {d: E.ones(d.shape) for d in derivs}), "truth"))
        terms = _terms(truth)
        if len(terms) > 1:
            for sign, t in terms:
                out.append(("missing-term", f"the term {'−' if sign < 0 else ''}{to_text(t, names)} is missing",
                            E.sub(truth, t) if sign > 0 else E.add(truth, t), "truth"))
        cterms = _terms(claim)
        if len(cterms) > 1:
            for sign, t in cterms:
                out.append(("extra-term", f"the term {'−' if sign < 0 else ''}{to_text(t, names)} does not belong",
                            E.sub(claim, t) if sign > 0 else E.add(claim, t), "claim"))
        return out

    def diagnose_factor(self, samples, orients):
        """claim = c · gradient for one constant c (c = −1: the sign)."""
        for o in orients:
            cs = []
            for s in samples:
                c, t = _orient(o, s.vals[1]), np.asarray(s.vals[0], dtype=float)
                tt = float(np.vdot(t, t))
                if tt < 1e-20:
                    continue
                cs.append((float(np.vdot(np.broadcast_to(c, t.shape), t)) / tt, c, t))
            if not cs or len(cs) < len(samples) // 2:
                continue
            k = cs[0][0]
            if all(_close(c, k * t) for _, c, t in cs) and abs(k - 1) > 1e-6:
                tr = " and transposed (numerator layout)" if o == "transposed" else ""
                if abs(k) < 1e-9:
                    return ("zero", "the claim is 0, but the derivative is not", [], "0")
                if abs(k + 1) < 1e-9:
                    return ("sign", f"wrong sign{tr}",
                            [f"claim = −(∂{self.obj}/∂{self.wrt})"], "-1")
                f = _nice(k)
                return ("factor", f"off by a constant factor: {f} times the derivative{tr}",
                        [f"claim = {f} · ∂{self.obj}/∂{self.wrt}"], f)
        return None

    def diagnose_candidates(self, samples, orients, cands):
        for i, (kind, desc, _, side) in enumerate(cands):
            for o in orients:
                if side == "truth":
                    ok = all(_agrees(o, s.vals[1], s.vals[2 + i]) for s in samples)
                else:
                    ok = all(_agrees(o, s.vals[2 + i], s.vals[0]) for s in samples)
                if ok:
                    tr = " (and the claim is transposed: numerator layout)" if o == "transposed" else ""
                    word = {"missing-factor": "a forgotten derivative factor",
                            "function-for-derivative": "a function in place of its derivative",
                            "missing-term": "a missing term", "extra-term": "an extra term"}[kind]
                    return (kind, desc + tr, [f"{word}: with that fixed, the claim matches the derivative"], None)
        return None

    def diagnose_special(self, orients):
        """Claims that hold only on special inputs: symmetric matrices, or every dim equal to 1."""
        program = self.p.program
        square = [n for n, v in program.variables.items() if v.ndim == 2 and shapes_equal((v.shape[0],), (v.shape[1],))]
        roots = [self.truth, self.claim]
        groups = [[n] for n in square] + [list(g) for g in itertools.combinations(square, 2)]
        for group in groups + ([square] if len(square) > 2 else []):
            samples = self.sample(roots, symmetric=set(group))
            if samples and any(all(_agrees(o, s.vals[1], s.vals[0]) for s in samples) for o in orients):
                names = " and ".join(group)
                eqs = ", ".join(f"{n} = {n}ᵀ" for n in group)
                return ("symmetric-only", f"right only when {names} {'is' if len(group) == 1 else 'are'} symmetric",
                        [f"the claim agrees with the derivative when {eqs}, but not in general: somewhere it "
                         f"uses {group[0]} where {group[0]}ᵀ belongs (or the reverse)"], None)
        if program.dims:
            ones = {d: 1 for d in program.dims}
            samples = self.sample(roots, dims_list=[ones, ones])
            if samples and any(all(_agrees(o, s.vals[1], s.vals[0]) for s in samples) for o in orients):
                return ("scalar-only", "right only when every dimension is 1",
                        ["the claim agrees with the derivative for 1×1 matrices and length-1 vectors (scalars), "
                         "but not for larger sizes. Scalars ignore the order of products, transposes, sums over entries "
                         "and the difference between ⊙ and a matrix product: look for one of those"], None)
        return None

    def counterexample(self, orients) -> Counterexample | None:
        """Small dims (2, 3, …), inputs rounded to one decimal, where the claim and the derivative differ."""
        program = self.p.program
        dims = {d: 2 + i for i, d in enumerate(program.dims)}
        roots = expand_macros([self.truth, self.claim])
        kink_args = [n.args[0] for n in walk(roots) if n.op in _KINKS]
        rng = np.random.default_rng(self.p.seed + 2)
        fallback = None
        for attempt in range(40):
            got = _good_point(program, rng, dims, roots, kink_args, round_to=1 if attempt < 30 else None)
            if got is None:
                continue
            if not any(_agrees(o, got.vals[1], got.vals[0]) for o in orients):
                fallback = got
                break
        if fallback is None:
            return None
        pt = fallback.point
        funcs = {}
        for name, sub in pt.functions.items():
            funcs[name] = _describe_substitute(sub, name, name in program.elementwise)
        claimed = np.asarray(fallback.vals[1], dtype=float)
        if "transposed" in orients and "same" not in orients:
            claimed = claimed.T
        return Counterexample({str(k): v for k, v in dims.items()}, dict(pt.values), funcs, claimed,
                              np.asarray(fallback.vals[0], dtype=float))


# ----- helpers -----

@dataclass
class _Sample:
    point: object
    vals: list
    kinks: list = field(default_factory=list)


def _domain_args(claim: Node) -> list[Node]:
    """Arguments whose sign decides whether the claim is defined: those of log and sqrt (and every elementwise
    function whose domain is not all reals), the bases of fractional powers, and divisors. A claim that is NaN
    where such an argument is negative, while the derivative is finite there, is wrong; the sampler looks for
    both signs of each, as it does for kinks (`exp(log(a))/a` agrees with 1 wherever a > 0)."""
    out = []
    for n in walk([claim]):
        f = ELEMENTWISE.get(n.op)
        if f is not None and f.domain != "real":
            out.append(n.args[0])
        elif n.op == "pow" and n.args[1].op == "const" and not sympy.sympify(n.args[1].attrs[0]).is_integer:
            out.append(n.args[0])
        elif n.op == "div":
            out.append(n.args[1])
    return out


def _good_point(program, rng, dims, roots, kink_args, symmetric=(), round_to=None, need=1, domain_args=()):
    """A point where the derivative (roots[0]), the objective and roots[:need] are finite, kinks are avoided
    and pre-activations have both signs.

    Only the derivative and the objective choose the point when need=1: a claim that is undefined (NaN) on
    part of the derivative's domain must be seen there, not steered around."""
    loose = looser = None
    for attempt in range(24):
        point = random_point(program, rng, scheme=(0, 2, 1)[attempt % 3], dims=dims)
        for k, v in point.values.items():
            if symmetric and k in symmetric and v.ndim == 2 and v.shape[0] == v.shape[1]:
                point.values[k] = v = (v + v.T) / 2
            if round_to is not None:
                point.values[k] = np.round(v, round_to)
        got = _evaluate_point(program, point, roots, kink_args, need, domain_args)
        if got is None:
            continue
        sample, domain, away, mixed = got
        if domain and away and (mixed or attempt >= 12):
            return sample
        if loose is None and domain:
            loose = sample
        if looser is None:
            looser = sample
    return loose or looser


def _evaluate_point(program, point, roots, kink_args, need=1, domain_args=()):
    """(sample, objective finite, kinks away from 0, array kinks of both signs), or None where roots[:need]
    is not finite. The sample records the kink arguments, then the domain arguments (which only count for
    the sides seen: relu(x) under a square root is 0 on purpose)."""
    vals = evaluate(list(roots) + list(kink_args) + list(domain_args) + [program.objective], point)
    head, seen, obj = vals[:len(roots)], vals[len(roots):-1], vals[-1]
    kinks = seen[:len(kink_args)]
    if not all(np.all(np.isfinite(np.asarray(v, dtype=float))) for v in head[:need]):
        return None
    domain = bool(np.all(np.isfinite(np.asarray(obj, dtype=float))))
    away = all(np.min(np.abs(k)) > KINK_MARGIN for k in kinks if np.size(k))
    mixed = all(np.size(k) < 2 or (np.min(k) < 0 < np.max(k)) for k in kinks)
    return _Sample(point, head, seen), domain, away, mixed


def _sides(sample) -> set:
    """(kink index, sign) pairs that the sample's kink arguments show."""
    out = set()
    for i, k in enumerate(sample.kinks):
        k = np.asarray(k, dtype=float)
        if k.size and np.all(np.isfinite(k)):
            if np.min(k) < 0:
                out.add((i, -1))
            if np.max(k) > 0:
                out.add((i, 1))
    return out


def _cover_kinks(program, rng, samples, roots, kink_args, symmetric=(), need=1, domain_args=()):
    """More points until every kink argument has been seen on both sides of its kink.

    A scalar argument (relu(w·x + b), abs(a)) has one sign per point, and an array may be one-signed at every
    point; a claim that forgets relu′ or sign agrees with the derivative on one side, so both must be sampled.
    New points are fresh random draws and sign flips of the variables of points already taken."""
    if not (kink_args or domain_args) or not samples:
        return samples
    def constant(i):
        first = np.asarray(samples[0].kinks[i], dtype=float)
        return all(np.array_equal(np.asarray(s.kinks[i], dtype=float), first) for s in samples[1:])
    wanted = {(i, sign) for i in range(len(kink_args) + len(domain_args)) if not constant(i) for sign in (-1, 1)}
    seen = set().union(*(_sides(s) for s in samples))
    missing = wanted - seen
    stale = 0
    for attempt in range(KINK_TRIES):
        if not missing or stale >= KINK_STALE:
            break
        base = samples[int(rng.integers(len(samples)))].point
        names = list(base.values)
        scale = KINK_SCALES[(attempt // 3) % len(KINK_SCALES)]
        if attempt % 3 == 2:                        # a fresh point, with a wider or narrower spread
            point = random_point(program, rng, scheme=0, dims=base.dims)
            for k, v in point.values.items():
                if symmetric and k in symmetric and v.ndim == 2 and v.shape[0] == v.shape[1]:
                    v = (v + v.T) / 2
                point.values[k] = scale * v
        elif attempt % 3 == 1:                      # flip the signs of some variables, rescaled
            flip = rng.random(len(names)) < 0.5
            flip[int(rng.integers(len(names)))] = True
            values = {n: (-scale * v if f else v) for (n, v), f in zip(base.values.items(), flip)}
            point = dataclasses.replace(base, values=values)
        else:                                       # shift one variable: relu(a + 2) needs a < −2
            name = names[int(rng.integers(len(names)))]
            shift = float(rng.choice(KINK_SHIFTS))
            point = dataclasses.replace(base, values={**base.values, name: base.values[name] + shift})
        got = _evaluate_point(program, point, roots, kink_args, need, domain_args)
        stale += 1
        if got is None or not got[1] or not got[2]:
            continue
        new = _sides(got[0]) & missing
        if new:
            samples.append(got[0])
            missing -= new
            stale = 0
    return samples


def _orient(o, value):
    v = np.asarray(value, dtype=float)
    if o == "transposed":
        return v.T
    if o in ("row", "column"):
        return v.reshape(-1)
    return v


def _agrees(o, claim_value, truth_value) -> bool:
    c = _orient(o, claim_value)
    t = np.asarray(truth_value, dtype=float)
    if o == "broadcast":
        c = np.broadcast_to(c, t.shape)
    return c.shape == t.shape and _close(c, t)


def _json_array(v):
    """A nested list for JSON, with NaN and ±inf (an undefined claim) as null: JSON has no NaN."""
    a = np.asarray(v, dtype=float)
    return np.where(np.isfinite(a), a, None).tolist() if a.size and not np.all(np.isfinite(a)) else a.tolist()


def _finite(a) -> bool:
    return bool(np.all(np.isfinite(np.asarray(a, dtype=float))))


def _close(a, b) -> bool:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape and a.size != 1 and b.size != 1:
        return False
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return False
    scale = max(float(np.max(np.abs(a), initial=0.0)), float(np.max(np.abs(b), initial=0.0)))
    return float(np.max(np.abs(a - b), initial=0.0)) <= RTOL * scale + ATOL


#: Sums and products with more terms than this are compared as written (keeps _canonical linear in long chains).
CANONICAL_TERMS = 64


def _canonical(nodes: list[Node]) -> dict[Node, int]:
    """A key per node (`nodes` lists arguments before their users, as walk does), equal for expressions that
    differ only in the order of the terms of +/− and of the factors of ⊙ and of dot products."""
    keys: dict[Node, int] = {}
    flat: dict[Node, tuple] = {}                         # the sorted (sign, key) terms or factor keys of n
    intern: dict[tuple, int] = {}

    def parts(n, m, sign):
        if m in flat and m.op in ("add", "sub", "neg") and m.shape == n.shape:
            return [(sign * s, k) for s, k in flat[m]]
        return [(sign, keys[m])]
    for n in nodes:
        if n in keys:
            continue
        key = None
        if n.op in ("add", "sub"):
            terms = parts(n, n.args[0], 1) + parts(n, n.args[1], 1 if n.op == "add" else -1)
        elif n.op == "neg":
            terms = parts(n, n.args[0], -1)
        elif n.op == "mul":
            terms = [f for m in n.args for f in (flat[m] if m in flat and m.op == "mul" and m.shape == n.shape
                                                 else [(1, keys[m])])]
        elif n.op == "dot":
            key = ("dot", tuple(sorted(keys[a] for a in n.args)))
        if n.op in ("add", "sub", "neg", "mul"):
            if len(terms) <= CANONICAL_TERMS:
                flat[n] = tuple(sorted(terms))
                key = ("sum" if n.op != "mul" else "mul", n.shape if n.op == "mul" else None, flat[n])
        if key is None:
            key = (n.op, n.attrs, n.shape if not n.args else None, tuple(keys[a] for a in n.args))
        keys[n] = intern.setdefault(key, len(intern))
    return keys


def _terms(node: Node, sign: int = 1) -> list[tuple[int, Node]]:
    """The additive terms of a sum, with signs (iterative)."""
    out, stack = [], [(node, sign)]
    while stack:
        n, s = stack.pop()
        if n.op == "add":
            stack += [(n.args[1], s), (n.args[0], s)]
        elif n.op == "sub":
            stack += [(n.args[1], -s), (n.args[0], s)]
        elif n.op == "neg":
            stack.append((n.args[0], -s))
        else:
            out.append((s, n))
    return [(s, t) for s, t in out if t.shape == node.shape]


def _unname(names: dict, node: Node) -> dict:
    return {k: v for k, v in names.items() if k is not node}


def _nice(k: float) -> str:
    f = Fraction(k).limit_denominator(64)
    if abs(float(f) - k) < 1e-9 * max(1.0, abs(k)):
        return str(f.numerator) if f.denominator == 1 else f"{f.numerator}/{f.denominator}"
    return f"{k:.6g}"


def _dims_tried(samples) -> list[dict]:
    seen = []
    for s in samples:
        d = {str(k): v for k, v in s.point.dims.items()}
        if d not in seen:
            seen.append(d)
    return seen


def _array_text(v, digits: int) -> str:
    a = np.asarray(v, dtype=float)
    if a.ndim == 0:
        return f"{float(a):.{digits}g}" if digits > 2 else f"{float(a):g}"
    return np.array2string(a, precision=digits, suppress_small=True, separator=", ",
                           max_line_width=100).replace("\n", " ")


def _describe_substitute(sub: Substitute, name: str, elementwise: bool) -> str:
    if elementwise and 1 in sub.params:
        w, c, u, b = sub.params[1]
        return (f"t ↦ sin({float(w[0]):.3g}·t + {float(c):.3g}) + {0.5 * float(b):.3g}·({float(u[0]):.3g}·t)² "
                f"(a random smooth stand-in)")
    return "a random smooth stand-in (sin of a linear form plus a quadratic)"


def _shape_specs(shapes):
    """Accept {'W': 'h,d'}, {'W': ['h', 'd']}, {'x': 3}, {'s': None} or ['W=h,d']."""
    if shapes is None or not isinstance(shapes, dict):
        return shapes
    out = {}
    for k, v in shapes.items():
        if v is None:
            v = []
        elif isinstance(v, (int, sympy.Integer)) and not isinstance(v, bool):
            v = [int(v)]
        elif isinstance(v, (list, tuple)):
            v = [str(x) if not isinstance(x, int) else x for x in v]
        elif not isinstance(v, str):
            raise FormulaError(f"shape of `{k}`: bad value {v!r}", hint="write dims like 'h,d', [h, d] or 3")
        out[k] = v
    return out


def _let_items(lets):
    if not lets:
        return []
    if isinstance(lets, dict):
        return list(lets.items())
    out = []
    for item in lets:
        if isinstance(item, str):
            if "=" not in item:
                raise FormulaError(f"bad let {item!r}", hint="write NAME=EXPR, e.g. --let x1='W1 @ x + b'")
            name, _, text = item.partition("=")
            out.append((name.strip(), text))
        else:
            out.append(tuple(item))
    return out


def check(formula: str, shapes=None, *, wrt: str, claim: str, elementwise=(), functions=(), lets=None,
          seed: int = 0) -> Verdict:
    """Check a claimed derivative ∂objective/∂wrt of `formula`.

    >>> v = check("0.5 * norm(W @ x - y)**2", {"W": "m,n", "x": "n", "y": "m"},
    ...           wrt="W", claim="outer(x, W @ x - y)")
    >>> v.verdict, v.layout
    ('correct up to transpose', 'numerator')
    """
    if isinstance(elementwise, str):
        elementwise = [n.strip() for n in elementwise.split(",") if n.strip()]
    if isinstance(functions, str):
        functions = [n.strip() for n in functions.split(",") if n.strip()]
    problem = Problem(formula, shapes, elementwise, functions, lets, seed=seed)
    return problem.check(wrt, claim)


def verdicts_json(verdicts, extra=None) -> str:
    return json.dumps({**(extra or {}), "verdicts": [v.to_dict() for v in verdicts]}, indent=2, ensure_ascii=False,
                      default=str)


# ----- worked-solution files -----

SOLUTION_KEYS = {"title", "problem", "claims", "notes"}
PROBLEM_KEYS = {"formula", "shapes", "elementwise", "functions", "lets", "seed"}
CLAIM_KEYS = {"wrt", "claim", "label", "note", "expect"}
EXPECT = {"correct", "transposed", "correct up to transpose", "wrong", "malformed"}


class SolutionError(FormulaError):
    """A worked-solution file that cannot be read; the message names the file and line."""


@dataclass
class Report:
    """Verdicts for every claim of a worked-solution file."""
    filename: str
    title: str
    formula: str
    objective: str
    verdicts: list

    @property
    def exit_code(self) -> int:
        return max((v.exit_code for v in self.verdicts), default=0)

    def counts(self) -> dict:
        return {s: sum(v.status == s for v in self.verdicts) for s in STATUS_TEXT}

    def summary(self) -> str:
        c = self.counts()
        parts = [f"{c['correct']} correct", f"{c['transposed']} correct up to transpose", f"{c['wrong']} wrong"]
        if c["malformed"]:
            parts.append(f"{c['malformed']} malformed")
        n = len(self.verdicts)
        return f"{n} claim{'s' * (n != 1)}: " + ", ".join(parts) + "."

    def _rows(self):
        for i, v in enumerate(self.verdicts, 1):
            verdict = v.verdict
            if v.expect and _expect_status(v.expect) != v.status:
                verdict += f" (expected: {v.expect})"
            yield i, v, verdict

    def text(self) -> str:
        head = f"{self.filename}: {self.title}" if self.title else self.filename
        lines = [head, f"  {self.objective} = {self.formula}"]
        where = list(dict.fromkeys(w for v in self.verdicts for w in v.where))
        if where:
            lines.append("  where " + "; ".join(where))
        lines.append("")
        claims = [f"∂{v.objective}/∂{v.wrt} = {v.claim}" for v in self.verdicts]
        width = min(max((len(c) for c in claims), default=10), 60)
        lines.append(f"  #  line  {'claim'.ljust(width)}  verdict")
        for (i, v, verdict), c in zip(self._rows(), claims):
            c = c if len(c) <= width else c[:width - 1] + "…"
            lines.append(f"{i:3d}  {v.line or '':>4}  {c.ljust(width)}  {verdict}"
                         + (f": {v.summary}" if v.summary and not v.ok else ""))
        notes = [(i, v) for i, v, _ in self._rows() if v.status != "correct" or v.layout == "numerator"]
        if notes:
            lines += ["", "Notes:"]
            for i, v in notes:
                lines.append(f"{i:3d}. " + (f"{v.label}: " if v.label else "")
                             + f"∂{v.objective}/∂{v.wrt} = {v.claim}   (line {v.line})")
                body = v.text(where=False, method=False).split("\n")[2:]
                lines += ["   " + l for l in body]
        lines += ["", self.summary()]
        checked = next((v for v in self.verdicts if v.points), None)
        if checked:
            lines.append("Each claim was " + checked.method)
        return "\n".join(lines)

    def markdown(self) -> str:
        lines = [f"### {self.title or self.filename}", "", f"`{self.objective} = {self.formula}`", "",
                 "| # | line | claim | verdict | note |", "|---:|---:|---|---|---|"]
        for i, v, verdict in self._rows():
            note = "; ".join([str(v.label)] * bool(v.label) + [v.summary] * bool(v.summary and not v.ok) + [d for d in v.details if v.status != "correct"]
                             + [f"the gradient (shaped like {v.wrt}): {v.gradient}"] * bool(v.gradient))
            lines.append(f"| {i} | {v.line or ''} | `∂{v.objective}/∂{v.wrt} = {_md_cell(v.claim)}` | "
                         f"**{verdict}** | {_md_cell(note)} |")
        lines += ["", self.summary()]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"file": self.filename, "title": self.title, "formula": self.formula, "objective": self.objective,
                "summary": self.counts(), "exit_code": self.exit_code, "verdicts": [v.to_dict() for v in self.verdicts]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False, default=str)

    def _repr_markdown_(self) -> str:
        return self.markdown()


def _expect_status(word: str) -> str:
    return "transposed" if word in ("transposed", "correct up to transpose") else word


def _md_cell(s: str) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


#: Worked-solution files larger than this are refused (a clean error, exit 2).
MAX_SOLUTION_CHARS = 1_000_000


def check_solution(path: str, text: str | None = None, seed: int | None = None) -> Report:
    """Check every claim of a worked-solution YAML file (see docs/checker.md for the format)."""
    import yaml
    if text is None:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise SolutionError(f"cannot read {path}: {e.strerror}") from None
        except UnicodeDecodeError:
            raise SolutionError(f"{path} is not UTF-8 text") from None
    if len(text) > MAX_SOLUTION_CHARS:
        raise SolutionError(f"{path} is {len(text)} characters long; the limit is {MAX_SOLUTION_CHARS}")
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        raise SolutionError(f"{path}: the YAML is nested too deeply",
                            hint="see docs/checker.md for the worked-solution format") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
        raise SolutionError(f"{where}: not valid YAML: {getattr(e, 'problem', None) or e}",
                            hint="see docs/checker.md for the worked-solution format") from None

    def line(*keys) -> int | None:
        node = root
        if node is None:
            return None
        for k in keys:
            node = _yaml_child(node, k)
            if node is None:
                return None
        return node.start_mark.line + 1

    def fail(message, *keys, hint=None):
        ln = line(*keys)
        raise SolutionError(f"{path}:{ln}: {message}" if ln else f"{path}: {message}",
                            hint=hint or "see docs/checker.md for the worked-solution format")

    if not isinstance(data, dict):
        fail("a worked-solution file is a mapping with `problem:` and `claims:`")
    _unknown_keys(data, SOLUTION_KEYS, fail, ())
    prob = data.get("problem")
    if not isinstance(prob, dict):
        fail("`problem:` is missing or not a mapping (formula, shapes, elementwise, functions, lets)",
             *(("problem",) if "problem" in data else ()))
    _unknown_keys(prob, PROBLEM_KEYS, fail, ("problem",))
    formula = prob.get("formula")
    if not isinstance(formula, str) or not formula.strip():
        fail("`problem.formula` is missing or not text", *(("problem", "formula") if "formula" in prob else ("problem",)))
    shapes = prob.get("shapes") or {}
    if not isinstance(shapes, (dict, list)):
        fail("`problem.shapes` must be a mapping like {W1: 'h,d', x: d}", "problem", "shapes")
    names = {}
    for key in ("elementwise", "functions"):
        v = prob.get(key) or []
        if isinstance(v, str):
            v = [n.strip() for n in v.split(",") if n.strip()]
        if not isinstance(v, list) or not all(isinstance(n, str) for n in v):
            fail(f"`problem.{key}` must be a list of names, e.g. [Phi]", "problem", key)
        names[key] = v
    lets = prob.get("lets") or {}
    if not isinstance(lets, dict):
        fail("`problem.lets` must be a mapping NAME: EXPR, e.g. {x1: W1 @ x + b}", "problem", "lets")
    if seed is None:
        seed = prob.get("seed", 0)
        if not isinstance(seed, int) or isinstance(seed, bool):
            fail("`problem.seed` must be an integer", "problem", "seed")
    try:
        problem = Problem(formula, shapes, names["elementwise"], names["functions"], seed=seed)
    except SymbackpropError as e:
        e.message = f"{path}:{line('problem', 'formula') or '?'}: in problem.formula: {e.message}"
        raise
    for name, expr in lets.items():
        try:
            problem.define(str(name), expr if isinstance(expr, str) else str(expr))
        except SymbackpropError as e:
            e.message = f"{path}:{line('problem', 'lets', name) or '?'}: in the let `{name}`: {e.message}"
            raise
    claims = data.get("claims")
    if not isinstance(claims, list) or not claims:
        fail("`claims:` is missing or empty: give a list of {wrt: NAME, claim: EXPR}",
             *(("claims",) if "claims" in data else ()))
    verdicts = []
    for i, c in enumerate(claims):
        if not isinstance(c, dict):
            fail(f"claim {i + 1} must be a mapping with wrt: and claim:", "claims", i)
        _unknown_keys(c, CLAIM_KEYS, fail, ("claims", i))
        for key in ("wrt", "claim"):
            if key not in c or c[key] is None or (isinstance(c[key], str) and not c[key].strip()):
                fail(f"claim {i + 1} has no `{key}:`", "claims", i)
        expect = c.get("expect")
        if expect is not None and expect not in EXPECT:
            fail(f"claim {i + 1}: `expect:` must be one of {', '.join(sorted(EXPECT))}", "claims", i, "expect")
        ln = line("claims", i, "claim") or line("claims", i)
        wrt = str(c["wrt"]).strip()
        try:
            v = problem.check(wrt, c["claim"], line=ln, label=c.get("label"), expect=expect)
        except SymbackpropError as e:
            if isinstance(e, SolutionError) or e.exit_code != 2:
                raise
            v = Verdict(wrt=wrt, claim=str(c["claim"]).strip(), status="malformed", summary=e.message,
                        details=e.format().split("\n")[1:], objective=problem.objective_name, line=ln, label=c.get("label"), expect=expect)
        if c.get("note"):
            v.details = [str(c["note"])] + list(v.details)
        verdicts.append(v)
    title = data.get("title") or ""
    return Report(path, str(title), formula.strip(), problem.objective_name, verdicts)


def _yaml_child(node, key):
    import yaml
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == str(key):
                return v
        return None
    if isinstance(node, yaml.SequenceNode) and isinstance(key, int) and 0 <= key < len(node.value):
        return node.value[key]
    return None


def _unknown_keys(mapping: dict, allowed: set, fail, where: tuple):
    for k in mapping:
        if k not in allowed:
            near = difflib.get_close_matches(str(k), sorted(allowed), 1)
            fail(f"unknown key `{k}`" + (f" in {'.'.join(str(w) for w in where if isinstance(w, str))}" if where else ""),
                 *where, k, hint=(f"did you mean `{near[0]}`? " if near else "") + "allowed: " + ", ".join(sorted(allowed)))
