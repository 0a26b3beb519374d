"""The simplifier's algebra: rewrites a lecturer does without thinking (tr, aᵀb, X⁻¹ X = I, collected terms,
powers, cancelling quotients), registered in rules_simplify.REWRITES with the operator each rewrites.

Each is a local pattern on a node and its nearest arguments (so a pass stays linear in the size of the
DAG) and returns an equal expression, or None. tests/test_simplify.py has a case and a numeric check for
each.
"""
from __future__ import annotations

from . import expr as E
from .expr import Node
from .rules_simplify import ONE, chain, chain_product, one, rule, same

# ----- pattern helpers -----

def _const_one(n: Node) -> bool:
    return n.op == "const" and n.attrs[0] == 1


def _scalar_factor(n: Node):
    """(s, A, build) when n = s·A (or A/s) with s a non-constant scalar and A an array: build(s, B) is s·B
    (or B/s); else None."""
    if n.op == "mul" and n.args[0].shape == () and n.args[1].shape != () and n.args[0].op != "const":
        return n.args[0], n.args[1], E.mul
    if n.op == "div" and n.args[1].shape == () and n.args[0].shape != () and n.args[1].op != "const":
        return n.args[1], n.args[0], lambda d, b: E.div(b, d)
    return None


def _square(n: Node) -> bool:
    return n.ndim == 2 and n.shape[0] == n.shape[1]


# ----- elementwise products and quotients -----

def _into_numerator(c, y: Node, depth: int = 0) -> Node | None:
    """c·y with the constant c taken into y's innermost constant numerator: c·(d ⊘ b) = (c·d) ⊘ b, through
    nested quotients and a scalar quotient's product (c·(1/q/r)·x = (c/q/r)·x); None when y has none."""
    if depth > 3:
        return None
    if y.op == "div":
        top, below = y.args
        if top.op == "const":
            return E.div(E.const(c * top.attrs[0]), below)
        inner = _into_numerator(c, top, depth + 1) if top.shape == y.shape else None
        return None if inner is None else E.div(inner, below)
    if y.op == "mul" and y.args[0].shape == () and y.args[0].op == "div":
        inner = _into_numerator(c, y.args[0], depth + 1)
        return None if inner is None else E.mul(inner, y.args[1])
    return None


# Registered before fold_reciprocal, which would take the constant out of the numerator again.
@rule("mul", "c·(1 ⊘ b) = c ⊘ b for a constant c, also inside a quotient: n·1/‖x‖²/‖x‖·x = n/‖x‖²/‖x‖·x "
             "(a size times a reciprocal reads as the quotient)", when=("div", "mul"))
def _constant_into_numerator(n, s):
    c, y = n.args
    if c.op != "const" or c.shape != () or y.shape != n.shape or c.attrs[0].as_numer_denom()[1] != 1:
        return None                                  # 1/n·1 ⊘ x² stays: 1/n ⊘ x² reads ambiguously
    return _into_numerator(c.attrs[0], y)


@rule("mul", "a ⊙ (c ⊘ b) = c·(a ⊘ b): a reciprocal folds into the neighbouring factor (g ⊙ log′(u) = g ⊘ u)", when=("div",))
def _fold_reciprocal(n, s):
    a, b = n.args
    for x, y in ((a, b), (b, a)):
        if y.op == "div" and y.args[0].op == "const" and x.shape == n.shape:
            return E.mul(y.args[0], E.div(x, y.args[1]))
    return None


@rule("mul", "x ⊙ (a ⊘ x) = a, (x ⊙ r) ⊙ (a ⊘ x) = a ⊙ r (where the quotient is defined)", when=("div",))
def _cancel_quotient(n, s):
    a, b = n.args
    for x, y in ((a, b), (b, a)):
        if y.op != "div":
            continue
        if same(y.args[1], x) and y.args[0].shape == n.shape:
            return y.args[0]
        if x.op == "mul" and x.shape == n.shape:
            for f, r in (x.args, x.args[::-1]):
                if same(f, y.args[1]) and f.shape == r.shape:
                    return E.mul(y.args[0], r)
    return None


