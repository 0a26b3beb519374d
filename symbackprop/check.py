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

import copy
import dataclasses
import difflib
import json
import re

import numpy as np

from . import expr as E
from .check_support import (
    canonical,
    close,
    let_items,
    shape_specs,
    unname,
)
from .check_hints import inner_for_outer
from .derivation import Derivation, resolve_wrt
from .errors import FormulaError, Hint, LimitError, ShapeError, SymbackpropError
from .evaluate import evaluate, random_dims, random_point
from .expr import Node, format_shape, shapes_equal, walk
from .judge import Judge, split_gradient  # noqa: F401
from .parse import MAX_FORMULA_CHARS, NAME_RE, Parser, check_notation
from .printing import to_text
from .scalar import canonical_scalar
from .verdict import Counterexample, Verdict  # noqa: F401

# ----- the problem a claim is about -----

class Problem:
    """A formula with its shapes and declared functions, plus `let` names for intermediates.

    >>> p = Problem("0.5 * norm(A @ x - b)**2", {"A": "m,n", "x": "n", "b": "m"}, lets={"r": "A @ x - b"})
    >>> p.check("x", "A.T @ r").status
    'correct'
    """

    def __init__(self, formula: str, shapes=None, elementwise=(), functions=(), lets=None, seed: int = 0,
                 notation: str = "auto", claim_notation: str | None = None):
        self.parser = Parser(shape_specs(shapes), elementwise, functions, allow_primes=True, notation=notation)
        self.program = self.parser.parse_program(formula)
        self.seed = seed
        #: how lets and claims are read: numpy, math, or auto (each claim detected on its own)
        self.claim_notation = check_notation(claim_notation or notation)
        self.claim_row: dict[Node, bool] = {}        # claims written as rows (xᵀ, uᵀA) in the math notation
        self.lets: dict[str, Node] = {}
        self._graph = set(walk(self.program.objective))
        self._truths: dict[str, tuple] = {}
        #: results a caller derives from this problem that hold while its lets do (the homework grader's
        #: verdicts): kept by `fork`, emptied when a let is defined
        self.memo: dict = {}
        self.claim_text: dict[Node, str] = {}       # the text each parsed claim was written as
        for name, text in let_items(lets):
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
        # new stores, not cleared ones: a fork made before this let keeps the derivatives and memo it shares
        self._truths, self.memo = {}, {}
        return node

    def fork(self) -> Problem:
        """A copy that may define lets and read claims without touching this problem. It shares the derivatives
        already derived, and `memo`, until it defines a let of its own (a let does not change ∂ℓ/∂x for a
        variable x, so what either derives meanwhile holds for both)."""
        p = copy.copy(self)
        p.lets = dict(self.lets)
        p.claim_row = {}
        p.claim_text = {}
        return p

    def parse(self, text: str, what: str = "the claim", shape=None) -> Node:
        """Parse a claim (or let) in the formula's context; unknown names are errors. `shape` (the true
        derivative's) sizes a math-notation 𝟙 or I nothing else in the claim sizes."""
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
            node = self.parser.expression(text, scope=dict(self.lets), notation=self.claim_notation, shape=shape)
            self.claim_row[node] = self.parser.row
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
                + Hint("Name intermediates with --let NAME=EXPR (or `lets:` in a solution file); known names: ",
                       "Name intermediates in Named intermediates, one NAME = EXPR a line (or `lets:` in a "
                       "solution file); known names: ")
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
        # the truth as the sweep built it, before simplification: its primes (tanh'(z), …) let the judge name a
        # forgotten factor; the gradient it prints (d.text) is the simplified one
        node = d.wrt_nodes[wrt]
        raw = canonical_scalar(d.sweep.adjoints.get(node, E.zeros(node.shape)), prog.variables)
        self._truths[wrt] = (raw, d, target)
        return self._truths[wrt]

    def _locate(self, name: str, node: Node) -> tuple[Node, list[Node]]:
        """The formula's nodes a let stands for: (the one to differentiate by, the other places it occurs).

        A let stands for every place of the formula that computes it: the same node, the same expression up to
        the order of the terms of + and the factors of * (W @ x + b and b + W @ x), or a node with the same
        values at random points where no place spells it. ∂ℓ/∂let is then the total over all of them."""
        graph = walk(self.program.objective)
        if not node.args and node in self._graph:   # a variable
            return node, []
        canon = canonical(graph + walk(node))
        same = [n for n in graph if n.args and canon[n] == canon[node]]
        cands = [n for n in graph if n.args and shapes_equal(n.shape, node.shape)]
        rng = np.random.default_rng(self.seed + 7)
        matched = None
        for _ in range(2):
            point = random_point(self.program, rng, dims=random_dims(self.program.dims, rng))
            vals = evaluate([node] + cands, point)
            if not np.all(np.isfinite(vals[0])):
                continue
            keep = [n for n, v in zip(cands, vals[1:]) if close(v, vals[0])]
            matched = [n for n in (matched if matched is not None else cands) if n in set(keep)]
        if not same and matched and len(matched) < len(graph):
            same = matched                           # no place spells it: the places with its values
        if not same:
            raise FormulaError(f"`{name}` = {to_text(node, unname(self.names, node))} does not occur in the "
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
                raise FormulaError(f"`{name}` = {to_text(node, unname(self.names, node))} has the values of two "
                                   f"nested places of the formula, {to_text(b, unname(self.names, b))} inside "
                                   f"{to_text(a, unname(self.names, a))}, so ∂{self.objective_name}/∂{name} "
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
        grad_text, where = split_gradient(deriv.text(wrt=[wrt]))
        shown = to_text(claim, self.names) if isinstance(claim, Node) else str(claim).strip()
        base = dict(wrt=wrt, claim=shown, objective=obj, due_shape=format_shape(truth.shape),
                    label=label, line=line, expect=expect, where=where)
        try:
            node = claim if isinstance(claim, Node) else self.parse(claim, shape=truth.shape)
            if not isinstance(claim, Node):
                self.claim_text[node] = str(claim)
        except ShapeError as e:
            details = e.format().replace("error: ", "", 1).split("\n")
            hint = inner_for_outer(self, wrt, claim)     # r @ x.T for r xᵀ, say so
            if hint:
                kind, summary, more, _ = hint
                return Verdict(status="wrong", diagnosis=kind, summary=summary, details=more + details,
                               gradient=grad_text, **base)
            return Verdict(status="wrong", diagnosis="ill-formed", summary="its dimensions do not fit together",
                           details=details, gradient=grad_text, **base)
        return Judge(self, wrt, node, truth, target, grad_text, base).run()


def check(formula: str, shapes=None, *, wrt: str, claim: str, elementwise=(), functions=(), lets=None,
          seed: int = 0, notation: str = "auto") -> Verdict:
    """Check a claimed derivative ∂objective/∂wrt of `formula`. `notation` (numpy, math or auto) says how the
    formula is read; with auto, the default, the claim and each let are detected on their own.

    >>> v = check("0.5 * norm(W @ x - y)**2", {"W": "m,n", "x": "n", "y": "m"},
    ...           wrt="W", claim="outer(x, W @ x - y)")
    >>> v.verdict, v.layout
    ('correct up to transpose', 'numerator')
    """
    if isinstance(elementwise, str):
        elementwise = [n.strip() for n in elementwise.split(",") if n.strip()]
    if isinstance(functions, str):
        functions = [n.strip() for n in functions.split(",") if n.strip()]
    problem = Problem(formula, shapes, elementwise, functions, lets, seed=seed, notation=notation)
    return problem.check(wrt, claim)


def verdicts_json(verdicts, extra=None) -> str:
    return json.dumps({**(extra or {}), "verdicts": [v.to_dict() for v in verdicts]}, indent=2, ensure_ascii=False,
                      default=str)


def __getattr__(name):
    """The worked-solution checker lives in solutions.py; `from symbackprop.check import check_solution` still works."""
    if name in ("check_solution", "SolutionError", "Report"):
        from . import solutions
        return getattr(solutions, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
