"""The judge: compares one claim with the true derivative at random points, and diagnoses the difference."""
from __future__ import annotations

import ast
import dataclasses
import itertools
import re
from typing import TYPE_CHECKING

import numpy as np

from . import expr as E
from .check_support import (
    _agrees,
    _close,
    _cover_kinks,
    _describe_substitute,
    _dims_tried,
    _domain_args,
    _finite,
    _good_point,
    _nice,
    _orient,
    _terms,
    _unname,
)
from .errors import SymbackpropError
from .evaluate import evaluate, random_dims
from .expr import RULES, Node, format_shape, shapes_equal, walk
from .parse import PRIME
from .printing import expand_macros, to_text
from .verdict import Counterexample, Verdict

if TYPE_CHECKING:
    from .check import Problem

#: Random sizes drawn for the symbolic dims, and random points per draw.
DIM_DRAWS = 3
POINTS_PER_DRAW = 2
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
        kink_args = [n.args[0] for n in walk(expanded) if RULES[n.op].kink]
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
        kink_args = [n.args[0] for n in walk(roots) if RULES[n.op].kink]
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