@rule("mul", "x ⊙ x = x², x ⊙ xᵏ = xᵏ⁺¹")
def _square_product(n, s):
    a, b = n.args
    if a is b and a.op != "const":
        return E.power(a, E.const(2))
    for x, y in ((a, b), (b, a)):
        if y.op == "pow" and y.args[0] is x and y.args[1].op == "const" and y.args[1].attrs[0].is_Integer \
                and y.args[1].attrs[0] > 0 and x.shape == n.shape:
            return E.power(x, E.const(y.args[1].attrs[0] + 1))
    return None


_PRODUCTS = ("dot", "matmul", "outer", "sum", "trace")


@rule("mul", "a scalar product's factors read function values first: cos(i)·gᵀ A x, not gᵀ A x·cos(i)", when=_PRODUCTS)
def _function_first(n, s):
    a, b = n.args
    if a.shape == () and b.shape == () and a.op in _PRODUCTS and b.op not in _PRODUCTS and b.op != "const" \
            and b.op not in ("mul", "div", "add", "sub", "neg"):
        return Node("mul", (b, a))
    return None


@rule("div", "(a ⊘ b) ⊘ b = a ⊘ b²", when=("div",))
def _repeated_divisor(n, s):
    a, b = n.args
    if a.op == "div" and same(a.args[1], b) and a.shape == n.shape:
        return E.div(a.args[0], E.power(b, E.const(2)))
    return None


@rule("div", "(c·a) ⊘ b with c a scalar constant = c·(a ⊘ b)", when=("mul", "neg"))
def _div_coefficient(n, s):
    a, b = n.args
    c, x = E.split_coeff(a)
    if c != 1 and x.shape == n.shape:
        return E.scaled(c, E.div(x, b))
    return None


# ----- sums of terms -----

@rule("matmul", "repeated factors of a product are a power: Xᵀ Xᵀ Xᵀ = (Xᵀ)³")
def _powers_of_products(n, s):
    if n.args[0] is not n.args[1] and not any(a.op in ("matmul", "matrix_power") for a in n.args):
        return None
    c = chain(n)
    flat = chain(n.args[0]), chain(n.args[1])
    if c is None or None in flat or sum(len(f) for f in flat) == len(c):
        return None                                  # nothing merged here (the arguments are merged already)
    return chain_product(c)


def _inverse_pair(a: Node, b: Node) -> bool:
    """a b = I: X⁻¹ X, X X⁻¹, X⁻ᵀ Xᵀ, Xᵀ X⁻ᵀ."""
    def inv_of(p, q):
        if p.op == "inv" and p.args[0] is q:
            return True
        return p.op == "T" and q.op == "T" and p.args[0].op == "inv" and p.args[0].args[0] is q.args[0]
    return inv_of(a, b) or inv_of(b, a)


@rule("matmul", "X⁻¹ X = I inside a product, whatever its association: X⁻ᵀ (X⁻ᵀ)² Xᵀ = (X⁻ᵀ)²", when=("matmul", "inv", "T"))
def _cancel_inverse(n, s):
    c = chain(n)
    if c is None:
        return None
    out: list = []
    cancelled = False
    for base, k in c:
        while k and out and _inverse_pair(out[-1][0], base):
            m = min(k, out[-1][1])
            k -= m
            out[-1] = (out[-1][0], out[-1][1] - m)
            if not out[-1][1]:
                out.pop()
            cancelled = True
        if k:
            if out and out[-1][0] is base:
                out[-1] = (base, out[-1][1] + k)
            else:
                out.append((base, k))
    if not cancelled:
        return None
    return chain_product(out) if out else E.eye(n.shape[0])


@rule("matmul", "(s·A) B = s·(A B) for a scalar s", when=("mul", "div"))
def _scalar_out_of_matmul(n, s):
    a, b = n.args
    for i, x in enumerate((a, b)):
        sf = _scalar_factor(x)
        if sf is not None:
            c, y, build = sf
            return build(c, E.matmul(y, b) if i == 0 else E.matmul(a, y))
    return None


@rule("outer", "(s·u) vᵀ = s·(u vᵀ) for a scalar s", when=("mul", "div"))
def _scalar_out_of_outer(n, s):
    a, b = n.args
    for i, x in enumerate((a, b)):
        sf = _scalar_factor(x)
        if sf is not None:
            c, y, build = sf
            return build(c, E.outer(y, b) if i == 0 else E.outer(a, y))
    return None


