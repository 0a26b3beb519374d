"""The claim checker's support: sampling points (every kink and domain argument on both sides),
comparing values, reading off terms and describing inputs, for the judge in check.py."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import sympy

from .errors import FormulaError, Hint
from .evaluate import Substitute, evaluate, random_point
from .expr import Node, walk
from .rules import ELEMENTWISE
from .tolerances import CLAIM_ATOL, CLAIM_RTOL

#: Two values agree when max|a − b| <= RTOL·max(|a|, |b|) + ATOL.
RTOL, ATOL = CLAIM_RTOL, CLAIM_ATOL
#: Sampled points keep the arguments of relu, step, sign and abs at least this far from 0.
KINK_MARGIN = 1e-3
#: Extra points tried so that every kink argument is seen on both sides of its kink; the search stops after
#: KINK_STALE tries in a row that show no new side (an argument that cannot change sign, e.g. relu(x ⊙ x)).
KINK_TRIES = 60
KINK_STALE = 24
#: The extra points are spread wider or narrower than standard normal by these factors, so that relu(a + 2)
#: is also seen with a + 2 < 0 and relu(1 - x ⊙ x) with 1 - x ⊙ x > 0.
KINK_SCALES = (1.0, 3.0, 10.0, 0.3)
KINK_SHIFTS = (-10.0, -3.0, -1.0, 1.0, 3.0, 10.0)



@dataclass
class _Sample:
    point: object
    vals: list
    kinks: list = field(default_factory=list)


def claim_domain_args(claim: Node) -> list[Node]:
    """Arguments whose sign decides whether the claim is defined: those of log and sqrt (and every elementwise
    function whose domain is not all reals), the bases of fractional powers, and divisors. A claim that is NaN
    where such an argument is negative, while the derivative is finite there, is wrong; the sampler looks for
    both signs of each, as it does for kinks (`exp(log(a))/a` agrees with 1 wherever a > 0)."""
    out = []
    for n in walk([claim]):
        f = ELEMENTWISE.get(n.op)
        if f is not None and f.domain == "positive":
            out.append(n.args[0])
        elif n.op == "pow" and n.args[1].op == "const" and not sympy.sympify(n.args[1].attrs[0]).is_integer:
            out.append(n.args[0])
        elif n.op == "div":
            out.append(n.args[1])
    return out


def good_point(program, rng, dims, roots, kink_args, symmetric=(), round_to=None, need=1, domain_args=()):
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


def cover_kinks(program, rng, samples, roots, kink_args, symmetric=(), need=1, domain_args=()):
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
        if got is None or not got[1]:
            continue
        if not got[2]:
            # a kink argument on its kink, as relu(a) = 0 under abs for every a < 0: no value is compared
            # there, but a claim undefined where the derivative is finite is wrong there too (found by the
            # long run: abs(relu(a)) with a claim NaN for a < 0 was never sampled on that side)
            sample = got[0]
            new = _sides(sample) & missing
            if new and need == 1 and len(sample.vals) > 1 and all_finite(sample.vals[0]) and not all_finite(sample.vals[1]):
                samples.append(sample)
                missing -= new
                stale = 0
            continue
        new = _sides(got[0]) & missing
        if new:
            samples.append(got[0])
            missing -= new
            stale = 0
    return samples


def orient_value(o, value):
    v = np.asarray(value, dtype=float)
    if o == "transposed":
        return v.T
    if o in ("row", "column"):
        return v.reshape(-1)
    return v


def agrees_with_truth(o, claim_value, truth_value) -> bool:
    c = orient_value(o, claim_value)
    t = np.asarray(truth_value, dtype=float)
    if o == "broadcast":
        c = np.broadcast_to(c, t.shape)
    return c.shape == t.shape and close(c, t)


def json_array(v):
    """A nested list for JSON, with NaN and ±inf (an undefined claim) as null: JSON has no NaN."""
    a = np.asarray(v, dtype=float)
    return np.where(np.isfinite(a), a, None).tolist() if a.size and not np.all(np.isfinite(a)) else a.tolist()


def all_finite(a) -> bool:
    return bool(np.all(np.isfinite(np.asarray(a, dtype=float))))


def close(a, b) -> bool:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape and a.size != 1 and b.size != 1:
        return False
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return False
    scale = max(float(np.max(np.abs(a), initial=0.0)), float(np.max(np.abs(b), initial=0.0)))
    return float(np.max(np.abs(a - b), initial=0.0)) <= RTOL * scale + ATOL


#: Sums and products with more terms than this are compared as written (keeps canonical linear in long chains).
CANONICAL_TERMS = 64


def canonical(nodes: list[Node]) -> dict[Node, int]:
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


def signed_terms(node: Node, sign: int = 1) -> list[tuple[int, Node]]:
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


def unname(names: dict, node: Node) -> dict:
    return {k: v for k, v in names.items() if k is not node}


def nice(k: float) -> str:
    f = Fraction(k).limit_denominator(64)
    if abs(float(f) - k) < 1e-9 * max(1.0, abs(k)):
        return str(f.numerator) if f.denominator == 1 else f"{f.numerator}/{f.denominator}"
    return f"{k:.6g}"


def tried_dims(samples) -> list[dict]:
    seen = []
    for s in samples:
        d = {str(k): v for k, v in s.point.dims.items()}
        if d not in seen:
            seen.append(d)
    return seen


def array_text(v, digits: int) -> str:
    a = np.asarray(v, dtype=float)
    if a.ndim == 0:
        return f"{float(a):.{digits}g}" if digits > 2 else f"{float(a):g}"
    return np.array2string(a, precision=digits, suppress_small=True, separator=", ",
                           max_line_width=100).replace("\n", " ")


def describe_substitute(sub: Substitute, name: str, elementwise: bool) -> str:
    if elementwise and 1 in sub.params:
        w, c, u, b = sub.params[1]
        return (f"t ↦ sin({float(w[0]):.3g}·t + {float(c):.3g}) + {0.5 * float(b):.3g}·({float(u[0]):.3g}·t)² "
                f"(a random smooth stand-in)")
    return "a random smooth stand-in (sin of a linear form plus a quadratic)"


def shape_specs(shapes):
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


def let_items(lets):
    if not lets:
        return []
    if isinstance(lets, dict):
        return list(lets.items())
    out = []
    for item in lets:
        if isinstance(item, str):
            if "=" not in item:
                raise FormulaError(f"bad let {item!r}", hint=Hint("write NAME=EXPR, e.g. --let x1='W1 @ x + b'",
                                                                  "write NAME = EXPR, e.g. x1 = W1 @ x + b"))
            name, _, text = item.partition("=")
            out.append((name.strip(), text))
        else:
            out.append(tuple(item))
    return out