def _same_terms(a: Node, b: Node) -> bool:
    if a is b:
        return True
    if a.op != "matmul" or b.op != "matmul" or a.shape != b.shape:
        return False
    ca, cb = chain(a), chain(b)
    return ca is not None and cb is not None and len(ca) == len(cb) and \
        all(x[0] is y[0] and x[1] == y[1] for x, y in zip(ca, cb))


def _collect(n, sign: int):
    a, b = n.args
    if a.shape != b.shape:
        return None
    (ca, xa), (cb, xb) = E.split_coeff(a), E.split_coeff(b)
    if xa is not xb and _same_terms(xa, xb):
        return E.scaled(ca + sign * cb, xa)
    return None


@rule("add", "equal terms are collected, whatever the association of their products: T + T = 2·T", when=("matmul", "mul", "neg"))
def _collect_add(n, s):
    return _collect(n, 1)


@rule("sub", "equal terms are collected: 3·T − T = 2·T", when=("matmul", "mul", "neg"))
def _collect_sub(n, s):
    return _collect(n, -1)


@rule("add", "a + (−c)·b = a − c·b: no `+ −`", when=("mul", "neg"))
def _plus_minus(n, s):
    a, b = n.args
    cb, xb = E.split_coeff(b)
    if cb is not ONE and cb.is_negative:
        return E.sub(a, E.scaled(-cb, xb))
    ca, xa = E.split_coeff(a)
    if ca is not ONE and ca.is_negative:
        return E.sub(b, E.scaled(-ca, xa))
    return None


# ----- reductions -----

def _as_outer(p: Node, depth: int = 4):
    """(u, w) with p = u wᵀ for a product holding an outer product (u vᵀ M = u (Mᵀ v)ᵀ), else None."""
    if p.op == "outer":
        return p.args
    if depth and p.op == "matmul":
        left = _as_outer(p.args[0], depth - 1)
        if left is not None:
            return left[0], E.matmul(E.transpose(p.args[1]), left[1])
        right = _as_outer(p.args[1], depth - 1)
        if right is not None:
            return E.matmul(p.args[0], right[0]), right[1]
    return None


@rule("sum", "sum(I ⊙ X) = tr(X); sum(a ⊙ b) = aᵀb for vectors; sum(u vᵀ ⊙ A) = uᵀ A v", when=("mul",))
def _sum_of_product(n, s):
    x = n.args[0]
    if x.op != "mul" or x.args[0].shape != x.args[1].shape:
        return None
    a, b = x.args
    for p, q in ((a, b), (b, a)):
        if p.op == "eye":
            return Node("trace", (q,))
    if a.ndim == 1:
        return E.dot(a, b)
    for p, q in ((a, b), (b, a)):
        uw = _as_outer(p)
        if uw is not None:
            return E.dot(uw[0], E.matmul(q, uw[1]))
    return None


@rule("dot", "(Xᵀ a)ᵀ b = aᵀ X b", when=("matmul",))
def _dot_of_transposed(n, s):
    a, b = n.args
    if a.op == "matmul" and a.args[0].op == "T":
        return E.dot(a.args[1], E.matmul(a.args[0].args[0], b))
    return None


@rule("dot", "xᵀ (a ⊘ x) = sum(a) (where the quotient is defined)", when=("div",))
def _dot_cancel(n, s):
    a, b = n.args
    for x, y in ((a, b), (b, a)):
        if y.op == "div" and same(y.args[1], x) and y.args[0].shape == x.shape:
            return E.sum_all(y.args[0])
    return None


@rule("dot", "(s·u)ᵀ v = s·uᵀv for a scalar s", when=("mul", "div"))
def _scalar_out_of_dot(n, s):
    a, b = n.args
    for i, x in enumerate((a, b)):
        sf = _scalar_factor(x)
        if sf is not None:
            c, y, build = sf
            return build(c, E.dot(y, b) if i == 0 else E.dot(a, y))
    return None


# ----- inverses and determinants -----

@rule("inv", "(X⁻¹)⁻¹ = X", when=("inv",))
def _inv_inv(n, s):
    return n.args[0].args[0] if n.args[0].op == "inv" else None


@rule("inv", "(X Y)⁻¹ = Y⁻¹ X⁻¹ for square X, Y", when=("matmul",))
def _inv_product(n, s):
    x = n.args[0]
    if x.op == "matmul" and _square(x.args[0]) and _square(x.args[1]):
        return E.matmul(Node("inv", (x.args[1],)), Node("inv", (x.args[0],)))
    return None


@rule("det", "det(X⁻¹) = 1/det X", when=("inv",))
def _det_inv(n, s):
    return E.div(one(), Node("det", n.args[0].args)) if n.args[0].op == "inv" else None


@rule("det", "det(X Y) = det X det Y for square X, Y", when=("matmul",))
def _det_product(n, s):
    x = n.args[0]
    if x.op == "matmul" and _square(x.args[0]) and _square(x.args[1]):
        return E.mul(Node("det", (x.args[0],)), Node("det", (x.args[1],)))
    return None


@rule("pow", "(x²)ᵏ stays; xᵃ with x = yᵇ: (yᵇ)ᵃ = yᵃᵇ for integer a, b", when=("pow",))
def _power_of_power(n, s):
    x, p = n.args
    if x.op == "pow" and p.op == "const" and x.args[1].op == "const" and p.attrs[0].is_Integer \
            and x.args[1].attrs[0].is_Integer:
        return E.power(x.args[0], E.const(p.attrs[0] * x.args[1].attrs[0]))
    return None


@rule("det", "det(Xᵏ) = (det X)ᵏ", when=("matrix_power",))
def _det_power(n, s):
    x = n.args[0]
    if x.op == "matrix_power":
        return E.power(Node("det", x.args), E.const(x.attrs[0]))
    return None


@rule("inv", "(Xᵏ)⁻¹ = (X⁻¹)ᵏ", when=("matrix_power",))
def _inv_power(n, s):
    x = n.args[0]
    if x.op == "matrix_power":
        return E.matrix_power(Node("inv", x.args), x.attrs[0])
    return None


@rule("T", "(Xᵏ)ᵀ = (Xᵀ)ᵏ", when=("matrix_power",))
def _transposed_power(n, s):
    x = n.args[0]
    if x.op == "matrix_power":
        return E.matrix_power(E.transpose(x.args[0]), x.attrs[0])
    return None


# ----- moves that pay only when something cancels -----

#: Trees (shared nodes counted each time) are measured up to this size.
MEASURE_CAP = 80


def size(n: Node, cap: int = MEASURE_CAP) -> int:
    """Nodes in the expression tree of n, counting stops at `cap` (the measure of a candidate rewrite)."""
    count, stack = 0, [n]
    while stack and count < cap:
        m = stack.pop()
        count += 1
        stack.extend(m.args)
    return count


def _smaller(old: Node, new: Node, strict: bool = True):
    a, b = size(old), size(new)
    return new if (b < a if strict else b <= a) and b < MEASURE_CAP else None


_SUMS = ("add", "sub")


def _cancels(x: Node, t: Node) -> bool:
    """Whether a term of the sum t is a quotient by x or by a factor of x (so x ⊙ t cancels something)."""
    if not any(term.op in ("div", "mul", "neg") for term in t.args):
        return False
    factors = x.args if x.op == "mul" else (x,)
    for term in t.args:
        d = E.split_coeff(term)[1]
        if d.op == "div" and any(same(d.args[1], f) for f in factors):
            return True
    return False


@rule("mul", "x ⊙ (p ± q) = x ⊙ p ± x ⊙ q when that cancels: softmax(z) ⊙ (c − y ⊘ softmax(z)) = c·softmax(z) − y", when=_SUMS)
def _distribute(n, s):
    a, b = n.args
    for x, t in ((a, b), (b, a)):
        if t.op in _SUMS and t.shape == n.shape and x.op not in _SUMS and _cancels(x, t):
            p, q = t.args
            out = s(E.apply(t.op, E.mul(x, p), E.mul(x, q)))
            better = _smaller(n, out)
            if better is not None:
                return better
    return None


@rule("mul", "(a ⊘ b) ⊙ c = (a ⊙ c) ⊘ b when that is no larger: sin(x)/cos(x)² ⊙ sin(x) = sin(x)²/cos(x)²", when=("div",))
def _quotient_out(n, s):
    a, b = n.args
    for x, y in ((a, b), (b, a)):
        if x.op == "div" and x.args[0].op != "const" and x.args[0].shape == n.shape:
            return _smaller(n, s(E.div(E.mul(x.args[0], y), x.args[1])), strict=False)
    return None


def _one_minus(t: Node):
    """u when t = 1 − u, else None."""
    return t.args[1] if t.op == "sub" and _const_one(t.args[0]) else None


def _factors(t: Node):
    return [t.args, t.args[::-1]] if t.op == "mul" else []


@rule("sub", "a ⊙ (1 − b) − (1 − a) ⊙ b = a − b (the logistic loss's gradient)", when=("mul",))
def _logistic(n, s):
    p, q = n.args
    for a, one_b in _factors(p):
        b = _one_minus(one_b)
        if b is None:
            continue
        for one_a, b2 in _factors(q):
            if b2 is b and _one_minus(one_a) is a and a.shape == n.shape and b.shape == n.shape:
                return E.sub(a, b)
    return None


@rule("T", "S⁻ᵀ = S⁻¹ for a symmetric S (Xᵀ X, X Xᵀ, …): ((Xᵀ X)⁻¹)ᵀ = (Xᵀ X)⁻¹", when=("inv",))
def _symmetric_inverse(n, s):
    x = n.args[0]
    if x.op == "inv" and E.transpose(x.args[0]) is x.args[0]:
        return x
    return None


@rule("div", "(x ⊙ r) ⊘ x = r (where the quotient is defined)", when=("mul",))
def _cancel_factor(n, s):
    a, b = n.args
    if a.op == "mul":
        for f, r in (a.args, a.args[::-1]):
            if same(f, b) and r.shape == n.shape:
                return r
    return None


@rule("div", "(c·a) ⊘ (d·b) = (c/d)·(a ⊘ b) for constants c, d", when=("mul", "neg"))
def _div_constants(n, s):
    (ca, xa), (cb, xb) = E.split_coeff(n.args[0]), E.split_coeff(n.args[1])
    if ca != 1 and cb != 1 and xa.shape == n.shape:
        return E.scaled(ca / cb, E.div(xa, xb))
    return None


@rule("outer", "u (Xᵀ v)ᵀ = u vᵀ X", when=("matmul",))
def _outer_of_transposed(n, s):
    u, w = n.args
    if w.op == "matmul" and w.args[0].op == "T" and w.args[1].ndim == 1:
        return E.matmul(E.outer(u, w.args[1]), w.args[0].args[0])
    return None


@rule("mul", "c·(a ⊘ (d·b)) = (c/d)·(a ⊘ b) for constants c, d: 2·x ⊘ (2·√u) = x ⊘ √u", when=("div",))
def _constant_over_constant(n, s):
    c, y = n.args
    if c.op == "const" and y.op == "div":
        d, b = E.split_coeff(y.args[1])
        if d != 1 and y.args[0].shape == n.shape:
            return E.scaled(c.attrs[0] / d, E.div(y.args[0], b))
    return None


@rule("inv", "(Xᵀ)⁻¹ = (X⁻¹)ᵀ, printed X⁻ᵀ", when=("T",))
def _inv_of_transposed(n, s):
    x = n.args[0]
    return E.transpose(Node("inv", x.args)) if x.op == "T" else None


@rule("mul", "(c·𝟙 𝟙ᵀ) ⊙ Y = c·Y: a matrix of ones folds into its neighbour (1/B·𝟙 𝟙ᵀ ⊙ Y = 1/B·Y); alone it stays "
              "𝟙 𝟙ᵀ, whose sizes the vectors carry", when=("outer", "mul", "neg"))
def _ones_outer(n, s):
    a, b = n.args
    for x, y in ((a, b), (b, a)):
        c, core = E.split_coeff(x)
        if core.op == "outer" and all(v.op == "ones" for v in core.args) and y.shape == n.shape:
            return E.scaled(c, y)
    return None
